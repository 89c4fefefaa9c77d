//! Starting a hosted checkout (one live checkout per statement), and asking the processor
//! afresh where one stands.

use super::{
    close_checkout, payment_if_known, plans::InstalmentRef, CheckoutPlan, CheckoutRequest,
    CheckoutRow, CheckoutState, CheckoutStatus, DeclineReason, PaymentError, PaymentProcessor,
    ProcessorError, Unbooked, MAX_ITEMS, NEUTRAL_DESCRIPTION,
};
use crate::alerts::AlertSink;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::{CheckoutId, LinkId, StatementId, TenantId, UserId};
use crate::money::Money;

/// Starts one hosted checkout for the plan's statements and returns the URL to send the payer
/// to. The idempotency key is saved before the processor is called, so a retry after a crash
/// can't create a second session.
pub async fn start_checkout(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    plan: &CheckoutPlan,
    public_url: &str,
    actor: &Actor,
) -> Result<String, PaymentError> {
    if plan.items.is_empty() || plan.items.len() > MAX_ITEMS {
        return Err(PaymentError::Invalid(
            "a checkout covers 1 to 10 statements",
        ));
    }
    let total = plan
        .items
        .iter()
        .try_fold(Money::from_cents(0), |acc, (_, m)| acc.checked_add(*m))
        .ok_or(PaymentError::Invalid("amount overflow"))?;
    let now = actor.at.unwrap_or_else(crate::clock::now_unix);
    let statements: Vec<StatementId> = plan.items.iter().map(|(s, _)| s.clone()).collect();
    free_statements(db, processor, alerts, &statements, now).await?;

    let id = CheckoutId::generate();
    let idem = format!("checkout-{}", id.as_str());
    let new = NewCheckout {
        id: &id,
        tenant: &plan.tenant,
        items: &plan.items,
        link: plan.link.as_ref(),
        user: plan.user.as_ref(),
        amount: total,
        idempotency_key: &idem,
        instalment: plan.instalment.as_ref(),
        // Started under view-as: the actor is the staff member, acting on the patient's behalf
        // (the HTTP layer let it through only with act-on-behalf and the patient's consent).
        taken_by: actor
            .on_behalf_of
            .as_ref()
            .and_then(|_| actor.id.strip_prefix("user:")),
    };
    insert_checkout(db, &new, now).await?;

    let (merchant_name, bank_debit): (String, i64) =
        sqlx::query_as("SELECT name, bank_debit FROM tenants WHERE id = $1")
            .bind(plan.tenant.as_str())
            .fetch_one(db.pool())
            .await?;
    let req = CheckoutRequest {
        amount: total,
        checkout_ref: id.clone(),
        statement_ref: plan
            .items
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        description: NEUTRAL_DESCRIPTION,
        created_at: now,
        success_url: format!(
            "{public_url}{}/return/{}?session_id={{CHECKOUT_SESSION_ID}}",
            plan.return_prefix,
            id.as_str()
        ),
        cancel_url: format!(
            "{public_url}{}/cancelled/{}",
            plan.return_prefix,
            id.as_str()
        ),
        bank_debit: bank_debit != 0,
        merchant_name,
    };
    let created = match processor.create_checkout(&req, &idem).await {
        Ok(c) => c,
        Err(e) => {
            let mut conn = db.pool().acquire().await?;
            close_checkout(
                &mut conn,
                id.as_str(),
                CheckoutState::Failed,
                &[CheckoutState::Creating],
            )
            .await?;
            return Err(e.into());
        }
    };
    sqlx::query(
        "UPDATE checkouts SET processor_session_id = $1, checkout_url = $2, status = 'open'
         WHERE id = $3 AND status = 'creating'",
    )
    .bind(&created.id)
    .bind(&created.url)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    for patient in &plan.patients {
        audit::record(
            db.pool(),
            audit::Event {
                actor,
                tenant: Some(&plan.tenant),
                patient: Some(patient),
                action: "payment.checkout.start",
                resource: Some(id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    Ok(created.url)
}

/// Frees statements for a new checkout: a stale `creating` one is closed, an open one expired
/// at the processor. One that can't be expired is re-read: paid (the payment is on its way)
/// refuses with `Pending` rather than let the balance be taken twice; unknown to the
/// processor, or complete without a payment that succeeded, is closed and never blocks.
pub(crate) async fn free_statements(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    statements: &[StatementId],
    now: i64,
) -> Result<(), PaymentError> {
    // One live checkout per statement (a unique index backs this up). Older open ones are
    // expired at the processor first. One that can't be is re-read: paid (the payment is on its
    // way) refuses rather than let the balance be taken twice; unknown to the processor, or
    // complete without a payment that succeeded, is closed and never blocks the statement.
    let mut conn = db.pool().acquire().await?;
    for statement in statements {
        let stale: Vec<(String,)> = sqlx::query_as(
            "SELECT c.id FROM checkouts c JOIN checkout_items i ON i.checkout_id = c.id
             WHERE i.statement_id = $1 AND i.live = 1 AND c.status = 'creating' AND c.created_at < $2",
        )
        .bind(statement.as_str())
        .bind(now - 600)
        .fetch_all(&mut *conn)
        .await?;
        for (id,) in stale {
            close_checkout(
                &mut conn,
                &id,
                CheckoutState::Failed,
                &[CheckoutState::Creating],
            )
            .await?;
        }
        let open: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.id, c.processor_session_id FROM checkouts c
             JOIN checkout_items i ON i.checkout_id = c.id
             WHERE i.statement_id = $1 AND i.live = 1 AND c.status = 'open'
               AND c.processor_session_id IS NOT NULL",
        )
        .bind(statement.as_str())
        .fetch_all(&mut *conn)
        .await?;
        for (id, sid) in open {
            match processor.expire_checkout(&sid).await {
                Ok(()) => {
                    close_checkout(
                        &mut conn,
                        &id,
                        CheckoutState::Expired,
                        &[CheckoutState::Open],
                    )
                    .await?;
                }
                Err(ProcessorError::Rejected(_) | ProcessorError::NotFound) => {
                    let ours = CheckoutId::from_db(id);
                    match reread_checkout(db, processor, alerts, &ours, &sid, now).await? {
                        Truth::Unpaid | Truth::NotSucceeded => {}
                        Truth::Open | Truth::Pending => return Err(PaymentError::Pending),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A checkout to record before the processor is asked.
pub(crate) struct NewCheckout<'a> {
    pub id: &'a CheckoutId,
    pub tenant: &'a TenantId,
    pub items: &'a [(StatementId, Money)],
    pub link: Option<&'a LinkId>,
    pub user: Option<&'a UserId>,
    pub amount: Money,
    pub idempotency_key: &'a str,
    /// The plan instalment this checkout pays, linked in the same transaction.
    pub instalment: Option<&'a InstalmentRef>,
    /// A staff member who took this payment on the patient's behalf (view-as, act on behalf).
    pub taken_by: Option<&'a str>,
}

/// Records a checkout as `creating` with its items live (holding its statements), in one
/// transaction. `Pending` when another live checkout holds one of the statements.
pub(crate) async fn insert_checkout(
    db: &Db,
    c: &NewCheckout<'_>,
    now: i64,
) -> Result<(), PaymentError> {
    let single = (c.items.len() == 1).then(|| c.items[0].0.as_str().to_owned());
    let pending = |e: sqlx::Error| match &e {
        // Another request holds one of these statements' live checkout.
        sqlx::Error::Database(d) if d.is_unique_violation() => PaymentError::Pending,
        _ => PaymentError::Db(e),
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO checkouts (id, tenant_id, statement_id, link_id, user_id, amount_cents,
             idempotency_key, status, created_at, taken_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'creating', $8, $9)",
    )
    .bind(c.id.as_str())
    .bind(c.tenant.as_str())
    .bind(single)
    .bind(c.link.map(|l| l.as_str().to_owned()))
    .bind(c.user.map(|u| u.as_str().to_owned()))
    .bind(c.amount.cents())
    .bind(c.idempotency_key)
    .bind(now)
    .bind(c.taken_by.map(str::to_owned))
    .execute(&mut *tx)
    .await?;
    for (statement, amount) in c.items {
        sqlx::query(
            "INSERT INTO checkout_items (checkout_id, statement_id, amount_cents, live)
             VALUES ($1, $2, $3, 1)",
        )
        .bind(c.id.as_str())
        .bind(statement.as_str())
        .bind(amount.cents())
        .execute(&mut *tx)
        .await
        .map_err(pending)?;
    }
    if let Some(i) = c.instalment {
        sqlx::query("UPDATE plan_instalments SET checkout_id = $1 WHERE plan_id = $2 AND seq = $3")
            .bind(c.id.as_str())
            .bind(i.plan.as_str())
            .bind(i.seq)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One of our checkouts as the processor sees it when asked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Still open: the payer may yet pay.
    Open,
    /// Over with nothing paid: expired there, or unknown to the processor (it never had it or
    /// forgot it). Our checkout is closed as expired.
    Unpaid,
    /// Paid with a payment that succeeded, or a payment still settling: booking it is the
    /// webhook's work.
    Pending,
    /// Complete, but its payment did not succeed: nothing to book. Our checkout is closed as
    /// failed and the reconciliation alert raised.
    NotSucceeded,
}

/// Moves a live (creating or open) checkout of ours to `to`, freeing its statements.
pub(crate) async fn close_live(
    db: &Db,
    id: &CheckoutId,
    to: CheckoutState,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    close_checkout(
        &mut tx,
        id.as_str(),
        to,
        &[CheckoutState::Creating, CheckoutState::Open],
    )
    .await?;
    tx.commit().await
}

/// Asks the processor afresh where our checkout `id` (its session `session_id`) stands, and
/// acts on the answer: a checkout the processor does not know is treated as expired, and one
/// it reports complete with a payment that did not succeed is closed as failed with the
/// reconciliation alert. Neither ever blocks the statement again.
pub async fn reread_checkout(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    id: &CheckoutId,
    session_id: &str,
    now: i64,
) -> Result<Truth, PaymentError> {
    let pc = match processor.retrieve_checkout(session_id).await {
        Ok(pc) => pc,
        Err(ProcessorError::NotFound) => {
            tracing::warn!(checkout = %id, "the processor does not know this checkout; treated as expired");
            close_live(db, id, CheckoutState::Expired).await?;
            return Ok(Truth::Unpaid);
        }
        Err(e) => return Err(e.into()),
    };
    if !pc.paid {
        return Ok(match pc.status {
            CheckoutStatus::Open => Truth::Open,
            // Complete but unpaid: a payment method that settles later.
            CheckoutStatus::Complete => Truth::Pending,
            CheckoutStatus::Expired => {
                close_live(db, id, CheckoutState::Expired).await?;
                Truth::Unpaid
            }
        });
    }
    let payment = match &pc.payment_intent {
        Some(pi) => payment_if_known(processor, pi).await?,
        None => None,
    };
    if payment
        .as_ref()
        .is_some_and(|p| p.succeeded() && p.amount_received.is_positive())
    {
        return Ok(Truth::Pending);
    }
    close_live(db, id, CheckoutState::Failed).await?;
    Unbooked::not_succeeded(id, &pc.id, pc.payment_intent.as_deref())
        .raise(db, alerts, now)
        .await?;
    Ok(Truth::NotSucceeded)
}

/// The statements a checkout asked for, with the amount on each.
pub async fn checkout_items(
    db: &Db,
    checkout: &CheckoutId,
) -> Result<Vec<(StatementId, Money)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT statement_id, amount_cents FROM checkout_items WHERE checkout_id = $1 ORDER BY statement_id",
    )
    .bind(checkout.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(s, c)| (StatementId::from_db(s), Money::from_cents(c)))
        .collect())
}

/// Why an unpaid checkout ended, as far as the processor says: a decline reason, or `None`
/// when the payer simply went back.
pub async fn decline_reason(
    processor: &dyn PaymentProcessor,
    checkout: &CheckoutRow,
) -> Result<Option<DeclineReason>, ProcessorError> {
    let Some(sid) = &checkout.processor_session_id else {
        return Ok(None);
    };
    // A checkout (or payment) the processor does not know was never paid: the payer went back.
    let pc = match processor.retrieve_checkout(sid).await {
        Ok(pc) => pc,
        Err(ProcessorError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    match &pc.payment_intent {
        Some(pi) => Ok(payment_if_known(processor, pi)
            .await?
            .and_then(|p| p.last_error)),
        None => Ok(None),
    }
}
