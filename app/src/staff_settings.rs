//! The practice admin's "act on behalf" page: per practice, whether staff viewing as a patient
//! may take a payment the patient dictates, and the button that changes it.

use crate::forms::ActOnBehalfForm;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::{ActOnBehalfPracticeVm, ActOnBehalfVm, PageMeta};
use leptos::prelude::*;

fn practice(tr: Tr, csrf: String, p: ActOnBehalfPracticeVm) -> AnyView {
    let (state, button, value) = if p.enabled {
        ("act-on-behalf-on", "act-on-behalf-turn-off", "off")
    } else {
        ("act-on-behalf-off", "act-on-behalf-turn-on", "on")
    };
    view! {
        <section class="card">
            <h2>{p.name}</h2>
            <p class="act-on-behalf-state">{tr.t(state)}</p>
            <form method="post" action=Url::StaffActOnBehalf.path()>
                {csrf_input(csrf)}
                <input type="hidden" name=ActOnBehalfForm::PRACTICE value=p.id/>
                <input type="hidden" name=ActOnBehalfForm::ENABLED value=value/>
                <button type="submit">{tr.t(button)}</button>
            </form>
        </section>
    }
    .into_any()
}

pub fn act_on_behalf(meta: PageMeta, vm: ActOnBehalfVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("act-on-behalf-title");
    let csrf = vm.csrf.clone();
    let body = view! {
        <h1>{title.clone()}</h1>
        {vm.notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.t("act-on-behalf-lead")}</p>
        {vm.practices.into_iter().map(|p| practice(tr, csrf.clone(), p)).collect_view()}
        <p><a href=Url::Staff.path()>{tr.t("record-views-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}
