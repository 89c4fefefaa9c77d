//! Staff pages: sign-in with password then TOTP, enrolment from a one-time link, staff home with
//! patient search (policy-checked and audited), sign-out and sign-out everywhere.

use super::error::AppError;
use super::session::{self as sess, Flash};
use super::{AppState, RequestContext};
use crate::access::{self, Action, Resource};
use crate::accounts::{self, Account, AccountError};
use crate::audit::{self, Outcome};
use crate::crypto::{token_hash, FieldAad};
use crate::identity::{IdentityError, Pending, Step};
use crate::ids::{PatientId, TenantId, UserId};
use crate::phi::Phi;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use patriotpay_app::staff as pages;
use patriotpay_app::vm::*;
use patriotpay_app::Tr;
use tower_sessions::Session;

type Result<T> = std::result::Result<T, AppError>;

fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

fn tr() -> Tr {
    Tr::default()
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(d) => d.into(),
            AccountError::Crypto(c) => c.into(),
            AccountError::Throttled { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
            AccountError::Invalid
            | AccountError::WeakPassword
            | AccountError::Bad(_)
            | AccountError::EmailTaken
            | AccountError::PatientHasAccount
            | AccountError::Unconfirmed
            | AccountError::Gone => AppError::BadRequest,
            AccountError::Hash(h) => AppError::Internal(anyhow::anyhow!("password hashing: {h}")),
        }
    }
}

fn meta() -> PageMeta {
    PageMeta::default()
}

async fn audit_user(
    state: &AppState,
    ctx: &RequestContext,
    user: Option<&UserId>,
    action: &'static str,
    outcome: Outcome,
) -> Result<()> {
    let actor = ctx.actor(
        user.map(|u| format!("user:{u}"))
            .unwrap_or_else(|| "anonymous".into()),
    );
    audit::record(
        state.db.pool(),
        audit::Event {
            actor: &actor,
            tenant: None,
            patient: None,
            action,
            resource: user.map(|u| u.as_str()),
            outcome,
        },
    )
    .await?;
    Ok(())
}

/// The signed-in staff member, or a redirect to sign-in. Checks, on every request, that the
/// account is enabled and that its sessions were not revoked after this one signed in.
async fn signed_in(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<Account, Response>> {
    let mut a = match signed_in_as(
        state,
        session,
        sess::KEY_USER,
        accounts::Kind::Staff,
        "/staff/login",
    )
    .await?
    {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    a.principal.mfa = session.get::<bool>(sess::KEY_MFA).await?.unwrap_or(false);
    Ok(Ok(a))
}

/// The account signed in on this session under `key` (staff: `KEY_USER`, members:
/// `KEY_MEMBER`), or a redirect to `login` after ending the session. Checked on every request:
/// the account exists, is of `kind`, is enabled, needs no reset, its sessions were not revoked
/// after this sign-in, and (with Cognito) its refresh token is still honoured.
pub(super) async fn signed_in_as(
    state: &AppState,
    session: &Session,
    key: &str,
    kind: accounts::Kind,
    login: &str,
) -> Result<std::result::Result<Account, Response>> {
    let Some(id) = session.get::<String>(key).await? else {
        return Ok(Err(see_other(login)));
    };
    let now = state.clock.now();
    let auth_at: i64 = session.get(sess::KEY_AUTH_AT).await?.unwrap_or(0);
    let account = accounts::load(&state.db, &UserId::from_db(id), now)
        .await?
        .filter(|a| {
            a.kind == kind && !a.disabled && !a.must_reset && auth_at > a.sessions_revoked_before
        });
    match account {
        Some(a) if tokens_still_valid(state, session, &a.id).await? => Ok(Ok(a)),
        _ => {
            session.flush().await?;
            Ok(Err(see_other(login)))
        }
    }
}

/// With a provider that issues tokens (Cognito), refreshes them when due; false once the provider
/// refuses (global sign-out, disabled user): the caller ends the session.
pub(super) async fn tokens_still_valid(
    state: &AppState,
    session: &Session,
    user: &UserId,
) -> Result<bool> {
    let now = state.clock.now();
    if let Some(tokens) = load_tokens(state, session, user).await? {
        if now >= tokens.expires_at - 60 {
            match state.identity.refresh(&tokens, now).await {
                Ok(fresh) => store_tokens(state, session, user, &fresh).await?,
                Err(IdentityError::Unavailable(e)) => return Err(AppError::Unavailable(e)),
                Err(_) => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Cognito tokens live in the server-side session, encrypted under the platform's keys and
/// bound to the account, so a copy of the sessions table holds no usable refresh token.
pub(super) async fn store_tokens(
    state: &AppState,
    session: &Session,
    user: &UserId,
    tokens: &crate::cognito::Tokens,
) -> Result<()> {
    use base64::Engine;
    let json = serde_json::to_vec(tokens).map_err(|e| AppError::Internal(e.into()))?;
    let aad = FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "cognito_tokens",
        row: user.as_str(),
    };
    let ct = state.crypto.encrypt(aad, &json).await?;
    session
        .insert(
            sess::KEY_TOKENS,
            base64::engine::general_purpose::STANDARD.encode(ct),
        )
        .await?;
    Ok(())
}

async fn load_tokens(
    state: &AppState,
    session: &Session,
    user: &UserId,
) -> Result<Option<crate::cognito::Tokens>> {
    use base64::Engine;
    let Some(b64) = session.get::<String>(sess::KEY_TOKENS).await? else {
        return Ok(None);
    };
    let ct = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| AppError::Internal(e.into()))?;
    let aad = FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "cognito_tokens",
        row: user.as_str(),
    };
    let json = state.crypto.decrypt(aad, &ct).await?;
    Ok(Some(
        serde_json::from_slice(&json).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

/// A signed-in staff member's form post: the synchronizer token, then the session.
async fn staff_post(
    state: &AppState,
    session: &Session,
    csrf: &str,
) -> Result<std::result::Result<Account, Response>> {
    if !sess::csrf_ok(session, csrf).await? {
        return Err(AppError::Forbidden);
    }
    signed_in(state, session).await
}

impl From<IdentityError> for AppError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Unavailable(m) => AppError::Unavailable(m),
            IdentityError::Account(a) => a.into(),
            IdentityError::Unsupported => AppError::NotFound,
            e => AppError::Internal(e.into()),
        }
    }
}

/// Where a staff sign-in step leads: the next step's page, or signed in.
async fn staff_step(
    state: &AppState,
    ctx: &RequestContext,
    session: &Session,
    step: Step,
) -> Result<Response> {
    let now = state.clock.now();
    match step {
        Step::SecondFactor(p) => {
            session.insert(sess::KEY_CHALLENGE, p).await?;
            Ok(see_other("/staff/mfa"))
        }
        Step::NewPassword(p) => {
            session.insert(sess::KEY_CHALLENGE, p).await?;
            Ok(see_other("/staff/new-password"))
        }
        Step::Done { user, mfa, tokens } => {
            session.remove::<Pending>(sess::KEY_CHALLENGE).await?;
            // Privilege changes: new session id.
            session.cycle_id().await?;
            session.insert(sess::KEY_USER, user.as_str()).await?;
            session.insert(sess::KEY_AUTH_AT, now).await?;
            session.insert(sess::KEY_MFA, mfa).await?;
            if let Some(t) = tokens {
                store_tokens(state, session, &user, &t).await?;
            }
            audit_user(state, ctx, Some(&user), "staff.signin", Outcome::Success).await?;
            Ok(see_other("/staff"))
        }
    }
}

/// A sign-in that must start again from the password (account disabled or reset meanwhile,
/// a spent provider challenge, a forced reset pending).
async fn start_again(
    state: &AppState,
    ctx: &RequestContext,
    session: &Session,
    reset: bool,
) -> Result<Response> {
    audit_user(state, ctx, None, "staff.signin", Outcome::Denied).await?;
    session.flush().await?;
    Ok(see_other(if reset {
        "/staff/login?reset=1"
    } else {
        "/staff/login"
    }))
}

pub async fn login_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    let mut vm = StaffLoginVm {
        csrf: sess::csrf_token(&session).await?,
        can_reset: state.identity.offers_reset(),
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(&session).await? {
        match f.key.as_str() {
            "staff-reset-done" => vm.notice = Some(tr().t(&f.key)),
            _ => vm.failure = Some(tr().t(&f.key)),
        }
    }
    Ok(Html(pages::login(meta(), vm)).into_response())
}

/// Only where the provider mails reset codes (Cognito); local staff are reset by an
/// administrator (`users reset`, a new set-up link).
fn resets_offered(state: &AppState) -> Result<()> {
    if state.identity.offers_reset() {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

pub async fn forgot_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    resets_offered(&state)?;
    let vm = StaffResetVm {
        csrf: sess::csrf_token(&session).await?,
        ..Default::default()
    };
    Ok(Html(pages::forgot(meta(), vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Asks Cognito to email a reset code. The answer is the same whether or not the account
/// exists; requests count against the sign-in limits so this cannot be used to flood inboxes.
pub async fn forgot_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<ForgotForm>,
) -> Result<Response> {
    resets_offered(&state)?;
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let email = accounts::normalize_email(&form.email);
    if !accounts::valid_email(&email) {
        return Ok(see_other("/staff/forgot"));
    }
    let now = state.clock.now();
    if let Err(retry_after_secs) =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await?
    {
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    state.identity.forgot_password(&email).await?;
    audit_user(
        &state,
        &ctx,
        None,
        "staff.password.forgot",
        Outcome::Success,
    )
    .await?;
    sess::restart(&session, now).await?;
    session.insert(sess::KEY_RESET_EMAIL, email).await?;
    Ok(see_other("/staff/reset"))
}

pub async fn reset_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    resets_offered(&state)?;
    let Some(email) = session.get::<String>(sess::KEY_RESET_EMAIL).await? else {
        return Ok(see_other("/staff/forgot"));
    };
    let vm = StaffResetVm {
        csrf: sess::csrf_token(&session).await?,
        email,
        failure: sess::take_flash(&session).await?.map(|f| tr().t(&f.key)),
    };
    Ok(Html(pages::reset(meta(), vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

/// Sets the new password at Cognito with the emailed code; that proof also clears the portal's
/// own must-reset flag (set by `users reset`), found by the user's `sub`, never by email.
pub async fn reset_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<ResetForm>,
) -> Result<Response> {
    resets_offered(&state)?;
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(email) = session.get::<String>(sess::KEY_RESET_EMAIL).await? else {
        return Ok(see_other("/staff/forgot"));
    };
    if let Some((_, key)) = super::account::password_errors(&form.password, &form.password_confirm)
    {
        sess::set_flash(
            &session,
            Flash {
                key: key.into(),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/staff/reset"));
    }
    let now = state.clock.now();
    let attempt =
        match accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await? {
            Ok(a) => a,
            Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
        };
    match state
        .identity
        .reset_password(&email, &form.code, &form.password, now)
        .await
    {
        Ok(()) => {}
        Err(IdentityError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            return Err(AppError::Unavailable(m));
        }
        Err(_) => {
            sess::notice(&session, "staff-reset-failed").await?;
            return Ok(see_other("/staff/reset"));
        }
    }
    accounts::release_attempt(&state.db, attempt).await?;
    audit_user(&state, &ctx, None, "staff.password.reset", Outcome::Success).await?;
    sess::restart(&session, now).await?;
    sess::notice(&session, "staff-reset-done").await?;
    Ok(see_other("/staff/login"))
}

pub async fn login_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<super::account::SignInForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let now = state.clock.now();
    let email = accounts::normalize_email(&form.email);
    // Claimed before the password is checked, given back only when it was right.
    let attempt =
        match accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await? {
            Ok(a) => a,
            Err(retry_after_secs) => {
                return login_failed(
                    &state,
                    &ctx,
                    &session,
                    Err(AccountError::Throttled { retry_after_secs }),
                )
                .await
            }
        };
    match state
        .identity
        .sign_in(accounts::Kind::Staff, &email, Phi::new(form.password), now)
        .await
    {
        Ok(step) => {
            accounts::release_attempt(&state.db, attempt).await?;
            // New session id before anything is granted: a planted id is worth nothing.
            sess::restart(&session, now).await?;
            staff_step(&state, &ctx, &session, step).await
        }
        Err(IdentityError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            Err(AppError::Unavailable(m))
        }
        // The password was right but the portal wants a reset first (the attempt still counts).
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(IdentityError::Account(e)) => Err(e.into()),
        Err(_) => login_failed(&state, &ctx, &session, Err(AccountError::Invalid)).await,
    }
}

/// The answer to a refused first step: the same for every reason, or 429 when throttled.
async fn login_failed(
    state: &AppState,
    ctx: &RequestContext,
    session: &Session,
    result: std::result::Result<(), AccountError>,
) -> Result<Response> {
    match result {
        Ok(()) => Ok(see_other("/staff")),
        Err(AccountError::Invalid) => {
            audit_user(state, ctx, None, "staff.signin.password", Outcome::Denied).await?;
            sess::notice(session, "staff-login-failed").await?;
            Ok(see_other("/staff/login"))
        }
        Err(AccountError::Throttled { retry_after_secs }) => {
            let minutes = retry_after_secs.div_ceil(60).to_string();
            let vm = StaffLoginVm {
                csrf: sess::csrf_token(session).await?,
                failure: Some(tr().ta("staff-throttled", &[("minutes", &minutes)])),
                ..Default::default()
            };
            let mut res = (
                StatusCode::TOO_MANY_REQUESTS,
                Html(pages::login(meta(), vm)),
            )
                .into_response();
            if let Ok(v) = retry_after_secs.to_string().parse() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn mfa_form(session: Session) -> Result<Response> {
    pending_step_page(&session, pages::mfa).await
}

/// The page of a half-done sign-in's next step (code, or new password); to sign-in without one.
async fn pending_step_page(
    session: &Session,
    render: fn(PageMeta, StaffMfaVm) -> String,
) -> Result<Response> {
    if session.get::<Pending>(sess::KEY_CHALLENGE).await?.is_none() {
        return Ok(see_other("/staff/login"));
    }
    let failure = sess::take_flash(session).await?.map(|f| tr().t(&f.key));
    let vm = StaffMfaVm {
        csrf: sess::csrf_token(session).await?,
        failure,
    };
    Ok(Html(render(meta(), vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<CodeForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(pending) = session.get::<Pending>(sess::KEY_CHALLENGE).await? else {
        return Ok(see_other("/staff/login"));
    };
    let now = state.clock.now();
    // Claimed before the code is checked; wrong codes count toward the same limit as passwords.
    let Ok(attempt) =
        accounts::claim_attempt(&state.db, &state.crypto, &pending.email, &ctx.address, now)
            .await?
    else {
        // Too many wrong codes: this half-signed-in session ends; sign-in answers 429 for a while.
        session.flush().await?;
        return Ok(see_other("/staff/login"));
    };
    match state
        .identity
        .second_factor(&pending, &form.code, now)
        .await
    {
        Ok(step) => {
            accounts::release_attempt(&state.db, attempt).await?;
            staff_step(&state, &ctx, &session, step).await
        }
        Err(IdentityError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            Err(AppError::Unavailable(m))
        }
        Err(IdentityError::Refused) if pending.retry => {
            let user = pending.user.clone().map(UserId::from_db);
            audit_user(
                &state,
                &ctx,
                user.as_ref(),
                "staff.signin.mfa",
                Outcome::Denied,
            )
            .await?;
            sess::notice(&session, "staff-mfa-failed").await?;
            Ok(see_other("/staff/mfa"))
        }
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(IdentityError::Account(e)) => Err(e.into()),
        Err(_) => start_again(&state, &ctx, &session, false).await,
    }
}

/// Swaps the enrolment token in the link for a session, like a pay link.
pub async fn open_enrolment(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response> {
    sess::restart(&session, state.clock.now()).await?;
    session
        .insert(sess::KEY_ENROL, hex::encode(token_hash(&token)))
        .await?;
    Ok(see_other("/staff/enrol"))
}

async fn enrolment(state: &AppState, session: &Session) -> Result<Option<(Vec<u8>, UserId)>> {
    let Some(h) = session.get::<String>(sess::KEY_ENROL).await? else {
        return Ok(None);
    };
    let Ok(hash) = hex::decode(h) else {
        return Ok(None);
    };
    let user = accounts::enrolment_user(&state.db, &hash, state.clock.now()).await?;
    Ok(user.map(|u| (hash, u)))
}

fn qr_svg(url: &str) -> Result<String> {
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("qr: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

async fn render_enrol(
    state: &AppState,
    session: &Session,
    user: &UserId,
    failure: Option<String>,
    field_error: Option<FieldError>,
) -> Result<Response> {
    let setup = accounts::totp_setup(&state.db, &state.crypto, user).await?;
    let vm = StaffEnrolVm {
        csrf: sess::csrf_token(session).await?,
        qr_svg: qr_svg(&setup.otpauth_url)?,
        secret_base32: setup.secret_base32,
        failure,
        field_error: field_error.clone(),
    };
    let status = if field_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Html(pages::enrol(meta(), vm))).into_response())
}

pub async fn enrol_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    match enrolment(&state, &session).await? {
        Some((_, user)) => render_enrol(&state, &session, &user, None, None).await,
        None => Ok((StatusCode::NOT_FOUND, Html(pages::enrol_invalid(meta()))).into_response()),
    }
}

#[derive(serde::Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    code: String,
}

pub async fn enrol_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<EnrolForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some((hash, user)) = enrolment(&state, &session).await? else {
        return Ok((StatusCode::NOT_FOUND, Html(pages::enrol_invalid(meta()))).into_response());
    };
    let field = |field: &'static str, key: &str| {
        Some(FieldError {
            field,
            message: tr().t(key),
        })
    };
    if form.password != form.password_confirm {
        return render_enrol(
            &state,
            &session,
            &user,
            None,
            field("password", "staff-password-mismatch"),
        )
        .await;
    }
    // Rendered directly rather than redirected: a form with a password is never re-shown from a flash.
    match accounts::complete_enrolment(
        &state.db,
        &state.crypto,
        &hash,
        Phi::new(form.password),
        &form.code,
        state.clock.now(),
    )
    .await
    {
        Ok((user, codes)) => {
            session.flush().await?;
            audit_user(&state, &ctx, Some(&user), "staff.enrol", Outcome::Success).await?;
            Ok(Html(pages::recovery_codes(meta(), StaffRecoveryVm { codes })).into_response())
        }
        Err(AccountError::WeakPassword) => {
            render_enrol(
                &state,
                &session,
                &user,
                None,
                field("password", "staff-password-weak"),
            )
            .await
        }
        Err(AccountError::Invalid) => {
            render_enrol(
                &state,
                &session,
                &user,
                None,
                field("code", "staff-enrol-code-failed"),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn role_label(role: access::Role) -> String {
    tr().t(&format!("role-{}", role.as_str()))
}

/// Practices where this account may search patients, by the policy.
async fn searchable_tenants(
    state: &AppState,
    account: &Account,
) -> Result<Vec<crate::billing::Tenant>> {
    let mut out = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        let on = Resource {
            tenant: t,
            patient: None,
            clinical_restricted: false,
        };
        if access::decide(
            &account.principal,
            Action::SearchPatients,
            &on,
            state.clock.now(),
        )
        .allowed()
        {
            if let Some(tenant) = crate::billing::tenant(&state.db, t).await? {
                if !out
                    .iter()
                    .any(|x: &crate::billing::Tenant| x.id == tenant.id)
                {
                    out.push(tenant);
                }
            }
        }
    }
    Ok(out)
}

async fn home_vm(state: &AppState, session: &Session, account: &Account) -> Result<StaffHomeVm> {
    let mut roles = vec![];
    for g in &account.principal.grants {
        let practice = match &g.tenant {
            Some(t) => crate::billing::tenant(&state.db, t)
                .await?
                .map(|t| t.name)
                .unwrap_or_else(|| t.to_string()),
            None => tr().t("staff-all-practices"),
        };
        roles.push(tr().ta(
            "staff-role-line",
            &[("role", &role_label(g.role)), ("practice", &practice)],
        ));
    }
    let now = state.clock.now();
    let mut emergency = vec![];
    for g in account
        .principal
        .grants
        .iter()
        .filter(|g| g.expires_at.is_some())
    {
        let practice = match &g.tenant {
            Some(t) => crate::billing::tenant(&state.db, t)
                .await?
                .map(|t| t.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let until = g
            .expires_at
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(time::macros::format_description!("[hour]:[minute]"))
                    .ok()
            })
            .unwrap_or_default();
        emergency.push(tr().ta(
            "staff-bg-active",
            &[
                ("role", &role_label(g.role)),
                ("practice", &practice),
                ("until", &until),
            ],
        ));
    }
    // The form shows only to those the policy lets grant emergency access somewhere.
    let mut practices = vec![];
    let ids: Vec<(String, String)> =
        sqlx::query_as("SELECT id, name FROM tenants WHERE id <> $1 ORDER BY name")
            .bind(accounts::PLATFORM_TENANT)
            .fetch_all(state.db.pool())
            .await?;
    for (id, name) in ids {
        let t = TenantId::from_db(id.clone());
        let on = Resource {
            tenant: &t,
            patient: None,
            clinical_restricted: false,
        };
        if access::decide(&account.principal, Action::GrantBreakGlass, &on, now).allowed() {
            practices.push((id, name));
        }
    }
    Ok(StaffHomeVm {
        csrf: sess::csrf_token(session).await?,
        email: account.email(&state.crypto).await?.into_inner(),
        roles,
        can_search: !searchable_tenants(state, account).await?.is_empty(),
        results: None,
        notice: None,
        emergency,
        break_glass: (!practices.is_empty()).then_some(BreakGlassVm {
            practices,
            error: None,
        }),
        invite_link: None,
    })
}

pub async fn home(State(state): State<AppState>, session: Session) -> Result<Response> {
    let account = match signed_in(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let vm = home_vm(&state, &session, &account).await?;
    Ok(Html(pages::home(meta(), vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    dob: String,
    #[serde(default)]
    account: String,
}

/// Patient search by blind index. A POST, so no PHI ever sits in a URL; every match shown is an
/// audited view.
pub async fn search(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<SearchForm>,
) -> Result<Response> {
    let account = match staff_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let actor = ctx.actor(format!("user:{}", account.id));
    let tenants = searchable_tenants(&state, &account).await?;
    if tenants.is_empty() {
        audit::record(
            state.db.pool(),
            audit::Event {
                actor: &actor,
                tenant: None,
                patient: None,
                action: "patient.search",
                resource: None,
                outcome: Outcome::Denied,
            },
        )
        .await?;
        return Err(AppError::Forbidden);
    }
    let mut rows = vec![];
    for t in &tenants {
        let found: Vec<PatientId> = if !form.account.trim().is_empty() {
            crate::billing::find_by_account(&state.db, &state.crypto, &t.id, &form.account).await?
        } else if let Some(dob) = parse_iso(&form.dob) {
            crate::billing::find_by_name_dob(&state.db, &state.crypto, &t.id, &form.last_name, &dob)
                .await?
        } else {
            vec![]
        };
        audit::record(
            state.db.pool(),
            audit::Event {
                actor: &actor,
                tenant: Some(&t.id),
                patient: None,
                action: "patient.search",
                resource: None,
                outcome: Outcome::Success,
            },
        )
        .await?;
        for p in found {
            let name = patient_name(&state, &t.id, &p).await?;
            audit::record(
                state.db.pool(),
                audit::Event {
                    actor: &actor,
                    tenant: Some(&t.id),
                    patient: Some(&p),
                    action: "patient.search.result.view",
                    resource: Some(p.as_str()),
                    outcome: Outcome::Success,
                },
            )
            .await?;
            rows.push(patient_row(&state, &account, t, &p, name).await?);
        }
    }
    let mut vm = home_vm(&state, &session, &account).await?;
    vm.results = Some(rows);
    Ok(Html(pages::home(meta(), vm)).into_response())
}

/// One search result, with the guarantor actions the viewer's role allows on it.
async fn patient_row(
    state: &AppState,
    account: &Account,
    t: &crate::billing::Tenant,
    p: &PatientId,
    name: Phi<String>,
) -> Result<StaffPatientRow> {
    let now = state.clock.now();
    let on = Resource {
        tenant: &t.id,
        patient: Some(p),
        clinical_restricted: false,
    };
    let can_invite =
        access::decide(&account.principal, Action::InviteGuarantor, &on, now).allowed();
    let can_revoke =
        access::decide(&account.principal, Action::RevokeGuarantor, &on, now).allowed();
    let mut guarantors = vec![];
    let mut patient_account = None;
    if can_revoke {
        patient_account = crate::guarantors::patient_account(&state.db, &state.crypto, p)
            .await?
            .map(|g| GuarantorVm {
                grant_id: g.grant_id.to_string(),
                email: g.email.into_inner(),
                patient_name: String::new(),
                since: crate::clock::display_date_unix(g.since),
            });
    }
    if can_invite || can_revoke {
        for g in crate::guarantors::guarantors_of(&state.db, &state.crypto, p).await? {
            guarantors.push(GuarantorVm {
                grant_id: g.grant_id.to_string(),
                email: g.email.into_inner(),
                patient_name: String::new(),
                since: crate::clock::display_date_unix(g.since),
            });
        }
    }
    Ok(StaffPatientRow {
        name: name.into_inner(),
        practice: t.name.clone(),
        patient_id: p.to_string(),
        can_invite,
        can_revoke,
        guarantors,
        patient_account,
    })
}

#[derive(serde::Deserialize)]
pub struct GuarantorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    grant: String,
}

/// The practice invites a guarantor for a patient; the link is shown in this response only.
pub async fn invite_guarantor(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<GuarantorForm>,
) -> Result<Response> {
    let account = match staff_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let patient = PatientId::parse(&form.patient).ok_or(AppError::NotFound)?;
    let tenant: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM patients WHERE id = $1")
        .bind(patient.as_str())
        .fetch_optional(state.db.pool())
        .await?;
    let tenant = TenantId::from_db(tenant.ok_or(AppError::NotFound)?);
    let now = state.clock.now();
    let on = Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    let actor = ctx.actor(format!("user:{}", account.id));
    let allowed = access::decide(&account.principal, Action::InviteGuarantor, &on, now).allowed();
    if !allowed {
        audit::record(
            state.db.pool(),
            audit::Event {
                actor: &actor,
                tenant: Some(&tenant),
                patient: Some(&patient),
                action: "guarantor.invite",
                resource: None,
                outcome: Outcome::Denied,
            },
        )
        .await?;
        // Another practice's patient looks like no patient at all.
        return Err(AppError::NotFound);
    }
    let (id, token) = crate::guarantors::invite(
        &state.db,
        &tenant,
        &patient,
        &format!("user:{}", account.id),
        now,
    )
    .await?;
    audit::record(
        state.db.pool(),
        audit::Event {
            actor: &actor,
            tenant: Some(&tenant),
            patient: Some(&patient),
            action: "guarantor.invite",
            resource: Some(id.as_str()),
            outcome: Outcome::Success,
        },
    )
    .await?;
    let mut vm = home_vm(&state, &session, &account).await?;
    vm.invite_link = Some(format!("{}/g/{token}", state.public_url));
    vm.notice = Some(tr().t("staff-invite-created"));
    Ok(Html(pages::home(meta(), vm)).into_response())
}

/// The practice revokes a guarantor's access to one patient.
pub async fn revoke_guarantor(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<GuarantorForm>,
) -> Result<Response> {
    let account = match staff_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let (grant, tenant, patient) =
        super::account::guarantor_grant(&state, &form.grant, true).await?;
    let now = state.clock.now();
    let on = Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    if !access::decide(&account.principal, Action::RevokeGuarantor, &on, now).allowed() {
        return Err(AppError::NotFound);
    }
    let by = format!("user:{}", account.id);
    if crate::guarantors::revoke_grant(&state.db, grant, &patient, true, &by, now)
        .await?
        .is_some()
    {
        audit::record(
            state.db.pool(),
            audit::Event {
                actor: &ctx.actor(by.clone()),
                tenant: Some(&tenant),
                patient: Some(&patient),
                action: "guarantor.revoke",
                resource: Some(&grant.to_string()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    let mut vm = home_vm(&state, &session, &account).await?;
    vm.notice = Some(tr().t("staff-guarantor-revoked"));
    Ok(Html(pages::home(meta(), vm)).into_response())
}

fn parse_iso(s: &str) -> Option<String> {
    time::Date::parse(s.trim(), crate::links::ISO_DATE)
        .ok()
        .and_then(|d| d.format(crate::links::ISO_DATE).ok())
}

async fn patient_name(state: &AppState, tenant: &TenantId, p: &PatientId) -> Result<Phi<String>> {
    let (first, last): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT first_name_ct, last_name_ct FROM patients WHERE id = $1 AND tenant_id = $2",
    )
    .bind(p.as_str())
    .bind(tenant.as_str())
    .fetch_one(state.db.pool())
    .await?;
    let aad = |column| FieldAad {
        tenant,
        table: "patients",
        column,
        row: p.as_str(),
    };
    let first = state.crypto.decrypt_str(aad("first_name"), &first).await?;
    let last = state.crypto.decrypt_str(aad("last_name"), &last).await?;
    Ok(Phi::new(format!("{} {}", first.expose(), last.expose())))
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn signout(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let user = session
        .get::<String>(sess::KEY_USER)
        .await?
        .map(UserId::from_db);
    session.flush().await?;
    audit_user(
        &state,
        &ctx,
        user.as_ref(),
        "staff.signout",
        Outcome::Success,
    )
    .await?;
    Ok(see_other("/staff/login"))
}

pub async fn signout_everywhere(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Result<Response> {
    let account = match staff_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    accounts::revoke_sessions(&state.db, &account.id, state.clock.now()).await?;
    // Revokes the provider's refresh tokens too, so every other session fails its next refresh.
    state
        .identity
        .sign_out_everywhere(account.email(&state.crypto).await?.expose())
        .await?;
    session.flush().await?;
    audit_user(
        &state,
        &ctx,
        Some(&account.id),
        "staff.signout.everywhere",
        Outcome::Success,
    )
    .await?;
    Ok(see_other("/staff/login"))
}

#[derive(serde::Deserialize)]
pub struct BreakGlassForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    practice: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    reason: String,
}

/// Emergency access: a security officer grants themself a time-boxed role in one practice, with
/// a written reason. Audited, alerted, and gone by itself when it expires.
pub async fn break_glass(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<BreakGlassForm>,
) -> Result<Response> {
    let account = match staff_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let now = state.clock.now();
    let tenant = TenantId::parse(&form.practice).ok_or(AppError::BadRequest)?;
    let on = Resource {
        tenant: &tenant,
        patient: None,
        clinical_restricted: false,
    };
    let actor = ctx.actor(format!("user:{}", account.id));
    if !access::decide(&account.principal, Action::GrantBreakGlass, &on, now).allowed() {
        audit::record(
            state.db.pool(),
            audit::Event {
                actor: &actor,
                tenant: Some(&tenant),
                patient: None,
                action: "breakglass.grant",
                resource: None,
                outcome: Outcome::Denied,
            },
        )
        .await?;
        return Err(AppError::Forbidden);
    }
    let role = access::Role::parse(&form.role);
    let minutes = form.minutes.trim().parse::<i64>().ok();
    let granted = match (role, minutes) {
        (Some(role), Some(minutes)) => accounts::grant_break_glass(
            &state.db,
            &account.id,
            role,
            &tenant,
            minutes,
            &form.reason,
            now,
        )
        .await
        .map(|e| (role, e)),
        _ => Err(AccountError::Bad("incomplete")),
    };
    let mut vm = home_vm(&state, &session, &account).await?;
    match granted {
        Ok((role, expires)) => {
            audit::record(
                state.db.pool(),
                audit::Event {
                    actor: &actor,
                    tenant: Some(&tenant),
                    patient: None,
                    action: "breakglass.grant",
                    resource: Some(role.as_str()),
                    outcome: Outcome::Success,
                },
            )
            .await?;
            // The written reason may name a patient: it stays in the grant row and the audit trail,
            // never in the log or the alert webhook.
            // A staff member's work address, not a patient's: the alert names who did it.
            let who = account.email(&state.crypto).await?;
            let detail = format!(
                "{} granted themself {} in {} until {} (unix); reason recorded with the grant",
                who.expose(),
                role.as_str(),
                tenant,
                expires
            );
            state
                .alerts
                .raise(&state.db, "break-glass", &detail, now)
                .await?;
            // Privilege changed: new session id.
            session.cycle_id().await?;
            let account = match signed_in(&state, &session).await? {
                Ok(a) => a,
                Err(r) => return Ok(r),
            };
            vm = home_vm(&state, &session, &account).await?;
            vm.notice = Some(tr().t("staff-bg-granted"));
        }
        Err(AccountError::Bad(_)) => {
            if let Some(bg) = vm.break_glass.as_mut() {
                bg.error = Some(tr().t("staff-bg-invalid"));
            }
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(pages::home(meta(), vm)),
            )
                .into_response());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Html(pages::home(meta(), vm)).into_response())
}

pub async fn new_password_form(session: Session) -> Result<Response> {
    pending_step_page(&session, pages::new_password).await
}

#[derive(serde::Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

/// Cognito's NEW_PASSWORD_REQUIRED challenge (first sign-in with a temporary password).
pub async fn new_password_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<NewPasswordForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(pending) = session.get::<Pending>(sess::KEY_CHALLENGE).await? else {
        return Ok(see_other("/staff/login"));
    };
    let n = form.password.chars().count();
    if form.password != form.password_confirm || !(8..=128).contains(&n) {
        let key = if form.password != form.password_confirm {
            "staff-password-mismatch"
        } else {
            "staff-password-weak"
        };
        sess::set_flash(
            &session,
            Flash {
                key: key.into(),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/staff/new-password"));
    }
    match state
        .identity
        .new_password(&pending, &form.password, state.clock.now())
        .await
    {
        Ok(step) => staff_step(&state, &ctx, &session, step).await,
        Err(IdentityError::Unavailable(m)) => Err(AppError::Unavailable(m)),
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(_) => start_again(&state, &ctx, &session, false).await,
    }
}
