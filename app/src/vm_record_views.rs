//! View models of "who viewed my record" (kept apart from `vm` so it stays small). The lines are
//! worded by the server from the catalog; they name staff members and practices, never a
//! patient's details.

use crate::urls::Url;

/// One staff view or change, in plain words.
#[derive(Clone, Debug, Default)]
pub struct RecordViewVm {
    /// "Dana Ruiz of Demo Clinic viewed your payments on Nov 30, 2026 at 21:03 UTC."
    pub line: String,
    /// "Reason given: …" when the event has a reason (emergency access), or why it is withheld.
    pub why: Option<String>,
    /// Refused or failed: shown apart from what was done.
    pub refused: bool,
}

/// The page: one list, newest first, for every record the caller may see as their own.
#[derive(Clone, Debug, Default)]
pub struct RecordViewsVm {
    pub views: Vec<RecordViewVm>,
    /// The next (older) page, when there is one.
    pub older: Option<String>,
    /// Where "back" goes: the account page or the pay-link summary.
    pub back: Url<'static>,
}
