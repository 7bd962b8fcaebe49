//! Call-back instead of waiting, on Twilio. In the queue (ORDERLINE_CALLBACK), the wait document
//! offers "press 1 and we'll call you back"; the key comes to `POST /twilio/voice/queue-callback`,
//! which keeps the request (the calling number only, never a withheld one) and says goodbye. An
//! agent's click (or, with TaskRouter, the task when the caller's turn comes; and the retry task)
//! places the call through the REST API (`Calls`); when the
//! customer answers, Twilio asks `POST /twilio/callback/answer` and hears who is calling before
//! being put through as ORDERLINE_TRANSFER_TO says, in the language the caller was hearing when
//! they asked; `POST /twilio/callback/status` learns how an unanswered call ended and schedules
//! the next attempt, until ORDERLINE_CALLBACK_ATTEMPTS. With answering-machine detection
//! (ORDERLINE_CALLBACK_MACHINE_DETECTION) a voicemail box or fax machine is never put through: the
//! box hears a short message after its beep, and the attempt counts as unanswered.
//!
//! Sources (read 2026-12-04): twilio.com/docs/voice/twiml/enqueue#waiturl (the wait document may
//! use Gather); twilio.com/docs/voice/api/call-resource (create with `To`, `From`, `Url`,
//! `StatusCallback`; `CallStatus` queued, ringing, in-progress, completed, busy, failed,
//! no-answer, canceled; the status callback is sent when the call completes by default).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use tokio::sync::watch;

use super::call::{VoiceCall, events, transfer_view_for};
use super::public_url::PublicUrl;
use super::request::TwilioRequest;
use super::voice::twiml;
use crate::app::AppState;
use crate::domain::{Event, EventStep, Language, PhoneNumber, Verification, Verified, mask_phone, mask_pii};
use crate::ivr::CallContext;
use crate::store::{CallbackRow, NewCallback, StoreError, Ts, callback_status};

pub const QUEUE_CALLBACK_PATH: &str = "/twilio/voice/queue-callback";
pub const ANSWER_PATH: &str = "/twilio/callback/answer";
pub const STATUS_PATH: &str = "/twilio/callback/status";

/// How often the retry task looks for call-backs due.
const POLL: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(QUEUE_CALLBACK_PATH, post(queue_callback))
        .route(ANSWER_PATH, post(answer))
        .route(STATUS_PATH, post(status))
}

/// Whether the queue offers call-backs: ORDERLINE_CALLBACK on and the REST API configured.
pub fn offered(state: &AppState) -> bool {
    state.settings.handoff.callback && state.twilio_rest.is_some()
}

/// Where the wait document's Gather sends the key: the caller's place and the expected wait (in
/// seconds) ride in the query.
pub fn queue_action(state: &AppState, position: Option<u32>, expected_wait_s: Option<u64>) -> String {
    let urls = PublicUrl::new(&state.settings.server.public_url);
    let mut query = Vec::new();
    if let Some(p) = position {
        query.push(format!("p={p}"));
    }
    if let Some(w) = expected_wait_s {
        query.push(format!("w={w}"));
    }
    if query.is_empty() {
        urls.to(QUEUE_CALLBACK_PATH)
    } else {
        urls.to(&format!("{QUEUE_CALLBACK_PATH}?{}", query.join("&")))
    }
}

/// What `callback_requested.xml` says.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackRequestedView {
    /// `requested`, `withheld` (no number to call back) or `unavailable` (not stored).
    pub request: &'static str,
    /// Back to the wait document, when the caller stays in the queue.
    pub wait_url: String,
}

/// The key pressed in the queue: 1 asks for a call-back (anything else: back to waiting).
async fn queue_callback(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let language = super::call::language_of(&state, &req);
    let wait_url = PublicUrl::new(&state.settings.server.public_url).to(super::transfer_end::QUEUE_WAIT_PATH);
    let wait_url = super::call::with_language(&state, &wait_url, language);
    let call = VoiceCall::parse(&req).ok();
    let pressed_1 = req.param("Digits").map(str::trim) == Some("1");
    let outcome = match (&call, pressed_1 && offered(&state)) {
        (Some(call), true) => match PhoneNumber::parse(&call.from, Some(&state.settings.lookup.default_region)) {
            Ok(number) => match take_request(&state, call, number.as_str(), language, &req).await {
                Ok(()) => "requested",
                Err(e) => {
                    tracing::error!(error = %e, "could not keep a call-back request; the caller stays in the queue");
                    "unavailable"
                }
            },
            Err(_) => "withheld",
        },
        _ => "",
    };
    let xml = if outcome.is_empty() {
        redirect(&wait_url)
    } else {
        let view = CallbackRequestedView { request: outcome, wait_url: wait_url.clone() };
        state.renderer.in_language(Some(language)).callback_requested(&view).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the callback_requested template failed");
            redirect(&wait_url)
        })
    };
    state.metrics.twilio_request("queue-callback", "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

fn redirect(url: &str) -> String {
    let mut escaped = String::new();
    let _ = super::xml_text::escape_into(&mut escaped, url);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Redirect method=\"POST\">{escaped}</Redirect></Response>"
    )
}

async fn take_request(
    state: &AppState,
    call: &VoiceCall,
    number: &str,
    language: Language,
    req: &TwilioRequest,
) -> Result<(), StoreError> {
    let position = req.query.iter().find(|(n, _)| n == "p").and_then(|(_, v)| v.parse::<i32>().ok());
    // The transfer that put the caller in the queue may still be in this instance's write batch.
    state.recorder.flush().await;
    let row = state.store.call(&call.call_sid).await?;
    let request = NewCallback {
        call_sid: call.call_sid.clone(),
        shop: state.settings.shopify.shop.clone().unwrap_or_default(),
        to_number: number.to_string(),
        from_number: call.to.clone(),
        customer_id: row.as_ref().and_then(|r| r.customer_id),
        reason: row.as_ref().and_then(|r| r.transfer.clone()),
        position,
        language: Some(language.code().to_string()),
    };
    let now = Ts::from(state.clock.now());
    // With TaskRouter, nobody has to click: the call is placed when the caller's turn would have
    // come (the queue's expected wait), and the workflow gives them, with priority, to the next
    // free agent.
    let place_at = state.settings.handoff.taskrouter_workflow_sid.as_ref().map(|_| {
        let wait = req.query.iter().find(|(n, _)| n == "w").and_then(|(_, v)| v.parse::<i64>().ok()).unwrap_or(0);
        Ts::from(state.clock.now() + chrono::Duration::seconds(wait.clamp(0, 4 * 3600)))
    });
    if state.store.request_callback(&request, place_at, now).await? {
        let place = position.map(|p| format!(" at place {p}")).unwrap_or_default();
        let happened = vec![Event::Callback(format!("requested{place}"))];
        state.recorder.record(events(call, EventStep::Callback(0), now, happened));
        if state.settings.agents.notify().is_some()
            && let Err(e) = state.store.queue_notification(&call.call_sid, crate::agent::notify::CALLBACK, now).await
        {
            tracing::warn!(error = %e, "could not queue the call-back's notification");
        }
        tracing::info!(to = %mask_phone(number), "call-back requested");
    }
    Ok(())
}

/// Why a call-back was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("no such call-back")]
    Unknown,
    #[error("this call-back is not waiting for a call (it is {0})")]
    NotWaiting(String),
    #[error(
        "the Twilio REST API is not configured: set TWILIO_ACCOUNT_SID with TWILIO_API_KEY/TWILIO_API_SECRET or TWILIO_AUTH_TOKEN"
    )]
    NoRestApi,
    #[error("no number to call from: set TWILIO_PHONE_NUMBER")]
    NoFromNumber,
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Places the call-back's next attempt. Twilio's answer (or its refusal) is kept; a refusal
/// counts as a failed attempt.
pub async fn place(state: &AppState, call_sid: &str, by: Option<&str>) -> Result<CallbackRow, PlaceError> {
    let rest = state.twilio_rest.as_ref().ok_or(PlaceError::NoRestApi)?;
    let now = Ts::from(state.clock.now());
    let Some(row) = state.store.claim_callback(call_sid, by, now).await? else {
        return match state.store.callback(call_sid).await? {
            Some(row) => Err(PlaceError::NotWaiting(row.status)),
            None => Err(PlaceError::Unknown),
        };
    };
    let Some(from) = row.from_number.clone().or_else(|| state.settings.twilio.phone_number.clone()) else {
        state.store.callback_attempt_failed(call_sid, "no number to call from", None, now).await?;
        return Err(PlaceError::NoFromNumber);
    };
    let urls = PublicUrl::new(&state.settings.server.public_url);
    // The customer hears the call-back in the language they chose on the call that asked for it.
    let answer_url = super::call::with_language(
        state,
        &urls.to(&format!("{ANSWER_PATH}?c={call_sid}")),
        // A line that no longer speaks it, or a request kept before languages were stored: the
        // line's first.
        super::call::spoken_or_default(state, row.language.as_deref()),
    );
    let status_url = urls.to(&format!("{STATUS_PATH}?c={call_sid}"));
    let call = call_of(&row);
    let detect = state.settings.handoff.callback_machine_detection;
    match rest.create_call(&row.to_number, &from, &answer_url, &status_url, detect).await {
        Ok(placed) => {
            state.store.callback_placed(call_sid, &placed.sid, now).await?;
            let happened = vec![Event::Callback(format!("placed {} (attempt {})", placed.sid, row.attempts))];
            state.recorder.record(events(&call, attempt_step(&row, 1), now, happened));
            tracing::info!(to = %mask_phone(&row.to_number), sid = %placed.sid, attempt = row.attempts, "call-back placed");
        }
        Err(e) => {
            let why = mask_pii(&e.to_string());
            failed_attempt(state, &call, &row, &format!("not placed: {why}")).await?;
        }
    }
    Ok(state.store.callback(call_sid).await?.unwrap_or(row))
}

/// An attempt that did not reach the customer: retried after ORDERLINE_CALLBACK_RETRY_AFTER
/// until the last attempt, then failed.
async fn failed_attempt(state: &AppState, call: &VoiceCall, row: &CallbackRow, why: &str) -> Result<bool, StoreError> {
    let now = state.clock.now();
    let retry = u32::try_from(row.attempts).unwrap_or(u32::MAX) < state.settings.handoff.callback_attempts;
    let retry_at = retry.then(|| {
        Ts::from(now + chrono::Duration::from_std(state.settings.handoff.callback_retry_after).unwrap_or_default())
    });
    state.store.callback_attempt_failed(&row.call_sid, why, retry_at, Ts::from(now)).await?;
    let next = if retry { "tried again later" } else { "failed: no attempts left" };
    let happened = vec![Event::Callback(format!("{why}; {next}"))];
    state.recorder.record(events(call, attempt_step(row, 2), Ts::from(now), happened));
    tracing::warn!(to = %mask_phone(&row.to_number), attempt = row.attempts, error = %why, "call-back not answered; {next}");
    Ok(retry)
}

/// Who answered a placed call-back, as Twilio's answering-machine detection says in `AnsweredBy`
/// (https://www.twilio.com/docs/voice/answering-machine-detection, read 2026-12-05: `human`,
/// `machine_start` with `Enable`, `machine_end_beep`, `machine_end_silence` or
/// `machine_end_other` with `DetectMessageEnd` once the greeting has ended, `fax`, `unknown` when
/// it could not tell within `MachineDetectionTimeout`). Absent without detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnsweredBy {
    /// A person, or Twilio could not tell (its detection leans towards humans): put through.
    Person,
    /// A voicemail box: a short message after its greeting, no agent.
    Machine,
    Fax,
}

impl AnsweredBy {
    fn parse(value: &str) -> AnsweredBy {
        match value {
            v if v.starts_with("machine") => AnsweredBy::Machine,
            "fax" => AnsweredBy::Fax,
            _ => AnsweredBy::Person,
        }
    }
}

/// The call a call-back is about, as the call record's events name it (its caller is the number
/// called back).
fn call_of(row: &CallbackRow) -> VoiceCall {
    VoiceCall {
        call_sid: row.call_sid.clone(),
        from: row.to_number.clone(),
        to: None,
        stir_verstat: None,
        digits: None,
        speech: None,
        confidence: None,
    }
}

/// Where an attempt's event is numbered: `phase` 1 placed, 2 not answered, 3 answered.
fn attempt_step(row: &CallbackRow, phase: u16) -> EventStep {
    EventStep::Callback(u16::try_from(row.attempts).unwrap_or(99).min(99) * 10 + phase)
}

/// Places the call-backs whose retry is due, until `shutdown`.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match state.store.due_callbacks(Ts::from(state.clock.now()), 10).await {
            Ok(due) => {
                for call_sid in due {
                    if let Err(e) = place(&state, &call_sid, None).await {
                        tracing::warn!(error = %e, "a call-back retry was not placed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the call-backs due"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The call-back named by the request's `c` query parameter.
async fn callback_of(state: &AppState, req: &TwilioRequest) -> Option<CallbackRow> {
    let call_sid = req.query.iter().find(|(n, _)| n == "c").map(|(_, v)| v.as_str())?;
    state.store.callback(call_sid).await.ok().flatten()
}

/// The customer answered: who is calling, then through to a person.
async fn answer(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let Some(row) = callback_of(&state, &req).await else {
        tracing::warn!("a call-back answer for no call-back orderline placed");
        state.metrics.twilio_request("callback-answer", "bad_request", started.elapsed().as_secs_f64());
        return twiml(super::render::LAST_RESORT.to_string());
    };
    let now = Ts::from(state.clock.now());
    let language = super::call::language_of(&state, &req);
    let renderer = state.renderer.in_language(Some(language));
    let answered_by = req.param("AnsweredBy").map(str::trim).unwrap_or_default().to_string();
    let by = AnsweredBy::parse(&answered_by);
    if by != AnsweredBy::Person {
        // Not the customer: no agent is put through to a voicemail box or a fax. The attempt
        // counts as unanswered (tried again, or failed after the last), and a voicemail box
        // hears who called and whether we will call again.
        let call = call_of(&row);
        let what = if by == AnsweredBy::Fax { "a fax machine" } else { "a machine" };
        let why = format!("answered by {what} ({answered_by})");
        let again = match failed_attempt(&state, &call, &row, &why).await {
            Ok(again) => again,
            Err(e) => {
                tracing::error!(error = %e, "could not record a call-back answered by a machine");
                false
            }
        };
        let xml = match by {
            AnsweredBy::Fax => Ok(super::render::HANG_UP.to_string()),
            _ => renderer.callback_machine(again),
        };
        let xml = xml.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the callback_machine template failed");
            super::render::HANG_UP.to_string()
        });
        state.metrics.twilio_request("callback-answer", "machine", started.elapsed().as_secs_f64());
        return twiml(xml);
    }
    if let Err(e) = state.store.callback_answered(&row.call_sid, now).await {
        tracing::error!(error = %e, "could not record a call-back's answer");
    }
    let original = state.store.call(&row.call_sid).await.ok().flatten();
    let verified = original
        .as_ref()
        .and_then(|c| c.verification.as_deref())
        .and_then(Verification::parse)
        .map_or(Verified::No, Verification::level);
    let context = CallContext {
        call_sid: row.call_sid.clone(),
        from: row.to_number.clone(),
        customer_id: row.customer_id.map(|id| id.to_string()),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        verified: verified.as_str(),
        ..CallContext::default()
    };
    let call = call_of(&row);
    let answered = vec![Event::Callback("answered: put through".into())];
    state.recorder.record(events(&call, attempt_step(&row, 3), now, answered));
    // Called back in their turn: through with priority (TaskRouter's, or ORDERLINE_PRIORITY_TO).
    let transfer = super::call::in_language(transfer_view_for(&state, &context, true), &state, language);
    let xml = renderer.callback_answer(&transfer).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the callback_answer template failed");
        super::render::LAST_RESORT.to_string()
    });
    state.metrics.twilio_request("callback-answer", "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// How a placed call-back ended. Unanswered (busy, no-answer, failed, canceled): the next
/// attempt or, after the last, failed. 404 for a call-back orderline did not place.
async fn status(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let Some(row) = callback_of(&state, &req).await else {
        state.metrics.twilio_request("callback-status", "bad_request", started.elapsed().as_secs_f64());
        return (StatusCode::NOT_FOUND, "no call-back with this id was placed by orderline\n").into_response();
    };
    let status = req.param("CallStatus").map(str::trim).unwrap_or_default().to_string();
    if matches!(status.as_str(), "busy" | "no-answer" | "failed" | "canceled") && row.status == callback_status::CALLING
    {
        let call = call_of(&row);
        if let Err(e) = failed_attempt(&state, &call, &row, &format!("not answered: {status}")).await {
            tracing::error!(error = %e, "could not record a call-back's failure");
            return (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable\n").into_response();
        }
    }
    state.metrics.twilio_request("callback-status", "answered", started.elapsed().as_secs_f64());
    StatusCode::NO_CONTENT.into_response()
}
