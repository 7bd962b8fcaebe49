//! Outbound notifications waiting to be sent (`ORDERLINE_NOTIFY_URL`): one row per call and kind,
//! retried with backoff until the receiver takes it, dead after the last attempt. Holds no body:
//! the sender builds it from the call's record when it sends.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

/// A notification due to be sent.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DueNotification {
    pub call_sid: String,
    pub kind: String,
    pub attempts: i32,
}

/// Where a notification is, for tests and operators.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NotificationState {
    pub attempts: i32,
    pub delivered_at: Option<Ts>,
    /// Set after the last attempt failed: it is not sent again.
    pub dead_at: Option<Ts>,
    pub last_error: Option<String>,
}

impl Store {
    /// Queues a notification; one per call and kind (a second is ignored).
    pub async fn queue_notification(&self, call_sid: &str, kind: &str, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, queue(call_sid, kind, now))?)
    }

    /// Up to `limit` notifications due at `now`, each put off until `lease` so that another
    /// instance does not send it at the same time.
    pub async fn claim_notifications(
        &self,
        now: Ts,
        lease: Ts,
        limit: i64,
    ) -> Result<Vec<DueNotification>, StoreError> {
        Ok(on_backend!(self, claim(now, lease, limit))?)
    }

    pub async fn notification_delivered(&self, call_sid: &str, kind: &str, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, delivered(call_sid, kind, now))?)
    }

    /// A failed attempt: tried again at `retry_at`, or dead (`retry_at` none) with the error kept.
    pub async fn notification_failed(
        &self,
        call_sid: &str,
        kind: &str,
        error: &str,
        retry_at: Option<Ts>,
        now: Ts,
    ) -> Result<(), StoreError> {
        Ok(on_backend!(self, failed(call_sid, kind, error, retry_at, now))?)
    }

    pub async fn notification_state(
        &self,
        call_sid: &str,
        kind: &str,
    ) -> Result<Option<NotificationState>, StoreError> {
        Ok(on_backend!(self, state(call_sid, kind))?)
    }
}

// The SQL, in notifications/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "notifications"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/notifications/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "notifications"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/notifications/sql.rs
    pub(crate) use sql::*;
}
