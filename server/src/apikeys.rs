//! Per-practice API keys: made (shown once, stored as a hash), listed, revoked, and checked when
//! a practice's billing system presents one. Scoped to statement import.

use crate::crypto::{random_token, token_hash};
use crate::db::Db;
use crate::ids::TenantId;

/// Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "ppk_";
/// How many characters of a key lists show.
const SHOWN: usize = 10;
pub const MAX_LABEL_CHARS: usize = 80;

/// What a key may do. Only import exists today; the column's CHECK says the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Import,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Import => "import",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("give the key a label of 1 to 80 characters (what uses it)")]
    Label,
    #[error("no such practice")]
    NoPractice,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A key as lists show it: never the key itself.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: String,
    pub label: String,
    /// The key's first characters, e.g. `ppk_Ab3dEf`.
    pub prefix: String,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Set by `incident rotate`: the key is refused from then on (a replacement is due).
    pub expires_at: Option<i64>,
}

/// Makes a key for a practice; returns its id and the key, which is shown once and never again.
pub async fn create(
    db: &Db,
    tenant: &TenantId,
    label: &str,
    created_by: &str,
    now: i64,
) -> Result<(String, String), ApiKeyError> {
    let mut tx = db.begin_write().await?;
    let made = create_in(&mut tx, tenant, label, created_by, now).await?;
    tx.commit().await?;
    Ok(made)
}

/// `create` inside the caller's transaction (the staff page's, which holds its audit event).
pub async fn create_in(
    tx: &mut crate::db::WriteTx,
    tenant: &TenantId,
    label: &str,
    created_by: &str,
    now: i64,
) -> Result<(String, String), ApiKeyError> {
    let label = label.trim();
    if label.is_empty()
        || label.chars().count() > MAX_LABEL_CHARS
        || label.chars().any(char::is_control)
    {
        return Err(ApiKeyError::Label);
    }
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 AND id <> $2")
            .bind(tenant.as_str())
            .bind(crate::accounts::PLATFORM_TENANT)
            .fetch_optional(&mut **tx)
            .await?;
    if known.is_none() {
        return Err(ApiKeyError::NoPractice);
    }
    let key = format!("{KEY_PREFIX}{}", random_token());
    let id = format!("key_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, label, prefix, key_hash, scope, created_by,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant.as_str())
    .bind(label)
    .bind(key.chars().take(SHOWN).collect::<String>())
    .bind(token_hash(&key))
    .bind(Scope::Import.as_str())
    .bind(created_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok((id, key))
}

/// A practice's keys, newest first.
pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<KeyInfo>, ApiKeyError> {
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, label, prefix, created_by, created_at, last_used_at, revoked_at, expires_at
         FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, label, prefix, created_by, created_at, last_used_at, revoked_at, expires_at)| {
                KeyInfo {
                    id,
                    label,
                    prefix,
                    created_by,
                    created_at,
                    last_used_at,
                    revoked_at,
                    expires_at,
                }
            },
        )
        .collect())
}

/// Revokes one of a practice's keys; false when the practice has no such live key.
pub async fn revoke(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<bool, ApiKeyError> {
    let mut tx = db.begin_write().await?;
    let done = revoke_in(&mut tx, tenant, id, now).await?;
    tx.commit().await?;
    Ok(done)
}

/// `revoke` inside the caller's transaction.
pub async fn revoke_in(
    tx: &mut crate::db::WriteTx,
    tenant: &TenantId,
    id: &str,
    now: i64,
) -> Result<bool, ApiKeyError> {
    let r = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1
         WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(tenant.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The practice a presented key belongs to, when it is live (not revoked, not past the expiry a
/// rotation gave it) and has `scope`; its use is recorded.
/// Keys of the wrong shape are not looked up.
pub async fn authenticate(
    db: &Db,
    presented: &str,
    scope: Scope,
    now: i64,
) -> Result<Option<(String, TenantId)>, ApiKeyError> {
    let Some(rest) = presented.strip_prefix(KEY_PREFIX) else {
        return Ok(None);
    };
    if !crate::links::token_shape_ok(rest) {
        return Ok(None);
    }
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, tenant_id FROM api_keys
         WHERE key_hash = $1 AND scope = $2 AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(token_hash(presented))
    .bind(scope.as_str())
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    let Some((id, tenant)) = row else {
        return Ok(None);
    };
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&id)
        .execute(db.pool())
        .await?;
    Ok(Some((id, TenantId::from_db(tenant))))
}

/// Refused keys from one address key (`limits::address_key`) in `REFUSAL_WINDOW_SECS` after
/// which a further refused key is answered 429 and neither recorded nor audited: a broken or
/// hostile client cannot fill the audit log. A live key is never held back by this, so a
/// practice's current system keeps working beside an old one still sending a revoked key.
pub const MAX_REFUSALS_PER_ADDRESS: i64 = 20;
pub const REFUSAL_WINDOW_SECS: i64 = 15 * 60;

/// Whether one more refused key from `address_key` may be recorded (and audited): `Ok(true)`
/// records it; `Ok(false)` means the address is over its limit.
pub async fn note_refusal(db: &Db, address_key: &str, now: i64) -> Result<bool, ApiKeyError> {
    let since = now - REFUSAL_WINDOW_SECS;
    let recent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_key_refusals WHERE address_key = $1 AND at > $2",
    )
    .bind(address_key)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    if recent >= MAX_REFUSALS_PER_ADDRESS {
        return Ok(false);
    }
    // Old rows count for nothing: pruned here, where the table grows.
    sqlx::query("DELETE FROM api_key_refusals WHERE at <= $1")
        .bind(since)
        .execute(db.pool())
        .await?;
    sqlx::query("INSERT INTO api_key_refusals (address_key, at) VALUES ($1, $2)")
        .bind(address_key)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(true)
}
