//! Logs: JSON lines when ORDERLINE_LOG_FORMAT=json, and no phone number or email in clear,
//! even when a rejected payload quotes them; what `orderline serve` says at start about Shopify
//! (how it authenticates, missing scopes: never a secret or a token), and the one line for each
//! thing Shopify tells it about API versions.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, SECRET, SHOP, ServerProcess, TestDb, fixture};
use orderline::shopify::graphql::{API_VERSION, Operation};
use orderline::shopify::signature;
use orderline::sim::shopify::{ShopifySim, SimConfig, SimServer};
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
    )
    .await;
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

/// `orderline serve` (the binary) using the Shopify emulator, its logs (text, at debug) in a file.
struct ShopLine {
    sim: ShopifySim,
    emulator: SimServer,
    server: ServerProcess,
    log_path: PathBuf,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// How the started orderline authenticates to the emulator.
#[derive(Clone, Copy)]
enum Auth {
    ClientCredentials,
    PermanentToken,
}

impl ShopLine {
    async fn start(backend: Backend, sim: ShopifySim, auth: Auth, extra: &[(&str, &str)]) -> ShopLine {
        let emulator = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("orderline.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let config = sim.config().clone();
        let url = emulator.url();
        let mut envs: Vec<(String, String)> = [
            ("SHOPIFY_SHOP", SHOP),
            ("SHOPIFY_API_URL", url.as_str()),
            ("RUST_LOG", "debug,sqlx=warn,hyper=warn,h2=warn,rustls=warn"),
            ("ORDERLINE_WARM_COUNT", "0"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        match auth {
            Auth::ClientCredentials => {
                envs.push(("SHOPIFY_CLIENT_ID".into(), config.client_id));
                envs.push(("SHOPIFY_CLIENT_SECRET".into(), config.client_secret));
            }
            Auth::PermanentToken => envs.push(("SHOPIFY_ACCESS_TOKEN".into(), config.access_token)),
        }
        let db_url = db.url.clone();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = ServerProcess::spawn_with(&db_url, &envs, log.into()).await;
        ShopLine { sim, emulator, server, log_path, _db: db, _dir: dir }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap()
    }

    /// Waits (at most 20 s) until the logs hold `text`.
    async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.logs().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in the logs: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops orderline (SIGKILL: what is logged is already in the file) and the emulator; the logs.
    async fn stop(mut self) -> String {
        self.server.kill();
        let logs = self.logs();
        self.emulator.stop().await;
        logs
    }
}

/// No secret the emulator knows (client secret, permanent token, any token it granted: all
/// `shpat_…`) and no webhook secret appears in `logs`.
fn assert_no_secret_in(config: &SimConfig, logs: &str) {
    for secret in [config.client_secret.as_str(), config.access_token.as_str(), SECRET, "shpat_"] {
        assert!(!logs.contains(secret), "{secret:?} in the logs: {logs}");
    }
}

fn lines_with<'a>(logs: &'a str, text: &str) -> Vec<&'a str> {
    logs.lines().filter(|l| l.contains(text)).collect()
}

async fn startup_names_the_authentication_mode_and_never_logs_a_secret_or_a_token(backend: Backend) {
    let modes = [
        (Auth::ClientCredentials, "client credentials (SHOPIFY_CLIENT_ID/SECRET)"),
        (Auth::PermanentToken, "a permanent access token (SHOPIFY_ACCESS_TOKEN"),
    ];
    for (auth, said) in modes {
        let line = ShopLine::start(backend, ShopifySim::new(SimConfig::default()), auth, &[]).await;
        // The scope check at start has been answered: a token was used (and, for client
        // credentials, granted) by then.
        let deadline = Instant::now() + Duration::from_secs(20);
        while line.sim.requests_for(Operation::AccessScopes) == 0 {
            assert!(Instant::now() < deadline, "orderline never asked for its scopes: {}", line.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Auth::ClientCredentials = auth {
            line.wait_for_log("new Admin API token from the client-credentials grant").await;
            assert_eq!(line.sim.grants(), 1);
        }
        let config = line.sim.config().clone();
        let logs = line.stop().await;
        let said_lines = lines_with(&logs, "Shopify Admin API authentication: ");
        assert_eq!(said_lines.len(), 1, "{logs}");
        assert!(said_lines[0].contains(said), "{}", said_lines[0]);
        assert_no_secret_in(&config, &logs);
    }
}

async fn a_missing_scope_is_logged_at_start_with_its_name_and_shown_by_readyz(backend: Backend) {
    let scopes = ["read_customers", "read_orders"].map(String::from).to_vec();
    let sim = ShopifySim::new(SimConfig { scopes, ..SimConfig::default() });
    let line = ShopLine::start(backend, sim, Auth::ClientCredentials, &[]).await;
    line.wait_for_log("lacks the read_all_orders scope").await;
    line.wait_for_log("lacks the read_fulfillments scope").await;
    let readyz = reqwest::get(format!("{}/readyz", line.server.url)).await.unwrap();
    assert_eq!(readyz.status(), 200, "ready, but degraded");
    let body = readyz.text().await.unwrap();
    assert!(body.contains("read_fulfillments") && body.contains("read_all_orders"), "{body}");
    let config = line.sim.config().clone();
    let logs = line.stop().await;
    for scope in ["read_fulfillments", "read_all_orders"] {
        let said = lines_with(&logs, &format!("lacks the {scope} scope"));
        assert_eq!(said.len(), 1, "{logs}");
        assert!(said[0].contains("WARN") && said[0].contains("Dev Dashboard"), "{}", said[0]);
    }
    for held in ["read_customers", "read_orders"] {
        assert!(lines_with(&logs, &format!("lacks the {held} scope")).is_empty(), "{logs}");
    }
    assert_no_secret_in(&config, &logs);
}

/// Shopify has retired 2026-10 (served by the oldest supported version instead) and deprecated a
/// field orderline selects: over many requests (the scope check, then a sweep every second) each
/// is said once.
async fn another_api_version_and_a_deprecation_are_each_logged_once(backend: Backend) {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    sim.set_supported_versions(&["2027-01", "2027-04", "2027-07", "2027-10"]);
    sim.deprecate_fields(&["Order.displayFulfillmentStatus"]);
    let every_second = [("ORDERLINE_RECONCILE_EVERY", "1s")];
    let line = ShopLine::start(backend, sim, Auth::ClientCredentials, &every_second).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while line.sim.requests_for(Operation::OrdersUpdatedSince) < 4 {
        assert!(Instant::now() < deadline, "fewer sweeps than expected: {}", line.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = line.sim.requests();
    let logs = line.stop().await;
    assert!(requests >= 6, "{requests} requests");
    let version = lines_with(&logs, "Shopify served another Admin API version than asked");
    assert_eq!(version.len(), 1, "once, over {requests} requests: {logs}");
    assert!(version[0].contains(API_VERSION) && version[0].contains("2027-01"), "{}", version[0]);
    let deprecated = lines_with(&logs, "Shopify says a request used a deprecated part of the Admin API");
    assert_eq!(deprecated.len(), 1, "once, over {requests} requests: {logs}");
    assert!(deprecated[0].contains("Order.displayFulfillmentStatus"), "{}", deprecated[0]);
}

on_both_backends!(
    startup_names_the_authentication_mode_and_never_logs_a_secret_or_a_token,
    a_missing_scope_is_logged_at_start_with_its_name_and_shown_by_readyz,
    another_api_version_and_a_deprecation_are_each_logged_once,
);
