//! View models of the support console (`Url::StaffPatient`): one patient's statements, payments,
//! pay links and messages as a support agent or practice admin sees them (kept apart from `vm` so it
//! stays small). The patient's name, the reason typed and a fresh link are redacted in `Debug`.

use std::fmt;

/// One statement: when, when due, what is owed, and the resend form's value.
#[derive(Clone, Debug, Default)]
pub struct ConsoleStatementVm {
    /// Statement id (the resend form's value).
    pub id: String,
    pub date: String,
    pub due: String,
    pub balance: String,
    /// Its text reminders are paused (by staff, or for good once it was paid).
    pub reminders_paused: bool,
}

/// One payment, in short: the payments page has the rest.
#[derive(Clone, Debug, Default)]
pub struct ConsolePaymentVm {
    pub date: String,
    pub amount: String,
    /// `succeeded`, `processing` or `failed`.
    pub status: String,
}

/// One pay link: when it was made (and so sent), first opened, wrong answers, where it stands.
#[derive(Clone, Debug, Default)]
pub struct ConsoleLinkVm {
    /// Pay-link id (the revoke and unlock forms' value).
    pub id: String,
    /// The date of the statement it points at.
    pub statement_date: String,
    pub created: String,
    /// `None`: never opened.
    pub first_opened: Option<String>,
    pub failed_attempts: i64,
    /// `active`, `locked`, `expired` or `revoked`.
    pub status: String,
}

impl ConsoleLinkVm {
    /// A link that still works or could again (revoking it ends it for good).
    pub fn can_revoke(&self) -> bool {
        matches!(self.status.as_str(), "active" | "locked")
    }

    pub fn can_unlock(&self) -> bool {
        self.status == "locked"
    }
}

/// The unlock form of one link as it was sent back refused: what was typed and why not.
#[derive(Clone, Default)]
pub struct UnlockFormVm {
    pub link: String,
    /// The reason as typed (may name the patient).
    pub reason: String,
    pub error: String,
}

impl fmt::Debug for UnlockFormVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockFormVm")
            .field("link", &self.link)
            .field("reason", &"[redacted]")
            .field("error", &self.error)
            .finish()
    }
}

/// The console page.
#[derive(Clone, Default)]
pub struct ConsoleVm {
    pub csrf: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practice: String,
    pub statements: Vec<ConsoleStatementVm>,
    pub payments: Vec<ConsolePaymentVm>,
    /// The viewer may refund: link to the payments page.
    pub payments_link: bool,
    pub links: Vec<ConsoleLinkVm>,
    /// The patient's messages, newest first (recipients masked, bodies never shown).
    pub messages: Vec<crate::vm_messages::MessageLineVm>,
    /// What the last form did.
    pub notice: Option<String>,
    /// A pay link just issued, shown in this response only.
    pub new_link: Option<String>,
    /// A refused unlock, with what was typed.
    pub unlock: Option<UnlockFormVm>,
    /// The view-as start form: a refused start's error and the ticket as typed (the reason may
    /// name the patient, so it is not carried back).
    pub view_as_error: Option<crate::vm::FieldError>,
    pub view_as_ticket: String,
}

impl fmt::Debug for ConsoleVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleVm")
            .field("patient_id", &self.patient_id)
            .field("patient_name", &"[redacted]")
            .field("practice", &self.practice)
            .field("statements", &self.statements)
            .field("payments", &self.payments)
            .field("payments_link", &self.payments_link)
            .field("links", &self.links)
            .field("messages", &self.messages)
            .field("notice", &self.notice)
            .field("new_link", &self.new_link.as_ref().map(|_| "[redacted]"))
            .field("unlock", &self.unlock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_name_link_and_reason() {
        let vm = ConsoleVm {
            patient_name: "Avery Quintero".into(),
            new_link: Some("https://pay.example/p/secret-token".into()),
            unlock: Some(UnlockFormVm {
                link: "lnk_1".into(),
                reason: "Avery confirmed her DOB".into(),
                error: String::new(),
            }),
            ..Default::default()
        };
        let shown = format!("{vm:?}");
        for secret in ["Avery", "secret-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
