//! Blind-index rotation (`keys rotate-index`). Index keys are data keys of purpose
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

use super::*;

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
pub(super) struct Progress {
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
pub(super) struct Rotation {
    tenant: TenantId,
    pub(super) from: u32,
    pub(super) to: u32,
    state: String,
    switched_at: Option<i64>,
}

fn owner_clause(t: &IndexedTable) -> String {
    // Platform tables have no tenant column: `$1 = $1` keeps the binds the same.
    match t.scope {
        Scope::Practice => format!("{}.tenant_id = $1 AND ({})", t.table, t.rows),
        Scope::Platform => format!("$1 = $1 AND ({})", t.rows),
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
pub(super) async fn start_rotations(
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
        owner = owner_clause(t),
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
        owner = owner_clause(t),
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
    INDEXED.iter().filter(move |t| t.scope.covers(scope))
}

/// Builds the new values of every row not yet built (or changed since), batch by batch, each
/// batch committed: an interrupted build continues where it stopped. Returns true if the
/// batch budget ran out first.
pub(super) async fn build(
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
pub(super) async fn switch(
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
            let owner = owner_clause(t);
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
    let owner = owner_clause(t);
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
pub(super) async fn catch_up(
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
pub(super) async fn retire(db: &Db, r: &Rotation) -> anyhow::Result<()> {
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
