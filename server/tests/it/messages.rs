//! The outbox (issue 13) end to end: an imported statement queues its pay-link text in the
//! import's transaction (a dry run queues nothing; a re-import nothing new), the first text to a
//! number says how to opt out, an opted-out number's text is suppressed, quiet hours defer a text
//! rather than drop it, the worker sends each text once even with two workers racing, a text's
//! link takes the patient to the identity check, a practice's texts wait past its rate per minute,
//! and the demo's outbox viewer is served only when
//! turned on, to this machine. Both databases.

use crate::common::{location, Backend, Browser, TestApp};
use async_trait::async_trait;
use patriotpay::messages::providers::{Outcome, Providers, SmsProvider};
use patriotpay::messages::worker;
use reqwest::StatusCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

both_backends!(
    an_imported_statement_queues_its_text_and_the_link_in_it_works,
    an_opted_out_number_is_not_texted,
    quiet_hours_defer_a_text_and_it_goes_in_the_morning,
    two_workers_send_each_text_once,
    the_outbox_viewer_is_only_for_the_demo_on_this_machine,
    a_practice_texts_at_most_its_rate_per_minute,
);

fn sample(name: &str) -> String {
    format!("{}/../samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn import(app: &TestApp, extra: &[&str]) -> i32 {
    let path = sample("statements.csv");
    let mut args = vec!["import", path.as_str(), "--practice", app.tenant.as_str()];
    args.extend_from_slice(extra);
    let o = app.cli(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.status.code().unwrap_or(-1)
}

/// The sample's four statements belong to three numbers; the first text to each says how to
/// stop.
async fn an_imported_statement_queues_its_text_and_the_link_in_it_works(backend: Backend) {
    let app = TestApp::start(backend).await;
    import(&app, &["--dry-run"]);
    assert!(app.outbox().await.is_empty(), "a dry run queues nothing");
    import(&app, &[]);
    let texts = app.outbox().await;
    assert_eq!(texts.len(), 4, "{texts:?}");
    for t in &texts {
        assert_eq!(
            (t.channel.as_str(), t.template.as_str()),
            ("sms", "pay-link")
        );
        assert!(t.to.starts_with("+1"), "{}", t.to);
        assert!(
            t.body.starts_with("Riverside Family Medicine: "),
            "{}",
            t.body
        );
        assert!(t.link.is_some(), "{}", t.body);
    }
    let with_stop = texts.iter().filter(|t| t.body.contains("STOP")).count();
    let numbers: std::collections::HashSet<&str> = texts.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(with_stop, numbers.len(), "one opt-out notice per number");
    assert!(texts.iter().any(|t| t.body.contains("Su estado de cuenta")));
    // Sent by the worker in texting hours; a re-import queues nothing new.
    app.move_to_texting_hours();
    assert_eq!(app.deliver_messages().await.sent, 4);
    assert!(app.outbox().await.iter().all(|t| t.state == "sent"));
    assert_eq!(app.deliver_messages().await.sent, 0, "sent once");
    import(&app, &[]);
    assert_eq!(app.outbox().await.len(), 4);
    // The link in a text opens the identity check.
    let link = texts[0].link.clone().expect("link");
    let b = Browser::new(&app);
    let r = b.get(link.trim_start_matches(&app.url)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/verify");
    app.finish().await;
}

async fn an_opted_out_number_is_not_texted(backend: Backend) {
    let app = TestApp::start(backend).await;
    // The first sample patient's number (+13125550101) opted out of this practice's texts.
    let s = app.state();
    let phone = patriotpay::phi::Phi::new("+13125550101".to_owned());
    let bidx = s
        .crypto
        .blind_index(
            &app.tenant,
            patriotpay::messages::BIDX_PHONE,
            "+13125550101",
        )
        .await
        .expect("index");
    let entry = patriotpay::messages::consent::seal(
        &s.crypto,
        &app.tenant,
        &phone,
        bidx,
        false,
        patriotpay::messages::consent::KEYWORD_WORDING,
        patriotpay::messages::consent::Source::Keyword,
        s.clock.now(),
    )
    .await
    .expect("seal");
    let mut conn = s.db.pool().acquire().await.expect("conn");
    patriotpay::messages::consent::append(&mut conn, &entry)
        .await
        .expect("append");
    drop(conn);
    import(&app, &[]);
    let texts = app.outbox().await;
    let theirs: Vec<_> = texts.iter().filter(|t| t.to == "+13125550101").collect();
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|t| t.state == "suppressed"), "{theirs:?}");
    app.move_to_texting_hours();
    let pass = app.deliver_messages().await;
    assert_eq!(pass.sent as usize, texts.len() - theirs.len());
    let after = app.outbox().await;
    assert!(after
        .iter()
        .filter(|t| t.to == "+13125550101")
        .all(|t| t.state == "suppressed"));
    app.finish().await;
}

async fn quiet_hours_defer_a_text_and_it_goes_in_the_morning(backend: Backend) {
    let app = TestApp::start(backend).await;
    // 07:00 UTC: the middle of the night in every US zone.
    let clock = &app.state().clock;
    let now = clock.now();
    let mut at = now - now.rem_euclid(86_400) + 7 * 3600;
    if at < now {
        at += 86_400;
    }
    clock.advance(at - now);
    import(&app, &[]);
    assert_eq!(app.deliver_messages().await.sent, 0, "nothing at night");
    let texts = app.outbox().await;
    assert!(texts.iter().all(|t| t.state == "queued"), "{texts:?}");
    // Chicago (the sample's ZIPs): 08:00 CST is 14:00 UTC, CDT 13:00 UTC. At 12:00 UTC still
    // too early; by 19:00 UTC every one is due.
    clock.advance(5 * 3600);
    assert_eq!(
        app.deliver_messages().await.sent,
        0,
        "07:00 or 06:00 in Chicago"
    );
    app.move_to_texting_hours();
    assert_eq!(app.deliver_messages().await.sent, 4);
    app.finish().await;
}

/// One worker taking one message at a time until nothing is left: how many it sent.
async fn drain(app: &TestApp, providers: &Providers, now: i64) -> u64 {
    let s = app.state();
    let mut n = 0;
    loop {
        let p = worker::run_due(&s.db, &s.crypto, providers, now, 1)
            .await
            .expect("worker");
        if p.handled() == 0 {
            return n;
        }
        n += p.sent;
    }
}

/// A provider that takes its time and counts every text it is given.
struct Slow {
    sent: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

#[async_trait]
impl SmsProvider for Slow {
    fn name(&self) -> &'static str {
        "slow-test"
    }

    async fn send(&self, _to: &str, body: &str) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.sent.lock().expect("lock").push(body.to_owned());
        Outcome::Accepted {
            provider_id: format!("SM{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

async fn two_workers_send_each_text_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    import(&app, &[]);
    app.move_to_texting_hours();
    let slow = Arc::new(Slow {
        sent: Mutex::new(vec![]),
        calls: AtomicUsize::new(0),
    });
    let providers = Providers {
        sms: slow.clone(),
        ..Providers::held()
    };
    let s = app.state();
    let now = s.clock.now();
    // Two workers, one message at a time each, racing over the same four rows.
    let (a, b) = tokio::join!(drain(&app, &providers, now), drain(&app, &providers, now));
    assert_eq!(a + b, 4);
    assert_eq!(
        slow.calls.load(Ordering::SeqCst),
        4,
        "each text handed over once"
    );
    let bodies = slow.sent.lock().expect("lock").clone();
    let unique: std::collections::HashSet<&String> = bodies.iter().collect();
    assert_eq!(unique.len(), 4);
    let providers_recorded: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT provider, provider_id FROM outbox")
            .fetch_all(app.db().pool())
            .await
            .expect("rows");
    assert!(providers_recorded
        .iter()
        .all(|(p, id)| p == "slow-test" && id.as_deref().is_some_and(|i| i.starts_with("SM"))));
    app.finish().await;
}

async fn the_outbox_viewer_is_only_for_the_demo_on_this_machine(backend: Backend) {
    let app = TestApp::start(backend).await;
    import(&app, &[]);
    let r = Browser::new(&app).get("/dev/outbox").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "off unless serve --demo");
    app.finish().await;

    let app = TestApp::start_with(backend, |c| c.messaging.dev_outbox = true).await;
    import(&app, &[]);
    let r = Browser::new(&app).get("/dev/outbox").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("page");
    assert!(html.contains("Riverside Family Medicine: Your statement is ready."));
    assert_eq!(html.matches("class=\"dev-link\"").count(), 4);
    app.finish().await;

    // Behind a proxy (forwarded addresses trusted) every caller could look local: off.
    let app = TestApp::start_with(backend, |c| {
        c.messaging.dev_outbox = true;
        c.trust_forwarded_for = true;
    })
    .await;
    let r = Browser::new(&app).get("/dev/outbox").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}

/// More new statements than a practice may text in a minute: the rest wait for the next minute
/// (not dropped, not counted as tries).
async fn a_practice_texts_at_most_its_rate_per_minute(backend: Backend) {
    let app = TestApp::start(backend).await;
    let text = std::fs::read_to_string(sample("statements.csv")).expect("sample");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let row = lines.next().expect("row").replace(",112.00,", ",50.00,");
    let n = worker::TEXTS_PER_PRACTICE_PER_MINUTE as usize + 5;
    let mut file = format!("{header}\n");
    for i in 0..n {
        file.push_str(&row.replace("S-2026-0001", &format!("S-RATE-{i}")));
        file.push('\n');
    }
    let f = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("temp");
    std::fs::write(f.path(), file).expect("write");
    let path = f.path().to_string_lossy().into_owned();
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    app.move_to_texting_hours();
    let first = app.deliver_messages().await;
    assert_eq!(first.sent as usize, n - 5, "{first:?}");
    assert_eq!(first.deferred, 5);
    assert_eq!(
        app.deliver_messages().await.sent,
        0,
        "not within the minute"
    );
    app.state().clock.advance(61);
    assert_eq!(app.deliver_messages().await.sent, 5);
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM outbox")
        .fetch_all(app.db().pool())
        .await
        .expect("attempts");
    assert!(
        attempts.iter().all(|a| *a == 1),
        "waiting is not a try: {attempts:?}"
    );
    app.finish().await;
}
