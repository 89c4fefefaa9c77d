//! Who carries a message out: text and email providers behind one trait each, chosen by
//! configuration. The embedded default (`Held`) sends nothing: messages stay in the outbox, where
//! the demo's loopback-only viewer shows them.

use super::twilio::{self, TwilioConfig};
use async_trait::async_trait;
use std::sync::Arc;

/// What a provider said about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Taken for delivery; the provider's id for it (status callbacks name it).
    Accepted { provider_id: String },
    /// Not taken this time (rate limited, the provider down): try again later.
    Retry(String),
    /// Refused for good (an invalid number): not retried.
    Permanent(String),
    /// Refused because the number opted out at the provider (Twilio error 21610: it replied
    /// STOP to the messaging service): not retried, and recorded in the consent ledger.
    Unsubscribed(String),
}

#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// Recorded with each message (`outbox.provider`).
    fn name(&self) -> &'static str;
    async fn send(&self, to: &str, body: &str) -> Outcome;
}

#[async_trait]
pub trait EmailProvider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, to: &str, subject: &str, body: &str) -> Outcome;
}

/// The providers the worker sends through.
#[derive(Clone)]
pub struct Providers {
    pub sms: Arc<dyn SmsProvider>,
    pub email: Arc<dyn EmailProvider>,
}

impl Providers {
    /// Both channels held in the outbox (the embedded default).
    pub fn held() -> Self {
        Providers {
            sms: Arc::new(Held),
            email: Arc::new(Held),
        }
    }
}

/// The embedded default: a message "sent" here stays in the outbox, to be read in the demo's
/// outbox viewer; nothing leaves the machine.
pub struct Held;

/// `outbox.provider` of a held message.
pub const HELD: &str = "outbox";

#[async_trait]
impl SmsProvider for Held {
    fn name(&self) -> &'static str {
        HELD
    }

    async fn send(&self, _: &str, _: &str) -> Outcome {
        Outcome::Accepted {
            provider_id: format!("held_{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

#[async_trait]
impl EmailProvider for Held {
    fn name(&self) -> &'static str {
        HELD
    }

    async fn send(&self, _: &str, _: &str, _: &str) -> Outcome {
        Outcome::Accepted {
            provider_id: format!("held_{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

/// Texts through Twilio's Messages API (a messaging service, so the sending number and its
/// 10DLC campaign are Twilio's configuration, not ours).
pub struct TwilioSms {
    client: reqwest::Client,
    config: TwilioConfig,
}

impl TwilioSms {
    pub fn new(config: TwilioConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        Ok(TwilioSms { client, config })
    }
}

#[async_trait]
impl SmsProvider for TwilioSms {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, to: &str, body: &str) -> Outcome {
        let req = twilio::send_request(&self.config, to, body);
        let sent = self
            .client
            .post(&req.url)
            .basic_auth(&req.basic_user, Some(&req.basic_password))
            .form(&req.form)
            .send()
            .await;
        let res = match sent {
            Ok(r) => r,
            // Not reached, or no answer: Twilio may or may not have it. Retrying could send
            // twice, so a timeout after the request went out is given up (see the worker).
            Err(e) if e.is_connect() => return Outcome::Retry("could not reach Twilio".into()),
            Err(e) if e.is_timeout() => {
                return Outcome::Permanent("no answer from Twilio in time: outcome unknown".into())
            }
            Err(_) => return Outcome::Retry("request to Twilio failed".into()),
        };
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        match twilio::parse_response(status, &text) {
            twilio::SendOutcome::Accepted { sid, .. } => Outcome::Accepted { provider_id: sid },
            twilio::SendOutcome::Retry(why) => Outcome::Retry(why),
            twilio::SendOutcome::Permanent(why)
                if twilio::error_code(&text) == Some(twilio::ERROR_UNSUBSCRIBED_RECIPIENT) =>
            {
                Outcome::Unsubscribed(why)
            }
            twilio::SendOutcome::Permanent(why) => Outcome::Permanent(why),
        }
    }
}
