//! Emergency access: a security officer grants themself a time-boxed role in one practice with
//! a written reason. Audited, alerted, and gone by itself when it expires.

use super::home::{home_vm, render};
use super::{ask, forbidden};
use crate::access::{self, Action, Resource};
use crate::accounts::{self, Account};
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, StaffSession};
use crate::http::session::Sess;
use crate::http::{see_other, tr, AppState, RequestContext};
use crate::ids::TenantId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use patriotpay_app::forms::BreakGlassForm;
use patriotpay_app::Url;

/// The home page again with the form's error (422): nothing was granted or recorded.
async fn incomplete(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    account: &Account,
) -> Result<Response> {
    let mut vm = home_vm(state, ctx, session, account).await?;
    if let Some(bg) = vm.break_glass.as_mut() {
        bg.error = Some(tr().t("staff-bg-invalid"));
    }
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm))
}

/// Any signed-in staff member may post it: the permit refuses everyone but a security officer
/// of that practice with their second factor, and records the refusal.
pub async fn break_glass(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(account): StaffSession,
    CsrfForm(form): CsrfForm<BreakGlassForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(&form.practice).ok_or(AppError::BadRequest)?;
    let on = || Resource {
        tenant: &tenant,
        patient: None,
        clinical_restricted: false,
    };
    let event = "breakglass.grant";
    let Ok(request) = accounts::BreakGlassRequest::parse(&form.role, &form.minutes, &form.reason)
    else {
        // Whoever the page offers the form gets it back with its error; anyone else is refused
        // whatever they typed, and the permit records that refusal.
        if access::decide(&account.principal, Action::GrantBreakGlass, &on(), ctx.now).allowed() {
            return incomplete(&state, &ctx, &session, &account).await;
        }
        let asked = ask(
            &state,
            &ctx,
            &account,
            Action::GrantBreakGlass,
            on(),
            event,
            None,
        );
        return Err(match asked.await {
            Err(refused) => forbidden(refused),
            // The same question was just refused; nothing is granted either way.
            Ok(_) => AppError::Forbidden,
        });
    };
    let permit = ask(
        &state,
        &ctx,
        &account,
        Action::GrantBreakGlass,
        on(),
        event,
        Some(request.role.as_str()),
    )
    .await
    .map_err(forbidden)?;
    let role = request.role;
    let expires = accounts::grant_break_glass(
        &state.db,
        &state.crypto,
        &account.id,
        permit.tenant(),
        &request,
        ctx.now,
    )
    .await?;
    // The written reason may name a patient: it stays with the grant, encrypted, never in the
    // log or the alert. A staff member's work address is no patient's: the alert
    // names who did it.
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
        .raise(&state.db, Some(&tenant), "break-glass", &detail, ctx.now)
        .await?;
    // Privilege changed: new session id, and the page shows the account as it now is.
    session.cycle_id().await?;
    let mfa = account.principal.mfa;
    let Some(mut account) = accounts::load(&state.db, &account.id, ctx.now).await? else {
        session.end().await?;
        return Ok(see_other(Url::StaffLogin));
    };
    account.principal.mfa = mfa;
    let mut vm = home_vm(&state, &ctx, &session, &account).await?;
    vm.notice = Some(tr().t("staff-bg-granted"));
    Ok(render(StatusCode::OK, vm))
}
