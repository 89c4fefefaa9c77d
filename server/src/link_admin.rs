//! Staff actions on a patient's pay links (the support console): listing them with their state
//! in plain words, issuing a fresh link for a statement (the older live ones revoked), revoking
//! one, and unlocking a locked one with the reason recorded encrypted. Every function takes the
//! permit for the patient and works inside the transaction the permit's audit event was written
//! in, so the change and its event commit together.

use crate::access::Permit;
use crate::crypto::{random_token, token_hash, CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{LinkId, StatementId, UnlockId, UserId};
use crate::phi::Phi;

/// Longest unlock reason staff may write.
pub const MAX_REASON_CHARS: usize = 500;

/// A pay link as staff see it (no token: only its hash is stored).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LinkLine {
    pub id: LinkId,
    pub statement_id: StatementId,
    pub statement_date: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub locked_at: Option<i64>,
    pub failed_attempts: i64,
    pub first_used_at: Option<i64>,
}

/// Where a link stands, in the words staff read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Active,
    Locked,
    Expired,
    Revoked,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Active => "active",
            LinkStatus::Locked => "locked",
            LinkStatus::Expired => "expired",
            LinkStatus::Revoked => "revoked",
        }
    }
}

impl LinkLine {
    /// Revoked says more than expired (someone ended it), and either says more than locked (a
    /// dead link cannot be unlocked back to life).
    pub fn status(&self, now: i64) -> LinkStatus {
        if self.revoked_at.is_some() {
            LinkStatus::Revoked
        } else if now >= self.expires_at {
            LinkStatus::Expired
        } else if self.locked_at.is_some() {
            LinkStatus::Locked
        } else {
            LinkStatus::Active
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkAdminError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The statement or link is not the permit's patient's: a bug in the caller, refused before
    /// anything changes.
    #[error("permit does not cover this link")]
    NotPermitted,
}

/// Every pay link of the permit's patient in its practice, newest first.
pub async fn links_of(db: &Db, permit: &Permit) -> Result<Vec<LinkLine>, LinkAdminError> {
    let patient = permit.patient().ok_or(LinkAdminError::NotPermitted)?;
    Ok(sqlx::query_as(
        "SELECT l.id, l.statement_id, s.statement_date, l.created_at, l.expires_at, l.revoked_at,
                l.locked_at, l.failed_attempts, l.first_used_at
         FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE s.patient_id = $1 AND s.tenant_id = $2 AND l.tenant_id = $2
         ORDER BY l.created_at DESC, l.id",
    )
    .bind(patient.as_str())
    .bind(permit.tenant().as_str())
    .fetch_all(db.pool())
    .await?)
}

/// Whether the statement is the permit's patient's, in its practice.
async fn statement_covered(
    conn: &mut sqlx::AnyConnection,
    permit: &Permit,
    statement: &StatementId,
) -> Result<bool, LinkAdminError> {
    let patient = permit.patient().ok_or(LinkAdminError::NotPermitted)?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM statements WHERE id = $1 AND patient_id = $2 AND tenant_id = $3",
    )
    .bind(statement.as_str())
    .bind(patient.as_str())
    .bind(permit.tenant().as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(n == 1)
}

/// The statement a link points at, when the link is the permit's patient's.
async fn link_statement(
    conn: &mut sqlx::AnyConnection,
    permit: &Permit,
    link: &LinkId,
) -> Result<StatementId, LinkAdminError> {
    let patient = permit.patient().ok_or(LinkAdminError::NotPermitted)?;
    let statement: Option<String> = sqlx::query_scalar(
        "SELECT l.statement_id FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE l.id = $1 AND s.patient_id = $2 AND s.tenant_id = $3 AND l.tenant_id = $3",
    )
    .bind(link.as_str())
    .bind(patient.as_str())
    .bind(permit.tenant().as_str())
    .fetch_optional(&mut *conn)
    .await?;
    statement
        .map(StatementId::from_db)
        .ok_or(LinkAdminError::NotPermitted)
}

/// A fresh link issued by staff.
#[derive(Debug)]
pub struct Reissued {
    pub id: LinkId,
    /// Shown once to the caller; only its hash is stored.
    pub token: String,
    /// How many older live links of the statement were revoked.
    pub revoked: u64,
}

/// Issues a fresh link to one of the permit's patient's statements, valid `ttl_days`, and
/// revokes the statement's older links that were still live (locked ones too: the new link
/// replaces them), so only the newest one sent works.
pub async fn reissue(
    conn: &mut sqlx::AnyConnection,
    permit: &Permit,
    statement: &StatementId,
    now: i64,
    ttl_days: u32,
) -> Result<Reissued, LinkAdminError> {
    if !statement_covered(conn, permit, statement).await? {
        return Err(LinkAdminError::NotPermitted);
    }
    let revoked = sqlx::query(
        "UPDATE pay_links SET revoked_at = $1
         WHERE statement_id = $2 AND tenant_id = $3 AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(statement.as_str())
    .bind(permit.tenant().as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let id = LinkId::generate();
    let token = random_token();
    sqlx::query(
        "INSERT INTO pay_links (id, tenant_id, statement_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(permit.tenant().as_str())
    .bind(statement.as_str())
    .bind(token_hash(&token))
    .bind(now)
    .bind(now + i64::from(ttl_days) * 86_400)
    .execute(&mut *conn)
    .await?;
    Ok(Reissued { id, token, revoked })
}

/// Revokes one of the permit's patient's links; false when it was revoked already.
pub async fn revoke(
    conn: &mut sqlx::AnyConnection,
    permit: &Permit,
    link: &LinkId,
    now: i64,
) -> Result<bool, LinkAdminError> {
    link_statement(conn, permit, link).await?;
    let n =
        sqlx::query("UPDATE pay_links SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(link.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok(n == 1)
}

/// Why an unlock reason was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonProblem {
    Empty,
    TooLong,
}

/// The reason as written (trimmed), if it is one: not blank, at most `MAX_REASON_CHARS`.
pub fn check_reason(raw: &str) -> Result<Phi<String>, ReasonProblem> {
    let reason = raw.trim();
    if reason.is_empty() {
        Err(ReasonProblem::Empty)
    } else if reason.chars().count() > MAX_REASON_CHARS {
        Err(ReasonProblem::TooLong)
    } else {
        Ok(Phi::new(reason.to_owned()))
    }
}

/// Where an unlock reason's ciphertext is bound: the link's practice and the unlock's row.
pub fn reason_aad<'a>(tenant: &'a crate::ids::TenantId, unlock: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "pay_link_unlocks",
        column: "reason",
        row: unlock,
    }
}

/// Unlocks one of the permit's patient's links that is locked and still live: its lock and
/// failed-answer count cleared, who did it and why recorded (the reason encrypted). False when
/// the link was not locked (or is dead): nothing changes then. Call
/// `FieldCrypto::ready_field_key` for the practice before the transaction opens, so encrypting
/// here creates no key.
pub async fn unlock(
    conn: &mut sqlx::AnyConnection,
    crypto: &FieldCrypto,
    permit: &Permit,
    link: &LinkId,
    by: &UserId,
    reason: &Phi<String>,
    now: i64,
) -> Result<bool, LinkAdminError> {
    link_statement(conn, permit, link).await?;
    // A locked link takes no answers (a claim needs it unlocked), so its count cannot move
    // between this read and the update.
    let live_lock = "id = $1 AND locked_at IS NOT NULL AND revoked_at IS NULL AND expires_at > $2";
    let failed: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT failed_attempts FROM pay_links WHERE {live_lock}"
    ))
    .bind(link.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(failed) = failed else {
        return Ok(false);
    };
    let n = sqlx::query(&format!(
        "UPDATE pay_links SET locked_at = NULL, failed_attempts = 0 WHERE {live_lock}"
    ))
    .bind(link.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n != 1 {
        return Ok(false);
    }
    let id = UnlockId::generate();
    let sealed = crypto
        .encrypt_str(reason_aad(permit.tenant(), id.as_str()), reason)
        .await?;
    sqlx::query(
        "INSERT INTO pay_link_unlocks (id, tenant_id, link_id, unlocked_by, failed_attempts,
             reason_ct, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(permit.tenant().as_str())
    .bind(link.as_str())
    .bind(by.as_str())
    .bind(failed)
    .bind(sealed)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(expires_at: i64) -> LinkLine {
        LinkLine {
            id: LinkId::generate(),
            statement_id: StatementId::generate(),
            statement_date: "2026-11-01".into(),
            created_at: 0,
            expires_at,
            revoked_at: None,
            locked_at: None,
            failed_attempts: 0,
            first_used_at: None,
        }
    }

    #[test]
    fn status_words() {
        let mut l = line(100);
        assert_eq!(l.status(99), LinkStatus::Active);
        assert_eq!(l.status(100), LinkStatus::Expired);
        l.locked_at = Some(1);
        assert_eq!(l.status(99), LinkStatus::Locked);
        assert_eq!(l.status(100), LinkStatus::Expired);
        l.revoked_at = Some(2);
        assert_eq!(l.status(99), LinkStatus::Revoked);
        assert_eq!(l.status(100), LinkStatus::Revoked);
    }

    #[test]
    fn reasons() {
        assert_eq!(check_reason("  ").err(), Some(ReasonProblem::Empty));
        assert_eq!(
            check_reason(&"é".repeat(MAX_REASON_CHARS + 1)).err(),
            Some(ReasonProblem::TooLong)
        );
        let ok = check_reason(&format!(" {} ", "é".repeat(MAX_REASON_CHARS))).expect("fits");
        assert_eq!(ok.expose().chars().count(), MAX_REASON_CHARS);
    }
}
