//! The outbox (issue 13): every text and email the portal sends is first a row here, sealed and
//! written in the same transaction as what caused it (`seal` before the transaction, `queue`
//! inside it), then delivered by the worker (`worker`) through a provider (`providers`).

pub mod choice;
pub mod consent;
pub mod inbound;
pub mod keywords;
pub mod pay_link;
pub mod providers;
pub mod quiet;
pub mod reminders;
pub mod smtp;
pub mod staff;
pub mod template;
pub mod texts;
pub mod twilio;
pub mod twilio_signature;
pub mod wording;
pub mod worker;
mod zones_data;

use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::ids::{PatientId, StatementId, TenantId};
use crate::intake::Language;
use crate::phi::Phi;

/// The outbox table (also what message ciphertexts are bound to).
pub const TABLE: &str = "outbox";
/// Blind-index domain of a text's recipient: the same as `patients.phone_bidx`, so a patient's
/// messages and the number's consent are found by the index the patient already has.
pub const BIDX_PHONE: &str = "phone";

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// Why it is sent, which decides what it needs: a billing text needs the number's consent; an
/// account message goes to the account's own confirmed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Billing,
    Account,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Billing => "billing",
            Purpose::Account => "account",
        }
    }
}

/// A message id: `msg_` and 128 random bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    pub fn generate() -> Self {
        MessageId(format!("msg_{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn from_db(s: String) -> Self {
        MessageId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message to queue, before sealing.
pub struct Outgoing {
    pub tenant: TenantId,
    pub channel: Channel,
    pub purpose: Purpose,
    /// The template's name (`pay-link`, `reset-code`, …): which text it is, for the console.
    pub template: &'static str,
    pub language: Language,
    /// An E.164 number or an email address.
    pub to: Phi<String>,
    /// The recipient's blind index under the tenant's index key (see `BIDX_PHONE`).
    pub to_index: Vec<u8>,
    pub subject: Option<Phi<String>>,
    pub body: Phi<String>,
    /// The recipient's US time zone (IANA name) for quiet hours; `None` for unknown.
    pub zone: Option<&'static str>,
    pub patient: Option<PatientId>,
    pub statement: Option<StatementId>,
    /// Not before this time (quiet hours already applied by the caller for texts).
    pub not_before: i64,
}

/// A message sealed for its row: made before the write transaction opens (sealing may create
/// the tenant's data key, which is a write of its own).
pub struct Sealed {
    id: MessageId,
    message: Outgoing,
    recipient_ct: Vec<u8>,
    subject_ct: Option<Vec<u8>>,
    body_ct: Vec<u8>,
    /// `suppressed` instead of `queued`: recorded, never sent.
    suppressed: bool,
}

impl Sealed {
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// Recorded but not to be sent (no consent for it).
    pub fn suppress(mut self) -> Self {
        self.suppressed = true;
        self
    }
}

/// Where a message column's ciphertext is bound: its tenant, the outbox, its row.
pub fn aad<'a>(tenant: &'a TenantId, id: &'a str, column: &'static str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: TABLE,
        column,
        row: id,
    }
}

/// Seals a message's recipient, subject and body for its row.
pub async fn seal(crypto: &FieldCrypto, message: Outgoing) -> Result<Sealed, MessageError> {
    let id = MessageId::generate();
    let t = &message.tenant;
    let recipient_ct = crypto
        .encrypt_str(aad(t, id.as_str(), "recipient"), &message.to)
        .await?;
    let subject_ct = match &message.subject {
        Some(s) => Some(
            crypto
                .encrypt_str(aad(t, id.as_str(), "subject"), s)
                .await?,
        ),
        None => None,
    };
    let body_ct = crypto
        .encrypt_str(aad(t, id.as_str(), "body"), &message.body)
        .await?;
    Ok(Sealed {
        id,
        message,
        recipient_ct,
        subject_ct,
        body_ct,
        suppressed: false,
    })
}

/// Writes a sealed message in the caller's transaction: it goes out only if that commits.
pub async fn queue(
    conn: &mut sqlx::AnyConnection,
    sealed: &Sealed,
    now: i64,
) -> Result<(), MessageError> {
    queue_many(conn, std::slice::from_ref(sealed), now).await
}

/// Rows per multi-row insert (16 values each), in a few sizes only (`db::fixed_chunks`).
const ROWS_PER_INSERT: &[usize] = &[32, 8, 1];
const COLUMNS: usize = 16;

/// Writes sealed messages in the caller's transaction, several rows per statement.
pub async fn queue_many(
    conn: &mut sqlx::AnyConnection,
    sealed: &[Sealed],
    now: i64,
) -> Result<(), MessageError> {
    for chunk in crate::db::fixed_chunks(sealed, ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO outbox (id, tenant_id, channel, purpose, template, language, recipient_ct,
                 recipient_bidx, subject_ct, body_ct, zone, patient_id, statement_id, state,
                 next_attempt_at, created_at, attempts) VALUES ",
        );
        let mut p = crate::db::Params::of(conn);
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            sql.push_str(&p.list(COLUMNS));
            sql.push_str(", 0)");
        }
        let mut q = sqlx::query(&sql);
        for s in chunk {
            let m = &s.message;
            q = q
                .bind(s.id.as_str())
                .bind(m.tenant.as_str())
                .bind(m.channel.as_str())
                .bind(m.purpose.as_str())
                .bind(m.template)
                .bind(m.language.code())
                .bind(s.recipient_ct.as_slice())
                .bind(m.to_index.as_slice())
                .bind(s.subject_ct.as_deref())
                .bind(s.body_ct.as_slice())
                .bind(m.zone)
                .bind(m.patient.as_ref().map(|p| p.as_str()))
                .bind(m.statement.as_ref().map(|s| s.as_str()))
                .bind(if s.suppressed { "suppressed" } else { "queued" })
                .bind(m.not_before.max(now))
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Which of `numbers` (recipient blind indexes) `tenant` has texted before (anything queued or
/// sent): the first text to a number says how to opt out and get help.
pub async fn texted_before(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    numbers: &[&[u8]],
) -> Result<std::collections::HashSet<Vec<u8>>, MessageError> {
    let mut out = std::collections::HashSet::new();
    for chunk in numbers.chunks(256) {
        let mut p = crate::db::Params::of(conn);
        let sql = format!(
            "SELECT DISTINCT recipient_bidx FROM outbox
             WHERE tenant_id = {} AND channel = 'sms' AND state <> 'suppressed'
               AND recipient_bidx IN ({})",
            p.one(),
            p.list(chunk.len())
        );
        // Not kept prepared: a statement per list length would fill the connection's cache.
        let mut q = sqlx::query_scalar::<_, Vec<u8>>(&sql)
            .persistent(false)
            .bind(tenant.as_str());
        for n in chunk {
            q = q.bind(*n);
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// The link a text carries: the portal's own domain, never a shortener.
pub fn pay_link_url(public_url: &str, token: &str) -> String {
    format!("{}/p/{token}", public_url.trim_end_matches('/'))
}
