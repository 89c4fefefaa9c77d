//! Form components shared by the pages: error summary and field messages, CSRF input, date of
//! birth and ZIP inputs.

use crate::forms::{DobForm, CSRF_FIELD};
use crate::i18n::Tr;
use crate::vm::FieldError;
use leptos::prelude::*;

/// The error summary at the top of a form (GOV.UK pattern): links to each field in error.
pub(crate) fn error_summary(
    tr: Tr,
    failure: Option<String>,
    field: Option<FieldError>,
) -> Option<AnyView> {
    error_summary_links(
        tr,
        failure,
        field
            .map(|e| (e.field.to_owned(), e.message))
            .into_iter()
            .collect(),
    )
}

/// The error summary for forms whose field ids are built at run time (one amount per
/// statement): `links` are (input id, message) pairs, each linked to its input.
pub(crate) fn error_summary_links(
    tr: Tr,
    failure: Option<String>,
    links: Vec<(String, String)>,
) -> Option<AnyView> {
    if failure.is_none() && links.is_empty() {
        return None;
    }
    let items = failure
        .map(|f| view! { <li>{f}</li> }.into_any())
        .into_iter()
        .chain(links.into_iter().map(|(field, message)| {
            let href = format!("#{field}");
            view! { <li><a href=href>{message}</a></li> }.into_any()
        }))
        .collect::<Vec<_>>();
    Some(
        view! {
            <div class="error-summary" role="alert" aria-labelledby="error-summary-title" tabindex="-1">
                <h2 id="error-summary-title">{tr.t("error-summary-title")}</h2>
                <ul>{items}</ul>
            </div>
        }
        .into_any(),
    )
}

/// The message under a field in error, with its id for `aria-describedby`.
pub(crate) fn field_message(
    tr: Tr,
    field: &'static str,
    error: &Option<FieldError>,
) -> Option<AnyView> {
    let e = error.as_ref().filter(|e| e.field == field)?;
    let id = format!("{field}-error");
    let msg = e.message.clone();
    Some(
        view! {
            <p class="error-message" id=id>
                <span class="visually-hidden">{tr.t("error-prefix")} " "</span>
                {msg}
            </p>
        }
        .into_any(),
    )
}

pub(crate) fn described_by(
    field: &'static str,
    hint: bool,
    error: &Option<FieldError>,
) -> Option<String> {
    let mut ids = vec![];
    if hint {
        ids.push(format!("{field}-hint"));
    }
    if error.as_ref().is_some_and(|e| e.field == field) {
        ids.push(format!("{field}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub(crate) fn invalid(field: &'static str, error: &Option<FieldError>) -> Option<&'static str> {
    error.as_ref().filter(|e| e.field == field).map(|_| "true")
}

pub(crate) fn csrf_input(csrf: String) -> impl IntoView {
    view! { <input type="hidden" name=CSRF_FIELD value=csrf/> }
}

/// The field names of a date of birth in three parts: month, day, year.
pub(crate) type DobNames = [&'static str; 3];

/// The date-of-birth names of the pay link's identity check.
pub(crate) const DOB_NAMES: DobNames = [DobForm::DOB_MONTH, DobForm::DOB_DAY, DobForm::DOB_YEAR];

/// The patient's date of birth as three text inputs in one group (GOV.UK date pattern), named
/// as the form posting it names them. A field error on "dob-month" marks the whole group.
pub(crate) fn dob_fieldset(tr: Tr, err: &Option<FieldError>, names: DobNames) -> AnyView {
    let [month, day, year] = names;
    let group_error = field_message(tr, "dob-month", err);
    let fieldset_desc = {
        let mut ids = vec!["dob-hint".to_string()];
        if group_error.is_some() {
            ids.push("dob-month-error".into());
        }
        ids.join(" ")
    };
    let inv = invalid("dob-month", err);
    view! {
        <fieldset class="date-input" aria-describedby=fieldset_desc role="group">
            <legend><h2 class="legend-heading">{tr.t("verify-dob-legend")}</h2></legend>
            <p class="hint" id="dob-hint">{tr.t("verify-dob-hint")}</p>
            {group_error}
            <div class="date-parts">
                <div class="date-part">
                    <label for="dob-month">{tr.t("verify-month")}</label>
                    <input id="dob-month" name=month type="text" inputmode="numeric"
                        maxlength="2" size="2" autocomplete="off" required aria-invalid=inv/>
                </div>
                <div class="date-part">
                    <label for="dob-day">{tr.t("verify-day")}</label>
                    <input id="dob-day" name=day type="text" inputmode="numeric"
                        maxlength="2" size="2" autocomplete="off" required aria-invalid=inv/>
                </div>
                <div class="date-part">
                    <label for="dob-year">{tr.t("verify-year")}</label>
                    <input id="dob-year" name=year type="text" inputmode="numeric"
                        maxlength="4" size="4" autocomplete="off" required aria-invalid=inv/>
                </div>
            </div>
        </fieldset>
    }
    .into_any()
}

/// The ZIP code of the patient's address on file; `name` is the posting form's field name,
/// which is also the input's id.
pub(crate) fn zip_field(tr: Tr, err: &Option<FieldError>, name: &'static str) -> AnyView {
    let hint_id = format!("{name}-hint");
    view! {
        <div class="field">
            <label for=name>{tr.t("zip-label")}</label>
            <p class="hint" id=hint_id>{tr.t("zip-hint")}</p>
            {field_message(tr, name, err)}
            <input id=name name=name type="text" inputmode="numeric" maxlength="10" size="10"
                autocomplete="postal-code" required aria-describedby=described_by(name, true, err)
                aria-invalid=invalid(name, err)/>
        </div>
    }
    .into_any()
}

/// Links to the same page for the caller's other practices (`practice=` in the query), under
/// `heading`; nothing when there are none.
pub(crate) fn other_practices(
    tr: Tr,
    page: crate::urls::Url<'static>,
    key: &str,
    others: &[(String, String)],
    heading: &str,
) -> Option<AnyView> {
    if others.is_empty() {
        return None;
    }
    let items = others
        .iter()
        .map(|(id, name)| {
            let href = page.with_query(key, id);
            view! { <li><a href=href>{name.clone()}</a></li> }
        })
        .collect::<Vec<_>>();
    Some(
        view! {
            <nav aria-labelledby="other-practices">
                <h2 id="other-practices">{tr.t(heading)}</h2>
                <ul>{items}</ul>
            </nav>
        }
        .into_any(),
    )
}

/// A table that may be wider than the screen: it scrolls sideways in a region that keyboard
/// users can reach and scroll (focusable, named), as WCAG 2.1.1 asks of scrolling content.
pub(crate) fn scroll_region(label: String, table: AnyView) -> AnyView {
    view! {
        <div class="table-wrap" role="region" aria-label=label tabindex="0">{table}</div>
    }
    .into_any()
}
