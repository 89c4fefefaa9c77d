//! PostgreSQL roles: whether a connection owns the schema (and so may migrate it), the check a
//! serving role makes instead of migrating, and the exact privileges `migrate` grants it.
//!
//! Two roles: the owner, which creates and alters the tables (`patriotpay migrate`), and the
//! serving role, which `serve` logs in as and which owns nothing. What the serving role gets is a
//! rule over table names, not a list, so a table a later migration adds is covered the day it
//! lands: a table named `audit_…` is evidence (SELECT and INSERT only: no UPDATE, DELETE,
//! TRUNCATE, TRIGGER, and as a non-owner no ALTER, DROP or trigger changes); `_sqlx_migrations`
//! is read only (the serving role checks it, never writes it); every other table gets SELECT,
//! INSERT, UPDATE and DELETE. Identity columns need no sequence privilege, so none is granted
//! (UPDATE on a sequence would let the role `setval` the audit sequence).

use super::{Backend, Db};
use sqlx::migrate::Migrator;
use std::collections::BTreeMap;
use std::fmt;

/// Tables whose names start with this hold evidence: the serving role may add rows and read them.
pub const AUDIT_PREFIX: &str = "audit_";

/// The table sqlx records applied migrations in.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Every table privilege PostgreSQL has, in the order they are listed.
pub const TABLE_PRIVILEGES: [&str; 7] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];

/// What the serving role may do to a table, decided by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `audit_…`: SELECT, INSERT.
    Evidence,
    /// `_sqlx_migrations`: SELECT.
    ReadOnly,
    /// Every other table: SELECT, INSERT, UPDATE, DELETE.
    Application,
}

impl Access {
    pub fn of(table: &str) -> Access {
        if table == MIGRATIONS_TABLE {
            Access::ReadOnly
        } else if table.starts_with(AUDIT_PREFIX) {
            Access::Evidence
        } else {
            Access::Application
        }
    }

    /// The privileges, in `TABLE_PRIVILEGES` order.
    pub fn privileges(self) -> &'static [&'static str] {
        match self {
            Access::Evidence => &["SELECT", "INSERT"],
            Access::ReadOnly => &["SELECT"],
            Access::Application => &["SELECT", "INSERT", "UPDATE", "DELETE"],
        }
    }
}

/// What `migrate` granted the serving role, for the operator to read.
#[derive(Debug, Clone)]
pub struct Grants {
    pub role: String,
    pub schema: String,
    /// Every table of the schema, by name, and what the role now holds on it.
    pub tables: Vec<(String, Access)>,
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Serving role {}: USAGE on schema {} (no CREATE; it owns nothing), and on each table:",
            quote_ident(&self.role),
            quote_ident(&self.schema)
        )?;
        for (table, access) in &self.tables {
            writeln!(f, "  {table}: {}", access.privileges().join(", "))?;
        }
        Ok(())
    }
}

/// `"name"`, with embedded quotes doubled: a role or table name as SQL spells it.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// True when this connection's role owns the schema's tables (it is, or acts as, the owner of
/// the migrations table), or, on an empty database, may create tables in the schema.
pub async fn owns_schema(db: &Db) -> anyhow::Result<bool> {
    let owner: Option<bool> = sqlx::query_scalar(
        "SELECT COALESCE(
             (SELECT pg_has_role(tableowner, 'USAGE') FROM pg_tables
               WHERE schemaname = current_schema() AND tablename = $1),
             has_schema_privilege(current_schema(), 'CREATE'))",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_one(db.pool())
    .await?;
    Ok(owner.unwrap_or(false))
}

/// Every table (and view) of the current schema, with the privileges `role` (the connection's
/// own when `None`) holds on it, directly, through PUBLIC or through roles it belongs to.
async fn held<'e, E>(ex: E, role: Option<&str>) -> anyhow::Result<BTreeMap<String, String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let list = TABLE_PRIVILEGES
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT c.relname::text,
                string_agg(p.priv, ',' ORDER BY p.ord) FILTER (WHERE has_table_privilege(
                    COALESCE($1::text, current_user::text)::name, c.oid, p.priv))
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN unnest(ARRAY[{list}]) WITH ORDINALITY AS p(priv, ord)
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         GROUP BY c.relname ORDER BY c.relname"
    ))
    .bind(role)
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, p)| (t, p.unwrap_or_default()))
        .collect())
}

/// The tables whose privileges for `role` differ from the rule, as "table: holds X, should hold
/// Y" lines (extra and missing alike).
fn differences(held: &BTreeMap<String, String>) -> Vec<String> {
    held.iter()
        .filter_map(|(table, has)| {
            let want = Access::of(table).privileges().join(",");
            (*has != want).then(|| {
                let has = if has.is_empty() { "nothing" } else { has };
                format!("{table}: holds {has}, should hold {want}")
            })
        })
        .collect()
}

/// The check a role that does not own the schema makes instead of migrating: every migration of
/// this build applied (none failed, none changed, none unknown to it), and the grants `migrate`
/// gives in place. Refuses, saying what to run, otherwise.
pub async fn check_ready(db: &Db, migrator: &Migrator, separate_owner: bool) -> anyhow::Result<()> {
    let (me, has_table, usage): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, EXISTS (SELECT 1 FROM pg_tables
                  WHERE schemaname = current_schema() AND tablename = $1),
                COALESCE(has_schema_privilege(current_schema(), 'USAGE'), FALSE)",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_one(db.pool())
    .await?;
    // Privileges first: without SELECT on the migrations table its record cannot be read.
    let held = held(db.pool(), None).await?;
    let mut missing: Vec<String> = held
        .iter()
        .filter(|(table, has)| {
            let has: Vec<&str> = has.split(',').collect();
            !Access::of(table)
                .privileges()
                .iter()
                .all(|p| has.contains(p))
        })
        .map(|(table, _)| table.clone())
        .collect();
    if !usage {
        missing.insert(0, "the schema".to_owned());
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "refusing to start: role {me} lacks privileges it needs on {}: run `patriotpay \
             migrate` as the owner with PATRIOTPAY_SERVING_ROLE={me}",
            missing.join(", ")
        );
    }
    let applied: Vec<(i64, Vec<u8>, bool)> = if has_table {
        sqlx::query_as(&format!(
            "SELECT version, checksum, success FROM {MIGRATIONS_TABLE} ORDER BY version"
        ))
        .fetch_all(db.pool())
        .await?
    } else {
        Vec::new()
    };
    let ours = || {
        migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
    };
    let mut problems = Vec::new();
    for (version, checksum, success) in &applied {
        match ours().find(|m| m.version == *version) {
            None => problems.push(format!(
                "migration {version} is applied but this build does not know it (run the build that applied it)"
            )),
            Some(m) if !success => problems.push(format!(
                "migration {version} ({}) failed part-way",
                m.description
            )),
            Some(m) if *m.checksum != checksum[..] => problems.push(format!(
                "migration {version} ({}) was applied from different SQL",
                m.description
            )),
            Some(_) => {}
        }
    }
    let pending: Vec<String> = ours()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .map(|m| format!("{} ({})", m.version, m.description))
        .collect();
    if !pending.is_empty() {
        problems.push(format!("pending migrations: {}", pending.join(", ")));
    }
    if !problems.is_empty() {
        let why = if separate_owner {
            "PATRIOTPAY_MIGRATE_DATABASE_URL is set, so only `patriotpay migrate` migrates"
        } else {
            "this role does not own the schema, so it does not migrate"
        };
        anyhow::bail!(
            "refusing to start: {} ({why}). Run `patriotpay migrate` as the owner \
             (PATRIOTPAY_MIGRATE_DATABASE_URL, with PATRIOTPAY_SERVING_ROLE={me}) first",
            problems.join("; ")
        );
    }
    // More than the rule is a weaker audit trail, not a broken server: said loudly, not refused.
    let extra = differences(&held);
    if !extra.is_empty() {
        tracing::warn!(
            role = %me,
            tables = %extra.join("; "),
            "this role holds more than serving needs (it could edit the audit trail); \
             `patriotpay migrate` with PATRIOTPAY_SERVING_ROLE naming it revokes the rest"
        );
    }
    Ok(())
}

/// Grants `role` exactly what serving needs on every table of the schema, by the rule, after
/// revoking whatever it held there (so running it again changes nothing, and a broader grant
/// made by hand is taken back). One transaction: a serving process never sees the role without
/// its privileges. Then checks what the role actually holds, through PUBLIC and the roles it
/// belongs to as well, and refuses (rolling back) if that is not the rule.
pub async fn grant_serving_role(db: &Db, role: &str) -> anyhow::Result<Grants> {
    if db.backend() != Backend::Postgres {
        anyhow::bail!("PATRIOTPAY_SERVING_ROLE is for PostgreSQL; SQLite has no roles");
    }
    if role.is_empty() || role.contains('\0') {
        anyhow::bail!("PATRIOTPAY_SERVING_ROLE must name a role");
    }
    let mut tx = db.pool().begin().await?;
    let (schema, schema_ours): (String, bool) = sqlx::query_as(
        "SELECT n.nspname::text, pg_has_role(n.nspowner, 'USAGE')
         FROM pg_namespace n WHERE n.nspname = current_schema()",
    )
    .fetch_one(&mut *tx)
    .await?;
    let found: Option<(bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, pg_has_role($1::text::name, current_user, 'MEMBER')
         FROM pg_roles WHERE rolname = $1::text::name",
    )
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?;
    match found {
        None => anyhow::bail!(
            "PATRIOTPAY_SERVING_ROLE names role {role:?}, which does not exist: create it first \
             (README, \"Database roles\")"
        ),
        Some((true, _)) => {
            anyhow::bail!("the serving role {role:?} is a superuser: no grant can restrict it")
        }
        Some((_, true)) => anyhow::bail!(
            "the serving role {role:?} is the role that migrates, or a member of it: it could act \
             as the owner. Give `serve` a role of its own"
        ),
        Some(_) => {}
    }
    // A role the serving role belongs to that owns a table, or the schema, lends it the owner's
    // powers (ALTER, DROP, triggers) whatever is granted.
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.rolname::text FROM pg_roles r
         WHERE pg_has_role($1::text::name, r.oid, 'MEMBER')
           AND (r.oid IN (SELECT c.relowner FROM pg_class c
                          JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = current_schema())
                OR r.oid = (SELECT nspowner FROM pg_namespace WHERE nspname = current_schema()))",
    )
    .bind(role)
    .fetch_all(&mut *tx)
    .await?;
    if !owners.is_empty() {
        anyhow::bail!(
            "the serving role {role:?} is, or belongs to, {}, which owns tables or the schema: it \
             could act as the owner. Give `serve` a role that owns nothing and belongs to none of \
             them",
            owners.join(", ")
        );
    }
    let r = quote_ident(role);
    let s = quote_ident(&schema);
    let mut statements = vec![
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}"),
        format!("REVOKE ALL ON SCHEMA {s} FROM {r}"),
        format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
    ];
    // PostgreSQL 14 and older let every role create tables in `public`; only the schema's owner
    // can take that back (the check below refuses if it is still there).
    if schema_ours {
        statements.push(format!("REVOKE CREATE ON SCHEMA {s} FROM PUBLIC"));
    }
    let tables: Vec<String> = held(&mut *tx, Some(role)).await?.into_keys().collect();
    for table in &tables {
        statements.push(format!(
            "GRANT {} ON TABLE {s}.{} TO {r}",
            Access::of(table).privileges().join(", "),
            quote_ident(table)
        ));
    }
    for sql in &statements {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
    }
    let mut wrong = differences(&held(&mut *tx, Some(role)).await?);
    let can_create: bool = sqlx::query_scalar(
        "SELECT has_schema_privilege($1::text::name, current_schema(), 'CREATE')",
    )
    .bind(role)
    .fetch_one(&mut *tx)
    .await?;
    if can_create {
        wrong.push(format!("schema {schema}: holds CREATE"));
    }
    if !wrong.is_empty() {
        anyhow::bail!(
            "after granting, the serving role {role:?} still differs from what serving needs \
             ({}): it holds these through PUBLIC or a role it belongs to. Revoke them there and \
             run `patriotpay migrate` again",
            wrong.join("; ")
        );
    }
    tx.commit().await?;
    Ok(Grants {
        role: role.to_owned(),
        schema,
        tables: tables
            .into_iter()
            .map(|t| {
                let access = Access::of(&t);
                (t, access)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_decided_by_name() {
        assert_eq!(Access::of("audit_events"), Access::Evidence);
        assert_eq!(
            Access::of("audit_seals"),
            Access::Evidence,
            "a table yet to come"
        );
        assert_eq!(Access::of("_sqlx_migrations"), Access::ReadOnly);
        assert_eq!(Access::of("payments"), Access::Application);
        assert_eq!(
            Access::of("auditors"),
            Access::Application,
            "the prefix is audit_"
        );
        for a in [Access::Evidence, Access::ReadOnly, Access::Application] {
            assert!(!a.privileges().contains(&"TRUNCATE"));
            assert!(!a.privileges().contains(&"TRIGGER"));
            // In TABLE_PRIVILEGES order, as `held` lists them, so the two compare as strings.
            let mut sorted = a.privileges().to_vec();
            sorted.sort_by_key(|p| TABLE_PRIVILEGES.iter().position(|q| q == p));
            assert_eq!(sorted, a.privileges());
        }
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(quote_ident("pp_app"), "\"pp_app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
