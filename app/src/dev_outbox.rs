//! The demo's outbox viewer: every text and email the portal queued, newest first, with its
//! state, so `serve --demo` shows what would have gone out (links in texts can be followed).

use crate::i18n::Tr;
use crate::pages::document_portal;
use crate::vm::PageMeta;
use leptos::prelude::*;

/// One message as the viewer shows it.
#[derive(Clone, Debug, Default)]
pub struct DevMessageVm {
    pub queued: String,
    pub channel: String,
    pub to: String,
    pub template: String,
    pub state: String,
    pub subject: Option<String>,
    pub body: String,
    /// The first portal link in the body, to follow.
    pub link: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DevOutboxVm {
    pub messages: Vec<DevMessageVm>,
}

pub fn dev_outbox(meta: PageMeta, vm: DevOutboxVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("dev-outbox-title");
    let empty = vm
        .messages
        .is_empty()
        .then(|| view! { <p>{tr.t("dev-outbox-empty")}</p> });
    let items = vm
        .messages
        .into_iter()
        .map(|m| {
            let link = m.link.map(|l| {
                view! { <p><a class="dev-link" href=l.clone()>{tr.t("dev-outbox-open")}</a></p> }
            });
            view! {
                <li class="card dev-message">
                    <p class="meta">
                        {m.queued} " · " {m.channel} " · " <span class="dev-to">{m.to}</span>
                        " · " {m.template} " · " <strong class="dev-state">{m.state}</strong>
                    </p>
                    {m.subject.map(|s| view! { <p><strong>{s}</strong></p> })}
                    <p class="dev-body">{m.body}</p>
                    {link}
                </li>
            }
        })
        .collect_view();
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{tr.t("dev-outbox-lead")}</p>
        {empty}
        <ol class="dev-messages">{items}</ol>
    };
    document_portal(&meta, title, body.into_any())
}
