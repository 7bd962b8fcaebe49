//! Test harness: a fresh database per test (real Postgres, or an SQLite file), orderline started
//! on 127.0.0.1:0, and helpers that speak to it as Shopify does.
#![allow(dead_code)]

pub mod line;
pub mod outside;
pub mod pg_cluster;
pub mod rows;

#[path = "../../harness/mod.rs"]
mod harness;

pub use harness::postgres::PgDatabase;
use harness::process::OrderlineProcess;

use std::time::{Duration, Instant};

use std::sync::Arc;

use orderline::app::{self, Running};
use orderline::clock::{Clock, SystemClock};
use orderline::config::{Secret, Settings};
use orderline::shopify::signature;
use orderline::store::Store;
use serde_json::Value;

pub const SHOP: &str = "orderline-demo.myshopify.com";
pub const SECRET: &str = "test-webhook-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database of its own for one test (a PostgreSQL database, or an SQLite file in a temporary
/// directory); dropped with it.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _postgres: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_admin_url() -> String {
    harness::postgres::admin_url()
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Postgres => {
                let database =
                    PgDatabase::create(&postgres_admin_url(), "test").await.unwrap_or_else(|e| panic!("{e}"));
                TestDb { backend, url: database.url.clone(), _postgres: Some(database), _dir: None }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("orderline.db").display());
                TestDb { backend, url, _postgres: None, _dir: Some(dir) }
            }
        }
    }

    /// Runs raw SQL for the test's own checks (the app's SQL lives in `store`; this is an
    /// independent look at what is really in the tables).
    pub async fn exec(&self, sql: &str) {
        use sqlx::Connection;
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.unwrap();
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.unwrap();
            }
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&mut c).await.unwrap()
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&mut c).await.unwrap()
            }
        }
    }

    /// Every stored delivery body, as text.
    pub async fn stored_bodies(&self) -> Vec<String> {
        use sqlx::Connection;
        let sql = "SELECT body FROM webhook_deliveries WHERE body IS NOT NULL";
        let bodies: Vec<Vec<u8>> = match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
            }
        };
        bodies.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
    }
}

/// orderline running on 127.0.0.1:0 against a fresh database.
pub struct TestApp {
    pub db: TestDb,
    pub running: Option<Running>,
    pub url: String,
    pub client: reqwest::Client,
}

/// The settings a test app starts with: listening on 127.0.0.1:0, on the test's database, with the
/// harness's Twilio token and webhook secret, and `change` (typed: `|s| s.ivr.verify =
/// VerifyPolicy::None`) over them; validated.
pub fn settings_for(db_url: &str, change: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.database_url = db_url.into();
    settings.server.db_max_connections = 4;
    settings.twilio.auth_token = Some(Secret::new("test-twilio-token"));
    settings.shopify.webhook_secret = Some(Secret::new(SECRET));
    change(&mut settings);
    settings.validated().unwrap_or_else(|e| panic!("the test's settings: {e}"))
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        TestApp::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::start_with_clock(backend, change, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        backend: Backend,
        change: impl FnOnce(&mut Settings),
        clock: Arc<dyn Clock>,
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let running = app::start_with_clock(settings_for(&db.url, change), clock).await.unwrap();
        let url = running.url();
        let app = TestApp { db, running: Some(running), url, client: reqwest::Client::new() };
        app.wait_ready().await;
        app
    }

    /// Waits (at most 15 s) until `/readyz` answers 200: migrations applied and, on Postgres, the
    /// change listener connected. Tests start from a ready service, as a load balancer would.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.get("/readyz").await;
            if status == reqwest::StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "orderline never became ready: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn store(&self) -> &Store {
        &self.running.as_ref().unwrap().state.store
    }

    /// Posts a delivery as Shopify would: signed with the app secret.
    pub async fn deliver(&self, topic: &str, webhook_id: &str, body: &[u8]) -> reqwest::StatusCode {
        self.deliver_signed(topic, webhook_id, body, &signature::sign(SECRET, body)).await
    }

    pub async fn deliver_signed(&self, topic: &str, webhook_id: &str, body: &[u8], hmac: &str) -> reqwest::StatusCode {
        post_webhook(&self.client, &self.url, topic, webhook_id, body, hmac).await.expect("orderline answered")
    }

    pub async fn deliver_json(&self, topic: &str, webhook_id: &str, body: &Value) -> reqwest::StatusCode {
        self.deliver(topic, webhook_id, &serde_json::to_vec(body).unwrap()).await
    }

    /// Waits until every stored delivery has been processed.
    pub async fn settle(&self) {
        settle(self.store()).await
    }

    /// Waits until every stored delivery has been processed and this instance's hint of pending
    /// deliveries says so too (the processor makes it match the database on its next idle pass,
    /// within about a second): until then a lookup of a customer the deliveries named rereads
    /// the store instead of answering from the cache.
    pub async fn settle_hint(&self) {
        self.settle().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let hint = self.store().pending_subjects();
        while hint.is_unknown() || !hint.is_empty() {
            assert!(Instant::now() < deadline, "the pending hint still names {} subjects after 20 s", hint.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, String) {
        let response = self.client.get(format!("{}{}", self.url, path)).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

pub async fn settle(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counts = store.delivery_counts().await.unwrap();
        if !counts.iter().any(|(status, n)| status == "pending" && *n > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "deliveries still pending after 20 s: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fixture from tests/fixtures/shopify, as raw bytes (sign these exact bytes).
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/shopify/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

/// Runs the `orderline` binary with `DATABASE_URL` set; returns (success, stdout, stderr).
pub fn orderline_cli(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderline"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .env_remove("ORDERLINE_CONFIG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Declares each listed scenario (an `async fn(Backend)` in the test file) as two tests:
/// `postgres::<name>` and `sqlite::<name>`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
    };
}

/// The `orderline serve` binary as a child process (for crash and multi-process tests), with
/// the test secrets; killed when dropped.
pub struct ServerProcess {
    process: OrderlineProcess,
    pub url: String,
}

impl ServerProcess {
    pub async fn spawn(db_url: &str) -> ServerProcess {
        ServerProcess::spawn_with(db_url, &[], std::process::Stdio::inherit()).await
    }

    /// As `spawn`, with more environment and stderr (the logs) sent where asked; returns once
    /// `/readyz` answers (database, migrations and, on Postgres, the change listener are up).
    pub async fn spawn_with(db_url: &str, envs: &[(&str, &str)], stderr: std::process::Stdio) -> ServerProcess {
        let base = [
            ("DATABASE_URL", db_url),
            ("TWILIO_AUTH_TOKEN", "test-twilio-token"),
            ("SHOPIFY_WEBHOOK_SECRET", SECRET),
            ("ORDERLINE_DB_MAX_CONNECTIONS", "8"),
        ];
        let process = OrderlineProcess::start(
            env!("CARGO_BIN_EXE_orderline"),
            &["serve"],
            base.iter().chain(envs).copied(),
            stderr,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        process.wait_ready(Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"));
        let url = process.url.clone();
        ServerProcess { process, url }
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.process.child
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL: no shutdown, no flush, nothing graceful.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A distinct, realistic order: the order_create fixture with its IDs, name and phones moved.
pub fn order_variant(n: u64) -> Value {
    let mut order = fixture("order_create.json");
    let base: u64 = 9_007_199_254_800_001;
    order["id"] = serde_json::json!(base + 2 * n);
    order["name"] = serde_json::json!(format!("#{}", 5000 + n));
    order["order_number"] = serde_json::json!(5000 + n);
    order["customer"]["id"] = serde_json::json!(base + 10_000_000 + 2 * n);
    order["customer"]["phone"] = serde_json::json!(format!("+1415{:07}", 5_550_000 + n));
    if let Some(items) = order["line_items"].as_array_mut() {
        for (i, item) in items.iter_mut().enumerate() {
            item["id"] = serde_json::json!(base + 20_000_000 + 4 * n + i as u64);
        }
    }
    order
}

/// Posts a delivery to `{base}/shopify/webhooks` with the headers Shopify sends.
pub async fn post_webhook(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    webhook_id: &str,
    body: &[u8],
    hmac: &str,
) -> reqwest::Result<reqwest::StatusCode> {
    let response = client
        .post(format!("{base}/shopify/webhooks"))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", hmac)
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-API-Version", "2025-10")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Event-Id", format!("event-{webhook_id}"))
        .header("X-Shopify-Triggered-At", "2026-11-02T15:15:03Z")
        .body(body.to_vec())
        .send()
        .await?;
    Ok(response.status())
}
