//! What happens after the caller is handed to a person: Twilio's `<Dial action>`
//! (`POST /twilio/voice/dial-ended`, with `DialCallStatus`), `<Enqueue action>`
//! (`POST /twilio/voice/queue-ended`, with `QueueResult`) and the queue's `waitUrl`
//! (`POST /twilio/voice/queue-wait`, with `QueuePosition`, `QueueTime`, `AvgQueueTime`). An
//! answered transfer ends quietly; every other outcome ends in words, never in silence. Holds no
//! call flow of its own and never answers 5xx.
//!
//! Sources: twilio.com/docs/voice/twiml/dial#action ("DialCallStatus: completed, answered, busy,
//! no-answer, failed, canceled"), twilio.com/docs/voice/twiml/enqueue#action (QueueResult:
//! bridged, bridging-in-process, error, hangup, leave, redirected, redirected-from-bridged,
//! queue-full, system-shutdown) and #waiturl (QueuePosition, QueueSid, QueueTime, AvgQueueTime,
//! CurrentQueueSize, MaxQueueSize; the waitUrl document may use Play, Say, Pause, Hangup,
//! Redirect, Leave and Gather, and is requested again when it ends).

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde::Serialize;

use super::call::{VoiceCall, events};
use super::request::TwilioRequest;
use super::voice::{fallback, twiml};
use crate::app::AppState;
use crate::config::VoicemailOffer;
use crate::domain::{Event, EventStep, VoicemailReason};
use crate::store::Ts;

pub const DIAL_ENDED_PATH: &str = "/twilio/voice/dial-ended";
pub const QUEUE_ENDED_PATH: &str = "/twilio/voice/queue-ended";
pub const QUEUE_WAIT_PATH: &str = "/twilio/voice/queue-wait";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(DIAL_ENDED_PATH, post(dial_ended))
        .route(QUEUE_ENDED_PATH, post(queue_ended))
        .route(QUEUE_WAIT_PATH, post(queue_wait))
}

/// How a transfer ended, as the caller will hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEnd {
    /// Someone took the call and it is over (or the caller already hung up): nothing more to say.
    Served,
    /// The person's line was busy.
    Busy,
    /// Nobody picked up in time.
    NoAnswer,
    /// The queue had no room.
    QueueFull,
    /// The caller waited ORDERLINE_QUEUE_MAX_WAIT and nobody came.
    WaitedTooLong,
    /// The call could not be put through (failed, canceled, an error at Twilio, an unknown result).
    NotConnected,
}

impl TransferEnd {
    /// `<Dial action>`'s `DialCallStatus`.
    pub fn of_dial(status: &str) -> TransferEnd {
        match status.trim().to_ascii_lowercase().as_str() {
            "completed" | "answered" => TransferEnd::Served,
            "busy" => TransferEnd::Busy,
            "no-answer" => TransferEnd::NoAnswer,
            // failed, canceled, and anything Twilio adds later.
            _ => TransferEnd::NotConnected,
        }
    }

    /// `<Enqueue action>`'s `QueueResult`. `leave` comes only from the `<Leave/>` the wait
    /// document gives once the maximum wait has passed.
    pub fn of_queue(result: &str) -> TransferEnd {
        match result.trim().to_ascii_lowercase().as_str() {
            "bridged" | "bridging-in-process" | "redirected" | "redirected-from-bridged" | "hangup" => {
                TransferEnd::Served
            }
            "leave" => TransferEnd::WaitedTooLong,
            "queue-full" => TransferEnd::QueueFull,
            // error, system-shutdown, and anything Twilio adds later.
            _ => TransferEnd::NotConnected,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferEnd::Served => "served",
            TransferEnd::Busy => "busy",
            TransferEnd::NoAnswer => "no_answer",
            TransferEnd::QueueFull => "queue_full",
            TransferEnd::WaitedTooLong => "waited_too_long",
            TransferEnd::NotConnected => "not_connected",
        }
    }

    pub const ALL: [TransferEnd; 6] = [
        TransferEnd::Served,
        TransferEnd::Busy,
        TransferEnd::NoAnswer,
        TransferEnd::QueueFull,
        TransferEnd::WaitedTooLong,
        TransferEnd::NotConnected,
    ];
}

/// The facts `transfer_ended.xml` speaks.
#[derive(Debug, Clone, Serialize)]
pub struct TransferEndView {
    pub outcome: TransferEnd,
    /// "Monday at 9 AM" when the line is closed now; None while it is open (try again soon).
    pub back_at: Option<String>,
    /// The caller may leave a message (ORDERLINE_VOICEMAIL is not `off`).
    pub voicemail: bool,
}

/// The facts `queue_wait.xml` speaks, from Twilio's waitUrl parameters.
#[derive(Debug, Clone, Serialize, Default)]
pub struct QueueWaitView {
    /// The caller has waited the maximum: leave the queue (its action says goodbye).
    pub leave: bool,
    /// 1 is next in line.
    pub position: Option<u32>,
    /// Whole minutes, rounded up, at least 1; None when Twilio has no average yet.
    pub expected_minutes: Option<u64>,
    pub music_url: String,
    /// 1 asks for a call-back (ORDERLINE_CALLBACK, a number to call back), sent to `callback_action`.
    pub callback: bool,
    pub callback_action: String,
}

impl QueueWaitView {
    /// `queue_time_s` and `avg_queue_time_s` as Twilio sends them; the expected wait is the
    /// queue's average less what this caller has waited, never past the maximum wait.
    pub fn of(
        position: Option<u32>,
        queue_time_s: u64,
        avg_queue_time_s: Option<u64>,
        max_wait_s: u64,
        music_url: &str,
    ) -> Self {
        if queue_time_s >= max_wait_s {
            return QueueWaitView { leave: true, ..QueueWaitView::default() };
        }
        let left = max_wait_s - queue_time_s;
        let expected = avg_queue_time_s
            .filter(|avg| *avg > 0)
            .map(|avg| avg.saturating_sub(queue_time_s).clamp(30, left.max(30)).div_ceil(60));
        QueueWaitView {
            leave: false,
            position: position.filter(|p| *p > 0),
            expected_minutes: expected,
            music_url: music_url.into(),
            callback: false,
            callback_action: String::new(),
        }
    }
}

fn number(req: &TwilioRequest, name: &str) -> Option<u64> {
    req.param(name).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64)
}

async fn dial_ended(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let status = req.param("DialCallStatus").unwrap_or("").to_string();
    let detail = match number(&req, "DialCallDuration") {
        Some(d) => format!("dial {status} after {d} s"),
        None => format!("dial {status}"),
    };
    ended(&state, &req, TransferEnd::of_dial(&status), detail)
}

async fn queue_ended(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let result = req.param("QueueResult").unwrap_or("").to_string();
    let detail = match number(&req, "QueueTime") {
        Some(t) => format!("queue {result} after {t} s"),
        None => format!("queue {result}"),
    };
    ended(&state, &req, TransferEnd::of_queue(&result), detail)
}

fn ended(state: &AppState, req: &TwilioRequest, outcome: TransferEnd, detail: String) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(req) {
        Ok(call) => call,
        Err(why) => return fallback(state, req, None, 0, &why, started),
    };
    let now = state.clock.now();
    let language = super::call::language_of(state, req);
    let hours = &state.settings.handoff.business_hours;
    let back_at = if hours.is_open(now) { None } else { hours.say_next_opening_in(now, language) };
    let voicemail = state.settings.handoff.voicemail != VoicemailOffer::Off && outcome != TransferEnd::Served;
    let view = TransferEndView { outcome, back_at, voicemail };
    match state.renderer.in_language(Some(language)).transfer_ended(&view) {
        Ok(xml) => {
            let mut ended = vec![Event::TransferEnd(format!("{detail}: {}", outcome.as_str()))];
            if voicemail {
                let reason = match outcome {
                    TransferEnd::QueueFull | TransferEnd::WaitedTooLong => VoicemailReason::QueueLeft,
                    _ => VoicemailReason::Unanswered,
                };
                ended.push(Event::Voicemail(format!("offered: {reason}")));
            }
            state.recorder.record(events(&call, EventStep::TransferEnd, Ts::from(now), ended));
            state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
            twiml(xml)
        }
        Err(e) => fallback(state, req, Some(&call), 0, &e.to_string(), started),
    }
}

async fn queue_wait(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let position = number(&req, "QueuePosition").and_then(|p| u32::try_from(p).ok());
    let mut view = QueueWaitView::of(
        position,
        number(&req, "QueueTime").unwrap_or(0),
        number(&req, "AvgQueueTime"),
        state.settings.handoff.queue_max_wait.as_secs(),
        &state.settings.handoff.hold_music_url,
    );
    // A call-back needs a number to call: never offered to a withheld caller.
    let from = req.param("From").unwrap_or_default();
    if !view.leave
        && super::callback::offered(&state)
        && crate::domain::PhoneNumber::parse(from, Some(&state.settings.lookup.default_region)).is_ok()
    {
        view.callback = true;
        let expected_wait_s = view.expected_minutes.map(|m| m * 60);
        let action = super::callback::queue_action(&state, view.position, expected_wait_s);
        view.callback_action = super::call::with_language(&state, &action, super::call::language_of(&state, &req));
    }
    let renderer = state.renderer.in_language(Some(super::call::language_of(&state, &req)));
    let xml = renderer.queue_wait(&view).unwrap_or_else(|e| {
        // The caller stays in the queue either way; without words they hear the music.
        tracing::error!(error = %e, "the queue_wait template failed");
        let mut music = String::new();
        let _ = super::xml_text::escape_into(&mut music, &view.music_url);
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Play>{music}</Play></Response>")
    });
    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dial_status_leads_somewhere() {
        assert_eq!(TransferEnd::of_dial("completed"), TransferEnd::Served);
        assert_eq!(TransferEnd::of_dial("answered"), TransferEnd::Served);
        assert_eq!(TransferEnd::of_dial("busy"), TransferEnd::Busy);
        assert_eq!(TransferEnd::of_dial("no-answer"), TransferEnd::NoAnswer);
        assert_eq!(TransferEnd::of_dial("failed"), TransferEnd::NotConnected);
        assert_eq!(TransferEnd::of_dial("canceled"), TransferEnd::NotConnected);
        assert_eq!(TransferEnd::of_dial(""), TransferEnd::NotConnected);
    }

    #[test]
    fn every_queue_result_leads_somewhere() {
        for served in ["bridged", "bridging-in-process", "redirected", "redirected-from-bridged", "hangup"] {
            assert_eq!(TransferEnd::of_queue(served), TransferEnd::Served, "{served}");
        }
        assert_eq!(TransferEnd::of_queue("leave"), TransferEnd::WaitedTooLong);
        assert_eq!(TransferEnd::of_queue("queue-full"), TransferEnd::QueueFull);
        for failed in ["error", "system-shutdown", "something-new"] {
            assert_eq!(TransferEnd::of_queue(failed), TransferEnd::NotConnected, "{failed}");
        }
    }

    #[test]
    fn the_wait_is_the_average_left_and_never_past_the_maximum() {
        let v = QueueWaitView::of(Some(3), 60, Some(240), 300, "m");
        assert_eq!((v.leave, v.position, v.expected_minutes), (false, Some(3), Some(3)));
        // Waited longer than the average: "about a minute", not zero or negative.
        assert_eq!(QueueWaitView::of(Some(1), 200, Some(100), 300, "m").expected_minutes, Some(1));
        // The average would pass the maximum wait: capped at what is left.
        assert_eq!(QueueWaitView::of(Some(9), 60, Some(3000), 300, "m").expected_minutes, Some(4));
        assert_eq!(QueueWaitView::of(Some(1), 0, None, 300, "m").expected_minutes, None);
        assert!(QueueWaitView::of(Some(1), 300, Some(10), 300, "m").leave);
    }
}
