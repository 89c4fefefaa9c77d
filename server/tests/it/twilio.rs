//! Texts through Twilio (issue 13), against a local stand-in for its Messages API: the request
//! (path, basic auth, form), a 429 retried later, a refused number given up; the status callback
//! and the reply webhook with valid, forged and replayed signatures; STOP opts the number out
//! (queued texts cancelled, one confirmation), START back in, HELP answered, other replies kept
//! for staff. Both databases.

use crate::common::{Backend, TestApp};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use patriotpay::config::{Secret, SmsProviderKind};
use patriotpay::messages::twilio_signature;
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};

both_backends!(
    texts_go_to_twilio_and_its_answers_are_honoured,
    webhooks_need_twilio_signature_and_replies_change_consent_once,
);

const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-test-auth-token";
const SERVICE: &str = "MG00000000000000000000000000000001";

/// One request the fake received: account in the path, Authorization header, form.
type Seen = (String, Option<String>, Vec<(String, String)>);

/// What the fake received, and how it answers next (status, JSON), in turn; then 201.
#[derive(Default)]
struct Fake {
    seen: Vec<Seen>,
    answers: Vec<(u16, String)>,
}

async fn messages(
    State(fake): State<Arc<Mutex<Fake>>>,
    headers: HeaderMap,
    axum::extract::Path(account): axum::extract::Path<String>,
    body: String,
) -> axum::response::Response {
    let mut f = fake.lock().expect("fake");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    f.seen.push((account, auth, form));
    let n = f.seen.len();
    let (status, json) = if f.answers.is_empty() {
        (
            201,
            format!(
                r#"{{"account_sid":"{SID}","api_version":"2010-04-01","body":"x","date_created":"Tue, 01 Dec 2026 19:00:00 +0000","date_sent":null,"date_updated":"Tue, 01 Dec 2026 19:00:00 +0000","direction":"outbound-api","error_code":null,"error_message":null,"from":null,"messaging_service_sid":"{SERVICE}","num_media":"0","num_segments":"1","price":null,"price_unit":"USD","sid":"SM{n:032}","status":"accepted","subresource_uris":{{"media":"/2010-04-01/Accounts/{SID}/Messages/SM{n:032}/Media.json"}},"to":"+13125550101","uri":"/2010-04-01/Accounts/{SID}/Messages/SM{n:032}.json"}}"#
            ),
        )
    } else {
        f.answers.remove(0)
    };
    (
        AxumStatus::from_u16(status).unwrap_or(AxumStatus::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        json,
    )
        .into_response()
}

async fn fake_twilio() -> (String, Arc<Mutex<Fake>>) {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(messages),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, fake)
}

async fn start(backend: Backend, twilio_url: String) -> TestApp {
    TestApp::start_with(backend, move |c| {
        c.messaging.sms_provider = SmsProviderKind::Twilio;
        c.messaging.twilio_account_sid = Some(SID.into());
        c.messaging.twilio_auth_token = Some(Secret::new(TOKEN));
        c.messaging.twilio_messaging_service_sid = Some(SERVICE.into());
        c.messaging.twilio_api_url = twilio_url;
    })
    .await
}

fn import(app: &TestApp) {
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

async fn texts_go_to_twilio_and_its_answers_are_honoured(backend: Backend) {
    let (url, fake) = fake_twilio().await;
    let app = start(backend, url).await;
    import(&app);
    app.move_to_texting_hours();
    {
        let mut f = fake.lock().expect("fake");
        // The first text: rate limited, then taken. The second: an unsubscribed number.
        f.answers.push((
            429,
            r#"{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}"#.into(),
        ));
    }
    let pass = app.deliver_messages().await;
    assert_eq!((pass.sent, pass.deferred), (3, 1), "{pass:?}");
    let seen = fake.lock().expect("fake").seen.clone();
    assert_eq!(seen.len(), 4);
    let (account, auth, form) = &seen[0];
    assert_eq!(account, SID);
    let expected = format!("Basic {}", base64_encode(&format!("{SID}:{TOKEN}")));
    assert_eq!(auth.as_deref(), Some(expected.as_str()));
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(field("To").starts_with("+1312555010"));
    assert_eq!(field("MessagingServiceSid"), SERVICE);
    assert!(field("Body").starts_with("Riverside Family Medicine: "));
    assert_eq!(
        field("StatusCallback"),
        format!("{}/webhooks/twilio/status", app.url)
    );
    // The rate-limited one waits for its backoff, then goes.
    assert_eq!(
        app.deliver_messages().await.sent,
        0,
        "not before its backoff"
    );
    app.state().clock.advance(31);
    fake.lock().expect("fake").answers.push((
        400,
        r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}"#.into(),
    ));
    let pass = app.deliver_messages().await;
    assert_eq!(pass.dead, 1, "a refused number is not retried: {pass:?}");
    let dead: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT state, last_error FROM outbox WHERE state = 'dead'")
            .fetch_all(app.db().pool())
            .await
            .expect("rows");
    assert!(
        dead[0].1.as_deref().is_some_and(|e| e.contains("21610")),
        "{dead:?}"
    );
    assert_eq!(
        provider_opt_outs(&app).await,
        1,
        "the number opted out at Twilio is an opt-out in the ledger"
    );
    app.finish().await;
}

/// Opt-outs in the consent ledger recorded from Twilio's error 21610.
async fn provider_opt_outs(app: &TestApp) -> i64 {
    app.count(
        "SELECT COUNT(*) FROM sms_consents
         WHERE state = 'opted_out' AND wording_version = 'twilio-21610'",
    )
    .await
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// POSTs Twilio's form to one of our webhooks, signed with `token` (or not at all).
async fn webhook(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let url = format!("{}{path}", app.url);
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&owned).expect("form"));
    if let Some(t) = token {
        req = req.header(
            "x-twilio-signature",
            twilio_signature::signature(t, &url, &owned),
        );
    }
    req.send().await.expect("webhook")
}

async fn webhooks_need_twilio_signature_and_replies_change_consent_once(backend: Backend) {
    let (url, _fake) = fake_twilio().await;
    let app = start(backend, url).await;
    import(&app);
    app.move_to_texting_hours();
    assert_eq!(app.deliver_messages().await.sent, 4);
    let sid: String = sqlx::query_scalar("SELECT provider_id FROM outbox ORDER BY created_at, id")
        .fetch_one(app.db().pool())
        .await
        .expect("sid");

    // Status: forged and unsigned refused; signed recorded; a late "sent" does not undo it.
    let delivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", SID),
    ];
    let status = "/webhooks/twilio/status";
    assert_eq!(
        webhook(&app, status, &delivered, None).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        webhook(&app, status, &delivered, Some("not-the-token"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let state = |app: &TestApp, sid: String| {
        let pool = app.db().pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM outbox WHERE provider_id = $1")
                .bind(sid)
                .fetch_one(&pool)
                .await
                .expect("state")
        }
    };
    assert_eq!(state(&app, sid.clone()).await, "sent");
    assert_eq!(
        webhook(&app, status, &delivered, Some(TOKEN))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(state(&app, sid.clone()).await, "delivered");
    let late = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "sent"),
        ("AccountSid", SID),
    ];
    webhook(&app, status, &late, Some(TOKEN)).await;
    assert_eq!(state(&app, sid.clone()).await, "delivered");
    // A text to another number than the one that replies STOP below fails with 21610 (the
    // number opted out at Twilio): an opt-out entry, once.
    let replier = app
        .state()
        .crypto
        .blind_index(&app.tenant, "phone", "+13125550101")
        .await
        .expect("index");
    let other: String = sqlx::query_scalar(
        "SELECT provider_id FROM outbox
         WHERE provider_id <> $1 AND recipient_bidx <> $2 ORDER BY created_at, id",
    )
    .bind(&sid)
    .bind(replier)
    .fetch_one(app.db().pool())
    .await
    .expect("sid");
    let refused = [
        ("MessageSid", other.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "21610"),
        ("AccountSid", SID),
    ];
    for _ in 0..2 {
        let r = webhook(&app, status, &refused, Some(TOKEN)).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(state(&app, other).await, "failed");
    assert_eq!(provider_opt_outs(&app).await, 1);

    // A new statement's text queued for the number, then STOP: it is cancelled.
    let inbound = "/webhooks/twilio/inbound";
    let stop = [
        ("MessageSid", "SM90000000000000000000000000000001"),
        ("From", "+13125550101"),
        ("To", "+13125550199"),
        ("Body", "Stop."),
        ("AccountSid", SID),
    ];
    assert_eq!(
        webhook(&app, inbound, &stop, Some("forged")).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = webhook(&app, inbound, &stop, Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let twiml = r.text().await.expect("twiml");
    assert!(
        twiml.contains("<Message>Riverside Family Medicine: You are opted out"),
        "{twiml}"
    );
    // Replayed: recorded once, no second confirmation.
    let again = webhook(&app, inbound, &stop, Some(TOKEN))
        .await
        .text()
        .await
        .expect("twiml");
    assert!(!again.contains("<Message>"), "{again}");
    let standing: Vec<(String, String)> =
        sqlx::query_as("SELECT state, source FROM sms_consents ORDER BY at, seq")
            .fetch_all(app.db().pool())
            .await
            .expect("ledger");
    assert_eq!(
        standing
            .iter()
            .filter(|(s, src)| s == "opted_out" && src == "keyword")
            .count(),
        1,
        "{standing:?}"
    );
    // HELP names the practice and its phone; START opts back in; anything else waits for staff.
    let help = [
        ("MessageSid", "SM90000000000000000000000000000002"),
        ("From", "+13125550102"),
        ("To", "+13125550199"),
        ("Body", "help"),
        ("AccountSid", SID),
    ];
    let twiml = webhook(&app, inbound, &help, Some(TOKEN))
        .await
        .text()
        .await
        .expect("twiml");
    // That patient prefers Spanish.
    assert!(
        twiml.contains("Riverside Family Medicine: Mensajes sobre"),
        "{twiml}"
    );
    let start = [
        ("MessageSid", "SM90000000000000000000000000000003"),
        ("From", "+13125550101"),
        ("To", "+13125550199"),
        ("Body", "START"),
        ("AccountSid", SID),
    ];
    let twiml = webhook(&app, inbound, &start, Some(TOKEN))
        .await
        .text()
        .await
        .expect("twiml");
    assert!(twiml.contains("again"), "{twiml}");
    let other = [
        ("MessageSid", "SM90000000000000000000000000000004"),
        ("From", "+13125550103"),
        ("To", "+13125550199"),
        ("Body", "Is this the bill for my knee?"),
        ("AccountSid", SID),
    ];
    let twiml = webhook(&app, inbound, &other, Some(TOKEN))
        .await
        .text()
        .await
        .expect("twiml");
    assert!(!twiml.contains("<Message>"), "{twiml}");
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM inbound_messages ORDER BY received_at, message_sid")
            .fetch_all(app.db().pool())
            .await
            .expect("kinds");
    assert_eq!(kinds, ["opt_out", "help", "opt_in", "other"]);
    // The reply's words are sealed: not in the database in the clear.
    let dump = crate::common::dump_database(&app).await;
    assert!(!dump.windows(4).any(|w| w == b"knee"));
    app.finish().await;
}
