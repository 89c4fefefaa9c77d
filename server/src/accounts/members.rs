//! Member accounts (patients and guarantors): creation with local or Cognito credentials, lookup
//! by Cognito subject, password replacement, and grants over named patients.

use super::{AccountError, ConfirmCode, NewAccount};
use crate::access::Role;
use crate::db::Db;
use crate::ids::{PatientId, TenantId, UserId};

/// How a new member account will sign in.
#[derive(Clone, Debug)]
pub enum NewCredentials {
    /// Local accounts: an argon2id hash made with `hash_password`.
    Local { password_hash: String },
    /// Cognito accounts: the user's `sub`; Cognito holds the password.
    External { subject: String },
}

/// The member account of a Cognito subject (staff accounts never match).
pub async fn member_by_subject(db: &Db, subject: &str) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE external_subject = $1 AND kind = 'member'")
            .bind(subject)
            .fetch_optional(db.pool())
            .await?;
    Ok(id.map(UserId::from_db))
}

/// Creates a member account (patient or guarantor) from an email sealed with
/// `NewAccount::prepare`; grants are added by the caller in the same transaction. An email
/// already in use is refused. With `confirm`, the account is unusable until its code (emailed
/// here, in the same transaction) is entered; without, its address counts as confirmed (Cognito
/// confirmed it, or the operator or a test made the account).
pub async fn create_member(
    tx: &mut sqlx::AnyConnection,
    account: &NewAccount,
    credentials: &NewCredentials,
    confirm: Option<&ConfirmCode>,
    now: i64,
) -> Result<UserId, AccountError> {
    account.check_free(tx).await?;
    let id = account.id.clone();
    let (hash, subject) = match credentials {
        NewCredentials::Local { password_hash } => (Some(password_hash.clone()), None),
        NewCredentials::External { subject } => (None, Some(subject.clone())),
    };
    sqlx::query(
        "INSERT INTO users (id, email_index, email_ct, password_hash, external_subject, kind,
                            created_at, email_confirmed_at)
         VALUES ($1, $2, $3, $4, $5, 'member', $6, $7)",
    )
    .bind(id.as_str())
    .bind(&account.email_index)
    .bind(&account.email_ct)
    .bind(hash)
    .bind(subject)
    .bind(now)
    .bind(if confirm.is_some() { None } else { Some(now) })
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        // A concurrent sign-up with the same email won the race.
        sqlx::Error::Database(d) if d.is_unique_violation() => AccountError::EmailTaken,
        _ => e.into(),
    })?;
    if let Some(code) = confirm {
        code.store(tx, &id, now).await?;
    }
    Ok(id)
}

/// Replaces a member account's local password hash (and so ends a forced reset).
pub async fn set_member_password(db: &Db, user: &UserId, hash: &str) -> Result<(), AccountError> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, must_reset = 0 WHERE id = $2 AND kind = 'member'",
    )
    .bind(hash)
    .bind(user.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Gives a member account the patient or guarantor role over one patient. Idempotent: an
/// active grant of the same role for the same patient is not repeated.
pub async fn grant_over_patient(
    tx: &mut sqlx::AnyConnection,
    user: &UserId,
    role: Role,
    tenant: &TenantId,
    patient: &PatientId,
    granted_by: &str,
    now: i64,
) -> Result<(), AccountError> {
    if !matches!(role, Role::Patient | Role::Guarantor) {
        return Err(AccountError::Bad(
            "only patient and guarantor grants name a patient",
        ));
    }
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM user_grants WHERE user_id = $1 AND role = $2 AND patient_id = $3 AND revoked_at IS NULL",
    )
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(patient.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if existing.is_some() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, patient_id, granted_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .bind(granted_by)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        // One account per patient (a unique index): someone made theirs first.
        sqlx::Error::Database(d) if d.is_unique_violation() => AccountError::PatientHasAccount,
        _ => e.into(),
    })?;
    Ok(())
}
