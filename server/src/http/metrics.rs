//! `/metrics` (issue 14): the Prometheus text of `observe`, on its own listener (default
//! loopback, `PATRIOTPAY_METRICS_ADDR`) and, only with `PATRIOTPAY_METRICS_TOKEN`, on the
//! portal's address behind that bearer token (checked in constant time). Without a token the
//! portal answers 404 there, as for any unknown path.

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use patriotpay_app::Url;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn scrape(state: &AppState) -> Response {
    let text = crate::observe::scrape(&state.db, state.clock.now()).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// On the portal's address: only with the configured bearer token.
pub async fn on_portal(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.metrics_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let right: bool =
        subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes()).into();
    if !right {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    scrape(&state).await
}

/// The metrics listener's whole router: `/metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            Url::Metrics.template(),
            axum::routing::get(|State(state): State<AppState>| async move { scrape(&state).await }),
        )
        .with_state(state)
}
