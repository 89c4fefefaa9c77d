//! HTTP wiring: state, the route table (its form routes carry the CSRF layer), and the
//! middleware every response passes through (request ids, security headers, sessions, the
//! policy tripwire, error pages, request logs).

pub mod account;
pub mod api;
pub mod assets;
pub mod cards;
mod check_link;
mod dev_outbox;
mod documents;
pub mod error;
pub mod extract;
pub mod forms;
pub mod household;
pub mod household_pay;
pub mod invitation;
mod lang_switch;
mod link_views;
pub mod member;
mod member_views;
mod metrics;
mod not_me;
pub mod patient;
mod plans;
pub mod record_views;
pub mod sealed;
pub mod session;
pub mod sharing;
pub mod signout;
pub mod staff;
pub mod switch;
mod text_choice;
mod twilio;
pub mod verify;
pub mod view_as;
pub mod webhook;

use crate::config::Secret;
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::payments::PaymentProcessor;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{AppError, ErrorPage};
use patriotpay_app::vm::PageMeta;
use patriotpay_app::Url;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Largest request body accepted (forms and webhooks).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest body of the one file upload (`POST /staff/import`, a statement file and its form);
/// bigger files go through `patriotpay import`, which streams them.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Where views and refusals are audited (group commit); a change audits in its own transaction.
    pub audit: crate::group_commit::GroupWriter,
    pub crypto: Arc<FieldCrypto>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub webhook_secrets: Arc<Vec<Secret>>,
    /// Public base URL of the portal, no trailing slash.
    pub public_url: String,
    pub trust_forwarded_for: bool,
    pub link_ttl_days: u32,
    /// Failed identity answers per practice per hour before the alert (`links::spend_practice_budget`).
    pub identity_failure_budget: u32,
    /// Wakes the processor-event worker; the webhook nudges it when it answers before a job is done.
    pub jobs: crate::payments::jobs::Nudge,
    /// How long the webhook works on a new event before it answers.
    pub webhook_ack: std::time::Duration,
    /// How long the return from the processor waits for the payment to be booked.
    pub confirm_wait: std::time::Duration,
    pub clock: Arc<crate::clock::Clock>,
    pub alerts: crate::alerts::AlertSink,
    /// Who checks passwords and second factors: local accounts or Cognito.
    pub identity: Arc<dyn crate::identity::IdentityProvider>,
    /// The data directory: uploaded statement files wait for confirmation under it, encrypted.
    pub data_dir: std::path::PathBuf,
    /// Who carries texts and email out of the outbox.
    pub providers: crate::messages::providers::Providers,
    /// Serve the outbox viewer to loopback callers (`serve --demo` only).
    pub dev_outbox: bool,
    /// Twilio's auth token, which signs its webhooks; `None` unless Twilio carries the texts.
    pub twilio_auth_token: Option<crate::config::Secret>,
    /// The bearer token that opens `/metrics` on the portal's address; `None`: 404 there.
    pub metrics_token: Option<crate::config::Secret>,
}

/// Per-request facts set by the outermost middleware; an extractor (`http::extract`).
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub address: String,
    /// The request's time on the server's injectable clock: the one reading every check and
    /// record of this request uses.
    pub now: i64,
    /// Set (by the session guard) while a staff member views as a patient: the staff member's
    /// actor id. Every event of the request then names them as the actor.
    pub viewing_as: Option<String>,
    /// Under view-as, the practice lets staff take a payment the patient dictates.
    pub view_as_may_pay: bool,
}

impl RequestContext {
    /// The audit actor for `id`. Under view-as, whoever the page acts for (the patient's account
    /// or pay link) becomes on-behalf-of, and the staff member viewing is the actor.
    pub fn actor(&self, id: String) -> crate::audit::Actor {
        let (id, on_behalf_of) = match &self.viewing_as {
            Some(staff) if *staff != id => (staff.clone(), Some(id)),
            _ => (id, None),
        };
        crate::audit::Actor {
            id,
            on_behalf_of,
            request_id: Some(self.request_id.clone()),
            address: Some(self.address.clone()),
            at: Some(self.now),
        }
    }
}

/// A redirect after a form post, or to where a visitor belongs (303 See Other).
pub fn see_other(to: Url<'_>) -> Response {
    Redirect::to(&to.path()).into_response()
}

/// `see_other` with one query parameter.
pub fn see_other_query(to: Url<'_>, key: &str, value: &str) -> Response {
    Redirect::to(&to.with_query(key, value)).into_response()
}

/// A redirect to the card processor's hosted checkout page: the one redirect that leaves the
/// portal, to a URL the processor gave us (the CSP's `form-action` names its origin).
pub fn to_processor_checkout(checkout_url: &str) -> Response {
    Redirect::to(checkout_url).into_response()
}

tokio::task_local! {
    /// Whether this request is served with a test-mode processor (set by `request_context`).
    static TEST_MODE: bool;
}

/// The frame every portal page starts from: `PageMeta::default()` plus what holds for the
/// whole request (test mode, when no real money moves).
pub fn page_meta() -> PageMeta {
    PageMeta {
        lang: crate::locale::current(),
        here: crate::locale::here(),
        test_mode: TEST_MODE.try_with(|t| *t).unwrap_or(false),
        view_as: view_as::banner(),
        ..Default::default()
    }
}

/// The message catalog pages are rendered with: the request's language.
pub fn tr() -> patriotpay_app::Tr {
    patriotpay_app::Tr::new(crate::locale::current())
}

/// What a route is, as the tests and the guards see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A GET page.
    Page,
    /// A GET page whose successful answer carries protected data: it must have asked the policy.
    PhiPage,
    /// A form POST: the CSRF layer checks origin and token before anything else runs.
    Form,
    /// A form POST whose successful answer carries protected data.
    PhiForm,
    /// Machine endpoints (webhooks, health, assets): no session, no CSRF.
    Machine,
}

impl RouteKind {
    pub fn is_form(self) -> bool {
        matches!(self, RouteKind::Form | RouteKind::PhiForm)
    }

    pub fn is_phi(self) -> bool {
        matches!(self, RouteKind::PhiPage | RouteKind::PhiForm)
    }
}

/// One entry of the route table.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub kind: RouteKind,
}

/// Routes are registered through this builder, which records each in a table: the CSRF layer
/// goes on every form route by construction, and tests walk the table instead of a hand list.
pub struct Routes {
    state: AppState,
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub fn new(state: &AppState) -> Self {
        Routes {
            state: state.clone(),
            router: Router::new(),
            table: vec![],
        }
    }

    fn note(&mut self, method: Method, path: &'static str, kind: RouteKind) {
        self.table.push(RouteInfo { method, path, kind });
    }

    fn get_route<H, T>(mut self, url: Url<'static>, handler: H, kind: RouteKind) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = url.template();
        self.note(Method::GET, path, kind);
        self.router = self.router.route(path, get(handler));
        self
    }

    fn form_route<H, T>(mut self, url: Url<'static>, handler: H, kind: RouteKind) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = url.template();
        self.note(Method::POST, path, kind);
        let checked = post(handler).layer(middleware::from_fn_with_state(
            self.state.clone(),
            extract::require_csrf,
        ));
        self.router = self.router.route(path, checked);
        self
    }

    /// A page that shows nothing protected.
    pub fn page<H, T>(self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.get_route(url, handler, RouteKind::Page)
    }

    /// A page that shows protected data (PHI, a patient's payments).
    pub fn phi_page<H, T>(self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.get_route(url, handler, RouteKind::PhiPage)
    }

    /// A form post (CSRF-checked).
    pub fn form<H, T>(self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.form_route(url, handler, RouteKind::Form)
    }

    /// A form post (CSRF-checked) whose answer shows protected data.
    pub fn phi_form<H, T>(self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.form_route(url, handler, RouteKind::PhiForm)
    }

    /// A machine endpoint: no CSRF token (webhooks prove themselves by signature).
    pub fn machine_get<H, T>(mut self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = url.template();
        self.note(Method::GET, path, RouteKind::Machine);
        self.router = self.router.route(path, get(handler));
        self
    }

    /// A machine POST endpoint: no CSRF token (webhooks prove themselves by signature).
    pub fn machine_post<H, T>(mut self, url: Url<'static>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = url.template();
        self.note(Method::POST, path, RouteKind::Machine);
        self.router = self.router.route(path, post(handler));
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub fn table(&self) -> &[RouteInfo] {
        &self.table
    }
}

/// The statement API: machine endpoints with their own body limit and JSON errors.
fn api_routes(state: &AppState) -> Routes {
    Routes::new(state)
        .machine_post(Url::ApiStatements, api::statements)
        .machine_get(Url::ApiOpenApi, api::openapi)
}

/// Every page and form of the portal, area by area.
fn pages(state: &AppState) -> Routes {
    Routes::new(state)
        .merge(patient::router(state))
        .merge(documents::router(state))
        .merge(verify::router(state))
        .merge(account::router(state))
        .merge(household::router(state))
        .merge(household_pay::router(state))
        .merge(sharing::router(state))
        .merge(cards::router(state))
        .merge(plans::router(state))
        .merge(record_views::router(state))
        .merge(invitation::router(state))
        .merge(not_me::router(state))
        .merge(check_link::router(state))
        .merge(text_choice::router(state))
        .merge(staff::router(state))
        .page(Url::DevOutbox, dev_outbox::page)
}

/// Machine endpoints: webhooks, health, static files.
fn machine(state: &AppState) -> Routes {
    Routes::new(state)
        .machine_post(Url::StripeWebhook, webhook::stripe)
        .machine_post(Url::TwilioStatus, twilio::status)
        .machine_post(Url::TwilioInbound, twilio::inbound)
        .machine_get(Url::Healthz, || async { "ok" })
        .machine_get(Url::Readyz, readyz)
        .machine_get(Url::Stylesheet, assets::style)
        .machine_get(Url::Favicon, assets::favicon)
        .machine_get(Url::Robots, assets::robots)
        .machine_get(Url::Metrics, metrics::on_portal)
}

/// The separate metrics listener's router (`/metrics` only).
pub fn metrics_router(state: AppState) -> Router {
    metrics::router(state)
}

/// The route table of the portal as `portal_router` serves it (tests walk it).
pub fn route_table(state: &AppState) -> Vec<RouteInfo> {
    let mut t = machine(state).table;
    t.extend(api_routes(state).table);
    t.extend(pages(state).table);
    t
}

pub fn portal_router(state: AppState) -> Router {
    let secure = state.public_url.starts_with("https://");
    let store = session::DbSessionStore::grouped(state.db.clone(), state.audit.clone());
    let sessions = SessionManagerLayer::new(store)
        .with_name(session::cookie_name(secure))
        .with_secure(secure)
        .with_http_only(true)
        // Lax, not Strict: the return from the processor's page is a cross-site top-level GET.
        .with_same_site(SameSite::Lax)
        .with_path("/")
        // Saved only when changed (no `with_always_save`): `Sess::enforce_timeouts` moves the
        // idle clock, a change, at most once a minute, so the record's expiry still follows the
        // visitor's requests.
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            session::PATIENT_IDLE_MINUTES,
        )));

    let pages = pages(&state);
    let protected: Arc<BTreeSet<&'static str>> = Arc::new(
        pages
            .table
            .iter()
            .filter(|r| r.kind.is_phi())
            .map(|r| r.path)
            .collect(),
    );
    let pages = pages
        .router
        .fallback(|| async { AppError::NotFound })
        .layer(middleware::from_fn(move |req, next| {
            policy_guard(protected.clone(), req, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), session_guard))
        .layer(sessions);

    let checkout_origin = state.processor.checkout_origin();
    let csp = Arc::new(format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; \
         form-action 'self' {checkout_origin}; frame-ancestors 'none'; base-uri 'none'"
    ));
    // A batch of statements is far bigger than a form: the API has its own bound (the handler
    // reads the body as bytes, so axum's limit is the one that counts).
    let api = api_routes(&state)
        .router
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY_BYTES));
    machine(&state)
        .router
        .merge(pages)
        .layer(middleware::from_fn(body_limit))
        // The API has its own limit (`api::MAX_BODY_BYTES`, its route's `DefaultBodyLimit`).
        .merge(api)
        .with_state(state.clone())
        // Lets the upload's multipart extractor read up to `MAX_UPLOAD_BYTES` (axum's own
        // default is 2 MB); every other page body is capped at `MAX_BODY_BYTES` by `body_limit`.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(middleware::from_fn(move |req, next| {
            security_headers(csp.clone(), req, next)
        }))
        .layer(middleware::from_fn_with_state(state, request_context))
}

/// Caps every request body: `MAX_BODY_BYTES`, or `MAX_UPLOAD_BYTES` for the statement upload.
/// A declared length over the cap is refused at once (413); a body that grows past it fails
/// when read.
async fn body_limit(req: Request, next: middleware::Next) -> Response {
    let limit = if req.method() == axum::http::Method::POST
        && req.uri().path() == Url::StaffImport.template()
    {
        MAX_UPLOAD_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    next.run(req).await
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
    let is_webhook = req
        .uri()
        .path()
        .starts_with(patriotpay_app::urls::WEBHOOK_PREFIX);
    let is_api = req
        .uri()
        .path()
        .starts_with(patriotpay_app::urls::API_PREFIX);
    req.extensions_mut().insert(RequestContext {
        request_id: request_id.clone(),
        address,
        now: state.clock.now(),
        viewing_as: None,
        view_as_may_pay: false,
    });
    let span = tracing::info_span!("request", request_id = %request_id);
    let test_mode = state.processor.is_test_mode();
    let mut res = TEST_MODE
        .scope(
            test_mode,
            tracing::Instrument::instrument(next.run(req), span.clone()),
        )
        .await;
    let status = res.status();
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_api {
        res = api_error_json(res, &request_id);
    } else if !is_webhook
        && (res.extensions().get::<ErrorPage>().is_some() || (status.as_u16() >= 400 && !is_html))
    {
        let lang = res
            .extensions()
            .get::<patriotpay_app::Lang>()
            .copied()
            .unwrap_or_default();
        let html = patriotpay_app::pages::error(
            PageMeta {
                lang,
                test_mode,
                ..Default::default()
            },
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
    let elapsed = started.elapsed();
    crate::observe::request(&route, method.as_str(), status.as_u16(), elapsed);
    tracing::info!(
        parent: &span,
        method = %method,
        route = %route,
        status = status.as_u16(),
        ms = elapsed.as_millis() as u64,
        "request"
    );
    res
}

/// An API error the handler did not answer in JSON itself (an unknown path or method, a layer's
/// refusal) becomes `{"error", "message", "request_id"}` with the same status and headers.
fn api_error_json(res: Response, request_id: &str) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || (is_json && res.extensions().get::<ErrorPage>().is_none()) {
        return res;
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let (parts, _) = res.into_parts();
    let mut out = api::error(status, &code, reason, request_id);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
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

/// Fails closed when a handler on a protected route answers without one policy decision: the
/// page is replaced by a 500, so a forgotten check is a visible bug, never a leak.
pub async fn policy_guard(
    protected: Arc<BTreeSet<&'static str>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let (res, decisions) = crate::access::counting_decisions(next.run(req)).await;
    let protected = route.as_deref().is_some_and(|r| protected.contains(r));
    if protected && res.status().is_success() && decisions == 0 {
        tracing::error!(
            route = route.as_deref().unwrap_or(""),
            "handler answered without a policy decision"
        );
        return AppError::Internal(anyhow::anyhow!("no policy decision")).into_response();
    }
    res
}

/// Enforces idle and absolute session timeouts before any handler sees the session, then a
/// view-as session's own limits (see `view_as::guard`).
async fn session_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    session: session::Sess,
    req: Request,
    next: Next,
) -> Response {
    if let Some(lang) = lang_switch::asked(&req) {
        return lang_switch::switch(&session, lang, req.uri()).await;
    }
    let lang = match session.enforce_timeouts(state.clock.now()).await {
        Ok(_) => session.lang().await,
        Err(e) => Err(e),
    };
    let here = lang_switch::return_to(&req);
    match lang {
        Ok(lang) => {
            let mut res =
                crate::locale::scope(lang, here, view_as::guard(&state, &session, req, next)).await;
            // For the error page `request_context` draws outside this scope.
            res.extensions_mut().insert(lang);
            res
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests;
