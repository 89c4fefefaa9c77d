//! A patient's payments as practice staff see them before refunding: status, method, refunds
//! made and open disputes; and the refunds a receipt lists.

use crate::access::Permit;
use crate::db::Db;
use crate::ids::{PaymentId, RefundId, StatementId};
use crate::money::Money;

/// One refund of a payment, whatever its state.
#[derive(Clone, Debug)]
pub struct RefundLine {
    pub id: RefundId,
    pub amount: Money,
    /// `requested`, `pending`, `succeeded` or `failed`.
    pub status: String,
    /// A `RefundReason` string, or `made_at_processor`.
    pub reason: String,
    pub created_at: i64,
}

/// A payment that paid at least one of the patient's statements.
#[derive(Clone, Debug)]
pub struct PaymentHistory {
    pub id: PaymentId,
    pub paid_at: i64,
    pub amount: Money,
    /// `card` or `us_bank_account`.
    pub method: String,
    pub card_brand: String,
    pub card_last4: String,
    /// `processing`, `succeeded` or `failed`.
    pub status: String,
    pub refunds: Vec<RefundLine>,
    /// A dispute not (yet) won.
    pub disputed: bool,
    /// The amount less refunds that did not fail: the most a new refund may be.
    pub left: Money,
}

/// Every payment to the permit's patient's statements in its practice, newest first. A permit
/// that names no patient reads nothing.
pub async fn payments_of_patient(
    db: &Db,
    permit: &Permit,
) -> Result<Vec<PaymentHistory>, sqlx::Error> {
    let Some(patient) = permit.patient() else {
        return Ok(vec![]);
    };
    type Row = (String, i64, i64, String, String, String, String, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT DISTINCT p.id, p.paid_at, p.amount_cents, p.method, p.card_brand, p.card_last4,
                p.status,
                CAST((SELECT COUNT(*) FROM disputes d WHERE d.payment_id = p.id AND d.status <> 'won') AS BIGINT)
         FROM payments p
         JOIN payment_allocations a ON a.payment_id = p.id
         JOIN statements s ON s.id = a.statement_id
         WHERE s.patient_id = $1 AND s.tenant_id = $2 AND p.tenant_id = $2
         ORDER BY p.paid_at DESC, p.id",
    )
    .bind(patient.as_str())
    .bind(permit.tenant().as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, paid_at, amount, method, brand, last4, status, disputes) in rows {
        let refunds: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, amount_cents, status, reason, created_at FROM refunds
             WHERE payment_id = $1 ORDER BY created_at, id",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?;
        let refunds: Vec<RefundLine> = refunds
            .into_iter()
            .map(|(id, amount, status, reason, created_at)| RefundLine {
                id: RefundId::from_db(id),
                amount: Money::from_cents(amount),
                status,
                reason,
                created_at,
            })
            .collect();
        let taken: i64 = refunds
            .iter()
            .filter(|r| r.status != "failed")
            .map(|r| r.amount.cents())
            .sum();
        out.push(PaymentHistory {
            id: PaymentId::from_db(id),
            paid_at,
            amount: Money::from_cents(amount),
            method,
            card_brand: brand,
            card_last4: last4,
            status,
            refunds,
            disputed: disputes > 0,
            left: Money::from_cents(amount - taken),
        });
    }
    Ok(out)
}

/// A refund as a receipt lists it: what went back, and when it was booked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookedRefund {
    pub amount: Money,
    pub at: i64,
}

/// The refunds booked on the ledger against a payment (on one of its statements, or all), one
/// per refund, oldest first.
pub async fn booked_refunds(
    db: &Db,
    payment: &PaymentId,
    statement: Option<&StatementId>,
) -> Result<Vec<BookedRefund>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT CAST(SUM(amount_cents) AS BIGINT), CAST(MIN(created_at) AS BIGINT)
         FROM ledger_entries
         WHERE kind = 'refund' AND payment_id = $1 AND ($2 = '' OR statement_id = $2)
         GROUP BY refund_id ORDER BY MIN(created_at), refund_id",
    )
    .bind(payment.as_str())
    .bind(statement.map_or("", StatementId::as_str))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(a, at)| BookedRefund {
            amount: Money::from_cents(a),
            at,
        })
        .collect())
}
