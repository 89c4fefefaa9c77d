//! The patient journey over HTTP, and every bad input it must refuse, on SQLite and PostgreSQL.

use crate::common::{h1, location, post_event, text, Backend, Browser, TestApp, WEBHOOK_SECRET};
use patriotpay::payments::signature;
use reqwest::StatusCode;

both_backends!(
    full_journey_pays_once_and_audits,
    five_wrong_birth_dates_lock_the_link,
    parallel_guesses_cannot_outrun_the_lock,
    dead_and_unknown_links_look_like_a_wrong_answer,
    bad_amounts_are_refused_before_any_checkout,
    declined_card_says_so_and_allows_retry,
    no_second_checkout_while_a_paid_one_is_unconfirmed,
    replayed_and_forged_webhooks_change_nothing,
    other_patients_ids_are_not_found,
    forms_need_the_token_and_our_origin,
    itemised_statement_needs_the_second_factor,
    signout_and_fixation,
    headers_and_error_pages,
    no_plaintext_phi_or_card_numbers_at_rest,
    the_sandbox_says_test_mode_on_every_page,
);

async fn full_journey_pays_once_and_audits(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    let link = app.link(1).await;
    b.open_link(&link).await;
    let verify = b.page("/verify").await;
    assert_eq!(h1(&verify), "Confirm who you are");
    // Neutral until the date of birth is accepted: the practice's name can say what kind of
    // care the patient gets.
    assert!(
        !verify.contains("Riverside"),
        "no practice named before the identity check"
    );

    let r = b.submit_dob("3", "14", "1984").await;
    assert_eq!(location(&r), "/summary");
    let summary = b.page("/summary").await;
    assert!(summary.contains("$112.00"), "balance on the summary");
    assert!(summary.contains("Due Dec 1, 2026"));
    assert!(
        !summary.contains("Office visit"),
        "no itemised detail before the second factor"
    );

    assert_eq!(location(&b.submit_zip("60614").await), "/statement");
    let st = b.page("/statement").await;
    for text in [
        "Office visit, established patient",
        "Comprehensive metabolic panel",
        "Follow-up visit",
        "Sep 2, 2026",
        "$185.00", // charge
        "$120.00", // insurance paid
        "$15.00",  // adjustment
        "$50.00",  // patient responsibility of line 1
        "$423.00", // total charges
        "$112.00", // balance
        "No payments yet.",
    ] {
        assert!(st.contains(text), "statement shows {text}");
    }

    // Pay the full balance: redirected to the processor's own origin.
    let r = b.pay("112.00").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let checkout_url = location(&r);
    assert!(
        checkout_url.starts_with(&format!("{}/checkout/cs_test_", app.sandbox_url)),
        "{checkout_url}"
    );

    let r = b.card(&checkout_url, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/pay/return/chk_", app.url))
            && back.contains("session_id=cs_test_"),
        "{back}"
    );

    // The webhook, not this redirect, recorded the payment.
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let r = b.get(&back).await;
    let receipt_path = location(&r);
    assert!(receipt_path.starts_with("/receipt/pay_"), "{receipt_path}");
    let receipt = b.page(&receipt_path).await;
    assert_eq!(h1(&receipt), "Payment received");
    assert!(receipt.contains("$112.00"));
    assert!(receipt.contains("Visa ending 4242"));
    assert!(
        receipt.contains("receipt-balance\">$0.00"),
        "new balance is zero"
    );

    // Returning to the success URL again changes nothing.
    let _ = b.get(&back).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
        1
    );
    let summary = b.page("/summary").await;
    assert!(summary.contains("This statement is paid in full"));
    let st = b.page("/statement").await;
    assert!(
        st.contains("$112.00 (Visa ending 4242)"),
        "payment listed on the statement"
    );

    // Every view of PHI left an audit event naming the patient, the request and the address.
    let stmt = app.statement_of(1).await;
    let patient = patriotpay::billing::statement_header(app.db(), &stmt)
        .await
        .expect("q")
        .expect("stmt")
        .patient_id;
    let events = patriotpay::audit::for_patient(app.db(), &patient)
        .await
        .expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "paylink.open",
        "identity.dob",
        "statement.summary.view",
        "identity.zip",
        "statement.itemised.view",
        "payment.checkout.start",
        "payment.recorded",
        "payment.receipt.view",
    ] {
        assert!(actions.contains(&a), "audit has {a}: {actions:?}");
    }
    let view = events
        .iter()
        .find(|e| e.action == "statement.itemised.view")
        .expect("itemised view event");
    assert!(view.actor.starts_with("link:lnk_"));
    assert_eq!(view.address.as_deref(), Some("127.0.0.1"));
    assert!(view.request_id.as_deref().is_some_and(|r| r.len() == 36));
    assert_eq!(view.outcome, "success");
    // Append-only: the database refuses edits and deletions.
    assert!(sqlx::query("UPDATE audit_events SET outcome = 'x'")
        .execute(app.db().pool())
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_events")
        .execute(app.db().pool())
        .await
        .is_err());
    app.finish().await;
}

async fn five_wrong_birth_dates_lock_the_link(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.open_link(&app.link(2).await).await;
    for attempt in 1..=4 {
        let r = b.submit_dob("01", "01", "1970").await;
        assert_eq!(location(&r), "/verify");
        let page = b.page("/verify").await;
        assert!(
            page.contains("We couldn't confirm those details"),
            "attempt {attempt}"
        );
        assert_eq!(h1(&page), "Confirm who you are");
    }
    let _ = b.submit_dob("01", "01", "1970").await;
    let page = b.page("/verify").await;
    assert_eq!(h1(&page), "This link is locked");
    assert!(
        page.contains("call (555) 010-4400"),
        "the practice's number"
    );
    assert!(!page.contains("Riverside"), "but not its name");
    // Even the right answer no longer works on this link, from this or a new browser.
    let r = b
        .post(
            "/verify",
            &[
                ("csrf", &crate::common::csrf_in(&page)),
                ("dob_month", "11"),
                ("dob_day", "02"),
                ("dob_year", "1991"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/verify");
    assert_eq!(h1(&b.page("/verify").await), "This link is locked");
    assert_eq!(location(&b.get("/summary").await), "/verify");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM pay_links WHERE locked_at IS NOT NULL")
            .await,
        1
    );
    app.finish().await;
}

async fn parallel_guesses_cannot_outrun_the_lock(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.open_link(&app.link(2).await).await;
    let csrf = b.csrf("/verify").await;
    // 40 different wrong dates at once, on one session.
    let mut guesses = vec![];
    for day in 1..=40u32 {
        let (client, url, csrf) = (
            b.client.clone(),
            format!("{}/verify", app.url),
            csrf.clone(),
        );
        guesses.push(tokio::spawn(async move {
            let d = format!("{}", (day % 28) + 1);
            let y = format!("{}", 1950 + day);
            client
                .post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("dob_month", "01"),
                    ("dob_day", d.as_str()),
                    ("dob_year", y.as_str()),
                ])
                .send()
                .await
                .expect("post")
                .status()
        }));
    }
    for g in guesses {
        assert_eq!(g.await.expect("join"), StatusCode::SEE_OTHER);
    }
    let compared = app
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'identity.dob'")
        .await;
    assert!(
        compared <= 5,
        "{compared} answers were compared; the lock allows 5"
    );
    assert_eq!(
        app.count("SELECT MAX(failed_attempts) FROM pay_links")
            .await,
        5
    );
    assert_eq!(h1(&b.page("/verify").await), "This link is locked");
    app.finish().await;
}

/// Strips the per-session token so two pages can be compared.
fn normalized(html: &str) -> String {
    html.replace(&crate::common::csrf_in(html), "TOKEN")
}

async fn dead_and_unknown_links_look_like_a_wrong_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    // An expired link and a revoked one.
    let stmt = app.statement_of(1).await;
    let (_, expired_token) = patriotpay::links::create(
        app.db(),
        &app.tenant,
        &stmt,
        patriotpay::clock::now_unix() - 1,
    )
    .await
    .expect("link");
    let (revoked_id, revoked_token) = patriotpay::links::create(
        app.db(),
        &app.tenant,
        &stmt,
        patriotpay::clock::now_unix() + 3600,
    )
    .await
    .expect("link");
    patriotpay::links::revoke(app.db(), &revoked_id, patriotpay::clock::now_unix())
        .await
        .expect("revoke");
    let unknown_token = patriotpay::crypto::random_token();

    let mut pages = vec![];
    for token in [&expired_token, &revoked_token, &unknown_token] {
        let b = Browser::new(&app);
        b.open_link(&format!("{}/p/{token}", app.url)).await;
        let landing = normalized(&b.page("/verify").await);
        // The right date of birth for the real patient gets the same answer as a wrong one.
        let r = b.submit_dob("03", "14", "1984").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/verify");
        let after = normalized(&b.page("/verify").await);
        assert!(after.contains("We couldn't confirm those details"));
        assert_eq!(location(&b.get("/summary").await), "/verify", "no access");
        pages.push((landing, after));
    }
    assert!(
        pages.windows(2).all(|w| w[0] == w[1]),
        "expired, revoked and unknown links must be indistinguishable"
    );
    assert!(
        !pages[0].0.contains("Riverside"),
        "a dead link does not reveal the practice"
    );

    // A wrong answer on a live link: same status, same redirect, same message.
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let r = b.submit_dob("01", "01", "1970").await;
    assert_eq!(
        (r.status(), location(&r)),
        (StatusCode::SEE_OTHER, "/verify".to_owned())
    );
    let live_after = b.page("/verify").await;
    let msg = |p: &str| {
        p.split("<li>")
            .nth(1)
            .map(|s| s.split("</li>").next().unwrap_or("").to_owned())
    };
    assert_eq!(msg(&live_after), msg(&pages[0].1));
    // A malformed token is refused the same way, without a database query.
    let b = Browser::new(&app);
    b.open_link(&format!("{}/p/..%2F..%2Fetc", app.url)).await;
    assert_eq!(normalized(&b.page("/verify").await), pages[0].0);
    app.finish().await;
}

async fn bad_amounts_are_refused_before_any_checkout(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    for (amount, message) in [
        ("0", "The amount must be more than $0.00."),
        ("0.00", "The amount must be more than $0.00."),
        ("-5", "The amount can't be negative."),
        (
            "112.01",
            "The amount can't be more than the balance of $112.00.",
        ),
        (
            "1000000",
            "The amount can't be more than the balance of $112.00.",
        ),
        (
            "abc",
            "Enter an amount in dollars and cents, for example 25.00.",
        ),
        (
            "12.345",
            "Enter an amount in dollars and cents, for example 25.00.",
        ),
        (
            "1e2",
            "Enter an amount in dollars and cents, for example 25.00.",
        ),
        ("", "Enter an amount to pay."),
    ] {
        let r = b.pay(amount).await;
        assert_eq!(
            location(&r),
            "/summary",
            "amount {amount:?} must be refused"
        );
        let page = text(&b.page("/summary").await);
        assert!(
            page.contains(message),
            "amount {amount:?}: expected {message:?}"
        );
        assert!(
            page.contains("aria-invalid=\"true\""),
            "error tied to the field for {amount:?}"
        );
        assert!(
            page.contains(&format!("value=\"{amount}\"")),
            "what was typed is kept for {amount:?}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts").await,
        0,
        "no checkout for a bad amount"
    );
    // A part payment in cents is fine.
    let r = b.pay("$1,0.5".replace(",", "").as_str()).await;
    assert!(location(&r).starts_with(&app.sandbox_url));
    let cents: i64 = sqlx::query_scalar("SELECT amount_cents FROM checkouts")
        .fetch_one(app.db().pool())
        .await
        .expect("q");
    assert_eq!(cents, 1050);
    app.finish().await;
}

async fn declined_card_says_so_and_allows_retry(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let mut abandoned = vec![];
    for (card, text) in [
        (
            "4000 0000 0000 0002",
            "The card processor declined the card.",
        ),
        ("4000000000009995", "declined for insufficient funds"),
    ] {
        let checkout = location(&b.pay("20.00").await);
        let r = b.card(&checkout, card).await;
        let cancel = location(&r);
        assert!(
            cancel.starts_with(&format!("{}/pay/cancelled/chk_", app.url)),
            "{cancel}"
        );
        let page = b.page(&cancel).await;
        assert_eq!(h1(&page), "Your card was declined");
        assert!(page.contains(text), "{text}");
        assert!(
            page.contains("action=\"/pay\""),
            "the page lets them try again"
        );
        abandoned.push(checkout.clone());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    // Looking at the declined page changes nothing (no state change on GET); starting the next
    // checkout closed each abandoned one at the processor.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts WHERE status = 'open'")
            .await,
        1
    );
    for old in &abandoned[..1] {
        let page = b
            .client
            .get(old)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        assert!(page.contains("This checkout is closed"), "{old}");
    }
    // A non-test card number never leaves the sandbox page.
    let checkout = location(&b.pay("20.00").await);
    let r = b.card(&checkout, "4111 1111 1111 1111").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("Sandbox mode accepts only test card numbers"));
    // Then a good card works.
    let back = location(&b.card(&checkout, "5555 5555 5555 4444").await);
    let receipt = b.page(&location(&b.get(&back).await)).await;
    assert!(receipt.contains("Mastercard ending 4444"));
    assert!(receipt.contains("receipt-balance\">$92.00"));
    app.finish().await;
}

async fn no_second_checkout_while_a_paid_one_is_unconfirmed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let checkout = location(&b.pay("20.00").await);
    let _ = b.card(&checkout, "4242424242424242").await;
    // As if the processor had taken the money but its webhook had not arrived yet: our record of
    // the checkout is still open and the balance has not moved.
    sqlx::query("UPDATE checkouts SET status = 'open'")
        .execute(app.db().pool())
        .await
        .expect("reopen");
    sqlx::query("UPDATE checkout_items SET live = 1")
        .execute(app.db().pool())
        .await
        .expect("reopen items");
    let r = b.pay("92.00").await;
    assert_eq!(location(&r), "/summary", "no second checkout");
    assert!(
        text(&b.page("/summary").await).contains("A payment for this statement is being confirmed")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM checkouts").await, 1);
    app.finish().await;
}

fn signed(body: &str, secret: &str, t: i64) -> String {
    signature::sign(secret, t, body.as_bytes())
}

async fn replayed_and_forged_webhooks_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let checkout = location(&b.pay("40.00").await);
    let cs = checkout.rsplit('/').next().expect("cs id").to_owned();
    let _ = b.card(&checkout, "4242424242424242").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let event_id: String = sqlx::query_scalar("SELECT event_id FROM processor_events")
        .fetch_one(app.db().pool())
        .await
        .expect("event");
    let now = patriotpay::clock::now_unix();
    let event = |id: &str, ty: &str, obj: &str| {
        serde_json::json!({"id": id, "object": "event", "type": ty, "data": {"object": {"id": obj, "object": "checkout.session"}}})
            .to_string()
    };

    // The same event again (a processor retry), correctly signed: acknowledged, nothing changes.
    let body = event(&event_id, "checkout.session.completed", &cs);
    let r = post_event(&app, &body, Some(signed(&body, WEBHOOK_SECRET, now))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["duplicate"],
        true
    );
    // A different event about the same payment (e.g. async_payment_succeeded): still once.
    let body = event(
        "evt_other_delivery",
        "checkout.session.async_payment_succeeded",
        &cs,
    );
    assert_eq!(
        post_event(&app, &body, Some(signed(&body, WEBHOOK_SECRET, now)))
            .await
            .status(),
        StatusCode::OK
    );
    // An out-of-order "expired" after completion does not move the checkout backwards.
    let body = event("evt_late_expired", "checkout.session.expired", &cs);
    assert_eq!(
        post_event(&app, &body, Some(signed(&body, WEBHOOK_SECRET, now)))
            .await
            .status(),
        StatusCode::OK
    );
    let status: String = sqlx::query_scalar("SELECT status FROM checkouts")
        .fetch_one(app.db().pool())
        .await
        .expect("q");
    assert_eq!(status, "complete");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
        1
    );

    // Forged: wrong secret, stale or future timestamp, no signature, tampered body.
    let open_checkout = location(&b.pay("10.00").await);
    let open_cs = open_checkout.rsplit('/').next().expect("cs").to_owned();
    let body = event("evt_forged", "checkout.session.completed", &open_cs);
    for sig in [
        Some(signed(&body, "whsec_not_ours", now)),
        // Well outside the 300 s tolerance (exact boundaries are unit-tested), so the seconds
        // this test itself takes cannot matter.
        Some(signed(&body, WEBHOOK_SECRET, now - 400)),
        Some(signed(&body, WEBHOOK_SECRET, now + 400)),
        Some("t=1,v1=00".to_owned()),
        None,
    ] {
        assert_eq!(
            post_event(&app, &body, sig).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    let tampered = body.replace("evt_forged", "evt_forgeD");
    assert_eq!(
        post_event(&app, &tampered, Some(signed(&body, WEBHOOK_SECRET, now)))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    // Correctly signed but claiming an unpaid checkout completed: the re-fetch shows it unpaid.
    assert_eq!(
        post_event(&app, &body, Some(signed(&body, WEBHOOK_SECRET, now)))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM processor_events WHERE event_id = 'evt_forgeD'")
            .await,
        0
    );
    app.finish().await;
}

async fn other_patients_ids_are_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Patient 3 pays; patient 1 then tries patient 3's receipt and checkout pages.
    let other = Browser::new(&app);
    other.open_link(&app.link(3).await).await;
    assert_eq!(
        location(&other.submit_dob("06", "21", "2012").await),
        "/summary"
    );
    let checkout = location(&other.pay("5.00").await);
    let back = location(&other.card(&checkout, "4242424242424242").await);
    let receipt = location(&other.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"));
    let chk = back
        .split("/pay/return/")
        .nth(1)
        .and_then(|s| s.split('?').next())
        .expect("chk id")
        .to_owned();

    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    for path in [
        receipt.clone(),
        back.replace(&app.url, ""),
        format!("/pay/cancelled/{chk}"),
        "/receipt/pay_00000000000000000000000000000000".to_owned(),
        "/receipt/not-an-id".to_owned(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body = r.text().await.expect("body");
        assert!(
            !body.contains("$5.00") && !body.contains("Okonkwo"),
            "nothing of the other patient leaks"
        );
    }
    // Patient 1's own pages still show only patient 1's statement.
    assert!(b
        .page("/statement")
        .await
        .contains("Office visit, established patient"));
    app.finish().await;
}

async fn forms_need_the_token_and_our_origin(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let dob = [("dob_month", "03"), ("dob_day", "14"), ("dob_year", "1984")];
    // No token, wrong token.
    assert_eq!(
        b.post("/verify", &dob).await.status(),
        StatusCode::FORBIDDEN
    );
    let mut with_bad = dob.to_vec();
    with_bad.push(("csrf", "not-the-token"));
    assert_eq!(
        b.post("/verify", &with_bad).await.status(),
        StatusCode::FORBIDDEN
    );
    // Right token, but the browser says the form came from another site.
    let csrf = b.csrf("/verify").await;
    let mut good = dob.to_vec();
    good.push(("csrf", &csrf));
    for (h, v) in [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = b
            .client
            .post(format!("{}/verify", app.url))
            .header(h, v)
            .form(&good)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{h}: {v}");
    }
    assert_eq!(
        location(&b.get("/summary").await),
        "/verify",
        "none of those verified anyone"
    );
    let r = b
        .client
        .post(format!("{}/verify", app.url))
        .header("Origin", app.url.as_str())
        .form(&good)
        .send()
        .await
        .expect("post");
    assert_eq!(location(&r), "/summary");
    // State never changes on GET.
    assert_eq!(
        b.get("/pay?amount=1").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        b.get("/signout").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    app.finish().await;
}

async fn itemised_statement_needs_the_second_factor(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    // Nothing at all without a session.
    assert_eq!(location(&b.get("/summary").await), "/expired");
    assert_eq!(location(&b.get("/statement").await), "/expired");
    b.open_link(&app.link(1).await).await;
    assert_eq!(location(&b.get("/statement").await), "/verify");
    assert_eq!(
        location(&b.submit_dob("03", "14", "1984").await),
        "/summary"
    );
    assert_eq!(location(&b.get("/statement").await), "/verify/zip");
    // A malformed ZIP is a typo, not a wrong answer; a wrong ZIP counts toward the lock.
    assert_eq!(location(&b.submit_zip("606").await), "/verify/zip");
    assert!(b
        .page("/verify/zip")
        .await
        .contains("Enter a 5-digit ZIP code."));
    assert_eq!(location(&b.submit_zip("10001").await), "/verify/zip");
    assert!(text(&b.page("/verify/zip").await).contains("We couldn't confirm that ZIP code"));
    let attempts: i64 = app
        .count("SELECT MAX(failed_attempts) FROM pay_links")
        .await;
    assert_eq!(attempts, 1, "only the wrong ZIP counted");
    assert_eq!(location(&b.submit_zip("60614-1234").await), "/statement");
    assert!(b
        .page("/statement")
        .await
        .contains("Comprehensive metabolic panel"));
    app.finish().await;
}

async fn signout_and_fixation(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    let r = b.get(&app.link(1).await).await;
    let cookie = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("pp_session="))
            .map(|c| c.split(';').next().unwrap_or("").to_owned())
    };
    let before = cookie(&r).expect("session cookie set");
    assert!(r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax")));
    let r = b.submit_dob("03", "14", "1984").await;
    let after = cookie(&r).expect("new cookie on verification");
    assert_ne!(
        before, after,
        "session id cycles when the patient proves who they are"
    );
    // The pre-login id is dead: a client holding it sees nothing.
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = stale
        .get(format!("{}/summary", app.url))
        .header("Cookie", before)
        .send()
        .await
        .expect("get");
    assert_eq!(location(&r), "/expired");

    // Sign out removes the server-side record; replaying the cookie gets nothing.
    let csrf = b.csrf("/summary").await;
    let r = b.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), "/signed-out");
    let r = stale
        .get(format!("{}/summary", app.url))
        .header("Cookie", after)
        .send()
        .await
        .expect("get");
    assert_eq!(location(&r), "/expired");
    assert_eq!(location(&b.get("/summary").await), "/expired");
    app.finish().await;
}

async fn headers_and_error_pages(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let r = b.get("/statement").await;
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("csp");
    assert!(csp.contains("script-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        csp.contains(&format!("form-action 'self' {}", app.sandbox_url)),
        "{csp}"
    );
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        h.get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert_eq!(
        h.get("referrer-policy").and_then(|v| v.to_str().ok()),
        Some("same-origin")
    );
    assert!(h.get("strict-transport-security").is_some());
    let body = r.text().await.expect("body");
    assert!(body.starts_with("<!DOCTYPE html><html lang=\"en\""));
    assert!(!body.contains("<script"), "no script on our pages");

    let r = b.get("/no/such/page").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let body = r.text().await.expect("body");
    assert_eq!(h1(&body), "Page not found");
    assert!(body.contains(&rid), "error page shows the request id");
    // A malformed form body: a clear 4xx page, no internals.
    let r = b
        .client
        .post(format!("{}/pay", app.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert!(r.status().is_client_error());
    let body = r.text().await.expect("body");
    assert!(
        body.contains("x-request-id") || body.contains("request-id"),
        "rendered error page"
    );
    assert!(
        !body.to_lowercase().contains("serde") && !body.contains("Form"),
        "no internals"
    );
    assert_eq!(b.get("/readyz").await.status(), StatusCode::OK);
    assert!(b
        .get("/assets/style.css")
        .await
        .text()
        .await
        .expect("css")
        .contains(".balance-card"));
    app.finish().await;
}

/// Every 13–19 digit run in `bytes` that passes the Luhn check.
fn luhn_runs(bytes: &[u8]) -> Vec<String> {
    let mut out = vec![];
    // Maximal alphanumeric tokens; long lowercase-hex tokens are our ids and hashes (`pat_<32
    // hex>`), whose digit runs are chance, not card numbers.
    for token in bytes.split(|b| !b.is_ascii_alphanumeric()) {
        let is_hex_id =
            token.len() >= 32 && token.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_hex_id {
            continue;
        }
        for run in token.split(|b| !b.is_ascii_digit()) {
            let run = String::from_utf8_lossy(run);
            if (13..=19).contains(&run.len()) && patriotpay::payments::sandbox::luhn_valid(&run) {
                out.push(run.into_owned());
            }
        }
    }
    out
}

async fn no_plaintext_phi_or_card_numbers_at_rest(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let checkout = location(&b.pay("112.00").await);
    let _ = b.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);

    let p = &patriotpay::demo::PATIENTS[0];
    let phi: Vec<&str> = vec![
        p.first_name,
        p.last_name,
        p.dob,
        "19840314",
        p.phone,
        "5550100001",
        p.account,
        "Comprehensive metabolic panel",
        "2026-09-02",
    ];
    let dump = crate::common::dump_database(&app).await;
    for needle in phi {
        assert!(
            !dump.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "plaintext {needle:?} found at rest"
        );
    }
    assert_eq!(
        luhn_runs(&crate::common::dump_columns(&app).await),
        Vec::<String>::new(),
        "a card number reached the database"
    );
    app.finish().await;
}

#[test]
fn luhn_scanner_finds_card_numbers() {
    assert_eq!(
        luhn_runs(b"x4242424242424242y 1234"),
        vec!["4242424242424242".to_owned()]
    );
    assert!(luhn_runs(b"4242424242424241").is_empty());
    assert_eq!(
        luhn_runs(b"{\"pan\":\"378282246310005\"}"),
        vec!["378282246310005".to_owned()]
    );
    // A chance Luhn-valid digit run inside one of our hex ids (seen in CI) is not a card number.
    assert!(patriotpay::payments::sandbox::luhn_valid("1193319284750"));
    let id = format!("ten_ab1193319284750c{}", "d".repeat(16));
    assert!(luhn_runs(id.as_bytes()).is_empty());
    assert_eq!(
        luhn_runs(b"ab1193319284750c"),
        vec!["1193319284750".to_owned()],
        "short tokens are still scanned"
    );
}

/// With the built-in sandbox processor no money moves: every portal page on the way, the
/// receipt and the error pages say "test mode" (the sandbox's own card page says it too).
async fn the_sandbox_says_test_mode_on_every_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let banner = crate::common::t("test-mode-banner");
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let mut pages = vec![b.page("/verify").await];
    let _ = b.submit_dob("03", "14", "1984").await;
    pages.push(b.page("/summary").await);
    let checkout = location(&b.pay("5.00").await);
    let card = b.client.get(&checkout).send().await.expect("card page");
    let card = card.text().await.expect("body");
    assert!(
        text(&card).contains(&crate::common::t("sandbox-banner")),
        "the sandbox's page: {card}"
    );
    let back = location(&b.card(&checkout, "4242424242424242").await);
    let receipt = location(&b.get(&back).await);
    pages.push(b.page(&receipt).await);
    pages.push(b.get("/no-such-page").await.text().await.expect("body"));
    pages.push(Browser::new(&app).page("/").await);
    for page in &pages {
        assert!(text(page).contains(&banner), "test mode shown: {page}");
    }
    app.finish().await;
}
