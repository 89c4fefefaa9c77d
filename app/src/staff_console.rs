//! The support console page (`Url::StaffPatient`): a patient's statements (each with a form to
//! send a fresh pay link), payments, pay links with their state and the revoke and unlock forms,
//! and the messages sent to them; the form that starts viewing as the patient.

use crate::forms::{LinkResendForm, LinkRevokeForm, LinkUnlockForm, RemindersForm, ViewAsForm};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_console::{ConsoleLinkVm, ConsoleVm, UnlockFormVm};
use leptos::prelude::*;

fn statements(tr: Tr, vm: &ConsoleVm) -> AnyView {
    if vm.statements.is_empty() {
        return view! { <p>{tr.t("staff-console-no-statements")}</p> }.into_any();
    }
    let rows = vm
        .statements
        .iter()
        .map(|s| {
            let label = tr.ta("staff-console-resend-label", &[("date", &s.date)]);
            let (state, action, button) = if s.reminders_paused {
                ("staff-console-reminders-paused-state", "resume", "staff-console-reminders-resume")
            } else {
                ("staff-console-reminders-on-state", "pause", "staff-console-reminders-pause")
            };
            let reminders_label = tr.ta(&format!("{button}-label"), &[("date", &s.date)]);
            view! {
                <tr>
                    <td>{s.date.clone()}</td>
                    <td>{s.due.clone()}</td>
                    <td class="num">{s.balance.clone()}</td>
                    <td>
                        <form method="post" action=Url::StaffLinkResend.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=LinkResendForm::STATEMENT value=s.id.clone()/>
                            <button type="submit" class="button secondary" aria-label=label>{tr.t("staff-console-resend")}</button>
                        </form>
                    </td>
                    <td>
                        <span>{tr.t(state)}</span>" "
                        <form method="post" action=Url::StaffReminders.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=RemindersForm::STATEMENT value=s.id.clone()/>
                            <input type="hidden" name=RemindersForm::ACTION value=action/>
                            <button type="submit" class="link-button" aria-label=reminders_label>{tr.t(button)}</button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <table class="console-statements">
            <thead><tr>
                <th scope="col">{tr.t("staff-console-statement-date")}</th>
                <th scope="col">{tr.t("staff-console-due-date")}</th>
                <th scope="col">{tr.t("staff-console-balance")}</th>
                <th scope="col">{tr.t("staff-console-actions")}</th>
                <th scope="col">{tr.t("staff-console-reminders")}</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

fn payments(tr: Tr, vm: &ConsoleVm) -> AnyView {
    let list = if vm.payments.is_empty() {
        view! { <p>{tr.t("staff-payments-none")}</p> }.into_any()
    } else {
        let items = vm
            .payments
            .iter()
            .map(|p| {
                let status = tr.t(&format!("staff-payment-status-{}", p.status));
                view! { <li>{tr.ta("staff-console-payment-line", &[("date", &p.date), ("amount", &p.amount), ("status", &status)])}</li> }
            })
            .collect::<Vec<_>>();
        view! { <ul class="console-payments">{items}</ul> }.into_any()
    };
    let link = vm.payments_link.then(|| {
        let label = tr.ta("staff-payments-link-label", &[("patient", &vm.patient_name)]);
        view! { <p><a href=Url::StaffPatientPayments(&vm.patient_id).path() aria-label=label>{tr.t("staff-payments-link")}</a></p> }
    });
    view! { {list} {link} }.into_any()
}

/// Text for inside a `<textarea>`, escaped by hand: tachys renders a textarea's children
/// unescaped (its `ESCAPE_CHILDREN` is false), so a typed `</textarea>` would end the element and
/// what follows would be markup. The browser decodes the references back to what was typed.
fn textarea_text(typed: &str) -> String {
    let mut out = String::with_capacity(typed.len());
    for c in typed.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The unlock form of a locked link: the reason is required, and a refused one comes back with
/// what was typed and the message.
fn unlock_form(tr: Tr, csrf: &str, l: &ConsoleLinkVm, refused: Option<&UnlockFormVm>) -> AnyView {
    let field_id = format!("unlock-reason-{}", l.id);
    let error_id = format!("unlock-error-{}", l.id);
    let hint_id = format!("unlock-hint-{}", l.id);
    let error = refused.map(|u| u.error.clone());
    let has_error = error.is_some();
    let typed = refused
        .map(|u| textarea_text(&u.reason))
        .unwrap_or_default();
    let described = if has_error {
        format!("{hint_id} {error_id}")
    } else {
        hint_id.clone()
    };
    view! {
        <form method="post" action=Url::StaffLinkUnlock.path() class="unlock-form" novalidate>
            {csrf_input(csrf.to_owned())}
            <input type="hidden" name=LinkUnlockForm::LINK value=l.id.clone()/>
            <div class="field">
                <label for=field_id.clone()>{tr.t("staff-console-unlock-reason")}</label>
                <p class="hint" id=hint_id.clone()>{tr.t("staff-console-unlock-hint")}</p>
                {error.map(|e| view! {
                    <p class="error-message" id=error_id.clone() role="alert">
                        <span class="visually-hidden">{tr.t("error-prefix")} " "</span>{e}
                    </p>
                })}
                <textarea id=field_id.clone() name=LinkUnlockForm::REASON rows="3" cols="50" maxlength="500"
                    aria-invalid=has_error.then_some("true")
                    aria-describedby=described>{typed}</textarea>
            </div>
            <button type="submit" class="button">{tr.t("staff-console-unlock")}</button>
        </form>
    }
    .into_any()
}

/// Starts viewing as this patient: a reason and the support ticket are required.
fn view_as_form(tr: Tr, vm: &ConsoleVm) -> AnyView {
    let err = |field: &'static str| {
        vm.view_as_error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.clone())
    };
    let reason_error = err(ViewAsForm::REASON);
    let ticket_error = err(ViewAsForm::TICKET);
    let field = |id: &'static str, label: String, error: Option<String>, input: AnyView| {
        let error_id = format!("{id}-error");
        view! {
            <div class="field">
                <label for=id>{label}</label>
                {error.map(|e| view! {
                    <p class="error-message" id=error_id.clone() role="alert">
                        <span class="visually-hidden">{tr.t("error-prefix")} " "</span>{e}
                    </p>
                })}
                {input}
            </div>
        }
    };
    let reason_input = view! {
        <p class="hint" id="view-as-reason-hint">{tr.t("viewas-reason-hint")}</p>
        <textarea id="view-as-reason" name=ViewAsForm::REASON rows="2" cols="50" maxlength="500"
            required aria-invalid=reason_error.is_some().then_some("true")
            aria-describedby=if reason_error.is_some() { "view-as-reason-hint view-as-reason-error" } else { "view-as-reason-hint" }></textarea>
    }
    .into_any();
    let ticket_input = view! {
        <input id="view-as-ticket" name=ViewAsForm::TICKET type="text" maxlength="40" required
            autocomplete="off" value=vm.view_as_ticket.clone()
            aria-invalid=ticket_error.is_some().then_some("true")
            aria-describedby=ticket_error.is_some().then_some("view-as-ticket-error")/>
    }
    .into_any();
    view! {
        <section class="card" aria-labelledby="view-as-heading">
            <h2 id="view-as-heading">{tr.t("viewas-start")}</h2>
            <form method="post" action=Url::StaffViewAs.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=ViewAsForm::PATIENT value=vm.patient_id.clone()/>
                {field("view-as-reason", tr.t("viewas-reason"), reason_error.clone(), reason_input)}
                {field("view-as-ticket", tr.t("viewas-ticket"), ticket_error.clone(), ticket_input)}
                <button type="submit" class="button">{tr.t("viewas-start")}</button>
            </form>
        </section>
    }
    .into_any()
}

fn links(tr: Tr, vm: &ConsoleVm) -> AnyView {
    if vm.links.is_empty() {
        return view! { <p>{tr.t("staff-console-no-links")}</p> }.into_any();
    }
    let items = vm
        .links
        .iter()
        .map(|l| {
            let status = tr.t(&format!("staff-console-link-{}", l.status));
            let opened = l
                .first_opened
                .clone()
                .unwrap_or_else(|| tr.t("staff-console-never-opened"));
            let revoke = l.can_revoke().then(|| {
                let label = tr.ta("staff-console-revoke-label", &[("date", &l.created)]);
                view! {
                    <form method="post" action=Url::StaffLinkRevoke.path() class="inline-form" novalidate>
                        {csrf_input(vm.csrf.clone())}
                        <input type="hidden" name=LinkRevokeForm::LINK value=l.id.clone()/>
                        <button type="submit" class="button secondary" aria-label=label>{tr.t("staff-console-revoke")}</button>
                    </form>
                }
            });
            let refused = vm.unlock.as_ref().filter(|u| u.link == l.id);
            let unlock = l.can_unlock().then(|| unlock_form(tr, &vm.csrf, l, refused));
            view! {
                <li class="console-link" id=format!("link-{}", l.id)>
                    <dl class="receipt">
                        <dt>{tr.t("staff-console-link-statement")}</dt>
                        <dd>{l.statement_date.clone()}</dd>
                        <dt>{tr.t("staff-console-link-sent")}</dt>
                        <dd>{l.created.clone()}</dd>
                        <dt>{tr.t("staff-console-link-opened")}</dt>
                        <dd>{opened}</dd>
                        <dt>{tr.t("staff-console-link-failures")}</dt>
                        <dd>{l.failed_attempts}</dd>
                        <dt>{tr.t("staff-console-link-state")}</dt>
                        <dd class=format!("link-state link-state-{}", l.status)>{status}</dd>
                    </dl>
                    {revoke}
                    {unlock}
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! { <ul class="console-links">{items}</ul> }.into_any()
}

/// One patient as the support console shows them.
pub fn console(meta: PageMeta, vm: ConsoleVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.ta("staff-console-title", &[("patient", &vm.patient_name)]);
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{tr.ta("staff-console-lead", &[("practice", &vm.practice)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {vm.new_link.clone().map(|link| view! {
            <section class="invite-box" aria-labelledby="new-link-heading">
                <h2 id="new-link-heading">{tr.t("staff-console-new-link-title")}</h2>
                <p><code class="pay-link">{link}</code></p>
                <p>{tr.t("staff-console-new-link-body")}</p>
            </section>
        })}
        {view_as_form(tr, &vm)}
        <h2>{tr.t("staff-console-statements")}</h2>
        {statements(tr, &vm)}
        <h2>{tr.t("staff-console-payments")}</h2>
        {payments(tr, &vm)}
        <h2>{tr.t("staff-console-links")}</h2>
        <p>{tr.t("staff-console-links-lead")}</p>
        {links(tr, &vm)}
        <h2>{tr.t("staff-console-messages")}</h2>
        <p>{tr.t("staff-console-messages-lead")}</p>
        {crate::staff_messages::message_table(tr, &vm.messages, "staff-console-no-messages")}
        <p><a href=Url::Staff.path()>{tr.t("staff-payments-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_console::{ConsolePaymentVm, ConsoleStatementVm};

    /// Every message the page can show is in the catalog (a missing key renders as itself).
    #[test]
    fn every_key_is_in_the_catalog() {
        let link = |status: &str| ConsoleLinkVm {
            id: format!("lnk_{status}"),
            status: status.into(),
            created: "Nov 1, 2026 10:00 UTC".into(),
            ..Default::default()
        };
        let html = console(
            PageMeta::default(),
            ConsoleVm {
                patient_name: "P".into(),
                payments_link: true,
                statements: vec![ConsoleStatementVm::default()],
                payments: ["succeeded", "processing", "failed"]
                    .into_iter()
                    .map(|s| ConsolePaymentVm {
                        status: s.into(),
                        ..Default::default()
                    })
                    .collect(),
                links: ["active", "locked", "expired", "revoked"]
                    .into_iter()
                    .map(link)
                    .collect(),
                messages: vec![crate::vm_messages::MessageLineVm::default()],
                new_link: Some("https://pay.example/p/x".into()),
                unlock: Some(UnlockFormVm {
                    link: "lnk_locked".into(),
                    reason: "typed <b> & </textarea><p>x".into(),
                    error: "E".into(),
                }),
                ..Default::default()
            },
        );
        assert!(!html.contains("staff-"), "{html}");
        assert!(
            html.contains(">typed &lt;b&gt; &amp; &lt;/textarea&gt;&lt;p&gt;x</textarea>"),
            "the reason typed comes back, escaped once: {html}"
        );
        assert_eq!(html.matches("action=\"/staff/links/unlock\"").count(), 1);
        assert_eq!(html.matches("action=\"/staff/links/revoke\"").count(), 2);
    }
}
