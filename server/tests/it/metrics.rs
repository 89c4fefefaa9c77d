//! Monitoring (issue 14): `/metrics` in Prometheus text on its own listener, series labelled by
//! route template (a pay link's token never appears), the sampled gauges present; on the
//! portal's address only with the bearer token (401 without or with a wrong one), and 404 there
//! when no token is configured. Both databases.

use crate::common::{Backend, Browser, TestApp};
use patriotpay::config::Secret;
use reqwest::StatusCode;

both_backends!(
    metrics_are_labelled_by_route_and_guarded_on_the_portal,
    without_a_token_the_portal_has_no_metrics,
);

const TOKEN: &str = "scrape-token-for-the-tests";

/// The lines of `text` for metric `name` (its samples, not its HELP/TYPE lines).
fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

async fn metrics_are_labelled_by_route_and_guarded_on_the_portal(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.monitoring.metrics_addr = "127.0.0.1:0".into();
        c.monitoring.metrics_token = Some(Secret::new(TOKEN));
    })
    .await;
    let link = app.link(1).await;
    let token = link.rsplit('/').next().expect("token").to_owned();
    let b = Browser::new(&app);
    b.open_link(&link).await;
    let _ = b.submit_dob("01", "01", "1900").await;

    let addr = app
        .running
        .as_ref()
        .and_then(|r| r.metrics_addr)
        .expect("a metrics listener");
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")));
    let text = r.text().await.expect("body");
    let opened = series(&text, "patriotpay_http_requests_total");
    assert!(
        opened
            .iter()
            .any(|l| l.contains(r#"route="/p/{token}""#) && l.contains(r#"status="3xx""#)),
        "the pay link is counted by its template: {opened:?}"
    );
    assert!(!text.contains(&token), "a pay-link token in the metrics");
    assert!(
        series(&text, "patriotpay_audit_events_total")
            .iter()
            .any(|l| l.contains(r#"action="identity.dob""#) && l.contains(r#"outcome="denied""#)),
        "identity checks by outcome"
    );
    for gauge in [
        "patriotpay_outbox_queued",
        "patriotpay_outbox_oldest_queued_seconds",
        "patriotpay_audit_chain_head_age_seconds",
        "patriotpay_db_pool_connections",
        "patriotpay_http_request_duration_seconds_bucket",
        "patriotpay_key_cache_lookups_total",
    ] {
        assert!(!series(&text, gauge).is_empty(), "{gauge} missing");
    }

    // On the portal's own address: only with the bearer token.
    let portal = format!("{}/metrics", app.url);
    let client = reqwest::Client::new();
    let none = client.get(&portal).send().await.expect("get");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = client
        .get(&portal)
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client
        .get(&portal)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right
        .text()
        .await
        .expect("body")
        .contains("patriotpay_http_requests_total"));
    app.finish().await;
}

async fn without_a_token_the_portal_has_no_metrics(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert!(
        app.running
            .as_ref()
            .is_some_and(|r| r.metrics_addr.is_none()),
        "tests start no metrics listener unless asked"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}
