//! What staff read of the messages (issue 13): a patient's messages for the support console, a
//! practice's dead letters and its inbox of replies that were no keyword, and marking a reply
//! read. Every reader takes a permit for its action and reads only the permit's practice (and
//! patient). A message's body is never opened here (it carries a pay-link token); its recipient
//! is opened only to be masked.

use super::{aad as outbox_aad, Channel};
use crate::access::{Action, Permit};
use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::TenantId;
use crate::phi::Phi;

/// Messages or replies shown at most, newest first.
pub const LIMIT: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum StaffReadError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The permit is for another action, or names no patient where one is needed.
    #[error("not permitted")]
    NotPermitted,
}

/// One outbox row as staff see it.
#[derive(Debug)]
pub struct MessageLine {
    pub id: String,
    pub created_at: i64,
    pub channel: Channel,
    /// `pay-link`, `reset-code`, …
    pub template: String,
    /// The row's state (`queued` … `suppressed`).
    pub state: String,
    pub next_attempt_at: i64,
    /// The provider's error, or why it was not sent.
    pub last_error: Option<String>,
    /// The last four digits of a number (`…1234`), or an address's first letter and domain.
    pub recipient: String,
}

/// A reply that was no keyword, for the practice's staff.
#[derive(Debug)]
pub struct Reply {
    pub id: String,
    pub received_at: i64,
    /// The number's last four digits.
    pub from: String,
    pub body: Phi<String>,
    pub read_at: Option<i64>,
}

/// `…1234` for a number; `a…@example.org` for an address.
pub fn mask(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Sms => {
            let digits: Vec<char> = to.chars().filter(char::is_ascii_digit).collect();
            let last: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            format!("…{last}")
        }
        Channel::Email => match to.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}…@{domain}")
            }
            None => "…".to_owned(),
        },
    }
}

type OutboxRow = (
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Vec<u8>,
);

const SELECT_OUTBOX: &str = "SELECT id, created_at, channel, template, state, next_attempt_at,
        last_error, recipient_ct FROM outbox";

async fn lines(
    crypto: &FieldCrypto,
    tenant: &TenantId,
    rows: Vec<OutboxRow>,
) -> Result<Vec<MessageLine>, StaffReadError> {
    let mut out = Vec::with_capacity(rows.len());
    for (id, created_at, channel, template, state, next_attempt_at, last_error, to_ct) in rows {
        let channel = Channel::parse(&channel).unwrap_or(Channel::Sms);
        let to = crypto
            .decrypt_str(outbox_aad(tenant, &id, "recipient"), &to_ct)
            .await?;
        out.push(MessageLine {
            recipient: mask(channel, to.expose()),
            id,
            created_at,
            channel,
            template,
            state,
            next_attempt_at,
            last_error,
        });
    }
    Ok(out)
}

/// The permit's patient's messages, newest first (the console's view permit).
pub async fn of_patient(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Vec<MessageLine>, StaffReadError> {
    let patient = permit.patient().ok_or(StaffReadError::NotPermitted)?;
    if permit.action() != Action::ViewBalance {
        return Err(StaffReadError::NotPermitted);
    }
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
        "{SELECT_OUTBOX} WHERE tenant_id = $1 AND patient_id = $2
         ORDER BY created_at DESC, id DESC LIMIT {LIMIT}"
    ))
    .bind(permit.tenant().as_str())
    .bind(patient.as_str())
    .fetch_all(db.pool())
    .await?;
    lines(crypto, permit.tenant(), rows).await
}

fn practice_permit(permit: &Permit, action: Action) -> Result<&TenantId, StaffReadError> {
    if permit.action() != action {
        return Err(StaffReadError::NotPermitted);
    }
    Ok(permit.tenant())
}

/// The practice's messages that will not arrive: given up (`dead`) or failed on the way.
pub async fn dead_letters(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Vec<MessageLine>, StaffReadError> {
    let tenant = practice_permit(permit, Action::ViewMessages)?;
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
        "{SELECT_OUTBOX} WHERE tenant_id = $1 AND state IN ('dead', 'failed')
         ORDER BY created_at DESC, id DESC LIMIT {LIMIT}"
    ))
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    lines(crypto, tenant, rows).await
}

fn inbound_aad<'a>(tenant: &'a TenantId, id: &'a str, column: &'static str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "inbound_messages",
        column,
        row: id,
    }
}

/// The practice's replies that were no keyword, newest first, opened.
pub async fn replies(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Vec<Reply>, StaffReadError> {
    let tenant = practice_permit(permit, Action::ViewMessages)?;
    type Row = (String, i64, Vec<u8>, Vec<u8>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, received_at, from_ct, body_ct, read_at FROM inbound_messages
         WHERE tenant_id = $1 AND kind = 'other'
         ORDER BY received_at DESC, id DESC LIMIT {LIMIT}"
    ))
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, received_at, from_ct, body_ct, read_at) in rows {
        let from = crypto
            .decrypt_str(inbound_aad(tenant, &id, "from"), &from_ct)
            .await?;
        let body = crypto
            .decrypt_str(inbound_aad(tenant, &id, "body"), &body_ct)
            .await?;
        out.push(Reply {
            from: mask(Channel::Sms, from.expose()),
            id,
            received_at,
            body,
            read_at,
        });
    }
    Ok(out)
}

/// What marking a reply read did.
#[derive(Debug, PartialEq, Eq)]
pub enum MarkRead {
    Marked,
    AlreadyRead,
    /// No reply of the permit's practice has that id.
    NotFound,
}

/// Marks one of the practice's replies read, in the caller's transaction (the permit's event
/// commits with it).
pub async fn mark_read(
    conn: &mut sqlx::AnyConnection,
    permit: &Permit,
    id: &str,
    now: i64,
) -> Result<MarkRead, StaffReadError> {
    let tenant = practice_permit(permit, Action::HandleMessages)?;
    let n = sqlx::query(
        "UPDATE inbound_messages SET read_at = $1
         WHERE id = $2 AND tenant_id = $3 AND kind = 'other' AND read_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(tenant.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n > 0 {
        return Ok(MarkRead::Marked);
    }
    let known: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM inbound_messages WHERE id = $1 AND tenant_id = $2 AND kind = 'other'",
    )
    .bind(id)
    .bind(tenant.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(if known > 0 {
        MarkRead::AlreadyRead
    } else {
        MarkRead::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_masked() {
        assert_eq!(mask(Channel::Sms, "+15550101234"), "…1234");
        assert_eq!(mask(Channel::Sms, "12"), "…12");
        assert_eq!(mask(Channel::Email, "avery@example.org"), "a…@example.org");
        assert_eq!(mask(Channel::Email, "nonsense"), "…");
    }
}
