//! Wall-clock time as unix seconds, and the date formats pages show.

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The clock sessions and sign-in limits read; tests move it forward instead of sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        now_unix() + self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves this clock forward (tests only have a use for it).
    pub fn advance(&self, secs: i64) {
        self.offset
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `Mar 14, 2026` (`14 mar 2026` in Spanish pages) for a unix time (UTC).
pub fn display_date_unix(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .map(|t| crate::locale::date(t.date(), crate::locale::current()))
        .unwrap_or_default()
}

/// "2026-11-30 21:04 UTC" for a unix time: staff pages, where the hour matters.
pub fn display_utc_minute(ts: i64) -> String {
    const MINUTE: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(MINUTE).ok())
        .unwrap_or_default()
}

/// `Mar 14, 2026` (`14 mar 2026` in Spanish pages) for an ISO date `2026-03-14`; the input
/// itself if it is not one.
pub fn display_iso_date(iso: &str) -> String {
    const ISO: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");
    time::Date::parse(iso, ISO)
        .ok()
        .map(|d| crate::locale::date(d, crate::locale::current()))
        .unwrap_or_else(|| iso.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::display_iso_date("2026-03-04"), "Mar 4, 2026");
        assert_eq!(super::display_date_unix(0), "Jan 1, 1970");
    }
}
