//! The fake Stripe's off-session charges and window listings: `POST /v1/payment_intents`
//! (customer and card checked, a confirm that could redirect refused without a `return_url`,
//! the saved card's test number deciding success, a decline or authentication, as Stripe's test
//! cards do; idempotency keys replay the first answer, errors included, as Stripe's do),
//! `GET /v1/payment_intents` and `GET /v1/disputes` filtered by `created[…]` newest first a page
//! at a time, refunds likewise (from `fake::list_refunds` when no payment is named); objects
//! placed at a given time for the listings; and answers lost on their way back.

use super::fake::FakeStripe;
use super::fake::{form_of, idempotency_mismatch, next_id, record, refused, same_params, Fake};
use super::objects::{charge_object, dispute_object, intent_object, list_object, refund_object};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<Fake>>;

/// Stripe's test cards by their last four: what an off-session charge on each comes to.
pub(super) const SUCCEEDS: (&str, &str, i64, i64) = ("visa", "4242", 12, 2034);
/// 4000 0000 0000 9995: declined, insufficient funds.
pub(super) const INSUFFICIENT: (&str, &str, i64, i64) = ("visa", "9995", 12, 2034);
/// 4000 0000 0000 0002: declined, generic.
pub(super) const DECLINED: (&str, &str, i64, i64) = ("visa", "0002", 12, 2034);
/// 4000 0027 6000 3184: always wants authentication.
pub(super) const AUTHENTICATE: (&str, &str, i64, i64) = ("visa", "3184", 12, 2034);

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/payment_intents", get(list_intents).post(create_intent))
        .route("/v1/disputes", get(list_disputes))
}

/// `created[gte]`, `created[gt]`, `created[lt]` and `created[lte]`, as Stripe filters lists.
fn in_window(object: &Value, query: &HashMap<String, String>) -> bool {
    let created = object["created"].as_i64().unwrap_or(0);
    let bound = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    bound("created[gte]").is_none_or(|b| created >= b)
        && bound("created[gt]").is_none_or(|b| created > b)
        && bound("created[lt]").is_none_or(|b| created < b)
        && bound("created[lte]").is_none_or(|b| created <= b)
}

/// Newest first (by `created`, then by id: the fake's ids grow), as Stripe lists.
fn newest_first(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                o["created"].as_i64().unwrap_or(0),
                o["id"].as_str().unwrap_or("").to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    objects
}

/// One page of a list already newest first: `limit` (1 to 100, 10 unless given) objects after
/// `starting_after`, which must be one of them.
pub(super) fn page(
    newest: Vec<Value>,
    query: &HashMap<String, String>,
    what: &str,
    url: &str,
) -> Response {
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let start = match query.get("starting_after") {
        Some(after) => match newest.iter().position(|o| o["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => {
                return refused(
                    Some("resource_missing"),
                    Some("starting_after"),
                    &format!("No such {what}: '{after}'"),
                )
            }
        },
        None => 0,
    };
    let data: Vec<Value> = newest.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + data.len() < newest.len();
    Json(list_object(data, has_more, url)).into_response()
}

/// `GET /v1/refunds` without `payment_intent`: every refund in the window.
pub(super) fn refunds_in_window(f: &Fake, query: &HashMap<String, String>) -> Response {
    let found = f
        .refunds
        .iter()
        .filter(|r| in_window(r, query))
        .cloned()
        .collect();
    page(newest_first(found), query, "refund", "/v1/refunds")
}

async fn list_intents(State(state): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let query = form_of(uri.query().unwrap_or(""));
    let expanded = query
        .iter()
        .any(|(k, v)| k.starts_with("expand[") && v == "data.latest_charge");
    let f = state.lock().expect("fake");
    let found = f
        .intents
        .values()
        .filter(|pi| in_window(pi, &query))
        .map(|pi| {
            let mut pi = pi.clone();
            if !expanded {
                pi["latest_charge"] = pi["latest_charge"]["id"].clone();
            }
            pi
        })
        .collect();
    page(
        newest_first(found),
        &query,
        "payment_intent",
        "/v1/payment_intents",
    )
}

async fn list_disputes(State(state): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let query = form_of(uri.query().unwrap_or(""));
    let f = state.lock().expect("fake");
    let found = f
        .disputes
        .values()
        .filter(|d| in_window(d, &query))
        .cloned()
        .collect();
    page(newest_first(found), &query, "dispute", "/v1/disputes")
}

/// A request `FakeStripe::lose_answer_for` named is worked as any (its answer kept under its
/// idempotency key, as Stripe keeps it), but the caller gets a proxy's error instead: Stripe did
/// the work and the answer never arrived.
pub(super) async fn lose_answers(
    State(state): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let lost = {
        let mut f = state.lock().expect("fake");
        let at = f
            .lost_for
            .iter()
            .position(|(m, p, _)| m == req.method() && p == req.uri().path());
        at.map(|i| f.lost_for.remove(i).2)
    };
    let answer = next.run(req).await;
    match lost {
        Some(status) => (status, "<html>Bad Gateway</html>").into_response(),
        None => answer,
    }
}

fn metadata_of(form: &HashMap<String, String>) -> serde_json::Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), Value::String(v.clone())))
        })
        .collect()
}

/// A card error as Stripe answers a declined confirmation (402): its codes, the failed charge,
/// and the PaymentIntent and PaymentMethod as they are now (the intent's charge unexpanded).
fn card_error(code: &str, decline: &str, message: &str, intent: &Value, method: &Value) -> Value {
    let mut pi = intent.clone();
    pi["latest_charge"] = pi["latest_charge"]["id"].clone();
    json!({
        "error": {
            "type": "card_error",
            "code": code,
            "decline_code": decline,
            "charge": intent["latest_charge"]["id"],
            "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
            "message": message,
            "param": null,
            "payment_intent": pi,
            "payment_method": method,
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_test456?t=1764500000",
        }
    })
}

/// `POST /v1/payment_intents` with `confirm=true`: the PaymentIntent made and confirmed at once
/// with the customer's saved card, as Stripe's test cards behave off-session.
async fn create_intent(
    State(state): State<Shared>,
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
    if let Some((first, status, answer)) = key.as_ref().and_then(|k| f.intent_keys.get(k).cloned())
    {
        if !same_params(&first, &body) {
            return idempotency_mismatch();
        }
        return (status, Json(answer)).into_response();
    }
    let (status, answer) = match confirm(&mut f, &form_of(&body)) {
        Ok(answer) => answer,
        // Refused before anything ran: Stripe keeps no answer for the key.
        Err(refusal) => return *refusal,
    };
    if let Some(key) = key {
        f.intent_keys.insert(key, (body, status, answer.clone()));
    }
    (status, Json(answer)).into_response()
}

fn confirm(
    f: &mut Fake,
    form: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Box<Response>> {
    let customer = form.get("customer").cloned().unwrap_or_default();
    if !f.customers.contains_key(&customer) {
        return Err(Box::new(refused(
            Some("resource_missing"),
            Some("customer"),
            &format!("No such customer: '{customer}'"),
        )));
    }
    let pm_id = form.get("payment_method").cloned().unwrap_or_default();
    let Some(method) = f
        .methods
        .iter()
        .find(|m| m["id"] == pm_id.as_str())
        .cloned()
    else {
        return Err(Box::new(refused(
            Some("resource_missing"),
            Some("payment_method"),
            &format!("No such PaymentMethod: '{pm_id}'"),
        )));
    };
    if method["customer"] != customer.as_str() {
        return Err(Box::new(refused(
            None,
            Some("payment_method"),
            &format!("The customer does not have a payment method with the ID {pm_id}. The payment method must be attached to the customer."),
        )));
    }
    let allowed = form
        .get("automatic_payment_methods[allow_redirects]")
        .map(String::as_str);
    if form.get("confirm").map(String::as_str) == Some("true")
        && allowed != Some("never")
        && !form.contains_key("return_url")
    {
        // This API version enables automatic payment methods by default; some redirect.
        return Err(Box::new(refused(
            None,
            None,
            "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.",
        )));
    }
    let amount: i64 = form.get("amount").and_then(|a| a.parse().ok()).unwrap_or(0);
    let pi = next_id(f, "pi");
    let ch = next_id(f, "ch");
    let now = patriotpay::clock::now_unix();
    let last4 = method["card"]["last4"].as_str().unwrap_or("").to_owned();
    let failure = match last4.as_str() {
        "9995" => Some((
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        )),
        "0002" => Some((
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        )),
        "3184" => Some((
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        )),
        _ => None,
    };
    let mut charge = charge_object(&ch, &pi, amount, now, failure.is_none());
    charge["customer"] = json!(customer);
    charge["payment_method"] = json!(pm_id);
    charge["payment_method_details"]["card"]["brand"] = method["card"]["brand"].clone();
    charge["payment_method_details"]["card"]["last4"] = json!(last4);
    let mut intent = intent_object(&pi, charge, amount, now, failure.is_none());
    intent["customer"] = json!(customer);
    intent["payment_method"] = json!(pm_id);
    intent["metadata"] = Value::Object(metadata_of(form));
    intent["automatic_payment_methods"] = json!({ "allow_redirects": allowed, "enabled": true });
    let answer = match failure {
        None => {
            let mut answer = intent.clone();
            let expanded = form
                .iter()
                .any(|(k, v)| k.starts_with("expand[") && v == "latest_charge");
            if !expanded {
                answer["latest_charge"] = answer["latest_charge"]["id"].clone();
            }
            (StatusCode::OK, answer)
        }
        Some((code, decline, message)) => {
            intent["latest_charge"]["failure_code"] = json!(code);
            intent["latest_charge"]["failure_message"] = json!(message);
            intent["latest_charge"]["outcome"]["reason"] = json!(decline);
            intent["last_payment_error"]["code"] = json!(code);
            intent["last_payment_error"]["decline_code"] = json!(decline);
            intent["last_payment_error"]["message"] = json!(message);
            intent["last_payment_error"]["payment_method"] = method.clone();
            let error = card_error(code, decline, message, &intent, &method);
            (StatusCode::PAYMENT_REQUIRED, error)
        }
    };
    f.intents.insert(pi, intent);
    Ok(answer)
}

impl FakeStripe {
    /// The next request to `path` by `method` is worked, and the caller gets `status` instead
    /// of its answer.
    pub(super) fn lose_answer_for(&self, method: Method, path: &str, status: u16) {
        self.state.lock().expect("fake").lost_for.push((
            method,
            path.to_owned(),
            StatusCode::from_u16(status).expect("status"),
        ));
    }

    /// A PaymentIntent paid by card (or declined) `created` seconds since the epoch, our checkout
    /// id in its metadata when given; its id.
    pub(super) fn payment_at(&self, created: i64, checkout: Option<&str>, paid: bool) -> String {
        let mut f = self.state.lock().expect("fake");
        let pi = next_id(&mut f, "pi");
        let ch = next_id(&mut f, "ch");
        let charge = charge_object(&ch, &pi, 1_500, created, paid);
        let mut intent = intent_object(&pi, charge, 1_500, created, paid);
        if let Some(checkout) = checkout {
            intent["metadata"] = json!({ "checkout": checkout, "statements": "stm_x" });
        }
        f.intents.insert(pi.clone(), intent);
        pi
    }

    /// A refund of `pi` made `created` seconds since the epoch, ours (its id in the metadata)
    /// when `ours` is given; its id.
    pub(super) fn refund_at(&self, pi: &str, created: i64, ours: Option<&str>) -> String {
        let mut f = self.state.lock().expect("fake");
        let id = next_id(&mut f, "re");
        let charge = f.intents[pi]["latest_charge"]["id"]
            .as_str()
            .expect("charge")
            .to_owned();
        let mut metadata = serde_json::Map::new();
        if let Some(ours) = ours {
            metadata.insert("refund".into(), json!(ours));
            metadata.insert("reason".into(), json!("overpayment"));
        }
        let refund = refund_object(&id, pi, &charge, 500, &metadata, None, created);
        f.refunds.push(refund);
        id
    }

    /// A dispute of `pi` opened `created` seconds since the epoch; its id.
    pub(super) fn dispute_at(&self, pi: &str, reason: &str, created: i64) -> String {
        let mut f = self.state.lock().expect("fake");
        let id = next_id(&mut f, "dp");
        let charge = f.intents[pi]["latest_charge"]["id"]
            .as_str()
            .expect("charge")
            .to_owned();
        let dispute = dispute_object(
            &id,
            &charge,
            json!(pi),
            1_500,
            "needs_response",
            reason,
            created,
        );
        f.disputes.insert(id.clone(), dispute);
        id
    }
}
