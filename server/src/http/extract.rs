//! Who is calling, checked in the handler's signature: the request context, the CSRF-checked
//! form, pay-link and invitation visitors by stage, signed-in members and staff. Each rejection
//! is the response the caller should get (a redirect to the right step, 403, 404).

use super::error::{AppError, Result};
use super::session::{Sess, SessionData, SignedIn, Stage};
use super::view_as::Viewed;
use super::{see_other, AppState, RequestContext};
use crate::accounts::{self, Account, Kind};
use crate::guarantors::{self, Invitation};
use crate::ids::{InvitationId, LinkId, UserId};
use crate::links::{self, LinkState, PayLink};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use patriotpay_app::Url;
use serde::de::DeserializeOwned;

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("request context missing")))
    }
}

/// Set on a request whose CSRF check passed.
#[derive(Clone, Copy, Debug)]
struct CsrfChecked;

/// The field every form carries its synchronizer token in (named once, with the forms).
pub const CSRF_FIELD: &str = patriotpay_app::forms::CSRF_FIELD;

/// True when the request's origin headers don't say it came from another site.
pub(super) fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == public_url,
        // Neither header (old browsers, tools): the synchronizer token decides.
        None => true,
    }
}

/// Whether a body is `multipart/form-data` (the statement upload; every other form is
/// urlencoded).
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The token in a multipart body: the text of its part named `csrf` (empty when there is none).
/// The body is already in memory (at most `MAX_UPLOAD_BYTES`); parsing it here costs a second
/// read, and the handler still gets every byte unchanged. A body that is not valid multipart is
/// a bad request, as a broken urlencoded body is.
async fn multipart_token(parts: &Parts, body: &axum::body::Bytes) -> Result<String> {
    use axum::extract::Multipart;
    let mut req = Request::new(Body::from(body.clone()));
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        req.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    // Carries the route's body limit over to the extractor.
    *req.extensions_mut() = parts.extensions.clone();
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|_| AppError::BadRequest)?;
    while let Some(field) = form.next_field().await.map_err(|_| AppError::BadRequest)? {
        if field.name() == Some(CSRF_FIELD) && field.file_name().is_none() {
            return field.text().await.map_err(|_| AppError::BadRequest);
        }
    }
    Ok(String::new())
}

/// Both lines of the CSRF defence on a form body: the origin headers and the synchronizer token
/// (a urlencoded field, or for the one multipart form, its `csrf` part).
async fn check_form(state: &AppState, parts: &mut Parts, body: &axum::body::Bytes) -> Result<()> {
    if !same_origin(&parts.headers, &state.public_url) {
        tracing::warn!("cross-origin form post refused");
        return Err(AppError::Forbidden);
    }
    let given = if is_multipart(&parts.headers) {
        multipart_token(parts, body).await?
    } else {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|_| AppError::BadRequest)?;
        fields
            .into_iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let session = Sess::from_request_parts(parts, state).await?;
    if !session.csrf_ok(&given).await? {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

/// Route layer on every form route (see `Routes::form`): checks the origin and the token before
/// any extractor or handler runs, so a signed-out caller or a wrong stage cannot hide a missing
/// token, then hands the body on unchanged.
pub async fn require_csrf(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // A multipart body is read whole too: the token may follow the file. The route's own limit
    // (`http::body_limit`) has already capped it; only the upload route allows this much.
    let limit = if is_multipart(&parts.headers) {
        super::MAX_UPLOAD_BYTES
    } else {
        super::MAX_BODY_BYTES
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return AppError::BadRequest.into_response(),
    };
    if let Err(e) = check_form(&state, &mut parts, &bytes).await {
        return e.into_response();
    }
    match super::view_as::refuse_change(&state, &mut parts).await {
        Ok(None) => {}
        Ok(Some(refused)) => return refused,
        Err(e) => return e.into_response(),
    }
    parts.extensions.insert(CsrfChecked);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A form body whose CSRF token was checked before it was deserialised. Fails closed: on a route
/// registered without the layer it does the check itself.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(|_| AppError::BadRequest)?;
        if parts.extensions.get::<CsrfChecked>().is_none() {
            check_form(state, &mut parts, &bytes).await?;
            if super::view_as::refuse_change(state, &mut parts)
                .await?
                .is_some()
            {
                return Err(AppError::Forbidden);
            }
        }
        let value = serde_urlencoded::from_bytes(&bytes).map_err(|_| AppError::BadRequest)?;
        Ok(CsrfForm(value))
    }
}

/// The statement upload's multipart body, handed over only after the CSRF layer checked its
/// token (`check_form` reads it from the body's `csrf` part). Fails closed: on a route without
/// the layer it refuses (the body would have to be read twice to check it here).
pub struct CsrfMultipart(pub axum::extract::Multipart);

impl FromRequest<AppState> for CsrfMultipart {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        if req.extensions().get::<CsrfChecked>().is_none() {
            return Err(AppError::Forbidden);
        }
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(CsrfMultipart)
            .map_err(|_| AppError::BadRequest)
    }
}

/// A pay-link visitor as far as they got: the link (re-read each request, so a revoked or
/// expired link stops at once; `None` when the link presented was unknown) and the stage.
/// Rejected (to "session expired") when the session never came from a link.
pub struct LinkArrival {
    pub link: Option<PayLink>,
    pub stage: Option<Stage>,
}

/// A caller as the session shows it. `caller_extractors!` turns each into an extractor whose
/// rejection is the refusal's response, so the session is read the same way for all of them.
trait Caller: Sized {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal>;
}

macro_rules! caller_extractors {
    ($($caller:ty),* $(,)?) => {$(
        impl FromRequestParts<AppState> for $caller {
            type Rejection = Response;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> std::result::Result<Self, Response> {
                let session = Sess::from_request_parts(parts, state)
                    .await
                    .map_err(IntoResponse::into_response)?;
                <$caller as Caller>::from_session(state, &session)
                    .await
                    .map_err(IntoResponse::into_response)
            }
        }
    )*};
}

caller_extractors!(
    LinkArrival,
    LinkVisitor,
    VerifiedVisitor,
    InviteArrival,
    VerifiedInvitation,
    Member,
    MaybeMember,
    StaffSession,
    Staff,
);

/// Why a caller extractor refused: a redirect to where the caller belongs, or an error.
enum Refusal {
    Redirect(Url<'static>),
    Error(AppError),
}

impl<E> From<E> for Refusal
where
    AppError: From<E>,
{
    fn from(e: E) -> Self {
        Refusal::Error(AppError::from(e))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Redirect(to) => see_other(to),
            Refusal::Error(e) => e.into_response(),
        }
    }
}

/// Under view-as, the patient whose pages are shown (`None` otherwise): the staff sign-in is
/// checked first, as for any staff request.
async fn viewing(state: &AppState, session: &Sess) -> std::result::Result<Option<Viewed>, Refusal> {
    let Some(seat) = session.data().await?.view_as else {
        return Ok(None);
    };
    let staff = signed_in(state, session, Seat::Staff).await?;
    Ok(Some(super::view_as::viewed(state, &seat, &staff).await?))
}

/// Where a view-as session's pages start.
fn view_landing(v: &Viewed) -> Url<'static> {
    match v {
        Viewed::Member(_) => Url::Account,
        Viewed::Link(_) => Url::Summary,
    }
}

impl Caller for LinkArrival {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        // Staff viewing as a patient never answer the patient's questions.
        if let Some(v) = viewing(state, session).await? {
            return Err(Refusal::Redirect(view_landing(&v)));
        }
        let Some(visit) = session.data().await?.link else {
            return Err(Refusal::Redirect(Url::Expired));
        };
        let link = match visit.link_id {
            Some(id) => links::find(&state.db, &LinkId::from_db(id)).await?,
            None => None,
        };
        Ok(LinkArrival {
            link,
            stage: visit.stage,
        })
    }
}

/// A pay-link visitor who gave their date of birth, on a live link: balance, practice, payment.
pub struct LinkVisitor {
    pub link: PayLink,
    pub stage: Stage,
}

/// A pay-link visitor who gave both answers: the itemised statement.
pub struct VerifiedVisitor(pub PayLink);

/// A visitor on a live link who got at least as far as `needed`.
async fn visitor(
    state: &AppState,
    session: &Sess,
    needed: Stage,
) -> std::result::Result<LinkVisitor, Refusal> {
    // Under view-as the statement is shown whatever state its link is in: staff help patients
    // whose link ran out, too.
    match viewing(state, session).await? {
        Some(Viewed::Link(link)) => {
            return Ok(LinkVisitor {
                link,
                stage: Stage::Full,
            })
        }
        Some(v) => return Err(Refusal::Redirect(view_landing(&v))),
        None => {}
    }
    let a = LinkArrival::from_session(state, session).await?;
    let Some(link) = a.link else {
        return Err(Refusal::Redirect(Url::Verify));
    };
    if link.state(state.clock.now()) != LinkState::Usable {
        return Err(Refusal::Redirect(Url::Verify));
    }
    match a.stage {
        Some(s) if s >= needed => Ok(LinkVisitor { link, stage: s }),
        Some(_) => Err(Refusal::Redirect(Url::VerifyZip)),
        None => Err(Refusal::Redirect(Url::Verify)),
    }
}

impl Caller for LinkVisitor {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        visitor(state, session, Stage::Dob).await
    }
}

impl Caller for VerifiedVisitor {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        Ok(VerifiedVisitor(
            visitor(state, session, Stage::Full).await?.link,
        ))
    }
}

/// A guarantor-invitation visitor as far as they got (the invitation re-read each request;
/// `None` when the one presented was unknown). Rejected to "session expired" otherwise.
pub struct InviteArrival {
    pub invitation: Option<Invitation>,
    pub verified: bool,
}

impl Caller for InviteArrival {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        let Some(visit) = session.data().await?.invitation else {
            return Err(Refusal::Redirect(Url::Expired));
        };
        let invitation = match visit.invitation_id {
            Some(id) => guarantors::find(&state.db, &InvitationId::from_db(id)).await?,
            None => None,
        };
        Ok(InviteArrival {
            invitation,
            verified: visit.verified,
        })
    }
}

/// An invitation whose identity questions were answered and which can still be accepted.
pub struct VerifiedInvitation(pub Invitation);

impl Caller for VerifiedInvitation {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        match InviteArrival::from_session(state, session).await? {
            InviteArrival {
                invitation: Some(inv),
                verified: true,
            } if inv.state(state.clock.now()) == LinkState::Usable => Ok(VerifiedInvitation(inv)),
            _ => Err(Refusal::Redirect(Url::GuarantorVerify)),
        }
    }
}

/// Which kind of sign-in a session holds.
#[derive(Clone, Copy)]
enum Seat {
    Staff,
    Member,
}

impl Seat {
    fn kind(self) -> Kind {
        match self {
            Seat::Staff => Kind::Staff,
            Seat::Member => Kind::Member,
        }
    }

    fn login(self) -> Url<'static> {
        match self {
            Seat::Staff => Url::StaffLogin,
            Seat::Member => Url::SignIn,
        }
    }

    fn of(self, d: &SessionData) -> Option<&SignedIn> {
        match self {
            Seat::Staff => d.staff.as_ref(),
            Seat::Member => d.member.as_ref(),
        }
    }
}

/// The account signed in on this session in `seat`, checked on every request: it exists, is
/// of that kind, is enabled, needs no reset, its sessions were not revoked after this sign-in,
/// and (with Cognito) its refresh token is still honoured. Otherwise the session ends.
async fn signed_in(
    state: &AppState,
    session: &Sess,
    seat: Seat,
) -> std::result::Result<Account, Refusal> {
    let d = session.data().await?;
    let Some(s) = seat.of(&d) else {
        return Err(Refusal::Redirect(seat.login()));
    };
    let now = state.clock.now();
    let account = accounts::load(&state.db, &UserId::from_db(s.user_id.clone()), now)
        .await?
        .filter(|a| {
            a.kind == seat.kind()
                && !a.disabled
                && !a.must_reset
                && s.auth_at > a.sessions_revoked_before
        });
    match account {
        Some(mut a) if super::sealed::tokens_still_valid(state, session, &a.id).await? => {
            a.principal.mfa = s.mfa;
            Ok(a)
        }
        _ => {
            session.end().await?;
            Err(Refusal::Redirect(seat.login()))
        }
    }
}

/// A signed-in patient or guarantor. Rejected to the sign-in page.
pub struct Member(pub Account);

impl Caller for Member {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        match viewing(state, session).await? {
            Some(Viewed::Member(a)) => return Ok(Member(a)),
            Some(v) => return Err(Refusal::Redirect(view_landing(&v))),
            None => {}
        }
        Ok(Member(signed_in(state, session, Seat::Member).await?))
    }
}

/// A signed-in member if the session has one (a session with none is not refused; one whose
/// member sign-in no longer holds is ended and sent to sign in).
pub struct MaybeMember(pub Option<Account>);

impl Caller for MaybeMember {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        match viewing(state, session).await? {
            Some(Viewed::Member(a)) => return Ok(MaybeMember(Some(a))),
            Some(Viewed::Link(_)) => return Ok(MaybeMember(None)),
            None => {}
        }
        if session.data().await?.member.is_none() {
            return Ok(MaybeMember(None));
        }
        Ok(MaybeMember(Some(
            signed_in(state, session, Seat::Member).await?,
        )))
    }
}

/// A signed-in staff member (password and, for local accounts, TOTP done). Rejected to staff
/// sign-in. Whether the second factor was given is in `principal.mfa`; the policy requires it
/// for every staff role's actions.
pub struct StaffSession(pub Account);

impl Caller for StaffSession {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        Ok(StaffSession(signed_in(state, session, Seat::Staff).await?))
    }
}

/// A signed-in staff member who gave their second factor this session: what every staff action
/// on practice data needs. Rejected to sign-in, or 403 without the second factor.
pub struct Staff(pub Account);

impl Caller for Staff {
    async fn from_session(state: &AppState, session: &Sess) -> std::result::Result<Self, Refusal> {
        let a = signed_in(state, session, Seat::Staff).await?;
        if !a.principal.mfa {
            return Err(Refusal::Error(AppError::Forbidden));
        }
        Ok(Staff(a))
    }
}

/// Staff holding one of a set of roles in at least one practice (the practice itself is
/// checked by the permit for the record acted on). Layered on `Staff`.
pub struct StaffWith<R: RoleSet>(pub Account, pub std::marker::PhantomData<R>);

/// A set of staff roles a route is for.
pub trait RoleSet: Send + Sync + 'static {
    const ROLES: &'static [crate::access::Role];
}

impl<R: RoleSet> FromRequestParts<AppState> for StaffWith<R> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        let Staff(a) = Staff::from_request_parts(parts, state).await?;
        let holds = a
            .principal
            .grants
            .iter()
            .any(|g| R::ROLES.contains(&g.role));
        if !holds {
            return Err(AppError::Forbidden.into_response());
        }
        Ok(StaffWith(a, std::marker::PhantomData))
    }
}

/// Roles that work on a practice's patients: support agents and practice admins.
pub struct PracticeStaff;

impl RoleSet for PracticeStaff {
    const ROLES: &'static [crate::access::Role] = &[
        crate::access::Role::SupportAgent,
        crate::access::Role::PracticeAdmin,
    ];
}

/// Security officers.
pub struct SecurityStaff;

impl RoleSet for SecurityStaff {
    const ROLES: &'static [crate::access::Role] = &[crate::access::Role::SecurityOfficer];
}

/// The trusted-device cookie a staff browser may hold (`accounts::trust_device`): its token when
/// it has the shape we issue. Whether it is live and whose it is, only the sign-in limits decide
/// (`accounts::claim_attempt_from`); it grants nothing else.
#[derive(Clone, Debug, Default)]
pub struct DeviceCookie(pub Option<String>);

impl FromRequestParts<AppState> for DeviceCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let name = device_cookie_name(is_https(state));
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|t| links::token_shape_ok(t));
        Ok(DeviceCookie(token))
    }
}

fn is_https(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

/// `__Host-` pins the cookie to our origin, but needs Secure: plain-http development uses an
/// unprefixed name (as the session cookie does).
fn device_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-pp_device"
    } else {
        "pp_device"
    }
}

/// The `Set-Cookie` value that makes this browser a trusted device of the account whose token
/// it is: long-lived, HttpOnly, Secure behind https, SameSite=Strict (only our own pages' posts
/// carry it).
pub fn device_cookie(state: &AppState, token: &str) -> String {
    device_cookie_value(is_https(state), token, crate::accounts::TRUSTED_DEVICE_SECS)
}

/// Removes the trusted-device cookie from this browser.
pub fn device_cookie_removal(state: &AppState) -> String {
    device_cookie_value(is_https(state), "", 0)
}

fn device_cookie_value(secure: bool, token: &str, max_age_secs: i64) -> String {
    use tower_sessions::cookie::{time::Duration, Cookie, SameSite};
    Cookie::build((device_cookie_name(secure), token.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(Duration::seconds(max_age_secs))
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn device_cookie_attributes() {
        let https = device_cookie_value(true, "tok", crate::accounts::TRUSTED_DEVICE_SECS);
        for part in [
            "__Host-pp_device=tok",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=2592000",
        ] {
            assert!(https.contains(part), "{https} lacks {part}");
        }
        assert!(
            !https.contains("Domain"),
            "a __Host- cookie names no domain"
        );
        let http = device_cookie_value(false, "tok", 60);
        assert!(http.starts_with("pp_device=tok") && !http.contains("Secure"));
        assert!(http.contains("HttpOnly") && http.contains("SameSite=Strict"));
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
