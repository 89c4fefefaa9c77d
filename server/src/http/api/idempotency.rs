//! `Idempotency-Key` for the statement API: the first request with a key claims it by inserting
//! its `imports` row (unique per practice and key) before importing, with a hash of its query
//! and body; the run completes that row and the answer is stored in it. A retry with the same
//! key and request gets the stored answer; another request under the key is refused; a claim
//! whose request is still running is refused until it answers, or taken over once it is stale
//! (its server died mid-import).

use super::auth::ApiCaller;
use super::ImportQuery;
use crate::audit::{self, Outcome};
use crate::db::Db;
use crate::ids::TenantId;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};

/// Longest key accepted.
pub const MAX_KEY_CHARS: usize = 64;
/// A claim with no answer this long after it was made is taken to be abandoned.
pub const STALE_SECS: i64 = 10 * 60;

/// 1 to 64 of `A-Z a-z 0-9 - _ . :` (UUIDs, ULIDs and the like fit).
pub fn key_shape_ok(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// What the request is, for telling a retry from another request under the same key: the
/// options that change the answer, then the body's bytes.
pub fn request_hash(query: &ImportQuery, body: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(format!("v1 dry_run={} partial={}\n", query.dry_run, query.partial).as_bytes());
    h.update(body);
    h.finalize().to_vec()
}

/// The outcome of claiming a key.
pub enum Claim {
    /// Ours: import, then `store` the answer.
    Claimed,
    /// Answered before, for the same request.
    Replay { status: u16, body: String },
    /// Used before for another request.
    OtherBody,
    /// The first request under the key has not answered yet.
    Running,
}

/// The answer kept in `imports.response`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    status: u16,
    body: String,
}

/// Claims `key` for the practice by inserting the run's `imports` row first (the unique index
/// on practice and key lets exactly one of two concurrent requests in).
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    hash: &[u8],
    import_id: &str,
    actor: &str,
    dry_run: bool,
    now: i64,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO imports (id, tenant_id, source, actor, dry_run, started_at, idempotency_key,
             request_hash)
         VALUES ($1, $2, 'api', $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )
    .bind(import_id)
    .bind(tenant.as_str())
    .bind(actor)
    .bind(i64::from(dry_run))
    .bind(now)
    .bind(key)
    .bind(hash)
    .execute(db.pool())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    // id, request hash, stored answer, start of the claim.
    type Row = (String, Option<Vec<u8>>, Option<String>, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, request_hash, response, started_at FROM imports
         WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant.as_str())
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    let Some((old_id, old_hash, response, started_at)) = row else {
        // Released between our insert and our read: the caller may simply retry.
        return Ok(Claim::Running);
    };
    if old_hash.as_deref() != Some(hash) {
        return Ok(Claim::OtherBody);
    }
    if let Some(stored) = response.and_then(|r| serde_json::from_str::<Stored>(&r).ok()) {
        return Ok(Claim::Replay {
            status: stored.status,
            body: stored.body,
        });
    }
    if started_at > now - STALE_SECS {
        return Ok(Claim::Running);
    }
    // Abandoned: hand the row to this request (one taker wins by the start time it read).
    let taken = sqlx::query(
        "UPDATE imports SET id = $1, actor = $2, started_at = $3
         WHERE id = $4 AND started_at = $5 AND response IS NULL",
    )
    .bind(import_id)
    .bind(actor)
    .bind(now)
    .bind(&old_id)
    .bind(started_at)
    .execute(db.pool())
    .await?;
    Ok(if taken.rows_affected() == 1 {
        Claim::Claimed
    } else {
        Claim::Running
    })
}

/// Keeps the answer for retries.
pub async fn store(
    db: &Db,
    import_id: &str,
    status: StatusCode,
    body: &str,
) -> Result<(), sqlx::Error> {
    let stored = Stored {
        status: status.as_u16(),
        body: body.to_owned(),
    };
    let text = serde_json::to_string(&stored).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query("UPDATE imports SET response = $1 WHERE id = $2")
        .bind(text)
        .bind(import_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Gives a claim up after a failed run, so a retry runs the batch.
pub async fn release(db: &Db, import_id: &str) {
    let r = sqlx::query("DELETE FROM imports WHERE id = $1 AND response IS NULL")
        .bind(import_id)
        .execute(db.pool())
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "api: could not release an idempotency claim");
    }
}

/// Records that a stored answer was sent again (nothing was imported).
pub async fn audit_replay(db: &Db, caller: &ApiCaller, import_id: &str) {
    let actor = caller.ctx.actor(format!("apikey:{}", caller.key_id));
    let r = audit::record(
        db.pool(),
        audit::Event {
            actor: &actor,
            tenant: Some(&caller.tenant),
            patient: None,
            action: "statements.import.replay",
            resource: Some(import_id),
            outcome: Outcome::Success,
        },
    )
    .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "api: could not audit a replayed answer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        for ok in [
            "a",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "batch:2026-11-30.1",
            &"k".repeat(64),
        ] {
            assert!(key_shape_ok(ok), "{ok}");
        }
        for bad in ["", &"k".repeat(65), "a b", "a/b", "é", "a\n"] {
            assert!(!key_shape_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_hash_covers_body_and_options() {
        let q = |dry_run, partial| ImportQuery { dry_run, partial };
        let a = request_hash(&q(false, false), b"{}");
        assert_eq!(a, request_hash(&q(false, false), b"{}"));
        assert_ne!(a, request_hash(&q(true, false), b"{}"));
        assert_ne!(a, request_hash(&q(false, true), b"{}"));
        assert_ne!(a, request_hash(&q(false, false), b"{ }"));
    }
}
