//! A patient's own choice about billing texts, made on the pay-link pages (issue 13: consent from
//! the patient web form): the number on the practice's record (shown by its last four digits)
//! and whether it gets texts, changed by adding an entry to the consent ledger (source `web`,
//! under the wording the page shows, `WEB_WORDING`). Only with a permit for that patient.

use super::consent::{self, Source, Standing};
use super::{MessageError, BIDX_PHONE};
use crate::access::Permit;
use crate::billing::{normalize_phone, patient_aad};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::phi::Phi;

/// The version of the consent wording the pay-link page shows (`texts-choice-*` in the
/// catalog); change it when that wording changes.
pub const WEB_WORDING: &str = "web-2026-12";

/// A patient's mobile number as the ledger knows it.
pub struct Number {
    e164: Phi<String>,
    bidx: Vec<u8>,
    /// Its last four digits, which the page may show.
    pub last_digits: String,
}

/// The permit's patient's mobile number on the practice's record, if it can take texts.
async fn number_of(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Option<Number>, MessageError> {
    let tenant = permit.tenant();
    let Some(patient) = permit.patient() else {
        return Ok(None);
    };
    let phone_ct: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT phone_ct FROM patients WHERE id = $1 AND tenant_id = $2")
            .bind(patient.as_str())
            .bind(tenant.as_str())
            .fetch_optional(db.pool())
            .await?;
    let Some(phone_ct) = phone_ct else {
        return Ok(None);
    };
    let phone = crypto
        .decrypt_str(patient_aad(tenant, patient.as_str(), "phone"), &phone_ct)
        .await?;
    let e164 = normalize_phone(phone.expose());
    if !e164.starts_with('+') {
        return Ok(None);
    }
    let bidx = crypto.blind_index(tenant, BIDX_PHONE, &e164).await?;
    let digits: Vec<char> = e164.chars().rev().take(4).collect();
    Ok(Some(Number {
        last_digits: digits.into_iter().rev().collect(),
        e164: Phi::new(e164),
        bidx,
    }))
}

/// The patient's number and whether it gets texts from the practice (`None`: no number that
/// can take texts). A number never entered in the ledger gets none until it is.
pub async fn standing(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Option<(Number, bool)>, MessageError> {
    let Some(number) = number_of(db, crypto, permit).await? else {
        return Ok(None);
    };
    let mut conn = db.pool().acquire().await?;
    let on = consent::standing(&mut conn, permit.tenant(), &number.bidx).await?;
    Ok(Some((number, on == Standing::OptedIn)))
}

/// Records the patient's choice: texts on or off for the practice's billing messages. `None`
/// when there is no number to choose for.
pub async fn choose(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
    on: bool,
    now: i64,
) -> Result<Option<Number>, MessageError> {
    let Some(number) = number_of(db, crypto, permit).await? else {
        return Ok(None);
    };
    let entry = consent::seal(
        crypto,
        permit.tenant(),
        &number.e164,
        number.bidx.clone(),
        on,
        WEB_WORDING,
        Source::Web,
        now,
    )
    .await?;
    let mut tx = db.begin_write().await?;
    consent::append(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(Some(number))
}
