//! Stream handoffs: the TwiML a Media Streams call goes on with once its stream is closed (the
//! transfer or goodbye the session decided). One row per call, read once, by any instance.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

/// A handoff is read within a second of being written; one older than this was never asked for
/// (the caller hung up first) and is removed.
const KEEP: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What a stream's session decided, for the `<Redirect>` that follows the stream.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub call_sid: String,
    pub shop: String,
    /// The customer the call was about, so a customers/redact removes the row.
    pub customer_id: Option<i64>,
    pub twiml: String,
}

impl Store {
    /// Saves a handoff (replacing one of the same call) and removes the forgotten ones.
    pub async fn put_handoff(&self, handoff: &Handoff, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, put(handoff, now))?)
    }

    /// The call's handoff, removed as it is read; `None` when the session decided nothing.
    pub async fn take_handoff(&self, call_sid: &str) -> Result<Option<String>, StoreError> {
        Ok(on_backend!(self, take(call_sid))?)
    }
}

// The SQL, in handoffs/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "handoffs"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/handoffs/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "handoffs"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/handoffs/sql.rs
    pub(crate) use sql::*;
}
