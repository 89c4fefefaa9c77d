//! A patient's own details: names under a permit, identity answers compared (never read out)
//! and "is an adult".

use super::*;

/// A patient's first name, for pages that address them or their guarantor: the patient the
/// permit names.
pub async fn first_name(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Phi<String>, BillingError> {
    let tenant = permit.tenant();
    let patient = permit.patient().ok_or(BillingError::NotPermitted)?;
    check(permit, tenant, patient, NAME_READERS)?;
    let ct: Vec<u8> =
        sqlx::query_scalar("SELECT first_name_ct FROM patients WHERE id = $1 AND tenant_id = $2")
            .bind(patient.as_str())
            .bind(tenant.as_str())
            .fetch_one(db.pool())
            .await?;
    Ok(crypto
        .decrypt_str(patient_aad(tenant, patient.as_str(), "first_name"), &ct)
        .await?)
}

/// A patient's full name (staff search results): the patient the permit names.
pub async fn full_name(
    db: &Db,
    crypto: &FieldCrypto,
    permit: &Permit,
) -> Result<Phi<String>, BillingError> {
    let tenant = permit.tenant();
    let patient = permit.patient().ok_or(BillingError::NotPermitted)?;
    check(permit, tenant, patient, NAME_READERS)?;
    let (first, last): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT first_name_ct, last_name_ct FROM patients WHERE id = $1 AND tenant_id = $2",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .fetch_one(db.pool())
    .await?;
    let row = patient.as_str();
    let first = crypto
        .decrypt_str(patient_aad(tenant, row, "first_name"), &first)
        .await?;
    let last = crypto
        .decrypt_str(patient_aad(tenant, row, "last_name"), &last)
        .await?;
    Ok(Phi::new(format!("{} {}", first.expose(), last.expose())))
}

/// The identity answers on file (date of birth, ZIP). Private: callers compare answers or ask
/// whether someone is an adult; no one outside billing reads them.
async fn identity_answers(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<(Phi<String>, Phi<String>), BillingError> {
    let (dob, zip): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT dob_ct, zip_ct FROM patients WHERE id = $1 AND tenant_id = $2")
            .bind(patient.as_str())
            .bind(tenant.as_str())
            .fetch_one(db.pool())
            .await?;
    let row = patient.as_str();
    Ok((
        crypto
            .decrypt_str(patient_aad(tenant, row, "dob"), &dob)
            .await?,
        crypto
            .decrypt_str(patient_aad(tenant, row, "zip"), &zip)
            .await?,
    ))
}

/// Answers given to an identity question, already parsed (`links::parse_dob`,
/// `links::normalize_zip`).
#[derive(Clone, Copy, Debug)]
pub struct Answers<'a> {
    pub dob: Option<&'a str>,
    pub zip: Option<&'a str>,
}

/// Whether the given answers match the patient's on file. Every answer given is compared (in
/// constant time), so timing doesn't say which one was wrong; the values never leave here.
pub async fn answers_match(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    given: Answers<'_>,
) -> Result<bool, BillingError> {
    let (dob, zip) = identity_answers(db, crypto, tenant, patient).await?;
    let zip_on_file = crate::links::normalize_zip(zip.expose()).unwrap_or_default();
    let mut ok = given.dob.is_some() || given.zip.is_some();
    if let Some(d) = given.dob {
        ok &= crate::links::answers_match(d, dob.expose());
    }
    if let Some(z) = given.zip {
        ok &= crate::links::answers_match(z, &zip_on_file);
    }
    Ok(ok)
}

/// True when the patient is 18 or older on the day `now` falls in (UTC).
pub async fn is_adult(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    now: i64,
) -> Result<bool, BillingError> {
    let (dob, _) = identity_answers(db, crypto, tenant, patient).await?;
    Ok(crate::guarantors::is_adult(dob.expose(), now))
}
