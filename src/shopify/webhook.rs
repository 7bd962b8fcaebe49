//! `POST /shopify/webhooks`: verify, store durably, answer. Applying happens after the answer
//! (see `processor`), so Shopify's 5-second limit is never spent on our own work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client::ShopifyClient;
use super::intake::Intake;
use super::payload::Topic;
use super::{destructive, signature};
use crate::app::AppState;
use crate::clock::Clock;
use crate::config::Settings;
use crate::ops::Metrics;
use crate::store::{NewDelivery, Ts};

/// Longest wait for the durable store before answering 503: Shopify gives up after 5 s in all
/// and retries (shared/PROTOCOLS.md: 1 s connect, 5 s total, 8 retries over 4 h), so with the
/// body read and the answer sent this keeps every answer under 4 s. A delivery stored after its 503 is a duplicate when Shopify retries, never lost.
pub const STORE_BUDGET: Duration = Duration::from_secs(3);

/// Longest wait for Shopify's answer when a delete is confirmed (`destructive::confirm`); the
/// store then gets what is left of `STORE_BUDGET`, so the answer still comes within 4 s.
pub const CONFIRM_BUDGET: Duration = Duration::from_secs(1);

/// Why a delivery was refused, each with the status Shopify gets.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("SHOPIFY_WEBHOOK_SECRET is not set: webhooks cannot be verified")]
    NoSecret,
    #[error("missing or invalid X-Shopify-Hmac-Sha256")]
    BadSignature,
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("unreadable body: {0}")]
    Body(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("could not store the delivery; Shopify will retry: {0}")]
    Unavailable(String),
    #[error("could not confirm the delete with Shopify; Shopify will retry: {0}")]
    Unconfirmed(String),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::NoSecret | WebhookError::BadSignature => StatusCode::UNAUTHORIZED,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Body(_) | WebhookError::MissingHeader(_) => StatusCode::BAD_REQUEST,
            WebhookError::Unavailable(_) | WebhookError::Unconfirmed(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            WebhookError::NoSecret | WebhookError::BadSignature => "unauthorized",
            WebhookError::TooLarge(_) => "too_large",
            WebhookError::Body(_) | WebhookError::MissingHeader(_) => "bad_request",
            WebhookError::Unavailable(_) => "store_failed",
            WebhookError::Unconfirmed(_) => "unconfirmed",
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// What receiving a webhook uses, of the whole state (a `FromRef` sub-state): the secrets and
/// limits, the metrics, the clock, the intake queue and the Admin API (to confirm a destructive
/// topic).
#[derive(Clone)]
pub struct WebhookDesk {
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub intake: Intake,
    pub shopify: Option<Arc<ShopifyClient>>,
}

impl FromRef<AppState> for WebhookDesk {
    fn from_ref(state: &AppState) -> WebhookDesk {
        WebhookDesk {
            settings: state.settings.clone(),
            metrics: state.metrics.clone(),
            clock: state.clock.clone(),
            intake: state.intake.clone(),
            shopify: state.shopify.clone(),
        }
    }
}

pub async fn receive(
    State(state): State<WebhookDesk>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let topic_text = header(&headers, "x-shopify-topic").unwrap_or("");
    // Metric labels take known topics only, so a caller cannot grow the label set.
    let topic_label = Topic::parse(topic_text).map_or("other", |t| t.as_str());
    let result = accept(&state, &headers, body).await;
    let response = match result {
        Ok(Accepted { new, dead_letter }) => {
            let outcome = match (new, dead_letter) {
                (false, _) => "duplicate",
                (true, true) => "dead_letter",
                (true, false) => "accepted",
            };
            state.metrics.received(topic_label, outcome);
            tracing::debug!(topic = topic_text, outcome, "webhook stored");
            (StatusCode::OK, "ok\n").into_response()
        }
        Err(error) => {
            state.metrics.received(topic_label, error.outcome());
            let shop = header(&headers, "x-shopify-shop-domain").unwrap_or("-");
            tracing::warn!(topic = topic_text, shop, status = error.status().as_u16(), %error, "webhook refused");
            error.into_response()
        }
    };
    state.metrics.webhook_ack_seconds.observe(started.elapsed().as_secs_f64());
    response
}

/// What became of a verified delivery.
struct Accepted {
    /// False when a delivery with its webhook ID was already stored.
    new: bool,
    /// Stored as a dead letter, not to be applied (a destructive topic that failed its check).
    dead_letter: bool,
}

/// Verifies and stores one delivery.
async fn accept(
    state: &WebhookDesk,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, WebhookError> {
    let settings = &state.settings;
    let secret = settings.shopify.webhook_secret.as_ref().ok_or(WebhookError::NoSecret)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => WebhookError::TooLarge(settings.server.webhook_max_bytes),
        _ => WebhookError::Body(rejection.body_text()),
    })?;
    let hmac = header(headers, "x-shopify-hmac-sha256").ok_or(WebhookError::BadSignature)?;
    let mut secrets = vec![secret];
    secrets.extend(settings.shopify.webhook_secret_previous.as_ref());
    if !signature::verify(&secrets, &body, hmac) {
        return Err(WebhookError::BadSignature);
    }
    let topic = header(headers, "x-shopify-topic").ok_or(WebhookError::MissingHeader("X-Shopify-Topic"))?;
    let webhook_id =
        header(headers, "x-shopify-webhook-id").ok_or(WebhookError::MissingHeader("X-Shopify-Webhook-Id"))?;
    let shop = header(headers, "x-shopify-shop-domain").ok_or(WebhookError::MissingHeader("X-Shopify-Shop-Domain"))?;
    let triggered_at = header(headers, "x-shopify-triggered-at")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| Ts::from(t.with_timezone(&chrono::Utc)));
    let shop = shop.to_ascii_lowercase();
    let parsed = Topic::parse(topic);
    let mut refused = parsed.and_then(|t| destructive::check(t, &shop, settings.shopify.shop.as_deref(), &body).err());
    let confirming = Instant::now();
    if let (None, Some(t), Some(client)) = (&refused, parsed, &state.shopify)
        && destructive::is_destructive(t)
    {
        let deadline = tokio::time::Instant::now() + CONFIRM_BUDGET;
        refused = tokio::time::timeout(CONFIRM_BUDGET, destructive::confirm(client, t, &body, deadline))
            .await
            .unwrap_or(Err(super::client::ShopifyError::Timeout))
            .map_err(|e| WebhookError::Unconfirmed(e.to_string()))?;
    }
    let store_budget = STORE_BUDGET.saturating_sub(confirming.elapsed());
    if let Some(reason) = &refused {
        tracing::warn!(topic, webhook_id, %reason, "destructive delivery stored as a dead letter, not applied");
    }
    let dead_letter = refused.is_some();
    let (handled, customer_id, order_id) = super::writes::intake_subjects(topic, &body);
    let delivery = NewDelivery {
        shop,
        webhook_id: webhook_id.to_string(),
        event_id: header(headers, "x-shopify-event-id").map(str::to_string),
        topic: topic.to_string(),
        handled,
        customer_id,
        order_id,
        api_version: header(headers, "x-shopify-api-version").map(str::to_string),
        triggered_at,
        received_at: Ts::from(state.clock.now()),
        body: body.to_vec(),
        refused,
    };
    let new = tokio::time::timeout(store_budget, state.intake.submit(delivery))
        .await
        .map_err(|_| WebhookError::Unavailable(format!("the database did not answer within {store_budget:?}")))?
        .map_err(|e| WebhookError::Unavailable(e.to_string()))?;
    Ok(Accepted { new, dead_letter })
}
