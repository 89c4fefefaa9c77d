//! Money safety: amounts that do not match, processor races and forgotten checkouts (issue 9).
//! The sandbox is made to misbehave through its test hooks (`Sandbox::misreport`,
//! `forget_everything`, `stop_webhooks`); everything else is real HTTP through the portal.

use crate::common::{
    balance, guarantor_of_4_and_5, location, pay_statements, post_webhook, t, text, Backend,
    Browser, TestApp, SEE_OTHER,
};
use patriotpay::http::patient::MAX_CONFIRM_CHECKS;
use patriotpay::money::Money;
use patriotpay::payments::sandbox::{Misreport, Sandbox};
use reqwest::StatusCode;
use std::sync::Arc;

both_backends!(
    a_payment_of_another_amount_is_not_booked,
    a_payment_in_another_currency_is_not_booked,
    a_household_payment_that_does_not_match_is_not_booked,
    a_complete_checkout_whose_payment_failed_frees_the_statement_on_return,
    a_complete_checkout_whose_payment_failed_frees_the_statement_on_the_next_pay,
    a_checkout_the_processor_forgot_never_blocks_the_statement,
    the_confirming_page_never_reloads_itself,
    the_return_waits_for_the_booking,
);

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// The processor's checkout id, the last segment of its page's URL.
fn session_of(checkout_url: &str) -> String {
    checkout_url
        .rsplit('/')
        .next()
        .expect("checkout id")
        .to_owned()
}

/// Our checkout's id and status, by the processor's checkout id.
async fn our_checkout(app: &TestApp, session: &str) -> (String, String) {
    sqlx::query_as("SELECT id, status FROM checkouts WHERE processor_session_id = $1")
        .bind(session)
        .fetch_one(app.db().pool())
        .await
        .expect("our checkout")
}

async fn alert_details(app: &TestApp, kind: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT detail FROM alerts WHERE kind = $1")
        .bind(kind)
        .fetch_all(app.db().pool())
        .await
        .expect("alerts")
}

async fn events_about(app: &TestApp, session: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM processor_events WHERE object_id = '{session}'"
    ))
    .await
}

/// A `checkout.session.completed` event for the processor's checkout `session`, as the
/// processor sends it (the portal re-reads the object; the body names it only).
fn completed_event(event_id: &str, session: &str) -> String {
    serde_json::json!({
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": { "object": { "id": session, "object": "checkout.session" } },
    })
    .to_string()
}

/// Demo patient 1, both answers given, with a $5.00 checkout open at the processor: the browser
/// and the card page's URL.
async fn five_dollar_checkout(app: &TestApp) -> (Browser, String) {
    let b = app.verified_visitor(1).await;
    let r = b.pay("5.00").await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout = location(&r);
    assert!(
        checkout.starts_with(&app.sandbox_url),
        "a checkout at the processor: {checkout}"
    );
    (b, checkout)
}

/// Asserts a Pay on patient 1's statement goes to the processor (not back to the form with
/// "being confirmed" or "couldn't reach the processor").
async fn can_pay_again(app: &TestApp, b: &Browser) -> String {
    let r = b.pay("5.00").await;
    let to = location(&r);
    assert!(
        to.starts_with(&app.sandbox_url),
        "the statement can be paid again, but Pay answered {to}: {}",
        text(&b.page("/summary").await)
    );
    to
}

/// The processor charges the card something other than the checkout's $5.00 (USD): the signed
/// event is acknowledged and kept, nothing is booked, one alert is raised however many events
/// speak of the payment, and the statement stays payable.
async fn mismatch_is_refused(backend: Backend, amount: i64, currency: &str) {
    let app = TestApp::start(backend).await;
    let before = balance(&app, &app.statement_of(1).await).await;
    let (b, checkout) = five_dollar_checkout(&app).await;
    let session = session_of(&checkout);
    assert!(
        sandbox(&app)
            .misreport(
                &session,
                Misreport::Charge {
                    amount: Money::from_cents(amount),
                    currency: currency.into(),
                }
            )
            .await
    );
    // The sandbox delivers its signed event before it redirects the payer.
    let r = b.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER, "the processor took the money");
    let back = location(&r);

    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(balance(&app, &app.statement_of(1).await).await, before);
    assert_eq!(events_about(&app, &session).await, 1, "the event is kept");
    let alerts = alert_details(&app, "payment-amount-mismatch").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains(&format!(
            "received {amount} {currency} where the checkout asked for 500 usd"
        )),
        "{}",
        alerts[0]
    );
    assert_eq!(our_checkout(&app, &session).await.1, "failed");

    // The same payment in a signed event of our own, twice: acknowledged, the second as a
    // duplicate; still one alert, nothing booked.
    let event = completed_event("evt_test_mismatch", &session);
    for duplicate in [false, true] {
        let r = post_webhook(&app, &event).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["duplicate"], duplicate);
    }
    assert_eq!(events_about(&app, &session).await, 2);
    assert_eq!(
        alert_details(&app, "payment-amount-mismatch").await.len(),
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    // The payer's return page says it is being confirmed, without refreshing for nothing.
    let page = b.page(&back).await;
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(text(&page).contains(&t("confirming-later-body")));
    can_pay_again(&app, &b).await;
    app.finish().await;
}

async fn a_payment_of_another_amount_is_not_booked(backend: Backend) {
    mismatch_is_refused(backend, 50_000, "usd").await;
}

async fn a_payment_in_another_currency_is_not_booked(backend: Backend) {
    mismatch_is_refused(backend, 500, "eur").await;
}

/// The household path (one payment over several statements) refuses the same way: the
/// processor's total or currency must be the checkout's, or nothing is booked.
async fn a_household_payment_that_does_not_match_is_not_booked(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let checkout = location(&r);
    let session = session_of(&checkout);
    assert!(
        sandbox(&app)
            .misreport(
                &session,
                Misreport::Charge {
                    amount: Money::from_cents(7_000),
                    currency: "cad".into(),
                }
            )
            .await
    );
    let r = g.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(
        (balance(&app, &s4).await, balance(&app, &s5).await),
        (3500, 3500)
    );
    assert_eq!(events_about(&app, &session).await, 1, "the event is kept");
    let alerts = alert_details(&app, "payment-amount-mismatch").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("received 7000 cad"), "{}", alerts[0]);
    let r = post_webhook(&app, &completed_event("evt_test_household", &session)).await;
    assert_eq!(r.status(), StatusCode::OK, "acknowledged");
    assert_eq!(
        alert_details(&app, "payment-amount-mismatch").await.len(),
        1
    );
    assert_eq!(our_checkout(&app, &session).await.1, "failed");
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    assert!(
        location(&r).starts_with(&app.sandbox_url),
        "both statements can be paid again"
    );
    app.finish().await;
}

/// The processor calls the checkout complete and paid, but its payment did not succeed (what
/// the sandbox race once left), and no event arrives. A checkout paid at the processor used to
/// hold its statement ("being confirmed") and the payer on the confirming page for ever.
/// Returns the browser, the card page's URL and where the processor sent the payer back.
async fn complete_with_a_failed_payment(app: &TestApp) -> (Browser, String, String) {
    let (b, checkout) = five_dollar_checkout(app).await;
    let session = session_of(&checkout);
    sandbox(app).stop_webhooks();
    assert!(
        sandbox(app)
            .misreport(&session, Misreport::FailAfterCompleting)
            .await
    );
    let r = b.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER);
    let back = location(&r);
    assert!(back.contains("/pay/return/"), "{back}");
    (b, checkout, back)
}

/// After the alert: nothing booked, one alert, the checkout failed, a late event for it
/// changes nothing, and the statement can be paid.
async fn failed_payment_settled(app: &TestApp, b: &Browser, checkout: &str) {
    let session = session_of(checkout);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(our_checkout(app, &session).await.1, "failed");
    let alerts = alert_details(app, "payment-not-succeeded").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains(&session), "{}", alerts[0]);
    let r = post_webhook(app, &completed_event("evt_test_late", &session)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(alert_details(app, "payment-not-succeeded").await.len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    can_pay_again(app, b).await;
}

async fn a_complete_checkout_whose_payment_failed_frees_the_statement_on_return(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, checkout, back) = complete_with_a_failed_payment(&app).await;
    let r = b.get(&back).await;
    assert_eq!(
        r.status(),
        SEE_OTHER,
        "not the confirming page: {}",
        r.text().await.unwrap_or_default()
    );
    let cancelled = location(&r);
    assert!(cancelled.starts_with("/pay/cancelled/chk_"), "{cancelled}");
    let page = text(&b.page(&cancelled).await);
    assert!(page.contains(&t("declined-generic")), "{page}");
    failed_payment_settled(&app, &b, &checkout).await;
    app.finish().await;
}

async fn a_complete_checkout_whose_payment_failed_frees_the_statement_on_the_next_pay(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let (b, checkout, _) = complete_with_a_failed_payment(&app).await;
    // Straight to Pay again: expiring the old checkout is refused (it is complete), so the
    // processor's truth is read again.
    can_pay_again(&app, &b).await;
    failed_payment_settled(&app, &b, &checkout).await;
    app.finish().await;
}

/// The sandbox keeps its checkouts in memory: a restart forgets them. Expiring the forgotten
/// checkout answered "not found", which used to make every later Pay "couldn't reach the card
/// processor". Now it counts as expired, and the new checkout is paid as usual.
async fn a_checkout_the_processor_forgot_never_blocks_the_statement(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let (b, old) = five_dollar_checkout(&app).await;
    let old_session = session_of(&old);
    let (old_id, _) = our_checkout(&app, &old_session).await;
    sandbox(&app).forget_everything().await;

    // The forgotten checkout's return and cancel pages answer, as a payment never made.
    let r = b
        .get(&format!("/pay/return/{old_id}?session_id={old_session}"))
        .await;
    assert_eq!(location(&r), format!("/pay/cancelled/{old_id}"));
    let page = text(&b.page(&format!("/pay/cancelled/{old_id}")).await);
    assert!(page.contains(&t("cancelled-body")), "{page}");
    assert_eq!(our_checkout(&app, &old_session).await.1, "expired");

    // Forgotten while still open on our side: Pay expires it as well.
    let (_, second) = five_dollar_checkout(&app).await;
    sandbox(&app).forget_everything().await;
    let new = can_pay_again(&app, &b).await;
    assert_eq!(our_checkout(&app, &session_of(&second)).await.1, "expired");

    let back = location(&b.card(&new, "4242 4242 4242 4242").await);
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
    assert_eq!(balance(&app, &statement).await, before - 500);
    app.finish().await;
}

/// The "check again" link of a confirming page (the one link that counts checks).
fn check_again(html: &str) -> Option<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(text)
        // (The language switch returns to this page, query and all.)
        .find(|href| href.contains("checks=") && !href.contains("lang="))
}

/// A payment the webhook never confirms: the confirming page never reloads by itself (no timed
/// refresh, WCAG 2.2.1); it offers "check again", and after `MAX_CONFIRM_CHECKS` checks it says
/// to come back later, however large a count is typed into the URL.
async fn the_confirming_page_never_reloads_itself(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, checkout) = five_dollar_checkout(&app).await;
    sandbox(&app).stop_webhooks();
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let mut page = b.page(&back).await;
    let mut checks = 0;
    while text(&page).contains(&t("confirming-body")) {
        assert!(!page.contains("http-equiv"), "no timed refresh: {page}");
        checks += 1;
        assert!(
            checks <= MAX_CONFIRM_CHECKS,
            "still inviting checks: {page}"
        );
        let next = check_again(&page).expect("a check-again link");
        assert!(next.contains(&format!("checks={checks}")), "{next}");
        page = b.page(&next).await;
    }
    assert_eq!(checks, MAX_CONFIRM_CHECKS);
    let last = text(&page);
    assert!(last.contains(&t("confirming-later-title")), "{last}");
    assert!(last.contains(&t("confirming-later-body")), "{last}");
    assert!(last.contains(&t("confirming-later-back")), "{last}");
    assert!(!page.contains("http-equiv"), "no refresh of any kind");

    let (id, _) = our_checkout(&app, &session_of(&checkout)).await;
    for checks in [MAX_CONFIRM_CHECKS.to_string(), "1000000".into()] {
        let again = text(
            &b.page(&format!(
                "/pay/return/{id}?session_id={}&checks={checks}",
                session_of(&checkout)
            ))
            .await,
        );
        assert!(
            again.contains(&t("confirming-later-body")),
            "checks={checks}: {again}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    app.finish().await;
}

/// The processor's event lands a moment after the payer comes back: the return waits for the
/// booking and goes straight to the receipt, with no "confirming" page in between.
async fn the_return_waits_for_the_booking(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.confirm_wait_ms = 60_000).await;
    let (b, checkout) = five_dollar_checkout(&app).await;
    let sandbox = sandbox(&app);
    sandbox.stop_webhooks();
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    // The event goes out while the return is waiting (it is asked for first, below).
    let webhook = format!("{}/webhooks/stripe", app.url);
    let deliver = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sandbox.set_webhook_url(webhook);
        sandbox.deliver_pending().await
    });
    let r = b.get(&back).await;
    assert_eq!(r.status(), SEE_OTHER);
    let receipt = location(&r);
    assert!(receipt.starts_with("/receipt/"), "{receipt}");
    assert_eq!(deliver.await.expect("delivery task"), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    app.finish().await;
}
