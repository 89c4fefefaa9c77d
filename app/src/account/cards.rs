//! The member's saved cards: brand, last four and expiry of each, a remove button per card, and
//! the button that goes to the processor's page to save one.

use crate::forms::RemoveCardForm;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal, error_summary};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_cards::{CardsVm, SavedCardVm};
use leptos::prelude::*;

fn card_row(tr: Tr, csrf: String, c: SavedCardVm) -> AnyView {
    let which = [
        ("brand", c.brand.as_str()),
        ("last4", c.last4.as_str()),
        ("expiry", c.expiry.as_str()),
    ];
    view! {
        <li class="saved-card">
            <span>{tr.ta("account-card-line", &which)}</span>
            <form method="post" action=Url::AccountCardRemove.path() class="inline-form" novalidate>
                {csrf_input(csrf)}
                <input type="hidden" name=RemoveCardForm::CARD value=c.id.clone()/>
                <button type="submit" class="button secondary">
                    {tr.ta("account-card-remove", &which)}
                </button>
            </form>
        </li>
    }
    .into_any()
}

pub fn cards(meta: PageMeta, vm: CardsVm) -> String {
    let tr = Tr::new(meta.lang);
    let list = if vm.cards.is_empty() {
        view! { <p>{tr.t("account-cards-none")}</p> }.into_any()
    } else {
        let rows = vm
            .cards
            .into_iter()
            .map(|c| card_row(tr, vm.csrf.clone(), c))
            .collect::<Vec<_>>();
        view! { <ul class="saved-cards">{rows}</ul> }.into_any()
    };
    let body = view! {
        <h1>{tr.t("account-cards-title")}</h1>
        {error_summary(tr, vm.failure.clone(), None)}
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.t("account-cards-lead")}</p>
        {list}
        <form method="post" action=Url::AccountCardSave.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <p class="hint">{tr.t("account-cards-save-note")}</p>
            <button type="submit" class="button">{tr.t("account-cards-save")}</button>
        </form>
        <p><a href=Url::Account.path()>{tr.t("account-cards-back")}</a></p>
    };
    document_portal(&meta, tr.t("account-cards-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_card_with_a_remove_form_and_escapes() {
        let vm = CardsVm {
            csrf: "tok".into(),
            cards: vec![
                SavedCardVm {
                    id: "pm_test_1".into(),
                    brand: "Visa".into(),
                    last4: "4242".into(),
                    expiry: "12/2034".into(),
                },
                SavedCardVm {
                    id: "\"><b>x</b>".into(),
                    brand: "<i>Mastercard</i>".into(),
                    last4: "4444".into(),
                    expiry: "01/2030".into(),
                },
            ],
            notice: Some("Saved".into()),
            failure: None,
        };
        let html = cards(PageMeta::default(), vm);
        assert!(html.contains("Visa ending 4242, expires 12/2034"), "{html}");
        assert!(html.contains("value=\"pm_test_1\""), "{html}");
        assert!(
            !html.contains("<b>x</b>") && !html.contains("<i>Mastercard"),
            "{html}"
        );
        assert_eq!(html.matches(Url::AccountCardRemove.template()).count(), 2);
        assert!(html.contains(Url::AccountCardSave.template()));
        assert!(!html.contains(">account-"), "untranslated key in {html}");
        let empty = cards(PageMeta::default(), CardsVm::default());
        assert!(empty.contains(&Tr::default().t("account-cards-none")));
    }
}
