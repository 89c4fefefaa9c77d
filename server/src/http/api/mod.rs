//! The statement import API (issue 12): `POST /api/v1/statements` takes a batch of statements in
//! the JSON import format from a practice's billing system, authenticated by the practice's API
//! key, and answers per record; `GET /api/v1/openapi.json` serves the OpenAPI document generated
//! from these types. Machine endpoints: no session, no CSRF; every error is JSON.

mod auth;
pub mod idempotency;
pub mod openapi;

use super::AppState;
use crate::intake::run::{self, Fate, Options, Source, Summary};
use crate::intake::Format;
use auth::ApiCaller;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use idempotency::Claim;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Statements one request may carry; a bigger batch is refused whole.
pub const MAX_BATCH: usize = 1_000;
/// Largest request body the API reads (1,000 statements of a few lines each fit easily).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The header that makes a retried batch safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed for a retried `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

// Every record of a batch gets its line in the answer.
const _: () = assert!(MAX_BATCH <= run::MAX_LISTED);

/// An error answer. Messages name places and fields, never a value sent.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// A stable code, e.g. `invalid_api_key`, `batch_too_large`, `idempotency_key_reused`.
    pub error: String,
    /// What went wrong, in words.
    pub message: String,
    /// Quote it when asking for help: the server's log lines carry it.
    pub request_id: String,
}

/// What became of one statement.
#[derive(Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RecordResult {
    Created,
    Updated,
    Unchanged,
    Rejected,
}

/// One statement of the batch, in the order sent.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecordAnswer {
    /// Its index in `statements`, from 0.
    pub index: usize,
    /// Its `statement.id`, when it had a readable one.
    pub statement_id: Option<String>,
    pub result: RecordResult,
    /// Why it was rejected: each reason names the place (`statements[1].lines[0].charge`) and
    /// the rule, never the value. Empty unless rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The answer to a batch: its counts and every record's result. When `committed` is false
/// (a dry run, or a batch refused whole) the results say what would have happened and nothing
/// was written. A refused batch (422) carries `error` and `message` too.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportAnswer {
    /// The run's id in the practice's import history.
    pub import_id: String,
    pub dry_run: bool,
    pub partial: bool,
    /// The batch's writes were committed.
    pub committed: bool,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub records: Vec<RecordAnswer>,
    /// Set when nothing was written although this was no dry run: `statements_rejected`
    /// (all-or-nothing with a rejected record) or `batch_refused` (e.g. another practice's file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub request_id: String,
}

/// The query of `POST /api/v1/statements`.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `true`: take the good statements and reject the others. Default: all or nothing.
    #[serde(default)]
    pub partial: bool,
    /// `true`: check and answer as if importing, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A JSON error answer.
pub fn error(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    request_id: &str,
) -> Response {
    (
        status,
        Json(ApiError {
            error: code.to_owned(),
            message: message.into(),
            request_id: request_id.to_owned(),
        }),
    )
        .into_response()
}

/// Imports a batch of statements for the key's practice.
#[utoipa::path(
    post,
    path = "/api/v1/statements",
    tag = "statements",
    params(
        ImportQuery,
        ("Idempotency-Key" = Option<String>, Header,
            description = "1–64 of `A-Z a-z 0-9 - _ . :`. A retry with the same key and body gets \
                the first answer again (header `Idempotent-Replayed: true`) without importing \
                again; the same key with another body is refused (409). Keys are per practice."),
    ),
    request_body(content = crate::intake::json::ImportDocument, content_type = "application/json",
        description = "The JSON import format: up to 1,000 statements, at most 10 MiB."),
    responses(
        (status = 200, description = "Imported (or, for a dry run, checked); see each record", body = ImportAnswer),
        (status = 400, description = "Not JSON of the import format's shape, a bad query or Idempotency-Key", body = ApiError),
        (status = 401, description = "No API key, or not a live one", body = ApiError),
        (status = 409, description = "The Idempotency-Key was used with another body, or its first request is still running", body = ApiError),
        (status = 413, description = "More than 1,000 statements or 10 MiB; nothing written", body = ApiError),
        (status = 422, description = "Nothing written: a record was rejected (all or nothing) or the batch names another practice", body = ImportAnswer),
        (status = 429, description = "Too many refused API keys from this address lately; see Retry-After", body = ApiError),
    ),
    security(("api_key" = [])),
)]
pub async fn statements(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let rid = caller.ctx.request_id.as_str();
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "the query takes partial=true|false and dry_run=true|false only",
            rid,
        );
    };
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => match v.to_str().ok().filter(|k| idempotency::key_shape_ok(k)) {
            Some(k) => Some(k.to_owned()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_idempotency_key",
                    "Idempotency-Key must be 1 to 64 of A-Z a-z 0-9 - _ . :",
                    rid,
                )
            }
        },
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over {MAX_BODY_BYTES} bytes: send smaller batches"),
                rid,
            )
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the body could not be read",
                rid,
            )
        }
    };
    match count_statements(&body) {
        Err(where_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "the body is not a JSON object with \"practice\" and a \"statements\" array \
                     ({where_})"
                ),
                rid,
            )
        }
        Ok(n) if n > MAX_BATCH => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!(
                    "{n} statements sent: a batch holds at most {MAX_BATCH}; nothing was written"
                ),
                rid,
            )
        }
        Ok(_) => {}
    }

    let import_id = run::new_import_id();
    let actor = format!("apikey:{}", caller.key_id);
    if let Some(key) = &key {
        let hash = idempotency::request_hash(&query, &body);
        let claim = idempotency::claim(
            &state.db,
            &caller.tenant,
            key,
            &hash,
            &import_id,
            &actor,
            query.dry_run,
            caller.ctx.now,
        )
        .await;
        match claim {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Replay { status, body }) => {
                idempotency::audit_replay(&state.db, &caller, &import_id).await;
                return replayed(status, body);
            }
            Ok(Claim::OtherBody) => {
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another body (or query): use a new key \
                     for a new batch",
                    rid,
                )
            }
            Ok(Claim::Running) => {
                let mut res = error(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "the first request with this Idempotency-Key is still being imported: retry \
                     shortly for its answer",
                    rid,
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return res;
            }
            Err(e) => return internal(&e, rid),
        }
    }

    let opts = Options {
        tenant: caller.tenant.clone(),
        format: Format::Json,
        dry_run: query.dry_run,
        partial: query.partial,
        source: Source::Api,
        actor: caller.ctx.actor(actor),
        now: caller.ctx.now,
        alerts: state.alerts.clone(),
        public_url: state.public_url.clone(),
    };
    let summary = match run_import(&state, &opts, body, &import_id).await {
        Ok(s) => s,
        Err(e) => {
            if key.is_some() {
                // Let a retry run it again: nothing was committed.
                idempotency::release(&state.db, &import_id).await;
            }
            return internal(&e, rid);
        }
    };
    let (status, answer) = answer(&summary, &opts, rid);
    let json = match serde_json::to_string(&answer) {
        Ok(j) => j,
        Err(e) => return internal(&e, rid),
    };
    if key.is_some() {
        if let Err(e) = idempotency::store(&state.db, &import_id, status, &json).await {
            // The import stands; a retry finds the claim unanswered and, once it is stale,
            // runs the batch again (re-sent statements come back unchanged).
            tracing::error!(error = %e, "api: could not store the answer for its idempotency key");
        }
    }
    json_response(status, json)
}

/// The document generated from the types (`openapi::document`).
pub async fn openapi() -> Response {
    match openapi::json() {
        Ok(doc) => json_response(StatusCode::OK, doc),
        Err(e) => internal(&e, ""),
    }
}

/// Runs the import on a blocking thread of its own: the writer's future holds its transaction
/// (sqlx's `Any` connection is not `Sync`) across awaits, so it is not `Send` and cannot be an
/// axum handler's future; the blocking thread drives it to the end on the runtime.
async fn run_import(
    state: &AppState,
    opts: &Options,
    body: Bytes,
    import_id: &str,
) -> Result<Summary, String> {
    let (db, crypto, opts, id) = (
        state.db.clone(),
        state.crypto.clone(),
        opts.clone(),
        import_id.to_owned(),
    );
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(run::import_as(
            &db,
            crypto,
            std::io::Cursor::new(body),
            &opts,
            Some(id),
            |_| {},
        ))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// The status and answer for a finished run.
fn answer(s: &Summary, opts: &Options, request_id: &str) -> (StatusCode, ImportAnswer) {
    let records = s
        .records
        .iter()
        .map(|r| RecordAnswer {
            index: r.index,
            statement_id: r.statement_id.clone(),
            result: match r.fate {
                Fate::Created => RecordResult::Created,
                Fate::Updated => RecordResult::Updated,
                Fate::Unchanged => RecordResult::Unchanged,
                Fate::Rejected(_) => RecordResult::Rejected,
            },
            reasons: r.reasons.clone(),
        })
        .collect();
    let (status, error, message) = if let Some(fatal) = &s.fatal {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("batch_refused"),
            Some(format!("nothing was written: {fatal}")),
        )
    } else if s.rejected > 0 && !opts.partial {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("statements_rejected"),
            Some(format!(
                "{} statement(s) rejected, so nothing was written (all or nothing); fix them, or \
                 send partial=true to take the others",
                s.rejected
            )),
        )
    } else {
        (StatusCode::OK, None, None)
    };
    (
        status,
        ImportAnswer {
            import_id: s.import_id.clone(),
            dry_run: opts.dry_run,
            partial: opts.partial,
            committed: s.committed,
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            rejected: s.rejected,
            records,
            error: error.map(str::to_owned),
            message,
            request_id: request_id.to_owned(),
        },
    )
}

/// How many statements the body holds, once its envelope parsed (each element skipped, not
/// built); else where it broke. serde's own message is not passed on: it may quote a value.
fn count_statements(body: &[u8]) -> Result<usize, String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "practice")]
        _practice: serde::de::IgnoredAny,
        statements: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.statements.len())
        .map_err(|e| format!("line {}, column {}", e.line(), e.column()))
}

fn json_response(status: StatusCode, json: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

/// A stored answer, as first sent.
fn replayed(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut res = json_response(status, body);
    res.headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    res
}

fn internal(e: &dyn std::fmt::Display, request_id: &str) -> Response {
    tracing::error!(error = %e, "api request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed: retry later (a re-sent statement that was imported comes back unchanged)",
        request_id,
    )
}
