//! One import run, whatever it came from (file, API batch, staff upload): the file read on a
//! blocking thread and handed over one statement at a time through a small channel (memory stays
//! flat however big the file), each statement written or refused, then a commit or a rollback
//! (dry run; all-or-nothing with a refusal), the run recorded in `imports` and audited.

use super::store::{Importer, StoreError, Written};
use super::{Format, IntakeError, ParsedStatement};
use crate::audit::{self, Actor, Outcome};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::TenantId;
use std::sync::Arc;

/// Refusals kept word for word in a summary; past this they are counted only.
pub const MAX_LISTED: usize = 1_000;
/// Statements in flight between the reader thread and the writer.
const CHANNEL: usize = 256;
/// Statements written together (a few multi-row inserts each; see `store::batch`).
const BATCH: usize = 256;

/// Where an import came from (the `imports.source` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cli,
    Api,
    Staff,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Api => "api",
            Source::Staff => "staff",
        }
    }
}

/// How to run an import.
#[derive(Clone, Debug)]
pub struct Options {
    pub tenant: TenantId,
    pub format: Format,
    /// Report what would happen and write nothing.
    pub dry_run: bool,
    /// Take the good statements even if some are refused (otherwise one refusal writes nothing).
    pub partial: bool,
    pub source: Source,
    /// Who runs it (`cli`, `user:<id>`, `apikey:<id>`), with the request's id and address when
    /// it came over HTTP: the history row keeps the id, the audit event all of it.
    pub actor: Actor,
    pub now: i64,
    /// Where a credit balance is flagged for staff.
    pub alerts: crate::alerts::AlertSink,
    /// The portal's public URL: new statements' texts link to it.
    pub public_url: String,
}

/// What one statement came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Created,
    Updated,
    Unchanged,
    /// Refused, with every reason (naming line or index and field, never a value).
    Rejected(String),
}

/// One statement's outcome in the order read (index from 0), for answers that list every record
/// (the API). The statement id is the sender's opaque key, when the record had a readable one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub index: usize,
    pub statement_id: Option<String>,
    pub fate: Fate,
    /// For a rejected record, each reason on its own (place and field, never a value).
    pub reasons: Vec<String>,
}

/// What an import did (or, in a dry run or after a refusal without `partial`, would have done).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub import_id: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// One line per refused statement, up to `MAX_LISTED`.
    pub rejections: Vec<String>,
    /// The file could not be read to its end, or is for another practice: nothing was written.
    pub fatal: Option<String>,
    /// The writes were committed.
    pub committed: bool,
    /// Every statement's outcome in file order, up to `MAX_LISTED` (the API's batch is never
    /// larger).
    pub records: Vec<Record>,
}

impl Summary {
    fn note(
        &mut self,
        index: usize,
        statement_id: Option<String>,
        fate: Fate,
        reasons: Vec<String>,
    ) {
        if index < MAX_LISTED {
            self.records.push(Record {
                index,
                statement_id,
                fate: fate.clone(),
                reasons,
            });
        }
        match fate {
            Fate::Created => self.created += 1,
            Fate::Updated => self.updated += 1,
            Fate::Unchanged => self.unchanged += 1,
            Fate::Rejected(why) => {
                self.rejected += 1;
                if self.rejections.len() < MAX_LISTED {
                    self.rejections.push(why);
                }
            }
        }
    }

    pub fn statements(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.rejected
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the file reader stopped: {0}")]
    Reader(String),
}

/// Imports a statement file. `progress` is told each statement handled (a count). The reader
/// runs on a blocking thread; what it reads is written as it comes.
pub async fn import<R>(
    db: &Db,
    crypto: Arc<FieldCrypto>,
    reader: R,
    opts: &Options,
    progress: impl Fn(u64),
) -> Result<Summary, RunError>
where
    R: std::io::Read + Send + 'static,
{
    import_as(db, crypto, reader, opts, None, progress).await
}

/// `import`, recorded under `import_id` when given: the id of an `imports` row the caller
/// inserted first (the API claims an idempotency key that way), which the run then completes.
pub async fn import_as<R>(
    db: &Db,
    crypto: Arc<FieldCrypto>,
    reader: R,
    opts: &Options,
    import_id: Option<String>,
    progress: impl Fn(u64),
) -> Result<Summary, RunError>
where
    R: std::io::Read + Send + 'static,
{
    let today = time::OffsetDateTime::from_unix_timestamp(opts.now)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<ParsedStatement, IntakeError>>(CHANNEL);
    let format = opts.format;
    let reading = tokio::task::spawn_blocking(move || {
        let items = match super::statements(format, reader, today) {
            Ok(items) => items,
            Err(m) => {
                let _ = tx.blocking_send(Err(IntakeError::Malformed(m)));
                return;
            }
        };
        for item in items {
            // The writer gave up (a fatal error): stop reading.
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    let mut summary = Summary {
        import_id: import_id.unwrap_or_else(new_import_id),
        ..Default::default()
    };
    let mut importer =
        Importer::begin(db, crypto, &opts.tenant, &opts.public_url, opts.now).await?;
    let mut handled = 0u64;
    let mut credit: Vec<String> = vec![];
    let mut batch: Vec<ParsedStatement> = Vec::with_capacity(BATCH);
    // Each statement of the file is one item: its place in the file is its index.
    let mut indexes: Vec<usize> = Vec::with_capacity(BATCH);
    let mut read = 0usize;
    loop {
        let item = rx.recv().await;
        let end = item.is_none();
        match item {
            Some(Ok(s)) => {
                batch.push(s);
                indexes.push(read);
                read += 1;
            }
            Some(Err(IntakeError::Rejected(r))) => {
                let id = r.statement_id.as_ref().map(ToString::to_string);
                let reasons = r.problems.iter().map(ToString::to_string).collect();
                summary.note(read, id, Fate::Rejected(r.to_string()), reasons);
                read += 1;
                handled += 1;
            }
            Some(Err(IntakeError::Malformed(m))) => {
                summary.fatal = Some(m.to_string());
                break;
            }
            None => {}
        }
        if batch.len() >= BATCH || (end && !batch.is_empty()) {
            let written = match importer.write_batch(&batch).await {
                Ok(w) => w,
                Err(StoreError::WrongPractice(why)) => {
                    summary.fatal = Some(why);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            for ((s, w), index) in batch.iter().zip(written).zip(indexes.iter().copied()) {
                let id = &s.statement.external_id;
                let mut reasons = vec![];
                let fate = match w {
                    Ok(Written::Created(_)) => Fate::Created,
                    Ok(Written::Updated(_)) => Fate::Updated,
                    Ok(Written::Unchanged(_)) => Fate::Unchanged,
                    Err(e) => {
                        if let StoreError::CreditBalance(why) = &e {
                            // Raised once the import's transaction is over (on SQLite it
                            // holds the write lock). The statement id is the sender's key.
                            credit.push(format!(
                                "statement {id} of practice {} re-sent below what was paid: {why}",
                                opts.tenant
                            ));
                        }
                        reasons.push(e.to_string());
                        Fate::Rejected(format!("statement {id} rejected: {e}"))
                    }
                };
                summary.note(index, Some(id.to_string()), fate, reasons);
            }
            handled += batch.len() as u64;
            batch.clear();
            indexes.clear();
            progress(handled);
        }
        if end {
            break;
        }
    }
    drop(rx);
    reading.await.map_err(|e| RunError::Reader(e.to_string()))?;
    let keep = !opts.dry_run && summary.fatal.is_none() && (summary.rejected == 0 || opts.partial);
    if keep {
        importer.commit().await?;
        summary.committed = true;
    } else {
        importer.rollback().await?;
    }
    for detail in &credit {
        opts.alerts
            .raise(
                db,
                Some(&opts.tenant),
                "import-credit-balance",
                detail,
                opts.now,
            )
            .await?;
    }
    summary.records.sort_by_key(|r| r.index);
    record(db, opts, &summary).await?;
    Ok(summary)
}

/// A fresh id for an `imports` row.
pub fn new_import_id() -> String {
    format!("imp_{}", uuid::Uuid::new_v4().simple())
}

/// The run's history row and its audit event (an import that wrote nothing is recorded too).
async fn record(db: &Db, opts: &Options, s: &Summary) -> Result<(), sqlx::Error> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO imports (id, tenant_id, source, actor, dry_run, created, updated, unchanged,
             rejected, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (id) DO UPDATE SET dry_run = excluded.dry_run, created = excluded.created,
             updated = excluded.updated, unchanged = excluded.unchanged,
             rejected = excluded.rejected, finished_at = excluded.finished_at",
    )
    .bind(&s.import_id)
    .bind(opts.tenant.as_str())
    .bind(opts.source.as_str())
    .bind(&opts.actor.id)
    .bind(i64::from(opts.dry_run))
    .bind(count(s.created))
    .bind(count(s.updated))
    .bind(count(s.unchanged))
    .bind(count(s.rejected))
    .bind(opts.now)
    .bind(crate::clock::now_unix())
    .execute(db.pool())
    .await?;
    let outcome = if s.committed || (opts.dry_run && s.fatal.is_none()) {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit::record(
        db.pool(),
        audit::Event {
            actor: &Actor {
                at: Some(opts.now),
                ..opts.actor.clone()
            },
            tenant: Some(&opts.tenant),
            patient: None,
            action: if opts.dry_run {
                "statements.import.dry_run"
            } else {
                "statements.import"
            },
            resource: Some(&s.import_id),
            outcome,
        },
    )
    .await?;
    Ok(())
}
