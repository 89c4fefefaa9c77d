//! Recorded payments as receipts show them: the amount, the card, and how it split.

use crate::db::Db;
use crate::ids::{CheckoutId, PaymentId, StatementId, TenantId};
use crate::money::Money;

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
    /// `processing` (a bank debit settling), `succeeded` or `failed`.
    pub status: String,
    /// Taken by staff on the patient's behalf (view-as, act on behalf): the staff member's
    /// display name, `Some("")` when they have none.
    pub taken_by: Option<String>,
}

impl Receipt {
    pub fn covers(&self, statement: &StatementId) -> bool {
        self.allocations
            .iter()
            .any(|a| &a.statement_id == statement)
    }
}

pub async fn receipt(db: &Db, id: &PaymentId) -> Result<Option<Receipt>, sqlx::Error> {
    type Row = (
        String,
        String,
        i64,
        String,
        String,
        i64,
        String,
        Option<String>,
        Option<String>,
    );
    let r: Option<Row> = sqlx::query_as(
        "SELECT p.tenant_id, p.checkout_id, p.amount_cents, p.card_brand, p.card_last4, p.paid_at,
             p.status, c.taken_by, u.display_name
         FROM payments p JOIN checkouts c ON c.id = p.checkout_id
         LEFT JOIN users u ON u.id = c.taken_by
         WHERE p.id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some((t, c, a, b, l, p, status, taken_by, staff_name)) = r else {
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
        status,
        taken_by: taken_by.map(|_| staff_name.unwrap_or_default()),
    }))
}
