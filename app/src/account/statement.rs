//! One statement seen from an account (hidden details shown as such, pay form for it alone),
//! and the receipt of a payment across several statements.

use super::household::amount_field;
use crate::forms::household_pay;
use crate::i18n::Tr;
use crate::pages::{
    csrf_input, document_portal, error_summary_links, payments_list, statement_table,
};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

pub fn statement(meta: PageMeta, vm: AccountStatementVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.ta("account-statement-title", &[("patient", &vm.patient_name)]);
    let s = vm.statement.clone();
    let pay = if s.paid_in_full {
        view! { <p class="notice">{tr.t("summary-paid-in-full")}</p> }.into_any()
    } else {
        let links = s
            .error
            .clone()
            .map(|m| (format!("amount-{}", s.id), m))
            .into_iter()
            .collect();
        let hint = tr.ta("pay-amount-hint", &[("balance", &s.balance)]);
        view! {
            {error_summary_links(tr, None, links)}
            <section class="pay" aria-labelledby="pay-heading">
                <h2 id="pay-heading">{tr.t("pay-title")}</h2>
                <form method="post" action=Url::AccountPay.path() novalidate>
                    {csrf_input(vm.csrf.clone())}
                    <input type="hidden" name=household_pay::FROM value=s.id.clone()/>
                    <input type="hidden" name=household_pay::pay_field(&s.id) value=household_pay::CHECKED/>
                    {amount_field(tr, &s, tr.t("pay-amount-label"), Some(hint), None)}
                    <p class="hint">{tr.t("pay-redirect-note")}</p>
                    <button type="submit" class="button">{tr.t("pay-button")}</button>
                </form>
            </section>
        }
        .into_any()
    };
    let body = view! {
        <h1>{title.clone()}</h1>
        <p class="lead">{tr.ta("summary-from", &[("practice", &vm.practice_name)])}</p>
        <p>
            {tr.ta("summary-dated", &[("date", &s.statement_date)])} " · "
            {tr.ta("summary-due", &[("date", &s.due_date)])}
        </p>
        // The balance and the pay form first: on a phone they are what shows without scrolling.
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{s.balance.clone()}</p>
        </div>
        {pay}
        {vm.some_hidden.then(|| view! { <p class="privacy-note">{tr.t("account-hidden-note")}</p> })}
        {statement_table(tr, &vm.lines, vm.totals.clone())}
        <h2>{tr.t("statement-payments")}</h2>
        {payments_list(tr, &vm.payments)}
        <p><a href=Url::AccountStatementPdf(&s.id).path()>{tr.t("pdf-statement-link")}</a></p>
        <p><a href=Url::Account.path()>{tr.t("account-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

pub fn receipt(meta: PageMeta, vm: AccountReceiptVm) -> String {
    let tr = Tr::new(meta.lang);
    let card = vm.card.as_ref().map(|c| {
        tr.ta(
            "receipt-card-value",
            &[("brand", &c.brand), ("last4", &c.last4)],
        )
    });
    let rows = vm
        .items
        .iter()
        .map(|i| {
            view! {
                <tr>
                    <th scope="row">{i.patient_name.clone()}</th>
                    <td>{i.practice_name.clone()}</td>
                    <td>{i.statement_date.clone()}</td>
                    <td class="num">{i.amount.clone()}</td>
                    <td class="num">{i.new_balance.clone()}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let body = view! {
        <h1>{tr.t("receipt-title")}</h1>
        <p class="lead" role="status">{tr.t("account-receipt-thanks")}</p>
        <dl class="receipt">
            <dt>{tr.t("receipt-amount")}</dt><dd class="receipt-amount">{vm.amount.clone()}</dd>
            <dt>{tr.t("receipt-date")}</dt><dd>{vm.date.clone()}</dd>
            {card.map(|card| view! { <dt>{tr.t("receipt-card")}</dt><dd>{card}</dd> })}
            <dt>{tr.t("receipt-reference")}</dt><dd><code>{vm.reference.clone()}</code></dd>
        </dl>
        {crate::pages::after_life(tr, vm.status, &vm.refunds)}
        {vm.taken_by.clone().map(|staff| view! {
            <p class="taken-by">{tr.ta("receipt-taken-by", &[("staff", staff.as_str())])}</p>
        })}
        <div class="table-wrap">
            <table class="statement">
                <caption>{tr.t("account-receipt-caption")}</caption>
                <thead>
                    <tr>
                        <th scope="col">{tr.t("account-col-patient")}</th>
                        <th scope="col">{tr.t("account-col-practice")}</th>
                        <th scope="col">{tr.t("account-col-statement-date")}</th>
                        <th scope="col" class="num">{tr.t("account-col-applied")}</th>
                        <th scope="col" class="num">{tr.t("receipt-new-balance")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <p><a href=Url::AccountReceiptPdf(&vm.reference).path()>{tr.t("pdf-receipt-link")}</a></p>
        <p><a href=Url::Account.path()>{tr.t("account-back")}</a></p>
    };
    document_portal(&meta, tr.t("receipt-title"), body.into_any())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::open;

    #[test]
    fn hidden_descriptions_show_a_placeholder() {
        let html = statement(
            PageMeta::default(),
            AccountStatementVm {
                csrf: "tok".into(),
                patient_name: "Sam".into(),
                statement: open("st0002", "Lakeside Pediatrics"),
                lines: vec![
                    StatementLineVm {
                        detail: Some(LineDetailVm {
                            service_date: "01/05/2026".into(),
                            description: "Office visit".into(),
                        }),
                        ..Default::default()
                    },
                    StatementLineVm {
                        detail: None,
                        ..Default::default()
                    },
                ],
                some_hidden: true,
                ..Default::default()
            },
        );
        assert!(html.contains("Statement for Sam"), "{html}");
        assert!(html.contains("Office visit"), "{html}");
        assert!(html.contains(">01/05/2026</td>"), "{html}");
        assert_eq!(
            html.matches("01/05/2026").count(),
            1,
            "the hidden line has no date: {html}"
        );
        assert!(
            html.contains("<span class=\"hidden-detail\">Details hidden for privacy</span>"),
            "{html}"
        );
        assert!(html.contains("Amounts are shown in full."), "{html}");
        assert!(
            html.contains("<input type=\"hidden\" name=\"pay_st0002\" value=\"1\">"),
            "{html}"
        );
        assert!(html.contains("name=\"amount_st0002\""), "{html}");
        assert!(html.contains("name=\"from\" value=\"st0002\""), "{html}");
        assert!(!html.contains("<!>"), "{html}");
        // The balance and the pay form come before the table (on a phone, above the fold).
        let balance = html.find("balance-card").expect("the balance");
        let form = html.find("<form").expect("the pay form");
        let table = html.find("<table").expect("the table");
        assert!(balance < table && form < table, "{html}");
        assert!(
            html.contains("href=\"/account/statements/st0002/pdf\""),
            "{html}"
        );
    }
}
