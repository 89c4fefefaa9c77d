//! The operator's `users` commands, run as the real binary on a fresh SQLite data directory:
//! add prints a set-up link, list shows the account (its email decrypted), disable is refused the
//! second time, and the email is nowhere in the database files.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patriotpay"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PATRIOTPAY_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run patriotpay")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn users_add_list_disable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let email = "ops.lead@example.org";

    let added = run(
        dir.path(),
        &[
            "users",
            "add",
            "--email",
            email,
            "--role",
            "platform-admin",
            "--name",
            "Ops Lead",
        ],
    );
    assert!(added.status.success(), "add: {added:?}");
    let out = stdout(&added);
    assert!(out.contains(email), "{out}");
    assert!(
        out.contains("/staff/enrol/") && out.contains("PATRIOTPAY_EMAIL_PROVIDER=outbox"),
        "no email provider: the link is printed, and why: {out}"
    );

    // The same address in another case is the same account.
    let again = run(
        dir.path(),
        &[
            "users",
            "add",
            "--email",
            "Ops.Lead@Example.org",
            "--role",
            "auditor",
            "--practice",
            "ten_00000000000000000000000000000000",
            "--name",
            "Ops Lead",
        ],
    );
    assert!(!again.status.success(), "a second account with one email");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("an account with that email exists"),
        "{again:?}"
    );

    let listed = stdout(&run(dir.path(), &["users", "list"]));
    let line = listed
        .lines()
        .find(|l| l.contains(email))
        .unwrap_or_else(|| panic!("listed: {listed}"));
    assert!(
        line.contains("invited") && line.contains("platform-admin"),
        "{line}"
    );

    let disabled = run(
        dir.path(),
        &["users", "disable", "--email", "OPS.LEAD@example.org"],
    );
    assert!(disabled.status.success(), "disable: {disabled:?}");
    let listed = stdout(&run(dir.path(), &["users", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(email) && l.contains("disabled")),
        "{listed}"
    );
    let twice = run(dir.path(), &["users", "disable", "--email", email]);
    assert!(!twice.status.success(), "already disabled");

    // Found by its blind index, shown from its ciphertext: never stored in the clear.
    let db = crate::common::sqlite_files(dir.path());
    let needle = email.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the email is not in the database files"
    );
}

/// `users list` opens every account's email and `keys reencrypt` every value: both leave audit
/// events (the re-encryption's end with its counts).
#[tokio::test]
async fn operator_reads_are_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let added = run(
        dir.path(),
        &[
            "users",
            "add",
            "--email",
            "audited@example.org",
            "--role",
            "platform-admin",
            "--name",
            "Audited Admin",
        ],
    );
    assert!(added.status.success(), "add: {added:?}");
    assert!(run(dir.path(), &["users", "list"]).status.success());
    assert!(run(dir.path(), &["keys", "reencrypt"]).status.success());
    let db = patriotpay::db::Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("patriotpay.db").display()
    ))
    .await
    .expect("db");
    let actions: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, resource FROM audit_events WHERE actor = 'cli' ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .expect("events");
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        ["users.list", "keys.reencrypt.start", "keys.reencrypt.end"]
    );
    assert!(
        actions[2]
            .1
            .as_deref()
            .is_some_and(|r| r.starts_with("rows=")),
        "{actions:?}"
    );
}

/// `serve` with the sandbox card processor where patients could reach it (a public `https://`
/// URL, or listening beyond loopback) refuses to start and says how to configure Stripe; the
/// exact acknowledgement lets a reachable demo run. Nothing is bound when refused.
#[test]
fn serve_refuses_the_sandbox_where_patients_could_reach_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |extra: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_patriotpay"));
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PATRIOTPAY_DATA_DIR", dir.path())
            .env("PATRIOTPAY_SANDBOX_ADDR", "127.0.0.1:0")
            .env(
                "PATRIOTPAY_LOCAL_KEY_IN_PRODUCTION",
                patriotpay::config::LOCAL_KEY_ACK,
            )
            .env("RUST_LOG", "warn");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().expect("run patriotpay")
    };
    for extra in [
        [
            ("PATRIOTPAY_PUBLIC_URL", "https://pay.example.org"),
            ("PATRIOTPAY_ADDR", "127.0.0.1:0"),
        ],
        [
            ("PATRIOTPAY_PUBLIC_URL", "http://127.0.0.1:1"),
            ("PATRIOTPAY_ADDR", "0.0.0.0:0"),
        ],
    ] {
        let out = serve(&extra);
        assert!(!out.status.success(), "{extra:?}: refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("sandbox") && err.contains("PATRIOTPAY_PROCESSOR=stripe"),
            "{extra:?}: says why and what to do: {err}"
        );
        assert!(
            err.contains(patriotpay::config::SANDBOX_ACK),
            "names the acknowledgement: {err}"
        );
    }
}

/// `practices list` shows each practice and the ways it takes payment; `practices bank-debits`
/// switches bank debits and refuses an unknown practice or a state other than on/off.
#[test]
fn practices_list_and_bank_debits() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo practice (it takes bank debits).
    assert!(run(dir.path(), &["demo-link", "--patient", "1"])
        .status
        .success());
    let listed = stdout(&run(dir.path(), &["practices", "list"]));
    let line = listed
        .lines()
        .find(|l| l.contains("Riverside Family Medicine"))
        .unwrap_or_default()
        .to_owned();
    assert!(line.ends_with("(cards, bank debits)"), "{listed}");
    let id = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(id.starts_with("ten_"), "{line}");

    let off = run(
        dir.path(),
        &["practices", "bank-debits", "--practice", &id, "off"],
    );
    assert!(off.status.success(), "{off:?}");
    assert!(stdout(&off).contains("no longer offered"), "{off:?}");
    let listed = stdout(&run(dir.path(), &["practices", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("(cards)")),
        "{listed}"
    );

    let unknown = run(
        dir.path(),
        &[
            "practices",
            "bank-debits",
            "--practice",
            "ten_00000000000000000000000000000000",
            "on",
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no practice"),
        "{unknown:?}"
    );
    let bad = run(
        dir.path(),
        &["practices", "bank-debits", "--practice", &id, "maybe"],
    );
    assert!(!bad.status.success(), "only on or off");
}

/// Staff display names (what patients see on "who viewed my record"): `users add` wants one,
/// refuses an email as one; `users rename` (by email or id) sets it, is audited, and refuses an
/// account that does not exist.
#[tokio::test]
async fn users_add_needs_a_name_and_rename_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let add = |name: Option<&str>| {
        let mut args = vec![
            "users",
            "add",
            "--email",
            "named@example.org",
            "--role",
            "platform-admin",
        ];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        run(dir.path(), &args)
    };
    assert!(!add(None).status.success(), "a name is required");
    assert!(
        !add(Some("named@example.org")).status.success(),
        "an email is no name"
    );
    assert!(add(Some("  Dana   Ruiz ")).status.success());
    let renamed = run(
        dir.path(),
        &[
            "users",
            "rename",
            "--email",
            "named@example.org",
            "--name",
            "Dana Ruiz-Ortiz",
        ],
    );
    assert!(renamed.status.success(), "rename: {renamed:?}");
    let nobody = run(
        dir.path(),
        &["users", "rename", "--user", "usr_nobody", "--name", "X"],
    );
    assert!(!nobody.status.success(), "no such account");
    let db = patriotpay::db::Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("patriotpay.db").display()
    ))
    .await
    .expect("db");
    let (id, name): (String, Option<String>) =
        sqlx::query_as("SELECT id, display_name FROM users WHERE display_name IS NOT NULL")
            .fetch_one(db.pool())
            .await
            .expect("user");
    assert_eq!(name.as_deref(), Some("Dana Ruiz-Ortiz"));
    // The set-up link also went to the outbox as an email to the new account.
    let setup: Vec<(String, String)> =
        sqlx::query_as("SELECT channel, state FROM outbox WHERE template = 'staff-setup'")
            .fetch_all(db.pool())
            .await
            .expect("outbox");
    assert_eq!(setup, [("email".to_owned(), "queued".to_owned())]);
    let by_id = run(
        dir.path(),
        &["users", "rename", "--user", &id, "--name", "Dana Ruiz"],
    );
    assert!(by_id.status.success(), "rename by id: {by_id:?}");
    let audited: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT resource FROM audit_events WHERE actor = 'cli' AND action = 'users.rename' ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .expect("events");
    assert_eq!(audited, [Some(id.clone()), Some(id)]);
}
