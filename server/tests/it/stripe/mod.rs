//! The Stripe processor against a local server that plays Stripe's API (`fake`, its complete
//! objects in `objects`): what goes out (bracketed form fields, the `Authorization`,
//! `Idempotency-Key` and `Stripe-Version` headers), how each failure is sorted, and, through the
//! portal, that a canary patient's payment and refund send Stripe nothing identifying and are
//! booked once from signed webhooks. Refunds, disputes and bank debits are in `refunds`; saved
//! cards in `cards` (`fake_cards`); off-session charges and listings in `charges` (`fake_charges`);
//! a canary member's payment plan through the portal, Stripe refusing and down, in `plans`.

mod cards;
mod charges;
mod fake;
mod fake_cards;
mod fake_charges;
mod objects;
mod plans;
mod refunds;
mod retries;

use crate::canary::import_canary;
use crate::common::{balance, location, post_event, post_webhook, Backend, Browser, TestApp};
use axum::http::{Method, StatusCode};
use fake::{FakeStripe, Seen};
use objects::error_body;
use patriotpay::config::{ProcessorKind, Secret};
use patriotpay::ids::CheckoutId;
use patriotpay::money::Money;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings};
use patriotpay::payments::{
    CheckoutRequest, CheckoutStatus, DeclineReason, PaymentProcessor, ProcessorError,
    NEUTRAL_DESCRIPTION,
};
use serde_json::{json, Value};

both_backends!(a_canary_payment_through_stripe_sends_no_phi_and_books_once);

/// A restricted key: the processor must work with one.
const KEY: &str = "rk_test_51PatriotPayRestrictedKeyZ9";
/// The API version async-stripe =1.0.0-rc.10 was generated for, sent on every request (a crate
/// upgrade that changes it must be a decision: the webhook endpoint's version follows).
const STRIPE_VERSION: &str = "2026-09-30.endive";
const PREVIOUS_WEBHOOK_SECRET: &str = "whsec_previous_secret_during_a_roll";

fn request(amount: i64) -> CheckoutRequest {
    let id = CheckoutId::generate();
    CheckoutRequest {
        amount: Money::from_cents(amount),
        checkout_ref: id.clone(),
        statement_ref: "stm_one,stm_two".into(),
        description: NEUTRAL_DESCRIPTION,
        created_at: patriotpay::clock::now_unix(),
        success_url: format!(
            "https://pay.example/pay/return/{}?session_id={{CHECKOUT_SESSION_ID}}",
            id.as_str()
        ),
        cancel_url: format!("https://pay.example/pay/cancelled/{}", id.as_str()),
        bank_debit: false,
        merchant_name: "Riverside Family Medicine".into(),
    }
}

/// What `create_checkout` sends: the fields, bracketed as Stripe's form encoding has them, and
/// the headers; then the session read back, a payment with its card, and expiry.
#[tokio::test]
async fn the_client_speaks_stripes_form_encoding_and_headers() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    assert_eq!(p.checkout_origin(), "https://checkout.stripe.com");
    let req = request(2_500);
    let before = patriotpay::clock::now_unix();
    let created = p
        .create_checkout(&req, "checkout-key-1")
        .await
        .expect("created");
    assert!(created
        .url
        .starts_with("https://checkout.stripe.com/c/pay/cs_test_"));
    assert_eq!(created.status, CheckoutStatus::Open);
    assert!(!created.paid);
    assert_eq!(created.amount_total, Money::from_cents(2_500));
    assert_eq!(
        created.client_reference_id.as_deref(),
        Some(req.checkout_ref.as_str())
    );

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/checkout/sessions")
    );
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(s.header("idempotency-key"), Some("checkout-key-1"));
    assert_eq!(
        s.header("stripe-version"),
        Some(STRIPE_VERSION),
        "the API version the crate's types were generated for is pinned on every request"
    );
    assert_eq!(
        s.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = s.form();
    let expect = |k: &str, v: &str| {
        assert_eq!(
            form.get(k).map(String::as_str),
            Some(v),
            "{k} in {:?}",
            s.body
        );
    };
    expect("mode", "payment");
    expect("line_items[0][price_data][currency]", "usd");
    expect("line_items[0][price_data][unit_amount]", "2500");
    expect(
        "line_items[0][price_data][product_data][name]",
        "Statement balance",
    );
    // Who is paid, and nothing about the patient or the care.
    expect(
        "line_items[0][price_data][product_data][description]",
        "Riverside Family Medicine",
    );
    expect("line_items[0][quantity]", "1");
    expect("client_reference_id", req.checkout_ref.as_str());
    expect("metadata[checkout]", req.checkout_ref.as_str());
    expect("metadata[statements]", "stm_one,stm_two");
    expect(
        "payment_intent_data[metadata][checkout]",
        req.checkout_ref.as_str(),
    );
    expect(
        "payment_intent_data[metadata][statements]",
        "stm_one,stm_two",
    );
    expect("success_url", &req.success_url);
    expect("cancel_url", &req.cancel_url);
    let expires: i64 = form["expires_at"].parse().expect("expires_at");
    assert!(
        (before + 30 * 60..=before + 30 * 60 + 300).contains(&expires),
        "at least Stripe's minimum of 30 minutes, not much more: {}",
        expires - before
    );
    expect("allowed_payment_method_types[0]", "card");
    let mut keys: Vec<&str> = form.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allowed_payment_method_types[0]",
            "cancel_url",
            "client_reference_id",
            "expires_at",
            "line_items[0][price_data][currency]",
            "line_items[0][price_data][product_data][description]",
            "line_items[0][price_data][product_data][name]",
            "line_items[0][price_data][unit_amount]",
            "line_items[0][quantity]",
            "metadata[checkout]",
            "metadata[statements]",
            "mode",
            "payment_intent_data[metadata][checkout]",
            "payment_intent_data[metadata][statements]",
            "success_url",
        ],
        "nothing else is sent: no email, no customer, nothing about the patient"
    );

    // The same key again (a retry after a lost answer): the same session, no second one.
    let again = p
        .create_checkout(&req, "checkout-key-1")
        .await
        .expect("replay");
    assert_eq!(again.id, created.id);

    // Read back, paid with a card, its PaymentIntent with the charge expanded.
    let read = p.retrieve_checkout(&created.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Open, false));
    fake.pay(&created.id, true);
    let read = p.retrieve_checkout(&created.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Complete, true));
    let pi = read.payment_intent.expect("payment intent");
    let payment = p.retrieve_payment(&pi).await.expect("payment");
    assert!(payment.succeeded());
    assert_eq!(payment.amount_received, Money::from_cents(2_500));
    assert_eq!(payment.currency, "usd");
    assert_eq!(
        (payment.card_brand.as_str(), payment.card_last4.as_str()),
        ("Visa", "4242")
    );
    assert_eq!(payment.last_error, None);
    let last = fake.seen().pop().expect("request");
    assert_eq!(last.path, format!("/v1/payment_intents/{pi}"));
    assert!(
        last.query.contains("latest_charge"),
        "the charge is expanded in the same call: {}",
        last.query
    );
    assert!(
        last.header("idempotency-key").is_none(),
        "reads carry no key"
    );

    // A declined attempt: its reason, from the PaymentIntent's last error.
    let declined = p
        .create_checkout(&request(900), "checkout-key-2")
        .await
        .expect("created");
    fake.pay(&declined.id, false);
    let read = p.retrieve_checkout(&declined.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Open, false));
    let payment = p
        .retrieve_payment(read.payment_intent.as_deref().expect("pi"))
        .await
        .expect("payment");
    assert!(!payment.succeeded());
    assert_eq!(payment.amount_received, Money::ZERO);
    assert_eq!(payment.last_error, Some(DeclineReason::InsufficientFunds));

    // Expiry: open → expired; again is fine; a complete session is refused.
    p.expire_checkout(&declined.id).await.expect("expired");
    p.expire_checkout(&declined.id)
        .await
        .expect("already expired is what was asked");
    assert_eq!(
        p.retrieve_checkout(&declined.id)
            .await
            .expect("read")
            .status,
        CheckoutStatus::Expired
    );
    let e = p.expire_checkout(&created.id).await.expect_err("complete");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");

    // Only the four endpoints a restricted key is given.
    for s in fake.seen() {
        let allowed = (s.method == Method::POST && s.path == "/v1/checkout/sessions")
            || (s.method == Method::GET && s.path.starts_with("/v1/checkout/sessions/"))
            || (s.method == Method::POST
                && s.path.starts_with("/v1/checkout/sessions/")
                && s.path.ends_with("/expire"))
            || (s.method == Method::GET && s.path.starts_with("/v1/payment_intents/"));
        assert!(allowed, "{} {}", s.method, s.path);
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
}

/// Each kind of failure is sorted as the portal acts on it, and no message carries the key.
#[tokio::test]
async fn each_stripe_error_is_sorted_and_never_shows_the_key() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let no_key = |e: &ProcessorError| {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains(KEY) && !text.contains("Restricted"),
            "{text}"
        );
    };

    // A declined card: Stripe answers 402 with a card error.
    fake.script(
        402,
        error_body(
            "card_error",
            Some("card_declined"),
            Some("generic_decline"),
            "Your card was declined.",
        ),
    );
    let e = p
        .create_checkout(&request(100), "k-card")
        .await
        .expect_err("declined");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("card_declined")),
        "{e:?}"
    );
    no_key(&e);

    // Rate limited: 429, try again later.
    fake.script(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        ),
    );
    let e = p.retrieve_checkout("cs_test_x").await.expect_err("429");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited") && m.contains("429")),
        "{e:?}"
    );
    no_key(&e);

    // Stripe's own trouble: 500 api_error, and a 503 whose body is no Stripe error at all.
    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p.retrieve_payment("pi_test_x").await.expect_err("500");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("500")),
        "{e:?}"
    );
    fake.script(503, "<html>Service Unavailable</html>".into());
    let e = p.retrieve_checkout("cs_test_x").await.expect_err("503");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");

    // An idempotency conflict: the key reused with other parameters (Stripe's real check, in the
    // fake), and Stripe's 409 for a key whose first request is still running.
    let req = request(700);
    p.create_checkout(&req, "k-conflict").await.expect("first");
    let mut other = req.clone();
    other.amount = Money::from_cents(701);
    let e = p
        .create_checkout(&other, "k-conflict")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );
    no_key(&e);
    fake.script(
        409,
        error_body(
            "idempotency_error",
            Some("idempotency_key_in_use"),
            None,
            "There is currently another in-progress request using this Stripe-Idempotency-Key",
        ),
    );
    let e = p
        .create_checkout(&req, "k-conflict")
        .await
        .expect_err("409");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");

    // Unknown objects: 404 resource_missing, for a session, a payment and an expiry.
    let e = p
        .retrieve_checkout("cs_test_unknown")
        .await
        .expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    let e = p
        .retrieve_payment("pi_test_unknown")
        .await
        .expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    let e = p.expire_checkout("cs_test_unknown").await.expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");

    // An invalid request (a restricted key without the permission answers alike, 403).
    fake.script(
        403,
        error_body(
            "invalid_request_error",
            None,
            None,
            &format!("The provided key '{KEY}' does not have the required permissions"),
        ),
    );
    let e = p
        .create_checkout(&request(100), "k-403")
        .await
        .expect_err("403");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("403")),
        "{e:?}"
    );
    no_key(&e);

    // Stripe down: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let down = StripeProcessor::new(&StripeSettings {
        secret_key: Secret::new(KEY),
        api_url: Some(format!("http://{addr}")),
    })
    .expect("client");
    let e = down
        .create_checkout(&request(100), "k-down")
        .await
        .expect_err("down");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("network")),
        "{e:?}"
    );
    no_key(&e);
    let e = down.retrieve_checkout("cs_test_x").await.expect_err("down");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
}

/// The signed event Stripe would send for `session`.
fn event(id: &str, event_type: &str, session: &Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": STRIPE_VERSION,
        "created": patriotpay::clock::now_unix(),
        "data": { "object": session },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
    })
    .to_string()
}

/// The canary patient pays by link with Stripe as the processor: every request Stripe receives
/// is free of the patient's name, date of birth, ZIP, phone, account number, service
/// description and date; the signed webhook makes the portal re-read the session and payment
/// from Stripe and book the payment once, however often the event comes.
async fn a_canary_payment_through_stripe_sends_no_phi_and_books_once(backend: Backend) {
    let fake = FakeStripe::start().await;
    let stripe_url = fake.url.clone();
    let app = TestApp::start_with(backend, |c| {
        c.processor = ProcessorKind::Stripe;
        c.stripe_secret_key = Some(Secret::new(KEY));
        c.stripe_api_url = Some(stripe_url);
        c.webhook_secret_previous = Some(Secret::new(PREVIOUS_WEBHOOK_SECRET));
    })
    .await;
    let (db, crypto) = (app.db().clone(), app.state().crypto.clone());
    let (_, statement) = import_canary(&db, &crypto, &app.tenant).await;
    let (_, token) = patriotpay::links::create(
        &db,
        &app.tenant,
        &statement,
        patriotpay::clock::now_unix() + 3600,
    )
    .await
    .expect("link");
    let b = Browser::new(&app);
    b.open_link(&format!("/p/{token}")).await;
    assert_eq!(
        location(&b.submit_dob("07", "07", "1977").await),
        "/summary"
    );
    assert_eq!(
        location(&b.submit_zip(crate::canary::ZIP).await),
        "/statement"
    );

    // A first checkout, abandoned; a second replaces it (the first is expired at Stripe).
    let first = location(&b.pay("25.00").await);
    assert!(
        first.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{first}"
    );
    let second = location(&b.pay("70.00").await);
    assert!(
        second.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{second}"
    );
    let cs = |url: &str| {
        url.trim_start_matches("https://checkout.stripe.com/c/pay/")
            .split('#')
            .next()
            .expect("id")
            .to_owned()
    };
    let (first, second) = (cs(&first), cs(&second));
    assert_ne!(first, second);
    let csp = b.get("/summary").await;
    let csp = csp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://checkout.stripe.com"),
        "{csp}"
    );
    {
        let f = fake.state.lock().expect("fake");
        assert_eq!(
            f.sessions[&first]["status"], "expired",
            "the abandoned checkout was expired"
        );
    }

    // Paid on Stripe's page; the payer is back before the webhook: the portal asks Stripe.
    let session = fake.pay(&second, true);
    let success = session["success_url"]
        .as_str()
        .expect("success_url")
        .replace("{CHECKOUT_SESSION_ID}", &second);
    let back = b.client.get(&success).send().await.expect("return");
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "confirming page while the event is on its way"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    // The signed event, then again, then the same under another event id, then signed with the
    // previous secret of a roll: one payment, of exactly $70.00.
    let before = balance(&app, &statement).await;
    let ev = event(
        "evt_test_1PatriotPayCompleted",
        "checkout.session.completed",
        &session,
    );
    let r = post_webhook(&app, &ev).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"duplicate":false,"received":true}"#
    );
    assert_eq!(post_webhook(&app, &ev).await.status(), StatusCode::OK);
    let other = event(
        "evt_test_2PatriotPayCompleted",
        "checkout.session.completed",
        &session,
    );
    assert_eq!(post_webhook(&app, &other).await.status(), StatusCode::OK);
    let sig = patriotpay::payments::signature::sign(
        PREVIOUS_WEBHOOK_SECRET,
        patriotpay::clock::now_unix(),
        ev.as_bytes(),
    );
    let r = post_event(&app, &ev, Some(sig)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the previous secret is accepted during a roll"
    );
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"duplicate":true,"received":true}"#
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, before - 7_000);
    let (brand, last4, processor_id): (String, String, String) =
        sqlx::query_as("SELECT card_brand, card_last4, processor_payment_id FROM payments")
            .fetch_one(db.pool())
            .await
            .expect("payment");
    assert_eq!((brand.as_str(), last4.as_str()), ("Visa", "4242"));
    assert_eq!(
        Some(processor_id.as_str()),
        session["payment_intent"].as_str()
    );

    // Back again: the receipt.
    let back = b.client.get(&success).send().await.expect("return");
    let receipt = location(&back);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
    assert_eq!(b.get(&receipt).await.status(), StatusCode::OK);

    // The portal re-read the session and the payment from Stripe, not the event's copy.
    let seen = fake.seen();
    assert!(seen
        .iter()
        .any(|s| s.method == Method::GET && s.path == format!("/v1/checkout/sessions/{second}")));
    assert!(seen.iter().any(|s| s.method == Method::GET
        && Some(s.path.as_str())
            == session["payment_intent"]
                .as_str()
                .map(|p| format!("/v1/payment_intents/{p}"))
                .as_deref()));
    // Two checkouts created, each with its own idempotency key, the first expired.
    let creates: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.path == "/v1/checkout/sessions")
        .collect();
    assert_eq!(creates.len(), 2);
    let keys: Vec<&str> = creates
        .iter()
        .filter_map(|s| s.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(
        creates[1].form()["line_items[0][price_data][unit_amount]"],
        "7000"
    );
    assert!(seen
        .iter()
        .any(|s| s.method == Method::POST
            && s.path == format!("/v1/checkout/sessions/{first}/expire")));

    // A practice admin refunds $20.00 of it (our refund recorded first, as the refund action
    // does), then Stripe's `charge.refunded` event: the portal lists the payment's refunds from
    // Stripe, finds ours by the id in its metadata, and books it once.
    let pi = session["payment_intent"].as_str().expect("pi").to_owned();
    let (payment, tenant): (String, String) = sqlx::query_as("SELECT id, tenant_id FROM payments")
        .fetch_one(db.pool())
        .await
        .expect("payment");
    let ours = patriotpay::ids::RefundId::generate();
    sqlx::query(
        "INSERT INTO refunds (id, tenant_id, payment_id, amount_cents, reason, idempotency_key, status, requested_by, created_at)
         VALUES ($1, $2, $3, 2000, 'billing_error', $4, 'requested', 'test:admin', $5)",
    )
    .bind(ours.as_str())
    .bind(&tenant)
    .bind(&payment)
    .bind(format!("refund-{ours}"))
    .bind(patriotpay::clock::now_unix())
    .execute(db.pool())
    .await
    .expect("our refund");
    let refund = app
        .state()
        .processor
        .create_refund(
            &patriotpay::payments::RefundRequest {
                payment: pi.clone(),
                amount: Money::from_cents(2_000),
                reason: patriotpay::payments::RefundReason::BillingError,
                refund_ref: ours.clone(),
            },
            &format!("refund-{ours}"),
        )
        .await
        .expect("refunded at Stripe");
    assert_eq!(refund.refund_ref.as_deref(), Some(ours.as_str()));
    let charge = fake.state.lock().expect("fake").intents[&pi]["latest_charge"].clone();
    let refunded = event("evt_test_1PatriotPayRefunded", "charge.refunded", &charge);
    assert_eq!(post_webhook(&app, &refunded).await.status(), StatusCode::OK);
    assert_eq!(post_webhook(&app, &refunded).await.status(), StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(balance(&app, &statement).await, before - 7_000 + 2_000);
    let (status, processor_refund): (String, String) =
        sqlx::query_as("SELECT status, processor_refund_id FROM refunds WHERE id = $1")
            .bind(ours.as_str())
            .fetch_one(db.pool())
            .await
            .expect("refund row");
    assert_eq!(
        (status.as_str(), processor_refund.as_str()),
        ("succeeded", refund.id.as_str())
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'refund'")
            .await,
        1
    );
    let seen = fake.seen();
    let refund_posts: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.path == "/v1/refunds")
        .collect();
    assert_eq!(refund_posts.len(), 1);
    let mut sent: Vec<String> = refund_posts[0].form().into_keys().collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        [
            "amount",
            "metadata[reason]",
            "metadata[refund]",
            "payment_intent"
        ],
        "a refund carries our ids, the amount and our reason code, nothing else"
    );
    assert!(
        seen.iter().any(|s| s.method == Method::GET
            && s.path == "/v1/refunds"
            && s.query.contains(&format!("payment_intent={pi}"))),
        "the portal re-read the refunds from Stripe"
    );

    // Nothing Stripe received names the patient or the care.
    fake.assert_no_canary();
    app.finish().await;
}
