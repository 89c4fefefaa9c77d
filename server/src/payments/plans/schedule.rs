//! A plan's schedule: how often instalments fall due, and how a total splits into them.

use crate::money::Money;
use time::{Duration, OffsetDateTime};

/// How often an instalment falls due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    TwoWeeks,
    /// The same day of each month (the month's last day when it is shorter).
    Month,
}

impl Every {
    pub const ALL: [Every; 2] = [Every::Month, Every::TwoWeeks];

    pub fn as_str(self) -> &'static str {
        match self {
            Every::TwoWeeks => "2weeks",
            Every::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Every> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// When the instalment `k` periods after `start` falls due (unix seconds, UTC).
    pub fn due(self, start: i64, k: u32) -> i64 {
        match self {
            Every::TwoWeeks => start + i64::from(k) * 14 * 86_400,
            Every::Month => add_months(start, k),
        }
    }
}

fn add_months(start: i64, k: u32) -> i64 {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(start) else {
        return start + i64::from(k) * 30 * 86_400;
    };
    let months = i32::from(u8::from(t.month())) - 1 + i32::try_from(k).unwrap_or(0);
    let year = t.year() + months.div_euclid(12);
    let Ok(month) = time::Month::try_from(u8::try_from(months.rem_euclid(12) + 1).unwrap_or(1))
    else {
        return start;
    };
    let last = month.length(year);
    let day = t.day().min(last);
    match time::Date::from_calendar_date(year, month, day) {
        Ok(d) => d.with_time(t.time()).assume_utc().unix_timestamp(),
        Err(_) => (t + Duration::days(30 * i64::from(k))).unix_timestamp(),
    }
}

/// `total` in `count` instalments as even as cents allow, the odd cents on the first ones;
/// `None` when there are fewer cents than instalments, or no instalments.
pub fn split(total: Money, count: u32) -> Option<Vec<Money>> {
    let n = i64::from(count);
    if n == 0 || total.cents() < n {
        return None;
    }
    let base = total.cents() / n;
    let odd = total.cents() % n;
    Some(
        (0..n)
            .map(|k| Money::from_cents(base + i64::from(k < odd)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_with_the_odd_cents_first() {
        let parts = split(Money::from_cents(10_001), 3).unwrap();
        assert_eq!(
            parts.iter().map(|m| m.cents()).collect::<Vec<_>>(),
            vec![3334, 3334, 3333]
        );
        assert_eq!(parts.iter().map(|m| m.cents()).sum::<i64>(), 10_001);
        assert!(split(Money::from_cents(2), 3).is_none());
        assert!(split(Money::from_cents(2), 0).is_none());
    }

    #[test]
    fn months_keep_the_day_or_the_months_last() {
        // 2026-01-31 12:00 UTC.
        let jan31 = 1_769_860_800;
        let feb = OffsetDateTime::from_unix_timestamp(Every::Month.due(jan31, 1)).unwrap();
        assert_eq!(
            (feb.month(), feb.day(), feb.hour()),
            (time::Month::February, 28, 12)
        );
        let next_jan = OffsetDateTime::from_unix_timestamp(Every::Month.due(jan31, 12)).unwrap();
        assert_eq!(
            (next_jan.year(), next_jan.month(), next_jan.day()),
            (2027, time::Month::January, 31)
        );
        assert_eq!(Every::TwoWeeks.due(jan31, 2), jan31 + 28 * 86_400);
        assert_eq!(Every::Month.due(jan31, 0), jan31);
    }
}
