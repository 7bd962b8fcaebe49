//! Two `orderline serve` processes on one Postgres: a webhook applied through one is visible
//! through the other at once, though the other holds the caller in its cache as fresh for an
//! hour (LISTEN/NOTIFY drops the cached caller everywhere). How long that takes is printed, not
//! asserted: on a busy machine it varies (under 100 ms on a quiet one).

use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, SECRET, SHOP, ServerProcess, TestDb, fixture, settle};
use orderline::shopify::signature;
use orderline::store::Store;
use serde_json::json;

const AGENT: &str = "agent-secret";

async fn first_name_seen_by(client: &reqwest::Client, server: &ServerProcess) -> (String, String) {
    let body: serde_json::Value = client
        .get(format!("{}/api/customers?phone=%2B15551234567", server.url))
        .bearer_auth(AGENT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["customers"][0]["first_name"].as_str().unwrap_or("").to_string(),
        body["source"].as_str().unwrap().to_string(),
    )
}

async fn deliver(client: &reqwest::Client, server: &ServerProcess, topic: &str, id: &str, body: &serde_json::Value) {
    let body = serde_json::to_vec(body).unwrap();
    let hmac = signature::sign(SECRET, &body);
    let status = common::post_webhook(client, &server.url, topic, id, &body, &hmac).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_applied_by_one_instance_reaches_the_other_cache_though_it_was_fresh() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    // Fresh for an hour: without the notice, B would answer from its cache all that time.
    let env = [
        ("SHOPIFY_SHOP", SHOP),
        ("ORDERLINE_AGENT_TOKEN", AGENT),
        ("ORDERLINE_WARM_COUNT", "0"),
        ("ORDERLINE_FRESHNESS", "1h"),
    ];
    let a = ServerProcess::spawn_with(&db.url, &env, std::process::Stdio::inherit()).await;
    let b = ServerProcess::spawn_with(&db.url, &env, std::process::Stdio::inherit()).await;
    let client = reqwest::Client::new();

    let order = fixture("order_create.json");
    deliver(&client, &a, "orders/create", "w1", &order).await;
    settle(&store).await;
    assert_eq!(first_name_seen_by(&client, &b).await, ("Dana".into(), "store".into()));
    assert_eq!(first_name_seen_by(&client, &b).await, ("Dana".into(), "cache".into()), "B now serves it from memory");

    let mut customer = order["customer"].clone();
    customer["first_name"] = json!("Danielle");
    customer["updated_at"] = json!("2026-11-04T09:00:00-05:00");
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        customer["updated_at"] = json!(format!("2026-11-04T09:00:0{round}-05:00"));
        let name = format!("Danielle{round}");
        customer["first_name"] = json!(name);
        deliver(&client, &a, "customers/update", &format!("w-update-{round}"), &customer).await;
        let acked = Instant::now();
        loop {
            let (seen, _) = first_name_seen_by(&client, &b).await;
            if seen == name {
                break;
            }
            assert!(acked.elapsed() < Duration::from_secs(10), "B never saw {name}; still {seen}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        worst = worst.max(acked.elapsed());
    }
    eprintln!("worst time from A's acknowledgement to B serving the change: {worst:?}");
    store.close().await;
}
