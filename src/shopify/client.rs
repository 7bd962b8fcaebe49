//! The Admin GraphQL client: sends the operations of `graphql`, never a query its bucket
//! estimate says would be throttled, retries THROTTLED and 429 only while the caller's deadline
//! allows, and stops asking while the circuit breaker is open. No SQL here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::time::Instant;

use super::breaker::{Breaker, BreakerState};
use super::graphql::{
    self, API_VERSION, CustomersData, GraphqlRequest, GraphqlResponse, Operation, OrdersData, PageInfo,
};
use super::payload::{ShopifyCustomer, ShopifyOrder};
use super::throttle::{Admission, Bucket};
use crate::config::Secret;
use crate::ops::Metrics;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ShopifyError {
    #[error("not sent: the bucket needs {0:?} to refill, past the deadline")]
    WouldThrottle(Duration),
    #[error("throttled by Shopify until past the deadline")]
    Throttled,
    #[error("not sent: circuit breaker open after repeated failures")]
    BreakerOpen,
    #[error("no answer before the deadline")]
    Timeout,
    #[error("Shopify answered HTTP {0}")]
    Http(u16),
    #[error("transport: {0}")]
    Transport(String),
    #[error("GraphQL error: {0}")]
    Graphql(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
    #[error("the access token was refused (check SHOPIFY_ACCESS_TOKEN)")]
    Unauthorized,
}

impl ShopifyError {
    fn outcome(&self) -> &'static str {
        match self {
            ShopifyError::WouldThrottle(_) => "would_throttle",
            ShopifyError::Throttled => "throttled",
            ShopifyError::BreakerOpen => "breaker_open",
            ShopifyError::Timeout => "timeout",
            ShopifyError::Http(_) | ShopifyError::Transport(_) | ShopifyError::Graphql(_) => "error",
            ShopifyError::Decode(_) => "decode_error",
            ShopifyError::Unauthorized => "unauthorized",
        }
    }
}

/// A customer found by phone, with the recent orders Shopify returned for them.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerWithOrders {
    pub customer: ShopifyCustomer,
    pub orders: Vec<ShopifyOrder>,
}

/// One page of a reconciliation query.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://{shop}` or the emulator's URL.
    pub api_url: String,
    pub access_token: Secret,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

struct Limits {
    bucket: Bucket,
    breaker: Breaker,
}

pub struct ShopifyClient {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    limits: Mutex<Limits>,
    /// Held by the one request sent while the bucket is still unknown.
    probe: tokio::sync::Mutex<()>,
    /// Woken whenever a query is answered (points may have come back).
    answered: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

impl ShopifyClient {
    pub fn new(config: ClientConfig, metrics: Arc<Metrics>) -> ShopifyClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("orderline/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        ShopifyClient {
            http,
            endpoint: format!("{}/admin/api/{API_VERSION}/graphql.json", config.api_url.trim_end_matches('/')),
            token: config.access_token,
            limits: Mutex::new(Limits {
                bucket: Bucket::default(),
                breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            }),
            probe: tokio::sync::Mutex::new(()),
            answered: tokio::sync::Notify::new(),
            metrics,
        }
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.limits().breaker.state(Instant::now())
    }

    /// Customers whose phone is `e164`, each with up to three recent orders.
    pub async fn customers_by_phone(
        &self,
        e164: &str,
        deadline: Instant,
    ) -> Result<Vec<CustomerWithOrders>, ShopifyError> {
        let data: CustomersData =
            self.execute(Operation::CustomersByPhone, json!({ "query": graphql::phone_query(e164) }), deadline).await?;
        data.customers
            .nodes
            .iter()
            .map(|node| {
                let customer = node.to_record().map_err(|e| ShopifyError::Decode(e.to_string()))?;
                let orders = node
                    .orders
                    .iter()
                    .flat_map(|o| o.nodes.iter())
                    .map(|o| o.to_record(Some(&customer)).map_err(|e| ShopifyError::Decode(e.to_string())))
                    .collect::<Result<_, _>>()?;
                Ok(CustomerWithOrders { customer, orders })
            })
            .collect()
    }

    /// Orders named `name` (`#1042`), with their customers.
    pub async fn orders_by_name(&self, name: &str, deadline: Instant) -> Result<Vec<ShopifyOrder>, ShopifyError> {
        let data: OrdersData = self
            .execute(Operation::OrdersByName, json!({ "query": graphql::order_name_query(name) }), deadline)
            .await?;
        orders_of(data.orders.nodes)
    }

    /// A page of orders updated at or after `since` (all orders when `None`), oldest first.
    pub async fn orders_updated_since(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<&str>,
        deadline: Instant,
    ) -> Result<Page<ShopifyOrder>, ShopifyError> {
        let query = since.map(graphql::updated_since_query).unwrap_or_default();
        let data: OrdersData = self
            .execute(
                Operation::OrdersUpdatedSince,
                json!({ "query": query, "after": after, "first": graphql::PAGE_SIZE }),
                deadline,
            )
            .await?;
        Ok(Page { next: next_cursor(data.orders.page_info), items: orders_of(data.orders.nodes)? })
    }

    /// A page of customers updated at or after `since` (all customers when `None`), oldest first.
    pub async fn customers_updated_since(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<&str>,
        deadline: Instant,
    ) -> Result<Page<ShopifyCustomer>, ShopifyError> {
        let query = since.map(graphql::updated_since_query).unwrap_or_default();
        let data: CustomersData = self
            .execute(
                Operation::CustomersUpdatedSince,
                json!({ "query": query, "after": after, "first": graphql::PAGE_SIZE }),
                deadline,
            )
            .await?;
        let items = data
            .customers
            .nodes
            .iter()
            .map(|c| c.to_record().map_err(|e| ShopifyError::Decode(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Page { next: next_cursor(data.customers.page_info), items })
    }

    /// Sends one operation, within the bucket and the breaker, retrying throttling while the
    /// deadline allows.
    async fn execute<T: DeserializeOwned>(
        &self,
        operation: Operation,
        variables: serde_json::Value,
        deadline: Instant,
    ) -> Result<T, ShopifyError> {
        let started = Instant::now();
        let result = self.execute_inner(operation, variables, deadline).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics.shopify_request(operation.name(), outcome, started.elapsed().as_secs_f64());
        self.metrics.shopify_breaker_state.set(self.breaker_state().as_gauge());
        result
    }

    async fn execute_inner<T: DeserializeOwned>(
        &self,
        operation: Operation,
        variables: serde_json::Value,
        deadline: Instant,
    ) -> Result<T, ShopifyError> {
        let cost = operation.estimated_cost(graphql::PAGE_SIZE);
        let body = GraphqlRequest::new(operation, variables);
        let mut backoff = Duration::from_millis(250);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ShopifyError::Timeout);
            }
            let mut probe_guard = None;
            let ticket = loop {
                let admission = self.limits().bucket.admit(cost, Instant::now(), deadline);
                match admission {
                    Admission::Now(ticket) => break ticket,
                    Admission::Wait(wait) => {
                        // Points come back with time, and sooner when a query in flight is
                        // answered with a refund: wait for whichever comes first, then decide again.
                        let answered = self.answered.notified();
                        let until = (Instant::now() + wait).min(deadline);
                        let started = Instant::now();
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => {}
                            _ = answered => {}
                        }
                        self.metrics.shopify_throttle_wait_seconds.observe(started.elapsed().as_secs_f64());
                        if Instant::now() >= deadline {
                            return Err(ShopifyError::WouldThrottle(wait));
                        }
                    }
                    Admission::Refused { wait } => return Err(ShopifyError::WouldThrottle(wait)),
                    Admission::Probe if probe_guard.is_none() => {
                        probe_guard = Some(
                            tokio::time::timeout_at(deadline, self.probe.lock())
                                .await
                                .map_err(|_| ShopifyError::Timeout)?,
                        );
                        // Another request may have learnt the bucket while we waited: decide again.
                    }
                    Admission::Probe => break self.limits().bucket.probe(cost),
                }
            };
            let held = Held { client: self, ticket };
            if !self.limits().breaker.allow(Instant::now()) {
                return Err(ShopifyError::BreakerOpen);
            }
            self.limits().bucket.sent(ticket, Instant::now());
            let sent = tokio::time::timeout_at(
                deadline,
                self.http.post(&self.endpoint).header("X-Shopify-Access-Token", self.token.expose()).json(&body).send(),
            )
            .await;
            let response = match sent {
                Err(_) => return Err(self.failed(ShopifyError::Timeout)),
                Ok(Err(e)) => return Err(self.failed(ShopifyError::Transport(e.without_url().to_string()))),
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(Duration::from_secs_f64)
                    .unwrap_or(backoff);
                self.limits().breaker.success();
                if Instant::now() + retry_after >= deadline {
                    return Err(ShopifyError::Throttled);
                }
                self.metrics.shopify_throttle_wait_seconds.observe(retry_after.as_secs_f64());
                tokio::time::sleep(retry_after).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                return Err(self.failed(ShopifyError::Unauthorized));
            }
            if !status.is_success() {
                return Err(self.failed(ShopifyError::Http(status.as_u16())));
            }
            let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
                Err(_) => return Err(self.failed(ShopifyError::Timeout)),
                Ok(Err(e)) => return Err(self.failed(ShopifyError::Transport(e.without_url().to_string()))),
                Ok(Ok(bytes)) => bytes,
            };
            let answer: GraphqlResponse<T> =
                serde_json::from_slice(&bytes).map_err(|e| self.failed(ShopifyError::Decode(e.to_string())))?;
            if let Some(extensions) = &answer.extensions {
                self.limits().bucket.observe(ticket, extensions.cost.throttle_status, Instant::now());
            }
            drop(held);
            drop(probe_guard);
            let throttled = answer
                .errors
                .iter()
                .any(|e| e.extensions.as_ref().and_then(|x| x.code.as_deref()) == Some("THROTTLED"));
            if throttled {
                self.limits().breaker.success();
                let wait = answer
                    .extensions
                    .as_ref()
                    .map(|x| {
                        let status = x.cost.throttle_status;
                        let missing = (f64::from(x.cost.requested_query_cost) - status.currently_available).max(0.0);
                        Duration::from_secs_f64(missing / status.restore_rate.max(1.0))
                    })
                    .unwrap_or(backoff);
                if Instant::now() + wait >= deadline {
                    return Err(ShopifyError::Throttled);
                }
                self.metrics.shopify_throttle_wait_seconds.observe(wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                continue;
            }
            if let Some(error) = answer.errors.first() {
                return Err(self.failed(ShopifyError::Graphql(error.message.clone())));
            }
            return match answer.data {
                Some(data) => {
                    self.limits().breaker.success();
                    Ok(data)
                }
                None => Err(self.failed(ShopifyError::Decode("no data in the answer".into()))),
            };
        }
    }

    fn failed(&self, error: ShopifyError) -> ShopifyError {
        self.limits().breaker.failure(Instant::now());
        error
    }
}

/// The points a sent query holds in the bucket estimate, released however the attempt ends.
struct Held<'a> {
    client: &'a ShopifyClient,
    ticket: super::throttle::Ticket,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.client.limits().bucket.settle(self.ticket);
        self.client.answered.notify_waiters();
    }
}

fn orders_of(nodes: Vec<graphql::GqlOrder>) -> Result<Vec<ShopifyOrder>, ShopifyError> {
    nodes.iter().map(|o| o.to_record(None).map_err(|e| ShopifyError::Decode(e.to_string()))).collect()
}

fn next_cursor(page: Option<PageInfo>) -> Option<String> {
    page.filter(|p| p.has_next_page).and_then(|p| p.end_cursor)
}
