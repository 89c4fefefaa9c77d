//! What the attempt limits (sign-in, identity check) key an address on: the IPv4 address, or
//! the /64 an IPv6 address belongs to; and the per-address limit on what anyone may ask for
//! without an account (`claim_use`: link checks, reset codes).
//!
//! One IPv6 subscriber is usually given a whole /64 (often more), so an attacker can rotate
//! through 2^64 addresses without asking anyone; a limit on the exact address string would
//! never fire. Only limits use this key: the audit log keeps the full address.

use crate::db::Db;
use std::net::{IpAddr, Ipv6Addr};

/// At most `max` uses of `kind` per address key in `window_secs`.
pub struct UseLimit {
    pub kind: &'static str,
    pub max: i64,
    pub window_secs: i64,
}

/// Claims one use of `limit.kind` for `address_key` (from `address_key`): `false` when the
/// address has used its share in the window; the refused use is not recorded, so a flood adds
/// no rows. Counted before and after the row is written: parallel uses that all passed the first
/// count are still cut to the limit by the second (each sees at least every row committed before
/// its own), so at most `max` go through.
pub async fn claim_use(
    db: &Db,
    limit: &UseLimit,
    address_key: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let since = now - limit.window_secs;
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM address_uses WHERE kind = $1 AND address_key = $2 AND at > $3",
        )
        .bind(limit.kind)
        .bind(address_key)
        .bind(since)
        .fetch_one(db.pool())
        .await
    };
    if count().await? >= limit.max {
        return Ok(false);
    }
    // Old rows count for nothing: pruned here, where the table grows.
    sqlx::query("DELETE FROM address_uses WHERE kind = $1 AND at <= $2")
        .bind(limit.kind)
        .bind(since)
        .execute(db.pool())
        .await?;
    sqlx::query("INSERT INTO address_uses (kind, address_key, at) VALUES ($1, $2, $3)")
        .bind(limit.kind)
        .bind(address_key)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(count().await? <= limit.max)
}

/// The key the per-address limits count under: `192.0.2.7` for IPv4 (and IPv4-mapped IPv6,
/// `::ffff:192.0.2.7`, which is the same client), `2001:db8:1:2::/64` for any other IPv6
/// address. Anything that is not an address (`unknown`) is its own key.
pub fn address_key(address: &str) -> String {
    let trimmed = address.trim();
    // A bracketed form (`[2001:db8::1]`) is an address too.
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        Err(_) => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn ipv4_is_keyed_on_the_address() {
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_ne!(address_key("192.0.2.7"), address_key("192.0.2.8"));
    }

    #[test]
    fn ipv6_is_keyed_on_its_64() {
        let a = address_key("2001:db8:1:2::1");
        assert_eq!(a, "2001:db8:1:2::/64");
        // Every address of the /64, however written, shares the key.
        for other in [
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
            "2001:0db8:0001:0002:0000:0000:0000:0abc",
            "2001:DB8:1:2:dead:beef:0:1",
            "[2001:db8:1:2::99]",
        ] {
            assert_eq!(address_key(other), a, "{other}");
        }
        // The neighbouring /64s do not.
        assert_ne!(address_key("2001:db8:1:3::1"), a);
        assert_ne!(address_key("2001:db8:1:1:ffff:ffff:ffff:ffff"), a);
        assert_eq!(address_key("::1"), "::/64");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_keyed_as_ipv4() {
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("::ffff:c000:207"), "192.0.2.7");
        // Not a /64 of its own: mapped addresses differing in the IPv4 part are different keys.
        assert_ne!(
            address_key("::ffff:192.0.2.7"),
            address_key("::ffff:192.0.2.8")
        );
    }

    #[test]
    fn what_is_not_an_address_is_its_own_key() {
        assert_eq!(address_key("unknown"), "unknown");
        assert_eq!(address_key(""), "");
    }
}
