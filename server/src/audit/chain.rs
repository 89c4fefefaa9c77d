//! The audit chain's hashing and its sealer: the canonical bytes of an event, the hash of a seal,
//! sealing committed events in `seq` order into `audit_seals` (gaps after a grace, late commits
//! alerted once, seal lag measured), and the server's loop that seals every second and anchors.
//!
//! **Canonical bytes** (version 1; changing them breaks every existing chain):
//!
//! ```text
//! event seal: hash = SHA-256(prev || "event" || seq || id || at || actor || on_behalf_of
//!                            || tenant_id || patient_id || action || resource || request_id
//!                            || address || outcome)
//! gap seal:   hash = SHA-256(prev || "gap" || seq)
//! ```
//!
//! `prev` is the previous seal's hash as 32 raw bytes (32 zero bytes before the first seal, seq
//! 1); `seq` and `at` are 8-byte big-endian signed integers; each text field is one byte `0` for
//! NULL, or one byte `1`, its UTF-8 length as a 4-byte big-endian integer, then its bytes (so NULL
//! and "" differ, and no field can run into the next). Hashes are stored as lowercase hex.

use super::anchor;
use crate::alerts::AlertSink;
use crate::crypto::KeyProvider;
use crate::db::{fixed_chunks, Db, Params};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The `prev` of the first seal.
pub const GENESIS: [u8; 32] = [0; 32];
/// How long a missing seq below a committed one waits for its transaction before it is sealed
/// as a gap. A transaction that stays open longer commits outside the chain (and is alerted).
pub const GAP_GRACE_SECS: i64 = 60;
/// Seal lag past which an alert is raised (once per stuck event).
pub const LAG_ALERT_SECS: i64 = 300;
/// Seals written per transaction.
pub const BATCH: usize = 1000;
/// How often `serve` seals, and anchors the head.
pub const SEAL_EVERY: Duration = Duration::from_secs(1);
pub const ANCHOR_EVERY: Duration = Duration::from_secs(24 * 3600);
/// After a failed anchor (provider down, no MAC key), the next try.
const ANCHOR_RETRY: Duration = Duration::from_secs(3600);

/// The columns of `audit_events` a seal covers, in `ChainEvent`'s order.
pub const EVENT_COLUMNS: &str = "seq, id, at, actor, on_behalf_of, tenant_id, patient_id, action, \
     resource, request_id, address, outcome";

/// An audit event as the chain sees it. Text columns are all optional here (the NOT NULL ones
/// too), so a row edited behind the application's back still reads and is reported, not fatal.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ChainEvent {
    pub seq: i64,
    pub id: Option<String>,
    pub at: i64,
    pub actor: Option<String>,
    pub on_behalf_of: Option<String>,
    pub tenant_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub outcome: Option<String>,
}

fn put_text(out: &mut Vec<u8>, v: &Option<String>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            // An audit field is far below 4 GiB; saturating keeps this total all the same.
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

impl ChainEvent {
    /// The canonical bytes of this event placed at `seq` (its own, except when `verify` asks
    /// whether it belongs at another).
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"event");
        out.extend_from_slice(&seq.to_be_bytes());
        put_text(&mut out, &self.id);
        out.extend_from_slice(&self.at.to_be_bytes());
        for f in [
            &self.actor,
            &self.on_behalf_of,
            &self.tenant_id,
            &self.patient_id,
            &self.action,
            &self.resource,
            &self.request_id,
            &self.address,
            &self.outcome,
        ] {
            put_text(&mut out, f);
        }
        out
    }
}

/// The hash of an event seal.
pub fn event_hash(prev: &[u8; 32], ev: &ChainEvent, seq: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(ev.canonical(seq));
    h.finalize().into()
}

/// The hash of a gap seal.
pub fn gap_hash(prev: &[u8; 32], seq: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(b"gap");
    h.update(seq.to_be_bytes());
    h.finalize().into()
}

/// A stored hash back to bytes; `None` unless 64 hex digits.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// One row of `audit_seals`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Seal {
    pub seq: i64,
    pub kind: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The newest seal's seq and hash; `(0, GENESIS)` before the first.
pub async fn head(db: &Db) -> Result<(i64, [u8; 32]), sqlx::Error> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_seals ORDER BY seq DESC LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    Ok(match row {
        // A head that is not a hash was edited; chaining from zeros makes every later seal
        // disagree with it, which `verify` reports at that seq.
        Some((seq, hash)) => (seq, parse_hash(&hash).unwrap_or(GENESIS)),
        None => (0, GENESIS),
    })
}

/// How the sealer treats gaps and lag (tests shorten them).
#[derive(Clone, Copy, Debug)]
pub struct Sealing {
    pub grace_secs: i64,
    pub lag_alert_secs: i64,
}

impl Default for Sealing {
    fn default() -> Self {
        Sealing {
            grace_secs: GAP_GRACE_SECS,
            lag_alert_secs: LAG_ALERT_SECS,
        }
    }
}

/// What one `seal_pending` call did and saw.
#[derive(Clone, Debug, Default)]
pub struct SealReport {
    pub sealed_events: u64,
    pub sealed_gaps: u64,
    /// The head after the call.
    pub head_seq: i64,
    pub head_hash: String,
    /// The missing seq the sealer is waiting on (inside its grace), if any.
    pub waiting_on: Option<i64>,
    /// How long the oldest unsealed event has waited (seconds), if one is left.
    pub lag_secs: Option<i64>,
    /// Batches another sealer got to first (each retried from the new head).
    pub conflicts: u64,
    /// Events newly found at seqs sealed as gaps (alerted now, once each).
    pub late_commits: Vec<i64>,
}

/// When seqs were first seen missing just below the committed event `seq`, noting it now if
/// not yet. Keyed by the event after the run, which stays the same while the run is sealed in
/// several batches.
async fn gap_seen(db: &Db, seq: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_chain_notes (seq, note, at) VALUES ($1, 'gap_seen', $2)
         ON CONFLICT (seq, note) DO NOTHING",
    )
    .bind(seq)
    .bind(now)
    .execute(db.pool())
    .await?;
    sqlx::query_scalar("SELECT at FROM audit_chain_notes WHERE seq = $1 AND note = 'gap_seen'")
        .bind(seq)
        .fetch_one(db.pool())
        .await
}

/// Unsealed events whose seqs are scanned for gaps at the start of a call.
const GAP_LOOKAHEAD: i64 = 100_000;

/// Starts the grace of every gap among the next `GAP_LOOKAHEAD` unsealed events now, not when
/// a batch reaches it: behind a backlog (a first start on a large trail, a sealer that was
/// down) gaps then wait out one grace together instead of one each, batch after batch.
async fn note_gaps_ahead(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    let (head_seq, _) = head(db).await?;
    let seqs: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT seq FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT {GAP_LOOKAHEAD}"
    ))
    .bind(head_seq)
    .fetch_all(db.pool())
    .await?;
    let mut next = head_seq + 1;
    for seq in seqs {
        if next < seq {
            gap_seen(db, seq, now).await?;
        }
        next = seq + 1;
    }
    Ok(())
}

struct Planned {
    seq: i64,
    kind: &'static str,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// Seal rows per INSERT, in a few sizes only (`db::fixed_chunks`: a statement per batch size
/// filled every connection's statement cache); 128 rows are 640 parameters, inside both
/// databases' limits.
const SEALS_PER_INSERT: &[usize] = &[128, 16, 1];

/// Writes a batch in one transaction; `false` when another sealer sealed one of its seqs first
/// (the batch is rolled back: it was chained from a head that is no longer the head).
async fn write(db: &Db, batch: &[Planned], now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    for chunk in fixed_chunks(batch, SEALS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_seals (seq, kind, prev_hash, hash, sealed_at) VALUES {}
             ON CONFLICT (seq) DO NOTHING",
            Params::new(db.backend()).tuples(chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q
                .bind(p.seq)
                .bind(p.kind)
                .bind(hex::encode(p.prev))
                .bind(hex::encode(p.hash))
                .bind(now);
        }
        let done = q.execute(&mut *tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            tx.rollback().await?;
            return Ok(false);
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Seals every committed event not yet sealed, in `seq` order, in batches of `BATCH`; seals a
/// gap for a seq missing longer than the grace; alerts (once) an event found at a seq sealed
/// as a gap, and a seal lag past the threshold. Safe to run from several processes at once.
pub async fn seal_pending(
    db: &Db,
    alerts: &AlertSink,
    now: i64,
    opts: &Sealing,
) -> anyhow::Result<SealReport> {
    let mut report = SealReport::default();
    note_gaps_ahead(db, now).await?;
    let select = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT {BATCH}"
    );
    loop {
        let (head_seq, head_hash) = head(db).await?;
        let events: Vec<ChainEvent> = sqlx::query_as(&select)
            .bind(head_seq)
            .fetch_all(db.pool())
            .await?;
        // Seqs below a committed event that have no event (yet), in runs, each with its first
        // sighting (most noted already by `note_gaps_ahead`).
        let mut seen = std::collections::HashMap::new();
        let mut next = head_seq + 1;
        for ev in &events {
            if next < ev.seq {
                seen.insert(ev.seq, gap_seen(db, ev.seq, now).await?);
            }
            next = ev.seq + 1;
        }
        let mut batch: Vec<Planned> = Vec::with_capacity(events.len());
        let (mut expected, mut prev) = (head_seq + 1, head_hash);
        let mut waiting = None;
        'events: for ev in &events {
            if expected < ev.seq {
                // A run of missing seqs shares one grace.
                let seen = seen.get(&ev.seq).copied().unwrap_or(now);
                if now - seen < opts.grace_secs {
                    waiting = Some(expected);
                    break 'events;
                }
                while expected < ev.seq && batch.len() < BATCH {
                    let hash = gap_hash(&prev, expected);
                    batch.push(Planned {
                        seq: expected,
                        kind: "gap",
                        prev,
                        hash,
                    });
                    (prev, expected) = (hash, expected + 1);
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            let hash = event_hash(&prev, ev, ev.seq);
            batch.push(Planned {
                seq: ev.seq,
                kind: "event",
                prev,
                hash,
            });
            (prev, expected) = (hash, ev.seq + 1);
        }
        report.waiting_on = waiting;
        if batch.is_empty() {
            break;
        }
        if !write(db, &batch, now).await? {
            report.conflicts += 1;
            // Another sealer moves the head each time this happens, so this ends; the bound
            // only keeps one call short when many sealers race.
            if report.conflicts >= 20 {
                break;
            }
            continue;
        }
        for p in &batch {
            match p.kind {
                "gap" => report.sealed_gaps += 1,
                _ => report.sealed_events += 1,
            }
        }
        // More to do when the read or the batch was full (a long run of gaps fills a batch).
        let more = events.len() == BATCH || batch.len() >= BATCH;
        if waiting.is_some() || !more {
            break;
        }
    }
    let (head_seq, head_hash) = head(db).await?;
    report.head_seq = head_seq;
    report.head_hash = hex::encode(head_hash);
    report.late_commits = late_commits(db, alerts, now).await?;
    let oldest: Option<(i64, i64)> =
        sqlx::query_as("SELECT seq, at FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1")
            .bind(head_seq)
            .fetch_optional(db.pool())
            .await?;
    if let Some((seq, at)) = oldest {
        let lag = (now - at).max(0);
        report.lag_secs = Some(lag);
        if lag > opts.lag_alert_secs {
            alerts
                .raise_once(
                    db,
                    None,
                    "audit-seal-lag",
                    &format!(
                        "audit event seq {seq} was not sealed within {} s of being written; \
                         events are unprotected by the chain until sealed",
                        opts.lag_alert_secs
                    ),
                    now,
                )
                .await?;
        }
    }
    Ok(report)
}

/// Events at seqs already sealed as gaps, each alerted the first time any sealer sees it.
async fn late_commits(db: &Db, alerts: &AlertSink, now: i64) -> Result<Vec<i64>, sqlx::Error> {
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT s.seq FROM audit_seals s JOIN audit_events e ON e.seq = s.seq
         WHERE s.kind = 'gap' AND NOT EXISTS (
             SELECT 1 FROM audit_chain_notes n WHERE n.seq = s.seq AND n.note = 'late_commit')
         ORDER BY s.seq",
    )
    .fetch_all(db.pool())
    .await?;
    let mut alerted = vec![];
    for seq in seqs {
        // The note's primary key decides which sealer alerts.
        let noted = sqlx::query(
            "INSERT INTO audit_chain_notes (seq, note, at) VALUES ($1, 'late_commit', $2)
             ON CONFLICT (seq, note) DO NOTHING",
        )
        .bind(seq)
        .bind(now)
        .execute(db.pool())
        .await?;
        if noted.rows_affected() == 1 {
            alerts
                .raise(
                    db,
                    None,
                    "audit-late-commit",
                    &format!(
                        "audit event seq {seq} committed after its seq was sealed as a gap: it is \
                         outside the chain (a transaction open longer than the sealer's grace, \
                         or a row inserted behind the application's back)"
                    ),
                    now,
                )
                .await?;
            alerted.push(seq);
        }
    }
    Ok(alerted)
}

/// The server's sealer: seals every `SEAL_EVERY` on the wall clock (not the request clock tests
/// move, so moving it never seals a gap early), anchors the head once something is sealed after
/// start and then every `ANCHOR_EVERY`, until `stop`.
pub async fn run(
    db: Db,
    provider: Arc<dyn KeyProvider>,
    alerts: AlertSink,
    anchor_file: std::path::PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut next_anchor = tokio::time::Instant::now();
    loop {
        let now = crate::clock::now_unix();
        match seal_pending(&db, &alerts, now, &Sealing::default()).await {
            Ok(r) if r.head_seq > 0 && tokio::time::Instant::now() >= next_anchor => {
                match anchor::append(&db, provider.as_ref(), &anchor_file, now).await {
                    Ok(cp) => {
                        tracing::info!(seq = cp.seq, "audit chain anchored");
                        next_anchor = tokio::time::Instant::now() + ANCHOR_EVERY;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "audit anchor failed; next try in an hour");
                        next_anchor = tokio::time::Instant::now() + ANCHOR_RETRY;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit sealer failed; next try in a second"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SEAL_EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> ChainEvent {
        ChainEvent {
            seq: 7,
            id: Some("e1".into()),
            at: 1_700_000_000,
            actor: Some("cli".into()),
            on_behalf_of: None,
            tenant_id: None,
            patient_id: None,
            action: Some("users.list".into()),
            resource: None,
            request_id: None,
            address: None,
            outcome: Some("success".into()),
        }
    }

    #[test]
    fn canonical_bytes_are_the_documented_ones() {
        let c = ev().canonical(7);
        let mut want = b"event".to_vec();
        want.extend(7i64.to_be_bytes());
        want.extend([1, 0, 0, 0, 2]);
        want.extend(b"e1");
        want.extend(1_700_000_000i64.to_be_bytes());
        want.extend([1, 0, 0, 0, 3]);
        want.extend(b"cli");
        want.extend([0, 0, 0]);
        want.extend([1, 0, 0, 0, 10]);
        want.extend(b"users.list");
        want.extend([0, 0, 0]);
        want.extend([1, 0, 0, 0, 7]);
        want.extend(b"success");
        assert_eq!(c, want);
    }

    #[test]
    fn null_empty_and_field_boundaries_differ() {
        let base = ev();
        let mut empty = ev();
        empty.resource = Some(String::new());
        assert_ne!(base.canonical(7), empty.canonical(7), "NULL is not \"\"");
        // Moving characters from one field into the next changes the bytes.
        let (mut a, mut b) = (ev(), ev());
        a.actor = Some("ab".into());
        a.on_behalf_of = Some("c".into());
        b.actor = Some("a".into());
        b.on_behalf_of = Some("bc".into());
        assert_ne!(a.canonical(7), b.canonical(7));
        assert_ne!(base.canonical(7), base.canonical(8), "the seq is covered");
        let h = event_hash(&GENESIS, &base, 7);
        assert_ne!(h, event_hash(&h, &base, 7), "the previous hash is covered");
        assert_ne!(gap_hash(&GENESIS, 7), gap_hash(&GENESIS, 8));
        assert_eq!(parse_hash(&hex::encode(h)), Some(h));
        assert_eq!(parse_hash("zz"), None);
    }
}
