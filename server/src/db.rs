//! Database access: one pool over SQLite (embedded default) or PostgreSQL, and migrations.

pub mod roles;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool plus which backend it talks to. Queries are written once, with `$N`
/// placeholders and types (BIGINT, TEXT, bytes) both backends share.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// One connection of its own for the group writer (`writer_pool`).
    writer: AnyPool,
    /// SQLite's one writer at a time, taken inside the process (`WriteTx`).
    turn: WriteTurns,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:");
        };
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let writer = writer_pool(backend, opts.clone());
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .test_before_acquire(false)
            .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
            .after_connect(move |conn, _| Box::pin(after_connect(backend, conn)))
            .connect_with(opts)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while one writer commits; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Db {
            pool,
            backend,
            writer,
            turn: WriteTurns::default(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The group writer's own connection (`group_commit::GroupWriter`), durable like every other: its
    /// commits never wait for a connection readers hold, and on SQLite its rows queue in order
    /// instead of racing other connections for the file's write lock.
    pub fn writer_pool(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Brings the schema up to date if this connection may change it, else checks that it is.
    /// SQLite has no roles: it always migrates. On PostgreSQL only the schema's owner migrates,
    /// and only when no separate owner URL is configured (`separate_owner`); a serving role that
    /// is not the owner cannot change the schema, so it refuses to go on with migrations pending.
    pub async fn migrate_or_check(&self, separate_owner: bool) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => self.migrate().await,
            Backend::Postgres if !separate_owner && roles::owns_schema(self).await? => {
                self.migrate().await
            }
            Backend::Postgres => {
                roles::check_ready(self, &POSTGRES_MIGRATIONS, separate_owner).await
            }
        }
    }

    /// A transaction that will write. On SQLite it waits for the process's turn to write
    /// (`WriteTx`) and takes the write lock up front, so two read-then-write transactions queue
    /// instead of failing with a busy snapshot.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        self.begin_on(&self.pool).await
    }

    /// `begin_write` on a pool of this database (the main one, or `writer_pool`).
    pub async fn begin_on(&self, pool: &AnyPool) -> Result<WriteTx, sqlx::Error> {
        let turn = self.turn.take(self.backend).await?;
        let tx = match self.backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => pool.begin().await?,
        };
        Ok(InTurn {
            inner: tx,
            _turn: turn,
        })
    }

    /// A connection for a write that commits by itself (one statement), in the process's turn
    /// to write on SQLite (`WriteTx`); the turn ends when the connection is dropped.
    pub async fn write_conn(&self) -> Result<WriteConn, sqlx::Error> {
        let turn = self.turn.take(self.backend).await?;
        Ok(InTurn {
            inner: self.pool.acquire().await?,
            _turn: turn,
        })
    }

    /// `begin_write` for one long bulk transaction (an import). On SQLite its connection gets a
    /// page cache of `BULK_CACHE_KIB`: with the default 2 MiB, a transaction that writes hundreds
    /// of megabytes spills its dirty pages to the WAL and reads them back for every index insert
    /// (most of the import's time was those system calls). The connection is closed afterwards,
    /// not returned to the pool, so no reader keeps the large cache.
    pub async fn begin_bulk_write(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = self.turn.take(self.backend).await?;
        let mut conn = self.pool.acquire().await?;
        let begin = match self.backend {
            Backend::Sqlite => {
                use sqlx::Executor;
                conn.close_on_drop();
                conn.execute(format!("PRAGMA cache_size = -{BULK_CACHE_KIB}").as_str())
                    .await?;
                Some("BEGIN IMMEDIATE".into())
            }
            Backend::Postgres => None,
        };
        let tx = sqlx::Transaction::begin(conn, begin).await?;
        Ok(InTurn {
            inner: tx,
            _turn: turn,
        })
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// SQLite lets one connection write at a time; one that finds the file locked sleeps in its
/// busy handler (1, 2, 5, 10 … 100 ms) and tries again, so writers racing for the lock spend
/// their time asleep while the lock is free (722 such sleeps for 200 webhook events in issue
/// 15's trace). Writers of this process take turns here instead, first come first served, and
/// reach SQLite one after another. The lock is still SQLite's: a writer that is not in the
/// queue (another process, a statement on the plain pool) is kept out by it as before.
#[derive(Clone, Debug, Default)]
struct WriteTurns(std::sync::Arc<tokio::sync::Mutex<()>>);

/// How long a writer waits for its turn: as long as SQLite's `busy_timeout`, which is what it
/// waited for the lock itself before.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl WriteTurns {
    /// This writer's turn on SQLite (held until dropped); none is needed on PostgreSQL, whose
    /// rows lock one by one. A wait past `TURN_WAIT` fails as a busy database would.
    async fn take(
        &self,
        backend: Backend,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, sqlx::Error> {
        if backend != Backend::Sqlite {
            return Ok(None);
        }
        match tokio::time::timeout(TURN_WAIT, self.0.clone().lock_owned()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// A connection held in the process's turn to write on SQLite (`WriteTurns`), given up when
/// it is dropped. Dereferences to the connection, so `&mut *tx` runs a query inside it.
pub struct InTurn<C> {
    // Dropped first: the transaction or connection ends before the turn passes on.
    inner: C,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// A write transaction (`Db::begin_write`): the turn ends when it is committed, rolled back or
/// dropped.
pub type WriteTx = InTurn<sqlx::Transaction<'static, sqlx::Any>>;

/// A pooled connection for one self-committing write (`Db::write_conn`).
pub type WriteConn = InTurn<sqlx::pool::PoolConnection<sqlx::Any>>;

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl<C: std::ops::Deref<Target = sqlx::AnyConnection>> std::ops::Deref for InTurn<C> {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.inner
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::AnyConnection>> std::ops::DerefMut for InTurn<C> {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }
}

/// Bind-parameter placeholders for SQL built at run time (multi-row inserts, `IN` lists),
/// numbered in the order they are written, which must be the order values are bound:
/// `$1, $2, …` on PostgreSQL, plain `?` on SQLite. sqlx finds the number of each *named* SQLite
/// parameter by asking for its name, a lookup that walks the statement's parameter list: in a
/// statement of hundreds of parameters that is quadratic, and it was a sixth of an import's
/// time in a profile. A statement's placeholders must all come from one `Params`: sqlx counts
/// `?` apart from `$N`, so the two cannot be mixed.
pub struct Params {
    backend: Backend,
    written: usize,
}

impl Params {
    pub fn new(backend: Backend) -> Params {
        Params {
            backend,
            written: 0,
        }
    }

    /// For SQL run on `conn` (SQLite's names, else PostgreSQL's).
    pub fn of(conn: &sqlx::AnyConnection) -> Params {
        use sqlx::Database;
        Params::new(if conn.backend_name() == sqlx::Sqlite::NAME {
            Backend::Sqlite
        } else {
            Backend::Postgres
        })
    }

    /// Appends the next placeholder.
    pub fn push(&mut self, sql: &mut String) {
        self.written += 1;
        match self.backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&self.written.to_string());
            }
        }
    }

    /// The next placeholder.
    pub fn one(&mut self) -> String {
        let mut sql = String::new();
        self.push(&mut sql);
        sql
    }

    /// The next `n` placeholders, comma-separated.
    pub fn list(&mut self, n: usize) -> String {
        let mut sql = String::with_capacity(n * 4);
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            self.push(&mut sql);
        }
        sql
    }

    /// `rows` parenthesised tuples of `columns` placeholders each, for `INSERT … VALUES`.
    pub fn tuples(&mut self, rows: usize, columns: usize) -> String {
        let mut sql = String::with_capacity(rows * (columns * 5 + 4));
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&self.list(columns));
            sql.push(')');
        }
        sql
    }
}

/// `rows` cut into multi-row statements of a few fixed sizes (`sizes`, largest first, ending in
/// 1). Each distinct statement text stays prepared in the cache of every connection that ran it
/// (sqlx keeps 100 a connection, SQLite's compiled form of a wide insert is tens of KB): one
/// statement sized to each batch fills those caches with one-off variants, as the audit sealer's
/// did (up to 200 sizes, 10 MB, in the soak's heap profile).
pub fn fixed_chunks<'a, T>(
    rows: &'a [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = &'a [T]> + 'a {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = *sizes.iter().find(|&&s| s > 0 && s <= rest.len())?;
        let (chunk, after) = rest.split_at(size);
        rest = after;
        Some(chunk)
    })
}

/// Every new connection: SQLite enforces foreign keys and waits (rather than fails) for a lock.
async fn after_connect(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        use sqlx::Executor;
        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
            .await?;
    }
    Ok(())
}

/// SQLite page cache for `Db::begin_bulk_write`, in KiB.
const BULK_CACHE_KIB: u32 = 64 * 1024;

/// A connection idle this long is pinged before it is handed out.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// sqlx pings every connection it hands out by default: a round trip (to SQLite's worker thread,
/// to PostgreSQL's server) as dear as the query it precedes, which doubled every page's database
/// cost (issue 15's profile). A busy connection has just proved itself; one idle for a while may
/// have died with a restarted server, and is pinged (a dead one is replaced, not handed out).
async fn ping_if_idle(
    conn: &mut sqlx::AnyConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    Ok(meta.idle_for < PING_AFTER_IDLE || conn.ping().await.is_ok())
}

/// The pool behind `Db::writer_pool`: one connection, opened on first use, set up as the main
/// pool's are.
fn writer_pool(backend: Backend, opts: AnyConnectOptions) -> AnyPool {
    AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
        .after_connect(move |conn, _| Box::pin(after_connect(backend, conn)))
        .connect_lazy_with(opts)
}

/// A migrated SQLite database in a temporary directory, for unit tests (kept while the
/// directory lives).
#[cfg(test)]
pub async fn temp_sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are cut into the given sizes, largest first, each row once.
    #[test]
    fn rows_are_cut_into_fixed_sizes() {
        const SIZES: &[usize] = &[32, 8, 1];
        for n in 0..200 {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = fixed_chunks(&rows, SIZES).collect();
            assert_eq!(chunks.concat(), rows, "{n}");
            let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert!(sizes.iter().all(|s| SIZES.contains(s)), "{n}: {sizes:?}");
            assert!(sizes.is_sorted_by(|a, b| a >= b), "{n}: {sizes:?}");
        }
        let rows = [0; 75];
        let sizes: Vec<usize> = fixed_chunks(&rows, SIZES).map(<[i32]>::len).collect();
        assert_eq!(sizes, [32, 32, 8, 1, 1, 1]);
    }

    /// Placeholders number on from each other on PostgreSQL and are anonymous on SQLite.
    #[test]
    fn placeholders_follow_the_backend() {
        let mut pg = Params::new(Backend::Postgres);
        assert_eq!(pg.one(), "$1");
        assert_eq!(pg.list(2), "$2, $3");
        assert_eq!(pg.tuples(2, 2), "($4, $5), ($6, $7)");
        let mut lite = Params::new(Backend::Sqlite);
        assert_eq!(lite.one(), "?");
        assert_eq!(lite.tuples(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(lite.list(0), "");
    }

    /// SQLite binds anonymous placeholders in order: a multi-row statement built with `Params`
    /// stores each value where it was bound.
    #[tokio::test]
    async fn anonymous_placeholders_bind_in_order() {
        let (_dir, db) = temp_sqlite().await;
        sqlx::query("CREATE TABLE t (a BIGINT, b TEXT)")
            .execute(db.pool())
            .await
            .expect("create");
        let mut p = Params::new(db.backend());
        let sql = format!("INSERT INTO t (a, b) VALUES {}", p.tuples(3, 2));
        let mut q = sqlx::query(&sql);
        for i in 0..3_i64 {
            q = q.bind(i).bind(format!("v{i}"));
        }
        q.execute(db.pool()).await.expect("insert");
        let mut p = Params::new(db.backend());
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT a, b FROM t WHERE a >= {} AND b IN ({}) ORDER BY a",
            p.one(),
            p.list(2)
        ))
        .bind(1_i64)
        .bind("v2")
        .bind("v1")
        .fetch_all(db.pool())
        .await
        .expect("select");
        assert_eq!(rows, [(1, "v1".to_owned()), (2, "v2".to_owned())]);
    }

    /// On SQLite a write transaction holds the process's turn to write until it ends, however
    /// it ends; a one-statement write holds it while its connection is out.
    #[tokio::test]
    async fn a_writer_holds_the_turn_until_it_ends() {
        let (_dir, db) = temp_sqlite().await;
        let free = |db: &Db| db.turn.0.try_lock().is_ok();
        assert!(free(&db));
        let tx = db.begin_write().await.expect("begin");
        assert!(!free(&db), "held while the transaction is open");
        tx.commit().await.expect("commit");
        assert!(free(&db), "passed on at commit");
        let tx = db.begin_on(db.writer_pool()).await.expect("begin");
        assert!(!free(&db), "the group writer's transactions take turns too");
        drop(tx);
        assert!(free(&db), "passed on when dropped");
        let conn = db.write_conn().await.expect("conn");
        assert!(!free(&db));
        drop(conn);
        assert!(free(&db));
    }

    /// Writers that arrive together each get their turn: every read-then-write transaction
    /// commits, none is refused as busy, and none loses another's update.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_all_commit() {
        let (_dir, db) = temp_sqlite().await;
        sqlx::query("CREATE TABLE n (v BIGINT)")
            .execute(db.pool())
            .await
            .expect("create");
        sqlx::query("INSERT INTO n (v) VALUES (0)")
            .execute(db.pool())
            .await
            .expect("insert");
        let mut tasks = vec![];
        for _ in 0..40 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = db.begin_write().await.expect("begin");
                let v: i64 = sqlx::query_scalar("SELECT v FROM n")
                    .fetch_one(&mut *tx)
                    .await
                    .expect("read");
                sqlx::query("UPDATE n SET v = $1")
                    .bind(v + 1)
                    .execute(&mut *tx)
                    .await
                    .expect("write");
                tx.commit().await.expect("commit");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let v: i64 = sqlx::query_scalar("SELECT v FROM n")
            .fetch_one(db.pool())
            .await
            .expect("read");
        assert_eq!(v, 40);
    }

    /// The writer's connection is set up as the main pool's: foreign keys on, every commit
    /// synced (FULL), the file in WAL.
    #[tokio::test]
    async fn the_writer_connection_is_as_durable_as_the_rest() {
        let (_dir, db) = temp_sqlite().await;
        for pool in [db.pool(), db.writer_pool()] {
            let (sync, fk): (i64, i64) = (
                sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .expect("synchronous"),
                sqlx::query_scalar("PRAGMA foreign_keys")
                    .fetch_one(pool)
                    .await
                    .expect("foreign_keys"),
            );
            assert_eq!((sync, fk), (2, 1), "FULL and foreign keys");
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
        }
    }
}
