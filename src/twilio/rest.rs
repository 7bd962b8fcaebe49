//! The Twilio REST API client (reqwest): HTTP basic auth with an API key or the auth token,
//! form-encoded POSTs, JSON answers, Twilio's error JSON parsed into a typed error, timeouts and
//! bounded retries on 429/5xx. Used by `setup twilio` and `doctor` (the IncomingPhoneNumbers
//! resource). Never logs a secret or a whole phone number; never decides what to configure.
//!
//! Facts it relies on (read 2026-12-04):
//! - Base URL `https://api.twilio.com/2010-04-01`; "Twilio supports HTTP Basic authentication.
//!   Use your API key as the username and your API key secret as the password … For local
//!   testing, you can use your Account SID as the username and your Auth token as the password"
//!   (https://www.twilio.com/docs/iam/api/, https://www.twilio.com/docs/usage/requests-to-twilio).
//! - Requests are `application/x-www-form-urlencoded`; `.json` resources answer JSON
//!   (https://www.twilio.com/docs/usage/requests-to-twilio).
//! - IncomingPhoneNumbers: list `GET /Accounts/{AccountSid}/IncomingPhoneNumbers.json?PhoneNumber=`,
//!   update `POST /Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json` with `VoiceUrl`,
//!   `VoiceMethod`, `VoiceFallbackUrl`, `VoiceFallbackMethod`, `StatusCallback`,
//!   `StatusCallbackMethod`; properties in snake_case (`voice_url`, …)
//!   (https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource; twilio-go
//!   rest/api/v2010/docs/AccountsIncomingPhoneNumbersApi.md).
//! - Errors are `{"code", "message", "more_info", "status"}` (https://www.twilio.com/docs/usage/twilios-response,
//!   modified 2026-07-20; twilio-ruby lib/twilio-ruby/framework/rest/error.rb reads the same keys); 20003 is
//!   "Authentication Error", 20404 "The requested resource … was not found", 20429 "Too many
//!   requests" (https://www.twilio.com/docs/errors/20003, …/20404, …/20429).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::config::{Secret, Settings};
use crate::domain::mask_pii;
use crate::ops::Metrics;

/// The API version path every resource here lives under.
pub const API_VERSION_PATH: &str = "/2010-04-01";

/// How many times a 429 or 5xx answer (or a transport failure) is tried again.
const RETRIES: u32 = 3;
/// Longest one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Twilio's error JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub more_info: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    #[error(
        "Twilio refused the credentials (HTTP 401{}): check TWILIO_ACCOUNT_SID and TWILIO_API_KEY/TWILIO_API_SECRET \
         (or TWILIO_AUTH_TOKEN) in the Twilio console → Account → API keys & tokens",
        code_text(.0.as_ref())
    )]
    Unauthorized(Option<u32>),
    #[error("Twilio has no such resource (HTTP 404{}): {}", code_text(.0.code.as_ref()), .0.message)]
    NotFound(ApiError),
    #[error("Twilio refused the request (HTTP {status}{}): {}", code_text(.error.code.as_ref()), .error.message)]
    Refused { status: u16, error: ApiError },
    #[error("Twilio kept failing (HTTP {0}) after {RETRIES} retries")]
    Unavailable(u16),
    #[error("no answer from Twilio within {REQUEST_TIMEOUT:?}")]
    Timeout,
    #[error("could not reach Twilio: {0}")]
    Transport(String),
    #[error("unexpected answer from Twilio: {0}")]
    Decode(String),
}

fn code_text(code: Option<&u32>) -> String {
    code.map(|c| format!(", Twilio error {c}")).unwrap_or_default()
}

impl TwilioError {
    fn outcome(&self) -> &'static str {
        match self {
            TwilioError::Unauthorized(_) => "unauthorized",
            TwilioError::NotFound(_) => "not_found",
            TwilioError::Refused { .. } => "refused",
            TwilioError::Unavailable(_) | TwilioError::Transport(_) | TwilioError::Decode(_) => "error",
            TwilioError::Timeout => "timeout",
        }
    }
}

/// How the client authenticates: an API key (preferred) or the account's auth token.
#[derive(Debug, Clone)]
pub struct RestCredentials {
    pub account_sid: String,
    /// Basic auth username: the API key SID, or the account SID with the auth token.
    pub username: String,
    pub password: Secret,
}

impl RestCredentials {
    /// From TWILIO_ACCOUNT_SID and TWILIO_API_KEY + TWILIO_API_SECRET, else TWILIO_AUTH_TOKEN.
    pub fn from_settings(settings: &Settings) -> Result<RestCredentials, String> {
        let account_sid = settings.twilio.account_sid.clone().ok_or(
            "TWILIO_ACCOUNT_SID is not set: the Twilio REST API needs the account (AC…, Twilio console → Account info)",
        )?;
        match (&settings.twilio.api_key, &settings.twilio.api_secret, &settings.twilio.auth_token) {
            (Some(key), Some(secret), _) => {
                Ok(RestCredentials { account_sid, username: key.clone(), password: secret.clone() })
            }
            (Some(_), None, _) => Err("TWILIO_API_KEY is set without TWILIO_API_SECRET: set both (Twilio console → \
                                       Account → API keys & tokens → Create API key)"
                .into()),
            (None, _, Some(token)) => {
                Ok(RestCredentials { username: account_sid.clone(), account_sid, password: token.clone() })
            }
            (None, _, None) => Err("neither TWILIO_API_KEY + TWILIO_API_SECRET nor TWILIO_AUTH_TOKEN is set: the \
                                    Twilio REST API needs one of them"
                .into()),
        }
    }

    /// Which kind, for messages (never the secret).
    pub fn mode(&self) -> &'static str {
        if self.username.starts_with("SK") { "API key" } else { "account SID and auth token" }
    }
}

/// An IncomingPhoneNumber as Twilio answers it (the fields orderline reads and sets).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IncomingNumber {
    pub sid: String,
    pub phone_number: String,
    #[serde(default)]
    pub voice_url: Option<String>,
    #[serde(default)]
    pub voice_method: Option<String>,
    #[serde(default)]
    pub voice_fallback_url: Option<String>,
    #[serde(default)]
    pub voice_fallback_method: Option<String>,
    #[serde(default)]
    pub status_callback: Option<String>,
    #[serde(default)]
    pub status_callback_method: Option<String>,
    /// A TwiML app that overrides the URLs above when set.
    #[serde(default)]
    pub voice_application_sid: Option<String>,
}

/// A Message as Twilio answers its creation (the fields orderline reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub sid: String,
    /// `queued` (or `accepted`, `sending`, …) on creation.
    pub status: String,
    #[serde(default)]
    pub error_code: Option<i64>,
}

/// A Call as Twilio answers its creation (the fields orderline reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlacedCall {
    pub sid: String,
    /// `queued` on creation.
    pub status: String,
}

impl TwilioError {
    /// Twilio's error code, when it gave one (21211, 21606, …).
    pub fn code(&self) -> Option<u32> {
        match self {
            TwilioError::Unauthorized(code) => *code,
            TwilioError::NotFound(e) | TwilioError::Refused { error: e, .. } => e.code,
            _ => None,
        }
    }
}

/// A Message as Twilio lists it (the fields the caller emulator prints).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedMessage {
    pub sid: String,
    pub to: String,
    #[serde(default)]
    pub body: String,
    pub status: String,
}

#[derive(Deserialize)]
struct MessagePage {
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct NumberPage {
    incoming_phone_numbers: Vec<IncomingNumber>,
}

/// A body as Twilio sent it: a recording's audio, or a JSON document before it is read.
#[derive(Debug, Clone)]
pub struct RecordingAudio {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

pub struct TwilioRest {
    http: reqwest::Client,
    base: String,
    credentials: RestCredentials,
    metrics: std::sync::Arc<Metrics>,
    /// The `Date` header of Twilio's last answer (for the clock check).
    last_date: Mutex<Option<DateTime<Utc>>>,
    backoff: Duration,
}

impl TwilioRest {
    pub fn new(api_url: &str, credentials: RestCredentials, metrics: std::sync::Arc<Metrics>) -> TwilioRest {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("orderline/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        TwilioRest {
            http,
            base: api_url.trim_end_matches('/').to_string(),
            credentials,
            metrics,
            last_date: Mutex::new(None),
            backoff: Duration::from_millis(250),
        }
    }

    /// The client the settings ask for.
    pub fn from_settings(settings: &Settings, metrics: std::sync::Arc<Metrics>) -> Result<TwilioRest, String> {
        Ok(TwilioRest::new(&settings.twilio.api_url, RestCredentials::from_settings(settings)?, metrics))
    }

    pub fn credentials(&self) -> &RestCredentials {
        &self.credentials
    }

    /// Twilio's clock as its last answer gave it (`Date`).
    pub fn last_server_date(&self) -> Option<DateTime<Utc>> {
        *self.last_date.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn account_path(&self, rest: &str) -> String {
        format!("{}{API_VERSION_PATH}/Accounts/{}{rest}", self.base, self.credentials.account_sid)
    }

    /// The account's number `e164` (`IncomingPhoneNumbers.json?PhoneNumber=`), None when the
    /// account has no such number.
    pub async fn find_number(&self, e164: &str) -> Result<Option<IncomingNumber>, TwilioError> {
        let url = self.account_path("/IncomingPhoneNumbers.json");
        let query = [("PhoneNumber", e164), ("PageSize", "20")];
        let page: NumberPage = self.send("list_numbers", reqwest::Method::GET, &url, &query, &[]).await?;
        Ok(page.incoming_phone_numbers.into_iter().find(|n| n.phone_number == e164))
    }

    /// Sets `fields` (Twilio's parameter names, e.g. `VoiceUrl`) on the number `sid`.
    pub async fn update_number(&self, sid: &str, fields: &[(&str, &str)]) -> Result<IncomingNumber, TwilioError> {
        let url = self.account_path(&format!("/IncomingPhoneNumbers/{sid}.json"));
        self.send("update_number", reqwest::Method::POST, &url, &[], fields).await
    }

    /// Creates one Message (`POST /Accounts/{AccountSid}/Messages.json` with `To`, `From`,
    /// `Body` and `StatusCallback`: https://www.twilio.com/docs/messaging/api/message-resource).
    /// Tried again only on 429 (Twilio did not take it): a 5xx or a timeout may have sent it,
    /// and a second try could text the caller twice.
    pub async fn send_message(
        &self,
        to: &str,
        from: &str,
        body: &str,
        status_callback: Option<&str>,
    ) -> Result<SentMessage, TwilioError> {
        let url = self.account_path("/Messages.json");
        let mut form = vec![("To", to), ("From", from), ("Body", body)];
        if let Some(callback) = status_callback {
            form.push(("StatusCallback", callback));
        }
        self.send_retrying("send_message", reqwest::Method::POST, &url, &[], &form, Retry::OnlyTooMany).await
    }

    /// Places an outbound call (`POST /Accounts/{AccountSid}/Calls.json` with `To`, `From`,
    /// `Url`, `Method`, `StatusCallback`, `StatusCallbackMethod`, `Timeout`:
    /// https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource, read
    /// 2026-12-04). Twilio requests `url` when the callee answers and `status_callback` when the
    /// call ends (`CallStatus` completed, busy, no-answer, failed or canceled). Tried again only
    /// on 429: a second try after a 5xx could ring the customer twice.
    pub async fn create_call(
        &self,
        to: &str,
        from: &str,
        url: &str,
        status_callback: &str,
        detect_machines: bool,
    ) -> Result<PlacedCall, TwilioError> {
        let path = self.account_path("/Calls.json");
        let mut form = vec![
            ("To", to),
            ("From", from),
            ("Url", url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
            // Seconds of ringing before no-answer (Twilio's default is 60).
            ("Timeout", "30"),
        ];
        if detect_machines {
            // Answering-machine detection: `Url` is requested with `AnsweredBy` once Twilio knows
            // who answered, and for a voicemail box only after its greeting ended, so that what
            // `Url` says lands after the beep
            // (https://www.twilio.com/docs/voice/answering-machine-detection, read 2026-12-05).
            form.push(("MachineDetection", "DetectMessageEnd"));
        }
        self.send_retrying("create_call", reqwest::Method::POST, &path, &[], &form, Retry::OnlyTooMany).await
    }

    /// The account's latest messages to `to` (`GET /Accounts/{AccountSid}/Messages.json?To=`,
    /// newest first), one page: what the caller emulator prints as received.
    pub async fn messages_to(&self, to: &str) -> Result<Vec<ListedMessage>, TwilioError> {
        let url = self.account_path("/Messages.json");
        let page: MessagePage =
            self.send("list_messages", reqwest::Method::GET, &url, &[("To", to), ("PageSize", "50")], &[]).await?;
        Ok(page.messages)
    }

    /// A recording's audio as WAV (`GET /Accounts/{AccountSid}/Recordings/{Sid}.wav`: "append
    /// .wav … or .mp3"; the media URL asks for the account's credentials when the account
    /// enforces HTTP auth on media: https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file,
    /// read 2026-12-04). A read: tried again on 429, 5xx and transport failures.
    pub async fn recording_audio(&self, recording_sid: &str) -> Result<RecordingAudio, TwilioError> {
        let url = self.account_path(&format!("/Recordings/{recording_sid}.wav"));
        self.send_raw("fetch_recording", reqwest::Method::GET, &url, &[], &[], Retry::All, "audio/*").await
    }

    /// Deletes a recording (`DELETE /Accounts/{AccountSid}/Recordings/{Sid}.json`, answered 204:
    /// https://www.twilio.com/docs/voice/api/recording#delete-a-recording-resource, read
    /// 2026-12-04). One Twilio no longer has (404) counts as deleted.
    pub async fn delete_recording(&self, recording_sid: &str) -> Result<(), TwilioError> {
        let url = self.account_path(&format!("/Recordings/{recording_sid}.json"));
        match self
            .send_raw("delete_recording", reqwest::Method::DELETE, &url, &[], &[], Retry::All, "application/json")
            .await
        {
            Ok(_) | Err(TwilioError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Result<T, TwilioError> {
        self.send_retrying(operation, method, url, query, form, Retry::All).await
    }

    async fn send_retrying<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
        retry: Retry,
    ) -> Result<T, TwilioError> {
        let answer = self.send_raw(operation, method, url, query, form, retry, "application/json").await?;
        serde_json::from_slice::<T>(&answer.bytes).map_err(|e| {
            let error = TwilioError::Decode(e.to_string());
            self.metrics.twilio_api_request(operation, error.outcome());
            error
        })
    }

    /// One request, tried again as `retry` allows; the body as it came.
    #[allow(clippy::too_many_arguments)]
    async fn send_raw(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
        retry: Retry,
        accept: &str,
    ) -> Result<RecordingAudio, TwilioError> {
        let mut attempt = 0;
        let mut backoff = self.backoff;
        loop {
            let result = self.send_once(method.clone(), url, query, form, accept).await;
            let retry_after = match &result {
                Err(Attempt::Retry { after, error }) if attempt < RETRIES && retry.allows(error) => {
                    Some(after.unwrap_or(backoff))
                }
                _ => None,
            };
            if let Some(wait) = retry_after {
                attempt += 1;
                self.metrics.twilio_api_request(operation, "retried");
                tracing::warn!(operation, attempt, wait_ms = wait.as_millis() as u64, "Twilio REST API: trying again");
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                backoff = (backoff * 2).min(Duration::from_secs(4));
                continue;
            }
            let result = result.map_err(|(Attempt::Retry { error, .. } | Attempt::Final(error))| error);
            match &result {
                Ok(_) => self.metrics.twilio_api_request(operation, "ok"),
                Err(e) => {
                    self.metrics.twilio_api_request(operation, e.outcome());
                    // Twilio's messages quote numbers and URLs: masked before they reach a log.
                    tracing::warn!(operation, error = %mask_pii(&e.to_string()), "Twilio REST API request failed");
                }
            }
            return result;
        }
    }

    async fn send_once(
        &self,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
        accept: &str,
    ) -> Result<RecordingAudio, Attempt> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .basic_auth(&self.credentials.username, Some(self.credentials.password.expose()))
            .header(reqwest::header::ACCEPT, accept);
        if !query.is_empty() {
            request = request.query(query);
        }
        if method == reqwest::Method::POST {
            request = request.form(form);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Err(Attempt::Retry { error: TwilioError::Timeout, after: None }),
            Err(e) => {
                let error = TwilioError::Transport(e.without_url().to_string());
                return Err(Attempt::Retry { error, after: None });
            }
        };
        if let Some(date) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        {
            *self.last_date.lock().unwrap_or_else(|e| e.into_inner()) = Some(date.with_timezone(&Utc));
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) if e.is_timeout() => return Err(Attempt::Retry { error: TwilioError::Timeout, after: None }),
            Err(e) => {
                let error = TwilioError::Transport(e.without_url().to_string());
                return Err(Attempt::Retry { error, after: None });
            }
        };
        if (200..300).contains(&status) {
            return Ok(RecordingAudio { content_type, bytes: body });
        }
        let error: ApiError = serde_json::from_slice(&body).unwrap_or(ApiError {
            code: None,
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            more_info: None,
            status: Some(status),
        });
        match status {
            401 => Err(Attempt::Final(TwilioError::Unauthorized(error.code))),
            404 => Err(Attempt::Final(TwilioError::NotFound(error))),
            429 | 500..=599 => Err(Attempt::Retry { error: TwilioError::Unavailable(status), after: retry_after }),
            _ => Err(Attempt::Final(TwilioError::Refused { status, error })),
        }
    }
}

/// Which failures are tried again.
#[derive(Clone, Copy)]
enum Retry {
    /// 429, 5xx and transport failures: for reads and idempotent updates.
    All,
    /// Only 429: for a create that must not happen twice.
    OnlyTooMany,
}

impl Retry {
    fn allows(self, error: &TwilioError) -> bool {
        match self {
            Retry::All => true,
            Retry::OnlyTooMany => *error == TwilioError::Unavailable(429),
        }
    }
}

enum Attempt {
    Retry { error: TwilioError, after: Option<Duration> },
    Final(TwilioError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_is_preferred_over_the_auth_token() {
        let sid = "AC0d1e2a3b4c5d6e7f8091a2b3c4d5e6f7";
        let twilio = |change: &dyn Fn(&mut crate::config::TwilioSettings)| {
            let mut s = Settings::default();
            change(&mut s.twilio);
            s.validated()
        };
        let s = twilio(&|t| {
            t.account_sid = Some(sid.into());
            t.auth_token = Some(Secret::new("tok"));
            t.api_key = Some("SK123".into());
            t.api_secret = Some(Secret::new("shh"));
        })
        .unwrap();
        let c = RestCredentials::from_settings(&s).unwrap();
        assert_eq!((c.username.as_str(), c.password.expose(), c.mode()), ("SK123", "shh", "API key"));
        let s = twilio(&|t| {
            t.account_sid = Some(sid.into());
            t.auth_token = Some(Secret::new("tok"));
        })
        .unwrap();
        let c = RestCredentials::from_settings(&s).unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), (sid, "tok"));
        let err = RestCredentials::from_settings(&twilio(&|_| {}).unwrap()).unwrap_err();
        assert!(err.contains("TWILIO_ACCOUNT_SID"), "{err}");
        let s = twilio(&|t| {
            t.account_sid = Some(sid.into());
            t.api_key = Some("SK1".into());
        })
        .unwrap();
        assert!(RestCredentials::from_settings(&s).unwrap_err().contains("TWILIO_API_SECRET"));
        let err = twilio(&|t| t.account_sid = Some("AC1".into())).unwrap_err().to_string();
        assert!(err.contains("TWILIO_ACCOUNT_SID"), "{err}");
    }

    #[test]
    fn twilio_error_json_is_read_into_the_error() {
        let e: ApiError = serde_json::from_str(
            r#"{"code": 20404, "message": "The requested resource was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#,
        )
        .unwrap();
        let text = TwilioError::NotFound(e).to_string();
        assert!(text.contains("20404") && text.contains("not found"), "{text}");
        assert!(TwilioError::Unauthorized(Some(20003)).to_string().contains("TWILIO_API_KEY"));
    }
}
