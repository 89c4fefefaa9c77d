//! Writing statements a batch at a time: what exists is looked up with one query per table, every
//! refusal is decided before anything is written (so a refused statement needs no savepoint),
//! and new rows go in with multi-row inserts. Row-at-a-time round trips were the import's cost
//! (about 1 ms per statement on SQLite); changed patients and statements, which are rare, are
//! still written one by one.

use super::{
    iso, patient_canonical, Importer, StoreError, Written, LINES, MAC_PATIENT, NEW_LINK_DAYS,
};
use crate::crypto::FieldAad;
use crate::db::{Backend, Params};
use crate::ids::{LineId, LinkId, PatientId, StatementId};
use crate::intake::ParsedStatement;
use crate::phi::Phi;
use std::collections::{HashMap, HashSet};

/// Rows per multi-row insert. The last chunk of each batch may be any size (unlike
/// `db::fixed_chunks`' users): the import's connection is closed after it (`Db::begin_bulk_write`),
/// and the statements it cached go with it.
const ROWS_PER_INSERT: usize = 128;

/// A value bound into a multi-row insert.
enum V {
    T(String),
    I(i64),
    B(Vec<u8>),
    OB(Option<Vec<u8>>),
}

/// `head` (`INSERT INTO t (a, b)`) with `rows` (all as wide as the first), `ROWS_PER_INSERT`
/// at a time.
async fn insert_rows(
    tx: &mut crate::db::WriteTx,
    backend: Backend,
    head: &str,
    rows: &[Vec<V>],
) -> Result<(), sqlx::Error> {
    let columns = rows.first().map_or(0, Vec::len);
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values = Params::new(backend).tuples(chunk.len(), columns);
        let sql = format!("{head} VALUES {values}");
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    V::T(s) => q.bind(s.as_str()),
                    V::I(i) => q.bind(*i),
                    V::B(b) => q.bind(b.as_slice()),
                    V::OB(b) => q.bind(b.as_deref()),
                };
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Keyed hashes of one statement: its patient's external id, the patient's and its own content.
struct Keys {
    patient: Vec<u8>,
    patient_mac: Vec<u8>,
    statement_mac: Vec<u8>,
}

impl Importer {
    /// Writes a batch of statements of one file, in order. Each gets its own answer; an `Err`
    /// of the whole call (a database or key failure, a file for another practice) ends the
    /// import.
    pub async fn write_batch(
        &mut self,
        batch: &[ParsedStatement],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let Some(first) = batch.first() else {
            return Ok(vec![]);
        };
        self.check_practice(first.practice.as_str()).await?;
        self.index_version = super::active_index(&self.crypto, &self.tenant).await?;
        // PostgreSQL plans the lookups and foreign-key checks from statistics taken before the
        // import's rows existed (it cannot see them until commit); after a few batches the
        // tables are far bigger than planned for and each batch slowed down with the file.
        // ANALYZE inside the transaction counts its own rows and makes cached plans be redone.
        self.batches += 1;
        if self.backend == Backend::Postgres && self.batches.is_power_of_two() && self.batches >= 4
        {
            sqlx::query("ANALYZE patients, statements, statement_lines, ledger_entries, pay_links")
                .execute(&mut *self.tx)
                .await?;
        }
        let mut keys = Vec::with_capacity(batch.len());
        for s in batch {
            keys.push(Keys {
                patient: {
                    let (what, input) = super::external_index_input(s.patient.external_id.expose());
                    self.bidx(what, &input).await?
                },
                patient_mac: self.mac(MAC_PATIENT, &patient_canonical(s)).await?,
                statement_mac: self.statement_mac(s).await?,
            });
        }
        let mut patients = self.known_patients(&keys).await?;
        let statements = self.known_statements(batch).await?;
        // New patients: the batch index whose details they get (the last one seen).
        let mut new_patients: Vec<(PatientId, usize)> = vec![];
        let mut new_at: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut new_statements: Vec<(StatementId, PatientId, usize)> = vec![];
        // Changed statements: a fresh link each, texted like a new statement's.
        let mut updated: Vec<(StatementId, PatientId, usize)> = vec![];
        let mut out = Vec::with_capacity(batch.len());
        for (i, (s, k)) in batch.iter().zip(&keys).enumerate() {
            let ext = s.statement.external_id.as_str();
            if !self.take_id(ext) {
                out.push(Err(StoreError::Refused(
                    "this statement id appears twice in one import".into(),
                )));
                continue;
            }
            let patient = match patients.get(&k.patient) {
                Some((id, mac)) if mac.as_slice() == k.patient_mac.as_slice() => id.clone(),
                Some((id, _)) => {
                    let id = id.clone();
                    match new_at.get(&k.patient) {
                        Some(&at) => new_patients[at].1 = i,
                        None => self.update_patient(&id, s, &k.patient_mac).await?,
                    }
                    patients.insert(k.patient.clone(), (id.clone(), k.patient_mac.clone()));
                    id
                }
                None => {
                    let id = PatientId::generate();
                    new_at.insert(k.patient.clone(), new_patients.len());
                    new_patients.push((id.clone(), i));
                    patients.insert(k.patient.clone(), (id.clone(), k.patient_mac.clone()));
                    id
                }
            };
            let fate = match statements.get(ext) {
                None => {
                    let id = StatementId::generate();
                    new_statements.push((id.clone(), patient, i));
                    Ok(Written::Created(id))
                }
                Some((_, owner, _)) if owner != patient.as_str() => Err(StoreError::Refused(
                    "this statement id was sent before for another patient".into(),
                )),
                Some((id, _, mac)) if mac.as_deref() == Some(k.statement_mac.as_slice()) => {
                    Ok(Written::Unchanged(id.clone()))
                }
                Some((id, _, _)) => match self.replace_statement(id, s, &k.statement_mac).await {
                    Ok(()) => {
                        updated.push((id.clone(), patient, i));
                        Ok(Written::Updated(id.clone()))
                    }
                    Err(e @ (StoreError::Refused(_) | StoreError::CreditBalance(_))) => Err(e),
                    Err(e) => return Err(e),
                },
            };
            out.push(fate);
        }
        self.insert_patients(batch, &keys, &new_patients).await?;
        let tokens = self
            .insert_statements(batch, &keys, &new_statements)
            .await?;
        self.queue_texts(batch, &new_statements, tokens).await?;
        let tokens = self.relink(&updated).await?;
        self.queue_texts(batch, &updated, tokens).await?;
        Ok(out)
    }

    /// The batch's patients already on file: external-id index → (id, content MAC).
    async fn known_patients(
        &mut self,
        keys: &[Keys],
    ) -> Result<HashMap<Vec<u8>, (PatientId, Vec<u8>)>, StoreError> {
        let wanted: Vec<&Vec<u8>> = keys
            .iter()
            .map(|k| &k.patient)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut p = Params::new(self.backend);
        let sql = format!(
            "SELECT external_bidx, id, content_mac FROM patients
             WHERE tenant_id = {} AND external_bidx IN ({})",
            p.one(),
            p.list(wanted.len())
        );
        let mut q = sqlx::query_as::<_, (Vec<u8>, String, Option<Vec<u8>>)>(&sql)
            .bind(self.tenant.as_str());
        for w in &wanted {
            q = q.bind(w.as_slice());
        }
        let rows = q.fetch_all(&mut *self.tx).await?;
        Ok(rows
            .into_iter()
            .map(|(b, id, mac)| (b, (PatientId::from_db(id), mac.unwrap_or_default())))
            .collect())
    }

    /// The batch's statements already on file: external id → (id, patient id, content MAC).
    async fn known_statements(
        &mut self,
        batch: &[ParsedStatement],
    ) -> Result<HashMap<String, (StatementId, String, Option<Vec<u8>>)>, StoreError> {
        let wanted: Vec<&str> = batch
            .iter()
            .map(|s| s.statement.external_id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut p = Params::new(self.backend);
        let sql = format!(
            "SELECT external_id, id, patient_id, content_mac FROM statements
             WHERE tenant_id = {} AND external_id IN ({})",
            p.one(),
            p.list(wanted.len())
        );
        let mut q = sqlx::query_as::<_, (String, String, String, Option<Vec<u8>>)>(&sql)
            .bind(self.tenant.as_str());
        for w in &wanted {
            q = q.bind(*w);
        }
        let rows = q.fetch_all(&mut *self.tx).await?;
        Ok(rows
            .into_iter()
            .map(|(ext, id, patient, mac)| (ext, (StatementId::from_db(id), patient, mac)))
            .collect())
    }

    async fn insert_patients(
        &mut self,
        batch: &[ParsedStatement],
        keys: &[Keys],
        new: &[(PatientId, usize)],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(new.len());
        for (id, at) in new {
            let (s, k) = (&batch[*at], &keys[*at]);
            let p = &s.patient;
            let f = self.patient_fields(id, s).await?;
            let mut bidx = f.bidx.into_iter();
            let mut next = || V::B(bidx.next().unwrap_or_default());
            let (phone, name_dob, account) = (next(), next(), next());
            rows.push(vec![
                V::T(id.to_string()),
                V::T(self.tenant.to_string()),
                V::B(f.first),
                V::B(f.last),
                V::B(f.dob),
                V::B(f.zip),
                V::B(f.phone),
                V::B(f.account),
                phone,
                name_dob,
                account,
                V::I(self.now),
                V::B(k.patient.clone()),
                V::B(f.address),
                V::OB(f.email),
                V::OB(f.guarantor),
                V::T(p.preferred_language.code().to_owned()),
                V::I(i64::from(p.minor)),
                V::I(i64::from(p.confidential)),
                V::B(k.patient_mac.clone()),
                V::B(f.external),
            ]);
        }
        insert_rows(
            &mut self.tx,
            self.backend,
            "INSERT INTO patients (id, tenant_id, first_name_ct, last_name_ct, dob_ct, zip_ct,
                 phone_ct, account_number_ct, phone_bidx, name_dob_bidx, account_bidx, created_at,
                 external_bidx, address_ct, email_ct, guarantor_ct, language, minor, confidential,
                 content_mac, external_id_ct)",
            &rows,
        )
        .await?;
        Ok(())
    }

    /// New statements with their lines, one ledger charge per line owed, and a pay link each.
    /// The links' tokens, in the order of `new`, are for the statements' texts only: the
    /// database keeps their hashes.
    async fn insert_statements(
        &mut self,
        batch: &[ParsedStatement],
        keys: &[Keys],
        new: &[(StatementId, PatientId, usize)],
    ) -> Result<Vec<String>, StoreError> {
        let mut tokens = Vec::with_capacity(new.len());
        let (mut heads, mut lines, mut charges, mut links) = (vec![], vec![], vec![], vec![]);
        let tenant = self.tenant.to_string();
        for (id, patient, at) in new {
            let s = &batch[*at];
            heads.push(vec![
                V::T(id.to_string()),
                V::T(tenant.clone()),
                V::T(patient.to_string()),
                V::T(iso(s.statement.statement_date)),
                V::T(iso(s.statement.due_date)),
                V::I(self.now),
                V::T(s.statement.external_id.as_str().to_owned()),
                V::B(keys[*at].statement_mac.clone()),
            ]);
            for (n, line) in s.lines.iter().enumerate() {
                let line_id = LineId::generate();
                let aad = |column: &'static str| FieldAad {
                    tenant: &self.tenant,
                    table: LINES,
                    column,
                    row: line_id.as_str(),
                };
                let service = Phi::new(iso(*line.service_date.expose()));
                let code = match &line.procedure_code {
                    Some(c) => Some(self.crypto.encrypt_str(aad("procedure_code"), c).await?),
                    None => None,
                };
                lines.push(vec![
                    V::T(line_id.to_string()),
                    V::T(tenant.clone()),
                    V::T(id.to_string()),
                    V::I(n as i64 + 1),
                    V::B(
                        self.crypto
                            .encrypt_str(aad("service_date"), &service)
                            .await?,
                    ),
                    V::B(
                        self.crypto
                            .encrypt_str(aad("description"), &line.description)
                            .await?,
                    ),
                    V::I(line.charge.cents()),
                    V::I(line.insurance_paid.cents()),
                    V::I(line.adjustment.cents()),
                    V::I(line.patient_responsibility.cents()),
                    V::I(i64::from(line.confidential)),
                    V::OB(code),
                ]);
                if line.patient_responsibility.is_positive() {
                    charges.push(vec![
                        V::T(tenant.clone()),
                        V::T(id.to_string()),
                        V::T("charge".into()),
                        V::I(line.patient_responsibility.cents()),
                        V::T(line_id.to_string()),
                        V::I(self.now),
                    ]);
                }
            }
            let token = crate::crypto::random_token();
            links.push(vec![
                V::T(LinkId::generate().to_string()),
                V::T(tenant.clone()),
                V::T(id.to_string()),
                V::B(crate::crypto::token_hash(&token)),
                V::I(self.now),
                V::I(self.now + NEW_LINK_DAYS * 86_400),
            ]);
            tokens.push(token);
        }
        let (tx, backend) = (&mut self.tx, self.backend);
        insert_rows(
            tx,
            backend,
            "INSERT INTO statements (id, tenant_id, patient_id, statement_date, due_date,
                 created_at, external_id, content_mac)",
            &heads,
        )
        .await?;
        insert_rows(
            tx,
            backend,
            "INSERT INTO statement_lines (id, tenant_id, statement_id, line_no, service_date_ct,
                 description_ct, charge_cents, insurance_paid_cents, adjustment_cents,
                 patient_cents, confidential, procedure_code_ct)",
            &lines,
        )
        .await?;
        insert_rows(
            tx,
            backend,
            "INSERT INTO ledger_entries (tenant_id, statement_id, kind, amount_cents, line_id,
                 created_at)",
            &charges,
        )
        .await?;
        insert_rows(
            tx,
            backend,
            "INSERT INTO pay_links (id, tenant_id, statement_id, token_hash, created_at,
                 expires_at)",
            &links,
        )
        .await?;
        Ok(tokens)
    }
}
