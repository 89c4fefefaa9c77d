//! An adult patient's own guarantors: inviting one (the link shown once), revoking a grant or a
//! pending invitation.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, Member};
use super::household::home_vm;
use super::member::*;
use super::session::Sess;
use super::{see_other, AppState, RequestContext, Routes};
use crate::access::{Action, Refused, Role};
use crate::accounts::Account;
use crate::audit::Outcome;
use crate::guarantors;
use crate::ids::{InvitationId, PatientId, TenantId};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account as pages;

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .phi_form("/account/guarantors/invite", invite)
        .form("/account/guarantors/revoke", revoke_guarantor)
        .form("/account/invitations/revoke", revoke_invitation)
}

#[derive(serde::Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    patient: String,
}

/// An adult patient invites a guarantor for their own record; the link is shown once.
pub async fn invite(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response> {
    let patient = PatientId::parse(&form.patient).ok_or(AppError::NotFound)?;
    let Some((_, tenant, _)) = people(&who)
        .into_iter()
        .find(|(role, _, p)| *role == Role::Patient && *p == patient)
    else {
        return Err(AppError::NotFound);
    };
    // A minor's guarantors are the practice's to manage: refused (and audited) like a denial.
    if !adult(&state, &tenant, &patient, ctx.now).await? {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "guarantor.invite",
            None,
            Outcome::Denied,
        )
        .await?;
        return Err(AppError::Forbidden);
    }
    let asked = member_permit(
        &state,
        &ctx,
        &who,
        MemberAsk {
            action: Action::InviteGuarantor,
            tenant: &tenant,
            patient: &patient,
            event: "guarantor.invite",
            resource: None,
        },
    )
    .await;
    match asked {
        Ok(_) => {}
        Err(AppError::NotFound) => return Err(AppError::Forbidden),
        Err(e) => return Err(e),
    }
    let (id, token) =
        guarantors::invite(&state.db, &tenant, &patient, &actor_id(&who.id), ctx.now).await?;
    audit_event(
        &state,
        &ctx,
        actor_id(&who.id),
        (Some(&tenant), Some(&patient)),
        "guarantor.invitation.create",
        Some(id.as_str()),
        Outcome::Success,
    )
    .await?;
    // Shown in this response only: the token is never stored, not even in the session.
    let mut vm = home_vm(&state, &ctx, &session, &who).await?;
    vm.invite_link = Some(format!("{}/g/{token}", state.public_url));
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    grant: String,
    #[serde(default)]
    invitation: String,
}

/// The member may manage the guarantors of this (adult) patient: the permit for it, or 404
/// (not theirs) / 403 (a minor's, the practice's to change).
async fn may_manage(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    tenant: &TenantId,
    patient: &PatientId,
    event: &'static str,
    resource: &str,
) -> Result<()> {
    let asked = crate::access::permit(
        state.db.pool(),
        crate::access::Ask {
            who: &who.principal,
            actor: &ctx.actor(actor_id(&who.id)),
            action: Action::RevokeGuarantor,
            on: crate::access::Resource {
                tenant,
                patient: Some(patient),
                clinical_restricted: false,
            },
            event,
            resource: Some(resource),
            now: ctx.now,
        },
    )
    .await;
    match asked {
        Ok(_) => {}
        Err(Refused::Denied(_)) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    }
    if !adult(state, tenant, patient, ctx.now).await? {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

pub async fn revoke_guarantor(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response> {
    let grant: i64 = form.grant.trim().parse().map_err(|_| AppError::NotFound)?;
    let (tenant, patient) = guarantors::grant_subject(&state.db, grant, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let grant_ref = grant.to_string();
    may_manage(
        &state,
        &ctx,
        &who,
        &tenant,
        &patient,
        "guarantor.revoke.ask",
        &grant_ref,
    )
    .await?;
    if guarantors::revoke_grant(
        &state.db,
        grant,
        &patient,
        false,
        &actor_id(&who.id),
        ctx.now,
    )
    .await?
    .is_some()
    {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "guarantor.revoke",
            Some(&grant_ref),
            Outcome::Success,
        )
        .await?;
    }
    session.notice("account-guarantor-revoked").await?;
    Ok(see_other("/account"))
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response> {
    let id = InvitationId::parse(&form.invitation).ok_or(AppError::NotFound)?;
    let inv = guarantors::find(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    may_manage(
        &state,
        &ctx,
        &who,
        &inv.tenant_id,
        &inv.patient_id,
        "guarantor.invitation.revoke.ask",
        id.as_str(),
    )
    .await?;
    if guarantors::revoke_invitation(&state.db, &id, &inv.patient_id, ctx.now).await? {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&inv.tenant_id), Some(&inv.patient_id)),
            "guarantor.invitation.revoke",
            Some(id.as_str()),
            Outcome::Success,
        )
        .await?;
    }
    session.notice("account-invitation-revoked").await?;
    Ok(see_other("/account"))
}
