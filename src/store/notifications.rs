//! Outbound notifications waiting to be sent (`ORDERLINE_NOTIFY_URL`): one row per call and kind,
//! retried with backoff until the receiver takes it, dead after the last attempt. Holds no body:
//! the sender builds it from the call's record when it sends.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

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

for_each_backend! {
    pub(crate) async fn queue(conn: &mut Conn, call_sid: &str, kind: &str, now: Ts) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notifications (call_sid, kind, next_attempt_at, created_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (call_sid, kind) DO NOTHING",
        )
        .bind(call_sid)
        .bind(kind)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn claim(conn: &mut Conn, now: Ts, lease: Ts, limit: i64) -> Result<Vec<DueNotification>, sqlx::Error> {
        use sqlx::Connection;
        let mut tx = conn.begin().await?;
        let lock = if BACKEND == crate::store::Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let due: Vec<DueNotification> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT call_sid, kind, attempts FROM notifications
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $2{lock}"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for n in &due {
            sqlx::query("UPDATE notifications SET next_attempt_at = $3 WHERE call_sid = $1 AND kind = $2")
                .bind(&n.call_sid)
                .bind(&n.kind)
                .bind(lease)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    pub(crate) async fn delivered(conn: &mut Conn, call_sid: &str, kind: &str, now: Ts) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE notifications SET delivered_at = $3, attempts = attempts + 1, last_error = NULL
             WHERE call_sid = $1 AND kind = $2",
        )
        .bind(call_sid)
        .bind(kind)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn failed(
        conn: &mut Conn,
        call_sid: &str,
        kind: &str,
        error: &str,
        retry_at: Option<Ts>,
        now: Ts,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $3,
                    next_attempt_at = COALESCE($4, next_attempt_at),
                    dead_at = CASE WHEN $4 IS NULL THEN $5 ELSE NULL END
             WHERE call_sid = $1 AND kind = $2",
        )
        .bind(call_sid)
        .bind(kind)
        .bind(error)
        .bind(retry_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn state(conn: &mut Conn, call_sid: &str, kind: &str) -> Result<Option<NotificationState>, sqlx::Error> {
        sqlx::query_as(
            "SELECT attempts, delivered_at, dead_at, last_error FROM notifications WHERE call_sid = $1 AND kind = $2",
        )
        .bind(call_sid)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await
    }
}
