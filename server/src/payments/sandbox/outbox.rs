//! The sandbox's event outbox: each event is written in the transaction of the change it
//! reports, tried at once by whoever made the change, and retried from the table by the
//! delivery loop with Stripe-like backoff until delivered or a day old. Signed like Stripe's.
//! Its table, `sandbox_events`, is read and written here only.

use super::{sandbox_id, Sandbox};
use crate::payments::signature;
use axum::http::header;
use sqlx::AnyConnection;
use std::sync::Arc;
use std::time::Duration;

/// The API version every event claims, as Stripe's carry the account's.
pub(super) const API_VERSION: &str = "2025-03-31.basil";

/// How long one delivery attempt holds an event before another deliverer may take it.
const LEASE_SECS: i64 = 60;
/// Delays after the 1st, 2nd, … failed attempt; hourly after the last, until a day has passed.
const BACKOFF_SECS: [i64; 5] = [5, 30, 120, 600, 3600];
const GIVE_UP_AFTER_SECS: i64 = 24 * 3600;

/// When to try again after `attempts` failed attempts of an event made at `created`; `None`
/// once that would be more than a day after it was made.
pub(super) fn next_attempt(attempts: i64, created: i64, now: i64) -> Option<i64> {
    let i = usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX);
    let delay = BACKOFF_SECS.get(i).copied().unwrap_or(3600);
    let next = now + delay;
    (next <= created + GIVE_UP_AFTER_SECS).then_some(next)
}

/// Writes one event about `object` to the outbox, in the caller's transaction; returns its id.
/// It is due only after a lease, so the delivery loop leaves it to the caller's own attempt.
pub(super) async fn write(
    conn: &mut AnyConnection,
    event_type: &str,
    object: serde_json::Value,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = sandbox_id("evt");
    let body = serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
        "data": { "object": object },
    })
    .to_string();
    insert_event(conn, &id, event_type, &body, now, now + LEASE_SECS).await?;
    Ok(id)
}

impl Sandbox {
    /// Delivers the events just written (in order), before the caller answers: a few quick
    /// tries, as Stripe's first delivery is prompt; what is still undelivered stays in the outbox
    /// for the loop. Without a webhook URL nothing is tried.
    pub(super) async fn deliver_now(&self, ids: &[String]) {
        if self.webhook_url().is_none() {
            return;
        }
        for id in ids {
            for delay_ms in [0u64, 200, 1000] {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                match self.attempt(id, None, delay_ms == 1000).await {
                    Ok(Attempted::Delivered | Attempted::Gone) => break,
                    Ok(Attempted::Failed) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sandbox outbox unavailable");
                        break;
                    }
                }
            }
        }
    }

    /// Tries every undelivered event that is due at `now`, or every one not given up when
    /// `now` is `None` (the test hook); how many were delivered.
    pub(super) async fn deliver_due(&self, now: Option<i64>) -> Result<usize, sqlx::Error> {
        if self.webhook_url().is_none() {
            return Ok(0);
        }
        let mut conn = self.db.pool().acquire().await?;
        let due = due_events(&mut conn, now, 100).await?;
        drop(conn);
        let mut delivered = 0;
        for e in due {
            if self.attempt(&e.id, Some(now), true).await? == Attempted::Delivered {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// One delivery attempt of event `id`: claimed first (with `due_by`, only if due by then),
    /// so two deliverers never post it at once. A failure is recorded (with the next attempt's
    /// time) only when `last` says no quick retry follows.
    async fn attempt(
        &self,
        id: &str,
        due_by: Option<Option<i64>>,
        last: bool,
    ) -> Result<Attempted, sqlx::Error> {
        let now = crate::clock::now_unix();
        let mut conn = self.db.pool().acquire().await?;
        if let Some(due_by) = due_by {
            if !claim_event(&mut conn, id, due_by, now + LEASE_SECS).await? {
                return Ok(Attempted::Gone);
            }
        }
        let Some(event) = event(&mut conn, id).await? else {
            return Ok(Attempted::Gone);
        };
        drop(conn);
        let Some(url) = self.webhook_url() else {
            return Ok(Attempted::Failed);
        };
        let ok = self.post_event(&url, &event.payload).await;
        let mut conn = self.db.pool().acquire().await?;
        let now = crate::clock::now_unix();
        if ok {
            event_delivered(&mut conn, id, now).await?;
            return Ok(Attempted::Delivered);
        }
        if last {
            let next = next_attempt(event.attempts + 1, event.created, now);
            if next.is_none() {
                tracing::error!("sandbox gave up delivering an event after a day");
            }
            event_failed(&mut conn, id, next).await?;
        }
        Ok(Attempted::Failed)
    }

    async fn post_event(&self, url: &str, body: &str) -> bool {
        let sig = signature::sign(
            &self.webhook_secret,
            crate::clock::now_unix(),
            body.as_bytes(),
        );
        match self
            .http
            .post(url)
            .header("Stripe-Signature", sig)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "sandbox webhook refused");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox webhook delivery failed");
                false
            }
        }
    }

    /// The delivery loop: every two seconds, settles the bank debits and refunds that are due
    /// and retries the events that are due, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let now = crate::clock::now_unix();
            if let Err(e) = self.settle(Some(now)).await {
                tracing::warn!(error = %e, "sandbox settlement failed");
            }
            if let Err(e) = self.deliver_due(Some(now)).await {
                tracing::warn!(error = %e, "sandbox event delivery failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct EventRow {
    id: String,
    payload: String,
    created: i64,
    attempts: i64,
}

/// Adds an event to the outbox, first due at `next_attempt_at`.
async fn insert_event(
    conn: &mut AnyConnection,
    id: &str,
    event_type: &str,
    payload: &str,
    created: i64,
    next_attempt_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_events (id, type, payload, created, attempts, next_attempt_at)
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(id)
    .bind(event_type)
    .bind(payload)
    .bind(created)
    .bind(next_attempt_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Undelivered events due at `now` (every undelivered one not given up when `None`), oldest
/// first.
async fn due_events(
    conn: &mut AnyConnection,
    now: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, payload, created, attempts FROM sandbox_events
         WHERE delivered_at IS NULL AND next_attempt_at IS NOT NULL
           AND ($1 IS NULL OR next_attempt_at <= $1)
         ORDER BY created, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

async fn event(conn: &mut AnyConnection, id: &str) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, payload, created, attempts FROM sandbox_events
         WHERE id = $1 AND delivered_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Takes an undelivered event for one delivery attempt: its next attempt moves to `lease_until`
/// so no other deliverer takes it meanwhile. False if it was delivered, given up, or (with
/// `due_by`) not due.
async fn claim_event(
    conn: &mut AnyConnection,
    id: &str,
    due_by: Option<i64>,
    lease_until: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sandbox_events SET next_attempt_at = $1
         WHERE id = $2 AND delivered_at IS NULL AND next_attempt_at IS NOT NULL
           AND ($3 IS NULL OR next_attempt_at <= $3)",
    )
    .bind(lease_until)
    .bind(id)
    .bind(due_by)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

async fn event_delivered(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sandbox_events SET delivered_at = $1, attempts = attempts + 1, next_attempt_at = NULL
         WHERE id = $2 AND delivered_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt; `next` is when to try again, `None` to give up.
async fn event_failed(
    conn: &mut AnyConnection,
    id: &str,
    next: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sandbox_events SET attempts = attempts + 1, next_attempt_at = $1
         WHERE id = $2 AND delivered_at IS NULL",
    )
    .bind(next)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Attempted {
    Delivered,
    Failed,
    /// Delivered or taken by another deliverer, given up, or forgotten.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::next_attempt;

    #[test]
    fn backoff_then_hourly_for_a_day() {
        let t0 = 1_700_000_000;
        assert_eq!(next_attempt(1, t0, t0), Some(t0 + 5));
        assert_eq!(next_attempt(2, t0, t0 + 5), Some(t0 + 35));
        assert_eq!(next_attempt(3, t0, t0), Some(t0 + 120));
        assert_eq!(next_attempt(4, t0, t0), Some(t0 + 600));
        assert_eq!(next_attempt(5, t0, t0), Some(t0 + 3600));
        assert_eq!(next_attempt(9, t0, t0 + 7200), Some(t0 + 10_800));
        assert_eq!(next_attempt(30, t0, t0 + 23 * 3600), Some(t0 + 24 * 3600));
        assert_eq!(
            next_attempt(31, t0, t0 + 24 * 3600),
            None,
            "given up after a day"
        );
    }
}
