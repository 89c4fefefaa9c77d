//! A practice's settings for its texts (issue 13), for its practice admins (`ManageSmsSettings`):
//! the reminder cadence, the "is this text really from my practice?" footer, and the practice's
//! own wording of each text, checked on save (a refused wording comes back with what was typed
//! and why). Each change is a permit whose audit event commits with it. Also the support
//! console's "pause / resume reminders" of one statement (`ResendPayLink`, like a new link).

use super::{actor_id, ask_in, forbidden, meta, practice, GuarantorAdmins};
use crate::access::{self, Action, Resource};
use crate::accounts::Account;
use crate::billing::{self, Tenant};
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, PracticeStaff, StaffWith};
use crate::http::member::unseen;
use crate::http::session::{Flash, Sess};
use crate::http::{see_other, see_other_query, tr, AppState, RequestContext};
use crate::ids::{StatementId, TenantId};
use crate::intake::Language;
use crate::messages::template::{Encoding, TemplateCheck};
use crate::messages::{reminders, wording};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{
    CadenceForm, FooterForm, MessagingQuery, RemindersForm, TextWordingForm,
};
use patriotpay_app::vm_messages::{MessagingSettingsVm, TextWordingVm};
use patriotpay_app::Url;

/// Practices whose text settings this account may change (the policy only).
async fn managed(state: &AppState, account: &Account, now: i64) -> Result<Vec<Tenant>> {
    let mut out: Vec<Tenant> = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        let on = practice(t);
        if !access::decide(&account.principal, Action::ManageSmsSettings, &on, now).allowed() {
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

/// Whether the home page links here (the policy only; nothing is read).
pub(super) fn can_manage(account: &Account, now: i64) -> bool {
    account.principal.grants.iter().any(|g| {
        g.tenant.as_ref().is_some_and(|t| {
            let on = practice(t);
            access::decide(&account.principal, Action::ManageSmsSettings, &on, now).allowed()
        })
    })
}

/// "1 segment (GSM-7), 131 characters with a link".
fn measure(c: &TemplateCheck) -> String {
    let encoding = match c.encoding {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    };
    tr().ta(
        "messaging-measure",
        &[
            ("segments", &c.segments.to_string()),
            ("encoding", encoding),
            ("chars", &c.chars.to_string()),
        ],
    )
}

fn label(template: &str, language: Language) -> String {
    tr().t(&format!("messaging-text-{template}-{}", language.code()))
}

/// What a refused form brings back to the page: the typed text and why.
#[derive(Default)]
struct Typed {
    cadence: Option<(String, bool, String)>,
    text: Option<(&'static str, Language, String, Vec<String>)>,
}

/// Renders the settings of `tenant` (already permitted), with what a refused form typed.
async fn render(
    state: &AppState,
    session: &Sess,
    account: &Account,
    now: i64,
    (tenant, typed, status): (&TenantId, Typed, StatusCode),
) -> Result<Response> {
    let mine = managed(state, account, now).await?;
    let mut conn = state.db.pool().acquire().await?;
    let settings = wording::settings(&mut conn, tenant, &state.public_url)
        .await?
        .ok_or(AppError::NotFound)?;
    drop(conn);
    let name = mine
        .iter()
        .find(|t| &t.id == tenant)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let days = settings
        .reminder_days
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (reminder_days, remind_on_due, cadence_error) = match typed.cadence {
        Some((days, on_due, error)) => (days, on_due, Some(error)),
        None => (days, settings.remind_on_due_date, None),
    };
    let texts = settings
        .texts
        .into_iter()
        .map(|e| {
            let mut vm = TextWordingVm {
                template: e.template.to_owned(),
                language: e.language.code().to_owned(),
                label: label(e.template, e.language),
                body: e.body,
                custom: e.custom,
                measure: e.check.as_ref().map(measure),
                errors: vec![],
            };
            if let Some((t, l, body, errors)) = &typed.text {
                if *t == e.template && *l == e.language {
                    vm.body = body.clone();
                    vm.errors = errors.clone();
                    vm.measure = None;
                }
            }
            vm
        })
        .collect();
    let notice = match session.take_flash().await? {
        Some(f) if f.key.starts_with("messaging-") => Some(tr().t(&f.key)),
        _ => None,
    };
    let vm = MessagingSettingsVm {
        csrf: session.csrf_token().await?,
        others: mine
            .iter()
            .filter(|t| &t.id != tenant)
            .map(|t| (t.id.to_string(), t.name.clone()))
            .collect(),
        practice: (tenant.to_string(), name),
        notice,
        reminder_days,
        remind_on_due,
        cadence_error,
        footer: settings.check_link_footer,
        check_url: format!(
            "{}{}",
            state.public_url.trim_end_matches('/'),
            Url::CheckLink.path()
        ),
        texts,
    };
    let html = patriotpay_app::staff_messaging::settings(meta(), vm);
    Ok((status, Html(html)).into_response())
}

/// The settings page: the practice in the query, else the first the admin manages. Reading the
/// settings is no PHI, so the policy is asked without an audit event.
pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    Query(q): Query<MessagingQuery>,
) -> Result<Response> {
    let tenant = if q.practice.trim().is_empty() {
        managed(&state, &account, ctx.now)
            .await?
            .first()
            .map(|t| t.id.clone())
            .ok_or(AppError::Forbidden)?
    } else {
        TenantId::parse(q.practice.trim()).ok_or(AppError::BadRequest)?
    };
    may_manage(&account, &tenant, ctx.now)?;
    let typed = (&tenant, Typed::default(), StatusCode::OK);
    render(&state, &session, &account, ctx.now, typed).await
}

/// Refuses (403) an admin who may not change `tenant`'s settings; nothing is recorded (used
/// where a refused form is shown again, before any change).
fn may_manage(account: &Account, tenant: &TenantId, now: i64) -> Result<()> {
    let on = practice(tenant);
    if access::decide(&account.principal, Action::ManageSmsSettings, &on, now).allowed() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// The settings permit for `tenant`: its audit event `event` (naming `resource`) commits with
/// the change made in the returned transaction.
async fn change(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    tenant: &TenantId,
    (event, resource): (&'static str, &str),
) -> Result<crate::db::WriteTx> {
    let action = Action::ManageSmsSettings;
    let (_permit, tx) = ask_in(
        state,
        ctx,
        account,
        action,
        practice(tenant),
        event,
        Some(resource),
    )
    .await
    .map_err(forbidden)?;
    Ok(tx)
}

fn back(tenant: &TenantId) -> Response {
    see_other_query(
        Url::StaffMessaging,
        MessagingQuery::PRACTICE,
        tenant.as_str(),
    )
}

fn tenant_of(raw: &str) -> Result<TenantId> {
    TenantId::parse(raw.trim()).ok_or(AppError::BadRequest)
}

/// Sets the reminder cadence; a cadence that cannot be read comes back with what was typed.
pub async fn cadence(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<CadenceForm>,
) -> Result<Response> {
    let tenant = tenant_of(&form.practice)?;
    let on_due = form.on_due == "on";
    let days = match wording::parse_days(&form.days) {
        Ok(d) => d,
        Err(why) => {
            may_manage(&account, &tenant, ctx.now)?;
            let typed = Typed {
                cadence: Some((form.days, on_due, why.to_owned())),
                ..Typed::default()
            };
            let args = (&tenant, typed, StatusCode::UNPROCESSABLE_ENTITY);
            return render(&state, &session, &account, ctx.now, args).await;
        }
    };
    let mut tx = change(
        &state,
        &ctx,
        &account,
        &tenant,
        ("practice.reminders.set", tenant.as_str()),
    )
    .await?;
    wording::set_cadence(&mut tx, &tenant, &days, on_due).await?;
    tx.commit().await?;
    session
        .set_flash(Flash::key("messaging-cadence-saved"))
        .await?;
    Ok(back(&tenant))
}

/// Turns the check-page footer on or off.
pub async fn footer(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<FooterForm>,
) -> Result<Response> {
    let tenant = tenant_of(&form.practice)?;
    let (on, event) = match form.enabled.as_str() {
        "on" => (true, "practice.texts.footer.on"),
        "off" => (false, "practice.texts.footer.off"),
        _ => return Err(AppError::BadRequest),
    };
    let mut tx = change(&state, &ctx, &account, &tenant, (event, tenant.as_str())).await?;
    wording::set_footer(&mut tx, &tenant, on).await?;
    tx.commit().await?;
    session
        .set_flash(Flash::key("messaging-footer-saved"))
        .await?;
    Ok(back(&tenant))
}

/// Saves the practice's wording of one text (once it passes the check), or goes back to the
/// built-in one.
pub async fn text(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<TextWordingForm>,
) -> Result<Response> {
    let tenant = tenant_of(&form.practice)?;
    let which = wording::editable(&form.template, &form.language).ok_or(AppError::BadRequest)?;
    // `Some(wording)` to save (checked first: a refused one comes back as typed), `None` to
    // go back to the built-in wording.
    let (event, accepted) = match form.action.as_str() {
        "save" => match wording::accept(&form.body) {
            Ok(a) => ("practice.texts.saved", Some(a)),
            Err(errors) => {
                may_manage(&account, &tenant, ctx.now)?;
                let errors = errors.iter().map(ToString::to_string).collect();
                let typed = Typed {
                    text: Some((which.0, which.1, form.body, errors)),
                    ..Typed::default()
                };
                let args = (&tenant, typed, StatusCode::UNPROCESSABLE_ENTITY);
                return render(&state, &session, &account, ctx.now, args).await;
            }
        },
        "reset" => ("practice.texts.reset", None),
        _ => return Err(AppError::BadRequest),
    };
    let resource = format!("{}:{}:{}", tenant, which.0, which.1.code());
    let mut tx = change(&state, &ctx, &account, &tenant, (event, &resource)).await?;
    let key = match &accepted {
        Some(a) => {
            let by = actor_id(&account.id);
            wording::save_text(&mut tx, &tenant, which, a, &by, ctx.now).await?;
            "messaging-text-saved"
        }
        None => {
            wording::reset_text(&mut tx, &tenant, which).await?;
            "messaging-text-reset"
        }
    };
    tx.commit().await?;
    session.set_flash(Flash::key(key)).await?;
    Ok(back(&tenant))
}

/// Pauses or resumes one statement's reminders from the support console.
pub async fn reminders(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<RemindersForm>,
) -> Result<Response> {
    let actor = || actor_id(&account.id);
    let header = match StatementId::parse(&form.statement) {
        Some(s) => billing::statement_header(&state.db, &s).await?,
        None => None,
    };
    let Some(header) = header else {
        let e = unseen(&state, &ctx, actor(), "statement.not_found", "(unknown)").await;
        return Err(e);
    };
    let (pause, event, key) = match form.action.as_str() {
        "pause" => (
            true,
            "statement.reminders.pause",
            "staff-console-reminders-paused",
        ),
        "resume" => (
            false,
            "statement.reminders.resume",
            "staff-console-reminders-resumed",
        ),
        _ => return Err(AppError::BadRequest),
    };
    let on = Resource {
        tenant: &header.tenant_id,
        patient: Some(&header.patient_id),
        clinical_restricted: false,
    };
    let (_permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ResendPayLink,
        on,
        event,
        Some(header.id.as_str()),
    )
    .await?;
    let statement = &header.id;
    let changed = if pause {
        reminders::pause_in(&mut tx, statement, ctx.now).await
    } else {
        reminders::resume(&mut tx, statement).await
    }
    .map_err(|e| AppError::Internal(e.into()))?;
    tx.commit().await?;
    let key = if changed {
        key
    } else {
        "staff-console-reminders-unchanged"
    };
    session.set_flash(Flash::key(key)).await?;
    Ok(see_other(Url::StaffPatient(header.patient_id.as_str())))
}
