//! Staff area: its routes (the support console's in `console`, a practice's messages in
//! `messages`, the security officer's alerts in `alerts`), and what its pages share (the
//! staff audit actor, staff events that name no practice, asking the policy as a staff member,
//! role wording).

mod activity;
mod alerts;
mod api_keys;
mod audit_log;
mod break_glass;
mod console;
mod enrol;
mod guarantors;
mod home;
mod import;
mod import_report;
mod messages;
mod messaging;

pub use import::{sweep as sweep_uploads, uploads_dir};
mod refunds;
mod search;
mod signin;
mod view_as;

use super::error::{AppError, Result};
use super::extract::RoleSet;
use super::{tr, AppState, RequestContext, Routes};
use crate::access::{self, Action, Permit, Refused, Resource, Role};
use crate::accounts::Account;
use crate::audit::{self, Outcome};
pub(super) use crate::http::member::actor_id;
use crate::ids::UserId;
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm::PageMeta;

/// The staff pages and forms.
pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::Staff, home::home)
        .page(Url::StaffLogin, signin::login_form)
        .form(Url::StaffLogin, signin::login_submit)
        .page(Url::StaffMfa, signin::mfa_form)
        .form(Url::StaffMfa, signin::mfa_submit)
        .page(Url::StaffNewPassword, signin::new_password_form)
        .form(Url::StaffNewPassword, signin::new_password_submit)
        .page(Url::StaffForgot, signin::forgot_form)
        .form(Url::StaffForgot, signin::forgot_submit)
        .page(Url::StaffReset, signin::reset_form)
        .form(Url::StaffReset, signin::reset_submit)
        .form(Url::StaffSignOut, signin::signout)
        .form(Url::StaffSignOutEverywhere, signin::signout_everywhere)
        .page(Url::StaffEnrolLink(ANY), enrol::open_enrolment)
        .form(Url::StaffEnrolLink(ANY), enrol::open_enrolment_confirmed)
        .page(Url::StaffEnrol, enrol::enrol_form)
        .form(Url::StaffEnrol, enrol::enrol_submit)
        .phi_form(Url::StaffSearch, search::search)
        .phi_form(Url::StaffGuarantorInvite, guarantors::invite)
        // Its page shows no patient data, but it changes a patient's record and answers 2xx
        // only after a permit: guarded like the others.
        .phi_form(Url::StaffGuarantorRevoke, guarantors::revoke)
        .phi_form(Url::StaffBreakGlass, break_glass::break_glass)
        // The support console: a patient's statements, payments and pay links.
        .phi_page(Url::StaffPatient(ANY), console::console_page)
        .phi_form(Url::StaffLinkResend, console::resend)
        .phi_form(Url::StaffLinkRevoke, console::revoke)
        .phi_form(Url::StaffLinkUnlock, console::unlock)
        .phi_page(Url::StaffPatientPayments(ANY), refunds::payments_page)
        .phi_form(Url::StaffRefund, refunds::refund)
        // Who viewed which patient's record is itself protected: a permit on every view.
        .phi_page(Url::StaffAudit, audit_log::audit_page)
        // Starting a view reads the patient's name for the banner under its permit.
        .phi_form(Url::StaffViewAs, view_as::start)
        .form(Url::StaffViewAsStop, view_as::stop)
        .form(Url::StaffViewAsConsent, view_as::consent)
        .page(Url::StaffApiKeys, api_keys::page)
        .form(Url::StaffApiKeys, api_keys::create)
        .form(Url::StaffApiKeyRevoke, api_keys::revoke)
        .page(Url::StaffActOnBehalf, view_as::settings_page)
        .form(Url::StaffActOnBehalf, view_as::set)
        // Statement import (practice admins): the page's history view is audited; the upload is
        // the one multipart form (its token is read from the body by the CSRF layer).
        .phi_page(Url::StaffImport, import::page)
        .form(Url::StaffImport, import::upload)
        .form(Url::StaffImportConfirm, import::confirm)
        .page(Url::StaffImportReport, import::report)
        // A practice's undelivered messages and its patients' replies (opened under a permit).
        .phi_page(Url::StaffMessages, messages::page)
        .form(Url::StaffMessageRead, messages::mark_read)
        // A practice's settings for its texts (no PHI), and a statement's reminders paused.
        .page(Url::StaffMessaging, messaging::page)
        .form(Url::StaffMessagingCadence, messaging::cadence)
        .form(Url::StaffMessagingFooter, messaging::footer)
        .form(Url::StaffMessagingText, messaging::text)
        .phi_form(Url::StaffReminders, messaging::reminders)
        // The security officer's alert console: notes may name a patient (sealed, permitted).
        .phi_page(Url::StaffAlerts, alerts::page)
        .phi_form(Url::StaffAlertAck, alerts::acknowledge)
        .phi_form(Url::StaffAlertNote, alerts::note)
}

/// Staff pages name no practice in the header and carry no sign-out form there.
fn meta() -> PageMeta {
    crate::http::page_meta()
}

/// "Practice admin", "Support agent"… as the catalog words them.
fn role_label(role: Role) -> String {
    tr().t(&format!("role-{}", role.as_str()))
}

/// Staff who manage a patient's guarantors: the only staff role the policy lets invite or
/// revoke. Checked in the signature where a refusal was never audited (revocation).
struct GuarantorAdmins;

impl RoleSet for GuarantorAdmins {
    const ROLES: &'static [Role] = &[Role::PracticeAdmin];
}

/// An event about a staff account itself (sign-in steps, sign-out, enrolment): no practice or
/// patient data is involved, so no permit; `None` when no account is known yet.
async fn audit_user(
    state: &AppState,
    ctx: &RequestContext,
    user: Option<&UserId>,
    action: &'static str,
    outcome: Outcome,
) -> Result<()> {
    let actor = ctx.actor(user.map(actor_id).unwrap_or_else(|| "anonymous".into()));
    state
        .audit
        .record(audit::Event {
            actor: &actor,
            tenant: None,
            patient: None,
            action,
            resource: user.map(|u| u.as_str()),
            outcome,
        })
        .await?;
    Ok(())
}

/// What a staff member asks the policy: the action, on what, and the audit event's name and
/// resource.
struct StaffAsk<'a> {
    action: Action,
    on: Resource<'a>,
    event: &'static str,
    resource: Option<&'a str>,
}

fn staff_ask<'a>(
    ctx: &RequestContext,
    account: &'a Account,
    actor: &'a audit::Actor,
    ask: StaffAsk<'a>,
) -> access::Ask<'a> {
    access::Ask {
        who: &account.principal,
        actor,
        action: ask.action,
        on: ask.on,
        event: ask.event,
        resource: ask.resource,
        now: ctx.now,
    }
}

/// Asks the policy on behalf of a staff member; the permit writes the audit event, allowed or
/// denied. The caller decides how a refusal reads (not found, or forbidden).
async fn ask(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    action: Action,
    on: Resource<'_>,
    event: &'static str,
    resource: Option<&str>,
) -> std::result::Result<Permit, Refused> {
    let actor = ctx.actor(actor_id(&account.id));
    let q = StaffAsk {
        action,
        on,
        event,
        resource,
    };
    access::permit_view(&state.audit, staff_ask(ctx, account, &actor, q)).await
}

/// `ask` for a change: the permit comes with the transaction its event was written in, for the
/// change to commit with (a refusal's event is committed at once).
async fn ask_in(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    action: Action,
    on: Resource<'_>,
    event: &'static str,
    resource: Option<&str>,
) -> std::result::Result<(Permit, crate::db::WriteTx), Refused> {
    let actor = ctx.actor(actor_id(&account.id));
    let q = StaffAsk {
        action,
        on,
        event,
        resource,
    };
    access::permit_in(&state.db, staff_ask(ctx, account, &actor, q)).await
}

/// A practice as a whole, as the policy is asked about it (no patient named).
fn practice(tenant: &crate::ids::TenantId) -> Resource<'_> {
    Resource {
        tenant,
        patient: None,
        clinical_restricted: false,
    }
}

/// A refusal that should say 403 rather than "not found" (the practice is not secret).
fn forbidden(e: Refused) -> AppError {
    match e {
        Refused::Denied(_) => AppError::Forbidden,
        e => e.into(),
    }
}
