//! The processor-event job queue: the webhook stores each verified event once and answers; a
//! job is claimed under a lease (two workers never hold one), worked, and retried with backoff
//! until done, or dead after the last attempt (alerted, for a person).

use super::events::{self, EventEnvelope, EventOutcome};
use super::{PaymentError, PaymentProcessor};
use crate::alerts::AlertSink;
use crate::db::Db;
use crate::group_commit::{GroupWriter, OwnedStatement};
use std::sync::Arc;
use std::time::Duration;

/// One stored event, as a worker sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Job {
    pub event_id: String,
    pub event_type: String,
    pub object_id: String,
    /// The payment a charge or dispute event names (a key to re-fetch by).
    pub related_id: Option<String>,
    /// Including the one now under way.
    pub attempts: i64,
}

/// Attempts before a job is given up as dead. With `BACKOFF` that is about three days, as long
/// as Stripe itself retries a webhook.
pub const MAX_ATTEMPTS: i64 = 12;
/// Seconds to wait after the n-th failed attempt (the last value repeats).
const BACKOFF: [i64; 8] = [10, 30, 120, 600, 1800, 3600, 3 * 3600, 12 * 3600];
/// How long a claimed job is a worker's own; after that another may take it (a crashed worker).
const LEASE_SECS: i64 = 300;

fn backoff(attempts: i64) -> i64 {
    let i = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    BACKOFF[i.min(BACKOFF.len() - 1)]
}

/// Stores a verified event as a job the caller has claimed and works at once (the webhook):
/// stored and leased in one write, committed in a group with whatever else the writer holds
/// (`GroupWriter::execute`) before this returns. `None` if it was stored before (a duplicate
/// delivery): nothing changes. Should the caller not finish, the lease lapses and the queue
/// works it.
pub async fn enqueue_claimed(
    group: &GroupWriter,
    ev: &EventEnvelope,
    now: i64,
) -> Result<Option<Job>, sqlx::Error> {
    let job = Job {
        event_id: ev.id.clone(),
        event_type: ev.event_type.clone(),
        object_id: ev.data.object.id.clone(),
        related_id: ev.data.object.payment_ref().map(str::to_owned),
        attempts: 1,
    };
    let stored = group
        .execute(
            OwnedStatement::new(
                "INSERT INTO processor_events (event_id, event_type, object_id, related_id, received_at, state, run_after, lease_until, attempts)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $5, $6, 1)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .text(&job.event_id)
            .text(&job.event_type)
            .text(&job.object_id)
            .maybe_text(job.related_id.clone())
            .int(now)
            .int(now + LEASE_SECS),
        )
        .await?;
    Ok(stored.then_some(job))
}

/// Takes job `event_id` if it is pending, due and not leased to another worker.
pub async fn claim(db: &Db, event_id: &str, now: i64) -> Result<Option<Job>, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE processor_events SET lease_until = $1, attempts = attempts + 1
         WHERE event_id = $2 AND state = 'pending' AND run_after <= $3
           AND (lease_until IS NULL OR lease_until < $3)",
    )
    .bind(now + LEASE_SECS)
    .bind(event_id)
    .bind(now)
    .execute(&mut *db.write_conn().await?)
    .await?
    .rows_affected();
    if taken == 0 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT event_id, event_type, object_id, related_id, attempts FROM processor_events WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(db.pool())
    .await
}

/// Works one claimed job to its end for this attempt: done, retried later, or dead. The
/// outcome's alerts are raised here, once.
pub async fn work(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    job: &Job,
    now: i64,
) -> Result<Option<EventOutcome>, sqlx::Error> {
    match events::handle(db, group, processor, job, now).await {
        Ok(outcome) => {
            raise_for(db, alerts, job, &outcome, now).await?;
            // Bookkeeping only (the money moved in its own transaction): it shares a group
            // commit. Lost in a crash, the job is worked again, which books nothing twice.
            group
                .execute(
                    OwnedStatement::new(
                        "UPDATE processor_events SET state = 'done', outcome = $1, done_at = $2, lease_until = NULL, last_error = NULL
                         WHERE event_id = $3 AND state = 'pending'",
                    )
                    .text(outcome_name(&outcome))
                    .int(now)
                    .text(&job.event_id),
                )
                .await?;
            tracing::info!(event_type = %job.event_type, outcome = outcome_name(&outcome), "processor event handled");
            Ok(Some(outcome))
        }
        // Retrying cannot help: the event contradicts our records. Kept, dead, and alerted.
        Err(PaymentError::BadEvent(why)) => {
            give_up(db, alerts, job, why, now).await?;
            Ok(None)
        }
        Err(e) => {
            // Processor unreachable, database busy: later. The message names no patient (it is
            // a processor's or the database's words about ids and constraints).
            let error: String = e.to_string().chars().take(300).collect();
            if job.attempts >= MAX_ATTEMPTS {
                give_up(db, alerts, job, &error, now).await?;
            } else {
                tracing::warn!(event_type = %job.event_type, attempts = job.attempts, error = %error, "processor event will be retried");
                sqlx::query(
                    "UPDATE processor_events SET run_after = $1, lease_until = NULL, last_error = $2
                     WHERE event_id = $3 AND state = 'pending'",
                )
                .bind(now + backoff(job.attempts))
                .bind(&error)
                .bind(&job.event_id)
                .execute(db.pool())
                .await?;
            }
            Ok(None)
        }
    }
}

async fn give_up(
    db: &Db,
    alerts: &AlertSink,
    job: &Job,
    why: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE processor_events SET state = 'dead', lease_until = NULL, last_error = $1, done_at = $2
         WHERE event_id = $3 AND state = 'pending'",
    )
    .bind(why)
    .bind(now)
    .bind(&job.event_id)
    .execute(db.pool())
    .await?;
    let id: String = job.event_id.chars().take(80).collect();
    let detail = format!(
        "processor event {id} ({}) was not recorded after {} attempt(s): {why}",
        job.event_type.chars().take(60).collect::<String>(),
        job.attempts
    );
    alerts
        .raise_once(db, None, "payment-event-not-recorded", &detail, now)
        .await
}

async fn raise_for(
    db: &Db,
    alerts: &AlertSink,
    job: &Job,
    outcome: &EventOutcome,
    now: i64,
) -> Result<(), sqlx::Error> {
    match outcome {
        // Money the processor reports that we did not book, or a dispute: for a person, once.
        EventOutcome::NotBooked(why) | EventOutcome::Disputed(why) => {
            why.raise(db, alerts, now).await
        }
        EventOutcome::UnknownPaid => {
            let id: String = job.event_id.chars().take(80).collect();
            let detail =
                format!("processor event {id} is a payment for a checkout we have no record of");
            alerts
                .raise_once(db, None, "payment-unknown-checkout", &detail, now)
                .await
        }
        _ => Ok(()),
    }
}

fn outcome_name(o: &EventOutcome) -> &'static str {
    match o {
        EventOutcome::Recorded => "recorded",
        EventOutcome::Settled => "settled",
        EventOutcome::Reversed => "reversed",
        EventOutcome::Refunded(_) => "refunded",
        EventOutcome::Disputed(_) => "disputed",
        EventOutcome::NoChange => "no-change",
        EventOutcome::UnknownPaid => "unknown-paid",
        EventOutcome::NotBooked(_) => "not-booked",
    }
}

/// Claims and works every job due now, oldest first, at most `max`; how many were worked.
pub async fn run_due(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    now: i64,
    max: usize,
) -> Result<usize, sqlx::Error> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM processor_events
         WHERE state = 'pending' AND run_after <= $1 AND (lease_until IS NULL OR lease_until < $1)
         ORDER BY received_at, event_id LIMIT $2",
    )
    .bind(now)
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await?;
    let mut worked = 0;
    for id in due {
        if run_one(db, group, processor, alerts, &id, now).await? {
            worked += 1;
        }
    }
    Ok(worked)
}

/// Claims job `event_id` and works it, if it is due and no other worker holds it; whether it
/// was worked.
pub async fn run_one(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    event_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let Some(job) = claim(db, event_id, now).await? else {
        return Ok(false);
    };
    work(db, group, processor, alerts, &job, now).await?;
    Ok(true)
}

/// A stored event as an operator sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub received_at: i64,
    pub run_after: i64,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
}

/// Events not done (waiting or dead), oldest first; with `recent_done_since`, also those done
/// since then.
pub async fn list(db: &Db, recent_done_since: Option<i64>) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, event_type, state, attempts, received_at, run_after, last_error, outcome
         FROM processor_events WHERE state <> 'done' OR (state = 'done' AND done_at >= $1)
         ORDER BY received_at, event_id",
    )
    .bind(recent_done_since.unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await
}

/// Puts a dead or waiting event back to work now, its attempts counted afresh. `false` when
/// there is no such event or it is done.
pub async fn retry(db: &Db, event_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE processor_events SET state = 'pending', attempts = 0, run_after = $1, lease_until = NULL, done_at = NULL
         WHERE event_id = $2 AND state IN ('pending', 'dead')",
    )
    .bind(now)
    .bind(event_id)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Wakes the background worker when the webhook stored something it could not finish.
#[derive(Clone, Debug, Default)]
pub struct Nudge(Arc<tokio::sync::Notify>);

impl Nudge {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Waits for a wake-up or `every`, whichever is first.
    pub async fn wait(&self, every: Duration) {
        let _ = tokio::time::timeout(every, self.0.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_holds_and_spans_about_three_days() {
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(2), 30);
        assert_eq!(backoff(8), 12 * 3600);
        assert_eq!(backoff(50), 12 * 3600);
        assert_eq!(backoff(0), 10);
        let total: i64 = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!((2 * 24 * 3600..4 * 24 * 3600).contains(&total), "{total}");
    }
}
