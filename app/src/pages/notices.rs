//! Pages with nothing to fill in: the home page, notices (signed out, session expired), errors.

use super::layout::{document, Chrome};
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

pub fn home(meta: PageMeta) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("home-title")}</h1>
        <p class="lead">{tr.t("home-lead")}</p>
        <p>{tr.t("home-scam")}</p>
        <p><a href=Url::SignIn.path()>{tr.t("home-signin")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("home-title"),
        None,
        body.into_any(),
    )
}

pub fn notice(meta: PageMeta, kind: NoticeKind) -> String {
    let tr = Tr::new(meta.lang);
    let (title, text) = match kind {
        NoticeKind::SignedOut => (tr.t("signed-out-title"), tr.t("signed-out-body")),
        NoticeKind::SessionExpired => (tr.t("expired-title"), tr.t("expired-body")),
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{text}</p>
    };
    document(&meta, Chrome::Portal, title, None, body.into_any())
}

pub fn error(meta: PageMeta, vm: ErrorVm) -> String {
    let tr = Tr::new(meta.lang);
    let key = match vm.status {
        400 | 403 | 404 | 413 | 429 | 503 => format!("error-title-{}", vm.status),
        _ => "error-title-500".to_owned(),
    };
    let title = tr.t(&key);
    let body = view! {
        <h1>{title.clone()}</h1>
        <p>{tr.t("error-body")} " " <code class="request-id">{vm.request_id.clone()}</code></p>
        <p><a href=Url::Home.path()>{tr.t("error-home")}</a></p>
    };
    document(&meta, Chrome::Portal, title, None, body.into_any())
}
