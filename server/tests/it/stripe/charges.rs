//! Off-session charges and window listings through the Stripe processor, against the fake
//! (`fake_charges`): what a charge on a saved card sends (form fields, headers, idempotency) and
//! each outcome (paid, authentication wanted, declined), a card not the customer's and Stripe's
//! trouble; PaymentIntents, refunds and disputes created in a window, across pages, oldest first.

use super::fake::{FakeStripe, Seen};
use super::fake_charges::{AUTHENTICATE, DECLINED, INSUFFICIENT, SUCCEEDS};
use super::objects::{dispute_object, error_body, intent_object, list_object};
use super::{KEY, STRIPE_VERSION};
use axum::http::Method;
use patriotpay::config::Secret;
use patriotpay::ids::CheckoutId;
use patriotpay::money::Money;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings};
use patriotpay::payments::{
    ChargeOutcome, DeclineReason, MethodKind, OffSessionCharge, PaymentProcessor, PaymentStatus,
    ProcessorError, RefundStatus,
};
use serde_json::{json, Value};
use std::collections::HashMap;

const BASE: i64 = 1_700_000_000;

fn charge(customer: &str, card: &str, cents: i64) -> OffSessionCharge {
    OffSessionCharge {
        customer: customer.to_owned(),
        card: card.to_owned(),
        amount: Money::from_cents(cents),
        checkout_ref: CheckoutId::generate(),
        statement_ref: "stm_one,stm_two".into(),
    }
}

/// A member's customer at the fake with one saved card of this kind: (customer, card).
async fn member_with(
    fake: &FakeStripe,
    p: &StripeProcessor,
    card: (&str, &str, i64, i64),
) -> (String, String) {
    let member = CheckoutId::generate();
    let customer = p
        .create_customer(member.as_str(), &format!("customer-{member}"))
        .await
        .expect("customer");
    let card = fake.save_card(Some(&customer), card, BASE);
    (customer, card)
}

fn query(s: &Seen) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&s.query)
        .expect("query")
        .into_iter()
        .collect()
}

fn assert_headers(s: &Seen, idempotency_key: Option<&str>) {
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(s.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(s.header("idempotency-key"), idempotency_key, "{s:?}");
}

fn creates(fake: &FakeStripe) -> usize {
    fake.seen()
        .iter()
        .filter(|s| s.method == Method::POST && s.path == "/v1/payment_intents")
        .count()
}

/// A charge on a saved card sends the card, the customer, the amount, off-session and
/// confirmed, and our ids in metadata, nothing else, under our idempotency key; Stripe's
/// PaymentIntent comes back paid with the card's brand and last four and our checkout id. The
/// same key again gets the same payment, never a second one.
#[tokio::test]
async fn an_off_session_charge_sends_the_card_and_our_ids_only() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let (customer, card) = member_with(&fake, &p, SUCCEEDS).await;
    let req = charge(&customer, &card, 4_200);
    let before = fake.seen().len();
    let out = p
        .charge_saved_card(&req, "charge-key-1")
        .await
        .expect("charged");
    let ChargeOutcome::Paid(paid) = out else {
        panic!("not paid: {out:?}")
    };
    assert!(paid.id.starts_with("pi_test_"), "{}", paid.id);
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(
        (paid.amount, paid.amount_received),
        (Money::from_cents(4_200), Money::from_cents(4_200))
    );
    assert_eq!(paid.currency, "usd");
    assert_eq!(paid.method, MethodKind::Card);
    assert_eq!(
        (paid.card_brand.as_str(), paid.card_last4.as_str()),
        ("Visa", "4242")
    );
    assert_eq!(
        paid.checkout_ref.as_deref(),
        Some(req.checkout_ref.as_str())
    );
    assert_eq!(paid.last_error, None);

    let seen = fake.seen().split_off(before);
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Whose the card is, read first.
    assert_eq!(
        (seen[0].method.clone(), seen[0].path.clone()),
        (Method::GET, format!("/v1/payment_methods/{card}"))
    );
    assert_headers(&seen[0], None);
    let s = &seen[1];
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/payment_intents")
    );
    assert_headers(s, Some("charge-key-1"));
    assert_eq!(
        s.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut form: Vec<(String, String)> =
        serde_urlencoded::from_str(&s.body).expect("form-encoded body");
    form.sort();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        form,
        [
            pair("amount", "4200"),
            pair("automatic_payment_methods[allow_redirects]", "never"),
            pair("automatic_payment_methods[enabled]", "true"),
            pair("confirm", "true"),
            pair("currency", "usd"),
            pair("customer", &customer),
            pair("expand[0]", "latest_charge"),
            pair("metadata[checkout]", req.checkout_ref.as_str()),
            pair("metadata[statements]", "stm_one,stm_two"),
            pair("off_session", "true"),
            pair("payment_method", &card),
        ],
        "our ids, the card and the amount; no description, receipt email or anything about the payer"
    );
    {
        let f = fake.state.lock().expect("fake");
        let stored = &f.intents[&paid.id];
        assert_eq!(stored["customer"], customer.as_str());
        assert_eq!(stored["metadata"]["checkout"], req.checkout_ref.as_str());
        assert!(stored["description"].is_null() && stored["receipt_email"].is_null());
    }

    // A retry after a lost answer: the same payment, no second charge.
    let again = p
        .charge_saved_card(&req, "charge-key-1")
        .await
        .expect("replayed");
    let ChargeOutcome::Paid(again) = again else {
        panic!("not paid: {again:?}")
    };
    assert_eq!(again.id, paid.id);
    assert_eq!(fake.state.lock().expect("fake").intents.len(), 1);
    // The key with another amount: Stripe's idempotency error.
    let mut other = req.clone();
    other.amount = Money::from_cents(4_201);
    let e = p
        .charge_saved_card(&other, "charge-key-1")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );
    assert_eq!(fake.state.lock().expect("fake").intents.len(), 1);
}

/// A card whose bank wants the cardholder present: Stripe answers 402 `authentication_required`
/// with the PaymentIntent it left waiting, and the outcome names it; a retry gets the same
/// answer. An intent returned in `requires_action` means the same.
#[tokio::test]
async fn a_card_wanting_authentication_leaves_the_payment_for_the_member() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let (customer, card) = member_with(&fake, &p, AUTHENTICATE).await;
    let req = charge(&customer, &card, 3_000);
    let out = p
        .charge_saved_card(&req, "charge-auth")
        .await
        .expect("answered");
    let ChargeOutcome::AuthenticationRequired { payment: Some(pi) } = out else {
        panic!("not authentication: {out:?}")
    };
    {
        let f = fake.state.lock().expect("fake");
        let stored = &f.intents[&pi];
        assert_eq!(stored["status"], "requires_payment_method");
        assert_eq!(
            stored["last_payment_error"]["code"],
            "authentication_required"
        );
        assert_eq!(stored["amount_received"], 0, "nothing was taken");
    }
    let again = p
        .charge_saved_card(&req, "charge-auth")
        .await
        .expect("replayed");
    assert!(
        matches!(&again, ChargeOutcome::AuthenticationRequired { payment: Some(id) } if *id == pi),
        "{again:?}"
    );
    assert_eq!(fake.state.lock().expect("fake").intents.len(), 1);

    let mut waiting = intent_object(
        "pi_test_waiting3DS",
        json!("ch_test_none"),
        3_000,
        BASE,
        false,
    );
    waiting["status"] = json!("requires_action");
    waiting["last_payment_error"] = Value::Null;
    waiting["next_action"] = json!({ "type": "use_stripe_sdk", "use_stripe_sdk": {} });
    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        200,
        waiting.to_string(),
    );
    let out = p
        .charge_saved_card(&charge(&customer, &card, 3_000), "charge-auth-2")
        .await
        .expect("answered");
    assert!(
        matches!(&out, ChargeOutcome::AuthenticationRequired { payment: Some(id) } if id == "pi_test_waiting3DS"),
        "{out:?}"
    );
}

/// Declines: insufficient funds told apart from any other decline, each naming the failed
/// PaymentIntent; a 402 without one, and an intent returned needing a new card, alike; an
/// intent still processing is paid.
#[tokio::test]
async fn declines_say_insufficient_funds_or_nothing_more() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    for (kind, reason) in [
        (INSUFFICIENT, DeclineReason::InsufficientFunds),
        (DECLINED, DeclineReason::Generic),
    ] {
        let (customer, card) = member_with(&fake, &p, kind).await;
        let key = format!("charge-{card}");
        let req = charge(&customer, &card, 2_000);
        let out = p.charge_saved_card(&req, &key).await.expect("answered");
        let ChargeOutcome::Declined {
            payment: Some(pi),
            reason: got,
        } = out
        else {
            panic!("not declined: {out:?}")
        };
        assert_eq!(got, reason, "{kind:?}");
        assert_eq!(
            fake.state.lock().expect("fake").intents[&pi]["status"],
            "requires_payment_method"
        );
        let again = p.charge_saved_card(&req, &key).await.expect("replayed");
        assert!(
            matches!(&again, ChargeOutcome::Declined { payment: Some(id), reason: r } if *id == pi && *r == reason),
            "{again:?}"
        );
    }
    assert_eq!(fake.state.lock().expect("fake").intents.len(), 2);

    let (customer, card) = member_with(&fake, &p, SUCCEEDS).await;
    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        402,
        error_body(
            "card_error",
            Some("card_declined"),
            Some("do_not_honor"),
            "Your card was declined.",
        ),
    );
    let out = p
        .charge_saved_card(&charge(&customer, &card, 100), "charge-bare")
        .await
        .expect("answered");
    assert!(
        matches!(
            out,
            ChargeOutcome::Declined {
                payment: None,
                reason: DeclineReason::Generic
            }
        ),
        "{out:?}"
    );

    // Answers Stripe gives with 200: needs a new card (its last error says why), processing.
    let needs_card = intent_object("pi_test_needsCard", json!("ch_test_x"), 100, BASE, false);
    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        200,
        needs_card.to_string(),
    );
    let out = p
        .charge_saved_card(&charge(&customer, &card, 100), "charge-200-declined")
        .await
        .expect("answered");
    assert!(
        matches!(&out, ChargeOutcome::Declined { payment: Some(id), reason: DeclineReason::InsufficientFunds } if id == "pi_test_needsCard"),
        "{out:?}"
    );
    let mut processing = intent_object("pi_test_processing", json!("ch_test_y"), 100, BASE, true);
    processing["status"] = json!("processing");
    processing["amount_received"] = json!(0);
    processing["metadata"] = json!({ "checkout": "chk_processing" });
    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        200,
        processing.to_string(),
    );
    let out = p
        .charge_saved_card(&charge(&customer, &card, 100), "charge-200-processing")
        .await
        .expect("answered");
    assert!(
        matches!(&out, ChargeOutcome::Paid(pay) if pay.status == PaymentStatus::Processing && pay.checkout_ref.as_deref() == Some("chk_processing")),
        "{out:?}"
    );
}

/// `No such PaymentMethod` from Stripe, as a create would get it.
fn missing_method(id: &str) -> String {
    let mut body: Value = serde_json::from_str(&error_body(
        "invalid_request_error",
        Some("resource_missing"),
        None,
        &format!("No such PaymentMethod: '{id}'"),
    ))
    .expect("error body");
    body["error"]["param"] = json!("payment_method");
    body.to_string()
}

/// A card Stripe does not know, another customer's, or one on no customer is "not found" and
/// nobody is charged; Stripe's `resource_missing` on the create too; rate limits, Stripe's own
/// errors and Stripe down are "unavailable"; an amount Stripe would refuse is never sent.
#[tokio::test]
async fn a_card_not_the_customers_is_not_found_and_stripes_trouble_is_unavailable() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let (customer, card) = member_with(&fake, &p, SUCCEEDS).await;
    let (_, theirs) = member_with(&fake, &p, SUCCEEDS).await;
    let loose = fake.save_card(None, SUCCEEDS, BASE);
    for (pm, why) in [
        ("pm_test_unknown", "unknown"),
        (theirs.as_str(), "another customer's"),
        (loose.as_str(), "on no customer"),
        ("", "empty"),
    ] {
        let e = p
            .charge_saved_card(&charge(&customer, pm, 500), &format!("k-{why}"))
            .await
            .expect_err(why);
        assert!(matches!(e, ProcessorError::NotFound), "{why}: {e:?}");
    }
    let e = p
        .charge_saved_card(&charge("", &card, 500), "k-no-customer")
        .await
        .expect_err("no customer");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    assert_eq!(creates(&fake), 0, "nobody was charged");

    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        400,
        missing_method(&card),
    );
    let e = p
        .charge_saved_card(&charge(&customer, &card, 500), "k-missing")
        .await
        .expect_err("missing");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");

    let rate_limited = || {
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        )
    };
    fake.script_for(Method::POST, "/v1/payment_intents", 429, rate_limited());
    let e = p
        .charge_saved_card(&charge(&customer, &card, 500), "k-429")
        .await
        .expect_err("429");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited")),
        "{e:?}"
    );
    fake.script_for(
        Method::POST,
        "/v1/payment_intents",
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p
        .charge_saved_card(&charge(&customer, &card, 500), "k-500")
        .await
        .expect_err("500");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    // The card's read rate limited: no charge tried.
    let before = creates(&fake);
    fake.script(429, rate_limited());
    let e = p
        .charge_saved_card(&charge(&customer, &card, 500), "k-429-read")
        .await
        .expect_err("429");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    assert_eq!(creates(&fake), before);

    let requests = fake.seen().len();
    let e = p
        .charge_saved_card(&charge(&customer, &card, 0), "k-zero")
        .await
        .expect_err("zero");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");
    assert_eq!(
        fake.seen().len(),
        requests,
        "refused before Stripe is called"
    );

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
        .charge_saved_card(&charge(&customer, &card, 500), "k-down")
        .await
        .expect_err("down");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    let e = down.list_payments(BASE, BASE + 60).await.expect_err("down");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
}

/// The requests a listing made since `before`, each a GET of `path` with no idempotency key.
fn listing(fake: &FakeStripe, before: usize, path: &str) -> Vec<HashMap<String, String>> {
    let seen = fake.seen().split_off(before);
    seen.iter()
        .map(|s| {
            assert_eq!((s.method.clone(), s.path.as_str()), (Method::GET, path));
            assert_headers(s, None);
            query(s)
        })
        .collect()
}

/// The query of a window's first page: `[BASE, until)`, Stripe's largest page.
fn window(until: i64) -> HashMap<String, String> {
    [
        ("created[gte]", BASE.to_string()),
        ("created[lt]", until.to_string()),
        ("limit", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Every PaymentIntent created in `[since, until)`, across Stripe's pages of 100 (the next page
/// starting after the last id of the one before), oldest first, each with its charge's card
/// and our checkout id from its metadata.
#[tokio::test]
async fn payments_in_a_window_are_listed_oldest_first_across_pages() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    fake.payment_at(BASE - 1, Some("chk_before"), true);
    let made: Vec<(String, Option<String>, bool)> = (0..103)
        .map(|i| {
            let checkout = (i % 2 == 0).then(|| format!("chk_{i}"));
            let paid = i % 5 != 4;
            (
                fake.payment_at(BASE + i, checkout.as_deref(), paid),
                checkout,
                paid,
            )
        })
        .collect();
    fake.payment_at(BASE + 103, Some("chk_at_until"), true);
    fake.payment_at(BASE + 500, None, true);

    let before = fake.seen().len();
    let listed = p.list_payments(BASE, BASE + 103).await.expect("listed");
    assert_eq!(listed.len(), 103);
    for (i, (pay, (id, checkout, paid))) in listed.iter().zip(&made).enumerate() {
        assert_eq!(&pay.id, id, "{i}");
        assert_eq!(pay.created, BASE + i64::try_from(i).expect("i"));
        assert_eq!(&pay.checkout_ref, checkout, "{i}");
        assert_eq!(pay.succeeded(), *paid, "{i}");
        assert_eq!(
            (pay.card_brand.as_str(), pay.card_last4.as_str()),
            ("Visa", "4242"),
            "the charge was expanded"
        );
    }
    assert_eq!(listed[4].last_error, Some(DeclineReason::InsufficientFunds));

    let pages = listing(&fake, before, "/v1/payment_intents");
    assert_eq!(pages.len(), 2, "100 and 3");
    for (i, q) in pages.iter().enumerate() {
        assert_eq!(q["created[gte]"], BASE.to_string());
        assert_eq!(q["created[lt]"], (BASE + 103).to_string());
        assert_eq!(q["limit"], "100");
        assert!(
            q.iter()
                .any(|(k, v)| k.starts_with("expand[") && v == "data.latest_charge"),
            "{q:?}"
        );
        // Newest first: the second page starts after the oldest of the first.
        let after = (i == 1).then(|| made[3].0.clone());
        assert_eq!(q.get("starting_after"), after.as_ref(), "page {i}");
    }

    // A window with nothing in it: one request, nothing; an empty window: no request.
    let before = fake.seen().len();
    assert!(p
        .list_payments(BASE + 200, BASE + 300)
        .await
        .expect("none")
        .is_empty());
    assert_eq!(listing(&fake, before, "/v1/payment_intents").len(), 1);
    let before = fake.seen().len();
    assert!(p.list_payments(BASE, BASE).await.expect("empty").is_empty());
    assert_eq!(fake.seen().len(), before);
}

/// Refunds of any payment and disputes created in the window, oldest first: ours with our refund
/// id, dashboard ones without; each naming its PaymentIntent.
#[tokio::test]
async fn refunds_and_disputes_in_a_window_are_listed_oldest_first() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let a = fake.payment_at(BASE - 50, Some("chk_a"), true);
    let b = fake.payment_at(BASE - 40, None, true);
    fake.refund_at(&a, BASE - 1, Some("ref_before"));
    let r1 = fake.refund_at(&a, BASE + 10, Some("ref_1"));
    let r2 = fake.refund_at(&b, BASE + 5, None);
    let r3 = fake.refund_at(&b, BASE + 10, Some("ref_3"));
    fake.refund_at(&a, BASE + 60, None);

    let before = fake.seen().len();
    let refunds = p
        .list_refunds_between(BASE, BASE + 60)
        .await
        .expect("refunds");
    let got: Vec<(&str, &str, Option<&str>, i64)> = refunds
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.payment.as_str(),
                r.refund_ref.as_deref(),
                r.created,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (r2.as_str(), b.as_str(), None, BASE + 5),
            (r1.as_str(), a.as_str(), Some("ref_1"), BASE + 10),
            (r3.as_str(), b.as_str(), Some("ref_3"), BASE + 10),
        ]
    );
    assert!(refunds
        .iter()
        .all(|r| r.status == RefundStatus::Succeeded && r.amount == Money::from_cents(500)));
    let pages = listing(&fake, before, "/v1/refunds");
    assert_eq!(
        pages,
        [window(BASE + 60)],
        "any payment's refunds, one page"
    );

    fake.dispute_at(&a, "fraudulent", BASE - 1);
    let d1 = fake.dispute_at(&a, "fraudulent", BASE + 20);
    let d2 = fake.dispute_at(&b, "duplicate", BASE + 3);
    fake.dispute_at(&b, "general", BASE + 60);
    let before = fake.seen().len();
    let disputes = p.list_disputes(BASE, BASE + 60).await.expect("disputes");
    let got: Vec<(&str, &str, &str, i64)> = disputes
        .iter()
        .map(|d| {
            (
                d.id.as_str(),
                d.payment.as_str(),
                d.reason.as_str(),
                d.created,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (d2.as_str(), b.as_str(), "duplicate", BASE + 3),
            (d1.as_str(), a.as_str(), "fraudulent", BASE + 20),
        ]
    );
    assert!(disputes.iter().all(|d| d.status == "needs_response"));
    assert_eq!(disputes[0].amount, Money::from_cents(1_500));
    let pages = listing(&fake, before, "/v1/disputes");
    assert_eq!(pages, [window(BASE + 60)]);
}

/// A server that keeps saying "more" is given up after 100 pages, and a page that fails fails
/// the listing: "unavailable", never a partial answer.
#[tokio::test]
async fn a_listing_that_never_ends_or_fails_midway_is_unavailable() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let page = |id: &str| {
        let dispute = dispute_object(
            id,
            "ch_test_loop",
            json!("pi_test_loop"),
            100,
            "needs_response",
            "fraudulent",
            BASE,
        );
        list_object(vec![dispute], true, "/v1/disputes").to_string()
    };
    for i in 0..100 {
        fake.script(200, page(&format!("dp_test_loop{i:03}")));
    }
    let before = fake.seen().len();
    let e = p.list_disputes(BASE, BASE + 60).await.expect_err("endless");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("100 pages")),
        "{e:?}"
    );
    let pages = listing(&fake, before, "/v1/disputes");
    assert_eq!(pages.len(), 100, "no page beyond the bound");
    assert_eq!(
        pages[99].get("starting_after").map(String::as_str),
        Some("dp_test_loop098")
    );

    fake.script(200, page("dp_test_first"));
    fake.script(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        ),
    );
    let e = p
        .list_disputes(BASE, BASE + 60)
        .await
        .expect_err("second page failed");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited")),
        "{e:?}"
    );
    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p
        .list_refunds_between(BASE, BASE + 60)
        .await
        .expect_err("500");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
}
