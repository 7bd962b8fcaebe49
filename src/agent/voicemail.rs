//! The console's voicemail list: `GET /api/voicemails` (open messages, newest first; `?all=true`
//! with handled ones), `POST /api/voicemails/{RecordingSid}/handled` (who handled it, first one
//! kept) and `GET /api/voicemails/{RecordingSid}/audio` (the recording, fetched from Twilio with
//! orderline's credentials: the browser never sees them or Twilio's URL). Same login as the console.

use axum::Json;
use axum::body::Bytes;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AgentDesk;
use super::auth::require_agent;
use super::people::{ListQuery, agent_name, full_name, require_agent_action};
use crate::domain::mask_phone;
use crate::store::{Ts, VoicemailRow};
use crate::twilio::rest::{TwilioError, TwilioRest};
use crate::twilio::voicemail::is_recording_sid;

/// How many messages one list holds.
const LIST_LIMIT: i64 = 200;

/// A message as the console and notifications show it.
#[derive(Debug, Clone, Serialize)]
pub struct VoicemailJson {
    pub recording_sid: String,
    pub call_sid: String,
    /// The caller's number (for calling back), and masked for lists on a shared screen.
    pub from: String,
    pub from_masked: String,
    /// As a string: Shopify IDs exceed what a JavaScript number holds.
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub verification: Option<String>,
    /// The order the caller heard about.
    pub order_name: Option<String>,
    /// Why voicemail was offered: `closed`, `asked`, `unanswered`, `queue_left`.
    pub reason: Option<String>,
    pub duration_s: i32,
    /// Twilio's transcription, when it has come (`transcription_status` `completed`).
    pub transcription: Option<String>,
    pub transcription_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub handled_at: Option<DateTime<Utc>>,
    pub handled_by: Option<String>,
    /// Where the console plays it: orderline's own path, never Twilio's.
    pub audio_url: String,
}

impl From<VoicemailRow> for VoicemailJson {
    fn from(v: VoicemailRow) -> Self {
        let name = full_name(v.first_name.as_deref(), v.last_name.as_deref());
        VoicemailJson {
            audio_url: format!("/api/voicemails/{}/audio", v.recording_sid),
            recording_sid: v.recording_sid,
            call_sid: v.call_sid,
            from_masked: mask_phone(&v.from_number),
            from: v.from_number,
            customer_id: v.customer_id.map(|id| id.to_string()),
            customer_name: name,
            verification: v.verification,
            order_name: v.order_name,
            reason: v.reason,
            duration_s: v.duration_s,
            transcription: v.transcription,
            transcription_status: v.transcription_status,
            created_at: v.created_at.0,
            handled_at: v.handled_at.map(|t| t.0),
            handled_by: v.handled_by,
        }
    }
}

/// The card's and the notification's line for a message.
pub fn sentence(v: &VoicemailJson) -> String {
    let words = match (&v.transcription, v.transcription_status.as_deref()) {
        (Some(text), _) => format!(": \u{201c}{text}\u{201d}"),
        (None, Some("failed")) => " (Twilio could not transcribe it)".to_string(),
        (None, _) => " (transcription pending)".to_string(),
    };
    let handled = v.handled_by.as_deref().map(|by| format!("; handled by {by}")).unwrap_or_default();
    format!("Left a voicemail ({} s){words}{handled}", v.duration_s)
}

pub async fn list(State(desk): State<AgentDesk>, headers: HeaderMap, Query(query): Query<ListQuery>) -> Response {
    if let Err(refused) = require_agent(&desk, &headers).await {
        return refused.into_response();
    }
    let all = query.all();
    let shop = desk.settings.shopify.shop.clone().unwrap_or_default();
    match desk.store.voicemails(&shop, all, LIST_LIMIT).await {
        Ok(rows) => Json(rows.into_iter().map(VoicemailJson::from).collect::<Vec<_>>()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "voicemails unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}

pub async fn handled(
    State(desk): State<AgentDesk>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(refused) = require_agent_action(&desk, &headers).await {
        return refused;
    }
    if !is_recording_sid(&sid) {
        return (StatusCode::NOT_FOUND, "no such voicemail\n").into_response();
    }
    let by = match agent_name(&body) {
        Ok(by) => by,
        Err(refused) => return refused.into_response(),
    };
    match desk.store.voicemail_handled(&sid, &by, Ts::from(desk.clock.now())).await {
        Ok(Some(row)) => Json(VoicemailJson::from(row)).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such voicemail\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not mark a voicemail handled");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}

/// The recording's audio, fetched from Twilio's REST API (WAV, as Twilio serves it by default).
pub async fn audio(
    State(desk): State<AgentDesk>,
    State(twilio_rest): State<Option<Arc<TwilioRest>>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Response {
    if let Err(refused) = require_agent(&desk, &headers).await {
        return refused.into_response();
    }
    if !is_recording_sid(&sid) {
        return (StatusCode::NOT_FOUND, "no such voicemail\n").into_response();
    }
    match desk.store.voicemail(&sid).await {
        Ok(Some(_)) => {}
        Ok(None) => return (StatusCode::NOT_FOUND, "no such voicemail\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "voicemail unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response();
        }
    }
    let Some(rest) = &twilio_rest else {
        let why = "recordings are played through Twilio's REST API: set TWILIO_ACCOUNT_SID with a key or the auth token
";
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    };
    match rest.recording_audio(&sid).await {
        Ok(audio) => (
            [(header::CONTENT_TYPE, audio.content_type), (header::CACHE_CONTROL, "private, max-age=3600".to_string())],
            audio.bytes,
        )
            .into_response(),
        Err(TwilioError::NotFound(_)) => {
            (StatusCode::NOT_FOUND, "Twilio no longer has this recording\n").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not fetch a recording from Twilio");
            (StatusCode::BAD_GATEWAY, "Twilio did not hand over the recording; try again\n").into_response()
        }
    }
}
