//! The SQL of `store::sms`, written once and compiled twice: as `sms::pg` and
//! `sms::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use super::super::{FINAL, NewSms, REQUESTED, SmsRow};

const COLUMNS: &str = "call_sid, order_id, kind, to_number, message_sid, status, error_code, created_at, updated_at";

pub(crate) async fn claim(conn: &mut Conn, sms: &NewSms, now: Ts) -> Result<Option<SmsRow>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO sms_messages (call_sid, order_id, kind, shop, customer_id, to_number, from_number, status,
             created_at, updated_at) VALUES ($1, $2, $9, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (call_sid, order_id, kind) DO NOTHING",
    )
    .bind(&sms.call_sid)
    .bind(sms.order_id)
    .bind(&sms.shop)
    .bind(sms.customer_id)
    .bind(&sms.to_number)
    .bind(&sms.from_number)
    .bind(REQUESTED)
    .bind(now)
    .bind(sms.kind.as_str())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM sms_messages WHERE call_sid = $1 AND order_id = $2 AND kind = $3");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&sms.call_sid)
        .bind(sms.order_id)
        .bind(sms.kind.as_str())
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn accepted(
    conn: &mut Conn,
    sms: &NewSms,
    message_sid: &str,
    status: &str,
    now: Ts,
) -> Result<(), sqlx::Error> {
    // A status callback may have come first (it names the SID Twilio just gave): keep its status.
    sqlx::query(
        "UPDATE sms_messages SET message_sid = $3,
             status = CASE WHEN status = $4 THEN $5 ELSE status END, updated_at = $6
         WHERE call_sid = $1 AND order_id = $2 AND kind = $7",
    )
    .bind(&sms.call_sid)
    .bind(sms.order_id)
    .bind(message_sid)
    .bind(REQUESTED)
    .bind(status)
    .bind(now)
    .bind(sms.kind.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn failed(conn: &mut Conn, sms: &NewSms, error_code: Option<i32>, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sms_messages SET status = 'failed', error_code = $3, updated_at = $4
         WHERE call_sid = $1 AND order_id = $2 AND kind = $5",
    )
    .bind(&sms.call_sid)
    .bind(sms.order_id)
    .bind(error_code)
    .bind(now)
    .bind(sms.kind.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn status(
    conn: &mut Conn,
    message_sid: &str,
    status: &str,
    error_code: Option<i32>,
    now: Ts,
) -> Result<Option<SmsRow>, sqlx::Error> {
    let finals = FINAL.map(|s| format!("'{s}'")).join(", ");
    let sql = format!(
        "UPDATE sms_messages SET status = $2, error_code = COALESCE($3, error_code), updated_at = $4
         WHERE message_sid = $1 AND (status NOT IN ({finals}) OR $2 IN ({finals}))"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(message_sid)
        .bind(status)
        .bind(error_code)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let sql = format!("SELECT {COLUMNS} FROM sms_messages WHERE message_sid = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(message_sid).fetch_optional(&mut *conn).await
}

pub(crate) async fn of_call(conn: &mut Conn, call_sid: &str) -> Result<Vec<SmsRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sms_messages WHERE call_sid = $1 ORDER BY created_at, order_id, kind");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_all(&mut *conn).await
}
