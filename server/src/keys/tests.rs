//! Tests of the key operations (both parts: data keys and blind-index rotation).

use super::index::{build, catch_up, retire, start_rotations, switch};
use super::*;
use crate::phi::Phi;
use std::sync::Arc;

/// Every `*_ct` column either migration set creates is one `keys reencrypt` re-encrypts.
#[test]
fn every_encrypted_column_is_reencrypted() {
    let known: Vec<&str> = ENCRYPTED
        .iter()
        .flat_map(|t| t.columns.iter().map(|(c, _)| *c))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut seen = 0;
    for dialect in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(root.join(dialect)).expect("migrations") {
            let sql = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            for word in sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.len() > 3 && word.ends_with("_ct") {
                    seen += 1;
                    assert!(
                        known.contains(&word),
                        "{dialect}: {word} is encrypted but not in keys::ENCRYPTED"
                    );
                }
            }
        }
    }
    assert!(seen >= known.len(), "the migrations were read");
}

/// (table, column) of every column the migrations of `dialect` create or add: `CREATE
/// TABLE name (…)` column definitions and `ALTER TABLE name ADD [COLUMN] column`.
fn migration_columns(dialect: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut out = vec![];
    let mut files: Vec<_> = std::fs::read_dir(root.join(dialect))
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let sql = std::fs::read_to_string(&file).expect("read");
        let sql: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut tokens = vec![];
        let mut word = String::new();
        for c in sql.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if "(),;".contains(c) {
                tokens.push(c.to_string());
            }
        }
        let up = |i: usize| tokens.get(i).map(|t| t.to_ascii_uppercase());
        let mut i = 0;
        while i < tokens.len() {
            if up(i).as_deref() == Some("CREATE") {
                let mut j = i + 1;
                while matches!(up(j).as_deref(), Some("TEMP" | "TEMPORARY")) {
                    j += 1;
                }
                if up(j).as_deref() == Some("TABLE") {
                    j += 1;
                    if up(j).as_deref() == Some("IF") {
                        j += 3;
                    }
                    let table = tokens[j].clone();
                    if tokens.get(j + 1).map(String::as_str) == Some("(") {
                        let mut depth = 1;
                        let mut k = j + 2;
                        let mut starts_def = true;
                        while depth > 0 && k < tokens.len() {
                            match tokens[k].as_str() {
                                "(" => depth += 1,
                                ")" => depth -= 1,
                                "," if depth == 1 => {
                                    starts_def = true;
                                    k += 1;
                                    continue;
                                }
                                t if starts_def && depth == 1 => {
                                    let kw = t.to_ascii_uppercase();
                                    if !matches!(
                                        kw.as_str(),
                                        "PRIMARY" | "UNIQUE" | "CHECK" | "FOREIGN" | "CONSTRAINT"
                                    ) {
                                        out.push((table.clone(), t.to_owned()));
                                    }
                                }
                                _ => {}
                            }
                            starts_def = false;
                            k += 1;
                        }
                        i = k;
                        continue;
                    }
                }
            }
            if up(i).as_deref() == Some("ALTER") && up(i + 1).as_deref() == Some("TABLE") {
                let table = tokens[i + 2].clone();
                if up(i + 3).as_deref() == Some("ADD") {
                    let col = if up(i + 4).as_deref() == Some("COLUMN") {
                        i + 5
                    } else {
                        i + 4
                    };
                    out.push((table, tokens[col].clone()));
                } else if up(i + 3).as_deref() == Some("RENAME")
                    && up(i + 4).as_deref() == Some("TO")
                {
                    // A table rebuilt under a new name (SQLite's way to change a CHECK) takes
                    // the old name back: its columns are the old table's.
                    let to = tokens[i + 5].clone();
                    out.retain(|(t, _)| t != &to);
                    for (t, _) in out.iter_mut() {
                        if *t == table {
                            *t = to.clone();
                        }
                    }
                }
            }
            i += 1;
        }
    }
    out
}

/// Every blind-index column (named `*_bidx` or `*_index`) either migration set creates is
/// one `keys rotate-index` rotates, and every column it rotates exists in both.
#[test]
fn every_blind_index_column_is_rotated() {
    let known: Vec<(&str, &str)> = INDEXED
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| (t.table, *c)))
        .collect();
    for dialect in ["sqlite", "postgres"] {
        let columns = migration_columns(dialect);
        assert!(
            columns.contains(&("patients".into(), "phone_ct".into()))
                && columns.contains(&("user_grants".into(), "reason_ct".into())),
            "{dialect}: the migrations were parsed"
        );
        let indexes: Vec<&(String, String)> = columns
            .iter()
            .filter(|(_, c)| c.ends_with("_bidx") || c.ends_with("_index"))
            .collect();
        for (table, column) in &indexes {
            assert!(
                known.contains(&(table.as_str(), column.as_str())),
                "{dialect}: {table}.{column} is a blind index but not in keys::INDEXED"
            );
        }
        for (table, column) in &known {
            assert!(
                indexes.iter().any(|(t, c)| t == table && c == column),
                "{dialect}: keys::INDEXED names {table}.{column}, which no migration makes"
            );
        }
    }
    // The copy's source is itself rotated.
    for t in INDEXED {
        if let IndexSource::CopyOf { table, column } = t.source {
            assert!(known.contains(&(table, column)), "{table}.{column}");
        }
    }
}

/// Account emails and TOTP secrets (the platform's keys) move to a new key version too,
/// and still open afterwards.
#[tokio::test]
async fn accounts_are_rotated_and_reencrypted() {
    let (dir, db) = crate::db::temp_sqlite().await;
    let provider =
        crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
    let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
    let now = crate::clock::now_unix();
    let practice = crate::billing::create_tenant(&db, "Test Practice", "(555) 010-0000")
        .await
        .expect("practice");
    let (user, _) = crate::accounts::add_user(
        &db,
        &crypto,
        "officer@example.org",
        crate::access::Role::SecurityOfficer,
        Some(&practice),
        now,
    )
    .await
    .expect("user");
    crate::accounts::totp_setup(&db, &crypto, &user)
        .await
        .expect("totp");
    let platform = crate::accounts::platform();
    let rotated = rotate(&db, &crypto, None, false).await.expect("rotate");
    assert!(rotated.rotated.contains(&(platform.as_str().to_owned(), 2)));
    let moved = reencrypt(&db, &crypto, None, 10, false)
        .await
        .expect("reencrypt");
    assert_eq!(moved.values_reencrypted, 2, "the email and the TOTP secret");
    let status = status(&db).await.expect("status");
    let under = |v: u32| {
        status
            .iter()
            .find(|k| k.tenant == platform.as_str() && k.purpose == PURPOSE_FIELD && k.version == v)
            .map(|k| k.values)
    };
    assert_eq!((under(1), under(2)), (Some(0), Some(2)));
    crypto.flush_cache();
    let list = crate::accounts::list(&db, &crypto).await.expect("list");
    assert!(list.iter().any(|u| u.email == "officer@example.org"));
    crate::accounts::current_totp(&db, &crypto, &user, now)
        .await
        .expect("the TOTP secret still opens");
}

/// Every stored blind-index value, by table, column and row.
async fn index_values(db: &Db) -> Vec<(String, String, Vec<u8>)> {
    let mut out = vec![];
    for t in INDEXED {
        for c in t.columns {
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
                "SELECT CAST(id AS TEXT), {c} FROM {} WHERE {} ORDER BY id",
                t.table, t.rows
            ))
            .fetch_all(db.pool())
            .await
            .expect("values");
            for (id, v) in rows {
                out.push((format!("{}.{c}", t.table), id, v));
            }
        }
    }
    out
}

/// Interrupted after one batch, lookups still work on the old values; a second run
/// continues (no second new key), takes a row added meanwhile, switches, re-keys the
/// failure records of an account and drops one naming none, and destroys the old keys.
/// A row written under the old key around the switch is caught up.
#[tokio::test]
async fn rotate_index_resumes_and_switches() {
    let (dir, db) = crate::db::temp_sqlite().await;
    let provider =
        crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
    let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
    let practice = crate::demo::ensure(&db, &crypto).await.expect("demo");
    let now = crate::clock::now_unix();
    crate::accounts::add_user(
        &db,
        &crypto,
        "officer@example.org",
        crate::access::Role::SecurityOfficer,
        Some(&practice),
        now,
    )
    .await
    .expect("user");
    for email in ["officer@example.org", "nobody@example.org"] {
        // Claimed and never released: a recorded failure.
        let _failed = crate::accounts::claim_attempt(&db, &crypto, email, "192.0.2.1", now)
            .await
            .expect("failure recorded");
    }
    let platform = crate::accounts::platform().clone();
    let before = index_values(&db).await;
    let p1 = &crate::demo::PATIENTS[0];
    let opts = |max_batches| RotateIndexOptions {
        only: None,
        batch: 1,
        grace: Duration::ZERO,
        max_batches,
    };

    let first = rotate_index(&db, &crypto, &opts(Some(2)))
        .await
        .expect("run 1");
    assert!(first.stopped_early);
    // The platform first (its id sorts first): one account's email in one batch; then one
    // patient's three indexes, and the budget is spent.
    assert_eq!(first.values_built, 4);
    assert_eq!(index_values(&db).await, before, "nothing switched yet");
    assert_eq!(
        crate::billing::find_by_phone(&db, &crypto, &practice, p1.phone)
            .await
            .expect("lookup")
            .len(),
        1,
        "lookups use the old key while building"
    );
    assert!(
        crate::accounts::email_taken(&db, &crypto, "officer@example.org")
            .await
            .expect("lookup")
    );
    // A patient arrives mid-build: indexed under the old key, as lookups still are.
    let late = crate::billing::import_patient(
        &db,
        &crypto,
        &practice,
        &crate::billing::NewPatient {
            first_name: Phi::new("Late".into()),
            last_name: Phi::new("Arrival".into()),
            dob: Phi::new("1990-01-02".into()),
            zip: Phi::new("60601".into()),
            phone: Phi::new("+15550109999".into()),
            account_number: Phi::new("LATE-1".into()),
        },
    )
    .await
    .expect("import");

    let second = rotate_index(&db, &crypto, &opts(None))
        .await
        .expect("run 2");
    assert_eq!(
        second.resumed, 2,
        "the practice's and the platform's rotations"
    );
    assert!(!second.stopped_early);
    assert_eq!(second.retired, 2);
    assert_eq!(second.copies_rekeyed, 1, "the account's failure record");
    assert_eq!(second.copies_dropped, 1, "the failure naming no account");
    let after = index_values(&db).await;
    for (col, id, old) in &before {
        let now = after.iter().find(|(c, i, _)| c == col && i == id);
        if let Some((_, _, new)) = now {
            assert_ne!(new, old, "{col} of {id} changed");
        } else {
            assert_eq!(col, "login_failures.email_index", "only a failure row went");
        }
    }
    for tenant in [&practice, &platform] {
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM data_keys WHERE tenant_id = $1 AND purpose = $2",
        )
        .bind(tenant.as_str())
        .bind(PURPOSE_INDEX)
        .fetch_all(db.pool())
        .await
        .expect("keys");
        assert_eq!(versions, [2], "only the new key is left");
    }
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blind_index_next")
            .fetch_one(db.pool())
            .await
            .expect("side"),
        0
    );
    assert_eq!(
        crate::billing::find_by_phone(&db, &crypto, &practice, p1.phone)
            .await
            .expect("lookup")
            .len(),
        1
    );
    assert_eq!(
        crate::billing::find_by_account(&db, &crypto, &practice, "LATE-1")
            .await
            .expect("lookup"),
        std::slice::from_ref(&late)
    );
    assert!(
        crate::accounts::email_taken(&db, &crypto, "officer@example.org")
            .await
            .expect("lookup")
    );

    // A third rotation, driven step by step: a row written under the old key after the
    // switch (a request that read the version just before it) is fixed by the catch-up.
    let mut summary = RotateIndexSummary::default();
    let mut open = start_rotations(&db, &crypto, std::slice::from_ref(&practice))
        .await
        .expect("start");
    let r = &mut open[0];
    assert_eq!((r.from, r.to), (2, 3));
    assert!(!build(&db, &crypto, r, 10, &mut None, &mut summary)
        .await
        .expect("build"));
    switch(&db, &crypto, r, 10, &mut summary)
        .await
        .expect("switch");
    let stale = crypto
        .blind_index_at(&practice, 2, "phone", "+15550100001")
        .await
        .expect("old key still there until retired");
    sqlx::query("UPDATE patients SET phone_bidx = $1 WHERE id = $2")
        .bind(&stale)
        .bind(late.as_str())
        .execute(db.pool())
        .await
        .expect("stale write");
    catch_up(&db, &crypto, r, 10, &mut summary)
        .await
        .expect("catch up");
    assert_eq!(summary.caught_up, 1);
    retire(&db, r).await.expect("retire");
    assert_eq!(
        crate::billing::find_by_account(&db, &crypto, &practice, "LATE-1")
            .await
            .expect("lookup"),
        std::slice::from_ref(&late)
    );
    // The late patient's phone index was recomputed from its own phone, not the stale one.
    assert_eq!(
        crate::billing::find_by_phone(&db, &crypto, &practice, "+15550109999")
            .await
            .expect("lookup"),
        [late]
    );
}
