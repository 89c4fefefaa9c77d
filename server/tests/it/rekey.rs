//! Re-keying: blind-index rotation and encrypted break-glass reasons (issue 9).
//!
//! `keys rotate-index` runs as the real binary against the database and key file of a running
//! portal: stopped part-way (lookups still work on the old values), run again (it continues),
//! and afterwards staff search, staff and member sign-in by email and the pay-link identity
//! check all work while every stored index value has changed. Break-glass reasons are stored
//! encrypted, old plaintext ones are sealed, and `keys reencrypt` carries them to a new key.

use crate::common::{
    dump_database, location, member_sign_in, patient_account, signed_in_staff, staff_sign_in,
    Backend, Browser, TestApp, PASSWORD,
};
use patriotpay::access::Role;
use patriotpay::crypto::FieldCrypto;
use patriotpay::db::Db;
use reqwest::StatusCode;
use std::process::{Command, Output};

both_backends!(
    rotate_index_keeps_every_lookup_working,
    break_glass_reason_is_stored_encrypted,
);

/// The URL of `app`'s database, as another process opens it.
async fn database_url(app: &TestApp) -> String {
    match app.backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            app.dir.path().join("patriotpay.db").display()
        ),
        Backend::Postgres => {
            let admin = std::env::var("PATRIOTPAY_TEST_POSTGRES_URL").expect("PostgreSQL URL");
            let base = admin.rsplit_once('/').expect("url has a database").0;
            let name: String = sqlx::query_scalar("SELECT current_database()::text")
                .fetch_one(app.db().pool())
                .await
                .expect("database name");
            format!("{base}/{name}")
        }
    }
}

/// The database and keys on a fresh connection, as an operator's tool would open them (the
/// key file, not the server's cached keys), for reads after a command ran.
async fn storage(app: &TestApp) -> (Db, FieldCrypto) {
    let db = Db::connect(&database_url(app).await).await.expect("db");
    let key = patriotpay::crypto::default_master_key_path(app.dir.path());
    let provider = patriotpay::crypto::LocalKeyProvider::load_or_create(&key).expect("key file");
    let crypto = FieldCrypto::new(db.clone(), std::sync::Arc::new(provider));
    (db, crypto)
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .expect("count query")
}

/// Runs the `patriotpay` binary on `app`'s data directory (key file) and database.
async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patriotpay"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PATRIOTPAY_DATA_DIR", app.dir.path())
        .env("RUST_LOG", "warn");
    if app.backend == Backend::Postgres {
        cmd.env("DATABASE_URL", database_url(app).await);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run patriotpay");
    assert!(
        out.status.success(),
        "patriotpay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every stored blind-index value (every column `keys::INDEXED` names), by column and row.
async fn index_values(db: &Db) -> Vec<(String, String, Vec<u8>)> {
    let mut out = vec![];
    for t in patriotpay::keys::INDEXED {
        for c in t.columns {
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
                "SELECT CAST(id AS TEXT), {c} FROM {} WHERE {} ORDER BY id",
                t.table, t.rows
            ))
            .fetch_all(db.pool())
            .await
            .expect("index values");
            out.extend(
                rows.into_iter()
                    .map(|(id, v)| (format!("{}.{c}", t.table), id, v)),
            );
        }
    }
    out
}

/// Staff search by last name and date of birth finds demo patient 1.
async fn search_finds_patient_1(staff: &Browser) {
    let csrf = staff.csrf("/staff").await;
    let r = staff
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("body").contains("Avery Quintero"));
}

/// What must keep working across a rotation: staff search, member sign-in by email, the
/// pay-link identity check, and the staff sign-in's email lookup.
async fn lookups_work(app: &TestApp, staff: &Browser) {
    search_finds_patient_1(staff).await;
    let member = Browser::new(app);
    let r = member_sign_in(&member, "avery@example.org", PASSWORD).await;
    assert_eq!(location(&r), "/account", "member signed in by email");
    Browser::new(app).verified_patient1(app).await;
    let user = patriotpay::ids::UserId::from_db(app.user_id_of("agent@example.org").await);
    staff_sign_in(app, &Browser::new(app), "agent@example.org", &user).await;
}

async fn rotate_index_keeps_every_lookup_working(backend: Backend) {
    let app = TestApp::start(backend).await;
    let staff = signed_in_staff(&app, "agent@example.org", Role::SupportAgent).await;
    patient_account(&app, 1, "avery@example.org").await;
    // Failed sign-ins leave records keyed by the email index: one for an account, one for an
    // address no account has.
    for email in ["avery@example.org", "nobody@example.org"] {
        let r = member_sign_in(&Browser::new(&app), email, "wrong password!").await;
        assert_eq!(location(&r), "/signin");
    }
    let (db, _) = storage(&app).await;
    let before = index_values(&db).await;
    assert!(
        before
            .iter()
            .filter(|(c, _, _)| c == "login_failures.email_index")
            .count()
            >= 2
    );
    lookups_work(&app, &staff).await;

    // Stopped after one batch: nothing switched, every lookup still works on the old values.
    let first = cli(
        &app,
        &[
            "keys",
            "rotate-index",
            "--batch",
            "1",
            "--max-batches",
            "1",
            "--grace-secs",
            "0",
        ],
    )
    .await;
    let (db, _) = storage(&app).await;
    let out = stdout(&first);
    assert!(out.contains("Stopped after 1 batch(es)"), "{out}");
    assert!(out.contains(" build: "), "plain progress counts: {out}");
    let building = count(
        &db,
        "SELECT COUNT(*) FROM blind_index_rotations WHERE state = 'building'",
    )
    .await;
    assert_eq!(building, 2, "the practice's and the platform's rotations");
    let built = count(&db, "SELECT COUNT(*) FROM blind_index_next").await;
    assert!(built > 0);
    let during = index_values(&db).await;
    let unchanged = |a: &[(String, String, Vec<u8>)], b: &[(String, String, Vec<u8>)]| {
        // Sign-ins above may add failure records; the values there were stay as they were.
        a.iter().all(|x| b.contains(x))
    };
    assert!(unchanged(&before, &during), "nothing switched yet");
    lookups_work(&app, &staff).await;

    // Run again: it continues the same rotations (no third key), switches and retires.
    let second = cli(&app, &["keys", "rotate-index", "--grace-secs", "0"]).await;
    let (db, _) = storage(&app).await;
    let out = stdout(&second);
    assert!(
        out.contains("Rotated 2 blind-index key(s) (continuing an earlier run)"),
        "{out}"
    );
    assert!(out.contains("blind-index key version 1 -> 2"), "{out}");
    let after = index_values(&db).await;
    for (col, id, old) in &before {
        match after.iter().find(|(c, i, _)| c == col && i == id) {
            Some((_, _, new)) => assert_ne!(new, old, "{col} of row {id} changed"),
            None => assert_eq!(
                col, "login_failures.email_index",
                "only a failure record naming no account is gone"
            ),
        }
    }
    assert!(
        after
            .iter()
            .any(|(c, id, _)| c == "login_failures.email_index"
                && before.iter().any(|(_, i, _)| i == id)),
        "the account's failure record was re-keyed, not dropped"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM data_keys WHERE purpose = 'blind-index' AND version = 1"
        )
        .await,
        0,
        "the old keys are destroyed"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM data_keys WHERE purpose = 'blind-index' AND version = 2"
        )
        .await,
        2
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM blind_index_next").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM blind_index_rotations WHERE state = 'retired'"
        )
        .await,
        2
    );
    lookups_work(&app, &staff).await;

    // On the audit trail, each run's start and end, the end with its counts.
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, resource FROM audit_events
         WHERE actor = 'cli' AND action LIKE 'keys.rotate-index.%' ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .expect("audit");
    let names: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "keys.rotate-index.start",
            "keys.rotate-index.end",
            "keys.rotate-index.start",
            "keys.rotate-index.end"
        ]
    );
    let end = events[3].1.as_deref().unwrap_or_default();
    assert!(
        end.contains("rotations=2 resumed=2") && end.contains("retired=2"),
        "{end}"
    );
    assert!(events[1]
        .1
        .as_deref()
        .is_some_and(|r| r.contains("stopped-early")));
    app.finish().await;
}

const REASON: &str = "Zanzibar Canaryfield called about her bill; admin unreachable";

async fn break_glass_reason_is_stored_encrypted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let officer = signed_in_staff(&app, "officer@example.org", Role::SecurityOfficer).await;
    let csrf = officer.csrf("/staff").await;
    let r = officer
        .post(
            "/staff/break-glass",
            &[
                ("csrf", &csrf),
                ("practice", app.tenant.as_str()),
                ("role", "practice-admin"),
                ("minutes", "30"),
                ("reason", REASON),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("Emergency access granted"));
    // The row holds a ciphertext bound to it, and no plaintext; nor does the whole database.
    let (db, crypto) = storage(&app).await;
    let (id, plain, sealed): (i64, Option<String>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT id, reason, reason_ct FROM user_grants WHERE expires_at IS NOT NULL",
    )
    .fetch_one(db.pool())
    .await
    .expect("grant");
    assert_eq!(plain, None);
    let sealed = sealed.expect("reason_ct");
    assert!(!sealed.windows(8).any(|w| w == b"Canaryfi"));
    let row = id.to_string();
    let aad = patriotpay::accounts::reason_aad(&app.tenant, &row);
    assert_eq!(
        crypto
            .decrypt_str(aad, &sealed)
            .await
            .expect("opens")
            .expose(),
        REASON
    );
    let moved = (id + 1).to_string();
    assert!(
        crypto
            .decrypt_str(
                patriotpay::accounts::reason_aad(&app.tenant, &moved),
                &sealed
            )
            .await
            .is_err(),
        "bound to its row"
    );

    // A reason stored in the clear before this change is sealed when the database is opened
    // (any command), and its plaintext emptied.
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, expires_at, reason, granted_by, created_at)
         SELECT user_id, 'practice-admin', tenant_id, 1, $1, user_id, 1 FROM user_grants WHERE id = $2",
    )
    .bind("Older reason naming Yolanda Legacyperson, from before")
    .bind(id)
    .execute(db.pool())
    .await
    .expect("legacy row");
    cli(&app, &["keys", "status"]).await;
    let (db, crypto) = storage(&app).await;
    let legacy: Vec<(i64, Option<String>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, reason, reason_ct FROM user_grants WHERE expires_at = 1")
            .fetch_all(db.pool())
            .await
            .expect("legacy");
    let [(legacy_id, None, Some(legacy_ct))] = legacy.as_slice() else {
        panic!("sealed: {legacy:?}");
    };
    let legacy_row = legacy_id.to_string();
    assert_eq!(
        crypto
            .decrypt_str(
                patriotpay::accounts::reason_aad(&app.tenant, &legacy_row),
                legacy_ct
            )
            .await
            .expect("opens")
            .expose(),
        "Older reason naming Yolanda Legacyperson, from before"
    );

    // Reasons are in the re-encryption: after a key rotation they move to the new version.
    cli(&app, &["keys", "rotate", "--tenant", app.tenant.as_str()]).await;
    cli(&app, &["keys", "reencrypt"]).await;
    let (db, crypto) = storage(&app).await;
    let versions: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT reason_ct FROM user_grants WHERE reason_ct IS NOT NULL")
            .fetch_all(db.pool())
            .await
            .expect("reasons");
    assert_eq!(versions.len(), 2);
    for ct in &versions {
        assert_eq!(patriotpay::crypto::ciphertext_version(ct), Some(2));
    }
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT reason_ct FROM user_grants WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .expect("grant");
    assert_eq!(
        crypto
            .decrypt_str(aad, &sealed)
            .await
            .expect("opens")
            .expose(),
        REASON
    );
    // Neither reason is anywhere in the database in the clear. Checked last: on SQLite the
    // dump's TRUNCATE checkpoint, run through the server's pool before a command wrote, was
    // seen to leave this process reading the database as it was before that command.
    let dump = dump_database(&app).await;
    assert!(!dump.windows(11).any(|w| w == b"Canaryfield"));
    assert!(!dump.windows(13).any(|w| w == b"Legacyperson,"));
    app.finish().await;
}
