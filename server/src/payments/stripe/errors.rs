//! How a failed Stripe call is sorted: "not found", "unavailable" (try again later) or
//! "rejected" (this request will not succeed as it is), with messages that name the call and
//! Stripe's codes, never the key or a value we sent.

use crate::payments::{DeclineReason, ProcessorError};
use stripe::{ApiErrors, ApiErrorsCode, ApiErrorsType, StripeError};

/// A processor id or code as it may appear in an error message: bounded, letters, digits and
/// underscores only (Stripe's messages themselves can echo request values, so they are not used).
pub(super) fn ident(s: &str) -> String {
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

/// The decline reason a payer may be told: insufficient funds, or a generic decline.
pub(super) fn decline_reason(err: &ApiErrors) -> DeclineReason {
    let insufficient = err.decline_code.as_deref() == Some("insufficient_funds")
        || err.code == Some(ApiErrorsCode::BalanceInsufficient);
    if insufficient {
        DeclineReason::InsufficientFunds
    } else {
        DeclineReason::Generic
    }
}

/// What staff are told when Stripe refuses a refund, by Stripe's error code; `None` for codes
/// that are not about the refund itself (those keep the general wording).
fn refund_refusal(code: &ApiErrorsCode) -> Option<&'static str> {
    Some(match code {
        ApiErrorsCode::ChargeAlreadyRefunded => "the payment is already fully refunded",
        ApiErrorsCode::AmountTooLarge => "the refund is more than is left of the payment",
        ApiErrorsCode::ChargeDisputed | ApiErrorsCode::RefundDisputedPayment => {
            "the payment is disputed; it cannot be refunded while the dispute is open"
        }
        ApiErrorsCode::ChargeNotRefundable => "the payment cannot be refunded",
        ApiErrorsCode::AmountTooSmall => "the refund is below the smallest amount allowed",
        _ => return None,
    })
}

/// Like `classify`, for creating a refund: Stripe's refusals that staff can act on (more than is
/// left, already refunded, disputed) get a short message saying so, with Stripe's code.
pub fn classify_refund(e: StripeError) -> ProcessorError {
    const CALL: &str = "create refund";
    if let StripeError::Stripe(err, status) = &e {
        // Stripe answers a refund above what is left with no code, only `param: amount`.
        let over = err.code.is_none()
            && err.type_ == ApiErrorsType::InvalidRequestError
            && err.param.as_deref() == Some("amount");
        let why = match &err.code {
            Some(code) => refund_refusal(code),
            None if over => refund_refusal(&ApiErrorsCode::AmountTooLarge),
            None => None,
        };
        if let Some(why) = why {
            if (400..500).contains(status) && *status != 429 {
                let code = err
                    .code
                    .as_ref()
                    .map_or_else(|| "param amount".to_owned(), |c| ident(c.as_str()));
                return ProcessorError::Rejected(format!("{why} (Stripe {CALL}: {status} {code})"));
            }
        }
    }
    classify(e, CALL)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn refund_refusals_say_what_staff_can_do_about_them() {
        let refused = |code: &str| {
            classify_refund(StripeError::Stripe(
                Box::new(api_error(
                    ApiErrorsType::InvalidRequestError,
                    Some(code),
                    None,
                )),
                400,
            ))
        };
        for (code, words) in [
            ("charge_already_refunded", "already fully refunded"),
            ("amount_too_large", "more than is left"),
            ("charge_disputed", "disputed"),
            ("refund_disputed_payment", "disputed"),
            ("charge_not_refundable", "cannot be refunded"),
        ] {
            let e = refused(code);
            assert!(
                matches!(&e, ProcessorError::Rejected(m) if m.contains(words) && m.contains(code)),
                "{code}: {e:?}"
            );
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
        // What Stripe really sends for more than is left: no code, the parameter named.
        let mut over = api_error(ApiErrorsType::InvalidRequestError, None, None);
        over.param = Some("amount".into());
        let e = classify_refund(StripeError::Stripe(Box::new(over), 400));
        assert!(
            matches!(&e, ProcessorError::Rejected(m) if m.contains("more than is left") && m.contains("400 param amount")),
            "{e:?}"
        );
        // Anything else keeps the general sorting.
        let e = refused("parameter_missing");
        assert!(
            matches!(&e, ProcessorError::Rejected(m) if m.starts_with("Stripe create refund: refused")),
            "{e:?}"
        );
        assert!(matches!(
            refused("resource_missing"),
            ProcessorError::NotFound
        ));
    }
}
