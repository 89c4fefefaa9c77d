//! Reading the audit log for security officers and auditors: one practice's events, filtered
//! and paged newest first by a `seq` cursor, each with whether the chain has sealed it.
//!
//! Only ids are stored in `audit_events`, so nothing here decrypts anything. The practice comes
//! from the caller's `Permit` for `ViewAuditLog`: a page of another practice cannot be asked for.

use crate::access::{Action, Permit};
use crate::db::Db;
use crate::ids::PatientId;

/// Events per page.
pub const PAGE_SIZE: usize = 50;

/// What to show, every part already parsed and checked by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The actor id, exactly (`user:usr_…`, `link:lnk_…`, `system:webhook`).
    pub actor: Option<String>,
    pub patient: Option<PatientId>,
    /// The start of the dotted action name (`statement.` matches `statement.itemised.view`).
    pub action_prefix: Option<String>,
    /// Unix seconds, inclusive.
    pub from: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// The client address, exactly as recorded.
    pub address: Option<String>,
    /// Only events older than this seq (the "older" link's cursor).
    pub before: Option<i64>,
}

/// One event as the viewer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub on_behalf_of: Option<String>,
    pub tenant_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub outcome: String,
    /// The chain holds an event seal for this seq (a gap seal, or none yet, is not sealed).
    pub sealed: bool,
}

/// One page: the events, newest first, and the cursor for the next older page if there is one.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    pub older: Option<i64>,
}

type RawRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

enum Bind {
    Text(String),
    Int(i64),
    /// PostgreSQL's `substr` takes an `integer` length, which a `bigint` parameter is not.
    Int32(i32),
}

/// The practice's events matching `f`, newest first, at most `PAGE_SIZE`. A permit for any
/// other action reads nothing: only a `ViewAuditLog` decision opens the log.
pub async fn page(db: &Db, permit: &Permit, f: &Filter) -> Result<Page, sqlx::Error> {
    if permit.action() != Action::ViewAuditLog {
        return Ok(Page::default());
    }
    let mut binds = vec![Bind::Text(permit.tenant().as_str().to_owned())];
    let mut sql = String::from(
        "SELECT e.seq, e.at, e.actor, e.on_behalf_of, e.tenant_id, e.patient_id, e.action,
                e.resource, e.request_id, e.address, e.outcome, s.kind
         FROM audit_events e LEFT JOIN audit_seals s ON s.seq = e.seq
         WHERE e.tenant_id = $1",
    );
    let cond = |sql: &mut String, binds: &mut Vec<Bind>, expr: &str, b: Bind| {
        binds.push(b);
        sql.push_str(&format!(
            " AND {}",
            expr.replace('?', &format!("${}", binds.len()))
        ));
    };
    if let Some(a) = &f.actor {
        cond(&mut sql, &mut binds, "e.actor = ?", Bind::Text(a.clone()));
    }
    if let Some(p) = &f.patient {
        let b = Bind::Text(p.as_str().to_owned());
        cond(&mut sql, &mut binds, "e.patient_id = ?", b);
    }
    if let Some(p) = &f.action_prefix {
        // A prefix compared as text, not LIKE: SQLite's LIKE ignores case and `_` is a wildcard.
        let n = i32::try_from(p.chars().count()).unwrap_or(i32::MAX);
        binds.push(Bind::Int32(n));
        let len = binds.len();
        cond(
            &mut sql,
            &mut binds,
            &format!("substr(e.action, 1, ${len}) = ?"),
            Bind::Text(p.clone()),
        );
    }
    if let Some(t) = f.from {
        cond(&mut sql, &mut binds, "e.at >= ?", Bind::Int(t));
    }
    if let Some(t) = f.until {
        cond(&mut sql, &mut binds, "e.at < ?", Bind::Int(t));
    }
    if let Some(a) = &f.address {
        cond(&mut sql, &mut binds, "e.address = ?", Bind::Text(a.clone()));
    }
    if let Some(s) = f.before {
        cond(&mut sql, &mut binds, "e.seq < ?", Bind::Int(s));
    }
    // One more than a page tells whether an older page exists, without counting.
    sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT {}", PAGE_SIZE + 1));
    let mut q = sqlx::query_as::<_, RawRow>(&sql);
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
            Bind::Int32(i) => q.bind(i),
        };
    }
    let raw = q.fetch_all(db.pool()).await?;
    let more = raw.len() > PAGE_SIZE;
    let rows: Vec<Row> = raw
        .into_iter()
        .take(PAGE_SIZE)
        .map(|r| Row {
            seq: r.0,
            at: r.1,
            actor: r.2,
            on_behalf_of: r.3,
            tenant_id: r.4,
            patient_id: r.5,
            action: r.6,
            resource: r.7,
            request_id: r.8,
            address: r.9,
            outcome: r.10,
            sealed: r.11.as_deref() == Some("event"),
        })
        .collect();
    let older = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(Page { rows, older })
}
