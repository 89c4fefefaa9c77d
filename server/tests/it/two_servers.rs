//! Two `serve` processes on one database behave as one portal (issue 14), for what is in place
//! so far: a member's session started on one server is valid on the other, a key-cache flush
//! (`keys flush-cache`) reaches both, and a sign-out on either ends the session on both; one
//! processor event delivered to both at once is booked once. (The outbox's claims are tested
//! with two workers in `messages`.)
//! Both databases.

use crate::common::{
    csrf_in, location, member_sign_in, session_cookie, Backend, Browser, TestApp, PASSWORD,
};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

both_backends!(
    a_session_is_one_across_two_servers,
    an_event_delivered_to_both_servers_books_once,
);

async fn an_event_delivered_to_both_servers_books_once(backend: Backend) {
    use crate::webhooks::{booked, event, paid_unheard};
    let app = TestApp::start(backend).await;
    let mut cfg = app.config();
    cfg.addr = "127.0.0.1:0".parse().expect("addr");
    cfg.sandbox_addr = "127.0.0.1:0".parse().expect("addr");
    let second = patriotpay::start(&cfg).await.expect("a second server");
    let (_b, session, _) = paid_unheard(&app).await;
    let body = event("evt_both", "checkout.session.completed", &session, None);
    let deliver = |base: String| {
        let body = body.clone();
        async move {
            let sig = patriotpay::payments::signature::sign(
                crate::common::WEBHOOK_SECRET,
                patriotpay::clock::now_unix(),
                body.as_bytes(),
            );
            reqwest::Client::new()
                .post(format!("{base}/webhooks/stripe"))
                .header("stripe-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("post")
        }
    };
    let (one, two) = tokio::join!(
        deliver(app.url.clone()),
        deliver(format!("http://{}", second.portal_addr))
    );
    assert_eq!(
        (one.status(), two.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    app.run_jobs().await;
    assert_eq!(booked(&app).await, (1, 1), "one payment, one ledger entry");
    second.stop().await;
    app.finish().await;
}

async fn a_session_is_one_across_two_servers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut cfg = app.config();
    cfg.addr = "127.0.0.1:0".parse().expect("addr");
    cfg.sandbox_addr = "127.0.0.1:0".parse().expect("addr");
    let second = patriotpay::start(&cfg).await.expect("a second server");
    let other = format!("http://{}", second.portal_addr);

    app.signed_in_member(1, "avery@example.org").await;
    let b = Browser::new(&app);
    let r = member_sign_in(&b, "avery@example.org", PASSWORD).await;
    assert_eq!(location(&r), "/account");
    let cookie = session_cookie(&r).expect("a session cookie");
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let on_other = |path: &'static str| {
        let (client, other, cookie) = (client.clone(), other.clone(), cookie.clone());
        async move {
            client
                .get(format!("{other}{path}"))
                .header("Cookie", cookie)
                .send()
                .await
                .expect("get")
        }
    };
    let r = on_other("/account").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "signed in on server 1, served by server 2"
    );
    let page = r.text().await.expect("page");

    // A flush requested from the command line empties both servers' key caches: each goes back
    // to the key provider at its next page (the pollers look every five seconds).
    let first = app.state().crypto.clone();
    let calls = (first.provider_calls(), second.state.crypto.provider_calls());
    let o = app.cli(&["keys", "flush-cache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut both = false;
    for _ in 0..150 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(b.get("/account").await.status(), StatusCode::OK);
        assert_eq!(on_other("/account").await.status(), StatusCode::OK);
        if first.provider_calls() > calls.0 && second.state.crypto.provider_calls() > calls.1 {
            both = true;
            break;
        }
    }
    assert!(both, "the flush reached both servers");

    // Signed out on the second server: the first refuses the session too.
    let r = client
        .post(format!("{other}/signout"))
        .header("Cookie", cookie.clone())
        .header("Origin", other.clone())
        .form(&[("csrf", csrf_in(&page))])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed out on server 2");
    assert_eq!(
        location(&b.get("/account").await),
        "/signin",
        "and on server 1"
    );
    second.stop().await;
    app.finish().await;
}
