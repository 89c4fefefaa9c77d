//! Alerts for people to act on (emergency access used, a paid event that could not be booked,
//! a practice's identity-check failure budget spent, an anomaly rule over its threshold):
//! recorded, logged loudly, posted to an optional webhook (retried with backoff) and emailed
//! through the outbox to an optional security address. Details name accounts, practices,
//! processor ids and reasons, never patients.

use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::TenantId;

pub mod console;
use std::sync::Arc;

/// Where alerts go besides the database and the log.
#[derive(Clone, Default)]
pub struct AlertSink {
    pub webhook_url: Option<String>,
    /// The security team's address, and the keys to seal the email for the outbox.
    pub email: Option<(String, Arc<FieldCrypto>)>,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink")
            .field("webhook_url", &self.webhook_url.is_some())
            .field("email", &self.email.is_some())
            .finish()
    }
}

/// Waits before each webhook try after the first (seconds).
const WEBHOOK_RETRY_SECS: [u64; 3] = [2, 10, 60];

impl AlertSink {
    /// The sinks as configured: the webhook, and the email address with the keys to seal for it.
    pub fn configured(cfg: &crate::config::Config, crypto: Option<Arc<FieldCrypto>>) -> Self {
        AlertSink {
            webhook_url: cfg.alert_webhook_url.clone(),
            email: cfg.monitoring.alert_email.clone().zip(crypto),
        }
    }

    /// Records the alert (`tenant`: the practice it concerns, shown to that practice's security
    /// officers; `None` for the platform's), queues its email, and hands it to the webhook in the background.
    pub async fn raise(
        &self,
        db: &Db,
        tenant: Option<&TenantId>,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        tracing::error!(alert = kind, detail, "SECURITY ALERT");
        crate::observe::alert(kind);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alerts (at, kind, detail, tenant_id) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(now)
        .bind(kind)
        .bind(detail)
        .bind(tenant.map(TenantId::as_str))
        .fetch_one(db.pool())
        .await?;
        if let Some((to, crypto)) = &self.email {
            // The alert is on record already; a mail that cannot be queued is logged, not fatal.
            if let Err(e) = email(db, crypto, to, kind, detail, now).await {
                tracing::error!(error = %e, "alert email not queued");
            }
        }
        if let Some(url) = self.webhook_url.clone() {
            let (db, kind, detail) = (db.clone(), kind.to_owned(), detail.to_owned());
            tokio::spawn(async move {
                let body = serde_json::json!({ "kind": kind, "detail": detail, "at": now });
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default();
                for (attempt, wait) in std::iter::once(0).chain(WEBHOOK_RETRY_SECS).enumerate() {
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ =
                                sqlx::query("UPDATE alerts SET delivered_at = $1 WHERE id = $2")
                                    .bind(crate::clock::now_unix())
                                    .bind(id)
                                    .execute(db.pool())
                                    .await;
                            return;
                        }
                        Ok(r) => tracing::error!(
                            status = %r.status(),
                            attempt,
                            "alert webhook refused the alert"
                        ),
                        Err(e) => tracing::error!(error = %e, attempt, "alert webhook unreachable"),
                    }
                }
                tracing::error!("alert webhook gave up; the alert stays in the alerts table");
            });
        }
        Ok(())
    }

    /// Like `raise`, but only the first time this exact alert is raised (a processor retries an
    /// event it could not deliver for days; one alert per event is enough).
    pub async fn raise_once(
        &self,
        db: &Db,
        tenant: Option<&TenantId>,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let seen: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE kind = $1 AND detail = $2")
                .bind(kind)
                .bind(detail)
                .fetch_one(db.pool())
                .await?;
        if seen > 0 {
            return Ok(());
        }
        self.raise(db, tenant, kind, detail, now).await
    }
}

/// The alert as an email to the security address, queued through the outbox.
async fn email(
    db: &Db,
    crypto: &FieldCrypto,
    to: &str,
    kind: &str,
    detail: &str,
    now: i64,
) -> Result<(), anyhow::Error> {
    let text = crate::messages::texts::security_alert_email(kind, detail);
    let to = crate::phi::Phi::new(crate::accounts::normalize_email(to));
    let sealed = crate::accounts::seal_email(
        crypto,
        to,
        crate::messages::texts::SECURITY_ALERT,
        text,
        now,
    )
    .await?;
    let mut tx = db.begin_write().await?;
    crate::messages::queue(&mut tx, &sealed, now).await?;
    tx.commit().await?;
    Ok(())
}
