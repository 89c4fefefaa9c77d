//! Anchors: signed checkpoints `{seq, hash, at, key_id, mac}` of the audit chain's head, one JSON
//! line each, appended to a file outside the database (`PATRIOTPAY_AUDIT_ANCHOR_FILE`). The MAC
//! is the key provider's (HMAC-SHA256: a key derived from the local master key, or a KMS HMAC key
//! through `GenerateMac`), so whoever holds only the database's credentials can neither forge a
//! checkpoint nor rewrite the history one covers, nor cut off the events up to the newest one
//! unnoticed. The file should live where those credentials cannot reach (another host, an
//! append-only mount, a bucket with object lock): removing its newest lines hides a truncation
//! since them.

use super::chain;
use crate::crypto::KeyProvider;
use crate::db::Db;
use std::io::Write;
use std::path::Path;

/// One checkpoint, as a line of the anchor file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The seal this checkpoint vouches for, and its hash (hex).
    pub seq: i64,
    pub hash: String,
    /// When it was made (unix seconds).
    pub at: i64,
    /// The key that made the MAC, as the provider names it.
    pub key_id: String,
    /// HMAC-SHA256 over `signed_bytes` (hex).
    pub mac: String,
}

impl Checkpoint {
    /// The bytes the MAC covers (everything but the key id, which only says how to check it).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.seq, &self.hash, self.at)
    }
}

fn signed_bytes(seq: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("patriotpay audit anchor v1\nseq {seq}\nhash {hash}\nat {at}\n").into_bytes()
}

/// Signs the current head and appends it to `path` (made, owner-only, if missing).
pub async fn append(
    db: &Db,
    provider: &dyn KeyProvider,
    path: &Path,
    now: i64,
) -> anyhow::Result<Checkpoint> {
    let (seq, hash) = chain::head(db).await?;
    anyhow::ensure!(seq > 0, "nothing is sealed yet: there is no head to anchor");
    let hash = hex::encode(hash);
    let (mac, key_id) = provider.mac(&signed_bytes(seq, &hash, now)).await?;
    let cp = Checkpoint {
        seq,
        hash,
        at: now,
        key_id,
        mac: hex::encode(mac),
    };
    let mut line = serde_json::to_string(&cp)?;
    line.push('\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the anchor file {}: {e}", path.display()))?;
    // One write of the whole line: appends from two processes do not interleave.
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    Ok(cp)
}

/// One line of the anchor file: its number (from 1) and the checkpoint, or why it is not one.
pub type Line = (usize, Result<Checkpoint, String>);

/// Every line of the anchor file; `None` when there is no file.
pub fn read(path: &Path) -> anyhow::Result<Option<Vec<Line>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read the anchor file {}: {e}", path.display()),
    };
    Ok(Some(
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i + 1,
                    serde_json::from_str::<Checkpoint>(l).map_err(|e| e.to_string()),
                )
            })
            .collect(),
    ))
}

/// Whether the checkpoint's MAC verifies under its key.
pub async fn mac_ok(
    provider: &dyn KeyProvider,
    cp: &Checkpoint,
) -> Result<bool, crate::crypto::CryptoError> {
    let Ok(mac) = hex::decode(&cp.mac) else {
        return Ok(false);
    };
    provider
        .verify_mac(&cp.key_id, &cp.signed_bytes(), &mac)
        .await
}
