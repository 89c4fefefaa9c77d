//! The pay link's summary and itemised statement, with the pay form under them; the statement
//! table and payments list the account pages share.

use super::layout::{document, Chrome};
use super::{csrf_input, described_by, error_summary, field_message, invalid};
use crate::forms::{PayForm, TextChoiceForm};
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

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

pub(super) fn pay_or_paid(tr: Tr, paid_in_full: bool, pay: PayFormVm) -> AnyView {
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

/// Billing texts on or off, with the consent wording the ledger records (`WEB_WORDING`).
fn text_choice(tr: Tr, practice: &str, vm: TextChoiceVm) -> AnyView {
    let args = [("practice", practice), ("digits", vm.last_digits.as_str())];
    let (state, button, choice) = if vm.on {
        ("texts-choice-on", "texts-choice-turn-off", "off")
    } else {
        ("texts-choice-off", "texts-choice-turn-on", "on")
    };
    view! {
        <section class="card texts-choice" aria-labelledby="texts-heading">
            <h2 id="texts-heading">{tr.t("texts-choice-title")}</h2>
            {vm.notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            <p>{tr.ta(state, &args)}</p>
            {(!vm.on).then(|| view! { <p class="hint">{tr.ta("texts-choice-terms", &args)}</p> })}
            <form method="post" action=Url::TextChoice.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=TextChoiceForm::CHOICE value=choice/>
                <button type="submit" class="button secondary">{tr.t(button)}</button>
            </form>
        </section>
    }
    .into_any()
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
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.ta("summary-from", &[("practice", &vm.practice_name)])}</p>
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{vm.balance.clone()}</p>
            <p>{tr.ta("summary-due", &[("date", &vm.due_date)])}</p>
            <p class="hint">{tr.ta("summary-dated", &[("date", &vm.statement_date)])}</p>
        </div>
        <p><a href=itemised_href.path()>{tr.t("summary-itemised-link")}</a></p>
        {pay_or_paid(tr, vm.paid_in_full, vm.pay.clone())}
        {vm.texts.clone().map(|t| text_choice(tr, &vm.practice_name, t))}
        <p><a href=Url::RecordViews.path()>{tr.t("record-views-link")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("summary-title"),
        body.into_any(),
    )
}

/// The four amount columns: catalog key of the heading (its plain-words line is `<key>-hint`).
const AMOUNT_COLUMNS: [&str; 4] = [
    "statement-col-charge",
    "statement-col-insurance",
    "statement-col-adjustment",
    "statement-col-responsibility",
];

/// The four amount cells of a row, each labelled with its column for the phone layout (the
/// label is drawn by the stylesheet from `data-label`; screen readers keep the column header).
fn amount_cells(tr: Tr, a: &AmountsVm) -> AnyView {
    let values = [
        a.charge.clone(),
        a.insurance_paid.clone(),
        a.adjustment.clone(),
        a.responsibility.clone(),
    ];
    AMOUNT_COLUMNS
        .iter()
        .zip(values)
        .map(|(key, value)| {
            view! { <td class="num" role="cell" data-label=tr.t(key)>{value}</td> }
        })
        .collect::<Vec<_>>()
        .into_any()
}

/// One row of an itemised statement table. A line whose detail is hidden shows neither its
/// date of service nor its description: the date alone can disclose a visit.
pub(crate) fn statement_row(tr: Tr, line: &StatementLineVm) -> AnyView {
    let (date, description) = match &line.detail {
        Some(d) => (
            d.service_date.clone(),
            view! { {d.description.clone()} }.into_any(),
        ),
        None => (
            String::new(),
            view! { <span class="hidden-detail">{tr.t("statement-hidden-detail")}</span> }
                .into_any(),
        ),
    };
    view! {
        <tr role="row">
            <td class="service-date" role="cell">{date}</td>
            <th scope="row" role="rowheader" class="service">{description}</th>
            {amount_cells(tr, &line.amounts)}
        </tr>
    }
    .into_any()
}

/// The itemised statement table: its caption, column headings (each amount with a line in
/// plain words), rows and totals. A real table at every width; below the phone breakpoint the
/// stylesheet lays each service out as a block (date, description, the amounts as labelled
/// rows) and the explicit roles keep the table's meaning for screen readers there.
pub(crate) fn statement_table(tr: Tr, lines: &[StatementLineVm], totals: AmountsVm) -> AnyView {
    let rows = lines
        .iter()
        .map(|l| statement_row(tr, l))
        .collect::<Vec<_>>();
    let headings = AMOUNT_COLUMNS
        .iter()
        .map(|key| {
            view! {
                <th scope="col" role="columnheader" class="num">
                    {tr.t(key)}
                    <span class="col-hint">{tr.t(&format!("{key}-hint"))}</span>
                </th>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <div class="table-wrap">
            <table class="statement" role="table">
                <caption>{tr.t("statement-caption")}</caption>
                <thead role="rowgroup">
                    <tr role="row">
                        <th scope="col" role="columnheader" class="text-col">{tr.t("statement-col-date")}</th>
                        <th scope="col" role="columnheader" class="text-col">{tr.t("statement-col-description")}</th>
                        {headings}
                    </tr>
                </thead>
                <tbody role="rowgroup">{rows}</tbody>
                <tfoot role="rowgroup">
                    <tr role="row">
                        <td class="service-date" role="cell"></td>
                        <th scope="row" role="rowheader" class="service">{tr.t("statement-totals")}</th>
                        {amount_cells(tr, &totals)}
                    </tr>
                </tfoot>
            </table>
        </div>
    }
    .into_any()
}

/// The payments received on a statement, or a line saying there are none.
/// A payment as one line of words: date, amount and, when the viewer may see it, the card
/// (not a guarantor, for the patient's own payments). The page and the PDF both say it so.
pub fn payment_line(tr: Tr, p: &PaymentVm) -> String {
    if p.last4.is_empty() {
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
    }
}

/// What is still to say of a payment's state, if anything.
pub fn payment_status(tr: Tr, status: PaymentStatusVm) -> Option<String> {
    match status {
        PaymentStatusVm::Succeeded => None,
        PaymentStatusVm::Processing => Some(tr.t("payment-processing")),
        PaymentStatusVm::Failed => Some(tr.t("payment-failed")),
    }
}

pub(crate) fn payments_list(tr: Tr, payments: &[PaymentVm]) -> AnyView {
    if payments.is_empty() {
        return view! { <p>{tr.t("statement-no-payments")}</p> }.into_any();
    }
    let items = payments
        .iter()
        .map(|p| {
            let text = payment_line(tr, p);
            let status = payment_status(tr, p.status);
            let refunds = p
                .refunds
                .iter()
                .map(|r| view! { <li>{tr.ta("payment-refund-line", &[("date", &r.date), ("amount", &r.amount)])}</li> })
                .collect::<Vec<_>>();
            view! {
                <li>
                    {text}
                    {status.map(|s| view! { " — " <span class="payment-status">{s}</span> })}
                    {(!refunds.is_empty()).then(|| view! { <ul class="refunds">{refunds}</ul> })}
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! { <ul class="payments">{items}</ul> }.into_any()
}

pub fn statement(meta: PageMeta, vm: StatementVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("statement-title")}</h1>
        <p class="lead">{tr.ta("summary-from", &[("practice", &vm.practice_name)])}</p>
        <p>
            {tr.ta("summary-dated", &[("date", &vm.statement_date)])} " · "
            {tr.ta("summary-due", &[("date", &vm.due_date)])}
        </p>
        // The balance and the pay form first: on a phone they are what shows without scrolling.
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{vm.balance.clone()}</p>
        </div>
        {pay_or_paid(tr, vm.paid_in_full, vm.pay.clone())}
        {statement_table(tr, &vm.lines, vm.totals.clone())}
        {vm.some_hidden.then(|| view! { <p class="privacy-note">{tr.t("statement-hidden-note")}</p> })}
        <h2>{tr.t("statement-payments")}</h2>
        {payments_list(tr, &vm.payments)}
        <p><a href=Url::StatementPdf.path()>{tr.t("pdf-statement-link")}</a></p>
        {vm.offer_password_reset.then(|| view! {
            <p><a href=Url::AccountForgot.path()>{tr.t("statement-reset-password")}</a></p>
        })}
        <p><a href=Url::Summary.path()>{tr.t("statement-back")}</a></p>
    };
    document(
        &meta,
        Chrome::Portal,
        tr.t("statement-title"),
        body.into_any(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
