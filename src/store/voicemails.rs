//! Voicemails: one row per recording Twilio made at a `<Record>`, written by whichever of the
//! Record action and the recording status callback comes first (keyed by `RecordingSid`), then
//! its transcription, then who handled it. Never stores a recording of a second or less.

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

/// The shortest message kept: Twilio hands over a recording even when the caller said nothing
/// (a beep, a breath); one of a second or less is discarded.
pub const MIN_SECONDS: i32 = 2;

/// A message as Twilio reported it, with what the call record says of the caller.
#[derive(Debug, Clone)]
pub struct NewVoicemail {
    pub recording_sid: String,
    pub call_sid: String,
    pub shop: String,
    pub from_number: String,
    pub customer_id: Option<i64>,
    pub verification: Option<String>,
    pub order_name: Option<String>,
    pub reason: Option<String>,
    pub duration_s: i32,
    /// Twilio's `RecordingUrl`: fetched by orderline with its credentials, never by a browser.
    pub recording_url: String,
}

/// A voicemail as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VoicemailRow {
    pub recording_sid: String,
    pub call_sid: String,
    pub from_number: String,
    pub customer_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub verification: Option<String>,
    pub order_name: Option<String>,
    pub reason: Option<String>,
    pub duration_s: i32,
    pub recording_url: String,
    pub transcription: Option<String>,
    pub transcription_status: Option<String>,
    pub created_at: Ts,
    pub handled_at: Option<Ts>,
    pub handled_by: Option<String>,
}

impl Store {
    /// Stores the message (or updates its duration and URL when the other request of the pair
    /// came first). `false`: too short, nothing stored.
    pub async fn save_voicemail(&self, voicemail: &NewVoicemail, now: Ts) -> Result<bool, StoreError> {
        if voicemail.duration_s < MIN_SECONDS {
            return Ok(false);
        }
        on_backend!(self, save(voicemail, now))?;
        Ok(true)
    }

    /// Twilio's transcription of a stored message: `None` when no message has this recording.
    pub async fn voicemail_transcription(
        &self,
        recording_sid: &str,
        text: Option<&str>,
        status: &str,
    ) -> Result<Option<VoicemailRow>, StoreError> {
        Ok(on_backend!(self, transcription(recording_sid, text, status))?)
    }

    /// The shop's messages, newest first: open ones only unless `handled_too`.
    pub async fn voicemails(&self, shop: &str, handled_too: bool, limit: i64) -> Result<Vec<VoicemailRow>, StoreError> {
        Ok(on_backend!(self, list(shop, handled_too, limit))?)
    }

    pub async fn voicemail(&self, recording_sid: &str) -> Result<Option<VoicemailRow>, StoreError> {
        Ok(on_backend!(self, one(recording_sid))?)
    }

    /// Marks the message handled by `by`; the first to do so is kept. `None`: no such message.
    pub async fn voicemail_handled(
        &self,
        recording_sid: &str,
        by: &str,
        now: Ts,
    ) -> Result<Option<VoicemailRow>, StoreError> {
        Ok(on_backend!(self, handled(recording_sid, by, now))?)
    }

    /// Recordings of messages left before `before` that Twilio still holds (retention).
    pub async fn voicemail_recordings_before(&self, shop: &str, before: Ts) -> Result<Vec<String>, StoreError> {
        Ok(on_backend!(self, recordings_before(shop, before))?)
    }

    /// Twilio no longer holds the message's recording (deleted by retention).
    pub async fn voicemail_recording_deleted(&self, recording_sid: &str) -> Result<(), StoreError> {
        Ok(on_backend!(self, recording_deleted(recording_sid))?)
    }

    /// The messages left during one call (the card shows them).
    pub async fn voicemails_of_call(&self, call_sid: &str) -> Result<Vec<VoicemailRow>, StoreError> {
        Ok(on_backend!(self, of_call(call_sid))?)
    }
}

for_each_backend! {
    use super::{NewVoicemail, VoicemailRow};

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

    pub(crate) async fn list(conn: &mut Conn, shop: &str, handled_too: bool, limit: i64) -> Result<Vec<VoicemailRow>, sqlx::Error> {
        let sql = format!(
            "{SELECT} WHERE v.shop = $1 AND ($2 OR v.handled_at IS NULL) ORDER BY v.created_at DESC, v.recording_sid LIMIT $3"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(shop).bind(handled_too).bind(limit).fetch_all(&mut *conn).await
    }

    pub(crate) async fn one(conn: &mut Conn, recording_sid: &str) -> Result<Option<VoicemailRow>, sqlx::Error> {
        let sql = format!("{SELECT} WHERE v.recording_sid = $1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(recording_sid).fetch_optional(&mut *conn).await
    }

    pub(crate) async fn handled(conn: &mut Conn, recording_sid: &str, by: &str, now: Ts) -> Result<Option<VoicemailRow>, sqlx::Error> {
        sqlx::query("UPDATE voicemails SET handled_at = $2, handled_by = $3 WHERE recording_sid = $1 AND handled_at IS NULL")
            .bind(recording_sid)
            .bind(now)
            .bind(by)
            .execute(&mut *conn)
            .await?;
        one(conn, recording_sid).await
    }

    pub(crate) async fn recordings_before(conn: &mut Conn, shop: &str, before: Ts) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT recording_sid FROM voicemails WHERE shop = $1 AND created_at < $2 AND recording_url <> '' ORDER BY created_at",
        )
        .bind(shop)
        .bind(before)
        .fetch_all(&mut *conn)
        .await
    }

    pub(crate) async fn recording_deleted(conn: &mut Conn, recording_sid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE voicemails SET recording_url = '' WHERE recording_sid = $1").bind(recording_sid).execute(&mut *conn).await?;
        Ok(())
    }

    pub(crate) async fn of_call(conn: &mut Conn, call_sid: &str) -> Result<Vec<VoicemailRow>, sqlx::Error> {
        let sql = format!("{SELECT} WHERE v.call_sid = $1 ORDER BY v.created_at");
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(call_sid).fetch_all(&mut *conn).await
    }
}
