//! The console's call-backs: `GET /api/callbacks` (open requests, oldest first: the order the
//! callers would have been served in; `?all=true` with connected and failed ones) and
//! `POST /api/callbacks/{CallSid}/call` (an agent places the call now; `{"by": "Sam"}`). Same
//! login as the console.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AgentDesk;
use super::auth::require_agent;
use super::people::{ListQuery, agent_name, full_name, require_agent_action};
use crate::app::AppState;
use crate::domain::mask_phone;
use crate::store::CallbackRow;
use crate::twilio::callback::{PlaceError, place};

const LIST_LIMIT: i64 = 200;

/// A call-back as the console and notifications show it.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackJson {
    /// The call that asked for it.
    pub call_sid: String,
    /// The number that called (the only one called back), and masked.
    pub to: String,
    pub to_masked: String,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    /// Why the caller was waiting for a person (the transfer reason).
    pub reason: Option<String>,
    /// Their place in line when they asked.
    pub position: Option<i32>,
    /// `requested`, `calling`, `retry`, `connected` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub placed_by: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The language the caller was hearing (`es`): the call-back speaks it; none for requests
    /// kept before orderline stored it.
    pub language: Option<String>,
    /// The language's name (`Spanish`) on a line that speaks more than one, for the console's
    /// badge: the agent who is put through learns which language to answer in.
    pub language_name: Option<String>,
}

impl From<CallbackRow> for CallbackJson {
    fn from(b: CallbackRow) -> Self {
        let name = full_name(b.first_name.as_deref(), b.last_name.as_deref());
        CallbackJson {
            call_sid: b.call_sid,
            to_masked: mask_phone(&b.to_number),
            to: b.to_number,
            customer_id: b.customer_id.map(|id| id.to_string()),
            customer_name: name,
            reason: b.reason,
            position: b.position,
            status: b.status,
            attempts: b.attempts,
            last_error: b.last_error,
            placed_by: b.placed_by,
            requested_at: b.requested_at.0,
            next_attempt_at: b.next_attempt_at.map(|t| t.0),
            language: b.language,
            language_name: None,
        }
    }
}

impl CallbackJson {
    /// Names the call-back's language when `settings` make the line speak more than one.
    fn named_on(mut self, settings: &crate::config::Settings) -> Self {
        if settings.ivr.spoken_languages.len() > 1 {
            let language = self.language.as_deref().and_then(crate::domain::Language::of_tag);
            self.language_name = language.map(|l| l.english_name().to_string());
        }
        self
    }
}

/// The card's and the notification's line for a call-back.
pub fn sentence(b: &CallbackJson) -> String {
    let place = b.position.map(|p| format!(" at place {p} in line")).unwrap_or_default();
    let state = match b.status.as_str() {
        "requested" => "waiting for an agent".to_string(),
        "calling" => format!("calling now (attempt {})", b.attempts),
        "retry" => format!("not answered, trying again (attempt {} done)", b.attempts),
        "connected" => "called back and put through".to_string(),
        "failed" => format!("failed after {} attempts", b.attempts),
        other => other.to_string(),
    };
    format!("Asked to be called back{place}: {state}")
}

pub async fn list(State(desk): State<AgentDesk>, headers: HeaderMap, Query(query): Query<ListQuery>) -> Response {
    if let Err(refused) = require_agent(&desk, &headers).await {
        return refused.into_response();
    }
    let all = query.all();
    let shop = desk.settings.shopify.shop.clone().unwrap_or_default();
    match desk.store.callbacks(&shop, all, LIST_LIMIT).await {
        Ok(rows) => {
            let named = rows.into_iter().map(|row| CallbackJson::from(row).named_on(&desk.settings));
            Json(named.collect::<Vec<_>>()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "call-backs unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}

pub async fn call_now(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(call_sid): Path<String>,
    body: Bytes,
) -> Response {
    // Placing the call runs the call path (Twilio's REST API, the call record): the whole state.
    if let Err(refused) = require_agent_action(&AgentDesk::from_ref(&state), &headers).await {
        return refused;
    }
    let by = match agent_name(&body) {
        Ok(by) => by,
        Err(refused) => return refused.into_response(),
    };
    match place(&state, &call_sid, Some(&by)).await {
        Ok(row) => Json(CallbackJson::from(row).named_on(&state.settings)).into_response(),
        Err(PlaceError::Unknown) => (StatusCode::NOT_FOUND, "no such call-back\n").into_response(),
        Err(e @ PlaceError::NotWaiting(_)) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
        Err(e @ (PlaceError::NoRestApi | PlaceError::NoFromNumber)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        Err(PlaceError::Store(e)) => {
            tracing::error!(error = %e, "could not place a call-back");
            (StatusCode::SERVICE_UNAVAILABLE, "the store did not answer\n").into_response()
        }
    }
}
