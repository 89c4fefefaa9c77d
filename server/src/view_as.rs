//! View-as sessions: a support agent or practice admin sees one patient's own pages for at most
//! 30 minutes, with a reason and a ticket on record. What a view-as session is, whose pages it
//! shows, and where it is stored; the HTTP layer enforces the rest (read-only, the banner).

use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{LinkId, PatientId, TenantId, UserId};
use crate::phi::Phi;

/// How long a view-as session lasts at most.
pub const VIEW_AS_SECS: i64 = 30 * 60;
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_TICKET_CHARS: usize = 40;

/// What a staff member gives to start: why, and the support ticket it is for.
pub struct Request {
    pub reason: Phi<String>,
    pub ticket: String,
}

/// Which field of the start form is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    Reason,
    Ticket,
}

impl Request {
    /// Parses the start form: a reason of 1–500 characters (trimmed) and a ticket reference of
    /// letters, digits and `. _ # / -`, up to 40, starting with a letter or digit.
    pub fn parse(reason: &str, ticket: &str) -> Result<Request, RequestError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(RequestError::Reason);
        }
        let ticket = ticket.trim();
        let shape = ticket.chars().count() <= MAX_TICKET_CHARS
            && ticket
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && ticket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_#/".contains(c));
        if !shape {
            return Err(RequestError::Ticket);
        }
        Ok(Request {
            reason: Phi::new(reason.to_owned()),
            ticket: ticket.to_owned(),
        })
    }
}

/// Whose pages a view shows: the patient's own account (summary of every statement, receipts,
/// household), or, for a patient without one, the statement of their newest pay link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Member(UserId),
    Link(LinkId),
}

#[derive(Debug, thiserror::Error)]
pub enum ViewAsError {
    /// The account holding the patient grant is a staff account: never viewed as.
    #[error("a staff account cannot be viewed as")]
    StaffAccount,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Where the patient's own pages are, `None` when they have neither an account nor a pay link.
/// Refuses when the account holding the patient's grant is not a member account.
pub async fn target(
    db: &Db,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<Option<Target>, ViewAsError> {
    let account: Option<(String, String)> = sqlx::query_as(
        "SELECT u.id, u.kind FROM user_grants g JOIN users u ON u.id = g.user_id
         WHERE g.patient_id = $1 AND g.tenant_id = $2 AND g.role = 'patient'
           AND g.revoked_at IS NULL AND u.disabled_at IS NULL
         ORDER BY g.id LIMIT 1",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .fetch_optional(db.pool())
    .await?;
    if let Some((user, kind)) = account {
        if kind != "member" {
            return Err(ViewAsError::StaffAccount);
        }
        return Ok(Some(Target::Member(UserId::from_db(user))));
    }
    let link: Option<String> = sqlx::query_scalar(
        "SELECT l.id FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE s.patient_id = $1 AND l.tenant_id = $2
         ORDER BY l.created_at DESC, l.id DESC LIMIT 1",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .fetch_optional(db.pool())
    .await?;
    Ok(link.map(|l| Target::Link(LinkId::from_db(l))))
}

/// Where a view-as reason's ciphertext is bound: the practice and the view-as row.
pub fn reason_aad<'a>(tenant: &'a TenantId, id: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "view_as_sessions",
        column: "reason",
        row: id,
    }
}

/// A new view-as session's record.
pub struct NewView<'a> {
    pub id: &'a str,
    pub tenant: &'a TenantId,
    pub patient: &'a PatientId,
    pub staff: &'a UserId,
    pub request: &'a Request,
    pub now: i64,
}

/// Records a view-as session inside the transaction its permit's audit event was written in
/// (call `FieldCrypto::ready_field_key` for the practice first: no key is made inside it).
/// Returns when it ends by itself.
pub async fn record_start(
    tx: &mut crate::db::WriteTx,
    crypto: &FieldCrypto,
    v: NewView<'_>,
) -> Result<i64, ViewAsError> {
    let sealed = crypto
        .encrypt_str(reason_aad(v.tenant, v.id), &v.request.reason)
        .await?;
    let expires = v.now + VIEW_AS_SECS;
    sqlx::query(
        "INSERT INTO view_as_sessions (id, tenant_id, patient_id, staff_user_id, ticket,
             reason_ct, started_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(v.id)
    .bind(v.tenant.as_str())
    .bind(v.patient.as_str())
    .bind(v.staff.as_str())
    .bind(&v.request.ticket)
    .bind(sealed)
    .bind(v.now)
    .bind(expires)
    .execute(&mut **tx)
    .await?;
    Ok(expires)
}

/// Marks a view-as session ended early (stopped, or the staff member signed out). A session
/// that ran out keeps its expiry as its end.
pub async fn record_end(db: &Db, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE view_as_sessions SET ended_at = $1
         WHERE id = $2 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Whether the practice lets staff in view-as take a payment the patient dictates.
pub async fn act_on_behalf(db: &Db, tenant: &TenantId) -> Result<bool, sqlx::Error> {
    let on: Option<i64> = sqlx::query_scalar("SELECT act_on_behalf FROM tenants WHERE id = $1")
        .bind(tenant.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(on == Some(1))
}

/// Turns act-on-behalf on or off, inside the transaction of the permit that records it.
pub async fn set_act_on_behalf(
    tx: &mut crate::db::WriteTx,
    tenant: &TenantId,
    on: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET act_on_behalf = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A view-as session as "who viewed my record" shows it.
#[derive(Debug)]
pub struct Recorded {
    pub ticket: String,
    pub reason: Phi<String>,
}

/// The view-as session `staff` held on `patient` at time `at`, if the event happened in one.
pub async fn during(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    staff: &str,
    at: i64,
) -> Result<Option<Recorded>, ViewAsError> {
    let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, ticket, reason_ct FROM view_as_sessions
         WHERE patient_id = $1 AND tenant_id = $2 AND staff_user_id = $3
           AND started_at <= $4 AND $4 <= COALESCE(ended_at, expires_at)
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .bind(staff)
    .bind(at)
    .fetch_optional(db.pool())
    .await?;
    let Some((id, ticket, ct)) = row else {
        return Ok(None);
    };
    let reason = crypto.decrypt_str(reason_aad(tenant, &id), &ct).await?;
    Ok(Some(Recorded { ticket, reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_form_rules() {
        assert!(Request::parse("caller asked about a charge", "SUP-1234").is_ok());
        assert!(Request::parse("x", "a").is_ok());
        assert_eq!(
            Request::parse("  ", "SUP-1").err(),
            Some(RequestError::Reason)
        );
        assert_eq!(
            Request::parse(&"x".repeat(501), "SUP-1").err(),
            Some(RequestError::Reason)
        );
        assert!(Request::parse(&"é".repeat(500), "SUP-1").is_ok());
        for bad in ["", "-SUP", "SUP 1", "SUP<1>", &"A".repeat(41)] {
            assert_eq!(
                Request::parse("why", bad).err(),
                Some(RequestError::Ticket),
                "{bad:?}"
            );
        }
        let ok = Request::parse(" why ", " ZD#42/a.b_c ").ok();
        assert_eq!(ok.map(|r| r.ticket), Some("ZD#42/a.b_c".to_owned()));
    }
}
