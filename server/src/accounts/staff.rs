//! Staff accounts: creation with an enrolment link, the operator's list/disable/force-reset,
//! Cognito staff records (`upsert_external`, `clear_must_reset`) and break-glass grants.

use super::email::by_email;
use super::names::StaffName;
use super::{email_index, open_email, AccountError, Kind, NewAccount};
use crate::access::Role;
use crate::crypto::{random_token, token_hash, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{TenantId, UserId};
use crate::messages::texts;
use crate::phi::Phi;

pub const ENROLMENT_TTL_SECS: i64 = 72 * 3600;

/// Creates a staff account with one grant and no display name (patients then see "a staff
/// member of <practice>"); see `add_staff`.
pub async fn add_user(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    role: Role,
    tenant: Option<&TenantId>,
    now: i64,
) -> Result<(UserId, String), AccountError> {
    add_staff(db, crypto, email, role, tenant, None, None, now).await
}

/// The email carrying a one-time set-up link to `email`, sealed before the transaction that
/// makes the link (`reset`: the account was reset, not created).
async fn setup_email(
    crypto: &FieldCrypto,
    email: &str,
    public_url: &str,
    token: &str,
    reset: bool,
    now: i64,
) -> Result<crate::messages::Sealed, AccountError> {
    let link = format!("{}/staff/enrol/{token}", public_url.trim_end_matches('/'));
    let text = texts::staff_setup_email(&link, ENROLMENT_TTL_SECS / 3600, reset);
    let to = Phi::new(super::normalize_email(email));
    super::seal_email(crypto, to, texts::STAFF_SETUP, text, now).await
}

/// Creates a staff account with one grant and its display name (what patients see on "who
/// viewed my record"), and returns it with a one-time enrolment token. With `email_link_from`
/// (the portal's public address), the set-up link is also emailed to the account, queued in
/// the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn add_staff(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    role: Role,
    tenant: Option<&TenantId>,
    name: Option<&StaffName>,
    email_link_from: Option<&str>,
    now: i64,
) -> Result<(UserId, String), AccountError> {
    if role.is_staff() && role != Role::PlatformAdmin && tenant.is_none() {
        return Err(AccountError::Bad("this role needs --practice"));
    }
    let account = NewAccount::prepare(crypto, email).await?;
    let id = account.id.clone();
    let token = random_token();
    let mail = match email_link_from {
        Some(base) => Some(setup_email(crypto, email, base, &token, false, now).await?),
        None => None,
    };
    let mut tx = db.begin_write().await?;
    account.check_free(&mut tx).await?;
    sqlx::query(
        "INSERT INTO users (id, email_index, email_ct, created_at, display_name)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(&account.email_index)
    .bind(&account.email_ct)
    .bind(now)
    .bind(name.map(|n| n.as_str().to_owned()))
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO user_grants (user_id, role, tenant_id, granted_by, created_at) VALUES ($1, $2, $3, 'cli', $4)")
        .bind(id.as_str())
        .bind(role.as_str())
        .bind(tenant.map(|t| t.as_str().to_owned()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO enrolment_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(id.as_str())
    .bind(now + ENROLMENT_TTL_SECS)
    .execute(&mut *tx)
    .await?;
    if let Some(m) = &mail {
        crate::messages::queue(&mut tx, m, now).await?;
    }
    tx.commit().await?;
    Ok((id, token))
}

/// The account an unused, unexpired enrolment token belongs to.
pub async fn enrolment_user(
    db: &Db,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT user_id FROM enrolment_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(id.map(UserId::from_db))
}

pub async fn disable(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let index = email_index(crypto, email).await?;
    let mut tx = db.begin_write().await?;
    let r = sqlx::query("UPDATE users SET disabled_at = $1, sessions_revoked_before = $1 WHERE email_index = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(&index)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM trusted_devices WHERE user_id IN (SELECT id FROM users WHERE email_index = $1)",
    )
    .bind(&index)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub struct UserRow {
    pub email: String,
    pub roles: Vec<String>,
    pub enrolled: bool,
    pub disabled: bool,
}

pub async fn list(db: &Db, crypto: &FieldCrypto) -> Result<Vec<UserRow>, AccountError> {
    let users: Vec<(String, Vec<u8>, i64, Option<i64>)> =
        sqlx::query_as("SELECT id, email_ct, totp_confirmed, disabled_at FROM users")
            .fetch_all(db.pool())
            .await?;
    let mut out = vec![];
    for (id, email_ct, enrolled, disabled) in users {
        let email = open_email(crypto, &UserId::from_db(id.clone()), &email_ct)
            .await?
            .expose()
            .clone();
        let grants: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT role, tenant_id FROM user_grants WHERE user_id = $1 ORDER BY id",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?;
        let roles = grants
            .into_iter()
            .map(|(r, t)| match t {
                Some(t) => format!("{r}@{t}"),
                None => r,
            })
            .collect();
        out.push(UserRow {
            email,
            roles,
            enrolled: enrolled == 1,
            disabled: disabled.is_some(),
        });
    }
    out.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(out)
}

/// The local record of a Cognito user, keyed by the token's `sub` (never by the email, which a
/// user may be able to change), created on first sign-in; its Cognito-given grants are replaced
/// from `cognito:groups` each time (emergency grants are kept). Returns the id and whether the
/// account may sign in (not disabled, no pending forced reset). An email already used by a
/// different account refuses the sign-in rather than merging the two.
pub async fn upsert_external(
    db: &Db,
    crypto: &FieldCrypto,
    subject: &str,
    email: &str,
    grants: &[(Role, Option<TenantId>)],
    now: i64,
) -> Result<(UserId, bool), AccountError> {
    // Sealed up front (a first use of the platform keys writes them); used only if new.
    let account = NewAccount::prepare(crypto, email).await;
    let mut tx = db.begin_write().await?;
    let row: Option<(String, Option<i64>, i64, String)> = sqlx::query_as(
        "SELECT id, disabled_at, must_reset, kind FROM users WHERE external_subject = $1",
    )
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, usable) = match row {
        // A patient's or guarantor's Cognito user never becomes staff, whatever its groups say.
        Some((_, _, _, kind)) if kind != Kind::Staff.as_str() => {
            return Err(AccountError::Bad(
                "a member account cannot sign in as staff",
            ));
        }
        Some((id, disabled, must_reset, _)) => {
            (UserId::from_db(id), disabled.is_none() && must_reset == 0)
        }
        None => {
            let account = account?;
            if account.check_free(&mut tx).await.is_err() {
                return Err(AccountError::Bad(
                    "email already belongs to another account",
                ));
            }
            let id = account.id.clone();
            sqlx::query("INSERT INTO users (id, email_index, email_ct, external_subject, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.as_str())
                .bind(&account.email_index)
                .bind(&account.email_ct)
                .bind(subject)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            (id, true)
        }
    };
    sqlx::query("DELETE FROM user_grants WHERE user_id = $1 AND granted_by = 'cognito'")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    for (role, tenant) in grants {
        sqlx::query("INSERT INTO user_grants (user_id, role, tenant_id, granted_by, created_at) VALUES ($1, $2, $3, 'cognito', $4)")
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(tenant.as_ref().map(|t| t.as_str().to_owned()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((id, usable))
}

/// Marks an account as needing a password reset and ends its sessions. For local accounts
/// returns a fresh set-up link token (password and TOTP are set again), also emailed to the
/// account with `email_link_from` (the portal's public address).
pub async fn force_reset(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    email_link_from: Option<&str>,
    now: i64,
) -> Result<Option<String>, AccountError> {
    let id = by_email(db, crypto, email)
        .await?
        .ok_or(AccountError::Bad("no account with that email"))?;
    let id = id.as_str();
    let token = random_token();
    let mail = match email_link_from {
        Some(base) => Some(setup_email(crypto, email, base, &token, true, now).await?),
        None => None,
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET must_reset = 1, totp_confirmed = 0, totp_secret_ct = NULL, sessions_revoked_before = $1 WHERE id = $2",
    )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // Whoever held the old password and second factor no longer skips the sign-in delay.
    super::revoke_trusted_devices(&mut *tx, &UserId::from_db(id.to_owned())).await?;
    sqlx::query(
        "INSERT INTO enrolment_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(id)
    .bind(now + ENROLMENT_TTL_SECS)
    .execute(&mut *tx)
    .await?;
    if let Some(m) = &mail {
        crate::messages::queue(&mut tx, m, now).await?;
    }
    tx.commit().await?;
    Ok(Some(token))
}

/// Clears the portal's must-reset flag of a Cognito account (staff or member) once its password
/// was reset at Cognito with the emailed code. Returns whether an account was cleared.
pub async fn clear_must_reset(db: &Db, subject: &str) -> Result<bool, AccountError> {
    let r = sqlx::query(
        "UPDATE users SET must_reset = 0 WHERE external_subject = $1 AND must_reset = 1",
    )
    .bind(subject)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Longest emergency grant a security officer may give.
pub const BREAK_GLASS_MAX_MINUTES: i64 = 240;

/// Gives `user` a time-boxed extra role in a practice, with the written reason on record:
/// encrypted under the practice's field key and bound to the grant's row (whose id the insert
/// makes), in the same transaction as the grant.
pub async fn grant_break_glass(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    tenant: &TenantId,
    request: &BreakGlassRequest,
    now: i64,
) -> Result<i64, AccountError> {
    let expires = now + request.minutes * 60;
    // Readied first: encrypting inside the transaction then needs no key to be created.
    crypto.ready_field_key(tenant).await?;
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO user_grants (user_id, role, tenant_id, expires_at, granted_by, created_at)
         VALUES ($1, $2, $3, $4, $1, $5) RETURNING id",
    )
    .bind(user.as_str())
    .bind(request.role.as_str())
    .bind(tenant.as_str())
    .bind(expires)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let row = id.to_string();
    let sealed = crypto
        .encrypt_str(reason_aad(tenant, &row), &request.reason)
        .await?;
    sqlx::query("UPDATE user_grants SET reason_ct = $1 WHERE id = $2")
        .bind(sealed)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(expires)
}

/// Where a break-glass reason's ciphertext is bound: the grant's practice and row.
pub fn reason_aad<'a>(tenant: &'a TenantId, grant_id: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "user_grants",
        column: "reason",
        row: grant_id,
    }
}

/// Seals break-glass reasons written in the clear before they were encrypted (migration 0006
/// added `reason_ct`): each is encrypted into `reason_ct` and its plaintext emptied, guarded on
/// the plaintext so a concurrent run seals it once. Run whenever the database is opened;
/// returns how many were sealed.
pub async fn seal_legacy_reasons(db: &Db, crypto: &FieldCrypto) -> Result<u64, AccountError> {
    // Only break-glass grants had a reason, and each names its practice.
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, tenant_id, reason FROM user_grants
         WHERE reason IS NOT NULL AND tenant_id IS NOT NULL ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut sealed = 0;
    for (id, tenant, reason) in rows {
        let row = id.to_string();
        let tenant = TenantId::from_db(tenant);
        let ct = crypto
            .encrypt_str(reason_aad(&tenant, &row), &Phi::new(reason.clone()))
            .await?;
        let r = sqlx::query(
            "UPDATE user_grants SET reason_ct = $1, reason = NULL WHERE id = $2 AND reason = $3",
        )
        .bind(ct)
        .bind(id)
        .bind(&reason)
        .execute(db.pool())
        .await?;
        sealed += r.rows_affected();
    }
    Ok(sealed)
}

/// The longest reason accepted for emergency access (it is free text that may name a patient;
/// a paragraph is plenty).
pub const BREAK_GLASS_MAX_REASON_CHARS: usize = 1000;

/// An emergency-access request that passed every rule: a role support agents or practice admins
/// hold, 1 to `BREAK_GLASS_MAX_MINUTES` minutes, and a written reason of 20 to
/// `BREAK_GLASS_MAX_REASON_CHARS` characters.
#[derive(Clone, Debug)]
pub struct BreakGlassRequest {
    pub role: Role,
    pub minutes: i64,
    reason: Phi<String>,
}

impl BreakGlassRequest {
    /// Checks the form's words; the one place these rules live.
    pub fn parse(role: &str, minutes: &str, reason: &str) -> Result<Self, AccountError> {
        let role = Role::parse(role)
            .filter(|r| matches!(r, Role::SupportAgent | Role::PracticeAdmin))
            .ok_or(AccountError::Bad(
                "emergency access grants support-agent or practice-admin",
            ))?;
        let minutes = minutes
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=BREAK_GLASS_MAX_MINUTES).contains(m))
            .ok_or(AccountError::Bad("emergency access lasts 1 to 240 minutes"))?;
        let reason = reason.trim();
        let n = reason.chars().count();
        if !(20..=BREAK_GLASS_MAX_REASON_CHARS).contains(&n) {
            return Err(AccountError::Bad("give a reason of 20 to 1000 characters"));
        }
        Ok(BreakGlassRequest {
            role,
            minutes,
            reason: Phi::new(reason.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_glass_rules() {
        let why = "Patient on the phone about a billing error";
        assert!(BreakGlassRequest::parse("support-agent", "30", why).is_ok());
        assert!(BreakGlassRequest::parse("security-officer", "30", why).is_err());
        assert!(BreakGlassRequest::parse("support-agent", "0", why).is_err());
        assert!(BreakGlassRequest::parse("support-agent", "241", why).is_err());
        assert!(BreakGlassRequest::parse("support-agent", "30", "too short").is_err());
        let long = "x".repeat(BREAK_GLASS_MAX_REASON_CHARS + 1);
        assert!(
            BreakGlassRequest::parse("support-agent", "30", &long).is_err(),
            "a 60 KB reason is refused"
        );
        let at_limit = "x".repeat(BREAK_GLASS_MAX_REASON_CHARS);
        assert!(BreakGlassRequest::parse("practice-admin", "240", &at_limit).is_ok());
    }
}
