//! A stand-in for a Shopify store's Admin GraphQL API, in-process or launched from the CLI
//! (`orderline sim shopify`). It validates every document against Shopify's published Admin
//! schema (the committed extract), runs it against the shop (the fields it selects, Shopify's
//! shapes and errors), charges Shopify's documented query cost in a leaky bucket (and the
//! single-query limit), withholds chosen protected customer data, grants expiring tokens by the
//! client-credentials grant, adds latency, errors and timeouts on demand, counts requests, and
//! sends signed webhooks for the changes made through it, with chosen loss, duplication and
//! reordering.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use orderline::sim::shopify::{ShopifySim, SimConfig, WebhookTarget};
//! let sim = ShopifySim::new(SimConfig::default());
//! sim.seed_demo();
//! let server = sim.serve("127.0.0.1:0".parse().unwrap()).await?;
//! // point the client at server.url() with SimConfig::default().access_token …
//! sim.set_webhook_target(WebhookTarget::new("http://127.0.0.1:8080/shopify/webhooks", "secret", "demo.myshopify.com"));
//! let order = sim.orders()[0].id;
//! sim.advance_order(order); // orders/updated is delivered
//! sim.flush_webhooks().await;
//! server.stop().await;
//! # Ok(()) }
//! ```

mod bulk;
mod cost;
mod executor;
mod returns;
mod rng;
mod seed;
mod server;
mod store;
mod subscriptions;
mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::{DeclineReason, ReturnStatus, ShopifyId};
use crate::shopify::graphql::{API_VERSION, Operation, ThrottleStatus};
use crate::shopify::payload::{ShopifyCustomer, ShopifyOrder, ShopifyRefund, ShopifyTransaction};
use crate::shopify::returns::{ReturnLabel, ShopifyReturn};
pub use bulk::BulkErrorCode;
use rng::Rng;
use server::Bucket;
use store::Store;
pub use subscriptions::Subscription;
pub use webhooks::{WebhookStats, WebhookTarget};

/// The emulated shop's ID in compliance payloads (`shop_id`, as in tests/fixtures/shopify).
const SHOP_ID: i64 = 61_204_938_771;

/// A customer change Shopify refuses: another customer has the phone (CustomerSetUserErrorCode TAKEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("phone has already been taken by another customer")]
pub struct PhoneTaken;

/// How the emulated shop is reached and rate-limited.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The Admin API token requests must carry in `X-Shopify-Access-Token`.
    pub access_token: String,
    /// Bucket size in points (Shopify standard plans: 1000).
    pub bucket_max: f64,
    /// Points restored per second (Shopify standard plans: 100).
    pub restore_rate: f64,
    /// Seeds every random choice: generated shops, latency jitter, error rates, webhook faults.
    pub seed: u64,
    /// The app's client ID and secret for the client-credentials grant.
    pub client_id: String,
    pub client_secret: String,
    /// How long a granted token lives (Shopify: 24 hours).
    pub token_lifetime: Duration,
    /// The access scopes the app holds (`currentAppInstallation.accessScopes`, the grant's `scope`).
    pub scopes: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            access_token: "shpat_orderline_sim_token".into(),
            bucket_max: 1000.0,
            restore_rate: 100.0,
            seed: 0x5EED,
            client_id: "orderline_sim_client_id".into(),
            client_secret: "orderline_sim_client_secret".into(),
            token_lifetime: Duration::from_secs(24 * 3600),
            scopes: ["read_customers", "read_orders", "read_all_orders", "read_fulfillments", "read_returns"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A fault the GraphQL endpoint injects into every request (after the token check).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Failure {
    #[default]
    None,
    /// HTTP 500 `{"errors":"Internal Server Error"}`.
    Http500,
    /// HTTP 429 with `Retry-After: 1`.
    Http429,
    /// Every request answered with this HTTP status (402 frozen shop, 403, 423 locked, 503 …).
    Http(u16),
    /// The next request answered with this HTTP status, then back to normal.
    HttpOnce(u16),
    /// Never answers (an hour, or until the server stops): the client must give up.
    Timeout,
    /// This share (0..=1) of requests get HTTP 500; the rest are answered normally.
    ErrorRate(f64),
    /// HTTP 200 with `errors[0].extensions.code = INTERNAL_SERVER_ERROR` and no data.
    GraphqlError,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Data {
    pub(crate) store: Store,
    rng: Rng,
}

pub(crate) struct Knobs {
    latency: Duration,
    jitter: Duration,
    pub(crate) failure: Failure,
    pub(crate) max_query_cost: Option<u32>,
    pub(crate) redacted: Vec<ProtectedData>,
    /// Per-field costs Shopify assigns instead of the default by return type (`Type.field`).
    pub(crate) field_costs: HashMap<String, u32>,
    /// The stable API versions Shopify serves; a request for another falls forward.
    pub(crate) supported_versions: Vec<String>,
    /// Fields (`Type.field`) deprecated since the schema extract was made.
    pub(crate) deprecated_fields: Vec<String>,
    pub(crate) rng: Rng,
}

impl Knobs {
    /// mean ± uniform jitter, never negative.
    pub(crate) fn sample_latency(&mut self) -> Duration {
        let offset = (self.rng.unit() * 2.0 - 1.0) * self.jitter.as_secs_f64();
        Duration::from_secs_f64((self.latency.as_secs_f64() + offset).max(0.0))
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    by_op: [AtomicU64; Operation::ALL.len()],
    throttled: AtomicU64,
    grants: AtomicU64,
    unauthorized: AtomicU64,
}

impl Counters {
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_op(&self, op: Operation) {
        self.by_op[op_index(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }
}

fn op_index(op: Operation) -> usize {
    Operation::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) data: Mutex<Data>,
    pub(crate) knobs: Mutex<Knobs>,
    pub(crate) bucket: Mutex<Bucket>,
    pub(crate) counters: Counters,
    pub(crate) bulk: Mutex<bulk::BulkOps>,
    webhooks: Mutex<webhooks::Webhooks>,
    /// The app's webhook subscriptions (`webhookSubscriptions` and its mutations).
    pub(crate) subscriptions: Mutex<subscriptions::Subscriptions>,
    /// Tokens granted by the client-credentials grant, and when each expires.
    granted: Mutex<HashMap<String, std::time::Instant>>,
}

impl Inner {
    /// A new token from the client-credentials grant, and its lifetime.
    pub(crate) fn grant(&self) -> (String, Duration) {
        let n = self.counters.grants.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("shpat_sim_granted_{n:06}");
        let lifetime = self.config.token_lifetime;
        lock(&self.granted).insert(token.clone(), std::time::Instant::now() + lifetime);
        (token, lifetime)
    }

    /// The legacy permanent token, or a granted one that has not expired.
    pub(crate) fn token_is_valid(&self, token: &str) -> bool {
        let valid = token == self.config.access_token
            || lock(&self.granted).get(token).is_some_and(|expires| std::time::Instant::now() < *expires);
        if !valid {
            self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        }
        valid
    }
}

/// The emulated shop. Cheap to clone (one shared state); usable from any task or thread.
/// Locks are never held across an await, and closures passed in run under the data lock, so
/// they must not call back into the sim.
#[derive(Clone)]
pub struct ShopifySim {
    pub(crate) inner: Arc<Inner>,
}

impl ShopifySim {
    pub fn new(config: SimConfig) -> ShopifySim {
        let seed = config.seed;
        let inner = Inner {
            data: Mutex::new(Data { store: Store::new(), rng: Rng::new(seed, 0xDA7A) }),
            knobs: Mutex::new(Knobs {
                latency: Duration::ZERO,
                jitter: Duration::ZERO,
                failure: Failure::None,
                max_query_cost: Some(server::SINGLE_QUERY_MAX_COST),
                redacted: Vec::new(),
                field_costs: HashMap::new(),
                supported_versions: server::SUPPORTED_VERSIONS.map(String::from).to_vec(),
                deprecated_fields: Vec::new(),
                rng: Rng::new(seed, 0x1A7E),
            }),
            bucket: Mutex::new(Bucket::new(config.bucket_max, config.restore_rate)),
            counters: Counters::default(),
            bulk: Mutex::new(bulk::BulkOps::new()),
            webhooks: Mutex::new(webhooks::Webhooks::new(seed)),
            subscriptions: Mutex::new(subscriptions::Subscriptions::default()),
            granted: Mutex::new(HashMap::new()),
            config,
        };
        ShopifySim { inner: Arc::new(inner) }
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves the Admin GraphQL API at
    /// `/admin/api/{YYYY-MM}/graphql.json` until [`SimServer::stop`]. Dropping the handle
    /// without stopping leaves the server running until the runtime ends.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (closing, watching) = watch::channel(false);
        let app = server::router(self.clone(), watching.clone());
        let task =
            tokio::spawn(
                async move { axum::serve(listener, app).with_graceful_shutdown(server::closed(watching)).await },
            );
        Ok(SimServer { addr, closing, task })
    }

    // ---- data ----

    /// Stores the customer as given; no webhook.
    ///
    /// Refused when another customer already has the phone: Shopify keeps `Customer.phone`
    /// unique in a shop (customerSet "upsert a customer by a unique key (email or phone)", user
    /// error code TAKEN "The input value is already taken",
    /// shopify.dev/docs/api/admin-graphql/latest/objects/customersetusererror and
    /// …/unstable/enums/CustomerSetUserErrorCode, read 2026-12-04; the message text is the
    /// emulator's); a number shared by a household is an address phone.
    pub fn upsert_customer(&self, c: ShopifyCustomer) -> Result<(), PhoneTaken> {
        let mut data = lock(&self.inner.data);
        if data.store.phone_taken(&c) {
            return Err(PhoneTaken);
        }
        data.store.put_customer(c);
        Ok(())
    }

    /// Stores the order as given, and its customer unless the sim holds a copy at least as new;
    /// no webhook.
    pub fn upsert_order(&self, o: ShopifyOrder) {
        lock(&self.inner.data).store.put_order(o);
    }

    /// All customers, by ID.
    pub fn customers(&self) -> Vec<ShopifyCustomer> {
        lock(&self.inner.data).store.all_customers()
    }

    /// All orders, by ID, each carrying its customer's current record (as Shopify shows them).
    pub fn orders(&self) -> Vec<ShopifyOrder> {
        lock(&self.inner.data).store.all_orders()
    }

    pub fn order(&self, id: ShopifyId) -> Option<ShopifyOrder> {
        lock(&self.inner.data).store.order(id)
    }

    pub fn customer(&self, id: ShopifyId) -> Option<ShopifyCustomer> {
        lock(&self.inner.data).store.customer(id).cloned()
    }

    /// When the sim started: every `updated_at` it hands out is later, every seeded one earlier.
    pub fn clock_start(&self) -> DateTime<Utc> {
        lock(&self.inner.data).store.start
    }

    /// A fresh ID (above 2^53, above every ID stored so far) for a record you build yourself.
    pub fn new_id(&self) -> ShopifyId {
        lock(&self.inner.data).store.alloc_id()
    }

    /// A new, realistic, paid and unshipped order (not stored) with a fresh ID and the next
    /// order number, for `customer` (its current record) or, with `None` or an unknown ID, a
    /// guest. Pass it to [`ShopifySim::create_order`].
    pub fn sample_order(&self, customer: Option<ShopifyId>) -> ShopifyOrder {
        let mut data = lock(&self.inner.data);
        let Data { store, rng } = &mut *data;
        let customer = customer.and_then(|id| store.customer(id).cloned());
        seed::sample_order(store, rng, customer.as_ref())
    }

    /// Changes an order as a merchant would: applies `f`, sets `updated_at` to the sim clock's
    /// whole second (never before the order's previous `updated_at` or any instant handed out
    /// before: several changes in one second share it, as Shopify's one-second `updated_at`
    /// does), and sends what Shopify sends for the change if a webhook target is set
    /// (`webhooks::order_deliveries`). `f` sees the order with its customer's current record.
    pub fn change_order(&self, id: ShopifyId, f: impl FnOnce(&mut ShopifyOrder)) -> Option<ShopifyOrder> {
        self.change_order_at(id, |order, _, _| {
            f(order);
            true
        })
    }

    /// Moves an order one step along paid → in transit (a new fulfilment with UPS, USPS or FedEx
    /// tracking) → out for delivery → delivered, as [`ShopifySim::change_order`] does. `None`
    /// when the order is unknown, cancelled, refunded or already delivered.
    pub fn advance_order(&self, id: ShopifyId) -> Option<ShopifyOrder> {
        self.change_order_at(id, |order, data, at| {
            let Data { store, rng } = data;
            seed::advance(store, rng, order, at)
        })
    }

    fn change_order_at(
        &self,
        id: ShopifyId,
        f: impl FnOnce(&mut ShopifyOrder, &mut Data, DateTime<Utc>) -> bool,
    ) -> Option<ShopifyOrder> {
        let mut data = lock(&self.inner.data);
        let before = data.store.order(id)?;
        let mut order = before.clone();
        let at = data.store.tick(Some(order.updated_at));
        if !f(&mut order, &mut data, at) {
            return None;
        }
        order.id = id;
        order.updated_at = at;
        self.commit_order(&mut data, Some(&before), order)
    }

    /// Adds a new order as a customer placing it would: `created_at` and `updated_at` become a
    /// new instant of the sim clock, its customer is stored if the sim has no newer copy, and
    /// what Shopify sends is sent if a webhook target is set (`webhooks::order_deliveries`). A
    /// checkout by a customer the shop did not know creates the customer in the same second:
    /// `customers/create` ("Occurs whenever a customer is created",
    /// shopify.dev/docs/api/webhooks/latest?reference=toml#list-customers-create, read
    /// 2026-12-04) goes out before `orders/create`.
    pub fn create_order(&self, mut o: ShopifyOrder) -> ShopifyOrder {
        let mut data = lock(&self.inner.data);
        let at = data.store.tick(None);
        o.created_at = at;
        o.updated_at = at;
        let new_customer = o.customer.as_mut().filter(|c| data.store.customer(c.id).is_none());
        if let Some(c) = new_customer {
            (c.created_at, c.updated_at) = (Some(at), Some(at));
            self.emit("customers/create", &*c, at);
        }
        self.commit_order(&mut data, None, o).expect("the order was just stored")
    }

    /// Stores the order and sends what Shopify sends for the change (`webhooks::order_deliveries`).
    fn commit_order(
        &self,
        data: &mut Data,
        before: Option<&ShopifyOrder>,
        order: ShopifyOrder,
    ) -> Option<ShopifyOrder> {
        let (id, at) = (order.id, order.updated_at);
        data.store.put_order(order);
        let order = data.store.order(id)?;
        let store = &mut data.store;
        let mut hooks = lock(&self.inner.webhooks);
        if hooks.is_active() {
            for (topic, body) in webhooks::order_deliveries(before, &order, || store.alloc_id()) {
                hooks.emit(topic, body, at);
            }
        }
        Some(order)
    }

    /// Changes a customer: applies `f`, moves `updated_at` along the sim clock as
    /// [`ShopifySim::change_order`] does, and sends `customers/update` if a target is set.
    pub fn change_customer(&self, id: ShopifyId, f: impl FnOnce(&mut ShopifyCustomer)) -> Option<ShopifyCustomer> {
        let mut data = lock(&self.inner.data);
        let mut customer = data.store.customer(id)?.clone();
        f(&mut customer);
        customer.id = id;
        if data.store.phone_taken(&customer) {
            return None;
        }
        let at = data.store.tick(customer.updated_at);
        customer.updated_at = Some(at);
        data.store.put_customer(customer.clone());
        self.emit("customers/update", &customer, at);
        Some(customer)
    }

    /// Deletes a customer as the merchant would in the admin (`customerDelete`): refused (false)
    /// while the customer has orders, as Shopify refuses it ("You can only delete customers who
    /// haven't placed any orders",
    /// https://shopify.dev/docs/api/admin-graphql/latest/mutations/customerDelete, read
    /// 2026-12-04). Sends `customers/delete` with Shopify's payload
    /// (`{id, tax_exemptions, admin_graphql_api_id}`, tests/fixtures/shopify/customer_delete.json)
    /// if a webhook target is set. From then on `customer(id:)` answers null.
    pub fn delete_customer(&self, id: ShopifyId) -> bool {
        let mut data = lock(&self.inner.data);
        if data.store.customer(id).is_none() || !data.store.recent_orders_of(id, 1).is_empty() {
            return false;
        }
        data.store.remove_customer(id);
        let at = data.store.tick(None);
        let body = serde_json::json!({
            "id": id,
            "tax_exemptions": [],
            "admin_graphql_api_id": crate::shopify::graphql::gid("Customer", id),
        });
        self.emit("customers/delete", &body, at);
        true
    }

    /// Deletes an order (`orderDelete`), sending `orders/delete` with Shopify's payload
    /// (`{"id": …}`, tests/fixtures/shopify/order_delete.json) if a webhook target is set. From
    /// then on `order(id:)` answers null. False if the sim holds no such order.
    pub fn delete_order(&self, id: ShopifyId) -> bool {
        let mut data = lock(&self.inner.data);
        if !data.store.remove_order(id) {
            return false;
        }
        let at = data.store.tick(None);
        self.emit("orders/delete", &serde_json::json!({ "id": id }), at);
        true
    }

    /// A buyer asks to return `items` items of an order (and, with `exchange_items`, asks for
    /// that many in exchange): a REQUESTED return named `<order name>-R<n>`, and `returns/request`
    /// (sim/shopify/returns.rs has the sources). `None` for an unknown order.
    pub fn request_return(&self, order: ShopifyId, items: i64, exchange_items: i64) -> Option<ShopifyId> {
        let mut data = lock(&self.inner.data);
        let mut stored = data.store.order(order)?;
        let id = data.store.alloc_id();
        let at = data.store.tick(None);
        let name = format!("{}-R{}", stored.name, stored.returns.len() + 1);
        let r = returns::requested(id, order, name, items, exchange_items, at);
        let body = returns::full_body(&r);
        stored.returns.push(r);
        data.store.put_order(stored);
        self.emit("returns/request", &body, at);
        Some(id)
    }

    /// The merchant approves a requested return (`returnApproveRequest`: status OPEN):
    /// `returns/approve`.
    pub fn approve_return(&self, id: ShopifyId) -> bool {
        self.change_return(id, |r, at| {
            r.status = Some(ReturnStatus::Open);
            r.approved_at = Some(at);
            vec![("returns/approve", returns::full_body(r))]
        })
    }

    /// The merchant declines a requested return with Shopify's reason and an optional note
    /// (`returnDeclineRequest`: status DECLINED): `returns/decline`.
    pub fn decline_return(&self, id: ShopifyId, reason: DeclineReason, note: Option<&str>) -> bool {
        self.change_return(id, |r, _| {
            r.status = Some(ReturnStatus::Declined);
            r.decline_reason = Some(reason);
            r.decline_note = note.map(str::to_string);
            vec![("returns/decline", returns::decline_body(r))]
        })
    }

    /// A return label with tracking is attached to the return's reverse delivery:
    /// `reverse_deliveries/attach_deliverable`.
    pub fn attach_return_label(&self, id: ShopifyId, label: ReturnLabel) -> bool {
        let delivery = self.new_id();
        self.change_return(id, |r, at| {
            r.label = Some(label.clone());
            vec![("reverse_deliveries/attach_deliverable", returns::deliverable_body(delivery, r, &label, at))]
        })
    }

    /// The returned parcel arrives and its items are inspected (`Order.returnStatus` becomes
    /// INSPECTION_COMPLETE): `returns/update`.
    pub fn receive_return(&self, id: ShopifyId) -> bool {
        self.change_return(id, |r, _| {
            r.received = Some(true);
            vec![("returns/update", returns::update_body(r))]
        })
    }

    /// The merchant processes the return: with `refund`, a refund of that amount on the order
    /// first (`refunds/create` and `orders/updated`, as `change_order` sends them); then the
    /// return is closed: `returns/process` and `returns/close`.
    pub fn process_return(&self, id: ShopifyId, refund: Option<&str>) -> bool {
        let Some(order) = self.order_of_return(id) else { return false };
        if let Some(amount) = refund {
            let refund_id = self.new_id();
            self.change_order_at(order, |o, _, at| {
                let currency = o.currency.clone();
                o.refunds.push(ShopifyRefund {
                    id: refund_id,
                    order_id: order,
                    note: None,
                    created_at: Some(at),
                    processed_at: Some(at),
                    transactions: vec![ShopifyTransaction {
                        kind: Some("refund".into()),
                        status: Some("success".into()),
                        amount: Some(amount.to_string()),
                        currency,
                    }],
                });
                let whole = o.total_price.as_deref() == Some(amount);
                o.financial_status = Some(if whole { "refunded" } else { "partially_refunded" }.into());
                true
            });
        }
        self.change_return(id, |r, at| {
            r.status = Some(ReturnStatus::Closed);
            r.closed_at = Some(at);
            vec![("returns/process", returns::process_body(r)), ("returns/close", returns::status_body(r))]
        })
    }

    /// Closes, cancels or reopens a return (`returns/close`, `returns/cancel`, `returns/reopen`).
    pub fn set_return_status(&self, id: ShopifyId, status: ReturnStatus) -> bool {
        let topic = match status {
            ReturnStatus::Closed => "returns/close",
            ReturnStatus::Canceled => "returns/cancel",
            ReturnStatus::Open => "returns/reopen",
            ReturnStatus::Requested | ReturnStatus::Declined => return false,
        };
        self.change_return(id, |r, at| {
            r.status = Some(status);
            r.closed_at = (status == ReturnStatus::Closed).then_some(at);
            vec![(topic, returns::status_body(r))]
        })
    }

    /// The order that holds return `id`.
    pub fn order_of_return(&self, id: ShopifyId) -> Option<ShopifyId> {
        let data = lock(&self.inner.data);
        data.store.all_orders().into_iter().find(|o| o.returns.iter().any(|r| r.id == id)).map(|o| o.id)
    }

    /// Applies `f` to return `id` at a new instant of the sim clock (the order's `updated_at`
    /// stays) and sends the deliveries `f` returns. False for an unknown return.
    fn change_return(
        &self,
        id: ShopifyId,
        f: impl FnOnce(&mut ShopifyReturn, DateTime<Utc>) -> Vec<(&'static str, serde_json::Value)>,
    ) -> bool {
        let mut data = lock(&self.inner.data);
        let Some(mut order) = data.store.all_orders().into_iter().find(|o| o.returns.iter().any(|r| r.id == id)) else {
            return false;
        };
        let at = data.store.tick(None);
        let Some(r) = order.returns.iter_mut().find(|r| r.id == id) else { return false };
        let deliveries = f(r, at);
        data.store.put_order(order);
        for (topic, body) in deliveries {
            self.emit(topic, &body, at);
        }
        true
    }

    /// The mandatory compliance topics (shopify.dev/docs/apps/build/privacy-law-compliance,
    /// read 2026-12-04), bodies as in tests/fixtures/shopify: `customers/redact` for the
    /// customer and all their orders (Shopify sends it 10 days after the request; the record
    /// stays in the shop), `customers/data_request` with the request's ID, `shop/redact`.
    pub fn send_customer_redact(&self, id: ShopifyId) -> bool {
        self.compliance("customers/redact", id, None)
    }

    pub fn send_data_request(&self, id: ShopifyId, request_id: i64) -> bool {
        self.compliance("customers/data_request", id, Some(request_id))
    }

    pub fn send_shop_redact(&self, shop_id: i64, shop_domain: &str) {
        let mut data = lock(&self.inner.data);
        let at = data.store.tick(None);
        self.emit("shop/redact", &serde_json::json!({ "shop_id": shop_id, "shop_domain": shop_domain }), at);
    }

    fn compliance(&self, topic: &'static str, id: ShopifyId, request_id: Option<i64>) -> bool {
        let mut data = lock(&self.inner.data);
        let Some(c) = data.store.customer(id).cloned() else { return false };
        let orders = data.store.order_ids_of(id);
        let at = data.store.tick(None);
        let domain = lock(&self.inner.webhooks).shop_domain().unwrap_or_default();
        let customer = serde_json::json!({ "id": c.id, "email": c.email, "phone": c.phone });
        let body = match request_id {
            None => serde_json::json!({
                "shop_id": SHOP_ID, "shop_domain": domain, "customer": customer, "orders_to_redact": orders,
            }),
            Some(request) => serde_json::json!({
                "shop_id": SHOP_ID, "shop_domain": domain, "orders_requested": orders, "customer": customer,
                "data_request": { "id": request },
            }),
        };
        self.emit(topic, &body, at);
        true
    }

    /// Called with the data lock held, so deliveries are queued in the order the changes happened.
    fn emit(&self, topic: &'static str, record: &impl serde::Serialize, at: DateTime<Utc>) {
        let mut hooks = lock(&self.inner.webhooks);
        if let Ok(body) = serde_json::to_vec(record) {
            hooks.emit(topic, body, at);
        }
    }

    /// A small, realistic shop: eight customers (E.164 phones, two in the UK, two sharing a
    /// household number), 1–4 orders each over the last 60 days in every stage (paid, being
    /// prepared, partly shipped, in transit, out for delivery, delivered with UPS/USPS/FedEx
    /// tracking, cancelled, refunded), and one guest order. Dana Whitfield is `+15551234567`,
    /// as in the webhook fixtures. IDs are above 2^53; every `updated_at` is before the clock start.
    pub fn seed_demo(&self) {
        let mut data = lock(&self.inner.data);
        let Data { store, rng } = &mut *data;
        seed::demo(store, rng);
    }

    /// `customers` generated customers with `orders_per_customer` orders each, deterministic
    /// from the seed, all last updated before the clock start; phones `+1415555xxxx` (the area
    /// code moves on each 10 000 customers), unique per customer.
    pub fn seed_generated(&self, customers: usize, orders_per_customer: usize) {
        let mut data = lock(&self.inner.data);
        let Data { store, rng } = &mut *data;
        seed::generated(store, rng, customers, customers * orders_per_customer);
    }

    /// Seeds `customers` generated customers sharing `orders` generated orders (deterministic
    /// for a seed): a shop of any size, e.g. a million orders for the backfill benchmark.
    pub fn seed_shop(&self, customers: usize, orders: usize) {
        let mut data = lock(&self.inner.data);
        let Data { store, rng } = &mut *data;
        seed::generated(store, rng, customers, orders);
    }

    // ---- faults and knobs ----

    /// Each GraphQL answer is delayed by `mean` ± uniform `jitter`.
    pub fn set_latency(&self, mean: Duration, jitter: Duration) {
        let mut knobs = lock(&self.inner.knobs);
        knobs.latency = mean;
        knobs.jitter = jitter;
    }

    pub fn set_failure(&self, failure: Failure) {
        lock(&self.inner.knobs).failure = failure;
    }

    /// Resizes the bucket and refills it to `max`.
    pub fn set_bucket(&self, max: f64, restore_rate: f64) {
        *lock(&self.inner.bucket) = Bucket::new(max, restore_rate);
    }

    /// The bucket as the next answer would report it.
    pub fn bucket_status(&self) -> ThrottleStatus {
        lock(&self.inner.bucket).status()
    }

    /// Answers these protected customer data fields with null and an `ACCESS_DENIED` error, as
    /// Shopify does for an app not approved for them (empty: all approved).
    pub fn set_redacted(&self, fields: &[ProtectedData]) {
        lock(&self.inner.knobs).redacted = fields.to_vec();
    }

    /// Gives `field` (`Type.field`) its own cost, as Shopify may ("Every field in the schema has an
    /// integer cost value assigned to it", the rate-limits page): the field then costs `cost`
    /// instead of the default for what it returns.
    pub fn set_field_cost(&self, field: &str, cost: u32) {
        lock(&self.inner.knobs).field_costs.insert(field.to_string(), cost);
    }

    /// The stable versions Shopify serves from now on, as at a later date when older ones are
    /// retired: a request for a version not in the list is answered by the oldest one in it and
    /// says so in `X-Shopify-API-Version` (https://shopify.dev/docs/api/usage/versioning, read
    /// 2026-12).
    pub fn set_supported_versions(&self, versions: &[&str]) {
        lock(&self.inner.knobs).supported_versions = versions.iter().map(|v| v.to_string()).collect();
    }

    /// Marks fields (`Type.field`) deprecated, as Shopify does in a newer version than the
    /// extract: a request that selects one is answered as usual, with
    /// `X-Shopify-API-Deprecated-Reason` naming the deprecated fields it used.
    pub fn deprecate_fields(&self, fields: &[&str]) {
        lock(&self.inner.knobs).deprecated_fields = fields.iter().map(|f| f.to_string()).collect();
    }

    /// Shopify refuses a query whose requested cost exceeds 1000 points (`MAX_COST_EXCEEDED`),
    /// whatever the bucket holds; the sim does too by default. `None` lifts the limit.
    /// How long a bulk operation runs before `bulkOperation(id:)` says it finished (default 50 ms).
    pub fn set_bulk_run_time(&self, run_time: Duration) {
        lock(&self.inner.bulk).run_time = run_time;
    }

    /// Bulk operations that finish from now on fail with `code` (None: they complete).
    pub fn fail_bulk_operations(&self, code: Option<BulkErrorCode>) {
        lock(&self.inner.bulk).fail_with = code;
    }

    /// Every completed bulk operation's result URL expires now (status EXPIRED).
    pub fn expire_bulk_results(&self) {
        lock(&self.inner.bulk).expire_all();
    }

    /// A pause before each page (500 records) of a bulk result download.
    pub fn set_bulk_page_delay(&self, delay: Duration) {
        lock(&self.inner.bulk).page_delay = delay;
    }

    /// Bulk operations started so far.
    pub fn bulk_operations_started(&self) -> usize {
        lock(&self.inner.bulk).started()
    }

    pub fn set_max_query_cost(&self, max: Option<u32>) {
        lock(&self.inner.knobs).max_query_cost = max;
    }

    // ---- counters ----

    /// GraphQL requests received (all of them: refused, throttled and failed ones too).
    pub fn requests(&self) -> u64 {
        self.inner.counters.requests.load(Ordering::Relaxed)
    }

    /// Requests naming `op` (by `operationName` or the document's `query Name(`).
    pub fn requests_for(&self, op: Operation) -> u64 {
        self.inner.counters.by_op[op_index(op)].load(Ordering::Relaxed)
    }

    /// Tokens handed out by the client-credentials grant.
    pub fn grants(&self) -> u64 {
        self.inner.counters.grants.load(Ordering::Relaxed)
    }

    /// Requests refused with HTTP 401 (no, a wrong or an expired token).
    pub fn unauthorized(&self) -> u64 {
        self.inner.counters.unauthorized.load(Ordering::Relaxed)
    }

    /// Expires every token granted so far (as a merchant rotating the secret or Shopify revoking
    /// them would): the next request with one is answered 401.
    pub fn revoke_tokens(&self) {
        lock(&self.inner.granted).clear();
    }

    /// Requests answered `THROTTLED` or HTTP 429.
    pub fn throttled(&self) -> u64 {
        self.inner.counters.throttled.load(Ordering::Relaxed)
    }

    pub fn reset_counters(&self) {
        let c = &self.inner.counters;
        for counter in std::iter::once(&c.requests).chain(&c.by_op).chain(std::iter::once(&c.throttled)) {
            counter.store(0, Ordering::Relaxed);
        }
    }

    // ---- webhook subscriptions ----

    /// The app's webhook subscriptions, oldest first.
    pub fn webhook_subscriptions(&self) -> Vec<Subscription> {
        lock(&self.inner.subscriptions).all()
    }

    /// Subscription mutations that changed something (created, updated or deleted one).
    pub fn subscription_changes(&self) -> u64 {
        lock(&self.inner.subscriptions).changes
    }

    /// Subscribes `topic` (`ORDERS_CREATE`) to `uri` as another tool on the app might; not
    /// counted as a change made through the API. False when Shopify would refuse it.
    pub fn add_subscription(&self, topic: &str, uri: &str) -> bool {
        let mut subscriptions = lock(&self.inner.subscriptions);
        let changes = subscriptions.changes;
        let answer = subscriptions.create(topic, &serde_json::json!({ "uri": uri }), Utc::now());
        subscriptions.changes = changes;
        answer["userErrors"].as_array().is_some_and(|e| e.is_empty())
    }

    /// Deletes the subscriptions to `topic` (`ORDERS_CREATE`) as the merchant or another tool
    /// might; not counted as a change made through the API.
    pub fn remove_subscriptions(&self, topic: &str) {
        let mut subscriptions = lock(&self.inner.subscriptions);
        let ids: Vec<String> = subscriptions.all().iter().filter(|s| s.topic == topic).map(|s| s.gid()).collect();
        let changes = subscriptions.changes;
        for id in ids {
            subscriptions.delete(&id);
        }
        subscriptions.changes = changes;
    }

    // ---- webhooks ----

    /// Sends webhooks for later changes to `target` (its stats start at zero). Deliveries held
    /// back for a previous target are sent to it.
    pub fn set_webhook_target(&self, target: WebhookTarget) {
        lock(&self.inner.webhooks).set_target(Some(target));
    }

    /// The deliveries dropped since the target was set: (topic, the record's ID).
    pub fn dropped_webhooks(&self) -> Vec<(&'static str, Option<ShopifyId>)> {
        lock(&self.inner.webhooks).dropped()
    }

    /// Stops sending webhooks for later changes.
    pub fn clear_webhook_target(&self) {
        lock(&self.inner.webhooks).set_target(None);
    }

    /// Sends everything still held back, waits until every queued delivery has been answered
    /// (or has failed), and returns the counts since the target was set.
    pub async fn flush_webhooks(&self) -> WebhookStats {
        let Some((done, stats)) = lock(&self.inner.webhooks).begin_flush() else {
            return WebhookStats::default();
        };
        let _ = done.await;
        *lock(&stats)
    }
}

impl std::fmt::Debug for ShopifySim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifySim")
            .field("requests", &self.requests())
            .field("throttled", &self.throttled())
            .finish_non_exhaustive()
    }
}

/// A running emulator server.
#[derive(Debug)]
#[must_use = "the server runs until stop() (dropping the handle leaves it running)"]
pub struct SimServer {
    pub addr: SocketAddr,
    closing: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    /// `http://127.0.0.1:port`: the Admin API base (`SHOPIFY_API_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The GraphQL endpoint at the pinned API version.
    pub fn graphql_url(&self) -> String {
        format!("{}/admin/api/{API_VERSION}/graphql.json", self.url())
    }

    /// Stops accepting, ends requests held by latency or `Failure::Timeout` (HTTP 503), and
    /// waits for the server to finish (at most 5 s, then it is aborted).
    pub async fn stop(self) {
        let SimServer { closing, mut task, .. } = self;
        let _ = closing.send(true);
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// For `orderline sim shopify`: seeds the demo shop, serves it on `listen` until Ctrl-C, and
/// prints the URL, the token and the demo customers' numbers to call from.
pub async fn run_cli(listen: SocketAddr, access_token: String) -> std::io::Result<()> {
    let sim = ShopifySim::new(SimConfig { access_token: access_token.clone(), ..SimConfig::default() });
    sim.seed_demo();
    let server = sim.serve(listen).await?;
    println!("Shopify emulator (Admin GraphQL {API_VERSION}) listening on {}", server.url());
    println!("  SHOPIFY_API_URL={}", server.url());
    println!("  SHOPIFY_CLIENT_ID={}", sim.config().client_id);
    println!("  SHOPIFY_CLIENT_SECRET={}", sim.config().client_secret);
    println!("  (or, as a legacy permanent token, SHOPIFY_ACCESS_TOKEN={access_token})");
    println!("  endpoint: POST {}", server.graphql_url());
    println!("Demo customers (fictional numbers):");
    let orders = sim.orders();
    for c in sim.customers() {
        let names: Vec<&str> =
            orders.iter().filter(|o| o.customer_id() == Some(c.id)).map(|o| o.name.as_str()).collect();
        println!(
            "  {:<18} {:<14} orders {}",
            format!("{} {}", c.first_name.unwrap_or_default(), c.last_name.unwrap_or_default()),
            c.phone.unwrap_or_default(),
            names.join(" ")
        );
    }
    for o in orders.iter().filter(|o| o.customer.is_none()) {
        println!("  guest order {} (phone {})", o.name, o.phone.as_deref().unwrap_or("none"));
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}

/// Shopify's protected customer data fields, as its schema marks them (`protectedContent`):
/// an app asks for each in the Dev Dashboard, and until it is approved Shopify answers such a
/// field with null and an `ACCESS_DENIED` error (HTTP 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectedData {
    Name,
    Email,
    Phone,
    Address,
}

impl ProtectedData {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtectedData::Name => "name",
            ProtectedData::Email => "email",
            ProtectedData::Phone => "phone",
            ProtectedData::Address => "address",
        }
    }
}
