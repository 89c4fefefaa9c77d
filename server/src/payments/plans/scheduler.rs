//! Autopay: each instalment is noticed, then charged off-session on the plan's saved card, with
//! an idempotency key per attempt saved before the processor is called. A card whose bank wants
//! the member present, or a charge above the member's cap, is left for the member to pay on the
//! page; a declined one is retried on a schedule, then the plan is suspended and the practice
//! told.

use super::{
    audit_plan, balance_of, close, find, statements_of, InstalmentRef, Plan, PlanStatus,
    MIN_NOTICE_SECS,
};
use crate::alerts::AlertSink;
use crate::audit::{Actor, Outcome};
use crate::db::Db;
use crate::group_commit::GroupWriter;
use crate::ids::{CheckoutId, PlanId, StatementId};
use crate::money::Money;
use crate::payments::checkout::{close_live, insert_checkout, NewCheckout};
use crate::payments::events::{book_payment, ident, EventOutcome};
use crate::payments::{
    find_checkout, ChargeOutcome, CheckoutRow, CheckoutState, DeclineReason, OffSessionCharge,
    PaymentError, PaymentProcessor, ProcessorError,
};

/// The actor autopay's charges and changes are audited under.
pub const PLAN_ACTOR: &str = "system:plan-autopay";
const DAY: i64 = 86_400;
/// A worker holds a charge this long; past it another takes over with the same key.
const LEASE_SECS: i64 = 300;
/// After each declined charge the next try waits this long; after the last, the plan is
/// suspended. Three tries in all over six days.
pub const RETRY_DELAYS: [i64; 2] = [2 * DAY, 4 * DAY];
/// The processor did not answer: the same request again after this.
const UNAVAILABLE_SECS: i64 = 600;
/// A charge unanswered this long raises an alert (it keeps being repeated).
const STUCK_SECS: i64 = 3600;
/// The member has a checkout open on one of the statements: try again after this.
const BUSY_SECS: i64 = 3600;

/// What one step did to an instalment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The member was told what will be charged, when and to which card.
    Noticed,
    Paid,
    /// Left for the member to pay on the page: their bank wants them present, or it is above
    /// their cap.
    ActionRequired(&'static str),
    /// Declined; tried again later.
    WillRetry,
    /// Declined too often (or the card is gone): autopay stops, the practice is told.
    Suspended,
    /// The statements were paid off meanwhile: the plan is complete.
    Completed,
    /// Not charged now (the processor did not answer, or a checkout of the member's holds a
    /// statement); the same attempt is made later.
    Later,
    /// Someone else is working it, or it is not due.
    Skipped,
}

/// Works every instalment due at `now`, at most `limit`; returns how many steps were taken.
pub async fn run_due(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    now: i64,
    limit: i64,
) -> Result<usize, PaymentError> {
    let due: Vec<(String, i64, String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT i.plan_id, i.seq, i.status, i.noticed_at, i.due_at FROM plan_instalments i
         JOIN payment_plans p ON p.id = i.plan_id
         WHERE p.status = 'active' AND i.status IN ('scheduled', 'retrying', 'charging')
           AND i.next_attempt_at <= $1
         ORDER BY i.next_attempt_at, i.plan_id, i.seq LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut steps = 0;
    for (plan, seq, status, noticed, due_at) in due {
        let at = InstalmentRef {
            plan: PlanId::from_db(plan),
            seq,
        };
        let step = if status == "scheduled" && noticed.is_none() {
            notice(db, &at, due_at, now).await?
        } else {
            charge(db, group, processor, alerts, &at, now).await?
        };
        if step != Step::Skipped {
            steps += 1;
        }
    }
    Ok(steps)
}

/// Tells the member an instalment is coming: shown on their plan page until the message
/// outbox delivers it. The charge follows at the due date, and never sooner than
/// `MIN_NOTICE_SECS` after the notice.
async fn notice(db: &Db, at: &InstalmentRef, due_at: i64, now: i64) -> Result<Step, PaymentError> {
    let moved = sqlx::query(
        "UPDATE plan_instalments SET noticed_at = $1, next_attempt_at = $2
         WHERE plan_id = $3 AND seq = $4 AND status = 'scheduled' AND noticed_at IS NULL",
    )
    .bind(now)
    .bind(due_at.max(now + MIN_NOTICE_SECS))
    .bind(at.plan.as_str())
    .bind(at.seq)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(if moved == 1 {
        Step::Noticed
    } else {
        Step::Skipped
    })
}

/// Takes the instalment for this worker: a fresh attempt (counted), or one whose worker
/// stopped mid-way (its lease ran out; same attempt, same key). `false` when not ours to take.
pub(crate) async fn claim(db: &Db, at: &InstalmentRef, now: i64) -> Result<bool, sqlx::Error> {
    let fresh = sqlx::query(
        "UPDATE plan_instalments SET status = 'charging', attempts = attempts + 1,
             next_attempt_at = $1, checkout_id = NULL
         WHERE plan_id = $2 AND seq = $3 AND next_attempt_at <= $4
           AND (status = 'retrying' OR (status = 'scheduled' AND noticed_at IS NOT NULL))
           AND plan_id IN (SELECT id FROM payment_plans WHERE status = 'active')",
    )
    .bind(now + LEASE_SECS)
    .bind(at.plan.as_str())
    .bind(at.seq)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    if fresh == 1 {
        return Ok(true);
    }
    let stale = sqlx::query(
        "UPDATE plan_instalments SET next_attempt_at = $1
         WHERE plan_id = $2 AND seq = $3 AND status = 'charging' AND next_attempt_at <= $4",
    )
    .bind(now + LEASE_SECS)
    .bind(at.plan.as_str())
    .bind(at.seq)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(stale == 1)
}

/// The idempotency key of one attempt: the same attempt always asks the same.
fn attempt_key(at: &InstalmentRef, attempt: i64) -> String {
    format!("plan-{}-{}-{attempt}", at.plan, at.seq)
}

/// What an instalment takes now and from which statements (oldest first): its amount, or what
/// is left of the plan's balance if less. Empty when nothing is left.
pub(crate) async fn allocation(
    db: &Db,
    plan: &PlanId,
    amount: Money,
) -> Result<Vec<(StatementId, Money)>, sqlx::Error> {
    let mut left = amount.cents();
    let mut items = vec![];
    for s in statements_of(db, plan).await? {
        if left == 0 {
            break;
        }
        let due = crate::billing::balance(db.pool(), &s).await?.cents();
        let take = due.min(left);
        if take > 0 {
            items.push((s, Money::from_cents(take)));
            left -= take;
        }
    }
    Ok(items)
}

/// An attempt this worker holds, recorded and ready for the processor: the request and its
/// idempotency key are the same however often (and by whichever worker) it is made.
pub struct Begun {
    pub at: InstalmentRef,
    pub request: OffSessionCharge,
    pub idempotency_key: String,
    attempts: i64,
    plan: Plan,
    checkout: CheckoutRow,
}

/// Charges one instalment (it must be due, or stale in a stopped worker's hands).
pub async fn charge(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    at: &InstalmentRef,
    now: i64,
) -> Result<Step, PaymentError> {
    let begun = match begin(db, alerts, at, now).await? {
        Begin::Ready(b) => b,
        Begin::Done(step) => return Ok(step),
    };
    let outcome = processor
        .charge_saved_card(&begun.request, &begun.idempotency_key)
        .await;
    finish(db, group, alerts, begun, outcome, now).await
}

/// What `begin` came to: an attempt ready for the processor, or a step already taken (nothing
/// to charge now).
pub enum Begin {
    Ready(Box<Begun>),
    Done(Step),
}

/// Takes the instalment and records its attempt (a checkout with its key) before the processor
/// is asked.
pub async fn begin(
    db: &Db,
    alerts: &AlertSink,
    at: &InstalmentRef,
    now: i64,
) -> Result<Begin, PaymentError> {
    if !claim(db, at, now).await? {
        return Ok(Begin::Done(Step::Skipped));
    }
    let Some(plan) = find(db, &at.plan).await? else {
        return Ok(Begin::Done(Step::Skipped));
    };
    let row: Option<(i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT amount_cents, attempts, checkout_id FROM plan_instalments WHERE plan_id = $1 AND seq = $2",
    )
    .bind(at.plan.as_str())
    .bind(at.seq)
    .fetch_optional(db.pool())
    .await?;
    let Some((amount, attempts, checkout)) = row else {
        return Ok(Begin::Done(Step::Skipped));
    };
    let checkout = match checkout.map(CheckoutId::from_db) {
        // A stopped worker's attempt: the same checkout, the same key.
        Some(c) => c,
        None => match prepare(db, &plan, at, Money::from_cents(amount), attempts, now).await? {
            Prepared::Checkout(c) => c,
            Prepared::Done(step) => return Ok(Begin::Done(step)),
        },
    };
    let Some(row) = find_checkout(db, &checkout).await? else {
        return Ok(Begin::Done(Step::Skipped));
    };
    let Some(customer) = crate::payments::cards::customer_of(db, &plan.user).await? else {
        close_live(db, &checkout, CheckoutState::Failed).await?;
        return suspend(db, alerts, &plan, at, attempts, "card_removed", now)
            .await
            .map(Begin::Done);
    };
    let items = crate::payments::checkout_items(db, &checkout).await?;
    let request = OffSessionCharge {
        customer,
        card: plan.card_id.clone(),
        amount: row.amount,
        checkout_ref: checkout.clone(),
        statement_ref: items
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
    };
    Ok(Begin::Ready(Box::new(Begun {
        at: at.clone(),
        request,
        idempotency_key: attempt_key(at, attempts),
        attempts,
        plan,
        checkout: row,
    })))
}

/// Records what the processor answered for an attempt.
pub async fn finish(
    db: &Db,
    group: &GroupWriter,
    alerts: &AlertSink,
    begun: Box<Begun>,
    outcome: Result<ChargeOutcome, ProcessorError>,
    now: i64,
) -> Result<Step, PaymentError> {
    let Begun {
        at,
        attempts,
        plan,
        checkout: row,
        ..
    } = *begun;
    let at = &at;
    let checkout = row.id.clone();
    let plan = &plan;
    match outcome {
        Ok(ChargeOutcome::Paid(p)) => {
            match book_payment(db, group, &row, &p, now, PLAN_ACTOR).await? {
                EventOutcome::NotBooked(why) => {
                    why.raise(db, alerts, now).await?;
                    suspend(db, alerts, plan, at, attempts, "not_booked", now).await
                }
                _ => Ok(Step::Paid),
            }
        }
        Ok(ChargeOutcome::AuthenticationRequired { .. }) => {
            close_live(db, &checkout, CheckoutState::Failed).await?;
            ask_member(db, plan, at, "authentication_required").await
        }
        Ok(ChargeOutcome::Declined { reason, .. }) => {
            close_live(db, &checkout, CheckoutState::Failed).await?;
            let code = match reason {
                DeclineReason::InsufficientFunds => "insufficient_funds",
                DeclineReason::Generic => "declined",
            };
            declined(db, alerts, plan, at, attempts, code, now).await
        }
        Err(ProcessorError::Rejected(_)) => {
            close_live(db, &checkout, CheckoutState::Failed).await?;
            declined(db, alerts, plan, at, attempts, "declined", now).await
        }
        // The card is no longer the member's: retrying cannot help.
        Err(ProcessorError::NotFound) => {
            close_live(db, &checkout, CheckoutState::Failed).await?;
            suspend(db, alerts, plan, at, attempts, "card_removed", now).await
        }
        Err(ProcessorError::Unavailable(e)) => {
            tracing::warn!(plan = %at.plan, seq = at.seq, error = %e, "autopay: processor unavailable");
            sqlx::query(
                "UPDATE plan_instalments SET next_attempt_at = $1
                 WHERE plan_id = $2 AND seq = $3 AND status = 'charging'",
            )
            .bind(now + UNAVAILABLE_SECS)
            .bind(at.plan.as_str())
            .bind(at.seq)
            .execute(db.pool())
            .await?;
            // Stripe keeps a 500 under its key for a day and answers it again: a charge left
            // unanswered this long wants a person (the processor may or may not have taken it).
            let since: i64 = sqlx::query_scalar("SELECT created_at FROM checkouts WHERE id = $1")
                .bind(checkout.as_str())
                .fetch_one(db.pool())
                .await?;
            if now - since >= STUCK_SECS {
                alerts
                    .raise_once(
                        db,
                        None,
                        "payment-plan-charge-unanswered",
                        &format!(
                            "payment plan {} instalment {}: the processor has not answered its charge (our checkout {checkout}) for over an hour; the same request is repeated every {} minutes; look for a payment naming that checkout at the processor",
                            at.plan,
                            at.seq,
                            UNAVAILABLE_SECS / 60
                        ),
                        now,
                    )
                    .await?;
            }
            Ok(Step::Later)
        }
    }
}

enum Prepared {
    Checkout(CheckoutId),
    Done(Step),
}

/// A fresh attempt: what it takes now, checked against the cap, recorded as a checkout (with
/// its key) before the processor is asked.
async fn prepare(
    db: &Db,
    plan: &Plan,
    at: &InstalmentRef,
    amount: Money,
    attempts: i64,
    now: i64,
) -> Result<Prepared, PaymentError> {
    let statements = statements_of(db, &plan.id).await?;
    if !balance_of(db, &statements).await?.is_positive() {
        close(db, &plan.id, PlanStatus::Completed, now).await?;
        set_status(db, at, "canceled", None, None).await?;
        return Ok(Prepared::Done(Step::Completed));
    }
    let items = allocation(db, &plan.id, amount).await?;
    let total = Money::from_cents(items.iter().map(|(_, m)| m.cents()).sum());
    if total > plan.cap {
        return ask_member(db, plan, at, "over_cap")
            .await
            .map(Prepared::Done);
    }
    let id = CheckoutId::generate();
    let key = attempt_key(at, attempts);
    let new = NewCheckout {
        id: &id,
        tenant: &plan.tenant,
        items: &items,
        link: None,
        user: Some(&plan.user),
        amount: total,
        idempotency_key: &key,
        instalment: Some(at),
        taken_by: None,
    };
    match insert_checkout(db, &new, now).await {
        Ok(()) => Ok(Prepared::Checkout(id)),
        Err(PaymentError::Pending) => {
            // The member is paying one of these statements on the page right now: this
            // attempt is not made (nor counted); the next look comes later.
            let back = if attempts > 1 {
                "retrying"
            } else {
                "scheduled"
            };
            sqlx::query(
                "UPDATE plan_instalments SET status = $1, attempts = attempts - 1, next_attempt_at = $2
                 WHERE plan_id = $3 AND seq = $4 AND status = 'charging'",
            )
            .bind(back)
            .bind(now + BUSY_SECS)
            .bind(at.plan.as_str())
            .bind(at.seq)
            .execute(db.pool())
            .await?;
            Ok(Prepared::Done(Step::Later))
        }
        Err(e) => Err(e),
    }
}

async fn set_status(
    db: &Db,
    at: &InstalmentRef,
    status: &str,
    next: Option<i64>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE plan_instalments SET status = $1, next_attempt_at = $2, last_error = $3
         WHERE plan_id = $4 AND seq = $5 AND status = 'charging'",
    )
    .bind(status)
    .bind(next)
    .bind(error)
    .bind(at.plan.as_str())
    .bind(at.seq)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Leaves the instalment for the member to pay on the page; the plan goes on.
async fn ask_member(
    db: &Db,
    plan: &Plan,
    at: &InstalmentRef,
    code: &'static str,
) -> Result<Step, PaymentError> {
    set_status(db, at, "action_required", None, Some(code)).await?;
    let actor = Actor::system(PLAN_ACTOR);
    audit_plan(
        db,
        plan,
        &actor,
        "plan.instalment.action_required",
        Outcome::Failure,
    )
    .await?;
    Ok(Step::ActionRequired(code))
}

async fn declined(
    db: &Db,
    alerts: &AlertSink,
    plan: &Plan,
    at: &InstalmentRef,
    attempts: i64,
    code: &'static str,
    now: i64,
) -> Result<Step, PaymentError> {
    let tried = usize::try_from(attempts).unwrap_or(usize::MAX);
    let actor = Actor::system(PLAN_ACTOR);
    audit_plan(
        db,
        plan,
        &actor,
        "plan.instalment.declined",
        Outcome::Failure,
    )
    .await?;
    match RETRY_DELAYS.get(tried.saturating_sub(1)) {
        Some(wait) => {
            set_status(db, at, "retrying", Some(now + wait), Some(code)).await?;
            Ok(Step::WillRetry)
        }
        None => suspend(db, alerts, plan, at, attempts, code, now).await,
    }
}

/// Autopay stops: the instalment waits for the member on the page, and the practice is told
/// (an alert naming the plan and practice, never the patient; the audit trail names them).
async fn suspend(
    db: &Db,
    alerts: &AlertSink,
    plan: &Plan,
    at: &InstalmentRef,
    attempts: i64,
    code: &'static str,
    now: i64,
) -> Result<Step, PaymentError> {
    set_status(db, at, "action_required", None, Some(code)).await?;
    sqlx::query(
        "UPDATE payment_plans SET status = 'suspended', updated_at = $1 WHERE id = $2 AND status = 'active'",
    )
    .bind(now)
    .bind(plan.id.as_str())
    .execute(db.pool())
    .await?;
    let actor = Actor::system(PLAN_ACTOR);
    audit_plan(db, plan, &actor, "plan.suspended", Outcome::Failure).await?;
    alerts
        .raise_once(
            db,
            Some(&plan.tenant),
            "payment-plan-suspended",
            &format!(
                "payment plan {} of practice {} suspended: instalment {} failed {} time(s) ({}); the member is asked to pay it on the page",
                plan.id,
                plan.tenant,
                at.seq,
                attempts,
                ident(code)
            ),
            now,
        )
        .await?;
    Ok(Step::Suspended)
}
