//! Refunds (issue 10), through the staff payments page like a practice admin's browser: part
//! then the rest, over-refunding, a disputed payment, a role without `IssueRefund`, two admins
//! at once, and a refund made in the processor's dashboard booked once. Both databases.

use crate::common::{
    balance, location, patient_of, post_webhook, t, ta, text, Backend, Browser, TestApp, SEE_OTHER,
};
use patriotpay::access::Role;
use patriotpay::ids::{PatientId, RefundId, StatementId};
use patriotpay::money::Money;
use patriotpay::payments::sandbox::Sandbox;
use patriotpay::payments::{PaymentProcessor, RefundReason, RefundRequest};
use reqwest::StatusCode;
use std::sync::Arc;

both_backends!(
    an_admin_refunds_part_then_the_rest,
    an_over_refund_is_refused_and_nothing_reaches_the_processor,
    a_disputed_payment_is_refused,
    a_support_agent_cannot_refund,
    two_refunds_of_everything_at_once_only_one_succeeds,
    a_dashboard_refund_is_booked_once,
    a_bank_payment_processing_or_failed_is_told_and_not_refunded,
    a_household_refund_goes_back_on_the_patient_it_was_issued_for,
);

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// A $5.00 card payment by patient 1 from a pay link, booked. Returns the patient's browser,
/// the receipt's path, our payment id and the processor's.
struct Paid {
    patient: Browser,
    receipt: String,
    payment: String,
    processor_payment: String,
    statement: StatementId,
    patient_id: PatientId,
    /// The statement's balance before the payment.
    before: i64,
}

async fn paid_five_dollars(app: &TestApp) -> Paid {
    let statement = app.statement_of(1).await;
    let before = balance(app, &statement).await;
    let b = app.verified_visitor(1).await;
    let r = b.pay("5.00").await;
    assert_eq!(r.status(), SEE_OTHER);
    let back = location(&b.card(&location(&r), "4242 4242 4242 4242").await);
    app.run_jobs().await;
    let back = back.trim_start_matches(&app.url).to_owned();
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"), "receipt: {receipt}");
    let payment = receipt.rsplit('/').next().expect("id").to_owned();
    let processor_payment: String =
        sqlx::query_scalar("SELECT processor_payment_id FROM payments WHERE id = $1")
            .bind(&payment)
            .fetch_one(app.db().pool())
            .await
            .expect("payment");
    assert_eq!(balance(app, &statement).await, before - 500);
    Paid {
        patient: b,
        receipt,
        payment,
        processor_payment,
        statement,
        patient_id: patient_of(app, 1).await,
        before,
    }
}

fn payments_path(p: &Paid) -> String {
    format!("/staff/patients/{}/payments", p.patient_id.as_str())
}

async fn post_refund(staff: &Browser, p: &Paid, amount: &str, reason: &str) -> reqwest::Response {
    // The session's token, from a page that always has a form.
    let csrf = staff.csrf("/staff").await;
    staff
        .post(
            "/staff/refunds",
            &[
                ("csrf", csrf.as_str()),
                ("patient", p.patient_id.as_str()),
                ("payment", p.payment.as_str()),
                ("amount", amount),
                ("reason", reason),
            ],
        )
        .await
}

async fn processor_refunds(app: &TestApp, p: &Paid) -> usize {
    sandbox(app)
        .list_refunds(&p.processor_payment)
        .await
        .expect("refunds")
        .len()
}

async fn ledger_refunds(app: &TestApp, p: &Paid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries
         WHERE kind = 'refund' AND payment_id = $1",
    )
    .bind(&p.payment)
    .fetch_one(app.db().pool())
    .await
    .expect("ledger")
}

async fn an_admin_refunds_part_then_the_rest(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let (staff, _) = app
        .signed_in_staff("refunds.admin@example.org", Role::PracticeAdmin)
        .await;

    // The admin finds the patient and follows the link to their payments.
    let csrf = staff.csrf("/staff").await;
    let found = staff
        .post(
            "/staff/search",
            &[
                ("csrf", csrf.as_str()),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(
        found.contains(&payments_path(&p)),
        "the search links to the payments"
    );
    let page = staff.page(&payments_path(&p)).await;
    let shown = text(&page);
    assert!(shown.contains("$5.00"), "{shown}");
    assert!(shown.contains(&t("staff-payment-status-succeeded")));
    assert!(shown.contains(&ta(
        "staff-payment-account",
        &[("brand", "Visa"), ("last4", "4242")]
    )));
    assert!(
        page.contains("value=\"5.00\""),
        "the amount defaults to what is left"
    );

    let r = post_refund(&staff, &p, "2.00", "overpayment").await;
    assert_eq!(r.status(), SEE_OTHER);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}?refunded=rfd_", payments_path(&p))),
        "{to}"
    );
    let after = text(&staff.page(&to).await);
    assert!(
        after.contains(&ta("staff-refund-issued", &[("amount", "$2.00")])),
        "{after}"
    );
    assert!(page_left(&after, "$3.00"), "{after}");
    app.run_jobs().await;
    assert_eq!(balance(&app, &p.statement).await, p.before - 300);
    assert_eq!(ledger_refunds(&app, &p).await, (1, 200));
    let receipt = text(&p.patient.page(&p.receipt).await);
    assert!(receipt.contains("$2.00 refunded"), "{receipt}");

    // The rest, after the processor's own event came and went: booked once each.
    let r = post_refund(&staff, &p, "3.00", "billing_error").await;
    assert_eq!(r.status(), SEE_OTHER);
    app.run_jobs().await;
    assert_eq!(balance(&app, &p.statement).await, p.before);
    assert_eq!(ledger_refunds(&app, &p).await, (2, 500));
    assert_eq!(processor_refunds(&app, &p).await, 2);
    let page = staff.page(&payments_path(&p)).await;
    assert!(page_left(&text(&page), "$0.00"));
    assert!(
        !page.contains("action=\"/staff/refunds\""),
        "nothing left to refund"
    );
    let receipt = text(&p.patient.page(&p.receipt).await);
    assert!(receipt.contains("$3.00 refunded") && receipt.contains("$2.00 refunded"));
    // The statement lists the refunds under its payment.
    let statement = text(&p.patient.page("/statement").await);
    assert!(statement.contains("$3.00 refunded"), "{statement}");

    let audited: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT outcome, patient_id, resource FROM audit_events
         WHERE action = 'payment.refund.issue' ORDER BY seq",
    )
    .fetch_all(app.db().pool())
    .await
    .expect("audit");
    assert_eq!(audited.len(), 2);
    for (outcome, patient, resource) in audited {
        assert_eq!(outcome, "success");
        assert_eq!(patient, p.patient_id.as_str());
        assert!(resource.is_some_and(|r| RefundId::parse(&r).is_some()));
    }
    app.finish().await;
}

/// "Left to refund" shows `amount`.
fn page_left(shown: &str, amount: &str) -> bool {
    shown.contains(&format!("class=\"payment-left\">{amount}<"))
}

async fn an_over_refund_is_refused_and_nothing_reaches_the_processor(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let (staff, _) = app
        .signed_in_staff("refunds.over@example.org", Role::PracticeAdmin)
        .await;
    assert_eq!(
        post_refund(&staff, &p, "2.00", "duplicate").await.status(),
        SEE_OTHER
    );
    let r = post_refund(&staff, &p, "3.01", "duplicate").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("body");
    assert!(
        text(&page).contains(&ta(
            "staff-refund-error-more-than-left",
            &[("left", "$3.00")]
        )),
        "{page}"
    );
    assert!(page.contains("value=\"3.01\""), "the amount typed is kept");
    assert!(
        page.contains("<option value=\"duplicate\" selected"),
        "the reason picked is kept"
    );
    assert_eq!(
        processor_refunds(&app, &p).await,
        1,
        "nothing more was asked"
    );
    assert_eq!(ledger_refunds(&app, &p).await, (1, 200));
    // Zero and nonsense are refused too, before anything is written.
    for amount in ["0", "-1.00", "five"] {
        let r = post_refund(&staff, &p, amount, "duplicate").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{amount}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'payment.refund.issue' AND outcome = 'failure'"
        )
        .await,
        2,
        "the over-refund and the zero refund are on the trail"
    );
    app.finish().await;
}

async fn a_disputed_payment_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    sandbox(&app)
        .open_dispute(&p.processor_payment)
        .await
        .expect("dispute opened");
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM disputes").await, 1);
    let (staff, _) = app
        .signed_in_staff("refunds.dispute@example.org", Role::PracticeAdmin)
        .await;
    let page = text(&staff.page(&payments_path(&p)).await);
    assert!(page.contains(&t("staff-payment-disputed")), "{page}");
    // The form is not offered; a post anyway is refused with the reason.
    let csrf = staff.csrf("/staff").await;
    let r = staff
        .post(
            "/staff/refunds",
            &[
                ("csrf", csrf.as_str()),
                ("patient", p.patient_id.as_str()),
                ("payment", p.payment.as_str()),
                ("amount", "1.00"),
                ("reason", "requested_by_customer"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(&r.text().await.expect("body"));
    assert!(body.contains(&t("staff-refund-error-disputed")), "{body}");
    assert_eq!(processor_refunds(&app, &p).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 0);
    app.finish().await;
}

async fn a_support_agent_cannot_refund(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let (agent, _) = app
        .signed_in_staff("refunds.agent@example.org", Role::SupportAgent)
        .await;
    let r = agent.get(&payments_path(&p)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = agent.csrf("/staff").await;
    let r = agent
        .post(
            "/staff/refunds",
            &[
                ("csrf", csrf.as_str()),
                ("patient", p.patient_id.as_str()),
                ("payment", p.payment.as_str()),
                ("amount", "5.00"),
                ("reason", "duplicate"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Nor does the search offer them the link.
    let found = agent
        .post(
            "/staff/search",
            &[
                ("csrf", csrf.as_str()),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(found.contains("Avery Quintero"));
    assert!(!found.contains(&payments_path(&p)));
    assert_eq!(processor_refunds(&app, &p).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 0);
    app.finish().await;
}

async fn two_refunds_of_everything_at_once_only_one_succeeds(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let (a, _) = app
        .signed_in_staff("refunds.first@example.org", Role::PracticeAdmin)
        .await;
    let (b, _) = app
        .signed_in_staff("refunds.second@example.org", Role::PracticeAdmin)
        .await;
    let (ca, cb) = (
        a.csrf(&payments_path(&p)).await,
        b.csrf(&payments_path(&p)).await,
    );
    let form = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("patient".to_owned(), p.patient_id.as_str().to_owned()),
            ("payment".to_owned(), p.payment.clone()),
            ("amount".to_owned(), "5.00".to_owned()),
            ("reason".to_owned(), "duplicate".to_owned()),
        ]
    };
    let (fa, fb) = (form(&ca), form(&cb));
    let url = format!("{}/staff/refunds", app.url);
    let (ra, rb) = tokio::join!(
        a.client.post(&url).form(&fa).send(),
        b.client.post(&url).form(&fb).send()
    );
    let mut statuses = vec![ra.expect("a").status(), rb.expect("b").status()];
    statuses.sort();
    assert_eq!(statuses, [SEE_OTHER, StatusCode::UNPROCESSABLE_ENTITY]);
    // The loser was refused by our own check, before anything was recorded or sent (the
    // processor would refuse it too, but a refund it refused leaves a failed row behind).
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 1);
    app.run_jobs().await;
    assert_eq!(processor_refunds(&app, &p).await, 1);
    assert_eq!(ledger_refunds(&app, &p).await, (1, 500));
    assert_eq!(balance(&app, &p.statement).await, p.before);
    app.finish().await;
}

/// A refund someone made in the processor's dashboard arrives by `charge.refunded` only; it is
/// recorded as made at the processor and booked once, however often the event comes.
async fn a_dashboard_refund_is_booked_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let made = app
        .state()
        .processor
        .create_refund(
            &RefundRequest {
                payment: p.processor_payment.clone(),
                amount: Money::from_cents(150),
                reason: RefundReason::RequestedByCustomer,
                refund_ref: RefundId::generate(),
            },
            "dashboard-1",
        )
        .await
        .expect("refund at the processor");
    app.run_jobs().await;
    // The same news again, as Stripe may send it.
    let again = serde_json::json!({
        "id": "evt_refund_again", "object": "event", "type": "charge.refunded",
        "created": 1_700_000_000,
        "data": { "object": {
            "id": p.processor_payment.replacen("pi_", "ch_", 1),
            "object": "charge",
            "payment_intent": p.processor_payment,
        } },
    })
    .to_string();
    assert_eq!(post_webhook(&app, &again).await.status(), StatusCode::OK);
    app.run_jobs().await;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT reason, status, amount_cents FROM refunds WHERE processor_refund_id = $1",
    )
    .bind(&made.id)
    .fetch_all(app.db().pool())
    .await
    .expect("refunds");
    assert_eq!(
        rows,
        vec![("made_at_processor".into(), "succeeded".into(), 150)]
    );
    assert_eq!(ledger_refunds(&app, &p).await, (1, 150));
    assert_eq!(balance(&app, &p.statement).await, p.before - 350);
    // Staff see it, and what is left.
    let (staff, _) = app
        .signed_in_staff("refunds.dash@example.org", Role::PracticeAdmin)
        .await;
    let page = text(&staff.page(&payments_path(&p)).await);
    assert!(
        page.contains(&t("staff-refund-reason-made_at_processor")),
        "{page}"
    );
    assert!(page_left(&page, "$3.50"), "{page}");
    app.finish().await;
}

/// What a patient and staff are told of a bank debit still processing, then failed. The sandbox
/// takes cards only, so the payment's status is set as the processor's events would set it
/// (`payments::booking`); the pages and the refund check read it from there.
async fn a_bank_payment_processing_or_failed_is_told_and_not_refunded(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = paid_five_dollars(&app).await;
    let set = |status: &'static str| {
        let app = &app;
        let id = p.payment.clone();
        async move {
            sqlx::query(
                "UPDATE payments SET status = $1, method = 'us_bank_account' WHERE id = $2",
            )
            .bind(status)
            .bind(id)
            .execute(app.db().pool())
            .await
            .expect("status");
        }
    };
    let (staff, _) = app
        .signed_in_staff("refunds.bank@example.org", Role::PracticeAdmin)
        .await;

    set("processing").await;
    let receipt = text(&p.patient.page(&p.receipt).await);
    assert!(receipt.contains(&t("payment-processing")), "{receipt}");
    let statement = text(&p.patient.page("/statement").await);
    assert!(statement.contains(&t("payment-processing")), "{statement}");
    let page = text(&staff.page(&payments_path(&p)).await);
    assert!(
        page.contains(&t("staff-payment-status-processing")),
        "{page}"
    );
    assert!(page.contains(&t("staff-payment-method-bank")));
    let r = post_refund(&staff, &p, "1.00", "duplicate").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&r.text().await.expect("body")).contains(&t("staff-refund-error-processing")));

    set("failed").await;
    let receipt = text(&p.patient.page(&p.receipt).await);
    assert!(receipt.contains(&t("payment-failed")), "{receipt}");
    assert!(!receipt.contains(&t("payment-processing")));
    let r = post_refund(&staff, &p, "1.00", "duplicate").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&r.text().await.expect("body")).contains(&t("staff-refund-error-failed")));

    assert_eq!(processor_refunds(&app, &p).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 0);
    app.finish().await;
}

/// A guarantor paid two dependants' statements in one payment. A refund issued from the second
/// dependant's page is given back on that dependant's statement, not on whichever statement
/// sorts first.
async fn a_household_refund_goes_back_on_the_patient_it_was_issued_for(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = crate::common::guarantor_of_4_and_5(&app, "household.refund@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    let r = crate::common::pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let r = g.card(&location(&r), "4242 4242 4242 4242").await;
    assert_eq!(r.status(), SEE_OTHER);
    app.run_jobs().await;
    assert_eq!((balance(&app, &s4).await, balance(&app, &s5).await), (0, 0));
    let payment: String = sqlx::query_scalar("SELECT id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("payment");
    let (staff, _) = app
        .signed_in_staff("household.refunds@example.org", Role::PracticeAdmin)
        .await;
    // Whichever of the two statements sorts last: a split in statement order would miss it.
    let (last_patient, last_statement, other) = if s4.as_str() > s5.as_str() {
        (patient_of(&app, 4).await, s4.clone(), s5.clone())
    } else {
        (patient_of(&app, 5).await, s5.clone(), s4.clone())
    };
    let csrf = staff.csrf("/staff").await;
    let r = staff
        .post(
            "/staff/refunds",
            &[
                ("csrf", csrf.as_str()),
                ("patient", last_patient.as_str()),
                ("payment", payment.as_str()),
                ("amount", "10.00"),
                ("reason", "billing_error"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        SEE_OTHER,
        "{}",
        text(&r.text().await.unwrap_or_default())
    );
    assert_eq!(balance(&app, &last_statement).await, 1000);
    assert_eq!(balance(&app, &other).await, 0);
    app.finish().await;
}
