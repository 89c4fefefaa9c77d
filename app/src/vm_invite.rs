//! View models of the guarantor-invitation pages (split from `vm` to keep files small).

use crate::vm::{AccountFormVm, FieldError};
use std::fmt;

/// The invitee answers the dependant's identity questions (date of birth and ZIP together).
#[derive(Clone, Debug, Default)]
pub struct InviteVerifyVm {
    pub csrf: String,
    pub practice_name: Option<String>,
    pub failure: Option<String>,
    /// Input ids: "dob-month", "zip".
    pub field_error: Option<FieldError>,
}

#[derive(Clone, Default)]
pub struct InviteAcceptVm {
    pub csrf: String,
    pub practice_name: String,
    /// First name of the dependant.
    pub patient_name: String,
    /// Signed in already: accept onto this account with one button (`mode=existing`).
    pub signed_in_email: Option<String>,
    /// Otherwise: create an account (`mode=create`), or sign in first at /signin.
    pub form: AccountFormVm,
}

impl fmt::Debug for InviteAcceptVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let InviteAcceptVm {
            csrf,
            practice_name,
            form,
            patient_name: _,
            signed_in_email: _,
        } = self;
        f.debug_struct("InviteAcceptVm")
            .field("csrf", csrf)
            .field("practice_name", practice_name)
            .field("form", form)
            .field("patient_name", &format_args!("[redacted]"))
            .field("signed_in_email", &format_args!("[redacted]"))
            .finish()
    }
}
