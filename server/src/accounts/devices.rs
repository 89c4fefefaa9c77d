//! Trusted staff devices: a browser that completed a full sign-in (password and second factor)
//! holds a random token in a long-lived cookie; a sign-in for that account presenting it skips
//! the per-account delay (`throttle`), so the owner can still sign in while someone else is
//! guessing their password. Only the token's hash is stored.

use super::AccountError;
use crate::crypto::{random_token, token_hash};
use crate::db::Db;
use crate::ids::UserId;

/// How long a trusted-device cookie, and its record, lasts.
pub const TRUSTED_DEVICE_SECS: i64 = 30 * 86_400;
/// Trusted devices kept per account; the oldest go first (lost cookies must not pile up).
pub const MAX_TRUSTED_DEVICES_PER_ACCOUNT: i64 = 10;

/// Records a new trusted device for `user` after a full sign-in and returns the token to set
/// in its cookie. The token the browser presented, if it was this account's, is replaced (one
/// record per browser), and the account keeps at most `MAX_TRUSTED_DEVICES_PER_ACCOUNT`.
pub async fn trust_device(
    db: &Db,
    user: &UserId,
    presented: Option<&str>,
    now: i64,
) -> Result<String, AccountError> {
    let token = random_token();
    let mut tx = db.begin_write().await?;
    if let Some(old) = presented {
        sqlx::query("DELETE FROM trusted_devices WHERE token_hash = $1 AND user_id = $2")
            .bind(token_hash(old))
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO trusted_devices (user_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(user.as_str())
    .bind(token_hash(&token))
    .bind(now)
    .bind(now + TRUSTED_DEVICE_SECS)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM trusted_devices WHERE user_id = $1 AND (expires_at <= $2 OR id NOT IN (
             SELECT id FROM trusted_devices WHERE user_id = $1 ORDER BY id DESC LIMIT $3))",
    )
    .bind(user.as_str())
    .bind(now)
    .bind(MAX_TRUSTED_DEVICES_PER_ACCOUNT)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// The id of the trusted device `token` names, if it is live and belongs to the account with
/// this email index, and that account is enabled and needs no reset. Read inside the caller's
/// claim transaction.
pub(super) async fn trusted_device_of(
    tx: &mut crate::db::WriteTx,
    token: &str,
    email_index: &[u8],
    now: i64,
) -> Result<Option<i64>, AccountError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT d.id FROM trusted_devices d JOIN users u ON u.id = d.user_id
         WHERE d.token_hash = $1 AND u.email_index = $2 AND d.expires_at > $3
           AND u.disabled_at IS NULL AND u.must_reset = 0",
    )
    .bind(token_hash(token))
    .bind(email_index)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id)
}

/// Forgets every trusted device of `user` (sign-out everywhere, password reset, disable).
pub async fn revoke_trusted_devices<'e, E>(db: E, user: &UserId) -> Result<(), AccountError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("DELETE FROM trusted_devices WHERE user_id = $1")
        .bind(user.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes expired trusted devices; run on a schedule.
pub async fn prune_trusted_devices(db: &Db, now: i64) -> Result<u64, AccountError> {
    let r = sqlx::query("DELETE FROM trusted_devices WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}
