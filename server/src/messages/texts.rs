//! The built-in message texts, in English and Spanish by the patient's language: templates that
//! pass the template check (brand first, the link on the portal's own domain, no PHI
//! placeholder), rendered at queue time.

use super::keywords::Inbound;
use super::template;
use crate::intake::Language;
use crate::phi::Phi;

/// A new statement's pay-link text.
pub const PAY_LINK: &str = "pay-link";

fn pay_link_template(lang: Language) -> &'static str {
    match lang {
        Language::En => "{practice}: Your statement is ready. View and pay securely at {link}{opt_out}",
        Language::Es => {
            "{practice}: Su estado de cuenta está listo. Véalo y pague de forma segura en {link}{opt_out}"
        }
    }
}

/// A reminder of a balance still owed.
pub const REMINDER: &str = "reminder";

fn reminder_template(lang: Language) -> &'static str {
    match lang {
        Language::En => "{practice}: A reminder that your statement has a balance. View and pay securely at {link}{opt_out}",
        Language::Es => {
            "{practice}: Le recordamos que su estado de cuenta tiene un saldo. Véalo y pague de forma segura en {link}{opt_out}"
        }
    }
}

/// Said on the first text to a number (and never again): how to stop and get help.
fn first_contact(lang: Language) -> &'static str {
    match lang {
        Language::En => " Reply STOP to opt out, HELP for help. Msg & data rates may apply.",
        Language::Es => {
            " Responda STOP para no recibir más mensajes, AYUDA para obtener ayuda. Pueden aplicarse tarifas de mensajes y datos."
        }
    }
}

/// The built-in wording of billing text `template` (`PAY_LINK` or `REMINDER`).
pub fn builtin(template: &str, lang: Language) -> &'static str {
    match template {
        REMINDER => reminder_template(lang),
        _ => pay_link_template(lang),
    }
}

/// "Reply HELP for help." for `{help}`.
fn help_line(lang: Language) -> &'static str {
    match lang {
        Language::En => " Reply HELP for help.",
        Language::Es => " Responda AYUDA para obtener ayuda.",
    }
}

/// The footer a practice may add to every text: where to check a text is really from it.
fn check_footer(lang: Language, check_url: &str) -> String {
    match lang {
        Language::En => format!(" Not sure this is from us? Check at {check_url}"),
        Language::Es => {
            format!(" ¿No está seguro de que somos nosotros? Compruébelo en {check_url}")
        }
    }
}

/// How a billing text is made: its wording (built-in or the practice's, which passed the
/// template check when saved), the practice's name, the link, whether it is the first text to
/// the number, and the "is this text really from my practice?" page.
pub struct BillingText<'a> {
    pub wording: &'a str,
    pub lang: Language,
    pub practice: &'a str,
    pub link: &'a str,
    pub first: bool,
    pub check_url: &'a str,
    /// The practice adds the check page to every text.
    pub footer: bool,
}

impl BillingText<'_> {
    /// The text. The first text to a number always says how to opt out and get help (added at
    /// the end when the wording has no `{opt_out}`), and the footer is added when the practice
    /// turned it on and the wording has no `{verify_url}`.
    pub fn render(&self) -> Phi<String> {
        let opt_out = if self.first {
            first_contact(self.lang)
        } else {
            ""
        };
        let values = [
            ("practice", self.practice),
            ("link", self.link),
            ("opt_out", opt_out),
            ("help", help_line(self.lang)),
            ("verify_url", self.check_url),
        ];
        // A wording that fails here was not checked (a bug): the text is then built without
        // the template machinery rather than not sent.
        let mut text = template::render(self.wording, &values)
            .unwrap_or_else(|_| format!("{}: {}", self.practice, self.link));
        if self.first && !self.wording.contains("{opt_out}") {
            text.push_str(opt_out);
        }
        if self.footer && !self.wording.contains("{verify_url}") {
            text.push_str(&check_footer(self.lang, self.check_url));
        }
        while text.contains("  ") {
            text = text.replace("  ", " ");
        }
        Phi::new(text.trim().to_owned())
    }
}

/// The built-in pay-link text for a statement of `practice` (no footer).
pub fn pay_link(lang: Language, practice: &str, link: &str, first: bool) -> Phi<String> {
    BillingText {
        wording: pay_link_template(lang),
        lang,
        practice,
        link,
        first,
        check_url: "",
        footer: false,
    }
    .render()
}

/// An account's password-reset code (email).
pub const RESET_CODE: &str = "reset-code";
/// The notice to an account's owner that its password changed (email).
pub const PASSWORD_CHANGED: &str = "password-changed";

/// The reset-code email: (subject, body). Says what to do if it was not asked for.
pub fn reset_code_email(code: &str, minutes: i64) -> (Phi<String>, Phi<String>) {
    (
        Phi::new("Your PatriotPay password reset code".to_owned()),
        Phi::new(format!(
            "Your code to set a new PatriotPay password is {code}. It works once, for {minutes} \
             minutes.\n\nIf you did not ask for it, you need do nothing: your password has not \
             changed. Never give this code to anyone, including anyone who says they are from \
             your doctor's office or from PatriotPay."
        )),
    )
}

/// A member's sign-up confirmation code (email).
pub const CONFIRM_CODE: &str = "confirm-code";

/// The sign-up code email: (subject, body).
pub fn confirm_code_email(code: &str, hours: i64) -> (Phi<String>, Phi<String>) {
    (
        Phi::new("Your PatriotPay sign-up code".to_owned()),
        Phi::new(format!(
            "Your code to finish creating your PatriotPay account is {code}. It works once, for \
             {hours} hours.\n\nIf you did not ask for an account, you need do nothing: \
             without the code none is made. Never give this code to anyone."
        )),
    )
}

/// The email to an address that already has an account when someone signs up with it.
pub const ACCOUNT_EXISTS: &str = "account-exists";

/// The "you already have an account" email: (subject, body), with where to sign in or reset.
pub fn account_exists_email(public_url: &str) -> (Phi<String>, Phi<String>) {
    let base = public_url.trim_end_matches('/');
    (
        Phi::new("You already have a PatriotPay account".to_owned()),
        Phi::new(format!(
            "Someone just asked to create a PatriotPay account with this email address, which \
             already has one, so no new account was made.\n\nIf it was you, sign in at \
             {base}/signin, or set a new password at {base}/account/forgot.\n\nIf it was not \
             you, you need do nothing: your account has not changed."
        )),
    )
}

/// A staff member's one-time set-up link (email): a new account, or one reset by the operator.
pub const STAFF_SETUP: &str = "staff-setup";

/// The set-up link email: (subject, body).
pub fn staff_setup_email(link: &str, hours: i64, reset: bool) -> (Phi<String>, Phi<String>) {
    let (subject, why) = if reset {
        (
            "Set a new PatriotPay password and authenticator",
            "Your PatriotPay staff account was reset by an administrator: set a new password \
             and authenticator before you sign in again.",
        )
    } else {
        (
            "Set up your PatriotPay staff account",
            "A PatriotPay staff account was made for you: set its password and authenticator \
             to start.",
        )
    };
    (
        Phi::new(subject.to_owned()),
        Phi::new(format!(
            "{why}\n\nOpen this link (it works once, for {hours} hours):\n{link}\n\nIf you \
             were not expecting this, do not open the link: tell your practice's administrator \
             or PatriotPay support."
        )),
    )
}

/// A member's password reset by the incident plan (email).
pub const RESET_REQUIRED: &str = "password-reset-required";

/// The forced-reset notice: (subject, body), with where to set a new password.
pub fn reset_required_email(public_url: &str) -> (Phi<String>, Phi<String>) {
    let base = public_url.trim_end_matches('/');
    (
        Phi::new("Set a new PatriotPay password".to_owned()),
        Phi::new(format!(
            "To keep your account safe, PatriotPay has signed it out everywhere and asks you to \
             set a new password before you sign in again.\n\nSet it at {base}/account/forgot: \
             enter this email address and we will send you a code.\n\nPaying a bill from a \
             text message link works as before."
        )),
    )
}

/// An alert to the security team's address (email).
pub const SECURITY_ALERT: &str = "security-alert";

/// The alert email: (subject, body). An alert's detail names ids and practices, never patients.
pub fn security_alert_email(kind: &str, detail: &str) -> (Phi<String>, Phi<String>) {
    (
        Phi::new(format!("PatriotPay security alert: {kind}")),
        Phi::new(format!(
            "{detail}\n\nSee the alerts and the audit log (`patriotpay incident trace`) for what \
             happened around it."
        )),
    )
}

/// The "this wasn't me" paragraph every owner notice ends with.
pub fn not_me(link: &str) -> String {
    format!(
        "Was this not you? Open this link to sign your account out everywhere and alert your \
         practice: {link}"
    )
}

/// The notice that an account now looks after someone else's bills.
pub const GRANT_ADDED: &str = "grant-added";

/// The grant-added notice: (subject, body). Names the practice, never the patient.
pub fn grant_added_email(practice: &str) -> (Phi<String>, Phi<String>) {
    (
        Phi::new("Your PatriotPay account can now pay another person's bills".to_owned()),
        Phi::new(format!(
            "Your PatriotPay account was just given access to see and pay another person's bills \
             at {practice}, through an invitation.\n\nIf this was you, there is nothing to do. If \
             it was not, call {practice} now: they will remove the access and help you secure \
             the account."
        )),
    )
}

/// The password-changed notice: (subject, body).
pub fn password_changed_email() -> (Phi<String>, Phi<String>) {
    (
        Phi::new("Your PatriotPay password was changed".to_owned()),
        Phi::new(
            "The password of your PatriotPay account was just changed, and every place it was \
             signed in was signed out.\n\nIf this was you, there is nothing to do. If it was \
             not, call your doctor's office now: they will lock the account and help you get it \
             back."
                .to_owned(),
        ),
    )
}

/// The notice that a sign-in factor (a staff authenticator app) was set on an account.
pub const FACTOR_ADDED: &str = "factor-added";

/// The new-factor notice: (subject, body).
pub fn factor_added_email() -> (Phi<String>, Phi<String>) {
    (
        Phi::new("A new authenticator was set on your PatriotPay account".to_owned()),
        Phi::new(
            "A password and an authenticator app were just set on your PatriotPay staff \
             account with its one-time set-up link, and new recovery codes were made.\n\nIf \
             this was you, there is nothing to do. If it was not, someone else holds your \
             account: tell your practice's administrator or PatriotPay support now."
                .to_owned(),
        ),
    )
}

/// A guarantor invitation (email): the link to accept it.
pub const GUARANTOR_INVITATION: &str = "guarantor-invitation";

/// The guarantor-invitation email: (subject, body). Names the practice, what accepting allows,
/// the link and how long it works; nothing about the patient (the link's identity questions
/// say who, to someone who knows the answers).
pub fn guarantor_invitation_email(
    practice: &str,
    link: &str,
    days: i64,
) -> (Phi<String>, Phi<String>) {
    (
        Phi::new(format!("{practice}: you are invited to help pay bills")),
        Phi::new(format!(
            "{practice} uses PatriotPay for its patients' bills. You are invited to help pay \
             bills for someone there.\n\nTo accept, open this link:\n{link}\n\nIt works once, \
             for {days} days. You will be asked the patient's date of birth and ZIP code.\n\nIf \
             you were not expecting this, you can ignore this email."
        )),
    )
}

/// The one confirmation a keyword reply gets (none for other replies: staff read those).
pub fn reply(kind: Inbound, lang: Language, practice: &str, phone: &str) -> Option<String> {
    let text = match (kind, lang) {
        (Inbound::OptOut, Language::En) => format!(
            "{practice}: You are opted out and will get no more texts from us. Reply START to opt back in."
        ),
        (Inbound::OptOut, Language::Es) => format!(
            "{practice}: Ya no recibirá más mensajes de texto nuestros. Responda START para volver a recibirlos."
        ),
        (Inbound::OptIn, Language::En) => format!(
            "{practice}: You will get texts about your statements again. Reply STOP to opt out, HELP for help."
        ),
        (Inbound::OptIn, Language::Es) => format!(
            "{practice}: Volverá a recibir mensajes sobre sus estados de cuenta. Responda STOP para no recibirlos, AYUDA para obtener ayuda."
        ),
        (Inbound::Help, Language::En) => format!(
            "{practice}: Texts about your statements and payments. For help call {phone}. Reply STOP to opt out."
        ),
        (Inbound::Help, Language::Es) => format!(
            "{practice}: Mensajes sobre sus estados de cuenta y pagos. Para ayuda llame al {phone}. Responda STOP para no recibirlos."
        ),
        (Inbound::Other, _) => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_passes_the_check() {
        for lang in [Language::En, Language::Es] {
            for t in [pay_link_template(lang), reminder_template(lang)] {
                let checked = template::check(t, 60);
                assert!(checked.is_ok(), "{lang:?}: {checked:?}");
            }
        }
    }

    #[test]
    fn the_first_text_says_how_to_stop_and_later_ones_do_not() {
        let link = "https://pay.example.org/p/abc";
        let first = pay_link(Language::En, "Riverside Family Medicine", link, true);
        assert!(first
            .expose()
            .starts_with("Riverside Family Medicine: Your statement is ready."));
        assert!(first.expose().contains(link));
        assert!(first
            .expose()
            .contains("Reply STOP to opt out, HELP for help."));
        let later = pay_link(Language::En, "Riverside Family Medicine", link, false);
        assert!(!later.expose().contains("STOP"));
        assert!(later.expose().ends_with(link));
        let es = pay_link(Language::Es, "Riverside Family Medicine", link, true);
        assert!(es.expose().contains("Su estado de cuenta") && es.expose().contains("STOP"));
    }

    #[test]
    fn the_invitation_email_carries_the_link_and_its_expiry_only() {
        let link = "https://pay.example.org/g/abc";
        let (subject, body) = guarantor_invitation_email("Riverside Family Medicine", link, 14);
        assert!(subject.expose().starts_with("Riverside Family Medicine:"));
        let body = body.expose();
        assert!(body.contains(&format!("\n{link}\n")), "{body}");
        assert!(body.contains("14 days") && body.contains("help pay bills for someone"));
        assert!(body.is_ascii(), "plain ASCII text: {body}");
    }

    #[test]
    fn keyword_replies_name_the_practice_and_other_replies_get_none() {
        for lang in [Language::En, Language::Es] {
            for kind in [Inbound::OptOut, Inbound::OptIn, Inbound::Help] {
                let r = reply(kind, lang, "Riverside", "+13125550100").expect("a reply");
                assert!(r.starts_with("Riverside: "), "{r}");
                // One segment or two, never a wall of text.
                assert!(template::segments(&r).1 <= 2, "{r}");
            }
            assert_eq!(reply(Inbound::Other, lang, "Riverside", "+1"), None);
        }
        assert!(reply(Inbound::Help, Language::En, "R", "+13125550100")
            .is_some_and(|r| r.contains("+13125550100")));
    }
}
