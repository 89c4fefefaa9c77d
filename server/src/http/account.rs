//! Patient and guarantor accounts: creating one after paying from a link (local, or Cognito with
//! its emailed code), password sign-in, and a patient's own guarantor invitations and
//! revocations; the checks and helpers the household and invitation pages share.

use super::error::AppError;
use super::household::home_vm;
use super::patient::require;
use super::session::{self as sess, Flash, Stage};
use super::{AppState, RequestContext};
use crate::access::{self, Action, Decision, Resource, Role};
use crate::accounts::{self, Account, AccountError, Kind};
use crate::audit::{self, Outcome};
use crate::billing;
use crate::guarantors::{self};
use crate::identity::{IdentityError, Step};
use crate::ids::{InvitationId, PatientId, TenantId, UserId};
use crate::links::{self};
use crate::phi::Phi;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use patriotpay_app::vm::*;
use patriotpay_app::{account as pages, Tr};
use tower_sessions::Session;

pub(super) type Result<T> = std::result::Result<T, AppError>;

pub(super) fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

pub(super) fn tr() -> Tr {
    Tr::default()
}

pub(super) async fn meta(session: &Session) -> Result<PageMeta> {
    Ok(PageMeta {
        signout_csrf: Some(sess::csrf_token(session).await?),
        ..Default::default()
    })
}

pub(super) fn actor_id(user: &UserId) -> String {
    format!("user:{user}")
}

pub(super) async fn audit_event(
    state: &AppState,
    ctx: &RequestContext,
    actor: String,
    (tenant, patient): (Option<&TenantId>, Option<&PatientId>),
    action: &'static str,
    resource: Option<&str>,
    outcome: Outcome,
) -> Result<()> {
    audit::record(
        state.db.pool(),
        audit::Event {
            actor: &ctx.actor(actor),
            tenant,
            patient,
            action,
            resource,
            outcome,
        },
    )
    .await?;
    Ok(())
}

/// The signed-in member (patient or guarantor), or a redirect to sign-in. Checked on every
/// request: the account is enabled, of the member kind, and its sessions were not revoked.
pub(super) async fn member(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<Account, Response>> {
    super::staff::signed_in_as(state, session, sess::KEY_MEMBER, Kind::Member, "/signin").await
}

/// The credentials a new member account gets: a local password hash, or (with Cognito) a
/// Cognito user made by self sign-up. `Ok(Err(key))` is a message for the form. The flag says
/// whether Cognito still wants the code it emailed.
pub(super) async fn new_credentials(
    state: &AppState,
    address: &str,
    email: &str,
    password: String,
) -> Result<std::result::Result<(accounts::NewCredentials, bool), &'static str>> {
    // Each try counts against the sign-in limits (per email, per address) until it succeeds,
    // so the "email in use" answer cannot be used to sweep for accounts.
    let attempt =
        match accounts::claim_attempt(&state.db, &state.crypto, email, address, state.clock.now())
            .await?
        {
            Ok(a) => a,
            Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
        };
    let made = match state.identity.new_member(email, Phi::new(password)).await {
        Ok(made) => made,
        Err(IdentityError::EmailTaken) => return Ok(Err("account-email-taken")),
        Err(IdentityError::PasswordPolicy) => return Ok(Err("account-password-policy")),
        Err(e) => return Err(e.into()),
    };
    accounts::release_attempt(&state.db, attempt).await?;
    Ok(Ok(made))
}

/// After a member account is made: signed in at once (local), or on to the emailed code
/// (Cognito, unconfirmed), or to sign-in (Cognito, confirmed by the pool).
pub(super) async fn after_creation(
    state: &AppState,
    session: &Session,
    user: &UserId,
    email: &str,
    credentials: &accounts::NewCredentials,
    needs_code: bool,
    notice: &str,
) -> Result<Response> {
    if let accounts::NewCredentials::Local { .. } = credentials {
        start_member_session(state, session, user).await?;
        sess::set_flash(
            session,
            Flash {
                key: notice.into(),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/account"));
    }
    sess::restart(session, state.clock.now()).await?;
    let email = accounts::normalize_email(email);
    if needs_code {
        set_pending_email(state, session, &email).await?;
        return Ok(see_other("/account/confirm"));
    }
    sess::notice(session, "account-created-signin").await?;
    Ok(see_other("/signin"))
}

/// Sends a new-account form back with a problem found after validation (email in use, or a
/// password Cognito's policy refused).
pub(super) async fn flash_email_problem(
    session: &Session,
    key: &str,
    back: &str,
) -> Result<Response> {
    let field = if key == "account-email-taken" {
        "email"
    } else {
        "password"
    };
    sess::set_flash(
        session,
        Flash {
            key: key.into(),
            field: Some(field.into()),
            value: None,
            arg: None,
        },
    )
    .await?;
    Ok(see_other(back))
}

/// The email of a sign-up waiting for its code. Session records are plain JSON in the database,
/// so it is kept sealed under the platform's keys, like Cognito tokens.
async fn set_pending_email(state: &AppState, session: &Session, email: &str) -> Result<()> {
    use base64::Engine;
    let ct = state
        .crypto
        .encrypt(pending_aad(), email.as_bytes())
        .await?;
    session
        .insert(
            sess::KEY_CONFIRM_EMAIL,
            base64::engine::general_purpose::STANDARD.encode(ct),
        )
        .await?;
    Ok(())
}

async fn pending_email(state: &AppState, session: &Session) -> Result<Option<String>> {
    use base64::Engine;
    let Some(b64) = session.get::<String>(sess::KEY_CONFIRM_EMAIL).await? else {
        return Ok(None);
    };
    let ct = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| AppError::Internal(e.into()))?;
    let plain = state.crypto.decrypt(pending_aad(), &ct).await?;
    Ok(Some(
        String::from_utf8(plain.to_vec()).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

fn pending_aad() -> crate::crypto::FieldAad<'static> {
    crate::crypto::FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "confirm_email",
        row: "pending-sign-up",
    }
}

/// Cognito emails a fresh code (the first may be lost, or the tab closed before it arrived).
pub async fn confirm_resend(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(email) = pending_email(&state, &session).await? else {
        return Ok(see_other("/signin"));
    };
    // Each resend counts against the limits, so the page cannot be used to flood an inbox.
    if let Err(retry_after_secs) = accounts::claim_attempt(
        &state.db,
        &state.crypto,
        &email,
        &ctx.address,
        state.clock.now(),
    )
    .await?
    {
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    state.identity.resend_member_code(&email).await?;
    sess::notice(&session, "account-code-resent").await?;
    Ok(see_other("/account/confirm"))
}

pub async fn confirm_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    let Some(email) = pending_email(&state, &session).await? else {
        return Ok(see_other("/signin"));
    };
    let mut vm = ConfirmCodeVm {
        csrf: sess::csrf_token(&session).await?,
        email,
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(&session).await? {
        match f.key.as_str() {
            "account-code-resent" => vm.notice = Some(tr().t(&f.key)),
            _ => vm.failure = Some(tr().t(&f.key)),
        }
    }
    Ok(Html(pages::confirm_code(PageMeta::default(), vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// The code Cognito emailed at sign-up. Attempts count against the same limits as sign-in.
pub async fn confirm_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(email) = pending_email(&state, &session).await? else {
        return Ok(see_other("/signin"));
    };
    let now = state.clock.now();
    let attempt =
        match accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await? {
            Ok(a) => a,
            Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
        };
    match state.identity.confirm_member(&email, &form.code).await {
        Ok(()) => {
            accounts::release_attempt(&state.db, attempt).await?;
            session.remove::<String>(sess::KEY_CONFIRM_EMAIL).await?;
            sess::notice(&session, "account-confirmed").await?;
            Ok(see_other("/signin"))
        }
        Err(IdentityError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            Err(AppError::Unavailable(m))
        }
        Err(IdentityError::Unsupported) => Err(AppError::NotFound),
        Err(_) => {
            sess::notice(&session, "account-confirm-failed").await?;
            Ok(see_other("/account/confirm"))
        }
    }
}

pub(super) async fn member_post(
    state: &AppState,
    session: &Session,
    csrf: &str,
) -> Result<std::result::Result<Account, Response>> {
    if !sess::csrf_ok(session, csrf).await? {
        return Err(AppError::Forbidden);
    }
    member(state, session).await
}

pub(super) fn decide(
    state: &AppState,
    who: &Account,
    action: Action,
    tenant: &TenantId,
    patient: &PatientId,
    clinical_restricted: bool,
) -> Decision {
    let on = Resource {
        tenant,
        patient: Some(patient),
        clinical_restricted,
    };
    access::decide(&who.principal, action, &on, state.clock.now())
}

/// The patients an account may act for, each once, own records first: (role, practice, patient).
pub(super) fn people(who: &Account) -> Vec<(Role, TenantId, PatientId)> {
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

pub(super) fn iso(d: &str) -> String {
    crate::clock::display_iso_date(d)
}

/// Whether a statement's clinical descriptions are hidden from a guarantor: the dependant is an
/// adult now. (Confidential lines are decided line by line.)
pub(super) async fn adult(
    state: &AppState,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<bool> {
    let (dob, _) = billing::identity_answers(&state.db, &state.crypto, tenant, patient).await?;
    Ok(guarantors::is_adult(dob.expose(), state.clock.now()))
}

pub(super) fn password_errors(
    password: &str,
    confirm: &str,
) -> Option<(&'static str, &'static str)> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        Some(("password", "staff-password-weak"))
    } else if password != confirm {
        Some(("password-confirm", "staff-password-mismatch"))
    } else {
        None
    }
}

#[derive(serde::Deserialize)]
pub struct NewAccountForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) email: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) password_confirm: String,
    /// On the invitation page: "create" (new account) or "existing" (signed in already).
    #[serde(default)]
    pub(super) mode: String,
}

/// Checks a new-account form; on a problem, sets the flash and returns false.
pub(super) async fn new_account_ok(session: &Session, form: &NewAccountForm) -> Result<bool> {
    let email = accounts::normalize_email(&form.email);
    let problem = if !accounts::valid_email(&email) {
        Some(("email", "account-email-invalid"))
    } else {
        password_errors(&form.password, &form.password_confirm)
    };
    if let Some((field, key)) = problem {
        sess::set_flash(
            session,
            Flash {
                key: key.into(),
                field: Some(field.into()),
                value: None,
                arg: None,
            },
        )
        .await?;
        return Ok(false);
    }
    Ok(true)
}

pub(super) async fn account_form(session: &Session, action: &'static str) -> Result<AccountFormVm> {
    let mut vm = AccountFormVm {
        csrf: sess::csrf_token(session).await?,
        action,
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(session).await? {
        vm.email = f.value.clone().unwrap_or_default();
        (vm.field_error, vm.failure) =
            f.placed(&["email", "password", "password-confirm"], tr().t(&f.key));
    }
    Ok(vm)
}

/// Signs a member in on this session: a new id, nothing of the link session kept (a pending,
/// verified invitation excepted).
pub(super) async fn start_member_session(
    state: &AppState,
    session: &Session,
    user: &UserId,
) -> Result<()> {
    let invite: Option<String> = session.get(sess::KEY_INVITE).await?;
    let verified: Option<bool> = session.get(sess::KEY_INVITE_VERIFIED).await?;
    let now = state.clock.now();
    sess::restart(session, now).await?;
    if let (Some(i), Some(true)) = (invite, verified) {
        session.insert(sess::KEY_INVITE, i).await?;
        session.insert(sess::KEY_INVITE_VERIFIED, true).await?;
    }
    session.insert(sess::KEY_MEMBER, user.as_str()).await?;
    session.insert(sess::KEY_AUTH_AT, now).await?;
    Ok(())
}

/// True when a payment made through this pay link has been recorded.
async fn paid_through_link(state: &AppState, link: &links::PayLink) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments p JOIN checkouts c ON c.id = p.checkout_id WHERE c.link_id = $1",
    )
    .bind(link.id.as_str())
    .fetch_one(state.db.pool())
    .await?;
    Ok(n > 0)
}

/// A verified pay-link visitor who has paid: the link, or where to send them first. Creating an
/// account needs both identity answers.
async fn paying_visitor(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<links::PayLink, Response>> {
    let link = match require(state, session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    if !paid_through_link(state, &link).await? {
        return Ok(Err(see_other("/summary")));
    }
    verified_adult(state, session, link, "/account/create").await
}

/// An adult patient who gave both identity answers on their pay link (else where to go first).
/// An account of one's own is for adults: for a minor, the person holding the phone is a
/// parent, who gets billing-only access through a guarantor invitation instead.
async fn verified_adult(
    state: &AppState,
    session: &Session,
    link: links::PayLink,
    next: &'static str,
) -> Result<std::result::Result<links::PayLink, Response>> {
    if !adult(state, &link.tenant_id, &link.patient_id).await? {
        return Err(AppError::NotFound);
    }
    if session.get::<Stage>(sess::KEY_STAGE).await? != Some(Stage::Full) {
        session.insert(sess::KEY_NEXT, next).await?;
        return Ok(Err(see_other("/verify/zip")));
    }
    Ok(Ok(link))
}

/// "a•••@example.org": enough to recognise one's own account, not to learn someone's address.
fn email_hint(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

/// The patient's own account, for a visitor who proved who they are on the link.
async fn own_account_of_link(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<(links::PayLink, guarantors::GuarantorGrant), Response>> {
    let link = match require(state, session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    let link = match verified_adult(state, session, link, "/account/reset-password").await? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    match guarantors::patient_account(&state.db, &state.crypto, &link.patient_id).await? {
        Some(g) => Ok(Ok((link, g))),
        None => Ok(Err(see_other("/statement"))),
    }
}

pub async fn reset_password_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response> {
    let (_, account) = match own_account_of_link(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let form = account_form(&session, "/account/reset-password").await?;
    let vm = ResetPasswordVm {
        csrf: form.csrf,
        email_hint: email_hint(account.email.expose()),
        failure: form.failure,
        field_error: form.field_error,
    };
    Ok(Html(pages::reset_password(meta(&session).await?, vm)).into_response())
}

/// Sets a new password for the patient's own account after both identity answers on a pay link
/// (the same proof that made the account), ends every session of it, and signs in here.
pub async fn reset_password_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<NewAccountForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let (link, account) = match own_account_of_link(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    if let Some((field, key)) = password_errors(&form.password, &form.password_confirm) {
        sess::set_flash(
            &session,
            Flash {
                key: key.into(),
                field: Some(field.into()),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/account/reset-password"));
    }
    let now = state.clock.now();
    match state
        .identity
        .set_member_password(
            &account.user_id,
            account.email.expose(),
            Phi::new(form.password),
        )
        .await
    {
        Ok(()) => {}
        Err(IdentityError::PasswordPolicy) => {
            sess::set_flash(
                &session,
                Flash {
                    key: "account-password-policy".into(),
                    field: Some("password".into()),
                    ..Default::default()
                },
            )
            .await?;
            return Ok(see_other("/account/reset-password"));
        }
        Err(e) => return Err(e.into()),
    }
    accounts::revoke_sessions(&state.db, &account.user_id, now).await?;
    state
        .identity
        .sign_out_everywhere(account.email.expose())
        .await?;
    audit_event(
        &state,
        &ctx,
        format!("link:{}", link.id),
        (Some(&link.tenant_id), Some(&link.patient_id)),
        "account.password.reset",
        Some(account.user_id.as_str()),
        Outcome::Success,
    )
    .await?;
    start_member_session(&state, &session, &account.user_id).await?;
    // Every session signed in up to `now` was just revoked; this one counts as after it.
    session.insert(sess::KEY_AUTH_AT, now + 1).await?;
    sess::notice(&session, "account-password-reset").await?;
    Ok(see_other("/account"))
}

pub async fn create_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    let link = match paying_visitor(&state, &session).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    // One account per patient: if there is one, the way in is a new password for it.
    if guarantors::patient_account(&state.db, &state.crypto, &link.patient_id)
        .await?
        .is_some()
    {
        return Ok(see_other("/account/reset-password"));
    }
    let vm = account_form(&session, "/account/create").await?;
    Ok(Html(pages::create(meta(&session).await?, vm)).into_response())
}

pub async fn create_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<NewAccountForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let link = match paying_visitor(&state, &session).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    if !new_account_ok(&session, &form).await? {
        return Ok(see_other("/account/create"));
    }
    let new_account = accounts::NewAccount::prepare(&state.crypto, &form.email).await?;
    let (credentials, needs_code) =
        match new_credentials(&state, &ctx.address, &form.email, form.password).await? {
            Ok(c) => c,
            Err(key) => return flash_email_problem(&session, key, "/account/create").await,
        };
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let user = match accounts::create_member(&mut tx, &new_account, &credentials, now).await {
        Ok(u) => u,
        Err(AccountError::EmailTaken) => {
            drop(tx);
            undo_sign_up(&state, &form.email, &credentials).await;
            return flash_email_problem(&session, "account-email-taken", "/account/create").await;
        }
        Err(e) => return Err(e.into()),
    };
    match accounts::grant_over_patient(
        &mut tx,
        &user,
        Role::Patient,
        &link.tenant_id,
        &link.patient_id,
        &format!("link:{}", link.id),
        now,
    )
    .await
    {
        Ok(()) => {}
        Err(AccountError::PatientHasAccount) => {
            drop(tx);
            undo_sign_up(&state, &form.email, &credentials).await;
            sess::notice(&session, "account-patient-exists").await?;
            return Ok(see_other("/account/create"));
        }
        Err(e) => {
            drop(tx);
            undo_sign_up(&state, &form.email, &credentials).await;
            return Err(e.into());
        }
    }
    tx.commit().await?;
    audit_event(
        &state,
        &ctx,
        format!("link:{}", link.id),
        (Some(&link.tenant_id), Some(&link.patient_id)),
        "account.create",
        Some(user.as_str()),
        Outcome::Success,
    )
    .await?;
    after_creation(
        &state,
        &session,
        &user,
        &form.email,
        &credentials,
        needs_code,
        "account-created",
    )
    .await
}

/// Credentials made at the provider whose local account could not be saved (a lost race) are
/// removed again, so the email is not stuck as "taken" there. Best effort; failures are logged.
pub(super) async fn undo_sign_up(
    state: &AppState,
    email: &str,
    credentials: &accounts::NewCredentials,
) {
    state.identity.undo_new_member(email, credentials).await;
}

pub async fn signin_form(session: Session) -> Result<Response> {
    let mut vm = SignInVm {
        csrf: sess::csrf_token(&session).await?,
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(&session).await? {
        vm.email = f.value.unwrap_or_default();
        let message = tr().t(&f.key);
        match f.key.as_str() {
            "account-created-signin" | "account-confirmed" => vm.notice = Some(message),
            _ => vm.failure = Some(message),
        }
    }
    Ok(Html(pages::signin(PageMeta::default(), vm)).into_response())
}

/// Email and password, as both sign-in pages (members and staff) post them.
#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) email: String,
    #[serde(default)]
    pub(super) password: String,
}

pub async fn signin_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<SignInForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let now = state.clock.now();
    let email = accounts::normalize_email(&form.email);
    // Claimed before the password is checked, given back only when it was right.
    let attempt =
        match accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await? {
            Ok(a) => a,
            Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
        };
    let outcome = match state
        .identity
        .sign_in(Kind::Member, &email, Phi::new(form.password), now)
        .await
    {
        Ok(Step::Done { user, tokens, .. }) => Ok((user, tokens)),
        // Members have no challenges; a provider asking for one is a refusal.
        Ok(_) => Err(IdentityError::Refused),
        Err(e) => Err(e),
    };
    if matches!(
        outcome,
        Ok(_) | Err(IdentityError::Unconfirmed | IdentityError::Unavailable(_))
    ) {
        accounts::release_attempt(&state.db, attempt).await?;
    }
    match outcome {
        Ok((user, tokens)) => {
            start_member_session(&state, &session, &user).await?;
            if let Some(t) = tokens {
                super::staff::store_tokens(&state, &session, &user, &t).await?;
            }
            audit_event(
                &state,
                &ctx,
                actor_id(&user),
                (None, None),
                "member.signin",
                Some(user.as_str()),
                Outcome::Success,
            )
            .await?;
            let next = if session.get::<bool>(sess::KEY_INVITE_VERIFIED).await? == Some(true) {
                "/guarantor/accept"
            } else {
                "/account"
            };
            Ok(see_other(next))
        }
        Err(IdentityError::Unconfirmed) => {
            // Said only once the password was right: finish the sign-up.
            sess::restart(&session, now).await?;
            set_pending_email(&state, &session, &accounts::normalize_email(&form.email)).await?;
            Ok(see_other("/account/confirm"))
        }
        Err(IdentityError::Unavailable(m)) => Err(AppError::Unavailable(m)),
        Err(IdentityError::Account(e)) => Err(e.into()),
        Err(_) => {
            audit_event(
                &state,
                &ctx,
                "anonymous".into(),
                (None, None),
                "member.signin",
                None,
                Outcome::Denied,
            )
            .await?;
            sess::set_flash(
                &session,
                Flash {
                    key: "signin-failed".into(),
                    value: None,
                    ..Default::default()
                },
            )
            .await?;
            Ok(see_other("/signin"))
        }
    }
}

/// The practice's display name ("" if it vanished, which the foreign keys prevent).
pub(super) async fn practice_name(state: &AppState, tenant: &TenantId) -> Result<String> {
    Ok(billing::tenant(&state.db, tenant)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}

#[derive(serde::Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    patient: String,
}

/// An adult patient invites a guarantor for their own record; the link is shown once.
pub async fn invite(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<InviteForm>,
) -> Result<Response> {
    let who = match member_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let patient = PatientId::parse(&form.patient).ok_or(AppError::NotFound)?;
    let Some((_, tenant, _)) = people(&who)
        .into_iter()
        .find(|(role, _, p)| *role == Role::Patient && *p == patient)
    else {
        return Err(AppError::NotFound);
    };
    let allowed = decide(
        &state,
        &who,
        Action::InviteGuarantor,
        &tenant,
        &patient,
        false,
    )
    .allowed()
        && adult(&state, &tenant, &patient).await?;
    if !allowed {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "guarantor.invite",
            None,
            Outcome::Denied,
        )
        .await?;
        return Err(AppError::Forbidden);
    }
    let (id, token) = guarantors::invite(
        &state.db,
        &tenant,
        &patient,
        &actor_id(&who.id),
        state.clock.now(),
    )
    .await?;
    audit_event(
        &state,
        &ctx,
        actor_id(&who.id),
        (Some(&tenant), Some(&patient)),
        "guarantor.invite",
        Some(id.as_str()),
        Outcome::Success,
    )
    .await?;
    // Shown in this response only: the token is never stored, not even in the session.
    let mut vm = home_vm(&state, &ctx, &session, &who).await?;
    vm.invite_link = Some(format!("{}/g/{token}", state.public_url));
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

#[derive(serde::Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    invitation: String,
}

/// The patient and practice an active guarantor grant covers (or, when `include_patient_account`,
/// also a patient's own account grant).
pub(super) async fn guarantor_grant(
    state: &AppState,
    raw: &str,
    include_patient_account: bool,
) -> Result<(i64, TenantId, PatientId)> {
    let id: i64 = raw.trim().parse().map_err(|_| AppError::NotFound)?;
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT tenant_id, patient_id FROM user_grants
         WHERE id = $1 AND revoked_at IS NULL AND patient_id IS NOT NULL
           AND (role = 'guarantor' OR ($2 = 1 AND role = 'patient'))",
    )
    .bind(id)
    .bind(i64::from(include_patient_account))
    .fetch_optional(state.db.pool())
    .await?;
    let (t, p) = row.ok_or(AppError::NotFound)?;
    Ok((id, TenantId::from_db(t), PatientId::from_db(p)))
}

pub async fn revoke_guarantor(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<RevokeForm>,
) -> Result<Response> {
    let who = match member_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let (grant, tenant, patient) = guarantor_grant(&state, &form.grant, false).await?;
    if !decide(
        &state,
        &who,
        Action::RevokeGuarantor,
        &tenant,
        &patient,
        false,
    )
    .allowed()
    {
        return Err(AppError::NotFound);
    }
    if !adult(&state, &tenant, &patient).await? {
        return Err(AppError::Forbidden);
    }
    let now = state.clock.now();
    if guarantors::revoke_grant(&state.db, grant, &patient, false, &actor_id(&who.id), now)
        .await?
        .is_some()
    {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "guarantor.revoke",
            Some(&grant.to_string()),
            Outcome::Success,
        )
        .await?;
    }
    sess::notice(&session, "account-guarantor-revoked").await?;
    Ok(see_other("/account"))
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<RevokeForm>,
) -> Result<Response> {
    let who = match member_post(&state, &session, &form.csrf).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let id = InvitationId::parse(&form.invitation).ok_or(AppError::NotFound)?;
    let inv = guarantors::find(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !decide(
        &state,
        &who,
        Action::RevokeGuarantor,
        &inv.tenant_id,
        &inv.patient_id,
        false,
    )
    .allowed()
    {
        return Err(AppError::NotFound);
    }
    if !adult(&state, &inv.tenant_id, &inv.patient_id).await? {
        return Err(AppError::Forbidden);
    }
    if guarantors::revoke_invitation(&state.db, &id, &inv.patient_id, state.clock.now()).await? {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(&inv.tenant_id), Some(&inv.patient_id)),
            "guarantor.invitation.revoke",
            Some(id.as_str()),
            Outcome::Success,
        )
        .await?;
    }
    sess::notice(&session, "account-invitation-revoked").await?;
    Ok(see_other("/account"))
}
