//! Failed attempts counted across calls and instances: wrong postal codes per customer and per
//! calling number, wrong agent logins. Keeps only a SHA-256 of what is counted, never a number
//! or an ID; never decides what a count means (the call flow and the console do).

use sha2::{Digest, Sha256};

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// A postal code keyed to verify a caller did not match.
    PostalCode,
    /// A wrong agent token at the console's login.
    AgentLogin,
}

impl AttemptKind {
    fn as_str(self) -> &'static str {
        match self {
            AttemptKind::PostalCode => "postal_code",
            AttemptKind::AgentLogin => "agent_login",
        }
    }
}

/// The stored form of a subject ("customer:123", "number:+15551234567"): its SHA-256, in hex.
fn digest(subject: &str) -> String {
    Sha256::digest(subject.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Counts one failure against each subject at `at`, and forgets failures of the same kind
    /// older than `forget_before` (no window of that kind is longer).
    pub async fn record_failure(
        &self,
        kind: AttemptKind,
        subjects: &[String],
        at: Ts,
        forget_before: Ts,
    ) -> Result<(), StoreError> {
        let digests: Vec<String> = subjects.iter().map(|s| digest(s)).collect();
        Ok(on_backend!(self, record(kind.as_str(), &digests, at, forget_before))?)
    }

    /// The failures of `subject` at or after `since`.
    pub async fn failures_since(&self, kind: AttemptKind, subject: &str, since: Ts) -> Result<i64, StoreError> {
        Ok(on_backend!(self, count(kind.as_str(), &digest(subject), since))?)
    }
}

// The SQL, in attempts/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "attempts"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/attempts/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "attempts"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/attempts/sql.rs
    pub(crate) use sql::*;
}
