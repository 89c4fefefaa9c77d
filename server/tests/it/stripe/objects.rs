//! Stripe's objects as the fake serves them, complete (async-stripe refuses an object that
//! lacks a field it requires): shapes from Stripe's OpenAPI fixtures (`fixtures3.json`) and the
//! API reference, with test-mode ids.

use serde_json::{json, Value};
use std::collections::HashMap;

pub(super) fn error_body(
    kind: &str,
    code: Option<&str>,
    decline: Option<&str>,
    message: &str,
) -> String {
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

/// A Checkout Session in payment mode, every field of the object present as Stripe sends it.
pub(super) fn session_object(id: &str, form: &HashMap<String, String>, created: i64) -> Value {
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
        "payment_method_types": allowed_methods(form),
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

/// The ways to pay Stripe offers a session: those its `allowed_payment_method_types` lets through
/// the account's settings (here: all of them), else the account's own choice.
fn allowed_methods(form: &HashMap<String, String>) -> Vec<String> {
    let mut allowed: Vec<(usize, String)> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("allowed_payment_method_types[")
                .and_then(|k| k.strip_suffix(']'))
                .and_then(|i| i.parse().ok())
                .map(|i| (i, v.clone()))
        })
        .collect();
    allowed.sort();
    if allowed.is_empty() {
        vec!["card".to_owned(), "link".to_owned()]
    } else {
        allowed.into_iter().map(|(_, v)| v).collect()
    }
}

/// One object from two halves (`json!` has a recursion limit, Stripe's objects are long).
pub(super) fn merged(mut head: Value, rest: Value) -> Value {
    if let (Some(h), Value::Object(r)) = (head.as_object_mut(), rest) {
        h.extend(r);
    }
    head
}

/// A charge with its card details, as `latest_charge` expands to.
pub(super) fn charge_object(
    id: &str,
    pi: &str,
    amount: i64,
    created: i64,
    succeeded: bool,
) -> Value {
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
pub(super) fn intent_object(
    id: &str,
    charge: Value,
    amount: i64,
    created: i64,
    succeeded: bool,
) -> Value {
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

/// The charge of an ACH Direct Debit still on its way (a PaymentIntent `processing`): pending,
/// with the bank account's details where a card's would be.
pub(super) fn bank_charge_object(id: &str, pi: &str, amount: i64, created: i64) -> Value {
    let mut charge = charge_object(id, pi, amount, created, true);
    charge["status"] = json!("pending");
    charge["paid"] = json!(false);
    charge["balance_transaction"] = json!("txn_test_1PatriotPayBank");
    charge["calculated_statement_descriptor"] = json!("PATRIOTPAY DEMO");
    charge["outcome"] = json!({
        "advice_code": null,
        "network_advice_code": null,
        "network_decline_code": null,
        "network_status": "approved_by_network",
        "reason": null,
        "risk_level": "not_assessed",
        "risk_score": null,
        "seller_message": "Payment complete.",
        "type": "authorized"
    });
    charge["payment_method"] = json!("pm_test_1PatriotPayBank");
    charge["payment_method_details"] = json!({
        "type": "us_bank_account",
        "us_bank_account": {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "expected_debit_date": "2026-12-02",
            "fingerprint": "FFDMA0xfhBjWSZLu",
            "last4": "6789",
            "mandate": "mandate_test_1PatriotPayBank",
            "payment_reference": null,
            "routing_number": "110000000"
        }
    });
    charge["receipt_url"] = json!(format!("https://pay.stripe.com/receipts/payment/{id}"));
    charge
}

/// A PaymentIntent paid by bank debit and not yet settled: `processing`, nothing received.
pub(super) fn bank_intent_object(id: &str, charge: Value, amount: i64, created: i64) -> Value {
    let mut pi = intent_object(id, charge, amount, created, true);
    pi["status"] = json!("processing");
    pi["amount_received"] = json!(0);
    pi["payment_method"] = json!("pm_test_1PatriotPayBank");
    pi["payment_method_types"] = json!(["us_bank_account"]);
    pi["payment_method_options"] = json!({
        "us_bank_account": {
            "financial_connections": { "filters": { "account_subcategories": ["checking", "savings"] }, "permissions": ["payment_method"], "prefetch": [] },
            "mandate_options": {},
            "verification_method": "automatic"
        }
    });
    pi
}

/// A refund that succeeded, as `POST /v1/refunds` answers and lists show it (fields as in
/// Stripe's `fixtures3.json`), for `payment_intent`, its charge and our metadata.
pub(super) fn refund_object(
    id: &str,
    pi: &str,
    charge: &str,
    amount: i64,
    metadata: &serde_json::Map<String, Value>,
    reason: Option<&str>,
    created: i64,
) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": format!("txn_{id}"),
        "charge": charge,
        "created": created,
        "currency": "usd",
        "customer": null,
        "customer_account": null,
        "description": null,
        "destination_details": { "card": { "reference": null, "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" }, "type": "card" },
        "metadata": metadata,
        "payment_intent": pi,
        "payment_method": "pm_test_1PatriotPayCard",
        "reason": reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

/// A page of a list, as Stripe answers `GET /v1/…` collections.
pub(super) fn list_object(data: Vec<Value>, has_more: bool, url: &str) -> Value {
    json!({ "object": "list", "data": data, "has_more": has_more, "url": url })
}

/// A dispute (chargeback) on `charge`, with the fields and nested objects of Stripe's
/// `fixtures3.json` dispute; `payment_intent` is an id, or the PaymentIntent when expanded.
pub(super) fn dispute_object(
    id: &str,
    charge: &str,
    payment_intent: Value,
    amount: i64,
    status: &str,
    reason: &str,
    created: i64,
) -> Value {
    let evidence = json!({
        "access_activity_log": null,
        "billing_address": null,
        "cancellation_policy": null,
        "cancellation_policy_disclosure": null,
        "cancellation_rebuttal": null,
        "customer_communication": null,
        "customer_email_address": null,
        "customer_name": null,
        "customer_purchase_ip": null,
        "customer_signature": null,
        "duplicate_charge_documentation": null,
        "duplicate_charge_explanation": null,
        "duplicate_charge_id": null,
        "enhanced_evidence": {},
        "product_description": null,
        "receipt": null,
        "refund_policy": null,
        "refund_policy_disclosure": null,
        "refund_refusal_explanation": null,
        "service_date": null,
        "service_documentation": null,
        "shipping_address": null,
        "shipping_carrier": null,
        "shipping_date": null,
        "shipping_documentation": null,
        "shipping_tracking_number": null,
        "uncategorized_file": null,
        "uncategorized_text": null
    });
    json!({
        "id": id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge,
        "created": created,
        "currency": "usd",
        "enhanced_eligibility_types": ["visa_compelling_evidence_3"],
        "evidence": evidence,
        "evidence_details": {
            "due_by": created + 7 * 86_400,
            "enhanced_eligibility": {},
            "has_evidence": false,
            "past_due": false,
            "submission_count": 0
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "network_reason_code": "10.4",
        "payment_intent": payment_intent,
        "payment_method_details": {
            "card": { "brand": "visa", "case_type": "chargeback", "network": "visa", "network_reason_code": "10.4" },
            "type": "card"
        },
        "reason": reason,
        "status": status
    })
}

/// A Customer as `POST /v1/customers` answers with only metadata given: every field present,
/// no name, email, phone or address.
pub(super) fn customer_object(
    id: &str,
    metadata: &serde_json::Map<String, Value>,
    created: i64,
) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "business_name": null,
        "created": created,
        "currency": null,
        "customer_account": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": null,
        "individual_name": null,
        "invoice_prefix": "7D2F1A3B",
        "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
        "livemode": false,
        "metadata": metadata,
        "name": null,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    })
}

/// A card PaymentMethod as Stripe keeps one saved through Checkout (fields as in Stripe's
/// `fixtures3.json` payment_method), on `customer` or on none.
pub(super) fn card_method_object(
    id: &str,
    customer: Option<&str>,
    card: (&str, &str, i64, i64),
    created: i64,
) -> Value {
    let (brand, last4, exp_month, exp_year) = card;
    json!({
        "id": id,
        "object": "payment_method",
        "allow_redisplay": "always",
        "billing_details": {
            "address": { "city": null, "country": "US", "line1": null, "line2": null, "postal_code": null, "state": null },
            "email": null, "name": null, "phone": null, "tax_id": null
        },
        "card": {
            "brand": brand,
            "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
            "country": "US",
            "display_brand": brand,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": format!("Fp{last4}PatriotPay"),
            "funding": "credit",
            "generated_from": null,
            "last4": last4,
            "networks": { "available": [brand], "preferred": null },
            "regulated_status": "unregulated",
            "three_d_secure_usage": { "supported": true },
            "wallet": null
        },
        "created": created,
        "customer": customer,
        "customer_account": null,
        "livemode": false,
        "metadata": {},
        "radar_options": {},
        "type": "card"
    })
}

/// A Checkout Session in setup mode: no amount, nothing to pay, a SetupIntent that will save
/// the card on the customer.
pub(super) fn setup_session_object(
    id: &str,
    setup_intent: &str,
    form: &HashMap<String, String>,
    created: i64,
) -> Value {
    let mut s = session_object(id, form, created);
    s["amount_subtotal"] = Value::Null;
    s["amount_total"] = Value::Null;
    s["currency"] = json!(form.get("currency"));
    s["customer"] = json!(form.get("customer"));
    s["customer_creation"] = Value::Null;
    s["invoice_creation"] = Value::Null;
    s["payment_method_collection"] = json!("always");
    s["payment_status"] = json!("no_payment_required");
    s["setup_intent"] = json!(setup_intent);
    s["total_details"] = Value::Null;
    s
}
