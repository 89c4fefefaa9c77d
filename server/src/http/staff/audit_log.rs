//! The audit viewer for security officers and auditors: one practice's events filtered by actor,
//! patient, action, time and address, newest first, paged by a `before=<seq>` cursor. Every
//! filter is parsed here, before anything is read; every view is a permit for `ViewAuditLog`
//! (event `audit.view`), so reading the log is itself in the log.

use super::guarantors::practice_of;
use super::{ask, forbidden, meta};
use crate::access::{self, Action, Resource, Role};
use crate::accounts::{self, Account};
use crate::audit::viewer::{self, Filter, Row};
use crate::billing;
use crate::http::error::{AppError, Result};
use crate::http::extract::{RoleSet, StaffWith};
use crate::http::{tr, AppState, RequestContext};
use crate::ids::{PatientId, TenantId};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::staff_audit as pages;
use patriotpay_app::vm_audit::{AuditFilterVm, AuditLogVm, AuditQuery, AuditRowVm};
use patriotpay_app::Url;

/// The roles the policy lets read the audit log; others are refused at the door (403).
pub struct AuditViewers;

impl RoleSet for AuditViewers {
    const ROLES: &'static [Role] = &[Role::SecurityOfficer, Role::Auditor];
}

/// The query string as typed (names in `AuditQuery`); every field optional.
#[derive(Default, serde::Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    practice: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    before: String,
}

/// Reads the filters; a refusal is the catalog key of its message.
fn parse(q: &AuditParams) -> std::result::Result<Filter, &'static str> {
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut f = Filter::default();
    if let Some(a) = given(&q.actor) {
        let ok =
            a.chars().count() <= 200 && !a.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err("staff-audit-bad-actor");
        }
        f.actor = Some(a);
    }
    if let Some(p) = given(&q.patient) {
        f.patient = Some(PatientId::parse(&p).ok_or("staff-audit-bad-patient")?);
    }
    if let Some(a) = given(&q.action) {
        let ok = a.len() <= 100
            && a.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if !ok {
            return Err("staff-audit-bad-action");
        }
        f.action_prefix = Some(a);
    }
    let date =
        |s: &str| time::Date::parse(s, crate::links::ISO_DATE).map_err(|_| "staff-audit-bad-date");
    let from = given(&q.from).map(|s| date(&s)).transpose()?;
    let to = given(&q.to).map(|s| date(&s)).transpose()?;
    if let (Some(a), Some(b)) = (from, to) {
        if a > b {
            return Err("staff-audit-bad-range");
        }
    }
    let midnight = |d: time::Date| d.midnight().assume_utc().unix_timestamp();
    f.from = from.map(midnight);
    // The to date is inclusive: events before the next midnight.
    f.until = match to {
        Some(d) => Some(midnight(d.next_day().ok_or("staff-audit-bad-date")?)),
        None => None,
    };
    if let Some(a) = given(&q.address) {
        // Written as the request context writes it (`IpAddr`'s own form), so `::1` finds `::1`.
        let ip: std::net::IpAddr = a.parse().map_err(|_| "staff-audit-bad-address")?;
        f.address = Some(ip.to_string());
    }
    if let Some(b) = given(&q.before) {
        let seq: i64 = b.parse().map_err(|_| "staff-audit-bad-page")?;
        if seq < 1 {
            return Err("staff-audit-bad-page");
        }
        f.before = Some(seq);
    }
    Ok(f)
}

fn allowed_in(account: &Account, tenant: &TenantId, now: i64) -> bool {
    let on = Resource {
        tenant,
        patient: None,
        clinical_restricted: false,
    };
    access::decide(&account.principal, Action::ViewAuditLog, &on, now).allowed()
}

/// Whether the staff home should link to the viewer (nothing is read or recorded).
pub(super) fn can_view(account: &Account, now: i64) -> bool {
    account
        .principal
        .grants
        .iter()
        .filter_map(|g| g.tenant.as_ref())
        .any(|t| allowed_in(account, t, now))
}

/// The practices whose log this account may read, by the policy, with their names.
async fn viewable_practices(
    state: &AppState,
    account: &Account,
    now: i64,
) -> Result<Vec<(TenantId, String)>> {
    let mut out: Vec<(TenantId, String)> = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        if !allowed_in(account, t, now) || out.iter().any(|(x, _)| x == t) {
            continue;
        }
        let name = billing::tenant(&state.db, t)
            .await?
            .map(|x| x.name)
            .unwrap_or_else(|| t.to_string());
        out.push((t.clone(), name));
    }
    Ok(out)
}

/// The practice asked for, else the first one the account may read, else one of its grants (so
/// the refusal is asked of the policy, and recorded, like any other).
fn chosen_practice(
    q: &AuditParams,
    account: &Account,
    practices: &[(TenantId, String)],
) -> Result<TenantId> {
    let raw = q.practice.trim();
    if !raw.is_empty() {
        return TenantId::parse(raw).ok_or(AppError::NotFound);
    }
    if let Some((t, _)) = practices.first() {
        return Ok(t.clone());
    }
    Ok(account
        .principal
        .grants
        .iter()
        .find(|g| AuditViewers::ROLES.contains(&g.role))
        .and_then(|g| g.tenant.clone())
        .unwrap_or_else(|| accounts::platform().clone()))
}

/// "2026-11-30 21:04:05 UTC".
fn utc_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn row_vm(r: Row, practice: &str) -> AuditRowVm {
    let outcome = match r.outcome.as_str() {
        "success" | "denied" | "failure" => tr().t(&format!("staff-audit-outcome-{}", r.outcome)),
        other => other.to_owned(),
    };
    AuditRowVm {
        seq: r.seq.to_string(),
        time: utc_time(r.at),
        actor: r.actor,
        on_behalf_of: r.on_behalf_of.unwrap_or_default(),
        practice: practice.to_owned(),
        patient: r.patient_id.unwrap_or_default(),
        action: r.action,
        resource: r.resource.unwrap_or_default(),
        request_id: r.request_id.unwrap_or_default(),
        address: r.address.unwrap_or_default(),
        outcome,
        sealed: r.sealed,
    }
}

/// The viewer's address with these filters (as parsed) and, for an older page, the cursor.
fn link(tenant: &TenantId, f: &Filter, before: Option<i64>) -> String {
    let (from, until) = (f.from.map(day), f.until.map(|t| day(t - 86_400)));
    let before = before.map(|s| s.to_string());
    let pairs: Vec<(&str, &str)> = [
        (AuditQuery::PRACTICE, Some(tenant.as_str())),
        (AuditQuery::ACTOR, f.actor.as_deref()),
        (AuditQuery::PATIENT, f.patient.as_ref().map(|p| p.as_str())),
        (AuditQuery::ACTION, f.action_prefix.as_deref()),
        (AuditQuery::FROM, from.as_deref()),
        (AuditQuery::TO, until.as_deref()),
        (AuditQuery::ADDRESS, f.address.as_deref()),
        (AuditQuery::BEFORE, before.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    Url::StaffAudit.with_queries(&pairs)
}

/// `YYYY-MM-DD` of a UTC midnight.
fn day(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.date().format(crate::links::ISO_DATE).ok())
        .unwrap_or_default()
}

fn render(status: StatusCode, vm: AuditLogVm) -> Response {
    (status, Html(pages::audit_log(meta(), vm))).into_response()
}

/// The audit viewer: filters, then one page of the chosen practice's events.
pub async fn audit_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    StaffWith(account, ..): StaffWith<AuditViewers>,
    Query(q): Query<AuditParams>,
) -> Result<Response> {
    let practices = viewable_practices(&state, &account, ctx.now).await?;
    let tenant = chosen_practice(&q, &account, &practices)?;
    let mut vm = AuditLogVm {
        practices: practices
            .iter()
            .map(|(t, n)| (t.to_string(), n.clone()))
            .collect(),
        filter: AuditFilterVm {
            practice: tenant.to_string(),
            actor: q.actor.trim().to_owned(),
            patient: q.patient.trim().to_owned(),
            action: q.action.trim().to_owned(),
            from: q.from.trim().to_owned(),
            to: q.to.trim().to_owned(),
            address: q.address.trim().to_owned(),
        },
        ..Default::default()
    };
    let filter = match parse(&q) {
        Ok(f) => f,
        Err(key) => {
            // Nothing is read with a filter we could not parse: the form comes back, and says why.
            vm.error = Some(tr().t(key));
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm));
        }
    };
    // A search for one of this practice's patients is recorded against that patient too.
    let mut patient = None;
    if let Some(p) = &filter.patient {
        if practice_of(&state, p).await?.as_ref() == Some(&tenant) {
            patient = Some(p);
        }
    }
    let on = Resource {
        tenant: &tenant,
        patient,
        clinical_restricted: false,
    };
    let permit = ask(
        &state,
        &ctx,
        &account,
        Action::ViewAuditLog,
        on,
        "audit.view",
        None,
    )
    .await
    .map_err(forbidden)?;
    let page = viewer::page(&state.db, &permit, &filter).await?;
    let name = practices
        .iter()
        .find(|(t, _)| *t == tenant)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    vm.rows = Some(page.rows.into_iter().map(|r| row_vm(r, &name)).collect());
    vm.older = page.older.map(|seq| link(&tenant, &filter, Some(seq)));
    vm.newest = filter.before.map(|_| link(&tenant, &filter, None));
    Ok(render(StatusCode::OK, vm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(f: impl FnOnce(&mut AuditParams)) -> AuditParams {
        let mut p = AuditParams::default();
        f(&mut p);
        p
    }

    #[test]
    fn dates_are_whole_utc_days_and_bad_ones_are_refused() {
        let f = parse(&q(|p| {
            p.from = "2026-11-30".into();
            p.to = " 2026-11-30 ".into();
        }))
        .expect("dates");
        assert_eq!(f.from, Some(1_795_996_800));
        assert_eq!(f.until, Some(1_795_996_800 + 86_400));
        for bad in ["2026-13-01", "30/11/2026", "2026-11-31", "yesterday"] {
            assert_eq!(
                parse(&q(|p| p.from = bad.into())),
                Err("staff-audit-bad-date"),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&q(|p| {
                p.from = "2026-12-01".into();
                p.to = "2026-11-30".into();
            })),
            Err("staff-audit-bad-range")
        );
    }

    #[test]
    fn each_filter_is_checked_at_the_edge() {
        assert_eq!(parse(&q(|_| {})), Ok(Filter::default()));
        assert_eq!(
            parse(&q(|p| p.patient = "pat_x".into())),
            Err("staff-audit-bad-patient")
        );
        assert_eq!(
            parse(&q(|p| p.action = "Statement%".into())),
            Err("staff-audit-bad-action")
        );
        assert_eq!(
            parse(&q(|p| p.actor = "user: x".into())),
            Err("staff-audit-bad-actor")
        );
        assert_eq!(
            parse(&q(|p| p.address = "localhost".into())),
            Err("staff-audit-bad-address")
        );
        for bad in ["0", "-3", "x"] {
            assert_eq!(
                parse(&q(|p| p.before = bad.into())),
                Err("staff-audit-bad-page")
            );
        }
        let f = parse(&q(|p| {
            p.address = "2001:DB8:0:0::1".into();
            p.action = "statement.".into();
            p.before = "42".into();
        }))
        .expect("filters");
        assert_eq!(f.address.as_deref(), Some("2001:db8::1"));
        assert_eq!(f.action_prefix.as_deref(), Some("statement."));
        assert_eq!(f.before, Some(42));
    }

    #[test]
    fn the_older_link_keeps_every_filter() {
        let tenant = TenantId::generate();
        let f = parse(&q(|p| {
            p.actor = "user:usr_1".into();
            p.from = "2026-11-01".into();
            p.to = "2026-11-30".into();
        }))
        .expect("filters");
        assert_eq!(
            link(&tenant, &f, Some(7)),
            format!(
                "/staff/audit?practice={tenant}&actor=user%3Ausr_1&from=2026-11-01&to=2026-11-30&before=7"
            )
        );
    }
}
