//! Account pages for patients and guarantors: create an account, sign in, the account home
//! (every statement the holder may pay, paid together in one form), a statement, the receipt,
//! and the guarantor invitation steps (verify, locked, accept).

use crate::forms::{
    household_pay, ConfirmForm, InviteForm, InviteVerifyForm, NewAccountForm, RevokeGrantForm,
    RevokeInvitationForm, SignInForm,
};
use crate::i18n::Tr;
use crate::pages::{
    csrf_input, described_by, dob_fieldset, document_portal, error_summary, error_summary_links,
    field_message, invalid, payments_list, statement_row, statement_table, zip_field,
};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

/// A guarantor invitation link just created, shown once (account home and staff home).
pub(crate) fn invite_link_box(tr: Tr, link: String) -> AnyView {
    view! {
        <section class="invite-box" aria-labelledby="invite-link-heading">
            <h2 id="invite-link-heading">{tr.t("invite-link-title")}</h2>
            <p><code class="invite-link">{link}</code></p>
            <p>{tr.t("invite-link-body")}</p>
        </section>
    }
    .into_any()
}

/// A new password and its confirmation (ids `password`, `password-confirm`), each with its error.
fn new_password_fields(tr: Tr, err: &Option<FieldError>) -> AnyView {
    // The password input's id is its field name.
    let password = NewAccountForm::PASSWORD;
    let hint_id = format!("{password}-hint");
    view! {
        <div class="field">
            <label for=password>{tr.t("account-password")}</label>
            <p class="hint" id=hint_id>{tr.t("account-password-hint")}</p>
            {field_message(tr, password, err)}
            <input id=password name=password type="password" autocomplete="new-password"
                size="30" required aria-describedby=described_by(password, true, err)
                aria-invalid=invalid(password, err)/>
        </div>
        <div class="field">
            <label for="password-confirm">{tr.t("account-password-confirm")}</label>
            {field_message(tr, "password-confirm", err)}
            <input id="password-confirm" name=NewAccountForm::PASSWORD_CONFIRM type="password"
                autocomplete="new-password" size="30" required
                aria-describedby=described_by("password-confirm", false, err)
                aria-invalid=invalid("password-confirm", err)/>
        </div>
    }
    .into_any()
}

/// Email, password and confirmation for a new account. `mode` is the hidden `mode` field the
/// invitation page sends (`NewAccountForm::MODE_CREATE`). The error summary is the caller's, at
/// the top of the page.
fn account_form(tr: Tr, vm: AccountFormVm, mode: Option<&'static str>) -> AnyView {
    let err = vm.field_error.clone();
    // The email input's id is its field name.
    let email = NewAccountForm::EMAIL;
    view! {
        <form method="post" action=vm.action.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {mode.map(|m| view! { <input type="hidden" name=NewAccountForm::MODE value=m/> })}
            <div class="field">
                <label for=email>{tr.t("account-email")}</label>
                {field_message(tr, email, &err)}
                <input id=email name=email type="email" autocomplete="username" spellcheck="false"
                    size="30" required value=vm.email.clone()
                    aria-describedby=described_by(email, false, &err)
                    aria-invalid=invalid(email, &err)/>
            </div>
            {new_password_fields(tr, &err)}
            <button type="submit" class="button">{tr.t("account-create-submit")}</button>
        </form>
    }
    .into_any()
}

pub fn create(meta: PageMeta, vm: AccountFormVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("account-create-title")}</h1>
        <p class="lead">{tr.t("account-create-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        {account_form(tr, vm, None)}
    };
    document_portal(&meta, tr.t("account-create-title"), body.into_any())
}

pub fn signin(meta: PageMeta, vm: SignInVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("signin-title")}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::SignIn.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=SignInForm::EMAIL>{tr.t("account-email")}</label>
                <input id=SignInForm::EMAIL name=SignInForm::EMAIL type="email" autocomplete="username" spellcheck="false"
                    size="30" required value=vm.email.clone()/>
            </div>
            <div class="field">
                <label for=SignInForm::PASSWORD>{tr.t("account-password")}</label>
                <input id=SignInForm::PASSWORD name=SignInForm::PASSWORD type="password" autocomplete="current-password"
                    size="30" required/>
            </div>
            <button type="submit" class="button">{tr.t("signin-submit")}</button>
        </form>
        <p>{tr.t("signin-link-note")}</p>
        <p>{tr.t("signin-forgot-note")}</p>
    };
    document_portal(&meta, tr.t("signin-title"), body.into_any())
}

/// A new password for the patient's own account (identity proven on the pay link).
pub fn reset_password(meta: PageMeta, vm: ResetPasswordVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("account-reset-title")}</h1>
        <p class="lead">{tr.ta("account-reset-lead", &[("email", &vm.email_hint)])}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::AccountResetPassword.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {new_password_fields(tr, &err)}
            <button type="submit" class="button">{tr.t("account-reset-submit")}</button>
        </form>
    };
    document_portal(&meta, tr.t("account-reset-title"), body.into_any())
}

/// Cognito emailed a code at sign-up: enter it to finish.
pub fn confirm_code(meta: PageMeta, vm: ConfirmCodeVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("account-confirm-title")}</h1>
        <p class="lead">{tr.ta("account-confirm-lead", &[("email", &vm.email)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::AccountConfirm.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ConfirmForm::CODE>{tr.t("account-confirm-code")}</label>
                <input id=ConfirmForm::CODE name=ConfirmForm::CODE type="text" inputmode="numeric" autocomplete="one-time-code"
                    size="10" required/>
            </div>
            <button type="submit" class="button">{tr.t("account-confirm-submit")}</button>
        </form>
        <form method="post" action=Url::AccountConfirmResend.path() class="inline-form">
            {csrf_input(vm.csrf.clone())}
            <button type="submit" class="link-button dark">{tr.t("account-confirm-resend")}</button>
        </form>
    };
    document_portal(&meta, tr.t("account-confirm-title"), body.into_any())
}

/// The amount input of one statement (`amount-<id>` / `amount_<id>`), with its own error.
/// `hint` is shown under the label; `also_described_by` names another element (the balance line).
fn amount_field(
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

/// The guarantors, pending invitations and invite form for the holder's own records.
fn guarantors_section(tr: Tr, vm: &AccountHomeVm) -> Option<AnyView> {
    if vm.can_invite.is_empty() && vm.guarantors.is_empty() && vm.invitations.is_empty() {
        return None;
    }
    let guarantors = (!vm.guarantors.is_empty()).then(|| {
        let items = vm
            .guarantors
            .iter()
            .map(|g| {
                let who = [
                    ("email", g.email.as_str()),
                    ("patient", g.patient_name.as_str()),
                    ("since", g.since.as_str()),
                ];
                view! {
                    <li>
                        <span>{tr.ta("account-guarantor-line", &who)}</span>
                        <form method="post" action=Url::AccountGuarantorRevoke.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=RevokeGrantForm::GRANT value=g.grant_id.clone()/>
                            <button type="submit" class="button secondary"
                                aria-label=tr.ta("account-guarantor-revoke-label", &who)>
                                {tr.t("account-guarantor-revoke")}
                            </button>
                        </form>
                    </li>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-guarantors-current")}</h3>
            <ul class="grants">{items}</ul>
        }
    });
    let invitations = (!vm.invitations.is_empty()).then(|| {
        let items = vm
            .invitations
            .iter()
            .map(|i| {
                let which = [
                    ("patient", i.patient_name.as_str()),
                    ("expires", i.expires.as_str()),
                ];
                view! {
                    <li>
                        <span>{tr.ta("account-invitation-line", &which)}</span>
                        <form method="post" action=Url::AccountInvitationRevoke.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=RevokeInvitationForm::INVITATION value=i.id.clone()/>
                            <button type="submit" class="button secondary"
                                aria-label=tr.ta("account-invitation-cancel-label", &which)>
                                {tr.t("account-invitation-cancel")}
                            </button>
                        </form>
                    </li>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-invitations-title")}</h3>
            <ul class="grants">{items}</ul>
        }
    });
    let invite = (!vm.can_invite.is_empty()).then(|| {
        let options = vm
            .can_invite
            .iter()
            .map(|(id, name)| view! { <option value=id.clone()>{name.clone()}</option> })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-invite-title")}</h3>
            <form method="post" action=Url::AccountGuarantorInvite.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <div class="field">
                    <label for="invite-patient">{tr.t("account-invite-patient")}</label>
                    <select id="invite-patient" name=InviteForm::PATIENT>{options}</select>
                </div>
                <button type="submit" class="button">{tr.t("account-invite-submit")}</button>
            </form>
        }
    });
    Some(
        view! {
            <section class="guarantors" aria-labelledby="guarantors-heading">
                <h2 id="guarantors-heading">{tr.t("account-guarantors-title")}</h2>
                <p>{tr.t("account-guarantors-lead")}</p>
                {guarantors}
                {invitations}
                {invite}
            </section>
        }
        .into_any(),
    )
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
        {vm.invite_link.clone().map(|link| invite_link_box(tr, link))}
        {pay}
        {guarantors}
    };
    document_portal(&meta, tr.t("account-title"), body.into_any())
}

pub fn statement(meta: PageMeta, vm: AccountStatementVm) -> String {
    let tr = Tr::new(meta.lang);
    let title = tr.ta("account-statement-title", &[("patient", &vm.patient_name)]);
    let s = vm.statement.clone();
    let rows = vm
        .lines
        .iter()
        .map(|l| {
            let description = match &l.description {
                Some(d) => view! { {d.clone()} }.into_any(),
                None => view! {
                    <span class="hidden-detail">{tr.t("account-hidden-detail")}</span>
                }
                .into_any(),
            };
            statement_row(
                l.service_date.clone(),
                description,
                [
                    l.charge.clone(),
                    l.insurance_paid.clone(),
                    l.adjustment.clone(),
                    l.responsibility.clone(),
                ],
            )
        })
        .collect::<Vec<_>>();
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
        {vm.some_hidden.then(|| view! { <p class="privacy-note">{tr.t("account-hidden-note")}</p> })}
        {statement_table(tr, rows, vm.totals.clone())}
        <h2>{tr.t("statement-payments")}</h2>
        {payments_list(tr, &vm.payments)}
        <div class="balance-card">
            <p class="balance-label">{tr.t("summary-balance")}</p>
            <p class="balance-amount">{s.balance.clone()}</p>
        </div>
        {pay}
        <p><a href=Url::Account.path()>{tr.t("account-back")}</a></p>
    };
    document_portal(&meta, title, body.into_any())
}

pub fn receipt(meta: PageMeta, vm: AccountReceiptVm) -> String {
    let tr = Tr::new(meta.lang);
    let card = tr.ta(
        "receipt-card-value",
        &[("brand", &vm.brand), ("last4", &vm.last4)],
    );
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
            <dt>{tr.t("receipt-card")}</dt><dd>{card}</dd>
            <dt>{tr.t("receipt-reference")}</dt><dd><code>{vm.reference.clone()}</code></dd>
        </dl>
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
        <p><a href=Url::Account.path()>{tr.t("account-back")}</a></p>
    };
    document_portal(&meta, tr.t("receipt-title"), body.into_any())
}

pub fn invite_verify(meta: PageMeta, vm: InviteVerifyVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("invite-verify-title")}</h1>
        <p class="lead">{tr.t("invite-verify-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::GuarantorVerify.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            {dob_fieldset(tr, &err, [
                InviteVerifyForm::DOB_MONTH,
                InviteVerifyForm::DOB_DAY,
                InviteVerifyForm::DOB_YEAR,
            ])}
            {zip_field(tr, &err, InviteVerifyForm::ZIP)}
            <button type="submit" class="button">{tr.t("verify-continue")}</button>
        </form>
    };
    document_portal(&meta, tr.t("invite-verify-title"), body.into_any())
}

pub fn invite_locked(
    meta: PageMeta,
    practice_name: Option<String>,
    practice_phone: Option<String>,
) -> String {
    let tr = Tr::new(meta.lang);
    let text = match (&practice_name, &practice_phone) {
        (Some(p), Some(phone)) => tr.ta("invite-locked-body", &[("practice", p), ("phone", phone)]),
        _ => tr.t("invite-locked-body-generic"),
    };
    let body = view! {
        <h1>{tr.t("invite-locked-title")}</h1>
        <p class="lead">{text}</p>
    };
    document_portal(&meta, tr.t("invite-locked-title"), body.into_any())
}

pub fn invite_accept(meta: PageMeta, vm: InviteAcceptVm) -> String {
    let tr = Tr::new(meta.lang);
    let lead = tr.ta(
        "invite-accept-lead",
        &[
            ("patient", &vm.patient_name),
            ("practice", &vm.practice_name),
        ],
    );
    let action = match vm.signed_in_email.clone() {
        Some(email) => view! {
            <p>{tr.ta("account-signed-in-as", &[("email", &email)])}</p>
            <form method="post" action=Url::GuarantorAccept.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name=NewAccountForm::MODE value=NewAccountForm::MODE_EXISTING/>
                <button type="submit" class="button">{tr.t("invite-accept-existing")}</button>
            </form>
        }
        .into_any(),
        None => {
            let form = vm.form.clone();
            view! {
                {error_summary(tr, form.failure.clone(), form.field_error.clone())}
                <h2>{tr.t("account-create-title")}</h2>
                {account_form(tr, form, Some(NewAccountForm::MODE_CREATE))}
                <p>
                    {tr.t("invite-have-account")} " "
                    <a href=Url::SignIn.path()>{tr.t("invite-signin-link")}</a>
                </p>
                <p class="hint">{tr.t("invite-signin-kept")}</p>
            }
            .into_any()
        }
    };
    let body = view! {
        <h1>{tr.t("invite-accept-title")}</h1>
        <p class="lead">{lead}</p>
        {action}
    };
    document_portal(&meta, tr.t("invite-accept-title"), body.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(id: &str, practice: &str) -> OpenStatementVm {
        OpenStatementVm {
            id: id.into(),
            practice_name: practice.into(),
            statement_date: "2026-03-01".into(),
            due_date: "2026-04-01".into(),
            balance: "$182.40".into(),
            amount: "182.40".into(),
            ..Default::default()
        }
    }

    fn household() -> AccountHomeVm {
        AccountHomeVm {
            csrf: "tok".into(),
            email: "<script>alert(1)</script>@example.com".into(),
            total_due: "$207.40".into(),
            groups: vec![
                HouseholdGroupVm {
                    patient_name: "Dana".into(),
                    relation: Relation::Own,
                    statements: vec![OpenStatementVm {
                        checked: true,
                        ..open("st0001", "Riverside Family Medicine")
                    }],
                },
                HouseholdGroupVm {
                    patient_name: "Sam".into(),
                    relation: Relation::Dependant,
                    statements: vec![OpenStatementVm {
                        amount: "\"><b>x</b>".into(),
                        error: Some("Too much".into()),
                        ..open("st0002", "Lakeside Pediatrics")
                    }],
                },
            ],
            can_invite: vec![("pt01".into(), "Dana".into())],
            guarantors: vec![GuarantorVm {
                grant_id: "gr01".into(),
                email: "pat@example.com".into(),
                patient_name: "Dana".into(),
                since: "2026-01-02".into(),
            }],
            invitations: vec![InvitationVm {
                id: "in01".into(),
                patient_name: "Dana".into(),
                expires: "2026-03-15".into(),
            }],
            invite_link: Some("https://pay.example/g/abc".into()),
            ..Default::default()
        }
    }

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
        // Guarantors, invitations, invite form and the once-only link.
        assert!(html.contains("name=\"grant\" value=\"gr01\""), "{html}");
        assert!(
            html.contains("name=\"invitation\" value=\"in01\""),
            "{html}"
        );
        assert!(
            html.contains("<option value=\"pt01\">Dana</option>"),
            "{html}"
        );
        assert!(html.contains("https://pay.example/g/abc"), "{html}");
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

    #[test]
    fn hidden_descriptions_show_a_placeholder() {
        let html = statement(
            PageMeta::default(),
            AccountStatementVm {
                csrf: "tok".into(),
                patient_name: "Sam".into(),
                statement: open("st0002", "Lakeside Pediatrics"),
                lines: vec![
                    AccountLineVm {
                        description: Some("Office visit".into()),
                        ..Default::default()
                    },
                    AccountLineVm {
                        description: None,
                        ..Default::default()
                    },
                ],
                some_hidden: true,
                ..Default::default()
            },
        );
        assert!(html.contains("Statement for Sam"), "{html}");
        assert!(html.contains("Office visit"), "{html}");
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
    }

    #[test]
    fn invitation_forms_carry_their_mode() {
        let create_mode = invite_accept(
            PageMeta::default(),
            InviteAcceptVm {
                form: AccountFormVm {
                    action: Url::GuarantorAccept,
                    field_error: Some(FieldError {
                        field: "password-confirm",
                        message: "The passwords do not match.".into(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert!(create_mode.contains("name=\"mode\" value=\"create\""));
        assert!(create_mode.contains(&format!("action=\"{}\"", Url::GuarantorAccept)));
        assert!(create_mode.contains(&format!("href=\"{}\"", Url::SignIn)));
        assert!(
            create_mode.contains("aria-describedby=\"password-confirm-error\""),
            "{create_mode}"
        );
        let existing = invite_accept(
            PageMeta::default(),
            InviteAcceptVm {
                signed_in_email: Some("a@example.com".into()),
                ..Default::default()
            },
        );
        assert!(existing.contains("name=\"mode\" value=\"existing\""));
        assert!(!existing.contains("name=\"password\""));
    }

    #[test]
    fn every_account_page_renders_only_catalog_keys_that_exist() {
        let pages = [
            create(PageMeta::default(), AccountFormVm::default()),
            signin(PageMeta::default(), SignInVm::default()),
            home(PageMeta::default(), household()),
            home(PageMeta::default(), AccountHomeVm::default()),
            statement(
                PageMeta::default(),
                AccountStatementVm {
                    lines: vec![AccountLineVm::default()],
                    some_hidden: true,
                    payments: vec![PaymentVm::default()],
                    ..Default::default()
                },
            ),
            receipt(
                PageMeta::default(),
                AccountReceiptVm {
                    items: vec![ReceiptItemVm::default()],
                    ..Default::default()
                },
            ),
            invite_verify(PageMeta::default(), InviteVerifyVm::default()),
            invite_locked(PageMeta::default(), None, None),
            invite_locked(PageMeta::default(), Some("P".into()), Some("1".into())),
            invite_accept(PageMeta::default(), InviteAcceptVm::default()),
            invite_accept(
                PageMeta::default(),
                InviteAcceptVm {
                    signed_in_email: Some("a@example.com".into()),
                    ..Default::default()
                },
            ),
            crate::pages::home(PageMeta::default()),
            crate::pages::receipt(
                PageMeta::default(),
                ReceiptVm {
                    offer_account: true,
                    ..Default::default()
                },
            ),
            crate::staff::home(
                PageMeta::default(),
                StaffHomeVm {
                    can_search: true,
                    invite_link: Some("https://pay.example/g/abc".into()),
                    results: Some(vec![StaffPatientRow {
                        can_invite: true,
                        can_revoke: true,
                        guarantors: vec![GuarantorVm::default()],
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            ),
        ];
        // A missing key renders as the key itself, which always contains a '-' and no space; text
        // and aria-label are where translated strings go.
        for html in pages {
            for key in [
                "account-",
                "signin-",
                "invite-",
                "receipt-",
                "home-",
                "staff-",
                "pay-",
                "summary-",
                "statement-",
                "verify-",
                "zip-",
            ] {
                for needle in [format!(">{key}"), format!("aria-label=\"{key}")] {
                    assert!(
                        !html.contains(&needle),
                        "untranslated key starting {key} in {html}"
                    );
                }
            }
            assert!(!html.contains("<!>"), "{html}");
        }
    }

    #[test]
    fn keys_the_server_flashes_exist() {
        let tr = Tr::new(crate::Lang::En);
        for key in [
            "account-created",
            "account-email-invalid",
            "account-email-taken",
            "account-guarantor-revoked",
            "account-invitation-revoked",
            "account-pay-cancelled",
            "account-pay-check",
            "account-pay-declined",
            "account-pay-insufficient",
            "account-pay-none",
            "account-pay-one-practice",
            "account-pay-too-many",
            "invite-accepted",
            "invite-gone",
            "invite-verify-failed",
            "signin-failed",
            "staff-guarantor-revoked",
            "staff-invite-created",
            "account-created-signin",
            "account-confirmed",
            "account-confirm-failed",
            "account-password-policy",
            "account-code-resent",
            "account-patient-exists",
            "account-password-reset",
        ] {
            assert!(tr.has(key), "{key} is missing from en.ftl");
        }
    }
}
