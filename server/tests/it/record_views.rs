//! "Who viewed my record" (issue 11): staff views of a patient's data as the patient reads them,
//! signed in or on a pay link with both answers; an emergency grant's reason, and when it is
//! withheld; a refused attempt from another practice; nothing of another patient, of system
//! actors or of the patient's own visits; a guarantor sees none of a dependant's; pages of 50.
//! Both databases.

use crate::common::{
    answers, guarantor_of_4, location, patient_of, pay_five_dollars_by_link, second_practice, t,
    text, Backend, Browser, TestApp, SEE_OTHER,
};
use patriotpay::access::Role;
use patriotpay::accounts::{self, StaffName};
use patriotpay::ids::{PatientId, UserId};
use reqwest::StatusCode;

both_backends!(
    a_patient_reads_staff_views_in_plain_words,
    an_emergency_shows_its_reason_unless_it_covered_others,
    a_verified_visitor_sees_the_list_and_a_dob_only_one_is_sent_for_the_zip,
    only_staff_views_of_this_patient_are_listed,
    a_guarantor_does_not_see_a_dependants_views,
    fifty_a_page_newest_first,
);

const REASON: &str = "Patient called about a suspected duplicate charge";

/// A staff member of the demo practice with a display name, signed in with the second factor.
async fn named_staff(app: &TestApp, email: &str, role: Role, name: &str) -> (Browser, UserId) {
    let (b, user) = app.signed_in_staff(email, role).await;
    let name = StaffName::parse(name).expect("name");
    assert!(accounts::rename(app.db(), &user, &name)
        .await
        .expect("rename"));
    (b, user)
}

fn payments(p: &PatientId) -> String {
    format!("/staff/patients/{}/payments", p.as_str())
}

async fn practice(app: &TestApp) -> String {
    patriotpay::billing::tenant(app.db(), &app.tenant)
        .await
        .expect("query")
        .expect("practice")
        .name
}

/// "Nov 30, 2026": the day the test clock reads now.
fn today(app: &TestApp) -> String {
    patriotpay::clock::display_date_unix(app.state().clock.now())
}

async fn views_page(b: &Browser, path: &str) -> String {
    let r = b.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    text(&r.text().await.expect("body"))
}

async fn a_patient_reads_staff_views_in_plain_words(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p1 = patient_of(&app, 1).await;
    let (admin, _) = named_staff(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    assert_eq!(admin.get(&payments(&p1)).await.status(), StatusCode::OK);
    // An admin of another practice asks for the same page: refused, and listed as such.
    let (other, _, _) = second_practice(&app).await;
    let (outsider, outsider_id) =
        named_staff(&app, "sam@example.org", Role::PracticeAdmin, "Sam Okafor").await;
    sqlx::query("UPDATE user_grants SET tenant_id = $1 WHERE user_id = $2")
        .bind(other.as_str())
        .bind(outsider_id.as_str())
        .execute(app.db().pool())
        .await
        .expect("move grant");
    assert!(!outsider.get(&payments(&p1)).await.status().is_success());
    // A staff member made before names existed.
    let (unnamed, _) = app
        .signed_in_staff("old.hand@example.org", Role::PracticeAdmin)
        .await;
    assert_eq!(unnamed.get(&payments(&p1)).await.status(), StatusCode::OK);

    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let account = text(&member.page("/account").await);
    assert!(account.contains(&t("record-views-link")), "{account}");
    let page = views_page(&member, "/account/record-views").await;
    let practice = practice(&app).await;
    let other_name = patriotpay::billing::tenant(app.db(), &other)
        .await
        .expect("query")
        .expect("practice")
        .name;
    let day = today(&app);
    for line in [
        format!("Dana Ruiz of {practice} viewed your payments on {day}"),
        format!("Sam Okafor of {other_name} tried to view your payments on {day}"),
        format!("A staff member of {practice} viewed your payments on {day}"),
    ] {
        assert!(page.contains(&line), "{line:?} in {page}");
    }
    // Newest first.
    let (a, b) = (page.find("A staff member"), page.find("Dana Ruiz"));
    assert!(a < b, "{page}");
    // Viewing the page is audited, and not listed.
    let seen: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'record_views.view' AND patient_id = $1",
    )
    .bind(p1.as_str())
    .fetch_one(app.db().pool())
    .await
    .expect("count");
    assert_eq!(seen, 1);
    assert_eq!(page.matches(" your payments on ").count(), 3, "{page}");
    app.finish().await;
}

async fn an_emergency_shows_its_reason_unless_it_covered_others(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p1 = patient_of(&app, 1).await;
    let (officer, _) = named_staff(
        &app,
        "officer@example.org",
        Role::SecurityOfficer,
        "Lee Park",
    )
    .await;
    let csrf = officer.csrf("/staff").await;
    let r = officer
        .post(
            "/staff/break-glass",
            &[
                ("csrf", &csrf),
                ("practice", app.tenant.as_str()),
                ("role", "practice-admin"),
                ("minutes", "30"),
                ("reason", REASON),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(officer.get(&payments(&p1)).await.status(), StatusCode::OK);
    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let page = views_page(&member, "/account/record-views").await;
    assert!(
        page.contains(&format!(
            "Lee Park of {} viewed your payments",
            practice(&app).await
        )),
        "{page}"
    );
    assert!(page.contains(&format!("Reason given: {REASON}")), "{page}");
    // On the pay link the same view is listed without the reason (free text a staff member
    // wrote, for the signed-in patient only).
    let visitor = app.verified_visitor(1).await;
    let page = views_page(&visitor, "/record-views").await;
    assert!(page.contains("Lee Park of"), "{page}");
    assert!(!page.contains(REASON), "{page}");
    assert!(page.contains(&t("record-views-emergency-link")), "{page}");

    // The same grant then opens another patient's record: its reason may name them, so patient
    // 1 no longer reads it.
    app.state().clock.advance(60);
    let p2 = patient_of(&app, 2).await;
    assert_eq!(officer.get(&payments(&p2)).await.status(), StatusCode::OK);
    let page = views_page(&member, "/account/record-views").await;
    assert!(!page.contains(REASON), "{page}");
    assert!(
        page.contains(&t("record-views-emergency-withheld")),
        "{page}"
    );
    app.finish().await;
}

async fn a_verified_visitor_sees_the_list_and_a_dob_only_one_is_sent_for_the_zip(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p1 = patient_of(&app, 1).await;
    let (admin, _) = named_staff(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    assert_eq!(admin.get(&payments(&p1)).await.status(), StatusCode::OK);
    let line = format!(
        "Dana Ruiz of {} viewed your payments on {}",
        practice(&app).await,
        today(&app)
    );

    let visitor = app.verified_visitor(1).await;
    assert!(visitor
        .page("/summary")
        .await
        .contains("href=\"/record-views\""));
    let page = views_page(&visitor, "/record-views").await;
    assert!(page.contains(&line), "{page}");

    let dob_only = Browser::new(&app);
    dob_only.open_link(&app.link(1).await).await;
    let (m, d, y, _) = answers(1);
    assert_eq!(location(&dob_only.submit_dob(&m, &d, &y).await), "/summary");
    let r = dob_only.get("/record-views").await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/verify/zip".into())
    );
    assert!(!r.text().await.expect("body").contains("Dana Ruiz"));
    // Nobody at all: no session from a link.
    let stranger = Browser::new(&app);
    let r = stranger.get("/record-views").await;
    assert!(!r.status().is_success());
    assert!(!r.text().await.expect("body").contains("Dana Ruiz"));
    app.finish().await;
}

async fn only_staff_views_of_this_patient_are_listed(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Patient 1 pays from their link: the link visitor's own views, and the webhook's and
    // processor jobs' system events, all name patient 1.
    let payer = Browser::new(&app);
    pay_five_dollars_by_link(&app, &payer, 1).await;
    app.run_jobs().await;
    let p1 = patient_of(&app, 1).await;
    for (like, what) in [("system:%", "system"), ("link:%", "pay-link")] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE patient_id = $1 AND actor LIKE $2",
        )
        .bind(p1.as_str())
        .bind(like)
        .fetch_one(app.db().pool())
        .await
        .expect("count");
        assert!(n > 0, "the payment left {what} events about patient 1");
    }
    // Staff look at patient 2 only.
    let (admin, _) = named_staff(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    let p2 = patient_of(&app, 2).await;
    assert_eq!(admin.get(&payments(&p2)).await.status(), StatusCode::OK);

    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    views_page(&member, "/account/record-views").await;
    let page = views_page(&member, "/account/record-views").await;
    assert!(page.contains(&t("record-views-none")), "{page}");
    assert!(!page.contains("Dana Ruiz"), "{page}");
    // Patient 2 does see it.
    let (two, _) = app.signed_in_member(2, "blake@example.org").await;
    let page = views_page(&two, "/account/record-views").await;
    assert!(page.contains("Dana Ruiz"), "{page}");
    app.finish().await;
}

/// The policy gives `ViewOwnAccessLog` to patients only: a guarantor's account lists nothing
/// of the dependant's, while the dependant (on their own link) sees the view.
async fn a_guarantor_does_not_see_a_dependants_views(backend: Backend) {
    let app = TestApp::start(backend).await;
    let guarantor = guarantor_of_4(&app, "parent@example.org").await;
    let (admin, _) = named_staff(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    let p4 = patient_of(&app, 4).await;
    assert_eq!(admin.get(&payments(&p4)).await.status(), StatusCode::OK);

    let page = views_page(&guarantor, "/account/record-views").await;
    assert!(!page.contains("Dana Ruiz"), "{page}");
    assert!(page.contains(&t("record-views-none")), "{page}");
    let asked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'record_views.view'")
            .fetch_one(app.db().pool())
            .await
            .expect("count");
    assert_eq!(asked, 0, "no record of the guarantor's own to ask about");

    let dependant = app.verified_visitor(4).await;
    let page = views_page(&dependant, "/record-views").await;
    assert!(page.contains("Dana Ruiz"), "{page}");
    app.finish().await;
}

async fn fifty_a_page_newest_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p1 = patient_of(&app, 1).await;
    let (admin, _) = named_staff(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    for _ in 0..51 {
        assert_eq!(admin.get(&payments(&p1)).await.status(), StatusCode::OK);
    }
    let (member, _) = app.signed_in_member(1, "avery@example.org").await;
    let r = member.get("/account/record-views").await;
    let html = r.text().await.expect("body");
    assert_eq!(html.matches("viewed your payments").count(), 50, "{html}");
    let first_seq: i64 = sqlx::query_scalar(
        "SELECT MIN(seq) FROM audit_events WHERE action = 'patient.payments.view'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("seq");
    let second_seq: i64 = sqlx::query_scalar(
        "SELECT MIN(seq) FROM audit_events WHERE action = 'patient.payments.view' AND seq > $1",
    )
    .bind(first_seq)
    .fetch_one(app.db().pool())
    .await
    .expect("seq");
    // The older page starts after the last one shown: the second oldest view.
    let older = format!("/account/record-views?before={second_seq}");
    assert!(html.contains(&format!("href=\"{older}\"")), "{html}");
    let rest = member.page(&older).await;
    assert_eq!(rest.matches("viewed your payments").count(), 1, "{rest}");
    // No link to an older page (the language switch keeps this page's own query).
    let paging = rest
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .filter(|h| h.contains("?before=") && !h.contains("lang="))
        .count();
    assert_eq!(paging, 0, "{rest}");
    app.finish().await;
}
