//! Reconciliation (issue 10): payments, refunds and disputes the processor has and our ledger
//! lacks are booked (audited as repairs), found from our records and from the processor's own
//! listing of the window (an off-session charge whose booking never happened, a refund of an
//! older payment), each once; a dry run changes nothing, and what cannot be repaired is
//! flagged. The sandbox is the processor, its events switched off to lose them.

use crate::common::{balance, location, Backend, TestApp, SEE_OTHER};
use patriotpay::ids::RefundId;
use patriotpay::money::Money;
use patriotpay::payments::reconcile::{self, Report, Window};
use patriotpay::payments::{PaymentProcessor, RefundReason, RefundRequest};

mod theirs;

both_backends!(
    a_payment_whose_event_was_lost_is_booked_once,
    a_refund_whose_event_was_lost_is_booked_once,
    a_payment_the_processor_does_not_know_is_flagged,
    a_refund_whose_processor_call_never_happened_is_asked_again_once,
    the_operator_commands_reconcile_list_and_retry,
);

pub(crate) async fn run(app: &TestApp, dry_run: bool) -> Report {
    let now = app.state().clock.now();
    reconcile::run(
        app.db(),
        &app.state().audit,
        app.state().processor.as_ref(),
        &app.state().alerts,
        Window {
            since: now - 24 * 3600,
            until: now + 1,
        },
        dry_run,
        now,
        &|_, _| {},
    )
    .await
    .expect("reconcile")
}

/// Patient 1 pays $5.00 while the processor's events are lost; returns its payment id there.
pub(crate) async fn pay_unheard(app: &TestApp) -> String {
    let sandbox = app.running.as_ref().expect("running").sandbox.clone();
    sandbox.stop_webhooks();
    let b = app.verified_visitor(1).await;
    let r = b.pay("5.00").await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout = location(&r);
    assert_eq!(
        b.card(&checkout, "4242 4242 4242 4242").await.status(),
        SEE_OTHER
    );
    let session = checkout.rsplit('/').next().expect("id");
    sandbox
        .retrieve_checkout(session)
        .await
        .expect("checkout")
        .payment_intent
        .expect("paid")
}

async fn a_payment_whose_event_was_lost_is_booked_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    pay_unheard(&app).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    let dry = run(&app, true).await;
    assert_eq!(dry.findings.len(), 1, "{:?}", dry.findings);
    assert!(dry.findings[0].repaired && dry.findings[0].detail.contains("would be booked"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments").await,
        0,
        "a dry run changes nothing"
    );

    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "payment-booked");
    assert_eq!(report.flagged().count(), 0);
    assert_eq!(balance(&app, &statement).await, before - 500);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.reconcile.repair' AND actor = 'system:reconcile'").await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.recorded' AND actor = 'system:reconcile'").await,
        1
    );
    // Again: nothing left to do.
    let again = run(&app, false).await;
    assert!(again.findings.is_empty(), "{:?}", again.findings);
    assert_eq!(again.payments_checked, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
        1
    );
    app.finish().await;
}

async fn a_refund_whose_event_was_lost_is_booked_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let pi = pay_unheard(&app).await;
    run(&app, false).await;
    assert_eq!(balance(&app, &statement).await, before - 500);
    // A refund made at the processor (its dashboard) whose event is lost too.
    app.state()
        .processor
        .create_refund(
            &RefundRequest {
                payment: pi.clone(),
                amount: Money::from_cents(200),
                reason: RefundReason::RequestedByCustomer,
                refund_ref: RefundId::generate(),
            },
            "dashboard-refund-1",
        )
        .await
        .expect("refund");
    let dry = run(&app, true).await;
    assert_eq!(dry.findings.len(), 1, "{:?}", dry.findings);
    assert_eq!(dry.findings[0].kind, "refund-booked");
    assert_eq!(balance(&app, &statement).await, before - 500);

    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(balance(&app, &statement).await, before - 300);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refunds WHERE reason = 'made_at_processor' AND status = 'succeeded'").await,
        1
    );
    assert!(run(&app, false).await.findings.is_empty());
    assert_eq!(balance(&app, &statement).await, before - 300);
    app.finish().await;
}

async fn a_payment_the_processor_does_not_know_is_flagged(backend: Backend) {
    let app = TestApp::start(backend).await;
    pay_unheard(&app).await;
    run(&app, false).await;
    app.running
        .as_ref()
        .expect("running")
        .sandbox
        .forget_everything()
        .await;
    let report = run(&app, false).await;
    let flagged: Vec<_> = report.flagged().collect();
    assert_eq!(flagged.len(), 1, "{:?}", report.findings);
    assert_eq!(flagged[0].kind, "payment-unknown-to-processor");
    // The ledger is left alone: a person decides.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
        1
    );
    app.finish().await;
}

/// A crash between recording an admin's refund and calling the processor (or a processor that
/// never answered): the row waits as requested; reconciliation looks for it at the processor by
/// our id, finds nothing, asks again with the saved idempotency key, and books it, once.
async fn a_refund_whose_processor_call_never_happened_is_asked_again_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    pay_unheard(&app).await;
    run(&app, false).await;
    let (payment, tenant): (String, String) = sqlx::query_as("SELECT id, tenant_id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("payment");
    let refund = RefundId::generate();
    let now = app.state().clock.now();
    sqlx::query(
        "INSERT INTO refunds (id, tenant_id, payment_id, amount_cents, reason, idempotency_key, status, requested_by, created_at)
         VALUES ($1, $2, $3, 150, 'billing_error', $4, 'requested', 'usr_test', $5)",
    )
    .bind(refund.as_str())
    .bind(&tenant)
    .bind(&payment)
    .bind(format!("refund-{refund}"))
    .bind(now)
    .execute(app.db().pool())
    .await
    .expect("requested refund");
    // Too fresh: the first call may still be under way.
    assert!(run(&app, false).await.findings.is_empty());
    app.state().clock.advance(301);
    let dry = run(&app, true).await;
    assert_eq!(dry.findings.len(), 1, "{:?}", dry.findings);
    assert_eq!(dry.findings[0].kind, "refund-resumed");
    assert_eq!(balance(&app, &statement).await, before - 500);

    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(balance(&app, &statement).await, before - 350);
    let (status, processor_id): (String, Option<String>) =
        sqlx::query_as("SELECT status, processor_refund_id FROM refunds WHERE id = $1")
            .bind(refund.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("refund");
    assert_eq!(status, "succeeded");
    let processor_id = processor_id.expect("the processor's id saved");
    let at_processor = app
        .state()
        .processor
        .list_refunds(&pay_intent(&app).await)
        .await
        .expect("refunds");
    assert_eq!(at_processor.len(), 1, "asked once");
    assert_eq!(at_processor[0].id, processor_id);
    assert!(run(&app, false).await.findings.is_empty());
    assert_eq!(balance(&app, &statement).await, before - 350);
    app.finish().await;
}

async fn pay_intent(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT processor_payment_id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("payment")
}

/// `payments reconcile`, `payments events` and `payments retry-event`, as an operator runs them
/// beside the server: the sandbox's records are in the same database.
async fn the_operator_commands_reconcile_list_and_retry(backend: Backend) {
    let app = TestApp::start(backend).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    pay_unheard(&app).await;
    let out = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let dry = app.cli(&["payments", "reconcile", "--since", &today, "--dry-run"]);
    assert!(dry.status.success(), "{}", out(&dry));
    assert!(out(&dry).contains("would be booked"), "{}", out(&dry));
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    let real = app.cli(&["payments", "reconcile", "--since", &today]);
    assert!(real.status.success(), "{}", out(&real));
    assert!(
        out(&real).contains("1 repaired, 0 difference(s)"),
        "{}",
        out(&real)
    );
    assert!(
        out(&real).contains("and the processor's 1 payment(s), 0 refund(s) and 0 dispute(s)"),
        "{}",
        out(&real)
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);

    let bad = app.cli(&["payments", "reconcile", "--since", "30 November"]);
    assert!(!bad.status.success());
    assert!(out(&bad).contains("is not a date like"), "{}", out(&bad));

    // A dead event, listed with its reason, then put back to work.
    let body = serde_json::json!({
        "id": "evt_cli_dead", "object": "event", "type": "charge.refunded",
        "data": { "object": { "id": "ch_test_none" } },
    })
    .to_string();
    crate::common::post_webhook(&app, &body).await;
    app.run_jobs().await;
    let listed = app.cli(&["payments", "events"]);
    assert!(listed.status.success(), "{}", out(&listed));
    let line = out(&listed)
        .lines()
        .find(|l| l.contains("evt_cli_dead"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("dead") && line.contains("names no payment"),
        "{}",
        out(&listed)
    );
    let retried = app.cli(&["payments", "retry-event", "evt_cli_dead"]);
    assert!(retried.status.success(), "{}", out(&retried));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM processor_events WHERE event_id = 'evt_cli_dead' AND state = 'pending' AND attempts = 0").await,
        1
    );
    let unknown = app.cli(&["payments", "retry-event", "evt_nope"]);
    assert!(!unknown.status.success());
    assert!(
        out(&unknown).contains("no waiting or dead event"),
        "{}",
        out(&unknown)
    );
    app.finish().await;
}
