//! Refunds: what the processor refunded, booked on our ledger once (split over the statements
//! the payment paid), whether we asked for it or someone did in the processor's dashboard.

use super::booking::WEBHOOK_ACTOR;
use super::events::EventOutcome;
use super::{
    PaymentError, PaymentProcessor, ProcessorError, ProcessorRefund, RefundReason, RefundRequest,
    RefundStatus,
};
use crate::access::{Action, Permit};
use crate::audit::{self, Actor, Outcome};
use crate::db::{Backend, Db};
use crate::ids::{PatientId, PaymentId, RefundId, StatementId, TenantId};
use crate::money::Money;

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
    let (payment, tenant, amount, requested_by, for_patient): (
        String,
        String,
        i64,
        String,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT payment_id, tenant_id, amount_cents, requested_by, for_patient FROM refunds
         WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // What each statement received from this payment, less refunds booked before; the
    // statements of the patient it was issued for first, then in statement order.
    let shares: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT a.statement_id, a.amount_cents,
                CAST(COALESCE((SELECT SUM(l.amount_cents) FROM ledger_entries l
                     WHERE l.payment_id = a.payment_id AND l.statement_id = a.statement_id
                       AND l.kind = 'refund'), 0) AS BIGINT)
         FROM payment_allocations a JOIN statements s ON s.id = a.statement_id
         WHERE a.payment_id = $1
         ORDER BY CASE WHEN s.patient_id = $2 THEN 0 ELSE 1 END, a.statement_id",
    )
    .bind(&payment)
    .bind(for_patient)
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
        let patient =
            super::booking::patient_of(&mut tx, &StatementId::from_db(statement.clone())).await?;
        audit::record(
            &mut *tx,
            audit::Event {
                actor: &actor,
                tenant: Some(&TenantId::from_db(tenant.clone())),
                patient: Some(&patient),
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

/// A refund a practice admin asks for, under the permit the policy gave them for it.
pub struct IssueRefund<'a> {
    /// A permit for `Action::IssueRefund` in the payment's practice.
    pub permit: &'a Permit,
    pub payment: PaymentId,
    pub amount: Money,
    pub reason: RefundReason,
    pub now: i64,
}

/// Why a refund was not issued. Each refusal is its own variant so staff are told exactly
/// what stands in the way; nothing was sent to the processor for any of the first six.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such payment in this practice")]
    NotFound,
    #[error("a refund must be more than zero")]
    NotPositive,
    #[error("the refund is more than is left of the payment ({left} left)")]
    MoreThanLeft { left: Money },
    #[error("the bank payment is still processing")]
    Processing,
    #[error("the payment did not go through")]
    PaymentFailed,
    #[error("the payment is disputed")]
    Disputed,
    /// The processor refused; our refund is marked failed.
    #[error("the processor refused the refund: {0}")]
    Refused(String),
    /// The processor could not be reached. The refund stays requested (its amount reserved):
    /// the processor may have made it, and its `charge.refunded` event settles it if so.
    #[error("the processor could not be reached: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Issues a refund: checks it against what is left of the payment, records it as requested
/// (with its idempotency key) before asking the processor, then saves the processor's answer
/// and books it when it succeeded. Audited as `payment.refund.issue`, success or failure, for
/// each patient whose statement the payment paid.
pub async fn issue(
    db: &Db,
    processor: &dyn PaymentProcessor,
    req: IssueRefund<'_>,
    actor: &Actor,
) -> Result<RefundId, RefundError> {
    let id = RefundId::generate();
    let reserved = reserve(db, &req, &id, actor).await;
    let (processor_payment, patients) = match reserved {
        Ok(v) => v,
        Err(e) => {
            if !matches!(e, RefundError::NotFound | RefundError::Db(_)) {
                let patients = patients_of(db, &req.payment).await?;
                audit_issue(db, actor, req.permit, &patients, None, Outcome::Failure).await?;
            }
            return Err(e);
        }
    };
    let ask = RefundRequest {
        payment: processor_payment,
        amount: req.amount,
        reason: req.reason,
        refund_ref: id.clone(),
    };
    let answer = processor.create_refund(&ask, &idempotency_key(&id)).await;
    let result = match answer {
        Ok(refund) => {
            record_answer(db, &id, &refund, req.now).await?;
            if matches!(refund.status, RefundStatus::Failed | RefundStatus::Canceled) {
                Err(RefundError::Refused(
                    "the processor marked it failed".into(),
                ))
            } else {
                Ok(id.clone())
            }
        }
        Err(ProcessorError::Unavailable(why)) => Err(RefundError::Unavailable(why)),
        Err(ProcessorError::Rejected(why)) => {
            mark_failed(db, &id, req.now).await?;
            Err(RefundError::Refused(why))
        }
        Err(ProcessorError::NotFound) => {
            mark_failed(db, &id, req.now).await?;
            Err(RefundError::Refused(
                "the processor does not know the payment".into(),
            ))
        }
    };
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit_issue(db, actor, req.permit, &patients, Some(&id), outcome).await?;
    if let Err(e) = &result {
        tracing::warn!(refund = %id, error = %e, "refund not issued");
    }
    result
}

/// How long a refund may stay requested without the processor's answer before it is asked
/// again (the first call may still be under way before that).
pub const RESUME_AFTER_SECS: i64 = 300;

/// Refunds recorded as requested whose processor call never answered (unreachable, or a crash
/// between saving the row and the call), older than `RESUME_AFTER_SECS`: each is looked for at
/// the processor by our id and, if it is not there, asked for again with its saved idempotency
/// key and amount, then settled. With `dry_run`, only counts them. Returns how many there were.
pub async fn resume_requested(
    db: &Db,
    processor: &dyn PaymentProcessor,
    now: i64,
    dry_run: bool,
) -> Result<usize, PaymentError> {
    type Row = (String, String, i64, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.id, p.processor_payment_id, r.amount_cents, r.reason, r.idempotency_key
         FROM refunds r JOIN payments p ON p.id = r.payment_id
         WHERE r.status = 'requested' AND r.processor_refund_id IS NULL AND r.created_at < $1
         ORDER BY r.created_at, r.id",
    )
    .bind(now - RESUME_AFTER_SECS)
    .fetch_all(db.pool())
    .await?;
    if dry_run {
        return Ok(rows.len());
    }
    for (id, payment, cents, reason, key) in &rows {
        let id = RefundId::from_db(id.clone());
        // Made after all (its event lost): adopted by our id in its metadata, and booked.
        sync(db, processor, payment, now).await?;
        let adopted: Option<String> =
            sqlx::query_scalar("SELECT processor_refund_id FROM refunds WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(db.pool())
                .await?;
        if adopted.is_some() {
            continue;
        }
        let Some(reason) = RefundReason::parse(reason) else {
            continue;
        };
        let ask = RefundRequest {
            payment: payment.clone(),
            amount: Money::from_cents(*cents),
            reason,
            refund_ref: id.clone(),
        };
        match processor.create_refund(&ask, key).await {
            Ok(refund) => record_answer(db, &id, &refund, now).await?,
            Err(ProcessorError::Rejected(why)) => {
                tracing::warn!(refund = %id, why = %why, "a resumed refund was refused");
                mark_failed(db, &id, now).await?;
            }
            Err(ProcessorError::NotFound) => mark_failed(db, &id, now).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rows.len())
}

/// Saves the processor's answer to our refund `id` (its id, unless the processor's event adopted
/// our row first: it carries our id) and settles it.
async fn record_answer(
    db: &Db,
    id: &RefundId,
    refund: &ProcessorRefund,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET processor_refund_id = $1 WHERE id = $2 AND processor_refund_id IS NULL",
    )
    .bind(&refund.id)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    settle(db, id, refund, now).await?;
    Ok(())
}

/// The key the processor dedupes our refund by, saved with the row before the call.
fn idempotency_key(id: &RefundId) -> String {
    format!("refund-{id}")
}

/// Checks the refund and inserts it as requested, in one write transaction holding the payment
/// row (PostgreSQL: `FOR UPDATE`; SQLite: the database's single writer), so two admins refunding
/// at once cannot both take what is left. Returns the processor's payment id and the patients.
async fn reserve(
    db: &Db,
    req: &IssueRefund<'_>,
    id: &RefundId,
    actor: &Actor,
) -> Result<(String, Vec<PatientId>), RefundError> {
    if req.permit.action() != Action::IssueRefund {
        return Err(RefundError::NotFound);
    }
    if !req.amount.is_positive() {
        return Err(RefundError::NotPositive);
    }
    let mut tx = db.begin_write().await?;
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let row: Option<(String, i64, String)> = sqlx::query_as(&format!(
        "SELECT processor_payment_id, amount_cents, status FROM payments
         WHERE id = $1 AND tenant_id = $2{lock}"
    ))
    .bind(req.payment.as_str())
    .bind(req.permit.tenant().as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((processor_payment, amount, status)) = row else {
        return Err(RefundError::NotFound);
    };
    match status.as_str() {
        "succeeded" => {}
        "processing" => return Err(RefundError::Processing),
        _ => return Err(RefundError::PaymentFailed),
    }
    let disputed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM disputes WHERE payment_id = $1 AND status <> 'won'",
    )
    .bind(req.payment.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if disputed > 0 {
        return Err(RefundError::Disputed);
    }
    let taken: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM refunds
         WHERE payment_id = $1 AND status <> 'failed'",
    )
    .bind(req.payment.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let left = Money::from_cents(amount - taken);
    if req.amount > left {
        return Err(RefundError::MoreThanLeft { left });
    }
    sqlx::query(
        "INSERT INTO refunds (id, tenant_id, payment_id, amount_cents, reason, idempotency_key,
             status, requested_by, created_at, for_patient)
         VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $9)",
    )
    .bind(id.as_str())
    .bind(req.permit.tenant().as_str())
    .bind(req.payment.as_str())
    .bind(req.amount.cents())
    .bind(req.reason.as_str())
    .bind(idempotency_key(id))
    .bind(&actor.id)
    .bind(req.now)
    .bind(req.permit.patient().map(|p| p.as_str().to_owned()))
    .execute(&mut *tx)
    .await?;
    let patients = patients_in(&mut tx, &req.payment).await?;
    tx.commit().await?;
    Ok((processor_payment, patients))
}

async fn mark_failed(db: &Db, id: &RefundId, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET status = 'failed', settled_at = $1 WHERE id = $2 AND status IN ('requested', 'pending')",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The patients whose statements a payment paid, each once.
async fn patients_in(
    conn: &mut sqlx::AnyConnection,
    payment: &PaymentId,
) -> Result<Vec<PatientId>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT s.patient_id FROM payment_allocations a
         JOIN statements s ON s.id = a.statement_id WHERE a.payment_id = $1 ORDER BY s.patient_id",
    )
    .bind(payment.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(PatientId::from_db).collect())
}

async fn patients_of(db: &Db, payment: &PaymentId) -> Result<Vec<PatientId>, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    patients_in(&mut conn, payment).await
}

async fn audit_issue(
    db: &Db,
    actor: &Actor,
    permit: &Permit,
    patients: &[PatientId],
    refund: Option<&RefundId>,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    for p in patients {
        audit::record(
            db.pool(),
            audit::Event {
                actor,
                tenant: Some(permit.tenant()),
                patient: Some(p),
                action: "payment.refund.issue",
                resource: refund.map(RefundId::as_str),
                outcome,
            },
        )
        .await?;
    }
    Ok(())
}
