//! Signing up and in: create an account, sign in, a new password from a pay link, the emailed
//! code; the new-account form the invitation page reuses.

use crate::forms::{
    ConfirmForm, ForgotPasswordForm, NewAccountForm, ResetPasswordForm, SignInForm,
};
use crate::i18n::Tr;
use crate::pages::{
    csrf_input, described_by, document_portal, error_summary, field_message, invalid,
};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

/// A new password and its confirmation (ids `password`, `password-confirm`), each with its error.
fn new_password_fields(tr: Tr, err: &Option<FieldError>) -> AnyView {
    // The password input's id is its field name.
    let password = NewAccountForm::PASSWORD;
    let hint_id = format!("{password}-hint");
    view! {
        <div class="field">
            <label for=password>{tr.t("account-password")}</label>
            <p class="hint" id=hint_id>{tr.t("account-password-hint")}</p>
            {field_message(tr, password, err)}
            <input id=password name=password type="password" autocomplete="new-password"
                size="30" required aria-describedby=described_by(password, true, err)
                aria-invalid=invalid(password, err)/>
        </div>
        <div class="field">
            <label for="password-confirm">{tr.t("account-password-confirm")}</label>
            {field_message(tr, "password-confirm", err)}
            <input id="password-confirm" name=NewAccountForm::PASSWORD_CONFIRM type="password"
                autocomplete="new-password" size="30" required
                aria-describedby=described_by("password-confirm", false, err)
                aria-invalid=invalid("password-confirm", err)/>
        </div>
    }
    .into_any()
}

/// Email, password and confirmation for a new account. `mode` is the hidden `mode` field the
/// invitation page sends (`NewAccountForm::MODE_CREATE`). The error summary is the caller's, at
/// the top of the page.
pub(super) fn account_form(tr: Tr, vm: AccountFormVm, mode: Option<&'static str>) -> AnyView {
    let err = vm.field_error.clone();
    // The email input's id is its field name.
    let email = NewAccountForm::EMAIL;
    view! {
        <form method="post" action=vm.action.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {mode.map(|m| view! { <input type="hidden" name=NewAccountForm::MODE value=m/> })}
            <div class="field">
                <label for=email>{tr.t("account-email")}</label>
                {field_message(tr, email, &err)}
                <input id=email name=email type="email" autocomplete="username" spellcheck="false"
                    size="30" required value=vm.email.clone()
                    aria-describedby=described_by(email, false, &err)
                    aria-invalid=invalid(email, &err)/>
            </div>
            {new_password_fields(tr, &err)}
            <button type="submit" class="button">{tr.t("account-create-submit")}</button>
        </form>
    }
    .into_any()
}

pub fn create(meta: PageMeta, vm: AccountFormVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("account-create-title")}</h1>
        <p class="lead">{tr.t("account-create-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        {account_form(tr, vm, None)}
    };
    document_portal(&meta, tr.t("account-create-title"), body.into_any())
}

pub fn signin(meta: PageMeta, vm: SignInVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("signin-title")}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::SignIn.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=SignInForm::EMAIL>{tr.t("account-email")}</label>
                <input id=SignInForm::EMAIL name=SignInForm::EMAIL type="email" autocomplete="username" spellcheck="false"
                    size="30" required value=vm.email.clone()/>
            </div>
            <div class="field">
                <label for=SignInForm::PASSWORD>{tr.t("account-password")}</label>
                <input id=SignInForm::PASSWORD name=SignInForm::PASSWORD type="password" autocomplete="current-password"
                    size="30" required/>
            </div>
            <button type="submit" class="button">{tr.t("signin-submit")}</button>
        </form>
        <p>{tr.t("signin-link-note")}</p>
        <p><a href=Url::AccountForgot.path()>{tr.t("signin-forgot")}</a></p>
    };
    document_portal(&meta, tr.t("signin-title"), body.into_any())
}

/// A forgotten password: the account's email, where a one-time code is sent.
pub fn forgot_password(meta: PageMeta, vm: ForgotPasswordVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("account-forgot-title")}</h1>
        <p class="lead">{tr.t("account-forgot-lead")}</p>
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::AccountForgot.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ForgotPasswordForm::EMAIL>{tr.t("account-email")}</label>
                <input id=ForgotPasswordForm::EMAIL name=ForgotPasswordForm::EMAIL type="email" autocomplete="username"
                    spellcheck="false" size="30" required value=vm.email.clone()/>
            </div>
            <button type="submit" class="button">{tr.t("account-forgot-submit")}</button>
        </form>
        <p>{tr.t("account-forgot-note")}</p>
    };
    document_portal(&meta, tr.t("account-forgot-title"), body.into_any())
}

/// The emailed code and the new password.
pub fn reset_password(meta: PageMeta, vm: ResetPasswordVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let code_error = err
        .as_ref()
        .filter(|e| e.field == ResetPasswordForm::CODE)
        .map(|e| e.message.clone());
    let body = view! {
        <h1>{tr.t("account-reset-title")}</h1>
        <p class="lead">{tr.ta("account-reset-lead", &[("email", &vm.email)])}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::AccountResetPassword.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ResetPasswordForm::CODE>{tr.t("account-reset-code")}</label>
                {code_error.clone().map(|m| view! { <p class="error-message" id="code-error">{m}</p> })}
                <input id=ResetPasswordForm::CODE name=ResetPasswordForm::CODE type="text" inputmode="numeric"
                    autocomplete="one-time-code" size="10" required
                    aria-invalid=code_error.is_some().then_some("true")
                    aria-describedby=code_error.is_some().then_some("code-error")/>
            </div>
            {new_password_fields(tr, &err)}
            <button type="submit" class="button">{tr.t("account-reset-submit")}</button>
        </form>
        <p><a href=Url::AccountForgot.path()>{tr.t("account-reset-again")}</a></p>
    };
    document_portal(&meta, tr.t("account-reset-title"), body.into_any())
}

/// Cognito emailed a code at sign-up: enter it to finish.
pub fn confirm_code(meta: PageMeta, vm: ConfirmCodeVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("account-confirm-title")}</h1>
        <p class="lead">{tr.ta("account-confirm-lead", &[("email", &vm.email)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::AccountConfirm.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ConfirmForm::CODE>{tr.t("account-confirm-code")}</label>
                <input id=ConfirmForm::CODE name=ConfirmForm::CODE type="text" inputmode="numeric" autocomplete="one-time-code"
                    size="10" required/>
            </div>
            <button type="submit" class="button">{tr.t("account-confirm-submit")}</button>
        </form>
        <form method="post" action=Url::AccountConfirmResend.path() class="inline-form">
            {csrf_input(vm.csrf.clone())}
            <button type="submit" class="link-button dark">{tr.t("account-confirm-resend")}</button>
        </form>
    };
    document_portal(&meta, tr.t("account-confirm-title"), body.into_any())
}
