//! Processor events exactly once (issue 10): the webhook stores a verified event as a job and
//! answers; the job queue books it. Duplicates, reverse order, two deliveries at the same
//! moment, a worker that dies holding a job, and disputes, on both databases. The sandbox is
//! the processor; events are also posted by hand (signed), as Stripe would send them.

use crate::common::{balance, location, post_webhook, Backend, Browser, TestApp, SEE_OTHER};
use patriotpay::payments::sandbox::Sandbox;
use patriotpay::payments::PaymentProcessor;
use reqwest::StatusCode;
use std::sync::Arc;

both_backends!(
    a_duplicate_event_books_once,
    events_in_reverse_order_book_once,
    two_deliveries_at_the_same_moment_book_once,
    a_worker_that_dies_holding_a_job_is_replaced,
    an_event_the_webhook_left_unfinished_is_worked_by_the_queue,
    a_dispute_flags_the_payment_and_alerts_once,
    an_event_that_contradicts_our_records_is_kept_dead_and_alerted,
);

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// An event of `kind` about `object` (and, for charges and disputes, its payment), signed as
/// the processor signs it. The portal re-reads the object; the body only names it.
pub(crate) fn event(id: &str, kind: &str, object: &str, payment: Option<&str>) -> String {
    let mut obj = serde_json::json!({ "id": object });
    if let Some(p) = payment {
        obj["payment_intent"] = serde_json::json!(p);
    }
    serde_json::json!({
        "id": id, "object": "event", "type": kind, "created": 1_700_000_000,
        "data": { "object": obj },
    })
    .to_string()
}

/// Patient 1 pays $5.00 with the sandbox's events switched off: the processor has the money,
/// the portal has heard nothing. Returns the browser, the processor's checkout and payment.
pub(crate) async fn paid_unheard(app: &TestApp) -> (Browser, String, String) {
    sandbox(app).stop_webhooks();
    let b = app.verified_visitor(1).await;
    let r = b.pay("5.00").await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout_url = location(&r);
    let session = checkout_url.rsplit('/').next().expect("id").to_owned();
    let r = b.card(&checkout_url, "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER, "the processor took the money");
    let pc = sandbox(app)
        .retrieve_checkout(&session)
        .await
        .expect("checkout");
    let pi = pc.payment_intent.expect("a payment");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments").await,
        0,
        "not heard yet"
    );
    (b, session, pi)
}

pub(crate) async fn booked(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM payments").await,
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
    )
}

async fn job_states(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT event_id, state FROM processor_events ORDER BY event_id")
        .fetch_all(app.db().pool())
        .await
        .expect("jobs")
}

async fn a_duplicate_event_books_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let before = balance(&app, &app.statement_of(1).await).await;
    let (_b, session, _) = paid_unheard(&app).await;
    let ev = event("evt_dup", "checkout.session.completed", &session, None);
    for duplicate in [false, true, true] {
        let r = post_webhook(&app, &ev).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["duplicate"], duplicate);
    }
    app.run_jobs().await;
    assert_eq!(booked(&app).await, (1, 1));
    assert_eq!(
        balance(&app, &app.statement_of(1).await).await,
        before - 500
    );
    assert_eq!(
        job_states(&app).await,
        vec![("evt_dup".into(), "done".into())]
    );
    app.finish().await;
}

/// Stripe does not promise order. Whatever arrives first, the session and payment as the
/// processor has them now decide, and the payment is booked once.
async fn events_in_reverse_order_book_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, session, pi) = paid_unheard(&app).await;
    // The payment's own event first: its metadata names our checkout, so it books the payment;
    // the session's events then find it booked and change nothing.
    for (id, kind, object) in [
        ("evt_1", "payment_intent.succeeded", pi.as_str()),
        (
            "evt_2",
            "checkout.session.async_payment_succeeded",
            session.as_str(),
        ),
        ("evt_3", "checkout.session.completed", session.as_str()),
    ] {
        let r = post_webhook(&app, &event(id, kind, object, None)).await;
        assert_eq!(r.status(), StatusCode::OK, "{kind}");
    }
    app.run_jobs().await;
    assert_eq!(booked(&app).await, (1, 1));
    let outcomes: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, outcome FROM processor_events ORDER BY event_id")
            .fetch_all(app.db().pool())
            .await
            .expect("outcomes");
    assert_eq!(
        outcomes,
        vec![
            ("evt_1".into(), "recorded".into()),
            ("evt_2".into(), "no-change".into()),
            ("evt_3".into(), "no-change".into()),
        ]
    );
    app.finish().await;
}

/// The same event twice at once, and two different events about the same payment at once:
/// concurrent deliveries, one payment.
async fn two_deliveries_at_the_same_moment_book_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, session, _) = paid_unheard(&app).await;
    let same = event("evt_same", "checkout.session.completed", &session, None);
    let other = event(
        "evt_other",
        "checkout.session.async_payment_succeeded",
        &session,
        None,
    );
    let (a, b, c) = tokio::join!(
        post_webhook(&app, &same),
        post_webhook(&app, &same),
        post_webhook(&app, &other)
    );
    for r in [a, b, c] {
        assert_eq!(r.status(), StatusCode::OK);
    }
    app.run_jobs().await;
    assert_eq!(booked(&app).await, (1, 1));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM processor_events WHERE state = 'done'")
            .await,
        2
    );
    app.finish().await;
}

/// A worker claims a job and dies before booking (the process crashed between the processor's
/// charge being confirmed and our write). Nobody else takes the job while its lease runs; once
/// it lapses the queue works it, once.
async fn a_worker_that_dies_holding_a_job_is_replaced(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, session, _) = paid_unheard(&app).await;
    let ev: patriotpay::payments::EventEnvelope = serde_json::from_str(&event(
        "evt_crash",
        "checkout.session.completed",
        &session,
        None,
    ))
    .expect("event");
    let now = app.state().clock.now();
    let claimed = patriotpay::payments::jobs::enqueue_claimed(&app.state().audit, &ev, now)
        .await
        .expect("stored");
    assert!(claimed.is_some(), "the first worker holds it");
    let again = patriotpay::payments::jobs::enqueue_claimed(&app.state().audit, &ev, now)
        .await
        .expect("stored");
    assert!(
        again.is_none(),
        "a second delivery is a duplicate, not a second job"
    );
    // …and dies. Meanwhile no one else may take it.
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(booked(&app).await, (0, 0));
    // The lease lapses; the next worker takes it over and books it once.
    app.state().clock.advance(301);
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(booked(&app).await, (1, 1));
    assert_eq!(app.run_jobs().await, 0);
    let attempts: i64 = app
        .count("SELECT attempts FROM processor_events WHERE event_id = 'evt_crash'")
        .await;
    assert_eq!(attempts, 2);
    app.finish().await;
}

/// With no time to work an event before answering (the acknowledgement budget at zero), the
/// webhook still stores it and answers 200; the queue books it.
async fn an_event_the_webhook_left_unfinished_is_worked_by_the_queue(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.webhook_ack_ms = 0).await;
    let (_b, session, _) = paid_unheard(&app).await;
    let r = post_webhook(
        &app,
        &event("evt_later", "checkout.session.completed", &session, None),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.run_jobs().await;
    // The webhook's own task may have finished first; either way, booked exactly once.
    for _ in 0..600 {
        if app
            .count("SELECT COUNT(*) FROM processor_events WHERE state = 'done'")
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        app.run_jobs().await;
    }
    assert_eq!(booked(&app).await, (1, 1));
    app.finish().await;
}

/// A chargeback: the payment is flagged for staff (a dispute row), audited, and the practice
/// alerted once however many times the processor speaks of it.
async fn a_dispute_flags_the_payment_and_alerts_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, session, pi) = paid_unheard(&app).await;
    post_webhook(
        &app,
        &event("evt_paid", "checkout.session.completed", &session, None),
    )
    .await;
    app.run_jobs().await;
    assert_eq!(booked(&app).await, (1, 1));
    let dispute = sandbox(&app).open_dispute(&pi).await.expect("a dispute");
    // Webhooks are off: the processor's event, by hand, twice, and an update.
    for id in ["evt_dp1", "evt_dp2"] {
        post_webhook(
            &app,
            &event(id, "charge.dispute.created", &dispute, Some(&pi)),
        )
        .await;
    }
    post_webhook(
        &app,
        &event("evt_dp3", "charge.dispute.updated", &dispute, Some(&pi)),
    )
    .await;
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM disputes").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind = 'payment-disputed'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.disputed'")
            .await,
        1
    );
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM alerts WHERE kind = 'payment-disputed'")
            .fetch_one(app.db().pool())
            .await
            .expect("alert");
    assert!(
        detail.contains(&dispute) && detail.contains("fraudulent"),
        "{detail}"
    );
    // Money stays booked: a dispute is not a refund until it is lost.
    assert_eq!(booked(&app).await, (1, 1));
    app.finish().await;
}

/// An event retrying cannot help (here a refund event naming no payment): acknowledged, kept
/// as dead with its reason, one alert, and never worked again.
async fn an_event_that_contradicts_our_records_is_kept_dead_and_alerted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = post_webhook(
        &app,
        &event("evt_bad", "charge.refunded", "ch_test_nothing", None),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "acknowledged: a retry would find the same"
    );
    app.run_jobs().await;
    assert_eq!(
        job_states(&app).await,
        vec![("evt_bad".into(), "dead".into())]
    );
    let (error,): (String,) =
        sqlx::query_as("SELECT last_error FROM processor_events WHERE event_id = 'evt_bad'")
            .fetch_one(app.db().pool())
            .await
            .expect("job");
    assert!(error.contains("names no payment"), "{error}");
    let alerts: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM alerts WHERE kind = 'payment-event-not-recorded'")
            .fetch_all(app.db().pool())
            .await
            .expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("evt_bad"), "{}", alerts[0]);
    app.state().clock.advance(7 * 24 * 3600);
    assert_eq!(app.run_jobs().await, 0, "a dead job is not worked again");
    app.finish().await;
}
