//! View models of the security officer's alert console (issue 14): alerts already worded by the
//! server, each with its acknowledgement and notes (a note's words redacted in `Debug`: it may
//! name a patient).

use std::fmt;

/// A note on an alert.
#[derive(Clone, Default)]
pub struct AlertNoteVm {
    pub at: String,
    pub author: String,
    pub text: String,
}

impl fmt::Debug for AlertNoteVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertNoteVm")
            .field("at", &self.at)
            .field("author", &self.author)
            .field("text", &"[redacted]")
            .finish()
    }
}

/// One alert.
#[derive(Clone, Debug, Default)]
pub struct AlertVm {
    /// Its number (the forms' value).
    pub id: String,
    pub at: String,
    /// `anomaly.identity-failures-link`, `break-glass`, …
    pub kind: String,
    pub detail: String,
    /// The practice it concerns, named; `None` for the platform's own.
    pub practice: Option<String>,
    /// "Acknowledged by … at …"; `None`: open.
    pub acknowledged: Option<String>,
    pub notes: Vec<AlertNoteVm>,
}

/// The console.
#[derive(Clone, Debug, Default)]
pub struct AlertsVm {
    pub csrf: String,
    /// The console shown: (tenant id, name); the platform's lists every practice's alerts.
    pub practice: (String, String),
    /// The other consoles the caller may open: (tenant id, name).
    pub others: Vec<(String, String)>,
    /// Open alerts first, then acknowledged, each newest first.
    pub alerts: Vec<AlertVm>,
    /// What the last form did.
    pub notice: Option<String>,
    /// The note form's error, with the alert it was for and the words kept.
    pub note_error: Option<(String, String, String)>,
}
