//! The embedded key provider: one AES-256 master key in a local file (mode 0600), wrapping data
//! keys with AES-256-GCM in the same envelope the KMS provider uses.

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
            super::write_secret_file(path, hex::encode(key.bytes()).as_bytes())?;
            Zeroizing::new(*key.bytes())
        };
        // The key id names the key without revealing it: a short fingerprint.
        let fingerprint = hex::encode(&Sha256::digest(bytes.as_ref())[..8]);
        Ok(Self {
            master: DataKey::from_bytes(bytes),
            key_id: format!("local:{fingerprint}"),
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
}
