//! Test harness: starts the real server on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, and talks to it like a browser (cookies on, redirects inspected). Also
//! moto and the webhook helpers; the helpers for people (patient and guarantor accounts,
//! invitations, staff sign-in, catalog text) are in `people`.

use patriotpay::access::Role;
use patriotpay::config::{Config, Secret};
use patriotpay::ids::{PatientId, StatementId, TenantId, UserId};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use sqlx::Connection;

pub const WEBHOOK_SECRET: &str = "whsec_integration_test_secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub backend: Backend,
    pub url: String,
    pub sandbox_url: String,
    pub running: Option<patriotpay::Running>,
    pub dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
    pub tenant: patriotpay::ids::TenantId,
    /// The settings it started with, for `restart`.
    cfg: Config,
}

/// The PostgreSQL server the Postgres pass uses; the tests that need it are `#[ignore]`d
/// otherwise and fail loudly when run without it.
fn pg_admin_url() -> String {
    std::env::var("PATRIOTPAY_TEST_POSTGRES_URL")
        .expect("set PATRIOTPAY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run PostgreSQL tests")
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with settings adjusted by `tweak` (key provider, cache limits, …).
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
        // Each event is worked to its end before the webhook answers, so a test reads its
        // effects at once; the job-queue tests set this to 0 to leave the work to the worker.
        cfg.webhook_ack_ms = 600_000;
        // Tests drive autopay themselves (`run_autopay`), on the test clock.
        cfg.autopay_every_secs = 0;
        // The return from the processor shows "confirming" at once when the event has not been
        // booked; the test of the wait itself sets a budget.
        cfg.confirm_wait_ms = 0;
        // And the outbox (`deliver_messages`) and reminders (`run_reminders`).
        cfg.messaging.outbox_every_secs = 0;
        cfg.messaging.reminders_every_secs = 0;
        tweak(&mut cfg);
        cfg.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
        let mut pg_admin = None;
        // A test that made its own database (and roles) names it in `tweak` and drops it.
        if backend == Backend::Postgres && cfg.database_url.is_none() {
            let admin = pg_admin_url();
            let name = format!("pp_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create database");
            conn.close().await.ok();
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .expect("url has a database");
            cfg.database_url = Some(Secret::new(format!("{base}/{name}")));
            pg_admin = Some((admin, name));
        }
        let running = patriotpay::start(&cfg).await.expect("server starts");
        let tenant = patriotpay::demo::ensure(&running.state.db, &running.state.crypto)
            .await
            .expect("demo data");
        TestApp {
            backend,
            url: running.public_url.clone(),
            sandbox_url: format!("http://{}", running.sandbox_addr),
            running: Some(running),
            dir,
            pg_admin,
            tenant,
            cfg,
        }
    }

    /// Stops the server and starts it again on the same database, data directory and addresses:
    /// what the database holds survives, what was only in memory does not.
    pub async fn restart(&mut self) {
        let running = self.running.take().expect("running");
        let mut cfg = self.cfg.clone();
        cfg.addr = running.portal_addr;
        cfg.sandbox_addr = running.sandbox_addr;
        running.stop().await;
        let running = patriotpay::start(&cfg).await.expect("server restarts");
        self.url = running.public_url.clone();
        self.sandbox_url = format!("http://{}", running.sandbox_addr);
        self.running = Some(running);
    }

    /// The settings this server started with (a second server on the same database starts
    /// from them).
    pub fn config(&self) -> Config {
        self.cfg.clone()
    }

    pub fn state(&self) -> &patriotpay::http::AppState {
        &self.running.as_ref().expect("running").state
    }

    pub fn db(&self) -> &patriotpay::db::Db {
        &self.state().db
    }

    /// Runs the `patriotpay` binary on this app's data directory and database, as an operator
    /// would beside the running server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_patriotpay"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PATRIOTPAY_DATA_DIR", self.dir.path())
            .env("DATABASE_URL", self.cfg.database_url())
            // Links the command makes (imported statements' texts) point at this server.
            .env("PATRIOTPAY_PUBLIC_URL", &self.url)
            .env("PATRIOTPAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUST_LOG", "warn");
        // With KMS the command opens keys where the server does (moto, with its credentials).
        if self.cfg.key_provider == patriotpay::config::KeyProviderKind::AwsKms {
            cmd.env("PATRIOTPAY_KEY_PROVIDER", "aws-kms");
            let pairs = [
                ("PATRIOTPAY_KMS_KEY_ID", self.cfg.kms_key_id.clone()),
                ("PATRIOTPAY_AWS_REGION", self.cfg.aws_region.clone()),
                (
                    "PATRIOTPAY_KMS_ENDPOINT_URL",
                    self.cfg.kms_endpoint_url.clone(),
                ),
            ];
            for (k, v) in pairs {
                if let Some(v) = v {
                    cmd.env(k, v);
                }
            }
            for k in [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ] {
                if let Ok(v) = std::env::var(k) {
                    cmd.env(k, v);
                }
            }
        }
        cmd.output().expect("run patriotpay")
    }

    /// Every outbox message, oldest first, opened.
    pub async fn outbox(&self) -> Vec<OutboxMessage> {
        let s = self.state();
        // id, tenant, channel, template, state, recipient and body ciphertexts.
        type Row = (String, String, String, String, String, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, channel, template, state, recipient_ct, body_ct
                 FROM outbox ORDER BY created_at, id",
        )
        .fetch_all(s.db.pool())
        .await
        .expect("outbox");
        let mut out = vec![];
        for (id, tenant, channel, template, state, to_ct, body_ct) in rows {
            let tenant = patriotpay::ids::TenantId::from_db(tenant);
            let open = |column: &'static str, ct: Vec<u8>| {
                let (tenant, id) = (tenant.clone(), id.clone());
                async move {
                    s.crypto
                        .decrypt_str(patriotpay::messages::aad(&tenant, &id, column), &ct)
                        .await
                        .expect("open")
                        .expose()
                        .clone()
                }
            };
            let to = open("recipient", to_ct).await;
            let body = open("body", body_ct).await;
            let link = body
                .split_whitespace()
                .find(|w| w.starts_with(&self.url))
                .map(str::to_owned);
            out.push(OutboxMessage {
                channel,
                template,
                state,
                to,
                body,
                link,
            });
        }
        out
    }

    /// Moves the test clock forward to the next 19:00 UTC: inside every US zone's texting hours
    /// (08:00 in Honolulu, 14:00 or 15:00 in New York), so a queued text is due at once.
    pub fn move_to_texting_hours(&self) {
        let now = self.state().clock.now();
        let day = now - now.rem_euclid(86_400);
        let mut at = day + 19 * 3600;
        if at < now {
            at += 86_400;
        }
        self.state().clock.advance(at - now);
    }

    /// Queues the balance reminders due on the test clock, as the server's loop does.
    pub async fn run_reminders(&self) -> u64 {
        let s = self.state();
        patriotpay::messages::reminders::run_due(&s.db, &s.crypto, &s.public_url, s.clock.now())
            .await
            .expect("reminders")
    }

    /// Delivers the outbox's messages due on the test clock, as the server's worker does.
    pub async fn deliver_messages(&self) -> patriotpay::messages::worker::Pass {
        let s = self.state();
        patriotpay::messages::worker::run_due(&s.db, &s.crypto, &s.providers, s.clock.now(), 500)
            .await
            .expect("deliver messages")
    }

    /// Works every plan instalment due on the test clock, as the server's autopay loop does.
    pub async fn run_autopay(&self) -> usize {
        let s = self.state();
        patriotpay::payments::plans::scheduler::run_due(
            &s.db,
            &s.audit,
            s.processor.as_ref(),
            &s.alerts,
            s.clock.now(),
            100,
        )
        .await
        .expect("run autopay")
    }

    /// Works every processor event due now, as the background worker would; how many.
    pub async fn run_jobs(&self) -> usize {
        let s = self.state();
        let mut total = 0;
        loop {
            let n = patriotpay::payments::jobs::run_due(
                &s.db,
                &s.audit,
                s.processor.as_ref(),
                &s.alerts,
                s.clock.now(),
                100,
            )
            .await
            .expect("run jobs");
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// A fresh pay link (path and query only) for demo patient `n`.
    pub async fn link(&self, n: usize) -> String {
        let (_, url) = patriotpay::demo::link_text(
            self.db(),
            &self.state().crypto,
            &self.tenant,
            n,
            &self.url,
            30,
        )
        .await
        .expect("link");
        url
    }

    pub async fn statement_of(&self, n: usize) -> patriotpay::ids::StatementId {
        patriotpay::demo::statement_of(self.db(), &self.state().crypto, &self.tenant, n)
            .await
            .expect("statement")
    }

    /// The id of the account using `email` (found by its blind index, as the server does).
    pub async fn user_id_of(&self, email: &str) -> String {
        let index = patriotpay::accounts::email_index(&self.state().crypto, email)
            .await
            .expect("email index");
        sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1")
            .bind(index)
            .fetch_one(self.db().pool())
            .await
            .expect("account with that email")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db().pool())
            .await
            .expect("count query")
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some((admin, name)) = self.pg_admin.take() {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// A browser: its own cookie jar, redirects not followed so each one can be inspected. A clone
/// shares the jar (the same browser).
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    pub base: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let client = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("client");
        Browser {
            client,
            base: app.url.clone(),
        }
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.abs(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.abs(path))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// GETs a page and returns its body, asserting 200.
    pub async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("body")
    }

    /// The synchronizer token from the first form on a page.
    pub async fn csrf(&self, path: &str) -> String {
        csrf_in(&self.page(path).await)
    }

    /// Opens a pay link; asserts the token is swapped for a session and a token-free redirect.
    pub async fn open_link(&self, url: &str) {
        let r = self.get(url).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            location(&r),
            "/verify",
            "the token must not survive the redirect"
        );
    }

    pub async fn submit_dob(&self, m: &str, d: &str, y: &str) -> Response {
        let csrf = self.csrf("/verify").await;
        self.post(
            "/verify",
            &[
                ("csrf", &csrf),
                ("dob_month", m),
                ("dob_day", d),
                ("dob_year", y),
            ],
        )
        .await
    }

    pub async fn submit_zip(&self, zip: &str) -> Response {
        let csrf = self.csrf("/verify/zip").await;
        self.post("/verify/zip", &[("csrf", &csrf), ("zip", zip)])
            .await
    }

    /// Demo patient 1 through both identity checks.
    pub async fn verified_patient1(&self, app: &TestApp) {
        self.open_link(&app.link(1).await).await;
        assert_eq!(
            location(&self.submit_dob("03", "14", "1984").await),
            "/summary"
        );
        assert_eq!(location(&self.submit_zip("60614").await), "/statement");
    }

    pub async fn pay(&self, amount: &str) -> Response {
        let csrf = self.csrf("/summary").await;
        self.post(
            "/pay",
            &[("csrf", &csrf), ("amount", amount), ("from", "summary")],
        )
        .await
    }

    /// Pays on the sandbox card page at `checkout_url`; returns the sandbox's response.
    pub async fn card(&self, checkout_url: &str, number: &str) -> Response {
        let page = self
            .client
            .get(checkout_url)
            .send()
            .await
            .expect("card page");
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_in(&page.text().await.expect("body"));
        self.client
            .post(checkout_url)
            .form(&[
                ("csrf", csrf.as_str()),
                ("card_number", number),
                ("exp", "12 / 34"),
                ("cvc", "123"),
            ])
            .send()
            .await
            .expect("card POST")
    }
}

/// The bytes of every SQLite file (database, WAL, shared memory) in a data directory.
pub fn sqlite_files(dir: &std::path::Path) -> Vec<u8> {
    let mut all = vec![];
    for entry in std::fs::read_dir(dir).expect("data dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("patriotpay.db"))
        {
            all.extend(std::fs::read(&path).expect("read db file"));
        }
    }
    assert!(all.len() > 10_000, "read the database files");
    all
}

/// Every byte the database holds: the SQLite files (after a checkpoint), or every column of every
/// PostgreSQL table, text as text and ciphertexts as raw bytes.
pub async fn dump_database(app: &TestApp) -> Vec<u8> {
    match app.backend {
        Backend::Sqlite => {
            // Checkpoint so the main file holds everything, then read every file of the database.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(app.db().pool())
                .await
                .expect("checkpoint");
            sqlite_files(app.dir.path())
        }
        Backend::Postgres => {
            // Every column of every table: text as text, ciphertexts as their raw bytes (a hex
            // rendering would make random digit runs).
            let cols: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public'",
        )
        .fetch_all(app.db().pool())
        .await
        .expect("columns");
            let mut all = String::new();
            let mut raw: Vec<u8> = vec![];
            for (t, c, ty) in cols {
                if ty == "bytea" {
                    let rows: Vec<Option<Vec<u8>>> =
                        sqlx::query_scalar(&format!("SELECT {c} FROM {t}"))
                            .fetch_all(app.db().pool())
                            .await
                            .expect("dump");
                    rows.into_iter().flatten().for_each(|r| raw.extend(r));
                } else {
                    let rows: Vec<Option<String>> =
                        sqlx::query_scalar(&format!("SELECT CAST({c} AS TEXT) FROM {t}"))
                            .fetch_all(app.db().pool())
                            .await
                            .expect("dump");
                    rows.into_iter().flatten().for_each(|r| {
                        all.push_str(&r);
                        all.push('\n');
                    });
                }
            }
            assert!(raw.len() > 1000, "the dump covers the ciphertexts");
            assert!(
                all.contains("Riverside Family Medicine"),
                "the dump covers the data"
            );
            let mut bytes = all.into_bytes();
            bytes.push(b' ');
            bytes.extend(raw);
            bytes
        }
    }
}

/// Every value of every column of every table, for both backends: text as text, blobs as their
/// raw bytes, one value per line. Scanners that look for shapes (card numbers) use this rather
/// than file bytes, where record headers glue random letters and digits onto values.
pub async fn dump_columns(app: &TestApp) -> Vec<u8> {
    let cols: Vec<(String, String, String)> = match app.backend {
        Backend::Sqlite => sqlx::query_as(
            "SELECT m.name, p.name, lower(p.type) FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx_%'",
        )
        .fetch_all(app.db().pool())
        .await
        .expect("sqlite columns"),
        Backend::Postgres => sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx_%'",
        )
        .fetch_all(app.db().pool())
        .await
        .expect("postgres columns"),
    };
    let mut out = vec![];
    for (t, c, ty) in cols {
        if ty == "bytea" || ty == "blob" {
            let rows: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&format!("SELECT {c} FROM {t}"))
                .fetch_all(app.db().pool())
                .await
                .expect("dump");
            for r in rows.into_iter().flatten() {
                out.extend(r);
                out.push(b'\n');
            }
        } else {
            let rows: Vec<Option<String>> =
                sqlx::query_scalar(&format!("SELECT CAST({c} AS TEXT) FROM {t}"))
                    .fetch_all(app.db().pool())
                    .await
                    .expect("dump");
            for r in rows.into_iter().flatten() {
                out.extend(r.into_bytes());
                out.push(b'\n');
            }
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("Riverside Family Medicine") && text.contains("pat_"),
        "the dump covers the data"
    );
    out
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .map(|i| i + marker.len())
        .expect("page has a csrf field");
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// The text of the first `<h1>`.
pub fn h1(html: &str) -> String {
    let start = html.find("<h1>").map(|i| i + 4).expect("page has an h1");
    let end = html[start..].find("</h1>").expect("closing h1") + start;
    html[start..end].to_owned()
}

/// Defines one test per backend from one async body taking `Backend`: `…::sqlite::name` and
/// `…::postgres::name`, the latter `#[ignore]`d so the PostgreSQL pass selects it with
/// `--ignored postgres::`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
                async fn $name() {
                    super::$name(crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The `pp_session=…` pair a response sets, if it sets one.
pub fn session_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pp_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

/// A GET carrying only `cookie` (no jar, no redirects): what a replayed session cookie gets.
pub async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> Response {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .get(format!("{}{path}", app.url))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("GET")
}

/// Posts a processor event to the webhook endpoint with the `Stripe-Signature` header `sig`, if
/// any.
pub async fn post_event(app: &TestApp, body: &str, sig: Option<String>) -> Response {
    let mut req = Client::new()
        .post(format!("{}/webhooks/stripe", app.url))
        .body(body.to_owned());
    if let Some(s) = sig {
        req = req.header("Stripe-Signature", s);
    }
    req.send().await.expect("webhook POST")
}

/// Posts a processor event to the webhook endpoint, signed with the test secret as the processor
/// would sign it (for replays).
pub async fn post_webhook(app: &TestApp, body: &str) -> Response {
    let sig = patriotpay::payments::signature::sign(
        WEBHOOK_SECRET,
        patriotpay::clock::now_unix(),
        body.as_bytes(),
    );
    post_event(app, body, Some(sig)).await
}

// ---- moto (the KMS and Cognito tests) ---------------------------------------------------------

/// The moto server the KMS and Cognito tests use; they are `#[ignore]`d otherwise.
pub fn moto_url() -> String {
    std::env::var("PATRIOTPAY_TEST_MOTO_URL")
        .expect("set PATRIOTPAY_TEST_MOTO_URL to a running moto_server (see .ci/run)")
}

/// AWS SDK settings pointing at moto in us-east-1 (credentials from the environment).
pub async fn moto_aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}

// ---- patients, guarantors and staff over HTTP -------------------------------------------------

mod people;
pub use people::*;

/// An outbox message as a test reads it.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub channel: String,
    pub template: String,
    pub state: String,
    pub to: String,
    pub body: String,
    /// The first portal link in the body.
    pub link: Option<String>,
}
