//! The support console (issue 11), through a support agent's browser: patient search by phone
//! number, the console page's pay links in each state, sending a fresh link, revoking one,
//! unlocking a locked one with a reason kept encrypted, another practice's patient and links
//! not found (and audited), and a role without patient work refused. Both databases.

use crate::common::{
    answers, location, patient_of, second_practice, t, text, Backend, Browser, TestApp, SEE_OTHER,
};
use patriotpay::access::Role;
use patriotpay::ids::{LinkId, PatientId, StatementId};
use reqwest::StatusCode;

both_backends!(
    phone_search_finds_the_patient_in_three_formats,
    the_console_shows_each_link_in_its_state,
    a_fresh_link_works_and_the_old_one_is_revoked,
    a_link_is_revoked,
    unlocking_needs_a_reason_kept_encrypted_and_audited,
    another_practices_patient_and_links_are_not_found,
    a_security_officer_is_refused,
);

fn console_path(p: &PatientId) -> String {
    format!("/staff/patients/{}", p.as_str())
}

async fn search_phone(staff: &Browser, phone: &str) -> reqwest::Response {
    let csrf = staff.csrf("/staff").await;
    staff
        .post(
            "/staff/search",
            &[
                ("csrf", csrf.as_str()),
                ("last_name", ""),
                ("dob", ""),
                ("account", ""),
                ("phone", phone),
            ],
        )
        .await
}

/// A fresh pay link for demo patient `n`, as the demo makes one: its URL and id.
async fn link_for(app: &TestApp, n: usize) -> (String, LinkId) {
    let url = app.link(n).await;
    let token = url.rsplit('/').next().expect("token");
    let link = patriotpay::links::find_by_token(app.db(), token)
        .await
        .expect("query")
        .expect("link");
    (url, link.id)
}

/// Five wrong dates of birth on the link lock it.
async fn lock(app: &TestApp, url: &str) {
    let b = Browser::new(app);
    b.open_link(url).await;
    for _ in 0..patriotpay::links::MAX_FAILED_ATTEMPTS {
        let r = b.submit_dob("01", "01", "1950").await;
        assert_ne!(location(&r), "/summary", "a wrong date is refused");
    }
    let token = url.rsplit('/').next().expect("token");
    let link = patriotpay::links::find_by_token(app.db(), token)
        .await
        .expect("query")
        .expect("link");
    assert!(link.locked_at.is_some(), "five wrong answers lock the link");
}

/// Whether the link's identity check lets demo patient `n`'s answers through.
async fn link_works(app: &TestApp, url: &str, n: usize) -> bool {
    let b = Browser::new(app);
    b.open_link(url).await;
    let (m, d, y, _) = answers(n);
    location(&b.submit_dob(&m, &d, &y).await) == "/summary"
}

/// (revoked_at, locked_at, failed_attempts) of a link.
async fn link_row(app: &TestApp, id: &LinkId) -> (Option<i64>, Option<i64>, i64) {
    sqlx::query_as("SELECT revoked_at, locked_at, failed_attempts FROM pay_links WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(app.db().pool())
        .await
        .expect("link row")
}

/// The console's section for one link.
fn link_section<'a>(html: &'a str, id: &LinkId) -> &'a str {
    let start = html
        .find(&format!("id=\"link-{}\"", id.as_str()))
        .unwrap_or_else(|| panic!("link {} listed", id.as_str()));
    let end = html[start..].find("</li>").expect("end of the link") + start;
    &html[start..end]
}

async fn events(app: &TestApp, action: &str, outcome: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND outcome = '{outcome}'"
    ))
    .await
}

async fn phone_search_finds_the_patient_in_three_formats(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (elsewhere, other, _) = second_practice(&app).await;
    // The other practice also has a patient with Avery's number: its index is under that
    // practice's key, and the search looks in the caller's practice only.
    let phi = |s: &str| patriotpay::phi::Phi::new(s.to_owned());
    let twin = patriotpay::billing::import_patient(
        app.db(),
        &app.state().crypto,
        &elsewhere,
        &patriotpay::billing::NewPatient {
            first_name: phi("Dana"),
            last_name: phi("Okafor"),
            dob: phi("1990-02-02"),
            zip: phi("60601"),
            phone: phi("+15550100001"),
            account_number: phi("LP-2"),
        },
    )
    .await
    .expect("patient");
    let (staff, _) = app
        .signed_in_staff("console.search@example.org", Role::SupportAgent)
        .await;
    let avery = patient_of(&app, 1).await;
    // Demo patient 1's number is +1 555 010 0001.
    for typed in ["(555) 010-0001", "555-010-0001", "+1 555 010 0001"] {
        let r = search_phone(&staff, typed).await;
        assert_eq!(r.status(), StatusCode::OK, "{typed}");
        let body = text(&r.text().await.expect("body"));
        assert!(body.contains("Avery Quintero"), "{typed} finds Avery");
        assert!(
            body.contains(&console_path(&avery)),
            "{typed}: the result links to the console"
        );
        assert!(
            !body.contains(twin.as_str()),
            "{typed}: not the other practice's"
        );
        for other in ["Jordan", "Riley", "Sam", "Morgan", "Dana", "Okafor"] {
            assert!(!body.contains(other), "{typed} finds no one else");
        }
    }
    // The other practice's patient's number finds nobody here.
    let r = search_phone(&staff, "(555) 010-9999").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = text(&r.text().await.expect("body"));
    assert!(body.contains(&t("staff-search-none")));
    assert!(!body.contains("Casey") && !body.contains(other.as_str()));
    // A number that is none is refused with its message, and nothing is searched.
    let searches = events(&app, "patient.search", "success").await;
    for bad in ["555-0100", "555-010-000l", "+44 20 7946 0958"] {
        let r = search_phone(&staff, bad).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body = text(&r.text().await.expect("body"));
        assert!(body.contains(&t("staff-search-phone-invalid")), "{bad}");
        assert!(!body.contains("Avery"));
    }
    assert_eq!(events(&app, "patient.search", "success").await, searches);
    app.finish().await;
}

async fn the_console_shows_each_link_in_its_state(backend: Backend) {
    let app = TestApp::start(backend).await;
    let avery = patient_of(&app, 1).await;
    let (active_url, active) = link_for(&app, 1).await;
    Browser::new(&app).open_link(&active_url).await;
    let (locked_url, locked) = link_for(&app, 1).await;
    lock(&app, &locked_url).await;
    let (_, revoked) = link_for(&app, 1).await;
    let now = app.state().clock.now();
    patriotpay::links::revoke(app.db(), &revoked, now)
        .await
        .expect("revoke");
    let statement = app.statement_of(1).await;
    let (expired, _) = patriotpay::links::create(app.db(), &app.tenant, &statement, now - 1)
        .await
        .expect("expired link");

    let (staff, _) = app
        .signed_in_staff("console.agent@example.org", Role::SupportAgent)
        .await;
    let r = staff.get(&console_path(&avery)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rid = r.headers()["x-request-id"].to_str().expect("id").to_owned();
    let html = text(&r.text().await.expect("body"));
    assert!(html.contains("Avery Quintero"));
    assert!(html.contains("Nov 1, 2026"), "the statement's date");
    assert!(html.contains("Dec 1, 2026"), "its due date");
    for (id, state) in [
        (&active, "active"),
        (&locked, "locked"),
        (&revoked, "revoked"),
        (&expired, "expired"),
    ] {
        let section = link_section(&html, id);
        assert!(
            section.contains(&format!("link-state-{state}")),
            "{state}: {section}"
        );
        assert!(section.contains(&t(&format!("staff-console-link-{state}"))));
        // Revoke is offered for links that still work or could again; unlock for locked ones.
        assert_eq!(
            section.contains("/staff/links/revoke"),
            matches!(state, "active" | "locked"),
            "{state}"
        );
        assert_eq!(
            section.contains("/staff/links/unlock"),
            state == "locked",
            "{state}"
        );
    }
    let opened = link_section(&html, &active);
    assert!(
        !opened.contains(&t("staff-console-never-opened")),
        "first opened shown"
    );
    assert!(opened.contains(" UTC</dd>"));
    assert!(
        link_section(&html, &locked).contains("<dd>5</dd>"),
        "five wrong answers"
    );
    assert!(link_section(&html, &revoked).contains(&t("staff-console-never-opened")));
    // A support agent may not refund: no link to the payments page.
    assert!(!html.contains(&format!("{}/payments", console_path(&avery))));
    // The view is audited, as this request and this patient.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = '{rid}'
             AND action = 'patient.console.view' AND outcome = 'success'
             AND patient_id = '{}'",
            avery.as_str()
        ))
        .await,
        1
    );
    app.finish().await;
}

async fn post_resend(staff: &Browser, statement: &StatementId) -> reqwest::Response {
    let csrf = staff.csrf("/staff").await;
    staff
        .post(
            "/staff/links/resend",
            &[("csrf", csrf.as_str()), ("statement", statement.as_str())],
        )
        .await
}

async fn a_fresh_link_works_and_the_old_one_is_revoked(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (old_url, old) = link_for(&app, 1).await;
    let (locked_url, locked) = link_for(&app, 1).await;
    lock(&app, &locked_url).await;
    // Another statement's link is not touched.
    let (_, other) = link_for(&app, 2).await;
    let (staff, _) = app
        .signed_in_staff("console.resend@example.org", Role::SupportAgent)
        .await;
    let statement = app.statement_of(1).await;
    let r = post_resend(&staff, &statement).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = text(&r.text().await.expect("body"));
    assert!(html.contains("texted to the number ending"), "{html}");
    // Texted, not shown: the link is in the outbox only, sealed.
    assert!(!html.contains("class=\"pay-link\""));
    let texts = app.outbox().await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(
        (texts[0].channel.as_str(), texts[0].template.as_str()),
        ("sms", "pay-link")
    );
    let url = texts[0].link.clone().expect("a link in the text");
    assert!(url.starts_with(&format!("{}/p/", app.url)), "{url}");
    assert!(
        link_row(&app, &old).await.0.is_some(),
        "the old link revoked"
    );
    assert!(
        link_row(&app, &locked).await.0.is_some(),
        "the locked one too"
    );
    assert!(link_row(&app, &other).await.0.is_none());
    assert_eq!(events(&app, "paylink.resend", "success").await, 1);
    // The new link takes the patient through; the old one is dead.
    assert!(link_works(&app, &url, 1).await, "the new link works");
    assert!(
        !link_works(&app, &old_url, 1).await,
        "the old link no longer does"
    );
    // The token is stored only as its hash.
    let token = url.rsplit('/').next().expect("token");
    let dump = crate::common::dump_database(&app).await;
    assert!(
        !dump.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is nowhere in the database"
    );
    app.finish().await;
}

async fn post_link_form(staff: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let csrf = staff.csrf("/staff").await;
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    staff.post(path, &fields).await
}

async fn a_link_is_revoked(backend: Backend) {
    let app = TestApp::start(backend).await;
    let avery = patient_of(&app, 1).await;
    let (url, link) = link_for(&app, 1).await;
    let (staff, _) = app
        .signed_in_staff("console.revoke@example.org", Role::PracticeAdmin)
        .await;
    let r = post_link_form(&staff, "/staff/links/revoke", &[("link", link.as_str())]).await;
    assert_eq!(r.status(), SEE_OTHER);
    assert_eq!(location(&r), console_path(&avery));
    assert!(link_row(&app, &link).await.0.is_some());
    assert_eq!(events(&app, "paylink.revoke", "success").await, 1);
    let html = text(&staff.page(&console_path(&avery)).await);
    assert!(
        html.contains(&t("staff-console-revoked")),
        "the message follows"
    );
    assert!(link_section(&html, &link).contains("link-state-revoked"));
    // A practice admin may refund: the payments page is linked.
    assert!(html.contains(&format!("{}/payments", console_path(&avery))));
    // The message is shown once.
    let again = text(&staff.page(&console_path(&avery)).await);
    assert!(!again.contains(&t("staff-console-revoked")));
    assert!(!link_works(&app, &url, 1).await);
    // Revoking it again changes nothing and says so.
    let r = post_link_form(&staff, "/staff/links/revoke", &[("link", link.as_str())]).await;
    assert_eq!(r.status(), SEE_OTHER);
    let html = text(&staff.page(&console_path(&avery)).await);
    assert!(html.contains(&t("staff-console-revoked-already")));
    app.finish().await;
}

async fn unlocking_needs_a_reason_kept_encrypted_and_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    let avery = patient_of(&app, 1).await;
    let (url, link) = link_for(&app, 1).await;
    lock(&app, &url).await;
    assert!(link_row(&app, &link).await.1.is_some(), "locked");
    assert!(
        !link_works(&app, &url, 1).await,
        "a locked link takes no answers"
    );
    let (staff, user) = app
        .signed_in_staff("console.unlock@example.org", Role::SupportAgent)
        .await;

    // No reason, or one too long: refused with the message and what was typed; nothing changes.
    for (typed, message) in [
        ("   ", "staff-console-unlock-empty"),
        (&*"x".repeat(501), "staff-console-unlock-too-long"),
    ] {
        let r = post_link_form(
            &staff,
            "/staff/links/unlock",
            &[("link", link.as_str()), ("reason", typed)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = text(&r.text().await.expect("body"));
        assert!(html.contains(&t(message)), "{message}");
        assert!(html.contains(&format!(">{typed}</textarea>")), "typed kept");
        assert!(link_row(&app, &link).await.1.is_some(), "still locked");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_link_unlocks").await, 0);
    assert_eq!(events(&app, "paylink.unlock", "success").await, 0);

    let reason = "Caller gave Avery's date of birth and ZIP; callback to number on file";
    let r = post_link_form(
        &staff,
        "/staff/links/unlock",
        &[("link", link.as_str()), ("reason", reason)],
    )
    .await;
    assert_eq!(r.status(), SEE_OTHER);
    assert_eq!(location(&r), console_path(&avery));
    assert_eq!(
        link_row(&app, &link).await,
        (None, None, 0),
        "lock and count cleared"
    );
    let html = text(&staff.page(&console_path(&avery)).await);
    assert!(html.contains(&t("staff-console-unlocked")));
    assert!(link_section(&html, &link).contains("link-state-active"));

    // Recorded: by whom, with the count it had, the reason only as ciphertext bound to its row.
    let (id, by, failed, ct): (String, String, i64, Vec<u8>) = sqlx::query_as(
        "SELECT id, unlocked_by, failed_attempts, reason_ct FROM pay_link_unlocks WHERE link_id = $1",
    )
    .bind(link.as_str())
    .fetch_one(app.db().pool())
    .await
    .expect("unlock row");
    assert_eq!(by, user.as_str());
    assert_eq!(failed, 5);
    let crypto = &app.state().crypto;
    let clear = crypto
        .decrypt_str(patriotpay::link_admin::reason_aad(&app.tenant, &id), &ct)
        .await
        .expect("decrypts under its row");
    assert_eq!(clear.expose(), reason);
    assert!(crypto
        .decrypt_str(
            patriotpay::link_admin::reason_aad(&app.tenant, "ulk_other"),
            &ct
        )
        .await
        .is_err());
    let dump = crate::common::dump_database(&app).await;
    assert!(
        !dump.windows(20).any(|w| w == &reason.as_bytes()[..20]),
        "the reason is nowhere in the clear"
    );
    // `keys rotate` then `keys reencrypt` carry it to the practice's new key, still readable.
    patriotpay::keys::rotate(app.db(), crypto, Some(&app.tenant), false)
        .await
        .expect("rotate");
    patriotpay::keys::reencrypt(app.db(), crypto, Some(&app.tenant), 100, false)
        .await
        .expect("reencrypt");
    let moved: Vec<u8> = sqlx::query_scalar("SELECT reason_ct FROM pay_link_unlocks WHERE id = $1")
        .bind(&id)
        .fetch_one(app.db().pool())
        .await
        .expect("unlock row");
    assert_ne!(moved, ct, "re-encrypted under the new key");
    let clear = crypto
        .decrypt_str(patriotpay::link_admin::reason_aad(&app.tenant, &id), &moved)
        .await
        .expect("still decrypts");
    assert_eq!(clear.expose(), reason);
    // The change's audit event, by this staff member, on this patient and link.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'paylink.unlock' AND outcome = 'success'
             AND actor = 'user:{}' AND patient_id = '{}' AND resource = '{}'",
            user.as_str(),
            avery.as_str(),
            link.as_str()
        ))
        .await,
        1
    );
    // The patient gets through again.
    assert!(link_works(&app, &url, 1).await);
    // A link that is not locked is left as it is.
    let r = post_link_form(
        &staff,
        "/staff/links/unlock",
        &[("link", link.as_str()), ("reason", reason)],
    )
    .await;
    assert_eq!(r.status(), SEE_OTHER);
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_link_unlocks").await, 1);
    let html = text(&staff.page(&console_path(&avery)).await);
    assert!(html.contains(&t("staff-console-not-locked")));
    app.finish().await;
}

async fn another_practices_patient_and_links_are_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (tenant, casey, statement) = second_practice(&app).await;
    let now = app.state().clock.now();
    let (theirs, _) = patriotpay::links::create(app.db(), &tenant, &statement, now + 86_400)
        .await
        .expect("link");
    sqlx::query("UPDATE pay_links SET locked_at = $1, failed_attempts = 5 WHERE id = $2")
        .bind(now)
        .bind(theirs.as_str())
        .execute(app.db().pool())
        .await
        .expect("lock");
    // A support agent of the demo practice: Casey is another practice's patient.
    let (staff, _) = app
        .signed_in_staff("console.elsewhere@example.org", Role::SupportAgent)
        .await;
    let denied_before = app
        .count("SELECT COUNT(*) FROM audit_events WHERE outcome = 'denied'")
        .await;

    let r = staff.get(&console_path(&casey)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.expect("body").contains("Casey"));
    let unknown = PatientId::generate();
    assert_eq!(
        staff.get(&console_path(&unknown)).await.status(),
        StatusCode::NOT_FOUND
    );
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/staff/links/resend",
            vec![("statement", statement.as_str())],
        ),
        ("/staff/links/revoke", vec![("link", theirs.as_str())]),
        (
            "/staff/links/unlock",
            vec![
                ("link", theirs.as_str()),
                ("reason", "confirmed on the phone"),
            ],
        ),
        // A refused reason still does not show another practice's patient.
        (
            "/staff/links/unlock",
            vec![("link", theirs.as_str()), ("reason", "")],
        ),
    ];
    for (path, form) in &forms {
        let r = post_link_form(&staff, path, form).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} {form:?}");
        assert!(!r.text().await.expect("body").contains("Casey"));
    }
    // Nothing changed, and every attempt was recorded as refused.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM pay_links WHERE statement_id = '{}'",
            statement.as_str()
        ))
        .await,
        1,
        "no new link"
    );
    let (revoked, locked, failed) = link_row(&app, &theirs).await;
    assert_eq!((revoked, locked.is_some(), failed), (None, true, 5));
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_link_unlocks").await, 0);
    for action in ["paylink.resend", "paylink.revoke", "paylink.unlock"] {
        assert!(
            app.count(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND outcome = 'denied'
                 AND patient_id = '{}'",
                casey.as_str()
            ))
            .await
                >= 1,
            "{action} refusal audited"
        );
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'patient.console.view'
             AND outcome = 'denied' AND patient_id = '{}'",
            casey.as_str()
        ))
        .await,
        2,
        "the page and the refused reason's page"
    );
    let denied_after = app
        .count("SELECT COUNT(*) FROM audit_events WHERE outcome = 'denied'")
        .await;
    // The two pages and the four forms: one refusal each.
    assert_eq!(denied_after - denied_before, 2 + forms.len() as i64);
    app.finish().await;
}

async fn a_security_officer_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let avery = patient_of(&app, 1).await;
    let (_, link) = link_for(&app, 1).await;
    let statement = app.statement_of(1).await;
    let (officer, _) = app
        .signed_in_staff("console.officer@example.org", Role::SecurityOfficer)
        .await;
    assert_eq!(
        officer.get(&console_path(&avery)).await.status(),
        StatusCode::FORBIDDEN
    );
    for (path, form) in [
        (
            "/staff/links/resend",
            vec![("statement", statement.as_str())],
        ),
        ("/staff/links/revoke", vec![("link", link.as_str())]),
        (
            "/staff/links/unlock",
            vec![("link", link.as_str()), ("reason", "confirmed")],
        ),
    ] {
        let r = post_link_form(&officer, path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(link_row(&app, &link).await.0, None, "not revoked");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM pay_links WHERE statement_id = '{}'",
            statement.as_str()
        ))
        .await,
        1
    );
    app.finish().await;
}
