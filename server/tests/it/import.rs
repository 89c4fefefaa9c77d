//! Statement import from files (issue 12), through the real `patriotpay import` command: both
//! sample files (the same statements: the second import changes nothing), a patient from them
//! pays; a changed statement is updated, keeps its payment and is texted with a fresh link, a
//! new total below what was paid is refused; a bad record refuses the file unless --partial; a dry run writes nothing; a file
//! for another practice is refused; a statement id sent twice, even batches apart, is refused;
//! every run is recorded and audited. Both databases.

use crate::common::{location, second_practice, Backend, Browser, TestApp};

both_backends!(
    both_sample_files_import_the_same_statements_and_a_patient_pays,
    a_changed_statement_is_updated_and_keeps_its_payment,
    a_bad_record_refuses_the_file_unless_partial_and_a_dry_run_writes_nothing,
    a_file_for_another_practice_is_refused,
    imported_patients_are_still_found_after_the_index_key_rotates,
    a_statement_id_repeated_far_apart_is_refused,
);

fn sample(name: &str) -> String {
    format!("{}/../samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `patriotpay import` on `path`; (exit code, stdout, stderr).
fn import(app: &TestApp, path: &str, practice: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", path, "--practice", practice];
    args.extend_from_slice(extra);
    let o = app.cli(&args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A CSV file with `text` in it, kept while the returned handle lives.
fn csv_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.db().pool())
        .await
        .expect("count")
}

async fn imported(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT COUNT(*) FROM statements WHERE external_id IS NOT NULL",
    )
    .await
}

async fn statement_id(app: &TestApp, external: &str) -> patriotpay::ids::StatementId {
    let id: String = sqlx::query_scalar("SELECT id FROM statements WHERE external_id = $1")
        .bind(external)
        .fetch_one(app.db().pool())
        .await
        .expect("statement");
    patriotpay::ids::StatementId::from_db(id)
}

async fn balance(app: &TestApp, external: &str) -> i64 {
    let id = statement_id(app, external).await;
    patriotpay::billing::balance(app.db().pool(), &id)
        .await
        .expect("balance")
        .cents()
}

/// Opens a fresh link to an imported statement as its patient (date of birth) and pays `amount`.
async fn pay(app: &TestApp, external: &str, (m, d, y): (&str, &str, &str), amount: &str) {
    let id = statement_id(app, external).await;
    let now = app.state().clock.now();
    let (_, token) = patriotpay::links::create(app.db(), &app.tenant, &id, now + 3600)
        .await
        .expect("link");
    let b = Browser::new(app);
    b.open_link(&format!("{}/p/{token}", app.url)).await;
    assert_eq!(location(&b.submit_dob(m, d, y).await), "/summary");
    let checkout = location(&b.pay(amount).await);
    assert!(checkout.starts_with(&app.sandbox_url), "{checkout}");
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
}

async fn both_sample_files_import_the_same_statements_and_a_patient_pays(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (code, out, err) = import(&app, &sample("statements.csv"), &practice, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("4 statement(s): 4 created, 0 updated, 0 unchanged, 0 rejected"),
        "{out}"
    );
    assert_eq!(imported(&app).await, 4);
    // Each new statement got its pay link; the patients are encrypted like every other.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM pay_links l JOIN statements s ON s.id = l.statement_id
             WHERE s.external_id IS NOT NULL"
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM patients WHERE external_bidx IS NOT NULL AND address_ct IS NOT NULL"
        )
        .await,
        3
    );
    assert_eq!(balance(&app, "S-2026-0001").await, 11_200);
    // The JSON sample holds the same statements: nothing changes.
    let (code, out, _) = import(&app, &sample("statements.json"), &practice, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 created, 0 updated, 4 unchanged, 0 rejected"),
        "{out}"
    );
    // The staff search finds an imported patient by phone.
    let found = patriotpay::billing::find_by_phone(
        app.db(),
        &app.state().crypto,
        &app.tenant,
        "+13125550102",
    )
    .await
    .expect("search");
    assert_eq!(found.len(), 1);
    pay(&app, "S-2026-0003", ("11", "02", "1991"), "20.00").await;
    assert_eq!(balance(&app, "S-2026-0003").await, 0);
    // Both runs are in the history, and audited.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM imports").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'statements.import' AND outcome = 'success'"
        )
        .await,
        2
    );
    app.finish().await;
}

async fn a_changed_statement_is_updated_and_keeps_its_payment(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    assert_eq!(import(&app, &sample("statements.csv"), &practice, &[]).0, 0);
    pay(&app, "S-2026-0002", ("06", "21", "2012"), "30.00").await;
    assert_eq!(balance(&app, "S-2026-0002").await, 7_000);
    // The practice re-sends S-2026-0002 with one line $10.00 higher.
    let text = std::fs::read_to_string(sample("statements.csv")).expect("sample");
    let changed: String = text
        .lines()
        .map(|l| {
            if l.contains("S-2026-0002") {
                l.replace(",100.00,", ",110.00,")
                    .replace("40.00,25.00,0.00,15.00", "50.00,25.00,0.00,25.00")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let f = csv_file(&changed);
    let (code, out, err) = import(&app, &f.path().to_string_lossy(), &practice, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("0 created, 1 updated, 3 unchanged, 0 rejected"),
        "{out}"
    );
    assert_eq!(
        balance(&app, "S-2026-0002").await,
        8_000,
        "$110.00 owed, $30.00 paid"
    );
    // The changed statement is texted again with a fresh link; its old links stop working.
    let texts = app.outbox().await;
    let to_patient: Vec<_> = texts.iter().filter(|t| t.to == "+13125550102").collect();
    assert_eq!(to_patient.len(), 2, "{texts:?}");
    assert_ne!(to_patient[0].link, to_patient[1].link);
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE s.external_id = 'S-2026-0002' AND l.revoked_at IS NULL",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("links");
    assert_eq!(live, 1, "only the newest link works");
    // A new total below the $30.00 paid is refused, and nothing changes.
    let credit = text
        .lines()
        .filter(|l| l.starts_with("practice") || l.contains("S-2026-0002"))
        .take(2)
        .map(|l| {
            l.replace(",100.00,", ",20.00,")
                .replace("90.00,0.00,15.00,75.00", "35.00,0.00,15.00,20.00")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let f = csv_file(&credit);
    let (code, out, _) = import(&app, &f.path().to_string_lossy(), &practice, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("S-2026-0002") && out.contains("credit balance"),
        "{out}"
    );
    assert_eq!(balance(&app, "S-2026-0002").await, 8_000, "nothing changed");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'import-credit-balance'"
        )
        .await,
        1,
        "staff are alerted to the credit balance"
    );
    app.finish().await;
}

async fn a_bad_record_refuses_the_file_unless_partial_and_a_dry_run_writes_nothing(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let text = std::fs::read_to_string(sample("statements.csv")).expect("sample");
    // Statement S-2026-0003 gets a due date before its statement date.
    let bad = text.replace("2026-11-08,2026-12-08", "2026-11-08,2026-10-08");
    let f = csv_file(&bad);
    let path = f.path().to_string_lossy().into_owned();

    let (code, out, _) = import(&app, &path, &practice, &["--dry-run"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("3 created, 0 updated, 0 unchanged, 1 rejected (would be"),
        "{out}"
    );
    assert_eq!(imported(&app).await, 0, "a dry run writes nothing");

    let (code, out, err) = import(&app, &path, &practice, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("S-2026-0003") && out.contains("due_date"),
        "{out}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(imported(&app).await, 0, "all or nothing");

    let (code, out, _) = import(&app, &path, &practice, &["--partial"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(imported(&app).await, 3, "the good statements are taken");
    // A clean dry run after that: exit 0, nothing new.
    let (code, out, _) = import(&app, &sample("statements.csv"), &practice, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 created, 0 updated, 3 unchanged"), "{out}");
    assert_eq!(imported(&app).await, 3);
    // A file that is not CSV at all: exit 1, nothing written.
    let junk = csv_file("not,a,statement,file\n1,2,3,4\n");
    let (code, _, err) = import(&app, &junk.path().to_string_lossy(), &practice, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("malformed file"), "{err}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM imports").await, 5);
    app.finish().await;
}

async fn a_file_for_another_practice_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(
        import(&app, &sample("statements.csv"), app.tenant.as_str(), &[]).0,
        0
    );
    // The second practice has no billing id yet, but "riverside-fm" is the first one's.
    let (other, _, _) = second_practice(&app).await;
    let (code, _, err) = import(&app, &sample("statements.json"), other.as_str(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("belongs to another practice"), "{err}");
    let theirs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM statements WHERE tenant_id = $1 AND external_id IS NOT NULL",
    )
    .bind(other.as_str())
    .fetch_one(app.db().pool())
    .await
    .expect("count");
    assert_eq!(theirs, 0);
    app.finish().await;
}

async fn imported_patients_are_still_found_after_the_index_key_rotates(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    assert_eq!(import(&app, &sample("statements.csv"), &practice, &[]).0, 0);
    let patients = count(&app, "SELECT COUNT(*) FROM patients").await;
    let o = app.cli(&["keys", "rotate-index", "--grace-secs", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same file again: every patient and statement is found (the content MACs were made
    // under the old key, so each statement is written again once, not duplicated).
    let (code, out, err) = import(&app, &sample("statements.csv"), &practice, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 created"), "{out}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM patients").await, patients);
    assert_eq!(imported(&app).await, 4);
    let (code, out, _) = import(&app, &sample("statements.csv"), &practice, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("4 unchanged"),
        "and then it is unchanged: {out}"
    );
    app.finish().await;
}

/// Writes are batched (256 statements); a statement id seen in an earlier batch of the same file
/// is still the same id sent twice.
async fn a_statement_id_repeated_far_apart_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let text = std::fs::read_to_string(sample("statements.csv")).expect("sample");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    // The first statement's first line, as a one-line statement.
    let first_row = lines.next().expect("row").replace(",112.00,", ",50.00,");
    let mut file = format!("{header}\n{first_row}\n");
    // 300 one-line statements of the same patient, then the first statement's line again.
    for n in 0..300 {
        file.push_str(&first_row.replace("S-2026-0001", &format!("S-FILL-{n}")));
        file.push('\n');
    }
    file.push_str(&first_row);
    file.push('\n');
    let f = csv_file(&file);
    let path = f.path().to_string_lossy().into_owned();
    let (code, out, _) = import(&app, &path, &practice, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("appears twice"), "{out}");
    assert_eq!(imported(&app).await, 0, "all or nothing");
    let (code, out, _) = import(&app, &path, &practice, &["--partial"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("301 created, 0 updated, 0 unchanged, 1 rejected"),
        "{out}"
    );
    assert_eq!(imported(&app).await, 301);
    app.finish().await;
}
