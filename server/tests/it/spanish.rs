//! Spanish (issue 16), on both databases: a patient who prefers Spanish gets every page of her
//! journey in Spanish from her link (`<html lang="es">`, dates the Spanish way); the switch on
//! every page changes the language mid-journey and the session keeps it; a visitor's own choice
//! wins over the next link's; signing out keeps it for the page that says so; a patient who
//! prefers English gets English.

use crate::common::{answers, location, text, Backend, Browser, TestApp};
use patriotpay_app::{Lang, Tr};
use reqwest::StatusCode;

both_backends!(
    a_patient_who_prefers_spanish_reads_and_pays_in_spanish,
    the_switch_is_kept_and_wins_over_a_link,
    the_switch_keeps_the_query_and_never_leads_to_a_form_address,
);

const ES: Tr = Tr { lang: Lang::Es };
const EN: Tr = Tr { lang: Lang::En };

/// The page's language, from `<html lang>`.
fn lang_of(html: &str) -> &str {
    let start = html.find("<html lang=\"").map(|i| i + 12).unwrap_or(0);
    let end = html[start..].find('"').map_or(start, |e| start + e);
    &html[start..end]
}

/// Demo patient `n` through both identity checks, in whatever language the session has.
async fn verified(app: &TestApp, b: &Browser, n: usize) {
    b.open_link(&app.link(n).await).await;
    let (m, d, y, zip) = answers(n);
    assert_eq!(location(&b.submit_dob(&m, &d, &y).await), "/summary");
    assert_eq!(location(&b.submit_zip(&zip).await), "/statement");
}

async fn a_patient_who_prefers_spanish_reads_and_pays_in_spanish(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.open_link(&app.link(6).await).await;
    let verify = b.page("/verify").await;
    assert_eq!(lang_of(&verify), "es");
    assert!(text(&verify).contains(&ES.t("verify-title")), "{verify}");
    // The switch offers English, named in English.
    assert!(verify.contains(r#"hreflang="en""#), "{verify}");
    assert!(verify.contains(">English</a>"), "{verify}");

    let (m, d, y, zip) = answers(6);
    assert_eq!(location(&b.submit_dob(&m, &d, &y).await), "/summary");
    let summary = text(&b.page("/summary").await);
    assert!(summary.contains(&ES.t("summary-title")), "{summary}");
    // The demo statement is due on 2026-12-01: written the Spanish way.
    assert!(summary.contains("1 dic 2026"), "{summary}");
    assert!(!summary.contains("Dec 1, 2026"), "{summary}");

    assert_eq!(location(&b.submit_zip(&zip).await), "/statement");
    let statement = text(&b.page("/statement").await);
    assert_eq!(lang_of(&statement), "es");
    for key in [
        "statement-col-insurance",
        "statement-col-insurance-hint",
        "statement-col-responsibility",
    ] {
        assert!(statement.contains(&ES.t(key)), "{key}: {statement}");
    }
    // Money reads the same in US Spanish: $1,234.56.
    assert!(statement.contains("$220.00"), "{statement}");

    // Pays through the sandbox; the receipt is in Spanish too.
    let checkout = location(&b.pay("5.00").await);
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let receipt_path = location(&b.get(back.trim_start_matches(&app.url)).await);
    let receipt = b.page(&receipt_path).await;
    assert_eq!(lang_of(&receipt), "es");
    assert!(text(&receipt).contains(&ES.t("receipt-title")), "{receipt}");
    app.finish().await;
}

async fn the_switch_is_kept_and_wins_over_a_link(backend: Backend) {
    let app = TestApp::start(backend).await;

    // Mid-journey: the Spanish patient switches to English on the statement.
    let b = Browser::new(&app);
    verified(&app, &b, 6).await;
    let r = b.get("/statement?lang=en").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        "/statement",
        "the same page, without the parameter"
    );
    let statement = b.page("/statement").await;
    assert_eq!(lang_of(&statement), "en");
    assert!(text(&statement).contains(&EN.t("statement-col-insurance")));
    assert!(
        statement.contains(r#"hreflang="es""#),
        "the switch offers Spanish"
    );
    // Kept in the session for the next page.
    assert_eq!(lang_of(&b.page("/summary").await), "en");

    // A visitor who chose Spanish keeps it when she opens an English-speaking patient's link.
    let c = Browser::new(&app);
    assert_eq!(location(&c.get("/?lang=es").await), "/");
    assert_eq!(lang_of(&c.page("/").await), "es");
    verified(&app, &c, 1).await;
    assert_eq!(lang_of(&c.page("/statement").await), "es");

    // Signing out ends the session; the page that says so is still in her language.
    let csrf = c.csrf("/summary").await;
    let out = c.post("/signout", &[("csrf", csrf.as_str())]).await;
    let to = location(&out);
    assert_eq!(to, "/signed-out?lang=es");
    assert_eq!(location(&c.get(&to).await), "/signed-out");
    let signed_out = c.page("/signed-out").await;
    assert_eq!(lang_of(&signed_out), "es");

    // An English-speaking patient's link, in a fresh browser: English.
    let d = Browser::new(&app);
    verified(&app, &d, 1).await;
    assert_eq!(lang_of(&d.page("/statement").await), "en");

    // A language the portal does not speak is ignored: the page is served as it was.
    assert_eq!(d.get("/statement?lang=fr").await.status(), StatusCode::OK);
    assert_eq!(lang_of(&d.page("/statement").await), "en");
    app.finish().await;
}

/// The switch's link, from the page's header.
fn switch_href(html: &str) -> String {
    let at = html.find("lang-switch").expect("the switch");
    let start = html[..at].rfind("<a ").unwrap_or(0);
    let tag = &html[start..];
    let href = tag.find("href=\"").map(|i| i + 6).expect("an href");
    text(&tag[href..href + tag[href..].find('"').expect("quote")])
}

/// On a GET page the switch returns to the same page with its query; on a form's answer (an
/// address that takes no GET) it leads to the home of that part of the portal, never to a 405.
async fn the_switch_keeps_the_query_and_never_leads_to_a_form_address(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let page = b.page("/verify?from=text").await;
    assert_eq!(switch_href(&page), "/verify?from=text&lang=es");

    // Emergency access refused (no reason): the answer is the POST's own, at an address that
    // takes no GET.
    let (officer, _) = app
        .signed_in_staff(
            "officer@example.org",
            patriotpay::access::Role::SecurityOfficer,
        )
        .await;
    let csrf = officer.csrf("/staff").await;
    let r = officer
        .post(
            "/staff/break-glass",
            &[("csrf", csrf.as_str()), ("practice", app.tenant.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let href = switch_href(&r.text().await.expect("body"));
    assert_eq!(href, "/staff?lang=es");
    let r = officer.get(&href).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "GET {href}");
    assert_eq!(location(&r), "/staff");
    assert_eq!(
        lang_of(&officer.page("/staff").await),
        "es",
        "the choice was kept"
    );
    app.finish().await;
}
