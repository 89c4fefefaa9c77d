//! Texting one pay link to a patient (staff's "send a new link"): the patient's number, ZIP and
//! language read from their record, consent checked, quiet hours applied, the text queued in the
//! caller's transaction. (A whole import's texts are queued a batch at a time by
//! `intake::store`.)

use super::consent::{self, Standing};
use super::quiet::{self, Window};
use super::wording::Wording;
use super::{seal, texted_before, texts, Channel, MessageError, Outgoing, Purpose};
use crate::billing::{normalize_phone, patient_aad};
use crate::crypto::FieldCrypto;
use crate::ids::{PatientId, StatementId, TenantId};
use crate::intake::Language;

/// What became of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Texted {
    /// Queued to the number ending in these digits.
    Queued { last_digits: String },
    /// The number opted out of this practice's texts: nothing queued.
    OptedOut,
    /// The patient has no usable mobile number on file.
    NoNumber,
}

/// Which text carries the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A statement's (new) pay link.
    PayLink,
    /// A reminder of a balance still owed (`reminders`).
    Reminder,
}

/// Queues the text of `token`'s link for `statement` to its patient. The tenant's data key must
/// be ready before the transaction (`FieldCrypto::ready_field_key`).
#[allow(clippy::too_many_arguments)]
pub async fn text_pay_link(
    conn: &mut sqlx::AnyConnection,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    statement: &StatementId,
    token: &str,
    public_url: &str,
    kind: Kind,
    now: i64,
) -> Result<Texted, MessageError> {
    // Phone and ZIP ciphertexts, language.
    type Row = (Vec<u8>, Vec<u8>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT phone_ct, zip_ct, language FROM patients WHERE id = $1 AND tenant_id = $2",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((phone_ct, zip_ct, language)) = row else {
        return Ok(Texted::NoNumber);
    };
    let Some(wording) = Wording::load(conn, tenant, public_url).await? else {
        return Ok(Texted::NoNumber);
    };
    let row = patient.as_str();
    let phone = crypto
        .decrypt_str(patient_aad(tenant, row, "phone"), &phone_ct)
        .await?;
    let zip = crypto
        .decrypt_str(patient_aad(tenant, row, "zip"), &zip_ct)
        .await?;
    let e164 = normalize_phone(phone.expose());
    if !e164.starts_with('+') {
        return Ok(Texted::NoNumber);
    }
    let bidx = crypto.blind_index(tenant, super::BIDX_PHONE, &e164).await?;
    match consent::standing(conn, tenant, &bidx).await? {
        Standing::OptedOut => return Ok(Texted::OptedOut),
        Standing::OptedIn => {}
        // A number on the practice's own record, texted at staff's hand: recorded as given by
        // the practice, like an imported one.
        Standing::Unknown => {
            let to = crate::phi::Phi::new(e164.clone());
            let entry = consent::seal(
                crypto,
                tenant,
                &to,
                bidx.clone(),
                true,
                consent::IMPORT_WORDING,
                consent::Source::Staff,
                now,
            )
            .await?;
            consent::append(conn, &entry).await?;
        }
    }
    let language = language
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or(Language::En);
    let first = texted_before(conn, tenant, &[&bidx]).await?.is_empty();
    let (zone, _) = quiet::recipient_zone(Some(zip.expose()), &e164);
    let link = super::pay_link_url(public_url, token);
    let last_digits = e164.chars().rev().take(4).collect::<Vec<_>>();
    let template = match kind {
        Kind::PayLink => texts::PAY_LINK,
        Kind::Reminder => texts::REMINDER,
    };
    let message = Outgoing {
        tenant: tenant.clone(),
        channel: Channel::Sms,
        purpose: Purpose::Billing,
        template,
        language,
        to: crate::phi::Phi::new(e164),
        to_index: bidx,
        subject: None,
        body: wording.text(template, language, &link, first),
        zone: zone.map(|z| z.iana()),
        patient: Some(patient.clone()),
        statement: Some(statement.clone()),
        not_before: quiet::next_allowed(zone, now, Window::default()),
    };
    let sealed = seal(crypto, message).await?;
    super::queue(conn, &sealed, now).await?;
    Ok(Texted::Queued {
        last_digits: last_digits.into_iter().rev().collect(),
    })
}
