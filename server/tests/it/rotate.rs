//! `incident rotate` (issue 14) as the real binary beside a running portal, on both databases: a
//! dry run changes nothing; a run makes new data-key versions, retires every live pay link (an
//! old link's identity check is refused, even with the right answers), texts a new link to each
//! patient texted before (which opens, verifies, and shows the statement: data written under the
//! old key versions still reads), gives API keys a grace window after which they are refused and
//! the staff page says so; a rerun of the same run changes nothing more; each run is audited.

use crate::common::{location, text, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::apikeys::{self, Scope};
use reqwest::StatusCode;

both_backends!(rotate_retires_links_texts_new_ones_and_winds_down_api_keys,);

fn run(app: &TestApp, args: &[&str]) -> String {
    let o = app.cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn import_sample(app: &TestApp) {
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    run(app, &["import", &path, "--practice", app.tenant.as_str()]);
}

/// A fresh browser through the identity check on `link` with the sample's first patient's answers
/// (she shares demo patient 1's date of birth and ZIP); where the date of birth sends it.
async fn answer_on(app: &TestApp, link: &str) -> (Browser, String) {
    let b = Browser::new(app);
    b.open_link(link).await;
    let r = b.submit_dob("03", "14", "1984").await;
    let to = location(&r);
    (b, to)
}

fn avery_link(texts: &[crate::common::OutboxMessage]) -> String {
    texts
        .iter()
        .find(|t| t.to == "+13125550101")
        .and_then(|t| t.link.clone())
        .expect("a text to the sample's first patient")
}

async fn key_works(app: &TestApp, key: &str, at: i64) -> bool {
    apikeys::authenticate(app.db(), key, Scope::Import, at)
        .await
        .expect("query")
        .is_some()
}

async fn rotate_retires_links_texts_new_ones_and_winds_down_api_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    import_sample(&app);
    let before = app.outbox().await;
    assert_eq!(before.len(), 4, "{before:?}");
    let old_link = avery_link(&before);
    let now = app.state().clock.now();
    let (_, key) = apikeys::create(app.db(), &app.tenant, "billing system", "test", now)
        .await
        .expect("key");
    let key_versions = "SELECT COUNT(*) FROM data_keys";
    let versions = app.count(key_versions).await;
    let live_links =
        format!("SELECT COUNT(*) FROM pay_links WHERE revoked_at IS NULL AND expires_at > {now}");
    let live_links = live_links.as_str();
    let live = app.count(live_links).await;
    assert!(live >= 4);

    // Dry run: told what would happen, nothing changes.
    let out = run(&app, &["incident", "rotate", "--run", "drill", "--dry-run"]);
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert!(
        out.contains(&format!(
            "{live} live pay link(s) would be retired; up to 3 new link(s) to be texted"
        )),
        "{out}"
    );
    assert!(out.contains("Stripe webhook signing secret"), "{out}");
    assert_eq!(app.count(live_links).await, live);
    assert_eq!(app.count(key_versions).await, versions);
    assert_eq!(app.outbox().await.len(), 4);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_keys WHERE expires_at IS NOT NULL")
            .await,
        0
    );

    // The run.
    let out = run(&app, &["incident", "rotate", "--run", "drill"]);
    assert!(
        out.contains(&format!(
            "{live} live pay link(s) retired; 3 new link(s) texted, 1 not"
        )),
        "{out}"
    );
    assert!(out.contains(app.tenant.as_str()), "{out}");
    let versions_after = app.count(key_versions).await;
    assert!(versions_after > versions, "new versions");
    let after = app.outbox().await;
    // One new text per statement texted before that still has a balance (the sample's fourth
    // statement owes nothing).
    assert_eq!(after.len(), 7, "{after:?}");
    // The new texts are those whose link is new (the import and the run may share a second).
    let new_texts: Vec<_> = after
        .iter()
        .filter(|t| !before.iter().any(|o| o.link == t.link))
        .cloned()
        .collect();
    assert_eq!(new_texts.len(), 3, "{new_texts:?}");
    assert!(new_texts.iter().all(|t| t.template == "pay-link"));
    let new_link = avery_link(&new_texts);
    assert_ne!(new_link, old_link);

    // The old link is refused even with the right answers; the new one opens the statement,
    // whose lines were written under the old key version.
    let (_, to) = answer_on(&app, &old_link).await;
    assert_eq!(to, "/verify");
    let (b, to) = answer_on(&app, &new_link).await;
    assert_eq!(to, "/summary");
    assert_eq!(location(&b.submit_zip("60614").await), "/statement");
    let page = b.page("/statement").await;
    assert!(
        text(&page).contains("Office visit, established patient"),
        "{page}"
    );

    // API keys: working through the grace window, refused after it; the admin's page says so.
    let admin = app
        .signed_in_staff("admin@example.org", Role::PracticeAdmin)
        .await
        .0;
    let keys_page = text(&admin.page("/staff/api-keys").await);
    assert!(keys_page.contains("Refused from"), "{keys_page}");
    let now = app.state().clock.now();
    assert!(key_works(&app, &key, now).await);
    assert!(key_works(&app, &key, now + 23 * 3600).await);
    assert!(!key_works(&app, &key, now + 25 * 3600).await);

    // A rerun of the same run does nothing more.
    let versions_after = app.count(key_versions).await;
    let out = run(&app, &["incident", "rotate", "--run", "drill"]);
    assert!(
        out.contains("done by an earlier run: data-keys, pay-links, api-keys, flush"),
        "{out}"
    );
    assert!(out.contains("0 new link(s) texted"), "{out}");
    assert_eq!(app.outbox().await.len(), 7);
    assert_eq!(app.count(key_versions).await, versions_after);
    let steps: Vec<String> =
        sqlx::query_scalar("SELECT step FROM incident_steps WHERE run = 'drill' ORDER BY step")
            .fetch_all(app.db().pool())
            .await
            .expect("steps");
    assert_eq!(steps, ["api-keys", "data-keys", "flush", "pay-links"]);
    assert!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'incident.rotate'")
            .await
            >= 2
    );
    assert_eq!(
        b.get("/statement").await.status(),
        StatusCode::OK,
        "sessions are revoke-sessions' business, not rotate's"
    );
    app.finish().await;
}
