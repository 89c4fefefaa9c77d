//! Account emails: normalising and checking them, the keyed blind index accounts are found by,
//! sealing a new account's email (`NewAccount`), opening it, and whether one is taken.

use super::{platform, AccountError};
use crate::crypto::{FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::UserId;
use crate::phi::Phi;

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible email address: one `@`, something either side, a dot in the domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An address as a page may confirm it: its first character, then the domain
/// (`a•••@example.org`), so the page says where a message went without repeating the address.
pub fn masked_email(email: &str) -> String {
    match email.trim().split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
        }
        None => "\u{2022}\u{2022}\u{2022}".to_owned(),
    }
}

/// Blind-index domain for account emails.
const BIDX_EMAIL: &str = "account-email";

/// The keyed blind index an account is found by: the email itself is never stored in the clear
/// (a patient's or guarantor's email says who a practice's patients are).
pub async fn email_index(crypto: &FieldCrypto, email: &str) -> Result<Vec<u8>, AccountError> {
    let (what, input) = email_index_input(email);
    Ok(crypto.blind_index(platform(), what, &input).await?)
}

/// The domain and normalised input of an account's email index (also how `keys rotate-index`
/// rebuilds it from the decrypted email).
pub(crate) fn email_index_input(email: &str) -> (&'static str, String) {
    (BIDX_EMAIL, normalize_email(email))
}

/// Where an account's email ciphertext is bound: the platform's keys, the user's row.
fn email_aad(user: &UserId) -> FieldAad<'_> {
    FieldAad {
        tenant: platform(),
        table: "users",
        column: "email",
        row: user.as_str(),
    }
}

/// `email` sealed as account `user`'s stored address.
pub(super) async fn seal_for(
    crypto: &FieldCrypto,
    user: &UserId,
    email: &str,
) -> Result<Vec<u8>, AccountError> {
    Ok(crypto.encrypt(email_aad(user), email.as_bytes()).await?)
}

/// A new account's id with its email sealed for storage. Made before the caller's write
/// transaction opens, since a first use of the platform's keys writes them.
pub struct NewAccount {
    pub id: UserId,
    pub(super) email_index: Vec<u8>,
    pub(super) email_ct: Vec<u8>,
}

impl NewAccount {
    /// Checks and normalises the email, then seals it for a fresh account id.
    pub async fn prepare(crypto: &FieldCrypto, email: &str) -> Result<Self, AccountError> {
        let email = normalize_email(email);
        if !valid_email(&email) {
            return Err(AccountError::Bad("not an email address"));
        }
        let id = UserId::generate();
        let email_index = email_index(crypto, &email).await?;
        let email_ct = seal_for(crypto, &id, &email).await?;
        Ok(Self {
            id,
            email_index,
            email_ct,
        })
    }

    /// Refuses an email some account already uses.
    pub(super) async fn check_free(
        &self,
        tx: &mut sqlx::AnyConnection,
    ) -> Result<(), AccountError> {
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1")
                .bind(&self.email_index)
                .fetch_optional(&mut *tx)
                .await?;
        match taken {
            Some(_) => Err(AccountError::EmailTaken),
            None => Ok(()),
        }
    }
}

/// An account's email, decrypted for display (its owner, the practice, the operator's CLI).
pub async fn open_email(
    crypto: &FieldCrypto,
    user: &UserId,
    email_ct: &[u8],
) -> Result<Phi<String>, AccountError> {
    Ok(crypto.decrypt_str(email_aad(user), email_ct).await?)
}

/// The account using this email, if any.
pub(super) async fn by_email(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1")
        .bind(email_index(crypto, email).await?)
        .fetch_optional(db.pool())
        .await?;
    Ok(id.map(UserId::from_db))
}

/// True when an account already uses this email (checked before calling out to Cognito).
pub async fn email_taken(db: &Db, crypto: &FieldCrypto, email: &str) -> Result<bool, AccountError> {
    Ok(by_email(db, crypto, email).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::masked_email;

    #[test]
    fn a_masked_address_keeps_the_first_character_and_the_domain() {
        assert_eq!(
            masked_email("alice@example.org"),
            "a\u{2022}\u{2022}\u{2022}@example.org"
        );
        assert_eq!(masked_email(" b@x.io "), "b\u{2022}\u{2022}\u{2022}@x.io");
        assert_eq!(masked_email("nothing"), "\u{2022}\u{2022}\u{2022}");
    }
}
