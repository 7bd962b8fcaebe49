//! The edge of every `/twilio/*` route: reads the body, checks `X-Twilio-Signature` against
//! ORDERLINE_PUBLIC_URL + path + query, and parses the parameters. A request that fails the
//! check is answered 403 and goes no further: nothing is recorded.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::public_url::PublicUrl;
use super::signature;
use crate::config::Settings;
use crate::domain::mask_phone;
use crate::ops::Metrics;

/// Twilio's bodies are small (its own limit for a response is 64 kB); anything larger is not Twilio.
pub const MAX_BODY: usize = 64 * 1024;

/// A request that Twilio signed.
#[derive(Debug, Clone)]
pub struct TwilioRequest {
    /// The path below the host, e.g. `/twilio/voice/menu`.
    pub path: String,
    /// The query string's pairs (where the call state rides).
    pub query: Vec<(String, String)>,
    /// The POST parameters.
    pub params: Vec<(String, String)>,
}

impl TwilioRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The last segment of the path: `voice`, `menu`, `status`, …
    pub fn route(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// Checking a signature needs the settings (auth tokens, public URL) and counts refusals in the
/// metrics: the extractor asks the state for those two parts only.
impl<S> FromRequest<S> for TwilioRequest
where
    S: Send + Sync,
    Arc<Settings>: FromRef<S>,
    Arc<Metrics>: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (settings, metrics) = (Arc::<Settings>::from_ref(state), Arc::<Metrics>::from_ref(state));
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let route = path.rsplit('/').next().unwrap_or("").to_string();
        let refuse = |status: StatusCode, why: &str| {
            metrics.twilio_request(&route, "forbidden", 0.0);
            (status, format!("{why}\n")).into_response()
        };
        let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "body too large for a Twilio request")),
        };
        let tokens = auth_tokens(&settings);
        if tokens.is_empty() {
            return Err(refuse(StatusCode::FORBIDDEN, "TWILIO_AUTH_TOKEN is not set"));
        }
        let Some(signature) = header_str(&parts.headers, "x-twilio-signature") else {
            tracing::warn!(path = %path, "Twilio request without X-Twilio-Signature refused");
            return Err(refuse(StatusCode::FORBIDDEN, "missing X-Twilio-Signature"));
        };
        // Under a nested prefix the router hands us the path without it; Twilio signed the URL it
        // asked for, which the original URI has.
        let original = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
        let path_and_query = original.path_and_query().map_or(path.as_str(), |pq| pq.as_str());
        let url = PublicUrl::new(&settings.server.public_url).requested(path_and_query);
        let is_json = header_str(&parts.headers, header::CONTENT_TYPE.as_str())
            .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
        let params: Vec<(String, String)> =
            if is_json { Vec::new() } else { form_urlencoded::parse(&body).into_owned().collect() };
        let valid = tokens.iter().any(|token| {
            if is_json {
                signature::verify_json(token, &url, &body, signature)
            } else {
                signature::verify(token, &url, &params, signature)
            }
        });
        if !valid {
            let from = params.iter().find(|(n, _)| n == "From").map(|(_, v)| mask_phone(v)).unwrap_or_default();
            tracing::warn!(path = %path, from = %from, "Twilio request with a wrong signature refused");
            return Err(refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature"));
        }
        let query =
            parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        Ok(TwilioRequest { path, query, params })
    }
}

/// The auth tokens a signature may be made with: the current one, and during a rotation the
/// previous one (Twilio's console promotes the secondary token to primary; requests already on
/// their way are signed with the old one: twilio.com/docs/iam/api/account#rotate-auth-token).
pub fn auth_tokens(settings: &crate::config::Settings) -> Vec<&str> {
    [settings.twilio.auth_token.as_ref(), settings.twilio.auth_token_previous.as_ref()]
        .into_iter()
        .flatten()
        .map(|t| t.expose())
        .collect()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty())
}
