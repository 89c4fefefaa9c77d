//! The built-in sandbox card processor: a Stripe-Checkout-like hosted card page on its own
//! listener and origin, Stripe's public test cards, and Stripe-format signed webhooks.
//! It keeps nothing of a card but its brand and last four digits.

use super::{
    signature, CheckoutRequest, CheckoutStatus, DeclineReason, MethodKind, PaymentProcessor,
    PaymentStatus, ProcessorCheckout, ProcessorDispute, ProcessorError, ProcessorPayment,
    ProcessorRefund, RefundRequest, RefundStatus, CURRENCY,
};
use crate::money::Money;
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use patriotpay_app::vm::{FieldError, PageMeta, SandboxCheckoutVm};
use patriotpay_app::Tr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Clone, Debug)]
struct SbSession {
    id: String,
    amount: Money,
    client_reference_id: String,
    success_url: String,
    cancel_url: String,
    status: CheckoutStatus,
    paid: bool,
    payment_intent: Option<String>,
    csrf: String,
    created: i64,
    expires_at: i64,
}

#[derive(Clone, Debug)]
struct SbPayment {
    id: String,
    amount: Money,
    currency: String,
    succeeded: bool,
    brand: String,
    last4: String,
    created: i64,
    last_error: Option<DeclineReason>,
    /// The dispute opened on it, if any.
    dispute: Option<String>,
}

#[derive(Default)]
struct Store {
    sessions: HashMap<String, SbSession>,
    payments: HashMap<String, SbPayment>,
    idempotency: HashMap<String, String>,
    /// In the order made.
    refunds: Vec<ProcessorRefund>,
    refund_keys: HashMap<String, String>,
    disputes: HashMap<String, ProcessorDispute>,
    /// Misbehaviour asked for by tests, by checkout id.
    misreports: HashMap<String, Misreport>,
}

/// How the sandbox misbehaves on one checkout, to test the portal against what a real
/// processor (or a bug in one) can report. Only tests ask for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misreport {
    /// A successful card is charged `amount` in `currency` instead of the checkout's own (a
    /// processor converting currencies, or one that misreports).
    Charge { amount: Money, currency: String },
    /// A successful card completes the checkout but its payment reads as failed: what a lost
    /// race between two submits once left behind.
    FailAfterCompleting,
}

/// One card attempt, as checked before the store is locked.
struct Attempt {
    brand: &'static str,
    last4: String,
    /// `None` when the card succeeds.
    decline: Option<DeclineReason>,
    now: i64,
}

/// What recording an attempt came to.
#[derive(Debug)]
enum Recorded {
    NotFound,
    /// The checkout was no longer open (a concurrent submit completed it, or it expired):
    /// nothing was written.
    NotOpen(Box<SbSession>),
    /// Paid: send the payer here and the processor event with this object.
    Completed(String, serde_json::Value),
    /// Declined: back to the merchant's cancel URL.
    Declined(String),
}

/// Shared by the processor handle the portal uses and the sandbox's own web pages.
pub struct Sandbox {
    store: Mutex<Store>,
    public_url: String,
    webhook_secret: String,
    webhook_url: RwLock<Option<String>>,
    merchant_name: String,
    http: reqwest::Client,
}

fn sandbox_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}_test_{}", hex::encode(b))
}

impl Sandbox {
    pub fn new(public_url: String, webhook_secret: String) -> Arc<Self> {
        Arc::new(Sandbox {
            store: Mutex::new(Store::default()),
            public_url,
            webhook_secret,
            webhook_url: RwLock::new(None),
            merchant_name: "PatriotPay sandbox merchant".into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Where completed-checkout events go; set once the portal knows its own address.
    pub fn set_webhook_url(&self, url: String) {
        if let Ok(mut w) = self.webhook_url.write() {
            *w = Some(url);
        }
    }

    /// Stops sending events (they are dropped), as when the portal cannot be reached for good.
    pub fn stop_webhooks(&self) {
        if let Ok(mut w) = self.webhook_url.write() {
            *w = None;
        }
    }

    /// Forgets every checkout and payment: what a restart does to a processor that keeps them
    /// in memory (the sandbox does), or a processor that lost an object.
    pub fn forget_everything(&self) {
        if let Ok(mut store) = self.store.lock() {
            *store = Store::default();
        }
    }

    /// Opens a dispute on payment `payment` for its whole amount, as a card holder's bank would,
    /// and sends `charge.dispute.created`. Tests and demos only; `None` if there is no such
    /// succeeded payment or it is disputed already.
    pub async fn open_dispute(self: &Arc<Self>, payment: &str) -> Option<String> {
        let (id, object) = {
            let mut store = self.store.lock().ok()?;
            let p = store.payments.get_mut(payment)?;
            if !p.succeeded || p.dispute.is_some() {
                return None;
            }
            let id = sandbox_id("dp");
            p.dispute = Some(id.clone());
            let d = ProcessorDispute {
                id: id.clone(),
                payment: p.id.clone(),
                amount: p.amount,
                currency: p.currency.clone(),
                status: "needs_response".into(),
                reason: "fraudulent".into(),
                created: crate::clock::now_unix(),
            };
            let object = serde_json::json!({
                "id": d.id,
                "object": "dispute",
                "payment_intent": d.payment,
                "charge": d.payment.replacen("pi_", "ch_", 1),
                "amount": d.amount.cents(),
                "currency": d.currency,
                "status": d.status,
                "reason": d.reason,
                "created": d.created,
                "livemode": false,
            });
            store.disputes.insert(id.clone(), d);
            (id, object)
        };
        self.deliver("charge.dispute.created", object).await;
        Some(id)
    }

    /// Makes checkout `id` misbehave as `how` when it is paid; false if there is no such checkout.
    pub fn misreport(&self, id: &str, how: Misreport) -> bool {
        let Ok(mut store) = self.store.lock() else {
            return false;
        };
        if !store.sessions.contains_key(id) {
            return false;
        }
        store.misreports.insert(id.to_owned(), how);
        true
    }

    /// Records one card attempt on checkout `id`. The checkout is read here, under the store's
    /// lock, not taken from before the card was checked: a concurrent submit may have completed
    /// or expired it meanwhile, and a completed checkout and its payment never change again.
    fn record_attempt(&self, id: &str, attempt: Attempt) -> Result<Recorded, ProcessorError> {
        let mut store = self.store()?;
        let misreport = store.misreports.get(id).cloned();
        let Some(s) = store.sessions.get(id) else {
            return Ok(Recorded::NotFound);
        };
        if s.status != CheckoutStatus::Open {
            return Ok(Recorded::NotOpen(Box::new(s.clone())));
        }
        // One payment per checkout, its attempts recorded on it (as a PaymentIntent's are).
        let pi_id = s.payment_intent.clone().unwrap_or_else(|| sandbox_id("pi"));
        let mut payment = SbPayment {
            id: pi_id.clone(),
            amount: s.amount,
            currency: CURRENCY.to_owned(),
            succeeded: attempt.decline.is_none(),
            brand: attempt.brand.to_owned(),
            last4: attempt.last4,
            created: attempt.now,
            last_error: attempt.decline,
            dispute: None,
        };
        if payment.succeeded {
            match misreport {
                Some(Misreport::Charge { amount, currency }) => {
                    payment.amount = amount;
                    payment.currency = currency;
                }
                Some(Misreport::FailAfterCompleting) => {
                    payment.succeeded = false;
                    payment.last_error = Some(DeclineReason::Generic);
                }
                None => {}
            }
        }
        store.payments.insert(pi_id.clone(), payment);
        let Some(s) = store.sessions.get_mut(id) else {
            return Ok(Recorded::NotFound);
        };
        s.payment_intent = Some(pi_id);
        if attempt.decline.is_none() {
            s.status = CheckoutStatus::Complete;
            s.paid = true;
            let url = s.success_url.replace("{CHECKOUT_SESSION_ID}", &s.id);
            let s = s.clone();
            Ok(Recorded::Completed(url, self.session_json(&s)))
        } else {
            Ok(Recorded::Declined(s.cancel_url.clone()))
        }
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, ProcessorError> {
        self.store
            .lock()
            .map_err(|_| ProcessorError::Unavailable("sandbox state poisoned".into()))
    }

    fn to_checkout(&self, s: &SbSession) -> ProcessorCheckout {
        ProcessorCheckout {
            id: s.id.clone(),
            url: format!("{}/checkout/{}", self.public_url, s.id),
            status: s.status,
            paid: s.paid,
            amount_total: s.amount,
            client_reference_id: Some(s.client_reference_id.clone()),
            payment_intent: s.payment_intent.clone(),
        }
    }

    /// A Stripe-shaped Checkout Session object, as it would appear in an event.
    fn session_json(&self, s: &SbSession) -> serde_json::Value {
        serde_json::json!({
            "id": s.id,
            "object": "checkout.session",
            "amount_total": s.amount.cents(),
            "currency": CURRENCY,
            "client_reference_id": s.client_reference_id,
            "created": s.created,
            "expires_at": s.expires_at,
            "livemode": false,
            "mode": "payment",
            "payment_intent": s.payment_intent,
            "payment_status": if s.paid { "paid" } else { "unpaid" },
            "status": match s.status { CheckoutStatus::Open => "open", CheckoutStatus::Complete => "complete", CheckoutStatus::Expired => "expired" },
            "success_url": s.success_url,
            "cancel_url": s.cancel_url,
            "metadata": {},
            "url": if s.status == CheckoutStatus::Open { Some(format!("{}/checkout/{}", self.public_url, s.id)) } else { None },
        })
    }

    /// Sends one signed event to the portal; retries a few times, then keeps retrying in the
    /// background as Stripe does.
    async fn deliver(self: &Arc<Self>, event_type: &str, object: serde_json::Value) {
        let Some(url) = self.webhook_url.read().ok().and_then(|u| u.clone()) else {
            tracing::warn!("sandbox has no webhook URL; event dropped");
            return;
        };
        let body = serde_json::json!({
            "id": sandbox_id("evt"),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": crate::clock::now_unix(),
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": event_type,
            "data": { "object": object },
        })
        .to_string();
        for delay_ms in [0u64, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if self.post_event(&url, &body).await {
                return;
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            for delay in [5u64, 30, 120, 600, 3600] {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                if me.post_event(&url, &body).await {
                    return;
                }
            }
            tracing::error!("sandbox gave up delivering an event");
        });
    }

    async fn post_event(&self, url: &str, body: &str) -> bool {
        let sig = signature::sign(
            &self.webhook_secret,
            crate::clock::now_unix(),
            body.as_bytes(),
        );
        match self
            .http
            .post(url)
            .header("Stripe-Signature", sig)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "sandbox webhook refused");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox webhook delivery failed");
                false
            }
        }
    }
}

#[async_trait]
impl PaymentProcessor for Arc<Sandbox> {
    fn is_test_mode(&self) -> bool {
        true
    }

    fn checkout_origin(&self) -> String {
        self.public_url.clone()
    }

    async fn create_checkout(
        &self,
        req: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorCheckout, ProcessorError> {
        if !req.amount.is_positive() {
            return Err(ProcessorError::Rejected("amount must be positive".into()));
        }
        if !req.success_url.contains("{CHECKOUT_SESSION_ID}") {
            return Err(ProcessorError::Rejected(
                "success_url lacks {CHECKOUT_SESSION_ID}".into(),
            ));
        }
        let mut store = self.store()?;
        if let Some(existing) = store
            .idempotency
            .get(idempotency_key)
            .and_then(|id| store.sessions.get(id))
        {
            return Ok(self.to_checkout(existing));
        }
        let now = crate::clock::now_unix();
        let s = SbSession {
            id: sandbox_id("cs"),
            amount: req.amount,
            client_reference_id: req.checkout_ref.as_str().to_owned(),
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            status: CheckoutStatus::Open,
            paid: false,
            payment_intent: None,
            csrf: crate::crypto::random_token(),
            created: now,
            expires_at: now + 24 * 3600,
        };
        let out = self.to_checkout(&s);
        store
            .idempotency
            .insert(idempotency_key.to_owned(), s.id.clone());
        store.sessions.insert(s.id.clone(), s);
        Ok(out)
    }

    async fn retrieve_checkout(&self, id: &str) -> Result<ProcessorCheckout, ProcessorError> {
        let store = self.store()?;
        store
            .sessions
            .get(id)
            .map(|s| self.to_checkout(s))
            .ok_or(ProcessorError::NotFound)
    }

    async fn retrieve_payment(&self, id: &str) -> Result<ProcessorPayment, ProcessorError> {
        let store = self.store()?;
        let p = store.payments.get(id).ok_or(ProcessorError::NotFound)?;
        Ok(ProcessorPayment {
            id: p.id.clone(),
            status: if p.succeeded {
                PaymentStatus::Succeeded
            } else {
                PaymentStatus::Incomplete
            },
            amount: p.amount,
            amount_received: if p.succeeded { p.amount } else { Money::ZERO },
            method: MethodKind::Card,
            currency: p.currency.clone(),
            card_brand: p.brand.clone(),
            card_last4: p.last4.clone(),
            created: p.created,
            last_error: p.last_error,
        })
    }

    async fn expire_checkout(&self, id: &str) -> Result<(), ProcessorError> {
        let mut store = self.store()?;
        let s = store.sessions.get_mut(id).ok_or(ProcessorError::NotFound)?;
        match s.status {
            CheckoutStatus::Open => {
                s.status = CheckoutStatus::Expired;
                Ok(())
            }
            CheckoutStatus::Expired => Ok(()),
            CheckoutStatus::Complete => {
                Err(ProcessorError::Rejected("checkout already complete".into()))
            }
        }
    }

    async fn create_refund(
        &self,
        req: &RefundRequest,
        idempotency_key: &str,
    ) -> Result<ProcessorRefund, ProcessorError> {
        let (refund, object) = {
            let mut store = self.store()?;
            if let Some(done) = store
                .refund_keys
                .get(idempotency_key)
                .and_then(|id| store.refunds.iter().find(|r| &r.id == id))
            {
                return Ok(done.clone());
            }
            let p = store
                .payments
                .get(&req.payment)
                .ok_or(ProcessorError::NotFound)?;
            if !p.succeeded {
                return Err(ProcessorError::Rejected(
                    "the payment did not succeed".into(),
                ));
            }
            if p.dispute.is_some() {
                return Err(ProcessorError::Rejected("the payment is disputed".into()));
            }
            let refunded: i64 = store
                .refunds
                .iter()
                .filter(|r| r.payment == req.payment && r.status != RefundStatus::Failed)
                .map(|r| r.amount.cents())
                .sum();
            if !req.amount.is_positive() || refunded + req.amount.cents() > p.amount.cents() {
                return Err(ProcessorError::Rejected(
                    "the refund is more than is left of the payment".into(),
                ));
            }
            let refund = ProcessorRefund {
                id: sandbox_id("re"),
                payment: req.payment.clone(),
                amount: req.amount,
                currency: p.currency.clone(),
                status: RefundStatus::Succeeded,
                refund_ref: Some(req.refund_ref.as_str().to_owned()),
                created: crate::clock::now_unix(),
            };
            let object = serde_json::json!({
                "id": p.id.replacen("pi_", "ch_", 1),
                "object": "charge",
                "payment_intent": p.id,
                "amount": p.amount.cents(),
                "amount_refunded": refunded + req.amount.cents(),
                "currency": p.currency,
                "refunded": refunded + req.amount.cents() == p.amount.cents(),
                "livemode": false,
            });
            store
                .refund_keys
                .insert(idempotency_key.to_owned(), refund.id.clone());
            store.refunds.push(refund.clone());
            (refund, object)
        };
        self.deliver("charge.refunded", object).await;
        Ok(refund)
    }

    async fn list_refunds(&self, payment: &str) -> Result<Vec<ProcessorRefund>, ProcessorError> {
        let store = self.store()?;
        if !store.payments.contains_key(payment) {
            return Err(ProcessorError::NotFound);
        }
        Ok(store
            .refunds
            .iter()
            .filter(|r| r.payment == payment)
            .cloned()
            .collect())
    }

    async fn retrieve_dispute(&self, id: &str) -> Result<ProcessorDispute, ProcessorError> {
        let store = self.store()?;
        store
            .disputes
            .get(id)
            .cloned()
            .ok_or(ProcessorError::NotFound)
    }
}

/// What a test card does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TestCard {
    Succeeds(&'static str),
    Declines(&'static str, DeclineReason),
}

/// Stripe's published test numbers. Any other number, however valid, is refused.
fn test_card(number: &str) -> Option<TestCard> {
    Some(match number {
        "4242424242424242" | "4000056655665556" => TestCard::Succeeds("Visa"),
        "5555555555554444" | "2223003122003222" | "5200828282828210" => {
            TestCard::Succeeds("Mastercard")
        }
        "378282246310005" | "371449635398431" => TestCard::Succeeds("American Express"),
        "6011111111111117" => TestCard::Succeeds("Discover"),
        "4000000000000002" | "4000000000009987" | "4000000000009979" => {
            TestCard::Declines("Visa", DeclineReason::Generic)
        }
        "4000000000009995" => TestCard::Declines("Visa", DeclineReason::InsufficientFunds),
        _ => return None,
    })
}

pub fn luhn_valid(digits: &str) -> bool {
    if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `MM/YY`, `MM / YY`, `MMYY` → (month, full year), if in the future.
fn parse_expiry(exp: &str, now: time::OffsetDateTime) -> Option<(u8, i32)> {
    let digits: String = exp.chars().filter(|c| c.is_ascii_digit()).collect();
    let (m, y) = match digits.len() {
        4 => (&digits[..2], &digits[2..]),
        6 => (&digits[..2], &digits[4..]),
        _ => return None,
    };
    let month: u8 = m.parse().ok()?;
    let year: i32 = 2000 + y.parse::<i32>().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let current = (now.year(), u8::from(now.month()));
    ((year, month) >= current).then_some((month, year))
}

#[derive(serde::Deserialize)]
pub struct CardForm {
    csrf: String,
    card_number: Zeroizing<String>,
    exp: String,
    cvc: Zeroizing<String>,
}

/// The sandbox's own web server: the hosted card page.
pub fn router(sandbox: Arc<Sandbox>, portal_origin: String) -> Router {
    let csp = format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {portal_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    Router::new()
        .route("/checkout/{id}", get(card_page).post(pay))
        .route("/assets/style.css", get(crate::http::assets::style))
        .with_state(sandbox)
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                let csp = csp.clone();
                async move {
                    let mut res = next.run(req).await;
                    let h = res.headers_mut();
                    if let Ok(v) = HeaderValue::from_str(&csp) {
                        h.insert(header::CONTENT_SECURITY_POLICY, v);
                    }
                    h.insert(
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    );
                    h.insert(
                        header::REFERRER_POLICY,
                        HeaderValue::from_static("same-origin"),
                    );
                    h.entry(header::CACHE_CONTROL)
                        .or_insert(HeaderValue::from_static("no-store"));
                    res
                }
            },
        ))
}

fn render(sandbox: &Sandbox, s: &SbSession, error: Option<FieldError>) -> Response {
    let vm = SandboxCheckoutVm {
        merchant: sandbox.merchant_name.clone(),
        amount: s.amount.to_string(),
        csrf: s.csrf.clone(),
        cancel_url: s.cancel_url.clone(),
        error,
        open: s.status == CheckoutStatus::Open,
    };
    let status = if vm.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = patriotpay_app::pages::sandbox_checkout(
        PageMeta::default(),
        vm,
        format!("/checkout/{}", s.id),
    );
    (status, Html(html)).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Tr::default().t("sandbox-not-found")).into_response()
}

async fn card_page(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    let session = sb
        .store
        .lock()
        .ok()
        .and_then(|s| s.sessions.get(&id).cloned());
    match session {
        Some(s) => render(&sb, &s, None),
        None => not_found(),
    }
}

async fn pay(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let Some(session) = sb
        .store
        .lock()
        .ok()
        .and_then(|s| s.sessions.get(&id).cloned())
    else {
        return not_found();
    };
    if session.status != CheckoutStatus::Open {
        return render(&sb, &session, None);
    }
    use subtle::ConstantTimeEq;
    if !bool::from(form.csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            Tr::default().t("sandbox-form-expired"),
        )
            .into_response();
    }
    let tr = Tr::default();
    let number: Zeroizing<String> = Zeroizing::new(
        form.card_number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect(),
    );
    let field = |field: &'static str, key: &str| {
        Some(FieldError {
            field,
            message: tr.t(key),
        })
    };
    if !luhn_valid(&number) {
        return render(&sb, &session, field("card-number", "sandbox-err-number"));
    }
    let Some(card) = test_card(&number) else {
        return render(&sb, &session, field("card-number", "sandbox-err-test-card"));
    };
    if parse_expiry(&form.exp, time::OffsetDateTime::now_utc()).is_none() {
        return render(&sb, &session, field("exp", "sandbox-err-exp"));
    }
    let cvc_len = if number.starts_with("37") || number.starts_with("34") {
        4
    } else {
        3
    };
    if form.cvc.len() != cvc_len || !form.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return render(&sb, &session, field("cvc", "sandbox-err-cvc"));
    }
    let last4 = number[number.len() - 4..].to_owned();
    drop(number);
    let (brand, decline) = match card {
        TestCard::Succeeds(b) => (b, None),
        TestCard::Declines(b, reason) => (b, Some(reason)),
    };
    let attempt = Attempt {
        brand,
        last4,
        decline,
        now: crate::clock::now_unix(),
    };
    let (redirect, event) = match sb.record_attempt(&id, attempt) {
        Ok(Recorded::Completed(url, object)) => (url, Some(object)),
        Ok(Recorded::Declined(url)) => (url, None),
        Ok(Recorded::NotOpen(s)) => return render(&sb, &s, None),
        Ok(Recorded::NotFound) => return not_found(),
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Tr::default().t("sandbox-unavailable"),
            )
                .into_response()
        }
    };
    if let Some(object) = event {
        // Delivered before the redirect so the receipt is usually ready on arrival; the portal
        // copes when it is not.
        sb.deliver("checkout.session.completed", object).await;
    }
    Redirect::to(&redirect).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("424242"));
    }

    #[test]
    fn only_test_cards() {
        assert_eq!(
            test_card("4242424242424242"),
            Some(TestCard::Succeeds("Visa"))
        );
        assert_eq!(
            test_card("4000000000009995"),
            Some(TestCard::Declines("Visa", DeclineReason::InsufficientFunds))
        );
        assert_eq!(test_card("4111111111111111"), None);
    }

    #[test]
    fn expiry() {
        let now = time::macros::datetime!(2026-11-25 0:00 UTC);
        assert_eq!(parse_expiry("12/34", now), Some((12, 2034)));
        assert_eq!(parse_expiry("11 / 26", now), Some((11, 2026)));
        assert_eq!(parse_expiry("10/26", now), None);
        assert_eq!(parse_expiry("13/30", now), None);
        assert_eq!(parse_expiry("1230", now), Some((12, 2030)));
    }

    /// A checkout at a fresh sandbox, as the portal starts one.
    async fn open_checkout(sb: &Arc<Sandbox>) -> String {
        let ours = crate::ids::CheckoutId::generate();
        let req = CheckoutRequest {
            amount: Money::from_cents(500),
            checkout_ref: ours.clone(),
            statement_ref: String::new(),
            description: super::super::NEUTRAL_DESCRIPTION,
            created_at: crate::clock::now_unix(),
            success_url: "http://portal.test/pay/return/x?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "http://portal.test/pay/cancelled/x".into(),
            bank_debit: false,
        };
        sb.create_checkout(&req, ours.as_str())
            .await
            .expect("checkout")
            .id
    }

    fn attempt(decline: Option<DeclineReason>) -> Attempt {
        Attempt {
            brand: "Visa",
            last4: if decline.is_some() { "0002" } else { "4242" }.into(),
            decline,
            now: 1_700_000_000,
        }
    }

    /// The race from issue 9, made deterministic: a declined submit whose card was checked while
    /// the checkout was still open reaches the store only after a good card completed it. It
    /// must change nothing: not the checkout, not its payment.
    #[tokio::test]
    async fn a_decline_that_lands_after_completion_changes_nothing() {
        let sb = Sandbox::new("http://sandbox.test".into(), "whsec_unit".into());
        let id = open_checkout(&sb).await;
        // An earlier decline, so the checkout already has its payment (the one a late decline
        // used to overwrite).
        assert!(matches!(
            sb.record_attempt(&id, attempt(Some(DeclineReason::Generic))),
            Ok(Recorded::Declined(_))
        ));
        assert!(matches!(
            sb.record_attempt(&id, attempt(None)),
            Ok(Recorded::Completed(..))
        ));
        let late = sb.record_attempt(&id, attempt(Some(DeclineReason::InsufficientFunds)));
        assert!(matches!(late, Ok(Recorded::NotOpen(_))), "{late:?}");

        let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
        assert_eq!(checkout.status, CheckoutStatus::Complete);
        assert!(checkout.paid);
        let pi = checkout.payment_intent.expect("payment");
        let payment = sb.retrieve_payment(&pi).await.expect("payment");
        assert!(
            payment.succeeded(),
            "the completed payment is never overwritten"
        );
        assert_eq!(payment.amount_received, Money::from_cents(500));
        assert_eq!(payment.card_last4, "4242");
        assert_eq!(payment.last_error, None);
        assert_eq!(payment.currency, CURRENCY);
    }

    /// Many submits at once, a barrier releasing them together: exactly one completes the
    /// checkout, and its payment is the good card's whatever the interleaving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submits_leave_one_succeeded_payment() {
        let sb = Sandbox::new("http://sandbox.test".into(), "whsec_unit".into());
        let id = open_checkout(&sb).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut tasks = vec![];
        for i in 0..16 {
            let (sb, id, barrier) = (sb.clone(), id.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let decline = (i % 4 != 0).then_some(DeclineReason::Generic);
                barrier.wait().await;
                sb.record_attempt(&id, attempt(decline))
            }));
        }
        let mut completed = 0;
        for t in tasks {
            if matches!(t.await.expect("task"), Ok(Recorded::Completed(..))) {
                completed += 1;
            }
        }
        assert_eq!(completed, 1, "one submit completes the checkout");
        let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
        assert_eq!(checkout.status, CheckoutStatus::Complete);
        let pi = checkout.payment_intent.expect("payment");
        assert!(sb.retrieve_payment(&pi).await.expect("payment").succeeded());
    }

    #[tokio::test]
    async fn a_forgetful_sandbox_says_not_found() {
        let sb = Sandbox::new("http://sandbox.test".into(), "whsec_unit".into());
        let id = open_checkout(&sb).await;
        sb.forget_everything();
        assert!(matches!(
            sb.retrieve_checkout(&id).await,
            Err(ProcessorError::NotFound)
        ));
        assert!(matches!(
            sb.expire_checkout(&id).await,
            Err(ProcessorError::NotFound)
        ));
    }
}
