//! Issue 14: applying a flash sale's deliveries in batches with the exact outcome of applying
//! them one by one, several appliers sharing one backlog, and no false freshness: a caller whose
//! order was acknowledged but not yet applied hears it. On Postgres and on SQLite.

use std::sync::Arc;

use crate::common::{Backend, SHOP, TestDb, order_variant};
use chrono::{Duration as Days, Utc};
use orderline::clock::{Clock, ManualClock};
use orderline::domain::ShopifyId;
use orderline::lookup::{CallerAnswer, CallerLookup, LookupConfig, Source};
use orderline::ops::Metrics;
use orderline::shopify::intake::{Intake, Stored};
use orderline::shopify::processor::Processor;
use orderline::shopify::writes::{DeliveryReader, intake_subjects};
use orderline::store::{Lane, NewDelivery, Store, Ts, UNCONFIRMED};
use serde_json::{Value, json};

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn delivery(n: usize, topic: &str, body: &Value) -> NewDelivery {
    let body = serde_json::to_vec(body).unwrap();
    let (handled, customer_id, order_id) = intake_subjects(topic, &body);
    NewDelivery {
        shop: SHOP.into(),
        webhook_id: format!("w-{n}"),
        event_id: Some(format!("e-{n}")),
        topic: topic.into(),
        handled,
        customer_id,
        order_id,
        api_version: Some("2025-10".into()),
        triggered_at: None,
        received_at: Ts::from(Utc::now()),
        body,
        refused: None,
    }
}

fn at(order: &Value, seconds: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(order["updated_at"].as_str().unwrap()).unwrap();
    (base + Days::seconds(seconds)).to_rfc3339()
}

/// A flash sale's worth of deliveries with every case of the apply path in it: new orders,
/// several versions of one order and of one customer (newer, older, a same-second copy with
/// other content, an identical repeat), a customer update, an order deleted in the middle of a
/// run and updated after, a payload that does not parse, and orders sharing a customer.
fn sale() -> Vec<NewDelivery> {
    let mut out = Vec::new();
    let mut push = |topic: &str, body: Value| {
        let n = out.len();
        out.push(delivery(n, topic, &body));
    };
    for n in 0..40 {
        push("orders/create", order_variant(n));
    }
    // Order 3: paid a second later, an older copy, a same-second copy with other content.
    let mut paid = order_variant(3);
    paid["financial_status"] = json!("paid");
    paid["updated_at"] = json!(at(&paid, 60));
    push("orders/paid", paid.clone());
    let mut older = order_variant(3);
    older["financial_status"] = json!("pending");
    older["updated_at"] = json!(at(&older, 30));
    push("orders/updated", older);
    let mut contradicting = paid.clone();
    contradicting["financial_status"] = json!("refunded");
    push("orders/updated", contradicting);
    // Order 4: a newer version with other line items and a new phone, then the same again.
    let mut changed = order_variant(4);
    changed["updated_at"] = json!(at(&changed, 120));
    changed["phone"] = json!("+14155559999");
    changed["line_items"].as_array_mut().unwrap().truncate(1);
    changed["line_items"][0]["title"] = json!("Replacement");
    push("orders/updated", changed.clone());
    push("orders/updated", changed);
    // Customer of order 5 updated on its own, twice (newer, then older).
    let mut customer = order_variant(5)["customer"].clone();
    customer["first_name"] = json!("Renamed");
    customer["updated_at"] = json!(at(&order_variant(5), 300));
    push("customers/update", customer.clone());
    let mut stale = customer.clone();
    stale["first_name"] = json!("Old");
    stale["updated_at"] = json!(at(&order_variant(5), -3600));
    push("customers/update", stale);
    // Order 6 deleted in the middle of the run, then a late update: gone.
    push("orders/delete", json!({"id": order_variant(6)["id"]}));
    let mut late = order_variant(6);
    late["updated_at"] = json!(at(&late, 600));
    push("orders/updated", late);
    // A body that does not parse: a dead letter of its own, the rest applied.
    push("orders/updated", json!({"id": 17, "name": 5}));
    // A second order for the customer of order 7.
    let mut second = order_variant(40);
    second["customer"] = order_variant(7)["customer"].clone();
    push("orders/create", second);
    for n in 41..60 {
        push("orders/create", order_variant(n));
    }
    // Orders 41–44 ship: their fulfilments and refunds ride on the order (`orders/fulfilled`,
    // `orders/updated`), with every case of `upsert_fulfillment` and `insert_refund`.
    push("orders/fulfilled", shipped(41, 60, "in_transit", 0));
    // A same-second copy of 41's fulfilment saying something else: the order goes unconfirmed,
    // then a newer copy of the order (same fulfilment) confirms it again.
    push("orders/updated", shipped(41, 60, "delivered", 0));
    push("orders/updated", shipped(41, 90, "in_transit", 0));
    // 42: delivered a minute after shipping, then the older in-transit copy arrives late.
    push("orders/fulfilled", shipped(42, 120, "delivered", 60));
    push("orders/updated", shipped(42, 60, "in_transit", 0));
    // 43: refunded; the refund comes again with a later copy of the order, and once more
    // identical.
    let refunded = with_refund(shipped(43, 60, "in_transit", 0), 43, 60);
    push("orders/updated", refunded.clone());
    let mut later = with_refund(shipped(43, 120, "in_transit", 0), 43, 60);
    later["financial_status"] = json!("refunded");
    push("orders/updated", later);
    push("orders/updated", refunded);
    // 44: shipped, then delivered.
    push("orders/fulfilled", shipped(44, 60, "in_transit", 0));
    push("orders/updated", shipped(44, 90, "delivered", 30));
    out
}

/// Order `n`, `seconds` after it was created, with one fulfilment (the shape of Shopify's
/// `orders/fulfilled` fixture) in `status`, updated `f_seconds` after the order's creation time.
fn shipped(n: u64, seconds: i64, status: &str, f_seconds: i64) -> Value {
    let mut order = order_variant(n);
    let mut f = crate::common::fixture("order_fulfilled.json")["fulfillments"][0].clone();
    f["id"] = json!(9_007_199_254_900_001u64 + n);
    f["order_id"] = order["id"].clone();
    f["shipment_status"] = json!(status);
    f["created_at"] = order["updated_at"].clone();
    f["updated_at"] = json!(at(&order, f_seconds));
    order["fulfillments"] = json!([f]);
    order["fulfillment_status"] = json!("fulfilled");
    order["updated_at"] = json!(at(&order, seconds));
    order
}

/// `order` with one refund of 41.37 (the shape of Shopify's `refunds/create` fixture).
fn with_refund(mut order: Value, n: u64, seconds: i64) -> Value {
    let mut r = crate::common::fixture("refund_create.json");
    r["id"] = json!(9_007_199_254_950_001u64 + n);
    r["order_id"] = order["id"].clone();
    r["created_at"] = json!(at(&order_variant(n), seconds));
    r["processed_at"] = r["created_at"].clone();
    r["transactions"][0]["order_id"] = order["id"].clone();
    order["refunds"] = json!([r]);
    order
}

/// What the store holds, for comparing two stores row for row.
async fn dump(db: &TestDb) -> Vec<String> {
    let queries = [
        "SELECT CAST(id AS TEXT) || ' ' || COALESCE(first_name, '-') || ' ' || COALESCE(content, '-') || ' '
                || CAST(updated_at AS TEXT) || ' ' || CAST(synced_at AS TEXT) FROM customers ORDER BY id",
        "SELECT CAST(id AS TEXT) || ' ' || COALESCE(CAST(customer_id AS TEXT), '-') || ' ' || name || ' '
                || COALESCE(financial_status, '-') || ' ' || COALESCE(phone, '-') || ' ' || COALESCE(content, '-')
                || ' ' || CAST(updated_at AS TEXT) || ' ' || CAST(synced_at AS TEXT) FROM orders ORDER BY id",
        "SELECT CAST(order_id AS TEXT) || ' ' || CAST(id AS TEXT) || ' ' || CAST(position AS TEXT) || ' '
                || COALESCE(title, '-') || ' ' || COALESCE(fulfillment_status, '-')
         FROM order_line_items ORDER BY order_id, id",
        "SELECT owner_kind || ' ' || CAST(owner_id AS TEXT) || ' ' || source || ' ' || COALESCE(CAST(customer_id AS TEXT), '-')
                || ' ' || raw || ' ' || COALESCE(e164, '-')
         FROM phone_numbers ORDER BY owner_kind, owner_id, source",
        "SELECT kind || ' ' || CAST(id AS TEXT) FROM tombstones ORDER BY kind, id",
        "SELECT CAST(id AS TEXT) || ' ' || CAST(order_id AS TEXT) || ' ' || COALESCE(status, '-') || ' '
                || COALESCE(shipment_status, '-') || ' ' || COALESCE(content, '-') || ' '
                || COALESCE(CAST(shopify_created_at AS TEXT), '-') || ' ' || CAST(updated_at AS TEXT) || ' '
                || CAST(synced_at AS TEXT) || ' ' || COALESCE(CAST(in_transit_at AS TEXT), '-') || ' '
                || COALESCE(CAST(delivered_at AS TEXT), '-') || ' ' || COALESCE(CAST(estimated_delivery_at AS TEXT), '-')
         FROM fulfillments ORDER BY id",
        "SELECT CAST(id AS TEXT) || ' ' || CAST(order_id AS TEXT) || ' ' || COALESCE(amount, '-') || ' '
                || COALESCE(currency, '-') || ' ' || COALESCE(CAST(processed_at AS TEXT), '-') || ' '
                || CAST(synced_at AS TEXT) FROM refunds ORDER BY id",
        "SELECT webhook_id || ' ' || status || ' ' || COALESCE(CAST(customer_id AS TEXT), '-') || ' '
                || COALESCE(CAST(order_id AS TEXT), '-') || ' ' || CAST(attempts AS TEXT) || ' '
                || CASE WHEN body IS NULL THEN 'no body' ELSE 'body' END || ' ' || COALESCE(error, '-')
         FROM webhook_deliveries ORDER BY id",
    ];
    let mut rows = Vec::new();
    for sql in queries {
        rows.extend(texts(db, sql).await);
    }
    rows
}

/// The one text column of each row `sql` returns.
async fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    use sqlx::Connection;
    match db.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await.unwrap()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await.unwrap()
        }
    }
}

async fn applied_in_batches_exactly_as_one_by_one(backend: Backend) {
    let deliveries = sale();
    let now = Ts::from(Utc::now());
    let (batched_db, single_db) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (batched, single) = (store(&batched_db).await, store(&single_db).await);
    // Order 3's first version is already stored in both, so its same-second copy meets a row.
    for s in [&batched, &single] {
        assert!(s.insert_deliveries(&deliveries[..10]).await.unwrap().iter().all(|new| *new));
        s.process_pending(1, &DeliveryReader, "US", now).await.unwrap();
        while !s.process_pending(1, &DeliveryReader, "US", now).await.unwrap().is_empty() {}
        assert!(s.insert_deliveries(&deliveries[10..]).await.unwrap().iter().all(|new| *new));
    }
    let processed = batched.process_pending(1000, &DeliveryReader, "US", now).await.unwrap();
    assert_eq!(processed.len(), deliveries.len() - 10, "one batch took the whole backlog");
    while !single.process_pending(1, &DeliveryReader, "US", now).await.unwrap().is_empty() {}

    let (rows, expected) = (dump(&batched_db).await, dump(&single_db).await);
    assert_eq!(rows.len(), expected.len());
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want, "batched vs one by one");
    }

    // And what that is, spelled out.
    let status = |id: &str| {
        let s = batched.clone();
        let id = id.to_string();
        async move { s.delivery(SHOP, &id).await.unwrap().unwrap() }
    };
    assert_eq!(status("w-40").await.status, "applied", "paid, a minute later");
    assert_eq!(status("w-41").await.status, "unchanged", "an older copy");
    assert_eq!(status("w-42").await.status, "unconfirmed", "same second, other content");
    assert_eq!(status("w-43").await.status, "applied");
    assert_eq!(status("w-44").await.status, "unchanged", "the identical repeat");
    assert_eq!(status("w-45").await.status, "applied");
    assert_eq!(status("w-46").await.status, "unchanged", "an older customer copy");
    assert_eq!(status("w-47").await.status, "applied", "the delete");
    assert_eq!(status("w-48").await.status, "gone", "an update after the delete");
    let dead = status("w-49").await;
    assert_eq!(dead.status, "dead");
    assert!(dead.has_body, "a dead letter keeps its body for replay");
    assert!(dead.error.unwrap_or_default().contains("orders/updated payload"));

    let order3 = batched.order(SHOP, ShopifyId(order_variant(3)["id"].as_i64().unwrap())).await.unwrap().unwrap();
    assert_eq!(order3.financial_status.as_deref(), Some("paid"));
    assert_eq!(order3.synced_at, UNCONFIRMED, "the contradicting copy leaves it to be refetched");
    let order4 = ShopifyId(order_variant(4)["id"].as_i64().unwrap());
    let phones: Vec<String> =
        batched.phones_of_order(SHOP, order4).await.unwrap().into_iter().filter_map(|p| p.e164).collect();
    assert!(phones.contains(&"+14155559999".to_string()), "{phones:?}");
    let customer5 = ShopifyId(order_variant(5)["customer"]["id"].as_i64().unwrap());
    let customer5 = batched.customer(SHOP, customer5).await.unwrap().unwrap();
    assert_eq!(customer5.first_name.as_deref(), Some("Renamed"));
    assert!(batched.order(SHOP, ShopifyId(order_variant(6)["id"].as_i64().unwrap())).await.unwrap().is_none());
    assert_eq!(batched_db.count("SELECT COUNT(*) FROM orders").await, 59, "60 orders, one deleted");

    // Fulfilments and refunds riding on the orders.
    for (id, want, why) in [
        ("w-70", "applied", "41 shipped"),
        ("w-71", "unconfirmed", "41's fulfilment, same second, other status"),
        ("w-72", "applied", "41 again, a newer copy"),
        ("w-73", "applied", "42 delivered"),
        ("w-74", "unchanged", "42's older in-transit copy"),
        ("w-75", "applied", "43 refunded"),
        ("w-76", "applied", "43 newer, the refund already stored"),
        ("w-77", "unchanged", "43's older copy again"),
        ("w-78", "applied", "44 shipped"),
        ("w-79", "applied", "44 delivered"),
    ] {
        assert_eq!(status(id).await.status, want, "{id}: {why}");
    }
    let shipment = |n: u64| {
        let id = 9_007_199_254_900_001u64 + n;
        format!("SELECT COUNT(*) FROM fulfillments WHERE id = {id} AND shipment_status = 'delivered'")
    };
    assert_eq!(batched_db.count(&shipment(42)).await, 1, "the late in-transit copy changed nothing");
    assert_eq!(batched_db.count(&shipment(44)).await, 1);
    assert_eq!(batched_db.count(&shipment(41)).await, 0, "the contradicting copy was not written");
    let order41 = batched.order(SHOP, ShopifyId(order_variant(41)["id"].as_i64().unwrap())).await.unwrap().unwrap();
    assert_ne!(order41.synced_at, UNCONFIRMED, "the newer copy after the contradiction confirmed it");
    assert_eq!(batched_db.count("SELECT COUNT(*) FROM refunds").await, 1, "one refund, stored once");
}

/// Two appliers (two `serve` processes) on one backlog: every delivery applied exactly once.
async fn two_appliers_share_a_backlog_and_apply_each_delivery_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = (store(&db).await, store(&db).await);
    let deliveries: Vec<NewDelivery> =
        (0..1500).map(|n| delivery(n, "orders/create", &order_variant(n as u64 % 1000))).collect();
    for chunk in deliveries.chunks(250) {
        a.insert_deliveries(chunk).await.unwrap();
    }
    let run = |s: Store| {
        tokio::spawn(async move {
            let mut applied = 0;
            loop {
                match s.process_pending(200, &DeliveryReader, "US", Ts::from(Utc::now())).await {
                    Ok(batch) if batch.is_empty() => return applied,
                    Ok(batch) => applied += batch.len(),
                    // A deadlock or busy database is transient: the processor retries.
                    Err(e) if e.is_transient() => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let (by_a, by_b) = (run(a.clone()), run(b.clone()));
    let (by_a, by_b) = (by_a.await.unwrap(), by_b.await.unwrap());
    assert_eq!(by_a + by_b, 1500, "each delivery processed by exactly one applier");
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE attempts <> 1").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'applied'").await, 1000);
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'unchanged'").await, 500);
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 1000);
}

/// The processor's lanes: each claims only the deliveries about its own orders (and
/// customers, for a delivery about a customer alone), the lanes run at once, and together they
/// leave the store exactly as one applier taking the deliveries one by one.
async fn lanes_apply_at_once_and_leave_what_one_applier_leaves(backend: Backend) {
    let mut deliveries = sale();
    // A redaction between an order of its customer and that order's next version, with other
    // customers' orders after it: a barrier no lane may pass.
    let redacted = order_variant(90);
    let mut later = redacted.clone();
    later["updated_at"] = json!(at(&later, 60));
    let redaction = json!({
        "shop_id": 1, "shop_domain": SHOP, "customer": redacted["customer"].clone(),
        "orders_to_redact": [redacted["id"].clone()],
    });
    for (n, (topic, body)) in [
        ("orders/create", redacted),
        ("customers/redact", redaction),
        ("orders/updated", later),
        ("orders/create", order_variant(91)),
        ("orders/create", order_variant(92)),
    ]
    .into_iter()
    .enumerate()
    {
        deliveries.push(delivery(200 + n, topic, &body));
    }
    let now = Ts::from(Utc::now());
    let (laned_db, single_db) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (laned, single) = (store(&laned_db).await, store(&single_db).await);
    for s in [&laned, &single] {
        assert!(s.insert_deliveries(&deliveries[..10]).await.unwrap().iter().all(|new| *new));
        while !s.process_pending(1, &DeliveryReader, "US", now).await.unwrap().is_empty() {}
        assert!(s.insert_deliveries(&deliveries[10..]).await.unwrap().iter().all(|new| *new));
    }
    let lanes: Vec<Lane> = (0..3).map(|index| Lane { index, count: 3 }).collect();
    let run = |lane: Lane| {
        let s = laned.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match s.process_lane(lane, 7, &DeliveryReader, "US", now).await {
                    // Nothing of this lane's before the barrier: done once nothing is pending.
                    Ok(batch) if batch.is_empty() => {
                        let counts = s.delivery_counts().await.unwrap();
                        if !counts.iter().any(|(status, n)| status == "pending" && *n > 0) {
                            return mine;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    Ok(batch) => mine.extend(batch),
                    // Lanes of one store take different customers, but two customers may share
                    // a phone number: a deadlock is transient, the processor retries.
                    Err(e) if e.is_transient() => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let appliers: Vec<_> = lanes.iter().map(|lane| run(*lane)).collect();
    let mut by_lane = Vec::new();
    for applier in appliers {
        by_lane.push(applier.await.unwrap());
    }
    while !single.process_pending(1, &DeliveryReader, "US", now).await.unwrap().is_empty() {}

    let ids: Vec<i64> = by_lane.iter().flatten().map(|p| p.id).collect();
    let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "no delivery applied twice");
    // The redaction erased the order's later version while it waited: it is not applied.
    assert_eq!(ids.len(), deliveries.len() - 10 - 1, "every other delivery applied");
    assert!(by_lane.iter().all(|mine| !mine.is_empty()), "every lane had work");
    for (lane, mine) in lanes.iter().zip(&by_lane) {
        for p in mine {
            if p.topic == "customers/redact" {
                assert_eq!(lane.index, 0, "a barrier is applied by lane 0");
            } else if let Some(key) = p.order_id.or(p.customer_id) {
                assert_eq!(key.rem_euclid(3) as u32, lane.index, "delivery {} in lane {}", p.id, lane.index);
            }
        }
    }
    let (rows, expected) = (dump(&laned_db).await, dump(&single_db).await);
    assert_eq!(rows.len(), expected.len());
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want, "in lanes vs one by one");
    }
}

fn lookup_on(store: &Store, clock: Arc<ManualClock>) -> CallerLookup {
    let mut config = LookupConfig::new(SHOP);
    config.budget = std::time::Duration::from_secs(2);
    CallerLookup::new(config, store.clone(), None, clock, Arc::new(Metrics::new()))
}

/// The caller of order variant `n`.
fn caller(n: u64) -> String {
    order_variant(n)["customer"]["phone"].as_str().unwrap().to_string()
}

/// The customer's first order, applied; the lookup has read the record from the store and
/// then answers it from its cache, fresh. Returns the cached answer too.
async fn a_cached_caller(backend: Backend) -> (TestDb, Store, Arc<ManualClock>, CallerLookup, CallerAnswer) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    store.insert_deliveries(&[delivery(0, "orders/create", &order_variant(1))]).await.unwrap();
    store.process_pending(10, &DeliveryReader, "US", Ts::from(clock.now())).await.unwrap();
    store.resync_pending().await.unwrap();
    let lookup = lookup_on(&store, clock.clone());
    let first = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(first.source, Source::Store);
    let again = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(again.source, Source::Cache, "cached and fresh");
    (db, store, clock, lookup, again)
}

/// A second order for the customer of order variant 1.
fn second_order() -> Value {
    let mut order = order_variant(2);
    order["customer"] = order_variant(1)["customer"].clone();
    order
}

async fn a_call_while_the_applier_is_held_back_hears_the_acknowledged_order(backend: Backend) {
    let (db, store, _clock, lookup, again) = a_cached_caller(backend).await;
    assert_eq!(again.record.as_ref().unwrap().customers[0].orders.len(), 1);

    // A new order is acknowledged (stored, 200) and nothing applies it: no processor runs.
    let mut new_order = second_order();
    new_order["created_at"] = json!(at(&new_order, 3600));
    new_order["updated_at"] = json!(at(&new_order, 3600));
    assert_eq!(store.insert_deliveries(&[delivery(1, "orders/create", &new_order)]).await.unwrap(), vec![true]);
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await, 1);

    let answer = lookup.lookup(&caller(1)).await.unwrap();
    let orders: Vec<String> =
        answer.record.as_ref().unwrap().customers[0].orders.iter().map(|o| o.name.to_string()).collect();
    assert_eq!(orders, vec!["#5002".to_string(), "#5001".to_string()], "the new order is heard, newest first");
    assert_eq!(answer.source, Source::Store);
    let applied = store.delivery(SHOP, "w-1").await.unwrap().unwrap();
    assert_eq!(applied.status, "applied", "applied once, by the lookup");
    assert_eq!(applied.attempts, 1);

    // Nothing pending any more: the next call is answered from the cache again.
    let cached = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(cached.source, Source::Cache);
    assert_eq!(cached.record.as_ref().unwrap().customers[0].orders.len(), 2);
    // A caller with nothing pending never waits on the store.
    assert!(!store.pending_subjects().may_touch(&[order_variant(1)["customer"]["id"].as_i64().unwrap()], &[]));
}

/// The processor applies the acknowledged order between the call's cache read and its check for
/// pending deliveries, and the change notice that would evict the cached record has not been
/// handled yet (no `follow_changes` here, so never): the call still hears the order.
async fn a_call_right_after_the_processor_applied_the_order_hears_it(backend: Backend) {
    let (_db, store, clock, lookup, _) = a_cached_caller(backend).await;

    let new_order = second_order();
    assert_eq!(store.insert_deliveries(&[delivery(1, "orders/create", &new_order)]).await.unwrap(), vec![true]);
    assert_eq!(store.process_pending(10, &DeliveryReader, "US", Ts::from(clock.now())).await.unwrap().len(), 1);

    let answer = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(answer.record.unwrap().customers[0].orders.len(), 2, "the applied order is heard");
    assert_eq!(answer.source, Source::Store, "read again: the cached record predates the apply");
    let again = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(again.source, Source::Cache, "then cached again: nothing is pending any more");
    assert_eq!(again.record.unwrap().customers[0].orders.len(), 2);
}

/// On Postgres the order is acknowledged by one instance and the call reaches another: the
/// second learns of the pending delivery by NOTIFY and applies it before answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_hears_an_order_acknowledged_by_the_first() {
    let db = TestDb::new(Backend::Postgres).await;
    let (intake, answering) = (store(&db).await, store(&db).await);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    intake.insert_deliveries(&[delivery(0, "orders/create", &order_variant(1))]).await.unwrap();
    intake.process_pending(10, &DeliveryReader, "US", Ts::from(clock.now())).await.unwrap();
    let lookup = lookup_on(&answering, clock.clone());
    let _follow = lookup.follow_changes();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while answering.readiness().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the second instance listens");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    answering.resync_pending().await.unwrap();
    assert_eq!(lookup.lookup(&caller(1)).await.unwrap().record.unwrap().customers[0].orders.len(), 1);
    assert_eq!(lookup.lookup(&caller(1)).await.unwrap().source, Source::Cache);

    let mut new_order = order_variant(2);
    new_order["customer"] = order_variant(1)["customer"].clone();
    intake.insert_deliveries(&[delivery(1, "orders/create", &new_order)]).await.unwrap();
    let customer = order_variant(1)["customer"]["id"].as_i64().unwrap();
    while !answering.pending_subjects().may_touch(&[customer], &[]) {
        assert!(std::time::Instant::now() < deadline, "the NOTIFY reaches the second instance");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let answer = lookup.lookup(&caller(1)).await.unwrap();
    assert_eq!(answer.record.unwrap().customers[0].orders.len(), 2, "the new order is heard");
}

/// One event through several subscriptions (one `X-Shopify-Event-Id`, several webhook IDs) is
/// stored once, whether its copies arrive in one intake batch or in several (intake reads the
/// events it already holds once per batch).
async fn one_event_is_stored_once_within_a_batch_and_across_batches(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let with_event = |n: usize, topic: &str, event: &str| NewDelivery {
        event_id: Some(event.to_string()),
        ..delivery(n, topic, &order_variant(n as u64))
    };
    let first = [
        with_event(0, "orders/create", "ev-a"),
        with_event(1, "orders/create", "ev-a"),
        with_event(2, "orders/updated", "ev-a"),
        with_event(3, "orders/create", "ev-b"),
        delivery(4, "orders/create", &order_variant(4)),
    ];
    assert_eq!(store.insert_deliveries(&first).await.unwrap(), [true, false, true, true, true]);
    let second = [
        with_event(5, "orders/create", "ev-b"),
        with_event(6, "orders/updated", "ev-a"),
        with_event(0, "orders/create", "ev-a"),
        with_event(7, "orders/create", "ev-c"),
        with_event(8, "orders/create", "ev-c"),
    ];
    assert_eq!(store.insert_deliveries(&second).await.unwrap(), [false, false, false, true, false]);
    let stored = texts(&db, "SELECT webhook_id FROM webhook_deliveries ORDER BY id").await;
    assert_eq!(stored, ["w-0", "w-2", "w-3", "w-4", "w-7"]);
}

/// On Postgres, a batch too large for one NOTIFY payload (8000 bytes) reaches the other
/// instance subject by subject and phone by phone, split over several payloads, never as
/// `all` (which would make it drop its whole cache and read the whole pending set again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_reaches_the_other_instance_in_full_not_as_all() {
    let db = TestDb::new(Backend::Postgres).await;
    let (writer, other) = (store(&db).await, store(&db).await);
    let mut changes = other.subscribe_changes();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while other.readiness().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the other instance listens");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    other.resync_pending().await.unwrap();
    while changes.try_recv().is_ok() {}
    assert!(!other.pending_subjects().is_unknown());

    let deliveries: Vec<NewDelivery> =
        (0..600).map(|n| delivery(n, "orders/create", &order_variant(n as u64))).collect();
    writer.insert_deliveries(&deliveries).await.unwrap();
    let customers: Vec<i64> = (0..600).map(|n| order_variant(n)["customer"]["id"].as_i64().unwrap()).collect();
    while !customers.iter().all(|c| other.pending_subjects().may_touch(&[*c], &[])) {
        assert!(std::time::Instant::now() < deadline, "every subject reaches the other instance");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!other.pending_subjects().is_unknown(), "told subject by subject, not `all`");

    assert_eq!(writer.process_pending(1000, &DeliveryReader, "US", Ts::from(Utc::now())).await.unwrap().len(), 600);
    // Every phone the batch wrote was touched by it (the store was empty).
    let phones: std::collections::BTreeSet<String> =
        texts(&db, "SELECT DISTINCT e164 FROM phone_numbers WHERE e164 IS NOT NULL").await.into_iter().collect();
    assert!(phones.len() >= 600, "{} phones", phones.len());
    let mut heard = std::collections::BTreeSet::new();
    while heard != phones {
        let notice =
            tokio::time::timeout_at(deadline.into(), changes.recv()).await.expect("every phone is heard").unwrap();
        assert!(!notice.all, "told phone by phone, not `all`");
        heard.extend(notice.phones);
    }
}

/// Waits, at most `seconds`, until no stored delivery is pending.
async fn nothing_pending(db: &TestDb, seconds: u64) -> Result<(), tokio::time::error::Elapsed> {
    let applied = async {
        while db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(seconds), applied).await
}

/// The processor as `serve` runs it: what is pending when it starts (a backlog larger than one
/// batch) is shared among the store's write lanes (Postgres has several, SQLite one), each
/// delivery applied once; what intake stores afterwards wakes the one applier.
async fn the_processor_shares_a_backlog_among_its_lanes_then_applies_what_intake_stores(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let backlog: Vec<NewDelivery> =
        (0..2500).map(|n| delivery(n, "orders/create", &order_variant(n as u64 % 2000))).collect();
    for chunk in backlog.chunks(500) {
        store.insert_deliveries(chunk).await.unwrap();
    }
    let metrics = Arc::new(Metrics::new());
    let processor = Processor {
        store: store.clone(),
        metrics: metrics.clone(),
        clock: Arc::new(orderline::clock::SystemClock),
        default_region: "US".into(),
    };
    let stored = Arc::new(Stored::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(processor.run(stored.clone(), shutdown));
    nothing_pending(&db, 120).await.expect("the backlog is applied");
    let lanes = Lane::all_of(&store).len();
    assert_eq!(metrics.backlog_spreads.get(), u64::from(lanes > 1), "{lanes} lanes");
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE attempts <> 1").await, 0, "each applied once");
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'applied'").await, 2000);
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'unchanged'").await, 500);

    // Intake stores a new order: the processor applies it.
    let intake = Intake::start(store.clone(), 1, stored.clone());
    let new_order = delivery(2500, "orders/create", &order_variant(2000));
    assert!(intake.submit(new_order).await.unwrap(), "stored");
    nothing_pending(&db, 30).await.expect("the new order is applied");
    assert_eq!(db.count("SELECT COUNT(*) FROM orders").await, 2001);
    assert_eq!(metrics.backlog_spreads.get(), u64::from(lanes > 1), "one order is no backlog");
    stop.send(true).unwrap();
    running.await.unwrap();
}

on_both_backends!(
    one_event_is_stored_once_within_a_batch_and_across_batches,
    applied_in_batches_exactly_as_one_by_one,
    two_appliers_share_a_backlog_and_apply_each_delivery_once,
    lanes_apply_at_once_and_leave_what_one_applier_leaves,
    a_call_while_the_applier_is_held_back_hears_the_acknowledged_order,
    a_call_right_after_the_processor_applied_the_order_hears_it,
    the_processor_shares_a_backlog_among_its_lanes_then_applies_what_intake_stores,
);
