//! Loading a practice's data: practices, patients (encrypted, with blind indexes to find them
//! by) and statements with their lines and charges.

use super::*;

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

/// Every practice (not the platform's own row, which holds accounts' keys): id, name, and
/// whether it offers bank debits (ACH) in checkout.
pub async fn practices(db: &Db) -> Result<Vec<(TenantId, String, bool)>, BillingError> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, name, bank_debit FROM tenants WHERE id <> $1 ORDER BY name, id")
            .bind(crate::accounts::PLATFORM_TENANT)
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, bank)| (TenantId::from_db(id), name, bank != 0))
        .collect())
}

/// Offers (or stops offering) bank debits in a practice's new checkouts; `false` if there is no
/// such practice (the platform is none).
pub async fn set_bank_debit(db: &Db, tenant: &TenantId, on: bool) -> Result<bool, BillingError> {
    let changed = sqlx::query("UPDATE tenants SET bank_debit = $1 WHERE id = $2 AND id <> $3")
        .bind(i64::from(on))
        .bind(tenant.as_str())
        .bind(crate::accounts::PLATFORM_TENANT)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(changed == 1)
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
    let [phone_in, name_dob_in, account_in] = patient_index_inputs(
        p.phone.expose(),
        p.last_name.expose(),
        p.dob.expose(),
        p.account_number.expose(),
    );
    let phone_bidx = crypto.blind_index(tenant, phone_in.0, &phone_in.1).await?;
    let name_dob_bidx = crypto
        .blind_index(tenant, name_dob_in.0, &name_dob_in.1)
        .await?;
    let account_bidx = crypto
        .blind_index(tenant, account_in.0, &account_in.1)
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

/// What a patient's three blind indexes (`phone_bidx`, `name_dob_bidx`, `account_bidx`, in
/// that order) are computed from: each one's domain and normalised input. The one recipe for
/// import and for `keys rotate-index`, which rebuilds them from the decrypted columns.
pub(crate) fn patient_index_inputs(
    phone: &str,
    last_name: &str,
    dob_iso: &str,
    account: &str,
) -> [(&'static str, String); 3] {
    [
        (BIDX_PHONE, normalize_phone(phone)),
        (BIDX_NAME_DOB, name_dob_key(last_name, dob_iso)),
        (BIDX_ACCOUNT, normalize_account(account)),
    ]
}

// One domain for every phone index (patients, messages, consent): `messages::BIDX_PHONE`.
const BIDX_PHONE: &str = crate::messages::BIDX_PHONE;
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

/// A US phone number as staff type it (`(555) 010-2000`, `555-010-2000`, `+1 555 010 2000`,
/// `555.010.2000`) in the form `normalize_phone` gives it, which is what `phone_bidx` was made
/// from; `None` for anything else (letters, other characters, a wrong count of digits), so a
/// typo is refused rather than searched as another number.
pub fn parse_us_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw.strip_prefix('+').unwrap_or(raw);
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        10 if !raw.starts_with('+') => digits.as_str(),
        11 if digits.starts_with('1') => &digits[1..],
        _ => return None,
    };
    // A US area code never starts with 0 or 1.
    if national.starts_with(['0', '1']) {
        return None;
    }
    Some(normalize_phone(national))
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

    #[test]
    fn us_phones_as_typed() {
        for typed in [
            "(555) 010-2000",
            "555-010-2000",
            "+1 555 010 2000",
            "5550102000",
            "1-555-010-2000",
            " 555.010.2000 ",
        ] {
            assert_eq!(
                parse_us_phone(typed).as_deref(),
                Some("+15550102000"),
                "{typed}"
            );
        }
        for bad in [
            "",
            "555-0102",
            "555-010-20000",
            "+44 20 7946 0958",
            "2-555-010-2000",
            "555-010-2OOO",
            "(055) 010-2000",
            "+5550102000",
            "555/010/2000",
        ] {
            assert_eq!(parse_us_phone(bad), None, "{bad}");
        }
        // The form searched is the form the index was built from at import.
        assert_eq!(
            parse_us_phone("(555) 010-0001"),
            Some(normalize_phone("+15550100001"))
        );
    }
}
