//! Webhook deliveries for the sim's changes, signed and sent as Shopify sends them, by one
//! sender task in order, with chosen loss, duplication and reordering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{mpsc, oneshot};

use super::lock;
use super::rng::Rng;
use crate::domain::ShopifyId;
use crate::shopify::graphql::API_VERSION;
use crate::shopify::payload::{ShopifyFulfillmentEvent, ShopifyOrder};
use crate::shopify::signature;

/// Where the sim sends webhooks, and what goes wrong on the way (each a probability in 0..=1,
/// decided per change by a PRNG seeded from `SimConfig::seed`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// The full URL, e.g. `http://127.0.0.1:8080/shopify/webhooks`.
    pub url: String,
    /// The app's client secret: the HMAC key.
    pub secret: String,
    /// Sent as `X-Shopify-Shop-Domain`, e.g. `orderline-demo.myshopify.com`.
    pub shop_domain: String,
    /// Never sent.
    pub drop: f64,
    /// Sent twice with the same webhook ID, as a Shopify retry is.
    pub duplicate: f64,
    /// Held back and sent after the next delivery (or at `flush_webhooks`).
    pub reorder: f64,
}

impl WebhookTarget {
    /// A target with no faults.
    pub fn new(url: impl Into<String>, secret: impl Into<String>, shop_domain: impl Into<String>) -> WebhookTarget {
        WebhookTarget {
            url: url.into(),
            secret: secret.into(),
            shop_domain: shop_domain.into(),
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}

/// Counts since the target was set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Deliveries called for (one change of an order calls for several topics).
    pub changes: u64,
    /// HTTP requests made (duplicates count twice).
    pub sent: u64,
    /// Changes whose delivery was never sent.
    pub dropped: u64,
    /// Changes delivered twice.
    pub duplicated: u64,
    /// Changes held back behind the next delivery.
    pub reordered: u64,
    /// Requests answered with a status outside 2xx.
    pub non_2xx: u64,
    /// Requests that got no answer (connection refused, timeout).
    pub failed: u64,
}

struct Delivery {
    topic: &'static str,
    body: Vec<u8>,
    hmac: String,
    webhook_id: String,
    event_id: String,
    triggered_at: String,
}

enum Job {
    Send(Arc<Delivery>),
    Flush(oneshot::Sender<()>),
}

struct Active {
    target: WebhookTarget,
    client: reqwest::Client,
    tx: mpsc::UnboundedSender<Job>,
    /// Until the sender task is spawned (it needs a Tokio runtime).
    rx: Option<mpsc::UnboundedReceiver<Job>>,
    held: Vec<Arc<Delivery>>,
    stats: Arc<Mutex<WebhookStats>>,
    /// The topic and subject of each dropped delivery (see `Webhooks::dropped`).
    dropped: Vec<(&'static str, Option<ShopifyId>)>,
}

impl Active {
    fn push(&mut self, job: Job) {
        // A send fails only when the sender task is gone (its runtime ended); nothing can be sent then.
        let _ = self.tx.send(job);
    }

    fn release_held(&mut self) {
        for d in std::mem::take(&mut self.held) {
            self.push(Job::Send(d));
        }
    }

    fn ensure_sender(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let rx = self.rx.take().expect("checked above");
        runtime.spawn(send_all(self.client.clone(), self.target.clone(), rx, self.stats.clone()));
    }
}

pub(crate) struct Webhooks {
    faults: Rng,
    ids: Rng,
    active: Option<Active>,
}

impl Webhooks {
    pub(crate) fn new(seed: u64) -> Webhooks {
        Webhooks { faults: Rng::new(seed, 0x0057_EB00), ids: Rng::new(seed, 0x1D5), active: None }
    }

    /// Switches to `target` (or to none); whatever the previous target held back is sent to it.
    pub(crate) fn set_target(&mut self, target: Option<WebhookTarget>) {
        if let Some(mut old) = self.active.take() {
            old.release_held();
            old.ensure_sender();
        }
        let Some(mut target) = target else { return };
        for p in [&mut target.drop, &mut target.duplicate, &mut target.reorder] {
            *p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .user_agent("Shopify-Captain-Hook")
            .build()
            .expect("an HTTP client with default TLS settings builds");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut active =
            Active { target, client, tx, rx: Some(rx), held: Vec::new(), stats: Arc::default(), dropped: Vec::new() };
        active.ensure_sender();
        self.active = Some(active);
    }

    pub(crate) fn shop_domain(&self) -> Option<String> {
        self.active.as_ref().map(|a| a.target.shop_domain.clone())
    }

    /// What was dropped since the target was set: the topic and the record it was about (the
    /// body's `id`, or its `customer.id` for the compliance topics). Deletions and redactions
    /// are the losses a reconcile cannot repair: Shopify's order and customer lists no longer
    /// hold the record.
    pub(crate) fn dropped(&self) -> Vec<(&'static str, Option<ShopifyId>)> {
        self.active.as_ref().map(|a| a.dropped.clone()).unwrap_or_default()
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Builds and queues the delivery for one change (nothing when no target is set). `body` is
    /// the record as orderline's serde writes it; it is sent in Shopify's REST shape (`rest_shape`).
    pub(crate) fn emit(&mut self, topic: &'static str, body: Vec<u8>, triggered_at: DateTime<Utc>) {
        let Some(active) = self.active.as_mut() else { return };
        let body = rest_shape(topic, &body);
        // Always three draws per change, so the decisions depend only on the seed and the count.
        let drop = self.faults.chance(active.target.drop);
        let duplicate = self.faults.chance(active.target.duplicate);
        let reorder = self.faults.chance(active.target.reorder);
        {
            let mut stats = lock(&active.stats);
            stats.changes += 1;
            if drop {
                stats.dropped += 1;
                drop_record(&mut active.dropped, topic, &body);
                return;
            }
            stats.duplicated += u64::from(duplicate);
            stats.reordered += u64::from(reorder);
        }
        let delivery = Arc::new(Delivery {
            topic,
            hmac: signature::sign(&active.target.secret, &body),
            body,
            webhook_id: self.ids.uuid(),
            event_id: self.ids.uuid(),
            triggered_at: triggered_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        });
        let copies = if duplicate { 2 } else { 1 };
        if reorder {
            active.held.extend(std::iter::repeat_n(delivery, copies));
        } else {
            for _ in 0..copies {
                active.push(Job::Send(delivery.clone()));
            }
            active.release_held();
        }
        active.ensure_sender();
    }

    /// Sends what is held back and queues a marker; the answer resolves once all before it went out.
    pub(crate) fn begin_flush(&mut self) -> Option<(oneshot::Receiver<()>, Arc<Mutex<WebhookStats>>)> {
        let active = self.active.as_mut()?;
        active.release_held();
        let (done, wait) = oneshot::channel();
        active.push(Job::Flush(done));
        active.ensure_sender();
        Some((wait, active.stats.clone()))
    }
}

fn drop_record(dropped: &mut Vec<(&'static str, Option<ShopifyId>)>, topic: &'static str, body: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let id = value.get("customer").and_then(|c| c.get("id")).or_else(|| value.get("id"));
    dropped.push((topic, id.and_then(serde_json::Value::as_i64).map(ShopifyId)));
}

/// The shop's time zone: REST payloads give times in the shop's offset
/// (`"updated_at": "2026-11-03T19:41:30-05:00"`, as in Shopify's published webhook examples,
/// shopify.dev/docs/api/webhooks/latest (sample payloads, read 2026-12-04), and
/// tests/fixtures/shopify).
const SHOP_TZ: chrono_tz::Tz = chrono_tz::America::New_York;

/// The deliveries Shopify sends when an order goes from `before` (`None`: just placed) to
/// `after`, in the order it sends them. Topics per shopify.dev/docs/api/webhooks/latest (read
/// 2026-12-04): an order placed and paid at checkout → `orders/create` and `orders/paid` (the
/// same `updated_at`: a same-second burst); a new fulfilment → `fulfillments/create` (and
/// `fulfillment_events/create` when it already has a shipment status), then `orders/fulfilled`
/// or `orders/partially_fulfilled`; a tracking update → `fulfillments/update`
/// and `fulfillment_events/create` (the only REST resource that carries the carrier's estimate,
/// shopify.dev/docs/api/admin-rest/latest/resources/fulfillmentevent); a refund →
/// `refunds/create`; a cancellation → `orders/cancelled`; payment captured later →
/// `orders/paid`; and every change to an order ends with `orders/updated` (observed for
/// fulfilling and refunding items: "Fulfill items (order_updated is triggered)", "Refund items
/// (order_updated is triggered)", community.shopify.com/c/webhooks-and-events/fulfillmentorder-
/// and-fulfillmentorderlineitem-create-update/td-p/2445856, read 2026-12-04; for a tracking
/// event it follows from the order's `updatedAt` moving, as it does in this emulator). `next_id` hands out
/// the IDs of new fulfilment events. Bodies are orderline's serde form; `emit` reshapes them.
pub(crate) fn order_deliveries(
    before: Option<&ShopifyOrder>,
    after: &ShopifyOrder,
    mut next_id: impl FnMut() -> ShopifyId,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let paid = |o: &ShopifyOrder| o.financial_status.as_deref() == Some("paid");
    let Some(before) = before else {
        out.push(("orders/create", json(after)));
        if paid(after) {
            out.push(("orders/paid", json(after)));
        }
        return out;
    };
    let mut fulfilled = false;
    for f in &after.fulfillments {
        let old = before.fulfillments.iter().find(|old| old.id == f.id);
        match old {
            None => {
                out.push(("fulfillments/create", json(f)));
                fulfilled = true;
            }
            Some(old) if old != f => out.push(("fulfillments/update", json(f))),
            Some(_) => continue,
        }
        // A tracking event (a new shipment status) is also a FulfillmentEvent.
        if old.map(|o| &o.shipment_status) != Some(&f.shipment_status)
            && let Some(status) = f.shipment_status.clone()
        {
            let event = ShopifyFulfillmentEvent {
                id: next_id(),
                fulfillment_id: f.id,
                order_id: f.order_id,
                status,
                happened_at: Some(f.updated_at),
                estimated_delivery_at: f.estimated_delivery_at,
            };
            out.push(("fulfillment_events/create", json(&event)));
        }
    }
    if fulfilled {
        match after.fulfillment_status.as_deref() {
            Some("fulfilled") => out.push(("orders/fulfilled", json(after))),
            Some("partial") => out.push(("orders/partially_fulfilled", json(after))),
            _ => {}
        }
    }
    for r in after.refunds.iter().filter(|r| !before.refunds.iter().any(|old| old.id == r.id)) {
        out.push(("refunds/create", json(r)));
    }
    if after.cancelled_at.is_some() && before.cancelled_at.is_none() {
        out.push(("orders/cancelled", json(after)));
    }
    if paid(after) && !paid(before) {
        out.push(("orders/paid", json(after)));
    }
    out.push(("orders/updated", json(after)));
    out
}

/// A record as a webhook body (orderline's serde form; `emit` reshapes it).
fn json(record: &impl serde::Serialize) -> Vec<u8> {
    // These plain records (string keys only) always serialize.
    serde_json::to_vec(record).unwrap_or_default()
}

/// A record in Shopify's REST webhook shape, as in the sample payloads of
/// shopify.dev/docs/api/webhooks/latest and tests/fixtures/shopify (read 2026-12-04): every
/// resource carries its `admin_graphql_api_id` (`gid://shopify/Order/…`), times are in the
/// shop's offset, whole seconds; fields only GraphQL has (`inTransitAt`, `deliveredAt`,
/// `estimatedDeliveryAt` on a fulfilment) are not sent; order addresses have no ID; the
/// customer inside an order carries `default_address` but not `addresses` (2025-01 changelog,
/// "changes to existing customer's webhooks payload"). The kinds follow the REST resources.
fn rest_shape(topic: &str, body: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else { return body.to_vec() };
    let kind = match topic.split('/').next() {
        // `{"id": …}` only (tests/fixtures/shopify/order_delete.json).
        Some("orders") if topic == "orders/delete" => return body.to_vec(),
        Some("orders") => "Order",
        Some("customers") if topic == "customers/redact" || topic == "customers/data_request" => {
            return body.to_vec();
        }
        Some("customers") => "Customer",
        Some("fulfillments") => "Fulfillment",
        Some("fulfillment_events") => "FulfillmentEvent",
        Some("refunds") => "Refund",
        _ => return body.to_vec(),
    };
    shape(&mut value, Some(kind), true);
    serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec())
}

fn shape(value: &mut serde_json::Value, kind: Option<&str>, top: bool) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let (Some(kind), Some(id)) = (kind, map.get("id").and_then(Value::as_i64)) {
                map.insert("admin_graphql_api_id".into(), Value::String(format!("gid://shopify/{kind}/{id}")));
            }
            match kind {
                Some("Fulfillment") => {
                    for only_graphql in ["in_transit_at", "delivered_at", "estimated_delivery_at"] {
                        map.remove(only_graphql);
                    }
                }
                Some("Customer") if !top => {
                    map.remove("addresses");
                }
                _ => {}
            }
            for address in ["billing_address", "shipping_address"] {
                if let Some(Value::Object(a)) = map.get_mut(address) {
                    a.remove("id");
                }
            }
            for (key, field) in map.iter_mut() {
                if key.ends_with("_at")
                    && let Some(t) = field.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    let local = t.with_timezone(&SHOP_TZ).fixed_offset();
                    *field = Value::String(local.to_rfc3339_opts(SecondsFormat::Secs, false));
                    continue;
                }
                let child = match key.as_str() {
                    "customer" => Some("Customer"),
                    "line_items" => Some("LineItem"),
                    "fulfillments" => Some("Fulfillment"),
                    "refunds" => Some("Refund"),
                    _ => None,
                };
                if child.is_some() || field.is_object() || field.is_array() {
                    shape(field, child, false);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| shape(item, kind, false)),
        _ => {}
    }
}

async fn send_all(
    client: reqwest::Client,
    target: WebhookTarget,
    mut rx: mpsc::UnboundedReceiver<Job>,
    stats: Arc<Mutex<WebhookStats>>,
) {
    while let Some(job) = rx.recv().await {
        let d = match job {
            Job::Send(d) => d,
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let result = client
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", d.topic)
            .header("X-Shopify-Hmac-Sha256", &d.hmac)
            .header("X-Shopify-Shop-Domain", &target.shop_domain)
            .header("X-Shopify-API-Version", API_VERSION)
            .header("X-Shopify-Webhook-Id", &d.webhook_id)
            .header("X-Shopify-Event-Id", &d.event_id)
            .header("X-Shopify-Triggered-At", &d.triggered_at)
            .body(d.body.clone())
            .send()
            .await;
        let outcome = match result {
            // Read the body so the connection is reused.
            Ok(response) => {
                let ok = response.status().is_success();
                let _ = response.bytes().await;
                Some(ok)
            }
            Err(_) => None,
        };
        let mut stats = lock(&stats);
        stats.sent += 1;
        match outcome {
            Some(true) => {}
            Some(false) => stats.non_2xx += 1,
            None => stats.failed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::payload::{ShopifyChange, ShopifyOrder, Topic};

    #[test]
    fn a_webhook_body_has_shopifys_rest_shape_and_parses_back_to_the_same_order() {
        let path = format!("{}/tests/fixtures/shopify/order_fulfilled.json", env!("CARGO_MANIFEST_DIR"));
        let order: ShopifyOrder = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let ours = serde_json::to_vec(&order).unwrap();
        let body = rest_shape("orders/updated", &ours);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["admin_graphql_api_id"], "gid://shopify/Order/9007199254741107");
        assert_eq!(
            json["customer"]["admin_graphql_api_id"],
            format!("gid://shopify/Customer/{}", order.customer.as_ref().unwrap().id)
        );
        assert!(json["line_items"][0]["admin_graphql_api_id"].as_str().unwrap().starts_with("gid://shopify/LineItem/"));
        assert!(
            json["fulfillments"][0]["admin_graphql_api_id"].as_str().unwrap().starts_with("gid://shopify/Fulfillment/")
        );
        // November in New York: the shop's offset, whole seconds.
        assert_eq!(json["updated_at"], "2026-11-03T19:41:30-05:00");
        let ShopifyChange::Order(back) = ShopifyChange::parse(Topic::OrdersUpdated, &body).unwrap() else { panic!() };
        assert_eq!(
            (back.updated_at, back.fulfillments[0].created_at),
            (order.updated_at, order.fulfillments[0].created_at)
        );
    }
}
