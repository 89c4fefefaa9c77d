//! The staff home page: who is signed in with which roles, active emergency grants, the search
//! and emergency-access forms the policy offers; the view model every staff form answers with.

use super::{meta, role_label};
use crate::access::{self, Action, Resource};
use crate::accounts::{self, Account};
use crate::billing::{self, Tenant};
use crate::http::error::Result;
use crate::http::extract::StaffSession;
use crate::http::session::Sess;
use crate::http::{tr, AppState, RequestContext};
use crate::ids::TenantId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::staff as pages;
use patriotpay_app::vm::{BreakGlassVm, StaffHomeVm};

/// Any signed-in staff member, second factor or not: the page offers only what the policy
/// allows them.
pub async fn home(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffSession(account): StaffSession,
) -> Result<Response> {
    let mut vm = home_vm(&state, &ctx, &session, &account).await?;
    // A message carried over from a form that answers with a redirect here (a view ended).
    if let Some(f) = session.take_flash().await? {
        vm.notice = Some(tr().t(&f.key));
    }
    Ok(render(StatusCode::OK, vm))
}

pub(super) fn render(status: StatusCode, vm: StaffHomeVm) -> Response {
    (status, Html(pages::home(meta(), vm))).into_response()
}

/// Practices where this account may search patients, by the policy (which forms to offer and
/// where to look; nothing is read here).
pub(super) async fn searchable_tenants(
    state: &AppState,
    account: &Account,
    now: i64,
) -> Result<Vec<Tenant>> {
    let mut out: Vec<Tenant> = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        let on = Resource {
            tenant: t,
            patient: None,
            clinical_restricted: false,
        };
        if !access::decide(&account.principal, Action::SearchPatients, &on, now).allowed() {
            continue;
        }
        if let Some(tenant) = billing::tenant(&state.db, t).await? {
            if !out.iter().any(|x| x.id == tenant.id) {
                out.push(tenant);
            }
        }
    }
    Ok(out)
}

async fn practice_name(state: &AppState, tenant: &TenantId) -> Result<Option<String>> {
    Ok(billing::tenant(&state.db, tenant).await?.map(|t| t.name))
}

/// "14:05" (UTC) for an emergency grant's end.
fn clock_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default()
}

/// The home page's view model; forms that answer with the home page add their result to it.
pub(super) async fn home_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    account: &Account,
) -> Result<StaffHomeVm> {
    let mut roles = vec![];
    for g in &account.principal.grants {
        let practice = match &g.tenant {
            Some(t) => practice_name(state, t)
                .await?
                .unwrap_or_else(|| t.to_string()),
            None => tr().t("staff-all-practices"),
        };
        roles.push(tr().ta(
            "staff-role-line",
            &[("role", &role_label(g.role)), ("practice", &practice)],
        ));
    }
    let mut emergency = vec![];
    for g in &account.principal.grants {
        let Some(expires) = g.expires_at else {
            continue;
        };
        let practice = match &g.tenant {
            Some(t) => practice_name(state, t).await?.unwrap_or_default(),
            None => String::new(),
        };
        emergency.push(tr().ta(
            "staff-bg-active",
            &[
                ("role", &role_label(g.role)),
                ("practice", &practice),
                ("until", &clock_time(expires)),
            ],
        ));
    }
    // The form shows only to those the policy lets grant emergency access somewhere.
    let mut practices = vec![];
    let all: Vec<(String, String)> =
        sqlx::query_as("SELECT id, name FROM tenants WHERE id <> $1 ORDER BY name")
            .bind(accounts::PLATFORM_TENANT)
            .fetch_all(state.db.pool())
            .await?;
    for (id, name) in all {
        let t = TenantId::from_db(id.clone());
        let on = Resource {
            tenant: &t,
            patient: None,
            clinical_restricted: false,
        };
        if access::decide(&account.principal, Action::GrantBreakGlass, &on, ctx.now).allowed() {
            practices.push((id, name));
        }
    }
    // The chart is of the first practice the account works in (the platform's staff have none).
    let practice = account
        .principal
        .grants
        .iter()
        .filter_map(|g| g.tenant.as_ref())
        .find(|t| t.as_str() != accounts::PLATFORM_TENANT);
    let activity = match practice {
        Some(t) => Some(super::activity::last_days(&state.db, t, ctx.now).await?),
        None => None,
    };
    Ok(StaffHomeVm {
        activity,
        csrf: session.csrf_token().await?,
        email: account.email(&state.crypto).await?.into_inner(),
        roles,
        can_search: !searchable_tenants(state, account, ctx.now)
            .await?
            .is_empty(),
        results: None,
        search_error: None,
        notice: None,
        emergency,
        break_glass: (!practices.is_empty()).then_some(BreakGlassVm {
            practices,
            error: None,
        }),
        invite_error: None,
        audit_log: super::audit_log::can_view(account, ctx.now),
        messages: super::messages::can_view(account, ctx.now),
        messaging: super::messaging::can_manage(account, ctx.now),
        alerts: super::alerts::can_view(account, ctx.now),
        act_on_behalf: account
            .principal
            .grants
            .iter()
            .any(|g| g.role == crate::access::Role::PracticeAdmin),
    })
}
