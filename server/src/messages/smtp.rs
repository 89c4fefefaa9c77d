//! Email over SMTP (`PATRIOTPAY_EMAIL_PROVIDER=smtp`) with `lettre`: plain-text messages, TLS
//! (STARTTLS or implicit) verified against Mozilla's roots, credentials from configuration, and
//! the server's answer sorted into the worker's outcomes.
//!
//! **Outcomes.** Not reached (no connection, TLS refused) and 4xx answers are "try again": the
//! server has not taken the message. 5xx answers are final. Any other failure (the connection
//! dropped or timed out mid-conversation) may have happened after the server took the message,
//! so it is given up as "outcome unknown", like Twilio's timeouts: the worker never sends twice.

use super::providers::{EmailProvider, Outcome};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a loopback host (a local relay, tests).
    None,
}

/// Everything needed to send through one SMTP server.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Username and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// The `From` address (and envelope sender).
    pub from: String,
    /// The name given in EHLO and on Message-IDs: the portal's own host.
    pub hello_name: String,
}

/// Whether `host` is this machine (the only place an unencrypted connection may go).
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub struct SmtpEmail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    hello_name: String,
}

impl SmtpEmail {
    pub fn new(config: SmtpConfig) -> anyhow::Result<Self> {
        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(TlsParameters::new(config.host.clone())?),
            SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(config.host.clone())?),
            SmtpTls::None if is_loopback(&config.host) => Tls::None,
            SmtpTls::None => anyhow::bail!(
                "PATRIOTPAY_SMTP_TLS=none is allowed only to a loopback host (not {})",
                config.host
            ),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .hello_name(ClientId::Domain(config.hello_name.clone()))
            .timeout(Some(Duration::from_secs(20)));
        if let Some((user, password)) = config.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| anyhow::anyhow!("PATRIOTPAY_SMTP_FROM is not an email address"))?;
        Ok(SmtpEmail {
            transport: builder.build(),
            from,
            hello_name: config.hello_name,
        })
    }

    /// The message as it goes out, and its Message-ID (the provider id recorded for it).
    pub fn message(
        &self,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(Message, String), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| "the recipient is not an email address".to_owned())?;
        let id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.hello_name);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|_| "the message could not be built".to_owned())?;
        Ok((message, id))
    }
}

/// The worker's outcome for an SMTP failure (see the module doc). The server's text is not
/// kept: it can echo the recipient's address.
pub fn outcome_of(e: &lettre::transport::smtp::Error) -> Outcome {
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if is_unreached(e) {
        // Also a connect that timed out: nothing was handed over.
        Outcome::Retry("could not reach the mail server".into())
    } else if e.is_transient() {
        Outcome::Retry(format!("the mail server said try again ({code})"))
    } else if e.is_permanent() {
        Outcome::Permanent(format!("the mail server refused the message ({code})"))
    } else if e.is_timeout() {
        Outcome::Permanent("no answer from the mail server in time: outcome unknown".into())
    } else {
        Outcome::Permanent("the mail conversation failed part-way: outcome unknown".into())
    }
}

/// Failed before any message could be handed over: no connection, or TLS not agreed.
fn is_unreached(e: &lettre::transport::smtp::Error) -> bool {
    if e.is_tls() {
        return true;
    }
    // lettre names connection failures only in its `Display` ("Connection error").
    e.to_string().starts_with("Connection error")
}

#[async_trait]
impl EmailProvider for SmtpEmail {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, to: &str, subject: &str, body: &str) -> Outcome {
        let (message, id) = match self.message(to, subject, body) {
            Ok(m) => m,
            Err(why) => return Outcome::Permanent(why),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Accepted { provider_id: id },
            Err(e) => outcome_of(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 2525,
            tls,
            credentials: None,
            from: "PatriotPay <no-reply@pay.example.org>".into(),
            hello_name: "pay.example.org".into(),
        }
    }

    #[test]
    fn no_tls_only_to_loopback() {
        assert!(SmtpEmail::new(config("127.0.0.1", SmtpTls::None)).is_ok());
        assert!(SmtpEmail::new(config("localhost", SmtpTls::None)).is_ok());
        assert!(SmtpEmail::new(config("[::1]", SmtpTls::None)).is_ok());
        assert!(SmtpEmail::new(config("smtp.example.org", SmtpTls::None)).is_err());
        assert!(SmtpEmail::new(config("10.0.0.5", SmtpTls::None)).is_err());
        assert!(SmtpEmail::new(config("smtp.example.org", SmtpTls::Starttls)).is_ok());
        assert!(SmtpEmail::new(config("smtp.example.org", SmtpTls::Tls)).is_ok());
    }

    #[test]
    fn a_bad_from_or_recipient_is_refused() {
        let mut c = config("127.0.0.1", SmtpTls::None);
        c.from = "not an address".into();
        assert!(SmtpEmail::new(c).is_err());
        let smtp = SmtpEmail::new(config("127.0.0.1", SmtpTls::None)).expect("smtp");
        assert!(smtp.message("nobody", "s", "b").is_err());
        let (m, id) = smtp
            .message("a@example.org", "Subject", "Body")
            .expect("message");
        let text = String::from_utf8(m.formatted()).expect("utf-8");
        assert!(text.contains(&format!("Message-ID: {id}")), "{text}");
        assert!(id.ends_with("@pay.example.org>"));
        assert!(text.contains("Content-Type: text/plain"), "{text}");
    }
}
