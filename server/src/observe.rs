//! Monitoring (issue 14): the process's metrics in Prometheus text format (the `metrics` crate
//! with its Prometheus exporter; series are labelled by route template and outcome, never by a
//! raw URL, account, patient or token), the gauges sampled at scrape time (outbox depth and
//! age, audit chain head age, database pool), and the log line formats (readable text in
//! development, one JSON object a line in production; each line inside a request carries its
//! request id).

use crate::db::Db;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines (development).
    #[default]
    Text,
    /// One JSON object a line, with the request's span (and so its request id) on each.
    Json,
}

/// A log line formatter writing to `writer` in `format`; the caller adds the filter. The same
/// layers the binary installs, so the canary test checks what production writes.
pub fn log_layer<S, W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => Box::new(layer.with_ansi(ansi)),
        LogFormat::Json => Box::new(
            layer
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .flatten_event(true),
        ),
    }
}

/// Histogram buckets for request latency, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed once (several test servers share one process).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .map_err(|e| tracing::warn!(error = %e, "metrics buckets refused"))
                .ok()?;
            builder
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// How often pending histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds pending histogram samples into their buckets every few seconds, until `stop`.
/// `install_recorder` starts no upkeep of its own: without it every latency sample waits for
/// the next scrape, so a portal nobody scrapes grew by a few bytes a request (issue 15's soak:
/// 46 → 74 MB in ten minutes).
pub async fn upkeep(mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(h) = handle() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(UPKEEP_EVERY) => h.run_upkeep(),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Metric names, in one place.
pub mod names {
    pub const HTTP_REQUESTS: &str = "patriotpay_http_requests_total";
    pub const HTTP_SECONDS: &str = "patriotpay_http_request_duration_seconds";
    /// Every audit event by action and outcome: identity checks (`identity.dob`,
    /// `identity.zip`), sign-ins (`member.signin`, `staff.signin`…), payments (`payment.*`),
    /// view-as sessions (`viewas.start`), break-glass grants…
    pub const AUDIT_EVENTS: &str = "patriotpay_audit_events_total";
    /// Rows per group commit (views, refusals, session rows, queue bookkeeping).
    pub const AUDIT_BATCH: &str = "patriotpay_audit_batch_events";
    pub const LOCKOUTS: &str = "patriotpay_lockouts_total";
    pub const WEBHOOKS: &str = "patriotpay_webhooks_total";
    pub const KEY_CACHE: &str = "patriotpay_key_cache_lookups_total";
    pub const KEY_PROVIDER_CALLS: &str = "patriotpay_key_provider_calls_total";
    pub const OUTBOX_DEPTH: &str = "patriotpay_outbox_queued";
    pub const OUTBOX_OLDEST: &str = "patriotpay_outbox_oldest_queued_seconds";
    pub const OUTBOX_DEAD: &str = "patriotpay_outbox_dead";
    /// Age of the oldest audit event not yet sealed into the chain (0: the head is current).
    pub const AUDIT_HEAD_AGE: &str = "patriotpay_audit_chain_head_age_seconds";
    pub const DB_POOL_SIZE: &str = "patriotpay_db_pool_connections";
    pub const DB_POOL_IDLE: &str = "patriotpay_db_pool_idle_connections";
    pub const ALERTS: &str = "patriotpay_alerts_total";
}

/// One request served: counted by route template, method and status class, and timed.
pub fn request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(
        names::HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => class
    )
    .increment(1);
    metrics::histogram!(
        names::HTTP_SECONDS,
        "route" => route.to_owned(),
        "method" => method.to_owned()
    )
    .record(elapsed.as_secs_f64());
}

/// One audit event written (its action is a fixed dotted name, never PHI).
pub fn audit_event(action: &'static str, outcome: &'static str) {
    metrics::counter!(names::AUDIT_EVENTS, "action" => action, "outcome" => outcome).increment(1);
}

/// One group commit of the group-commit writer, of `events` rows.
pub fn audit_batch(events: usize) {
    metrics::histogram!(names::AUDIT_BATCH).record(events as f64);
}

/// A sign-in or identity check refused for too many attempts.
pub fn lockout(kind: &'static str) {
    metrics::counter!(names::LOCKOUTS, "kind" => kind).increment(1);
}

/// A webhook from `provider` (`stripe`, `twilio`) and what became of it (`accepted`,
/// `bad_signature`, `malformed`, `error`).
pub fn webhook(provider: &'static str, outcome: &'static str) {
    metrics::counter!(names::WEBHOOKS, "provider" => provider, "outcome" => outcome).increment(1);
}

/// A webhook refused for its signature: counted, and an audit event (`webhook.signature`,
/// denied, actor `webhook:<provider>`, the caller's address) that the anomaly rules count.
pub async fn webhook_refused(db: &Db, provider: &'static str, address: &str, now: i64) {
    webhook(provider, "bad_signature");
    let actor = crate::audit::Actor {
        at: Some(now),
        address: Some(address.to_owned()),
        ..crate::audit::Actor::system(&format!("webhook:{provider}"))
    };
    let event = crate::audit::Event {
        actor: &actor,
        tenant: None,
        patient: None,
        action: "webhook.signature",
        resource: None,
        outcome: crate::audit::Outcome::Denied,
    };
    if let Err(e) = crate::audit::record(db.pool(), event).await {
        tracing::warn!(error = %e, "webhook refusal not audited");
    }
}

/// A data-key lookup: from the plaintext cache, or unwrapped by the key provider.
pub fn key_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(names::KEY_CACHE, "result" => result).increment(1);
}

/// A call to the key provider (`unwrap`, `generate`).
pub fn key_provider_call(provider: &'static str, op: &'static str) {
    metrics::counter!(names::KEY_PROVIDER_CALLS, "provider" => provider, "op" => op).increment(1);
}

/// An alert raised (its kind is a fixed name).
pub fn alert(kind: &str) {
    metrics::counter!(names::ALERTS, "kind" => kind.to_owned()).increment(1);
}

/// Samples the gauges read from the database (outbox, audit chain, pool) at `now`.
pub async fn sample(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    let (queued, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state IN ('queued', 'sending')",
    )
    .fetch_one(db.pool())
    .await?;
    let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'dead'")
        .fetch_one(db.pool())
        .await?;
    // How far the chain's head lags: the oldest event not sealed yet (none: 0).
    let unsealed: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(at) FROM audit_events
         WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_seals)",
    )
    .fetch_one(db.pool())
    .await?;
    metrics::gauge!(names::OUTBOX_DEPTH).set(queued as f64);
    metrics::gauge!(names::OUTBOX_OLDEST).set(oldest.map_or(0, |o| (now - o).max(0)) as f64);
    metrics::gauge!(names::OUTBOX_DEAD).set(dead as f64);
    metrics::gauge!(names::AUDIT_HEAD_AGE).set(unsealed.map_or(0, |h| (now - h).max(0)) as f64);
    let pool = db.pool();
    metrics::gauge!(names::DB_POOL_SIZE).set(f64::from(pool.size()));
    metrics::gauge!(names::DB_POOL_IDLE).set(pool.num_idle() as f64);
    Ok(())
}

/// The text a scrape answers: gauges sampled first, then every series.
pub async fn scrape(db: &Db, now: i64) -> String {
    if let Err(e) = sample(db, now).await {
        tracing::warn!(error = %e, "metrics gauges not sampled");
    }
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upkeep task ends with the server (shutdown does not wait on it); the bound is
    /// generous, not a timing claim.
    #[tokio::test]
    async fn upkeep_stops_when_the_server_does() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(upkeep(rx));
        tx.send(true).expect("send");
        tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("stopped")
            .expect("joined");
    }

    #[test]
    fn requests_are_counted_by_route_template() {
        let Some(h) = handle() else {
            panic!("the recorder installs");
        };
        request("/receipt/{payment}", "GET", 200, Duration::from_millis(3));
        request("/receipt/{payment}", "GET", 404, Duration::from_millis(1));
        let text = h.render();
        assert!(
            text.contains(
                r#"patriotpay_http_requests_total{route="/receipt/{payment}",method="GET",status="2xx"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains("patriotpay_http_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
