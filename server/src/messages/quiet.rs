//! Quiet hours for patient SMS: which US time zone a recipient is in (ZIP, then
//! area code, else every state's zone) and the earliest instant a text may go out.
//!
//! A2P 10DLC / TCPA practice allows texts only 08:00–21:00 recipient-local. All
//! wall-clock work goes through jiff's bundled tzdb, so DST rules are never
//! hand-written here. Every search is bounded and fails closed: an instant
//! that cannot be proven inside the window is never reported as allowed.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::zones_data::{AREA_CODES, ZIP3_RANGES, ZIP5_OVERRIDES};

/// A US (incl. territories) IANA zone a recipient may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsZone {
    Eastern,
    Central,
    Mountain,
    Arizona,
    Pacific,
    Alaska,
    Hawaii,
    PuertoRico,
    Guam,
    Samoa,
}

impl UsZone {
    pub const ALL: [UsZone; 10] = [
        UsZone::Eastern,
        UsZone::Central,
        UsZone::Mountain,
        UsZone::Arizona,
        UsZone::Pacific,
        UsZone::Alaska,
        UsZone::Hawaii,
        UsZone::PuertoRico,
        UsZone::Guam,
        UsZone::Samoa,
    ];

    /// The zones of the 50 states and DC: what an unknown recipient (`None`)
    /// is checked against.
    ///
    /// Territories are left out. `None` only happens when neither a ZIP nor a
    /// US geographic area code is known, and territory residents carry their
    /// own ZIPs (006–009, 969, 96799) and area codes (787/939, 340, 671, 670,
    /// 684), so they resolve to their zone. Including Guam (UTC+10) would cut
    /// the common window to 18:00–21:00 Eastern for everyone else; Samoa and
    /// Puerto Rico would each remove an hour. The price: an unidentified
    /// recipient actually in Puerto Rico/USVI may be texted until 22:00 AST
    /// while the mainland is on standard time (Nov–Mar).
    pub const STATES: [UsZone; 7] = [
        UsZone::Eastern,
        UsZone::Central,
        UsZone::Mountain,
        UsZone::Arizona,
        UsZone::Pacific,
        UsZone::Alaska,
        UsZone::Hawaii,
    ];

    pub fn iana(self) -> &'static str {
        match self {
            UsZone::Eastern => "America/New_York",
            UsZone::Central => "America/Chicago",
            UsZone::Mountain => "America/Denver",
            UsZone::Arizona => "America/Phoenix",
            UsZone::Pacific => "America/Los_Angeles",
            UsZone::Alaska => "America/Anchorage",
            UsZone::Hawaii => "Pacific/Honolulu",
            UsZone::PuertoRico => "America/Puerto_Rico",
            UsZone::Guam => "Pacific/Guam",
            UsZone::Samoa => "Pacific/Pago_Pago",
        }
    }

    fn time_zone(self) -> Option<TimeZone> {
        TimeZone::get(self.iana()).ok()
    }
}

/// Where the zone came from, for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneSource {
    Zip,
    AreaCode,
    MostRestrictive,
}

/// The sending window in local wall-clock hours: [start, end), e.g. 8..21.
///
/// A window is usable only when `start_hour < end_hour <= 24`; any other
/// value is treated as empty (nothing is ever allowed) rather than guessed at.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start_hour: u8,
    pub end_hour: u8,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            start_hour: 8,
            end_hour: 21,
        }
    }
}

impl Window {
    fn bounds(self) -> Option<(i8, i8)> {
        let start = i8::try_from(self.start_hour).ok()?;
        let end = i8::try_from(self.end_hour).ok()?;
        (start < end && end <= 24).then_some((start, end))
    }
}

/// Returned by [`next_allowed`] when no allowed instant exists within the
/// search horizon (empty window, or an input outside jiff's time range).
/// Scheduling at this value means "do not send".
pub const NEVER: i64 = i64::MAX;

/// Local days searched for a window start in one zone. A start occurs every
/// local day; the slack covers a day a transition might swallow.
const DAYS_SCANNED: i32 = 7;
/// Offset transitions examined per search; US zones have two a year.
const TRANSITIONS_SCANNED: usize = 16;
/// Rounds of the per-zone fixed point in [`next_common`]; the states' zones
/// settle in two rounds, so hitting this means the intersection is empty.
const MAX_ROUNDS: usize = 32;
/// No answer later than this after `now`: the states' intersection recurs
/// daily, so a longer wait signals an empty intersection.
const HORIZON_SECS: i64 = 8 * 86_400;

/// Zone for a 5-digit ZIP or ZIP+4 (`12345-6789` or `123456789`), by its
/// 3-digit prefix plus a few whole-ZIP exceptions. `None` for malformed,
/// unassigned, military (APO/FPO/DPO) and foreign USPS ZIPs.
pub fn zone_for_zip(zip: &str) -> Option<UsZone> {
    let zip5 = parse_zip5(zip)?;
    if let Some(&(_, _, zone)) = ZIP5_OVERRIDES
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&zip5))
    {
        return zone;
    }
    let prefix = u16::try_from(zip5 / 100).ok()?;
    ZIP3_RANGES
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&prefix))
        .map(|&(_, _, zone)| zone)
}

fn parse_zip5(zip: &str) -> Option<u32> {
    let b = zip.trim().as_bytes();
    let well_formed = match b.len() {
        5 | 9 => b.iter().all(u8::is_ascii_digit),
        10 => {
            b[5] == b'-'
                && b[..5].iter().all(u8::is_ascii_digit)
                && b[6..].iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    well_formed.then(|| digits_value(&b[..5]))
}

/// Value of ASCII digits already checked by the caller.
fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
}

/// Zone for an E.164 NANP number (`+1` and ten digits) by its area code.
/// `None` for anything else, including Canadian, non-US Caribbean,
/// toll-free and non-geographic numbers.
pub fn zone_for_phone(e164: &str) -> Option<UsZone> {
    let b = e164.trim().strip_prefix("+1")?.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // NANP area codes and exchanges both start with 2–9.
    if b[0] < b'2' || b[3] < b'2' {
        return None;
    }
    let npa = u16::try_from(digits_value(&b[..3])).ok()?;
    AREA_CODES
        .iter()
        .find(|(_, codes)| codes.contains(&npa))
        .map(|&(zone, _)| zone)
}

/// ZIP first, else the phone's area code, else `None` meaning "unknown: use
/// every state's zone" ([`UsZone::STATES`]). A ZIP that maps to no zone
/// (military, malformed) falls through to the phone rather than failing.
pub fn recipient_zone(zip: Option<&str>, phone: &str) -> (Option<UsZone>, ZoneSource) {
    if let Some(zone) = zip.and_then(zone_for_zip) {
        return (Some(zone), ZoneSource::Zip);
    }
    if let Some(zone) = zone_for_phone(phone) {
        return (Some(zone), ZoneSource::AreaCode);
    }
    (None, ZoneSource::MostRestrictive)
}

/// Earliest unix second >= `now` at which a send is allowed: `now` itself
/// when inside the window, otherwise the next window start. With `None` the
/// instant must be inside the window in every zone of [`UsZone::STATES`]
/// (the intersection, i.e. the most restrictive; see there why territories
/// are excluded). Returns [`NEVER`] if no such instant exists within eight
/// days (empty window or input outside jiff's range).
pub fn next_allowed(zone: Option<UsZone>, now: i64, window: Window) -> i64 {
    try_next_allowed(zone, now, window).unwrap_or(NEVER)
}

/// [`next_allowed`] with "no allowed instant" as `None` instead of [`NEVER`].
pub fn try_next_allowed(zone: Option<UsZone>, now: i64, window: Window) -> Option<i64> {
    match zone {
        Some(zone) => next_common(&[zone], now, window),
        None => next_common(&UsZone::STATES, now, window),
    }
}

/// Whether `at` is inside the window in `zone`, or in every state's zone for
/// `None`. False for an unusable window or an out-of-range instant.
pub fn is_allowed(zone: Option<UsZone>, at: i64, window: Window) -> bool {
    match zone {
        Some(zone) => allowed_in_all(&[zone], at, window),
        None => allowed_in_all(&UsZone::STATES, at, window),
    }
}

fn allowed_in_all(zones: &[UsZone], at: i64, window: Window) -> bool {
    let (Some(bounds), Ok(ts), Some(tzs)) =
        (window.bounds(), Timestamp::from_second(at), load(zones))
    else {
        return false;
    };
    tzs.iter().all(|tz| in_window(tz, ts, bounds))
}

fn load(zones: &[UsZone]) -> Option<Vec<TimeZone>> {
    zones.iter().map(|z| z.time_zone()).collect()
}

fn in_window(tz: &TimeZone, ts: Timestamp, (start, end): (i8, i8)) -> bool {
    let hour = tz.to_datetime(ts).hour();
    start <= hour && hour < end
}

/// Earliest instant >= `now` inside the window in every zone of `zones`.
///
/// Fixed point: each zone pushes `t` to its own next allowed instant until
/// none objects. No zone can push `t` past the earliest common instant (it
/// is allowed in that zone too), so the first stable `t` is the answer. An
/// empty intersection makes `t` run away; the round and horizon caps stop it.
fn next_common(zones: &[UsZone], now: i64, window: Window) -> Option<i64> {
    let bounds = window.bounds()?;
    let tzs = load(zones)?;
    let limit = now.checked_add(HORIZON_SECS)?;
    let mut t = Timestamp::from_second(now).ok()?;
    for _ in 0..MAX_ROUNDS {
        let mut moved = false;
        for tz in &tzs {
            if !in_window(tz, t, bounds) {
                t = next_in_zone(tz, t, bounds)?;
                moved = true;
            }
        }
        if t.as_second() > limit {
            return None;
        }
        if !moved {
            return Some(t.as_second());
        }
    }
    None
}

/// Earliest instant after `from` (which is outside the window) that is
/// inside it in `tz`.
///
/// Local time enters the window either by reaching `start:00` or by an
/// offset change landing inside it, so both kinds of candidate are tried and
/// each is re-checked against the clock. In a spring-forward gap the "later"
/// reading of `start:00` is the first instant after the jump; in a fall-back
/// fold the "earlier" reading is the first occurrence.
fn next_in_zone(tz: &TimeZone, from: Timestamp, bounds: (i8, i8)) -> Option<Timestamp> {
    let qualifies = |c: Timestamp| c > from && in_window(tz, c, bounds);
    let mut best: Option<Timestamp> = None;
    let mut day = tz.to_datetime(from).date();
    for _ in 0..DAYS_SCANNED {
        let local_start = tz.to_ambiguous_timestamp(day.at(bounds.0, 0, 0, 0));
        for c in [local_start.earlier(), local_start.later()]
            .into_iter()
            .flatten()
        {
            if qualifies(c) && best.is_none_or(|b| c < b) {
                best = Some(c);
            }
        }
        if best.is_some() {
            // Later days only give later starts.
            break;
        }
        day = day.tomorrow().ok()?;
    }
    let until = match best {
        Some(b) => b.as_second(),
        None => from
            .as_second()
            .saturating_add(i64::from(DAYS_SCANNED) * 86_400),
    };
    for transition in tz.following(from).take(TRANSITIONS_SCANNED) {
        let c = transition.timestamp();
        if c.as_second() > until {
            break;
        }
        if qualifies(c) && best.is_none_or(|b| c < b) {
            best = Some(c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::UsZone::*;
    use super::*;

    // Unix seconds below were computed independently (Python zoneinfo), not
    // with jiff, so the tests check jiff's tzdb use rather than echo it.
    const NY_JAN15_0600: i64 = 1_768_474_800;
    const NY_JAN15_0800: i64 = 1_768_482_000;
    const NY_JAN15_1200: i64 = 1_768_496_400;
    const NY_JAN15_2100: i64 = 1_768_528_800;
    const NY_JAN15_2130: i64 = 1_768_530_600;
    const NY_JAN16_0800: i64 = 1_768_568_400;
    const H: i64 = 3_600;
    const W: Window = win(8, 21);

    const fn win(start_hour: u8, end_hour: u8) -> Window {
        Window {
            start_hour,
            end_hour,
        }
    }

    fn allowed(zone: UsZone, at: i64) -> bool {
        is_allowed(Some(zone), at, W)
    }

    #[test]
    fn every_zone_loads_from_the_bundled_tzdb() {
        for zone in UsZone::ALL {
            assert!(zone.time_zone().is_some(), "{zone:?}");
        }
        assert_eq!(Window::default().start_hour, 8);
        assert_eq!(Window::default().end_hour, 21);
    }

    #[test]
    fn window_edges_in_eastern_winter() {
        assert!(!allowed(Eastern, NY_JAN15_0800 - 1));
        assert!(allowed(Eastern, NY_JAN15_0800));
        assert!(allowed(Eastern, NY_JAN15_1200));
        assert!(allowed(Eastern, NY_JAN15_2100 - 1));
        assert!(!allowed(Eastern, NY_JAN15_2100));
    }

    #[test]
    fn same_instant_differs_by_zone() {
        // 2026-01-15 12:00 EST = 17:00 UTC: 11:00 Chicago, 10:00 Denver and
        // Phoenix, 09:00 LA, 08:00 Anchorage, 07:00 Honolulu, 13:00 San Juan,
        // 03:00 next day Guam, 06:00 Pago Pago.
        for zone in [
            Eastern, Central, Mountain, Arizona, Pacific, Alaska, PuertoRico,
        ] {
            assert!(allowed(zone, NY_JAN15_1200), "{zone:?}");
        }
        for zone in [Hawaii, Guam, Samoa] {
            assert!(!allowed(zone, NY_JAN15_1200), "{zone:?}");
        }
        // 08:00 local starts, checked one second either side.
        for (zone, start) in [
            (Central, 1_768_485_600),
            (Mountain, 1_768_489_200),
            (Alaska, 1_768_496_400),
            (PuertoRico, 1_782_907_200),
            (Guam, 1_782_856_800),
            (Samoa, 1_782_932_400),
        ] {
            assert!(!allowed(zone, start - 1), "{zone:?}");
            assert!(allowed(zone, start), "{zone:?}");
            assert_eq!(next_allowed(Some(zone), start - 5 * H, W), start);
        }
        assert!(!allowed(Samoa, 1_782_979_200), "21:00 Pago Pago");
    }

    #[test]
    fn inside_the_window_sends_now() {
        assert_eq!(next_allowed(Some(Eastern), NY_JAN15_1200, W), NY_JAN15_1200);
        assert_eq!(next_allowed(Some(Eastern), NY_JAN15_0800, W), NY_JAN15_0800);
    }

    #[test]
    fn deferral_goes_to_the_next_0800() {
        assert_eq!(next_allowed(Some(Eastern), NY_JAN15_0600, W), NY_JAN15_0800);
        assert_eq!(next_allowed(Some(Eastern), NY_JAN15_2100, W), NY_JAN16_0800);
        assert_eq!(next_allowed(Some(Eastern), NY_JAN15_2130, W), NY_JAN16_0800);
    }

    #[test]
    fn spring_forward_night_2026() {
        // Sat 2026-03-07 22:30 standard time → Sun 03-08 08:00 daylight time.
        let ny_0800_edt = 1_772_971_200;
        assert_eq!(next_allowed(Some(Eastern), 1_772_940_600, W), ny_0800_edt);
        let la_0800_pdt = 1_772_982_000;
        assert_eq!(next_allowed(Some(Pacific), 1_772_951_400, W), la_0800_pdt);
        assert!(!allowed(Pacific, la_0800_pdt - 1));
        // 03:30 EDT, just after the gap, still defers to 08:00 EDT.
        assert_eq!(next_allowed(Some(Eastern), 1_772_955_000, W), ny_0800_edt);
        // The evening edge moves with DST too: 21:00 EDT that day.
        let ny_2100_edt = 1_773_018_000;
        assert!(allowed(Eastern, ny_2100_edt - 1));
        assert!(!allowed(Eastern, ny_2100_edt));
    }

    #[test]
    fn fall_back_night_2026() {
        // Sat 2026-10-31 22:30 daylight time → Sun 11-01 08:00 standard time.
        let ny_0800_est = 1_793_538_000;
        assert_eq!(next_allowed(Some(Eastern), 1_793_500_200, W), ny_0800_est);
        assert!(!allowed(Eastern, ny_0800_est - 1));
        let la_0800_pst = 1_793_548_800;
        assert_eq!(next_allowed(Some(Pacific), 1_793_511_000, W), la_0800_pst);
        assert!(!allowed(Pacific, la_0800_pst - 1));
        // Both passes through 01:30 in New York defer to the same 08:00.
        for in_fold in [1_793_511_000, 1_793_514_600] {
            assert_eq!(next_allowed(Some(Eastern), in_fold, W), ny_0800_est);
        }
        let la_2100_pst = 1_793_595_600;
        assert!(allowed(Pacific, la_2100_pst - 1));
        assert!(!allowed(Pacific, la_2100_pst));
    }

    #[test]
    fn window_starts_inside_a_gap_or_fold() {
        // 02:00 never happens on 2026-03-08 in New York: the first instant at
        // or after it is 03:00 EDT (07:00 UTC), from 01:30 EST.
        assert_eq!(
            next_allowed(Some(Eastern), 1_772_951_400, win(2, 5)),
            1_772_953_200
        );
        // 01:00 happens twice on 2026-11-01; the first (EDT) one counts.
        assert_eq!(
            next_allowed(Some(Eastern), 1_793_507_400, win(1, 2)),
            1_793_509_200
        );
        // From 01:30 EDT, 02:00 is reached only after the repeated hour.
        assert_eq!(
            next_allowed(Some(Eastern), 1_793_511_000, win(2, 3)),
            1_793_516_400
        );
    }

    #[test]
    fn arizona_stays_on_mst_all_year() {
        // 08:00 MST is 15:00 UTC in January and July alike.
        for utc_1500 in [1_768_489_200, 1_782_918_000] {
            assert!(!allowed(Arizona, utc_1500 - 1));
            assert!(allowed(Arizona, utc_1500));
            assert_eq!(next_allowed(Some(Arizona), utc_1500 - 8 * H, W), utc_1500);
        }
        // In July Denver is already at 08:00 an hour earlier.
        assert!(allowed(Mountain, 1_782_918_000 - H));
        assert!(!allowed(Arizona, 1_782_918_000 - H));
    }

    #[test]
    fn hawaii_has_no_dst() {
        let jul1_1800_utc = 1_782_928_800; // 08:00 HST
        assert!(!allowed(Hawaii, jul1_1800_utc - 1));
        assert!(allowed(Hawaii, jul1_1800_utc));
        // 21:00 HST the evening before defers to 08:00 HST.
        assert_eq!(next_allowed(Some(Hawaii), 1_782_889_200, W), jul1_1800_utc);
        assert!(!allowed(Hawaii, NY_JAN15_0800 + 5 * H - 1));
    }

    #[test]
    fn most_restrictive_defers_until_honolulu_wakes() {
        // 2026-07-15 13:00 UTC: 09:00 in New York, 03:00 in Honolulu.
        let now = 1_784_120_400;
        assert!(allowed(Eastern, now));
        assert!(!allowed(Hawaii, now));
        assert!(!is_allowed(None, now, W));
        let at = next_allowed(None, now, W);
        assert_eq!(at, 1_784_138_400, "18:00 UTC = 08:00 HST");
        assert!(is_allowed(None, at, W));
        assert!(!is_allowed(None, at - 1, W));
        for zone in UsZone::STATES {
            assert!(allowed(zone, at), "{zone:?}");
        }
        // 21:00 EDT closes the common window; the next one is tomorrow.
        let ny_2100 = 1_784_163_600;
        assert!(is_allowed(None, ny_2100 - 1, W));
        assert_eq!(next_allowed(None, ny_2100, W), 1_784_224_800);
    }

    /// The states' intersection is never empty: from every hour of 2026–2027
    /// an answer comes within a day and is inside each state zone's window.
    /// In UTC it is at least 18:00–01:00 (08:00 HST to 21:00 EDT).
    #[test]
    fn states_intersection_is_never_empty() {
        let (from, to) = (1_767_225_600, 1_830_297_600); // 2026-01-01, 2028-01-01 UTC
        for now in (from..to).step_by(3_600) {
            let at = try_next_allowed(None, now, W);
            let at = at.unwrap_or_else(|| panic!("no window after {now}"));
            assert!(at >= now && at - now < 86_400, "{now} -> {at}");
            for zone in UsZone::STATES {
                assert!(allowed(zone, at), "{zone:?} at {at}");
            }
        }
    }

    #[test]
    fn an_empty_intersection_terminates() {
        // 08:00–09:00 in New York and in Honolulu never overlap.
        let hour = win(8, 9);
        assert_eq!(next_common(&[Eastern, Hawaii], NY_JAN15_0600, hour), None);
        // Mornings in New York (13–17 UTC) and Guam (22–02 UTC) never meet.
        let morning = win(8, 12);
        assert_eq!(next_common(&[Eastern, Guam], NY_JAN15_0600, morning), None);
        // Guam (UTC+10) and Samoa (UTC−11) do overlap: 22:00–08:00 UTC.
        assert_eq!(
            next_common(&[Guam, Samoa], NY_JAN15_0600, W),
            Some(NY_JAN15_0800 + 9 * H)
        );
        assert_eq!(
            next_common(&[Eastern, Hawaii], NY_JAN15_0600, W),
            Some(NY_JAN15_0800 + 5 * H)
        );
    }

    #[test]
    fn unusable_windows_and_instants_fail_closed() {
        for bad in [(21, 8), (8, 8), (8, 25), (200, 255)] {
            let w = win(bad.0, bad.1);
            assert!(!is_allowed(Some(Eastern), NY_JAN15_1200, w), "{bad:?}");
            assert_eq!(next_allowed(Some(Eastern), NY_JAN15_1200, w), NEVER);
            assert_eq!(next_allowed(None, NY_JAN15_1200, w), NEVER);
        }
        let all_day = win(0, 24);
        assert!(is_allowed(None, NY_JAN15_0600, all_day));
        assert_eq!(next_allowed(None, NY_JAN15_0600, all_day), NY_JAN15_0600);
        assert!(!is_allowed(Some(Eastern), i64::MAX, W));
        assert_eq!(next_allowed(Some(Eastern), i64::MAX, W), NEVER);
        assert_eq!(next_allowed(None, i64::MIN, W), NEVER);
    }

    /// Oracle: every zone here has whole-hour UTC offsets, so outside the
    /// window the next allowed instant is the first whole UTC hour allowed.
    #[test]
    fn matches_brute_force_across_2026() {
        // Besides the default, windows whose edges sit on DST transitions.
        let windows = [W, win(9, 20), win(2, 6), win(1, 2), win(0, 3), win(3, 24)];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..4_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let offset = i64::try_from((seed >> 33) % 31_536_000).unwrap();
            let now = 1_767_225_600 + offset;
            let zone = if i % 11 == 10 {
                None
            } else {
                Some(UsZone::ALL[i % 10])
            };
            let w = windows[i % windows.len()];
            let expected = if is_allowed(zone, now, w) {
                now
            } else {
                // Short windows have no common hour across the states:
                // then nothing within the horizon, i.e. NEVER.
                let first = now - now.rem_euclid(H) + H;
                (first..=now + HORIZON_SECS)
                    .step_by(3_600)
                    .find(|&h| is_allowed(zone, h, w))
                    .unwrap_or(NEVER)
            };
            assert_eq!(next_allowed(zone, now, w), expected, "{zone:?} {now}");
        }
    }

    #[test]
    fn zip_then_area_code_then_fallback() {
        let chicago_cell = "+13125551234";
        assert_eq!(
            recipient_zone(Some("10001"), chicago_cell),
            (Some(Eastern), ZoneSource::Zip)
        );
        assert_eq!(
            recipient_zone(None, chicago_cell),
            (Some(Central), ZoneSource::AreaCode)
        );
        // Military and malformed ZIPs fall through to the phone.
        for zip in ["09012", "96201", "34001", "1234", ""] {
            assert_eq!(
                recipient_zone(Some(zip), chicago_cell),
                (Some(Central), ZoneSource::AreaCode),
                "{zip}"
            );
        }
        for phone in ["+18005551234", "+14165551234", "", "not a phone"] {
            assert_eq!(
                recipient_zone(Some("09012"), phone),
                (None, ZoneSource::MostRestrictive),
                "{phone}"
            );
        }
    }

    #[test]
    fn zip_formats_and_bad_input() {
        for ok in ["94103", "94103-1234", "941031234", " 94103 "] {
            assert_eq!(zone_for_zip(ok), Some(Pacific), "{ok}");
        }
        for bad in [
            "",
            "9410",
            "941033",
            "94103-12",
            "94103-",
            "94103 1234",
            "9410a",
            "ABCDE",
            "94103-123a",
            "-9410",
            "٩٤١٠٣",
        ] {
            assert_eq!(zone_for_zip(bad), None, "{bad:?}");
        }
        // Unassigned prefixes and foreign USPS ZIPs give no zone.
        for none in ["00000", "00100", "21301", "69901", "96940", "96960"] {
            assert_eq!(zone_for_zip(none), None, "{none}");
        }
    }

    #[test]
    fn phone_formats_and_bad_input() {
        assert_eq!(zone_for_phone("+12125551234"), Some(Eastern));
        for bad in [
            "2125551234",
            "12125551234",
            "+1212555123",
            "+121255512345",
            "+1 212 555 1234",
            "+1212555123x",
            "+442071234567",
            "+11125551234",
            "+12120551234",
            "",
        ] {
            assert_eq!(zone_for_phone(bad), None, "{bad:?}");
        }
        // Toll-free, premium, Canada, Caribbean: not a location in a US zone.
        for npa in [
            800, 833, 844, 855, 866, 877, 888, 900, 416, 604, 514, 876, 809, 242, 441,
        ] {
            assert_eq!(zone_for_phone(&format!("+1{npa}5551234")), None, "{npa}");
        }
    }
}
