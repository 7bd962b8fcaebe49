//! Twilio's side of a ConversationRelay call (`orderline call --relay`, tests): the incoming
//! call's signed POST, then the `<Connect action><ConversationRelay>` it answers with, spoken as
//! Twilio speaks it — the welcome greeting, a WebSocket opened with a signed handshake, `setup`
//! with the `<Parameter>`s as customParameters, `text` tokens gathered into what the caller hears,
//! the caller's words as `prompt`s and keys as `dtmf` — and, when the session ends, the
//! `<Connect action>` request (with `HandoffData` when orderline ended it) and the TwiML after it,
//! followed with the TwiML caller emulator.
//!
//! Sources (read 2026-12-05): twilio.com/docs/voice/twiml/connect/conversationrelay (attributes,
//! `<Parameter>`), twilio.com/docs/voice/twiml/connect (action: "When the <Connect> verb ends,
//! Twilio sends an HTTP request to this URL with Twilio's standard request parameters along with
//! some parameters specific to the nested noun"), twilio.com/docs/voice/conversationrelay/
//! websocket-messages (setup, prompt, dtmf, text, end {handoffData}), …/onboarding (the handshake
//! carries X-Twilio-Signature, "the same verification mechanism used for standard Twilio
//! webhooks"); Twilio's own samples read `HandoffData`, `CallStatus` and `ErrorCode` (64105: the
//! WebSocket ended abruptly) in the action request.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::media::{StreamSocket, connect_signed, connect_stream};
use super::twilio::{
    ACCOUNT_SID, CallError, Ending, Key, Transcript, Turn, TwilioCaller, random_call_sid, resolve_url,
};
use crate::twilio::relay::protocol::{FromTwilio, Setup, ToTwilio};
use crate::twilio::signature;
use crate::twilio::twiml::Verb;

/// After a talk cycle's last token, how long the caller waits for more words before answering.
const TURN_GAP: Duration = Duration::from_millis(150);
/// Longest the caller stays on the line with nothing said to them.
const PATIENCE: Duration = Duration::from_secs(120);

/// What the caller does when it is their turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerTurn {
    /// Says these words (Twilio sends them as one `prompt` with `last`).
    Say(String),
    /// Presses these keys (one `dtmf` each).
    Press(String),
    /// Says nothing and waits.
    Nothing,
}

/// The caller's voice and fingers: asked each time orderline has finished talking, with what it
/// said; `None` hangs up.
pub trait Voice {
    fn answer(&mut self, heard: &str) -> Option<CallerTurn>;
    /// After the session, at a TwiML verb that takes input (a `<Record>`, a `<Gather>`): what the
    /// caller does, as a TwiML-mode caller would; `None` hangs up.
    fn after_session(&mut self, verb: &Verb) -> Option<Key> {
        let _ = verb;
        None
    }
}

/// A scripted caller: `"say:where is my package"` says it (`mumble:` too: ConversationRelay
/// sends no confidence), `"1"` presses 1, an answer of several keys gets `#` after it, `""` or
/// `"timeout"` says nothing; when the script runs out the caller hangs up.
#[derive(Debug, Clone)]
pub struct Script {
    turns: VecDeque<CallerTurn>,
}

pub fn scripted_relay(entries: &[&str]) -> Script {
    let turns = entries
        .iter()
        .map(|entry| match entry.trim() {
            "" | "timeout" => CallerTurn::Nothing,
            said if said.starts_with("say:") => CallerTurn::Say(said[4..].trim().to_string()),
            said if said.starts_with("mumble:") => CallerTurn::Say(said[7..].trim().to_string()),
            one if one.chars().count() == 1 || one.ends_with('#') => CallerTurn::Press(one.to_string()),
            several => CallerTurn::Press(format!("{several}#")),
        })
        .collect();
    Script { turns }
}

impl Voice for Script {
    fn answer(&mut self, _: &str) -> Option<CallerTurn> {
        self.turns.pop_front()
    }

    fn after_session(&mut self, _: &Verb) -> Option<Key> {
        self.turns.pop_front().map(|turn| match turn {
            CallerTurn::Say(said) => Key::Speech { said, confidence: 1.0 },
            CallerTurn::Press(keys) => Key::Digits(keys),
            CallerTurn::Nothing => Key::Timeout,
        })
    }
}

/// The answer to the incoming call, read as Twilio reads `<Connect><ConversationRelay>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialled {
    pub call_sid: String,
    pub connect: Turn,
    /// The `<ConversationRelay>` element.
    pub relay: Verb,
    /// Its `url`, resolved against the voice URL.
    pub url: String,
    /// The `<Connect action>`, resolved.
    pub action: String,
    pub greeting: String,
    pub parameters: BTreeMap<String, String>,
}

/// Everything a ConversationRelay call did.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayTranscript {
    pub dialled: Dialled,
    /// What the caller heard, talk cycle by talk cycle: the welcome greeting first.
    pub heard: Vec<String>,
    /// What the caller said and pressed, in order.
    pub said: Vec<CallerTurn>,
    /// The `handoffData` of orderline's `end`; none when the session ended otherwise.
    pub handoff: Option<String>,
    /// The close frame orderline sent (code, reason), if it closed the socket.
    pub close: Option<(u16, String)>,
    /// Other messages orderline sent (`play`, `sendDigits`, `language`).
    pub other: Vec<ToTwilio>,
    /// Text tokens orderline asked to be said in a language of their own (`lang`), with it.
    pub in_language: Vec<(String, String)>,
    /// The `<Connect action>` request and the TwiML after it, followed as Twilio would.
    pub after: Option<Transcript>,
    pub ending: Ending,
}

impl RelayTranscript {
    pub fn call_sid(&self) -> &str {
        &self.dialled.call_sid
    }

    /// Everything heard over the relay, joined.
    pub fn words(&self) -> String {
        self.heard.join(" | ")
    }
}

/// How the session ended, seen from Twilio's side.
enum SessionEnd {
    /// orderline sent `end` with this `handoffData`.
    Ended(Option<String>),
    /// orderline closed the socket without `end`.
    Closed,
    /// The caller hung up.
    HungUp,
}

/// Places ConversationRelay calls with a [`TwilioCaller`]'s settings.
#[derive(Clone)]
pub struct RelayCaller {
    pub caller: TwilioCaller,
    /// Sign the handshake with this instead of Twilio's signature (tests of refusals).
    pub signature: Option<String>,
}

impl RelayCaller {
    pub fn new(caller: TwilioCaller) -> RelayCaller {
        RelayCaller { caller, signature: None }
    }

    /// Dials in: `POST /twilio/voice`, and the `<Connect><ConversationRelay>` it answers with.
    pub async fn dial(&self) -> Result<Dialled, CallError> {
        let (call_sid, voice_url, connect) = self.ring().await?;
        relay_of(call_sid, &voice_url, connect).ok_or_else(|| {
            CallError::UnsupportedVerb(
                "an answer without <Connect><ConversationRelay> (is the server in conversation_relay mode?)".into(),
            )
        })
    }

    /// The incoming call's request and its answer.
    async fn ring(&self) -> Result<(String, String, Turn), CallError> {
        let config = self.caller.config();
        let call_sid = config.call_sid.clone().unwrap_or_else(random_call_sid);
        let voice_url = format!("{}/twilio/voice", config.base_url);
        let connect = self.caller.post(&voice_url, &self.caller.base_params(&call_sid, "ringing")).await?;
        if connect.status != 200 {
            return Err(CallError::Status { url: voice_url, status: connect.status });
        }
        Ok((call_sid, voice_url, connect))
    }

    /// Opens the session's socket as Twilio does: the handshake signed over the session URL.
    pub async fn open(&self, dialled: &Dialled) -> Result<StreamSocket, CallError> {
        match &self.signature {
            Some(signed) => connect_signed(&dialled.url, signed).await,
            None => connect_stream(&dialled.url, &self.caller.config().auth_token).await,
        }
    }

    /// Dials in, talks until the session ends with `voice` answering each time orderline has
    /// finished talking, then requests the `<Connect action>` and follows the TwiML after it. An
    /// incoming call answered with TwiML alone (the fallback, a first step that asks nothing) is
    /// followed as TwiML: `after` is that call, and `dialled.relay` an empty element.
    pub async fn call(&self, voice: &mut impl Voice, mut hear: impl FnMut(&str)) -> Result<RelayTranscript, CallError> {
        let (call_sid, voice_url, connect) = self.ring().await?;
        let Some(dialled) = relay_of(call_sid.clone(), &voice_url, connect.clone()) else {
            let params = self.caller.base_params(&call_sid, "ringing");
            let first = Some(connect.clone());
            let after = self
                .caller
                .walk_from(call_sid.clone(), voice_url, params, first, |v: &Verb| voice.after_session(v), |_| {})
                .await?;
            let ending = after.ending.clone();
            let dialled = Dialled {
                call_sid,
                connect,
                relay: Verb::default(),
                url: String::new(),
                action: String::new(),
                greeting: String::new(),
                parameters: BTreeMap::new(),
            };
            return Ok(RelayTranscript {
                dialled,
                heard: Vec::new(),
                said: Vec::new(),
                handoff: None,
                close: None,
                other: Vec::new(),
                in_language: Vec::new(),
                after: Some(after),
                ending,
            });
        };
        let mut socket = self.open(&dialled).await?;
        send(&mut socket, &setup(&dialled, self.caller.config())).await?;
        let mut heard = Vec::new();
        if !dialled.greeting.is_empty() {
            hear(&dialled.greeting);
            heard.push(dialled.greeting.clone());
        }
        let lang = dialled.relay.attr("language").unwrap_or("en-US").to_string();
        let mut run = Run { said: Vec::new(), close: None, other: Vec::new(), in_language: Vec::new(), lang };
        let end = converse(&mut socket, voice, &mut heard, &mut run, &mut hear).await?;
        let mut params = self.caller.base_params(&dialled.call_sid, "in-progress");
        params.push(("SessionId".into(), session_id(&dialled.call_sid)));
        let handoff = match end {
            SessionEnd::Ended(handoff) => {
                params.push(("SessionStatus".into(), "ended".into()));
                if let Some(data) = &handoff {
                    params.push(("HandoffData".into(), data.clone()));
                }
                handoff
            }
            SessionEnd::Closed => {
                params.extend([
                    ("SessionStatus".to_string(), "failed".to_string()),
                    ("ErrorCode".to_string(), "64105".to_string()),
                ]);
                None
            }
            SessionEnd::HungUp => {
                params = self.caller.base_params(&dialled.call_sid, "completed");
                params.extend([
                    ("SessionId".to_string(), session_id(&dialled.call_sid)),
                    ("SessionStatus".to_string(), "completed".to_string()),
                ]);
                None
            }
        };
        let after = self
            .caller
            .walk(dialled.call_sid.clone(), dialled.action.clone(), params, |v: &Verb| voice.after_session(v), |_| {})
            .await?;
        let ending = after.ending.clone();
        Ok(RelayTranscript {
            dialled,
            heard,
            said: run.said,
            handoff,
            close: run.close,
            other: run.other,
            in_language: run.in_language,
            after: Some(after),
            ending,
        })
    }
}

/// The `<Connect><ConversationRelay>` of an answer, read as Twilio reads it; `None` for an answer
/// without one.
fn relay_of(call_sid: String, voice_url: &str, connect: Turn) -> Option<Dialled> {
    let document = connect.document.clone()?;
    let verb = document.verbs.iter().find(|v| v.name == "Connect")?;
    let relay = verb.children.iter().find(|c| c.name == "ConversationRelay").cloned()?;
    let parameters = relay
        .children
        .iter()
        .filter(|p| p.name == "Parameter")
        .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value").unwrap_or("").to_string())))
        .collect();
    Some(Dialled {
        url: resolve_url(voice_url, relay.attr("url").unwrap_or("")),
        action: resolve_url(voice_url, verb.attr("action").unwrap_or("")),
        greeting: relay.attr("welcomeGreeting").unwrap_or("").trim().to_string(),
        parameters,
        relay,
        connect,
        call_sid,
    })
}

struct Run {
    said: Vec<CallerTurn>,
    close: Option<(u16, String)>,
    other: Vec<ToTwilio>,
    in_language: Vec<(String, String)>,
    /// The language Twilio transcribes in: the `<ConversationRelay language>`, then what a
    /// `language` message's `transcriptionLanguage` says; each `prompt` names it as `lang`
    /// (twilio.com/docs/voice/conversationrelay/websocket-messages).
    lang: String,
}

/// The session from `setup` to its end: tokens gathered into talk cycles, and the caller's turn
/// once a cycle's last token has come and nothing more follows for a moment.
async fn converse(
    socket: &mut StreamSocket,
    voice: &mut impl Voice,
    heard: &mut Vec<String>,
    run: &mut Run,
    hear: &mut impl FnMut(&str),
) -> Result<SessionEnd, CallError> {
    let mut words = String::new();
    let mut turn_at = Some(Instant::now() + TURN_GAP);
    let mut patience = Instant::now() + PATIENCE;
    loop {
        let far = Instant::now() + PATIENCE * 2;
        tokio::select! {
            message = socket.next() => {
                let text = match message {
                    None | Some(Err(_)) => return Ok(SessionEnd::Closed),
                    Some(Ok(Message::Close(frame))) => {
                        run.close = Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
                        return Ok(SessionEnd::Closed);
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                };
                let message: ToTwilio = serde_json::from_str(text.as_str()).map_err(|e| CallError::Http {
                    url: "ConversationRelay".into(),
                    reason: format!("orderline sent {text}: {e}"),
                })?;
                patience = Instant::now() + PATIENCE;
                match message {
                    ToTwilio::Text { token, last, lang, .. } => {
                        if let Some(lang) = lang {
                            run.in_language.push((token.trim().to_string(), lang));
                        }
                        words.push_str(&token);
                        turn_at = None;
                        if last {
                            let cycle = std::mem::take(&mut words).trim().to_string();
                            hear(&cycle);
                            heard.push(cycle);
                            turn_at = Some(Instant::now() + TURN_GAP);
                        }
                    }
                    ToTwilio::End { handoff_data } => {
                        // Twilio ends the session: it closes the socket and asks the action.
                        let _ = socket.close(None).await;
                        return Ok(SessionEnd::Ended(handoff_data));
                    }
                    ToTwilio::Language { transcription_language, tts_language } => {
                        if let Some(lang) = &transcription_language {
                            run.lang = lang.clone();
                        }
                        run.other.push(ToTwilio::Language { transcription_language, tts_language });
                    }
                    other => run.other.push(other),
                }
            }
            _ = tokio::time::sleep_until(turn_at.unwrap_or(far)), if turn_at.is_some() => {
                turn_at = None;
                let last_heard = heard.last().cloned().unwrap_or_default();
                match voice.answer(&last_heard) {
                    Some(CallerTurn::Say(said)) => {
                        send(socket, &FromTwilio::Prompt { voice_prompt: said.clone(), lang: Some(run.lang.clone()), last: true }).await?;
                        run.said.push(CallerTurn::Say(said));
                    }
                    Some(CallerTurn::Press(keys)) => {
                        for digit in keys.chars() {
                            send(socket, &FromTwilio::Dtmf { digit: digit.to_string() }).await?;
                        }
                        run.said.push(CallerTurn::Press(keys));
                    }
                    Some(CallerTurn::Nothing) => run.said.push(CallerTurn::Nothing),
                    None => {
                        let _ = socket.close(None).await;
                        return Ok(SessionEnd::HungUp);
                    }
                }
            }
            _ = tokio::time::sleep_until(patience) => {
                let _ = socket.close(None).await;
                return Ok(SessionEnd::HungUp);
            }
        }
    }
}

/// A session's SID for a call (`VX` and 32 hex digits).
fn session_id(call_sid: &str) -> String {
    format!("VX{}", call_sid.get(2..).unwrap_or(""))
}

/// Twilio's `setup` for a dialled call, carrying the `<Parameter>`s.
pub fn setup(dialled: &Dialled, config: &super::twilio::CallerConfig) -> FromTwilio {
    FromTwilio::Setup(Box::new(Setup {
        session_id: session_id(&dialled.call_sid),
        account_sid: ACCOUNT_SID.into(),
        call_sid: dialled.call_sid.clone(),
        from: config.from.clone(),
        to: config.to.clone(),
        direction: "inbound".into(),
        call_status: "RINGING".into(),
        custom_parameters: dialled.parameters.clone(),
    }))
}

pub async fn send(socket: &mut StreamSocket, message: &FromTwilio) -> Result<(), CallError> {
    let text = serde_json::to_string(message).expect("a message of strings always serializes");
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| CallError::Http { url: "ConversationRelay".into(), reason: e.to_string() })
}

/// The handshake's signature for `url` with `token`, as Twilio computes it.
pub fn handshake_signature(url: &str, token: &str) -> String {
    signature::sign(token, url, &[])
}

/// Words or keys typed on the terminal, a line each time orderline has finished talking.
struct Terminal;

impl Voice for Terminal {
    fn answer(&mut self, _: &str) -> Option<CallerTurn> {
        println!("  (say something: \"say where is my order\", or keys; an empty line waits, end of input hangs up)");
        match tokio::task::block_in_place(super::twilio::read_key) {
            Ok(Some(Key::Speech { said, .. })) => Some(CallerTurn::Say(said)),
            Ok(Some(Key::Digits(d))) if d.chars().count() > 1 && !d.ends_with('#') => {
                Some(CallerTurn::Press(format!("{d}#")))
            }
            Ok(Some(Key::Digits(d))) => Some(CallerTurn::Press(d)),
            Ok(Some(Key::Timeout)) => Some(CallerTurn::Nothing),
            Ok(None) | Err(_) => None,
        }
    }

    fn after_session(&mut self, verb: &Verb) -> Option<Key> {
        super::twilio::read_key_at(verb)
    }
}

/// Prints what a voice says and presses.
struct Printed<V: Voice>(V);

impl<V: Voice> Voice for Printed<V> {
    fn answer(&mut self, heard: &str) -> Option<CallerTurn> {
        let turn = self.0.answer(heard);
        match &turn {
            Some(CallerTurn::Say(said)) => println!("  said: {said:?}"),
            Some(CallerTurn::Press(keys)) => println!("  pressed: {keys}"),
            Some(CallerTurn::Nothing) => println!("  said nothing"),
            None => println!("  hung up"),
        }
        turn
    }

    fn after_session(&mut self, verb: &Verb) -> Option<Key> {
        let key = self.0.after_session(verb);
        super::twilio::print_key_at(verb, key.as_ref());
        key
    }
}

/// `orderline call --relay`: places one ConversationRelay call and prints what was heard (the
/// welcome greeting first), what was said and pressed, how the session ended and where the call
/// went, then posts the `completed` callback.
pub async fn run_cli(options: super::twilio::CallOptions) -> Result<(), CallError> {
    let caller = RelayCaller::new(options.caller());
    let c = caller.caller.config();
    println!("calling {} from {} to {} (ConversationRelay)", c.base_url, c.from, c.to);
    let hear = |words: &str| println!("  heard: {words}");
    let texts = options.texts_before().await?;
    let started = std::time::Instant::now();
    let transcript = match &options.keys {
        Some(keys) => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            caller.call(&mut Printed(scripted_relay(&keys)), hear).await?
        }
        None => caller.call(&mut Printed(Terminal), hear).await?,
    };
    match (&transcript.handoff, &transcript.close) {
        (Some(handoff), _) => println!("  session ended by orderline: {handoff}"),
        (None, Some((code, reason))) => println!("  session closed by orderline: {code} {reason}"),
        (None, None) => println!("  session ended by the caller"),
    }
    let ending = match &transcript.after {
        Some(after) => {
            for say in after.spoken() {
                println!("  say: {say}");
            }
            super::twilio::ending_words(after)?
        }
        None => "hangup".into(),
    };
    println!("→ {ending}");
    options.print_texts_since(&texts).await?;
    let duration = u32::try_from(started.elapsed().as_secs_f64().ceil() as u64).unwrap_or(u32::MAX);
    let status = caller.caller.status_callback(transcript.call_sid(), "completed", Some(duration), 0).await?;
    println!("status callback: completed after {duration} s → HTTP {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_says_presses_and_waits_then_hangs_up() {
        let mut script = scripted_relay(&["say:where is my package", "0", "1042", "timeout", "mumble:agent"]);
        assert_eq!(script.answer(""), Some(CallerTurn::Say("where is my package".into())));
        assert_eq!(script.answer(""), Some(CallerTurn::Press("0".into())));
        assert_eq!(script.answer(""), Some(CallerTurn::Press("1042#".into())));
        assert_eq!(script.answer(""), Some(CallerTurn::Nothing));
        assert_eq!(script.answer(""), Some(CallerTurn::Say("agent".into())));
        assert_eq!(script.answer(""), None);
    }

    #[test]
    fn a_session_is_named_after_its_call() {
        assert_eq!(session_id("CA0123"), "VX0123");
    }
}
