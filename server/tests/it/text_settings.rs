//! A practice's settings for its texts and a patient's own choice (issue 13), over HTTP on both
//! databases: a practice admin's wording is checked on save (a refused one comes back as typed,
//! with why, and nothing is stored), the next import's texts use it, the check-page footer ends
//! them; a cadence that cannot be read is refused, a good one saved; support pauses and resumes a
//! statement's reminders from the console (audited); a pay-link visitor turns texts off and on
//! (consent-ledger entries from the web form). Each change audited.

use crate::common::{csrf_in, location, t, text, Backend, Browser, TestApp};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    a_practice_words_its_texts_and_adds_the_check_page,
    reminder_cadence_and_pausing_from_the_console,
    a_patient_turns_texts_off_and_on_from_the_pay_link,
);

fn import(app: &TestApp) {
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

async fn events(app: &TestApp, action: &str) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND outcome = 'success'"
    );
    app.count(&sql).await
}

async fn word(
    b: &Browser,
    practice: &str,
    lang: &str,
    body: &str,
    action: &str,
) -> reqwest::Response {
    let csrf = b
        .csrf(&format!("/staff/messaging?practice={practice}"))
        .await;
    b.post(
        "/staff/messaging/texts",
        &[
            ("csrf", csrf.as_str()),
            ("practice", practice),
            ("template", "pay-link"),
            ("language", lang),
            ("body", body),
            ("action", action),
        ],
    )
    .await
}

async fn a_practice_words_its_texts_and_adds_the_check_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.to_string();
    let (admin, _) = app
        .signed_in_staff("texts.admin@example.org", Role::PracticeAdmin)
        .await;
    let page = text(
        &admin
            .page(&format!("/staff/messaging?practice={practice}"))
            .await,
    );
    assert!(page.contains(&t("messaging-title")), "{page}");
    assert!(
        page.contains("Your statement is ready"),
        "the built-in wording shows: {page}"
    );

    // A support agent may not change a practice's texts.
    let (agent, _) = app
        .signed_in_staff("texts.agent@example.org", Role::SupportAgent)
        .await;
    let r = agent
        .get(&format!("/staff/messaging?practice={practice}"))
        .await;
    assert_ne!(r.status(), StatusCode::OK, "agents do not see the settings");

    // A wording with a patient's name is refused as typed, with why; nothing is stored.
    let phi = "{practice}: Hi {first_name}, pay at {link}";
    let r = word(&admin, &practice, "en", phi, "save").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("body");
    assert!(
        page.contains("Hi {first_name}, pay at {link}</textarea>"),
        "{page}"
    );
    assert!(page.contains("is not allowed"), "{page}");
    assert_eq!(app.count("SELECT COUNT(*) FROM message_templates").await, 0);

    // A good one is saved (audited); the footer is turned on (audited).
    let mine = "{practice}: A new bill is ready for you. Pay safely at {link}";
    let r = word(&admin, &practice, "en", mine, "save").await;
    assert_eq!(
        location(&r),
        format!("/staff/messaging?practice={practice}")
    );
    assert_eq!(events(&app, "practice.texts.saved").await, 1);
    let page = admin
        .page(&format!("/staff/messaging?practice={practice}"))
        .await;
    assert!(text(&page).contains(&t("messaging-text-saved")));
    let r = admin
        .post(
            "/staff/messaging/footer",
            &[
                ("csrf", csrf_in(&page).as_str()),
                ("practice", practice.as_str()),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(events(&app, "practice.texts.footer.on").await, 1);

    // The next import's English texts use the practice's wording and end with the check page.
    import(&app);
    let texts = app.outbox().await;
    let english: Vec<_> = texts
        .iter()
        .filter(|m| m.channel == "sms" && !m.body.contains("Su estado"))
        .collect();
    assert!(!english.is_empty());
    assert!(
        english
            .iter()
            .any(|m| m.body.contains("Reply STOP to opt out")),
        "the first text to a number says how to opt out"
    );
    for m in english {
        assert!(
            m.body
                .starts_with("Riverside Family Medicine: A new bill is ready for you."),
            "{}",
            m.body
        );
        assert!(
            m.body.ends_with(&format!("{}/check-link", app.url)),
            "{}",
            m.body
        );
    }

    // Back to the built-in wording (audited): the row goes.
    let r = word(&admin, &practice, "en", "", "reset").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(events(&app, "practice.texts.reset").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM message_templates").await, 0);
    app.finish().await;
}

async fn reminder_cadence_and_pausing_from_the_console(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.to_string();
    let (admin, _) = app
        .signed_in_staff("cadence.admin@example.org", Role::PracticeAdmin)
        .await;
    let settings = format!("/staff/messaging?practice={practice}");
    let cadence = |days: &'static str| {
        let (admin, practice, settings) = (admin.clone(), practice.clone(), settings.clone());
        async move {
            let csrf = admin.csrf(&settings).await;
            admin
                .post(
                    "/staff/messaging/reminders",
                    &[
                        ("csrf", csrf.as_str()),
                        ("practice", practice.as_str()),
                        ("days", days),
                    ],
                )
                .await
        }
    };
    let r = cadence("14, 7").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.expect("body");
    assert!(
        page.contains("value=\"14, 7\""),
        "the typed days come back: {page}"
    );
    assert!(page.contains("in order"), "{page}");
    let r = cadence("3, 10").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let saved: (String, i64) =
        sqlx::query_as("SELECT reminder_days, remind_on_due_date FROM tenants WHERE id = $1")
            .bind(&practice)
            .fetch_one(app.db().pool())
            .await
            .expect("tenant");
    assert_eq!(saved, ("3,10".to_owned(), 0), "no due-date box: off");
    assert_eq!(events(&app, "practice.reminders.set").await, 1);

    // Support pauses one statement's reminders from the console, then resumes them.
    import(&app);
    let (statement, patient): (String, String) =
        sqlx::query_as("SELECT statement_id, patient_id FROM outbox ORDER BY created_at, id")
            .fetch_one(app.db().pool())
            .await
            .expect("a texted statement");
    let (agent, _) = app
        .signed_in_staff("pause.agent@example.org", Role::SupportAgent)
        .await;
    let console = format!("/staff/patients/{patient}");
    for (action, paused, event) in [
        ("pause", true, "statement.reminders.pause"),
        ("resume", false, "statement.reminders.resume"),
    ] {
        let page = agent.page(&console).await;
        assert!(text(&page).contains(&t("staff-console-reminders")));
        let r = agent
            .post(
                "/staff/reminders",
                &[
                    ("csrf", csrf_in(&page).as_str()),
                    ("statement", statement.as_str()),
                    ("action", action),
                ],
            )
            .await;
        assert_eq!(location(&r), console);
        let at: Option<i64> =
            sqlx::query_scalar("SELECT reminders_paused_at FROM statements WHERE id = $1")
                .bind(&statement)
                .fetch_one(app.db().pool())
                .await
                .expect("statement");
        assert_eq!(at.is_some(), paused, "{action}");
        assert_eq!(events(&app, event).await, 1);
    }
    app.finish().await;
}

async fn a_patient_turns_texts_off_and_on_from_the_pay_link(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = app.verified_visitor(1).await;
    let summary = b.page("/summary").await;
    let shown = text(&summary);
    assert!(shown.contains(&t("texts-choice-title")), "{shown}");
    let ledger = |state: &'static str| {
        let sql =
            format!("SELECT COUNT(*) FROM sms_consents WHERE source = 'web' AND state = '{state}'");
        let app = &app;
        async move { app.count(&sql).await }
    };
    for (choice, state, notice) in [
        ("off", "opted_out", "texts-choice-now-off"),
        ("on", "opted_in", "texts-choice-now-on"),
    ] {
        let page = b.page("/summary").await;
        let r = b
            .post(
                "/texts",
                &[("csrf", csrf_in(&page).as_str()), ("choice", choice)],
            )
            .await;
        assert_eq!(location(&r), "/summary");
        let after = text(&b.page("/summary").await);
        assert!(after.contains(&t(notice)), "{after}");
        assert_eq!(ledger(state).await, 1, "{choice}");
        assert_eq!(events(&app, &format!("texts.choice.{choice}")).await, 1);
    }
    let wording: String =
        sqlx::query_scalar("SELECT wording_version FROM sms_consents WHERE source = 'web' LIMIT 1")
            .fetch_one(app.db().pool())
            .await
            .expect("entry");
    assert_eq!(wording, patriotpay::messages::choice::WEB_WORDING);
    app.finish().await;
}
