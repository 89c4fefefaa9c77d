//! Fixes from the security review (issue 9), each with the test that failed before it.

use crate::common::{csrf_in, location, post_event, Backend, TestApp, WEBHOOK_SECRET};
use patriotpay_app::urls::Url;
use reqwest::StatusCode;

both_backends!(
    member_sign_out_is_audited,
    a_flood_of_webhook_signatures_is_refused,
);

async fn member_sign_out_is_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (member, user) = app.signed_in_member(1, "signout@example.org").await;
    let home = member.page(&Url::Account.path()).await;
    let r = member
        .post(&Url::SignOut.path(), &[("csrf", &csrf_in(&home))])
        .await;
    assert_eq!(location(&r), Url::SignedOut.path());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'member.signout' AND actor = 'user:{user}'"
        ))
        .await,
        1
    );
    assert_eq!(
        location(&member.get(&Url::Account.path()).await),
        Url::SignIn.path(),
        "the session is gone"
    );
    app.finish().await;
}

/// `t=…,v1=,v1=,…` once made the portal compute an HMAC over the body per candidate. Now the
/// header is refused before any MAC (the cap itself is unit-tested in `payments::signature`),
/// and a real signature among too many candidates is refused too.
async fn a_flood_of_webhook_signatures_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = format!(
        r#"{{"id":"evt_flood","object":"event","pad":"{}"}}"#,
        "x".repeat(60_000)
    );
    let now = patriotpay::clock::now_unix();
    let flood = format!("t={now}{}", ",v1=".repeat(2_000));
    let r = post_event(&app, &body, Some(flood)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let good = patriotpay::payments::signature::sign(WEBHOOK_SECRET, now, body.as_bytes());
    let padded = format!(
        "{good}{}",
        format!(",v1={}", "0".repeat(64)).repeat(patriotpay::payments::signature::MAX_CANDIDATES)
    );
    let r = post_event(&app, &body, Some(padded)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "too many candidates");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM processor_events").await,
        0,
        "nothing recorded"
    );
    app.finish().await;
}
