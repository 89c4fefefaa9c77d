//! Form bodies and checks shared by several areas (members' and staff sign-in, new passwords).
//! The CSRF token is checked by `extract::CsrfForm` before any of these is deserialised.

/// Email and password, as both sign-in pages (members and staff) post them.
#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// A new password typed twice.
#[derive(serde::Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_confirm: String,
}

/// The one password rule (8–128 characters, never truncated) and the confirmation check:
/// `(field, catalog key)` of the first problem.
pub fn password_errors(password: &str, confirm: &str) -> Option<(&'static str, &'static str)> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        Some(("password", "staff-password-weak"))
    } else if password != confirm {
        Some(("password-confirm", "staff-password-mismatch"))
    } else {
        None
    }
}

/// A form with nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    #[test]
    fn password_rule() {
        assert_eq!(
            super::password_errors("short", "short"),
            Some(("password", "staff-password-weak"))
        );
        assert_eq!(
            super::password_errors("long enough", "long enougH"),
            Some(("password-confirm", "staff-password-mismatch"))
        );
        assert_eq!(super::password_errors("long enough", "long enough"), None);
    }
}
