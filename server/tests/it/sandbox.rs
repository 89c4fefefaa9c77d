//! The sandbox processor keeps its objects in the database and speaks bank debits (issue 10),
//! on both databases: a restart keeps an open checkout payable and redelivers the event the
//! portal never heard; a US bank debit through the hosted page is booked as processing, then
//! settles (or fails and is reversed) when the sandbox settles it; a processing debit cannot be
//! refunded, a settled one's refund is pending until it settles in turn. Time is driven with the
//! sandbox's hooks (`settle_bank_debits`, `deliver_pending`), never by sleeping.

use crate::common::*;
use patriotpay::ids::RefundId;
use patriotpay::money::Money;
use patriotpay::payments::sandbox::{Sandbox, TEST_BANK};
use patriotpay::payments::{ProcessorError, RefundReason, RefundRequest};
use reqwest::{Response, StatusCode};
use std::sync::Arc;

pub(crate) mod charges;

const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// Debits settle only when a test says so (a day is longer than any test).
async fn start(backend: Backend) -> TestApp {
    TestApp::start_with(backend, |c| c.sandbox_settle_secs = 86_400).await
}

/// Pays on the sandbox page at `checkout_url` from a US bank account.
async fn bank(b: &Browser, checkout_url: &str, routing: &str, account: &str) -> Response {
    let page = b.client.get(checkout_url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(
        html.contains(&t("sandbox-bank-title")),
        "the practice takes bank debits: the page offers them"
    );
    b.client
        .post(checkout_url)
        .form(&[
            ("csrf", csrf_in(&html).as_str()),
            ("method", "us_bank_account"),
            ("routing_number", routing),
            ("account_number", account),
        ])
        .send()
        .await
        .expect("bank POST")
}

/// Patient 1 starts a $5.00 checkout; the browser and the sandbox page's URL.
async fn five_dollar_checkout(app: &TestApp) -> (Browser, String) {
    let b = app.verified_visitor(1).await;
    let r = b.pay("5.00").await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout = location(&r);
    assert!(checkout.starts_with(&app.sandbox_url), "{checkout}");
    (b, checkout)
}

/// Our one payment: status, method, brand, last four.
async fn our_payment(app: &TestApp) -> (String, String, String, String) {
    sqlx::query_as("SELECT status, method, card_brand, card_last4 FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("one payment")
}

async fn processor_payment(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT processor_payment_id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("one payment")
}

async fn undelivered(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM sandbox_events WHERE delivered_at IS NULL")
        .await
}

fn refund(payment: &str, cents: i64) -> RefundRequest {
    RefundRequest {
        payment: payment.to_owned(),
        amount: Money::from_cents(cents),
        reason: RefundReason::RequestedByCustomer,
        refund_ref: RefundId::generate(),
    }
}

async fn a_restart_keeps_checkouts_and_redelivers_events(backend: Backend) {
    let mut app = start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let (b, checkout) = five_dollar_checkout(&app).await;

    // The checkout outlives the process that opened it.
    app.restart().await;
    // The portal cannot be reached when the card is paid: the event stays in the outbox.
    sandbox(&app).stop_webhooks();
    let r = b.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER, "the restarted sandbox took the card");
    let back = location(&r);
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(undelivered(&app).await, 1, "the event waits in the outbox");

    // A second restart: the new process finds the event and delivers it (now, by the hook,
    // rather than when its retry falls due).
    app.restart().await;
    sandbox(&app).deliver_pending().await;
    app.run_jobs().await;
    assert_eq!(undelivered(&app).await, 0, "delivered after the restart");
    let (status, method, brand, last4) = our_payment(&app).await;
    assert_eq!(
        (
            status.as_str(),
            method.as_str(),
            brand.as_str(),
            last4.as_str()
        ),
        ("succeeded", "card", "Visa", "4242")
    );
    assert_eq!(balance(&app, &statement).await, before - 500);
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/"), "{receipt}");
    // Delivered once: a later sweep finds nothing to send.
    assert_eq!(sandbox(&app).deliver_pending().await, 0);
    app.finish().await;
}

async fn a_bank_debit_is_processing_until_it_settles(backend: Backend) {
    let app = start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let (b, checkout) = five_dollar_checkout(&app).await;

    // Only Stripe's test numbers, each refusal a field error on the page.
    for (routing, account, field) in [
        ("021000021", "000123456789", "routing-number"),
        ("110000000", "000987654321", "account-number"),
    ] {
        let r = bank(&b, &checkout, routing, account).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.expect("body");
        assert!(html.contains(&format!("id=\"{field}-error\"")), "{html}");
    }

    let r = bank(&b, &checkout, "110000000", "000123456789").await;
    assert_eq!(r.status(), SEE_OTHER, "the debit started");
    let back = location(&r);
    app.run_jobs().await;
    let (status, method, brand, last4) = our_payment(&app).await;
    assert_eq!(
        (
            status.as_str(),
            method.as_str(),
            brand.as_str(),
            last4.as_str()
        ),
        ("processing", "us_bank_account", TEST_BANK, "6789")
    );
    assert_eq!(
        balance(&app, &statement).await,
        before - 500,
        "the patient is not asked to pay twice"
    );
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/"), "{receipt}");
    b.page(&receipt).await;

    // Not refundable while processing.
    let pi = processor_payment(&app).await;
    let processor = app.state().processor.clone();
    assert!(matches!(
        processor.create_refund(&refund(&pi, 100), "early").await,
        Err(ProcessorError::Rejected(_))
    ));

    assert_eq!(sandbox(&app).settle_bank_debits().await, 1);
    app.run_jobs().await;
    assert_eq!(our_payment(&app).await.0, "succeeded");
    assert_eq!(balance(&app, &statement).await, before - 500);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'reversal'")
            .await,
        0
    );

    // Settled, it can be refunded; the refund goes back by ACH and is booked when it settles.
    let r = processor
        .create_refund(&refund(&pi, 200), "later")
        .await
        .expect("refund of a settled debit");
    assert_eq!(r.status, patriotpay::payments::RefundStatus::Pending);
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'refund'")
            .await,
        0,
        "pending: not on the ledger yet"
    );
    assert_eq!(sandbox(&app).settle_bank_debits().await, 1);
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refunds WHERE status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(balance(&app, &statement).await, before - 300);
    assert_eq!(undelivered(&app).await, 0);
    app.finish().await;
}

async fn a_failed_bank_debit_is_reversed(backend: Backend) {
    let app = start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let (b, checkout) = five_dollar_checkout(&app).await;
    let r = bank(&b, &checkout, "110000000", "000111111116").await;
    assert_eq!(r.status(), SEE_OTHER);
    app.run_jobs().await;
    assert_eq!(our_payment(&app).await.0, "processing");
    assert_eq!(balance(&app, &statement).await, before - 500);

    assert_eq!(sandbox(&app).settle_bank_debits().await, 1);
    app.run_jobs().await;
    let (status, _, _, last4) = our_payment(&app).await;
    assert_eq!((status.as_str(), last4.as_str()), ("failed", "1116"));
    assert_eq!(
        balance(&app, &statement).await,
        before,
        "the balance is due again"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'reversal'")
            .await,
        1
    );
    let pi = processor_payment(&app).await;
    assert!(matches!(
        app.state()
            .processor
            .create_refund(&refund(&pi, 100), "failed")
            .await,
        Err(ProcessorError::Rejected(_))
    ));
    // Settled once: nothing more to settle, nothing moves again.
    assert_eq!(sandbox(&app).settle_bank_debits().await, 0);
    app.finish().await;
}

/// Sixteen submits of one checkout at once, a barrier releasing them together, one in four
/// with a good card: the database lets exactly one complete it, its payment is the good
/// card's, and the portal books it once.
async fn concurrent_submits_complete_a_checkout_once(backend: Backend) {
    let app = start(backend).await;
    let (b, checkout) = five_dollar_checkout(&app).await;
    let html = b.page(&checkout).await;
    let csrf = csrf_in(&html);
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = vec![];
    for i in 0..16 {
        let (client, url, csrf, barrier) = (
            b.client.clone(),
            checkout.clone(),
            csrf.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let card = if i % 4 == 0 {
                "4242424242424242"
            } else {
                "4000000000000002"
            };
            barrier.wait().await;
            let r = client
                .post(&url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("card_number", card),
                    ("exp", "12 / 34"),
                    ("cvc", "123"),
                ])
                .send()
                .await
                .expect("POST");
            r.headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .is_some_and(|l| l.contains("/pay/return/"))
        }));
    }
    let mut completed = 0;
    for t in tasks {
        if t.await.expect("task") {
            completed += 1;
        }
    }
    assert_eq!(completed, 1, "one submit completes the checkout");
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_payments WHERE status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_payments").await, 1);
    let (status, _, brand, last4) = our_payment(&app).await;
    assert_eq!(
        (status.as_str(), brand.as_str(), last4.as_str()),
        ("succeeded", "Visa", "4242")
    );
    app.finish().await;
}

both_backends!(
    concurrent_submits_complete_a_checkout_once,
    a_restart_keeps_checkouts_and_redelivers_events,
    a_bank_debit_is_processing_until_it_settles,
    a_failed_bank_debit_is_reversed,
);
