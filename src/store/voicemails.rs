//! Voicemails: one row per recording Twilio made at a `<Record>`, written by whichever of the
//! Record action and the recording status callback comes first (keyed by `RecordingSid`), then
//! its transcription, then who handled it. Never stores a recording of a second or less.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};

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

// The SQL, in voicemails/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "voicemails"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/voicemails/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "voicemails"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/voicemails/sql.rs
    pub(crate) use sql::*;
}
