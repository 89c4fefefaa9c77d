//! Alerts for people to act on (emergency access used, a paid event that could not be booked,
//! a practice's identity-check failure budget spent):
//! recorded, logged loudly, and posted to an optional webhook. Details name accounts,
//! practices, processor ids and reasons, never patients.

use crate::db::Db;

/// Where alerts go besides the database and the log.
#[derive(Clone, Debug, Default)]
pub struct AlertSink {
    pub webhook_url: Option<String>,
}

impl AlertSink {
    /// Records the alert and hands it to the webhook in the background.
    pub async fn raise(
        &self,
        db: &Db,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        tracing::error!(alert = kind, detail, "SECURITY ALERT");
        crate::observe::alert(kind);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alerts (at, kind, detail) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(now)
        .bind(kind)
        .bind(detail)
        .fetch_one(db.pool())
        .await?;
        if let Some(url) = self.webhook_url.clone() {
            let (db, kind, detail) = (db.clone(), kind.to_owned(), detail.to_owned());
            tokio::spawn(async move {
                let body = serde_json::json!({ "kind": kind, "detail": detail, "at": now });
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default();
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = sqlx::query("UPDATE alerts SET delivered_at = $1 WHERE id = $2")
                            .bind(crate::clock::now_unix())
                            .bind(id)
                            .execute(db.pool())
                            .await;
                    }
                    Ok(r) => {
                        tracing::error!(status = %r.status(), "alert webhook refused the alert")
                    }
                    Err(e) => tracing::error!(error = %e, "alert webhook unreachable"),
                }
            });
        }
        Ok(())
    }

    /// Like `raise`, but only the first time this exact alert is raised (a processor retries an
    /// event it could not deliver for days; one alert per event is enough).
    pub async fn raise_once(
        &self,
        db: &Db,
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
        self.raise(db, kind, detail, now).await
    }
}
