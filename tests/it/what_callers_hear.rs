//! What a caller hears is what Shopify knows: same-second versions (whole-second `updated_at`),
//! the dates callers ask about (shipped, delivered, expected), and every shipment state, on
//! Postgres and SQLite, with the Shopify emulator as the Admin API and the Twilio caller
//! emulator dialling in.

use std::sync::Arc;

use crate::common::line::TOKEN;
use crate::common::{Backend, SHOP, TestApp, fixture};
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::America::New_York;
use orderline::clock::ManualClock;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::domain::ShopifyId;
use orderline::lookup::Source;
use orderline::shopify::payload::ShopifyOrder;
use orderline::sim::shopify::{ShopifySim, SimConfig, SimServer};
use orderline::sim::twilio::{CallerConfig, Transcript, TwilioCaller, scripted};
use serde_json::{Value, json};

const DANA: &str = "+15551234567";
const ORDER: ShopifyId = ShopifyId(9_007_199_254_741_107);

struct Shop {
    sim: ShopifySim,
    _server: SimServer,
    app: TestApp,
    clock: Arc<ManualClock>,
}

/// orderline on `backend` with an empty emulated shop as its Admin API, no reconciler, the
/// caller trusted by caller ID, and days said in New York time.
async fn shop(backend: Backend) -> Shop {
    let sim = ShopifySim::new(SimConfig::default());
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = server.url();
    let token = sim.config().access_token.clone();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(SHOP.to_string());
        s.shopify.access_token = Some(Secret::new(token.as_str()));
        s.shopify.api_url = Some(url.as_str().to_string());
        s.sync.reconcile_every = std::time::Duration::ZERO;
        s.lookup.lookup_budget = std::time::Duration::from_secs(2);
        s.lookup.freshness = std::time::Duration::from_secs(5 * 60);
        s.lookup.warm_count = 0;
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.hours_timezone = "America/New_York".into();
    };
    let app = TestApp::start_with_clock(backend, settings, clock.clone()).await;
    Shop { sim, _server: server, app, clock }
}

impl Shop {
    async fn call(&self) -> String {
        let caller = TwilioCaller::new(CallerConfig::new(&self.app.url, TOKEN, DANA));
        let t: Transcript = caller.call(scripted(&[])).await.expect("the call went through");
        t.spoken().join(" | ")
    }

    /// Delivers `order` as `orders/updated` and waits until it is processed.
    async fn deliver(&self, webhook_id: &str, order: &Value) {
        assert_eq!(self.app.deliver_json("orders/updated", webhook_id, order).await, 200);
        self.app.settle().await;
    }

    async fn delivery_status(&self, webhook_id: &str) -> String {
        self.app.store().delivery(SHOP, webhook_id).await.unwrap().unwrap().status
    }

    fn lookup(&self) -> &orderline::lookup::CallerLookup {
        &self.app.running.as_ref().unwrap().state.lookup
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&New_York).to_rfc3339()
}

fn day(t: DateTime<Utc>) -> String {
    t.with_timezone(&New_York).format("%A, %B %-d").to_string()
}

/// Dana's order #1042 (the webhook fixture, REST-shaped) with one fulfilment: shipped at
/// `shipped`, last changed at `at` (order and fulfilment), in `shipment_status`.
fn order_1042(shipped: DateTime<Utc>, at: DateTime<Utc>, shipment_status: &str) -> Value {
    let mut order = fixture("order_fulfilled.json");
    order["updated_at"] = json!(rfc3339(at));
    order["refunds"] = json!([]);
    order["financial_status"] = json!("paid");
    let f = &mut order["fulfillments"][0];
    f["created_at"] = json!(rfc3339(shipped));
    f["updated_at"] = json!(rfc3339(at));
    f["shipment_status"] = json!(shipment_status);
    order
}

fn record(order: &Value) -> ShopifyOrder {
    serde_json::from_value(order.clone()).unwrap()
}

/// Now, in whole seconds, as Shopify stamps `updated_at`.
fn this_second() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap()
}

async fn a_same_second_webhook_burst_ends_in_the_latest_state_after_the_refetch(backend: Backend) {
    let shop = shop(backend).await;
    let at = this_second();
    let shipped = at - Duration::days(2);
    // Two versions in one second: out for delivery, then delivered. Shopify holds the second.
    let first = order_1042(shipped, at, "out_for_delivery");
    let second = order_1042(shipped, at, "delivered");
    shop.sim.upsert_order(record(&second));
    shop.deliver("w1", &first).await;
    assert!(shop.call().await.contains("is out for delivery with UPS"), "the first version, confirmed");

    shop.deliver("w2", &second).await;
    assert_eq!(shop.delivery_status("w2").await, "unconfirmed", "same second, different content");
    // A late duplicate of the first version does not confirm it again.
    shop.deliver("w3", &first).await;
    assert_eq!(shop.delivery_status("w3").await, "unchanged");

    let answer = shop.lookup().lookup(DANA).await.unwrap();
    assert_eq!(answer.source, Source::Shopify, "refetched, though the row was confirmed a moment ago");
    let heard = shop.call().await;
    assert!(heard.contains(&format!("Your order number 1 0 4 2 was delivered on {}", day(at))), "{heard}");
    let row = shop.app.store().fulfillments(SHOP, ORDER).await.unwrap();
    assert_eq!(row[0].shipment_status.as_deref(), Some("delivered"));
    shop.app.stop().await;
}

async fn a_same_second_live_read_wins_over_the_stored_webhook_copy(backend: Backend) {
    let shop = shop(backend).await;
    let at = this_second();
    let shipped = at - Duration::days(2);
    shop.deliver("w1", &order_1042(shipped, at, "out_for_delivery")).await;
    // Shopify moved on within the same second; the webhook for it is lost.
    shop.sim.upsert_order(record(&order_1042(shipped, at, "delivered")));
    shop.clock.advance(Duration::minutes(10));

    let answer = shop.lookup().lookup(DANA).await.unwrap();
    assert_eq!(answer.source, Source::Shopify);
    let row = shop.app.store().fulfillments(SHOP, ORDER).await.unwrap();
    assert_eq!(row[0].shipment_status.as_deref(), Some("delivered"), "the snapshot wins the tie");
    let heard = shop.call().await;
    assert!(heard.contains("was delivered on"), "{heard}");
    shop.app.stop().await;
}

async fn a_parcel_shipped_15_days_ago_and_scanned_today_is_announced_with_its_ship_date(backend: Backend) {
    let shop = shop(backend).await;
    let now = this_second();
    let shipped = now - Duration::days(15);
    shop.deliver("w1", &order_1042(shipped, now, "in_transit")).await;
    let heard = shop.call().await;
    assert!(heard.contains(&format!("shipped on {} with UPS", day(shipped))), "{heard}");
    assert!(!heard.contains(&day(now)), "the scan's day is not the ship date: {heard}");
    shop.app.stop().await;
}

async fn an_in_transit_order_with_an_estimate_hears_when_it_is_expected(backend: Backend) {
    let shop = shop(backend).await;
    let now = this_second();
    let shipped = now - Duration::days(3);
    let expected = now + Duration::days(4);
    // Shopify's view: GraphQL `estimatedDeliveryAt`, which only a live read carries.
    let mut order = record(&order_1042(shipped, now, "in_transit"));
    order.fulfillments[0].estimated_delivery_at = Some(expected);
    shop.sim.upsert_order(order);
    let heard = shop.call().await;
    assert!(
        heard.contains(&format!("shipped on {} with UPS, and is expected to arrive {}.", day(shipped), day(expected))),
        "{heard}"
    );

    // By webhook, the carrier's estimate comes with a fulfillment event.
    let later = expected + Duration::days(1);
    let event = json!({
        "id": 9_007_199_254_750_001_i64, "fulfillment_id": 9_007_199_254_741_409_i64, "order_id": ORDER.0,
        "status": "in_transit", "happened_at": rfc3339(now), "estimated_delivery_at": rfc3339(later),
        "admin_graphql_api_id": "gid://shopify/FulfillmentEvent/9007199254750001"
    });
    assert_eq!(shop.app.deliver_json("fulfillment_events/create", "w-event", &event).await, 200);
    shop.app.settle().await;
    assert_eq!(shop.delivery_status("w-event").await, "applied");
    let heard = shop.call().await;
    assert!(heard.contains(&format!("and is expected to arrive {}.", day(later))), "{heard}");
    shop.app.stop().await;
}

async fn local_pickup_delay_and_failed_delivery_are_said_plainly(backend: Backend) {
    let shop = shop(backend).await;
    let base = this_second() - Duration::minutes(5);
    let shipped = base - Duration::days(2);
    let cases = [
        ("ready_for_pickup", vec!["Your order number 1 0 4 2 is ready for pickup."]),
        ("picked_up", vec!["Your order number 1 0 4 2 was picked up on"]),
        ("delayed", vec!["is delayed with UPS.", "Someone from our team can look into it for you."]),
        ("attempted_delivery", vec!["The carrier tried to deliver it on", "and will try again."]),
        ("not_delivered", vec!["could not be delivered.", "Someone from our team can look into it for you."]),
        ("failure", vec!["could not be delivered."]),
    ];
    for (i, (status, words)) in cases.into_iter().enumerate() {
        // Shopify's view (GraphQL displayStatus), read by the live fetch once the row is stale.
        let at = base + Duration::seconds(i as i64);
        shop.sim.upsert_order(record(&order_1042(shipped, at, status)));
        shop.clock.advance(Duration::minutes(10));
        let heard = shop.call().await;
        for w in words {
            assert!(heard.contains(w), "{status}: {heard}");
        }
        // The webhook copy of the same state stores the same word as the GraphQL copy.
        let stored = shop.app.store().fulfillments(SHOP, ORDER).await.unwrap();
        assert_eq!(stored[0].shipment_status.as_deref(), Some(status));
    }
    let later = base + Duration::seconds(30);
    shop.deliver("w-delayed", &order_1042(shipped, later, "delayed")).await;
    assert_eq!(shop.delivery_status("w-delayed").await, "applied");
    let stored = shop.app.store().fulfillments(SHOP, ORDER).await.unwrap();
    assert_eq!(stored[0].shipment_status.as_deref(), Some("delayed"));
    shop.app.stop().await;
}

async fn a_12_line_item_order_refreshed_by_graphql_keeps_its_12_items(backend: Backend) {
    let shop = shop(backend).await;
    let at = this_second() - Duration::minutes(1);
    let mut order = order_1042(at - Duration::days(1), at, "in_transit");
    let item = order["line_items"][0].clone();
    let items: Vec<Value> = (0..12)
        .map(|i| {
            let mut item = item.clone();
            item["id"] = json!(9_007_199_254_760_000_i64 + i);
            item["title"] = json!(format!("Item {i}"));
            item
        })
        .collect();
    order["line_items"] = json!(items);
    shop.deliver("w1", &order).await;
    let items_of = "SELECT COUNT(*) FROM order_line_items WHERE order_id = 9007199254741107";
    assert_eq!(shop.app.db.count(items_of).await, 12);

    // Shopify changed the order since (a refund whose createdAt is null, as the schema allows);
    // a GraphQL page carries 5 of its line items.
    let mut newer = record(&order);
    newer.updated_at = at + Duration::seconds(20);
    newer.financial_status = Some("partially_refunded".into());
    let refund: orderline::shopify::payload::ShopifyRefund = serde_json::from_value(json!({
        "id": 9_007_199_254_770_001_i64, "order_id": ORDER.0, "created_at": null,
        "transactions": [{"kind": "refund", "status": "success", "amount": "5.00", "currency": "USD"}]
    }))
    .unwrap();
    newer.refunds = vec![refund];
    shop.sim.upsert_order(newer);
    shop.clock.advance(Duration::minutes(10));
    let answer = shop.lookup().lookup(DANA).await.unwrap();
    assert_eq!(answer.source, Source::Shopify);
    assert_eq!(
        shop.app.store().order(SHOP, ORDER).await.unwrap().unwrap().financial_status.as_deref(),
        Some("partially_refunded")
    );
    assert_eq!(shop.app.db.count(items_of).await, 12, "the truncated copy deleted nothing it did not carry");
    let refunds = shop.app.store().refunds(SHOP, ORDER).await.unwrap();
    assert_eq!((refunds.len(), refunds[0].shopify_created_at), (1, None));
    assert!(shop.call().await.contains("Part of it has been refunded."));
    shop.app.stop().await;
}

async fn a_shop_naming_orders_so_1001_a_lets_a_caller_key_1001(backend: Backend) {
    let shop = shop(backend).await;
    let at = this_second() - Duration::minutes(1);
    let mut order = order_1042(at - Duration::days(1), at, "in_transit");
    order["name"] = json!("SO-1001-A");
    order["order_number"] = json!(1001);
    shop.deliver("w1", &order).await;
    let stranger = |keys: &'static str| {
        let caller = TwilioCaller::new(CallerConfig::new(&shop.app.url, TOKEN, "+15550199999"));
        async move { caller.call(scripted(&[keys])).await.expect("the call went through").spoken().join(" | ") }
    };
    let heard = stranger("1001").await;
    assert!(heard.contains("Please enter your order number"), "{heard}");
    assert!(heard.contains("Your order number 1 0 0 1 shipped on"), "{heard}");

    // An order the store does not have yet: Shopify is asked for the exact name, in the format
    // the shop's orders use.
    let mut next = record(&order);
    next.id = ShopifyId(9_007_199_254_741_999);
    next.name = "SO-1002-A".into();
    next.order_number = Some(1002);
    next.fulfillments.clear();
    next.fulfillment_status = None;
    shop.sim.upsert_order(next);
    let heard = stranger("1002").await;
    assert!(heard.contains("Your order number 1 0 0 2 was paid on"), "{heard}");
    let stored = shop.app.store().order(SHOP, ShopifyId(9_007_199_254_741_999)).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.order_number), ("SO-1002-A", Some(1002)));
    assert!(stranger("1003").await.contains("couldn't find"), "no such order");
    shop.app.stop().await;
}

on_both_backends!(
    a_same_second_webhook_burst_ends_in_the_latest_state_after_the_refetch,
    a_same_second_live_read_wins_over_the_stored_webhook_copy,
    a_parcel_shipped_15_days_ago_and_scanned_today_is_announced_with_its_ship_date,
    an_in_transit_order_with_an_estimate_hears_when_it_is_expected,
    local_pickup_delay_and_failed_delivery_are_said_plainly,
    a_12_line_item_order_refreshed_by_graphql_keeps_its_12_items,
    a_shop_naming_orders_so_1001_a_lets_a_caller_key_1001,
);
