//! Notices to an account's owner, at its own email, through the outbox (issue 13): whoever did
//! it, the owner hears of every password change, every new sign-in factor (a staff member's
//! authenticator) and every guarantor grant added to the account, so a takeover cannot stay
//! silent. No patient's name or care is in them. Each carries a
//! one-time "this wasn't me" link (`raise_alarm`): every session of the account ends and the
//! practices it reaches are alerted.

use super::codes::seal_email;
use super::{open_email, AccountError};
use crate::crypto::{random_token, token_hash, FieldCrypto};
use crate::db::Db;
use crate::ids::UserId;
use crate::messages::{self, texts};
use crate::phi::Phi;

/// How long a "this wasn't me" link works.
pub const ALARM_DAYS: i64 = 30;

/// Queues `(subject, body)` as template `template` to `user`'s email, with a "this wasn't me"
/// link on `public_url` (the text is `not_me` with `{link}` in it).
async fn notify(
    db: &Db,
    crypto: &FieldCrypto,
    (user, public_url): (&UserId, &str),
    template: &'static str,
    (subject, body): (Phi<String>, Phi<String>),
    now: i64,
) -> Result<(), AccountError> {
    let email_ct: Option<Vec<u8>> = sqlx::query_scalar("SELECT email_ct FROM users WHERE id = $1")
        .bind(user.as_str())
        .fetch_optional(db.pool())
        .await?;
    let Some(email_ct) = email_ct else {
        return Ok(());
    };
    let to: Phi<String> = open_email(crypto, user, &email_ct).await?;
    let token = random_token();
    let link = format!(
        "{}/account/not-me/{token}",
        public_url.trim_end_matches('/')
    );
    let body = Phi::new(format!("{}\n\n{}", body.expose(), texts::not_me(&link)));
    let sealed = seal_email(crypto, to, template, (subject, body), now).await?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO account_alarms (id, user_id, token_hash, notice, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(format!("alm_{}", uuid::Uuid::new_v4().simple()))
    .bind(user.as_str())
    .bind(token_hash(&token))
    .bind(template)
    .bind(now)
    .bind(now + ALARM_DAYS * 86_400)
    .execute(&mut *tx)
    .await?;
    messages::queue(&mut tx, &sealed, now)
        .await
        .map_err(AccountError::from)?;
    tx.commit().await?;
    Ok(())
}

/// Whether `token` is a live "this wasn't me" link (for the page that asks before acting).
pub async fn alarm_is_live(db: &Db, token: &str, now: i64) -> Result<bool, AccountError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_alarms
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    Ok(n == 1)
}

/// Spends a "this wasn't me" link: the account's sessions end (the caller also signs it out at
/// the identity provider) and the account's user id and practices are returned for the alert.
/// `None` for an unknown, spent or expired link.
pub async fn raise_alarm(
    db: &Db,
    token: &str,
    now: i64,
) -> Result<Option<(UserId, Vec<String>)>, AccountError> {
    let user: Option<String> = sqlx::query_scalar(
        "UPDATE account_alarms SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING user_id",
    )
    .bind(now)
    .bind(token_hash(token))
    .fetch_optional(db.pool())
    .await?;
    let Some(user) = user.map(UserId::from_db) else {
        return Ok(None);
    };
    super::revoke_sessions(db, &user, now).await?;
    let practices: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tenant_id FROM user_grants
         WHERE user_id = $1 AND revoked_at IS NULL AND tenant_id IS NOT NULL",
    )
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(Some((user, practices)))
}

/// Tells the owner their password changed.
pub async fn notify_password_changed(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    public_url: &str,
    now: i64,
) -> Result<(), AccountError> {
    let text = texts::password_changed_email();
    notify(
        db,
        crypto,
        (user, public_url),
        texts::PASSWORD_CHANGED,
        text,
        now,
    )
    .await
}

/// Tells the owner their account now looks after someone else's bills at `practice`.
pub async fn notify_grant_added(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    (practice, public_url): (&str, &str),
    now: i64,
) -> Result<(), AccountError> {
    let text = texts::grant_added_email(practice);
    notify(
        db,
        crypto,
        (user, public_url),
        texts::GRANT_ADDED,
        text,
        now,
    )
    .await
}

/// Tells the owner a password and authenticator app were set on their staff account (the
/// one-time set-up link was used: a new account's enrolment, or after a reset).
pub async fn notify_factor_added(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    public_url: &str,
    now: i64,
) -> Result<(), AccountError> {
    let text = texts::factor_added_email();
    notify(
        db,
        crypto,
        (user, public_url),
        texts::FACTOR_ADDED,
        text,
        now,
    )
    .await
}
