//! Texts sent during calls (the tracking link, key 4; the return label, key 6): one row per
//! call, order and kind (`domain::TextKind`), claimed
//! before Twilio is asked so a second press sends nothing, then Twilio's answer and its status
//! callbacks.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};
use crate::domain::TextKind;

/// A text about to be asked of Twilio.
#[derive(Debug, Clone)]
pub struct NewSms {
    pub call_sid: String,
    pub order_id: i64,
    pub kind: TextKind,
    pub shop: String,
    pub customer_id: Option<i64>,
    /// E.164.
    pub to_number: String,
    pub from_number: Option<String>,
}

/// A text as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SmsRow {
    pub call_sid: String,
    pub order_id: i64,
    /// `TextKind`'s stored name.
    pub kind: String,
    pub to_number: String,
    pub message_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i32>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// Twilio's final message statuses: a later callback with an earlier status does not undo them
/// (callbacks may arrive out of order).
const FINAL: [&str; 5] = ["delivered", "undelivered", "failed", "read", "canceled"];

/// The status stored before Twilio has answered.
pub const REQUESTED: &str = "requested";

impl Store {
    /// Claims the text for this call and order: `None` when claimed now (send it), else the row
    /// an earlier press left (send nothing).
    pub async fn claim_sms(&self, sms: &NewSms, now: Ts) -> Result<Option<SmsRow>, StoreError> {
        Ok(on_backend!(self, claim(sms, now))?)
    }

    /// Twilio accepted the text: its SID and status.
    pub async fn sms_accepted(&self, sms: &NewSms, message_sid: &str, status: &str, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, accepted(sms, message_sid, status, now))?)
    }

    /// Twilio refused the text or never answered: failed, with Twilio's error code if it gave one.
    pub async fn sms_failed(&self, sms: &NewSms, error_code: Option<i32>, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, failed(sms, error_code, now))?)
    }

    /// A status callback: `false` when no text has this SID (nothing is written).
    pub async fn sms_status(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i32>,
        now: Ts,
    ) -> Result<Option<SmsRow>, StoreError> {
        Ok(on_backend!(self, status(message_sid, status, error_code, now))?)
    }

    /// The texts of a call, oldest first.
    pub async fn sms_of_call(&self, call_sid: &str) -> Result<Vec<SmsRow>, StoreError> {
        Ok(on_backend!(self, of_call(call_sid))?)
    }
}

for_each_backend! {
    use super::{FINAL, NewSms, REQUESTED, SmsRow};

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

    pub(crate) async fn accepted(conn: &mut Conn, sms: &NewSms, message_sid: &str, status: &str, now: Ts) -> Result<(), sqlx::Error> {
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
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(message_sid).bind(status).bind(error_code).bind(now).execute(&mut *conn).await?;
        let sql = format!("SELECT {COLUMNS} FROM sms_messages WHERE message_sid = $1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(message_sid).fetch_optional(&mut *conn).await
    }

    pub(crate) async fn of_call(conn: &mut Conn, call_sid: &str) -> Result<Vec<SmsRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM sms_messages WHERE call_sid = $1 ORDER BY created_at, order_id, kind");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_all(&mut *conn).await
    }
}
