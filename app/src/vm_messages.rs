//! View models of messages as staff see them (issue 13): one outbox row (the support console's
//! "Messages" and a practice's dead letters), a patient's reply (its words redacted in `Debug`),
//! the practice's messages page, and the public "is this text really from my practice?" page.

use std::fmt;

/// One message: already worded by the server (the state carries a time or an error).
#[derive(Clone, Debug, Default)]
pub struct MessageLineVm {
    /// When it was queued.
    pub queued: String,
    /// "Text" or "Email".
    pub channel: String,
    /// "Pay link text", …
    pub template: String,
    /// "Sent", "Deferred until …", "Given up: …", …
    pub state: String,
    /// Masked: a number's last four digits, an address's first letter and domain.
    pub recipient: String,
}

/// One reply that was no keyword.
#[derive(Clone, Default)]
pub struct ReplyVm {
    /// The reply's id (the mark-as-read form's value).
    pub id: String,
    pub received: String,
    /// The number's last four digits.
    pub from: String,
    /// What the patient wrote (may be anything, PHI included).
    pub body: String,
    /// When someone marked it read; `None`: unread.
    pub read: Option<String>,
}

impl fmt::Debug for ReplyVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyVm")
            .field("id", &self.id)
            .field("received", &self.received)
            .field("from", &self.from)
            .field("body", &"[redacted]")
            .field("read", &self.read)
            .finish()
    }
}

/// The practice's messages page.
#[derive(Clone, Debug, Default)]
pub struct MessagesVm {
    pub csrf: String,
    /// The practice shown: (tenant id, name).
    pub practice: (String, String),
    /// The other practices the caller may see the messages of: (tenant id, name).
    pub others: Vec<(String, String)>,
    /// Messages given up or failed, newest first.
    pub dead: Vec<MessageLineVm>,
    /// Replies, newest first.
    pub replies: Vec<ReplyVm>,
    /// Mark-as-read is offered (the policy lets the caller).
    pub can_mark: bool,
    /// What the last form did.
    pub notice: Option<String>,
}

/// The answer to a check of a pasted link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResultVm {
    Genuine(String),
    /// Not genuine, or not checkable: the words say which.
    Other(String),
}

/// "Is this text really from my practice?"
#[derive(Clone, Debug, Default)]
pub struct CheckLinkVm {
    pub csrf: String,
    /// The last check's answer (the pasted text is not kept: it may be a live link).
    pub result: Option<CheckResultVm>,
    /// How a genuine link starts: this portal's own address and `/p/`.
    pub prefix: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_a_reply() {
        let vm = MessagesVm {
            replies: vec![ReplyVm {
                body: "my knee surgery bill is wrong".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(!format!("{vm:?}").contains("knee"));
    }
}

/// A practice admin's settings for the practice's texts (`Url::StaffMessaging`).
#[derive(Clone, Debug, Default)]
pub struct MessagingSettingsVm {
    pub csrf: String,
    /// (id, name) of the practice shown.
    pub practice: (String, String),
    /// The other practices the admin manages: (id, name).
    pub others: Vec<(String, String)>,
    pub notice: Option<String>,
    /// Days after the first text, as typed ("7, 14").
    pub reminder_days: String,
    pub remind_on_due: bool,
    /// Why the typed cadence was refused.
    pub cadence_error: Option<String>,
    pub footer: bool,
    /// The "is this text really from my practice?" page.
    pub check_url: String,
    pub texts: Vec<TextWordingVm>,
}

/// One text a practice may word.
#[derive(Clone, Debug, Default)]
pub struct TextWordingVm {
    /// "pay-link" or "reminder" (the form's value).
    pub template: String,
    /// "en" or "es" (the form's value).
    pub language: String,
    /// "New statement text, English", worded.
    pub label: String,
    pub body: String,
    /// The practice's own wording (else the built-in one).
    pub custom: bool,
    /// "1 segment (GSM-7), 131 characters with a link", worded.
    pub measure: Option<String>,
    /// Why the typed wording was refused (for a practice administrator).
    pub errors: Vec<String>,
}
