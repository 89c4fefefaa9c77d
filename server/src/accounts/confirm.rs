//! Member email confirmation (issue 13): a local member account is usable only once the code
//! emailed to its address at sign-up is entered. Sign-up answers the same whether or not the
//! address already has an account (the address's owner is emailed instead, so the page tells no
//! one which addresses, staff ones included, have accounts), and a sign-up left unconfirmed for
//! `UNCONFIRMED_SECS` gives its address up, so no one can hold someone else's address hostage.

use super::codes::{self, CodePurpose};
use super::{email, AccountError, NewAccount};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::messages::{self, texts};
use crate::phi::Phi;

/// How long a sign-up code works (as long as Cognito's).
pub const CONFIRM_CODE_SECS: i64 = 24 * 60 * 60;
/// How long an unconfirmed sign-up holds its address.
pub const UNCONFIRMED_SECS: i64 = 24 * 60 * 60;
/// At most one "you already have an account" email per address in this time.
const EXISTS_NOTICE_SECS: i64 = 60 * 60;

/// The confirmation code of a local account about to be made, with its email sealed before the
/// account's transaction; `create_member` stores it and queues the email in that transaction.
pub struct ConfirmCode {
    user: UserId,
    code_mac: Vec<u8>,
    email: messages::Sealed,
}

impl ConfirmCode {
    /// A fresh code for the account `account` will make with `address`.
    pub async fn prepare(
        crypto: &FieldCrypto,
        account: &NewAccount,
        address: &str,
        now: i64,
    ) -> Result<Self, AccountError> {
        let (code_mac, email) = code_email(crypto, &account.id, address, now).await?;
        Ok(ConfirmCode {
            user: account.id.clone(),
            code_mac,
            email,
        })
    }

    /// Stores the code for the new account and queues its email, in the account's transaction.
    pub(super) async fn store(
        &self,
        tx: &mut sqlx::AnyConnection,
        user: &UserId,
        now: i64,
    ) -> Result<(), AccountError> {
        if user != &self.user {
            return Err(AccountError::Bad("a confirmation code is for one account"));
        }
        store_and_queue(tx, user, &self.code_mac, &self.email, now).await
    }
}

/// A new code and its email to `address`: the code's MAC and the sealed email.
async fn code_email(
    crypto: &FieldCrypto,
    user: &UserId,
    address: &str,
    now: i64,
) -> Result<(Vec<u8>, messages::Sealed), AccountError> {
    let code = codes::new_code();
    let code_mac = codes::mac(crypto, user, &code).await?;
    let text = texts::confirm_code_email(&code, CONFIRM_CODE_SECS / 3600);
    let to = Phi::new(email::normalize_email(address));
    let sealed = codes::seal_email(crypto, to, texts::CONFIRM_CODE, text, now).await?;
    Ok((code_mac, sealed))
}

async fn store_and_queue(
    tx: &mut sqlx::AnyConnection,
    user: &UserId,
    code_mac: &[u8],
    sealed: &messages::Sealed,
    now: i64,
) -> Result<(), AccountError> {
    let expires = now + CONFIRM_CODE_SECS;
    codes::store(tx, user, CodePurpose::Confirm, code_mac, now, expires).await?;
    messages::queue(tx, sealed, now).await?;
    Ok(())
}

/// Whether the account's address is confirmed (staff and Cognito accounts always are).
pub(super) async fn is_confirmed(db: &Db, user: &UserId) -> Result<bool, AccountError> {
    let at: Option<Option<i64>> =
        sqlx::query_scalar("SELECT email_confirmed_at FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(db.pool())
            .await?;
    Ok(matches!(at, Some(Some(_))))
}

/// The unconfirmed, enabled member account with this address, and when it was made.
async fn unconfirmed_member(
    db: &Db,
    crypto: &FieldCrypto,
    address: &str,
) -> Result<Option<(UserId, i64)>, AccountError> {
    let index = email::email_index(crypto, address).await?;
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT id, created_at FROM users
         WHERE email_index = $1 AND kind = 'member' AND email_confirmed_at IS NULL
           AND disabled_at IS NULL",
    )
    .bind(index)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id, at)| (UserId::from_db(id), at)))
}

/// Enters the code emailed at sign-up: `Some(user)` when it was right, and the account with this
/// address is now usable. A wrong code uses up a try.
pub async fn confirm_email(
    db: &Db,
    crypto: &FieldCrypto,
    address: &str,
    code: &str,
    now: i64,
) -> Result<Option<UserId>, AccountError> {
    let Some((user, _)) = unconfirmed_member(db, crypto, address).await? else {
        return Ok(None);
    };
    if !codes::redeem(db, crypto, &user, CodePurpose::Confirm, code, now).await? {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE users SET email_confirmed_at = $1 WHERE id = $2 AND email_confirmed_at IS NULL",
    )
    .bind(now)
    .bind(user.as_str())
    .execute(db.pool())
    .await?;
    Ok(Some(user))
}

/// A fresh sign-up code for the unconfirmed account with this address (the first was lost); at
/// most one code per `codes::RESEND_SECS`, and nothing for any other address.
pub async fn resend_confirm_code(
    db: &Db,
    crypto: &FieldCrypto,
    address: &str,
    now: i64,
) -> Result<(), AccountError> {
    match unconfirmed_member(db, crypto, address).await? {
        Some((user, _)) => resend_to(db, crypto, &user, address, now).await,
        None => Ok(()),
    }
}

/// A fresh sign-up code to the unconfirmed account `user` at `address`, unless one went lately.
async fn resend_to(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    address: &str,
    now: i64,
) -> Result<(), AccountError> {
    if codes::sent_lately(db, user, CodePurpose::Confirm, now).await? {
        return Ok(());
    }
    let (code_mac, sealed) = code_email(crypto, user, address, now).await?;
    let mut tx = db.begin_write().await?;
    store_and_queue(&mut tx, user, &code_mac, &sealed, now).await?;
    tx.commit().await?;
    Ok(())
}

/// A sign-up for an address that already has an account. The page answers as for a new one;
/// here an unconfirmed sign-up gets a fresh code (its owner trying again), and any other
/// account's owner is told by email how to sign in or reset, at most once an hour.
pub async fn signup_for_taken(
    db: &Db,
    crypto: &FieldCrypto,
    address: &str,
    public_url: &str,
    now: i64,
) -> Result<(), AccountError> {
    if let Some((user, _)) = unconfirmed_member(db, crypto, address).await? {
        return resend_to(db, crypto, &user, address, now).await;
    }
    let index = email::email_index(crypto, address).await?;
    let enabled: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1 AND disabled_at IS NULL")
            .bind(&index)
            .fetch_optional(db.pool())
            .await?;
    if enabled.is_none() {
        return Ok(());
    }
    let told: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox
         WHERE tenant_id = $1 AND template = $2 AND recipient_bidx = $3 AND created_at > $4",
    )
    .bind(super::platform().as_str())
    .bind(texts::ACCOUNT_EXISTS)
    .bind(&index)
    .bind(now - EXISTS_NOTICE_SECS)
    .fetch_one(db.pool())
    .await?;
    if told > 0 {
        return Ok(());
    }
    let text = texts::account_exists_email(public_url);
    let to = Phi::new(email::normalize_email(address));
    let sealed = codes::seal_email(crypto, to, texts::ACCOUNT_EXISTS, text, now).await?;
    let mut tx = db.begin_write().await?;
    messages::queue(&mut tx, &sealed, now).await?;
    tx.commit().await?;
    Ok(())
}

/// An unconfirmed sign-up older than `UNCONFIRMED_SECS` gives its address up before a new
/// sign-up with it: the account is disabled, its grants revoked, its codes spent, and its stored
/// address replaced by a placeholder of its own (sealed and indexed like any address, so a key
/// rotation rebuilds a distinct index). Nothing happens to a younger or a confirmed account.
pub async fn release_stale_signup(
    db: &Db,
    crypto: &FieldCrypto,
    address: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let Some((user, created_at)) = unconfirmed_member(db, crypto, address).await? else {
        return Ok(false);
    };
    if created_at > now - UNCONFIRMED_SECS {
        return Ok(false);
    }
    let placeholder = format!("{user}@released.invalid");
    let index = email::email_index(crypto, &placeholder).await?;
    let sealed = email::seal_for(crypto, &user, &placeholder).await?;
    let mut tx = db.begin_write().await?;
    let released = sqlx::query(
        "UPDATE users SET email_index = $1, email_ct = $2, disabled_at = $3
         WHERE id = $4 AND email_confirmed_at IS NULL",
    )
    .bind(index)
    .bind(sealed)
    .bind(now)
    .bind(user.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if released == 0 {
        // Confirmed meanwhile: it keeps its address.
        return Ok(false);
    }
    sqlx::query("UPDATE user_grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE account_codes SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
