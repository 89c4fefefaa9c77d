//! Passwords: argon2id hashing and verification (on the blocking pool), and the local password
//! check `verify_credentials`, which does the same work whether or not the account exists.

use super::{email_index, AccountError, Kind};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::phi::Phi;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

fn argon() -> Result<Argon2<'static>, AccountError> {
    // OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19_456, 2, 1, None).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// At most this many argon2id computations run at once (19 MiB of memory each).
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// At most this many more wait for a turn; past that a request is refused at once (503 with
/// Retry-After), so a flood of sign-ins cannot hold memory or queue without end.
pub const MAX_WAITING_HASHES: usize = 64;

/// A bound on concurrent password hashing: a semaphore for the work, a counter for the queue.
pub struct HashGate {
    running: tokio::sync::Semaphore,
    /// Running and waiting together.
    queued: std::sync::atomic::AtomicUsize,
    max_running: usize,
    max_waiting: usize,
}

/// Takes a place in the gate's queue for as long as it lives.
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl HashGate {
    pub const fn new(max_running: usize, max_waiting: usize) -> Self {
        HashGate {
            running: tokio::sync::Semaphore::const_new(max_running),
            queued: std::sync::atomic::AtomicUsize::new(0),
            max_running,
            max_waiting,
        }
    }

    /// Runs `work` on the blocking pool once a place is free; `AccountError::Busy` when the
    /// queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let ahead = self
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let _place = Queued(&self.queued);
        if ahead >= self.max_running + self.max_waiting {
            return Err(AccountError::Busy);
        }
        let _turn = self
            .running
            .acquire()
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))
    }
}

/// The gate every password hash and check goes through.
static HASHING: HashGate = HashGate::new(MAX_CONCURRENT_HASHES, MAX_WAITING_HASHES);

/// Hashes on the blocking pool (through the gate), so a burst of sign-ins cannot stall the
/// async workers or exhaust memory.
pub async fn hash_password(password: Phi<String>) -> Result<String, AccountError> {
    let n = password.expose().chars().count();
    if !(8..=128).contains(&n) {
        return Err(AccountError::WeakPassword);
    }
    HASHING
        .run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon()?
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AccountError::Hash(e.to_string()))
        })
        .await?
}

/// A hash to verify against when the account does not exist, so timing doesn't tell.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon()
            .ok()
            .and_then(|a| {
                a.hash_password(b"not a real password", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

/// Whether `password` matches `hash`; `AccountError::Busy` when the hashing queue is full.
pub async fn verify_password(hash: String, password: Phi<String>) -> Result<bool, AccountError> {
    HASHING
        .run(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon().is_ok_and(|a| {
                a.verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
}

/// The local password check (the only factor for members). Unknown account, wrong password,
/// disabled, not enrolled, must reset or the other kind of account: all the same `Invalid`,
/// after the same work. No throttling here: callers claim an attempt first (`claim_attempt`)
/// and release it when the password was right.
pub async fn verify_credentials(
    db: &Db,
    crypto: &FieldCrypto,
    kind: Kind,
    email: &str,
    password: Phi<String>,
) -> Result<UserId, AccountError> {
    let email = email_index(crypto, email).await?;
    // id, password hash, disabled at, TOTP confirmed, must reset, email confirmed at.
    type LoginRow = (String, Option<String>, Option<i64>, i64, i64, Option<i64>);
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, password_hash, disabled_at, totp_confirmed, must_reset, email_confirmed_at
         FROM users WHERE email_index = $1 AND kind = $2",
    )
    .bind(&email)
    .bind(kind.as_str())
    .fetch_optional(db.pool())
    .await?;
    let (hash, usable) = match (&row, kind) {
        (Some((_, Some(h), None, 1, 0, _)), Kind::Staff) => (h.clone(), true),
        (Some((_, Some(h), None, _, 0, _)), Kind::Member) => (h.clone(), true),
        _ => (dummy_hash().to_owned(), false),
    };
    let ok = verify_password(hash, password).await?;
    match row {
        // Said only once the password was right: the sign-up's code was never entered.
        Some((.., None)) if ok && usable && kind == Kind::Member => Err(AccountError::Unconfirmed),
        Some((id, ..)) if ok && usable => Ok(UserId::from_db(id)),
        _ => Err(AccountError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_rules_and_hashing() {
        assert!(matches!(
            hash_password(Phi::new("short".into())).await,
            Err(AccountError::WeakPassword)
        ));
        assert!(matches!(
            hash_password(Phi::new("x".repeat(129))).await,
            Err(AccountError::WeakPassword)
        ));
        let long = "ü".repeat(128);
        let h = hash_password(Phi::new(long.clone())).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(h.clone(), Phi::new(long.clone()))
            .await
            .expect("verify"));
        // No truncation: a change in the last character matters.
        let mut other = "ü".repeat(127);
        other.push('u');
        assert!(!verify_password(h, Phi::new(other)).await.expect("verify"));
    }

    /// A flood of hashing requests: never more than the bound at work at once, the queue
    /// bounded, and the rest refused at once with `Busy`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hashing_bound_holds() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        static GATE: HashGate = HashGate::new(2, 3);
        let busy_now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release, hold) = tokio::sync::watch::channel(false);
        // A safety net against a hang, not a timing assertion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let stuck = || std::time::Instant::now() > deadline;
        let mut calls = vec![];
        for _ in 0..20 {
            let (busy_now, most, mut hold) = (busy_now.clone(), most.clone(), hold.clone());
            calls.push(tokio::spawn(async move {
                GATE.run(move || {
                    let n = busy_now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    // Hold the place until the test lets go, like a slow hash.
                    let _ = futures_lite_wait(&mut hold);
                    busy_now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // Every call reaches the gate before any work finishes: five hold a place (two at
        // work, three waiting), fifteen were turned away.
        while !(GATE.queued.load(Ordering::SeqCst) == 5
            && calls.iter().filter(|c| c.is_finished()).count() == 15)
        {
            assert!(!stuck(), "the calls never reached the gate");
            tokio::task::yield_now().await;
        }
        let _ = release.send(true);
        let mut done = 0;
        let mut refused = 0;
        for c in calls {
            match c.await.expect("join") {
                Ok(()) => done += 1,
                Err(AccountError::Busy) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "at most two at once");
        assert_eq!(
            (done, refused),
            (5, 15),
            "two running, three waiting, the rest refused"
        );
    }

    /// Blocks the calling (blocking-pool) thread until the watch says go.
    fn futures_lite_wait(rx: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        while !*rx.borrow() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }
}
