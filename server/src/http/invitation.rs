//! Accepting a guarantor invitation: the link is swapped for a session, the invitee answers the
//! dependant's identity questions (claimed before compared, locking after five wrong), then
//! creates an account or signs in to add the dependant to theirs.

use super::account::*;
use super::error::AppError;
use super::session::{self as sess, Flash};
use super::{AppState, RequestContext};
use crate::accounts::{self, AccountError};
use crate::audit::Outcome;
use crate::billing;
use crate::guarantors::{self, Invitation};
use crate::ids::InvitationId;
use crate::links::{self, LinkState};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use patriotpay_app::account as pages;
use patriotpay_app::vm::*;
use tower_sessions::Session;

/// The invitation was spent or withdrawn while the visitor filled in the form.
async fn invitation_gone(session: &Session) -> Result<Response> {
    session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
    sess::notice(session, "invite-gone").await?;
    Ok(see_other("/guarantor/verify"))
}

/// The visitor's invitation, re-read each request, and whether they answered its questions.
async fn invitation(
    state: &AppState,
    session: &Session,
) -> Result<Option<(Option<Invitation>, bool)>> {
    let id: Option<String> = session.get(sess::KEY_INVITE).await?;
    let dead: Option<bool> = session.get(sess::KEY_INVITE_DEAD).await?;
    let inv = match id {
        Some(id) => guarantors::find(&state.db, &InvitationId::from_db(id)).await?,
        None if dead == Some(true) => None,
        None => return Ok(None),
    };
    let verified = session.get::<bool>(sess::KEY_INVITE_VERIFIED).await? == Some(true);
    Ok(Some((inv, verified)))
}

/// Swaps the invitation token for a fresh session and redirects to a URL without it.
pub async fn open_invitation(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response> {
    sess::restart(&session, state.clock.now()).await?;
    match guarantors::find_by_token(&state.db, &token).await? {
        Some(inv) => {
            session.insert(sess::KEY_INVITE, inv.id.as_str()).await?;
            let outcome = if inv.state(state.clock.now()) == LinkState::Usable {
                Outcome::Success
            } else {
                Outcome::Denied
            };
            audit_event(
                &state,
                &ctx,
                format!("invitation:{}", inv.id),
                (Some(&inv.tenant_id), Some(&inv.patient_id)),
                "guarantor.invitation.open",
                Some(inv.id.as_str()),
                outcome,
            )
            .await?;
        }
        None => session.insert(sess::KEY_INVITE_DEAD, true).await?,
    }
    Ok(see_other("/guarantor/verify"))
}

pub async fn invite_verify_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response> {
    let Some((inv, verified)) = invitation(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = state.clock.now();
    let live = inv.filter(|i| i.state(now) != LinkState::Dead);
    if let Some(i) = &live {
        if i.state(now) == LinkState::Locked {
            let t = billing::tenant(&state.db, &i.tenant_id).await?;
            return Ok(Html(pages::invite_locked(
                PageMeta::default(),
                t.as_ref().map(|t| t.name.clone()),
                t.map(|t| t.support_phone),
            ))
            .into_response());
        }
        if verified {
            return Ok(see_other("/guarantor/accept"));
        }
    }
    let mut vm = InviteVerifyVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: match &live {
            Some(i) => Some(practice_name(&state, &i.tenant_id).await?),
            None => None,
        },
        ..Default::default()
    };
    let mut status = axum::http::StatusCode::OK;
    if let Some(f) = sess::take_flash(&session).await? {
        (vm.field_error, vm.failure) = f.placed(&["dob-month", "zip"], tr().t(&f.key));
        if f.key == "verify-rate-limited" {
            status = axum::http::StatusCode::TOO_MANY_REQUESTS;
        }
    }
    let meta = PageMeta {
        practice_name: vm.practice_name.clone(),
        ..Default::default()
    };
    Ok((status, Html(pages::invite_verify(meta, vm))).into_response())
}

#[derive(serde::Deserialize)]
pub struct InviteVerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dob_month: String,
    #[serde(default)]
    dob_day: String,
    #[serde(default)]
    dob_year: String,
    #[serde(default)]
    zip: String,
}

async fn verify_flash(session: &Session, key: &str, field: Option<&str>) -> Result<Response> {
    sess::set_flash(
        session,
        Flash {
            key: key.into(),
            field: field.map(Into::into),
            ..Default::default()
        },
    )
    .await?;
    Ok(see_other("/guarantor/verify"))
}

/// The invitee answers the dependant's date of birth and ZIP. Attempts are claimed before they
/// are compared, exactly as on pay links, and five wrong answers lock the invitation.
pub async fn invite_verify_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<InviteVerifyForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some((inv, _)) = invitation(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = state.clock.now();
    let inv = inv.filter(|i| i.state(now) != LinkState::Dead);
    if inv
        .as_ref()
        .is_some_and(|i| i.state(now) == LinkState::Locked)
    {
        return Ok(see_other("/guarantor/verify"));
    }
    let Some(dob) = links::parse_dob(&form.dob_month, &form.dob_day, &form.dob_year) else {
        return verify_flash(&session, "verify-invalid-date", Some("dob-month")).await;
    };
    let Some(zip) = links::normalize_zip(&form.zip) else {
        return verify_flash(&session, "zip-invalid", Some("zip")).await;
    };
    let subject = inv.as_ref().map(Invitation::subject);
    let attempt = match links::claim(&state.db, subject, &ctx.address, now).await? {
        links::Claim::Granted { attempt } => attempt,
        links::Claim::Locked => return Ok(see_other("/guarantor/verify")),
        links::Claim::Throttled => {
            return verify_flash(&session, "verify-rate-limited", None).await;
        }
    };
    let matched = match &inv {
        Some(i) => {
            match billing::identity_answers(&state.db, &state.crypto, &i.tenant_id, &i.patient_id)
                .await
            {
                Ok((dob_on_file, zip_on_file)) => {
                    let zip_on_file =
                        links::normalize_zip(zip_on_file.expose()).unwrap_or_default();
                    // Both compared, always, so timing doesn't say which was wrong.
                    let a = links::answers_match(&dob, dob_on_file.expose());
                    let b = links::answers_match(&zip, &zip_on_file);
                    a & b
                }
                Err(e) => {
                    links::settle(&state.db, subject, attempt, false, now).await?;
                    return Err(e.into());
                }
            }
        }
        None => false,
    };
    let locked = links::settle(&state.db, subject, attempt, !matched, now).await?;
    if let Some(i) = &inv {
        audit_event(
            &state,
            &ctx,
            format!("invitation:{}", i.id),
            (Some(&i.tenant_id), Some(&i.patient_id)),
            "guarantor.invitation.verify",
            Some(i.id.as_str()),
            if matched {
                Outcome::Success
            } else {
                Outcome::Denied
            },
        )
        .await?;
        if locked {
            audit_event(
                &state,
                &ctx,
                format!("invitation:{}", i.id),
                (Some(&i.tenant_id), Some(&i.patient_id)),
                "guarantor.invitation.locked",
                Some(i.id.as_str()),
                Outcome::Denied,
            )
            .await?;
        }
    }
    if !matched {
        return verify_flash(&session, "invite-verify-failed", None).await;
    }
    session.cycle_id().await?;
    session.insert(sess::KEY_INVITE_VERIFIED, true).await?;
    Ok(see_other("/guarantor/accept"))
}

/// A verified, still usable invitation, or where to send the visitor.
async fn verified_invitation(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<Invitation, Response>> {
    match invitation(state, session).await? {
        Some((Some(inv), true)) if inv.state(state.clock.now()) == LinkState::Usable => Ok(Ok(inv)),
        Some(_) => Ok(Err(see_other("/guarantor/verify"))),
        None => Ok(Err(see_other("/expired"))),
    }
}

pub async fn accept_form(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let inv = match verified_invitation(&state, &session).await? {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    // The page names the dependant: a view of their record.
    audit_event(
        &state,
        &ctx,
        format!("invitation:{}", inv.id),
        (Some(&inv.tenant_id), Some(&inv.patient_id)),
        "guarantor.invitation.view",
        Some(inv.id.as_str()),
        Outcome::Success,
    )
    .await?;
    let signed_in = match session.get::<String>(sess::KEY_MEMBER).await? {
        Some(_) => match member(&state, &session).await? {
            Ok(a) => Some(a.email(&state.crypto).await?.into_inner()),
            Err(r) => return Ok(r),
        },
        None => None,
    };
    let vm = InviteAcceptVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: practice_name(&state, &inv.tenant_id).await?,
        patient_name: billing::first_name(
            &state.db,
            &state.crypto,
            &inv.tenant_id,
            &inv.patient_id,
        )
        .await?
        .into_inner(),
        signed_in_email: signed_in,
        form: account_form(&session, "/guarantor/accept").await?,
    };
    Ok(Html(pages::invite_accept(meta(&session).await?, vm)).into_response())
}

pub async fn accept_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<NewAccountForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let inv = match verified_invitation(&state, &session).await? {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let now = state.clock.now();
    let user = if form.mode == "existing" {
        let who = match member(&state, &session).await? {
            Ok(a) => a,
            Err(r) => return Ok(r),
        };
        match guarantors::accept_existing(&state.db, &inv, &who.id, now).await {
            Ok(()) => {}
            Err(AccountError::Gone) => return invitation_gone(&session).await,
            Err(e) => return Err(e.into()),
        }
        session.cycle_id().await?;
        who.id
    } else {
        if !new_account_ok(&session, &form).await? {
            return Ok(see_other("/guarantor/accept"));
        }
        let new_account = accounts::NewAccount::prepare(&state.crypto, &form.email).await?;
        let (credentials, needs_code) =
            match new_credentials(&state, &ctx.address, &form.email, form.password).await? {
                Ok(c) => c,
                Err(key) => return flash_email_problem(&session, key, "/guarantor/accept").await,
            };
        let user = match guarantors::accept_new(&state.db, &inv, &new_account, &credentials, now)
            .await
        {
            Ok(u) => u,
            Err(e @ (AccountError::Gone | AccountError::EmailTaken)) => {
                undo_sign_up(&state, &form.email, &credentials).await;
                if matches!(e, AccountError::Gone) {
                    return invitation_gone(&session).await;
                }
                return flash_email_problem(&session, "account-email-taken", "/guarantor/accept")
                    .await;
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
        session.remove::<String>(sess::KEY_INVITE).await?;
        session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
        return after_creation(
            &state,
            &session,
            &user,
            &form.email,
            &credentials,
            needs_code,
            "invite-accepted",
        )
        .await;
    };
    session.remove::<String>(sess::KEY_INVITE).await?;
    session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
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
    // The notice names no one: flash messages live in the session record, which is not encrypted.
    sess::notice(&session, "invite-accepted").await?;
    Ok(see_other("/account"))
}
