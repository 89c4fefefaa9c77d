//! "Who viewed my record": the audit events in which a staff member viewed or changed one
//! patient's data (allowed, refused or failed), newest first, with the staff member's display
//! name and, for an event during an emergency (break-glass) grant or a view-as session, its
//! reason (and the view's ticket).
//!
//! Only staff actors are listed: an actor `user:<id>` whose account holds a staff role. The
//! patient themself (pay link or account), guarantors, the webhook, the CLI and other system
//! actors are left out, and so are the page's own views (`record_views.view`, by the patient).

use crate::access::{Action, Permit};
use crate::accounts::reason_aad;
use crate::crypto::{CryptoError, FieldCrypto};
use crate::db::Db;
use crate::ids::{PatientId, TenantId};
use crate::phi::Phi;

/// Events per page.
pub const PAGE: usize = 50;

/// A break-glass grant in force when the event happened.
#[derive(Debug)]
pub enum Emergency {
    /// The grant's written reason: during the grant the staff member touched no other patient's
    /// record, so the reason is about this one.
    Reason(Phi<String>),
    /// The grant also covered other patients, whom its free-text reason may name: withheld.
    Withheld,
}

/// One staff view or change of the patient's data.
#[derive(Debug)]
pub struct StaffView {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// `None` for staff accounts made before display names (shown as "a staff member").
    pub staff_name: Option<String>,
    /// The staff member's practice: the patient's, when they hold (or held) a role there;
    /// otherwise one they do hold (a refused attempt from another practice says which).
    pub staff_practice: TenantId,
    pub emergency: Option<Emergency>,
    /// The view-as session the event happened in (its reason and ticket), if any.
    pub view_as: Option<crate::view_as::Recorded>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordViewsError {
    #[error("the permit is not for reading this patient's access log")]
    WrongPermit,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    ViewAs(#[from] crate::view_as::ViewAsError),
}

type Row = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    String,
);

/// Up to `PAGE + 1` staff events about the patient with `seq` below `before` (the caller pages
/// by the last seq shown), newest first. The permit must be for `ViewOwnAccessLog` on exactly
/// this patient of this practice.
pub async fn staff_views(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
    patient: &PatientId,
    before: Option<i64>,
) -> Result<Vec<StaffView>, RecordViewsError> {
    let tenant = permit.tenant().clone();
    if permit.action() != Action::ViewOwnAccessLog || !permit.covers_patient(&tenant, patient) {
        return Err(RecordViewsError::WrongPermit);
    }
    // The permit event of a refund is followed by `payment.refund.issue`, which says how it
    // went: one line per refund.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.seq, e.at, e.action, e.outcome, u.display_name, u.id,
             (SELECT MAX(g.id) FROM user_grants g
              WHERE g.user_id = u.id AND g.tenant_id = e.tenant_id AND g.expires_at IS NOT NULL
                AND g.created_at <= e.at AND e.at < g.expires_at) AS grant_id,
             COALESCE(
                 (SELECT MIN(h.tenant_id) FROM user_grants h
                  WHERE h.user_id = u.id AND h.tenant_id = e.tenant_id),
                 (SELECT MIN(h.tenant_id) FROM user_grants h
                  WHERE h.user_id = u.id AND h.role NOT IN ('patient', 'guarantor')),
                 e.tenant_id) AS staff_tenant
         FROM audit_events e JOIN users u ON e.actor = 'user:' || u.id
         WHERE e.patient_id = $1 AND e.tenant_id = $2 AND e.seq < $3
           AND EXISTS (SELECT 1 FROM user_grants s
                       WHERE s.user_id = u.id AND s.role NOT IN ('patient', 'guarantor'))
           AND NOT (e.action = 'payment.refund' AND e.outcome = 'success')
           AND e.action NOT IN ('viewas.stop', 'viewas.end', 'viewas.expire', 'viewas.consent')
         ORDER BY e.seq DESC LIMIT $4",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::try_from(PAGE + 1).unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, at, action, outcome, staff_name, user, grant, staff_tenant) in rows {
        let emergency = match grant {
            Some(g) => Some(emergency(db, crypto, &tenant, patient, &user, g).await?),
            None => None,
        };
        let view_as = crate::view_as::during(db, crypto, &tenant, patient, &user, at).await?;
        out.push(StaffView {
            seq,
            at,
            action,
            outcome,
            staff_name,
            staff_practice: TenantId::from_db(staff_tenant),
            emergency,
            view_as,
        });
    }
    Ok(out)
}

/// The reason of break-glass grant `grant`, or `Withheld` when its holder touched another
/// patient's record while it lasted (its reason may name them) or it has no reason on record.
async fn emergency(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    user: &str,
    grant: i64,
) -> Result<Emergency, RecordViewsError> {
    let (from, until, reason_ct): (i64, i64, Option<Vec<u8>>) =
        sqlx::query_as("SELECT created_at, expires_at, reason_ct FROM user_grants WHERE id = $1")
            .bind(grant)
            .fetch_one(db.pool())
            .await?;
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events
         WHERE actor = $1 AND at >= $2 AND at < $3
           AND patient_id IS NOT NULL AND patient_id <> $4",
    )
    .bind(format!("user:{user}"))
    .bind(from)
    .bind(until)
    .bind(patient.as_str())
    .fetch_one(db.pool())
    .await?;
    let Some(ct) = reason_ct.filter(|_| others == 0) else {
        return Ok(Emergency::Withheld);
    };
    let row = grant.to_string();
    Ok(Emergency::Reason(
        crypto.decrypt_str(reason_aad(tenant, &row), &ct).await?,
    ))
}
