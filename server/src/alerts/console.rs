//! What the security officer's alert console reads and changes: a practice's alerts (the
//! platform's officers see every alert), acknowledging one, and notes on one. Every function
//! takes a `RunIncidentConsole` permit and touches only its practice's alerts. A note may name a
//! patient, so it is sealed like PHI under the permit's practice.

use crate::access::{Action, Permit};
use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{AlertNoteId, TenantId, UserId};
use crate::phi::Phi;

/// Alerts shown at most, newest first.
pub const LIMIT: i64 = 100;
/// A note's longest length, in characters.
pub const NOTE_MAX: usize = 2000;
const TABLE: &str = "alert_notes";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The permit is for another action.
    #[error("not permitted")]
    NotPermitted,
}

/// One alert as the console shows it.
#[derive(Debug)]
pub struct AlertLine {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub detail: String,
    /// The practice it concerns; `None` for the platform's own.
    pub tenant: Option<TenantId>,
    pub acknowledged: Option<(i64, Option<UserId>)>,
    pub notes: Vec<Note>,
}

#[derive(Debug)]
pub struct Note {
    pub at: i64,
    pub author: Option<UserId>,
    pub text: Phi<String>,
}

fn check(permit: &Permit) -> Result<(), ConsoleError> {
    if permit.action() == Action::RunIncidentConsole {
        Ok(())
    } else {
        Err(ConsoleError::NotPermitted)
    }
}

fn is_platform(t: &TenantId) -> bool {
    t == crate::accounts::platform()
}

/// `WHERE` for the permit's alerts: its practice's, or (the platform's permit) all.
fn scope(permit: &Permit) -> &'static str {
    if is_platform(permit.tenant()) {
        "($1 = $1)"
    } else {
        "tenant_id = $1"
    }
}

fn aad<'a>(tenant: &'a TenantId, id: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: TABLE,
        column: "note",
        row: id,
    }
}

type AlertRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
);
type NoteRow = (String, i64, Option<String>, String, Vec<u8>);

/// The permit's alerts, open ones first (so none falls past the limit behind acknowledged
/// ones), newest first within each, with their notes (oldest first).
pub async fn list(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Vec<AlertLine>, ConsoleError> {
    check(permit)?;
    let q = format!(
        "SELECT id, at, kind, detail, tenant_id, acknowledged_at, acknowledged_by FROM alerts
         WHERE {}
         ORDER BY CASE WHEN acknowledged_at IS NULL THEN 0 ELSE 1 END, at DESC, id DESC
         LIMIT {LIMIT}",
        scope(permit)
    );
    let rows: Vec<AlertRow> = sqlx::query_as(&q)
        .bind(permit.tenant().as_str())
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, at, kind, detail, tenant, ack_at, ack_by) in rows {
        let notes: Vec<NoteRow> = sqlx::query_as(
            "SELECT id, at, author, tenant_id, note_ct FROM alert_notes
             WHERE alert_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(db.pool())
        .await?;
        let mut opened = vec![];
        for (nid, nat, author, ntenant, ct) in notes {
            // A practice's officer reads the notes written in its console; the platform's, all.
            let ntenant = TenantId::from_db(ntenant);
            if !is_platform(permit.tenant()) && &ntenant != permit.tenant() {
                continue;
            }
            opened.push(Note {
                at: nat,
                author: author.map(UserId::from_db),
                text: crypto.decrypt_str(aad(&ntenant, &nid), &ct).await?,
            });
        }
        out.push(AlertLine {
            id,
            at,
            kind,
            detail,
            tenant: tenant.map(TenantId::from_db),
            acknowledged: ack_at.map(|t| (t, ack_by.map(UserId::from_db))),
            notes: opened,
        });
    }
    Ok(out)
}

/// What acknowledging did.
#[derive(Debug, PartialEq, Eq)]
pub enum Acked {
    Now,
    Already,
    /// No such alert in the permit's scope.
    NotFound,
}

/// Marks one of the permit's alerts acknowledged by `who`, in the permit's transaction.
pub async fn acknowledge(
    tx: &mut crate::db::WriteTx,
    permit: &Permit,
    alert: i64,
    who: &UserId,
    now: i64,
) -> Result<Acked, ConsoleError> {
    check(permit)?;
    let q = format!(
        "UPDATE alerts SET acknowledged_at = $2, acknowledged_by = $3
         WHERE {} AND id = $4 AND acknowledged_at IS NULL",
        scope(permit)
    );
    let done = sqlx::query(&q)
        .bind(permit.tenant().as_str())
        .bind(now)
        .bind(who.as_str())
        .bind(alert)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if done == 1 {
        return Ok(Acked::Now);
    }
    Ok(if exists(tx, permit, alert).await? {
        Acked::Already
    } else {
        Acked::NotFound
    })
}

async fn exists(
    tx: &mut crate::db::WriteTx,
    permit: &Permit,
    alert: i64,
) -> Result<bool, sqlx::Error> {
    let q = format!(
        "SELECT COUNT(*) FROM alerts WHERE {} AND id = $2",
        scope(permit)
    );
    let n: i64 = sqlx::query_scalar(&q)
        .bind(permit.tenant().as_str())
        .bind(alert)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n > 0)
}

/// Adds a note (already checked for length) to one of the permit's alerts; false when there is
/// no such alert in its scope.
pub async fn add_note(
    tx: &mut crate::db::WriteTx,
    crypto: &FieldCrypto,
    permit: &Permit,
    alert: i64,
    who: &UserId,
    text: &Phi<String>,
    now: i64,
) -> Result<bool, ConsoleError> {
    check(permit)?;
    if !exists(tx, permit, alert).await? {
        return Ok(false);
    }
    let id = AlertNoteId::generate();
    let ct = crypto
        .encrypt_str(aad(permit.tenant(), id.as_str()), text)
        .await?;
    sqlx::query(
        "INSERT INTO alert_notes (id, alert_id, tenant_id, author, at, note_ct)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(alert)
    .bind(permit.tenant().as_str())
    .bind(who.as_str())
    .bind(now)
    .bind(ct)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}
