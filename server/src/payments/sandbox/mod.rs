//! The built-in sandbox processor: a Stripe-Checkout-like hosted page on its own listener and
//! origin (cards by Stripe's public test numbers, and US bank debits that settle later), and
//! Stripe-format signed webhooks; in setup mode the page saves a test card on a customer
//! instead (`cards`), and charges a saved card with the member away (`charges`, which also
//! lists payments, refunds and disputes over a window). Disputes are opened and closed by test
//! hooks (`disputes`). Its objects live in its own tables
//! (`store`), so a restart loses neither open checkouts nor undelivered events (`outbox`). It
//! keeps nothing of a card or bank account but its brand (or bank) and last four digits.

mod cards;
mod charges;
mod disputes;
mod objects;
mod outbox;
mod page;
mod store;

pub use page::{luhn_valid, router};
pub use store::Misreport;

use super::{
    ChargeOutcome, CheckoutRequest, CheckoutStatus, DeclineReason, MethodKind, OffSessionCharge,
    PaymentProcessor, PaymentStatus, ProcessorCheckout, ProcessorDispute, ProcessorError,
    ProcessorPayment, ProcessorRefund, RefundRequest, SavedCard, SetupRequest, CURRENCY,
};
use crate::db::Db;
use crate::money::Money;
use async_trait::async_trait;
use charges::{to_dispute, to_payment};
use objects::{charge_json, payment_json};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{PaymentRow, RefundRow, SessionRow};

/// The bank a sandbox bank debit names, as Stripe's test bank reads.
pub const TEST_BANK: &str = "STRIPE TEST BANK";

/// How a payment method attempt ends, as checked before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// A card that succeeds.
    Paid,
    /// A card that is declined.
    Declined(DeclineReason),
    /// A bank debit: processing now, succeeding (or failing) when it settles.
    Debit { fails: bool },
}

/// One payment attempt, as checked before the store is touched.
struct Attempt {
    method: MethodKind,
    brand: String,
    last4: String,
    outcome: Outcome,
    now: i64,
}

/// What recording an attempt came to.
#[derive(Debug)]
enum Recorded {
    NotFound,
    /// The checkout was no longer open (a concurrent submit completed it, or it expired):
    /// nothing was written.
    NotOpen(Box<SessionRow>),
    /// Paid (or a debit started): send the payer here; these outbox events report it.
    Completed(String, Vec<String>),
    /// Declined: back to the merchant's cancel URL.
    Declined(String),
}

/// Shared by the processor handle the portal uses and the sandbox's own web pages.
pub struct Sandbox {
    db: Db,
    public_url: String,
    webhook_secret: String,
    webhook_url: RwLock<Option<String>>,
    merchant_name: String,
    /// How long a bank debit (or a refund of one) takes to settle by itself.
    settle_after: i64,
    http: reqwest::Client,
}

/// A sandbox object id: the prefix Stripe gives the kind, then 32 hex digits.
fn sandbox_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}_test_{}", hex::encode(b))
}

fn unavailable(e: sqlx::Error) -> ProcessorError {
    ProcessorError::Unavailable(format!("sandbox database: {e}"))
}

impl Sandbox {
    /// A sandbox keeping its objects in `db`; bank debits settle `settle_secs` after they are
    /// made (by the delivery loop, `run`), or at once by `settle_bank_debits`.
    pub fn new(db: Db, public_url: String, webhook_secret: String, settle_secs: u64) -> Arc<Self> {
        Arc::new(Sandbox {
            db,
            public_url,
            webhook_secret,
            webhook_url: RwLock::new(None),
            merchant_name: "PatriotPay sandbox merchant".into(),
            settle_after: i64::try_from(settle_secs).unwrap_or(i64::MAX / 4),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Where events go; set once the portal knows its own address.
    pub fn set_webhook_url(&self, url: String) {
        if let Ok(mut w) = self.webhook_url.write() {
            *w = Some(url);
        }
    }

    /// Stops sending events, as when the portal cannot be reached: they wait in the outbox,
    /// undelivered, until a webhook URL is set again (a restart sets it).
    pub fn stop_webhooks(&self) {
        if let Ok(mut w) = self.webhook_url.write() {
            *w = None;
        }
    }

    fn webhook_url(&self) -> Option<String> {
        self.webhook_url.read().ok().and_then(|u| u.clone())
    }

    /// Forgets every checkout, payment and undelivered event: a processor that lost objects.
    pub async fn forget_everything(&self) {
        let forgot = async {
            let mut tx = self.db.begin_write().await?;
            store::forget(&mut tx).await?;
            tx.commit().await
        };
        if let Err(e) = forgot.await {
            tracing::warn!(error = %e, "sandbox could not forget");
        }
    }

    /// Makes checkout `id` misbehave as `how` when it is paid; false if there is no such checkout.
    pub async fn misreport(&self, id: &str, how: Misreport) -> bool {
        match self.db.pool().acquire().await {
            Ok(mut conn) => store::set_misreport(&mut conn, id, &how)
                .await
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Settles every bank debit still processing and every pending refund of one, now, whatever
    /// their settling time, and delivers the events that report it. A test hook; the delivery
    /// loop does the same for those due. How many payments and refunds were settled.
    pub async fn settle_bank_debits(&self) -> usize {
        match self.settle(None).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox settlement failed");
                0
            }
        }
    }

    /// Tries at once every event not yet delivered (not given up), whatever its retry time: what
    /// the delivery loop does as their times come. A test hook; how many were delivered.
    pub async fn deliver_pending(&self) -> usize {
        self.deliver_due(None).await.unwrap_or(0)
    }

    /// Settles the processing debits and pending refunds due at `now` (all when `None`). A
    /// debit settles as its test account number decided: succeeded (the checkout becomes paid)
    /// or failed for insufficient funds. Each settlement and its events are one transaction.
    async fn settle(&self, now: Option<i64>) -> Result<usize, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        let payments = store::settling_payments(&mut conn, now).await?;
        let refunds = store::pending_refunds(&mut conn, now).await?;
        drop(conn);
        let mut settled = 0;
        for p in payments {
            let at = crate::clock::now_unix();
            let fails = p.settle_to.as_deref() == Some("failed");
            let (to, error) = if fails {
                ("failed", Some(DeclineReason::InsufficientFunds))
            } else {
                ("succeeded", None)
            };
            let mut tx = self.db.begin_write().await?;
            if !store::settle_payment(&mut tx, &p.id, to, error).await? {
                continue;
            }
            // Only a hosted checkout's bank debit is ever processing: its session follows it.
            if let (false, Some(id)) = (fails, &p.session_id) {
                store::mark_session_paid(&mut tx, id).await?;
            }
            let session = match &p.session_id {
                Some(id) => store::session(&mut tx, id).await?,
                None => None,
            };
            let mut events = vec![];
            if let Some(s) = session {
                let kind = if fails {
                    "checkout.session.async_payment_failed"
                } else {
                    "checkout.session.async_payment_succeeded"
                };
                events.push(outbox::write(&mut tx, kind, self.session_json(&s), at).await?);
            }
            if let Some(p) = store::payment(&mut tx, &p.id).await? {
                let kind = if fails {
                    "payment_intent.payment_failed"
                } else {
                    "payment_intent.succeeded"
                };
                events.push(outbox::write(&mut tx, kind, payment_json(&p), at).await?);
            }
            tx.commit().await?;
            settled += 1;
            self.deliver_now(&events).await;
        }
        for r in refunds {
            let mut tx = self.db.begin_write().await?;
            if !store::settle_refund(&mut tx, &r.id).await? {
                continue;
            }
            let mut events = vec![];
            if let Some(p) = store::payment(&mut tx, &r.payment_id).await? {
                let at = crate::clock::now_unix();
                events.push(outbox::write(&mut tx, "charge.refunded", charge_json(&p), at).await?);
            }
            tx.commit().await?;
            settled += 1;
            self.deliver_now(&events).await;
        }
        Ok(settled)
    }

    /// Records one attempt on checkout `id`. The checkout is read here, in the write
    /// transaction, not taken from before the card was checked: a concurrent submit may have
    /// completed or expired it meanwhile, and a completed checkout and its payment never change
    /// again (every write below is guarded by the checkout being open).
    async fn record_attempt(&self, id: &str, a: Attempt) -> Result<Recorded, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let Some(s) = store::session(&mut tx, id).await? else {
            return Ok(Recorded::NotFound);
        };
        // One payment per checkout, its attempts recorded on it (as a PaymentIntent's are).
        let Some(pi) = store::claim_payment_id(&mut tx, id, &sandbox_id("pi")).await? else {
            drop(tx);
            return self.not_open(id).await;
        };
        let mut p = PaymentRow {
            id: pi,
            session_id: Some(s.id.clone()),
            amount_cents: s.amount_cents,
            currency: CURRENCY.to_owned(),
            status: "succeeded".into(),
            method: a.method.as_str().to_owned(),
            brand: a.brand,
            last4: a.last4,
            created: a.now,
            last_error: None,
            settles_at: None,
            settle_to: None,
            amount_refunded: 0,
            dispute_id: None,
            // As the metadata of a PaymentIntent made by a Checkout Session carries it.
            checkout_ref: Some(s.client_reference_id.clone()),
            statement_ref: None,
            customer_id: None,
            payment_method_id: None,
            idempotency_key: None,
        };
        match a.outcome {
            Outcome::Paid => match s.misreport() {
                Some(Misreport::Charge { amount, currency }) => {
                    p.amount_cents = amount.cents();
                    p.currency = currency;
                }
                Some(Misreport::FailAfterCompleting) => {
                    p.status = "failed".into();
                    p.last_error = Some(store::decline_code(DeclineReason::Generic).into());
                }
                None => {}
            },
            Outcome::Declined(reason) => {
                p.status = "failed".into();
                p.last_error = Some(store::decline_code(reason).into());
            }
            Outcome::Debit { fails } => {
                p.status = "processing".into();
                p.settles_at = Some(a.now.saturating_add(self.settle_after));
                p.settle_to = Some(if fails { "failed" } else { "succeeded" }.into());
            }
        }
        store::upsert_payment(&mut tx, &p).await?;
        if let Outcome::Declined(_) = a.outcome {
            tx.commit().await?;
            return Ok(Recorded::Declined(s.cancel_url));
        }
        // A bank debit completes the checkout unpaid: its money arrives when it settles.
        let paid = a.outcome == Outcome::Paid;
        if !store::complete_session(&mut tx, id, paid).await? {
            drop(tx);
            return self.not_open(id).await;
        }
        let Some(done) = store::session(&mut tx, id).await? else {
            return Ok(Recorded::NotFound);
        };
        let event = outbox::write(
            &mut tx,
            "checkout.session.completed",
            self.session_json(&done),
            a.now,
        )
        .await?;
        tx.commit().await?;
        let url = done.success_url.replace("{CHECKOUT_SESSION_ID}", &done.id);
        Ok(Recorded::Completed(url, vec![event]))
    }

    async fn not_open(&self, id: &str) -> Result<Recorded, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(match store::session(&mut conn, id).await? {
            Some(s) => Recorded::NotOpen(Box::new(s)),
            None => Recorded::NotFound,
        })
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        store::session(&mut conn, id).await
    }

    /// Saves a new open checkout (payment or setup mode) under its idempotency key; the same
    /// key again answers with the checkout it made.
    async fn open_session(
        &self,
        key: &str,
        s: &SessionRow,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        if let Some(existing) = store::session_for_key(&mut tx, key)
            .await
            .map_err(unavailable)?
        {
            return Ok(self.to_checkout(&existing));
        }
        match store::insert_session(&mut tx, key, s).await {
            Ok(()) => {
                tx.commit().await.map_err(unavailable)?;
                Ok(self.to_checkout(s))
            }
            // The same key from a concurrent call (PostgreSQL): its checkout is the answer.
            Err(e) => {
                drop(tx);
                let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
                match store::session_for_key(&mut conn, key).await {
                    Ok(Some(existing)) => Ok(self.to_checkout(&existing)),
                    _ => Err(unavailable(e)),
                }
            }
        }
    }

    fn checkout_url(&self, id: &str) -> String {
        format!("{}/checkout/{id}", self.public_url)
    }

    fn to_checkout(&self, s: &SessionRow) -> ProcessorCheckout {
        ProcessorCheckout {
            id: s.id.clone(),
            url: self.checkout_url(&s.id),
            status: s.status(),
            paid: s.paid(),
            amount_total: s.amount(),
            client_reference_id: Some(s.client_reference_id.clone()),
            payment_intent: s.payment_intent.clone(),
        }
    }
}

fn to_refund(r: RefundRow) -> ProcessorRefund {
    ProcessorRefund {
        status: r.status(),
        id: r.id,
        payment: r.payment_id,
        amount: Money::from_cents(r.amount_cents),
        currency: r.currency,
        refund_ref: r.refund_ref,
        created: r.created,
    }
}

#[async_trait]
impl PaymentProcessor for Arc<Sandbox> {
    fn is_test_mode(&self) -> bool {
        true
    }

    fn checkout_origin(&self) -> String {
        self.public_url.clone()
    }

    async fn create_checkout(
        &self,
        req: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        if !req.amount.is_positive() {
            return Err(ProcessorError::Rejected("amount must be positive".into()));
        }
        if !req.success_url.contains("{CHECKOUT_SESSION_ID}") {
            return Err(ProcessorError::Rejected(
                "success_url lacks {CHECKOUT_SESSION_ID}".into(),
            ));
        }
        let now = crate::clock::now_unix();
        let s = SessionRow {
            id: sandbox_id("cs"),
            amount_cents: req.amount.cents(),
            client_reference_id: req.checkout_ref.as_str().to_owned(),
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            status: "open".into(),
            paid: 0,
            payment_intent: None,
            csrf: crate::crypto::random_token(),
            bank_debit: i64::from(req.bank_debit),
            created: now,
            expires_at: now + 24 * 3600,
            misreport: None,
            misreport_amount_cents: None,
            misreport_currency: None,
            mode: "payment".into(),
            customer_id: None,
            setup_intent: None,
            merchant: (!req.merchant_name.is_empty()).then(|| req.merchant_name.clone()),
        };
        self.open_session(idempotency_key, &s).await
    }

    async fn retrieve_checkout(&self, id: &str) -> Result<ProcessorCheckout, ProcessorError> {
        self.session(id)
            .await
            .map_err(unavailable)?
            .map(|s| self.to_checkout(&s))
            .ok_or(ProcessorError::NotFound)
    }

    async fn retrieve_payment(&self, id: &str) -> Result<ProcessorPayment, ProcessorError> {
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        let p = store::payment(&mut conn, id)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        Ok(to_payment(p))
    }

    async fn expire_checkout(&self, id: &str) -> Result<(), ProcessorError> {
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        if store::expire_session(&mut tx, id)
            .await
            .map_err(unavailable)?
        {
            tx.commit().await.map_err(unavailable)?;
            return Ok(());
        }
        let s = store::session(&mut tx, id)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        match s.status() {
            CheckoutStatus::Complete => {
                Err(ProcessorError::Rejected("checkout already complete".into()))
            }
            _ => Ok(()),
        }
    }

    async fn create_refund(
        &self,
        req: &RefundRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorRefund, ProcessorError> {
        let now = crate::clock::now_unix();
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        if let Some(done) = store::refund_for_key(&mut tx, idempotency_key)
            .await
            .map_err(unavailable)?
        {
            return Ok(to_refund(done));
        }
        let p = store::payment(&mut tx, &req.payment)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        match p.status() {
            PaymentStatus::Succeeded => {}
            PaymentStatus::Processing => {
                return Err(ProcessorError::Rejected(
                    "the payment is still processing; refund it once it has succeeded".into(),
                ))
            }
            _ => {
                return Err(ProcessorError::Rejected(
                    "the payment did not succeed".into(),
                ))
            }
        }
        if p.dispute_id.is_some() {
            return Err(ProcessorError::Rejected("the payment is disputed".into()));
        }
        if !req.amount.is_positive()
            || !store::take_refund(&mut tx, &p.id, req.amount.cents())
                .await
                .map_err(unavailable)?
        {
            return Err(ProcessorError::Rejected(
                "the refund is more than is left of the payment".into(),
            ));
        }
        // A card refund succeeds at once; a bank debit's goes back by ACH and settles later.
        let debit = p.method() == MethodKind::UsBankAccount;
        let refund = RefundRow {
            id: sandbox_id("re"),
            payment_id: p.id.clone(),
            amount_cents: req.amount.cents(),
            currency: p.currency.clone(),
            status: if debit { "pending" } else { "succeeded" }.into(),
            refund_ref: Some(req.refund_ref.as_str().to_owned()),
            created: now,
        };
        let settles_at = debit.then(|| now.saturating_add(self.settle_after));
        if let Err(e) = store::insert_refund(&mut tx, &refund, idempotency_key, settles_at).await {
            // The same key from a concurrent call (PostgreSQL): its refund is the answer.
            drop(tx);
            let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
            return match store::refund_for_key(&mut conn, idempotency_key).await {
                Ok(Some(done)) => Ok(to_refund(done)),
                _ => Err(unavailable(e)),
            };
        }
        let p = store::payment(&mut tx, &p.id)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        let event = outbox::write(&mut tx, "charge.refunded", charge_json(&p), now)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.deliver_now(&[event]).await;
        Ok(to_refund(refund))
    }

    async fn list_refunds(&self, payment: &str) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        if store::payment(&mut conn, payment)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(ProcessorError::NotFound);
        }
        let refunds = store::refunds_of(&mut conn, payment)
            .await
            .map_err(unavailable)?;
        Ok(refunds.into_iter().map(to_refund).collect())
    }

    async fn retrieve_dispute(&self, id: &str) -> Result<ProcessorDispute, ProcessorError> {
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        let d = store::dispute(&mut conn, id)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        Ok(to_dispute(d))
    }

    async fn create_customer(
        &self,
        member_ref: &str,
        idempotency_key: &str,
    ) -> Result<String, ProcessorError> {
        self.new_customer(member_ref, idempotency_key).await
    }

    async fn create_setup_checkout(
        &self,
        req: &SetupRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        self.new_setup(req, idempotency_key).await
    }

    async fn list_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        self.cards_of(customer).await
    }

    async fn remove_card(&self, customer: &str, card: &str) -> Result<(), ProcessorError> {
        self.detach(customer, card).await
    }

    async fn charge_saved_card(
        &self,
        req: &OffSessionCharge,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProcessorError> {
        self.charge_saved(req, idempotency_key).await
    }

    async fn list_payments(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorPayment>, ProcessorError> {
        self.payments_between(since, until).await
    }

    async fn list_refunds_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        self.refunds_between(since, until).await
    }

    async fn list_disputes(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorDispute>, ProcessorError> {
        self.disputes_between(since, until).await
    }
}

#[cfg(test)]
mod tests;
