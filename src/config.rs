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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The keys as written in `orderline.toml` and, uppercased, in the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    allow_insecure_public_url: bool,
    shopify_shop: Option<String>,
    shopify_access_token: Option<Secret>,
    shopify_client_id: Option<String>,
    shopify_client_secret: Option<Secret>,
    shopify_webhook_secret: Option<Secret>,
    shopify_webhook_secret_previous: Option<Secret>,
    shopify_api_url: Option<String>,
    freshness: String,
    lookup_budget: String,
    agent_token: Option<Secret>,
    verify: VerifyPolicy,
    prompt_mode: PromptMode,
    log_format: LogFormat,
    default_region: String,
    webhook_max_bytes: usize,
    db_max_connections: u32,
    cache_max_bytes: u64,
    warm_count: i64,
    negative_ttl: String,
    reconcile_every: String,
    reconcile_lag: String,
    reconcile_deletions_every: String,
    breaker_threshold: u32,
    breaker_cooldown: String,
    transfer_to: String,
    taskrouter_workflow_sid: Option<String>,
    hours_timezone: String,
    hours: String,
    holidays: String,
    shop_name: Option<String>,
    voice: String,
    language: String,
    twiml_dir: Option<String>,
    hold_after: String,
    header_timeout: String,
    idle_timeout: String,
    request_timeout: String,
    max_connections: usize,
    max_connections_per_ip: usize,
    max_feed_clients: usize,
    drain_timeout: String,
    verify_max_failures: u32,
    verify_failure_window: String,
    agent_session_ttl: String,
    queue_max_wait: String,
    hold_music_url: String,
    media_lead: String,
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
            allow_insecure_public_url: false,
            shopify_shop: None,
            shopify_access_token: None,
            shopify_client_id: None,
            shopify_client_secret: None,
            shopify_webhook_secret: None,
            shopify_webhook_secret_previous: None,
            shopify_api_url: None,
            freshness: "5m".into(),
            lookup_budget: "1500ms".into(),
            agent_token: None,
            verify: VerifyPolicy::PostalCode,
            prompt_mode: PromptMode::Twiml,
            log_format: LogFormat::Text,
            default_region: "US".into(),
            webhook_max_bytes: 2 * 1024 * 1024,
            db_max_connections: 16,
            cache_max_bytes: 512 * 1024 * 1024,
            warm_count: 100_000,
            negative_ttl: "60s".into(),
            reconcile_every: "60s".into(),
            reconcile_lag: "30s".into(),
            reconcile_deletions_every: "6h".into(),
            breaker_threshold: 5,
            breaker_cooldown: "10s".into(),
            transfer_to: "queue:support".into(),
            taskrouter_workflow_sid: None,
            hours_timezone: "UTC".into(),
            hours: "always".into(),
            holidays: String::new(),
            shop_name: None,
            voice: "Polly.Joanna".into(),
            language: "en-US".into(),
            twiml_dir: None,
            hold_after: "800ms".into(),
            header_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            request_timeout: "30s".into(),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            max_feed_clients: 64,
            drain_timeout: "30s".into(),
            verify_max_failures: 5,
            verify_failure_window: "24h".into(),
            agent_session_ttl: "12h".into(),
            queue_max_wait: "5m".into(),
            // Twilio's own hold music, as its queue examples play it.
            hold_music_url: "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3".into(),
            media_lead: "300ms".into(),
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
    /// `<Say voice>` and `<Say language>` for every template.
    pub voice: String,
    pub language: String,
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: {0}")]
    Source(#[from] Box<figment::Error>),
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
        let figment = Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(&path))
            .merge(Env::prefixed("ORDERLINE_").ignore(&["config"]))
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
        let raw: RawSettings = figment.extract().map_err(Box::new)?;
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
        let duration = |name: &str, text: &str| -> Result<Duration, ConfigError> {
            humantime::parse_duration(text.trim())
                .map_err(|e| ConfigError::Invalid(format!("{name} {text:?} is not a duration like 5m or 1500ms: {e}")))
        };
        let freshness = duration("ORDERLINE_FRESHNESS", &raw.freshness)?;
        let lookup_budget = duration("ORDERLINE_LOOKUP_BUDGET", &raw.lookup_budget)?;
        let negative_ttl = duration("ORDERLINE_NEGATIVE_TTL", &raw.negative_ttl)?;
        let reconcile_every = duration("ORDERLINE_RECONCILE_EVERY", &raw.reconcile_every)?;
        let reconcile_lag = duration("ORDERLINE_RECONCILE_LAG", &raw.reconcile_lag)?;
        let reconcile_deletions_every =
            duration("ORDERLINE_RECONCILE_DELETIONS_EVERY", &raw.reconcile_deletions_every)?;
        let breaker_cooldown = duration("ORDERLINE_BREAKER_COOLDOWN", &raw.breaker_cooldown)?;
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
        let hold_after = duration("ORDERLINE_HOLD_AFTER", &raw.hold_after)?;
        let transport = crate::ops::transport::Limits {
            header_timeout: duration("ORDERLINE_HEADER_TIMEOUT", &raw.header_timeout)?,
            idle_timeout: duration("ORDERLINE_IDLE_TIMEOUT", &raw.idle_timeout)?,
            request_timeout: duration("ORDERLINE_REQUEST_TIMEOUT", &raw.request_timeout)?,
            max_connections: raw.max_connections,
            max_connections_per_ip: raw.max_connections_per_ip,
            max_feed_clients: raw.max_feed_clients,
        }
        .checked()
        .map_err(ConfigError::Invalid)?;
        let drain_timeout = duration("ORDERLINE_DRAIN_TIMEOUT", &raw.drain_timeout)?;
        let verify_failure_window = duration("ORDERLINE_VERIFY_FAILURE_WINDOW", &raw.verify_failure_window)?;
        let agent_session_ttl = duration("ORDERLINE_AGENT_SESSION_TTL", &raw.agent_session_ttl)?;
        if raw.verify_max_failures == 0 {
            return Err(ConfigError::Invalid("ORDERLINE_VERIFY_MAX_FAILURES must be at least 1".into()));
        }
        let queue_max_wait = duration("ORDERLINE_QUEUE_MAX_WAIT", &raw.queue_max_wait)?;
        if queue_max_wait < Duration::from_secs(10) {
            return Err(ConfigError::Invalid(format!(
                "ORDERLINE_QUEUE_MAX_WAIT {:?} is too short for anyone to answer: at least 10s",
                raw.queue_max_wait
            )));
        }
        crate::twilio::voices::check(raw.voice.trim(), raw.language.trim()).map_err(ConfigError::Invalid)?;
        let media_lead = duration("ORDERLINE_MEDIA_LEAD", &raw.media_lead)?;
        if media_lead > Duration::from_secs(2) {
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
        let shop = raw.shopify_shop.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        let shop_name = raw
            .shop_name
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| shop.as_deref().map_or_else(|| "our store".to_string(), shop_name_of));
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
            freshness,
            lookup_budget,
            agent_token: non_empty(raw.agent_token),
            verify: raw.verify,
            prompt_mode: raw.prompt_mode,
            log_format: raw.log_format,
            default_region: region,
            webhook_max_bytes: raw.webhook_max_bytes,
            db_max_connections: raw.db_max_connections.max(2),
            cache_max_bytes: raw.cache_max_bytes,
            warm_count: raw.warm_count.max(0),
            negative_ttl,
            reconcile_every,
            reconcile_lag,
            reconcile_deletions_every,
            breaker_threshold: raw.breaker_threshold.max(1),
            breaker_cooldown,
            transfer_to,
            taskrouter_workflow_sid,
            hours,
            shop_name,
            voice: raw.voice.trim().to_string(),
            language: raw.language.trim().to_string(),
            twiml_dir,
            hold_after,
            transport,
            drain_timeout,
            verify_max_failures: raw.verify_max_failures,
            verify_failure_window,
            agent_session_ttl,
            queue_max_wait,
            hold_music_url,
            media_lead,
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
        if self.prompt_mode == PromptMode::MediaStream {
            crate::twilio::public_url::PublicUrl::new(&self.public_url)
                .check_stream_url(crate::twilio::media::MEDIA_PATH)
                .map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
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
        assert!(err.contains("verify"), "{err}");
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
    fn api_url_defaults_to_the_shop() {
        let s = Settings::from_pairs([("shopify_shop", "Demo.myshopify.com")]).unwrap();
        assert_eq!(s.shopify_api_url.as_deref(), Some("https://demo.myshopify.com"));
    }
}
