//! Staff display names: the name a patient sees on "who viewed my record". Plain text (a staff
//! member's name is not PHI), 1 to `MAX_CHARS` characters, no control characters, and only ever
//! on a staff account: a member (patient or guarantor) is refused one.

use super::AccountError;
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;

/// The longest display name accepted (the column's CHECK says the same).
pub const MAX_CHARS: usize = 80;

/// A checked display name: trimmed, inner whitespace runs made one space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffName(String);

impl StaffName {
    pub fn parse(raw: &str) -> Result<StaffName, AccountError> {
        let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = name.chars().count();
        if n == 0 || n > MAX_CHARS {
            return Err(AccountError::Bad("give a name of 1 to 80 characters"));
        }
        // An email in the name field is a slip, and would show an address to patients.
        if name.chars().any(|c| c.is_control() || c == '@') {
            return Err(AccountError::Bad(
                "a name may not hold control characters or an email address",
            ));
        }
        Ok(StaffName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Sets a staff account's display name; false when `user` is no staff account (unknown, or a
/// member account, which never gets one).
pub async fn rename(db: &Db, user: &UserId, name: &StaffName) -> Result<bool, AccountError> {
    let r = sqlx::query(
        "UPDATE users SET display_name = $1 WHERE id = $2 AND EXISTS (
             SELECT 1 FROM user_grants g WHERE g.user_id = users.id
             AND g.role NOT IN ('patient', 'guarantor'))",
    )
    .bind(name.as_str())
    .bind(user.as_str())
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The account an operator names by email (`users rename --email`).
pub async fn user_by_email(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
) -> Result<Option<UserId>, AccountError> {
    super::email::by_email(db, crypto, email).await
}

/// A staff account's display name, if it has one.
pub async fn display_name(db: &Db, user: &UserId) -> Result<Option<String>, AccountError> {
    let name: Option<Option<String>> =
        sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(db.pool())
            .await?;
    Ok(name.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_plain() {
        assert_eq!(
            StaffName::parse("  Dana   Ruiz ").expect("ok").as_str(),
            "Dana Ruiz"
        );
        assert!(StaffName::parse("   ").is_err());
        assert!(StaffName::parse(&"a".repeat(81)).is_err());
        assert!(
            StaffName::parse(&"é".repeat(80)).is_ok(),
            "80 characters, not bytes"
        );
        assert!(StaffName::parse("dana@example.org").is_err());
        assert!(StaffName::parse("Dana\u{7}Ruiz").is_err());
    }
}
