//! The statement import API (issue 12) over HTTP: the sample batch imported with a practice's
//! key (created, then unchanged; audited with the request's id and address), missing, wrong and
//! revoked keys refused (401, audited without the key; past a limit per address 429, unaudited),
//! another practice's key refused with nothing written, a retried batch answered once
//! under its Idempotency-Key (and a different body under it refused), an oversized batch
//! refused, a bad record rejecting the batch unless `partial=true`, a dry run writing nothing,
//! errors as JSON, and the OpenAPI document generated from the types and equal to
//! `docs/openapi.json`. Both databases.

use crate::common::{second_practice, Backend, TestApp};
use patriotpay::apikeys;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

both_backends!(
    the_sample_batch_is_created_then_unchanged,
    missing_wrong_and_revoked_keys_are_refused_and_audited,
    another_practices_key_writes_nothing,
    a_retried_batch_is_answered_once_per_idempotency_key,
    an_unanswered_claim_is_refused_until_it_is_stale,
    an_oversized_batch_is_refused,
    a_bad_record_refuses_the_batch_unless_partial,
    a_dry_run_writes_nothing,
    the_openapi_document_matches_the_types_and_the_committed_copy,
    refused_keys_past_the_limit_are_answered_429_and_not_audited,
);

const STATEMENTS: &str = "/api/v1/statements";

fn sample() -> Value {
    let path = format!("{}/../samples/statements.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("sample JSON")
}

async fn key_for(app: &TestApp, tenant: &patriotpay::ids::TenantId) -> (String, String) {
    let now = app.state().clock.now();
    apikeys::create(app.db(), tenant, "billing system", "test", now)
        .await
        .expect("key")
}

/// POSTs `body` (raw bytes) to `path` with `key` and extra headers.
async fn post_raw(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Response {
    let mut req = Client::new()
        .post(format!("{}{path}", app.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.send().await.expect("request")
}

async fn post(app: &TestApp, path: &str, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let r = post_raw(app, path, key, &[], body.to_string().into_bytes()).await;
    let status = r.status();
    (status, r.json().await.expect("JSON answer"))
}

async fn imported(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM statements WHERE external_id IS NOT NULL")
        .await
}

fn results(answer: &Value) -> Vec<(u64, String, String)> {
    answer["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["statement_id"].as_str().unwrap_or("").to_owned(),
                r["result"].as_str().expect("result").to_owned(),
            )
        })
        .collect()
}

async fn the_sample_batch_is_created_then_unchanged(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (key_id, key) = key_for(&app, &app.tenant).await;
    let (status, first) = post(&app, STATEMENTS, Some(&key), &sample()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["created"].as_u64(), first["committed"].as_bool()),
        (Some(4), Some(true)),
        "{first}"
    );
    let ids: Vec<String> = sample()["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| s["statement"]["id"].as_str().expect("id").to_owned())
        .collect();
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u64, id.clone(), "created".to_owned()))
        .collect();
    assert_eq!(results(&first), expected);
    assert_eq!(imported(&app).await, 4);

    let (status, again) = post(&app, STATEMENTS, Some(&key), &sample()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["created"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(4))
    );
    assert!(results(&again).iter().all(|r| r.2 == "unchanged"));
    assert_eq!(imported(&app).await, 4);
    assert_ne!(first["import_id"], again["import_id"]);

    // Both runs are in the history and the audit log under the key's id.
    let runs = app
        .count("SELECT COUNT(*) FROM imports WHERE source = 'api'")
        .await;
    assert_eq!(runs, 2);
    // Each event names the request it came with and where from.
    let audited: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT request_id, address FROM audit_events
         WHERE action = 'statements.import' AND actor = $1",
    )
    .bind(format!("apikey:{key_id}"))
    .fetch_all(app.db().pool())
    .await
    .expect("events");
    assert_eq!(audited.len(), 2);
    for (request_id, address) in &audited {
        assert!(request_id.as_deref().is_some_and(|r| !r.is_empty()));
        assert_eq!(address.as_deref(), Some("127.0.0.1"));
    }
    app.finish().await;
}

async fn missing_wrong_and_revoked_keys_are_refused_and_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (key_id, key) = key_for(&app, &app.tenant).await;
    let wrong = format!("{}{}", &key[..key.len() - 4], "AAAA");
    let check = |r: &Response| {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    };
    let body = sample().to_string().into_bytes();
    let r = post_raw(&app, STATEMENTS, None, &[], body.clone()).await;
    check(&r);
    let answer: Value = r.json().await.expect("JSON");
    assert_eq!(answer["error"], "missing_api_key");
    assert!(answer["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let r = post_raw(
        &app,
        STATEMENTS,
        None,
        &[("authorization", &format!("Basic {key}"))],
        body.clone(),
    )
    .await;
    check(&r);
    let r = post_raw(&app, STATEMENTS, Some(&wrong), &[], body.clone()).await;
    check(&r);
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"],
        "invalid_api_key"
    );

    let now = app.state().clock.now();
    assert!(apikeys::revoke(app.db(), &app.tenant, &key_id, now)
        .await
        .expect("revoke"));
    let r = post_raw(&app, STATEMENTS, Some(&key), &[], body).await;
    check(&r);
    assert_eq!(imported(&app).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);

    // The wrong key and the revoked one are audited (the revoked one by its id and practice);
    // no event carries a key.
    let refused: Vec<(String, Option<String>, Option<String>, String)> = sqlx::query_as(
        "SELECT actor, tenant_id, resource, outcome FROM audit_events
         WHERE action = 'apikey.refused' ORDER BY seq",
    )
    .fetch_all(app.db().pool())
    .await
    .expect("events");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, "apikey:unknown");
    assert_eq!(refused[0].1, None);
    assert_eq!(refused[1].0, format!("apikey:{key_id}"));
    assert_eq!(refused[1].1.as_deref(), Some(app.tenant.as_str()));
    assert_eq!(refused[1].2.as_deref(), Some(key_id.as_str()));
    assert_eq!(refused[1].3, "denied");
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT actor, resource FROM audit_events")
            .fetch_all(app.db().pool())
            .await
            .expect("events");
    let secret = &key[apikeys::KEY_PREFIX.len()..];
    let secret_wrong = &wrong[apikeys::KEY_PREFIX.len()..];
    for (actor, resource) in rows {
        let text = format!("{actor} {}", resource.unwrap_or_default());
        assert!(
            !text.contains(secret) && !text.contains(secret_wrong),
            "{text}"
        );
    }
    app.finish().await;
}

async fn refused_keys_past_the_limit_are_answered_429_and_not_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let body = sample().to_string().into_bytes();
    let wrong = format!("{}{}", &key[..key.len() - 4], "AAAA");
    for _ in 0..apikeys::MAX_REFUSALS_PER_ADDRESS {
        let r = post_raw(&app, STATEMENTS, Some(&wrong), &[], body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = post_raw(&app, STATEMENTS, Some(&wrong), &[], body.clone()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some(apikeys::REFUSAL_WINDOW_SECS.to_string().as_str())
    );
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"],
        "too_many_refused_keys"
    );
    let refused = app
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'apikey.refused'")
        .await;
    assert_eq!(refused, apikeys::MAX_REFUSALS_PER_ADDRESS);
    // The practice's live key still works from the same address.
    let (status, answer) = post(&app, STATEMENTS, Some(&key), &sample()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Once the window has passed, a refused key is a plain 401 again.
    app.state().clock.advance(apikeys::REFUSAL_WINDOW_SECS + 1);
    let r = post_raw(&app, STATEMENTS, Some(&wrong), &[], body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.finish().await;
}

async fn another_practices_key_writes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (other, _, _) = second_practice(&app).await;
    sqlx::query("UPDATE tenants SET external_id = 'lakeside-peds' WHERE id = $1")
        .bind(other.as_str())
        .execute(app.db().pool())
        .await
        .expect("billing id");
    let (_, theirs) = key_for(&app, &other).await;
    let (status, answer) = post(&app, STATEMENTS, Some(&theirs), &sample()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "batch_refused");
    assert_eq!(answer["committed"], false);
    let message = answer["message"].as_str().expect("message");
    assert!(message.contains("billing id"), "{message}");
    assert_eq!(imported(&app).await, 0);
    let external: Option<String> =
        sqlx::query_scalar("SELECT external_id FROM tenants WHERE id = $1")
            .bind(app.tenant.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("tenant");
    assert_eq!(external, None, "the first practice was not touched");
    app.finish().await;
}

async fn a_retried_batch_is_answered_once_per_idempotency_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let body = sample().to_string().into_bytes();
    let idem = [("idempotency-key", "batch-2026-11-30.1")];
    let first = post_raw(&app, STATEMENTS, Some(&key), &idem, body.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_text = first.text().await.expect("body");
    let retry = post_raw(&app, STATEMENTS, Some(&key), &idem, body.clone()).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        retry.text().await.expect("body"),
        first_text,
        "the same answer"
    );
    let answer: Value = serde_json::from_str(&first_text).expect("JSON");
    assert_eq!(answer["created"], 4, "the retry did not import again");
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 1);
    assert_eq!(imported(&app).await, 4);

    // The same key with another body (or another query) is refused and imports nothing.
    let mut changed = sample();
    changed["statements"]
        .as_array_mut()
        .expect("statements")
        .truncate(1);
    let r = post_raw(
        &app,
        STATEMENTS,
        Some(&key),
        &idem,
        changed.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"],
        "idempotency_key_reused"
    );
    let r = post_raw(
        &app,
        &format!("{STATEMENTS}?dry_run=true"),
        Some(&key),
        &idem,
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 1);

    // A malformed key is refused before anything is read.
    for bad in ["", "a b", &"k".repeat(65)] {
        let r = post_raw(
            &app,
            STATEMENTS,
            Some(&key),
            &[("idempotency-key", bad)],
            body.clone(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }

    // Two requests at once under a new key: one imports, the other gets its answer or is told
    // it is still running; never two runs.
    let idem2 = [("idempotency-key", "batch-2026-11-30.2")];
    let (a, b) = tokio::join!(
        post_raw(&app, STATEMENTS, Some(&key), &idem2, body.clone()),
        post_raw(&app, STATEMENTS, Some(&key), &idem2, body.clone()),
    );
    let statuses = [a.status(), b.status()];
    assert!(
        statuses.contains(&StatusCode::OK)
            && statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let runs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM imports WHERE idempotency_key = 'batch-2026-11-30.2'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("count");
    assert_eq!(runs, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 2);
    app.finish().await;
}

async fn an_unanswered_claim_is_refused_until_it_is_stale(backend: Backend) {
    use patriotpay::http::api::{idempotency, ImportQuery};
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let body = sample().to_string().into_bytes();
    let hash = idempotency::request_hash(&ImportQuery::default(), &body);
    let now = app.state().clock.now();
    // A request under the key is running (claimed a minute ago, no answer yet).
    let claimed = idempotency::claim(
        app.db(),
        &app.tenant,
        "k-1",
        &hash,
        "imp_running",
        "apikey:test",
        false,
        now - 60,
    )
    .await
    .expect("claim");
    assert!(matches!(claimed, idempotency::Claim::Claimed));
    let idem = [("idempotency-key", "k-1")];
    let r = post_raw(&app, STATEMENTS, Some(&key), &idem, body.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"],
        "idempotency_key_in_use"
    );
    assert_eq!(imported(&app).await, 0);

    // Its server died: past the stale time the retry takes the claim over and imports, in the
    // same history row; the next retry gets that answer.
    sqlx::query("UPDATE imports SET started_at = $1 WHERE id = 'imp_running'")
        .bind(now - idempotency::STALE_SECS - 1)
        .execute(app.db().pool())
        .await
        .expect("age the claim");
    let r = post_raw(&app, STATEMENTS, Some(&key), &idem, body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = r.text().await.expect("body");
    assert_eq!(
        serde_json::from_str::<Value>(&first).expect("JSON")["created"],
        4
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 1);
    let r = post_raw(&app, STATEMENTS, Some(&key), &idem, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), first);
    assert_eq!(imported(&app).await, 4);
    app.finish().await;
}

async fn an_oversized_batch_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let one = sample()["statements"][0].clone();
    let many: Vec<Value> = (0..1001)
        .map(|i| {
            let mut s = one.clone();
            s["statement"]["id"] = json!(format!("S-BIG-{i}"));
            s
        })
        .collect();
    let batch = json!({"practice": "riverside-fm", "statements": many});
    let (status, answer) = post(&app, STATEMENTS, Some(&key), &batch).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"], "batch_too_large");
    assert_eq!(imported(&app).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);

    // A body over the byte bound is refused as JSON too.
    let huge = format!(
        "{{\"practice\": \"riverside-fm\", \"statements\": [], \"pad\": \"{}\"}}",
        "x".repeat(patriotpay::http::api::MAX_BODY_BYTES)
    );
    let r = post_raw(&app, STATEMENTS, Some(&key), &[], huge.into_bytes()).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"],
        "body_too_large"
    );
    app.finish().await;
}

async fn a_bad_record_refuses_the_batch_unless_partial(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let mut batch = sample();
    batch["statements"][1]["lines"][0]["charge"] = json!("12x.50");
    let (status, answer) = post(&app, STATEMENTS, Some(&key), &batch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "statements_rejected");
    assert_eq!(answer["committed"], false);
    let bad = &answer["records"][1];
    assert_eq!(bad["result"], "rejected");
    assert_eq!(bad["index"], 1);
    let reasons = bad["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.starts_with("statements[1].lines[0].charge"))),
        "{reasons:?}"
    );
    assert!(!answer.to_string().contains("12x.50"), "no value is quoted");
    assert_eq!(imported(&app).await, 0, "all or nothing");

    let (status, answer) = post(
        &app,
        &format!("{STATEMENTS}?partial=true"),
        Some(&key),
        &batch,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["created"].as_u64(), answer["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(answer["records"][1]["result"], "rejected");
    assert_eq!(imported(&app).await, 3);

    // A query it does not know is refused rather than ignored.
    let (status, answer) = post(
        &app,
        &format!("{STATEMENTS}?dryrun=true"),
        Some(&key),
        &batch,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "bad_query");
    app.finish().await;
}

async fn a_dry_run_writes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = key_for(&app, &app.tenant).await;
    let (status, answer) = post(
        &app,
        &format!("{STATEMENTS}?dry_run=true"),
        Some(&key),
        &sample(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            answer["created"].as_u64(),
            answer["committed"].as_bool(),
            answer["dry_run"].as_bool()
        ),
        (Some(4), Some(false), Some(true))
    );
    assert_eq!(imported(&app).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM imports WHERE dry_run = 1")
            .await,
        1
    );
    app.finish().await;
}

/// The schema a `$ref` somewhere inside `v` points at.
fn referenced<'a>(doc: &'a Value, v: &Value) -> Option<&'a Value> {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let name = r.strip_prefix("#/components/schemas/")?;
                return doc["components"]["schemas"].get(name);
            }
            m.values().find_map(|x| referenced(doc, x))
        }
        Value::Array(a) => a.iter().find_map(|x| referenced(doc, x)),
        _ => None,
    }
}

/// Checks `schema` against the sample object `sample` (a value serde takes): every key sent is a
/// property, and exactly the schema's required keys are the ones whose removal serde refuses.
fn check_object(schema: &Value, sample: &Value, without: &dyn Fn(&str) -> bool, what: &str) {
    let props = schema["properties"].as_object().expect("properties");
    let keys = sample.as_object().expect("object");
    for k in keys.keys() {
        assert!(
            props.contains_key(k),
            "{what}.{k} is missing from the schema"
        );
    }
    for k in props.keys() {
        assert!(keys.contains_key(k), "{what}.{k} is not in the sample");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for k in keys.keys() {
        assert_eq!(
            required.contains(&k.as_str()),
            !without(k),
            "{what}.{k}: the schema's `required` disagrees with serde"
        );
    }
}

async fn the_openapi_document_matches_the_types_and_the_committed_copy(backend: Backend) {
    use patriotpay::intake::json::StatementIn;
    let app = TestApp::start(backend).await;
    let r = Client::new()
        .get(format!("{}/api/v1/openapi.json", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let served = r.text().await.expect("body");
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let op = &doc["paths"]["/api/v1/statements"]["post"];
    assert!(op.is_object(), "POST /api/v1/statements is documented");
    assert!(op["responses"]["200"].is_object() && op["responses"]["401"].is_object());

    // The request schema is the serde types': checked key by key against the sample statement.
    let request = &op["requestBody"]["content"]["application/json"]["schema"];
    let document = referenced(&doc, request).expect("ImportDocument");
    let statement =
        referenced(&doc, &document["properties"]["statements"]).expect("StatementIn schema");
    let sample_statement = sample()["statements"][1].clone();
    assert!(
        !sample_statement["guarantor"].is_null(),
        "a sample with a guarantor"
    );
    let takes = |v: &Value| serde_json::from_value::<StatementIn>(v.clone()).is_ok();
    assert!(takes(&sample_statement));
    let without_top = |k: &str| {
        let mut v = sample_statement.clone();
        v.as_object_mut().expect("object").remove(k);
        takes(&v)
    };
    check_object(statement, &sample_statement, &without_top, "statement");
    for part in ["patient", "guarantor", "statement"] {
        let schema = referenced(&doc, &statement["properties"][part]).expect(part);
        let without = |k: &str| {
            let mut v = sample_statement.clone();
            v[part].as_object_mut().expect("object").remove(k);
            takes(&v)
        };
        check_object(schema, &sample_statement[part], &without, part);
    }
    let line = referenced(&doc, &statement["properties"]["lines"]).expect("LineIn");
    let without_line = |k: &str| {
        let mut v = sample_statement.clone();
        v["lines"][0].as_object_mut().expect("object").remove(k);
        takes(&v)
    };
    check_object(line, &sample_statement["lines"][0], &without_line, "line");

    // The committed copy is the served document.
    let committed = format!("{}/../docs/openapi.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("PATRIOTPAY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&committed, format!("{served}\n")).expect("write docs/openapi.json");
    }
    let copy = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        serde_json::from_str::<Value>(&copy).ok().as_ref() == Some(&doc),
        "docs/openapi.json differs from the served document: the API changed. Regenerate it with \
         `PATRIOTPAY_UPDATE_OPENAPI=1 cargo test -p patriotpay --test it -- \
         api::sqlite::the_openapi_document` and commit it with the change"
    );

    // Errors under /api/ are JSON, whatever answers them.
    let r = Client::new()
        .get(format!("{}/api/v1/nothing-here", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.expect("a JSON 404");
    assert_eq!(body["error"], "not_found");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let r = Client::new()
        .get(format!("{}{STATEMENTS}", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_some());
    assert_eq!(
        r.json::<Value>().await.expect("a JSON 405")["error"],
        "method_not_allowed"
    );
    app.finish().await;
}
