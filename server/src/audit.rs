//! The audit trail: one append-only record per view of PHI and per change, written here only.

use crate::ids::{PatientId, TenantId};
use sqlx::Any;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
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

/// Appends one event, on the pool or inside the caller's transaction.
pub async fn record<'e, E>(exec: E, ev: Event<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, on_behalf_of, tenant_id, patient_id, action,
             resource, request_id, address, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
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
