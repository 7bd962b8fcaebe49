//! The backfill through Shopify bulk operations: the first sweep of a store (and
//! `orderline reconcile --full`) reads every customer and order from a bulk operation's JSONL
//! result and stores exactly what the shop holds; a failed operation writes no watermark and
//! leaves nothing in the way of the next sweep; a backfill killed half-way resumes on the same
//! result (or a new one once the result has expired) without duplicating anything; the sweeps
//! after it page through what changed, as before. The orders' returns come with them: a caller
//! of a shop backfilled in bulk hears each return on key 3 as the webhook-fed path says it.

use std::sync::Arc;
use std::time::Duration;

use crate::common::line::{Line, line};
use crate::common::rows::{customer_row, order_row, stored_customer_row, stored_ids, stored_order_row};
use crate::common::{Backend, SHOP, TestDb};
use crate::returns::{key_3, said};
use orderline::app;
use orderline::clock::SystemClock;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::domain::{DeclineReason, ReturnStatus, ShopifyId};
use orderline::ivr::order_status::spoken_digits;
use orderline::ops::Metrics;
use orderline::shopify::graphql::{BulkResource, Operation};
use orderline::shopify::payload::ShopifyOrder;
use orderline::shopify::reconciler::Reconciler;
use orderline::shopify::returns::ReturnLabel;
use orderline::shopify::schema;
use orderline::sim::shopify::{BulkErrorCode, ShopifySim, SimConfig, SimServer};
use orderline::store::Store;

struct Shop {
    sim: ShopifySim,
    server: SimServer,
    db: TestDb,
    url: String,
    store: Store,
    reconciler: Reconciler,
}

async fn open_shop(backend: Backend, customers: usize, orders_each: usize) -> Shop {
    let sim = ShopifySim::new(SimConfig { restore_rate: 1000.0, bucket_max: 10_000.0, ..SimConfig::default() });
    sim.seed_generated(customers, orders_each);
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let mut settings = Settings::default();
    settings.shopify.access_token = Some(Secret::new(sim.config().access_token.as_str()));
    settings.shopify.api_url = Some(server.url());
    settings.sync.breaker_threshold = 100;
    let settings = settings.validated().unwrap();
    let metrics = Arc::new(Metrics::new());
    let reconciler = Reconciler {
        store: store.clone(),
        client: app::shopify_client(&settings, metrics.clone()).unwrap(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics,
        lag: Duration::from_secs(30),
        lookup: None,
    };
    let url = db.url.clone();
    Shop { sim, server, db, url, store, reconciler }
}

/// Every order and customer the shop holds is stored as it holds it, and nothing else.
async fn differences(sim: &ShopifySim, store: &Store) -> Vec<String> {
    let mut differ = Vec::new();
    for order in sim.orders() {
        let expected = order_row(&order);
        match stored_order_row(store, order.id).await {
            Some(actual) if actual == expected => {}
            actual => differ.push(format!("order {}: stored {actual:?} expected {expected}", order.id)),
        }
    }
    for customer in sim.customers() {
        let expected = customer_row(&customer);
        match stored_customer_row(store, customer.id).await {
            Some(actual) if actual == expected => {}
            actual => differ.push(format!("customer {}: stored {actual:?} expected {expected}", customer.id)),
        }
    }
    let (orders, customers) = stored_ids(store).await;
    if (orders.len(), customers.len()) != (sim.orders().len(), sim.customers().len()) {
        differ.push(format!("stored {} orders and {} customers", orders.len(), customers.len()));
    }
    differ
}

#[test]
fn the_bulk_queries_are_valid_against_shopifys_admin_schema() {
    for resource in [BulkResource::Customers, BulkResource::Orders] {
        let document = schema::validate(&resource.query()).unwrap_or_else(|e| panic!("{resource:?}: {e:#?}"));
        assert_eq!(schema::deprecated_fields(&document), Vec::<String>::new(), "{resource:?}");
    }
}

async fn the_first_sweep_backfills_in_bulk_and_later_sweeps_page(backend: Backend) {
    let shop = open_shop(backend, 40, 4).await;
    let (sim, store) = (&shop.sim, &shop.store);
    let report = shop.reconciler.sweep().await.unwrap();
    assert_eq!((report.customers, report.orders, report.bulk_operations, report.pages), (40, 160, 2, 0));
    assert_eq!(sim.bulk_operations_started(), 2);
    assert_eq!(sim.requests_for(Operation::OrdersUpdatedSince) + sim.requests_for(Operation::CustomersUpdatedSince), 0);
    assert_eq!(differences(sim, store).await, Vec::<String>::new());
    let watermark = store.watermark(SHOP, "orders").await.unwrap().expect("a watermark after the backfill");
    assert!(watermark.0 <= chrono::Utc::now() - chrono::Duration::seconds(30), "the operation's start minus the lag");
    assert!(store.bulk_backfill(SHOP, "orders").await.unwrap().is_none(), "the backfill is over");

    // The shop changes: the next sweep pages through what changed, no bulk operation.
    let changed = sim.orders()[7].id;
    sim.change_order(changed, |o| o.email = Some("changed@example.com".into())).unwrap();
    let report = shop.reconciler.sweep().await.unwrap();
    assert_eq!(report.bulk_operations, 0);
    assert!(report.pages >= 2, "{report:?}");
    assert!(sim.requests_for(Operation::OrdersUpdatedSince) >= 1);
    assert_eq!(sim.bulk_operations_started(), 2);
    assert_eq!(store.order(SHOP, changed).await.unwrap().unwrap().email.as_deref(), Some("changed@example.com"));
    assert_eq!(differences(sim, store).await, Vec::<String>::new());
    shop.server.stop().await;
}

async fn reconcile_full_backfills_in_bulk_despite_a_watermark(backend: Backend) {
    let shop = open_shop(backend, 10, 3).await;
    shop.reconciler.sweep().await.unwrap();
    let before = shop.store.watermark(SHOP, "customers").await.unwrap().unwrap();
    let changed = shop.sim.customers()[2].id;
    shop.sim.change_customer(changed, |c| c.last_name = Some("Renamed".into())).unwrap();
    let (db_url, token, api_url) = (shop.url.clone(), shop.sim.config().access_token.clone(), shop.server.url());
    let run = move |full: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orderline"));
        command.arg("reconcile");
        if full {
            command.arg("--full");
        }
        command
            .env("DATABASE_URL", &db_url)
            .env("SHOPIFY_SHOP", SHOP)
            .env("SHOPIFY_ACCESS_TOKEN", &token)
            .env("SHOPIFY_API_URL", &api_url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let output = tokio::task::spawn_blocking(move || run(true)).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("reconciled 10 customers and 30 orders in 0 pages and 2 bulk operations"), "{stdout}");
    assert_eq!(shop.sim.bulk_operations_started(), 4);
    assert_eq!(shop.store.customer(SHOP, changed).await.unwrap().unwrap().last_name.as_deref(), Some("Renamed"));
    assert!(shop.store.watermark(SHOP, "customers").await.unwrap().unwrap() >= before);
    assert_eq!(differences(&shop.sim, &shop.store).await, Vec::<String>::new());
    shop.server.stop().await;
}

async fn a_failed_operation_writes_no_watermark_and_the_next_sweep_starts_over(backend: Backend) {
    let shop = open_shop(backend, 10, 3).await;
    shop.sim.fail_bulk_operations(Some(BulkErrorCode::InternalServerError));
    let error = shop.reconciler.sweep().await.expect_err("the operation failed").to_string();
    assert!(error.contains("FAILED") && error.contains("INTERNAL_SERVER_ERROR"), "{error}");
    assert_eq!(shop.store.watermark(SHOP, "customers").await.unwrap(), None);
    assert_eq!(shop.store.bulk_backfill(SHOP, "customers").await.unwrap(), None);
    assert_eq!(stored_ids(&shop.store).await, (Vec::new(), Vec::new()), "nothing written");

    shop.sim.fail_bulk_operations(None);
    let report = shop.reconciler.sweep().await.unwrap();
    assert_eq!((report.customers, report.orders, report.bulk_operations), (10, 30, 2));
    assert_eq!(shop.sim.bulk_operations_started(), 3);
    assert_eq!(differences(&shop.sim, &shop.store).await, Vec::<String>::new());
    shop.server.stop().await;
}

/// Kills a backfill once some of its orders are applied; returns how many lines were.
async fn kill_half_way(shop: &Shop) -> i64 {
    // 500 records a page: 2,400 orders take 3 s to download, longer than a batch collects
    // (SQLite's batches hold 5,000 records: this one is applied after 2 s, not full).
    shop.sim.set_bulk_page_delay(Duration::from_millis(600));
    let reconciler = shop.reconciler.clone();
    let running = tokio::spawn(async move { reconciler.sweep().await });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        let progress = shop.store.bulk_backfill(SHOP, "orders").await.unwrap();
        if let Some(p) = progress.filter(|p| p.lines_applied > 0) {
            break p.lines_applied;
        }
        assert!(std::time::Instant::now() < deadline, "no batch of orders applied");
        assert!(!running.is_finished(), "the backfill ended before it was killed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    running.abort();
    let _ = running.await;
    shop.sim.set_bulk_page_delay(Duration::ZERO);
    assert_eq!(shop.store.watermark(SHOP, "orders").await.unwrap(), None, "no watermark for half a backfill");
    applied
}

async fn a_killed_backfill_resumes_on_the_same_result(backend: Backend) {
    let shop = open_shop(backend, 600, 4).await;
    let applied = kill_half_way(&shop).await;
    let report = shop.reconciler.sweep().await.unwrap();
    assert_eq!(shop.sim.bulk_operations_started(), 2, "the same operation's result was read again");
    assert_eq!(report.customers, 0, "the customers' backfill had finished");
    assert!(report.orders < 2400, "resumed past the {applied} lines applied: {report:?}");
    assert_eq!(differences(&shop.sim, &shop.store).await, Vec::<String>::new());
    assert!(shop.store.bulk_backfill(SHOP, "orders").await.unwrap().is_none());
    shop.server.stop().await;
}

async fn a_killed_backfill_whose_result_expired_starts_a_new_operation(backend: Backend) {
    let shop = open_shop(backend, 600, 4).await;
    kill_half_way(&shop).await;
    shop.sim.expire_bulk_results();
    let report = shop.reconciler.sweep().await.unwrap();
    assert_eq!(shop.sim.bulk_operations_started(), 3, "a new operation for the orders");
    assert_eq!(report.orders, 2400);
    assert_eq!(differences(&shop.sim, &shop.store).await, Vec::<String>::new());
    shop.server.stop().await;
}

// ---- returns (issue 19) ----

const DANA: &str = "+15551234567";

/// The reconciler of a line's shop, as the first sweep runs it.
fn reconciler_of(line: &Line) -> Reconciler {
    let mut settings = Settings::default();
    settings.shopify.access_token = Some(Secret::new(line.sim.config().access_token.clone()));
    settings.shopify.api_url = Some(line.shopify_url());
    let settings = settings.validated().unwrap();
    let metrics = Arc::new(Metrics::new());
    Reconciler {
        store: line.app.store().clone(),
        client: app::shopify_client(&settings, metrics.clone()).unwrap(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics,
        lag: Duration::from_secs(30),
        lookup: None,
    }
}

/// The demo shop with callers trusted by caller ID. The emulator sends no webhooks (no target
/// is set): `returns` changes Shopify's returns, then the first sweep backfills in bulk.
async fn backfilled(
    backend: Backend,
    change: impl FnOnce(&mut Settings),
    returns: impl FnOnce(&Line, &ShopifyOrder),
) -> Line {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        // A label is read by the call's refetch: a generous budget, whatever the machine's load
        // (answers within a short budget are tests/it/faults.rs's).
        s.lookup.lookup_budget = Duration::from_secs(5);
        change(s)
    })
    .await;
    let order = line.latest_order("Dana");
    assert!(order.returns.is_empty(), "Dana's latest order has no return yet");
    returns(&line, &order);
    let report = reconciler_of(&line).sweep().await.unwrap();
    assert_eq!(report.bulk_operations, 2, "the first sweep ran in bulk: {report:?}");
    line
}

fn ups_label() -> ReturnLabel {
    ReturnLabel {
        carrier: Some("UPS".into()),
        tracking_number: Some("1ZRETURN0001".into()),
        tracking_url: Some("https://www.ups.com/track?tracknum=1ZRETURN0001".into()),
        label_url: Some("https://cdn.shopify.example/labels/1ZRETURN0001.pdf".into()),
    }
}

async fn a_requested_return_backfilled_in_bulk_is_waiting_for_approval(backend: Backend) {
    let line = backfilled(
        backend,
        |_| {},
        |line, order| {
            line.sim.request_return(order.id, 1, 0).unwrap();
        },
    )
    .await;
    let number = spoken_digits(&line.latest_order("Dana").name);
    let heard = key_3(&line, DANA).await;
    let expected = format!("Order number {number}: your return was requested and is waiting for approval.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

async fn an_approved_return_backfilled_in_bulk_names_its_label_carrier(backend: Backend) {
    // A bulk query cannot reach the label (three connections below `orders`): the backfill marks
    // the order for a refetch, and the call reads the label live.
    let line = backfilled(
        backend,
        |_| {},
        |line, order| {
            let id = line.sim.request_return(order.id, 2, 0).unwrap();
            assert!(line.sim.approve_return(id));
            assert!(line.sim.attach_return_label(id, ups_label()));
        },
    )
    .await;
    let number = spoken_digits(&line.latest_order("Dana").name);
    let heard = key_3(&line, DANA).await;
    let expected = format!(
        "Order number {number}: your return was approved, the return label is with UPS, and the parcel has not reached us yet."
    );
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

async fn a_declined_return_backfilled_in_bulk_says_shopifys_reason(backend: Backend) {
    let line = backfilled(
        backend,
        |_| {},
        |line, order| {
            let id = line.sim.request_return(order.id, 1, 0).unwrap();
            assert!(line.sim.decline_return(id, DeclineReason::FinalSale, Some("Clearance item")));
        },
    )
    .await;
    let number = spoken_digits(&line.latest_order("Dana").name);
    let heard = key_3(&line, DANA).await;
    let expected = format!("Order number {number}: your return was declined. The items were final sale.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    assert!(!said(&heard).contains("Clearance"), "the merchant's note is not read out: {}", said(&heard));
    line.app.stop().await;
}

async fn a_refunded_return_backfilled_in_bulk_says_how_much_and_when(backend: Backend) {
    let line = backfilled(
        backend,
        |_| {},
        |line, order| {
            let id = line.sim.request_return(order.id, 1, 0).unwrap();
            assert!(line.sim.approve_return(id));
            assert!(line.sim.process_return(id, Some("21.50")));
        },
    )
    .await;
    let order = line.latest_order("Dana");
    let refund_at = order.refunds.last().unwrap().created_at.unwrap();
    let day = refund_at.with_timezone(&chrono_tz::UTC).format("%A, %B %-d").to_string();
    let number = spoken_digits(&order.name);
    let heard = key_3(&line, DANA).await;
    assert!(heard.contains(&format!("Order number {number}: your return is complete.")), "{}", said(&heard));
    let refund = format!("It was refunded $21.50 on {day}. It should reach your card within 5 to 10 business days.");
    assert!(heard.contains(&refund), "{}", said(&heard));
    line.app.stop().await;
}

async fn the_agents_card_shows_the_returns_a_bulk_backfill_brought(backend: Backend) {
    const AGENT: &str = "agent-token-for-bulk-returns";
    let line = backfilled(
        backend,
        |s| s.agents.agent_token = Some(Secret::new(AGENT)),
        |line, order| {
            let id = line.sim.request_return(order.id, 1, 0).unwrap();
            assert!(line.sim.approve_return(id));
            assert!(line.sim.attach_return_label(id, ReturnLabel { carrier: Some("FedEx".into()), ..ups_label() }));
        },
    )
    .await;
    let order = line.latest_order("Dana");
    let t = line.call(DANA, &["3"]).await;
    line.flush_calls().await;
    let url = format!("{}/api/calls/{}", line.app.url, t.call_sid);
    let card: serde_json::Value =
        line.app.client.get(&url).bearer_auth(AGENT).send().await.unwrap().json().await.unwrap();
    let shown = card["orders"].as_array().unwrap().iter().find(|o| o["name"] == order.name.as_str()).unwrap();
    assert_eq!(shown["returns"], serde_json::json!(["return approved, label with FedEx, not back yet"]), "{card}");
    line.app.stop().await;
}

/// Gives some of the shop's orders a return in each stage (no webhooks are sent); returns
/// (return ID, its status) for each.
fn returns_in_every_stage(sim: &ShopifySim) -> Vec<(ShopifyId, ReturnStatus)> {
    let orders = sim.orders();
    let mut made = Vec::new();
    for (i, order) in orders.iter().step_by(97).enumerate() {
        let id = sim.request_return(order.id, 1, 0).unwrap();
        let status = match i % 4 {
            0 => ReturnStatus::Requested,
            1 => {
                assert!(sim.approve_return(id));
                assert!(sim.attach_return_label(id, ups_label()));
                ReturnStatus::Open
            }
            2 => {
                assert!(sim.decline_return(id, DeclineReason::ReturnPeriodEnded, None));
                ReturnStatus::Declined
            }
            _ => {
                assert!(sim.approve_return(id));
                assert!(sim.process_return(id, Some("1.00")));
                ReturnStatus::Closed
            }
        };
        made.push((id, status));
    }
    made
}

async fn a_killed_backfill_resumed_leaves_each_return_once(backend: Backend) {
    let shop = open_shop(backend, 600, 4).await;
    let made = returns_in_every_stage(&shop.sim);
    assert!(made.len() >= 20, "returns in the first and the last batches: {}", made.len());
    kill_half_way(&shop).await;
    shop.reconciler.sweep().await.unwrap();
    assert_eq!(shop.sim.bulk_operations_started(), 2, "the same operation's result was read again");
    assert_eq!(shop.db.count("SELECT COUNT(*) FROM returns").await, made.len() as i64, "each return once");
    for (id, status) in &made {
        let sql = format!("SELECT COUNT(*) FROM returns WHERE id = {id} AND status = '{}'", status.as_str());
        assert_eq!(shop.db.count(&sql).await, 1, "return {id} is {status:?}");
    }
    assert_eq!(differences(&shop.sim, &shop.store).await, Vec::<String>::new());
    shop.server.stop().await;
}

on_both_backends!(
    the_first_sweep_backfills_in_bulk_and_later_sweeps_page,
    reconcile_full_backfills_in_bulk_despite_a_watermark,
    a_failed_operation_writes_no_watermark_and_the_next_sweep_starts_over,
    a_killed_backfill_resumes_on_the_same_result,
    a_killed_backfill_whose_result_expired_starts_a_new_operation,
    a_requested_return_backfilled_in_bulk_is_waiting_for_approval,
    an_approved_return_backfilled_in_bulk_names_its_label_carrier,
    a_declined_return_backfilled_in_bulk_says_shopifys_reason,
    a_refunded_return_backfilled_in_bulk_says_how_much_and_when,
    the_agents_card_shows_the_returns_a_bulk_backfill_brought,
    a_killed_backfill_resumed_leaves_each_return_once,
);
