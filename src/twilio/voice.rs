//! What happens when a call comes in: `POST /twilio/voice` (the call), `POST /twilio/voice/{stage}`
//! (the caller's answers), `POST /twilio/voice/whisper` (said to the agent) and
//! `POST /twilio/status` (status callbacks), and `GET|POST /twilio/fallback` (the number's
//! fallback URL: a static apology and the way to a person, from the settings alone). Never answers 5xx or invalid TwiML: whatever fails
//! (database, Shopify, a template, a bug), the caller hears the fallback and reaches a person.
//! With ORDERLINE_PROMPT_MODE=media_stream the incoming call is answered with a stream instead
//! (`media::connect`) and the conversation moves to `twilio/media/`; with conversation_relay the
//! first step's words become a ConversationRelay session's greeting (`relay::connect`) and the
//! conversation moves to `twilio/relay/`.

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::call::{VoiceCall, events, fallback_twiml, guarded, record_fallback, record_reply, step_transfer_view};
use super::public_url::PublicUrl;
use super::render::Asking;
use super::request::TwilioRequest;
use crate::app::AppState;
use crate::config::PromptMode;
use crate::domain::{Event, EventStep, ShopifyId, mask_pii};
use crate::ivr::order_status::OrderFacts;
use crate::ivr::understanding::{Question, Understood, understand};
use crate::ivr::{CallState, Input, Reply, Stage};
use crate::store::{CallWrite, Ts, is_final_status};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(VOICE_PATH, post(incoming))
        .route("/twilio/voice/whisper", post(whisper))
        .route("/twilio/voice/{stage}", post(answer))
        .route(STATUS_PATH, post(status))
        .route(FALLBACK_PATH, get(static_fallback).post(static_fallback))
}

/// The number's "Primary handler fails" URL (`setup twilio` sets it as VoiceFallbackUrl).
pub const FALLBACK_PATH: &str = "/twilio/fallback";
/// The number's "A call comes in" URL.
pub const VOICE_PATH: &str = "/twilio/voice";
/// The number's "Call status changes" URL.
pub const STATUS_PATH: &str = "/twilio/status";

/// Twilio requests the fallback URL when the voice URL fails (an error, a timeout, invalid
/// TwiML: https://www.twilio.com/docs/usage/webhooks/voice-webhooks#fallback-url, read
/// 2026-12-04). Whatever is wrong with this instance's database or Shopify, the answer is
/// `twiml/fallback.xml` rendered from the settings alone (no caller data, so no signature check
/// is needed: it discloses nothing), the same on every instance. A TwiML Bin holding the same
/// document is the alternative when orderline itself is unreachable.
async fn static_fallback(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    state.metrics.twilio_request("fallback", "fallback", started.elapsed().as_secs_f64());
    twiml(fallback_twiml(&state, None))
}

async fn incoming(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 1, &why, started),
    };
    match state.settings.ivr.prompt_mode {
        PromptMode::MediaStream => return super::media::connect(&state, &req, &call, started),
        // Boxed: a TwiML call (the usual case) then does not carry the relay's state.
        PromptMode::ConversationRelay => return Box::pin(super::relay::connect(&state, &req, &call, started)).await,
        PromptMode::Twiml => {}
    }
    let result = guarded(state.flow.incoming(&call.caller())).await;
    respond(&state, &req, &call, 1, result, started)
}

async fn answer(State(state): State<AppState>, Path(stage): Path<String>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 0, &why, started),
    };
    let call_state = CallState::from_query(req.query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let (Some(stage), Ok(call_state)) = (Stage::from_path(&stage), call_state) else {
        return fallback(&state, &req, Some(&call), 0, &format!("no such step: {}", req.path), started);
    };
    let language = call_state.lang.unwrap_or(state.settings.ivr.spoken_languages[0].language);
    let (input, heard) = input_of(&call, stage, language);
    let mut result = guarded(state.flow.answer(&call.caller(), stage, call_state, input)).await;
    if let (Ok(reply), Some(heard)) = (&mut result, heard) {
        reply.events.insert(0, heard);
    }
    respond(&state, &req, &call, call_state.step, result, started)
}

/// The answer as the flow takes it: the keys pressed, else what was said, understood for the
/// question `stage` asked (and the event recording it). Words not understood count as a wrong
/// key at the menu and as no answer elsewhere: either way the question is asked again once.
pub(crate) fn input_of(call: &VoiceCall, stage: Stage, language: crate::domain::Language) -> (Input, Option<Event>) {
    if let Some(d) = call.digits.as_deref().map(|d| d.trim().trim_end_matches('#')).filter(|d| !d.is_empty()) {
        return (Input::Digits(d.to_string()), None);
    }
    let question = match stage {
        Stage::Menu => Question::Menu,
        Stage::OrderNumber => Question::OrderNumber,
        Stage::PostalCode => Question::PostalCode,
        Stage::Continue => return (Input::Nothing, None),
    };
    let Some(said) = call.speech.as_deref() else { return (Input::Nothing, None) };
    let understood = understand(question, language, said, call.confidence);
    let input = match &understood {
        Understood::Keys(keys) => Input::Digits(keys.clone()),
        Understood::Language(language) => Input::Language(*language),
        Understood::Unclear => Input::Unclear,
        Understood::Nothing => Input::Nothing,
    };
    let as_keys = match &understood {
        Understood::Keys(_) if question == Question::PostalCode => "entered".to_string(),
        Understood::Keys(keys) => format!("keys {keys}"),
        Understood::Language(language) => format!("language {}", language.english_name()),
        Understood::Nothing => "nothing".to_string(),
        Understood::Unclear => "unclear".to_string(),
    };
    // A postal code is never recorded, said or keyed; other words are kept, masked like logs.
    let kept = (question != Question::PostalCode).then(|| mask_pii(&said.chars().take(200).collect::<String>()));
    let confidence = call.confidence.filter(|c| c.is_finite()).map(|c| (c.clamp(0.0, 1.0) * 100.0).round() as u8);
    (input, Some(Event::Speech { said: kept, confidence, understood: as_keys }))
}

pub(crate) fn respond(
    state: &AppState,
    req: &TwilioRequest,
    call: &VoiceCall,
    step: u32,
    result: Result<Reply, String>,
    started: Instant,
) -> Response {
    let reply = match result {
        Ok(reply) => reply,
        Err(why) => return fallback(state, req, Some(call), step, &why, started),
    };
    let xml = match reply_twiml(state, &reply) {
        Ok(xml) => xml,
        Err(e) => return fallback(state, req, Some(call), step, &e.to_string(), started),
    };
    // The first request's answer is the caller's first words: orderline's own response time.
    let first_word = (step == 1).then(|| started.elapsed());
    record_reply(state, call, step, reply.outcome, reply.events, first_word);
    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// A reply as TwiML: its step's template in the call's language, the next question's action
/// URL, the offer of the other language, the keys spelled out after words were not understood.
/// ConversationRelay speaks the `<Say>`s of the same document (`relay::words_of`).
pub(crate) fn reply_twiml(state: &AppState, reply: &Reply) -> Result<String, super::render::TemplateError> {
    let urls = PublicUrl::new(&state.settings.server.public_url);
    let action =
        reply.next.map(|(stage, next)| urls.to(&format!("/twilio/voice/{}?{}", stage.path(), next.to_query())));
    let renderer = state.renderer.in_language(Some(reply.language));
    let offer = if reply.offer {
        let next =
            state.settings.ivr.spoken_languages.iter().map(|l| l.language).skip_while(|l| *l != reply.language).nth(1);
        let next = next
            .or_else(|| state.settings.ivr.spoken_languages.first().map(|l| l.language))
            .filter(|l| *l != reply.language);
        match next.map(|l| state.renderer.in_language(Some(l)).offer()) {
            Some(Ok(xml)) => Some(xml),
            Some(Err(e)) => {
                tracing::error!(error = %e, "the language offer failed; the question goes on without it");
                None
            }
            None => None,
        }
    } else {
        None
    };
    let unclear = reply.next.map_or(0, |(_, next)| next.unclear);
    let asking = Asking { offer, spell_keys: unclear == 1, keys_only: unclear >= 2 };
    let transfer = super::call::in_language(step_transfer_view(state, &reply.step), state, reply.language);
    renderer.step_asking(&reply.step, action.as_deref(), &transfer, &asking)
}

/// The apology and the way to a person; recorded, logged (masked), never an error status.
pub(crate) fn fallback(
    state: &AppState,
    req: &TwilioRequest,
    call: Option<&VoiceCall>,
    step: u32,
    why: &str,
    started: Instant,
) -> Response {
    record_fallback(state, call, step, why);
    state.metrics.twilio_request(req.route(), "fallback", started.elapsed().as_secs_f64());
    twiml(fallback_twiml(state, call))
}

pub(crate) fn twiml(xml: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// Said to the agent before the caller is put through (a `<Dial><Number url>` transfer).
async fn whisper(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let query = |name: &str| req.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let id = |name: &str| query(name).and_then(|v| v.parse::<i64>().ok());
    let shop = state.settings.shopify.shop.clone().unwrap_or_default();
    // Twilio waits 15 s for a whisper and then drops the bridge: what the store cannot say within
    // WHISPER_LIMIT is left out, and the agent still gets the caller.
    let customer = match id("c") {
        Some(c) => within(state.store.customer(&shop, ShopifyId(c))).await.flatten(),
        None => None,
    };
    let order = match id("o") {
        Some(o) => within(state.lookup.order_by_id(o)).await.flatten(),
        None => None,
    };
    let tz = state.settings.handoff.business_hours.timezone();
    let ctx = minijinja::context! {
        first_name => customer.as_ref().and_then(|c| c.first_name.clone()),
        last_name => customer.as_ref().and_then(|c| c.last_name.clone()),
        verified => query("v"),
        order => order.map(|o| OrderFacts::of(&o.order, tz)),
    };
    let renderer = state.renderer.in_language(Some(super::call::language_of(&state, &req)));
    let xml = renderer.whisper(ctx).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the whisper template failed");
        "<Response/>".to_string()
    });
    state.metrics.twilio_request("whisper", "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// Longest each part of a whisper waits for the store.
const WHISPER_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn within<T, E: std::fmt::Display>(read: impl Future<Output = Result<T, E>>) -> Option<T> {
    match tokio::time::timeout(WHISPER_LIMIT, read).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the whisper goes on without what the store could not read");
            None
        }
        Err(_) => {
            tracing::warn!(limit = ?WHISPER_LIMIT, "the whisper goes on without what the store did not read in time");
            None
        }
    }
}

/// A status callback: the call's status, and for a final one its end and duration.
async fn status(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => {
            tracing::warn!(error = %why, "status callback without a call refused");
            state.metrics.twilio_request("status", "bad_request", 0.0);
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    let status = req.param("CallStatus").unwrap_or("unknown").to_ascii_lowercase();
    let sequence = req.param("SequenceNumber").and_then(|s| s.parse::<i32>().ok()).unwrap_or(0);
    let duration_s = req.param("CallDuration").and_then(|s| s.parse::<i32>().ok());
    let now = Ts::from(state.clock.now());
    let is_final = is_final_status(&status);
    let started_at = duration_s
        .filter(|_| is_final)
        .map(|d| Ts::from(now.0 - chrono::Duration::seconds(i64::from(d))))
        .unwrap_or(now);
    let mut writes = vec![CallWrite::Status {
        call: call.new_call(&state, started_at, None),
        status: status.clone(),
        sequence,
        ended_at: is_final.then_some(now),
        duration_s,
    }];
    let detail = match duration_s {
        Some(d) => format!("{status} after {d} s"),
        None => status.clone(),
    };
    writes.extend(events(&call, EventStep::Status(sequence), now, vec![Event::Status(detail)]));
    state.recorder.record(writes);
    state.metrics.twilio_request("status", "answered", started.elapsed().as_secs_f64());
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_step_becomes_an_error_not_a_crash() {
        let panics = async {
            let reply: Option<Reply> = None;
            reply.ok_or_else(String::new).map_err(|_: String| -> String { panic!("boom") })
        };
        let err = guarded(panics).await.unwrap_err();
        assert_eq!(err, "the call flow panicked: boom");
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_hangs_is_cut_off() {
        let hangs = std::future::pending::<Result<Reply, String>>();
        let err = guarded(hangs).await.unwrap_err();
        assert!(err.contains("took longer than"), "{err}");
    }
}
