//! The security officer's alert console (issue 14): a practice's alerts, open first, with
//! acknowledge and notes. Security officers of that practice only (a platform grant: every
//! alert); each view is a `RunIncidentConsole` permit (event `alerts.view`), each change a permit
//! committed with it (`alert.acknowledge`, `alert.note`). Another practice is refused with 403.

use super::{ask, ask_in, forbidden, meta, practice};
use crate::access::{self, Action};
use crate::accounts::{self, Account};
use crate::alerts::console::{self, Acked, AlertLine, ConsoleError, NOTE_MAX};
use crate::billing;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, SecurityStaff, StaffWith};
use crate::http::session::{Flash, Sess};
use crate::http::{see_other_query, tr, AppState, RequestContext};
use crate::ids::{TenantId, UserId};
use crate::phi::Phi;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{AlertAckForm, AlertNoteForm, AlertsQuery};
use patriotpay_app::vm_alerts::{AlertNoteVm, AlertVm, AlertsVm};
use patriotpay_app::Url;
use std::collections::HashMap;

impl From<ConsoleError> for AppError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::Db(e) => e.into(),
            ConsoleError::Crypto(e) => e.into(),
            ConsoleError::NotPermitted => AppError::NotFound,
        }
    }
}

fn allowed_in(account: &Account, tenant: &TenantId, now: i64) -> bool {
    access::decide(
        &account.principal,
        Action::RunIncidentConsole,
        &practice(tenant),
        now,
    )
    .allowed()
}

/// Whether the staff home links here (the policy only; nothing is read).
pub(super) fn can_view(account: &Account, now: i64) -> bool {
    account
        .principal
        .grants
        .iter()
        .filter_map(|g| g.tenant.as_ref())
        .any(|t| allowed_in(account, t, now))
}

fn console_name(name: Option<String>, t: &TenantId) -> String {
    if t == accounts::platform() {
        tr().t("alerts-platform")
    } else {
        name.unwrap_or_else(|| t.to_string())
    }
}

/// The consoles this account may open, named (nothing is read but practice names).
async fn consoles(
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
        let name = billing::tenant(&state.db, t).await?.map(|x| x.name);
        out.push((t.clone(), console_name(name, t)));
    }
    Ok(out)
}

/// A staff member's name for the page; an account since removed is "someone".
async fn who(
    state: &AppState,
    names: &mut HashMap<String, String>,
    user: Option<&UserId>,
) -> Result<String> {
    let Some(u) = user else {
        return Ok(tr().t("staff-unnamed"));
    };
    if let Some(n) = names.get(u.as_str()) {
        return Ok(n.clone());
    }
    let n = accounts::display_name(&state.db, u)
        .await?
        .unwrap_or_else(|| tr().t("staff-unnamed"));
    names.insert(u.as_str().to_owned(), n.clone());
    Ok(n)
}

async fn alert_vm(
    state: &AppState,
    names: &mut HashMap<String, String>,
    practices: &mut HashMap<String, String>,
    a: AlertLine,
) -> Result<AlertVm> {
    let when = crate::clock::display_utc_minute;
    let acknowledged = match &a.acknowledged {
        Some((at, by)) => {
            let by = who(state, names, by.as_ref()).await?;
            Some(tr().ta("alerts-acked-by", &[("who", &by), ("when", &when(*at))]))
        }
        None => None,
    };
    let practice = match &a.tenant {
        Some(t) => Some(match practices.get(t.as_str()) {
            Some(n) => n.clone(),
            None => {
                let n = console_name(billing::tenant(&state.db, t).await?.map(|x| x.name), t);
                practices.insert(t.as_str().to_owned(), n.clone());
                n
            }
        }),
        None => None,
    };
    let mut notes = vec![];
    for n in a.notes {
        notes.push(AlertNoteVm {
            at: when(n.at),
            author: who(state, names, n.author.as_ref()).await?,
            text: n.text.into_inner(),
        });
    }
    Ok(AlertVm {
        id: a.id.to_string(),
        at: when(a.at),
        kind: a.kind,
        detail: a.detail,
        practice,
        acknowledged,
        notes,
    })
}

/// The console of `tenant`, under a view permit; `note_error` re-shows a refused note.
async fn render(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    account: &Account,
    tenant: TenantId,
    note_error: Option<(String, String, String)>,
) -> Result<Response> {
    let permit = ask(
        state,
        ctx,
        account,
        Action::RunIncidentConsole,
        practice(&tenant),
        "alerts.view",
        Some(tenant.as_str()),
    )
    .await
    .map_err(forbidden)?;
    let mine = consoles(state, account, ctx.now).await?;
    let name = match mine.iter().find(|(t, _)| *t == tenant) {
        Some((_, n)) => n.clone(),
        None => console_name(None, &tenant),
    };
    let (mut names, mut practices) = (HashMap::new(), HashMap::new());
    let mut alerts = vec![];
    for a in console::list(&state.db, &state.crypto, &permit).await? {
        alerts.push(alert_vm(state, &mut names, &mut practices, a).await?);
    }
    // Open first; each group stays newest first.
    alerts.sort_by_key(|a| a.acknowledged.is_some());
    let notice = match session.take_flash().await? {
        Some(f) if f.key.starts_with("alerts-") => Some(tr().t(&f.key)),
        _ => None,
    };
    let status = if note_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let vm = AlertsVm {
        csrf: session.csrf_token().await?,
        others: mine
            .into_iter()
            .filter(|(t, _)| *t != tenant)
            .map(|(t, n)| (t.to_string(), n))
            .collect(),
        practice: (tenant.to_string(), name),
        alerts,
        notice,
        note_error,
    };
    let html = patriotpay_app::staff_alerts::alerts(meta(), vm);
    Ok((status, Html(html)).into_response())
}

/// The console named in the query, else the first the caller may open.
pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<SecurityStaff>,
    Query(q): Query<AlertsQuery>,
) -> Result<Response> {
    let tenant = if q.practice.trim().is_empty() {
        consoles(&state, &account, ctx.now)
            .await?
            .into_iter()
            .next()
            .map(|(t, _)| t)
            .ok_or(AppError::Forbidden)?
    } else {
        TenantId::parse(q.practice.trim()).ok_or(AppError::BadRequest)?
    };
    render(&state, &ctx, &session, &account, tenant, None).await
}

/// An alert's number as the forms post it; anything else names none.
fn alert_number(raw: &str) -> Result<i64> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(AppError::NotFound),
    }
}

fn back(tenant: &TenantId) -> Response {
    see_other_query(Url::StaffAlerts, AlertsQuery::PRACTICE, tenant.as_str())
}

pub async fn acknowledge(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<SecurityStaff>,
    CsrfForm(form): CsrfForm<AlertAckForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let alert = alert_number(&form.alert)?;
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::RunIncidentConsole,
        practice(&tenant),
        "alert.acknowledge",
        Some(&alert.to_string()),
    )
    .await
    .map_err(forbidden)?;
    let done = console::acknowledge(&mut tx, &permit, alert, &account.id, ctx.now).await?;
    tx.commit().await?;
    let key = match done {
        Acked::Now => "alerts-acked",
        Acked::Already => "alerts-acked-already",
        Acked::NotFound => return Err(AppError::NotFound),
    };
    session.set_flash(Flash::key(key)).await?;
    Ok(back(&tenant))
}

pub async fn note(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<SecurityStaff>,
    CsrfForm(form): CsrfForm<AlertNoteForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let alert = alert_number(&form.alert)?;
    let text = form.note.trim();
    let refusal = if text.is_empty() {
        Some("alerts-note-empty")
    } else if text.chars().count() > NOTE_MAX {
        Some("alerts-note-too-long")
    } else {
        None
    };
    if let Some(key) = refusal {
        // Shown again on the page itself, never kept in the session: a note may name a patient.
        let kept = (alert.to_string(), tr().t(key), form.note.clone());
        return render(&state, &ctx, &session, &account, tenant, Some(kept)).await;
    }
    // The practice's data key made (if new) before the write transaction takes the lock.
    state.crypto.ready_field_key(&tenant).await?;
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::RunIncidentConsole,
        practice(&tenant),
        "alert.note",
        Some(&alert.to_string()),
    )
    .await
    .map_err(forbidden)?;
    let text = Phi::new(text.to_owned());
    if !console::add_note(
        &mut tx,
        &state.crypto,
        &permit,
        alert,
        &account.id,
        &text,
        ctx.now,
    )
    .await?
    {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    session.set_flash(Flash::key("alerts-noted")).await?;
    Ok(back(&tenant))
}
