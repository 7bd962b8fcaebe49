//! Operations: health, readiness, metrics and logging. Owns nothing of the call or Shopify flow.

pub mod logging;
pub mod metrics;
pub mod request_limits;
pub mod retention;
pub mod transport;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use std::sync::Arc;

use crate::app::AppState;
use crate::shopify::client::ShopifyClient;
use crate::store::Store;

pub use metrics::Metrics;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers and every migration is applied. Ready but degraded (still 200): the
/// Shopify app lacks a scope, or Shopify withholds protected fields; each is a line. Unauthenticated,
/// so a failure's reason (which can quote the database's own error) goes to the log only.
async fn readyz(State(store): State<Store>, State(shopify): State<Option<Arc<ShopifyClient>>>) -> impl IntoResponse {
    let degraded = shopify.as_ref().map(|c| c.degradations()).unwrap_or_default();
    match store.readiness().await {
        Ok(()) if degraded.is_empty() => (StatusCode::OK, "ready\n".to_string()),
        Ok(()) => (StatusCode::OK, format!("ready, degraded:\n{}\n", degraded.join("\n"))),
        Err(reason) => {
            tracing::warn!(reason = %crate::domain::mask_pii(&reason), "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
        }
    }
}

async fn metrics(State(store): State<Store>, State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match store.delivery_counts().await {
        Ok(counts) => {
            let count = |status: &str| counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
            metrics.dead_letters.set(count("dead"));
            metrics.pending_deliveries.set(count("pending"));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count deliveries"),
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}
