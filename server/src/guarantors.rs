//! Guarantors: single-use invitations checked against the dependant's identity answers, the
//! billing-only grants they lead to, and revocation by the patient or the practice.

use crate::access::{Action, Permit, Role};
use crate::accounts::{self, AccountError};
use crate::crypto::{random_token, token_hash, FieldCrypto};
use crate::db::Db;
use crate::ids::{InvitationId, PatientId, TenantId, UserId};
use crate::links::LinkState;
use crate::messages;
use crate::phi::Phi;

/// How long an invitation link works.
pub const INVITATION_TTL_SECS: i64 = 14 * 86_400;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Invitation {
    pub id: InvitationId,
    pub tenant_id: TenantId,
    pub patient_id: PatientId,
    pub expires_at: i64,
    pub locked_at: Option<i64>,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Invitation {
    /// Used, revoked and expired invitations are dead: to the visitor, like one that never was.
    pub fn state(&self, now: i64) -> LinkState {
        if self.used_at.is_some() || self.revoked_at.is_some() || now >= self.expires_at {
            LinkState::Dead
        } else if self.locked_at.is_some() {
            LinkState::Locked
        } else {
            LinkState::Usable
        }
    }

    pub fn subject(&self) -> crate::links::Subject<'_> {
        crate::links::Subject::invitation(self.id.as_str(), &self.patient_id)
    }
}

/// Creates an invitation for a guarantor of `patient`; returns its id and the token (never
/// stored). `invited_by` is the audit actor id of the patient or staff member. The web pages
/// email the link instead (`prepare_email`, `invite_by_email`); this is for the demo and tests.
pub async fn invite<'e, E>(
    exec: E,
    tenant: &TenantId,
    patient: &PatientId,
    invited_by: &str,
    now: i64,
) -> Result<(InvitationId, String), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let token = random_token();
    let id = insert_invitation(exec, tenant, patient, invited_by, &token, now).await?;
    Ok((id, token))
}

/// An invitation's token and the email carrying its link, sealed before the write transaction
/// opens (sealing may write the platform's data key).
pub struct InvitationEmail {
    token: String,
    sealed: messages::Sealed,
}

/// Seals the invitation email to `to` for a patient of the practice `practice`: the token is
/// drawn here, `link` makes the invitation's address from it, and only the email carries it.
pub async fn prepare_email(
    crypto: &FieldCrypto,
    practice: &str,
    to: &str,
    link: impl FnOnce(&str) -> String,
    now: i64,
) -> Result<InvitationEmail, AccountError> {
    let token = random_token();
    let (subject, body) = messages::texts::guarantor_invitation_email(
        practice,
        &link(&token),
        INVITATION_TTL_SECS / 86_400,
    );
    let to = Phi::new(accounts::normalize_email(to));
    let sealed = accounts::seal_email(
        crypto,
        to,
        messages::texts::GUARANTOR_INVITATION,
        (subject, body),
        now,
    )
    .await?;
    Ok(InvitationEmail { token, sealed })
}

/// Creates the invitation and queues its email in the caller's transaction: both or neither.
pub async fn invite_by_email(
    conn: &mut sqlx::AnyConnection,
    email: InvitationEmail,
    tenant: &TenantId,
    patient: &PatientId,
    invited_by: &str,
    now: i64,
) -> Result<InvitationId, AccountError> {
    let id = insert_invitation(&mut *conn, tenant, patient, invited_by, &email.token, now).await?;
    messages::queue(conn, &email.sealed, now)
        .await
        .map_err(AccountError::from)?;
    Ok(id)
}

async fn insert_invitation<'e, E>(
    exec: E,
    tenant: &TenantId,
    patient: &PatientId,
    invited_by: &str,
    token: &str,
    now: i64,
) -> Result<InvitationId, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let id = InvitationId::generate();
    sqlx::query(
        "INSERT INTO guarantor_invitations (id, tenant_id, patient_id, token_hash, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .bind(token_hash(token))
    .bind(invited_by)
    .bind(now)
    .bind(now + INVITATION_TTL_SECS)
    .execute(exec)
    .await?;
    Ok(id)
}

const SELECT_INVITATION: &str =
    "SELECT id, tenant_id, patient_id, expires_at, locked_at, used_at, revoked_at
    FROM guarantor_invitations";

/// Looks an invitation up by the token a visitor presented. Tokens of the wrong shape are not
/// queried.
pub async fn find_by_token(db: &Db, token: &str) -> Result<Option<Invitation>, sqlx::Error> {
    if !crate::links::token_shape_ok(token) {
        return Ok(None);
    }
    sqlx::query_as(&format!("{SELECT_INVITATION} WHERE token_hash = $1"))
        .bind(token_hash(token))
        .fetch_optional(db.pool())
        .await
}

pub async fn find(db: &Db, id: &InvitationId) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_INVITATION} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await
}

/// Spends the invitation on `user`: the guarantor grant and the used mark in one transaction,
/// so an invitation gives at most one grant however many tabs race.
async fn spend(
    conn: &mut sqlx::AnyConnection,
    inv: &Invitation,
    user: &UserId,
    now: i64,
) -> Result<(), AccountError> {
    let spent = sqlx::query(
        "UPDATE guarantor_invitations SET used_at = $1, used_by = $2
         WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL AND locked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(user.as_str())
    .bind(inv.id.as_str())
    .execute(&mut *conn)
    .await?;
    if spent.rows_affected() != 1 {
        return Err(AccountError::Gone);
    }
    accounts::grant_over_patient(
        conn,
        user,
        Role::Guarantor,
        &inv.tenant_id,
        &inv.patient_id,
        inv.id.as_str(),
        now,
    )
    .await
}

/// Accepts onto an existing member account.
pub async fn accept_existing(
    db: &Db,
    inv: &Invitation,
    user: &UserId,
    now: i64,
) -> Result<(), AccountError> {
    let mut tx = db.begin_write().await?;
    spend(&mut tx, inv, user, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a member account and accepts onto it, atomically (with `confirm`, the account is
/// usable once its emailed code is entered).
pub async fn accept_new(
    db: &Db,
    inv: &Invitation,
    account: &accounts::NewAccount,
    credentials: &accounts::NewCredentials,
    confirm: Option<&accounts::ConfirmCode>,
    now: i64,
) -> Result<UserId, AccountError> {
    let mut tx = db.begin_write().await?;
    let user = accounts::create_member(&mut tx, account, credentials, confirm, now).await?;
    spend(&mut tx, inv, &user, now).await?;
    tx.commit().await?;
    Ok(user)
}

/// Revokes a pending invitation of `patient` (the id alone is not enough).
pub async fn revoke_invitation<'e, E>(
    exec: E,
    id: &InvitationId,
    patient: &PatientId,
    now: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query(
        "UPDATE guarantor_invitations SET revoked_at = $1
         WHERE id = $2 AND patient_id = $3 AND revoked_at IS NULL AND used_at IS NULL",
    )
    .bind(now)
    .bind(id.as_str())
    .bind(patient.as_str())
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A guarantor's active grant over one patient.
#[derive(Clone, Debug)]
pub struct GuarantorGrant {
    pub grant_id: i64,
    pub user_id: UserId,
    pub email: Phi<String>,
    pub tenant_id: TenantId,
    pub patient_id: PatientId,
    pub since: i64,
}

/// The active guarantors of the patient the permit names (their emails are opened).
pub async fn guarantors_of(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Vec<GuarantorGrant>, AccountError> {
    grants_of(db, crypto, permit, Role::Guarantor).await
}

/// The own account of the patient the permit names, if they made one (its email is opened).
pub async fn patient_account(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Option<GuarantorGrant>, AccountError> {
    Ok(grants_of(db, crypto, permit, Role::Patient)
        .await?
        .into_iter()
        .next())
}

/// Whether the patient made an account of their own (nothing about it is read).
pub async fn has_account(db: &Db, patient: &PatientId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM user_grants
         WHERE patient_id = $1 AND role = 'patient' AND revoked_at IS NULL",
    )
    .bind(patient.as_str())
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

/// Whether an account holds any active grant besides being this one patient: a guarantor grant,
/// or another patient's (nothing about them is read).
pub async fn holds_grants_beyond(
    db: &Db,
    user: &UserId,
    patient: &PatientId,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM user_grants
         WHERE user_id = $1 AND revoked_at IS NULL
           AND NOT (role = 'patient' AND COALESCE(patient_id, '') = $2)",
    )
    .bind(user.as_str())
    .bind(patient.as_str())
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

async fn grants_of(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
    role: Role,
) -> Result<Vec<GuarantorGrant>, AccountError> {
    let patient = permit
        .patient()
        .ok_or(AccountError::Bad("permit names no patient"))?;
    if !matches!(
        permit.action(),
        Action::InviteGuarantor | Action::RevokeGuarantor | Action::ViewItemisedStatement
    ) {
        return Err(AccountError::Bad("permit does not cover guarantors"));
    }
    let rows: Vec<(i64, String, Vec<u8>, String, i64)> = sqlx::query_as(
        "SELECT g.id, u.id, u.email_ct, g.tenant_id, g.created_at FROM user_grants g
         JOIN users u ON u.id = g.user_id
         WHERE g.patient_id = $1 AND g.role = $2 AND g.revoked_at IS NULL AND g.tenant_id = $3
         ORDER BY g.id",
    )
    .bind(patient.as_str())
    .bind(role.as_str())
    .bind(permit.tenant().as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (g, u, email_ct, t, at) in rows {
        let user_id = UserId::from_db(u);
        out.push(GuarantorGrant {
            grant_id: g,
            email: accounts::open_email(crypto, &user_id, &email_ct).await?,
            user_id,
            tenant_id: TenantId::from_db(t),
            patient_id: patient.clone(),
            since: at,
        });
    }
    Ok(out)
}

/// Pending (unused, unrevoked, unexpired) invitations for a patient: (id, expires at).
pub async fn pending_invitations(
    db: &Db,
    patient: &PatientId,
    now: i64,
) -> Result<Vec<(InvitationId, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id, expires_at FROM guarantor_invitations
         WHERE patient_id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
         ORDER BY created_at",
    )
    .bind(patient.as_str())
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, exp)| (InvitationId::from_db(id), exp))
        .collect())
}

/// Revokes one guarantor grant over `patient` (or, for the practice, the patient's own account
/// grant). The holder loses access at their next request (grants are re-read on every request).
/// Returns the holder's account when something changed.
pub async fn revoke_grant<'e, E>(
    exec: E,
    grant_id: i64,
    patient: &PatientId,
    include_patient_account: bool,
    by: &str,
    now: i64,
) -> Result<Option<UserId>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let user: Option<String> = sqlx::query_scalar(
        "UPDATE user_grants SET revoked_at = $1, revoked_by = $2
         WHERE id = $3 AND patient_id = $4 AND revoked_at IS NULL
           AND (role = 'guarantor' OR ($5 = 1 AND role = 'patient'))
         RETURNING user_id",
    )
    .bind(now)
    .bind(by)
    .bind(grant_id)
    .bind(patient.as_str())
    .bind(i64::from(include_patient_account))
    .fetch_optional(exec)
    .await?;
    Ok(user.map(UserId::from_db))
}

/// The practice and patient an active guarantor grant covers (with `include_patient_account`,
/// a patient's own account grant too); `None` for an unknown, revoked or other grant.
pub async fn grant_subject(
    db: &Db,
    grant: i64,
    include_patient_account: bool,
) -> Result<Option<(TenantId, PatientId)>, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT tenant_id, patient_id FROM user_grants
         WHERE id = $1 AND revoked_at IS NULL AND patient_id IS NOT NULL
           AND (role = 'guarantor' OR ($2 = 1 AND role = 'patient'))",
    )
    .bind(grant)
    .bind(i64::from(include_patient_account))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(t, p)| (TenantId::from_db(t), PatientId::from_db(p))))
}

/// True when someone born on `dob_iso` is 18 or older on the day `now` falls in (UTC).
pub fn is_adult(dob_iso: &str, now: i64) -> bool {
    let Ok(dob) = time::Date::parse(dob_iso, crate::links::ISO_DATE) else {
        // An unreadable birth date hides clinical detail: the safe side.
        return true;
    };
    let Ok(today) = time::OffsetDateTime::from_unix_timestamp(now).map(|t| t.date()) else {
        return true;
    };
    let mut age = today.year() - dob.year();
    if (today.month() as u8, today.day()) < (dob.month() as u8, dob.day()) {
        age -= 1;
    }
    age >= 18
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str) -> i64 {
        time::Date::parse(date, crate::links::ISO_DATE)
            .expect("date")
            .midnight()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn turning_eighteen() {
        assert!(!is_adult("2008-11-26", at("2026-11-25")));
        assert!(is_adult("2008-11-25", at("2026-11-25")));
        assert!(is_adult("2008-11-24", at("2026-11-25")));
        // Born on 29 February: adult on 1 March in a common year.
        assert!(!is_adult("2008-02-29", at("2026-02-28")));
        assert!(is_adult("2008-02-29", at("2026-03-01")));
        assert!(is_adult("not a date", 0), "unreadable dates hide detail");
    }

    #[test]
    fn invitation_states() {
        let mut i = Invitation {
            id: InvitationId::generate(),
            tenant_id: TenantId::generate(),
            patient_id: PatientId::generate(),
            expires_at: 100,
            locked_at: None,
            used_at: None,
            revoked_at: None,
        };
        assert_eq!(i.state(99), LinkState::Usable);
        assert_eq!(i.state(100), LinkState::Dead);
        i.locked_at = Some(1);
        assert_eq!(i.state(99), LinkState::Locked);
        i.used_at = Some(1);
        assert_eq!(i.state(99), LinkState::Dead);
    }
}
