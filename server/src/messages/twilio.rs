//! Twilio Messages API: building the send request, reading its response, and parsing the
//! status-callback and inbound-message webhooks. No HTTP client here; the server sends the
//! [`SendRequest`] with its own client, e.g. with reqwest:
//! `client.post(&r.url).basic_auth(&r.basic_user, Some(&r.basic_password)).form(&r.form)`.
//!
//! Webhook parameters must be checked with [`super::twilio_signature::verify`] before they
//! are parsed here.

use serde::Deserialize;
use std::fmt;

/// Twilio's production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Twilio error code for a recipient who has opted out (replied STOP) at Twilio's level.
pub const ERROR_UNSUBSCRIBED_RECIPIENT: u32 = 21610;
/// Twilio error code for an invalid `To` number.
pub const ERROR_INVALID_TO_NUMBER: u32 = 21211;

const REDACTED: &str = "[redacted]";

/// How the server authenticates to Twilio.
#[derive(Clone, PartialEq, Eq)]
pub enum TwilioAuth {
    /// Account SID + auth token.
    AuthToken(String),
    /// API key SID + secret (preferred: revocable without rotating the auth token).
    ApiKey { sid: String, secret: String },
}

impl fmt::Debug for TwilioAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwilioAuth::AuthToken(_) => f.debug_tuple("AuthToken").field(&REDACTED).finish(),
            TwilioAuth::ApiKey { sid, .. } => f
                .debug_struct("ApiKey")
                .field("sid", sid)
                .field("secret", &REDACTED)
                .finish(),
        }
    }
}

/// Twilio account settings for sending. `Debug` never prints secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth: TwilioAuth,
    pub messaging_service_sid: String,
    /// [`DEFAULT_BASE_URL`] in production; a local server in tests.
    pub base_url: String,
    pub status_callback: Option<String>,
}

impl TwilioConfig {
    /// Config against [`DEFAULT_BASE_URL`] without a status callback.
    pub fn new(account_sid: &str, auth: TwilioAuth, messaging_service_sid: &str) -> Self {
        TwilioConfig {
            account_sid: account_sid.to_string(),
            auth,
            messaging_service_sid: messaging_service_sid.to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            status_callback: None,
        }
    }
}

/// An HTTP POST to make: form-encoded body, HTTP basic auth.
///
/// `Debug` redacts the password and the message body (it carries a payment link, which is a
/// credential) and masks the recipient's number.
#[derive(Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub url: String,
    pub basic_user: String,
    pub basic_password: String,
    pub form: Vec<(String, String)>,
}

impl fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form: Vec<(&str, String)> = self
            .form
            .iter()
            .map(|(k, v)| {
                let shown = match k.as_str() {
                    "To" => mask_number(v),
                    "Body" => format!("[{} chars]", v.chars().count()),
                    _ => v.clone(),
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("SendRequest")
            .field("url", &self.url)
            .field("basic_user", &self.basic_user)
            .field("basic_password", &REDACTED)
            .field("form", &form)
            .finish()
    }
}

/// Build the "create message" call: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
/// with `To`, `MessagingServiceSid`, `Body` and, if configured, `StatusCallback`.
pub fn send_request(cfg: &TwilioConfig, to_e164: &str, body: &str) -> SendRequest {
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        cfg.base_url.trim_end_matches('/'),
        encode_path_segment(&cfg.account_sid)
    );
    let (basic_user, basic_password) = match &cfg.auth {
        TwilioAuth::AuthToken(token) => (cfg.account_sid.clone(), token.clone()),
        TwilioAuth::ApiKey { sid, secret } => (sid.clone(), secret.clone()),
    };
    let mut form = vec![
        ("To".to_string(), to_e164.to_string()),
        (
            "MessagingServiceSid".to_string(),
            cfg.messaging_service_sid.clone(),
        ),
        ("Body".to_string(), body.to_string()),
    ];
    if let Some(callback) = &cfg.status_callback {
        form.push(("StatusCallback".to_string(), callback.clone()));
    }
    SendRequest {
        url,
        basic_user,
        basic_password,
        form,
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters, so a malformed SID in the
/// configuration cannot change the request path.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What to do after Twilio answered a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Twilio took the message; `status` is its initial status (`accepted`, `queued`, ...).
    Accepted { sid: String, status: String },
    /// Temporary failure; safe to send again later.
    Retry(String),
    /// Will not succeed as is; do not resend automatically.
    Permanent(String),
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Classify Twilio's answer to a send.
///
/// - 2xx with a message resource: `Accepted`. A 2xx without a readable `sid`/`status` is
///   `Permanent`: Twilio may well have queued the text, and resending could send it twice.
/// - 408, 429 and 5xx: `Retry`.
/// - Other statuses (4xx in particular): `Permanent`, described with Twilio's error code and
///   message, e.g. `Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient`.
///
/// Runs of 7 or more digits in Twilio's message (phone numbers) are masked so the outcome
/// can be logged.
pub fn parse_response(http_status: u16, body: &str) -> SendOutcome {
    match http_status {
        200..=299 => match serde_json::from_str::<MessageResource>(body) {
            Ok(m) if !m.sid.is_empty() && !m.status.is_empty() => SendOutcome::Accepted {
                sid: m.sid,
                status: m.status,
            },
            _ => SendOutcome::Permanent(format!(
                "Twilio answered HTTP {http_status} without a readable message; \
                 not resending because the text may already be queued"
            )),
        },
        408 | 429 | 500..=599 => SendOutcome::Retry(describe_error(http_status, body)),
        _ => SendOutcome::Permanent(describe_error(http_status, body)),
    }
}

fn describe_error(http_status: u16, body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            code: Some(code),
            message,
        }) => {
            let message = message.as_deref().map_or(String::new(), mask_digit_runs);
            format!("Twilio error {code} (HTTP {http_status}): {message}")
        }
        _ => format!("Twilio answered HTTP {http_status} without error details"),
    }
}

/// Twilio's numeric error code from an error response body, if there is one (so the server
/// can, for example, record an opt-out on [`ERROR_UNSUBSCRIBED_RECIPIENT`]).
pub fn error_code(body: &str) -> Option<u32> {
    serde_json::from_str::<ErrorBody>(body).ok()?.code
}

/// A message status webhook (`StatusCallback`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCallback {
    pub message_sid: String,
    /// Twilio's status as sent: `queued`, `sent`, `delivered`, `undelivered`, `failed`, ...
    pub status: String,
    /// Set on `undelivered`/`failed`, e.g. `30007` (carrier filtering).
    pub error_code: Option<String>,
}

/// Read a status callback. `None` if `MessageSid` or `MessageStatus` is missing or empty, or
/// if a field we read appears more than once (see [`super::twilio_signature`] on re-splitting).
pub fn parse_status_callback(params: &[(String, String)]) -> Option<StatusCallback> {
    let message_sid = required(params, "MessageSid")?;
    let status = required(params, "MessageStatus")?;
    let error_code = single(params, "ErrorCode")
        .ok()?
        .filter(|code| !code.is_empty());
    Some(StatusCallback {
        message_sid: message_sid.to_string(),
        status: status.to_string(),
        error_code: error_code.map(str::to_string),
    })
}

/// An SMS a patient sent to one of our numbers. `Debug` masks the number and hides the body,
/// which may contain health information.
#[derive(Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub from: String,
    pub to: String,
    pub body: String,
    pub message_sid: String,
}

impl fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("from", &mask_number(&self.from))
            .field("to", &self.to)
            .field("body", &format!("[{} chars]", self.body.chars().count()))
            .field("message_sid", &self.message_sid)
            .finish()
    }
}

/// Read an inbound-message webhook. `None` if `From`, `To` or `MessageSid` is missing or
/// empty, `Body` is missing (it may be empty, e.g. a picture without text), or any of these
/// appears more than once.
pub fn parse_inbound(params: &[(String, String)]) -> Option<InboundMessage> {
    let from = required(params, "From")?;
    let to = required(params, "To")?;
    let message_sid = required(params, "MessageSid")?;
    let body = single(params, "Body").ok()??;
    Some(InboundMessage {
        from: from.to_string(),
        to: to.to_string(),
        body: body.to_string(),
        message_sid: message_sid.to_string(),
    })
}

/// The value of `name`: `Ok(None)` if absent, `Err` if repeated.
fn single<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v.as_str())),
        (Some(_), Some(_)) => Err(()),
    }
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    single(params, name).ok()?.filter(|v| !v.is_empty())
}

/// Keep only the last four digits of a phone number, for logs.
fn mask_number(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= digits {
                    '*'
                } else {
                    c
                }
            } else {
                c
            }
        })
        .collect()
}

/// Mask every run of 7+ digits (a phone number) down to its last four digits.
fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push_str(&mask_number(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::twilio_signature;
    use super::*;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    fn cfg(auth: TwilioAuth) -> TwilioConfig {
        TwilioConfig::new(ACCOUNT, auth, SERVICE)
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn send_request_with_auth_token() {
        let mut c = cfg(TwilioAuth::AuthToken("tok-secret".into()));
        c.status_callback = Some("https://pay.example/twilio/status".into());
        let r = send_request(
            &c,
            "+15558675310",
            "Riverside: pay at https://pay.example/p/abc",
        );
        assert_eq!(
            r.url,
            format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
        );
        assert_eq!(r.basic_user, ACCOUNT);
        assert_eq!(r.basic_password, "tok-secret");
        assert_eq!(
            r.form,
            p(&[
                ("To", "+15558675310"),
                ("MessagingServiceSid", SERVICE),
                ("Body", "Riverside: pay at https://pay.example/p/abc"),
                ("StatusCallback", "https://pay.example/twilio/status"),
            ])
        );
    }

    #[test]
    fn send_request_with_api_key_and_custom_base() {
        let mut c = cfg(TwilioAuth::ApiKey {
            sid: "SK0123".into(),
            secret: "key-secret".into(),
        });
        c.base_url = "http://127.0.0.1:9999/".into();
        let r = send_request(&c, "+15558675310", "hi");
        assert_eq!(
            r.url,
            format!("http://127.0.0.1:9999/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
        );
        assert_eq!(
            (r.basic_user.as_str(), r.basic_password.as_str()),
            ("SK0123", "key-secret")
        );
        assert!(!r.form.iter().any(|(k, _)| k == "StatusCallback"));
    }

    #[test]
    fn account_sid_cannot_change_the_path() {
        let mut c = cfg(TwilioAuth::AuthToken("t".into()));
        c.account_sid = "AC1/../../x?y".into();
        let r = send_request(&c, "+1", "b");
        assert_eq!(
            r.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC1%2F..%2F..%2Fx%3Fy/Messages.json"
        );
    }

    #[test]
    fn debug_output_hides_secrets_and_patient_data() {
        let token = cfg(TwilioAuth::AuthToken("tok-secret".into()));
        let key = cfg(TwilioAuth::ApiKey {
            sid: "SK0123".into(),
            secret: "key-secret".into(),
        });
        let r = send_request(
            &key,
            "+15558675310",
            "pay at https://pay.example/p/TOKEN123",
        );
        let inbound = InboundMessage {
            from: "+15558675310".into(),
            to: "+18005550100".into(),
            body: "my chemo bill".into(),
            message_sid: "SM1".into(),
        };
        let all = format!("{token:?} {key:?} {r:?} {inbound:?}");
        for secret in ["tok-secret", "key-secret", "TOKEN123", "chemo", "8675310"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
        assert!(
            all.contains("SK0123") && all.contains("+*******5310"),
            "{all}"
        );
    }

    /// A create-message response as Twilio returns it for a Messaging Service send.
    const CREATED: &str = r#"{
        "account_sid": "AC0123456789abcdef0123456789abcdef",
        "api_version": "2010-04-01",
        "body": "Riverside Family Medicine: you have a new statement. Pay at https://pay.example/p/x",
        "date_created": "Tue, 01 Dec 2026 02:01:45 +0000",
        "date_sent": null,
        "date_updated": "Tue, 01 Dec 2026 02:01:45 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": null,
        "messaging_service_sid": "MG0123456789abcdef0123456789abcdef",
        "num_media": "0",
        "num_segments": "0",
        "price": null,
        "price_unit": null,
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "accepted",
        "subresource_uris": {
            "media": "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123456789abcdef0123456789abcdef/Media.json"
        },
        "to": "+15558675310",
        "uri": "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123456789abcdef0123456789abcdef.json"
    }"#;

    const UNSUBSCRIBED: &str = r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}"#;
    const INVALID_TO: &str = r#"{"code": 21211, "message": "Invalid 'To' Phone Number: +15551234567", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;

    #[test]
    fn created_message_is_accepted() {
        assert_eq!(
            parse_response(201, CREATED),
            SendOutcome::Accepted {
                sid: "SM0123456789abcdef0123456789abcdef".into(),
                status: "accepted".into()
            }
        );
    }

    #[test]
    fn unreadable_success_is_not_retried() {
        for body in [
            "",
            "<html>ok</html>",
            r#"{"sid": "", "status": "queued"}"#,
            r#"{"status":"queued"}"#,
        ] {
            assert!(
                matches!(parse_response(201, body), SendOutcome::Permanent(_)),
                "{body}"
            );
        }
    }

    #[test]
    fn client_errors_are_permanent_with_twilio_details() {
        assert_eq!(
            parse_response(400, UNSUBSCRIBED),
            SendOutcome::Permanent(
                "Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient".into()
            )
        );
        assert_eq!(
            parse_response(400, INVALID_TO),
            SendOutcome::Permanent(
                "Twilio error 21211 (HTTP 400): Invalid 'To' Phone Number: +*******4567".into()
            )
        );
        assert_eq!(error_code(UNSUBSCRIBED), Some(ERROR_UNSUBSCRIBED_RECIPIENT));
        assert_eq!(error_code(INVALID_TO), Some(ERROR_INVALID_TO_NUMBER));
        assert_eq!(error_code("not json"), None);
        let auth = r#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        assert!(
            matches!(parse_response(401, auth), SendOutcome::Permanent(m) if m.contains("20003"))
        );
        assert_eq!(
            parse_response(404, "<html>Not Found</html>"),
            SendOutcome::Permanent("Twilio answered HTTP 404 without error details".into())
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        let throttled = r#"{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}"#;
        assert_eq!(
            parse_response(429, throttled),
            SendOutcome::Retry("Twilio error 20429 (HTTP 429): Too Many Requests".into())
        );
        assert!(matches!(parse_response(408, ""), SendOutcome::Retry(_)));
        for status in [500, 502, 503, 504] {
            assert_eq!(
                parse_response(status, "<html>Bad Gateway</html>"),
                SendOutcome::Retry(format!(
                    "Twilio answered HTTP {status} without error details"
                ))
            );
        }
        assert!(matches!(parse_response(302, ""), SendOutcome::Permanent(_)));
    }

    /// An inbound SMS webhook body as Twilio posts it.
    const INBOUND_FORM: &str =
        "ToCountry=US&ToState=VA&SmsMessageSid=SM11111111111111111111111111111111\
        &NumMedia=0&ToCity=ARLINGTON&FromZip=22201&SmsSid=SM11111111111111111111111111111111\
        &FromState=VA&SmsStatus=received&FromCity=ARLINGTON&Body=Stop+texting+me%21\
        &FromCountry=US&To=%2B18005550100&MessagingServiceSid=MG0123456789abcdef0123456789abcdef\
        &ToZip=&NumSegments=1&MessageSid=SM11111111111111111111111111111111\
        &AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15558675310&ApiVersion=2010-04-01";

    #[test]
    fn inbound_webhook_end_to_end() {
        let params: Vec<(String, String)> = serde_urlencoded::from_str(INBOUND_FORM).unwrap();
        let url = "https://pay.example/twilio/inbound";
        let header = twilio_signature::signature("tok", url, &params);
        assert!(twilio_signature::verify("tok", url, &params, &header));
        let msg = parse_inbound(&params).unwrap();
        assert_eq!(
            msg,
            InboundMessage {
                from: "+15558675310".into(),
                to: "+18005550100".into(),
                body: "Stop texting me!".into(),
                message_sid: "SM11111111111111111111111111111111".into(),
            }
        );
        assert_eq!(
            super::super::keywords::classify(&msg.body),
            super::super::keywords::Inbound::OptOut
        );
    }

    #[test]
    fn inbound_rejects_missing_empty_and_repeated_fields() {
        let base = p(&[
            ("From", "+1555"),
            ("To", "+1800"),
            ("Body", ""),
            ("MessageSid", "SM1"),
        ]);
        assert_eq!(parse_inbound(&base).map(|m| m.body), Some(String::new()));
        for drop in ["From", "To", "Body", "MessageSid"] {
            let without: Vec<_> = base.iter().filter(|(k, _)| k != drop).cloned().collect();
            assert_eq!(parse_inbound(&without), None, "missing {drop}");
        }
        for empty in ["From", "To", "MessageSid"] {
            let blanked: Vec<_> = base
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if k == empty { String::new() } else { v.clone() },
                    )
                })
                .collect();
            assert_eq!(parse_inbound(&blanked), None, "empty {empty}");
        }
        for repeat in ["From", "To", "Body", "MessageSid"] {
            let mut twice = base.clone();
            twice.push((repeat.into(), "x".into()));
            assert_eq!(parse_inbound(&twice), None, "repeated {repeat}");
        }
    }

    #[test]
    fn status_callbacks() {
        let delivered = p(&[
            ("AccountSid", ACCOUNT),
            ("ApiVersion", "2010-04-01"),
            ("From", "+18005550100"),
            ("MessageSid", "SM0123"),
            ("MessageStatus", "delivered"),
            ("MessagingServiceSid", SERVICE),
            ("SmsSid", "SM0123"),
            ("SmsStatus", "delivered"),
            ("To", "+15558675310"),
        ]);
        assert_eq!(
            parse_status_callback(&delivered),
            Some(StatusCallback {
                message_sid: "SM0123".into(),
                status: "delivered".into(),
                error_code: None
            })
        );
        let mut failed = p(&[("MessageSid", "SM0123"), ("MessageStatus", "undelivered")]);
        failed.push(("ErrorCode".into(), "30007".into()));
        assert_eq!(
            parse_status_callback(&failed).and_then(|s| s.error_code),
            Some("30007".into())
        );
        let empty_code = p(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "sent"),
            ("ErrorCode", ""),
        ]);
        assert_eq!(
            parse_status_callback(&empty_code).map(|s| s.error_code),
            Some(None)
        );
        assert_eq!(
            parse_status_callback(&p(&[("MessageStatus", "sent")])),
            None
        );
        assert_eq!(parse_status_callback(&p(&[("MessageSid", "SM1")])), None);
        let twice = p(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "sent"),
            ("MessageStatus", "failed"),
        ]);
        assert_eq!(parse_status_callback(&twice), None);
    }

    #[test]
    fn digit_masking() {
        assert_eq!(mask_number("+15558675310"), "+*******5310");
        assert_eq!(mask_number("123"), "123");
        assert_eq!(
            mask_digit_runs("error 21610 for 5558675310."),
            "error 21610 for ******5310."
        );
    }
}
