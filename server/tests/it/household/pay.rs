//! One card payment across several statements, split in the ledger exactly once; what a
//! guarantor sees of the patient's own payments; refused forms start no checkout; a signed
//! payment that cannot be booked raises one alert.

use crate::common::{
    accept_onto_existing, balance, guarantor_of_4_and_5, h1, location, pay_five_dollars_by_link,
    pay_statements, second_practice, t, ta, text, Backend, Browser, TestApp, SEE_OTHER,
};
use patriotpay::ids::StatementId;
use reqwest::StatusCode;

both_backends!(
    guarantor_sees_the_patients_payments_without_their_card,
    one_payment_settles_two_statements_exactly_once,
    a_payment_that_cannot_be_booked_raises_one_alert,
    refused_household_payments_start_no_checkout,
);

/// The patient's own card (brand, last four) is theirs: a guarantor sees the payment's date and
/// amount only, but their own card on the payments they made.
async fn guarantor_sees_the_patients_payments_without_their_card(backend: Backend) {
    let app = TestApp::start(backend).await;
    let patient = Browser::new(&app);
    pay_five_dollars_by_link(&app, &patient, 5).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let s5 = app.statement_of(5).await;
    let page = text(&g.page(&format!("/account/statements/{s5}")).await);
    assert!(page.contains("$5.00"), "the patient's payment is listed");
    assert!(
        !page.contains("ending 4242"),
        "the patient's card is not shown to the guarantor: {page}"
    );
    let csrf = g.csrf("/account").await;
    let r = pay_statements(&g, &csrf, &[(&s5, "1.00")]).await;
    let back = location(&g.card(&location(&r), "5555 5555 5555 4444").await);
    let _ = g.get(&back).await;
    let page = text(&g.page(&format!("/account/statements/{s5}")).await);
    assert!(
        page.contains("ending 4444"),
        "the guarantor's own card is shown: {page}"
    );
    assert!(!page.contains("ending 4242"));
    app.finish().await;
}

async fn one_payment_settles_two_statements_exactly_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    // A declined card first: back to the account with the reason, nothing recorded.
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let declined = location(&g.card(&location(&r), "4000 0000 0000 0002").await);
    assert!(
        declined.starts_with(&format!("{}/account/pay/cancelled/chk_", app.url)),
        "a declined card returns to the account's cancel URL: {declined}"
    );
    assert_eq!(location(&g.get(&declined).await), "/account");
    assert!(
        text(&g.page("/account").await).contains(&t("account-pay-declined")),
        "the decline is explained"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(balance(&app, &s4).await, 3500);
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout = location(&r);
    assert!(
        checkout.starts_with(&format!("{}/checkout/cs_test_", app.sandbox_url)),
        "to the processor's page: {checkout}"
    );
    let card_page = g
        .client
        .get(&checkout)
        .send()
        .await
        .expect("card page")
        .text()
        .await
        .expect("body");
    assert!(card_page.contains("$70.00"), "the checkout is for the sum");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM checkouts WHERE amount_cents = 7000 AND user_id IS NOT NULL"
        )
        .await,
        2,
        "the declined checkout and this one"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkout_items WHERE live = 1")
            .await,
        2,
        "only the new checkout holds the two statements"
    );
    let r = g.card(&checkout, "4242 4242 4242 4242").await;
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/account/pay/return/chk_", app.url))
            && back.contains("session_id=cs_test_"),
        "back to the account return URL: {back}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments").await,
        1,
        "the webhook recorded the payment"
    );
    let receipt_path = location(&g.get(&back).await);
    assert!(
        receipt_path.starts_with("/account/receipt/pay_"),
        "{receipt_path}"
    );
    let receipt = text(&g.page(&receipt_path).await);
    assert_eq!(h1(&receipt), t("receipt-title"));
    for s in ["$70.00", "Sam", "Morgan", "4242", "$35.00", "$0.00"] {
        assert!(receipt.contains(s), "receipt shows {s}");
    }

    let check_ledger = |label: &'static str| {
        let app = &app;
        let (s4, s5) = (s4.clone(), s5.clone());
        async move {
            assert_eq!(
                app.count("SELECT COUNT(*) FROM payments").await,
                1,
                "{label}: one payment"
            );
            assert_eq!(
                app.count("SELECT COUNT(*) FROM payment_allocations").await,
                2,
                "{label}: two allocations"
            );
            assert_eq!(
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payment_allocations")
                    .await,
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payments")
                    .await,
                "{label}: allocations sum to the payment"
            );
            assert_eq!(
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payments")
                    .await,
                7000
            );
            assert_eq!(
                app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
                    .await,
                2,
                "{label}: one ledger entry per statement"
            );
            assert_eq!(balance(app, &s4).await, 0, "{label}: Sam's balance");
            assert_eq!(balance(app, &s5).await, 0, "{label}: Morgan's balance");
        }
    };
    check_ledger("after payment").await;

    // Replays: the same event again, and another delivery about the same checkout.
    let cs = checkout.rsplit('/').next().expect("cs id").to_owned();
    let event_id: String = sqlx::query_scalar(
        "SELECT event_id FROM processor_events WHERE event_type = 'checkout.session.completed'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("event");
    let event = |id: &str, ty: &str| {
        serde_json::json!({"id": id, "object": "event", "type": ty,
            "data": {"object": {"id": cs, "object": "checkout.session"}}})
        .to_string()
    };
    let r =
        crate::common::post_webhook(&app, &event(&event_id, "checkout.session.completed")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = crate::common::post_webhook(
        &app,
        &event(
            "evt_household_redelivery",
            "checkout.session.async_payment_succeeded",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    check_ledger("after replays").await;
    // Returning to the success URL again changes nothing either.
    assert_eq!(location(&g.get(&back).await), receipt_path);
    check_ledger("after a second return").await;
    let home = text(&g.page("/account").await);
    assert!(home.contains(&t("account-nothing-due")), "nothing left due");
    app.finish().await;
}

/// A signed payment event that does not match the checkout (here the split was altered behind
/// the portal's back) books nothing, and raises one alert however often the processor retries.
async fn a_payment_that_cannot_be_booked_raises_one_alert(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let checkout = location(&r);
    assert!(checkout.starts_with(&format!("{}/checkout/", app.sandbox_url)));
    sqlx::query(
        "UPDATE checkout_items SET amount_cents = 3400 WHERE statement_id = $1 AND live = 1",
    )
    .bind(s4.as_str())
    .execute(app.db().pool())
    .await
    .expect("alter the split");
    g.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(
        (balance(&app, &s4).await, balance(&app, &s5).await),
        (3500, 3500)
    );
    let alerts: Vec<(String, String)> = sqlx::query_as("SELECT kind, detail FROM alerts")
        .fetch_all(app.db().pool())
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "one alert for the event: {alerts:?}");
    let (kind, detail) = &alerts[0];
    // Refused like any payment that is not exactly what the checkout asked for: the event is
    // kept and acknowledged, the checkout closed (issue 9).
    assert_eq!(kind, "payment-amount-mismatch");
    assert!(
        detail.starts_with("processor payment pi_")
            && detail.ends_with("(6900 usd over its statements)"),
        "{detail}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM processor_events").await, 1);
    app.finish().await;
}

async fn refused_household_payments_start_no_checkout(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s1, s4, s5) = (
        app.statement_of(1).await,
        app.statement_of(4).await,
        app.statement_of(5).await,
    );
    // A second practice's patient, whose guarantor this account also becomes.
    let (other, casey, sx) = second_practice(&app).await;
    let (_, token) = patriotpay::guarantors::invite(
        app.db().pool(),
        &other,
        &casey,
        "test:lakeside",
        app.state().clock.now(),
    )
    .await
    .expect("invite");
    accept_onto_existing(
        &g,
        &format!("{}/g/{token}", app.url),
        ("04", "01", "2016", "60601"),
        "guardian@example.org",
    )
    .await;
    let home = text(&g.page("/account").await);
    assert!(
        home.contains(&ta("account-dependant-statements", &[("name", "Casey")]))
            && home.contains("Lakeside Pediatrics"),
        "the second practice's dependant is on the account"
    );

    let csrf = g.csrf("/account").await;
    let f = |k: &str, s: &StatementId| format!("{k}_{s}");
    let pay = |fields: Vec<(String, &'static str)>| {
        let g = &g;
        let csrf = csrf.clone();
        async move {
            let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
            form.extend(fields.iter().map(|(k, v)| (k.as_str(), *v)));
            g.post("/account/pay", &form).await
        }
    };

    // Nothing selected (an amount alone selects nothing).
    for fields in [vec![], vec![(f("amount", &s4), "35.00")]] {
        let r = pay(fields).await;
        assert_eq!(location(&r), "/account", "nothing selected");
        assert!(text(&g.page("/account").await).contains(&t("account-pay-none")));
    }
    // More than one statement's balance: that statement's error, what was typed kept.
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.01"),
        (f("pay", &s5), "1"),
        (f("amount", &s5), "35.00"),
    ])
    .await;
    assert_eq!(location(&r), "/account");
    let page = text(&g.page("/account").await);
    assert!(
        page.contains(&ta("pay-err-over", &[("balance", "$35.00")])),
        "over-balance error shown"
    );
    assert!(
        page.contains(&format!("id=\"amount-{s4}-error\"")),
        "the error belongs to Sam's statement"
    );
    assert!(
        !page.contains(&format!("id=\"amount-{s5}-error\"")),
        "Morgan's amount was fine"
    );
    assert!(page.contains("value=\"35.01\""), "typed amount kept");
    // A statement outside the household: not found, alone or mixed with good ones.
    let r = pay(vec![(f("pay", &s1), "1"), (f("amount", &s1), "5.00")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "patient 1's statement");
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.00"),
        (f("pay", &s1), "1"),
        (f("amount", &s1), "5.00"),
    ])
    .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "patient 1's statement among the guarantor's own"
    );
    // Two practices in one payment.
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.00"),
        (f("pay", &sx), "1"),
        (f("amount", &sx), "15.00"),
    ])
    .await;
    assert_eq!(location(&r), "/account");
    assert!(
        text(&g.page("/account").await).contains(&t("account-pay-one-practice")),
        "one practice per payment"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts").await,
        0,
        "no refused payment started a checkout"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_items").await, 0);
    // Each practice on its own is fine.
    let r = pay(vec![(f("pay", &sx), "1"), (f("amount", &sx), "15.00")]).await;
    assert!(
        location(&r).starts_with(&app.sandbox_url),
        "the other practice's statement alone goes to checkout"
    );
    app.finish().await;
}
