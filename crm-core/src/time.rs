//! Calendar arithmetic in a programme or member time zone.
//!
//! All instants are stored in UTC; every *calendar* rule (end of day, end of
//! month, member day, birthday month) is evaluated in an IANA zone. Local
//! midnights that fall into a DST gap resolve to the first valid instant after
//! the gap; ambiguous local times (DST fall-back) resolve to the earlier one.
//!
//! Most zones a programme uses have had one offset for decades (UTC,
//! Asia/Shanghai since 1991, Asia/Tokyo, Asia/Kolkata): from their last
//! transition on, a wall clock is the instant plus a constant. `run_due` and
//! the what-if replay convert instants millions of times, so such instants
//! take that shortcut (`Settled`) instead of the zone's transition table;
//! the answers are the same (see the tests, which compare the two over every
//! zone chrono-tz knows).

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Where zone offsets are looked for: instants from here on never take the
/// shortcut (chrono-tz's table may list far-future transitions).
const HORIZON: i64 = 7_258_118_400; // 2200-01-01T00:00:00Z
/// How far back the search for a zone's last transition goes.
const EARLIEST: i64 = -5_364_662_400; // 1800-01-01T00:00:00Z
/// Sampling step of that search. Two transitions closer than this that
/// cancel out would go unseen; tzdb has none (the tests check the result
/// against the table).
const STEP: i64 = 6 * 3_600;
/// Local times this close after the last transition still go through the
/// table: the span before it may also map them (a fall-back), and offsets
/// differ by less than a day.
const LOCAL_MARGIN: i64 = 2 * 86_400;

/// A zone's final span: from `since` (UTC seconds) to [`HORIZON`], its
/// offset is `offset` seconds east of UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settled {
    since: i64,
    offset: i64,
}

impl Settled {
    /// Search the zone's offsets backwards from the horizon for the last
    /// change (a few milliseconds, once per zone and process).
    fn find(tz: Tz) -> Settled {
        let offset_at = |secs: i64| {
            let t = DateTime::from_timestamp(secs, 0).expect("in chrono's range");
            i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc())
        };
        let offset = offset_at(HORIZON - 1);
        let mut t = HORIZON - 1;
        while t - STEP >= EARLIEST {
            if offset_at(t - STEP) != offset {
                return Settled { since: t, offset };
            }
            t -= STEP;
        }
        Settled { since: t, offset }
    }

    /// The zone's settled span (cached per zone).
    fn of(tz: Tz) -> Option<Settled> {
        static CACHE: [OnceLock<Settled>; 1024] = [const { OnceLock::new() }; 1024];
        CACHE.get(tz as usize).map(|cell| *cell.get_or_init(|| Settled::find(tz)))
    }

    fn wall_clock(&self, t: DateTime<Utc>) -> Option<NaiveDateTime> {
        let secs = t.timestamp();
        (secs >= self.since && secs < HORIZON).then(|| t.naive_utc() + Duration::seconds(self.offset))
    }

    fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let secs = local.and_utc().timestamp() - self.offset;
        // The offset taken off the wall clock moves the date by a day at
        // most (cheap in chrono), where `from_timestamp(secs)` rebuilt it
        // from a day count.
        (secs >= self.since + LOCAL_MARGIN && secs < HORIZON)
            .then(|| local.checked_sub_signed(Duration::seconds(self.offset)).map(|utc| utc.and_utc()))?
    }
}

/// The wall-clock time of `t` in `tz`.
pub fn wall_clock(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    if is_utc(tz) {
        return t.naive_utc();
    }
    match Settled::of(tz).and_then(|s| s.wall_clock(t)) {
        Some(local) => local,
        None => wall_clock_by_rules(tz, t),
    }
}

fn wall_clock_by_rules(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// Whether `tz` is UTC under one of its names. Its calendar needs no zone
/// rules (every local time exists once, at offset zero), and the what-if
/// replay and `run_due` of UTC programmes convert instants millions of
/// times; the general path gives the same answers (see the tests), only
/// through the zone's transition table.
fn is_utc(tz: Tz) -> bool {
    matches!(tz, Tz::UTC | Tz::Etc__UTC | Tz::Etc__Universal | Tz::Etc__Zulu | Tz::Universal | Tz::Zulu)
}

/// Calendar date of `t` in zone `tz`.
pub fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    wall_clock(tz, t).date()
}

/// Resolve a local wall-clock time to an instant (gap: first instant after it;
/// overlap: the earlier instant).
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if is_utc(tz) {
        return Utc.from_utc_datetime(&local);
    }
    match Settled::of(tz).and_then(|s| s.resolve(local)) {
        Some(t) => t,
        None => resolve_by_rules(tz, local),
    }
}

fn resolve_by_rules(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // DST gaps are at most a few hours; walk forward minute by minute.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(early, _) => return early.with_timezone(&Utc),
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    // Unreachable for real zones; fall back to reading the wall time as UTC.
    Utc.from_utc_datetime(&local)
}

/// The first instant after `after` whose wall clock in `tz` reads `local`:
/// of the two instants of an ambiguous time (DST fall-back) the later one
/// when the earlier is not after `after`; a time inside a DST gap resolves
/// as in [`resolve_local`].
pub fn resolve_local_after(tz: Tz, local: NaiveDateTime, after: DateTime<Utc>) -> DateTime<Utc> {
    let first = resolve_local(tz, local);
    if first > after || is_utc(tz) {
        return first;
    }
    match tz.from_local_datetime(&local) {
        LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        _ => first,
    }
}

/// The first instant in `(from, to]` at which `tz` turns its clocks back
/// (its offset falls), if any: from there the wall clock reads again times
/// it read before. Zones with one offset all the way answer without their
/// table; the others compare the offsets at both ends and search between
/// them only when the later one is smaller (at most one change a day).
pub fn clock_turned_back(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if is_utc(tz) || to <= from {
        return None;
    }
    if let Some(s) = Settled::of(tz) {
        if from.timestamp() >= s.since && to.timestamp() < HORIZON {
            return None;
        }
    }
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
    let before = offset(from);
    if offset(to) >= before {
        return None;
    }
    // The offset is `before` at `lo` and smaller at `hi`: halve to the second.
    let (mut lo, mut hi) = (from.timestamp(), to.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let t = DateTime::from_timestamp(mid, 0)?;
        if offset(t) >= before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// First instant of calendar day `d` in zone `tz`.
pub fn start_of_day(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    resolve_local(tz, d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The same wall-clock time `days` calendar days later (DST-aware).
pub fn add_local_days(tz: Tz, t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    shift_settled(tz, t, i64::from(days))
        .unwrap_or_else(|| resolve_local(tz, wall_clock(tz, t) + Duration::days(i64::from(days))))
}

/// The same wall-clock time `days` calendar days earlier (DST-aware).
pub fn sub_local_days(tz: Tz, t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    shift_settled(tz, t, -i64::from(days))
        .unwrap_or_else(|| resolve_local(tz, wall_clock(tz, t) - Duration::days(i64::from(days))))
}

/// `t` moved by `days` calendar days when the zone keeps one offset all
/// the way (UTC, or a [`Settled`] zone with both ends inside its final
/// span, where [`wall_clock`] and [`resolve_local`] take the shortcut):
/// the same wall-clock time is then exactly `days` × 24 hours away, so the
/// UTC date moves by `days` and the UTC time of day stays, without the
/// zone's table or a local date in between. `None` where the zone's rules
/// must decide. Lifecycle thresholds, lot
/// expiries and outreach lead times add days millions of times a replay.
fn shift_settled(tz: Tz, t: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
    if !is_utc(tz) {
        let s = Settled::of(tz)?;
        let from = t.timestamp();
        let to = from.checked_add(days.checked_mul(86_400)?)?;
        if from.min(to) < s.since + LOCAL_MARGIN || from.max(to) >= HORIZON {
            return None;
        }
    }
    // Within a year chrono moves the day of the year (no calendar
    // arithmetic), where a round trip through Unix seconds rebuilt the year
    // from a day count every time (`from_timestamp`: with the rest of the
    // date arithmetic, about a tenth of a what-if replay's profile).
    let naive = t.naive_utc();
    let by = chrono::Days::new(days.unsigned_abs());
    let date = if days >= 0 { naive.date().checked_add_days(by) } else { naive.date().checked_sub_days(by) }?;
    Some(date.and_time(naive.time()).and_utc())
}

/// The same wall-clock time `months` months later (the 31st becomes the
/// month's last day).
pub fn add_local_months(tz: Tz, t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    let local = wall_clock(tz, t);
    resolve_local(tz, local.checked_add_months(chrono::Months::new(months)).unwrap_or(local))
}

/// The same wall-clock time `months` months earlier.
pub fn sub_local_months(tz: Tz, t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    let local = wall_clock(tz, t);
    resolve_local(tz, local.checked_sub_months(chrono::Months::new(months)).unwrap_or(local))
}

/// `d`'s month and day in year `y`: birthdays and anniversaries. A
/// 29 February falls on 28 February in other years.
pub fn same_day_in_year(d: NaiveDate, y: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, d.month(), d.day())
        .or_else(|| NaiveDate::from_ymd_opt(y, d.month(), d.day() - 1))
        .unwrap_or(d)
}

/// First day of the month that is `months` months after the month of `d`.
pub fn first_of_month_after(d: NaiveDate, months: u32) -> NaiveDate {
    let total = d.year() as i64 * 12 + (d.month0() as i64) + i64::from(months);
    let year = total.div_euclid(12) as i32;
    let month = total.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, 1).expect("valid first of month")
}

/// `prefix`, a colon and `t` as [`DateTime::to_rfc3339`] writes it (the
/// same bytes, `+00:00` included): the occurrence keys of the outreach
/// triggers that happen at an instant (points expiring, tier retention,
/// stage and segment entered), and `run_due`'s idempotency key;
/// [`rfc3339`] writes the instant alone (cart abandonment).
///
/// Why not `format!("{prefix}:{}", t.to_rfc3339())`: scheduling builds a key
/// for every occurrence in view of a member that was sent something by
/// the trigger before (to tell the sent ones apart), and the formatting
/// machinery with the two strings it allocated cost about 1,400
/// instructions a key, 3 % of a what-if replay (callgrind); this writes the
/// digits into one string sized beforehand.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use crm_core::time::instant_key;
///
/// let t = Utc.with_ymd_and_hms(2025, 3, 1, 9, 30, 0).unwrap();
/// assert_eq!(instant_key("reward", t), "reward:2025-03-01T09:30:00+00:00");
/// assert_eq!(instant_key("", t), ":2025-03-01T09:30:00+00:00");
/// ```
pub fn instant_key(prefix: &str, t: DateTime<Utc>) -> String {
    let mut key = String::with_capacity(prefix.len() + 36);
    key.push_str(prefix);
    key.push(':');
    push_rfc3339(&mut key, t);
    key
}

/// `t` as [`DateTime::to_rfc3339`] writes it, the same bytes (see [`instant_key`]).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(35);
    push_rfc3339(&mut out, t);
    out
}

fn push_rfc3339(key: &mut String, t: DateTime<Utc>) {
    let naive = t.naive_utc();
    let date = naive.date();
    let year = date.year();
    if !(0..=9999).contains(&year) {
        // ISO 8601's explicit sign, as chrono writes it: rare enough for `format!`.
        key.push_str(&t.to_rfc3339());
        return;
    }
    let (mut sec, mut nano) = (naive.second(), naive.nanosecond());
    if nano >= 1_000_000_000 {
        // A leap second: chrono writes second 60.
        sec += 1;
        nano -= 1_000_000_000;
    }
    // Written into a buffer at fixed places, then appended at once.
    let mut buf = *b"0000-00-00T00:00:00.000000000+00:00";
    fn digits(buf: &mut [u8], mut n: u32) {
        for b in buf.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    digits(&mut buf[0..4], year as u32);
    digits(&mut buf[5..7], date.month());
    digits(&mut buf[8..10], date.day());
    digits(&mut buf[11..13], naive.hour());
    digits(&mut buf[14..16], naive.minute());
    digits(&mut buf[17..19], sec);
    // Subseconds as chrono's `SecondsFormat::AutoSi`: none, milli-, micro- or nanoseconds.
    let end = match nano {
        0 => 19,
        n if n % 1_000_000 == 0 => {
            digits(&mut buf[20..23], n / 1_000_000);
            23
        }
        n if n % 1_000 == 0 => {
            digits(&mut buf[20..26], n / 1_000);
            26
        }
        n => {
            digits(&mut buf[20..29], n);
            29
        }
    };
    key.push_str(std::str::from_utf8(&buf[..end]).expect("ASCII digits"));
    key.push_str("+00:00");
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy as _;

    use super::*;
    use crate::testing::utc;

    proptest::proptest! {
        /// Byte for byte what `format!` with chrono's `to_rfc3339` wrote,
        /// over every kind of instant: whole seconds, milli-, micro- and
        /// nanoseconds, leap seconds, years before 0 and after 9999.
        #[test]
        fn instant_keys_are_chrono_rfc3339(
            secs in -100_000_000_000i64..300_000_000_000,
            nanos in proptest::prop_oneof![
                proptest::strategy::Just(0u32),
                (0u32..1000).prop_map(|m| m * 1_000_000),
                (0u32..1_000_000).prop_map(|u| u * 1_000),
                0u32..1_000_000_000,
            ],
            leap in proptest::bool::weighted(0.1),
            prefix in "[a-z_]{0,8}",
        ) {
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let naive = t.naive_utc();
            // A leap second is only representable at second 59.
            let time = if leap {
                chrono::NaiveTime::from_hms_nano_opt(naive.hour(), naive.minute(), 59, 1_000_000_000 + nanos % 1_000_000_000)
            } else {
                chrono::NaiveTime::from_hms_nano_opt(naive.hour(), naive.minute(), naive.second(), nanos)
            };
            let t = naive.date().and_time(time.unwrap()).and_utc();
            proptest::prop_assert_eq!(instant_key(&prefix, t), format!("{prefix}:{}", t.to_rfc3339()));
            proptest::prop_assert_eq!(rfc3339(t), t.to_rfc3339());
        }
    }

    proptest::proptest! {
        /// UTC's shortcuts give what the general path gives for a zone that is
        /// UTC by its rules (Etc/GMT+0 goes through the transition table).
        #[test]
        fn utc_shortcuts_match_the_zone_rules(secs in -2_000_000_000i64..4_000_000_000, days in 0u32..4000, months in 0u32..120) {
            let general: Tz = "Etc/GMT+0".parse().unwrap();
            assert!(!is_utc(general));
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let local = t.naive_utc();
            for tz in [Tz::UTC, Tz::Etc__UTC] {
                proptest::prop_assert!(is_utc(tz));
                proptest::prop_assert_eq!(local_date(tz, t), local_date(general, t));
                proptest::prop_assert_eq!(resolve_local(tz, local), resolve_local(general, local));
                proptest::prop_assert_eq!(add_local_days(tz, t, days), add_local_days(general, t, days));
                proptest::prop_assert_eq!(sub_local_days(tz, t, days), sub_local_days(general, t, days));
                proptest::prop_assert_eq!(add_local_months(tz, t, months), add_local_months(general, t, months));
                proptest::prop_assert_eq!(sub_local_months(tz, t, months), sub_local_months(general, t, months));
                proptest::prop_assert_eq!(start_of_day(tz, local.date()), start_of_day(general, local.date()));
            }
        }
    }

    /// Zones with a settled offset (or none since long ago), DST zones on
    /// both hemispheres, half- and quarter-hour offsets, and zones whose
    /// last transitions are recent or unusual.
    const SAMPLE_ZONES: [&str; 16] = [
        "Asia/Shanghai",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Asia/Singapore",
        "Etc/GMT-8",
        "Europe/Berlin",
        "Europe/Moscow",
        "Europe/Istanbul",
        "America/New_York",
        "America/Santiago",
        "America/Sao_Paulo",
        "Africa/Casablanca",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "Asia/Pyongyang",
    ];

    /// The instants a test probes in `tz`: around its last transition,
    /// around the horizon, and spread over 1900-2300.
    fn probes(tz: Tz) -> Vec<i64> {
        let s = Settled::of(tz).expect("every zone has a cache slot");
        let mut out: Vec<i64> = (-96..=96).map(|h| s.since + h * 1_800).collect();
        out.extend((-48..=48).map(|h| HORIZON + h * 3_600));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (tz as u64);
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(-2_208_988_800 + (x % 12_623_000_000) as i64);
        }
        out
    }

    #[test]
    fn settled_offsets_match_the_zone_rules() {
        for name in SAMPLE_ZONES {
            let tz: Tz = name.parse().unwrap();
            for secs in probes(tz) {
                let t = DateTime::from_timestamp(secs, 0).unwrap();
                assert_eq!(wall_clock(tz, t), wall_clock_by_rules(tz, t), "{name} at {t}");
                let local = wall_clock_by_rules(tz, t);
                for l in [local, local + Duration::minutes(37), local - Duration::hours(1)] {
                    assert_eq!(resolve_local(tz, l), resolve_by_rules(tz, l), "{name} local {l}");
                }
                for days in [1, 2, 3, 30, 365, 400] {
                    let later = resolve_by_rules(tz, local + Duration::days(i64::from(days)));
                    let earlier = resolve_by_rules(tz, local - Duration::days(i64::from(days)));
                    assert_eq!(add_local_days(tz, t, days), later, "{name} {t} + {days} days");
                    assert_eq!(sub_local_days(tz, t, days), earlier, "{name} {t} - {days} days");
                }
            }
        }
    }

    /// Every zone chrono-tz knows (about a minute in a debug build: run it
    /// with `cargo test --release -p crm-core --lib -- --ignored every_zone`
    /// after upgrading chrono-tz).
    #[test]
    #[ignore]
    fn every_zone_settles_as_its_rules_say() {
        for tz in chrono_tz::TZ_VARIANTS {
            for secs in probes(tz) {
                let t = DateTime::from_timestamp(secs, 0).unwrap();
                assert_eq!(wall_clock(tz, t), wall_clock_by_rules(tz, t), "{tz} at {t}");
                let local = wall_clock_by_rules(tz, t);
                assert_eq!(resolve_local(tz, local), resolve_by_rules(tz, local), "{tz} local {local}");
                let later = resolve_by_rules(tz, local + Duration::days(3));
                assert_eq!(add_local_days(tz, t, 3), later, "{tz} {t} + 3 days");
            }
        }
    }

    #[test]
    fn shanghai_has_been_settled_since_1991() {
        let s = Settled::of("Asia/Shanghai".parse().unwrap()).unwrap();
        assert_eq!(s.offset, 8 * 3_600);
        // China's last DST ended on 15 September 1991 (UTC+9 -> UTC+8).
        let since = DateTime::from_timestamp(s.since, 0).unwrap();
        assert_eq!((since.year(), since.month()), (1991, 9), "{since}");
        // A zone that keeps DST takes the shortcut only past the end of
        // chrono-tz's table (its transitions are listed through 2099).
        let berlin = Settled::of("Europe/Berlin".parse().unwrap()).unwrap();
        assert!(berlin.since >= 4_070_908_800, "{:?}", DateTime::from_timestamp(berlin.since, 0));
        // 2099-01-01
    }

    #[test]
    fn midnight_in_shanghai_is_16_utc_the_day_before() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(start_of_day(tz, d), utc("2024-02-28T16:00:00Z"));
        assert_eq!(local_date(tz, utc("2024-02-28T15:59:59Z")), NaiveDate::from_ymd_opt(2024, 2, 28).unwrap());
        assert_eq!(local_date(tz, utc("2024-02-28T16:00:00Z")), d);
    }

    #[test]
    fn midnight_inside_a_dst_gap_resolves_after_the_gap() {
        // Santiago springs forward at 00:00 -> 01:00 on 2024-09-08.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        assert_eq!(start_of_day(tz, d), utc("2024-09-08T04:00:00Z"));
    }

    #[test]
    fn adding_days_keeps_wall_clock_across_dst() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 12:00 CET on 30 March 2024 -> 12:00 CEST on 31 March (only 23 h later).
        let t = utc("2024-03-30T11:00:00Z");
        assert_eq!(add_local_days(tz, t, 1), utc("2024-03-31T10:00:00Z"));
    }

    #[test]
    fn ambiguous_midnight_at_fall_back_resolves_to_the_earlier_instant() {
        // Havana falls back at 01:00 -> 00:00 on 2024-11-03: midnight happens twice.
        let tz: Tz = "America/Havana".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2024, 11, 3).unwrap();
        assert_eq!(start_of_day(tz, d), utc("2024-11-03T04:00:00Z")); // 00:00 CDT (-4), not 05:00Z
    }

    #[test]
    fn days_around_dst_changes_have_23_and_25_hours_in_the_programme_zone() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
        // Spring forward on 31 March: the local day lasts 23 hours.
        assert_eq!(start_of_day(tz, day(3, 31)), utc("2024-03-30T23:00:00Z"));
        assert_eq!(start_of_day(tz, day(4, 1)), utc("2024-03-31T22:00:00Z"));
        // Fall back on 27 October: 25 hours.
        assert_eq!(start_of_day(tz, day(10, 27)), utc("2024-10-26T22:00:00Z"));
        assert_eq!(start_of_day(tz, day(10, 28)), utc("2024-10-27T23:00:00Z"));
        // The local date flips exactly at local midnight, whatever the offset.
        assert_eq!(local_date(tz, utc("2024-03-31T21:59:59Z")), day(3, 31));
        assert_eq!(local_date(tz, utc("2024-03-31T22:00:00Z")), day(4, 1));
        assert_eq!(local_date(tz, utc("2024-10-27T22:59:59Z")), day(10, 27));
        assert_eq!(local_date(tz, utc("2024-10-27T23:00:00Z")), day(10, 28));
    }

    #[test]
    fn adding_days_keeps_wall_clock_across_fall_back_and_into_a_gap() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 12:00 CEST on 26 October -> 12:00 CET on 27 October (25 h later).
        assert_eq!(add_local_days(tz, utc("2024-10-26T10:00:00Z"), 1), utc("2024-10-27T11:00:00Z"));
        // 02:30 on 30 March + 1 day falls into the gap (02:00-03:00 on 31 March): 03:00 CEST.
        assert_eq!(add_local_days(tz, utc("2024-03-30T01:30:00Z"), 1), utc("2024-03-31T01:00:00Z"));
        // Zero days is the identity.
        assert_eq!(add_local_days(tz, utc("2024-03-30T01:30:00Z"), 0), utc("2024-03-30T01:30:00Z"));
    }

    #[test]
    fn local_date_at_month_and_year_ends() {
        let sh: Tz = "Asia/Shanghai".parse().unwrap();
        // 31 Dec 16:00Z is already New Year's Day in Shanghai.
        assert_eq!(local_date(sh, utc("2023-12-31T15:59:59Z")), NaiveDate::from_ymd_opt(2023, 12, 31).unwrap());
        assert_eq!(local_date(sh, utc("2023-12-31T16:00:00Z")), NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        // 29 February exists in 2024 only.
        assert_eq!(local_date(sh, utc("2024-02-29T15:59:59Z")), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(local_date(sh, utc("2025-02-28T16:00:00Z")), NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());
    }

    #[test]
    fn month_arithmetic_from_leap_day_and_month_ends() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(first_of_month_after(d(2024, 2, 29), 0), d(2024, 2, 1));
        assert_eq!(first_of_month_after(d(2024, 2, 29), 1), d(2024, 3, 1));
        assert_eq!(first_of_month_after(d(2024, 1, 31), 1), d(2024, 2, 1));
        assert_eq!(first_of_month_after(d(2024, 2, 29), 12), d(2025, 2, 1));
        assert_eq!(first_of_month_after(d(2024, 12, 31), 1), d(2025, 1, 1));
    }

    #[test]
    fn month_arithmetic_wraps_years() {
        let d = NaiveDate::from_ymd_opt(2023, 11, 30).unwrap();
        assert_eq!(first_of_month_after(d, 1), NaiveDate::from_ymd_opt(2023, 12, 1).unwrap());
        assert_eq!(first_of_month_after(d, 2), NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        assert_eq!(first_of_month_after(d, 14), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
    }
}
