//! Pages with nothing to fill in: the home page, notices (signed out, session expired), errors.

use super::csrf_input;
use super::layout::{document, Chrome};
use crate::forms::OpenLinkForm;
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
        <p><a href=Url::CheckLink.path()>{tr.t("home-check-link")}</a></p>
        <p><a href=Url::SignIn.path()>{tr.t("home-signin")}</a></p>
    };
    document(&meta, Chrome::Portal, tr.t("home-title"), body.into_any())
}

/// The accessibility statement: the standard aimed at, exactly what is tested and how, what is
/// not, and whom to tell.
pub fn accessibility(meta: PageMeta) -> String {
    let tr = Tr::new(meta.lang);
    let tested = [
        "a11y-tested-axe",
        "a11y-tested-keyboard",
        "a11y-tested-reflow",
        "a11y-tested-motion",
        "a11y-tested-nojs",
        "a11y-tested-languages",
    ]
    .into_iter()
    .map(|k| view! { <li>{tr.t(k)}</li> })
    .collect::<Vec<_>>();
    let body = view! {
        <h1>{tr.t("a11y-title")}</h1>
        <p class="lead">{tr.t("a11y-lead")}</p>
        <p>{tr.t("a11y-standard")}</p>
        <h2>{tr.t("a11y-tested-title")}</h2>
        <ul>{tested}</ul>
        <h2>{tr.t("a11y-limits-title")}</h2>
        <p>{tr.t("a11y-limits")}</p>
        <h2>{tr.t("a11y-contact-title")}</h2>
        <p>{tr.t("a11y-contact")}</p>
    };
    document(&meta, Chrome::Portal, tr.t("a11y-title"), body.into_any())
}

/// A link opened while signed in: stay, or sign out here and open it (a POST, so no other site
/// can sign anyone out or swap their session by making the browser load a URL).
pub fn switch_session(meta: PageMeta, vm: SwitchSessionVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("switch-title")}</h1>
        <p class="lead">
            {if vm.staff {
                tr.t("switch-body-staff")
            } else if vm.can_continue {
                tr.t("switch-body-continue")
            } else {
                tr.t("switch-body-member")
            }}
        </p>
        {vm.can_continue.then(|| view! {
            <form method="post" action=vm.open_path.clone()>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=OpenLinkForm::KEEP value=OpenLinkForm::KEEP_VALUE/>
                <button type="submit" class="button">{tr.t("switch-continue")}</button>
            </form>
        })}
        <form method="post" action=vm.open_path.clone()>
            {csrf_input(vm.csrf.clone())}
            <button type="submit" class="button secondary">{tr.t("switch-open")}</button>
        </form>
        <p><a href=vm.stay_path.clone()>{tr.t("switch-stay")}</a></p>
    };
    document(&meta, Chrome::Portal, tr.t("switch-title"), body.into_any())
}

pub fn notice(meta: PageMeta, kind: NoticeKind) -> String {
    let tr = Tr::new(meta.lang);
    let (title, text) = match kind {
        NoticeKind::SignedOut => (tr.t("signed-out-title"), tr.t("signed-out-body")),
        NoticeKind::SessionExpired => (tr.t("expired-title"), tr.t("expired-body")),
        NoticeKind::ViewAsReadOnly => (tr.t("viewas-refused-title"), tr.t("viewas-refused")),
        NoticeKind::ViewAsConsentNeeded => {
            (tr.t("viewas-refused-title"), tr.t("viewas-refused-consent"))
        }
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{text}</p>
    };
    document(&meta, Chrome::Portal, title, body.into_any())
}

pub fn error(meta: PageMeta, vm: ErrorVm) -> String {
    let tr = Tr::new(meta.lang);
    let key = match vm.status {
        400 | 403 | 404 | 413 | 429 | 503 => format!("error-title-{}", vm.status),
        _ => "error-title-500".to_owned(),
    };
    let title = tr.t(&key);
    // What to do instead, where there is something: a request is only this large when it is a
    // statement file uploaded from the staff pages.
    let advice =
        (vm.status == 413).then(|| view! { <p class="lead">{tr.t("error-advice-413")}</p> });
    let body = view! {
        <h1>{title.clone()}</h1>
        {advice}
        <p>{tr.t("error-body")} " " <code class="request-id">{vm.request_id.clone()}</code></p>
        <p><a href=Url::Home.path()>{tr.t("error-home")}</a></p>
    };
    document(&meta, Chrome::Portal, title, body.into_any())
}
