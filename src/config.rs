//! Typed settings: defaults → `orderline.toml` → environment (ORDERLINE_* and the standard
//! names DATABASE_URL, TWILIO_AUTH_TOKEN, SHOPIFY_*). Owns validation; never logs a secret.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::ivr::hours::BusinessHours;
use crate::twilio::transfer::TransferTarget;

/// A secret from configuration: compared and used, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(••••)")
    }
}

/// Where notifications go and how they are signed (`ORDERLINE_NOTIFY_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTarget {
    pub url: String,
    pub secret: Secret,
    /// Attempts before a notification is dead (kept, with its last error).
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyPolicy {
    None,
    CallerId,
    PostalCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    Twiml,
    MediaStream,
    /// `<Connect><ConversationRelay>`: Twilio does speech-to-text and text-to-speech, orderline
    /// exchanges text over `GET /twilio/relay` (`twilio::relay`).
    ConversationRelay,
}

impl PromptMode {
    /// The WebSocket path Twilio opens in this mode and the mode's name as ORDERLINE_PROMPT_MODE
    /// writes it; none for TwiML.
    pub fn websocket(self) -> Option<(&'static str, &'static str)> {
        match self {
            PromptMode::Twiml => None,
            PromptMode::MediaStream => Some((crate::twilio::media::MEDIA_PATH, "media_stream")),
            PromptMode::ConversationRelay => Some((crate::twilio::relay::RELAY_PATH, "conversation_relay")),
        }
    }
}

/// When callers are offered voicemail (TwiML mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailOffer {
    /// Never: a closed line or an unanswered transfer ends in goodbye.
    Off,
    /// When nobody can take the call: the line is closed (key 0), a transfer is not answered,
    /// the caller leaves the queue.
    On,
    /// As `on`, and from the menu at any time (key 5).
    Menu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The keys as written in `orderline.toml` and, uppercased with `ORDERLINE_` (or as the standard
/// names below), in the environment. A key not among them stops the start (see `unknown_key`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: String,
    public_url: Option<String>,
    database_url: String,
    twilio_auth_token: Option<Secret>,
    twilio_auth_token_previous: Option<Secret>,
    twilio_account_sid: Option<String>,
    twilio_api_key: Option<String>,
    twilio_api_secret: Option<Secret>,
    twilio_api_url: String,
    #[serde(default, deserialize_with = "text_or_number")]
    twilio_phone_number: Option<String>,
    sms: bool,
    #[serde(default, deserialize_with = "text_or_number")]
    sms_from: Option<String>,
    allow_insecure_public_url: bool,
    shopify_shop: Option<String>,
    shopify_access_token: Option<Secret>,
    shopify_client_id: Option<String>,
    shopify_client_secret: Option<Secret>,
    shopify_webhook_secret: Option<Secret>,
    shopify_webhook_secret_previous: Option<Secret>,
    shopify_api_url: Option<String>,
    #[serde(with = "duration_text")]
    freshness: Duration,
    #[serde(with = "duration_text")]
    lookup_budget: Duration,
    agent_token: Option<Secret>,
    verify: VerifyPolicy,
    prompt_mode: PromptMode,
    log_format: LogFormat,
    default_region: String,
    webhook_max_bytes: usize,
    db_max_connections: u32,
    cache_max_bytes: u64,
    warm_count: i64,
    #[serde(with = "duration_text")]
    negative_ttl: Duration,
    #[serde(with = "duration_text")]
    reconcile_every: Duration,
    #[serde(with = "duration_text")]
    reconcile_lag: Duration,
    #[serde(with = "duration_text")]
    reconcile_deletions_every: Duration,
    breaker_threshold: u32,
    #[serde(with = "duration_text")]
    breaker_cooldown: Duration,
    transfer_to: String,
    taskrouter_workflow_sid: Option<String>,
    hours_timezone: String,
    hours: String,
    holidays: String,
    shop_name: Option<String>,
    voice: String,
    language: String,
    languages: Option<String>,
    voices: Option<String>,
    twiml_dir: Option<String>,
    #[serde(with = "duration_text")]
    hold_after: Duration,
    #[serde(with = "duration_text")]
    header_timeout: Duration,
    #[serde(with = "duration_text")]
    idle_timeout: Duration,
    #[serde(with = "duration_text")]
    request_timeout: Duration,
    max_connections: usize,
    max_connections_per_ip: usize,
    max_feed_clients: usize,
    #[serde(with = "duration_text")]
    drain_timeout: Duration,
    verify_max_failures: u32,
    #[serde(with = "duration_text")]
    verify_failure_window: Duration,
    #[serde(with = "duration_text")]
    agent_session_ttl: Duration,
    #[serde(with = "duration_text")]
    queue_max_wait: Duration,
    hold_music_url: String,
    #[serde(with = "duration_text")]
    media_lead: Duration,
    speech_input: bool,
    relay_words_per_minute: u32,
    notify_url: Option<String>,
    notify_secret: Option<Secret>,
    notify_max_attempts: u32,
    voicemail: VoicemailOffer,
    #[serde(with = "duration_text")]
    voicemail_max_length: Duration,
    callback: bool,
    callback_attempts: u32,
    #[serde(with = "duration_text")]
    callback_retry_after: Duration,
    bad_news: bool,
    #[serde(with = "duration_text")]
    bad_news_stalled_after: Duration,
    #[serde(with = "duration_text")]
    bad_news_repeat_within: Duration,
    priority_to: Option<String>,
    #[serde(with = "duration_text")]
    repeat_call_window: Duration,
    #[serde(with = "duration_text")]
    retention: Duration,
    #[serde(with = "duration_text")]
    retention_every: Duration,
    return_window_days: Option<u32>,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: "sqlite://orderline.db".into(),
            twilio_auth_token: None,
            twilio_auth_token_previous: None,
            twilio_account_sid: None,
            twilio_api_key: None,
            twilio_api_secret: None,
            twilio_api_url: "https://api.twilio.com".into(),
            twilio_phone_number: None,
            sms: true,
            sms_from: None,
            allow_insecure_public_url: false,
            shopify_shop: None,
            shopify_access_token: None,
            shopify_client_id: None,
            shopify_client_secret: None,
            shopify_webhook_secret: None,
            shopify_webhook_secret_previous: None,
            shopify_api_url: None,
            freshness: duration_text::parse("5m"),
            lookup_budget: duration_text::parse("1500ms"),
            agent_token: None,
            verify: VerifyPolicy::PostalCode,
            prompt_mode: PromptMode::Twiml,
            log_format: LogFormat::Text,
            default_region: "US".into(),
            webhook_max_bytes: 2 * 1024 * 1024,
            db_max_connections: 16,
            cache_max_bytes: 512 * 1024 * 1024,
            warm_count: 100_000,
            negative_ttl: duration_text::parse("60s"),
            reconcile_every: duration_text::parse("60s"),
            reconcile_lag: duration_text::parse("30s"),
            reconcile_deletions_every: duration_text::parse("6h"),
            breaker_threshold: 5,
            breaker_cooldown: duration_text::parse("10s"),
            transfer_to: "queue:support".into(),
            taskrouter_workflow_sid: None,
            hours_timezone: "UTC".into(),
            hours: "always".into(),
            holidays: String::new(),
            shop_name: None,
            voice: "Polly.Joanna".into(),
            language: "en-US".into(),
            languages: None,
            voices: None,
            twiml_dir: None,
            hold_after: duration_text::parse("800ms"),
            header_timeout: duration_text::parse("10s"),
            idle_timeout: duration_text::parse("60s"),
            request_timeout: duration_text::parse("30s"),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            max_feed_clients: 64,
            drain_timeout: duration_text::parse("30s"),
            verify_max_failures: 5,
            verify_failure_window: duration_text::parse("24h"),
            agent_session_ttl: duration_text::parse("12h"),
            queue_max_wait: duration_text::parse("5m"),
            // Twilio's own hold music, as its queue examples play it.
            hold_music_url: "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3".into(),
            media_lead: duration_text::parse("300ms"),
            speech_input: true,
            relay_words_per_minute: 150,
            notify_url: None,
            notify_secret: None,
            notify_max_attempts: 8,
            voicemail: VoicemailOffer::Off,
            // Twilio transcribes recordings of at most two minutes
            // (https://www.twilio.com/docs/voice/api/recording-transcription).
            voicemail_max_length: duration_text::parse("2m"),
            callback: false,
            callback_attempts: 3,
            callback_retry_after: duration_text::parse("2m"),
            bad_news: false,
            bad_news_stalled_after: duration_text::parse("5days"),
            bad_news_repeat_within: duration_text::parse("72h"),
            priority_to: None,
            repeat_call_window: duration_text::parse("72h"),
            retention: duration_text::parse("90d"),
            retention_every: duration_text::parse("1h"),
            return_window_days: None,
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Base URL Twilio and Shopify use to reach us, without a trailing slash.
    pub public_url: String,
    pub database_url: String,
    pub twilio_auth_token: Option<Secret>,
    /// The auth token before a rotation (Twilio's secondary token promoted): signatures made with
    /// it are accepted too, until it is removed.
    pub twilio_auth_token_previous: Option<Secret>,
    /// The Twilio account (`AC…`) whose REST API `setup twilio` and `doctor` use.
    pub twilio_account_sid: Option<String>,
    /// A Twilio API key (`SK…`) and its secret: preferred over the auth token for the REST API.
    pub twilio_api_key: Option<String>,
    pub twilio_api_secret: Option<Secret>,
    /// The REST API base, `https://api.twilio.com` (the emulator's URL in tests).
    pub twilio_api_url: String,
    /// The line's Twilio number, E.164 (`doctor` checks where it points).
    pub twilio_phone_number: Option<String>,
    /// Key 4 texts the tracking link (ORDERLINE_SMS, on by default; offered only when the REST
    /// API's credentials are set too).
    pub sms: bool,
    /// The number texts come from, E.164 (ORDERLINE_SMS_FROM); default: the number called.
    pub sms_from: Option<String>,
    /// Lets `setup` and `doctor` accept an http:// or localhost ORDERLINE_PUBLIC_URL (the demo and
    /// the emulators); never for a real number or shop.
    pub allow_insecure_public_url: bool,
    pub shopify_shop: Option<String>,
    /// A legacy permanent Admin API token (instead of client credentials).
    pub shopify_access_token: Option<Secret>,
    /// A Dev Dashboard app's client ID and secret: tokens come from the client-credentials grant.
    pub shopify_client_id: Option<String>,
    pub shopify_client_secret: Option<Secret>,
    /// The webhook signing key: `SHOPIFY_WEBHOOK_SECRET`, else the app's client secret (the same
    /// key for a Dev Dashboard app).
    pub shopify_webhook_secret: Option<Secret>,
    /// The secret before a rotation; accepted until it is removed (Shopify rotates within 1 h).
    pub shopify_webhook_secret_previous: Option<Secret>,
    pub shopify_api_url: Option<String>,
    pub freshness: Duration,
    pub lookup_budget: Duration,
    pub agent_token: Option<Secret>,
    pub verify: VerifyPolicy,
    pub prompt_mode: PromptMode,
    pub log_format: LogFormat,
    /// ISO 3166 region for national phone numbers that carry no country (`US`).
    pub default_region: String,
    /// Largest webhook body accepted; larger ones are answered 413.
    pub webhook_max_bytes: usize,
    /// Postgres pool size (SQLite always uses one connection).
    pub db_max_connections: u32,
    /// Upper bound of the caller cache, in bytes.
    pub cache_max_bytes: u64,
    /// How many of the most recently updated customers are cached at start.
    pub warm_count: i64,
    /// How long "nobody has this number" is believed after Shopify said so.
    pub negative_ttl: Duration,
    /// Time between reconciliation sweeps (0: no periodic sweep).
    pub reconcile_every: Duration,
    /// How far behind now the reconciliation watermark stays.
    pub reconcile_lag: Duration,
    /// Time between deletion checks: every stored record asked of Shopify (0: none).
    pub reconcile_deletions_every: Duration,
    /// Consecutive Admin API failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one trial request.
    pub breaker_cooldown: Duration,
    /// Where "speak with someone" goes.
    pub transfer_to: TransferTarget,
    /// TaskRouter workflow for `<Enqueue workflowSid>` (Flex); the caller's context rides as `<Task>`.
    pub taskrouter_workflow_sid: Option<String>,
    /// When people answer; outside these hours the menu is self-service only.
    pub hours: BusinessHours,
    /// The shop as callers hear it ("Thanks for calling …").
    pub shop_name: String,
    /// `<Say voice>` and `<Say language>` of the default language (the first of `languages`).
    pub voice: String,
    pub language: String,
    /// The languages callers hear (ORDERLINE_LANGUAGES, else ORDERLINE_LANGUAGE alone), the
    /// default first, each with its `<Say>` voice.
    pub languages: Vec<SpokenLanguage>,
    /// A folder whose templates replace the built-in `twiml/` ones, file by file.
    pub twiml_dir: Option<std::path::PathBuf>,
    /// How long a caller waits in silence for the lookup before hearing "one moment".
    pub hold_after: Duration,
    /// Connection limits (`ops::transport`).
    pub transport: crate::ops::transport::Limits,
    /// How long a SIGTERM waits for in-flight requests and calls before the process exits.
    pub drain_timeout: Duration,
    /// Failed verifications (wrong postal codes) a customer or a calling number may have within
    /// `verify_failure_window`, across calls, before callers are only offered a person.
    pub verify_max_failures: u32,
    pub verify_failure_window: Duration,
    /// How long an agent's console session lasts after logging in.
    pub agent_session_ttl: Duration,
    /// Longest a caller waits in the queue before hearing a goodbye with the opening hours.
    pub queue_max_wait: Duration,
    /// What a queued caller hears between announcements of their place in line.
    pub hold_music_url: String,
    /// Media Streams: how much audio is kept queued at Twilio ahead of playback.
    pub media_lead: Duration,
    /// TwiML mode: every question accepts words as well as keys (`<Gather input="dtmf speech">`).
    pub speech_input: bool,
    /// ConversationRelay mode: how fast Twilio's text-to-speech is taken to speak, to know when
    /// a question has been heard and the caller's time to answer starts (Twilio reports no end
    /// of playback).
    pub relay_words_per_minute: u32,
    /// Reports: a call counts as resolved by orderline only if the same caller does not call
    /// again within this window.
    pub repeat_call_window: Duration,
    /// Calls and their events older than this are deleted (after their days are rolled up into
    /// the daily aggregates the reports read).
    pub retention: Duration,
    /// How often the roll-up and retention pass runs.
    pub retention_every: Duration,
    /// Where a signed JSON notification goes for each transferred call (a helpdesk, a Slack
    /// workflow), with the HMAC-SHA256 key that signs it; none: nothing is sent.
    pub notify: Option<NotifyTarget>,
    /// When callers are offered voicemail (TwiML mode only).
    pub voicemail: VoicemailOffer,
    /// The longest message `<Record>` takes (`maxLength`), 2 s to 2 min.
    pub voicemail_max_length: Duration,
    /// A queued caller may press 1 to be called back instead of waiting (needs the REST API).
    pub callback: bool,
    /// Calls placed for one call-back before it is shown as failed.
    pub callback_attempts: u32,
    /// The wait before a call-back that was not answered is placed again.
    pub callback_retry_after: Duration,
    /// Bad news first: callers whose latest order went wrong hear it first and go to a person
    /// with priority.
    pub bad_news: BadNewsPolicy,
    /// Where a bad-news caller is put through (none: ORDERLINE_TRANSFER_TO, with TaskRouter
    /// priority when a workflow is set).
    pub priority_to: Option<TransferTarget>,
    /// The shop's return window in days, said on key 3 with the orders past it; none: no window
    /// is said (the shop's policy is not known to orderline).
    pub return_window_days: Option<u32>,
}

/// A language callers may hear: its BCP-47 tag as configured (`es-US`: the `<Say language>` and
/// the `<Gather language>`), the words orderline builds in it, and its `<Say voice>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokenLanguage {
    pub tag: String,
    pub language: crate::domain::Language,
    pub voice: String,
}

/// ORDERLINE_LANGUAGES (else ORDERLINE_LANGUAGE) with ORDERLINE_VOICES (else ORDERLINE_VOICE for
/// the first language, and a Twilio voice that speaks it for the others), every pair checked.
fn spoken_languages(raw: &RawSettings) -> Result<Vec<SpokenLanguage>, ConfigError> {
    let list = raw.languages.as_deref().map(str::trim).filter(|l| !l.is_empty());
    let setting = if list.is_some() { "ORDERLINE_LANGUAGES" } else { "ORDERLINE_LANGUAGE" };
    let tags: Vec<String> = list
        .unwrap_or(raw.language.trim())
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() {
        return Err(ConfigError::Invalid(format!("{setting} names no language (give BCP-47 tags like en-US,es-US)")));
    }
    let mut voices: Vec<(String, String)> = Vec::new();
    for pair in raw.voices.as_deref().unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((tag, voice)) =
            pair.split_once('=').map(|(t, v)| (t.trim(), v.trim())).filter(|(t, v)| !t.is_empty() && !v.is_empty())
        else {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_VOICES {pair:?} is not language=voice (like es-US=Polly.Lupe-Neural)"
            )));
        };
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_VOICES names {tag:?}, which is not among {setting} {:?}",
                tags.join(",")
            )));
        }
        voices.push((tag.to_string(), voice.to_string()));
    }
    let mut out: Vec<SpokenLanguage> = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let Some(language) = crate::domain::Language::of_tag(tag) else {
            return Err(ConfigError::Invalid(format!(
                "{setting} {tag:?}: orderline has no words for this language: its templates (twiml/{tag}/: menu.xml, \
                 ask_order_number.xml, … every step) are missing, and dates, times and amounts are said in English \
                 (en) and Spanish (es) only (src/domain/language.rs)"
            )));
        };
        if let Some(same) = out.iter().find(|l| l.language == language) {
            return Err(ConfigError::Invalid(format!(
                "{setting} names {} twice ({} and {tag}): one tag per language",
                language.english_name(),
                same.tag
            )));
        }
        let (voice, named) = match voices.iter().find(|(t, _)| t.eq_ignore_ascii_case(tag)) {
            Some((_, voice)) => (voice.clone(), "ORDERLINE_VOICES"),
            None if i == 0 => (raw.voice.trim().to_string(), "ORDERLINE_VOICE"),
            None => match crate::twilio::voices::default_for(tag) {
                Some(voice) => (voice, "the default voice"),
                None => {
                    return Err(ConfigError::Invalid(format!(
                        "{setting} {tag:?}: no default voice for it; name one in ORDERLINE_VOICES ({tag}=…)"
                    )));
                }
            },
        };
        crate::twilio::voices::check(&voice, tag).map_err(|e| {
            ConfigError::Invalid(if named == "ORDERLINE_VOICE" && setting == "ORDERLINE_LANGUAGE" {
                e
            } else {
                let why = e.replace("ORDERLINE_VOICE ", "the voice ").replace("ORDERLINE_LANGUAGE ", "");
                format!(
                    "{named} {voice:?} for {tag}: {why} (give each language its voice in ORDERLINE_VOICES, like \
                     es-US=Polly.Lupe-Neural)"
                )
            })
        })?;
        out.push(SpokenLanguage { tag: tag.clone(), language, voice });
    }
    Ok(out)
}

/// When a caller hears bad news first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadNewsPolicy {
    pub on: bool,
    /// A shipped parcel with no carrier scan for this long is stalled.
    pub stalled_after: Duration,
    /// A customer calling again within this long is a repeat caller.
    pub repeat_within: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Environment names that are not ORDERLINE_-prefixed, read as they are.
const STANDARD_ENV: [&str; 15] = [
    "DATABASE_URL",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_AUTH_TOKEN_PREVIOUS",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_API_KEY",
    "TWILIO_API_SECRET",
    "TWILIO_API_URL",
    "TWILIO_PHONE_NUMBER",
    "SHOPIFY_SHOP",
    "SHOPIFY_ACCESS_TOKEN",
    "SHOPIFY_CLIENT_ID",
    "SHOPIFY_CLIENT_SECRET",
    "SHOPIFY_WEBHOOK_SECRET",
    "SHOPIFY_WEBHOOK_SECRET_PREVIOUS",
    "SHOPIFY_API_URL",
];

impl Settings {
    /// Reads `orderline.toml` (or the file `ORDERLINE_CONFIG` names) and the environment.
    pub fn load() -> Result<Settings, ConfigError> {
        let path = std::env::var("ORDERLINE_CONFIG").unwrap_or_else(|_| "orderline.toml".into());
        if std::env::var("ORDERLINE_CONFIG").is_ok() && !Path::new(&path).exists() {
            return Err(ConfigError::Invalid(format!("ORDERLINE_CONFIG names {path}, which does not exist")));
        }
        check_keys(Figment::from(Toml::file(&path)), &path)?;
        let environment = Env::prefixed("ORDERLINE_").filter(|key| !is_not_a_setting(key.as_str()));
        check_keys(Figment::from(environment.clone()), "the environment (ORDERLINE_…)")?;
        let figment = Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(&path))
            .merge(environment)
            .merge(Env::raw().only(&STANDARD_ENV));
        Settings::from_figment(figment)
    }

    /// Settings from explicit key/value pairs over the defaults (tests, the demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        for (key, value) in pairs {
            // Values are read as the environment's are: "4" is a number, "true" a boolean.
            let value: figment::value::Value = value.parse().unwrap_or_else(|_| value.into());
            figment = figment.merge(Serialized::default(&key.to_ascii_lowercase(), value));
        }
        Settings::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        check_keys(figment.clone(), "the settings")?;
        let raw: RawSettings = figment.extract().map_err(|e| ConfigError::Invalid(describe(&e)))?;
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            ConfigError::Invalid(format!("ORDERLINE_LISTEN {:?} is not an address like 127.0.0.1:8080", raw.listen))
        })?;
        let public_url = match raw.public_url.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                url.trim_end_matches('/').to_string()
            }
            Some(url) => {
                return Err(ConfigError::Invalid(format!(
                    "ORDERLINE_PUBLIC_URL {url:?} must start with https:// (or http:// for local testing)"
                )));
            }
            None => format!("http://{listen}"),
        };
        if !(raw.database_url.starts_with("postgres://")
            || raw.database_url.starts_with("postgresql://")
            || raw.database_url.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid(
                "DATABASE_URL must be postgres://user@host/db or sqlite://path (or sqlite::memory:)".into(),
            ));
        }
        let region = raw.default_region.trim().to_ascii_uppercase();
        if region.parse::<phonenumber::country::Id>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_DEFAULT_REGION {:?} is not an ISO 3166 region code like US or GB",
                raw.default_region
            )));
        }
        if raw.webhook_max_bytes < 1024 {
            return Err(ConfigError::Invalid("ORDERLINE_WEBHOOK_MAX_BYTES must be at least 1024".into()));
        }
        let transport = crate::ops::transport::Limits {
            header_timeout: raw.header_timeout,
            idle_timeout: raw.idle_timeout,
            request_timeout: raw.request_timeout,
            max_connections: raw.max_connections,
            max_connections_per_ip: raw.max_connections_per_ip,
            max_feed_clients: raw.max_feed_clients,
        }
        .checked()
        .map_err(ConfigError::Invalid)?;
        if raw.verify_max_failures == 0 {
            return Err(ConfigError::Invalid("ORDERLINE_VERIFY_MAX_FAILURES must be at least 1".into()));
        }
        if raw.repeat_call_window.is_zero() || raw.retention_every.is_zero() {
            return Err(ConfigError::Invalid(
                "ORDERLINE_REPEAT_CALL_WINDOW and ORDERLINE_RETENTION_EVERY must be longer than 0".into(),
            ));
        }
        if raw.retention < raw.repeat_call_window + Duration::from_secs(2 * 86_400) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_RETENTION {:?} must be at least ORDERLINE_REPEAT_CALL_WINDOW ({:?}) plus 2 days: a day's \
                 calls are kept until the repeat window has passed and the day is rolled up",
                raw.retention, raw.repeat_call_window
            )));
        }
        if raw.queue_max_wait < Duration::from_secs(10) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_QUEUE_MAX_WAIT {:?} is too short for anyone to answer: at least 10s",
                raw.queue_max_wait
            )));
        }
        let languages = spoken_languages(&raw)?;
        if raw.prompt_mode == PromptMode::MediaStream
            && let Some(other) = languages.iter().find(|l| l.language != crate::domain::Language::En)
        {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_PROMPT_MODE=media_stream with ORDERLINE_LANGUAGES {:?}: the Media Streams recordings \
                 (speech/) cover en-US only; use ORDERLINE_PROMPT_MODE=twiml for {}",
                languages.iter().map(|l| l.tag.as_str()).collect::<Vec<_>>().join(","),
                other.tag
            )));
        }
        if raw.media_lead > Duration::from_secs(2) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_MEDIA_LEAD {:?}: at most 2s (a caller who presses a key must not wait for queued audio)",
                raw.media_lead
            )));
        }
        let hold_music_url = raw.hold_music_url.trim().to_string();
        if !(hold_music_url.starts_with("https://") || hold_music_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_HOLD_MUSIC_URL {hold_music_url:?} must be an http(s) URL of an audio file Twilio can <Play>"
            )));
        }
        let transfer_to = TransferTarget::parse(&raw.transfer_to, &region).map_err(ConfigError::Invalid)?;
        let taskrouter_workflow_sid =
            raw.taskrouter_workflow_sid.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(sid) = &taskrouter_workflow_sid
            && !(sid.starts_with("WW") && sid.len() == 34 && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_TASKROUTER_WORKFLOW_SID {sid:?} is not a workflow SID (WW followed by 32 hex digits)"
            )));
        }
        let hours = BusinessHours::parse(&raw.hours_timezone, &raw.hours, &raw.holidays)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let twiml_dir = raw.twiml_dir.filter(|d| !d.trim().is_empty()).map(std::path::PathBuf::from);
        if let Some(dir) = &twiml_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::Invalid(format!("ORDERLINE_TWIML_DIR {} is not a folder", dir.display())));
        }
        let non_empty = |s: Option<Secret>| s.filter(|s| !s.0.trim().is_empty());
        let text = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let twilio_account_sid = text(raw.twilio_account_sid);
        if let Some(sid) = &twilio_account_sid
            && !(sid.starts_with("AC") && sid.len() == 34 && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Invalid(format!(
                "TWILIO_ACCOUNT_SID {sid:?} is not an account SID (AC followed by 32 hex digits; Twilio console → Account info)"
            )));
        }
        let twilio_api_url = raw.twilio_api_url.trim().trim_end_matches('/').to_string();
        if !(twilio_api_url.starts_with("https://") || twilio_api_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "TWILIO_API_URL {twilio_api_url:?} must be an http(s) URL (default https://api.twilio.com)"
            )));
        }
        let sms_from = match text(raw.sms_from) {
            Some(from) => match crate::domain::PhoneNumber::parse(&from, Some(&raw.default_region)) {
                Ok(number) => Some(number.as_str().to_string()),
                Err(e) => {
                    return Err(ConfigError::Invalid(format!(
                        "ORDERLINE_SMS_FROM {:?} is not a phone number ({e}): give the shop's Twilio number, E.164 (+15551234567)",
                        crate::domain::mask_phone(&from)
                    )));
                }
            },
            None => None,
        };
        let shop = raw.shopify_shop.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        let shop_name = raw
            .shop_name
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| shop.as_deref().map_or_else(|| "our store".to_string(), shop_name_of));
        let voicemail_max_length = raw.voicemail_max_length;
        if !(Duration::from_secs(2)..=Duration::from_secs(120)).contains(&voicemail_max_length) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_VOICEMAIL_MAX_LENGTH {} must be between 2s and 2m (Twilio transcribes at most two minutes)",
                humantime::format_duration(voicemail_max_length)
            )));
        }
        let priority_to = match raw.priority_to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => Some(
                TransferTarget::parse(text, &raw.default_region)
                    .map_err(|e| ConfigError::Invalid(e.replace("ORDERLINE_TRANSFER_TO", "ORDERLINE_PRIORITY_TO")))?,
            ),
            None => None,
        };
        let callback_attempts = raw.callback_attempts;
        if !(1..=10).contains(&callback_attempts) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_CALLBACK_ATTEMPTS {callback_attempts} must be between 1 and 10"
            )));
        }
        let notify = match (
            raw.notify_url.as_deref().map(str::trim).filter(|u| !u.is_empty()),
            non_empty(raw.notify_secret),
        ) {
            (None, _) => None,
            (Some(url), _) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(ConfigError::Invalid(format!(
                    "ORDERLINE_NOTIFY_URL {url:?} must be an http(s) URL (https:// for anything but a local receiver)"
                )));
            }
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "ORDERLINE_NOTIFY_URL is set without ORDERLINE_NOTIFY_SECRET: notifications are always signed \
                     (give a long random string and the same to the receiver)"
                        .into(),
                ));
            }
            (Some(url), Some(secret)) => {
                Some(NotifyTarget { url: url.to_string(), secret, max_attempts: raw.notify_max_attempts.max(1) })
            }
        };
        Ok(Settings {
            listen,
            public_url,
            database_url: raw.database_url,
            twilio_auth_token: non_empty(raw.twilio_auth_token),
            twilio_auth_token_previous: non_empty(raw.twilio_auth_token_previous),
            twilio_account_sid,
            twilio_api_key: text(raw.twilio_api_key),
            twilio_api_secret: non_empty(raw.twilio_api_secret),
            twilio_api_url,
            twilio_phone_number: text(raw.twilio_phone_number),
            sms: raw.sms,
            sms_from,
            allow_insecure_public_url: raw.allow_insecure_public_url,
            shopify_api_url: raw
                .shopify_api_url
                .map(|u| u.trim_end_matches('/').to_string())
                .or_else(|| shop.as_ref().map(|s| format!("https://{s}"))),
            shopify_shop: shop,
            shopify_access_token: non_empty(raw.shopify_access_token),
            shopify_client_id: raw.shopify_client_id.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            shopify_client_secret: non_empty(raw.shopify_client_secret.clone()),
            shopify_webhook_secret: non_empty(raw.shopify_webhook_secret)
                .or_else(|| non_empty(raw.shopify_client_secret)),
            shopify_webhook_secret_previous: non_empty(raw.shopify_webhook_secret_previous),
            freshness: raw.freshness,
            lookup_budget: raw.lookup_budget,
            agent_token: non_empty(raw.agent_token),
            verify: raw.verify,
            prompt_mode: raw.prompt_mode,
            log_format: raw.log_format,
            default_region: region,
            webhook_max_bytes: raw.webhook_max_bytes,
            db_max_connections: raw.db_max_connections.max(2),
            cache_max_bytes: raw.cache_max_bytes,
            warm_count: raw.warm_count.max(0),
            negative_ttl: raw.negative_ttl,
            reconcile_every: raw.reconcile_every,
            reconcile_lag: raw.reconcile_lag,
            reconcile_deletions_every: raw.reconcile_deletions_every,
            breaker_threshold: raw.breaker_threshold.max(1),
            breaker_cooldown: raw.breaker_cooldown,
            transfer_to,
            taskrouter_workflow_sid,
            hours,
            shop_name,
            voice: languages[0].voice.clone(),
            language: languages[0].tag.clone(),
            languages,
            twiml_dir,
            hold_after: raw.hold_after,
            transport,
            drain_timeout: raw.drain_timeout,
            verify_max_failures: raw.verify_max_failures,
            verify_failure_window: raw.verify_failure_window,
            agent_session_ttl: raw.agent_session_ttl,
            queue_max_wait: raw.queue_max_wait,
            hold_music_url,
            media_lead: raw.media_lead,
            speech_input: raw.speech_input,
            relay_words_per_minute: raw.relay_words_per_minute.max(1),
            notify,
            voicemail: raw.voicemail,
            voicemail_max_length,
            callback: raw.callback,
            callback_attempts,
            callback_retry_after: raw.callback_retry_after,
            bad_news: BadNewsPolicy {
                on: raw.bad_news,
                stalled_after: raw.bad_news_stalled_after,
                repeat_within: raw.bad_news_repeat_within,
            },
            priority_to,
            repeat_call_window: raw.repeat_call_window,
            retention: raw.retention,
            retention_every: raw.retention_every,
            return_window_days: raw.return_window_days.filter(|d| *d > 0),
        })
    }

    /// What `serve` needs on top of the defaults.
    pub fn check_for_serve(&self) -> Result<(), ConfigError> {
        if self.twilio_auth_token.is_none() {
            return Err(ConfigError::Invalid(
                "TWILIO_AUTH_TOKEN is not set: serve needs it to verify that requests come from Twilio \
                 (Twilio console → Account → API keys & tokens → Auth Token)"
                    .into(),
            ));
        }
        if let Some((path, mode)) = self.prompt_mode.websocket() {
            crate::twilio::public_url::PublicUrl::new(&self.public_url)
                .check_stream_url(path, mode)
                .map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
}

/// A value that did not parse, named as the operator wrote it: `ORDERLINE_FRESHNESS "soon": …`.
fn describe(error: &figment::Error) -> String {
    let key = error.path.last().map(|k| k.to_ascii_lowercase());
    let name = match key.as_deref() {
        Some(key) if STANDARD_ENV.iter().any(|e| e.eq_ignore_ascii_case(key)) => key.to_ascii_uppercase(),
        Some(key) => format!("ORDERLINE_{}", key.to_ascii_uppercase()),
        None => "a setting".to_string(),
    };
    format!("{name}: {}", error.kind)
}

/// Durations as people write them (`5m`, `1500ms`, `24h`), through humantime.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// A built-in default: written as the README writes it.
    pub fn parse(text: &str) -> Duration {
        humantime::parse_duration(text).unwrap_or_else(|e| panic!("the default {text:?}: {e}"))
    }

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        /// The environment's `0` arrives as a number: read it as the text it was.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Number(u64),
        }
        let text = match Written::deserialize(d)? {
            Written::Text(text) => text,
            Written::Number(n) => n.to_string(),
        };
        humantime::parse_duration(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 5m, 1500ms or 24h ({e})")))
    }
}

/// `ORDERLINE_` names that are not settings: the config file's path, and the test suite's own.
fn is_not_a_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "config" || key.starts_with("test_")
}

/// Every key `RawSettings` accepts, as serde names them (so the list cannot drift from the struct).
fn known_keys() -> &'static [&'static str] {
    /// A deserializer that only records the field names a struct asks for.
    struct Fields(Option<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only structs"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(serde::de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut fields = Fields(None);
        let _ = RawSettings::deserialize(&mut fields);
        fields.0.unwrap_or(&[])
    })
}

/// Fails on a key that is not a setting, naming where it was found and the closest setting.
fn check_keys(source: Figment, place: &str) -> Result<(), ConfigError> {
    let Ok(found) = source.extract::<std::collections::BTreeMap<String, figment::value::Value>>() else {
        return Ok(()); // a file that does not parse is reported by the extraction itself
    };
    let known = known_keys();
    match found.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(ConfigError::Invalid(unknown_key(key, place, known))),
    }
}

fn unknown_key(key: &str, place: &str, known: &[&str]) -> String {
    let closest = known.iter().min_by_key(|k| edit_distance(key, k)).filter(|k| edit_distance(key, k) <= 3);
    let env = format!("ORDERLINE_{}", key.to_ascii_uppercase());
    match closest {
        Some(closest) => format!(
            "{place}: `{key}` ({env}) is not a setting; did you mean `{closest}` (ORDERLINE_{})?",
            closest.to_ascii_uppercase()
        ),
        None => format!("{place}: `{key}` ({env}) is not a setting; the README's Configuration section lists them"),
    }
}

/// Levenshtein distance, for suggesting the setting a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// A value the environment may hand over as a number (`TWILIO_PHONE_NUMBER=+14155550100` reads
/// as an integer), kept as the text it was.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Signed(i64),
        Unsigned(u64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Text(t) => t,
        // The environment's `+1415…` lost its plus sign as a number: E.164 puts it back.
        Raw::Signed(n) => format!("+{n}"),
        Raw::Unsigned(n) => format!("+{n}"),
    }))
}

/// `orderline-demo.myshopify.com` → `Orderline Demo`.
fn shop_name_of(domain: &str) -> String {
    let handle = domain.split('.').next().unwrap_or(domain);
    handle
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::from_pairs([]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://orderline.db");
        assert_eq!(s.freshness, Duration::from_secs(300));
        assert_eq!(s.lookup_budget, Duration::from_millis(1500));
        assert_eq!(s.verify, VerifyPolicy::PostalCode);
        assert_eq!(s.prompt_mode, PromptMode::Twiml);
        assert!(s.check_for_serve().is_err());
    }

    #[test]
    fn malformed_values_are_named_in_the_error() {
        let err = Settings::from_pairs([("freshness", "soon")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_FRESHNESS"), "{err}");
        let err = Settings::from_pairs([("listen", "localhost")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_LISTEN"), "{err}");
        let err = Settings::from_pairs([("database_url", "mysql://x")]).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        let err = Settings::from_pairs([("verify", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_VERIFY") && err.contains("maybe") && err.contains("postal_code"), "{err}");
    }

    #[test]
    fn the_client_secret_signs_webhooks_unless_a_webhook_secret_is_set() {
        let s = Settings::from_pairs([("shopify_client_id", "abc"), ("shopify_client_secret", "shh")]).unwrap();
        assert_eq!(s.shopify_client_id.as_deref(), Some("abc"));
        assert_eq!(s.shopify_webhook_secret.unwrap().expose(), "shh");
        let s = Settings::from_pairs([("shopify_client_secret", "shh"), ("shopify_webhook_secret", "other")]).unwrap();
        assert_eq!(s.shopify_webhook_secret.unwrap().expose(), "other");
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::from_pairs([("shopify_webhook_secret", "hush")]).unwrap();
        assert!(!format!("{s:?}").contains("hush"));
        assert_eq!(s.shopify_webhook_secret.unwrap().expose(), "hush");
    }

    #[test]
    fn the_call_flow_settings_parse_and_name_their_errors() {
        let s = Settings::from_pairs([
            ("shopify_shop", "orderline-demo.myshopify.com"),
            ("transfer_to", "client:support"),
            ("hours_timezone", "America/New_York"),
            ("hours", "mon-fri 09:00-17:00"),
        ])
        .unwrap();
        assert_eq!(s.shop_name, "Orderline Demo");
        assert_eq!(s.transfer_to, TransferTarget::Client("support".into()));
        assert_eq!(Settings::from_pairs([]).unwrap().transfer_to, TransferTarget::Queue("support".into()));
        let err = Settings::from_pairs([("transfer_to", "fax:1")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TRANSFER_TO"), "{err}");
        let err = Settings::from_pairs([("taskrouter_workflow_sid", "WW1")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TASKROUTER_WORKFLOW_SID"), "{err}");
        let err = Settings::from_pairs([("hours", "mon-fry 09:00-17:00")]).unwrap_err().to_string();
        assert!(err.contains("fry"), "{err}");
        let err = Settings::from_pairs([("twiml_dir", "/no/such/folder")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TWIML_DIR"), "{err}");
    }

    #[test]
    fn the_twilio_transfer_and_media_settings_parse_and_name_their_errors() {
        let s = Settings::from_pairs([]).unwrap();
        assert_eq!((s.queue_max_wait, s.media_lead), (Duration::from_secs(300), Duration::from_millis(300)));
        assert!(s.hold_music_url.starts_with("http://com.twilio.sounds.music"));
        let s = Settings::from_pairs([("queue_max_wait", "90s"), ("twilio_auth_token_previous", "old")]).unwrap();
        assert_eq!(s.queue_max_wait, Duration::from_secs(90));
        assert_eq!(s.twilio_auth_token_previous.as_ref().map(Secret::expose), Some("old"));
        for (key, value, named) in [
            ("queue_max_wait", "5s", "ORDERLINE_QUEUE_MAX_WAIT"),
            ("media_lead", "3s", "ORDERLINE_MEDIA_LEAD"),
            ("hold_music_url", "music.mp3", "ORDERLINE_HOLD_MUSIC_URL"),
            ("language", "es-US", "ORDERLINE_VOICE"),
        ] {
            let err = Settings::from_pairs([(key, value)]).unwrap_err().to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        let s =
            Settings::from_pairs([("freshness", "1h 30m"), ("reconcile_every", "0"), ("hold_after", "250ms")]).unwrap();
        assert_eq!(s.freshness, Duration::from_secs(5400));
        assert_eq!(s.reconcile_every, Duration::ZERO);
        assert_eq!(s.hold_after, Duration::from_millis(250));
        let err = Settings::from_pairs([("lookup_budget", "300")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_LOOKUP_BUDGET") && err.contains("\"300\" is not a duration"), "{err}");
    }

    #[test]
    fn a_mistyped_key_stops_the_start_and_names_the_closest_setting() {
        let err = Settings::from_pairs([("freshnes", "5m")]).unwrap_err().to_string();
        assert!(err.contains("`freshnes`") && err.contains("did you mean `freshness` (ORDERLINE_FRESHNESS)"), "{err}");
        let err = Settings::from_pairs([("completely_unrelated", "1")]).unwrap_err().to_string();
        assert!(err.contains("not a setting") && !err.contains("did you mean"), "{err}");
        assert!(known_keys().contains(&"reconcile_deletions_every") && known_keys().len() > 40);
        assert_eq!(edit_distance("freshnes", "freshness"), 1);
        assert_eq!(edit_distance("verfy", "verify"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn a_mistyped_key_in_orderline_toml_or_the_environment_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("orderline.toml", "freshness = \"5m\"\nlookup_budgett = \"1s\"\n")?;
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("orderline.toml") && err.contains("did you mean `lookup_budget`"), "{err}");
            jail.create_file("orderline.toml", "freshness = \"5m\"\n")?;
            assert!(Settings::load().is_ok());
            jail.set_env("ORDERLINE_TEST_POSTGRES", "postgres://elsewhere");
            assert!(Settings::load().is_ok(), "the test suite's own names are not settings");
            jail.set_env("ORDERLINE_RECONCILE_EVRY", "1m");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("environment") && err.contains("ORDERLINE_RECONCILE_EVERY"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn api_url_defaults_to_the_shop() {
        let s = Settings::from_pairs([("shopify_shop", "Demo.myshopify.com")]).unwrap();
        assert_eq!(s.shopify_api_url.as_deref(), Some("https://demo.myshopify.com"));
    }

    #[test]
    fn the_return_window_is_the_shops_or_none() {
        assert_eq!(Settings::from_pairs([]).unwrap().return_window_days, None, "never a made-up 30 days");
        let s = Settings::from_pairs([("return_window_days", "45")]).unwrap();
        assert_eq!(s.return_window_days, Some(45));
        assert_eq!(Settings::from_pairs([("return_window_days", "0")]).unwrap().return_window_days, None);
        let refused = Settings::from_pairs([("return_window_days", "thirty")]).unwrap_err().to_string();
        assert!(refused.contains("ORDERLINE_RETURN_WINDOW_DAYS"), "{refused}");
    }
}
