//! Agents' console sessions: each login's random token, kept only as a keyed hash, with its
//! expiry; logout deletes it. Never makes or checks a token's value (the console does).

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

impl Store {
    /// Saves a new session (by its token's hash) and removes the expired ones.
    pub async fn create_session(&self, token_hash: &str, now: Ts, expires_at: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, create(token_hash, now, expires_at))?)
    }

    /// True when a session with this hash exists and has not expired at `now`.
    pub async fn session_is_live(&self, token_hash: &str, now: Ts) -> Result<bool, StoreError> {
        Ok(on_backend!(self, is_live(token_hash, now))?)
    }

    /// Ends a session; ending one that does not exist is not an error.
    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        Ok(on_backend!(self, end(token_hash))?)
    }
}

// The SQL, in sessions/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "sessions"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/sessions/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "sessions"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/sessions/sql.rs
    pub(crate) use sql::*;
}
