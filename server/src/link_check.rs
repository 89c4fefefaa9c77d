//! "Is this text really from my practice?" (issue 13): what someone pasted is read as a pay link
//! (or its token) and answered only "genuine and live" or not, never with a practice or patient.
//! Only a whole token can be checked: links are stored as a hash of their token, which first
//! characters cannot be matched against, so a prefix is answered with that explanation. Every
//! check counts against its address key (`limits::address_key`), found or not, so the page is
//! no oracle for guessed tokens.

use crate::db::Db;
use crate::links::{self, LinkState, PayLink};

/// Checks per address key in `WINDOW_SECS`; the next is refused (429) and not recorded.
pub const MAX_CHECKS_PER_ADDRESS: i64 = 20;
pub const WINDOW_SECS: i64 = 15 * 60;

/// What was pasted, as far as it can be read without the database.
#[derive(Debug, PartialEq, Eq)]
pub enum Pasted<'a> {
    /// Nothing at all.
    Empty,
    /// A link on another site than this portal's: whatever its token, it is not ours.
    OtherSite,
    /// A whole token (from a link or alone).
    Token(&'a str),
    /// Fewer characters than a token has: only the first characters of a link.
    Partial,
    /// Nothing a link of ours could be.
    Junk,
}

/// The host of `url` (`https://pay.example:8443/p/x` → `pay.example:8443`), lower-cased.
fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(host.to_ascii_lowercase())
}

/// Reads what was pasted: a whole link (also inside the text message's words), a link without
/// its scheme, or the token alone. `public_url` is this portal's address.
pub fn read<'a>(pasted: &'a str, public_url: &str) -> Pasted<'a> {
    let trimmed = pasted.trim();
    if trimmed.is_empty() {
        return Pasted::Empty;
    }
    let candidate = match trimmed.rfind("/p/") {
        Some(at) => {
            // Only the link's own address is compared: a genuine token on a look-alike site is
            // still a trap.
            let start = trimmed[..at]
                .rfind(char::is_whitespace)
                .map_or(0, |i| i + 1);
            let link = &trimmed[start..];
            if link.contains("://") && host_of(link) != host_of(public_url) {
                return Pasted::OtherSite;
            }
            let after = &trimmed[at + 3..];
            after
                .split(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#'))
                .next()
                .unwrap_or_default()
        }
        None => trimmed,
    };
    let url_safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if links::token_shape_ok(candidate) {
        Pasted::Token(candidate)
    } else if !candidate.is_empty() && candidate.len() < 22 && url_safe(candidate) {
        Pasted::Partial
    } else {
        Pasted::Junk
    }
}

/// Claims one check for `address_key`: `false` when the address has used its checks in the
/// window (`limits::claim_use`).
pub async fn claim(db: &Db, address_key: &str, now: i64) -> Result<bool, sqlx::Error> {
    let limit = crate::limits::UseLimit {
        kind: "link-check",
        max: MAX_CHECKS_PER_ADDRESS,
        window_secs: WINDOW_SECS,
    };
    crate::limits::claim_use(db, &limit, address_key, now).await
}

/// The answer to one check.
#[derive(Debug)]
pub enum Verdict {
    /// A link of ours that works (or would after staff unlock it): not expired, not revoked.
    Genuine(PayLink),
    /// No live link has that token (expired, revoked, never issued, or nothing like a link).
    NotFound,
    /// Only the first characters: they cannot be checked.
    Partial,
    /// A link to another site.
    OtherSite,
    Empty,
}

/// Checks what was pasted (after `claim`).
pub async fn check(
    db: &Db,
    pasted: &str,
    public_url: &str,
    now: i64,
) -> Result<Verdict, sqlx::Error> {
    Ok(match read(pasted, public_url) {
        Pasted::Empty => Verdict::Empty,
        Pasted::OtherSite => Verdict::OtherSite,
        Pasted::Partial => Verdict::Partial,
        Pasted::Junk => Verdict::NotFound,
        Pasted::Token(token) => match links::find_by_token(db, token).await? {
            Some(link) if link.state(now) != LinkState::Dead => Verdict::Genuine(link),
            _ => Verdict::NotFound,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "https://pay.example";
    const TOKEN: &str = "AbCdEfGhIjKlMnOpQrStUv12";

    #[test]
    fn a_whole_link_or_token_is_read_anywhere_in_the_text() {
        for pasted in [
            format!("{SITE}/p/{TOKEN}"),
            format!("  {SITE}/p/{TOKEN}?x=1  "),
            format!("HTTPS://PAY.EXAMPLE/p/{TOKEN}/"),
            format!("pay.example/p/{TOKEN}"),
            format!("Riverside: your statement is ready: {SITE}/p/{TOKEN} Reply STOP to opt out"),
            TOKEN.to_owned(),
        ] {
            assert_eq!(read(&pasted, SITE), Pasted::Token(TOKEN), "{pasted}");
        }
    }

    #[test]
    fn first_characters_other_sites_and_junk() {
        assert_eq!(read(&format!("{SITE}/p/AbCdEfGh"), SITE), Pasted::Partial);
        assert_eq!(read("AbCdEfGh", SITE), Pasted::Partial);
        assert_eq!(
            read(&format!("https://pay.example.evil.test/p/{TOKEN}"), SITE),
            Pasted::OtherSite
        );
        assert_eq!(
            read(&format!("Pay now: http://bit.ly/p/{TOKEN}"), SITE),
            Pasted::OtherSite
        );
        assert_eq!(read("   ", SITE), Pasted::Empty);
        assert_eq!(read("<script>alert(1)</script>", SITE), Pasted::Junk);
        assert_eq!(read(&"a".repeat(65), SITE), Pasted::Junk);
    }
}
