//! Bearer-token check for the agent API.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::Secret;

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
                "the agent API is locked: set ORDERLINE_AGENT_TOKEN and send it as `Authorization: Bearer <token>`\n"
            }
            AuthError::Missing => "send `Authorization: Bearer <ORDERLINE_AGENT_TOKEN>`\n",
            AuthError::Wrong => "wrong agent token\n",
        };
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], message).into_response()
    }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
