//! A local server playing Stripe's API for the tests: Checkout Sessions, PaymentIntents,
//! refunds, disputes, customers and their cards (`fake_cards`), off-session charges and window
//! listings (`fake_charges`) kept in memory, idempotency keys checked as Stripe checks them,
//! every request recorded, and scripted answers (errors) served ahead of the real one.

use super::objects::{
    bank_charge_object, bank_intent_object, charge_object, dispute_object, error_body,
    intent_object, list_object, refund_object, session_object,
};
use super::KEY;
use crate::canary::{holds, NEEDLES};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use patriotpay::config::Secret;
use patriotpay::payments::stripe::{StripeProcessor, StripeSettings};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One request as the fake Stripe received it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: HashMap<String, String>,
    pub(super) body: String,
}

impl Seen {
    pub(super) fn form(&self) -> HashMap<String, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.body)
            .expect("form-encoded body")
            .into_iter()
            .collect()
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
pub(super) struct Fake {
    pub(super) sessions: HashMap<String, Value>,
    pub(super) intents: HashMap<String, Value>,
    /// Idempotency key → (request body, session id), as Stripe keeps them.
    pub(super) keys: HashMap<String, (String, String)>,
    /// Every refund, oldest first (Stripe lists them newest first).
    pub(super) refunds: Vec<Value>,
    /// Idempotency key → (request body, refund id).
    pub(super) refund_keys: HashMap<String, (String, String)>,
    pub(super) disputes: HashMap<String, Value>,
    pub(super) customers: HashMap<String, Value>,
    /// Idempotency key → (request body, customer id).
    pub(super) customer_keys: HashMap<String, (String, String)>,
    /// Every PaymentMethod, oldest first.
    pub(super) methods: Vec<Value>,
    /// Idempotency key → (request body, status, answer) of a PaymentIntent created: Stripe
    /// replays the first answer, a decline included.
    pub(super) intent_keys: HashMap<String, (String, StatusCode, Value)>,
    pub(super) seen: Vec<Seen>,
    /// Answers given instead of the real one, first in first out.
    pub(super) scripted: VecDeque<(StatusCode, String)>,
    /// Answers given instead of the real one to the next request with this method and path.
    pub(super) scripted_for: Vec<(Method, String, StatusCode, String)>,
    /// The next request with this method and path is worked, but its answer is lost on the way
    /// back: the caller gets this status instead (`fake_charges::lose_answers`).
    pub(super) lost_for: Vec<(Method, String, StatusCode)>,
    pub(super) counter: u64,
}

#[derive(Clone)]
pub(super) struct FakeStripe {
    pub(super) state: Arc<Mutex<Fake>>,
    pub(super) url: String,
}

pub(super) fn next_id(f: &mut Fake, prefix: &str) -> String {
    f.counter += 1;
    format!("{prefix}_test_a1B2c3D4e5F6g7H8{:08}", f.counter)
}

pub(super) fn resource_missing(what: &str, id: &str) -> Response {
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

pub(super) async fn record(
    state: &Arc<Mutex<Fake>>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    let mut f = state.lock().expect("fake");
    if let Some(i) = f
        .scripted_for
        .iter()
        .position(|(m, p, _, _)| *m == method && p == uri.path())
    {
        let (.., status, answer) = f.scripted_for.remove(i);
        f.scripted.push_front((status, answer));
    }
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
    let session = if form.get("mode").map(String::as_str) == Some("setup") {
        match super::fake_cards::setup_session(&mut f, &id, &form) {
            Ok(session) => session,
            Err(refusal) => return *refusal,
        }
    } else {
        session_object(&id, &form, patriotpay::clock::now_unix())
    };
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

/// The form's fields; a repeated key keeps its last value (none is repeated here).
pub(super) fn form_of(body: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body)
        .expect("form")
        .into_iter()
        .collect()
}

/// The same parameters in any order, as Stripe compares an idempotent retry's.
pub(super) fn same_params(a: &str, b: &str) -> bool {
    let sorted = |s: &str| {
        let mut v = serde_urlencoded::from_str::<Vec<(String, String)>>(s).expect("form");
        v.sort();
        v
    };
    sorted(a) == sorted(b)
}

pub(super) fn idempotency_mismatch() -> Response {
    (
        StatusCode::BAD_REQUEST,
        error_body(
            "idempotency_error",
            None,
            None,
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        ),
    )
        .into_response()
}

pub(super) fn refused(code: Option<&str>, param: Option<&str>, message: &str) -> Response {
    let mut body: Value =
        serde_json::from_str(&error_body("invalid_request_error", code, None, message))
            .expect("error body");
    body["error"]["param"] = json!(param);
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// `POST /v1/refunds`: refuses what Stripe refuses (an unknown or unpaid PaymentIntent, a
/// disputed charge, one already fully refunded, more than is left), else refunds.
async fn create_refund(
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
    if let Some((first, id)) = key.as_ref().and_then(|k| f.refund_keys.get(k).cloned()) {
        if !same_params(&first, &body) {
            return idempotency_mismatch();
        }
        let done = f.refunds.iter().find(|r| r["id"] == id.as_str()).cloned();
        return Json(done.expect("refund")).into_response();
    }
    let form = form_of(&body);
    let pi_id = form.get("payment_intent").cloned().unwrap_or_default();
    let Some(pi) = f.intents.get(&pi_id).cloned() else {
        return refused(
            Some("resource_missing"),
            Some("payment_intent"),
            &format!("No such payment_intent: '{pi_id}'"),
        );
    };
    let charge = pi["latest_charge"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if pi["status"] != "succeeded" {
        return refused(
            Some("charge_not_refundable"),
            None,
            &format!("This PaymentIntent ({pi_id}) does not have a successful charge to refund."),
        );
    }
    if pi["latest_charge"]["disputed"] == true {
        return refused(
            Some("charge_disputed"),
            None,
            &format!("Charge {charge} has been charged back; cannot issue a refund."),
        );
    }
    let paid = pi["amount_received"].as_i64().unwrap_or(0);
    let refunded: i64 = f
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == pi_id.as_str() && r["status"] != "failed")
        .filter_map(|r| r["amount"].as_i64())
        .sum();
    let left = paid - refunded;
    if left <= 0 {
        return refused(
            Some("charge_already_refunded"),
            None,
            &format!("Charge {charge} has already been refunded."),
        );
    }
    let amount = form
        .get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(left);
    if amount > left {
        // Stripe's own answer has no code, only the parameter.
        return refused(
            None,
            Some("amount"),
            &format!(
                "Refund amount (${}.{:02}) is greater than unrefunded amount on charge (${}.{:02})",
                amount / 100,
                amount % 100,
                left / 100,
                left % 100
            ),
        );
    }
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), Value::String(v.clone())))
        })
        .collect();
    let id = next_id(&mut f, "re");
    let refund = refund_object(
        &id,
        &pi_id,
        &charge,
        amount,
        &metadata,
        form.get("reason").map(String::as_str),
        patriotpay::clock::now_unix(),
    );
    f.refunds.push(refund.clone());
    if let Some(key) = key {
        f.refund_keys.insert(key, (body, id));
    }
    Json(refund).into_response()
}

/// `GET /v1/refunds?payment_intent=…&limit=…&starting_after=…`: newest first, a page at a time;
/// without `payment_intent`, every refund in the `created[…]` window (`fake_charges`).
async fn list_refunds(
    State(state): State<Arc<Mutex<Fake>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let query = form_of(uri.query().unwrap_or(""));
    let f = state.lock().expect("fake");
    let Some(pi) = query.get("payment_intent").cloned() else {
        return super::fake_charges::refunds_in_window(&f, &query);
    };
    if !f.intents.contains_key(&pi) {
        return refused(
            Some("resource_missing"),
            Some("payment_intent"),
            &format!("No such payment_intent: '{pi}'"),
        );
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let newest_first: Vec<&Value> = f
        .refunds
        .iter()
        .rev()
        .filter(|r| r["payment_intent"] == pi.as_str())
        .collect();
    let start = match query.get("starting_after") {
        Some(after) => match newest_first.iter().position(|r| r["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => {
                return refused(
                    Some("resource_missing"),
                    Some("starting_after"),
                    &format!("No such refund: '{after}'"),
                )
            }
        },
        None => 0,
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .map(|r| (*r).clone())
        .collect();
    let has_more = start + page.len() < newest_first.len();
    Json(list_object(page, has_more, "/v1/refunds")).into_response()
}

async fn get_dispute(
    State(state): State<Arc<Mutex<Fake>>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let f = state.lock().expect("fake");
    match f.disputes.get(&id) {
        Some(d) => Json(d.clone()).into_response(),
        None => resource_missing("dispute", &id),
    }
}

impl FakeStripe {
    pub(super) async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(Fake::default()));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(get_session))
            .route("/v1/checkout/sessions/{id}/expire", post(expire_session))
            .route("/v1/payment_intents/{id}", get(get_intent))
            .route("/v1/refunds", post(create_refund).get(list_refunds))
            .route("/v1/disputes/{id}", get(get_dispute))
            .merge(super::fake_cards::routes())
            .merge(super::fake_charges::routes())
            .with_state(state.clone())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::fake_charges::lose_answers,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { state, url }
    }

    pub(super) fn processor(&self) -> StripeProcessor {
        StripeProcessor::new(&StripeSettings {
            secret_key: Secret::new(KEY),
            api_url: Some(self.url.clone()),
        })
        .expect("client")
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("fake").seen.clone()
    }

    /// Nothing Stripe received so far names the canary patient or the care: paths, queries,
    /// bodies (raw and decoded: the form encoding escapes spaces and punctuation), headers.
    pub(super) fn assert_no_canary(&self) {
        for s in &self.seen() {
            let all = format!(
                "{} {}?{} {} {:?}",
                s.method, s.path, s.query, s.body, s.headers
            );
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
    }

    /// The next request gets this answer instead.
    pub(super) fn script(&self, status: u16, body: String) {
        self.state
            .lock()
            .expect("fake")
            .scripted
            .push_back((StatusCode::from_u16(status).expect("status"), body));
    }

    /// The payer pays (or is declined) on Stripe's page: the session and its PaymentIntent move
    /// as Stripe moves them. Returns the session object.
    pub(super) fn pay(&self, session: &str, succeed: bool) -> Value {
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

    /// The payer pays by bank debit (ACH) on Stripe's page: the session is complete but unpaid
    /// and its PaymentIntent processing, as until the debit settles days later. Returns the
    /// session object.
    pub(super) fn pay_by_bank(&self, session: &str) -> Value {
        let mut f = self.state.lock().expect("fake");
        let pi = next_id(&mut f, "pi");
        let ch = next_id(&mut f, "py");
        let now = patriotpay::clock::now_unix();
        let s = f.sessions.get_mut(session).expect("session");
        let amount = s["amount_total"].as_i64().expect("amount");
        s["payment_intent"] = json!(pi);
        s["status"] = json!("complete");
        s["payment_status"] = json!("unpaid");
        s["url"] = Value::Null;
        let s = s.clone();
        let charge = bank_charge_object(&ch, &pi, amount, now);
        f.intents
            .insert(pi.clone(), bank_intent_object(&pi, charge, amount, now));
        s
    }

    /// A refund made outside the portal (in Stripe's dashboard), `created` seconds since the
    /// epoch; returns its id.
    pub(super) fn refund_in_dashboard(&self, pi: &str, amount: i64, created: i64) -> String {
        let mut f = self.state.lock().expect("fake");
        let id = next_id(&mut f, "re");
        let charge = f.intents[pi]["latest_charge"]["id"]
            .as_str()
            .expect("charge")
            .to_owned();
        let refund = refund_object(
            &id,
            pi,
            &charge,
            amount,
            &serde_json::Map::new(),
            Some("requested_by_customer"),
            created,
        );
        f.refunds.push(refund);
        id
    }

    /// The payer's bank disputes the payment: its charge is marked disputed and the dispute
    /// kept, naming the PaymentIntent by id, or expanded when `expanded`. Returns the dispute.
    pub(super) fn dispute(&self, pi: &str, reason: &str, expanded: bool) -> Value {
        let mut f = self.state.lock().expect("fake");
        let id = next_id(&mut f, "dp");
        let now = patriotpay::clock::now_unix();
        let intent = f.intents.get_mut(pi).expect("payment intent");
        intent["latest_charge"]["disputed"] = json!(true);
        let amount = intent["amount"].as_i64().expect("amount");
        let charge = intent["latest_charge"]["id"]
            .as_str()
            .expect("charge")
            .to_owned();
        let named = if expanded {
            let mut whole = intent.clone();
            whole["latest_charge"] = json!(charge);
            whole
        } else {
            json!(pi)
        };
        let dispute = dispute_object(&id, &charge, named, amount, "needs_response", reason, now);
        f.disputes.insert(id, dispute.clone());
        dispute
    }
}
