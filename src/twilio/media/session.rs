//! One Media Streams call, from `start` to the close: each reply of the call flow spoken as μ-law
//! frames paced at 20 ms, a `mark` after each prompt, keys heard as `dtmf` (a key during a prompt
//! clears it: barge-in), and at a transfer or goodbye the decision saved for the `<Redirect>`
//! before the stream is closed. Never panics on what arrives: a malformed or out-of-order
//! message closes the stream with a logged reason, and the caller goes on to the fallback.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::{Instant, Sleep};

use super::protocol::{FrameWriter, FromTwilio, MediaFormat, Start, ToTwilio, is_base64};
use crate::app::AppState;
use crate::domain::{Event, TransferReason};
use crate::domain::{mask_phone, mask_pii};
use crate::ivr::{CallFlow, Input, Reply, Stage, Step, TransferStep};
use crate::speech::{self, FRAME_BYTES};
use crate::store::{Handoff, Ts};
use crate::twilio::call::{
    CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL, VoiceCall, bare_context, fallback_twiml, guarded, record_fallback,
    record_reply, step_transfer_view,
};
use crate::twilio::render::TemplateError;

/// One frame of audio.
const FRAME: Duration = Duration::from_millis(20);
/// Twilio sends `start` right after `connected`; a stream without one is not Twilio's.
const START_WAIT: Duration = Duration::from_secs(10);
/// After a prompt's last frame, how long its mark may take to come back before the caller's
/// time to answer starts anyway.
const MARK_GRACE: Duration = Duration::from_secs(1);
/// Before the stream closes on a transfer or goodbye, how long to wait for its last words to
/// be played (their mark).
const FINAL_MARK_WAIT: Duration = Duration::from_secs(2);
/// Longest the decision's write may take before the stream is closed anyway.
const HANDOFF_WRITE_LIMIT: Duration = Duration::from_secs(2);

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The flow reached a transfer or goodbye (or the fallback); the `<Redirect>` takes over.
    HandedOff(&'static str),
    /// Twilio sent `stop`: the call ended (the caller hung up).
    Stopped,
    /// The socket went away without `stop`.
    Closed(String),
    /// A malformed or out-of-order message.
    Protocol(String),
    /// A `start` that belongs to no call we answered.
    Refused(String),
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::HandedOff(kind) => kind,
            End::Stopped => "stopped",
            End::Closed(_) => "closed",
            End::Protocol(_) => "protocol_error",
            End::Refused(_) => "refused",
        }
    }
}

/// What a message from Twilio means to the conversation.
enum Heard {
    Key(char),
    Mark(String),
    Audio,
    /// Nothing we know: counted and let go.
    Ignored,
}

struct Session {
    state: AppState,
    socket: WebSocket,
    stream_sid: String,
    /// Marks sent and not yet echoed.
    marks: Vec<String>,
    /// When `start` arrived, until the first frame is sent.
    awaiting_first_audio: Option<Instant>,
}

/// Runs one stream to its end.
pub async fn run(state: AppState, socket: WebSocket) {
    state.metrics.media_streams_active.inc();
    let mut session = Session {
        state: state.clone(),
        socket,
        stream_sid: String::new(),
        marks: Vec::new(),
        awaiting_first_audio: None,
    };
    let end = session.converse().await.unwrap_or_else(|end| end);
    match &end {
        End::Protocol(why) => {
            tracing::warn!(stream_sid = %session.stream_sid, reason = %mask_pii(why), "media stream closed: protocol error");
            session.close(CLOSE_PROTOCOL, why).await;
        }
        End::Refused(why) => {
            tracing::warn!(stream_sid = %session.stream_sid, reason = %mask_pii(why), "media stream refused");
            session.close(CLOSE_POLICY, why).await;
        }
        End::Closed(why) => tracing::info!(stream_sid = %session.stream_sid, reason = %why, "media stream went away"),
        End::Stopped | End::HandedOff(_) => {
            tracing::debug!(stream_sid = %session.stream_sid, end = end.label(), "media stream ended")
        }
    }
    state.metrics.media_stream_ended(end.label());
    state.metrics.media_streams_active.dec();
}

impl Session {
    /// The call, reply by reply, until it is handed off or ends. Every way out is an `End`.
    async fn converse(&mut self) -> Result<End, End> {
        let call = self.handshake().await?;
        let caller = call.caller();
        let flow: CallFlow = self.state.flow.clone();
        let mut result = guarded(flow.incoming(&caller)).await;
        let mut step = 1;
        let mut barged_in: Option<&'static str> = None;
        loop {
            let reply = match result {
                Ok(reply) => reply,
                Err(why) => return self.fallback(&call, step, &why).await,
            };
            let audio = match self.audio_of(&reply.step) {
                Ok(audio) => audio,
                Err(why) => return self.fallback(&call, step, &why).await,
            };
            let Reply { step: said, next, mut events, outcome, .. } = reply;
            let template = said.template();
            if let Some(prompt) = barged_in.take() {
                events.insert(0, Event::BargeIn(prompt.to_string()));
            }
            record_reply(&self.state, &call, step, outcome, events, None);
            let mark = format!("{step}:{template}");
            match next {
                None => {
                    self.play(&audio, &mark, false).await?;
                    self.await_mark(&mark, FINAL_MARK_WAIT).await?;
                    let kind = match said {
                        Step::Transfer(_) => "transfer",
                        Step::Voicemail(_) => "voicemail",
                        _ => "goodbye",
                    };
                    return self.hand_off(&call, &said, kind).await;
                }
                Some((Stage::Continue, next)) => {
                    // The lookup finishes while the caller hears "one moment".
                    let (flow, caller) = (flow.clone(), caller.clone());
                    let answer = tokio::spawn(async move {
                        guarded(flow.answer(&caller, Stage::Continue, next, Input::Nothing)).await
                    });
                    self.play(&audio, &mark, false).await?;
                    result = answer.await.unwrap_or_else(|e| Err(format!("the continue step failed: {e}")));
                    step = next.step;
                }
                Some((stage, next)) => {
                    let key = self.play(&audio, &mark, true).await?;
                    if key.is_some() {
                        barged_in = Some(template);
                    }
                    let input = self.listen(stage, key, &mark).await?;
                    result = guarded(flow.answer(&caller, stage, next, input)).await;
                    step = next.step;
                }
            }
        }
    }

    /// `connected` (optional), then `start`, for a call we answered.
    async fn handshake(&mut self) -> Result<VoiceCall, End> {
        let deadline = Instant::now() + START_WAIT;
        let mut connected = false;
        loop {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(End::Protocol(format!("no start message within {START_WAIT:?}")));
                }
                message = self.next_message() => message?,
            };
            match message {
                FromTwilio::Connected { .. } if !connected => connected = true,
                FromTwilio::Start { stream_sid, start, .. } => return self.begin(stream_sid, start),
                FromTwilio::Unknown => self.state.metrics.media_message_ignored("unknown_event"),
                other => return Err(End::Protocol(format!("`{}` before `start`", other.event()))),
            }
        }
    }

    fn begin(&mut self, stream_sid: String, start: Start) -> Result<VoiceCall, End> {
        if stream_sid.is_empty() || stream_sid.len() > 64 {
            return Err(End::Protocol("`start` without a streamSid".into()));
        }
        self.stream_sid = stream_sid;
        if start.media_format != MediaFormat::mulaw() {
            let f = &start.media_format;
            return Err(End::Protocol(format!(
                "media format {} {} Hz × {} is not audio/x-mulaw 8000 Hz mono",
                f.encoding, f.sample_rate, f.channels
            )));
        }
        let key = self.state.settings.twilio.auth_token.as_ref().map(|t| t.expose()).unwrap_or_default();
        let Some(call) = super::call_of_stream(key, &start.call_sid, &start.custom_parameters) else {
            return Err(End::Refused("`start` does not carry the token of a call orderline answered".into()));
        };
        self.awaiting_first_audio = Some(Instant::now());
        tracing::debug!(stream_sid = %self.stream_sid, call_sid = %call.call_sid, from = %mask_phone(&call.from), "media stream started");
        Ok(call)
    }

    /// The μ-law audio of a step, from its `.speech` template and the clip library.
    fn audio_of(&self, step: &Step) -> Result<Vec<u8>, String> {
        self.audio(self.state.renderer.speech(step))
    }

    /// The μ-law audio of a rendered speech template, in whole 20 ms frames.
    fn audio(&self, pieces: Result<Vec<speech::Piece>, TemplateError>) -> Result<Vec<u8>, String> {
        let pieces = pieces.map_err(|e| e.to_string())?;
        speech::render(&self.state.clips, &pieces).map(speech::in_frames).map_err(|e| e.to_string())
    }

    /// Plays `audio` ORDERLINE_MEDIA_LEAD ahead of the pace it is heard: the lead's frames in one
    /// message at once, then 20 ms frames on time (Twilio buffers outbound media and plays it in
    /// order, and "the audio can be of any size": twilio.com/docs/voice/media-streams/
    /// websocket-messages#send-a-media-message; its own sample sends a second at once). One
    /// message for the lead means the caller's playback starts with the whole lead queued, so
    /// jitter up to the lead never empties it; barge-in stays immediate, since `clear` drops
    /// whatever is queued. Then the prompt's mark. With `barge_in`, a key pressed meanwhile stops
    /// it (`clear`, no mark) and is returned.
    async fn play(&mut self, audio: &[u8], mark: &str, barge_in: bool) -> Result<Option<char>, End> {
        let writer = FrameWriter::new(&self.stream_sid);
        let started = Instant::now();
        // Slices of the audio, never a copy: at 500 streams, copying a prompt's 150 KB into
        // frames took 9-16 ms before the first frame for one stream in fourteen (measured in
        // the media_streams bench; fresh pages from the allocator, most likely).
        let lead_frames = (self.state.settings.ivr.media_lead.as_millis() / FRAME.as_millis()) as usize;
        let (lead, paced) = audio.split_at((lead_frames * FRAME_BYTES).min(audio.len()));
        let messages = std::iter::once((0, lead))
            .filter(|(_, audio)| !audio.is_empty())
            .chain(paced.chunks(FRAME_BYTES).enumerate());
        // One timer for the whole prompt, moved on message by message.
        let timer = tokio::time::sleep_until(started);
        tokio::pin!(timer);
        for (i, frame) in messages {
            let due = started + FRAME * i as u32;
            // A frame already due (the lead, or one behind) goes at once: a timer set in the past
            // fires only at the timer wheel's next turn (first audio p50 1.7 ms with it, 0.3 ms
            // without, at 500 streams).
            if due > Instant::now() {
                timer.as_mut().reset(due);
                if let Some(key) = self.hear_until(timer.as_mut(), barge_in).await? {
                    return Ok(Some(key));
                }
            }
            let now = Instant::now();
            self.state.metrics.media_frame_lag_seconds.observe(now.saturating_duration_since(due).as_secs_f64());
            if let Some(start) = self.awaiting_first_audio.take() {
                self.state.metrics.media_first_audio_seconds.observe((now - start).as_secs_f64());
            }
            self.send_text(writer.json_audio(frame)).await?;
        }
        self.send(ToTwilio::mark(&self.stream_sid, mark)).await?;
        self.marks.push(mark.to_string());
        Ok(None)
    }

    /// Reads what Twilio sends until `timer` fires. With `barge_in`, a key pressed meanwhile
    /// clears the prompt's queued audio and is returned.
    async fn hear_until(&mut self, mut timer: Pin<&mut Sleep>, barge_in: bool) -> Result<Option<char>, End> {
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut timer => return Ok(None),
                message = self.next_message() => message?,
            };
            match self.heard(message)? {
                Heard::Key(key) if barge_in => {
                    self.send(ToTwilio::Clear { stream_sid: self.stream_sid.clone() }).await?;
                    return Ok(Some(key));
                }
                Heard::Key(_) | Heard::Mark(_) | Heard::Audio | Heard::Ignored => {}
            }
        }
    }

    /// The caller's answer to the question of `stage`, starting with `first` (a key that cut the
    /// prompt short). The time to answer starts once the prompt's mark comes back.
    async fn listen(&mut self, stage: Stage, first: Option<char>, mark: &str) -> Result<Input, End> {
        let ask = stage.ask();
        let mut digits = String::new();
        let mut key = first;
        let heard_from =
            if self.marks.iter().any(|m| m == mark) { Instant::now() + MARK_GRACE } else { Instant::now() };
        let mut deadline = heard_from + ask.timeout();
        loop {
            if let Some(k) = key.take() {
                if Some(k) == ask.finish_on {
                    return Ok(input(digits));
                }
                digits.push(k);
                if ask.max_digits.is_some_and(|n| digits.len() >= usize::from(n)) {
                    return Ok(input(digits));
                }
                deadline = Instant::now() + ask.timeout();
            }
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(input(digits)),
                message = self.next_message() => message?,
            };
            match self.heard(message)? {
                Heard::Key(k) => key = Some(k),
                Heard::Mark(name) if name == mark && digits.is_empty() => {
                    deadline = deadline.min(Instant::now() + ask.timeout());
                }
                Heard::Mark(_) | Heard::Audio | Heard::Ignored => {}
            }
        }
    }

    /// Waits (at most `limit`) until Twilio says the audio before `mark` has been played.
    async fn await_mark(&mut self, mark: &str, limit: Duration) -> Result<(), End> {
        let deadline = Instant::now() + limit;
        while self.marks.iter().any(|m| m == mark) {
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                message = self.next_message() => message?,
            };
            self.heard(message)?;
        }
        Ok(())
    }

    /// Saves the TwiML the `<Redirect>` answers with (the transfer or goodbye of `step`), then
    /// closes the stream so Twilio moves on to it.
    async fn hand_off(&mut self, call: &VoiceCall, step: &Step, kind: &'static str) -> Result<End, End> {
        let twiml =
            self.state.renderer.after_stream(step, &step_transfer_view(&self.state, step)).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the after_stream template failed; the caller gets the fallback");
                fallback_twiml(&self.state, Some(call))
            });
        let customer_id = match step {
            Step::Transfer(t) => t.context.customer_id.as_deref().and_then(|id| id.parse().ok()),
            _ => None,
        };
        self.save_and_close(call, customer_id, twiml, kind).await
    }

    /// Saves `twiml` as the call's handoff, then closes the stream. A handoff that cannot be saved
    /// is logged: the `<Redirect>` then gives the caller the fallback.
    async fn save_and_close(
        &mut self,
        call: &VoiceCall,
        customer_id: Option<i64>,
        twiml: String,
        kind: &'static str,
    ) -> Result<End, End> {
        let handoff = Handoff {
            call_sid: call.call_sid.clone(),
            shop: self.state.settings.shopify.shop.clone().unwrap_or_default(),
            customer_id,
            twiml,
        };
        let now = Ts::from(self.state.clock.now());
        match tokio::time::timeout(HANDOFF_WRITE_LIMIT, self.state.handoffs.put(handoff, now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the stream's decision was not saved; the caller gets the fallback")
            }
            Err(_) => tracing::error!("saving the stream's decision timed out; the caller gets the fallback"),
        }
        self.close(CLOSE_NORMAL, kind).await;
        Ok(End::HandedOff(kind))
    }

    /// Something failed (database, template, a bug): say so over the stream and hand the caller
    /// to a person. When even the spoken apology cannot be made, the TwiML fallback says it.
    async fn fallback(&mut self, call: &VoiceCall, step: u32, why: &str) -> Result<End, End> {
        record_fallback(&self.state, Some(call), step, why);
        let spoken = self.audio(self.state.renderer.speech_fallback());
        let step = Step::Transfer(TransferStep {
            reason: TransferReason::Fallback,
            context: bare_context(call),
            news: None,
            greet: None,
        });
        match spoken {
            Ok(audio) => {
                let mark = "fallback";
                self.play(&audio, mark, false).await?;
                self.await_mark(mark, FINAL_MARK_WAIT).await?;
                self.hand_off(call, &step, "fallback").await
            }
            Err(e) => {
                tracing::error!(error = %e, "the fallback speech failed; the TwiML fallback speaks instead");
                self.save_and_close(call, None, fallback_twiml(&self.state, Some(call)), "fallback").await
            }
        }
    }

    /// What a message after `start` means; `stop` ends the session. What we do not know (an
    /// event Twilio added, a digit that is no key, a mark we never sent, media we cannot read)
    /// is counted and ignored: the call goes on. A message for another stream is an error.
    fn heard(&mut self, message: FromTwilio) -> Result<Heard, End> {
        if message.stream_sid().is_some_and(|sid| sid != self.stream_sid) {
            return Err(End::Protocol(format!("`{}` for another stream", message.event())));
        }
        let ignored = |what: &str| {
            self.state.metrics.media_message_ignored(what);
            tracing::debug!(stream_sid = %self.stream_sid, what, "media stream message ignored");
            Ok(Heard::Ignored)
        };
        match message {
            FromTwilio::Media { media, .. } => match is_base64(&media.payload) {
                true => Ok(Heard::Audio),
                false => ignored("bad_media"),
            },
            FromTwilio::Dtmf { dtmf, .. } => match dtmf.digit.chars().collect::<Vec<_>>()[..] {
                [key @ ('0'..='9' | '*' | '#')] => Ok(Heard::Key(key)),
                _ => ignored("unknown_digit"),
            },
            FromTwilio::Mark { mark, .. } => match self.marks.iter().position(|m| *m == mark.name) {
                Some(i) => {
                    self.marks.remove(i);
                    Ok(Heard::Mark(mark.name))
                }
                None => ignored("unknown_mark"),
            },
            FromTwilio::Stop { .. } => Err(End::Stopped),
            FromTwilio::Unknown => ignored("unknown_event"),
            other => Err(End::Protocol(format!("`{}` after the stream started", other.event()))),
        }
    }

    /// The next message from Twilio, parsed. Pings are answered by the socket itself.
    async fn next_message(&mut self) -> Result<FromTwilio, End> {
        loop {
            match self.socket.recv().await {
                None => return Err(End::Closed("the socket closed without `stop`".into())),
                Some(Err(e)) => return Err(End::Closed(e.to_string())),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| End::Protocol(format!("malformed message: {e}")));
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(End::Protocol("a binary frame: Media Streams messages are JSON text".into()));
                }
                Some(Ok(Message::Close(_))) => return Err(End::Closed("Twilio closed the socket".into())),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    }

    async fn send(&mut self, message: ToTwilio) -> Result<(), End> {
        self.send_text(message.to_json()).await
    }

    async fn send_text(&mut self, json: String) -> Result<(), End> {
        self.socket.send(Message::Text(json.into())).await.map_err(|e| End::Closed(format!("sending: {e}")))
    }

    /// Closes the stream with `code` and a reason (cut to what a close frame holds), then lets
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

/// The keys of an answer as the flow takes them.
fn input(digits: String) -> Input {
    if digits.is_empty() { Input::Nothing } else { Input::Digits(digits) }
}
