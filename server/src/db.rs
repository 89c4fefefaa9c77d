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
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The group writer's own connection (`audit::AuditLog`), durable like every other: its
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

    /// A transaction that will write. On SQLite it takes the write lock up front, so two
    /// read-then-write transactions queue instead of failing with a busy snapshot.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.begin_on(&self.pool).await
    }

    /// `begin_write` on a pool of this database (the main one, or `writer_pool`).
    pub async fn begin_on(
        &self,
        pool: &AnyPool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => pool.begin().await,
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
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
