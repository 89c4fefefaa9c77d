//! AWS KMS key provider: data keys from `GenerateDataKey` (AES_256), unwrapped with `Decrypt`,
//! re-wrapped with `Encrypt`, always under an encryption context of tenant and purpose; audit
//! anchors MACed with `GenerateMac` / `VerifyMac` (HMAC_SHA_256) under a separate HMAC key.

use super::{CryptoError, DataKey, KeyContext, KeyProvider};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, MacAlgorithmSpec};
use aws_sdk_kms::Client;
use std::time::Duration;

/// How to reach KMS. Credentials come from the standard AWS chain (environment, profile, role).
#[derive(Clone, Debug)]
pub struct KmsSettings {
    /// Key id, ARN or `alias/…` that wraps new data keys.
    pub key_id: String,
    pub region: Option<String>,
    /// Another endpoint (moto in tests, a VPC endpoint in production).
    pub endpoint_url: Option<String>,
    /// An HMAC key (key spec HMAC_256, usage GENERATE_VERIFY_MAC) for audit anchors; KMS keys
    /// have one usage each, so it cannot be the key that wraps data keys.
    pub mac_key_id: Option<String>,
}

pub struct KmsKeyProvider {
    client: Client,
    key_id: String,
    mac_key_id: Option<String>,
}

/// An SDK error as text, without request payloads (which could hold key material).
fn unavailable<E: std::error::Error>(what: &str, e: E) -> CryptoError {
    let mut msg = format!("{what}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    CryptoError::Unavailable(msg)
}

impl KmsKeyProvider {
    pub async fn connect(settings: &KmsSettings) -> KmsKeyProvider {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            // Fail fast: a page view waits on this, and the cache covers short blips.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(8))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
        if let Some(r) = &settings.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &settings.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        let conf = loader.load().await;
        KmsKeyProvider {
            client: Client::new(&conf),
            key_id: settings.key_id.clone(),
            mac_key_id: settings.mac_key_id.clone(),
        }
    }

    fn context(ctx: &KeyContext) -> std::collections::HashMap<String, String> {
        [
            ("tenant".to_owned(), ctx.tenant.clone()),
            ("purpose".to_owned(), ctx.purpose.to_owned()),
        ]
        .into()
    }
}

#[async_trait]
impl KeyProvider for KmsKeyProvider {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(
        &self,
        ctx: &KeyContext,
    ) -> Result<(DataKey, Vec<u8>, String), CryptoError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(ctx)))
            .send()
            .await
            .map_err(|e| unavailable("GenerateDataKey", e))?;
        let plaintext = out.plaintext().ok_or(CryptoError::Malformed)?;
        let key = DataKey::from_slice(plaintext.as_ref())?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or(CryptoError::Malformed)?
            .as_ref()
            .to_vec();
        // Store the ARN KMS reports, so an alias moving later doesn't orphan the data key.
        let key_id = out.key_id().unwrap_or(&self.key_id).to_owned();
        Ok((key, wrapped, key_id))
    }

    async fn wrap_data_key(
        &self,
        key_id: &str,
        key: &DataKey,
        ctx: &KeyContext,
    ) -> Result<(Vec<u8>, String), CryptoError> {
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(key.bytes().to_vec()))
            .set_encryption_context(Some(Self::context(ctx)))
            .send()
            .await
            .map_err(|e| unavailable("Encrypt", e))?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or(CryptoError::Malformed)?
            .as_ref()
            .to_vec();
        Ok((wrapped, out.key_id().unwrap_or(key_id).to_owned()))
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &KeyContext,
    ) -> Result<DataKey, CryptoError> {
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(Self::context(ctx)))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                // Wrong context or tampered blob: not an outage.
                Some(se)
                    if se.is_invalid_ciphertext_exception() || se.is_incorrect_key_exception() =>
                {
                    CryptoError::Integrity
                }
                _ => unavailable("Decrypt", e),
            })?;
        DataKey::from_slice(out.plaintext().ok_or(CryptoError::Malformed)?.as_ref())
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("DescribeKey", e))
    }

    async fn mac(&self, data: &[u8]) -> Result<(Vec<u8>, String), CryptoError> {
        let key = self.mac_key_id.as_deref().ok_or_else(|| {
            CryptoError::Unavailable(
                "no audit MAC key: set PATRIOTPAY_AUDIT_MAC_KEY_ID to a KMS key with key spec \
                 HMAC_256 and usage GENERATE_VERIFY_MAC"
                    .into(),
            )
        })?;
        let out = self
            .client
            .generate_mac()
            .key_id(key)
            .message(Blob::new(data.to_vec()))
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .send()
            .await
            .map_err(|e| unavailable("GenerateMac", e))?;
        let mac = out.mac().ok_or(CryptoError::Malformed)?.as_ref().to_vec();
        // The id KMS reports (an ARN on AWS), so an alias moving later still verifies.
        Ok((mac, out.key_id().unwrap_or(key).to_owned()))
    }

    async fn verify_mac(&self, key_id: &str, data: &[u8], mac: &[u8]) -> Result<bool, CryptoError> {
        let sent = self
            .client
            .verify_mac()
            .key_id(key_id)
            .message(Blob::new(data.to_vec()))
            .mac(Blob::new(mac.to_vec()))
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.mac_valid()),
            // KMS answers a wrong MAC with this error rather than `MacValid: false`.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_kms_invalid_mac_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("VerifyMac", e)),
        }
    }
}
