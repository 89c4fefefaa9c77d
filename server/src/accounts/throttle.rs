//! Sign-in limits, claimed before each password or code is checked (`claim_attempt`,
//! `LoginAttempt`): a hard limit per address (keyed as `limits::address_key`: IPv6 by /64), and
//! per account a delay that grows with its recent failures but is bounded, never a lockout. A
//! staff member's trusted device (`devices`) skips the account delay, not the address limit.
//!
//! Why no hard per-account lock: anyone who knows an email could then keep its owner out
//! forever. The account delay bounds guessing (after the free failures, one guess per delay,
//! at most one per `MAX_DELAY_SECS` once it is capped) while the owner waits at most that
//! long, or not at all from a trusted device; an attacker's own addresses hit the hard limit.

use super::devices::trusted_device_of;
use super::{email_index, AccountError};
use crate::crypto::FieldCrypto;
use crate::db::Db;

/// Failed sign-ins per account in `ACCOUNT_WINDOW_SECS` before the delay starts.
pub const FREE_FAILURES_PER_ACCOUNT: i64 = 5;
/// How far back an account's failures count toward its delay.
pub const ACCOUNT_WINDOW_SECS: i64 = 3600;
/// The delay after the last failure once the free failures are spent; it doubles with each
/// further failure in the window, up to `MAX_DELAY_SECS`.
pub const FIRST_DELAY_SECS: i64 = 30;
pub const MAX_DELAY_SECS: i64 = 300;
/// Failed sign-ins per address key in `ADDRESS_WINDOW_SECS` before 429: the hard limit.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
pub const ADDRESS_WINDOW_SECS: i64 = 15 * 60;
/// Failed sign-ins from one trusted device in `ACCOUNT_WINDOW_SECS` after which it no longer
/// skips the account delay (a stolen cookie is not a licence to guess).
pub const MAX_FAILURES_PER_DEVICE: i64 = 5;
/// The longest any failure row still counts (pruned after it).
pub const FAILURE_WINDOW_SECS: i64 = if ACCOUNT_WINDOW_SECS > ADDRESS_WINDOW_SECS {
    ACCOUNT_WINDOW_SECS
} else {
    ADDRESS_WINDOW_SECS
};

/// How long after its latest failure an account with `failures` recent failures (the window's,
/// including that one) must wait before the next attempt: nothing for the free ones, then
/// `FIRST_DELAY_SECS`, doubling per failure, capped at `MAX_DELAY_SECS`.
pub fn account_delay(failures: i64) -> i64 {
    if failures < FREE_FAILURES_PER_ACCOUNT {
        return 0;
    }
    // Past 2^10 the cap has long been reached; the shift stays in range.
    let doublings = (failures - FREE_FAILURES_PER_ACCOUNT).min(10);
    (FIRST_DELAY_SECS << doublings).min(MAX_DELAY_SECS)
}

/// One claimed sign-in attempt, counted as a failure unless released: a right password or code
/// releases it; dropping it leaves it counted.
#[derive(Debug)]
#[must_use = "release the attempt when the check passed"]
pub struct LoginAttempt {
    id: i64,
}

impl LoginAttempt {
    /// The check passed (or never ran through no fault of the caller): not a failure.
    pub async fn release(self, db: &Db) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM login_failures WHERE id = $1")
            .bind(self.id)
            .execute(db.pool())
            .await?;
        Ok(())
    }
}

/// Reserves one sign-in attempt (password or code) *before* it is checked, so parallel guesses
/// cannot outrun the limits; `AccountError::Throttled` (with how long to wait) when the address
/// is over its limit or the account's delay is running.
pub async fn claim_attempt(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    address: &str,
    now: i64,
) -> Result<LoginAttempt, AccountError> {
    claim_attempt_from(db, crypto, email, address, None, now).await
}

/// `claim_attempt` for a browser that may hold a trusted-device cookie (`device`, the token
/// as presented): when it is a live device of this account, the account delay is skipped.
pub async fn claim_attempt_from(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    address: &str,
    device: Option<&str>,
    now: i64,
) -> Result<LoginAttempt, AccountError> {
    let email = email_index(crypto, email).await?;
    let address = crate::limits::address_key(address);
    let mut tx = db.begin_write().await?;
    // Serialise claims per account and per address: the upsert takes the key row's lock on
    // PostgreSQL (read committed would otherwise let a burst each see the same few earlier
    // failures); SQLite's write transaction is already exclusive. Always account first, then
    // address, so two claims never wait on each other crosswise.
    for key in [
        format!("acct:{}", hex::encode(&email)),
        format!("addr:{address}"),
    ] {
        sqlx::query(
            "INSERT INTO throttle_locks (key, touched_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at",
        )
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    // Each query below starts after the locks were granted, so it sees every claim before it.
    let (by_addr, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE address = $1 AND at > $2",
    )
    .bind(&address)
    .bind(now - ADDRESS_WINDOW_SECS)
    .fetch_one(&mut *tx)
    .await?;
    let mut wait = None;
    if by_addr >= MAX_FAILURES_PER_ADDRESS {
        wait = Some(oldest.unwrap_or(now) + ADDRESS_WINDOW_SECS - now);
    }
    let device = match (wait, device) {
        (None, Some(token)) => trusted_device_of(&mut tx, token, &email, now).await?,
        _ => None,
    };
    let device = match device {
        Some(id) => {
            let by_device: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM login_failures WHERE device_id = $1 AND at > $2",
            )
            .bind(id)
            .bind(now - ACCOUNT_WINDOW_SECS)
            .fetch_one(&mut *tx)
            .await?;
            (by_device < MAX_FAILURES_PER_DEVICE).then_some(id)
        }
        None => None,
    };
    if wait.is_none() && device.is_none() {
        let (by_account, latest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MAX(at) FROM login_failures WHERE email_index = $1 AND at > $2",
        )
        .bind(&email)
        .bind(now - ACCOUNT_WINDOW_SECS)
        .fetch_one(&mut *tx)
        .await?;
        let until = latest.unwrap_or(now) + account_delay(by_account);
        if until > now {
            wait = Some(until - now);
        }
    }
    if let Some(secs) = wait {
        // Refused attempts are not failures: they neither count nor extend any wait.
        tx.rollback().await?;
        return Err(AccountError::Throttled {
            retry_after_secs: secs.max(1) as u64,
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO login_failures (at, email_index, address, device_id)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(now)
    .bind(&email)
    .bind(&address)
    .bind(device)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LoginAttempt { id })
}

/// Deletes sign-in failure rows older than the longest window they count in, and the lock rows
/// of keys not claimed since; run on a schedule.
pub async fn prune_login_failures(db: &Db, now: i64) -> Result<u64, AccountError> {
    let r = sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(now - FAILURE_WINDOW_SECS)
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM throttle_locks WHERE touched_at < $1")
        .bind(now - FAILURE_WINDOW_SECS)
        .execute(db.pool())
        .await?;
    super::devices::prune_trusted_devices(db, now).await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::super::{
        add_user, disable, end_sessions_at_sign_out, force_reset, revoke_sessions, trust_device,
        MAX_TRUSTED_DEVICES_PER_ACCOUNT, TRUSTED_DEVICE_SECS,
    };
    use super::*;
    use crate::access::Role;
    use crate::ids::UserId;
    use std::sync::Arc;

    const NOW: i64 = 1_800_000_000;

    async fn setup() -> (tempfile::TempDir, Db, FieldCrypto) {
        let (dir, db) = crate::db::temp_sqlite().await;
        let provider =
            crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
        let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
        (dir, db, crypto)
    }

    async fn staff(db: &Db, crypto: &FieldCrypto, email: &str) -> UserId {
        let practice = crate::billing::create_tenant(db, "Test Practice", "(555) 010-0000")
            .await
            .expect("practice");
        add_user(db, crypto, email, Role::SupportAgent, Some(&practice), NOW)
            .await
            .expect("user")
            .0
    }

    /// Claims and leaves counted (a wrong answer); the wait when refused.
    async fn fail(
        db: &Db,
        crypto: &FieldCrypto,
        email: &str,
        address: &str,
        device: Option<&str>,
        now: i64,
    ) -> Result<(), u64> {
        match claim_attempt_from(db, crypto, email, address, device, now).await {
            Ok(attempt) => {
                drop(attempt);
                Ok(())
            }
            Err(AccountError::Throttled { retry_after_secs }) => Err(retry_after_secs),
            Err(e) => panic!("claim: {e}"),
        }
    }

    #[test]
    fn the_account_delay_grows_and_is_bounded() {
        for n in 0..FREE_FAILURES_PER_ACCOUNT {
            assert_eq!(account_delay(n), 0);
        }
        assert_eq!(account_delay(5), 30);
        assert_eq!(account_delay(6), 60);
        assert_eq!(account_delay(7), 120);
        assert_eq!(account_delay(8), 240);
        assert_eq!(account_delay(9), MAX_DELAY_SECS);
        for n in [10, 50, 1_000, i64::MAX] {
            assert_eq!(account_delay(n), MAX_DELAY_SECS, "{n}");
        }
    }

    /// After the free failures each further attempt waits out a delay that doubles, never a
    /// lockout; attempts refused meanwhile neither count nor extend it.
    #[tokio::test]
    async fn failures_from_many_addresses_delay_the_account_without_locking_it() {
        let (_dir, db, crypto) = setup().await;
        let email = "owner@example.org";
        for i in 0..FREE_FAILURES_PER_ACCOUNT {
            fail(&db, &crypto, email, &format!("192.0.2.{i}"), None, NOW)
                .await
                .expect("free failure");
        }
        assert_eq!(
            fail(&db, &crypto, email, "198.51.100.1", None, NOW).await,
            Err(30)
        );
        assert_eq!(
            fail(&db, &crypto, email, "198.51.100.2", None, NOW + 29).await,
            Err(1)
        );
        let mut at = NOW + 30;
        let mut expected = 30;
        for _ in 0..8 {
            fail(&db, &crypto, email, "198.51.100.3", None, at)
                .await
                .expect("the delay ran out");
            expected = (expected * 2).min(MAX_DELAY_SECS);
            assert_eq!(
                fail(&db, &crypto, email, "198.51.100.4", None, at).await,
                Err(expected as u64)
            );
            at += expected;
        }
        assert_eq!(expected, MAX_DELAY_SECS, "capped");
        // The right password is never further away than the cap.
        let attempt = claim_attempt(&db, &crypto, email, "203.0.113.9", at)
            .await
            .expect("the owner's turn");
        attempt.release(&db).await.expect("release");
    }

    #[tokio::test]
    async fn the_address_limit_is_hard_and_counts_an_ipv6_64_as_one() {
        let (_dir, db, crypto) = setup().await;
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            // Another account each time (no account delay), another address of one /64.
            fail(
                &db,
                &crypto,
                &format!("u{i}@example.org"),
                &format!("2001:db8:7:7:{i:x}::1"),
                None,
                NOW,
            )
            .await
            .expect("under the address limit");
        }
        let refused = fail(
            &db,
            &crypto,
            "new@example.org",
            "2001:db8:7:7:ffff::2",
            None,
            NOW,
        )
        .await;
        assert_eq!(refused, Err(ADDRESS_WINDOW_SECS as u64));
        // The next /64, and IPv4, are other keys.
        fail(
            &db,
            &crypto,
            "new@example.org",
            "2001:db8:7:8::1",
            None,
            NOW,
        )
        .await
        .expect("another /64");
        // IPv4-mapped IPv6 is the IPv4 address.
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            fail(
                &db,
                &crypto,
                &format!("v{i}@example.org"),
                "192.0.2.77",
                None,
                NOW,
            )
            .await
            .expect("under");
        }
        assert!(fail(
            &db,
            &crypto,
            "w@example.org",
            "::ffff:192.0.2.77",
            None,
            NOW
        )
        .await
        .is_err());
        let key: String =
            sqlx::query_scalar("SELECT address FROM login_failures ORDER BY id LIMIT 1")
                .fetch_one(db.pool())
                .await
                .expect("row");
        assert_eq!(key, "2001:db8:7:7::/64");
    }

    /// The account's own trusted device skips its delay, within its own bound; another
    /// account's device, an expired one, or one revoked with the sessions does not.
    #[tokio::test]
    async fn a_trusted_device_skips_the_account_delay() {
        let (_dir, db, crypto) = setup().await;
        let (owner_email, other_email) = ("owner@example.org", "other@example.org");
        let owner = staff(&db, &crypto, owner_email).await;
        let other = staff(&db, &crypto, other_email).await;
        let device = trust_device(&db, &owner, None, NOW).await.expect("device");
        let others_device = trust_device(&db, &other, None, NOW).await.expect("device");
        for i in 0..FREE_FAILURES_PER_ACCOUNT + 2 {
            let _ = fail(
                &db,
                &crypto,
                owner_email,
                &format!("192.0.2.{i}"),
                None,
                NOW,
            )
            .await;
        }
        assert!(fail(&db, &crypto, owner_email, "203.0.113.1", None, NOW)
            .await
            .is_err());
        assert!(
            fail(
                &db,
                &crypto,
                owner_email,
                "203.0.113.1",
                Some(&others_device),
                NOW
            )
            .await
            .is_err(),
            "another account's device"
        );
        assert!(fail(
            &db,
            &crypto,
            owner_email,
            "203.0.113.1",
            Some("forged-token-forged-token"),
            NOW
        )
        .await
        .is_err());
        let attempt =
            claim_attempt_from(&db, &crypto, owner_email, "203.0.113.1", Some(&device), NOW)
                .await
                .expect("the owner's device is not delayed");
        attempt.release(&db).await.expect("release");
        // A stolen cookie does not buy unlimited guesses: the device's own failures are bounded.
        for _ in 0..MAX_FAILURES_PER_DEVICE {
            fail(&db, &crypto, owner_email, "203.0.113.1", Some(&device), NOW)
                .await
                .expect("within the device's bound");
        }
        assert!(
            fail(&db, &crypto, owner_email, "203.0.113.1", Some(&device), NOW)
                .await
                .is_err()
        );
        // A new sign-in replaces the cookie's record; a device lasts its lifetime, no longer.
        let fresh = trust_device(&db, &owner, Some(&device), NOW)
            .await
            .expect("device");
        assert_eq!(trusted(&db, &crypto, owner_email, &device, NOW).await, None);
        let last = NOW + TRUSTED_DEVICE_SECS - 1;
        assert!(trusted(&db, &crypto, owner_email, &fresh, last)
            .await
            .is_some());
        assert_eq!(
            trusted(&db, &crypto, owner_email, &fresh, last + 1).await,
            None,
            "expired"
        );
    }

    async fn trusted(
        db: &Db,
        crypto: &FieldCrypto,
        email: &str,
        token: &str,
        now: i64,
    ) -> Option<i64> {
        let index = email_index(crypto, email).await.expect("index");
        let mut tx = db.begin_write().await.expect("tx");
        let id = trusted_device_of(&mut tx, token, &index, now)
            .await
            .expect("query");
        tx.rollback().await.expect("rollback");
        id
    }

    /// Sign-out everywhere, a reset and disabling forget the account's trusted devices; a plain
    /// sign-out does not.
    #[tokio::test]
    async fn trusted_devices_are_revoked_with_the_account_sessions() {
        let (_dir, db, crypto) = setup().await;
        let email = "owner@example.org";
        let user = staff(&db, &crypto, email).await;
        let trust = || trust_device(&db, &user, None, NOW);
        let device = trust().await.expect("device");
        end_sessions_at_sign_out(&db, &user, NOW)
            .await
            .expect("sign out");
        assert!(trusted(&db, &crypto, email, &device, NOW).await.is_some());
        revoke_sessions(&db, &user, NOW).await.expect("everywhere");
        assert_eq!(trusted(&db, &crypto, email, &device, NOW).await, None);
        let device = trust().await.expect("device");
        force_reset(&db, &crypto, email, None, NOW)
            .await
            .expect("reset");
        assert_eq!(trusted(&db, &crypto, email, &device, NOW).await, None);
        let device = trust().await.expect("device");
        disable(&db, &crypto, email, NOW).await.expect("disable");
        assert_eq!(trusted(&db, &crypto, email, &device, NOW).await, None);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trusted_devices")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(left, 0);
    }

    /// Lost cookies do not pile up: an account keeps its newest devices only.
    #[tokio::test]
    async fn an_account_keeps_a_bounded_number_of_devices() {
        let (_dir, db, crypto) = setup().await;
        let user = staff(&db, &crypto, "owner@example.org").await;
        for _ in 0..MAX_TRUSTED_DEVICES_PER_ACCOUNT + 5 {
            trust_device(&db, &user, None, NOW).await.expect("device");
        }
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trusted_devices")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(kept, MAX_TRUSTED_DEVICES_PER_ACCOUNT);
    }

    #[tokio::test]
    async fn old_failure_rows_are_pruned() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let now = 1_800_000_000;
        for (insert, old, fresh) in [
            (
                "INSERT INTO login_failures (at, email_index, address) VALUES ($1, $2, 'a')",
                now - super::FAILURE_WINDOW_SECS - 1,
                now - 60,
            ),
            (
                "INSERT INTO verify_failures (at, address) VALUES ($1, 'a')",
                now - 86_401,
                now - 3_600,
            ),
        ] {
            for at in [old, fresh] {
                let q = sqlx::query(insert).bind(at);
                let q = if insert.contains("$2") {
                    q.bind(vec![0u8; 32])
                } else {
                    q
                };
                q.execute(db.pool()).await.expect("insert");
            }
        }
        assert_eq!(
            super::prune_login_failures(&db, now).await.expect("prune"),
            1
        );
        assert_eq!(
            crate::links::prune_failures(&db, now).await.expect("prune"),
            1
        );
        for table in ["login_failures", "verify_failures"] {
            let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(db.pool())
                .await
                .expect("count");
            assert_eq!(left, 1, "{table} keeps what still counts");
        }
    }
}
