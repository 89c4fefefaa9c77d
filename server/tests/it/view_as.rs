//! View as a patient (issue 11): starting needs the role, a reason and a ticket, and cycles the
//! session id; the banner on every page; every change refused (walked over the route table) and
//! audited; act on behalf only where a practice admin turned it on, with consent noted, and the
//! receipt naming who took it; the 30-minute end and the end with the staff session; staff
//! accounts and other practices' patients never viewed; every page an event with the staff
//! member as actor and the patient as on-behalf-of; "who viewed my record" shows the reason.
//! Both databases.

use crate::common::{
    location, patient_account, patient_of, second_practice, session_cookie, t, ta, text, Backend,
    Browser, TestApp,
};
use patriotpay::access::Role;
use patriotpay::accounts::{self, StaffName};
use patriotpay::ids::{PatientId, UserId};
use reqwest::{Method, StatusCode};

both_backends!(
    starting_needs_the_role_a_reason_and_a_ticket,
    the_banner_is_on_every_page_and_every_view_is_audited,
    every_change_is_refused_and_audited,
    act_on_behalf_only_when_enabled_and_with_consent,
    a_view_ends_after_thirty_minutes_and_with_the_staff_session,
    staff_and_other_practices_patients_are_never_viewed,
    a_patient_with_an_account_is_viewed_through_it_and_sees_the_view_listed,
);

const REASON: &str = "Caller asked why the balance changed";
const TICKET: &str = "SUP-4711";

async fn named(app: &TestApp, email: &str, role: Role, name: &str) -> (Browser, UserId) {
    let (b, user) = app.signed_in_staff(email, role).await;
    let name = StaffName::parse(name).expect("name");
    assert!(accounts::rename(app.db(), &user, &name)
        .await
        .expect("rename"));
    (b, user)
}

/// Posts the start form; the token comes from the staff home page.
async fn start(b: &Browser, patient: &str, reason: &str, ticket: &str) -> reqwest::Response {
    let csrf = b.csrf("/staff").await;
    b.post(
        "/staff/view-as",
        &[
            ("csrf", &csrf),
            ("patient", patient),
            ("reason", reason),
            ("ticket", ticket),
        ],
    )
    .await
}

async fn views(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM view_as_sessions")
        .fetch_one(app.db().pool())
        .await
        .expect("count")
}

/// (actor, on_behalf_of, patient, outcome, resource) of every event named `action`, in order.
async fn events(
    app: &TestApp,
    action: &str,
) -> Vec<(
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
)> {
    sqlx::query_as(
        "SELECT actor, on_behalf_of, patient_id, outcome, resource FROM audit_events
         WHERE action = $1 ORDER BY seq",
    )
    .bind(action)
    .fetch_all(app.db().pool())
    .await
    .expect("events")
}

fn full_name(n: usize) -> String {
    let p = &patriotpay::demo::PATIENTS[n - 1];
    format!("{} {}", p.first_name, p.last_name)
}

async fn starting_needs_the_role_a_reason_and_a_ticket(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.link(1).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, _) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    for (reason, ticket, flash) in [
        ("", TICKET, "viewas-err-reason"),
        (REASON, "", "viewas-err-ticket"),
        (REASON, "SUP 1; DROP", "viewas-err-ticket"),
    ] {
        let r = start(&agent, p1.as_str(), reason, ticket).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{reason:?} {ticket:?}");
        assert!(location(&r).starts_with("/staff"));
        let back = text(&agent.page(&location(&r)).await);
        assert!(back.contains(&t(flash)), "{flash} shown");
        assert_eq!(views(&app).await, 0, "nothing started");
    }
    // Staff without a practice role (a security officer) may not.
    let (officer, _) = app
        .signed_in_staff("sec@example.org", Role::SecurityOfficer)
        .await;
    let r = start(&officer, p1.as_str(), REASON, TICKET).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(views(&app).await, 0);

    let before = agent.get("/staff").await;
    assert_eq!(before.status(), StatusCode::OK);
    let r = start(&agent, p1.as_str(), REASON, TICKET).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/summary", "a patient without an account");
    assert!(
        session_cookie(&r).is_some(),
        "the session id cycles when the view starts"
    );
    assert_eq!(views(&app).await, 1);
    // The reason is kept encrypted; the ticket is on record as typed.
    let (ticket, ct): (String, Vec<u8>) =
        sqlx::query_as("SELECT ticket, reason_ct FROM view_as_sessions")
            .fetch_one(app.db().pool())
            .await
            .expect("row");
    assert_eq!(ticket, TICKET);
    assert!(!String::from_utf8_lossy(&ct).contains("balance changed"));
    let started = events(&app, "viewas.start").await;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].2.as_deref(), Some(p1.as_str()));
    assert_eq!(started[0].3, "success");
    let stop = agent.csrf("/summary").await;
    let r = agent.post("/staff/view-as/stop", &[("csrf", &stop)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&r).is_some(), "and cycles when it stops");
    assert_eq!(events(&app, "viewas.stop").await.len(), 1);
    assert_ne!(agent.get("/summary").await.status(), StatusCode::OK);
    app.finish().await;
}

async fn the_banner_is_on_every_page_and_every_view_is_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.link(1).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, agent_id) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/summary"
    );
    for page in ["/summary", "/statement", "/record-views"] {
        let html = text(&agent.page(page).await);
        assert!(html.contains("view-as-banner"), "{page} has the banner");
        assert!(html.contains("Ana Diaz, you are viewing as"), "{page}");
        assert!(html.contains(&full_name(1)), "{page} names the patient");
        assert!(html.contains("30 min left"), "{page}: {html}");
        assert!(html.contains(&t("viewas-read-only")), "{page}");
        assert!(
            !html.contains(&format!("action=\"{}\"", "/signout")),
            "{page}: the patient's sign-out is not offered"
        );
    }
    app.state().clock.advance(10 * 60);
    assert!(text(&agent.page("/summary").await).contains("20 min left"));
    // Each page view: the staff member acts, on behalf of whoever holds the link.
    for action in ["statement.summary.view", "statement.itemised.view"] {
        let seen = events(&app, action).await;
        assert!(!seen.is_empty(), "{action}");
        for (actor, on_behalf_of, patient, outcome, _) in seen {
            assert_eq!(actor, format!("user:{agent_id}"));
            assert!(on_behalf_of.is_some_and(|o| o.starts_with("link:")));
            assert_eq!(patient.as_deref(), Some(p1.as_str()));
            assert_eq!(outcome, "success");
        }
    }
    // The verify pages are the patient's own questions: staff are sent to the summary.
    assert_eq!(location(&agent.get("/verify").await), "/summary");
    app.finish().await;
}

/// Form posts a view may always make.
const ALWAYS: [&str; 3] = [
    "/staff/view-as/stop",
    "/staff/signout",
    "/staff/view-as/consent",
];

async fn every_change_is_refused_and_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.link(1).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, _) = named(&app, "ana@example.org", Role::PracticeAdmin, "Ana Diaz").await;
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/summary"
    );
    let csrf = agent.csrf("/summary").await;
    let table = patriotpay::http::route_table(app.state());
    let forms: Vec<&str> = table
        .iter()
        .filter(|r| r.method == Method::POST && r.kind.is_form())
        .map(|r| r.path)
        .filter(|p| !ALWAYS.contains(p))
        .collect();
    assert!(forms.len() >= 25, "{} forms", forms.len());
    for path in &forms {
        let url = path.replace('{', "x").replace('}', "");
        let r = agent
            .post(
                &url,
                &[("csrf", &csrf), ("amount", "5.00"), ("from", "summary")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "POST {path}");
        let body = text(&r.text().await.expect("body"));
        assert!(body.contains(&t("viewas-refused")), "{path} says why");
        assert!(body.contains("view-as-banner"), "{path} keeps the banner");
    }
    let refused = events(&app, "viewas.change").await;
    assert_eq!(refused.len(), forms.len(), "one event per refusal");
    for (_, on_behalf_of, patient, outcome, _) in &refused {
        assert_eq!(outcome, "denied");
        assert_eq!(on_behalf_of.as_deref(), Some(&*format!("patient:{p1}")));
        assert_eq!(patient.as_deref(), Some(p1.as_str()));
    }
    let checkouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkouts")
        .fetch_one(app.db().pool())
        .await
        .expect("count");
    assert_eq!(checkouts, 0, "no payment was started");
    // The view itself is still on.
    assert_eq!(agent.get("/summary").await.status(), StatusCode::OK);
    app.finish().await;
}

async fn set_act_on_behalf(admin: &Browser, app: &TestApp, on: &str) -> reqwest::Response {
    let csrf = admin.csrf("/staff/act-on-behalf").await;
    admin
        .post(
            "/staff/act-on-behalf",
            &[
                ("csrf", &csrf),
                ("practice", app.tenant.as_str()),
                ("enabled", on),
            ],
        )
        .await
}

async fn act_on_behalf_only_when_enabled_and_with_consent(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.link(1).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, agent_id) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    let (admin, _) = named(&app, "dana@example.org", Role::PracticeAdmin, "Dana Ruiz").await;
    // A support agent may not change the setting.
    assert_eq!(
        agent.get("/staff/act-on-behalf").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/summary"
    );
    let csrf = agent.csrf("/summary").await;
    // Off: consent cannot be noted and a payment is refused.
    let r = agent
        .post("/staff/view-as/consent", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(agent.pay("5.00").await.status(), StatusCode::FORBIDDEN);

    let r = set_act_on_behalf(&admin, &app, "on").await;
    assert_eq!(location(&r), "/staff/act-on-behalf");
    assert!(text(&admin.page("/staff/act-on-behalf").await).contains(&t("act-on-behalf-on")));
    assert_eq!(events(&app, "practice.act-on-behalf.on").await.len(), 1);
    let html = text(&agent.page("/summary").await);
    assert!(html.contains(&t("viewas-act-consent-needed")));
    // On, but no consent noted yet.
    let r = agent.pay("5.00").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(text(&r.text().await.expect("body")).contains(&t("viewas-refused-consent")));
    // Consent noted: one payment goes through, recorded as taken by the agent.
    let r = agent
        .post("/staff/view-as/consent", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&r), "/summary");
    let summary = agent.page("/summary").await;
    assert!(text(&summary).contains(&t("viewas-act-consent-noted")));
    // The notice is the page's, not an error on the pay form (whose amount stays the balance).
    assert!(
        summary.contains(&format!(">{}</p>", t("viewas-consent-noted"))),
        "{summary}"
    );
    assert!(summary.contains("value=\"112.00\""), "{summary}");
    assert!(!summary.contains("aria-invalid"), "{summary}");
    let checkout = location(&agent.pay("5.00").await);
    assert!(checkout.starts_with(&app.sandbox_url), "{checkout}");
    let back = location(&agent.card(&checkout, "4242 4242 4242 4242").await);
    let receipt = location(&agent.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
    let html = text(&agent.page(&receipt).await);
    assert!(
        html.contains(&ta("receipt-taken-by", &[("staff", "Ana Diaz")])),
        "the receipt says who took it"
    );
    let taken_by: Option<String> = sqlx::query_scalar("SELECT taken_by FROM checkouts")
        .fetch_one(app.db().pool())
        .await
        .expect("checkout");
    assert_eq!(taken_by.as_deref(), Some(agent_id.as_str()));
    assert_eq!(events(&app, "viewas.act-on-behalf").await.len(), 1);
    // The consent covered one payment only.
    assert_eq!(agent.pay("1.00").await.status(), StatusCode::FORBIDDEN);
    // Turned off again: read-only.
    set_act_on_behalf(&admin, &app, "off").await;
    assert!(text(&agent.page("/summary").await).contains(&t("viewas-read-only")));
    app.finish().await;
}

async fn a_view_ends_after_thirty_minutes_and_with_the_staff_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.link(1).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, _) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/summary"
    );
    // Active all along (the staff idle timeout is 15 minutes), the view still ends at 30.
    for _ in 0..2 {
        app.state().clock.advance(14 * 60);
        assert_eq!(agent.get("/summary").await.status(), StatusCode::OK);
    }
    app.state().clock.advance(3 * 60);
    let r = agent.get("/summary").await;
    let console = format!("/staff/patients/{p1}");
    assert_eq!(location(&r), console, "the patient's pages are gone");
    let page = text(&agent.page(&console).await);
    assert!(
        page.contains(&t("viewas-expired")),
        "and the staff member is told"
    );
    assert!(!page.contains("view-as-banner"));
    assert_eq!(events(&app, "viewas.expire").await.len(), 1);

    // A new view ends when the staff member signs out.
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/summary"
    );
    let csrf = agent.csrf("/summary").await;
    let r = agent.post("/staff/signout", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), "/staff/login");
    assert_ne!(agent.get("/summary").await.status(), StatusCode::OK);
    let ended: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT ended_at FROM view_as_sessions ORDER BY started_at")
            .fetch_all(app.db().pool())
            .await
            .expect("rows");
    assert_eq!(ended.len(), 2);
    assert!(
        ended[0].is_none(),
        "the first ran out (its end is its expiry)"
    );
    assert!(ended[1].is_some(), "the second ended with the sign-out");
    app.finish().await;
}

async fn staff_and_other_practices_patients_are_never_viewed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (agent, agent_id) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    let (_, admin_id) = app
        .signed_in_staff("dana@example.org", Role::PracticeAdmin)
        .await;
    // A staff member's id is no patient's.
    for id in [admin_id.as_str(), agent_id.as_str(), "pat_nonexistent"] {
        let r = start(&agent, id, REASON, TICKET).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{id}");
    }
    // Another practice's patient: not found, and the attempt recorded.
    let (_, other_patient, _) = second_practice(&app).await;
    let r = start(&agent, other_patient.as_str(), REASON, TICKET).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let refused = events(&app, "viewas.start").await;
    assert!(refused.iter().all(|e| e.3 == "denied"));
    assert!(refused
        .iter()
        .any(|e| e.2.as_deref() == Some(other_patient.as_str())));
    // A patient whose grant is held by a staff account (never made so; forced here): refused.
    let p2 = patient_of(&app, 2).await;
    grant_patient_to(&app, &admin_id, &p2).await;
    let r = start(&agent, p2.as_str(), REASON, TICKET).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(views(&app).await, 0);
    app.finish().await;
}

async fn grant_patient_to(app: &TestApp, user: &UserId, patient: &PatientId) {
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, patient_id, created_at)
         VALUES ($1, 'patient', $2, $3, 0)",
    )
    .bind(user.as_str())
    .bind(app.tenant.as_str())
    .bind(patient.as_str())
    .execute(app.db().pool())
    .await
    .expect("grant");
}

async fn a_patient_with_an_account_is_viewed_through_it_and_sees_the_view_listed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let email = "pat1@example.org";
    let patient = patient_account(&app, 1, email).await;
    let p1 = patient_of(&app, 1).await;
    let (agent, agent_id) = named(&app, "ana@example.org", Role::SupportAgent, "Ana Diaz").await;
    assert_eq!(
        location(&start(&agent, p1.as_str(), REASON, TICKET).await),
        "/account"
    );
    let html = text(&agent.page("/account").await);
    assert!(html.contains("view-as-banner") && html.contains(&full_name(1)));
    // Link pages send the staff member to the account, as the patient's own pages.
    assert_eq!(location(&agent.get("/summary").await), "/account");
    let seen = events(&app, "household.view").await;
    let mine: Vec<_> = seen
        .iter()
        .filter(|e| e.0 == format!("user:{agent_id}"))
        .collect();
    assert!(
        !mine.is_empty(),
        "the account page was audited as the agent's"
    );
    assert!(mine
        .iter()
        .all(|e| e.1.as_deref().is_some_and(|o| o.starts_with("user:usr_"))));
    // A change on the account: refused.
    let csrf = agent.csrf("/account").await;
    let r = agent
        .post(
            "/account/guarantors/invite",
            &[
                ("csrf", &csrf),
                ("patient", p1.as_str()),
                ("email", "g@example.org"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let stop = agent.post("/staff/view-as/stop", &[("csrf", &csrf)]).await;
    assert_eq!(stop.status(), StatusCode::SEE_OTHER);

    // The patient reads who viewed their record, with the reason and the ticket.
    let list = text(&patient.page("/account/record-views").await);
    assert!(list.contains("Ana Diaz of"), "{list}");
    assert!(list.contains(&t("record-views-did-view-as")), "{list}");
    assert!(list.contains(REASON) && list.contains(TICKET), "{list}");
    app.finish().await;
}
