//! The incident plan rehearsed end to end (issue 14) against a running portal, with the real
//! binary for every command, on both databases: a support agent views more patients than usual →
//! the anomaly rule raises its alert (and the practice's security officer sees it in the console)
//! → `scope` finds exactly the viewed patients → `revoke-sessions` sends the agent's cookie to
//! the sign-in page → `rotate` retires the old pay links (refused even with the right answers)
//! while the data still reads → `force-password-reset` refuses the old password and mails the
//! member → the audit chain still verifies → `notify` lists exactly the viewed patients with the
//! right times and `postmortem` lists them and every action taken.

use crate::common::{
    location, member_sign_in, patient_of, text, Backend, Browser, TestApp, PASSWORD,
};
use patriotpay::access::Role;
use patriotpay::anomaly::{self, Thresholds};
use reqwest::StatusCode;

both_backends!(the_whole_incident_plan_rehearsed,);

/// The rehearsal on PostgreSQL with the data keys in KMS (moto): the rotation makes its new key
/// versions there, and the data written under the old ones still reads. (Staff here are local
/// accounts; Cognito's reset and sign-out calls are tested in `cognito`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and PostgreSQL: see .ci/run"]
async fn kms_postgres() {
    let url = crate::common::moto_url();
    let conf = crate::common::moto_aws_config(&url).await;
    let key = aws_sdk_kms::Client::new(&conf)
        .create_key()
        .description("patriotpay rehearsal")
        .send()
        .await
        .expect("CreateKey on moto")
        .key_metadata()
        .expect("metadata")
        .arn()
        .expect("arn")
        .to_owned();
    let app = TestApp::start_with(Backend::Postgres, move |cfg| {
        cfg.key_provider = patriotpay::config::KeyProviderKind::AwsKms;
        cfg.kms_key_id = Some(key);
        cfg.aws_region = Some("us-east-1".into());
        cfg.kms_endpoint_url = Some(url);
    })
    .await;
    rehearse(app).await;
}

fn run(app: &TestApp, args: &[&str]) -> String {
    let o = app.cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn the_whole_incident_plan_rehearsed(backend: Backend) {
    rehearse(TestApp::start(backend).await).await;
}

async fn rehearse(app: TestApp) {
    let s = app.state();
    let practice = app.tenant.to_string();
    let (officer, _) = app
        .signed_in_staff("security@example.org", Role::SecurityOfficer)
        .await;
    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let old_link = app.link(3).await;

    // A support agent looks at three patients' records.
    let (agent, agent_id) = app
        .signed_in_staff("curious.agent@example.org", Role::SupportAgent)
        .await;
    let viewed_at = s.clock.now();
    let mut viewed = vec![];
    for n in [1, 2, 4] {
        let p = patient_of(&app, n).await;
        assert_eq!(
            agent.get(&format!("/staff/patients/{p}")).await.status(),
            StatusCode::OK
        );
        viewed.push(p.to_string());
    }
    viewed.sort();
    // The window of the views (the bound is exclusive; patients' records are touched next only
    // after the portal's clock is moved on, below).
    let (since, until) = (viewed_at.to_string(), (s.clock.now() + 1).to_string());

    // The anomaly rule fires (its floor set low enough for three views) and the practice's
    // security officer sees the alert in the console.
    let tight = Thresholds {
        staff_patients_per_hour_floor: 2,
        ..Thresholds::default()
    };
    let found = anomaly::run(&s.db, &s.alerts, &tight, s.clock.now())
        .await
        .expect("rules");
    assert!(
        found.iter().any(|f| f.rule == "staff-patient-views"
            && f.subject == format!("user:{}", agent_id.as_str())
            && f.tenant.as_ref() == Some(&app.tenant)),
        "{found:?}"
    );
    let console = text(&officer.page("/staff/alerts").await);
    assert!(console.contains("anomaly.staff-patient-views"), "{console}");

    // Scope: exactly those patients.
    let out = run(
        &app,
        &[
            "incident", "scope", "--since", &since, "--until", &until, "--json",
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
    assert_eq!(patients, viewed);

    // Revoke the agent: the old cookie lands on the sign-in page.
    run(
        &app,
        &["incident", "revoke-sessions", "--user", agent_id.as_str()],
    );
    assert_eq!(location(&agent.get("/staff").await), "/staff/login");

    // Rotate (checked below).
    run(&app, &["incident", "rotate", "--run", "rehearsal"]);

    // Forced reset: the old password no longer signs in; the member is mailed to set a new one.
    run(
        &app,
        &[
            "incident",
            "force-password-reset",
            "--all",
            "--run",
            "rehearsal",
        ],
    );
    assert_eq!(location(&member.get("/account").await), "/signin");
    let fresh = Browser::new(&app);
    assert_eq!(
        location(&member_sign_in(&fresh, "avery@example.org", PASSWORD).await),
        "/signin"
    );
    assert!(app
        .outbox()
        .await
        .iter()
        .any(|m| m.template == "password-reset-required" && m.to == "avery@example.org"));

    // From here the portal's clock is an hour on, so what follows touches no patient inside the
    // window. (Not earlier: the commands stamp revocations with the real time.)
    s.clock.advance(3600);
    // The rotation: an old link is refused even with the right answers; data still reads.
    let b = Browser::new(&app);
    b.open_link(&old_link).await;
    let (m, d, y, _) = crate::common::answers(3);
    assert_eq!(location(&b.submit_dob(&m, &d, &y).await), "/verify");
    let visitor = app.verified_visitor(2).await;
    let statement = visitor.get("/statement").await;
    assert_eq!(
        statement.status(),
        StatusCode::OK,
        "data written before reads"
    );

    // The audit chain still verifies after all of it.
    let out = run(&app, &["audit", "verify"]);
    assert!(out.starts_with("OK: "), "{out}");

    // Notify: the practice's affected patients, exactly, with the time of the views.
    let out = run(
        &app,
        &[
            "incident",
            "notify",
            "--practice",
            &practice,
            "--since",
            &since,
            "--until",
            &until,
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let affected = report["affected"].as_array().expect("affected");
    let mut named: Vec<String> = affected
        .iter()
        .map(|a| a["patient"].as_str().expect("id").to_owned())
        .collect();
    named.sort();
    assert_eq!(named, viewed);
    for a in affected {
        let first = a["first"].as_i64().expect("first");
        assert!(
            (viewed_at..until.parse().expect("until")).contains(&first),
            "{a}"
        );
    }
    assert_eq!(
        report["deadline"].as_i64().expect("deadline")
            - report["discovered"].as_i64().expect("discovered"),
        60 * 86_400
    );

    // Post-mortem: the patients, the agent, and every action taken.
    let md = run(
        &app,
        &[
            "incident",
            "postmortem",
            "--since",
            &since,
            "--until",
            &until,
        ],
    );
    assert!(md.contains("## Root cause"), "{md}");
    for p in &viewed {
        assert!(md.contains(p.as_str()), "{p}: {md}");
    }
    assert!(md.contains(agent_id.as_str()), "{md}");
    for action in [
        "incident.scope",
        "incident.revoke-sessions",
        "incident.rotate",
        "incident.force-password-reset",
        "incident.notify",
    ] {
        assert!(md.contains(action), "{action}: {md}");
    }
    app.finish().await;
}
