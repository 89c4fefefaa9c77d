//! Checks on form bodies shared by several areas (members' and staff's new passwords). The
//! bodies themselves are `patriotpay_app::forms`, shared with the markup; the CSRF token is
//! checked by `extract::CsrfForm` before any of them is deserialised.

use patriotpay_app::forms::NewAccountForm;

/// The one password rule (8–128 characters, never truncated) and the confirmation check:
/// `(input id, catalog key)` of the first problem.
pub fn password_errors(password: &str, confirm: &str) -> Option<(&'static str, &'static str)> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        Some((NewAccountForm::PASSWORD, "staff-password-weak"))
    } else if password != confirm {
        Some(("password-confirm", "staff-password-mismatch"))
    } else {
        None
    }
}

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
