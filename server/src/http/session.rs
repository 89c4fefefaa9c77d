//! Server-side sessions in the database (SQLite or PostgreSQL), their timeouts, CSRF tokens,
//! and the patient's place in the identity check.

use crate::db::Db;
use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::Session;

/// Idle timeout for patients; the record's expiry is pushed forward on every request.
pub const PATIENT_IDLE_MINUTES: i64 = 30;
/// Idle timeout once a staff member is involved (signed in or half-way through signing in).
pub const STAFF_IDLE_SECS: i64 = 15 * 60;
/// Absolute lifetime of any session, however active.
pub const ABSOLUTE_SECS: i64 = 12 * 3600;

/// A tower-sessions store over our own pool, so one store serves both backends. Written by hand
/// because tower-sessions-sqlx-store has one store per backend and none for `sqlx::Any`.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes expired records; run periodically.
    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let r = sqlx::query("DELETE FROM sessions WHERE expiry_date < $1")
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(self.db.pool())
            .await?;
        Ok(r.rows_affected())
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // Re-roll the id on the (astronomically unlikely) collision instead of overwriting.
        loop {
            let r = sqlx::query(
                "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date.unix_timestamp())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
            if r.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(record.expiry_date.unix_timestamp())
        .execute(self.db.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2",
        )
        .bind(id.to_string())
        .bind(OffsetDateTime::now_utc().unix_timestamp())
        .fetch_optional(self.db.pool())
        .await
        .map_err(backend)?;
        let Some((data, expiry)) = row else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: OffsetDateTime::from_unix_timestamp(expiry).map_err(backend)?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

pub const KEY_CREATED: &str = "created_at";
pub const KEY_CSRF: &str = "csrf";
pub const KEY_LINK: &str = "link_id";
pub const KEY_DEAD_LINK: &str = "dead_link";
pub const KEY_STAGE: &str = "stage";
pub const KEY_FLASH: &str = "flash";
pub const KEY_LAST_SEEN: &str = "last_seen";
pub const KEY_USER: &str = "user_id";
pub const KEY_AUTH_AT: &str = "auth_at";
pub const KEY_ENROL: &str = "enrol_token_hash";
pub const KEY_MFA: &str = "mfa";
/// A staff sign-in half done (`identity::Pending`): password right, second factor or new
/// password still to come.
pub const KEY_CHALLENGE: &str = "pending_sign_in";
pub const KEY_TOKENS: &str = "cognito_tokens";
/// A signed-in patient or guarantor account (members never use `KEY_USER`, which is staff's).
pub const KEY_MEMBER: &str = "member_id";
pub const KEY_INVITE: &str = "invitation_id";
pub const KEY_INVITE_DEAD: &str = "dead_invitation";
pub const KEY_INVITE_VERIFIED: &str = "invitation_verified";
/// The account pay form's errors and typed amounts, carried across the redirect.
pub const KEY_PAY_ERRORS: &str = "pay_errors";
/// A Cognito staff password reset waiting for its emailed code.
pub const KEY_RESET_EMAIL: &str = "reset_email";
/// A Cognito sign-up waiting for its emailed code.
pub const KEY_CONFIRM_EMAIL: &str = "confirm_email";
/// Where to go once the second identity answer is given.
pub const KEY_NEXT: &str = "next";

/// How far the patient has proved who they are.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Stage {
    /// Date of birth confirmed: balance, practice and payment.
    Dob = 1,
    /// Date of birth and ZIP confirmed: the itemised statement.
    Full = 2,
}

/// Starts a fresh session (new id, nothing carried over): a visitor arriving by link, or a
/// staff member starting to sign in.
pub async fn restart(session: &Session, now: i64) -> Result<(), tower_sessions::session::Error> {
    session.clear().await;
    session.cycle_id().await?;
    session.insert(KEY_CREATED, now).await?;
    session.insert(KEY_LAST_SEEN, now).await?;
    session
        .insert(KEY_CSRF, crate::crypto::random_token())
        .await?;
    Ok(())
}

/// Idle (staff 15 min, patients 30 min) and absolute (12 h) timeouts, checked on every request
/// against the server's clock. Returns true if the session was ended. Sessions that were never
/// started (anonymous visitors) are left alone, so no record is made for them.
pub async fn enforce_timeouts(
    session: &Session,
    now: i64,
) -> Result<bool, tower_sessions::session::Error> {
    let Some(created) = session.get::<i64>(KEY_CREATED).await? else {
        return Ok(false);
    };
    let last = session.get::<i64>(KEY_LAST_SEEN).await?.unwrap_or(created);
    let staff = session.get::<String>(KEY_USER).await?.is_some()
        || session
            .get::<serde_json::Value>(KEY_CHALLENGE)
            .await?
            .is_some();
    let idle = if staff {
        STAFF_IDLE_SECS
    } else {
        PATIENT_IDLE_MINUTES * 60
    };
    if now - created > ABSOLUTE_SECS || now - last > idle {
        session.flush().await?;
        return Ok(true);
    }
    session.insert(KEY_LAST_SEEN, now).await?;
    Ok(false)
}

/// The session's synchronizer token, created if missing.
pub async fn csrf_token(session: &Session) -> Result<String, tower_sessions::session::Error> {
    if let Some(t) = session.get::<String>(KEY_CSRF).await? {
        return Ok(t);
    }
    let t = crate::crypto::random_token();
    session.insert(KEY_CSRF, &t).await?;
    Ok(t)
}

/// True when the submitted token matches the session's (constant time).
pub async fn csrf_ok(
    session: &Session,
    given: &str,
) -> Result<bool, tower_sessions::session::Error> {
    use subtle::ConstantTimeEq;
    let Some(expected) = session.get::<String>(KEY_CSRF).await? else {
        return Ok(false);
    };
    Ok(!given.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
}

/// A one-shot message carried across a post-redirect-get.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    /// Catalog key of the message.
    pub key: String,
    /// Which field it belongs to, if any.
    pub field: Option<String>,
    /// What the visitor typed, to show it again (never PHI: amounts only).
    pub value: Option<String>,
    /// Arguments for the message.
    pub arg: Option<String>,
}

impl Flash {
    /// The message as an error on one of `fields` (input ids) when it names one of them, else
    /// as a failure for the whole page: `(field error, page failure)`.
    pub fn placed(
        &self,
        fields: &[&'static str],
        message: String,
    ) -> (Option<patriotpay_app::vm::FieldError>, Option<String>) {
        match fields.iter().find(|f| self.field.as_deref() == Some(**f)) {
            Some(field) => (
                Some(patriotpay_app::vm::FieldError { field, message }),
                None,
            ),
            None => (None, Some(message)),
        }
    }
}

/// A one-line message (no field, nothing typed) for the next page.
pub async fn notice(session: &Session, key: &str) -> Result<(), tower_sessions::session::Error> {
    set_flash(
        session,
        Flash {
            key: key.into(),
            ..Default::default()
        },
    )
    .await
}

pub async fn set_flash(
    session: &Session,
    flash: Flash,
) -> Result<(), tower_sessions::session::Error> {
    session.insert(KEY_FLASH, flash).await
}

pub async fn take_flash(
    session: &Session,
) -> Result<Option<Flash>, tower_sessions::session::Error> {
    session.remove(KEY_FLASH).await
}
