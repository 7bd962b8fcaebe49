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

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub use feed::AgentFeed;

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
