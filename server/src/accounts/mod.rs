//! Local accounts: staff (argon2id password + TOTP second factor, recovery codes, enrolment
//! links) and members (patients and guarantors: password, grants over named patients);
//! sign-in throttling, grants, and per-user session revocation.
//!
//! This file owns what every concern shares: `Kind`, `AccountError`, the platform
//! pseudo-practice, `Account` with `load`, per-user session revocation, and the re-exports that
//! keep every item at `crate::accounts::X`. Each concern lives in its own file:
//! `password` (argon2id, the password check), `totp` (second factor, enrolment completion),
//! `recovery` (recovery codes), `codes` (emailed password-reset codes for members), `confirm` (a member's address confirmed by an emailed code at sign-up), `notices` (emails to an account's owner), `throttle` (sign-in limits), `devices` (trusted staff
//! devices), `email` (sealed emails, blind
//! index, new accounts), `staff` (staff accounts and the operator's commands) and `members`
//! (patient and guarantor accounts, grants over patients).

mod codes;
mod confirm;
mod devices;
mod email;
mod members;
mod names;
mod notices;
mod password;
mod recovery;
mod staff;
mod throttle;
mod totp;

pub(crate) use codes::seal_email;
pub use codes::{
    redeem_reset_code, send_reset_code, CODE_SECS, MAX_TRIES as MAX_CODE_TRIES,
    REQUESTS_PER_ADDRESS as RESET_REQUESTS_PER_ADDRESS, REQUEST_WINDOW_SECS, RESEND_SECS,
    RESET_REQUESTS,
};
pub use confirm::{
    confirm_email, release_stale_signup, resend_confirm_code, signup_for_taken, ConfirmCode,
    CONFIRM_CODE_SECS, UNCONFIRMED_SECS,
};
pub use devices::{
    prune_trusted_devices, revoke_trusted_devices, trust_device, MAX_TRUSTED_DEVICES_PER_ACCOUNT,
    TRUSTED_DEVICE_SECS,
};
pub(crate) use email::email_index_input;
pub use email::{
    email_index, email_taken, masked_email, normalize_email, open_email, valid_email, NewAccount,
};
pub use members::{
    create_member, grant_over_patient, member_by_subject, set_member_password, NewCredentials,
};
pub use names::{display_name, rename, user_by_email, StaffName, MAX_CHARS as MAX_NAME_CHARS};
pub use notices::{
    alarm_is_live, notify_factor_added, notify_grant_added, notify_password_changed, raise_alarm,
    ALARM_DAYS,
};
pub use password::{hash_password, verify_credentials, verify_password};
pub use recovery::use_recovery_code;
pub use staff::{
    add_staff, add_user, clear_must_reset, disable, enrolment_user, force_reset, grant_break_glass,
    list, reason_aad, seal_legacy_reasons, upsert_external, BreakGlassRequest, UserRow,
    BREAK_GLASS_MAX_MINUTES, BREAK_GLASS_MAX_REASON_CHARS, ENROLMENT_TTL_SECS,
};
pub use throttle::{
    account_delay, claim_attempt, claim_attempt_from, prune_login_failures, LoginAttempt,
    ACCOUNT_WINDOW_SECS, ADDRESS_WINDOW_SECS, FAILURE_WINDOW_SECS, FIRST_DELAY_SECS,
    FREE_FAILURES_PER_ACCOUNT, MAX_DELAY_SECS, MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_DEVICE,
};
pub use totp::{check_totp, complete_enrolment, current_totp, totp_setup, TotpSetup};

use crate::access::{Grant, Principal, Role};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::{PatientId, TenantId, UserId};
use crate::phi::Phi;
use std::sync::OnceLock;

/// The pseudo-practice whose keys encrypt secrets that belong to no practice.
pub const PLATFORM_TENANT: &str = "ten_00000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email, password or code not accepted")]
    Invalid,
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    #[error("password must be 8 to 128 characters")]
    WeakPassword,
    #[error("{0}")]
    Bad(&'static str),
    /// Cognito has the account but its sign-up code was never entered.
    #[error("sign-up not confirmed")]
    Unconfirmed,
    /// The patient already has an account of their own.
    #[error("this patient already has an account")]
    PatientHasAccount,
    /// The email belongs to another account.
    #[error("an account with that email exists")]
    EmailTaken,
    /// A single-use token (invitation) was spent, withdrawn, locked or expired meanwhile.
    #[error("no longer usable")]
    Gone,
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("hashing: {0}")]
    Hash(String),
    /// Too many password checks are already waiting: try again shortly.
    #[error("password checks are busy")]
    Busy,
}

impl From<crate::messages::MessageError> for AccountError {
    fn from(e: crate::messages::MessageError) -> Self {
        match e {
            crate::messages::MessageError::Db(d) => AccountError::Db(d),
            crate::messages::MessageError::Crypto(c) => AccountError::Crypto(c),
        }
    }
}

/// Staff sign in with a second factor; members (patients, guarantors) with a password only and
/// never hold staff grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Staff,
    Member,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Staff => "staff",
            Kind::Member => "member",
        }
    }
}

/// The pseudo-practice whose keys encrypt what belongs to no practice.
pub fn platform() -> &'static TenantId {
    static PLATFORM: OnceLock<TenantId> = OnceLock::new();
    PLATFORM.get_or_init(|| TenantId::from_db(PLATFORM_TENANT.to_owned()))
}

/// A signed-in account as the policy sees it, with the facts sessions are checked against.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: UserId,
    /// Sealed: loaded on every request, opened only where a page or a provider call needs it.
    email_ct: Vec<u8>,
    pub principal: Principal,
    pub disabled: bool,
    pub must_reset: bool,
    pub sessions_revoked_before: i64,
    pub kind: Kind,
}

impl Account {
    pub async fn email(&self, crypto: &FieldCrypto) -> Result<Phi<String>, AccountError> {
        open_email(crypto, &self.id, &self.email_ct).await
    }
}

pub async fn load(db: &Db, user: &UserId, now: i64) -> Result<Option<Account>, AccountError> {
    // email ciphertext, disabled at, sessions revoked before, must reset, kind.
    type AccountRow = (Vec<u8>, Option<i64>, i64, i64, String);
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT email_ct, disabled_at, sessions_revoked_before, must_reset, kind FROM users WHERE id = $1",
    )
    .bind(user.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some((email_ct, disabled_at, revoked, must_reset, kind)) = row else {
        return Ok(None);
    };
    // role, practice, expiry, patient
    type GrantRow = (String, Option<String>, Option<i64>, Option<String>);
    let grants: Vec<GrantRow> = sqlx::query_as(
        "SELECT role, tenant_id, expires_at, patient_id FROM user_grants
         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
    )
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    let grants = grants
        .into_iter()
        .filter(|(_, _, exp, _)| exp.is_none_or(|e| e > now))
        .filter_map(|(role, tenant, exp, patient)| {
            Some(Grant {
                role: Role::parse(&role)?,
                tenant: tenant.map(TenantId::from_db),
                patients: patient.map(PatientId::from_db).into_iter().collect(),
                expires_at: exp,
            })
        })
        .collect();
    Ok(Some(Account {
        id: user.clone(),
        email_ct,
        principal: Principal {
            user: user.to_string(),
            grants,
            mfa: false,
            impersonating: false,
            acting_on_behalf: false,
            link_holder: false,
        },
        disabled: disabled_at.is_some(),
        must_reset: must_reset == 1,
        sessions_revoked_before: revoked,
        kind: if kind == "member" {
            Kind::Member
        } else {
            Kind::Staff
        },
    }))
}

/// Every session of this account signed in before `now` stops working at its next request,
/// and its trusted devices are forgotten (sign-out everywhere, a password reset).
pub async fn revoke_sessions(db: &Db, user: &UserId, now: i64) -> Result<(), AccountError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET sessions_revoked_before = $1 WHERE id = $2")
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    revoke_trusted_devices(&mut *tx, user).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends every session of the account with this Cognito subject, and forgets its trusted
/// devices (after a password reset).
pub async fn revoke_sessions_by_subject(
    db: &Db,
    subject: &str,
    now: i64,
) -> Result<(), AccountError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET sessions_revoked_before = $1 WHERE external_subject = $2")
        .bind(now)
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM trusted_devices WHERE user_id IN (SELECT id FROM users WHERE external_subject = $1)",
    )
    .bind(subject)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A staff sign-out: every session of the account signed in up to `now` stops working, so a
/// request in flight during the sign-out (or a copy of the session) cannot bring that sign-in
/// back. Trusted devices stay trusted (signing out is not a sign of compromise) and the time
/// never moves backwards.
pub async fn end_sessions_at_sign_out(
    db: &Db,
    user: &UserId,
    now: i64,
) -> Result<(), AccountError> {
    sqlx::query(
        "UPDATE users SET sessions_revoked_before = $1 WHERE id = $2 AND sessions_revoked_before < $1",
    )
    .bind(now)
    .bind(user.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The time a sign-in completing at `now` records (`SignedIn::auth_at`): `now`, or just after
/// the account's revoked-before time when that is `now` too (seconds are coarse: signing in again
/// the second one signed out must not be refused as revoked).
pub async fn sign_in_time(db: &Db, user: &UserId, now: i64) -> Result<i64, AccountError> {
    let revoked: Option<i64> =
        sqlx::query_scalar("SELECT sessions_revoked_before FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(db.pool())
            .await?;
    Ok(revoked.map_or(now, |r| now.max(r + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Sign-out sets the revoked-before time, never moving it back; a sign-in completing the
    /// same second is still newer than it, so it is not refused as revoked.
    #[tokio::test]
    async fn a_sign_in_is_newer_than_a_sign_out_the_same_second() {
        let (dir, db) = crate::db::temp_sqlite().await;
        let provider =
            crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
        let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
        let now = 1_800_000_000;
        let (user, _) = add_user(
            &db,
            &crypto,
            "a@example.org",
            Role::PlatformAdmin,
            None,
            now,
        )
        .await
        .expect("user");
        assert_eq!(sign_in_time(&db, &user, now).await.expect("time"), now);
        end_sessions_at_sign_out(&db, &user, now)
            .await
            .expect("sign out");
        let revoked = load(&db, &user, now)
            .await
            .expect("load")
            .expect("account")
            .sessions_revoked_before;
        assert_eq!(revoked, now);
        assert_eq!(sign_in_time(&db, &user, now).await.expect("time"), now + 1);
        assert_eq!(
            sign_in_time(&db, &user, now + 5).await.expect("time"),
            now + 5
        );
        // An older sign-out does not undo a newer revocation.
        end_sessions_at_sign_out(&db, &user, now - 60)
            .await
            .expect("sign out");
        let after = load(&db, &user, now).await.expect("load").expect("account");
        assert_eq!(after.sessions_revoked_before, now);
    }
}
