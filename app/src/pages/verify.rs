//! The pay link's identity check: date of birth, locked out, ZIP code.

use super::layout::{document, Chrome};
use super::{csrf_input, dob_fieldset, error_summary, zip_field, DOB_NAMES};
use crate::forms::ZipForm;
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

pub fn verify_dob(meta: PageMeta, vm: VerifyDobVm) -> String {
    let tr = Tr::new(meta.lang);
    let lead = match &vm.practice_name {
        Some(p) => tr.ta("verify-lead-practice", &[("practice", p)]),
        None => tr.t("verify-lead-generic"),
    };
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("verify-title")}</h1>
        <p class="lead">{lead}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::Verify.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {dob_fieldset(tr, &err, DOB_NAMES)}
            <button type="submit" class="button">{tr.t("verify-continue")}</button>
        </form>
    };
    document(&meta, Chrome::Portal, tr.t("verify-title"), body.into_any())
}

pub fn locked(meta: PageMeta, vm: LockedVm) -> String {
    let tr = Tr::new(meta.lang);
    // The phone number the practice chose, never its name: the name can say what kind of
    // care the patient gets, and whoever holds this link has not proved who they are.
    let next = match &vm.practice_phone {
        Some(phone) => tr.ta("locked-next-phone", &[("phone", phone)]),
        None => tr.t("locked-next"),
    };
    let body = view! {
        <h1>{tr.t("locked-title")}</h1>
        <p>{tr.t("locked-body")}</p>
        <p class="lead">{next}</p>
    };
    document(&meta, Chrome::Portal, tr.t("locked-title"), body.into_any())
}

pub fn verify_zip(meta: PageMeta, vm: VerifyZipVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("zip-title")}</h1>
        <p class="lead">{tr.t("zip-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::VerifyZip.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {zip_field(tr, &err, ZipForm::ZIP)}
            <button type="submit" class="button">{tr.t("zip-continue")}</button>
        </form>
        <p><a href=Url::Summary.path()>{tr.t("statement-back")}</a></p>
    };
    document(&meta, Chrome::Portal, tr.t("zip-title"), body.into_any())
}
