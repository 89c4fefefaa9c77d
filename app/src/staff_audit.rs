//! The audit viewer page for security officers and auditors: a GET form of filters and one page
//! of events, newest first, with an "older" link.

use crate::i18n::Tr;
use crate::pages::{document_portal, error_summary};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_audit::{AuditLogVm, AuditQuery, AuditRowVm};
use leptos::prelude::*;

/// One labelled text input of the filter form.
fn text_field(tr: Tr, name: &'static str, label: &'static str, value: String) -> AnyView {
    let id = format!("audit-{name}");
    view! {
        <div class="field">
            <label for=id.clone()>{tr.t(label)}</label>
            <input id=id name=name type="text" autocomplete="off" value=value/>
        </div>
    }
    .into_any()
}

fn row(tr: Tr, r: AuditRowVm) -> AnyView {
    let sealed = if r.sealed {
        tr.t("staff-audit-sealed")
    } else {
        tr.t("staff-audit-unsealed")
    };
    let class = if r.sealed { "sealed" } else { "unsealed" };
    view! {
        <tr class="audit-row" data-seq=r.seq.clone()>
            <td>{r.time}</td>
            <td>{r.actor}</td>
            <td>{r.on_behalf_of}</td>
            <td>{r.practice}</td>
            <td>{r.patient}</td>
            <td>{r.action}</td>
            <td>{r.resource}</td>
            <td>{r.request_id}</td>
            <td>{r.address}</td>
            <td>{r.outcome}</td>
            <td class=class>{sealed}</td>
        </tr>
    }
    .into_any()
}

fn table(tr: Tr, rows: Vec<AuditRowVm>) -> AnyView {
    if rows.is_empty() {
        return view! { <p role="status">{tr.t("staff-audit-none")}</p> }.into_any();
    }
    let cols = [
        "staff-audit-col-time",
        "staff-audit-col-actor",
        "staff-audit-col-on-behalf-of",
        "staff-audit-col-practice",
        "staff-audit-col-patient",
        "staff-audit-col-action",
        "staff-audit-col-resource",
        "staff-audit-col-request",
        "staff-audit-col-address",
        "staff-audit-col-outcome",
        "staff-audit-col-sealed",
    ]
    .into_iter()
    .map(|c| view! { <th scope="col">{tr.t(c)}</th> })
    .collect::<Vec<_>>();
    let body = rows.into_iter().map(|r| row(tr, r)).collect::<Vec<_>>();
    let table = view! {
        <table class="statement audit-log">
            <caption>{tr.t("staff-audit-caption")}</caption>
            <thead><tr>{cols}</tr></thead>
            <tbody>{body}</tbody>
        </table>
    };
    crate::pages::scroll_region(tr.t("staff-audit-caption"), table.into_any())
}

/// The filters (a GET form: reading the log changes nothing) and one page of events.
pub fn audit_log(meta: PageMeta, vm: AuditLogVm) -> String {
    let tr = Tr::new(meta.lang);
    let f = vm.filter.clone();
    let practice = if vm.practices.len() > 1 {
        let options = vm
            .practices
            .iter()
            .map(|(id, name)| {
                let selected = *id == f.practice;
                view! { <option value=id.clone() selected=selected>{name.clone()}</option> }
            })
            .collect::<Vec<_>>();
        view! {
            <div class="field">
                <label for="audit-practice">{tr.t("staff-audit-practice")}</label>
                <select id="audit-practice" name=AuditQuery::PRACTICE>{options}</select>
            </div>
        }
        .into_any()
    } else {
        let name = vm
            .practices
            .first()
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        view! { <p>{tr.ta("staff-audit-practice-one", &[("practice", &name)])}</p> }.into_any()
    };
    let results = vm.rows.clone().map(|rows| table(tr, rows));
    let older = vm.older.clone().map(|href| {
        view! { <a href=href rel="next">{tr.t("staff-audit-older")}</a> }
    });
    let newest = vm.newest.clone().map(|href| {
        view! { <a href=href>{tr.t("staff-audit-newest")}</a> " " }
    });
    let body = view! {
        <h1>{tr.t("staff-audit-title")}</h1>
        <p class="lead">{tr.t("staff-audit-lead")}</p>
        {error_summary(tr, vm.error.clone(), None)}
        <form method="get" action=Url::StaffAudit.path() novalidate>
            {practice}
            {text_field(tr, AuditQuery::ACTOR, "staff-audit-actor", f.actor.clone())}
            {text_field(tr, AuditQuery::PATIENT, "staff-audit-patient", f.patient.clone())}
            {text_field(tr, AuditQuery::ACTION, "staff-audit-action", f.action.clone())}
            {text_field(tr, AuditQuery::FROM, "staff-audit-from", f.from.clone())}
            {text_field(tr, AuditQuery::TO, "staff-audit-to", f.to.clone())}
            {text_field(tr, AuditQuery::ADDRESS, "staff-audit-address", f.address.clone())}
            <button type="submit" class="button">{tr.t("staff-audit-submit")}</button>
        </form>
        {results}
        <p class="audit-pages">{newest}{older}</p>
        <p><a href=Url::Staff.path()>{tr.t("staff-payments-back")}</a></p>
    };
    document_portal(&meta, tr.t("staff-audit-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_audit::AuditFilterVm;

    fn page(vm: AuditLogVm) -> String {
        audit_log(PageMeta::default(), vm)
    }

    #[test]
    fn rows_say_whether_the_chain_sealed_them_and_every_text_is_in_the_catalog() {
        let html = page(AuditLogVm {
            practices: vec![("ten_a".into(), "A".into()), ("ten_b".into(), "B".into())],
            filter: AuditFilterVm {
                practice: "ten_b".into(),
                ..Default::default()
            },
            rows: Some(vec![
                AuditRowVm {
                    seq: "7".into(),
                    sealed: true,
                    ..Default::default()
                },
                AuditRowVm {
                    seq: "6".into(),
                    sealed: false,
                    ..Default::default()
                },
            ]),
            older: Some("/staff/audit?before=6".into()),
            newest: Some("/staff/audit".into()),
            ..Default::default()
        });
        assert!(html.contains(r#"data-seq="7""#) && html.contains(r#"data-seq="6""#));
        assert!(html.contains(r#"class="sealed""#));
        assert!(html.contains(r#"class="unsealed""#));
        assert!(html.contains(r#"href="/staff/audit?before=6""#));
        assert!(html.contains(r#"<option value="ten_b" selected"#));
        assert!(
            !html.contains("staff-audit-"),
            "a key missing from the catalog"
        );
    }

    #[test]
    fn a_refused_filter_shows_its_message_and_no_table() {
        let html = page(AuditLogVm {
            practices: vec![("ten_a".into(), "A".into())],
            error: Some("Bad date".into()),
            ..Default::default()
        });
        assert!(html.contains("Bad date"));
        assert!(!html.contains("<table"));
        assert!(
            !html.contains("staff-audit-"),
            "a key missing from the catalog"
        );
    }
}
