//! Refunds: what the processor refunded, booked on our ledger once (split over the statements
//! the payment paid), whether we asked for it or someone did in the processor's dashboard.

use super::booking::WEBHOOK_ACTOR;
use super::events::EventOutcome;
use super::{PaymentError, PaymentProcessor, ProcessorError, ProcessorRefund, RefundStatus};
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::{PatientId, PaymentId, RefundId, TenantId};

/// Brings our refunds of the processor's payment `processor_payment` in line with the
/// processor's: new ones recorded (those made in its dashboard too), settled ones booked on
/// the ledger, failed ones marked. Safe to repeat and to run twice at once.
pub async fn sync(
    db: &Db,
    processor: &dyn PaymentProcessor,
    processor_payment: &str,
    now: i64,
) -> Result<EventOutcome, PaymentError> {
    let ours: Option<(String, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM payments WHERE processor_payment_id = $1")
            .bind(processor_payment)
            .fetch_optional(db.pool())
            .await?;
    let Some((payment, tenant)) = ours else {
        return Ok(EventOutcome::NoChange);
    };
    let (payment, tenant) = (PaymentId::from_db(payment), TenantId::from_db(tenant));
    let refunds = match processor.list_refunds(processor_payment).await {
        Ok(r) => r,
        Err(ProcessorError::NotFound) => return Ok(EventOutcome::NoChange),
        Err(e) => return Err(e.into()),
    };
    let mut booked = 0;
    for refund in &refunds {
        let id = match find_or_adopt(db, &tenant, &payment, refund, now).await? {
            Some(id) => id,
            None => continue,
        };
        if settle(db, &id, refund, now).await? {
            booked += 1;
        }
    }
    Ok(if booked > 0 {
        EventOutcome::Refunded(booked)
    } else {
        EventOutcome::NoChange
    })
}

/// Our record of a processor refund: found by its processor id, or by our id in its metadata
/// (a crash between asking and saving the answer), or recorded now as made at the processor.
async fn find_or_adopt(
    db: &Db,
    tenant: &TenantId,
    payment: &PaymentId,
    refund: &ProcessorRefund,
    now: i64,
) -> Result<Option<RefundId>, sqlx::Error> {
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM refunds WHERE processor_refund_id = $1")
            .bind(&refund.id)
            .fetch_optional(db.pool())
            .await?;
    if let Some(id) = known {
        return Ok(Some(RefundId::from_db(id)));
    }
    if let Some(ours) = refund.refund_ref.as_deref().and_then(RefundId::parse) {
        let adopted = sqlx::query(
            "UPDATE refunds SET processor_refund_id = $1 WHERE id = $2 AND payment_id = $3 AND processor_refund_id IS NULL",
        )
        .bind(&refund.id)
        .bind(ours.as_str())
        .bind(payment.as_str())
        .execute(db.pool())
        .await?
        .rows_affected();
        if adopted == 1 {
            return Ok(Some(ours));
        }
    }
    if !refund.amount.is_positive() {
        return Ok(None);
    }
    let id = RefundId::generate();
    sqlx::query(
        "INSERT INTO refunds (id, tenant_id, payment_id, amount_cents, reason, idempotency_key,
             processor_refund_id, status, requested_by, created_at)
         VALUES ($1, $2, $3, $4, 'made_at_processor', $5, $6, 'pending', $7, $8)
         ON CONFLICT (processor_refund_id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(payment.as_str())
    .bind(refund.amount.cents())
    .bind(format!("processor-{}", refund.id))
    .bind(&refund.id)
    .bind(WEBHOOK_ACTOR)
    .bind(now)
    .execute(db.pool())
    .await?;
    // Whoever inserted it (this call or a concurrent one), it is the row to settle.
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM refunds WHERE processor_refund_id = $1")
            .bind(&refund.id)
            .fetch_optional(db.pool())
            .await?;
    Ok(id.map(RefundId::from_db))
}

/// Moves our refund `id` to the processor's status. A refund that succeeded is booked on the
/// ledger (true), split over the payment's statements in order, each up to what that statement
/// received less what was refunded before. Succeeded and failed are final.
pub(crate) async fn settle(
    db: &Db,
    id: &RefundId,
    refund: &ProcessorRefund,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let to = match refund.status {
        RefundStatus::Succeeded => "succeeded",
        RefundStatus::Failed | RefundStatus::Canceled => "failed",
        RefundStatus::Pending => {
            sqlx::query(
                "UPDATE refunds SET status = 'pending' WHERE id = $1 AND status = 'requested'",
            )
            .bind(id.as_str())
            .execute(db.pool())
            .await?;
            return Ok(false);
        }
    };
    let mut tx = db.begin_write().await?;
    let moved = sqlx::query(
        "UPDATE refunds SET status = $1, settled_at = $2 WHERE id = $3 AND status IN ('requested', 'pending')",
    )
    .bind(to)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 || to == "failed" {
        tx.commit().await?;
        return Ok(false);
    }
    let (payment, tenant, amount, requested_by): (String, String, i64, String) = sqlx::query_as(
        "SELECT payment_id, tenant_id, amount_cents, requested_by FROM refunds WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // What each statement received from this payment, less refunds booked before.
    let shares: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT a.statement_id, a.amount_cents,
                CAST(COALESCE((SELECT SUM(l.amount_cents) FROM ledger_entries l
                     WHERE l.payment_id = a.payment_id AND l.statement_id = a.statement_id
                       AND l.kind = 'refund'), 0) AS BIGINT)
         FROM payment_allocations a WHERE a.payment_id = $1 ORDER BY a.statement_id",
    )
    .bind(&payment)
    .fetch_all(&mut *tx)
    .await?;
    let mut left = amount;
    let actor = Actor::system(if requested_by.starts_with("system:") {
        WEBHOOK_ACTOR
    } else {
        "system:refunds"
    });
    for (statement, received, refunded) in shares {
        let take = left.min(received - refunded);
        if take <= 0 {
            continue;
        }
        left -= take;
        sqlx::query(
            "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, payment_id, refund_id, created_at)
             VALUES ($1, $2, 'refund', $3, $4, $5, $6)",
        )
        .bind(&tenant)
        .bind(&statement)
        .bind(take)
        .bind(&payment)
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let patient: String = sqlx::query_scalar("SELECT patient_id FROM statements WHERE id = $1")
            .bind(&statement)
            .fetch_one(&mut *tx)
            .await?;
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                tenant: Some(&TenantId::from_db(tenant.clone())),
                patient: Some(&PatientId::from_db(patient)),
                action: "payment.refund.booked",
                resource: Some(id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    if left > 0 {
        // The processor refunded more than the payment's statements received (it would not,
        // but the ledger must not invent money): the rest stays off the ledger, for a person.
        tracing::error!(refund = %id, left, "refund exceeds what the payment's statements received");
    }
    tx.commit().await?;
    Ok(true)
}
