//! Stripe-format webhook signatures: `Stripe-Signature: t=…,v1=…[,v1=…]`, HMAC-SHA256 keyed
//! with the whole `whsec_…` secret over `"{t}.{body}"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a signature's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// The longest header accepted. A real one holds a timestamp and a few 64-hex signatures (more
/// than one only while a secret is rotated); anything longer is refused before it is parsed.
pub const MAX_HEADER_BYTES: usize = 1024;

/// The most `v1` candidates accepted: each is compared against every configured secret's MAC.
pub const MAX_CANDIDATES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    #[error("Stripe-Signature header too long or with too many signatures")]
    TooLarge,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

#[cfg(test)]
thread_local! {
    /// MACs computed over a body on this thread (tests check the work is bounded).
    static MACS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    #[cfg(test)]
    MACS.with(|m| m.set(m.get() + 1));
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes any key length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value a sender puts on `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let sig = hex::encode(mac(secret, timestamp, body));
    format!("t={timestamp},v1={sig}")
}

/// A `v1` value: exactly 64 lowercase hex digits (an HMAC-SHA256).
fn candidate(v: &str) -> Option<[u8; 32]> {
    if v.len() != 64 || !v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(v, &mut out).ok()?;
    Some(out)
}

/// Checks a header against the body with any of `secrets` (several during rotation). The work
/// is bounded before the body is touched: the header's length and candidate count are capped,
/// only well-formed candidates are kept, and the MAC is computed once per secret.
pub fn verify(secrets: &[&str], header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::TooLarge);
    }
    let mut timestamp = None;
    let mut candidates: Vec<[u8; 32]> = Vec::with_capacity(2);
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                if candidates.len() == MAX_CANDIDATES {
                    return Err(SignatureError::TooLarge);
                }
                candidates.push(candidate(v).ok_or(SignatureError::Malformed)?);
            }
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
        let expected = mac(secret, t, body);
        // Every candidate is compared, in constant time, so timing says nothing about which.
        let mut matched = subtle::Choice::from(0);
        for c in &candidates {
            matched |= expected[..].ct_eq(&c[..]);
        }
        if bool::from(matched) {
            return Ok(());
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

    #[test]
    fn candidates_must_be_64_hex() {
        for bad in ["", "00", &"A".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            let header = format!("t=1700000000,v1={bad}");
            assert_eq!(
                verify(&["whsec_test_secret"], &header, BODY, 1_700_000_000),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    /// The header that made the portal compute one MAC over the body per empty candidate.
    #[test]
    fn fifty_thousand_candidates_are_refused_before_any_mac() {
        let header = format!("t=1700000000{}", ",v1=".repeat(50_000));
        let body = vec![b'x'; 60 * 1024];
        MACS.with(|m| m.set(0));
        assert_eq!(
            verify(&["whsec_test_secret"], &header, &body, 1_700_000_000),
            Err(SignatureError::TooLarge)
        );
        assert_eq!(MACS.with(|m| m.get()), 0, "no MAC computed");
    }

    #[test]
    fn candidates_are_capped_and_the_mac_computed_once_per_secret() {
        let other = "0".repeat(64);
        let many = format!(
            "t=1700000000{}",
            format!(",v1={other}").repeat(MAX_CANDIDATES + 1)
        );
        assert!(
            many.len() <= MAX_HEADER_BYTES,
            "the cap, not the length, refuses it"
        );
        assert_eq!(
            verify(&["whsec_test_secret"], &many, BODY, 1_700_000_000),
            Err(SignatureError::TooLarge)
        );
        let at_cap = format!(
            "t=1700000000{},v1={EXPECTED}",
            format!(",v1={other}").repeat(MAX_CANDIDATES - 1)
        );
        MACS.with(|m| m.set(0));
        assert_eq!(
            verify(
                &["whsec_a", "whsec_b", "whsec_test_secret"],
                &at_cap,
                BODY,
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            MACS.with(|m| m.get()),
            3,
            "one MAC per secret, not per candidate"
        );
    }
}

/// The header and body come from anyone on the internet: no input panics or costs more than
/// one MAC per secret, and every signature `sign` makes verifies within the tolerance, for that
/// body and secret only.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    fn macs() -> usize {
        MACS.with(|m| m.get())
    }

    /// Headers shaped like real ones, with the parts an attacker would vary.
    fn header_like() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            "t=-?[0-9]{0,20}",
            "v1=[0-9a-f]{0,70}",
            "v1=[0-9A-Fa-z]{64}",
            "v0=[0-9a-f]{64}",
            "[a-z0-9]{0,4}=?.{0,8}",
            Just(String::new()),
        ];
        proptest::collection::vec(part, 0..12).prop_map(|p| p.join(","))
    }

    proptest! {
        #[test]
        fn any_header_is_answered_within_one_mac_per_secret(
            header in prop_oneof![".{0,200}", header_like()],
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in any::<i64>(),
        ) {
            let before = macs();
            let _ = verify(&["whsec_a", "whsec_b"], &header, &body, now);
            prop_assert!(macs() - before <= 2);
        }

        #[test]
        fn oversized_headers_are_refused_unparsed(extra in 1..4096usize) {
            let header = format!("t=1,{}", "v1=,".repeat((MAX_HEADER_BYTES + extra) / 4));
            let before = macs();
            prop_assert_eq!(verify(&["whsec_a"], &header, b"{}", 1), Err(SignatureError::TooLarge));
            prop_assert_eq!(macs(), before);
        }

        #[test]
        fn signed_verifies_and_tampered_does_not(
            secret in "whsec_[A-Za-z0-9]{1,40}",
            other in "whsec_[A-Za-z0-9]{1,40}",
            t in -1_000_000_000_000i64..1_000_000_000_000,
            skew in -TOLERANCE_SECS..=TOLERANCE_SECS,
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<proptest::sample::Index>(),
        ) {
            let header = sign(&secret, t, &body);
            prop_assert_eq!(verify(&[secret.as_str()], &header, &body, t + skew), Ok(()));
            // Also when it is one of several configured secrets (rotation).
            prop_assert_eq!(verify(&[other.as_str(), secret.as_str()], &header, &body, t), Ok(()));
            if other != secret {
                prop_assert_eq!(verify(&[other.as_str()], &header, &body, t), Err(SignatureError::Mismatch));
            }
            let mut tampered = body.clone();
            if tampered.is_empty() {
                tampered.push(b'x');
            } else {
                let i = flip.index(tampered.len());
                tampered[i] ^= 0x01;
            }
            prop_assert_eq!(verify(&[secret.as_str()], &header, &tampered, t), Err(SignatureError::Mismatch));
            prop_assert_eq!(
                verify(&[secret.as_str()], &header, &body, t + TOLERANCE_SECS + 1),
                Err(SignatureError::Stale)
            );
        }
    }
}
