//! Messages as staff see them (issue 13): the table of outbox rows the support console and the
//! practice's messages page share, and that page (`Url::StaffMessages`): messages given up or
//! failed, and the inbox of patients' replies with "mark as read".

use crate::forms::{MessageReadForm, MessagesQuery};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_messages::{MessageLineVm, MessagesVm, ReplyVm};
use leptos::prelude::*;

/// Outbox rows, newest first: when, how, which text, where it stands, to whom (masked).
pub fn message_table(tr: Tr, lines: &[MessageLineVm], empty_key: &str) -> AnyView {
    if lines.is_empty() {
        return view! { <p>{tr.t(empty_key)}</p> }.into_any();
    }
    let rows = lines
        .iter()
        .map(|m| {
            view! {
                <tr>
                    <td>{m.queued.clone()}</td>
                    <td>{m.channel.clone()}</td>
                    <td>{m.template.clone()}</td>
                    <td>{m.recipient.clone()}</td>
                    <td>{m.state.clone()}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <div class="table-wrap">
            <table class="messages">
                <thead><tr>
                    <th scope="col">{tr.t("messages-queued")}</th>
                    <th scope="col">{tr.t("messages-channel")}</th>
                    <th scope="col">{tr.t("messages-template")}</th>
                    <th scope="col">{tr.t("messages-recipient")}</th>
                    <th scope="col">{tr.t("messages-state")}</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn reply(tr: Tr, vm: &MessagesVm, r: &ReplyVm) -> AnyView {
    let state = match &r.read {
        Some(when) => tr.ta("messages-reply-read", &[("when", when.as_str())]),
        None => tr.t("messages-reply-unread"),
    };
    let mark = (vm.can_mark && r.read.is_none()).then(|| {
        let label = tr.ta("messages-mark-read-label", &[("when", r.received.as_str())]);
        view! {
            <form method="post" action=Url::StaffMessageRead.path() class="inline-form" novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=MessageReadForm::PRACTICE value=vm.practice.0.clone()/>
                <input type="hidden" name=MessageReadForm::REPLY value=r.id.clone()/>
                <button type="submit" class="button secondary" aria-label=label>{tr.t("messages-mark-read")}</button>
            </form>
        }
    });
    let class = if r.read.is_some() {
        "reply"
    } else {
        "reply unread"
    };
    view! {
        <li class=class id=format!("reply-{}", r.id)>
            <dl class="receipt">
                <dt>{tr.t("messages-reply-received")}</dt>
                <dd>{r.received.clone()}</dd>
                <dt>{tr.t("messages-reply-from")}</dt>
                <dd>{r.from.clone()}</dd>
                <dt>{tr.t("messages-reply-state")}</dt>
                <dd>{state}</dd>
            </dl>
            <blockquote class="reply-body">{r.body.clone()}</blockquote>
            {mark}
        </li>
    }
    .into_any()
}

/// A practice's messages that will not arrive and its patients' replies.
pub fn messages(meta: PageMeta, vm: MessagesVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.ta("messages-title", &[("practice", &vm.practice.1)]);
    let others = crate::pages::other_practices(
        tr,
        Url::StaffMessages,
        MessagesQuery::PRACTICE,
        &vm.others,
        "messages-other-practices",
    );
    let replies = if vm.replies.is_empty() {
        view! { <p>{tr.t("messages-no-replies")}</p> }.into_any()
    } else {
        let items = vm
            .replies
            .iter()
            .map(|r| reply(tr, &vm, r))
            .collect::<Vec<_>>();
        view! { <ul class="replies">{items}</ul> }.into_any()
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <h2>{tr.t("messages-replies")}</h2>
        <p>{tr.t("messages-replies-lead")}</p>
        {replies}
        <h2>{tr.t("messages-dead")}</h2>
        <p>{tr.t("messages-dead-lead")}</p>
        {message_table(tr, &vm.dead, "messages-no-dead")}
        {others}
        <p><a href=Url::Staff.path()>{tr.t("staff-payments-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word the page can show is in the catalog (a missing key renders as itself).
    #[test]
    fn every_key_is_in_the_catalog() {
        let reply = |read: Option<&str>| ReplyVm {
            id: format!("inb_{}", read.is_some()),
            read: read.map(str::to_owned),
            ..Default::default()
        };
        let full = messages(
            PageMeta::default(),
            MessagesVm {
                practice: ("ten_1".into(), "Riverside".into()),
                others: vec![("ten_2".into(), "Lakeside".into())],
                dead: vec![MessageLineVm::default()],
                replies: vec![reply(None), reply(Some("Dec 1, 2026 10:00 UTC"))],
                can_mark: true,
                ..Default::default()
            },
        );
        assert!(!full.contains("messages-"), "{full}");
        assert_eq!(full.matches("action=\"/staff/messages/read\"").count(), 1);
        let empty = messages(PageMeta::default(), MessagesVm::default());
        assert!(!empty.contains("messages-"), "{empty}");
    }
}
