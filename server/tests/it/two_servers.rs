//! Two `serve` processes on one database behave as one portal (issue 14), for what is in place
//! so far: a member's session started on one server is valid on the other, a key-cache flush
//! (`keys flush-cache`) reaches both, and a sign-out on either ends the session on both; one
//! processor event delivered to both at once is booked once; the background work both run at
//! once (balance reminders, the anomaly rules) is done once, and `incident revoke-sessions`
//! ends a session on both. (The outbox's claims are tested with two workers in `messages`.)
//! Both databases.

use crate::common::{
    csrf_in, location, member_sign_in, session_cookie, Backend, Browser, TestApp, PASSWORD,
};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

both_backends!(
    a_session_is_one_across_two_servers,
    an_event_delivered_to_both_servers_books_once,
    background_work_is_done_once_and_revocation_reaches_both,
);

/// Both servers run a reminder pass and an anomaly pass at the same moment: each reminder is
/// queued once and each alert raised once; a revocation from the command line ends a session
/// that is then refused by the other server.
async fn background_work_is_done_once_and_revocation_reaches_both(backend: Backend) {
    const DAY: i64 = 86_400;
    let app = TestApp::start(backend).await;
    let mut cfg = app.config();
    cfg.addr = "127.0.0.1:0".parse().expect("addr");
    cfg.sandbox_addr = "127.0.0.1:0".parse().expect("addr");
    let second = patriotpay::start(&cfg).await.expect("a second server");
    let other = format!("http://{}", second.portal_addr);
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = app.state();
    let due = time::OffsetDateTime::from_unix_timestamp(s.clock.now() + 20 * DAY)
        .expect("time")
        .date();
    sqlx::query("UPDATE statements SET due_date = $1 WHERE external_id IS NOT NULL")
        .bind(format!("{due}"))
        .execute(app.db().pool())
        .await
        .expect("due dates");

    // Day 7: both servers' reminder passes at once.
    let now = s.clock.now() + 7 * DAY;
    let t = &second.state;
    let (a, b) = tokio::join!(
        patriotpay::messages::reminders::run_due(&s.db, &s.crypto, &s.public_url, now),
        patriotpay::messages::reminders::run_due(&t.db, &t.crypto, &t.public_url, now),
    );
    let queued = a.expect("reminders") + b.expect("reminders");
    let reminders = "SELECT COUNT(*) FROM outbox WHERE template = 'reminder'";
    assert!(queued > 0, "something was due");
    assert_eq!(
        app.count(reminders).await,
        i64::try_from(queued).expect("count")
    );
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT statement_id) FROM outbox WHERE template = 'reminder'")
            .await,
        app.count(reminders).await,
        "one reminder per statement"
    );

    // Wrong answers on one link, then both servers' anomaly passes at once.
    let visitor = Browser::new(&app);
    visitor.open_link(&app.link(1).await).await;
    for _ in 0..3 {
        let _ = visitor.submit_dob("01", "01", "1900").await;
    }
    let tight = patriotpay::anomaly::Thresholds {
        identity_failures_per_link: 2,
        identity_failures_per_address: 2,
        ..patriotpay::anomaly::Thresholds::default()
    };
    let now = s.clock.now();
    let (a, b) = tokio::join!(
        patriotpay::anomaly::run(&s.db, &s.alerts, &tight, now),
        patriotpay::anomaly::run(&t.db, &t.alerts, &tight, now),
    );
    let raised = a.expect("rules").len() + b.expect("rules").len();
    assert!(raised > 0, "the failures crossed the thresholds");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind LIKE 'anomaly.%'")
            .await,
        i64::try_from(raised).expect("count"),
        "each alert raised by one server only"
    );

    // A session signed in on the first server, revoked from the command line, is refused by
    // the second.
    app.signed_in_member(1, "avery@example.org").await;
    let b = Browser::new(&app);
    let r = member_sign_in(&b, "avery@example.org", PASSWORD).await;
    let cookie = session_cookie(&r).expect("a session cookie");
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let on_other = || {
        let (client, other, cookie) = (client.clone(), other.clone(), cookie.clone());
        async move {
            client
                .get(format!("{other}/account"))
                .header("Cookie", cookie)
                .send()
                .await
                .expect("get")
        }
    };
    assert_eq!(on_other().await.status(), StatusCode::OK);
    let o = app.cli(&["incident", "revoke-sessions", "--all"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(location(&on_other().await), "/signin");
    second.stop().await;
    app.finish().await;
}

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
