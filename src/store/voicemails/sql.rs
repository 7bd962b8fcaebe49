//! The SQL of `store::voicemails`, written once and compiled twice: as `voicemails::pg` and
//! `voicemails::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use super::super::{NewVoicemail, VoicemailRow};

const SELECT: &str = "SELECT v.recording_sid, v.call_sid, v.from_number, v.customer_id, c.first_name, c.last_name,
        v.verification, v.order_name, v.reason, v.duration_s, v.recording_url, v.transcription,
        v.transcription_status, v.created_at, v.handled_at, v.handled_by
    FROM voicemails v LEFT JOIN customers c ON c.shop = v.shop AND c.id = v.customer_id";

pub(crate) async fn save(conn: &mut Conn, v: &NewVoicemail, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO voicemails (recording_sid, call_sid, shop, from_number, customer_id, verification,
             order_name, reason, duration_s, recording_url, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (recording_sid) DO UPDATE SET duration_s = excluded.duration_s,
             recording_url = excluded.recording_url",
    )
    .bind(&v.recording_sid)
    .bind(&v.call_sid)
    .bind(&v.shop)
    .bind(&v.from_number)
    .bind(v.customer_id)
    .bind(&v.verification)
    .bind(&v.order_name)
    .bind(&v.reason)
    .bind(v.duration_s)
    .bind(&v.recording_url)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn transcription(
    conn: &mut Conn,
    recording_sid: &str,
    text: Option<&str>,
    status: &str,
) -> Result<Option<VoicemailRow>, sqlx::Error> {
    sqlx::query("UPDATE voicemails SET transcription = $2, transcription_status = $3 WHERE recording_sid = $1")
        .bind(recording_sid)
        .bind(text)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    one(conn, recording_sid).await
}

pub(crate) async fn list(
    conn: &mut Conn,
    shop: &str,
    handled_too: bool,
    limit: i64,
) -> Result<Vec<VoicemailRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE v.shop = $1 AND ($2 OR v.handled_at IS NULL) ORDER BY v.created_at DESC, \
         v.recording_sid LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(shop).bind(handled_too).bind(limit).fetch_all(&mut *conn).await
}

pub(crate) async fn one(conn: &mut Conn, recording_sid: &str) -> Result<Option<VoicemailRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE v.recording_sid = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(recording_sid).fetch_optional(&mut *conn).await
}

pub(crate) async fn handled(
    conn: &mut Conn,
    recording_sid: &str,
    by: &str,
    now: Ts,
) -> Result<Option<VoicemailRow>, sqlx::Error> {
    sqlx::query(
        "UPDATE voicemails SET handled_at = $2, handled_by = $3 WHERE recording_sid = $1 AND handled_at IS NULL",
    )
    .bind(recording_sid)
    .bind(now)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    one(conn, recording_sid).await
}

pub(crate) async fn recordings_before(conn: &mut Conn, shop: &str, before: Ts) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT recording_sid FROM voicemails WHERE shop = $1 AND created_at < $2 AND recording_url <> '' \
         ORDER BY created_at",
    )
    .bind(shop)
    .bind(before)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn recording_deleted(conn: &mut Conn, recording_sid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE voicemails SET recording_url = '' WHERE recording_sid = $1")
        .bind(recording_sid)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn of_call(conn: &mut Conn, call_sid: &str) -> Result<Vec<VoicemailRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE v.call_sid = $1 ORDER BY v.created_at");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_all(&mut *conn).await
}
