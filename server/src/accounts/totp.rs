//! The TOTP second factor of staff accounts: set-up (secret sealed under the platform's keys),
//! checking a code (with replay refusal), the current code, and completing enrolment.

use super::{enrolment_user, hash_password, open_email, platform, AccountError};
use crate::crypto::{random_token, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::UserId;
use crate::phi::Phi;
use subtle::ConstantTimeEq;

const TOTP_STEP: i64 = 30;

/// Where a staff member's TOTP secret is bound: the platform's keys, the user's row.
fn totp_aad(user: &UserId) -> FieldAad<'_> {
    FieldAad {
        tenant: platform(),
        table: "users",
        column: "totp_secret",
        row: user.as_str(),
    }
}

fn totp_for(secret: &[u8], email: &str) -> Result<totp_rs::TOTP, AccountError> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        TOTP_STEP as u64,
        secret.to_vec(),
        Some("PatriotPay".into()),
        email.to_owned(),
    )
    .map_err(|_| AccountError::Bad("bad TOTP secret"))
}

/// What enrolment shows: the otpauth URL (as a QR code) and the secret for typing in.
pub struct TotpSetup {
    pub otpauth_url: String,
    pub secret_base32: String,
}

/// The account's unconfirmed TOTP secret for display, made (and stored encrypted) on first call,
/// so reloading the set-up page keeps showing the code already scanned.
pub async fn totp_setup(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
) -> Result<TotpSetup, AccountError> {
    let (email_ct, existing, confirmed): (Vec<u8>, Option<Vec<u8>>, i64) =
        sqlx::query_as("SELECT email_ct, totp_secret_ct, totp_confirmed FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_one(db.pool())
            .await?;
    let email = open_email(crypto, user, &email_ct).await?;
    let email = email.expose();
    let aad = totp_aad(user);
    if let (Some(ct), 0) = (existing, confirmed) {
        let secret = crypto.decrypt(aad, &ct).await?;
        let totp = totp_for(&secret, email)?;
        return Ok(TotpSetup {
            otpauth_url: totp.get_url(),
            secret_base32: totp.get_secret_base32(),
        });
    }
    let secret = totp_rs::Secret::generate_secret()
        .to_bytes()
        .map_err(|_| AccountError::Bad("secret"))?;
    let totp = totp_for(&secret, email)?;
    let ct = crypto.encrypt(aad, &secret).await?;
    sqlx::query("UPDATE users SET totp_secret_ct = $1, totp_confirmed = 0, totp_last_step = 0 WHERE id = $2 AND totp_confirmed = 0")
        .bind(ct)
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(TotpSetup {
        otpauth_url: totp.get_url(),
        secret_base32: totp.get_secret_base32(),
    })
}

/// Checks a TOTP code (one step of drift either way) and refuses a code already used.
pub async fn check_totp(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let row: Option<(Option<Vec<u8>>, i64)> =
        sqlx::query_as("SELECT totp_secret_ct, totp_last_step FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(db.pool())
            .await?;
    let Some((Some(ct), last_step)) = row else {
        return Ok(false);
    };
    let aad = totp_aad(user);
    let secret = crypto.decrypt(aad, &ct).await?;
    // The label only names the code in the authenticator app; it plays no part in the code.
    let totp = totp_for(&secret, "staff")?;
    let code = code.trim().replace(' ', "");
    let step = now / TOTP_STEP;
    for s in [step - 1, step, step + 1] {
        if s <= last_step || s < 0 {
            continue;
        }
        let expected = totp.generate((s * TOTP_STEP) as u64);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            // Guarded so two racing uses of one code can't both win.
            let r = sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
            )
            .bind(s)
            .bind(user.as_str())
            .execute(db.pool())
            .await?;
            return Ok(r.rows_affected() == 1);
        }
    }
    Ok(false)
}

/// The current TOTP code for an account (tests and the CLI's break-glass path only).
pub async fn current_totp(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    at: i64,
) -> Result<String, AccountError> {
    let ct: Vec<u8> = sqlx::query_scalar("SELECT totp_secret_ct FROM users WHERE id = $1")
        .bind(user.as_str())
        .fetch_one(db.pool())
        .await?;
    let aad = totp_aad(user);
    let secret = crypto.decrypt(aad, &ct).await?;
    Ok(totp_for(&secret, "staff")?.generate(at as u64))
}

/// Finishes enrolment: sets the password, confirms TOTP with a code, spends the token and
/// returns ten recovery codes to show once (stored hashed).
pub async fn complete_enrolment(
    db: &Db,
    crypto: &FieldCrypto,
    token_hash: &[u8],
    password: Phi<String>,
    code: &str,
    now: i64,
) -> Result<(UserId, Vec<String>), AccountError> {
    let user = enrolment_user(db, token_hash, now)
        .await?
        .ok_or(AccountError::Invalid)?;
    let hash = hash_password(password).await?;
    if !check_totp(db, crypto, &user, code, now).await? {
        return Err(AccountError::Invalid);
    }
    let codes: Vec<String> = (0..10).map(|_| random_token()[..12].to_owned()).collect();
    let mut tx = db.begin_write().await?;
    let spent = sqlx::query(
        "UPDATE enrolment_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Err(AccountError::Invalid);
    }
    sqlx::query(
        "UPDATE users SET password_hash = $1, totp_confirmed = 1, must_reset = 0 WHERE id = $2",
    )
    .bind(hash)
    .bind(user.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    for c in &codes {
        sqlx::query("INSERT INTO recovery_codes (code_hash, user_id) VALUES ($1, $2)")
            .bind(crate::crypto::token_hash(c))
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((user, codes))
}
