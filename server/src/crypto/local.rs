//! The embedded key provider: one AES-256 master key in a local file (mode 0600), wrapping data
//! keys with AES-256-GCM in the same envelope the KMS provider uses, and MACs of audit anchors
//! under a key derived from it (HKDF-SHA256).

use super::{CryptoError, DataKey, KeyContext, KeyProvider};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use async_trait::async_trait;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

pub struct LocalKeyProvider {
    master: DataKey,
    key_id: String,
    /// HMAC key for audit anchors: derived, so the master key itself never keys two algorithms.
    anchor_key: Zeroizing<[u8; 32]>,
}

/// HKDF `info` naming what the derived key is for; a new use gets a new label.
const ANCHOR_KEY_INFO: &[u8] = b"patriotpay audit anchor v1";

type HmacSha256 = hmac::Hmac<Sha256>;

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
            super::write_secret_file(path, hex::encode(key.bytes()).as_bytes())?;
            Zeroizing::new(*key.bytes())
        };
        // The key id names the key without revealing it: a short fingerprint.
        let fingerprint = hex::encode(&Sha256::digest(bytes.as_ref())[..8]);
        let mut anchor_key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<Sha256>::new(None, bytes.as_ref())
            .expand(ANCHOR_KEY_INFO, anchor_key.as_mut())
            .map_err(|_| anyhow::anyhow!("HKDF cannot make a 32-byte key"))?;
        Ok(Self {
            master: DataKey::from_bytes(bytes),
            key_id: format!("local:{fingerprint}"),
            anchor_key,
        })
    }

    fn check_key(&self, key_id: &str) -> Result<(), CryptoError> {
        if key_id == self.key_id {
            Ok(())
        } else {
            Err(CryptoError::Unavailable(format!(
                "key {key_id} is not this local master key"
            )))
        }
    }
}

#[async_trait]
impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(
        &self,
        ctx: &KeyContext,
    ) -> Result<(DataKey, Vec<u8>, String), CryptoError> {
        let dk = DataKey::random();
        let (wrapped, key_id) = self.wrap_data_key(&self.key_id, &dk, ctx).await?;
        Ok((dk, wrapped, key_id))
    }

    async fn wrap_data_key(
        &self,
        key_id: &str,
        key: &DataKey,
        ctx: &KeyContext,
    ) -> Result<(Vec<u8>, String), CryptoError> {
        self.check_key(key_id)?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = ctx.aad();
        let ct = self
            .master
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key.bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ct);
        Ok((wrapped, self.key_id.clone()))
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &KeyContext,
    ) -> Result<DataKey, CryptoError> {
        self.check_key(key_id)?;
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
        DataKey::from_slice(&pt)
    }

    async fn health(&self) -> Result<(), CryptoError> {
        Ok(())
    }

    async fn mac(&self, data: &[u8]) -> Result<(Vec<u8>, String), CryptoError> {
        use hmac::Mac;
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.anchor_key.as_ref())
            .map_err(|_| CryptoError::Malformed)?;
        m.update(data);
        Ok((m.finalize().into_bytes().to_vec(), self.key_id.clone()))
    }

    async fn verify_mac(&self, key_id: &str, data: &[u8], mac: &[u8]) -> Result<bool, CryptoError> {
        use hmac::Mac;
        self.check_key(key_id)?;
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.anchor_key.as_ref())
            .map_err(|_| CryptoError::Malformed)?;
        m.update(data);
        // Constant time, though a MAC of public data leaks little.
        Ok(m.verify_slice(mac).is_ok())
    }
}
