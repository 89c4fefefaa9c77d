//! Delivering the outbox: due rows claimed (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so servers
//! never claim the same row; SQLite: one writer, so the claiming UPDATE is atomic), each opened,
//! checked once more (consent, quiet hours), handed to its provider and marked with the outcome.
//!
//! **Never sent twice.** A row is `sending` from its claim until its outcome is written. A row
//! left `sending` (the process stopped mid-send) may or may not have gone out, so it is never
//! retried: after `STALE_SECS` it is marked dead with "outcome unknown" for staff to look at. Only
//! answers that say the provider did not take it (`Outcome::Retry`) are tried again, with backoff.

use super::consent::{self, Standing};
use super::providers::{Outcome, Providers};
use super::quiet::{self, UsZone, Window};
use super::{aad, Channel, MessageError, MessageId};
use crate::crypto::FieldCrypto;
use crate::db::{Backend, Db};
use crate::ids::TenantId;

/// Tries before a message is given up.
pub const MAX_ATTEMPTS: i64 = 6;
/// Texts one practice may send per minute; more wait for the next minute. A practice's 10DLC
/// campaign has a carrier throughput of its own (often well above this): this bound keeps one
/// practice's large import from taking every worker pass, and a runaway from texting thousands.
pub const TEXTS_PER_PRACTICE_PER_MINUTE: i64 = 60;
/// How long a claimed row may stay `sending` before its outcome counts as unknown.
pub const STALE_SECS: i64 = 600;

/// Seconds to wait after the `attempt`-th try (1-based) failed: 30 s, 2 min, 8 min, 32 min,
/// then two hours.
pub fn backoff_secs(attempt: i64) -> i64 {
    let n = attempt.clamp(1, 5) - 1;
    (30_i64 << (2 * n)).min(7200)
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: u64,
    /// Put back for later: quiet hours, or a provider's "try again".
    pub deferred: u64,
    pub suppressed: u64,
    pub dead: u64,
}

impl Pass {
    pub fn handled(&self) -> u64 {
        self.sent + self.deferred + self.suppressed + self.dead
    }
}

type Claimed = (
    String,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    Vec<u8>,
    Option<String>,
    i64,
);

/// Claims up to `limit` due messages for this worker.
async fn claim(db: &Db, now: i64, limit: i64) -> Result<Vec<Claimed>, MessageError> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET state = 'sending', claimed_at = $1, attempts = attempts + 1
         WHERE id IN (SELECT id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $1
                      ORDER BY next_attempt_at, id LIMIT $2 {lock})
         RETURNING id, tenant_id, channel, purpose, recipient_ct, recipient_bidx, subject_ct,
             body_ct, zone, attempts"
    );
    Ok(sqlx::query_as(&sql)
        .bind(now)
        .bind(limit)
        .fetch_all(db.pool())
        .await?)
}

/// Rows left `sending` past `STALE_SECS`: their outcome is unknown, so they are not retried.
async fn give_up_stale(db: &Db, now: i64) -> Result<u64, MessageError> {
    Ok(sqlx::query(
        "UPDATE outbox SET state = 'dead',
             last_error = 'outcome unknown: the sender stopped during the send (not retried, so it \
                           cannot go twice)'
         WHERE state = 'sending' AND claimed_at < $1",
    )
    .bind(now - STALE_SECS)
    .execute(db.pool())
    .await?
    .rows_affected())
}

fn zone_of(name: Option<&str>) -> Option<UsZone> {
    let name = name?;
    UsZone::ALL.into_iter().find(|z| z.iana() == name)
}

/// Delivers what is due at `now`, up to `limit` messages.
pub async fn run_due(
    db: &Db,
    crypto: &FieldCrypto,
    providers: &Providers,
    now: i64,
    limit: i64,
) -> Result<Pass, MessageError> {
    let mut pass = Pass {
        dead: give_up_stale(db, now).await?,
        ..Pass::default()
    };
    // Texts each practice sent in the last minute, read once per practice per pass.
    let mut recent: std::collections::HashMap<String, i64> = Default::default();
    for row in claim(db, now, limit).await? {
        let (id, tenant, channel, purpose, to_ct, to_bidx, subject_ct, body_ct, zone, attempts) =
            row;
        let id = MessageId::from_db(id);
        let tenant = TenantId::from_db(tenant);
        let Some(channel) = Channel::parse(&channel) else {
            finish(db, &id, "dead", None, None, Some("unknown channel"), now).await?;
            pass.dead += 1;
            continue;
        };
        if channel == Channel::Sms {
            let zone = zone_of(zone.as_deref());
            let window = Window::default();
            if !quiet::is_allowed(zone, now, window) {
                // Quiet hours: deferred, not dropped, and not counted as a try.
                let at = quiet::next_allowed(zone, now, window);
                defer(db, &id, at, false, None).await?;
                pass.deferred += 1;
                continue;
            }
            let sent = match recent.get(tenant.as_str()) {
                Some(n) => *n,
                None => sent_last_minute(db, &tenant, now).await?,
            };
            recent.insert(tenant.as_str().to_owned(), sent);
            if sent >= TEXTS_PER_PRACTICE_PER_MINUTE {
                // The practice's minute is spent: next minute, not counted as a try.
                defer(db, &id, now + 60, false, None).await?;
                pass.deferred += 1;
                continue;
            }
            if purpose == "billing" {
                let mut conn = db.pool().acquire().await?;
                if consent::standing(&mut conn, &tenant, &to_bidx).await? != Standing::OptedIn {
                    finish(db, &id, "suppressed", None, None, Some("no consent"), now).await?;
                    pass.suppressed += 1;
                    continue;
                }
            }
        }
        let t = &tenant;
        let to = crypto
            .decrypt_str(aad(t, id.as_str(), "recipient"), &to_ct)
            .await?;
        let body = crypto
            .decrypt_str(aad(t, id.as_str(), "body"), &body_ct)
            .await?;
        let (provider, outcome) = match channel {
            Channel::Sms => (
                providers.sms.name(),
                providers.sms.send(to.expose(), body.expose()).await,
            ),
            Channel::Email => {
                let subject = match &subject_ct {
                    Some(ct) => {
                        crypto
                            .decrypt_str(aad(t, id.as_str(), "subject"), ct)
                            .await?
                    }
                    None => crate::phi::Phi::new(String::new()),
                };
                (
                    providers.email.name(),
                    providers
                        .email
                        .send(to.expose(), subject.expose(), body.expose())
                        .await,
                )
            }
        };
        match outcome {
            Outcome::Accepted { provider_id } => {
                finish(
                    db,
                    &id,
                    "sent",
                    Some(provider),
                    Some(&provider_id),
                    None,
                    now,
                )
                .await?;
                pass.sent += 1;
                if channel == Channel::Sms {
                    *recent.entry(tenant.as_str().to_owned()).or_default() += 1;
                }
            }
            Outcome::Retry(why) if attempts < MAX_ATTEMPTS => {
                defer(db, &id, now + backoff_secs(attempts), true, Some(&why)).await?;
                pass.deferred += 1;
            }
            Outcome::Retry(why) | Outcome::Permanent(why) => {
                finish(db, &id, "dead", Some(provider), None, Some(&why), now).await?;
                pass.dead += 1;
            }
            Outcome::Unsubscribed(why) => {
                finish(db, &id, "dead", Some(provider), None, Some(&why), now).await?;
                consent::opt_out_unsubscribed(db, crypto, &id, now).await?;
                pass.dead += 1;
            }
        }
    }
    Ok(pass)
}

/// Texts `tenant` sent in the minute before `now`.
async fn sent_last_minute(db: &Db, tenant: &TenantId, now: i64) -> Result<i64, MessageError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox
         WHERE tenant_id = $1 AND channel = 'sms' AND sent_at > $2",
    )
    .bind(tenant.as_str())
    .bind(now - 60)
    .fetch_one(db.pool())
    .await?)
}

/// Puts a claimed row back in the queue for `at`; a quiet-hours deferral gives its try back.
async fn defer(
    db: &Db,
    id: &MessageId,
    at: i64,
    counted: bool,
    error: Option<&str>,
) -> Result<(), MessageError> {
    sqlx::query(
        "UPDATE outbox SET state = 'queued', next_attempt_at = $1, claimed_at = NULL,
             attempts = attempts - $2, last_error = COALESCE($3, last_error)
         WHERE id = $4 AND state = 'sending'",
    )
    .bind(at)
    .bind(if counted { 0_i64 } else { 1 })
    .bind(error)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn finish(
    db: &Db,
    id: &MessageId,
    state: &str,
    provider: Option<&str>,
    provider_id: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Result<(), MessageError> {
    sqlx::query(
        "UPDATE outbox SET state = $1, provider = COALESCE($2, provider), provider_id = $3,
             last_error = COALESCE($4, last_error), claimed_at = NULL,
             sent_at = CASE WHEN $1 = 'sent' THEN $5 ELSE sent_at END
         WHERE id = $6 AND state = 'sending'",
    )
    .bind(state)
    .bind(provider)
    .bind(provider_id)
    .bind(error)
    .bind(now)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_grows_and_is_capped() {
        let waits: Vec<i64> = (1..=7).map(backoff_secs).collect();
        assert_eq!(waits, vec![30, 120, 480, 1920, 7200, 7200, 7200]);
    }
}
