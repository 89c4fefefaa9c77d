//! The staff import page's view models: the practices an admin may import into, the dry run
//! waiting for confirmation, the last run's report and the practice's import history. Nothing
//! here is PHI: counts, statement ids (the sender's opaque keys) and rejection reasons that name
//! place and field, never a value.

/// A practice the admin may import into.
#[derive(Clone, Debug)]
pub struct ImportPracticeVm {
    pub id: String,
    pub name: String,
}

/// What one run came to (a dry run, or the real import).
#[derive(Clone, Debug, Default)]
pub struct ImportResultVm {
    pub dry_run: bool,
    /// The writes were committed.
    pub committed: bool,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// One line per refused statement (place, field and reason).
    pub rejections: Vec<String>,
    /// The file could not be read to its end, or is for another practice.
    pub fatal: Option<String>,
}

/// One row of the import history.
#[derive(Clone, Debug)]
pub struct ImportRunVm {
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub when: String,
    /// A staff member's display name, "API key" or "command line", already worded.
    pub who: String,
    /// "staff", "api" or "cli", already worded.
    pub source: String,
    pub dry_run: bool,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
}

/// The page: pick the practice, upload, confirm the dry run, read the report and the history.
#[derive(Clone, Debug, Default)]
pub struct ImportPageVm {
    pub csrf: String,
    pub notice: Option<String>,
    pub practices: Vec<ImportPracticeVm>,
    /// The practice shown (its history, the upload form's default).
    pub selected: String,
    /// A dry run of a kept file, waiting for "Confirm import".
    pub pending: Option<ImportResultVm>,
    /// The last finished import (after confirming).
    pub report: Option<ImportResultVm>,
    /// The selected practice's last 50 runs, newest first.
    pub history: Vec<ImportRunVm>,
}
