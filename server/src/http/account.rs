//! Patient and guarantor accounts: creating one after paying from a link, password sign-in, the
//! household page, statements with clinical detail hidden where the policy says, paying several
//! statements in one payment, and guarantor invitations (open, verify, accept, revoke).

use super::error::AppError;
use super::patient::require;
use super::session::{self as sess, Flash, Stage};
use super::{AppState, RequestContext};
use crate::access::{self, Action, Decision, Resource, Role};
use crate::accounts::{self, Account, AccountError, Kind};
use crate::audit::{self, Outcome};
use crate::billing;
use crate::cognito::{CognitoError, SignUpRefusal, Step};
use crate::guarantors::{self, Invitation};
use crate::ids::{CheckoutId, InvitationId, PatientId, PaymentId, StatementId, TenantId, UserId};
use crate::links::{self, LinkState};
use crate::money::{AmountError, Money};
use crate::payments::{self, DeclineReason};
use crate::phi::Phi;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use patriotpay_app::vm::*;
use patriotpay_app::{account as pages, Tr};
use std::collections::BTreeMap;
use tower_sessions::Session;

type Result<T> = std::result::Result<T, AppError>;

fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

fn tr() -> Tr {
    Tr::default()
}

async fn meta(session: &Session) -> Result<PageMeta> {
    Ok(PageMeta {
        signout_csrf: Some(sess::csrf_token(session).await?),
        ..Default::default()
    })
}

fn actor_id(user: &UserId) -> String {
    format!("user:{user}")
}

async fn audit_event(
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
async fn member(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<Account, Response>> {
    super::staff::signed_in_as(state, session, sess::KEY_MEMBER, Kind::Member, "/signin").await
}

/// The credentials a new member account gets: a local password hash, or (with Cognito) a
/// Cognito user made by self sign-up. `Ok(Err(key))` is a message for the form. The flag says
/// whether Cognito still wants the code it emailed.
async fn new_credentials(
    state: &AppState,
    address: &str,
    email: &str,
    password: String,
) -> Result<std::result::Result<(accounts::NewCredentials, bool), &'static str>> {
    // Each try counts against the sign-in limits (per email, per address) until it succeeds,
    // so the "email in use" answer cannot be used to sweep for accounts.
    let attempt =
        match accounts::claim_attempt(&state.db, email, address, state.clock.now()).await? {
            Ok(a) => a,
            Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
        };
    let made = make_credentials(state, email, password).await?;
    if made.is_ok() {
        accounts::release_attempt(&state.db, attempt).await?;
    }
    Ok(made)
}

async fn make_credentials(
    state: &AppState,
    email: &str,
    password: String,
) -> Result<std::result::Result<(accounts::NewCredentials, bool), &'static str>> {
    let Some(c) = &state.cognito else {
        let password_hash = accounts::hash_password(Phi::new(password)).await?;
        return Ok(Ok((
            accounts::NewCredentials::Local { password_hash },
            false,
        )));
    };
    // Checked here first, so a refused email leaves no Cognito user behind.
    if accounts::email_taken(&state.db, email).await? {
        return Ok(Err("account-email-taken"));
    }
    match c
        .sign_up(&accounts::normalize_email(email), &password)
        .await
    {
        Ok(u) => Ok(Ok((
            accounts::NewCredentials::External { subject: u.sub },
            !u.confirmed,
        ))),
        Err(CognitoError::SignUpRefused(SignUpRefusal::UsernameExists)) => {
            Ok(Err("account-email-taken"))
        }
        Err(CognitoError::SignUpRefused(_)) => Ok(Err("account-password-policy")),
        Err(CognitoError::Unavailable(m)) => Err(AppError::Unavailable(m)),
        Err(e) => Err(AppError::Internal(e.into())),
    }
}

/// After a member account is made: signed in at once (local), or on to the emailed code
/// (Cognito, unconfirmed), or to sign-in (Cognito, confirmed by the pool).
async fn after_creation(
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
async fn flash_email_problem(session: &Session, key: &str, back: &str) -> Result<Response> {
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
    let (Some(email), Some(c)) = (
        pending_email(&state, &session).await?,
        state.cognito.clone(),
    ) else {
        return Ok(see_other("/signin"));
    };
    // Each resend counts against the limits, so the page cannot be used to flood an inbox.
    if let Err(retry_after_secs) =
        accounts::claim_attempt(&state.db, &email, &ctx.address, state.clock.now()).await?
    {
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    c.resend_code(&email).await?;
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
    let (Some(email), Some(c)) = (
        pending_email(&state, &session).await?,
        state.cognito.clone(),
    ) else {
        return Ok(see_other("/signin"));
    };
    let now = state.clock.now();
    let attempt = match accounts::claim_attempt(&state.db, &email, &ctx.address, now).await? {
        Ok(a) => a,
        Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
    };
    match c.confirm_sign_up(&email, &form.code).await {
        Ok(()) => {
            accounts::release_attempt(&state.db, attempt).await?;
            session.remove::<String>(sess::KEY_CONFIRM_EMAIL).await?;
            sess::notice(&session, "account-confirmed").await?;
            Ok(see_other("/signin"))
        }
        Err(CognitoError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            Err(AppError::Unavailable(m))
        }
        Err(_) => {
            sess::notice(&session, "account-confirm-failed").await?;
            Ok(see_other("/account/confirm"))
        }
    }
}

async fn member_post(
    state: &AppState,
    session: &Session,
    csrf: &str,
) -> Result<std::result::Result<Account, Response>> {
    if !sess::csrf_ok(session, csrf).await? {
        return Err(AppError::Forbidden);
    }
    member(state, session).await
}

fn decide(
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
fn people(who: &Account) -> Vec<(Role, TenantId, PatientId)> {
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

fn iso(d: &str) -> String {
    crate::clock::display_iso_date(d)
}

/// Whether a statement's clinical descriptions are hidden from a guarantor: the dependant is an
/// adult now. (Confidential lines are decided line by line.)
async fn adult(state: &AppState, tenant: &TenantId, patient: &PatientId) -> Result<bool> {
    let (dob, _) = billing::identity_answers(&state.db, &state.crypto, tenant, patient).await?;
    Ok(guarantors::is_adult(dob.expose(), state.clock.now()))
}

fn password_errors(password: &str, confirm: &str) -> Option<(&'static str, &'static str)> {
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
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    /// On the invitation page: "create" (new account) or "existing" (signed in already).
    #[serde(default)]
    mode: String,
}

/// Checks a new-account form; on a problem, sets the flash and returns false.
async fn new_account_ok(session: &Session, form: &NewAccountForm) -> Result<bool> {
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

async fn account_form(session: &Session, action: &'static str) -> Result<AccountFormVm> {
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
async fn start_member_session(state: &AppState, session: &Session, user: &UserId) -> Result<()> {
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
    // An account of one's own is for adults: for a minor, the person holding the phone is a
    // parent, who gets billing-only access through a guarantor invitation instead.
    if !adult(state, &link.tenant_id, &link.patient_id).await? {
        return Err(AppError::NotFound);
    }
    if session.get::<Stage>(sess::KEY_STAGE).await? != Some(Stage::Full) {
        session.insert(sess::KEY_NEXT, "/account/create").await?;
        return Ok(Err(see_other("/verify/zip")));
    }
    Ok(Ok(link))
}

pub async fn create_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    if let Err(r) = paying_visitor(&state, &session).await? {
        return Ok(r);
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
    let (credentials, needs_code) =
        match new_credentials(&state, &ctx.address, &form.email, form.password).await? {
            Ok(c) => c,
            Err(key) => return flash_email_problem(&session, key, "/account/create").await,
        };
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let user = match accounts::create_member(&mut tx, &form.email, &credentials, now).await {
        Ok(u) => u,
        Err(AccountError::EmailTaken) => {
            drop(tx);
            undo_sign_up(&state, &form.email, &credentials).await;
            sess::set_flash(
                &session,
                Flash {
                    key: "account-email-taken".into(),
                    field: Some("email".into()),
                    value: None,
                    arg: None,
                },
            )
            .await?;
            return Ok(see_other("/account/create"));
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

/// A Cognito user made by sign-up whose local account could not be made (lost a race): removed
/// again, so the email is not stuck as "taken" at Cognito. Best effort; a failure is logged.
async fn undo_sign_up(state: &AppState, email: &str, credentials: &accounts::NewCredentials) {
    if let (Some(c), accounts::NewCredentials::External { .. }) = (&state.cognito, credentials) {
        if let Err(e) = c.delete_user(&accounts::normalize_email(email)).await {
            tracing::warn!(error = %e, "could not remove an orphaned Cognito sign-up");
        }
    }
}

/// The invitation was spent or withdrawn while the visitor filled in the form.
async fn invitation_gone(session: &Session) -> Result<Response> {
    session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
    sess::notice(session, "invite-gone").await?;
    Ok(see_other("/guarantor/verify"))
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

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
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
    let outcome = match &state.cognito {
        Some(_) => cognito_sign_in(&state, &ctx, &form.email, &form.password).await?,
        None => accounts::check_password(
            &state.db,
            Kind::Member,
            &form.email,
            Phi::new(form.password),
            &ctx.address,
            now,
        )
        .await
        .map(|u| (u, None)),
    };
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
        Err(AccountError::Unconfirmed) => {
            // Cognito says so only once the password was right: finish the sign-up.
            sess::restart(&session, now).await?;
            set_pending_email(&state, &session, &accounts::normalize_email(&form.email)).await?;
            Ok(see_other("/account/confirm"))
        }
        Err(AccountError::Invalid) => {
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
        Err(e) => Err(e.into()),
    }
}

/// Member sign-in through Cognito: the password goes to Cognito, the verified token's `sub`
/// picks the member account; the caller keeps the tokens, encrypted, in the new session. Throttled like local
/// sign-in; anything but plain tokens (challenges are for staff) is a refusal.
async fn cognito_sign_in(
    state: &AppState,
    ctx: &RequestContext,
    email: &str,
    password: &str,
) -> Result<std::result::Result<(UserId, Option<Box<crate::cognito::Tokens>>), AccountError>> {
    let Some(c) = &state.cognito else {
        return Ok(Err(AccountError::Invalid));
    };
    let now = state.clock.now();
    let email = accounts::normalize_email(email);
    let attempt = match accounts::claim_attempt(&state.db, &email, &ctx.address, now).await? {
        Ok(a) => a,
        Err(retry_after_secs) => return Ok(Err(AccountError::Throttled { retry_after_secs })),
    };
    let (tokens, claims) = match c.sign_in(&email, password, now).await {
        Ok(Step::Done { tokens, claims }) => (tokens, claims),
        Err(CognitoError::NotConfirmed) => {
            accounts::release_attempt(&state.db, attempt).await?;
            return Ok(Err(AccountError::Unconfirmed));
        }
        Ok(_) | Err(CognitoError::Refused) | Err(CognitoError::Token(_)) => {
            return Ok(Err(AccountError::Invalid))
        }
        Err(CognitoError::Unavailable(m)) => {
            accounts::release_attempt(&state.db, attempt).await?;
            return Err(AppError::Unavailable(m));
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let Some(user) = accounts::member_by_subject(&state.db, &claims.sub).await? else {
        return Ok(Err(AccountError::Invalid));
    };
    accounts::release_attempt(&state.db, attempt).await?;
    Ok(Ok((user, Some(tokens))))
}

/// Per-statement pay-form state carried across a refused POST.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct PayErrors {
    general: Option<String>,
    /// statement id → (error key, typed amount, checked)
    items: BTreeMap<String, (Option<String>, String, bool)>,
}

fn open_statement_vm(
    h: &billing::StatementHeader,
    name: &str,
    practice: &str,
    balance: Money,
    carried: Option<&(Option<String>, String, bool)>,
) -> OpenStatementVm {
    let error = carried.and_then(|(k, _, _)| k.as_ref()).map(|k| {
        if k == "pay-err-over" {
            tr().ta(k, &[("balance", &balance.to_string())])
        } else {
            tr().t(k)
        }
    });
    OpenStatementVm {
        id: h.id.to_string(),
        patient_name: name.to_owned(),
        practice_name: practice.to_owned(),
        statement_date: iso(&h.statement_date),
        due_date: iso(&h.due_date),
        balance: balance.to_string(),
        amount: carried
            .map(|(_, v, _)| v.clone())
            .unwrap_or_else(|| balance.plain()),
        checked: carried.is_some_and(|(_, _, c)| *c),
        paid_in_full: !balance.is_positive(),
        error,
    }
}

async fn practice_name(state: &AppState, tenant: &TenantId) -> Result<String> {
    Ok(billing::tenant(&state.db, tenant)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}

pub async fn home(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let vm = home_vm(&state, &ctx, &session, &who).await?;
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

/// Everything on the account page: each person's open statements (as far as the policy lets
/// this account see them), and the guarantors and invitations on the holder's own records.
async fn home_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Session,
    who: &Account,
) -> Result<AccountHomeVm> {
    let now = state.clock.now();
    let errors: PayErrors = session
        .remove(sess::KEY_PAY_ERRORS)
        .await?
        .unwrap_or_default();
    let mut vm = AccountHomeVm {
        csrf: sess::csrf_token(session).await?,
        email: who.email.clone(),
        pay_error: errors.general.as_deref().map(|k| tr().t(k)),
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(session).await? {
        vm.notice = Some(tr().t(&f.key));
    }
    let mut total = Money::from_cents(0);
    for (role, tenant, patient) in people(who) {
        if !decide(state, who, Action::ViewBalance, &tenant, &patient, false).allowed() {
            continue;
        }
        let name = billing::first_name(&state.db, &state.crypto, &tenant, &patient).await?;
        let practice = practice_name(state, &tenant).await?;
        let mut statements = vec![];
        for (h, balance) in billing::statements_of(&state.db, &tenant, &patient).await? {
            if !balance.is_positive() {
                continue;
            }
            total = total.checked_add(balance).unwrap_or(total);
            statements.push(open_statement_vm(
                &h,
                name.expose(),
                &practice,
                balance,
                errors.items.get(h.id.as_str()),
            ));
        }
        audit_event(
            state,
            ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "household.view",
            None,
            Outcome::Success,
        )
        .await?;
        // Guarantors are managed by adult patients (and the practice); a minor's are the
        // practice's to change.
        let grown = role == Role::Patient && adult(state, &tenant, &patient).await?;
        if grown {
            if decide(
                state,
                who,
                Action::InviteGuarantor,
                &tenant,
                &patient,
                false,
            )
            .allowed()
            {
                vm.can_invite
                    .push((patient.to_string(), name.expose().clone()));
            }
            if decide(
                state,
                who,
                Action::RevokeGuarantor,
                &tenant,
                &patient,
                false,
            )
            .allowed()
            {
                for g in guarantors::guarantors_of(&state.db, &patient).await? {
                    vm.guarantors.push(GuarantorVm {
                        grant_id: g.grant_id.to_string(),
                        email: g.email,
                        patient_name: name.expose().clone(),
                        since: crate::clock::display_date_unix(g.since),
                    });
                }
                for (id, expires) in
                    guarantors::pending_invitations(&state.db, &patient, now).await?
                {
                    vm.invitations.push(InvitationVm {
                        id: id.to_string(),
                        patient_name: name.expose().clone(),
                        expires: crate::clock::display_date_unix(expires),
                    });
                }
            }
        }
        vm.groups.push(HouseholdGroupVm {
            patient_name: name.into_inner(),
            relation: if role == Role::Patient {
                Relation::Own
            } else {
                Relation::Dependant
            },
            statements,
        });
    }
    vm.total_due = total.to_string();
    Ok(vm)
}

/// The statement, if the member may see its amounts; 404 otherwise (a statement of someone
/// else looks exactly like one that does not exist).
async fn visible_statement(
    state: &AppState,
    who: &Account,
    raw: &str,
) -> Result<billing::StatementHeader> {
    let id = StatementId::parse(raw).ok_or(AppError::NotFound)?;
    let h = billing::statement_header(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !decide(
        state,
        who,
        Action::ViewStatementAmounts,
        &h.tenant_id,
        &h.patient_id,
        false,
    )
    .allowed()
    {
        return Err(AppError::NotFound);
    }
    Ok(h)
}

pub async fn statement(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let h = visible_statement(&state, &who, &raw).await?;
    let grown_up = adult(&state, &h.tenant_id, &h.patient_id).await?;
    let lines = billing::lines(&state.db, &state.crypto, &h).await?;
    let paid = billing::payments(&state.db, &h.id).await?;
    let balance = billing::balance(state.db.pool(), &h.id).await?;
    let practice = practice_name(&state, &h.tenant_id).await?;
    let name = billing::first_name(&state.db, &state.crypto, &h.tenant_id, &h.patient_id).await?;
    let errors: PayErrors = session
        .remove(sess::KEY_PAY_ERRORS)
        .await?
        .unwrap_or_default();
    let mut some_hidden = false;
    let mut line_vms = Vec::with_capacity(lines.len());
    for l in &lines {
        let restricted = l.confidential || grown_up;
        let shown = decide(
            &state,
            &who,
            Action::ViewItemisedStatement,
            &h.tenant_id,
            &h.patient_id,
            restricted,
        )
        .allowed();
        some_hidden |= !shown;
        line_vms.push(AccountLineVm {
            service_date: iso(l.service_date.expose()),
            description: shown.then(|| l.description.expose().clone()),
            charge: l.charge.to_string(),
            insurance_paid: l.insurance_paid.to_string(),
            adjustment: l.adjustment.to_string(),
            responsibility: l.patient_responsibility.to_string(),
        });
    }
    let action = if some_hidden {
        "statement.amounts.view"
    } else {
        "statement.itemised.view"
    };
    audit_event(
        &state,
        &ctx,
        actor_id(&who.id),
        (Some(&h.tenant_id), Some(&h.patient_id)),
        action,
        Some(h.id.as_str()),
        Outcome::Success,
    )
    .await?;
    let sum = |f: fn(&billing::Line) -> Money| {
        Money::from_cents(lines.iter().map(|l| f(l).cents()).sum())
    };
    let vm = AccountStatementVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: practice.clone(),
        patient_name: name.expose().clone(),
        statement: open_statement_vm(
            &h,
            name.expose(),
            &practice,
            balance,
            errors.items.get(h.id.as_str()),
        ),
        lines: line_vms,
        totals: LineVm {
            charge: sum(|l| l.charge).to_string(),
            insurance_paid: sum(|l| l.insurance_paid).to_string(),
            adjustment: sum(|l| l.adjustment).to_string(),
            responsibility: sum(|l| l.patient_responsibility).to_string(),
            ..Default::default()
        },
        payments: paid
            .iter()
            .map(|p| PaymentVm {
                date: crate::clock::display_date_unix(p.paid_at),
                amount: p.amount.to_string(),
                brand: p.card_brand.clone(),
                last4: p.card_last4.clone(),
            })
            .collect(),
        some_hidden,
    };
    Ok(Html(pages::statement(meta(&session).await?, vm)).into_response())
}

fn amount_error_key(e: AmountError) -> &'static str {
    match e {
        AmountError::Empty => "pay-err-empty",
        AmountError::Format => "pay-err-format",
        AmountError::Negative => "pay-err-negative",
        AmountError::Zero => "pay-err-zero",
        AmountError::OverBalance => "pay-err-over",
        AmountError::NothingDue => "pay-err-nothing-due",
    }
}

/// Pays one or several statements in one card payment. The form sends `pay_<statement>=1` for
/// each statement chosen and `amount_<statement>` for its amount. Every statement is checked
/// by the policy and against its balance; any problem sends the whole form back, nothing started.
pub async fn pay(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let who = match member_post(&state, &session, field("csrf").unwrap_or("")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let back = match field("from").and_then(StatementId::parse) {
        Some(s) => format!("/account/statements/{s}"),
        None => "/account".to_owned(),
    };
    let mut chosen: Vec<StatementId> = vec![];
    for (k, v) in &pairs {
        if let Some(id) = k.strip_prefix("pay_").and_then(StatementId::parse) {
            if v == "1" && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
    }
    let mut errors = PayErrors::default();
    // Counted before any lookup, so an oversized form costs nothing.
    if chosen.len() > payments::MAX_ITEMS {
        errors.general = Some("account-pay-too-many".into());
        session.insert(sess::KEY_PAY_ERRORS, errors).await?;
        return Ok(see_other(&back));
    }
    let mut items = vec![];
    let mut patients = vec![];
    let mut tenant: Option<TenantId> = None;
    for id in &chosen {
        let h = billing::statement_header(&state.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            &state,
            &who,
            Action::MakePayment,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
        let typed = field(&format!("amount_{id}")).unwrap_or("");
        let balance = billing::balance(state.db.pool(), id).await?;
        let kept: String = typed.chars().take(32).collect();
        match Money::parse_payment(typed, balance) {
            Ok(m) => {
                items.push((id.clone(), m));
                errors.items.insert(id.to_string(), (None, kept, true));
            }
            Err(e) => {
                errors.items.insert(
                    id.to_string(),
                    (Some(amount_error_key(e).into()), kept, true),
                );
            }
        }
        if !patients.contains(&h.patient_id) {
            patients.push(h.patient_id.clone());
        }
        match &tenant {
            None => tenant = Some(h.tenant_id.clone()),
            Some(t) if *t != h.tenant_id => {
                errors.general = Some("account-pay-one-practice".into());
            }
            Some(_) => {}
        }
    }
    if chosen.is_empty() {
        errors.general = Some("account-pay-none".into());
    } else if chosen.len() > payments::MAX_ITEMS {
        errors.general = Some("account-pay-too-many".into());
    }
    let refused = errors.general.is_some() || errors.items.values().any(|(k, _, _)| k.is_some());
    let (Some(tenant), false) = (tenant, refused) else {
        if errors.general.is_none() {
            errors.general = Some("account-pay-check".into());
        }
        session.insert(sess::KEY_PAY_ERRORS, errors).await?;
        return Ok(see_other(&back));
    };
    let plan = payments::CheckoutPlan {
        tenant,
        items,
        patients,
        link: None,
        user: Some(who.id.clone()),
        return_prefix: "/account/pay",
    };
    let actor = ctx.actor(actor_id(&who.id));
    let general = match payments::start_checkout(
        &state.db,
        state.processor.as_ref(),
        &plan,
        &state.public_url,
        &actor,
    )
    .await
    {
        Ok(url) => return Ok(see_other(&url)),
        Err(payments::PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "checkout could not be created");
            "pay-err-processor"
        }
        Err(payments::PaymentError::Pending) => "pay-err-pending",
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    errors.general = Some(general.into());
    session.insert(sess::KEY_PAY_ERRORS, errors).await?;
    Ok(see_other(&back))
}

/// A checkout this member started, every statement of which they may still pay; 404 otherwise.
async fn own_checkout(state: &AppState, who: &Account, raw: &str) -> Result<payments::CheckoutRow> {
    let id = CheckoutId::parse(raw).ok_or(AppError::NotFound)?;
    let row = payments::find_checkout(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.user_id.as_ref() != Some(&who.id) {
        return Err(AppError::NotFound);
    }
    for (statement, _) in payments::checkout_items(&state.db, &row.id).await? {
        let h = billing::statement_header(&state.db, &statement)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            state,
            who,
            Action::MakePayment,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
    }
    Ok(row)
}

#[derive(serde::Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    session_id: String,
}

/// Where the processor sends the member after paying; the webhook records the payment.
pub async fn pay_return(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let checkout = own_checkout(&state, &who, &raw).await?;
    let meta = meta(&session).await?;
    super::patient::back_from_processor(&state, &checkout, &q.session_id, "/account", meta).await
}

pub async fn pay_cancelled(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let checkout = own_checkout(&state, &who, &raw).await?;
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(&format!("/account/receipt/{payment}")));
    }
    let key = match payments::decline_reason(state.processor.as_ref(), &checkout)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?
    {
        Some(DeclineReason::InsufficientFunds) => "account-pay-insufficient",
        Some(DeclineReason::Generic) => "account-pay-declined",
        None => "account-pay-cancelled",
    };
    sess::set_flash(
        &session,
        Flash {
            key: key.into(),
            ..Default::default()
        },
    )
    .await?;
    Ok(see_other("/account"))
}

pub async fn receipt(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let id = PaymentId::parse(&raw).ok_or(AppError::NotFound)?;
    let r = payments::receipt(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut items = vec![];
    let mut viewed = vec![];
    for a in &r.allocations {
        let h = billing::statement_header(&state.db, &a.statement_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            &state,
            &who,
            Action::ViewReceipt,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
        viewed.push((h.tenant_id.clone(), h.patient_id.clone()));
        items.push(ReceiptItemVm {
            patient_name: billing::first_name(
                &state.db,
                &state.crypto,
                &h.tenant_id,
                &h.patient_id,
            )
            .await?
            .into_inner(),
            practice_name: practice_name(&state, &h.tenant_id).await?,
            statement_date: iso(&h.statement_date),
            amount: a.amount.to_string(),
            new_balance: billing::balance(state.db.pool(), &h.id).await?.to_string(),
        });
    }
    if items.is_empty() {
        return Err(AppError::NotFound);
    }
    // Audited once every allocation passed the policy: a refused receipt logs no views.
    for (tenant, patient) in &viewed {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(tenant), Some(patient)),
            "payment.receipt.view",
            Some(id.as_str()),
            Outcome::Success,
        )
        .await?;
    }
    let vm = AccountReceiptVm {
        amount: r.amount.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        brand: r.card_brand,
        last4: r.card_last4,
        reference: id.to_string(),
        items,
    };
    Ok(Html(pages::receipt(meta(&session).await?, vm)).into_response())
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

// ---- Accepting an invitation ------------------------------------------------------------

/// The visitor's invitation, re-read each request, and whether they answered its questions.
async fn invitation(
    state: &AppState,
    session: &Session,
) -> Result<Option<(Option<Invitation>, bool)>> {
    let id: Option<String> = session.get(sess::KEY_INVITE).await?;
    let dead: Option<bool> = session.get(sess::KEY_INVITE_DEAD).await?;
    let inv = match id {
        Some(id) => guarantors::find(&state.db, &InvitationId::from_db(id)).await?,
        None if dead == Some(true) => None,
        None => return Ok(None),
    };
    let verified = session.get::<bool>(sess::KEY_INVITE_VERIFIED).await? == Some(true);
    Ok(Some((inv, verified)))
}

/// Swaps the invitation token for a fresh session and redirects to a URL without it.
pub async fn open_invitation(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response> {
    sess::restart(&session, state.clock.now()).await?;
    match guarantors::find_by_token(&state.db, &token).await? {
        Some(inv) => {
            session.insert(sess::KEY_INVITE, inv.id.as_str()).await?;
            let outcome = if inv.state(state.clock.now()) == LinkState::Usable {
                Outcome::Success
            } else {
                Outcome::Denied
            };
            audit_event(
                &state,
                &ctx,
                format!("invitation:{}", inv.id),
                (Some(&inv.tenant_id), Some(&inv.patient_id)),
                "guarantor.invitation.open",
                Some(inv.id.as_str()),
                outcome,
            )
            .await?;
        }
        None => session.insert(sess::KEY_INVITE_DEAD, true).await?,
    }
    Ok(see_other("/guarantor/verify"))
}

pub async fn invite_verify_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response> {
    let Some((inv, verified)) = invitation(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = state.clock.now();
    let live = inv.filter(|i| i.state(now) != LinkState::Dead);
    if let Some(i) = &live {
        if i.state(now) == LinkState::Locked {
            let t = billing::tenant(&state.db, &i.tenant_id).await?;
            return Ok(Html(pages::invite_locked(
                PageMeta::default(),
                t.as_ref().map(|t| t.name.clone()),
                t.map(|t| t.support_phone),
            ))
            .into_response());
        }
        if verified {
            return Ok(see_other("/guarantor/accept"));
        }
    }
    let mut vm = InviteVerifyVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: match &live {
            Some(i) => Some(practice_name(&state, &i.tenant_id).await?),
            None => None,
        },
        ..Default::default()
    };
    let mut status = axum::http::StatusCode::OK;
    if let Some(f) = sess::take_flash(&session).await? {
        (vm.field_error, vm.failure) = f.placed(&["dob-month", "zip"], tr().t(&f.key));
        if f.key == "verify-rate-limited" {
            status = axum::http::StatusCode::TOO_MANY_REQUESTS;
        }
    }
    let meta = PageMeta {
        practice_name: vm.practice_name.clone(),
        ..Default::default()
    };
    Ok((status, Html(pages::invite_verify(meta, vm))).into_response())
}

#[derive(serde::Deserialize)]
pub struct InviteVerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dob_month: String,
    #[serde(default)]
    dob_day: String,
    #[serde(default)]
    dob_year: String,
    #[serde(default)]
    zip: String,
}

async fn verify_flash(session: &Session, key: &str, field: Option<&str>) -> Result<Response> {
    sess::set_flash(
        session,
        Flash {
            key: key.into(),
            field: field.map(Into::into),
            ..Default::default()
        },
    )
    .await?;
    Ok(see_other("/guarantor/verify"))
}

/// The invitee answers the dependant's date of birth and ZIP. Attempts are claimed before they
/// are compared, exactly as on pay links, and five wrong answers lock the invitation.
pub async fn invite_verify_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<InviteVerifyForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some((inv, _)) = invitation(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = state.clock.now();
    let inv = inv.filter(|i| i.state(now) != LinkState::Dead);
    if inv
        .as_ref()
        .is_some_and(|i| i.state(now) == LinkState::Locked)
    {
        return Ok(see_other("/guarantor/verify"));
    }
    let Some(dob) = links::parse_dob(&form.dob_month, &form.dob_day, &form.dob_year) else {
        return verify_flash(&session, "verify-invalid-date", Some("dob-month")).await;
    };
    let Some(zip) = links::normalize_zip(&form.zip) else {
        return verify_flash(&session, "zip-invalid", Some("zip")).await;
    };
    let subject = inv.as_ref().map(Invitation::subject);
    let attempt = match links::claim(&state.db, subject, &ctx.address, now).await? {
        links::Claim::Granted { attempt } => attempt,
        links::Claim::Locked => return Ok(see_other("/guarantor/verify")),
        links::Claim::Throttled => {
            return verify_flash(&session, "verify-rate-limited", None).await;
        }
    };
    let matched = match &inv {
        Some(i) => {
            match billing::identity_answers(&state.db, &state.crypto, &i.tenant_id, &i.patient_id)
                .await
            {
                Ok((dob_on_file, zip_on_file)) => {
                    let zip_on_file =
                        links::normalize_zip(zip_on_file.expose()).unwrap_or_default();
                    // Both compared, always, so timing doesn't say which was wrong.
                    let a = links::answers_match(&dob, dob_on_file.expose());
                    let b = links::answers_match(&zip, &zip_on_file);
                    a & b
                }
                Err(e) => {
                    links::settle(&state.db, subject, attempt, false, now).await?;
                    return Err(e.into());
                }
            }
        }
        None => false,
    };
    let locked = links::settle(&state.db, subject, attempt, !matched, now).await?;
    if let Some(i) = &inv {
        audit_event(
            &state,
            &ctx,
            format!("invitation:{}", i.id),
            (Some(&i.tenant_id), Some(&i.patient_id)),
            "guarantor.invitation.verify",
            Some(i.id.as_str()),
            if matched {
                Outcome::Success
            } else {
                Outcome::Denied
            },
        )
        .await?;
        if locked {
            audit_event(
                &state,
                &ctx,
                format!("invitation:{}", i.id),
                (Some(&i.tenant_id), Some(&i.patient_id)),
                "guarantor.invitation.locked",
                Some(i.id.as_str()),
                Outcome::Denied,
            )
            .await?;
        }
    }
    if !matched {
        return verify_flash(&session, "invite-verify-failed", None).await;
    }
    session.cycle_id().await?;
    session.insert(sess::KEY_INVITE_VERIFIED, true).await?;
    Ok(see_other("/guarantor/accept"))
}

/// A verified, still usable invitation, or where to send the visitor.
async fn verified_invitation(
    state: &AppState,
    session: &Session,
) -> Result<std::result::Result<Invitation, Response>> {
    match invitation(state, session).await? {
        Some((Some(inv), true)) if inv.state(state.clock.now()) == LinkState::Usable => Ok(Ok(inv)),
        Some(_) => Ok(Err(see_other("/guarantor/verify"))),
        None => Ok(Err(see_other("/expired"))),
    }
}

pub async fn accept_form(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let inv = match verified_invitation(&state, &session).await? {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    // The page names the dependant: a view of their record.
    audit_event(
        &state,
        &ctx,
        format!("invitation:{}", inv.id),
        (Some(&inv.tenant_id), Some(&inv.patient_id)),
        "guarantor.invitation.view",
        Some(inv.id.as_str()),
        Outcome::Success,
    )
    .await?;
    let signed_in = match session.get::<String>(sess::KEY_MEMBER).await? {
        Some(_) => match member(&state, &session).await? {
            Ok(a) => Some(a.email),
            Err(r) => return Ok(r),
        },
        None => None,
    };
    let vm = InviteAcceptVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: practice_name(&state, &inv.tenant_id).await?,
        patient_name: billing::first_name(
            &state.db,
            &state.crypto,
            &inv.tenant_id,
            &inv.patient_id,
        )
        .await?
        .into_inner(),
        signed_in_email: signed_in,
        form: account_form(&session, "/guarantor/accept").await?,
    };
    Ok(Html(pages::invite_accept(meta(&session).await?, vm)).into_response())
}

pub async fn accept_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<NewAccountForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let inv = match verified_invitation(&state, &session).await? {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let now = state.clock.now();
    let user = if form.mode == "existing" {
        let who = match member(&state, &session).await? {
            Ok(a) => a,
            Err(r) => return Ok(r),
        };
        match guarantors::accept_existing(&state.db, &inv, &who.id, now).await {
            Ok(()) => {}
            Err(AccountError::Gone) => return invitation_gone(&session).await,
            Err(e) => return Err(e.into()),
        }
        session.cycle_id().await?;
        who.id
    } else {
        if !new_account_ok(&session, &form).await? {
            return Ok(see_other("/guarantor/accept"));
        }
        let (credentials, needs_code) =
            match new_credentials(&state, &ctx.address, &form.email, form.password).await? {
                Ok(c) => c,
                Err(key) => return flash_email_problem(&session, key, "/guarantor/accept").await,
            };
        let user =
            match guarantors::accept_new(&state.db, &inv, &form.email, &credentials, now).await {
                Ok(u) => u,
                Err(e @ (AccountError::Gone | AccountError::EmailTaken)) => {
                    undo_sign_up(&state, &form.email, &credentials).await;
                    if matches!(e, AccountError::Gone) {
                        return invitation_gone(&session).await;
                    }
                    sess::set_flash(
                        &session,
                        Flash {
                            key: "account-email-taken".into(),
                            field: Some("email".into()),
                            value: None,
                            arg: None,
                        },
                    )
                    .await?;
                    return Ok(see_other("/guarantor/accept"));
                }
                Err(e) => return Err(e.into()),
            };
        audit_event(
            &state,
            &ctx,
            actor_id(&user),
            (Some(&inv.tenant_id), Some(&inv.patient_id)),
            "guarantor.accept",
            Some(inv.id.as_str()),
            Outcome::Success,
        )
        .await?;
        session.remove::<String>(sess::KEY_INVITE).await?;
        session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
        return after_creation(
            &state,
            &session,
            &user,
            &form.email,
            &credentials,
            needs_code,
            "invite-accepted",
        )
        .await;
    };
    session.remove::<String>(sess::KEY_INVITE).await?;
    session.remove::<bool>(sess::KEY_INVITE_VERIFIED).await?;
    audit_event(
        &state,
        &ctx,
        actor_id(&user),
        (Some(&inv.tenant_id), Some(&inv.patient_id)),
        "guarantor.accept",
        Some(inv.id.as_str()),
        Outcome::Success,
    )
    .await?;
    // The notice names no one: flash messages live in the session record, which is not encrypted.
    sess::notice(&session, "invite-accepted").await?;
    Ok(see_other("/account"))
}
