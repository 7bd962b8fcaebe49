//! The store on its own, on Postgres and SQLite: the apply path used by live fetches and
//! reconciliation, confirmations, watermarks, call records and readiness.

use crate::common;
use crate::common::{Backend, SHOP, TestDb, fixture};
use chrono::{Duration, TimeZone, Utc};
use orderline::domain::{EventKind, ShopifyId, TransferReason, Verification, Verified};
use orderline::shopify::payload::{ShopifyChange, Topic};
use orderline::store::{ApplyOutcome, CallEvent, CallWrite, NewCall, Store, Ts};

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn order_change(name: &str) -> ShopifyChange {
    ShopifyChange::parse(Topic::OrdersUpdated, &serde_json::to_vec(&fixture(name)).unwrap()).unwrap()
}

fn at(hour: u32) -> Ts {
    Ts::from(Utc.with_ymd_and_hms(2026, 11, 10, hour, 0, 0).unwrap())
}

async fn readiness_needs_every_migration(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    assert!(store.readiness().await.is_err(), "no migrations yet");
    store.migrate().await.unwrap();
    assert_eq!(store.readiness().await, Ok(()));
    store.close().await;
}

async fn an_equal_version_confirms_the_row_and_an_older_one_does_not(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let order = ShopifyId(9_007_199_254_741_107);
    assert_eq!(
        store.apply(SHOP, &order_change("order_fulfilled.json").into(), "US", at(1)).await.unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(store.order(SHOP, order).await.unwrap().unwrap().synced_at, at(1));

    // A live fetch or a reconciliation that sees the same version confirms it.
    let again = store.apply(SHOP, &order_change("order_fulfilled.json").into(), "US", at(2)).await.unwrap();
    assert_eq!(again, ApplyOutcome::Unchanged);
    assert_eq!(store.order(SHOP, order).await.unwrap().unwrap().synced_at, at(2));

    // An older version confirms nothing.
    let older = store.apply(SHOP, &order_change("order_create.json").into(), "US", at(3)).await.unwrap();
    assert_eq!(older, ApplyOutcome::Unchanged);
    let row = store.order(SHOP, order).await.unwrap().unwrap();
    assert_eq!((row.synced_at, row.fulfillment_status.as_deref()), (at(2), Some("fulfilled")));
    store.close().await;
}

async fn recent_orders_come_newest_first(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let customer = ShopifyId(9_007_199_254_740_993);
    for (n, created) in [(1u64, "2026-11-01T10:00:00Z"), (2, "2026-11-03T10:00:00Z"), (3, "2026-11-02T10:00:00Z")] {
        let mut order = common::order_variant(n);
        order["customer"]["id"] = serde_json::json!(customer.0);
        order["created_at"] = serde_json::json!(created);
        let change = ShopifyChange::parse(Topic::OrdersCreate, &serde_json::to_vec(&order).unwrap()).unwrap();
        store.apply(SHOP, &change.into(), "US", at(1)).await.unwrap();
    }
    let names: Vec<String> =
        store.recent_orders(SHOP, customer, 2).await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, vec!["#5002", "#5003"]);
    store.close().await;
}

async fn a_watermark_only_moves_forward(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    assert_eq!(store.watermark(SHOP, "orders").await.unwrap(), None);
    store.advance_watermark(SHOP, "orders", at(5), at(5)).await.unwrap();
    store.advance_watermark(SHOP, "orders", at(3), at(6)).await.unwrap();
    assert_eq!(store.watermark(SHOP, "orders").await.unwrap(), Some(at(5)));
    store.advance_watermark(SHOP, "orders", at(7), at(7)).await.unwrap();
    assert_eq!(store.watermark(SHOP, "orders").await.unwrap(), Some(at(7)));
    store.close().await;
}

async fn a_call_is_recorded_with_its_events_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let call = new_call("CA0123456789abcdef0123456789abcdef");
    let event = |step: i32, idx: i32, kind: &str, detail: &str| call_event(&call.call_sid, step, idx, kind, detail);
    store
        .record_calls(&[CallWrite::Start(call.clone()), event(1, 0, "lookup", "cache"), event(1, 1, "step", "menu")])
        .await
        .unwrap();
    // Twilio retried the first request and then the caller pressed 1: nothing is written twice.
    let mut retried = call.clone();
    retried.customer_id = None;
    store.record_calls(&[CallWrite::Start(retried), event(1, 0, "lookup", "store")]).await.unwrap();
    store
        .record_calls(&[
            event(2, 0, "key", "1"),
            CallWrite::Outcome {
                call_sid: call.call_sid.clone(),
                customer_id: None,
                verification: Some(Verification::Passed(Verified::PostalCode)),
                transfer: Some(TransferReason::Asked),
            },
        ])
        .await
        .unwrap();
    let end = Ts::from(at(9).0 + Duration::seconds(95));
    let status = |status: &str, sequence: i32, ended_at: Option<Ts>, duration_s: Option<i32>| CallWrite::Status {
        call: call.clone(),
        status: status.into(),
        sequence,
        ended_at,
        duration_s,
    };
    // Callbacks out of order: "completed" (3) arrives before "in-progress" (1).
    store.record_calls(&[status("completed", 3, Some(end), Some(95))]).await.unwrap();
    store.record_calls(&[status("in-progress", 1, None, None)]).await.unwrap();

    let row = store.call(&call.call_sid).await.unwrap().unwrap();
    assert_eq!(row.customer_id, Some(9_007_199_254_740_993), "kept when not given again");
    assert_eq!((row.verification.as_deref(), row.transfer.as_deref()), (Some("postal_code"), Some("asked")));
    assert_eq!((row.status.as_str(), row.duration_s, row.ended_at), ("completed", Some(95), Some(end)));
    assert_eq!(
        events_of(&store, &call.call_sid).await,
        vec![(1, "lookup".into(), "cache".into()), (1, "step".into(), "menu".into()), (2, "key".into(), "1".into())]
    );

    // A status for a call whose start was never recorded still leaves a row.
    let mut lost = call.clone();
    lost.call_sid = "CA_lost".into();
    store
        .record_calls(&[CallWrite::Status {
            call: lost,
            status: "completed".into(),
            sequence: 2,
            ended_at: Some(end),
            duration_s: Some(5),
        }])
        .await
        .unwrap();
    assert_eq!(store.call("CA_lost").await.unwrap().unwrap().duration_s, Some(5));
    assert_eq!(store.call_count().await.unwrap(), 2);
    store.close().await;
}

/// A call's start as the first request records it.
fn new_call(call_sid: &str) -> NewCall {
    NewCall {
        call_sid: call_sid.into(),
        shop: SHOP.into(),
        from_raw: "+15551234567".into(),
        from_e164: Some("+15551234567".into()),
        to_number: Some("+18005551212".into()),
        customer_id: Some(9_007_199_254_740_993),
        verification: None,
        transfer: None,
        started_at: at(9),
        first_word_ms: None,
    }
}

fn call_event(call_sid: &str, step: i32, idx: i32, kind: &str, detail: &str) -> CallWrite {
    CallWrite::Event(CallEvent {
        call_sid: call_sid.into(),
        step,
        idx,
        kind: EventKind::parse(kind).expect("a stored event kind"),
        detail: detail.into(),
        at: at(9),
    })
}

async fn events_of(store: &Store, call_sid: &str) -> Vec<(i32, String, String)> {
    store.call_events(call_sid).await.unwrap().into_iter().map(|e| (e.step, e.kind, e.detail)).collect()
}

async fn a_request_written_twice_in_one_batch_is_recorded_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    // Twilio retried an incoming request before the first copy's records were written: both
    // copies land in one batch, beside another call's.
    let (a, b) = ("CA00000000000000000000000000000001", "CA00000000000000000000000000000002");
    let mut retried = new_call(a);
    retried.customer_id = None;
    store
        .record_calls(&[
            CallWrite::Start(new_call(a)),
            call_event(a, 1, 0, "lookup", "cache"),
            call_event(a, 1, 1, "step", "menu"),
            CallWrite::Start(new_call(b)),
            call_event(b, 1, 0, "lookup", "store"),
            CallWrite::Start(retried),
            call_event(a, 1, 0, "lookup", "store"),
        ])
        .await
        .unwrap();
    assert_eq!(store.call_count().await.unwrap(), 2);
    assert_eq!(store.call(a).await.unwrap().unwrap().customer_id, Some(9_007_199_254_740_993), "the first copy's");
    let step = |kind: &str, detail: &str| (1, kind.to_string(), detail.to_string());
    assert_eq!(events_of(&store, a).await, vec![step("lookup", "cache"), step("step", "menu")]);
    assert_eq!(events_of(&store, b).await, vec![step("lookup", "store")]);

    // An event written before its call's row (the start's message lost), then the start with
    // that event again: the event is kept once, the rest written.
    let c = "CA00000000000000000000000000000003";
    store.record_calls(&[call_event(c, 1, 0, "lookup", "cache")]).await.unwrap();
    store
        .record_calls(&[
            CallWrite::Start(new_call(c)),
            call_event(c, 1, 0, "lookup", "store"),
            call_event(c, 1, 1, "step", "menu"),
        ])
        .await
        .unwrap();
    assert!(store.call(c).await.unwrap().is_some());
    assert_eq!(events_of(&store, c).await, vec![step("lookup", "cache"), step("step", "menu")]);
    store.close().await;
}

on_both_backends!(
    readiness_needs_every_migration,
    a_request_written_twice_in_one_batch_is_recorded_once,
    an_equal_version_confirms_the_row_and_an_older_one_does_not,
    recent_orders_come_newest_first,
    a_watermark_only_moves_forward,
    a_call_is_recorded_with_its_events_in_order,
);
