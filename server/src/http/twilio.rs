//! Twilio's webhooks: delivery statuses of our texts and replies to them. Each request must carry
//! a valid `X-Twilio-Signature` over the exact URL Twilio was given (the public URL and the
//! path) and its form parameters; anything else is a 403 and changes nothing. Served only when
//! Twilio carries the texts (with its auth token configured); otherwise 404.

use super::{AppState, RequestContext};
use crate::messages::{inbound, twilio, twilio_signature};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use patriotpay_app::urls::Url;

/// Why a webhook request is refused.
enum Refusal {
    /// Twilio does not carry the texts here.
    Off,
    Malformed,
    Forged,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Off => StatusCode::NOT_FOUND.into_response(),
            Refusal::Malformed => (StatusCode::BAD_REQUEST, "malformed form").into_response(),
            Refusal::Forged => (StatusCode::FORBIDDEN, "invalid signature").into_response(),
        }
    }
}

/// The form parameters of a request whose signature checks out.
fn verified(
    state: &AppState,
    headers: &HeaderMap,
    url: Url<'static>,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    let Some(token) = &state.twilio_auth_token else {
        return Err(Refusal::Off);
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return Err(Refusal::Malformed);
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let full = format!("{}{}", state.public_url, url.path());
    if !twilio_signature::verify(token.expose(), &full, &params, signature) {
        tracing::warn!(path = url.template(), "twilio webhook signature refused");
        return Err(Refusal::Forged);
    }
    crate::observe::webhook("twilio", "accepted");
    Ok(params)
}

/// `POST /webhooks/twilio/status`: a text's delivery status.
pub async fn status(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match verified(&state, &headers, Url::TwilioStatus, &body) {
        Ok(p) => p,
        Err(r) => return refused(&state, &ctx, r).await,
    };
    let Some(cb) = twilio::parse_status_callback(&params) else {
        return (StatusCode::BAD_REQUEST, "not a status callback").into_response();
    };
    let now = state.clock.now();
    match inbound::record_status(&state.db, &state.crypto, &cb, now).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            // A 5xx: Twilio tries again.
            tracing::error!(error = %e, "twilio status not recorded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /webhooks/twilio/inbound`: a reply to one of our texts, answered in TwiML.
pub async fn inbound(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match verified(&state, &headers, Url::TwilioInbound, &body) {
        Ok(p) => p,
        Err(r) => return refused(&state, &ctx, r).await,
    };
    let Some(msg) = twilio::parse_inbound(&params) else {
        return (StatusCode::BAD_REQUEST, "not an inbound message").into_response();
    };
    match inbound::handle(&state.db, &state.crypto, &msg, state.clock.now()).await {
        Ok(reply) => twiml(reply.as_deref()),
        Err(e) => {
            tracing::error!(error = %e, "twilio reply not recorded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The answer to a refused webhook; a forged one is audited (the anomaly rules count them).
async fn refused(state: &AppState, ctx: &RequestContext, r: Refusal) -> Response {
    if matches!(r, Refusal::Forged) {
        crate::observe::webhook_refused(&state.db, "twilio", &ctx.address, ctx.now).await;
    }
    r.into_response()
}

/// A TwiML answer: one message back, or none.
fn twiml(message: Option<&str>) -> Response {
    let body = match message {
        Some(m) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(m)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn replies_are_escaped_into_twiml() {
        assert_eq!(
            super::xml_escape("a<b & \"c\""),
            "a&lt;b &amp; &quot;c&quot;"
        );
    }
}
