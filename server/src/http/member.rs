//! What the member areas share (accounts, household, invitations): asking the policy for a
//! signed-in member, the people an account acts for, and making a member account and its
//! session. No handlers live here.

use super::error::{AppError, Result};
use super::forms::password_errors;
use super::session::{Flash, InviteVisit, Sess, SignedIn};
use super::{sealed, see_other, tr, AppState, RequestContext};
use crate::access::{self, Action, Decision, Permit, Resource, Role};
use crate::accounts::{self, Account, LoginAttempt};
use crate::audit::{self, Outcome};
use crate::billing;
use crate::identity::IdentityError;
use crate::ids::{PatientId, TenantId, UserId};
use crate::phi::Phi;
use axum::response::Response;
use patriotpay_app::forms::NewAccountForm;
use patriotpay_app::vm::{AccountFormVm, PageMeta};
use patriotpay_app::Url;

/// The page frame for a member page (the sign-out form needs the token).
pub async fn meta(session: &Sess) -> Result<PageMeta> {
    Ok(PageMeta {
        signout_csrf: Some(session.csrf_token().await?),
        ..super::page_meta()
    })
}

pub fn actor_id(user: &UserId) -> String {
    format!("user:{user}")
}

/// An audit event about a member's account (sign-in, creation) rather than a view of PHI.
pub async fn audit_event(
    state: &AppState,
    ctx: &RequestContext,
    actor: String,
    (tenant, patient): (Option<&TenantId>, Option<&PatientId>),
    action: &'static str,
    resource: Option<&str>,
    outcome: Outcome,
) -> Result<()> {
    state
        .audit
        .record(audit::Event {
            actor: &ctx.actor(actor),
            tenant,
            patient,
            action,
            resource,
            outcome,
        })
        .await?;
    Ok(())
}

/// The 404 for an id the caller may not see, someone else's or none at all (the two look the
/// same), recorded as a denied event so that walking through ids shows in the audit log.
pub async fn unseen(
    state: &AppState,
    ctx: &RequestContext,
    actor: String,
    action: &'static str,
    resource: &str,
) -> AppError {
    match audit_event(
        state,
        ctx,
        actor,
        (None, None),
        action,
        Some(resource),
        Outcome::Denied,
    )
    .await
    {
        Ok(()) => AppError::NotFound,
        Err(e) => e,
    }
}

/// The policy's answer for a member, without reading anything (which buttons to show, which
/// descriptions to hide).
pub fn decide(
    who: &Account,
    action: Action,
    tenant: &TenantId,
    patient: &PatientId,
    clinical_restricted: bool,
    now: i64,
) -> Decision {
    let on = Resource {
        tenant,
        patient: Some(patient),
        clinical_restricted,
    };
    access::decide(&who.principal, action, &on, now)
}

/// One question to the policy about a member, on a patient's record.
pub struct MemberAsk<'a> {
    pub action: Action,
    pub tenant: &'a TenantId,
    pub patient: &'a PatientId,
    pub event: &'static str,
    pub resource: Option<&'a str>,
}

/// The policy question for a member, acting as `actor`.
fn member_ask<'a>(
    ctx: &RequestContext,
    who: &'a Account,
    actor: &'a crate::audit::Actor,
    ask: MemberAsk<'a>,
) -> access::Ask<'a> {
    access::Ask {
        who: &who.principal,
        actor,
        action: ask.action,
        on: Resource {
            tenant: ask.tenant,
            patient: Some(ask.patient),
            clinical_restricted: false,
        },
        event: ask.event,
        resource: ask.resource,
        now: ctx.now,
    }
}

/// A permit for a member (the audit event is written, allowed or denied); a refusal reads as
/// "not found".
pub async fn member_permit(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    ask: MemberAsk<'_>,
) -> Result<Permit> {
    let actor = ctx.actor(actor_id(&who.id));
    Ok(access::permit_view(&state.audit, member_ask(ctx, who, &actor, ask)).await?)
}

/// `member_permit` for a change: the permit and the transaction its event was written in, for
/// the change to commit with (a refusal's event is committed at once; it reads "not found").
pub async fn member_permit_in(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    ask: MemberAsk<'_>,
) -> Result<(Permit, crate::db::WriteTx)> {
    let actor = ctx.actor(actor_id(&who.id));
    Ok(access::permit_in(&state.db, member_ask(ctx, who, &actor, ask)).await?)
}

/// A statement the member may pay: its header, once the policy said yes to `MakePayment` on
/// its patient (the event written either way; a refusal reads as "not found", as does a
/// statement that does not exist).
pub async fn payable_statement(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    statement: &crate::ids::StatementId,
    event: &'static str,
    resource: Option<&str>,
) -> Result<billing::StatementHeader> {
    let h = billing::statement_header(&state.db, statement)
        .await?
        .ok_or(AppError::NotFound)?;
    let _allowed = member_permit(
        state,
        ctx,
        who,
        MemberAsk {
            action: Action::MakePayment,
            tenant: &h.tenant_id,
            patient: &h.patient_id,
            event,
            resource,
        },
    )
    .await?;
    Ok(h)
}

/// The patients an account may act for, each once, own records first: (role, practice, patient).
pub fn people(who: &Account) -> Vec<(Role, TenantId, PatientId)> {
    let mut out: Vec<(Role, TenantId, PatientId)> = vec![];
    for role in [Role::Patient, Role::Guarantor] {
        for g in who.principal.grants.iter().filter(|g| g.role == role) {
            let Some(t) = &g.tenant else { continue };
            for p in &g.patients {
                if !out.iter().any(|(_, _, q)| q == p) {
                    out.push((role, t.clone(), p.clone()));
                }
            }
        }
    }
    out
}

pub fn iso(d: &str) -> String {
    crate::clock::display_iso_date(d)
}

/// The practice's display name ("" if it vanished, which the foreign keys prevent).
pub async fn practice_name(state: &AppState, tenant: &TenantId) -> Result<String> {
    Ok(billing::tenant(&state.db, tenant)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}

/// Whether the patient is an adult now: a guarantor then sees amounts without clinical detail,
/// and only an adult patient manages their own account and guarantors.
pub async fn adult(
    state: &AppState,
    tenant: &TenantId,
    patient: &PatientId,
    now: i64,
) -> Result<bool> {
    Ok(billing::is_adult(&state.db, &state.crypto, tenant, patient, now).await?)
}

/// Checks a new-account form; on a problem, sets the flash and returns false.
pub async fn new_account_ok(session: &Sess, form: &NewAccountForm) -> Result<bool> {
    let email = accounts::normalize_email(&form.email);
    let problem = if !accounts::valid_email(&email) {
        Some((NewAccountForm::EMAIL, "account-email-invalid"))
    } else {
        password_errors(&form.password, &form.password_confirm)
    };
    if let Some((field, key)) = problem {
        session.set_flash(Flash::on(field, key)).await?;
        return Ok(false);
    }
    Ok(true)
}

/// The new-account form's view model, with any problem carried over.
pub async fn account_form(session: &Sess, action: Url<'static>) -> Result<AccountFormVm> {
    let mut vm = AccountFormVm {
        csrf: session.csrf_token().await?,
        action,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        vm.email = f.value.clone().unwrap_or_default();
        (vm.field_error, vm.failure) = f.placed(
            &[
                NewAccountForm::EMAIL,
                NewAccountForm::PASSWORD,
                "password-confirm",
            ],
            tr().t(&f.key),
        );
    }
    Ok(vm)
}

/// The credentials a new member account gets.
pub struct Credentials {
    pub made: accounts::NewCredentials,
    /// An emailed code must confirm the address before the account is usable.
    pub needs_code: bool,
    /// The portal's own code (local accounts); Cognito sends its own.
    pub confirm: Option<accounts::ConfirmCode>,
}

/// Why new credentials were not made: a message for the form, an address that already has an
/// account (answered as if it had not: `answer_taken`), or an error.
pub enum NotMade {
    /// Catalog key: the provider's password policy refused.
    Form(&'static str),
    Taken,
    Error(AppError),
}

impl<E: Into<AppError>> From<E> for NotMade {
    fn from(e: E) -> Self {
        NotMade::Error(e.into())
    }
}

/// Makes the credentials for a new member account (for `account`, sealed from `email`): a local
/// password hash with the code that will confirm the address, or (with Cognito) a Cognito user
/// made by self sign-up. Each try counts against the sign-in limits (per email, per address)
/// until it succeeds. A sign-up left unconfirmed too long gives the address up first.
pub async fn new_credentials(
    state: &AppState,
    ctx: &RequestContext,
    account: &accounts::NewAccount,
    email: &str,
    password: String,
) -> std::result::Result<Credentials, NotMade> {
    let attempt: LoginAttempt =
        accounts::claim_attempt(&state.db, &state.crypto, email, &ctx.address, ctx.now).await?;
    accounts::release_stale_signup(&state.db, &state.crypto, email, ctx.now).await?;
    let (made, needs_code) = match state.identity.new_member(email, Phi::new(password)).await {
        Ok(made) => made,
        Err(IdentityError::EmailTaken) => return Err(NotMade::Taken),
        Err(IdentityError::PasswordPolicy) => return Err(NotMade::Form("account-password-policy")),
        Err(e) => return Err(e.into()),
    };
    attempt.release(&state.db).await?;
    let confirm = match made {
        accounts::NewCredentials::Local { .. } => {
            Some(accounts::ConfirmCode::prepare(&state.crypto, account, email, ctx.now).await?)
        }
        accounts::NewCredentials::External { .. } => None,
    };
    Ok(Credentials {
        made,
        needs_code,
        confirm,
    })
}

/// Credentials made at the provider whose local account could not be saved (a lost race) are
/// removed again, so the email is not stuck as "taken" there. Best effort; failures are logged.
pub async fn undo_sign_up(state: &AppState, email: &str, credentials: &Credentials) {
    state
        .identity
        .undo_new_member(email, &credentials.made)
        .await;
}

/// Sends a new-account form back with the provider's password-policy refusal.
pub async fn flash_password_policy(session: &Sess, key: &str, back: Url<'_>) -> Result<Response> {
    session
        .set_flash(Flash::on(NewAccountForm::PASSWORD, key))
        .await?;
    Ok(see_other(back))
}

/// On to the code page for `email`, as after any sign-up that needs a code.
async fn to_code_page(state: &AppState, session: &Sess, email: &str, now: i64) -> Result<Response> {
    session.restart(now).await?;
    sealed::set_pending_email(state, session, &accounts::normalize_email(email)).await?;
    Ok(see_other(Url::AccountConfirm))
}

/// A sign-up with an address that already has an account gets the same answer as a new one (on
/// to the code page, a new session), so the form tells no one which addresses have accounts;
/// the address's owner is emailed instead (`accounts::signup_for_taken`).
pub async fn answer_taken(
    state: &AppState,
    session: &Sess,
    email: &str,
    now: i64,
) -> Result<Response> {
    accounts::signup_for_taken(&state.db, &state.crypto, email, &state.public_url, now).await?;
    to_code_page(state, session, email, now).await
}

/// Signs a member in on this session: a new id, nothing of the link session kept (a pending,
/// verified invitation excepted).
pub async fn start_member_session(session: &Sess, user: &UserId, now: i64) -> Result<()> {
    let invitation = session
        .data()
        .await?
        .invitation
        .filter(|i| i.verified && i.invitation_id.is_some());
    session.restart(now).await?;
    session
        .update(|d| {
            d.invitation = invitation.map(|i| InviteVisit {
                invitation_id: i.invitation_id,
                verified: true,
            });
            d.member = Some(SignedIn {
                user_id: user.as_str().to_owned(),
                auth_at: now,
                mfa: false,
            });
        })
        .await?;
    Ok(())
}

/// After a member account is made: on to the emailed code (local, or Cognito unconfirmed), or
/// to sign-in (Cognito, confirmed by the pool).
pub async fn after_creation(
    state: &AppState,
    session: &Sess,
    email: &str,
    credentials: &Credentials,
    now: i64,
) -> Result<Response> {
    if credentials.needs_code {
        return to_code_page(state, session, email, now).await;
    }
    session.restart(now).await?;
    session.notice("account-created-signin").await?;
    Ok(see_other(Url::SignIn))
}
