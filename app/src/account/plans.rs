//! The member's payment plans: each plan's schedule with its notice and what needs them, the
//! cap and cancel forms, and the form to set up a new plan over statements they may pay.

use crate::forms::{household_pay::CHECKED, plan_form, PlanCapForm, PlanForm, PlanPayForm};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal, error_summary};
use crate::urls::Url;
use crate::vm::PageMeta;
use crate::vm_plans::{InstalmentVm, PlanVm, PlansVm};
use leptos::prelude::*;

fn instalment_row(tr: Tr, csrf: &str, plan: &str, i: InstalmentVm) -> AnyView {
    let pay = i.action.clone().map(|why| {
        view! {
            <p class="field-error">{why}</p>
            <form method="post" action=Url::AccountPlanPay.path() class="inline-form" novalidate>
                {csrf_input(csrf.to_owned())}
                <input type="hidden" name=PlanPayForm::PLAN value=plan.to_owned()/>
                <input type="hidden" name=PlanPayForm::SEQ value=i.seq.to_string()/>
                <button type="submit" class="button">
                    {tr.ta("plan-pay-now", &[("amount", &i.amount)])}
                </button>
            </form>
        }
    });
    view! {
        <tr>
            <td>{i.seq}</td>
            <td>{i.due.clone()}</td>
            <td class="num">{i.amount.clone()}</td>
            <td>{i.status.clone()}{pay}</td>
        </tr>
    }
    .into_any()
}

fn plan_section(tr: Tr, csrf: &str, p: PlanVm) -> AnyView {
    let id = p.id.clone();
    let rows = p
        .instalments
        .into_iter()
        .map(|i| instalment_row(tr, csrf, &id, i))
        .collect::<Vec<_>>();
    let controls = p.open.then(|| {
        view! {
            <form method="post" action=Url::AccountPlanCap.path() novalidate>
                {csrf_input(csrf.to_owned())}
                <input type="hidden" name=PlanCapForm::PLAN value=id.clone()/>
                <label for=format!("cap-{id}")>{tr.t("plan-cap-label")}</label>
                <input id=format!("cap-{id}") name=PlanCapForm::CAP type="text" inputmode="decimal"
                    value=p.cap.clone() autocomplete="off"/>
                <button type="submit" class="button secondary">{tr.t("plan-cap-save")}</button>
            </form>
            <form method="post" action=Url::AccountPlanCancel.path() novalidate>
                {csrf_input(csrf.to_owned())}
                <input type="hidden" name=PlanForm::PLAN value=id.clone()/>
                <button type="submit" class="button secondary">{tr.t("plan-cancel")}</button>
            </form>
        }
    });
    view! {
        <section class="plan" aria-labelledby=format!("plan-{id}")>
            <h2 id=format!("plan-{id}")>
                {tr.ta("plan-heading", &[("practice", &p.practice_name), ("total", &p.total)])}
            </h2>
            <p>{p.status.clone()}</p>
            <p>{tr.ta("plan-summary", &[("paid", &p.paid), ("card", &p.card), ("every", &p.every)])}</p>
            {p.upcoming.clone().map(|u| view! { <p class="notice" role="status">{u}</p> })}
            <table class="plan-schedule">
                <caption>{tr.t("plan-schedule")}</caption>
                <thead>
                    <tr>
                        <th scope="col">{tr.t("plan-col-seq")}</th>
                        <th scope="col">{tr.t("plan-col-due")}</th>
                        <th scope="col">{tr.t("plan-col-amount")}</th>
                        <th scope="col">{tr.t("plan-col-status")}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            {controls}
        </section>
    }
    .into_any()
}

fn setup_form(tr: Tr, vm: &PlansVm) -> AnyView {
    if vm.statements.is_empty() {
        return view! { <p>{tr.t("plan-nothing-to-plan")}</p> }.into_any();
    }
    if vm.cards.is_empty() {
        return view! {
            <p>{tr.t("plan-needs-card")}</p>
            <p><a href=Url::AccountCards.path()>{tr.t("account-cards-link")}</a></p>
        }
        .into_any();
    }
    let statements = vm
        .statements
        .iter()
        .map(|s| {
            let field = plan_form::statement_field(&s.id);
            let label = tr.ta(
                "plan-statement-line",
                &[
                    ("name", &s.patient_name),
                    ("practice", &s.practice_name),
                    ("date", &s.statement_date),
                    ("balance", &s.balance),
                ],
            );
            view! {
                <li>
                    <input type="checkbox" id=field.clone() name=field.clone() value=CHECKED/>
                    <label for=field>{label}</label>
                </li>
            }
        })
        .collect::<Vec<_>>();
    let counts = vm
        .counts
        .iter()
        .map(|n| view! { <option value=n.to_string()>{n.to_string()}</option> })
        .collect::<Vec<_>>();
    let schedules = vm
        .schedules
        .iter()
        .map(|(v, l)| view! { <option value=v.clone()>{l.clone()}</option> })
        .collect::<Vec<_>>();
    let cards = vm
        .cards
        .iter()
        .map(|(v, l)| view! { <option value=v.clone()>{l.clone()}</option> })
        .collect::<Vec<_>>();
    view! {
        <form method="post" action=Url::AccountPlanCreate.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <fieldset>
                <legend>{tr.t("plan-choose-statements")}</legend>
                <ul class="plan-statements">{statements}</ul>
            </fieldset>
            <label for="plan-count">{tr.t("plan-count-label")}</label>
            <select id="plan-count" name=plan_form::COUNT>{counts}</select>
            <label for="plan-every">{tr.t("plan-every-label")}</label>
            <select id="plan-every" name=plan_form::EVERY>{schedules}</select>
            <label for="plan-card">{tr.t("plan-card-label")}</label>
            <select id="plan-card" name=plan_form::CARD>{cards}</select>
            <label for="plan-cap">{tr.t("plan-cap-label")}</label>
            <p class="hint" id="plan-cap-hint">{tr.t("plan-cap-hint")}</p>
            <input id="plan-cap" name=plan_form::CAP type="text" inputmode="decimal"
                autocomplete="off" aria-describedby="plan-cap-hint"/>
            {vm.rules.clone().map(|r| view! { <p class="hint">{r}</p> })}
            <p>
                <input type="checkbox" id="plan-consent" name=plan_form::CONSENT value=CHECKED/>
                <label for="plan-consent">{tr.t("plan-consent")}</label>
            </p>
            <button type="submit" class="button">{tr.t("plan-create")}</button>
        </form>
    }
    .into_any()
}

pub fn plans(meta: PageMeta, vm: PlansVm) -> String {
    let tr = Tr::new(meta.lang);
    let sections = vm
        .plans
        .clone()
        .into_iter()
        .map(|p| plan_section(tr, &vm.csrf, p))
        .collect::<Vec<_>>();
    let body = view! {
        <h1>{tr.t("plans-title")}</h1>
        {error_summary(tr, vm.failure.clone(), None)}
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        <p class="lead">{tr.t("plans-lead")}</p>
        {sections}
        <h2>{tr.t("plan-new-heading")}</h2>
        {setup_form(tr, &vm)}
        <p><a href=Url::Account.path()>{tr.t("account-cards-back")}</a></p>
    };
    document_portal(&meta, tr.t("plans-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_plans::PlanStatementVm;

    #[test]
    fn shows_schedule_pay_button_and_setup_form_escaped() {
        let vm = PlansVm {
            csrf: "tok".into(),
            plans: vec![PlanVm {
                id: "pln_1".into(),
                practice_name: "<b>Clinic</b>".into(),
                status: "Active".into(),
                open: true,
                total: "$300.00".into(),
                paid: "$100.00".into(),
                card: "Visa ending 4242".into(),
                every: "Every month".into(),
                cap: "150.00".into(),
                upcoming: Some("Next charge".into()),
                instalments: vec![
                    InstalmentVm {
                        seq: 1,
                        due: "Dec 1, 2026".into(),
                        amount: "$100.00".into(),
                        status: "Paid".into(),
                        action: None,
                    },
                    InstalmentVm {
                        seq: 2,
                        due: "Jan 1, 2027".into(),
                        amount: "$100.00".into(),
                        status: "Needs you".into(),
                        action: Some("Your bank asks you to confirm".into()),
                    },
                ],
            }],
            statements: vec![PlanStatementVm {
                id: "stm_1".into(),
                patient_name: "Ana".into(),
                practice_name: "Clinic".into(),
                statement_date: "Nov 1, 2026".into(),
                balance: "$300.00".into(),
            }],
            cards: vec![("pm_1".into(), "Visa ending 4242".into())],
            counts: vec![2, 3],
            schedules: vec![("month".into(), "Every month".into())],
            ..Default::default()
        };
        let html = plans(PageMeta::default(), vm);
        assert!(!html.contains("<b>Clinic</b>"), "{html}");
        assert_eq!(
            html.matches(Url::AccountPlanPay.template()).count(),
            1,
            "{html}"
        );
        assert!(html.contains("name=\"plan_stm_1\""), "{html}");
        assert!(html.contains(Url::AccountPlanCreate.template()));
        assert!(html.contains(Url::AccountPlanCancel.template()));
        assert!(html.contains("Next charge"));
        assert!(!html.contains(">plan-"), "untranslated key in {html}");
        let none = plans(PageMeta::default(), PlansVm::default());
        assert!(none.contains(&Tr::default().t("plan-nothing-to-plan")));
    }
}
