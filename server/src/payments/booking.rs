//! Moving money on our books: a payment booked once (as succeeded, or as a bank debit still
//! processing), a processing debit settled or reversed, a dispute flagged. Every move is
//! forward only and guarded by the database, so two workers or a repeated event change nothing.

use super::events::{EventOutcome, Unbooked};
use super::{
    close_checkout, CheckoutRow, CheckoutState, PaymentStatus, ProcessorDispute, ProcessorPayment,
};
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::group_commit::{self, GroupWriter};
use crate::ids::{DisputeId, PatientId, PaymentId, StatementId, TenantId};
use crate::money::Money;
use std::sync::Arc;

/// The actor event-driven changes are audited under.
pub(crate) const WEBHOOK_ACTOR: &str = "system:processor-webhook";
/// The actor reconciliation's repairs are audited under.
pub(crate) const RECONCILE_ACTOR: &str = "system:reconcile";

/// What a processor's payment brings to one of our checkouts: the money received, or a bank
/// debit's amount while it is processing.
pub(crate) struct Take<'a> {
    pub payment: &'a ProcessorPayment,
    pub status: PaymentStatus,
    pub amount: Money,
}

pub(crate) enum Booked {
    New,
    /// The payment was on our books already (another event, another worker).
    Already,
}

/// Whether the processor's payment `id` is on our books.
pub(crate) async fn is_booked(db: &Db, processor_payment: &str) -> Result<bool, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE processor_payment_id = $1")
            .bind(processor_payment)
            .fetch_one(db.pool())
            .await?;
    Ok(n > 0)
}

/// Books a checkout's payment with its split over the checkout's statements, all or nothing,
/// through the group writer (`group_commit::Work`): on SQLite many events book with one commit
/// (one fsync) between them, on PostgreSQL each in its own transaction; each waits until its
/// own booking is durable. A crash part-way leaves nothing, and the retry does the work again.
pub(crate) async fn record(
    db: &Db,
    group: &GroupWriter,
    checkout: &CheckoutRow,
    take: Take<'_>,
    items: &[(StatementId, Money)],
    now: i64,
    by: &'static str,
) -> Result<Booked, sqlx::Error> {
    let booking = Arc::new(Booking {
        checkout: checkout.clone(),
        payment: take.payment.clone(),
        status: take.status,
        amount: take.amount,
        items: items.to_vec(),
        now,
        by,
    });
    let work = group_commit::work(move |conn| {
        let booking = booking.clone();
        Box::pin(async move { booking.book(conn).await })
    });
    if !group.run(work).await? {
        return Ok(Booked::Already);
    }
    // A plan whose statements this paid off is complete (its instalments or not).
    let statements: Vec<StatementId> = items.iter().map(|(s, _)| s.clone()).collect();
    super::plans::complete_paid_off(db, &statements, now).await?;
    Ok(Booked::New)
}

/// A payment to book, owned, to cross into the group writer.
struct Booking {
    checkout: CheckoutRow,
    payment: ProcessorPayment,
    status: PaymentStatus,
    amount: Money,
    items: Vec<(StatementId, Money)>,
    now: i64,
    by: &'static str,
}

impl Booking {
    /// Books it on `conn`, inside a transaction: `false` if the payment was on our books
    /// already (another event, another worker), and then only the checkout is closed.
    async fn book(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
        let (checkout, payment, now, by) = (&self.checkout, &self.payment, self.now, self.by);
        let status_str = match self.status {
            PaymentStatus::Processing => "processing",
            _ => "succeeded",
        };
        let payment_id = PaymentId::generate();
        let inserted = sqlx::query(
            "INSERT INTO payments (id, tenant_id, statement_id, checkout_id, processor_payment_id, amount_cents,
                 card_brand, card_last4, paid_at, recorded_at, status, method, settled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (processor_payment_id) DO NOTHING",
        )
        .bind(payment_id.as_str())
        .bind(checkout.tenant_id.as_str())
        .bind(checkout.statement_id.as_ref().map(|s| s.as_str().to_owned()))
        .bind(checkout.id.as_str())
        .bind(&payment.id)
        .bind(self.amount.cents())
        .bind(&payment.card_brand)
        .bind(&payment.card_last4)
        .bind(payment.created)
        .bind(now)
        .bind(status_str)
        .bind(payment.method.as_str())
        .bind((self.status == PaymentStatus::Succeeded).then_some(now))
        .execute(&mut *conn)
        .await?;
        // Forward only: a completed checkout never goes back to open or expired.
        close_checkout(
            conn,
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
            return Ok(false);
        }
        // The plan instalment this checkout paid, if any, is paid with it.
        super::plans::mark_paid(conn, checkout.id.as_str(), now).await?;
        let action = match self.status {
            PaymentStatus::Processing => "payment.processing",
            _ => "payment.recorded",
        };
        for (statement, share) in &self.items {
            sqlx::query(
                "INSERT INTO payment_allocations (payment_id, statement_id, tenant_id, amount_cents)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(payment_id.as_str())
            .bind(statement.as_str())
            .bind(checkout.tenant_id.as_str())
            .bind(share.cents())
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, payment_id, created_at)
                 VALUES ($1, $2, 'payment', $3, $4, $5)",
            )
            .bind(checkout.tenant_id.as_str())
            .bind(statement.as_str())
            .bind(share.cents())
            .bind(payment_id.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        // Each statement's patient and new balance, in one read.
        let statements: Vec<StatementId> = self.items.iter().map(|(s, _)| s.clone()).collect();
        for (statement, patient, balance) in
            crate::billing::patients_and_balances(conn, &statements).await?
        {
            audit_system(
                conn,
                by,
                &checkout.tenant_id,
                &patient,
                action,
                payment_id.as_str(),
                Outcome::Success,
            )
            .await?;
            if balance.cents() < 0 {
                // Paid more than was due (two checkouts raced). The money is recorded as taken;
                // the credit is flagged for the practice to refund.
                audit_system(
                    conn,
                    by,
                    &checkout.tenant_id,
                    &patient,
                    "payment.overpaid",
                    statement.as_str(),
                    Outcome::Failure,
                )
                .await?;
                tracing::warn!(statement = %statement, "statement overpaid; credit needs a refund");
            }
        }
        Ok(true)
    }
}

/// Moves a payment on our books to where the processor says it is: a processing bank debit
/// that succeeded is settled; one that failed or was cancelled is reversed on the ledger (the
/// balance is due again). A settled or failed payment never moves again.
pub(crate) async fn follow(
    db: &Db,
    payment: &ProcessorPayment,
    now: i64,
    by: &'static str,
) -> Result<EventOutcome, super::PaymentError> {
    let to = match payment.status {
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Incomplete | PaymentStatus::Canceled => "failed",
        PaymentStatus::Processing => return Ok(EventOutcome::NoChange),
    };
    let mut tx = db.begin_write().await?;
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, tenant_id FROM payments WHERE processor_payment_id = $1 AND status = 'processing'",
    )
    .bind(&payment.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, tenant)) = row else {
        return Ok(EventOutcome::NoChange);
    };
    let moved = sqlx::query(
        "UPDATE payments SET status = $1, settled_at = $2 WHERE id = $3 AND status = 'processing'",
    )
    .bind(to)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(EventOutcome::NoChange);
    }
    let tenant = TenantId::from_db(tenant);
    let allocations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement_id, amount_cents FROM payment_allocations WHERE payment_id = $1 ORDER BY statement_id",
    )
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?;
    for (statement, cents) in &allocations {
        let statement = StatementId::from_db(statement.clone());
        if to == "failed" {
            sqlx::query(
                "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, payment_id, created_at)
                 VALUES ($1, $2, 'reversal', $3, $4, $5)",
            )
            .bind(tenant.as_str())
            .bind(statement.as_str())
            .bind(*cents)
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let patient = patient_of(&mut tx, &statement).await?;
        let (action, outcome) = if to == "failed" {
            ("payment.failed", Outcome::Failure)
        } else {
            ("payment.settled", Outcome::Success)
        };
        audit_system(&mut tx, by, &tenant, &patient, action, &id, outcome).await?;
    }
    tx.commit().await?;
    Ok(if to == "failed" {
        EventOutcome::Reversed
    } else {
        EventOutcome::Settled
    })
}

/// Records a dispute on one of our payments (its status kept up to date), and the first time
/// it is seen, audits it and asks the caller to alert the practice.
pub(crate) async fn record_dispute(
    db: &Db,
    dispute: &ProcessorDispute,
    now: i64,
    by: &'static str,
) -> Result<EventOutcome, super::PaymentError> {
    let mut tx = db.begin_write().await?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM payments WHERE processor_payment_id = $1")
            .bind(&dispute.payment)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((payment, tenant)) = row else {
        // A dispute on a payment we never booked: reconciliation's to find.
        return Ok(EventOutcome::NoChange);
    };
    let payment = PaymentId::from_db(payment);
    let tenant = TenantId::from_db(tenant);
    let inserted = sqlx::query(
        "INSERT INTO disputes (id, tenant_id, payment_id, processor_dispute_id, amount_cents, status, reason, opened_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (processor_dispute_id) DO NOTHING",
    )
    .bind(DisputeId::generate().as_str())
    .bind(tenant.as_str())
    .bind(payment.as_str())
    .bind(&dispute.id)
    .bind(dispute.amount.cents().max(1))
    .bind(&dispute.status)
    .bind(&dispute.reason)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        sqlx::query(
            "UPDATE disputes SET status = $1, updated_at = $2 WHERE processor_dispute_id = $3",
        )
        .bind(&dispute.status)
        .bind(now)
        .bind(&dispute.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(EventOutcome::NoChange);
    }
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT statement_id FROM payment_allocations WHERE payment_id = $1 ORDER BY statement_id",
    )
    .bind(payment.as_str())
    .fetch_all(&mut *tx)
    .await?;
    for statement in statements {
        let patient = patient_of(&mut tx, &StatementId::from_db(statement)).await?;
        audit_system(
            &mut tx,
            by,
            &tenant,
            &patient,
            "payment.disputed",
            payment.as_str(),
            Outcome::Failure,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(EventOutcome::Disputed(Unbooked::disputed(
        dispute, &payment,
    )))
}

pub(crate) async fn patient_of(
    conn: &mut sqlx::AnyConnection,
    statement: &StatementId,
) -> Result<PatientId, sqlx::Error> {
    let patient: String = sqlx::query_scalar("SELECT patient_id FROM statements WHERE id = $1")
        .bind(statement.as_str())
        .fetch_one(conn)
        .await?;
    Ok(PatientId::from_db(patient))
}

async fn audit_system(
    conn: &mut sqlx::AnyConnection,
    by: &'static str,
    tenant: &TenantId,
    patient: &PatientId,
    action: &'static str,
    resource: &str,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    audit::record(
        conn,
        audit::Event {
            actor: &Actor::system(by),
            tenant: Some(tenant),
            patient: Some(patient),
            action,
            resource: Some(resource),
            outcome,
        },
    )
    .await
}
