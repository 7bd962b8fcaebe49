//! Shopify webhook intake, end to end: signed deliveries over a real socket to orderline on
//! 127.0.0.1:0, on Postgres and on SQLite, checked against what the store then holds.

use crate::common;
use crate::common::{Backend, SHOP, TestApp, fixture, fixture_bytes, orderline_cli};
use orderline::config::Secret;
use orderline::domain::{PhoneNumber, ShopifyId};
use reqwest::StatusCode;
use serde_json::json;

const ORDER: ShopifyId = ShopifyId(9_007_199_254_741_107);
const GUEST_ORDER: ShopifyId = ShopifyId(9_007_199_254_741_707);
const CUSTOMER: ShopifyId = ShopifyId(9_007_199_254_740_993);
const OTHER_CUSTOMER: ShopifyId = ShopifyId(9_007_199_254_741_901);

fn phone(e164: &str) -> PhoneNumber {
    PhoneNumber::from_e164(e164).unwrap()
}

async fn a_valid_delivery_is_applied(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(app.deliver("orders/create", "w-create", &fixture_bytes("order_create.json")).await, StatusCode::OK);
    app.settle().await;

    let order = app.store().order(SHOP, ORDER).await.unwrap().expect("order stored");
    assert_eq!(order.id, 9_007_199_254_741_107, "IDs above 2^53 survive exactly");
    assert_eq!(order.name, "#1042");
    assert_eq!(order.customer_id, Some(CUSTOMER.0));
    assert_eq!(order.financial_status.as_deref(), Some("paid"));
    assert_eq!(order.updated_at.0.to_rfc3339(), "2026-11-02T15:15:03+00:00", "offsets become UTC");

    let customer = app.store().customer(SHOP, CUSTOMER).await.unwrap().expect("embedded customer stored");
    assert_eq!(customer.email.as_deref(), Some("dana.whitfield@example.com"));

    // Every phone in the payload is indexed in E.164, whatever its format.
    for number in ["+15551234567", "+442079460958", "+15555557447"] {
        let found = app.store().customers_by_phone(SHOP, &phone(number)).await.unwrap();
        assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![CUSTOMER.0], "{number}");
    }
    let delivery = app.store().delivery(SHOP, "w-create").await.unwrap().unwrap();
    assert_eq!(delivery.status, "applied");
    assert_eq!(delivery.event_id.as_deref(), Some("event-w-create"));
    assert!(!delivery.has_body, "an applied delivery keeps no payload");
    app.stop().await;
}

async fn fulfilments_tracking_and_refunds_are_kept(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.deliver("orders/fulfilled", "w2", &fixture_bytes("order_fulfilled.json")).await;
    app.deliver("fulfillments/update", "w3", &fixture_bytes("fulfillment_update.json")).await;
    app.deliver("refunds/create", "w4", &fixture_bytes("refund_create.json")).await;
    app.settle().await;

    let order = app.store().order(SHOP, ORDER).await.unwrap().unwrap();
    assert_eq!(order.fulfillment_status.as_deref(), Some("fulfilled"));
    let fulfillments = app.store().fulfillments(SHOP, ORDER).await.unwrap();
    assert_eq!(fulfillments.len(), 1);
    assert_eq!(fulfillments[0].shipment_status.as_deref(), Some("out_for_delivery"));
    assert_eq!(fulfillments[0].tracking_company.as_deref(), Some("UPS"));
    assert!(fulfillments[0].tracking_number.is_some() && fulfillments[0].tracking_url.is_some());
    let refunds = app.store().refunds(SHOP, ORDER).await.unwrap();
    assert_eq!(refunds.iter().map(|r| r.id).collect::<Vec<_>>(), vec![9_007_199_254_741_511, 9_007_199_254_741_611]);
    assert!(refunds.iter().all(|r| r.amount.is_some()));
    app.stop().await;
}

async fn a_bad_signature_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = fixture_bytes("order_create.json");
    let wrong = orderline::shopify::signature::sign("not-the-secret", &body);
    assert_eq!(app.deliver_signed("orders/create", "w-bad", &body, &wrong).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.deliver_signed("orders/create", "w-none", &body, "").await, StatusCode::UNAUTHORIZED);
    // A body changed after signing (re-serialised, tampered) fails too.
    let good = orderline::shopify::signature::sign(common::SECRET, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(app.deliver_signed("orders/create", "w-tampered", &tampered, &good).await, StatusCode::UNAUTHORIZED);
    app.settle().await;

    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM orders").await, 0);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics
            .contains(r#"orderline_webhook_deliveries_received_total{topic="orders/create",outcome="unauthorized"} 3"#)
    );
    app.stop().await;
}

async fn without_a_secret_every_webhook_is_refused(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.shopify.webhook_secret = Some(Secret::new(""))).await;
    let status = app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    app.stop().await;
}

async fn a_duplicate_delivery_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = fixture_bytes("order_create.json");
    assert_eq!(app.deliver("orders/create", "w-same", &body).await, StatusCode::OK);
    app.settle().await;
    let before = app.store().order(SHOP, ORDER).await.unwrap().unwrap();

    // Shopify retries with the same X-Shopify-Webhook-Id: acknowledged, not applied again.
    assert_eq!(app.deliver("orders/create", "w-same", &body).await, StatusCode::OK);
    app.settle().await;
    let after = app.store().order(SHOP, ORDER).await.unwrap().unwrap();
    assert_eq!(before, after, "not even synced_at moves");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 1);
    let delivery = app.store().delivery(SHOP, "w-same").await.unwrap().unwrap();
    assert_eq!(delivery.attempts, 1);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"orderline_webhook_deliveries_received_total{topic="orders/create",outcome="duplicate"} 1"#)
    );
    app.stop().await;
}

/// Posts `body` as `topic` with its own webhook ID and the given X-Shopify-Event-Id.
async fn deliver_event(app: &TestApp, topic: &str, webhook_id: &str, event_id: &str, body: &[u8]) -> StatusCode {
    app.client
        .post(format!("{}/shopify/webhooks", app.url))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", orderline::shopify::signature::sign(common::SECRET, body))
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-API-Version", "2026-10")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Event-Id", event_id)
        .header("X-Shopify-Triggered-At", "2026-11-02T15:15:03Z")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

async fn one_event_through_two_subscriptions_is_stored_and_applied_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = fixture_bytes("order_create.json");
    // Two subscriptions to orders/create: one event, two webhook IDs, one X-Shopify-Event-Id.
    assert_eq!(deliver_event(&app, "orders/create", "w-sub-a", "ev-1", &body).await, StatusCode::OK);
    assert_eq!(deliver_event(&app, "orders/create", "w-sub-b", "ev-1", &body).await, StatusCode::OK);
    app.settle().await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 1);
    assert!(app.store().delivery(SHOP, "w-sub-b").await.unwrap().is_none(), "the second copy is a duplicate");
    assert_eq!(app.store().delivery(SHOP, "w-sub-a").await.unwrap().unwrap().status, "applied");
    // A retry of the first subscription's delivery is still a plain duplicate.
    assert_eq!(deliver_event(&app, "orders/create", "w-sub-a", "ev-1", &body).await, StatusCode::OK);
    // Another topic for the same event ID, and another event, are not duplicates.
    assert_eq!(deliver_event(&app, "orders/updated", "w-upd", "ev-1", &body).await, StatusCode::OK);
    assert_eq!(deliver_event(&app, "orders/create", "w-sub-c", "ev-2", &body).await, StatusCode::OK);
    app.settle().await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 3);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"orderline_webhook_deliveries_received_total{topic="orders/create",outcome="duplicate"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

async fn an_older_update_after_a_newer_one_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Newest first: the fulfilment update, then the fulfilled order, then the original order.
    app.deliver("fulfillments/update", "w-f", &fixture_bytes("fulfillment_update.json")).await;
    app.deliver("orders/fulfilled", "w-2", &fixture_bytes("order_fulfilled.json")).await;
    app.settle().await;
    let newer = app.store().order(SHOP, ORDER).await.unwrap().unwrap();
    app.deliver("orders/create", "w-1", &fixture_bytes("order_create.json")).await;
    app.settle().await;

    let order = app.store().order(SHOP, ORDER).await.unwrap().unwrap();
    assert_eq!(order, newer, "a late, older order payload rolls nothing back");
    assert_eq!(order.fulfillment_status.as_deref(), Some("fulfilled"));
    let fulfillments = app.store().fulfillments(SHOP, ORDER).await.unwrap();
    assert_eq!(
        fulfillments[0].shipment_status.as_deref(),
        Some("out_for_delivery"),
        "older copy inside the order lost"
    );
    assert_eq!(app.store().delivery(SHOP, "w-1").await.unwrap().unwrap().status, "unchanged");
    app.stop().await;
}

async fn order_and_customer_deletes_remove_and_stay_removed(backend: Backend) {
    // Destructive topics are applied only for the configured shop.
    let app = TestApp::start_with(backend, |s| s.shopify.shop = Some(SHOP.to_string())).await;
    app.deliver("orders/fulfilled", "w1", &fixture_bytes("order_fulfilled.json")).await;
    app.deliver("customers/create", "w2", &fixture_bytes("customer_create.json")).await;
    app.settle().await;
    assert!(app.store().order(SHOP, ORDER).await.unwrap().is_some());
    assert!(app.store().customer(SHOP, OTHER_CUSTOMER).await.unwrap().is_some());

    app.deliver("orders/delete", "w3", &fixture_bytes("order_delete.json")).await;
    app.deliver("customers/delete", "w4", &fixture_bytes("customer_delete.json")).await;
    app.settle().await;
    assert!(app.store().order(SHOP, ORDER).await.unwrap().is_none());
    assert!(app.store().fulfillments(SHOP, ORDER).await.unwrap().is_empty());
    assert!(app.store().refunds(SHOP, ORDER).await.unwrap().is_empty());
    assert!(app.store().phones_of_order(SHOP, ORDER).await.unwrap().is_empty());
    assert!(app.store().customer(SHOP, OTHER_CUSTOMER).await.unwrap().is_none());
    assert!(app.store().phones_of_customer(SHOP, OTHER_CUSTOMER).await.unwrap().is_empty());
    assert!(app.store().customers_by_phone(SHOP, &phone("+441614960000")).await.unwrap().is_empty());

    // A delayed update for the deleted order must not bring it back.
    let mut late = fixture("order_fulfilled.json");
    late["updated_at"] = json!("2026-12-01T00:00:00Z");
    app.deliver_json("orders/updated", "w5", &late).await;
    app.settle().await;
    assert!(app.store().order(SHOP, ORDER).await.unwrap().is_none());
    assert_eq!(app.store().delivery(SHOP, "w5").await.unwrap().unwrap().status, "gone");
    app.stop().await;
}

async fn customers_redact_leaves_no_trace_of_the_customer(backend: Backend) {
    // Destructive topics are applied only for the configured shop.
    let app = TestApp::start_with(backend, |s| s.shopify.shop = Some(SHOP.to_string())).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.deliver("orders/fulfilled", "w2", &fixture_bytes("order_fulfilled.json")).await;
    app.deliver("refunds/create", "w3", &fixture_bytes("refund_create.json")).await;
    app.deliver("customers/create", "w-other", &fixture_bytes("customer_create.json")).await;
    // A dead letter that names the customer: its payload must go too.
    let mut broken = fixture("order_create.json");
    broken["updated_at"] = json!("not a time");
    app.deliver_json("orders/updated", "w-broken", &broken).await;
    app.settle().await;
    assert_eq!(app.store().delivery(SHOP, "w-broken").await.unwrap().unwrap().status, "dead");

    app.deliver("customers/redact", "w-redact", &fixture_bytes("customers_redact.json")).await;
    app.settle().await;

    let id = CUSTOMER.0;
    let order = ORDER.0;
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {id}")).await, 0, "no row");
    assert_eq!(
        app.db
            .count(&format!("SELECT COUNT(*) FROM phone_numbers WHERE customer_id = {id} OR owner_id = {order}"))
            .await,
        0,
        "no phone"
    );
    for number in ["+15551234567", "+442079460958", "+15555557447"] {
        let sql = format!("SELECT COUNT(*) FROM phone_numbers WHERE e164 = '{number}'");
        assert_eq!(app.db.count(&sql).await, 0, "no phone {number}");
    }
    for table in ["orders", "order_line_items", "fulfillments", "refunds"] {
        let column = if table == "orders" { "id" } else { "order_id" };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = {order}");
        assert_eq!(app.db.count(&sql).await, 0, "no {table}");
    }
    for body in app.db.stored_bodies().await {
        assert!(
            !body.contains(&id.to_string()) && !body.contains("dana.whitfield") && !body.contains("555-SHIP"),
            "a stored payload still names the customer"
        );
    }
    // The other customer is untouched.
    assert!(app.store().customer(SHOP, OTHER_CUSTOMER).await.unwrap().is_some());

    // A late delivery for the redacted customer's order writes nothing back.
    let mut late = fixture("order_fulfilled.json");
    late["updated_at"] = json!("2026-12-01T00:00:00Z");
    app.deliver_json("orders/updated", "w-late", &late).await;
    app.settle().await;
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {id}")).await, 0);
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM orders WHERE id = {order}")).await, 0);
    assert!(app.db.stored_bodies().await.is_empty());
    app.stop().await;
}

async fn shop_redact_erases_the_shop(backend: Backend) {
    // Destructive topics are applied only for the configured shop.
    let app = TestApp::start_with(backend, |s| s.shopify.shop = Some(SHOP.to_string())).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.deliver("customers/create", "w2", &fixture_bytes("customer_create.json")).await;
    app.deliver("orders/cancelled", "w3", &fixture_bytes("order_guest_cancelled.json")).await;
    app.settle().await;
    app.deliver("shop/redact", "w-shop", &fixture_bytes("shop_redact.json")).await;
    app.settle().await;
    for table in ["customers", "orders", "order_line_items", "phone_numbers", "fulfillments", "refunds"] {
        assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 1, "only the shop/redact record");
    app.stop().await;
}

async fn a_data_request_is_recorded_for_the_merchant(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.deliver("customers/data_request", "w-dr", &fixture_bytes("customers_data_request.json")).await;
    app.settle().await;
    let sql = format!("SELECT COUNT(*) FROM data_requests WHERE customer_id = {} AND request_id = 48213", CUSTOMER.0);
    assert_eq!(app.db.count(&sql).await, 1);
    assert_eq!(app.store().delivery(SHOP, "w-dr").await.unwrap().unwrap().status, "applied");
    app.stop().await;
}

async fn guest_orders_index_their_phones_and_keep_unparseable_ones_raw(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.deliver("orders/cancelled", "w1", &fixture_bytes("order_guest_cancelled.json")).await;
    app.settle().await;
    let order = app.store().order(SHOP, GUEST_ORDER).await.unwrap().unwrap();
    assert_eq!(order.customer_id, None);
    assert!(order.cancelled_at.is_some());
    assert_eq!(order.cancel_reason.as_deref(), Some("customer"));
    let phones = app.store().phones_of_order(SHOP, GUEST_ORDER).await.unwrap();
    let by_source: Vec<(&str, &str, Option<&str>)> =
        phones.iter().map(|p| (p.source.as_str(), p.raw.as_str(), p.e164.as_deref())).collect();
    assert_eq!(
        by_source,
        vec![("phone", "+1 (415) 555-0132", Some("+14155550132")), ("shipping_address", "not a phone", None)]
    );
    app.stop().await;
}

async fn an_unknown_topic_is_acknowledged_and_recorded_not_applied(backend: Backend) {
    let app = TestApp::start(backend).await;
    let status = app.deliver("products/update", "w-p", br#"{"id": 632910392, "title": "IPod Nano"}"#).await;
    assert_eq!(status, StatusCode::OK);
    app.settle().await;
    let delivery = app.store().delivery(SHOP, "w-p").await.unwrap().unwrap();
    assert_eq!(delivery.topic, "products/update");
    assert_eq!(delivery.status, "unhandled");
    assert!(!delivery.has_body);
    app.stop().await;
}

async fn an_oversized_body_is_refused_with_413(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.server.webhook_max_bytes = 4096).await;
    let mut order = fixture("order_create.json");
    order["note"] = json!("x".repeat(5000));
    let status = app.deliver_json("orders/create", "w-big", &order).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    app.stop().await;
}

async fn a_dead_letter_is_replayed_after_the_cause_is_fixed(backend: Backend) {
    let app = TestApp::start(backend).await;
    // The cause: the orders table refuses writes (say, a migration gone wrong on the server).
    match backend {
        Backend::Postgres => {
            app.db
                .exec(
                    "CREATE FUNCTION refuse_orders() RETURNS trigger AS $$
                     BEGIN RAISE EXCEPTION 'orders are read-only for maintenance'; END $$ LANGUAGE plpgsql;
                     CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON orders
                     FOR EACH ROW EXECUTE FUNCTION refuse_orders();",
                )
                .await
        }
        Backend::Sqlite => {
            app.db
                .exec(
                    "CREATE TRIGGER refuse BEFORE INSERT ON orders
                     BEGIN SELECT RAISE(ABORT, 'orders are read-only for maintenance'); END;",
                )
                .await
        }
    }
    app.deliver("orders/create", "w-dead", &fixture_bytes("order_create.json")).await;
    // A malformed payload is a dead letter too, and stays one after a replay.
    app.deliver("orders/updated", "w-malformed", br##"{"id": 9007199254741999, "name": "#1"}"##).await;
    app.settle().await;
    let dead = app.store().delivery(SHOP, "w-dead").await.unwrap().unwrap();
    assert_eq!(dead.status, "dead");
    assert!(dead.error.as_deref().unwrap().contains("read-only"), "{:?}", dead.error);
    assert!(dead.has_body, "a dead letter keeps its payload for the replay");
    assert!(app.store().order(SHOP, ORDER).await.unwrap().is_none(), "no half-written order");
    assert!(app.store().customer(SHOP, CUSTOMER).await.unwrap().is_none(), "the savepoint took the customer back too");

    let (ok, listing, _) = orderline_cli(&app.db.url, &["dlq", "list"]);
    assert!(ok);
    assert!(
        listing.contains("w-dead") && listing.contains("w-malformed") && listing.contains("2 dead letter(s)"),
        "{listing}"
    );

    // The fix, then the replay.
    match backend {
        Backend::Postgres => app.db.exec("DROP TRIGGER refuse ON orders").await,
        Backend::Sqlite => app.db.exec("DROP TRIGGER refuse").await,
    }
    let (ok, output, stderr) = orderline_cli(&app.db.url, &["dlq", "replay", &dead.id.to_string()]);
    assert!(ok, "{output}{stderr}");
    assert!(output.contains("1 applied, 0 still dead"), "{output}");
    let order = app.store().order(SHOP, ORDER).await.unwrap().expect("applied by the replay");
    assert_eq!(order.name, "#1042");
    let replayed = app.store().delivery(SHOP, "w-dead").await.unwrap().unwrap();
    assert_eq!((replayed.status.as_str(), replayed.attempts, replayed.has_body), ("applied", 2, false));

    let (ok, output, _) = orderline_cli(&app.db.url, &["dlq", "replay"]);
    assert!(!ok, "the malformed one is still dead");
    assert!(output.contains("still dead") && output.contains("missing field"), "{output}");
    assert_eq!(app.store().dead_letters().await.unwrap().len(), 1);
    app.stop().await;
}

async fn health_readiness_and_metrics_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"orderline_webhook_deliveries_received_total{topic="orders/create",outcome="accepted"} 1"#,
        r#"orderline_webhook_deliveries_processed_total{topic="orders/create",outcome="applied"} 1"#,
        "orderline_webhook_apply_seconds_count 1",
        "orderline_webhook_dead_letters 0",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    app.stop().await;
}

/// The customer inside a REST order webhook has no `addresses` (API 2025-01): it creates a
/// customer orderline does not hold yet, never overwrites a whole record (which would drop the
/// address phones), and a whole copy of the same second replaces it without a false alarm.
async fn the_customer_inside_an_order_creates_but_never_overwrites_the_customer(backend: Backend) {
    let app = TestApp::start(backend).await;
    // Created by the order alone: a partial row, found by the phones it carries.
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;
    assert!(app.store().customer(SHOP, CUSTOMER).await.unwrap().is_some());
    // customers/create of the same second, whole, with a second address: it replaces the
    // partial row (applied, not marked unconfirmed), and the address phone is indexed.
    let mut whole = fixture("order_create.json")["customer"].clone();
    let home = whole["default_address"].clone();
    let mut work = home.clone();
    (work["id"], work["phone"], work["default"]) =
        (json!(9_007_199_254_741_003_i64), json!("212-555-0199"), json!(false));
    whole["addresses"] = json!([home, work]);
    app.deliver_json("customers/create", "w2", &whole).await;
    app.settle().await;
    assert_eq!(app.store().delivery(SHOP, "w2").await.unwrap().unwrap().status, "applied");
    let stored = app.store().customer(SHOP, CUSTOMER).await.unwrap().unwrap();
    assert_ne!(stored.synced_at, orderline::store::UNCONFIRMED);
    let found = app.store().customers_by_phone(SHOP, &phone("+12125550199")).await.unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![CUSTOMER.0]);

    // A later order webhook whose embedded customer is newer (renamed) and, as REST sends it,
    // without `addresses`: the order is applied, the whole customer record stays.
    let mut order = fixture("order_create.json");
    order["updated_at"] = json!("2026-11-05T09:00:00-05:00");
    order["customer"]["updated_at"] = json!("2026-11-05T08:59:00-05:00");
    order["customer"]["first_name"] = json!("Danielle");
    app.deliver_json("orders/updated", "w3", &order).await;
    app.settle().await;
    assert_eq!(app.store().delivery(SHOP, "w3").await.unwrap().unwrap().status, "applied");
    let kept = app.store().customer(SHOP, CUSTOMER).await.unwrap().unwrap();
    assert_eq!((kept.first_name.as_deref(), kept.updated_at), (Some("Dana"), stored.updated_at));
    let found = app.store().customers_by_phone(SHOP, &phone("+12125550199")).await.unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![CUSTOMER.0], "the address phone is kept");
    app.stop().await;
}

/// A tracking event can arrive before the fulfilment it belongs to (Shopify does not order
/// deliveries): its dates have nowhere to go yet, so the order is marked unconfirmed and the
/// next lookup refetches it rather than answering without them.
async fn a_tracking_event_ahead_of_its_fulfilment_marks_the_order_for_a_refetch(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.deliver("orders/create", "w1", &fixture_bytes("order_create.json")).await;
    app.settle().await;
    let event = json!({
        "id": 9_007_199_254_742_001_i64, "fulfillment_id": 9_007_199_254_741_409_i64, "order_id": ORDER.0,
        "status": "in_transit", "happened_at": "2026-11-03T08:00:00-05:00",
        "estimated_delivery_at": "2026-11-05T17:00:00-05:00",
        "admin_graphql_api_id": "gid://shopify/FulfillmentEvent/9007199254742001",
    });
    app.deliver_json("fulfillment_events/create", "w2", &event).await;
    app.settle().await;
    assert_eq!(app.store().delivery(SHOP, "w2").await.unwrap().unwrap().status, "unconfirmed");
    let order = app.store().order(SHOP, ORDER).await.unwrap().unwrap();
    assert_eq!(order.synced_at, orderline::store::UNCONFIRMED);

    // Once the fulfilment is stored, the event's estimate lands on it.
    app.deliver("orders/fulfilled", "w3", &fixture_bytes("order_fulfilled.json")).await;
    app.deliver_json("fulfillment_events/create", "w4", &event).await;
    app.settle().await;
    assert_eq!(app.store().delivery(SHOP, "w4").await.unwrap().unwrap().status, "applied");
    let f = &app.store().fulfillments(SHOP, ORDER).await.unwrap()[0];
    assert_eq!(f.estimated_delivery_at.map(|t| t.0.to_rfc3339()).as_deref(), Some("2026-11-05T22:00:00+00:00"));
    app.stop().await;
}

on_both_backends!(
    a_valid_delivery_is_applied,
    a_tracking_event_ahead_of_its_fulfilment_marks_the_order_for_a_refetch,
    the_customer_inside_an_order_creates_but_never_overwrites_the_customer,
    fulfilments_tracking_and_refunds_are_kept,
    a_bad_signature_is_refused_and_nothing_is_stored,
    without_a_secret_every_webhook_is_refused,
    a_duplicate_delivery_changes_nothing,
    one_event_through_two_subscriptions_is_stored_and_applied_once,
    an_older_update_after_a_newer_one_changes_nothing,
    order_and_customer_deletes_remove_and_stay_removed,
    customers_redact_leaves_no_trace_of_the_customer,
    shop_redact_erases_the_shop,
    a_data_request_is_recorded_for_the_merchant,
    guest_orders_index_their_phones_and_keep_unparseable_ones_raw,
    an_unknown_topic_is_acknowledged_and_recorded_not_applied,
    an_oversized_body_is_refused_with_413,
    a_dead_letter_is_replayed_after_the_cause_is_fixed,
    health_readiness_and_metrics_answer,
);

mod rotation {
    use super::*;

    /// While Shopify rotates the app secret, deliveries signed with the old one still verify.
    #[tokio::test]
    async fn the_previous_secret_is_accepted_during_a_rotation() {
        let app = TestApp::start_with(Backend::Postgres, |s| {
            s.shopify.webhook_secret = Some(Secret::new("new-secret"));
            s.shopify.webhook_secret_previous = Some(Secret::new(common::SECRET));
        })
        .await;
        assert_eq!(app.deliver("orders/create", "w-old", &fixture_bytes("order_create.json")).await, StatusCode::OK);
        let body = fixture_bytes("order_guest_cancelled.json");
        let new = orderline::shopify::signature::sign("new-secret", &body);
        assert_eq!(app.deliver_signed("orders/cancelled", "w-new", &body, &new).await, StatusCode::OK);
        app.settle().await;
        assert!(app.store().order(SHOP, ORDER).await.unwrap().is_some());
        assert!(app.store().order(SHOP, GUEST_ORDER).await.unwrap().is_some());
        app.stop().await;
    }
}
