//! Staff sign-in: password, then the second factor or the provider's new-password challenge;
//! the trusted-device cookie a full sign-in leaves; forgotten passwords (Cognito's emailed
//! code); sign-out here and on every device.

use super::{audit_user, meta};
use crate::accounts::{self, AccountError};
use crate::audit::Outcome;
use crate::http::error::{AppError, Result};
use crate::http::extract::{
    device_cookie, device_cookie_removal, CsrfForm, DeviceCookie, StaffSession,
};
use crate::http::forms::password_errors;
use crate::http::sealed::store_tokens;
use crate::http::session::{Flash, Sess, SignedIn};
use crate::http::{see_other, see_other_query, tr, AppState, RequestContext};
use crate::identity::{IdentityError, Step};
use crate::ids::UserId;
use crate::phi::Phi;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{CodeForm, Empty, ForgotForm, NewPasswordForm, ResetForm, SignInForm};
use patriotpay_app::staff as pages;
use patriotpay_app::vm::{PageMeta, StaffLoginVm, StaffMfaVm, StaffResetVm};
use patriotpay_app::Url;

/// Where a sign-in step leads: the next step's page, or signed in. A full sign-in (second
/// factor given) makes this browser a trusted device of the account, replacing the cookie it
/// presented.
async fn staff_step(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    device: &DeviceCookie,
    step: Step,
) -> Result<Response> {
    match step {
        Step::SecondFactor(p) => {
            session.update(|d| d.pending_sign_in = Some(p)).await?;
            Ok(see_other(Url::StaffMfa))
        }
        Step::NewPassword(p) => {
            session.update(|d| d.pending_sign_in = Some(p)).await?;
            Ok(see_other(Url::StaffNewPassword))
        }
        Step::Done { user, mfa, tokens } => {
            // Newer than any revocation, even one made this same second (a sign-out just now).
            let auth_at = accounts::sign_in_time(&state.db, &user, ctx.now).await?;
            // Privilege changes: new session id.
            session.cycle_id().await?;
            session
                .update(|d| {
                    d.pending_sign_in = None;
                    d.staff = Some(SignedIn {
                        user_id: user.as_str().to_owned(),
                        auth_at,
                        mfa,
                    });
                })
                .await?;
            if let Some(t) = tokens {
                store_tokens(state, session, &user, &t).await?;
            }
            audit_user(state, ctx, Some(&user), "staff.signin", Outcome::Success).await?;
            let mut res = see_other(Url::Staff);
            if mfa {
                let token =
                    accounts::trust_device(&state.db, &user, device.0.as_deref(), ctx.now).await?;
                set_cookie(&mut res, &device_cookie(state, &token));
            }
            Ok(res)
        }
    }
}

/// A sign-in that must start again from the password (account disabled or reset meanwhile,
/// a spent provider challenge, a forced reset pending).
async fn start_again(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    reset: bool,
) -> Result<Response> {
    audit_user(state, ctx, None, "staff.signin", Outcome::Denied).await?;
    session.end().await?;
    // `reset=1` marks a sign-in refused until a password reset (the page does not read it).
    Ok(if reset {
        see_other_query(Url::StaffLogin, "reset", "1")
    } else {
        see_other(Url::StaffLogin)
    })
}

pub async fn login_form(State(state): State<AppState>, session: Sess) -> Result<Response> {
    let mut vm = StaffLoginVm {
        csrf: session.csrf_token().await?,
        can_reset: state.identity.offers_reset(),
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        match f.key.as_str() {
            "staff-reset-done" => vm.notice = Some(tr().t(&f.key)),
            _ => vm.failure = Some(tr().t(&f.key)),
        }
    }
    Ok(Html(pages::login(meta(), vm)).into_response())
}

pub async fn login_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    device: DeviceCookie,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response> {
    let now = ctx.now;
    let email = accounts::normalize_email(&form.email);
    // Claimed before the password is checked, released only when it was right. This account's
    // trusted device skips its delay (not the per-address limit).
    let claimed = accounts::claim_attempt_from(
        &state.db,
        &state.crypto,
        &email,
        &ctx.address,
        device.0.as_deref(),
        now,
    )
    .await;
    let attempt = match claimed {
        Ok(a) => a,
        Err(AccountError::Throttled { retry_after_secs }) => {
            return throttled(&session, retry_after_secs, pages::login).await
        }
        Err(e) => return Err(e.into()),
    };
    match state
        .identity
        .sign_in(accounts::Kind::Staff, &email, Phi::new(form.password), now)
        .await
    {
        Ok(step) => {
            attempt.release(&state.db).await?;
            // New session id before anything is granted: a planted id is worth nothing.
            session.restart(now).await?;
            staff_step(&state, &ctx, &session, &device, step).await
        }
        Err(IdentityError::Unavailable(m)) => {
            attempt.release(&state.db).await?;
            Err(AppError::Unavailable(m))
        }
        // The password was right but the portal wants a reset first (the attempt still counts).
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(IdentityError::Account(e)) => Err(e.into()),
        // Unknown account, wrong password, unusable account: one answer for all.
        Err(_) => {
            audit_user(&state, &ctx, None, "staff.signin.password", Outcome::Denied).await?;
            session.notice("staff-login-failed").await?;
            Ok(see_other(Url::StaffLogin))
        }
    }
}

/// Over the sign-in limits: the step's own page (password or code), with 429 and `Retry-After`.
async fn throttled<V: ThrottledPage>(
    session: &Sess,
    retry_after_secs: u64,
    render: fn(PageMeta, V) -> String,
) -> Result<Response> {
    let minutes = retry_after_secs.div_ceil(60);
    let failure = if minutes <= 1 {
        tr().t("staff-throttled-minute")
    } else {
        tr().ta("staff-throttled", &[("minutes", &minutes.to_string())])
    };
    let vm = V::with(session.csrf_token().await?, failure);
    let mut res = (StatusCode::TOO_MANY_REQUESTS, Html(render(meta(), vm))).into_response();
    if let Ok(v) = retry_after_secs.to_string().parse() {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(res)
}

/// The view models of the pages a refused attempt is answered on.
trait ThrottledPage {
    fn with(csrf: String, failure: String) -> Self;
}

impl ThrottledPage for StaffLoginVm {
    fn with(csrf: String, failure: String) -> Self {
        StaffLoginVm {
            csrf,
            failure: Some(failure),
            ..Default::default()
        }
    }
}

impl ThrottledPage for StaffMfaVm {
    fn with(csrf: String, failure: String) -> Self {
        StaffMfaVm {
            csrf,
            failure: Some(failure),
        }
    }
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The page of a half-done sign-in's next step (code, or new password); to sign-in without one.
async fn pending_step_page(
    session: &Sess,
    render: fn(PageMeta, StaffMfaVm) -> String,
) -> Result<Response> {
    if session.data().await?.pending_sign_in.is_none() {
        return Ok(see_other(Url::StaffLogin));
    }
    let failure = session.take_flash().await?.map(|f| tr().t(&f.key));
    let vm = StaffMfaVm {
        csrf: session.csrf_token().await?,
        failure,
    };
    Ok(Html(render(meta(), vm)).into_response())
}

pub async fn mfa_form(session: Sess) -> Result<Response> {
    pending_step_page(&session, pages::mfa).await
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    device: DeviceCookie,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response> {
    let Some(pending) = session.data().await?.pending_sign_in else {
        return Ok(see_other(Url::StaffLogin));
    };
    let now = ctx.now;
    // Claimed before the code is checked; wrong codes count toward the same limits as
    // passwords, and the account's trusted device skips the same delay.
    let claimed = accounts::claim_attempt_from(
        &state.db,
        &state.crypto,
        &pending.email,
        &ctx.address,
        device.0.as_deref(),
        now,
    )
    .await;
    let attempt = match claimed {
        Ok(a) => a,
        // The delay is bounded, so the half-done sign-in is kept: the code page again, 429.
        Err(AccountError::Throttled { retry_after_secs }) => {
            return throttled(&session, retry_after_secs, pages::mfa).await
        }
        Err(e) => return Err(e.into()),
    };
    match state
        .identity
        .second_factor(&pending, &form.code, now)
        .await
    {
        Ok(step) => {
            attempt.release(&state.db).await?;
            staff_step(&state, &ctx, &session, &device, step).await
        }
        Err(IdentityError::Unavailable(m)) => {
            attempt.release(&state.db).await?;
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
            session.notice("staff-mfa-failed").await?;
            Ok(see_other(Url::StaffMfa))
        }
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(IdentityError::Account(e)) => Err(e.into()),
        Err(_) => start_again(&state, &ctx, &session, false).await,
    }
}

pub async fn new_password_form(session: Sess) -> Result<Response> {
    pending_step_page(&session, pages::new_password).await
}

/// Cognito's NEW_PASSWORD_REQUIRED challenge (first sign-in with a temporary password).
pub async fn new_password_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    device: DeviceCookie,
    CsrfForm(form): CsrfForm<NewPasswordForm>,
) -> Result<Response> {
    let Some(pending) = session.data().await?.pending_sign_in else {
        return Ok(see_other(Url::StaffLogin));
    };
    // This page has always named a mismatch before a weak password.
    let problem = if form.password != form.password_confirm {
        Some("staff-password-mismatch")
    } else {
        password_errors(&form.password, &form.password_confirm).map(|(_, key)| key)
    };
    if let Some(key) = problem {
        session.set_flash(Flash::key(key)).await?;
        return Ok(see_other(Url::StaffNewPassword));
    }
    match state
        .identity
        .new_password(&pending, &form.password, ctx.now)
        .await
    {
        Ok(step) => staff_step(&state, &ctx, &session, &device, step).await,
        Err(IdentityError::Unavailable(m)) => Err(AppError::Unavailable(m)),
        Err(IdentityError::ResetRequired) => start_again(&state, &ctx, &session, true).await,
        Err(_) => start_again(&state, &ctx, &session, false).await,
    }
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

pub async fn forgot_form(State(state): State<AppState>, session: Sess) -> Result<Response> {
    resets_offered(&state)?;
    let vm = StaffResetVm {
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    Ok(Html(pages::forgot(meta(), vm)).into_response())
}

/// Asks Cognito to email a reset code. The answer is the same whether or not the account
/// exists; requests count against the sign-in limits so this cannot be used to flood inboxes.
pub async fn forgot_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Result<Response> {
    resets_offered(&state)?;
    let email = accounts::normalize_email(&form.email);
    if !accounts::valid_email(&email) {
        return Ok(see_other(Url::StaffForgot));
    }
    let counted =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, ctx.now).await?;
    // Never released: every request counts, whatever comes of it.
    drop(counted);
    state.identity.forgot_password(&email).await?;
    audit_user(
        &state,
        &ctx,
        None,
        "staff.password.forgot",
        Outcome::Success,
    )
    .await?;
    session.restart(ctx.now).await?;
    session.update(|d| d.reset_email = Some(email)).await?;
    Ok(see_other(Url::StaffReset))
}

pub async fn reset_form(State(state): State<AppState>, session: Sess) -> Result<Response> {
    resets_offered(&state)?;
    let Some(email) = session.data().await?.reset_email else {
        return Ok(see_other(Url::StaffForgot));
    };
    let vm = StaffResetVm {
        csrf: session.csrf_token().await?,
        email,
        failure: session.take_flash().await?.map(|f| tr().t(&f.key)),
    };
    Ok(Html(pages::reset(meta(), vm)).into_response())
}

/// Sets the new password at Cognito with the emailed code; that proof also clears the portal's
/// own must-reset flag (set by `users reset`), found by the user's `sub`, never by email.
pub async fn reset_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Result<Response> {
    resets_offered(&state)?;
    let Some(email) = session.data().await?.reset_email else {
        return Ok(see_other(Url::StaffForgot));
    };
    if let Some((_, key)) = password_errors(&form.password, &form.password_confirm) {
        session.set_flash(Flash::key(key)).await?;
        return Ok(see_other(Url::StaffReset));
    }
    let now = ctx.now;
    let attempt =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await?;
    match state
        .identity
        .reset_password(&email, &form.code, &form.password, now)
        .await
    {
        Ok(()) => attempt.release(&state.db).await?,
        Err(IdentityError::Unavailable(m)) => {
            attempt.release(&state.db).await?;
            return Err(AppError::Unavailable(m));
        }
        // A wrong or spent code: the attempt stays counted.
        Err(_) => {
            session.notice("staff-reset-failed").await?;
            return Ok(see_other(Url::StaffReset));
        }
    }
    audit_user(&state, &ctx, None, "staff.password.reset", Outcome::Success).await?;
    session.restart(now).await?;
    session.notice("staff-reset-done").await?;
    Ok(see_other(Url::StaffLogin))
}

/// Signs this session out, signed in or not (nothing to check but the form's token). A
/// signed-in staff member's revoked-before time is set too: every session of the account
/// signed in until now ends, so no copy of this one, and no request in flight that saves it,
/// brings the sign-in back. The browser stays a trusted device.
pub async fn signout(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    let data = session.data().await?;
    // A view as a patient ends with the staff session that holds it.
    if let Some(seat) = &data.view_as {
        crate::http::view_as::end(&state, &ctx, &session, seat, "viewas.end").await?;
    }
    let user = data.staff.map(|s| UserId::from_db(s.user_id));
    if let Some(user) = &user {
        accounts::end_sessions_at_sign_out(&state.db, user, ctx.now).await?;
    }
    session.end().await?;
    audit_user(
        &state,
        &ctx,
        user.as_ref(),
        "staff.signout",
        Outcome::Success,
    )
    .await?;
    Ok(see_other(Url::StaffLogin))
}

pub async fn signout_everywhere(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(account): StaffSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    accounts::revoke_sessions(&state.db, &account.id, ctx.now).await?;
    // Revokes the provider's refresh tokens too, so every other session fails its next refresh.
    state
        .identity
        .sign_out_everywhere(account.email(&state.crypto).await?.expose())
        .await?;
    session.end().await?;
    audit_user(
        &state,
        &ctx,
        Some(&account.id),
        "staff.signout.everywhere",
        Outcome::Success,
    )
    .await?;
    // The account's trusted devices were forgotten with its sessions; this browser's cookie goes.
    let mut res = see_other(Url::StaffLogin);
    set_cookie(&mut res, &device_cookie_removal(&state));
    Ok(res)
}
