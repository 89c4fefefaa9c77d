//! Saved cards through the Stripe processor, against the fake: a Customer carrying only our
//! member ref, a setup-mode Checkout Session that saves a card on it (form fields, headers,
//! idempotency), the customer's cards listed newest first across pages, a card removed only
//! from its own customer, and each kind of failure on these calls.

use super::fake::{FakeStripe, Seen};
use super::objects::error_body;
use super::{KEY, STRIPE_VERSION};
use axum::http::Method;
use patriotpay::config::Secret;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings, CHECKOUT_LIFETIME_SECS};
use patriotpay::payments::{
    CheckoutStatus, PaymentProcessor, ProcessorError, SavedCard, SetupRequest,
};
use std::collections::HashMap;

const VISA: (&str, &str, i64, i64) = ("visa", "4242", 12, 2034);
const AMEX: (&str, &str, i64, i64) = ("amex", "8431", 3, 2031);

fn last(fake: &FakeStripe) -> Seen {
    fake.seen().pop().expect("a request")
}

fn query(s: &Seen) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&s.query)
        .expect("query")
        .into_iter()
        .collect()
}

fn sorted_keys(form: &HashMap<String, String>) -> Vec<&str> {
    let mut keys: Vec<&str> = form.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Stripe's headers on a request we made: the key, the pinned API version, and an
/// idempotency key on writes only (the one given).
fn assert_headers(s: &Seen, idempotency_key: Option<&str>) {
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(s.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(s.header("idempotency-key"), idempotency_key, "{s:?}");
    if s.method == Method::POST && !s.body.is_empty() {
        assert_eq!(
            s.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
}

fn setup(customer: &str, created_at: i64) -> SetupRequest {
    let setup_ref = format!("set_{created_at}");
    SetupRequest {
        customer: customer.to_owned(),
        success_url: format!(
            "https://pay.example/account/cards/return/{setup_ref}?session_id={{CHECKOUT_SESSION_ID}}"
        ),
        cancel_url: format!("https://pay.example/account/cards/cancelled/{setup_ref}"),
        setup_ref,
        created_at,
    }
}

fn card(id: &str, (brand, last4, exp_month, exp_year): (&str, &str, i64, i64)) -> SavedCard {
    SavedCard {
        id: id.to_owned(),
        // Stripe's code as people read it ("visa" is shown "Visa").
        brand: match brand {
            "visa" => "Visa",
            "amex" => "American Express",
            other => other,
        }
        .to_owned(),
        last4: last4.to_owned(),
        exp_month: u8::try_from(exp_month).expect("month"),
        exp_year: i32::try_from(exp_year).expect("year"),
    }
}

/// What `create_customer` sends: our member ref in bracketed metadata and nothing else, with
/// Stripe's headers and the idempotency key; a retry with the key gets the same customer.
#[tokio::test]
async fn a_customer_carries_only_the_member_ref() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let id = p
        .create_customer("mem_01JDPATRIOT", "customer-key-1")
        .await
        .expect("customer");
    assert!(id.starts_with("cus_test_"), "{id}");

    let s = last(&fake);
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/customers")
    );
    assert_headers(&s, Some("customer-key-1"));
    assert!(s.query.is_empty(), "{}", s.query);
    let form = s.form();
    assert_eq!(
        sorted_keys(&form),
        ["metadata[member]"],
        "no email, name, phone, address or description: {}",
        s.body
    );
    assert_eq!(form["metadata[member]"], "mem_01JDPATRIOT");
    assert!(
        [
            "metadata%5Bmember%5D=mem_01JDPATRIOT",
            "metadata[member]=mem_01JDPATRIOT"
        ]
        .contains(&s.body.as_str()),
        "the whole body, one bracketed field: {}",
        s.body
    );
    {
        let f = fake.state.lock().expect("fake");
        let stored = &f.customers[&id];
        for field in [
            "email",
            "name",
            "phone",
            "description",
            "address",
            "individual_name",
        ] {
            assert!(stored[field].is_null(), "{field}: {stored}");
        }
    }

    // A retry after a lost answer: the same customer, not a second one.
    let again = p
        .create_customer("mem_01JDPATRIOT", "customer-key-1")
        .await
        .expect("replay");
    assert_eq!(again, id);
    assert_eq!(fake.state.lock().expect("fake").customers.len(), 1);
    // The key with another member: Stripe's idempotency error, refused.
    let e = p
        .create_customer("mem_01JDOTHER", "customer-key-1")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );
    // Another member, another key: another customer.
    let other = p
        .create_customer("mem_01JDOTHER", "customer-key-2")
        .await
        .expect("customer");
    assert_ne!(other, id);

    // Nothing Stripe can never take leaves the portal.
    let before = fake.seen().len();
    for (member, key) in [("", "customer-key-3"), ("mem_x", "")] {
        let e = p.create_customer(member, key).await.expect_err("refused");
        assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");
    }
    assert_eq!(fake.seen().len(), before);
}

/// What `create_setup_checkout` sends: setup mode on the member's customer, cards only, USD
/// (required in setup mode without `payment_method_types`), our attempt's id, the return URLs
/// and a payment session's lifetime; the session reads back as open and unpaid; the member saves
/// a card on Stripe's page and it is listed with its brand, last four and expiry.
#[tokio::test]
async fn a_setup_session_saves_a_card_on_the_members_customer() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let customer = p
        .create_customer("mem_01JDSETUP", "customer-setup")
        .await
        .expect("customer");
    let now = patriotpay::clock::now_unix();
    let req = setup(&customer, now);
    let created = p
        .create_setup_checkout(&req, "setup-key-1")
        .await
        .expect("session");
    assert!(
        created
            .url
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{}",
        created.url
    );
    assert_eq!(created.status, CheckoutStatus::Open);
    assert!(!created.paid);
    assert!(created.amount_total.cents() == 0, "no money moves");
    assert_eq!(
        created.client_reference_id.as_deref(),
        Some(req.setup_ref.as_str())
    );
    assert_eq!(created.payment_intent, None);

    let s = last(&fake);
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/checkout/sessions")
    );
    assert_headers(&s, Some("setup-key-1"));
    let form = s.form();
    assert_eq!(
        sorted_keys(&form),
        [
            "allowed_payment_method_types[0]",
            "cancel_url",
            "client_reference_id",
            "currency",
            "customer",
            "expires_at",
            "mode",
            "success_url",
        ],
        "nothing else: no line items, no metadata, no email: {}",
        s.body
    );
    assert_eq!(form["mode"], "setup");
    assert_eq!(form["customer"], customer);
    assert_eq!(form["currency"], "usd");
    assert_eq!(form["allowed_payment_method_types[0]"], "card");
    assert_eq!(form["client_reference_id"], req.setup_ref);
    assert_eq!(form["success_url"], req.success_url);
    assert_eq!(form["cancel_url"], req.cancel_url);
    assert_eq!(
        form["expires_at"],
        (now + CHECKOUT_LIFETIME_SECS).to_string(),
        "a payment session's lifetime, from when our attempt was recorded"
    );
    {
        let f = fake.state.lock().expect("fake");
        let stored = &f.sessions[&created.id];
        assert_eq!(stored["payment_status"], "no_payment_required");
        assert!(stored["setup_intent"]
            .as_str()
            .is_some_and(|i| i.starts_with("seti_")));
    }

    // A retry with the key: the same session; with other parameters: refused.
    let again = p
        .create_setup_checkout(&req, "setup-key-1")
        .await
        .expect("replay");
    assert_eq!(again.id, created.id);
    let e = p
        .create_setup_checkout(&setup(&customer, now + 1), "setup-key-1")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );

    // Nothing saved yet; the member enters a card on Stripe's page; the session is complete,
    // still unpaid, and the card is the customer's.
    assert!(p.list_cards(&customer).await.expect("cards").is_empty());
    let pm = fake.complete_setup(&created.id, VISA);
    let read = p.retrieve_checkout(&created.id).await.expect("read");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Complete, false));
    assert_eq!(
        p.list_cards(&customer).await.expect("cards"),
        [card(&pm, VISA)]
    );

    // A customer Stripe does not know: not found (Stripe answers 400 resource_missing).
    let e = p
        .create_setup_checkout(&setup("cus_test_unknown", now), "setup-key-2")
        .await
        .expect_err("unknown customer");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    // A session that cannot work is refused before Stripe is called.
    let before = fake.seen().len();
    let mut no_id = setup(&customer, now);
    no_id.success_url = "https://pay.example/account/cards/return".into();
    for (bad, key) in [
        (no_id, "setup-key-3"),
        (setup("", now), "setup-key-4"),
        (setup(&customer, now), ""),
    ] {
        let e = p.create_setup_checkout(&bad, key).await.expect_err("bad");
        assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");
    }
    assert_eq!(fake.seen().len(), before);
}

/// Every card of the customer, newest first, across Stripe's pages of 100; only cards asked
/// for; nobody else's; an unknown customer is not found.
#[tokio::test]
async fn cards_are_listed_newest_first_across_pages() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let customer = p.create_customer("mem_many", "c-many").await.expect("c");
    let other = p.create_customer("mem_other", "c-other").await.expect("c");
    let none = p.create_customer("mem_none", "c-none").await.expect("c");
    fake.save_card(Some(&other), AMEX, 1_700_000_500);
    // Saved out of order: listed by when each was saved, newest first.
    let mut made: Vec<(i64, String)> = (0..205)
        .map(|i| {
            let created = 1_700_000_000 + (i * 7919) % 205;
            let last4 = format!("{:04}", 1000 + i);
            let id = fake.save_card(Some(&customer), ("visa", &last4, 1 + i % 12, 2030), created);
            (created, id)
        })
        .collect();
    made.sort_by_key(|(created, _)| std::cmp::Reverse(*created));

    let before = fake.seen().len();
    let listed = p.list_cards(&customer).await.expect("cards");
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    let expected: Vec<&str> = made.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, expected);
    assert!(listed
        .iter()
        .all(|c| c.brand == "Visa" && c.exp_year == 2030));
    assert!(listed
        .iter()
        .all(|c| c.last4.len() == 4 && (1..=12).contains(&c.exp_month)));

    let pages: Vec<Seen> = fake.seen().split_off(before);
    assert_eq!(pages.len(), 3, "three pages: 100, 100 and 5");
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(
            (page.method.clone(), page.path.clone()),
            (
                Method::GET,
                format!("/v1/customers/{customer}/payment_methods")
            )
        );
        assert_headers(page, None);
        let q = query(page);
        assert_eq!(q["type"], "card");
        assert_eq!(q["limit"], "100");
        let after = (i > 0).then(|| made[100 * i - 1].1.clone());
        assert_eq!(q.get("starting_after"), after.as_ref(), "page {i}");
    }

    assert!(p.list_cards(&none).await.expect("none").is_empty());
    let e = p.list_cards("cus_test_unknown").await.expect_err("unknown");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
}

/// A card is removed only from the customer that holds it: the card is read first, and
/// another customer's card, a card on no customer or an unknown one is "not found" with no
/// detach sent; the member's own card is detached and no longer listed.
#[tokio::test]
async fn a_card_is_removed_only_from_its_own_customer() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let mine = p.create_customer("mem_mine", "c-mine").await.expect("c");
    let theirs = p
        .create_customer("mem_theirs", "c-theirs")
        .await
        .expect("c");
    let my_card = fake.save_card(Some(&mine), VISA, 1_700_000_000);
    let my_other = fake.save_card(Some(&mine), AMEX, 1_700_000_100);
    let their_card = fake.save_card(Some(&theirs), AMEX, 1_700_000_200);
    let loose = fake.save_card(None, VISA, 1_700_000_300);

    for card in [their_card.as_str(), loose.as_str(), "pm_test_unknown"] {
        let before = fake.seen().len();
        let e = p.remove_card(&mine, card).await.expect_err("not mine");
        assert!(matches!(e, ProcessorError::NotFound), "{card}: {e:?}");
        let sent = fake.seen().split_off(before);
        assert_eq!(sent.len(), 1, "only read, never detached: {sent:?}");
        assert_eq!(
            (sent[0].method.clone(), sent[0].path.clone()),
            (Method::GET, format!("/v1/payment_methods/{card}"))
        );
        assert_headers(&sent[0], None);
    }
    assert_eq!(
        p.list_cards(&theirs).await.expect("theirs"),
        [card(&their_card, AMEX)],
        "their card is still theirs"
    );
    for (customer, card) in [("", my_card.as_str()), (mine.as_str(), "")] {
        let e = p.remove_card(customer, card).await.expect_err("nothing");
        assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    }

    let before = fake.seen().len();
    p.remove_card(&mine, &my_card).await.expect("removed");
    let sent = fake.seen().split_off(before);
    let calls: Vec<(Method, String)> = sent
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (Method::GET, format!("/v1/payment_methods/{my_card}")),
            (
                Method::POST,
                format!("/v1/payment_methods/{my_card}/detach")
            ),
        ]
    );
    assert_headers(&sent[1], None);
    assert!(
        sent[1].body.is_empty(),
        "detach sends nothing: {}",
        sent[1].body
    );
    assert_eq!(
        p.list_cards(&mine).await.expect("mine"),
        [card(&my_other, AMEX)]
    );
    // Removed already: it is on no customer now, so not found.
    let e = p.remove_card(&mine, &my_card).await.expect_err("gone");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
}

/// Each kind of failure on the saved-card calls: rate limiting (one request: the client does
/// not retry), an idempotency key in use, Stripe's own errors, a body that is no Stripe object,
/// a restricted key without the permission (the key never shown), a refused detach, and Stripe
/// unreachable.
#[tokio::test]
async fn each_error_on_saved_cards_is_sorted() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let customer = p.create_customer("mem_err", "c-err").await.expect("c");
    let pm = fake.save_card(Some(&customer), VISA, 1_700_000_000);
    let no_key = |e: &ProcessorError| {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains(KEY) && !text.contains("Restricted"),
            "{text}"
        );
    };
    let rate_limited = || {
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        )
    };
    let server_error = || error_body("api_error", None, None, "An unknown error occurred");

    let before = fake.seen().len();
    fake.script(429, rate_limited());
    let e = p.create_customer("mem_x", "k-429").await.expect_err("429");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited") && m.contains("429")),
        "{e:?}"
    );
    assert_eq!(
        fake.seen().len(),
        before + 1,
        "one request: no retry in the client"
    );
    fake.script(429, rate_limited());
    let e = p.list_cards(&customer).await.expect_err("429");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");

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
        .create_setup_checkout(&setup(&customer, 1_000), "k-409")
        .await
        .expect_err("409");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency") && m.contains("409")),
        "{e:?}"
    );

    fake.script(500, server_error());
    let e = p
        .create_setup_checkout(&setup(&customer, 1_000), "k-500")
        .await
        .expect_err("500");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("500")),
        "{e:?}"
    );
    fake.script(502, "<html>Bad Gateway</html>".into());
    let e = p.create_customer("mem_x", "k-502").await.expect_err("502");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    fake.script(200, r#"{"object":"list","data":[{"id":1}]}"#.into());
    let e = p.list_cards(&customer).await.expect_err("unreadable");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("unreadable")),
        "{e:?}"
    );

    // A restricted key without "PaymentMethods" answers 403; Stripe's message names the key.
    fake.script(
        403,
        error_body(
            "invalid_request_error",
            None,
            None,
            &format!("The provided key '{KEY}' does not have the required permissions"),
        ),
    );
    let e = p.remove_card(&customer, &pm).await.expect_err("403");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("403")),
        "{e:?}"
    );
    no_key(&e);

    // The card is read, then Stripe fails the detach: unavailable, and the card is still saved.
    let detach = format!("/v1/payment_methods/{pm}/detach");
    fake.script_for(Method::POST, &detach, 500, server_error());
    let e = p.remove_card(&customer, &pm).await.expect_err("500");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("detach") && m.contains("500")),
        "{e:?}"
    );
    assert_eq!(p.list_cards(&customer).await.expect("cards").len(), 1);
    // Stripe refuses the detach (it was detached in between): rejected, with no request value.
    fake.script_for(
        Method::POST,
        &detach,
        400,
        error_body(
            "invalid_request_error",
            None,
            None,
            "The payment method you provided is not attached to a customer so detachment is impossible.",
        ),
    );
    let e = p.remove_card(&customer, &pm).await.expect_err("400");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("detach payment method") && m.contains("400")),
        "{e:?}"
    );
    // None of it removed the card or made a second customer; the next attempt works.
    assert_eq!(fake.state.lock().expect("fake").customers.len(), 1);
    p.remove_card(&customer, &pm).await.expect("removed");
    assert!(p.list_cards(&customer).await.expect("cards").is_empty());

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
    for e in [
        down.create_customer("mem_x", "k-down")
            .await
            .expect_err("down"),
        down.create_setup_checkout(&setup(&customer, 1_000), "k-down")
            .await
            .expect_err("down"),
        down.list_cards(&customer).await.expect_err("down"),
        down.remove_card(&customer, &pm).await.expect_err("down"),
    ] {
        assert!(
            matches!(&e, ProcessorError::Unavailable(m) if m.contains("network")),
            "{e:?}"
        );
        no_key(&e);
    }
}
