//! The view-as banner's view model: who is viewing as whom, for how long, and whether a payment
//! may be taken on the patient's behalf.

use std::fmt;

/// Shown on every page while a staff member views as a patient.
#[derive(Clone, Default)]
pub struct ViewAsBannerVm {
    /// The staff member's display name.
    pub staff_name: String,
    /// The patient's full name (PHI: the staff member holds a view-as permit for them).
    pub patient_name: String,
    /// Whole minutes left, rounded up (at least 1 while it runs).
    pub minutes_left: i64,
    /// Token for the banner's forms (end the view, note consent).
    pub csrf: String,
    /// `None`: read-only. Otherwise the practice lets staff take a payment the patient dictates.
    pub consent: Option<ViewAsConsent>,
}

/// Act on behalf is on for the practice: where the patient's verbal consent stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewAsConsent {
    /// Not noted yet: no payment may be taken.
    NotNoted,
    /// Noted: the next payment started is recorded as taken by this staff member.
    Noted,
}

impl fmt::Debug for ViewAsBannerVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewAsBannerVm")
            .field("staff_name", &self.staff_name)
            .field("patient_name", &format_args!("[redacted]"))
            .field("minutes_left", &self.minutes_left)
            .field("consent", &self.consent)
            .finish_non_exhaustive()
    }
}

/// The practice admin's "act on behalf" settings page.
#[derive(Clone, Debug, Default)]
pub struct ActOnBehalfVm {
    pub csrf: String,
    pub notice: Option<String>,
    pub practices: Vec<ActOnBehalfPracticeVm>,
}

/// One practice the admin manages, and whether act-on-behalf is on there.
#[derive(Clone, Debug, Default)]
pub struct ActOnBehalfPracticeVm {
    pub id: String,
    pub name: String,
    pub enabled: bool,
}
