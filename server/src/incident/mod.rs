//! The incident plan as commands (issue 14): `scope` (from the audit log: who acted, which
//! patients' records were viewed or changed, which practices are affected), `trace` (the audit
//! trail and alerts of a window as one timeline), `revoke-sessions` (every session of the
//! chosen accounts ended, Cognito refresh tokens revoked too), `rotate` (every key, link and
//! token the portal holds replaced) and `force-password-reset` (`reset`). Each run is itself audited
//! (`incident.*`); a change has `--dry-run`, is idempotent, and reruns safely. The CLI wiring is
//! `incident::cli`.

pub mod cli;
pub mod notify;
pub mod postmortem;
pub mod reset;
pub mod rotate;

use crate::db::Db;
use serde::Serialize;

/// A time window, in unix seconds, `until` included.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

/// Parses a time as an operator types it: RFC 3339 (`2026-12-01T06:00:00Z`), a day
/// (`2026-12-01`, midnight UTC), or unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        let midnight = d.to_datetime(jiff::civil::Time::midnight());
        if let Ok(t) = jiff::tz::TimeZone::UTC.to_timestamp(midnight) {
            return Ok(t.as_second());
        }
    }
    Err(format!(
        "{s:?} is not a time: use 2026-12-01T06:00:00Z, 2026-12-01 or unix seconds"
    ))
}

/// `2026-12-01T06:00:00Z`.
pub fn show_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Which audit events a step looks at: the window and the optional filters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Filter {
    pub actor: Option<String>,
    pub address: Option<String>,
    pub practice: Option<String>,
}

impl Filter {
    /// A staff or member account may be named by its id alone (`usr_…`); events name it
    /// `user:usr_…`.
    pub fn actor_id(&self) -> Option<String> {
        self.actor.as_ref().map(|a| {
            if a.starts_with("usr_") {
                format!("user:{a}")
            } else {
                a.clone()
            }
        })
    }
}

/// The WHERE clause and its binds (after `$1` since, `$2` until) for a filter.
fn conditions(f: &Filter) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = vec![];
    for (column, value) in [
        ("actor", f.actor_id()),
        ("address", f.address.clone()),
        ("tenant_id", f.practice.clone()),
    ] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {column} = ${}", binds.len() + 2));
        }
    }
    (sql, binds)
}

/// One account that acted in the window.
#[derive(Clone, Debug, Serialize)]
pub struct Actor {
    pub actor: String,
    pub events: i64,
    pub patients: i64,
    pub first: i64,
    pub last: i64,
}

/// One patient whose record was viewed or changed.
#[derive(Clone, Debug, Serialize)]
pub struct Patient {
    pub patient: String,
    pub practice: Option<String>,
    pub events: i64,
    pub first: i64,
    pub last: i64,
    /// Who touched it.
    pub actors: Vec<String>,
}

/// What `scope` found.
#[derive(Clone, Debug, Serialize)]
pub struct Scope {
    pub window: Window,
    pub filter: Filter,
    pub actors: Vec<Actor>,
    pub patients: Vec<Patient>,
    pub practices: Vec<String>,
}

/// The scope of an incident over `window` with `filter`: from the audit log, which accounts
/// acted, which patients' records were viewed or changed (successful events naming a patient),
/// and which practices those are.
pub async fn scope(db: &Db, window: Window, filter: &Filter) -> Result<Scope, sqlx::Error> {
    let (cond, binds) = conditions(filter);
    let sql = format!(
        "SELECT actor, COUNT(*), COUNT(DISTINCT patient_id), MIN(at), MAX(at) FROM audit_events
         WHERE at >= $1 AND at <= $2{cond} GROUP BY actor ORDER BY actor"
    );
    let mut q = sqlx::query_as::<_, (String, i64, i64, i64, i64)>(&sql)
        .bind(window.since)
        .bind(window.until);
    for b in &binds {
        q = q.bind(b);
    }
    let actors = q
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(|(actor, events, patients, first, last)| Actor {
            actor,
            events,
            patients,
            first,
            last,
        })
        .collect();
    let sql = format!(
        "SELECT patient_id, tenant_id, actor, at FROM audit_events
         WHERE at >= $1 AND at <= $2 AND patient_id IS NOT NULL AND outcome = 'success'{cond}
         ORDER BY patient_id, at"
    );
    let mut q = sqlx::query_as::<_, (String, Option<String>, String, i64)>(&sql)
        .bind(window.since)
        .bind(window.until);
    for b in &binds {
        q = q.bind(b);
    }
    let mut patients: Vec<Patient> = vec![];
    for (patient, practice, actor, at) in q.fetch_all(db.pool()).await? {
        match patients.last_mut() {
            Some(p) if p.patient == patient => {
                p.events += 1;
                p.last = at;
                if !p.actors.contains(&actor) {
                    p.actors.push(actor);
                }
            }
            _ => patients.push(Patient {
                patient,
                practice,
                events: 1,
                first: at,
                last: at,
                actors: vec![actor],
            }),
        }
    }
    let mut practices: Vec<String> = patients.iter().filter_map(|p| p.practice.clone()).collect();
    practices.sort();
    practices.dedup();
    Ok(Scope {
        window,
        filter: filter.clone(),
        actors,
        patients,
        practices,
    })
}

/// One line of a trace: an audit event or an alert.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceItem {
    Event {
        seq: i64,
        at: i64,
        actor: String,
        on_behalf_of: Option<String>,
        action: String,
        outcome: String,
        practice: Option<String>,
        patient: Option<String>,
        resource: Option<String>,
        request_id: Option<String>,
        address: Option<String>,
    },
    Alert {
        id: i64,
        at: i64,
        kind: String,
        detail: String,
    },
}

impl TraceItem {
    fn at(&self) -> i64 {
        match self {
            TraceItem::Event { at, .. } | TraceItem::Alert { at, .. } => *at,
        }
    }

    /// One readable line.
    pub fn line(&self) -> String {
        match self {
            TraceItem::Event {
                at,
                actor,
                on_behalf_of,
                action,
                outcome,
                practice,
                patient,
                resource,
                request_id,
                address,
                ..
            } => {
                let mut l = format!("{}  event  {actor}  {action}  {outcome}", show_time(*at));
                for (k, v) in [
                    ("on_behalf_of", on_behalf_of),
                    ("practice", practice),
                    ("patient", patient),
                    ("resource", resource),
                    ("address", address),
                    ("request", request_id),
                ] {
                    if let Some(v) = v {
                        l.push_str(&format!("  {k}={v}"));
                    }
                }
                l
            }
            TraceItem::Alert {
                at, kind, detail, ..
            } => {
                format!("{}  ALERT  {kind}  {detail}", show_time(*at))
            }
        }
    }
}

/// Audit events (filtered) and alerts (all of the window) as one timeline, oldest first.
pub async fn trace(
    db: &Db,
    window: Window,
    filter: &Filter,
) -> Result<Vec<TraceItem>, sqlx::Error> {
    let (cond, binds) = conditions(filter);
    type Row = (
        i64,
        i64,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let sql = format!(
        "SELECT seq, at, actor, on_behalf_of, action, outcome, tenant_id, patient_id, resource,
             request_id, address
         FROM audit_events WHERE at >= $1 AND at <= $2{cond} ORDER BY seq"
    );
    let mut q = sqlx::query_as::<_, Row>(&sql)
        .bind(window.since)
        .bind(window.until);
    for b in &binds {
        q = q.bind(b);
    }
    let mut items: Vec<TraceItem> = q
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(|r| TraceItem::Event {
            seq: r.0,
            at: r.1,
            actor: r.2,
            on_behalf_of: r.3,
            action: r.4,
            outcome: r.5,
            practice: r.6,
            patient: r.7,
            resource: r.8,
            request_id: r.9,
            address: r.10,
        })
        .collect();
    let alerts: Vec<(i64, i64, String, String)> = sqlx::query_as(
        "SELECT id, at, kind, detail FROM alerts WHERE at >= $1 AND at <= $2 ORDER BY id",
    )
    .bind(window.since)
    .bind(window.until)
    .fetch_all(db.pool())
    .await?;
    items.extend(
        alerts
            .into_iter()
            .map(|(id, at, kind, detail)| TraceItem::Alert {
                id,
                at,
                kind,
                detail,
            }),
    );
    // Stable: events keep their seq order within a second, alerts follow them.
    items.sort_by_key(TraceItem::at);
    Ok(items)
}

/// Whose sessions `revoke-sessions` ends.
#[derive(Clone, Debug)]
pub enum Whom {
    All,
    User(String),
    Practice(String),
}

impl Whom {
    pub fn describe(&self) -> String {
        match self {
            Whom::All => "all".into(),
            Whom::User(u) => u.clone(),
            Whom::Practice(p) => format!("practice:{p}"),
        }
    }
}

/// One account an incident step acts on.
pub struct Account {
    pub id: String,
    pub staff: bool,
    /// Its Cognito subject, when Cognito holds its password.
    pub subject: Option<String>,
    pub email_ct: Vec<u8>,
}

/// The accounts `whom` names.
pub async fn accounts_of(db: &Db, whom: &Whom) -> Result<Vec<Account>, sqlx::Error> {
    const COLUMNS: &str = "SELECT id, kind, external_subject, email_ct FROM users";
    let rows: Vec<(String, String, Option<String>, Vec<u8>)> = match whom {
        Whom::All => {
            sqlx::query_as(&format!("{COLUMNS} ORDER BY id"))
                .fetch_all(db.pool())
                .await?
        }
        Whom::User(u) => {
            sqlx::query_as(&format!("{COLUMNS} WHERE id = $1 ORDER BY id"))
                .bind(u.clone())
                .fetch_all(db.pool())
                .await?
        }
        Whom::Practice(p) => {
            sqlx::query_as(&format!(
                "{COLUMNS} WHERE id IN
                 (SELECT user_id FROM user_grants WHERE tenant_id = $1 AND revoked_at IS NULL)
             ORDER BY id"
            ))
            .bind(p.clone())
            .fetch_all(db.pool())
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(id, kind, subject, email_ct)| Account {
            id,
            staff: kind == "staff",
            subject,
            email_ct,
        })
        .collect())
}

/// Ends every portal session of `users` signed in before `now` (the revoked-before time, which
/// every request checks) and forgets their trusted devices; with `All`, the session store is
/// emptied too (pay-link visitors' sessions included). Idempotent.
pub async fn revoke_portal_sessions(
    db: &Db,
    whom: &Whom,
    users: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    for chunk in users.chunks(200) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE users SET sessions_revoked_before = $1
             WHERE id IN ({list}) AND sessions_revoked_before < $1"
        );
        let mut q = sqlx::query(&sql).bind(now);
        for u in chunk {
            q = q.bind(u);
        }
        q.execute(&mut *tx).await?;
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("DELETE FROM trusted_devices WHERE user_id IN ({list})");
        let mut q = sqlx::query(&sql);
        for u in chunk {
            q = q.bind(u);
        }
        q.execute(&mut *tx).await?;
    }
    if matches!(whom, Whom::All) {
        sqlx::query("DELETE FROM sessions")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_operators_type_them() {
        assert_eq!(parse_time("1796100000"), Ok(1_796_100_000));
        assert_eq!(parse_time("2026-12-01"), Ok(1_796_083_200));
        assert_eq!(parse_time("2026-12-01T06:00:00Z"), Ok(1_796_104_800));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(show_time(1_796_104_800), "2026-12-01T06:00:00Z");
        let f = Filter {
            actor: Some("usr_1".into()),
            ..Filter::default()
        };
        assert_eq!(f.actor_id().as_deref(), Some("user:usr_1"));
    }
}
