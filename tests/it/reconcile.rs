//! The reconciler on its own: `orderline reconcile` backfills a fresh store, a backfill cut
//! short resumes where it stopped instead of starting over, and the deletion check removes what
//! Shopify deleted without a webhook reaching us.

use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::{Backend, SHOP, TestDb};
use orderline::app;
use orderline::clock::SystemClock;
use orderline::config::{Secret, Settings};
use orderline::ops::Metrics;
use orderline::shopify::graphql::Operation;
use orderline::shopify::payload::ShopifyChange;
use orderline::shopify::reconciler::Reconciler;
use orderline::sim::shopify::{Failure, ShopifySim, SimConfig};
use orderline::store::{Store, Ts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderline_reconcile_backfills_a_fresh_store() {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let db = TestDb::new(Backend::Sqlite).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderline"))
        .arg("reconcile")
        .env("DATABASE_URL", &db.url)
        .env("SHOPIFY_SHOP", SHOP)
        .env("SHOPIFY_ACCESS_TOKEN", &sim.config().access_token)
        .env("SHOPIFY_API_URL", server.url())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let expected = format!("reconciled {} customers and {} orders", sim.customers().len(), sim.orders().len());
    assert!(stdout.contains(&expected), "{stdout}");
    let store = Store::connect(&db.url).await.unwrap();
    for order in sim.orders() {
        assert!(store.order(SHOP, order.id).await.unwrap().is_some(), "order {} missing", order.name);
    }
    assert!(store.watermark(SHOP, "orders").await.unwrap().is_some());
    store.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_refuses_to_run_without_shopify_settings() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, stderr) = common::orderline_cli(&db.url, &["reconcile"]);
    assert!(!ok);
    assert!(stderr.contains("SHOPIFY_SHOP") || stderr.contains("SHOPIFY_ACCESS_TOKEN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_paged_sweep_resumes_where_it_stopped() {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_generated(60, 5);
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let db = TestDb::new(Backend::Postgres).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let reconciler = reconciler_for(&sim, &server.url(), &store);
    // Swept once long ago (a store never swept is backfilled in bulk: tests/bulk_backfill.rs):
    // every record changed since, so the sweep pages through all of them.
    let long_ago =
        Ts::from(chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 365 * 86_400, 0).unwrap());
    for resource in ["customers", "orders"] {
        store.advance_watermark(SHOP, resource, long_ago, long_ago).await.unwrap();
    }

    // Shopify starts failing after the customers and five pages of orders.
    let watcher = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.requests_for(Operation::OrdersUpdatedSince) < 5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sim.set_failure(Failure::Http500);
        })
    };
    let interrupted = reconciler.sweep().await;
    watcher.await.unwrap();
    assert!(interrupted.is_err(), "the sweep was cut short");
    assert_eq!(store.watermark(SHOP, "orders").await.unwrap(), Some(long_ago), "the watermark waits for everything");
    let resume = store.sweep_resume_point(SHOP, "orders").await.unwrap().expect("a resume point");
    let applied_before = sim.orders().iter().filter(|o| o.updated_at <= resume.0).count();
    let page = orderline::shopify::graphql::PAGE_SIZE as usize;
    assert!(applied_before >= 4 * page, "at least four pages were kept: {applied_before}");

    sim.set_failure(Failure::None);
    sim.reset_counters();
    let report = reconciler.sweep().await.unwrap();
    let full_pages = 300usize.div_ceil(page);
    let order_pages = sim.requests_for(Operation::OrdersUpdatedSince) as usize;
    assert!(order_pages < full_pages, "resumed: {order_pages} order pages instead of {full_pages}");
    assert!(report.orders < 300, "{report:?}");
    for order in sim.orders() {
        let stored = store.order(SHOP, order.id).await.unwrap();
        assert_eq!(stored.map(|o| o.updated_at.0), Some(order.updated_at), "order {}", order.id);
    }
    assert!(store.watermark(SHOP, "orders").await.unwrap().is_some());
    assert!(store.sweep_resume_point(SHOP, "orders").await.unwrap().is_none());
    store.close().await;
    server.stop().await;
}

fn reconciler_for(sim: &ShopifySim, api_url: &str, store: &Store) -> Reconciler {
    let mut settings = Settings::default();
    settings.shopify.access_token = Some(Secret::new(sim.config().access_token.as_str()));
    settings.shopify.api_url = Some(api_url.to_string());
    settings.sync.breaker_threshold = 100;
    let settings = settings.validated().unwrap();
    let metrics = Arc::new(Metrics::new());
    Reconciler {
        store: store.clone(),
        client: app::shopify_client(&settings, metrics.clone()).unwrap(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics,
        lag: Duration::from_secs(30),
        lookup: None,
    }
}

/// Orders and a customer deleted in Shopify whose webhooks never arrived: a sweep cannot see
/// them (Shopify's lists no longer hold them); the deletion check asks about every stored
/// record, 250 IDs a query, and deletes exactly those. An app without `read_all_orders` cannot
/// see orders older than 60 days, so it never asks about them (they would look deleted).
async fn the_deletion_check_removes_what_shopify_deleted_without_a_webhook(backend: Backend) {
    for sees_all_orders in [true, false] {
        let mut config = SimConfig { restore_rate: 1000.0, bucket_max: 10_000.0, ..SimConfig::default() };
        if !sees_all_orders {
            config.scopes.retain(|s| s != "read_all_orders");
        }
        let sim = ShopifySim::new(config);
        sim.seed_generated(60, 5);
        // One order placed long ago.
        let old = sim.orders()[0].id;
        sim.change_order(old, |o| o.created_at = chrono::Utc::now() - chrono::Duration::days(90)).unwrap();
        // A customer without orders (the only kind Shopify lets a merchant delete).
        let mut loner = sim.customers()[0].clone();
        loner.id = sim.new_id();
        loner.email = Some("loner@example.com".into());
        loner.phone = Some("+12125550199".into());
        loner.default_address = None;
        loner.addresses.clear();
        let loner = {
            let id = loner.id;
            sim.upsert_customer(loner).unwrap();
            id
        };
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let reconciler = reconciler_for(&sim, &server.url(), &store);
        reconciler.sweep().await.unwrap();
        if !sees_all_orders {
            // Hidden from the sweep, the old order came by webhook back when it was new.
            let order = ShopifyChange::Order(Box::new(sim.order(old).unwrap()));
            store.apply(SHOP, &order.into(), "US", Ts::from(chrono::Utc::now())).await.unwrap();
        }
        assert!(store.order(SHOP, old).await.unwrap().is_some());
        let stored_orders = sim.orders().len();
        assert!(stored_orders > 250, "more than one query's worth of orders: {stored_orders}");

        // Deleted in Shopify, with no webhook target: lost for good.
        let recent: Vec<_> = sim.orders().iter().filter(|o| o.id != old).take(3).map(|o| o.id).collect();
        for id in recent.iter().chain([&old]) {
            assert!(sim.delete_order(*id));
        }
        assert!(sim.delete_customer(loner));
        reconciler.sweep().await.unwrap();
        assert!(store.customer(SHOP, loner).await.unwrap().is_some(), "a sweep cannot see a deletion");

        sim.reset_counters();
        let report = reconciler.check_deletions().await.unwrap();
        let old_deleted = usize::from(sees_all_orders);
        assert_eq!((report.orders_deleted, report.customers_deleted), (3 + old_deleted, 1), "{report:?}");
        for id in &recent {
            assert!(store.order(SHOP, *id).await.unwrap().is_none(), "order {id} is deleted here too");
        }
        assert!(store.customer(SHOP, loner).await.unwrap().is_none());
        assert_eq!(
            store.order(SHOP, old).await.unwrap().is_none(),
            sees_all_orders,
            "the old order is asked only with read_all_orders"
        );
        // Every stored order asked once (minus the old one without read_all_orders), 250 a query,
        // then the 61 customers.
        let orders_asked = stored_orders - 1 + usize::from(sees_all_orders);
        assert_eq!(report.orders_checked, orders_asked);
        assert_eq!(report.customers_checked, 61);
        assert_eq!(sim.requests_for(Operation::StillHeld) as usize, orders_asked.div_ceil(250) + 1);
        // The next check finds nothing more to delete.
        let again = reconciler.check_deletions().await.unwrap();
        assert_eq!((again.orders_deleted, again.customers_deleted), (0, 0));
        store.close().await;
        server.stop().await;
    }
}

/// `serve` checks for deletions on its own: after its first sweep (no check recorded yet), then
/// only once `reconcile_deletions_every` has passed since the last one, not on every sweep.
async fn serve_checks_for_deletions_when_due_not_on_every_sweep(backend: Backend) {
    let sim = ShopifySim::new(SimConfig { restore_rate: 1000.0, bucket_max: 10_000.0, ..SimConfig::default() });
    sim.seed_generated(10, 3);
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (token, url) = (sim.config().access_token.clone(), server.url());
    let app = common::TestApp::start_with(backend, |s| {
        s.shopify.shop = Some(SHOP.to_string());
        s.shopify.access_token = Some(Secret::new(&token));
        s.shopify.api_url = Some(url.to_string());
        s.sync.reconcile_every = Duration::from_secs(1);
        s.sync.reconcile_deletions_every = Duration::from_secs(3600);
    })
    .await;
    let store = app.store().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.watermark(SHOP, "deletions").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no deletion check after the first sweep");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checks = sim.requests_for(Operation::StillHeld);
    assert_eq!(checks, 2, "one query for the 30 orders, one for the 10 customers");

    // Deleted in Shopify, its webhook lost: sweeps go on every second, the check waits an hour.
    let gone = sim.orders()[0].id;
    assert!(sim.delete_order(gone));
    let sweeps = sim.requests_for(Operation::OrdersUpdatedSince);
    while sim.requests_for(Operation::OrdersUpdatedSince) < sweeps + 3 {
        assert!(std::time::Instant::now() < deadline + Duration::from_secs(30), "the sweeps stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.requests_for(Operation::StillHeld), checks, "no deletion check before it is due");
    assert!(store.order(SHOP, gone).await.unwrap().is_some());
    app.stop().await;
    server.stop().await;
}

on_both_backends!(
    the_deletion_check_removes_what_shopify_deleted_without_a_webhook,
    serve_checks_for_deletions_when_due_not_on_every_sweep,
);
