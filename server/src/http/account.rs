//! Patient and guarantor accounts: creating one after paying from a link (local, or Cognito with
//! its emailed code), member sign-in, and a forgotten password reset with a code emailed to the
//! account's own address.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, LinkVisitor};
use super::forms::password_errors;
use super::member::*;
use super::session::{AfterZip, Flash, Sess, Stage};
use super::{sealed, see_other, tr, AppState, RequestContext, Routes};
use crate::access::Role;
use crate::accounts::{self, AccountError, Kind};
use crate::audit::Outcome;
use crate::guarantors;
use crate::identity::{IdentityError, Step};
use crate::links::PayLink;
use crate::phi::Phi;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account as pages;
use patriotpay_app::forms::{
    ConfirmForm, ForgotPasswordForm, NewAccountForm, ResetPasswordForm, SignInForm,
};
use patriotpay_app::vm::*;
use patriotpay_app::Url;

/// Member account pages.
pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::AccountCreate, create_form)
        .form(Url::AccountCreate, create_submit)
        .page(Url::AccountConfirm, confirm_form)
        .form(Url::AccountConfirm, confirm_submit)
        .form(Url::AccountConfirmResend, confirm_resend)
        .page(Url::AccountForgot, forgot_form)
        .form(Url::AccountForgot, forgot_submit)
        .page(Url::AccountResetPassword, reset_password_form)
        .form(Url::AccountResetPassword, reset_password_submit)
        .page(Url::SignIn, signin_form)
        .form(Url::SignIn, signin_submit)
}

/// A fresh sign-up code (the first may be lost, or the tab closed before it arrived): the
/// portal's own, or Cognito's. The answer is the same whether or not a code went (an address
/// that already had an account gets none), so the page tells no one which addresses have one.
pub async fn confirm_resend(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(_): CsrfForm<ConfirmForm>,
) -> Result<Response> {
    let Some(email) = sealed::pending_email(&state, &session).await? else {
        return Ok(see_other(Url::SignIn));
    };
    // Each resend counts against the limits, so the page cannot be used to flood an inbox.
    let _counted =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, ctx.now).await?;
    match state.identity.resend_member_code(&email, ctx.now).await {
        Err(IdentityError::Unavailable(m)) => return Err(AppError::Unavailable(m)),
        Err(IdentityError::Account(e)) => return Err(e.into()),
        // Cognito refuses a resend for a confirmed account: answered like the rest.
        Ok(()) | Err(_) => {}
    }
    session.notice("account-code-resent").await?;
    Ok(see_other(Url::AccountConfirm))
}

pub async fn confirm_form(State(state): State<AppState>, session: Sess) -> Result<Response> {
    let Some(email) = sealed::pending_email(&state, &session).await? else {
        return Ok(see_other(Url::SignIn));
    };
    let mut vm = ConfirmCodeVm {
        csrf: session.csrf_token().await?,
        email,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        match f.key.as_str() {
            "account-code-resent" => vm.notice = Some(tr().t(&f.key)),
            _ => vm.failure = Some(tr().t(&f.key)),
        }
    }
    Ok(Html(pages::confirm_code(super::page_meta(), vm)).into_response())
}

/// The code emailed at sign-up (the portal's, or Cognito's). Attempts count against the same
/// limits as sign-in (a code is guessed like a password).
pub async fn confirm_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Result<Response> {
    let Some(email) = sealed::pending_email(&state, &session).await? else {
        return Ok(see_other(Url::SignIn));
    };
    let attempt =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, ctx.now).await?;
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    match state.identity.confirm_member(&email, &code, ctx.now).await {
        Ok(()) => {
            attempt.release(&state.db).await?;
            let user = accounts::user_by_email(&state.db, &state.crypto, &email).await?;
            audit_account(&state, &ctx, user.as_ref(), "account.email.confirmed").await?;
            session.update(|d| d.sealed_confirm_email = None).await?;
            session.notice("account-confirmed").await?;
            Ok(see_other(Url::SignIn))
        }
        Err(IdentityError::Unavailable(m)) => {
            attempt.release(&state.db).await?;
            Err(AppError::Unavailable(m))
        }
        Err(IdentityError::Account(e)) => Err(e.into()),
        Err(_) => {
            session.notice("account-confirm-failed").await?;
            Ok(see_other(Url::AccountConfirm))
        }
    }
}

/// A successful event about an account found by its email, acted by that account (or by a
/// "visitor" when no account has the address).
async fn audit_account(
    state: &AppState,
    ctx: &RequestContext,
    user: Option<&crate::ids::UserId>,
    action: &'static str,
) -> Result<()> {
    let actor = user.map(actor_id).unwrap_or_else(|| "visitor".into());
    let resource = user.map(|u| u.as_str());
    audit_event(
        state,
        ctx,
        actor,
        (None, None),
        action,
        resource,
        Outcome::Success,
    )
    .await
}

/// True when a payment made through this pay link has been recorded.
async fn paid_through_link(state: &AppState, link: &PayLink) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments p JOIN checkouts c ON c.id = p.checkout_id WHERE c.link_id = $1",
    )
    .bind(link.id.as_str())
    .fetch_one(state.db.pool())
    .await?;
    Ok(n > 0)
}

/// Where a pay-link visitor goes before an account page: `None` when they may stay (an adult
/// patient who gave both answers). An account of one's own is for adults: for a minor, the
/// person holding the phone is a parent, who gets billing-only access through a guarantor
/// invitation instead.
async fn adult_with_both_answers(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    visitor: &LinkVisitor,
    next: AfterZip,
) -> Result<Option<Response>> {
    let link = &visitor.link;
    if !adult(state, &link.tenant_id, &link.patient_id, ctx.now).await? {
        return Err(AppError::NotFound);
    }
    if visitor.stage != Stage::Full {
        session
            .update(|d| {
                if let Some(v) = d.link.as_mut() {
                    v.after_zip = Some(next);
                }
            })
            .await?;
        return Ok(Some(see_other(Url::VerifyZip)));
    }
    Ok(None)
}

/// `GET /account/forgot`: the email a reset code goes to.
pub async fn forgot_form(session: Sess) -> Result<Response> {
    let mut vm = ForgotPasswordVm {
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        vm.email = f.value.unwrap_or_default();
        vm.failure = Some(tr().t(&f.key));
    }
    Ok(Html(pages::forgot_password(super::page_meta(), vm)).into_response())
}

/// Sends a reset code to the account with this email, if there is one: the answer is the same
/// either way (the next page says "if it has an account"), so the form tells no one which
/// addresses have accounts. A pay link and identity answers are no longer a way in.
pub async fn forgot_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<ForgotPasswordForm>,
) -> Result<Response> {
    let email = accounts::normalize_email(&form.email);
    if !accounts::valid_email(&email) {
        session
            .set_flash(Flash {
                value: Some(form.email),
                ..Flash::on(ForgotPasswordForm::EMAIL, "account-forgot-email-invalid")
            })
            .await?;
        return Ok(see_other(Url::AccountForgot));
    }
    // Per address, whichever accounts it names: one sender cannot mail codes to many inboxes.
    let address = crate::limits::address_key(&ctx.address);
    if !crate::limits::claim_use(&state.db, &accounts::RESET_REQUESTS, &address, ctx.now).await? {
        return Err(AppError::TooManyRequests {
            retry_after_secs: accounts::REQUEST_WINDOW_SECS as u64,
        });
    }
    state
        .identity
        .member_forgot_password(&email, ctx.now)
        .await?;
    // No account named: the request is audited, not whose address it was.
    audit_event(
        &state,
        &ctx,
        "visitor".into(),
        (None, None),
        "account.reset.requested",
        None,
        Outcome::Success,
    )
    .await?;
    sealed::set_reset_email(&state, &session, Some(&email)).await?;
    Ok(see_other(Url::AccountResetPassword))
}

/// `GET /account/reset-password`: the emailed code and the new password.
pub async fn reset_password_form(State(state): State<AppState>, session: Sess) -> Result<Response> {
    let Some(email) = sealed::reset_email(&state, &session).await? else {
        return Ok(see_other(Url::AccountForgot));
    };
    let mut vm = ResetPasswordVm {
        csrf: session.csrf_token().await?,
        email,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        (vm.field_error, vm.failure) = f.placed(
            &[
                ResetPasswordForm::CODE,
                ResetPasswordForm::PASSWORD,
                "password-confirm",
            ],
            tr().t(&f.key),
        );
    }
    Ok(Html(pages::reset_password(meta(&session).await?, vm)).into_response())
}

/// Sets the new password with the emailed code. Each try counts against the sign-in limits
/// (a code is guessed like a password); on success every session of the account ends and the
/// owner is told by email, whoever did it.
pub async fn reset_password_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<ResetPasswordForm>,
) -> Result<Response> {
    let Some(email) = sealed::reset_email(&state, &session).await? else {
        return Ok(see_other(Url::AccountForgot));
    };
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() {
        session
            .set_flash(Flash::on(
                ResetPasswordForm::CODE,
                "account-reset-code-empty",
            ))
            .await?;
        return Ok(see_other(Url::AccountResetPassword));
    }
    if let Some((field, key)) = password_errors(&form.password, &form.password_confirm) {
        session.set_flash(Flash::on(field, key)).await?;
        return Ok(see_other(Url::AccountResetPassword));
    }
    let now = ctx.now;
    let attempt =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await?;
    match state
        .identity
        .member_reset_password(&email, &code, Phi::new(form.password), now)
        .await
    {
        Ok(()) => attempt.release(&state.db).await?,
        Err(IdentityError::Refused) => {
            audit_event(
                &state,
                &ctx,
                "visitor".into(),
                (None, None),
                "account.reset.refused",
                None,
                Outcome::Denied,
            )
            .await?;
            session.notice("account-reset-refused-code").await?;
            return Ok(see_other(Url::AccountResetPassword));
        }
        Err(IdentityError::PasswordPolicy) => {
            attempt.release(&state.db).await?;
            session
                .set_flash(Flash::on(
                    ResetPasswordForm::PASSWORD,
                    "account-password-policy",
                ))
                .await?;
            return Ok(see_other(Url::AccountResetPassword));
        }
        Err(e) => return Err(e.into()),
    }
    state.identity.sign_out_everywhere(&email).await?;
    let user = accounts::user_by_email(&state.db, &state.crypto, &email).await?;
    if let Some(user) = &user {
        accounts::notify_password_changed(&state.db, &state.crypto, user, &state.public_url, now)
            .await?;
    }
    audit_account(&state, &ctx, user.as_ref(), "account.password.reset").await?;
    sealed::set_reset_email(&state, &session, None).await?;
    session.notice("account-password-reset").await?;
    Ok(see_other(Url::SignIn))
}

/// The visitor may make an account: they paid through this link, are an adult and gave both
/// answers. `Some(response)` says where to go first.
async fn may_sign_up(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    visitor: &LinkVisitor,
) -> Result<Option<Response>> {
    if !paid_through_link(state, &visitor.link).await? {
        return Ok(Some(see_other(Url::Summary)));
    }
    adult_with_both_answers(state, ctx, session, visitor, AfterZip::CreateAccount).await
}

pub async fn create_form(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visitor: LinkVisitor,
) -> Result<Response> {
    if let Some(go) = may_sign_up(&state, &ctx, &session, &visitor).await? {
        return Ok(go);
    }
    // One account per patient: if there is one, the way in is a code to its email.
    if guarantors::has_account(&state.db, &visitor.link.patient_id).await? {
        return Ok(see_other(Url::AccountForgot));
    }
    let vm = account_form(&session, Url::AccountCreate).await?;
    Ok(Html(pages::create(meta(&session).await?, vm)).into_response())
}

pub async fn create_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    visitor: LinkVisitor,
    CsrfForm(form): CsrfForm<NewAccountForm>,
) -> Result<Response> {
    if let Some(go) = may_sign_up(&state, &ctx, &session, &visitor).await? {
        return Ok(go);
    }
    let link = visitor.link;
    if !new_account_ok(&session, &form).await? {
        return Ok(see_other(Url::AccountCreate));
    }
    let new_account = accounts::NewAccount::prepare(&state.crypto, &form.email).await?;
    let now = ctx.now;
    let credentials =
        match new_credentials(&state, &ctx, &new_account, &form.email, form.password).await {
            Ok(c) => c,
            Err(NotMade::Form(key)) => {
                return flash_password_policy(&session, key, Url::AccountCreate).await
            }
            Err(NotMade::Taken) => return answer_taken(&state, &session, &form.email, now).await,
            Err(NotMade::Error(e)) => return Err(e),
        };
    let mut tx = state.db.begin_write().await?;
    let made = accounts::create_member(
        &mut tx,
        &new_account,
        &credentials.made,
        credentials.confirm.as_ref(),
        now,
    )
    .await;
    let user = match made {
        Ok(u) => u,
        Err(AccountError::EmailTaken) => {
            drop(tx);
            undo_sign_up(&state, &form.email, &credentials).await;
            return answer_taken(&state, &session, &form.email, now).await;
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
            session.notice("account-patient-exists").await?;
            return Ok(see_other(Url::AccountCreate));
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
    after_creation(&state, &session, &form.email, &credentials, now).await
}

pub async fn signin_form(session: Sess) -> Result<Response> {
    let mut vm = SignInVm {
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        vm.email = f.value.unwrap_or_default();
        let message = tr().t(&f.key);
        match f.key.as_str() {
            "account-created-signin" | "account-confirmed" | "account-password-reset" => {
                vm.notice = Some(message)
            }
            _ => vm.failure = Some(message),
        }
    }
    Ok(Html(pages::signin(super::page_meta(), vm)).into_response())
}

pub async fn signin_submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response> {
    let now = ctx.now;
    let email = accounts::normalize_email(&form.email);
    // Claimed before the password is checked, given back only when it was right.
    let attempt =
        accounts::claim_attempt(&state.db, &state.crypto, &email, &ctx.address, now).await?;
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
        attempt.release(&state.db).await?;
    }
    match outcome {
        Ok((user, tokens)) => {
            start_member_session(&session, &user, now).await?;
            if let Some(t) = tokens {
                sealed::store_tokens(&state, &session, &user, &t).await?;
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
            let accepting = session.data().await?.invitation.is_some_and(|i| i.verified);
            Ok(see_other(if accepting {
                Url::GuarantorAccept
            } else {
                Url::Account
            }))
        }
        Err(IdentityError::Unconfirmed) => {
            // Said only once the password was right: finish the sign-up.
            session.restart(now).await?;
            sealed::set_pending_email(&state, &session, &email).await?;
            Ok(see_other(Url::AccountConfirm))
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
            session.notice("signin-failed").await?;
            Ok(see_other(Url::SignIn))
        }
    }
}
