//! Message delivery settings (issue 13): which providers carry texts and emails, their
//! credentials, and the outbox worker's pace. The embedded default keeps every message in the
//! outbox (no network).

use super::Secret;
use crate::messages::providers::{Providers, TwilioSms};
use crate::messages::smtp::{SmtpConfig, SmtpEmail, SmtpTls};
use crate::messages::twilio::{TwilioAuth, TwilioConfig};
use clap::Args;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SmsProviderKind {
    /// Kept in the outbox, readable in the demo's outbox viewer; nothing is sent.
    Outbox,
    /// Twilio's Messages API through a messaging service.
    Twilio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmailProviderKind {
    /// Kept in the outbox, readable in the demo's outbox viewer; nothing is sent.
    Outbox,
    /// An SMTP server (`PATRIOTPAY_SMTP_*`).
    Smtp,
}

#[derive(Args, Debug, Clone)]
pub struct Messaging {
    /// Who carries text messages: `outbox` (kept, not sent) or `twilio`.
    #[arg(
        long,
        env = "PATRIOTPAY_SMS_PROVIDER",
        default_value = "outbox",
        global = true
    )]
    pub sms_provider: SmsProviderKind,
    /// Twilio account SID (`AC…`).
    #[arg(long, env = "TWILIO_ACCOUNT_SID", global = true)]
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (or give an API key SID and secret instead).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub twilio_auth_token: Option<Secret>,
    #[arg(long, env = "TWILIO_API_KEY_SID", global = true)]
    pub twilio_api_key_sid: Option<String>,
    #[arg(
        long,
        env = "TWILIO_API_KEY_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub twilio_api_key_secret: Option<Secret>,
    /// The messaging service (`MG…`) whose numbers and A2P 10DLC campaign send the texts.
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID", global = true)]
    pub twilio_messaging_service_sid: Option<String>,
    /// Twilio's API base URL; tests point it at a local server.
    #[arg(
        long,
        env = "PATRIOTPAY_TWILIO_API_URL",
        default_value = "https://api.twilio.com",
        global = true
    )]
    pub twilio_api_url: String,
    /// Who carries emails: `outbox` (kept, not sent) or `smtp`.
    #[arg(
        long,
        env = "PATRIOTPAY_EMAIL_PROVIDER",
        default_value = "outbox",
        global = true
    )]
    pub email_provider: EmailProviderKind,
    /// The SMTP server's host name (its TLS certificate must name it).
    #[arg(long, env = "PATRIOTPAY_SMTP_HOST", global = true)]
    pub smtp_host: Option<String>,
    /// The SMTP server's port (default: 587 for STARTTLS, 465 for TLS, 25 for none).
    #[arg(long, env = "PATRIOTPAY_SMTP_PORT", global = true)]
    pub smtp_port: Option<u16>,
    #[arg(long, env = "PATRIOTPAY_SMTP_USERNAME", global = true)]
    pub smtp_username: Option<String>,
    /// Set this or `PATRIOTPAY_SMTP_PASSWORD_FILE`, not both.
    #[arg(
        long,
        env = "PATRIOTPAY_SMTP_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub smtp_password: Option<Secret>,
    /// A file holding the SMTP password (a mounted secret).
    #[arg(long, env = "PATRIOTPAY_SMTP_PASSWORD_FILE", global = true)]
    pub smtp_password_file: Option<std::path::PathBuf>,
    /// The sender: `no-reply@example.org` or `PatriotPay <no-reply@example.org>`.
    #[arg(long, env = "PATRIOTPAY_SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,
    /// `starttls` (required, not opportunistic), `tls` (implicit), or `none` (loopback only).
    #[arg(
        long,
        env = "PATRIOTPAY_SMTP_TLS",
        default_value = "starttls",
        global = true
    )]
    pub smtp_tls: SmtpTls,
    /// Seconds between the outbox worker's looks for due messages (0: no worker in this process;
    /// run `patriotpay outbox work` instead).
    #[arg(
        long,
        env = "PATRIOTPAY_OUTBOX_EVERY_SECS",
        default_value_t = 5,
        global = true
    )]
    pub outbox_every_secs: u64,
    /// Seconds between looks for balance reminders due (0: none from this process).
    #[arg(
        long,
        env = "PATRIOTPAY_REMINDERS_EVERY_SECS",
        default_value_t = 900,
        global = true
    )]
    pub reminders_every_secs: u64,
    /// Serve the outbox viewer (`/dev/outbox`) to loopback callers: set by `serve --demo` only.
    #[arg(skip)]
    pub dev_outbox: bool,
}

impl Default for Messaging {
    /// The embedded defaults (tests and `Config::for_data_dir`).
    fn default() -> Self {
        Messaging {
            sms_provider: SmsProviderKind::Outbox,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_api_key_sid: None,
            twilio_api_key_secret: None,
            twilio_messaging_service_sid: None,
            twilio_api_url: "https://api.twilio.com".into(),
            email_provider: EmailProviderKind::Outbox,
            smtp_host: None,
            smtp_port: None,
            smtp_username: None,
            smtp_password: None,
            smtp_password_file: None,
            smtp_from: None,
            smtp_tls: SmtpTls::Starttls,
            outbox_every_secs: 5,
            reminders_every_secs: 900,
            dev_outbox: false,
        }
    }
}

impl Messaging {
    /// The token Twilio's webhooks are signed with: the account's auth token (also when texts
    /// are sent with an API key), and only when Twilio carries the texts.
    pub fn webhook_token(&self) -> Option<Secret> {
        (self.sms_provider == SmsProviderKind::Twilio)
            .then(|| self.twilio_auth_token.clone())
            .flatten()
    }

    /// The providers these settings name; missing credentials stop the start with what to set.
    pub fn providers(&self, public_url: &str) -> anyhow::Result<Providers> {
        let mut providers = Providers::held();
        if self.sms_provider == SmsProviderKind::Twilio {
            let need = |v: &Option<String>, name: &str| {
                v.clone()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| anyhow::anyhow!("PATRIOTPAY_SMS_PROVIDER=twilio needs {name}"))
            };
            let account_sid = need(&self.twilio_account_sid, "TWILIO_ACCOUNT_SID")?;
            let auth = match (
                &self.twilio_auth_token,
                &self.twilio_api_key_sid,
                &self.twilio_api_key_secret,
            ) {
                // An API key sends (it can be revoked alone); the auth token, if also given,
                // only checks webhooks.
                (_, Some(sid), Some(secret)) => TwilioAuth::ApiKey {
                    sid: sid.clone(),
                    secret: secret.expose().to_owned(),
                },
                (Some(token), None, None) => TwilioAuth::AuthToken(token.expose().to_owned()),
                _ => anyhow::bail!(
                    "PATRIOTPAY_SMS_PROVIDER=twilio needs TWILIO_AUTH_TOKEN, or both \
                     TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"
                ),
            };
            let config = TwilioConfig {
                account_sid,
                auth,
                messaging_service_sid: need(
                    &self.twilio_messaging_service_sid,
                    "TWILIO_MESSAGING_SERVICE_SID",
                )?,
                base_url: self.twilio_api_url.trim_end_matches('/').to_owned(),
                status_callback: Some(format!(
                    "{}/webhooks/twilio/status",
                    public_url.trim_end_matches('/')
                )),
            };
            providers.sms = Arc::new(TwilioSms::new(config)?);
        }
        if self.email_provider == EmailProviderKind::Smtp {
            providers.email = Arc::new(SmtpEmail::new(self.smtp_config(public_url)?)?);
        }
        Ok(providers)
    }

    /// The SMTP settings, checked: a host and a sender, a password from one place only, a
    /// username and a password together (no TLS only to loopback: `SmtpEmail::new`).
    fn smtp_config(&self, public_url: &str) -> anyhow::Result<SmtpConfig> {
        let need = |v: &Option<String>, name: &str| {
            v.clone()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| anyhow::anyhow!("PATRIOTPAY_EMAIL_PROVIDER=smtp needs {name}"))
        };
        let host = need(&self.smtp_host, "PATRIOTPAY_SMTP_HOST")?;
        let from = need(&self.smtp_from, "PATRIOTPAY_SMTP_FROM")?;
        let password = match (&self.smtp_password, &self.smtp_password_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set PATRIOTPAY_SMTP_PASSWORD or PATRIOTPAY_SMTP_PASSWORD_FILE, not both"
            ),
            (Some(p), None) => Some(p.expose().to_owned()),
            (None, Some(path)) => {
                let p = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read PATRIOTPAY_SMTP_PASSWORD_FILE {}: {e}",
                        path.display()
                    )
                })?;
                Some(p.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let credentials = match (self.smtp_username.clone(), password) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => anyhow::bail!(
                "PATRIOTPAY_SMTP_USERNAME and a password (PATRIOTPAY_SMTP_PASSWORD or \
                 PATRIOTPAY_SMTP_PASSWORD_FILE) go together"
            ),
        };
        let port = self.smtp_port.unwrap_or(match self.smtp_tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        // The EHLO name and Message-ID domain: the portal's own host.
        let hello_name = reqwest::Url::parse(public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        Ok(SmtpConfig {
            host,
            port,
            tls: self.smtp_tls,
            credentials,
            from,
            hello_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp() -> Messaging {
        Messaging {
            email_provider: EmailProviderKind::Smtp,
            smtp_host: Some("smtp.example.org".into()),
            smtp_from: Some("no-reply@pay.example.org".into()),
            ..Messaging::default()
        }
    }

    fn refusal(m: &Messaging) -> String {
        match m.providers("https://pay.example.org") {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn smtp_settings_are_checked_at_start() {
        assert_eq!(refusal(&smtp()), "accepted");
        let p = smtp()
            .providers("https://pay.example.org")
            .expect("providers");
        assert_eq!(p.email.name(), "smtp");
        assert_eq!(
            Messaging::default()
                .providers("https://pay.example.org")
                .expect("providers")
                .email
                .name(),
            "outbox"
        );
        let no_host = Messaging {
            smtp_host: None,
            ..smtp()
        };
        assert!(refusal(&no_host).contains("PATRIOTPAY_SMTP_HOST"));
        let no_from = Messaging {
            smtp_from: Some(" ".into()),
            ..smtp()
        };
        assert!(refusal(&no_from).contains("PATRIOTPAY_SMTP_FROM"));
        let plain = Messaging {
            smtp_tls: SmtpTls::None,
            ..smtp()
        };
        assert!(refusal(&plain).contains("loopback"));
        let half = Messaging {
            smtp_username: Some("portal".into()),
            ..smtp()
        };
        assert!(refusal(&half).contains("go together"));
        let both = Messaging {
            smtp_username: Some("portal".into()),
            smtp_password: Some(Secret::new("x")),
            smtp_password_file: Some("/nonexistent".into()),
            ..smtp()
        };
        assert!(refusal(&both).contains("not both"));
        let missing_file = Messaging {
            smtp_username: Some("portal".into()),
            smtp_password_file: Some("/nonexistent/smtp-password".into()),
            ..smtp()
        };
        assert!(refusal(&missing_file).contains("cannot read PATRIOTPAY_SMTP_PASSWORD_FILE"));
    }
}
