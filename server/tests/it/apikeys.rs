//! Per-practice API keys (issue 12) through the CLI: made and printed once, kept only as a hash,
//! listed by their first characters, accepted while live (recording the use), refused once
//! revoked, and bound to their practice. Both databases.

use crate::common::{second_practice, Backend, TestApp};
use patriotpay::apikeys::{self, Scope};

both_backends!(a_key_is_shown_once_works_until_revoked_and_stays_in_its_practice);

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn a_key_is_shown_once_works_until_revoked_and_stays_in_its_practice(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let out = stdout(&app.cli(&[
        "apikeys",
        "create",
        "--practice",
        &practice,
        "--label",
        "Nightly export",
    ]));
    let key = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(apikeys::KEY_PREFIX))
        .expect("the key is printed")
        .to_owned();
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("the key's id is printed")
        .to_owned();
    // Only a hash is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(app.db().pool())
        .await
        .expect("row");
    assert_ne!(stored, key.as_bytes());
    assert!(!String::from_utf8_lossy(&stored).contains(&key[4..]));

    let now = app.state().clock.now();
    let found = apikeys::authenticate(app.db(), &key, Scope::Import, now)
        .await
        .expect("query");
    assert_eq!(found.map(|(_, t)| t), Some(app.tenant.clone()));
    for wrong in [
        "",
        "ppk_",
        "ppk_short",
        &key[..key.len() - 1],
        &format!("{key}x"),
        &key.replace("ppk_", "xxx_"),
    ] {
        let r = apikeys::authenticate(app.db(), wrong, Scope::Import, now)
            .await
            .expect("query");
        assert!(r.is_none(), "{wrong:?} accepted");
    }

    let list = stdout(&app.cli(&["apikeys", "list", "--practice", &practice]));
    assert!(list.contains(&id) && list.contains("\"Nightly export\""));
    assert!(list.contains(&key[..10]), "the first characters are shown");
    assert!(!list.contains(&key), "the key itself never is");
    assert!(
        !list.contains("last used never"),
        "the use was recorded: {list}"
    );

    // Another practice cannot revoke it; its own can, and then it is refused.
    let (other, _, _) = second_practice(&app).await;
    let o = app.cli(&["apikeys", "revoke", "--practice", other.as_str(), &id]);
    assert!(!o.status.success());
    stdout(&app.cli(&["apikeys", "revoke", "--practice", &practice, &id]));
    let r = apikeys::authenticate(app.db(), &key, Scope::Import, now)
        .await
        .expect("query");
    assert!(r.is_none(), "a revoked key is refused");
    let o = app.cli(&["apikeys", "revoke", "--practice", &practice, &id]);
    assert!(!o.status.success(), "revoking twice says so");
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action IN ('apikey.create', 'apikey.revoke')",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("count");
    assert_eq!(events, 2);
    // A label is required.
    let o = app.cli(&[
        "apikeys",
        "create",
        "--practice",
        &practice,
        "--label",
        "  ",
    ]);
    assert!(!o.status.success());
    app.finish().await;
}
