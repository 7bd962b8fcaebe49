//! What agents and their tools see: the live console (`/agent`), its feed (`/agent/feed`), a
//! call's context (`/api/calls/{CallSid}`), the caller lookup (`/api/customers`) and the reports
//! (`/agent/reports`, `/api/reports`). Every route requires ORDERLINE_AGENT_TOKEN (bearer, or a
//! console session started with it); nothing about a caller is served without it, and a browser
//! session is honoured only from the console's origin.

pub mod api;
pub mod auth;
pub mod callbacks;
pub mod card;
pub mod console;
pub mod feed;
pub mod notify;
pub mod people;
pub mod reports;
pub mod reports_page;
pub mod summary;
pub mod voicemail;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::Settings;
use crate::lookup::CallerLookup;
use crate::store::Store;

pub use feed::AgentFeed;

/// The parts of the state the agents' side reads: the settings (the agent token, the public URL,
/// the shop), the store (sessions, call records), the clock and the caller cache (cards). Its
/// handlers take this, and ask for anything else they use (the feed, Twilio's REST API) by
/// itself, never for the whole `AppState` (axum's `FromRef` sub-states).
#[derive(Clone)]
pub struct AgentDesk {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub lookup: CallerLookup,
}

impl FromRef<AppState> for AgentDesk {
    fn from_ref(state: &AppState) -> AgentDesk {
        AgentDesk {
            settings: state.settings.clone(),
            store: state.store.clone(),
            clock: state.clock.clone(),
            lookup: state.lookup.clone(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent", get(console::page))
        .route("/agent/console.js", get(console::script))
        .route("/agent/console.css", get(console::styles))
        .route("/agent/login", post(console::login))
        .route("/agent/logout", post(console::logout))
        .route("/agent/feed", get(feed::feed))
        .route("/api/calls/{call_sid}", get(console::call))
        .route("/api/customers", get(api::customers_by_phone))
        .route("/api/callbacks", get(callbacks::list))
        .route("/api/callbacks/{call_sid}/call", post(callbacks::call_now))
        .route("/api/voicemails", get(voicemail::list))
        .route("/api/voicemails/{recording_sid}/handled", post(voicemail::handled))
        .route("/api/voicemails/{recording_sid}/audio", get(voicemail::audio))
        .route("/agent/reports", get(reports_page::page))
        .route("/agent/reports.js", get(reports_page::script))
        .route("/agent/reports.css", get(reports_page::styles))
        .route(reports_page::CHART_JS_PATH, get(reports_page::chart_js))
        .route(reports_page::CHART_JS_LICENSE_PATH, get(reports_page::chart_js_license))
        .route("/api/reports", get(reports_page::api))
        .layer(axum::middleware::map_response(console::security_headers))
}
