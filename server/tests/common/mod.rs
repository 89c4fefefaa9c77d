//! Test harness: starts the real server on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, and talks to it like a browser (cookies on, redirects inspected).
#![allow(dead_code)]

use patriotpay::config::{Config, Secret};
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
    pub database_url: String,
    pg_admin: Option<(String, String)>,
    pub tenant: patriotpay::ids::TenantId,
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
        tweak(&mut cfg);
        cfg.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
        let mut pg_admin = None;
        if backend == Backend::Postgres {
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
        let database_url = cfg.database_url();
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
            database_url,
            pg_admin,
            tenant,
        }
    }

    pub fn state(&self) -> &patriotpay::http::AppState {
        &self.running.as_ref().expect("running").state
    }

    pub fn db(&self) -> &patriotpay::db::Db {
        &self.state().db
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

/// A browser: its own cookie jar, redirects not followed so each one can be inspected.
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

/// Defines one test per backend from one async body taking `Backend`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
                async fn $name() {
                    super::$name(super::common::Backend::Postgres).await
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

/// Posts a processor event to the webhook endpoint, signed with the test secret as the processor
/// would sign it (for replays).
pub async fn post_webhook(app: &TestApp, body: &str) -> Response {
    let sig = patriotpay::payments::signature::sign(
        WEBHOOK_SECRET,
        patriotpay::clock::now_unix(),
        body.as_bytes(),
    );
    Client::new()
        .post(format!("{}/webhooks/stripe", app.url))
        .header("Stripe-Signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .expect("webhook POST")
}

/// A permit to read a statement's lines, asked of the policy as its patient (the audit event is
/// written like a page view's), for tests that call the billing readers directly.
pub async fn statement_permit(
    db: &patriotpay::db::Db,
    header: &patriotpay::billing::StatementHeader,
) -> patriotpay::access::Permit {
    let who = patriotpay::access::Principal::patient_of(
        "test".into(),
        &header.tenant_id,
        &header.patient_id,
    );
    patriotpay::access::permit(
        db.pool(),
        patriotpay::access::Ask {
            who: &who,
            actor: &patriotpay::audit::Actor::system("test"),
            action: patriotpay::access::Action::ViewItemisedStatement,
            on: patriotpay::access::Resource {
                tenant: &header.tenant_id,
                patient: Some(&header.patient_id),
                clinical_restricted: false,
            },
            event: "test.statement.view",
            resource: None,
            now: patriotpay::clock::now_unix(),
        },
    )
    .await
    .expect("permit")
}
