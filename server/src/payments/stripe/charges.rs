//! Off-session charges on a member's saved card (a PaymentIntent created and confirmed at once,
//! our ids in its metadata) and how Stripe's answer reads as a `ChargeOutcome`; and the window
//! listings reconciliation reads: PaymentIntents, refunds and disputes created in `[since, until)`,
//! a page at a time, oldest first.

use super::errors::{classify, decline_reason, ident};
use super::{cards, idempotent, refunds, to_payment, META_CHECKOUT, META_STATEMENTS};
use crate::payments::{
    ChargeOutcome, DeclineReason, OffSessionCharge, ProcessorDispute, ProcessorError,
    ProcessorPayment, ProcessorRefund, CURRENCY,
};
use std::collections::HashMap;
use std::future::Future;
use stripe::{ApiErrors, ApiErrorsCode, ApiErrorsType, StripeError, StripeRequest};
use stripe_core::dispute::ListDispute;
use stripe_core::payment_intent::{
    CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, CreatePaymentIntentOffSession,
    ListPaymentIntent,
};
use stripe_core::refund::ListRefund;
use stripe_core::{PaymentIntent, PaymentIntentStatus};
use stripe_payment::payment_method::RetrievePaymentMethod;
use stripe_types::{Currency, List, RangeBoundsTs, RangeQueryTs};

/// Objects per page when listing a window (Stripe's maximum).
pub const PAGE_SIZE: i64 = 100;
/// Pages read before giving up on a window (10,000 objects): a practice's day or week is far
/// below it, and a server that kept saying "more" must not hold reconciliation forever.
pub const MAX_PAGES: usize = 100;

/// The PaymentIntent Stripe should create and confirm for `req`: the amount in cents, the
/// member's customer and saved card, off-session, and our ids in metadata (the keys hosted
/// checkouts use, so events and reconciliation read both alike). Nothing about the patient: no
/// description, no receipt email, no customer details. The same request always makes the same
/// parameters (what Stripe checks an idempotency key's retry against).
pub fn charge_params(req: &OffSessionCharge) -> Result<CreatePaymentIntent, ProcessorError> {
    if !req.amount.is_positive() {
        return Err(ProcessorError::Rejected(
            "charge amount must be positive".into(),
        ));
    }
    let currency: Currency = CURRENCY
        .parse()
        .map_err(|_| ProcessorError::Rejected("unknown currency".into()))?;
    let metadata: HashMap<String, String> = HashMap::from([
        (
            META_CHECKOUT.to_owned(),
            req.checkout_ref.as_str().to_owned(),
        ),
        (META_STATEMENTS.to_owned(), req.statement_ref.clone()),
    ]);
    // This API version turns on automatic payment methods when no type is named, and then
    // refuses to confirm without a `return_url` (a redirect-based method might need one) even
    // for a card. Nobody is there to return, so redirects are ruled out instead.
    let mut automatic = CreatePaymentIntentAutomaticPaymentMethods::new(true);
    automatic.allow_redirects =
        Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
    Ok(CreatePaymentIntent::new(req.amount.cents(), currency)
        .customer(req.customer.as_str())
        .payment_method(req.card.as_str())
        .off_session(CreatePaymentIntentOffSession::Bool(true))
        .confirm(true)
        .automatic_payment_methods(automatic)
        .metadata(metadata)
        // Brand and last four come from the charge, as when a payment is retrieved.
        .expand(vec!["latest_charge".to_owned()]))
}

/// Charges the saved card: the card is first seen to be the customer's (one on no customer, or
/// on another's, is not this member's to charge, whatever Stripe would allow), then the
/// PaymentIntent is created under our idempotency key, so a retry after a lost answer gets
/// Stripe's first answer again and never a second charge.
pub(super) async fn charge_saved_card(
    client: &stripe::Client,
    req: &OffSessionCharge,
    idempotency_key: &str,
) -> Result<ChargeOutcome, ProcessorError> {
    if req.customer.is_empty() || req.card.is_empty() {
        return Err(ProcessorError::NotFound);
    }
    let params = charge_params(req)?;
    let strategy = idempotent(idempotency_key)?;
    let pm = RetrievePaymentMethod::new(req.card.as_str())
        .send(client)
        .await
        .map_err(cards::failed("retrieve payment method"))?;
    if cards::owner(&pm) != Some(req.customer.as_str()) {
        return Err(ProcessorError::NotFound);
    }
    match params
        .customize()
        .request_strategy(strategy)
        .send(client)
        .await
    {
        Ok(intent) => outcome(&intent),
        Err(e) => refusal(e),
    }
}

/// What a PaymentIntent Stripe created and confirmed came to.
fn outcome(pi: &PaymentIntent) -> Result<ChargeOutcome, ProcessorError> {
    let payment = Some(pi.id.as_str().to_owned());
    match &pi.status {
        PaymentIntentStatus::Succeeded | PaymentIntentStatus::Processing => {
            Ok(ChargeOutcome::Paid(to_payment(pi)))
        }
        PaymentIntentStatus::RequiresAction => {
            Ok(ChargeOutcome::AuthenticationRequired { payment })
        }
        // The attempt failed; its error says why (Stripe usually answers 402 instead).
        PaymentIntentStatus::RequiresPaymentMethod => Ok(match pi.last_payment_error.as_deref() {
            Some(err) if wants_authentication(err) => {
                ChargeOutcome::AuthenticationRequired { payment }
            }
            err => ChargeOutcome::Declined {
                payment,
                reason: err.map_or(DeclineReason::Generic, decline_reason),
            },
        }),
        // Given up at once: nothing was taken and nothing will be.
        PaymentIntentStatus::Canceled => Ok(ChargeOutcome::Declined {
            payment,
            reason: DeclineReason::Generic,
        }),
        // Not what a confirmed, automatically captured intent becomes: say so rather than guess
        // whether money moved.
        other => Err(ProcessorError::Rejected(format!(
            "Stripe create payment intent: {} left {}",
            ident(pi.id.as_str()),
            ident(other.as_str())
        ))),
    }
}

/// The card's bank wants the cardholder present (3-D Secure).
fn wants_authentication(err: &ApiErrors) -> bool {
    err.code == Some(ApiErrorsCode::AuthenticationRequired)
        || err.decline_code.as_deref() == Some("authentication_required")
}

/// A refused charge: a card error (402) is an outcome, the intent Stripe left in its
/// `payment_intent`; anything else is sorted as every other call is (`resource_missing` for the
/// card or customer is "not found", 429 and 5xx "unavailable").
fn refusal(e: StripeError) -> Result<ChargeOutcome, ProcessorError> {
    match &e {
        StripeError::Stripe(err, status)
            if err.type_ == ApiErrorsType::CardError
                && (400..500).contains(status)
                && *status != 429 =>
        {
            let payment = err
                .payment_intent
                .as_ref()
                .map(|pi| pi.id.as_str().to_owned());
            Ok(if wants_authentication(err) {
                ChargeOutcome::AuthenticationRequired { payment }
            } else {
                ChargeOutcome::Declined {
                    payment,
                    reason: decline_reason(err),
                }
            })
        }
        _ => Err(classify(e, "create payment intent")),
    }
}

/// `created[gte]=since&created[lt]=until`.
fn window(since: i64, until: i64) -> RangeQueryTs {
    RangeQueryTs::Bounds(RangeBoundsTs {
        gte: Some(since),
        lt: Some(until),
        ..RangeBoundsTs::default()
    })
}

/// The first page of PaymentIntents created in the window, their charges expanded; `after` for
/// the next.
pub fn payments_page(since: i64, until: i64, after: Option<&str>) -> ListPaymentIntent {
    let list = ListPaymentIntent::new()
        .created(window(since, until))
        .limit(PAGE_SIZE)
        .expand(vec!["data.latest_charge".to_owned()]);
    match after {
        Some(last) => list.starting_after(last),
        None => list,
    }
}

/// The first page of refunds created in the window, of any payment; `after` for the next.
pub fn refunds_page(since: i64, until: i64, after: Option<&str>) -> ListRefund {
    let list = ListRefund::new()
        .created(window(since, until))
        .limit(PAGE_SIZE);
    match after {
        Some(last) => list.starting_after(last),
        None => list,
    }
}

/// The first page of disputes created in the window; `after` for the next.
pub fn disputes_page(since: i64, until: i64, after: Option<&str>) -> ListDispute {
    let list = ListDispute::new()
        .created(window(since, until))
        .limit(PAGE_SIZE);
    match after {
        Some(last) => list.starting_after(last),
        None => list,
    }
}

/// Every object of a list, following `has_more` with `starting_after` the last id, at most
/// `MAX_PAGES` pages; in Stripe's order (newest first).
async fn all_pages<T, F, Fut>(
    call: &str,
    mut page: F,
    id: impl Fn(&T) -> String,
) -> Result<Vec<T>, ProcessorError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<List<T>, StripeError>>,
{
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let list = page(after.take()).await.map_err(|e| classify(e, call))?;
        let last = list.data.last().map(&id);
        let more = list.has_more;
        out.extend(list.data);
        match last {
            Some(last) if more => after = Some(last),
            _ => return Ok(out),
        }
    }
    Err(ProcessorError::Unavailable(format!(
        "Stripe {call}: more than {MAX_PAGES} pages of {PAGE_SIZE}; narrow the window"
    )))
}

/// Stripe lists newest first; the trait promises oldest first. Reversed, then ordered by
/// creation (stable, so objects of one second keep Stripe's order reversed).
fn oldest_first<T>(mut out: Vec<T>, created: impl Fn(&T) -> i64) -> Vec<T> {
    out.reverse();
    out.sort_by_key(|o| created(o));
    out
}

pub(super) async fn list_payments(
    client: &stripe::Client,
    since: i64,
    until: i64,
) -> Result<Vec<ProcessorPayment>, ProcessorError> {
    if since >= until {
        return Ok(Vec::new());
    }
    let intents = all_pages(
        "list payment intents",
        |after| {
            let list = payments_page(since, until, after.as_deref());
            async move { list.send(client).await }
        },
        |pi: &PaymentIntent| pi.id.as_str().to_owned(),
    )
    .await?;
    let out = intents.iter().map(to_payment).collect();
    Ok(oldest_first(out, |p: &ProcessorPayment| p.created))
}

pub(super) async fn list_refunds_between(
    client: &stripe::Client,
    since: i64,
    until: i64,
) -> Result<Vec<ProcessorRefund>, ProcessorError> {
    if since >= until {
        return Ok(Vec::new());
    }
    let found = all_pages(
        "list refunds",
        |after| {
            let list = refunds_page(since, until, after.as_deref());
            async move { list.send(client).await }
        },
        |r: &stripe_core::Refund| r.id.as_str().to_owned(),
    )
    .await?;
    let out = found
        .iter()
        .map(|r| {
            // A refund of a bare charge (never one of ours) names no PaymentIntent: its charge
            // stands in, which matches none of our payments.
            let charge = r
                .charge
                .as_ref()
                .map_or_else(String::new, |c| c.id().as_str().to_owned());
            refunds::to_refund(r, &charge)
        })
        .collect();
    Ok(oldest_first(out, |r: &ProcessorRefund| r.created))
}

pub(super) async fn list_disputes(
    client: &stripe::Client,
    since: i64,
    until: i64,
) -> Result<Vec<ProcessorDispute>, ProcessorError> {
    if since >= until {
        return Ok(Vec::new());
    }
    let found = all_pages(
        "list disputes",
        |after| {
            let list = disputes_page(since, until, after.as_deref());
            async move { list.send(client).await }
        },
        |d: &stripe_core::Dispute| d.id.as_str().to_owned(),
    )
    .await?;
    let out = found.iter().map(refunds::to_dispute).collect();
    Ok(oldest_first(out, |d: &ProcessorDispute| d.created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CheckoutId;
    use crate::money::Money;

    fn pairs(encoded: Option<String>) -> Vec<(String, String)> {
        let mut v = serde_urlencoded::from_str::<Vec<(String, String)>>(&encoded.expect("encoded"))
            .expect("form");
        v.sort();
        v
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    fn charge() -> OffSessionCharge {
        OffSessionCharge {
            customer: "cus_test_1".into(),
            card: "pm_test_1".into(),
            amount: Money::from_cents(2_575),
            checkout_ref: CheckoutId::generate(),
            statement_ref: "stm_a,stm_b".into(),
        }
    }

    #[test]
    fn an_off_session_charge_sends_the_card_the_amount_and_our_ids_only() {
        let req = charge();
        let built = charge_params(&req).expect("params").build();
        assert_eq!(built.path, "/payment_intents");
        let sent = pairs(built.body);
        assert_eq!(
            sent,
            [
                pair("amount", "2575"),
                pair("automatic_payment_methods[allow_redirects]", "never"),
                pair("automatic_payment_methods[enabled]", "true"),
                pair("confirm", "true"),
                pair("currency", "usd"),
                pair("customer", "cus_test_1"),
                pair("expand[0]", "latest_charge"),
                pair("metadata[checkout]", req.checkout_ref.as_str()),
                pair("metadata[statements]", "stm_a,stm_b"),
                pair("off_session", "true"),
                pair("payment_method", "pm_test_1"),
            ]
        );
        assert_eq!(
            pairs(charge_params(&req).expect("params").build().body),
            sent,
            "the same request, the same parameters"
        );
        let mut zero = charge();
        zero.amount = Money::ZERO;
        assert!(matches!(
            charge_params(&zero),
            Err(ProcessorError::Rejected(_))
        ));
    }

    #[test]
    fn windows_are_listed_a_full_page_at_a_time_from_since_to_before_until() {
        let first = payments_page(1_000, 2_000, None).build();
        assert_eq!(first.path, "/payment_intents");
        assert!(first.body.is_none());
        assert_eq!(
            pairs(first.query),
            [
                pair("created[gte]", "1000"),
                pair("created[lt]", "2000"),
                pair("expand[0]", "data.latest_charge"),
                pair("limit", "100"),
            ]
        );
        let next = refunds_page(1_000, 2_000, Some("re_last")).build();
        assert_eq!(next.path, "/refunds");
        assert_eq!(
            pairs(next.query),
            [
                pair("created[gte]", "1000"),
                pair("created[lt]", "2000"),
                pair("limit", "100"),
                pair("starting_after", "re_last"),
            ]
        );
        let disputes = disputes_page(1_000, 2_000, Some("dp_last")).build();
        assert_eq!(disputes.path, "/disputes");
        assert_eq!(
            pairs(disputes.query),
            [
                pair("created[gte]", "1000"),
                pair("created[lt]", "2000"),
                pair("limit", "100"),
                pair("starting_after", "dp_last"),
            ]
        );
    }

    #[test]
    fn newest_first_becomes_oldest_first() {
        let listed = vec![("c", 30), ("b2", 20), ("b1", 20), ("a", 10)];
        let out = oldest_first(listed, |(_, created)| *created);
        assert_eq!(out, [("a", 10), ("b1", 20), ("b2", 20), ("c", 30)]);
    }
}
