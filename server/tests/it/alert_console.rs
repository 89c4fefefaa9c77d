//! The security officer's alert console (issue 14), over HTTP on both databases: a practice's
//! officer sees its alerts and no one else's (another practice's console is 403, a support agent
//! is refused at the door), acknowledges one (once), adds a note (an empty or overlong note is
//! refused with the words kept; a note is stored encrypted), and every view and change is
//! audited; the platform's officer sees every alert.

use crate::common::{csrf_in, location, second_practice, text, Backend, TestApp};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    a_practice_officer_acknowledges_and_notes_its_own_alerts,
    the_platform_officer_sees_every_alert,
);

async fn raise(
    app: &TestApp,
    tenant: Option<&patriotpay::ids::TenantId>,
    kind: &str,
    detail: &str,
) {
    let s = app.state();
    s.alerts
        .raise(&s.db, tenant, kind, detail, s.clock.now())
        .await
        .expect("alert");
}

async fn alert_id(app: &TestApp, kind: &str) -> String {
    app.count(&format!("SELECT MAX(id) FROM alerts WHERE kind = '{kind}'"))
        .await
        .to_string()
}

async fn a_practice_officer_acknowledges_and_notes_its_own_alerts(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (other, _, _) = second_practice(&app).await;
    raise(
        &app,
        Some(&app.tenant),
        "anomaly.test-ours",
        "ours: staff viewed 40 patients",
    )
    .await;
    raise(
        &app,
        Some(&other),
        "anomaly.test-theirs",
        "theirs: 9 failures",
    )
    .await;
    raise(&app, None, "audit-seal-lag", "platform: seal lag").await;
    let (officer, _) = app
        .signed_in_staff("sec@example.org", Role::SecurityOfficer)
        .await;

    let home = officer.page("/staff").await;
    assert!(home.contains("href=\"/staff/alerts\""), "{home}");
    let page = officer.get("/staff/alerts").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = text(&page.text().await.expect("body"));
    assert!(page.contains("ours: staff viewed 40 patients"), "{page}");
    assert!(
        page.contains("Open: no one has acknowledged it yet"),
        "{page}"
    );
    assert!(!page.contains("theirs: 9 failures"), "{page}");
    assert!(!page.contains("platform: seal lag"), "{page}");
    let theirs = format!("/staff/alerts?practice={other}");
    assert_eq!(officer.get(&theirs).await.status(), StatusCode::FORBIDDEN);

    // Acknowledge: once; another practice's alert is not found from this console.
    let ours = alert_id(&app, "anomaly.test-ours").await;
    let csrf = csrf_in(&officer.page("/staff/alerts").await);
    let practice = app.tenant.to_string();
    let ack = |alert: String| {
        let (csrf, practice) = (csrf.clone(), practice.clone());
        let officer = &officer;
        async move {
            officer
                .post(
                    "/staff/alerts/acknowledge",
                    &[("csrf", &csrf), ("practice", &practice), ("alert", &alert)],
                )
                .await
        }
    };
    let r = ack(ours.clone()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/staff/alerts?practice={practice}"));
    let page = text(&officer.page(&location(&r)).await);
    assert!(page.contains("Alert acknowledged."), "{page}");
    assert!(page.contains("Acknowledged by"), "{page}");
    let again = ack(ours.clone()).await;
    assert!(text(&officer.page(&location(&again)).await).contains("already acknowledged"));
    let not_ours = alert_id(&app, "anomaly.test-theirs").await;
    assert_eq!(ack(not_ours.clone()).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM alerts WHERE id = {not_ours} AND acknowledged_at IS NOT NULL"
        ))
        .await,
        0
    );

    // Notes: refused when empty or too long, with the words kept; stored sealed.
    let note = |words: String| {
        let (csrf, practice, alert) = (csrf.clone(), practice.clone(), ours.clone());
        let officer = &officer;
        async move {
            officer
                .post(
                    "/staff/alerts/note",
                    &[
                        ("csrf", &csrf),
                        ("practice", &practice),
                        ("alert", &alert),
                        ("note", &words),
                    ],
                )
                .await
        }
    };
    let r = note("   ".into()).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&r.text().await.expect("body")).contains("Write the note first."));
    let long = format!("Zebulon {}", "x".repeat(2000));
    let r = note(long.clone()).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.expect("body");
    assert!(body.contains("at most 2,000 characters") && body.contains(&long));
    let words = "Called Quintavius Example; he did not open the link himself";
    let r = note(words.into()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = text(&officer.page(&location(&r)).await);
    assert!(
        page.contains("Note added.") && page.contains(words),
        "{page}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM alert_notes").await, 1);
    let sealed = crate::common::dump_database(&app).await;
    assert!(
        !sealed.windows(11).any(|w| w == b"Quintavius "),
        "the note is stored in clear"
    );

    // A support agent is refused at the door.
    let (agent, _) = app
        .signed_in_staff("agent@example.org", Role::SupportAgent)
        .await;
    assert_eq!(
        agent.get("/staff/alerts").await.status(),
        StatusCode::FORBIDDEN
    );

    for (action, at_least) in [
        ("alerts.view", 4),
        ("alert.acknowledge", 3),
        ("alert.note", 1),
    ] {
        let n = app
            .count(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE action = '{action}'"
            ))
            .await;
        assert!(n >= at_least, "{action}: {n}");
    }
    app.finish().await;
}

async fn the_platform_officer_sees_every_alert(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (other, _, _) = second_practice(&app).await;
    raise(
        &app,
        Some(&app.tenant),
        "anomaly.test-ours",
        "ours: staff viewed 40 patients",
    )
    .await;
    raise(
        &app,
        Some(&other),
        "anomaly.test-theirs",
        "theirs: 9 failures",
    )
    .await;
    raise(&app, None, "audit-seal-lag", "platform: seal lag").await;
    let platform = patriotpay::accounts::platform().clone();
    let (officer, _) = app
        .signed_in_staff_of("platform.sec@example.org", Role::SecurityOfficer, &platform)
        .await;
    let page = text(&officer.page("/staff/alerts").await);
    for detail in [
        "ours: staff viewed",
        "theirs: 9 failures",
        "platform: seal lag",
    ] {
        assert!(page.contains(detail), "{detail}: {page}");
    }
    assert!(page.contains("Lakeside Pediatrics"), "{page}");
    assert!(page.contains("The platform (no one practice)"), "{page}");
    app.finish().await;
}
