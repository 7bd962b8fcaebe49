//! ConversationRelay calls (ORDERLINE_PROMPT_MODE=conversation_relay): the incoming call's first
//! step is run as in TwiML mode and its words become the session's welcome greeting
//! (`<Connect action><ConversationRelay welcomeGreeting>`, `relay.xml`); the rest of the call
//! runs over `GET /twilio/relay` (`session`) as text both ways (Twilio does speech-to-text and
//! text-to-speech); at a transfer or goodbye the session saves that step's TwiML and ends, and
//! `POST /twilio/relay/end` (the `<Connect action>`, any instance) answers with it. Each step's
//! words are the `<Say>`s of the step's TwiML, so the templates stay the one description of what
//! callers hear. The call flow, verification and call records are TwiML mode's.
//!
//! Sources: twilio.com/docs/voice/twiml/connect/conversationrelay, twilio.com/docs/voice/
//! conversationrelay/websocket-messages and …/onboarding (signed handshake), read 2026-12-05; see
//! /work/shared/PROTOCOLS.md "Twilio ConversationRelay".

pub mod protocol;
mod session;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use self::protocol::{Handoff, HandoffReason};
use super::call::{VoiceCall, events, guarded, record_reply};
use super::public_url::PublicUrl;
use super::render::RelayView;
use super::request::{TwilioRequest, auth_tokens};
use super::twiml;
use super::voice::{fallback, reply_twiml, respond, twiml};
use crate::app::AppState;
use crate::config::SpokenLanguage;
use crate::domain::{Event, EventStep, Language, mask_pii};
use crate::ivr::{CallState, Reply, Stage};

/// Where Twilio opens the session.
pub const RELAY_PATH: &str = "/twilio/relay";
/// The `<Connect action>`: where Twilio goes when the session ends.
pub const RELAY_END_PATH: &str = "/twilio/relay/end";
/// Largest message accepted from Twilio; a transcript of a long utterance is a few KB.
const MAX_MESSAGE: usize = 64 * 1024;
/// Longest the end request waits for the store.
const HANDOFF_READ_LIMIT: Duration = Duration::from_secs(3);
/// Words the speech recognition should expect: every question's vocabulary (the templates'
/// `<Gather hints>` for TwiML calls), since one session asks them all.
pub const HINTS: &str = "where is my order, order status, repeat, other orders, returns, refund, agent, \
                         representative, a person, operator, order number, postal code, zip code";
/// The same words for a Spanish call.
pub const HINTS_ES: &str = "dónde está mi pedido, estado de mi pedido, repetir, otros pedidos, devoluciones, \
                            reembolso, agente, representante, una persona, operador, número de pedido, código postal";

/// The words speech recognition should expect in `language`.
pub fn hints(language: Language) -> &'static str {
    match language {
        Language::En => HINTS,
        Language::Es => HINTS_ES,
    }
}

/// The configured language (tag and voice) a call speaks; the default one if not configured.
pub fn spoken_language(state: &AppState, language: Language) -> &SpokenLanguage {
    let languages = &state.settings.ivr.spoken_languages;
    languages.iter().find(|l| l.language == language).unwrap_or(&languages[0])
}

pub fn router() -> Router<AppState> {
    Router::new().route(RELAY_PATH, get(relay)).route(RELAY_END_PATH, post(relay_ended))
}

/// The session URL for a public base URL: `https://x/p` → `wss://x/p/twilio/relay`.
pub fn relay_url(public_url: &str) -> String {
    PublicUrl::new(public_url).websocket(RELAY_PATH)
}

/// What a step says over the relay: its TwiML rendered as a TwiML call would get it, the
/// `<Say>`s in order (how its question takes keys is the stage's `ivr::Stage::ask`).
#[derive(Debug, Clone, PartialEq)]
pub struct Words {
    pub says: Vec<String>,
    /// Each say's `<Say language>` (the offer of another language is said in that language).
    pub langs: Vec<Option<String>>,
}

impl Words {
    /// How many words are said: how long they take to say.
    pub fn count(&self) -> usize {
        self.says.iter().map(|s| s.split_whitespace().count()).sum()
    }
}

/// The words of a reply's step, from the same template and data a TwiML call's answer is made of.
pub fn words_of(state: &AppState, reply: &Reply) -> Result<Words, String> {
    let xml = reply_twiml(state, reply).map_err(|e| e.to_string())?;
    let document = twiml::parse(&xml).map_err(|e| format!("{}.xml: {e}", reply.step.template()))?;
    let (says, langs) = document
        .find_all("Say")
        .into_iter()
        .map(|say| (say.spoken(), say.attr("language").map(str::to_string)))
        .filter(|(said, _)| !said.is_empty())
        .unzip();
    Ok(Words { says, langs })
}

/// How long Twilio takes to say `words` at ORDERLINE_RELAY_WORDS_PER_MINUTE.
pub fn speaking_time(words: usize, per_minute: u32) -> Duration {
    Duration::from_millis(words as u64 * 60_000 / u64::from(per_minute.max(1)))
}

/// The question a session starts with: the first step's, which the welcome greeting asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub stage: Stage,
    pub state: CallState,
    /// Words of the greeting, for the time it takes to say.
    pub words: usize,
    /// Sentences of the greeting in another language than the session's (the offer of Spanish
    /// in an English greeting), with their tags: the welcome greeting has one language, so the
    /// session says these right after `setup` as tokens with their own `lang`.
    pub later: Vec<(String, String)>,
}

/// The `<Parameter>`s of a session: what it needs of the call (Twilio's `setup` carries no
/// StirVerstat) and of the first question, and a token binding them to the CallSid (Twilio signs
/// the handshake over the session URL alone, the same for every call).
pub fn session_params(key: &str, call: &VoiceCall, opening: &Opening) -> Vec<(String, String)> {
    let mut params = vec![("from".to_string(), call.from.clone())];
    if let Some(to) = &call.to {
        params.push(("to".into(), to.clone()));
    }
    if let Some(stir) = &call.stir_verstat {
        params.push(("stir".into(), stir.clone()));
    }
    params.extend([
        ("stage".to_string(), opening.stage.path().to_string()),
        ("state".to_string(), opening.state.to_query()),
        ("words".to_string(), opening.words.to_string()),
    ]);
    if !opening.later.is_empty() {
        params.push(("later".into(), serde_json::to_string(&opening.later).unwrap_or_default()));
    }
    let token = URL_SAFE_NO_PAD.encode(session_mac(key, &call.call_sid, &params).finalize().into_bytes());
    params.push(("token".into(), token));
    params
}

/// The parameters a token covers, in the order they are signed.
const SIGNED: [&str; 7] = ["from", "to", "stir", "stage", "state", "words", "later"];

/// The call and first question of a session's `setup`, when its parameters carry a token we made
/// for that CallSid.
pub fn call_of_session(key: &str, call_sid: &str, custom: &BTreeMap<String, String>) -> Option<(VoiceCall, Opening)> {
    let token = URL_SAFE_NO_PAD.decode(custom.get("token")?).ok()?;
    let params: Vec<(String, String)> =
        SIGNED.iter().filter_map(|n| custom.get(*n).map(|v| (n.to_string(), v.clone()))).collect();
    session_mac(key, call_sid, &params).verify_slice(&token).ok()?;
    let stage = Stage::from_path(custom.get("stage")?)?;
    let query = custom.get("state")?;
    let state = CallState::from_query(query.split('&').filter_map(|pair| pair.split_once('='))).ok()?;
    let later = match custom.get("later") {
        Some(json) => serde_json::from_str(json).ok()?,
        None => Vec::new(),
    };
    let opening = Opening { stage, state, words: custom.get("words")?.parse().ok()?, later };
    let call = VoiceCall {
        call_sid: call_sid.to_string(),
        from: custom.get("from").cloned().unwrap_or_default(),
        to: custom.get("to").cloned(),
        stir_verstat: custom.get("stir").cloned(),
        digits: None,
        speech: None,
        confidence: None,
    };
    Some((call, opening))
}

fn session_mac(key: &str, call_sid: &str, params: &[(String, String)]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"orderline conversation relay\n");
    mac.update(call_sid.as_bytes());
    for (name, value) in params {
        mac.update(format!("\n{name}={value}").as_bytes());
    }
    mac
}

/// ConversationRelay's `ttsProvider` and `voice` for ORDERLINE_VOICE (a `<Say>` voice):
/// `Polly.Joanna-Neural` → Amazon `Joanna-Neural`, `Google.en-US-Neural2-F` → Google
/// `en-US-Neural2-F` (twilio.com/docs/voice/conversationrelay/voice-configuration: a provider
/// and a voice id from its inventory); any other voice (`alice`, `man`) leaves both to Twilio's
/// default for the language.
pub fn tts_voice(voice: &str) -> (Option<String>, Option<String>) {
    let voice = voice.trim();
    let (provider, id) = if let Some(id) = voice.strip_prefix("Polly.") {
        ("Amazon", id)
    } else if let Some(id) = voice.strip_prefix("Google.") {
        ("Google", id)
    } else {
        return (None, None);
    };
    if id.is_empty() { (None, None) } else { (Some(provider.to_string()), Some(id.to_string())) }
}

/// `POST /twilio/voice` in ConversationRelay mode: the first step, run and recorded as in TwiML
/// mode; a question is asked by the session's welcome greeting and answered over the relay, and
/// a first step that asks nothing (a transfer, a goodbye) is answered as TwiML.
pub(super) async fn connect(state: &AppState, req: &TwilioRequest, call: &VoiceCall, started: Instant) -> Response {
    let result = guarded(state.flow.incoming(&call.caller())).await;
    let (reply, (stage, next)) = match result {
        Ok(reply) => match reply.next {
            Some(question) => (reply, question),
            None => return respond(state, req, call, 1, Ok(reply), started),
        },
        Err(why) => return respond(state, req, call, 1, Err(why), started),
    };
    let words = match words_of(state, &reply) {
        Ok(words) => words,
        Err(why) => return fallback(state, req, Some(call), 1, &why, started),
    };
    let spoken = spoken_language(state, reply.language);
    // The greeting in the session's language; a sentence in another one is said after `setup`.
    let (greeting, later): (Vec<_>, Vec<_>) =
        words.says.iter().zip(&words.langs).partition(|(_, lang)| lang.as_deref().is_none_or(|l| l == spoken.tag));
    let greeting: Vec<&str> = greeting.into_iter().map(|(said, _)| said.as_str()).collect();
    let later: Vec<(String, String)> =
        later.into_iter().filter_map(|(said, lang)| Some((said.clone(), lang.clone()?))).collect();
    let opening = Opening { stage, state: next, words: words.count(), later };
    let key = state.settings.twilio.auth_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default();
    let (tts_provider, tts_voice) = tts_voice(&spoken.voice);
    let view = RelayView {
        relay_url: relay_url(&state.settings.server.public_url),
        action_url: PublicUrl::new(&state.settings.server.public_url).to(RELAY_END_PATH),
        greeting: greeting.join(" "),
        language: spoken.tag.clone(),
        hints: hints(reply.language).to_string(),
        params: session_params(&key, call, &opening),
        tts_provider,
        tts_voice,
    };
    let xml = match state.renderer.relay(&view) {
        Ok(xml) => xml,
        Err(e) => return fallback(state, req, Some(call), 1, &e.to_string(), started),
    };
    record_reply(state, call, 1, reply.outcome, reply.events, Some(started.elapsed()));
    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
    twiml(xml)
}

/// `GET /twilio/relay`: the session's handshake, signed by Twilio over the session URL (as for
/// Media Streams: twilio.com/docs/voice/conversationrelay/onboarding#websocket-security-with-
/// signature-validation).
async fn relay(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let signed = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    let tokens = auth_tokens(&state.settings);
    let url = relay_url(&state.settings.server.public_url);
    let valid = signed.is_some_and(|s| super::media::handshake_signed(&tokens, &url, s));
    if !valid {
        tracing::warn!(
            signed = signed.is_some(),
            "ConversationRelay handshake without a valid X-Twilio-Signature refused"
        );
        state.metrics.twilio_request("relay", "forbidden", 0.0);
        state.metrics.relay_session_ended("forbidden");
        return (StatusCode::FORBIDDEN, "missing or invalid X-Twilio-Signature\n").into_response();
    }
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_failed_upgrade(|e| tracing::warn!(error = %e, "ConversationRelay upgrade failed"))
        .on_upgrade(move |socket| session::run(state, socket))
}

/// `POST /twilio/relay/end`: the session is over. With our `HandoffData`, the call goes on with
/// the TwiML the session saved (the transfer or goodbye, words included); without it Twilio ended
/// the session itself (the caller hung up, the socket failed, an error): a caller who is gone is
/// hung up on, anyone else gets the apology and a person. Never an error status.
async fn relay_ended(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 0, &why, started),
    };
    let handoff = req.param("HandoffData").filter(|d| !d.trim().is_empty());
    let taken = tokio::time::timeout(HANDOFF_READ_LIMIT, state.handoffs.take(&call.call_sid)).await;
    let record = |detail: String| {
        let now = crate::store::Ts::from(state.clock.now());
        state.recorder.record(events(&call, EventStep::RelayEnded, now, vec![Event::Relay(detail)]));
    };
    match handoff.map(|text| (text, Handoff::parse(text))) {
        Some((_, Some(handoff))) => {
            record(format!("ended by orderline: {} at step {}", handoff.reason.as_str(), handoff.step));
            let why = match taken {
                Ok(Ok(Some(xml))) => {
                    state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
                    return twiml(xml);
                }
                Ok(Ok(None)) => "the session's decision was not found (its save failed)".to_string(),
                Ok(Err(e)) => format!("reading the session's decision: {e}"),
                Err(_) => format!("reading the session's decision took longer than {HANDOFF_READ_LIMIT:?}"),
            };
            // The decision is lost: a person can still help (and said goodbye is not worse).
            let step = if handoff.reason == HandoffReason::Goodbye { 0 } else { handoff.step };
            fallback(&state, &req, Some(&call), step, &why, started)
        }
        Some((text, None)) => {
            record("ended with HandoffData that is not orderline's".into());
            let why =
                format!("HandoffData {:?} is not orderline's", mask_pii(&text.chars().take(100).collect::<String>()));
            fallback(&state, &req, Some(&call), 0, &why, started)
        }
        None => {
            let param = |name: &str| req.param(name).map(str::trim).filter(|v| !v.is_empty());
            let status = param("CallStatus").unwrap_or("unknown").to_ascii_lowercase();
            let mut detail = format!("ended by Twilio: session {}", param("SessionStatus").unwrap_or("unknown"));
            detail.push_str(&format!(", call {status}"));
            if let Some(code) = param("ErrorCode") {
                detail.push_str(&format!(", error {code}"));
            }
            if let Some(message) = param("ErrorMessage") {
                detail.push_str(&format!(": {}", mask_pii(&message.chars().take(200).collect::<String>())));
            }
            record(detail.clone());
            if crate::store::is_final_status(&status) {
                state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
                return twiml(super::render::HANG_UP.to_string());
            }
            fallback(&state, &req, Some(&call), 0, &format!("the ConversationRelay session {detail}"), started)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> VoiceCall {
        VoiceCall {
            call_sid: "CA1".into(),
            from: "+15551234567".into(),
            to: Some("+18005550100".into()),
            stir_verstat: Some("TN-Validation-Passed-A".into()),
            digits: None,
            speech: None,
            confidence: None,
        }
    }

    fn opening() -> Opening {
        Opening {
            stage: Stage::Menu,
            state: CallState { step: 2, customer: Some(9_007_199_254_740_993), ..CallState::default() },
            words: 42,
            later: vec![("Para español, oprima nueve.".into(), "es-US".into())],
        }
    }

    #[test]
    fn the_relay_url_is_the_public_url_over_websockets() {
        assert_eq!(relay_url("https://line.example.com/p"), "wss://line.example.com/p/twilio/relay");
        assert_eq!(relay_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/twilio/relay");
    }

    #[test]
    fn a_sessions_parameters_lead_back_to_its_call_and_first_question() {
        let params: BTreeMap<String, String> = session_params("key", &call(), &opening()).into_iter().collect();
        let (back, first) = call_of_session("key", "CA1", &params).expect("the token is ours");
        assert_eq!(
            (back.from.as_str(), back.stir_verstat.as_deref()),
            ("+15551234567", Some("TN-Validation-Passed-A"))
        );
        assert_eq!(first, opening());
    }

    #[test]
    fn a_token_opens_no_other_call_question_or_caller() {
        let params: BTreeMap<String, String> = session_params("key", &call(), &opening()).into_iter().collect();
        assert!(call_of_session("key", "CA2", &params).is_none(), "another CallSid");
        assert!(call_of_session("other key", "CA1", &params).is_none(), "another auth token");
        for (name, forged) in [("from", "+15550000000"), ("state", "n=9&v=p&t=0"), ("stage", "postal-code")] {
            let mut forged_params = params.clone();
            forged_params.insert(name.into(), forged.into());
            assert!(call_of_session("key", "CA1", &forged_params).is_none(), "{name}");
        }
        let mut without = params.clone();
        without.remove("token");
        assert!(call_of_session("key", "CA1", &without).is_none(), "no token");
    }

    #[test]
    fn say_voices_map_to_conversation_relay_voices() {
        assert_eq!(tts_voice("Polly.Joanna-Neural"), (Some("Amazon".into()), Some("Joanna-Neural".into())));
        assert_eq!(tts_voice("Google.en-US-Neural2-F"), (Some("Google".into()), Some("en-US-Neural2-F".into())));
        assert_eq!(tts_voice("alice"), (None, None));
        assert_eq!(tts_voice("Polly."), (None, None));
    }

    #[test]
    fn speaking_time_follows_the_rate() {
        assert_eq!(speaking_time(150, 150), Duration::from_secs(60));
        assert_eq!(speaking_time(10, 0), Duration::from_secs(600));
        assert_eq!(speaking_time(0, 150), Duration::ZERO);
    }
}
