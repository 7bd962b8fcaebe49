//! Call-backs: one row per call whose caller asked, from the queue, to be called back. Claimed
//! before each call is placed (two clicks place one call), then the outcome of each attempt:
//! answered, or retried later, or failed after the last attempt.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

/// A request as the queue takes it.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub call_sid: String,
    pub shop: String,
    /// E.164: the number that called.
    pub to_number: String,
    /// The number the caller dialled.
    pub from_number: Option<String>,
    pub customer_id: Option<i64>,
    pub reason: Option<String>,
    pub position: Option<i32>,
    /// The language the caller was hearing (a BCP 47 tag, `es-US`): the call-back speaks it.
    pub language: Option<String>,
}

/// Where a call-back stands.
pub mod status {
    /// Waiting for an agent.
    pub const REQUESTED: &str = "requested";
    /// A call is being placed or ringing.
    pub const CALLING: &str = "calling";
    /// The last call was not answered; placed again at `next_attempt_at`.
    pub const RETRY: &str = "retry";
    /// The customer answered and was put through.
    pub const CONNECTED: &str = "connected";
    /// Every attempt failed.
    pub const FAILED: &str = "failed";
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallbackRow {
    pub call_sid: String,
    pub to_number: String,
    pub from_number: Option<String>,
    pub customer_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub reason: Option<String>,
    pub position: Option<i32>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub outbound_sid: Option<String>,
    pub placed_by: Option<String>,
    pub requested_at: Ts,
    pub next_attempt_at: Option<Ts>,
    pub updated_at: Ts,
    /// The language the caller was hearing when they asked (none: the line's first).
    pub language: Option<String>,
}

impl Store {
    /// Takes the request: `false` when this call already asked (nothing changes). `place_at`:
    /// when orderline places it by itself (TaskRouter); none: when an agent clicks.
    pub async fn request_callback(
        &self,
        callback: &NewCallback,
        place_at: Option<Ts>,
        now: Ts,
    ) -> Result<bool, StoreError> {
        Ok(on_backend!(self, request(callback, place_at, now))?)
    }

    /// The shop's call-backs, oldest request first (the order callers would have been served in):
    /// open ones (requested, calling, retry) unless `all`.
    pub async fn callbacks(&self, shop: &str, all: bool, limit: i64) -> Result<Vec<CallbackRow>, StoreError> {
        Ok(on_backend!(self, list(shop, all, limit))?)
    }

    pub async fn callback(&self, call_sid: &str) -> Result<Option<CallbackRow>, StoreError> {
        Ok(on_backend!(self, one(call_sid))?)
    }

    /// Claims the next attempt (requested or retry → calling, one more attempt, `by` kept):
    /// `None` when it is not waiting for one (already calling, connected or failed).
    pub async fn claim_callback(
        &self,
        call_sid: &str,
        by: Option<&str>,
        now: Ts,
    ) -> Result<Option<CallbackRow>, StoreError> {
        Ok(on_backend!(self, claim(call_sid, by, now))?)
    }

    /// Twilio took the call: its SID.
    pub async fn callback_placed(&self, call_sid: &str, outbound_sid: &str, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, placed(call_sid, outbound_sid, now))?)
    }

    /// The customer answered.
    pub async fn callback_answered(&self, call_sid: &str, now: Ts) -> Result<Option<CallbackRow>, StoreError> {
        Ok(on_backend!(self, set_status(call_sid, super::callbacks::status::CONNECTED, now))?)
    }

    /// An attempt failed: tried again at `retry_at`, or failed for good when there is none.
    pub async fn callback_attempt_failed(
        &self,
        call_sid: &str,
        error: &str,
        retry_at: Option<Ts>,
        now: Ts,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, attempt_failed(call_sid, error, retry_at, now))?)
    }

    /// Call-backs due to be placed by orderline: retries, and (TaskRouter) requests whose turn came.
    pub async fn due_callbacks(&self, now: Ts, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_backend!(self, due(now, limit))?)
    }
}

// The SQL, in callbacks/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "callbacks"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/callbacks/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "callbacks"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/callbacks/sql.rs
    pub(crate) use sql::*;
}
