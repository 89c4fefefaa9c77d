//! Stripe-format webhook signatures: `Stripe-Signature: t=…,v1=…[,v1=…]`, HMAC-SHA256 keyed
//! with the whole `whsec_…` secret over `"{t}.{body}"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes any key length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value a sender puts on `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let sig = hex::encode(mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={sig}")
}

/// Checks a header against the body with any of `secrets` (several during rotation).
pub fn verify(secrets: &[&str], header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = vec![];
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for c in &candidates {
            // verify_slice compares in constant time.
            if mac(secret, t, body).verify_slice(c).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const EXPECTED: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    #[test]
    fn matches_the_worked_example() {
        assert_eq!(
            sign("whsec_test_secret", 1_700_000_000, BODY),
            format!("t=1700000000,v1={EXPECTED}")
        );
        let header = format!("t=1700000000,v1={EXPECTED}");
        assert_eq!(
            verify(&["whsec_test_secret"], &header, BODY, 1_700_000_000),
            Ok(())
        );
    }

    #[test]
    fn tolerance_applies_both_ways() {
        let header = format!("t=1700000000,v1={EXPECTED}");
        assert_eq!(
            verify(&["whsec_test_secret"], &header, BODY, 1_700_000_300),
            Ok(())
        );
        assert_eq!(
            verify(&["whsec_test_secret"], &header, BODY, 1_699_999_700),
            Ok(())
        );
        assert_eq!(
            verify(&["whsec_test_secret"], &header, BODY, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&["whsec_test_secret"], &header, BODY, 1_699_999_699),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn any_v1_and_any_secret_may_match() {
        let other = "0".repeat(64);
        let header = format!("t=1700000000,v1={other},v1={EXPECTED}");
        assert_eq!(
            verify(
                &["whsec_old", "whsec_test_secret"],
                &header,
                BODY,
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            verify(&["whsec_old"], &header, BODY, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_tampering_and_junk() {
        let header = format!("t=1700000000,v1={EXPECTED}");
        let tampered = br#"{"id":"evt_test_webhook","object":"evenT"}"#;
        assert_eq!(
            verify(&["whsec_test_secret"], &header, tampered, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        // Changing the timestamp breaks the signature even inside the tolerance.
        let shifted = format!("t=1700000001,v1={EXPECTED}");
        assert_eq!(
            verify(&["whsec_test_secret"], &shifted, BODY, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        // An extreme timestamp must not overflow the tolerance arithmetic.
        let extreme = format!("t={},v1={EXPECTED}", i64::MIN);
        assert_eq!(
            verify(&["whsec_test_secret"], &extreme, BODY, 1_700_000_000),
            Err(SignatureError::Stale)
        );
        for bad in [
            "",
            "t=1700000000",
            "v1=abcd",
            "t=x,v1=00",
            "garbage",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify(&["whsec_test_secret"], bad, BODY, 1_700_000_000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
