//! Passwords: argon2id hashing and verification (on the blocking pool), and the local password
//! check `verify_credentials`, which does the same work whether or not the account exists.

use super::{email_index, AccountError, Kind};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::phi::Phi;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

fn argon() -> Result<Argon2<'static>, AccountError> {
    // OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19_456, 2, 1, None).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the blocking pool, so a burst of sign-ins cannot stall the async workers.
pub async fn hash_password(password: Phi<String>) -> Result<String, AccountError> {
    let n = password.expose().chars().count();
    if !(8..=128).contains(&n) {
        return Err(AccountError::WeakPassword);
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon()?
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?
}

/// A hash to verify against when the account does not exist, so timing doesn't tell.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon()
            .ok()
            .and_then(|a| {
                a.hash_password(b"not a real password", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

pub async fn verify_password(hash: String, password: Phi<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        argon().is_ok_and(|a| {
            a.verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// The local password check (the only factor for members). Unknown account, wrong password,
/// disabled, not enrolled, must reset or the other kind of account: all the same `Invalid`,
/// after the same work. No throttling here: callers claim an attempt first (`claim_attempt`)
/// and release it when the password was right.
pub async fn verify_credentials(
    db: &Db,
    crypto: &FieldCrypto,
    kind: Kind,
    email: &str,
    password: Phi<String>,
) -> Result<UserId, AccountError> {
    let email = email_index(crypto, email).await?;
    // id, password hash, disabled at, TOTP confirmed, must reset.
    type LoginRow = (String, Option<String>, Option<i64>, i64, i64);
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, password_hash, disabled_at, totp_confirmed, must_reset FROM users
         WHERE email_index = $1 AND kind = $2",
    )
    .bind(&email)
    .bind(kind.as_str())
    .fetch_optional(db.pool())
    .await?;
    let (hash, usable) = match (&row, kind) {
        (Some((_, Some(h), None, 1, 0)), Kind::Staff) => (h.clone(), true),
        (Some((_, Some(h), None, _, 0)), Kind::Member) => (h.clone(), true),
        _ => (dummy_hash().to_owned(), false),
    };
    let ok = verify_password(hash, password).await;
    match row {
        Some((id, ..)) if ok && usable => Ok(UserId::from_db(id)),
        _ => Err(AccountError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_rules_and_hashing() {
        assert!(matches!(
            hash_password(Phi::new("short".into())).await,
            Err(AccountError::WeakPassword)
        ));
        assert!(matches!(
            hash_password(Phi::new("x".repeat(129))).await,
            Err(AccountError::WeakPassword)
        ));
        let long = "ü".repeat(128);
        let h = hash_password(Phi::new(long.clone())).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(h.clone(), Phi::new(long.clone())).await);
        // No truncation: a change in the last character matters.
        let mut other = "ü".repeat(127);
        other.push('u');
        assert!(!verify_password(h, Phi::new(other)).await);
    }
}
