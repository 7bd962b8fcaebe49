//! Webhooks get lost, duplicated and reordered; reconciliation repairs it. The emulator changes
//! 1,000 orders while dropping, duplicating and reordering 10% of their webhooks each; after one
//! reconcile the store equals the emulator's data, row for row.

mod common;

use std::sync::Arc;

use common::{Backend, SECRET, SHOP, TestApp};
use orderline::clock::SystemClock;
use orderline::shopify::payload::{ShopifyId, ShopifyOrder};
use orderline::shopify::reconciler::Reconciler;
use orderline::sim::shopify::{ShopifySim, SimConfig, WebhookTarget};
use orderline::store::Store;

/// Every stored field of an order, as comparable values.
fn order_row(o: &ShopifyOrder) -> serde_json::Value {
    serde_json::json!({
        "name": o.name, "customer": o.customer.as_ref().map(|c| c.id.0), "email": o.email,
        "financial": o.financial_status, "fulfillment": o.fulfillment_status,
        "cancelled_at": o.cancelled_at.map(|t| t.timestamp_micros()), "updated_at": o.updated_at.timestamp_micros(),
        "total": o.total_price,
        "fulfillments": o.fulfillments.iter().map(|f| serde_json::json!([f.id.0, f.status, f.shipment_status,
            f.tracking_company, f.tracking_number, f.tracking_url, f.updated_at.timestamp_micros()])).collect::<Vec<_>>(),
        "refunds": o.refunds.iter().map(|r| r.id.0).collect::<Vec<_>>(),
    })
}

async fn stored_order_row(store: &Store, id: ShopifyId) -> Option<serde_json::Value> {
    let o = store.order(SHOP, id).await.unwrap()?;
    let fulfillments = store.fulfillments(SHOP, id).await.unwrap();
    let refunds = store.refunds(SHOP, id).await.unwrap();
    Some(serde_json::json!({
        "name": o.name, "customer": o.customer_id, "email": o.email,
        "financial": o.financial_status, "fulfillment": o.fulfillment_status,
        "cancelled_at": o.cancelled_at.map(|t| t.0.timestamp_micros()), "updated_at": o.updated_at.0.timestamp_micros(),
        "total": o.total_price,
        "fulfillments": fulfillments.iter().map(|f| serde_json::json!([f.id, f.status, f.shipment_status,
            f.tracking_company, f.tracking_number, f.tracking_url, f.updated_at.0.timestamp_micros()])).collect::<Vec<_>>(),
        "refunds": refunds.iter().map(|r| r.id).collect::<Vec<_>>(),
    }))
}

async fn differences(sim: &ShopifySim, store: &Store) -> Vec<String> {
    let mut differ = Vec::new();
    for order in sim.orders() {
        let expected = order_row(&order);
        match stored_order_row(store, order.id).await {
            Some(actual) if actual == expected => {}
            Some(actual) => differ.push(format!("order {}: stored {actual} expected {expected}", order.id)),
            None => differ.push(format!("order {} missing", order.id)),
        }
    }
    for customer in sim.customers() {
        let stored = store.customer(SHOP, customer.id).await.unwrap();
        let matches = stored.as_ref().is_some_and(|c| {
            (c.first_name.as_ref(), c.last_name.as_ref(), c.email.as_ref(), c.phone.as_ref())
                == (
                    customer.first_name.as_ref(),
                    customer.last_name.as_ref(),
                    customer.email.as_ref(),
                    customer.phone.as_ref(),
                )
                && Some(c.updated_at.0) == customer.updated_at
        });
        if !matches {
            differ.push(format!("customer {} differs", customer.id));
        }
    }
    differ
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_one_reconcile_the_store_equals_shopify_row_for_row() {
    // A Shopify Plus shop: 1,000 points/s restored ("GraphQL Admin API rate limits",
    // shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, read 2026-12-04), bucket ten
    // seconds of it like the standard plan's. At the standard 100/s the two sweeps of 1,000
    // orders (about 46,000 points each at Shopify's real cost) take over seven minutes.
    let sim =
        ShopifySim::new(SimConfig { seed: 42, restore_rate: 1000.0, bucket_max: 10_000.0, ..SimConfig::default() });
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    sim.seed_generated(250, 4);
    let token = sim.config().access_token.clone();
    let url = server.url();
    let app = TestApp::start_with(
        Backend::Postgres,
        &[
            ("shopify_shop", SHOP),
            ("shopify_access_token", &token),
            ("shopify_api_url", &url),
            ("reconcile_every", "0s"),
            ("warm_count", "0"),
        ],
    )
    .await;
    let state = app.running.as_ref().unwrap().state.clone();
    let reconciler = Reconciler {
        store: state.store.clone(),
        client: state.shopify.clone().unwrap(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics: state.metrics.clone(),
        lag: std::time::Duration::from_secs(30),
        lookup: Some(state.lookup.clone()),
    };
    let started = std::time::Instant::now();
    // Install: a full backfill.
    let backfill = reconciler.sweep().await.unwrap();
    assert_eq!((backfill.customers, backfill.orders), (250, 1000));
    assert!(differences(&sim, &state.store).await.is_empty());

    eprintln!("backfill done at {:?}", started.elapsed());
    // The shop changes every order twice in a row, over a lossy webhook channel.
    let mut target = WebhookTarget::new(format!("{}/shopify/webhooks", app.url), SECRET, SHOP);
    (target.drop, target.duplicate, target.reorder) = (0.10, 0.10, 0.10);
    sim.set_webhook_target(target);
    for order in sim.orders() {
        for step in 0..2 {
            if sim.advance_order(order.id).is_none() {
                sim.change_order(order.id, |o| o.email = Some(format!("changed-{step}-{}@example.com", o.id)));
            }
        }
    }
    let stats = sim.flush_webhooks().await;
    assert_eq!(stats.changes, 2000);
    assert!(stats.dropped > 100 && stats.duplicated > 100 && stats.reordered > 100, "{stats:?}");
    assert_eq!(stats.failed, 0, "orderline acknowledged every delivery it got");
    eprintln!("webhooks flushed at {:?}", started.elapsed());
    app.settle().await;
    eprintln!("settled at {:?}", started.elapsed());
    let before = differences(&sim, &state.store).await;
    assert!(!before.is_empty(), "dropped webhooks left the store behind");
    let dead = state.store.dead_letters().await.unwrap();
    assert!(dead.is_empty(), "{dead:?}");

    let sweep = reconciler.sweep().await.unwrap();
    eprintln!("reconciled at {:?}", started.elapsed());
    assert!(sweep.orders >= 1000, "the sweep covered the changes: {sweep:?}");
    let after = differences(&sim, &state.store).await;
    assert!(after.is_empty(), "{} rows differ after reconcile, e.g. {:?}", after.len(), after.first());
    eprintln!("{} rows differed before the reconcile; none after ({sweep:?}, {stats:?})", before.len());
    server.stop().await;
    app.stop().await;
}
