//! The Admin GraphQL endpoint: token check, injected faults, Shopify's cost-based leaky bucket,
//! and the answers to orderline's four operations.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::store::{Term, decode_cursor, parse_search};
use super::{Failure, Inner, ShopifySim, lock};
use crate::shopify::graphql::{
    CustomersData, ErrorExtensions, Extensions, GqlCustomer, GqlOrder, GraphqlError, GraphqlRequest, GraphqlResponse,
    Nodes, Operation, OrdersData, PAGE_SIZE, PageInfo, QueryCost, ThrottleStatus,
};
use crate::shopify::payload::ShopifyOrder;

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
    Router::new().route("/admin/api/{version}/graphql.json", post(graphql)).with_state(ServerState { sim, closing })
}

/// Resolves when the server is told to stop (never, if its handle is gone without stopping it).
pub(crate) async fn closed(mut closing: watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
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
            extensions: code.map(|code| ErrorExtensions { code: Some(code.into()) }),
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

/// The operation named by `operationName`, else by the document's `query Name(` prefix.
fn operation_name(request: &GraphqlRequest) -> Option<String> {
    if let Some(name) = request.operation_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let rest = request.query.trim_start().strip_prefix("query")?.trim_start();
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

fn answer(sim: &Inner, version: &str, headers: &HeaderMap, body: &[u8]) -> (Response, Wait) {
    let request: Option<GraphqlRequest> = serde_json::from_slice(body).ok();
    let name = request.as_ref().and_then(operation_name);
    let op = name.as_deref().and_then(Operation::parse);
    if let Some(op) = op {
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
    if token != Some(sim.config.access_token.as_str()) {
        let message = "[API] Invalid API key or access token (unrecognized login or wrong password)";
        return (plain(StatusCode::UNAUTHORIZED, message), wait);
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
        Failure::Timeout => return (plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"), Wait::Forever),
        Failure::GraphqlError => {
            let message = format!(
                "Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} (include this in support requests)."
            );
            let body = errors(message, Some("INTERNAL_SERVER_ERROR"), json!({ "requestId": request_id }), None);
            return (ok(body), wait);
        }
    }
    let Some(op) = op else {
        let supported: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        let message =
            format!("Unknown operation {:?}: the emulator answers {}", name.unwrap_or_default(), supported.join(", "));
        return (ok(errors(message, None, Value::Null, None)), wait);
    };
    (ok(run(sim, op, &request)), wait)
}

/// Charges the bucket, answers the operation, refunds what it did not cost.
fn run(sim: &Inner, op: Operation, request: &GraphqlRequest) -> Value {
    let variable_error = |name: &str, value: &Value| {
        let message = format!(
            "Variable ${name} of type String{} was provided invalid value",
            if name == "query" { "!" } else { "" }
        );
        errors(message, Some("INVALID_VARIABLE"), json!({ "value": value }), None)
    };
    let query = match request.variables.get("query") {
        Some(Value::String(q)) => q.clone(),
        other => return variable_error("query", other.unwrap_or(&Value::Null)),
    };
    let after = match request.variables.get("after") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if matches!(op, Operation::OrdersUpdatedSince | Operation::CustomersUpdatedSince) => {
            match decode_cursor(c) {
                Some(key) => Some(key),
                None => return errors("Invalid cursor for current pagination.".into(), None, Value::Null, None),
            }
        }
        Some(other) => return variable_error("after", other),
    };
    let terms = match parse_search(&query) {
        Ok(terms) => terms,
        Err(message) => return errors(message, None, Value::Null, None),
    };
    let customers = matches!(op, Operation::CustomersByPhone | Operation::CustomersUpdatedSince);
    if let Some(term) =
        terms.iter().find(|t| if customers { !t.applies_to_customers() } else { !t.applies_to_orders() })
    {
        let message =
            format!("the emulator cannot filter {} by {term:?}", if customers { "customers" } else { "orders" });
        return errors(message, None, Value::Null, None);
    }

    let requested = op.requested_cost();
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
        return errors(message, Some("MAX_COST_EXCEEDED"), extra, None);
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
            return errors("Throttled".into(), Some("THROTTLED"), extra, Some(cost));
        }
        bucket.available -= f64::from(requested);
    }

    let (data, actual) = execute(sim, op, &terms, after);
    let actual = actual.clamp(1, requested);
    let throttle_status = {
        let mut bucket = lock(&sim.bucket);
        bucket.available = (bucket.available + f64::from(requested - actual)).min(bucket.max);
        bucket.status()
    };
    let cost = QueryCost { requested_query_cost: requested, actual_query_cost: Some(actual), throttle_status };
    let mut value = data;
    value["extensions"] = serde_json::to_value(Extensions { cost }).unwrap_or_default();
    value
}

/// 1 for the order plus 1 for each fulfilment and refund returned with it.
fn order_cost(o: &ShopifyOrder) -> u32 {
    1 + o.fulfillments.len().min(3) as u32 + o.refunds.len().min(3) as u32
}

fn execute(sim: &Inner, op: Operation, terms: &[Term], after: Option<super::store::Key>) -> (Value, u32) {
    let page = PAGE_SIZE as usize;
    match op {
        Operation::CustomersByPhone => {
            let found: Vec<_> = {
                let data = lock(&sim.data);
                let customers = data.store.search_customers(terms, 3);
                customers
                    .into_iter()
                    .map(|c| {
                        let orders = data.store.recent_orders_of(c.id, 3);
                        (c, orders)
                    })
                    .collect()
            };
            let mut cost = 0;
            let nodes = found
                .iter()
                .map(|(c, orders)| {
                    cost += 1 + orders.iter().map(order_cost).sum::<u32>();
                    let mut node = GqlCustomer::from_record(c);
                    let nodes = orders.iter().map(|o| GqlOrder::from_record(o, false)).collect();
                    node.orders = Some(Nodes { nodes, page_info: None });
                    node
                })
                .collect();
            let data = CustomersData { customers: Nodes { nodes, page_info: None } };
            (json!({ "data": data }), cost)
        }
        Operation::OrdersByName => {
            let orders = lock(&sim.data).store.search_orders(terms, 3);
            let cost = orders.iter().map(order_cost).sum();
            let nodes = orders.iter().map(|o| GqlOrder::from_record(o, true)).collect();
            let data = OrdersData { orders: Nodes { nodes, page_info: None } };
            (json!({ "data": data }), cost)
        }
        Operation::OrdersUpdatedSince => {
            let result = lock(&sim.data).store.order_page(terms, after, page);
            let cost = result.nodes.iter().map(order_cost).sum();
            let nodes = result.nodes.iter().map(|o| GqlOrder::from_record(o, true)).collect();
            let page_info = PageInfo { has_next_page: result.has_next_page, end_cursor: result.end_cursor };
            let data = OrdersData { orders: Nodes { nodes, page_info: Some(page_info) } };
            (json!({ "data": data }), cost)
        }
        Operation::CustomersUpdatedSince => {
            let result = lock(&sim.data).store.customer_page(terms, after, page);
            let cost = result.nodes.len() as u32;
            let nodes = result.nodes.iter().map(GqlCustomer::from_record).collect();
            let page_info = PageInfo { has_next_page: result.has_next_page, end_cursor: result.end_cursor };
            let data = CustomersData { customers: Nodes { nodes, page_info: Some(page_info) } };
            (json!({ "data": data }), cost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_operation_names() {
        assert!(valid_version("2025-10") && valid_version("unstable"));
        assert!(!valid_version("2025-1") && !valid_version("latest") && !valid_version("2025_10"));
        let mut request = GraphqlRequest::new(Operation::OrdersByName, json!({}));
        assert_eq!(operation_name(&request).as_deref(), Some("OrdersByName"));
        request.operation_name = None;
        assert_eq!(operation_name(&request).as_deref(), Some("OrdersByName"));
        request.query = "{ shop { name } }".into();
        assert_eq!(operation_name(&request), None);
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
