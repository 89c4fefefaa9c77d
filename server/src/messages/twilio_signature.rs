//! Computing and verifying Twilio's `X-Twilio-Signature` webhook header.
//!
//! Algorithm (Twilio "Webhooks security", matching the official twilio-python
//! `RequestValidator.compute_signature`):
//!
//! 1. Start with the full URL Twilio requested, scheme through query string, exactly as
//!    configured in Twilio (behind a proxy, rebuild the *public* URL, not the internal one).
//! 2. Sort the POST parameter names by byte value (Unix-style, case-sensitive: `To` < `body`).
//! 3. For each name, take its distinct values sorted by byte value, and append `name + value`
//!    with no separators. (Repeated names do not occur in SMS webhooks; for them the official
//!    SDKs sort the values, and twilio-python also drops duplicates, which we follow.)
//! 4. HMAC-SHA1 the UTF-8 string with the account's auth token as key; base64 (standard,
//!    padded) the 20-byte digest.
//!
//! Parameters are the *decoded* form values. Twilio's SDKs additionally retry with the
//! default port added to or removed from the URL; this module does not, so the caller must
//! pass the URL exactly as it is configured in Twilio.
//!
//! The scheme has no separators between names and values, so a captured request can be
//! re-split (`FromCity=X` → a second `From=CityX`) without breaking the signature; parsers of
//! signed parameters must therefore refuse repeated names.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// `None` only if the HMAC key were refused, which `Hmac` never does (any key length works).
fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<HmacSha1> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Sorting the pairs orders names first, then values within a name.
    sorted.sort_unstable();
    sorted.dedup();
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    Some(mac)
}

/// Twilio's signature: base64(HMAC-SHA1(auth_token, url + concat(sorted(key + value) of POST params))).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    mac(auth_token, url, params)
        .map(|mac| STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `header` (the `X-Twilio-Signature` value) is Twilio's signature of this request.
///
/// The digest comparison is constant-time. An empty auth token never verifies: anyone can
/// compute an HMAC with an empty key, so a missing configuration must not accept requests.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    if auth_token.is_empty() {
        return false;
    }
    let Ok(claimed) = STANDARD.decode(header.trim()) else {
        return false;
    };
    mac(auth_token, url, params).is_some_and(|mac| mac.verify_slice(&claimed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// Twilio's example request with the given caller number, deliberately not sorted.
    fn example(caller: &str) -> Vec<(String, String)> {
        p(&[
            ("To", "+18005551212"),
            ("Digits", "1234"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", caller),
            ("Caller", caller),
        ])
    }

    fn doc_params() -> Vec<(String, String)> {
        example("+14158675310")
    }

    #[test]
    fn twilio_documented_example() {
        // Example in Twilio's webhook security docs (caller +14158675310).
        let sig = signature(TOKEN, URL, &doc_params());
        assert_eq!(sig, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert!(verify(
            TOKEN,
            URL,
            &doc_params(),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
        // Surrounding whitespace in the header is tolerated.
        assert!(verify(
            TOKEN,
            URL,
            &doc_params(),
            " GvWf1cFY/Q7PnoempGyD5oXAezc=\r\n"
        ));
    }

    #[test]
    fn twilio_python_test_vector() {
        // Vector from twilio-python's own RequestValidator unit tests (caller +14158675309).
        let sig = signature(TOKEN, URL, &example("+14158675309"));
        assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn caller_12349013030_does_not_give_the_documented_signature() {
        // The same request with caller +12349013030 (as in Twilio's code snippets) signs to a
        // different value; this one was cross-checked with Python's hmac/hashlib, it is not
        // a published vector.
        let sig = signature(TOKEN, URL, &example("+12349013030"));
        assert_ne!(sig, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn string_to_sign_is_url_then_sorted_pairs() {
        let expected = {
            let mut m = HmacSha1::new_from_slice(TOKEN.as_bytes()).unwrap();
            m.update(
                format!(
                    "{URL}CallSidCA1234567890ABCDECaller+14158675310Digits1234\
                     From+14158675310To+18005551212"
                )
                .as_bytes(),
            );
            STANDARD.encode(m.finalize().into_bytes())
        };
        assert_eq!(signature(TOKEN, URL, &doc_params()), expected);
    }

    #[test]
    fn sort_is_case_sensitive_by_byte() {
        // Upper-case names sort before lower-case ones ("Zeta" < "alpha").
        let params = p(&[("alpha", "1"), ("Zeta", "2")]);
        let mut m = HmacSha1::new_from_slice(b"k").unwrap();
        m.update(b"https://x.example/Zeta2alpha1");
        let expected = STANDARD.encode(m.finalize().into_bytes());
        assert_eq!(signature("k", "https://x.example/", &params), expected);
    }

    #[test]
    fn repeated_names_use_sorted_distinct_values() {
        let a = p(&[("M", "b"), ("M", "a"), ("M", "b")]);
        let b = p(&[("M", "a"), ("M", "b")]);
        assert_eq!(signature(TOKEN, URL, &a), signature(TOKEN, URL, &b));
        let c = p(&[("M", "a"), ("M", "c")]);
        assert_ne!(signature(TOKEN, URL, &b), signature(TOKEN, URL, &c));
    }

    #[test]
    fn forged_and_tampered_requests_fail() {
        let good = signature(TOKEN, URL, &doc_params());
        // Wrong auth token.
        assert!(!verify("54321", URL, &doc_params(), &good));
        // Empty auth token, even with a signature made with the empty key.
        let empty_key_sig = signature("", URL, &doc_params());
        assert!(!verify("", URL, &doc_params(), &empty_key_sig));
        // Tampered value.
        let mut tampered = doc_params();
        tampered[1].1 = "9999".into();
        assert!(!verify(TOKEN, URL, &tampered, &good));
        // Added parameter.
        let mut added = doc_params();
        added.push(("Body".into(), "STOP".into()));
        assert!(!verify(TOKEN, URL, &added, &good));
        // Removed parameter.
        let removed = doc_params()[1..].to_vec();
        assert!(!verify(TOKEN, URL, &removed, &good));
        // Different URL: path, query string, scheme.
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php",
            &doc_params(),
            &good
        ));
        assert!(!verify(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &doc_params(),
            &good
        ));
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?bar=2&foo=1",
            &doc_params(),
            &good
        ));
        // Malformed headers.
        assert!(!verify(TOKEN, URL, &doc_params(), ""));
        assert!(!verify(TOKEN, URL, &doc_params(), "not base64!"));
        assert!(!verify(TOKEN, URL, &doc_params(), &good[..good.len() - 4]));
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8_lossy(&flipped).into_owned();
        assert!(!verify(TOKEN, URL, &doc_params(), &flipped));
    }

    #[test]
    fn resplitting_name_and_value_is_not_detected() {
        // Twilio's scheme has no separators, so a captured request can be re-split, e.g.
        // `FromCity=BOSTON` into a second `From=CityBOSTON`, without changing the signature.
        // This is why `twilio::parse_inbound` refuses repeated names.
        let original = p(&[("From", "+1234"), ("FromCity", "BOSTON")]);
        let resplit = p(&[("From", "+1234"), ("From", "CityBOSTON")]);
        let sig = signature(TOKEN, URL, &original);
        assert!(verify(TOKEN, URL, &resplit, &sig));
    }
}
