//! Key management operations behind `patriotpay keys …`: rotate data keys, re-wrap them under
//! another master key, re-encrypt field values under the newest key, and report status. Each is
//! safe to interrupt and run again, and each has a dry run.

use crate::crypto::{
    ciphertext_version, FieldAad, FieldCrypto, KeyContext, PURPOSE_FIELD, PURPOSE_INDEX,
};
use crate::db::Db;
use crate::ids::TenantId;
use indicatif::{ProgressBar, ProgressStyle};

/// Every encrypted column: table, SQL column, and the column name bound into its ciphertext.
pub const ENCRYPTED_COLUMNS: &[(&str, &[(&str, &str)])] = &[
    (
        "patients",
        &[
            ("first_name_ct", "first_name"),
            ("last_name_ct", "last_name"),
            ("dob_ct", "dob"),
            ("zip_ct", "zip"),
            ("phone_ct", "phone"),
            ("account_number_ct", "account_number"),
        ],
    ),
    (
        "statement_lines",
        &[
            ("service_date_ct", "service_date"),
            ("description_ct", "description"),
        ],
    ),
];

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

async fn tenants(db: &Db, only: Option<&TenantId>) -> anyhow::Result<Vec<TenantId>> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    let all: Vec<TenantId> = ids.into_iter().map(TenantId::from_db).collect();
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
        for (table, cols) in ENCRYPTED_COLUMNS {
            let total: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"
            ))
            .bind(tenant.as_str())
            .fetch_one(db.pool())
            .await?;
            let pb = progress(total as u64, table);
            let col_list = cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ");
            let mut after = String::new();
            loop {
                let rows = sqlx::query(&format!(
                    "SELECT id, {col_list} FROM {table} WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(tenant.as_str())
                .bind(&after)
                .bind(batch)
                .fetch_all(db.pool())
                .await?;
                if rows.is_empty() {
                    break;
                }
                // Encrypt outside the transaction (the provider may be slow), then write the batch.
                let mut updates: Vec<(String, &str, Vec<u8>, Vec<u8>)> = vec![];
                for row in &rows {
                    use sqlx::Row;
                    let id: String = row.try_get(0)?;
                    for (i, (sql_col, aad_col)) in cols.iter().enumerate() {
                        let ct: Vec<u8> = row.try_get(i + 1)?;
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
                        updates.push((id.clone(), sql_col, ct, fresh));
                    }
                    after = id;
                }
                summary.rows += rows.len() as u64;
                summary.values_reencrypted += updates.len() as u64;
                if !dry_run && !updates.is_empty() {
                    let mut tx = db.begin_write().await?;
                    for (id, col, old, new) in updates {
                        // Guarded on the old value: a concurrent write wins, and is already current.
                        sqlx::query(&format!(
                            "UPDATE {table} SET {col} = $1 WHERE id = $2 AND {col} = $3"
                        ))
                        .bind(new)
                        .bind(&id)
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
    for (table, cols) in ENCRYPTED_COLUMNS {
        for (col, _) in cols.iter() {
            let values: Vec<(String, Vec<u8>)> =
                sqlx::query_as(&format!("SELECT tenant_id, {col} FROM {table}"))
                    .fetch_all(db.pool())
                    .await?;
            for (t, ct) in values {
                if let Some(v) = ciphertext_version(&ct) {
                    *counts.entry((t, v)).or_default() += 1;
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
