//! `orderline setup shopify`, `orderline setup twilio` and `orderline doctor`: plan what the
//! outside world must hold for the line to work (webhook subscriptions, the number's URLs),
//! print the difference, apply it only when the whole plan was made, and check the rest. Owns no
//! HTTP client of its own (it drives `shopify::client` and `twilio::rest`) and no SQL.

pub mod doctor;
pub mod shopify;
pub mod twilio;

use std::time::Duration;

use crate::config::Settings;

/// How long the public URL has to answer `/healthz`.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why ORDERLINE_PUBLIC_URL cannot be handed to Twilio or Shopify as it is, if it cannot:
/// Twilio and Shopify reach it from the internet, so it must be https and not a loopback,
/// private or `localhost` address, unless ORDERLINE_ALLOW_INSECURE_PUBLIC_URL says this is a
/// local setup (the demo and the emulators).
pub fn public_url_problem(settings: &Settings) -> Option<String> {
    if settings.server.allow_insecure_public_url {
        return None;
    }
    let url = &settings.server.public_url;
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some(format!(
            "ORDERLINE_PUBLIC_URL {url:?} is not a URL: set it to the https:// address Twilio and Shopify reach orderline at"
        ));
    };
    if parsed.scheme() != "https" {
        return Some(format!(
            "ORDERLINE_PUBLIC_URL {url} is not https: Shopify only delivers webhooks to https and Twilio's requests \
             would travel in clear; set ORDERLINE_PUBLIC_URL=https://… (a TLS proxy in front of orderline), or \
             ORDERLINE_ALLOW_INSECURE_PUBLIC_URL=true for a local demo against the emulators"
        ));
    }
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let local = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_unspecified() || ip.is_link_local()
        }
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Err(_) => host.is_empty() || host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local"),
    };
    local.then(|| {
        format!(
            "ORDERLINE_PUBLIC_URL {url} is a local address Twilio and Shopify cannot reach: set it to the public \
             https:// address of this instance (or ORDERLINE_ALLOW_INSECURE_PUBLIC_URL=true for a local demo)"
        )
    })
}

/// Whether `ORDERLINE_PUBLIC_URL/healthz` answers 200 (as Twilio and Shopify would reach it).
pub async fn public_url_answers(settings: &Settings) -> Result<(), String> {
    let url = format!("{}/healthz", settings.server.public_url);
    let http = reqwest::Client::builder().timeout(HEALTHZ_TIMEOUT).build().map_err(|e| format!("HTTP client: {e}"))?;
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!(
            "{url} answered HTTP {}: ORDERLINE_PUBLIC_URL must reach a running `orderline serve` (check the proxy's \
             route to it)",
            r.status().as_u16()
        )),
        Err(e) => Err(format!(
            "{url} did not answer ({}): start `orderline serve` and make ORDERLINE_PUBLIC_URL reach it before \
             pointing Twilio or Shopify at it",
            e.without_url()
        )),
    }
}

/// Both checks: the URL's form, then that it answers.
pub async fn check_public_url(settings: &Settings) -> Result<(), String> {
    if let Some(problem) = public_url_problem(settings) {
        return Err(problem);
    }
    public_url_answers(settings).await
}
