//! The process's group-commit writer (`GroupWriter`): one task writes everything handed to it
//! since its last commit in one transaction, on a connection of its own, and each caller waits
//! until the transaction holding its row has committed. What comes here: the audit events that
//! stand alone (page views, refusals), new session rows, and small statements that must be
//! durable before their caller answers (`OwnedStatement`: the processor-event queue's
//! bookkeeping), and read-then-write changes that would otherwise pay a commit of their own
//! (`Work`: booking a processor's payment). The page is sent only once its view is durable, but a busy server pays one
//! commit (one fsync) for many rows instead of one each; and on SQLite the one writer queues
//! rows in order instead of contending for the file's write lock. Events of a change are still
//! written inside the change's own transaction (`audit::record` on it).

use crate::audit::{Event, Outcome};
use crate::db::{fixed_chunks, Backend, Db, Params};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// At most this many events in one transaction: a bound on how long the first of them waits
/// behind the others' inserts (each is tens of microseconds).
const MAX_BATCH: usize = 256;

/// Events waiting for the writer beyond this many make the next request wait to hand its event
/// over (back-pressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// An event owned, to cross into the writer task.
struct OwnedEvent {
    id: String,
    at: i64,
    actor: String,
    on_behalf_of: Option<String>,
    tenant: Option<String>,
    patient: Option<String>,
    action: &'static str,
    resource: Option<String>,
    request_id: Option<String>,
    address: Option<String>,
    outcome: Outcome,
}

impl OwnedEvent {
    fn of(ev: &Event<'_>) -> OwnedEvent {
        OwnedEvent {
            id: uuid::Uuid::new_v4().to_string(),
            at: ev.actor.at.unwrap_or_else(crate::clock::now_unix),
            actor: ev.actor.id.clone(),
            on_behalf_of: ev.actor.on_behalf_of.clone(),
            tenant: ev.tenant.map(|t| t.as_str().to_owned()),
            patient: ev.patient.map(|p| p.as_str().to_owned()),
            action: ev.action,
            resource: ev.resource.map(str::to_owned),
            request_id: ev.actor.request_id.clone(),
            address: ev.actor.address.clone(),
            outcome: ev.outcome,
        }
    }

    async fn insert<'e, E>(&self, exec: E) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        self.bind(sqlx::query(crate::audit::INSERT))
            .execute(exec)
            .await?;
        Ok(())
    }

    /// Binds this event's values in `audit::INSERT`'s column order (once per row of a batch).
    fn bind<'q>(&'q self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        q.bind(&self.id)
            .bind(self.at)
            .bind(&self.actor)
            .bind(self.on_behalf_of.as_deref())
            .bind(self.tenant.as_deref())
            .bind(self.patient.as_deref())
            .bind(self.action)
            .bind(self.resource.as_deref())
            .bind(self.request_id.as_deref())
            .bind(self.address.as_deref())
            .bind(self.outcome.as_str())
    }
}

/// A new session's row (`http::session`): inserted unless its id is taken.
struct NewSession {
    id: String,
    data: String,
    expiry: i64,
}

impl NewSession {
    /// Whether the row went in (`false`: the id was taken, nothing written).
    async fn insert<'e, E>(&self, exec: E) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let r = sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&self.id)
        .bind(&self.data)
        .bind(self.expiry)
        .execute(exec)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// One statement with its values owned, to run in the writer's next group commit
/// (`GroupWriter::execute`): a small write that must be durable before its caller answers but
/// need not pay a commit of its own (the processor-event queue's bookkeeping).
#[derive(Debug)]
pub struct OwnedStatement {
    sql: &'static str,
    values: Vec<Value>,
}

#[derive(Debug)]
enum Value {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
}

impl OwnedStatement {
    /// `sql` with `$N` placeholders, bound in the order the values are added.
    pub fn new(sql: &'static str) -> OwnedStatement {
        OwnedStatement {
            sql,
            values: Vec::new(),
        }
    }

    pub fn text(mut self, v: impl Into<String>) -> OwnedStatement {
        self.values.push(Value::Text(v.into()));
        self
    }

    pub fn maybe_text(mut self, v: Option<String>) -> OwnedStatement {
        self.values.push(Value::MaybeText(v));
        self
    }

    pub fn int(mut self, v: i64) -> OwnedStatement {
        self.values.push(Value::Int(v));
        self
    }

    /// Whether it changed a row.
    async fn run<'e, E>(&self, exec: E) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let mut q = sqlx::query(self.sql);
        for v in &self.values {
            q = match v {
                Value::Text(t) => q.bind(t.as_str()),
                Value::MaybeText(t) => q.bind(t.as_deref()),
                Value::Int(i) => q.bind(*i),
            };
        }
        Ok(q.execute(exec).await?.rows_affected() > 0)
    }
}

/// What a `Work` returns: its future, borrowing the writer's connection.
pub type WorkFuture<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// A change of several statements run inside the writer's next group commit
/// (`GroupWriter::run`), answering a `bool` of its own. It can be called again: if its group
/// fails, each of the group's rows is written alone, this one in a transaction of its own. It
/// must not open a write transaction itself (the writer holds the process's turn to write).
pub type Work = Arc<dyn for<'c> Fn(&'c mut sqlx::AnyConnection) -> WorkFuture<'c> + Send + Sync>;

/// A `Work` of `f`: the bound gives the closure its signature (one for every borrow of the
/// connection), which a closure written in place of `Work` does not infer.
pub fn work<F>(f: F) -> Work
where
    F: for<'c> Fn(&'c mut sqlx::AnyConnection) -> WorkFuture<'c> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// One row for the writer.
enum Row {
    Event(OwnedEvent),
    Session(NewSession),
    Statement(OwnedStatement),
    Work(Work),
}

/// What the writer answers: committed (with whether a session row went in; always `true` for
/// an event), or why not (an `sqlx::Error` cannot be cloned to every waiter, so they get its
/// words).
type Answer = Result<bool, String>;

struct Job {
    row: Row,
    done: oneshot::Sender<Answer>,
}

/// The handle requests record through; cheap to clone. Made by `GroupWriter::start`, which spawns
/// the one writer task; the task ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct GroupWriter {
    jobs: mpsc::Sender<Job>,
    db: Db,
    /// Transactions the writer committed (events over commits is the grouping achieved).
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl GroupWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(db: Db) -> GroupWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(db.clone(), queue, commits.clone()));
        GroupWriter { jobs, db, commits }
    }

    /// How many group transactions the writer has committed.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Appends one event and returns once it is committed (in a group with whatever else was
    /// waiting). If the writer is gone (shutting down), the event is written directly.
    pub async fn record(&self, ev: Event<'_>) -> Result<(), sqlx::Error> {
        self.write(Row::Event(OwnedEvent::of(&ev))).await?;
        Ok(())
    }

    /// Inserts a new session's row unless `id` is taken (`false`), once committed.
    pub async fn create_session(
        &self,
        id: String,
        data: String,
        expiry: i64,
    ) -> Result<bool, sqlx::Error> {
        self.write(Row::Session(NewSession { id, data, expiry }))
            .await
    }

    /// Runs `stmt` in the next group commit and returns once that is committed: whether it
    /// changed a row.
    pub async fn execute(&self, stmt: OwnedStatement) -> Result<bool, sqlx::Error> {
        self.write(Row::Statement(stmt)).await
    }

    /// Runs `work` in the next group commit and returns its answer once that is committed. An
    /// error of `work` fails its group, whose rows are then written one by one: only `work`
    /// fails. On PostgreSQL `work` runs in its own transaction on the main pool instead: the
    /// server already shares a WAL flush among commits that arrive together, and through the
    /// writer's one connection each `work`'s statements ran in turn (webhook bookings: 526–549
    /// events/s that way, 705–748 alone; README, Performance).
    pub async fn run(&self, work: Work) -> Result<bool, sqlx::Error> {
        match self.db.backend() {
            Backend::Sqlite => self.write(Row::Work(work)).await,
            Backend::Postgres => write_alone(&self.db, self.db.pool(), &Row::Work(work)).await,
        }
    }

    async fn write(&self, row: Row) -> Result<bool, sqlx::Error> {
        let (done, committed) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { row, done }).await {
            return write_alone(&self.db, self.db.pool(), &job.row).await;
        }
        match committed.await {
            Ok(Ok(inserted)) => Ok(inserted),
            Ok(Err(why)) => Err(sqlx::Error::Io(std::io::Error::other(why))),
            // The writer stopped with the row in hand: it may or may not be written, so the
            // caller must not go on as if it were.
            Err(_) => Err(sqlx::Error::PoolClosed),
        }
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Job>, commits: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let pool = db.writer_pool().clone();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write_batch(&db, &batch).await {
            Ok(inserted) => {
                commits.fetch_add(1, Ordering::Relaxed);
                crate::observe::audit_batch(batch.len());
                for (job, inserted) in batch.drain(..).zip(inserted) {
                    if let Row::Event(e) = &job.row {
                        crate::observe::audit_event(e.action, e.outcome.as_str());
                    }
                    let _ = job.done.send(Ok(inserted));
                }
            }
            // One bad row must not fail the others: each is written on its own.
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "group commit failed; writing its rows one by one");
                for job in batch.drain(..) {
                    let answer = write_alone(&db, &pool, &job.row)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = job.done.send(answer);
                }
            }
        }
    }
}

/// Rows per INSERT statement, largest first: one statement for many events costs one trip to
/// the database instead of one each (32 × 11 parameters stays far below both backends' limits),
/// in three sizes only (`db::fixed_chunks`).
const ROWS_PER_INSERT: &[usize] = &[32, 8, 1];

/// Writes a batch in one transaction on the writer's own connection; answers, in the batch's
/// order, whether each row went in.
async fn write_batch(db: &Db, batch: &[Job]) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = db.begin_on(db.writer_pool()).await?;
    let events: Vec<&OwnedEvent> = batch
        .iter()
        .filter_map(|j| match &j.row {
            Row::Event(e) => Some(e),
            Row::Session(_) | Row::Statement(_) | Row::Work(_) => None,
        })
        .collect();
    for chunk in fixed_chunks(&events, ROWS_PER_INSERT) {
        let sql = insert_rows(db.backend(), chunk.len());
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = e.bind(q);
        }
        q.execute(&mut *tx).await?;
    }
    let mut inserted = Vec::with_capacity(batch.len());
    for job in batch {
        inserted.push(match &job.row {
            Row::Event(_) => true,
            Row::Session(s) => s.insert(&mut *tx).await?,
            Row::Statement(s) => s.run(&mut *tx).await?,
            Row::Work(w) => w(&mut tx).await?,
        });
    }
    tx.commit().await?;
    Ok(inserted)
}

/// `audit::INSERT` for `rows` events: the same columns, `rows` tuples of placeholders.
fn insert_rows(backend: Backend, rows: usize) -> String {
    let head = &crate::audit::INSERT[..crate::audit::INSERT.find("VALUES").unwrap_or(0)];
    format!(
        "{head}VALUES {}",
        Params::new(backend).tuples(rows, COLUMNS)
    )
}

/// Columns in `audit::INSERT`.
const COLUMNS: usize = 11;

async fn write_alone(db: &Db, pool: &sqlx::AnyPool, row: &Row) -> Result<bool, sqlx::Error> {
    match row {
        Row::Event(event) => {
            event.insert(pool).await?;
            crate::observe::audit_event(event.action, event.outcome.as_str());
            Ok(true)
        }
        Row::Session(s) => s.insert(pool).await,
        Row::Statement(s) => s.run(pool).await,
        Row::Work(w) => {
            let mut tx = db.begin_on(pool).await?;
            let answer = w(&mut tx).await?;
            tx.commit().await?;
            Ok(answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    fn view(actor: &Actor, n: usize) -> Event<'_> {
        Event {
            actor,
            tenant: None,
            patient: None,
            action: "statement.itemised.view",
            resource: Some(if n.is_multiple_of(2) { "even" } else { "odd" }),
            outcome: Outcome::Success,
        }
    }

    /// Many requests at once: every event is committed exactly once before its caller goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_views_are_each_committed_once() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let log = GroupWriter::start(db.clone());
        let mut tasks = vec![];
        for n in 0..200 {
            let (log, db) = (log.clone(), db.clone());
            tasks.push(tokio::spawn(async move {
                let actor = Actor {
                    request_id: Some(format!("req-{n}")),
                    ..Actor::system("test")
                };
                log.record(view(&actor, n)).await.expect("recorded");
                // Committed before `record` returned: visible on another connection.
                let seen: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = $1")
                        .bind(format!("req-{n}"))
                        .fetch_one(db.pool())
                        .await
                        .expect("count");
                assert_eq!(seen, 1, "event {n}");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(total, 200);
    }

    /// The batch statement is the single-row one, widened: same columns, numbered placeholders.
    #[test]
    fn the_batch_insert_widens_the_single_row_one() {
        assert_eq!(insert_rows(Backend::Postgres, 1), crate::audit::INSERT);
        let two = insert_rows(Backend::Postgres, 2);
        assert!(
            two.ends_with("($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"),
            "{two}"
        );
        assert_eq!(two.matches('$').count(), 2 * COLUMNS);
        assert_eq!(
            crate::audit::INSERT.matches('$').count(),
            COLUMNS,
            "COLUMNS must follow audit::INSERT"
        );
        let lite = insert_rows(Backend::Sqlite, 2);
        assert_eq!(
            (lite.matches('?').count(), lite.matches('$').count()),
            (2 * COLUMNS, 0)
        );
    }

    /// A session row goes in with the events around it, and a taken id is refused, not
    /// overwritten (the store then rolls a new id).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_rows_share_the_commit_and_never_overwrite() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let log = GroupWriter::start(db.clone());
        let actor = Actor::system("test");
        let (first, view_done) = tokio::join!(
            log.create_session("s1".into(), "{}".into(), 10),
            log.record(view(&actor, 0))
        );
        assert!(first.expect("created"));
        view_done.expect("recorded");
        let again = log
            .create_session("s1".into(), r#"{"x":1}"#.into(), 20)
            .await
            .expect("answered");
        assert!(!again, "a taken id is refused");
        let (data, expiry): (String, i64) =
            sqlx::query_as("SELECT data, expiry_date FROM sessions WHERE id = 's1'")
                .fetch_one(db.pool())
                .await
                .expect("row");
        assert_eq!((data.as_str(), expiry), ("{}", 10), "the first row stands");
    }

    /// A closed writer does not lose the event: it is written directly.
    #[tokio::test]
    async fn without_its_writer_an_event_is_written_directly() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let (jobs, queue) = mpsc::channel(1);
        drop(queue);
        let log = GroupWriter {
            jobs,
            db: db.clone(),
            commits: Arc::default(),
        };
        let actor = Actor::system("test");
        log.record(view(&actor, 0)).await.expect("recorded");
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(total, 1);
    }

    /// Events that arrive while the writer is busy go into its next transaction together: 50
    /// views queued before it runs are committed in one transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_waiting_for_the_writer_share_one_commit() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let log = GroupWriter {
            jobs,
            db: db.clone(),
            commits: Arc::default(),
        };
        let mut tasks = vec![];
        for n in 0..50 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let actor = Actor::system("test");
                log.record(view(&actor, n)).await.expect("recorded");
            }));
        }
        while log.jobs.capacity() > QUEUE - 50 {
            tokio::task::yield_now().await;
        }
        tokio::spawn(run(db.clone(), queue, log.commits.clone()));
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(log.commits(), 1);
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(total, 50);
    }

    /// A change that inserts session row `id` and answers `answer`; `None` fails (no table).
    fn change(id: &'static str, answer: Option<bool>) -> Work {
        work(move |conn| {
            Box::pin(async move {
                let table = if answer.is_some() {
                    "sessions"
                } else {
                    "no_such_table"
                };
                sqlx::query(&format!(
                    "INSERT INTO {table} (id, data, expiry_date) VALUES ($1, '{{}}', 1)"
                ))
                .bind(id)
                .execute(conn)
                .await?;
                answer.ok_or(sqlx::Error::RowNotFound)
            })
        })
    }

    /// A writer whose task has not started: what is handed to it queues until `start_queued`.
    fn queued(db: &Db) -> (GroupWriter, mpsc::Receiver<Job>) {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let log = GroupWriter {
            jobs,
            db: db.clone(),
            commits: Arc::default(),
        };
        (log, queue)
    }

    async fn sessions(db: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("sessions")
    }

    /// Changes waiting for the writer share one commit, each answered with its own result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_waiting_for_the_writer_share_one_commit() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let (log, queue) = queued(&db);
        const IDS: [&str; 3] = ["a", "b", "c"];
        let mut tasks = vec![];
        for (n, id) in IDS.into_iter().enumerate() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.run(change(id, Some(n != 1))).await
            }));
        }
        while log.jobs.capacity() > QUEUE - IDS.len() {
            tokio::task::yield_now().await;
        }
        tokio::spawn(run(db.clone(), queue, log.commits.clone()));
        let mut answers = vec![];
        for t in tasks {
            answers.push(t.await.expect("task").expect("committed"));
        }
        assert_eq!(answers, [true, false, true]);
        assert_eq!(log.commits(), 1);
        assert_eq!(sessions(&db).await, IDS);
    }

    /// A change that fails fails alone: its group is written again row by row, and the others
    /// commit (their changes once each).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_change_fails_alone() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let (log, queue) = queued(&db);
        let ok = log.clone();
        let first = tokio::spawn(async move { ok.run(change("a", Some(true))).await });
        let bad = log.clone();
        let broken = tokio::spawn(async move { bad.run(change("x", None)).await });
        let ok = log.clone();
        let last = tokio::spawn(async move { ok.run(change("b", Some(true))).await });
        while log.jobs.capacity() > QUEUE - 3 {
            tokio::task::yield_now().await;
        }
        tokio::spawn(run(db.clone(), queue, log.commits.clone()));
        assert!(first.await.expect("task").expect("committed"));
        assert!(
            broken.await.expect("task").is_err(),
            "the broken change fails"
        );
        assert!(last.await.expect("task").expect("committed"));
        assert_eq!(sessions(&db).await, ["a", "b"]);
    }
}
