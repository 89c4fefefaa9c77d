//! Billing: practices, patients and itemised statements, imported encrypted; balances derived
//! from the ledger.

use crate::access::{Action, Permit};
use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{LineId, PatientId, StatementId, TenantId};
use crate::money::Money;
use crate::phi::Phi;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("invalid import: {0}")]
    Invalid(&'static str),
    /// A reader was handed a permit for another record or action: a bug, refused before any
    /// decryption.
    #[error("permit does not cover this read")]
    NotPermitted,
}

/// The permit must be for this patient of this practice and one of `actions`.
fn check(
    permit: &Permit,
    tenant: &TenantId,
    patient: &PatientId,
    actions: &[Action],
) -> Result<(), BillingError> {
    if permit.covers_patient(tenant, patient) && actions.contains(&permit.action()) {
        Ok(())
    } else {
        Err(BillingError::NotPermitted)
    }
}

/// Actions under which a statement's lines may be read (descriptions are then shown or hidden
/// line by line by the policy).
const LINE_READERS: &[Action] = &[Action::ViewItemisedStatement, Action::ViewStatementAmounts];
/// Actions under which a patient's name may be read.
const NAME_READERS: &[Action] = &[
    Action::ViewBalance,
    Action::ViewItemisedStatement,
    Action::ViewStatementAmounts,
    Action::ViewReceipt,
    Action::SearchPatients,
    Action::InviteGuarantor,
    Action::RevokeGuarantor,
];

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub support_phone: String,
}

/// A patient as a practice's system hands it to us, before encryption.
#[derive(Clone, Debug)]
pub struct NewPatient {
    pub first_name: Phi<String>,
    pub last_name: Phi<String>,
    /// ISO `YYYY-MM-DD`.
    pub dob: Phi<String>,
    pub zip: Phi<String>,
    pub phone: Phi<String>,
    pub account_number: Phi<String>,
}

#[derive(Clone, Debug)]
pub struct NewLine {
    pub service_date: Phi<String>,
    pub description: Phi<String>,
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    pub patient_responsibility: Money,
    /// The practice marks this line confidential: a guarantor sees its amounts, never its
    /// description.
    pub confidential: bool,
}

#[derive(Clone, Debug)]
pub struct NewStatement {
    pub statement_date: String,
    pub due_date: String,
    pub lines: Vec<NewLine>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StatementHeader {
    pub id: StatementId,
    pub tenant_id: TenantId,
    pub patient_id: PatientId,
    pub statement_date: String,
    pub due_date: String,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub service_date: Phi<String>,
    pub description: Phi<String>,
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    pub patient_responsibility: Money,
    pub confidential: bool,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: String,
    /// The account that started the checkout (`None` for pay-link payments).
    pub paid_by: Option<crate::ids::UserId>,
    #[sqlx(rename = "amount_cents")]
    pub amount: Money,
    pub card_brand: String,
    pub card_last4: String,
    pub paid_at: i64,
}

const PATIENTS: &str = "patients";
const LINES: &str = "statement_lines";

fn patient_aad<'a>(tenant: &'a TenantId, row: &'a str, column: &'static str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: PATIENTS,
        column,
        row,
    }
}

pub async fn create_tenant(
    db: &Db,
    name: &str,
    support_phone: &str,
) -> Result<TenantId, BillingError> {
    let id = TenantId::generate();
    sqlx::query(
        "INSERT INTO tenants (id, name, support_phone, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(support_phone)
    .bind(crate::clock::now_unix())
    .execute(db.pool())
    .await?;
    Ok(id)
}

pub async fn tenant(db: &Db, id: &TenantId) -> Result<Option<Tenant>, BillingError> {
    Ok(
        sqlx::query_as("SELECT id, name, support_phone FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Stores a patient with every identifying field encrypted under the tenant's data key.
pub async fn import_patient(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    p: &NewPatient,
) -> Result<PatientId, BillingError> {
    if time::Date::parse(p.dob.expose(), crate::links::ISO_DATE).is_err() {
        return Err(BillingError::Invalid("date of birth is not YYYY-MM-DD"));
    }
    let id = PatientId::generate();
    let row = id.as_str();
    // Encrypt first: the provider may need the database, and a write transaction must not wait on it.
    let first = crypto
        .encrypt_str(patient_aad(tenant, row, "first_name"), &p.first_name)
        .await?;
    let last = crypto
        .encrypt_str(patient_aad(tenant, row, "last_name"), &p.last_name)
        .await?;
    let dob = crypto
        .encrypt_str(patient_aad(tenant, row, "dob"), &p.dob)
        .await?;
    let zip = crypto
        .encrypt_str(patient_aad(tenant, row, "zip"), &p.zip)
        .await?;
    let phone = crypto
        .encrypt_str(patient_aad(tenant, row, "phone"), &p.phone)
        .await?;
    let acct = crypto
        .encrypt_str(
            patient_aad(tenant, row, "account_number"),
            &p.account_number,
        )
        .await?;
    let phone_bidx = crypto
        .blind_index(tenant, BIDX_PHONE, &normalize_phone(p.phone.expose()))
        .await?;
    let name_dob_bidx = crypto
        .blind_index(
            tenant,
            BIDX_NAME_DOB,
            &name_dob_key(p.last_name.expose(), p.dob.expose()),
        )
        .await?;
    let account_bidx = crypto
        .blind_index(
            tenant,
            BIDX_ACCOUNT,
            &normalize_account(p.account_number.expose()),
        )
        .await?;
    sqlx::query(
        "INSERT INTO patients (id, tenant_id, first_name_ct, last_name_ct, dob_ct, zip_ct, phone_ct,
             account_number_ct, phone_bidx, name_dob_bidx, account_bidx, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(row)
    .bind(tenant.as_str())
    .bind(first)
    .bind(last)
    .bind(dob)
    .bind(zip)
    .bind(phone)
    .bind(acct)
    .bind(phone_bidx)
    .bind(name_dob_bidx)
    .bind(account_bidx)
    .bind(crate::clock::now_unix())
    .execute(db.pool())
    .await?;
    Ok(id)
}

const BIDX_PHONE: &str = "phone";
const BIDX_NAME_DOB: &str = "last-name+dob";
const BIDX_ACCOUNT: &str = "account-number";

/// A phone number as E.164 (`+15550100001`); US numbers may be typed with or without the 1.
pub fn normalize_phone(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        10 => format!("+1{digits}"),
        _ => format!("+{digits}"),
    }
}

/// A last name for matching: lower case, letters and digits only (`O'Brien-Hart` → `obrienhart`).
pub fn normalize_last_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn name_dob_key(last_name: &str, dob_iso: &str) -> String {
    format!("{}\0{}", normalize_last_name(last_name), dob_iso.trim())
}

/// An account number for matching: upper case, letters and digits only.
pub fn normalize_account(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

async fn find_by_bidx(
    db: &Db,
    tenant: &TenantId,
    column: &'static str,
    bidx: Vec<u8>,
) -> Result<Vec<PatientId>, BillingError> {
    // `column` is one of three constants above, never input.
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM patients WHERE tenant_id = $1 AND {column} = $2 ORDER BY id"
    ))
    .bind(tenant.as_str())
    .bind(bidx)
    .fetch_all(db.pool())
    .await?;
    Ok(ids.into_iter().map(PatientId::from_db).collect())
}

/// Patients of a practice with this phone number (e.g. an inbound STOP), without decrypting anything.
pub async fn find_by_phone(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    phone: &str,
) -> Result<Vec<PatientId>, BillingError> {
    let bidx = crypto
        .blind_index(tenant, BIDX_PHONE, &normalize_phone(phone))
        .await?;
    find_by_bidx(db, tenant, "phone_bidx", bidx).await
}

/// Staff search: last name and date of birth (ISO), exact after normalising.
pub async fn find_by_name_dob(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    last_name: &str,
    dob_iso: &str,
) -> Result<Vec<PatientId>, BillingError> {
    let bidx = crypto
        .blind_index(tenant, BIDX_NAME_DOB, &name_dob_key(last_name, dob_iso))
        .await?;
    find_by_bidx(db, tenant, "name_dob_bidx", bidx).await
}

/// Staff search: account number, exact after normalising.
pub async fn find_by_account(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    account: &str,
) -> Result<Vec<PatientId>, BillingError> {
    let bidx = crypto
        .blind_index(tenant, BIDX_ACCOUNT, &normalize_account(account))
        .await?;
    find_by_bidx(db, tenant, "account_bidx", bidx).await
}

/// Stores a statement, its encrypted lines and one ledger charge per line, atomically.
pub async fn import_statement(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    patient: &PatientId,
    s: &NewStatement,
) -> Result<StatementId, BillingError> {
    for d in [&s.statement_date, &s.due_date] {
        if time::Date::parse(d, crate::links::ISO_DATE).is_err() {
            return Err(BillingError::Invalid("statement dates must be YYYY-MM-DD"));
        }
    }
    if s.lines.is_empty() {
        return Err(BillingError::Invalid("a statement needs at least one line"));
    }
    let mut encrypted = Vec::with_capacity(s.lines.len());
    for line in &s.lines {
        let expected = line
            .charge
            .checked_sub(line.insurance_paid)
            .and_then(|m| m.checked_sub(line.adjustment));
        if expected != Some(line.patient_responsibility) || line.patient_responsibility.cents() < 0
        {
            return Err(BillingError::Invalid(
                "patient responsibility must equal charge minus insurance paid minus adjustment",
            ));
        }
        let id = LineId::generate();
        let sd = crypto
            .encrypt_str(
                FieldAad {
                    tenant,
                    table: LINES,
                    column: "service_date",
                    row: id.as_str(),
                },
                &line.service_date,
            )
            .await?;
        let desc = crypto
            .encrypt_str(
                FieldAad {
                    tenant,
                    table: LINES,
                    column: "description",
                    row: id.as_str(),
                },
                &line.description,
            )
            .await?;
        encrypted.push((id, sd, desc, line));
    }
    let id = StatementId::generate();
    let now = crate::clock::now_unix();
    let mut tx = db.begin_write().await?;
    let owner: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM patients WHERE id = $1")
        .bind(patient.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if owner.as_deref() != Some(tenant.as_str()) {
        return Err(BillingError::Invalid(
            "patient does not belong to this practice",
        ));
    }
    sqlx::query(
        "INSERT INTO statements (id, tenant_id, patient_id, statement_date, due_date, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .bind(&s.statement_date)
    .bind(&s.due_date)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (n, (line_id, sd, desc, line)) in encrypted.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO statement_lines (id, tenant_id, statement_id, line_no, service_date_ct,
                 description_ct, charge_cents, insurance_paid_cents, adjustment_cents, patient_cents,
                 confidential)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(line_id.as_str())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(n as i64 + 1)
        .bind(sd)
        .bind(desc)
        .bind(line.charge.cents())
        .bind(line.insurance_paid.cents())
        .bind(line.adjustment.cents())
        .bind(line.patient_responsibility.cents())
        .bind(i64::from(line.confidential))
        .execute(&mut *tx)
        .await?;
        if line.patient_responsibility.is_positive() {
            sqlx::query(
                "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, line_id, created_at)
                 VALUES ($1, $2, 'charge', $3, $4, $5)",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(line.patient_responsibility.cents())
            .bind(line_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(id)
}

pub async fn statement_header(
    db: &Db,
    id: &StatementId,
) -> Result<Option<StatementHeader>, BillingError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, patient_id, statement_date, due_date FROM statements WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?)
}

/// Balance due: charges minus payments, from the ledger.
pub async fn balance<'e, E>(exec: E, id: &StatementId) -> Result<Money, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let cents: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents ELSE -amount_cents END), 0) AS BIGINT)
         FROM ledger_entries WHERE statement_id = $1",
    )
    .bind(id.as_str())
    .fetch_one(exec)
    .await?;
    Ok(Money::from_cents(cents))
}

/// Which lines of a statement the practice marked confidential, in line order (nothing is
/// decrypted: the policy decides from these which descriptions a guarantor may see).
pub async fn confidential_flags(
    db: &Db,
    header: &StatementHeader,
) -> Result<Vec<bool>, BillingError> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT confidential FROM statement_lines WHERE statement_id = $1 AND tenant_id = $2
         ORDER BY line_no",
    )
    .bind(header.id.as_str())
    .bind(header.tenant_id.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|c| c != 0).collect())
}

/// The decrypted lines of a statement, in order, under a permit to read them.
pub async fn lines(
    db: &Db,
    crypto: &FieldCrypto,
    header: &StatementHeader,
    permit: &Permit,
) -> Result<Vec<Line>, BillingError> {
    check(permit, &header.tenant_id, &header.patient_id, LINE_READERS)?;
    type Row = (String, Vec<u8>, Vec<u8>, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, service_date_ct, description_ct, charge_cents, insurance_paid_cents,
                adjustment_cents, patient_cents, confidential
         FROM statement_lines WHERE statement_id = $1 AND tenant_id = $2 ORDER BY line_no",
    )
    .bind(header.id.as_str())
    .bind(header.tenant_id.as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, sd, desc, charge, ins, adj, pat, confidential) in rows {
        let tenant = &header.tenant_id;
        out.push(Line {
            service_date: crypto
                .decrypt_str(
                    FieldAad {
                        tenant,
                        table: LINES,
                        column: "service_date",
                        row: &id,
                    },
                    &sd,
                )
                .await?,
            description: crypto
                .decrypt_str(
                    FieldAad {
                        tenant,
                        table: LINES,
                        column: "description",
                        row: &id,
                    },
                    &desc,
                )
                .await?,
            charge: Money::from_cents(charge),
            insurance_paid: Money::from_cents(ins),
            adjustment: Money::from_cents(adj),
            patient_responsibility: Money::from_cents(pat),
            confidential: confidential != 0,
        });
    }
    Ok(out)
}

/// The payments booked to a statement, under a permit for its patient (the permit's practice
/// and patient are part of the query, so another patient's statement reads as empty).
pub async fn payments(
    db: &Db,
    statement: &StatementId,
    permit: &Permit,
) -> Result<Vec<PaymentRecord>, BillingError> {
    let patient = permit.patient().ok_or(BillingError::NotPermitted)?;
    Ok(sqlx::query_as(
        "SELECT p.id, c.user_id AS paid_by, a.amount_cents, p.card_brand, p.card_last4, p.paid_at
         FROM payment_allocations a JOIN payments p ON p.id = a.payment_id
         JOIN checkouts c ON c.id = p.checkout_id
         JOIN statements s ON s.id = a.statement_id
         WHERE a.statement_id = $1 AND s.tenant_id = $2 AND s.patient_id = $3
         ORDER BY p.paid_at, p.id",
    )
    .bind(statement.as_str())
    .bind(permit.tenant().as_str())
    .bind(patient.as_str())
    .fetch_all(db.pool())
    .await?)
}

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

/// Every statement of a patient with its balance, newest first.
pub async fn statements_of(
    db: &Db,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<Vec<(StatementHeader, Money)>, BillingError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, statement_date, due_date FROM statements
         WHERE patient_id = $1 AND tenant_id = $2 ORDER BY statement_date DESC, id",
    )
    .bind(patient.as_str())
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, sd, dd) in rows {
        let id = StatementId::from_db(id);
        let balance = balance(db.pool(), &id).await?;
        out.push((
            StatementHeader {
                id,
                tenant_id: tenant.clone(),
                patient_id: patient.clone(),
                statement_date: sd,
                due_date: dd,
            },
            balance,
        ));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize_phone("(555) 010-0001"), "+15550100001");
        assert_eq!(normalize_phone("+1 555 010 0001"), "+15550100001");
        assert_eq!(normalize_last_name(" O'Brien-Hart "), "obrienhart");
        assert_eq!(normalize_last_name("ÁLVAREZ"), "álvarez");
        assert_eq!(normalize_account("rfm-100231 "), "RFM100231");
    }
}
