//! Patient search by blind index (account number, phone number, or last name and date of
//! birth), practice by practice: each search and each patient shown is a permit (and so an
//! audit event); a row links to the patient's console and offers the guarantor actions the
//! viewer's role allows.

use super::home::{home_vm, render, searchable_tenants};
use super::{actor_id, ask};
use crate::access::{self, Action, Permit, Resource};
use crate::accounts::Account;
use crate::audit::{self, Outcome};
use crate::billing::{self, Tenant};
use crate::guarantors::{self, GuarantorGrant};
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, StaffSession};
use crate::http::session::Sess;
use crate::http::{tr, AppState, RequestContext};
use crate::ids::PatientId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use patriotpay_app::forms::SearchForm;
use patriotpay_app::vm::{GuarantorVm, StaffPatientRow};

fn parse_iso(s: &str) -> Option<String> {
    time::Date::parse(s.trim(), crate::links::ISO_DATE)
        .ok()
        .and_then(|d| d.format(crate::links::ISO_DATE).ok())
}

/// A POST, so no PHI ever sits in a URL. Any signed-in staff member may post it (without the
/// second factor too): the policy refuses, and the refusal is audited.
pub async fn search(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(account): StaffSession,
    CsrfForm(form): CsrfForm<SearchForm>,
) -> Result<Response> {
    let tenants = searchable_tenants(&state, &account, ctx.now).await?;
    if tenants.is_empty() {
        // No practice to ask about, so no permit: the refusal is recorded as it stands.
        state
            .audit
            .record(audit::Event {
                actor: &ctx.actor(actor_id(&account.id)),
                tenant: None,
                patient: None,
                action: "patient.search",
                resource: None,
                outcome: Outcome::Denied,
            })
            .await?;
        return Err(AppError::Forbidden);
    }
    // A phone number that is none is refused before anything is searched, so a typo never
    // finds the patient some other number belongs to.
    let phone = form.phone.trim();
    let phone = if phone.is_empty() || !form.account.trim().is_empty() {
        None
    } else if let Some(p) = billing::parse_us_phone(phone) {
        Some(p)
    } else {
        let mut vm = home_vm(&state, &ctx, &session, &account).await?;
        vm.search_error = Some(tr().t("staff-search-phone-invalid"));
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm));
    };
    let mut rows = vec![];
    for t in &tenants {
        let on = Resource {
            tenant: &t.id,
            patient: None,
            clinical_restricted: false,
        };
        // The search itself, practice by practice; its results are each asked for below.
        let _search: Permit = ask(
            &state,
            &ctx,
            &account,
            Action::SearchPatients,
            on,
            "patient.search",
            None,
        )
        .await
        .map_err(super::forbidden)?;
        let found: Vec<PatientId> = if !form.account.trim().is_empty() {
            billing::find_by_account(&state.db, &state.crypto, &t.id, &form.account).await?
        } else if let Some(phone) = &phone {
            billing::find_by_phone(&state.db, &state.crypto, &t.id, phone).await?
        } else if let Some(dob) = parse_iso(&form.dob) {
            billing::find_by_name_dob(&state.db, &state.crypto, &t.id, &form.last_name, &dob)
                .await?
        } else {
            vec![]
        };
        for p in found {
            rows.push(patient_row(&state, &ctx, &account, t, &p).await?);
        }
    }
    let mut vm = home_vm(&state, &ctx, &session, &account).await?;
    vm.results = Some(rows);
    Ok(render(StatusCode::OK, vm))
}

fn guarantor_vm(g: GuarantorGrant) -> GuarantorVm {
    GuarantorVm {
        grant_id: g.grant_id.to_string(),
        email: g.email.into_inner(),
        patient_name: String::new(),
        since: crate::clock::display_date_unix(g.since),
    }
}

/// One search result: an audited view of the patient, with the guarantor actions the viewer's
/// role allows on it.
async fn patient_row(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    t: &Tenant,
    p: &PatientId,
) -> Result<StaffPatientRow> {
    let on = || Resource {
        tenant: &t.id,
        patient: Some(p),
        clinical_restricted: false,
    };
    // Which buttons to offer; nothing is read on these decisions alone.
    let allows = |action| access::decide(&account.principal, action, &on(), ctx.now).allowed();
    let can_invite = allows(Action::InviteGuarantor);
    let can_revoke = allows(Action::RevokeGuarantor);
    let can_refund = allows(Action::IssueRefund);
    // One view, one event: the permit is for the most the row shows (a row with guarantor
    // actions also lists the guarantors' and the patient's own account emails).
    let action = if can_revoke {
        Action::RevokeGuarantor
    } else if can_invite {
        Action::InviteGuarantor
    } else {
        Action::SearchPatients
    };
    let permit: Permit = ask(
        state,
        ctx,
        account,
        action,
        on(),
        "patient.search.result.view",
        Some(p.as_str()),
    )
    .await
    .map_err(super::forbidden)?;
    let name = billing::full_name(&state.db, &state.crypto, &permit).await?;
    let patient_account = if can_revoke {
        guarantors::patient_account(&state.db, &state.crypto, &permit)
            .await?
            .map(guarantor_vm)
    } else {
        None
    };
    let guarantors = if can_invite || can_revoke {
        guarantors::guarantors_of(&state.db, &state.crypto, &permit)
            .await?
            .into_iter()
            .map(guarantor_vm)
            .collect()
    } else {
        vec![]
    };
    Ok(StaffPatientRow {
        name: name.into_inner(),
        practice: t.name.clone(),
        patient_id: p.to_string(),
        can_invite,
        can_revoke,
        guarantors,
        patient_account,
        can_refund,
    })
}
