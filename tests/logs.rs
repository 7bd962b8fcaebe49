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
    // Issue 13 finding 8: a second address in a comma-separated run, and phones written with `/`
    // or a non-ASCII hyphen (U+2010, U+2013), leaked from dead-letter logs.
    let mut emails_in_a_run = fixture("order_create.json");
    emails_in_a_run["id"] = json!("dana.whitfield@example.com,second.person@example.org;third@example.net");
    let mut slashed_phone = fixture("order_create.json");
    slashed_phone["order_number"] = json!("555/867/5309");
    let mut hyphenated_phone = fixture("order_create.json");
    hyphenated_phone["order_number"] = json!("555\u{2010}867\u{2013}5309");
    let bodies = [phone_in_field, email_as_id, emails_in_a_run, slashed_phone, hyphenated_phone];
    for (n, body) in bodies.iter().enumerate() {
        let body = serde_json::to_vec(body).unwrap();
        let hmac = signature::sign(SECRET, &body);
        let status = common::post_webhook(&client, &server.url, "orders/create", &format!("log-{n}"), &body, &hmac)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let store = orderline::store::Store::connect(&db.url).await.unwrap();
    common::settle(&store).await;
    assert_eq!(store.dead_letters().await.unwrap().len(), bodies.len());
    server.kill();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let dead: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"].as_str() == Some("dead letter: kept for `orderline dlq replay`"))
        .collect();
    assert_eq!(dead.len(), bodies.len(), "{logs}");
    assert!(dead.iter().any(|l| l["error"].as_str().unwrap_or("").contains("+1•••••5309")), "{logs}");
    assert!(!logs.contains("867 5309") && !logs.contains("8675309"), "a phone number in clear: {logs}");
    assert!(!logs.contains("dana.whitfield@"), "an email in clear: {logs}");
    assert!(!logs.contains("second.person@") && !logs.contains("third@"), "a second address in clear: {logs}");
    for phone in ["867/5309", "867\u{2013}5309", "555\u{2010}867"] {
        assert!(!logs.contains(phone), "a phone in clear ({phone}): {logs}");
    }
    let masked = dead.iter().filter(|l| l["error"].as_str().unwrap_or("").contains("•••••5309")).count();
    assert_eq!(masked, 3, "each phone is masked to its last four, not dropped: {logs}");
}
