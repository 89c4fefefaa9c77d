//! Pay links and the identity check behind them: tokens stored as hashes, expiry, revocation,
//! lockout after failed answers, limits per address (IPv6 by /64) and per patient, and the
//! hourly failure budget per practice that raises an alert when spent.

use crate::crypto::{random_token, token_hash};
use crate::db::Db;
use crate::ids::{LinkId, PatientId, StatementId, TenantId};
use subtle::ConstantTimeEq;
use time::format_description::FormatItem;
use time::macros::format_description;

pub const ISO_DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Wrong answers on one link before it locks.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// Failed answers from one address in an hour before it is refused (429).
pub const MAX_FAILURES_PER_ADDRESS_PER_HOUR: i64 = 20;
/// Failed answers about one patient (any of their links, so any phone they were sent to) per day.
pub const MAX_FAILURES_PER_PATIENT_PER_DAY: i64 = 10;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PayLink {
    pub id: LinkId,
    pub tenant_id: TenantId,
    pub statement_id: StatementId,
    pub patient_id: PatientId,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub locked_at: Option<i64>,
    pub failed_attempts: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Usable,
    Locked,
    /// Expired or revoked: to the visitor, indistinguishable from a link that never existed.
    Dead,
}

impl PayLink {
    pub fn state(&self, now: i64) -> LinkState {
        if self.revoked_at.is_some() || now >= self.expires_at {
            LinkState::Dead
        } else if self.locked_at.is_some() {
            LinkState::Locked
        } else {
            LinkState::Usable
        }
    }
}

/// Creates a link to one statement; returns its id and the token (shown once, never stored).
pub async fn create(
    db: &Db,
    tenant: &TenantId,
    statement: &StatementId,
    expires_at: i64,
) -> Result<(LinkId, String), sqlx::Error> {
    let id = LinkId::generate();
    let token = random_token();
    sqlx::query(
        "INSERT INTO pay_links (id, tenant_id, statement_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(statement.as_str())
    .bind(token_hash(&token))
    .bind(crate::clock::now_unix())
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok((id, token))
}

const SELECT_LINK: &str = "SELECT l.id, l.tenant_id, l.statement_id, s.patient_id, l.expires_at,
        l.revoked_at, l.locked_at, l.failed_attempts
    FROM pay_links l JOIN statements s ON s.id = l.statement_id";

/// Tokens we issue are 22–64 URL-safe characters; anything else is not worth a query.
pub fn token_shape_ok(token: &str) -> bool {
    (22..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Looks a link up by the token a visitor presented. Tokens of the wrong shape are not queried.
pub async fn find_by_token(db: &Db, token: &str) -> Result<Option<PayLink>, sqlx::Error> {
    if !token_shape_ok(token) {
        return Ok(None);
    }
    sqlx::query_as(&format!("{SELECT_LINK} WHERE l.token_hash = $1"))
        .bind(token_hash(token))
        .fetch_optional(db.pool())
        .await
}

/// A link as it is opened from its token: with its patient's language and whether it was opened
/// before, read in one query (the landing page is every text's first request).
#[derive(Debug, sqlx::FromRow)]
pub struct Opening {
    #[sqlx(flatten)]
    pub link: PayLink,
    language: Option<String>,
    first_used_at: Option<i64>,
}

impl Opening {
    /// The patient's preferred language, the one their texts are written in (so the pages the
    /// link opens tell its holder nothing the text did not), if one we speak.
    pub fn language(&self) -> Option<patriotpay_app::Lang> {
        self.language
            .as_deref()
            .and_then(patriotpay_app::Lang::parse)
    }

    /// Whether the link was opened before (then `mark_used` has nothing to write).
    pub fn used_before(&self) -> bool {
        self.first_used_at.is_some()
    }
}

pub async fn open_by_token(db: &Db, token: &str) -> Result<Option<Opening>, sqlx::Error> {
    if !token_shape_ok(token) {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT l.id, l.tenant_id, l.statement_id, s.patient_id, l.expires_at,
                l.revoked_at, l.locked_at, l.failed_attempts, l.first_used_at, p.language
         FROM pay_links l JOIN statements s ON s.id = l.statement_id
         LEFT JOIN patients p ON p.id = s.patient_id AND p.tenant_id = l.tenant_id
         WHERE l.token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(db.pool())
    .await
}

pub async fn find(db: &Db, id: &LinkId) -> Result<Option<PayLink>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_LINK} WHERE l.id = $1"))
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await
}

pub async fn mark_used(db: &Db, id: &LinkId, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pay_links SET first_used_at = $1 WHERE id = $2 AND first_used_at IS NULL")
        .bind(now)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn revoke(db: &Db, id: &LinkId, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pay_links SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The outcome of reserving an identity attempt.
#[derive(Debug)]
#[must_use]
pub enum Claim {
    /// Go ahead and compare; settle the attempt afterwards.
    Granted(Attempt),
    /// The link is locked (or this attempt would pass the limit).
    Locked,
    /// Too many failures from this address or about this patient.
    Throttled,
}

/// What an identity attempt is made against: a pay link or a guarantor invitation. Both count
/// failures the same way and lock at `MAX_FAILED_ATTEMPTS`; both share the per-address and
/// per-patient limits.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    kind: SubjectKind,
    id: &'a str,
    patient: &'a PatientId,
}

/// One claimed identity attempt, counted as a failure until settled. Dropping it unsettled
/// leaves it counted (the safe side), and says so in the log.
#[derive(Debug)]
#[must_use = "settle the attempt: a right answer gives it back"]
pub struct Attempt {
    id: i64,
    subject: Option<(SubjectKind, String, PatientId)>,
    settled: bool,
}

impl Attempt {
    fn subject(&self) -> Option<Subject<'_>> {
        self.subject.as_ref().map(|(kind, id, patient)| Subject {
            kind: *kind,
            id,
            patient,
        })
    }

    /// Settles the attempt: a wrong answer stays counted and locks the subject at the limit
    /// (returns true when this attempt locked it); a right one is given back.
    pub async fn settle(mut self, db: &Db, wrong: bool, now: i64) -> Result<bool, sqlx::Error> {
        self.settled = true;
        settle(db, self.subject(), self.id, wrong, now).await
    }

    /// Gives the attempt back: the answer was never compared (our fault, e.g. keys unavailable).
    pub async fn give_back(self, db: &Db, now: i64) -> Result<(), sqlx::Error> {
        self.settle(db, false, now).await.map(|_| ())
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            tracing::warn!("identity attempt dropped unsettled; it stays counted");
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum SubjectKind {
    PayLink,
    Invitation,
}

impl SubjectKind {
    fn table(self) -> &'static str {
        match self {
            SubjectKind::PayLink => "pay_links",
            SubjectKind::Invitation => "guarantor_invitations",
        }
    }
}

impl<'a> Subject<'a> {
    pub fn link(link: &'a PayLink) -> Self {
        Subject {
            kind: SubjectKind::PayLink,
            id: link.id.as_str(),
            patient: &link.patient_id,
        }
    }

    pub fn invitation(id: &'a str, patient: &'a PatientId) -> Self {
        Subject {
            kind: SubjectKind::Invitation,
            id,
            patient,
        }
    }
}

/// Reserves one identity attempt *before* the answer is compared: the failure is written first
/// and given back only if the answer is right, so parallel guesses cannot outrun the lock or
/// the limits. `subject` is `None` when nothing valid was presented (an expired, revoked or
/// unknown link or invitation).
pub async fn claim(
    db: &Db,
    subject: Option<Subject<'_>>,
    address: &str,
    now: i64,
) -> Result<Claim, sqlx::Error> {
    // Counted per /64 for IPv6 (one subscriber's block), per address for IPv4.
    let address = crate::limits::address_key(address);
    let address = address.as_str();
    let mut tx = db.begin_write().await?;
    if let Some(sub) = subject {
        // The row lock (PostgreSQL) or the write lock (SQLite) orders concurrent claims; at
        // most MAX_FAILED_ATTEMPTS can be outstanding.
        let claimed: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE {} SET failed_attempts = failed_attempts + 1
             WHERE id = $1 AND locked_at IS NULL AND failed_attempts < $2 RETURNING failed_attempts",
            sub.kind.table()
        ))
        .bind(sub.id)
        .bind(MAX_FAILED_ATTEMPTS)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            return Ok(Claim::Locked);
        }
    }
    // The practice is the patient's, for its hourly failure budget.
    let attempt: i64 = sqlx::query_scalar(
        "INSERT INTO verify_failures (at, address, patient_id, tenant_id)
         VALUES ($1, $2, $3, (SELECT tenant_id FROM patients WHERE id = $3)) RETURNING id",
    )
    .bind(now)
    .bind(address)
    .bind(subject.map(|s| s.patient.as_str().to_owned()))
    .fetch_one(&mut *tx)
    .await?;
    // Counting this attempt and every other one not yet settled.
    let by_address: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM verify_failures WHERE address = $1 AND at > $2")
            .bind(address)
            .bind(now - 3600)
            .fetch_one(&mut *tx)
            .await?;
    let mut over = by_address > MAX_FAILURES_PER_ADDRESS_PER_HOUR;
    if let Some(sub) = subject {
        let by_patient: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM verify_failures WHERE patient_id = $1 AND at > $2",
        )
        .bind(sub.patient.as_str())
        .bind(now - 86_400)
        .fetch_one(&mut *tx)
        .await?;
        over |= by_patient > MAX_FAILURES_PER_PATIENT_PER_DAY;
    }
    if over {
        tx.rollback().await?;
        return Ok(Claim::Throttled);
    }
    tx.commit().await?;
    Ok(Claim::Granted(Attempt {
        id: attempt,
        subject: subject.map(|s| (s.kind, s.id.to_owned(), s.patient.clone())),
        settled: false,
    }))
}

/// Settles a claimed attempt. A right answer, or a malformed one that was never compared,
/// gives the attempt back; a wrong one stays counted and locks the subject at the limit.
/// Returns true when this attempt locked it.
async fn settle(
    db: &Db,
    subject: Option<Subject<'_>>,
    attempt: i64,
    counts: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let mut locked = false;
    if counts {
        if let Some(sub) = subject {
            let n = sqlx::query(&format!(
                "UPDATE {} SET locked_at = $1 WHERE id = $2 AND locked_at IS NULL AND failed_attempts >= $3",
                sub.kind.table()
            ))
            .bind(now)
            .bind(sub.id)
            .bind(MAX_FAILED_ATTEMPTS)
            .execute(&mut *tx)
            .await?;
            locked = n.rows_affected() == 1;
        }
    } else {
        sqlx::query("DELETE FROM verify_failures WHERE id = $1")
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
        if let Some(sub) = subject {
            sqlx::query(&format!(
                "UPDATE {} SET failed_attempts = failed_attempts - 1 WHERE id = $1 AND failed_attempts > 0",
                sub.kind.table()
            ))
            .bind(sub.id)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(locked)
}

/// Failed identity answers about one practice's patients in an hour (any link, invitation or
/// address) above which `spend_practice_budget` raises an alert: the default of
/// `PATRIOTPAY_IDENTITY_FAILURE_BUDGET`.
pub const DEFAULT_PRACTICE_FAILURE_BUDGET_PER_HOUR: u32 = 50;

/// The alert kind raised when a practice's hourly failure budget is spent.
pub const BUDGET_ALERT: &str = "identity.failure-budget";

/// After a wrong identity answer about `tenant`'s patient: when the practice's failures in the
/// last hour pass `budget`, raises an alert, once per practice per clock hour. Returns whether
/// this call raised it.
///
/// Checks are not refused when the budget is spent: that would let anyone who can guess a few
/// links deny every patient of the practice their statement. The guesses themselves stay
/// bounded by the per-link lock and the per-address and per-patient limits; the alert tells
/// people that someone is spreading guesses over many of them.
pub async fn spend_practice_budget(
    db: &Db,
    alerts: &crate::alerts::AlertSink,
    tenant: &TenantId,
    budget: u32,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let failures: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM verify_failures WHERE tenant_id = $1 AND at > $2")
            .bind(tenant.as_str())
            .bind(now - 3600)
            .fetch_one(db.pool())
            .await?;
    if failures <= i64::from(budget) {
        return Ok(false);
    }
    // The primary key makes "once per practice per hour" hold under concurrent answers.
    let first = sqlx::query(
        "INSERT INTO identity_budget_alerts (tenant_id, hour) VALUES ($1, $2)
         ON CONFLICT (tenant_id, hour) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(now.div_euclid(3600))
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1;
    if first {
        alerts
            .raise(
                db,
                Some(tenant),
                BUDGET_ALERT,
                &format!(
                    "practice {tenant}: more than {budget} failed identity answers in the last hour"
                ),
                now,
            )
            .await?;
    }
    Ok(first)
}

/// Deletes identity-attempt rows too old to count against any limit (the longest window is the
/// per-patient day); run on a schedule so the table does not grow without end.
pub async fn prune_failures(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM verify_failures WHERE at < $1")
        .bind(now - 86_400)
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM identity_budget_alerts WHERE hour < $1")
        .bind(now.div_euclid(3600) - 24)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Parses a typed date of birth (month, day, year) into ISO form; `None` if it is no real date.
pub fn parse_dob(month: &str, day: &str, year: &str) -> Option<String> {
    let m: u8 = month.trim().parse().ok()?;
    let d: u8 = day.trim().parse().ok()?;
    let y: i32 = year.trim().parse().ok()?;
    if !(1900..=2100).contains(&y) {
        return None;
    }
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    date.format(ISO_DATE).ok()
}

/// The first five digits of a typed ZIP code (`60614-1234` → `60614`); `None` otherwise.
pub fn normalize_zip(zip: &str) -> Option<String> {
    let digits: String = zip
        .trim()
        .chars()
        .take_while(|c| *c != '-')
        .filter(|c| !c.is_whitespace())
        .collect();
    (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Constant-time equality for identity answers.
pub fn answers_match(given: &str, on_file: &str) -> bool {
    given.as_bytes().ct_eq(on_file.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dob_parsing() {
        assert_eq!(parse_dob("3", "14", "1984").as_deref(), Some("1984-03-14"));
        assert_eq!(parse_dob("02", "30", "1984"), None);
        assert_eq!(parse_dob("13", "1", "1984"), None);
        assert_eq!(parse_dob("x", "1", "1984"), None);
        assert_eq!(parse_dob("1", "1", "84"), None);
    }

    /// The per-address limit of the identity check counts every address of an IPv6 /64 (and
    /// an IPv4 address however written) as one.
    #[tokio::test]
    async fn identity_limits_key_ipv6_on_the_64() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let now = 1_800_000_000;
        let wrong = |address: String| {
            let db = db.clone();
            async move {
                match claim(&db, None, &address, now).await.expect("claim") {
                    Claim::Granted(a) => {
                        a.settle(&db, true, now).await.expect("settle");
                        true
                    }
                    Claim::Throttled => false,
                    Claim::Locked => panic!("no link, no lock"),
                }
            }
        };
        for i in 0..MAX_FAILURES_PER_ADDRESS_PER_HOUR {
            assert!(wrong(format!("2001:db8:aa:bb:{i:x}:1:2:3")).await);
        }
        assert!(!wrong("2001:db8:aa:bb:ffff:ffff:ffff:ffff".into()).await);
        assert!(wrong("2001:db8:aa:bc::1".into()).await, "the next /64");
        for _ in 0..MAX_FAILURES_PER_ADDRESS_PER_HOUR {
            assert!(wrong("::ffff:198.51.100.7".into()).await);
        }
        assert!(!wrong("198.51.100.7".into()).await, "IPv4-mapped is IPv4");
        assert!(wrong("198.51.100.8".into()).await);
    }

    #[test]
    fn zip_normalization() {
        assert_eq!(normalize_zip(" 60614-1234 ").as_deref(), Some("60614"));
        assert_eq!(normalize_zip("6061"), None);
        assert_eq!(normalize_zip("abcde"), None);
    }

    #[test]
    fn link_states() {
        let mut l = PayLink {
            id: LinkId::generate(),
            tenant_id: TenantId::generate(),
            statement_id: StatementId::generate(),
            patient_id: PatientId::generate(),
            expires_at: 100,
            revoked_at: None,
            locked_at: None,
            failed_attempts: 0,
        };
        assert_eq!(l.state(99), LinkState::Usable);
        assert_eq!(l.state(100), LinkState::Dead);
        l.locked_at = Some(1);
        assert_eq!(l.state(99), LinkState::Locked);
        l.revoked_at = Some(1);
        assert_eq!(l.state(99), LinkState::Dead);
    }
}

/// The identity answers and link tokens come from the internet: no input panics, real dates
/// and ZIPs as people type them are read back exactly, and every token we issue has the shape
/// we accept while anything with another character does not.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_answer_is_read_without_panic(m in ".{0,12}", d in ".{0,12}", y in ".{0,12}", zip in ".{0,24}") {
            if let Some(iso) = parse_dob(&m, &d, &y) {
                prop_assert!(time::Date::parse(&iso, ISO_DATE).is_ok());
            }
            if let Some(z) = normalize_zip(&zip) {
                prop_assert!(z.len() == 5 && z.bytes().all(|b| b.is_ascii_digit()));
            }
            let _ = answers_match(&zip, &m);
        }

        #[test]
        fn number_like_dates_are_read_without_panic(m in "[ 0-9+-]{0,6}", d in "[ 0-9+-]{0,6}", y in "[ 0-9+-]{0,8}") {
            let _ = parse_dob(&m, &d, &y);
        }

        #[test]
        fn real_dates_round_trip(days in 0i64..73_049, pad in any::<bool>(), space in any::<bool>()) {
            // Every day from 1900-01-01 to 2099-12-31.
            let base = time::Date::from_calendar_date(1900, time::Month::January, 1).expect("date");
            let date = base + time::Duration::days(days);
            let (m, d) = (u8::from(date.month()), date.day());
            let (m, d) = if pad { (format!("{m:02}"), format!("{d:02}")) } else { (m.to_string(), d.to_string()) };
            let y = if space { format!(" {} ", date.year()) } else { date.year().to_string() };
            prop_assert_eq!(parse_dob(&m, &d, &y), date.format(ISO_DATE).ok());
        }

        #[test]
        fn impossible_dates_are_refused(y in 1900i32..=2100, m in 1u8..=12, d in 29u8..=99) {
            let real = time::Month::try_from(m)
                .ok()
                .and_then(|month| time::Date::from_calendar_date(y, month, d).ok())
                .is_some();
            prop_assert_eq!(parse_dob(&m.to_string(), &d.to_string(), &y.to_string()).is_some(), real);
        }

        #[test]
        fn zips_as_typed_are_read_back(zip in "[0-9]{5}", plus4 in proptest::option::of("[0-9]{4}"), pad in " {0,3}") {
            let typed = match &plus4 {
                Some(p) => format!("{pad}{zip}-{p}{pad}"),
                None => format!("{pad}{zip}{pad}"),
            };
            prop_assert_eq!(normalize_zip(&typed), Some(zip));
        }

        #[test]
        fn issued_tokens_have_the_accepted_shape(_n in 0..64u8) {
            prop_assert!(token_shape_ok(&crate::crypto::random_token()));
        }

        #[test]
        fn tokens_with_another_character_are_refused(
            head in "[A-Za-z0-9_-]{0,40}",
            bad in "[^A-Za-z0-9_-]",
            tail in "[A-Za-z0-9_-]{0,40}",
        ) {
            let token = format!("{head}{bad}{tail}");
            prop_assert!(!token_shape_ok(&token));
        }

        #[test]
        fn any_token_is_judged_without_panic(token in ".{0,100}") {
            let ok = token_shape_ok(&token);
            prop_assert_eq!(ok, (22..=64).contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
