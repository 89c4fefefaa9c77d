//! View models of the audit viewer (security officers and auditors), and the names of its query
//! parameters. No PHI: the audit log holds ids, action names and addresses only.

/// The viewer's query parameters (a GET form: reading changes nothing, so no CSRF token).
pub struct AuditQuery;

impl AuditQuery {
    pub const PRACTICE: &'static str = "practice";
    pub const ACTOR: &'static str = "actor";
    pub const PATIENT: &'static str = "patient";
    pub const ACTION: &'static str = "action";
    pub const FROM: &'static str = "from";
    pub const TO: &'static str = "to";
    pub const ADDRESS: &'static str = "address";
    pub const BEFORE: &'static str = "before";
}

/// The filters as typed, shown again in the form.
#[derive(Clone, Debug, Default)]
pub struct AuditFilterVm {
    pub practice: String,
    pub actor: String,
    pub patient: String,
    pub action: String,
    pub from: String,
    pub to: String,
    pub address: String,
}

/// One event as the viewer shows it; empty strings for what the event does not have.
#[derive(Clone, Debug, Default)]
pub struct AuditRowVm {
    pub seq: String,
    /// "2026-11-30 21:04:05 UTC".
    pub time: String,
    pub actor: String,
    pub on_behalf_of: String,
    pub practice: String,
    pub patient: String,
    pub action: String,
    pub resource: String,
    pub request_id: String,
    pub address: String,
    /// Already worded ("Allowed", "Denied", "Failed").
    pub outcome: String,
    pub sealed: bool,
}

/// The audit viewer page.
#[derive(Clone, Debug, Default)]
pub struct AuditLogVm {
    /// (tenant id, practice name): the practices whose log this viewer may read.
    pub practices: Vec<(String, String)>,
    pub filter: AuditFilterVm,
    /// A filter that could not be read; no events are shown with it.
    pub error: Option<String>,
    /// `None` when nothing was queried (a filter was refused).
    pub rows: Option<Vec<AuditRowVm>>,
    /// The next older page, filters kept.
    pub older: Option<String>,
    /// Back to the newest page, filters kept (on an older page only).
    pub newest: Option<String>,
}
