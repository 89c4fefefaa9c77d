//! The anomaly rules (issue 14), each driven over its own trouble and run on the test clock (the
//! server's loop is off in tests): wrong identity answers per link and per address, failed
//! sign-ins per account and per address, a staff member touching far more patients than usual
//! (and not when that is their usual), view-as sessions per day, webhook signature refusals, a
//! practice's failed-payment spike. Each raises its alert (stored, audited as `anomaly.raised`)
//! once per rule, subject and window. Both databases.

use crate::common::{location, member_sign_in, patient_of, post_event, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::anomaly::{self, Finding, Thresholds};
use patriotpay::audit::{self, Actor, Outcome};

both_backends!(
    alerts_are_emailed_and_the_webhook_is_retried,
    identity_and_sign_in_failures_raise_once_per_window,
    staff_views_are_judged_against_their_own_usual,
    view_as_webhooks_and_payment_spikes,
);

/// Thresholds small enough to cross in a test.
fn tight() -> Thresholds {
    Thresholds {
        identity_failures_per_link: 2,
        identity_failures_per_address: 2,
        signin_failures_per_account: 2,
        signin_failures_per_address: 2,
        staff_patients_per_hour_floor: 2,
        view_as_per_day: 1,
        webhook_signature_failures: 1,
        payment_failures_per_hour_floor: 2,
        ..Thresholds::default()
    }
}

async fn run(app: &TestApp) -> Vec<Finding> {
    let s = app.state();
    anomaly::run(&s.db, &s.alerts, &tight(), s.clock.now())
        .await
        .expect("rules")
}

fn rules(found: &[Finding]) -> Vec<&'static str> {
    let mut r: Vec<&'static str> = found.iter().map(|f| f.rule).collect();
    r.sort_unstable();
    r.dedup();
    r
}

async fn identity_and_sign_in_failures_raise_once_per_window(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert!(run(&app).await.is_empty(), "a quiet portal raises nothing");
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    for _ in 0..3 {
        let _ = b.submit_dob("01", "01", "1900").await;
    }
    app.signed_in_member(1, "avery@example.org").await;
    let stranger = Browser::new(&app);
    for _ in 0..3 {
        let r = member_sign_in(&stranger, "avery@example.org", "not the password").await;
        assert_eq!(location(&r), "/signin");
    }
    let found = run(&app).await;
    assert_eq!(
        rules(&found),
        [
            "identity-failures-address",
            "identity-failures-link",
            "signin-failures-account",
            "signin-failures-address",
        ],
        "{found:?}"
    );
    let user = app.user_id_of("avery@example.org").await;
    assert!(found
        .iter()
        .any(|f| f.rule == "signin-failures-account" && f.subject == user));
    // Raised, stored and audited once; the same window raises nothing more.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind LIKE 'anomaly.%'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'anomaly.raised'")
            .await,
        4
    );
    assert!(
        run(&app).await.is_empty(),
        "once per rule, subject and window"
    );
    // No PHI in what was raised: ids, addresses and counts.
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM alerts WHERE kind LIKE 'anomaly.%'")
            .fetch_all(app.db().pool())
            .await
            .expect("alerts");
    for d in details {
        assert!(!d.contains("avery@") && !d.contains("1900"), "{d}");
    }
    app.finish().await;
}

/// An audit event by `actor` in the demo practice at `at` (history the rules read).
async fn record(
    app: &TestApp,
    actor: &str,
    (action, outcome): (&'static str, Outcome),
    patient: Option<&patriotpay::ids::PatientId>,
    at: i64,
) {
    let who = Actor {
        at: Some(at),
        ..Actor::system(actor)
    };
    let event = audit::Event {
        actor: &who,
        tenant: Some(&app.tenant),
        patient,
        action,
        resource: None,
        outcome,
    };
    audit::record(app.db().pool(), event).await.expect("event");
}

/// A staff member's view of a patient's console at `at`.
async fn touched(app: &TestApp, actor: &str, patient: &patriotpay::ids::PatientId, at: i64) {
    let view = ("patient.console.view", Outcome::Success);
    record(app, actor, view, Some(patient), at).await;
}

async fn staff_views_are_judged_against_their_own_usual(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (agent, agent_id) = app
        .signed_in_staff("busy.agent@example.org", Role::SupportAgent)
        .await;
    let (_, steady_id) = app
        .signed_in_staff("steady.agent@example.org", Role::SupportAgent)
        .await;
    let mut patients = vec![];
    for n in 1..=5 {
        patients.push(patient_of(&app, n).await);
    }
    // The busy agent opens four patients' consoles over HTTP: no history, over the floor.
    for p in &patients[..4] {
        let r = agent.get(&format!("/staff/patients/{p}")).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    // The steady agent touched four patients an hour for days: the same hour is their usual.
    let now = app.state().clock.now();
    let steady = format!("user:{steady_id}");
    for day in 1..=3 {
        for p in &patients[..4] {
            touched(&app, &steady, p, now - day * 86_400).await;
        }
    }
    for p in &patients[..4] {
        touched(&app, &steady, p, now - 60).await;
    }
    let found = run(&app).await;
    let staff: Vec<&Finding> = found
        .iter()
        .filter(|f| f.rule == "staff-patient-views")
        .collect();
    assert_eq!(staff.len(), 1, "{found:?}");
    assert_eq!(staff[0].subject, format!("user:{agent_id}"));
    // Every view was in the demo practice: its security officers see the alert.
    assert_eq!(staff[0].tenant.as_ref(), Some(&app.tenant));
    app.finish().await;
}

async fn view_as_webhooks_and_payment_spikes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let now = app.state().clock.now();
    // Two view-as sessions today by one staff member.
    for _ in 0..2 {
        let start = ("viewas.start", Outcome::Success);
        record(&app, "user:usr_viewer", start, None, now - 30).await;
    }
    // Two webhooks with a bad signature, over HTTP.
    for _ in 0..2 {
        let r = post_event(&app, "{}", Some("t=1,v1=00".into())).await;
        assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    }
    // Three failed payments this hour, against none usually.
    for _ in 0..3 {
        let failed = ("payment.failed", Outcome::Failure);
        record(&app, "system:webhook", failed, None, now - 10).await;
    }
    let found = run(&app).await;
    assert_eq!(
        rules(&found),
        [
            "payment-failure-spike",
            "view-as-per-day",
            "webhook-signature-failures"
        ],
        "{found:?}"
    );
    assert!(found
        .iter()
        .any(|f| f.rule == "webhook-signature-failures" && f.subject == "webhook:stripe"));
    assert!(found.iter().any(|f| f.rule == "payment-failure-spike"
        && f.subject == app.tenant.as_str()
        && f.tenant.as_ref() == Some(&app.tenant)));
    app.finish().await;
}

/// An alert webhook that refuses the first delivery and takes the next: the bodies it got.
async fn flaky_webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                let mut g = seen.lock().expect("lock");
                g.push(body);
                if g.len() == 1 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

async fn alerts_are_emailed_and_the_webhook_is_retried(backend: Backend) {
    let (url, got) = flaky_webhook().await;
    let app = TestApp::start_with(backend, move |c| {
        c.alert_webhook_url = Some(url);
        c.monitoring.alert_email = Some("Security@Example.org".into());
    })
    .await;
    let s = app.state();
    s.alerts
        .raise(
            &s.db,
            None,
            "anomaly.test",
            "practice ten_x: a test",
            s.clock.now(),
        )
        .await
        .expect("alert");
    let mail = app
        .outbox()
        .await
        .into_iter()
        .find(|m| m.template == "security-alert")
        .expect("the alert emailed");
    assert_eq!(mail.to, "security@example.org");
    assert!(
        mail.body.contains("practice ten_x: a test"),
        "{}",
        mail.body
    );
    // Refused once, taken on the retry (a few seconds later).
    let mut delivered = false;
    for _ in 0..100 {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT delivered_at FROM alerts WHERE kind = 'anomaly.test'")
                .fetch_one(app.db().pool())
                .await
                .expect("alert row");
        if at.is_some() {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(delivered, "the webhook got it on a retry");
    let bodies = got.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies[1].contains("anomaly.test"));
    app.finish().await;
}
