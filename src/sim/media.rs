//! Twilio's side of a Media Streams call (`orderline call --media`, tests, benchmarks): the
//! incoming call's POST, then the `<Connect><Stream>` it answers with, spoken as Twilio speaks
//! it — a signed handshake, `connected` and `start`, silence streamed in 20 ms frames, `dtmf` for
//! keys, marks echoed once the audio before them has played, queued audio dropped on `clear` —
//! and, once orderline closes the stream, the TwiML after `<Connect>`. What the caller heard is
//! decoded back into clips with the phrase library.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::twilio::{ACCOUNT_SID, CallError, Ending, Transcript, Turn, TwilioCaller, resolve_url};
use crate::speech::{self, ClipLibrary, FRAME_BYTES, MULAW_SILENCE};
use crate::twilio::media::protocol::{Dtmf, FromTwilio, MarkName, Media, MediaFormat, Start, Stop, ToTwilio};
use crate::twilio::signature;
use crate::twilio::twiml::{Document, Verb};

pub type StreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One frame of audio.
const FRAME: Duration = Duration::from_millis(20);
/// Between two keys the caller presses.
const KEY_GAP: Duration = Duration::from_millis(120);
/// With no keys left, how long the caller waits for orderline to end the stream before hanging up.
const PATIENCE: Duration = Duration::from_secs(3);

/// What the caller does once a prompt has been heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKey {
    /// Presses these keys.
    Press(String),
    /// Presses nothing, and waits.
    Nothing,
    /// Says these words: sound orderline does not recognise over a stream (as good as
    /// silence there), and the message at a `<Record>` after the stream.
    Say(String),
}

/// The caller's fingers: asked as each prompt starts (keys to press during it, cutting it
/// short) and once a prompt that asks something has been heard.
pub trait Keypad {
    /// At a prompt's first frame: keys to press `frames` frames into it (barge-in), if any.
    fn during(&mut self) -> Option<(usize, String)>;
    /// After a prompt that asks something: what to press; `None` hangs up.
    fn after(&mut self, prompt: &Prompt) -> Option<MediaKey>;
    /// After the stream, at a TwiML verb that takes input (a `<Record>`, a `<Gather>`): what the
    /// caller does, as a TwiML-mode caller would; `None` hangs up.
    fn after_stream(&mut self, verb: &Verb) -> Option<super::twilio::Key> {
        let _ = verb;
        None
    }
}

/// One prompt as the caller heard it: the frames up to a mark (or to a `clear`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompt {
    /// The mark that ended it; none when orderline cleared it.
    pub mark: Option<String>,
    pub cleared: bool,
    /// The audio, frame after frame.
    pub audio: Vec<u8>,
    pub frames: usize,
    /// Every frame was exactly 160 bytes.
    pub whole_frames: bool,
    /// When each frame arrived, from the `start` message.
    pub arrivals: Vec<Duration>,
    /// The clips it was made of, decoded.
    pub clips: Vec<String>,
    /// Times the caller's playback ran dry in the middle of it: a frame reached Twilio after the
    /// audio queued before it had all been played.
    pub underruns: usize,
}

impl Prompt {
    /// The words of its clips, as `speech/phrases.txt` writes them.
    pub fn words(&self) -> String {
        // A merchant's own recording (ORDERLINE_SPEECH_DIR) has no phrase: its id, in brackets.
        let words: Vec<String> = self
            .clips
            .iter()
            .map(|id| match speech::phrase(id) {
                Some(words) => words.to_string(),
                None if id == "?" => id.clone(),
                None => format!("[{id}]"),
            })
            .collect();
        words.join(" ")
    }

    /// Whether the flow asks something here over the stream (the prompts of hold, transfer,
    /// goodbye, voicemail (its `<Record>` comes after the stream) and the fallback ask nothing),
    /// judged as a caller would: by the mark's step name.
    pub fn asks(&self) -> bool {
        let step = self.mark.as_deref().and_then(|m| m.rsplit(':').next()).unwrap_or("");
        !matches!(step, "hold" | "transfer" | "goodbye" | "voicemail" | "fallback")
    }
}

/// Everything a Media Streams call did.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTranscript {
    pub call_sid: String,
    /// The answer to the incoming call (`<Connect><Stream>` and what follows it).
    pub connect: Turn,
    /// The stream's `<Parameter>`s, as sent in `start`.
    pub parameters: BTreeMap<String, String>,
    pub prompts: Vec<Prompt>,
    /// Keys sent, in order.
    pub pressed: Vec<char>,
    /// The close frame orderline sent (code, reason); none when the caller hung up first.
    pub close: Option<(u16, String)>,
    /// The TwiML after the stream, followed as Twilio would.
    pub after: Option<Transcript>,
    /// The stream's status callbacks (stream-started, stream-stopped) and their answers.
    pub stream_reports: Vec<Turn>,
    pub ending: Ending,
}

impl StreamTranscript {
    /// The clip ids of every prompt, in order.
    pub fn clips(&self) -> Vec<Vec<String>> {
        self.prompts.iter().map(|p| p.clips.clone()).collect()
    }
}

/// Places Media Streams calls with a [`TwilioCaller`]'s settings.
#[derive(Clone)]
pub struct MediaCaller {
    pub caller: TwilioCaller,
    clips: std::sync::Arc<ClipLibrary>,
    /// Stream silence to orderline as Twilio does (on by default).
    pub send_silence: bool,
    /// Each message from orderline reaches Twilio's player after a random delay up to this (in
    /// order, as over TCP): network and scheduling jitter. Zero by default.
    pub jitter: Duration,
    /// Sign the handshake over the stream URL with a trailing `/`, as Twilio's security page says
    /// a signature may be made (twilio.com/docs/usage/security#validating-signatures-on-websocket-connections).
    pub sign_with_trailing_slash: bool,
}

impl MediaCaller {
    pub fn new(caller: TwilioCaller) -> MediaCaller {
        MediaCaller {
            caller,
            clips: std::sync::Arc::new(ClipLibrary::built_in()),
            send_silence: true,
            jitter: Duration::ZERO,
            sign_with_trailing_slash: false,
        }
    }

    /// Hears prompts as a listener who knows `clips` (the line's, with the merchant's own).
    pub fn with_clips(mut self, clips: ClipLibrary) -> MediaCaller {
        self.clips = std::sync::Arc::new(clips);
        self
    }

    /// Dials in, runs the stream to its end with `keys` deciding after each prompt, then follows
    /// the TwiML after `<Connect>`.
    pub async fn call(
        &self,
        keys: &mut impl Keypad,
        mut hear: impl FnMut(&Prompt),
    ) -> Result<StreamTranscript, CallError> {
        let config = self.caller.config();
        let call_sid = config.call_sid.clone().unwrap_or_else(super::twilio::random_call_sid);
        let voice_url = format!("{}/twilio/voice", config.base_url);
        let connect = self.caller.post(&voice_url, &self.caller.base_params(&call_sid, "ringing")).await?;
        let Some(document) = connect.document.clone() else {
            let status = connect.status;
            return Ok(StreamTranscript {
                call_sid,
                connect,
                parameters: BTreeMap::new(),
                prompts: Vec::new(),
                pressed: Vec::new(),
                close: None,
                after: None,
                stream_reports: Vec::new(),
                ending: Ending::HttpError(status),
            });
        };
        let at = document.verbs.iter().position(|v| v.name == "Connect");
        let Some((url, parameters)) = stream_of(&document, &voice_url) else {
            return Err(CallError::UnsupportedVerb("a media call answered without <Connect><Stream>".into()));
        };
        // Twilio reports the stream's start and stop to its statusCallback (twilio.com/docs/voice/
        // twiml/stream#statuscallback).
        let status_url =
            document.find("Stream").and_then(|s| s.attr("statusCallback")).map(|u| resolve_url(&voice_url, u));
        let stream_sid = format!("MZ{}", &super::twilio::random_call_sid()[2..]);
        let report = |event: &'static str| {
            let mut params = self.caller.base_params(&call_sid, "in-progress");
            params.extend([
                ("StreamSid".to_string(), stream_sid.clone()),
                ("StreamEvent".to_string(), event.to_string()),
            ]);
            params.push(("Timestamp".into(), chrono::Utc::now().to_rfc3339()));
            params
        };
        let mut stream_reports = Vec::new();
        if let Some(status_url) = &status_url {
            stream_reports.push(self.caller.post(status_url, &report("stream-started")).await?);
        }
        let socket = if self.sign_with_trailing_slash {
            connect_signed(&url, &signature::sign(&config.auth_token, &format!("{url}/"), &[])).await?
        } else {
            connect_stream(&url, &config.auth_token).await?
        };
        let run = self.converse(socket, &stream_sid, &call_sid, &parameters, keys, &mut hear).await?;
        if let Some(status_url) = &status_url {
            stream_reports.push(self.caller.post(status_url, &report("stream-stopped")).await?);
        }
        let (after, ending) = match (run.close.is_some(), at.and_then(|i| document.verbs.get(i + 1))) {
            (false, _) => (None, Ending::OutOfKeys),
            (true, Some(next)) if next.name == "Redirect" => {
                let next_url = resolve_url(&voice_url, next.text.trim());
                let params = self.caller.base_params(&call_sid, "in-progress");
                let after = self
                    .caller
                    .walk(call_sid.clone(), next_url, params, |v: &Verb| keys.after_stream(v), |_| {})
                    .await?;
                let ending = after.ending.clone();
                (Some(after), ending)
            }
            (true, _) => (None, Ending::EndOfDocument),
        };
        Ok(StreamTranscript {
            call_sid,
            connect,
            parameters,
            prompts: run.prompts,
            pressed: run.pressed,
            close: run.close,
            after,
            stream_reports,
            ending,
        })
    }

    async fn converse(
        &self,
        mut socket: StreamSocket,
        stream_sid: &str,
        call_sid: &str,
        parameters: &BTreeMap<String, String>,
        keys: &mut impl Keypad,
        hear: &mut impl FnMut(&Prompt),
    ) -> Result<StreamRun, CallError> {
        let stream_sid = stream_sid.to_string();
        let started = Instant::now();
        send(&mut socket, &connected()).await?;
        send(&mut socket, &start(&stream_sid, call_sid, parameters)).await?;
        let mut run = StreamRun { prompts: Vec::new(), pressed: Vec::new(), close: None };
        let mut current = Prompt { whole_frames: true, ..Prompt::default() };
        // Twilio's playback: audio queued until `played_until`, marks echoed when it gets there.
        // "The media messages are buffered and played in the order received"
        // (twilio.com/docs/voice/media-streams/websocket-messages#send-a-media-message): a frame
        // that arrives after the buffer ran dry is an underrun, heard as a gap.
        let mut played_until = Instant::now();
        let mut last_arrival = Instant::now();
        let mut rng =
            u64::from(started.elapsed().subsec_nanos()) ^ 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
        let mut marks: VecDeque<(Instant, String)> = VecDeque::new();
        let mut pending_keys: VecDeque<(Instant, char)> = VecDeque::new();
        let mut barge: Option<(usize, String)> = None;
        let mut give_up_at: Option<Instant> = None;
        let mut chunk = 0u64;
        let mut silence = tokio::time::interval_at(started + FRAME, FRAME);
        silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let far = started + Duration::from_secs(24 * 3600);
        loop {
            let next_mark = marks.front().map_or(far, |(at, _)| *at);
            let next_key = pending_keys.front().map_or(far, |(at, _)| *at);
            let give_up = give_up_at.unwrap_or(far);
            tokio::select! {
                message = socket.next() => {
                    let text = match message {
                        None | Some(Err(_)) => break,
                        Some(Ok(Message::Close(frame))) => {
                            run.close = Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
                            break;
                        }
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                    };
                    let message: ToTwilio = serde_json::from_str(text.as_str())
                        .map_err(|e| CallError::Http { url: "media stream".into(), reason: format!("orderline sent {text}: {e}") })?;
                    match message {
                        ToTwilio::Media { media, .. } => {
                            // Any length of audio (a lead of several frames at once); counted in frames.
                            let audio = BASE64.decode(media.payload).unwrap_or_default();
                            current.whole_frames &= !audio.is_empty() && audio.len() % FRAME_BYTES == 0;
                            current.audio.extend_from_slice(&audio);
                            let first = current.frames == 0;
                            let frames_in = audio.len().div_ceil(FRAME_BYTES).max(1);
                            current.frames += frames_in;
                            current.arrivals.extend(std::iter::repeat_n(started.elapsed(), frames_in));
                            give_up_at = None;
                            let now = Instant::now();
                            if first {
                                barge = keys.during();
                            }
                            let arrives = (now + random_delay(&mut rng, self.jitter)).max(last_arrival);
                            last_arrival = arrives;
                            if !first && arrives > played_until {
                                current.underruns += 1;
                            }
                            played_until = played_until.max(arrives) + FRAME * frames_in as u32;
                            if let Some((after, keys)) = barge.take() {
                                if current.frames >= after {
                                    let mut at = now;
                                    for key in keys.chars() {
                                        pending_keys.push_back((at, key));
                                        at += KEY_GAP;
                                    }
                                } else {
                                    barge = Some((after, keys));
                                }
                            }
                        }
                        ToTwilio::Mark { mark, .. } => {
                            marks.push_back((played_until.max(Instant::now()), mark.name.clone()));
                            let mut prompt = std::mem::replace(&mut current, Prompt { whole_frames: true, ..Prompt::default() });
                            prompt.mark = Some(mark.name);
                            self.heard(prompt, &mut run, hear);
                        }
                        ToTwilio::Clear { .. } => {
                            // Queued audio is dropped, and its marks come back at once.
                            played_until = Instant::now();
                            for (at, _) in marks.iter_mut() {
                                *at = played_until;
                            }
                            if current.frames > 0 {
                                let mut prompt = std::mem::replace(&mut current, Prompt { whole_frames: true, ..Prompt::default() });
                                prompt.cleared = true;
                                self.heard(prompt, &mut run, hear);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_mark), if !marks.is_empty() => {
                    let (_, name) = marks.pop_front().expect("a mark is queued");
                    send(&mut socket, &FromTwilio::Mark { sequence_number: None, stream_sid: stream_sid.clone(), mark: MarkName { name: name.clone() } }).await?;
                    // The prompt has been heard: the caller's turn, if it asks something.
                    if let Some(prompt) = run.prompts.iter().rev().find(|p| p.mark.as_deref() == Some(name.as_str())).cloned() {
                        if prompt.asks() {
                            match keys.after(&prompt) {
                                Some(MediaKey::Press(pressed)) => {
                                    let mut at = Instant::now();
                                    for key in pressed.chars() {
                                        pending_keys.push_back((at, key));
                                        at += KEY_GAP;
                                    }
                                }
                                Some(MediaKey::Nothing | MediaKey::Say(_)) => {}
                                None => give_up_at = Some(Instant::now() + PATIENCE),
                            }
                        } else if give_up_at.is_none() {
                            give_up_at = Some(Instant::now() + PATIENCE);
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_key), if !pending_keys.is_empty() => {
                    let (_, key) = pending_keys.pop_front().expect("a key is queued");
                    run.pressed.push(key);
                    give_up_at = None;
                    send(&mut socket, &FromTwilio::Dtmf { sequence_number: None, stream_sid: stream_sid.clone(), dtmf: Dtmf { track: "inbound_track".into(), digit: key.to_string() } }).await?;
                }
                _ = tokio::time::sleep_until(give_up), if give_up_at.is_some() => {
                    // Nothing more to say and nothing more said: the caller hangs up.
                    send(&mut socket, &FromTwilio::Stop { sequence_number: None, stream_sid: stream_sid.clone(), stop: Stop { account_sid: ACCOUNT_SID.into(), call_sid: call_sid.into() } }).await?;
                    let _ = socket.close(None).await;
                    break;
                }
                _ = silence.tick(), if self.send_silence => {
                    chunk += 1;
                    send(&mut socket, &silence_frame(&stream_sid, chunk, started.elapsed())).await?;
                }
            }
        }
        if current.frames > 0 {
            self.heard(current, &mut run, hear);
        }
        Ok(run)
    }

    fn heard(&self, mut prompt: Prompt, run: &mut StreamRun, hear: &mut impl FnMut(&Prompt)) {
        prompt.clips = speech::recognise(&self.clips, &prompt.audio);
        hear(&prompt);
        run.prompts.push(prompt);
    }
}

/// A delay from 0 to `max`, uniformly (xorshift64*: a model of jitter, not cryptography).
fn random_delay(state: &mut u64, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
    Duration::from_nanos(value % (max.as_nanos() as u64 + 1))
}

struct StreamRun {
    prompts: Vec<Prompt>,
    pressed: Vec<char>,
    close: Option<(u16, String)>,
}

/// The `<Connect><Stream>` of an answer: the stream's URL (resolved against the URL the answer
/// came from) and its `<Parameter>`s.
pub fn stream_of(document: &Document, answered_at: &str) -> Option<(String, BTreeMap<String, String>)> {
    let connect = document.verbs.iter().find(|v| v.name == "Connect")?;
    let stream = connect.children.iter().find(|c| c.name == "Stream")?;
    let parameters = stream
        .children
        .iter()
        .filter(|p| p.name == "Parameter")
        .filter_map(|p| Some((p.attr("name")?.to_string(), p.attr("value").unwrap_or("").to_string())))
        .collect();
    Some((resolve_url(answered_at, stream.attr("url").unwrap_or("")), parameters))
}

/// Opens a stream as Twilio does: the handshake signed over the stream URL.
pub async fn connect_stream(url: &str, auth_token: &str) -> Result<StreamSocket, CallError> {
    connect_signed(url, &signature::sign(auth_token, url, &[])).await
}

/// Opens a stream with this `X-Twilio-Signature` (a wrong one, in tests).
pub async fn connect_signed(url: &str, signed: &str) -> Result<StreamSocket, CallError> {
    let mut request =
        url.into_client_request().map_err(|e| CallError::Http { url: url.into(), reason: e.to_string() })?;
    let header =
        signed.parse().map_err(|_| CallError::Http { url: url.into(), reason: "bad signature header".into() })?;
    request.headers_mut().insert("X-Twilio-Signature", header);
    // Small messages both ways: a small read buffer (the socket zeroes it on every read).
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    // Nagle off, as Twilio sends `start` right behind `connected`.
    let connected = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await;
    let (socket, _) = connected.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 403 => {
            CallError::Forbidden { url: url.into() }
        }
        e => CallError::Http { url: url.into(), reason: e.to_string() },
    })?;
    Ok(socket)
}

/// One 20 ms frame of the caller's silence, as Twilio streams it: the `chunk`-th, `since` the
/// stream started.
pub fn silence_frame(stream_sid: &str, chunk: u64, since: Duration) -> FromTwilio {
    static SILENCE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| BASE64.encode([MULAW_SILENCE; FRAME_BYTES]));
    let media = Media {
        track: "inbound".into(),
        chunk: chunk.to_string(),
        timestamp: since.as_millis().to_string(),
        payload: SILENCE.clone(),
    };
    FromTwilio::Media { sequence_number: None, stream_sid: stream_sid.into(), media }
}

/// Twilio's first message on a stream.
pub fn connected() -> FromTwilio {
    FromTwilio::Connected { protocol: "Call".into(), version: "1.0.0".into() }
}

/// Twilio's `start` for a call, carrying the stream's parameters.
pub fn start(stream_sid: &str, call_sid: &str, parameters: &BTreeMap<String, String>) -> FromTwilio {
    FromTwilio::Start {
        sequence_number: Some("1".into()),
        stream_sid: stream_sid.into(),
        start: Start {
            account_sid: ACCOUNT_SID.into(),
            call_sid: call_sid.into(),
            tracks: vec!["inbound".into()],
            custom_parameters: parameters.clone(),
            media_format: MediaFormat::mulaw(),
        },
    }
}

pub async fn send(socket: &mut StreamSocket, message: &FromTwilio) -> Result<(), CallError> {
    let text = serde_json::to_string(message).expect("a message of strings always serializes");
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| CallError::Http { url: "media stream".into(), reason: e.to_string() })
}

/// A scripted caller: one entry per prompt that asks something. `"1"` presses 1 once the prompt
/// has been heard, `"!1"` presses it 10 frames into the prompt (barge-in), `""` or `"timeout"`
/// presses nothing; an answer of several keys gets `#` after it. When the script runs out the
/// caller waits a little, then hangs up.
#[derive(Debug, Clone)]
pub struct Script {
    entries: VecDeque<(bool, MediaKey)>,
}

pub fn scripted_media(keys: &[&str]) -> Script {
    let entries = keys
        .iter()
        .map(|k| {
            let (during, k) = match k.trim().strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, k.trim()),
            };
            if let Some(words) = k.strip_prefix("say:") {
                return (false, MediaKey::Say(words.to_string()));
            }
            let pressed = match k {
                "" | "timeout" => return (false, MediaKey::Nothing),
                one if one.chars().count() == 1 || one.ends_with('#') => one.to_string(),
                several => format!("{several}#"),
            };
            (during, MediaKey::Press(pressed))
        })
        .collect();
    Script { entries }
}

impl Keypad for Script {
    fn during(&mut self) -> Option<(usize, String)> {
        match self.entries.front() {
            Some((true, MediaKey::Press(_))) => match self.entries.pop_front() {
                Some((_, MediaKey::Press(keys))) => Some((10, keys)),
                _ => None,
            },
            _ => None,
        }
    }

    fn after(&mut self, _: &Prompt) -> Option<MediaKey> {
        self.entries.pop_front().map(|(_, key)| key)
    }

    fn after_stream(&mut self, _: &Verb) -> Option<super::twilio::Key> {
        self.entries.pop_front().map(|(_, key)| match key {
            MediaKey::Press(keys) => super::twilio::Key::Digits(keys),
            MediaKey::Nothing => super::twilio::Key::Timeout,
            MediaKey::Say(said) => super::twilio::Key::Speech { said, confidence: 1.0 },
        })
    }
}

/// Keys typed on the terminal, a line after each prompt that asks something.
struct Terminal;

impl Keypad for Terminal {
    fn during(&mut self) -> Option<(usize, String)> {
        None
    }

    fn after(&mut self, _: &Prompt) -> Option<MediaKey> {
        println!("  (press keys, then Enter; an empty line waits, end of input hangs up)");
        match tokio::task::block_in_place(super::twilio::read_key) {
            Ok(Some(super::twilio::Key::Digits(d))) => Some(MediaKey::Press(d)),
            // Media Streams mode hears keys only: words are as good as silence.
            Ok(Some(super::twilio::Key::Timeout | super::twilio::Key::Speech { .. })) => Some(MediaKey::Nothing),
            Ok(None) | Err(_) => None,
        }
    }

    fn after_stream(&mut self, verb: &Verb) -> Option<super::twilio::Key> {
        super::twilio::read_key_at(verb)
    }
}

/// Prints what a keypad presses.
struct Printed<K: Keypad>(K);

impl<K: Keypad> Keypad for Printed<K> {
    fn during(&mut self) -> Option<(usize, String)> {
        let keys = self.0.during();
        if let Some((_, keys)) = &keys {
            println!("  pressing during the prompt: {keys}");
        }
        keys
    }

    fn after(&mut self, prompt: &Prompt) -> Option<MediaKey> {
        let key = self.0.after(prompt);
        match &key {
            Some(MediaKey::Press(k)) => println!("  pressed: {k}"),
            Some(MediaKey::Nothing) => println!("  pressed: nothing"),
            Some(MediaKey::Say(words)) => println!("  said: {words}"),
            None => {}
        }
        key
    }

    fn after_stream(&mut self, verb: &Verb) -> Option<super::twilio::Key> {
        let key = self.0.after_stream(verb);
        super::twilio::print_key_at(verb, key.as_ref());
        key
    }
}

/// `orderline call --media`: places one Media Streams call and prints each prompt heard (as the
/// words of its clips), each key pressed and the ending, then posts the `completed` callback.
pub async fn run_cli(options: super::twilio::CallOptions) -> Result<(), CallError> {
    let clips = ClipLibrary::built_in_with(options.speech_dir.as_deref())
        .map_err(|e| CallError::Io(std::io::Error::other(format!("ORDERLINE_SPEECH_DIR: {e}"))))?;
    let caller = MediaCaller::new(options.caller()).with_clips(clips);
    let c = caller.caller.config();
    println!("calling {} from {} to {} (media stream)", c.base_url, c.from, c.to);
    let hear = |prompt: &Prompt| {
        let how = if prompt.cleared { " (cut short)" } else { "" };
        println!("  heard{how}: {}", prompt.words());
    };
    let texts = options.texts_before().await?;
    let started = std::time::Instant::now();
    let transcript = match &options.keys {
        Some(keys) => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            caller.call(&mut Printed(scripted_media(&keys)), hear).await?
        }
        None => caller.call(&mut Printed(Terminal), hear).await?,
    };
    if let Some((code, reason)) = &transcript.close {
        println!("  stream closed by orderline: {code} {reason}");
    }
    let ending = match &transcript.after {
        Some(after) => super::twilio::ending_words(after)?,
        None => match transcript.ending {
            Ending::OutOfKeys => "caller hung up".into(),
            _ => "hangup (end of TwiML)".into(),
        },
    };
    println!("→ {ending}");
    options.print_texts_since(&texts).await?;
    let duration = u32::try_from(started.elapsed().as_secs_f64().ceil() as u64).unwrap_or(u32::MAX);
    let status = caller.caller.status_callback(&transcript.call_sid, "completed", Some(duration), 0).await?;
    println!("status callback: completed after {duration} s → HTTP {status}");
    Ok(())
}
