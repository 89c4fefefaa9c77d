//! The support console (issue 11): one patient's statements, payments, pay links and messages
//! (issue 13: recipients masked, bodies never shown) for a support agent or practice admin of the
//! patient's practice, and the forms to send a fresh pay link, revoke one, or unlock a locked one
//! (with the reason the caller's identity was confirmed on the phone). Every view is a permit for
//! `ViewBalance` and every change one for `ResendPayLink` whose audit event commits with it;
//! another practice's patient or link is not found, and the attempt audited.

use super::guarantors::practice_of;
use super::messages::{display_time, line_vm};
use super::{actor_id, ask, ask_in, meta};
use crate::access::{self, Action, Permit, Resource};
use crate::accounts::Account;
use crate::billing;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, PracticeStaff, StaffWith};
use crate::http::member::unseen;
use crate::http::session::{Flash, Sess};
use crate::http::{see_other, tr, AppState, RequestContext};
use crate::ids::{LinkId, PatientId, StatementId};
use crate::link_admin::{self, LinkAdminError, LinkLine, ReasonProblem};
use crate::messages::pay_link::Texted;
use crate::payments::history;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{LinkResendForm, LinkRevokeForm, LinkUnlockForm, ViewAsForm};
use patriotpay_app::staff_console as pages;
use patriotpay_app::vm_console::{
    ConsoleLinkVm, ConsolePaymentVm, ConsoleStatementVm, ConsoleVm, UnlockFormVm,
};
use patriotpay_app::Url;

/// The console page's audit event.
const VIEW_EVENT: &str = "patient.console.view";

impl From<LinkAdminError> for AppError {
    fn from(e: LinkAdminError) -> Self {
        match e {
            LinkAdminError::Db(e) => e.into(),
            LinkAdminError::Crypto(e) => e.into(),
            // The permit was for another patient than the row: answered as not found.
            LinkAdminError::NotPermitted => AppError::NotFound,
        }
    }
}

fn on<'a>(tenant: &'a crate::ids::TenantId, patient: &'a PatientId) -> Resource<'a> {
    Resource {
        tenant,
        patient: Some(patient),
        clinical_restricted: false,
    }
}

/// The permit to see one patient on the console; an id that is no patient, or another
/// practice's patient, is not found (and the attempt audited).
async fn view_permit(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    raw: &str,
) -> Result<(PatientId, Permit)> {
    let actor = || actor_id(&account.id);
    let Some(patient) = PatientId::parse(raw) else {
        // Whatever was typed is not written to the log: it could be anything.
        return Err(unseen(state, ctx, actor(), "patient.not_found", "(malformed id)").await);
    };
    let Some(tenant) = practice_of(state, &patient).await? else {
        return Err(unseen(state, ctx, actor(), "patient.not_found", patient.as_str()).await);
    };
    let permit = ask(
        state,
        ctx,
        account,
        Action::ViewBalance,
        on(&tenant, &patient),
        VIEW_EVENT,
        Some(patient.as_str()),
    )
    .await?;
    Ok((patient, permit))
}

fn link_vm(l: &LinkLine, now: i64) -> ConsoleLinkVm {
    ConsoleLinkVm {
        id: l.id.to_string(),
        statement_date: crate::clock::display_iso_date(&l.statement_date),
        created: display_time(l.created_at),
        first_opened: l.first_used_at.map(display_time),
        failed_attempts: l.failed_attempts,
        status: l.status(now).as_str().to_owned(),
    }
}

/// Everything the console shows of the permit's patient.
async fn page_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    account: &Account,
    permit: &Permit,
) -> Result<ConsoleVm> {
    let tenant = permit.tenant();
    let patient = permit.patient().ok_or(AppError::NotFound)?;
    let name = billing::full_name(&state.db, &state.crypto, permit).await?;
    let practice = billing::tenant(&state.db, tenant)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let paused = crate::messages::reminders::paused_of(&state.db, permit).await?;
    let statements = billing::statements_of(&state.db, tenant, patient)
        .await?
        .into_iter()
        .map(|(h, balance)| ConsoleStatementVm {
            reminders_paused: paused.contains(&h.id),
            id: h.id.to_string(),
            date: crate::clock::display_iso_date(&h.statement_date),
            due: crate::clock::display_iso_date(&h.due_date),
            balance: balance.to_string(),
        })
        .collect();
    let payments = history::payments_of_patient(&state.db, permit)
        .await?
        .into_iter()
        .map(|p| ConsolePaymentVm {
            date: crate::clock::display_date_unix(p.paid_at),
            amount: p.amount.to_string(),
            status: match p.status.as_str() {
                "processing" | "failed" => p.status.clone(),
                _ => "succeeded".to_owned(),
            },
        })
        .collect();
    // The payments page is for those who may refund; nothing is read on this decision alone.
    let payments_link = access::decide(
        &account.principal,
        Action::IssueRefund,
        &on(tenant, patient),
        ctx.now,
    )
    .allowed();
    let links = link_admin::links_of(&state.db, permit)
        .await?
        .iter()
        .map(|l| link_vm(l, ctx.now))
        .collect();
    // Under the view's permit: only recipients are opened, and only to be masked.
    let messages = crate::messages::staff::of_patient(&state.db, &state.crypto, permit)
        .await?
        .iter()
        .map(|m| line_vm(m, ctx.now))
        .collect();
    Ok(ConsoleVm {
        csrf: session.csrf_token().await?,
        patient_id: patient.to_string(),
        patient_name: name.into_inner(),
        practice,
        statements,
        payments,
        payments_link,
        links,
        messages,
        notice: None,
        new_link: None,
        unlock: None,
        view_as_error: None,
        view_as_ticket: String::new(),
    })
}

fn render(status: StatusCode, vm: ConsoleVm) -> Response {
    (status, Html(pages::console(meta(), vm))).into_response()
}

/// The console page, with what the last form did.
pub async fn console_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<PracticeStaff>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let (_, permit) = view_permit(&state, &ctx, &account, &raw).await?;
    let mut vm = page_vm(&state, &ctx, &session, &account, &permit).await?;
    if let Some(f) = session.take_flash().await? {
        // Only the console's own messages and the view-as ones; anything else was meant for
        // another page. A view-as start refused for one field comes back on that field.
        if f.key.starts_with("staff-console-") || f.key.starts_with("viewas-") {
            let fields = [ViewAsForm::REASON, ViewAsForm::TICKET];
            let (field, notice) = f.placed(&fields, tr().t(&f.key));
            if field.is_some() {
                vm.view_as_ticket = f.value.clone().unwrap_or_default();
            }
            vm.view_as_error = field;
            vm.notice = notice;
        }
    }
    Ok(render(StatusCode::OK, vm))
}

/// After a change: back to the patient's console, with its message.
async fn back_to_console(session: &Sess, patient: &PatientId, key: &str) -> Result<Response> {
    session.set_flash(Flash::key(key)).await?;
    Ok(see_other(Url::StaffPatient(patient.as_str())))
}

/// A fresh pay link for one statement; the statement's older live links are revoked. The link
/// is texted to the patient through the outbox in the change's transaction; only when it cannot
/// be (the number opted out, or there is none) is it shown, in this response only (its token is
/// stored nowhere else), for the caller to read to the patient.
pub async fn resend(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<LinkResendForm>,
) -> Result<Response> {
    let actor = || actor_id(&account.id);
    let Some(statement) = StatementId::parse(&form.statement) else {
        return Err(unseen(
            &state,
            &ctx,
            actor(),
            "statement.not_found",
            "(malformed id)",
        )
        .await);
    };
    let Some(header) = billing::statement_header(&state.db, &statement).await? else {
        return Err(unseen(
            &state,
            &ctx,
            actor(),
            "statement.not_found",
            statement.as_str(),
        )
        .await);
    };
    // The text is sealed inside the change's transaction: its key must exist before it opens.
    state.crypto.ready_field_key(&header.tenant_id).await?;
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ResendPayLink,
        on(&header.tenant_id, &header.patient_id),
        "paylink.resend",
        Some(statement.as_str()),
    )
    .await?;
    let issued =
        link_admin::reissue(&mut tx, &permit, &statement, ctx.now, state.link_ttl_days).await?;
    let texted = crate::messages::pay_link::text_pay_link(
        &mut tx,
        &state.crypto,
        &header.tenant_id,
        &header.patient_id,
        &statement,
        &issued.token,
        &state.public_url,
        crate::messages::pay_link::Kind::PayLink,
        ctx.now,
    )
    .await
    .map_err(|e| AppError::Internal(e.into()))?;
    tx.commit().await?;
    let (_, view) = view_permit(&state, &ctx, &account, header.patient_id.as_str()).await?;
    let mut vm = page_vm(&state, &ctx, &session, &account, &view).await?;
    vm.notice = Some(match texted {
        Texted::Queued { last_digits } => tr().ta(
            "staff-console-resent-texted",
            &[("digits", last_digits.as_str())],
        ),
        // No text can go: the link is shown once for the agent to read out.
        Texted::OptedOut | Texted::NoNumber => {
            vm.new_link = Some(format!(
                "{}{}",
                state.public_url,
                Url::PayLink(&issued.token)
            ));
            tr().t(if texted == Texted::OptedOut {
                "staff-console-resent-opted-out"
            } else {
                "staff-console-resent-no-number"
            })
        }
    });
    Ok(render(StatusCode::OK, vm))
}

/// The link named by a form, with its practice and patient; an id that is no link is not found
/// (and the attempt audited).
async fn link_of(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    raw: &str,
) -> Result<crate::links::PayLink> {
    let actor = || actor_id(&account.id);
    let Some(id) = LinkId::parse(raw) else {
        return Err(unseen(state, ctx, actor(), "paylink.not_found", "(malformed id)").await);
    };
    match crate::links::find(&state.db, &id).await? {
        Some(link) => Ok(link),
        None => Err(unseen(state, ctx, actor(), "paylink.not_found", id.as_str()).await),
    }
}

/// Revokes one pay link of the patient.
pub async fn revoke(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<LinkRevokeForm>,
) -> Result<Response> {
    let link = link_of(&state, &ctx, &account, &form.link).await?;
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ResendPayLink,
        on(&link.tenant_id, &link.patient_id),
        "paylink.revoke",
        Some(link.id.as_str()),
    )
    .await?;
    let revoked = link_admin::revoke(&mut tx, &permit, &link.id, ctx.now).await?;
    tx.commit().await?;
    let key = if revoked {
        "staff-console-revoked"
    } else {
        "staff-console-revoked-already"
    };
    back_to_console(&session, &link.patient_id, key).await
}

/// Unlocks a locked pay link once the caller confirmed the patient's identity on the phone: the
/// reason is required and kept encrypted with the unlock. A refusal shows the console again
/// with the reason as typed.
pub async fn unlock(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<LinkUnlockForm>,
) -> Result<Response> {
    let link = link_of(&state, &ctx, &account, &form.link).await?;
    let reason = match link_admin::check_reason(&form.reason) {
        Ok(reason) => reason,
        Err(problem) => {
            // Shown again only to whom the page may be shown: the view's permit decides (and
            // records a refusal); nothing is changed.
            let (_, view) = view_permit(&state, &ctx, &account, link.patient_id.as_str()).await?;
            let mut vm = page_vm(&state, &ctx, &session, &account, &view).await?;
            let key = match problem {
                ReasonProblem::Empty => "staff-console-unlock-empty",
                ReasonProblem::TooLong => "staff-console-unlock-too-long",
            };
            vm.unlock = Some(UnlockFormVm {
                link: link.id.to_string(),
                reason: form.reason.clone(),
                error: tr().t(key),
            });
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm));
        }
    };
    // Readied before the transaction: encrypting inside it then creates no key.
    state.crypto.ready_field_key(&link.tenant_id).await?;
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::ResendPayLink,
        on(&link.tenant_id, &link.patient_id),
        "paylink.unlock",
        Some(link.id.as_str()),
    )
    .await?;
    let unlocked = link_admin::unlock(
        &mut tx,
        &state.crypto,
        &permit,
        &link.id,
        &account.id,
        &reason,
        ctx.now,
    )
    .await?;
    // Committed either way: the event records the attempt, and nothing else changed if the
    // link was not locked.
    tx.commit().await?;
    let key = if unlocked {
        "staff-console-unlocked"
    } else {
        "staff-console-not-locked"
    };
    back_to_console(&session, &link.patient_id, key).await
}
