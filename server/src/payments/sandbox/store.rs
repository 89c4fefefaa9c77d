//! The sandbox's tables (migrations 0008, 0009 and 0013): its checkouts, payments, refunds,
//! disputes and idempotency keys, read and written here only (the event outbox's table is
//! `outbox`'s; saved cards' and off-session charges' queries are in `cards` and `charges`).
//! Each change of state is a guarded UPDATE whose affected rows say whether it happened, so
//! concurrent submits, settlements and refunds move each object once, on SQLite and PostgreSQL
//! alike.

use super::super::{CheckoutStatus, DeclineReason, MethodKind, PaymentStatus, RefundStatus};
use crate::money::Money;
use sqlx::AnyConnection;

/// How a test asked the sandbox to misbehave on one checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misreport {
    /// A successful card is charged `amount` in `currency` instead of the checkout's own (a
    /// processor converting currencies, or one that misreports).
    Charge { amount: Money, currency: String },
    /// A successful card completes the checkout but its payment reads as failed: what a lost
    /// race between two submits once left behind.
    FailAfterCompleting,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    pub id: String,
    pub amount_cents: i64,
    pub client_reference_id: String,
    pub success_url: String,
    pub cancel_url: String,
    pub status: String,
    pub paid: i64,
    pub payment_intent: Option<String>,
    pub csrf: String,
    pub bank_debit: i64,
    pub created: i64,
    pub expires_at: i64,
    pub misreport: Option<String>,
    pub misreport_amount_cents: Option<i64>,
    pub misreport_currency: Option<String>,
    /// "payment", or "setup" (saves a card on `customer_id`, no amount).
    pub mode: String,
    pub customer_id: Option<String>,
    pub setup_intent: Option<String>,
    /// The practice's name for the page; `None` shows the sandbox's own.
    pub merchant: Option<String>,
}

impl SessionRow {
    pub fn is_setup(&self) -> bool {
        self.mode == "setup"
    }

    pub fn amount(&self) -> Money {
        Money::from_cents(self.amount_cents)
    }

    pub fn status(&self) -> CheckoutStatus {
        match self.status.as_str() {
            "complete" => CheckoutStatus::Complete,
            "expired" => CheckoutStatus::Expired,
            _ => CheckoutStatus::Open,
        }
    }

    pub fn paid(&self) -> bool {
        self.paid != 0
    }

    pub fn bank_debit(&self) -> bool {
        self.bank_debit != 0
    }

    pub fn misreport(&self) -> Option<Misreport> {
        match self.misreport.as_deref()? {
            "charge" => Some(Misreport::Charge {
                amount: Money::from_cents(self.misreport_amount_cents?),
                currency: self.misreport_currency.clone()?,
            }),
            "fail_after_completing" => Some(Misreport::FailAfterCompleting),
            _ => None,
        }
    }
}

const SESSION_COLUMNS: &str = "id, amount_cents, client_reference_id, success_url, cancel_url,
    status, paid, payment_intent, csrf, bank_debit, created, expires_at, misreport,
    misreport_amount_cents, misreport_currency, mode, customer_id, setup_intent, merchant";

pub(super) async fn session(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SESSION_COLUMNS} FROM sandbox_sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub(super) async fn session_for_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SESSION_COLUMNS} FROM sandbox_sessions
         WHERE id = (SELECT session_id FROM sandbox_idempotency WHERE idempotency_key = $1)"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Saves a new open checkout under its idempotency key (a second insert of the key fails).
pub(super) async fn insert_session(
    conn: &mut AnyConnection,
    key: &str,
    s: &SessionRow,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sandbox_idempotency (idempotency_key, session_id) VALUES ($1, $2)")
        .bind(key)
        .bind(&s.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO sandbox_sessions (id, amount_cents, client_reference_id, success_url,
             cancel_url, status, paid, csrf, bank_debit, created, expires_at, mode, customer_id,
             merchant)
         VALUES ($1, $2, $3, $4, $5, 'open', 0, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&s.id)
    .bind(s.amount_cents)
    .bind(&s.client_reference_id)
    .bind(&s.success_url)
    .bind(&s.cancel_url)
    .bind(&s.csrf)
    .bind(s.bank_debit)
    .bind(s.created)
    .bind(s.expires_at)
    .bind(&s.mode)
    .bind(&s.customer_id)
    .bind(&s.merchant)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives an open checkout its one payment id (`new` unless it has one) and returns it; `None`
/// when the checkout is not open any more. Takes the checkout's row lock on PostgreSQL, so a
/// concurrent submit waits here until this one's transaction ends.
pub(super) async fn claim_payment_id(
    conn: &mut AnyConnection,
    session: &str,
    new: &str,
) -> Result<Option<String>, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE sandbox_sessions SET payment_intent = COALESCE(payment_intent, $1)
         WHERE id = $2 AND status = 'open'",
    )
    .bind(new)
    .bind(session)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n != 1 {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT payment_intent FROM sandbox_sessions WHERE id = $1")
        .bind(session)
        .fetch_one(conn)
        .await
}

/// Completes an open checkout; false if it was not open.
pub(super) async fn complete_session(
    conn: &mut AnyConnection,
    id: &str,
    paid: bool,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_sessions SET status = 'complete', paid = $1 WHERE id = $2 AND status = 'open'",
    )
    .bind(i64::from(paid))
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Expires an open checkout; false if it was not open.
pub(super) async fn expire_session(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_sessions SET status = 'expired' WHERE id = $1 AND status = 'open'",
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub(super) async fn set_misreport(
    conn: &mut AnyConnection,
    id: &str,
    how: &Misreport,
) -> Result<bool, sqlx::Error> {
    let (kind, amount, currency) = match how {
        Misreport::Charge { amount, currency } => {
            ("charge", Some(amount.cents()), Some(currency.clone()))
        }
        Misreport::FailAfterCompleting => ("fail_after_completing", None, None),
    };
    Ok(sqlx::query(
        "UPDATE sandbox_sessions SET misreport = $1, misreport_amount_cents = $2,
             misreport_currency = $3 WHERE id = $4",
    )
    .bind(kind)
    .bind(amount)
    .bind(currency)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct PaymentRow {
    pub id: String,
    /// The hosted checkout that made it; `None` for an off-session charge of a saved card.
    pub session_id: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub method: String,
    pub brand: String,
    pub last4: String,
    pub created: i64,
    pub last_error: Option<String>,
    pub settles_at: Option<i64>,
    pub settle_to: Option<String>,
    pub amount_refunded: i64,
    pub dispute_id: Option<String>,
    /// Our checkout id and statement ids, as the payment's metadata carries them.
    pub checkout_ref: Option<String>,
    pub statement_ref: Option<String>,
    /// An off-session charge's customer, saved card and idempotency key.
    pub customer_id: Option<String>,
    pub payment_method_id: Option<String>,
    pub idempotency_key: Option<String>,
}

impl PaymentRow {
    pub fn amount(&self) -> Money {
        Money::from_cents(self.amount_cents)
    }

    pub fn status(&self) -> PaymentStatus {
        match self.status.as_str() {
            "succeeded" => PaymentStatus::Succeeded,
            "processing" => PaymentStatus::Processing,
            // "failed", or "requires_action": waiting for the payer's authentication.
            _ => PaymentStatus::Incomplete,
        }
    }

    pub fn method(&self) -> MethodKind {
        match self.method.as_str() {
            "us_bank_account" => MethodKind::UsBankAccount,
            _ => MethodKind::Card,
        }
    }

    pub fn last_error(&self) -> Option<DeclineReason> {
        self.last_error.as_deref().map(|e| match e {
            "insufficient_funds" => DeclineReason::InsufficientFunds,
            _ => DeclineReason::Generic,
        })
    }
}

pub(super) fn decline_code(reason: DeclineReason) -> &'static str {
    match reason {
        DeclineReason::Generic => "generic",
        DeclineReason::InsufficientFunds => "insufficient_funds",
    }
}

pub(super) const PAYMENT_COLUMNS: &str = "id, session_id, amount_cents, currency, status,
    method, brand, last4, created, last_error, settles_at, settle_to, amount_refunded, dispute_id,
    checkout_ref, statement_ref, customer_id, payment_method_id, idempotency_key";

pub(super) async fn payment(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM sandbox_payments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Writes a checkout's payment as its latest attempt left it (a PaymentIntent's attempts are
/// recorded on the one object), or an off-session charge's, once. Refunds and disputes only
/// exist on a succeeded payment, which is never written again, so they are left alone.
pub(super) async fn upsert_payment(
    conn: &mut AnyConnection,
    p: &PaymentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_payments (id, session_id, amount_cents, currency, status, method,
             brand, last4, created, last_error, settles_at, settle_to, checkout_ref,
             statement_ref, customer_id, payment_method_id, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (id) DO UPDATE SET amount_cents = excluded.amount_cents,
             currency = excluded.currency, status = excluded.status, method = excluded.method,
             brand = excluded.brand, last4 = excluded.last4, created = excluded.created,
             last_error = excluded.last_error, settles_at = excluded.settles_at,
             settle_to = excluded.settle_to",
    )
    .bind(&p.id)
    .bind(&p.session_id)
    .bind(p.amount_cents)
    .bind(&p.currency)
    .bind(&p.status)
    .bind(&p.method)
    .bind(&p.brand)
    .bind(&p.last4)
    .bind(p.created)
    .bind(&p.last_error)
    .bind(p.settles_at)
    .bind(&p.settle_to)
    .bind(&p.checkout_ref)
    .bind(&p.statement_ref)
    .bind(&p.customer_id)
    .bind(&p.payment_method_id)
    .bind(&p.idempotency_key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Processing payments due to settle at `now` (all of them when `None`).
pub(super) async fn settling_payments(
    conn: &mut AnyConnection,
    now: Option<i64>,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM sandbox_payments
         WHERE status = 'processing' AND ($1 IS NULL OR settles_at <= $1) ORDER BY created, id"
    ))
    .bind(now)
    .fetch_all(conn)
    .await
}

/// Moves a processing payment to `to` ("succeeded" or "failed"); false if it was not processing.
pub(super) async fn settle_payment(
    conn: &mut AnyConnection,
    id: &str,
    to: &str,
    last_error: Option<DeclineReason>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_payments SET status = $1, last_error = $2, settles_at = NULL
         WHERE id = $3 AND status = 'processing'",
    )
    .bind(to)
    .bind(last_error.map(decline_code))
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub(super) async fn mark_session_paid(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandbox_sessions SET paid = 1 WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a succeeded, undisputed payment disputed; false otherwise.
pub(super) async fn set_dispute(
    conn: &mut AnyConnection,
    payment: &str,
    dispute: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_payments SET dispute_id = $1
         WHERE id = $2 AND status = 'succeeded' AND dispute_id IS NULL",
    )
    .bind(dispute)
    .bind(payment)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct DisputeRow {
    pub id: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub reason: String,
    pub created: i64,
}

pub(super) async fn insert_dispute(
    conn: &mut AnyConnection,
    d: &DisputeRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_disputes (id, payment_id, amount_cents, currency, status, reason, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&d.id)
    .bind(&d.payment_id)
    .bind(d.amount_cents)
    .bind(&d.currency)
    .bind(&d.status)
    .bind(&d.reason)
    .bind(d.created)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an open dispute to `status` ("won" or "lost"); false if there is none open.
pub(super) async fn close_dispute(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_disputes SET status = $1 WHERE id = $2 AND status NOT IN ('won', 'lost')",
    )
    .bind(status)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub(super) async fn dispute(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<DisputeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, payment_id, amount_cents, currency, status, reason, created
         FROM sandbox_disputes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct RefundRow {
    pub id: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub refund_ref: Option<String>,
    pub created: i64,
}

impl RefundRow {
    pub fn status(&self) -> RefundStatus {
        match self.status.as_str() {
            "succeeded" => RefundStatus::Succeeded,
            _ => RefundStatus::Pending,
        }
    }
}

pub(super) const REFUND_COLUMNS: &str =
    "id, payment_id, amount_cents, currency, status, refund_ref, created";

pub(super) async fn refund_for_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM sandbox_refunds WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub(super) async fn refunds_of(
    conn: &mut AnyConnection,
    payment: &str,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM sandbox_refunds WHERE payment_id = $1 ORDER BY created, id"
    ))
    .bind(payment)
    .fetch_all(conn)
    .await
}

/// Takes `amount` from what is left to refund of a succeeded, undisputed payment; false (and
/// nothing taken) if that is more than is left.
pub(super) async fn take_refund(
    conn: &mut AnyConnection,
    payment: &str,
    amount: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_payments SET amount_refunded = amount_refunded + $1
         WHERE id = $2 AND status = 'succeeded' AND dispute_id IS NULL
           AND amount_refunded + $1 <= amount_cents",
    )
    .bind(amount)
    .bind(payment)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub(super) async fn insert_refund(
    conn: &mut AnyConnection,
    r: &RefundRow,
    key: &str,
    settles_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_refunds (id, payment_id, amount_cents, currency, status, refund_ref,
             idempotency_key, created, settles_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.id)
    .bind(&r.payment_id)
    .bind(r.amount_cents)
    .bind(&r.currency)
    .bind(&r.status)
    .bind(&r.refund_ref)
    .bind(key)
    .bind(r.created)
    .bind(settles_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Pending refunds due at `now` (all of them when `None`).
pub(super) async fn pending_refunds(
    conn: &mut AnyConnection,
    now: Option<i64>,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM sandbox_refunds
         WHERE status = 'pending' AND ($1 IS NULL OR settles_at <= $1) ORDER BY created, id"
    ))
    .bind(now)
    .fetch_all(conn)
    .await
}

/// Moves a pending refund to succeeded; false if it was not pending.
pub(super) async fn settle_refund(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_refunds SET status = 'succeeded', settles_at = NULL
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Every sandbox row, gone: a processor that lost its objects.
pub(super) async fn forget(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for table in [
        "sandbox_events",
        "sandbox_disputes",
        "sandbox_refunds",
        "sandbox_payments",
        "sandbox_idempotency",
        "sandbox_sessions",
        "sandbox_payment_methods",
        "sandbox_customers",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
