//! The fake Stripe's customers and cards: `POST /v1/customers` (idempotency checked as Stripe
//! checks it), setup-mode Checkout Sessions (a known customer and a currency required, as
//! Stripe requires them), `GET /v1/customers/{id}/payment_methods` newest first a page at a
//! time, `GET /v1/payment_methods/{id}` and `POST /v1/payment_methods/{id}/detach`; and what a
//! member does on Stripe's page (saves a card).

use super::fake::{
    form_of, idempotency_mismatch, next_id, record, refused, resource_missing, same_params, Fake,
    FakeStripe,
};
use super::objects::{card_method_object, customer_object, list_object, setup_session_object};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<Fake>>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}/payment_methods", get(list_methods))
        .route("/v1/payment_methods/{id}", get(get_method))
        .route("/v1/payment_methods/{id}/detach", post(detach_method))
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

async fn create_customer(
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
    if let Some((first, id)) = key.as_ref().and_then(|k| f.customer_keys.get(k).cloned()) {
        if !same_params(&first, &body) {
            return idempotency_mismatch();
        }
        return Json(f.customers[&id].clone()).into_response();
    }
    let id = next_id(&mut f, "cus");
    let customer = customer_object(
        &id,
        &metadata_of(&form_of(&body)),
        patriotpay::clock::now_unix(),
    );
    f.customers.insert(id.clone(), customer.clone());
    if let Some(key) = key {
        f.customer_keys.insert(key, (body, id));
    }
    Json(customer).into_response()
}

/// A setup-mode session, refused as Stripe refuses one without a known customer or (with no
/// `payment_method_types`) without a currency.
pub(super) fn setup_session(
    f: &mut Fake,
    id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Box<Response>> {
    let customer = form.get("customer").cloned().unwrap_or_default();
    if !f.customers.contains_key(&customer) {
        return Err(Box::new(refused(
            Some("resource_missing"),
            Some("customer"),
            &format!("No such customer: '{customer}'"),
        )));
    }
    let typed = form.keys().any(|k| k.starts_with("payment_method_types"));
    if !typed && !form.contains_key("currency") {
        return Err(Box::new(refused(
            Some("parameter_missing"),
            Some("currency"),
            "Missing required param: currency.",
        )));
    }
    let seti = next_id(f, "seti");
    Ok(setup_session_object(
        id,
        &seti,
        form,
        patriotpay::clock::now_unix(),
    ))
}

/// `GET /v1/customers/{id}/payment_methods?type=…&limit=…&starting_after=…`: newest first.
async fn list_methods(
    State(state): State<Shared>,
    Path(customer): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let query = form_of(uri.query().unwrap_or(""));
    let f = state.lock().expect("fake");
    if !f.customers.contains_key(&customer) {
        return resource_missing("customer", &customer);
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let mut newest_first: Vec<&Value> = f
        .methods
        .iter()
        .rev()
        .filter(|m| m["customer"] == customer.as_str())
        .filter(|m| query.get("type").is_none_or(|t| m["type"] == t.as_str()))
        .collect();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m["created"].as_i64().unwrap_or(0)));
    let start = match query.get("starting_after") {
        Some(after) => match newest_first.iter().position(|m| m["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => {
                return refused(
                    Some("resource_missing"),
                    Some("starting_after"),
                    &format!("No such payment_method: '{after}'"),
                )
            }
        },
        None => 0,
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| (*m).clone())
        .collect();
    let has_more = start + page.len() < newest_first.len();
    let url = format!("/v1/customers/{customer}/payment_methods");
    Json(list_object(page, has_more, &url)).into_response()
}

async fn get_method(
    State(state): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = record(&state, Method::GET, &uri, &headers, &Bytes::new()).await {
        return r;
    }
    let f = state.lock().expect("fake");
    match f.methods.iter().find(|m| m["id"] == id.as_str()) {
        Some(m) => Json(m.clone()).into_response(),
        None => resource_missing("payment_method", &id),
    }
}

/// Detaching needs only the id, as at Stripe: whose card it is is the caller's to check.
async fn detach_method(
    State(state): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = record(&state, Method::POST, &uri, &headers, &body).await {
        return r;
    }
    let mut f = state.lock().expect("fake");
    let Some(m) = f.methods.iter_mut().find(|m| m["id"] == id.as_str()) else {
        return resource_missing("payment_method", &id);
    };
    if m["customer"].is_null() {
        return refused(
            None,
            None,
            "The payment method you provided is not attached to a customer so detachment is impossible.",
        );
    }
    m["customer"] = Value::Null;
    Json(m.clone()).into_response()
}

impl FakeStripe {
    /// A card saved on `customer` (or on none), `created` seconds since the epoch; its id.
    pub(super) fn save_card(
        &self,
        customer: Option<&str>,
        card: (&str, &str, i64, i64),
        created: i64,
    ) -> String {
        let mut f = self.state.lock().expect("fake");
        let id = next_id(&mut f, "pm");
        let method = card_method_object(&id, customer, card, created);
        f.methods.push(method);
        id
    }

    /// The member enters a card on Stripe's setup page: it is saved on the session's customer
    /// and the session completes (nothing paid). Returns the card's id.
    pub(super) fn complete_setup(&self, session: &str, card: (&str, &str, i64, i64)) -> String {
        let customer = {
            let mut f = self.state.lock().expect("fake");
            let s = f.sessions.get_mut(session).expect("session");
            assert_eq!(s["mode"], "setup");
            s["status"] = json!("complete");
            s["url"] = Value::Null;
            s["customer"].as_str().expect("customer").to_owned()
        };
        self.save_card(Some(&customer), card, patriotpay::clock::now_unix())
    }

    /// The next request to `path` by `method` gets this answer instead.
    pub(super) fn script_for(&self, method: Method, path: &str, status: u16, body: String) {
        self.state.lock().expect("fake").scripted_for.push((
            method,
            path.to_owned(),
            StatusCode::from_u16(status).expect("status"),
            body,
        ));
    }
}
