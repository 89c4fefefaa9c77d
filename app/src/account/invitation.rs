//! Accepting a guarantor invitation: the dependant's identity answers, locked out, accept
//! (onto the signed-in account or a new one).

use super::signup::account_form;
use crate::forms::{InviteVerifyForm, NewAccountForm};
use crate::i18n::Tr;
use crate::pages::{csrf_input, dob_fieldset, document_portal, error_summary, zip_field};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

pub fn invite_verify(meta: PageMeta, vm: InviteVerifyVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("invite-verify-title")}</h1>
        <p class="lead">{tr.t("invite-verify-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::GuarantorVerify.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {dob_fieldset(tr, &err, [
                InviteVerifyForm::DOB_MONTH,
                InviteVerifyForm::DOB_DAY,
                InviteVerifyForm::DOB_YEAR,
            ])}
            {zip_field(tr, &err, InviteVerifyForm::ZIP)}
            <button type="submit" class="button">{tr.t("verify-continue")}</button>
        </form>
    };
    document_portal(&meta, tr.t("invite-verify-title"), body.into_any())
}

/// A locked invitation: the practice's phone number, never its name (nobody has proved who
/// they are on this link).
pub fn invite_locked(meta: PageMeta, practice_phone: Option<String>) -> String {
    let tr = Tr::new(meta.lang);
    let text = match &practice_phone {
        Some(phone) => tr.ta("invite-locked-body", &[("phone", phone)]),
        None => tr.t("invite-locked-body-generic"),
    };
    let body = view! {
        <h1>{tr.t("invite-locked-title")}</h1>
        <p class="lead">{text}</p>
    };
    document_portal(&meta, tr.t("invite-locked-title"), body.into_any())
}

pub fn invite_accept(meta: PageMeta, vm: InviteAcceptVm) -> String {
    let tr = Tr::new(meta.lang);
    let lead = tr.ta(
        "invite-accept-lead",
        &[
            ("patient", &vm.patient_name),
            ("practice", &vm.practice_name),
        ],
    );
    let action = match vm.signed_in_email.clone() {
        Some(email) => view! {
            <p>{tr.ta("account-signed-in-as", &[("email", &email)])}</p>
            <form method="post" action=Url::GuarantorAccept.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=NewAccountForm::MODE value=NewAccountForm::MODE_EXISTING/>
                <button type="submit" class="button">{tr.t("invite-accept-existing")}</button>
            </form>
        }
        .into_any(),
        None => {
            let form = vm.form.clone();
            view! {
                {error_summary(tr, form.failure.clone(), form.field_error.clone())}
                <h2>{tr.t("account-create-title")}</h2>
                {account_form(tr, form, Some(NewAccountForm::MODE_CREATE))}
                <p>
                    {tr.t("invite-have-account")} " "
                    <a href=Url::SignIn.path()>{tr.t("invite-signin-link")}</a>
                </p>
                <p class="hint">{tr.t("invite-signin-kept")}</p>
            }
            .into_any()
        }
    };
    let body = view! {
        <h1>{tr.t("invite-accept-title")}</h1>
        <p class="lead">{lead}</p>
        {action}
    };
    document_portal(&meta, tr.t("invite-accept-title"), body.into_any())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_forms_carry_their_mode() {
        let create_mode = invite_accept(
            PageMeta::default(),
            InviteAcceptVm {
                form: AccountFormVm {
                    action: Url::GuarantorAccept,
                    field_error: Some(FieldError {
                        field: "password-confirm",
                        message: "The passwords do not match.".into(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert!(create_mode.contains("name=\"mode\" value=\"create\""));
        assert!(create_mode.contains(&format!("action=\"{}\"", Url::GuarantorAccept)));
        assert!(create_mode.contains(&format!("href=\"{}\"", Url::SignIn)));
        assert!(
            create_mode.contains("aria-describedby=\"password-confirm-error\""),
            "{create_mode}"
        );
        let existing = invite_accept(
            PageMeta::default(),
            InviteAcceptVm {
                signed_in_email: Some("a@example.com".into()),
                ..Default::default()
            },
        );
        assert!(existing.contains("name=\"mode\" value=\"existing\""));
        assert!(!existing.contains("name=\"password\""));
    }
}
