//! Who may see callers: the bearer token (ORDERLINE_AGENT_TOKEN) for tools, or a console session:
//! a random token per login, kept server-side (as its hash) until it expires or the agent logs
//! out. Also says whether a browser request comes from the console's own origin. Never serves a
//! page or reads a caller.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::AgentDesk;
use crate::config::Secret;
use crate::store::Ts;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "orderline_agent";

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    NotConfigured,
    Missing,
    Wrong,
    /// A browser request from a page that is not the console (Origin is another site or port).
    ForeignOrigin,
    /// The store could not say whether the session is live.
    Unavailable,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let message = match self {
            AuthError::NotConfigured => {
                "the agent console and API are locked: set ORDERLINE_AGENT_TOKEN on the server, then send it as \
                 `Authorization: Bearer <token>` (or log in at /agent)\n"
            }
            AuthError::Missing => "send `Authorization: Bearer <ORDERLINE_AGENT_TOKEN>` (or log in at /agent)\n",
            AuthError::Wrong => "wrong agent token, or the session has ended\n",
            AuthError::ForeignOrigin => {
                return (StatusCode::FORBIDDEN, "only the console's own pages (ORDERLINE_PUBLIC_URL) may do this\n")
                    .into_response();
            }
            AuthError::Unavailable => {
                return (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response();
            }
        };
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], message).into_response()
    }
}

/// How a request proved it is an agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `Authorization: Bearer <ORDERLINE_AGENT_TOKEN>`: a tool, not a browser session.
    Bearer,
    /// The console's session cookie: a browser, so where the request comes from matters.
    Session,
}

/// A new session token: 32 random bytes, in hex.
pub fn new_session_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// What the store keeps of a session token: an HMAC-SHA256 keyed with the agent token, so the
/// store never holds a usable token and changing ORDERLINE_AGENT_TOKEN ends every session.
pub fn session_hash(agent_token: &Secret, session: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(agent_token.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(session.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts the bearer token or a live console session. A session cookie is checked first: a
/// browser that has one is a browser, whatever else it sends.
pub async fn require_agent(desk: &AgentDesk, headers: &HeaderMap) -> Result<Access, AuthError> {
    let expected = desk.settings.agents.agent_token.as_ref().ok_or(AuthError::NotConfigured)?;
    if let Some(session) = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty()) {
        let now = Ts::from(desk.clock.now());
        return match desk.store.session_is_live(&session_hash(expected, session), now).await {
            Ok(true) => Ok(Access::Session),
            Ok(false) => Err(AuthError::Wrong),
            Err(e) => {
                tracing::error!(error = %e, "agent session unreadable");
                Err(AuthError::Unavailable)
            }
        };
    }
    require_bearer(Some(expected), headers).map(|()| Access::Bearer)
}

/// The origin (`scheme://host[:port]`) of a URL, lowercased; `None` when it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())?;
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// The request's `Origin`, compared with ORDERLINE_PUBLIC_URL's: `Some(true)` ours,
/// `Some(false)` another (or `null`), `None` when the request sent none.
pub fn from_own_origin(desk: &AgentDesk, headers: &HeaderMap) -> Option<bool> {
    let given = headers.get(header::ORIGIN)?;
    let ours = origin_of(&desk.settings.server.public_url);
    Some(given.to_str().ok().and_then(origin_of).is_some_and(|given| Some(given) == ours))
}

/// For browser sessions the request must come from the console's origin; a tool with the bearer
/// token may send no `Origin`, but never a foreign one.
pub fn check_origin(desk: &AgentDesk, headers: &HeaderMap, access: Access) -> Result<(), AuthError> {
    match (from_own_origin(desk, headers), access) {
        (Some(true), _) | (None, Access::Bearer) => Ok(()),
        (Some(false), _) | (None, Access::Session) => Err(AuthError::ForeignOrigin),
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Accepts the request only with `Authorization: Bearer <token>` matching the configured token.
pub fn require_bearer(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), AuthError> {
    let expected = expected.ok_or(AuthError::NotConfigured)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AuthError::Missing)?;
    if constant_time_eq(given.trim().as_bytes(), expected.expose().as_bytes()) { Ok(()) } else { Err(AuthError::Wrong) }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let token = Secret::new("s3cret");
        assert_eq!(require_bearer(Some(&token), &headers("Bearer s3cret")), Ok(()));
        assert_eq!(require_bearer(Some(&token), &headers("Bearer s3cres")), Err(AuthError::Wrong));
        assert_eq!(require_bearer(Some(&token), &HeaderMap::new()), Err(AuthError::Missing));
        assert_eq!(require_bearer(None, &headers("Bearer s3cret")), Err(AuthError::NotConfigured));
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        assert_eq!(origin_of("https://Line.Example.com/base/path").as_deref(), Some("https://line.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_ne!(origin_of("http://127.0.0.1:8081"), origin_of("http://127.0.0.1:8080"));
        assert_eq!(origin_of("null"), None);
    }

    #[test]
    fn session_tokens_are_random_and_stored_only_as_hashes() {
        let (a, b) = (new_session_token().unwrap(), new_session_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let token = Secret::new("agent-token");
        assert_ne!(session_hash(&token, &a), a);
        assert_eq!(session_hash(&token, &a), session_hash(&token, &a));
        assert_ne!(session_hash(&token, &a), session_hash(&Secret::new("rotated"), &a), "rotation ends sessions");
    }
}
