//! The incident commands (issue 14) as the real binary against a running portal, on both
//! databases: `scope` finds exactly the patients a staff member's console views touched (and
//! names the practice), `trace` lists the window's events and alerts as one timeline,
//! `revoke-sessions` with `--dry-run` changes nothing, then ends one account's sessions, then
//! everyone's (a pay-link visitor's too); each run audited.

use crate::common::{csrf_in, location, member_sign_in, patient_of, Backend, TestApp, PASSWORD};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    scope_trace_and_revoke_sessions,
    force_password_reset_resumes_and_members_reset_by_code,
);

fn run(app: &TestApp, args: &[&str]) -> String {
    let o = app.cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn scope_trace_and_revoke_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    let since = (app.state().clock.now() - 5).to_string();
    let (agent, agent_id) = app
        .signed_in_staff("curious.agent@example.org", Role::SupportAgent)
        .await;
    let mut viewed = vec![];
    for n in [1, 2, 4] {
        let p = patient_of(&app, n).await;
        let r = agent.get(&format!("/staff/patients/{p}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        viewed.push(p.to_string());
    }
    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let visitor = app.verified_visitor(2).await;
    app.state()
        .alerts
        .raise(
            app.db(),
            None,
            "anomaly.test",
            "a test alert",
            app.state().clock.now(),
        )
        .await
        .expect("alert");

    // Scope: exactly the agent's three patients, in the demo practice.
    let out = run(
        &app,
        &[
            "incident",
            "scope",
            "--since",
            &since,
            "--actor",
            agent_id.as_str(),
            "--json",
        ],
    );
    let scope: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut patients: Vec<String> = scope["patients"]
        .as_array()
        .expect("patients")
        .iter()
        .map(|p| p["patient"].as_str().expect("id").to_owned())
        .collect();
    patients.sort();
    viewed.sort();
    assert_eq!(patients, viewed);
    assert_eq!(scope["practices"], serde_json::json!([app.tenant.as_str()]));
    let text = run(&app, &["incident", "scope", "--since", &since]);
    assert!(
        text.contains("Accounts that acted") && text.contains(&format!("user:{agent_id}")),
        "{text}"
    );

    // Trace: the window's events and the alert, one timeline.
    let out = run(&app, &["incident", "trace", "--since", &since, "--json"]);
    let items: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert!(items
        .iter()
        .any(|i| i["type"] == "alert" && i["kind"] == "anomaly.test"));
    assert!(items
        .iter()
        .any(|i| i["type"] == "event" && i["action"] == "patient.console.view"));
    let text = run(&app, &["incident", "trace", "--since", &since]);
    assert!(text.contains("ALERT  anomaly.test"), "{text}");

    // Revoke: a dry run changes nothing; then the agent alone; then everyone.
    let out = run(
        &app,
        &[
            "incident",
            "revoke-sessions",
            "--user",
            agent_id.as_str(),
            "--dry-run",
        ],
    );
    assert!(out.contains("Would end the sessions of 1 account"), "{out}");
    assert_eq!(agent.get("/staff").await.status(), StatusCode::OK);
    run(
        &app,
        &["incident", "revoke-sessions", "--user", agent_id.as_str()],
    );
    assert_eq!(location(&agent.get("/staff").await), "/staff/login");
    assert_eq!(
        member.get("/account").await.status(),
        StatusCode::OK,
        "others keep theirs"
    );
    run(&app, &["incident", "revoke-sessions", "--all"]);
    assert_eq!(location(&member.get("/account").await), "/signin");
    assert_ne!(visitor.get("/statement").await.status(), StatusCode::OK);
    for action in [
        "incident.scope",
        "incident.trace",
        "incident.revoke-sessions",
    ] {
        let sql = format!("SELECT COUNT(*) FROM audit_events WHERE action = '{action}'");
        assert!(app.count(&sql).await >= 1, "{action} audited");
    }
    app.finish().await;
}

async fn force_password_reset_resumes_and_members_reset_by_code(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.to_string();
    let (staff, _) = app
        .signed_in_staff("reset.agent@example.org", Role::SupportAgent)
        .await;
    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let args = [
        "incident",
        "force-password-reset",
        "--practice",
        practice.as_str(),
        "--run",
        "drill",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = run(&app, &dry);
    assert!(out.contains("Would reset 2 account(s)"), "{out}");
    assert_eq!(
        member.get("/account").await.status(),
        StatusCode::OK,
        "a dry run changes nothing"
    );

    let out = run(&app, &args);
    assert!(
        out.contains("Reset 2 account(s)") && out.contains("1 staff, 1 local members"),
        "{out}"
    );
    assert_eq!(location(&member.get("/account").await), "/signin");
    assert_eq!(location(&staff.get("/staff").await), "/staff/login");
    let mail = app.outbox().await;
    assert!(mail
        .iter()
        .any(|m| m.template == "password-reset-required" && m.to == "avery@example.org"));
    assert!(mail
        .iter()
        .any(|m| m.template == "staff-setup" && m.to == "reset.agent@example.org"));
    // The old password no longer signs in; a code to the address sets a new one.
    let b = crate::common::Browser::new(&app);
    assert_eq!(
        location(&member_sign_in(&b, "avery@example.org", PASSWORD).await),
        "/signin"
    );
    let csrf = csrf_in(&b.page("/account/forgot").await);
    b.post(
        "/account/forgot",
        &[("csrf", csrf.as_str()), ("email", "avery@example.org")],
    )
    .await;
    let body = app
        .outbox()
        .await
        .into_iter()
        .rev()
        .find(|m| m.template == "reset-code")
        .expect("a reset code")
        .body;
    let code = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .expect("code")
        .to_owned();
    let fresh = "a brand new passphrase for avery";
    let csrf = csrf_in(&b.page("/account/reset-password").await);
    let r = b
        .post(
            "/account/reset-password",
            &[
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
                ("password", fresh),
                ("password_confirm", fresh),
            ],
        )
        .await;
    assert_eq!(location(&r), "/signin");
    assert_eq!(
        location(&member_sign_in(&b, "avery@example.org", fresh).await),
        "/account"
    );

    // The same run again: everyone is done already.
    let out = run(&app, &args);
    assert!(
        out.contains("Reset 0 account(s)") && out.contains("2 done before"),
        "{out}"
    );
    app.finish().await;
}
