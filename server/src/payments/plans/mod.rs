//! Payment plans: a member spreads statements' balances over instalments charged to a saved
//! card (autopay), told before each charge. Setting a plan up, its schedule's arithmetic, reading
//! and changing it live here; charging due instalments lives in `scheduler`.

mod schedule;
pub mod scheduler;

pub use schedule::{split, Every};

use super::PaymentError;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::{PatientId, PlanId, StatementId, TenantId, UserId};
use crate::money::Money;

/// Instalments a plan may have, the first included.
pub const MIN_INSTALMENTS: u32 = 2;
pub const MAX_INSTALMENTS: u32 = 12;
/// The most statements one plan covers (its charges are checkouts, which cover at most this).
pub const MAX_STATEMENTS: usize = super::MAX_ITEMS;
const DAY: i64 = 86_400;
/// An instalment's notice goes out this long before its due date.
pub const NOTICE_SECS: i64 = 3 * DAY;
/// However late a notice went out, no charge follows it sooner than this.
pub const MIN_NOTICE_SECS: i64 = DAY;

/// One instalment of one plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalmentRef {
    pub plan: PlanId,
    pub seq: i64,
}

/// Why a plan was not set up or changed: each a message key the member reads.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<sqlx::Error> for PlanError {
    fn from(e: sqlx::Error) -> Self {
        PlanError::Payment(PaymentError::Db(e))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    Active,
    /// Autopay stopped after failed charges; the practice was told.
    Suspended,
    Completed,
    Canceled,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Active => "active",
            PlanStatus::Suspended => "suspended",
            PlanStatus::Completed => "completed",
            PlanStatus::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> PlanStatus {
        match s {
            "active" => PlanStatus::Active,
            "suspended" => PlanStatus::Suspended,
            "completed" => PlanStatus::Completed,
            _ => PlanStatus::Canceled,
        }
    }
}

/// Where an instalment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstalmentStatus {
    Scheduled,
    /// A charge is in flight (or was, when a worker stopped mid-way: it is taken over).
    Charging,
    /// The last charge failed; another is due at `next_attempt_at`.
    Retrying,
    /// The member must pay it on the page (their bank wants them present, the card was
    /// refused too often, or it is above their cap).
    ActionRequired,
    Paid,
    Canceled,
}

impl InstalmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstalmentStatus::Scheduled => "scheduled",
            InstalmentStatus::Charging => "charging",
            InstalmentStatus::Retrying => "retrying",
            InstalmentStatus::ActionRequired => "action_required",
            InstalmentStatus::Paid => "paid",
            InstalmentStatus::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> InstalmentStatus {
        match s {
            "scheduled" => InstalmentStatus::Scheduled,
            "charging" => InstalmentStatus::Charging,
            "retrying" => InstalmentStatus::Retrying,
            "action_required" => InstalmentStatus::ActionRequired,
            "paid" => InstalmentStatus::Paid,
            _ => InstalmentStatus::Canceled,
        }
    }
}

/// What a member asks for. The HTTP layer has checked each statement with the policy and that
/// the card is one of the member's saved cards.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub tenant: TenantId,
    pub user: UserId,
    pub statements: Vec<StatementId>,
    /// The patients concerned, for the audit trail.
    pub patients: Vec<PatientId>,
    pub card_id: String,
    pub card_brand: String,
    pub card_last4: String,
    pub count: u32,
    pub every: Every,
    pub cap: Money,
}

/// A plan as its member (or staff) sees it.
#[derive(Clone, Debug)]
pub struct Plan {
    pub id: PlanId,
    pub tenant: TenantId,
    pub user: UserId,
    pub card_id: String,
    pub card_brand: String,
    pub card_last4: String,
    pub total: Money,
    pub cap: Money,
    pub every: Every,
    pub status: PlanStatus,
    pub created_at: i64,
    pub instalments: Vec<Instalment>,
}

impl Plan {
    pub fn paid(&self) -> Money {
        Money::from_cents(
            self.instalments
                .iter()
                .filter(|i| i.status == InstalmentStatus::Paid)
                .map(|i| i.amount.cents())
                .sum(),
        )
    }

    /// The next instalment autopay will charge, once noticed.
    pub fn upcoming(&self) -> Option<&Instalment> {
        self.instalments.iter().find(|i| {
            matches!(
                i.status,
                InstalmentStatus::Scheduled | InstalmentStatus::Retrying
            )
        })
    }

    /// Instalments the member must pay on the page.
    pub fn needs_action(&self) -> impl Iterator<Item = &Instalment> {
        self.instalments
            .iter()
            .filter(|i| i.status == InstalmentStatus::ActionRequired)
    }
}

#[derive(Clone, Debug)]
pub struct Instalment {
    pub seq: i64,
    pub due_at: i64,
    pub amount: Money,
    pub status: InstalmentStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub noticed_at: Option<i64>,
    pub last_error: Option<String>,
    pub paid_at: Option<i64>,
}

/// The smallest instalment the practice accepts.
pub async fn minimum_instalment(db: &Db, tenant: &TenantId) -> Result<Money, sqlx::Error> {
    let cents: i64 =
        sqlx::query_scalar("SELECT plan_min_instalment_cents FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_one(db.pool())
            .await?;
    Ok(Money::from_cents(cents))
}

/// Sets the smallest instalment a practice accepts (new plans only); false if no such practice.
pub async fn set_minimum_instalment(
    db: &Db,
    tenant: &TenantId,
    min: Money,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE tenants SET plan_min_instalment_cents = $1 WHERE id = $2")
            .bind(min.cents())
            .bind(tenant.as_str())
            .execute(db.pool())
            .await?
            .rows_affected()
            == 1,
    )
}

/// The statements' balances summed: what a plan over them comes to.
pub async fn balance_of(db: &Db, statements: &[StatementId]) -> Result<Money, sqlx::Error> {
    let mut total = 0i64;
    for s in statements {
        total += crate::billing::balance(db.pool(), s).await?.cents();
    }
    Ok(Money::from_cents(total))
}

/// Sets a plan up: its total is the statements' balance now, split into `count` instalments,
/// the first due now (the member saw it on the form: that is its notice) and charged by the
/// caller at once. Refused, with nothing recorded, when an instalment would fall below the
/// practice's minimum, the cap below an instalment, or a statement is in another plan.
pub async fn create(
    db: &Db,
    req: &PlanRequest,
    actor: &Actor,
    now: i64,
) -> Result<PlanId, PlanError> {
    if req.statements.is_empty() {
        return Err(PlanError::Refused("plan-none"));
    }
    if req.statements.len() > MAX_STATEMENTS {
        return Err(PlanError::Refused("plan-too-many"));
    }
    if !(MIN_INSTALMENTS..=MAX_INSTALMENTS).contains(&req.count) {
        return Err(PlanError::Refused("plan-count"));
    }
    // Each statement's balance once: every one must have something due, and they sum to the
    // plan's total.
    let mut total = 0i64;
    for s in &req.statements {
        let due = crate::billing::balance(db.pool(), s).await?;
        if !due.is_positive() {
            return Err(PlanError::Refused("plan-nothing-due"));
        }
        total += due.cents();
    }
    let total = Money::from_cents(total);
    let amounts = split(total, req.count).ok_or(PlanError::Refused("plan-count"))?;
    let smallest = amounts.iter().copied().min().unwrap_or(Money::ZERO);
    let largest = amounts.iter().copied().max().unwrap_or(Money::ZERO);
    if smallest < minimum_instalment(db, &req.tenant).await? {
        return Err(PlanError::Refused("plan-below-minimum"));
    }
    if req.cap < largest {
        return Err(PlanError::Refused("plan-cap-too-low"));
    }
    let id = PlanId::generate();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO payment_plans (id, tenant_id, user_id, card_id, card_brand, card_last4,
             total_cents, cap_cents, every, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10)",
    )
    .bind(id.as_str())
    .bind(req.tenant.as_str())
    .bind(req.user.as_str())
    .bind(&req.card_id)
    .bind(&req.card_brand)
    .bind(&req.card_last4)
    .bind(total.cents())
    .bind(req.cap.cents())
    .bind(req.every.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for s in &req.statements {
        let held = sqlx::query(
            "INSERT INTO plan_statements (plan_id, statement_id, tenant_id, live) VALUES ($1, $2, $3, 1)",
        )
        .bind(id.as_str())
        .bind(s.as_str())
        .bind(req.tenant.as_str())
        .execute(&mut *tx)
        .await;
        match held {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(PlanError::Refused("plan-already"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    for (k, amount) in amounts.iter().enumerate() {
        let seq = i64::try_from(k).unwrap_or(0) + 1;
        let due = req.every.due(now, u32::try_from(k).unwrap_or(0));
        // The first is noticed by the form itself and charged now; the rest are noticed
        // NOTICE_SECS before they fall due.
        let (noticed, next) = if seq == 1 {
            (Some(now), now)
        } else {
            (None, due - NOTICE_SECS)
        };
        sqlx::query(
            "INSERT INTO plan_instalments (plan_id, seq, due_at, amount_cents, status, next_attempt_at, noticed_at)
             VALUES ($1, $2, $3, $4, 'scheduled', $5, $6)",
        )
        .bind(id.as_str())
        .bind(seq)
        .bind(due)
        .bind(amount.cents())
        .bind(next)
        .bind(noticed)
        .execute(&mut *tx)
        .await?;
    }
    for p in &req.patients {
        audit::record(
            &mut *tx,
            audit::Event {
                actor,
                tenant: Some(&req.tenant),
                patient: Some(p),
                action: "plan.created",
                resource: Some(id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

type PlanRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
);

type InstalmentRow = (
    i64,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

const SELECT_PLAN: &str = "SELECT id, tenant_id, user_id, card_id, card_brand, card_last4,
        total_cents, cap_cents, every, status, created_at FROM payment_plans";

async fn load(db: &Db, row: PlanRow) -> Result<Plan, sqlx::Error> {
    let (id, tenant, user, card_id, card_brand, card_last4, total, cap, every, status, created) =
        row;
    let rows: Vec<InstalmentRow> = sqlx::query_as(
        "SELECT seq, due_at, amount_cents, status, attempts, next_attempt_at, noticed_at,
                last_error, paid_at
         FROM plan_instalments WHERE plan_id = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(db.pool())
    .await?;
    Ok(Plan {
        id: PlanId::from_db(id),
        tenant: TenantId::from_db(tenant),
        user: UserId::from_db(user),
        card_id,
        card_brand,
        card_last4,
        total: Money::from_cents(total),
        cap: Money::from_cents(cap),
        every: Every::parse(&every).unwrap_or(Every::Month),
        status: PlanStatus::parse(&status),
        created_at: created,
        instalments: rows
            .into_iter()
            .map(|r| Instalment {
                seq: r.0,
                due_at: r.1,
                amount: Money::from_cents(r.2),
                status: InstalmentStatus::parse(&r.3),
                attempts: r.4,
                next_attempt_at: r.5,
                noticed_at: r.6,
                last_error: r.7,
                paid_at: r.8,
            })
            .collect(),
    })
}

async fn load_all(db: &Db, rows: Vec<PlanRow>) -> Result<Vec<Plan>, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(load(db, r).await?);
    }
    Ok(out)
}

/// A plan, whoever's it is (callers check whose).
pub async fn find(db: &Db, id: &PlanId) -> Result<Option<Plan>, sqlx::Error> {
    let row: Option<PlanRow> = sqlx::query_as(&format!("{SELECT_PLAN} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(r) => Ok(Some(load(db, r).await?)),
        None => Ok(None),
    }
}

/// A member's plans, newest first.
pub async fn of_member(db: &Db, user: &UserId) -> Result<Vec<Plan>, sqlx::Error> {
    let rows: Vec<PlanRow> = sqlx::query_as(&format!(
        "{SELECT_PLAN} WHERE user_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    load_all(db, rows).await
}

/// The plans over a patient's statements (any status), newest first: for staff pages.
pub async fn of_patient(
    db: &Db,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<Vec<Plan>, sqlx::Error> {
    let rows: Vec<PlanRow> = sqlx::query_as(&format!(
        "{SELECT_PLAN} WHERE tenant_id = $1 AND id IN (SELECT ps.plan_id FROM plan_statements ps
             JOIN statements s ON s.id = ps.statement_id WHERE s.patient_id = $2)
         ORDER BY created_at DESC, id"
    ))
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .fetch_all(db.pool())
    .await?;
    load_all(db, rows).await
}

/// The plan's statements, oldest first: instalments pay them in this order.
pub async fn statements_of(db: &Db, plan: &PlanId) -> Result<Vec<StatementId>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT ps.statement_id FROM plan_statements ps JOIN statements s ON s.id = ps.statement_id
         WHERE ps.plan_id = $1 ORDER BY s.statement_date, s.id",
    )
    .bind(plan.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(s,)| StatementId::from_db(s))
        .collect())
}

/// The patients a plan's statements belong to, for the audit trail.
pub async fn patients_of(db: &Db, plan: &PlanId) -> Result<Vec<PatientId>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT s.patient_id FROM plan_statements ps JOIN statements s ON s.id = ps.statement_id
         WHERE ps.plan_id = $1 ORDER BY s.patient_id",
    )
    .bind(plan.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(p,)| PatientId::from_db(p)).collect())
}

/// Ends a plan (canceled by its member, or completed): instalments not yet paid or in flight
/// are canceled and its statements freed for another plan. Returns whether it moved.
async fn close(db: &Db, plan: &PlanId, to: PlanStatus, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let moved = sqlx::query(
        "UPDATE payment_plans SET status = $1, updated_at = $2
         WHERE id = $3 AND status IN ('active', 'suspended')",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(plan.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if moved {
        sqlx::query(
            "UPDATE plan_instalments SET status = 'canceled', next_attempt_at = NULL
             WHERE plan_id = $1 AND status IN ('scheduled', 'retrying', 'action_required')",
        )
        .bind(plan.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE plan_statements SET live = NULL WHERE plan_id = $1")
            .bind(plan.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// The member cancels their plan: no further charge is made (one already in flight finishes
/// and is booked as any payment). Audited `plan.canceled`.
pub async fn cancel(db: &Db, plan: &Plan, actor: &Actor, now: i64) -> Result<bool, sqlx::Error> {
    let moved = close(db, &plan.id, PlanStatus::Canceled, now).await?;
    if moved {
        audit_plan(db, plan, actor, "plan.canceled", Outcome::Success).await?;
    }
    Ok(moved)
}

/// The member changes the most autopay may charge at once; refused below the next instalment.
pub async fn set_cap(
    db: &Db,
    plan: &Plan,
    cap: Money,
    actor: &Actor,
    now: i64,
) -> Result<(), PlanError> {
    if !cap.is_positive() {
        return Err(PlanError::Refused("plan-cap-invalid"));
    }
    sqlx::query(
        "UPDATE payment_plans SET cap_cents = $1, updated_at = $2
         WHERE id = $3 AND status IN ('active', 'suspended')",
    )
    .bind(cap.cents())
    .bind(now)
    .bind(plan.id.as_str())
    .execute(db.pool())
    .await?;
    audit_plan(db, plan, actor, "plan.cap.changed", Outcome::Success).await?;
    Ok(())
}

/// One audit event per patient the plan concerns.
pub(crate) async fn audit_plan(
    db: &Db,
    plan: &Plan,
    actor: &Actor,
    action: &'static str,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    for p in patients_of(db, &plan.id).await? {
        audit::record(
            db.pool(),
            audit::Event {
                actor,
                tenant: Some(&plan.tenant),
                patient: Some(&p),
                action,
                resource: Some(plan.id.as_str()),
                outcome,
            },
        )
        .await?;
    }
    Ok(())
}

/// After any payment is booked: the instalment it paid (if any) is marked paid, in the
/// booking's transaction. Plans whose statements are now paid off are completed by
/// `complete_paid_off`, which the caller runs after committing.
pub(crate) async fn mark_paid(
    conn: &mut sqlx::AnyConnection,
    checkout: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE plan_instalments SET status = 'paid', paid_at = $1, next_attempt_at = NULL,
             last_error = NULL
         WHERE checkout_id = $2 AND status IN ('scheduled', 'charging', 'retrying', 'action_required')",
    )
    .bind(now)
    .bind(checkout)
    .execute(conn)
    .await?;
    Ok(())
}

/// Completes every live plan over these statements whose balance is now nothing (paid by its
/// instalments or otherwise): nothing more will be charged.
pub(crate) async fn complete_paid_off(
    db: &Db,
    statements: &[StatementId],
    now: i64,
) -> Result<(), sqlx::Error> {
    for s in statements {
        let plan: Option<(String,)> = sqlx::query_as(
            "SELECT plan_id FROM plan_statements WHERE statement_id = $1 AND live = 1",
        )
        .bind(s.as_str())
        .fetch_optional(db.pool())
        .await?;
        let Some((plan,)) = plan else { continue };
        let plan = PlanId::from_db(plan);
        let all = statements_of(db, &plan).await?;
        if !balance_of(db, &all).await?.is_positive() {
            close(db, &plan, PlanStatus::Completed, now).await?;
        }
    }
    Ok(())
}
