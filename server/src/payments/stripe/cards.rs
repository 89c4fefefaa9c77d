//! Saved cards at Stripe: one Customer per member carrying only our opaque member ref, Checkout
//! in setup mode to save a card on it, the customer's cards read as brand, last four and expiry,
//! and a card removed (detached) only after it is seen to be that customer's.

use super::errors::classify;
use super::CHECKOUT_LIFETIME_SECS;
use crate::payments::{ProcessorError, SavedCard, SetupRequest, CURRENCY};
use std::collections::HashMap;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAllowedPaymentMethodTypes,
};
use stripe_checkout::CheckoutSessionMode;
use stripe_core::customer::{
    CreateCustomer, ListPaymentMethodsCustomer, ListPaymentMethodsCustomerType,
};
use stripe_payment::PaymentMethod;
use stripe_types::Currency;

/// The metadata key on a Customer: our member ref, and nothing else about the person.
pub const META_MEMBER: &str = "member";

/// Cards per page when listing (Stripe's maximum).
pub const PAGE_SIZE: i64 = 100;
/// Pages read before giving up: nobody saves thousands of cards, and a server that kept saying
/// "more" must not hold a patient's page forever.
pub const MAX_PAGES: usize = 20;

/// Stripe's limit on a metadata value.
const META_VALUE_MAX: usize = 500;

/// The Customer Stripe should create for a member: metadata with our ref only. No email, name,
/// phone, address or description: Stripe is not a business associate, and a name beside a
/// practice's charges says who is being treated where.
pub fn customer_params(member_ref: &str) -> Result<CreateCustomer, ProcessorError> {
    if member_ref.is_empty() || member_ref.len() > META_VALUE_MAX {
        return Err(ProcessorError::Rejected(
            "member ref empty or too long".into(),
        ));
    }
    Ok(CreateCustomer::new().metadata(HashMap::from([(
        META_MEMBER.to_owned(),
        member_ref.to_owned(),
    )])))
}

/// The setup-mode session for `req`: the customer, cards only, our attempt's id, the return
/// URLs and the same lifetime as a payment session, reckoned from when our attempt was
/// recorded so a retry sends the same parameters. `currency` is required in setup mode when
/// `payment_method_types` is not set (the API version has only `allowed_payment_method_types`,
/// a filter on the account's dynamic payment methods).
pub fn setup_params(req: &SetupRequest) -> Result<CreateCheckoutSession, ProcessorError> {
    if req.customer.is_empty() {
        return Err(ProcessorError::Rejected("setup names no customer".into()));
    }
    if req.setup_ref.is_empty() {
        return Err(ProcessorError::Rejected("setup ref empty".into()));
    }
    if !req.success_url.contains("{CHECKOUT_SESSION_ID}") {
        return Err(ProcessorError::Rejected(
            "success_url lacks {CHECKOUT_SESSION_ID}".into(),
        ));
    }
    let currency: Currency = CURRENCY
        .parse()
        .map_err(|_| ProcessorError::Rejected("unknown currency".into()))?;
    Ok(CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Setup)
        .customer(req.customer.as_str())
        .currency(currency)
        // Cards only (Apple Pay and Google Pay save cards too): a saved bank account is not
        // something the portal knows how to show or pay with.
        .allowed_payment_method_types(vec![CreateCheckoutSessionAllowedPaymentMethodTypes::Card])
        .client_reference_id(req.setup_ref.as_str())
        .success_url(req.success_url.as_str())
        .cancel_url(req.cancel_url.as_str())
        .expires_at(req.created_at + CHECKOUT_LIFETIME_SECS))
}

/// The first page of the customer's cards; `after` for the next.
pub fn list_params(customer: &str, after: Option<&str>) -> ListPaymentMethodsCustomer {
    let list = ListPaymentMethodsCustomer::new(customer)
        .type_(ListPaymentMethodsCustomerType::Card)
        .limit(PAGE_SIZE);
    match after {
        Some(last) => list.starting_after(last),
        None => list,
    }
}

/// A card payment method as ours; `None` for one without card details or with an expiry no
/// card has (shown to nobody rather than shown wrong).
pub fn to_card(pm: &PaymentMethod) -> Option<SavedCard> {
    let card = pm.card.as_ref()?;
    let exp_month = u8::try_from(card.exp_month)
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let exp_year = i32::try_from(card.exp_year).ok()?;
    Some(SavedCard {
        id: pm.id.as_str().to_owned(),
        brand: brand_name(&card.brand),
        last4: card
            .last4
            .chars()
            .filter(char::is_ascii_digit)
            .take(4)
            .collect(),
        exp_month,
        exp_year,
    })
}

/// Whose the payment method is: the customer's id, whether Stripe sent it or the object.
pub fn owner(pm: &PaymentMethod) -> Option<&str> {
    pm.customer.as_ref().map(|c| c.id().as_str())
}

/// A failed call on saved cards, sorted as every other call is.
pub fn failed(call: &'static str) -> impl Fn(stripe::StripeError) -> ProcessorError {
    move |e| classify(e, call)
}

/// A card brand as people read it: Stripe sends its code (`visa`, `amex`), the sandbox and our
/// pages say "Visa", "American Express". An unknown code is shown as sent (letters and digits).
pub(crate) fn brand_name(code: &str) -> String {
    match code {
        "amex" => "American Express",
        "cartes_bancaires" => "Cartes Bancaires",
        "diners" => "Diners Club",
        "discover" => "Discover",
        "eftpos_au" => "eftpos Australia",
        "interac" => "Interac",
        "jcb" => "JCB",
        "link" => "Link",
        "mastercard" => "Mastercard",
        "unionpay" => "UnionPay",
        "visa" => "Visa",
        "unknown" | "" => "Card",
        other => return super::errors::ident(other),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_read_as_people_know_them() {
        assert_eq!(brand_name("visa"), "Visa");
        assert_eq!(brand_name("amex"), "American Express");
        assert_eq!(brand_name(""), "Card");
        assert_eq!(brand_name("new<brand>"), "newbrand");
    }
    use stripe::StripeRequest;

    fn form(body: Option<String>) -> Vec<(String, String)> {
        let mut v = serde_urlencoded::from_str::<Vec<(String, String)>>(&body.expect("encoded"))
            .expect("form");
        v.sort();
        v
    }

    fn setup() -> SetupRequest {
        SetupRequest {
            customer: "cus_test_1".into(),
            setup_ref: "set_abc".into(),
            created_at: 2_000,
            success_url: "https://pay.example/cards/return?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://pay.example/cards".into(),
        }
    }

    #[test]
    fn a_customer_carries_our_member_ref_and_nothing_else() {
        let built = customer_params("mem_123").expect("params").build();
        assert_eq!(built.path, "/customers");
        assert_eq!(
            form(built.body),
            [("metadata[member]".to_owned(), "mem_123".to_owned())]
        );
        assert!(matches!(
            customer_params(""),
            Err(ProcessorError::Rejected(_))
        ));
        assert!(matches!(
            customer_params(&"x".repeat(501)),
            Err(ProcessorError::Rejected(_))
        ));
    }

    #[test]
    fn a_setup_session_saves_a_card_on_the_customer_and_moves_no_money() {
        let req = setup();
        let built = setup_params(&req).expect("params").build();
        assert_eq!(built.path, "/checkout/sessions");
        let sent = form(built.body);
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            sent,
            [
                pair("allowed_payment_method_types[0]", "card"),
                pair("cancel_url", &req.cancel_url),
                pair("client_reference_id", "set_abc"),
                pair("currency", "usd"),
                pair("customer", "cus_test_1"),
                pair("expires_at", &(2_000 + CHECKOUT_LIFETIME_SECS).to_string()),
                pair("mode", "setup"),
                pair("success_url", &req.success_url),
            ]
        );
        for bad in [
            SetupRequest {
                customer: String::new(),
                ..setup()
            },
            SetupRequest {
                setup_ref: String::new(),
                ..setup()
            },
            SetupRequest {
                success_url: "https://pay.example/cards/return".into(),
                ..setup()
            },
        ] {
            assert!(matches!(
                setup_params(&bad),
                Err(ProcessorError::Rejected(_))
            ));
        }
    }

    #[test]
    fn cards_are_listed_a_page_of_cards_at_a_time() {
        let first = list_params("cus_test_1", None).build();
        assert_eq!(first.path, "/customers/cus_test_1/payment_methods");
        let query = |q: Option<String>| form(q);
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            query(first.query),
            [pair("limit", "100"), pair("type", "card")]
        );
        let next = list_params("cus_test_1", Some("pm_last")).build();
        assert_eq!(next.path, "/customers/cus_test_1/payment_methods");
        assert_eq!(
            query(next.query),
            [
                pair("limit", "100"),
                pair("starting_after", "pm_last"),
                pair("type", "card")
            ]
        );
        assert!(next.body.is_none());
    }
}
