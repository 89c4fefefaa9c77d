//! A practice's last 30 days for the staff home's chart: payments booked per day (succeeded or
//! settling), and pay links opened and identities confirmed per day, from the audit trail.
//! Counts and sums only: nothing about any one patient.

use crate::db::Db;
use crate::ids::TenantId;
use crate::money::Money;
use patriotpay_app::pictures::DayVm;

/// How many days the chart shows (today included).
pub const DAYS: i64 = 30;

/// Per-day `(day number, value)` pairs from `sql` (`$1` the practice, `$2` the first second).
async fn per_day(
    db: &Db,
    sql: &str,
    tenant: &TenantId,
    from: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(sql)
        .bind(tenant.as_str())
        .bind(from)
        .fetch_all(db.pool())
        .await
}

/// The practice's days up to the one `now` falls in, oldest first.
pub async fn last_days(db: &Db, tenant: &TenantId, now: i64) -> Result<Vec<DayVm>, sqlx::Error> {
    let today = now.div_euclid(86_400);
    let first = today - (DAYS - 1);
    let from = first * 86_400;
    let paid = per_day(
        db,
        "SELECT CAST(paid_at / 86400 AS BIGINT), CAST(SUM(amount_cents) AS BIGINT) FROM payments
         WHERE tenant_id = $1 AND paid_at >= $2 AND status IN ('succeeded', 'processing')
         GROUP BY paid_at / 86400",
        tenant,
        from,
    )
    .await?;
    let payments = per_day(
        db,
        "SELECT CAST(paid_at / 86400 AS BIGINT), COUNT(*) FROM payments
         WHERE tenant_id = $1 AND paid_at >= $2 AND status IN ('succeeded', 'processing')
         GROUP BY paid_at / 86400",
        tenant,
        from,
    )
    .await?;
    let audit = |action: &'static str| {
        format!(
            "SELECT CAST(at / 86400 AS BIGINT), COUNT(*) FROM audit_events
             WHERE tenant_id = $1 AND at >= $2 AND action = '{action}' AND outcome = 'success'
             GROUP BY at / 86400"
        )
    };
    let opened = per_day(db, &audit("paylink.open"), tenant, from).await?;
    let verified = per_day(db, &audit("identity.dob"), tenant, from).await?;
    let on =
        |rows: &[(i64, i64)], day: i64| rows.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
    Ok((first..=today)
        .map(|day| {
            let cents = on(&paid, day);
            DayVm {
                label: crate::clock::display_date_unix(day * 86_400),
                paid_cents: cents,
                paid: Money::from_cents(cents).to_string(),
                payments: on(&payments, day),
                links_opened: on(&opened, day),
                links_verified: on(&verified, day),
            }
        })
        .collect())
}
