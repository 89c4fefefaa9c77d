//! The practice's side of guarantors: inviting one for a patient (the link emailed to the invitee
//! through the outbox, never shown) and revoking a guarantor's, or the patient's own account's,
//! access to the patient.

use super::home::{home_vm, render};
use super::{actor_id, ask_in, GuarantorAdmins};
use crate::access::{Action, Resource};
use crate::guarantors;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, StaffSession, StaffWith};
use crate::http::member::unseen;
use crate::http::session::Sess;
use crate::http::sharing::invite_sent;
use crate::http::{tr, AppState, RequestContext};
use crate::ids::{PatientId, TenantId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use patriotpay_app::forms::{InviteForm, RevokeGrantForm};

/// The practice a patient belongs to, looked up by opaque id (nothing about them is read).
pub(super) async fn practice_of(state: &AppState, patient: &PatientId) -> Result<Option<TenantId>> {
    let tenant: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM patients WHERE id = $1")
        .bind(patient.as_str())
        .fetch_optional(state.db.pool())
        .await?;
    Ok(tenant.map(TenantId::from_db))
}

/// The practice invites a guarantor for a patient: the invitation and its email are one
/// transaction; the page says where it went (masked) and never shows the link. Any signed-in
/// staff member may post it: the permit refuses (and records the refusal), and another
/// practice's patient looks like no patient at all.
pub async fn invite(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(account): StaffSession,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response> {
    let patient = PatientId::parse(&form.patient).ok_or(AppError::NotFound)?;
    let Some(tenant) = practice_of(&state, &patient).await? else {
        let actor = actor_id(&account.id);
        return Err(unseen(&state, &ctx, actor, "patient.not_found", patient.as_str()).await);
    };
    let on = Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    let letter = crate::http::invitation::invitation_letter(&state, &tenant, &form.email, ctx.now);
    let Some(letter) = letter.await? else {
        let mut vm = home_vm(&state, &ctx, &session, &account).await?;
        vm.invite_error = Some(tr().t("invite-email-invalid"));
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm));
    };
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::InviteGuarantor,
        on,
        "guarantor.invite",
        None,
    )
    .await?;
    // The token is never stored, not even in the session: only the email carries it.
    guarantors::invite_by_email(
        &mut tx,
        letter,
        permit.tenant(),
        &patient,
        &actor_id(&account.id),
        ctx.now,
    )
    .await?;
    tx.commit().await?;
    let mut vm = home_vm(&state, &ctx, &session, &account).await?;
    vm.notice = Some(invite_sent(&crate::accounts::normalize_email(&form.email)));
    Ok(render(StatusCode::OK, vm))
}

/// The practice revokes a guarantor's access to one patient, or the patient's own account's.
/// Only practice admins get as far as asking (a refusal by role was never an audited event);
/// a grant in another practice, or none, is not found.
pub async fn revoke(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<RevokeGrantForm>,
) -> Result<Response> {
    let grant: i64 = form.grant.trim().parse().map_err(|_| AppError::NotFound)?;
    let Some((tenant, patient)) = guarantors::grant_subject(&state.db, grant, true).await? else {
        let actor = actor_id(&account.id);
        return Err(unseen(&state, &ctx, actor, "grant.not_found", &grant.to_string()).await);
    };
    let on = Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    let grant_ref = grant.to_string();
    // The event commits with the change; a grant revoked meanwhile changes nothing.
    let (_allowed, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::RevokeGuarantor,
        on,
        "guarantor.revoke",
        Some(&grant_ref),
    )
    .await?;
    guarantors::revoke_grant(
        &mut *tx,
        grant,
        &patient,
        true,
        &actor_id(&account.id),
        ctx.now,
    )
    .await?;
    tx.commit().await?;
    let mut vm = home_vm(&state, &ctx, &session, &account).await?;
    vm.notice = Some(tr().t("staff-guarantor-revoked"));
    Ok(render(StatusCode::OK, vm))
}
