//! What a processor event means for our records: each event is only a trigger, its object is
//! re-fetched from the processor and our records moved forward to match, whatever the order
//! or number of deliveries.

use super::booking::{self, Booked, Take, WEBHOOK_ACTOR};
use super::checkout::close_live;
use super::jobs::Job;
use super::{
    close_checkout, find_checkout, find_checkout_by_session, payment_if_known, CheckoutRow,
    CheckoutState, CheckoutStatus, PaymentError, PaymentProcessor, PaymentStatus,
    ProcessorCheckout, ProcessorError, ProcessorPayment, CURRENCY,
};
use crate::alerts::AlertSink;
use crate::db::Db;
use crate::group_commit::GroupWriter;
use crate::ids::CheckoutId;
use crate::money::Money;

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
    /// Charges and disputes name their payment: a key to re-fetch by, nothing more.
    #[serde(default)]
    pub payment_intent: Option<serde_json::Value>,
}

impl EventObject {
    /// The payment this object names, when it names one by id.
    pub fn payment_ref(&self) -> Option<&str> {
        self.payment_intent.as_ref().and_then(|v| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// A payment was recorded in the ledger (a bank debit as processing).
    Recorded,
    /// A bank debit that was processing succeeded.
    Settled,
    /// A bank debit that was processing failed: its reversal is on the ledger.
    Reversed,
    /// Refunds the processor made were booked (how many).
    Refunded(usize),
    /// A dispute was opened on one of our payments: the caller raises this alert.
    Disputed(Unbooked),
    /// It moved no money (already recorded, unpaid, expired, a type we do not act on).
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
pub(crate) fn ident(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(80)
        .collect()
}

impl Unbooked {
    pub const NOT_SUCCEEDED: &'static str = "payment-not-succeeded";
    pub const MISMATCH: &'static str = "payment-amount-mismatch";
    pub const DISPUTED: &'static str = "payment-disputed";

    pub(crate) fn disputed(
        dispute: &super::ProcessorDispute,
        ours: &crate::ids::PaymentId,
    ) -> Unbooked {
        Unbooked {
            kind: Self::DISPUTED,
            detail: format!(
                "processor dispute {} ({}, {} {}) opened on payment {} (our payment {ours}); respond in the processor's dashboard",
                ident(&dispute.id),
                ident(&dispute.reason),
                dispute.amount.cents(),
                ident(&dispute.currency),
                ident(&dispute.payment),
            ),
        }
    }

    pub(crate) fn not_succeeded(
        checkout: &CheckoutId,
        session: &str,
        payment: Option<&str>,
    ) -> Unbooked {
        Unbooked {
            kind: Self::NOT_SUCCEEDED,
            detail: format!(
                "processor checkout {} (our checkout {checkout}) is complete but its payment {} did not succeed; nothing was booked for it",
                ident(session),
                payment.map_or_else(|| "(none)".to_owned(), ident),
            ),
        }
    }

    fn mismatch(
        checkout: &CheckoutRow,
        expected: Money,
        payment: &ProcessorPayment,
        taken: Money,
    ) -> Unbooked {
        Unbooked {
            kind: Self::MISMATCH,
            detail: format!(
                "processor payment {} for our checkout {} was not booked: it received {} {} where the checkout asked for {} {} ({} {CURRENCY} over its statements)",
                ident(&payment.id),
                checkout.id,
                taken.cents(),
                ident(&payment.currency),
                checkout.amount.cents(),
                CURRENCY,
                expected.cents(),
            ),
        }
    }

    /// Records the alert, unless this very one was raised before.
    pub async fn raise(&self, db: &Db, alerts: &AlertSink, now: i64) -> Result<(), sqlx::Error> {
        alerts
            .raise_once(db, None, self.kind, &self.detail, now)
            .await
    }
}

/// Works one stored event. Safe under duplicates, reordering, retries and two workers at once:
/// the object is re-fetched, a payment is keyed by its processor id, and every move is forward
/// only and guarded in the database. `now` stamps what is recorded.
pub(crate) async fn handle(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    job: &Job,
    now: i64,
) -> Result<EventOutcome, PaymentError> {
    match job.event_type.as_str() {
        // Whichever of these arrives (and in whatever order), the session and its payment as
        // the processor has them now decide: book, settle, or reverse.
        "checkout.session.completed"
        | "checkout.session.async_payment_succeeded"
        | "checkout.session.async_payment_failed" => {
            let session = processor.retrieve_checkout(&job.object_id).await?;
            let payment = match &session.payment_intent {
                Some(pi) => payment_if_known(processor, pi).await?,
                None => None,
            };
            apply_session(db, group, &session, payment.as_ref(), now, WEBHOOK_ACTOR).await
        }
        "checkout.session.expired" => {
            let session = processor.retrieve_checkout(&job.object_id).await?;
            if session.status == CheckoutStatus::Expired {
                if let Some(ours) = find_checkout_by_session(db, &session.id).await? {
                    let mut tx = db.begin_write().await?;
                    close_checkout(
                        &mut tx,
                        ours.id.as_str(),
                        CheckoutState::Expired,
                        &[CheckoutState::Creating, CheckoutState::Open],
                    )
                    .await?;
                    tx.commit().await?;
                }
            }
            Ok(EventOutcome::NoChange)
        }
        // A payment we booked as processing settles or fails. One we have not booked yet is
        // booked when its metadata names one of our checkouts (an off-session charge, or a
        // hosted checkout whose session event is late); otherwise its session's event books it.
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.canceled" => match payment_if_known(processor, &job.object_id).await? {
            Some(p) => {
                if !booking::is_booked(db, &p.id).await? {
                    if let Some(checkout) = checkout_named_by(db, &p).await? {
                        return book_payment(db, group, &checkout, &p, now, WEBHOOK_ACTOR).await;
                    }
                }
                booking::follow(db, &p, now, WEBHOOK_ACTOR).await
            }
            None => Ok(EventOutcome::NoChange),
        },
        "charge.refunded" | "charge.refund.updated" | "refund.created" | "refund.updated" => {
            let Some(payment) = job.related_id.as_deref() else {
                return Err(PaymentError::BadEvent("refund event names no payment"));
            };
            super::refunds::sync(db, processor, payment, now).await
        }
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            let dispute = match processor.retrieve_dispute(&job.object_id).await {
                Ok(d) => d,
                Err(ProcessorError::NotFound) => return Ok(EventOutcome::NoChange),
                Err(e) => return Err(e.into()),
            };
            booking::record_dispute(db, &dispute, now, WEBHOOK_ACTOR).await
        }
        _ => Ok(EventOutcome::NoChange),
    }
}

/// The checkout of ours a processor payment's metadata names, if any.
pub(crate) async fn checkout_named_by(
    db: &Db,
    payment: &ProcessorPayment,
) -> Result<Option<CheckoutRow>, sqlx::Error> {
    match payment.checkout_ref.as_deref().and_then(CheckoutId::parse) {
        Some(id) => find_checkout(db, &id).await,
        None => Ok(None),
    }
}

/// Brings one of our checkouts in line with its processor session and payment.
pub(crate) async fn apply_session(
    db: &Db,
    group: &GroupWriter,
    session: &ProcessorCheckout,
    payment: Option<&ProcessorPayment>,
    now: i64,
    by: &'static str,
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
    let Some(checkout) = checkout else {
        // Unknown to us: move no money. Paid yet unknown is money taken that no ledger shows:
        // the caller raises the reconciliation alert.
        let paid = payment.is_some_and(|p| p.succeeded() && p.amount_received.is_positive());
        return Ok(if paid {
            EventOutcome::UnknownPaid
        } else {
            EventOutcome::NoChange
        });
    };
    // A payment already on our books follows the processor: settles, reverses, or stays.
    if let Some(p) = payment {
        if booking::is_booked(db, &p.id).await? {
            return booking::follow(db, p, now, by).await;
        }
    }
    if session.status != CheckoutStatus::Complete {
        return Ok(EventOutcome::NoChange);
    }
    if session.client_reference_id.as_deref() != Some(checkout.id.as_str()) {
        return Err(PaymentError::BadEvent(
            "checkout reference does not match our record",
        ));
    }
    // What is there to book: money received, or a bank debit on its way. A session the
    // processor calls paid whose payment did not succeed is refused; one unpaid and not
    // processing (a bank debit that failed before we saw it) books nothing.
    match payment {
        Some(p) if p.succeeded() && p.amount_received.is_positive() => {
            book_payment(db, group, &checkout, p, now, by).await
        }
        Some(p) if p.status == PaymentStatus::Processing && !session.paid => {
            book_payment(db, group, &checkout, p, now, by).await
        }
        other if session.paid => {
            let why =
                Unbooked::not_succeeded(&checkout.id, &session.id, other.map(|p| p.id.as_str()));
            refuse(db, &checkout.id, why).await
        }
        _ => {
            close_live(db, &checkout.id, CheckoutState::Failed).await?;
            Ok(EventOutcome::NoChange)
        }
    }
}

/// Books a processor payment that took money (or a bank debit on its way) for one of our
/// checkouts: exactly the checkout's amount over its statements, in our currency, or nothing is
/// booked and the caller raises the alert. A payment already booked follows the processor.
/// Used for hosted checkouts (after their session is checked), off-session charges and
/// reconciliation's repairs.
pub(crate) async fn book_payment(
    db: &Db,
    group: &GroupWriter,
    checkout: &CheckoutRow,
    payment: &ProcessorPayment,
    now: i64,
    by: &'static str,
) -> Result<EventOutcome, PaymentError> {
    let (status, taken) = if payment.succeeded() && payment.amount_received.is_positive() {
        (PaymentStatus::Succeeded, payment.amount_received)
    } else if payment.status == PaymentStatus::Processing {
        (PaymentStatus::Processing, payment.amount)
    } else {
        return Ok(EventOutcome::NoChange);
    };
    if payment
        .checkout_ref
        .as_deref()
        .is_some_and(|r| r != checkout.id.as_str())
    {
        return Err(PaymentError::BadEvent(
            "payment's checkout reference does not match our record",
        ));
    }
    let items = super::checkout_items(db, &checkout.id).await?;
    let expected = Money::from_cents(items.iter().map(|(_, m)| m.cents()).sum());
    // Exactly what the checkout asked for, in our currency, or nothing is booked: one statement
    // or several alike.
    if items.is_empty()
        || payment.currency != CURRENCY
        || taken != checkout.amount
        || expected != checkout.amount
    {
        let why = Unbooked::mismatch(checkout, expected, payment, taken);
        return refuse(db, &checkout.id, why).await;
    }
    let take = Take {
        payment,
        status,
        amount: taken,
    };
    match booking::record(db, group, checkout, take, &items, now, by).await? {
        Booked::New => Ok(EventOutcome::Recorded),
        Booked::Already => booking::follow(db, payment, now, by).await,
    }
}

/// Refuses to book a payment: closes the checkout as failed, so money we did not book never
/// holds the statement; the caller raises the alert and a person reconciles it.
async fn refuse(
    db: &Db,
    checkout: &CheckoutId,
    why: Unbooked,
) -> Result<EventOutcome, PaymentError> {
    close_live(db, checkout, CheckoutState::Failed).await?;
    tracing::warn!(checkout = %checkout, kind = why.kind, "payment not booked");
    Ok(EventOutcome::NotBooked(why))
}
