//! Refunds and disputes at Stripe: what a refund request sends (the PaymentIntent, the amount,
//! Stripe's reason where it has one, our ids in metadata) and how Stripe's refund and dispute
//! objects read as ours.

use super::errors::ident;
use crate::money::Money;
use crate::payments::{
    ProcessorDispute, ProcessorError, ProcessorRefund, RefundReason, RefundRequest, RefundStatus,
};
use std::collections::HashMap;
use stripe_core::refund::{CreateRefund, CreateRefundReason};
use stripe_core::{Dispute, Refund};

/// Metadata keys on a refund: our refund id and our reason code, nothing about the patient.
pub const META_REFUND: &str = "refund";
pub const META_REASON: &str = "reason";

/// Refunds per page when listing (Stripe's maximum).
pub const PAGE_SIZE: i64 = 100;
/// Pages read before giving up on a list: no payment has thousands of refunds, and a server
/// that kept saying "more" must not hold a job forever.
pub const MAX_PAGES: usize = 50;

/// Stripe's reason for ours, where Stripe has one: its reasons change how Stripe treats the
/// refund (fraud reviews, card network reporting), so only the two that mean the same are sent.
fn stripe_reason(reason: RefundReason) -> Option<CreateRefundReason> {
    match reason {
        RefundReason::Duplicate => Some(CreateRefundReason::Duplicate),
        RefundReason::RequestedByCustomer => Some(CreateRefundReason::RequestedByCustomer),
        RefundReason::BillingError | RefundReason::Overpayment => None,
    }
}

/// The refund Stripe should make for `req`. The same request always makes the same parameters
/// (what Stripe checks an idempotency key's retry against).
pub fn refund_params(req: &RefundRequest) -> Result<CreateRefund, ProcessorError> {
    if !req.amount.is_positive() {
        return Err(ProcessorError::Rejected(
            "refund amount must be positive".into(),
        ));
    }
    if req.payment.is_empty() {
        return Err(ProcessorError::Rejected("refund names no payment".into()));
    }
    let metadata: HashMap<String, String> = HashMap::from([
        (META_REFUND.to_owned(), req.refund_ref.as_str().to_owned()),
        (META_REASON.to_owned(), req.reason.as_str().to_owned()),
    ]);
    let mut params = CreateRefund::new()
        .payment_intent(req.payment.as_str())
        .amount(req.amount.cents())
        .metadata(metadata);
    if let Some(reason) = stripe_reason(req.reason) {
        params = params.reason(reason);
    }
    Ok(params)
}

/// Stripe's refund statuses: `pending` and `requires_action` (a bank refund waiting for the
/// payer's details) are both "not yet"; anything new is treated as not yet too, which moves no
/// money and is re-read at the next event.
fn refund_status(status: Option<&str>) -> RefundStatus {
    match status {
        Some("succeeded") => RefundStatus::Succeeded,
        Some("failed") => RefundStatus::Failed,
        Some("canceled") => RefundStatus::Canceled,
        _ => RefundStatus::Pending,
    }
}

/// A Stripe refund as ours. `payment` is the PaymentIntent it was asked for, used when the
/// object does not name one (a refund of a bare charge, which the portal never makes).
pub fn to_refund(r: &Refund, payment: &str) -> ProcessorRefund {
    ProcessorRefund {
        id: r.id.as_str().to_owned(),
        payment: r
            .payment_intent
            .as_ref()
            .map_or_else(|| payment.to_owned(), |p| p.id().as_str().to_owned()),
        amount: Money::from_cents(r.amount),
        currency: r.currency.to_string(),
        status: refund_status(r.status.as_deref()),
        refund_ref: r
            .metadata
            .as_ref()
            .and_then(|m| m.get(META_REFUND))
            .cloned(),
        created: r.created,
    }
}

/// A Stripe dispute as ours. Its payment is the PaymentIntent (an id, or the object when
/// expanded); a dispute on a charge without one names the charge, which matches none of ours.
pub fn to_dispute(d: &Dispute) -> ProcessorDispute {
    ProcessorDispute {
        id: d.id.as_str().to_owned(),
        payment: d.payment_intent.as_ref().map_or_else(
            || d.charge.id().as_str().to_owned(),
            |p| p.id().as_str().to_owned(),
        ),
        amount: Money::from_cents(d.amount),
        currency: d.currency.to_string(),
        status: ident(d.status.as_str()),
        // A code such as `fraudulent`; the payer's own words live in the evidence, never read.
        reason: ident(&d.reason),
        created: d.created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RefundId;
    use stripe::StripeRequest;

    fn request(reason: RefundReason) -> RefundRequest {
        RefundRequest {
            payment: "pi_test_123".into(),
            amount: Money::from_cents(1_250),
            reason,
            refund_ref: RefundId::generate(),
        }
    }

    fn form(params: &CreateRefund) -> Vec<(String, String)> {
        let built = params.build();
        assert_eq!(built.path, "/refunds");
        let mut v =
            serde_urlencoded::from_str::<Vec<(String, String)>>(&built.body.expect("form body"))
                .expect("form");
        v.sort();
        v
    }

    #[test]
    fn a_refund_sends_the_payment_amount_and_our_ids_only() {
        let req = request(RefundReason::Duplicate);
        let sent = form(&refund_params(&req).expect("params"));
        let expected = vec![
            ("amount".to_owned(), "1250".to_owned()),
            ("metadata[reason]".to_owned(), "duplicate".to_owned()),
            (
                "metadata[refund]".to_owned(),
                req.refund_ref.as_str().to_owned(),
            ),
            ("payment_intent".to_owned(), "pi_test_123".to_owned()),
            ("reason".to_owned(), "duplicate".to_owned()),
        ];
        assert_eq!(sent, expected);
        assert_eq!(
            form(&refund_params(&req).expect("params")),
            sent,
            "the same request, the same parameters"
        );
    }

    #[test]
    fn only_stripes_own_reasons_travel_as_the_reason() {
        for (ours, theirs) in [
            (RefundReason::Duplicate, Some("duplicate")),
            (
                RefundReason::RequestedByCustomer,
                Some("requested_by_customer"),
            ),
            (RefundReason::BillingError, None),
            (RefundReason::Overpayment, None),
        ] {
            let sent = form(&refund_params(&request(ours)).expect("params"));
            let reason = sent
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.as_str());
            assert_eq!(reason, theirs, "{ours:?}");
            assert!(
                sent.contains(&("metadata[reason]".to_owned(), ours.as_str().to_owned())),
                "{ours:?}: {sent:?}"
            );
        }
    }

    #[test]
    fn a_refund_that_cannot_work_is_refused_before_stripe_is_called() {
        let mut zero = request(RefundReason::Overpayment);
        zero.amount = Money::ZERO;
        assert!(matches!(
            refund_params(&zero),
            Err(ProcessorError::Rejected(_))
        ));
        let mut none = request(RefundReason::Overpayment);
        none.payment = String::new();
        assert!(matches!(
            refund_params(&none),
            Err(ProcessorError::Rejected(_))
        ));
    }

    #[test]
    fn refund_statuses_read_as_ours() {
        for (s, ours) in [
            (Some("pending"), RefundStatus::Pending),
            (Some("requires_action"), RefundStatus::Pending),
            (Some("succeeded"), RefundStatus::Succeeded),
            (Some("failed"), RefundStatus::Failed),
            (Some("canceled"), RefundStatus::Canceled),
            (Some("something_new"), RefundStatus::Pending),
            (None, RefundStatus::Pending),
        ] {
            assert_eq!(refund_status(s), ours, "{s:?}");
        }
    }
}
