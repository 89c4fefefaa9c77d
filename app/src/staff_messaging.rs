//! A practice admin's settings for the practice's texts (`Url::StaffMessaging`): the reminder
//! cadence, the "is this text really from my practice?" footer, and the practice's wording of
//! each text with its size in segments (a refused wording shows what was typed and why).

use crate::forms::{CadenceForm, FooterForm, MessagingQuery, TextWordingForm};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_messages::{MessagingSettingsVm, TextWordingVm};
use leptos::prelude::*;

fn cadence(tr: Tr, vm: &MessagingSettingsVm) -> AnyView {
    let error = vm.cadence_error.clone();
    let invalid = error.is_some().then_some("true");
    view! {
        <section class="card" aria-labelledby="reminders-h">
            <h2 id="reminders-h">{tr.t("messaging-reminders")}</h2>
            <p>{tr.t("messaging-reminders-lead")}</p>
            <form method="post" action=Url::StaffMessagingCadence.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=CadenceForm::PRACTICE value=vm.practice.0.clone()/>
                <label for="reminder-days">{tr.t("messaging-reminder-days")}</label>
                <p class="hint" id="reminder-days-hint">{tr.t("messaging-reminder-days-hint")}</p>
                {error.map(|e| view! { <p class="field-error" id="reminder-days-error" role="alert">{e}</p> })}
                <input type="text" id="reminder-days" name=CadenceForm::DAYS value=vm.reminder_days.clone()
                    inputmode="numeric" aria-invalid=invalid
                    aria-describedby="reminder-days-hint reminder-days-error"/>
                <p>
                    <input type="checkbox" id="on-due" name=CadenceForm::ON_DUE value="on" checked=vm.remind_on_due/>
                    " "<label for="on-due">{tr.t("messaging-on-due")}</label>
                </p>
                <button type="submit" class="button">{tr.t("messaging-save")}</button>
            </form>
        </section>
    }
    .into_any()
}

fn footer(tr: Tr, vm: &MessagingSettingsVm) -> AnyView {
    let (state, button, value) = if vm.footer {
        ("messaging-footer-on", "messaging-footer-turn-off", "off")
    } else {
        ("messaging-footer-off", "messaging-footer-turn-on", "on")
    };
    view! {
        <section class="card" aria-labelledby="footer-h">
            <h2 id="footer-h">{tr.t("messaging-footer")}</h2>
            <p>{tr.ta("messaging-footer-lead", &[("url", vm.check_url.as_str())])}</p>
            <p class="footer-state">{tr.t(state)}</p>
            <form method="post" action=Url::StaffMessagingFooter.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=FooterForm::PRACTICE value=vm.practice.0.clone()/>
                <input type="hidden" name=FooterForm::ENABLED value=value/>
                <button type="submit" class="button secondary">{tr.t(button)}</button>
            </form>
        </section>
    }
    .into_any()
}

fn text(tr: Tr, vm: &MessagingSettingsVm, t: &TextWordingVm) -> AnyView {
    let id = format!("text-{}-{}", t.template, t.language);
    let errors_id = format!("{id}-errors");
    let invalid = (!t.errors.is_empty()).then_some("true");
    let errors = (!t.errors.is_empty()).then(|| {
        let items = t
            .errors
            .iter()
            .map(|e| view! { <li>{e.clone()}</li> })
            .collect::<Vec<_>>();
        view! { <ul class="field-error" id=errors_id.clone() role="alert">{items}</ul> }
    });
    let state = if t.custom {
        "messaging-text-custom"
    } else {
        "messaging-text-builtin"
    };
    let reset = t.custom.then(|| {
        view! {
            <button type="submit" name=TextWordingForm::ACTION value="reset" class="link-button">
                {tr.t("messaging-text-use-builtin")}
            </button>
        }
    });
    view! {
        <section class="card text-wording">
            <form method="post" action=Url::StaffMessagingText.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=TextWordingForm::PRACTICE value=vm.practice.0.clone()/>
                <input type="hidden" name=TextWordingForm::TEMPLATE value=t.template.clone()/>
                <input type="hidden" name=TextWordingForm::LANGUAGE value=t.language.clone()/>
                <label for=id.clone()><strong>{t.label.clone()}</strong></label>
                <p class="hint">{tr.t(state)}</p>
                {errors}
                <textarea id=id.clone() name=TextWordingForm::BODY rows="4" maxlength="1600"
                    aria-invalid=invalid aria-describedby=errors_id>{t.body.clone()}</textarea>
                {t.measure.clone().map(|m| view! { <p class="hint">{m}</p> })}
                <button type="submit" name=TextWordingForm::ACTION value="save" class="button">
                    {tr.t("messaging-save")}
                </button>
                " "
                {reset}
            </form>
        </section>
    }
    .into_any()
}

pub fn settings(meta: PageMeta, vm: MessagingSettingsVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("messaging-title");
    let others = crate::pages::other_practices(
        tr,
        Url::StaffMessaging,
        MessagingQuery::PRACTICE,
        &vm.others,
        "messages-other-practices",
    );
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{vm.practice.1.clone()}</p>
        {others}
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {cadence(tr, &vm)}
        {footer(tr, &vm)}
        <h2>{tr.t("messaging-texts")}</h2>
        <p>{tr.t("messaging-texts-lead")}</p>
        {vm.texts.iter().map(|t| text(tr, &vm, t)).collect_view()}
        <p><a href=Url::Staff.path()>{tr.t("record-views-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_wording_keeps_what_was_typed_and_says_why() {
        let vm = MessagingSettingsVm {
            csrf: "tok".into(),
            practice: ("ten_1".into(), "Riverside".into()),
            reminder_days: "7, 14".into(),
            texts: vec![TextWordingVm {
                template: "pay-link".into(),
                language: "en".into(),
                label: "New statement, English".into(),
                body: "Hi {first_name}".into(),
                errors: vec!["The placeholder {first_name} is not allowed".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let html = settings(PageMeta::default(), vm);
        assert!(html.contains("Hi {first_name}</textarea>"), "{html}");
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
    }
}
