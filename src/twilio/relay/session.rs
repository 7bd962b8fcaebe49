//! One ConversationRelay session, from `setup` to `end`: the call's questions answered by what
//! the caller says (`prompt`, understood as the keys it stands for, exactly as TwiML mode
//! understands `SpeechResult`) or presses (`dtmf`, gathered per question as the step's `<Gather>`
//! says), each reply's words sent as `text` tokens, and at a transfer or goodbye that step's TwiML
//! saved for the `<Connect action>` before `end` names it. Never panics on what arrives: a
//! malformed message closes the session with a logged reason (Twilio then asks the action, which
//! gives the caller the fallback); messages we do not know, and anything said after `end`, are
//! counted and let go.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::Instant;

use super::protocol::{FromTwilio, Handoff, HandoffReason, Setup, ToTwilio};
use super::{Opening, Words, call_of_session, speaking_time, spoken_language, words_of};
use crate::app::AppState;
use crate::domain::{Event, Language, mask_phone, mask_pii};
use crate::ivr::{CallFlow, Input, Reply, Stage, Step};
use crate::store::{Handoff as SavedHandoff, Ts};
use crate::twilio::call::{
    CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL, VoiceCall, fallback_twiml, guarded, record_fallback, record_reply,
};
use crate::twilio::voice::{input_of, reply_twiml};

/// Twilio sends `setup` as soon as the socket opens; a session without one is not Twilio's.
const SETUP_WAIT: Duration = Duration::from_secs(10);
/// After `end`, how long Twilio may take to close the socket before we do.
const END_WAIT: Duration = Duration::from_secs(5);
/// Longest the decision's write may take before the session ends anyway.
const HANDOFF_WRITE_LIMIT: Duration = Duration::from_secs(2);
/// The most of one utterance that is read: the understanding looks at 200 characters, and the
/// call record keeps fewer.
const MAX_PROMPT_CHARS: usize = 1_000;
/// The most keys one answer gathers; an order number is far shorter.
const MAX_DIGITS: usize = 64;

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The flow reached a transfer or goodbye (or the fallback); the `<Connect action>` goes on.
    HandedOff(&'static str),
    /// The socket went away before that (the caller hung up, Twilio ended the session).
    Closed(String),
    /// A malformed or out-of-order message.
    Protocol(String),
    /// A `setup` that belongs to no call we answered.
    Refused(String),
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::HandedOff(kind) => kind,
            End::Closed(_) => "closed",
            End::Protocol(_) => "protocol_error",
            End::Refused(_) => "refused",
        }
    }
}

/// The caller's answer to one question.
struct Answer {
    input: Input,
    /// What was said, as TwiML mode records it.
    heard: Option<Event>,
    /// The caller spoke over the question (Twilio stopped saying it).
    interrupted: bool,
}

struct Session {
    state: AppState,
    socket: WebSocket,
    call_sid: String,
}

/// Runs one session to its end.
pub async fn run(state: AppState, socket: WebSocket) {
    state.metrics.relay_sessions_active.inc();
    let mut session = Session { state: state.clone(), socket, call_sid: String::new() };
    let end = session.converse().await.unwrap_or_else(|end| end);
    match &end {
        End::Protocol(why) => {
            tracing::warn!(call_sid = %session.call_sid, reason = %mask_pii(why), "ConversationRelay session closed: protocol error");
            session.close(CLOSE_PROTOCOL, why).await;
        }
        End::Refused(why) => {
            tracing::warn!(call_sid = %session.call_sid, reason = %mask_pii(why), "ConversationRelay session refused");
            session.close(CLOSE_POLICY, why).await;
        }
        End::Closed(why) => {
            tracing::info!(call_sid = %session.call_sid, reason = %why, "ConversationRelay session went away")
        }
        End::HandedOff(_) => {
            tracing::debug!(call_sid = %session.call_sid, end = end.label(), "ConversationRelay session ended")
        }
    }
    state.metrics.relay_session_ended(end.label());
    state.metrics.relay_sessions_active.dec();
}

impl Session {
    /// The call, question by question, until it is handed off or ends. Every way out is an `End`.
    async fn converse(&mut self) -> Result<End, End> {
        let (call, opening) = self.setup().await?;
        let caller = call.caller();
        let flow: CallFlow = self.state.flow.clone();
        let rate = self.state.settings.ivr.relay_words_per_minute;
        let default_language = self.state.settings.ivr.spoken_languages[0].language;
        // The language Twilio speaks and listens in: the greeting's (`relay.xml`), then as the
        // call's language changes (key 9, "español").
        let mut speaking_in = opening.state.lang.unwrap_or(default_language);
        // What the greeting could not say in its one language.
        let later = opening.later.clone();
        for (i, (said, lang)) in later.iter().enumerate() {
            let mut message = ToTwilio::words(said.clone(), i + 1 == later.len());
            if let ToTwilio::Text { lang: token_lang, .. } = &mut message {
                *token_lang = Some(lang.clone());
            }
            self.send(message).await?;
        }
        let mut question = opening;
        // What the question was asked by: the greeting, then each step's template.
        let mut asked_by: &'static str = "greeting";
        loop {
            let step = question.state.step;
            let language = question.state.lang.unwrap_or(default_language);
            let answer = match question.stage {
                // After "one moment": the lookup finishes, nothing is asked.
                Stage::Continue => Answer { input: Input::Nothing, heard: None, interrupted: false },
                stage => {
                    let speaking = speaking_time(question.words, rate);
                    self.listen(&call, stage, language, speaking).await?
                }
            };
            let result = guarded(flow.answer(&caller, question.stage, question.state, answer.input)).await;
            let mut reply = match result {
                Ok(reply) => reply,
                Err(why) => return self.fallback(&call, step, &why).await,
            };
            if let Some(heard) = answer.heard {
                reply.events.insert(0, heard);
            }
            if answer.interrupted {
                reply.events.insert(0, Event::BargeIn(asked_by.to_string()));
            }
            let Some((stage, next)) = reply.next else {
                let reason = match reply.step {
                    Step::Transfer(_) => HandoffReason::Transfer,
                    Step::Voicemail(_) => HandoffReason::Voicemail,
                    _ => HandoffReason::Goodbye,
                };
                let customer_id = match &reply.step {
                    Step::Transfer(t) => t.context.customer_id.as_deref().and_then(|id| id.parse().ok()),
                    _ => reply.outcome.customer_id,
                };
                let twiml = self.step_twiml(&call, &reply);
                record_reply(&self.state, &call, step, reply.outcome, reply.events, None);
                return self.end(&call, customer_id, twiml, Handoff { reason, step }).await;
            };
            let words = match words_of(&self.state, &reply) {
                Ok(words) => words,
                Err(why) => return self.fallback(&call, step, &why).await,
            };
            record_reply(&self.state, &call, step, reply.outcome, reply.events, None);
            if reply.language != speaking_in {
                self.speak_in(reply.language).await?;
                speaking_in = reply.language;
            }
            let speaking_tag = spoken_language(&self.state, speaking_in).tag.clone();
            self.say(&words, &speaking_tag).await?;
            asked_by = reply.step.template();
            question = Opening { stage, state: next, words: words.count(), later: Vec::new() };
        }
    }

    /// `setup`, for a call we answered: its call and the question the greeting asked.
    async fn setup(&mut self) -> Result<(VoiceCall, Opening), End> {
        let deadline = Instant::now() + SETUP_WAIT;
        loop {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(End::Protocol(format!("no setup message within {SETUP_WAIT:?}")));
                }
                message = self.next_message() => message?,
            };
            match message {
                FromTwilio::Setup(setup) => return self.begin(*setup),
                FromTwilio::Unknown => self.ignored("unknown_type"),
                FromTwilio::Error { description } => self.twilio_error(&description),
                other => return Err(End::Protocol(format!("`{}` before `setup`", other.kind()))),
            }
        }
    }

    fn begin(&mut self, setup: Setup) -> Result<(VoiceCall, Opening), End> {
        let sid = setup.call_sid.trim();
        if sid.is_empty() || sid.len() > 64 || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(End::Protocol("`setup` without a CallSid".into()));
        }
        self.call_sid = sid.to_string();
        let key = self.state.settings.twilio.auth_token.as_ref().map(|t| t.expose()).unwrap_or_default();
        let Some((call, opening)) = call_of_session(key, sid, &setup.custom_parameters) else {
            return Err(End::Refused("`setup` does not carry the token of a call orderline answered".into()));
        };
        tracing::debug!(call_sid = %call.call_sid, session = %setup.session_id.chars().take(40).collect::<String>(),
            from = %mask_phone(&call.from), "ConversationRelay session started");
        Ok((call, opening))
    }

    /// The caller's answer to the question of `stage`: an utterance (`prompt` with `last`), or
    /// keys as the question takes them (`Stage::ask`), or silence once the question has been said
    /// (`speaking`) and the Gather's timeout has passed, which the flow hears as no answer (asked
    /// again once, then a person or goodbye, as in TwiML mode).
    async fn listen(
        &mut self,
        call: &VoiceCall,
        stage: Stage,
        language: Language,
        speaking: Duration,
    ) -> Result<Answer, End> {
        let keys = stage.ask();
        let mut deadline = Instant::now() + speaking + keys.timeout();
        let mut digits = String::new();
        let mut interrupted = false;
        loop {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(keyed(call, stage, language, digits, interrupted)),
                message = self.next_message() => message?,
            };
            match message {
                FromTwilio::Prompt { last: false, .. } => {
                    // The caller is still talking: wait for the whole utterance.
                    self.ignored("partial_prompt");
                    deadline = deadline.max(Instant::now() + keys.timeout());
                }
                FromTwilio::Prompt { voice_prompt, .. } if digits.is_empty() => {
                    let said: String = voice_prompt.chars().take(MAX_PROMPT_CHARS).collect();
                    let spoken = VoiceCall { speech: Some(said), confidence: None, digits: None, ..call.clone() };
                    let (input, heard) = input_of(&spoken, stage, language);
                    return Ok(Answer { input, heard, interrupted });
                }
                // Keys came first: they are the answer.
                FromTwilio::Prompt { .. } => self.ignored("prompt_during_keys"),
                FromTwilio::Dtmf { digit } => {
                    let key = match digit.trim().chars().collect::<Vec<_>>()[..] {
                        [key @ ('0'..='9' | '*' | '#')] => key,
                        _ => {
                            self.ignored("unknown_digit");
                            continue;
                        }
                    };
                    if Some(key) == keys.finish_on {
                        return Ok(keyed(call, stage, language, digits, interrupted));
                    }
                    if digits.len() >= MAX_DIGITS {
                        self.ignored("too_many_digits");
                        continue;
                    }
                    digits.push(key);
                    if keys.max_digits.is_some_and(|n| digits.len() >= usize::from(n)) {
                        return Ok(keyed(call, stage, language, digits, interrupted));
                    }
                    deadline = Instant::now() + keys.timeout();
                }
                FromTwilio::Interrupt { .. } => interrupted = true,
                FromTwilio::Error { description } => self.twilio_error(&description),
                FromTwilio::Setup(_) => return Err(End::Protocol("a second `setup`".into())),
                FromTwilio::Unknown => self.ignored("unknown_type"),
            }
        }
    }

    /// Sends a reply's words, one token per `<Say>`; the last one ends the talk cycle. Each may
    /// be interrupted by the caller (twilio.com/docs/voice/conversationrelay/websocket-messages:
    /// text {token, last, interruptible}).
    async fn say(&mut self, words: &Words, speaking: &str) -> Result<(), End> {
        for (i, said) in words.says.iter().enumerate() {
            let last = i + 1 == words.says.len();
            let token = if last { said.clone() } else { format!("{said} ") };
            let mut message = ToTwilio::words(token, last);
            // A sentence in another language than the session's (the offer of Spanish in an
            // English question) names its language on the token
            // (twilio.com/docs/voice/conversationrelay/websocket-messages#text-tokens-message).
            if let (ToTwilio::Text { lang, .. }, Some(said_in)) = (&mut message, words.langs.get(i).cloned().flatten())
                && said_in != speaking
            {
                *lang = Some(said_in);
            }
            self.send(message).await?;
        }
        Ok(())
    }

    /// Speaks and listens in `language` from now on (a `language` message:
    /// twilio.com/docs/voice/conversationrelay/websocket-messages, read 2026-12-05).
    async fn speak_in(&mut self, language: Language) -> Result<(), End> {
        let tag = spoken_language(&self.state, language).tag.clone();
        self.send(ToTwilio::Language { tts_language: Some(tag.clone()), transcription_language: Some(tag) }).await
    }

    /// The TwiML a TwiML call would get for `reply` (a transfer or goodbye: its words, then the
    /// connection or the hang-up); the fallback's if the template fails.
    fn step_twiml(&self, call: &VoiceCall, reply: &Reply) -> String {
        reply_twiml(&self.state, reply).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the step's template failed; the caller gets the fallback");
            fallback_twiml(&self.state, Some(call))
        })
    }

    /// Saves `twiml` as the call's handoff, then ends the session naming it in `handoffData`.
    /// Twilio closes the socket and asks the `<Connect action>`; what the caller says meanwhile
    /// is counted and let go. A handoff that cannot be saved is logged: the action then gives
    /// the caller the fallback.
    async fn end(
        &mut self,
        call: &VoiceCall,
        customer_id: Option<i64>,
        twiml: String,
        handoff: Handoff,
    ) -> Result<End, End> {
        let saved = SavedHandoff {
            call_sid: call.call_sid.clone(),
            shop: self.state.settings.shopify.shop.clone().unwrap_or_default(),
            customer_id,
            twiml,
        };
        let now = Ts::from(self.state.clock.now());
        match tokio::time::timeout(HANDOFF_WRITE_LIMIT, self.state.handoffs.put(saved, now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the session's decision was not saved; the caller gets the fallback")
            }
            Err(_) => tracing::error!("saving the session's decision timed out; the caller gets the fallback"),
        }
        self.send(ToTwilio::End { handoff_data: Some(handoff.to_json()) }).await?;
        let deadline = Instant::now() + END_WAIT;
        loop {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                message = self.socket.recv() => message,
            };
            match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    return Ok(End::HandedOff(handoff.reason.as_str()));
                }
                Some(Ok(Message::Text(_) | Message::Binary(_))) => self.ignored("after_end"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
        self.close(CLOSE_NORMAL, handoff.reason.as_str()).await;
        Ok(End::HandedOff(handoff.reason.as_str()))
    }

    /// Something failed (database, template, a bug): the apology and a person, said by the
    /// fallback TwiML once the session has ended.
    async fn fallback(&mut self, call: &VoiceCall, step: u32, why: &str) -> Result<End, End> {
        record_fallback(&self.state, Some(call), step, why);
        let twiml = fallback_twiml(&self.state, Some(call));
        self.end(call, None, twiml, Handoff { reason: HandoffReason::Fallback, step }).await
    }

    fn ignored(&self, what: &'static str) {
        self.state.metrics.relay_message_ignored(what);
        tracing::debug!(call_sid = %self.call_sid, what, "ConversationRelay message ignored");
    }

    /// Twilio reports an error (one of our messages it could not take, a provider failing): the
    /// session goes on.
    fn twilio_error(&self, description: &str) {
        self.state.metrics.relay_message_ignored("error");
        let description: String = description.chars().take(300).collect();
        tracing::warn!(call_sid = %self.call_sid, description = %mask_pii(&description), "ConversationRelay reports an error");
    }

    /// The next message from Twilio, parsed. Pings are answered by the socket itself.
    async fn next_message(&mut self) -> Result<FromTwilio, End> {
        loop {
            match self.socket.recv().await {
                None => return Err(End::Closed("the socket closed".into())),
                Some(Err(e)) => return Err(End::Closed(e.to_string())),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| End::Protocol(format!("malformed message: {e}")));
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(End::Protocol("a binary frame: ConversationRelay messages are JSON text".into()));
                }
                Some(Ok(Message::Close(_))) => return Err(End::Closed("Twilio closed the socket".into())),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    }

    async fn send(&mut self, message: ToTwilio) -> Result<(), End> {
        self.socket
            .send(Message::Text(message.to_json().into()))
            .await
            .map_err(|e| End::Closed(format!("sending: {e}")))
    }

    /// Closes the session with `code` and a reason (cut to what a close frame holds), then lets
    /// the peer answer the close.
    async fn close(&mut self, code: u16, reason: &str) {
        let mut cut = reason.len().min(120);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let frame = CloseFrame { code, reason: reason[..cut].to_string().into() };
        if self.socket.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(1), async { while let Some(Ok(_)) = self.socket.recv().await {} })
                .await;
    }
}

/// The keys of an answer (or silence) as TwiML mode takes a Gather's `Digits`.
fn keyed(call: &VoiceCall, stage: Stage, language: Language, digits: String, interrupted: bool) -> Answer {
    let pressed = VoiceCall { digits: Some(digits), speech: None, confidence: None, ..call.clone() };
    let (input, heard) = input_of(&pressed, stage, language);
    Answer { input, heard, interrupted }
}
