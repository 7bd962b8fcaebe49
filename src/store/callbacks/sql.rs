//! The SQL of `store::callbacks`, written once and compiled twice: as `callbacks::pg` and
//! `callbacks::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use super::super::{CallbackRow, NewCallback, status};

const SELECT: &str = "SELECT b.call_sid, b.to_number, b.from_number, b.customer_id, c.first_name, c.last_name,
        b.reason, b.position, b.status, b.attempts, b.last_error, b.outbound_sid, b.placed_by,
        b.requested_at, b.next_attempt_at, b.updated_at, b.language
    FROM callbacks b LEFT JOIN customers c ON c.shop = b.shop AND c.id = b.customer_id";

pub(crate) async fn request(
    conn: &mut Conn,
    b: &NewCallback,
    place_at: Option<Ts>,
    now: Ts,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO callbacks (call_sid, shop, to_number, from_number, customer_id, reason, position, status,
             requested_at, updated_at, next_attempt_at, language)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)
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
    .bind(&b.language)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn list(conn: &mut Conn, shop: &str, all: bool, limit: i64) -> Result<Vec<CallbackRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE b.shop = $1 AND ($2 OR b.status IN ('{}', '{}', '{}'))
         ORDER BY b.requested_at, b.call_sid LIMIT $3",
        status::REQUESTED,
        status::CALLING,
        status::RETRY
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(shop).bind(all).bind(limit).fetch_all(&mut *conn).await
}

pub(crate) async fn one(conn: &mut Conn, call_sid: &str) -> Result<Option<CallbackRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE b.call_sid = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_optional(&mut *conn).await
}

pub(crate) async fn claim(
    conn: &mut Conn,
    call_sid: &str,
    by: Option<&str>,
    now: Ts,
) -> Result<Option<CallbackRow>, sqlx::Error> {
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

pub(crate) async fn set_status(
    conn: &mut Conn,
    call_sid: &str,
    to: &str,
    now: Ts,
) -> Result<Option<CallbackRow>, sqlx::Error> {
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
