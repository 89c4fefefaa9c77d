//! Messages as staff see them, and the public link check (issue 13): the support console lists
//! an imported statement's text with its number masked and never its link; a practice's dead
//! letters and patients' replies show to its own support agents (each view audited), a reply is
//! marked read once (audited), another practice's agent is refused and audited; the check-link
//! page says "genuine" for a live link only, explains that first characters cannot be checked,
//! and answers 429 after 20 checks from one address. Both databases.

use crate::common::{location, second_practice, t, text, Backend, Browser, TestApp};
use async_trait::async_trait;
use patriotpay::access::Role;
use patriotpay::messages::providers::{Outcome, Providers, SmsProvider};
use patriotpay::messages::twilio::InboundMessage;
use reqwest::StatusCode;
use std::sync::Arc;

both_backends!(
    the_console_lists_a_patients_texts_masked_and_without_their_link,
    a_practices_dead_letters_and_replies_show_to_its_own_staff,
    the_check_link_page_says_only_whether_a_link_is_live,
);

fn import(app: &TestApp) {
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The patient of the first queued text (the order `app.outbox()` lists them in).
async fn first_texted_patient(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT patient_id FROM outbox ORDER BY created_at, id LIMIT 1")
        .fetch_one(app.db().pool())
        .await
        .expect("a text")
}

fn last_four(number: &str) -> String {
    format!("…{}", &number[number.len() - 4..])
}

async fn the_console_lists_a_patients_texts_masked_and_without_their_link(backend: Backend) {
    let app = TestApp::start(backend).await;
    import(&app);
    let text_one = app.outbox().await.remove(0);
    let patient = first_texted_patient(&app).await;
    let link = text_one.link.clone().expect("the text carries a link");
    let token = link.rsplit('/').next().expect("token").to_owned();
    let (agent, _) = app
        .signed_in_staff("console.msgs@example.org", Role::SupportAgent)
        .await;
    let path = format!("/staff/patients/{patient}");

    // Queued out of texting hours: deferred, with the time it may go.
    let page = agent.page(&path).await;
    let shown = text(&page);
    assert!(shown.contains(&t("staff-console-messages")), "{shown}");
    assert!(shown.contains("Pay link text"), "{shown}");
    assert!(shown.contains(&last_four(&text_one.to)), "{shown}");
    for secret in [token.as_str(), link.as_str(), text_one.to.as_str()] {
        assert!(!page.contains(secret), "the console shows {secret}");
    }
    let due: i64 =
        sqlx::query_scalar("SELECT next_attempt_at FROM outbox ORDER BY created_at, id LIMIT 1")
            .fetch_one(app.db().pool())
            .await
            .expect("due");
    if due > app.state().clock.now() {
        assert!(shown.contains("Deferred until "), "{shown}");
    } else {
        assert!(page.contains("<td>Queued</td>"), "{page}");
    }

    // Sent: the console says so (to a new session: the clock moved past the first one's end).
    app.move_to_texting_hours();
    assert!(app.deliver_messages().await.sent > 0);
    let (agent, _) = app
        .signed_in_staff("console.msgs2@example.org", Role::SupportAgent)
        .await;
    let shown = text(&agent.page(&path).await);
    assert!(shown.contains(&t("messages-state-sent")), "{shown}");
    assert!(!shown.contains(&t("staff-console-no-messages")), "{shown}");
    app.finish().await;
}

/// Refuses every text for good, as Twilio does an invalid number.
struct Refusing;

#[async_trait]
impl SmsProvider for Refusing {
    fn name(&self) -> &'static str {
        "refusing-test"
    }

    async fn send(&self, _to: &str, _body: &str) -> Outcome {
        Outcome::Permanent("Twilio error 21211: invalid 'To' number".into())
    }
}

async fn reply(app: &TestApp, from: &str, body: &str) {
    let s = app.state();
    let msg = InboundMessage {
        from: from.to_owned(),
        to: "+15550100000".into(),
        body: body.to_owned(),
        message_sid: format!("SM{}", uuid::Uuid::new_v4().simple()),
    };
    patriotpay::messages::inbound::handle(&s.db, &s.crypto, &msg, s.clock.now())
        .await
        .expect("reply handled");
}

async fn count(app: &TestApp, action: &str, outcome: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND outcome = '{outcome}'"
    ))
    .await
}

/// The id in the page's one mark-as-read form.
fn reply_id(page: &str) -> String {
    let at = page.find("value=\"inb_").expect("a mark-as-read form") + "value=\"".len();
    page[at..].split('"').next().expect("id").to_owned()
}

async fn a_practices_dead_letters_and_replies_show_to_its_own_staff(backend: Backend) {
    let app = TestApp::start(backend).await;
    import(&app);
    let texts = app.outbox().await;
    app.move_to_texting_hours();
    let providers = Providers {
        sms: Arc::new(Refusing),
        ..Providers::held()
    };
    let s = app.state();
    let pass =
        patriotpay::messages::worker::run_due(&s.db, &s.crypto, &providers, s.clock.now(), 50)
            .await
            .expect("worker");
    assert_eq!(pass.dead, texts.len() as u64, "every text given up");
    // One patient writes back; another number says STOP, which is no message for staff.
    let mut numbers: Vec<&str> = vec![];
    for t in &texts {
        if !numbers.contains(&t.to.as_str()) {
            numbers.push(&t.to);
        }
    }
    assert!(numbers.len() >= 2, "{numbers:?}");
    reply(
        &app,
        numbers[0],
        "Was I charged twice for the October visit?",
    )
    .await;
    reply(&app, numbers[1], "STOP").await;

    let (agent, _) = app
        .signed_in_staff("msgs.agent@example.org", Role::SupportAgent)
        .await;
    // Linked from the staff home, and the first practice of the agent's without a query.
    let home = agent.page("/staff").await;
    assert!(home.contains("href=\"/staff/messages\""), "{home}");
    let page = agent.page("/staff/messages").await;
    let shown = text(&page);
    assert!(shown.contains("Riverside Family Medicine"), "{shown}");
    assert!(
        shown.contains("Was I charged twice for the October visit?"),
        "{shown}"
    );
    assert_eq!(
        page.matches("class=\"reply unread\"").count(),
        1,
        "STOP is not in the inbox"
    );
    assert!(shown.contains(&last_four(numbers[0])), "{shown}");
    assert!(
        shown.contains("Given up: Twilio error 21211: invalid 'To' number"),
        "{shown}"
    );
    assert_eq!(
        shown.matches("Pay link text").count(),
        texts.len(),
        "each dead letter listed: {shown}"
    );
    for t in &texts {
        assert!(!page.contains(&t.to), "a whole number is shown");
        let link = t.link.as_deref().expect("link");
        assert!(!page.contains(link.rsplit('/').next().expect("token")));
    }
    assert_eq!(count(&app, "messages.view", "success").await, 1);

    // Another practice's agent: refused (audited), nothing marked; their own page is empty.
    let (lakeside, _, _) = second_practice(&app).await;
    let (stranger, _) = app
        .signed_in_staff_of("msgs.stranger@example.org", Role::SupportAgent, &lakeside)
        .await;
    let theirs = format!("/staff/messages?practice={}", app.tenant);
    assert_eq!(stranger.get(&theirs).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "messages.view", "denied").await, 1);
    let own = text(&stranger.page("/staff/messages").await);
    assert!(own.contains("Lakeside Pediatrics"), "{own}");
    assert!(!own.contains("charged twice"), "{own}");
    let id = reply_id(&page);
    let csrf = stranger.csrf("/staff").await;
    let r = stranger
        .post(
            "/staff/messages/read",
            &[
                ("csrf", &csrf),
                ("practice", app.tenant.as_str()),
                ("reply", &id),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "messages.reply.read", "denied").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM inbound_messages WHERE read_at IS NOT NULL")
            .await,
        0
    );

    // Marked read by the practice's own agent: once, audited, shown.
    let csrf = agent.csrf("/staff/messages").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("practice", app.tenant.as_str()),
        ("reply", id.as_str()),
    ];
    let r = agent.post("/staff/messages/read", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), theirs);
    let shown = text(&agent.page(&theirs).await);
    assert!(shown.contains(&t("messages-marked")), "{shown}");
    assert!(shown.contains("Read "), "{shown}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM inbound_messages WHERE read_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(count(&app, "messages.reply.read", "success").await, 1);
    let again = agent.post("/staff/messages/read", &form).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let shown = text(&agent.page(&theirs).await);
    assert!(shown.contains(&t("messages-marked-already")), "{shown}");
    // An id that is no reply of the practice's is not found.
    let unknown = [
        ("csrf", csrf.as_str()),
        ("practice", app.tenant.as_str()),
        ("reply", "inb_00000000000000000000000000000000"),
    ];
    let r = agent.post("/staff/messages/read", &unknown).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.finish().await;
}

/// Posts one check and reads the answer from the page it redirects to.
async fn check(b: &Browser, pasted: &str) -> String {
    let csrf = b.csrf("/check-link").await;
    let r = b
        .post("/check-link", &[("csrf", &csrf), ("link", pasted)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{pasted}");
    assert_eq!(location(&r), "/check-link");
    text(&b.page("/check-link").await)
}

async fn the_check_link_page_says_only_whether_a_link_is_live(backend: Backend) {
    let app = TestApp::start(backend).await;
    let home = Browser::new(&app).page("/").await;
    assert!(
        home.contains("href=\"/check-link\""),
        "linked from the home page"
    );

    let live = app.link(1).await;
    let token = live.rsplit('/').next().expect("token").to_owned();
    let b = Browser::new(&app);
    let genuine = t("check-link-genuine");
    let not_found = t("check-link-not-found");

    let answer = check(&b, &live).await;
    assert!(answer.contains(&genuine), "{answer}");
    for private in ["Riverside", "Avery", "Quintero"] {
        assert!(!answer.contains(private), "the answer names {private}");
    }
    // The token alone, and the link inside the text message's words.
    assert!(check(&b, &token).await.contains(&genuine));
    let sms =
        format!("Riverside Family Medicine: your statement is ready {live} Reply STOP to opt out");
    assert!(check(&b, &sms).await.contains(&genuine));
    // First characters cannot be checked: the page says to paste the whole link.
    let partial = check(&b, &live[..live.len() - token.len() + 10]).await;
    assert!(partial.contains(&t("check-link-partial")), "{partial}");
    assert!(!partial.contains(&genuine));
    // A genuine token on another site is not ours.
    let elsewhere = check(&b, &format!("https://pay-riverside.example/p/{token}")).await;
    assert!(
        elsewhere.contains(&t("check-link-other-site")),
        "{elsewhere}"
    );
    // Junk, and the link once revoked.
    assert!(check(&b, "<b>hello</b>").await.contains(&not_found));
    sqlx::query("UPDATE pay_links SET revoked_at = $1")
        .bind(app.state().clock.now())
        .execute(app.db().pool())
        .await
        .expect("revoke");
    let revoked = check(&b, &live).await;
    assert!(revoked.contains(&not_found) && !revoked.contains(&genuine));

    // Every check is audited without the token; 20 from one address, then 429.
    let done = 7;
    assert_eq!(count(&app, "paylink.checked", "success").await, 3);
    assert_eq!(count(&app, "paylink.checked", "failure").await, done - 3);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE resource LIKE '%{token}%'"
        ))
        .await,
        0
    );
    for _ in done..20 {
        check(&b, "junk").await;
    }
    let other = Browser::new(&app);
    let csrf = other.csrf("/check-link").await;
    let r = other
        .post("/check-link", &[("csrf", &csrf), ("link", &live)])
        .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "per address, not per session"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'paylink.checked'")
            .await,
        20,
        "a refused check is not recorded"
    );
    app.finish().await;
}
