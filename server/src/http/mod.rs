//! HTTP wiring: state, routes, and the middleware every response passes through (request ids,
//! security headers, origin checks, sessions, error pages, request logs).

pub mod account;
pub mod assets;
pub mod error;
pub mod household;
pub mod invitation;
pub mod patient;
pub mod session;
pub mod staff;
pub mod webhook;

use crate::config::Secret;
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::payments::PaymentProcessor;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{AppError, ErrorPage};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub crypto: Arc<FieldCrypto>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub webhook_secrets: Arc<Vec<Secret>>,
    /// Public base URL of the portal, no trailing slash.
    pub public_url: String,
    pub trust_forwarded_for: bool,
    pub link_ttl_days: u32,
    pub clock: Arc<crate::clock::Clock>,
    pub alerts: crate::alerts::AlertSink,
    /// Who checks passwords and second factors: local accounts or Cognito.
    pub identity: Arc<dyn crate::identity::IdentityProvider>,
}

/// Per-request facts set by the outermost middleware.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub address: String,
}

impl RequestContext {
    pub fn actor(&self, id: String) -> crate::audit::Actor {
        crate::audit::Actor {
            id,
            on_behalf_of: None,
            request_id: Some(self.request_id.clone()),
            address: Some(self.address.clone()),
        }
    }
}

pub fn portal_router(state: AppState) -> Router {
    let secure = state.public_url.starts_with("https://");
    let sessions = SessionManagerLayer::new(session::DbSessionStore::new(state.db.clone()))
        // `__Host-` requires Secure; plain-http development uses an unprefixed name.
        .with_name(if secure {
            "__Host-pp_session"
        } else {
            "pp_session"
        })
        .with_secure(secure)
        .with_http_only(true)
        // Lax, not Strict: the return from the processor's page is a cross-site top-level GET.
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            session::PATIENT_IDLE_MINUTES,
        )))
        // Save on every request so the idle timeout counts from the last request, not the last change.
        .with_always_save(true);

    let pages = Router::new()
        .route("/", get(patient::home))
        .route("/p/{token}", get(patient::open_link))
        .route(
            "/verify",
            get(patient::verify_form).post(patient::verify_submit),
        )
        .route(
            "/verify/zip",
            get(patient::zip_form).post(patient::zip_submit),
        )
        .route("/summary", get(patient::summary))
        .route("/statement", get(patient::statement))
        .route("/pay", post(patient::pay))
        .route("/pay/return/{checkout}", get(patient::pay_return))
        .route("/pay/cancelled/{checkout}", get(patient::pay_cancelled))
        .route("/receipt/{payment}", get(patient::receipt))
        .route("/signout", post(patient::signout))
        .route("/signed-out", get(patient::signed_out))
        .route("/expired", get(patient::expired))
        .route(
            "/account/create",
            get(account::create_form).post(account::create_submit),
        )
        .route(
            "/account/confirm",
            get(account::confirm_form).post(account::confirm_submit),
        )
        .route("/account/confirm/resend", post(account::confirm_resend))
        .route(
            "/account/reset-password",
            get(account::reset_password_form).post(account::reset_password_submit),
        )
        .route(
            "/signin",
            get(account::signin_form).post(account::signin_submit),
        )
        .route("/account", get(household::home))
        .route("/account/statements/{statement}", get(household::statement))
        .route("/account/pay", post(household::pay))
        .route("/account/pay/return/{checkout}", get(household::pay_return))
        .route(
            "/account/pay/cancelled/{checkout}",
            get(household::pay_cancelled),
        )
        .route("/account/receipt/{payment}", get(household::receipt))
        .route("/account/guarantors/invite", post(account::invite))
        .route(
            "/account/guarantors/revoke",
            post(account::revoke_guarantor),
        )
        .route(
            "/account/invitations/revoke",
            post(account::revoke_invitation),
        )
        .route("/g/{token}", get(invitation::open_invitation))
        .route(
            "/guarantor/verify",
            get(invitation::invite_verify_form).post(invitation::invite_verify_submit),
        )
        .route(
            "/guarantor/accept",
            get(invitation::accept_form).post(invitation::accept_submit),
        )
        .route("/staff", get(staff::home))
        .route("/staff/guarantors/invite", post(staff::invite_guarantor))
        .route("/staff/guarantors/revoke", post(staff::revoke_guarantor))
        .route(
            "/staff/login",
            get(staff::login_form).post(staff::login_submit),
        )
        .route("/staff/mfa", get(staff::mfa_form).post(staff::mfa_submit))
        .route(
            "/staff/forgot",
            get(staff::forgot_form).post(staff::forgot_submit),
        )
        .route(
            "/staff/reset",
            get(staff::reset_form).post(staff::reset_submit),
        )
        .route(
            "/staff/new-password",
            get(staff::new_password_form).post(staff::new_password_submit),
        )
        .route("/staff/enrol/{token}", get(staff::open_enrolment))
        .route(
            "/staff/enrol",
            get(staff::enrol_form).post(staff::enrol_submit),
        )
        .route("/staff/search", post(staff::search))
        .route("/staff/break-glass", post(staff::break_glass))
        .route("/staff/signout", post(staff::signout))
        .route("/staff/signout-everywhere", post(staff::signout_everywhere))
        .fallback(|| async { AppError::NotFound })
        .layer(middleware::from_fn(policy_guard))
        .layer(middleware::from_fn_with_state(state.clone(), session_guard))
        .layer(sessions)
        .layer(middleware::from_fn_with_state(state.clone(), check_origin));

    let checkout_origin = state.processor.checkout_origin();
    let csp = Arc::new(format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; \
         form-action 'self' {checkout_origin}; frame-ancestors 'none'; base-uri 'none'"
    ));
    Router::new()
        .route("/webhooks/stripe", post(webhook::stripe))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/assets/style.css", get(assets::style))
        .route("/favicon.svg", get(assets::favicon))
        .route("/robots.txt", get(assets::robots))
        .merge(pages)
        .with_state(state.clone())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(middleware::from_fn(move |req, next| {
            security_headers(csp.clone(), req, next)
        }))
        .layer(middleware::from_fn_with_state(state, request_context))
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    if !state.db.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: database").into_response();
    }
    if let Err(e) = state.crypto.provider().health().await {
        tracing::warn!(error = %e, "key provider not ready");
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: key provider").into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

fn client_address(req: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        if let Some(last) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        {
            return last.to_owned();
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Outermost: assigns a request id (never taken from the client), logs one line per request
/// without the URL (pay-link tokens live in paths), and turns error statuses into pages that
/// show only the request id.
async fn request_context(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let address = client_address(&req, state.trust_forwarded_for);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let is_webhook = req.uri().path().starts_with("/webhooks/");
    req.extensions_mut().insert(RequestContext {
        request_id: request_id.clone(),
        address,
    });
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status();
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_webhook
        && (res.extensions().get::<ErrorPage>().is_some() || (status.as_u16() >= 400 && !is_html))
    {
        let html = patriotpay_app::pages::error(
            Default::default(),
            patriotpay_app::vm::ErrorVm {
                status: status.as_u16(),
                request_id: request_id.clone(),
            },
        );
        let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
        let allow = res.headers().get(header::ALLOW).cloned();
        res = (status, Html(html)).into_response();
        if let Some(v) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Some(v) = allow {
            res.headers_mut().insert(header::ALLOW, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        parent: &span,
        method = %method,
        route = %route,
        status = status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

async fn security_headers(csp: Arc<String>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    // Every page may carry PHI; only the static assets set their own caching.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// CSRF, first line: a state-changing request from another site is refused before any handler
/// runs. The synchronizer token in each form is the second line.
async fn check_origin(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !same_origin(req.headers(), &state.public_url)
    {
        tracing::warn!("cross-origin form post refused");
        return AppError::Forbidden.into_response();
    }
    next.run(req).await
}

fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == public_url,
        // Neither header (old browsers, tools): the synchronizer token decides.
        None => true,
    }
}

/// Routes whose successful answers carry protected data: each must have asked the policy.
/// (`/staff` itself shows only the signed-in account's own email and roles; `/account` shows
/// only what per-person decisions allowed, and an account with no one on it asks nothing.)
pub const POLICY_ROUTES: &[&str] = &[
    "/summary",
    "/statement",
    "/pay/return/{checkout}",
    "/pay/cancelled/{checkout}",
    "/receipt/{payment}",
    "/staff/search",
    "/staff/break-glass",
    "/staff/guarantors/invite",
    "/account/statements/{statement}",
    "/account/pay/return/{checkout}",
    "/account/receipt/{payment}",
    "/account/guarantors/invite",
];

/// Fails closed when a handler on a protected route answers without one policy decision: the
/// page is replaced by a 500, so a forgotten check is a visible bug, never a leak.
pub async fn policy_guard(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let (res, decisions) = crate::access::counting_decisions(next.run(req)).await;
    let protected = route.as_deref().is_some_and(|r| POLICY_ROUTES.contains(&r));
    if protected && res.status().is_success() && decisions == 0 {
        tracing::error!(
            route = route.as_deref().unwrap_or(""),
            "handler answered without a policy decision"
        );
        return AppError::Internal(anyhow::anyhow!("no policy decision")).into_response();
    }
    res
}

/// Enforces idle and absolute session timeouts before any handler sees the session.
async fn session_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    session: tower_sessions::Session,
    req: Request,
    next: Next,
) -> Response {
    match session::enforce_timeouts(&session, state.clock.now()).await {
        Ok(_) => next.run(req).await,
        Err(e) => AppError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handler_that_skips_the_policy_is_refused() {
        use tower::ServiceExt;
        let tenant = crate::ids::TenantId::generate();
        let asks = move || {
            let tenant = tenant.clone();
            async move {
                let on = crate::access::Resource {
                    tenant: &tenant,
                    patient: None,
                    clinical_restricted: false,
                };
                let _ = crate::access::decide(
                    &Default::default(),
                    crate::access::Action::ViewAuditLog,
                    &on,
                    0,
                );
                "checked"
            }
        };
        let app = Router::new()
            .route("/summary", get(|| async { "forgot to ask" }))
            .route("/statement", get(asks))
            .route("/healthz", get(|| async { "public" }))
            .layer(middleware::from_fn(policy_guard));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let req = axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .expect("request");
                app.oneshot(req).await.expect("response").status()
            }
        };
        assert_eq!(call("/summary").await, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(call("/statement").await, StatusCode::OK);
        assert_eq!(
            call("/healthz").await,
            StatusCode::OK,
            "unprotected routes need no decision"
        );
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, "https://pay.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, "https://pay.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://pay.example"),
        );
        assert!(same_origin(&h, "https://pay.example"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, "https://pay.example"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&h, "https://pay.example"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, "https://pay.example"));
    }
}
