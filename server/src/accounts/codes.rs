//! One-time codes emailed to a local member account (issue 13): password-reset codes (a
//! forgotten password is reset only with a code sent to the account's own email through the
//! outbox, never from a pay link) and, through `confirm`, the sign-up confirmation code. Eight
//! digits, `MAX_TRIES` wrong entries, one live code per account and purpose, at most one new code
//! per `RESEND_SECS`. Only a MAC of the code is stored (under the platform's index key, bound to
//! the account), so reading the table does not give a usable code. (With Cognito, its own
//! ForgotPassword and sign-up flows send the codes.)

use super::{email_index, AccountError, Kind};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::messages::{self, texts, Channel, Outgoing, Purpose};
use crate::phi::Phi;

pub const CODE_SECS: i64 = 15 * 60;
pub const MAX_TRIES: i64 = 5;
pub const RESEND_SECS: i64 = 60;
/// Reset codes one address (`limits::address_key`) may ask for, for any accounts, in
/// `REQUEST_WINDOW_SECS`: the per-account limit alone would let one sender email codes to many
/// addresses.
pub const REQUESTS_PER_ADDRESS: i64 = 10;
pub const REQUEST_WINDOW_SECS: i64 = 60 * 60;

/// The per-address limit on asking for reset codes.
pub const RESET_REQUESTS: crate::limits::UseLimit = crate::limits::UseLimit {
    kind: "reset-code",
    max: REQUESTS_PER_ADDRESS,
    window_secs: REQUEST_WINDOW_SECS,
};
/// Blind-index domain of a code's MAC.
const MAC_DOMAIN: &str = "account-reset-code";

/// What a code is for (`account_codes.purpose`): a code of one purpose never works for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CodePurpose {
    Reset,
    Confirm,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Reset => "reset",
            CodePurpose::Confirm => "confirm",
        }
    }
}

pub(super) async fn mac(
    crypto: &FieldCrypto,
    user: &UserId,
    code: &str,
) -> Result<Vec<u8>, AccountError> {
    let input = format!("{user}:{}", code.trim());
    Ok(crypto
        .blind_index(super::platform(), MAC_DOMAIN, &input)
        .await?)
}

/// A fresh code: eight digits, uniformly drawn.
pub(super) fn new_code() -> String {
    use rand::Rng;
    format!("{:08}", rand::thread_rng().gen_range(0..100_000_000u32))
}

/// Emails a reset code to the member account with this email, if there is one that may use it
/// (enabled, a member's). Says nothing either way: the caller answers the same in every case.
pub async fn send_reset_code(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    now: i64,
) -> Result<(), AccountError> {
    let Some(user) = super::user_by_email(db, crypto, email).await? else {
        return Ok(());
    };
    let Some(account) = super::load(db, &user, now).await? else {
        return Ok(());
    };
    if account.kind != Kind::Member || account.disabled {
        return Ok(());
    }
    // A sign-up never confirmed: its address was not shown to be the owner's.
    if !super::confirm::is_confirmed(db, &user).await?
        || sent_lately(db, &user, CodePurpose::Reset, now).await?
    {
        return Ok(());
    }
    let to = account.email(crypto).await?;
    let code = new_code();
    let code_mac = mac(crypto, &user, &code).await?;
    let text = texts::reset_code_email(&code, CODE_SECS / 60);
    let sealed = seal_email(crypto, to, texts::RESET_CODE, text, now).await?;
    let mut tx = db.begin_write().await?;
    store(
        &mut tx,
        &user,
        CodePurpose::Reset,
        &code_mac,
        now,
        now + CODE_SECS,
    )
    .await?;
    messages::queue(&mut tx, &sealed, now)
        .await
        .map_err(AccountError::from)?;
    tx.commit().await?;
    Ok(())
}

/// Whether the account was sent a code for `purpose` in the last `RESEND_SECS`.
pub(super) async fn sent_lately(
    db: &Db,
    user: &UserId,
    purpose: CodePurpose,
    now: i64,
) -> Result<bool, AccountError> {
    let recent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_codes WHERE user_id = $1 AND purpose = $2 AND created_at > $3",
    )
    .bind(user.as_str())
    .bind(purpose.as_str())
    .bind(now - RESEND_SECS)
    .fetch_one(db.pool())
    .await?;
    Ok(recent > 0)
}

/// Stores a code's MAC as the account's one live code of that purpose (an earlier one stops
/// working), in the caller's transaction.
pub(super) async fn store(
    tx: &mut sqlx::AnyConnection,
    user: &UserId,
    purpose: CodePurpose,
    code_mac: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<(), AccountError> {
    sqlx::query(
        "UPDATE account_codes SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(user.as_str())
    .bind(purpose.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO account_codes (id, user_id, purpose, code_mac, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(format!("acd_{}", uuid::Uuid::new_v4().simple()))
    .bind(user.as_str())
    .bind(purpose.as_str())
    .bind(code_mac)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Spends the live reset code of the member account with this email: `Some(user)` when `code`
/// is it (and it is not expired or out of tries); a wrong code uses up a try.
pub async fn redeem_reset_code(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    code: &str,
    now: i64,
) -> Result<Option<UserId>, AccountError> {
    let Some(user) = super::user_by_email(db, crypto, email).await? else {
        return Ok(None);
    };
    let redeemed = redeem(db, crypto, &user, CodePurpose::Reset, code, now).await?;
    Ok(redeemed.then_some(user))
}

/// Spends the account's live code of `purpose` when `code` is it (not expired, not out of
/// tries); a wrong code uses up a try.
pub(super) async fn redeem(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    purpose: CodePurpose,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let live: Option<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, code_mac FROM account_codes
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
           AND attempts < $4
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(user.as_str())
    .bind(purpose.as_str())
    .bind(now)
    .bind(MAX_TRIES)
    .fetch_optional(db.pool())
    .await?;
    let Some((id, stored)) = live else {
        return Ok(false);
    };
    let given = mac(crypto, user, code).await?;
    let right: bool = subtle::ConstantTimeEq::ct_eq(given.as_slice(), stored.as_slice()).into();
    let spent = if right {
        sqlx::query("UPDATE account_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(db.pool())
            .await?
            .rows_affected()
    } else {
        sqlx::query("UPDATE account_codes SET attempts = attempts + 1 WHERE id = $1")
            .bind(&id)
            .execute(db.pool())
            .await?;
        0
    };
    // Two requests racing with the right code: only the one that marked it used goes on.
    Ok(spent == 1)
}

/// An account email (`template`'s subject and body) to `to`, sealed for the outbox under the
/// platform's keys, before the caller's transaction.
pub(crate) async fn seal_email(
    crypto: &FieldCrypto,
    to: Phi<String>,
    template: &'static str,
    (subject, body): (Phi<String>, Phi<String>),
    now: i64,
) -> Result<messages::Sealed, AccountError> {
    messages::seal(
        crypto,
        Outgoing {
            tenant: super::platform().clone(),
            channel: Channel::Email,
            purpose: Purpose::Account,
            template,
            language: crate::intake::Language::En,
            to_index: email_index(crypto, to.expose()).await?,
            to,
            subject: Some(subject),
            body,
            zone: None,
            patient: None,
            statement: None,
            not_before: now,
        },
    )
    .await
    .map_err(AccountError::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_eight_digits() {
        for _ in 0..200 {
            let c = super::new_code();
            assert_eq!(c.len(), 8);
            assert!(c.chars().all(|ch| ch.is_ascii_digit()));
        }
    }
}
