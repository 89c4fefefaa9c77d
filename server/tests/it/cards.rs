//! Saved cards (issue 10), on both databases: a signed-in member saves test cards through the
//! sandbox's setup page and sees brand, last four and expiry; removes one; one processor
//! customer per member, carrying only the opaque member ref; another member's card cannot be
//! removed; a pay-link visitor reaches none of it; a declined test card saves nothing.

use crate::common::*;
use reqwest::StatusCode;

/// "Save a card" from the cards page: the redirect to the sandbox's setup page.
async fn start_save(b: &Browser, app: &TestApp) -> String {
    let csrf = b.csrf("/account/cards").await;
    let r = b.post("/account/cards/save", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), SEE_OTHER, "save a card");
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/checkout/cs_test_", app.sandbox_url)),
        "off to the sandbox's page: {to}"
    );
    to
}

/// Saves `number` through the setup page and follows the return; the cards page after it.
pub(crate) async fn save_card(b: &Browser, app: &TestApp, number: &str) -> String {
    let page = start_save(b, app).await;
    let setup = b
        .client
        .get(&page)
        .send()
        .await
        .expect("setup page")
        .text()
        .await
        .expect("body");
    assert!(setup.contains(&t("sandbox-save-lead")), "{setup}");
    assert!(
        !setup.contains(&t("sandbox-amount")),
        "no amount in setup mode"
    );
    let r = b.card(&page, number).await;
    assert_eq!(r.status(), SEE_OTHER, "card saved");
    let back = location(&r);
    let prefix = format!("{}/account/cards/return/cst_", app.url);
    assert!(back.starts_with(&prefix), "back to the portal: {back}");
    assert!(back.contains("?session_id=cs_test_"), "{back}");
    let r = b.get(&back).await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account/cards".to_owned())
    );
    b.page("/account/cards").await
}

fn card_line(brand: &str, last4: &str, expiry: &str) -> String {
    ta(
        "account-card-line",
        &[("brand", brand), ("last4", last4), ("expiry", expiry)],
    )
}

/// The payment-method id on the remove form of the card ending `last4`.
pub(crate) fn card_id(html: &str, last4: &str) -> String {
    let line = html
        .split("<li class=\"saved-card\">")
        .find(|li| li.contains(&format!("ending {last4},")))
        .expect("that card is listed");
    let marker = "name=\"card\" value=\"";
    let start = line.find(marker).expect("remove form") + marker.len();
    let end = line[start..].find('"').expect("quote") + start;
    line[start..end].to_owned()
}

async fn audit_count(app: &TestApp, action: &str, outcome: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND outcome = '{outcome}'"
    ))
    .await
}

async fn save_two_remove_one(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = patient_account(&app, 1, "cards.saver@example.org").await;
    let user = app.user_id_of("cards.saver@example.org").await;
    let home = b.page("/account").await;
    assert!(
        home.contains("href=\"/account/cards\""),
        "the account links to its cards"
    );
    let empty = b.page("/account/cards").await;
    assert!(empty.contains(&t("account-cards-none")));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM member_customers").await,
        0,
        "looking makes no customer"
    );

    let after_first = save_card(&b, &app, "4242 4242 4242 4242").await;
    assert!(
        after_first.contains(&t("account-card-saved")),
        "{after_first}"
    );
    assert!(after_first.contains(&card_line("Visa", "4242", "12/2034")));
    let after_second = save_card(&b, &app, "5555555555554444").await;
    assert!(after_second.contains(&card_line("Mastercard", "4444", "12/2034")));
    assert!(after_second.contains(&card_line("Visa", "4242", "12/2034")));
    // Newest first.
    assert!(after_second.find("ending 4444").unwrap() < after_second.find("ending 4242").unwrap());

    // One customer for the member, made once, holding nothing but the opaque ref.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM member_customers WHERE user_id = '{user}'"
        ))
        .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_customers").await, 1);
    let (customer, metadata): (String, String) =
        sqlx::query_as("SELECT id, metadata FROM sandbox_customers")
            .fetch_one(app.db().pool())
            .await
            .unwrap();
    assert!(customer.starts_with("cus_test_"), "{customer}");
    let ours: String =
        sqlx::query_scalar("SELECT customer_id FROM member_customers WHERE user_id = $1")
            .bind(&user)
            .fetch_one(app.db().pool())
            .await
            .unwrap();
    assert_eq!(ours, customer);
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata, serde_json::json!({ "member_ref": user }));
    assert!(user.starts_with("usr_"), "the ref is an opaque id: {user}");

    // The sandbox told the portal in the usual way: checkout.session.completed, mode setup,
    // delivered, and the portal took it without booking anything or raising an alert.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM sandbox_events WHERE type = 'checkout.session.completed'
             AND payload LIKE '%\"mode\":\"setup\"%' AND delivered_at IS NOT NULL"
        )
        .await,
        2
    );
    app.run_jobs().await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM processor_events WHERE event_type = 'checkout.session.completed'
             AND state = 'done'
             AND object_id IN (SELECT id FROM sandbox_sessions WHERE mode = 'setup')"
        )
        .await,
        2
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(audit_count(&app, "card.save.start", "success").await, 2);
    assert_eq!(audit_count(&app, "card.saved", "success").await, 2);

    // Coming back twice audits the save once; a session id that is not the attempt's is 404.
    let again = start_save(&b, &app).await;
    let r = b.card(&again, "6011111111111117").await;
    let back = location(&r);
    b.get(&back).await;
    b.get(&back).await;
    assert_eq!(audit_count(&app, "card.saved", "success").await, 3);
    let forged = back.replace("session_id=cs_test_", "session_id=cs_test_0");
    assert_eq!(b.get(&forged).await.status(), StatusCode::NOT_FOUND);

    // Remove the Visa.
    let listed = b.page("/account/cards").await;
    let visa = card_id(&listed, "4242");
    assert!(visa.starts_with("pm_test_"), "{visa}");
    let csrf = csrf_in(&listed);
    let r = b
        .post("/account/cards/remove", &[("csrf", &csrf), ("card", &visa)])
        .await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account/cards".to_owned())
    );
    let after = b.page("/account/cards").await;
    assert!(after.contains(&t("account-card-removed")), "{after}");
    assert!(!after.contains("ending 4242"), "{after}");
    assert!(after.contains(&card_line("Mastercard", "4444", "12/2034")));
    assert!(after.contains(&card_line("Discover", "1117", "12/2034")));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_payment_methods WHERE detached = 1")
            .await,
        1
    );
    assert_eq!(audit_count(&app, "card.remove", "success").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM member_customers").await,
        1,
        "still one customer after three saves"
    );
    app.finish().await;
}

/// Posts the remove form for `card`; the cards page after it.
async fn try_remove(b: &Browser, card: &str) -> String {
    let csrf = b.csrf("/account/cards").await;
    let r = b
        .post("/account/cards/remove", &[("csrf", &csrf), ("card", card)])
        .await;
    assert_eq!(location(&r), "/account/cards");
    b.page("/account/cards").await
}

async fn another_members_card_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = patient_account(&app, 1, "cards.owner@example.org").await;
    let listed = save_card(&owner, &app, "4242424242424242").await;
    let theirs = card_id(&listed, "4242");

    let other = patient_account(&app, 2, "cards.other@example.org").await;
    // Before the other member has a customer, and after they saved a card of their own.
    let refused = try_remove(&other, &theirs).await;
    assert!(refused.contains(&t("account-card-not-yours")), "{refused}");
    save_card(&other, &app, "5555555555554444").await;
    let refused = try_remove(&other, &theirs).await;
    assert!(refused.contains(&t("account-card-not-yours")), "{refused}");
    assert!(refused.contains(&card_line("Mastercard", "4444", "12/2034")));
    assert!(!refused.contains("ending 4242"), "{refused}");

    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_payment_methods WHERE detached = 1")
            .await,
        0,
        "nothing removed"
    );
    let still = owner.page("/account/cards").await;
    assert!(
        still.contains(&card_line("Visa", "4242", "12/2034")),
        "{still}"
    );
    assert_eq!(audit_count(&app, "card.remove", "denied").await, 2);
    assert_eq!(audit_count(&app, "card.remove", "success").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM member_customers").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_customers").await, 2);
    // Nor can they come back through the owner's setup attempt.
    let owner_id = app.user_id_of("cards.owner@example.org").await;
    let setup: String = sqlx::query_scalar("SELECT id FROM card_setups WHERE user_id = $1")
        .bind(&owner_id)
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    let r = other.get(&format!("/account/cards/return/{setup}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn pay_link_visitor_reaches_none_of_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let visitor = app.verified_visitor(1).await;
    for path in [
        "/account/cards",
        "/account/cards/return/cst_00000000000000000000000000000000",
    ] {
        let r = visitor.get(path).await;
        assert_eq!(
            (r.status(), location(&r)),
            (SEE_OTHER, "/signin".to_owned()),
            "GET {path}"
        );
    }
    let csrf = visitor.csrf("/summary").await;
    for path in ["/account/cards/save", "/account/cards/remove"] {
        let r = visitor
            .post(path, &[("csrf", &csrf), ("card", "pm_test_x")])
            .await;
        assert_eq!(
            (r.status(), location(&r)),
            (SEE_OTHER, "/signin".to_owned()),
            "POST {path}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM member_customers").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM card_setups").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_customers").await, 0);
    app.finish().await;
}

async fn declined_card_saves_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = patient_account(&app, 1, "cards.declined@example.org").await;
    let page = start_save(&b, &app).await;
    // (4000000000009995 saves, and is declined when charged later: see sandbox::charges.)
    for (number, message) in [
        ("4000000000000002", "sandbox-err-declined"),
        ("4000000000009987", "sandbox-err-declined"),
    ] {
        let r = b.card(&page, number).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{number}");
        let body = r.text().await.unwrap();
        assert!(body.contains(&t(message)), "{body}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_payment_methods")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_events WHERE payload LIKE '%\"mode\":\"setup\"%'")
            .await,
        0
    );
    // Leaving the page: the return says nothing was saved, and the list is empty.
    let setup: String = sqlx::query_scalar("SELECT id FROM card_setups")
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    let r = b.get(&format!("/account/cards/return/{setup}")).await;
    assert_eq!(location(&r), "/account/cards");
    let listed = b.page("/account/cards").await;
    assert!(listed.contains(&t("account-card-not-saved")), "{listed}");
    assert!(listed.contains(&t("account-cards-none")), "{listed}");
    assert_eq!(audit_count(&app, "card.saved", "success").await, 0);
    // The same page still takes a good card afterwards.
    let r = b.card(&page, "4242424242424242").await;
    assert_eq!(r.status(), SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_payment_methods")
            .await,
        1
    );
    app.finish().await;
}

both_backends!(
    save_two_remove_one,
    another_members_card_is_refused,
    pay_link_visitor_reaches_none_of_it,
    declined_card_saves_nothing,
);
