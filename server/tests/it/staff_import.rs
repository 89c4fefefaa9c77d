//! The staff import page (issue 12) through a practice admin's browser: the sample file's dry run
//! writes nothing and keeps the file only encrypted, confirming imports it, the history lists
//! both runs (the view audited); a bad file's rejections, its CSV report, all-or-nothing and
//! "take the good ones"; a support agent, another practice's admin and a missing, wrong or
//! cross-site token refused with nothing imported; a file over 8 MB answered with a page that
//! says what to do instead. Both databases.

use crate::common::{csrf_in, location, second_practice, text, Backend, Browser, TestApp};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    a_practice_admin_checks_then_imports_the_sample_and_sees_the_history,
    a_bad_file_shows_its_rejections_and_the_report_and_confirm_writes_nothing,
    a_support_agent_is_refused,
    another_practices_admin_cannot_import_here,
    a_missing_wrong_or_cross_site_token_is_refused,
    a_file_over_the_limit_gets_a_page_saying_what_to_do,
);

const BOUNDARY: &str = "----patriotpay-test-boundary-7d1c";

fn sample() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../samples/statements.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("sample")
}

/// The sample with statement S-2026-0003's due date before its statement date.
fn bad_sample() -> Vec<u8> {
    String::from_utf8(sample())
        .expect("utf-8")
        .replace("2026-11-08,2026-12-08", "2026-11-08,2026-10-08")
        .into_bytes()
}

/// A multipart body as a browser sends the upload form: the fields, then the file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = vec![];
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_multipart(b: &Browser, body: Vec<u8>, origin: Option<&str>) -> reqwest::Response {
    let mut req = b
        .client
        .post(format!("{}/staff/import", b.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("upload")
}

/// Uploads `bytes` as `name` for `practice` with the page's token.
async fn upload(b: &Browser, practice: &str, name: &str, bytes: &[u8]) -> reqwest::Response {
    let csrf = b.csrf("/staff/import").await;
    post_multipart(
        b,
        multipart(
            &[("csrf", &csrf), ("practice", practice)],
            Some((name, bytes)),
        ),
        None,
    )
    .await
}

async fn confirm(b: &Browser, partial: bool) -> reqwest::Response {
    let csrf = b.csrf("/staff/import").await;
    let mut form = vec![("csrf", csrf.as_str())];
    if partial {
        form.push(("partial", "on"));
    }
    b.post("/staff/import/confirm", &form).await
}

async fn imported(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM statements WHERE external_id IS NOT NULL")
        .await
}

/// The files kept for confirmation.
fn kept(app: &TestApp) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(app.state().data_dir.join("uploads")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    }
}

async fn a_practice_admin_checks_then_imports_the_sample_and_sees_the_history(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (admin, _) = app
        .signed_in_staff("import.admin@example.org", Role::PracticeAdmin)
        .await;
    assert!(admin
        .page("/staff")
        .await
        .contains("href=\"/staff/import\""));

    let r = upload(&admin, &practice, "statements.csv", &sample()).await;
    assert_eq!(location(&r), format!("/staff/import?practice={practice}"));
    let page = text(&admin.page(&location(&r)).await);
    assert!(
        page.contains("4 to create, 0 to update, 0 unchanged, 0 rejected."),
        "{page}"
    );
    assert!(page.contains("Confirm import"), "{page}");
    assert_eq!(imported(&app).await, 0, "a dry run writes nothing");
    // The file waits encrypted: none of its names, dates or phone numbers in clear.
    let files = kept(&app);
    assert_eq!(files.len(), 1);
    let sealed = std::fs::read(&files[0]).expect("kept file");
    for clear in ["Whitlock", "1991-11-02", "S-2026-0003", "riverside-fm"] {
        assert!(
            !sealed.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} in the kept file"
        );
    }

    let r = confirm(&admin, false).await;
    assert_eq!(location(&r), format!("/staff/import?practice={practice}"));
    let page = admin.page(&location(&r)).await;
    let words = text(&page);
    assert!(words.contains("Import finished"), "{words}");
    assert!(
        words.contains("4 created, 0 updated, 0 unchanged, 0 rejected."),
        "{words}"
    );
    assert_eq!(imported(&app).await, 4);
    assert!(kept(&app).is_empty(), "the file is deleted once imported");

    // The history: both runs, by this admin, from the staff page; the view audited.
    let history = page
        .split("class=\"import-history\"")
        .nth(1)
        .expect("history table");
    assert_eq!(history.matches("<tr>").count(), 3, "header and two runs");
    let history = text(history);
    assert!(
        history.contains("Dry run") && history.contains("Import"),
        "{history}"
    );
    assert_eq!(history.matches("Staff page").count(), 2, "{history}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM imports WHERE source = 'staff' AND dry_run = 1 AND created = 4"
        )
        .await,
        1
    );
    assert!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'statements.imports.view' AND outcome = 'success'"
        )
        .await
            >= 2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'statements.import'")
            .await,
        1
    );

    // A file left over an hour (never confirmed) is swept; a newer one stays.
    let dir = app.state().data_dir.join("uploads");
    let stale = dir.join(format!("{}.enc", "0".repeat(32)));
    let fresh = dir.join(format!("{}.enc", "1".repeat(32)));
    for f in [&stale, &fresh] {
        std::fs::write(f, b"sealed").expect("write");
    }
    let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3601);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(hours_ago))
        .expect("age the file");
    admin.page("/staff/import").await;
    assert!(!stale.exists(), "the stale upload is swept");
    assert!(fresh.exists(), "a recent upload stays");
    std::fs::remove_file(&fresh).expect("remove");

    // Confirming again imports nothing more: the file is gone.
    let r = confirm(&admin, false).await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(words.contains("no longer kept"), "{words}");
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 2);
    app.finish().await;
}

async fn a_bad_file_shows_its_rejections_and_the_report_and_confirm_writes_nothing(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (admin, _) = app
        .signed_in_staff("import.bad@example.org", Role::PracticeAdmin)
        .await;
    let r = upload(&admin, &practice, "bad.CSV", &bad_sample()).await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(
        words.contains("3 to create, 0 to update, 0 unchanged, 1 rejected."),
        "{words}"
    );
    assert!(
        words.contains("statement S-2026-0003 rejected:") && words.contains("due_date"),
        "{words}"
    );

    // The report: one row per problem, no value from the file.
    let r = admin.get("/staff/import/report").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv")));
    let csv = r.text().await.expect("report");
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("statement,place,field,reason"));
    let row = rows.next().expect("a rejection");
    assert!(
        row.starts_with(r#""S-2026-0003","line "#) && row.contains(r#","due_date","#),
        "{row}"
    );
    assert_eq!(rows.next(), None);
    for clear in ["Whitlock", "Jordan", "1991-11-02", "2026-10-08"] {
        assert!(!csv.contains(clear), "{clear} in the report");
    }

    // All or nothing: one refusal imports nothing.
    let r = confirm(&admin, false).await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(words.contains("Nothing was imported"), "{words}");
    assert!(
        words.contains("3 created, 0 updated, 0 unchanged, 1 rejected."),
        "{words}"
    );
    assert_eq!(imported(&app).await, 0);

    // "Take the good ones".
    upload(&admin, &practice, "bad.csv", &bad_sample()).await;
    let r = confirm(&admin, true).await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(words.contains("Import finished"), "{words}");
    assert_eq!(imported(&app).await, 3);

    // A file whose name says neither format is refused before anything is read.
    let r = upload(&admin, &practice, "statements.txt", &sample()).await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(words.contains("ends in .csv or .json"), "{words}");
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 4);
    app.finish().await;
}

async fn a_support_agent_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (agent, _) = app
        .signed_in_staff("import.agent@example.org", Role::SupportAgent)
        .await;
    assert_eq!(
        agent.get("/staff/import").await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(!agent.page("/staff").await.contains("/staff/import"));
    let csrf = csrf_in(&agent.page("/staff").await);
    let r = post_multipart(
        &agent,
        multipart(
            &[("csrf", &csrf), ("practice", &practice)],
            Some(("statements.csv", &sample())),
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = agent
        .post("/staff/import/confirm", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        agent.get("/staff/import/report").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(imported(&app).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);
    app.finish().await;
}

async fn another_practices_admin_cannot_import_here(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (other, _, _) = second_practice(&app).await;
    let (admin, _) = app
        .signed_in_staff_of("import.other@example.org", Role::PracticeAdmin, &other)
        .await;
    // Their own practice's page works; this one's is refused, and the refusal audited.
    let own = admin.page("/staff/import").await;
    assert!(
        own.contains(other.as_str()),
        "the page is for their practice"
    );
    let r = admin
        .get(&format!("/staff/import?practice={practice}"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload(&admin, &practice, "statements.csv", &sample()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(imported(&app).await, 0);
    assert!(kept(&app).is_empty());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'statements.import.upload'
             AND outcome = 'denied' AND tenant_id = '{practice}'"
        ))
        .await,
        1
    );
    // Into their own practice, a file that cannot be read (a bad header) is refused whole: no
    // confirmation offered, nothing kept.
    let r = upload(
        &admin,
        other.as_str(),
        "broken.csv",
        b"not,a,statement,header\n1,2,3,4\n",
    )
    .await;
    let words = text(&admin.page(&location(&r)).await);
    assert!(words.contains("The file cannot be imported"), "{words}");
    assert!(!words.contains("Confirm import"), "{words}");
    assert!(kept(&app).is_empty());
    assert_eq!(imported(&app).await, 0);
    app.finish().await;
}

async fn a_missing_wrong_or_cross_site_token_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let practice = app.tenant.as_str().to_owned();
    let (admin, _) = app
        .signed_in_staff("import.csrf@example.org", Role::PracticeAdmin)
        .await;
    let file = Some(("statements.csv", &sample()[..]));
    let missing = multipart(&[("practice", &practice)], file);
    let r = post_multipart(&admin, missing, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no token");
    let wrong = multipart(&[("csrf", "not-the-token"), ("practice", &practice)], file);
    let r = post_multipart(&admin, wrong, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a wrong token");
    // A file part named like the token is not the token.
    let csrf = admin.csrf("/staff/import").await;
    let mut as_file = multipart(&[("practice", &practice)], file);
    let part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"; filename=\"csrf.csv\"\r\n\r\n{csrf}\r\n"
    );
    as_file.splice(0..0, part.into_bytes());
    let r = post_multipart(&admin, as_file, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the token as a file");
    // The right token from another site.
    let cross = multipart(&[("csrf", &csrf), ("practice", &practice)], file);
    let r = post_multipart(&admin, cross, Some("https://evil.example")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "cross-site");
    let r = admin.post("/staff/import/confirm", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "confirm without a token");
    assert_eq!(imported(&app).await, 0);
    assert!(kept(&app).is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);
    // The right token goes through, even last, after the file.
    let mut last = multipart(&[("practice", &practice)], file);
    last.truncate(last.len() - format!("--{BOUNDARY}--\r\n").len());
    last.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    let r = post_multipart(&admin, last, None).await;
    assert_eq!(location(&r), format!("/staff/import?practice={practice}"));
    assert_eq!(kept(&app).len(), 1);
    app.finish().await;
}

async fn a_file_over_the_limit_gets_a_page_saying_what_to_do(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start(backend).await;
    // A browser sends the file's length first; the answer comes from it, before the body (a
    // client still writing 8 MB may not read an early answer, so the request is sent by hand,
    // headers only).
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /staff/import HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; \
         boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        patriotpay::http::MAX_UPLOAD_BYTES + 1
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let words = text(&answer);
    assert!(
        words.contains("That request was too large")
            && words.contains("up to 8 MB")
            && words.contains("import command"),
        "{words}"
    );
    assert_eq!(imported(&app).await, 0);
    app.finish().await;
}
