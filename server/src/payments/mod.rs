//! Card payments: the processor trait and the types it speaks, and our checkout records. Starting
//! a checkout lives in `checkout`, booking processor events in `events`, receipts in `receipt`.

mod booking;
pub mod cards;
mod checkout;
mod events;
pub mod history;
pub mod jobs;
pub mod plans;
mod receipt;
pub mod reconcile;
pub mod refunds;
pub mod sandbox;
pub mod signature;
pub mod stripe;

pub(crate) use checkout::free_statements;
pub use checkout::{checkout_items, decline_reason, reread_checkout, start_checkout, Truth};
pub use events::{EventData, EventEnvelope, EventObject, EventOutcome, Unbooked};
pub use receipt::{payment_for_checkout, receipt, Allocation, Receipt};

use crate::db::Db;
use crate::ids::{CheckoutId, LinkId, PatientId, RefundId, StatementId, TenantId, UserId};
use crate::money::Money;
use async_trait::async_trait;

/// Why a processor call failed. "Not found" is an answer (the processor does not know the
/// object, or no longer does) and callers act on it; "unavailable" is the absence of one.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("processor unreachable: {0}")]
    Unavailable(String),
    #[error("processor refused the request: {0}")]
    Rejected(String),
    #[error("no such object at the processor")]
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the payment event was malformed: {0}")]
    BadEvent(&'static str),
    /// An earlier checkout for this statement was paid and its confirmation hasn't arrived, or
    /// another checkout is being started right now: a second one could take the balance twice.
    #[error("a payment for this statement is being confirmed")]
    Pending,
    /// The request itself was wrong (no statements, too many).
    #[error("{0}")]
    Invalid(&'static str),
}

/// What we ask the processor for. Only opaque ids and neutral text: the processor is not a
/// business associate, so nothing here may identify a patient or a kind of care.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    pub amount: Money,
    /// Our checkout id, sent as `client_reference_id` and in the payment's metadata.
    pub checkout_ref: CheckoutId,
    /// Our statement ids (comma-separated), in `payment_intent_data.metadata`.
    pub statement_ref: String,
    /// Neutral line-item text, e.g. "Statement balance".
    pub description: &'static str,
    /// When our checkout was recorded (unix seconds). A processor reckons the session's expiry
    /// from it, not from its own clock, so a retry with the same idempotency key sends the same
    /// parameters (Stripe refuses a key reused with different ones).
    pub created_at: i64,
    /// Must contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    pub cancel_url: String,
    /// The practice takes bank debits (ACH): offer them beside cards and wallets.
    pub bank_debit: bool,
    /// The practice's name, shown on the processor's page under the neutral line item: it
    /// names who is paid, never a patient or a kind of care of theirs.
    pub merchant_name: String,
}

pub const NEUTRAL_DESCRIPTION: &str = "Statement balance";

/// The one currency the portal charges in (`Money` is US cents), as processors spell it.
pub const CURRENCY: &str = "usd";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutStatus {
    Open,
    Complete,
    Expired,
}

#[derive(Clone, Debug)]
pub struct ProcessorCheckout {
    pub id: String,
    pub url: String,
    pub status: CheckoutStatus,
    pub paid: bool,
    pub amount_total: Money,
    pub client_reference_id: Option<String>,
    pub payment_intent: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclineReason {
    Generic,
    InsufficientFunds,
}

/// Where a processor's payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The money has arrived.
    Succeeded,
    /// A bank debit on its way: it succeeds or fails days later.
    Processing,
    /// Not paid: it needs a payment method or the payer's authentication, or its last attempt
    /// failed (a bank debit that failed comes back here).
    Incomplete,
    /// Given up; it will never take money.
    Canceled,
}

/// How a payment was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// Cards, and the wallets (Apple Pay, Google Pay) that pay with one.
    Card,
    /// ACH Direct Debit.
    UsBankAccount,
}

impl MethodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Card => "card",
            MethodKind::UsBankAccount => "us_bank_account",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProcessorPayment {
    pub id: String,
    pub status: PaymentStatus,
    /// What the payment is for, in the minor unit of `currency`; a bank debit still processing
    /// has received nothing yet.
    pub amount: Money,
    /// In the minor unit of `currency`.
    pub amount_received: Money,
    /// Lower-case ISO 4217 code, as the processor reports it.
    pub currency: String,
    pub method: MethodKind,
    /// The card's brand ("Visa"), or the bank's name for a bank debit.
    pub card_brand: String,
    /// The last four digits of the card or bank account.
    pub card_last4: String,
    pub created: i64,
    pub last_error: Option<DeclineReason>,
    /// Our checkout id from the payment's metadata, when we made it (not a dashboard charge).
    pub checkout_ref: Option<String>,
}

impl ProcessorPayment {
    pub fn succeeded(&self) -> bool {
        self.status == PaymentStatus::Succeeded
    }
}

/// Why a practice refunds, as staff pick it. Processors know fewer reasons: the rest travel as
/// metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundReason {
    Duplicate,
    RequestedByCustomer,
    BillingError,
    Overpayment,
}

impl RefundReason {
    pub const ALL: [RefundReason; 4] = [
        RefundReason::Duplicate,
        RefundReason::RequestedByCustomer,
        RefundReason::BillingError,
        RefundReason::Overpayment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Duplicate => "duplicate",
            RefundReason::RequestedByCustomer => "requested_by_customer",
            RefundReason::BillingError => "billing_error",
            RefundReason::Overpayment => "overpayment",
        }
    }

    pub fn parse(s: &str) -> Option<RefundReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A refund we ask the processor for: opaque ids and an amount, nothing about the patient.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    /// The processor's payment id.
    pub payment: String,
    pub amount: Money,
    pub reason: RefundReason,
    /// Our refund id, in the refund's metadata.
    pub refund_ref: RefundId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    /// Accepted, money not yet returned (bank debits; some cards).
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Clone, Debug)]
pub struct ProcessorRefund {
    pub id: String,
    /// The processor's payment id.
    pub payment: String,
    pub amount: Money,
    pub currency: String,
    pub status: RefundStatus,
    /// Our refund id from its metadata, when we asked for it (not when made in the dashboard).
    pub refund_ref: Option<String>,
    pub created: i64,
}

/// A card a member saved for later, as the processor holds it: nothing but what a person needs
/// to recognise it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCard {
    /// The processor's payment-method id.
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
}

/// A hosted page in setup mode: the member enters a card, the processor saves it on their
/// customer; no money moves.
#[derive(Clone, Debug)]
pub struct SetupRequest {
    /// The processor's customer id of the member.
    pub customer: String,
    /// Our id for this attempt, as `client_reference_id`.
    pub setup_ref: String,
    /// When our attempt was recorded (unix seconds), as `CheckoutRequest::created_at`.
    pub created_at: i64,
    /// Must contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    pub cancel_url: String,
}

/// A dispute (chargeback) as the processor reports it.
#[derive(Clone, Debug)]
pub struct ProcessorDispute {
    pub id: String,
    /// The processor's payment id.
    pub payment: String,
    pub amount: Money,
    pub currency: String,
    /// The processor's word for it: `needs_response`, `under_review`, `won`, `lost`, …
    pub status: String,
    /// The processor's reason code (`fraudulent`, `duplicate`, …), never the payer's words.
    pub reason: String,
    pub created: i64,
}

/// A charge on a member's saved card while they are away: a payment plan's instalment. Only
/// opaque ids, as `CheckoutRequest`.
#[derive(Clone, Debug)]
pub struct OffSessionCharge {
    /// The processor's customer id of the member.
    pub customer: String,
    /// The processor's payment-method id of the saved card; it must be the customer's.
    pub card: String,
    pub amount: Money,
    /// Our checkout id for this attempt, in the payment's metadata.
    pub checkout_ref: CheckoutId,
    /// Our statement ids (comma-separated), in the payment's metadata.
    pub statement_ref: String,
}

/// What an off-session charge came to.
#[derive(Clone, Debug)]
pub enum ChargeOutcome {
    /// The processor took (or, rarely for a card, is taking) the money: the payment as it has it.
    Paid(ProcessorPayment),
    /// The card's bank wants the member present (3-D Secure): nothing was taken; the member
    /// pays on the page. `payment` is the processor's payment left waiting, if it made one.
    AuthenticationRequired { payment: Option<String> },
    /// Declined: nothing was taken.
    Declined {
        payment: Option<String>,
        reason: DeclineReason,
    },
}

/// A card processor with hosted checkout: the built-in sandbox, or Stripe.
#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    /// The origin of the hosted card page, for the portal's CSP `form-action`.
    fn checkout_origin(&self) -> String;
    /// No real money moves (the sandbox; a processor's test keys): every page says "test mode".
    fn is_test_mode(&self) -> bool;
    async fn create_checkout(
        &self,
        req: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError>;
    /// `NotFound` when the processor does not know (or no longer knows) the checkout.
    async fn retrieve_checkout(&self, id: &str) -> Result<ProcessorCheckout, ProcessorError>;
    /// `NotFound` when the processor does not know (or no longer knows) the payment.
    async fn retrieve_payment(&self, id: &str) -> Result<ProcessorPayment, ProcessorError>;
    /// `Rejected` when the checkout is complete; `NotFound` when it is not known.
    async fn expire_checkout(&self, id: &str) -> Result<(), ProcessorError>;
    /// Refunds part or all of a payment. The same idempotency key returns the same refund.
    /// `Rejected` with a short message of ours for staff (never the processor's own text, which
    /// can echo request values) when it refuses: more than is left, a disputed payment, one that
    /// did not succeed.
    async fn create_refund(
        &self,
        req: &RefundRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorRefund, ProcessorError>;
    /// Every refund of a payment, oldest first. `NotFound` when the payment is not known.
    async fn list_refunds(&self, payment: &str) -> Result<Vec<ProcessorRefund>, ProcessorError>;
    /// `NotFound` when the processor does not know the dispute.
    async fn retrieve_dispute(&self, id: &str) -> Result<ProcessorDispute, ProcessorError>;
    /// Creates a customer for one member, carrying only `member_ref` (an opaque id of ours) in
    /// its metadata: no name, no email. The same idempotency key returns the same customer.
    async fn create_customer(
        &self,
        member_ref: &str,
        idempotency_key: &str,
    ) -> Result<String, ProcessorError>;
    /// Starts a hosted page in setup mode that saves a card on the customer.
    async fn create_setup_checkout(
        &self,
        req: &SetupRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError>;
    /// The customer's saved cards, newest first. `NotFound` when the customer is not known.
    async fn list_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError>;
    /// Removes a saved card from the customer. `NotFound` when the card is not the customer's.
    async fn remove_card(&self, customer: &str, card: &str) -> Result<(), ProcessorError>;
    /// Charges a saved card with the member away (confirmed at once, off-session). The same
    /// idempotency key returns the same outcome and never charges twice. `NotFound` when the
    /// card is not the customer's.
    async fn charge_saved_card(
        &self,
        req: &OffSessionCharge,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProcessorError>;
    /// Every payment created in `[since, until)` (unix seconds), any status, oldest first, each
    /// with its `checkout_ref`: reconciliation's view from the processor's side.
    async fn list_payments(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorPayment>, ProcessorError>;
    /// Every refund created in `[since, until)`, oldest first, of any payment.
    async fn list_refunds_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorRefund>, ProcessorError>;
    /// Every dispute created in `[since, until)`, oldest first.
    async fn list_disputes(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorDispute>, ProcessorError>;
}

/// Where one of our checkouts stands, as recorded. It only moves forward: creating → open →
/// complete, or to expired / failed (from which only a late payment completes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutState {
    /// Saved with its idempotency key, the processor not yet answered.
    Creating,
    Open,
    Complete,
    Expired,
    Failed,
}

impl CheckoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutState::Creating => "creating",
            CheckoutState::Open => "open",
            CheckoutState::Complete => "complete",
            CheckoutState::Expired => "expired",
            CheckoutState::Failed => "failed",
        }
    }
}

/// A status the database holds that this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown checkout status {0:?}")]
pub struct UnknownState(String);

impl TryFrom<String> for CheckoutState {
    type Error = UnknownState;

    fn try_from(s: String) -> Result<Self, UnknownState> {
        Ok(match s.as_str() {
            "creating" => CheckoutState::Creating,
            "open" => CheckoutState::Open,
            "complete" => CheckoutState::Complete,
            "expired" => CheckoutState::Expired,
            "failed" => CheckoutState::Failed,
            _ => return Err(UnknownState(s)),
        })
    }
}

/// A checkout as we recorded it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CheckoutRow {
    pub id: CheckoutId,
    pub tenant_id: TenantId,
    /// Set when the checkout covers exactly one statement (pay-link checkouts always do).
    pub statement_id: Option<StatementId>,
    /// Who started it: a pay link, or a signed-in account.
    pub link_id: Option<LinkId>,
    pub user_id: Option<UserId>,
    #[sqlx(rename = "amount_cents")]
    pub amount: Money,
    pub processor_session_id: Option<String>,
    #[sqlx(rename = "status", try_from = "String")]
    pub state: CheckoutState,
}

const SELECT_CHECKOUT: &str = "SELECT id, tenant_id, statement_id, link_id, user_id, amount_cents,
        processor_session_id, status FROM checkouts";

/// The most statements one payment may settle (the processor's metadata holds their ids).
pub const MAX_ITEMS: usize = 10;

/// What a checkout is for: one or several statements of one practice, and who started it.
#[derive(Clone, Debug)]
pub struct CheckoutPlan {
    pub tenant: TenantId,
    /// Each statement once, with the amount to put on it (already checked against its balance).
    pub items: Vec<(StatementId, Money)>,
    /// The patients concerned, for the audit trail.
    pub patients: Vec<PatientId>,
    pub link: Option<LinkId>,
    pub user: Option<UserId>,
    /// Path prefix the processor sends the payer back to: "/pay" or "/account/pay".
    pub return_prefix: &'static str,
    /// The plan instalment this pays, when a member pays one on the page.
    pub instalment: Option<plans::InstalmentRef>,
}

/// Marks a checkout finished (complete, expired or failed): its statements are free for a new
/// checkout. `from` lists the statuses it may leave, so a complete checkout never goes back.
pub(crate) async fn close_checkout(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    to: CheckoutState,
    from: &[CheckoutState],
) -> Result<bool, sqlx::Error> {
    let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "UPDATE checkouts SET status = $1 WHERE id = $2 AND status IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(to.as_str()).bind(id);
    for f in from {
        q = q.bind(f.as_str());
    }
    let changed = q.execute(&mut *conn).await?.rows_affected() == 1;
    // Only when the status really moved: a checkout that became open meanwhile keeps its lock.
    if changed {
        sqlx::query("UPDATE checkout_items SET live = NULL WHERE checkout_id = $1 AND live = 1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(changed)
}

pub async fn find_checkout(db: &Db, id: &CheckoutId) -> Result<Option<CheckoutRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_CHECKOUT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await
}

pub(crate) async fn find_checkout_by_session(
    db: &Db,
    session_id: &str,
) -> Result<Option<CheckoutRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT_CHECKOUT} WHERE processor_session_id = $1"
    ))
    .bind(session_id)
    .fetch_optional(db.pool())
    .await
}

/// A payment, or `None` when the processor does not know it.
pub(crate) async fn payment_if_known(
    processor: &dyn PaymentProcessor,
    id: &str,
) -> Result<Option<ProcessorPayment>, ProcessorError> {
    match processor.retrieve_payment(id).await {
        Ok(p) => Ok(Some(p)),
        Err(ProcessorError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}
