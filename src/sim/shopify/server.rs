//! The Admin GraphQL endpoint: token check, injected faults, Shopify's cost-based leaky bucket,
//! and the answers to orderline's four operations.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Failure, Inner, ShopifySim, cost, executor, lock};
use crate::shopify::graphql::{
    ErrorExtensions, Extensions, GraphqlError, GraphqlRequest, GraphqlResponse, Operation, QueryCost, ThrottleStatus,
};
use crate::shopify::schema;

/// Shopify's limit on the requested cost of a single query, whatever the plan.
pub(crate) const SINGLE_QUERY_MAX_COST: u32 = 1000;

const RATE_LIMIT_DOCS: &str = "https://shopify.dev/api/usage/rate-limits";

/// Shopify's leaky bucket: up to `max` points, refilled continuously at `rate` points a second.
pub(crate) struct Bucket {
    max: f64,
    rate: f64,
    available: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(max: f64, rate: f64) -> Bucket {
        let max = max.max(0.0);
        Bucket { max, rate: rate.max(0.0), available: max, at: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.available = (self.available + self.rate * (now - self.at).as_secs_f64()).min(self.max);
        self.at = now;
    }

    pub(crate) fn status(&mut self) -> ThrottleStatus {
        self.refill();
        ThrottleStatus {
            maximum_available: self.max,
            currently_available: self.available.floor(),
            restore_rate: self.rate,
        }
    }
}

#[derive(Clone)]
struct ServerState {
    sim: ShopifySim,
    closing: watch::Receiver<bool>,
}

pub(crate) fn router(sim: ShopifySim, closing: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql))
        .route("/admin/oauth/access_token", post(access_token))
        .route("/bulk-results/{file}", get(bulk_result))
        .with_state(ServerState { sim, closing })
}

/// Resolves when the server is told to stop (never, if its handle is gone without stopping it).
pub(crate) async fn closed(mut closing: watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The client-credentials grant of an app made in the Dev Dashboard for the merchant's own store:
/// `POST https://{shop}/admin/oauth/access_token` with the form
/// `grant_type=client_credentials&client_id=…&client_secret=…`, answered
/// `{"access_token", "scope", "expires_in"}` (https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant,
/// read 2026-12; tokens live 24 hours). Bad credentials get the OAuth 2.0 error shape of
/// RFC 6749 §5.2 (`{"error", "error_description"}`, HTTP 400 or 401).
async fn access_token(State(state): State<ServerState>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &state.sim.inner;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let field = |name: &str| -> Option<String> {
        if json {
            let value: Value = serde_json::from_slice(&body).ok()?;
            value.get(name)?.as_str().map(str::to_string)
        } else {
            form_urlencoded::parse(&body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        }
    };
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be client_credentials");
    }
    let config = &inner.config;
    let known = field("client_id").as_deref() == Some(config.client_id.as_str())
        && field("client_secret").as_deref() == Some(config.client_secret.as_str());
    if !known {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    }
    let (token, lifetime) = inner.grant();
    axum::Json(json!({
        "access_token": token,
        "scope": config.scopes.join(","),
        "expires_in": lifetime.as_secs(),
    }))
    .into_response()
}

/// A bulk operation's result file: no Admin token, like Shopify's signed storage URL.
async fn bulk_result(State(state): State<ServerState>, Path(file): Path<String>) -> Response {
    super::bulk::download(state.sim.clone(), &file)
}

enum Wait {
    For(Duration),
    Forever,
}

async fn graphql(
    State(state): State<ServerState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &state.sim.inner;
    inner.counters.count_request();
    let (response, wait) = answer(inner, &version, &headers, &body);
    let delay = match wait {
        Wait::For(d) if d.is_zero() => return response,
        Wait::For(d) => d,
        Wait::Forever => Duration::from_secs(3600),
    };
    tokio::select! {
        _ = tokio::time::sleep(delay) => response,
        _ = closed(state.closing.clone()) => plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    }
}

fn plain(status: StatusCode, errors: &str) -> Response {
    (status, axum::Json(json!({ "errors": errors }))).into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `{"errors":[{message, extensions:{code, …extra}}], "extensions":{cost}}` without `data`.
fn errors(message: String, code: Option<&str>, extra: Value, cost: Option<QueryCost>) -> Value {
    let response = GraphqlResponse::<()> {
        data: None,
        errors: vec![GraphqlError {
            message,
            path: Vec::new(),
            extensions: code.map(|code| ErrorExtensions { code: Some(code.into()), ..ErrorExtensions::default() }),
        }],
        extensions: cost.map(|cost| Extensions { cost }),
    };
    let mut value = serde_json::to_value(&response).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("data");
        if object.get("extensions").is_some_and(Value::is_null) {
            object.remove("extensions");
        }
    }
    if let (Some(Value::Object(target)), Value::Object(extra)) = (value.pointer_mut("/errors/0/extensions"), extra) {
        target.extend(extra);
    }
    value
}

fn valid_version(version: &str) -> bool {
    let b = version.as_bytes();
    version == "unstable"
        || (b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()))
}

/// The operation named by `operationName`, else by the document's `query Name(` prefix (for the
/// counters only: what runs is decided by the validated document).
fn operation_name(request: &GraphqlRequest) -> Option<String> {
    if let Some(name) = request.operation_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let rest = request.query.trim_start().strip_prefix("query")?.trim_start();
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// The stable versions Shopify supports in December 2026 (each for at least 12 months:
/// https://shopify.dev/docs/api/usage/versioning, read 2026-12); a test can move the list on
/// ([`super::ShopifySim::set_supported_versions`]).
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] = ["2026-01", "2026-04", "2026-07", "2026-10"];

/// The version Shopify serves for a request to `asked`: itself when supported, else the oldest
/// supported one ("falls forward": a request for a version no longer supported is answered by
/// the oldest supported stable version, https://shopify.dev/docs/api/usage/versioning, read
/// 2026-12), said in `X-Shopify-API-Version`.
fn served_version<'a>(asked: &'a str, supported: &'a [String]) -> &'a str {
    if asked == "unstable" || supported.iter().any(|v| v == asked) {
        asked
    } else {
        supported.iter().min().map_or(asked, String::as_str)
    }
}

/// Shopify's 401 body for a missing, wrong or expired token.
const INVALID_TOKEN: &str = "[API] Invalid API key or access token (unrecognized login or wrong password)";

fn answer(sim: &Inner, version: &str, headers: &HeaderMap, body: &[u8]) -> (Response, Wait) {
    let request: Option<GraphqlRequest> = serde_json::from_slice(body).ok();
    if let Some(op) = request.as_ref().and_then(operation_name).as_deref().and_then(Operation::parse) {
        sim.counters.count_op(op);
    }
    let (failure, wait, error_roll, request_id) = {
        let mut knobs = lock(&sim.knobs);
        let wait = knobs.sample_latency();
        let roll = knobs.rng.unit();
        let request_id = knobs.rng.uuid();
        (knobs.failure, wait, roll, request_id)
    };
    let wait = Wait::For(wait);

    if !valid_version(version) {
        return (plain(StatusCode::NOT_FOUND, "Not Found"), wait);
    }
    let token = headers.get("x-shopify-access-token").and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| sim.token_is_valid(t)) {
        return (plain(StatusCode::UNAUTHORIZED, INVALID_TOKEN), wait);
    }
    let Some(request) = request else {
        let body = json!({ "errors": { "query": "Required parameter missing or invalid" } });
        return ((StatusCode::BAD_REQUEST, axum::Json(body)).into_response(), wait);
    };
    match failure {
        Failure::None => {}
        Failure::Http500 => return (plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"), wait),
        Failure::ErrorRate(p) if error_roll < p => {
            return (plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"), wait);
        }
        Failure::ErrorRate(_) => {}
        Failure::Http429 => {
            sim.counters.count_throttled();
            let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return (response, wait);
        }
        Failure::HttpOnce(code) => {
            lock(&sim.knobs).failure = Failure::None;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (plain(status, status.canonical_reason().unwrap_or("Error")), wait);
        }
        Failure::Http(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (plain(status, status.canonical_reason().unwrap_or("Error")), wait);
        }
        Failure::Timeout => return (plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"), Wait::Forever),
        Failure::GraphqlError => {
            let message = format!(
                "Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} (include this in support requests)."
            );
            let body = errors(message, Some("INTERNAL_SERVER_ERROR"), json!({ "requestId": request_id }), None);
            return (ok(body), wait);
        }
    }
    let supported = lock(&sim.knobs).supported_versions.clone();
    let served = served_version(version, &supported);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let (body, deprecated) = run(sim, &request, &format!("http://{host}"));
    let mut response = ok(body);
    if let Ok(value) = HeaderValue::from_str(served) {
        response.headers_mut().insert("x-shopify-api-version", value);
    }
    // Shopify flags a request that used deprecated fields with `X-Shopify-API-Deprecated-Reason`
    // (https://shopify.dev/docs/api/usage/versioning#deprecation-practices, read 2026-12); since
    // 2025-04 its value lists the deprecations it detected, `Type.field, Type.field`
    // (https://shopify.dev/changelog/graphql-return-actual-deprecation-reasons, read 2026-12).
    if !deprecated.is_empty()
        && let Ok(value) = HeaderValue::from_str(&deprecated.join(", "))
    {
        response.headers_mut().insert("x-shopify-api-deprecated-reason", value);
    }
    (response, wait)
}

/// Validates the document against Shopify's schema, charges its cost, runs it, refunds what it
/// did not cost. Also names the deprecated fields it used (`Type.field`): those the schema marks
/// and those a test deprecated since ([`super::ShopifySim::deprecate_fields`]).
fn run(sim: &Inner, request: &GraphqlRequest, base_url: &str) -> (Value, Vec<String>) {
    let document = match schema::validate(&request.query) {
        Ok(document) => document,
        Err(problems) => {
            // Shopify answers an invalid document with HTTP 200, `errors` (message, locations)
            // and no `data` (graphql-ruby's validation errors, as the Admin API returns them).
            let errors: Vec<Value> = problems
                .into_iter()
                .map(|p| {
                    let locations: Vec<Value> =
                        p.locations.iter().map(|(line, column)| json!({ "line": line, "column": column })).collect();
                    json!({ "message": p.message, "locations": locations })
                })
                .collect();
            return (json!({ "errors": errors }), Vec::new());
        }
    };
    let name = request.operation_name.as_deref().filter(|n| !n.is_empty());
    let Ok(operation) = document.operations.get(name) else {
        let message = format!("No operation named \"{}\"", name.unwrap_or_default());
        return (errors(message, None, Value::Null, None), Vec::new());
    };
    let deprecated_since = lock(&sim.knobs).deprecated_fields.clone();
    let deprecated = schema::fields_where(&document, |name, definition| {
        schema::is_deprecated(definition) || deprecated_since.iter().any(|f| f == name)
    });
    let variables = if request.variables.is_null() { json!({}) } else { request.variables.clone() };
    // Variables are checked before anything is charged; Shopify's message names the variable
    // and its type, with code INVALID_VARIABLE.
    for definition in &operation.variables {
        let value = variables.get(definition.name.as_str()).unwrap_or(&Value::Null);
        if definition.ty.is_non_null() && value.is_null() && definition.default_value.is_none() {
            let message = format!("Variable ${} of type {} was provided invalid value", definition.name, definition.ty);
            return (errors(message, Some("INVALID_VARIABLE"), json!({ "value": value }), None), deprecated);
        }
    }
    let raw: apollo_compiler::response::JsonMap =
        serde_json_bytes::from_value(serde_json_bytes::to_value(&variables).unwrap_or_default()).unwrap_or_default();
    if let Err(e) = apollo_compiler::request::coerce_variable_values(schema::admin(), operation, &raw) {
        return (errors(e.message().to_string(), Some("INVALID_VARIABLE"), Value::Null, None), deprecated);
    }

    let field_costs = lock(&sim.knobs).field_costs.clone();
    let requested = cost::requested(&document, operation, &variables, &field_costs);
    let max_cost = lock(&sim.knobs).max_query_cost;
    if let Some(max) = max_cost.filter(|max| requested > *max) {
        let message = format!(
            "Query cost is {requested}, which exceeds the single query max cost limit ({max}).\n\n\
             See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n\
             cost of a query is calculated.\n\n\
             To query larger amounts of data with fewer limits, bulk operations should be used instead.\n\
             See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
        );
        let extra = json!({ "cost": requested, "maxCost": max, "documentation": RATE_LIMIT_DOCS });
        return (errors(message, Some("MAX_COST_EXCEEDED"), extra, None), deprecated);
    }
    {
        let mut bucket = lock(&sim.bucket);
        bucket.refill();
        if bucket.available < f64::from(requested) {
            sim.counters.count_throttled();
            let cost = QueryCost {
                requested_query_cost: requested,
                actual_query_cost: None,
                throttle_status: bucket.status(),
            };
            let extra = json!({ "documentation": RATE_LIMIT_DOCS });
            return (errors("Throttled".into(), Some("THROTTLED"), extra, Some(cost)), deprecated);
        }
        bucket.available -= f64::from(requested);
    }

    let redacted = lock(&sim.knobs).redacted.clone();
    let mut answer = {
        let data = lock(&sim.data);
        let context = executor::Context {
            store: &data.store,
            redacted: &redacted,
            scopes: &sim.config.scopes,
            subscriptions: &sim.subscriptions,
            bulk: &sim.bulk,
            base_url,
        };
        executor::execute(&context, &document, operation, &variables)
    };
    let actual = cost::actual(&document, operation, &variables, &field_costs, &answer["data"]).min(requested);
    let throttle_status = {
        let mut bucket = lock(&sim.bucket);
        bucket.available = (bucket.available + f64::from(requested - actual)).min(bucket.max);
        bucket.status()
    };
    let cost = QueryCost { requested_query_cost: requested, actual_query_cost: Some(actual), throttle_status };
    answer["extensions"] = serde_json::to_value(Extensions { cost }).unwrap_or_default();
    (answer, deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_version_falls_forward_to_the_oldest_supported_one() {
        assert!(valid_version("2025-10") && valid_version("unstable"));
        assert!(!valid_version("2025-1") && !valid_version("latest") && !valid_version("2025_10"));
        let supported = SUPPORTED_VERSIONS.map(String::from);
        assert_eq!(served_version("2025-10", &supported), "2026-01");
        assert_eq!(served_version("2026-10", &supported), "2026-10");
        assert_eq!(served_version("unstable", &supported), "unstable");
        let later = ["2027-01", "2027-04", "2027-07", "2027-10"].map(String::from);
        assert_eq!(served_version("2026-10", &later), "2027-01");
    }

    #[test]
    fn the_bucket_refills_continuously_up_to_its_max() {
        let mut bucket = Bucket::new(100.0, 1000.0);
        bucket.available = 0.0;
        std::thread::sleep(Duration::from_millis(30));
        let status = bucket.status();
        assert!(status.currently_available >= 25.0, "{status:?}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(bucket.status().currently_available, 100.0);
    }
}
