//! Stripe as the card processor, through async-stripe: Checkout Sessions in payment mode (Stripe's
//! hosted page; cards, which include Apple Pay and Google Pay, and ACH bank debits where the
//! practice takes them), the PaymentIntents behind them, refunds and disputes. Only opaque ids,
//! an amount and neutral text are sent: Stripe is not a business associate, so nothing that
//! identifies a patient or a kind of care goes there. Failures are sorted in `errors`; refund
//! and dispute objects are read in `refunds`; saved cards (a Customer per member, setup-mode
//! sessions, listing and detaching cards) in `cards`; off-session charges on a saved card and
//! the window listings reconciliation reads in `charges`.
//!
//! Fourteen endpoints only (create, retrieve and expire a Checkout Session; create, retrieve and
//! list PaymentIntents; create and list refunds; retrieve and list disputes; create a Customer
//! and list its cards; retrieve and detach a PaymentMethod), so a restricted key with "Checkout
//! Sessions: write", "PaymentIntents: write", "Refunds: write", "Disputes: read", "Customers:
//! write" and "PaymentMethods: write" is enough.

mod cards;
mod charges;
mod errors;
mod refunds;

pub use cards::{customer_params, setup_params, META_MEMBER};

pub use errors::{classify, classify_refund};
pub use refunds::{refund_params, META_REASON, META_REFUND};

use super::{
    ChargeOutcome, CheckoutRequest, CheckoutStatus, MethodKind, OffSessionCharge, PaymentProcessor,
    PaymentStatus, ProcessorCheckout, ProcessorDispute, ProcessorError, ProcessorPayment,
    ProcessorRefund, RefundRequest, SavedCard, SetupRequest, CURRENCY,
};
use crate::config::Secret;
use crate::money::Money;
use async_trait::async_trait;
use errors::{decline_reason, ident};
use std::collections::HashMap;
use std::time::Duration;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAllowedPaymentMethodTypes,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData,
    RetrieveCheckoutSession,
};
use stripe_checkout::{
    CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus,
};
use stripe_core::dispute::RetrieveDispute;
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_core::refund::ListRefund;
use stripe_core::{PaymentIntent, PaymentIntentStatus};
use stripe_payment::payment_method::{DetachPaymentMethod, RetrievePaymentMethod};

/// Stripe's hosted Checkout page, for the portal's CSP `form-action`.
pub const CHECKOUT_ORIGIN: &str = "https://checkout.stripe.com";

/// Stripe's API, unless the settings point elsewhere (a test server).
pub const DEFAULT_API_URL: &str = "https://api.stripe.com/";

/// How long a Checkout Session stays payable. Stripe's minimum is 30 minutes from creation; the
/// extra minute keeps a request that reaches Stripe a little late (or a clock a little behind)
/// from being refused for asking for less.
pub const CHECKOUT_LIFETIME_SECS: i64 = 31 * 60;
const _: () = assert!(CHECKOUT_LIFETIME_SECS >= 30 * 60, "below Stripe's minimum");

/// No single call may hold a patient's request longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Metadata keys on the session and its PaymentIntent: our ids only, never a name.
pub const META_CHECKOUT: &str = "checkout";
pub const META_STATEMENTS: &str = "statements";

/// What the Stripe processor needs: the secret (or restricted) key and, for tests, another API
/// base URL.
#[derive(Clone, Debug)]
pub struct StripeSettings {
    pub secret_key: Secret,
    /// `None`: Stripe's own API.
    pub api_url: Option<String>,
}

pub struct StripeProcessor {
    client: stripe::Client,
    /// A test-mode key (`sk_test_…`, `rk_test_…`): Stripe moves no money, pages say so.
    test_mode: bool,
}

impl std::fmt::Debug for StripeProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the key (marked sensitive); say nothing about it.
        f.debug_struct("StripeProcessor").finish_non_exhaustive()
    }
}

impl StripeProcessor {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<StripeProcessor> {
        let mut builder = stripe::ClientBuilder::new(settings.secret_key.expose())
            .timeout(REQUEST_TIMEOUT)
            .app_info(
                "PatriotPay",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            );
        if let Some(url) = &settings.api_url {
            // The client appends `v1/…` to the base as given.
            let url = if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            };
            builder = builder.url(url);
        }
        // The builder's errors name the setting at fault, never its value.
        let client = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the Stripe client: {e}"))?;
        Ok(StripeProcessor {
            client,
            test_mode: is_test_key(settings.secret_key.expose()),
        })
    }
}

/// Stripe's test-mode keys: no money moves with them.
fn is_test_key(key: &str) -> bool {
    key.starts_with("sk_test_") || key.starts_with("rk_test_")
}

/// The session Stripe should create for `req`: one line for the amount, our ids in
/// `client_reference_id` and metadata, and nothing else about the payer.
/// The expiry is reckoned from when our checkout was recorded, so the same request always makes
/// the same parameters (what Stripe checks an idempotency key's retry against).
pub fn session_params(req: &CheckoutRequest) -> Result<CreateCheckoutSession, ProcessorError> {
    if !req.amount.is_positive() {
        return Err(ProcessorError::Rejected("amount must be positive".into()));
    }
    if !req.success_url.contains("{CHECKOUT_SESSION_ID}") {
        return Err(ProcessorError::Rejected(
            "success_url lacks {CHECKOUT_SESSION_ID}".into(),
        ));
    }
    let metadata: HashMap<String, String> = HashMap::from([
        (
            META_CHECKOUT.to_owned(),
            req.checkout_ref.as_str().to_owned(),
        ),
        (META_STATEMENTS.to_owned(), req.statement_ref.clone()),
    ]);
    // The currency type is only reachable through this field; it parses our lower-case code.
    let price = CreateCheckoutSessionLineItemsPriceData {
        currency: CURRENCY
            .parse()
            .map_err(|_| ProcessorError::Rejected("unknown currency".into()))?,
        product: None,
        product_data: Some(ProductData {
            description: (!req.merchant_name.is_empty()).then(|| req.merchant_name.clone()),
            ..ProductData::new(req.description)
        }),
        recurring: None,
        tax_behavior: None,
        unit_amount: Some(req.amount.cents()),
        unit_amount_decimal: None,
    };
    let mut line = CreateCheckoutSessionLineItems::new();
    line.price_data = Some(price);
    line.quantity = Some(1);
    // The statement descriptor stays the account's own (the practice's name, set in Stripe):
    // a suffix of ours could only add something about the bill.
    let mut intent = CreateCheckoutSessionPaymentIntentData::new();
    intent.metadata = Some(metadata.clone());
    Ok(CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .allowed_payment_method_types(allowed_methods(req.bank_debit))
        .line_items(vec![line])
        .client_reference_id(req.checkout_ref.as_str())
        .metadata(metadata)
        .payment_intent_data(intent)
        .success_url(req.success_url.as_str())
        .cancel_url(req.cancel_url.as_str())
        .expires_at(req.created_at + CHECKOUT_LIFETIME_SECS))
}

/// The ways to pay a session offers. Stripe's API version removed `payment_method_types` from
/// Checkout Sessions; `allowed_payment_method_types` filters what the account's payment method
/// settings enable. Always sent, so a practice without bank debits is never offered one because
/// the account enabled them for another, and every payment is one the portal knows how to read.
/// `card` includes Apple Pay and Google Pay (wallets that pay with a card).
fn allowed_methods(bank_debit: bool) -> Vec<CreateCheckoutSessionAllowedPaymentMethodTypes> {
    let mut methods = vec![CreateCheckoutSessionAllowedPaymentMethodTypes::Card];
    if bank_debit {
        methods.push(CreateCheckoutSessionAllowedPaymentMethodTypes::UsBankAccount);
    }
    methods
}

fn to_checkout(s: &CheckoutSession) -> Result<ProcessorCheckout, ProcessorError> {
    let status = match &s.status {
        Some(CheckoutSessionStatus::Open) => CheckoutStatus::Open,
        Some(CheckoutSessionStatus::Complete) => CheckoutStatus::Complete,
        Some(CheckoutSessionStatus::Expired) => CheckoutStatus::Expired,
        // No answer we can act on: the caller retries rather than guess.
        _ => {
            return Err(ProcessorError::Unavailable(
                "Stripe checkout session without a known status".into(),
            ))
        }
    };
    Ok(ProcessorCheckout {
        id: s.id.as_str().to_owned(),
        url: s.url.clone().unwrap_or_default(),
        status,
        paid: s.payment_status == CheckoutSessionPaymentStatus::Paid,
        amount_total: Money::from_cents(s.amount_total.unwrap_or(0)),
        client_reference_id: s.client_reference_id.clone(),
        payment_intent: s
            .payment_intent
            .as_ref()
            .map(|p| p.id().as_str().to_owned()),
    })
}

fn to_payment(p: &PaymentIntent) -> ProcessorPayment {
    // Brand and last four of the card (Apple Pay and Google Pay pay with cards too), or the
    // bank account's last four for ACH; from the latest charge, expanded in the same call.
    let details = p
        .latest_charge
        .as_ref()
        .and_then(|c| c.as_object())
        .and_then(|c| c.payment_method_details.as_ref());
    let (brand, last4, method) = match details {
        Some(d) => match (&d.card, &d.us_bank_account) {
            (Some(card), _) => (
                cards::brand_name(card.brand.as_deref().unwrap_or_default()),
                card.last4.clone().unwrap_or_default(),
                MethodKind::Card,
            ),
            (None, Some(bank)) => (
                bank.bank_name
                    .clone()
                    .unwrap_or_else(|| "bank account".to_owned()),
                bank.last4.clone().unwrap_or_default(),
                MethodKind::UsBankAccount,
            ),
            (None, None) => (ident(&d.type_), String::new(), MethodKind::Card),
        },
        None => (String::new(), String::new(), MethodKind::Card),
    };
    let status = match p.status {
        PaymentIntentStatus::Succeeded => PaymentStatus::Succeeded,
        PaymentIntentStatus::Processing => PaymentStatus::Processing,
        PaymentIntentStatus::Canceled => PaymentStatus::Canceled,
        _ => PaymentStatus::Incomplete,
    };
    ProcessorPayment {
        id: p.id.as_str().to_owned(),
        status,
        amount: Money::from_cents(p.amount),
        method,
        amount_received: Money::from_cents(p.amount_received),
        currency: p.currency.to_string(),
        card_brand: brand,
        card_last4: last4,
        created: p.created,
        last_error: p.last_payment_error.as_deref().map(decline_reason),
        checkout_ref: p.metadata.get(META_CHECKOUT).cloned(),
    }
}

/// Sends a request under our idempotency key, saved with our record before the call: a retry
/// after a crash or a lost answer gets the same object back, never a second one.
fn idempotent(key: &str) -> Result<RequestStrategy, ProcessorError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|_| ProcessorError::Rejected("idempotency key empty or too long".into()))
}

#[async_trait]
impl PaymentProcessor for StripeProcessor {
    fn is_test_mode(&self) -> bool {
        self.test_mode
    }

    fn checkout_origin(&self) -> String {
        CHECKOUT_ORIGIN.to_owned()
    }

    async fn create_checkout(
        &self,
        req: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        let params = session_params(req)?;
        // The key was saved with our checkout before this call: a retry after a crash or a lost
        // answer gets the same session back instead of a second one.
        let session = params
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| classify(e, "create checkout session"))?;
        let out = to_checkout(&session)?;
        if out.url.is_empty() {
            return Err(ProcessorError::Unavailable(
                "Stripe created a checkout session without a URL".into(),
            ));
        }
        Ok(out)
    }

    async fn retrieve_checkout(&self, id: &str) -> Result<ProcessorCheckout, ProcessorError> {
        let session = RetrieveCheckoutSession::new(id)
            .send(&self.client)
            .await
            .map_err(|e| classify(e, "retrieve checkout session"))?;
        to_checkout(&session)
    }

    async fn retrieve_payment(&self, id: &str) -> Result<ProcessorPayment, ProcessorError> {
        let intent = RetrievePaymentIntent::new(id)
            .expand(vec!["latest_charge".to_owned()])
            .send(&self.client)
            .await
            .map_err(|e| classify(e, "retrieve payment intent"))?;
        Ok(to_payment(&intent))
    }

    async fn expire_checkout(&self, id: &str) -> Result<(), ProcessorError> {
        match ExpireCheckoutSession::new(id).send(&self.client).await {
            Ok(_) => Ok(()),
            Err(e) => match classify(e, "expire checkout session") {
                // Stripe refuses to expire a session that is not open. Already expired is what
                // we asked for; complete stays `Rejected`, as the trait says.
                ProcessorError::Rejected(why) => match self.retrieve_checkout(id).await? {
                    ProcessorCheckout {
                        status: CheckoutStatus::Expired,
                        ..
                    } => Ok(()),
                    _ => Err(ProcessorError::Rejected(why)),
                },
                other => Err(other),
            },
        }
    }

    async fn create_refund(
        &self,
        req: &RefundRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorRefund, ProcessorError> {
        let params = refund_params(req)?;
        // Saved with our refund before this call, like a checkout's: a retry gets the same
        // refund back, never a second one.
        let refund = params
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify_refund)?;
        Ok(refunds::to_refund(&refund, &req.payment))
    }

    async fn list_refunds(&self, payment: &str) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..refunds::MAX_PAGES {
            let mut list = ListRefund::new()
                .payment_intent(payment)
                .limit(refunds::PAGE_SIZE);
            if let Some(last) = &after {
                list = list.starting_after(last.as_str());
            }
            let page = list
                .send(&self.client)
                .await
                .map_err(|e| classify(e, "list refunds"))?;
            out.extend(page.data.iter().map(|r| refunds::to_refund(r, payment)));
            match page.data.last() {
                Some(last) if page.has_more => after = Some(last.id.as_str().to_owned()),
                _ => {
                    // Stripe lists newest first; the trait promises oldest first.
                    out.reverse();
                    return Ok(out);
                }
            }
        }
        Err(ProcessorError::Unavailable(format!(
            "Stripe list refunds: more than {} pages",
            refunds::MAX_PAGES
        )))
    }

    async fn retrieve_dispute(&self, id: &str) -> Result<ProcessorDispute, ProcessorError> {
        let dispute = RetrieveDispute::new(id)
            .send(&self.client)
            .await
            .map_err(|e| classify(e, "retrieve dispute"))?;
        Ok(refunds::to_dispute(&dispute))
    }

    async fn create_customer(
        &self,
        member_ref: &str,
        idempotency_key: &str,
    ) -> Result<String, ProcessorError> {
        let params = customer_params(member_ref)?;
        // Saved before this call: a retry after a lost answer gets the same customer back, so a
        // member never ends up with two.
        let customer = params
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(cards::failed("create customer"))?;
        Ok(customer.id.as_str().to_owned())
    }

    async fn create_setup_checkout(
        &self,
        req: &SetupRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        let params = setup_params(req)?;
        let session = params
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(cards::failed("create setup session"))?;
        let out = to_checkout(&session)?;
        if out.url.is_empty() {
            return Err(ProcessorError::Unavailable(
                "Stripe created a setup session without a URL".into(),
            ));
        }
        Ok(out)
    }

    async fn list_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..cards::MAX_PAGES {
            let page = cards::list_params(customer, after.as_deref())
                .send(&self.client)
                .await
                .map_err(cards::failed("list cards"))?;
            for pm in &page.data {
                // Listed under the customer, so theirs; a card another customer holds would
                // be Stripe's mistake, and is not shown.
                if cards::owner(pm).is_some_and(|o| o != customer) {
                    continue;
                }
                match cards::to_card(pm) {
                    Some(card) => out.push((pm.created, card)),
                    None => tracing::warn!(
                        payment_method = %ident(pm.id.as_str()),
                        "Stripe card without readable details; not shown"
                    ),
                }
            }
            match page.data.last() {
                Some(last) if page.has_more => after = Some(last.id.as_str().to_owned()),
                _ => {
                    // Stripe lists newest first; sorted anyway (stable), as the trait promises.
                    out.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
                    return Ok(out.into_iter().map(|(_, card)| card).collect());
                }
            }
        }
        Err(ProcessorError::Unavailable(format!(
            "Stripe list cards: more than {} pages",
            cards::MAX_PAGES
        )))
    }

    async fn remove_card(&self, customer: &str, card: &str) -> Result<(), ProcessorError> {
        if customer.is_empty() || card.is_empty() {
            return Err(ProcessorError::NotFound);
        }
        // Detaching needs only the card's id, so whose it is is checked first: a member may
        // remove their own cards, never another customer's (or one on no customer).
        let pm = RetrievePaymentMethod::new(card)
            .send(&self.client)
            .await
            .map_err(cards::failed("retrieve payment method"))?;
        if cards::owner(&pm) != Some(customer) {
            return Err(ProcessorError::NotFound);
        }
        DetachPaymentMethod::new(card)
            .send(&self.client)
            .await
            .map_err(cards::failed("detach payment method"))?;
        Ok(())
    }

    async fn charge_saved_card(
        &self,
        req: &OffSessionCharge,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProcessorError> {
        charges::charge_saved_card(&self.client, req, idempotency_key).await
    }

    async fn list_payments(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorPayment>, ProcessorError> {
        charges::list_payments(&self.client, since, until).await
    }

    async fn list_refunds_between(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        charges::list_refunds_between(&self.client, since, until).await
    }

    async fn list_disputes(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ProcessorDispute>, ProcessorError> {
        charges::list_disputes(&self.client, since, until).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ids::CheckoutId;

    fn request() -> CheckoutRequest {
        CheckoutRequest {
            amount: Money::from_cents(4_321),
            checkout_ref: CheckoutId::generate(),
            statement_ref: "stm_a,stm_b".into(),
            description: super::super::NEUTRAL_DESCRIPTION,
            created_at: 1_000,
            success_url: "https://pay.example/pay/return/x?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://pay.example/pay/cancelled/x".into(),
            bank_debit: false,
            merchant_name: "Riverside Family Medicine".into(),
        }
    }

    #[test]
    fn the_session_asks_for_one_line_and_carries_only_our_ids() {
        let req = request();
        let built = session_params(&req).expect("params").build();
        assert_eq!(built.path, "/checkout/sessions");
        let body = built.body.expect("form body");
        let form: HashMap<String, String> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
                .expect("form")
                .into_iter()
                .collect();
        assert_eq!(form["line_items[0][price_data][unit_amount]"], "4321");
        assert_eq!(form["line_items[0][price_data][currency]"], "usd");
        assert_eq!(form["line_items[0][quantity]"], "1");
        assert_eq!(form["client_reference_id"], req.checkout_ref.as_str());
        assert_eq!(
            form["payment_intent_data[metadata][checkout]"],
            req.checkout_ref.as_str()
        );
        assert_eq!(
            form["expires_at"],
            (1_000 + CHECKOUT_LIFETIME_SECS).to_string()
        );
        let again = session_params(&req)
            .expect("params")
            .build()
            .body
            .expect("body");
        let pairs = |b: &str| {
            let mut v = serde_urlencoded::from_str::<Vec<(String, String)>>(b).expect("form");
            v.sort();
            v
        };
        assert_eq!(
            pairs(&again),
            pairs(&body),
            "the same request, the same parameters"
        );
        // The one description is the practice's name: who is paid, nothing about the patient.
        assert_eq!(
            form["line_items[0][price_data][product_data][description]"],
            "Riverside Family Medicine"
        );
        assert!(
            !form.keys().any(|k| k.contains("email")
                || k.contains("customer")
                || (k.contains("description")
                    && k != "line_items[0][price_data][product_data][description]")
                || k.contains("statement_descriptor")),
            "{form:?}"
        );
    }

    #[test]
    fn cards_always_and_bank_debits_where_the_practice_takes_them() {
        let methods = |bank_debit: bool| {
            let mut req = request();
            req.bank_debit = bank_debit;
            let body = session_params(&req)
                .expect("params")
                .build()
                .body
                .expect("body");
            serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
                .expect("form")
                .into_iter()
                .filter(|(k, _)| k.starts_with("allowed_payment_method_types"))
                .collect::<Vec<_>>()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            methods(false),
            [pair("allowed_payment_method_types[0]", "card")]
        );
        assert_eq!(
            methods(true),
            [
                pair("allowed_payment_method_types[0]", "card"),
                pair("allowed_payment_method_types[1]", "us_bank_account")
            ]
        );
    }

    #[test]
    fn a_session_that_cannot_work_is_refused_before_stripe_is_called() {
        let mut zero = request();
        zero.amount = Money::ZERO;
        assert!(matches!(
            session_params(&zero),
            Err(ProcessorError::Rejected(_))
        ));
        let mut no_id = request();
        no_id.success_url = "https://pay.example/pay/return/x".into();
        assert!(matches!(
            session_params(&no_id),
            Err(ProcessorError::Rejected(_))
        ));
    }

    #[test]
    fn the_processor_prints_no_key() {
        let p = StripeProcessor::new(&StripeSettings {
            secret_key: Secret::new("sk_test_printme"),
            api_url: Some("http://127.0.0.1:9".into()),
        })
        .expect("client");
        assert!(!format!("{p:?}").contains("printme"));
        assert_eq!(p.checkout_origin(), "https://checkout.stripe.com");
        let bad = StripeProcessor::new(&StripeSettings {
            secret_key: Secret::new("sk_test_with\nnewline"),
            api_url: None,
        })
        .expect_err("not a header value");
        assert!(!bad.to_string().contains("newline"), "{bad}");
    }

    #[test]
    fn test_keys_are_test_mode_and_live_keys_are_not() {
        for (key, test) in [
            ("sk_test_abc", true),
            ("rk_test_abc", true),
            ("sk_live_abc", false),
            ("rk_live_abc", false),
        ] {
            assert_eq!(super::is_test_key(key), test, "{key}");
        }
    }
}
