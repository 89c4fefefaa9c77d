//! Envelope encryption of PHI: key providers, per-tenant versioned data keys, a bounded cache
//! of plaintext keys, field ciphertexts bound to tenant/table/column/row, and blind indexes.

pub mod kms;
pub mod local;

pub use kms::{KmsKeyProvider, KmsSettings};
pub use local::LocalKeyProvider;

use crate::db::Db;
use crate::ids::TenantId;
use crate::phi::Phi;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key provider could not be reached or refused; PHI must not be served or written.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// A ciphertext failed authentication: tampered, moved, or under another key or context.
    #[error("ciphertext failed authentication")]
    Integrity,
    #[error("malformed ciphertext or key")]
    Malformed,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A 256-bit plaintext data key; zeroed when the last copy is dropped.
#[derive(Clone)]
pub struct DataKey(Arc<Zeroizing<[u8; 32]>>);

impl DataKey {
    pub(crate) fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DataKey(Arc::new(k))
    }

    pub(crate) fn from_bytes(k: Zeroizing<[u8; 32]>) -> Self {
        DataKey(Arc::new(k))
    }

    pub(crate) fn from_slice(s: &[u8]) -> Result<Self, CryptoError> {
        if s.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(s);
        Ok(DataKey(Arc::new(k)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0[..]))
    }
}

/// Constant-time equality, so tests and `keys rewrap` can compare keys without exposing them.
impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// What a data key is for. Sent to the provider as encryption context (KMS logs it in plain
/// text), so it names a tenant and a purpose and never anything about a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyContext {
    pub tenant: String,
    pub purpose: &'static str,
}

pub const PURPOSE_FIELD: &str = "phi-field";
pub const PURPOSE_INDEX: &str = "blind-index";

impl KeyContext {
    pub fn new(tenant: &TenantId, purpose: &'static str) -> Self {
        Self {
            tenant: tenant.as_str().to_owned(),
            purpose,
        }
    }

    fn aad(&self) -> Vec<u8> {
        format!(
            "patriotpay-wrap-v1\0tenant={}\0purpose={}",
            self.tenant, self.purpose
        )
        .into_bytes()
    }
}

/// Generates, wraps and unwraps data keys. The local file provider is the embedded default;
/// AWS KMS implements the same trait and envelope.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// Short provider name stored beside each wrapped key ("local", "aws-kms").
    fn name(&self) -> &'static str;
    /// The master key new data keys are wrapped under.
    fn key_id(&self) -> &str;
    /// A fresh data key: plaintext, wrapped, and the id of the key that wrapped it.
    async fn generate_data_key(
        &self,
        ctx: &KeyContext,
    ) -> Result<(DataKey, Vec<u8>, String), CryptoError>;
    /// Wraps an existing data key under `key_id` (re-wrapping after a master-key compromise);
    /// returns the wrapping and the full id of the key that made it.
    async fn wrap_data_key(
        &self,
        key_id: &str,
        key: &DataKey,
        ctx: &KeyContext,
    ) -> Result<(Vec<u8>, String), CryptoError>;
    /// Unwraps a data key that `key_id` wrapped with the same context.
    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &KeyContext,
    ) -> Result<DataKey, CryptoError>;
    /// Whether the provider answers now (for `/readyz`).
    async fn health(&self) -> Result<(), CryptoError>;
    /// HMAC-SHA256 of `data` under the provider's audit-anchor key: the MAC and the id of the
    /// key that made it (`audit anchor`; see `audit::anchor`).
    async fn mac(&self, data: &[u8]) -> Result<(Vec<u8>, String), CryptoError>;
    /// Whether `mac` is `data`'s MAC under `key_id`. A key this provider cannot use is an error,
    /// not `false`: "cannot check" must not read as "forged".
    async fn verify_mac(&self, key_id: &str, data: &[u8], mac: &[u8]) -> Result<bool, CryptoError>;
}

/// Writes a secret file readable only by its owner; refuses to overwrite.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Where a field value lives; bound into its ciphertext so it can't be moved elsewhere.
#[derive(Clone, Copy, Debug)]
pub struct FieldAad<'a> {
    pub tenant: &'a TenantId,
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl FieldAad<'_> {
    fn bytes(&self, version: u32) -> Vec<u8> {
        format!(
            "patriotpay-field-v1\0{}\0{}\0{}\0{}\0{}",
            self.tenant, self.table, self.column, self.row, version
        )
        .into_bytes()
    }
}

const FORMAT_V1: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

/// The data-key version a field ciphertext was written with, read from its header.
pub fn ciphertext_version(blob: &[u8]) -> Option<u32> {
    (blob.len() >= HEADER + 16 && blob[0] == FORMAT_V1)
        .then(|| u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Bounds on cached plaintext data keys.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    pub max_age: Duration,
    pub max_uses: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_age: Duration::from_secs(300),
            max_uses: 100_000,
        }
    }
}

struct Cached {
    key: DataKey,
    loaded: Instant,
    uses: u64,
}

type CacheKey = (String, &'static str, u32);
/// Newest known version of (tenant, purpose), and when it was learned.
type NewestMap = HashMap<(String, &'static str), (u32, Instant)>;

/// Encrypts and decrypts field values with per-tenant data keys kept wrapped in `data_keys`.
/// Plaintext data keys are cached (bounded in age and uses) so a page view costs no provider
/// round trip; evicted keys are zeroed when their last copy drops.
pub struct FieldCrypto {
    db: Db,
    provider: Arc<dyn KeyProvider>,
    limits: CacheLimits,
    cache: Mutex<HashMap<CacheKey, Cached>>,
    /// Newest version per (tenant, purpose), briefly cached: encrypting must not cost a query.
    newest: Mutex<NewestMap>,
    /// The flush epoch last seen in the database.
    epoch: Mutex<i64>,
    /// Provider round trips, for tests and benchmarks.
    unwraps: std::sync::atomic::AtomicU64,
}

impl FieldCrypto {
    pub fn new(db: Db, provider: Arc<dyn KeyProvider>) -> Self {
        Self::with_limits(db, provider, CacheLimits::default())
    }

    pub fn with_limits(db: Db, provider: Arc<dyn KeyProvider>, limits: CacheLimits) -> Self {
        Self {
            db,
            provider,
            limits,
            cache: Mutex::new(HashMap::new()),
            newest: Mutex::new(HashMap::new()),
            epoch: Mutex::new(0),
            unwraps: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    /// How many times a data key was generated or unwrapped by the provider.
    pub fn provider_calls(&self) -> u64 {
        self.unwraps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every cached plaintext key now (incident response).
    pub fn flush_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
        if let Ok(mut n) = self.newest.lock() {
            n.clear();
        }
    }

    /// Drops cached keys past their age or use bound now, rather than at their next lookup.
    pub fn evict_expired(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|_, e| {
                e.loaded.elapsed() <= self.limits.max_age && e.uses < self.limits.max_uses
            });
        }
    }

    /// Asks every running server to flush: bumps the epoch they poll.
    pub async fn request_flush_everywhere(db: &Db) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE key_cache_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
        )
        .fetch_one(db.pool())
        .await
    }

    /// Flushes the cache if `keys flush-cache` ran since the last check. Polled by the server.
    pub async fn poll_flush_epoch(&self) -> Result<bool, sqlx::Error> {
        let now: i64 = sqlx::query_scalar("SELECT epoch FROM key_cache_epoch WHERE id = 1")
            .fetch_one(self.db.pool())
            .await?;
        let changed = match self.epoch.lock() {
            Ok(mut seen) if *seen != now => {
                *seen = now;
                true
            }
            _ => false,
        };
        if changed {
            self.flush_cache();
        }
        Ok(changed)
    }

    fn cached(&self, k: &CacheKey) -> Option<DataKey> {
        let mut cache = self.cache.lock().ok()?;
        let entry = cache.get_mut(k)?;
        if entry.loaded.elapsed() > self.limits.max_age || entry.uses >= self.limits.max_uses {
            cache.remove(k);
            return None;
        }
        entry.uses += 1;
        Some(entry.key.clone())
    }

    fn remember(&self, k: CacheKey, key: &DataKey) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(
                k,
                Cached {
                    key: key.clone(),
                    loaded: Instant::now(),
                    uses: 1,
                },
            );
        }
    }

    /// Newest version of a tenant's key for `purpose`, if any.
    pub async fn newest_version(
        &self,
        tenant: &TenantId,
        purpose: &'static str,
    ) -> Result<Option<u32>, CryptoError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM data_keys WHERE tenant_id = $1 AND purpose = $2",
        )
        .bind(tenant.as_str())
        .bind(purpose)
        .fetch_one(self.db.pool())
        .await?;
        v.map(|v| u32::try_from(v).map_err(|_| CryptoError::Malformed))
            .transpose()
    }

    /// Adds a data key version (version 1 when the tenant has none); returns its number.
    /// Racing creators of the same version are resolved by the primary key.
    pub async fn create_version(
        &self,
        tenant: &TenantId,
        purpose: &'static str,
    ) -> Result<u32, CryptoError> {
        let next = self.newest_version(tenant, purpose).await?.unwrap_or(0) + 1;
        let (dk, wrapped, key_id) = self
            .provider
            .generate_data_key(&KeyContext::new(tenant, purpose))
            .await?;
        self.unwraps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let inserted = sqlx::query(
            "INSERT INTO data_keys (tenant_id, purpose, version, provider, key_id, wrapped_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, purpose, version) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(purpose)
        .bind(i64::from(next))
        .bind(self.provider.name())
        .bind(&key_id)
        .bind(wrapped)
        .bind(crate::clock::now_unix())
        .execute(self.db.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            self.remember((tenant.as_str().to_owned(), purpose, next), &dk);
        }
        if let Ok(mut n) = self.newest.lock() {
            n.remove(&(tenant.as_str().to_owned(), purpose));
        }
        Ok(next)
    }

    /// How long this process trusts its idea of the newest version. A rotation elsewhere is
    /// picked up within this time; values written meanwhile use the previous version, which
    /// stays readable and is caught by `keys reencrypt`.
    const NEWEST_TTL: Duration = Duration::from_secs(10);

    /// The newest key of a tenant for `purpose`, creating version 1 on first use.
    async fn current_key(
        &self,
        tenant: &TenantId,
        purpose: &'static str,
    ) -> Result<(u32, DataKey), CryptoError> {
        let nk = (tenant.as_str().to_owned(), purpose);
        let known = self.newest.lock().ok().and_then(|n| {
            n.get(&nk)
                .filter(|(_, at)| at.elapsed() < Self::NEWEST_TTL)
                .map(|(v, _)| *v)
        });
        if let Some(v) = known {
            return Ok((v, self.key(tenant, purpose, v).await?));
        }
        let v = match self.newest_version(tenant, purpose).await? {
            Some(v) => v,
            None => {
                self.create_version(tenant, purpose).await?;
                self.newest_version(tenant, purpose)
                    .await?
                    .ok_or(CryptoError::Malformed)?
            }
        };
        if let Ok(mut n) = self.newest.lock() {
            n.insert(nk, (v, Instant::now()));
        }
        Ok((v, self.key(tenant, purpose, v).await?))
    }

    /// A given key version, from the cache or unwrapped by the provider.
    async fn key(
        &self,
        tenant: &TenantId,
        purpose: &'static str,
        version: u32,
    ) -> Result<DataKey, CryptoError> {
        let ck = (tenant.as_str().to_owned(), purpose, version);
        if let Some(k) = self.cached(&ck) {
            crate::observe::key_lookup(true);
            return Ok(k);
        }
        crate::observe::key_lookup(false);
        let (key_id, wrapped): (String, Vec<u8>) = sqlx::query_as(
            "SELECT key_id, wrapped_key FROM data_keys WHERE tenant_id = $1 AND purpose = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(purpose)
        .bind(i64::from(version))
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(CryptoError::Integrity)?;
        let dk = self
            .provider
            .decrypt_data_key(&key_id, &wrapped, &KeyContext::new(tenant, purpose))
            .await?;
        self.unwraps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::observe::key_provider_call(self.provider.name(), "unwrap");
        self.remember(ck, &dk);
        Ok(dk)
    }

    pub async fn encrypt(
        &self,
        aad: FieldAad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (version, key) = self.current_key(aad.tenant, PURPOSE_FIELD).await?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad_bytes = aad.bytes(version);
        let ct = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub async fn decrypt(
        &self,
        aad: FieldAad<'_>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let version = ciphertext_version(blob).ok_or(CryptoError::Malformed)?;
        let nonce = &blob[5..HEADER];
        let key = self.key(aad.tenant, PURPOSE_FIELD, version).await?;
        let aad_bytes = aad.bytes(version);
        key.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &blob[HEADER..],
                    aad: &aad_bytes,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Integrity)
    }

    pub async fn encrypt_str(
        &self,
        aad: FieldAad<'_>,
        value: &Phi<String>,
    ) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(aad, value.expose().as_bytes()).await
    }

    pub async fn decrypt_str(
        &self,
        aad: FieldAad<'_>,
        blob: &[u8],
    ) -> Result<Phi<String>, CryptoError> {
        let pt = self.decrypt(aad, blob).await?;
        String::from_utf8(pt.to_vec())
            .map(Phi::new)
            .map_err(|_| CryptoError::Malformed)
    }

    /// The blind-index key version lookups and new rows use now: the newest, unless a
    /// `keys rotate-index` is still building it (then the one before). Read from the database
    /// on every call, never cached, so the rotation's switch takes effect for every running
    /// server at the moment it commits (see `keys::rotate_index`).
    pub async fn active_index_version(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<u32>, CryptoError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(d.version) FROM data_keys d
             WHERE d.tenant_id = $1 AND d.purpose = $2
               AND NOT EXISTS (SELECT 1 FROM blind_index_rotations r
                   WHERE r.tenant_id = d.tenant_id AND r.to_version = d.version
                     AND r.state = 'building')",
        )
        .bind(tenant.as_str())
        .bind(PURPOSE_INDEX)
        .fetch_one(self.db.pool())
        .await?;
        v.map(|v| u32::try_from(v).map_err(|_| CryptoError::Malformed))
            .transpose()
    }

    /// A blind index: HMAC-SHA256 under the tenant's active index key of an already-normalised
    /// value, domain-separated by what it indexes. Equal inputs give equal outputs; nothing
    /// else leaks. The tenant's first index key is made on first use.
    pub async fn blind_index(
        &self,
        tenant: &TenantId,
        what: &'static str,
        normalized: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let version = match self.active_index_version(tenant).await? {
            Some(v) => v,
            None => {
                self.create_version(tenant, PURPOSE_INDEX).await?;
                self.active_index_version(tenant)
                    .await?
                    .ok_or(CryptoError::Malformed)?
            }
        };
        self.blind_index_at(tenant, version, what, normalized).await
    }

    /// A blind index under a given index-key version (`keys rotate-index` builds the new
    /// values with the version it is rotating to).
    pub(crate) async fn blind_index_at(
        &self,
        tenant: &TenantId,
        version: u32,
        what: &str,
        normalized: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(tenant, PURPOSE_INDEX, version).await?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes())
            .map_err(|_| CryptoError::Malformed)?;
        mac.update(b"patriotpay-bidx-v1\0");
        mac.update(what.as_bytes());
        mac.update(b"\0");
        mac.update(normalized.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Makes sure the tenant has a field key and this process holds its newest version, so a
    /// write transaction that encrypts next (a value bound to a row id the insert returns) does
    /// not have to create one while it holds the write lock.
    pub async fn ready_field_key(&self, tenant: &TenantId) -> Result<u32, CryptoError> {
        Ok(self.current_key(tenant, PURPOSE_FIELD).await?.0)
    }
}

/// SHA-256 of a high-entropy token. Tokens carry ≥128 random bits, so no salt or key is needed
/// for the stored hash to be useless to a database reader.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new URL-safe random token of 256 bits.
pub fn random_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Default location of the local master key inside the data directory.
pub fn default_master_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key")
}

#[cfg(test)]
mod tests;
