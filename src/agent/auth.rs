//! Who may see callers: the bearer token (ORDERLINE_AGENT_TOKEN) for tools, or the console's
//! session cookie, which the login form sets once the token is given. Nothing else passes.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::AppState;
use crate::config::Secret;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "orderline_agent";

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    NotConfigured,
    Missing,
    Wrong,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let message = match self {
            AuthError::NotConfigured => {
                "the agent console and API are locked: set ORDERLINE_AGENT_TOKEN on the server, then send it as \
                 `Authorization: Bearer <token>` (or log in at /agent)\n"
            }
            AuthError::Missing => "send `Authorization: Bearer <ORDERLINE_AGENT_TOKEN>` (or log in at /agent)\n",
            AuthError::Wrong => "wrong agent token\n",
        };
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], message).into_response()
    }
}

/// The session cookie's value for a token: an HMAC of a fixed label, so the cookie is not the
/// token itself and changing the token ends every session.
pub fn session_value(token: &Secret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"orderline agent console session v1");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts the bearer token or the console's session cookie.
pub fn require_agent(state: &AppState, headers: &HeaderMap) -> Result<(), AuthError> {
    let expected = state.settings.agent_token.as_ref().ok_or(AuthError::NotConfigured)?;
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        return if constant_time_eq(session.as_bytes(), session_value(expected).as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Wrong)
        };
    }
    require_bearer(Some(expected), headers)
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
}
