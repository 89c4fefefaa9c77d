//! The security officer's alert console (`Url::StaffAlerts`): a practice's alerts, open ones
//! first, each with acknowledge and a note form; the platform's console lists every alert.

use crate::forms::{AlertAckForm, AlertNoteForm, AlertsQuery};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_alerts::{AlertVm, AlertsVm};
use leptos::prelude::*;

fn alert(tr: Tr, vm: &AlertsVm, a: &AlertVm) -> AnyView {
    let state = match &a.acknowledged {
        Some(words) => words.clone(),
        None => tr.t("alerts-open"),
    };
    let ack = a.acknowledged.is_none().then(|| {
        let label = tr.ta("alerts-ack-label", &[("id", a.id.as_str())]);
        view! {
            <form method="post" action=Url::StaffAlertAck.path() class="inline-form" novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=AlertAckForm::PRACTICE value=vm.practice.0.clone()/>
                <input type="hidden" name=AlertAckForm::ALERT value=a.id.clone()/>
                <button type="submit" class="button secondary" aria-label=label>{tr.t("alerts-ack")}</button>
            </form>
        }
    });
    let notes = a
        .notes
        .iter()
        .map(|n| {
            view! {
                <li>
                    <p class="note-meta">{tr.ta("alerts-note-by", &[("who", n.author.as_str()), ("when", n.at.as_str())])}</p>
                    <blockquote>{n.text.clone()}</blockquote>
                </li>
            }
        })
        .collect::<Vec<_>>();
    let error = vm
        .note_error
        .as_ref()
        .filter(|(id, _, _)| *id == a.id)
        .map(|(_, msg, kept)| (msg.clone(), kept.clone()));
    let field = format!("note-{}", a.id);
    let error_id = format!("note-{}-error", a.id);
    let kept = error.as_ref().map(|(_, k)| k.clone()).unwrap_or_default();
    let described = error.as_ref().map(|_| error_id.clone());
    let invalid = error.as_ref().map(|_| "true");
    let practice = a
        .practice
        .clone()
        .unwrap_or_else(|| tr.t("alerts-platform"));
    view! {
        <li class=if a.acknowledged.is_some() { "alert acknowledged" } else { "alert open" } id=format!("alert-{}", a.id)>
            <h3>{format!("#{} {}", a.id, a.kind)}</h3>
            <dl class="receipt">
                <dt>{tr.t("alerts-at")}</dt>
                <dd>{a.at.clone()}</dd>
                <dt>{tr.t("alerts-practice")}</dt>
                <dd>{practice}</dd>
                <dt>{tr.t("alerts-state")}</dt>
                <dd>{state}</dd>
            </dl>
            <p class="alert-detail">{a.detail.clone()}</p>
            {ack}
            {(!notes.is_empty()).then(|| view! {
                <h4>{tr.t("alerts-notes")}</h4>
                <ul class="notes">{notes}</ul>
            })}
            <form method="post" action=Url::StaffAlertNote.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=AlertNoteForm::PRACTICE value=vm.practice.0.clone()/>
                <input type="hidden" name=AlertNoteForm::ALERT value=a.id.clone()/>
                <label for=field.clone()>{tr.ta("alerts-note-label", &[("id", a.id.as_str())])}</label>
                {error.map(|(msg, _)| view! { <p class="field-error" id=error_id.clone()>{msg}</p> })}
                <textarea id=field name=AlertNoteForm::NOTE rows="3" maxlength="2000"
                    aria-describedby=described aria-invalid=invalid>{kept}</textarea>
                <button type="submit" class="button secondary">{tr.t("alerts-note-add")}</button>
            </form>
        </li>
    }
    .into_any()
}

/// A practice's alerts for its security officers.
pub fn alerts(meta: PageMeta, vm: AlertsVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.ta("alerts-title", &[("practice", &vm.practice.1)]);
    let others = crate::pages::other_practices(
        tr,
        Url::StaffAlerts,
        AlertsQuery::PRACTICE,
        &vm.others,
        "alerts-other",
    );
    let list = if vm.alerts.is_empty() {
        view! { <p>{tr.t("alerts-none")}</p> }.into_any()
    } else {
        let items = vm
            .alerts
            .iter()
            .map(|a| alert(tr, &vm, a))
            .collect::<Vec<_>>();
        view! { <ul class="alerts">{items}</ul> }.into_any()
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p>{tr.t("alerts-lead")}</p>
        {list}
        {others}
        <p><a href=Url::Staff.path()>{tr.t("staff-payments-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_alerts::AlertNoteVm;

    /// Every word the page can show is in the catalog (a missing key renders as itself).
    #[test]
    fn every_key_is_in_the_catalog() {
        let open = AlertVm {
            id: "7".into(),
            kind: "break-glass".into(),
            notes: vec![AlertNoteVm::default()],
            ..Default::default()
        };
        let done = AlertVm {
            id: "8".into(),
            practice: Some("Riverside".into()),
            acknowledged: Some("Acknowledged".into()),
            ..Default::default()
        };
        let full = alerts(
            PageMeta::default(),
            AlertsVm {
                practice: ("ten_1".into(), "Riverside".into()),
                others: vec![("ten_2".into(), "Lakeside".into())],
                alerts: vec![open, done],
                notice: Some("done".into()),
                note_error: Some(("7".into(), "too long".into(), "kept words".into())),
                ..Default::default()
            },
        );
        assert!(!full.contains("alerts-"), "{full}");
        assert_eq!(
            full.matches("action=\"/staff/alerts/acknowledge\"").count(),
            1
        );
        assert!(full.contains("kept words") && full.contains("aria-invalid=\"true\""));
        let empty = alerts(PageMeta::default(), AlertsVm::default());
        assert!(!empty.contains("alerts-"), "{empty}");
    }
}
