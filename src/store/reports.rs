//! The reports' SQL: each call's countable facts for a range (its record, whether the same caller
//! called again within the repeat window, the events the reports read), the daily aggregates
//! (`call_days`, rolled up once a day is final) and retention (deleting calls, their events and
//! what else names their callers once their days are rolled up). Never decides what a call
//! counts for (`domain::report` does).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::EventKind;
use crate::domain::report::{Calendar, CallFacts, DayCounts, Figure, tally};

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

/// Counts per day (keyed by the instant the line's day begins), for the days of a report.
pub type ReportCounts = BTreeMap<DateTime<Utc>, DayCounts>;

/// How long after a day ends, beyond the repeat window, before it is rolled up: calls still in
/// progress (a long wait in the queue) finish writing their events.
const SETTLE: chrono::Duration = chrono::Duration::hours(6);

/// Longest a call's events come after its start: Twilio ends a call after 4 hours by default,
/// at most 24 hours when an account raises its limit (twilio.com/docs/voice/twiml/dial,
/// `timeLimit` default 14400 s; twilio.com/en-us/blog/introducing-configurable-call-limits-for-programmable-voice,
/// 2021-08-02: "from just four hours to a whopping 24 hours"); an hour more for late callbacks.
const CALL_SPAN: chrono::Duration = chrono::Duration::hours(25);

/// The event kinds the reports read.
const KINDS: [EventKind; 7] = [
    EventKind::Step,
    EventKind::Lookup,
    EventKind::Verification,
    EventKind::TransferEnd,
    EventKind::Goodbye,
    EventKind::Voicemail,
    EventKind::Callback,
];

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub calls: u64,
    pub events: u64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Store {
    /// Counts per day for the whole days in `[from, to)`: the daily aggregates for the days
    /// rolled up (one query), the calls themselves for the rest (two).
    pub async fn report_counts(
        &self,
        shop: &str,
        from: Ts,
        to: Ts,
        repeat_window: Duration,
        calendar: &Calendar,
    ) -> Result<ReportCounts, StoreError> {
        let rolled = on_backend!(self, rolled_through(shop))?;
        let split = rolled.map_or(from, |r| r.clamp(from, to));
        let mut counts = ReportCounts::new();
        if split > from {
            for (day, figure, label, n) in on_backend!(self, stored_days(shop, from, split))? {
                if let Some(figure) = Figure::parse(&figure) {
                    counts.entry(day.0).or_default().insert((figure, label), n);
                }
            }
        }
        if to > split {
            let facts = self.call_facts(shop, split, to, repeat_window).await?;
            counts.extend(tally(&facts, calendar));
        }
        Ok(counts)
    }

    /// The countable facts of the calls started in `[from, to)`.
    pub async fn call_facts(
        &self,
        shop: &str,
        from: Ts,
        to: Ts,
        repeat_window: Duration,
    ) -> Result<Vec<CallFacts>, StoreError> {
        Ok(on_backend!(self, facts(shop, from, to, micros(repeat_window)))?)
    }

    /// Rolls every final day not yet rolled up into `call_days` (a day is final once the repeat
    /// window and a settling time have passed since it ended); returns how many days it rolled.
    /// Each day is one transaction, so a pass cut short resumes where it stopped.
    pub async fn roll_up_days(
        &self,
        shop: &str,
        now: Ts,
        repeat_window: Duration,
        calendar: &Calendar,
    ) -> Result<u32, StoreError> {
        let window = chrono::Duration::from_std(repeat_window).unwrap_or(chrono::Duration::days(3));
        let final_before = calendar.day_start(now.0 - window - SETTLE);
        let start = match on_backend!(self, rolled_through(shop))? {
            Some(through) => through.0,
            None => match on_backend!(self, first_call(shop))? {
                Some(first) => calendar.day_start(first.0),
                None => return Ok(0),
            },
        };
        let mut day = start;
        let mut rolled = 0;
        while calendar.next_day(day) <= final_before {
            let next = calendar.next_day(day);
            let facts = self.call_facts(shop, Ts(day), Ts(next), repeat_window).await?;
            let counts: DayCounts = tally(&facts, calendar).into_values().flatten().collect();
            let rows: Vec<(String, String, i64)> =
                counts.into_iter().map(|((f, label), n)| (f.as_str().to_string(), label, n)).collect();
            on_backend!(self, store_day(shop, Ts(day), Ts(next), &rows))?;
            rolled += 1;
            day = next;
        }
        Ok(rolled)
    }

    /// The first day not yet rolled up (every day before it is in the daily aggregates).
    pub async fn rolled_through(&self, shop: &str) -> Result<Option<Ts>, StoreError> {
        Ok(on_backend!(self, rolled_through(shop))?)
    }

    /// Deletes the calls started before `before`, and their events, but never a day not yet
    /// rolled up: the aggregates keep what the reports need.
    pub async fn purge_calls_before(&self, shop: &str, before: Ts) -> Result<Purged, StoreError> {
        let Some(rolled) = on_backend!(self, rolled_through(shop))? else { return Ok(Purged::default()) };
        let cutoff = before.min(rolled);
        Ok(on_backend!(self, purge(shop, cutoff))?)
    }
}

#[derive(sqlx::FromRow)]
struct CallLine {
    call_sid: String,
    started_at: Ts,
    transfer: Option<String>,
    has_caller_id: bool,
    first_word_ms: Option<i32>,
    /// The same number's next call, if any within the window's reach.
    next_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
struct EventLine {
    call_sid: String,
    step: i32,
    idx: i32,
    kind: String,
    detail: String,
}

/// The facts of `calls` from their events (any order; events of other calls are ignored).
fn facts_of(calls: Vec<CallLine>, mut events: Vec<EventLine>, window: chrono::Duration) -> Vec<CallFacts> {
    let mut index = HashMap::with_capacity(calls.len());
    let mut out = Vec::with_capacity(calls.len());
    for (i, c) in calls.into_iter().enumerate() {
        index.insert(c.call_sid, i);
        let called_again =
            c.has_caller_id && c.next_at.is_some_and(|n| n > c.started_at && n.0 <= c.started_at.0 + window);
        out.push(CallFacts {
            started_at: c.started_at.0,
            transfer: c.transfer,
            has_caller_id: c.has_caller_id,
            called_again,
            first_word_ms: c.first_word_ms,
            ..CallFacts::default()
        });
    }
    events.retain(|e| index.contains_key(&e.call_sid));
    events.sort_unstable_by(|a, b| (&a.call_sid, a.step, a.idx).cmp(&(&b.call_sid, b.step, b.idx)));
    for e in events {
        let Some(call) = index.get(&e.call_sid).map(|&i| &mut out[i]) else { continue };
        match EventKind::parse(&e.kind) {
            Some(EventKind::Step) => call.steps.push(e.detail),
            Some(EventKind::Lookup) if call.source.is_none() && !e.detail.starts_with("slow") => {
                call.source = Some(e.detail)
            }
            Some(EventKind::Verification) => call.verification = Some(e.detail),
            Some(EventKind::TransferEnd) if call.transfer_end.is_none() => call.transfer_end = Some(e.detail),
            Some(EventKind::Goodbye) => call.said_goodbye = true,
            Some(EventKind::Voicemail) if e.detail.starts_with("left ") => call.left_voicemail = true,
            Some(EventKind::Callback) if e.detail.starts_with("requested") => call.asked_callback = true,
            _ => {}
        }
    }
    out
}

// The SQL, in reports/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "reports"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/reports/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "reports"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/reports/sql.rs
    pub(crate) use sql::*;
}
