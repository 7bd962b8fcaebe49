//! Voicemail on Twilio: the three requests a `<Record>` makes. Its `action`
//! (`POST /twilio/voicemail/recorded`, with `RecordingSid`, `RecordingUrl`, `RecordingDuration`,
//! `Digits`) answers the caller; its `recordingStatusCallback` (`POST /twilio/voicemail/recording`,
//! with `RecordingStatus`) and its `transcribeCallback` (`POST /twilio/voicemail/transcription`,
//! with `TranscriptionText`, `TranscriptionStatus`) only write. Each is signed like every Twilio
//! request. The message is stored with what the call record says of the caller (customer,
//! verification, the order they heard about); one of a second or less is discarded.
//!
//! Sources (read 2026-12-04): twilio.com/docs/voice/twiml/record (action parameters
//! `RecordingUrl`, `RecordingDuration`, `RecordingSid`, `Digits`; "if Twilio receives an empty
//! recording, it will not make a request to the action URL"; recordingStatusCallback parameters
//! `AccountSid`, `CallSid`, `RecordingSid`, `RecordingUrl`, `RecordingStatus`,
//! `RecordingDuration`; transcribeCallback parameters `TranscriptionSid`, `TranscriptionText`,
//! `TranscriptionStatus`, `TranscriptionUrl`, `RecordingSid`, `RecordingUrl`);
//! twilio.com/docs/voice/api/recording-transcription (transcriptions only of `<Record>`
//! recordings of at most two minutes; status `in-progress`, `completed`, `failed`).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::call::{VoiceCall, events};
use super::public_url::PublicUrl;
use super::render::RecordUrls;
use super::request::TwilioRequest;
use super::voice::twiml;
use crate::app::AppState;
use crate::config::Settings;
use crate::domain::{Event, EventKind, EventStep, ShopifyId, Verification, VoicemailReason, mask_pii};
use crate::store::{NewVoicemail, StoreError, Ts};

pub const RECORDED_PATH: &str = "/twilio/voicemail/recorded";
pub const RECORDING_PATH: &str = "/twilio/voicemail/recording";
pub const TRANSCRIPTION_PATH: &str = "/twilio/voicemail/transcription";

/// How often, and after how long each, a call not yet written by the recorder is looked for
/// again (the recorder batches call records; a message can come right after the step that
/// offered it).
const UNKNOWN_CALL_RETRIES: u32 = 5;
const UNKNOWN_CALL_WAIT: Duration = Duration::from_millis(200);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(RECORDED_PATH, post(recorded))
        .route(RECORDING_PATH, post(recording_status))
        .route(TRANSCRIPTION_PATH, post(transcription))
}

/// The `<Record>` URLs and length the settings give (the templates' `record`).
pub fn record_urls(settings: &Settings) -> RecordUrls {
    let public = PublicUrl::new(&settings.server.public_url);
    RecordUrls {
        action: public.to(RECORDED_PATH),
        status_callback: public.to(RECORDING_PATH),
        transcribe_callback: public.to(TRANSCRIPTION_PATH),
        max_length: settings.handoff.voicemail_max_length.as_secs(),
    }
}

/// A recording as Twilio reports it, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub call_sid: String,
    /// `RE` and 32 hex digits.
    pub sid: String,
    pub url: String,
    pub duration_s: i32,
}

impl Recording {
    pub fn parse(req: &TwilioRequest) -> Result<Recording, String> {
        let call_sid = req.param("CallSid").map(str::trim).unwrap_or_default();
        if call_sid.is_empty() || call_sid.len() > 64 || !call_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("no CallSid in a recording request".into());
        }
        let sid = req.param("RecordingSid").map(str::trim).unwrap_or_default();
        if !is_recording_sid(sid) {
            return Err("no RecordingSid (RE and 32 hex digits) in a recording request".into());
        }
        let url = req.param("RecordingUrl").map(str::trim).unwrap_or_default();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
            return Err("no RecordingUrl in a recording request".into());
        }
        let duration = req.param("RecordingDuration").map(str::trim).unwrap_or_default();
        let Ok(duration_s) = duration.parse::<i32>() else {
            return Err(format!("RecordingDuration {duration:?} is not a number of seconds"));
        };
        if duration_s < 0 {
            return Err("RecordingDuration is negative".into());
        }
        Ok(Recording { call_sid: call_sid.into(), sid: sid.into(), url: url.into(), duration_s })
    }
}

/// The `reason` the `<Record>` URLs carry in their query.
fn reason_of(req: &TwilioRequest) -> Option<VoicemailReason> {
    req.query.iter().find(|(n, _)| n == "reason").and_then(|(_, v)| VoicemailReason::parse(v))
}

pub fn is_recording_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("RE") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Stored,
    TooShort,
    UnknownCall,
}

/// Stores the message with what the call record says of the caller.
async fn keep(state: &AppState, recording: &Recording, reason: Option<VoicemailReason>) -> Result<Kept, StoreError> {
    if recording.duration_s < crate::store::VOICEMAIL_MIN_SECONDS {
        return Ok(Kept::TooShort);
    }
    // The step that offered voicemail may still be in this instance's write batch; another
    // instance's is written within moments (looked for again below).
    state.recorder.flush().await;
    let mut call = state.store.call(&recording.call_sid).await?;
    for _ in 0..UNKNOWN_CALL_RETRIES {
        if call.is_some() {
            break;
        }
        tokio::time::sleep(UNKNOWN_CALL_WAIT).await;
        call = state.store.call(&recording.call_sid).await?;
    }
    let Some(call) = call else { return Ok(Kept::UnknownCall) };
    let call_events = state.store.call_events(&call.call_sid).await?;
    let is = |kind: EventKind| move |e: &&crate::store::CallEventRow| e.kind == kind.as_str();
    // Why it was offered: the `<Record>` URLs carry it; else the call record's event.
    let reason = reason.map(|r| r.as_str().to_string()).or_else(|| {
        call_events
            .iter()
            .rev()
            .filter(is(EventKind::Voicemail))
            .find_map(|e| e.detail.strip_prefix("offered: ").map(str::to_string))
    });
    // The order the caller heard about: the one keyed in, else (verified, at the menu) the
    // customer's latest.
    let keyed = call_events.iter().rev().find(is(EventKind::Order)).map(|e| e.detail.clone());
    let heard_menu = call_events.iter().any(|e| e.kind == EventKind::Step.as_str() && e.detail == "menu");
    let verified =
        call.verification.as_deref().and_then(Verification::parse).is_some_and(|v| v != Verification::Failed);
    let order_name = match (keyed, call.customer_id) {
        (Some(name), _) => Some(name),
        (None, Some(customer)) if heard_menu && verified => {
            state.store.recent_orders(&call.shop, ShopifyId(customer), 1).await?.into_iter().next().map(|o| o.name)
        }
        _ => None,
    };
    let voicemail = NewVoicemail {
        recording_sid: recording.sid.clone(),
        call_sid: call.call_sid.clone(),
        shop: call.shop.clone(),
        from_number: call.from_e164.clone().unwrap_or_else(|| call.from_raw.clone()),
        customer_id: call.customer_id,
        verification: call.verification.clone(),
        order_name,
        reason,
        duration_s: recording.duration_s,
        recording_url: recording.url.clone(),
    };
    let now = Ts::from(state.clock.now());
    if !state.store.save_voicemail(&voicemail, now).await? {
        return Ok(Kept::TooShort);
    }
    if state.settings.agents.notify().is_some()
        && let Err(e) = state.store.queue_notification(&call.call_sid, crate::agent::notify::VOICEMAIL, now).await
    {
        tracing::warn!(error = %e, "could not queue the voicemail's notification");
    }
    Ok(Kept::Stored)
}

/// The `<Record>` action: thanks the caller (or says no message was heard) and hangs up. Never
/// answers 5xx: a message that cannot be stored now is stored by the status callback, which
/// Twilio sends as well.
async fn recorded(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = VoiceCall::parse(&req).ok();
    let kept = match Recording::parse(&req) {
        Ok(recording) => match keep(&state, &recording, reason_of(&req)).await {
            Ok(kept) => Some((recording, kept)),
            Err(e) => {
                tracing::error!(error = %e, "could not store a voicemail; its status callback may");
                Some((recording, Kept::Stored))
            }
        },
        Err(why) => {
            tracing::warn!(error = %mask_pii(&why), "a Record action without a usable recording");
            None
        }
    };
    let said = matches!(kept, Some((_, Kept::Stored | Kept::UnknownCall)));
    if let (Some(call), Some((recording, kept))) = (&call, &kept) {
        let detail = match kept {
            Kept::TooShort => format!("none left ({} s)", recording.duration_s),
            _ => format!("left {} ({} s)", recording.sid, recording.duration_s),
        };
        let now = Ts::from(state.clock.now());
        state.recorder.record(events(call, EventStep::Voicemail, now, vec![Event::Voicemail(detail)]));
    }
    let language = super::call::language_of(&state, &req);
    let xml = state.renderer.in_language(Some(language)).voicemail_left(said).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the voicemail_left template failed");
        super::render::LAST_RESORT.to_string()
    });
    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// The recording status callback: stores a completed message Twilio reports (the action may
/// not have). 400 for a request that is not a recording's, 404 for a call orderline never saw;
/// nothing stored for either.
async fn recording_status(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(error = %why, "recording status callback refused");
        state.metrics.twilio_request("recording", "bad_request", started.elapsed().as_secs_f64());
        (status, format!("{why}\n")).into_response()
    };
    let recording = match Recording::parse(&req) {
        Ok(recording) => recording,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    // `in-progress` and `absent` (no audio) carry no message.
    if req.param("RecordingStatus").map(str::trim) != Some("completed") {
        state.metrics.twilio_request("recording", "answered", started.elapsed().as_secs_f64());
        return StatusCode::NO_CONTENT.into_response();
    }
    match keep(&state, &recording, reason_of(&req)).await {
        Ok(Kept::Stored | Kept::TooShort) => {
            state.metrics.twilio_request("recording", "answered", started.elapsed().as_secs_f64());
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Kept::UnknownCall) => refuse(StatusCode::NOT_FOUND, "no call with this CallSid came to orderline"),
        Err(e) => {
            tracing::error!(error = %e, "could not store a voicemail");
            state.metrics.twilio_request("recording", "error", started.elapsed().as_secs_f64());
            (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable\n").into_response()
        }
    }
}

/// The transcription callback: the message's words. 404 for a recording orderline did not keep.
async fn transcription(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(error = %why, "transcription callback refused");
        state.metrics.twilio_request("transcription", "bad_request", started.elapsed().as_secs_f64());
        (status, format!("{why}\n")).into_response()
    };
    let sid = req.param("RecordingSid").map(str::trim).unwrap_or_default();
    if !is_recording_sid(sid) {
        return refuse(StatusCode::BAD_REQUEST, "no RecordingSid (RE and 32 hex digits) in a transcription callback");
    }
    let status = req.param("TranscriptionStatus").map(str::trim).unwrap_or_default();
    if !matches!(status, "completed" | "failed") {
        return refuse(StatusCode::BAD_REQUEST, "TranscriptionStatus is neither completed nor failed");
    }
    // Twilio's transcriptions are short (two minutes of speech); anything longer is cut.
    let text: Option<String> = (status == "completed")
        .then(|| req.param("TranscriptionText").unwrap_or_default().trim().chars().take(4000).collect())
        .filter(|t: &String| !t.is_empty());
    match state.store.voicemail_transcription(sid, text.as_deref(), status).await {
        Ok(Some(_)) => {
            state.metrics.twilio_request("transcription", "answered", started.elapsed().as_secs_f64());
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no voicemail with this RecordingSid was kept by orderline"),
        Err(e) => {
            tracing::error!(error = %e, "could not store a transcription");
            state.metrics.twilio_request("transcription", "error", started.elapsed().as_secs_f64());
            (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable\n").into_response()
        }
    }
}
