//! Envelope encryption of PHI: key providers, per-tenant data keys, and field ciphertexts
//! bound to their tenant, table, column and row.

use crate::db::Db;
use crate::ids::TenantId;
use crate::phi::Phi;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key provider could not be reached or refused; PHI must not be served or written.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// A ciphertext failed authentication: tampered, moved, or under another key.
    #[error("ciphertext failed authentication")]
    Integrity,
    #[error("malformed ciphertext")]
    Malformed,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A 256-bit plaintext data key; zeroed when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_ref()))
    }
}

/// What a data key is for. Sent to the provider as encryption context (KMS logs it in plain
/// text), so it names a tenant and a purpose and never anything about a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyContext {
    pub tenant: String,
    pub purpose: &'static str,
}

impl KeyContext {
    pub fn phi(tenant: &TenantId) -> Self {
        Self {
            tenant: tenant.as_str().to_owned(),
            purpose: "phi-field",
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

/// Generates and unwraps data keys. The local file provider is the embedded default; AWS KMS
/// implements the same trait.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// Short provider name stored beside each wrapped key ("local", "aws-kms").
    fn name(&self) -> &'static str;
    /// The master key that new data keys are wrapped under.
    fn key_id(&self) -> &str;
    /// A fresh data key, in plaintext and wrapped under `key_id`.
    async fn generate_data_key(&self, ctx: &KeyContext) -> Result<(DataKey, Vec<u8>), CryptoError>;
    /// Unwraps a data key that `key_id` wrapped with the same context.
    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &KeyContext,
    ) -> Result<DataKey, CryptoError>;
}

/// A master key in a local file (AES-256-GCM key wrapping). Generated on first start, mode 0600.
pub struct LocalKeyProvider {
    master: DataKey,
    key_id: String,
}

impl LocalKeyProvider {
    /// Loads the master key from `path`, creating it (0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let bytes = if path.exists() {
            let raw = Zeroizing::new(std::fs::read(path)?);
            let text = std::str::from_utf8(&raw)?.trim();
            let decoded = Zeroizing::new(hex::decode(text)?);
            anyhow::ensure!(
                decoded.len() == 32,
                "master key file {} is not 32 bytes of hex",
                path.display()
            );
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&decoded);
            k
        } else {
            let key = DataKey::random();
            write_secret_file(path, hex::encode(key.0.as_ref()).as_bytes())?;
            key.0
        };
        let fingerprint = hex::encode(&Sha256::digest(bytes.as_ref())[..8]);
        Ok(Self {
            master: DataKey(bytes),
            key_id: format!("local:{fingerprint}"),
        })
    }
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

#[async_trait]
impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(&self, ctx: &KeyContext) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let dk = DataKey::random();
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = ctx.aad();
        let ct = self
            .master
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: dk.0.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Unavailable("local wrap failed".into()))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ct);
        Ok((dk, wrapped))
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &KeyContext,
    ) -> Result<DataKey, CryptoError> {
        if key_id != self.key_id {
            return Err(CryptoError::Unavailable(format!(
                "data key wrapped by {key_id}, not by this master key"
            )));
        }
        if wrapped.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = wrapped.split_at(12);
        let aad = ctx.aad();
        let pt = Zeroizing::new(
            self.master
                .cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| CryptoError::Integrity)?,
        );
        if pt.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&pt);
        Ok(DataKey(k))
    }
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

/// Encrypts and decrypts field values with per-tenant data keys kept wrapped in `data_keys`.
/// Plaintext data keys are cached in memory so a page view costs no provider round trip.
pub struct FieldCrypto {
    db: Db,
    provider: Arc<dyn KeyProvider>,
    cache: Mutex<HashMap<(String, u32), DataKey>>,
}

impl FieldCrypto {
    pub fn new(db: Db, provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            db,
            provider,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, tenant: &TenantId, version: u32) -> Option<DataKey> {
        self.cache
            .lock()
            .ok()?
            .get(&(tenant.as_str().to_owned(), version))
            .cloned()
    }

    fn remember(&self, tenant: &TenantId, version: u32, key: &DataKey) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert((tenant.as_str().to_owned(), version), key.clone());
        }
    }

    /// The newest data key of a tenant, creating version 1 on first use.
    async fn current_key(&self, tenant: &TenantId) -> Result<(u32, DataKey), CryptoError> {
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM data_keys WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(self.db.pool())
                .await?;
        if let Some(v) = newest {
            let v = u32::try_from(v).map_err(|_| CryptoError::Malformed)?;
            return Ok((v, self.key(tenant, v).await?));
        }
        let ctx = KeyContext::phi(tenant);
        let (dk, wrapped) = self.provider.generate_data_key(&ctx).await?;
        let inserted = sqlx::query(
            "INSERT INTO data_keys (tenant_id, version, provider, key_id, wrapped_key, created_at)
             VALUES ($1, 1, $2, $3, $4, $5) ON CONFLICT (tenant_id, version) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(self.provider.name())
        .bind(self.provider.key_id())
        .bind(wrapped)
        .bind(crate::clock::now_unix())
        .execute(self.db.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            self.remember(tenant, 1, &dk);
            Ok((1, dk))
        } else {
            // Another request created version 1 first; use theirs.
            Ok((1, self.key(tenant, 1).await?))
        }
    }

    /// A given data-key version of a tenant, from the cache or unwrapped by the provider.
    async fn key(&self, tenant: &TenantId, version: u32) -> Result<DataKey, CryptoError> {
        if let Some(k) = self.cached(tenant, version) {
            return Ok(k);
        }
        let (key_id, wrapped): (String, Vec<u8>) = sqlx::query_as(
            "SELECT key_id, wrapped_key FROM data_keys WHERE tenant_id = $1 AND version = $2",
        )
        .bind(tenant.as_str())
        .bind(i64::from(version))
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(CryptoError::Integrity)?;
        let dk = self
            .provider
            .decrypt_data_key(&key_id, &wrapped, &KeyContext::phi(tenant))
            .await?;
        self.remember(tenant, version, &dk);
        Ok(dk)
    }

    pub async fn encrypt(
        &self,
        aad: FieldAad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (version, key) = self.current_key(aad.tenant).await?;
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
        if blob.len() < HEADER + 16 || blob[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let version = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let nonce = &blob[5..HEADER];
        let key = self.key(aad.tenant, version).await?;
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
mod tests {
    use super::*;

    async fn setup() -> (tempfile::TempDir, FieldCrypto, TenantId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .expect("db");
        db.migrate().await.expect("migrate");
        let provider =
            LocalKeyProvider::load_or_create(&dir.path().join("master.key")).expect("key");
        let tenant = TenantId::generate();
        sqlx::query(
            "INSERT INTO tenants (id, name, support_phone, created_at) VALUES ($1, 'T', '', 0)",
        )
        .bind(tenant.as_str())
        .execute(db.pool())
        .await
        .expect("tenant");
        (dir, FieldCrypto::new(db, Arc::new(provider)), tenant)
    }

    #[tokio::test]
    async fn round_trip_and_binding() {
        let (_dir, fc, tenant) = setup().await;
        let aad = FieldAad {
            tenant: &tenant,
            table: "patients",
            column: "last_name",
            row: "pat_1",
        };
        let ct = fc
            .encrypt_str(aad, &Phi::new("Canary".into()))
            .await
            .expect("enc");
        assert!(!ct.windows(6).any(|w| w == b"Canary"));
        assert_eq!(
            fc.decrypt_str(aad, &ct).await.expect("dec").expose(),
            "Canary"
        );

        // Moved to another row, column, table or tenant: refused.
        let other_tenant = TenantId::generate();
        for moved in [
            FieldAad {
                row: "pat_2",
                ..aad
            },
            FieldAad {
                column: "first_name",
                ..aad
            },
            FieldAad {
                table: "statements",
                ..aad
            },
            FieldAad {
                tenant: &other_tenant,
                ..aad
            },
        ] {
            assert!(fc.decrypt(moved, &ct).await.is_err(), "{moved:?} decrypted");
        }
        // Any flipped byte: refused.
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(
                fc.decrypt(aad, &bad).await.is_err(),
                "flip at {i} decrypted"
            );
        }
    }

    #[tokio::test]
    async fn master_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let a = LocalKeyProvider::load_or_create(&path).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let b = LocalKeyProvider::load_or_create(&path).expect("reload");
        assert_eq!(a.key_id(), b.key_id());
        let ctx = KeyContext {
            tenant: "ten_x".into(),
            purpose: "phi-field",
        };
        let (dk, wrapped) = a.generate_data_key(&ctx).await.expect("gen");
        let back = b
            .decrypt_data_key(b.key_id(), &wrapped, &ctx)
            .await
            .expect("unwrap");
        assert_eq!(dk.0.as_ref(), back.0.as_ref());
        let wrong = KeyContext {
            tenant: "ten_y".into(),
            purpose: "phi-field",
        };
        assert!(b
            .decrypt_data_key(b.key_id(), &wrapped, &wrong)
            .await
            .is_err());
    }
}
