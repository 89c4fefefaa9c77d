//! Email over SMTP (issue 13) against a small SMTP server in the test (`sink`): the provider's
//! conversation (greeting name, credentials, envelope, headers, plain-text body, the Message-ID
//! recorded as the provider id); a 451 retried by the worker after its backoff, a 550 given up;
//! and a portal configured with `smtp` sending the password-reset code to the sink.

mod sink;

use crate::common::{csrf_in, location, patient_account, Backend, Browser, TestApp};
use patriotpay::config::EmailProviderKind;
use patriotpay::messages::providers::{EmailProvider, Outcome};
use patriotpay::messages::smtp::{SmtpConfig, SmtpEmail, SmtpTls};
use patriotpay::messages::{self, Channel, Outgoing, Purpose};
use patriotpay::phi::Phi;
use sink::SmtpSink;

const FROM: &str = "PatriotPay <no-reply@pay.example.org>";

fn provider(sink: &SmtpSink, credentials: Option<(&str, &str)>) -> SmtpEmail {
    SmtpEmail::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.port,
        tls: SmtpTls::None,
        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        from: FROM.into(),
        hello_name: "pay.example.org".into(),
    })
    .expect("provider")
}

/// A portal whose emails go to `sink` (no TLS: loopback only).
async fn app_with_sink(backend: Backend, sink: &SmtpSink) -> TestApp {
    let port = sink.port;
    TestApp::start_with(backend, move |cfg| {
        cfg.messaging.email_provider = EmailProviderKind::Smtp;
        cfg.messaging.smtp_host = Some("127.0.0.1".into());
        cfg.messaging.smtp_port = Some(port);
        cfg.messaging.smtp_tls = SmtpTls::None;
        cfg.messaging.smtp_from = Some(FROM.into());
        cfg.messaging.smtp_username = Some("portal".into());
        cfg.messaging.smtp_password = Some(patriotpay::config::Secret::new("s3cret"));
    })
    .await
}

#[tokio::test]
async fn the_provider_sends_a_plain_text_message_and_names_it_by_its_message_id() {
    let sink = SmtpSink::start().await;
    let smtp = provider(&sink, Some(("portal", "s3cret")));
    let outcome = smtp
        .send(
            "dana@example.org",
            "Your code",
            "Line one.\n.A line starting with a dot.",
        )
        .await;
    let Outcome::Accepted { provider_id } = outcome else {
        panic!("not accepted: {outcome:?}");
    };
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.hello, "pay.example.org");
    assert_eq!(m.auth, Some(("portal".into(), "s3cret".into())));
    assert_eq!(m.from, "no-reply@pay.example.org");
    assert_eq!(m.to, vec!["dana@example.org".to_owned()]);
    assert_eq!(m.header("Message-ID"), Some(provider_id.clone()));
    assert!(provider_id.ends_with("@pay.example.org>"), "{provider_id}");
    assert_eq!(m.header("Subject").as_deref(), Some("Your code"));
    assert_eq!(m.header("To").as_deref(), Some("dana@example.org"));
    assert!(m
        .header("From")
        .is_some_and(|f| f.contains("no-reply@pay.example.org")));
    assert!(m
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(
        m.body(),
        "Line one.\r\n.A line starting with a dot.",
        "the body as written (the dot unstuffed again)"
    );

    // No credentials configured: none sent.
    let anonymous = provider(&sink, None);
    assert!(matches!(
        anonymous.send("dana@example.org", "s", "b").await,
        Outcome::Accepted { .. }
    ));
    assert_eq!(sink.received()[1].auth, None);
}

#[tokio::test]
async fn refusals_and_an_absent_server_map_to_the_workers_outcomes() {
    let sink = SmtpSink::start().await;
    let smtp = provider(&sink, None);
    sink.refuse_with(Some(451));
    assert!(matches!(
        smtp.send("a@example.org", "s", "b").await,
        Outcome::Retry(why) if why.contains("451")
    ));
    sink.refuse_with(Some(550));
    assert!(matches!(
        smtp.send("a@example.org", "s", "b").await,
        Outcome::Permanent(why) if why.contains("550")
    ));
    // Nobody listening: not reached, so tried again later.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let nowhere = SmtpEmail::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port: closed,
        tls: SmtpTls::None,
        credentials: None,
        from: FROM.into(),
        hello_name: "pay.example.org".into(),
    })
    .expect("provider");
    assert!(matches!(
        nowhere.send("a@example.org", "s", "b").await,
        Outcome::Retry(_)
    ));
}

/// Queues one account email to `to` in the outbox, as the portal does.
async fn queue_email(app: &TestApp, to: &str) {
    let s = app.state();
    let now = s.clock.now();
    let sealed = messages::seal(
        &s.crypto,
        Outgoing {
            tenant: patriotpay::accounts::platform().clone(),
            channel: Channel::Email,
            purpose: Purpose::Account,
            template: "test",
            language: patriotpay::intake::Language::En,
            to: Phi::new(to.to_owned()),
            to_index: patriotpay::accounts::email_index(&s.crypto, to)
                .await
                .expect("index"),
            subject: Some(Phi::new("Hello".to_owned())),
            body: Phi::new("A test message.".to_owned()),
            zone: None,
            patient: None,
            statement: None,
            not_before: now,
        },
    )
    .await
    .expect("seal");
    let mut tx = s.db.begin_write().await.expect("tx");
    messages::queue(&mut tx, &sealed, now).await.expect("queue");
    tx.commit().await.expect("commit");
}

/// (state, attempts, next attempt, provider, provider id, last error) of the only row to `to`.
async fn row(
    app: &TestApp,
) -> (
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    sqlx::query_as(
        "SELECT state, attempts, next_attempt_at, provider, provider_id, last_error FROM outbox",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("row")
}

async fn a_451_is_retried_after_its_backoff(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    queue_email(&app, "dana@example.org").await;
    sink.refuse_with(Some(451));
    let now = app.state().clock.now();
    assert_eq!(app.deliver_messages().await.deferred, 1);
    let (state, attempts, next, _, _, error) = row(&app).await;
    assert_eq!((state.as_str(), attempts), ("queued", 1));
    assert_eq!(next, now + patriotpay::messages::worker::backoff_secs(1));
    assert!(error.is_some_and(|e| e.contains("451")));
    // Not due yet: nothing sent.
    assert_eq!(app.deliver_messages().await.handled(), 0);
    assert_eq!(sink.received().len(), 1);

    sink.refuse_with(None);
    app.state().clock.advance(next - now);
    assert_eq!(app.deliver_messages().await.sent, 1);
    let (state, attempts, _, provider, provider_id, _) = row(&app).await;
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    assert_eq!(provider.as_deref(), Some("smtp"));
    let got = sink.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("Message-ID"), provider_id);
    assert_eq!(got[1].to, vec!["dana@example.org".to_owned()]);
    assert_eq!(got[1].auth, Some(("portal".into(), "s3cret".into())));
}

async fn a_550_is_given_up(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    queue_email(&app, "nobody@example.org").await;
    sink.refuse_with(Some(550));
    assert_eq!(app.deliver_messages().await.dead, 1);
    let (state, attempts, _, provider, provider_id, error) = row(&app).await;
    assert_eq!((state.as_str(), attempts), ("dead", 1));
    assert_eq!((provider.as_deref(), provider_id), (Some("smtp"), None));
    let error = error.expect("an error");
    assert!(error.contains("550"), "{error}");
    assert!(!error.contains("nobody"), "no address kept: {error}");
    // Never tried again.
    app.state().clock.advance(86_400);
    assert_eq!(app.deliver_messages().await.handled(), 0);
    assert_eq!(sink.received().len(), 1);
}

/// A member's forgotten password, end to end: the portal configured with `smtp` hands the
/// reset-code email to the mail server, and the code in it resets the password.
async fn the_reset_code_goes_out_by_smtp(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let _owner = patient_account(&app, 1, "avery@example.org").await;
    // The sign-up code went first.
    app.deliver_messages().await;
    let before = sink.received().len();
    let b = Browser::new(&app);
    let csrf = csrf_in(&b.page("/account/forgot").await);
    let r = b
        .post(
            "/account/forgot",
            &[("csrf", csrf.as_str()), ("email", "avery@example.org")],
        )
        .await;
    assert_eq!(location(&r), "/account/reset-password");
    assert_eq!(
        sink.received().len(),
        before,
        "sent by the worker, not the page"
    );
    assert_eq!(app.deliver_messages().await.sent, 1);
    let got = sink.received();
    assert_eq!(got.len(), before + 1);
    let m = &got[before];
    assert_eq!(m.to, vec!["avery@example.org".to_owned()]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Your PatriotPay password reset code")
    );
    let body = m.body().replace("\r\n", " ");
    let code = body
        .split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit()))
        .expect("a code in the email")
        .to_owned();
    let csrf = csrf_in(&b.page("/account/reset-password").await);
    let pw = "a brand new passphrase";
    let r = b
        .post(
            "/account/reset-password",
            &[
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
                ("password", pw),
                ("password_confirm", pw),
            ],
        )
        .await;
    assert_eq!(location(&r), "/signin");
    // The password-changed notice follows the same way.
    assert_eq!(app.deliver_messages().await.sent, 1);
    assert_eq!(
        sink.received()[before + 1].header("Subject").as_deref(),
        Some("Your PatriotPay password was changed")
    );
}

both_backends!(
    a_451_is_retried_after_its_backoff,
    a_550_is_given_up,
    the_reset_code_goes_out_by_smtp,
);
