//! Business hours of the support line: parses the configured time zone, weekly hours and holidays,
//! and answers "open now?" and "when do we open next?". Pure: never reads the clock or environment.
//!
//! Rules a caller can hear the effect of:
//! - A range belongs to the day it starts on. An end earlier than the start runs past midnight
//!   (`fri 22:00-02:00` is also open Saturday 00:00–02:00). A holiday cancels the ranges that start
//!   on it, so a range from the day before still runs to its end, and a range starting on the
//!   holiday does not run into the next day either.
//! - `always` is every day 00:00–24:00: open around the clock unless a holiday is listed.
//! - Wall times are local to the line's time zone. A time skipped by a spring-forward change means
//!   the first valid instant after the gap; a time that occurs twice (fall back) means the first.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::Language;

const MINUTES_PER_DAY: u32 = 24 * 60;
/// How far [`BusinessHours::next_opening`] looks ahead.
const LOOKAHEAD_DAYS: u64 = 14;
/// Longer than any real daylight-saving gap; bounds the search for the end of one.
const MAX_GAP_MINUTES: u32 = 24 * 60;

/// When the support line takes calls, in the line's own time zone.
/// When the line opens again, as the templates get it: in words for TwiML (`words`), and as data
/// for the recorded speech of Media Streams (`speech::opening`), which is never English parsed back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextOpening {
    /// In the call's language: "Monday at 9 AM", "mañana a las 9:30 de la mañana".
    pub words: String,
    /// The local date, `YYYY-MM-DD`, and how many days after today it is.
    pub date: String,
    pub days_ahead: i64,
    /// The local time, 0–23 and 0–59.
    pub hour: u32,
    pub minute: u32,
}

#[derive(Debug, Clone)]
pub struct BusinessHours {
    timezone: Tz,
    /// Opening ranges by the weekday they start on, Monday first.
    weekly: [Vec<OpeningRange>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// Minutes after the local midnight of the day a range starts on; `end` may pass the next midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpeningRange {
    start: u32,
    end: u32,
}

impl OpeningRange {
    const WHOLE_DAY: OpeningRange = OpeningRange { start: 0, end: MINUTES_PER_DAY };
}

/// Why the business-hours configuration could not be read. Messages name the variable and quote
/// the offending piece, ready for a startup log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoursError {
    #[error("ORDERLINE_HOURS_TIMEZONE: \"{0}\": unknown time zone, expected an IANA name such as America/New_York")]
    UnknownTimezone(String),
    #[error("ORDERLINE_HOURS: \"{entry}\": {problem}")]
    BadHours { entry: String, problem: HoursProblem },
    #[error("ORDERLINE_HOLIDAYS: \"{0}\": not a date, expected YYYY-MM-DD")]
    BadHoliday(String),
}

/// What is wrong with one `ORDERLINE_HOURS` entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoursProblem {
    #[error("empty entry, expected DAYS HH:MM-HH:MM")]
    EmptyEntry,
    #[error("unknown day \"{0}\"")]
    UnknownDay(String),
    #[error("no time range after the days, expected HH:MM-HH:MM")]
    MissingRange,
    #[error("bad time range \"{0}\", expected HH:MM-HH:MM")]
    BadRange(String),
    #[error("bad time \"{0}\", expected HH:MM from 00:00 to 23:59 (24:00 only as an end)")]
    BadTime(String),
    #[error("time range \"{0}\" starts and ends at the same time")]
    EmptyRange(String),
}

impl BusinessHours {
    /// Open around the clock, in UTC, with no holidays.
    pub fn always_open() -> Self {
        BusinessHours {
            timezone: Tz::UTC,
            weekly: std::array::from_fn(|_| vec![OpeningRange::WHOLE_DAY]),
            holidays: BTreeSet::new(),
        }
    }

    /// Reads the three configuration strings; see the module comment for the rules.
    pub fn parse(timezone: &str, hours: &str, holidays: &str) -> Result<Self, HoursError> {
        Ok(BusinessHours {
            timezone: parse_timezone(timezone)?,
            weekly: parse_weekly(hours)?,
            holidays: parse_holidays(holidays)?,
        })
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let at = at.with_timezone(&self.timezone);
        // A range ends less than two days after the midnight it starts from, so only ranges that
        // start on the two days before can still be running (one more day absorbs DST shifts).
        let first = at.date_naive().checked_sub_days(Days::new(2)).unwrap_or(at.date_naive());
        self.openings(first, 3).any(|(start, end)| start <= at && at < end)
    }

    /// The next moment the line opens after `at` (None if always open or never opens); searches at
    /// most 14 days ahead, skipping holidays. When the line is open at `at`, this is the opening
    /// after the current one closes; back-to-back ranges count as one stretch, not a new opening.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Tz>> {
        let at = at.with_timezone(&self.timezone);
        let horizon = at + TimeDelta::days(LOOKAHEAD_DAYS as i64);
        let first = at.date_naive().checked_sub_days(Days::new(2)).unwrap_or(at.date_naive());
        let ranges: Vec<_> = self.openings(first, LOOKAHEAD_DAYS + 4).collect();
        ranges
            .iter()
            .map(|&(start, _)| start)
            .filter(|&start| at < start && start <= horizon)
            .filter(|&start| !ranges.iter().any(|&(s, e)| s < start && start <= e))
            .min()
    }

    /// Words for a caller: "Monday at 9 AM", "tomorrow at 9:30 AM", "today at 1 PM" (relative to
    /// `at`, in the line's time zone). A week or more ahead adds the date: "Monday, January 12 at 9 AM".
    pub fn say_next_opening(&self, at: DateTime<Utc>) -> Option<String> {
        self.say_next_opening_in(at, Language::En)
    }

    /// The same, in `language`: "mañana a las 9:30 de la mañana".
    pub fn say_next_opening_in(&self, at: DateTime<Utc>, language: Language) -> Option<String> {
        self.next_opening_in(at, language).map(|opening| opening.words)
    }

    /// When the line opens next (after `at`), as data and in `language`'s words.
    pub fn next_opening_in(&self, at: DateTime<Utc>, language: Language) -> Option<NextOpening> {
        let opening = self.next_opening(at)?;
        let today = at.with_timezone(&self.timezone).date_naive();
        let date = opening.date_naive();
        Some(NextOpening {
            words: language.day_and_time(date, today, opening.hour(), opening.minute()),
            date: date.format("%Y-%m-%d").to_string(),
            days_ahead: (date - today).num_days(),
            hour: opening.hour(),
            minute: opening.minute(),
        })
    }

    /// Opening intervals `[start, end)` of the ranges starting on `days` local dates from `first`,
    /// holidays left out, empty intervals (a range inside a DST gap) dropped.
    fn openings(&self, first: NaiveDate, days: u64) -> impl Iterator<Item = (DateTime<Tz>, DateTime<Tz>)> + '_ {
        first
            .iter_days()
            .take(days as usize)
            .filter(|day| !self.holidays.contains(day))
            .flat_map(move |day| {
                let midnight = day.and_time(chrono::NaiveTime::MIN);
                self.weekly[day.weekday().num_days_from_monday() as usize].iter().map(move |range| {
                    let start = resolve_local(self.timezone, midnight + minutes(range.start));
                    let end = resolve_local(self.timezone, midnight + minutes(range.end));
                    (start, end)
                })
            })
            .filter(|(start, end)| start < end)
    }
}

fn minutes(count: u32) -> TimeDelta {
    TimeDelta::minutes(i64::from(count))
}

/// The instant a local wall time names: the first of two (fall back), or the first valid instant
/// after a skipped stretch (spring forward).
fn resolve_local(timezone: Tz, local: NaiveDateTime) -> DateTime<Tz> {
    let mut probe = local;
    for _ in 0..=MAX_GAP_MINUTES {
        if let Some(instant) = timezone.from_local_datetime(&probe).earliest() {
            return instant;
        }
        probe += TimeDelta::minutes(1);
    }
    // No zone skips a whole day of minutes; read the wall time as UTC rather than fail.
    timezone.from_utc_datetime(&local)
}

fn parse_timezone(text: &str) -> Result<Tz, HoursError> {
    let name = text.trim();
    name.parse().map_err(|_| HoursError::UnknownTimezone(name.to_string()))
}

fn parse_weekly(text: &str) -> Result<[Vec<OpeningRange>; 7], HoursError> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("always") {
        return Ok(std::array::from_fn(|_| vec![OpeningRange::WHOLE_DAY]));
    }
    let mut weekly: [Vec<OpeningRange>; 7] = Default::default();
    for entry in text.split([',', ';']) {
        let entry = entry.trim();
        let bad = |problem| HoursError::BadHours { entry: entry.to_string(), problem };
        let mut words = entry.split_whitespace();
        let days = parse_days(words.next().ok_or_else(|| bad(HoursProblem::EmptyEntry))?).map_err(bad)?;
        let ranges = words.map(parse_range).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        if ranges.is_empty() {
            return Err(bad(HoursProblem::MissingRange));
        }
        for day in days {
            weekly[day.num_days_from_monday() as usize].extend(&ranges);
        }
    }
    Ok(weekly)
}

/// `mon`, `monday`, `mon-fri`, `fri-mon` (wraps past Sunday) or `daily`.
fn parse_days(word: &str) -> Result<Vec<Weekday>, HoursProblem> {
    if word.eq_ignore_ascii_case("daily") {
        return Ok(days_from(Weekday::Mon).take(7).collect());
    }
    match word.split_once('-') {
        None => Ok(vec![parse_day(word)?]),
        Some((from, to)) => {
            let (from, to) = (parse_day(from)?, parse_day(to)?);
            let span = (to.num_days_from_monday() + 7 - from.num_days_from_monday()) % 7;
            Ok(days_from(from).take(span as usize + 1).collect())
        }
    }
}

fn days_from(first: Weekday) -> impl Iterator<Item = Weekday> {
    std::iter::successors(Some(first), |day| Some(day.succ()))
}

fn parse_day(word: &str) -> Result<Weekday, HoursProblem> {
    let day = match word.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return Err(HoursProblem::UnknownDay(word.to_string())),
    };
    Ok(day)
}

/// `HH:MM-HH:MM`; an end earlier than the start runs past midnight.
fn parse_range(word: &str) -> Result<OpeningRange, HoursProblem> {
    let (start_text, end_text) = word.split_once('-').ok_or_else(|| HoursProblem::BadRange(word.to_string()))?;
    let start = parse_minute_of_day(start_text).filter(|&minute| minute < MINUTES_PER_DAY);
    let start = start.ok_or_else(|| HoursProblem::BadTime(start_text.to_string()))?;
    let end = parse_minute_of_day(end_text).ok_or_else(|| HoursProblem::BadTime(end_text.to_string()))?;
    match end.cmp(&start) {
        std::cmp::Ordering::Equal => Err(HoursProblem::EmptyRange(word.to_string())),
        std::cmp::Ordering::Greater => Ok(OpeningRange { start, end }),
        std::cmp::Ordering::Less => Ok(OpeningRange { start, end: end + MINUTES_PER_DAY }),
    }
}

/// `H:MM` or `HH:MM` from `00:00` to `24:00`, as minutes after midnight.
fn parse_minute_of_day(text: &str) -> Option<u32> {
    let (hour, minute) = text.split_once(':')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hour) || hour.len() > 2 || !all_digits(minute) || minute.len() != 2 {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    let total = hour * 60 + minute;
    (minute < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

fn parse_holidays(text: &str) -> Result<BTreeSet<NaiveDate>, HoursError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(BTreeSet::new());
    }
    text.split(',')
        .map(str::trim)
        .map(|date| parse_date(date).ok_or_else(|| HoursError::BadHoliday(date.to_string())))
        .collect()
}

/// Strictly `YYYY-MM-DD`, and a real calendar date.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shape_ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEKDAYS: &str = "mon-fri 09:00-17:30, sat 10:00-14:00";

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test instant").with_timezone(&Utc)
    }

    fn hours(timezone: &str, weekly: &str, holidays: &str) -> BusinessHours {
        BusinessHours::parse(timezone, weekly, holidays).expect("valid test configuration")
    }

    fn hours_error(timezone: &str, weekly: &str, holidays: &str) -> HoursError {
        BusinessHours::parse(timezone, weekly, holidays).expect_err("configuration should be rejected")
    }

    // 2025-06-02 is a Monday.

    #[test]
    fn a_weekday_inside_the_hours_is_open() {
        let line = hours("UTC", WEEKDAYS, "");
        assert!(line.is_open(utc("2025-06-02T12:00:00Z")));
        assert!(line.is_open(utc("2025-06-06T16:00:00Z")));
        assert!(!line.is_open(utc("2025-06-02T08:00:00Z")));
        assert!(!line.is_open(utc("2025-06-02T20:00:00Z")));
    }

    #[test]
    fn saturday_has_its_own_hours_and_sunday_is_closed() {
        let line = hours("UTC", WEEKDAYS, "");
        assert!(line.is_open(utc("2025-06-07T11:00:00Z")));
        assert!(!line.is_open(utc("2025-06-07T15:00:00Z")));
        assert!(!line.is_open(utc("2025-06-08T12:00:00Z")));
    }

    #[test]
    fn a_range_includes_its_first_second_and_excludes_its_end() {
        let line = hours("UTC", WEEKDAYS, "");
        assert!(!line.is_open(utc("2025-06-02T08:59:59Z")));
        assert!(line.is_open(utc("2025-06-02T09:00:00Z")));
        assert!(line.is_open(utc("2025-06-02T17:29:59Z")));
        assert!(!line.is_open(utc("2025-06-02T17:30:00Z")));
    }

    #[test]
    fn a_day_can_have_several_ranges() {
        let line = hours("UTC", "mon 09:00-12:00 13:00-17:00", "");
        assert!(line.is_open(utc("2025-06-02T11:59:00Z")));
        assert!(!line.is_open(utc("2025-06-02T12:30:00Z")));
        assert!(line.is_open(utc("2025-06-02T13:00:00Z")));
    }

    #[test]
    fn a_range_past_midnight_stays_open_into_the_next_day() {
        let line = hours("UTC", "fri 22:00-02:00", "");
        assert!(!line.is_open(utc("2025-06-06T21:59:59Z")));
        assert!(line.is_open(utc("2025-06-06T22:00:00Z")));
        assert!(line.is_open(utc("2025-06-07T01:59:59Z")));
        assert!(!line.is_open(utc("2025-06-07T02:00:00Z")));
        // Saturday has no range of its own, and last Friday's range does not leak into Friday morning.
        assert!(!line.is_open(utc("2025-06-07T22:30:00Z")));
        assert!(!line.is_open(utc("2025-06-06T01:00:00Z")));
    }

    #[test]
    fn an_end_of_24_00_closes_at_midnight() {
        let line = hours("UTC", "mon 20:00-24:00", "");
        assert!(line.is_open(utc("2025-06-02T23:59:59Z")));
        assert!(!line.is_open(utc("2025-06-03T00:00:00Z")));
    }

    #[test]
    fn day_names_are_case_insensitive_and_spans_can_wrap_past_sunday() {
        let line = hours("UTC", "FRIDAY-Mon 10:00-11:00; Wednesday 10:00-11:00", "");
        let open_days: Vec<u32> =
            (2..=8).filter(|day| line.is_open(utc(&format!("2025-06-{day:02}T10:30:00Z")))).collect();
        // Mon 2, Wed 4, Fri 6, Sat 7, Sun 8.
        assert_eq!(open_days, vec![2, 4, 6, 7, 8]);
    }

    #[test]
    fn daily_means_every_day_of_the_week() {
        let line = hours("UTC", "daily 10:00-11:00", "");
        assert!((2..=8).all(|day| line.is_open(utc(&format!("2025-06-{day:02}T10:30:00Z")))));
    }

    #[test]
    fn a_holiday_is_closed_all_day() {
        let line = hours("UTC", WEEKDAYS, "2025-06-03, 2025-12-25");
        assert!(line.is_open(utc("2025-06-02T12:00:00Z")));
        assert!(!line.is_open(utc("2025-06-03T12:00:00Z")));
        assert!(line.is_open(utc("2025-06-04T12:00:00Z")));
    }

    #[test]
    fn a_range_past_midnight_into_a_holiday_still_runs_to_its_end() {
        let line = hours("UTC", "daily 22:00-02:00", "2025-06-07");
        assert!(line.is_open(utc("2025-06-07T01:30:00Z")));
        assert!(!line.is_open(utc("2025-06-07T02:00:00Z")));
        // The holiday's own range, and its run into Sunday, do not happen.
        assert!(!line.is_open(utc("2025-06-07T23:00:00Z")));
        assert!(!line.is_open(utc("2025-06-08T01:00:00Z")));
        assert!(line.is_open(utc("2025-06-08T23:00:00Z")));
    }

    #[test]
    fn new_york_hours_follow_daylight_saving_in_summer_and_winter() {
        let line = hours("America/New_York", "mon-fri 09:00-17:00", "");
        // July (EDT, UTC-4): 13:00-21:00 UTC.
        assert!(!line.is_open(utc("2025-07-01T12:59:59Z")));
        assert!(line.is_open(utc("2025-07-01T13:00:00Z")));
        assert!(line.is_open(utc("2025-07-01T20:59:59Z")));
        assert!(!line.is_open(utc("2025-07-01T21:00:00Z")));
        // January (EST, UTC-5): 14:00-22:00 UTC.
        assert!(!line.is_open(utc("2025-01-07T13:59:59Z")));
        assert!(line.is_open(utc("2025-01-07T14:00:00Z")));
        assert!(line.is_open(utc("2025-01-07T21:59:59Z")));
        assert!(!line.is_open(utc("2025-01-07T22:00:00Z")));
    }

    #[test]
    fn new_york_spring_forward_range_starting_in_the_skipped_hour_opens_when_clocks_reach_three() {
        // 2025-03-09: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let line = hours("America/New_York", "sun 02:30-05:00", "");
        assert!(!line.is_open(utc("2025-03-09T06:59:59Z")));
        assert!(line.is_open(utc("2025-03-09T07:00:00Z")));
        assert!(line.is_open(utc("2025-03-09T08:59:59Z")));
        assert!(!line.is_open(utc("2025-03-09T09:00:00Z")));
        // The next Sunday is an ordinary EDT day: 02:30 EDT is 06:30 UTC.
        assert!(line.is_open(utc("2025-03-16T06:30:00Z")));
    }

    #[test]
    fn new_york_fall_back_day_opens_at_the_first_of_the_repeated_times() {
        // 2025-11-02: 02:00 EDT falls back to 01:00 EST, so 01:30 happens at 05:30 and 06:30 UTC.
        let line = hours("America/New_York", "sun 01:30-03:00", "");
        assert!(!line.is_open(utc("2025-11-02T05:29:59Z")));
        assert!(line.is_open(utc("2025-11-02T05:30:00Z")));
        assert!(line.is_open(utc("2025-11-02T06:30:00Z")));
        assert!(line.is_open(utc("2025-11-02T07:59:59Z")));
        assert!(!line.is_open(utc("2025-11-02T08:00:00Z")));
        let office = hours("America/New_York", "daily 09:00-17:00", "");
        assert!(office.is_open(utc("2025-11-01T13:00:00Z")));
        assert!(!office.is_open(utc("2025-11-02T13:30:00Z")));
        assert!(office.is_open(utc("2025-11-02T14:00:00Z")));
    }

    #[test]
    fn london_hours_follow_daylight_saving_in_both_directions() {
        let line = hours("Europe/London", "daily 09:00-17:00", "");
        // Spring forward on 2025-03-30: GMT (UTC+0) before, BST (UTC+1) after.
        assert!(line.is_open(utc("2025-03-29T09:00:00Z")));
        assert!(!line.is_open(utc("2025-03-29T08:59:59Z")));
        assert!(line.is_open(utc("2025-03-30T08:00:00Z")));
        assert!(!line.is_open(utc("2025-03-30T16:00:00Z")));
        // Fall back on 2025-10-26: BST before, GMT after.
        assert!(line.is_open(utc("2025-10-25T08:00:00Z")));
        assert!(!line.is_open(utc("2025-10-26T08:00:00Z")));
        assert!(line.is_open(utc("2025-10-26T16:30:00Z")));
    }

    #[test]
    fn london_night_ranges_across_both_changes() {
        // 2025-03-30 01:00 GMT jumps to 02:00 BST: 01:30 does not exist, so the range opens at 01:00 UTC.
        let spring = hours("Europe/London", "sun 01:30-03:00", "");
        assert!(!spring.is_open(utc("2025-03-30T00:59:59Z")));
        assert!(spring.is_open(utc("2025-03-30T01:00:00Z")));
        assert!(!spring.is_open(utc("2025-03-30T02:00:00Z")));
        // 2025-10-26 02:00 BST falls back to 01:00 GMT: 01:30 BST is 00:30 UTC, 02:00 GMT is 02:00 UTC.
        let autumn = hours("Europe/London", "sun 01:30-02:00", "");
        assert!(!autumn.is_open(utc("2025-10-26T00:29:59Z")));
        assert!(autumn.is_open(utc("2025-10-26T00:30:00Z")));
        assert!(autumn.is_open(utc("2025-10-26T01:45:00Z")));
        assert!(!autumn.is_open(utc("2025-10-26T02:00:00Z")));
    }

    #[test]
    fn always_and_empty_hours_are_open_around_the_clock() {
        for line in [hours("Europe/London", "always", ""), hours("UTC", "", ""), BusinessHours::always_open()] {
            for at in ["2025-06-02T00:00:00Z", "2025-06-08T03:17:00Z", "2025-03-30T01:30:00Z", "2025-10-26T01:30:00Z"] {
                assert!(line.is_open(utc(at)), "{line:?} at {at}");
            }
            assert_eq!(line.next_opening(utc("2025-06-02T12:00:00Z")), None);
            assert_eq!(line.say_next_opening(utc("2025-06-02T12:00:00Z")), None);
        }
        assert_eq!(BusinessHours::always_open().timezone(), Tz::UTC);
    }

    #[test]
    fn always_open_still_closes_on_a_holiday() {
        let line = hours("UTC", "ALWAYS", "2025-12-25");
        assert!(line.is_open(utc("2025-12-24T23:59:59Z")));
        assert!(!line.is_open(utc("2025-12-25T12:00:00Z")));
        assert_eq!(
            line.next_opening(utc("2025-12-25T12:00:00Z")),
            Some(utc("2025-12-26T00:00:00Z").with_timezone(&Tz::UTC))
        );
    }

    #[test]
    fn an_unknown_day_is_named_and_quoted() {
        let error = hours_error("UTC", "mon-fry 09:00-17:00", "");
        assert_eq!(error.to_string(), r#"ORDERLINE_HOURS: "mon-fry 09:00-17:00": unknown day "fry""#);
        let error = hours_error("UTC", "mon-fri 09:00-17:00, someday 10:00-11:00", "");
        assert_eq!(
            error,
            HoursError::BadHours {
                entry: "someday 10:00-11:00".to_string(),
                problem: HoursProblem::UnknownDay("someday".to_string()),
            }
        );
    }

    #[test]
    fn a_bad_time_is_named_and_quoted() {
        let bad_time = |weekly: &str, time: &str| {
            assert_eq!(
                hours_error("UTC", weekly, ""),
                HoursError::BadHours { entry: weekly.to_string(), problem: HoursProblem::BadTime(time.to_string()) },
                "{weekly}"
            );
        };
        bad_time("mon 09:00-25:00", "25:00");
        bad_time("mon 9am-17:00", "9am");
        bad_time("mon 09:60-17:00", "09:60");
        bad_time("mon 24:00-02:00", "24:00");
        bad_time("mon 09:00-24:01", "24:01");
        let error = hours_error("UTC", "mon 09:00-25:00", "");
        assert!(error.to_string().contains(r#"bad time "25:00""#), "{error}");
    }

    #[test]
    fn malformed_entries_are_rejected() {
        let problem = |weekly: &str| match hours_error("UTC", weekly, "") {
            HoursError::BadHours { problem, .. } => problem,
            other => panic!("expected BadHours, got {other:?}"),
        };
        assert_eq!(problem("mon"), HoursProblem::MissingRange);
        assert_eq!(problem("mon 0900"), HoursProblem::BadRange("0900".to_string()));
        assert_eq!(problem("mon 09:00-09:00"), HoursProblem::EmptyRange("09:00-09:00".to_string()));
        assert_eq!(problem("mon 09:00-17:00,,tue 09:00-17:00"), HoursProblem::EmptyEntry);
    }

    #[test]
    fn an_unknown_timezone_is_named_and_quoted() {
        let error = hours_error("America/Springfield", WEEKDAYS, "");
        assert_eq!(error, HoursError::UnknownTimezone("America/Springfield".to_string()));
        assert!(error.to_string().starts_with(r#"ORDERLINE_HOURS_TIMEZONE: "America/Springfield": unknown time zone"#));
        assert!(matches!(hours_error("", WEEKDAYS, ""), HoursError::UnknownTimezone(_)));
        assert_eq!(hours(" Europe/London ", WEEKDAYS, "").timezone(), Tz::Europe__London);
    }

    #[test]
    fn a_bad_holiday_date_is_named_and_quoted() {
        for bad in ["2025-02-30", "tomorrow", "2025-6-3", "25-12-2025"] {
            let error = hours_error("UTC", WEEKDAYS, &format!("2025-01-01, {bad}"));
            assert_eq!(error, HoursError::BadHoliday(bad.to_string()));
            assert_eq!(error.to_string(), format!(r#"ORDERLINE_HOLIDAYS: "{bad}": not a date, expected YYYY-MM-DD"#));
        }
    }

    #[test]
    fn after_friday_close_the_next_opening_is_monday_morning() {
        let line = hours("America/New_York", "mon-fri 09:00-17:00", "");
        // Friday 2025-06-06 18:00 EDT.
        let next = line.next_opening(utc("2025-06-06T22:00:00Z")).expect("opens again");
        assert_eq!(next, utc("2025-06-09T13:00:00Z").with_timezone(&Tz::America__New_York));
        assert_eq!(next.to_rfc3339(), "2025-06-09T09:00:00-04:00");
    }

    #[test]
    fn while_open_the_next_opening_is_after_the_current_stretch() {
        let line = hours("UTC", "mon-fri 09:00-17:00", "");
        let next = line.next_opening(utc("2025-06-02T09:00:00Z"));
        assert_eq!(next, Some(utc("2025-06-03T09:00:00Z").with_timezone(&Tz::UTC)));
        // Back-to-back ranges are one stretch: the next opening is after the night closure.
        let line = hours("UTC", "mon 09:00-24:00, tue 00:00-17:00, wed 09:00-17:00", "");
        let next = line.next_opening(utc("2025-06-02T10:00:00Z"));
        assert_eq!(next, Some(utc("2025-06-04T09:00:00Z").with_timezone(&Tz::UTC)));
    }

    #[test]
    fn the_next_opening_skips_holidays() {
        let line = hours("Europe/London", "mon-fri 09:00-17:00", "2025-12-25, 2025-12-26");
        // Wednesday 2025-12-24 after close: Thursday and Friday are holidays, then the weekend.
        let next = line.next_opening(utc("2025-12-24T18:00:00Z"));
        assert_eq!(next, Some(utc("2025-12-29T09:00:00Z").with_timezone(&Tz::Europe__London)));
    }

    #[test]
    fn the_next_opening_looks_no_further_than_fourteen_days() {
        let holidays: Vec<String> = (1..=20).map(|day| format!("2025-08-{day:02}")).collect();
        let line = hours("UTC", "mon-fri 09:00-17:00", &holidays.join(","));
        assert_eq!(line.next_opening(utc("2025-07-31T18:00:00Z")), None);
        assert_eq!(line.say_next_opening(utc("2025-07-31T18:00:00Z")), None);
        // Ten days of holidays are within reach.
        let line = hours("UTC", "mon-fri 09:00-17:00", &holidays[..10].join(","));
        let next = line.next_opening(utc("2025-07-31T18:00:00Z"));
        assert_eq!(next, Some(utc("2025-08-11T09:00:00Z").with_timezone(&Tz::UTC)));
    }

    #[test]
    fn a_line_open_around_the_clock_by_its_ranges_never_opens_anew() {
        let line = hours("America/New_York", "daily 00:00-24:00", "");
        assert_eq!(line.next_opening(utc("2025-03-08T12:00:00Z")), None);
        assert!(line.is_open(utc("2025-03-09T07:00:00Z")));
    }

    #[test]
    fn the_next_opening_is_said_relative_to_the_callers_day() {
        let line = hours("America/New_York", "mon-thu 09:30-17:00, fri 13:00-17:00, sat 09:00-12:00", "");
        // Friday 2025-06-06 08:00 EDT: opens today.
        assert_eq!(line.say_next_opening(utc("2025-06-06T12:00:00Z")).as_deref(), Some("today at 1 PM"));
        // Thursday 2025-06-05 20:00 EDT (already Friday in UTC): still "tomorrow" in New York.
        assert_eq!(line.say_next_opening(utc("2025-06-06T00:00:00Z")).as_deref(), Some("tomorrow at 1 PM"));
        // Monday 2025-06-02 07:00 EDT.
        assert_eq!(line.say_next_opening(utc("2025-06-02T11:00:00Z")).as_deref(), Some("today at 9:30 AM"));
        // Sunday 2025-06-01 20:00 EDT.
        assert_eq!(line.say_next_opening(utc("2025-06-02T00:00:00Z")).as_deref(), Some("tomorrow at 9:30 AM"));
        // Saturday 2025-06-07 13:00 EDT: closed until Monday.
        assert_eq!(line.say_next_opening(utc("2025-06-07T17:00:00Z")).as_deref(), Some("Monday at 9:30 AM"));
    }

    #[test]
    fn a_far_opening_is_said_with_its_date_and_twelve_reads_as_12() {
        let line = hours("UTC", "mon 12:00-13:00", "2025-06-09");
        // Monday 2025-06-02 after close; next Monday is a holiday, so the one after.
        let said = line.say_next_opening(utc("2025-06-02T14:00:00Z"));
        assert_eq!(said.as_deref(), Some("Monday, June 16 at 12 PM"));
        let line = hours("UTC", "sat 00:15-02:00", "");
        assert_eq!(line.say_next_opening(utc("2025-06-06T20:00:00Z")).as_deref(), Some("tomorrow at 12:15 AM"));
    }
}
