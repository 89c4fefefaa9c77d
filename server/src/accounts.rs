//! Local accounts: staff (argon2id password + TOTP second factor, recovery codes, enrolment
//! links) and members (patients and guarantors: password, grants over named patients);
//! sign-in throttling, grants, and per-user session revocation.

use crate::access::{Grant, Principal, Role};
use crate::crypto::{random_token, token_hash, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{PatientId, TenantId, UserId};
use crate::phi::Phi;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// The pseudo-practice whose keys encrypt secrets that belong to no practice.
pub const PLATFORM_TENANT: &str = "ten_00000000000000000000000000000000";
/// Failed sign-ins per account, and per address, in the window before 429.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;
pub const ENROLMENT_TTL_SECS: i64 = 72 * 3600;
const TOTP_STEP: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email, password or code not accepted")]
    Invalid,
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    #[error("password must be 8 to 128 characters")]
    WeakPassword,
    #[error("{0}")]
    Bad(&'static str),
    /// Cognito has the account but its sign-up code was never entered.
    #[error("sign-up not confirmed")]
    Unconfirmed,
    /// The patient already has an account of their own.
    #[error("this patient already has an account")]
    PatientHasAccount,
    /// The email belongs to another account.
    #[error("an account with that email exists")]
    EmailTaken,
    /// A single-use token (invitation) was spent, withdrawn, locked or expired meanwhile.
    #[error("no longer usable")]
    Gone,
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("hashing: {0}")]
    Hash(String),
}

/// Staff sign in with a second factor; members (patients, guarantors) with a password only and
/// never hold staff grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Staff,
    Member,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Staff => "staff",
            Kind::Member => "member",
        }
    }
}

fn argon() -> Result<Argon2<'static>, AccountError> {
    // OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19_456, 2, 1, None).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the blocking pool, so a burst of sign-ins cannot stall the async workers.
pub async fn hash_password(password: Phi<String>) -> Result<String, AccountError> {
    let n = password.expose().chars().count();
    if !(8..=128).contains(&n) {
        return Err(AccountError::WeakPassword);
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon()?
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?
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

pub async fn verify_password(hash: String, password: Phi<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        argon().is_ok_and(|a| {
            a.verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Blind-index domain for account emails.
const BIDX_EMAIL: &str = "account-email";

/// The keyed blind index an account is found by: the email itself is never stored in the clear
/// (a patient's or guarantor's email says who a practice's patients are).
pub async fn email_index(crypto: &FieldCrypto, email: &str) -> Result<Vec<u8>, AccountError> {
    Ok(crypto
        .blind_index(platform(), BIDX_EMAIL, &normalize_email(email))
        .await?)
}

/// Where an account's email ciphertext is bound: the platform's keys, the user's row.
fn email_aad(user: &UserId) -> FieldAad<'_> {
    FieldAad {
        tenant: platform(),
        table: "users",
        column: "email",
        row: user.as_str(),
    }
}

/// A new account's id with its email sealed for storage. Made before the caller's write
/// transaction opens, since a first use of the platform's keys writes them.
pub struct NewAccount {
    pub id: UserId,
    email_index: Vec<u8>,
    email_ct: Vec<u8>,
}

impl NewAccount {
    /// Checks and normalises the email, then seals it for a fresh account id.
    pub async fn prepare(crypto: &FieldCrypto, email: &str) -> Result<Self, AccountError> {
        let email = normalize_email(email);
        if !valid_email(&email) {
            return Err(AccountError::Bad("not an email address"));
        }
        let id = UserId::generate();
        let email_index = email_index(crypto, &email).await?;
        let email_ct = crypto.encrypt(email_aad(&id), email.as_bytes()).await?;
        Ok(Self {
            id,
            email_index,
            email_ct,
        })
    }

    /// Refuses an email some account already uses.
    async fn check_free(&self, tx: &mut sqlx::AnyConnection) -> Result<(), AccountError> {
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1")
                .bind(&self.email_index)
                .fetch_optional(&mut *tx)
                .await?;
        match taken {
            Some(_) => Err(AccountError::EmailTaken),
            None => Ok(()),
        }
    }
}

/// An account's email, decrypted for display (its owner, the practice, the operator's CLI).
pub async fn open_email(
    crypto: &FieldCrypto,
    user: &UserId,
    email_ct: &[u8],
) -> Result<Phi<String>, AccountError> {
    Ok(crypto.decrypt_str(email_aad(user), email_ct).await?)
}

/// The account using this email, if any.
async fn by_email(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email_index = $1")
        .bind(email_index(crypto, email).await?)
        .fetch_optional(db.pool())
        .await?;
    Ok(id.map(UserId::from_db))
}

/// Creates a staff account with one grant and returns it with a one-time enrolment token.
pub async fn add_user(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    role: Role,
    tenant: Option<&TenantId>,
    now: i64,
) -> Result<(UserId, String), AccountError> {
    if role.is_staff() && role != Role::PlatformAdmin && tenant.is_none() {
        return Err(AccountError::Bad("this role needs --practice"));
    }
    let account = NewAccount::prepare(crypto, email).await?;
    let id = account.id.clone();
    let token = random_token();
    let mut tx = db.begin_write().await?;
    account.check_free(&mut tx).await?;
    sqlx::query(
        "INSERT INTO users (id, email_index, email_ct, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(&account.email_index)
    .bind(&account.email_ct)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO user_grants (user_id, role, tenant_id, granted_by, created_at) VALUES ($1, $2, $3, 'cli', $4)")
        .bind(id.as_str())
        .bind(role.as_str())
        .bind(tenant.map(|t| t.as_str().to_owned()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO enrolment_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(id.as_str())
    .bind(now + ENROLMENT_TTL_SECS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, token))
}

/// The account an unused, unexpired enrolment token belongs to.
pub async fn enrolment_user(
    db: &Db,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT user_id FROM enrolment_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(id.map(UserId::from_db))
}

/// The pseudo-practice whose keys encrypt what belongs to no practice.
pub fn platform() -> &'static TenantId {
    static PLATFORM: OnceLock<TenantId> = OnceLock::new();
    PLATFORM.get_or_init(|| TenantId::from_db(PLATFORM_TENANT.to_owned()))
}

/// Where a staff member's TOTP secret is bound: the platform's keys, the user's row.
fn totp_aad(user: &UserId) -> FieldAad<'_> {
    FieldAad {
        tenant: platform(),
        table: "users",
        column: "totp_secret",
        row: user.as_str(),
    }
}

fn totp_for(secret: &[u8], email: &str) -> Result<totp_rs::TOTP, AccountError> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        TOTP_STEP as u64,
        secret.to_vec(),
        Some("PatriotPay".into()),
        email.to_owned(),
    )
    .map_err(|_| AccountError::Bad("bad TOTP secret"))
}

/// What enrolment shows: the otpauth URL (as a QR code) and the secret for typing in.
pub struct TotpSetup {
    pub otpauth_url: String,
    pub secret_base32: String,
}

/// The account's unconfirmed TOTP secret for display, made (and stored encrypted) on first call,
/// so reloading the set-up page keeps showing the code already scanned.
pub async fn totp_setup(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
) -> Result<TotpSetup, AccountError> {
    let (email_ct, existing, confirmed): (Vec<u8>, Option<Vec<u8>>, i64) =
        sqlx::query_as("SELECT email_ct, totp_secret_ct, totp_confirmed FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_one(db.pool())
            .await?;
    let email = open_email(crypto, user, &email_ct).await?;
    let email = email.expose();
    let aad = totp_aad(user);
    if let (Some(ct), 0) = (existing, confirmed) {
        let secret = crypto.decrypt(aad, &ct).await?;
        let totp = totp_for(&secret, email)?;
        return Ok(TotpSetup {
            otpauth_url: totp.get_url(),
            secret_base32: totp.get_secret_base32(),
        });
    }
    let secret = totp_rs::Secret::generate_secret()
        .to_bytes()
        .map_err(|_| AccountError::Bad("secret"))?;
    let totp = totp_for(&secret, email)?;
    let ct = crypto.encrypt(aad, &secret).await?;
    sqlx::query("UPDATE users SET totp_secret_ct = $1, totp_confirmed = 0, totp_last_step = 0 WHERE id = $2 AND totp_confirmed = 0")
        .bind(ct)
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(TotpSetup {
        otpauth_url: totp.get_url(),
        secret_base32: totp.get_secret_base32(),
    })
}

/// Checks a TOTP code (one step of drift either way) and refuses a code already used.
pub async fn check_totp(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let row: Option<(Option<Vec<u8>>, i64)> =
        sqlx::query_as("SELECT totp_secret_ct, totp_last_step FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(db.pool())
            .await?;
    let Some((Some(ct), last_step)) = row else {
        return Ok(false);
    };
    let aad = totp_aad(user);
    let secret = crypto.decrypt(aad, &ct).await?;
    // The label only names the code in the authenticator app; it plays no part in the code.
    let totp = totp_for(&secret, "staff")?;
    let code = code.trim().replace(' ', "");
    let step = now / TOTP_STEP;
    for s in [step - 1, step, step + 1] {
        if s <= last_step || s < 0 {
            continue;
        }
        let expected = totp.generate((s * TOTP_STEP) as u64);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            // Guarded so two racing uses of one code can't both win.
            let r = sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
            )
            .bind(s)
            .bind(user.as_str())
            .execute(db.pool())
            .await?;
            return Ok(r.rows_affected() == 1);
        }
    }
    Ok(false)
}

/// The current TOTP code for an account (tests and the CLI's break-glass path only).
pub async fn current_totp(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    at: i64,
) -> Result<String, AccountError> {
    let ct: Vec<u8> = sqlx::query_scalar("SELECT totp_secret_ct FROM users WHERE id = $1")
        .bind(user.as_str())
        .fetch_one(db.pool())
        .await?;
    let aad = totp_aad(user);
    let secret = crypto.decrypt(aad, &ct).await?;
    Ok(totp_for(&secret, "staff")?.generate(at as u64))
}

/// Finishes enrolment: sets the password, confirms TOTP with a code, spends the token and
/// returns ten recovery codes to show once (stored hashed).
pub async fn complete_enrolment(
    db: &Db,
    crypto: &FieldCrypto,
    token_hash: &[u8],
    password: Phi<String>,
    code: &str,
    now: i64,
) -> Result<(UserId, Vec<String>), AccountError> {
    let user = enrolment_user(db, token_hash, now)
        .await?
        .ok_or(AccountError::Invalid)?;
    let hash = hash_password(password).await?;
    if !check_totp(db, crypto, &user, code, now).await? {
        return Err(AccountError::Invalid);
    }
    let codes: Vec<String> = (0..10).map(|_| random_token()[..12].to_owned()).collect();
    let mut tx = db.begin_write().await?;
    let spent = sqlx::query(
        "UPDATE enrolment_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Err(AccountError::Invalid);
    }
    sqlx::query(
        "UPDATE users SET password_hash = $1, totp_confirmed = 1, must_reset = 0 WHERE id = $2",
    )
    .bind(hash)
    .bind(user.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    for c in &codes {
        sqlx::query("INSERT INTO recovery_codes (code_hash, user_id) VALUES ($1, $2)")
            .bind(crate::crypto::token_hash(c))
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((user, codes))
}

/// Spends a recovery code in place of a TOTP code.
pub async fn use_recovery_code(
    db: &Db,
    user: &UserId,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let r = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL")
        .bind(now)
        .bind(token_hash(code.trim()))
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
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
    // id, password hash, disabled at, TOTP confirmed, must reset.
    type LoginRow = (String, Option<String>, Option<i64>, i64, i64);
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, password_hash, disabled_at, totp_confirmed, must_reset FROM users
         WHERE email_index = $1 AND kind = $2",
    )
    .bind(&email)
    .bind(kind.as_str())
    .fetch_optional(db.pool())
    .await?;
    let (hash, usable) = match (&row, kind) {
        (Some((_, Some(h), None, 1, 0)), Kind::Staff) => (h.clone(), true),
        (Some((_, Some(h), None, _, 0)), Kind::Member) => (h.clone(), true),
        _ => (dummy_hash().to_owned(), false),
    };
    let ok = verify_password(hash, password).await;
    match row {
        Some((id, ..)) if ok && usable => Ok(UserId::from_db(id)),
        _ => Err(AccountError::Invalid),
    }
}

/// A signed-in account as the policy sees it, with the facts sessions are checked against.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: UserId,
    /// Sealed: loaded on every request, opened only where a page or a provider call needs it.
    email_ct: Vec<u8>,
    pub principal: Principal,
    pub disabled: bool,
    pub must_reset: bool,
    pub sessions_revoked_before: i64,
    pub kind: Kind,
}

impl Account {
    pub async fn email(&self, crypto: &FieldCrypto) -> Result<Phi<String>, AccountError> {
        open_email(crypto, &self.id, &self.email_ct).await
    }
}

pub async fn load(db: &Db, user: &UserId, now: i64) -> Result<Option<Account>, AccountError> {
    // email ciphertext, disabled at, sessions revoked before, must reset, kind.
    type AccountRow = (Vec<u8>, Option<i64>, i64, i64, String);
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT email_ct, disabled_at, sessions_revoked_before, must_reset, kind FROM users WHERE id = $1",
    )
    .bind(user.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some((email_ct, disabled_at, revoked, must_reset, kind)) = row else {
        return Ok(None);
    };
    // role, practice, expiry, patient
    type GrantRow = (String, Option<String>, Option<i64>, Option<String>);
    let grants: Vec<GrantRow> = sqlx::query_as(
        "SELECT role, tenant_id, expires_at, patient_id FROM user_grants
         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
    )
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    let grants = grants
        .into_iter()
        .filter(|(_, _, exp, _)| exp.is_none_or(|e| e > now))
        .filter_map(|(role, tenant, exp, patient)| {
            Some(Grant {
                role: Role::parse(&role)?,
                tenant: tenant.map(TenantId::from_db),
                patients: patient.map(PatientId::from_db).into_iter().collect(),
                expires_at: exp,
            })
        })
        .collect();
    Ok(Some(Account {
        id: user.clone(),
        email_ct,
        principal: Principal {
            user: user.to_string(),
            grants,
            mfa: false,
            impersonating: false,
        },
        disabled: disabled_at.is_some(),
        must_reset: must_reset == 1,
        sessions_revoked_before: revoked,
        kind: if kind == "member" {
            Kind::Member
        } else {
            Kind::Staff
        },
    }))
}

/// Every session of this account signed in before `now` stops working at its next request.
pub async fn revoke_sessions(db: &Db, user: &UserId, now: i64) -> Result<(), AccountError> {
    sqlx::query("UPDATE users SET sessions_revoked_before = $1 WHERE id = $2")
        .bind(now)
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn disable(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let r = sqlx::query("UPDATE users SET disabled_at = $1, sessions_revoked_before = $1 WHERE email_index = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(email_index(crypto, email).await?)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub struct UserRow {
    pub email: String,
    pub roles: Vec<String>,
    pub enrolled: bool,
    pub disabled: bool,
}

pub async fn list(db: &Db, crypto: &FieldCrypto) -> Result<Vec<UserRow>, AccountError> {
    let users: Vec<(String, Vec<u8>, i64, Option<i64>)> =
        sqlx::query_as("SELECT id, email_ct, totp_confirmed, disabled_at FROM users")
            .fetch_all(db.pool())
            .await?;
    let mut out = vec![];
    for (id, email_ct, enrolled, disabled) in users {
        let email = open_email(crypto, &UserId::from_db(id.clone()), &email_ct)
            .await?
            .expose()
            .clone();
        let grants: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT role, tenant_id FROM user_grants WHERE user_id = $1 ORDER BY id",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?;
        let roles = grants
            .into_iter()
            .map(|(r, t)| match t {
                Some(t) => format!("{r}@{t}"),
                None => r,
            })
            .collect();
        out.push(UserRow {
            email,
            roles,
            enrolled: enrolled == 1,
            disabled: disabled.is_some(),
        });
    }
    out.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(out)
}

/// The local record of a Cognito user, keyed by the token's `sub` (never by the email, which a
/// user may be able to change), created on first sign-in; its Cognito-given grants are replaced
/// from `cognito:groups` each time (emergency grants are kept). Returns the id and whether the
/// account may sign in (not disabled, no pending forced reset). An email already used by a
/// different account refuses the sign-in rather than merging the two.
pub async fn upsert_external(
    db: &Db,
    crypto: &FieldCrypto,
    subject: &str,
    email: &str,
    grants: &[(Role, Option<TenantId>)],
    now: i64,
) -> Result<(UserId, bool), AccountError> {
    // Sealed up front (a first use of the platform keys writes them); used only if new.
    let account = NewAccount::prepare(crypto, email).await;
    let mut tx = db.begin_write().await?;
    let row: Option<(String, Option<i64>, i64, String)> = sqlx::query_as(
        "SELECT id, disabled_at, must_reset, kind FROM users WHERE external_subject = $1",
    )
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, usable) = match row {
        // A patient's or guarantor's Cognito user never becomes staff, whatever its groups say.
        Some((_, _, _, kind)) if kind != Kind::Staff.as_str() => {
            return Err(AccountError::Bad(
                "a member account cannot sign in as staff",
            ));
        }
        Some((id, disabled, must_reset, _)) => {
            (UserId::from_db(id), disabled.is_none() && must_reset == 0)
        }
        None => {
            let account = account?;
            if account.check_free(&mut tx).await.is_err() {
                return Err(AccountError::Bad(
                    "email already belongs to another account",
                ));
            }
            let id = account.id.clone();
            sqlx::query("INSERT INTO users (id, email_index, email_ct, external_subject, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.as_str())
                .bind(&account.email_index)
                .bind(&account.email_ct)
                .bind(subject)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            (id, true)
        }
    };
    sqlx::query("DELETE FROM user_grants WHERE user_id = $1 AND granted_by = 'cognito'")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    for (role, tenant) in grants {
        sqlx::query("INSERT INTO user_grants (user_id, role, tenant_id, granted_by, created_at) VALUES ($1, $2, $3, 'cognito', $4)")
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(tenant.as_ref().map(|t| t.as_str().to_owned()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((id, usable))
}

/// Marks an account as needing a password reset and ends its sessions. For local accounts
/// returns a fresh set-up link token (password and TOTP are set again).
pub async fn force_reset(
    db: &Db,
    crypto: &FieldCrypto,
    email: &str,
    now: i64,
) -> Result<Option<String>, AccountError> {
    let id = by_email(db, crypto, email)
        .await?
        .ok_or(AccountError::Bad("no account with that email"))?;
    let id = id.as_str();
    let token = random_token();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET must_reset = 1, totp_confirmed = 0, totp_secret_ct = NULL, sessions_revoked_before = $1 WHERE id = $2",
    )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO enrolment_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(id)
    .bind(now + ENROLMENT_TTL_SECS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(token))
}

/// How a new member account will sign in.
#[derive(Clone, Debug)]
pub enum NewCredentials {
    /// Local accounts: an argon2id hash made with `hash_password`.
    Local { password_hash: String },
    /// Cognito accounts: the user's `sub`; Cognito holds the password.
    External { subject: String },
}

/// True when an account already uses this email (checked before calling out to Cognito).
pub async fn email_taken(db: &Db, crypto: &FieldCrypto, email: &str) -> Result<bool, AccountError> {
    Ok(by_email(db, crypto, email).await?.is_some())
}

/// The member account of a Cognito subject (staff accounts never match).
pub async fn member_by_subject(db: &Db, subject: &str) -> Result<Option<UserId>, AccountError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE external_subject = $1 AND kind = 'member'")
            .bind(subject)
            .fetch_optional(db.pool())
            .await?;
    Ok(id.map(UserId::from_db))
}

/// Creates a member account (patient or guarantor) from an email sealed with
/// `NewAccount::prepare`; grants are added by the caller in the same transaction. An email
/// already in use is refused.
pub async fn create_member(
    tx: &mut sqlx::AnyConnection,
    account: &NewAccount,
    credentials: &NewCredentials,
    now: i64,
) -> Result<UserId, AccountError> {
    account.check_free(tx).await?;
    let id = account.id.clone();
    let (hash, subject) = match credentials {
        NewCredentials::Local { password_hash } => (Some(password_hash.clone()), None),
        NewCredentials::External { subject } => (None, Some(subject.clone())),
    };
    sqlx::query(
        "INSERT INTO users (id, email_index, email_ct, password_hash, external_subject, kind, created_at)
         VALUES ($1, $2, $3, $4, $5, 'member', $6)",
    )
    .bind(id.as_str())
    .bind(&account.email_index)
    .bind(&account.email_ct)
    .bind(hash)
    .bind(subject)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        // A concurrent sign-up with the same email won the race.
        sqlx::Error::Database(d) if d.is_unique_violation() => AccountError::EmailTaken,
        _ => e.into(),
    })?;
    Ok(id)
}

/// Replaces a member account's local password hash.
pub async fn set_member_password(db: &Db, user: &UserId, hash: &str) -> Result<(), AccountError> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND kind = 'member'")
        .bind(hash)
        .bind(user.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A plausible email address: one `@`, something either side, a dot in the domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Gives a member account the patient or guarantor role over one patient. Idempotent: an
/// active grant of the same role for the same patient is not repeated.
pub async fn grant_over_patient(
    tx: &mut sqlx::AnyConnection,
    user: &UserId,
    role: Role,
    tenant: &TenantId,
    patient: &PatientId,
    granted_by: &str,
    now: i64,
) -> Result<(), AccountError> {
    if !matches!(role, Role::Patient | Role::Guarantor) {
        return Err(AccountError::Bad(
            "only patient and guarantor grants name a patient",
        ));
    }
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM user_grants WHERE user_id = $1 AND role = $2 AND patient_id = $3 AND revoked_at IS NULL",
    )
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(patient.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if existing.is_some() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, patient_id, granted_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .bind(granted_by)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        // One account per patient (a unique index): someone made theirs first.
        sqlx::Error::Database(d) if d.is_unique_violation() => AccountError::PatientHasAccount,
        _ => e.into(),
    })?;
    Ok(())
}

/// Clears the portal's must-reset flag of a Cognito staff account once its password was reset
/// at Cognito with the emailed code. Returns whether an account was cleared.
pub async fn clear_must_reset(db: &Db, subject: &str) -> Result<bool, AccountError> {
    let r = sqlx::query(
        "UPDATE users SET must_reset = 0 WHERE external_subject = $1 AND kind = 'staff' AND must_reset = 1",
    )
    .bind(subject)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Ends every session of the account with this Cognito subject (after a password reset).
pub async fn revoke_sessions_by_subject(
    db: &Db,
    subject: &str,
    now: i64,
) -> Result<(), AccountError> {
    sqlx::query("UPDATE users SET sessions_revoked_before = $1 WHERE external_subject = $2")
        .bind(now)
        .bind(subject)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Longest emergency grant a security officer may give.
pub const BREAK_GLASS_MAX_MINUTES: i64 = 240;

/// Gives `user` a time-boxed extra role in a practice, with the written reason on record.
pub async fn grant_break_glass(
    db: &Db,
    user: &UserId,
    role: Role,
    tenant: &TenantId,
    minutes: i64,
    reason: &str,
    now: i64,
) -> Result<i64, AccountError> {
    if !(1..=BREAK_GLASS_MAX_MINUTES).contains(&minutes) {
        return Err(AccountError::Bad("emergency access lasts 1 to 240 minutes"));
    }
    if reason.trim().chars().count() < 20 {
        return Err(AccountError::Bad("give a reason of at least 20 characters"));
    }
    if !matches!(role, Role::SupportAgent | Role::PracticeAdmin) {
        return Err(AccountError::Bad(
            "emergency access grants support-agent or practice-admin",
        ));
    }
    let expires = now + minutes * 60;
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, expires_at, reason, granted_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $1, $6)",
    )
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(tenant.as_str())
    .bind(expires)
    .bind(reason.trim())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(expires)
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
        assert!(verify_password(h.clone(), Phi::new(long.clone())).await);
        // No truncation: a change in the last character matters.
        let mut other = "ü".repeat(127);
        other.push('u');
        assert!(!verify_password(h, Phi::new(other)).await);
    }
}
