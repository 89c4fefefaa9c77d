//! Writing validated statements: patients matched on their external id, statements created,
//! updated or left unchanged, inside one import transaction the caller commits or rolls back.
//!
//! **Why one transaction per import.** A file import is all-or-nothing by default and a dry run
//! must report exactly what a real run would do: both are the same pass, then a commit or a
//! rollback. On SQLite the import holds the write lock while it runs (about 20 s for 100,000
//! statements): imports run off hours, or against PostgreSQL, where only the rows touched wait.
//!
//! **Changed or not.** Each patient and statement keeps an HMAC of its imported content under
//! the practice's blind-index key (`content_mac`): equal means unchanged, and a database reader
//! learns nothing from it. Keys are readied before the transaction (`Importer::begin`), so no key
//! is created while it is open.

use super::{ParsedStatement, PatientRecord};
use crate::billing::{patient_aad, patient_index_inputs};
use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::{Db, WriteTx};
use crate::ids::{LineId, PatientId, StatementId, TenantId};
use crate::money::Money;
use crate::phi::Phi;
use std::collections::HashSet;
use std::hash::BuildHasher;

mod batch;
mod notify;

/// What a patient's `external_bidx` is computed from: the one recipe for import and for
/// `keys rotate-index`, which rebuilds it from `external_id_ct`.
pub fn external_index_input(external: &str) -> (&'static str, String) {
    (BIDX_EXTERNAL, external.to_owned())
}

/// How long a pay link made for a new statement lasts.
pub const NEW_LINK_DAYS: i64 = 30;
const BIDX_EXTERNAL: &str = "patient-external-id";
const MAC_PATIENT: &str = "import-patient";
const MAC_STATEMENT: &str = "import-statement";
const LINES: &str = "statement_lines";

/// What happened to one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    Created(StatementId),
    Updated(StatementId),
    Unchanged(StatementId),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This statement cannot be taken (the reason names no PHI); the import goes on or stops as
    /// its mode says.
    #[error("{0}")]
    Refused(String),
    /// The statement was re-sent with a total below what was already paid: refused, and staff
    /// are alerted to the credit balance.
    #[error("{0}")]
    CreditBalance(String),
    /// The file is for another practice.
    #[error("{0}")]
    WrongPractice(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// One import's open transaction, for one practice.
pub struct Importer {
    tenant: TenantId,
    crypto: std::sync::Arc<FieldCrypto>,
    tx: WriteTx,
    now: i64,
    practice_checked: bool,
    /// The practice's active blind-index key version, read once per batch (not per value: that
    /// query was most of the import's time).
    index_version: u32,
    /// On PostgreSQL the tables' statistics are refreshed as they grow (see `write_batch`);
    /// placeholders in the batch statements follow it (`db::Params`).
    backend: crate::db::Backend,
    batches: u64,
    /// Every statement id this import has taken, as a keyed 64-bit hash, so an id sent twice is
    /// refused however far apart: 16 bytes or so per statement (1.6 MB for 100,000) instead of the
    /// ids themselves. The hasher's key is random per import; two different ids colliding (about
    /// one chance in 4·10⁹ for a million statements) would refuse the second, visibly, never
    /// merge them.
    taken: HashSet<u64>,
    id_hasher: std::collections::hash_map::RandomState,
    /// What a new statement's text needs: the practice's wording (and name, the brand it
    /// starts with) and the portal's public URL (its link).
    wording: crate::messages::wording::Wording,
    public_url: String,
}

impl Importer {
    /// Readies the practice's keys, then opens the import's write transaction.
    pub async fn begin(
        db: &Db,
        crypto: std::sync::Arc<FieldCrypto>,
        tenant: &TenantId,
        public_url: &str,
        now: i64,
    ) -> Result<Importer, StoreError> {
        crypto.ready_field_key(tenant).await?;
        let mut conn = db.pool().acquire().await?;
        let wording =
            crate::messages::wording::Wording::load(&mut conn, tenant, public_url).await?;
        drop(conn);
        let Some(wording) = wording else {
            return Err(StoreError::WrongPractice("no such practice".into()));
        };
        crypto.blind_index(tenant, BIDX_EXTERNAL, "").await?;
        let index_version = active_index(&crypto, tenant).await?;
        let tx = db.begin_bulk_write().await?;
        Ok(Importer {
            tenant: tenant.clone(),
            crypto,
            tx,
            now,
            practice_checked: false,
            index_version,
            backend: db.backend(),
            batches: 0,
            taken: HashSet::new(),
            id_hasher: Default::default(),
            wording,
            public_url: public_url.to_owned(),
        })
    }

    /// Takes a statement id for this import: `false` when it was taken before.
    fn take_id(&mut self, id: &str) -> bool {
        let h = self.id_hasher.hash_one(id);
        self.taken.insert(h)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// The file's practice must be this one's: its billing id is recorded by the first import
    /// and checked on every later one.
    async fn check_practice(&mut self, external: &str) -> Result<(), StoreError> {
        if self.practice_checked {
            return Ok(());
        }
        let known: Option<Option<String>> =
            sqlx::query_scalar("SELECT external_id FROM tenants WHERE id = $1")
                .bind(self.tenant.as_str())
                .fetch_optional(&mut *self.tx)
                .await?;
        match known {
            None => return Err(StoreError::WrongPractice("no such practice".into())),
            Some(Some(id)) if id != external => {
                return Err(StoreError::WrongPractice(format!(
                "the file is for practice {external:?}, but this practice's billing id is {id:?}"
            )))
            }
            Some(Some(_)) => {}
            Some(None) => {
                let taken: Option<String> =
                    sqlx::query_scalar("SELECT id FROM tenants WHERE external_id = $1")
                        .bind(external)
                        .fetch_optional(&mut *self.tx)
                        .await?;
                if taken.is_some() {
                    return Err(StoreError::WrongPractice(format!(
                        "billing id {external:?} belongs to another practice"
                    )));
                }
                sqlx::query("UPDATE tenants SET external_id = $1 WHERE id = $2")
                    .bind(external)
                    .bind(self.tenant.as_str())
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.practice_checked = true;
        Ok(())
    }

    /// A known patient whose details changed: every column written again.
    async fn update_patient(
        &mut self,
        id: &PatientId,
        s: &ParsedStatement,
        mac: &[u8],
    ) -> Result<(), StoreError> {
        let p = &s.patient;
        let f = self.patient_fields(id, s).await?;
        sqlx::query(
            "UPDATE patients SET first_name_ct = $1, last_name_ct = $2, dob_ct = $3,
                 zip_ct = $4, phone_ct = $5, account_number_ct = $6, phone_bidx = $7,
                 name_dob_bidx = $8, account_bidx = $9, address_ct = $10, email_ct = $11,
                 guarantor_ct = $12, language = $13, minor = $14, confidential = $15,
                 content_mac = $16, external_id_ct = $17
             WHERE id = $18",
        )
        .bind(f.first)
        .bind(f.last)
        .bind(f.dob)
        .bind(f.zip)
        .bind(f.phone)
        .bind(f.account)
        .bind(f.bidx[0].clone())
        .bind(f.bidx[1].clone())
        .bind(f.bidx[2].clone())
        .bind(f.address)
        .bind(f.email)
        .bind(f.guarantor)
        .bind(p.preferred_language.code())
        .bind(i64::from(p.minor))
        .bind(i64::from(p.confidential))
        .bind(mac)
        .bind(f.external)
        .bind(id.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Every encrypted column and blind index of a patient row, bound to that row.
    async fn patient_fields(
        &mut self,
        id: &PatientId,
        s: &ParsedStatement,
    ) -> Result<PatientFields, StoreError> {
        let p = &s.patient;
        let version = self.index_version;
        let (t, row) = (&self.tenant, id.as_str());
        let c = &self.crypto;
        let dob = Phi::new(iso(*p.date_of_birth.expose()));
        let enc = |column: &'static str, v: &Phi<String>| encrypt(c, t, row, column, v.clone());
        let address = Phi::new(address_text(p));
        let guarantor = match &s.guarantor {
            Some(g) => Some(
                enc(
                    "guarantor",
                    &Phi::new(
                        serde_json::json!({
                            "name": g.name.expose(),
                            "phone": g.phone.expose(),
                            "relationship": format!("{:?}", g.relationship).to_lowercase(),
                        })
                        .to_string(),
                    ),
                )
                .await?,
            ),
            None => None,
        };
        let email = match &p.email {
            Some(e) => Some(enc("email", e).await?),
            None => None,
        };
        let inputs = patient_index_inputs(
            p.mobile_phone.expose(),
            p.last_name.expose(),
            dob.expose(),
            p.account_number.expose(),
        );
        let mut bidx = Vec::with_capacity(3);
        for (what, value) in &inputs {
            bidx.push(c.blind_index_at(t, version, what, value).await?);
        }
        Ok(PatientFields {
            first: enc("first_name", &p.first_name).await?,
            last: enc("last_name", &p.last_name).await?,
            dob: enc("dob", &dob).await?,
            zip: enc("zip", &p.zip).await?,
            phone: enc("phone", &p.mobile_phone).await?,
            account: enc("account_number", &p.account_number).await?,
            address: enc("address", &address).await?,
            external: enc("external_id", &p.external_id).await?,
            email,
            guarantor,
            bidx,
        })
    }

    /// A blind index (or content MAC) under the batch's index-key version.
    // `&mut self` here and below, not `&self`: the transaction is `Send` but not `Sync`, so a
    // future holding `&Importer` could not run on a multi-threaded server (the staff upload).
    async fn bidx(&mut self, what: &str, value: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .crypto
            .blind_index_at(&self.tenant, self.index_version, what, value)
            .await?)
    }

    async fn mac(&mut self, what: &'static str, canonical: &str) -> Result<Vec<u8>, StoreError> {
        self.bidx(what, canonical).await
    }

    async fn statement_mac(&mut self, s: &ParsedStatement) -> Result<Vec<u8>, StoreError> {
        self.mac(MAC_STATEMENT, &statement_canonical(s)).await
    }

    async fn insert_lines(
        &mut self,
        id: &StatementId,
        s: &ParsedStatement,
    ) -> Result<(), StoreError> {
        for (n, line) in s.lines.iter().enumerate() {
            let line_id = LineId::generate();
            let aad = |column: &'static str| FieldAad {
                tenant: &self.tenant,
                table: LINES,
                column,
                row: line_id.as_str(),
            };
            let sd = self
                .crypto
                .encrypt_str(
                    aad("service_date"),
                    &Phi::new(iso(*line.service_date.expose())),
                )
                .await?;
            let desc = self
                .crypto
                .encrypt_str(aad("description"), &line.description)
                .await?;
            let code = match &line.procedure_code {
                Some(c) => Some(self.crypto.encrypt_str(aad("procedure_code"), c).await?),
                None => None,
            };
            sqlx::query(
                "INSERT INTO statement_lines (id, tenant_id, statement_id, line_no, service_date_ct,
                     description_ct, charge_cents, insurance_paid_cents, adjustment_cents,
                     patient_cents, confidential, procedure_code_ct)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(line_id.as_str())
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(n as i64 + 1)
            .bind(sd)
            .bind(desc)
            .bind(line.charge.cents())
            .bind(line.insurance_paid.cents())
            .bind(line.adjustment.cents())
            .bind(line.patient_responsibility.cents())
            .bind(i64::from(line.confidential))
            .bind(code)
            .execute(&mut *self.tx)
            .await?;
            if line.patient_responsibility.is_positive() {
                sqlx::query(
                    "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents,
                         line_id, created_at)
                     VALUES ($1, $2, 'charge', $3, $4, $5)",
                )
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .bind(line.patient_responsibility.cents())
                .bind(line_id.as_str())
                .bind(self.now)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        Ok(())
    }

    /// A statement sent again with changes: its lines and charges are replaced, its payments
    /// kept (the balance follows from the ledger). A new total below what was already paid is
    /// refused: the practice must look at the credit balance.
    async fn replace_statement(
        &mut self,
        id: &StatementId,
        s: &ParsedStatement,
        mac: &[u8],
    ) -> Result<(), StoreError> {
        let charged: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries
             WHERE statement_id = $1 AND kind = 'charge'",
        )
        .bind(id.as_str())
        .fetch_one(&mut *self.tx)
        .await?;
        let balance = crate::billing::balance(&mut *self.tx, id).await?;
        let paid = Money::from_cents(charged - balance.cents());
        if s.statement.total.cents() < paid.cents() {
            return Err(StoreError::CreditBalance(format!(
                "the new total {} is below the {} already paid: a credit balance for staff to \
                 resolve (not imported)",
                s.statement.total, paid
            )));
        }
        sqlx::query("DELETE FROM ledger_entries WHERE statement_id = $1 AND kind = 'charge'")
            .bind(id.as_str())
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM statement_lines WHERE statement_id = $1")
            .bind(id.as_str())
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "UPDATE statements SET statement_date = $1, due_date = $2, content_mac = $3
             WHERE id = $4",
        )
        .bind(iso(s.statement.statement_date))
        .bind(iso(s.statement.due_date))
        .bind(mac)
        .bind(id.as_str())
        .execute(&mut *self.tx)
        .await?;
        self.insert_lines(id, s).await
    }
}

/// The practice's active blind-index key version (made by `begin`'s first index if missing).
async fn active_index(c: &FieldCrypto, t: &TenantId) -> Result<u32, StoreError> {
    c.active_index_version(t)
        .await?
        .ok_or_else(|| StoreError::Refused("the practice has no blind-index key".into()))
}

/// One patient column, encrypted and bound to its row (owned value: the future borrows nothing
/// the caller builds on the spot).
async fn encrypt(
    c: &FieldCrypto,
    t: &TenantId,
    row: &str,
    column: &'static str,
    v: Phi<String>,
) -> Result<Vec<u8>, CryptoError> {
    c.encrypt_str(patient_aad(t, row, column), &v).await
}

struct PatientFields {
    first: Vec<u8>,
    last: Vec<u8>,
    dob: Vec<u8>,
    zip: Vec<u8>,
    phone: Vec<u8>,
    account: Vec<u8>,
    address: Vec<u8>,
    external: Vec<u8>,
    email: Option<Vec<u8>>,
    guarantor: Option<Vec<u8>>,
    bidx: Vec<Vec<u8>>,
}

fn iso(d: time::Date) -> String {
    d.format(crate::links::ISO_DATE).unwrap_or_default()
}

/// The postal address as one text: lines, city, state and ZIP on separate lines.
fn address_text(p: &PatientRecord) -> String {
    let mut out = vec![p.address_line1.expose().clone()];
    if let Some(l2) = &p.address_line2 {
        out.push(l2.expose().clone());
    }
    out.push(format!(
        "{}, {} {}",
        p.city.expose(),
        p.state,
        p.zip.expose()
    ));
    out.join("\n")
}

/// Unit-separated fields: what the patient's content MAC is computed over.
fn patient_canonical(s: &ParsedStatement) -> String {
    let p = &s.patient;
    let opt = |v: &Option<Phi<String>>| v.as_ref().map(|x| x.expose().clone()).unwrap_or_default();
    let guarantor = s
        .guarantor
        .as_ref()
        .map(|g| {
            format!(
                "{}\u{1e}{}\u{1e}{:?}",
                g.name.expose(),
                g.phone.expose(),
                g.relationship
            )
        })
        .unwrap_or_default();
    [
        p.first_name.expose().clone(),
        p.last_name.expose().clone(),
        iso(*p.date_of_birth.expose()),
        address_text(p),
        p.mobile_phone.expose().clone(),
        opt(&p.email),
        p.account_number.expose().clone(),
        p.preferred_language.code().to_owned(),
        p.minor.to_string(),
        p.confidential.to_string(),
        guarantor,
    ]
    .join("\u{1f}")
}

/// The statement's content (dates and every line) for its MAC. The patient is part of it.
fn statement_canonical(s: &ParsedStatement) -> String {
    let mut parts = vec![
        s.patient.external_id.expose().clone(),
        iso(s.statement.statement_date),
        iso(s.statement.due_date),
        s.statement.total.cents().to_string(),
    ];
    for l in &s.lines {
        parts.push(
            [
                iso(*l.service_date.expose()),
                l.procedure_code
                    .as_ref()
                    .map(|c| c.expose().clone())
                    .unwrap_or_default(),
                l.description.expose().clone(),
                l.charge.cents().to_string(),
                l.insurance_paid.cents().to_string(),
                l.adjustment.cents().to_string(),
                l.patient_responsibility.cents().to_string(),
                l.confidential.to_string(),
            ]
            .join("\u{1e}"),
        );
    }
    parts.join("\u{1f}")
}
