//! Anomaly rules (issue 14), evaluated continuously in the server over what the portal already
//! records (the audit log, sign-in failures): each rule counts one kind of trouble per subject
//! in a window and, over its threshold, raises an alert — an audit event (`anomaly.<rule>`) and
//! a delivery to the alert sinks — at most once per rule, subject and window. Subjects are ids
//! and addresses, never PHI. Break-glass use and audit chain failures raise their alerts where
//! they happen (`http::staff::break_glass`, `audit::chain`).

use crate::alerts::AlertSink;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::TenantId;

/// The rules' thresholds (all from configuration, `config::Monitoring`).
#[derive(Clone, Debug)]
pub struct Thresholds {
    /// Window of the count-based rules, in seconds.
    pub window_secs: i64,
    /// Wrong identity answers on one pay link in the window.
    pub identity_failures_per_link: i64,
    /// Wrong identity answers from one address in the window.
    pub identity_failures_per_address: i64,
    /// Failed sign-ins on one account in the window.
    pub signin_failures_per_account: i64,
    /// Failed sign-ins from one address in the window.
    pub signin_failures_per_address: i64,
    /// Distinct patients a staff member may touch in an hour before their baseline matters.
    pub staff_patients_per_hour_floor: i64,
    /// Over the floor, an hour is anomalous past this many times the staff member's usual.
    pub staff_baseline_factor: f64,
    /// View-as sessions one staff member may start in a day.
    pub view_as_per_day: i64,
    /// Webhook signature refusals (any provider) in the window.
    pub webhook_signature_failures: i64,
    /// Failed payments of one practice in an hour before its baseline matters.
    pub payment_failures_per_hour_floor: i64,
    /// Over the floor, an hour is a spike past this many times the practice's usual.
    pub payment_baseline_factor: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            window_secs: 15 * 60,
            identity_failures_per_link: 5,
            identity_failures_per_address: 20,
            signin_failures_per_account: 10,
            signin_failures_per_address: 30,
            staff_patients_per_hour_floor: 30,
            staff_baseline_factor: 3.0,
            view_as_per_day: 10,
            webhook_signature_failures: 10,
            payment_failures_per_hour_floor: 10,
            payment_baseline_factor: 3.0,
        }
    }
}

/// One rule over its threshold for one subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    /// What it is about: a link, user or practice id, an address, a provider.
    pub subject: String,
    /// The practice it concerns when all it counted was in one practice (its security officers
    /// see it too); `None` leaves it to the platform's.
    pub tenant: Option<TenantId>,
    /// The window it counts in (its start), which with rule and subject makes it once.
    pub window_start: i64,
    pub detail: String,
}

/// The practice of a group of audit events when there is exactly one, else NULL.
const ONE_TENANT: &str = "CASE WHEN COUNT(DISTINCT tenant_id) = 1 THEN MAX(tenant_id) END";

/// How many days of history make a baseline.
const BASELINE_DAYS: i64 = 14;

/// Counts per subject of the audit events with one of `actions` and `outcome` since `since`,
/// grouped by `column` (a fixed column name), over `min`, each with the one practice they were
/// all in (if they were).
async fn counted(
    db: &Db,
    column: &'static str,
    actions: &[&str],
    outcome: &str,
    since: i64,
    min: i64,
) -> Result<Vec<(String, i64, Option<TenantId>)>, sqlx::Error> {
    let list = (0..actions.len())
        .map(|i| format!("${}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {column}, COUNT(*), {ONE_TENANT} FROM audit_events
         WHERE at > $1 AND outcome = $2 AND action IN ({list}) AND {column} IS NOT NULL
         GROUP BY {column}"
    );
    let mut q = sqlx::query_as::<_, (String, i64, Option<String>)>(&sql)
        .bind(since)
        .bind(outcome);
    for a in actions {
        q = q.bind(*a);
    }
    Ok(q.fetch_all(db.pool())
        .await?
        .into_iter()
        .filter(|(_, n, _)| *n > min)
        .map(|(subject, n, tenant)| (subject, n, tenant.map(TenantId::from_db)))
        .collect())
}

/// The start of the window `now` falls in.
fn window(now: i64, secs: i64) -> i64 {
    now - now.rem_euclid(secs)
}

/// Every rule, evaluated at `now`.
pub async fn evaluate(db: &Db, t: &Thresholds, now: i64) -> Result<Vec<Finding>, sqlx::Error> {
    let mut out = vec![];
    let since = now - t.window_secs;
    let w = window(now, t.window_secs);
    let identity = ["identity.dob", "identity.zip"];
    for (id, n, tenant) in counted(
        db,
        "resource",
        &identity,
        "denied",
        since,
        t.identity_failures_per_link,
    )
    .await?
    {
        out.push(Finding {
            rule: "identity-failures-link",
            detail: format!(
                "{n} wrong identity answers on pay link {id} in {} minutes",
                t.window_secs / 60
            ),
            subject: id,
            tenant,
            window_start: w,
        });
    }
    for (addr, n, tenant) in counted(
        db,
        "address",
        &identity,
        "denied",
        since,
        t.identity_failures_per_address,
    )
    .await?
    {
        out.push(Finding {
            rule: "identity-failures-address",
            detail: format!(
                "{n} wrong identity answers from {addr} in {} minutes",
                t.window_secs / 60
            ),
            subject: addr,
            tenant,
            window_start: w,
        });
    }
    out.extend(signin_failures(db, t, now).await?);
    out.extend(staff_views(db, t, now).await?);
    let day = window(now, 86_400);
    for (actor, n, tenant) in counted(
        db,
        "actor",
        &["viewas.start"],
        "success",
        day,
        t.view_as_per_day,
    )
    .await?
    {
        out.push(Finding {
            rule: "view-as-per-day",
            detail: format!("{actor} started {n} view-as sessions today"),
            subject: actor,
            tenant,
            window_start: day,
        });
    }
    let webhooks = counted(
        db,
        "actor",
        &["webhook.signature"],
        "denied",
        since,
        t.webhook_signature_failures,
    )
    .await?;
    for (provider, n, tenant) in webhooks {
        out.push(Finding {
            rule: "webhook-signature-failures",
            detail: format!(
                "{n} {provider} webhooks with a bad signature in {} minutes",
                t.window_secs / 60
            ),
            subject: provider,
            tenant,
            window_start: w,
        });
    }
    out.extend(payment_spikes(db, t, now).await?);
    Ok(out)
}

/// Failed sign-ins per account (by the email's blind index, named by its account when there is
/// one) and per address.
async fn signin_failures(db: &Db, t: &Thresholds, now: i64) -> Result<Vec<Finding>, sqlx::Error> {
    let since = now - t.window_secs;
    let w = window(now, t.window_secs);
    let mut out = vec![];
    let accounts: Vec<(Vec<u8>, i64, Option<String>)> = sqlx::query_as(
        "SELECT f.email_index, COUNT(*), MAX(u.id) FROM login_failures f
         LEFT JOIN users u ON u.email_index = f.email_index
         WHERE f.at > $1 GROUP BY f.email_index",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    for (index, n, user) in accounts {
        if n <= t.signin_failures_per_account {
            continue;
        }
        // No account: the address tried is named by its index's first bytes only.
        let subject = user
            .unwrap_or_else(|| format!("unknown:{}", hex::encode(&index[..6.min(index.len())])));
        out.push(Finding {
            rule: "signin-failures-account",
            detail: format!(
                "{n} failed sign-ins on account {subject} in {} minutes",
                t.window_secs / 60
            ),
            subject,
            tenant: None,
            window_start: w,
        });
    }
    let addresses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT address, COUNT(*) FROM login_failures WHERE at > $1 GROUP BY address",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    for (addr, n) in addresses {
        if n > t.signin_failures_per_address {
            out.push(Finding {
                rule: "signin-failures-address",
                detail: format!(
                    "{n} failed sign-ins from {addr} in {} minutes",
                    t.window_secs / 60
                ),
                subject: addr,
                tenant: None,
                window_start: w,
            });
        }
    }
    Ok(out)
}

/// The mean of `per_hour` over the hours it has (the hours the subject was active), or 0.
fn mean(per_hour: &[(i64, i64)]) -> f64 {
    if per_hour.is_empty() {
        return 0.0;
    }
    per_hour.iter().map(|(_, n)| *n as f64).sum::<f64>() / per_hour.len() as f64
}

/// A subject's usual hour: `sql` (per hour of the last `BASELINE_DAYS` before this hour, `$1`
/// the subject, `$2`..`$3` the span) averaged over the hours it has.
async fn usual_per_hour(db: &Db, sql: &str, subject: &str, now: i64) -> Result<f64, sqlx::Error> {
    let history: Vec<(i64, i64)> = sqlx::query_as(sql)
        .bind(subject)
        .bind(now - BASELINE_DAYS * 86_400)
        .bind(now - 3600)
        .fetch_all(db.pool())
        .await?;
    Ok(mean(&history))
}

/// Whether `now_count` is anomalous against `floor` and `factor` times the usual.
fn over_baseline(now_count: i64, floor: i64, factor: f64, usual: f64) -> bool {
    now_count > floor && now_count as f64 > factor * usual
}

/// Staff members who touched far more distinct patients in the last hour than their usual
/// (the mean over their active hours of the last `BASELINE_DAYS`, this hour left out).
async fn staff_views(db: &Db, t: &Thresholds, now: i64) -> Result<Vec<Finding>, sqlx::Error> {
    let hour = window(now, 3600);
    let recent: Vec<(String, i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT e.actor, COUNT(DISTINCT e.patient_id), {ONE_TENANT} FROM audit_events e
         JOIN users u ON e.actor = 'user:' || u.id AND u.kind = 'staff'
         WHERE e.at > $1 AND e.patient_id IS NOT NULL GROUP BY e.actor"
    ))
    .bind(now - 3600)
    .fetch_all(db.pool())
    .await?;
    let mut out = vec![];
    for (actor, n, tenant) in recent {
        let tenant = tenant.map(TenantId::from_db);
        if n <= t.staff_patients_per_hour_floor {
            continue;
        }
        let usual = usual_per_hour(
            db,
            "SELECT at / 3600, COUNT(DISTINCT patient_id) FROM audit_events
             WHERE actor = $1 AND patient_id IS NOT NULL AND at > $2 AND at <= $3
             GROUP BY at / 3600",
            &actor,
            now,
        )
        .await?;
        if over_baseline(
            n,
            t.staff_patients_per_hour_floor,
            t.staff_baseline_factor,
            usual,
        ) {
            out.push(Finding {
                rule: "staff-patient-views",
                detail: format!(
                    "{actor} touched {n} patients' records in the last hour; usually {usual:.1} an hour"
                ),
                subject: actor,
                tenant,
                window_start: hour,
            });
        }
    }
    Ok(out)
}

/// Practices whose failed payments in the last hour spike over their usual.
async fn payment_spikes(db: &Db, t: &Thresholds, now: i64) -> Result<Vec<Finding>, sqlx::Error> {
    let hour = window(now, 3600);
    let recent = counted(
        db,
        "tenant_id",
        &["payment.failed"],
        "failure",
        now - 3600,
        t.payment_failures_per_hour_floor,
    )
    .await?;
    let mut out = vec![];
    for (subject, n, tenant) in recent {
        let usual = usual_per_hour(
            db,
            "SELECT at / 3600, COUNT(*) FROM audit_events
             WHERE tenant_id = $1 AND action = 'payment.failed' AND at > $2 AND at <= $3
             GROUP BY at / 3600",
            &subject,
            now,
        )
        .await?;
        if over_baseline(
            n,
            t.payment_failures_per_hour_floor,
            t.payment_baseline_factor,
            usual,
        ) {
            out.push(Finding {
                rule: "payment-failure-spike",
                detail: format!(
                    "practice {subject}: {n} failed payments in the last hour; usually {usual:.1} an hour"
                ),
                subject,
                tenant,
                window_start: hour,
            });
        }
    }
    Ok(out)
}

/// Raises each finding not raised before for its rule, subject and window: the alert (stored,
/// logged, sent to the sinks) and an audit event. Returns the findings raised now.
pub async fn raise_new(
    db: &Db,
    alerts: &AlertSink,
    findings: Vec<Finding>,
    now: i64,
) -> Result<Vec<Finding>, sqlx::Error> {
    let mut raised = vec![];
    for f in findings {
        let first = sqlx::query(
            "INSERT INTO anomaly_raised (rule, subject, window_start, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (rule, subject, window_start) DO NOTHING",
        )
        .bind(f.rule)
        .bind(&f.subject)
        .bind(f.window_start)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected()
            == 1;
        if !first {
            continue;
        }
        let kind = format!("anomaly.{}", f.rule);
        alerts
            .raise(db, f.tenant.as_ref(), &kind, &f.detail, now)
            .await?;
        audit::record(
            db.pool(),
            audit::Event {
                actor: &Actor {
                    at: Some(now),
                    ..Actor::system("system:anomaly")
                },
                tenant: f.tenant.as_ref(),
                patient: None,
                action: "anomaly.raised",
                resource: Some(&format!("{}:{}", f.rule, f.subject)),
                outcome: Outcome::Success,
            },
        )
        .await?;
        raised.push(f);
    }
    Ok(raised)
}

/// One pass: evaluate every rule and raise what is new.
pub async fn run(
    db: &Db,
    alerts: &AlertSink,
    t: &Thresholds,
    now: i64,
) -> Result<Vec<Finding>, sqlx::Error> {
    let findings = evaluate(db, t, now).await?;
    raise_new(db, alerts, findings, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_need_both_the_floor_and_the_factor() {
        assert!(!over_baseline(30, 30, 3.0, 0.0), "at the floor");
        assert!(
            over_baseline(31, 30, 3.0, 0.0),
            "no history: the floor alone"
        );
        assert!(
            !over_baseline(40, 30, 3.0, 20.0),
            "a busy agent's usual hour"
        );
        assert!(over_baseline(61, 30, 3.0, 20.0), "three times the usual");
        assert_eq!(mean(&[(1, 10), (2, 30)]), 20.0);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(window(3_661, 3600), 3600);
    }
}
