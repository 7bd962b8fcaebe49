//! Call-backs: one row per call whose caller asked, from the queue, to be called back. Claimed
//! before each call is placed (two clicks place one call), then the outcome of each attempt:
//! answered, or retried later, or failed after the last attempt.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

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

for_each_backend! {
    use super::{CallbackRow, NewCallback, status};

    const SELECT: &str = "SELECT b.call_sid, b.to_number, b.from_number, b.customer_id, c.first_name, c.last_name,
            b.reason, b.position, b.status, b.attempts, b.last_error, b.outbound_sid, b.placed_by,
            b.requested_at, b.next_attempt_at, b.updated_at
        FROM callbacks b LEFT JOIN customers c ON c.shop = b.shop AND c.id = b.customer_id";

    pub(crate) async fn request(conn: &mut Conn, b: &NewCallback, place_at: Option<Ts>, now: Ts) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO callbacks (call_sid, shop, to_number, from_number, customer_id, reason, position, status,
                 requested_at, updated_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)
             ON CONFLICT (call_sid) DO NOTHING",
        )
        .bind(&b.call_sid)
        .bind(&b.shop)
        .bind(&b.to_number)
        .bind(&b.from_number)
        .bind(b.customer_id)
        .bind(&b.reason)
        .bind(b.position)
        .bind(status::REQUESTED)
        .bind(now)
        .bind(place_at)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn list(conn: &mut Conn, shop: &str, all: bool, limit: i64) -> Result<Vec<CallbackRow>, sqlx::Error> {
        let sql = format!(
            "{SELECT} WHERE b.shop = $1 AND ($2 OR b.status IN ('{}', '{}', '{}'))
             ORDER BY b.requested_at, b.call_sid LIMIT $3",
            status::REQUESTED, status::CALLING, status::RETRY
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(shop).bind(all).bind(limit).fetch_all(&mut *conn).await
    }

    pub(crate) async fn one(conn: &mut Conn, call_sid: &str) -> Result<Option<CallbackRow>, sqlx::Error> {
        let sql = format!("{SELECT} WHERE b.call_sid = $1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_optional(&mut *conn).await
    }

    pub(crate) async fn claim(conn: &mut Conn, call_sid: &str, by: Option<&str>, now: Ts) -> Result<Option<CallbackRow>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE callbacks SET status = $2, attempts = attempts + 1, placed_by = COALESCE($3, placed_by),
                 next_attempt_at = NULL, updated_at = $4
             WHERE call_sid = $1 AND status IN ($5, $6)",
        )
        .bind(call_sid)
        .bind(status::CALLING)
        .bind(by)
        .bind(now)
        .bind(status::REQUESTED)
        .bind(status::RETRY)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        one(conn, call_sid).await
    }

    pub(crate) async fn placed(conn: &mut Conn, call_sid: &str, outbound_sid: &str, now: Ts) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE callbacks SET outbound_sid = $2, updated_at = $3 WHERE call_sid = $1")
            .bind(call_sid)
            .bind(outbound_sid)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_status(conn: &mut Conn, call_sid: &str, to: &str, now: Ts) -> Result<Option<CallbackRow>, sqlx::Error> {
        sqlx::query("UPDATE callbacks SET status = $2, last_error = NULL, updated_at = $3 WHERE call_sid = $1")
            .bind(call_sid)
            .bind(to)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        one(conn, call_sid).await
    }

    pub(crate) async fn attempt_failed(
        conn: &mut Conn,
        call_sid: &str,
        error: &str,
        retry_at: Option<Ts>,
        now: Ts,
    ) -> Result<(), sqlx::Error> {
        let to = if retry_at.is_some() { status::RETRY } else { status::FAILED };
        // Only a call being placed fails: a late callback after an answer changes nothing.
        sqlx::query(
            "UPDATE callbacks SET status = $2, last_error = $3, next_attempt_at = $4, updated_at = $5
             WHERE call_sid = $1 AND status = $6",
        )
        .bind(call_sid)
        .bind(to)
        .bind(error)
        .bind(retry_at)
        .bind(now)
        .bind(status::CALLING)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn due(conn: &mut Conn, now: Ts, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT call_sid FROM callbacks WHERE status IN ($1, $4) AND next_attempt_at <= $2
             ORDER BY next_attempt_at LIMIT $3",
        )
            .bind(status::RETRY)
            .bind(now)
            .bind(limit)
            .bind(status::REQUESTED)
            .fetch_all(&mut *conn)
            .await
    }
}
