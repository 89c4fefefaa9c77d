//! An adult patient's own guarantors: inviting one (the link emailed to the invitee through the
//! outbox, never shown), revoking a grant or a pending invitation.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, Member};
use super::household::home_vm;
use super::invitation::invitation_letter;
use super::member::*;
use super::session::Sess;
use super::{see_other, tr, AppState, RequestContext, Routes};
use crate::access::{Action, Role};
use crate::accounts::Account;
use crate::audit::{self, Outcome};
use crate::guarantors;
use crate::ids::{InvitationId, PatientId, TenantId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account as pages;
use patriotpay_app::forms::{InviteForm, RevokeGrantForm, RevokeInvitationForm};
use patriotpay_app::Url;

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .phi_form(Url::AccountGuarantorInvite, invite)
        .form(Url::AccountGuarantorRevoke, revoke_guarantor)
        .form(Url::AccountInvitationRevoke, revoke_invitation)
}

/// An adult patient invites a guarantor for their own record: the invitation and its email are
/// one transaction; the page says where it went (masked) and never shows the link.
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
        let actor = actor_id(&who.id);
        return Err(unseen(&state, &ctx, actor, "patient.not_found", &form.patient).await);
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
    let Some(letter) = invitation_letter(&state, &tenant, &form.email, ctx.now).await? else {
        let mut vm = home_vm(&state, &ctx, &session, &who).await?;
        vm.invite_error = Some(tr().t("invite-email-invalid"));
        let page = pages::home(meta(&session).await?, vm);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response());
    };
    let (_allowed, mut tx) = match member_permit_in(
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
    .await
    {
        Ok(p) => p,
        Err(AppError::NotFound) => return Err(AppError::Forbidden),
        Err(e) => return Err(e),
    };
    guarantors::invite_by_email(
        &mut tx,
        letter,
        &tenant,
        &patient,
        &actor_id(&who.id),
        ctx.now,
    )
    .await?;
    tx.commit().await?;
    let mut vm = home_vm(&state, &ctx, &session, &who).await?;
    vm.notice = Some(invite_sent(&crate::accounts::normalize_email(&form.email)));
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

/// "Invitation emailed to a•••@example.org …": where it went, masked.
pub(crate) fn invite_sent(email: &str) -> String {
    tr().ta(
        "invite-sent",
        &[("email", &crate::accounts::masked_email(email))],
    )
}

/// The member may manage the guarantors of this (adult) patient: the transaction the permit's
/// event was written in, for the change to commit with; 404 when not theirs, 403 for a minor's
/// (the practice's to change; the refusal is recorded).
async fn may_manage(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    tenant: &TenantId,
    patient: &PatientId,
    event: &'static str,
    resource: &str,
) -> Result<crate::db::WriteTx> {
    let (_allowed, tx) = member_permit_in(
        state,
        ctx,
        who,
        MemberAsk {
            action: Action::RevokeGuarantor,
            tenant,
            patient,
            event,
            resource: Some(resource),
        },
    )
    .await?;
    if !adult(state, tenant, patient, ctx.now).await? {
        tx.commit().await?;
        return Err(AppError::Forbidden);
    }
    Ok(tx)
}

pub async fn revoke_guarantor(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<RevokeGrantForm>,
) -> Result<Response> {
    let grant: i64 = form.grant.trim().parse().map_err(|_| AppError::NotFound)?;
    let Some((tenant, patient)) = guarantors::grant_subject(&state.db, grant, false).await? else {
        let actor = actor_id(&who.id);
        return Err(unseen(&state, &ctx, actor, "grant.not_found", &grant.to_string()).await);
    };
    let grant_ref = grant.to_string();
    let mut tx = may_manage(
        &state,
        &ctx,
        &who,
        &tenant,
        &patient,
        "guarantor.revoke.ask",
        &grant_ref,
    )
    .await?;
    let by = actor_id(&who.id);
    if guarantors::revoke_grant(&mut *tx, grant, &patient, false, &by, ctx.now)
        .await?
        .is_some()
    {
        record_change(
            &mut tx,
            &ctx,
            &by,
            (&tenant, &patient),
            "guarantor.revoke",
            &grant_ref,
        )
        .await?;
    }
    tx.commit().await?;
    session.notice("account-guarantor-revoked").await?;
    Ok(see_other(Url::Account))
}

/// The event of a change that happened, in the change's transaction.
async fn record_change(
    tx: &mut crate::db::WriteTx,
    ctx: &RequestContext,
    by: &str,
    (tenant, patient): (&TenantId, &PatientId),
    action: &'static str,
    resource: &str,
) -> Result<()> {
    audit::record(
        &mut **tx,
        audit::Event {
            actor: &ctx.actor(by.to_owned()),
            tenant: Some(tenant),
            patient: Some(patient),
            action,
            resource: Some(resource),
            outcome: Outcome::Success,
        },
    )
    .await?;
    Ok(())
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<RevokeInvitationForm>,
) -> Result<Response> {
    let id = InvitationId::parse(&form.invitation).ok_or(AppError::NotFound)?;
    let Some(inv) = guarantors::find(&state.db, &id).await? else {
        let actor = actor_id(&who.id);
        return Err(unseen(&state, &ctx, actor, "invitation.not_found", id.as_str()).await);
    };
    let mut tx = may_manage(
        &state,
        &ctx,
        &who,
        &inv.tenant_id,
        &inv.patient_id,
        "guarantor.invitation.revoke.ask",
        id.as_str(),
    )
    .await?;
    if guarantors::revoke_invitation(&mut *tx, &id, &inv.patient_id, ctx.now).await? {
        record_change(
            &mut tx,
            &ctx,
            &actor_id(&who.id),
            (&inv.tenant_id, &inv.patient_id),
            "guarantor.invitation.revoke",
            id.as_str(),
        )
        .await?;
    }
    tx.commit().await?;
    session.notice("account-invitation-revoked").await?;
    Ok(see_other(Url::Account))
}
