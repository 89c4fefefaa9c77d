//! Settings: every one in one type, read from the command line or the environment, with
//! secrets redacted from `Debug`.

use clap::Args;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

mod commands;
mod messaging;
mod monitoring;
pub use commands::*;
pub use messaging::*;
pub use monitoring::Monitoring;

/// A secret setting; prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Every setting. Flags override environment variables; unset ones take embedded defaults
/// that need no network and no accounts.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Portal listen address.
    #[arg(
        long,
        env = "PATRIOTPAY_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub addr: SocketAddr,
    /// Data directory for the SQLite file, the local master key and generated secrets.
    #[arg(
        long,
        env = "PATRIOTPAY_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://…` or `postgres://…`. Default: SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,
    /// PostgreSQL: the schema owner's URL, which `migrate` uses instead of `DATABASE_URL`. When
    /// set, `serve` never migrates (it refuses to start with migrations pending).
    #[arg(
        long,
        env = "PATRIOTPAY_MIGRATE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub migrate_database_url: Option<Secret>,
    /// PostgreSQL: the role `serve` logs in as; `migrate` grants it exactly what serving needs
    /// (`audit_*` tables: SELECT, INSERT; other tables: SELECT, INSERT, UPDATE, DELETE).
    #[arg(long, env = "PATRIOTPAY_SERVING_ROLE", global = true)]
    pub serving_role: Option<String>,
    /// Public base URL of the portal, as patients reach it (links, redirects, cookie security).
    /// Default: `http://` and the bound address. An `https://` URL turns on `__Host-` cookies.
    #[arg(long, env = "PATRIOTPAY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Card processor: `sandbox` (built in, no network) or `stripe` (Stripe Checkout).
    #[arg(
        long,
        env = "PATRIOTPAY_PROCESSOR",
        default_value = "sandbox",
        global = true
    )]
    pub processor: ProcessorKind,
    /// Sandbox processor listen address (its own origin, like a real hosted checkout).
    #[arg(
        long,
        env = "PATRIOTPAY_SANDBOX_ADDR",
        default_value = "127.0.0.1:3001",
        global = true
    )]
    pub sandbox_addr: SocketAddr,
    /// Public base URL of the sandbox card page. Default: `http://` and its bound address.
    #[arg(long, env = "PATRIOTPAY_SANDBOX_PUBLIC_URL", global = true)]
    pub sandbox_public_url: Option<String>,
    /// Seconds a sandbox bank debit (ACH), or a refund of one, takes to settle by itself (Stripe's
    /// take days); tests settle them at once with a hook.
    #[arg(
        long,
        env = "PATRIOTPAY_SANDBOX_SETTLE_SECS",
        default_value_t = 120,
        global = true
    )]
    pub sandbox_settle_secs: u64,
    /// Webhook signing secret (`whsec_…`). Default: generated into the data directory.
    #[arg(
        long,
        env = "PATRIOTPAY_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub webhook_secret: Option<Secret>,
    /// The previous webhook signing secret, accepted beside the current one while a secret is
    /// rolled (Stripe signs with both until the old one expires). Unset once the roll is over.
    #[arg(
        long,
        env = "PATRIOTPAY_WEBHOOK_SECRET_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    pub webhook_secret_previous: Option<Secret>,
    /// Stripe secret key (`sk_…`) or restricted key (`rk_…`), with `PATRIOTPAY_PROCESSOR=stripe`.
    /// Set this or `PATRIOTPAY_STRIPE_SECRET_KEY_FILE`, not both.
    #[arg(
        long,
        env = "PATRIOTPAY_STRIPE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_secret_key: Option<Secret>,
    /// File holding the Stripe secret or restricted key (surrounding whitespace ignored).
    #[arg(long, env = "PATRIOTPAY_STRIPE_SECRET_KEY_FILE", global = true)]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// Stripe API base URL. Default: Stripe's own (`https://api.stripe.com/`); tests point it at
    /// a local server.
    #[arg(long, env = "PATRIOTPAY_STRIPE_API_URL", global = true)]
    pub stripe_api_url: Option<String>,
    /// Local master key file (AES-256). Default: `master.key` in the data directory, made on
    /// first start with mode 0600.
    #[arg(long, env = "PATRIOTPAY_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Key provider for envelope encryption: `local` (key file) or `aws-kms`.
    #[arg(
        long,
        env = "PATRIOTPAY_KEY_PROVIDER",
        default_value = "local",
        global = true
    )]
    pub key_provider: KeyProviderKind,
    /// KMS key id, ARN or alias that wraps new data keys (with `aws-kms`).
    #[arg(long, env = "PATRIOTPAY_KMS_KEY_ID", global = true)]
    pub kms_key_id: Option<String>,
    /// AWS region for KMS. Default: the standard AWS chain (`AWS_REGION`, profile).
    #[arg(long, env = "PATRIOTPAY_AWS_REGION", global = true)]
    pub aws_region: Option<String>,
    /// KMS endpoint override (a VPC endpoint; moto in tests). Default: the region's endpoint.
    #[arg(long, env = "PATRIOTPAY_KMS_ENDPOINT_URL", global = true)]
    pub kms_endpoint_url: Option<String>,
    /// KMS HMAC key (key spec HMAC_256, usage GENERATE_VERIFY_MAC) that signs audit anchors
    /// (with `aws-kms`; the local provider derives its anchor key from the master key).
    #[arg(long, env = "PATRIOTPAY_AUDIT_MAC_KEY_ID", global = true)]
    pub audit_mac_key_id: Option<String>,
    /// File the signed checkpoints of the audit chain are appended to (`audit anchor`, and the
    /// server at start and daily). Default: `audit-anchors.jsonl` in the data directory; better
    /// on storage the database's credentials cannot reach (append-only, object lock).
    #[arg(long, env = "PATRIOTPAY_AUDIT_ANCHOR_FILE", global = true)]
    pub audit_anchor_file: Option<PathBuf>,
    /// Seconds a plaintext data key may stay cached.
    #[arg(
        long,
        env = "PATRIOTPAY_KEY_CACHE_MAX_AGE_SECS",
        default_value_t = 300,
        global = true
    )]
    pub key_cache_max_age_secs: u64,
    /// Uses of a cached plaintext data key before it is unwrapped again.
    #[arg(
        long,
        env = "PATRIOTPAY_KEY_CACHE_MAX_USES",
        default_value_t = 100_000,
        global = true
    )]
    pub key_cache_max_uses: u64,
    /// Staff identity provider: `local` (accounts in the database) or `cognito`.
    #[arg(
        long,
        env = "PATRIOTPAY_IDENTITY_PROVIDER",
        default_value = "local",
        global = true
    )]
    pub identity_provider: IdentityProviderKind,
    /// Cognito user pool id (with `cognito`).
    #[arg(long, env = "PATRIOTPAY_COGNITO_USER_POOL_ID", global = true)]
    pub cognito_user_pool_id: Option<String>,
    /// Cognito app client id (public client, USER_PASSWORD_AUTH enabled).
    #[arg(long, env = "PATRIOTPAY_COGNITO_CLIENT_ID", global = true)]
    pub cognito_client_id: Option<String>,
    /// JWKS URL. Default: `https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json`.
    #[arg(long, env = "PATRIOTPAY_COGNITO_JWKS_URL", global = true)]
    pub cognito_jwks_url: Option<String>,
    /// Expected token issuer. Default: `https://cognito-idp.{region}.amazonaws.com/{pool}`.
    #[arg(long, env = "PATRIOTPAY_COGNITO_ISSUER", global = true)]
    pub cognito_issuer: Option<String>,
    /// Cognito endpoint override (moto in tests).
    #[arg(long, env = "PATRIOTPAY_COGNITO_ENDPOINT_URL", global = true)]
    pub cognito_endpoint_url: Option<String>,
    /// Days a new pay link stays valid.
    #[arg(
        long,
        env = "PATRIOTPAY_LINK_TTL_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub link_ttl_days: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a proxy you run).
    #[arg(
        long,
        env = "PATRIOTPAY_TRUST_FORWARDED_FOR",
        default_value_t = false,
        global = true
    )]
    pub trust_forwarded_for: bool,
    /// Failed identity answers (date of birth, ZIP) about one practice's patients in an hour
    /// above which an alert is raised, once per practice per hour. Checks are not refused.
    #[arg(
        long,
        env = "PATRIOTPAY_IDENTITY_FAILURE_BUDGET",
        default_value_t = crate::links::DEFAULT_PRACTICE_FAILURE_BUDGET_PER_HOUR,
        global = true
    )]
    pub identity_failure_budget: u32,
    /// How long the webhook endpoint works on a new processor event before it answers anyway
    /// (milliseconds); the rest is finished by the background worker. Stripe wants an answer
    /// within seconds.
    #[arg(
        long,
        env = "PATRIOTPAY_WEBHOOK_ACK_MS",
        default_value_t = 800,
        global = true
    )]
    pub webhook_ack_ms: u64,
    /// How long the processor's return waits for the payment's webhook (milliseconds) before
    /// it shows the "confirming" page; the event usually lands within a second.
    #[arg(
        long,
        env = "PATRIOTPAY_CONFIRM_WAIT_MS",
        default_value_t = 4000,
        global = true
    )]
    pub confirm_wait_ms: u64,
    /// How often (seconds) the server looks for plan instalments to notice or charge; 0 never
    /// (tests drive autopay themselves).
    #[arg(
        long,
        env = "PATRIOTPAY_AUTOPAY_EVERY_SECS",
        default_value_t = 60,
        global = true
    )]
    pub autopay_every_secs: u64,
    /// Acknowledges running with the local master key file behind a public `https://` URL (the
    /// key then sits beside the data it protects). Must be exactly
    /// `i-understand-the-key-is-beside-the-data`; use a KMS key provider instead.
    #[arg(long, env = "PATRIOTPAY_LOCAL_KEY_IN_PRODUCTION", global = true)]
    pub local_key_in_production: Option<String>,
    /// Acknowledges running the built-in sandbox card processor (which books test cards as paid
    /// and moves no money) behind a public `https://` URL or a non-loopback listen address. Must
    /// be exactly `i-understand-no-money-moves`; configure Stripe instead.
    #[arg(long, env = "PATRIOTPAY_SANDBOX_IN_PRODUCTION", global = true)]
    pub sandbox_in_production: Option<String>,
    /// URL that receives security alerts (break-glass use) as JSON POSTs. Optional.
    #[arg(long, env = "PATRIOTPAY_ALERT_WEBHOOK_URL", global = true)]
    pub alert_webhook_url: Option<String>,
    /// Log filter, in `tracing` syntax.
    #[arg(
        long,
        env = "PATRIOTPAY_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    pub log: String,
    #[command(flatten)]
    pub messaging: Messaging,
    #[command(flatten)]
    pub monitoring: Monitoring,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityProviderKind {
    Local,
    Cognito,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyProviderKind {
    Local,
    AwsKms,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessorKind {
    Sandbox,
    Stripe,
}

impl Config {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("patriotpay.db").display()),
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| crate::crypto::default_master_key_path(&self.data_dir))
    }

    /// Where audit anchors are appended.
    pub fn audit_anchor_path(&self) -> PathBuf {
        self.audit_anchor_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-anchors.jsonl"))
    }

    /// The configured webhook secret, or one generated into the data directory on first start.
    pub fn resolve_webhook_secret(&self) -> anyhow::Result<Secret> {
        if let Some(s) = &self.webhook_secret {
            return Ok(s.clone());
        }
        let path = self.data_dir.join("webhook_secret");
        if !path.exists() {
            let secret = format!("whsec_{}", crate::crypto::random_token());
            crate::crypto::write_secret_file(&path, secret.as_bytes())?;
        }
        Ok(Secret(std::fs::read_to_string(&path)?.trim().to_owned()))
    }

    /// Every webhook signing secret to accept: the current one, then the previous during a roll.
    pub fn resolve_webhook_secrets(&self) -> anyhow::Result<Vec<Secret>> {
        let mut all = vec![self.resolve_webhook_secret()?];
        all.extend(
            self.webhook_secret_previous
                .clone()
                .filter(|s| !s.expose().trim().is_empty()),
        );
        Ok(all)
    }

    /// The Stripe settings, with the key from the environment or its file (one of them, not
    /// both: two sources that may disagree are refused rather than one silently preferred).
    pub fn stripe_settings(&self) -> anyhow::Result<crate::payments::stripe::StripeSettings> {
        let inline = self
            .stripe_secret_key
            .as_ref()
            .map(|s| s.expose().trim().to_owned())
            .filter(|s| !s.is_empty());
        let key = match (inline, &self.stripe_secret_key_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set PATRIOTPAY_STRIPE_SECRET_KEY or PATRIOTPAY_STRIPE_SECRET_KEY_FILE, not both"
            ),
            (Some(k), None) => k,
            (None, Some(path)) => {
                let k = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read PATRIOTPAY_STRIPE_SECRET_KEY_FILE {}: {e}",
                        path.display()
                    )
                })?;
                let k = k.trim().to_owned();
                if k.is_empty() {
                    anyhow::bail!(
                        "PATRIOTPAY_STRIPE_SECRET_KEY_FILE {} is empty",
                        path.display()
                    );
                }
                k
            }
            (None, None) => anyhow::bail!(
                "the stripe processor needs a secret key: set PATRIOTPAY_STRIPE_SECRET_KEY or \
                 PATRIOTPAY_STRIPE_SECRET_KEY_FILE to a secret key (sk_…) or a restricted key \
                 (rk_…) with Checkout Sessions write and PaymentIntents read"
            ),
        };
        // A publishable key (pk_…) or a webhook secret pasted by mistake would only fail later,
        // on a patient's payment; say which kind of key is wanted now (without echoing it).
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            anyhow::bail!(
                "the Stripe key must be a secret key (sk_…) or a restricted key (rk_…), not a \
                 publishable key or a webhook secret"
            );
        }
        Ok(crate::payments::stripe::StripeSettings {
            secret_key: Secret(key),
            api_url: self.stripe_api_url.clone(),
        })
    }

    /// A configuration for tests and tools: embedded defaults, ephemeral ports.
    pub fn for_data_dir(data_dir: PathBuf) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url: None,
            migrate_database_url: None,
            serving_role: None,
            public_url: None,
            processor: ProcessorKind::Sandbox,
            sandbox_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            sandbox_public_url: None,
            sandbox_settle_secs: 120,
            webhook_secret: None,
            webhook_secret_previous: None,
            stripe_secret_key: None,
            stripe_secret_key_file: None,
            stripe_api_url: None,
            master_key_file: None,
            key_provider: KeyProviderKind::Local,
            kms_key_id: None,
            aws_region: None,
            kms_endpoint_url: None,
            audit_mac_key_id: None,
            audit_anchor_file: None,
            key_cache_max_age_secs: 300,
            key_cache_max_uses: 100_000,
            identity_provider: IdentityProviderKind::Local,
            cognito_user_pool_id: None,
            cognito_client_id: None,
            cognito_jwks_url: None,
            cognito_issuer: None,
            cognito_endpoint_url: None,
            link_ttl_days: 30,
            trust_forwarded_for: false,
            identity_failure_budget: crate::links::DEFAULT_PRACTICE_FAILURE_BUDGET_PER_HOUR,
            webhook_ack_ms: 800,
            confirm_wait_ms: 4000,
            autopay_every_secs: 60,
            local_key_in_production: None,
            sandbox_in_production: None,
            alert_webhook_url: None,
            log: "info".into(),
            messaging: Messaging::default(),
            monitoring: Monitoring::default(),
        }
    }
}

/// The words that acknowledge the sandbox card processor where patients could reach it.
pub const SANDBOX_ACK: &str = "i-understand-no-money-moves";

/// The words that acknowledge a local master key in production.
pub const LOCAL_KEY_ACK: &str = "i-understand-the-key-is-beside-the-data";

impl Config {
    /// A public `https://` URL is a production deployment: its master key must not be a file
    /// beside the database unless the operator says, in so many words, that they mean it.
    pub fn check_key_placement(&self) -> anyhow::Result<()> {
        let public = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        if public
            && self.key_provider == KeyProviderKind::Local
            && self.local_key_in_production.as_deref() != Some(LOCAL_KEY_ACK)
        {
            anyhow::bail!(
                "refusing to start: the public URL is https:// (a production deployment) but the \
                 master key is the local key file, stored beside the data it protects. Use \
                 PATRIOTPAY_KEY_PROVIDER=aws-kms with PATRIOTPAY_KMS_KEY_ID, or, if you accept the \
                 risk, set PATRIOTPAY_LOCAL_KEY_IN_PRODUCTION={LOCAL_KEY_ACK}"
            );
        }
        Ok(())
    }

    /// The sandbox marks bills paid for Stripe's public test card: behind a public `https://`
    /// URL, or listening beyond loopback, patients could "pay" for free. Refused unless the
    /// operator acknowledges it in so many words.
    pub fn check_processor_placement(&self) -> anyhow::Result<()> {
        if self.processor != ProcessorKind::Sandbox {
            return Ok(());
        }
        let public = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let reachable = !self.addr.ip().is_loopback();
        if (public || reachable) && self.sandbox_in_production.as_deref() != Some(SANDBOX_ACK) {
            let why = if public {
                "the public URL is https:// (a production deployment)"
            } else {
                "the portal listens beyond loopback"
            };
            anyhow::bail!(
                "refusing to start: {why} but the card processor is the built-in sandbox, which \
                 marks bills paid for test cards and moves no money. Configure Stripe \
                 (PATRIOTPAY_PROCESSOR=stripe with PATRIOTPAY_STRIPE_SECRET_KEY or \
                 PATRIOTPAY_STRIPE_SECRET_KEY_FILE, and the webhook signing secret in \
                 PATRIOTPAY_WEBHOOK_SECRET; see the README), or, for a demo that must be \
                 reachable, set PATRIOTPAY_SANDBOX_IN_PRODUCTION={SANDBOX_ACK}"
            );
        }
        Ok(())
    }

    /// Cognito settings, with the pool's standard JWKS URL and issuer unless overridden.
    pub fn cognito_settings(&self) -> anyhow::Result<crate::cognito::CognitoSettings> {
        let pool = self.cognito_user_pool_id.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "PATRIOTPAY_COGNITO_USER_POOL_ID is required with the cognito identity provider"
            )
        })?;
        let client_id = self.cognito_client_id.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "PATRIOTPAY_COGNITO_CLIENT_ID is required with the cognito identity provider"
            )
        })?;
        let region = self
            .aws_region
            .clone()
            .or_else(|| pool.split_once('_').map(|(r, _)| r.to_owned()))
            .ok_or_else(|| anyhow::anyhow!("set PATRIOTPAY_AWS_REGION for Cognito"))?;
        let issuer = self
            .cognito_issuer
            .clone()
            .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com/{pool}"));
        let jwks_url = self
            .cognito_jwks_url
            .clone()
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        Ok(crate::cognito::CognitoSettings {
            user_pool_id: pool,
            client_id,
            region: Some(region),
            endpoint_url: self.cognito_endpoint_url.clone(),
            jwks_url,
            issuer,
        })
    }
}

#[cfg(test)]
mod tests;
