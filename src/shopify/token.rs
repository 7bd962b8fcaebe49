//! The Admin API access token: a legacy permanent token as configured, or one from the
//! client-credentials grant of a Dev Dashboard app, renewed before it expires and at once when
//! Shopify refuses it, one renewal at a time however many requests wait. Owns the grant request;
//! never logs a token or the client secret.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::config::Secret;

/// How orderline authenticates to the Admin API.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A permanent `shpat_` token from a legacy custom app (none can be created since 2026-01-01).
    Permanent(Secret),
    /// A Dev Dashboard app installed on the merchant's own store: `POST {shop}/admin/oauth/access_token`
    /// with `grant_type=client_credentials` (https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant,
    /// read 2026-12): tokens live `expires_in` seconds (24 hours).
    ClientCredentials { client_id: String, client_secret: Secret },
}

impl Credentials {
    /// What the startup line says.
    pub fn mode(&self) -> &'static str {
        match self {
            Credentials::Permanent(_) => "a permanent access token (SHOPIFY_ACCESS_TOKEN, a legacy custom app)",
            Credentials::ClientCredentials { .. } => {
                "client credentials (SHOPIFY_CLIENT_ID/SECRET): tokens from the client-credentials grant, renewed before they expire"
            }
        }
    }
}

/// A token and the renewal it came from (so a 401 renews only the token that was refused).
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    pub generation: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the client-credentials grant was refused (HTTP {0}): check SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET")]
    Refused(u16),
    #[error("the client-credentials grant failed: {0}")]
    Failed(String),
    #[error("no token before the deadline")]
    Timeout,
}

struct Current {
    token: Token,
    /// When to renew (some time before Shopify's expiry); never for a permanent token.
    renew_at: Option<Instant>,
}

pub struct Tokens {
    http: reqwest::Client,
    grant_url: String,
    credentials: Credentials,
    current: std::sync::Mutex<Option<Current>>,
    /// Held by the one renewal in flight.
    renewing: tokio::sync::Mutex<()>,
    renewals: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct Grant {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Renew when this share of the lifetime is left (at most five minutes before expiry), so a
/// request never carries a token that expires on the way.
fn renew_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

impl Tokens {
    pub fn new(http: reqwest::Client, api_url: &str, credentials: Credentials) -> Tokens {
        let current = match &credentials {
            Credentials::Permanent(secret) => {
                Some(Current { token: Token { secret: secret.clone(), generation: 0 }, renew_at: None })
            }
            Credentials::ClientCredentials { .. } => None,
        };
        Tokens {
            http,
            grant_url: format!("{}/admin/oauth/access_token", api_url.trim_end_matches('/')),
            credentials,
            current: std::sync::Mutex::new(current),
            renewing: tokio::sync::Mutex::new(()),
            renewals: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Tokens obtained from the grant so far.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn valid(&self, now: Instant) -> Option<Token> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|c| c.renew_at.is_none_or(|at| now < at)).map(|c| c.token.clone())
    }

    /// A token to send now, renewed first if it is due.
    pub async fn get(&self, deadline: Instant) -> Result<Token, TokenError> {
        if let Some(token) = self.valid(Instant::now()) {
            return Ok(token);
        }
        self.renew(None, deadline).await
    }

    /// Shopify refused `refused` (HTTP 401): renew it, unless another request already has. A
    /// permanent token cannot be renewed: `None`.
    pub async fn refused(&self, refused: &Token, deadline: Instant) -> Option<Result<Token, TokenError>> {
        match self.credentials {
            Credentials::Permanent(_) => None,
            Credentials::ClientCredentials { .. } => Some(self.renew(Some(refused.generation), deadline).await),
        }
    }

    async fn renew(&self, refused: Option<u64>, deadline: Instant) -> Result<Token, TokenError> {
        let _one = tokio::time::timeout_at(deadline, self.renewing.lock()).await.map_err(|_| TokenError::Timeout)?;
        // Someone else may have renewed while this request waited for its turn.
        {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = current.as_ref() {
                let fresh = c.renew_at.is_none_or(|at| Instant::now() < at);
                let newer = refused.is_none_or(|g| c.token.generation != g);
                if fresh && newer {
                    return Ok(c.token.clone());
                }
            }
        }
        let Credentials::ClientCredentials { client_id, client_secret } = &self.credentials else {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            return current.as_ref().map(|c| c.token.clone()).ok_or(TokenError::Refused(401));
        };
        let asked = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
        ];
        let sent = tokio::time::timeout_at(deadline, self.http.post(&self.grant_url).form(&form).send()).await;
        let response = match sent {
            Err(_) => return Err(TokenError::Timeout),
            Ok(Err(e)) => return Err(TokenError::Failed(e.without_url().to_string())),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            tracing::error!(status = status.as_u16(), "Shopify refused the client-credentials grant");
            return Err(TokenError::Refused(status.as_u16()));
        }
        let grant: Grant = match tokio::time::timeout_at(deadline, response.json()).await {
            Err(_) => return Err(TokenError::Timeout),
            Ok(Err(e)) => return Err(TokenError::Failed(e.without_url().to_string())),
            Ok(Ok(grant)) => grant,
        };
        let lifetime = Duration::from_secs(grant.expires_in.unwrap_or(24 * 3600));
        let generation = self.renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let token = Token { secret: Secret::new(grant.access_token), generation };
        let renew_at = asked + lifetime.saturating_sub(renew_margin(lifetime));
        tracing::info!(
            expires_in_s = lifetime.as_secs(),
            renewal = generation,
            "new Admin API token from the client-credentials grant"
        );
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Current { token: token.clone(), renew_at: Some(renew_at) });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_a_tenth_of_their_life_early_at_most_five_minutes() {
        assert_eq!(renew_margin(Duration::from_secs(24 * 3600)), Duration::from_secs(300));
        assert_eq!(renew_margin(Duration::from_secs(10)), Duration::from_secs(1));
    }

    #[test]
    fn the_mode_never_shows_the_secret() {
        let c = Credentials::ClientCredentials { client_id: "id".into(), client_secret: Secret::new("hush") };
        assert!(!format!("{c:?} {}", c.mode()).contains("hush"));
    }
}
