//! The processor's webhook endpoint: signature checked on the raw body, the event stored as a
//! job, and an answer within the acknowledgement budget; the job queue does the rest.

use super::{AppState, RequestContext};
use crate::payments::{jobs, signature, EventEnvelope};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn stripe(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(header) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        crate::observe::webhook_refused(&state.db, "stripe", &ctx.address, ctx.now).await;
        return (StatusCode::BAD_REQUEST, "missing signature").into_response();
    };
    let secrets: Vec<&str> = state.webhook_secrets.iter().map(|s| s.expose()).collect();
    // The tolerance compares the processor's timestamp with real time, not the injectable clock
    // (which tests move forward): both ends of a signature live on wall clocks.
    if let Err(e) = signature::verify(&secrets, header, &body, crate::clock::now_unix()) {
        tracing::warn!(reason = %e, "webhook signature refused");
        crate::observe::webhook_refused(&state.db, "stripe", &ctx.address, ctx.now).await;
        return (StatusCode::BAD_REQUEST, "invalid signature").into_response();
    }
    let event: EventEnvelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(_) => {
            crate::observe::webhook("stripe", "malformed");
            return (StatusCode::BAD_REQUEST, "malformed event").into_response();
        }
    };
    let now = state.clock.now();
    let job = match jobs::enqueue_claimed(&state.audit, &event, now).await {
        Ok(job) => job,
        // Not stored: a 5xx makes the processor deliver it again later.
        Err(e) => {
            tracing::error!(error = %e, "webhook: could not store the event");
            crate::observe::webhook("stripe", "error");
            return (StatusCode::INTERNAL_SERVER_ERROR, "retry later").into_response();
        }
    };
    let fresh = job.is_some();
    if let Some(job) = job {
        // Worked at once, in its own task so an answer past the budget never cuts it short;
        // what is not done by then the worker finishes (the job is leased meanwhile).
        let worker = state.clone();
        let task = tokio::spawn(async move {
            let now = worker.clock.now();
            let worked = jobs::work(
                &worker.db,
                &worker.audit,
                worker.processor.as_ref(),
                &worker.alerts,
                &job,
                now,
            )
            .await;
            if let Err(e) = worked {
                tracing::error!(error = %e, "webhook: could not work the event");
            }
        });
        if tokio::time::timeout(state.webhook_ack, task).await.is_err() {
            state.jobs.wake();
        }
    }
    crate::observe::webhook("stripe", if fresh { "accepted" } else { "duplicate" });
    (
        StatusCode::OK,
        Json(serde_json::json!({ "received": true, "duplicate": !fresh })),
    )
        .into_response()
}
