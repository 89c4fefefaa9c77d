//! The `audit` commands as the real binary beside a running server (both databases): `anchor`
//! seals and signs the head, `verify` prints OK and exits 0, then names the broken seq and exits
//! non-zero; `export` writes a window that `verify --file` checks offline, starting from the seal
//! before it, and an edited or shortened export is caught.

use super::{anchor_file, drop_triggers, exec, record, record_at};
use crate::common::{Backend, TestApp};

both_backends!(the_audit_commands);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn the_audit_commands(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Events of three days ago, before the export's window, then today's.
    let now = patriotpay::clock::now_unix();
    for n in 0..5 {
        record_at(app.db().pool(), "cli-old", n, Some(now - 3 * 86_400)).await;
    }
    for n in 0..10 {
        record(app.db(), "cli-today", n).await;
    }

    let anchored = app.cli(&["audit", "anchor"]);
    assert!(anchored.status.success(), "anchor: {anchored:?}");
    assert!(
        stdout(&anchored).starts_with("Anchored seq "),
        "{anchored:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(anchor_file(&app))
            .expect("anchor file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the anchor file is the owner's only");
    }
    let verified = app.cli(&["audit", "verify"]);
    let out = stdout(&verified);
    assert!(verified.status.success(), "verify: {verified:?}");
    assert!(out.starts_with("OK: "), "{out}");
    assert!(out.contains(" events sealed, "), "{out}");
    assert!(out.contains("checkpoint(s) verified"), "{out}");
    assert!(!out.contains("no anchor file"), "{out}");

    // Today's window, exported and verified offline.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let path = app.dir.path().join("export.jsonl");
    let exported = app.cli(&[
        "audit",
        "export",
        "--since",
        &today,
        "--until",
        &today,
        "--out",
        path.to_str().expect("path"),
    ]);
    assert!(exported.status.success(), "export: {exported:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'audit.export'")
            .await,
        1,
        "the export is on the trail"
    );
    let text = std::fs::read_to_string(&path).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    let start: serde_json::Value = serde_json::from_str(lines[0]).expect("start line");
    let old_last: i64 =
        sqlx::query_scalar("SELECT MAX(seq) FROM audit_events WHERE actor = 'test:cli-old'")
            .fetch_one(app.db().pool())
            .await
            .expect("old events");
    assert_eq!(
        start["start_seq"], old_last,
        "the window starts after the older events, from the seal before it"
    );
    assert!(!text.contains("test:cli-old"), "older events left out");
    assert_eq!(text.matches("test:cli-today").count(), 10);
    let offline = app.cli(&["audit", "verify", "--file", path.to_str().expect("path")]);
    assert!(offline.status.success(), "verify --file: {offline:?}");
    assert!(stdout(&offline).starts_with("OK: "), "{offline:?}");

    // An export edited, or with a line taken out, is caught at that seq.
    let seq_of = |line: &str| -> i64 {
        serde_json::from_str::<serde_json::Value>(line).expect("line")["seq"]
            .as_i64()
            .expect("seq")
    };
    let target = 3;
    let edited: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == target {
                l.replace("\"success\"", "\"denied\"")
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    assert_ne!(
        edited[target], lines[target],
        "the line had an outcome to edit"
    );
    let edited_path = app.dir.path().join("edited.jsonl");
    std::fs::write(&edited_path, edited.join("\n")).expect("write");
    let caught = app.cli(&[
        "audit",
        "verify",
        "--file",
        edited_path.to_str().expect("path"),
    ]);
    assert!(!caught.status.success(), "an edited export fails");
    assert!(
        stdout(&caught).starts_with(&format!(
            "BROKEN at seq {}: event edited",
            seq_of(lines[target])
        )),
        "{caught:?}"
    );
    let mut shortened: Vec<&str> = lines.clone();
    shortened.remove(target);
    let short_path = app.dir.path().join("short.jsonl");
    std::fs::write(&short_path, shortened.join("\n")).expect("write");
    let caught = app.cli(&[
        "audit",
        "verify",
        "--file",
        short_path.to_str().expect("path"),
    ]);
    assert!(!caught.status.success(), "a shortened export fails");
    assert!(
        stdout(&caught).starts_with(&format!(
            "BROKEN at seq {}: seal missing",
            seq_of(lines[target])
        )),
        "{caught:?}"
    );

    // The database edited behind the application's back.
    let victim: i64 =
        sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE actor = 'test:cli-today'")
            .fetch_one(app.db().pool())
            .await
            .expect("seq");
    drop_triggers(&app).await;
    exec(
        &app,
        &format!("UPDATE audit_events SET address = '198.51.100.1' WHERE seq = {victim}"),
    )
    .await;
    let broken = app.cli(&["audit", "verify"]);
    assert!(
        !broken.status.success(),
        "verify exits non-zero: {broken:?}"
    );
    assert!(
        stdout(&broken).starts_with(&format!("BROKEN at seq {victim}: event edited")),
        "{broken:?}"
    );
    app.finish().await;
}
