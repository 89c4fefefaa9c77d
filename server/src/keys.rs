//! Key management operations behind `patriotpay keys …`: rotate data keys, re-wrap them under
//! another master key, re-encrypt field values under the newest key, rotate blind-index keys,
//! and report status. Each is safe to interrupt and run again.
//!
//! **Blind-index rotation (`rotate-index`).** Index keys are data keys of purpose
//! `blind-index`, one versioned series per practice (patients' phone, last name + date of
//! birth, account number) and one for the platform (account emails, and the sign-in failure
//! records keyed by them), wrapped by the master key like field keys. Lookups and new rows use
//! the tenant's *active* index version: the newest, unless a rotation is still building it
//! (`FieldCrypto::active_index_version`, read from the database on every call so a switch takes
//! effect everywhere at once). A rotation, recorded per tenant in `blind_index_rotations`:
//!
//! 1. **start**: a new key version for every tenant in scope and its rotation row
//!    (`building`), all in one transaction, so an interrupted run leaves every rotation open
//!    and the next run continues them instead of starting new ones;
//! 2. **build**: each row's new values are computed from its decrypted columns and stored
//!    beside the old ones in the side table `blind_index_next` (row, column, the value it was
//!    built from, the new value), a batch per transaction; rows already built are skipped, so
//!    a run resumes where it stopped. Lookups still use the old values throughout;
//! 3. **switch**: one transaction checks that every row has a new value built from what it
//!    holds now (else it builds the stragglers and tries again), writes the new values into
//!    the rows, re-keys the sign-in failure records through the accounts' old → new values
//!    (those naming no account cannot be recomputed and are deleted), and marks the rotation
//!    `switched`: the same commit makes lookups use the new key;
//! 4. **catch-up**: after a short grace, rows that a request which began before the switch
//!    wrote under the old key are recomputed and fixed;
//! 5. **retire**: the side rows and every older index key of the tenant are deleted (the key
//!    is destroyed, not just unused), the rotation is marked `retired`, and every server is
//!    asked to drop its cached keys.
//!
//! A side table rather than new columns: one place for every indexed table (including ones
//! added later, which only need an entry in `INDEXED`), nothing to rename at the switch, and
//! nothing left behind after it.

use crate::crypto::{
    ciphertext_version, FieldAad, FieldCrypto, KeyContext, PURPOSE_FIELD, PURPOSE_INDEX,
};
use crate::db::Db;
use crate::ids::TenantId;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// Whose keys encrypt a table's values: each row's practice (`tenant_id` column), or the
/// platform's (accounts belong to no one practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Practice,
    Platform,
}

/// How a table's rows are identified: its `id` column's type (paged in order, and bound into
/// each ciphertext as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowId {
    Text,
    Integer,
}

/// A table with encrypted columns: SQL column and the column name bound into its ciphertext.
#[derive(Clone, Copy, Debug)]
pub struct EncryptedTable {
    pub table: &'static str,
    pub scope: Scope,
    pub id: RowId,
    pub columns: &'static [(&'static str, &'static str)],
}

/// Every encrypted column of the database (a test checks the migrations have no other).
pub const ENCRYPTED: &[EncryptedTable] = &[
    EncryptedTable {
        table: "patients",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[
            ("first_name_ct", "first_name"),
            ("last_name_ct", "last_name"),
            ("dob_ct", "dob"),
            ("zip_ct", "zip"),
            ("phone_ct", "phone"),
            ("account_number_ct", "account_number"),
        ],
    },
    EncryptedTable {
        table: "statement_lines",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[
            ("service_date_ct", "service_date"),
            ("description_ct", "description"),
        ],
    },
    EncryptedTable {
        table: "users",
        scope: Scope::Platform,
        id: RowId::Text,
        columns: &[("email_ct", "email"), ("totp_secret_ct", "totp_secret")],
    },
    // Break-glass reasons, under the grant's practice (grants with no practice have none).
    EncryptedTable {
        table: "user_grants",
        scope: Scope::Practice,
        id: RowId::Integer,
        columns: &[("reason_ct", "reason")],
    },
];

/// A progress bar on stderr for a long command (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// The practices (or the one asked for) and, unless one practice was asked for, the platform
/// (whose keys encrypt accounts).
async fn tenants(db: &Db, only: Option<&TenantId>) -> anyhow::Result<Vec<TenantId>> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    let mut all: Vec<TenantId> = ids.into_iter().map(TenantId::from_db).collect();
    // The platform has a row once an account was made; listed once either way.
    if !all.contains(crate::accounts::platform()) {
        all.push(crate::accounts::platform().clone());
    }
    match only {
        Some(t) => {
            anyhow::ensure!(all.contains(t), "no practice with id {t}");
            Ok(vec![t.clone()])
        }
        None => Ok(all),
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotateSummary {
    /// (tenant, new version) for each tenant rotated (or that would be, in a dry run).
    pub rotated: Vec<(String, u32)>,
}

/// Adds a new field data-key version per tenant; new writes use it, old data still reads.
pub async fn rotate(
    db: &Db,
    crypto: &FieldCrypto,
    only: Option<&TenantId>,
    dry_run: bool,
) -> anyhow::Result<RotateSummary> {
    let list = tenants(db, only).await?;
    let pb = progress(list.len() as u64, "rotate");
    let mut summary = RotateSummary::default();
    for t in list {
        let next = crypto.newest_version(&t, PURPOSE_FIELD).await?.unwrap_or(0) + 1;
        if !dry_run {
            crypto.create_version(&t, PURPOSE_FIELD).await?;
        }
        summary.rotated.push((t.as_str().to_owned(), next));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(summary)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RewrapSummary {
    pub examined: u64,
    pub rewrapped: u64,
    pub already_under_target: u64,
}

/// Re-wraps every data key under `to` (the response to a compromised master key). Each new
/// wrapping is unwrapped and compared before the old one is replaced.
pub async fn rewrap(
    db: &Db,
    crypto: &FieldCrypto,
    to: &str,
    dry_run: bool,
) -> anyhow::Result<RewrapSummary> {
    let rows: Vec<(String, String, i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT tenant_id, purpose, version, key_id, wrapped_key FROM data_keys ORDER BY tenant_id, purpose, version",
    )
    .fetch_all(db.pool())
    .await?;
    let provider = crypto.provider();
    let pb = progress(rows.len() as u64, "rewrap");
    let mut summary = RewrapSummary::default();
    for (tenant, purpose, version, key_id, wrapped) in rows {
        summary.examined += 1;
        pb.inc(1);
        if key_id == to {
            summary.already_under_target += 1;
            continue;
        }
        let purpose = match purpose.as_str() {
            PURPOSE_FIELD => PURPOSE_FIELD,
            PURPOSE_INDEX => PURPOSE_INDEX,
            other => anyhow::bail!("unknown key purpose {other}"),
        };
        let ctx = KeyContext {
            tenant: tenant.clone(),
            purpose,
        };
        let key = provider.decrypt_data_key(&key_id, &wrapped, &ctx).await?;
        let (new_wrapped, new_key_id) = provider.wrap_data_key(to, &key, &ctx).await?;
        if new_key_id == key_id {
            summary.already_under_target += 1;
            continue;
        }
        let check = provider
            .decrypt_data_key(&new_key_id, &new_wrapped, &ctx)
            .await?;
        anyhow::ensure!(
            check == key,
            "re-wrapped key for {tenant} v{version} did not round-trip"
        );
        if !dry_run {
            // Guarded on the old wrapping, so a concurrent rewrap can't be overwritten.
            sqlx::query(
                "UPDATE data_keys SET key_id = $1, wrapped_key = $2
                 WHERE tenant_id = $3 AND purpose = $4 AND version = $5 AND key_id = $6",
            )
            .bind(&new_key_id)
            .bind(new_wrapped)
            .bind(&tenant)
            .bind(purpose)
            .bind(version)
            .bind(&key_id)
            .execute(db.pool())
            .await?;
        }
        summary.rewrapped += 1;
    }
    pb.finish_and_clear();
    Ok(summary)
}

/// One row's id, text or integer, to page by and bind back.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RowKey {
    Text(String),
    Integer(i64),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl RowKey {
    /// Sorts before every id of its kind.
    fn first(kind: RowId) -> Self {
        match kind {
            RowId::Text => RowKey::Text(String::new()),
            RowId::Integer => RowKey::Integer(i64::MIN),
        }
    }

    fn read(kind: RowId, row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(match kind {
            RowId::Text => RowKey::Text(row.try_get(0)?),
            RowId::Integer => RowKey::Integer(row.try_get(0)?),
        })
    }

    /// As bound into ciphertexts.
    fn text(&self) -> String {
        match self {
            RowKey::Text(s) => s.clone(),
            RowKey::Integer(i) => i.to_string(),
        }
    }

    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            RowKey::Text(s) => q.bind(s.clone()),
            RowKey::Integer(i) => q.bind(*i),
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReencryptSummary {
    pub rows: u64,
    pub values_reencrypted: u64,
    pub values_current: u64,
}

/// Re-encrypts every field value not under its tenant's newest data key, in batches; rows
/// already current are skipped, so an interrupted run resumes where it stopped.
pub async fn reencrypt(
    db: &Db,
    crypto: &FieldCrypto,
    only: Option<&TenantId>,
    batch: i64,
    dry_run: bool,
) -> anyhow::Result<ReencryptSummary> {
    let mut summary = ReencryptSummary::default();
    for tenant in tenants(db, only).await? {
        let Some(newest) = crypto.newest_version(&tenant, PURPOSE_FIELD).await? else {
            continue;
        };
        let scope = if &tenant == crate::accounts::platform() {
            Scope::Platform
        } else {
            Scope::Practice
        };
        for EncryptedTable {
            table,
            columns: cols,
            id: id_kind,
            ..
        } in ENCRYPTED.iter().filter(|t| t.scope == scope)
        {
            // Platform tables have no tenant column: `$1 = $1` keeps the binds the same.
            let owner = match scope {
                Scope::Practice => "tenant_id = $1",
                Scope::Platform => "$1 = $1",
            };
            let total: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {owner}"))
                    .bind(tenant.as_str())
                    .fetch_one(db.pool())
                    .await?;
            let pb = progress(total as u64, table);
            let col_list = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            let mut after = RowKey::first(*id_kind);
            loop {
                let rows = after
                    .bind(
                        sqlx::query(&format!(
                            "SELECT id, {col_list} FROM {table} WHERE {owner} AND id > $2 ORDER BY id LIMIT $3"
                        ))
                        .bind(tenant.as_str()),
                    )
                    .bind(batch)
                    .fetch_all(db.pool())
                    .await?;
                if rows.is_empty() {
                    break;
                }
                // Encrypt outside the transaction (the provider may be slow), then write the batch.
                let mut updates: Vec<(RowKey, &str, Vec<u8>, Vec<u8>)> = vec![];
                for row in &rows {
                    use sqlx::Row;
                    let key = RowKey::read(*id_kind, row)?;
                    let id = key.text();
                    for (i, (sql_col, aad_col)) in cols.iter().enumerate() {
                        // Nullable columns (a TOTP secret before enrolment) hold nothing to do.
                        let Some(ct) = row.try_get::<Option<Vec<u8>>, _>(i + 1)? else {
                            continue;
                        };
                        if ciphertext_version(&ct) == Some(newest) {
                            summary.values_current += 1;
                            continue;
                        }
                        let aad = FieldAad {
                            tenant: &tenant,
                            table,
                            column: aad_col,
                            row: &id,
                        };
                        let pt = crypto.decrypt(aad, &ct).await?;
                        let fresh = if dry_run {
                            vec![]
                        } else {
                            crypto.encrypt(aad, &pt).await?
                        };
                        updates.push((key.clone(), sql_col, ct, fresh));
                    }
                    after = key;
                }
                summary.rows += rows.len() as u64;
                summary.values_reencrypted += updates.len() as u64;
                if !dry_run && !updates.is_empty() {
                    let mut tx = db.begin_write().await?;
                    for (id, col, old, new) in updates {
                        // Guarded on the old value: a concurrent write wins, and is already current.
                        let sql =
                            format!("UPDATE {table} SET {col} = $1 WHERE id = $2 AND {col} = $3");
                        id.bind(sqlx::query(&sql).bind(new))
                            .bind(old)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                }
                pb.inc(rows.len() as u64);
            }
            pb.finish_and_clear();
        }
    }
    Ok(summary)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub tenant: String,
    pub purpose: String,
    pub version: u32,
    pub provider: String,
    pub key_id: String,
    /// Field values encrypted under this version (blind-index keys: 0, they encrypt nothing).
    pub values: u64,
}

/// Every data-key version, which master key wraps it, and how many values use it.
pub async fn status(db: &Db) -> anyhow::Result<Vec<KeyStatus>> {
    let rows: Vec<(String, String, i64, String, String)> = sqlx::query_as(
        "SELECT tenant_id, purpose, version, provider, key_id FROM data_keys ORDER BY tenant_id, purpose, version",
    )
    .fetch_all(db.pool())
    .await?;
    let mut counts: std::collections::HashMap<(String, u32), u64> = Default::default();
    for t in ENCRYPTED {
        let owner = match t.scope {
            Scope::Practice => "tenant_id".to_owned(),
            Scope::Platform => format!("'{}'", crate::accounts::PLATFORM_TENANT),
        };
        for (col, _) in t.columns.iter() {
            // Rows with no value (or, for grants, no practice) hold nothing under any key.
            let values: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(&format!(
                "SELECT {owner}, {col} FROM {table} WHERE {col} IS NOT NULL AND {owner} IS NOT NULL",
                table = t.table
            ))
            .fetch_all(db.pool())
            .await?;
            for (tenant, ct) in values {
                if let Some(v) = ct.as_deref().and_then(ciphertext_version) {
                    *counts.entry((tenant, v)).or_default() += 1;
                }
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|(tenant, purpose, version, provider, key_id)| {
            let version = u32::try_from(version).unwrap_or_default();
            let values = if purpose == PURPOSE_FIELD {
                counts.get(&(tenant.clone(), version)).copied().unwrap_or(0)
            } else {
                0
            };
            KeyStatus {
                tenant,
                purpose,
                version,
                provider,
                key_id,
                values,
            }
        })
        .collect())
}

/// A table with blind-index columns and how `keys rotate-index` makes their values again under
/// a new index key.
#[derive(Clone, Copy)]
pub struct IndexedTable {
    pub table: &'static str,
    /// Whose index key: the row's practice, or the platform's.
    pub scope: Scope,
    /// The blind-index columns (each `Source::Sealed` input function returns one input per
    /// column, in this order).
    pub columns: &'static [&'static str],
    pub source: IndexSource,
}

/// From a row's decrypted columns, each index column's (domain, normalised input).
pub type IndexInputs = fn(&[&str]) -> Option<Vec<(&'static str, String)>>;

/// Where a blind-index column's new values come from.
#[derive(Clone, Copy)]
pub enum IndexSource {
    /// Recomputed from the row's own ciphertexts (text ids): the (SQL column, column bound into
    /// the ciphertext) pairs to open, and from their plaintexts, in that order, each index
    /// column's (domain, normalised input), or `None` if the row is not as expected.
    Sealed {
        reads: &'static [(&'static str, &'static str)],
        inputs: IndexInputs,
    },
    /// A copy of another table's index column (sign-in failures are keyed by the email index an
    /// account has, or would have): re-keyed through that column's old → new values. A copy
    /// naming no account cannot be recomputed (no email is kept) and is deleted at the switch.
    CopyOf {
        table: &'static str,
        column: &'static str,
    },
}

fn patient_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [phone, last_name, dob, account] => {
            Some(crate::billing::patient_index_inputs(phone, last_name, dob, account).to_vec())
        }
        _ => None,
    }
}

fn email_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [email] => Some(vec![crate::accounts::email_index_input(email)]),
        _ => None,
    }
}

/// Every blind-index column of the database (a test checks the migrations have no other).
pub const INDEXED: &[IndexedTable] = &[
    IndexedTable {
        table: "patients",
        scope: Scope::Practice,
        columns: &["phone_bidx", "name_dob_bidx", "account_bidx"],
        source: IndexSource::Sealed {
            reads: &[
                ("phone_ct", "phone"),
                ("last_name_ct", "last_name"),
                ("dob_ct", "dob"),
                ("account_number_ct", "account_number"),
            ],
            inputs: patient_inputs,
        },
    },
    IndexedTable {
        table: "users",
        scope: Scope::Platform,
        columns: &["email_index"],
        source: IndexSource::Sealed {
            reads: &[("email_ct", "email")],
            inputs: email_inputs,
        },
    },
    IndexedTable {
        table: "login_failures",
        scope: Scope::Platform,
        columns: &["email_index"],
        source: IndexSource::CopyOf {
            table: "users",
            column: "email_index",
        },
    },
];

/// Settings of one `keys rotate-index` run.
#[derive(Clone, Debug)]
pub struct RotateIndexOptions {
    /// Only this practice (default: every practice and the platform).
    pub only: Option<TenantId>,
    /// Rows per transaction while building.
    pub batch: i64,
    /// How long after the switch to look again for rows a request that started before it
    /// wrote under the old key, before that key is destroyed.
    pub grace: Duration,
    /// Stop after this many build batches (a bounded run; the next run continues).
    pub max_batches: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotateIndexSummary {
    /// (tenant, old version, new version) of each rotation this run started or continued.
    pub rotations: Vec<(String, u32, u32)>,
    /// How many of them an earlier run had started.
    pub resumed: u64,
    /// New index values computed beside the old ones.
    pub values_built: u64,
    /// Index values replaced by the switch.
    pub values_switched: u64,
    /// Rows written under the old key around the switch, re-keyed after it.
    pub caught_up: u64,
    /// Copies (sign-in failures) re-keyed, and those naming no account, deleted.
    pub copies_rekeyed: u64,
    pub copies_dropped: u64,
    /// Rotations finished: old key destroyed.
    pub retired: u64,
    /// The run stopped at `max_batches`; run again to continue.
    pub stopped_early: bool,
}

/// Progress of a long pass: a bar on a terminal, plain counts on standard output otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    len: u64,
    pos: u64,
}

impl Progress {
    fn new(len: u64, pos: u64, label: String) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let pb = progress(len, &label);
            pb.set_position(pos);
            pb
        });
        let p = Progress {
            bar,
            label,
            len,
            pos,
        };
        p.plain();
        p
    }

    fn plain(&self) {
        if self.bar.is_none() {
            println!("{}: {}/{}", self.label, self.pos, self.len);
        }
    }

    fn inc(&mut self, n: u64) {
        self.pos += n;
        match &self.bar {
            Some(b) => b.inc(n),
            None => self.plain(),
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// One tenant's rotation, as recorded in `blind_index_rotations`.
#[derive(Clone, Debug)]
struct Rotation {
    tenant: TenantId,
    from: u32,
    to: u32,
    state: String,
    switched_at: Option<i64>,
}

fn owner_clause(scope: Scope, table: &str) -> String {
    // Platform tables have no tenant column: `$1 = $1` keeps the binds the same.
    match scope {
        Scope::Practice => format!("{table}.tenant_id = $1"),
        Scope::Platform => "$1 = $1".to_owned(),
    }
}

/// True for a row whose `column` has no built value matching `side` (`old_value`: built from
/// what it holds now; `new_value`: already holds the new value). `$1` is the tenant, `version`
/// the placeholder of the version rotated to.
fn unmatched(table: &str, column: &str, side: &str, version: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM blind_index_next n WHERE n.tenant_id = $1
           AND n.to_version = {version} AND n.table_name = '{table}' AND n.column_name = '{column}'
           AND n.row_id = {table}.id AND n.{side} = {table}.{column})"
    )
}

fn any_unmatched(t: &IndexedTable, side: &str, version: &str) -> String {
    t.columns
        .iter()
        .map(|c| unmatched(t.table, c, side, version))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Rotates the blind-index keys: a new key per tenant, new values built beside the old ones,
/// an atomic switch, a catch-up, and the old key destroyed. See the module documentation.
pub async fn rotate_index(
    db: &Db,
    crypto: &FieldCrypto,
    opts: &RotateIndexOptions,
) -> anyhow::Result<RotateIndexSummary> {
    anyhow::ensure!(opts.batch > 0, "the batch size must be positive");
    let mut summary = RotateIndexSummary::default();
    let scope = tenants(db, opts.only.as_ref()).await?;
    let mut open = open_rotations(db, &scope).await?;
    if open.is_empty() {
        open = start_rotations(db, crypto, &scope).await?;
    } else {
        summary.resumed = open.len() as u64;
    }
    summary.rotations = open
        .iter()
        .map(|r| (r.tenant.as_str().to_owned(), r.from, r.to))
        .collect();
    let mut budget = opts.max_batches;

    // Build every tenant's new values while lookups use the old ones.
    for r in open.iter().filter(|r| r.state == "building") {
        let stopped = build(db, crypto, r, opts.batch, &mut budget, &mut summary).await?;
        if stopped {
            summary.stopped_early = true;
            return Ok(summary);
        }
    }
    for r in open.iter_mut().filter(|r| r.state == "building") {
        switch(db, crypto, r, opts.batch, &mut summary).await?;
    }

    // A request that read the old version just before a switch may still write a row under
    // it: wait out the grace, then re-key whatever such rows there are.
    if let Some(last) = open.iter().filter_map(|r| r.switched_at).max() {
        let until = last.saturating_add(i64::try_from(opts.grace.as_secs()).unwrap_or(i64::MAX));
        let left = until - crate::clock::now_unix();
        if left > 0 {
            println!("Waiting {left}s for requests that began before the switch…");
            tokio::time::sleep(Duration::from_secs(left.unsigned_abs())).await;
        }
    }
    for r in &open {
        catch_up(db, crypto, r, opts.batch, &mut summary).await?;
        retire(db, r).await?;
        summary.retired += 1;
    }
    if summary.retired > 0 {
        // The old keys are gone from the database; no server keeps a plaintext copy either.
        crypto.flush_cache();
        FieldCrypto::request_flush_everywhere(db).await?;
    }
    Ok(summary)
}

async fn open_rotations(db: &Db, scope: &[TenantId]) -> anyhow::Result<Vec<Rotation>> {
    let rows: Vec<(String, i64, i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT tenant_id, from_version, to_version, state, switched_at FROM blind_index_rotations
         WHERE state <> 'retired' ORDER BY tenant_id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut out = vec![];
    for (tenant, from, to, state, switched_at) in rows {
        let tenant = TenantId::from_db(tenant);
        if scope.contains(&tenant) {
            out.push(Rotation {
                tenant,
                from: u32::try_from(from)?,
                to: u32::try_from(to)?,
                state,
                switched_at,
            });
        }
    }
    Ok(out)
}

/// A new index key for every tenant that has one, all recorded in one transaction: an
/// interrupted run leaves every tenant's rotation open, so the next run continues them all
/// rather than rotating some twice.
async fn start_rotations(
    db: &Db,
    crypto: &FieldCrypto,
    scope: &[TenantId],
) -> anyhow::Result<Vec<Rotation>> {
    let provider = crypto.provider();
    let mut fresh = vec![];
    for tenant in scope {
        // A tenant that never made an index has nothing to rotate.
        let Some(from) = crypto.active_index_version(tenant).await? else {
            continue;
        };
        let to = crypto
            .newest_version(tenant, PURPOSE_INDEX)
            .await?
            .unwrap_or(from)
            .max(from)
            + 1;
        // Made before the transaction: the provider may be slow.
        let (_, wrapped, key_id) = provider
            .generate_data_key(&KeyContext::new(tenant, PURPOSE_INDEX))
            .await?;
        fresh.push((tenant.clone(), from, to, wrapped, key_id));
    }
    let now = crate::clock::now_unix();
    let mut tx = db.begin_write().await?;
    let mut out = vec![];
    for (tenant, from, to, wrapped, key_id) in fresh {
        sqlx::query(
            "INSERT INTO blind_index_rotations (tenant_id, from_version, to_version, state, started_at)
             VALUES ($1, $2, $3, 'building', $4)",
        )
        .bind(tenant.as_str())
        .bind(i64::from(from))
        .bind(i64::from(to))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO data_keys (tenant_id, purpose, version, provider, key_id, wrapped_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant.as_str())
        .bind(PURPOSE_INDEX)
        .bind(i64::from(to))
        .bind(provider.name())
        .bind(key_id)
        .bind(wrapped)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        out.push(Rotation {
            tenant,
            from,
            to,
            state: "building".to_owned(),
            switched_at: None,
        });
    }
    tx.commit().await?;
    Ok(out)
}

/// A row's index values under the new key, from its decrypted columns.
async fn recompute(
    crypto: &FieldCrypto,
    r: &Rotation,
    t: &IndexedTable,
    row: &sqlx::any::AnyRow,
) -> anyhow::Result<(String, Vec<(Vec<u8>, Vec<u8>)>)> {
    use sqlx::Row;
    let IndexSource::Sealed { reads, inputs } = t.source else {
        anyhow::bail!("{} is not recomputed from its own columns", t.table);
    };
    let id: String = row.try_get(0)?;
    let mut plain = Vec::with_capacity(reads.len());
    for (i, (_, aad_col)) in reads.iter().enumerate() {
        let ct: Vec<u8> = row.try_get(1 + t.columns.len() + i)?;
        let aad = FieldAad {
            tenant: &r.tenant,
            table: t.table,
            column: aad_col,
            row: &id,
        };
        plain.push(crypto.decrypt_str(aad, &ct).await?);
    }
    let views: Vec<&str> = plain.iter().map(|p| p.expose().as_str()).collect();
    let ins = inputs(&views)
        .filter(|v| v.len() == t.columns.len())
        .ok_or_else(|| anyhow::anyhow!("{} row {id}: unexpected columns", t.table))?;
    let mut values = Vec::with_capacity(ins.len());
    for (i, (what, input)) in ins.iter().enumerate() {
        let old: Vec<u8> = row.try_get(1 + i)?;
        let new = crypto.blind_index_at(&r.tenant, r.to, what, input).await?;
        values.push((old, new));
    }
    Ok((id, values))
}

/// The rows of `t` in `r`'s tenant that `filter` selects, a batch at a time after `after`:
/// id, the index columns, then the ciphertexts they are computed from.
async fn fetch_rows(
    db: &Db,
    r: &Rotation,
    t: &IndexedTable,
    filter: &str,
    after: &str,
    batch: i64,
) -> anyhow::Result<Vec<sqlx::any::AnyRow>> {
    let IndexSource::Sealed { reads, .. } = t.source else {
        return Ok(vec![]);
    };
    let cols: Vec<&str> = t
        .columns
        .iter()
        .copied()
        .chain(reads.iter().map(|(c, _)| *c))
        .collect();
    let table = t.table;
    Ok(sqlx::query(&format!(
        "SELECT id, {cols} FROM {table} WHERE {owner} AND id > $2 AND ({filter})
         ORDER BY id LIMIT $4",
        cols = cols.join(", "),
        owner = owner_clause(t.scope, table),
    ))
    .bind(r.tenant.as_str())
    .bind(after)
    .bind(i64::from(r.to))
    .bind(batch)
    .fetch_all(db.pool())
    .await?)
}

/// How many rows of `t` in `r`'s tenant `filter` selects (binds: $1 tenant, $2 version).
/// Records one row's old and new value of one index column beside the live one (a repeat
/// overwrites: a resumed build may recompute a row).
async fn put_next(
    conn: &mut sqlx::AnyConnection,
    r: &Rotation,
    t: &IndexedTable,
    col: &str,
    id: &str,
    old: &[u8],
    new: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blind_index_next
             (tenant_id, to_version, table_name, column_name, row_id, old_value, new_value)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, to_version, table_name, column_name, row_id)
         DO UPDATE SET old_value = excluded.old_value, new_value = excluded.new_value",
    )
    .bind(r.tenant.as_str())
    .bind(i64::from(r.to))
    .bind(t.table)
    .bind(col)
    .bind(id)
    .bind(old)
    .bind(new)
    .execute(conn)
    .await?;
    Ok(())
}

async fn count_where(
    exec: &mut sqlx::AnyConnection,
    r: &Rotation,
    t: &IndexedTable,
    filter: &str,
) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE {owner} AND ({filter}) AND $2 = $2",
        table = t.table,
        owner = owner_clause(t.scope, t.table),
    ))
    .bind(r.tenant.as_str())
    .bind(i64::from(r.to))
    .fetch_one(&mut *exec)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn tables_of(r: &Rotation) -> impl Iterator<Item = &'static IndexedTable> {
    let scope = if &r.tenant == crate::accounts::platform() {
        Scope::Platform
    } else {
        Scope::Practice
    };
    INDEXED.iter().filter(move |t| t.scope == scope)
}

/// Builds the new values of every row not yet built (or changed since), batch by batch, each
/// batch committed: an interrupted build continues where it stopped. Returns true if the
/// batch budget ran out first.
async fn build(
    db: &Db,
    crypto: &FieldCrypto,
    r: &Rotation,
    batch: i64,
    budget: &mut Option<u64>,
    summary: &mut RotateIndexSummary,
) -> anyhow::Result<bool> {
    for t in tables_of(r).filter(|t| matches!(t.source, IndexSource::Sealed { .. })) {
        let filter = any_unmatched(t, "old_value", "$3");
        let mut conn = db.pool().acquire().await?;
        let total = count_where(&mut conn, r, t, "1 = 1").await?;
        let missing = count_where(&mut conn, r, t, &any_unmatched(t, "old_value", "$2")).await?;
        drop(conn);
        let mut pb = Progress::new(
            total,
            total.saturating_sub(missing),
            format!("{} {} build", r.tenant, t.table),
        );
        let mut after = String::new();
        loop {
            if *budget == Some(0) {
                pb.finish();
                return Ok(true);
            }
            let rows = fetch_rows(db, r, t, &filter, &after, batch).await?;
            if rows.is_empty() {
                break;
            }
            // Decrypt and hash outside the transaction, then write the batch.
            let mut built = vec![];
            for row in &rows {
                built.push(recompute(crypto, r, t, row).await?);
            }
            let mut tx = db.begin_write().await?;
            for (id, values) in &built {
                for (col, (old, new)) in t.columns.iter().zip(values) {
                    put_next(&mut tx, r, t, col, id, old, new).await?;
                    summary.values_built += 1;
                }
            }
            tx.commit().await?;
            if let Some((id, _)) = built.last() {
                after = id.clone();
            }
            pb.inc(rows.len() as u64);
            if let Some(b) = budget.as_mut() {
                *b = b.saturating_sub(1);
            }
        }
        pb.finish();
    }
    Ok(false)
}

/// In one transaction: every row takes its new values, copies are re-keyed (or dropped), and
/// the rotation is marked switched, which is what makes lookups use the new key. Rows written
/// since the build are built first; if more keep arriving, it tries again a few times.
async fn switch(
    db: &Db,
    crypto: &FieldCrypto,
    r: &mut Rotation,
    batch: i64,
    summary: &mut RotateIndexSummary,
) -> anyhow::Result<()> {
    for _ in 0..5 {
        build(db, crypto, r, batch, &mut None, summary).await?;
        let now = crate::clock::now_unix();
        let mut tx = db.begin_write().await?;
        let mut missing = 0;
        for t in tables_of(r).filter(|t| matches!(t.source, IndexSource::Sealed { .. })) {
            missing += count_where(&mut tx, r, t, &any_unmatched(t, "old_value", "$2")).await?;
        }
        if missing > 0 {
            tx.rollback().await?;
            continue;
        }
        let mut switched = 0;
        for t in tables_of(r) {
            let table = t.table;
            let owner = owner_clause(t.scope, table);
            for col in t.columns {
                match t.source {
                    IndexSource::Sealed { .. } => {
                        let side = format!(
                            "FROM blind_index_next n WHERE n.tenant_id = $1 AND n.to_version = $2
                               AND n.table_name = '{table}' AND n.column_name = '{col}'
                               AND n.row_id = {table}.id AND n.old_value = {table}.{col}"
                        );
                        let done = sqlx::query(&format!(
                            "UPDATE {table} SET {col} = (SELECT n.new_value {side})
                             WHERE {owner} AND EXISTS (SELECT 1 {side})"
                        ))
                        .bind(r.tenant.as_str())
                        .bind(i64::from(r.to))
                        .execute(&mut *tx)
                        .await?;
                        switched += done.rows_affected();
                    }
                    IndexSource::CopyOf {
                        table: src,
                        column: src_col,
                    } => {
                        let (rekeyed, dropped) =
                            rekey_copies(&mut tx, r, t, col, src, src_col, true).await?;
                        summary.copies_rekeyed += rekeyed;
                        summary.copies_dropped += dropped;
                    }
                }
            }
        }
        let marked = sqlx::query(
            "UPDATE blind_index_rotations SET state = 'switched', switched_at = $3
             WHERE tenant_id = $1 AND to_version = $2 AND state = 'building'",
        )
        .bind(r.tenant.as_str())
        .bind(i64::from(r.to))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        anyhow::ensure!(
            marked.rows_affected() == 1,
            "the rotation of {} changed under this run (is another one running?)",
            r.tenant
        );
        tx.commit().await?;
        summary.values_switched += switched;
        r.state = "switched".to_owned();
        r.switched_at = Some(now);
        return Ok(());
    }
    anyhow::bail!(
        "rows of {} kept changing during the switch; run the command again",
        r.tenant
    )
}

/// Re-keys a copy column through its source's old → new values; with `drop_unmapped`, deletes
/// copies whose value no source row holds any more (they name no account).
async fn rekey_copies(
    tx: &mut sqlx::AnyConnection,
    r: &Rotation,
    t: &IndexedTable,
    col: &str,
    src: &str,
    src_col: &str,
    drop_unmapped: bool,
) -> anyhow::Result<(u64, u64)> {
    let table = t.table;
    let owner = owner_clause(t.scope, table);
    let side = format!(
        "FROM blind_index_next n WHERE n.tenant_id = $1 AND n.to_version = $2
           AND n.table_name = '{src}' AND n.column_name = '{src_col}'
           AND n.old_value = {table}.{col}"
    );
    let rekeyed = sqlx::query(&format!(
        "UPDATE {table} SET {col} = (SELECT n.new_value {side} LIMIT 1)
         WHERE {owner} AND EXISTS (SELECT 1 {side})"
    ))
    .bind(r.tenant.as_str())
    .bind(i64::from(r.to))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let dropped = if drop_unmapped {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE {owner} AND $2 = $2
               AND NOT EXISTS (SELECT 1 FROM {src} s WHERE s.{src_col} = {table}.{col})"
        ))
        .bind(r.tenant.as_str())
        .bind(i64::from(r.to))
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        0
    };
    Ok((rekeyed, dropped))
}

/// After the switch and its grace: rows that do not hold a new value built for them (written
/// around the switch, perhaps under the old key) are recomputed and fixed, and copies written
/// under the old key are re-keyed.
async fn catch_up(
    db: &Db,
    crypto: &FieldCrypto,
    r: &Rotation,
    batch: i64,
    summary: &mut RotateIndexSummary,
) -> anyhow::Result<()> {
    for t in tables_of(r) {
        match t.source {
            IndexSource::Sealed { .. } => {
                let filter = any_unmatched(t, "new_value", "$3");
                let mut after = String::new();
                loop {
                    let rows = fetch_rows(db, r, t, &filter, &after, batch).await?;
                    if rows.is_empty() {
                        break;
                    }
                    let mut built = vec![];
                    for row in &rows {
                        built.push(recompute(crypto, r, t, row).await?);
                    }
                    let mut tx = db.begin_write().await?;
                    for (id, values) in &built {
                        for (col, (old, new)) in t.columns.iter().zip(values) {
                            put_next(&mut tx, r, t, col, id, old, new).await?;
                            if old != new {
                                let fixed = sqlx::query(&format!(
                                    "UPDATE {table} SET {col} = $1 WHERE id = $2 AND {col} = $3",
                                    table = t.table
                                ))
                                .bind(new)
                                .bind(id)
                                .bind(old)
                                .execute(&mut *tx)
                                .await?;
                                summary.caught_up += fixed.rows_affected();
                            }
                        }
                    }
                    tx.commit().await?;
                    if let Some((id, _)) = built.last() {
                        after = id.clone();
                    }
                }
            }
            IndexSource::CopyOf {
                table: src,
                column: src_col,
            } => {
                let mut tx = db.begin_write().await?;
                for col in t.columns {
                    // Copies naming no account can't be told from new ones now: kept.
                    let (rekeyed, _) =
                        rekey_copies(&mut tx, r, t, col, src, src_col, false).await?;
                    summary.copies_rekeyed += rekeyed;
                }
                tx.commit().await?;
            }
        }
    }
    Ok(())
}

/// Ends a rotation: its built values are dropped and every older index key of the tenant is
/// destroyed, so nothing can compute an index under it again.
async fn retire(db: &Db, r: &Rotation) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM blind_index_next WHERE tenant_id = $1 AND to_version = $2")
        .bind(r.tenant.as_str())
        .bind(i64::from(r.to))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1 AND purpose = $2 AND version < $3")
        .bind(r.tenant.as_str())
        .bind(PURPOSE_INDEX)
        .bind(i64::from(r.to))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE blind_index_rotations SET state = 'retired', retired_at = $3
         WHERE tenant_id = $1 AND to_version = $2 AND state = 'switched'",
    )
    .bind(r.tenant.as_str())
    .bind(i64::from(r.to))
    .bind(crate::clock::now_unix())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phi::Phi;
    use std::sync::Arc;

    /// Every `*_ct` column either migration set creates is one `keys reencrypt` re-encrypts.
    #[test]
    fn every_encrypted_column_is_reencrypted() {
        let known: Vec<&str> = ENCRYPTED
            .iter()
            .flat_map(|t| t.columns.iter().map(|(c, _)| *c))
            .collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut seen = 0;
        for dialect in ["sqlite", "postgres"] {
            for entry in std::fs::read_dir(root.join(dialect)).expect("migrations") {
                let sql = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
                for word in sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.len() > 3 && word.ends_with("_ct") {
                        seen += 1;
                        assert!(
                            known.contains(&word),
                            "{dialect}: {word} is encrypted but not in keys::ENCRYPTED"
                        );
                    }
                }
            }
        }
        assert!(seen >= known.len(), "the migrations were read");
    }

    /// (table, column) of every column the migrations of `dialect` create or add: `CREATE
    /// TABLE name (…)` column definitions and `ALTER TABLE name ADD [COLUMN] column`.
    fn migration_columns(dialect: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut out = vec![];
        let mut files: Vec<_> = std::fs::read_dir(root.join(dialect))
            .expect("migrations")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(&file).expect("read");
            let sql: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let mut tokens = vec![];
            let mut word = String::new();
            for c in sql.chars() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                if "(),;".contains(c) {
                    tokens.push(c.to_string());
                }
            }
            let up = |i: usize| tokens.get(i).map(|t| t.to_ascii_uppercase());
            let mut i = 0;
            while i < tokens.len() {
                if up(i).as_deref() == Some("CREATE") {
                    let mut j = i + 1;
                    while matches!(up(j).as_deref(), Some("TEMP" | "TEMPORARY")) {
                        j += 1;
                    }
                    if up(j).as_deref() == Some("TABLE") {
                        j += 1;
                        if up(j).as_deref() == Some("IF") {
                            j += 3;
                        }
                        let table = tokens[j].clone();
                        if tokens.get(j + 1).map(String::as_str) == Some("(") {
                            let mut depth = 1;
                            let mut k = j + 2;
                            let mut starts_def = true;
                            while depth > 0 && k < tokens.len() {
                                match tokens[k].as_str() {
                                    "(" => depth += 1,
                                    ")" => depth -= 1,
                                    "," if depth == 1 => {
                                        starts_def = true;
                                        k += 1;
                                        continue;
                                    }
                                    t if starts_def && depth == 1 => {
                                        let kw = t.to_ascii_uppercase();
                                        if !matches!(
                                            kw.as_str(),
                                            "PRIMARY"
                                                | "UNIQUE"
                                                | "CHECK"
                                                | "FOREIGN"
                                                | "CONSTRAINT"
                                        ) {
                                            out.push((table.clone(), t.to_owned()));
                                        }
                                    }
                                    _ => {}
                                }
                                starts_def = false;
                                k += 1;
                            }
                            i = k;
                            continue;
                        }
                    }
                }
                if up(i).as_deref() == Some("ALTER") && up(i + 1).as_deref() == Some("TABLE") {
                    let table = tokens[i + 2].clone();
                    if up(i + 3).as_deref() == Some("ADD") {
                        let col = if up(i + 4).as_deref() == Some("COLUMN") {
                            i + 5
                        } else {
                            i + 4
                        };
                        out.push((table, tokens[col].clone()));
                    }
                }
                i += 1;
            }
        }
        out
    }

    /// Every blind-index column (named `*_bidx` or `*_index`) either migration set creates is
    /// one `keys rotate-index` rotates, and every column it rotates exists in both.
    #[test]
    fn every_blind_index_column_is_rotated() {
        let known: Vec<(&str, &str)> = INDEXED
            .iter()
            .flat_map(|t| t.columns.iter().map(|c| (t.table, *c)))
            .collect();
        for dialect in ["sqlite", "postgres"] {
            let columns = migration_columns(dialect);
            assert!(
                columns.contains(&("patients".into(), "phone_ct".into()))
                    && columns.contains(&("user_grants".into(), "reason_ct".into())),
                "{dialect}: the migrations were parsed"
            );
            let indexes: Vec<&(String, String)> = columns
                .iter()
                .filter(|(_, c)| c.ends_with("_bidx") || c.ends_with("_index"))
                .collect();
            for (table, column) in &indexes {
                assert!(
                    known.contains(&(table.as_str(), column.as_str())),
                    "{dialect}: {table}.{column} is a blind index but not in keys::INDEXED"
                );
            }
            for (table, column) in &known {
                assert!(
                    indexes.iter().any(|(t, c)| t == table && c == column),
                    "{dialect}: keys::INDEXED names {table}.{column}, which no migration makes"
                );
            }
        }
        // The copy's source is itself rotated.
        for t in INDEXED {
            if let IndexSource::CopyOf { table, column } = t.source {
                assert!(known.contains(&(table, column)), "{table}.{column}");
            }
        }
    }

    /// Account emails and TOTP secrets (the platform's keys) move to a new key version too,
    /// and still open afterwards.
    #[tokio::test]
    async fn accounts_are_rotated_and_reencrypted() {
        let (dir, db) = crate::db::temp_sqlite().await;
        let provider =
            crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
        let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
        let now = crate::clock::now_unix();
        let practice = crate::billing::create_tenant(&db, "Test Practice", "(555) 010-0000")
            .await
            .expect("practice");
        let (user, _) = crate::accounts::add_user(
            &db,
            &crypto,
            "officer@example.org",
            crate::access::Role::SecurityOfficer,
            Some(&practice),
            now,
        )
        .await
        .expect("user");
        crate::accounts::totp_setup(&db, &crypto, &user)
            .await
            .expect("totp");
        let platform = crate::accounts::platform();
        let rotated = rotate(&db, &crypto, None, false).await.expect("rotate");
        assert!(rotated.rotated.contains(&(platform.as_str().to_owned(), 2)));
        let moved = reencrypt(&db, &crypto, None, 10, false)
            .await
            .expect("reencrypt");
        assert_eq!(moved.values_reencrypted, 2, "the email and the TOTP secret");
        let status = status(&db).await.expect("status");
        let under = |v: u32| {
            status
                .iter()
                .find(|k| {
                    k.tenant == platform.as_str() && k.purpose == PURPOSE_FIELD && k.version == v
                })
                .map(|k| k.values)
        };
        assert_eq!((under(1), under(2)), (Some(0), Some(2)));
        crypto.flush_cache();
        let list = crate::accounts::list(&db, &crypto).await.expect("list");
        assert!(list.iter().any(|u| u.email == "officer@example.org"));
        crate::accounts::current_totp(&db, &crypto, &user, now)
            .await
            .expect("the TOTP secret still opens");
    }

    /// Every stored blind-index value, by table, column and row.
    async fn index_values(db: &Db) -> Vec<(String, String, Vec<u8>)> {
        let mut out = vec![];
        for t in INDEXED {
            for c in t.columns {
                let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
                    "SELECT CAST(id AS TEXT), {c} FROM {} ORDER BY id",
                    t.table
                ))
                .fetch_all(db.pool())
                .await
                .expect("values");
                for (id, v) in rows {
                    out.push((format!("{}.{c}", t.table), id, v));
                }
            }
        }
        out
    }

    /// Interrupted after one batch, lookups still work on the old values; a second run
    /// continues (no second new key), takes a row added meanwhile, switches, re-keys the
    /// failure records of an account and drops one naming none, and destroys the old keys.
    /// A row written under the old key around the switch is caught up.
    #[tokio::test]
    async fn rotate_index_resumes_and_switches() {
        let (dir, db) = crate::db::temp_sqlite().await;
        let provider =
            crate::crypto::LocalKeyProvider::load_or_create(&dir.path().join("k")).expect("key");
        let crypto = FieldCrypto::new(db.clone(), Arc::new(provider));
        let practice = crate::demo::ensure(&db, &crypto).await.expect("demo");
        let now = crate::clock::now_unix();
        crate::accounts::add_user(
            &db,
            &crypto,
            "officer@example.org",
            crate::access::Role::SecurityOfficer,
            Some(&practice),
            now,
        )
        .await
        .expect("user");
        for email in ["officer@example.org", "nobody@example.org"] {
            // Claimed and never released: a recorded failure.
            let _failed = crate::accounts::claim_attempt(&db, &crypto, email, "192.0.2.1", now)
                .await
                .expect("failure recorded");
        }
        let platform = crate::accounts::platform().clone();
        let before = index_values(&db).await;
        let p1 = &crate::demo::PATIENTS[0];
        let opts = |max_batches| RotateIndexOptions {
            only: None,
            batch: 1,
            grace: Duration::ZERO,
            max_batches,
        };

        let first = rotate_index(&db, &crypto, &opts(Some(2)))
            .await
            .expect("run 1");
        assert!(first.stopped_early);
        // The platform first (its id sorts first): one account's email in one batch; then one
        // patient's three indexes, and the budget is spent.
        assert_eq!(first.values_built, 4);
        assert_eq!(index_values(&db).await, before, "nothing switched yet");
        assert_eq!(
            crate::billing::find_by_phone(&db, &crypto, &practice, p1.phone)
                .await
                .expect("lookup")
                .len(),
            1,
            "lookups use the old key while building"
        );
        assert!(
            crate::accounts::email_taken(&db, &crypto, "officer@example.org")
                .await
                .expect("lookup")
        );
        // A patient arrives mid-build: indexed under the old key, as lookups still are.
        let late = crate::billing::import_patient(
            &db,
            &crypto,
            &practice,
            &crate::billing::NewPatient {
                first_name: Phi::new("Late".into()),
                last_name: Phi::new("Arrival".into()),
                dob: Phi::new("1990-01-02".into()),
                zip: Phi::new("60601".into()),
                phone: Phi::new("+15550109999".into()),
                account_number: Phi::new("LATE-1".into()),
            },
        )
        .await
        .expect("import");

        let second = rotate_index(&db, &crypto, &opts(None))
            .await
            .expect("run 2");
        assert_eq!(
            second.resumed, 2,
            "the practice's and the platform's rotations"
        );
        assert!(!second.stopped_early);
        assert_eq!(second.retired, 2);
        assert_eq!(second.copies_rekeyed, 1, "the account's failure record");
        assert_eq!(second.copies_dropped, 1, "the failure naming no account");
        let after = index_values(&db).await;
        for (col, id, old) in &before {
            let now = after.iter().find(|(c, i, _)| c == col && i == id);
            if let Some((_, _, new)) = now {
                assert_ne!(new, old, "{col} of {id} changed");
            } else {
                assert_eq!(col, "login_failures.email_index", "only a failure row went");
            }
        }
        for tenant in [&practice, &platform] {
            let versions: Vec<i64> = sqlx::query_scalar(
                "SELECT version FROM data_keys WHERE tenant_id = $1 AND purpose = $2",
            )
            .bind(tenant.as_str())
            .bind(PURPOSE_INDEX)
            .fetch_all(db.pool())
            .await
            .expect("keys");
            assert_eq!(versions, [2], "only the new key is left");
        }
        assert_eq!(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blind_index_next")
                .fetch_one(db.pool())
                .await
                .expect("side"),
            0
        );
        assert_eq!(
            crate::billing::find_by_phone(&db, &crypto, &practice, p1.phone)
                .await
                .expect("lookup")
                .len(),
            1
        );
        assert_eq!(
            crate::billing::find_by_account(&db, &crypto, &practice, "LATE-1")
                .await
                .expect("lookup"),
            std::slice::from_ref(&late)
        );
        assert!(
            crate::accounts::email_taken(&db, &crypto, "officer@example.org")
                .await
                .expect("lookup")
        );

        // A third rotation, driven step by step: a row written under the old key after the
        // switch (a request that read the version just before it) is fixed by the catch-up.
        let mut summary = RotateIndexSummary::default();
        let mut open = start_rotations(&db, &crypto, std::slice::from_ref(&practice))
            .await
            .expect("start");
        let r = &mut open[0];
        assert_eq!((r.from, r.to), (2, 3));
        assert!(!build(&db, &crypto, r, 10, &mut None, &mut summary)
            .await
            .expect("build"));
        switch(&db, &crypto, r, 10, &mut summary)
            .await
            .expect("switch");
        let stale = crypto
            .blind_index_at(&practice, 2, "phone", "+15550100001")
            .await
            .expect("old key still there until retired");
        sqlx::query("UPDATE patients SET phone_bidx = $1 WHERE id = $2")
            .bind(&stale)
            .bind(late.as_str())
            .execute(db.pool())
            .await
            .expect("stale write");
        catch_up(&db, &crypto, r, 10, &mut summary)
            .await
            .expect("catch up");
        assert_eq!(summary.caught_up, 1);
        retire(&db, r).await.expect("retire");
        assert_eq!(
            crate::billing::find_by_account(&db, &crypto, &practice, "LATE-1")
                .await
                .expect("lookup"),
            std::slice::from_ref(&late)
        );
        // The late patient's phone index was recomputed from its own phone, not the stale one.
        assert_eq!(
            crate::billing::find_by_phone(&db, &crypto, &practice, "+15550109999")
                .await
                .expect("lookup"),
            [late]
        );
    }
}
