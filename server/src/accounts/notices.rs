//! Notices to an account's owner, at its own email, through the outbox (issue 13): whoever did
//! it, the owner hears of every password change and every guarantor grant added to the account,
//! so a takeover cannot stay silent. No patient's name or care is in them.

use super::codes::message_error;
use super::{email_index, open_email, AccountError};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::messages::{self, texts, Channel, Outgoing, Purpose};
use crate::phi::Phi;

/// Queues `(subject, body)` as template `template` to `user`'s email.
async fn notify(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
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
    let sealed = messages::seal(
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
    .map_err(message_error)?;
    let mut conn = db.pool().acquire().await?;
    messages::queue(&mut conn, &sealed, now)
        .await
        .map_err(message_error)?;
    Ok(())
}

/// Tells the owner their password changed.
pub async fn notify_password_changed(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    now: i64,
) -> Result<(), AccountError> {
    let text = texts::password_changed_email();
    notify(db, crypto, user, texts::PASSWORD_CHANGED, text, now).await
}

/// Tells the owner their account now looks after someone else's bills at `practice`.
pub async fn notify_grant_added(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    practice: &str,
    now: i64,
) -> Result<(), AccountError> {
    let text = texts::grant_added_email(practice);
    notify(db, crypto, user, texts::GRANT_ADDED, text, now).await
}
