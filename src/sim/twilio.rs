//! A stand-in for Twilio calling orderline (`orderline call`, tests, benchmarks): it places an
//! inbound call with Twilio's signed form POSTs and walks the TwiML it gets back as Twilio would —
//! hearing `<Say>`, pressing keys at `<Gather>`, following `<Redirect>` — until the call ends.
//! It only plays Twilio's side; it never decides what orderline should answer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), orderline::sim::twilio::CallError> {
//! use orderline::sim::twilio::{CallerConfig, Ending, TwilioCaller, scripted};
//! let caller = TwilioCaller::new(CallerConfig::new("http://127.0.0.1:8080", "token", "+15551234567"));
//! let transcript = caller.call(scripted(&["1"])).await?;
//! println!("{:?}", transcript.spoken());
//! assert!(matches!(transcript.ending, Ending::Enqueue(_)));
//! # Ok(()) }
//! ```

use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod rest;
mod transfer;

pub use transfer::{DialOutcome, QueueScript, Transfer};

use crate::twilio::signature;
use crate::twilio::twiml::{self, Document, TwimlError, Verb};

/// The AccountSid every simulated request carries.
pub const ACCOUNT_SID: &str = "AC0d1e2a3b4c5d6e7f8091a2b3c4d5e6f7";
/// The number called when none is given: the store's support line.
pub const DEFAULT_TO: &str = "+18005550100";
/// Twilio stops following a call after this many requests.
pub const MAX_REQUESTS: usize = 50;
/// Twilio's cap on a TwiML response (error 11750).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who calls whom, and where Twilio sends its webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerConfig {
    /// orderline's base URL as Twilio knows it, e.g. `http://127.0.0.1:8080`, no trailing slash.
    pub base_url: String,
    /// The Twilio auth token requests are signed with.
    pub auth_token: String,
    /// The caller's number, E.164.
    pub from: String,
    /// The number dialled (default [`DEFAULT_TO`]).
    pub to: String,
    /// `None`: a random `CA` + 32 hex digits per call.
    pub call_sid: Option<String>,
    /// STIR/SHAKEN verification, e.g. `TN-Validation-Passed-A` (sent as `StirVerstat`).
    pub stir_verstat: Option<String>,
    /// Further parameters sent with every request (`CallerName`, `FromZip`, …).
    pub extra_params: Vec<(String, String)>,
    /// What happens at `<Dial>` and `<Enqueue>` (default: the emulator stops there).
    pub transfer: Transfer,
}

impl CallerConfig {
    /// A call from `from` to [`DEFAULT_TO`] with a random CallSid and no STIR/SHAKEN result.
    pub fn new(base_url: impl Into<String>, auth_token: impl Into<String>, from: impl Into<String>) -> Self {
        CallerConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            auth_token: auth_token.into(),
            from: from.into(),
            to: DEFAULT_TO.into(),
            call_sid: None,
            stir_verstat: None,
            extra_params: Vec::new(),
            transfer: Transfer::Stop,
        }
    }
}

/// What the caller does at a `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// Presses these keys (a `finishOnKey` and anything after it is not sent, as on Twilio).
    Digits(String),
    /// Presses nothing until the Gather times out.
    Timeout,
    /// Says these words; Twilio's recognition is this sure of them (0.0–1.0).
    Speech { said: String, confidence: f32 },
}

/// One request Twilio made and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The absolute URL requested (the one signed).
    pub url: String,
    pub status: u16,
    /// The parsed TwiML, for a 200 answer.
    pub document: Option<Document>,
    pub body: String,
    /// The `<Say>`, `<Play>` and `<Pause>` verbs the caller heard from this document, in order
    /// (those inside a `<Gather>` included; those after a Gather that got keys are never reached).
    pub heard: Vec<Verb>,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Dial(Verb),
    Enqueue(Verb),
    Hangup,
    Reject,
    Connect(Verb),
    /// The last document ran out of verbs: Twilio hangs up.
    EndOfDocument,
    /// The key script had nothing left for a `<Gather>`: the caller hung up.
    OutOfKeys,
    /// [`MAX_REQUESTS`] requests without the call ending.
    TooManySteps,
    /// The server answered with this non-200 status.
    HttpError(u16),
}

/// Everything one call did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub call_sid: String,
    pub turns: Vec<Turn>,
    pub ending: Ending,
    /// The `<Number url>` (whisper) requests made for the answering party, in order.
    pub whispers: Vec<Turn>,
    /// Seconds the caller spent in a queue (modelled time).
    pub queue_time_s: u64,
    /// The requests a `<Record>` made besides its action (`recordingStatusCallback`,
    /// `transcribeCallback`), in order.
    pub callbacks: Vec<Turn>,
}

impl Transcript {
    /// The text of every `<Say>` the caller heard, across turns, in order, whitespace collapsed.
    pub fn spoken(&self) -> Vec<String> {
        self.turns.iter().flat_map(|t| &t.heard).filter(|v| v.name == "Say").map(Verb::spoken).collect()
    }

    /// The document of the last turn; an empty one if it had none (a non-200 answer).
    pub fn last(&self) -> &Document {
        static EMPTY: Document = Document { verbs: Vec::new() };
        self.turns.last().and_then(|t| t.document.as_ref()).unwrap_or(&EMPTY)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} timed out (Twilio waits 5 s to connect and 15 s in all: error 11205)")]
    Timeout { url: String },
    #[error("request to {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("{url} answered 200 with Content-Type {content_type:?}; Twilio wants text/xml (error 12300)")]
    ContentType { url: String, content_type: String },
    #[error("{url} answered {bytes} bytes of TwiML; Twilio's limit is 64 kB (error 11750)")]
    TooLarge { url: String, bytes: usize },
    #[error("{url} answered TwiML Twilio cannot parse (error 12100): {error}")]
    InvalidTwiml { url: String, error: TwimlError, body: String },
    #[error("<{verb}> asks for method {method}; the simulator follows POST only")]
    UnsupportedMethod { verb: String, method: String },
    #[error("<{0}> is not supported by the simulator")]
    UnsupportedVerb(String),
    #[error("{url} answered 403 Forbidden: the auth token does not match the server's (--token / TWILIO_AUTH_TOKEN)")]
    Forbidden { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("reading keys: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the texts the caller received: {0}")]
    Texts(String),
    #[error("keeping the recording at {url}: {reason}")]
    Recording { url: String, reason: String },
}

/// Places simulated inbound calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TwilioCaller {
    config: CallerConfig,
    client: reqwest::Client,
    /// Where what `<Record>` records is kept (so orderline can fetch it); nowhere orderline can
    /// reach when `None`.
    recordings: Option<RecordingKeeper>,
}

/// The Twilio account that keeps a call's recordings: the REST emulator in this process, or one
/// served by another (the demo's), reached over HTTP.
#[derive(Debug, Clone)]
enum RecordingKeeper {
    Here(rest::TwilioRestSim),
    There(TwilioAccount),
}

impl TwilioCaller {
    pub fn new(config: CallerConfig) -> Self {
        // Twilio's limits on call-related requests: 5 s to connect, 15 s in all.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("TwilioProxy/1.1")
            .build()
            .expect("a client with timeouts and a user agent always builds");
        TwilioCaller { config, client, recordings: None }
    }

    /// Keeps recordings in `rest` (the account's REST emulator), as Twilio keeps them in the account.
    pub fn with_rest(mut self, rest: rest::TwilioRestSim) -> Self {
        self.recordings = Some(RecordingKeeper::Here(rest));
        self
    }

    /// Keeps recordings in `account`, a REST emulator another process serves (the demo's).
    pub fn with_account(mut self, account: TwilioAccount) -> Self {
        self.recordings = Some(RecordingKeeper::There(account));
        self
    }

    /// Records what the caller said at a `<Record>` in the account that keeps this call's
    /// recordings.
    async fn record(&self, call_sid: &str, words: &str) -> Result<rest::SimRecording, CallError> {
        match &self.recordings {
            Some(RecordingKeeper::Here(rest)) => Ok(rest.record(call_sid, words)),
            Some(RecordingKeeper::There(account)) => account.keep_recording(&self.client, call_sid, words).await,
            None => Ok(rest::TwilioRestSim::new(rest::RestSimConfig::default()).record(call_sid, words)),
        }
    }

    pub fn config(&self) -> &CallerConfig {
        &self.config
    }

    /// Places one call: `POST {base_url}/twilio/voice`, then follows the TwiML until the call
    /// ends. `keys` is asked at every `<Gather>` (and gets it); `None` hangs up.
    pub async fn call(&self, keys: impl FnMut(&Verb) -> Option<Key>) -> Result<Transcript, CallError> {
        self.call_heard(keys, |_| {}).await
    }

    /// [`TwilioCaller::call`], telling `hear` about each `<Say>`, `<Play>` and `<Pause>` as the
    /// caller hears it.
    async fn call_heard(
        &self,
        keys: impl FnMut(&Verb) -> Option<Key>,
        hear: impl FnMut(&Verb),
    ) -> Result<Transcript, CallError> {
        let call_sid = self.config.call_sid.clone().unwrap_or_else(random_call_sid);
        let url = format!("{}/twilio/voice", self.config.base_url);
        let params = self.base_params(&call_sid, "ringing");
        self.walk(call_sid, url, params, keys, hear).await
    }

    /// Requests `url` with `params` and follows the TwiML from there, as [`TwilioCaller::call`]
    /// does from the incoming call (the Media Streams caller goes on here after its stream).
    pub async fn walk(
        &self,
        call_sid: String,
        url: String,
        params: Vec<(String, String)>,
        keys: impl FnMut(&Verb) -> Option<Key>,
        hear: impl FnMut(&Verb),
    ) -> Result<Transcript, CallError> {
        self.walk_from(call_sid, url, params, None, keys, hear).await
    }

    /// [`TwilioCaller::walk`] from `first`, the answer Twilio already has for `url` (a relay
    /// caller's incoming call answered with TwiML alone), then on as the TwiML says.
    pub async fn walk_from(
        &self,
        call_sid: String,
        mut url: String,
        mut params: Vec<(String, String)>,
        mut first: Option<Turn>,
        mut keys: impl FnMut(&Verb) -> Option<Key>,
        mut hear: impl FnMut(&Verb),
    ) -> Result<Transcript, CallError> {
        let mut turns: Vec<Turn> = Vec::new();
        let mut whispers: Vec<Turn> = Vec::new();
        let mut queue_time_s = 0;
        let mut callbacks: Vec<Turn> = Vec::new();
        // Requests Twilio makes once the current one is answered (a recording's callbacks).
        let mut after: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let ending = loop {
            if turns.len() == MAX_REQUESTS {
                break Ending::TooManySteps;
            }
            let mut turn = match first.take() {
                Some(turn) => turn,
                None => self.post(&url, &params).await?,
            };
            for (callback_url, callback_params) in after.drain(..) {
                callbacks.push(self.post_callback(&callback_url, &callback_params).await?);
            }
            let Some(document) = turn.document.clone() else {
                let status = turn.status;
                turns.push(turn);
                break Ending::HttpError(status);
            };
            let mut next: Option<(String, Vec<(String, String)>)> = None;
            let mut ending = None;
            let mut queue_turns: Vec<Turn> = Vec::new();
            for verb in &document.verbs {
                match verb.name.as_str() {
                    "Say" | "Play" | "Pause" => {
                        hear(verb);
                        turn.heard.push(verb.clone());
                    }
                    "Gather" => {
                        for prompt in &verb.children {
                            hear(prompt);
                            turn.heard.push(prompt.clone());
                        }
                        let Some(key) = keys(verb) else {
                            ending = Some(Ending::OutOfKeys);
                            break;
                        };
                        // A Gather listens for words only with `input="dtmf speech"` (or
                        // `speech`); it then posts `SpeechResult` and `Confidence` instead of
                        // `Digits` (twilio.com/docs/voice/twiml/gather#action: "speech
                        // recognition results", read 2026-12-04). Words at a keys-only Gather are
                        // not heard: it times out.
                        let listens = verb.attr("input").is_some_and(|i| i.split_whitespace().any(|w| w == "speech"));
                        let answer = match key {
                            Key::Digits(pressed) => Some(("Digits", gathered_digits(verb, &pressed), None)),
                            Key::Timeout => None,
                            Key::Speech { said, confidence } if listens => {
                                Some(("SpeechResult", said, Some(confidence)))
                            }
                            Key::Speech { .. } => None,
                        };
                        let answer = answer.filter(|(_, value, _)| !value.is_empty());
                        // actionOnEmptyResult defaults to false: no input, no request.
                        if answer.is_none() && verb.attr("actionOnEmptyResult") != Some("true") {
                            continue;
                        }
                        require_post(verb)?;
                        let action = resolve_url(&url, verb.attr("action").unwrap_or(""));
                        let mut action_params = self.base_params(&call_sid, "in-progress");
                        match answer {
                            Some((name, value, confidence)) => {
                                action_params.push((name.into(), value));
                                if let Some(confidence) = confidence {
                                    action_params.push(("Confidence".into(), format!("{confidence:.2}")));
                                }
                            }
                            None => action_params.push(("Digits".into(), String::new())),
                        }
                        next = Some((action, action_params));
                        break;
                    }
                    "Redirect" => {
                        require_post(verb)?;
                        next = Some((resolve_url(&url, verb.text.trim()), self.base_params(&call_sid, "in-progress")));
                        break;
                    }
                    "Dial" | "Enqueue" => {
                        let played = match (&self.config.transfer, verb.name.as_str()) {
                            (Transfer::Dial(outcome), "Dial") => {
                                Some(self.dial(&call_sid, &url, verb, *outcome, &mut whispers).await?)
                            }
                            (Transfer::Queue(script), "Enqueue") => {
                                match self.enqueue(&call_sid, &url, verb, script, &mut queue_turns, &mut hear).await? {
                                    Some(result) => Some(result),
                                    None => {
                                        ending = Some(Ending::TooManySteps);
                                        break;
                                    }
                                }
                            }
                            _ => None,
                        };
                        let Some(result) = played else {
                            ending = Some(if verb.name == "Dial" {
                                Ending::Dial(verb.clone())
                            } else {
                                Ending::Enqueue(verb.clone())
                            });
                            break;
                        };
                        queue_time_s += result.queue_time_s;
                        // With an action Twilio asks it what next; without one it reads on.
                        if let Some(action) = verb.attr("action") {
                            require_post(verb)?;
                            let mut action_params = self.base_params(&call_sid, "in-progress");
                            action_params.extend(result.params);
                            next = Some((resolve_url(&url, action), action_params));
                            break;
                        }
                    }
                    "Record" => {
                        let Some(key) = keys(verb) else {
                            ending = Some(Ending::OutOfKeys);
                            break;
                        };
                        // Keys end the recording before a word; silence times it out: an empty
                        // recording, for which "Twilio … will not make a request to the 'action'
                        // URL" and reads on (twilio.com/docs/voice/twiml/record#action).
                        let words = match key {
                            Key::Speech { said, .. } => said,
                            Key::Digits(_) | Key::Timeout => String::new(),
                        };
                        if words.trim().is_empty() {
                            continue;
                        }
                        require_post(verb)?;
                        let recording = self.record(&call_sid, &words).await?;
                        let action = resolve_url(&url, verb.attr("action").unwrap_or(""));
                        let mut action_params = self.base_params(&call_sid, "in-progress");
                        action_params.extend(recording_params(&recording));
                        // The caller pressed the finish key (`#`) when done.
                        action_params.push(("Digits".into(), "#".into()));
                        after.extend(record_callbacks(
                            &url,
                            verb,
                            &recording,
                            self.base_params(&call_sid, "in-progress"),
                        ));
                        next = Some((action, action_params));
                        break;
                    }
                    "Connect" => ending = Some(Ending::Connect(verb.clone())),
                    "Hangup" => ending = Some(Ending::Hangup),
                    "Reject" => ending = Some(Ending::Reject),
                    // Text messages are sent and the call goes on; <Leave> only acts in a queue.
                    "Message" | "Sms" | "Leave" => {}
                    other => return Err(CallError::UnsupportedVerb(other.to_string())),
                }
                if ending.is_some() {
                    break;
                }
            }
            turns.push(turn);
            turns.extend(queue_turns);
            if let Some(ending) = ending {
                break ending;
            }
            match next {
                Some((next_url, next_params)) => (url, params) = (next_url, next_params),
                None => break Ending::EndOfDocument,
            }
        };
        // Callbacks of a recording the last document answered still arrive after the call.
        for (callback_url, callback_params) in after.drain(..) {
            callbacks.push(self.post_callback(&callback_url, &callback_params).await?);
        }
        Ok(Transcript { call_sid, turns, ending, whispers, queue_time_s, callbacks })
    }

    /// A callback Twilio sends (no TwiML expected): the status and body, signed like every request.
    async fn post_callback(&self, url: &str, params: &[(String, String)]) -> Result<Turn, CallError> {
        let signature = signature::sign(&self.config.auth_token, url, params);
        let response = self
            .client
            .post(url)
            .header("X-Twilio-Signature", signature)
            .form(params)
            .send()
            .await
            .map_err(|e| request_error(url, e))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Turn { url: url.to_string(), status, document: None, body, heard: Vec::new() })
    }

    /// One form POST of `params` to `url` (absolute), signed as Twilio signs it. A 200 answer must
    /// be TwiML Twilio would accept (content type, size, syntax); any other status is returned
    /// as it is, with no document.
    pub async fn post(&self, url: &str, params: &[(String, String)]) -> Result<Turn, CallError> {
        let signature = signature::sign(&self.config.auth_token, url, params);
        let response = self
            .client
            .post(url)
            .header("X-Twilio-Signature", signature)
            .form(params)
            .send()
            .await
            .map_err(|e| request_error(url, e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.text().await.map_err(|e| request_error(url, e))?;
        let mut turn = Turn { url: url.to_string(), status, document: None, body, heard: Vec::new() };
        if status != 200 {
            return Ok(turn);
        }
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(mime.as_str(), "text/xml" | "application/xml" | "text/html") {
            return Err(CallError::ContentType { url: url.to_string(), content_type });
        }
        if turn.body.len() > MAX_BODY_BYTES {
            return Err(CallError::TooLarge { url: url.to_string(), bytes: turn.body.len() });
        }
        match twiml::parse(&turn.body) {
            Ok(document) => turn.document = Some(document),
            Err(error) => return Err(CallError::InvalidTwiml { url: url.to_string(), error, body: turn.body }),
        }
        Ok(turn)
    }

    /// A status callback as Twilio sends it to `POST {base_url}/twilio/status`; returns the
    /// HTTP status of the answer.
    pub async fn status_callback(
        &self,
        call_sid: &str,
        status: &str,
        duration_s: Option<u32>,
        sequence: u32,
    ) -> Result<u16, CallError> {
        let url = format!("{}/twilio/status", self.config.base_url);
        let mut params = self.base_params(call_sid, status);
        if let Some(duration) = duration_s {
            params.push(("CallDuration".into(), duration.to_string()));
        }
        params.push(("SequenceNumber".into(), sequence.to_string()));
        params.push(("Timestamp".into(), chrono::Utc::now().to_rfc2822()));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        let signature = signature::sign(&self.config.auth_token, &url, &params);
        let response = self
            .client
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .map_err(|e| request_error(&url, e))?;
        Ok(response.status().as_u16())
    }

    /// The parameters Twilio sends with every request of an inbound call.
    pub fn base_params(&self, call_sid: &str, call_status: &str) -> Vec<(String, String)> {
        let c = &self.config;
        let mut params: Vec<(String, String)> = [
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", call_sid),
            ("From", &c.from),
            ("To", &c.to),
            ("Caller", &c.from),
            ("Called", &c.to),
            ("CallStatus", call_status),
            ("Direction", "inbound"),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        if let Some(stir) = &c.stir_verstat {
            params.push(("StirVerstat".into(), stir.clone()));
        }
        params.extend(c.extra_params.iter().cloned());
        params
    }
}

/// The parameters Twilio adds about a recording (twilio.com/docs/voice/twiml/record#action).
fn recording_params(recording: &rest::SimRecording) -> Vec<(String, String)> {
    vec![
        ("RecordingUrl".into(), recording.url.clone()),
        ("RecordingDuration".into(), recording.duration_s.to_string()),
        ("RecordingSid".into(), recording.sid.clone()),
    ]
}

/// The requests a `<Record>` makes after its action, as its attributes ask: the recording
/// status callback when the file is ready (`RecordingStatus=completed`, `RecordingSource=RecordVerb`)
/// and, with `transcribe="true"`, the transcription (`TranscriptionStatus`, `TranscriptionText`;
/// the emulator hears the words exactly). Source: twilio.com/docs/voice/twiml/record
/// (recordingStatusCallback and transcribeCallback parameters), read 2026-12-04.
fn record_callbacks(
    current: &str,
    verb: &Verb,
    recording: &rest::SimRecording,
    base: Vec<(String, String)>,
) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    if let Some(callback) = verb.attr("recordingStatusCallback") {
        let mut params: Vec<(String, String)> =
            base.iter().filter(|(n, _)| n == "AccountSid" || n == "CallSid").cloned().collect();
        params.extend(recording_params(recording));
        params.extend([
            ("RecordingStatus".to_string(), "completed".to_string()),
            ("RecordingChannels".to_string(), "1".to_string()),
            ("RecordingSource".to_string(), "RecordVerb".to_string()),
            ("RecordingStartTime".to_string(), chrono::Utc::now().to_rfc2822()),
        ]);
        out.push((resolve_url(current, callback), params));
    }
    if verb.attr("transcribe") == Some("true")
        && let Some(callback) = verb.attr("transcribeCallback")
    {
        let mut params = base;
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        params.extend([
            ("TranscriptionSid".to_string(), format!("TR{:032x}", u128::from_be_bytes(bytes))),
            ("TranscriptionText".to_string(), recording.words.clone()),
            ("TranscriptionStatus".to_string(), "completed".to_string()),
            ("RecordingSid".to_string(), recording.sid.clone()),
            ("RecordingUrl".to_string(), recording.url.clone()),
        ]);
        out.push((resolve_url(current, callback), params));
    }
    out
}

/// Keys for a scripted caller: `"1"` presses 1, `""` or `"timeout"` lets the Gather time out,
/// `"say:where's my order"` says it (confidence 0.92), `"mumble:…"` says it unclearly
/// (confidence 0.12); when the script runs out the caller hangs up.
pub fn scripted(keys: &[&str]) -> impl FnMut(&Verb) -> Option<Key> + use<> {
    let mut keys: std::vec::IntoIter<Key> = keys
        .iter()
        .map(|k| match k.trim() {
            "" | "timeout" => Key::Timeout,
            said if said.starts_with("say:") => Key::Speech { said: said[4..].trim().to_string(), confidence: 0.92 },
            said if said.starts_with("mumble:") => Key::Speech { said: said[7..].trim().to_string(), confidence: 0.12 },
            digits => Key::Digits(digits.to_string()),
        })
        .collect::<Vec<_>>()
        .into_iter();
    move |_| keys.next()
}

/// What Twilio posts as `Digits` when the caller presses `pressed`: up to (not including) the
/// `finishOnKey` (default `#`), at most `numDigits`.
fn gathered_digits(gather: &Verb, pressed: &str) -> String {
    let finish = gather.attr("finishOnKey").unwrap_or("#");
    let mut digits: String = match finish.chars().next() {
        Some(key) => pressed.split(key).next().unwrap_or("").to_string(),
        None => pressed.to_string(),
    };
    if let Some(n) = gather.attr("numDigits").and_then(|n| n.trim().parse::<usize>().ok()) {
        digits = digits.chars().take(n).collect();
    }
    digits
}

fn require_post(verb: &Verb) -> Result<(), CallError> {
    match verb.attr("method") {
        None => Ok(()),
        Some(method) if method.eq_ignore_ascii_case("POST") => Ok(()),
        Some(method) => Err(CallError::UnsupportedMethod { verb: verb.name.clone(), method: method.to_string() }),
    }
}

/// Resolves a `<Gather action>` or `<Redirect>` URL against the URL of the document it came from,
/// as a browser (RFC 3986) would: absolute URLs as they are, `/path?q` on the same origin,
/// `?q` on the same path, `path` next to the current one; an empty reference is the current URL.
/// Fragments are dropped (they are never sent).
pub fn resolve_url(current: &str, reference: &str) -> String {
    let current = current.split('#').next().unwrap_or(current);
    let reference = reference.trim();
    let reference = reference.split('#').next().unwrap_or(reference);
    if reference.is_empty() {
        return current.to_string();
    }
    if has_scheme(reference) {
        return reference.to_string();
    }
    let (scheme, rest) = current.split_once("://").unwrap_or(("http", current));
    if let Some(network_path) = reference.strip_prefix("//") {
        return format!("{scheme}://{network_path}");
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let origin = format!("{scheme}://{authority}");
    let current_path = path_and_query.split('?').next().unwrap_or("");
    if reference.starts_with('?') {
        let path = if current_path.is_empty() { "/" } else { current_path };
        return format!("{origin}{path}{reference}");
    }
    let (ref_path, query) = match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    };
    let merged = if ref_path.starts_with('/') {
        ref_path.to_string()
    } else {
        let directory = match current_path.rfind('/') {
            Some(i) => &current_path[..=i],
            None => "/",
        };
        format!("{directory}{ref_path}")
    };
    let mut url = format!("{origin}{}", remove_dot_segments(&merged));
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn has_scheme(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !scheme.contains('/')
        }
        None => false,
    }
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments removed, never above the root.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                output.pop();
            }
            other => output.push(other),
        }
        if i == last && matches!(*segment, "." | "..") {
            output.push("");
        }
    }
    format!("/{}", output.join("/"))
}

/// `CA` and 32 hex digits, different for every call.
pub fn random_call_sid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(count);
        hasher.write_u32(std::process::id());
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("CA{:016x}{:016x}", half(1), half(2))
}

fn request_error(url: &str, e: reqwest::Error) -> CallError {
    let url = url.to_string();
    if e.is_timeout() {
        return CallError::Timeout { url };
    }
    // reqwest's own message names the URL; the cause ("Connection refused") is further down.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    if e.is_connect() { CallError::Unreachable { url, reason } } else { CallError::Http { url, reason } }
}

/// `orderline call`: what the command line gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOptions {
    pub from: String,
    /// orderline's base URL.
    pub url: String,
    pub token: String,
    pub to: String,
    /// Scripted keys (`""`/`"timeout"` for a timeout); `None` reads them from stdin.
    pub keys: Option<Vec<String>>,
    pub stir: Option<String>,
    /// The Twilio account behind the number (the demo's REST emulator): its messages to the
    /// caller are printed as the caller's phone receives them, and what the caller records at a
    /// `<Record>` is kept there, where orderline fetches it.
    pub account: Option<TwilioAccount>,
    /// The line's own recordings (ORDERLINE_SPEECH_DIR), so a Media Streams caller recognises them.
    pub speech_dir: Option<std::path::PathBuf>,
}

impl CallOptions {
    /// The caller these options describe, its recordings kept in the options' account if any.
    pub fn caller(&self) -> TwilioCaller {
        let mut config = CallerConfig::new(&self.url, &self.token, &self.from);
        config.to.clone_from(&self.to);
        config.stir_verstat.clone_from(&self.stir);
        let caller = TwilioCaller::new(config);
        match &self.account {
            Some(account) => caller.with_account(account.clone()),
            None => caller,
        }
    }

    /// The texts the caller's phone holds before the call (none without an account).
    pub async fn texts_before(&self) -> Result<Vec<String>, CallError> {
        match &self.account {
            Some(account) => account.seen(&self.from).await,
            None => Ok(Vec::new()),
        }
    }

    /// Prints the texts the caller's phone received since `before`, as it receives them.
    pub async fn print_texts_since(&self, before: &[String]) -> Result<(), CallError> {
        match &self.account {
            Some(account) => account.print_new(&self.from, before).await,
            None => Ok(()),
        }
    }
}

/// A Twilio account served by a REST emulator in another process: where the caller's texts are
/// read from (`→ text to +1•••4567: …`) and the call's recordings kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    pub api_url: String,
    pub account_sid: String,
    pub token: String,
}

impl TwilioAccount {
    fn client(&self) -> crate::twilio::rest::TwilioRest {
        let credentials = crate::twilio::rest::RestCredentials {
            account_sid: self.account_sid.clone(),
            username: self.account_sid.clone(),
            password: crate::config::Secret::new(self.token.clone()),
        };
        crate::twilio::rest::TwilioRest::new(
            &self.api_url,
            credentials,
            std::sync::Arc::new(crate::ops::Metrics::new()),
        )
    }

    /// Keeps a recording of `words` for `call_sid` in the account ([`rest::KEEP_RECORDING_PATH`]).
    async fn keep_recording(
        &self,
        client: &reqwest::Client,
        call_sid: &str,
        words: &str,
    ) -> Result<rest::SimRecording, CallError> {
        let url = format!(
            "{}{}",
            self.api_url.trim_end_matches('/'),
            rest::KEEP_RECORDING_PATH.replace("{account}", &self.account_sid)
        );
        let failed = |reason: String| CallError::Recording { url: url.clone(), reason };
        let response = client
            .post(&url)
            .basic_auth(&self.account_sid, Some(&self.token))
            .form(&[("CallSid", call_sid), ("Words", words)])
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("answered HTTP {}", status.as_u16())));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        rest::recording_from_json(&body).ok_or_else(|| failed(format!("answered {body} (not a recording)")))
    }

    /// The SIDs of the messages `to` has received so far.
    async fn seen(&self, to: &str) -> Result<Vec<String>, CallError> {
        let listed = self.client().messages_to(to).await.map_err(|e| CallError::Texts(e.to_string()))?;
        Ok(listed.into_iter().map(|m| m.sid).collect())
    }

    /// Prints the messages `to` received that are not in `seen`, oldest first.
    async fn print_new(&self, to: &str, seen: &[String]) -> Result<(), CallError> {
        let listed = self.client().messages_to(to).await.map_err(|e| CallError::Texts(e.to_string()))?;
        for m in listed.iter().rev().filter(|m| !seen.contains(&m.sid)) {
            println!("→ text to {}: {}", crate::domain::mask_phone(&m.to), m.body);
        }
        Ok(())
    }
}

/// Places one call and prints it: each `<Say>` heard, each prompt, the ending; then posts the
/// `completed` status callback. Keys come from `options.keys` or, line by line, from stdin
/// (an empty line lets the Gather time out, end of input hangs up).
pub async fn run_cli(options: CallOptions) -> Result<(), CallError> {
    let caller = options.caller();
    println!("calling {} from {} to {}", caller.config.base_url, caller.config.from, caller.config.to);
    let mut script = options.keys.as_ref().map(|keys| scripted(&keys.iter().map(String::as_str).collect::<Vec<_>>()));
    let mut stdin_failure: Option<std::io::Error> = None;
    let keys = |gather: &Verb| {
        let finish = gather.attr("finishOnKey").unwrap_or("#");
        let finish = if finish.is_empty() { String::new() } else { format!(", {finish} to finish") };
        println!("  gather: (press keys{finish})");
        let key = match &mut script {
            Some(script) => script(gather),
            None => match read_key() {
                Ok(key) => key,
                Err(e) => {
                    stdin_failure = Some(e);
                    None
                }
            },
        };
        match &key {
            Some(Key::Digits(digits)) => println!("  pressed: {digits}"),
            Some(Key::Timeout) => println!("  pressed: nothing (timeout)"),
            Some(Key::Speech { said, .. }) => println!("  said: {said:?}"),
            None => {}
        }
        key
    };
    let texts = options.texts_before().await?;
    let started = Instant::now();
    let transcript = caller.call_heard(keys, print_heard).await?;
    if let Some(e) = stdin_failure {
        return Err(CallError::Io(e));
    }
    let ending = ending_words(&transcript)?;
    println!("→ {ending}");
    options.print_texts_since(&texts).await?;
    let duration = u32::try_from(started.elapsed().as_secs_f64().ceil() as u64).unwrap_or(u32::MAX);
    let status = caller.status_callback(&transcript.call_sid, "completed", Some(duration), 0).await?;
    println!("status callback: completed after {duration} s → HTTP {status}");
    if !(200..300).contains(&status) {
        eprintln!("orderline: the status callback was answered {status}");
    }
    Ok(())
}

/// How a call ended, in a few words (`enqueue support`, `dial +1555…`); an HTTP failure is an error.
pub(crate) fn ending_words(transcript: &Transcript) -> Result<String, CallError> {
    let last_url = transcript.turns.last().map(|t| t.url.clone()).unwrap_or_default();
    let ending = match &transcript.ending {
        Ending::HttpError(403) => return Err(CallError::Forbidden { url: last_url }),
        Ending::HttpError(status) => return Err(CallError::Status { url: last_url, status: *status }),
        Ending::Dial(dial) => format!("dial {}", dial_target(dial)),
        Ending::Enqueue(enqueue) => match enqueue.text.trim() {
            "" => format!("enqueue (workflow {})", enqueue.attr("workflowSid").unwrap_or("none")),
            queue => format!("enqueue {queue}"),
        },
        Ending::Connect(connect) => {
            let target = connect.children.first().map(|c| {
                format!("{} {}", c.name.to_lowercase(), c.attr("url").unwrap_or(c.text.trim())).trim_end().to_string()
            });
            format!("connect {}", target.unwrap_or_default()).trim_end().to_string()
        }
        Ending::Hangup => "hangup".into(),
        Ending::Reject => "reject".into(),
        Ending::EndOfDocument => "hangup (end of TwiML)".into(),
        Ending::OutOfKeys => "caller hung up".into(),
        Ending::TooManySteps => format!("stopped after {MAX_REQUESTS} requests (a redirect loop?)"),
    };
    Ok(ending)
}

pub(crate) fn print_heard(verb: &Verb) {
    match verb.name.as_str() {
        "Say" => println!("  say: {}", verb.spoken()),
        "Play" => println!("  play: {}", verb.text.trim()),
        _ => println!("  pause: {} s", verb.attr("length").unwrap_or("1")),
    }
}

pub(crate) fn dial_target(dial: &Verb) -> String {
    if !dial.text.trim().is_empty() {
        return dial.text.trim().to_string();
    }
    let nouns: Vec<String> = dial
        .children
        .iter()
        .map(|noun| match noun.name.as_str() {
            "Number" => noun.text.trim().to_string(),
            other => format!("{} {}", other.to_lowercase(), noun.text.trim()),
        })
        .collect();
    nouns.join(", ")
}

/// One line of stdin: digits, an empty line for a timeout, `None` at end of input.
/// At a TwiML verb that takes input after a Media Streams stream or a ConversationRelay session
/// (`orderline call --media` or `--relay` without `--keys`): the terminal's line.
pub(crate) fn read_key_at(verb: &Verb) -> Option<Key> {
    if verb.name == "Record" {
        println!("  (recording: type `say <your message>`, then Enter; an empty line records nothing)");
    } else {
        println!("  (press keys, then Enter; an empty line waits, end of input hangs up)");
    }
    tokio::task::block_in_place(read_key).ok().flatten()
}

/// Prints what the caller did at such a verb.
pub(crate) fn print_key_at(verb: &Verb, key: Option<&Key>) {
    match key {
        Some(Key::Speech { said, .. }) => println!("  said at <{}>: {said}", verb.name),
        Some(Key::Digits(d)) => println!("  pressed at <{}>: {d}", verb.name),
        Some(Key::Timeout) => println!("  nothing at <{}>", verb.name),
        None => {}
    }
}

pub(crate) fn read_key() -> std::io::Result<Option<Key>> {
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    // "say where's my order" (or "say:…"): words instead of keys.
    if let Some(said) = line.trim().strip_prefix("say").filter(|rest| rest.starts_with([' ', ':'])) {
        return Ok(Some(Key::Speech { said: said[1..].trim().to_string(), confidence: 0.92 }));
    }
    let digits: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(Some(if digits.is_empty() { Key::Timeout } else { Key::Digits(digits) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "http://127.0.0.1:8080/twilio/voice/menu?n=1";

    #[test]
    fn an_absolute_path_keeps_the_origin_and_takes_its_own_query() {
        assert_eq!(resolve_url(PAGE, "/twilio/voice/step?x=1"), "http://127.0.0.1:8080/twilio/voice/step?x=1");
        assert_eq!(resolve_url(PAGE, "/twilio/voice"), "http://127.0.0.1:8080/twilio/voice");
        assert_eq!(
            resolve_url("https://support.example.com/twilio/voice", "/twilio/voice/end"),
            "https://support.example.com/twilio/voice/end"
        );
    }

    #[test]
    fn a_full_url_is_taken_as_it_is() {
        assert_eq!(resolve_url(PAGE, "https://other.example/x?y=2"), "https://other.example/x?y=2");
        assert_eq!(resolve_url(PAGE, "HTTP://other.example:81/x"), "HTTP://other.example:81/x");
        assert_eq!(resolve_url("https://a.example/p", "//b.example/q"), "https://b.example/q");
    }

    #[test]
    fn a_relative_path_sits_next_to_the_current_document() {
        assert_eq!(resolve_url(PAGE, "step?x=1"), "http://127.0.0.1:8080/twilio/voice/step?x=1");
        assert_eq!(resolve_url(PAGE, "./step"), "http://127.0.0.1:8080/twilio/voice/step");
        assert_eq!(resolve_url(PAGE, "../status"), "http://127.0.0.1:8080/twilio/status");
        assert_eq!(resolve_url(PAGE, "../../../../x"), "http://127.0.0.1:8080/x");
        assert_eq!(resolve_url("http://h:1/twilio/voice/", "menu"), "http://h:1/twilio/voice/menu");
        assert_eq!(resolve_url("http://h:1", "menu"), "http://h:1/menu");
        assert_eq!(resolve_url(PAGE, "a/./b/../c"), "http://127.0.0.1:8080/twilio/voice/a/c");
        assert_eq!(resolve_url(PAGE, ".."), "http://127.0.0.1:8080/twilio/");
    }

    #[test]
    fn a_query_only_or_empty_reference_stays_on_the_current_path() {
        assert_eq!(resolve_url(PAGE, "?n=2"), "http://127.0.0.1:8080/twilio/voice/menu?n=2");
        assert_eq!(resolve_url(PAGE, ""), PAGE);
        assert_eq!(resolve_url(PAGE, "  "), PAGE);
        assert_eq!(resolve_url(PAGE, "#rc=2"), PAGE);
        assert_eq!(resolve_url(PAGE, "/x?a=1#rc=2"), "http://127.0.0.1:8080/x?a=1");
        assert_eq!(resolve_url("http://h", "?a=1"), "http://h/?a=1");
    }

    #[test]
    fn a_colon_later_in_a_path_is_not_a_scheme() {
        assert_eq!(resolve_url(PAGE, "step/a:b"), "http://127.0.0.1:8080/twilio/voice/step/a:b");
        assert_eq!(resolve_url(PAGE, "/x?at=12:30"), "http://127.0.0.1:8080/x?at=12:30");
    }

    fn gather(attrs: &[(&str, &str)]) -> Verb {
        Verb {
            name: "Gather".into(),
            attrs: attrs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..Verb::default()
        }
    }

    #[test]
    fn the_finish_key_and_num_digits_bound_what_is_sent() {
        assert_eq!(gathered_digits(&gather(&[]), "1234#9"), "1234");
        assert_eq!(gathered_digits(&gather(&[]), "#"), "");
        assert_eq!(gathered_digits(&gather(&[("finishOnKey", "*")]), "12#*3"), "12#");
        assert_eq!(gathered_digits(&gather(&[("finishOnKey", "")]), "12#"), "12#");
        assert_eq!(gathered_digits(&gather(&[("numDigits", "1")]), "42"), "4");
        assert_eq!(gathered_digits(&gather(&[("numDigits", "5")]), "42"), "42");
    }

    #[test]
    fn a_script_presses_its_keys_then_hangs_up() {
        let mut keys = scripted(&["1", "", "timeout", "90210#"]);
        let g = gather(&[]);
        assert_eq!(keys(&g), Some(Key::Digits("1".into())));
        assert_eq!(keys(&g), Some(Key::Timeout));
        assert_eq!(keys(&g), Some(Key::Timeout));
        assert_eq!(keys(&g), Some(Key::Digits("90210#".into())));
        assert_eq!(keys(&g), None);
        assert_eq!(keys(&g), None);
    }

    #[test]
    fn call_sids_look_like_twilios_and_differ() {
        let (a, b) = (random_call_sid(), random_call_sid());
        for sid in [&a, &b] {
            assert_eq!(sid.len(), 34, "{sid}");
            assert!(sid.starts_with("CA") && sid[2..].chars().all(|c| c.is_ascii_hexdigit()), "{sid}");
        }
        assert_ne!(a, b);
        assert_eq!(ACCOUNT_SID.len(), 34);
        assert!(ACCOUNT_SID[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_base_url_loses_its_trailing_slash() {
        assert_eq!(CallerConfig::new("http://h:1/", "t", "+1").base_url, "http://h:1");
        assert_eq!(CallerConfig::new("http://h:1", "t", "+1").to, DEFAULT_TO);
    }
}
