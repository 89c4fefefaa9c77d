//! Refunds, disputes and bank debits through the Stripe processor, against the fake: what a
//! refund sends (form fields, bracketed metadata keys, headers), Stripe's refusals as staff will
//! read them, listing across pages, disputes with their payment, a bank-debit session and its
//! processing payment, and each kind of failure on these calls.

use super::fake::{FakeStripe, Seen};
use super::objects::error_body;
use super::{request, KEY, STRIPE_VERSION};
use axum::http::Method;
use patriotpay::config::Secret;
use patriotpay::ids::RefundId;
use patriotpay::money::Money;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings};
use patriotpay::payments::{
    CheckoutStatus, MethodKind, PaymentProcessor, PaymentStatus, ProcessorError, RefundReason,
    RefundRequest, RefundStatus,
};
use std::collections::HashMap;

/// A checkout paid by card at the fake; its PaymentIntent's id.
async fn paid(fake: &FakeStripe, p: &StripeProcessor, cents: i64) -> String {
    let created = p
        .create_checkout(
            &request(cents),
            &format!("checkout-{}", RefundId::generate()),
        )
        .await
        .expect("created");
    fake.pay(&created.id, true);
    p.retrieve_checkout(&created.id)
        .await
        .expect("read")
        .payment_intent
        .expect("pi")
}

fn refund(pi: &str, cents: i64, reason: RefundReason) -> RefundRequest {
    RefundRequest {
        payment: pi.to_owned(),
        amount: Money::from_cents(cents),
        reason,
        refund_ref: RefundId::generate(),
    }
}

fn last(fake: &FakeStripe) -> Seen {
    fake.seen().pop().expect("a request")
}

fn query(s: &Seen) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&s.query)
        .expect("query")
        .into_iter()
        .collect()
}

/// What `create_refund` sends and reads back; Stripe's idempotency; its refusals.
#[tokio::test]
async fn a_refund_sends_our_ids_in_bracketed_metadata_with_stripes_headers() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let pi = paid(&fake, &p, 5_000).await;

    let req = refund(&pi, 1_000, RefundReason::Duplicate);
    let done = p
        .create_refund(&req, "refund-key-1")
        .await
        .expect("refunded");
    assert!(done.id.starts_with("re_"), "{}", done.id);
    assert_eq!(done.payment, pi);
    assert_eq!(done.amount, Money::from_cents(1_000));
    assert_eq!(done.currency, "usd");
    assert_eq!(done.status, RefundStatus::Succeeded);
    assert_eq!(done.refund_ref.as_deref(), Some(req.refund_ref.as_str()));

    let s = last(&fake);
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/refunds")
    );
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(s.header("idempotency-key"), Some("refund-key-1"));
    assert_eq!(s.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(
        s.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = s.form();
    let mut keys: Vec<&str> = form.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "metadata[reason]",
            "metadata[refund]",
            "payment_intent",
            "reason"
        ],
        "{}",
        s.body
    );
    assert_eq!(form["payment_intent"], pi);
    assert_eq!(form["amount"], "1000");
    assert_eq!(form["reason"], "duplicate");
    assert_eq!(form["metadata[refund]"], req.refund_ref.as_str());
    assert_eq!(form["metadata[reason]"], "duplicate");

    // A retry with the same key: the same refund, not a second one.
    let again = p.create_refund(&req, "refund-key-1").await.expect("replay");
    assert_eq!(again.id, done.id);
    assert_eq!(fake.state.lock().expect("fake").refunds.len(), 1);
    // The key with other parameters: Stripe's idempotency error, refused.
    let mut other = req.clone();
    other.amount = Money::from_cents(1_001);
    let e = p
        .create_refund(&other, "refund-key-1")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );

    // Reasons Stripe does not have travel in metadata only.
    let req = refund(&pi, 500, RefundReason::BillingError);
    let done = p
        .create_refund(&req, "refund-key-2")
        .await
        .expect("refunded");
    assert_eq!(done.amount, Money::from_cents(500));
    let form = last(&fake).form();
    assert!(!form.contains_key("reason"), "{form:?}");
    assert_eq!(form["metadata[reason]"], "billing_error");
    p.create_refund(
        &refund(&pi, 500, RefundReason::RequestedByCustomer),
        "refund-key-3",
    )
    .await
    .expect("refunded");
    assert_eq!(last(&fake).form()["reason"], "requested_by_customer");

    // $30.00 is left: $30.01 is more than that, as Stripe says it (no code, `param: amount`).
    let e = p
        .create_refund(
            &refund(&pi, 3_001, RefundReason::Overpayment),
            "refund-key-4",
        )
        .await
        .expect_err("too much");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("more than is left")),
        "{e:?}"
    );
    p.create_refund(
        &refund(&pi, 3_000, RefundReason::Overpayment),
        "refund-key-5",
    )
    .await
    .expect("the rest");
    let e = p
        .create_refund(&refund(&pi, 1, RefundReason::Overpayment), "refund-key-6")
        .await
        .expect_err("nothing left");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("already fully refunded") && m.contains("charge_already_refunded")),
        "{e:?}"
    );
    // An unknown payment is not found.
    let e = p
        .create_refund(
            &refund("pi_test_unknown", 1, RefundReason::Duplicate),
            "refund-key-7",
        )
        .await
        .expect_err("unknown");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    // A refund the processor can never make is refused before any request.
    let before = fake.seen().len();
    let e = p
        .create_refund(&refund(&pi, 0, RefundReason::Duplicate), "refund-key-8")
        .await
        .expect_err("zero");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");
    assert_eq!(fake.seen().len(), before);
}

/// Every refund of a payment, across Stripe's pages of 100, oldest first; an unknown payment is
/// not found; a payment without refunds has none.
#[tokio::test]
async fn refunds_are_listed_oldest_first_across_pages() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let pi = paid(&fake, &p, 90_000).await;
    let other = paid(&fake, &p, 1_000).await;
    fake.refund_in_dashboard(&other, 100, 1_700_000_000);
    let made: Vec<String> = (0..205)
        .map(|i| fake.refund_in_dashboard(&pi, 100 + i, 1_700_000_000 + i))
        .collect();

    let before = fake.seen().len();
    let listed = p.list_refunds(&pi).await.expect("listed");
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, made.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(listed
        .iter()
        .all(|r| r.payment == pi && r.status == RefundStatus::Succeeded && r.refund_ref.is_none()));
    assert_eq!(listed[0].amount, Money::from_cents(100));
    assert_eq!(listed[204].created, 1_700_000_204);

    let pages: Vec<Seen> = fake.seen().split_off(before);
    assert_eq!(pages.len(), 3, "three pages: 100, 100 and 5");
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(
            (page.method.clone(), page.path.as_str()),
            (Method::GET, "/v1/refunds")
        );
        let q = query(page);
        assert_eq!(q["payment_intent"], pi);
        assert_eq!(q["limit"], "100");
        // Stripe lists newest first: each page starts after the oldest of the page before.
        let after = (i > 0).then(|| made[made.len() - 100 * i].clone());
        assert_eq!(q.get("starting_after"), after.as_ref(), "page {i}");
        assert!(
            page.header("idempotency-key").is_none(),
            "reads carry no key"
        );
    }

    assert!(p
        .list_refunds(&paid(&fake, &p, 700).await)
        .await
        .expect("none")
        .is_empty());
    let e = p
        .list_refunds("pi_test_unknown")
        .await
        .expect_err("unknown");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
}

/// A dispute read from Stripe names its payment whether Stripe sends the PaymentIntent's id or
/// the expanded object; a disputed payment cannot be refunded.
#[tokio::test]
async fn a_dispute_is_read_with_its_payment_and_blocks_refunds() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let pi = paid(&fake, &p, 4_200).await;
    let dispute = fake.dispute(&pi, "fraudulent", false);
    let id = dispute["id"].as_str().expect("id");
    let read = p.retrieve_dispute(id).await.expect("dispute");
    assert_eq!(read.id, id);
    assert_eq!(read.payment, pi);
    assert_eq!(read.amount, Money::from_cents(4_200));
    assert_eq!(read.currency, "usd");
    assert_eq!(read.status, "needs_response");
    assert_eq!(read.reason, "fraudulent");
    assert_eq!(read.created, dispute["created"].as_i64().expect("created"));
    let s = last(&fake);
    assert_eq!(
        (s.method.clone(), s.path.clone()),
        (Method::GET, format!("/v1/disputes/{id}"))
    );

    let e = p
        .create_refund(
            &refund(&pi, 100, RefundReason::Duplicate),
            "refund-disputed",
        )
        .await
        .expect_err("disputed");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("disputed") && m.contains("charge_disputed")),
        "{e:?}"
    );

    let other = paid(&fake, &p, 1_500).await;
    let expanded = fake.dispute(&other, "duplicate", true);
    assert!(expanded["payment_intent"].is_object());
    let read = p
        .retrieve_dispute(expanded["id"].as_str().expect("id"))
        .await
        .expect("dispute");
    assert_eq!(
        (read.payment.as_str(), read.reason.as_str()),
        (other.as_str(), "duplicate")
    );

    let e = p
        .retrieve_dispute("dp_test_unknown")
        .await
        .expect_err("unknown");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
}

/// A practice that takes bank debits: the session allows cards (Apple Pay and Google Pay with
/// them) and US bank accounts; paid by ACH, the payment reads as processing, by bank account,
/// with the bank's name and the account's last four, nothing received yet, not refundable yet.
#[tokio::test]
async fn a_bank_debit_session_allows_us_bank_accounts_and_its_payment_is_processing() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let mut req = request(2_500);
    req.bank_debit = true;
    let created = p
        .create_checkout(&req, "checkout-bank")
        .await
        .expect("created");
    let form = last(&fake).form();
    assert_eq!(form["allowed_payment_method_types[0]"], "card");
    assert_eq!(form["allowed_payment_method_types[1]"], "us_bank_account");
    assert!(!form.contains_key("allowed_payment_method_types[2]"));
    assert!(
        !form.keys().any(|k| k.starts_with("payment_method_types")),
        "removed from Checkout Sessions at this API version: {form:?}"
    );
    assert_eq!(
        fake.state.lock().expect("fake").sessions[&created.id]["payment_method_types"],
        serde_json::json!(["card", "us_bank_account"])
    );

    fake.pay_by_bank(&created.id);
    let read = p.retrieve_checkout(&created.id).await.expect("read");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Complete, false));
    let payment = p
        .retrieve_payment(read.payment_intent.as_deref().expect("pi"))
        .await
        .expect("payment");
    assert_eq!(payment.status, PaymentStatus::Processing);
    assert!(!payment.succeeded());
    assert_eq!(payment.method, MethodKind::UsBankAccount);
    assert_eq!(
        (payment.card_brand.as_str(), payment.card_last4.as_str()),
        ("STRIPE TEST BANK", "6789")
    );
    assert_eq!(payment.amount, Money::from_cents(2_500));
    assert_eq!(payment.amount_received, Money::ZERO);
    assert_eq!(payment.last_error, None);

    let e = p
        .create_refund(
            &refund(&payment.id, 100, RefundReason::Duplicate),
            "refund-processing",
        )
        .await
        .expect_err("not yet");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("cannot be refunded")),
        "{e:?}"
    );

    // A card payment's method is a card.
    let pi = paid(&fake, &p, 300).await;
    let card = p.retrieve_payment(&pi).await.expect("payment");
    assert_eq!(
        (card.status, card.method),
        (PaymentStatus::Succeeded, MethodKind::Card)
    );
}

/// Each kind of failure on the refund and dispute calls: a card error, rate limiting (one
/// request: the client does not retry, the event queue does), an idempotency conflict, Stripe's
/// own errors and Stripe unreachable.
#[tokio::test]
async fn each_error_on_refunds_and_disputes_is_sorted() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let pi = paid(&fake, &p, 5_000).await;
    let req = refund(&pi, 1_000, RefundReason::Duplicate);
    let calls = || fake.seen().len();

    fake.script(
        402,
        error_body(
            "card_error",
            Some("card_declined"),
            Some("generic_decline"),
            "Your card was declined.",
        ),
    );
    let e = p.create_refund(&req, "k-402").await.expect_err("declined");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("card error") && m.contains("card_declined")),
        "{e:?}"
    );

    let before = calls();
    fake.script(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        ),
    );
    let e = p.create_refund(&req, "k-429").await.expect_err("429");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited") && m.contains("429")),
        "{e:?}"
    );
    assert_eq!(calls(), before + 1, "one request: no retry in the client");
    fake.script(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests",
        ),
    );
    let e = p.list_refunds(&pi).await.expect_err("429");
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
    let e = p.create_refund(&req, "k-409").await.expect_err("409");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency") && m.contains("409")),
        "{e:?}"
    );

    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p.create_refund(&req, "k-500").await.expect_err("500");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("500")),
        "{e:?}"
    );
    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p.retrieve_dispute("dp_test_x").await.expect_err("500");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    fake.script(502, "<html>Bad Gateway</html>".into());
    let e = p.list_refunds(&pi).await.expect_err("502");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
    // None of it made a refund; the next attempt does.
    assert!(fake.state.lock().expect("fake").refunds.is_empty());
    p.create_refund(&req, "k-after").await.expect("refunded");

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
        down.create_refund(&req, "k-down").await.expect_err("down"),
        down.list_refunds(&pi).await.expect_err("down"),
        down.retrieve_dispute("dp_test_x").await.expect_err("down"),
    ] {
        assert!(
            matches!(&e, ProcessorError::Unavailable(m) if m.contains("network")),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains(KEY));
    }
}
