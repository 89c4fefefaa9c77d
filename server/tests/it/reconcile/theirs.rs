//! Reconciliation from the processor's side, on both databases: its own listing of the window
//! finds an off-session charge whose booking never happened (booked, once), a dispute whose
//! event was lost (recorded, the practice alerted, its status followed), a refund of a payment
//! older than the window (booked), and a payment on no checkout of ours (flagged); a dry run
//! reports all of it and changes nothing.

use super::{pay_unheard, run};
use crate::common::{balance, Backend, TestApp};
use crate::sandbox::charges::{charge, charge_checkout, member_with_card};
use patriotpay::ids::{CheckoutId, RefundId};
use patriotpay::money::Money;
use patriotpay::payments::sandbox::Sandbox;
use patriotpay::payments::{ChargeOutcome, PaymentProcessor, RefundReason, RefundRequest};
use std::sync::Arc;

both_backends!(
    an_off_session_charge_never_booked_is_booked_once,
    a_dispute_whose_event_was_lost_is_recorded_and_followed,
    a_dry_run_reports_lost_payments_and_disputes_and_changes_nothing,
    a_refund_of_an_older_payment_is_booked_from_the_listing,
    a_payment_on_no_checkout_of_ours_is_flagged,
);

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// Patient `n`'s member saves the 4242 card, then (its events lost) is charged `cents` for a
/// checkout of ours that the portal never booked; that checkout and the processor's payment.
async fn charge_unheard(app: &TestApp, n: usize, cents: i64) -> (CheckoutId, String) {
    let (_b, saved) =
        member_with_card(app, n, "reconcile.charge@example.org", "4242424242424242").await;
    let checkout = charge_checkout(app, &saved.user, n, cents).await;
    let sb = sandbox(app);
    sb.stop_webhooks();
    let outcome = sb
        .charge_saved_card(&charge(&saved, cents, &checkout), "plan-charge-1")
        .await
        .expect("charge");
    let ChargeOutcome::Paid(p) = outcome else {
        panic!("the 4242 card pays: {outcome:?}")
    };
    (checkout, p.id)
}

/// Every row of the tables a repair writes, counted.
async fn footprint(app: &TestApp) -> Vec<i64> {
    let mut counts = vec![];
    for table in [
        "payments",
        "payment_allocations",
        "ledger_entries",
        "refunds",
        "disputes",
        "audit_events",
        "alerts",
    ] {
        counts.push(app.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts.push(
        app.count("SELECT COUNT(*) FROM checkouts WHERE status = 'complete'")
            .await,
    );
    counts
}

async fn an_off_session_charge_never_booked_is_booked_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let (checkout, pi) = charge_unheard(&app, 1, 1500).await;
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    let f = &report.findings[0];
    assert!(f.repaired && f.kind == "payment-booked", "{f:?}");
    assert!(
        f.detail.contains(&pi)
            && f.detail.contains(checkout.as_str())
            && f.detail.ends_with(": booked"),
        "{f:?}"
    );
    assert_eq!(report.processor_payments_checked, 1);
    assert_eq!(
        report.checkouts_checked, 0,
        "it has no hosted session: ours cannot see it"
    );
    assert_eq!(balance(&app, &statement).await, before - 1500);
    let booked: String =
        sqlx::query_scalar("SELECT processor_payment_id FROM payments WHERE checkout_id = $1")
            .bind(checkout.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("booked");
    assert_eq!(booked, pi);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM checkouts WHERE id = '{checkout}' AND status = 'complete'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.reconcile.repair' AND actor = 'system:reconcile' AND resource = '{checkout}'")).await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.recorded' AND actor = 'system:reconcile'").await,
        1
    );

    // Again: nothing left to do, nothing moves.
    let after = footprint(&app).await;
    let again = run(&app, false).await;
    assert!(again.findings.is_empty(), "{:?}", again.findings);
    assert_eq!(again.payments_checked, 1, "now on our books");
    assert_eq!(footprint(&app).await, after);
    assert_eq!(balance(&app, &statement).await, before - 1500);
    app.finish().await;
}

async fn a_dispute_whose_event_was_lost_is_recorded_and_followed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let pi = pay_unheard(&app).await;
    run(&app, false).await;
    let ours: String = sqlx::query_scalar("SELECT id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("booked");
    let sb = sandbox(&app);
    let dispute = sb.open_dispute(&pi).await.expect("disputed");
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM disputes").await,
        0,
        "its event was lost"
    );

    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    let f = &report.findings[0];
    assert!(f.repaired && f.kind == "dispute-recorded", "{f:?}");
    assert!(
        f.detail.contains(&dispute) && f.detail.contains(&ours),
        "{f:?}"
    );
    assert_eq!(report.processor_disputes_checked, 1);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM disputes WHERE processor_dispute_id = '{dispute}' AND payment_id = '{ours}' AND status = 'needs_response'")).await,
        1
    );
    // As the webhook would have: the practice is alerted, the dispute audited.
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM alerts WHERE kind = 'payment-disputed' AND detail LIKE '%{dispute}%'")).await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.disputed' AND actor = 'system:reconcile'").await,
        1
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM audit_events WHERE action = 'payment.reconcile.repair' AND resource = '{ours}'")).await,
        1
    );
    assert!(run(&app, false).await.findings.is_empty());

    // The bank decides, and that event is lost too: the status is followed, once.
    assert!(sb.close_dispute(&dispute, false).await);
    let report = run(&app, false).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "dispute-updated");
    assert!(report.findings[0]
        .detail
        .contains("is lost where we recorded needs_response"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM disputes WHERE status = 'lost'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind = 'payment-disputed'")
            .await,
        1,
        "alerted once"
    );
    assert!(run(&app, false).await.findings.is_empty());
    app.finish().await;
}

/// A hosted payment booked; then, events lost, a hosted payment and an off-session charge never
/// booked, and a dispute on each of the three: the dry run reports the five repairs a real run
/// makes (a dispute on a payment still to be booked included) and changes nothing.
async fn a_dry_run_reports_lost_payments_and_disputes_and_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let booked = pay_unheard(&app).await;
    run(&app, false).await;
    let hosted = pay_unheard(&app).await;
    let (_, charged) = charge_unheard(&app, 2, 1500).await;
    let sb = sandbox(&app);
    for pi in [&booked, &hosted, &charged] {
        sb.open_dispute(pi).await.expect("disputed");
    }
    app.run_jobs().await;
    let before = footprint(&app).await;
    let expected = [
        "dispute-recorded",
        "dispute-recorded",
        "dispute-recorded",
        "payment-booked",
        "payment-booked",
    ];

    let dry = run(&app, true).await;
    let mut kinds: Vec<_> = dry.findings.iter().map(|f| f.kind).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, expected, "{:?}", dry.findings);
    assert!(dry
        .findings
        .iter()
        .all(|f| f.repaired && f.detail.contains(": would be")));
    assert_eq!(footprint(&app).await, before, "a dry run changes nothing");
    assert_eq!(
        run(&app, true).await.findings.len(),
        5,
        "and so reports the same again"
    );

    let real = run(&app, false).await;
    let mut kinds: Vec<_> = real.findings.iter().map(|f| f.kind).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, expected, "{:?}", real.findings);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM disputes").await, 3);
    assert!(run(&app, false).await.findings.is_empty());
    app.finish().await;
}

async fn a_refund_of_an_older_payment_is_booked_from_the_listing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let pi = pay_unheard(&app).await;
    run(&app, false).await;
    // Our payment dates from before the window (days ago, as far as our walk is concerned), so
    // only the processor's listing of the window's refunds can find the refund.
    sqlx::query("UPDATE payments SET paid_at = paid_at - 3 * 24 * 3600")
        .execute(app.db().pool())
        .await
        .expect("older");
    app.state()
        .processor
        .create_refund(
            &RefundRequest {
                payment: pi.clone(),
                amount: Money::from_cents(200),
                reason: RefundReason::RequestedByCustomer,
                refund_ref: RefundId::generate(),
            },
            "dashboard-refund-older",
        )
        .await
        .expect("refund");
    app.run_jobs().await;
    assert_eq!(
        balance(&app, &statement).await,
        before - 500,
        "its event was lost"
    );

    let dry = run(&app, true).await;
    assert_eq!(dry.findings.len(), 1, "{:?}", dry.findings);
    assert_eq!(balance(&app, &statement).await, before - 500);
    let report = run(&app, false).await;
    assert_eq!(report.payments_checked, 0, "ours is older than the window");
    assert_eq!(report.processor_refunds_checked, 1);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "refund-booked");
    assert!(report.findings[0].detail.contains(&pi));
    assert_eq!(balance(&app, &statement).await, before - 300);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refunds WHERE reason = 'made_at_processor' AND status = 'succeeded'").await,
        1
    );
    assert!(run(&app, false).await.findings.is_empty());
    assert_eq!(balance(&app, &statement).await, before - 300);
    app.finish().await;
}

/// Money taken for a checkout we have no record of: flagged for a person (processor ids and
/// the amount, nothing about a patient), alerted daily, and the command exits non-zero.
async fn a_payment_on_no_checkout_of_ours_is_flagged(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, saved) =
        member_with_card(&app, 1, "reconcile.unknown@example.org", "4242424242424242").await;
    let sb = sandbox(&app);
    sb.stop_webhooks();
    let stranger = CheckoutId::generate();
    let outcome = sb
        .charge_saved_card(&charge(&saved, 4200, &stranger), "not-ours")
        .await
        .expect("charge");
    let ChargeOutcome::Paid(p) = outcome else {
        panic!("{outcome:?}")
    };
    let report = run(&app, false).await;
    let flagged: Vec<_> = report.flagged().collect();
    assert_eq!(flagged.len(), 1, "{:?}", report.findings);
    assert_eq!(flagged[0].kind, "payment-unknown-to-ledger");
    assert!(
        flagged[0].detail.contains(&p.id) && flagged[0].detail.contains("4200 cents"),
        "{:?}",
        flagged[0]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    let now = app.state().clock.now();
    let window = reconcile_window(now);
    let s = app.state();
    patriotpay::payments::reconcile::run_and_alert(
        &s.db,
        &s.audit,
        s.processor.as_ref(),
        &s.alerts,
        window,
        now,
    )
    .await
    .expect("daily run");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind = 'payment-reconcile-difference' AND detail LIKE 'payment-unknown-to-ledger:%'").await,
        1
    );
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let cli = app.cli(&["payments", "reconcile", "--since", &today]);
    assert!(!cli.status.success(), "a difference needs a person");
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(out.contains("DIFFERS  payment-unknown-to-ledger"), "{out}");
    app.finish().await;
}

fn reconcile_window(now: i64) -> patriotpay::payments::reconcile::Window {
    patriotpay::payments::reconcile::Window {
        since: now - 24 * 3600,
        until: now + 1,
    }
}
