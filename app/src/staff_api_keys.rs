//! The practice admin's API-keys page: each practice's keys (first characters, label, made, last
//! used, revoked), making one (shown once) and revoking one.

use crate::forms::{ApiKeyCreateForm, ApiKeyRevokeForm};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_api_keys::{ApiKeyPracticeVm, ApiKeyVm, ApiKeysVm};
use leptos::prelude::*;

fn key_row(tr: Tr, csrf: String, practice: String, k: ApiKeyVm) -> AnyView {
    let state = match (&k.revoked, &k.refused_from) {
        (Some(at), _) => tr.ta("apikeys-revoked-at", &[("when", at.as_str())]),
        (None, Some(at)) if k.expired => tr.ta("apikeys-expired-at", &[("when", at.as_str())]),
        (None, Some(at)) => tr.ta("apikeys-expires-at", &[("when", at.as_str())]),
        (None, None) => tr.t("apikeys-live"),
    };
    let revoke = (k.revoked.is_none() && !k.expired).then(|| {
        view! {
            <form method="post" action=Url::StaffApiKeyRevoke.path()>
                {csrf_input(csrf)}
                <input type="hidden" name=ApiKeyRevokeForm::PRACTICE value=practice/>
                <input type="hidden" name=ApiKeyRevokeForm::KEY value=k.id.clone()/>
                <button type="submit" class="link-button"
                    aria-label=tr.ta("apikeys-revoke-label", &[("label", k.label.as_str())])>
                    {tr.t("apikeys-revoke")}
                </button>
            </form>
        }
    });
    view! {
        <tr>
            <th scope="row">{k.label.clone()}</th>
            <td><code>{format!("{}…", k.prefix)}</code></td>
            <td>{k.created}</td>
            <td>{k.last_used}</td>
            <td>{state}</td>
            <td>{revoke}</td>
        </tr>
    }
    .into_any()
}

fn practice(tr: Tr, vm: &ApiKeysVm, p: ApiKeyPracticeVm) -> AnyView {
    let field = format!("label-{}", p.id);
    let error = vm
        .error
        .as_ref()
        .filter(|(id, _)| *id == p.id)
        .map(|(_, m)| m.clone());
    let csrf = vm.csrf.clone();
    let rows = p
        .keys
        .into_iter()
        .map(|k| key_row(tr, csrf.clone(), p.id.clone(), k))
        .collect_view();
    view! {
        <section class="card">
            <h2>{p.name.clone()}</h2>
            <div class="table-wrap">
                <table>
                    <caption>{tr.ta("apikeys-caption", &[("practice", p.name.as_str())])}</caption>
                    <thead><tr>
                        <th scope="col">{tr.t("apikeys-label")}</th>
                        <th scope="col">{tr.t("apikeys-prefix")}</th>
                        <th scope="col">{tr.t("apikeys-created")}</th>
                        <th scope="col">{tr.t("apikeys-last-used")}</th>
                        <th scope="col">{tr.t("apikeys-state")}</th>
                        <th scope="col"><span class="visually-hidden">{tr.t("apikeys-revoke")}</span></th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <form method="post" action=Url::StaffApiKeys.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=ApiKeyCreateForm::PRACTICE value=p.id.clone()/>
                <div class="field">
                    <label for=field.clone()>{tr.t("apikeys-new-label")}</label>
                    {error.clone().map(|e| view! { <p class="error-message" role="alert">{e}</p> })}
                    <input id=field name=ApiKeyCreateForm::LABEL type="text" maxlength="80"
                        autocomplete="off" aria-invalid=error.is_some().then_some("true")/>
                </div>
                <button type="submit" class="button">{tr.t("apikeys-create")}</button>
            </form>
        </section>
    }
    .into_any()
}

pub fn api_keys(meta: PageMeta, vm: ApiKeysVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("apikeys-title");
    let new_key = vm.new_key.clone().map(|k| {
        view! {
            <section class="invite-box" aria-labelledby="new-key-heading">
                <h2 id="new-key-heading">{tr.ta("apikeys-made", &[("label", k.label.as_str())])}</h2>
                <p><code class="api-key">{k.key}</code></p>
                <p>{tr.t("apikeys-made-once")}</p>
            </section>
        }
    });
    let practices = vm
        .practices
        .clone()
        .into_iter()
        .map(|p| practice(tr, &vm, p))
        .collect_view();
    let body = view! {
        <h1>{title.clone()}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.t("apikeys-lead")}</p>
        {new_key}
        {practices}
        <p><a href=Url::Staff.path()>{tr.t("record-views-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}
