//! A canary patient run through every flow (pay link, account, invitation, household, staff
//! search and break-glass): its PHI must never appear in logs, URLs, redirects, error pages,
//! alerts, the processor's page, message bodies and what a text provider is sent (but the number
//! itself), or the database at rest (SQLite file bytes; every PostgreSQL column).

use crate::common::{
    answer_invitation, confirm_and_sign_in_with, csrf_in, dump_database, invite_link_emailed,
    location, pay_statements, post_webhook, signed_in_staff, submit_account_form, Backend, Browser,
    TestApp,
};
use patriotpay::access::Role;
use std::sync::{Arc, Mutex, OnceLock};

both_backends!(canary_never_leaks);

/// The operator's commands, run as the real binary (debug logging) over a data directory that
/// holds the canary: nothing they print names it.
#[tokio::test]
async fn the_cli_never_prints_the_canary() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let cfg = patriotpay::config::Config::for_data_dir(dir.path().to_path_buf());
        let (db, crypto) = patriotpay::open_storage(&cfg).await.expect("storage");
        let tenant = patriotpay::demo::ensure(&db, &crypto).await.expect("demo");
        import_canary(&db, &crypto, &tenant).await;
        db.pool().close().await;
    }
    let runs: &[&[&str]] = &[
        &[
            "users",
            "add",
            "--email",
            "canary.ops@example.org",
            "--role",
            "platform-admin",
            "--name",
            "Canary Ops",
        ],
        &["users", "list"],
        &["keys", "reencrypt"],
        &["demo-link", "--patient", "1"],
    ];
    for args in runs {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_patriotpay"))
            .args(*args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PATRIOTPAY_DATA_DIR", dir.path())
            .env("RUST_LOG", "debug")
            .output()
            .expect("run patriotpay");
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_clean(
            &format!("stdout of {args:?}"),
            &String::from_utf8_lossy(&out.stdout),
        );
        assert_clean(
            &format!("stderr of {args:?}"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }
}

const FIRST: &str = "Zebulonette";
const LAST: &str = "Canarywick";
const DOB: &str = "1977-07-07";
pub(crate) const ZIP: &str = "73301";
const PHONE: &str = "+15557770123";
const ACCOUNT: &str = "CANARY-778899";
const DESCRIPTION: &str = "Canary xylophone procedure";
const SERVICE_DATE: &str = "2026-07-19";
/// The accounts the canary and its guarantor make. Their owners see them on their own pages, so
/// they are checked at rest and in the logs only.
const MEMBER_EMAIL: &str = "canary.member@example.org";
const GUARANTOR_EMAIL: &str = "canary.guarantor@example.org";

/// Everything identifying, in the forms it could leak in.
pub(crate) const NEEDLES: &[&str] = &[
    FIRST,
    LAST,
    DOB,
    "19770707",
    "07/07/1977",
    ZIP,
    PHONE,
    "5557770123",
    ACCOUNT,
    DESCRIPTION,
    "xylophone",
    SERVICE_DATE,
    STREET,
    "Canaryfeather",
    CITY,
    EMAIL,
    GUARANTOR,
    "Pennywhistle",
    GUARANTOR_PHONE,
    "5557770999",
    RECORD,
    CODE,
];

#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at debug level, from every crate, in both formats the
/// binary writes (`PATRIOTPAY_LOG_FORMAT` text and json, the same layers `main` installs): from
/// the canary's first step on, that includes the other integration tests running beside it,
/// which only adds lines to check (none of them uses the canary's values).
pub(crate) fn logs() -> &'static Captured {
    use patriotpay::observe::{log_layer, LogFormat};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let (text, json) = (c.clone(), c.clone());
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(log_layer(LogFormat::Text, move || text.clone(), false))
            .with(log_layer(LogFormat::Json, move || json.clone(), false))
            .try_init();
        c
    })
}

/// Whether `hay` holds `needle`. All-digit needles (the ZIP) must stand alone: hex ids and
/// request ids contain short digit runs by chance, which are not leaks.
pub(crate) fn holds(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    let numeric = n.iter().all(u8::is_ascii_digit);
    hay.windows(n.len()).enumerate().any(|(i, w)| {
        w == n
            && (!numeric
                || (i
                    .checked_sub(1)
                    .and_then(|j| hay.get(j))
                    .is_none_or(|b| !b.is_ascii_alphanumeric())
                    && hay
                        .get(i + n.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric())))
    })
}

fn assert_clean(what: &str, text: &str) {
    for n in NEEDLES {
        assert!(
            !holds(text.as_bytes(), n),
            "{what} contains canary value {n:?}"
        );
    }
}

impl Captured {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

#[test]
fn numeric_needles_need_boundaries() {
    assert!(holds(b"zip=73301&", "73301"));
    assert!(!holds(b"ten_ab73301cd", "73301"));
    assert!(holds(b"xCanarywickx", "Canarywick"));
}

/// Records every URL and redirect the browser saw, and checks each response as it comes.
struct Seen {
    urls: Vec<String>,
}

impl Seen {
    async fn check(
        &mut self,
        url: &str,
        r: reqwest::Response,
        phi_page: bool,
    ) -> (reqwest::StatusCode, String, String) {
        let status = r.status();
        let loc = location(&r);
        self.urls.push(url.to_owned());
        self.urls.push(loc.clone());
        for (name, value) in r.headers() {
            assert_clean(
                &format!("header {name} of {url}"),
                value.to_str().unwrap_or(""),
            );
        }
        let body = r.text().await.expect("body");
        if status.as_u16() >= 400 || !phi_page {
            assert_clean(&format!("{status} page at {url}"), &body);
        }
        (status, loc, body)
    }
}

/// The canary's address, email, guarantor, record number and procedure code: only statement
/// import carries them.
const STREET: &str = "12 Canaryfeather Lane";
const CITY: &str = "Wrenfield";
const EMAIL: &str = "zebulonette.c@example.org";
const GUARANTOR: &str = "Pennywhistle Canarywick";
const GUARANTOR_PHONE: &str = "+15557770999";
const RECORD: &str = "CANARY-MRN-4242";
const CODE: &str = "Q9977";

/// The canary patient and one statement, through the real import path (a CSV file as a practice
/// sends it, every field filled).
pub(crate) async fn import_canary(
    db: &patriotpay::db::Db,
    crypto: &std::sync::Arc<patriotpay::crypto::FieldCrypto>,
    tenant: &patriotpay::ids::TenantId,
) -> (patriotpay::ids::PatientId, patriotpay::ids::StatementId) {
    use patriotpay::intake::{run, Field, Format};
    let header: Vec<&str> = Field::COLUMNS.iter().map(|f| f.column()).collect();
    let row = [
        "canary-practice",
        RECORD,
        FIRST,
        LAST,
        DOB,
        STREET,
        "",
        CITY,
        "TX",
        ZIP,
        PHONE,
        EMAIL,
        ACCOUNT,
        "en",
        "false",
        "false",
        GUARANTOR,
        GUARANTOR_PHONE,
        "spouse",
        "CANARY-S-1",
        "2026-11-01",
        "2026-12-01",
        "USD",
        "75.00",
        SERVICE_DATE,
        CODE,
        DESCRIPTION,
        "300.00",
        "200.00",
        "25.00",
        "75.00",
        "false",
    ];
    assert_eq!(row.len(), header.len());
    let text = format!("{}\n{}\n", header.join(","), row.join(","));
    let opts = run::Options {
        tenant: tenant.clone(),
        format: Format::Csv,
        dry_run: false,
        partial: false,
        source: run::Source::Cli,
        actor: patriotpay::audit::Actor::system("cli"),
        now: patriotpay::clock::now_unix(),
        alerts: Default::default(),
        public_url: "https://pay.example.org".into(),
    };
    let summary = run::import(
        db,
        crypto.clone(),
        std::io::Cursor::new(text),
        &opts,
        |_| {},
    )
    .await
    .expect("import");
    assert_eq!((summary.created, summary.rejected), (1, 0), "{summary:?}");
    let (statement, patient): (String, String) =
        sqlx::query_as("SELECT id, patient_id FROM statements WHERE external_id = 'CANARY-S-1'")
            .fetch_one(db.pool())
            .await
            .expect("imported statement");
    (
        patriotpay::ids::PatientId::from_db(patient),
        patriotpay::ids::StatementId::from_db(statement),
    )
}

async fn canary_never_leaks(backend: Backend) {
    let logs = logs();
    let app = TestApp::start(backend).await;
    let (db, crypto) = (app.db().clone(), app.state().crypto.clone());
    let tenant = app.tenant.clone();
    let (patient, statement) = import_canary(&db, &crypto, &tenant).await;
    let (_, token) = patriotpay::links::create(
        &db,
        &tenant,
        &statement,
        patriotpay::clock::now_unix() + 3600,
    )
    .await
    .expect("link");
    let link = format!("{}/p/{token}", app.url);
    // Search by blind index finds the canary without plaintext.
    let found = patriotpay::billing::find_by_name_dob(&db, &crypto, &tenant, " canarywick", DOB)
        .await
        .expect("search");
    assert_eq!(found, vec![patient.clone()]);
    assert_eq!(
        patriotpay::billing::find_by_account(&db, &crypto, &tenant, "canary 778899")
            .await
            .expect("s"),
        vec![patient.clone()]
    );

    let b = Browser::new(&app);
    let mut seen = Seen { urls: vec![] };
    let (_, loc, _) = seen.check(&link, b.get(&link).await, false).await;
    assert_eq!(loc, "/verify");
    seen.check("/verify", b.get("/verify").await, false).await;
    let r = b.submit_dob("01", "01", "1970").await;
    seen.check("POST /verify (wrong)", r, false).await;
    let r = b.submit_dob("07", "07", "1977").await;
    let (_, loc, _) = seen.check("POST /verify", r, false).await;
    assert_eq!(loc, "/summary");
    seen.check("/summary", b.get("/summary").await, false).await;
    seen.check("POST /pay (bad)", b.pay("999").await, false)
        .await;
    seen.check("/summary", b.get("/summary").await, false).await;
    seen.check(
        "POST /verify/zip (wrong)",
        b.submit_zip("10001").await,
        false,
    )
    .await;
    seen.check("POST /verify/zip", b.submit_zip(ZIP).await, false)
        .await;
    let (_, _, st) = seen
        .check("/statement", b.get("/statement").await, true)
        .await;
    assert!(
        st.contains(DESCRIPTION),
        "the patient does see their own statement"
    );
    for n in [FIRST, LAST, DOB, PHONE, ACCOUNT] {
        assert!(
            !st.contains(n),
            "the statement page has no need to show {n}"
        );
    }

    // Declined, then paid.
    let (_, checkout, _) = seen.check("POST /pay", b.pay("25.00").await, false).await;
    let card_page = b.client.get(&checkout).send().await.expect("card page");
    let (_, _, html) = seen.check(&checkout, card_page, false).await;
    assert!(html.contains("$25.00"));
    let (_, cancel, _) = seen
        .check(
            "card declined",
            b.card(&checkout, "4000000000000002").await,
            false,
        )
        .await;
    seen.check(&cancel, b.get(&cancel).await, false).await;
    let (_, checkout, _) = seen.check("POST /pay", b.pay("70.00").await, false).await;
    let (_, back, _) = seen
        .check(
            "card ok",
            b.card(&checkout, "4242424242424242").await,
            false,
        )
        .await;
    let (_, receipt, _) = seen.check(&back, b.get(&back).await, false).await;
    seen.check(&receipt, b.get(&receipt).await, false).await;
    // A replayed webhook, an error page, sign-out.
    let event: String = sqlx::query_scalar("SELECT event_id FROM processor_events")
        .fetch_one(db.pool())
        .await
        .expect("event");
    let cs = checkout.rsplit('/').next().expect("cs");
    let body = serde_json::json!({"id": event, "type": "checkout.session.completed", "data": {"object": {"id": cs}}}).to_string();
    seen.check("webhook", post_webhook(&app, &body).await, false)
        .await;
    seen.check("/nope", b.get("/nope").await, false).await;

    // The patient makes an account and invites a guarantor; the guarantor answers the
    // invitation (once wrong), makes an account, views and pays from the household page.
    let password = "canary passphrase horse";
    let r = submit_account_form(
        &b,
        "/account/create",
        MEMBER_EMAIL,
        password,
        password,
        None,
    )
    .await;
    let (_, loc, _) = seen.check("POST /account/create", r, false).await;
    assert_eq!(loc, "/account/confirm");
    confirm_and_sign_in_with(&app, &b, MEMBER_EMAIL, password).await;
    let (_, _, home) = seen.check("/account", b.get("/account").await, true).await;
    assert!(home.contains(FIRST), "the account page greets the patient");
    let page = format!("/account/statements/{statement}");
    seen.check(&page, b.get(&page).await, true).await;
    let r = b
        .post(
            "/account/guarantors/invite",
            &[
                ("csrf", &csrf_in(&home)),
                ("patient", patient.as_str()),
                ("email", "canary-guarantor@example.org"),
            ],
        )
        .await;
    seen.check("POST /account/guarantors/invite", r, true).await;
    let g = Browser::new(&app);
    let inv = invite_link_emailed(&app, "canary-guarantor@example.org").await;
    let (_, loc, _) = seen.check(&inv, g.get(&inv).await, false).await;
    assert_eq!(loc, "/guarantor/verify");
    seen.check("/guarantor/verify", g.get("/guarantor/verify").await, false)
        .await;
    for (m, d, y, z) in [("01", "01", "1970", "10001"), ("07", "07", "1977", ZIP)] {
        let r = answer_invitation(&g, m, d, y, z).await;
        seen.check("POST /guarantor/verify", r, false).await;
    }
    seen.check("/guarantor/accept", g.get("/guarantor/accept").await, true)
        .await;
    let r = submit_account_form(
        &g,
        "/guarantor/accept",
        GUARANTOR_EMAIL,
        password,
        password,
        Some("create"),
    )
    .await;
    let (_, loc, _) = seen.check("POST /guarantor/accept", r, false).await;
    assert_eq!(loc, "/account/confirm");
    confirm_and_sign_in_with(&app, &g, GUARANTOR_EMAIL, password).await;
    let (_, _, ghome) = seen.check("/account", g.get("/account").await, true).await;
    let (_, _, gst) = seen.check(&page, g.get(&page).await, true).await;
    assert!(
        !gst.contains(DESCRIPTION),
        "an adult's service descriptions are hidden from the guarantor"
    );
    let r = pay_statements(&g, &csrf_in(&ghome), &[(&statement, "5.00")]).await;
    let (_, checkout, _) = seen.check("POST /account/pay", r, false).await;
    let (_, back, _) = seen
        .check(
            "card ok (household)",
            g.card(&checkout, "4242424242424242").await,
            false,
        )
        .await;
    let (_, receipt, _) = seen.check(&back, g.get(&back).await, false).await;
    assert!(receipt.starts_with("/account/receipt/"), "{receipt}");
    seen.check(&receipt, g.get(&receipt).await, true).await;

    let csrf = b.csrf("/account").await;
    seen.check(
        "POST /signout",
        b.post("/signout", &[("csrf", &csrf)]).await,
        false,
    )
    .await;

    // Staff: a support agent signs in and finds the canary by last name and date of birth,
    // then by account number; a security officer grants themself emergency access with a
    // reason naming the canary (free text about a patient, as staff write it).
    let agent = signed_in_staff(&app, "canary.agent@example.org", Role::SupportAgent).await;
    for (last, dob, account) in [(LAST, DOB, ""), ("", "", ACCOUNT)] {
        let csrf = agent.csrf("/staff").await;
        let r = agent
            .post(
                "/staff/search",
                &[
                    ("csrf", &csrf),
                    ("last_name", last),
                    ("dob", dob),
                    ("account", account),
                ],
            )
            .await;
        let (status, _, found) = seen.check("POST /staff/search", r, true).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(found.contains(LAST), "the agent finds the canary");
    }
    let officer = signed_in_staff(&app, "canary.officer@example.org", Role::SecurityOfficer).await;
    let csrf = officer.csrf("/staff").await;
    let reason = format!("{FIRST} {LAST} ({DOB}) called about account {ACCOUNT}");
    let r = officer
        .post(
            "/staff/break-glass",
            &[
                ("csrf", &csrf),
                ("practice", tenant.as_str()),
                ("role", "support-agent"),
                ("minutes", "30"),
                ("reason", &reason),
            ],
        )
        .await;
    let (status, _, _) = seen.check("POST /staff/break-glass", r, false).await;
    assert_eq!(status, reqwest::StatusCode::OK, "emergency access granted");
    let alerts: Vec<String> = sqlx::query_scalar("SELECT detail FROM alerts")
        .fetch_all(db.pool())
        .await
        .expect("alerts");
    assert_clean("alerts", &alerts.join("\n"));
    let csrf = agent.csrf("/staff").await;
    seen.check(
        "POST /staff/signout",
        agent.post("/staff/signout", &[("csrf", &csrf)]).await,
        false,
    )
    .await;
    assert_clean("URLs and redirects", &seen.urls.join("\n"));

    // Every message queued while it ran (the imported statement's text): no PHI in a body,
    // and what a provider is handed carries nothing of the canary but the number it goes to.
    let messages = app.outbox().await;
    assert!(messages.iter().any(|m| m.to == PHONE), "{messages:?}");
    for m in &messages {
        assert_clean(&format!("{} message body", m.template), &m.body);
        let cfg = patriotpay::messages::twilio::TwilioConfig {
            account_sid: "AC00000000000000000000000000000001".into(),
            auth: patriotpay::messages::twilio::TwilioAuth::AuthToken("t".into()),
            messaging_service_sid: "MG00000000000000000000000000000001".into(),
            base_url: "https://api.twilio.example".into(),
            status_callback: Some(format!("{}/webhooks/twilio/status", app.url)),
        };
        let req = patriotpay::messages::twilio::send_request(&cfg, &m.to, &m.body);
        assert_clean("Twilio request URL", &req.url);
        for (name, value) in req.form.iter().filter(|(n, _)| n != "To") {
            assert_clean(&format!("Twilio request field {name}"), value);
        }
    }

    // At rest.
    let dump = dump_database(&app).await;
    for n in NEEDLES {
        assert!(!holds(&dump, n), "database holds canary value {n:?}");
    }
    for e in [MEMBER_EMAIL, GUARANTOR_EMAIL] {
        assert!(!holds(&dump, e), "database holds account email {e:?}");
    }
    app.finish().await;

    // And in every log line written while all of that ran.
    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        text.contains("processor event handled"),
        "logs were captured"
    );
    // Both formats were written; a JSON request line carries its request id.
    assert!(
        text.lines().any(|l| l.starts_with('{')
            && l.contains(r#""message":"request""#)
            && l.contains(r#""request_id":""#)),
        "JSON request lines with their request id"
    );
    assert_clean("logs", &text);
    for e in [MEMBER_EMAIL, GUARANTOR_EMAIL] {
        assert!(!text.contains(e), "logs hold account email {e:?}");
    }
}
