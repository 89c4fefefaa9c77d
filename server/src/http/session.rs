//! Server-side sessions: the database store (SQLite or PostgreSQL), the one typed record every
//! handler reads and writes through `Sess` (no string keys elsewhere), timeouts and CSRF tokens.

use super::error::AppError;
use super::AppState;
use crate::db::Db;
use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use patriotpay_app::Lang;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// Idle timeout for patients; the record's expiry is pushed forward by requests (at most once a
/// minute, `TOUCH_EVERY_SECS`).
pub const PATIENT_IDLE_MINUTES: i64 = 30;
/// Idle timeout once a staff member is involved (signed in or half-way through signing in).
pub const STAFF_IDLE_SECS: i64 = 15 * 60;
/// How often a request moves the idle clock (and so writes the record) when nothing else in the
/// session changed.
pub const TOUCH_EVERY_SECS: i64 = 60;
/// Absolute lifetime of any session, however active.
pub const ABSOLUTE_SECS: i64 = 12 * 3600;
/// Lifetime of an anonymous visitor's record (a form's CSRF token and a message, nothing
/// else): minutes, so pages anyone may load cannot fill the sessions table.
pub const ANONYMOUS_IDLE_MINUTES: i64 = 10;

fn anonymous_expiry() -> tower_sessions::Expiry {
    tower_sessions::Expiry::OnInactivity(time::Duration::minutes(ANONYMOUS_IDLE_MINUTES))
}

fn started_expiry() -> tower_sessions::Expiry {
    tower_sessions::Expiry::OnInactivity(time::Duration::minutes(PATIENT_IDLE_MINUTES))
}

/// The session cookie's name: `__Host-` requires Secure; plain-http development uses an
/// unprefixed name.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-pp_session"
    } else {
        "pp_session"
    }
}

/// A tower-sessions store over our own pool, so one store serves both backends. Written by hand
/// because tower-sessions-sqlx-store has one store per backend and none for `sqlx::Any`.
#[derive(Clone, Debug)]
///
/// Record expiry is stamped by tower-sessions from the wall clock, so the store compares it with
/// the wall clock too; the timeouts that matter (idle, absolute) are judged by `Sess` on the
/// server's injectable clock.
pub struct DbSessionStore {
    db: Db,
    /// Serving: new sessions' rows go through the group writer (one commit for many).
    writer: Option<crate::group_commit::GroupWriter>,
}

impl DbSessionStore {
    /// A store that writes on the pool (sweeps, tests).
    pub fn new(db: Db) -> Self {
        Self { db, writer: None }
    }

    /// The serving store: every pay-link opening makes a session, and its row is committed
    /// with the other rows waiting for the group writer instead of on its own.
    pub fn grouped(db: Db, writer: crate::group_commit::GroupWriter) -> Self {
        Self {
            db,
            writer: Some(writer),
        }
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
            let (id, expiry) = (record.id.to_string(), record.expiry_date.unix_timestamp());
            let inserted = match &self.writer {
                Some(w) => w.create_session(id, data.clone(), expiry).await,
                None => sqlx::query(
                    "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(&data)
                .bind(expiry)
                .execute(self.db.pool())
                .await
                .map(|r| r.rows_affected() == 1),
            }
            .map_err(backend)?;
            if inserted {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    /// Updates an existing record only. A request still in flight when its session was ended
    /// (another tab, a page that refreshes itself) must not write the deleted row back: its
    /// save changes nothing and the session stays gone.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query("UPDATE sessions SET data = $1, expiry_date = $2 WHERE id = $3")
            .bind(data)
            .bind(record.expiry_date.unix_timestamp())
            .bind(record.id.to_string())
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

/// The one key the typed record lives under.
pub const RECORD: &str = "s";

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

/// Where to go once the second identity answer is given: only our own known destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AfterZip {
    CreateAccount,
    /// No longer set (a password is reset by emailed code, not from a pay link); kept so a
    /// session saved before that change still loads, and sends its visitor to "forgot password".
    ResetPassword,
}

/// A visitor who arrived by pay link.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LinkVisit {
    /// `None`: the link presented was unknown (answered exactly like a wrong date of birth).
    pub link_id: Option<String>,
    pub stage: Option<Stage>,
    pub after_zip: Option<AfterZip>,
}

/// A visitor who arrived by guarantor invitation.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct InviteVisit {
    /// `None`: the invitation presented was unknown.
    pub invitation_id: Option<String>,
    /// Both of the dependant's identity answers were given.
    pub verified: bool,
}

/// A signed-in account: staff or member (patient, guarantor).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SignedIn {
    pub user_id: String,
    /// When this session signed in (checked against the account's revoked-before time).
    pub auth_at: i64,
    /// Staff only: the second factor was given.
    pub mfa: bool,
}

/// One amount typed on the account pay form, carried back with its error.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PayItemError {
    /// Catalog key of the problem, if this item had one.
    pub key: Option<String>,
    /// What was typed (an amount, trimmed: never PHI).
    pub typed: String,
    pub checked: bool,
}

/// The account pay form's errors, carried across the redirect.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PayErrors {
    pub general: Option<String>,
    /// Statement id → what was typed and what was wrong.
    pub items: std::collections::BTreeMap<String, PayItemError>,
}

/// Everything a session remembers, with named fields. Session records are plain JSON in the
/// database: anything sensitive in here (Cognito tokens, a pending sign-up's email) is sealed.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SessionData {
    pub created_at: i64,
    pub last_seen: i64,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub link: Option<LinkVisit>,
    pub invitation: Option<InviteVisit>,
    pub staff: Option<SignedIn>,
    pub member: Option<SignedIn>,
    /// A staff sign-in half done: password right, second factor or new password still to come.
    pub pending_sign_in: Option<crate::identity::Pending>,
    /// Cognito tokens, sealed and bound to the signed-in account.
    pub sealed_tokens: Option<String>,
    /// A staff enrolment link's hash, while the person sets their password and TOTP.
    pub enrol_token_hash: Option<String>,
    /// A Cognito staff password reset waiting for its emailed code (a staff work address).
    pub reset_email: Option<String>,
    /// A Cognito sign-up waiting for its emailed code, sealed.
    pub sealed_confirm_email: Option<String>,
    /// A member's forgotten-password request: the email the code went to, sealed.
    pub sealed_reset_email: Option<String>,
    pub pay_errors: Option<PayErrors>,
    /// A staff member viewing as a patient (only ever beside `staff`).
    pub view_as: Option<ViewAsSeat>,
    /// A statement file checked by a dry run and kept (encrypted) for "Confirm import".
    pub import_pending: Option<PendingImport>,
    /// The staff import page's last run: its counts and rejections (no PHI: places, fields and
    /// reasons), shown on the page and given as the CSV report.
    pub import_result: Option<ImportOutcome>,
    /// The interface language (`en`, `es`): the one the visitor chose with the switch, else the
    /// preferred language of the patient whose link opened the session. Kept across a restart.
    pub lang: Option<String>,
    /// The visitor chose `lang` themselves: a link no longer decides it.
    #[serde(default)]
    pub lang_chosen: bool,
}

/// An uploaded statement file waiting for confirmation: the random id naming its encrypted
/// file under the data directory, whose practice, which format, and when it was kept.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PendingImport {
    pub id: String,
    pub tenant_id: String,
    /// "csv" or "json".
    pub format: String,
    pub kept_at: i64,
    /// The dry run's counts and rejections.
    pub dry_run: ImportOutcome,
}

/// What an import run from the staff page came to.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportOutcome {
    pub tenant_id: String,
    pub dry_run: bool,
    pub committed: bool,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub rejections: Vec<String>,
    pub fatal: Option<String>,
}

/// A view-as session in progress: whose pages, until when, and the banner's words.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ViewAsSeat {
    /// The `view_as_sessions` row.
    pub id: String,
    pub tenant_id: String,
    pub patient_id: String,
    /// The staff member viewing (must be the session's signed-in staff member).
    pub staff_user_id: String,
    /// The patient's account, when they have one: its pages are shown.
    pub member_user_id: Option<String>,
    /// Otherwise the pay link whose statement is shown.
    pub link_id: Option<String>,
    pub expires_at: i64,
    pub staff_name: String,
    /// The patient's name for the banner, sealed (session records are plain JSON).
    pub sealed_patient_name: String,
    /// Act-on-behalf: when the patient's verbal consent was noted (consumed by one payment).
    pub consent_at: Option<i64>,
}

impl SessionData {
    /// Whether the staff idle timeout applies.
    fn is_staff(&self) -> bool {
        self.staff.is_some() || self.pending_sign_in.is_some()
    }
}

/// The typed session: the only way handlers touch session state. Each read takes the current
/// record, each write replaces it, so two extractors of one request never see stale copies.
#[derive(Clone, Debug)]
pub struct Sess {
    inner: tower_sessions::Session,
}

impl FromRequestParts<AppState> for Sess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let inner = tower_sessions::Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| AppError::Internal(anyhow::anyhow!("session layer missing: {m}")))?;
        Ok(Sess { inner })
    }
}

type SessResult<T> = Result<T, tower_sessions::session::Error>;

impl Sess {
    pub fn new(inner: tower_sessions::Session) -> Self {
        Sess { inner }
    }

    /// The record, or an empty one for a visitor with no session.
    pub async fn data(&self) -> SessResult<SessionData> {
        Ok(self.inner.get(RECORD).await?.unwrap_or_default())
    }

    /// Changes the record. A visitor without a session gets one (with its CSRF token).
    pub async fn update<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> SessResult<R> {
        let mut d = self.data().await?;
        if d.csrf.is_empty() {
            d.csrf = crate::crypto::random_token();
        }
        let out = f(&mut d);
        if d.created_at == 0 {
            self.inner.set_expiry(Some(anonymous_expiry()));
        }
        self.inner.insert(RECORD, d).await?;
        Ok(out)
    }

    /// Starts a fresh session (new id, nothing carried over): a visitor arriving by link, a
    /// staff member starting to sign in, a member signing in.
    pub async fn restart(&self, now: i64) -> SessResult<()> {
        // The language is a preference, not a privilege: it outlives the old session.
        let SessionData {
            lang, lang_chosen, ..
        } = self.data().await?;
        self.inner.clear().await;
        self.inner.cycle_id().await?;
        self.inner.set_expiry(Some(started_expiry()));
        self.inner
            .insert(
                RECORD,
                SessionData {
                    created_at: now,
                    last_seen: now,
                    csrf: crate::crypto::random_token(),
                    lang,
                    lang_chosen,
                    ..Default::default()
                },
            )
            .await
    }

    /// The language pages are shown in (English when nothing chose one).
    pub async fn lang(&self) -> SessResult<Lang> {
        Ok(self
            .data()
            .await?
            .lang
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or_default())
    }

    /// The visitor's own choice, from the switch: it wins over any link's.
    pub async fn choose_lang(&self, lang: Lang) -> SessResult<()> {
        self.update(|d| {
            d.lang = Some(lang.code().to_owned());
            d.lang_chosen = true;
        })
        .await
    }

    /// The patient's preferred language, from the link that opened this session, unless the
    /// visitor chose one themselves.
    pub async fn lang_from_link(&self, lang: Lang) -> SessResult<()> {
        self.update(|d| {
            if !d.lang_chosen {
                d.lang = Some(lang.code().to_owned());
            }
        })
        .await
    }

    /// A new id for the same record: at each identity step and privilege change.
    pub async fn cycle_id(&self) -> SessResult<()> {
        self.inner.cycle_id().await
    }

    /// Ends the session: the server-side record is deleted, not just the cookie.
    pub async fn end(&self) -> SessResult<()> {
        self.inner.flush().await
    }

    /// The synchronizer token for this session's forms, made if missing.
    pub async fn csrf_token(&self) -> SessResult<String> {
        let d = self.data().await?;
        if !d.csrf.is_empty() {
            return Ok(d.csrf);
        }
        self.update(|d| d.csrf.clone()).await
    }

    /// True when `given` is this session's synchronizer token (constant time). Called only by
    /// the CSRF check in `http::extract`.
    pub(super) async fn csrf_ok(&self, given: &str) -> SessResult<bool> {
        use subtle::ConstantTimeEq;
        let expected = self.data().await?.csrf;
        Ok(!given.is_empty()
            && !expected.is_empty()
            && bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
    }

    pub async fn set_flash(&self, flash: Flash) -> SessResult<()> {
        self.update(|d| d.flash = Some(flash)).await
    }

    /// A one-line message (no field, nothing typed) for the next page.
    pub async fn notice(&self, key: &str) -> SessResult<()> {
        self.set_flash(Flash::key(key)).await
    }

    /// The message carried over from the last POST, removed as it is read.
    /// The flash message if `mine` says it is this page's part's; any other is left for the
    /// form it belongs to.
    pub async fn take_flash_if(&self, mine: impl Fn(&Flash) -> bool) -> SessResult<Option<Flash>> {
        let d = self.data().await?;
        if !d.flash.as_ref().is_some_and(&mine) {
            return Ok(None);
        }
        self.update(|d| d.flash.take()).await
    }

    pub async fn take_flash(&self) -> SessResult<Option<Flash>> {
        let d = self.data().await?;
        if d.flash.is_none() {
            return Ok(None);
        }
        self.update(|d| d.flash.take()).await
    }

    /// Idle (staff 15 min, patients 30 min) and absolute (12 h) timeouts, checked on every
    /// request against the server's clock. Returns true if the session was ended. Sessions that
    /// were never started (anonymous visitors) are left alone, so no record is made for them.
    pub async fn enforce_timeouts(&self, now: i64) -> SessResult<bool> {
        let Some(mut d) = self.inner.get::<SessionData>(RECORD).await? else {
            return Ok(false);
        };
        // Only a form's CSRF token so far: an anonymous visitor, not a started session; its
        // record lives minutes, renewed (at most once a minute) as requests come.
        if d.created_at == 0 {
            if now - d.last_seen >= TOUCH_EVERY_SECS {
                d.last_seen = now;
                self.inner.set_expiry(Some(anonymous_expiry()));
                self.inner.insert(RECORD, d).await?;
            }
            return Ok(false);
        }
        let last = if d.last_seen == 0 {
            d.created_at
        } else {
            d.last_seen
        };
        let idle = if d.is_staff() {
            STAFF_IDLE_SECS
        } else {
            PATIENT_IDLE_MINUTES * 60
        };
        if now - d.created_at > ABSOLUTE_SECS || now - last > idle {
            self.inner.flush().await?;
            return Ok(true);
        }
        // The record is written back only when something changed, and the idle clock moves
        // at most once a minute: a page view costs no session write (idle timeouts may fall
        // up to `TOUCH_EVERY_SECS` early, never late).
        if now - last >= TOUCH_EVERY_SECS {
            d.last_seen = now;
            self.inner.insert(RECORD, d).await?;
        }
        Ok(false)
    }
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
    /// A message with nothing else.
    pub fn key(key: &str) -> Flash {
        Flash {
            key: key.into(),
            ..Default::default()
        }
    }

    /// A message about one field.
    pub fn on(field: &str, key: &str) -> Flash {
        Flash {
            key: key.into(),
            field: Some(field.into()),
            ..Default::default()
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that loaded its session before the session was ended saves afterwards: the
    /// deleted row must stay deleted.
    #[tokio::test]
    async fn an_ended_session_is_not_written_back() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let store = DbSessionStore::new(db);
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        store.create(&mut record).await.expect("create");
        assert!(store.load(&record.id).await.expect("load").is_some());
        store.delete(&record.id).await.expect("delete");
        store.save(&record).await.expect("save");
        assert!(
            store.load(&record.id).await.expect("load").is_none(),
            "the ended session came back"
        );
    }
}
