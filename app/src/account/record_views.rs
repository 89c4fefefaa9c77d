//! "Who viewed my record": every staff view or change of the caller's own record, newest first,
//! in plain words, for a signed-in patient and for a pay-link visitor who gave both answers.

use crate::i18n::Tr;
use crate::pages::document_portal;
use crate::vm::PageMeta;
use crate::vm_record_views::{RecordViewVm, RecordViewsVm};
use leptos::prelude::*;

fn row(v: RecordViewVm) -> AnyView {
    let class = if v.refused {
        "record-view refused"
    } else {
        "record-view"
    };
    view! {
        <li class=class>
            <p>{v.line}</p>
            {v.why.map(|w| view! { <p class="hint">{w}</p> })}
        </li>
    }
    .into_any()
}

pub fn record_views(meta: PageMeta, vm: RecordViewsVm) -> String {
    let tr = Tr::new(meta.lang);
    let list = if vm.views.is_empty() {
        view! { <p>{tr.t("record-views-none")}</p> }.into_any()
    } else {
        let rows = vm.views.into_iter().map(row).collect::<Vec<_>>();
        view! { <ol class="record-views">{rows}</ol> }.into_any()
    };
    let body = view! {
        <h1>{tr.t("record-views-title")}</h1>
        <p class="lead">{tr.t("record-views-lead")}</p>
        {list}
        {vm.older.map(|href| view! { <p><a href=href>{tr.t("record-views-older")}</a></p> })}
        <p><a href=vm.back.path()>{tr.t("record-views-back")}</a></p>
    };
    document_portal(&meta, tr.t("record-views-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::Url;

    #[test]
    fn lists_lines_reasons_and_the_older_link_escaped() {
        let vm = RecordViewsVm {
            views: vec![
                RecordViewVm {
                    line: "<b>Dana</b> of Demo viewed your payments".into(),
                    why: Some("Reason given: fraud check".into()),
                    refused: false,
                },
                RecordViewVm {
                    line: "Sam tried to issue a refund".into(),
                    why: None,
                    refused: true,
                },
            ],
            older: Some("/record-views?before=12".into()),
            back: Url::Summary,
        };
        let html = record_views(PageMeta::default(), vm);
        assert!(!html.contains("<b>Dana</b>"), "{html}");
        assert!(html.contains("Reason given: fraud check"), "{html}");
        assert!(html.contains("record-view refused"), "{html}");
        assert!(html.contains("href=\"/record-views?before=12\""), "{html}");
        assert!(html.contains("href=\"/summary\""), "{html}");
        assert!(
            !html.contains(">record-views-"),
            "untranslated key in {html}"
        );
        let empty = record_views(PageMeta::default(), RecordViewsVm::default());
        assert!(empty.contains(&Tr::default().t("record-views-none")));
    }
}
