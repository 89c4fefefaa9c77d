//! Payment plans (issue 10), on both databases, through the sandbox: a member sets one up over
//! a statement (first instalment charged at once), is told before each later charge, autopay
//! charges on the due date; a bank that wants the member present leaves the instalment for the
//! page; a refused card is retried, then the plan is suspended and the practice alerted; a
//! worker that stopped mid-charge is taken over with the same key and charges once; the cap,
//! cancelling and refusals (minimum instalment, consent, someone else's statement).

use crate::cards::{card_id, save_card};
use crate::common::*;
use patriotpay::access::Role;
use patriotpay::ids::{PlanId, StatementId};
use patriotpay::payments::plans::{self, scheduler, Every, InstalmentRef, NOTICE_SECS};
use reqwest::StatusCode;

const OK_CARD: &str = "4242424242424242";
const AUTH_CARD: &str = "4000002760003184";
const DECLINING_CARD: &str = "4000000000000341";
const DAY: i64 = 86_400;

/// The set-up form posted for `statement` with `count` monthly instalments.
pub(crate) async fn post_plan(
    b: &Browser,
    statement: &StatementId,
    count: &str,
    card: &str,
    cap: &str,
    consent: bool,
) -> reqwest::Response {
    let csrf = b.csrf("/account/plans").await;
    let field = format!("plan_{statement}");
    let mut form = vec![
        ("csrf", csrf.as_str()),
        (field.as_str(), "1"),
        ("count", count),
        ("every", "month"),
        ("card", card),
        ("cap", cap),
    ];
    if consent {
        form.push(("consent", "1"));
    }
    b.post("/account/plans/new", &form).await
}

const EMAIL: &str = "plan@example.com";

/// Member of demo patient 1 with a saved card: (browser, card id).
async fn member_with_card(app: &TestApp, number: &str) -> (Browser, String) {
    let (b, _) = app.signed_in_member(1, EMAIL).await;
    let html = save_card(&b, app, number).await;
    let id = card_id(&html, &number[number.len() - 4..]);
    (b, id)
}

async fn only_plan(app: &TestApp) -> PlanId {
    let id: String = sqlx::query_scalar("SELECT id FROM payment_plans")
        .fetch_one(app.db().pool())
        .await
        .expect("one plan");
    PlanId::parse(&id).expect("plan id")
}

pub(crate) async fn instalment_status(app: &TestApp, seq: i64) -> String {
    sqlx::query_scalar("SELECT status FROM plan_instalments WHERE seq = $1")
        .bind(seq)
        .fetch_one(app.db().pool())
        .await
        .expect("instalment")
}

pub(crate) async fn due_at(app: &TestApp, seq: i64) -> i64 {
    sqlx::query_scalar("SELECT due_at FROM plan_instalments WHERE seq = $1")
        .bind(seq)
        .fetch_one(app.db().pool())
        .await
        .expect("instalment")
}

/// The member comes back after the clock moved on (their session has ended meanwhile).
async fn back_later(b: &Browser) {
    let r = member_sign_in(b, EMAIL, PASSWORD).await;
    assert_eq!(r.status(), SEE_OTHER, "signed in again");
}

/// Moves the test clock to `at` (never back).
pub(crate) fn clock_to(app: &TestApp, at: i64) {
    let now = app.state().clock.now();
    if at > now {
        app.state().clock.advance(at - now);
    }
}

pub(crate) async fn page_flash(b: &Browser, r: reqwest::Response) -> String {
    assert_eq!(r.status(), SEE_OTHER, "answered by a redirect");
    assert_eq!(location(&r), "/account/plans");
    b.page("/account/plans").await
}

async fn set_up_pays_first_then_notices_and_charges_on_time(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let parts = plans::split(patriotpay::money::Money::from_cents(before), 3).expect("split");
    let html = b.page("/account/plans").await;
    assert!(
        html.contains(&format!("name=\"plan_{statement}\"")),
        "{html}"
    );
    let cap = parts[0].plain();
    let html = page_flash(&b, post_plan(&b, &statement, "3", &card, &cap, true).await).await;
    assert!(html.contains(&t("plan-created")), "{html}");
    assert_eq!(
        balance(&app, &statement).await,
        before - parts[0].cents(),
        "first instalment paid at once"
    );
    assert_eq!(instalment_status(&app, 1).await, "paid");
    assert_eq!(instalment_status(&app, 2).await, "scheduled");
    // The statement is in a plan now: it is not offered for another.
    assert!(!b
        .page("/account/plans")
        .await
        .contains(&format!("name=\"plan_{statement}\"")));

    // Nothing happens before the notice is due; then the notice, and no charge yet.
    let due2 = due_at(&app, 2).await;
    let month = Every::Month.due(0, 1);
    assert!(due2 - app.state().clock.now() >= month - DAY, "a month on");
    clock_to(&app, due2 - NOTICE_SECS - 60);
    assert_eq!(app.run_autopay().await, 0, "nothing due yet");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM plan_instalments WHERE noticed_at IS NOT NULL")
            .await,
        1,
        "only the first, noticed by the form"
    );
    clock_to(&app, due2 - NOTICE_SECS);
    assert_eq!(app.run_autopay().await, 1, "the notice");
    back_later(&b).await;
    let html = b.page("/account/plans").await;
    let notice = ta(
        "plan-upcoming",
        &[
            ("amount", &parts[1].to_string()),
            (
                "card",
                &ta("plan-card", &[("brand", "Visa"), ("last4", "4242")]),
            ),
            ("date", &patriotpay::clock::display_date_unix(due2)),
        ],
    );
    assert!(text(&html).contains(&notice), "{html}");
    assert_eq!(balance(&app, &statement).await, before - parts[0].cents());
    clock_to(&app, due2);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "paid");
    assert_eq!(
        balance(&app, &statement).await,
        before - parts[0].cents() - parts[1].cents()
    );
    // The last one pays the statement off and completes the plan.
    let due3 = due_at(&app, 3).await;
    clock_to(&app, due3 - NOTICE_SECS);
    app.run_autopay().await;
    clock_to(&app, due3);
    app.run_autopay().await;
    assert_eq!(balance(&app, &statement).await, 0);
    let status: String = sqlx::query_scalar("SELECT status FROM payment_plans")
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    assert_eq!(status, "completed");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments").await,
        3,
        "one payment per instalment"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM plan_statements WHERE live = 1")
            .await,
        0,
        "the statement is free again"
    );
    // Nothing more is charged, however long we wait.
    app.state().clock.advance(400 * DAY);
    app.run_autopay().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 3);
    app.finish().await;
}

async fn refusals_record_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let big = "100000.00";
    // Without consent.
    let html = page_flash(&b, post_plan(&b, &statement, "2", &card, big, false).await).await;
    assert!(html.contains(&t("plan-consent-missing")), "{html}");
    // Below the practice's minimum, set by the CLI.
    let practice = app.tenant.to_string();
    let out = app.cli(&[
        "practices",
        "plan-minimum",
        "--practice",
        &practice,
        "100000.00",
    ]);
    assert!(out.status.success(), "{out:?}");
    let html = page_flash(&b, post_plan(&b, &statement, "2", &card, big, true).await).await;
    assert!(html.contains(&t("plan-below-minimum")), "{html}");
    let out = app.cli(&["practices", "plan-minimum", "--practice", &practice, "1.00"]);
    assert!(out.status.success(), "{out:?}");
    // A cap below the instalment.
    let html = page_flash(
        &b,
        post_plan(&b, &statement, "2", &card, "1.00", true).await,
    )
    .await;
    assert!(html.contains(&t("plan-cap-too-low")), "{html}");
    // Too many instalments, and a card that is not theirs.
    let html = page_flash(&b, post_plan(&b, &statement, "13", &card, big, true).await).await;
    assert!(html.contains(&t("plan-count")), "{html}");
    let html = page_flash(
        &b,
        post_plan(&b, &statement, "2", "pm_someone_else", big, true).await,
    )
    .await;
    assert!(html.contains(&t("plan-card-missing")), "{html}");
    // Another patient's statement is not found, and the refusal is on the audit trail.
    let other = app.statement_of(2).await;
    let r = post_plan(&b, &other, "2", &card, big, true).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_plans").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(balance(&app, &statement).await, before);
    // A card refused for the first instalment leaves no plan running.
    let html = save_card(&b, &app, DECLINING_CARD).await;
    let declining = card_id(&html, "0341");
    let html = page_flash(
        &b,
        post_plan(&b, &statement, "2", &declining, big, true).await,
    )
    .await;
    assert!(html.contains(&t("plan-first-declined")), "{html}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_plans WHERE status = 'canceled'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM plan_statements WHERE live = 1")
            .await,
        0
    );
    app.finish().await;
}

async fn authentication_required_is_paid_on_the_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, AUTH_CARD).await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let html = page_flash(
        &b,
        post_plan(&b, &statement, "2", &card, "100000.00", true).await,
    )
    .await;
    assert!(html.contains(&t("plan-created-confirm")), "{html}");
    assert!(
        html.contains(&t("plan-why-authentication_required")),
        "{html}"
    );
    assert_eq!(instalment_status(&app, 1).await, "action_required");
    assert_eq!(balance(&app, &statement).await, before, "nothing taken");
    // "Pay now": the processor's page, paid by the member there.
    let plan = only_plan(&app).await;
    let csrf = b.csrf("/account/plans").await;
    let r = b
        .post(
            "/account/plans/pay",
            &[("csrf", &csrf), ("plan", plan.as_str()), ("seq", "1")],
        )
        .await;
    assert_eq!(r.status(), SEE_OTHER);
    let page = location(&r);
    assert!(page.starts_with(&app.sandbox_url), "{page}");
    let r = b.card(&page, OK_CARD).await;
    assert_eq!(r.status(), SEE_OTHER);
    app.run_jobs().await;
    assert_eq!(instalment_status(&app, 1).await, "paid");
    let first: i64 = sqlx::query_scalar("SELECT amount_cents FROM plan_instalments WHERE seq = 1")
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    assert_eq!(balance(&app, &statement).await, before - first);
    // Someone else cannot pay (or see) this plan's instalments.
    let (other, _) = app.signed_in_member(2, "other@example.com").await;
    let csrf = other.csrf("/account/plans").await;
    let r = other
        .post(
            "/account/plans/cancel",
            &[("csrf", &csrf), ("plan", plan.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn refused_card_retries_then_suspends_and_alerts(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    let r = post_plan(&b, &statement, "2", &card, "100000.00", true).await;
    assert!(page_flash(&b, r).await.contains(&t("plan-created")));
    let paid_before = balance(&app, &statement).await;
    // The member's bank starts refusing: the plan is moved to a card the sandbox declines
    // (as if the card on file had been reissued to one that fails).
    let html = save_card(&b, &app, DECLINING_CARD).await;
    let declining = card_id(&html, "0341");
    sqlx::query("UPDATE payment_plans SET card_id = $1")
        .bind(&declining)
        .execute(app.db().pool())
        .await
        .unwrap();
    let due2 = due_at(&app, 2).await;
    clock_to(&app, due2 - NOTICE_SECS);
    app.run_autopay().await;
    clock_to(&app, due2);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "retrying");
    for wait in scheduler::RETRY_DELAYS {
        app.state().clock.advance(wait);
        app.run_autopay().await;
    }
    assert_eq!(instalment_status(&app, 2).await, "action_required");
    let status: String = sqlx::query_scalar("SELECT status FROM payment_plans")
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    assert_eq!(status, "suspended");
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM plan_instalments WHERE seq = 2")
        .fetch_one(app.db().pool())
        .await
        .unwrap();
    assert_eq!(attempts, 3, "tried three times in all");
    assert_eq!(
        balance(&app, &statement).await,
        paid_before,
        "nothing taken"
    );
    let plan = only_plan(&app).await;
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM alerts WHERE kind = 'payment-plan-suspended'")
            .fetch_one(app.db().pool())
            .await
            .expect("the practice is alerted");
    assert!(
        detail.contains(plan.as_str()) && detail.contains(app.tenant.as_str()),
        "{detail}"
    );
    assert!(
        !detail.contains("Avery") && !detail.contains("Whitlock"),
        "{detail}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'plan.suspended'")
            .await,
        1
    );
    // Suspended: no more autopay, however long; the page says so and offers "pay now".
    app.state().clock.advance(60 * DAY);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "action_required");
    back_later(&b).await;
    let html = b.page("/account/plans").await;
    assert!(html.contains(&t("plan-status-suspended")), "{html}");
    assert!(html.contains("/account/plans/pay"), "{html}");
    // The practice sees it on the patient's payments page.
    let (staff, _) = app
        .signed_in_staff("plans.admin@example.org", Role::PracticeAdmin)
        .await;
    let patient = patient_of(&app, 1).await;
    let html = staff
        .page(&format!("/staff/patients/{}/payments", patient.as_str()))
        .await;
    assert!(html.contains(&t("staff-plan-suspended")), "{html}");
    app.finish().await;
}

async fn a_stopped_worker_is_taken_over_with_the_same_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    let r = post_plan(&b, &statement, "2", &card, "100000.00", true).await;
    assert!(page_flash(&b, r).await.contains(&t("plan-created")));
    let plan = only_plan(&app).await;
    let due2 = due_at(&app, 2).await;
    clock_to(&app, due2 - NOTICE_SECS);
    app.run_autopay().await;
    clock_to(&app, due2);
    let s = app.state();
    let at = InstalmentRef { plan, seq: 2 };
    // A worker begins the charge and the processor takes the money; the worker stops before
    // writing anything, and the processor's event is not delivered either (it would book the
    // payment: reconciliation and events repair this too, tested elsewhere).
    app.running
        .as_ref()
        .expect("running")
        .sandbox
        .stop_webhooks();
    let begun = match scheduler::begin(&s.db, &s.alerts, &at, s.clock.now())
        .await
        .expect("begin")
    {
        scheduler::Begin::Ready(b) => b,
        scheduler::Begin::Done(step) => panic!("nothing to charge: {step:?}"),
    };
    let charged = s
        .processor
        .charge_saved_card(&begun.request, &begun.idempotency_key)
        .await
        .expect("charged");
    assert!(matches!(
        charged,
        patriotpay::payments::ChargeOutcome::Paid(_)
    ));
    drop(begun);
    // While its lease holds, nobody else touches it.
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "charging");
    // Past the lease another worker repeats the same request: the processor answers with the
    // same payment, which is booked once.
    app.state().clock.advance(301);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "paid");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(balance(&app, &statement).await, 0);
    app.finish().await;
}

async fn cap_and_cancel(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    let r = post_plan(&b, &statement, "3", &card, "100000.00", true).await;
    assert!(page_flash(&b, r).await.contains(&t("plan-created")));
    let plan = only_plan(&app).await;
    let after_first = balance(&app, &statement).await;
    // A cap below the next instalment: autopay asks instead of charging.
    let csrf = b.csrf("/account/plans").await;
    let r = b
        .post(
            "/account/plans/cap",
            &[("csrf", &csrf), ("plan", plan.as_str()), ("cap", "1.00")],
        )
        .await;
    assert!(page_flash(&b, r).await.contains(&t("plan-cap-changed")));
    let due2 = due_at(&app, 2).await;
    clock_to(&app, due2 - NOTICE_SECS);
    app.run_autopay().await;
    clock_to(&app, due2);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "action_required");
    assert_eq!(balance(&app, &statement).await, after_first);
    back_later(&b).await;
    assert!(b
        .page("/account/plans")
        .await
        .contains(&t("plan-why-over_cap")));
    // Cancelled: nothing more is charged and the statement is free for another plan.
    let csrf = b.csrf("/account/plans").await;
    let r = b
        .post(
            "/account/plans/cancel",
            &[("csrf", &csrf), ("plan", plan.as_str())],
        )
        .await;
    assert!(page_flash(&b, r).await.contains(&t("plan-canceled")));
    app.state().clock.advance(90 * DAY);
    app.run_autopay().await;
    assert_eq!(balance(&app, &statement).await, after_first);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM plan_instalments WHERE status = 'canceled'")
            .await,
        2
    );
    back_later(&b).await;
    assert!(b
        .page("/account/plans")
        .await
        .contains(&format!("name=\"plan_{statement}\"")));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'plan.canceled'")
            .await,
        1
    );
    app.finish().await;
}

async fn a_checkout_left_open_does_not_block_a_plan(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, card) = member_with_card(&app, OK_CARD).await;
    let statement = app.statement_of(1).await;
    // The member began paying on the processor's page and came back without paying.
    let csrf = b.csrf("/account").await;
    let pay = format!("pay_{statement}");
    let amount = format!("amount_{statement}");
    let r = b
        .post(
            "/account/pay",
            &[("csrf", &csrf), (&pay, "1"), (&amount, "5.00")],
        )
        .await;
    assert_eq!(r.status(), SEE_OTHER);
    assert!(location(&r).starts_with(&app.sandbox_url), "off to pay");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts WHERE status = 'open'")
            .await,
        1
    );
    let r = post_plan(&b, &statement, "2", &card, "100000.00", true).await;
    assert!(page_flash(&b, r).await.contains(&t("plan-created")));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts WHERE status = 'expired'")
            .await,
        1,
        "the checkout left open was expired"
    );
    assert_eq!(instalment_status(&app, 1).await, "paid");
    app.finish().await;
}

both_backends!(
    a_checkout_left_open_does_not_block_a_plan,
    set_up_pays_first_then_notices_and_charges_on_time,
    refusals_record_nothing,
    authentication_required_is_paid_on_the_page,
    refused_card_retries_then_suspends_and_alerts,
    a_stopped_worker_is_taken_over_with_the_same_key,
    cap_and_cancel,
);
