//! A stand-in for Twilio's REST API, as far as orderline uses it: the IncomingPhoneNumbers list
//! (filtered by `PhoneNumber`, in Twilio's paging envelope) and the update of one number (`setup
//! twilio`, `doctor`), Messages (create, list by `To`: the tracking link by text), and
//! Recordings (the media of a voicemail the caller emulator recorded), behind
//! HTTP basic auth. One number is seeded per account; every request is recorded; every message
//! created is kept for tests to read; failures and latency on demand; message status callbacks
//! POSTed signed, as Twilio signs them. It only plays Twilio's side.
//!
//! Sources (read 2026-12-04): https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource
//! (paths, parameters `VoiceUrl` … `StatusCallbackMethod`, snake_case properties, `PhoneNumber`
//! filter accepting partial numbers); https://www.twilio.com/docs/usage/requests-to-twilio
//! (basic auth: account SID + auth token, or API key + secret; form-encoded bodies);
//! https://www.twilio.com/docs/usage/twilios-response (list envelope `first_page_uri`,
//! `next_page_uri`, `page`, `page_size`, `previous_page_uri`, `start`, `end`, `uri`; error JSON
//! `code`, `message`, `more_info`, `status`); https://www.twilio.com/docs/errors/20003 and
//! …/20404 (the codes for bad credentials and an unknown resource).
//!
//! Messages (read 2026-12-04): https://www.twilio.com/docs/messaging/api/message-resource
//! (`POST /Accounts/{AccountSid}/Messages.json` with `To`, `From`, `Body`, `StatusCallback`;
//! answered 201 with the Message: `sid` SM + 32 hex, `status` `queued` when created without a
//! Messaging Service, `direction` `outbound-api`, `num_segments`, `error_code` null; `Body` up to
//! 1,600 characters; list filtered by `To`). Errors: https://www.twilio.com/docs/api/errors/21604
//! ('To' required), …/21211 (invalid 'To'), …/21602 (Body required), …/21617 (body over 1,600
//! characters), …/21606 (From is not a message-capable number of this account), …/21659 (From is
//! not a Twilio phone number). Status callbacks:
//! https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks ("A
//! status callback request is not sent for the initial status of a newly created Message
//! resource": so `sent` then `delivered`, never `queued`) with `MessageSid`, `MessageStatus`,
//! `SmsSid`, `SmsStatus`, `AccountSid`, `From`, `To`, `ApiVersion`, and `ErrorCode` on a failure
//! (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status), signed with the
//! auth token like every Twilio request (https://www.twilio.com/docs/usage/security).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a newly bought Twilio number answers calls with until it is configured (Twilio's demo
/// TwiML, the console's default "A call comes in" URL).
pub const UNCONFIGURED_VOICE_URL: &str = "https://demo.twilio.com/welcome/voice/";

/// The account, its credentials and its one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestSimConfig {
    pub account_sid: String,
    pub auth_token: String,
    /// An API key SID (`SK…`) and its secret, accepted as well as the auth token.
    pub api_key: String,
    pub api_secret: String,
    /// The account's number, E.164.
    pub number: String,
}

impl Default for RestSimConfig {
    fn default() -> Self {
        RestSimConfig {
            account_sid: super::ACCOUNT_SID.into(),
            auth_token: "demo-twilio-token".into(),
            api_key: "SK0d1e2a3b4c5d6e7f8091a2b3c4d5e6f7".into(),
            api_secret: "demo-twilio-api-secret".into(),
            number: super::DEFAULT_TO.into(),
        }
    }
}

/// One IncomingPhoneNumber's voice settings, as Twilio holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNumber {
    pub sid: String,
    pub phone_number: String,
    pub voice_url: String,
    pub voice_method: String,
    pub voice_fallback_url: String,
    pub voice_fallback_method: String,
    pub status_callback: String,
    pub status_callback_method: String,
}

/// One request the emulator received: method, path, and its query and form parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
}

/// A message created through the API, as Twilio keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
    /// The latest status: `queued`, then `sent` and `delivered` (or `undelivered`).
    pub status: String,
}

/// A recording made at a `<Record>`, as Twilio keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecording {
    /// `RE` and 32 hex digits.
    pub sid: String,
    pub call_sid: String,
    /// Whole seconds, as Twilio reports `RecordingDuration`.
    pub duration_s: u32,
    /// The URL Twilio hands out: the resource, without a file extension.
    pub url: String,
    /// What the caller said: the emulator's transcription.
    pub words: String,
}

/// A call placed through the API (`Calls.json`), as Twilio keeps it, with what the callee heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub url: String,
    pub status_callback: Option<String>,
    /// `MachineDetection` as asked (`Enable`, `DetectMessageEnd`), if it was.
    pub machine_detection: Option<String>,
    /// What Twilio's detection said answered (`AnsweredBy`), when it ran and the call was answered.
    pub answered_by: Option<String>,
    /// `queued`, then `completed`, `busy`, `no-answer` or `failed`.
    pub status: String,
    /// The `<Say>` text the callee heard, in order.
    pub heard: Vec<String>,
    /// The verb the callee's call ended at (`Enqueue`, `Dial`, `Hangup`, …).
    pub ended_at: Option<String>,
}

/// What the callee of a placed call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Callee {
    /// Picks up: Twilio requests the call's `Url` and plays the TwiML to them.
    #[default]
    Answers,
    Busy,
    NoAnswer,
    /// The call could not be connected.
    Fails,
    /// A voicemail box picks up: its greeting, then a beep. With `MachineDetection`, `Url` is
    /// requested with `AnsweredBy` `machine_start` (`Enable`) or `machine_end_beep`
    /// (`DetectMessageEnd`, after the greeting); without, the TwiML plays to the box as to a
    /// person.
    Machine,
    /// A fax machine picks up (`AnsweredBy` `fax` when detection runs).
    Fax,
}

/// What happens to a message after Twilio accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// `sent`, then `delivered`, each with a status callback.
    #[default]
    Delivered,
    /// `sent`, then `undelivered` with this error code (30003 unreachable handset, 30032
    /// toll-free number not verified, …).
    Undelivered(u32),
    /// Stays `queued`: no callback.
    Never,
}

/// A fault injected into every request after the credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestFailure {
    #[default]
    None,
    /// Every request answered with this HTTP status (Twilio's error JSON, code 20500 or 20429).
    Http(u16),
    /// The next `n` requests answered with this status, then back to normal.
    HttpTimes(u16, u32),
}

struct Inner {
    config: RestSimConfig,
    number: Mutex<SimNumber>,
    requests: Mutex<Vec<RecordedRequest>>,
    failure: Mutex<RestFailure>,
    latency: Mutex<Duration>,
    messages: Mutex<Vec<SimMessage>>,
    delivery: Mutex<Delivery>,
    recordings: Mutex<Vec<SimRecording>>,
    calls: Mutex<Vec<SimCall>>,
    /// What the callees of placed calls do, in turn; `callee` once these are used up.
    callees: Mutex<std::collections::VecDeque<Callee>>,
    callee: Mutex<Callee>,
    /// Where [`TwilioRestSim::serve`] listens, for recording URLs.
    base_url: Mutex<Option<String>>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The emulated Twilio account. Cheap to clone.
#[derive(Clone)]
pub struct TwilioRestSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TwilioRestSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRestSim").field("account_sid", &self.inner.config.account_sid).finish_non_exhaustive()
    }
}

impl TwilioRestSim {
    pub fn new(config: RestSimConfig) -> TwilioRestSim {
        // A PN SID derived from the number, so a restart keeps it.
        let digits: String = config.number.chars().filter(|c| c.is_ascii_digit()).collect();
        let sid = format!("PN{:0>32}", digits.chars().take(32).collect::<String>());
        let number = SimNumber {
            sid,
            phone_number: config.number.clone(),
            voice_url: UNCONFIGURED_VOICE_URL.into(),
            voice_method: "POST".into(),
            voice_fallback_url: String::new(),
            voice_fallback_method: "POST".into(),
            status_callback: String::new(),
            status_callback_method: "POST".into(),
        };
        TwilioRestSim {
            inner: Arc::new(Inner {
                config,
                number: Mutex::new(number),
                requests: Mutex::new(Vec::new()),
                failure: Mutex::new(RestFailure::None),
                latency: Mutex::new(Duration::ZERO),
                messages: Mutex::new(Vec::new()),
                delivery: Mutex::new(Delivery::default()),
                recordings: Mutex::new(Vec::new()),
                calls: Mutex::new(Vec::new()),
                callees: Mutex::new(std::collections::VecDeque::new()),
                callee: Mutex::new(Callee::default()),
                base_url: Mutex::new(None),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("the HTTP client builds with static settings"),
            }),
        }
    }

    pub fn config(&self) -> &RestSimConfig {
        &self.inner.config
    }

    /// The number as Twilio holds it now.
    pub fn number(&self) -> SimNumber {
        lock(&self.inner.number).clone()
    }

    /// Changes the number as someone in the Twilio console would.
    pub fn change_number(&self, f: impl FnOnce(&mut SimNumber)) {
        f(&mut lock(&self.inner.number));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// The POSTs received (updates), refused ones included.
    pub fn posts(&self) -> usize {
        lock(&self.inner.requests).iter().filter(|r| r.method == "POST").count()
    }

    pub fn set_failure(&self, failure: RestFailure) {
        *lock(&self.inner.failure) = failure;
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.inner.latency) = latency;
    }

    /// Every message created so far (refused ones are not messages), oldest first.
    pub fn messages(&self) -> Vec<SimMessage> {
        lock(&self.inner.messages).clone()
    }

    /// What happens to messages created from now on.
    pub fn set_delivery(&self, delivery: Delivery) {
        *lock(&self.inner.delivery) = delivery;
    }

    /// Records what a caller said at a `<Record>`: about two words a second, whole seconds, at
    /// least one (a word or two makes the one-second recording a voicemail box discards).
    pub fn record(&self, call_sid: &str, words: &str) -> SimRecording {
        let count = words.split_whitespace().count() as u32;
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        let sid = format!("RE{:032x}", u128::from_be_bytes(bytes));
        let base = lock(&self.inner.base_url).clone().unwrap_or_else(|| "https://api.twilio.com".into());
        let recording = SimRecording {
            url: format!("{base}/2010-04-01/Accounts/{}/Recordings/{sid}", self.inner.config.account_sid),
            sid,
            call_sid: call_sid.into(),
            duration_s: count.div_ceil(2).max(1),
            words: words.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        lock(&self.inner.recordings).push(recording.clone());
        recording
    }

    /// Every call placed through the API so far, oldest first (with what each callee heard).
    pub fn calls(&self) -> Vec<SimCall> {
        lock(&self.inner.calls).clone()
    }

    /// What the callees of the next placed calls do, one each, in order; then `Answers`.
    pub fn set_callees(&self, callees: &[Callee]) {
        *lock(&self.inner.callees) = callees.iter().copied().collect();
    }

    /// Every recording made so far, oldest first.
    pub fn recordings(&self) -> Vec<SimRecording> {
        lock(&self.inner.recordings).clone()
    }

    /// Binds `addr` and serves `/2010-04-01/…` until [`RestSimServer::stop`].
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RestSimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        *lock(&self.inner.base_url) = Some(format!("http://{addr}"));
        let (closing, mut watching) = watch::channel(false);
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json", get(list_numbers))
            .route("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}", post(update_number).get(fetch_number))
            .route("/2010-04-01/Accounts/{account}/Messages.json", post(create_message).get(list_messages))
            .route("/2010-04-01/Accounts/{account}/Recordings/{file}", get(fetch_recording).delete(delete_recording))
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create_call))
            .route(KEEP_RECORDING_PATH, post(keep_recording))
            .fallback(unknown)
            .with_state(self.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = watching.wait_for(|c| *c).await;
                })
                .await
        });
        Ok(RestSimServer { addr, closing, task })
    }

    /// Records the request, checks the credentials and the account, applies the latency and
    /// any failure: `Err` is the answer to send instead.
    async fn admit(
        &self,
        method: &Method,
        path: &str,
        account: &str,
        headers: &HeaderMap,
        params: Vec<(String, String)>,
    ) -> Result<(), Response> {
        lock(&self.inner.requests).push(RecordedRequest { method: method.to_string(), path: path.to_string(), params });
        let latency = *lock(&self.inner.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if !self.authorized(headers) {
            // https://www.twilio.com/docs/errors/20003: "Permission Denied" / authentication error.
            return Err(error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authentication Error - invalid username",
                Some("Your AccountSid or AuthToken was incorrect."),
            ));
        }
        let failure = {
            let mut failure = lock(&self.inner.failure);
            let now = *failure;
            if let RestFailure::HttpTimes(code, n) = now {
                *failure = if n <= 1 { RestFailure::None } else { RestFailure::HttpTimes(code, n - 1) };
            }
            now
        };
        if let RestFailure::Http(code) | RestFailure::HttpTimes(code, _) = failure {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // https://www.twilio.com/docs/errors/20429, …/20003 (credentials refused), …/20500.
            let twilio_code = match code {
                429 => 20429,
                401 => 20003,
                _ => 20500,
            };
            return Err(error(status, twilio_code, status.canonical_reason().unwrap_or("Error"), None));
        }
        if account != self.inner.config.account_sid {
            return Err(not_found(path));
        }
        Ok(())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some((user, password)) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        else {
            return false;
        };
        let c = &self.inner.config;
        (user == c.account_sid && password == c.auth_token) || (user == c.api_key && password == c.api_secret)
    }
}

/// Twilio's error JSON (`detail` where Twilio adds one).
fn error(status: StatusCode, code: u32, message: &str, detail: Option<&str>) -> Response {
    let mut body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    if let Some(detail) = detail {
        body["detail"] = json!(detail);
    }
    (status, axum::Json(body)).into_response()
}

fn not_found(path: &str) -> Response {
    error(StatusCode::NOT_FOUND, 20404, &format!("The requested resource {path} was not found"), None)
}

fn params_of(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn resource(account: &str, n: &SimNumber) -> Value {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    json!({
        "account_sid": account,
        "sid": n.sid,
        "phone_number": n.phone_number,
        "friendly_name": n.phone_number,
        "api_version": "2010-04-01",
        "voice_url": n.voice_url,
        "voice_method": n.voice_method,
        "voice_fallback_url": n.voice_fallback_url,
        "voice_fallback_method": n.voice_fallback_method,
        "status_callback": n.status_callback,
        "status_callback_method": n.status_callback_method,
        "voice_application_sid": "",
        "voice_caller_id_lookup": false,
        "capabilities": { "voice": true, "sms": true, "mms": true, "fax": false },
        "status": "in-use",
        "date_created": date,
        "date_updated": date,
        "uri": format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{}.json", n.sid),
    })
}

async fn list_numbers(
    State(sim): State<TwilioRestSim>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json");
    let params = params_of(query.as_deref().unwrap_or(""));
    if let Err(answer) = sim.admit(&Method::GET, &path, &account, &headers, params.clone()).await {
        return answer;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    // "You can specify partial numbers and use '*' as a wildcard for any digit."
    let wanted = param("PhoneNumber").map(|p| p.replace('*', ""));
    let page_size: usize = param("PageSize").and_then(|p| p.parse().ok()).unwrap_or(50).clamp(1, 1000);
    let number = sim.number();
    let matches = wanted.as_deref().is_none_or(|w| number.phone_number.contains(w));
    let numbers: Vec<Value> = if matches { vec![resource(&account, &number)] } else { Vec::new() };
    let uri = format!("{path}?{}", query.unwrap_or_default());
    let end = numbers.len().saturating_sub(1);
    axum::Json(json!({
        "incoming_phone_numbers": numbers,
        "end": end,
        "first_page_uri": uri,
        "next_page_uri": Value::Null,
        "page": 0,
        "page_size": page_size,
        "previous_page_uri": Value::Null,
        "start": 0,
        "uri": uri,
    }))
    .into_response()
}

async fn fetch_number(
    State(sim): State<TwilioRestSim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}");
    if let Err(answer) = sim.admit(&Method::GET, &path, &account, &headers, Vec::new()).await {
        return answer;
    }
    let number = sim.number();
    if file.strip_suffix(".json") != Some(number.sid.as_str()) {
        return not_found(&path);
    }
    axum::Json(resource(&account, &number)).into_response()
}

/// A recording's media or metadata (https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file,
/// read 2026-12-04: the resource URL with `.wav` (the default format, `audio/x-wav`) or `.mp3`;
/// `.json` for the resource). The emulator has no MP3 encoder: `.mp3` is refused 415 so a client
/// asking for it is noticed rather than handed WAV under an MP3 name.
async fn fetch_recording(
    State(sim): State<TwilioRestSim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Recordings/{file}");
    if let Err(answer) = sim.admit(&Method::GET, &path, &account, &headers, Vec::new()).await {
        return answer;
    }
    let (sid, extension) = file.rsplit_once('.').unwrap_or((file.as_str(), "wav"));
    let Some(recording) = sim.recordings().into_iter().find(|r| r.sid == sid) else {
        return not_found(&path);
    };
    match extension {
        "wav" => ([(header::CONTENT_TYPE, "audio/x-wav")], wav_tone(recording.duration_s)).into_response(),
        "json" => axum::Json(json!({
            "sid": recording.sid,
            "account_sid": account,
            "call_sid": recording.call_sid,
            "duration": recording.duration_s.to_string(),
            "status": "completed",
            "source": "RecordVerb",
            "channels": 1,
            "media_url": format!("{}.wav", recording.url),
        }))
        .into_response(),
        _ => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, 20415, "Unsupported Media Type", None),
    }
}

/// The emulator's own seam, not a Twilio API: where the caller emulator, running in another
/// process (`orderline call --sms-api …` beside the demo), keeps what its caller recorded at a
/// `<Record>` in this account, as Twilio keeps a `<Record>`'s recording in the account that owns
/// the call. Form fields `CallSid` and `Words`; answered 201 with the recording as
/// [`recording_json`] writes it. Basic auth as every request; never counted among the requests
/// orderline made, nor failed by an injected fault.
pub const KEEP_RECORDING_PATH: &str = "/sim/Accounts/{account}/Recordings.json";

async fn keep_recording(
    State(sim): State<TwilioRestSim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !sim.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authentication Error - invalid username", None);
    }
    if account != sim.inner.config.account_sid {
        return not_found(&KEEP_RECORDING_PATH.replace("{account}", &account));
    }
    let params = params_of(&String::from_utf8_lossy(&body));
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let (Some(call_sid), Some(words)) = (param("CallSid"), param("Words")) else {
        return error(StatusCode::BAD_REQUEST, 21200, "CallSid and Words are required", None);
    };
    (StatusCode::CREATED, axum::Json(recording_json(&sim.record(&call_sid, &words)))).into_response()
}

/// A recording as [`keep_recording`] answers it, read back by [`recording_from_json`].
fn recording_json(r: &SimRecording) -> Value {
    json!({ "sid": r.sid, "call_sid": r.call_sid, "duration": r.duration_s, "url": r.url, "words": r.words })
}

/// The recording in a [`keep_recording`] answer.
pub fn recording_from_json(v: &Value) -> Option<SimRecording> {
    Some(SimRecording {
        sid: v["sid"].as_str()?.into(),
        call_sid: v["call_sid"].as_str()?.into(),
        duration_s: u32::try_from(v["duration"].as_u64()?).ok()?,
        url: v["url"].as_str()?.into(),
        words: v["words"].as_str()?.into(),
    })
}

/// `DELETE …/Recordings/{Sid}.json`: 204, and the recording is gone; 404 for one the account does
/// not have (https://www.twilio.com/docs/voice/api/recording#delete-a-recording-resource).
async fn delete_recording(
    State(sim): State<TwilioRestSim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Recordings/{file}");
    if let Err(answer) = sim.admit(&Method::DELETE, &path, &account, &headers, Vec::new()).await {
        return answer;
    }
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let mut recordings = lock(&sim.inner.recordings);
    let before = recordings.len();
    recordings.retain(|r| r.sid != sid);
    if recordings.len() == before {
        return not_found(&path);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `seconds` of a quiet 440 Hz tone as 8 kHz, 16-bit mono PCM WAV (the telephone audio Twilio
/// records): something a browser's `<audio>` plays and reports the length of.
pub fn wav_tone(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = RATE * seconds.max(1);
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let t = n as f32 / RATE as f32;
        let sample = (2000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

/// The parameters an update may set, and the methods Twilio accepts for them.
const SETTABLE: [&str; 6] =
    ["VoiceUrl", "VoiceMethod", "VoiceFallbackUrl", "VoiceFallbackMethod", "StatusCallback", "StatusCallbackMethod"];

async fn update_number(
    State(sim): State<TwilioRestSim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}");
    let params = params_of(&String::from_utf8_lossy(&body));
    if let Err(answer) = sim.admit(&Method::POST, &path, &account, &headers, params.clone()).await {
        return answer;
    }
    if file.strip_suffix(".json") != Some(sim.number().sid.as_str()) {
        return not_found(&path);
    }
    for (name, value) in &params {
        if name.ends_with("Method") && !matches!(value.as_str(), "GET" | "POST") {
            // Twilio answers 400 with code 21xxx for a bad parameter; the code is ours to pick.
            return error(StatusCode::BAD_REQUEST, 20001, &format!("{name} must be GET or POST"), None);
        }
        if name.ends_with("Url") || name == "StatusCallback" {
            let ok = value.is_empty() || value.starts_with("https://") || value.starts_with("http://");
            if !ok {
                return error(StatusCode::BAD_REQUEST, 21502, &format!("{name} is not a valid URL: {value}"), None);
            }
        }
    }
    sim.change_number(|n| {
        for (name, value) in params.iter().filter(|(k, _)| SETTABLE.contains(&k.as_str())) {
            let field = match name.as_str() {
                "VoiceUrl" => &mut n.voice_url,
                "VoiceMethod" => &mut n.voice_method,
                "VoiceFallbackUrl" => &mut n.voice_fallback_url,
                "VoiceFallbackMethod" => &mut n.voice_fallback_method,
                "StatusCallback" => &mut n.status_callback,
                _ => &mut n.status_callback_method,
            };
            *field = value.clone();
        }
    });
    axum::Json(resource(&account, &sim.number())).into_response()
}

fn message_json(account: &str, m: &SimMessage) -> Value {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    // GSM-7 single segment: 160 characters; concatenated: 153 each (approximation for the emulator).
    let chars = m.body.chars().count();
    let segments = if chars <= 160 { 1 } else { chars.div_ceil(153) };
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": date,
        "date_sent": Value::Null,
        "date_updated": date,
        "direction": "outbound-api",
        "error_code": Value::Null,
        "error_message": Value::Null,
        "from": m.from,
        "messaging_service_sid": Value::Null,
        "num_media": "0",
        "num_segments": segments.to_string(),
        "price": Value::Null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "to": m.to,
        "uri": format!("/2010-04-01/Accounts/{account}/Messages/{}.json", m.sid),
    })
}

/// The most characters a `Body` may have (error 21617 above it).
pub const MAX_BODY_CHARS: usize = 1600;

async fn create_message(
    State(sim): State<TwilioRestSim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let params = params_of(&String::from_utf8_lossy(&body));
    if let Err(answer) = sim.admit(&Method::POST, &path, &account, &headers, params.clone()).await {
        return answer;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let bad = |code: u32, message: String| error(StatusCode::BAD_REQUEST, code, &message, None);
    let Some(to) = param("To").filter(|t| !t.is_empty()) else {
        return bad(21604, "A 'To' phone number is required.".into());
    };
    if crate::domain::PhoneNumber::parse(&to, None).is_err() {
        return bad(21211, format!("Invalid 'To' Phone Number: {}", crate::domain::mask_phone(&to)));
    }
    let from = param("From").unwrap_or_default();
    if from.is_empty() || crate::domain::PhoneNumber::parse(&from, None).is_err() {
        return bad(
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account".into(),
        );
    }
    if from != sim.number().phone_number {
        return bad(
            21659,
            format!(
                "'From' {} is not a Twilio phone number or Short Code country mismatch",
                crate::domain::mask_phone(&from)
            ),
        );
    }
    let text = params.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()).unwrap_or_default();
    if text.trim().is_empty() {
        return bad(21602, "Message body is required.".into());
    }
    if text.chars().count() > MAX_BODY_CHARS {
        return bad(21617, "The concatenated message body exceeds the 1600 character limit.".into());
    }
    let status_callback = param("StatusCallback").filter(|c| !c.is_empty());
    if let Some(url) = &status_callback
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return bad(21609, format!("Invalid StatusCallback url: {url}"));
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error", None);
    }
    let sid = format!("SM{:032x}", u128::from_be_bytes(bytes));
    let message = SimMessage { sid, to, from, body: text, status_callback, status: "queued".into() };
    lock(&sim.inner.messages).push(message.clone());
    let answer = (StatusCode::CREATED, axum::Json(message_json(&account, &message))).into_response();
    let delivery = *lock(&sim.inner.delivery);
    tokio::spawn(sim.clone().deliver(account, message.sid, delivery));
    answer
}

impl TwilioRestSim {
    /// Moves a message on (`sent`, then `delivered` or `undelivered`), POSTing its status
    /// callback at each step, signed with the auth token.
    async fn deliver(self, account: String, sid: String, delivery: Delivery) {
        let steps: Vec<(&str, Option<u32>)> = match delivery {
            Delivery::Delivered => vec![("sent", None), ("delivered", None)],
            Delivery::Undelivered(code) => vec![("sent", None), ("undelivered", Some(code))],
            Delivery::Never => vec![],
        };
        for (status, code) in steps {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let message = {
                let mut messages = lock(&self.inner.messages);
                let Some(m) = messages.iter_mut().find(|m| m.sid == sid) else { return };
                m.status = status.to_string();
                m.clone()
            };
            let Some(url) = &message.status_callback else { continue };
            let mut params: Vec<(String, String)> = [
                ("AccountSid", account.as_str()),
                ("ApiVersion", "2010-04-01"),
                ("From", message.from.as_str()),
                ("MessageSid", message.sid.as_str()),
                ("MessageStatus", status),
                ("SmsSid", message.sid.as_str()),
                ("SmsStatus", status),
                ("To", message.to.as_str()),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if let Some(code) = code {
                params.push(("ErrorCode".into(), code.to_string()));
            }
            let signature = crate::twilio::signature::sign(&self.inner.config.auth_token, url, &params);
            let sent = self.inner.http.post(url).header("X-Twilio-Signature", signature).form(&params).send().await;
            if let Err(e) = sent {
                tracing::warn!(error = %e.without_url(), "emulated message status callback failed");
            }
        }
    }
}

/// `POST /Accounts/{AccountSid}/Calls.json` (https://www.twilio.com/docs/voice/api/call-resource,
/// read 2026-12-04): `To`, `From` (a number of the account: error 21210 otherwise), `Url`
/// (required: 21205), `StatusCallback`; answered 201 with the Call, `status` `queued`,
/// `direction` `outbound-api`. Then the call is played out as the callee script says: when the
/// callee answers, `Url` is requested (signed, `CallStatus=in-progress`, `Direction=outbound-api`)
/// and its TwiML played to them until a hand-over or hang-up; the status callback follows with
/// `CallStatus` `completed` (answered), `busy`, `no-answer` or `failed`, and `CallDuration`.
async fn create_call(
    State(sim): State<TwilioRestSim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    let params = params_of(&String::from_utf8_lossy(&body));
    if let Err(answer) = sim.admit(&Method::POST, &path, &account, &headers, params.clone()).await {
        return answer;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let bad = |code: u32, message: String| error(StatusCode::BAD_REQUEST, code, &message, None);
    let Some(to) = param("To").filter(|t| crate::domain::PhoneNumber::parse(t, None).is_ok()) else {
        // https://www.twilio.com/docs/errors/21211
        return bad(21211, "Invalid 'To' Phone Number".into());
    };
    let from = param("From").unwrap_or_default();
    if from != sim.number().phone_number {
        // https://www.twilio.com/docs/errors/21210
        return bad(21210, "'From' phone number not verified".into());
    }
    let Some(url) = param("Url").filter(|u| u.starts_with("https://") || u.starts_with("http://")) else {
        // https://www.twilio.com/docs/errors/21205
        return bad(21205, "Url parameter is required and must be a valid URL".into());
    };
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    let call = SimCall {
        sid: format!("CA{:032x}", u128::from_be_bytes(bytes)),
        to,
        from,
        url,
        status_callback: param("StatusCallback").filter(|c| !c.is_empty()),
        // "If both SendDigits and MachineDetection parameters are provided, then
        // MachineDetection will be ignored" (the answering-machine detection page).
        machine_detection: param("MachineDetection")
            .filter(|m| matches!(m.as_str(), "Enable" | "DetectMessageEnd") && param("SendDigits").is_none()),
        answered_by: None,
        status: "queued".into(),
        heard: Vec::new(),
        ended_at: None,
    };
    lock(&sim.inner.calls).push(call.clone());
    let answer = (
        StatusCode::CREATED,
        axum::Json(json!({
            "sid": call.sid,
            "account_sid": account,
            "to": call.to,
            "from": call.from,
            "status": "queued",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{account}/Calls/{}.json", call.sid),
        })),
    )
        .into_response();
    let callee = lock(&sim.inner.callees).pop_front().unwrap_or(*lock(&sim.inner.callee));
    tokio::spawn(sim.clone().play_call(account, call, callee));
    answer
}

impl TwilioRestSim {
    /// Plays out a placed call as `callee` does, then sends its status callback.
    async fn play_call(self, account: String, call: SimCall, callee: Callee) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Answering-machine detection (https://www.twilio.com/docs/voice/answering-machine-detection,
        // read 2026-12-05): when it runs, `Url` is requested once Twilio knows who answered, with
        // `AnsweredBy` and `MachineDetectionDuration` (milliseconds); a person is `human` in
        // either mode, a voicemail box `machine_start` as soon as it is heard (`Enable`) or
        // `machine_end_beep` once its greeting ends (`DetectMessageEnd`).
        let answered_by = call.machine_detection.as_deref().and_then(|mode| match callee {
            Callee::Answers => Some(("human", 2_100)),
            Callee::Machine if mode == "Enable" => Some(("machine_start", 3_200)),
            Callee::Machine => Some(("machine_end_beep", 9_800)),
            Callee::Fax => Some(("fax", 2_600)),
            _ => None,
        });
        let (status, heard, ended_at, duration) = match callee {
            Callee::Answers | Callee::Machine | Callee::Fax => {
                let mut config = super::CallerConfig::new("", &self.inner.config.auth_token, &call.from);
                config.to = call.to.clone();
                config.call_sid = Some(call.sid.clone());
                let callee_side = super::TwilioCaller::new(config);
                let mut params = callee_side.base_params(&call.sid, "in-progress");
                for (name, value) in params.iter_mut() {
                    if name == "Direction" {
                        *value = "outbound-api".into();
                    }
                }
                if let Some((by, ms)) = answered_by {
                    params.push(("AnsweredBy".into(), by.into()));
                    params.push(("MachineDetectionDuration".into(), ms.to_string()));
                }
                match callee_side.walk(call.sid.clone(), call.url.clone(), params, |_| None, |_| {}).await {
                    Ok(transcript) => {
                        let ended = match &transcript.ending {
                            super::Ending::Enqueue(_) => "Enqueue",
                            super::Ending::Dial(_) => "Dial",
                            super::Ending::Hangup => "Hangup",
                            _ => "other",
                        };
                        ("completed", transcript.spoken(), Some(ended.to_string()), 30)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "emulated outbound call: the Url failed");
                        ("completed", Vec::new(), Some(format!("error: {e}")), 1)
                    }
                }
            }
            Callee::Busy => ("busy", Vec::new(), None, 0),
            Callee::NoAnswer => ("no-answer", Vec::new(), None, 0),
            Callee::Fails => ("failed", Vec::new(), None, 0),
        };
        {
            let mut calls = lock(&self.inner.calls);
            if let Some(c) = calls.iter_mut().find(|c| c.sid == call.sid) {
                c.status = status.into();
                c.answered_by = answered_by.map(|(by, _)| by.to_string());
                c.heard = heard;
                c.ended_at = ended_at;
            }
        }
        let Some(url) = &call.status_callback else { return };
        let params: Vec<(String, String)> = [
            ("AccountSid", account.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call.sid.as_str()),
            ("CallStatus", status),
            ("CallDuration", &duration.to_string()),
            ("Direction", "outbound-api"),
            ("From", call.from.as_str()),
            ("To", call.to.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let signature = crate::twilio::signature::sign(&self.inner.config.auth_token, url, &params);
        if let Err(e) = self.inner.http.post(url).header("X-Twilio-Signature", signature).form(&params).send().await {
            tracing::warn!(error = %e.without_url(), "emulated call status callback failed");
        }
    }
}

async fn list_messages(
    State(sim): State<TwilioRestSim>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let params = params_of(query.as_deref().unwrap_or(""));
    if let Err(answer) = sim.admit(&Method::GET, &path, &account, &headers, params.clone()).await {
        return answer;
    }
    let to = params.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
    // Twilio lists the newest first.
    let messages: Vec<Value> = sim
        .messages()
        .iter()
        .rev()
        .filter(|m| to.as_deref().is_none_or(|t| m.to == t))
        .map(|m| message_json(&account, m))
        .collect();
    let uri = format!("{path}?{}", query.unwrap_or_default());
    axum::Json(json!({
        "messages": messages,
        "end": messages.len().saturating_sub(1),
        "first_page_uri": uri,
        "next_page_uri": Value::Null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": Value::Null,
        "start": 0,
        "uri": uri,
    }))
    .into_response()
}

async fn unknown(
    State(sim): State<TwilioRestSim>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let account = uri.path().split('/').nth(3).unwrap_or_default().to_string();
    if let Err(answer) = sim.admit(&method, uri.path(), &account, &headers, Vec::new()).await {
        return answer;
    }
    not_found(uri.path())
}

/// A running REST emulator.
#[derive(Debug)]
#[must_use = "the server runs until stop()"]
pub struct RestSimServer {
    pub addr: SocketAddr,
    closing: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RestSimServer {
    /// `http://127.0.0.1:port`: the REST API base (`TWILIO_API_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        let RestSimServer { closing, mut task, .. } = self;
        let _ = closing.send(true);
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// For `orderline sim twilio`: serves the account on `listen` until Ctrl-C and prints the
/// settings that reach it.
pub async fn run_cli(listen: SocketAddr, config: RestSimConfig) -> std::io::Result<()> {
    let sim = TwilioRestSim::new(config);
    let server = sim.serve(listen).await?;
    let c = sim.config();
    println!("Twilio REST API emulator listening on {}", server.url());
    println!("  TWILIO_API_URL={}", server.url());
    println!("  TWILIO_ACCOUNT_SID={}", c.account_sid);
    println!("  TWILIO_AUTH_TOKEN={}", c.auth_token);
    println!("  (or TWILIO_API_KEY={} TWILIO_API_SECRET={})", c.api_key, c.api_secret);
    println!("  number: {} ({})", c.number, sim.number().sid);
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_number_has_a_pn_sid_and_is_unconfigured() {
        let sim = TwilioRestSim::new(RestSimConfig::default());
        let n = sim.number();
        assert!(n.sid.starts_with("PN") && n.sid.len() == 34, "{}", n.sid);
        assert_eq!(n.voice_url, UNCONFIGURED_VOICE_URL);
        assert_eq!(n.phone_number, super::super::DEFAULT_TO);
    }

    #[tokio::test]
    async fn the_caller_emulator_in_another_process_keeps_a_recording_in_the_account() {
        let sim = TwilioRestSim::new(RestSimConfig::default());
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let account = sim.config().account_sid.clone();
        let url = format!("{}{}", server.url(), KEEP_RECORDING_PATH.replace("{account}", &account));
        let keep = |password: &str| {
            reqwest::Client::new()
                .post(&url)
                .basic_auth(&account, Some(password))
                .form(&[("CallSid", "CA0123"), ("Words", "please  call me back")])
                .send()
        };
        let refused = keep("not-the-token").await.unwrap();
        assert_eq!(refused.status(), 401);
        assert!(sim.recordings().is_empty());

        let kept = keep(&sim.config().auth_token.clone()).await.unwrap();
        assert_eq!(kept.status(), 201);
        let recording = recording_from_json(&kept.json().await.unwrap()).expect("the recording");
        assert_eq!(sim.recordings(), vec![recording.clone()]);
        assert_eq!((recording.call_sid.as_str(), recording.words.as_str()), ("CA0123", "please call me back"));
        assert!(recording.url.starts_with(&server.url()), "fetched from this account: {}", recording.url);
        assert!(sim.requests().is_empty(), "not a request orderline made");
        server.stop().await;
    }
}
