//! Staff pages: sign-in, second factor, enrolment, recovery codes, and the staff home.

use crate::account::invite_error_box;
use crate::forms::{
    BreakGlassForm, CodeForm, EnrolForm, ForgotForm, InviteForm, NewPasswordForm, RefundForm,
    ResetForm, RevokeGrantForm, SearchForm, SignInForm,
};
use crate::i18n::Tr;
use crate::pages::{csrf_input, document_portal, error_summary, field_message};
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

pub fn login(meta: PageMeta, vm: StaffLoginVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-login-title")}</h1>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::StaffLogin.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=SignInForm::EMAIL>{tr.t("staff-email")}</label>
                <input id=SignInForm::EMAIL name=SignInForm::EMAIL type="text" inputmode="email" autocomplete="username" required value=vm.email.clone()/>
            </div>
            <div class="field">
                <label for=SignInForm::PASSWORD>{tr.t("staff-password")}</label>
                <input id=SignInForm::PASSWORD name=SignInForm::PASSWORD type="password" autocomplete="current-password" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-sign-in")}</button>
        </form>
        {vm.can_reset.then(|| view! { <p><a href=Url::StaffForgot.path()>{tr.t("staff-forgot-link")}</a></p> })}
    };
    document_portal(&meta, tr.t("staff-login-title"), body.into_any())
}

/// Cognito password reset, step 1: the account's email.
pub fn forgot(meta: PageMeta, vm: StaffResetVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-forgot-title")}</h1>
        <p class="lead">{tr.t("staff-forgot-lead")}</p>
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::StaffForgot.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ForgotForm::EMAIL>{tr.t("staff-email")}</label>
                <input id=ForgotForm::EMAIL name=ForgotForm::EMAIL type="text" inputmode="email" autocomplete="username" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-forgot-submit")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-forgot-title"), body.into_any())
}

/// Cognito password reset, step 2: the emailed code and a new password.
pub fn reset(meta: PageMeta, vm: StaffResetVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-reset-title")}</h1>
        <p class="lead">{tr.ta("staff-reset-lead", &[("email", &vm.email)])}</p>
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::StaffReset.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=ResetForm::CODE>{tr.t("staff-reset-code")}</label>
                <input id=ResetForm::CODE name=ResetForm::CODE type="text" inputmode="numeric" autocomplete="one-time-code" size="10" required/>
            </div>
            <div class="field">
                <label for=ResetForm::PASSWORD>{tr.t("staff-password")}</label>
                <p class="hint" id="password-hint">{tr.t("staff-password-hint")}</p>
                <input id=ResetForm::PASSWORD name=ResetForm::PASSWORD type="password" autocomplete="new-password" required aria-describedby="password-hint"/>
            </div>
            <div class="field">
                <label for="password-confirm">{tr.t("staff-password-confirm")}</label>
                <input id="password-confirm" name=ResetForm::PASSWORD_CONFIRM type="password" autocomplete="new-password" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-reset-submit")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-reset-title"), body.into_any())
}

pub fn mfa(meta: PageMeta, vm: StaffMfaVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-mfa-title")}</h1>
        <p class="lead">{tr.t("staff-mfa-lead")}</p>
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::StaffMfa.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=CodeForm::CODE>{tr.t("staff-code")}</label>
                <input id=CodeForm::CODE name=CodeForm::CODE type="text" inputmode="numeric" autocomplete="one-time-code" size="14" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-verify")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-mfa-title"), body.into_any())
}

pub fn enrol_invalid(meta: PageMeta) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-enrol-title")}</h1>
        <p class="lead">{tr.t("staff-enrol-invalid")}</p>
    };
    document_portal(&meta, tr.t("staff-enrol-title"), body.into_any())
}

pub fn enrol(meta: PageMeta, vm: StaffEnrolVm) -> String {
    let tr = Tr::new(meta.lang);
    let err = vm.field_error.clone();
    let body = view! {
        <h1>{tr.t("staff-enrol-title")}</h1>
        <p class="lead">{tr.t("staff-enrol-lead")}</p>
        {error_summary(tr, vm.failure.clone(), vm.field_error.clone())}
        <form method="post" action=Url::StaffEnrol.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=EnrolForm::PASSWORD>{tr.t("staff-password")}</label>
                <p class="hint" id="password-hint">{tr.t("staff-password-hint")}</p>
                {field_message(tr, EnrolForm::PASSWORD, &err)}
                <input id=EnrolForm::PASSWORD name=EnrolForm::PASSWORD type="password" autocomplete="new-password" required aria-describedby="password-hint"/>
            </div>
            <div class="field">
                <label for="password-confirm">{tr.t("staff-password-confirm")}</label>
                <input id="password-confirm" name=EnrolForm::PASSWORD_CONFIRM type="password" autocomplete="new-password" required/>
            </div>
            <figure class="qr">
                <div class="qr-code" inner_html=vm.qr_svg.clone()></div>
                <figcaption>{tr.t("staff-qr-label")}</figcaption>
            </figure>
            <p>{tr.t("staff-secret-label")} " " <code class="secret">{vm.secret_base32.clone()}</code></p>
            <div class="field">
                <label for=EnrolForm::CODE>{tr.t("staff-code")}</label>
                {field_message(tr, EnrolForm::CODE, &err)}
                <input id=EnrolForm::CODE name=EnrolForm::CODE type="text" inputmode="numeric" autocomplete="one-time-code" size="8" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-enrol-submit")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-enrol-title"), body.into_any())
}

pub fn recovery_codes(meta: PageMeta, vm: StaffRecoveryVm) -> String {
    let tr = Tr::new(meta.lang);
    let items = vm
        .codes
        .iter()
        .map(|c| view! { <li><code>{c.clone()}</code></li> })
        .collect::<Vec<_>>();
    let body = view! {
        <h1>{tr.t("staff-recovery-title")}</h1>
        <p class="lead">{tr.t("staff-recovery-lead")}</p>
        <ol class="recovery-codes">{items}</ol>
        <p><a class="button" href=Url::StaffLogin.path()>{tr.t("staff-recovery-continue")}</a></p>
    };
    document_portal(&meta, tr.t("staff-recovery-title"), body.into_any())
}

/// One search result: the patient, their guarantors (each revocable when the viewer may), and
/// the invite form when the viewer may invite a guarantor for them.
fn patient_row(tr: Tr, csrf: &str, r: StaffPatientRow) -> AnyView {
    let guarantors = (!r.guarantors.is_empty()).then(|| {
        let items = r
            .guarantors
            .iter()
            .map(|g| {
                let revoke = r.can_revoke.then(|| {
                    let label = tr.ta(
                        "staff-guarantor-revoke-label",
                        &[("email", &g.email), ("patient", &r.name)],
                    );
                    view! {
                        <form method="post" action=Url::StaffGuarantorRevoke.path() class="inline-form" novalidate>
                            {csrf_input(csrf.to_owned())}
                            <input type="hidden" name=RevokeGrantForm::GRANT value=g.grant_id.clone()/>
                            <button type="submit" class="button secondary" aria-label=label>
                                {tr.t("staff-guarantor-revoke")}
                            </button>
                        </form>
                    }
                });
                view! {
                    <li>
                        <span>{tr.ta("staff-guarantor-line", &[("email", &g.email), ("since", &g.since)])}</span>
                        {revoke}
                    </li>
                }
            })
            .collect::<Vec<_>>();
        view! { <ul class="grants">{items}</ul> }
    });
    let own_account = r.patient_account.as_ref().map(|g| {
        let label = tr.ta("staff-patient-account-revoke-label", &[("email", &g.email)]);
        view! {
            <div class="grants">
                <span>{tr.ta("staff-patient-account-line", &[("email", &g.email), ("since", &g.since)])}</span>
                <form method="post" action=Url::StaffGuarantorRevoke.path() class="inline-form" novalidate>
                    {csrf_input(csrf.to_owned())}
                    <input type="hidden" name=RevokeGrantForm::GRANT value=g.grant_id.clone()/>
                    <button type="submit" class="button secondary" aria-label=label>
                        {tr.t("staff-patient-account-revoke")}
                    </button>
                </form>
            </div>
        }
    });
    let invite = r.can_invite.then(|| {
        let label = tr.ta("staff-guarantor-invite-label", &[("patient", &r.name)]);
        let email_id = format!("invite-email-{}", r.patient_id);
        view! {
            <form method="post" action=Url::StaffGuarantorInvite.path() class="inline-form" novalidate>
                {csrf_input(csrf.to_owned())}
                <input type="hidden" name=InviteForm::PATIENT value=r.patient_id.clone()/>
                <label for=email_id.clone()>{tr.t("invite-email-label")}</label>
                <input id=email_id name=InviteForm::EMAIL type="email" autocomplete="off"
                    spellcheck="false" size="24" required/>
                <button type="submit" class="button secondary" aria-label=label>
                    {tr.t("staff-guarantor-invite")}
                </button>
            </form>
        }
    });
    let payments = r.can_refund.then(|| {
        let label = tr.ta("staff-payments-link-label", &[("patient", &r.name)]);
        view! {
            <p><a href=Url::StaffPatientPayments(&r.patient_id).path() aria-label=label>{tr.t("staff-payments-link")}</a></p>
        }
    });
    let console_label = tr.ta("staff-console-link-label", &[("patient", &r.name)]);
    view! {
        <li>
            {r.name.clone()} " — " {r.practice.clone()}
            <p><a href=Url::StaffPatient(&r.patient_id).path() aria-label=console_label>{tr.t("staff-console-link")}</a></p>
            {payments}
            {own_account}
            {guarantors}
            {invite}
        </li>
    }
    .into_any()
}

/// One payment on the staff payments page: what it was, what became of it, and the refund form
/// when it can still be refunded.
fn staff_payment(
    tr: Tr,
    csrf: &str,
    patient: &str,
    reasons: &[(String, String)],
    p: StaffPaymentVm,
) -> AnyView {
    let heading_id = format!("payment-{}", p.id);
    let amount_id = format!("amount-{}", p.id);
    let reason_id = format!("reason-{}", p.id);
    let error_id = format!("error-{}", p.id);
    let status = tr.t(&format!("staff-payment-status-{}", p.status));
    let account = (!p.last4.is_empty()).then(|| {
        tr.ta(
            "staff-payment-account",
            &[("brand", &p.brand), ("last4", &p.last4)],
        )
    });
    let refunds = if p.refunds.is_empty() {
        view! { <dd>{tr.t("staff-payment-no-refunds")}</dd> }.into_any()
    } else {
        let items = p
            .refunds
            .iter()
            .map(|r| {
                view! {
                    <li>{tr.ta("staff-refund-line", &[("date", &r.date), ("amount", &r.amount), ("reason", &r.reason), ("status", &r.status)])}</li>
                }
            })
            .collect::<Vec<_>>();
        view! { <dd><ul class="refunds">{items}</ul></dd> }.into_any()
    };
    let form = p.refundable.then(|| {
        let error = p.form.error.clone();
        let has_error = error.is_some();
        let options = reasons
            .iter()
            .map(|(value, label)| {
                let selected = *value == p.form.reason;
                view! { <option value=value.clone() selected=selected>{label.clone()}</option> }
            })
            .collect::<Vec<_>>();
        let label = tr.ta(
            "staff-refund-submit-label",
            &[("date", &p.date), ("amount", &p.amount)],
        );
        view! {
            <form method="post" action=Url::StaffRefund.path() class="refund-form" novalidate>
                {csrf_input(csrf.to_owned())}
                <input type="hidden" name=RefundForm::PATIENT value=patient.to_owned()/>
                <input type="hidden" name=RefundForm::PAYMENT value=p.id.clone()/>
                {error.map(|e| view! {
                    <p class="error-message" id=error_id.clone() role="alert">
                        <span class="visually-hidden">{tr.t("error-prefix")} " "</span>{e}
                    </p>
                })}
                <div class="field">
                    <label for=amount_id.clone()>{tr.t("staff-refund-amount")}</label>
                    <input id=amount_id.clone() name=RefundForm::AMOUNT type="text" inputmode="decimal" size="10"
                        value=p.form.amount.clone()
                        aria-invalid=has_error.then_some("true")
                        aria-describedby=has_error.then(|| error_id.clone())/>
                </div>
                <div class="field">
                    <label for=reason_id.clone()>{tr.t("staff-refund-reason")}</label>
                    <select id=reason_id.clone() name=RefundForm::REASON>{options}</select>
                </div>
                <button type="submit" class="button" aria-label=label>{tr.t("staff-refund-submit")}</button>
            </form>
        }
    });
    view! {
        <section class="payment" aria-labelledby=heading_id.clone()>
            <h2 id=heading_id.clone()>{tr.ta("staff-payment-heading", &[("date", &p.date), ("amount", &p.amount)])}</h2>
            {p.disputed.then(|| view! { <p class="banner" role="status">{tr.t("staff-payment-disputed")}</p> })}
            <dl class="receipt">
                <dt>{tr.t("staff-payment-method")}</dt>
                <dd>{p.method.clone()} {account.map(|a| view! { " — " {a} })}</dd>
                <dt>{tr.t("staff-payment-status")}</dt>
                <dd class="payment-status">{status}</dd>
                <dt>{tr.t("staff-payment-refunds")}</dt>
                {refunds}
                <dt>{tr.t("staff-payment-left")}</dt>
                <dd class="payment-left">{p.left.clone()}</dd>
            </dl>
            {form}
        </section>
    }
    .into_any()
}

/// A patient's payments for a practice admin: each with its refunds and, where it can still be
/// refunded, a form (amount defaulting to what is left).
pub fn payments(meta: PageMeta, vm: StaffPaymentsVm) -> String {
    let tr = Tr::new(meta.lang);
    let list = if vm.payments.is_empty() {
        view! { <p>{tr.t("staff-payments-none")}</p> }.into_any()
    } else {
        vm.payments
            .clone()
            .into_iter()
            .map(|p| staff_payment(tr, &vm.csrf, &vm.patient_id, &vm.reasons, p))
            .collect::<Vec<_>>()
            .into_any()
    };
    let body = view! {
        <h1>{tr.t("staff-payments-title")}</h1>
        <p class="lead">{tr.ta("staff-payments-lead", &[("patient", &vm.patient_name), ("practice", &vm.practice)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {(!vm.plans.is_empty()).then(|| view! {
            <h2>{tr.t("staff-plans-heading")}</h2>
            <ul class="staff-plans">
                {vm.plans.iter().map(|p| view! { <li>{p.clone()}</li> }).collect::<Vec<_>>()}
            </ul>
        })}
        {list}
        <p><a href=Url::Staff.path()>{tr.t("staff-payments-back")}</a></p>
    };
    document_portal(&meta, tr.t("staff-payments-title"), body.into_any())
}

pub fn home(meta: PageMeta, vm: StaffHomeVm) -> String {
    let tr = Tr::new(meta.lang);
    let roles = vm
        .roles
        .iter()
        .map(|r| view! { <li>{r.clone()}</li> })
        .collect::<Vec<_>>();
    let results = vm.results.clone().map(|rows| {
        if rows.is_empty() {
            view! { <p role="status">{tr.t("staff-search-none")}</p> }.into_any()
        } else {
            let items = rows
                .into_iter()
                .map(|r| patient_row(tr, &vm.csrf, r))
                .collect::<Vec<_>>();
            view! {
                <h3>{tr.t("staff-search-results")}</h3>
                <ul class="results" role="status">{items}</ul>
            }
            .into_any()
        }
    });
    let search = if vm.can_search {
        view! {
            <section aria-labelledby="search-heading">
                <h2 id="search-heading">{tr.t("staff-search-title")}</h2>
                {error_summary(tr, vm.search_error.clone(), None)}
                <form method="post" action=Url::StaffSearch.path() novalidate>
                    {csrf_input(vm.csrf.clone())}
                    <div class="field">
                        <label for="last-name">{tr.t("staff-search-last-name")}</label>
                        <input id="last-name" name=SearchForm::LAST_NAME type="text" autocomplete="off"/>
                    </div>
                    <div class="field">
                        <label for=SearchForm::DOB>{tr.t("staff-search-dob")}</label>
                        <input id=SearchForm::DOB name=SearchForm::DOB type="text" autocomplete="off"/>
                    </div>
                    <div class="field">
                        <label for=SearchForm::ACCOUNT>{tr.t("staff-search-account")}</label>
                        <input id=SearchForm::ACCOUNT name=SearchForm::ACCOUNT type="text" autocomplete="off"/>
                    </div>
                    <div class="field">
                        <label for=SearchForm::PHONE>{tr.t("staff-search-phone")}</label>
                        <p class="hint" id="phone-hint">{tr.t("staff-search-phone-hint")}</p>
                        <input id=SearchForm::PHONE name=SearchForm::PHONE type="tel" autocomplete="off" aria-describedby="phone-hint"/>
                    </div>
                    <button type="submit" class="button">{tr.t("staff-search-button")}</button>
                </form>
                {results}
            </section>
        }
        .into_any()
    } else {
        view! { <p>{tr.t("staff-search-denied")}</p> }.into_any()
    };
    let emergency = vm
        .emergency
        .iter()
        .map(|e| view! { <p class="banner" role="status">{e.clone()}</p> })
        .collect::<Vec<_>>();
    let break_glass = vm.break_glass.clone().map(|bg| {
        let options = bg.practices.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect::<Vec<_>>();
        view! {
            <section aria-labelledby="bg-heading">
                <h2 id="bg-heading">{tr.t("staff-bg-title")}</h2>
                <p>{tr.t("staff-bg-lead")}</p>
                {error_summary(tr, bg.error.clone(), None)}
                <form method="post" action=Url::StaffBreakGlass.path() novalidate>
                    {csrf_input(vm.csrf.clone())}
                    <div class="field">
                        <label for="bg-practice">{tr.t("staff-bg-practice")}</label>
                        <select id="bg-practice" name=BreakGlassForm::PRACTICE>{options}</select>
                    </div>
                    <div class="field">
                        <label for="bg-role">{tr.t("staff-bg-role")}</label>
                        <select id="bg-role" name=BreakGlassForm::ROLE>
                            <option value="support-agent">{tr.t("role-support-agent")}</option>
                            <option value="practice-admin">{tr.t("role-practice-admin")}</option>
                        </select>
                    </div>
                    <div class="field">
                        <label for="bg-minutes">{tr.t("staff-bg-minutes")}</label>
                        <input id="bg-minutes" name=BreakGlassForm::MINUTES type="text" inputmode="numeric" size="4" value="60"/>
                    </div>
                    <div class="field">
                        <label for="bg-reason">{tr.t("staff-bg-reason")}</label>
                        <textarea id="bg-reason" name=BreakGlassForm::REASON rows="3" cols="50"></textarea>
                    </div>
                    <button type="submit" class="button">{tr.t("staff-bg-submit")}</button>
                </form>
            </section>
        }
    });
    let body = view! {
        <h1>{tr.t("staff-home-title")}</h1>
        {emergency}
        <p class="lead">{tr.ta("staff-signed-in-as", &[("email", &vm.email)])}</p>
        {vm.notice.clone().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        {vm.invite_error.clone().map(invite_error_box)}
        <h2>{tr.t("staff-your-roles")}</h2>
        <ul>{roles}</ul>
        {vm.activity.as_ref().map(|days| view! {
            <section aria-labelledby="activity-heading">
                <h2 id="activity-heading">{tr.t("activity-title")}</h2>
                {crate::pictures::activity_chart(tr, days)}
            </section>
        })}
        {search}
        {vm.audit_log.then(|| view! { <p><a href=Url::StaffAudit.path()>{tr.t("staff-audit-link")}</a></p> })}
        {vm.alerts.then(|| view! { <p><a href=Url::StaffAlerts.path()>{tr.t("alerts-home-link")}</a></p> })}
        {vm.messages.then(|| view! { <p><a href=Url::StaffMessages.path()>{tr.t("messages-home-link")}</a></p> })}
        {vm.messaging.then(|| view! { <p><a href=Url::StaffMessaging.path()>{tr.t("messaging-title")}</a></p> })}
        {vm.act_on_behalf.then(|| view! { <p><a href=Url::StaffActOnBehalf.path()>{tr.t("act-on-behalf-title")}</a></p> })}
        {vm.act_on_behalf.then(|| view! { <p><a href=Url::StaffApiKeys.path()>{tr.t("apikeys-link")}</a></p> })}
        {vm.act_on_behalf.then(|| view! { <p><a href=Url::StaffImport.path()>{tr.t("import-link")}</a></p> })}
        {break_glass}
        <form method="post" action=Url::StaffSignOutEverywhere.path()>
            {csrf_input(vm.csrf.clone())}
            <button type="submit" class="link-button dark">{tr.t("staff-sign-out-everywhere")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-home-title"), body.into_any())
}

pub fn new_password(meta: PageMeta, vm: StaffMfaVm) -> String {
    let tr = Tr::new(meta.lang);
    let body = view! {
        <h1>{tr.t("staff-new-password-title")}</h1>
        <p class="lead">{tr.t("staff-new-password-lead")}</p>
        {error_summary(tr, vm.failure.clone(), None)}
        <form method="post" action=Url::StaffNewPassword.path() novalidate>
            {csrf_input(vm.csrf.clone())}
            <div class="field">
                <label for=NewPasswordForm::PASSWORD>{tr.t("staff-password")}</label>
                <p class="hint" id="password-hint">{tr.t("staff-password-hint")}</p>
                <input id=NewPasswordForm::PASSWORD name=NewPasswordForm::PASSWORD type="password" autocomplete="new-password" required aria-describedby="password-hint"/>
            </div>
            <div class="field">
                <label for="password-confirm">{tr.t("staff-password-confirm")}</label>
                <input id="password-confirm" name=NewPasswordForm::PASSWORD_CONFIRM type="password" autocomplete="new-password" required/>
            </div>
            <button type="submit" class="button">{tr.t("staff-new-password-submit")}</button>
        </form>
    };
    document_portal(&meta, tr.t("staff-new-password-title"), body.into_any())
}
