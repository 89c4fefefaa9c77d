//! The practice admin's API-keys page (issue 12): a key made there is shown once and works for
//! the import API until revoked there; a blank label is refused with nothing made; support
//! agents and another practice's admin are refused. Both databases.

use crate::common::{second_practice, text, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::apikeys::{self, Scope};
use reqwest::StatusCode;

both_backends!(a_practice_admin_makes_and_revokes_a_key);

async fn make(b: &Browser, practice: &str, label: &str) -> reqwest::Response {
    let csrf = b.csrf("/staff/api-keys").await;
    b.post(
        "/staff/api-keys",
        &[("csrf", &csrf), ("practice", practice), ("label", label)],
    )
    .await
}

async fn keys(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(app.db().pool())
        .await
        .expect("count")
}

async fn a_practice_admin_makes_and_revokes_a_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (admin, _) = app
        .signed_in_staff("dana@example.org", Role::PracticeAdmin)
        .await;
    assert!(text(&admin.page("/staff").await).contains("/staff/api-keys"));
    // A blank label: refused, nothing made.
    let r = make(&admin, &practice, "  ").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(keys(&app).await, 0);

    let r = make(&admin, &practice, "Nightly export").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("body");
    let key = html
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .find(|w| w.starts_with(apikeys::KEY_PREFIX) && w.len() > 20)
        .expect("the key is shown once")
        .to_owned();
    let now = app.state().clock.now();
    let found = apikeys::authenticate(app.db(), &key, Scope::Import, now)
        .await
        .expect("query");
    assert_eq!(found.as_ref().map(|(_, t)| t), Some(&app.tenant));
    let (key_id, _) = found.expect("key");
    // The list shows its first characters and when it was used, never the key again.
    let list = admin.page("/staff/api-keys").await;
    assert!(list.contains(&key[..10]) && !list.contains(&key));
    assert!(list.contains("Nightly export"));

    // A support agent, and an admin of another practice, are refused.
    let (agent, _) = app
        .signed_in_staff("ana@example.org", Role::SupportAgent)
        .await;
    assert_eq!(
        agent.get("/staff/api-keys").await.status(),
        StatusCode::FORBIDDEN
    );
    let (other, _, _) = second_practice(&app).await;
    let (outsider, outsider_id) = app
        .signed_in_staff("sam@example.org", Role::PracticeAdmin)
        .await;
    sqlx::query("UPDATE user_grants SET tenant_id = $1 WHERE user_id = $2")
        .bind(other.as_str())
        .bind(outsider_id.as_str())
        .execute(app.db().pool())
        .await
        .expect("move grant");
    assert_eq!(
        make(&outsider, &practice, "Not theirs").await.status(),
        StatusCode::FORBIDDEN
    );
    let csrf = outsider.csrf("/staff/api-keys").await;
    let r = outsider
        .post(
            "/staff/api-keys/revoke",
            &[("csrf", &csrf), ("practice", &practice), ("key", &key_id)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(keys(&app).await, 1);

    // Revoked by its practice's admin: refused from then on.
    let csrf = admin.csrf("/staff/api-keys").await;
    let r = admin
        .post(
            "/staff/api-keys/revoke",
            &[("csrf", &csrf), ("practice", &practice), ("key", &key_id)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let none = apikeys::authenticate(app.db(), &key, Scope::Import, now)
        .await
        .expect("query");
    assert!(none.is_none());
    assert!(text(&admin.page("/staff/api-keys").await).contains("Revoked"));
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events
         WHERE action IN ('apikey.create', 'apikey.revoke') AND outcome = 'success'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("count");
    assert_eq!(events, 2);
    app.finish().await;
}
