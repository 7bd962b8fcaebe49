//! Media Streams calls (ORDERLINE_PROMPT_MODE=media_stream): the incoming call is answered with
//! `<Connect><Stream>`, the whole conversation runs over `GET /twilio/media` (`session`), and the
//! `<Redirect>` after the stream (`POST /twilio/voice/stream-ended`) goes on with the transfer or
//! goodbye the session decided. The call flow is `ivr`'s, the same as for TwiML calls.

mod handoff;
pub mod protocol;
mod session;

pub use handoff::Handoffs;

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

use super::call::VoiceCall;
use super::public_url::PublicUrl;
use super::request::{TwilioRequest, auth_tokens};
use super::signature;
use super::voice::{fallback, twiml};
use crate::app::AppState;
use crate::domain::{Event, EventStep};

/// Where Twilio opens the stream.
pub const MEDIA_PATH: &str = "/twilio/media";
/// Where Twilio goes once orderline closes the stream (the `<Redirect>` after `<Connect>`).
pub const STREAM_ENDED_PATH: &str = "/twilio/voice/stream-ended";
/// Where Twilio reports the stream's start, stop and errors (`<Stream statusCallback>`).
pub const STREAM_STATUS_PATH: &str = "/twilio/voice/stream-status";
/// Largest message accepted on the stream; Twilio's are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;
/// What the socket reads at a time.
const READ_BUFFER: usize = 4 * 1024;
/// Longest the stream-ended request waits for the store.
const HANDOFF_READ_LIMIT: Duration = Duration::from_secs(3);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(MEDIA_PATH, get(media))
        .route(STREAM_ENDED_PATH, post(stream_ended))
        .route(STREAM_STATUS_PATH, post(stream_status))
}

/// The stream URL for a public base URL: `https://x/p` → `wss://x/p/twilio/media` (Twilio connects
/// over wss only; `http://` gives `ws://`, for a local emulator).
pub fn stream_url(public_url: &str) -> String {
    PublicUrl::new(public_url).websocket(MEDIA_PATH)
}

/// Whether a handshake's `X-Twilio-Signature` is Twilio's: over the stream URL with no
/// parameters, or, as Twilio's security page says to try when that fails, over the same URL with
/// a trailing `/` (twilio.com/docs/usage/security#validating-signatures-on-websocket-connections);
/// with the current auth token or, during a rotation, the previous one.
pub fn handshake_signed(tokens: &[&str], stream_url: &str, signed: &str) -> bool {
    let with_slash = format!("{stream_url}/");
    tokens
        .iter()
        .any(|token| [stream_url, with_slash.as_str()].iter().any(|url| signature::verify(token, url, &[], signed)))
}

/// The `<Parameter>`s a stream carries: what the session needs of the call (Twilio's `start` has
/// only its SIDs), and a token binding them to the CallSid. Twilio signs the handshake over the
/// stream URL alone, the same for every call; the token makes a captured handshake useless for
/// opening a stream with made-up parameters.
pub fn stream_params(key: &str, call: &VoiceCall) -> Vec<(String, String)> {
    let mut params = vec![("from".to_string(), call.from.clone())];
    if let Some(to) = &call.to {
        params.push(("to".into(), to.clone()));
    }
    if let Some(stir) = &call.stir_verstat {
        params.push(("stir".into(), stir.clone()));
    }
    let token = URL_SAFE_NO_PAD.encode(stream_mac(key, &call.call_sid, &params).finalize().into_bytes());
    params.push(("token".into(), token));
    params
}

/// The call of a stream's `start`, when its parameters carry a token we made for that CallSid.
pub fn call_of_stream(
    key: &str,
    call_sid: &str,
    custom: &std::collections::BTreeMap<String, String>,
) -> Option<VoiceCall> {
    let token = URL_SAFE_NO_PAD.decode(custom.get("token")?).ok()?;
    let params: Vec<(String, String)> =
        ["from", "to", "stir"].iter().filter_map(|n| custom.get(*n).map(|v| (n.to_string(), v.clone()))).collect();
    stream_mac(key, call_sid, &params).verify_slice(&token).ok()?;
    Some(VoiceCall {
        call_sid: call_sid.to_string(),
        from: custom.get("from").cloned().unwrap_or_default(),
        to: custom.get("to").cloned(),
        stir_verstat: custom.get("stir").cloned(),
        digits: None,
        speech: None,
        confidence: None,
    })
}

fn stream_mac(key: &str, call_sid: &str, params: &[(String, String)]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"orderline media stream\n");
    mac.update(call_sid.as_bytes());
    for (name, value) in params {
        mac.update(format!("\n{name}={value}").as_bytes());
    }
    mac
}

/// `POST /twilio/voice` in Media Streams mode: connect the stream. The caller's lookup starts
/// now, so the session's first words find it cached.
pub(super) fn connect(state: &AppState, req: &TwilioRequest, call: &VoiceCall, started: Instant) -> Response {
    let (lookup, from) = (state.lookup.clone(), call.from.clone());
    tokio::spawn(async move {
        let _ = lookup.lookup(&from).await;
    });
    let key = state.settings.twilio.auth_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default();
    let params = stream_params(&key, call);
    let urls = PublicUrl::new(&state.settings.server.public_url);
    let (after, status) = (urls.to(STREAM_ENDED_PATH), urls.to(STREAM_STATUS_PATH));
    match state.renderer.stream(&stream_url(&state.settings.server.public_url), &params, &after, &status) {
        Ok(xml) => {
            state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
            twiml(xml)
        }
        Err(e) => fallback(state, req, Some(call), 1, &e.to_string(), started),
    }
}

/// `GET /twilio/media`: the stream's handshake, signed by Twilio over the stream URL.
async fn media(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let signed = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    let tokens = auth_tokens(&state.settings);
    let valid = signed.is_some_and(|s| handshake_signed(&tokens, &stream_url(&state.settings.server.public_url), s));
    if !valid {
        tracing::warn!(signed = signed.is_some(), "Media Streams handshake without a valid X-Twilio-Signature refused");
        state.metrics.twilio_request("media", "forbidden", 0.0);
        state.metrics.media_stream_ended("forbidden");
        return (StatusCode::FORBIDDEN, "missing or invalid X-Twilio-Signature\n").into_response();
    }
    // Twilio's messages are a few hundred bytes. The socket zeroes its whole read buffer on every
    // read (128 KiB by default): at 50 messages a second a call, that was most of the CPU.
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_failed_upgrade(|e| tracing::warn!(error = %e, "Media Streams upgrade failed"))
        .on_upgrade(move |socket| session::run(state, socket))
}

/// `POST /twilio/voice/stream-status`: Twilio's report of the stream (twilio.com/docs/voice/twiml/
/// stream#statuscallback: StreamSid, StreamEvent stream-started | stream-stopped | stream-error,
/// StreamError, Timestamp), written to the call's record. Answered 204; nothing to say.
async fn stream_status(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let Ok(call) = VoiceCall::parse(&req) else {
        state.metrics.twilio_request(req.route(), "bad_request", 0.0);
        return (StatusCode::BAD_REQUEST, "no CallSid in a stream status callback\n").into_response();
    };
    let event = req.param("StreamEvent").unwrap_or("unknown");
    let detail = match req.param("StreamError").filter(|e| !e.is_empty()) {
        Some(error) => format!("{event}: {}", crate::domain::mask_pii(error)),
        None => event.to_string(),
    };
    if event == "stream-error" {
        tracing::warn!(call_sid = %call.call_sid, detail = %detail, "Twilio reports a Media Streams error");
    }
    let now = crate::store::Ts::from(state.clock.now());
    // One step each, so a start and a stop of the same call are both kept.
    let step = EventStep::StreamStatus(match event {
        "stream-started" => 0,
        "stream-stopped" => 1,
        "stream-error" => 2,
        _ => 3,
    });
    state.recorder.record(super::call::events(&call, step, now, vec![Event::Stream(detail)]));
    state.metrics.twilio_request(req.route(), "answered", 0.0);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /twilio/voice/stream-ended`: the stream is closed; go on as its session decided. With
/// no decision (the stream failed, was refused, or its instance died), the caller gets the
/// fallback: an apology and a person.
async fn stream_ended(State(state): State<AppState>, req: TwilioRequest) -> Response {
    let started = Instant::now();
    let call = match VoiceCall::parse(&req) {
        Ok(call) => call,
        Err(why) => return fallback(&state, &req, None, 0, &why, started),
    };
    let why = match tokio::time::timeout(HANDOFF_READ_LIMIT, state.handoffs.take(&call.call_sid)).await {
        Ok(Ok(Some(xml))) => {
            state.metrics.twilio_request(req.route(), "answered", started.elapsed().as_secs_f64());
            return twiml(xml);
        }
        Ok(Ok(None)) => "the media stream ended without a decision (it failed, or was refused)".to_string(),
        Ok(Err(e)) => format!("reading the stream's decision: {e}"),
        Err(_) => format!("reading the stream's decision took longer than {HANDOFF_READ_LIMIT:?}"),
    };
    fallback(&state, &req, Some(&call), 0, &why, started)
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

    #[test]
    fn the_stream_url_is_the_public_url_over_websockets() {
        assert_eq!(stream_url("https://line.example.com"), "wss://line.example.com/twilio/media");
        assert_eq!(stream_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/twilio/media");
    }

    #[test]
    fn a_handshake_is_accepted_with_or_without_the_trailing_slash_and_either_token() {
        let url = "wss://line.example.com/p/twilio/media";
        for (token, signed_url) in [("new", url), ("new", "wss://line.example.com/p/twilio/media/"), ("old", url)] {
            let signed = signature::sign(token, signed_url, &[]);
            assert!(handshake_signed(&["new", "old"], url, &signed), "{token} over {signed_url}");
        }
        assert!(!handshake_signed(&["new"], url, &signature::sign("old", url, &[])), "a token no longer accepted");
        assert!(!handshake_signed(&["new"], url, &signature::sign("new", "wss://other/twilio/media", &[])));
    }

    #[test]
    fn a_streams_parameters_lead_back_to_its_call() {
        let params: std::collections::BTreeMap<String, String> = stream_params("key", &call()).into_iter().collect();
        let back = call_of_stream("key", "CA1", &params).expect("the token is ours");
        assert_eq!(
            (back.from.as_str(), back.stir_verstat.as_deref()),
            ("+15551234567", Some("TN-Validation-Passed-A"))
        );
    }

    #[test]
    fn a_token_does_not_open_another_call_or_other_parameters() {
        let params: std::collections::BTreeMap<String, String> = stream_params("key", &call()).into_iter().collect();
        assert!(call_of_stream("key", "CA2", &params).is_none(), "another CallSid");
        assert!(call_of_stream("other key", "CA1", &params).is_none(), "another auth token");
        let mut forged = params.clone();
        forged.insert("from".into(), "+15550000000".into());
        assert!(call_of_stream("key", "CA1", &forged).is_none(), "another caller");
        forged = params.clone();
        forged.remove("token");
        assert!(call_of_stream("key", "CA1", &forged).is_none(), "no token");
    }
}
