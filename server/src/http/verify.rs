//! The identity check on a pay link: the link is swapped for a session, then the date of birth
//! and the ZIP, each attempt claimed before it is compared, locking after five wrong answers.

use super::error::Result;
use super::extract::{CsrfForm, LinkArrival, LinkVisitor};
use super::patient::{link_actor, meta, practice_of};
use super::session::{AfterZip, Flash, LinkVisit, Sess, Stage};
use super::{see_other, switch, tr, AppState, RequestContext, Routes};
use crate::audit::{self, Outcome};
use crate::billing::{self, Answers};
use crate::ids::{PatientId, TenantId};
use crate::links::{self, Attempt, Claim, LinkState, PayLink, Subject};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{DobForm, Empty, ZipForm};
use patriotpay_app::pages;
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm::*;

/// The link and the two questions.
pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::PayLink(ANY), open_link)
        .form(Url::PayLink(ANY), open_link_confirmed)
        .page(Url::Verify, verify_form)
        .form(Url::Verify, verify_submit)
        .page(Url::VerifyZip, zip_form)
        .form(Url::VerifyZip, zip_submit)
}

/// An event about the link itself (opened, answered, locked): no PHI is read.
async fn audit_link(
    state: &AppState,
    ctx: &RequestContext,
    link: &PayLink,
    action: &'static str,
    outcome: Outcome,
) -> Result<()> {
    state
        .audit
        .record(audit::Event {
            actor: &ctx.actor(link_actor(link)),
            tenant: Some(&link.tenant_id),
            patient: Some(&link.patient_id),
            action,
            resource: Some(link.id.as_str()),
            outcome,
        })
        .await?;
    Ok(())
}

/// Swaps the token in the link for a fresh session and redirects to a URL without it; a
/// signed-in browser is asked first (`switch`).
pub async fn open_link(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
) -> Result<Response> {
    if let Some(ask) = switch::ask_before_replacing(&session, Url::PayLink(&token), false).await? {
        return Ok(ask);
    }
    take_link(&state, &ctx, &session, &token).await
}

/// "Sign out and open this link", from the page `open_link` showed a signed-in browser.
pub async fn open_link_confirmed(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    take_link(&state, &ctx, &session, &token).await
}

async fn take_link(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    token: &str,
) -> Result<Response> {
    session.restart(ctx.now).await?;
    let opening = links::open_by_token(&state.db, token).await?;
    session
        .update(|d| {
            d.link = Some(LinkVisit {
                link_id: opening.as_ref().map(|o| o.link.id.as_str().to_owned()),
                ..Default::default()
            })
        })
        .await?;
    if let Some(opening) = opening {
        if let Some(lang) = opening.language() {
            session.lang_from_link(lang).await?;
        }
        let link = &opening.link;
        let usable = link.state(ctx.now) == LinkState::Usable;
        // Only the first opening is written down; later ones are in the audit log.
        if usable && !opening.used_before() {
            links::mark_used(&state.db, &link.id, ctx.now).await?;
        }
        let outcome = if usable {
            Outcome::Success
        } else {
            Outcome::Denied
        };
        audit_link(state, ctx, link, "paylink.open", outcome).await?;
    }
    Ok(see_other(Url::Verify))
}

async fn render_locked(state: &AppState, session: &Sess, link: &PayLink) -> Result<Response> {
    // Before the identity check the practice is not named (its name can say what kind of care
    // the patient gets); the number it chose is enough to reach it.
    let t = practice_of(state, link).await?;
    let vm = LockedVm {
        practice_name: None,
        practice_phone: Some(t.support_phone),
    };
    Ok(Html(pages::locked(meta(session, None).await?, vm)).into_response())
}

pub async fn verify_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visit: LinkArrival,
) -> Result<Response> {
    let live = visit
        .link
        .as_ref()
        .filter(|l| l.state(ctx.now) != LinkState::Dead);
    if let Some(link) = live {
        if link.state(ctx.now) == LinkState::Locked {
            return render_locked(&state, &session, link).await;
        }
        if visit.stage.is_some() {
            return Ok(see_other(Url::Summary));
        }
    }
    // Neutral until the date of birth is accepted: a live link's page names no practice, so
    // it looks exactly like an expired, revoked or unknown link's.
    let practice: Option<String> = None;
    let mut vm = VerifyDobVm {
        practice_name: practice.clone(),
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    let mut status = StatusCode::OK;
    if let Some(f) = session.take_flash().await? {
        (vm.field_error, vm.failure) = f.placed(&["dob-month"], tr().t(&f.key));
        if f.key == "verify-rate-limited" {
            status = StatusCode::TOO_MANY_REQUESTS;
        }
    }
    Ok((
        status,
        Html(pages::verify_dob(meta(&session, practice).await?, vm)),
    )
        .into_response())
}

pub async fn verify_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visit: LinkArrival,
    CsrfForm(form): CsrfForm<DobForm>,
) -> Result<Response> {
    let now = ctx.now;
    let link = visit.link.filter(|l| l.state(now) != LinkState::Dead);
    if link
        .as_ref()
        .is_some_and(|l| l.state(now) == LinkState::Locked)
    {
        return Ok(see_other(Url::Verify));
    }
    // A date that doesn't exist is a typo, not a wrong answer: refused before anything counts.
    let Some(given) = links::parse_dob(&form.dob_month, &form.dob_day, &form.dob_year) else {
        session
            .set_flash(Flash::on("dob-month", "verify-invalid-date"))
            .await?;
        return Ok(see_other(Url::Verify));
    };
    let attempt = match links::claim(
        &state.db,
        link.as_ref().map(Subject::link),
        &ctx.address,
        now,
    )
    .await?
    {
        Claim::Granted(a) => a,
        Claim::Locked => return Ok(see_other(Url::Verify)),
        Claim::Throttled => {
            crate::observe::lockout("identity-check");
            session.notice("verify-rate-limited").await?;
            return Ok(see_other(Url::Verify));
        }
    };
    let given = Answers {
        dob: Some(&given),
        zip: None,
    };
    let whose = link.as_ref().map(|l| (&l.tenant_id, &l.patient_id));
    let (matched, locked) = answer(&state, attempt, whose, given, now).await?;
    let Some(link) = link.as_ref().filter(|_| matched) else {
        if let Some(link) = &link {
            audit_link(&state, &ctx, link, "identity.dob", Outcome::Denied).await?;
            if locked {
                audit_link(&state, &ctx, link, "paylink.locked", Outcome::Denied).await?;
            }
        }
        session.notice("verify-failed").await?;
        return Ok(see_other(Url::Verify));
    };
    // Privilege changes: new session id.
    session.cycle_id().await?;
    session
        .update(|d| {
            if let Some(v) = d.link.as_mut() {
                v.stage = Some(Stage::Dob);
            }
        })
        .await?;
    audit_link(&state, &ctx, link, "identity.dob", Outcome::Success).await?;
    Ok(see_other(Url::Summary))
}

pub async fn zip_form(
    State(state): State<AppState>,
    session: Sess,
    visitor: LinkVisitor,
) -> Result<Response> {
    if visitor.stage == Stage::Full {
        return Ok(see_other(Url::Statement));
    }
    let practice = practice_of(&state, &visitor.link).await?;
    let mut vm = VerifyZipVm {
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        (vm.field_error, vm.failure) = f.placed(&[ZipForm::ZIP], tr().t(&f.key));
    }
    Ok(Html(pages::verify_zip(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

pub async fn zip_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    CsrfForm(form): CsrfForm<ZipForm>,
) -> Result<Response> {
    let Some(given) = links::normalize_zip(&form.zip) else {
        session
            .set_flash(Flash::on(ZipForm::ZIP, "zip-invalid"))
            .await?;
        return Ok(see_other(Url::VerifyZip));
    };
    let now = ctx.now;
    let attempt =
        match links::claim(&state.db, Some(Subject::link(&link)), &ctx.address, now).await? {
            Claim::Granted(a) => a,
            Claim::Locked => return Ok(see_other(Url::Verify)),
            Claim::Throttled => {
                crate::observe::lockout("identity-check");
                session.notice("verify-rate-limited").await?;
                return Ok(see_other(Url::VerifyZip));
            }
        };
    let given = Answers {
        dob: None,
        zip: Some(&given),
    };
    let whose = Some((&link.tenant_id, &link.patient_id));
    let (matched, locked) = answer(&state, attempt, whose, given, now).await?;
    if !matched {
        audit_link(&state, &ctx, &link, "identity.zip", Outcome::Denied).await?;
        if locked {
            audit_link(&state, &ctx, &link, "paylink.locked", Outcome::Denied).await?;
            return Ok(see_other(Url::Verify));
        }
        session.notice("zip-failed").await?;
        return Ok(see_other(Url::VerifyZip));
    }
    session.cycle_id().await?;
    let next = session
        .update(|d| {
            let v = d.link.get_or_insert_with(Default::default);
            v.stage = Some(Stage::Full);
            v.after_zip.take()
        })
        .await?;
    audit_link(&state, &ctx, &link, "identity.zip", Outcome::Success).await?;
    // Only our own known destinations; never a path from the request.
    let to = match next {
        Some(AfterZip::CreateAccount) => Url::AccountCreate,
        Some(AfterZip::ResetPassword) => Url::AccountForgot,
        None => Url::Statement,
    };
    Ok(see_other(to))
}

/// Compares the answers given about `whose` record (`None`: nothing valid was presented, so
/// the answer is wrong) and settles the claimed attempt: `(matched, locked)`. A wrong answer
/// about a practice's patient spends from the practice's hourly failure budget. When the record
/// cannot be read (the key provider is down) the attempt is given back: not the visitor's fault.
pub(super) async fn answer(
    state: &AppState,
    attempt: Attempt,
    whose: Option<(&TenantId, &PatientId)>,
    given: Answers<'_>,
    now: i64,
) -> Result<(bool, bool)> {
    let matched = match whose {
        Some((tenant, patient)) => {
            match billing::answers_match(&state.db, &state.crypto, tenant, patient, given).await {
                Ok(m) => m,
                Err(e) => {
                    attempt.give_back(&state.db, now).await?;
                    return Err(e.into());
                }
            }
        }
        None => false,
    };
    let locked = attempt.settle(&state.db, !matched, now).await?;
    if let Some((tenant, _)) = whose.filter(|_| !matched) {
        // Alert only: refusing the practice's checks would hand attackers a denial of service.
        links::spend_practice_budget(
            &state.db,
            &state.alerts,
            tenant,
            state.identity_failure_budget,
            now,
        )
        .await?;
    }
    Ok((matched, locked))
}
