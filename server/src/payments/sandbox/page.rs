//! The sandbox's hosted payment page on its own origin: the card form (Stripe's public test
//! numbers only) and, where the checkout offers it, the US bank account form (Stripe's test
//! routing and account numbers only). Numbers are checked here and dropped: only a brand (or
//! bank) and the last four digits go further. A setup-mode checkout takes a card only, charges
//! nothing, and keeps its brand, last four, expiry and how its test number says later charges
//! go on the customer.

use super::cards::{Behaviour, CardToSave};
use super::{Attempt, Outcome, Recorded, Sandbox, TEST_BANK};
use crate::payments::{CheckoutStatus, DeclineReason, MethodKind};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use patriotpay_app::vm::{FieldError, PageMeta, SandboxCheckoutVm};
use patriotpay_app::Tr;
use std::sync::Arc;
use zeroize::Zeroizing;

/// What a test card does: paid with on the page, and, saved in setup mode, when it is charged
/// later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TestCard {
    brand: &'static str,
    /// A payment on the page is declined for this reason; `None`: it succeeds.
    declines: Option<DeclineReason>,
    /// Saved in setup mode, later charges go this way; `None`: it cannot be saved.
    saved: Option<Behaviour>,
}

const fn pays(brand: &'static str) -> TestCard {
    TestCard {
        brand,
        declines: None,
        saved: Some(Behaviour::Succeeds),
    }
}

/// Stripe's published test numbers. Any other number, however valid, is refused.
fn test_card(number: &str) -> Option<TestCard> {
    let declined = |reason, saved| TestCard {
        brand: "Visa",
        declines: Some(reason),
        saved,
    };
    Some(match number {
        "4242424242424242" | "4000056655665556" => pays("Visa"),
        "5555555555554444" | "2223003122003222" | "5200828282828210" => pays("Mastercard"),
        "378282246310005" | "371449635398431" => pays("American Express"),
        "6011111111111117" => pays("Discover"),
        "4000000000000002" | "4000000000009987" | "4000000000009979" => {
            declined(DeclineReason::Generic, None)
        }
        // Saved fine; every later charge is declined (on the page, too).
        "4000000000000341" => declined(
            DeclineReason::Generic,
            Some(Behaviour::Declines(DeclineReason::Generic)),
        ),
        "4000000000009995" => declined(
            DeclineReason::InsufficientFunds,
            Some(Behaviour::Declines(DeclineReason::InsufficientFunds)),
        ),
        // Its bank wants the payer to authenticate every time (Stripe's 4000 0027 6000 3184):
        // on the page they are there to (the sandbox takes that as done); a later charge
        // without them waits for it.
        "4000002760003184" => TestCard {
            saved: Some(Behaviour::AuthenticationRequired),
            ..pays("Visa")
        },
        _ => return None,
    })
}

/// Stripe's test routing number, the only one the sandbox takes.
const TEST_ROUTING: &str = "110000000";

/// Stripe's test account numbers: whether a debit from it fails when it settles. Any other
/// account is refused.
fn test_account(number: &str) -> Option<bool> {
    match number {
        "000123456789" => Some(false),
        "000111111116" => Some(true),
        _ => None,
    }
}

pub fn luhn_valid(digits: &str) -> bool {
    if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `MM/YY`, `MM / YY`, `MMYY` → (month, full year), if in the future.
fn parse_expiry(exp: &str, now: time::OffsetDateTime) -> Option<(u8, i32)> {
    let digits: String = exp.chars().filter(|c| c.is_ascii_digit()).collect();
    let (m, y) = match digits.len() {
        4 => (&digits[..2], &digits[2..]),
        6 => (&digits[..2], &digits[4..]),
        _ => return None,
    };
    let month: u8 = m.parse().ok()?;
    let year: i32 = 2000 + y.parse::<i32>().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let current = (now.year(), u8::from(now.month()));
    ((year, month) >= current).then_some((month, year))
}

/// The page's two forms in one body: `method` says which was sent (a card when absent).
#[derive(serde::Deserialize)]
pub struct PayForm {
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    card_number: Zeroizing<String>,
    #[serde(default)]
    exp: String,
    #[serde(default)]
    cvc: Zeroizing<String>,
    #[serde(default)]
    routing_number: Zeroizing<String>,
    #[serde(default)]
    account_number: Zeroizing<String>,
}

/// The sandbox's own web server: the hosted payment page.
pub fn router(sandbox: Arc<Sandbox>, portal_origin: String) -> Router {
    let csp = format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {portal_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    Router::new()
        .route("/checkout/{id}", get(card_page).post(pay))
        .route("/assets/style.css", get(crate::http::assets::style))
        .with_state(sandbox)
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                let csp = csp.clone();
                async move {
                    let mut res = next.run(req).await;
                    let h = res.headers_mut();
                    if let Ok(v) = HeaderValue::from_str(&csp) {
                        h.insert(header::CONTENT_SECURITY_POLICY, v);
                    }
                    h.insert(
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    );
                    h.insert(
                        header::REFERRER_POLICY,
                        HeaderValue::from_static("same-origin"),
                    );
                    h.entry(header::CACHE_CONTROL)
                        .or_insert(HeaderValue::from_static("no-store"));
                    res
                }
            },
        ))
}

fn render(sandbox: &Sandbox, s: &super::SessionRow, error: Option<FieldError>) -> Response {
    let vm = SandboxCheckoutVm {
        merchant: s
            .merchant
            .clone()
            .unwrap_or_else(|| sandbox.merchant_name.clone()),
        amount: s.amount().to_string(),
        csrf: s.csrf.clone(),
        cancel_url: s.cancel_url.clone(),
        error,
        open: s.status() == CheckoutStatus::Open,
        bank_debit: s.bank_debit(),
        setup: s.is_setup(),
    };
    let status = if vm.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = patriotpay_app::pages::sandbox_checkout(
        PageMeta::default(),
        vm,
        format!("/checkout/{}", s.id),
    );
    (status, Html(html)).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Tr::default().t("sandbox-not-found")).into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Tr::default().t("sandbox-unavailable"),
    )
        .into_response()
}

async fn card_page(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    match sb.session(&id).await {
        Ok(Some(s)) => render(&sb, &s, None),
        Ok(None) => not_found(),
        Err(_) => unavailable(),
    }
}

/// Digits only, the spaces and dashes people type dropped.
fn digits(input: &str) -> Zeroizing<String> {
    Zeroizing::new(input.chars().filter(|c| !matches!(c, ' ' | '-')).collect())
}

/// Checks a card; the attempt, or the field to correct and why.
fn check_card(form: &PayForm) -> Result<(MethodKind, String, String, Outcome), FieldError> {
    let (last4, card) = check_card_fields(form)?;
    let outcome = card.declines.map_or(Outcome::Paid, Outcome::Declined);
    Ok((MethodKind::Card, card.brand.to_owned(), last4, outcome))
}

/// Checks a card's number, expiry and security code; its last four digits and what it does.
fn check_card_fields(form: &PayForm) -> Result<(String, TestCard), FieldError> {
    let tr = Tr::default();
    let field = |field: &'static str, key: &str| FieldError {
        field,
        message: tr.t(key),
    };
    let number = digits(&form.card_number);
    if !luhn_valid(&number) {
        return Err(field("card-number", "sandbox-err-number"));
    }
    let Some(card) = test_card(&number) else {
        return Err(field("card-number", "sandbox-err-test-card"));
    };
    if parse_expiry(&form.exp, time::OffsetDateTime::now_utc()).is_none() {
        return Err(field("exp", "sandbox-err-exp"));
    }
    let cvc_len = if number.starts_with("37") || number.starts_with("34") {
        4
    } else {
        3
    };
    if form.cvc.len() != cvc_len || !form.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field("cvc", "sandbox-err-cvc"));
    }
    Ok((number[number.len() - 4..].to_owned(), card))
}

fn refused_exp() -> FieldError {
    FieldError {
        field: "exp",
        message: Tr::default().t("sandbox-err-exp"),
    }
}

fn bank_not_offered() -> FieldError {
    FieldError {
        field: "card-number",
        message: Tr::default().t("sandbox-err-bank-not-offered"),
    }
}

/// Checks a US bank account, when the checkout offers bank debits.
fn check_bank(
    form: &PayForm,
    offered: bool,
) -> Result<(MethodKind, String, String, Outcome), FieldError> {
    let tr = Tr::default();
    let field = |field: &'static str, key: &str| FieldError {
        field,
        message: tr.t(key),
    };
    if !offered {
        return Err(bank_not_offered());
    }
    let routing = digits(&form.routing_number);
    if routing.len() != 9 || !routing.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field("routing-number", "sandbox-err-routing"));
    }
    if routing.as_str() != TEST_ROUTING {
        return Err(field("routing-number", "sandbox-err-test-routing"));
    }
    let account = digits(&form.account_number);
    if !(4..=17).contains(&account.len()) || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field("account-number", "sandbox-err-account"));
    }
    let Some(fails) = test_account(&account) else {
        return Err(field("account-number", "sandbox-err-test-account"));
    };
    let last4 = account[account.len() - 4..].to_owned();
    Ok((
        MethodKind::UsBankAccount,
        TEST_BANK.to_owned(),
        last4,
        Outcome::Debit { fails },
    ))
}

async fn pay(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    let session = match sb.session(&id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(_) => return unavailable(),
    };
    if session.status() != CheckoutStatus::Open {
        return render(&sb, &session, None);
    }
    use subtle::ConstantTimeEq;
    if !bool::from(form.csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            Tr::default().t("sandbox-form-expired"),
        )
            .into_response();
    }
    if session.is_setup() {
        return save_card(&sb, &session, form).await;
    }
    let checked = if form.method == MethodKind::UsBankAccount.as_str() {
        check_bank(&form, session.bank_debit())
    } else {
        check_card(&form)
    };
    drop(form);
    let (method, brand, last4, outcome) = match checked {
        Ok(a) => a,
        Err(e) => return render(&sb, &session, Some(e)),
    };
    let attempt = Attempt {
        method,
        brand,
        last4,
        outcome,
        now: crate::clock::now_unix(),
    };
    let (redirect, events) = match sb.record_attempt(&id, attempt).await {
        Ok(Recorded::Completed(url, events)) => (url, events),
        Ok(Recorded::Declined(url)) => (url, vec![]),
        Ok(Recorded::NotOpen(s)) => return render(&sb, &s, None),
        Ok(Recorded::NotFound) => return not_found(),
        Err(_) => return unavailable(),
    };
    // Delivered before the redirect so the receipt is usually ready on arrival; the portal
    // copes when it is not, and the outbox keeps what did not go.
    sb.deliver_now(&events).await;
    Redirect::to(&redirect).into_response()
}

/// The setup page's submit: the same test-card rules as a payment, but a card saves as its
/// test number says (some save fine and are declined, or need authentication, when charged
/// later); one that cannot be saved is refused on the page and nothing is saved.
async fn save_card(sb: &Sandbox, session: &super::SessionRow, form: PayForm) -> Response {
    let checked = if form.method == MethodKind::UsBankAccount.as_str() {
        Err(bank_not_offered())
    } else {
        check_card_fields(&form)
    };
    let expiry = parse_expiry(&form.exp, time::OffsetDateTime::now_utc());
    drop(form);
    let refused = |key: &str| FieldError {
        field: "card-number",
        message: Tr::default().t(key),
    };
    let card = match (checked, expiry) {
        (Err(e), _) => return render(sb, session, Some(e)),
        (
            Ok((
                _,
                TestCard {
                    saved: None,
                    declines,
                    ..
                },
            )),
            _,
        ) => {
            let key = match declines {
                Some(DeclineReason::InsufficientFunds) => "sandbox-err-insufficient",
                _ => "sandbox-err-declined",
            };
            return render(sb, session, Some(refused(key)));
        }
        (
            Ok((
                last4,
                TestCard {
                    brand,
                    saved: Some(behaviour),
                    ..
                },
            )),
            Some((exp_month, exp_year)),
        ) => CardToSave {
            brand: brand.to_owned(),
            last4,
            exp_month,
            exp_year,
            behaviour,
            now: crate::clock::now_unix(),
        },
        // check_card_fields read the expiry already; a month turning over in between lands here.
        (Ok(_), None) => return render(sb, session, Some(refused_exp())),
    };
    let (redirect, events) = match sb.record_setup(&session.id, card).await {
        Ok(Recorded::Completed(url, events)) => (url, events),
        Ok(Recorded::NotOpen(s)) => return render(sb, &s, None),
        Ok(Recorded::Declined(_) | Recorded::NotFound) => return not_found(),
        Err(_) => return unavailable(),
    };
    sb.deliver_now(&events).await;
    Redirect::to(&redirect).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("424242"));
    }

    #[test]
    fn only_test_cards() {
        assert_eq!(test_card("4242424242424242"), Some(pays("Visa")));
        let insufficient = test_card("4000000000009995").expect("test card");
        assert_eq!(
            insufficient.declines,
            Some(DeclineReason::InsufficientFunds)
        );
        assert_eq!(
            test_card("4000000000000002").expect("test card").saved,
            None
        );
        assert_eq!(test_card("4111111111111111"), None);
    }

    /// Stripe's cards for saved-card testing: each saves, and is charged later as its number says.
    #[test]
    fn saved_test_cards_remember_how_they_charge() {
        let saved = |n: &str| test_card(n).and_then(|c| c.saved);
        assert_eq!(saved("4242424242424242"), Some(Behaviour::Succeeds));
        assert_eq!(
            saved("4000002760003184"),
            Some(Behaviour::AuthenticationRequired)
        );
        assert_eq!(
            saved("4000000000000341"),
            Some(Behaviour::Declines(DeclineReason::Generic))
        );
        assert_eq!(
            saved("4000000000009995"),
            Some(Behaviour::Declines(DeclineReason::InsufficientFunds))
        );
        for b in [
            Behaviour::Succeeds,
            Behaviour::AuthenticationRequired,
            Behaviour::Declines(DeclineReason::Generic),
            Behaviour::Declines(DeclineReason::InsufficientFunds),
        ] {
            assert_eq!(Behaviour::parse(b.as_str()), Some(b));
        }
    }

    #[test]
    fn expiry() {
        let now = time::macros::datetime!(2026-11-25 0:00 UTC);
        assert_eq!(parse_expiry("12/34", now), Some((12, 2034)));
        assert_eq!(parse_expiry("11 / 26", now), Some((11, 2026)));
        assert_eq!(parse_expiry("10/26", now), None);
        assert_eq!(parse_expiry("13/30", now), None);
        assert_eq!(parse_expiry("1230", now), Some((12, 2030)));
    }

    fn bank(routing: &str, account: &str) -> PayForm {
        PayForm {
            csrf: String::new(),
            method: "us_bank_account".into(),
            card_number: Zeroizing::default(),
            exp: String::new(),
            cvc: Zeroizing::default(),
            routing_number: Zeroizing::new(routing.into()),
            account_number: Zeroizing::new(account.into()),
        }
    }

    #[test]
    fn only_test_bank_accounts() {
        let ok = check_bank(&bank("110000000", "000123456789"), true).expect("test account");
        assert_eq!(ok.0, MethodKind::UsBankAccount);
        assert_eq!((ok.1.as_str(), ok.2.as_str()), (TEST_BANK, "6789"));
        assert_eq!(ok.3, Outcome::Debit { fails: false });
        let fails = check_bank(&bank("110 000 000", "000111111116"), true).expect("failing");
        assert_eq!(fails.3, Outcome::Debit { fails: true });
        let field = |f: PayForm, offered| check_bank(&f, offered).err().map(|e| e.field);
        assert_eq!(
            field(bank("021000021", "000123456789"), true),
            Some("routing-number")
        );
        assert_eq!(
            field(bank("11000000", "000123456789"), true),
            Some("routing-number")
        );
        assert_eq!(
            field(bank("110000000", "123456789"), true),
            Some("account-number")
        );
        assert_eq!(
            field(bank("110000000", "12ab"), true),
            Some("account-number")
        );
        assert!(
            field(bank("110000000", "000123456789"), false).is_some(),
            "not offered on this checkout"
        );
    }
}
