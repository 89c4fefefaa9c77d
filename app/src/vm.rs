//! View models: the plain, already-formatted data each page renders. No domain types, no SQL.
//! Those that carry PHI (names, service dates and descriptions, emails, invite links) or
//! credentials redact those fields in `Debug`.

use crate::i18n::Lang;
use crate::urls::Url;
use std::fmt;

pub use crate::vm_invite::{InviteAcceptVm, InviteVerifyVm};
pub use crate::vm_view_as::{ActOnBehalfPracticeVm, ActOnBehalfVm, ViewAsBannerVm, ViewAsConsent};

/// Stands in for a redacted field's value in `Debug`.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `Debug` that prints the struct's name and fields, with `[redacted]` for those after
/// `redacted:`. Every field must be named (the struct is destructured without `..`), so a field
/// added later has to be sorted into one list or the other.
macro_rules! debug_redacted {
    ($ty:ident { $($plain:ident),* ; redacted: $($secret:ident),+ $(,)? }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $ty { $($plain,)* $($secret: _,)* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($plain), $plain))*
                    $(.field(stringify!($secret), &Redacted))*
                    .finish()
            }
        }
    };
}

/// What every page needs besides its own content.
#[derive(Clone, Debug, Default)]
pub struct PageMeta {
    pub lang: Lang,
    /// The page (path and query) the language switch returns to; empty: this very page.
    pub here: String,
    /// Practice shown in the header, when known and the visitor may see it.
    pub practice_name: Option<String>,
    /// Present when the visitor has a session worth signing out of.
    pub signout_csrf: Option<String>,
    /// No real money moves (the built-in sandbox card processor): every page says so.
    pub test_mode: bool,
    /// Staff viewing as a patient: every page carries the banner.
    pub view_as: Option<ViewAsBannerVm>,
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

/// A link (pay link, invitation, staff set-up) opened in a browser that is signed in: a plain
/// GET never replaces that session, this page asks first.
#[derive(Clone, Default)]
pub struct SwitchSessionVm {
    pub csrf: String,
    /// The link's own path: the confirming form posts to it.
    pub open_path: String,
    /// Where "stay signed in" goes (the account's or the staff home page).
    pub stay_path: String,
    /// Signed in as staff (else as a patient or guarantor account).
    pub staff: bool,
    /// The link can be taken on as the signed-in account (a guarantor invitation, for a
    /// member): offer "continue" as well as "sign out and open".
    pub can_continue: bool,
}

debug_redacted!(SwitchSessionVm { csrf, stay_path, staff, can_continue; redacted: open_path });

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
    /// The patient's choice about billing texts, when there is a number to choose for.
    pub texts: Option<TextChoiceVm>,
    /// A message for the page carried over from the last form (not the pay form's own).
    pub notice: Option<String>,
}

/// Billing texts to the patient's number on the practice's record: on or off, and the form that
/// changes it (the consent wording is the page's).
#[derive(Clone, Debug, Default)]
pub struct TextChoiceVm {
    pub csrf: String,
    /// The number's last four digits.
    pub last_digits: String,
    pub on: bool,
    pub notice: Option<String>,
}

/// The four amounts of a statement line (or of the totals row).
#[derive(Clone, Debug, Default)]
pub struct AmountsVm {
    pub charge: String,
    pub insurance_paid: String,
    pub adjustment: String,
    pub responsibility: String,
}

/// What a line says about the care itself: shown together or not at all, because the date of
/// service alone can disclose a visit.
#[derive(Clone, Default)]
pub struct LineDetailVm {
    pub service_date: String,
    pub description: String,
}

debug_redacted!(LineDetailVm { ; redacted: service_date, description });

/// A statement line as its viewer may see it: `detail` is `None` when the policy hides clinical
/// detail from this viewer (a confidential line seen by a guarantor or by whoever holds a pay
/// link, or any line of a dependant who is now an adult, seen by a guarantor).
#[derive(Clone, Debug, Default)]
pub struct StatementLineVm {
    pub detail: Option<LineDetailVm>,
    pub amounts: AmountsVm,
}

#[derive(Clone, Debug, Default)]
pub struct PaymentVm {
    pub date: String,
    pub amount: String,
    pub status: PaymentStatusVm,
    pub refunds: Vec<RefundLineVm>,
    /// Empty (with `last4`) when the viewer may not see the card.
    pub brand: String,
    pub last4: String,
}

#[derive(Clone, Debug, Default)]
pub struct StatementVm {
    pub practice_name: String,
    pub statement_date: String,
    pub due_date: String,
    pub lines: Vec<StatementLineVm>,
    pub totals: AmountsVm,
    /// Some lines' details are hidden: say why.
    pub some_hidden: bool,
    pub payments: Vec<PaymentVm>,
    pub balance: String,
    pub paid_in_full: bool,
    pub pay: PayFormVm,
    /// The patient has an account: offer to set a new password for it (identity just proven).
    pub offer_password_reset: bool,
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
    /// Same-origin path that checks again; no token or PHI in it.
    pub check_path: String,
    /// Still worth checking again soon; false once the payer has checked enough times (or the
    /// booking was refused here), when the page says to come back later instead.
    pub still_waiting: bool,
    /// Where the payer's balance is shown (the summary, or the account page).
    pub back_path: String,
}

#[derive(Clone, Debug, Default)]
pub struct ReceiptVm {
    pub practice_name: String,
    pub amount: String,
    pub date: String,
    /// The card, shown only to whoever paid with it.
    pub card: Option<CardVm>,
    pub reference: String,
    pub new_balance: String,
    /// Offer to create an account (the visitor paid from a link and has none yet).
    pub offer_account: bool,
    pub status: PaymentStatusVm,
    pub refunds: Vec<RefundLineVm>,
    /// The staff member who took the payment on the patient's behalf, if one did.
    pub taken_by: Option<String>,
}

/// Where a payment stands, as a patient is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaymentStatusVm {
    #[default]
    Succeeded,
    /// A bank debit still on its way.
    Processing,
    /// A bank debit that did not go through.
    Failed,
}

impl PaymentStatusVm {
    /// From the database's word for it; anything unknown reads as succeeded (the ledger rules).
    pub fn from_db(s: &str) -> Self {
        match s {
            "processing" => PaymentStatusVm::Processing,
            "failed" => PaymentStatusVm::Failed,
            _ => PaymentStatusVm::Succeeded,
        }
    }
}

/// A refund on a receipt or a statement's payment: amount and date.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundLineVm {
    pub date: String,
    pub amount: String,
}

/// A card as receipts show it: brand and last four digits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardVm {
    pub brand: String,
    pub last4: String,
}

/// Informational pages: signed out, session expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    SignedOut,
    SessionExpired,
    /// A change refused while staff view as a patient.
    ViewAsReadOnly,
    /// A payment under act-on-behalf before the patient's consent was noted.
    ViewAsConsentNeeded,
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
    /// The checkout also takes a US bank account (ACH debit): its form is shown too.
    pub bank_debit: bool,
    /// Setup mode: the card is saved for later, nothing is charged, no amount is shown.
    pub setup: bool,
}

#[derive(Clone, Default)]
pub struct StaffLoginVm {
    pub csrf: String,
    pub email: String,
    pub failure: Option<String>,
    pub notice: Option<String>,
    /// Offer "Forgot your password?" (Cognito accounts reset by emailed code).
    pub can_reset: bool,
}

debug_redacted!(StaffLoginVm { csrf, failure, notice, can_reset; redacted: email });

/// Cognito staff password reset: ask for the email, then the emailed code and a new password.
#[derive(Clone, Default)]
pub struct StaffResetVm {
    pub csrf: String,
    /// Empty on the first step; the address the code went to on the second.
    pub email: String,
    pub failure: Option<String>,
}

debug_redacted!(StaffResetVm { csrf, failure; redacted: email });

#[derive(Clone, Debug, Default)]
pub struct StaffMfaVm {
    pub csrf: String,
    pub failure: Option<String>,
}

#[derive(Clone, Default)]
pub struct StaffEnrolVm {
    pub csrf: String,
    /// Server-rendered SVG of the otpauth QR code (our own markup, not user input).
    pub qr_svg: String,
    pub secret_base32: String,
    pub failure: Option<String>,
    pub field_error: Option<FieldError>,
}

debug_redacted!(StaffEnrolVm { csrf, failure, field_error; redacted: qr_svg, secret_base32 });

#[derive(Clone, Default)]
pub struct StaffRecoveryVm {
    pub codes: Vec<String>,
}

debug_redacted!(StaffRecoveryVm { ; redacted: codes });

#[derive(Clone, Default)]
pub struct StaffPatientRow {
    pub name: String,
    pub practice: String,
    /// Opaque patient id, for the invite form.
    pub patient_id: String,
    /// The viewer may invite a guarantor for this patient.
    pub can_invite: bool,
    /// The viewer may revoke this patient's guarantors.
    pub can_revoke: bool,
    pub guarantors: Vec<GuarantorVm>,
    /// The patient's own account (shown to those who may revoke it).
    pub patient_account: Option<GuarantorVm>,
    /// The viewer may refund this patient's payments: link to them.
    pub can_refund: bool,
}

debug_redacted!(StaffPatientRow { practice, patient_id, can_invite, can_revoke, guarantors, patient_account, can_refund; redacted: name });

/// A patient's payments as a practice admin sees them, each with its refund form.
#[derive(Clone, Default)]
pub struct StaffPaymentsVm {
    pub csrf: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practice: String,
    pub payments: Vec<StaffPaymentVm>,
    /// "Refund issued", after a refund went through.
    pub notice: Option<String>,
    /// The reasons staff pick from: (value, label).
    pub reasons: Vec<(String, String)>,
    /// The patient's payment plans, one line each (a suspended one says autopay stopped).
    pub plans: Vec<String>,
}

debug_redacted!(StaffPaymentsVm { csrf, patient_id, practice, payments, notice, reasons, plans; redacted: patient_name });

#[derive(Clone, Debug, Default)]
pub struct StaffPaymentVm {
    pub id: String,
    pub date: String,
    pub amount: String,
    /// "Card", "Bank account" (already worded).
    pub method: String,
    pub brand: String,
    pub last4: String,
    /// `processing`, `succeeded` or `failed`.
    pub status: String,
    pub refunds: Vec<StaffRefundVm>,
    pub disputed: bool,
    /// What is left to refund.
    pub left: String,
    /// The form is offered (succeeded, not disputed, something left).
    pub refundable: bool,
    /// The refund form as last posted (kept on a refusal) or its defaults.
    pub form: RefundFormVm,
}

#[derive(Clone, Debug, Default)]
pub struct StaffRefundVm {
    pub date: String,
    pub amount: String,
    /// Worded: "Refunded", "Pending", "Failed", "Requested".
    pub status: String,
    /// Worded reason.
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct RefundFormVm {
    pub amount: String,
    pub reason: String,
    /// Why the last refund of this payment was refused.
    pub error: Option<String>,
}

#[derive(Clone, Default)]
pub struct StaffHomeVm {
    pub csrf: String,
    pub email: String,
    /// "Support agent at Riverside Family Medicine".
    pub roles: Vec<String>,
    pub can_search: bool,
    /// `None` before a search; `Some(empty)` when nothing matched.
    pub results: Option<Vec<StaffPatientRow>>,
    pub search_error: Option<String>,
    pub notice: Option<String>,
    /// Active emergency grants, already worded.
    pub emergency: Vec<String>,
    /// The emergency-access form, for those who may grant it.
    pub break_glass: Option<BreakGlassVm>,
    /// Why the guarantor invitation just posted was not sent (its link is emailed, never shown).
    pub invite_error: Option<String>,
    /// Link to the audit viewer (security officers and auditors).
    pub audit_log: bool,
    /// A practice admin: links to the "act on behalf" setting and the statement import.
    pub act_on_behalf: bool,
    /// Link to a practice's undelivered messages and replies (support agents, practice admins).
    pub messages: bool,
    /// Link to the practice's settings for its texts (practice admins).
    pub messaging: bool,
    /// Link to the alert console (security officers).
    pub alerts: bool,
    /// The practice's last 30 days (payments, pay links), for the chart.
    pub activity: Option<Vec<crate::pictures::DayVm>>,
}

debug_redacted!(StaffHomeVm { csrf, roles, can_search, audit_log, act_on_behalf, messages, messaging, alerts, activity, results, search_error, notice, emergency, break_glass, invite_error; redacted: email });

#[derive(Clone, Debug, Default)]
pub struct BreakGlassVm {
    /// (tenant id, practice name)
    pub practices: Vec<(String, String)>,
    pub error: Option<String>,
}

// ---- Patient and guarantor accounts -------------------------------------------------------

/// Email + password form for a new patient or guarantor account.
#[derive(Clone, Default)]
pub struct AccountFormVm {
    pub csrf: String,
    /// Where the form posts: `Url::AccountCreate`, `Url::AccountResetPassword` or
    /// `Url::GuarantorAccept`.
    pub action: Url<'static>,
    /// What the visitor typed, shown again after an error (never the password).
    pub email: String,
    pub failure: Option<String>,
    /// Input ids: "email", "password", "password-confirm".
    pub field_error: Option<FieldError>,
}

debug_redacted!(AccountFormVm { csrf, action, failure, field_error; redacted: email });

#[derive(Clone, Default)]
pub struct SignInVm {
    pub csrf: String,
    pub email: String,
    pub failure: Option<String>,
    /// An outcome to confirm ("Your account is ready: sign in").
    pub notice: Option<String>,
}

debug_redacted!(SignInVm { csrf, failure, notice; redacted: email });

/// A forgotten password: where the code goes.
#[derive(Clone, Default)]
pub struct ForgotPasswordVm {
    pub csrf: String,
    pub email: String,
    pub failure: Option<String>,
}

debug_redacted!(ForgotPasswordVm { csrf, failure; redacted: email });

/// The emailed code and a new password for a member account.
#[derive(Clone, Default)]
pub struct ResetPasswordVm {
    pub csrf: String,
    /// Where the code went (as typed on the previous page).
    pub email: String,
    pub failure: Option<String>,
    /// Input ids: "code", "password", "password-confirm".
    pub field_error: Option<FieldError>,
}

debug_redacted!(ResetPasswordVm { csrf, failure, field_error; redacted: email });

/// The code Cognito emailed at sign-up.
#[derive(Clone, Default)]
pub struct ConfirmCodeVm {
    pub csrf: String,
    /// Where the code went.
    pub email: String,
    pub failure: Option<String>,
    /// "A new code is on its way".
    pub notice: Option<String>,
}

debug_redacted!(ConfirmCodeVm { csrf, failure, notice; redacted: email });

/// One open (or just-paid) statement on the account page, with its pay checkbox and amount.
#[derive(Clone, Default)]
pub struct OpenStatementVm {
    /// Opaque statement id: forms use `pay_<id>` (checkbox) and `amount_<id>` (amount).
    pub id: String,
    /// First name of the patient the statement is for: labels say whose it is.
    pub patient_name: String,
    pub practice_name: String,
    pub statement_date: String,
    pub due_date: String,
    pub balance: String,
    /// Pre-filled amount ("182.40"), or what was typed before an error.
    pub amount: String,
    /// Checked before an error if it was checked when submitted.
    pub checked: bool,
    pub paid_in_full: bool,
    pub error: Option<String>,
    /// Where the statement's charges went, for the picture beside it.
    pub split: Option<crate::pictures::SplitVm>,
}

debug_redacted!(OpenStatementVm { id, practice_name, statement_date, due_date, balance, amount, checked, paid_in_full, error, split; redacted: patient_name });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Relation {
    /// The account holder's own record.
    #[default]
    Own,
    /// A dependant the account holder is guarantor for.
    Dependant,
}

/// One person's statements on the account page.
#[derive(Clone, Default)]
pub struct HouseholdGroupVm {
    /// First name only.
    pub patient_name: String,
    pub relation: Relation,
    pub statements: Vec<OpenStatementVm>,
}

debug_redacted!(HouseholdGroupVm { relation, statements; redacted: patient_name });

#[derive(Clone, Default)]
pub struct GuarantorVm {
    /// Opaque grant id, for the revoke form (`grant`).
    pub grant_id: String,
    pub email: String,
    /// First name of the patient they may pay for.
    pub patient_name: String,
    pub since: String,
}

debug_redacted!(GuarantorVm { grant_id, since; redacted: email, patient_name });

#[derive(Clone, Default)]
pub struct InvitationVm {
    /// Opaque invitation id, for the revoke form (`invitation`).
    pub id: String,
    pub patient_name: String,
    pub expires: String,
}

debug_redacted!(InvitationVm { id, expires; redacted: patient_name });

#[derive(Clone, Default)]
pub struct AccountHomeVm {
    pub csrf: String,
    pub email: String,
    /// A confirmation or outcome ("Access revoked", "The payment was declined").
    pub notice: Option<String>,
    /// A pay-form error not tied to one statement ("Select at least one statement").
    pub pay_error: Option<String>,
    /// Own record first, then dependants.
    pub groups: Vec<HouseholdGroupVm>,
    /// Sum of the balances shown.
    pub total_due: String,
    /// Why the invitation just posted was not sent (its link is emailed, never shown).
    pub invite_error: Option<String>,
    /// (patient id, first name) the holder may invite a guarantor for.
    pub can_invite: Vec<(String, String)>,
    pub guarantors: Vec<GuarantorVm>,
    pub invitations: Vec<InvitationVm>,
    /// Payment-plan notices: the next charge of each plan once noticed, and instalments that
    /// need the member.
    pub plan_notices: Vec<String>,
}

debug_redacted!(AccountHomeVm { csrf, notice, pay_error, groups, total_due, guarantors, invitations, plan_notices, invite_error; redacted: email, can_invite });

#[derive(Clone, Default)]
pub struct AccountStatementVm {
    pub csrf: String,
    pub practice_name: String,
    pub patient_name: String,
    pub statement: OpenStatementVm,
    pub lines: Vec<StatementLineVm>,
    pub totals: AmountsVm,
    pub payments: Vec<PaymentVm>,
    /// Some descriptions are hidden: say why.
    pub some_hidden: bool,
}

debug_redacted!(AccountStatementVm { csrf, practice_name, statement, lines, totals, payments, some_hidden; redacted: patient_name });

#[derive(Clone, Default)]
pub struct ReceiptItemVm {
    pub patient_name: String,
    pub practice_name: String,
    pub statement_date: String,
    pub amount: String,
    pub new_balance: String,
}

debug_redacted!(ReceiptItemVm { practice_name, statement_date, amount, new_balance; redacted: patient_name });

#[derive(Clone, Debug, Default)]
pub struct AccountReceiptVm {
    pub amount: String,
    pub date: String,
    /// The card, shown only to whoever paid with it (or the patient it paid for).
    pub card: Option<CardVm>,
    pub reference: String,
    pub items: Vec<ReceiptItemVm>,
    pub status: PaymentStatusVm,
    pub refunds: Vec<RefundLineVm>,
    /// The staff member who took the payment on the patient's behalf, if one did.
    pub taken_by: Option<String>,
}

#[cfg(test)]
mod tests;
