//! The account home: each person's statements, each with its pay checkbox and amount, paid
//! together in one form.

use super::sharing::{guarantors_section, invite_error_box};
use crate::forms::household_pay;
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal, error_summary_links};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

/// The amount input of one statement (`amount-<id>` / `amount_<id>`), with its own error.
/// `hint` is shown under the label; `also_described_by` names another element (the balance line).
pub(super) fn amount_field(
    tr: Tr,
    s: &OpenStatementVm,
    label: String,
    hint: Option<String>,
    also_described_by: Option<String>,
) -> AnyView {
    let input_id = format!("amount-{}", s.id);
    let name = household_pay::amount_field(&s.id);
    let hint_id = format!("amount-{}-hint", s.id);
    let error_id = format!("amount-{}-error", s.id);
    let ids = also_described_by
        .into_iter()
        .chain(hint.is_some().then(|| hint_id.clone()))
        .chain(s.error.is_some().then(|| error_id.clone()))
        .collect::<Vec<_>>();
    let describedby = (!ids.is_empty()).then(|| ids.join(" "));
    let inv = s.error.is_some().then_some("true");
    let hint = hint.map(|h| view! { <p class="hint" id=hint_id>{h}</p> });
    let message = s.error.clone().map(|m| {
        view! {
            <p class="error-message" id=error_id>
                <span class="visually-hidden">{tr.t("error-prefix")} " "</span>
                {m}
            </p>
        }
    });
    view! {
        <div class="field">
            <label for=input_id.clone()>{label}</label>
            {hint}
            {message}
            <div class="currency-input">
                <span class="currency" aria-hidden="true">"$"</span>
                <input id=input_id name=name type="text" inputmode="decimal" size="10"
                    autocomplete="off" value=s.amount.clone()
                    aria-describedby=describedby aria-invalid=inv/>
            </div>
        </div>
    }
    .into_any()
}

/// One statement on the account page: its pay checkbox, amount and link, or "Paid in full".
fn open_statement(tr: Tr, s: OpenStatementVm) -> AnyView {
    let which = [
        ("name", s.patient_name.as_str()),
        ("date", s.statement_date.as_str()),
        ("practice", s.practice_name.as_str()),
    ];
    let legend = tr.ta("account-statement-legend", &which);
    let pay_label = tr.ta("account-pay-statement", &which);
    let view_label = tr.ta("account-view-statement-label", &which);
    let balance_id = format!("balance-{}", s.id);
    let href = Url::AccountStatement(&s.id).path();
    let balance_line = view! {
        <p class="statement-row-balance" id=balance_id.clone()>
            {tr.ta("account-statement-balance", &[("balance", &s.balance)])} " · "
            {tr.ta("summary-due", &[("date", &s.due_date)])}
        </p>
    };
    let controls = if s.paid_in_full {
        view! { <p class="paid">{tr.t("account-paid-in-full")}</p> }.into_any()
    } else {
        let pay_id = format!("pay-{}", s.id);
        let pay_name = household_pay::pay_field(&s.id);
        view! {
            <div class="checkbox">
                <input type="checkbox" id=pay_id.clone() name=pay_name value=household_pay::CHECKED checked=s.checked/>
                <label for=pay_id>{pay_label}</label>
            </div>
            {amount_field(tr, &s, tr.t("account-amount-label"), None, Some(balance_id))}
        }
        .into_any()
    };
    view! {
        <fieldset class="statement-row">
            <legend class="statement-row-title">{legend}</legend>
            {balance_line}
            {s.split.as_ref().map(|sp| crate::pictures::charge_split(tr, sp))}
            {controls}
            <p><a href=href aria-label=view_label>{tr.t("account-view-statement")}</a></p>
        </fieldset>
    }
    .into_any()
}

/// One person's statements under their own heading.
fn household_group(tr: Tr, index: usize, g: HouseholdGroupVm) -> AnyView {
    let heading_id = format!("group-{index}-heading");
    let labelled_by = heading_id.clone();
    let heading = match g.relation {
        Relation::Own => tr.t("account-own-statements"),
        Relation::Dependant => tr.ta("account-dependant-statements", &[("name", &g.patient_name)]),
    };
    let statements = if g.statements.is_empty() {
        view! { <p>{tr.t("account-nothing-due")}</p> }.into_any()
    } else {
        g.statements
            .into_iter()
            .map(|s| open_statement(tr, s))
            .collect::<Vec<_>>()
            .into_any()
    };
    view! {
        <section class="household-group" aria-labelledby=labelled_by>
            <h2 id=heading_id>{heading}</h2>
            {statements}
        </section>
    }
    .into_any()
}

pub fn home(meta: PageMeta, vm: AccountHomeVm) -> String {
    let tr = Tr::new(meta.lang);
    let statements = vm.groups.iter().flat_map(|g| &g.statements);
    let any_statement = statements.clone().next().is_some();
    let payable = statements.clone().any(|s| !s.paid_in_full);
    let amount_errors = statements
        .filter_map(|s| s.error.clone().map(|m| (format!("amount-{}", s.id), m)))
        .collect::<Vec<_>>();
    let summary = error_summary_links(tr, vm.pay_error.clone(), amount_errors);
    let guarantors = guarantors_section(tr, &vm);
    let groups = if any_statement {
        vm.groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| household_group(tr, i, g))
            .collect::<Vec<_>>()
            .into_any()
    } else {
        view! { <p>{tr.t("account-nothing-due")}</p> }.into_any()
    };
    let pay = if payable {
        view! {
            <form method="post" action=Url::AccountPay.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                {summary}
                {groups}
                <div class="balance-card">
                    <p class="balance-label">{tr.t("account-total-due")}</p>
                    <p class="balance-amount">{vm.total_due.clone()}</p>
                </div>
                <p class="hint">{tr.t("pay-redirect-note")}</p>
                <button type="submit" class="button">{tr.t("account-pay-selected")}</button>
            </form>
        }
        .into_any()
    } else {
        view! {
            {summary}
            {groups}
        }
        .into_any()
    };
    let body = view! {
        <h1>{tr.t("account-title")}</h1>
        <p class="lead">{tr.ta("account-signed-in-as", &[("email", &vm.email)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {vm.plan_notices.iter().map(|n| view! {
            <p class="notice"><a href=Url::AccountPlans.path()>{n.clone()}</a></p>
        }).collect::<Vec<_>>()}
        {vm.invite_error.clone().map(invite_error_box)}
        {pay}
        <p>
            <a href=Url::AccountCards.path()>{tr.t("account-cards-link")}</a>
            " · "
            <a href=Url::AccountPlans.path()>{tr.t("plans-link")}</a>
            " · "
            <a href=Url::AccountRecordViews.path()>{tr.t("record-views-link")}</a>
        </p>
        {guarantors}
    };
    document_portal(&meta, tr.t("account-title"), body.into_any())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::household;

    #[test]
    fn home_has_one_checkbox_and_amount_per_statement_and_escapes_input() {
        let html = home(PageMeta::default(), household());
        for id in ["st0001", "st0002"] {
            assert!(
                html.contains(&format!("id=\"pay-{id}\" name=\"pay_{id}\" value=\"1\"")),
                "{html}"
            );
            assert!(
                html.contains(&format!("<label for=\"pay-{id}\">")),
                "{html}"
            );
            assert!(
                html.contains(&format!("id=\"amount-{id}\" name=\"amount_{id}\"")),
                "{html}"
            );
            let statement = Url::AccountStatement(id);
            assert!(html.contains(&format!("href=\"{statement}\"")));
        }
        // Only the first statement was checked.
        assert_eq!(html.matches(" checked").count(), 1, "{html}");
        assert!(html.contains("Your statements"), "{html}");
        assert!(html.contains("Sam's statements"), "{html}");
        assert!(html.contains(&format!("action=\"{}\"", Url::AccountPay)));
        assert_eq!(html.matches("<h1").count(), 1);
        // The amount error is tied to its input and linked from the summary.
        assert!(html.contains("href=\"#amount-st0002\""), "{html}");
        assert!(html.contains("id=\"amount-st0002-error\""), "{html}");
        assert!(
            html.contains("aria-describedby=\"balance-st0002 amount-st0002-error\""),
            "{html}"
        );
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        // Guarantors, invitations, the invite form with its email field, and why an invitation
        // was not sent.
        assert!(html.contains("name=\"grant\" value=\"gr01\""), "{html}");
        assert!(
            html.contains("name=\"invitation\" value=\"in01\""),
            "{html}"
        );
        assert!(
            html.contains("<option value=\"pt01\">Dana</option>"),
            "{html}"
        );
        assert!(
            html.contains("id=\"invite-email\" name=\"email\" type=\"email\""),
            "{html}"
        );
        assert!(
            html.contains("invite-error\">Enter an email address</p>"),
            "{html}"
        );
        assert!(!html.contains("/g/"), "{html}");
        // Every form posts with a CSRF token.
        assert_eq!(
            html.matches("method=\"post\"").count(),
            html.matches("name=\"csrf\" value=\"tok\"").count(),
            "{html}"
        );
        // No hydration markers, and user input is escaped in text and attributes.
        assert!(!html.contains("<!>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
    }

    #[test]
    fn nothing_due_has_no_pay_button() {
        let html = home(PageMeta::default(), AccountHomeVm::default());
        assert!(html.contains("Nothing is due."), "{html}");
        assert!(!html.contains("Pay selected"), "{html}");
        assert!(
            !html.contains(&format!("action=\"{}\"", Url::AccountPay)),
            "{html}"
        );
        assert!(!html.contains("Guarantors"), "{html}");
    }
}
