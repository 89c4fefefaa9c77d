//! Text reminders of a balance still owed (issue 13): on a practice's cadence (days after a
//! statement's first text, default 7 and 14, and on its due date), one text per step at most,
//! carrying a fresh pay link (the statement's older live links revoked: only the newest text's
//! link works). They stop when the balance is paid, the number opted out, or staff paused the
//! statement's reminders. Several steps due at once (a server that was down) send one text.

use super::pay_link::{text_pay_link, Kind, Texted};
use super::MessageError;
use crate::crypto::{random_token, token_hash, FieldCrypto};
use crate::db::Db;
use crate::ids::{LinkId, PatientId, StatementId, TenantId};

/// Days a reminder's fresh link lasts.
const LINK_DAYS: i64 = 30;

/// A practice's cadence from its settings: the day offsets (`"7,14"`; anything unreadable is
/// skipped) and whether the due date is a step.
pub fn cadence(days: &str) -> Vec<i64> {
    let mut out: Vec<i64> = days
        .split(',')
        .filter_map(|d| d.trim().parse::<i64>().ok())
        .filter(|d| (1..=365).contains(d))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The steps of a statement due at `now` that were not taken yet.
fn due_steps(
    first_text_at: i64,
    days: &[i64],
    due_date: Option<time::Date>,
    remind_on_due: bool,
    taken: &[String],
    now: i64,
) -> Vec<String> {
    let mut steps: Vec<String> = days
        .iter()
        .filter(|d| first_text_at + **d * 86_400 <= now)
        .map(|d| format!("d{d}"))
        .collect();
    // The due date is a step only when it falls after the first text (a statement sent on or
    // after its due date was told so by that text).
    let date = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map(|t| t.date())
            .ok()
    };
    if remind_on_due {
        if let (Some(due), Some(today), Some(sent)) = (due_date, date(now), date(first_text_at)) {
            if sent < due && due <= today {
                steps.push("due".into());
            }
        }
    }
    steps.retain(|s| !taken.contains(s));
    steps
}

/// Stops a statement's reminders (staff); `false` when they were stopped already.
pub async fn pause(db: &Db, statement: &StatementId, now: i64) -> Result<bool, MessageError> {
    let mut conn = db.pool().acquire().await?;
    pause_in(&mut conn, statement, now).await
}

/// `pause`, in the caller's transaction.
pub async fn pause_in(
    conn: &mut sqlx::AnyConnection,
    statement: &StatementId,
    now: i64,
) -> Result<bool, MessageError> {
    let n = sqlx::query(
        "UPDATE statements SET reminders_paused_at = $1
         WHERE id = $2 AND reminders_paused_at IS NULL",
    )
    .bind(now)
    .bind(statement.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Resumes a statement's reminders (the steps already taken are not sent again); `false` when
/// they were not paused.
pub async fn resume(
    conn: &mut sqlx::AnyConnection,
    statement: &StatementId,
) -> Result<bool, MessageError> {
    let n = sqlx::query(
        "UPDATE statements SET reminders_paused_at = NULL
         WHERE id = $1 AND reminders_paused_at IS NOT NULL",
    )
    .bind(statement.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The statements of the permit's patient whose reminders are paused.
pub async fn paused_of(
    db: &Db,
    permit: &crate::access::Permit,
) -> Result<Vec<StatementId>, sqlx::Error> {
    let Some(patient) = permit.patient() else {
        return Ok(vec![]);
    };
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM statements
         WHERE tenant_id = $1 AND patient_id = $2 AND reminders_paused_at IS NOT NULL",
    )
    .bind(permit.tenant().as_str())
    .bind(patient.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(ids.into_iter().map(StatementId::from_db).collect())
}

/// Queues the reminders due at `now`; how many texts were queued.
pub async fn run_due(
    db: &Db,
    crypto: &FieldCrypto,
    public_url: &str,
    now: i64,
) -> Result<u64, MessageError> {
    // Statements texted before and not paused, with their practice's cadence and first text.
    type Row = (String, String, String, String, String, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.id, s.tenant_id, s.patient_id, s.due_date, t.reminder_days,
             t.remind_on_due_date, MIN(o.created_at)
         FROM statements s
         JOIN tenants t ON t.id = s.tenant_id
         JOIN outbox o ON o.statement_id = s.id AND o.template = 'pay-link'
         WHERE s.reminders_paused_at IS NULL
         GROUP BY s.id, s.tenant_id, s.patient_id, s.due_date, t.reminder_days,
             t.remind_on_due_date",
    )
    .fetch_all(db.pool())
    .await?;
    let mut queued = 0;
    for (id, tenant, patient, due, days, on_due, first) in rows {
        let statement = StatementId::from_db(id);
        let taken: Vec<String> =
            sqlx::query_scalar("SELECT step FROM statement_reminders WHERE statement_id = $1")
                .bind(statement.as_str())
                .fetch_all(db.pool())
                .await?;
        let due_date = time::Date::parse(&due, crate::links::ISO_DATE).ok();
        let steps = due_steps(first, &cadence(&days), due_date, on_due == 1, &taken, now);
        if steps.is_empty() {
            continue;
        }
        let tenant = TenantId::from_db(tenant);
        let patient = PatientId::from_db(patient);
        crypto.ready_field_key(&tenant).await?;
        let mut tx = db.begin_write().await?;
        // Claimed first, inside the transaction: a second server running the same minute
        // finds the steps taken (or waits for this commit) and leaves them alone.
        if record_steps(&mut tx, &statement, &steps, "queued", now).await? < steps.len() {
            tx.rollback().await?;
            continue;
        }
        let paid = crate::billing::balance(&mut *tx, &statement).await?.cents() <= 0;
        let outcome = if paid {
            "paid"
        } else {
            let token = random_token();
            relink(&mut tx, &tenant, &statement, &token, now).await?;
            match text_pay_link(
                &mut tx,
                crypto,
                &tenant,
                &patient,
                &statement,
                &token,
                public_url,
                Kind::Reminder,
                now,
            )
            .await?
            {
                Texted::Queued { .. } => "queued",
                Texted::OptedOut => "opted_out",
                Texted::NoNumber => "no_number",
            }
        };
        if outcome == "queued" {
            queued += 1;
        } else {
            // Nothing goes out: the fresh link is not kept either, only what became of the steps.
            tx.rollback().await?;
            tx = db.begin_write().await?;
            if record_steps(&mut tx, &statement, &steps, outcome, now).await? < steps.len() {
                tx.rollback().await?;
                continue;
            }
        }
        // A paid statement needs no more; its reminders end here.
        if paid {
            sqlx::query("UPDATE statements SET reminders_paused_at = $1 WHERE id = $2")
                .bind(now)
                .bind(statement.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(queued)
}

/// Records `steps` as done with `outcome`; how many were new (a step already recorded, by
/// this server or another, is left as it is).
async fn record_steps(
    conn: &mut sqlx::AnyConnection,
    statement: &StatementId,
    steps: &[String],
    outcome: &str,
    now: i64,
) -> Result<usize, MessageError> {
    let mut fresh = 0;
    for step in steps {
        let done = sqlx::query(
            "INSERT INTO statement_reminders (statement_id, step, outcome, at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (statement_id, step) DO NOTHING",
        )
        .bind(statement.as_str())
        .bind(step)
        .bind(outcome)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            fresh += 1;
        }
    }
    Ok(fresh)
}

/// Revokes the statement's live links and makes the one `token` opens.
pub(crate) async fn relink(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    statement: &StatementId,
    token: &str,
    now: i64,
) -> Result<(), MessageError> {
    sqlx::query(
        "UPDATE pay_links SET revoked_at = $1
         WHERE statement_id = $2 AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(statement.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO pay_links (id, tenant_id, statement_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(LinkId::generate().as_str())
    .bind(tenant.as_str())
    .bind(statement.as_str())
    .bind(token_hash(token))
    .bind(now)
    .bind(now + LINK_DAYS * 86_400)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_reads_days_and_skips_nonsense() {
        assert_eq!(cadence("7,14"), vec![7, 14]);
        assert_eq!(cadence(" 14, 7,7, x, 0, 400 "), vec![7, 14]);
        assert!(cadence("").is_empty());
    }

    #[test]
    fn steps_fall_due_once_each() {
        let day = 86_400;
        let due = time::macros::date!(2026 - 12 - 31);
        // 2026-12-10 00:00 UTC.
        let first = 1_796_860_800;
        let none: Vec<String> = vec![];
        assert!(due_steps(first, &[7, 14], Some(due), true, &none, first + 6 * day).is_empty());
        assert_eq!(
            due_steps(first, &[7, 14], Some(due), true, &none, first + 7 * day),
            vec!["d7"]
        );
        let taken = vec!["d7".to_owned()];
        assert_eq!(
            due_steps(first, &[7, 14], Some(due), true, &taken, first + 30 * day),
            vec!["d14", "due"]
        );
        assert_eq!(
            due_steps(first, &[7, 14], Some(due), false, &taken, first + 30 * day),
            vec!["d14"]
        );
        // Sent on or after its due date: no due-date step.
        let late = time::macros::date!(2026 - 12 - 10);
        assert_eq!(
            due_steps(first, &[], Some(late), true, &none, first + 30 * day),
            Vec::<String>::new()
        );
    }
}
