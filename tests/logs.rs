//! Logs: JSON lines when ORDERLINE_LOG_FORMAT=json, and no phone number or email in clear,
//! even when a rejected payload quotes them.

mod common;

use common::{SECRET, ServerProcess, TestDb, fixture};
use orderline::shopify::signature;
use serde_json::json;

#[tokio::test]
async fn json_logs_mask_phones_and_emails() {
    let db = TestDb::new(common::Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("orderline.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = ServerProcess::spawn_with(
        &db.url,
        &[("ORDERLINE_LOG_FORMAT", "json"), ("RUST_LOG", "debug,sqlx=warn,hyper=warn")],
        log.into(),
    );
    let client = reqwest::Client::new();
    let mut phone_in_field = fixture("order_create.json");
    phone_in_field["order_number"] = json!("+1 555 867 5309");
    let mut email_as_id = fixture("order_create.json");
    email_as_id["id"] = json!("dana.whitfield@example.com");
    for (n, body) in [phone_in_field, email_as_id].iter().enumerate() {
        let body = serde_json::to_vec(body).unwrap();
        let hmac = signature::sign(SECRET, &body);
        let status = common::post_webhook(&client, &server.url, "orders/create", &format!("log-{n}"), &body, &hmac)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let store = orderline::store::Store::connect(&db.url).await.unwrap();
    common::settle(&store).await;
    assert_eq!(store.dead_letters().await.unwrap().len(), 2);
    server.kill();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let dead: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"].as_str() == Some("dead letter: kept for `orderline dlq replay`"))
        .collect();
    assert_eq!(dead.len(), 2, "{logs}");
    assert!(dead.iter().any(|l| l["error"].as_str().unwrap_or("").contains("+1•••••5309")), "{logs}");
    assert!(!logs.contains("867 5309") && !logs.contains("8675309"), "a phone number in clear: {logs}");
    assert!(!logs.contains("dana.whitfield@"), "an email in clear: {logs}");
}
