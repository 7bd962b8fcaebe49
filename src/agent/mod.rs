//! What agents and their tools read: for now the JSON lookup API (`GET /api/customers`).
//! Every route here requires ORDERLINE_AGENT_TOKEN; nothing about a caller is served without it.

pub mod api;
pub mod auth;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/customers", get(api::customers_by_phone))
}
