//! Statements: headers, the ledger balance, and their lines and payments under a permit.

use super::*;

/// A statement's balance (`balance`'s rule) as an SQL expression, for the statement whose id is
/// `$id` (a column or a placeholder), so a query can read it beside other columns.
macro_rules! balance_of_statement {
    ($id:literal) => {
        concat!(
            "CAST((SELECT COALESCE(SUM(CASE kind WHEN 'payment' THEN -amount_cents ELSE amount_cents END), 0)
                   FROM ledger_entries WHERE statement_id = ",
            $id,
            ") AS BIGINT)"
        )
    };
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

/// A statement's charges and where they went, summed over its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargeSplit {
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    pub patient_responsibility: Money,
}

/// The sums of a statement's lines (amounts are kept in the clear; only the words are sealed).
pub async fn charge_split(db: &Db, id: &StatementId) -> Result<ChargeSplit, sqlx::Error> {
    let (charge, insurance, adjustment, patient): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(charge_cents), 0) AS BIGINT),
                CAST(COALESCE(SUM(insurance_paid_cents), 0) AS BIGINT),
                CAST(COALESCE(SUM(adjustment_cents), 0) AS BIGINT),
                CAST(COALESCE(SUM(patient_cents), 0) AS BIGINT)
         FROM statement_lines WHERE statement_id = $1",
    )
    .bind(id.as_str())
    .fetch_one(db.pool())
    .await?;
    Ok(ChargeSplit {
        charge: Money::from_cents(charge),
        insurance_paid: Money::from_cents(insurance),
        adjustment: Money::from_cents(adjustment),
        patient_responsibility: Money::from_cents(patient),
    })
}

/// Balance due, from the ledger: charges, less payments (a bank debit still settling counts), plus
/// refunds and reversals (a failed bank debit), which give back what a payment took off.
pub async fn balance<'e, E>(exec: E, id: &StatementId) -> Result<Money, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let cents: i64 = sqlx::query_scalar(concat!("SELECT ", balance_of_statement!("$1")))
        .bind(id.as_str())
        .fetch_one(exec)
        .await?;
    Ok(Money::from_cents(cents))
}

/// Each of `ids`' patient and balance, in `ids`' order, in one read: on the connection of a
/// transaction that has just changed them (a booking). A statement that is not there is an
/// error (`RowNotFound`), as it would be for `balance`'s caller.
pub async fn patients_and_balances(
    conn: &mut sqlx::AnyConnection,
    ids: &[StatementId],
) -> Result<Vec<(StatementId, PatientId, Money)>, sqlx::Error> {
    let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        concat!(
            "SELECT s.id, s.patient_id, ",
            balance_of_statement!("s.id"),
            " FROM statements s WHERE s.id IN ({})"
        ),
        list.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql);
    for id in ids {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(conn).await?;
    ids.iter()
        .map(|id| {
            rows.iter()
                .find(|(s, _, _)| s == id.as_str())
                .map(|(_, patient, cents)| {
                    (
                        id.clone(),
                        PatientId::from_db(patient.clone()),
                        Money::from_cents(*cents),
                    )
                })
                .ok_or(sqlx::Error::RowNotFound)
        })
        .collect()
}

/// A statement's lines as stored: amounts and the practice's confidential marks in the clear,
/// dates of service and descriptions still sealed. Read in one query before the policy decides
/// (the marks are what it decides from); only `open`, with the permit it gave, reads the words.
pub struct SealedLines {
    tenant: TenantId,
    patient: PatientId,
    rows: Vec<SealedLine>,
}

type SealedLine = (String, Vec<u8>, Vec<u8>, i64, i64, i64, i64, i64);

/// The lines of a statement, sealed, in order.
pub async fn sealed_lines(db: &Db, header: &StatementHeader) -> Result<SealedLines, BillingError> {
    let rows: Vec<SealedLine> = sqlx::query_as(
        "SELECT id, service_date_ct, description_ct, charge_cents, insurance_paid_cents,
                adjustment_cents, patient_cents, confidential
         FROM statement_lines WHERE statement_id = $1 AND tenant_id = $2 ORDER BY line_no",
    )
    .bind(header.id.as_str())
    .bind(header.tenant_id.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(SealedLines {
        tenant: header.tenant_id.clone(),
        patient: header.patient_id.clone(),
        rows,
    })
}

impl SealedLines {
    /// Which lines the practice marked confidential, in line order (nothing is decrypted).
    pub fn confidential_flags(&self) -> Vec<bool> {
        self.rows.iter().map(|r| r.7 != 0).collect()
    }

    /// The decrypted lines, under a permit to read them.
    pub async fn open(
        self,
        crypto: &FieldCrypto,
        permit: &Permit,
    ) -> Result<Vec<Line>, BillingError> {
        check(permit, &self.tenant, &self.patient, LINE_READERS)?;
        let tenant = &self.tenant;
        let mut out = Vec::with_capacity(self.rows.len());
        for (id, sd, desc, charge, ins, adj, pat, confidential) in self.rows {
            let aad = |column| FieldAad {
                tenant,
                table: LINES,
                column,
                row: &id,
            };
            out.push(Line {
                service_date: crypto.decrypt_str(aad("service_date"), &sd).await?,
                description: crypto.decrypt_str(aad("description"), &desc).await?,
                charge: Money::from_cents(charge),
                insurance_paid: Money::from_cents(ins),
                adjustment: Money::from_cents(adj),
                patient_responsibility: Money::from_cents(pat),
                confidential: confidential != 0,
            });
        }
        Ok(out)
    }
}

/// The decrypted lines of a statement, in order, under a permit to read them.
pub async fn lines(
    db: &Db,
    crypto: &FieldCrypto,
    header: &StatementHeader,
    permit: &Permit,
) -> Result<Vec<Line>, BillingError> {
    // Refused before anything is read, not only before it is decrypted.
    check(permit, &header.tenant_id, &header.patient_id, LINE_READERS)?;
    sealed_lines(db, header).await?.open(crypto, permit).await
}

/// What a statement's pages show around its lines, in one query: the header, the practice's
/// name and number, the ledger balance (as `balance`) and whether the patient has an account of
/// their own. None of it is PHI; the lines and payments are read under the permit.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StatementFrame {
    #[sqlx(flatten)]
    pub header: StatementHeader,
    pub practice_name: String,
    pub practice_phone: String,
    #[sqlx(rename = "balance_cents")]
    pub balance: Money,
    patient_accounts: i64,
}

impl StatementFrame {
    /// Whether the statement's patient has an account of their own (a grant as the patient).
    pub fn patient_has_account(&self) -> bool {
        self.patient_accounts > 0
    }
}

/// The frame of statement `id` (`None` if there is no such statement).
pub async fn statement_frame(
    db: &Db,
    id: &StatementId,
) -> Result<Option<StatementFrame>, BillingError> {
    // The account count is `guarantors::has_account`'s.
    Ok(sqlx::query_as(concat!(
        "SELECT s.id, s.tenant_id, s.patient_id, s.statement_date, s.due_date,
                t.name AS practice_name, t.support_phone AS practice_phone,
                ",
        balance_of_statement!("s.id"),
        " AS balance_cents,
                CAST((SELECT COUNT(*) FROM user_grants
                      WHERE patient_id = s.patient_id AND role = 'patient' AND revoked_at IS NULL)
                     AS BIGINT) AS patient_accounts
         FROM statements s JOIN tenants t ON t.id = s.tenant_id WHERE s.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?)
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
        "SELECT p.id, c.user_id AS paid_by, a.amount_cents, p.card_brand, p.card_last4, p.paid_at, p.status
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
