//! View models: the plain, already-formatted data each page renders. No domain types, no SQL.

use crate::i18n::Lang;

/// What every page needs besides its own content.
#[derive(Clone, Debug, Default)]
pub struct PageMeta {
    pub lang: Lang,
    /// Practice shown in the header, when known and the visitor may see it.
    pub practice_name: Option<String>,
    /// Present when the visitor has a session worth signing out of.
    pub signout_csrf: Option<String>,
}

/// A form error tied to one field: `field` is the input's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, Default)]
pub struct VerifyDobVm {
    pub practice_name: Option<String>,
    pub csrf: String,
    /// A failure not tied to one field (wrong answer, unknown link).
    pub failure: Option<String>,
    pub field_error: Option<FieldError>,
}

#[derive(Clone, Debug, Default)]
pub struct LockedVm {
    pub practice_name: Option<String>,
    pub practice_phone: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct VerifyZipVm {
    pub csrf: String,
    pub failure: Option<String>,
    pub field_error: Option<FieldError>,
}

/// The payment form, shown on the summary, statement and declined pages.
#[derive(Clone, Debug, Default)]
pub struct PayFormVm {
    pub csrf: String,
    /// Formatted balance, e.g. "$182.40".
    pub balance: String,
    /// Pre-filled amount, e.g. "182.40"; on an error, what the patient typed.
    pub amount: String,
    pub error: Option<FieldError>,
    /// Where to come back to after an error ("summary" or "statement").
    pub from: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct SummaryVm {
    pub practice_name: String,
    pub statement_date: String,
    pub due_date: String,
    pub balance: String,
    pub paid_in_full: bool,
    pub itemised_unlocked: bool,
    pub pay: PayFormVm,
}

#[derive(Clone, Debug, Default)]
pub struct LineVm {
    pub service_date: String,
    pub description: String,
    pub charge: String,
    pub insurance_paid: String,
    pub adjustment: String,
    pub responsibility: String,
}

#[derive(Clone, Debug, Default)]
pub struct PaymentVm {
    pub date: String,
    pub amount: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Clone, Debug, Default)]
pub struct StatementVm {
    pub practice_name: String,
    pub statement_date: String,
    pub due_date: String,
    pub lines: Vec<LineVm>,
    pub totals: LineVm,
    pub payments: Vec<PaymentVm>,
    pub balance: String,
    pub paid_in_full: bool,
    pub pay: PayFormVm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclineKind {
    Declined,
    InsufficientFunds,
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct DeclinedVm {
    pub kind: DeclineKind,
    pub pay: PayFormVm,
    pub paid_in_full: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ConfirmingVm {
    /// Same-origin path to poll; no token or PHI in it.
    pub refresh_path: String,
}

#[derive(Clone, Debug, Default)]
pub struct ReceiptVm {
    pub practice_name: String,
    pub amount: String,
    pub date: String,
    pub brand: String,
    pub last4: String,
    pub reference: String,
    pub new_balance: String,
}

/// Informational pages: signed out, session expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    SignedOut,
    SessionExpired,
}

#[derive(Clone, Debug)]
pub struct ErrorVm {
    pub status: u16,
    pub request_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct SandboxCheckoutVm {
    pub merchant: String,
    pub amount: String,
    pub csrf: String,
    pub cancel_url: String,
    pub error: Option<FieldError>,
    pub open: bool,
}

#[derive(Clone, Debug, Default)]
pub struct StaffLoginVm {
    pub csrf: String,
    pub email: String,
    pub failure: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct StaffMfaVm {
    pub csrf: String,
    pub failure: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct StaffEnrolVm {
    pub csrf: String,
    /// Server-rendered SVG of the otpauth QR code (our own markup, not user input).
    pub qr_svg: String,
    pub secret_base32: String,
    pub failure: Option<String>,
    pub field_error: Option<FieldError>,
}

#[derive(Clone, Debug, Default)]
pub struct StaffRecoveryVm {
    pub codes: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct StaffPatientRow {
    pub name: String,
    pub practice: String,
}

#[derive(Clone, Debug, Default)]
pub struct StaffHomeVm {
    pub csrf: String,
    pub email: String,
    /// "Support agent at Riverside Family Medicine".
    pub roles: Vec<String>,
    pub can_search: bool,
    /// `None` before a search; `Some(empty)` when nothing matched.
    pub results: Option<Vec<StaffPatientRow>>,
    pub notice: Option<String>,
    /// Active emergency grants, already worded.
    pub emergency: Vec<String>,
    /// The emergency-access form, for those who may grant it.
    pub break_glass: Option<BreakGlassVm>,
}

#[derive(Clone, Debug, Default)]
pub struct BreakGlassVm {
    /// (tenant id, practice name)
    pub practices: Vec<(String, String)>,
    pub error: Option<String>,
}
