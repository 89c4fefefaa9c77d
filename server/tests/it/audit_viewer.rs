//! The audit viewer (issue 11) as a security officer's browser uses it: each filter, paging by
//! the `before` cursor, another practice's events never shown nor reachable, roles without
//! `ViewAuditLog` refused, a bad date refused with its message and nothing read, and every view
//! recorded as `audit.view`. Both databases.

use crate::common::{patient_of, second_practice, t, text, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::audit::chain::{self, Sealing};
use patriotpay::audit::{self, Actor, Event, Outcome};
use patriotpay::ids::{PatientId, TenantId, UserId};
use reqwest::StatusCode;

both_backends!(
    an_officer_filters_their_practice_by_each_filter,
    pages_follow_the_cursor_newest_first,
    another_practice_is_never_shown,
    roles_without_the_audit_log_are_refused,
    a_bad_date_is_refused_and_nothing_is_read,
    an_auditor_sees_the_log_and_every_view_is_recorded,
);

/// 2020-03-01 00:00:00 UTC: seeded events are dated long before anything the test clock writes.
const DAY1: i64 = 1_583_020_800;
const DAY: i64 = 86_400;

/// Which seeds a filter should find.
type Matches = Box<dyn Fn(&Seed) -> bool>;

/// One seeded event; its resource (`key`) names it on the page.
struct Seed {
    key: String,
    tenant: TenantId,
    actor: &'static str,
    patient: Option<PatientId>,
    action: &'static str,
    at: i64,
    address: &'static str,
}

async fn record(app: &TestApp, s: &Seed) {
    let actor = Actor {
        id: s.actor.to_owned(),
        on_behalf_of: None,
        request_id: Some(format!("req-{}", s.key)),
        address: Some(s.address.to_owned()),
        at: Some(s.at),
    };
    audit::record(
        app.db().pool(),
        Event {
            actor: &actor,
            tenant: Some(&s.tenant),
            patient: s.patient.as_ref(),
            action: s.action,
            resource: Some(&s.key),
            outcome: Outcome::Success,
        },
    )
    .await
    .expect("record");
}

/// Events in the demo practice over three days, two actors, two patients, two addresses and two
/// actions; and the same actors, actions and addresses in a second practice.
async fn seed(app: &TestApp) -> Vec<Seed> {
    let (other, other_patient, _) = second_practice(app).await;
    let (p1, p2) = (patient_of(app, 1).await, patient_of(app, 2).await);
    let mut out = vec![];
    for i in 0..12_i64 {
        let home = i % 4 != 3;
        let (tenant, patient) = if home {
            let p = [Some(p1.clone()), Some(p2.clone()), None][(i % 3) as usize].clone();
            (app.tenant.clone(), p)
        } else {
            (other.clone(), Some(other_patient.clone()))
        };
        let s = Seed {
            key: format!("ev-{}-{i}", if home { "a" } else { "b" }),
            tenant,
            actor: ["user:usr_alpha", "user:usr_beta"][(i % 2) as usize],
            patient,
            action: ["test.view.statement", "test.change.refund"][(i % 2) as usize],
            at: DAY1 + (i % 3) * DAY + 3_600,
            address: ["203.0.113.9", "2001:db8::7"][((i / 2) % 2) as usize],
        };
        record(app, &s).await;
        out.push(s);
    }
    out
}

/// The table's rows: each row's cells as text.
fn rows(html: &str) -> Vec<Vec<String>> {
    html.split(r#"<tr data-seq=""#)
        .skip(1)
        .map(|chunk| {
            let row = chunk.split("</tr>").next().unwrap_or("");
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = cell.split_once('>').map(|x| x.1).unwrap_or("");
                    let inner = inner.split("</td>").next().unwrap_or("");
                    text(inner.replace("<!>", "").trim())
                })
                .collect()
        })
        .collect()
}

/// Each row's seq, in page order.
fn seqs(html: &str) -> Vec<i64> {
    html.split(r#"<tr data-seq=""#)
        .skip(1)
        .map(|s| {
            s.split('"')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("seq")
        })
        .collect()
}

/// Resource column (7th) of the rows that are seeded events, in page order.
fn keys(html: &str) -> Vec<String> {
    rows(html)
        .into_iter()
        .filter(|r| r[6].starts_with("ev-"))
        .map(|r| r[6].clone())
        .collect()
}

/// The seeds of the demo practice matching `f`, newest (last seeded) first, as keys.
fn expected(app: &TestApp, seeds: &[Seed], f: impl Fn(&Seed) -> bool) -> Vec<String> {
    seeds
        .iter()
        .rev()
        .filter(|s| s.tenant == app.tenant && f(s))
        .map(|s| s.key.clone())
        .collect()
}

/// The "older" link on a page, unescaped.
fn older(html: &str) -> Option<String> {
    let end = html.find(r#"rel="next""#)?;
    let start = html[..end].rfind("href=\"")? + 6;
    let href = &html[start..end];
    Some(text(href.trim_end().trim_end_matches('"')))
}

async fn officer(app: &TestApp) -> (Browser, UserId) {
    app.signed_in_staff("audit.officer@example.org", Role::SecurityOfficer)
        .await
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned()
}

async fn an_officer_filters_their_practice_by_each_filter(backend: Backend) {
    let app = TestApp::start(backend).await;
    let seeds = seed(&app).await;
    let (b, _) = officer(&app).await;
    let p1 = patient_of(&app, 1).await;
    let day2 = "2020-03-02";

    let cases: Vec<(String, Matches)> = vec![
        (
            "actor=user%3Ausr_alpha".into(),
            Box::new(|s: &Seed| s.actor == "user:usr_alpha"),
        ),
        (
            format!("patient={p1}"),
            Box::new(move |s: &Seed| s.patient.as_ref() == Some(&p1)),
        ),
        (
            "action=test.change.".into(),
            Box::new(|s: &Seed| s.action.starts_with("test.change.")),
        ),
        // A prefix, not a word: "test.view.st" finds "test.view.statement".
        (
            "action=test.view.st".into(),
            Box::new(|s: &Seed| s.action == "test.view.statement"),
        ),
        (
            format!("from={day2}&to={day2}"),
            Box::new(|s: &Seed| s.at >= DAY1 + DAY && s.at < DAY1 + 2 * DAY),
        ),
        (
            "from=2020-03-02&to=2020-03-03".into(),
            Box::new(|s: &Seed| s.at >= DAY1 + DAY),
        ),
        (
            "to=2020-03-01".into(),
            Box::new(|s: &Seed| s.at < DAY1 + DAY),
        ),
        (
            "address=2001%3Adb8%3A%3A7".into(),
            Box::new(|s: &Seed| s.address == "2001:db8::7"),
        ),
        (
            "actor=user%3Ausr_beta&address=203.0.113.9&from=2020-03-01".into(),
            Box::new(|s: &Seed| s.actor == "user:usr_beta" && s.address == "203.0.113.9"),
        ),
    ];
    for (query, f) in &cases {
        let html = b.page(&format!("/staff/audit?{query}")).await;
        let want = expected(&app, &seeds, f);
        assert!(!want.is_empty(), "{query}: the seed has matches");
        assert_eq!(keys(&html), want, "{query}");
        // Nothing else matched but, for the patient filter, this very view (recorded first).
        for r in rows(&html) {
            assert!(
                r[6].starts_with("ev-a") || r[5] == "audit.view",
                "{query}: unexpected row {r:?}"
            );
            assert!(
                !r[6].starts_with("ev-b"),
                "{query}: another practice's event"
            );
        }
    }

    // Every column of one event, and once the chain has sealed it, that it is sealed.
    let now = app.state().clock.now();
    chain::seal_pending(app.db(), &app.state().alerts, now, &Sealing::default())
        .await
        .expect("seal");
    let html = b
        .page("/staff/audit?actor=user%3Ausr_alpha&to=2020-03-01")
        .await;
    let row = rows(&html)
        .into_iter()
        .find(|r| r[6] == "ev-a-0")
        .expect("ev-a-0 listed");
    assert_eq!(row[0], "2020-03-01 01:00:00 UTC");
    assert_eq!(row[1], "user:usr_alpha");
    assert_eq!(row[2], "");
    assert_eq!(row[3], patriotpay::demo::PRACTICE_NAME);
    assert_eq!(row[4], patient_of(&app, 1).await.as_str());
    assert_eq!(row[5], "test.view.statement");
    assert_eq!(row[7], "req-ev-a-0");
    assert_eq!(row[8], "203.0.113.9");
    assert_eq!(row[9], t("staff-audit-outcome-success"));
    assert_eq!(row[10], t("staff-audit-sealed"));
    app.finish().await;
}

async fn pages_follow_the_cursor_newest_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (other, _, _) = second_practice(&app).await;
    let mut want = vec![];
    for i in 0..120 {
        let s = Seed {
            key: format!("ev-a-bulk-{i:03}"),
            tenant: app.tenant.clone(),
            actor: "user:usr_bulk",
            patient: None,
            action: "test.bulk",
            at: DAY1 + i,
            address: "203.0.113.9",
        };
        record(&app, &s).await;
        want.push(s.key.clone());
        if i % 12 == 0 {
            // Interleaved: the other practice's events sit between ours in seq order.
            let s = Seed {
                key: format!("ev-b-bulk-{i:03}"),
                tenant: other.clone(),
                ..s
            };
            record(&app, &s).await;
        }
    }
    want.reverse();
    let (b, _) = officer(&app).await;
    let mut path = "/staff/audit?action=test.bulk".to_owned();
    let mut got = vec![];
    let mut sizes = vec![];
    let mut last_seq = i64::MAX;
    loop {
        let html = b.page(&path).await;
        let page = rows(&html);
        sizes.push(page.len());
        // Seqs fall strictly across pages: the cursor skips nothing and repeats nothing.
        for seq in seqs(&html) {
            assert!(seq < last_seq, "newest first, no repeats");
            last_seq = seq;
        }
        got.extend(keys(&html));
        match older(&html) {
            Some(next) => {
                assert!(next.contains("before="), "{next}");
                assert!(next.contains("action=test.bulk"), "filters kept: {next}");
                path = next;
            }
            None => break,
        }
        assert!(sizes.len() < 5, "the pages end");
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(got, want);
    // An older page links back to the newest.
    let second = b
        .page(&older(&b.page("/staff/audit?action=test.bulk").await).expect("older"))
        .await;
    assert!(text(&second).contains(&t("staff-audit-newest")));
    app.finish().await;
}

async fn another_practice_is_never_shown(backend: Backend) {
    let app = TestApp::start(backend).await;
    let seeds = seed(&app).await;
    let other = seeds
        .iter()
        .find(|s| s.tenant != app.tenant)
        .expect("seeded elsewhere");
    let (other_tenant, other_patient) = (other.tenant.clone(), other.patient.clone().expect("p"));
    let (b, user) = officer(&app).await;
    // Its patient, its actor, its address: only ours, never theirs.
    for q in [
        format!("patient={other_patient}"),
        "actor=user%3Ausr_alpha".into(),
        "address=203.0.113.9".into(),
        String::new(),
    ] {
        let html = b.page(&format!("/staff/audit?{q}")).await;
        assert!(
            !html.contains("ev-b-"),
            "{q}: another practice's event shown"
        );
        assert!(!html.contains(other_patient.as_str()) || q.starts_with("patient="));
    }
    // Asking for the other practice by name is refused, and the refusal recorded.
    let r = b
        .get(&format!("/staff/audit?practice={other_tenant}"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let rid = request_id(&r);
    let body = r.text().await.expect("body");
    assert!(!body.contains("ev-b-"));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = '{rid}' AND action = 'audit.view'
             AND outcome = 'denied' AND tenant_id = '{other_tenant}' AND actor = 'user:{user}'"
        ))
        .await,
        1
    );
    let r = b.get("/staff/audit?practice=not-a-practice").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn roles_without_the_audit_log_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    seed(&app).await;
    for (email, role) in [
        ("audit.agent@example.org", Role::SupportAgent),
        ("audit.admin@example.org", Role::PracticeAdmin),
    ] {
        let (b, _) = app.signed_in_staff(email, role).await;
        for path in ["/staff/audit", "/staff/audit?actor=user%3Ausr_alpha"] {
            let r = b.get(path).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} {path}");
            assert!(!r.text().await.expect("body").contains("ev-a-"));
        }
        let home = b.page("/staff").await;
        assert!(!home.contains("/staff/audit"), "{role:?} offered the log");
    }
    // The officer is offered the log; a browser not signed in is sent to sign in.
    let (b, _) = officer(&app).await;
    assert!(b.page("/staff").await.contains("href=\"/staff/audit\""));
    let anonymous = Browser::new(&app);
    let r = anonymous.get("/staff/audit").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.finish().await;
}

async fn a_bad_date_is_refused_and_nothing_is_read(backend: Backend) {
    let app = TestApp::start(backend).await;
    seed(&app).await;
    let (b, _) = officer(&app).await;
    for (q, key) in [
        ("from=2020-02-30", "staff-audit-bad-date"),
        ("to=03%2F01%2F2020", "staff-audit-bad-date"),
        ("from=2020-03-02&to=2020-03-01", "staff-audit-bad-range"),
        ("patient=pat_1", "staff-audit-bad-patient"),
        ("address=somewhere", "staff-audit-bad-address"),
    ] {
        let r = b
            .get(&format!("/staff/audit?{q}&actor=user%3Ausr_alpha"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        let rid = request_id(&r);
        let html = text(&r.text().await.expect("body"));
        assert!(html.contains(&t(key)), "{q}: the message");
        assert!(
            html.contains(r#"value="user:usr_alpha""#),
            "{q}: the form again"
        );
        assert!(
            rows(&html).is_empty() && !html.contains("ev-a-"),
            "{q}: no events"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE request_id = '{rid}'"
            ))
            .await,
            0,
            "{q}: nothing asked of the log"
        );
    }
    app.finish().await;
}

async fn an_auditor_sees_the_log_and_every_view_is_recorded(backend: Backend) {
    let app = TestApp::start(backend).await;
    let seeds = seed(&app).await;
    let (b, user) = app
        .signed_in_staff("audit.auditor@example.org", Role::Auditor)
        .await;
    assert!(b.page("/staff").await.contains("href=\"/staff/audit\""));
    let p1 = patient_of(&app, 1).await;
    let r = b.get(&format!("/staff/audit?patient={p1}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rid = request_id(&r);
    let html = r.text().await.expect("body");
    assert_eq!(
        keys(&html),
        expected(&app, &seeds, |s| s.patient.as_ref() == Some(&p1))
    );
    // The view is an event of the practice, naming the patient searched for.
    let tenant = app.tenant.as_str();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = '{rid}' AND action = 'audit.view'
             AND outcome = 'success' AND tenant_id = '{tenant}' AND patient_id = '{p1}'
             AND actor = 'user:{user}'"
        ))
        .await,
        1
    );
    // And it shows in the log itself.
    let html = b.page(&format!("/staff/audit?actor=user%3A{user}")).await;
    let views = rows(&html);
    assert!(views.iter().any(|r| r[5] == "audit.view" && r[7] == rid));
    app.finish().await;
}
