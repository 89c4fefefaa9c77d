//! Page components: each takes a view model and renders a whole HTML document server-side.

use crate::forms::{DobForm, PayForm, ZipForm, CSRF_FIELD};
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

/// Which frame a page sits in: the portal's own, or the sandbox processor's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chrome {
    Portal,
    Sandbox,
}

fn document(
    meta: &PageMeta,
    chrome: Chrome,
    title: String,
    refresh: Option<String>,
    body: AnyView,
) -> String {
    let tr = Tr::new(meta.lang);
    let brand = tr.t("brand");
    let full_title = match chrome {
        Chrome::Portal => format!("{title} – {brand}"),
        Chrome::Sandbox => title,
    };
    let header = match chrome {
        Chrome::Portal => {
            let practice = meta
                .practice_name
                .as_ref()
                .map(|p| tr.ta("practice-header", &[("practice", p)]));
            let signout = meta.signout_csrf.clone().map(|csrf| {
                view! {
                    <form method="post" action=Url::SignOut.path() class="signout">
                        {csrf_input(csrf)}
                        <button type="submit" class="link-button">{tr.t("sign-out")}</button>
                    </form>
                }
            });
            view! {
                <header class="site-header">
                    <a class="brand" href=Url::Home.path()>{brand.clone()}</a>
                    {practice.map(|p| view! { <span class="practice">{p}</span> })}
                    {signout}
                </header>
            }
            .into_any()
        }
        Chrome::Sandbox => view! {
            <header class="sandbox-header">
                <p class="sandbox-banner">{tr.t("sandbox-banner")}</p>
            </header>
        }
        .into_any(),
    };
    let footer = (chrome == Chrome::Portal).then(|| {
        view! {
            <footer class="site-footer">
                <p>{tr.t("footer-secure")}</p>
                <p>{tr.t("footer-privacy")}</p>
            </footer>
        }
    });
    let page = view! {
        <html lang=meta.lang.tag()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{full_title}</title>
                <link rel="stylesheet" href=Url::Stylesheet.path()/>
                <link rel="icon" href=Url::Favicon.path() type="image/svg+xml"/>
                {refresh.map(|r| view! { <meta http-equiv="refresh" content=r/> })}
            </head>
            <body>
                <a class="skip-link" href="#main">{tr.t("skip-to-content")}</a>
                {header}
                <main id="main" class="container">{body}</main>
                {footer}
            </body>
        </html>
    };
    // `<!>` is Leptos's placeholder for an empty optional; with no hydration it is noise, and
    // text content can't contain it (escaped), so removing it touches markup only.
    format!("<!DOCTYPE html>{}", page.to_html().replace("<!>", ""))
}

/// A whole page in the portal's frame.
pub(crate) fn document_portal(meta: &PageMeta, title: String, body: AnyView) -> String {
    document(meta, Chrome::Portal, title, None, body)
}

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

pub fn verify_dob(meta: PageMeta, vm: VerifyDobVm) -> String {
    let tr = Tr::new(meta.lang);
    let lead = match &vm.practice_name {
        Some(p) => tr.ta("verify-lead-practice", &[("practice", p)]),
        None => tr.t("verify-lead-generic"),
    };
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("verify-title")}</h1>
        <p class="lead">{lead}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::Verify.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {dob_fieldset(tr, &err, DOB_NAMES)}
            <button type="submit" class="button">{tr.t("verify-continue")}</button>
        </form>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("verify-title"),
        None,
        body.into_any(),
    )
}

pub fn locked(meta: PageMeta, vm: LockedVm) -> String {
    let tr = Tr::new(meta.lang);
    let next = match (&vm.practice_name, &vm.practice_phone) {
        (Some(p), Some(phone)) => tr.ta("locked-next-phone", &[("practice", p), ("phone", phone)]),
        _ => tr.t("locked-next"),
    };
    let body = view! {
        <h1>{tr.t("locked-title")}</h1>
        <p>{tr.t("locked-body")}</p>
        <p class="lead">{next}</p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("locked-title"),
        None,
        body.into_any(),
    )
}

pub fn verify_zip(meta: PageMeta, vm: VerifyZipVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("zip-title")}</h1>
        <p class="lead">{tr.t("zip-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::VerifyZip.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {zip_field(tr, &err, ZipForm::ZIP)}
            <button type="submit" class="button">{tr.t("zip-continue")}</button>
        </form>
        <p><a href=Url::Summary.path()>{tr.t("statement-back")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("zip-title"),
        None,
        body.into_any(),
    )
}

fn pay_form(tr: Tr, vm: PayFormVm) -> AnyView {
    let err = vm.error.clone();
    let hint = tr.ta("pay-amount-hint", &[("balance", &vm.balance)]);
    // The amount input's id is its field name.
    let amount = PayForm::AMOUNT;
    let hint_id = format!("{amount}-hint");
    view! {
        <section class="pay" aria-labelledby="pay-heading">
            <h2 id="pay-heading">{tr.t("pay-title")}</h2>
            <form method="post" action=Url::Pay.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=PayForm::FROM value=vm.from/>
                <div class="field">
                    <label for=amount>{tr.t("pay-amount-label")}</label>
                    <p class="hint" id=hint_id>{hint}</p>
                    {field_message(tr, amount, &err)}
                    <div class="currency-input">
                        <span class="currency" aria-hidden="true">"$"</span>
                        <input id=amount name=amount type="text" inputmode="decimal" size="10"
                            autocomplete="off" required value=vm.amount.clone()
                            aria-describedby=described_by(amount, true, &err)
                            aria-invalid=invalid(amount, &err)/>
                    </div>
                </div>
                <p class="hint">{tr.t("pay-redirect-note")}</p>
                <button type="submit" class="button">{tr.t("pay-button")}</button>
            </form>
        </section>
    }
    .into_any()
}

fn pay_or_paid(tr: Tr, paid_in_full: bool, pay: PayFormVm) -> AnyView {
    if paid_in_full {
        view! { <p class="notice">{tr.t("summary-paid-in-full")}</p> }.into_any()
    } else {
        let err = pay.error.clone();
        view! {
            {error_summary(tr, None, err)}
            {pay_form(tr, pay)}
        }
        .into_any()
    }
}

pub fn summary(meta: PageMeta, vm: SummaryVm) -> String {
    let tr = Tr::new(meta.lang);
    let itemised_href = if vm.itemised_unlocked {
        Url::Statement
    } else {
        Url::VerifyZip
    };
    let body = view! {
        <h1>{tr.t("summary-title")}</h1>
        <p class="lead">{tr.ta("summary-from", &[("practice", &vm.practice_name)])}</p>
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{vm.balance.clone()}</p>
            <p>{tr.ta("summary-due", &[("date", &vm.due_date)])}</p>
            <p class="hint">{tr.ta("summary-dated", &[("date", &vm.statement_date)])}</p>
        </div>
        <p><a href=itemised_href.path()>{tr.t("summary-itemised-link")}</a></p>
        {pay_or_paid(tr, vm.paid_in_full, vm.pay.clone())}
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("summary-title"),
        None,
        body.into_any(),
    )
}

/// One row of an itemised statement table; the description is a view so callers can show a
/// placeholder for a hidden one.
pub(crate) fn statement_row(
    service_date: String,
    description: AnyView,
    [charge, insurance_paid, adjustment, responsibility]: [String; 4],
) -> AnyView {
    view! {
        <tr>
            <td>{service_date}</td>
            <th scope="row">{description}</th>
            <td class="num">{charge}</td>
            <td class="num">{insurance_paid}</td>
            <td class="num">{adjustment}</td>
            <td class="num">{responsibility}</td>
        </tr>
    }
    .into_any()
}

/// The itemised statement table: its caption, column headings, rows and totals.
pub(crate) fn statement_table(tr: Tr, rows: Vec<AnyView>, totals: LineVm) -> AnyView {
    let t = totals;
    view! {
        <div class="table-wrap">
            <table class="statement">
                <caption>{tr.t("statement-caption")}</caption>
                <thead>
                    <tr>
                        <th scope="col">{tr.t("statement-col-date")}</th>
                        <th scope="col">{tr.t("statement-col-description")}</th>
                        <th scope="col" class="num">{tr.t("statement-col-charge")}</th>
                        <th scope="col" class="num">{tr.t("statement-col-insurance")}</th>
                        <th scope="col" class="num">{tr.t("statement-col-adjustment")}</th>
                        <th scope="col" class="num">{tr.t("statement-col-responsibility")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
                <tfoot>
                    <tr>
                        <td></td>
                        <th scope="row">{tr.t("statement-totals")}</th>
                        <td class="num">{t.charge}</td>
                        <td class="num">{t.insurance_paid}</td>
                        <td class="num">{t.adjustment}</td>
                        <td class="num">{t.responsibility}</td>
                    </tr>
                </tfoot>
            </table>
        </div>
    }
    .into_any()
}

/// The payments received on a statement, or a line saying there are none.
pub(crate) fn payments_list(tr: Tr, payments: &[PaymentVm]) -> AnyView {
    if payments.is_empty() {
        return view! { <p>{tr.t("statement-no-payments")}</p> }.into_any();
    }
    let items = payments
        .iter()
        .map(|p| {
            // No card details when the viewer may not see them (a guarantor, for the patient's
            // own payments).
            let text = if p.last4.is_empty() {
                tr.ta(
                    "statement-payment-line-plain",
                    &[("date", &p.date), ("amount", &p.amount)],
                )
            } else {
                tr.ta(
                    "statement-payment-line",
                    &[
                        ("date", &p.date),
                        ("amount", &p.amount),
                        ("brand", &p.brand),
                        ("last4", &p.last4),
                    ],
                )
            };
            view! { <li>{text}</li> }
        })
        .collect::<Vec<_>>();
    view! { <ul class="payments">{items}</ul> }.into_any()
}

pub fn statement(meta: PageMeta, vm: StatementVm) -> String {
    let tr = Tr::new(meta.lang);
    let rows = vm
        .lines
        .iter()
        .map(|l| {
            statement_row(
                l.service_date.clone(),
                view! { {l.description.clone()} }.into_any(),
                [
                    l.charge.clone(),
                    l.insurance_paid.clone(),
                    l.adjustment.clone(),
                    l.responsibility.clone(),
                ],
            )
        })
        .collect::<Vec<_>>();
    let body = view! {
        <h1>{tr.t("statement-title")}</h1>
        <p class="lead">{tr.ta("summary-from", &[("practice", &vm.practice_name)])}</p>
        <p>
            {tr.ta("summary-dated", &[("date", &vm.statement_date)])} " · "
            {tr.ta("summary-due", &[("date", &vm.due_date)])}
        </p>
        {statement_table(tr, rows, vm.totals.clone())}
        <h2>{tr.t("statement-payments")}</h2>
        {payments_list(tr, &vm.payments)}
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{vm.balance.clone()}</p>
        </div>
        {pay_or_paid(tr, vm.paid_in_full, vm.pay.clone())}
        {vm.offer_password_reset.then(|| view! {
            <p><a href=Url::AccountResetPassword.path()>{tr.t("statement-reset-password")}</a></p>
        })}
        <p><a href=Url::Summary.path()>{tr.t("statement-back")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("statement-title"),
        None,
        body.into_any(),
    )
}

pub fn declined(meta: PageMeta, vm: DeclinedVm) -> String {
    let tr = Tr::new(meta.lang);
    let (title, text) = match vm.kind {
        DeclineKind::Declined => (tr.t("declined-title"), tr.t("declined-generic")),
        DeclineKind::InsufficientFunds => (tr.t("declined-title"), tr.t("declined-funds")),
        DeclineKind::Cancelled => (tr.t("cancelled-title"), tr.t("cancelled-body")),
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead" role="status">{text}</p>
        {pay_or_paid(tr, vm.paid_in_full, vm.pay.clone())}
        <p><a href=Url::Summary.path()>{tr.t("statement-back")}</a></p>
    };
    document(&meta, Chrome::Portal, title, None, body.into_any())
}

pub fn confirming(meta: PageMeta, vm: ConfirmingVm) -> String {
    let tr = Tr::new(meta.lang);
    let refresh = format!("3;url={}", vm.refresh_path);
    let body = view! {
        <h1>{tr.t("confirming-title")}</h1>
        <p class="lead" role="status">{tr.t("confirming-body")}</p>
        <p><a class="button" href=vm.refresh_path.clone()>{tr.t("confirming-refresh")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("confirming-title"),
        Some(refresh),
        body.into_any(),
    )
}

pub fn receipt(meta: PageMeta, vm: ReceiptVm) -> String {
    let tr = Tr::new(meta.lang);
    let card = tr.ta(
        "receipt-card-value",
        &[("brand", &vm.brand), ("last4", &vm.last4)],
    );
    let body = view! {
        <h1>{tr.t("receipt-title")}</h1>
        <p class="lead" role="status">{tr.ta("receipt-thanks", &[("practice", &vm.practice_name)])}</p>
        <dl class="receipt">
            <dt>{tr.t("receipt-amount")}</dt><dd class="receipt-amount">{vm.amount.clone()}</dd>
            <dt>{tr.t("receipt-date")}</dt><dd>{vm.date.clone()}</dd>
            <dt>{tr.t("receipt-card")}</dt><dd>{card}</dd>
            <dt>{tr.t("receipt-reference")}</dt><dd><code>{vm.reference.clone()}</code></dd>
            <dt>{tr.t("receipt-new-balance")}</dt><dd class="receipt-balance">{vm.new_balance.clone()}</dd>
        </dl>
        <p><a href=Url::Summary.path()>{tr.t("receipt-back")}</a></p>
        {vm.offer_account.then(|| view! {
            <section class="account-offer" aria-labelledby="account-offer-heading">
                <h2 id="account-offer-heading">{tr.t("receipt-account-title")}</h2>
                <p>{tr.t("receipt-account-lead")}</p>
                <p><a class="button" href=Url::AccountCreate.path()>{tr.t("receipt-account-button")}</a></p>
            </section>
        })}
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("receipt-title"),
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

pub fn sandbox_checkout(meta: PageMeta, vm: SandboxCheckoutVm, action: String) -> String {
    let tr = Tr::new(meta.lang);
    let body = if vm.open {
        let err = vm.error.clone();
        view! {
            <h1>{tr.ta("sandbox-pay-to", &[("merchant", &vm.merchant)])}</h1>
            <p class="balance-card"><span class="balance-label">{tr.t("sandbox-amount")}</span> " "
                <strong class="balance-amount">{vm.amount.clone()}</strong></p>
            {error_summary(tr, None, vm.error.clone())}
            <form method="post" action=action novalidate>
                {csrf_input(vm.csrf.clone())}
                <div class="field">
                    <label for="card-number">{tr.t("sandbox-card-number")}</label>
                    <p class="hint" id="card-number-hint">{tr.t("sandbox-card-hint")}</p>
                    {field_message(tr, "card-number", &err)}
                    <input id="card-number" name="card_number" type="text" inputmode="numeric"
                        autocomplete="cc-number" size="24" required
                        aria-describedby=described_by("card-number", true, &err)
                        aria-invalid=invalid("card-number", &err)/>
                </div>
                <div class="field">
                    <label for="exp">{tr.t("sandbox-exp")}</label>
                    {field_message(tr, "exp", &err)}
                    <input id="exp" name="exp" type="text" inputmode="numeric" autocomplete="cc-exp"
                        size="7" required aria-describedby=described_by("exp", false, &err)
                        aria-invalid=invalid("exp", &err)/>
                </div>
                <div class="field">
                    <label for="cvc">{tr.t("sandbox-cvc")}</label>
                    {field_message(tr, "cvc", &err)}
                    <input id="cvc" name="cvc" type="text" inputmode="numeric" autocomplete="cc-csc"
                        size="4" required aria-describedby=described_by("cvc", false, &err)
                        aria-invalid=invalid("cvc", &err)/>
                </div>
                <button type="submit" class="button">{tr.t("sandbox-pay")}</button>
            </form>
            <p><a href=vm.cancel_url.clone()>{tr.t("sandbox-cancel")}</a></p>
        }
        .into_any()
    } else {
        view! {
            <h1>{tr.t("sandbox-closed-title")}</h1>
            <p>{tr.t("sandbox-closed-body")}</p>
        }
        .into_any()
    };
    document(&meta, Chrome::Sandbox, tr.t("sandbox-title"), None, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_document_has_lang() {
        let html = receipt(
            PageMeta::default(),
            ReceiptVm {
                practice_name: "<script>alert(1)</script>".into(),
                ..Default::default()
            },
        );
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\""),
            "{html}"
        );
        assert!(!html.contains("<script>"), "practice name was not escaped");
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn field_errors_are_tied_to_their_field() {
        let html = summary(
            PageMeta::default(),
            SummaryVm {
                pay: PayFormVm {
                    error: Some(FieldError {
                        field: "amount",
                        message: "Too much".into(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert!(html.contains("id=\"amount-error\""), "{html}");
        assert!(
            html.contains("aria-describedby=\"amount-hint amount-error\""),
            "{html}"
        );
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("href=\"#amount\""), "{html}");
    }

    #[test]
    fn every_page_renders_only_catalog_keys_that_exist() {
        let pages = [
            home(PageMeta::default()),
            verify_dob(PageMeta::default(), VerifyDobVm::default()),
            verify_zip(PageMeta::default(), VerifyZipVm::default()),
            locked(PageMeta::default(), LockedVm::default()),
            statement(PageMeta::default(), StatementVm::default()),
            receipt(PageMeta::default(), ReceiptVm::default()),
            confirming(PageMeta::default(), ConfirmingVm::default()),
            error(
                PageMeta::default(),
                ErrorVm {
                    status: 404,
                    request_id: "r".into(),
                },
            ),
            sandbox_checkout(
                PageMeta::default(),
                SandboxCheckoutVm {
                    open: true,
                    ..Default::default()
                },
                "/x".into(),
            ),
        ];
        // A missing key renders as the key itself, which always contains a '-' and no space.
        for html in pages {
            for key in [
                "verify-",
                "statement-",
                "receipt-",
                "error-",
                "sandbox-",
                "pay-",
                "zip-",
                "home-",
            ] {
                let needle = format!(">{key}");
                assert!(
                    !html.contains(&needle),
                    "untranslated key starting {key} in {html}"
                );
            }
        }
    }
}
