//! `audit export`: a window of the audit chain as JSON lines, verifiable offline by
//! `audit verify --file`. The first line names the seal just before the window (its seq and
//! hash); then one line per seq of the window, in order: the seal (seq, kind, prev_hash, hash)
//! and its event (`null` for a gap). The window is the seqs from the first to the last sealed
//! event written in the time range, with everything between (seq order and time order differ by
//! the length of a request), so the chain inside it is unbroken. Events not yet sealed are left
//! out. An export carries actor ids and addresses: keep it as carefully as the database.

use super::chain::{self, ChainEvent, GENESIS};
use crate::db::Db;
use std::io::Write;

/// The first line.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportStart {
    /// The seal before the window (0 and zeros when the window starts the chain).
    pub start_seq: i64,
    pub start_hash: String,
    /// The time range asked for, `[since, until)` in unix seconds.
    pub since: i64,
    pub until: i64,
}

/// Every later line.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportLine {
    pub seq: i64,
    pub kind: String,
    pub prev_hash: String,
    pub hash: String,
    pub event: Option<ChainEvent>,
}

#[derive(Clone, Debug, Default)]
pub struct ExportReport {
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: u64,
    pub gaps: u64,
}

/// A seal and, when there is one, the event at its seq.
#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    kind: String,
    prev_hash: String,
    hash: String,
    e_seq: Option<i64>,
    id: Option<String>,
    at: Option<i64>,
    actor: Option<String>,
    on_behalf_of: Option<String>,
    tenant_id: Option<String>,
    patient_id: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    request_id: Option<String>,
    address: Option<String>,
    outcome: Option<String>,
}

const PAGE: i64 = 5_000;

/// Writes the sealed events written in `[since, until)` (unix seconds), with their chain.
pub async fn export(
    db: &Db,
    since: i64,
    until: i64,
    out: &mut dyn Write,
) -> anyhow::Result<ExportReport> {
    let (head, _) = chain::head(db).await?;
    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT MIN(seq), MAX(seq) FROM audit_events WHERE at >= $1 AND at < $2 AND seq <= $3",
    )
    .bind(since)
    .bind(until)
    .bind(head)
    .fetch_one(db.pool())
    .await?;
    let (Some(first), Some(last)) = (first, last) else {
        anyhow::bail!("no sealed audit event in that window");
    };
    let start_hash = if first == 1 {
        hex::encode(GENESIS)
    } else {
        sqlx::query_scalar("SELECT hash FROM audit_seals WHERE seq = $1")
            .bind(first - 1)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "seq {} has no seal: the chain is broken (run `patriotpay audit verify`)",
                    first - 1
                )
            })?
    };
    serde_json::to_writer(
        &mut *out,
        &ExportStart {
            start_seq: first - 1,
            start_hash,
            since,
            until,
        },
    )?;
    out.write_all(b"\n")?;
    let mut report = ExportReport {
        first_seq: first,
        last_seq: last,
        ..Default::default()
    };
    let mut after = first - 1;
    loop {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT s.seq, s.kind, s.prev_hash, s.hash, e.seq AS e_seq, e.id, e.at, e.actor,
                    e.on_behalf_of, e.tenant_id, e.patient_id, e.action, e.resource,
                    e.request_id, e.address, e.outcome
             FROM audit_seals s LEFT JOIN audit_events e ON e.seq = s.seq
             WHERE s.seq > $1 AND s.seq <= $2 ORDER BY s.seq LIMIT {PAGE}"
        ))
        .bind(after)
        .bind(last)
        .fetch_all(db.pool())
        .await?;
        let Some(end) = rows.last().map(|r| r.seq) else {
            break;
        };
        for r in rows {
            let event = match (r.e_seq, r.at) {
                (Some(seq), Some(at)) => Some(ChainEvent {
                    seq,
                    id: r.id,
                    at,
                    actor: r.actor,
                    on_behalf_of: r.on_behalf_of,
                    tenant_id: r.tenant_id,
                    patient_id: r.patient_id,
                    action: r.action,
                    resource: r.resource,
                    request_id: r.request_id,
                    address: r.address,
                    outcome: r.outcome,
                }),
                _ => None,
            };
            if r.kind == "gap" {
                report.gaps += 1;
            } else {
                report.events += 1;
            }
            let line = ExportLine {
                seq: r.seq,
                kind: r.kind,
                prev_hash: r.prev_hash,
                hash: r.hash,
                event,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        after = end;
    }
    out.flush()?;
    Ok(report)
}
