//! Card payments: the processor trait, starting a checkout, and recording payments from
//! processor events exactly once.

pub mod sandbox;
pub mod signature;
pub mod stripe;

use crate::alerts::AlertSink;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::{CheckoutId, LinkId, PatientId, PaymentId, StatementId, TenantId, UserId};
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

#[derive(Clone, Debug)]
pub struct ProcessorPayment {
    pub id: String,
    pub succeeded: bool,
    /// In the minor unit of `currency`.
    pub amount_received: Money,
    /// Lower-case ISO 4217 code, as the processor reports it.
    pub currency: String,
    pub card_brand: String,
    pub card_last4: String,
    pub created: i64,
    pub last_error: Option<DeclineReason>,
}

/// A card processor with hosted checkout: the built-in sandbox now, Stripe Checkout later.
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
}

/// Marks a checkout finished (complete, expired or failed): its statements are free for a new
/// checkout. `from` lists the statuses it may leave, so a complete checkout never goes back.
async fn close_checkout(
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

async fn find_checkout_by_session(
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

/// Starts one hosted checkout for the plan's statements and returns the URL to send the payer
/// to. The idempotency key is saved before the processor is called, so a retry after a crash
/// can't create a second session.
pub async fn start_checkout(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    plan: &CheckoutPlan,
    public_url: &str,
    actor: &Actor,
) -> Result<String, PaymentError> {
    if plan.items.is_empty() || plan.items.len() > MAX_ITEMS {
        return Err(PaymentError::Invalid(
            "a checkout covers 1 to 10 statements",
        ));
    }
    let total = plan
        .items
        .iter()
        .try_fold(Money::from_cents(0), |acc, (_, m)| acc.checked_add(*m))
        .ok_or(PaymentError::Invalid("amount overflow"))?;
    // One live checkout per statement (a unique index backs this up). Older open ones are
    // expired at the processor first. One that can't be is re-read: paid (the payment is on its
    // way) refuses rather than let the balance be taken twice; unknown to the processor, or
    // complete without a payment that succeeded, is closed and never blocks the statement.
    let now = actor.at.unwrap_or_else(crate::clock::now_unix);
    let mut conn = db.pool().acquire().await?;
    for (statement, _) in &plan.items {
        let stale: Vec<(String,)> = sqlx::query_as(
            "SELECT c.id FROM checkouts c JOIN checkout_items i ON i.checkout_id = c.id
             WHERE i.statement_id = $1 AND i.live = 1 AND c.status = 'creating' AND c.created_at < $2",
        )
        .bind(statement.as_str())
        .bind(now - 600)
        .fetch_all(&mut *conn)
        .await?;
        for (id,) in stale {
            close_checkout(
                &mut conn,
                &id,
                CheckoutState::Failed,
                &[CheckoutState::Creating],
            )
            .await?;
        }
        let open: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.id, c.processor_session_id FROM checkouts c
             JOIN checkout_items i ON i.checkout_id = c.id
             WHERE i.statement_id = $1 AND i.live = 1 AND c.status = 'open'
               AND c.processor_session_id IS NOT NULL",
        )
        .bind(statement.as_str())
        .fetch_all(&mut *conn)
        .await?;
        for (id, sid) in open {
            match processor.expire_checkout(&sid).await {
                Ok(()) => {
                    close_checkout(
                        &mut conn,
                        &id,
                        CheckoutState::Expired,
                        &[CheckoutState::Open],
                    )
                    .await?;
                }
                Err(ProcessorError::Rejected(_) | ProcessorError::NotFound) => {
                    let ours = CheckoutId::from_db(id);
                    match reread_checkout(db, processor, alerts, &ours, &sid, now).await? {
                        Truth::Unpaid | Truth::NotSucceeded => {}
                        Truth::Open | Truth::Pending => return Err(PaymentError::Pending),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    drop(conn);

    let id = CheckoutId::generate();
    let idem = format!("checkout-{}", id.as_str());
    let single = (plan.items.len() == 1).then(|| plan.items[0].0.as_str().to_owned());
    let pending = |e: sqlx::Error| match &e {
        // Another request holds one of these statements' live checkout.
        sqlx::Error::Database(d) if d.is_unique_violation() => PaymentError::Pending,
        _ => PaymentError::Db(e),
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO checkouts (id, tenant_id, statement_id, link_id, user_id, amount_cents,
             idempotency_key, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'creating', $8)",
    )
    .bind(id.as_str())
    .bind(plan.tenant.as_str())
    .bind(single)
    .bind(plan.link.as_ref().map(|l| l.as_str().to_owned()))
    .bind(plan.user.as_ref().map(|u| u.as_str().to_owned()))
    .bind(total.cents())
    .bind(&idem)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (statement, amount) in &plan.items {
        sqlx::query(
            "INSERT INTO checkout_items (checkout_id, statement_id, amount_cents, live)
             VALUES ($1, $2, $3, 1)",
        )
        .bind(id.as_str())
        .bind(statement.as_str())
        .bind(amount.cents())
        .execute(&mut *tx)
        .await
        .map_err(pending)?;
    }
    tx.commit().await?;

    let req = CheckoutRequest {
        amount: total,
        checkout_ref: id.clone(),
        statement_ref: plan
            .items
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        description: NEUTRAL_DESCRIPTION,
        created_at: now,
        success_url: format!(
            "{public_url}{}/return/{}?session_id={{CHECKOUT_SESSION_ID}}",
            plan.return_prefix,
            id.as_str()
        ),
        cancel_url: format!(
            "{public_url}{}/cancelled/{}",
            plan.return_prefix,
            id.as_str()
        ),
    };
    let created = match processor.create_checkout(&req, &idem).await {
        Ok(c) => c,
        Err(e) => {
            let mut conn = db.pool().acquire().await?;
            close_checkout(
                &mut conn,
                id.as_str(),
                CheckoutState::Failed,
                &[CheckoutState::Creating],
            )
            .await?;
            return Err(e.into());
        }
    };
    sqlx::query(
        "UPDATE checkouts SET processor_session_id = $1, checkout_url = $2, status = 'open'
         WHERE id = $3 AND status = 'creating'",
    )
    .bind(&created.id)
    .bind(&created.url)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    for patient in &plan.patients {
        audit::record(
            db.pool(),
            audit::Event {
                actor,
                tenant: Some(&plan.tenant),
                patient: Some(patient),
                action: "payment.checkout.start",
                resource: Some(id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    Ok(created.url)
}

/// The parts of a processor event we read. The object is re-fetched, never trusted as sent.
#[derive(Debug, serde::Deserialize)]
pub struct EventEnvelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: EventData,
}

#[derive(Debug, serde::Deserialize)]
pub struct EventData {
    pub object: EventObject,
}

#[derive(Debug, serde::Deserialize)]
pub struct EventObject {
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Seen before: nothing changed.
    Duplicate,
    /// A payment was recorded in the ledger.
    Recorded,
    /// The event was stored; it moved no money (already recorded, unpaid, expired, ignored type).
    NoChange,
    /// A paid checkout we have no record of: the event is kept for reconciliation and moved no
    /// money; someone must look at it.
    UnknownPaid,
    /// A payment for one of our checkouts that we refused to book (it did not succeed, or its
    /// amount or currency is not the checkout's): the event is kept, the checkout closed, and
    /// the caller raises this alert.
    NotBooked(Unbooked),
}

/// Money the processor reports that we did not book, for a person to reconcile. Raised once:
/// the same payment (or checkout) always words its detail the same way, whichever event or
/// page found it. Details carry processor ids, our ids and amounts, never a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unbooked {
    pub kind: &'static str,
    pub detail: String,
}

/// A processor's id or code as it may appear in an alert: bounded, and nothing but letters,
/// digits and underscores.
fn ident(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(80)
        .collect()
}

impl Unbooked {
    pub const NOT_SUCCEEDED: &'static str = "payment-not-succeeded";
    pub const MISMATCH: &'static str = "payment-amount-mismatch";

    fn not_succeeded(checkout: &CheckoutId, session: &str, payment: Option<&str>) -> Unbooked {
        Unbooked {
            kind: Self::NOT_SUCCEEDED,
            detail: format!(
                "processor checkout {} (our checkout {checkout}) is complete but its payment {} did not succeed; nothing was booked for it",
                ident(session),
                payment.map_or_else(|| "(none)".to_owned(), ident),
            ),
        }
    }

    fn mismatch(checkout: &CheckoutRow, expected: Money, payment: &ProcessorPayment) -> Unbooked {
        Unbooked {
            kind: Self::MISMATCH,
            detail: format!(
                "processor payment {} for our checkout {} was not booked: it received {} {} where the checkout asked for {} {} ({} {CURRENCY} over its statements)",
                ident(&payment.id),
                checkout.id,
                payment.amount_received.cents(),
                ident(&payment.currency),
                checkout.amount.cents(),
                CURRENCY,
                expected.cents(),
            ),
        }
    }

    /// Records the alert, unless this very one was raised before.
    pub async fn raise(&self, db: &Db, alerts: &AlertSink, now: i64) -> Result<(), sqlx::Error> {
        alerts.raise_once(db, self.kind, &self.detail, now).await
    }
}

/// One of our checkouts as the processor sees it when asked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Still open: the payer may yet pay.
    Open,
    /// Over with nothing paid: expired there, or unknown to the processor (it never had it or
    /// forgot it). Our checkout is closed as expired.
    Unpaid,
    /// Paid with a payment that succeeded, or a payment still settling: booking it is the
    /// webhook's work.
    Pending,
    /// Complete, but its payment did not succeed: nothing to book. Our checkout is closed as
    /// failed and the reconciliation alert raised.
    NotSucceeded,
}

/// Moves a live (creating or open) checkout of ours to `to`, freeing its statements.
async fn close_live(db: &Db, id: &CheckoutId, to: CheckoutState) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    close_checkout(
        &mut tx,
        id.as_str(),
        to,
        &[CheckoutState::Creating, CheckoutState::Open],
    )
    .await?;
    tx.commit().await
}

/// Asks the processor afresh where our checkout `id` (its session `session_id`) stands, and
/// acts on the answer: a checkout the processor does not know is treated as expired, and one
/// it reports complete with a payment that did not succeed is closed as failed with the
/// reconciliation alert. Neither ever blocks the statement again.
pub async fn reread_checkout(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    id: &CheckoutId,
    session_id: &str,
    now: i64,
) -> Result<Truth, PaymentError> {
    let pc = match processor.retrieve_checkout(session_id).await {
        Ok(pc) => pc,
        Err(ProcessorError::NotFound) => {
            tracing::warn!(checkout = %id, "the processor does not know this checkout; treated as expired");
            close_live(db, id, CheckoutState::Expired).await?;
            return Ok(Truth::Unpaid);
        }
        Err(e) => return Err(e.into()),
    };
    if !pc.paid {
        return Ok(match pc.status {
            CheckoutStatus::Open => Truth::Open,
            // Complete but unpaid: a payment method that settles later.
            CheckoutStatus::Complete => Truth::Pending,
            CheckoutStatus::Expired => {
                close_live(db, id, CheckoutState::Expired).await?;
                Truth::Unpaid
            }
        });
    }
    let payment = match &pc.payment_intent {
        Some(pi) => payment_if_known(processor, pi).await?,
        None => None,
    };
    if payment
        .as_ref()
        .is_some_and(|p| p.succeeded && p.amount_received.is_positive())
    {
        return Ok(Truth::Pending);
    }
    close_live(db, id, CheckoutState::Failed).await?;
    Unbooked::not_succeeded(id, &pc.id, pc.payment_intent.as_deref())
        .raise(db, alerts, now)
        .await?;
    Ok(Truth::NotSucceeded)
}

/// A payment, or `None` when the processor does not know it.
async fn payment_if_known(
    processor: &dyn PaymentProcessor,
    id: &str,
) -> Result<Option<ProcessorPayment>, ProcessorError> {
    match processor.retrieve_payment(id).await {
        Ok(p) => Ok(Some(p)),
        Err(ProcessorError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Handles one verified processor event. Safe under duplicates, reordering and retries: the
/// event id is unique, the object is re-fetched, and a payment is keyed by its processor id.
/// `now` is the request's reading of the server clock; it stamps what is recorded.
pub async fn handle_event(
    db: &Db,
    processor: &dyn PaymentProcessor,
    ev: &EventEnvelope,
    now: i64,
) -> Result<EventOutcome, PaymentError> {
    let seen: Option<String> =
        sqlx::query_scalar("SELECT event_id FROM processor_events WHERE event_id = $1")
            .bind(&ev.id)
            .fetch_optional(db.pool())
            .await?;
    if seen.is_some() {
        return Ok(EventOutcome::Duplicate);
    }
    match ev.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let session = processor.retrieve_checkout(&ev.data.object.id).await?;
            let payment = match (&session.payment_intent, session.paid) {
                (Some(pi), true) => payment_if_known(processor, pi).await?,
                _ => None,
            };
            record_from_session(db, ev, &session, payment.as_ref(), now).await
        }
        "checkout.session.expired" => {
            let session = processor.retrieve_checkout(&ev.data.object.id).await?;
            let mut tx = db.begin_write().await?;
            if !insert_event(&mut tx, ev, now).await? {
                return Ok(EventOutcome::Duplicate);
            }
            if session.status == CheckoutStatus::Expired {
                let ours: Option<String> =
                    sqlx::query_scalar("SELECT id FROM checkouts WHERE processor_session_id = $1")
                        .bind(&session.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(id) = ours {
                    close_checkout(
                        &mut tx,
                        &id,
                        CheckoutState::Expired,
                        &[CheckoutState::Creating, CheckoutState::Open],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(EventOutcome::NoChange)
        }
        _ => {
            let mut tx = db.begin_write().await?;
            let fresh = insert_event(&mut tx, ev, now).await?;
            tx.commit().await?;
            Ok(if fresh {
                EventOutcome::NoChange
            } else {
                EventOutcome::Duplicate
            })
        }
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ev: &EventEnvelope,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO processor_events (event_id, event_type, object_id, received_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&ev.id)
    .bind(&ev.event_type)
    .bind(&ev.data.object.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records the payment of a completed checkout, once, with the event, in one transaction:
/// a crash part-way leaves neither, and the processor's retry does the work again.
async fn record_from_session(
    db: &Db,
    ev: &EventEnvelope,
    session: &ProcessorCheckout,
    payment: Option<&ProcessorPayment>,
    now: i64,
) -> Result<EventOutcome, PaymentError> {
    // By the processor's id; failing that (a crash between creating the session and saving its
    // id), by our own id, which travels as `client_reference_id`.
    let mut checkout = find_checkout_by_session(db, &session.id).await?;
    if checkout.is_none() {
        if let Some(ours) = session
            .client_reference_id
            .as_deref()
            .and_then(CheckoutId::parse)
        {
            checkout = find_checkout(db, &ours)
                .await?
                .filter(|c| c.processor_session_id.is_none());
            if checkout.is_some() {
                sqlx::query("UPDATE checkouts SET processor_session_id = $1 WHERE id = $2 AND processor_session_id IS NULL")
                    .bind(&session.id)
                    .bind(ours.as_str())
                    .execute(db.pool())
                    .await?;
            }
        }
    }
    let mut tx = db.begin_write().await?;
    if !insert_event(&mut tx, ev, now).await? {
        return Ok(EventOutcome::Duplicate);
    }
    let Some(checkout) = checkout else {
        // Unknown to us: keep the event, move no money. Paid yet unknown is money taken that no
        // ledger shows: the caller raises the reconciliation alert.
        tx.commit().await?;
        let paid = payment.is_some_and(|p| p.succeeded && p.amount_received.is_positive());
        return Ok(if paid {
            EventOutcome::UnknownPaid
        } else {
            EventOutcome::NoChange
        });
    };
    if !session.paid {
        tx.commit().await?;
        return Ok(EventOutcome::NoChange);
    }
    if session.client_reference_id.as_deref() != Some(checkout.id.as_str()) {
        return Err(PaymentError::BadEvent(
            "checkout reference does not match our record",
        ));
    }
    let payment = match payment {
        Some(p) if p.succeeded && p.amount_received.is_positive() => p,
        // The processor says complete and paid, yet its payment did not succeed.
        other => {
            let why =
                Unbooked::not_succeeded(&checkout.id, &session.id, other.map(|p| p.id.as_str()));
            return refuse(tx, &checkout.id, why).await;
        }
    };
    // How the money splits across the checkout's statements, as asked for when it started.
    let items: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement_id, amount_cents FROM checkout_items WHERE checkout_id = $1 ORDER BY statement_id",
    )
    .bind(checkout.id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let expected = Money::from_cents(items.iter().map(|(_, c)| *c).sum());
    // Exactly what the checkout asked for, in our currency, or nothing is booked: one statement
    // or several alike.
    if items.is_empty()
        || payment.currency != CURRENCY
        || payment.amount_received != checkout.amount
        || expected != checkout.amount
    {
        let why = Unbooked::mismatch(&checkout, expected, payment);
        return refuse(tx, &checkout.id, why).await;
    }
    let allocations: Vec<(StatementId, Money)> = items
        .iter()
        .map(|(s, c)| (StatementId::from_db(s.clone()), Money::from_cents(*c)))
        .collect();
    let payment_id = PaymentId::generate();
    let inserted = sqlx::query(
        "INSERT INTO payments (id, tenant_id, statement_id, checkout_id, processor_payment_id, amount_cents,
             card_brand, card_last4, paid_at, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (processor_payment_id) DO NOTHING",
    )
    .bind(payment_id.as_str())
    .bind(checkout.tenant_id.as_str())
    .bind(checkout.statement_id.as_ref().map(|s| s.as_str().to_owned()))
    .bind(checkout.id.as_str())
    .bind(&payment.id)
    .bind(payment.amount_received.cents())
    .bind(&payment.card_brand)
    .bind(&payment.card_last4)
    .bind(payment.created)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Forward only: a completed checkout never goes back to open or expired.
    close_checkout(
        &mut tx,
        checkout.id.as_str(),
        CheckoutState::Complete,
        &[
            CheckoutState::Creating,
            CheckoutState::Open,
            CheckoutState::Expired,
            CheckoutState::Failed,
        ],
    )
    .await?;
    if inserted.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(EventOutcome::NoChange);
    }
    let actor = Actor::system("system:processor-webhook");
    for (statement, amount) in &allocations {
        sqlx::query(
            "INSERT INTO payment_allocations (payment_id, statement_id, tenant_id, amount_cents)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(payment_id.as_str())
        .bind(statement.as_str())
        .bind(checkout.tenant_id.as_str())
        .bind(amount.cents())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, payment_id, created_at)
             VALUES ($1, $2, 'payment', $3, $4, $5)",
        )
        .bind(checkout.tenant_id.as_str())
        .bind(statement.as_str())
        .bind(amount.cents())
        .bind(payment_id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let balance = crate::billing::balance(&mut *tx, statement).await?;
        let patient: String = sqlx::query_scalar("SELECT patient_id FROM statements WHERE id = $1")
            .bind(statement.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let patient = PatientId::from_db(patient);
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                tenant: Some(&checkout.tenant_id),
                patient: Some(&patient),
                action: "payment.recorded",
                resource: Some(payment_id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
        if balance.cents() < 0 {
            // Paid more than was due (two checkouts raced). The money is recorded as taken; the
            // credit is flagged for the practice to refund.
            audit::record(
                &mut *tx,
                audit::Event {
                    actor: &actor,
                    tenant: Some(&checkout.tenant_id),
                    patient: Some(&patient),
                    action: "payment.overpaid",
                    resource: Some(statement.as_str()),
                    outcome: Outcome::Failure,
                },
            )
            .await?;
            tracing::warn!(statement = %statement, "statement overpaid; credit needs a refund");
        }
    }
    tx.commit().await?;
    Ok(EventOutcome::Recorded)
}

/// Refuses to book a payment: keeps the event (a retry would find the same) and closes the
/// checkout as failed, so money we did not book never holds the statement; the caller raises
/// the alert and a person reconciles it.
async fn refuse(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    checkout: &CheckoutId,
    why: Unbooked,
) -> Result<EventOutcome, PaymentError> {
    close_checkout(
        &mut tx,
        checkout.as_str(),
        CheckoutState::Failed,
        &[CheckoutState::Creating, CheckoutState::Open],
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(checkout = %checkout, kind = why.kind, "payment not booked");
    Ok(EventOutcome::NotBooked(why))
}

/// The payment recorded for one of our checkouts, if the webhook has arrived.
pub async fn payment_for_checkout(
    db: &Db,
    checkout: &CheckoutId,
) -> Result<Option<PaymentId>, sqlx::Error> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM payments WHERE checkout_id = $1")
        .bind(checkout.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(id.map(PaymentId::from_db))
}

/// The statements a checkout asked for, with the amount on each.
pub async fn checkout_items(
    db: &Db,
    checkout: &CheckoutId,
) -> Result<Vec<(StatementId, Money)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement_id, amount_cents FROM checkout_items WHERE checkout_id = $1 ORDER BY statement_id",
    )
    .bind(checkout.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(s, c)| (StatementId::from_db(s), Money::from_cents(c)))
        .collect())
}

/// Why an unpaid checkout ended, as far as the processor says: a decline reason, or `None`
/// when the payer simply went back.
pub async fn decline_reason(
    processor: &dyn PaymentProcessor,
    checkout: &CheckoutRow,
) -> Result<Option<DeclineReason>, ProcessorError> {
    let Some(sid) = &checkout.processor_session_id else {
        return Ok(None);
    };
    // A checkout (or payment) the processor does not know was never paid: the payer went back.
    let pc = match processor.retrieve_checkout(sid).await {
        Ok(pc) => pc,
        Err(ProcessorError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    match &pc.payment_intent {
        Some(pi) => Ok(payment_if_known(processor, pi)
            .await?
            .and_then(|p| p.last_error)),
        None => Ok(None),
    }
}

/// How much of a payment went to one statement.
#[derive(Clone, Debug)]
pub struct Allocation {
    pub statement_id: StatementId,
    pub amount: Money,
}

/// A recorded payment and how it split, for the receipt.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub payment_id: PaymentId,
    pub tenant_id: TenantId,
    pub checkout_id: CheckoutId,
    pub allocations: Vec<Allocation>,
    pub amount: Money,
    pub card_brand: String,
    pub card_last4: String,
    pub paid_at: i64,
}

impl Receipt {
    pub fn covers(&self, statement: &StatementId) -> bool {
        self.allocations
            .iter()
            .any(|a| &a.statement_id == statement)
    }
}

pub async fn receipt(db: &Db, id: &PaymentId) -> Result<Option<Receipt>, sqlx::Error> {
    let r: Option<(String, String, i64, String, String, i64)> = sqlx::query_as(
        "SELECT tenant_id, checkout_id, amount_cents, card_brand, card_last4, paid_at FROM payments WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some((t, c, a, b, l, p)) = r else {
        return Ok(None);
    };
    let allocations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement_id, amount_cents FROM payment_allocations WHERE payment_id = $1 ORDER BY statement_id",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(Some(Receipt {
        payment_id: id.clone(),
        tenant_id: TenantId::from_db(t),
        checkout_id: CheckoutId::from_db(c),
        allocations: allocations
            .into_iter()
            .map(|(s, a)| Allocation {
                statement_id: StatementId::from_db(s),
                amount: Money::from_cents(a),
            })
            .collect(),
        amount: Money::from_cents(a),
        card_brand: b,
        card_last4: l,
        paid_at: p,
    }))
}
