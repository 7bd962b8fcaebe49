//! Caller lookup against the Shopify emulator: freshness, the live fetch under a budget, the
//! negative cache, single flight, the client's bucket and breaker, and the JSON API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, SHOP, TestApp, fixture, fixture_bytes};
use chrono::Utc;
use orderline::clock::ManualClock;
use orderline::config::{Secret, Settings};
use orderline::lookup::Source;
use orderline::shopify::breaker::BreakerState;
use orderline::shopify::graphql::{Operation, PAGE_SIZE};
use orderline::shopify::payload::ShopifyOrder;
use orderline::shopify::writes::writes;
use orderline::sim::shopify::{Failure, ShopifySim, SimConfig, SimServer};

const CALLER: &str = "+15551234567";

struct Shop {
    sim: ShopifySim,
    server: SimServer,
}

async fn shop(config: SimConfig) -> Shop {
    let sim = ShopifySim::new(config);
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Shop { sim, server }
}

fn order(name: &str) -> ShopifyOrder {
    serde_json::from_value(fixture(name)).unwrap()
}

/// orderline with the emulator as its Shopify, no periodic reconciler and nothing warmed.
async fn app_for(shop: &Shop, clock: Arc<ManualClock>, change: impl FnOnce(&mut Settings)) -> TestApp {
    let url = shop.server.url();
    let token = shop.sim.config().access_token.clone();
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(SHOP.into());
        s.shopify.access_token = Some(Secret::new(token));
        s.shopify.api_url = Some(url);
        s.lookup.lookup_budget = Duration::from_millis(400);
        s.lookup.freshness = Duration::from_secs(5 * 60);
        s.sync.reconcile_every = Duration::ZERO;
        s.lookup.warm_count = 0;
        s.agents.agent_token = Some(Secret::new("agent-secret"));
        change(s);
    };
    let app = TestApp::start_with_clock(Backend::Postgres, settings, clock).await;
    scopes_checked(&app).await;
    app
}

/// orderline asks for its access scopes once at start; the tests begin after that.
async fn scopes_checked(app: &TestApp) {
    let client = app.running.as_ref().unwrap().state.shopify.clone().expect("a Shopify client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.scopes_checked() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(client.scopes_checked(), "the scope check at start was answered");
}

/// Requests Shopify got for caller data (orderline also checks its access scopes once at start).
fn asked(shop: &Shop) -> u64 {
    shop.sim.requests() - shop.sim.requests_for(Operation::AccessScopes)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

fn statuses(answer: &orderline::lookup::CallerAnswer) -> Vec<Option<&'static str>> {
    let record = answer.record.as_ref().expect("a known caller");
    record.customers[0].orders.iter().map(|o| o.fulfillment_status).collect()
}

#[tokio::test]
async fn a_fresh_row_is_answered_without_asking_shopify() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |_| {}).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;

    let lookup = &app.running.as_ref().unwrap().state.lookup;
    let first = lookup.lookup("(555) 123-4567").await.unwrap();
    assert_eq!(first.source, Source::Store);
    assert_eq!(first.record.as_ref().unwrap().customers[0].first_name.as_deref(), Some("Dana"));
    let second = lookup.lookup(CALLER).await.unwrap();
    assert_eq!(second.source, Source::Cache);
    assert_eq!(asked(&shop), 0, "Shopify was not asked");
    app.stop().await;
}

#[tokio::test]
async fn a_stale_row_is_refreshed_from_shopify_within_budget() {
    let shop = shop(SimConfig::default()).await;
    shop.sim.upsert_order(order("order_fulfilled.json"));
    let clock = clock();
    let app = app_for(&shop, clock.clone(), |_| {}).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;
    let lookup = &app.running.as_ref().unwrap().state.lookup;
    assert_eq!(statuses(&lookup.lookup(CALLER).await.unwrap()), vec![None], "unfulfilled, from the webhook");

    clock.advance(chrono::Duration::minutes(10));
    let started = Instant::now();
    let answer = lookup.lookup(CALLER).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(answer.source, Source::Shopify);
    assert_eq!(statuses(&answer), vec![Some("fulfilled")]);
    assert_eq!(shop.sim.requests_for(Operation::CustomersByPhone), 1);
    // Applied through the one apply path: the store has it too.
    let stored = app.store().order(SHOP, orderline::domain::ShopifyId(9_007_199_254_741_107)).await.unwrap();
    assert_eq!(stored.unwrap().fulfillment_status.as_deref(), Some("fulfilled"));
    // Fresh now: from the cache, or from the store when the change notice of the fetch's own
    // write dropped the entry first. Either way Shopify is not asked again.
    assert!(matches!(lookup.lookup(CALLER).await.unwrap().source, Source::Cache | Source::Store));
    assert_eq!(asked(&shop), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_shopify_gets_the_stale_row_within_budget_and_fresh_data_next_time() {
    let shop = shop(SimConfig::default()).await;
    shop.sim.upsert_order(order("order_fulfilled.json"));
    shop.sim.set_latency(Duration::from_millis(900), Duration::ZERO);
    let clock = clock();
    let app = app_for(&shop, clock.clone(), |s| s.lookup.lookup_budget = Duration::from_millis(300)).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;
    clock.advance(chrono::Duration::minutes(10));
    let lookup = &app.running.as_ref().unwrap().state.lookup;

    let started = Instant::now();
    let answer = lookup.lookup(CALLER).await.unwrap();
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(300 + 100), "waited {waited:?}");
    assert_eq!(answer.source, Source::Stale);
    assert_eq!(statuses(&answer), vec![None], "the stale row, as stored");

    // The fetch finished in the background: the next caller gets the fresh row from the cache.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let next = lookup.lookup(CALLER).await.unwrap();
    assert!(matches!(next.source, Source::Cache | Source::Store), "{:?}", next.source);
    assert_eq!(statuses(&next), vec![Some("fulfilled")]);
    assert_eq!(asked(&shop), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_number_asks_shopify_once_then_is_cached_as_nobody() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |_| {}).await;
    let lookup = &app.running.as_ref().unwrap().state.lookup;
    let first = lookup.lookup("+14155550199").await.unwrap();
    assert_eq!((first.source, first.record.is_none()), (Source::Unknown, true));
    let second = lookup.lookup("+1 415 555 0199").await.unwrap();
    assert_eq!((second.source, second.record.is_none()), (Source::Unknown, true));
    assert_eq!(asked(&shop), 1);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_lookups_for_one_number_make_one_shopify_request() {
    let shop = shop(SimConfig::default()).await;
    shop.sim.upsert_order(order("order_fulfilled.json"));
    shop.sim.set_latency(Duration::from_millis(200), Duration::ZERO);
    let app = app_for(&shop, clock(), |_| {}).await;
    let lookup = app.running.as_ref().unwrap().state.lookup.clone();
    let answers = futures::future::join_all((0..50).map(|_| {
        let lookup = lookup.clone();
        async move { lookup.lookup(CALLER).await.unwrap() }
    }))
    .await;
    assert_eq!(asked(&shop), 1);
    let seen: Vec<_> = answers.iter().map(|a| (a.source, a.record.is_some())).collect();
    assert!(seen.iter().all(|seen| *seen == (Source::Shopify, true)), "{seen:?}");
    assert!(answers.iter().all(|a| statuses(a) == vec![Some("fulfilled")]));
    app.stop().await;
}

#[tokio::test]
async fn no_request_is_sent_that_the_bucket_says_would_be_throttled() {
    // A bucket that holds one CustomersByPhone query (Shopify charges the requested cost up front
    // and refunds the unused part after) and refills slowly.
    let cost = f64::from(Operation::CustomersByPhone.estimated_cost(PAGE_SIZE));
    let shop = shop(SimConfig { bucket_max: cost + 20.0, restore_rate: 10.0, ..SimConfig::default() }).await;
    shop.sim.set_latency(Duration::from_millis(50), Duration::ZERO);
    let app = app_for(&shop, clock(), |s| s.lookup.lookup_budget = Duration::from_millis(300)).await;
    let lookup = app.running.as_ref().unwrap().state.lookup.clone();
    // Eight callers at once, each a different number: without the client's bucket, all eight
    // queries would go out and Shopify would throttle most of them.
    let answers = futures::future::join_all((0..8).map(|n| {
        let lookup = lookup.clone();
        async move { lookup.lookup(&format!("+1415555{:04}", 100 + n)).await.unwrap() }
    }))
    .await;
    assert!(answers.iter().all(|a| matches!(a.source, Source::Unknown | Source::Stale)));
    let sent_within_budget = asked(&shop);
    assert!((1..8).contains(&sent_within_budget), "callers did not wait on a drained bucket: {sent_within_budget}");
    // The fetches go on in the background, each sent only once an earlier answer has given its
    // unused points back: all eight get through, and Shopify never has to throttle one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while asked(&shop) < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(asked(&shop), 8);
    assert_eq!(shop.sim.throttled(), 0, "Shopify never had to throttle us");
    app.stop().await;
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_closes_after_a_good_trial() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |s| {
        s.sync.breaker_threshold = 3;
        s.sync.breaker_cooldown = Duration::from_millis(500);
    })
    .await;
    shop.sim.set_failure(Failure::Http500);
    let state = &app.running.as_ref().unwrap().state;
    let client = state.shopify.as_ref().unwrap();
    for n in 0..6 {
        let answer = state.lookup.lookup(&format!("+1415555{:04}", 200 + n)).await.unwrap();
        assert_eq!(answer.source, Source::Stale);
    }
    assert_eq!(asked(&shop), 3, "after three failures nothing more was sent");
    assert_eq!(client.breaker_state(), BreakerState::Open);

    shop.sim.set_failure(Failure::None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    let answer = state.lookup.lookup("+14155550300").await.unwrap();
    assert_eq!(answer.source, Source::Unknown, "the trial went through");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    assert_eq!(asked(&shop), 4);
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("orderline_shopify_breaker_state 0"));
    app.stop().await;
}

#[tokio::test]
async fn withheld_caller_ids_are_not_looked_up() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |_| {}).await;
    let lookup = &app.running.as_ref().unwrap().state.lookup;
    for raw in ["anonymous", "+266696687", ""] {
        assert_eq!(lookup.lookup(raw).await.unwrap().source, Source::Withheld, "{raw:?}");
    }
    assert_eq!(asked(&shop), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_customers_api_needs_the_agent_token_and_gives_ids_as_strings() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |_| {}).await;
    app.deliver("orders/fulfilled", "w1", &fixture_bytes("order_fulfilled.json")).await;
    app.settle().await;
    let url = format!("{}/api/customers?phone=%2B15551234567", app.url);
    let refused = app.client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = app.client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: serde_json::Value =
        app.client.get(&url).bearer_auth("agent-secret").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["phone"], "+15551234567");
    assert_eq!(body["customers"][0]["id"], "9007199254740993");
    assert_eq!(body["customers"][0]["orders"][0]["id"], "9007199254741107");
    assert_eq!(body["customers"][0]["orders"][0]["fulfillments"][0]["tracking_company"], "UPS");
    app.stop().await;
}

#[tokio::test]
async fn without_an_agent_token_the_api_says_how_to_set_one() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |s| s.agents.agent_token = Some(Secret::new(""))).await;
    let response = app.client.get(format!("{}/api/customers?phone=%2B15551234567", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("ORDERLINE_AGENT_TOKEN"));
    app.stop().await;
}

#[tokio::test]
async fn warming_puts_callers_in_the_cache_before_anyone_calls() {
    let shop = shop(SimConfig::default()).await;
    let app = app_for(&shop, clock(), |_| {}).await;
    let mut changes = app.store().subscribe_changes();
    app.deliver("orders/fulfilled", "w1", &fixture_bytes("order_fulfilled.json")).await;
    app.deliver("customers/create", "w2", &fixture_bytes("customer_create.json")).await;
    // A second customer on Dana's number: the warmed entry must hold both.
    let mut partner = fixture("customer_create.json");
    partner["id"] = serde_json::json!(9_007_199_254_742_001u64);
    partner["phone"] = serde_json::json!(CALLER);
    app.deliver_json("customers/create", "w3", &partner).await;
    app.settle_hint().await;
    // The deliveries' change notices (LISTEN/NOTIFY, after their commits) have reached this
    // instance and dropped what they name before the cache is warmed, not after.
    while tokio::time::timeout(Duration::from_millis(300), changes.recv()).await.is_ok() {}
    let lookup = &app.running.as_ref().unwrap().state.lookup;

    // Fewer than the shop holds: the most recently updated first, in chunks.
    assert!(lookup.warm(1).await.unwrap() >= 1);
    // The whole shop: table scans.
    let cached = lookup.warm(1000).await.unwrap();
    // Dana: +15551234567 (phone and default address), +442079460958 (billing), +15555557447
    // (shipping); Siobhán and the partner: +442079460321, +441614960000; the partner: Dana's number.
    assert_eq!(cached, 5);
    let answer = lookup.lookup(CALLER).await.unwrap();
    assert_eq!(answer.source, Source::Cache, "no store read: it was warmed");
    let mut ids: Vec<i64> = answer.record.unwrap().customers.iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, vec![9_007_199_254_740_993, 9_007_199_254_742_001]);
    assert_eq!(asked(&shop), 0);
    app.stop().await;
}

/// A shop with what makes warming hard: a number two customers share, a number that stands on
/// a customer twice, a phone only an order carries, more orders than a record keeps (three created
/// at the same instant, one of them left out), fulfilments and refunds arriving out of order, a customer without a
/// phone, a guest order, text that is not a number, and another shop on the same number.
fn tricky_shop() -> Vec<orderline::shopify::payload::ShopifyChange> {
    use orderline::shopify::payload::{ShopifyChange, ShopifyCustomer, ShopifyOrder};
    use serde_json::json;
    let customer = |id: u64, phone: Option<&str>, first: Option<&str>, addresses: serde_json::Value| {
        let c: ShopifyCustomer = serde_json::from_value(json!({
            "id": id, "first_name": first, "last_name": "Whitfield", "email": format!("c{id}@example.com"),
            "phone": phone, "state": "enabled", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-11-01T00:00:00Z", "addresses": addresses,
            "default_address": addresses.get(0).cloned(),
        }))
        .unwrap();
        ShopifyChange::Customer(Box::new(c))
    };
    let order = |id: u64, customer: Option<u64>, created: &str, extra: serde_json::Value| {
        let mut o = json!({
            "id": id, "name": format!("#{}", id % 10_000), "financial_status": "paid",
            "fulfillment_status": "fulfilled", "total_price": "12.50", "currency": "EUR",
            "shipping_address": {"zip": "10115", "country_code": "DE"},
            "created_at": created, "updated_at": "2026-11-10T00:00:00Z",
        });
        if let Some(c) = customer {
            o["customer"] = json!({"id": c});
        }
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        let o: ShopifyOrder = serde_json::from_value(o).unwrap();
        ShopifyChange::Order(Box::new(o))
    };
    let fulfilment = |id: u64, order: u64, shipment: Option<&str>| {
        json!({"id": id, "order_id": order, "status": "success", "shipment_status": shipment,
               "tracking_company": "UPS", "tracking_number": format!("1Z{id}"),
               "tracking_url": null, "updated_at": "2026-11-11T00:00:00Z"})
    };
    let refund = |id: u64, order: u64| json!({"id": id, "order_id": order, "created_at": "2026-11-12T00:00:00Z"});
    let (a, b, c, d) = (9_007_199_254_760_001, 9_007_199_254_760_003, 9_007_199_254_760_005, 9_007_199_254_760_007);
    vec![
        customer(
            a,
            Some(CALLER),
            Some("Dana"),
            json!([{"id": 1, "phone": "(555) 123-4567", "zip": "10001"},
                   {"id": 2, "phone": "+44 20 7946 0958", "zip": null}]),
        ),
        customer(b, Some("555 123 4567"), None, json!([])),
        customer(c, Some("+1 415 555 0132"), Some("Siobhán"), json!([{"id": 3, "phone": "call me", "zip": "M3 4LQ"}])),
        customer(d, None, Some("Nobody"), json!([])),
        order(
            9_007_199_254_770_003,
            Some(a),
            "2026-11-05T10:00:00Z",
            json!({
                "fulfillment_status": null, "financial_status": "partially_refunded",
                "fulfillments": [fulfilment(9_007_199_254_780_009, 9_007_199_254_770_003, Some("in_transit")),
                                 fulfilment(9_007_199_254_780_001, 9_007_199_254_770_003, None)],
                "refunds": [refund(9_007_199_254_790_003, 9_007_199_254_770_003),
                            refund(9_007_199_254_790_001, 9_007_199_254_770_003)],
            }),
        ),
        // Three created at the same instant: the higher IDs count as newer, as in a single lookup.
        order(9_007_199_254_770_001, Some(a), "2026-11-03T10:00:00Z", json!({})),
        order(9_007_199_254_770_005, Some(a), "2026-11-03T10:00:00Z", json!({"cancelled_at": "2026-11-04T00:00:00Z"})),
        order(
            9_007_199_254_770_007,
            Some(a),
            "2026-11-03T10:00:00Z",
            json!({
                "phone": "+1 212 555 0199", "currency": null, "total_price": null, "shipping_address": null,
                "fulfillments": [fulfilment(9_007_199_254_780_005, 9_007_199_254_770_007, Some("delivered"))],
            }),
        ),
        order(
            9_007_199_254_770_009,
            Some(a),
            "2026-10-01T10:00:00Z",
            json!({
                "fulfillments": [fulfilment(9_007_199_254_780_007, 9_007_199_254_770_009, Some("delivered"))],
            }),
        ),
        order(9_007_199_254_770_011, Some(b), "2026-09-01T10:00:00Z", json!({"financial_status": "something_new"})),
        order(9_007_199_254_770_013, Some(d), "2026-09-01T10:00:00Z", json!({})),
        order(9_007_199_254_770_015, None, "2026-09-02T10:00:00Z", json!({"phone": "+1 646 555 0100"})),
    ]
}

async fn warmed_records_are_what_a_lookup_builds(backend: Backend) {
    use orderline::clock::SystemClock;
    use orderline::lookup::{CallerLookup, LookupConfig};
    use orderline::ops::Metrics;
    use orderline::store::{Store, Ts};
    let db = common::TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = Ts::from(Utc::now());
    store.apply_all(SHOP, &writes(tricky_shop()), "US", now).await.unwrap();
    let other: orderline::shopify::payload::ShopifyCustomer = serde_json::from_value(serde_json::json!({
        "id": 9_007_199_254_760_101u64, "first_name": "Elsewhere", "phone": "+1 415 555 0132",
        "updated_at": "2026-11-01T00:00:00Z",
    }))
    .unwrap();
    let other = orderline::shopify::payload::ShopifyChange::Customer(Box::new(other));
    // A name to quote (Postgres reads a whole shop with COPY, which takes no parameters).
    let other_shop = r"o'neil\shop.myshopify.com";
    store.apply_all(other_shop, &[other.into()], "US", now).await.unwrap();
    let lookup = || {
        CallerLookup::new(LookupConfig::new(SHOP), store.clone(), None, Arc::new(SystemClock), Arc::new(Metrics::new()))
    };
    let (warmed, cold) = (lookup(), lookup());
    // +15551234567 (Dana twice, and her partner), +442079460958, +14155550132, +12125550199.
    assert_eq!(warmed.warm(100).await.unwrap(), 4);
    let phones = ["+15551234567", "+442079460958", "+14155550132", "+12125550199", "+16465550100", "+15550000000"];
    for phone in phones {
        let from_cache = warmed.lookup(phone).await.unwrap();
        let from_store = cold.lookup(phone).await.unwrap();
        let sorted = |answer: &orderline::lookup::CallerAnswer| {
            answer.record.as_ref().map(|r| {
                let mut r = (**r).clone();
                r.customers.sort_by_key(|c| c.id);
                r
            })
        };
        assert_eq!(sorted(&from_cache), sorted(&from_store), "{phone}");
        let known = from_store.record.is_some();
        assert_eq!(from_cache.source, if known { Source::Cache } else { Source::Stale }, "{phone}");
    }
    let shared = warmed.lookup(CALLER).await.unwrap().record.unwrap();
    assert_eq!(shared.customers.len(), 2);
    let dana = shared.customers.iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    let ids: Vec<i64> = dana.orders.iter().map(|o| o.id).collect();
    assert_eq!(ids, [9_007_199_254_770_003, 9_007_199_254_770_007, 9_007_199_254_770_005]);
    let tracking: Vec<Option<&str>> =
        dana.orders[0].fulfillments.iter().map(|f| f.tracking_number.as_deref()).collect();
    assert_eq!(tracking, [Some("1Z9007199254780001"), Some("1Z9007199254780009")]);
    assert_eq!(dana.orders[0].refunds, 2);
    assert_eq!(shared.confirmed_at, now.0.timestamp_micros());
    let elsewhere = CallerLookup::new(
        LookupConfig::new(other_shop),
        store.clone(),
        None,
        Arc::new(SystemClock),
        Arc::new(Metrics::new()),
    );
    assert_eq!(elsewhere.warm(100).await.unwrap(), 1);
    let answer = elsewhere.lookup("+14155550132").await.unwrap();
    assert_eq!(answer.source, Source::Cache);
    assert_eq!(answer.record.unwrap().customers[0].first_name.as_deref(), Some("Elsewhere"));
    store.close().await;
}

#[tokio::test]
async fn a_warmed_record_is_the_record_a_lookup_builds_on_postgres() {
    warmed_records_are_what_a_lookup_builds(Backend::Postgres).await;
}

#[tokio::test]
async fn a_warmed_record_is_the_record_a_lookup_builds_on_sqlite() {
    warmed_records_are_what_a_lookup_builds(Backend::Sqlite).await;
}
