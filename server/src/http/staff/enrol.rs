//! Staff enrolment from a one-time set-up link: the link is swapped for a session, then the
//! person sets a password, confirms TOTP and is shown ten recovery codes once.

use super::{audit_user, meta};
use crate::accounts::{self, AccountError};
use crate::audit::Outcome;
use crate::crypto::token_hash;
use crate::http::error::{AppError, Result};
use crate::http::extract::CsrfForm;
use crate::http::session::Sess;
use crate::http::{see_other, switch, tr, AppState, RequestContext};
use crate::ids::UserId;
use crate::phi::Phi;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{Empty, EnrolForm};
use patriotpay_app::staff as pages;
use patriotpay_app::vm::{FieldError, StaffEnrolVm, StaffRecoveryVm};
use patriotpay_app::Url;

/// Swaps the enrolment token in the link for a session, like a pay link; a signed-in browser
/// is asked first (`switch`), so no other site can drop a staff member into its own enrolment.
pub async fn open_enrolment(
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
) -> Result<Response> {
    if let Some(ask) =
        switch::ask_before_replacing(&session, Url::StaffEnrolLink(&token), false).await?
    {
        return Ok(ask);
    }
    take_enrolment(&ctx, &session, &token).await
}

/// "Sign out and open this link", from the page `open_enrolment` showed a signed-in browser.
pub async fn open_enrolment_confirmed(
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    take_enrolment(&ctx, &session, &token).await
}

async fn take_enrolment(ctx: &RequestContext, session: &Sess, token: &str) -> Result<Response> {
    session.restart(ctx.now).await?;
    session
        .update(|d| d.enrol_token_hash = Some(hex::encode(token_hash(token))))
        .await?;
    Ok(see_other(Url::StaffEnrol))
}

/// The token hash this session holds and its account, while the token is unused and unexpired.
async fn enrolment(
    state: &AppState,
    session: &Sess,
    now: i64,
) -> Result<Option<(Vec<u8>, UserId)>> {
    let Some(h) = session.data().await?.enrol_token_hash else {
        return Ok(None);
    };
    let Ok(hash) = hex::decode(h) else {
        return Ok(None);
    };
    let user = accounts::enrolment_user(&state.db, &hash, now).await?;
    Ok(user.map(|u| (hash, u)))
}

fn invalid_link() -> Response {
    (StatusCode::NOT_FOUND, Html(pages::enrol_invalid(meta()))).into_response()
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

/// The set-up page; with a field error it answers 422 (a form with a password is rendered
/// again directly, never carried in a flash).
async fn render_enrol(
    state: &AppState,
    session: &Sess,
    user: &UserId,
    field_error: Option<FieldError>,
) -> Result<Response> {
    let setup = accounts::totp_setup(&state.db, &state.crypto, user).await?;
    let status = if field_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let vm = StaffEnrolVm {
        csrf: session.csrf_token().await?,
        qr_svg: qr_svg(&setup.otpauth_url)?,
        secret_base32: setup.secret_base32,
        failure: None,
        field_error,
    };
    Ok((status, Html(pages::enrol(meta(), vm))).into_response())
}

pub async fn enrol_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
) -> Result<Response> {
    match enrolment(&state, &session, ctx.now).await? {
        Some((_, user)) => render_enrol(&state, &session, &user, None).await,
        None => Ok(invalid_link()),
    }
}

pub async fn enrol_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<EnrolForm>,
) -> Result<Response> {
    let Some((hash, user)) = enrolment(&state, &session, ctx.now).await? else {
        return Ok(invalid_link());
    };
    let field = |field: &'static str, key: &str| {
        Some(FieldError {
            field,
            message: tr().t(key),
        })
    };
    if form.password != form.password_confirm {
        let error = field(EnrolForm::PASSWORD, "staff-password-mismatch");
        return render_enrol(&state, &session, &user, error).await;
    }
    match accounts::complete_enrolment(
        &state.db,
        &state.crypto,
        &hash,
        Phi::new(form.password),
        &form.code,
        ctx.now,
    )
    .await
    {
        Ok((user, codes)) => {
            session.end().await?;
            // A new sign-in factor: the owner hears of it at the account's own address.
            accounts::notify_factor_added(
                &state.db,
                &state.crypto,
                &user,
                &state.public_url,
                ctx.now,
            )
            .await?;
            audit_user(&state, &ctx, Some(&user), "staff.enrol", Outcome::Success).await?;
            Ok(Html(pages::recovery_codes(meta(), StaffRecoveryVm { codes })).into_response())
        }
        Err(AccountError::WeakPassword) => {
            let error = field(EnrolForm::PASSWORD, "staff-password-weak");
            render_enrol(&state, &session, &user, error).await
        }
        Err(AccountError::Invalid) => {
            let error = field(EnrolForm::CODE, "staff-enrol-code-failed");
            render_enrol(&state, &session, &user, error).await
        }
        Err(e) => Err(e.into()),
    }
}
