//! Least privilege on PostgreSQL (issue 11): `patriotpay migrate`, as the owner, grants the
//! serving role SELECT and INSERT on every `audit_…` table and no more; the serving role is
//! refused every edit of the audit trail and every schema change, still serves a real payment,
//! and refuses to start while migrations are pending. Each PostgreSQL test makes its own
//! database and its own two LOGIN roles and drops them. SQLite has no roles: naming one is
//! refused.

use crate::common::*;
use patriotpay::config::{Config, Secret};
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::process::{Command, Output};

/// A database owned by a fresh owner role, and a fresh serving role that owns nothing.
struct Cluster {
    admin: String,
    name: String,
    owner: String,
    serving: String,
}

impl Cluster {
    async fn new() -> Cluster {
        let admin = std::env::var("PATRIOTPAY_TEST_POSTGRES_URL")
            .expect("set PATRIOTPAY_TEST_POSTGRES_URL to run PostgreSQL tests");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let c = Cluster {
            admin,
            name: format!("pp_roles_{id}"),
            owner: format!("pp_owner_{id}"),
            serving: format!("pp_serve_{id}"),
        };
        let mut conn = PgConnection::connect(&c.admin).await.expect("connect");
        for sql in [
            format!("CREATE ROLE {} LOGIN", c.owner),
            format!("CREATE ROLE {} LOGIN", c.serving),
            format!("CREATE DATABASE {} OWNER {}", c.name, c.owner),
        ] {
            sqlx::raw_sql(&sql).execute(&mut conn).await.expect(&sql);
        }
        conn.close().await.ok();
        c
    }

    /// This database's URL, logging in as `role` (the test server trusts local connections).
    fn url(&self, role: &str) -> String {
        let mut u = reqwest::Url::parse(&self.admin).expect("admin url");
        u.set_username(role).expect("user");
        u.set_password(None).expect("no password");
        u.set_path(&self.name);
        u.to_string()
    }

    async fn connect(&self, role: &str) -> PgConnection {
        PgConnection::connect(&self.url(role))
            .await
            .expect("connect")
    }

    /// `patriotpay migrate` as an operator runs it: the owner's URL for migrating, the serving
    /// role's as `DATABASE_URL`, and `PATRIOTPAY_SERVING_ROLE` when given.
    fn migrate(&self, dir: &Path, serving_role: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_patriotpay"));
        cmd.arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PATRIOTPAY_DATA_DIR", dir)
            .env("DATABASE_URL", self.url(&self.serving))
            .env("PATRIOTPAY_MIGRATE_DATABASE_URL", self.url(&self.owner))
            .env("RUST_LOG", "warn");
        if let Some(role) = serving_role {
            cmd.env("PATRIOTPAY_SERVING_ROLE", role);
        }
        cmd.output().expect("run patriotpay migrate")
    }

    /// Migrates with the serving role named, asserting success; the printed report.
    fn migrate_granting(&self, dir: &Path) -> String {
        let out = self.migrate(dir, Some(&self.serving));
        assert!(out.status.success(), "migrate: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every table in the schema, as the owner sees them, with a column an UPDATE may name (the
    /// first that is not an identity column, which only DEFAULT may be written to).
    async fn tables(&self) -> Vec<(String, String)> {
        let mut conn = self.connect(&self.owner).await;
        sqlx::query_as(
            "SELECT c.relname::text,
                    (SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attidentity = '' ORDER BY a.attnum LIMIT 1)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .expect("tables")
    }

    /// The table privileges `role` holds on `table` (directly, through PUBLIC or memberships).
    async fn privileges(&self, role: &str, table: &str) -> Vec<String> {
        let mut conn = self.connect(&self.owner).await;
        sqlx::query_scalar(
            "SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE',
                                        'REFERENCES','TRIGGER']) WITH ORDINALITY AS t(p, o)
             WHERE has_table_privilege($1::text::name, ('public.' || $2)::regclass, p)
             ORDER BY o",
        )
        .bind(role)
        .bind(format!("\"{table}\""))
        .fetch_all(&mut conn)
        .await
        .expect("privileges")
    }

    async fn owner_exec(&self, sql: &str) {
        let mut conn = self.connect(&self.owner).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    }

    async fn admin_exec(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.admin).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    }
}

/// Dropped on every way out of a test, a failed assertion included: roles belong to the whole
/// PostgreSQL server, not to the database, so a leak would outlive it. (On a thread of its own,
/// with its own runtime: the test's may be unwinding.)
impl Drop for Cluster {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let statements = [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.serving),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ];
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&admin).await.expect("connect");
                for sql in &statements {
                    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
                }
            })
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("could not drop the test database and roles");
        }
    }
}

/// What the serving role must hold on a table, by its name (written out here, not taken from
/// the server, so the test checks the rule rather than repeating it).
fn expected(table: &str) -> Vec<String> {
    let p: &[&str] = if table == "_sqlx_migrations" {
        &["SELECT"]
    } else if table.starts_with("audit_") {
        &["SELECT", "INSERT"]
    } else {
        &["SELECT", "INSERT", "UPDATE", "DELETE"]
    };
    p.iter().map(|s| s.to_string()).collect()
}

/// Runs `sql` as the serving role and asserts PostgreSQL refused it for want of privilege
/// (42501), not for another reason: the audit triggers raise P0001, which would not do.
async fn refused(conn: &mut PgConnection, sql: &str) {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("the serving role was allowed: {sql}"),
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned());
            assert_eq!(
                code.as_deref(),
                Some("42501"),
                "{sql}: refused for want of privilege: {e}"
            );
        }
    }
}

fn server_config(dir: &Path, url: String) -> Config {
    let mut cfg = Config::for_data_dir(dir.to_path_buf());
    cfg.database_url = Some(Secret::new(url));
    cfg.autopay_every_secs = 0;
    cfg
}

/// Starts the server, expecting a refusal; its message.
async fn start_refused(cfg: &Config) -> String {
    match patriotpay::start(cfg).await {
        Ok(running) => {
            running.stop().await;
            panic!("the server started");
        }
        Err(e) => format!("{e:#}"),
    }
}

async fn applied(c: &Cluster) -> Vec<i64> {
    let mut conn = c.connect(&c.owner).await;
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .expect("exists");
    if !exists {
        return vec![];
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .expect("versions")
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
    async fn migrate_grants_the_serving_role_exactly_the_rule() {
        let c = Cluster::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let report = c.migrate_granting(dir.path());
        assert!(
            report.contains("audit_events: SELECT, INSERT\n"),
            "{report}"
        );
        assert!(
            report.contains("payments: SELECT, INSERT, UPDATE, DELETE\n"),
            "{report}"
        );

        let tables = c.tables().await;
        assert!(tables.iter().any(|(t, _)| t == "audit_events"));
        for (table, _) in &tables {
            assert_eq!(
                c.privileges(&c.serving, table).await,
                expected(table),
                "{table}"
            );
            assert!(report.contains(&format!("  {table}: ")), "{table} reported");
        }
        let mut conn = c.connect(&c.owner).await;
        let (owned, sequences, create): (i64, i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid),
                    (SELECT count(*) FROM pg_class s WHERE CASE WHEN s.relkind = 'S'
                       THEN has_sequence_privilege(r.oid, s.oid, 'USAGE')
                            OR has_sequence_privilege(r.oid, s.oid, 'UPDATE') END),
                    has_schema_privilege(r.oid, 'public', 'CREATE')
             FROM pg_roles r WHERE r.rolname = $1",
        )
        .bind(&c.serving)
        .fetch_one(&mut conn)
        .await
        .expect("role facts");
        assert_eq!(owned, 0, "the serving role owns nothing");
        assert_eq!(sequences, 0, "no sequence privileges (setval, nextval)");
        assert!(!create, "no CREATE on the schema");

        // Anything broader, granted by hand, is taken back by the next run, which otherwise
        // changes nothing.
        c.owner_exec(&format!(
            "GRANT ALL ON audit_events TO {s}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {s};
             GRANT CREATE ON SCHEMA public TO {s}",
            s = c.serving
        ))
        .await;
        assert!(c
            .privileges(&c.serving, "audit_events")
            .await
            .contains(&"UPDATE".to_owned()));
        assert_eq!(
            c.migrate_granting(dir.path()),
            report,
            "the same grants again"
        );
        assert_eq!(
            c.privileges(&c.serving, "audit_events").await,
            expected("audit_events")
        );
        let (sequences, create): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_class s WHERE CASE WHEN s.relkind = 'S'
                       THEN has_sequence_privilege($1::text::name, s.oid, 'UPDATE') END),
                    has_schema_privilege($1::text::name, 'public', 'CREATE')",
        )
        .bind(&c.serving)
        .fetch_one(&mut conn)
        .await
        .expect("role facts");
        assert_eq!((sequences, create), (0, false), "revoked");

        // A privilege held through PUBLIC cannot be revoked from the role alone: refused, and
        // the earlier grants stay as they were (one transaction).
        c.owner_exec("GRANT UPDATE ON audit_events TO PUBLIC").await;
        let out = c.migrate(dir.path(), Some(&c.serving));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{out:?}");
        assert!(
            err.contains("audit_events: holds SELECT,INSERT,UPDATE") && err.contains("PUBLIC"),
            "{err}"
        );
        c.owner_exec("REVOKE UPDATE ON audit_events FROM PUBLIC")
            .await;
        assert_eq!(
            c.privileges(&c.serving, "payments").await,
            expected("payments")
        );

        // Roles that could act as the owner are refused.
        let out = c.migrate(dir.path(), Some(&c.owner));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("the role that migrates"),
            "{out:?}"
        );
        c.admin_exec(&format!("GRANT {} TO {}", c.owner, c.serving))
            .await;
        let out = c.migrate(dir.path(), Some(&c.serving));
        assert!(!out.status.success(), "a member of the owner: {out:?}");
        c.admin_exec(&format!("REVOKE {} FROM {}", c.owner, c.serving))
            .await;
        let out = c.migrate(dir.path(), Some("pp_no_such_role_anywhere"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not exist"),
            "{out:?}"
        );
        conn.close().await.ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
    async fn the_serving_role_is_refused_every_edit_of_the_audit_trail() {
        let c = Cluster::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        c.migrate_granting(dir.path());
        let mut app = c.connect(&c.serving).await;

        // What it may do: add an event and read it back.
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit_events (id, at, actor, action, outcome)
             VALUES ('evt_roles_test', 1, 'system', 'roles.test', 'allowed') RETURNING seq",
        )
        .fetch_one(&mut app)
        .await
        .expect("the serving role may insert an audit event");
        let action: String = sqlx::query_scalar("SELECT action FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_one(&mut app)
            .await
            .expect("and read it");
        assert_eq!(action, "roles.test");

        let tables = c.tables().await;
        let audit: Vec<_> = tables
            .iter()
            .filter(|(t, _)| t.starts_with("audit_"))
            .collect();
        assert!(!audit.is_empty());
        // Every audit table, those later migrations add included: no edits, no removals.
        for (t, col) in &audit {
            refused(&mut app, &format!("UPDATE {t} SET {col} = {col}")).await;
            refused(&mut app, &format!("DELETE FROM {t}")).await;
            refused(&mut app, &format!("TRUNCATE {t}")).await;
            refused(&mut app, &format!("ALTER TABLE {t} DISABLE TRIGGER ALL")).await;
            refused(&mut app, &format!("ALTER TABLE {t} ADD COLUMN note TEXT")).await;
        }
        for sql in [
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
            "ALTER TABLE audit_events ALTER COLUMN action DROP NOT NULL",
            "ALTER TABLE audit_events RENAME TO audit_events_old",
            "ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY",
            "DROP TRIGGER audit_events_no_update ON audit_events",
            "DROP TRIGGER audit_events_no_truncate ON audit_events",
            "CREATE TRIGGER sneaky BEFORE INSERT ON audit_events
             FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
            "CREATE RULE sneaky AS ON UPDATE TO audit_events DO INSTEAD NOTHING",
            "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
             LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "DROP FUNCTION audit_events_append_only() CASCADE",
            "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), 1)",
            // Replica mode skips ordinary triggers: only a superuser may set it.
            "SET session_replication_role = replica",
            "CREATE TABLE scratch (a INT)",
            "CREATE FUNCTION scratch() RETURNS INT LANGUAGE sql AS 'SELECT 1'",
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'x', TRUE, '\\x00', 0)",
            "DELETE FROM _sqlx_migrations",
        ] {
            refused(&mut app, sql).await;
        }
        // No table may be dropped or emptied wholesale, audit or not.
        for (t, _) in &tables {
            refused(&mut app, &format!("DROP TABLE {t}")).await;
            refused(&mut app, &format!("TRUNCATE {t}")).await;
        }
        app.close().await.ok();

        // All of it as it was: the event is there and unchanged, the triggers enabled.
        let mut owner = c.connect(&c.owner).await;
        let (events, action): (i64, String) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM audit_events),
                    (SELECT action FROM audit_events WHERE seq = $1)",
        )
        .bind(seq)
        .fetch_one(&mut owner)
        .await
        .expect("events");
        assert_eq!((events, action.as_str()), (1, "roles.test"));
        let enabled: Vec<String> = sqlx::query_scalar(
            "SELECT tgname::text FROM pg_trigger
             WHERE tgrelid = 'audit_events'::regclass AND tgenabled = 'O' ORDER BY 1",
        )
        .fetch_all(&mut owner)
        .await
        .expect("triggers");
        assert_eq!(
            enabled,
            ["audit_events_no_truncate", "audit_events_no_update"]
        );
        owner.close().await.ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
    async fn the_serving_role_serves_a_payment() {
        let c = Cluster::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        c.migrate_granting(dir.path());
        let serving = c.url(&c.serving);
        let app = TestApp::start_with(Backend::Postgres, |cfg| {
            cfg.database_url = Some(Secret::new(serving));
        })
        .await;
        let statement = app.statement_of(1).await;
        let before = balance(&app, &statement).await;
        let b = Browser::new(&app);
        pay_five_dollars_by_link(&app, &b, 1).await;
        assert_eq!(balance(&app, &statement).await, before - 500);
        // Operator commands run as the serving role too (listing accounts is audited).
        let added = app.cli(&[
            "users",
            "add",
            "--email",
            "roles.admin@example.org",
            "--role",
            "platform-admin",
            "--name",
            "Roles Admin",
        ]);
        assert!(added.status.success(), "users add: {added:?}");
        let listed = app.cli(&["users", "list"]);
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains("roles.admin@example.org"),
            "users list: {listed:?}"
        );

        let mut owner = c.connect(&c.owner).await;
        let (views, listings): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE patient_id IS NOT NULL),
                    count(*) FILTER (WHERE action = 'users.list') FROM audit_events",
        )
        .fetch_one(&mut owner)
        .await
        .expect("events");
        assert!(
            views > 0 && listings == 1,
            "the payment and the listing were audited: {views} about the patient, {listings} listing"
        );
        owner.close().await.ok();
        app.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set PATRIOTPAY_TEST_POSTGRES_URL and run with --ignored"]
    async fn serve_as_a_non_owner_refuses_pending_migrations() {
        let c = Cluster::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let serving = server_config(dir.path(), c.url(&c.serving));

        // An empty database: the serving role may not create the schema.
        let e = start_refused(&serving).await;
        assert!(
            e.contains("pending migrations: 1 (init)")
                && e.contains("`patriotpay migrate` as the owner"),
            "{e}"
        );
        assert!(applied(&c).await.is_empty(), "nothing migrated");

        // Even the owner's URL does not migrate on start once a migrate URL is set.
        let mut owner_cfg = server_config(dir.path(), c.url(&c.owner));
        owner_cfg.migrate_database_url = Some(Secret::new(c.url(&c.owner)));
        let e = start_refused(&owner_cfg).await;
        assert!(
            e.contains("PATRIOTPAY_MIGRATE_DATABASE_URL is set")
                && e.contains("`patriotpay migrate` as the owner"),
            "{e}"
        );
        assert!(applied(&c).await.is_empty(), "nothing migrated");

        // One URL for both, as the demo and the tests run: the owner migrates on start.
        owner_cfg.migrate_database_url = None;
        patriotpay::start(&owner_cfg)
            .await
            .expect("the owner serves and migrates")
            .stop()
            .await;
        let all = applied(&c).await;
        assert!(!all.is_empty());

        // Migrated, but the serving role never named to `migrate`: it lacks its privileges.
        let e = start_refused(&serving).await;
        assert!(
            e.contains("lacks privileges")
                && e.contains(&format!("PATRIOTPAY_SERVING_ROLE={}", c.serving)),
            "{e}"
        );

        // Granted, then a newer build's migration not yet applied (the newest forgotten).
        c.migrate_granting(dir.path());
        patriotpay::start(&serving)
            .await
            .expect("ready: the serving role starts")
            .stop()
            .await;
        let newest = *all.last().expect("migrations");
        c.owner_exec(&format!(
            "DELETE FROM _sqlx_migrations WHERE version = {newest}"
        ))
        .await;
        let e = start_refused(&serving).await;
        assert!(
            e.contains(&format!("pending migrations: {newest} ("))
                && e.contains("does not own the schema")
                && e.contains("`patriotpay migrate` as the owner"),
            "{e}"
        );
        assert!(
            !applied(&c).await.contains(&newest),
            "serve did not migrate"
        );
    }
}

mod sqlite {
    #[test]
    fn a_serving_role_is_refused_on_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |role: Option<&str>| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_patriotpay"));
            cmd.arg("migrate")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("PATRIOTPAY_DATA_DIR", dir.path())
                .env("RUST_LOG", "warn");
            if let Some(role) = role {
                cmd.env("PATRIOTPAY_SERVING_ROLE", role);
            }
            cmd.output().expect("run patriotpay migrate")
        };
        let out = run(Some("patriotpay_app"));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SQLite has no roles"),
            "{out:?}"
        );
        let out = run(None);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Migrations applied."));
    }
}
