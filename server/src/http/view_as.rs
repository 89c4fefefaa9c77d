//! View-as on the request path: the guard that ends a view when its 30 minutes are up or its
//! staff sign-in is gone, and otherwise marks the request (audit actor, banner); the one place a
//! change is refused while viewing; and the patient the page extractors act for.

use super::error::{AppError, Result};
use super::member::actor_id;
use super::session::{Sess, ViewAsSeat};
use super::{see_other, AppState, RequestContext};
use crate::accounts::{self, Account, Kind};
use crate::audit::{self, Outcome};
use crate::ids::{LinkId, PatientId, TenantId, UserId};
use crate::links::{self, PayLink};
use axum::extract::{MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::vm::{NoticeKind, ViewAsBannerVm, ViewAsConsent};
use patriotpay_app::Url;

tokio::task_local! {
    /// The banner of the view-as session the current request runs under.
    static BANNER: Option<ViewAsBannerVm>;
}

/// The banner for the page being built, when the request runs under view-as.
pub fn banner() -> Option<ViewAsBannerVm> {
    BANNER.try_with(|b| b.clone()).ok().flatten()
}

/// Form posts a view-as session may always make: ending the view, signing out, noting consent.
fn always_allowed(path: &str) -> bool {
    [
        Url::StaffViewAsStop,
        Url::StaffSignOut,
        Url::StaffViewAsConsent,
    ]
    .iter()
    .any(|u| u.template() == path)
}

/// Form posts that take a payment: allowed under view-as only with act-on-behalf and the
/// patient's verbal consent noted.
fn takes_payment(path: &str) -> bool {
    [Url::Pay, Url::AccountPay]
        .iter()
        .any(|u| u.template() == path)
}

fn ids(seat: &ViewAsSeat) -> (TenantId, PatientId) {
    (
        TenantId::from_db(seat.tenant_id.clone()),
        PatientId::from_db(seat.patient_id.clone()),
    )
}

/// One event about the view itself (start, end, expiry, a refused change), with the staff member
/// as actor and the patient as the record concerned.
pub async fn audit_view(
    state: &AppState,
    ctx: &RequestContext,
    seat: &ViewAsSeat,
    action: &'static str,
    resource: &str,
    outcome: Outcome,
) -> Result<()> {
    let (tenant, patient) = ids(seat);
    let staff = actor_id(&UserId::from_db(seat.staff_user_id.clone()));
    let mut actor = ctx.actor(staff);
    actor.on_behalf_of = Some(format!("patient:{}", seat.patient_id));
    state
        .audit
        .record(audit::Event {
            actor: &actor,
            tenant: Some(&tenant),
            patient: Some(&patient),
            action,
            resource: Some(resource),
            outcome,
        })
        .await?;
    Ok(())
}

/// Ends the view: recorded, audited, removed from the session, and the session id cycled.
pub async fn end(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    seat: &ViewAsSeat,
    event: &'static str,
) -> Result<()> {
    crate::view_as::record_end(&state.db, &seat.id, ctx.now).await?;
    audit_view(state, ctx, seat, event, &seat.id, Outcome::Success).await?;
    session.update(|d| d.view_as = None).await?;
    session.cycle_id().await?;
    Ok(())
}

/// Runs after the session timeouts on every portal request. A view past its 30 minutes, or whose
/// staff sign-in is gone, ends here (a patient page then sends the staff member back to the
/// staff area); a live one marks the request: the staff member is every event's actor and every
/// page carries the banner.
pub async fn guard(state: &AppState, session: &Sess, mut req: Request, next: Next) -> Response {
    match prepare(state, session, &mut req).await {
        Ok(Prepared::Plain) => next.run(req).await,
        Ok(Prepared::Ended(patient)) => {
            // A patient page asked for: back to the patient's console, which says why.
            let to_staff = !req.uri().path().starts_with(Url::Staff.template());
            if to_staff {
                return see_other(Url::StaffPatient(&patient));
            }
            next.run(req).await
        }
        Ok(Prepared::Viewing(banner)) => BANNER.scope(Some(banner), next.run(req)).await,
        Err(e) => e.into_response(),
    }
}

enum Prepared {
    Plain,
    /// The view ended; the patient it showed.
    Ended(String),
    Viewing(ViewAsBannerVm),
}

async fn prepare(state: &AppState, session: &Sess, req: &mut Request) -> Result<Prepared> {
    let data = session.data().await?;
    let Some(seat) = data.view_as.clone() else {
        return Ok(Prepared::Plain);
    };
    let ctx = req
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("request context missing")))?;
    let staff_here = data
        .staff
        .as_ref()
        .is_some_and(|s| s.user_id == seat.staff_user_id);
    if ctx.now >= seat.expires_at || !staff_here {
        let event = if staff_here {
            "viewas.expire"
        } else {
            "viewas.end"
        };
        end(state, &ctx, session, &seat, event).await?;
        session.notice("viewas-expired").await?;
        return Ok(Prepared::Ended(seat.patient_id));
    }
    let staff = actor_id(&UserId::from_db(seat.staff_user_id.clone()));
    let (tenant, _) = ids(&seat);
    let may_pay = crate::view_as::act_on_behalf(&state.db, &tenant).await?;
    if let Some(c) = req.extensions_mut().get_mut::<RequestContext>() {
        c.viewing_as = Some(staff);
        c.view_as_may_pay = may_pay;
    }
    let consent = if may_pay {
        Some(match seat.consent_at {
            Some(_) => ViewAsConsent::Noted,
            None => ViewAsConsent::NotNoted,
        })
    } else {
        None
    };
    let left = seat.expires_at - ctx.now;
    Ok(Prepared::Viewing(ViewAsBannerVm {
        staff_name: seat.staff_name.clone(),
        patient_name: super::sealed::open_view_as_name(state, &seat.id, &seat.sealed_patient_name)
            .await?,
        minutes_left: (left + 59) / 60,
        csrf: data.csrf.clone(),
        consent,
    }))
}

/// The one read-only check, run by the CSRF layer on every form post once its token is good:
/// under view-as, a change is refused (403, audited) unless it ends the view, or it is a payment
/// the practice lets staff take and the patient's consent was just noted (consumed here, so one
/// consent covers one payment). `None`: go on.
pub(super) async fn refuse_change(state: &AppState, parts: &mut Parts) -> Result<Option<Response>> {
    use axum::extract::FromRequestParts;
    let session = Sess::from_request_parts(parts, state).await?;
    let Some(seat) = session.data().await?.view_as else {
        return Ok(None);
    };
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    if always_allowed(&path) {
        return Ok(None);
    }
    let ctx = RequestContext::from_request_parts(parts, state).await?;
    let (tenant, _) = ids(&seat);
    let mut refusal = NoticeKind::ViewAsReadOnly;
    if takes_payment(&path) && crate::view_as::act_on_behalf(&state.db, &tenant).await? {
        if seat.consent_at.is_some() {
            session
                .update(|d| {
                    if let Some(v) = d.view_as.as_mut() {
                        v.consent_at = None;
                    }
                })
                .await?;
            audit_view(
                state,
                &ctx,
                &seat,
                "viewas.act-on-behalf",
                &path,
                Outcome::Success,
            )
            .await?;
            return Ok(None);
        }
        refusal = NoticeKind::ViewAsConsentNeeded;
    }
    audit_view(state, &ctx, &seat, "viewas.change", &path, Outcome::Denied).await?;
    tracing::info!(route = %path, "change refused under view-as");
    let page = patriotpay_app::pages::notice(super::page_meta(), refusal);
    Ok(Some((StatusCode::FORBIDDEN, Html(page)).into_response()))
}

/// The patient a view-as session shows, as the page extractors need them.
pub enum Viewed {
    Member(Account),
    Link(PayLink),
}

/// Under view-as: the patient whose pages are shown, checked on every request (the staff member
/// still signed in with their second factor, the patient's account still a member account).
/// The account's grants are cut to the viewed practice and marked as
/// viewed-as, so the policy refuses every change (and allows a payment only with act-on-behalf).
pub(super) async fn viewed(state: &AppState, seat: &ViewAsSeat, staff: &Account) -> Result<Viewed> {
    if staff.id.as_str() != seat.staff_user_id || !staff.principal.mfa {
        return Err(AppError::Forbidden);
    }
    let (tenant, patient) = ids(seat);
    let act = crate::view_as::act_on_behalf(&state.db, &tenant).await?;
    if let Some(user) = &seat.member_user_id {
        let now = state.clock.now();
        let account = accounts::load(&state.db, &UserId::from_db(user.clone()), now).await?;
        let Some(mut a) = account.filter(|a| a.kind == Kind::Member && !a.disabled) else {
            return Err(AppError::NotFound);
        };
        a.principal
            .grants
            .retain(|g| g.tenant.as_ref() == Some(&tenant));
        a.principal.impersonating = true;
        a.principal.acting_on_behalf = act;
        return Ok(Viewed::Member(a));
    }
    let Some(link_id) = &seat.link_id else {
        return Err(AppError::NotFound);
    };
    let link = links::find(&state.db, &LinkId::from_db(link_id.clone()))
        .await?
        .filter(|l| l.patient_id == patient && l.tenant_id == tenant)
        .ok_or(AppError::NotFound)?;
    Ok(Viewed::Link(link))
}
