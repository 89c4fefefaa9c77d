//! The processor's webhook endpoint: signature checked on the raw body, then the event handed to
//! the payments module.

use super::AppState;
use crate::payments::{self, signature, EventOutcome, PaymentError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn stripe(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(header) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return (StatusCode::BAD_REQUEST, "missing signature").into_response();
    };
    let secrets: Vec<&str> = state.webhook_secrets.iter().map(|s| s.expose()).collect();
    // The tolerance compares the processor's timestamp with real time, not the injectable clock
    // (which tests move forward): both ends of a signature live on wall clocks.
    if let Err(e) = signature::verify(&secrets, header, &body, crate::clock::now_unix()) {
        tracing::warn!(reason = %e, "webhook signature refused");
        return (StatusCode::BAD_REQUEST, "invalid signature").into_response();
    }
    let event: payments::EventEnvelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(_) => return (StatusCode::BAD_REQUEST, "malformed event").into_response(),
    };
    match payments::handle_event(
        &state.db,
        state.processor.as_ref(),
        &event,
        state.clock.now(),
    )
    .await
    {
        Ok(outcome) => {
            tracing::info!(event_type = %event.event_type, outcome = ?outcome, "webhook handled");
            if let EventOutcome::NotBooked(why) = &outcome {
                // Acknowledged and kept (a retry would find the same), checkout closed: the
                // money the processor reports is for a person to reconcile. Once per payment.
                if let Err(e) = why.raise(&state.db, &state.alerts, state.clock.now()).await {
                    tracing::error!(error = %e, "webhook: could not record the alert");
                }
            }
            if outcome == EventOutcome::UnknownPaid {
                // Acknowledged (retries would change nothing) but money was taken that no
                // checkout of ours explains: one alert per event, for reconciliation by hand.
                let id: String = event.id.chars().take(80).collect();
                let detail = format!(
                    "processor event {id} is a payment for a checkout we have no record of"
                );
                if let Err(e) = state
                    .alerts
                    .raise_once(
                        &state.db,
                        "payment-unknown-checkout",
                        &detail,
                        state.clock.now(),
                    )
                    .await
                {
                    tracing::error!(error = %e, "webhook: could not record the alert");
                }
            }
            let duplicate = outcome == EventOutcome::Duplicate;
            (
                StatusCode::OK,
                Json(serde_json::json!({ "received": true, "duplicate": duplicate })),
            )
                .into_response()
        }
        // 5xx makes the processor retry later; the event was not stored, so the retry does the work.
        Err(PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "webhook: processor unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "retry later").into_response()
        }
        Err(PaymentError::BadEvent(why)) => {
            tracing::warn!(why, "webhook: event does not match our records");
            // A signed event we cannot book may be money taken but on no ledger: someone must
            // reconcile it by hand.
            let id: String = event.id.chars().take(80).collect();
            let detail = format!("processor event {id} was not recorded: {why}");
            let now = state.clock.now();
            if let Err(e) = state
                .alerts
                .raise_once(&state.db, "payment-not-recorded", &detail, now)
                .await
            {
                tracing::error!(error = %e, "webhook: could not record the alert");
            }
            (StatusCode::BAD_REQUEST, "event refused").into_response()
        }
        Err(PaymentError::Pending | PaymentError::Invalid(_)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "retry later").into_response()
        }
        Err(PaymentError::Db(e)) => {
            tracing::error!(error = %e, "webhook: database error");
            (StatusCode::INTERNAL_SERVER_ERROR, "retry later").into_response()
        }
    }
}
