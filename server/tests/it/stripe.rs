//! The Stripe processor against a local server that plays Stripe's API: complete Checkout Session
//! and PaymentIntent objects (the latest charge expanded) and Stripe's error bodies, shaped after
//! Stripe's published API objects. Checks what goes out (form fields with bracketed keys, the
//! `Authorization`, `Idempotency-Key` and `Stripe-Version` headers), how each failure is sorted,
//! and, through the portal, that a canary patient's payment sends Stripe nothing identifying and
//! is booked exactly once from a signed `checkout.session.completed` webhook.

use crate::canary::{holds, import_canary, NEEDLES};
use crate::common::{balance, location, post_event, post_webhook, Backend, Browser, TestApp};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use patriotpay::config::{ProcessorKind, Secret};
use patriotpay::ids::CheckoutId;
use patriotpay::money::Money;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings};
use patriotpay::payments::{
    CheckoutRequest, CheckoutStatus, DeclineReason, PaymentProcessor, ProcessorError,
    NEUTRAL_DESCRIPTION,
};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

both_backends!(a_canary_payment_through_stripe_sends_no_phi_and_books_once);

/// A restricted key: the processor must work with one.
const KEY: &str = "rk_test_51PatriotPayRestrictedKeyZ9";
/// The API version async-stripe =1.0.0-rc.10 was generated for, sent on every request (a crate
/// upgrade that changes it must be a decision: the webhook endpoint's version follows).
const STRIPE_VERSION: &str = "2026-09-30.endive";
const PREVIOUS_WEBHOOK_SECRET: &str = "whsec_previous_secret_during_a_roll";

/// One request as the fake Stripe received it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn form(&self) -> HashMap<String, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.body)
            .expect("form-encoded body")
            .into_iter()
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fake {
    sessions: HashMap<String, Value>,
    intents: HashMap<String, Value>,
    /// Idempotency key → (request body, session id), as Stripe keeps them.
    keys: HashMap<String, (String, String)>,
    seen: Vec<Seen>,
    /// Answers given instead of the real one, first in first out.
    scripted: VecDeque<(StatusCode, String)>,
    counter: u64,
}

#[derive(Clone)]
struct FakeStripe {
    state: Arc<Mutex<Fake>>,
    url: String,
}

fn next_id(f: &mut Fake, prefix: &str) -> String {
    f.counter += 1;
    format!("{prefix}_test_a1B2c3D4e5F6g7H8{:08}", f.counter)
}

fn error_body(kind: &str, code: Option<&str>, decline: Option<&str>, message: &str) -> String {
    json!({
        "error": {
            "type": kind,
            "code": code,
            "decline_code": decline,
            "doc_url": code.map(|c| format!("https://stripe.com/docs/error-codes/{c}")),
            "message": message,
            "param": null,
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_test123?t=1764500000",
        }
    })
    .to_string()
}

fn resource_missing(what: &str, id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        error_body(
            "invalid_request_error",
            Some("resource_missing"),
            None,
            &format!("No such {what}: '{id}'"),
        ),
    )
        .into_response()
}

/// A Checkout Session in payment mode, every field of the object present as Stripe sends it.
fn session_object(id: &str, form: &HashMap<String, String>, created: i64) -> Value {
    let amount: i64 = form
        .get("line_items[0][price_data][unit_amount]")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), Value::String(v.clone())))
        })
        .collect();
    let head = json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"),
        "client_secret": null,
        "collected_information": { "shipping_details": null },
        "consent": null,
        "consent_collection": null,
        "created": created,
        "currency": form.get("line_items[0][price_data][currency]"),
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null },
        "customer": null,
        "customer_creation": "if_required",
        "customer_details": null,
        "customer_email": null,
        "discounts": [],
    });
    let rest = json!({
        "expires_at": form.get("expires_at").and_then(|e| e.parse::<i64>().ok()),
        "invoice": null,
        "invoice_creation": { "enabled": false, "invoice_data": { "account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null } },
        "livemode": false,
        "locale": null,
        "metadata": metadata,
        "mode": form.get("mode"),
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": { "id": "pmc_1PatriotPayConfig", "parent": null },
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card", "link"],
        "payment_status": "unpaid",
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": form.get("success_url"),
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}#fidkdWxOYHwnPyd1blpxYHZxWjA0"),
        "wallet_options": null,
    });
    merged(head, rest)
}

/// One object from two halves (`json!` has a recursion limit, Stripe's objects are long).
fn merged(mut head: Value, rest: Value) -> Value {
    if let (Some(h), Value::Object(r)) = (head.as_object_mut(), rest) {
        h.extend(r);
    }
    head
}

/// A charge with its card details, as `latest_charge` expands to.
fn charge_object(id: &str, pi: &str, amount: i64, created: i64, succeeded: bool) -> Value {
    let head = json!({
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": if succeeded { amount } else { 0 },
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": if succeeded { Some("txn_test_1PatriotPay") } else { None },
        "billing_details": {
            "address": { "city": null, "country": "US", "line1": null, "line2": null, "postal_code": null, "state": null },
            "email": null, "name": null, "phone": null, "tax_id": null
        },
        "calculated_statement_descriptor": "PATRIOTPAY DEMO",
        "captured": succeeded,
        "created": created,
        "currency": "usd",
        "customer": null,
        "description": null,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": if succeeded { None } else { Some("card_declined") },
        "failure_message": if succeeded { None } else { Some("Your card has insufficient funds.") },
        "fraud_details": {},
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": {
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": if succeeded { "approved_by_network" } else { "declined_by_network" },
            "reason": if succeeded { None } else { Some("insufficient_funds") },
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": if succeeded { "Payment complete." } else { "The bank returned the decline code `insufficient_funds`." },
            "type": if succeeded { "authorized" } else { "issuer_declined" }
        },
    });
    let rest = json!({
        "paid": succeeded,
        "payment_intent": pi,
        "payment_method": "pm_test_1PatriotPayCard",
        "payment_method_details": {
            "card": {
                "amount_authorized": if succeeded { Some(amount) } else { None },
                "authorization_code": null,
                "brand": "visa",
                "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "extended_authorization": { "status": "disabled" },
                "fingerprint": "Xt5EWLLDS7FJjR1c",
                "funding": "credit",
                "incremental_authorization": { "status": "unavailable" },
                "installments": null,
                "last4": "4242",
                "mandate": null,
                "multicapture": { "status": "unavailable" },
                "network": "visa",
                "network_token": { "used": false },
                "network_transaction_id": "104557651805572",
                "overcapture": { "maximum_amount_capturable": amount, "status": "unavailable" },
                "regulated_status": "unregulated",
                "three_d_secure": null,
                "wallet": null
            },
            "type": "card"
        },
        "radar_options": {},
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": format!("https://pay.stripe.com/receipts/payment/{id}"),
        "refunded": false,
        "review": null,
        "shipping": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if succeeded { "succeeded" } else { "failed" },
        "transfer_data": null,
        "transfer_group": null
    });
    merged(head, rest)
}

/// A PaymentIntent, `latest_charge` expanded when asked.
fn intent_object(id: &str, charge: Value, amount: i64, created: i64, succeeded: bool) -> Value {
    let last_error = (!succeeded).then(|| {
        json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card has insufficient funds.",
            "charge": charge["id"],
        })
    });
    let head = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": if succeeded { amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_Zt7PatriotPay"),
        "confirmation_method": "automatic",
        "created": created,
        "currency": "usd",
        "customer": null,
        "description": null,
        "excluded_payment_method_types": null,
    });
    let rest = json!({
        "last_payment_error": last_error,
        "latest_charge": charge,
        "livemode": false,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": "pm_test_1PatriotPayCard",
        "payment_method_configuration_details": { "id": "pmc_1PatriotPayConfig", "parent": null },
        "payment_method_options": { "card": { "installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if succeeded { "succeeded" } else { "requires_payment_method" },
        "transfer_data": null,
        "transfer_group": null
    });
    merged(head, rest)
}

async fn record(
    state: &Arc<Mutex<Fake>>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    let mut f = state.lock().expect("fake");
    f.seen.push(Seen {
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    f.scripted
        .pop_front()
        .map(|(status, body)| (status, body).into_response())
}

async fn create_session(
    State(state): State<Arc<Mutex<Fake>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = record(&state, Method::POST, &uri, &headers, &body).await {
        return r;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut f = state.lock().expect("fake");
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key {
        if let Some((first_body, id)) = f.keys.get(key).cloned() {
            // Stripe compares the parameters, not their order.
            let params = |b: &str| {
                let mut v = serde_urlencoded::from_str::<Vec<(String, String)>>(b).expect("form");
                v.sort();
                v
            };
            if params(&first_body) != params(&body) {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body(
                        "idempotency_error",
                        None,
                        None,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    ),
                )
                    .into_response();
            }
            return Json(f.sessions[&id].clone()).into_response();
        }
    }
    let form: HashMap<String, String> = serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
        .expect("form")
        .into_iter()
        .collect();
    let id = next_id(&mut f, "cs");
    let session = session_object(&id, &form, patriotpay::clock::now_unix());
    f.sessions.insert(id.clone(), session.clone());
    if let Some(key) = key {
        f.keys.insert(key, (body, id));
    }
    Json(session).into_response()
}

async fn get_session(
    State(state): State<Arc<Mutex<Fake>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let f = state.lock().expect("fake");
    match f.sessions.get(&id) {
        Some(s) => Json(s.clone()).into_response(),
        None => resource_missing("checkout.session", &id),
    }
}

async fn expire_session(
    State(state): State<Arc<Mutex<Fake>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = record(&state, Method::POST, &uri, &headers, &body).await {
        return r;
    }
    let mut f = state.lock().expect("fake");
    let Some(s) = f.sessions.get_mut(&id) else {
        return resource_missing("checkout.session", &id);
    };
    if s["status"] != "open" {
        return (
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_request_error",
                None,
                None,
                "Only Checkout Sessions with a status in [\"open\"] can be expired.",
            ),
        )
            .into_response();
    }
    s["status"] = json!("expired");
    s["url"] = Value::Null;
    Json(s.clone()).into_response()
}

async fn get_intent(
    State(state): State<Arc<Mutex<Fake>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let expand: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).expect("query");
    let expanded = expand
        .iter()
        .any(|(k, v)| k.starts_with("expand[") && v == "latest_charge");
    let f = state.lock().expect("fake");
    match f.intents.get(&id) {
        Some(pi) => {
            let mut pi = pi.clone();
            if !expanded {
                pi["latest_charge"] = pi["latest_charge"]["id"].clone();
            }
            Json(pi).into_response()
        }
        None => resource_missing("payment_intent", &id),
    }
}

impl FakeStripe {
    async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(Fake::default()));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(get_session))
            .route("/v1/checkout/sessions/{id}/expire", post(expire_session))
            .route("/v1/payment_intents/{id}", get(get_intent))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { state, url }
    }

    fn processor(&self) -> StripeProcessor {
        StripeProcessor::new(&StripeSettings {
            secret_key: Secret::new(KEY),
            api_url: Some(self.url.clone()),
        })
        .expect("client")
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("fake").seen.clone()
    }

    /// The next request gets this answer instead.
    fn script(&self, status: u16, body: String) {
        self.state
            .lock()
            .expect("fake")
            .scripted
            .push_back((StatusCode::from_u16(status).expect("status"), body));
    }

    /// The payer pays (or is declined) on Stripe's page: the session and its PaymentIntent move
    /// as Stripe moves them. Returns the session object.
    fn pay(&self, session: &str, succeed: bool) -> Value {
        let mut f = self.state.lock().expect("fake");
        let pi = next_id(&mut f, "pi");
        let ch = next_id(&mut f, "ch");
        let now = patriotpay::clock::now_unix();
        let s = f.sessions.get_mut(session).expect("session");
        let amount = s["amount_total"].as_i64().expect("amount");
        s["payment_intent"] = json!(pi);
        if succeed {
            s["status"] = json!("complete");
            s["payment_status"] = json!("paid");
            s["url"] = Value::Null;
            s["customer_details"] = json!({
                "address": { "city": null, "country": "US", "line1": null, "line2": null, "postal_code": null, "state": null },
                "business_name": null, "email": null, "individual_name": null, "name": null, "phone": null, "tax_exempt": "none", "tax_ids": []
            });
        }
        let s = s.clone();
        let charge = charge_object(&ch, &pi, amount, now, succeed);
        f.intents
            .insert(pi.clone(), intent_object(&pi, charge, amount, now, succeed));
        s
    }
}

fn request(amount: i64) -> CheckoutRequest {
    let id = CheckoutId::generate();
    CheckoutRequest {
        amount: Money::from_cents(amount),
        checkout_ref: id.clone(),
        statement_ref: "stm_one,stm_two".into(),
        description: NEUTRAL_DESCRIPTION,
        created_at: patriotpay::clock::now_unix(),
        success_url: format!(
            "https://pay.example/pay/return/{}?session_id={{CHECKOUT_SESSION_ID}}",
            id.as_str()
        ),
        cancel_url: format!("https://pay.example/pay/cancelled/{}", id.as_str()),
        bank_debit: false,
    }
}

/// What `create_checkout` sends: the fields, bracketed as Stripe's form encoding has them, and
/// the headers; then the session read back, a payment with its card, and expiry.
#[tokio::test]
async fn the_client_speaks_stripes_form_encoding_and_headers() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    assert_eq!(p.checkout_origin(), "https://checkout.stripe.com");
    let req = request(2_500);
    let before = patriotpay::clock::now_unix();
    let created = p
        .create_checkout(&req, "checkout-key-1")
        .await
        .expect("created");
    assert!(created
        .url
        .starts_with("https://checkout.stripe.com/c/pay/cs_test_"));
    assert_eq!(created.status, CheckoutStatus::Open);
    assert!(!created.paid);
    assert_eq!(created.amount_total, Money::from_cents(2_500));
    assert_eq!(
        created.client_reference_id.as_deref(),
        Some(req.checkout_ref.as_str())
    );

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(
        (s.method.clone(), s.path.as_str()),
        (Method::POST, "/v1/checkout/sessions")
    );
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(s.header("idempotency-key"), Some("checkout-key-1"));
    assert_eq!(
        s.header("stripe-version"),
        Some(STRIPE_VERSION),
        "the API version the crate's types were generated for is pinned on every request"
    );
    assert_eq!(
        s.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = s.form();
    let expect = |k: &str, v: &str| {
        assert_eq!(
            form.get(k).map(String::as_str),
            Some(v),
            "{k} in {:?}",
            s.body
        );
    };
    expect("mode", "payment");
    expect("line_items[0][price_data][currency]", "usd");
    expect("line_items[0][price_data][unit_amount]", "2500");
    expect(
        "line_items[0][price_data][product_data][name]",
        "Statement balance",
    );
    expect("line_items[0][quantity]", "1");
    expect("client_reference_id", req.checkout_ref.as_str());
    expect("metadata[checkout]", req.checkout_ref.as_str());
    expect("metadata[statements]", "stm_one,stm_two");
    expect(
        "payment_intent_data[metadata][checkout]",
        req.checkout_ref.as_str(),
    );
    expect(
        "payment_intent_data[metadata][statements]",
        "stm_one,stm_two",
    );
    expect("success_url", &req.success_url);
    expect("cancel_url", &req.cancel_url);
    let expires: i64 = form["expires_at"].parse().expect("expires_at");
    assert!(
        (before + 30 * 60..=before + 30 * 60 + 300).contains(&expires),
        "at least Stripe's minimum of 30 minutes, not much more: {}",
        expires - before
    );
    let mut keys: Vec<&str> = form.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cancel_url",
            "client_reference_id",
            "expires_at",
            "line_items[0][price_data][currency]",
            "line_items[0][price_data][product_data][name]",
            "line_items[0][price_data][unit_amount]",
            "line_items[0][quantity]",
            "metadata[checkout]",
            "metadata[statements]",
            "mode",
            "payment_intent_data[metadata][checkout]",
            "payment_intent_data[metadata][statements]",
            "success_url",
        ],
        "nothing else is sent: no email, no customer, no description"
    );

    // The same key again (a retry after a lost answer): the same session, no second one.
    let again = p
        .create_checkout(&req, "checkout-key-1")
        .await
        .expect("replay");
    assert_eq!(again.id, created.id);

    // Read back, paid with a card, its PaymentIntent with the charge expanded.
    let read = p.retrieve_checkout(&created.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Open, false));
    fake.pay(&created.id, true);
    let read = p.retrieve_checkout(&created.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Complete, true));
    let pi = read.payment_intent.expect("payment intent");
    let payment = p.retrieve_payment(&pi).await.expect("payment");
    assert!(payment.succeeded());
    assert_eq!(payment.amount_received, Money::from_cents(2_500));
    assert_eq!(payment.currency, "usd");
    assert_eq!(
        (payment.card_brand.as_str(), payment.card_last4.as_str()),
        ("visa", "4242")
    );
    assert_eq!(payment.last_error, None);
    let last = fake.seen().pop().expect("request");
    assert_eq!(last.path, format!("/v1/payment_intents/{pi}"));
    assert!(
        last.query.contains("latest_charge"),
        "the charge is expanded in the same call: {}",
        last.query
    );
    assert!(
        last.header("idempotency-key").is_none(),
        "reads carry no key"
    );

    // A declined attempt: its reason, from the PaymentIntent's last error.
    let declined = p
        .create_checkout(&request(900), "checkout-key-2")
        .await
        .expect("created");
    fake.pay(&declined.id, false);
    let read = p.retrieve_checkout(&declined.id).await.expect("retrieve");
    assert_eq!((read.status, read.paid), (CheckoutStatus::Open, false));
    let payment = p
        .retrieve_payment(read.payment_intent.as_deref().expect("pi"))
        .await
        .expect("payment");
    assert!(!payment.succeeded());
    assert_eq!(payment.amount_received, Money::ZERO);
    assert_eq!(payment.last_error, Some(DeclineReason::InsufficientFunds));

    // Expiry: open → expired; again is fine; a complete session is refused.
    p.expire_checkout(&declined.id).await.expect("expired");
    p.expire_checkout(&declined.id)
        .await
        .expect("already expired is what was asked");
    assert_eq!(
        p.retrieve_checkout(&declined.id)
            .await
            .expect("read")
            .status,
        CheckoutStatus::Expired
    );
    let e = p.expire_checkout(&created.id).await.expect_err("complete");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");

    // Only the four endpoints a restricted key is given.
    for s in fake.seen() {
        let allowed = (s.method == Method::POST && s.path == "/v1/checkout/sessions")
            || (s.method == Method::GET && s.path.starts_with("/v1/checkout/sessions/"))
            || (s.method == Method::POST
                && s.path.starts_with("/v1/checkout/sessions/")
                && s.path.ends_with("/expire"))
            || (s.method == Method::GET && s.path.starts_with("/v1/payment_intents/"));
        assert!(allowed, "{} {}", s.method, s.path);
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
}

/// Each kind of failure is sorted as the portal acts on it, and no message carries the key.
#[tokio::test]
async fn each_stripe_error_is_sorted_and_never_shows_the_key() {
    let fake = FakeStripe::start().await;
    let p = fake.processor();
    let no_key = |e: &ProcessorError| {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains(KEY) && !text.contains("Restricted"),
            "{text}"
        );
    };

    // A declined card: Stripe answers 402 with a card error.
    fake.script(
        402,
        error_body(
            "card_error",
            Some("card_declined"),
            Some("generic_decline"),
            "Your card was declined.",
        ),
    );
    let e = p
        .create_checkout(&request(100), "k-card")
        .await
        .expect_err("declined");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("card_declined")),
        "{e:?}"
    );
    no_key(&e);

    // Rate limited: 429, try again later.
    fake.script(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        ),
    );
    let e = p.retrieve_checkout("cs_test_x").await.expect_err("429");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("rate limited") && m.contains("429")),
        "{e:?}"
    );
    no_key(&e);

    // Stripe's own trouble: 500 api_error, and a 503 whose body is no Stripe error at all.
    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let e = p.retrieve_payment("pi_test_x").await.expect_err("500");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("500")),
        "{e:?}"
    );
    fake.script(503, "<html>Service Unavailable</html>".into());
    let e = p.retrieve_checkout("cs_test_x").await.expect_err("503");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");

    // An idempotency conflict: the key reused with other parameters (Stripe's real check, in the
    // fake), and Stripe's 409 for a key whose first request is still running.
    let req = request(700);
    p.create_checkout(&req, "k-conflict").await.expect("first");
    let mut other = req.clone();
    other.amount = Money::from_cents(701);
    let e = p
        .create_checkout(&other, "k-conflict")
        .await
        .expect_err("conflict");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("idempotency")),
        "{e:?}"
    );
    no_key(&e);
    fake.script(
        409,
        error_body(
            "idempotency_error",
            Some("idempotency_key_in_use"),
            None,
            "There is currently another in-progress request using this Stripe-Idempotency-Key",
        ),
    );
    let e = p
        .create_checkout(&req, "k-conflict")
        .await
        .expect_err("409");
    assert!(matches!(e, ProcessorError::Rejected(_)), "{e:?}");

    // Unknown objects: 404 resource_missing, for a session, a payment and an expiry.
    let e = p
        .retrieve_checkout("cs_test_unknown")
        .await
        .expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    let e = p
        .retrieve_payment("pi_test_unknown")
        .await
        .expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");
    let e = p.expire_checkout("cs_test_unknown").await.expect_err("404");
    assert!(matches!(e, ProcessorError::NotFound), "{e:?}");

    // An invalid request (a restricted key without the permission answers alike, 403).
    fake.script(
        403,
        error_body(
            "invalid_request_error",
            None,
            None,
            &format!("The provided key '{KEY}' does not have the required permissions"),
        ),
    );
    let e = p
        .create_checkout(&request(100), "k-403")
        .await
        .expect_err("403");
    assert!(
        matches!(&e, ProcessorError::Rejected(m) if m.contains("403")),
        "{e:?}"
    );
    no_key(&e);

    // Stripe down: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let down = StripeProcessor::new(&StripeSettings {
        secret_key: Secret::new(KEY),
        api_url: Some(format!("http://{addr}")),
    })
    .expect("client");
    let e = down
        .create_checkout(&request(100), "k-down")
        .await
        .expect_err("down");
    assert!(
        matches!(&e, ProcessorError::Unavailable(m) if m.contains("network")),
        "{e:?}"
    );
    no_key(&e);
    let e = down.retrieve_checkout("cs_test_x").await.expect_err("down");
    assert!(matches!(e, ProcessorError::Unavailable(_)), "{e:?}");
}

/// The signed event Stripe would send for `session`.
fn event(id: &str, event_type: &str, session: &Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": STRIPE_VERSION,
        "created": patriotpay::clock::now_unix(),
        "data": { "object": session },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
    })
    .to_string()
}

/// The canary patient pays by link with Stripe as the processor: every request Stripe receives
/// is free of the patient's name, date of birth, ZIP, phone, account number, service
/// description and date; the signed webhook makes the portal re-read the session and payment
/// from Stripe and book the payment once, however often the event comes.
async fn a_canary_payment_through_stripe_sends_no_phi_and_books_once(backend: Backend) {
    let fake = FakeStripe::start().await;
    let stripe_url = fake.url.clone();
    let app = TestApp::start_with(backend, |c| {
        c.processor = ProcessorKind::Stripe;
        c.stripe_secret_key = Some(Secret::new(KEY));
        c.stripe_api_url = Some(stripe_url);
        c.webhook_secret_previous = Some(Secret::new(PREVIOUS_WEBHOOK_SECRET));
    })
    .await;
    let (db, crypto) = (app.db().clone(), app.state().crypto.clone());
    let (_, statement) = import_canary(&db, &crypto, &app.tenant).await;
    let (_, token) = patriotpay::links::create(
        &db,
        &app.tenant,
        &statement,
        patriotpay::clock::now_unix() + 3600,
    )
    .await
    .expect("link");
    let b = Browser::new(&app);
    b.open_link(&format!("/p/{token}")).await;
    assert_eq!(
        location(&b.submit_dob("07", "07", "1977").await),
        "/summary"
    );
    assert_eq!(
        location(&b.submit_zip(crate::canary::ZIP).await),
        "/statement"
    );

    // A first checkout, abandoned; a second replaces it (the first is expired at Stripe).
    let first = location(&b.pay("25.00").await);
    assert!(
        first.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{first}"
    );
    let second = location(&b.pay("70.00").await);
    assert!(
        second.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{second}"
    );
    let cs = |url: &str| {
        url.trim_start_matches("https://checkout.stripe.com/c/pay/")
            .split('#')
            .next()
            .expect("id")
            .to_owned()
    };
    let (first, second) = (cs(&first), cs(&second));
    assert_ne!(first, second);
    let csp = b.get("/summary").await;
    let csp = csp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://checkout.stripe.com"),
        "{csp}"
    );
    {
        let f = fake.state.lock().expect("fake");
        assert_eq!(
            f.sessions[&first]["status"], "expired",
            "the abandoned checkout was expired"
        );
    }

    // Paid on Stripe's page; the payer is back before the webhook: the portal asks Stripe.
    let session = fake.pay(&second, true);
    let success = session["success_url"]
        .as_str()
        .expect("success_url")
        .replace("{CHECKOUT_SESSION_ID}", &second);
    let back = b.client.get(&success).send().await.expect("return");
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "confirming page while the event is on its way"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    // The signed event, then again, then the same under another event id, then signed with the
    // previous secret of a roll: one payment, of exactly $70.00.
    let before = balance(&app, &statement).await;
    let ev = event(
        "evt_test_1PatriotPayCompleted",
        "checkout.session.completed",
        &session,
    );
    let r = post_webhook(&app, &ev).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"duplicate":false,"received":true}"#
    );
    assert_eq!(post_webhook(&app, &ev).await.status(), StatusCode::OK);
    let other = event(
        "evt_test_2PatriotPayCompleted",
        "checkout.session.completed",
        &session,
    );
    assert_eq!(post_webhook(&app, &other).await.status(), StatusCode::OK);
    let sig = patriotpay::payments::signature::sign(
        PREVIOUS_WEBHOOK_SECRET,
        patriotpay::clock::now_unix(),
        ev.as_bytes(),
    );
    let r = post_event(&app, &ev, Some(sig)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the previous secret is accepted during a roll"
    );
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"duplicate":true,"received":true}"#
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, before - 7_000);
    let (brand, last4, processor_id): (String, String, String) =
        sqlx::query_as("SELECT card_brand, card_last4, processor_payment_id FROM payments")
            .fetch_one(db.pool())
            .await
            .expect("payment");
    assert_eq!((brand.as_str(), last4.as_str()), ("visa", "4242"));
    assert_eq!(
        Some(processor_id.as_str()),
        session["payment_intent"].as_str()
    );

    // Back again: the receipt.
    let back = b.client.get(&success).send().await.expect("return");
    let receipt = location(&back);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
    assert_eq!(b.get(&receipt).await.status(), StatusCode::OK);

    // The portal re-read the session and the payment from Stripe, not the event's copy.
    let seen = fake.seen();
    assert!(seen
        .iter()
        .any(|s| s.method == Method::GET && s.path == format!("/v1/checkout/sessions/{second}")));
    assert!(seen.iter().any(|s| s.method == Method::GET
        && Some(s.path.as_str())
            == session["payment_intent"]
                .as_str()
                .map(|p| format!("/v1/payment_intents/{p}"))
                .as_deref()));
    // Two checkouts created, each with its own idempotency key, the first expired.
    let creates: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.path == "/v1/checkout/sessions")
        .collect();
    assert_eq!(creates.len(), 2);
    let keys: Vec<&str> = creates
        .iter()
        .filter_map(|s| s.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(
        creates[1].form()["line_items[0][price_data][unit_amount]"],
        "7000"
    );
    assert!(seen
        .iter()
        .any(|s| s.method == Method::POST
            && s.path == format!("/v1/checkout/sessions/{first}/expire")));

    // Nothing Stripe received names the patient or the care: paths, queries, bodies, headers.
    for s in &seen {
        let all = format!(
            "{} {}?{} {} {:?}",
            s.method, s.path, s.query, s.body, s.headers
        );
        // Stripe's form encoding escapes spaces and punctuation; check the decoded text too.
        let decoded: String = serde_urlencoded::from_str::<Vec<(String, String)>>(&s.body)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        for needle in NEEDLES {
            assert!(
                !holds(all.as_bytes(), needle) && !holds(decoded.as_bytes(), needle),
                "Stripe received canary value {needle:?} in {} {}",
                s.method,
                s.path
            );
        }
    }
    app.finish().await;
}
