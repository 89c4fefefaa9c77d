//! Settings for monitoring (issue 14): the log line format, where `/metrics` is served, and the
//! anomaly rules' pace and thresholds.

use super::Secret;
use crate::anomaly::Thresholds;
use crate::observe::LogFormat;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct Monitoring {
    /// How log lines are written: `text` (readable) or `json` (one JSON object a line, each with
    /// its request's id; for production log pipelines).
    #[arg(
        long,
        env = "PATRIOTPAY_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Where `/metrics` (Prometheus text) is served, apart from the portal: `off` for nowhere.
    /// Keep it off the public network; it names routes and counts, never patients.
    #[arg(
        long,
        env = "PATRIOTPAY_METRICS_ADDR",
        default_value = "127.0.0.1:9464",
        global = true
    )]
    pub metrics_addr: String,
    /// A bearer token that lets `/metrics` also be scraped on the portal's own address (for a
    /// scraper that only reaches the load balancer). Unset: the portal answers 404 there.
    #[arg(long, env = "PATRIOTPAY_METRICS_TOKEN", global = true)]
    pub metrics_token: Option<Secret>,
    /// The security team's address: every alert is also emailed there through the outbox.
    #[arg(long, env = "PATRIOTPAY_ALERT_EMAIL", global = true)]
    pub alert_email: Option<String>,
    /// Seconds between passes of the anomaly rules (`anomaly`); 0 turns them off.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_EVERY_SECS",
        default_value_t = 60,
        global = true
    )]
    pub anomaly_every_secs: u64,
    /// The window of the count-based anomaly rules, in seconds.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_WINDOW_SECS",
        default_value_t = 900,
        global = true
    )]
    pub anomaly_window_secs: i64,
    /// Wrong identity answers on one pay link in the window before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_IDENTITY_PER_LINK",
        default_value_t = 5,
        global = true
    )]
    pub anomaly_identity_per_link: i64,
    /// Wrong identity answers from one address in the window before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_IDENTITY_PER_ADDRESS",
        default_value_t = 20,
        global = true
    )]
    pub anomaly_identity_per_address: i64,
    /// Failed sign-ins on one account in the window before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_SIGNIN_PER_ACCOUNT",
        default_value_t = 10,
        global = true
    )]
    pub anomaly_signin_per_account: i64,
    /// Failed sign-ins from one address in the window before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_SIGNIN_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub anomaly_signin_per_address: i64,
    /// Distinct patients one staff member may touch in an hour before their baseline is asked.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_STAFF_PATIENTS_FLOOR",
        default_value_t = 30,
        global = true
    )]
    pub anomaly_staff_patients_floor: i64,
    /// Over the floor, how many times a staff member's usual hour is anomalous.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_STAFF_FACTOR",
        default_value_t = 3.0,
        global = true
    )]
    pub anomaly_staff_factor: f64,
    /// View-as sessions one staff member may start in a day before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_VIEW_AS_PER_DAY",
        default_value_t = 10,
        global = true
    )]
    pub anomaly_view_as_per_day: i64,
    /// Webhook signature refusals in the window before an alert.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_WEBHOOK_SIGNATURES",
        default_value_t = 10,
        global = true
    )]
    pub anomaly_webhook_signatures: i64,
    /// Failed payments of one practice in an hour before its baseline is asked.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_PAYMENT_FAILURES_FLOOR",
        default_value_t = 10,
        global = true
    )]
    pub anomaly_payment_failures_floor: i64,
    /// Over the floor, how many times a practice's usual hour of failed payments is a spike.
    #[arg(
        long,
        env = "PATRIOTPAY_ANOMALY_PAYMENT_FACTOR",
        default_value_t = 3.0,
        global = true
    )]
    pub anomaly_payment_factor: f64,
}

impl Default for Monitoring {
    /// Tests and embedded use: text logs, no separate metrics listener, no anomaly loop (tests
    /// run the rules on their clock), the default thresholds.
    fn default() -> Self {
        let t = Thresholds::default();
        Monitoring {
            log_format: LogFormat::Text,
            metrics_addr: "off".into(),
            metrics_token: None,
            alert_email: None,
            anomaly_every_secs: 0,
            anomaly_window_secs: t.window_secs,
            anomaly_identity_per_link: t.identity_failures_per_link,
            anomaly_identity_per_address: t.identity_failures_per_address,
            anomaly_signin_per_account: t.signin_failures_per_account,
            anomaly_signin_per_address: t.signin_failures_per_address,
            anomaly_staff_patients_floor: t.staff_patients_per_hour_floor,
            anomaly_staff_factor: t.staff_baseline_factor,
            anomaly_view_as_per_day: t.view_as_per_day,
            anomaly_webhook_signatures: t.webhook_signature_failures,
            anomaly_payment_failures_floor: t.payment_failures_per_hour_floor,
            anomaly_payment_factor: t.payment_baseline_factor,
        }
    }
}

impl Monitoring {
    /// The anomaly rules' thresholds as configured.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            window_secs: self.anomaly_window_secs.max(60),
            identity_failures_per_link: self.anomaly_identity_per_link,
            identity_failures_per_address: self.anomaly_identity_per_address,
            signin_failures_per_account: self.anomaly_signin_per_account,
            signin_failures_per_address: self.anomaly_signin_per_address,
            staff_patients_per_hour_floor: self.anomaly_staff_patients_floor,
            staff_baseline_factor: self.anomaly_staff_factor,
            view_as_per_day: self.anomaly_view_as_per_day,
            webhook_signature_failures: self.anomaly_webhook_signatures,
            payment_failures_per_hour_floor: self.anomaly_payment_failures_floor,
            payment_baseline_factor: self.anomaly_payment_factor,
        }
    }

    /// The separate metrics address, if one is set.
    pub fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let a = self.metrics_addr.trim();
        if a.is_empty() || a.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        a.parse()
            .map(Some)
            .map_err(|_| format!("PATRIOTPAY_METRICS_ADDR {a:?} is not an address:port or `off`"))
    }
}
