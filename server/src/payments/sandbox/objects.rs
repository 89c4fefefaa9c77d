//! The sandbox's objects as Stripe shapes them in events: Checkout Session (payment or setup
//! mode), PaymentIntent (from a checkout or an off-session charge), Charge and Dispute, with the
//! fields the portal (or a Stripe library) reads.

use super::store::{DisputeRow, PaymentRow, SessionRow};
use super::Sandbox;
use crate::payments::{CheckoutStatus, MethodKind, PaymentStatus, CURRENCY};

impl Sandbox {
    /// A Stripe-shaped Checkout Session object, as it appears in an event.
    pub(super) fn session_json(&self, s: &SessionRow) -> serde_json::Value {
        let methods: &[&str] = if s.bank_debit() {
            &["card", "us_bank_account"]
        } else {
            &["card"]
        };
        let payment_status = if s.is_setup() {
            "no_payment_required"
        } else if s.paid() {
            "paid"
        } else {
            "unpaid"
        };
        serde_json::json!({
            "id": s.id,
            "object": "checkout.session",
            "amount_total": (!s.is_setup()).then_some(s.amount_cents),
            "currency": CURRENCY,
            "client_reference_id": s.client_reference_id,
            "created": s.created,
            "expires_at": s.expires_at,
            "livemode": false,
            "mode": s.mode,
            "customer": s.customer_id,
            "setup_intent": s.setup_intent,
            "payment_intent": s.payment_intent,
            "payment_method_types": methods,
            "payment_status": payment_status,
            "status": s.status,
            "success_url": s.success_url,
            "cancel_url": s.cancel_url,
            "metadata": {},
            "url": (s.status() == CheckoutStatus::Open).then(|| self.checkout_url(&s.id)),
        })
    }
}

/// A Stripe-shaped PaymentIntent object: our ids in its metadata (`checkout`, `statements`, as
/// the Stripe processor sends them), and for an off-session charge its customer and card.
pub(super) fn payment_json(p: &PaymentRow) -> serde_json::Value {
    let status = match p.status() {
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Processing => "processing",
        _ if p.status == "requires_action" => "requires_action",
        _ => "requires_payment_method",
    };
    let mut metadata = serde_json::Map::new();
    if let Some(c) = &p.checkout_ref {
        metadata.insert("checkout".into(), c.clone().into());
    }
    if let Some(s) = &p.statement_ref {
        metadata.insert("statements".into(), s.clone().into());
    }
    let received = if p.status() == PaymentStatus::Succeeded {
        p.amount_cents
    } else {
        0
    };
    serde_json::json!({
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount_cents,
        "amount_received": received,
        "currency": p.currency,
        "status": status,
        "created": p.created,
        "latest_charge": p.id.replacen("pi_", "ch_", 1),
        "payment_method_types": [p.method],
        "last_payment_error": p.last_error.as_ref().map(|code| serde_json::json!({
            "type": if p.method() == MethodKind::Card { "card_error" } else { "invalid_request_error" },
            "code": if p.method() == MethodKind::Card { "card_declined" } else { "payment_method_provider_decline" },
            "decline_code": code,
        })),
        "next_action": (status == "requires_action").then(|| serde_json::json!({
            "type": "use_stripe_sdk",
        })),
        "customer": p.customer_id,
        "payment_method": p.payment_method_id,
        "livemode": false,
        "metadata": metadata,
    })
}

/// A Stripe-shaped Charge object: what `charge.refunded` carries.
pub(super) fn charge_json(p: &PaymentRow) -> serde_json::Value {
    serde_json::json!({
        "id": p.id.replacen("pi_", "ch_", 1),
        "object": "charge",
        "payment_intent": p.id,
        "amount": p.amount_cents,
        "amount_refunded": p.amount_refunded,
        "currency": p.currency,
        "refunded": p.amount_refunded == p.amount_cents,
        "livemode": false,
    })
}

/// A Stripe-shaped Dispute object.
pub(super) fn dispute_json(d: &DisputeRow) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "object": "dispute",
        "payment_intent": d.payment_id,
        "charge": d.payment_id.replacen("pi_", "ch_", 1),
        "amount": d.amount_cents,
        "currency": d.currency,
        "status": d.status,
        "reason": d.reason,
        "created": d.created,
        "livemode": false,
    })
}
