//! Starting and ending a view as a patient, noting the patient's verbal consent to a payment,
//! and the practice admin's "act on behalf" setting. The rules a running view obeys live in
//! `http::view_as`.

use super::guarantors::practice_of;
use super::{actor_id, ask, ask_in, forbidden, meta, GuarantorAdmins};
use crate::access::{self, Action, Refused, Resource};
use crate::accounts;
use crate::audit::Outcome;
use crate::billing;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, PracticeStaff, StaffSession, StaffWith};
use crate::http::member::unseen;
use crate::http::session::{Flash, Sess, ViewAsSeat};
use crate::http::view_as::{audit_view, end};
use crate::http::{see_other, tr, AppState, RequestContext};
use crate::ids::{PatientId, TenantId};
use crate::view_as::{self, NewView, Target};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{ActOnBehalfForm, Empty, ViewAsForm};
use patriotpay_app::vm::{ActOnBehalfPracticeVm, ActOnBehalfVm};
use patriotpay_app::Url;

/// Where the staff member goes back to from a view of `patient`: the patient's console.
fn back(patient: &str) -> Url<'_> {
    Url::StaffPatient(patient)
}

/// A refusal that names nothing: an unknown patient, or another practice's.
fn not_found(e: Refused) -> AppError {
    match e {
        Refused::Denied(_) => AppError::NotFound,
        e => e.into(),
    }
}

/// Starts viewing as a patient of the staff member's practice: needs the role (support agent or
/// practice admin, with the second factor), a reason and a ticket. The session id cycles; the
/// view lasts 30 minutes at most and ends with the staff session.
pub async fn start(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<ViewAsForm>,
) -> Result<Response> {
    let actor = actor_id(&account.id);
    // A staff account's id (or anything but a patient's) names no patient: never viewed as.
    let Some(patient) = PatientId::parse(form.patient.trim()) else {
        return Err(unseen(&state, &ctx, actor, "viewas.start", "not-a-patient").await);
    };
    let Some(tenant) = practice_of(&state, &patient).await? else {
        return Err(unseen(&state, &ctx, actor, "viewas.start", patient.as_str()).await);
    };
    let on = || Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    let may = access::decide(&account.principal, Action::ViewAsPatient, &on(), ctx.now).allowed();
    if !may {
        // Refused whatever was typed; the permit records the refusal.
        let refused = ask(
            &state,
            &ctx,
            &account,
            Action::ViewAsPatient,
            on(),
            "viewas.start",
            None,
        );
        return Err(match refused.await {
            Err(e) => not_found(e),
            Ok(_) => AppError::NotFound,
        });
    }
    let request = match view_as::Request::parse(&form.reason, &form.ticket) {
        Ok(r) => r,
        Err(field) => {
            // Back to the form with its error; what was typed in the ticket comes back (the
            // reason may name the patient: it is not carried in the session).
            let (name, key) = match field {
                view_as::RequestError::Reason => (ViewAsForm::REASON, "viewas-err-reason"),
                view_as::RequestError::Ticket => (ViewAsForm::TICKET, "viewas-err-ticket"),
            };
            let mut flash = Flash::on(name, key);
            flash.value = Some(form.ticket.chars().take(40).collect());
            session.set_flash(flash).await?;
            return Ok(see_other(back(patient.as_str())));
        }
    };
    let target = match view_as::target(&state.db, &tenant, &patient).await {
        Ok(t) => t,
        Err(view_as::ViewAsError::StaffAccount) => {
            return Err(unseen(&state, &ctx, actor, "viewas.start", patient.as_str()).await);
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let Some(target) = target else {
        session.notice("viewas-err-nothing").await?;
        return Ok(see_other(back(patient.as_str())));
    };
    // The key is readied first: nothing is created inside the permit's transaction.
    state.crypto.ready_field_key(&tenant).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ViewAsPatient,
        on(),
        "viewas.start",
        Some(&id),
    )
    .await
    .map_err(not_found)?;
    let expires_at = view_as::record_start(
        &mut tx,
        &state.crypto,
        NewView {
            id: &id,
            tenant: &tenant,
            patient: &patient,
            staff: &account.id,
            request: &request,
            now: ctx.now,
        },
    )
    .await
    .map_err(|e| AppError::Internal(e.into()))?;
    tx.commit().await?;
    let name = billing::full_name(&state.db, &state.crypto, &permit).await?;
    let sealed = crate::http::sealed::seal_view_as_name(&state, &id, name.expose()).await?;
    let staff_name = accounts::display_name(&state.db, &account.id)
        .await?
        .unwrap_or_else(|| tr().t("staff-unnamed"));
    let (member_user_id, link_id, landing) = match target {
        Target::Member(u) => (Some(u.to_string()), None, Url::Account),
        Target::Link(l) => (None, Some(l.to_string()), Url::Summary),
    };
    let seat = ViewAsSeat {
        id,
        tenant_id: tenant.to_string(),
        patient_id: patient.to_string(),
        staff_user_id: account.id.to_string(),
        member_user_id,
        link_id,
        expires_at,
        staff_name,
        sealed_patient_name: sealed,
        consent_at: None,
    };
    // A privilege change: new session id. A view already running is ended first.
    if let Some(old) = session.data().await?.view_as {
        end(&state, &ctx, &session, &old, "viewas.end").await?;
    }
    session.cycle_id().await?;
    session.update(|d| d.view_as = Some(seat)).await?;
    Ok(see_other(landing))
}

/// Ends the view (a staff member may always; there may be none left to end).
pub async fn stop(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(_): StaffSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    let Some(seat) = session.data().await?.view_as else {
        return Ok(see_other(Url::Staff));
    };
    end(&state, &ctx, &session, &seat, "viewas.stop").await?;
    session.notice("viewas-ended").await?;
    Ok(see_other(back(&seat.patient_id)))
}

/// Notes that the patient gave verbal consent to the payment about to be taken: only under a
/// view whose practice turned "act on behalf" on. One consent covers one payment.
pub async fn consent(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(_): StaffSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    let Some(seat) = session.data().await?.view_as else {
        return Err(AppError::Forbidden);
    };
    let tenant = TenantId::from_db(seat.tenant_id.clone());
    if !view_as::act_on_behalf(&state.db, &tenant).await? {
        audit_view(
            &state,
            &ctx,
            &seat,
            "viewas.consent",
            &seat.id,
            Outcome::Denied,
        )
        .await?;
        return Err(AppError::Forbidden);
    }
    audit_view(
        &state,
        &ctx,
        &seat,
        "viewas.consent",
        &seat.id,
        Outcome::Success,
    )
    .await?;
    session
        .update(|d| {
            if let Some(v) = d.view_as.as_mut() {
                v.consent_at = Some(ctx.now);
            }
        })
        .await?;
    session.notice("viewas-consent-noted").await?;
    let landing = if seat.member_user_id.is_some() {
        Url::Account
    } else {
        Url::Summary
    };
    Ok(see_other(landing))
}

/// The practices whose "act on behalf" setting this practice admin may change.
async fn managed(
    state: &AppState,
    ctx: &RequestContext,
    account: &accounts::Account,
) -> Result<Vec<ActOnBehalfPracticeVm>> {
    let mut out = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        let on = super::practice(t);
        let may = access::decide(
            &account.principal,
            Action::ConfigureActOnBehalf,
            &on,
            ctx.now,
        )
        .allowed();
        if !may
            || out
                .iter()
                .any(|p: &ActOnBehalfPracticeVm| p.id == t.as_str())
        {
            continue;
        }
        let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
            .bind(t.as_str())
            .fetch_one(state.db.pool())
            .await?;
        out.push(ActOnBehalfPracticeVm {
            id: t.to_string(),
            name,
            enabled: view_as::act_on_behalf(&state.db, t).await?,
        });
    }
    Ok(out)
}

/// The "act on behalf" settings page for practice admins.
pub async fn settings_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
) -> Result<Response> {
    let vm = ActOnBehalfVm {
        csrf: session.csrf_token().await?,
        notice: session.take_flash().await?.map(|f| tr().t(&f.key)),
        practices: managed(&state, &ctx, &account).await?,
    };
    Ok(Html(patriotpay_app::staff_settings::act_on_behalf(meta(), vm)).into_response())
}

/// Turns "act on behalf" on or off for one practice: a practice admin of it only; audited with
/// the change, in one transaction.
pub async fn set(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<ActOnBehalfForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let on = match form.enabled.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(AppError::BadRequest),
    };
    let event = if on {
        "practice.act-on-behalf.on"
    } else {
        "practice.act-on-behalf.off"
    };
    let (_permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ConfigureActOnBehalf,
        super::practice(&tenant),
        event,
        Some(tenant.as_str()),
    )
    .await
    .map_err(forbidden)?;
    view_as::set_act_on_behalf(&mut tx, &tenant, on).await?;
    tx.commit().await?;
    session.notice("act-on-behalf-changed").await?;
    Ok(see_other(Url::StaffActOnBehalf))
}
