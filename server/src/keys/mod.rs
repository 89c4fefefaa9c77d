//! Key management operations behind `patriotpay keys …`: rotate data keys, re-wrap them under
//! another master key, re-encrypt field values under the newest key, rotate blind-index keys,
//! and report status. Each is safe to interrupt and run again.
//! The blind-index rotation lives in `index`.

use crate::crypto::{
    ciphertext_version, FieldAad, FieldCrypto, KeyContext, PURPOSE_FIELD, PURPOSE_INDEX,
};
use crate::db::Db;
use crate::ids::TenantId;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

mod index;
mod indexed;
pub use index::*;
pub use indexed::*;

/// Whose keys encrypt a table's values: each row's practice (`tenant_id` column), or the
/// platform's (accounts belong to no one practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Practice,
    Platform,
}

impl Scope {
    /// Whether a table of this scope holds rows under a tenant of `tenant_scope`. A practice
    /// table's rows are keyed by their `tenant_id`, which for a few rows is the platform's own
    /// (the outbox's account email), so the platform's keys cover practice tables too.
    pub fn covers(self, tenant_scope: Scope) -> bool {
        self == tenant_scope || self == Scope::Practice
    }
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
            // From statement import (migration 0020); NULL for patients made before it.
            ("address_ct", "address"),
            ("email_ct", "email"),
            ("guarantor_ct", "guarantor"),
            ("external_id_ct", "external_id"),
        ],
    },
    EncryptedTable {
        table: "statement_lines",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[
            ("service_date_ct", "service_date"),
            ("description_ct", "description"),
            ("procedure_code_ct", "procedure_code"),
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
    // Why staff unlocked a locked pay link (support console), under the link's practice.
    EncryptedTable {
        table: "pay_link_unlocks",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[("reason_ct", "reason")],
    },
    // Why staff viewed as a patient, under the patient's practice.
    EncryptedTable {
        table: "view_as_sessions",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[("reason_ct", "reason")],
    },
    // Outgoing messages, under the sending practice (or, for account email, the platform's
    // tenant id: `Scope::covers`).
    EncryptedTable {
        table: "outbox",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[
            ("recipient_ct", "recipient"),
            ("subject_ct", "subject"),
            ("body_ct", "body"),
        ],
    },
    // Replies to texts: who sent them and what they said, under the practice they answer.
    EncryptedTable {
        table: "inbound_messages",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[("from_ct", "from"), ("body_ct", "body")],
    },
    // The text-message consent ledger's numbers, under the practice.
    EncryptedTable {
        table: "sms_consents",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[("phone_ct", "phone")],
    },
    // A security officer's notes on an alert, under the alert's practice (or the platform's).
    EncryptedTable {
        table: "alert_notes",
        scope: Scope::Practice,
        id: RowId::Text,
        columns: &[("note_ct", "note")],
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
            scope: table_scope,
        } in ENCRYPTED.iter().filter(|t| t.scope.covers(scope))
        {
            // Platform tables have no tenant column: `$1 = $1` keeps the binds the same.
            let owner = match table_scope {
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

#[cfg(test)]
mod tests;
