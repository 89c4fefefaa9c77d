//! Accepting a guarantor invitation: the link is swapped for a session, the invitee answers the
//! dependant's identity questions (claimed before compared, locking after five wrong), then
//! creates an account or signs in to add the dependant to theirs.

use super::error::Result;
use super::extract::{CsrfForm, InviteArrival, MaybeMember, VerifiedInvitation};
use super::member::*;
use super::session::{Flash, InviteVisit, Sess};
use super::{see_other, switch, tr, AppState, RequestContext, Routes};
use crate::access::{self, Action, Grant, Principal, Resource, Role};
use crate::accounts::{self, AccountError};
use crate::audit::Outcome;
use crate::billing::{self, Answers};
use crate::guarantors::{self, Invitation};
use crate::links::{self, Claim, LinkState};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account as pages;
use patriotpay_app::forms::{InviteVerifyForm, NewAccountForm, OpenLinkForm};
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm::*;

/// The invitation email to the address typed on an invite form (member's or staff's), its link
/// on this portal, sealed before the caller's transaction (a first seal writes the platform's
/// data key); `None` when the address is not one.
pub(super) async fn invitation_letter(
    state: &AppState,
    tenant: &crate::ids::TenantId,
    typed: &str,
    now: i64,
) -> Result<Option<guarantors::InvitationEmail>> {
    let email = accounts::normalize_email(typed);
    if !accounts::valid_email(&email) {
        return Ok(None);
    }
    let letter = guarantors::prepare_email(
        &state.crypto,
        &practice_name(state, tenant).await?,
        &email,
        |token| format!("{}{}", state.public_url, Url::Invitation(token)),
        now,
    )
    .await?;
    Ok(Some(letter))
}

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::Invitation(ANY), open_invitation)
        .form(Url::Invitation(ANY), open_invitation_confirmed)
        .page(Url::GuarantorVerify, invite_verify_form)
        .form(Url::GuarantorVerify, invite_verify_submit)
        .phi_page(Url::GuarantorAccept, accept_form)
        .form(Url::GuarantorAccept, accept_submit)
}

fn invitation_actor(inv: &Invitation) -> String {
    format!("invitation:{}", inv.id)
}

async fn audit_invitation(
    state: &AppState,
    ctx: &RequestContext,
    inv: &Invitation,
    action: &'static str,
    outcome: Outcome,
) -> Result<()> {
    audit_event(
        state,
        ctx,
        invitation_actor(inv),
        (Some(&inv.tenant_id), Some(&inv.patient_id)),
        action,
        Some(inv.id.as_str()),
        outcome,
    )
    .await
}

/// The invitation was spent or withdrawn while the visitor filled in the form.
async fn invitation_gone(session: &Sess) -> Result<Response> {
    session
        .update(|d| {
            if let Some(i) = d.invitation.as_mut() {
                i.verified = false;
            }
        })
        .await?;
    session.notice("invite-gone").await?;
    Ok(see_other(Url::GuarantorVerify))
}

/// Swaps the invitation token for a fresh session and redirects to a URL without it; a
/// signed-in browser is asked first (`switch`).
pub async fn open_invitation(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
) -> Result<Response> {
    if let Some(ask) = switch::ask_before_replacing(&session, Url::Invitation(&token), true).await?
    {
        return Ok(ask);
    }
    take_invitation(&state, &ctx, &session, &token, false).await
}

/// From the page `open_invitation` showed a signed-in browser: continue as the signed-in member
/// (the invitation joins this session), or sign out here and open it.
pub async fn open_invitation_confirmed(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
    CsrfForm(form): CsrfForm<OpenLinkForm>,
) -> Result<Response> {
    let d = session.data().await?;
    let keep = form.keeps_session()
        && d.member.is_some()
        && d.staff.is_none()
        && d.pending_sign_in.is_none();
    take_invitation(&state, &ctx, &session, &token, keep).await
}

/// Puts the invitation on this session: a fresh one, or (`keep_member`) the signed-in member's
/// with a new id.
async fn take_invitation(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    token: &str,
    keep_member: bool,
) -> Result<Response> {
    if keep_member {
        session.cycle_id().await?;
    } else {
        session.restart(ctx.now).await?;
    }
    let inv = guarantors::find_by_token(&state.db, token).await?;
    session
        .update(|d| {
            d.invitation = Some(InviteVisit {
                invitation_id: inv.as_ref().map(|i| i.id.as_str().to_owned()),
                verified: false,
            })
        })
        .await?;
    if let Some(inv) = inv {
        let outcome = if inv.state(ctx.now) == LinkState::Usable {
            Outcome::Success
        } else {
            Outcome::Denied
        };
        audit_invitation(state, ctx, &inv, "guarantor.invitation.open", outcome).await?;
    }
    Ok(see_other(Url::GuarantorVerify))
}

pub async fn invite_verify_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visit: InviteArrival,
) -> Result<Response> {
    let live = visit
        .invitation
        .filter(|i| i.state(ctx.now) != LinkState::Dead);
    if let Some(i) = &live {
        if i.state(ctx.now) == LinkState::Locked {
            let t = billing::tenant(&state.db, &i.tenant_id).await?;
            return Ok(Html(pages::invite_locked(
                super::page_meta(),
                t.map(|t| t.support_phone),
            ))
            .into_response());
        }
        if visit.verified {
            return Ok(see_other(Url::GuarantorAccept));
        }
    }
    let mut vm = InviteVerifyVm {
        csrf: session.csrf_token().await?,
        // Neutral until both answers are given: no practice named (see `verify`).
        practice_name: None,
        ..Default::default()
    };
    let mut status = axum::http::StatusCode::OK;
    if let Some(f) = session.take_flash().await? {
        (vm.field_error, vm.failure) =
            f.placed(&["dob-month", InviteVerifyForm::ZIP], tr().t(&f.key));
        if f.key == "verify-rate-limited" {
            status = axum::http::StatusCode::TOO_MANY_REQUESTS;
        }
    }
    let meta = PageMeta {
        practice_name: vm.practice_name.clone(),
        ..super::page_meta()
    };
    Ok((status, Html(pages::invite_verify(meta, vm))).into_response())
}

async fn verify_flash(session: &Sess, flash: Flash) -> Result<Response> {
    session.set_flash(flash).await?;
    Ok(see_other(Url::GuarantorVerify))
}

/// The invitee answers the dependant's date of birth and ZIP. Attempts are claimed before they
/// are compared, exactly as on pay links, and five wrong answers lock the invitation.
pub async fn invite_verify_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visit: InviteArrival,
    CsrfForm(form): CsrfForm<InviteVerifyForm>,
) -> Result<Response> {
    let now = ctx.now;
    let inv = visit.invitation.filter(|i| i.state(now) != LinkState::Dead);
    if inv
        .as_ref()
        .is_some_and(|i| i.state(now) == LinkState::Locked)
    {
        return Ok(see_other(Url::GuarantorVerify));
    }
    let Some(dob) = links::parse_dob(&form.dob_month, &form.dob_day, &form.dob_year) else {
        return verify_flash(&session, Flash::on("dob-month", "verify-invalid-date")).await;
    };
    let Some(zip) = links::normalize_zip(&form.zip) else {
        return verify_flash(&session, Flash::on(InviteVerifyForm::ZIP, "zip-invalid")).await;
    };
    let subject = inv.as_ref().map(Invitation::subject);
    let attempt = match links::claim(&state.db, subject, &ctx.address, now).await? {
        Claim::Granted(a) => a,
        Claim::Locked => return Ok(see_other(Url::GuarantorVerify)),
        Claim::Throttled => {
            return verify_flash(&session, Flash::key("verify-rate-limited")).await;
        }
    };
    let given = Answers {
        dob: Some(&dob),
        zip: Some(&zip),
    };
    let whose = inv.as_ref().map(|i| (&i.tenant_id, &i.patient_id));
    let (matched, locked) = super::verify::answer(&state, attempt, whose, given, now).await?;
    if let Some(i) = &inv {
        let outcome = if matched {
            Outcome::Success
        } else {
            Outcome::Denied
        };
        audit_invitation(&state, &ctx, i, "guarantor.invitation.verify", outcome).await?;
        if locked {
            audit_invitation(
                &state,
                &ctx,
                i,
                "guarantor.invitation.locked",
                Outcome::Denied,
            )
            .await?;
        }
    }
    if !matched {
        return verify_flash(&session, Flash::key("invite-verify-failed")).await;
    }
    session.cycle_id().await?;
    session
        .update(|d| {
            if let Some(i) = d.invitation.as_mut() {
                i.verified = true;
            }
        })
        .await?;
    Ok(see_other(Url::GuarantorAccept))
}

/// The page names the dependant: a view of their record, by whoever holds the verified
/// invitation, which the policy sees as a guarantor-to-be of that one patient.
async fn invitation_permit(
    state: &AppState,
    ctx: &RequestContext,
    inv: &Invitation,
) -> Result<access::Permit> {
    let who = Principal {
        user: invitation_actor(inv),
        grants: vec![Grant {
            role: Role::Guarantor,
            tenant: Some(inv.tenant_id.clone()),
            patients: [inv.patient_id.clone()].into(),
            expires_at: Some(inv.expires_at),
        }],
        mfa: false,
        impersonating: false,
        acting_on_behalf: false,
        link_holder: false,
    };
    Ok(access::permit_view(
        &state.audit,
        access::Ask {
            who: &who,
            actor: &ctx.actor(invitation_actor(inv)),
            action: Action::ViewBalance,
            on: Resource {
                tenant: &inv.tenant_id,
                patient: Some(&inv.patient_id),
                clinical_restricted: false,
            },
            event: "guarantor.invitation.view",
            resource: Some(inv.id.as_str()),
            now: ctx.now,
        },
    )
    .await?)
}

pub async fn accept_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    VerifiedInvitation(inv): VerifiedInvitation,
    MaybeMember(member): MaybeMember,
) -> Result<Response> {
    let permit = invitation_permit(&state, &ctx, &inv).await?;
    let signed_in = match member {
        Some(a) => Some(a.email(&state.crypto).await?.into_inner()),
        None => None,
    };
    let vm = InviteAcceptVm {
        csrf: session.csrf_token().await?,
        practice_name: practice_name(&state, &inv.tenant_id).await?,
        patient_name: billing::first_name(&state.db, &state.crypto, &permit)
            .await?
            .into_inner(),
        signed_in_email: signed_in,
        form: account_form(&session, Url::GuarantorAccept).await?,
    };
    Ok(Html(pages::invite_accept(meta(&session).await?, vm)).into_response())
}

async fn forget_invitation(session: &Sess) -> Result<()> {
    session.update(|d| d.invitation = None).await?;
    Ok(())
}

pub async fn accept_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    VerifiedInvitation(inv): VerifiedInvitation,
    MaybeMember(member): MaybeMember,
    CsrfForm(form): CsrfForm<NewAccountForm>,
) -> Result<Response> {
    let now = ctx.now;
    if form.mode == NewAccountForm::MODE_EXISTING {
        let Some(who) = member else {
            return Ok(see_other(Url::SignIn));
        };
        match guarantors::accept_existing(&state.db, &inv, &who.id, now).await {
            Ok(()) => {}
            Err(AccountError::Gone) => return invitation_gone(&session).await,
            Err(e) => return Err(e.into()),
        }
        // An account that already existed gained a grant: its owner hears of it by email.
        let practice: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
            .bind(inv.tenant_id.as_str())
            .fetch_one(state.db.pool())
            .await?;
        accounts::notify_grant_added(
            &state.db,
            &state.crypto,
            &who.id,
            (&practice, &state.public_url),
            now,
        )
        .await?;
        session.cycle_id().await?;
        forget_invitation(&session).await?;
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&inv.tenant_id), Some(&inv.patient_id)),
            "guarantor.accept",
            Some(inv.id.as_str()),
            Outcome::Success,
        )
        .await?;
        // The notice names no one: flash messages live in the session record, not encrypted.
        session.notice("invite-accepted").await?;
        return Ok(see_other(Url::Account));
    }
    if !new_account_ok(&session, &form).await? {
        return Ok(see_other(Url::GuarantorAccept));
    }
    let new_account = accounts::NewAccount::prepare(&state.crypto, &form.email).await?;
    let credentials =
        match new_credentials(&state, &ctx, &new_account, &form.email, form.password).await {
            Ok(c) => c,
            Err(NotMade::Form(key)) => {
                return flash_password_policy(&session, key, Url::GuarantorAccept).await
            }
            Err(NotMade::Taken) => return answer_taken(&state, &session, &form.email, now).await,
            Err(NotMade::Error(e)) => return Err(e),
        };
    let accepted = guarantors::accept_new(
        &state.db,
        &inv,
        &new_account,
        &credentials.made,
        credentials.confirm.as_ref(),
        now,
    )
    .await;
    let user = match accepted {
        Ok(u) => u,
        Err(e @ (AccountError::Gone | AccountError::EmailTaken)) => {
            undo_sign_up(&state, &form.email, &credentials).await;
            if matches!(e, AccountError::Gone) {
                return invitation_gone(&session).await;
            }
            return answer_taken(&state, &session, &form.email, now).await;
        }
        Err(e) => return Err(e.into()),
    };
    audit_event(
        &state,
        &ctx,
        actor_id(&user),
        (Some(&inv.tenant_id), Some(&inv.patient_id)),
        "guarantor.accept",
        Some(inv.id.as_str()),
        Outcome::Success,
    )
    .await?;
    forget_invitation(&session).await?;
    after_creation(&state, &session, &form.email, &credentials, now).await
}
