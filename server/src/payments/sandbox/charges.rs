//! Off-session charges of saved cards (a payment plan's instalments): one payment per
//! idempotency key, succeeded, declined or waiting for authentication as the card's test number
//! decided when it was saved, reported by Stripe-shaped events from the outbox. And the window
//! listings reconciliation reads: payments, refunds and disputes created in `[since, until)`.

use super::cards::Behaviour;
use super::objects::payment_json;
use super::store::{self, DisputeRow, PaymentRow, RefundRow, PAYMENT_COLUMNS, REFUND_COLUMNS};
use super::{outbox, sandbox_id, to_refund, unavailable, Sandbox};
use crate::money::Money;
use crate::payments::{
    ChargeOutcome, DeclineReason, OffSessionCharge, PaymentStatus, ProcessorDispute,
    ProcessorError, ProcessorPayment, ProcessorRefund, CURRENCY,
};
use sqlx::AnyConnection;

/// A payment as the trait reports it.
pub(super) fn to_payment(p: PaymentRow) -> ProcessorPayment {
    let status = p.status();
    ProcessorPayment {
        status,
        amount: p.amount(),
        amount_received: if status == PaymentStatus::Succeeded {
            p.amount()
        } else {
            Money::ZERO
        },
        method: p.method(),
        last_error: p.last_error(),
        id: p.id,
        currency: p.currency,
        card_brand: p.brand,
        card_last4: p.last4,
        created: p.created,
        checkout_ref: p.checkout_ref,
    }
}

pub(super) fn to_dispute(d: DisputeRow) -> ProcessorDispute {
    ProcessorDispute {
        id: d.id,
        payment: d.payment_id,
        amount: Money::from_cents(d.amount_cents),
        currency: d.currency,
        status: d.status,
        reason: d.reason,
        created: d.created,
    }
}

/// What a charge's payment came to.
fn outcome(p: PaymentRow) -> ChargeOutcome {
    match p.status.as_str() {
        "requires_action" => ChargeOutcome::AuthenticationRequired {
            payment: Some(p.id),
        },
        "failed" => ChargeOutcome::Declined {
            reason: p.last_error().unwrap_or(DeclineReason::Generic),
            payment: Some(p.id),
        },
        _ => ChargeOutcome::Paid(to_payment(p)),
    }
}

/// The answer to a key used before: that charge's outcome, when the request is the same one
/// (Stripe refuses a key reused with other parameters).
fn answer_again(p: PaymentRow, req: &OffSessionCharge) -> Result<ChargeOutcome, ProcessorError> {
    let same = p.customer_id.as_deref() == Some(req.customer.as_str())
        && p.payment_method_id.as_deref() == Some(req.card.as_str())
        && p.amount_cents == req.amount.cents()
        && p.checkout_ref.as_deref() == Some(req.checkout_ref.as_str());
    if same {
        Ok(outcome(p))
    } else {
        Err(ProcessorError::Rejected(
            "idempotency key reused with other parameters".into(),
        ))
    }
}

async fn payment_for_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM sandbox_payments WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct CardRow {
    brand: String,
    last4: String,
    behaviour: String,
}

/// The card, if it is the customer's and not removed.
async fn attached_card(
    conn: &mut AnyConnection,
    customer: &str,
    card: &str,
) -> Result<Option<CardRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT brand, last4, behaviour FROM sandbox_payment_methods
         WHERE id = $1 AND customer_id = $2 AND detached = 0",
    )
    .bind(card)
    .bind(customer)
    .fetch_optional(conn)
    .await
}

impl Sandbox {
    /// Charges a saved card at once, the member away. The payment and its event are written in
    /// one transaction, the key looked up in it first, so a retry (or a concurrent call) with the
    /// same key answers with the first charge and never makes a second.
    pub(super) async fn charge_saved(
        &self,
        req: &OffSessionCharge,
        key: &str,
    ) -> Result<ChargeOutcome, ProcessorError> {
        if !req.amount.is_positive() {
            return Err(ProcessorError::Rejected("amount must be positive".into()));
        }
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        if let Some(done) = payment_for_key(&mut tx, key).await.map_err(unavailable)? {
            return answer_again(done, req);
        }
        let card = attached_card(&mut tx, &req.customer, &req.card)
            .await
            .map_err(unavailable)?
            .ok_or(ProcessorError::NotFound)?;
        let behaviour = Behaviour::parse(&card.behaviour)
            .ok_or_else(|| ProcessorError::Unavailable("unknown saved card behaviour".into()))?;
        // As Stripe leaves an off-session PaymentIntent: succeeded; waiting for the payer's
        // authentication; or declined, needing another payment method.
        let (status, last_error, event) = match behaviour {
            Behaviour::Succeeds => ("succeeded", None, "payment_intent.succeeded"),
            Behaviour::AuthenticationRequired => {
                ("requires_action", None, "payment_intent.requires_action")
            }
            Behaviour::Declines(reason) => (
                "failed",
                Some(store::decline_code(reason).to_owned()),
                "payment_intent.payment_failed",
            ),
        };
        let now = crate::clock::now_unix();
        let p = PaymentRow {
            id: sandbox_id("pi"),
            session_id: None,
            amount_cents: req.amount.cents(),
            currency: CURRENCY.to_owned(),
            status: status.into(),
            method: "card".into(),
            brand: card.brand,
            last4: card.last4,
            created: now,
            last_error,
            settles_at: None,
            settle_to: None,
            amount_refunded: 0,
            dispute_id: None,
            checkout_ref: Some(req.checkout_ref.as_str().to_owned()),
            statement_ref: Some(req.statement_ref.clone()),
            customer_id: Some(req.customer.clone()),
            payment_method_id: Some(req.card.clone()),
            idempotency_key: Some(key.to_owned()),
        };
        if let Err(e) = store::upsert_payment(&mut tx, &p).await {
            // The same key from a concurrent call (PostgreSQL): its charge is the answer.
            drop(tx);
            let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
            return match payment_for_key(&mut conn, key).await {
                Ok(Some(done)) => answer_again(done, req),
                _ => Err(unavailable(e)),
            };
        }
        let event = outbox::write(&mut tx, event, payment_json(&p), now)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.deliver_now(&[event]).await;
        Ok(outcome(p))
    }

    /// Rows of one sandbox table created in `[since, until)`, oldest first: `select` names the
    /// columns and the table, the window is added here.
    async fn created_between<T>(
        &self,
        select: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<T>, ProcessorError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        sqlx::query_as(&format!(
            "{select} WHERE created >= $1 AND created < $2 ORDER BY created, id"
        ))
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await
        .map_err(unavailable)
    }

    pub(super) async fn payments_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorPayment>, ProcessorError> {
        let select = format!("SELECT {PAYMENT_COLUMNS} FROM sandbox_payments");
        let rows: Vec<PaymentRow> = self.created_between(&select, since, until).await?;
        Ok(rows.into_iter().map(to_payment).collect())
    }

    pub(super) async fn refunds_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        let select = format!("SELECT {REFUND_COLUMNS} FROM sandbox_refunds");
        let rows: Vec<RefundRow> = self.created_between(&select, since, until).await?;
        Ok(rows.into_iter().map(to_refund).collect())
    }

    pub(super) async fn disputes_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorDispute>, ProcessorError> {
        let select = "SELECT id, payment_id, amount_cents, currency, status, reason, created
             FROM sandbox_disputes";
        let rows: Vec<DisputeRow> = self.created_between(select, since, until).await?;
        Ok(rows.into_iter().map(to_dispute).collect())
    }
}
