//! The sandbox's saved cards (migrations 0009, 0013): customers whose metadata is the member's
//! opaque ref and nothing else, setup-mode checkouts (no amount) and the payment methods they
//! save (brand, last four, expiry, and how a later charge goes; detached when removed, never
//! deleted).

use super::store::{self, SessionRow};
use super::{outbox, sandbox_id, unavailable, Recorded, Sandbox};
use crate::payments::{DeclineReason, ProcessorCheckout, ProcessorError, SavedCard, SetupRequest};
use sqlx::AnyConnection;

/// How a saved card behaves when it is charged later, as Stripe's test cards for saved cards
/// do: decided by the test number it was saved with, which is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behaviour {
    Succeeds,
    /// The card's bank wants the member present (3-D Secure): a charge without them waits.
    AuthenticationRequired,
    Declines(DeclineReason),
}

impl Behaviour {
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Succeeds => "succeeds",
            Behaviour::AuthenticationRequired => "authentication_required",
            Behaviour::Declines(DeclineReason::Generic) => "declined",
            Behaviour::Declines(DeclineReason::InsufficientFunds) => "insufficient_funds",
        }
    }

    pub fn parse(s: &str) -> Option<Behaviour> {
        Some(match s {
            "succeeds" => Behaviour::Succeeds,
            "authentication_required" => Behaviour::AuthenticationRequired,
            "declined" => Behaviour::Declines(DeclineReason::Generic),
            "insufficient_funds" => Behaviour::Declines(DeclineReason::InsufficientFunds),
            _ => return None,
        })
    }
}

/// What is kept of a card saved on the setup page.
pub(super) struct CardToSave {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: i32,
    pub behaviour: Behaviour,
    pub now: i64,
}

#[derive(sqlx::FromRow)]
struct MethodRow {
    id: String,
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: String,
    metadata: String,
}

async fn customer_for_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, metadata FROM sandbox_customers WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

async fn customer_exists(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sandbox_customers WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

impl Sandbox {
    /// A customer carrying `member_ref` only; the same key answers with the same customer (a
    /// key reused for another ref is refused, as Stripe refuses changed parameters).
    pub(super) async fn new_customer(
        &self,
        member_ref: &str,
        key: &str,
    ) -> Result<String, ProcessorError> {
        let metadata = serde_json::json!({ "member_ref": member_ref }).to_string();
        let same = |c: CustomerRow| {
            if c.metadata == metadata {
                Ok(c.id)
            } else {
                Err(ProcessorError::Rejected(
                    "idempotency key reused with other parameters".into(),
                ))
            }
        };
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        if let Some(c) = customer_for_key(&mut conn, key)
            .await
            .map_err(unavailable)?
        {
            return same(c);
        }
        let id = sandbox_id("cus");
        let inserted = sqlx::query(
            "INSERT INTO sandbox_customers (id, metadata, idempotency_key, created)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&metadata)
        .bind(key)
        .bind(crate::clock::now_unix())
        .execute(&mut *conn)
        .await;
        match inserted {
            Ok(_) => Ok(id),
            // The same key from a concurrent call: its customer is the answer.
            Err(e) => match customer_for_key(&mut conn, key).await {
                Ok(Some(c)) => same(c),
                _ => Err(unavailable(e)),
            },
        }
    }

    /// A setup-mode checkout on an existing customer: no amount, cards only.
    pub(super) async fn new_setup(
        &self,
        req: &SetupRequest,
        key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        if !req.success_url.contains("{CHECKOUT_SESSION_ID}") {
            return Err(ProcessorError::Rejected(
                "success_url lacks {CHECKOUT_SESSION_ID}".into(),
            ));
        }
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        if !customer_exists(&mut conn, &req.customer)
            .await
            .map_err(unavailable)?
        {
            return Err(ProcessorError::NotFound);
        }
        drop(conn);
        let now = crate::clock::now_unix();
        let s = SessionRow {
            id: sandbox_id("cs"),
            amount_cents: 0,
            client_reference_id: req.setup_ref.clone(),
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            status: "open".into(),
            paid: 0,
            payment_intent: None,
            csrf: crate::crypto::random_token(),
            bank_debit: 0,
            created: now,
            expires_at: now + 24 * 3600,
            misreport: None,
            misreport_amount_cents: None,
            misreport_currency: None,
            mode: "setup".into(),
            customer_id: Some(req.customer.clone()),
            setup_intent: None,
            merchant: None,
        };
        self.open_session(key, &s).await
    }

    /// The customer's cards not removed, newest first.
    pub(super) async fn cards_of(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        let mut conn = self.db.pool().acquire().await.map_err(unavailable)?;
        if !customer_exists(&mut conn, customer)
            .await
            .map_err(unavailable)?
        {
            return Err(ProcessorError::NotFound);
        }
        let rows: Vec<MethodRow> = sqlx::query_as(
            "SELECT id, brand, last4, exp_month, exp_year FROM sandbox_payment_methods
             WHERE customer_id = $1 AND detached = 0 ORDER BY seq DESC",
        )
        .bind(customer)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|r| SavedCard {
                id: r.id,
                brand: r.brand,
                last4: r.last4,
                exp_month: u8::try_from(r.exp_month).unwrap_or(0),
                exp_year: i32::try_from(r.exp_year).unwrap_or(0),
            })
            .collect())
    }

    /// Detaches a card from its customer; `NotFound` unless it is that customer's and attached.
    pub(super) async fn detach(&self, customer: &str, card: &str) -> Result<(), ProcessorError> {
        let n = sqlx::query(
            "UPDATE sandbox_payment_methods SET detached = 1
             WHERE id = $1 AND customer_id = $2 AND detached = 0",
        )
        .bind(card)
        .bind(customer)
        .execute(self.db.pool())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(ProcessorError::NotFound)
        }
    }

    /// Saves a checked card on setup checkout `id` and completes it, with the
    /// `checkout.session.completed` event, in one transaction. The checkout is read and
    /// completed here under the same guard as a payment (it must still be open), so two submits
    /// save one card.
    pub(super) async fn record_setup(
        &self,
        id: &str,
        card: CardToSave,
    ) -> Result<Recorded, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let Some(s) = store::session(&mut tx, id).await? else {
            return Ok(Recorded::NotFound);
        };
        let Some(customer) = s.customer_id.clone().filter(|_| s.is_setup()) else {
            return Ok(Recorded::NotFound);
        };
        let completed = sqlx::query(
            "UPDATE sandbox_sessions SET status = 'complete', setup_intent = $1
             WHERE id = $2 AND status = 'open'",
        )
        .bind(sandbox_id("seti"))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if completed != 1 {
            drop(tx);
            return self.not_open(id).await;
        }
        sqlx::query(
            "INSERT INTO sandbox_payment_methods (id, customer_id, setup_session_id, brand, last4,
                 exp_month, exp_year, detached, created, seq, behaviour)
             SELECT $1, $2, $3, $4, $5, $6, $7, 0, $8, COALESCE(MAX(seq), 0) + 1, $9
             FROM sandbox_payment_methods",
        )
        .bind(sandbox_id("pm"))
        .bind(&customer)
        .bind(id)
        .bind(&card.brand)
        .bind(&card.last4)
        .bind(i64::from(card.exp_month))
        .bind(i64::from(card.exp_year))
        .bind(card.now)
        .bind(card.behaviour.as_str())
        .execute(&mut *tx)
        .await?;
        let Some(done) = store::session(&mut tx, id).await? else {
            return Ok(Recorded::NotFound);
        };
        let event = outbox::write(
            &mut tx,
            "checkout.session.completed",
            self.session_json(&done),
            card.now,
        )
        .await?;
        tx.commit().await?;
        let url = done.success_url.replace("{CHECKOUT_SESSION_ID}", &done.id);
        Ok(Recorded::Completed(url, vec![event]))
    }
}
