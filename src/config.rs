//! Typed settings, declared once per area: defaults → `orderline.toml` → environment (ORDERLINE_*
//! and the standard names DATABASE_URL, TWILIO_*, SHOPIFY_*). Owns validation; never logs a secret.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
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

/// When callers are offered voicemail (TwiML and Media Streams modes; an unanswered transfer in
/// every mode).
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

/// Every setting, one struct per area. A setting's key in `orderline.toml` is its field name
/// (with the area's prefix for `twilio` and `shopify`: `twilio.auth_token` is `twilio_auth_token`),
/// and its environment name is the key upper-cased after `ORDERLINE_`; the keys of the `twilio`
/// and `shopify` areas and `database_url` are also read under their standard names
/// (`TWILIO_AUTH_TOKEN`, `DATABASE_URL`). A new setting is one field, with its default, in its
/// area, and its row in the README's Configuration table.
///
/// `Settings::default()` is the defaults as written; `validated` (which `load` runs) checks the
/// values against each other and fills in what follows from them (the public URL from the listen
/// address, the spoken languages, the business hours, the transfer targets). Tests build their
/// settings as `Settings::default()`, change fields, and validate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub twilio: TwilioSettings,
    pub shopify: ShopifySettings,
    pub lookup: LookupSettings,
    pub sync: SyncSettings,
    pub ivr: IvrSettings,
    pub handoff: HandoffSettings,
    pub agents: AgentSettings,
    pub reports: ReportSettings,
    /// Connection limits (`ops::transport` owns the struct and its defaults).
    pub transport: crate::ops::transport::Limits,
}

/// The areas whose keys carry a prefix (`twilio_auth_token`), read under the standard names too.
const PREFIXED_AREAS: [(&str, &str); 2] = [("twilio", "twilio_"), ("shopify", "shopify_")];

/// The process: where it listens, how it is reached, its database and logs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Base URL Twilio and Shopify use to reach us, without a trailing slash; empty until
    /// validated: `http://` + the listen address.
    pub public_url: String,
    /// Lets `setup` and `doctor` accept an http:// or localhost ORDERLINE_PUBLIC_URL (the demo and
    /// the emulators); never for a real number or shop.
    pub allow_insecure_public_url: bool,
    /// `postgres://…` or `sqlite://path` (`sqlite::memory:` for throwaway runs).
    pub database_url: String,
    /// Postgres pool size (SQLite always uses one connection); at least 2.
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    /// Largest webhook body accepted; larger ones are answered 413.
    pub webhook_max_bytes: usize,
    /// How long a SIGTERM waits for in-flight requests and calls before the process exits.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            allow_insecure_public_url: false,
            database_url: "sqlite://orderline.db".into(),
            db_max_connections: 16,
            log_format: LogFormat::Text,
            webhook_max_bytes: 2 * 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Twilio: the signature key and the REST API (keys `twilio_…`, names `TWILIO_…`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioSettings {
    /// The signature key; `serve` refuses to start without it.
    pub auth_token: Option<Secret>,
    /// The auth token before a rotation (Twilio's secondary token promoted): signatures made with
    /// it are accepted too, until it is removed.
    pub auth_token_previous: Option<Secret>,
    /// The Twilio account (`AC…`) whose REST API `setup twilio` and `doctor` use.
    pub account_sid: Option<String>,
    /// A Twilio API key (`SK…`) and its secret: preferred over the auth token for the REST API.
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
    /// The REST API base, `https://api.twilio.com` (the emulator's URL in tests).
    pub api_url: String,
    /// The line's Twilio number, E.164 (`doctor` checks where it points).
    #[serde(deserialize_with = "text_or_number")]
    pub phone_number: Option<String>,
}

impl Default for TwilioSettings {
    fn default() -> Self {
        TwilioSettings {
            auth_token: None,
            auth_token_previous: None,
            account_sid: None,
            api_key: None,
            api_secret: None,
            api_url: "https://api.twilio.com".into(),
            phone_number: None,
        }
    }
}

/// Shopify: the shop, the Admin API's credentials and the webhook key (keys `shopify_…`, names
/// `SHOPIFY_…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopifySettings {
    /// `example.myshopify.com`, lower-cased.
    pub shop: Option<String>,
    /// A legacy permanent Admin API token (instead of client credentials).
    pub access_token: Option<Secret>,
    /// A Dev Dashboard app's client ID and secret: tokens come from the client-credentials grant.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The webhook signing key: `SHOPIFY_WEBHOOK_SECRET`, else (once validated) the app's client
    /// secret (the same key for a Dev Dashboard app).
    pub webhook_secret: Option<Secret>,
    /// The secret before a rotation; accepted until it is removed (Shopify rotates within 1 h).
    pub webhook_secret_previous: Option<Secret>,
    /// Admin API base; once validated, `https://{shop}` unless set.
    pub api_url: Option<String>,
}

/// Knowing the caller: the freshness policy, the live fetch's budget, the cache.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupSettings {
    /// A row confirmed within this window is trusted without asking Shopify.
    #[serde(with = "duration")]
    pub freshness: Duration,
    /// Longest a caller waits on a live fetch.
    #[serde(with = "duration")]
    pub lookup_budget: Duration,
    /// How long "nobody has this number" is believed after Shopify said so.
    #[serde(with = "duration")]
    pub negative_ttl: Duration,
    /// Upper bound of the caller cache, in bytes.
    pub cache_max_bytes: u64,
    /// How many of the most recently updated customers are cached at start.
    pub warm_count: i64,
    /// ISO 3166 region for national phone numbers that carry no country (`US`), upper-cased.
    pub default_region: String,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            freshness: Duration::from_secs(5 * 60),
            lookup_budget: Duration::from_millis(1500),
            negative_ttl: Duration::from_secs(60),
            cache_max_bytes: 512 * 1024 * 1024,
            warm_count: 100_000,
            default_region: "US".into(),
        }
    }
}

/// Keeping the store in step with Shopify: reconciliation sweeps and the Admin API's breaker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Time between reconciliation sweeps (0: no periodic sweep).
    #[serde(with = "duration")]
    pub reconcile_every: Duration,
    /// How far behind now the reconciliation watermark stays.
    #[serde(with = "duration")]
    pub reconcile_lag: Duration,
    /// Time between deletion checks: every stored record asked of Shopify (0: none).
    #[serde(with = "duration")]
    pub reconcile_deletions_every: Duration,
    /// Consecutive Admin API failures that open the circuit breaker (at least 1).
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one trial request.
    #[serde(with = "duration")]
    pub breaker_cooldown: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            reconcile_every: Duration::from_secs(60),
            reconcile_lag: Duration::from_secs(30),
            reconcile_deletions_every: Duration::from_secs(6 * 3600),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

/// What callers hear and may do before a person: verification, the way prompts are spoken,
/// languages and voices, texts, bad news first.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvrSettings {
    pub verify: VerifyPolicy,
    /// Failed verifications (wrong postal codes) a customer or a calling number may have within
    /// `verify_failure_window`, across calls, before callers are only offered a person.
    pub verify_max_failures: u32,
    #[serde(with = "duration")]
    pub verify_failure_window: Duration,
    pub prompt_mode: PromptMode,
    /// ConversationRelay mode: how fast Twilio's text-to-speech is taken to speak, to know when
    /// a question has been heard and the caller's time to answer starts (Twilio reports no end
    /// of playback).
    pub relay_words_per_minute: u32,
    /// The shop as callers hear it ("Thanks for calling …"); once validated, from the shop's
    /// domain unless set.
    pub shop_name: String,
    /// `<Say voice>` and `<Say language>` of the default language; once validated, those of the
    /// first of `spoken_languages`.
    pub voice: String,
    pub language: String,
    /// The languages offered, BCP-47 tags, the default first (`en-US,es-US`); none: `language`.
    pub languages: Option<String>,
    /// A `<Say>` voice per language, `tag=voice,…` (`es-US=Polly.Lupe-Neural`).
    pub voices: Option<String>,
    /// A folder whose templates replace the built-in `twiml/` ones, file by file.
    pub twiml_dir: Option<std::path::PathBuf>,
    /// A folder of the merchant's own recordings for Media Streams (`<id>.wav` or `<id>.ulaw`):
    /// each replaces the built-in clip of its id, and `shop_name` is said after "Thanks for calling".
    pub speech_dir: Option<std::path::PathBuf>,
    /// How long a caller waits in silence for the lookup before hearing "one moment".
    #[serde(with = "duration")]
    pub hold_after: Duration,
    /// Media Streams: how much audio is kept queued at Twilio ahead of playback.
    #[serde(with = "duration")]
    pub media_lead: Duration,
    /// TwiML mode: every question accepts words as well as keys (`<Gather input="dtmf speech">`).
    pub speech_input: bool,
    /// Key 4 texts the tracking link (on by default; offered only when the REST API's
    /// credentials are set too).
    pub sms: bool,
    /// The number texts come from, E.164; default: the number called.
    #[serde(deserialize_with = "text_or_number")]
    pub sms_from: Option<String>,
    /// Bad news first: callers whose latest order went wrong hear it first and go to a person
    /// with priority (see `bad_news_policy`).
    pub bad_news: bool,
    /// A shipped parcel with no carrier scan for this long is stalled.
    #[serde(with = "duration")]
    pub bad_news_stalled_after: Duration,
    /// A customer calling again within this long is a repeat caller.
    #[serde(with = "duration")]
    pub bad_news_repeat_within: Duration,
    /// The shop's return window in days, said on key 3 with the orders past it; none (or 0): no
    /// window is said (the shop's policy is not known to orderline).
    pub return_window_days: Option<u32>,
    /// Filled in by `validated` from `languages` (else `language`), `voice` and `voices`: the
    /// languages callers hear, the default first, each with its `<Say>` voice.
    #[serde(skip)]
    pub spoken_languages: Vec<SpokenLanguage>,
}

impl Default for IvrSettings {
    fn default() -> Self {
        IvrSettings {
            verify: VerifyPolicy::PostalCode,
            verify_max_failures: 5,
            verify_failure_window: Duration::from_secs(24 * 3600),
            prompt_mode: PromptMode::Twiml,
            relay_words_per_minute: 150,
            shop_name: String::new(),
            voice: "Polly.Joanna".into(),
            language: "en-US".into(),
            languages: None,
            voices: None,
            twiml_dir: None,
            speech_dir: None,
            hold_after: Duration::from_millis(800),
            media_lead: Duration::from_millis(300),
            speech_input: true,
            sms: true,
            sms_from: None,
            bad_news: false,
            bad_news_stalled_after: Duration::from_secs(5 * 86_400),
            bad_news_repeat_within: Duration::from_secs(72 * 3600),
            return_window_days: None,
            spoken_languages: Vec::new(),
        }
    }
}

impl IvrSettings {
    /// When a caller hears bad news first.
    pub fn bad_news_policy(&self) -> BadNewsPolicy {
        BadNewsPolicy {
            on: self.bad_news,
            stalled_after: self.bad_news_stalled_after,
            repeat_within: self.bad_news_repeat_within,
        }
    }
}

/// Reaching a person: where transfers go, when people answer, the queue, voicemail, call-backs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffSettings {
    /// Where "speak with someone" goes: `queue:NAME`, `tel:+1…`, `client:NAME`, `sip:USER@HOST`
    /// (parsed into `transfer` by `validated`).
    pub transfer_to: String,
    /// TaskRouter workflow for `<Enqueue workflowSid>` (Flex); the caller's context rides as `<Task>`.
    pub taskrouter_workflow_sid: Option<String>,
    /// Where a bad-news caller is put through (parsed into `priority`); none: `transfer_to`, with
    /// TaskRouter priority when a workflow is set.
    pub priority_to: Option<String>,
    /// IANA time zone of `hours` and `holidays`.
    pub hours_timezone: String,
    /// When people answer (`always`, or e.g. `mon-fri 09:00-17:30`); outside these hours the menu
    /// is self-service only (parsed into `business_hours`).
    pub hours: String,
    /// Closed dates, `YYYY-MM-DD,…`.
    pub holidays: String,
    /// Longest a caller waits in the queue before hearing a goodbye with the opening hours.
    #[serde(with = "duration")]
    pub queue_max_wait: Duration,
    /// What a queued caller hears between announcements of their place in line.
    pub hold_music_url: String,
    /// When callers are offered voicemail (the menu in TwiML and Media Streams modes).
    pub voicemail: VoicemailOffer,
    /// The longest message `<Record>` takes (`maxLength`), 2 s to 2 min.
    #[serde(with = "duration")]
    pub voicemail_max_length: Duration,
    /// A queued caller may press 1 to be called back instead of waiting (needs the REST API).
    pub callback: bool,
    /// Calls placed for one call-back before it is shown as failed.
    pub callback_attempts: u32,
    /// The wait before a call-back that was not answered is placed again.
    #[serde(with = "duration")]
    pub callback_retry_after: Duration,
    /// Call-backs are placed with Twilio's answering-machine detection: a voicemail box hears a
    /// short message (and the attempt counts as unanswered) instead of being put through.
    pub callback_machine_detection: bool,
    /// Filled in by `validated`: `transfer_to`, parsed.
    #[serde(skip)]
    pub transfer: TransferTarget,
    /// Filled in by `validated`: `priority_to`, parsed.
    #[serde(skip)]
    pub priority: Option<TransferTarget>,
    /// Filled in by `validated`: `hours_timezone`, `hours` and `holidays`, parsed.
    #[serde(skip)]
    pub business_hours: BusinessHours,
}

impl Default for HandoffSettings {
    fn default() -> Self {
        HandoffSettings {
            transfer_to: "queue:support".into(),
            taskrouter_workflow_sid: None,
            priority_to: None,
            hours_timezone: "UTC".into(),
            hours: "always".into(),
            holidays: String::new(),
            queue_max_wait: Duration::from_secs(5 * 60),
            // Twilio's own hold music, as its queue examples play it.
            hold_music_url: "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3".into(),
            voicemail: VoicemailOffer::Off,
            // Twilio transcribes recordings of at most two minutes
            // (https://www.twilio.com/docs/voice/api/recording-transcription).
            voicemail_max_length: Duration::from_secs(2 * 60),
            callback: false,
            callback_attempts: 3,
            callback_retry_after: Duration::from_secs(2 * 60),
            callback_machine_detection: true,
            transfer: TransferTarget::Queue("support".into()),
            priority: None,
            business_hours: BusinessHours::always_open(),
        }
    }
}

/// The agents' side: the console's token and sessions, notifications of transferred calls.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Bearer token for /agent (login) and /api; none: those answer 401.
    pub agent_token: Option<Secret>,
    /// How long an agent's console session lasts after logging in.
    #[serde(with = "duration")]
    pub agent_session_ttl: Duration,
    /// Where a signed JSON notification goes for each transferred call (a helpdesk, a Slack
    /// workflow); none: nothing is sent (see `notify`).
    pub notify_url: Option<String>,
    /// The HMAC-SHA256 key that signs notifications (required with the URL).
    pub notify_secret: Option<Secret>,
    /// Attempts before a notification is dead (kept, with its last error); at least 1.
    pub notify_max_attempts: u32,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            agent_token: None,
            agent_session_ttl: Duration::from_secs(12 * 3600),
            notify_url: None,
            notify_secret: None,
            notify_max_attempts: 8,
        }
    }
}

impl AgentSettings {
    /// Where notifications go and how they are signed; none when no URL is set (`validated`
    /// refuses a URL without a secret).
    pub fn notify(&self) -> Option<NotifyTarget> {
        match (&self.notify_url, &self.notify_secret) {
            (Some(url), Some(secret)) => {
                Some(NotifyTarget { url: url.clone(), secret: secret.clone(), max_attempts: self.notify_max_attempts })
            }
            _ => None,
        }
    }
}

/// The reports and how long calls are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSettings {
    /// A call counts as resolved by orderline only if the same caller does not call again within
    /// this window.
    #[serde(with = "duration")]
    pub repeat_call_window: Duration,
    /// Calls and their events older than this are deleted (after their days are rolled up into
    /// the daily aggregates the reports read).
    #[serde(with = "duration")]
    pub retention: Duration,
    /// How often the roll-up and retention pass runs.
    #[serde(with = "duration")]
    pub retention_every: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            repeat_call_window: Duration::from_secs(72 * 3600),
            retention: Duration::from_secs(90 * 86_400),
            retention_every: Duration::from_secs(3600),
        }
    }
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
fn spoken_languages(raw: &IvrSettings) -> Result<Vec<SpokenLanguage>, ConfigError> {
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

impl Settings {
    /// Reads `orderline.toml` (or the file `ORDERLINE_CONFIG` names) and the environment over the
    /// defaults, and validates.
    pub fn load() -> Result<Settings, ConfigError> {
        let path = std::env::var("ORDERLINE_CONFIG").unwrap_or_else(|_| "orderline.toml".into());
        if std::env::var("ORDERLINE_CONFIG").is_ok() && !Path::new(&path).exists() {
            return Err(ConfigError::Invalid(format!("ORDERLINE_CONFIG names {path}, which does not exist")));
        }
        let environment = Env::prefixed("ORDERLINE_").filter(|key| !is_not_a_setting(key.as_str()));
        let standard: Vec<String> = keys().iter().filter(|k| k.standard).map(|k| k.key.to_ascii_uppercase()).collect();
        let standard: Vec<&str> = standard.iter().map(String::as_str).collect();
        Settings::default().overlaid(vec![
            (Figment::from(Toml::file(&path)), path.clone()),
            (Figment::from(environment), "the environment (ORDERLINE_…)".into()),
            (Figment::from(Env::raw().only(&standard)), "the environment".into()),
        ])
    }

    /// These settings with the `ORDERLINE_…` environment over them, but for the names in `skip`
    /// (the demo: its own values, then what the operator set); validated.
    pub fn with_environment(self, skip: &[&str]) -> Result<Settings, ConfigError> {
        let skip: Vec<String> = skip.iter().map(|s| s.to_ascii_lowercase()).collect();
        let environment = Env::prefixed("ORDERLINE_")
            .filter(move |key| !is_not_a_setting(key.as_str()) && !skip.iter().any(|s| key.as_str() == s));
        self.overlaid(vec![(Figment::from(environment), "the environment (ORDERLINE_…)".into())])
    }

    /// These settings with each source's flat keys over them, in order; a key that is not a
    /// setting fails, naming the source and the closest setting.
    fn overlaid(self, sources: Vec<(Figment, String)>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(&self));
        for (source, place) in sources {
            let flat: Dict = source.extract().map_err(|e| ConfigError::Invalid(format!("{place}: {e}")))?;
            figment = figment.merge(Serialized::defaults(by_area(flat, &place)?));
        }
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Invalid(describe(&e)))?;
        settings.validated()
    }

    /// Checks the values, alone and against each other, trims and normalises them, and fills in
    /// what follows from them (see `Settings`). Running it again changes nothing.
    pub fn validated(mut self) -> Result<Settings, ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let non_empty = |s: &Option<Secret>| s.clone().filter(|s| !s.0.trim().is_empty());
        let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);

        let server = &mut self.server;
        server.public_url = match server.public_url.trim() {
            "" => format!("http://{}", server.listen),
            url if url.starts_with("https://") || url.starts_with("http://") => url.trim_end_matches('/').to_string(),
            url => {
                return invalid(format!(
                    "ORDERLINE_PUBLIC_URL {url:?} must start with https:// (or http:// for local testing)"
                ));
            }
        };
        if !(server.database_url.starts_with("postgres://")
            || server.database_url.starts_with("postgresql://")
            || server.database_url.starts_with("sqlite:"))
        {
            return invalid(
                "DATABASE_URL must be postgres://user@host/db or sqlite://path (or sqlite::memory:)".into(),
            );
        }
        server.db_max_connections = server.db_max_connections.max(2);
        if server.webhook_max_bytes < 1024 {
            return invalid("ORDERLINE_WEBHOOK_MAX_BYTES must be at least 1024".into());
        }

        let region = self.lookup.default_region.trim().to_ascii_uppercase();
        if region.parse::<phonenumber::country::Id>().is_err() {
            return invalid(format!(
                "ORDERLINE_DEFAULT_REGION {:?} is not an ISO 3166 region code like US or GB",
                self.lookup.default_region
            ));
        }
        self.lookup.default_region = region.clone();
        self.lookup.warm_count = self.lookup.warm_count.max(0);
        self.sync.breaker_threshold = self.sync.breaker_threshold.max(1);
        self.transport = std::mem::take(&mut self.transport).checked().map_err(ConfigError::Invalid)?;

        if self.ivr.verify_max_failures == 0 {
            return invalid("ORDERLINE_VERIFY_MAX_FAILURES must be at least 1".into());
        }
        let reports = &self.reports;
        if reports.repeat_call_window.is_zero() || reports.retention_every.is_zero() {
            return invalid("ORDERLINE_REPEAT_CALL_WINDOW and ORDERLINE_RETENTION_EVERY must be longer than 0".into());
        }
        if reports.retention < reports.repeat_call_window + Duration::from_secs(2 * 86_400) {
            return invalid(format!(
                "ORDERLINE_RETENTION {:?} must be at least ORDERLINE_REPEAT_CALL_WINDOW ({:?}) plus 2 days: a day's \
                 calls are kept until the repeat window has passed and the day is rolled up",
                reports.retention, reports.repeat_call_window
            ));
        }
        if self.handoff.queue_max_wait < Duration::from_secs(10) {
            return invalid(format!(
                "ORDERLINE_QUEUE_MAX_WAIT {:?} is too short for anyone to answer: at least 10s",
                self.handoff.queue_max_wait
            ));
        }

        let ivr = &mut self.ivr;
        let languages = spoken_languages(ivr)?;
        if ivr.prompt_mode == PromptMode::MediaStream
            && let Some(other) = languages.iter().find(|l| l.language != crate::domain::Language::En)
        {
            return invalid(format!(
                "ORDERLINE_PROMPT_MODE=media_stream with ORDERLINE_LANGUAGES {:?}: the Media Streams recordings \
                 (speech/) cover en-US only; use ORDERLINE_PROMPT_MODE=twiml for {}",
                languages.iter().map(|l| l.tag.as_str()).collect::<Vec<_>>().join(","),
                other.tag
            ));
        }
        ivr.voice = languages[0].voice.clone();
        ivr.language = languages[0].tag.clone();
        ivr.spoken_languages = languages;
        if ivr.media_lead > Duration::from_secs(2) {
            return invalid(format!(
                "ORDERLINE_MEDIA_LEAD {:?}: at most 2s (a caller who presses a key must not wait for queued audio)",
                ivr.media_lead
            ));
        }
        ivr.relay_words_per_minute = ivr.relay_words_per_minute.max(1);
        ivr.return_window_days = ivr.return_window_days.filter(|d| *d > 0);
        ivr.twiml_dir = ivr.twiml_dir.take().filter(|d| !d.as_os_str().to_string_lossy().trim().is_empty());
        if let Some(dir) = &ivr.twiml_dir
            && !dir.is_dir()
        {
            return invalid(format!("ORDERLINE_TWIML_DIR {} is not a folder", dir.display()));
        }
        ivr.speech_dir = ivr.speech_dir.take().filter(|d| !d.as_os_str().to_string_lossy().trim().is_empty());
        if let Some(dir) = &ivr.speech_dir
            && !dir.is_dir()
        {
            return invalid(format!("ORDERLINE_SPEECH_DIR {} is not a folder", dir.display()));
        }
        ivr.sms_from = match text(&ivr.sms_from) {
            Some(from) => match crate::domain::PhoneNumber::parse(&from, Some(&region)) {
                Ok(number) => Some(number.as_str().to_string()),
                Err(e) => {
                    return invalid(format!(
                        "ORDERLINE_SMS_FROM {:?} is not a phone number ({e}): give the shop's Twilio number, E.164 (+15551234567)",
                        crate::domain::mask_phone(&from)
                    ));
                }
            },
            None => None,
        };

        let handoff = &mut self.handoff;
        handoff.hold_music_url = handoff.hold_music_url.trim().to_string();
        if !(handoff.hold_music_url.starts_with("https://") || handoff.hold_music_url.starts_with("http://")) {
            return invalid(format!(
                "ORDERLINE_HOLD_MUSIC_URL {:?} must be an http(s) URL of an audio file Twilio can <Play>",
                handoff.hold_music_url
            ));
        }
        handoff.transfer = TransferTarget::parse(&handoff.transfer_to, &region).map_err(ConfigError::Invalid)?;
        handoff.taskrouter_workflow_sid = text(&handoff.taskrouter_workflow_sid);
        if let Some(sid) = &handoff.taskrouter_workflow_sid
            && !(sid.starts_with("WW") && sid.len() == 34 && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return invalid(format!(
                "ORDERLINE_TASKROUTER_WORKFLOW_SID {sid:?} is not a workflow SID (WW followed by 32 hex digits)"
            ));
        }
        handoff.business_hours = BusinessHours::parse(&handoff.hours_timezone, &handoff.hours, &handoff.holidays)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;

        let twilio = &mut self.twilio;
        twilio.auth_token = non_empty(&twilio.auth_token);
        twilio.auth_token_previous = non_empty(&twilio.auth_token_previous);
        twilio.account_sid = text(&twilio.account_sid);
        if let Some(sid) = &twilio.account_sid
            && !(sid.starts_with("AC") && sid.len() == 34 && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return invalid(format!(
                "TWILIO_ACCOUNT_SID {sid:?} is not an account SID (AC followed by 32 hex digits; Twilio console → Account info)"
            ));
        }
        twilio.api_key = text(&twilio.api_key);
        twilio.api_secret = non_empty(&twilio.api_secret);
        twilio.api_url = twilio.api_url.trim().trim_end_matches('/').to_string();
        if !(twilio.api_url.starts_with("https://") || twilio.api_url.starts_with("http://")) {
            return invalid(format!(
                "TWILIO_API_URL {:?} must be an http(s) URL (default https://api.twilio.com)",
                twilio.api_url
            ));
        }
        twilio.phone_number = text(&twilio.phone_number);

        let shopify = &mut self.shopify;
        shopify.shop = shopify.shop.as_deref().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        if self.ivr.shop_name.trim().is_empty() {
            self.ivr.shop_name = shopify.shop.as_deref().map_or_else(|| "our store".to_string(), shop_name_of);
        }
        self.ivr.shop_name = self.ivr.shop_name.trim().to_string();
        shopify.api_url = match &shopify.api_url {
            Some(url) => Some(url.trim_end_matches('/').to_string()),
            None => shopify.shop.as_ref().map(|s| format!("https://{s}")),
        };
        shopify.access_token = non_empty(&shopify.access_token);
        shopify.client_id = text(&shopify.client_id);
        shopify.client_secret = non_empty(&shopify.client_secret);
        shopify.webhook_secret = non_empty(&shopify.webhook_secret).or_else(|| shopify.client_secret.clone());
        shopify.webhook_secret_previous = non_empty(&shopify.webhook_secret_previous);

        let handoff = &mut self.handoff;
        if !(Duration::from_secs(2)..=Duration::from_secs(120)).contains(&handoff.voicemail_max_length) {
            return invalid(format!(
                "ORDERLINE_VOICEMAIL_MAX_LENGTH {} must be between 2s and 2m (Twilio transcribes at most two minutes)",
                humantime_serde::re::humantime::format_duration(handoff.voicemail_max_length)
            ));
        }
        handoff.priority_to = text(&handoff.priority_to);
        handoff.priority = match &handoff.priority_to {
            Some(text) => Some(
                TransferTarget::parse(text, &region)
                    .map_err(|e| ConfigError::Invalid(e.replace("ORDERLINE_TRANSFER_TO", "ORDERLINE_PRIORITY_TO")))?,
            ),
            None => None,
        };
        if !(1..=10).contains(&handoff.callback_attempts) {
            return invalid(format!(
                "ORDERLINE_CALLBACK_ATTEMPTS {} must be between 1 and 10",
                handoff.callback_attempts
            ));
        }

        let agents = &mut self.agents;
        agents.agent_token = non_empty(&agents.agent_token);
        agents.notify_url = text(&agents.notify_url);
        agents.notify_secret = non_empty(&agents.notify_secret);
        agents.notify_max_attempts = agents.notify_max_attempts.max(1);
        match (&agents.notify_url, &agents.notify_secret) {
            (Some(url), _) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return invalid(format!(
                    "ORDERLINE_NOTIFY_URL {url:?} must be an http(s) URL (https:// for anything but a local receiver)"
                ));
            }
            (Some(_), None) => {
                return invalid(
                    "ORDERLINE_NOTIFY_URL is set without ORDERLINE_NOTIFY_SECRET: notifications are always signed \
                     (give a long random string and the same to the receiver)"
                        .into(),
                );
            }
            _ => {}
        }
        Ok(self)
    }

    /// What `serve` needs on top of the defaults.
    pub fn check_for_serve(&self) -> Result<(), ConfigError> {
        if self.twilio.auth_token.is_none() {
            return Err(ConfigError::Invalid(
                "TWILIO_AUTH_TOKEN is not set: serve needs it to verify that requests come from Twilio \
                 (Twilio console → Account → API keys & tokens → Auth Token)"
                    .into(),
            ));
        }
        if let Some((path, mode)) = self.ivr.prompt_mode.websocket() {
            crate::twilio::public_url::PublicUrl::new(&self.server.public_url)
                .check_stream_url(path, mode)
                .map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
}

/// One setting: its key as `orderline.toml` writes it, and where it lives in `Settings`.
struct Key {
    key: String,
    area: String,
    field: String,
    /// Also read under its standard environment name, the key upper-cased (`DATABASE_URL`).
    standard: bool,
}

/// Every setting, derived from the areas themselves (each area's fields, as `Settings::default()`
/// serialises them), so the list cannot drift from the structs. Serde's own `deny_unknown_fields`
/// on each area would name the area's field (`freshnes` in `lookup`) but cannot say which area a
/// flat key belongs to: this table routes each flat key to its area and refuses the others with
/// the closest key (`by_area`).
fn keys() -> &'static [Key] {
    static KEYS: std::sync::OnceLock<Vec<Key>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let Ok(serde_json::Value::Object(areas)) = serde_json::to_value(Settings::default()) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for (area, fields) in areas {
            let prefix = PREFIXED_AREAS.iter().find(|(a, _)| *a == area).map(|(_, p)| *p);
            for field in fields.as_object().into_iter().flat_map(|f| f.keys()) {
                let key = format!("{}{field}", prefix.unwrap_or(""));
                let standard = prefix.is_some() || key == "database_url";
                keys.push(Key { key, area: area.clone(), field: field.clone(), standard });
            }
        }
        keys
    })
}

/// A source's flat keys (`freshness`, `twilio_auth_token`) sorted into their areas
/// (`lookup.freshness`, `twilio.auth_token`); a key that is not a setting stops here.
fn by_area(flat: Dict, place: &str) -> Result<Dict, ConfigError> {
    let mut areas = Dict::new();
    for (key, value) in flat {
        let Some(found) = keys().iter().find(|k| k.key == key) else {
            return Err(ConfigError::Invalid(unknown_key(&key, place)));
        };
        let area = areas.entry(found.area.clone()).or_insert_with(|| Value::from(Dict::new()));
        if let Value::Dict(_, fields) = area {
            fields.insert(found.field.clone(), value);
        }
    }
    Ok(areas)
}

/// The environment name of a key: `ORDERLINE_FRESHNESS`, or the standard `TWILIO_AUTH_TOKEN`.
fn env_name(key: &str) -> String {
    match keys().iter().find(|k| k.key == key) {
        Some(k) if k.standard => key.to_ascii_uppercase(),
        _ => format!("ORDERLINE_{}", key.to_ascii_uppercase()),
    }
}

/// A value that did not parse, named as the operator wrote it: `ORDERLINE_FRESHNESS "soon": …`.
fn describe(error: &figment::Error) -> String {
    let name = match error.path.as_slice() {
        [.., area, field] => {
            let prefix = PREFIXED_AREAS.iter().find(|(a, _)| a == area).map_or("", |(_, p)| *p);
            env_name(&format!("{prefix}{field}").to_ascii_lowercase())
        }
        _ => "a setting".to_string(),
    };
    format!("{name}: {}", error.kind)
}

/// Durations as people write them (`5m`, `1500ms`, `1h 30m`), through humantime-serde.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(duration, s)
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
        humantime_serde::re::humantime::parse_duration(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 5m, 1500ms or 24h ({e})")))
    }
}

/// `127.0.0.1:8080`, with a message saying so when it is not one.
fn socket_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:8080")))
}

/// `ORDERLINE_` names that are not settings: the config file's path, and the test suite's own.
fn is_not_a_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "config" || key.starts_with("test_")
}

fn unknown_key(key: &str, place: &str) -> String {
    let closest = keys()
        .iter()
        .map(|k| k.key.as_str())
        .min_by_key(|k| edit_distance(key, k))
        .filter(|k| edit_distance(key, k) <= 3);
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

    /// The string contract: keys and values as `orderline.toml` and the environment write them
    /// ("4" is a number, "true" a boolean), over the defaults.
    fn from_pairs<const N: usize>(pairs: [(&str, &str); N]) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        for (key, value) in pairs {
            let value: Value = value.parse().unwrap_or_else(|_| value.into());
            figment = figment.merge(Serialized::default(key, value));
        }
        Settings::default().overlaid(vec![(figment, "the settings".into())])
    }

    /// Typed settings: the defaults, changed, validated.
    fn with(change: impl FnOnce(&mut Settings)) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        change(&mut settings);
        settings.validated()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = from_pairs([]).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.server.database_url, "sqlite://orderline.db");
        assert_eq!(s.lookup.freshness, Duration::from_secs(300));
        assert_eq!(s.lookup.lookup_budget, Duration::from_millis(1500));
        assert_eq!(s.ivr.verify, VerifyPolicy::PostalCode);
        assert_eq!(s.ivr.prompt_mode, PromptMode::Twiml);
        assert!(s.check_for_serve().is_err());
    }

    #[test]
    fn validating_twice_changes_nothing() {
        let once = with(|s| {
            s.shopify.shop = Some(" Demo.myshopify.com ".into());
            s.shopify.client_secret = Some(Secret::new("shh"));
            s.ivr.languages = Some("es-US,en-US".into());
            s.ivr.voice = "Polly.Lupe".into();
        })
        .unwrap();
        let twice = once.clone().validated().unwrap();
        assert_eq!(format!("{once:?}"), format!("{twice:?}"));
    }

    #[test]
    fn malformed_values_are_named_in_the_error() {
        let err = from_pairs([("freshness", "soon")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_FRESHNESS"), "{err}");
        let err = from_pairs([("listen", "localhost")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_LISTEN"), "{err}");
        let err = from_pairs([("database_url", "mysql://x")]).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        let err = from_pairs([("verify", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_VERIFY") && err.contains("maybe") && err.contains("postal_code"), "{err}");
        let err = from_pairs([("twilio_api_url", "[1]")]).unwrap_err().to_string();
        assert!(err.contains("TWILIO_API_URL") && !err.contains("ORDERLINE_TWILIO"), "{err}");
    }

    #[test]
    fn the_client_secret_signs_webhooks_unless_a_webhook_secret_is_set() {
        let s = from_pairs([("shopify_client_id", "abc"), ("shopify_client_secret", "shh")]).unwrap();
        assert_eq!(s.shopify.client_id.as_deref(), Some("abc"));
        assert_eq!(s.shopify.webhook_secret.unwrap().expose(), "shh");
        let s = from_pairs([("shopify_client_secret", "shh"), ("shopify_webhook_secret", "other")]).unwrap();
        assert_eq!(s.shopify.webhook_secret.unwrap().expose(), "other");
    }

    #[test]
    fn secrets_never_print() {
        let s = from_pairs([("shopify_webhook_secret", "hush")]).unwrap();
        assert!(!format!("{s:?}").contains("hush"));
        assert_eq!(s.shopify.webhook_secret.unwrap().expose(), "hush");
    }

    #[test]
    fn the_call_flow_settings_parse_and_name_their_errors() {
        let s = from_pairs([
            ("shopify_shop", "orderline-demo.myshopify.com"),
            ("transfer_to", "client:support"),
            ("hours_timezone", "America/New_York"),
            ("hours", "mon-fri 09:00-17:00"),
        ])
        .unwrap();
        assert_eq!(s.ivr.shop_name, "Orderline Demo");
        assert_eq!(s.handoff.transfer, TransferTarget::Client("support".into()));
        assert_eq!(from_pairs([]).unwrap().handoff.transfer, TransferTarget::Queue("support".into()));
        let err = from_pairs([("transfer_to", "fax:1")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TRANSFER_TO"), "{err}");
        let err = from_pairs([("taskrouter_workflow_sid", "WW1")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TASKROUTER_WORKFLOW_SID"), "{err}");
        let err = from_pairs([("hours", "mon-fry 09:00-17:00")]).unwrap_err().to_string();
        assert!(err.contains("fry"), "{err}");
        let err = from_pairs([("twiml_dir", "/no/such/folder")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_TWIML_DIR"), "{err}");
        let err = from_pairs([("speech_dir", "/no/such/folder")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_SPEECH_DIR"), "{err}");
    }

    #[test]
    fn the_twilio_transfer_and_media_settings_parse_and_name_their_errors() {
        let s = from_pairs([]).unwrap();
        assert_eq!(
            (s.handoff.queue_max_wait, s.ivr.media_lead),
            (Duration::from_secs(300), Duration::from_millis(300))
        );
        assert!(s.handoff.hold_music_url.starts_with("http://com.twilio.sounds.music"));
        let s = from_pairs([("queue_max_wait", "90s"), ("twilio_auth_token_previous", "old")]).unwrap();
        assert_eq!(s.handoff.queue_max_wait, Duration::from_secs(90));
        assert_eq!(s.twilio.auth_token_previous.as_ref().map(Secret::expose), Some("old"));
        for (key, value, named) in [
            ("queue_max_wait", "5s", "ORDERLINE_QUEUE_MAX_WAIT"),
            ("media_lead", "3s", "ORDERLINE_MEDIA_LEAD"),
            ("hold_music_url", "music.mp3", "ORDERLINE_HOLD_MUSIC_URL"),
            ("language", "es-US", "ORDERLINE_VOICE"),
        ] {
            let err = from_pairs([(key, value)]).unwrap_err().to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        let s = from_pairs([("freshness", "1h 30m"), ("reconcile_every", "0"), ("hold_after", "250ms")]).unwrap();
        assert_eq!(s.lookup.freshness, Duration::from_secs(5400));
        assert_eq!(s.sync.reconcile_every, Duration::ZERO);
        assert_eq!(s.ivr.hold_after, Duration::from_millis(250));
        let err = from_pairs([("lookup_budget", "300")]).unwrap_err().to_string();
        assert!(err.contains("ORDERLINE_LOOKUP_BUDGET") && err.contains("\"300\" is not a duration"), "{err}");
    }

    #[test]
    fn a_mistyped_key_stops_the_start_and_names_the_closest_setting() {
        let err = from_pairs([("freshnes", "5m")]).unwrap_err().to_string();
        assert!(err.contains("`freshnes`") && err.contains("did you mean `freshness` (ORDERLINE_FRESHNESS)"), "{err}");
        let err = from_pairs([("completely_unrelated", "1")]).unwrap_err().to_string();
        assert!(err.contains("not a setting") && !err.contains("did you mean"), "{err}");
        let known: Vec<&str> = keys().iter().map(|k| k.key.as_str()).collect();
        assert!(known.contains(&"reconcile_deletions_every") && known.len() > 40);
        assert_eq!(edit_distance("freshnes", "freshness"), 1);
        assert_eq!(edit_distance("verfy", "verify"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn every_key_of_today_is_a_setting_and_the_standard_names_are_the_prefixed_areas() {
        let known: Vec<&str> = keys().iter().map(|k| k.key.as_str()).collect();
        let today = [
            "listen",
            "public_url",
            "database_url",
            "twilio_auth_token",
            "twilio_auth_token_previous",
            "twilio_account_sid",
            "twilio_api_key",
            "twilio_api_secret",
            "twilio_api_url",
            "twilio_phone_number",
            "sms",
            "sms_from",
            "allow_insecure_public_url",
            "shopify_shop",
            "shopify_access_token",
            "shopify_client_id",
            "shopify_client_secret",
            "shopify_webhook_secret",
            "shopify_webhook_secret_previous",
            "shopify_api_url",
            "freshness",
            "lookup_budget",
            "agent_token",
            "verify",
            "prompt_mode",
            "log_format",
            "default_region",
            "webhook_max_bytes",
            "db_max_connections",
            "cache_max_bytes",
            "warm_count",
            "negative_ttl",
            "reconcile_every",
            "reconcile_lag",
            "reconcile_deletions_every",
            "breaker_threshold",
            "breaker_cooldown",
            "transfer_to",
            "taskrouter_workflow_sid",
            "hours_timezone",
            "hours",
            "holidays",
            "shop_name",
            "voice",
            "language",
            "languages",
            "voices",
            "twiml_dir",
            "speech_dir",
            "hold_after",
            "header_timeout",
            "idle_timeout",
            "request_timeout",
            "max_connections",
            "max_connections_per_ip",
            "max_feed_clients",
            "drain_timeout",
            "verify_max_failures",
            "verify_failure_window",
            "agent_session_ttl",
            "queue_max_wait",
            "hold_music_url",
            "media_lead",
            "speech_input",
            "relay_words_per_minute",
            "notify_url",
            "notify_secret",
            "notify_max_attempts",
            "voicemail",
            "voicemail_max_length",
            "callback",
            "callback_attempts",
            "callback_retry_after",
            "callback_machine_detection",
            "bad_news",
            "bad_news_stalled_after",
            "bad_news_repeat_within",
            "priority_to",
            "repeat_call_window",
            "retention",
            "retention_every",
            "return_window_days",
        ];
        for key in today {
            assert!(known.contains(&key), "{key} is no longer a setting");
        }
        assert_eq!(known.len(), today.len(), "one key per setting: {known:?}");
        let standard: Vec<String> = keys().iter().filter(|k| k.standard).map(|k| env_name(&k.key)).collect();
        assert_eq!(standard.len(), 15, "{standard:?}");
        assert!(standard.contains(&"TWILIO_AUTH_TOKEN".to_string()) && standard.contains(&"DATABASE_URL".to_string()));
        assert_eq!(env_name("freshness"), "ORDERLINE_FRESHNESS");
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
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn orderline_toml_takes_flat_keys_and_humantime_durations_and_refuses_a_typo() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("orderline.toml", "freshnes = \"5m\"\n")?;
            let err = Settings::load().unwrap_err().to_string();
            assert!(
                err.contains("orderline.toml: `freshnes`")
                    && err.contains("did you mean `freshness` (ORDERLINE_FRESHNESS)"),
                "{err}"
            );
            jail.create_file(
                "orderline.toml",
                "freshness = \"1m30s\"\nlookup_budget = \"500ms\"\ntwilio_auth_token = \"from-the-file\"\n\
                 max_connections = 10\nshopify_shop = \"demo.myshopify.com\"\n",
            )?;
            let s = Settings::load().unwrap();
            assert_eq!(
                (s.lookup.freshness, s.lookup.lookup_budget),
                (Duration::from_secs(90), Duration::from_millis(500))
            );
            assert_eq!(s.twilio.auth_token.as_ref().map(Secret::expose), Some("from-the-file"));
            assert_eq!(s.transport.max_connections, 10);
            assert_eq!(s.shopify.api_url.as_deref(), Some("https://demo.myshopify.com"));
            jail.set_env("TWILIO_AUTH_TOKEN", "from-the-environment");
            jail.set_env("ORDERLINE_FRESHNESS", "2m");
            let s = Settings::load().unwrap();
            assert_eq!(s.twilio.auth_token.as_ref().map(Secret::expose), Some("from-the-environment"));
            assert_eq!(s.lookup.freshness, Duration::from_secs(120));
            jail.set_env("ORDERLINE_FRESHNESS", "soon");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("ORDERLINE_FRESHNESS") && err.contains("\"soon\" is not a duration"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn api_url_defaults_to_the_shop() {
        let s = from_pairs([("shopify_shop", "Demo.myshopify.com")]).unwrap();
        assert_eq!(s.shopify.api_url.as_deref(), Some("https://demo.myshopify.com"));
    }

    #[test]
    fn the_return_window_is_the_shops_or_none() {
        assert_eq!(from_pairs([]).unwrap().ivr.return_window_days, None, "never a made-up 30 days");
        let s = from_pairs([("return_window_days", "45")]).unwrap();
        assert_eq!(s.ivr.return_window_days, Some(45));
        assert_eq!(with(|s| s.ivr.return_window_days = Some(0)).unwrap().ivr.return_window_days, None);
        let refused = from_pairs([("return_window_days", "thirty")]).unwrap_err().to_string();
        assert!(refused.contains("ORDERLINE_RETURN_WINDOW_DAYS"), "{refused}");
    }
}
