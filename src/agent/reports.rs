//! The report for the people who run the line, as a plain model built from the daily counts:
//! volumes per day and per hour of the week, outcomes, the honest and the naive self-service
//! rates, drop-off, verification, transfer reasons, time to the first word, data sources and
//! freshness; and the same as CSV. No HTTP and no SQL here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::report::{Calendar, DayCounts, FIRST_WORD_BUCKETS_MS, Figure, Outcome, weekday_of};

/// Longest range one report covers (about three years of days).
pub const MAX_DAYS: i64 = 1100;

/// The whole days (in the line's time zone) a report covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl ReportRange {
    /// The range asked for (`YYYY-MM-DD`, both included); missing ends default to the last 30
    /// days up to `today`. The error says what was wrong, for a 400.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<ReportRange, String> {
        let date = |name: &str, text: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| format!("`{name}` must be a date like 2026-06-01 (YYYY-MM-DD), not {text:?}"))
        };
        let to = match to.filter(|t| !t.trim().is_empty()) {
            Some(t) => date("to", t)?,
            None => today,
        };
        let from = match from.filter(|f| !f.trim().is_empty()) {
            Some(f) => date("from", f)?,
            None => to - chrono::Duration::days(29),
        };
        if from > to {
            return Err(format!("`from` ({from}) is after `to` ({to})"));
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(format!("a report covers at most {MAX_DAYS} days; {from} to {to} is longer"));
        }
        Ok(ReportRange { from, to })
    }

    /// The first instant of the range.
    pub fn start(&self, calendar: &Calendar) -> DateTime<Utc> {
        calendar.start_of(self.from)
    }

    /// The first instant after the range.
    pub fn end(&self, calendar: &Calendar) -> DateTime<Utc> {
        calendar.start_of(self.to + chrono::Duration::days(1))
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// Calls by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub calls: i64,
    pub answered: i64,
    pub transferred: i64,
    pub abandoned_in_menu: i64,
    pub abandoned_in_queue: i64,
    pub ended_by_orderline: i64,
    /// Calls in which a voicemail was left (whatever their outcome).
    pub voicemails: i64,
    /// Calls in which the caller asked to be called back.
    pub callbacks: i64,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome, n: i64) {
        match outcome {
            Outcome::Answered => self.answered += n,
            Outcome::Transferred => self.transferred += n,
            Outcome::AbandonedInMenu => self.abandoned_in_menu += n,
            Outcome::AbandonedInQueue => self.abandoned_in_queue += n,
            Outcome::EndedByOrderline => self.ended_by_orderline += n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// The two self-service rates, side by side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SelfService {
    /// Calls that never reached a person.
    pub never_reached_person: i64,
    /// Calls orderline answered, not put through, with no call again from the same number within
    /// the repeat window.
    pub resolved: i64,
    /// Calls with caller ID (only for those can a repeat call be seen).
    pub with_caller_id: i64,
    pub repeat_window_hours: u64,
    /// never_reached_person / calls.
    pub naive_rate: Option<f64>,
    /// resolved / calls.
    pub honest_rate: Option<f64>,
}

/// A count under a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub label: String,
    pub calls: i64,
}

/// Orderline's own response time to a call's first request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirstWord {
    /// Calls with a measured time.
    pub measured: i64,
    /// At most this many milliseconds for half of them (bucket bound); None when none were
    /// measured or it is beyond the last bucket.
    pub p50_ms_at_most: Option<u32>,
    pub p95_ms_at_most: Option<u32>,
    /// Calls per bucket: label is the bucket's upper bound in ms, or `more`.
    pub buckets: Vec<Count>,
}

/// Where callers' records came from, and how many were fresh.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Freshness {
    /// Lookups answered with a record: cache, store, Shopify or stale.
    pub lookups_with_record: i64,
    /// Of those, fresh (cache, store or Shopify within the freshness window).
    pub fresh: i64,
    pub stale: i64,
    pub fresh_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The time zone of the days and hours (ORDERLINE_HOURS_TIMEZONE).
    pub timezone: String,
    pub totals: Outcomes,
    pub self_service: SelfService,
    pub days: Vec<Day>,
    /// Calls per hour of the week: 7 rows (Monday first) of 24 hours, in the line's time zone.
    pub hour_of_week: Vec<Vec<i64>>,
    /// Calls hung up on in the menu, by the last step the caller heard.
    pub drop_off: Vec<Count>,
    pub verification: Vec<Count>,
    pub transfer_reasons: Vec<Count>,
    pub first_word: FirstWord,
    pub sources: Vec<Count>,
    pub freshness: Freshness,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

fn counts(map: BTreeMap<String, i64>) -> Vec<Count> {
    let mut out: Vec<Count> = map.into_iter().map(|(label, calls)| Count { label, calls }).collect();
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.label.cmp(&b.label)));
    out
}

/// The smallest bucket bound under which at least `share` of the calls fall.
fn percentile(buckets: &[(Option<u32>, i64)], total: i64, share: f64) -> Option<u32> {
    let wanted = ((total as f64) * share).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bound, n) in buckets {
        seen += n;
        if seen >= wanted {
            return *bound;
        }
    }
    None
}

impl Report {
    pub fn build(
        range: ReportRange,
        per_day: &BTreeMap<DateTime<Utc>, DayCounts>,
        repeat_window_hours: u64,
        calendar: &Calendar,
    ) -> Report {
        let mut totals = Outcomes::default();
        let mut days: BTreeMap<NaiveDate, Outcomes> = range.days().map(|d| (d, Outcomes::default())).collect();
        let mut heat = vec![vec![0i64; 24]; 7];
        let mut self_service = SelfService { repeat_window_hours, ..SelfService::default() };
        let (mut drop_off, mut verification, mut reasons, mut sources) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut first_word: BTreeMap<String, i64> = BTreeMap::new();
        for (day, figures) in per_day {
            let date = calendar.date_of(*day);
            if date < range.from || date > range.to {
                continue;
            }
            let weekday = weekday_of(date);
            let this_day = days.entry(date).or_default();
            for ((figure, label), &n) in figures {
                match figure {
                    Figure::Calls => {
                        totals.calls += n;
                        this_day.calls += n;
                    }
                    Figure::Hour => {
                        if let Some(cell) = label.parse::<usize>().ok().and_then(|h| heat[weekday].get_mut(h)) {
                            *cell += n;
                        }
                    }
                    Figure::Outcome => {
                        if let Some(outcome) = Outcome::parse(label) {
                            totals.add(outcome, n);
                            this_day.add(outcome, n);
                        }
                    }
                    Figure::NeverReachedPerson => self_service.never_reached_person += n,
                    Figure::Resolved => self_service.resolved += n,
                    Figure::WithCallerId => self_service.with_caller_id += n,
                    Figure::DropOff => *drop_off.entry(label.clone()).or_default() += n,
                    Figure::Verification => *verification.entry(label.clone()).or_default() += n,
                    Figure::TransferReason => *reasons.entry(label.clone()).or_default() += n,
                    Figure::FirstWord => *first_word.entry(label.clone()).or_default() += n,
                    Figure::Source => *sources.entry(label.clone()).or_default() += n,
                    Figure::Voicemail => {
                        totals.voicemails += n;
                        this_day.voicemails += n;
                    }
                    Figure::Callback => {
                        totals.callbacks += n;
                        this_day.callbacks += n;
                    }
                }
            }
        }
        self_service.naive_rate = rate(self_service.never_reached_person, totals.calls);
        self_service.honest_rate = rate(self_service.resolved, totals.calls);

        let mut buckets: Vec<(Option<u32>, i64)> =
            first_word.iter().map(|(label, n)| (label.parse::<u32>().ok(), *n)).collect();
        buckets.sort_by_key(|(bound, _)| bound.unwrap_or(u32::MAX));
        let measured: i64 = buckets.iter().map(|(_, n)| n).sum();
        let first_word = FirstWord {
            measured,
            p50_ms_at_most: if measured > 0 { percentile(&buckets, measured, 0.50) } else { None },
            p95_ms_at_most: if measured > 0 { percentile(&buckets, measured, 0.95) } else { None },
            buckets: FIRST_WORD_BUCKETS_MS
                .iter()
                .map(|b| b.to_string())
                .chain(std::iter::once("more".to_string()))
                .map(|label| Count { calls: first_word.get(&label).copied().unwrap_or(0), label })
                .collect(),
        };
        let fresh: i64 = ["cache", "store", "shopify"].iter().filter_map(|s| sources.get(*s)).sum();
        let stale = sources.get("stale").copied().unwrap_or(0);
        let freshness =
            Freshness { lookups_with_record: fresh + stale, fresh, stale, fresh_rate: rate(fresh, fresh + stale) };
        Report {
            from: range.from,
            to: range.to,
            timezone: calendar.timezone.name().to_string(),
            totals,
            self_service,
            days: days.into_iter().map(|(day, outcomes)| Day { day, outcomes }).collect(),
            hour_of_week: heat,
            drop_off: counts(drop_off),
            verification: counts(verification),
            transfer_reasons: counts(reasons),
            first_word,
            sources: counts(sources),
            freshness,
        }
    }

    /// The report as CSV, one figure per row: `figure,day,label,value` (day empty for figures
    /// over the whole range).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("figure,day,label,value\n");
        let mut row = |figure: &str, day: &str, label: &str, value: String| {
            let _ = writeln!(out, "{figure},{day},{},{value}", csv_field(label));
        };
        let outcome_rows = |o: &Outcomes| {
            [
                ("calls", o.calls),
                ("answered", o.answered),
                ("transferred", o.transferred),
                ("abandoned_in_menu", o.abandoned_in_menu),
                ("abandoned_in_queue", o.abandoned_in_queue),
                ("ended_by_orderline", o.ended_by_orderline),
            ]
        };
        for (label, n) in outcome_rows(&self.totals) {
            row("outcome", "", label, n.to_string());
        }
        let s = &self.self_service;
        row("self_service", "", "never_reached_person", s.never_reached_person.to_string());
        row("self_service", "", "resolved", s.resolved.to_string());
        row("self_service", "", "naive_rate", s.naive_rate.map_or(String::new(), |r| r.to_string()));
        row("self_service", "", "honest_rate", s.honest_rate.map_or(String::new(), |r| r.to_string()));
        row("self_service", "", "repeat_window_hours", s.repeat_window_hours.to_string());
        let f = &self.first_word;
        row("first_word", "", "measured", f.measured.to_string());
        row("first_word", "", "p50_ms_at_most", f.p50_ms_at_most.map_or(String::new(), |v| v.to_string()));
        row("first_word", "", "p95_ms_at_most", f.p95_ms_at_most.map_or(String::new(), |v| v.to_string()));
        row("freshness", "", "fresh", self.freshness.fresh.to_string());
        row("freshness", "", "stale", self.freshness.stale.to_string());
        for (figure, list) in [
            ("drop_off", &self.drop_off),
            ("verification", &self.verification),
            ("transfer_reason", &self.transfer_reasons),
            ("source", &self.sources),
        ] {
            for c in list {
                row(figure, "", &c.label, c.calls.to_string());
            }
        }
        const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        for (weekday, hours) in self.hour_of_week.iter().enumerate() {
            for (hour, n) in hours.iter().enumerate() {
                row("hour_of_week", "", &format!("{} {hour:02}", WEEKDAYS[weekday]), n.to_string());
            }
        }
        for day in &self.days {
            let date = day.day.to_string();
            for (label, n) in outcome_rows(&day.outcomes) {
                row("day", &date, label, n.to_string());
            }
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 30).unwrap()
    }

    #[test]
    fn a_range_defaults_to_the_last_thirty_days() {
        let r = ReportRange::parse(None, None, today()).unwrap();
        assert_eq!((r.from.to_string(), r.to.to_string()), ("2026-06-01".into(), "2026-06-30".into()));
        assert_eq!(r.days().count(), 30);
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        assert!(ReportRange::parse(Some("June"), None, today()).unwrap_err().contains("`from` must be a date"));
        assert!(ReportRange::parse(Some("2026-06-10"), Some("2026-06-01"), today()).unwrap_err().contains("after"));
        assert!(ReportRange::parse(Some("2020-01-01"), Some("2026-01-01"), today()).unwrap_err().contains("at most"));
    }

    #[test]
    fn percentiles_are_the_bucket_bound_reached() {
        let b = [(Some(100), 5), (Some(200), 4), (Some(500), 1)];
        assert_eq!(percentile(&b, 10, 0.5), Some(100));
        assert_eq!(percentile(&b, 10, 0.95), Some(500));
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
