//! The audit trail: one append-only record per view of PHI and per change, written here only,
//! and the hash chain that proves the records were not edited afterwards.
//!
//! **How the chain is formed, and why.** Writers are unchanged: `record` inserts one row, inside
//! the change's own transaction for a change (so the event and the change commit or vanish
//! together), and a view goes to the group-commit writer (`group_commit::GroupWriter`: many views share
//! one commit, and each page waits only until its view is durable). The row's `seq` (an identity or AUTOINCREMENT column) gives every event
//! its place in one total order on both databases. Hashing at insert time instead would need the
//! previous event's hash, that is one writer at a time across every transaction: change events
//! would hold the chain's lock until their transaction ends, and every view would wait behind
//! them. So a single logical *sealer* (`chain::seal_pending`, run every second by `serve`) reads
//! committed events in `seq` order and appends one row per seq to the insert-only `audit_seals`:
//! `hash = SHA-256(prev_hash || canonical bytes of the event)` (`chain` documents the bytes).
//!
//! - *Gaps.* On PostgreSQL a seq can belong to a transaction still open (it commits later) or
//!   rolled back (it never appears). The sealer stops at the first missing seq; once it has seen
//!   that seq missing for `chain::GAP_GRACE_SECS` it seals a `gap` for it and goes on. An event
//!   that commits after its seq was sealed as a gap is outside the chain: `verify` reports it and
//!   the sealer raises an alert once. SQLite gives a rolled-back insert's seq to the next insert,
//!   so there a gap only means a row removed before it was sealed; the code is the same.
//! - *Two sealers* (two servers, or `audit anchor` beside a server) never fork the chain: the
//!   primary key on `audit_seals.seq` refuses the second seal of a seq, and the loser rolls its
//!   batch back, reads the new head and continues from it.
//! - *Seal lag* (how long the oldest unsealed event has waited) is measured on every pass and
//!   alerted past `chain::LAG_ALERT_SECS`; until sealed, an event is protected only by the
//!   append-only triggers.
//! - *What it proves.* The chain has no key: someone holding the database's credentials can drop
//!   the triggers, rewrite events *and* recompute every later seal. Signed checkpoints of the
//!   head, kept outside the database (`anchor`), catch that for everything up to the newest
//!   checkpoint, and catch the newest events being cut off. `verify` walks events and seals
//!   together and names the first broken seq and why; `export` writes a window of the chain as
//!   JSON lines that `verify --file` checks offline.

pub mod anchor;
pub mod chain;
pub mod export;
pub mod record_views;
pub mod verify;
pub mod viewer;

use crate::ids::{PatientId, TenantId};
use sqlx::Any;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// Who acted, where from, under which request. Built once per request by the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    /// A unique actor id: `link:lnk_…` for a patient on a pay link, `system:webhook`, `cli`.
    pub id: String,
    /// For impersonation: the staff member acting on the actor's behalf.
    pub on_behalf_of: Option<String>,
    pub request_id: Option<String>,
    pub address: Option<String>,
    /// The request's time on the server's injectable clock (unix seconds); `None` off requests.
    pub at: Option<i64>,
}

impl Actor {
    pub fn system(id: &str) -> Self {
        Actor {
            id: id.to_owned(),
            ..Default::default()
        }
    }
}

/// One audit event. `action` is a stable dotted name (`statement.itemised.view`); `resource`
/// an opaque id. Neither may carry PHI.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub tenant: Option<&'a TenantId>,
    pub patient: Option<&'a PatientId>,
    pub action: &'static str,
    pub resource: Option<&'a str>,
    pub outcome: Outcome,
}

pub(crate) const INSERT: &str =
    "INSERT INTO audit_events (id, at, actor, on_behalf_of, tenant_id, patient_id,
     action, resource, request_id, address, outcome)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Appends one event, on the pool or inside the caller's transaction. A view or refusal that
/// has no transaction of its own goes through `GroupWriter` instead (group commit).
pub async fn record<'e, E>(exec: E, ev: Event<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(INSERT)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(ev.actor.at.unwrap_or_else(crate::clock::now_unix))
        .bind(&ev.actor.id)
        .bind(ev.actor.on_behalf_of.as_deref())
        .bind(ev.tenant.map(|t| t.as_str().to_owned()))
        .bind(ev.patient.map(|p| p.as_str().to_owned()))
        .bind(ev.action)
        .bind(ev.resource)
        .bind(ev.actor.request_id.as_deref())
        .bind(ev.actor.address.as_deref())
        .bind(ev.outcome.as_str())
        .execute(exec)
        .await?;
    // Counted when written (an event whose transaction later rolls back is counted too).
    crate::observe::audit_event(ev.action, ev.outcome.as_str());
    Ok(())
}

/// An audit event as read back (tests and, later, the security officer's views).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredEvent {
    pub actor: String,
    pub tenant_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub outcome: String,
}

/// Every event about one patient, oldest first.
pub async fn for_patient(
    db: &crate::db::Db,
    patient: &PatientId,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor, tenant_id, patient_id, action, resource, request_id, address, outcome
         FROM audit_events WHERE patient_id = $1 ORDER BY seq",
    )
    .bind(patient.as_str())
    .fetch_all(db.pool())
    .await
}
