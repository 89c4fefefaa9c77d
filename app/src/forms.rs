//! The bodies the portal's forms post, shared by the markup (field names) and the server's
//! handlers (deserialising): a renamed field fails to compile on both sides.
//!
//! Each struct comes from `forms!`, which also gives it one `&str` constant per field holding
//! the field's name (`DobForm::DOB_MONTH == "dob_month"`). No struct derives `Debug`: they carry
//! passwords, dates of birth and names.

/// The field every form carries its CSRF token in; the server's CSRF layer checks it before any
/// form below is read, so none of them has it.
pub const CSRF_FIELD: &str = "csrf";

/// True when `upper` is `lower` in capitals: ties each constant's name to its field's, so
/// renaming a field renames its constant and every use of the old one stops compiling.
const fn same_name(upper: &str, lower: &str) -> bool {
    let (u, l) = (upper.as_bytes(), lower.as_bytes());
    if u.len() != l.len() {
        return false;
    }
    let mut i = 0;
    while i < u.len() {
        if u[i] != l[i].to_ascii_uppercase() || l[i] != l[i].to_ascii_lowercase() {
            return false;
        }
        i += 1;
    }
    true
}

/// `pub struct Name { field / FIELD, … }`: a form of `String` fields, each defaulting to empty
/// (a missing field is an empty answer, which the handler refuses as it would a blank one), and
/// `Name::FIELD == "field"`.
macro_rules! forms {
    ($(
        $(#[$doc:meta])*
        pub struct $name:ident {
            $( $(#[$fdoc:meta])* $field:ident / $NAME:ident ),* $(,)?
        }
    )*) => { $(
        $(#[$doc])*
        #[derive(Clone, Default, serde::Deserialize)]
        pub struct $name {
            $( $(#[$fdoc])* #[serde(default)] pub $field: String, )*
        }

        impl $name {
            $(
                #[doc = concat!("The name of the `", stringify!($field), "` field.")]
                pub const $NAME: &'static str = stringify!($field);
            )*
        }

        $(
            const _: () = assert!(
                same_name(stringify!($NAME), stringify!($field)),
                concat!("the constant of `", stringify!($field), "` must be its name in capitals")
            );
        )*
    )* };
}

forms! {
    /// A refund of one payment (`Url::StaffRefund`), from a patient's payments page.
    pub struct RefundForm {
        patient / PATIENT,
        payment / PAYMENT,
        /// Dollars as typed.
        amount / AMOUNT,
        /// A `RefundReason` string.
        reason / REASON,
    }

    /// A form with nothing but its CSRF token (sign-out buttons).
    pub struct Empty {}

    /// A link opened while signed in (`switch_session` page): `keep` is `KEEP` to continue as
    /// the signed-in account (invitations only), anything else signs out here and opens it.
    pub struct OpenLinkForm {
        keep / KEEP,
    }

    /// Date of birth on a pay link (`Url::Verify`).
    pub struct DobForm {
        dob_month / DOB_MONTH,
        dob_day / DOB_DAY,
        dob_year / DOB_YEAR,
    }

    /// ZIP code on a pay link (`Url::VerifyZip`).
    pub struct ZipForm {
        zip / ZIP,
    }

    /// A payment from a pay link (`Url::Pay`).
    pub struct PayForm {
        amount / AMOUNT,
        /// The page to come back to after an error: "summary" or "statement".
        from / FROM,
    }

    /// The processor's return (`Url::PayReturn`, `Url::AccountPayReturn`): a query, not a body.
    pub struct ReturnQuery {
        session_id / SESSION_ID,
        /// How many times the payer has asked the confirming page to check again (absent on
        /// the processor's redirect); past a cap the page says to come back later.
        checks / CHECKS,
    }

    /// Email and password, as both sign-in pages (members and staff) post them.
    pub struct SignInForm {
        email / EMAIL,
        password / PASSWORD,
    }

    /// A new password typed twice (staff: the provider's new-password challenge).
    pub struct NewPasswordForm {
        password / PASSWORD,
        password_confirm / PASSWORD_CONFIRM,
    }

    /// A new member account (`Url::AccountCreate`, `Url::GuarantorAccept`).
    pub struct NewAccountForm {
        email / EMAIL,
        password / PASSWORD,
        password_confirm / PASSWORD_CONFIRM,
        /// On the invitation page: `MODE_CREATE` or `MODE_EXISTING`.
        mode / MODE,
    }

    /// A member who forgot their password asks for a code (`Url::AccountForgot`).
    pub struct ForgotPasswordForm {
        email / EMAIL,
    }

    /// The emailed code and the new password (`Url::AccountResetPassword`); the password fields
    /// are named as on `NewAccountForm`.
    pub struct ResetPasswordForm {
        code / CODE,
        password / PASSWORD,
        password_confirm / PASSWORD_CONFIRM,
    }

    /// "This wasn't me" (`Url::AccountNotMe`): the link's token, carried by the page's form.
    pub struct NotMeForm {
        token / TOKEN,
    }

    /// The code Cognito emailed at sign-up (`Url::AccountConfirm`; its resend posts nothing else).
    pub struct ConfirmForm {
        code / CODE,
    }

    /// A guarantor invitation for one patient (members' and staff's invite forms).
    pub struct InviteForm {
        /// Opaque patient id.
        patient / PATIENT,
        /// The invitee's email address: the link is emailed, never shown.
        email / EMAIL,
    }

    /// Revoking a guarantor's grant (members' and staff's revoke forms).
    pub struct RevokeGrantForm {
        grant / GRANT,
    }

    /// Removing a saved card (`Url::AccountCardRemove`).
    /// One of the member's plans (`Url::AccountPlanCancel`).
    pub struct PlanForm {
        plan / PLAN,
    }

    /// A plan's new autopay cap, in dollars as typed (`Url::AccountPlanCap`).
    pub struct PlanCapForm {
        plan / PLAN,
        cap / CAP,
    }

    /// An instalment to pay on the processor's page (`Url::AccountPlanPay`).
    pub struct PlanPayForm {
        plan / PLAN,
        seq / SEQ,
    }

    pub struct RemoveCardForm {
        /// The processor's opaque payment-method id.
        card / CARD,
    }

    /// Cancelling a pending invitation (`Url::AccountInvitationRevoke`).
    pub struct RevokeInvitationForm {
        invitation / INVITATION,
    }

    /// The invitee answers the dependant's questions (`Url::GuarantorVerify`).
    pub struct InviteVerifyForm {
        dob_month / DOB_MONTH,
        dob_day / DOB_DAY,
        dob_year / DOB_YEAR,
        zip / ZIP,
    }

    /// Staff second factor: a TOTP or recovery code (`Url::StaffMfa`).
    pub struct CodeForm {
        code / CODE,
    }

    /// Staff forgotten password, step 1 (`Url::StaffForgot`).
    pub struct ForgotForm {
        email / EMAIL,
    }

    /// Staff forgotten password, step 2: the emailed code and a new password (`Url::StaffReset`).
    pub struct ResetForm {
        code / CODE,
        password / PASSWORD,
        password_confirm / PASSWORD_CONFIRM,
    }

    /// Staff enrolment: a password and the first TOTP code (`Url::StaffEnrol`).
    pub struct EnrolForm {
        password / PASSWORD,
        password_confirm / PASSWORD_CONFIRM,
        code / CODE,
    }

    /// Staff patient search (`Url::StaffSearch`): by account number, phone number, or last name
    /// and birth date.
    pub struct SearchForm {
        last_name / LAST_NAME,
        dob / DOB,
        account / ACCOUNT,
        /// A US number as typed (`(555) 010-2000`, `+1 555 010 2000`…).
        phone / PHONE,
    }

    /// Support console (`Url::StaffLinkResend`): a fresh pay link for one statement.
    pub struct LinkResendForm {
        /// Statement id.
        statement / STATEMENT,
    }

    /// Support console (`Url::StaffLinkRevoke`): one pay link to revoke.
    pub struct LinkRevokeForm {
        /// Pay-link id.
        link / LINK,
    }

    /// Support console (`Url::StaffLinkUnlock`): a locked pay link and why it may be unlocked.
    pub struct LinkUnlockForm {
        /// Pay-link id.
        link / LINK,
        /// How the caller's identity was confirmed on the phone (may name the patient: PHI).
        reason / REASON,
    }

    /// Emergency access (`Url::StaffBreakGlass`).
    pub struct BreakGlassForm {
        /// Practice (tenant) id.
        practice / PRACTICE,
        role / ROLE,
        minutes / MINUTES,
        reason / REASON,
    }

    /// Start viewing as a patient (`Url::StaffViewAs`).
    pub struct ViewAsForm {
        /// Patient id.
        patient / PATIENT,
        /// Why (free text, may name the patient: stored encrypted).
        reason / REASON,
        /// The support ticket's reference.
        ticket / TICKET,
    }

    /// Make an API key (`Url::StaffApiKeys`).
    pub struct ApiKeyCreateForm {
        practice / PRACTICE,
        /// What uses the key.
        label / LABEL,
    }

    /// Revoke an API key (`Url::StaffApiKeyRevoke`).
    pub struct ApiKeyRevokeForm {
        practice / PRACTICE,
        key / KEY,
    }

    /// A pasted pay link to check (`Url::CheckLink`).
    pub struct CheckLinkForm {
        link / LINK,
    }

    /// Which practice's messages (`Url::StaffMessages`'s query); empty: the first the caller may
    /// see.
    pub struct MessagesQuery {
        practice / PRACTICE,
    }

    /// Which practice's alerts (`Url::StaffAlerts`'s query); empty: the first the caller may
    /// see.
    pub struct AlertsQuery {
        practice / PRACTICE,
    }

    /// Acknowledge an alert (`Url::StaffAlertAck`).
    pub struct AlertAckForm {
        /// Practice (tenant) id whose console it is.
        practice / PRACTICE,
        /// The alert's number.
        alert / ALERT,
    }

    /// A note on an alert (`Url::StaffAlertNote`).
    pub struct AlertNoteForm {
        practice / PRACTICE,
        alert / ALERT,
        note / NOTE,
    }

    /// Mark a patient's reply read (`Url::StaffMessageRead`).
    pub struct MessageReadForm {
        /// Practice (tenant) id.
        practice / PRACTICE,
        /// The reply's id.
        reply / REPLY,
    }

    /// A patient's billing texts on or off (`Url::TextChoice`).
    pub struct TextChoiceForm {
        /// "on" or "off".
        choice / CHOICE,
    }

    /// Which practice's text settings (`Url::StaffMessaging`'s query); empty: the first the
    /// caller manages.
    pub struct MessagingQuery {
        practice / PRACTICE,
    }

    /// A practice's reminder cadence (`Url::StaffMessagingCadence`).
    pub struct CadenceForm {
        practice / PRACTICE,
        /// Days after the first text, comma-separated ("7, 14").
        days / DAYS,
        /// "on" when the due date is a step too (a checkbox: absent when off).
        on_due / ON_DUE,
    }

    /// The check-page footer on or off (`Url::StaffMessagingFooter`).
    pub struct FooterForm {
        practice / PRACTICE,
        /// "on" or "off".
        enabled / ENABLED,
    }

    /// A practice's wording of one text (`Url::StaffMessagingText`): saved, or back to the
    /// built-in wording.
    pub struct TextWordingForm {
        practice / PRACTICE,
        /// "pay-link" or "reminder".
        template / TEMPLATE,
        /// "en" or "es".
        language / LANGUAGE,
        body / BODY,
        /// "save" or "reset".
        action / ACTION,
    }

    /// Pause or resume a statement's reminders (`Url::StaffReminders`).
    pub struct RemindersForm {
        statement / STATEMENT,
        /// "pause" or "resume".
        action / ACTION,
    }

    /// Turn "act on behalf" on or off (`Url::StaffActOnBehalf`).
    pub struct ActOnBehalfForm {
        /// Practice (tenant) id.
        practice / PRACTICE,
        /// "on" or "off".
        enabled / ENABLED,
    }

    /// The statement upload (multipart: these fields and the file, `ImportUploadForm::FILE`)
    /// and its confirmation (urlencoded).
    pub struct ImportUploadForm {
        /// Practice (tenant) id.
        practice / PRACTICE,
        /// The file input (its name gives the format: `.csv` or `.json`).
        file / FILE,
        /// "on" when the good statements should be taken even if some are refused.
        partial / PARTIAL,
    }
}

impl NewAccountForm {
    /// `mode` of the invitation page's new-account form.
    pub const MODE_CREATE: &'static str = "create";
    /// `mode` of the invitation page's one-button form for a member signed in already.
    pub const MODE_EXISTING: &'static str = "existing";
}

/// The household pay form (`Url::AccountPay`) has fields per statement, so it is read as pairs:
/// `pay_<statement>` (a checkbox, `CHECKED`) and `amount_<statement>`, plus `from`.
pub mod household_pay {
    /// The statement page the form was posted from, if any (else the account page).
    pub const FROM: &str = "from";
    /// The value of a ticked `pay_<statement>` checkbox.
    pub const CHECKED: &str = "1";

    const PAY: &str = "pay_";
    const AMOUNT: &str = "amount_";

    /// `pay_<statement>`: the statement is chosen.
    pub fn pay_field(statement: &str) -> String {
        format!("{PAY}{statement}")
    }

    /// `amount_<statement>`: how much to pay on it.
    pub fn amount_field(statement: &str) -> String {
        format!("{AMOUNT}{statement}")
    }

    /// The statement a `pay_<statement>` field names.
    pub fn chosen_statement(field: &str) -> Option<&str> {
        field.strip_prefix(PAY)
    }
}

/// The plan set-up form (`Url::AccountPlanCreate`) has a checkbox per statement, so it is read
/// as pairs: `plan_<statement>` (`household_pay::CHECKED`) and the fields below.
pub mod plan_form {
    pub const COUNT: &str = "count";
    pub const EVERY: &str = "every";
    pub const CARD: &str = "card";
    /// The most autopay may charge at once, in dollars as typed.
    pub const CAP: &str = "cap";
    /// The member agrees to the charges shown (`household_pay::CHECKED`).
    pub const CONSENT: &str = "consent";

    const STATEMENT: &str = "plan_";

    /// `plan_<statement>`: the statement is in the plan.
    pub fn statement_field(statement: &str) -> String {
        format!("{STATEMENT}{statement}")
    }

    /// The statement a `plan_<statement>` field names.
    pub fn chosen_statement(field: &str) -> Option<&str> {
        field.strip_prefix(STATEMENT)
    }
}

impl OpenLinkForm {
    /// The value of `keep` on the "continue as this account" button.
    pub const KEEP_VALUE: &'static str = "1";

    pub fn keeps_session(&self) -> bool {
        self.keep == Self::KEEP_VALUE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_hold_the_field_names() {
        assert_eq!(DobForm::DOB_MONTH, "dob_month");
        assert_eq!(NewAccountForm::PASSWORD_CONFIRM, "password_confirm");
        assert_eq!(ReturnQuery::SESSION_ID, "session_id");
        assert!(same_name("LAST_NAME", "last_name"));
        assert!(!same_name("LAST_NAME", "lastname"));
        assert!(!same_name("LAST", "last_name"));
        assert!(!same_name("last", "last"));
    }

    #[test]
    fn forms_read_their_fields_and_default_the_rest() {
        let f: DobForm =
            serde_urlencoded_like("dob_month=3&dob_year=1980&csrf=t").unwrap_or_default();
        assert_eq!(
            (
                f.dob_month.as_str(),
                f.dob_day.as_str(),
                f.dob_year.as_str()
            ),
            ("3", "", "1980")
        );
    }

    /// A minimal `application/x-www-form-urlencoded` reader over serde's value deserializer
    /// (this crate has no form parser; the server uses serde_urlencoded).
    fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(
        body: &str,
    ) -> Result<T, serde::de::value::Error> {
        use serde::de::value::MapDeserializer;
        let pairs = body.split('&').filter_map(|kv| kv.split_once('='));
        T::deserialize(MapDeserializer::new(pairs))
    }

    #[test]
    fn household_pay_names_round_trip() {
        use household_pay::*;
        assert_eq!(pay_field("st_1"), "pay_st_1");
        assert_eq!(amount_field("st_1"), "amount_st_1");
        assert_eq!(chosen_statement(&pay_field("st_1")), Some("st_1"));
        assert_eq!(chosen_statement("amount_st_1"), None);
    }
}
