//! The text-message consent ledger (A2P 10DLC), per number and practice: entries are only
//! added, and a number's standing is its latest entry. A billing text goes only to a number whose
//! standing is opted in; an opt-out (a STOP reply, staff) holds until the number opts back in.

use super::MessageError;
use crate::crypto::{FieldAad, FieldCrypto};
use crate::ids::TenantId;
use crate::phi::Phi;
use std::collections::HashMap;

/// The wording a number is taken to have agreed to when a practice sends it in with a statement:
/// the practice attests the patient gave it this number for billing messages about their care.
pub const IMPORT_WORDING: &str = "import-2026-12";
/// The wording of an opt-out or opt-in by keyword reply.
pub const KEYWORD_WORDING: &str = "keyword-2026-12";
/// The wording of an opt-out the provider reported (Twilio error 21610: the number replied STOP
/// to the messaging service, which keeps its own list).
pub const PROVIDER_OPT_OUT_WORDING: &str = "twilio-21610";

/// Where an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Import,
    Web,
    Keyword,
    Staff,
    /// Reported by the text provider (Twilio error 21610).
    Provider,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Import => "import",
            Source::Web => "web",
            Source::Keyword => "keyword",
            Source::Staff => "staff",
            Source::Provider => "provider",
        }
    }
}

/// A number's standing with one practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    OptedIn,
    OptedOut,
    /// No entry yet.
    Unknown,
}

impl Standing {
    fn parse(s: &str) -> Standing {
        match s {
            "opted_in" => Standing::OptedIn,
            "opted_out" => Standing::OptedOut,
            _ => Standing::Unknown,
        }
    }
}

/// One ledger entry, sealed for its row (before the caller's transaction).
pub struct Entry {
    id: String,
    tenant: TenantId,
    phone_ct: Vec<u8>,
    phone_bidx: Vec<u8>,
    opted_in: bool,
    wording: &'static str,
    source: Source,
    at: i64,
}

fn aad<'a>(tenant: &'a TenantId, id: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "sms_consents",
        column: "phone",
        row: id,
    }
}

/// Seals an entry for `phone` (E.164), whose index under the practice's key is `phone_bidx`.
#[allow(clippy::too_many_arguments)]
pub async fn seal(
    crypto: &FieldCrypto,
    tenant: &TenantId,
    phone: &Phi<String>,
    phone_bidx: Vec<u8>,
    opted_in: bool,
    wording: &'static str,
    source: Source,
    at: i64,
) -> Result<Entry, MessageError> {
    let id = format!("cns_{}", uuid::Uuid::new_v4().simple());
    let phone_ct = crypto.encrypt_str(aad(tenant, &id), phone).await?;
    Ok(Entry {
        id,
        tenant: tenant.clone(),
        phone_ct,
        phone_bidx,
        opted_in,
        wording,
        source,
        at,
    })
}

/// Adds an entry in the caller's transaction; it follows every earlier entry of the number.
pub async fn append(conn: &mut sqlx::AnyConnection, e: &Entry) -> Result<(), MessageError> {
    sqlx::query(
        "INSERT INTO sms_consents (id, tenant_id, phone_ct, phone_bidx, state, wording_version,
             source, at, seq)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, COALESCE(MAX(seq), 0) + 1
         FROM sms_consents WHERE tenant_id = $2 AND phone_bidx = $4",
    )
    .bind(&e.id)
    .bind(e.tenant.as_str())
    .bind(e.phone_ct.as_slice())
    .bind(e.phone_bidx.as_slice())
    .bind(if e.opted_in { "opted_in" } else { "opted_out" })
    .bind(e.wording)
    .bind(e.source.as_str())
    .bind(e.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds the first entry of each of several numbers (none has one yet: the caller read their
/// standings as unknown in this transaction), several rows per statement.
pub async fn append_first(
    conn: &mut sqlx::AnyConnection,
    entries: &[Entry],
) -> Result<(), MessageError> {
    for chunk in crate::db::fixed_chunks(entries, &[32, 8, 1]) {
        let mut sql = String::from(
            "INSERT INTO sms_consents (id, tenant_id, phone_ct, phone_bidx, state,
                 wording_version, source, at, seq) VALUES ",
        );
        let mut p = crate::db::Params::of(conn);
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            sql.push_str(&p.list(8));
            sql.push_str(", 1)");
        }
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(&e.id)
                .bind(e.tenant.as_str())
                .bind(e.phone_ct.as_slice())
                .bind(e.phone_bidx.as_slice())
                .bind(if e.opted_in { "opted_in" } else { "opted_out" })
                .bind(e.wording)
                .bind(e.source.as_str())
                .bind(e.at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The standing of each of `phones` (blind indexes) with `tenant`.
pub async fn standings(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    phones: &[&[u8]],
) -> Result<HashMap<Vec<u8>, Standing>, MessageError> {
    let mut out = HashMap::with_capacity(phones.len());
    for chunk in phones.chunks(256) {
        let mut p = crate::db::Params::of(conn);
        let sql = format!(
            "SELECT phone_bidx, state FROM sms_consents
             WHERE tenant_id = {} AND phone_bidx IN ({}) ORDER BY at, seq",
            p.one(),
            p.list(chunk.len())
        );
        // Not kept prepared: a statement per list length would fill the connection's cache.
        let mut q = sqlx::query_as::<_, (Vec<u8>, String)>(&sql)
            .persistent(false)
            .bind(tenant.as_str());
        for p in chunk {
            q = q.bind(*p);
        }
        // In ledger order: the latest entry of each number wins.
        for (bidx, state) in q.fetch_all(&mut *conn).await? {
            out.insert(bidx, Standing::parse(&state));
        }
    }
    for p in phones {
        out.entry(p.to_vec()).or_insert(Standing::Unknown);
    }
    Ok(out)
}

/// The standing of one number.
pub async fn standing(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    phone_bidx: &[u8],
) -> Result<Standing, MessageError> {
    Ok(standings(conn, tenant, &[phone_bidx])
        .await?
        .remove(phone_bidx)
        .unwrap_or(Standing::Unknown))
}

/// A text refused because its number opted out at the provider (Twilio error 21610, at send or
/// in a status callback) is recorded as an opt-out of the practice that sent it, so the ledger
/// agrees with the provider and no billing text is queued for the number again. `false` when
/// the message is not a text or the number is already opted out.
pub async fn opt_out_unsubscribed(
    db: &crate::db::Db,
    crypto: &FieldCrypto,
    message: &super::MessageId,
    now: i64,
) -> Result<bool, MessageError> {
    let row: Option<(String, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT tenant_id, channel, recipient_ct, recipient_bidx FROM outbox WHERE id = $1",
    )
    .bind(message.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some((tenant, channel, phone_ct, bidx)) = row else {
        return Ok(false);
    };
    if channel != super::Channel::Sms.as_str() {
        return Ok(false);
    }
    let tenant = TenantId::from_db(tenant);
    let mut conn = db.pool().acquire().await?;
    if standing(&mut conn, &tenant, &bidx).await? == Standing::OptedOut {
        return Ok(false);
    }
    drop(conn);
    let phone = crypto
        .decrypt_str(
            super::aad(&tenant, message.as_str(), "recipient"),
            &phone_ct,
        )
        .await?;
    let entry = seal(
        crypto,
        &tenant,
        &phone,
        bidx,
        false,
        PROVIDER_OPT_OUT_WORDING,
        Source::Provider,
        now,
    )
    .await?;
    let mut tx = db.begin_write().await?;
    append(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(true)
}
