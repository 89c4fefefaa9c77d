//! "Is this text really from my practice?" (`Url::CheckLink`, issue 13): paste a pay link, learn
//! only whether it is a genuine, live PatriotPay link.

use crate::forms::CheckLinkForm;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_messages::{CheckLinkVm, CheckResultVm};
use leptos::prelude::*;

pub fn check_link(meta: PageMeta, vm: CheckLinkVm) -> String {
    let tr = Tr::new(meta.lang);
    let result = vm.result.clone().map(|r| match r {
        CheckResultVm::Genuine(words) => {
            view! { <p class="notice check-genuine" role="status">{words}</p> }.into_any()
        }
        CheckResultVm::Other(words) => {
            view! { <p class="notice check-not-found" role="status">{words}</p> }.into_any()
        }
    });
    let body = view! {
        <h1>{tr.t("check-link-title")}</h1>
        <p class="lead">{tr.t("check-link-lead")}</p>
        {result}
        <form method="post" action=Url::CheckLink.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=CheckLinkForm::LINK>{tr.t("check-link-field")}</label>
                <p class="hint" id="link-hint">{tr.ta("check-link-hint", &[("prefix", vm.prefix.as_str())])}</p>
                <input id=CheckLinkForm::LINK name=CheckLinkForm::LINK type="text" size="50"
                    maxlength="2000" autocomplete="off" spellcheck="false" required
                    aria-describedby="link-hint"/>
            </div>
            <button type="submit" class="button">{tr.t("check-link-submit")}</button>
        </form>
        <p>{tr.t("check-link-whole-why")}</p>
        <p>{tr.t("home-scam")}</p>
        <p><a href=Url::Home.path()>{tr.t("error-home")}</a></p>
    };
    document_portal(&meta, tr.t("check-link-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_the_catalog() {
        for result in [
            None,
            Some(CheckResultVm::Genuine("G".into())),
            Some(CheckResultVm::Other("N".into())),
        ] {
            let html = check_link(
                PageMeta::default(),
                CheckLinkVm {
                    result,
                    prefix: "https://pay.example/p/".into(),
                    ..Default::default()
                },
            );
            assert!(!html.contains("check-link-"), "{html}");
        }
    }
}
