//! After the pay form: the sandbox processor's card page, declined or cancelled, confirming,
//! and the receipt.

use super::layout::{document, Chrome};
use super::statement::pay_or_paid;
use super::{csrf_input, described_by, error_summary, field_message, invalid};
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

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
    document(&meta, Chrome::Portal, title, body.into_any())
}

pub fn confirming(meta: PageMeta, vm: ConfirmingVm) -> String {
    let tr = Tr::new(meta.lang);
    // Nothing here reloads by itself (a timed refresh moves the page under a screen reader and
    // fails WCAG 2.2.1): the server already waited for the booking, and the payer asks again.
    let (title, body) = if vm.still_waiting {
        ("confirming-title", "confirming-body")
    } else {
        ("confirming-later-title", "confirming-later-body")
    };
    let back = (!vm.still_waiting).then(|| {
        view! { <p><a href=vm.back_path.clone()>{tr.t("confirming-later-back")}</a></p> }
    });
    let body = view! {
        <h1>{tr.t(title)}</h1>
        <p class="lead" role="status">{tr.t(body)}</p>
        {back}
        <p><a class="button" href=vm.check_path.clone()>{tr.t("confirming-refresh")}</a></p>
    };
    document(&meta, Chrome::Portal, tr.t(title), body.into_any())
}

/// What happened to a payment after it was made: a bank debit still processing or failed, and
/// the refunds made on it.
pub(crate) fn after_life(tr: Tr, status: PaymentStatusVm, refunds: &[RefundLineVm]) -> AnyView {
    let status = match status {
        PaymentStatusVm::Succeeded => None,
        PaymentStatusVm::Processing => Some(
            view! {
                <p class="notice payment-processing" role="status">{tr.t("payment-processing")}</p>
            }
            .into_any(),
        ),
        PaymentStatusVm::Failed => Some(
            view! {
                <p class="banner payment-failed" role="alert">{tr.t("payment-failed")}</p>
            }
            .into_any(),
        ),
    };
    let refunds = (!refunds.is_empty()).then(|| {
        let items = refunds
            .iter()
            .map(|r| view! { <li>{tr.ta("payment-refund-line", &[("date", &r.date), ("amount", &r.amount)])}</li> })
            .collect::<Vec<_>>();
        view! {
            <h2>{tr.t("payment-refunds")}</h2>
            <ul class="refunds">{items}</ul>
        }
    });
    view! { {status} {refunds} }.into_any()
}

pub fn receipt(meta: PageMeta, vm: ReceiptVm) -> String {
    let tr = Tr::new(meta.lang);
    let card = vm.card.as_ref().map(|c| {
        tr.ta(
            "receipt-card-value",
            &[("brand", &c.brand), ("last4", &c.last4)],
        )
    });
    let body = view! {
        <h1>{tr.t("receipt-title")}</h1>
        <p class="lead" role="status">{tr.ta("receipt-thanks", &[("practice", &vm.practice_name)])}</p>
        <dl class="receipt">
            <dt>{tr.t("receipt-amount")}</dt><dd class="receipt-amount">{vm.amount.clone()}</dd>
            <dt>{tr.t("receipt-date")}</dt><dd>{vm.date.clone()}</dd>
            {card.map(|card| view! { <dt>{tr.t("receipt-card")}</dt><dd>{card}</dd> })}
            <dt>{tr.t("receipt-reference")}</dt><dd><code>{vm.reference.clone()}</code></dd>
            <dt>{tr.t("receipt-new-balance")}</dt><dd class="receipt-balance">{vm.new_balance.clone()}</dd>
        </dl>
        {after_life(tr, vm.status, &vm.refunds)}
        {vm.taken_by.clone().map(|staff| view! {
            <p class="taken-by">{tr.ta("receipt-taken-by", &[("staff", staff.as_str())])}</p>
        })}
        <p><a href=Url::ReceiptPdf(&vm.reference).path()>{tr.t("pdf-receipt-link")}</a></p>
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
        body.into_any(),
    )
}

pub fn sandbox_checkout(meta: PageMeta, vm: SandboxCheckoutVm, action: String) -> String {
    let tr = Tr::new(meta.lang);
    let body = if vm.open {
        let err = vm.error.clone();
        view! {
            {if vm.setup {
                view! {
                    <h1>{tr.ta("sandbox-save-to", &[("merchant", &vm.merchant)])}</h1>
                    <p>{tr.t("sandbox-save-lead")}</p>
                }
                .into_any()
            } else {
                view! {
                    <h1>{tr.ta("sandbox-pay-to", &[("merchant", &vm.merchant)])}</h1>
                    <p class="balance-card"><span class="balance-label">{tr.t("sandbox-amount")}</span> " "
                        <strong class="balance-amount">{vm.amount.clone()}</strong></p>
                }
                .into_any()
            }}
            {error_summary(tr, None, vm.error.clone())}
            {vm.bank_debit.then(|| view! { <h2>{tr.t("sandbox-card-title")}</h2> })}
            <form method="post" action=action.clone() novalidate>
                {csrf_input(vm.csrf.clone())}
                <input type="hidden" name="method" value="card"/>
                <div class="field">
                    <label for="card-number">{tr.t("sandbox-card-number")}</label>
                    <p class="hint" id="card-number-hint">{tr.t(if vm.setup { "sandbox-save-hint" } else { "sandbox-card-hint" })}</p>
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
                <button type="submit" class="button">
                    {tr.t(if vm.setup { "sandbox-save" } else { "sandbox-pay" })}
                </button>
            </form>
            {vm.bank_debit.then(|| view! {
                <section aria-labelledby="bank-heading">
                    <h2 id="bank-heading">{tr.t("sandbox-bank-title")}</h2>
                    <p>{tr.t("sandbox-bank-lead")}</p>
                    <form method="post" action=action.clone() novalidate>
                        {csrf_input(vm.csrf.clone())}
                        <input type="hidden" name="method" value="us_bank_account"/>
                        <p class="hint" id="routing-number-hint">{tr.t("sandbox-bank-hint")}</p>
                        <div class="field">
                            <label for="routing-number">{tr.t("sandbox-routing-number")}</label>
                            {field_message(tr, "routing-number", &err)}
                            <input id="routing-number" name="routing_number" type="text" inputmode="numeric"
                                autocomplete="off" size="11" required
                                aria-describedby=described_by("routing-number", true, &err)
                                aria-invalid=invalid("routing-number", &err)/>
                        </div>
                        <div class="field">
                            <label for="account-number">{tr.t("sandbox-account-number")}</label>
                            {field_message(tr, "account-number", &err)}
                            <input id="account-number" name="account_number" type="text" inputmode="numeric"
                                autocomplete="off" size="19" required
                                aria-describedby=described_by("account-number", false, &err)
                                aria-invalid=invalid("account-number", &err)/>
                        </div>
                        <button type="submit" class="button">{tr.t("sandbox-pay-bank")}</button>
                    </form>
                </section>
            })}
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
    document(&meta, Chrome::Sandbox, tr.t("sandbox-title"), body)
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
}
