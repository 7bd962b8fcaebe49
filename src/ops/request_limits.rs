//! Limits every request meets before its handler reads it: a `Content-Length` above the route's
//! body limit is answered 413 before a byte of the body is read, and a request (body included)
//! that takes longer than ORDERLINE_REQUEST_TIMEOUT is answered 408 and its connection closed.
//! Never looks at what a body says; the routes' own extractors still enforce the same limits on
//! bodies sent without a length (chunked).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::config::Settings;

/// Bodies of routes that set no limit of their own (agent login, the API's GETs) are small.
const OTHER_MAX_BODY: usize = 64 * 1024;

/// The largest body `path` accepts: the same figure its handler reads up to.
pub fn body_limit(settings: &Settings, path: &str) -> usize {
    if path == "/shopify/webhooks" {
        settings.server.webhook_max_bytes
    } else if path.starts_with("/twilio/") {
        crate::twilio::request::MAX_BODY
    } else {
        OTHER_MAX_BODY
    }
}

pub async fn enforce(State(settings): State<Arc<Settings>>, request: Request, next: Next) -> Response {
    let limit = body_limit(&settings, request.uri().path());
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        tracing::warn!(path = %request.uri().path(), announced, limit, "request body over the limit refused unread");
        return closing(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {limit} bytes\n"));
    }
    let path = request.uri().path().to_string();
    match tokio::time::timeout(settings.transport.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path = %path, "request not complete within ORDERLINE_REQUEST_TIMEOUT: 408");
            closing(StatusCode::REQUEST_TIMEOUT, "request took too long\n".into())
        }
    }
}

/// An answer after which the connection is closed (its body may be unread).
fn closing(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
