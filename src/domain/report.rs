//! What a finished call counts for in the reports: its outcome, whether orderline honestly resolved
//! it, where the caller hung up, verification, transfer reason, time to the first word and the
//! data source, as (figure, label) counts per UTC day. Pure: no I/O, no SQL, no HTTP; the store
//! rolls these counts into daily aggregates and the report page reads them back.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

names! {
    /// Which count a daily aggregate row holds (`call_days.figure`); its label says of what.
    pub enum Figure {
        /// Every call (label: empty).
        Calls => "calls",
        /// Calls started in this hour of the day, in the line's time zone (label `0`..`23`).
        Hour => "hour",
        /// Calls by outcome (label: an `Outcome`).
        Outcome => "outcome",
        /// Calls that never reached a person (label: empty): the naive self-service count.
        NeverReachedPerson => "never_reached_person",
        /// Calls orderline answered, not transferred, and the caller did not call again within
        /// the repeat window (label: empty): the honest self-service count.
        Resolved => "resolved",
        /// Calls with caller ID, so a repeat call could be seen (label: empty).
        WithCallerId => "with_caller_id",
        /// Calls the caller hung up on without a person or a goodbye, by the last step they
        /// heard (label: the step's template name, or `none`).
        DropOff => "drop_off",
        /// Calls by their last verification result (label: a `VerificationOutcome`).
        Verification => "verification",
        /// Transferred calls by reason (label: a transfer reason's stored name).
        TransferReason => "transfer_reason",
        /// Calls whose first answer took at most this many milliseconds (label: a bucket bound
        /// from `FIRST_WORD_BUCKETS_MS`, or `more`).
        FirstWord => "first_word_ms",
        /// Calls by where the caller's record came from (label: cache, store, shopify, stale,
        /// unknown, withheld).
        Source => "source",
        /// Calls in which the caller left a voicemail that was kept (label: empty).
        Voicemail => "voicemail",
        /// Calls in which the caller asked, from the queue, to be called back (label: empty).
        Callback => "callback",
    }
}

names! {
    /// How a call ended, one per call.
    pub enum Outcome {
        /// Not transferred, and orderline told the caller about an order (a menu, other orders
        /// or returns step was spoken).
        Answered => "answered",
        /// Put through to a person (and not known to have hung up in the queue).
        Transferred => "transferred",
        /// Hung up before orderline told them anything, and before any goodbye.
        AbandonedInMenu => "abandoned_in_menu",
        /// Put through, then hung up while waiting in the queue (`QueueResult=hangup`).
        AbandonedInQueue => "abandoned_in_queue",
        /// orderline said goodbye without answering (closed, nothing found, no input).
        EndedByOrderline => "ended_by_orderline",
    }
}

names! {
    /// A call's last verification result.
    pub enum VerificationOutcome {
        Passed => "passed",
        Failed => "failed",
        Locked => "locked",
        /// Could not be checked (nothing on file to check against).
        Unverifiable => "unverifiable",
    }
}

/// Bucket bounds for the time to the first word; percentiles are reported as "at most" a bound.
pub const FIRST_WORD_BUCKETS_MS: &[u32] =
    &[25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 8000];

/// The facts of one call that the reports count, read from its record and its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFacts {
    pub started_at: DateTime<Utc>,
    /// The transfer reason's stored name, if the call was put through.
    pub transfer: Option<String>,
    /// Whether the caller had caller ID (a repeat call can only be seen then).
    pub has_caller_id: bool,
    /// The same caller called again within the repeat window.
    pub called_again: bool,
    /// How long orderline took to answer the first request, in milliseconds (when measured).
    pub first_word_ms: Option<i32>,
    /// The call's step template names, in order.
    pub steps: Vec<String>,
    /// The first lookup event's detail (`cache`, `store`, …; `slow: …` notes are skipped).
    pub source: Option<String>,
    /// The last verification event's detail (`method:result`).
    pub verification: Option<String>,
    /// The transfer-end event's detail (`queue hangup after 30 s: served`, …).
    pub transfer_end: Option<String>,
    pub said_goodbye: bool,
    /// The caller left a voicemail that was kept.
    pub left_voicemail: bool,
    /// The caller asked to be called back.
    pub asked_callback: bool,
}

/// The steps at which orderline has told the caller about an order.
const ANSWERING_STEPS: &[&str] = &["menu", "other_orders", "returns"];

impl CallFacts {
    pub fn outcome(&self) -> Outcome {
        if self.transfer.is_some() {
            // Twilio's <Enqueue action> reports QueueResult=hangup when the caller hung up waiting.
            let hung_up_waiting = self.transfer_end.as_deref().is_some_and(|d| d.starts_with("queue hangup"));
            return if hung_up_waiting { Outcome::AbandonedInQueue } else { Outcome::Transferred };
        }
        if self.steps.iter().any(|s| ANSWERING_STEPS.contains(&s.as_str())) {
            Outcome::Answered
        } else if self.said_goodbye {
            Outcome::EndedByOrderline
        } else {
            Outcome::AbandonedInMenu
        }
    }

    /// Honest self-service: answered by orderline, never put through, and no call again from
    /// the same number within the repeat window.
    /// Honest self-service: answered, not put through, no call again, and no voicemail or
    /// call-back left for a person to deal with.
    pub fn resolved(&self) -> bool {
        self.outcome() == Outcome::Answered && !self.called_again && !self.left_voicemail && !self.asked_callback
    }

    pub fn verification_outcome(&self) -> Option<VerificationOutcome> {
        let detail = self.verification.as_deref()?;
        let result = detail.split_once(':').map_or(detail, |(_, r)| r);
        Some(match result {
            "passed" => VerificationOutcome::Passed,
            "failed" => VerificationOutcome::Failed,
            r if r.starts_with("locked") => VerificationOutcome::Locked,
            _ => VerificationOutcome::Unverifiable,
        })
    }

    /// The counts this call adds to its day.
    pub fn figures(&self, calendar: &Calendar) -> Vec<(Figure, String)> {
        let mut out = vec![
            (Figure::Calls, String::new()),
            (Figure::Hour, calendar.hour_of(self.started_at).to_string()),
            (Figure::Outcome, self.outcome().as_str().to_string()),
        ];
        if self.transfer.is_none() {
            out.push((Figure::NeverReachedPerson, String::new()));
        }
        if self.resolved() {
            out.push((Figure::Resolved, String::new()));
        }
        if self.has_caller_id {
            out.push((Figure::WithCallerId, String::new()));
        }
        if self.outcome() == Outcome::AbandonedInMenu {
            let last = self.steps.last().map_or("none", String::as_str);
            out.push((Figure::DropOff, last.to_string()));
        }
        if let Some(v) = self.verification_outcome() {
            out.push((Figure::Verification, v.as_str().to_string()));
        }
        if let Some(reason) = &self.transfer {
            out.push((Figure::TransferReason, reason.clone()));
        }
        if let Some(ms) = self.first_word_ms {
            out.push((Figure::FirstWord, first_word_bucket(ms)));
        }
        if let Some(source) = &self.source {
            out.push((Figure::Source, source.clone()));
        }
        if self.left_voicemail {
            out.push((Figure::Voicemail, String::new()));
        }
        if self.asked_callback {
            out.push((Figure::Callback, String::new()));
        }
        out
    }
}

/// The bucket label a first-word time falls in.
pub fn first_word_bucket(ms: i32) -> String {
    FIRST_WORD_BUCKETS_MS
        .iter()
        .find(|bound| i64::from(ms) <= i64::from(**bound))
        .map_or_else(|| "more".to_string(), |b| b.to_string())
}

/// Days and hours as the line keeps them: in its time zone (ORDERLINE_HOURS_TIMEZONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub timezone: Tz,
}

impl Calendar {
    pub const UTC: Calendar = Calendar { timezone: Tz::UTC };

    pub fn new(timezone: Tz) -> Calendar {
        Calendar { timezone }
    }

    /// The local date of an instant.
    pub fn date_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.timezone).date_naive()
    }

    /// The local hour (0–23) of an instant.
    pub fn hour_of(&self, t: DateTime<Utc>) -> u32 {
        t.with_timezone(&self.timezone).hour()
    }

    /// The instant a local date begins: its midnight, or the first moment after it where a
    /// daylight-saving change skips midnight.
    pub fn start_of(&self, date: NaiveDate) -> DateTime<Utc> {
        (0..=3)
            .filter_map(|h| NaiveTime::from_hms_opt(h, 0, 0))
            .find_map(|time| self.timezone.from_local_datetime(&date.and_time(time)).earliest())
            .map_or_else(|| date.and_time(NaiveTime::MIN).and_utc(), |t| t.with_timezone(&Utc))
    }

    /// The instant the local day holding `t` begins.
    pub fn day_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.start_of(self.date_of(t))
    }

    /// The instant the next local day begins (23, 24 or 25 hours later).
    pub fn next_day(&self, day_start: DateTime<Utc>) -> DateTime<Utc> {
        self.start_of(self.date_of(day_start) + chrono::Duration::days(1))
    }
}

/// The UTC midnight starting a day.
pub fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    Calendar::UTC.day_start(t)
}

/// Monday = 0 … Sunday = 6.
pub fn weekday_of(date: impl Datelike) -> usize {
    date.weekday().num_days_from_monday() as usize
}

/// One day's counts: (figure, label) → calls.
pub type DayCounts = BTreeMap<(Figure, String), i64>;

/// Counts calls into their local days (keyed by the instant each day begins).
pub fn tally<'a>(
    calls: impl IntoIterator<Item = &'a CallFacts>,
    calendar: &Calendar,
) -> BTreeMap<DateTime<Utc>, DayCounts> {
    let mut days: BTreeMap<DateTime<Utc>, DayCounts> = BTreeMap::new();
    for call in calls {
        let day = days.entry(calendar.day_start(call.started_at)).or_default();
        for key in call.figures(calendar) {
            *day.entry(key).or_default() += 1;
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallFacts {
        CallFacts {
            started_at: "2026-06-01T10:30:00Z".parse().unwrap(),
            has_caller_id: true,
            steps: vec!["menu".into()],
            source: Some("cache".into()),
            ..CallFacts::default()
        }
    }

    #[test]
    fn a_caller_told_about_their_order_who_does_not_call_back_is_resolved() {
        let c = call();
        assert_eq!(c.outcome(), Outcome::Answered);
        assert!(c.resolved());
        let again = CallFacts { called_again: true, ..call() };
        assert_eq!(again.outcome(), Outcome::Answered);
        assert!(!again.resolved(), "a call back within the window is not resolved");
        assert!(
            again.figures(&Calendar::UTC).contains(&(Figure::NeverReachedPerson, String::new())),
            "but naive counts it"
        );
    }

    #[test]
    fn outcomes_follow_the_events() {
        let transferred = CallFacts { transfer: Some("asked".into()), ..call() };
        assert_eq!(transferred.outcome(), Outcome::Transferred);
        let queue = CallFacts { transfer_end: Some("queue hangup after 40 s: served".into()), ..transferred };
        assert_eq!(queue.outcome(), Outcome::AbandonedInQueue);
        let menu = CallFacts { steps: vec!["ask_order_number".into()], ..call() };
        assert_eq!(menu.outcome(), Outcome::AbandonedInMenu);
        assert!(menu.figures(&Calendar::UTC).contains(&(Figure::DropOff, "ask_order_number".into())));
        let bye = CallFacts { said_goodbye: true, ..menu };
        assert_eq!(bye.outcome(), Outcome::EndedByOrderline);
    }

    #[test]
    fn first_word_times_fall_in_at_most_buckets() {
        assert_eq!(first_word_bucket(0), "25");
        assert_eq!(first_word_bucket(100), "100");
        assert_eq!(first_word_bucket(101), "150");
        assert_eq!(first_word_bucket(9000), "more");
    }

    #[test]
    fn days_and_hours_are_the_line_s_own() {
        let new_york = Calendar::new(Tz::America__New_York);
        let t: DateTime<Utc> = "2026-06-02T02:30:00Z".parse().unwrap();
        assert_eq!(new_york.date_of(t).to_string(), "2026-06-01");
        assert_eq!(new_york.hour_of(t), 22);
        assert_eq!(new_york.day_start(t).to_rfc3339(), "2026-06-01T04:00:00+00:00");
        // The day daylight saving time starts has 23 hours.
        let spring = new_york.start_of(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
        assert_eq!((new_york.next_day(spring) - spring).num_hours(), 23);
        let tally = tally([&CallFacts { started_at: t, ..call() }], &new_york);
        let counts = &tally[&new_york.day_start(t)];
        assert_eq!(counts.get(&(Figure::Hour, "22".to_string())), Some(&1));
        assert_eq!(Calendar::UTC.hour_of(t), 2);
    }

    #[test]
    fn verification_details_read_their_result() {
        let v = |d: &str| CallFacts { verification: Some(d.into()), ..call() }.verification_outcome();
        assert_eq!(v("caller_id:passed"), Some(VerificationOutcome::Passed));
        assert_eq!(v("postal_code:failed"), Some(VerificationOutcome::Failed));
        assert_eq!(v("postal_code:locked: 5 failures in 24h"), Some(VerificationOutcome::Locked));
        assert_eq!(v("order_number:no postal code on file to check"), Some(VerificationOutcome::Unverifiable));
    }
}
