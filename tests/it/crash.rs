//! Durability: a 200 means stored. Deliveries acknowledged before the process is SIGKILLed are
//! all applied after a restart, on Postgres and on SQLite.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common;
use crate::common::{Backend, SHOP, ServerProcess, TestDb, order_variant, settle};
use futures::StreamExt;
use orderline::shopify::signature;
use orderline::store::Store;

const DELIVERIES: u64 = 1500;
const KILL_AFTER_ACKS: usize = 400;

async fn acknowledged_deliveries_survive_a_sigkill(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut server = ServerProcess::spawn(&db.url).await;
    let client = reqwest::Client::new();
    let bodies: Vec<(String, Vec<u8>)> =
        (0..DELIVERIES).map(|n| (format!("crash-{n}"), serde_json::to_vec(&order_variant(n)).unwrap())).collect();

    let acks = Arc::new(AtomicUsize::new(0));
    let url = server.url.clone();
    let posting = futures::stream::iter(bodies.iter().cloned())
        .map(|(webhook_id, body)| {
            let client = client.clone();
            let base = url.clone();
            let acks = acks.clone();
            async move {
                let hmac = signature::sign(common::SECRET, &body);
                let response = common::post_webhook(&client, &base, "orders/create", &webhook_id, &body, &hmac).await;
                let acked = matches!(response, Ok(reqwest::StatusCode::OK));
                if acked {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                (webhook_id, acked)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let killer = {
        let acks = acks.clone();
        async move {
            while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            server.kill();
            server
        }
    };
    let (results, killed) = tokio::join!(posting, killer);
    drop(killed);

    let acked: HashSet<String> = results.iter().filter(|(_, ok)| *ok).map(|(id, _)| id.clone()).collect();
    assert!(acked.len() >= KILL_AFTER_ACKS, "acked {}", acked.len());
    assert!(acked.len() < DELIVERIES as usize, "the kill landed while deliveries were still arriving");

    let store = Store::connect(&db.url).await.unwrap();
    let before_restart = store.delivery_counts().await.unwrap();
    eprintln!("acknowledged before SIGKILL: {}; stored rows by status at the kill: {before_restart:?}", acked.len());

    let restarted = ServerProcess::spawn(&db.url).await;
    settle(&store).await;
    for webhook_id in &acked {
        let delivery = store.delivery(SHOP, webhook_id).await.unwrap();
        let delivery = delivery.unwrap_or_else(|| panic!("{webhook_id} was acknowledged but is not stored"));
        assert_eq!(delivery.status, "applied", "{webhook_id}");
        let n: u64 = webhook_id.trim_start_matches("crash-").parse().unwrap();
        let order_id = order_variant(n)["id"].as_i64().unwrap();
        let order = store.order(SHOP, orderline::domain::ShopifyId(order_id)).await.unwrap();
        assert!(order.is_some(), "{webhook_id}: order {order_id} missing after restart");
    }
    drop(restarted);
    store.close().await;
}

on_both_backends!(acknowledged_deliveries_survive_a_sigkill);
