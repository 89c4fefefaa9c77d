//! Sign-in limits: failures per account and per address in a window, claimed before each
//! password or code is checked (`claim_attempt`, `LoginAttempt`).

use super::{email_index, AccountError};
use crate::crypto::FieldCrypto;
use crate::db::Db;

/// Failed sign-ins per account, and per address, in the window before 429.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;

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
/// cannot outrun the limits; `AccountError::Throttled` when over the limit.
pub async fn claim_attempt(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    address: &str,
    now: i64,
) -> Result<LoginAttempt, AccountError> {
    let email = email_index(crypto, email).await?;
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO login_failures (at, email_index, address) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(now)
    .bind(&email)
    .bind(address)
    .fetch_one(&mut *tx)
    .await?;
    let since = now - FAILURE_WINDOW_SECS;
    let (by_email, oldest_e): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE email_index = $1 AND at > $2",
    )
    .bind(&email)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    let (by_addr, oldest_a): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE address = $1 AND at > $2",
    )
    .bind(address)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    let wait =
        |oldest: Option<i64>| (oldest.unwrap_or(now) + FAILURE_WINDOW_SECS - now).max(1) as u64;
    // This attempt is counted too, hence `>`.
    let over = if by_email > MAX_FAILURES_PER_ACCOUNT {
        Some(wait(oldest_e))
    } else if by_addr > MAX_FAILURES_PER_ADDRESS {
        Some(wait(oldest_a))
    } else {
        None
    };
    if let Some(retry) = over {
        // Refused attempts don't extend the lockout.
        tx.rollback().await?;
        return Err(AccountError::Throttled {
            retry_after_secs: retry,
        });
    }
    tx.commit().await?;
    Ok(LoginAttempt { id })
}

/// Deletes sign-in failure rows older than the window they count in; run on a schedule.
pub async fn prune_login_failures(db: &Db, now: i64) -> Result<u64, AccountError> {
    let r = sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(now - FAILURE_WINDOW_SECS)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
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
