//! "This wasn't me": the page an owner notice's link opens (it asks before acting: a plain GET
//! changes nothing), and the outcome.

use crate::forms::NotMeForm;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use leptos::prelude::*;

/// What the page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotMeVm {
    /// A live link: the button that acts (token and CSRF token for the form).
    Ask { csrf: String, token: String },
    /// Done: signed out everywhere, the practice alerted.
    Done,
    /// Unknown, used or expired.
    Gone,
}

pub fn not_me(meta: PageMeta, vm: NotMeVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("not-me-title");
    let body = match vm {
        NotMeVm::Ask { csrf, token } => view! {
            <h1>{title.clone()}</h1>
            <p class="lead">{tr.t("not-me-lead")}</p>
            <form method="post" action=Url::AccountNotMe.path()>
                {csrf_input(csrf)}
                <input type="hidden" name=NotMeForm::TOKEN value=token/>
                <button type="submit" class="button">{tr.t("not-me-submit")}</button>
            </form>
        }
        .into_any(),
        NotMeVm::Done => view! {
            <h1>{title.clone()}</h1>
            <p class="notice" role="status">{tr.t("not-me-done")}</p>
            <p><a href=Url::AccountForgot.path()>{tr.t("not-me-reset")}</a></p>
        }
        .into_any(),
        NotMeVm::Gone => view! {
            <h1>{title.clone()}</h1>
            <p class="lead">{tr.t("not-me-gone")}</p>
            <p><a href=Url::AccountForgot.path()>{tr.t("not-me-reset")}</a></p>
        }
        .into_any(),
    };
    document_portal(&meta, title, body)
}
