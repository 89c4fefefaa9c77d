//! Recovery codes: spending one in place of a TOTP code (they are issued, hashed, when
//! enrolment completes in `totp`).

use super::AccountError;
use crate::crypto::token_hash;
use crate::db::Db;
use crate::ids::UserId;

/// Spends a recovery code in place of a TOTP code.
pub async fn use_recovery_code(
    db: &Db,
    user: &UserId,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let r = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL")
        .bind(now)
        .bind(token_hash(code.trim()))
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}
