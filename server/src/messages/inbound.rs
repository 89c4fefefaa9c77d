//! What comes back from Twilio, once its signature is checked (`http::twilio`): delivery
//! statuses of our texts, and replies. A reply is taken to answer every practice that texted the
//! number: STOP (and the other opt-out words) opts it out of all of them and cancels what is
//! still queued, START opts it back in, HELP is answered with the latest practice's name and
//! phone, and anything else waits for that practice's staff. Each Twilio message is handled once
//! (a replayed webhook finds its row), so each gets one confirmation at most.

use super::consent::{self, Standing};
use super::keywords::{classify, Inbound};
use super::twilio::{InboundMessage, StatusCallback};
use super::{MessageError, BIDX_PHONE};
use crate::crypto::{FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::TenantId;
use crate::intake::Language;
use crate::phi::Phi;

/// Records a delivery status: `delivered` and `failed`/`undelivered` are final, and a late
/// intermediate status never moves a message back. A failure with Twilio error 21610 (the number
/// opted out at Twilio) is also an opt-out in the consent ledger. `false` when no message has
/// that id.
pub async fn record_status(
    db: &Db,
    crypto: &FieldCrypto,
    cb: &StatusCallback,
    now: i64,
) -> Result<bool, MessageError> {
    let known = record_delivery(db, cb).await?;
    let unsubscribed = super::twilio::ERROR_UNSUBSCRIBED_RECIPIENT.to_string();
    if known && cb.error_code.as_deref() == Some(unsubscribed.as_str()) {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM outbox WHERE provider_id = $1")
            .bind(&cb.message_sid)
            .fetch_optional(db.pool())
            .await?;
        if let Some(id) = id {
            consent::opt_out_unsubscribed(db, crypto, &super::MessageId::from_db(id), now).await?;
        }
    }
    Ok(known)
}

async fn record_delivery(db: &Db, cb: &StatusCallback) -> Result<bool, MessageError> {
    let state = match cb.status.as_str() {
        "delivered" => Some("delivered"),
        "failed" | "undelivered" => Some("failed"),
        _ => None,
    };
    let error = cb.error_code.as_ref().map(|c| format!("Twilio error {c}"));
    let n = sqlx::query(
        "UPDATE outbox SET delivery_status = $1, state = COALESCE($2, state),
             last_error = COALESCE($3, last_error)
         WHERE provider_id = $4
           AND (state = 'sent' OR ($2 IS NOT NULL AND state IN ('delivered', 'failed')))",
    )
    .bind(&cb.status)
    .bind(state)
    .bind(error)
    .bind(&cb.message_sid)
    .execute(db.pool())
    .await?
    .rows_affected();
    if n == 0 {
        let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE provider_id = $1")
            .bind(&cb.message_sid)
            .fetch_one(db.pool())
            .await?;
        return Ok(known > 0);
    }
    Ok(true)
}

/// One practice that texted the number: its index of the number, its name and phone, when it
/// last texted, and in which language.
struct Sender {
    tenant: TenantId,
    bidx: Vec<u8>,
    name: String,
    phone: String,
    last: i64,
    language: Language,
}

/// Every practice that has texted `e164`, latest first.
async fn senders(db: &Db, crypto: &FieldCrypto, e164: &str) -> Result<Vec<Sender>, MessageError> {
    let tenants: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT t.id, t.name, t.support_phone FROM outbox o
         JOIN tenants t ON t.id = o.tenant_id WHERE o.channel = 'sms'",
    )
    .fetch_all(db.pool())
    .await?;
    let mut out = vec![];
    for (id, name, phone) in tenants {
        let tenant = TenantId::from_db(id);
        let bidx = crypto.blind_index(&tenant, BIDX_PHONE, e164).await?;
        let last: Option<(i64, String)> = sqlx::query_as(
            "SELECT created_at, language FROM outbox
             WHERE tenant_id = $1 AND recipient_bidx = $2 AND channel = 'sms'
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(bidx.as_slice())
        .fetch_optional(db.pool())
        .await?;
        if let Some((last, language)) = last {
            out.push(Sender {
                tenant,
                bidx,
                name,
                phone,
                last,
                language: if language == "es" {
                    Language::Es
                } else {
                    Language::En
                },
            });
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.last));
    Ok(out)
}

fn aad<'a>(tenant: &'a TenantId, id: &'a str, column: &'static str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "inbound_messages",
        column,
        row: id,
    }
}

/// Handles a reply; the text to answer with, if any.
pub async fn handle(
    db: &Db,
    crypto: &FieldCrypto,
    msg: &InboundMessage,
    now: i64,
) -> Result<Option<String>, MessageError> {
    let seen: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages WHERE message_sid = $1")
            .bind(&msg.message_sid)
            .fetch_one(db.pool())
            .await?;
    if seen > 0 {
        return Ok(None);
    }
    let e164 = crate::billing::normalize_phone(&msg.from);
    let senders = senders(db, crypto, &e164).await?;
    // No practice of ours texted this number: nothing to record it under, nothing to say.
    let Some(latest) = senders.first() else {
        return Ok(None);
    };
    let kind = classify(&msg.body);
    let from = Phi::new(e164.clone());
    // Everything sealed before the transaction opens.
    let id = format!("inb_{}", uuid::Uuid::new_v4().simple());
    let from_ct = crypto
        .encrypt_str(aad(&latest.tenant, &id, "from"), &from)
        .await?;
    let body_ct = crypto
        .encrypt_str(
            aad(&latest.tenant, &id, "body"),
            &Phi::new(msg.body.clone()),
        )
        .await?;
    let mut entries = vec![];
    let mut tx = db.begin_write().await?;
    for s in &senders {
        let standing = consent::standing(&mut tx, &s.tenant, &s.bidx).await?;
        let change = match kind {
            Inbound::OptOut if standing != Standing::OptedOut => Some(false),
            Inbound::OptIn if standing == Standing::OptedOut => Some(true),
            _ => None,
        };
        if let Some(opted_in) = change {
            entries.push((s, opted_in));
        }
    }
    // Sealing may not write while the transaction is open on SQLite: the practices' keys exist
    // (they texted the number), so this only encrypts.
    for (s, opted_in) in &entries {
        let entry = consent::seal(
            crypto,
            &s.tenant,
            &from,
            s.bidx.clone(),
            *opted_in,
            consent::KEYWORD_WORDING,
            consent::Source::Keyword,
            now,
        )
        .await?;
        consent::append(&mut tx, &entry).await?;
        if !opted_in {
            // What is still waiting to go to the number is not sent.
            sqlx::query(
                "UPDATE outbox SET state = 'suppressed', last_error = 'opted out'
                 WHERE tenant_id = $1 AND recipient_bidx = $2 AND state = 'queued'
                   AND purpose = 'billing'",
            )
            .bind(s.tenant.as_str())
            .bind(s.bidx.as_slice())
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query(
        "INSERT INTO inbound_messages (id, tenant_id, message_sid, from_ct, from_bidx, body_ct,
             kind, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(latest.tenant.as_str())
    .bind(&msg.message_sid)
    .bind(from_ct)
    .bind(latest.bidx.as_slice())
    .bind(body_ct)
    .bind(match kind {
        Inbound::OptOut => "opt_out",
        Inbound::OptIn => "opt_in",
        Inbound::Help => "help",
        Inbound::Other => "other",
    })
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(super::texts::reply(
        kind,
        latest.language,
        &latest.name,
        &latest.phone,
    ))
}
