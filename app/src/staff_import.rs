//! The practice admin's statement import page: the practice, the upload form (multipart, no
//! JavaScript), the dry run waiting for "Confirm import", the last import's report and the
//! practice's import history.

use crate::forms::ImportUploadForm;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_import::{ImportPageVm, ImportResultVm, ImportRunVm};
use leptos::prelude::*;

/// The practice picker: a GET form when there is a choice, the practice's name otherwise.
fn practice_picker(tr: Tr, vm: &ImportPageVm) -> AnyView {
    if vm.practices.len() < 2 {
        let name = vm
            .practices
            .first()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        return view! { <p>{tr.ta("import-practice-one", &[("practice", &name)])}</p> }.into_any();
    }
    let options = vm
        .practices
        .iter()
        .map(|p| {
            let selected = p.id == vm.selected;
            view! { <option value=p.id.clone() selected=selected>{p.name.clone()}</option> }
        })
        .collect::<Vec<_>>();
    view! {
        <form method="get" action=Url::StaffImport.path()>
            <label for="import-practice">{tr.t("import-practice")}</label>
            <select id="import-practice" name=ImportUploadForm::PRACTICE>{options}</select>
            <button type="submit" class="button secondary">{tr.t("import-practice-show")}</button>
        </form>
    }
    .into_any()
}

fn upload_form(tr: Tr, vm: &ImportPageVm) -> AnyView {
    view! {
        <section class="card">
            <h2>{tr.t("import-upload-title")}</h2>
            <p class="hint" id="import-file-hint">{tr.t("import-upload-hint")}</p>
            // The token is the first part of the body: the CSRF layer reads it from there.
            <form method="post" action=Url::StaffImport.path() enctype="multipart/form-data">
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=ImportUploadForm::PRACTICE value=vm.selected.clone()/>
                <p>
                    <label for="import-file">{tr.t("import-file")}</label>
                    <input type="file" id="import-file" name=ImportUploadForm::FILE accept=".csv,.json" aria-describedby="import-file-hint" required=true/>
                </p>
                <button type="submit" class="button">{tr.t("import-upload")}</button>
            </form>
        </section>
    }
    .into_any()
}

/// The counts and every rejection of one run.
fn summary(tr: Tr, r: &ImportResultVm) -> AnyView {
    let counts = [
        ("created", r.created.to_string()),
        ("updated", r.updated.to_string()),
        ("unchanged", r.unchanged.to_string()),
        ("rejected", r.rejected.to_string()),
    ];
    let args: Vec<(&str, &str)> = counts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let key = if r.dry_run {
        "import-counts-dry-run"
    } else {
        "import-counts"
    };
    let rejections = (!r.rejections.is_empty()).then(|| {
        let items = r
            .rejections
            .iter()
            .map(|line| view! { <li>{line.clone()}</li> })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("import-rejections")}</h3>
            <ul class="import-rejections">{items}</ul>
            <p><a href=Url::StaffImportReport.path()>{tr.t("import-report-download")}</a></p>
        }
    });
    let more = (r.rejected > r.rejections.len() as u64).then(|| {
        let n = (r.rejected - r.rejections.len() as u64).to_string();
        view! { <p>{tr.ta("import-rejections-more", &[("count", &n)])}</p> }
    });
    view! {
        <p class="import-counts">{tr.ta(key, &args)}</p>
        {r.fatal.clone().map(|f| view! { <p class="error">{tr.ta("import-fatal", &[("reason", &f)])}</p> })}
        {rejections}
        {more}
    }
    .into_any()
}

fn pending(tr: Tr, csrf: String, r: &ImportResultVm) -> AnyView {
    // A file that could not be read to its end is not offered for import.
    let confirm = r.fatal.is_none().then(|| {
        view! {
            <form method="post" action=Url::StaffImportConfirm.path()>
                {csrf_input(csrf)}
                <p>
                    <input type="checkbox" id="import-partial" name=ImportUploadForm::PARTIAL value="on"/>
                    <label for="import-partial">{tr.t("import-partial")}</label>
                </p>
                <button type="submit" class="button">{tr.t("import-confirm")}</button>
            </form>
        }
    });
    view! {
        <section class="card import-dry-run">
            <h2>{tr.t("import-dry-run-title")}</h2>
            <p>{tr.t("import-dry-run-lead")}</p>
            {summary(tr, r)}
            {confirm}
        </section>
    }
    .into_any()
}

fn report(tr: Tr, r: &ImportResultVm) -> AnyView {
    let title = if r.committed {
        "import-report-done"
    } else {
        "import-report-nothing"
    };
    view! {
        <section class="card import-report" role="status">
            <h2>{tr.t(title)}</h2>
            {summary(tr, r)}
        </section>
    }
    .into_any()
}

fn history(tr: Tr, runs: &[ImportRunVm]) -> AnyView {
    if runs.is_empty() {
        return view! { <p>{tr.t("import-history-none")}</p> }.into_any();
    }
    let rows = runs
        .iter()
        .map(|r| {
            let kind = if r.dry_run {
                tr.t("import-history-dry-run")
            } else {
                tr.t("import-history-import")
            };
            view! {
                <tr>
                    <td>{r.when.clone()}</td>
                    <td>{r.who.clone()}</td>
                    <td>{r.source.clone()}</td>
                    <td>{kind}</td>
                    <td>{r.created}</td>
                    <td>{r.updated}</td>
                    <td>{r.unchanged}</td>
                    <td>{r.rejected}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <table class="import-history">
            <thead><tr>
                <th scope="col">{tr.t("import-history-when")}</th>
                <th scope="col">{tr.t("import-history-who")}</th>
                <th scope="col">{tr.t("import-history-source")}</th>
                <th scope="col">{tr.t("import-history-kind")}</th>
                <th scope="col">{tr.t("import-history-created")}</th>
                <th scope="col">{tr.t("import-history-updated")}</th>
                <th scope="col">{tr.t("import-history-unchanged")}</th>
                <th scope="col">{tr.t("import-history-rejected")}</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

pub fn import_page(meta: PageMeta, vm: ImportPageVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.t("import-title");
    let body = view! {
        <h1>{title.clone()}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.t("import-lead")}</p>
        {practice_picker(tr, &vm)}
        {vm.report.as_ref().map(|r| report(tr, r))}
        {vm.pending.as_ref().map(|r| pending(tr, vm.csrf.clone(), r))}
        {upload_form(tr, &vm)}
        <h2>{tr.t("import-history-title")}</h2>
        {history(tr, &vm.history)}
        <p><a href=Url::Staff.path()>{tr.t("record-views-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}
