//! The Admin GraphQL client: sends the operations of `graphql` with a current token, never a
//! query its bucket estimate says would be throttled (costs learned from Shopify's answers),
//! retries what Shopify's own client retries (THROTTLED, 429, 503) only while the caller's
//! deadline allows, uses partial answers (protected fields Shopify withheld), and stops asking
//! while the circuit breaker is open, which only transport failures, 5xx and timeouts open.
//! No SQL here.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
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
use super::token::{Credentials, TokenError, Tokens};
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
    #[error("the access token was refused (HTTP 401): check SHOPIFY_ACCESS_TOKEN, or use SHOPIFY_CLIENT_ID/SECRET")]
    Unauthorized,
    #[error("no access token: {0}")]
    Token(TokenError),
    #[error("the shop is frozen for an unpaid Shopify bill (HTTP 402 Payment Required)")]
    ShopFrozen,
    #[error("Shopify forbids this request (HTTP 403): the app lacks a scope, or the shop is unavailable")]
    Forbidden,
    #[error("the shop is locked (HTTP 423 Locked): Shopify or the merchant has blocked API access")]
    ShopLocked,
    #[error("the query costs {cost} points, over Shopify's single-query limit of {max} (MAX_COST_EXCEEDED)")]
    CostExceeded { cost: u32, max: u32 },
    #[error("Shopify refused the change: {0}")]
    UserErrors(String),
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
            ShopifyError::Unauthorized | ShopifyError::Token(_) => "unauthorized",
            ShopifyError::ShopFrozen | ShopifyError::Forbidden | ShopifyError::ShopLocked => "refused",
            ShopifyError::CostExceeded { .. } => "cost_exceeded",
            ShopifyError::UserErrors(_) => "refused",
        }
    }

    /// Whether the error says Shopify (or the way to it) is failing, which is what the breaker
    /// guards against. Deterministic refusals (a bad document, a cost over the limit, a refused
    /// token, a frozen shop) would fail the same way at once: they never open it.
    fn is_outage(&self) -> bool {
        matches!(self, ShopifyError::Timeout | ShopifyError::Transport(_))
            || matches!(self, ShopifyError::Http(code) if *code >= 500)
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
    pub credentials: Credentials,
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
    tokens: Tokens,
    limits: Mutex<Limits>,
    /// Shopify's `requestedQueryCost` per operation and page size, as last reported.
    learned_costs: Mutex<HashMap<(Operation, u32), u32>>,
    /// The page size of each paged operation (shrunk after `MAX_COST_EXCEEDED`).
    page_sizes: Mutex<HashMap<Operation, u32>>,
    /// Protected fields Shopify withheld (`Type.field`), each logged once.
    withheld: Mutex<BTreeSet<String>>,
    version_logged: AtomicBool,
    deprecation_logged: AtomicBool,
    /// The `Date` header of Shopify's last answer (`doctor`'s clock check).
    last_date: Mutex<Option<DateTime<Utc>>>,
    served: Mutex<Option<String>>,
    /// Scopes orderline needs that the app lacks, once checked at start.
    missing_scopes: Mutex<Vec<&'static str>>,
    scopes_checked: AtomicBool,
    /// Shopify said the app holds `read_all_orders` (false until it has).
    sees_all_orders: AtomicBool,
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
            tokens: Tokens::new(http.clone(), &config.api_url, config.credentials),
            http,
            endpoint: format!("{}/admin/api/{API_VERSION}/graphql.json", config.api_url.trim_end_matches('/')),
            learned_costs: Mutex::new(HashMap::new()),
            page_sizes: Mutex::new(HashMap::new()),
            withheld: Mutex::new(BTreeSet::new()),
            version_logged: AtomicBool::new(false),
            deprecation_logged: AtomicBool::new(false),
            last_date: Mutex::new(None),
            served: Mutex::new(None),
            missing_scopes: Mutex::new(Vec::new()),
            scopes_checked: AtomicBool::new(false),
            sees_all_orders: AtomicBool::new(false),
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

    /// How the client authenticates (for the startup line).
    pub fn credentials(&self) -> &Credentials {
        self.tokens.credentials()
    }

    /// Tokens obtained from the client-credentials grant so far.
    pub fn token_renewals(&self) -> u64 {
        self.tokens.renewals()
    }

    /// Protected customer data fields Shopify withheld from this app (`Type.field`), for /readyz.
    pub fn withheld_fields(&self) -> Vec<String> {
        lock(&self.withheld).iter().cloned().collect()
    }

    /// Asks Shopify which scopes the app holds and logs each one orderline needs that is
    /// missing; `/readyz` reports them. Returns the missing ones.
    pub async fn check_scopes(&self, deadline: Instant) -> Result<Vec<&'static str>, ShopifyError> {
        let held = self.access_scopes(deadline).await;
        self.scopes_checked.store(true, Ordering::Relaxed);
        let held = held?;
        let missing: Vec<&'static str> =
            REQUIRED_SCOPES.iter().filter(|(scope, _)| !held.iter().any(|h| h == scope)).map(|(s, _)| *s).collect();
        // Each missing scope is said once, however often the check runs (at start, and before a
        // deletion check that found it unanswered).
        let said = lock(&self.missing_scopes).clone();
        for (scope, why) in REQUIRED_SCOPES.iter().filter(|(s, _)| missing.contains(s) && !said.contains(s)) {
            tracing::warn!(
                scope,
                "the Shopify app lacks the {scope} scope: {why}. Add it in the app's Dev Dashboard and reinstall"
            );
        }
        self.sees_all_orders.store(!missing.contains(&"read_all_orders"), Ordering::Relaxed);
        *lock(&self.missing_scopes) = missing.clone();
        Ok(missing)
    }

    /// Whether the check at start has been answered (or has failed).
    pub fn scopes_checked(&self) -> bool {
        self.scopes_checked.load(Ordering::Relaxed)
    }

    /// What `/readyz` reports as degraded: missing scopes and withheld protected fields.
    pub fn degradations(&self) -> Vec<String> {
        let mut out: Vec<String> =
            lock(&self.missing_scopes).iter().map(|s| format!("Shopify app lacks the {s} scope")).collect();
        out.extend(self.withheld_fields().into_iter().map(|f| {
            format!("Shopify withholds {f} (protected customer data: request it in the app's Dev Dashboard)")
        }));
        out
    }

    /// Whether Shopify said the app holds `read_all_orders` and so sees orders created more than
    /// 60 days ago. False until the check at start is answered (and when it failed): a sweep
    /// then vouches only for the orders it could have seen.
    pub fn sees_all_orders(&self) -> bool {
        self.sees_all_orders.load(Ordering::Relaxed)
    }

    /// The page size a paged operation uses now.
    pub fn page_size(&self, operation: Operation) -> u32 {
        lock(&self.page_sizes).get(&operation).copied().unwrap_or(graphql::PAGE_SIZE)
    }

    /// The cost admission uses for `operation` with `first` nodes: what Shopify last reported,
    /// else the safe estimate.
    pub fn admission_cost(&self, operation: Operation, first: u32) -> u32 {
        lock(&self.learned_costs).get(&(operation, first)).copied().unwrap_or_else(|| operation.estimated_cost(first))
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
        let data: OrdersData =
            self.execute(Operation::OrdersUpdatedSince, json!({ "query": query, "after": after }), deadline).await?;
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
        let data: CustomersData =
            self.execute(Operation::CustomersUpdatedSince, json!({ "query": query, "after": after }), deadline).await?;
        let items = data
            .customers
            .nodes
            .iter()
            .map(|c| c.to_record().map_err(|e| ShopifyError::Decode(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Page { next: next_cursor(data.customers.page_info), items })
    }

    /// The access scopes the app holds (`currentAppInstallation { accessScopes { handle } }`).
    pub async fn access_scopes(&self, deadline: Instant) -> Result<Vec<String>, ShopifyError> {
        let data: graphql::AccessScopesData = self.execute(Operation::AccessScopes, json!({}), deadline).await?;
        Ok(data.current_app_installation.access_scopes.into_iter().map(|s| s.handle).collect())
    }

    /// Every webhook subscription of the app, all pages.
    pub async fn webhook_subscriptions(
        &self,
        deadline: Instant,
    ) -> Result<Vec<graphql::GqlWebhookSubscription>, ShopifyError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data: graphql::WebhookSubscriptionsData =
                self.execute(Operation::WebhookSubscriptions, json!({ "after": after }), deadline).await?;
            all.extend(data.webhook_subscriptions.nodes);
            match next_cursor(data.webhook_subscriptions.page_info) {
                Some(cursor) => after = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// Subscribes `topic` (`ORDERS_CREATE`) to `uri`, JSON.
    pub async fn create_webhook_subscription(
        &self,
        topic: &str,
        uri: &str,
        deadline: Instant,
    ) -> Result<graphql::GqlWebhookSubscription, ShopifyError> {
        let data: graphql::SubscriptionCreateData =
            self.execute(Operation::WebhookSubscriptionCreate, json!({ "topic": topic, "uri": uri }), deadline).await?;
        subscription_of(data.webhook_subscription_create)
    }

    /// Points the subscription `id` at `uri`, JSON.
    pub async fn update_webhook_subscription(
        &self,
        id: &str,
        uri: &str,
        deadline: Instant,
    ) -> Result<graphql::GqlWebhookSubscription, ShopifyError> {
        let data: graphql::SubscriptionUpdateData =
            self.execute(Operation::WebhookSubscriptionUpdate, json!({ "id": id, "uri": uri }), deadline).await?;
        subscription_of(data.webhook_subscription_update)
    }

    pub async fn delete_webhook_subscription(&self, id: &str, deadline: Instant) -> Result<(), ShopifyError> {
        let data: graphql::SubscriptionDeleteData =
            self.execute(Operation::WebhookSubscriptionDelete, json!({ "id": id }), deadline).await?;
        let payload = data.webhook_subscription_delete;
        if !payload.user_errors.is_empty() || payload.deleted_webhook_subscription_id.is_none() {
            return Err(ShopifyError::UserErrors(user_errors_text(&payload.user_errors)));
        }
        Ok(())
    }

    /// Whether Shopify still holds `id` (`CustomerExists` or `OrderExists`): false once the
    /// record is deleted, as `customer(id:)` / `order(id:)` then answer null.
    pub async fn still_exists(
        &self,
        operation: Operation,
        id: crate::domain::ShopifyId,
        deadline: Instant,
    ) -> Result<bool, ShopifyError> {
        let (field, kind) = match operation {
            Operation::CustomerExists => ("customer", "Customer"),
            Operation::OrderExists => ("order", "Order"),
            other => {
                return Err(ShopifyError::Decode(format!("{} does not ask whether a record exists", other.name())));
            }
        };
        let data: serde_json::Map<String, serde_json::Value> =
            self.execute(operation, json!({ "id": graphql::gid(kind, id) }), deadline).await?;
        match data.get(field) {
            Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Object(_)) => Ok(true),
            _ => Err(ShopifyError::Decode(format!("no {field} in the answer"))),
        }
    }

    /// Which of `ids` (at most [`graphql::MAX_IDS`], all of one `kind`: "Order" or "Customer")
    /// Shopify still holds: `nodes(ids:)` answers null for a deleted record. Only `id` is asked,
    /// which no protected-data rule withholds; orders Shopify hides from an app without
    /// `read_all_orders` (older than 60 days) must not be asked (the reconciler leaves them out).
    pub async fn still_held(
        &self,
        kind: &str,
        ids: &[crate::domain::ShopifyId],
        deadline: Instant,
    ) -> Result<std::collections::HashSet<crate::domain::ShopifyId>, ShopifyError> {
        if ids.len() > graphql::MAX_IDS {
            return Err(ShopifyError::Decode(format!(
                "{} IDs asked at once; Shopify takes {}",
                ids.len(),
                graphql::MAX_IDS
            )));
        }
        let gids: Vec<String> = ids.iter().map(|id| graphql::gid(kind, *id)).collect();
        let data: graphql::NodesData = self.execute(Operation::StillHeld, json!({ "ids": gids }), deadline).await?;
        if data.nodes.len() != ids.len() {
            return Err(ShopifyError::Decode(format!("{} nodes answered for {} IDs", data.nodes.len(), ids.len())));
        }
        Ok(ids.iter().zip(data.nodes).filter(|(_, node)| node.is_some()).map(|(id, _)| *id).collect())
    }

    /// Starts a bulk query (`bulkOperationRunQuery`) over `query`; a userError (another
    /// operation in progress, an invalid query) is [`ShopifyError::UserErrors`].
    pub async fn run_bulk_query(
        &self,
        query: &str,
        deadline: Instant,
    ) -> Result<graphql::GqlBulkOperation, ShopifyError> {
        let data: graphql::BulkRunQueryData =
            self.execute(Operation::BulkRunQuery, json!({ "query": query }), deadline).await?;
        let payload = data.bulk_operation_run_query;
        if let Some(error) = payload.user_errors.first() {
            let code = error.code.as_deref().unwrap_or("no code");
            return Err(ShopifyError::UserErrors(format!("bulk operation: {} ({code})", error.message)));
        }
        payload.bulk_operation.ok_or_else(|| ShopifyError::Decode("no bulkOperation and no userErrors".into()))
    }

    /// A bulk operation by ID (`bulkOperation(id:)`); None when Shopify does not know it.
    pub async fn bulk_operation(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<graphql::GqlBulkOperation>, ShopifyError> {
        let data: graphql::BulkOperationData =
            self.execute(Operation::BulkOperationStatus, json!({ "id": id }), deadline).await?;
        Ok(data.bulk_operation)
    }

    /// Opens a bulk operation's result (`url`): a signed storage URL, asked without the Admin
    /// token. The body is read by the caller, a chunk at a time.
    pub async fn open_bulk_result(
        &self,
        url: &str,
        connect_deadline: Instant,
    ) -> Result<reqwest::Response, ShopifyError> {
        let sent = tokio::time::timeout_at(connect_deadline, self.http.get(url).send()).await;
        let response = match sent {
            Err(_) => return Err(ShopifyError::Timeout),
            Ok(Err(e)) => return Err(ShopifyError::Transport(e.without_url().to_string())),
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            return Err(ShopifyError::Http(response.status().as_u16()));
        }
        Ok(response)
    }

    /// Sends one operation, within the bucket and the breaker, retrying throttling while the
    /// deadline allows; a paged operation that costs more than Shopify's single-query limit is
    /// asked again with a smaller page.
    async fn execute<T: DeserializeOwned>(
        &self,
        operation: Operation,
        mut variables: serde_json::Value,
        deadline: Instant,
    ) -> Result<T, ShopifyError> {
        let started = Instant::now();
        let result = loop {
            let first = self.page_size(operation);
            if operation.is_paged() {
                variables["first"] = json!(first);
            }
            match self.execute_inner(operation, first, variables.clone(), deadline).await {
                Err(ShopifyError::CostExceeded { cost, max }) if operation.is_paged() && first > 1 => {
                    // Nodes cost about (cost − 2) / first each: ask for as many as fit.
                    let per_node = (cost.saturating_sub(2) as f64 / f64::from(first)).max(1.0);
                    let fits = ((f64::from(max.saturating_sub(2)) / per_node).floor() as u32).clamp(1, first - 1);
                    tracing::warn!(
                        operation = operation.name(),
                        cost,
                        max,
                        from = first,
                        to = fits,
                        "Shopify says a page costs more than its single-query limit: asking smaller pages"
                    );
                    lock(&self.page_sizes).insert(operation, fits);
                }
                other => break other,
            }
        };
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
        first: u32,
        variables: serde_json::Value,
        deadline: Instant,
    ) -> Result<T, ShopifyError> {
        let body = GraphqlRequest::new(operation, variables);
        let mut backoff = Duration::from_millis(250);
        let mut renewed_after_401 = false;
        loop {
            let cost = self.admission_cost(operation, first);
            let now = Instant::now();
            if now >= deadline {
                return Err(ShopifyError::Timeout);
            }
            // An open breaker refuses before any points are set aside.
            if self.breaker_state() == BreakerState::Open {
                return Err(ShopifyError::BreakerOpen);
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
            // The token is taken after any wait for points, so it is current when it leaves.
            let token = self.tokens.get(deadline).await.map_err(|e| self.token_error(e))?;
            if !self.limits().breaker.allow(Instant::now()) {
                self.limits().bucket.refund(ticket);
                return Err(ShopifyError::BreakerOpen);
            }
            self.limits().bucket.sent(ticket, Instant::now());
            let sent = tokio::time::timeout_at(
                deadline,
                self.http
                    .post(&self.endpoint)
                    .header("X-Shopify-Access-Token", token.secret.expose())
                    .json(&body)
                    .send(),
            )
            .await;
            let response = match sent {
                Err(_) => return Err(self.failed(ShopifyError::Timeout)),
                Ok(Err(e)) => return Err(self.failed(ShopifyError::Transport(e.without_url().to_string()))),
                Ok(Ok(response)) => response,
            };
            self.check_version(response.headers());
            let status = response.status();
            if !status.is_success() {
                // Shopify charges a query only when it runs it: an HTTP refusal costs nothing.
                self.limits().bucket.refund(ticket);
            }
            // Shopify's own client retries 429 and 503 (Retry-After, else a growing backoff).
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(Duration::from_secs_f64)
                    .unwrap_or(backoff);
                if Instant::now() + retry_after >= deadline {
                    return Err(if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        self.limits().breaker.success();
                        ShopifyError::Throttled
                    } else {
                        self.failed(ShopifyError::Http(503))
                    });
                }
                self.metrics.shopify_throttle_wait_seconds.observe(retry_after.as_secs_f64());
                drop(held);
                drop(probe_guard);
                tokio::time::sleep(retry_after).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED {
                drop(held);
                drop(probe_guard);
                // An expired or revoked token: renew it once, at once, and ask again.
                if !renewed_after_401 && let Some(renewed) = self.tokens.refused(&token, deadline).await {
                    renewed.map_err(|e| self.token_error(e))?;
                    renewed_after_401 = true;
                    continue;
                }
                return Err(self.refused(ShopifyError::Unauthorized));
            }
            match status.as_u16() {
                402 => return Err(self.refused(ShopifyError::ShopFrozen)),
                403 => return Err(self.refused(ShopifyError::Forbidden)),
                423 => return Err(self.refused(ShopifyError::ShopLocked)),
                _ => {}
            }
            if !status.is_success() {
                let error = ShopifyError::Http(status.as_u16());
                return Err(if error.is_outage() { self.failed(error) } else { self.refused(error) });
            }
            let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
                Err(_) => return Err(self.failed(ShopifyError::Timeout)),
                Ok(Err(e)) => return Err(self.failed(ShopifyError::Transport(e.without_url().to_string()))),
                Ok(Ok(bytes)) => bytes,
            };
            let answer: GraphqlResponse<T> = match serde_json::from_slice(&bytes) {
                Ok(answer) => answer,
                Err(e) => return Err(self.refused(ShopifyError::Decode(e.to_string()))),
            };
            if let Some(extensions) = &answer.extensions {
                self.limits().bucket.observe(ticket, extensions.cost.throttle_status, Instant::now());
                self.learn_cost(operation, first, extensions.cost.requested_query_cost);
            }
            drop(held);
            drop(probe_guard);
            let code = |e: &graphql::GraphqlError| e.extensions.as_ref().and_then(|x| x.code.clone());
            if answer.errors.iter().any(|e| code(e).as_deref() == Some("THROTTLED")) {
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
            if let Some(exceeded) = answer.errors.iter().find(|e| code(e).as_deref() == Some("MAX_COST_EXCEEDED")) {
                let extra = exceeded.extensions.as_ref();
                let cost = extra.and_then(|x| x.cost).unwrap_or_else(|| self.admission_cost(operation, first));
                let max = extra.and_then(|x| x.max_cost).unwrap_or(1000);
                self.learn_cost(operation, first, cost);
                return Err(self.refused(ShopifyError::CostExceeded { cost, max }));
            }
            if answer.errors.iter().any(|e| code(e).as_deref() == Some("INTERNAL_SERVER_ERROR")) {
                let message = answer.errors[0].message.clone();
                return Err(self.failed(ShopifyError::Graphql(message)));
            }
            // Protected customer data the app is not approved for: Shopify answers the rest and
            // nulls these (ACCESS_DENIED). The answer is used; each field is logged once.
            let (denied, other): (Vec<_>, Vec<_>) =
                answer.errors.iter().partition(|e| code(e).as_deref() == Some("ACCESS_DENIED"));
            if let Some(error) = other.first() {
                return Err(self.refused(ShopifyError::Graphql(error.message.clone())));
            }
            return match answer.data {
                Some(data) => {
                    for error in denied {
                        self.withhold(error);
                    }
                    self.limits().breaker.success();
                    Ok(data)
                }
                None => match denied.first() {
                    Some(error) => Err(self.refused(ShopifyError::Graphql(error.message.clone()))),
                    None => Err(self.refused(ShopifyError::Decode("no data in the answer".into()))),
                },
            };
        }
    }

    fn learn_cost(&self, operation: Operation, first: u32, cost: u32) {
        let previous = lock(&self.learned_costs).insert((operation, first), cost);
        if previous != Some(cost) {
            tracing::debug!(operation = operation.name(), first, cost, "Shopify's requested cost for this operation");
        }
    }

    /// Logs once per field that Shopify withheld it, with the fix.
    fn withhold(&self, error: &graphql::GraphqlError) {
        let field = withheld_field(error);
        if lock(&self.withheld).insert(field.clone()) {
            tracing::warn!(
                field = %field,
                "Shopify withheld a protected customer data field (ACCESS_DENIED): the rest of the answer is used. \
                 To get it, request access to this field under Protected customer data in the app's Dev Dashboard \
                 (or Partner Dashboard) and wait for approval"
            );
        }
    }

    /// Shopify's clock as its last answer gave it (`Date`).
    pub fn last_server_date(&self) -> Option<DateTime<Utc>> {
        *lock(&self.last_date)
    }

    /// The Admin API version Shopify served last (`X-Shopify-API-Version`), when it said.
    pub fn served_version(&self) -> Option<String> {
        lock(&self.served).clone()
    }

    /// Whether Shopify has flagged a request as using a deprecated part of the API.
    pub fn deprecation_flagged(&self) -> bool {
        self.deprecation_logged.load(Ordering::Relaxed)
    }

    /// Says once if Shopify served another version than asked, or flagged deprecated use.
    fn check_version(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        {
            *lock(&self.last_date) = Some(date.with_timezone(&Utc));
        }
        if let Some(served) = headers.get("x-shopify-api-version").and_then(|v| v.to_str().ok()) {
            *lock(&self.served) = Some(served.to_string());
        }
        if let Some(served) = headers.get("x-shopify-api-version").and_then(|v| v.to_str().ok())
            && served != API_VERSION
            && !self.version_logged.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(asked = API_VERSION, served, "Shopify served another Admin API version than asked");
        }
        if let Some(reason) = headers.get("x-shopify-api-deprecated-reason").and_then(|v| v.to_str().ok())
            && !self.deprecation_logged.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                reason,
                version = API_VERSION,
                "Shopify says a request used a deprecated part of the Admin API"
            );
        }
    }

    fn token_error(&self, error: TokenError) -> ShopifyError {
        match error {
            TokenError::Timeout => ShopifyError::Timeout,
            TokenError::Failed(e) => self.failed(ShopifyError::Transport(e)),
            refused => ShopifyError::Token(refused),
        }
    }

    /// A deterministic refusal: Shopify answered, so it is up; the request fails without
    /// counting against the breaker.
    fn refused(&self, error: ShopifyError) -> ShopifyError {
        self.limits().breaker.success();
        error
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

/// The scopes orderline needs, and what is lost without each (Shopify's scope list:
/// https://shopify.dev/docs/api/usage/access-scopes, read 2026-12).
pub const REQUIRED_SCOPES: [(&str, &str); 5] = [
    ("read_customers", "callers cannot be found by phone and customers/* webhooks are not sent"),
    ("read_orders", "orders cannot be read and orders/* and refunds/create webhooks are not sent"),
    ("read_fulfillments", "fulfillments/create and fulfillments/update webhooks are not sent"),
    ("read_all_orders", "only orders from the last 60 days are visible; sweeps never confirm older ones"),
    ("read_returns", "returns cannot be read and returns/* and reverse_deliveries/* webhooks are not sent"),
];

/// Without `read_all_orders`, "only the last 60 days' worth of orders from a store are
/// accessible from the Order object" (https://shopify.dev/docs/api/admin-graphql/latest/objects/Order,
/// read 2026-12): orders created longer ago are absent from every answer.
pub const ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS: chrono::TimeDelta = chrono::TimeDelta::days(60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Type.field` of an ACCESS_DENIED error: the last name in its path, or its message.
fn withheld_field(error: &graphql::GraphqlError) -> String {
    let field = error.path.iter().rev().find_map(|p| p.as_str().map(str::to_string));
    let from_message = error
        .message
        .split_whitespace()
        .skip_while(|w| *w != "the")
        .nth(1)
        .filter(|w| w.contains('.'))
        .map(str::to_string);
    from_message.or(field).unwrap_or_else(|| error.message.clone())
}

fn subscription_of(payload: graphql::SubscriptionPayload) -> Result<graphql::GqlWebhookSubscription, ShopifyError> {
    match payload.webhook_subscription {
        Some(subscription) if payload.user_errors.is_empty() => Ok(subscription),
        _ => Err(ShopifyError::UserErrors(user_errors_text(&payload.user_errors))),
    }
}

fn user_errors_text(errors: &[graphql::UserError]) -> String {
    if errors.is_empty() {
        return "no result and no userErrors".into();
    }
    errors
        .iter()
        .map(|e| match &e.field {
            Some(field) if !field.is_empty() => format!("{}: {}", field.join("."), e.message),
            _ => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn orders_of(nodes: Vec<graphql::GqlOrder>) -> Result<Vec<ShopifyOrder>, ShopifyError> {
    nodes.iter().map(|o| o.to_record(None).map_err(|e| ShopifyError::Decode(e.to_string()))).collect()
}

fn next_cursor(page: Option<PageInfo>) -> Option<String> {
    page.filter(|p| p.has_next_page).and_then(|p| p.end_cursor)
}
