//! Every path of the portal, named once: the server registers routes by `Url::template`, and
//! handlers and markup link with `Url::path`, so a renamed or removed route fails to compile.

use std::fmt;

/// A placeholder parameter, for a variant that names a route rather than one page (registering
/// routes, `Url::ALL`). Its `path` is no page.
pub const ANY: &str = "";

/// The prefix of every webhook path (their errors are answered plainly, not as pages).
pub const WEBHOOK_PREFIX: &str = "/webhooks/";

/// The prefix of every API path (their errors are answered as JSON, not as pages).
pub const API_PREFIX: &str = "/api/";

/// The `&'a str` parameter of a variant (a separate macro, so the table below names each
/// parameter as its template does).
macro_rules! param {
    ($name:ident) => { &'a str };
}

/// `Some(parameter)` for a variant with one, `None` for the others.
macro_rules! param_value {
    () => {
        None
    };
    ($name:ident) => {
        Some($name)
    };
}

/// Declares `Url` from one table: variant, parameter name, route template. `ALL` lists every
/// variant by construction.
macro_rules! urls {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($param:ident))? => $template:literal,
    )*) => {
        /// A page, form or machine endpoint of the portal. Variants with a path parameter carry it.
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub enum Url<'a> {
            $( $(#[$doc])* $variant $((param!($param)))?, )*
        }

        impl<'a> Url<'a> {
            /// Every route, parameters left as `ANY`.
            pub const ALL: &'static [Url<'static>] = &[
                $( Url::$variant $(({ let $param = ANY; $param }))?, )*
            ];

            /// The axum route template, e.g. "/receipt/{payment}".
            pub fn template(&self) -> &'static str {
                match self {
                    $( Url::$variant { .. } => $template, )*
                }
            }

            /// The path parameter, for the variants that have one.
            fn param(&self) -> Option<&'a str> {
                match *self {
                    $( Url::$variant $(($param))? => param_value!($($param)?), )*
                }
            }
        }
    };
}

urls! {
    // ---- Pay links: the link, the identity check, the statement, paying, the receipt.
    /// The front page.
    Home => "/",
    /// What the portal does for accessibility and how it is tested.
    Accessibility => "/accessibility",
    /// A pay link from a text message; the token is swapped for a session at once.
    PayLink(token) => "/p/{token}",
    /// Date of birth.
    Verify => "/verify",
    /// ZIP code, for the itemised statement.
    VerifyZip => "/verify/zip",
    Summary => "/summary",
    Statement => "/statement",
    /// The itemised statement as a PDF download.
    StatementPdf => "/statement/pdf",
    /// The payment form's post.
    Pay => "/pay",
    /// Where the processor sends the payer back ("{Pay}/return/{checkout}": payments builds it).
    PayReturn(checkout) => "/pay/return/{checkout}",
    PayCancelled(checkout) => "/pay/cancelled/{checkout}",
    Receipt(payment) => "/receipt/{payment}",
    /// A receipt as a PDF download.
    ReceiptPdf(payment) => "/receipt/{payment}/pdf",
    /// "Who viewed my record", for a visitor who gave both answers.
    RecordViews => "/record-views",
    SignOut => "/signout",
    SignedOut => "/signed-out",
    Expired => "/expired",
    /// "Is this text really from my practice?": a pasted link checked, nothing else told.
    CheckLink => "/check-link",
    /// A pay-link visitor turns billing texts to the patient's number on or off.
    TextChoice => "/texts",

    // ---- Member accounts.
    AccountCreate => "/account/create",
    /// The code emailed at sign-up (the portal's, or Cognito's).
    AccountConfirm => "/account/confirm",
    AccountConfirmResend => "/account/confirm/resend",
    /// A forgotten password: the email a code goes to, then the code with the new password.
    AccountForgot => "/account/forgot",
    AccountResetPassword => "/account/reset-password",
    /// "This wasn't me" from an owner notice: the page that asks, and the form that acts.
    AccountNotMeLink(token) => "/account/not-me/{token}",
    AccountNotMe => "/account/not-me",
    SignIn => "/signin",
    /// The account page (household).
    Account => "/account",
    AccountStatement(statement) => "/account/statements/{statement}",
    /// A statement seen from an account, as a PDF download.
    AccountStatementPdf(statement) => "/account/statements/{statement}/pdf",
    AccountReceipt(payment) => "/account/receipt/{payment}",
    /// A household receipt as a PDF download.
    AccountReceiptPdf(payment) => "/account/receipt/{payment}/pdf",
    AccountPay => "/account/pay",
    AccountPayReturn(checkout) => "/account/pay/return/{checkout}",
    AccountPayCancelled(checkout) => "/account/pay/cancelled/{checkout}",
    AccountGuarantorInvite => "/account/guarantors/invite",
    AccountGuarantorRevoke => "/account/guarantors/revoke",
    AccountInvitationRevoke => "/account/invitations/revoke",
    /// The member's saved cards.
    AccountCards => "/account/cards",
    /// Starts saving a card on the processor's page (setup mode).
    AccountCardSave => "/account/cards/save",
    AccountCardRemove => "/account/cards/remove",
    /// Where the processor's setup page sends the member back.
    AccountCardsReturn(setup) => "/account/cards/return/{setup}",
    /// The member's payment plans, and the form to set one up.
    AccountPlans => "/account/plans",
    AccountPlanCreate => "/account/plans/new",
    AccountPlanCancel => "/account/plans/cancel",
    AccountPlanCap => "/account/plans/cap",
    /// Pays on the processor's page an instalment autopay could not take.
    AccountPlanPay => "/account/plans/pay",
    /// "Who viewed my record", for the member's own records.
    AccountRecordViews => "/account/record-views",

    // ---- Guarantor invitations.
    /// An invitation link; the token is swapped for a session at once.
    Invitation(token) => "/g/{token}",
    GuarantorVerify => "/guarantor/verify",
    GuarantorAccept => "/guarantor/accept",

    // ---- Staff.
    Staff => "/staff",
    StaffLogin => "/staff/login",
    StaffMfa => "/staff/mfa",
    StaffNewPassword => "/staff/new-password",
    StaffForgot => "/staff/forgot",
    StaffReset => "/staff/reset",
    StaffSignOut => "/staff/signout",
    StaffSignOutEverywhere => "/staff/signout-everywhere",
    /// A one-time set-up link; the token is swapped for a session at once.
    StaffEnrolLink(token) => "/staff/enrol/{token}",
    StaffEnrol => "/staff/enrol",
    StaffSearch => "/staff/search",
    StaffGuarantorInvite => "/staff/guarantors/invite",
    StaffGuarantorRevoke => "/staff/guarantors/revoke",
    StaffBreakGlass => "/staff/break-glass",
    /// The support console: a patient's statements, payments and pay links.
    StaffPatient(patient) => "/staff/patients/{patient}",
    /// A patient's payments, with refunds for those who may issue them.
    StaffPatientPayments(patient) => "/staff/patients/{patient}/payments",
    /// Support console forms: a fresh pay link for a statement, revoking one, unlocking one.
    StaffLinkResend => "/staff/links/resend",
    StaffLinkRevoke => "/staff/links/revoke",
    StaffLinkUnlock => "/staff/links/unlock",
    StaffRefund => "/staff/refunds",
    /// The audit log for security officers and auditors (filters and cursor in the query).
    StaffAudit => "/staff/audit",
    /// Starts viewing as a patient (role, reason and ticket); stops; notes verbal consent.
    StaffViewAs => "/staff/view-as",
    StaffViewAsStop => "/staff/view-as/stop",
    StaffViewAsConsent => "/staff/view-as/consent",
    /// A practice admin turns "act on behalf" on or off for their practice.
    StaffActOnBehalf => "/staff/act-on-behalf",
    /// Statement import for practice admins: the page and the upload (a dry run); confirming the
    /// kept file; the last run's rejections as CSV.
    StaffImport => "/staff/import",
    StaffImportConfirm => "/staff/import/confirm",
    StaffImportReport => "/staff/import/report",
    /// A practice admin's API keys for statement import: the list and making one; revoking.
    StaffApiKeys => "/staff/api-keys",
    StaffApiKeyRevoke => "/staff/api-keys/revoke",
    /// A practice's undeliverable messages and patients' replies (`?practice=`); marking one read.
    StaffMessages => "/staff/messages",
    StaffMessageRead => "/staff/messages/read",
    /// A practice admin's settings for the practice's texts (`?practice=`): reminder cadence,
    /// the check-page footer, the practice's wording of each text.
    StaffMessaging => "/staff/messaging",
    StaffMessagingCadence => "/staff/messaging/reminders",
    StaffMessagingFooter => "/staff/messaging/footer",
    StaffMessagingText => "/staff/messaging/texts",
    /// Support console: pause or resume a statement's reminders.
    StaffReminders => "/staff/reminders",
    /// The security officer's alert console (`?practice=`): acknowledging an alert, a note on it.
    StaffAlerts => "/staff/alerts",
    StaffAlertAck => "/staff/alerts/acknowledge",
    StaffAlertNote => "/staff/alerts/note",

    // ---- Machine endpoints.
    StripeWebhook => "/webhooks/stripe",
    /// Twilio: delivery statuses of our texts, and replies to them.
    TwilioStatus => "/webhooks/twilio/status",
    TwilioInbound => "/webhooks/twilio/inbound",
    Healthz => "/healthz",
    Readyz => "/readyz",
    Stylesheet => "/assets/style.css",
    Favicon => "/favicon.svg",
    Robots => "/robots.txt",
    /// The statement import API (a practice's billing system, by API key).
    ApiStatements => "/api/v1/statements",
    /// The API's OpenAPI document.
    ApiOpenApi => "/api/v1/openapi.json",
    /// Prometheus metrics (its own listener; on the portal only with a bearer token).
    Metrics => "/metrics",

    // ---- Development.
    /// The outbox viewer: the texts and email that would have gone out. Served only by
    /// `serve --demo`, and only to callers on this machine.
    DevOutbox => "/dev/outbox",
}

impl Url<'_> {
    /// The concrete path: the template with its parameter percent-encoded, so a '/', '?' or '#'
    /// in it stays inside its segment. A parameter that is empty, "." or ".." is written empty
    /// (browsers resolve dot segments even percent-encoded): the path then matches no route
    /// instead of another page.
    pub fn path(&self) -> String {
        let template = self.template();
        let Some(param) = self.param() else {
            return template.to_owned();
        };
        let (Some(open), Some(close)) = (template.find('{'), template.find('}')) else {
            return template.to_owned();
        };
        let mut out = String::with_capacity(template.len() + param.len());
        out.push_str(&template[..open]);
        if !matches!(param, "" | "." | "..") {
            encode_into(&mut out, param);
        }
        out.push_str(&template[close + 1..]);
        out
    }

    /// The path with one query parameter, both parts percent-encoded.
    pub fn with_query(&self, key: &str, value: &str) -> String {
        self.with_queries(&[(key, value)])
    }

    /// The path with query parameters in the order given, every part percent-encoded.
    pub fn with_queries(&self, pairs: &[(&str, &str)]) -> String {
        let mut out = self.path();
        for (i, (key, value)) in pairs.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode_into(&mut out, key);
            out.push('=');
            encode_into(&mut out, value);
        }
        out
    }
}

/// Appends `s` with every byte outside RFC 3986's unreserved set percent-encoded. Opaque ids and
/// tokens (letters, digits, '-', '_') come through unchanged.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The front page: what a view model built with `Default` points at until it is told otherwise.
impl Default for Url<'_> {
    fn default() -> Self {
        Url::Home
    }
}

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// The route only: a parameter may be a pay-link or invitation token, which is a credential.
impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Url").field(&self.template()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The public paths, pinned: links in text messages, bookmarks and the processor's return
    /// URLs depend on them, so changing one is a decision, not a refactor.
    const PUBLISHED: &[&str] = &[
        "/",
        "/accessibility",
        "/p/{token}",
        "/verify",
        "/verify/zip",
        "/summary",
        "/statement",
        "/statement/pdf",
        "/pay",
        "/pay/return/{checkout}",
        "/pay/cancelled/{checkout}",
        "/receipt/{payment}",
        "/receipt/{payment}/pdf",
        "/record-views",
        "/signout",
        "/signed-out",
        "/expired",
        "/check-link",
        "/texts",
        "/account/create",
        "/account/confirm",
        "/account/confirm/resend",
        "/account/forgot",
        "/account/reset-password",
        "/account/not-me/{token}",
        "/account/not-me",
        "/signin",
        "/account",
        "/account/statements/{statement}",
        "/account/statements/{statement}/pdf",
        "/account/receipt/{payment}",
        "/account/receipt/{payment}/pdf",
        "/account/pay",
        "/account/pay/return/{checkout}",
        "/account/pay/cancelled/{checkout}",
        "/account/guarantors/invite",
        "/account/guarantors/revoke",
        "/account/invitations/revoke",
        "/account/cards",
        "/account/cards/save",
        "/account/cards/remove",
        "/account/cards/return/{setup}",
        "/account/plans",
        "/account/plans/new",
        "/account/plans/cancel",
        "/account/plans/cap",
        "/account/plans/pay",
        "/account/record-views",
        "/g/{token}",
        "/guarantor/verify",
        "/guarantor/accept",
        "/staff",
        "/staff/login",
        "/staff/mfa",
        "/staff/new-password",
        "/staff/forgot",
        "/staff/reset",
        "/staff/signout",
        "/staff/signout-everywhere",
        "/staff/enrol/{token}",
        "/staff/enrol",
        "/staff/search",
        "/staff/guarantors/invite",
        "/staff/guarantors/revoke",
        "/staff/break-glass",
        "/staff/patients/{patient}",
        "/staff/patients/{patient}/payments",
        "/staff/links/resend",
        "/staff/links/revoke",
        "/staff/links/unlock",
        "/staff/refunds",
        "/staff/audit",
        "/staff/view-as",
        "/staff/view-as/stop",
        "/staff/view-as/consent",
        "/staff/act-on-behalf",
        "/staff/import",
        "/staff/import/confirm",
        "/staff/import/report",
        "/staff/api-keys",
        "/staff/api-keys/revoke",
        "/staff/messages",
        "/staff/messages/read",
        "/staff/messaging",
        "/staff/messaging/reminders",
        "/staff/messaging/footer",
        "/staff/messaging/texts",
        "/staff/reminders",
        "/staff/alerts",
        "/staff/alerts/acknowledge",
        "/staff/alerts/note",
        "/webhooks/stripe",
        "/webhooks/twilio/status",
        "/webhooks/twilio/inbound",
        "/healthz",
        "/readyz",
        "/assets/style.css",
        "/favicon.svg",
        "/robots.txt",
        "/api/v1/statements",
        "/api/v1/openapi.json",
        "/metrics",
        "/dev/outbox",
    ];

    /// The variant with its parameter (if any) set to `p`.
    fn with_param<'a>(u: Url<'_>, p: &'a str) -> Url<'a> {
        match u {
            Url::PayLink(_) => Url::PayLink(p),
            Url::PayReturn(_) => Url::PayReturn(p),
            Url::PayCancelled(_) => Url::PayCancelled(p),
            Url::Receipt(_) => Url::Receipt(p),
            Url::ReceiptPdf(_) => Url::ReceiptPdf(p),
            Url::AccountStatement(_) => Url::AccountStatement(p),
            Url::AccountStatementPdf(_) => Url::AccountStatementPdf(p),
            Url::AccountReceipt(_) => Url::AccountReceipt(p),
            Url::AccountReceiptPdf(_) => Url::AccountReceiptPdf(p),
            Url::AccountPayReturn(_) => Url::AccountPayReturn(p),
            Url::AccountPayCancelled(_) => Url::AccountPayCancelled(p),
            Url::AccountCardsReturn(_) => Url::AccountCardsReturn(p),
            Url::Invitation(_) => Url::Invitation(p),
            Url::AccountNotMeLink(_) => Url::AccountNotMeLink(p),
            Url::StaffEnrolLink(_) => Url::StaffEnrolLink(p),
            Url::StaffPatient(_) => Url::StaffPatient(p),
            Url::StaffPatientPayments(_) => Url::StaffPatientPayments(p),
            other => Url::ALL
                .iter()
                .copied()
                .find(|u| *u == other)
                .unwrap_or(Url::Home),
        }
    }

    #[test]
    fn templates_are_the_published_paths_each_once() {
        let templates: Vec<&str> = Url::ALL.iter().map(Url::template).collect();
        assert_eq!(templates, PUBLISHED);
        let unique: BTreeSet<&str> = templates.iter().copied().collect();
        assert_eq!(unique.len(), templates.len(), "a template is used twice");
    }

    #[test]
    fn all_lists_every_variant_once() {
        let kinds: Vec<_> = Url::ALL.iter().map(std::mem::discriminant).collect();
        for (i, k) in kinds.iter().enumerate() {
            assert!(!kinds[..i].contains(k), "{:?} is listed twice", Url::ALL[i]);
        }
        // `ALL` comes from the same table as the enum; this pins its size against `with_param`
        // and `PUBLISHED`, which are written out by hand.
        assert_eq!(Url::ALL.len(), PUBLISHED.len());
    }

    #[test]
    fn every_path_is_its_template_with_the_parameter_in_place() {
        for u in Url::ALL {
            let t = u.template();
            let concrete = with_param(*u, "X");
            let expected = match (t.find('{'), t.find('}')) {
                (Some(a), Some(b)) => format!("{}X{}", &t[..a], &t[b + 1..]),
                _ => t.to_owned(),
            };
            assert_eq!(concrete.path(), expected, "{u:?}");
            assert_eq!(concrete.to_string(), expected);
            // Exactly the variants with a `{…}` carry a parameter.
            assert_eq!(concrete.param().is_some(), t.contains('{'), "{u:?}");
            assert_eq!(t.matches('{').count(), t.matches('}').count());
            assert!(t.matches('{').count() <= 1, "{u:?}");
        }
    }

    #[test]
    fn a_parameter_cannot_leave_its_segment() {
        assert_eq!(
            Url::Receipt("a/b?c#d e%").path(),
            "/receipt/a%2Fb%3Fc%23d%20e%25"
        );
        assert_eq!(Url::PayLink("../../staff").path(), "/p/..%2F..%2Fstaff");
        assert_eq!(Url::AccountStatement("..").path(), "/account/statements/");
        assert_eq!(Url::AccountStatement(".").path(), "/account/statements/");
        // Our ids and tokens are left as they are.
        assert_eq!(
            Url::Invitation("aZ09-_xY").path(),
            "/g/aZ09-_xY",
            "URL-safe tokens are not encoded"
        );
        assert_eq!(
            Url::StaffLogin.with_query("reset", "1"),
            "/staff/login?reset=1"
        );
        assert_eq!(
            Url::PayReturn("co_1").with_query("session_id", "cs_1&x=/"),
            "/pay/return/co_1?session_id=cs_1%26x%3D%2F"
        );
        assert_eq!(
            Url::PayReturn("co_1").with_queries(&[("session_id", "cs_1&"), ("checks", "3")]),
            "/pay/return/co_1?session_id=cs_1%26&checks=3"
        );
    }

    #[test]
    fn return_urls_are_the_pay_route_plus_return_or_cancelled() {
        // payments::start_checkout builds them from `Url::Pay`/`Url::AccountPay` as a prefix.
        for (prefix, back, cancelled) in [
            (Url::Pay, Url::PayReturn("X"), Url::PayCancelled("X")),
            (
                Url::AccountPay,
                Url::AccountPayReturn("X"),
                Url::AccountPayCancelled("X"),
            ),
        ] {
            assert_eq!(back.path(), format!("{prefix}/return/X"));
            assert_eq!(cancelled.path(), format!("{prefix}/cancelled/X"));
        }
    }

    #[test]
    fn debug_never_shows_a_token() {
        let shown = format!("{:?}", Url::PayLink("secret-token"));
        assert_eq!(shown, "Url(\"/p/{token}\")");
    }

    #[test]
    fn webhooks_share_the_prefix() {
        assert!(Url::StripeWebhook.template().starts_with(WEBHOOK_PREFIX));
    }

    #[test]
    fn api_paths_share_the_prefix() {
        for u in [Url::ApiStatements, Url::ApiOpenApi] {
            assert!(u.template().starts_with(API_PREFIX), "{u:?}");
        }
    }
}
