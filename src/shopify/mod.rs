//! Everything Shopify: webhook intake (verify → store → answer), the processor that applies
//! stored deliveries, payload types and their conversion into the store's writes (`writes`).
//! Handlers hold no SQL; the store's apply path writes.

pub mod breaker;
pub mod bulk;
pub mod client;
pub mod destructive;
pub mod graphql;
pub mod intake;
pub mod payload;
pub mod processor;
pub mod reconciler;
pub mod returns;
pub mod schema;
pub mod signature;
pub mod throttle;
pub mod token;
pub mod webhook;
pub mod writes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

use crate::app::AppState;

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new().route(WEBHOOK_PATH, post(webhook::receive)).layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Where Shopify delivers webhooks (the subscriptions `setup shopify` makes point here).
pub const WEBHOOK_PATH: &str = "/shopify/webhooks";
