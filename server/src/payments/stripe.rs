//! Stripe as the card processor, through async-stripe: Checkout Sessions in payment mode (Stripe's
//! hosted page shows cards, Apple Pay, Google Pay and whatever else the account enables) and the
//! PaymentIntents behind them. Only opaque ids, an amount and neutral text are sent: Stripe is not
//! a business associate, so nothing that identifies a patient or a kind of care goes there.
//!
//! Four endpoints only (create, retrieve and expire a Checkout Session; retrieve a PaymentIntent),
//! so a restricted key with "Checkout Sessions: write" and "PaymentIntents: read" is enough.

use super::{
    CheckoutRequest, CheckoutStatus, DeclineReason, MethodKind, PaymentProcessor, PaymentStatus,
    ProcessorCheckout, ProcessorDispute, ProcessorError, ProcessorPayment, ProcessorRefund,
    RefundRequest, CURRENCY,
};
use crate::config::Secret;
use crate::money::Money;
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;
use stripe::{
    ApiErrors, ApiErrorsCode, ApiErrorsType, IdempotencyKey, RequestStrategy, StripeError,
    StripeRequest,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData,
    RetrieveCheckoutSession,
};
use stripe_checkout::{
    CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus,
};
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_core::{PaymentIntent, PaymentIntentStatus};

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
        product_data: Some(ProductData::new(req.description)),
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
        .line_items(vec![line])
        .client_reference_id(req.checkout_ref.as_str())
        .metadata(metadata)
        .payment_intent_data(intent)
        .success_url(req.success_url.as_str())
        .cancel_url(req.cancel_url.as_str())
        .expires_at(req.created_at + CHECKOUT_LIFETIME_SECS))
}

/// A processor id or code as it may appear in an error message: bounded, letters, digits and
/// underscores only (Stripe's messages themselves can echo request values, so they are not used).
fn ident(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(60)
        .collect()
}

/// Sorts a failed call into "not found", "unavailable" (try again later) and "rejected" (this
/// request will not succeed as it is). Messages name the call, the status and Stripe's codes;
/// never the key, never a request value.
pub fn classify(e: StripeError, call: &str) -> ProcessorError {
    match e {
        StripeError::Stripe(err, status) => classify_api(&err, status, call),
        StripeError::ClientError(m) => {
            ProcessorError::Unavailable(format!("Stripe {call}: network error ({})", bounded(&m)))
        }
        StripeError::Timeout => ProcessorError::Unavailable(format!("Stripe {call}: timed out")),
        StripeError::JSONDeserialize(_) => ProcessorError::Unavailable(format!(
            "Stripe {call}: unreadable answer (not a Stripe object or error)"
        )),
        StripeError::ConfigError(_) => {
            ProcessorError::Unavailable(format!("Stripe {call}: client misconfigured"))
        }
    }
}

/// The network layer's own words (e.g. "client error (Connect)"), bounded.
fn bounded(m: &str) -> String {
    m.chars().filter(|c| !c.is_control()).take(120).collect()
}

fn classify_api(err: &ApiErrors, status: u16, call: &str) -> ProcessorError {
    let code = err
        .code
        .as_ref()
        .map(|c| ident(c.as_str()))
        .unwrap_or_default();
    let kind = ident(err.type_.as_str());
    if status == 404 || err.code == Some(ApiErrorsCode::ResourceMissing) {
        return ProcessorError::NotFound;
    }
    if status == 429 || err.code == Some(ApiErrorsCode::RateLimit) {
        return ProcessorError::Unavailable(format!(
            "Stripe {call}: rate limited ({status} {code})"
        ));
    }
    if status >= 500 || err.type_ == ApiErrorsType::ApiError {
        return ProcessorError::Unavailable(format!(
            "Stripe {call}: server error ({status} {kind} {code})"
        ));
    }
    match &err.type_ {
        ApiErrorsType::CardError => {
            let decline = err.decline_code.as_deref().map(ident).unwrap_or_default();
            ProcessorError::Rejected(format!(
                "Stripe {call}: card error ({status} {code} {decline})"
            ))
        }
        ApiErrorsType::IdempotencyError => ProcessorError::Rejected(format!(
            "Stripe {call}: idempotency conflict ({status} {code}): the key was used for different parameters"
        )),
        _ => {
            // Invalid request, authentication (401) or a restricted key without the permission
            // (403): the parameter's name helps whoever reads the log, its value is never shown.
            let param = err.param.as_deref().map(ident).unwrap_or_default();
            ProcessorError::Rejected(format!(
                "Stripe {call}: refused ({status} {kind} {code} {param})"
            ))
        }
    }
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

/// The decline reason a payer may be told: insufficient funds, or a generic decline.
fn decline_reason(err: &ApiErrors) -> DeclineReason {
    let insufficient = err.decline_code.as_deref() == Some("insufficient_funds")
        || err.code == Some(ApiErrorsCode::BalanceInsufficient);
    if insufficient {
        DeclineReason::InsufficientFunds
    } else {
        DeclineReason::Generic
    }
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
                card.brand.clone().unwrap_or_default(),
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
    }
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
        let key = IdempotencyKey::new(idempotency_key)
            .map_err(|_| ProcessorError::Rejected("idempotency key empty or too long".into()))?;
        let session = params
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
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

    // TODO(stripe-refunds): replaced on the stripe-2 branch before this lands.
    async fn create_refund(
        &self,
        _req: &RefundRequest,
        _idempotency_key: &str,
    ) -> Result<ProcessorRefund, ProcessorError> {
        Err(ProcessorError::Rejected("refunds: not yet".into()))
    }

    async fn list_refunds(&self, _payment: &str) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        Err(ProcessorError::Rejected("refunds: not yet".into()))
    }

    async fn retrieve_dispute(&self, _id: &str) -> Result<ProcessorDispute, ProcessorError> {
        Err(ProcessorError::Rejected("disputes: not yet".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CheckoutId;

    fn api_error(kind: ApiErrorsType, code: Option<&str>, decline: Option<&str>) -> ApiErrors {
        ApiErrors {
            advice_code: None,
            charge: None,
            code: code.map(|c| c.parse().expect("infallible")),
            decline_code: decline.map(str::to_owned),
            doc_url: None,
            // Stripe's messages can echo what was sent, even a (masked) key: never used.
            message: Some("Invalid API Key provided: sk_live_SECRET".into()),
            network_advice_code: None,
            network_decline_code: None,
            param: Some("line_items[0][price_data][unit_amount]".into()),
            payment_intent: None,
            payment_method: None,
            payment_method_type: None,
            request_log_url: None,
            setup_intent: None,
            source: None,
            type_: kind,
        }
    }

    fn sorted(kind: ApiErrorsType, code: Option<&str>, status: u16) -> ProcessorError {
        classify(
            StripeError::Stripe(Box::new(api_error(kind, code, None)), status),
            "test call",
        )
    }

    #[test]
    fn failures_are_sorted_by_status_type_and_code() {
        use ApiErrorsType::*;
        let not_found = sorted(InvalidRequestError, Some("resource_missing"), 404);
        assert!(matches!(not_found, ProcessorError::NotFound));
        // resource_missing on another status is still "not found"; a bare 404 too.
        assert!(matches!(
            sorted(InvalidRequestError, Some("resource_missing"), 400),
            ProcessorError::NotFound
        ));
        assert!(matches!(
            sorted(InvalidRequestError, None, 404),
            ProcessorError::NotFound
        ));
        for (kind, code, status) in [
            (InvalidRequestError, Some("rate_limit"), 429),
            (InvalidRequestError, None, 429),
            (ApiError, None, 500),
            (ApiError, None, 200),
            (InvalidRequestError, None, 502),
        ] {
            let e = sorted(kind.clone(), code, status);
            assert!(
                matches!(e, ProcessorError::Unavailable(_)),
                "{kind:?} {status}: {e:?}"
            );
        }
        for (kind, code, status) in [
            (CardError, Some("card_declined"), 402),
            (IdempotencyError, None, 400),
            (IdempotencyError, Some("idempotency_key_in_use"), 409),
            (InvalidRequestError, Some("parameter_invalid_integer"), 400),
            (InvalidRequestError, None, 401),
            (InvalidRequestError, None, 403),
        ] {
            let e = sorted(kind.clone(), code, status);
            assert!(
                matches!(e, ProcessorError::Rejected(_)),
                "{kind:?} {status}: {e:?}"
            );
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
        let e = sorted(InvalidRequestError, Some("parameter_invalid_integer"), 400);
        assert!(
            e.to_string().contains("line_items0price_dataunit_amount"),
            "the parameter's name, reduced to safe characters: {e}"
        );
        for (e, word) in [
            (
                StripeError::ClientError("client error (Connect)".into()),
                "network",
            ),
            (StripeError::Timeout, "timed out"),
            (StripeError::JSONDeserialize("x".into()), "unreadable"),
        ] {
            let e = classify(e, "test call");
            assert!(
                matches!(&e, ProcessorError::Unavailable(m) if m.contains(word)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn declines_tell_insufficient_funds_apart() {
        let e = api_error(
            ApiErrorsType::CardError,
            Some("card_declined"),
            Some("insufficient_funds"),
        );
        assert_eq!(decline_reason(&e), DeclineReason::InsufficientFunds);
        let e = api_error(
            ApiErrorsType::CardError,
            Some("card_declined"),
            Some("do_not_honor"),
        );
        assert_eq!(decline_reason(&e), DeclineReason::Generic);
        let e = api_error(ApiErrorsType::CardError, Some("expired_card"), None);
        assert_eq!(decline_reason(&e), DeclineReason::Generic);
    }

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
        assert!(
            !form.keys().any(|k| k.contains("email")
                || k.contains("customer")
                || k.contains("description")
                || k.contains("statement_descriptor")),
            "{form:?}"
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
