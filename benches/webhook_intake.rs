//! Webhook intake benchmark: signed `orders/create` deliveries posted at the real server, over
//! HTTP, by many concurrent clients; measures how fast they are acknowledged (durably stored)
//! and how fast the processor then applies them. Reports; does not pass or fail on the targets.
//!
//! `cargo bench --bench webhook_intake`
//!
//! Environment:
//! - `ORDERLINE_TEST_POSTGRES`  admin URL (default `postgres://postgres@127.0.0.1:5432/postgres`);
//!   a fresh database `orderline_bench_<pid>_<millis>` is created and dropped at the end.
//! - `BENCH_DELIVERIES` (20000), `BENCH_CONCURRENCY` (64), `BENCH_WARMUP` (500).
//! - `BENCH_SQLITE=1` also runs against the embedded default (`sqlite://<tempdir>/bench.db`).
//! - `BENCH_TIME_LIMIT_SECS` (300): the whole run is aborted past this.
//! - `BENCH_SAMPLES` (100): freshness under load. That many of the timed deliveries are a new
//!   order for a customer of the warm-up (looked up, so cached, before posting starts); right
//!   after each of them is acknowledged, the caller's number is looked up (`GET /api/customers`,
//!   the lookup `/twilio/voice` answers with) and the new order must be in the answer.
//!
//! The process exits non-zero when a delivery is not answered 200, when the orders stored do
//! not match the orders sent, or when the run is aborted; never because a target is missed.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{ExitCode, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{PgDatabase, percentile, unix_millis};
use tokio::task::JoinSet;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_orderline");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shopify/order_create.json");
const SECRET: &str = "bench-secret";
const SHOP: &str = "orderline-demo.myshopify.com";
const API_VERSION: &str = "2025-10";
const TARGETS: &str = "target ≥ 3000 deliveries/s, ack p99 < 25 ms";
const AGENT_TOKEN: &str = "bench-agent-token";

/// 2^53: every Shopify ID generated here is above it (and odd), as real ones are.
const F64_EXACT_LIMIT: u64 = 1 << 53;
const ORDER_ID_BASE: u64 = 9_007_199_254_800_001;
const CUSTOMER_ID_BASE: u64 = 9_007_199_264_800_001;
const ADDRESS_ID_BASE: u64 = 9_007_199_274_800_001;
const LINE_ITEM_ID_BASE: u64 = 9_007_199_284_800_001;
const SHIPPING_LINE_ID_BASE: u64 = 9_007_199_294_800_001;
const AREA_CODES: [u32; 10] = [212, 312, 415, 617, 646, 718, 206, 303, 512, 702];

struct Config {
    admin_url: String,
    deliveries: usize,
    concurrency: usize,
    warmup: usize,
    sqlite: bool,
    time_limit: Duration,
    samples: usize,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        fn number(name: &str, default: usize) -> Result<usize, String> {
            match std::env::var(name) {
                Ok(text) => match text.trim().parse::<usize>() {
                    Ok(n) => Ok(n),
                    Err(_) => Err(format!("{name}={text:?} is not a whole number")),
                },
                Err(_) => Ok(default),
            }
        }
        let config = Config {
            admin_url: support::admin_url(),
            deliveries: number("BENCH_DELIVERIES", 20_000)?,
            concurrency: number("BENCH_CONCURRENCY", 64)?,
            warmup: number("BENCH_WARMUP", 500)?,
            sqlite: std::env::var("BENCH_SQLITE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes")),
            time_limit: Duration::from_secs(number("BENCH_TIME_LIMIT_SECS", 300)? as u64),
            samples: number("BENCH_SAMPLES", 100)?,
        };
        if config.deliveries == 0 || config.concurrency == 0 {
            return Err("BENCH_DELIVERIES and BENCH_CONCURRENCY must be at least 1".into());
        }
        Ok(config)
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// One signed delivery, ready to post.
struct Delivery {
    body: Vec<u8>,
    hmac: String,
    webhook_id: String,
    event_id: String,
    triggered_at: String,
    /// For a freshness sample: the caller's number and the name of the order they must hear.
    sample: Option<(String, String)>,
}

/// A US number, distinct for every `i`: (area code, exchange, line).
fn us_number(i: u64, salt: u64) -> (u32, u32, u32) {
    let area = AREA_CODES[((i + salt) % AREA_CODES.len() as u64) as usize];
    let rest = i / AREA_CODES.len() as u64;
    let mut exchange = 201 + ((rest / 10_000 + salt * 97) % 700) as u32;
    if exchange == 555 {
        exchange = 556;
    }
    (area, exchange, (rest % 10_000) as u32)
}

fn set(value: &mut Value, path: &[&str], new: impl Into<Value>) -> Result<(), String> {
    let mut at = &mut *value;
    for key in path {
        at = at.get_mut(*key).ok_or_else(|| format!("fixture has no {}", path.join(".")))?;
    }
    *at = new.into();
    Ok(())
}

/// The fixture order, made the `i`-th distinct order of a store: new order, customer, address,
/// line item and shipping line IDs (all odd and above 2^53), name, number, email and phones.
fn order_payload(template: &Value, i: u64) -> Result<Value, String> {
    let mut order = template.clone();
    let order_id = ORDER_ID_BASE + 2 * i;
    let customer_id = CUSTOMER_ID_BASE + 2 * i;
    let address_id = ADDRESS_ID_BASE + 2 * i;
    let number = 1043 + i;
    let email = format!("customer{i}@example.com");

    set(&mut order, &["id"], order_id)?;
    set(&mut order, &["admin_graphql_api_id"], format!("gid://shopify/Order/{order_id}"))?;
    set(&mut order, &["name"], format!("#{number}"))?;
    set(&mut order, &["order_number"], number)?;
    set(&mut order, &["number"], number - 1000)?;
    set(&mut order, &["email"], email.clone())?;
    set(&mut order, &["contact_email"], email.clone())?;

    let (area, exchange, line) = us_number(i, 0);
    set(&mut order, &["customer", "id"], customer_id)?;
    set(&mut order, &["customer", "admin_graphql_api_id"], format!("gid://shopify/Customer/{customer_id}"))?;
    set(&mut order, &["customer", "email"], email)?;
    set(&mut order, &["customer", "phone"], format!("+1{area}{exchange}{line:04}"))?;
    set(&mut order, &["customer", "default_address", "id"], address_id)?;
    set(&mut order, &["customer", "default_address", "customer_id"], customer_id)?;
    set(&mut order, &["customer", "default_address", "phone"], format!("({area}) {exchange}-{line:04}"))?;

    let (area, exchange, line) = us_number(i, 3);
    set(&mut order, &["shipping_address", "phone"], format!("{area}-{exchange}-{line:04}"))?;
    set(&mut order, &["billing_address", "phone"], format!("+44 20 7946 0{:03}", i % 1000))?;

    let items = order.get_mut("line_items").and_then(Value::as_array_mut).ok_or("fixture has no line_items")?;
    for (k, item) in items.iter_mut().enumerate() {
        let id = LINE_ITEM_ID_BASE + 2 * (i * 8 + k as u64);
        set(item, &["id"], id)?;
        set(item, &["admin_graphql_api_id"], format!("gid://shopify/LineItem/{id}"))?;
    }
    let lines = order.get_mut("shipping_lines").and_then(Value::as_array_mut).ok_or("fixture has no shipping_lines")?;
    for (k, line) in lines.iter_mut().enumerate() {
        set(line, &["id"], SHIPPING_LINE_ID_BASE + 2 * (i * 8 + k as u64))?;
    }

    // The IDs must be odd, above 2^53, and have stayed exact 64-bit integers (never f64).
    let exact = |v: &Value, id: u64| v.as_u64() == Some(id) && id > F64_EXACT_LIMIT && id % 2 == 1;
    if !exact(&order["id"], order_id) || !exact(&order["customer"]["id"], customer_id) {
        return Err(format!("order {i}: IDs did not survive as odd 64-bit integers above 2^53"));
    }
    Ok(order)
}

/// The customer's own number of order `i`'s customer (as `order_payload` writes it).
fn customer_phone(i: u64) -> String {
    let (area, exchange, line) = us_number(i, 0);
    format!("+1{area}{exchange}{line:04}")
}

/// `count` distinct orders from the fixture, each serialised compactly and signed. `samples`
/// of those after the first `warmup` are a second order of a warm-up customer (spread evenly).
/// `count` deliveries of orders `first`, `first + 1`, …; the first `warmup` of them are the
/// warm-up's, and `samples` of the rest are freshness samples.
fn make_deliveries(first: u64, count: usize, warmup: usize, samples: usize) -> Result<Vec<Delivery>, String> {
    let text = std::fs::read(FIXTURE).map_err(|e| format!("cannot read {FIXTURE}: {e}"))?;
    let template: Value = serde_json::from_slice(&text).map_err(|e| format!("{FIXTURE}: {e}"))?;
    if template["id"].as_u64().is_none_or(|id| id <= F64_EXACT_LIMIT) {
        return Err(format!("{FIXTURE}: expected an order id above 2^53"));
    }
    let run = u64::from(std::process::id()) << 32 | (unix_millis() & 0xffff_ffff);
    let triggered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let samples = samples.min(warmup).min(count.saturating_sub(warmup));
    let stride = (count - warmup).checked_div(samples).unwrap_or(usize::MAX);
    (0..count as u64)
        .map(|n| {
            let i = first + n;
            let mut order = order_payload(&template, i)?;
            let timed = (n as usize).checked_sub(warmup);
            let sample = match timed {
                Some(t) if t % stride == 0 && t / stride < samples => {
                    let k = (t / stride) as u64;
                    order["customer"] = order_payload(&template, k)?["customer"].clone();
                    Some((customer_phone(k), order["name"].as_str().unwrap_or_default().to_string()))
                }
                _ => None,
            };
            let body = serde_json::to_vec(&order).map_err(|e| e.to_string())?;
            Ok(Delivery {
                sample,
                hmac: orderline::shopify::signature::sign(SECRET, &body),
                body,
                webhook_id: uuid_like(run, 0x4a1b, i),
                event_id: uuid_like(run, 0x4e7c, i),
                triggered_at: triggered_at.clone(),
            })
        })
        .collect()
}

/// A UUID-shaped ID (as Shopify sends), unique per run and index.
fn uuid_like(run: u64, kind: u16, i: u64) -> String {
    format!("{:08x}-{:04x}-{kind:04x}-8{:03x}-{:012x}", run >> 32, run & 0xffff, (run >> 16) & 0xfff, i)
}

/// The benchmark's own read connection to the server's database, to watch it apply.
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    async fn connect(url: &str) -> Result<Db, String> {
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .read_only(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(|e| format!("cannot open {url}: {e}"))?;
            Ok(Db::Lite(pool))
        } else {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            Ok(Db::Pg(pool))
        }
    }

    async fn count(&self, sql: &'static str) -> Result<i64, String> {
        let result = match self {
            Db::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Lite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        result.map_err(|e| format!("{sql}: {e}"))
    }

    async fn pending(&self) -> Result<i64, String> {
        self.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").await
    }

    async fn orders(&self) -> Result<i64, String> {
        self.count("SELECT count(*) FROM orders").await
    }

    async fn statuses(&self) -> Result<Vec<(String, i64)>, String> {
        const SQL: &str = "SELECT status, count(*) FROM webhook_deliveries GROUP BY status ORDER BY status";
        let result = match self {
            Db::Pg(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
            Db::Lite(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
        };
        result.map_err(|e| format!("{SQL}: {e}"))
    }

    /// Waits until no delivery is pending; returns when that was seen.
    async fn wait_until_applied(&self) -> Result<Instant, String> {
        loop {
            if self.pending().await? == 0 {
                return Ok(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn close(&self) {
        match self {
            Db::Pg(pool) => pool.close().await,
            Db::Lite(pool) => pool.close().await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

/// `orderline serve` as a child process (killed when dropped, also on panic or abort), its log
/// lines counted.
struct Server {
    process: support::Server,
    url: String,
    stderr_lines: Arc<AtomicUsize>,
}

/// Server log lines echoed (prefixed) before the rest are only counted.
const ECHOED_LOG_LINES: usize = 20;

impl Server {
    fn start(database_url: &str) -> Result<Server, String> {
        let envs = [
            ("DATABASE_URL", database_url),
            ("TWILIO_AUTH_TOKEN", "bench"),
            ("SHOPIFY_WEBHOOK_SECRET", SECRET),
            ("ORDERLINE_AGENT_TOKEN", AGENT_TOKEN),
            // The shop the caller lookup answers for (the deliveries name it).
            ("SHOPIFY_SHOP", SHOP),
        ];
        let mut process = support::Server::start(SERVER_BIN, &["serve"], envs, Stdio::piped())?;
        let stderr = process.child.stderr.take().ok_or("stderr is not piped")?;
        let stderr_lines = Arc::new(AtomicUsize::new(0));
        forward_log(stderr, stderr_lines.clone());
        let url = process.url.clone();
        Ok(Server { process, url, stderr_lines })
    }

    fn check_alive(&mut self) -> Result<(), String> {
        self.process.check_alive()
    }
}

/// Echoes the first lines of the server's log (RUST_LOG=warn), then only counts them.
fn forward_log(stream: impl Read + Send + 'static, lines: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let n = lines.fetch_add(1, Ordering::Relaxed);
            if n < ECHOED_LOG_LINES {
                eprintln!("[server] {line}");
            } else if n == ECHOED_LOG_LINES {
                eprintln!("[server] … further log lines are counted, not shown");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Progress, for the message when a run is aborted

#[derive(Default)]
struct Progress {
    phase: std::sync::Mutex<String>,
    /// Deliveries answered (any status) in the current posting phase.
    answered: AtomicUsize,
    phase_started: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn enter(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.into();
        *self.phase_started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.answered.store(0, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        let phase = self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let since =
            self.phase_started.lock().unwrap_or_else(|e| e.into_inner()).map_or(0.0, |t| t.elapsed().as_secs_f64());
        format!("{phase} for {since:.1} s, {} deliveries answered in this phase", self.answered.load(Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------------------------
// Posting

#[derive(Default)]
struct PostOutcome {
    /// Time from sending to the whole 200 response, per acknowledged delivery.
    latencies: Vec<Duration>,
    /// Non-200 answers by status code.
    refused: BTreeMap<u16, usize>,
    /// Requests that got no HTTP answer at all.
    transport_errors: usize,
    /// The first few failures, to show.
    examples: Vec<String>,
    wall: Duration,
    /// Freshness samples: heard the new order, how long the lookup took, where it came from.
    samples: Vec<(bool, Duration, String)>,
    /// When the last delivery was acknowledged.
    last_ack: Option<Instant>,
}

impl PostOutcome {
    fn failures(&self) -> usize {
        self.refused.values().sum::<usize>() + self.transport_errors
    }

    fn merge(&mut self, other: PostOutcome) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.refused {
            *self.refused.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.samples.extend(other.samples);
        self.last_ack = self.last_ack.max(other.last_ack);
        for example in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(example);
            }
        }
    }
}

/// Posts every delivery with `concurrency` workers sharing one client (and its connection pool),
/// each taking the next delivery from a shared index.
async fn post_all(
    client: &reqwest::Client,
    endpoint: &str,
    deliveries: &'static [Delivery],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> Result<PostOutcome, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    let started = Instant::now();
    for _ in 0..concurrency.min(deliveries.len()) {
        let client = client.clone();
        let endpoint = endpoint.to_string();
        let next = next.clone();
        let progress = progress.clone();
        workers.spawn(async move {
            let mut outcome = PostOutcome::default();
            while let Some(delivery) = deliveries.get(next.fetch_add(1, Ordering::Relaxed)) {
                let sent = Instant::now();
                let answer = post_one(&client, &endpoint, delivery).await;
                let latency = sent.elapsed();
                progress.answered.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok((200, _)) => {
                        outcome.latencies.push(latency);
                        outcome.last_ack = outcome.last_ack.max(Some(Instant::now()));
                        // The caller rings right after their order was acknowledged.
                        if let Some((phone, name)) = &delivery.sample {
                            let base = endpoint.trim_end_matches("/shopify/webhooks");
                            outcome.samples.push(sample_call(&client, base, phone, name).await);
                        }
                    }
                    Ok((status, body)) => {
                        *outcome.refused.entry(status).or_default() += 1;
                        if outcome.examples.len() < 5 {
                            outcome.examples.push(format!("HTTP {status}: {}", body.trim()));
                        }
                    }
                    Err(e) => {
                        outcome.transport_errors += 1;
                        if outcome.examples.len() < 5 {
                            outcome.examples.push(format!("no answer: {e}"));
                        }
                    }
                }
            }
            outcome
        });
    }
    let mut all = PostOutcome { latencies: Vec::with_capacity(deliveries.len()), ..PostOutcome::default() };
    while let Some(joined) = workers.join_next().await {
        all.merge(joined.map_err(|e| format!("a posting worker failed: {e}"))?);
    }
    all.wall = started.elapsed();
    Ok(all)
}

/// Looks a caller up as the phone line does; true when the answer has the order `name`.
async fn sample_call(client: &reqwest::Client, base: &str, phone: &str, name: &str) -> (bool, Duration, String) {
    let started = Instant::now();
    let answer = async {
        let response = client
            .get(format!("{base}/api/customers"))
            .query(&[("phone", phone)])
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        Ok::<_, String>(body)
    }
    .await;
    let took = started.elapsed();
    match answer {
        Ok(body) => {
            let heard = body["customers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["orders"].as_array().into_iter().flatten())
                .any(|o| o["name"].as_str() == Some(name));
            (heard, took, body["source"].as_str().unwrap_or("?").to_string())
        }
        Err(e) => (false, took, e),
    }
}

async fn post_one(
    client: &reqwest::Client,
    endpoint: &str,
    delivery: &'static Delivery,
) -> Result<(u16, String), reqwest::Error> {
    let response = client
        .post(endpoint)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", "orders/create")
        .header("X-Shopify-Hmac-Sha256", delivery.hmac.as_str())
        .header("X-Shopify-Webhook-Id", delivery.webhook_id.as_str())
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Event-Id", delivery.event_id.as_str())
        .header("X-Shopify-API-Version", API_VERSION)
        .header("X-Shopify-Triggered-At", delivery.triggered_at.as_str())
        .body(reqwest::Body::from(delivery.body.as_slice()))
        .send()
        .await?;
    let status = response.status().as_u16();
    // The whole body is read, so the connection goes back to the pool for the next request.
    let body = response.text().await?;
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// The server's own view: its `webhook_ack_seconds` histogram from /metrics

/// The server-side ack histogram (handler start → response), cumulative buckets by upper bound.
#[derive(Clone, Default)]
struct AckHistogram {
    sum: f64,
    count: f64,
    buckets: Vec<(f64, f64)>,
}

impl AckHistogram {
    /// Reads `…webhook_ack_seconds` from `/metrics`; None when it cannot be read.
    async fn fetch(client: &reqwest::Client, base_url: &str) -> Option<AckHistogram> {
        AckHistogram::fetch_named(client, base_url, "webhook_ack_seconds").await
    }

    /// Reads the histogram `…<name>` from `/metrics`.
    async fn fetch_named(client: &reqwest::Client, base_url: &str, metric: &str) -> Option<AckHistogram> {
        let text = client.get(format!("{base_url}/metrics")).send().await.ok()?.text().await.ok()?;
        let mut histogram = AckHistogram::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            if name.ends_with(&format!("{metric}_sum")) {
                histogram.sum = value;
            } else if name.ends_with(&format!("{metric}_count")) {
                histogram.count = value;
            } else if let Some((_, le)) = name.split_once(&format!("{metric}_bucket{{le=\"")) {
                let le = le.trim_end_matches("\"}");
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                histogram.buckets.push((bound, value));
            }
        }
        (histogram.count > 0.0 || !histogram.buckets.is_empty()).then_some(histogram)
    }

    /// What was observed between `before` and `self`.
    fn since(&self, before: &AckHistogram) -> AckHistogram {
        let earlier = |bound: f64| before.buckets.iter().find(|(b, _)| *b == bound).map_or(0.0, |(_, n)| *n);
        AckHistogram {
            sum: self.sum - before.sum,
            count: self.count - before.count,
            buckets: self.buckets.iter().map(|(b, n)| (*b, n - earlier(*b))).collect(),
        }
    }

    /// The upper bound of the bucket holding quantile `q`, in ms.
    fn bound_ms(&self, q: f64) -> String {
        match self.buckets.iter().find(|(_, n)| *n >= q * self.count) {
            Some((b, _)) if b.is_finite() => format!("≤{:.0}", b * 1e3),
            Some(_) => "> largest bucket".into(),
            None => "-".into(),
        }
    }

    fn summary(&self) -> String {
        if self.count <= 0.0 {
            return "no observations".into();
        }
        format!(
            "mean {:.2}  p50 {}  p90 {}  p99 {} (bucket bounds), {} observed",
            self.sum / self.count * 1e3,
            self.bound_ms(0.50),
            self.bound_ms(0.90),
            self.bound_ms(0.99),
            self.count
        )
    }
}

// ---------------------------------------------------------------------------------------------
// One run against one database

struct Report {
    backend: &'static str,
    deliveries: usize,
    warmup: usize,
    concurrency: usize,
    body_bytes: usize,
    warmup_failures: usize,
    posting: PostOutcome,
    backlog_at_end: i64,
    drain: Duration,
    first_post_to_applied: Duration,
    /// Orders stored by the timed deliveries (after the warm-up's were applied).
    orders_applied: i64,
    orders: i64,
    statuses: Vec<(String, i64)>,
    server_ack: Option<AckHistogram>,
    /// The processor's own time applying the timed deliveries (`webhook_apply_seconds`).
    server_apply: Option<AckHistogram>,
    /// Last acknowledgement → every delivery applied.
    last_ack_to_applied: Duration,
    server_log_lines: usize,
    backlog: Option<Backlog>,
}

impl Report {
    fn expected_orders(&self) -> i64 {
        (self.warmup + self.deliveries) as i64
    }

    fn clean(&self) -> bool {
        self.warmup_failures == 0
            && self.posting.failures() == 0
            && self.orders == self.expected_orders()
            && self.posting.samples.iter().all(|(heard, _, _)| *heard)
            && self.backlog.as_ref().is_none_or(|b| b.orders_stored == b.deliveries as i64)
    }

    fn print(&self) {
        let acked = self.posting.latencies.len();
        let wall = self.posting.wall.as_secs_f64();
        let mut sorted = self.posting.latencies.clone();
        sorted.sort_unstable();
        let ms = |q: f64| percentile(&sorted, q).map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
        let per_second = |n: f64, d: f64| if d > 0.0 { n / d } else { f64::INFINITY };

        println!();
        println!("== webhook intake: {} ==", self.backend);
        println!(
            "deliveries        {} orders/create (+{} warm-up), concurrency {}, body {:.1} KiB avg",
            self.deliveries,
            self.warmup,
            self.concurrency,
            self.body_bytes as f64 / 1024.0
        );
        let rate = per_second(acked as f64, wall);
        let p99 = percentile(&sorted, 0.99);
        println!("wall time         {:.3} s (posting, after warm-up)", wall);
        println!(
            "acknowledged      {acked} → {rate:.0} deliveries/s (200 = durably stored)   [target ≥ 3000/s: {}]",
            if rate >= 3000.0 { "met" } else { "missed" }
        );
        println!(
            "ack latency (ms)  p50 {}  p90 {}  p99 {}  max {}   [target p99 < 25 ms: {}]",
            ms(0.50),
            ms(0.90),
            ms(0.99),
            ms(1.0),
            if p99.is_some_and(|p| p < Duration::from_millis(25)) { "met" } else { "missed" }
        );
        println!("targets           {TARGETS} (reported, not asserted)");
        match &self.server_ack {
            Some(ack) => println!("server-side (ms)  {}  [handler time, from /metrics]", ack.summary()),
            None => println!("server-side (ms)  unavailable (/metrics has no webhook_ack_seconds)"),
        }
        if self.posting.failures() == 0 && self.warmup_failures == 0 {
            println!("non-200           none");
        } else {
            let refused: Vec<String> = self.posting.refused.iter().map(|(s, n)| format!("{n} × HTTP {s}")).collect();
            println!(
                "non-200           {} (warm-up: {}); {}; {} without an answer",
                self.posting.failures(),
                self.warmup_failures,
                if refused.is_empty() { "no refusals".to_string() } else { refused.join(", ") },
                self.posting.transport_errors
            );
            for example in &self.posting.examples {
                println!("                  e.g. {example}");
            }
        }
        println!(
            "apply (drain)     {} pending when posting ended, all applied {:.3} s later → {:.0} orders/s",
            self.backlog_at_end,
            self.drain.as_secs_f64(),
            per_second(self.backlog_at_end as f64, self.drain.as_secs_f64())
        );
        println!(
            "apply (overall)   {} orders applied {:.3} s after the first post → {:.0} orders/s",
            self.orders_applied,
            self.first_post_to_applied.as_secs_f64(),
            per_second(self.orders_applied as f64, self.first_post_to_applied.as_secs_f64())
        );
        println!(
            "last ack → applied {:.3} s (the last acknowledgement to the last apply)   [target < 5 s: {}]",
            self.last_ack_to_applied.as_secs_f64(),
            if self.last_ack_to_applied < Duration::from_secs(5) { "met" } else { "missed" }
        );
        if let Some(apply) = &self.server_apply
            && apply.count > 0.0
        {
            println!(
                "apply (processor) {} deliveries in {:.3} s of the processor's transactions (summed over its lanes, \
                 which run at once) → {:.0} orders/s per lane",
                apply.count,
                apply.sum,
                per_second(apply.count, apply.sum)
            );
        }
        let samples = &self.posting.samples;
        if !samples.is_empty() {
            let missed = samples.iter().filter(|(heard, _, _)| !heard).count();
            let mut took: Vec<Duration> = samples.iter().map(|(_, d, _)| *d).collect();
            took.sort_unstable();
            let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, _, source) in samples {
                *sources.entry(source.as_str()).or_default() += 1;
            }
            let sources: Vec<String> = sources.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!(
                "freshness         {missed} of {} calls right after their order's ack missed it   [target 0: {}]",
                samples.len(),
                if missed == 0 { "met" } else { "missed" }
            );
            println!(
                "                  lookup ms p50 {:.2}  p99 {:.2}  max {:.2}; answered from: {}",
                percentile(&took, 0.50).map_or(0.0, |d| d.as_secs_f64() * 1e3),
                percentile(&took, 0.99).map_or(0.0, |d| d.as_secs_f64() * 1e3),
                percentile(&took, 1.0).map_or(0.0, |d| d.as_secs_f64() * 1e3),
                sources.join(", ")
            );
        }
        println!(
            "orders stored     {} (expected {}) {}",
            self.orders,
            self.expected_orders(),
            if self.orders == self.expected_orders() { "ok" } else { "MISMATCH" }
        );
        let statuses: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!("delivery statuses {}", statuses.join(", "));
        println!("server log lines  {} (RUST_LOG=warn)", self.server_log_lines);
        if let Some(b) = &self.backlog {
            let applying = b.all_applied.saturating_sub(b.first_applied).as_secs_f64();
            let rate = per_second(b.deliveries as f64, applying);
            println!(
                "apply (backlog)   {} orders/create stored while no server ran; a server started on them applied the \
                 first {:.3} s after its start, the last {:.3} s after → {:.0} orders/s   [target ≥ {}/s: {}]",
                b.deliveries,
                b.first_applied.as_secs_f64(),
                b.all_applied.as_secs_f64(),
                rate,
                self.apply_target(),
                if rate >= self.apply_target() as f64 { "met" } else { "missed" }
            );
            println!(
                "                  orders stored {} (expected {}) {}",
                b.orders_stored,
                b.deliveries,
                if b.orders_stored == b.deliveries as i64 { "ok" } else { "MISMATCH" }
            );
        }
    }

    /// Issue 14's apply target: orders/s on Postgres, and on SQLite.
    fn apply_target(&self) -> u32 {
        if self.backend == "postgres" { 5000 } else { 2000 }
    }
}

async fn run(
    backend: &'static str,
    database_url: &str,
    deliveries: &'static [Delivery],
    backlog: &'static [Delivery],
    config: &Config,
    progress: &Arc<Progress>,
) -> Result<Report, String> {
    progress.enter("starting the server");
    let mut server = Server::start(database_url)?;
    println!("[{backend}] server at {} (pid {})", server.url, server.process.pid());
    let db = Db::connect(database_url).await?;
    let result = measure(backend, &mut server, &db, deliveries, config, progress).await;
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    report.server_log_lines = server.stderr_lines.load(Ordering::Relaxed);
    drop(server);
    let backlog = measure_backlog(database_url, &db, backlog, progress).await;
    db.close().await;
    report.backlog = Some(backlog?);
    Ok(report)
}

/// The applier on its own: a backlog stored while no server runs (as intake stores it), then
/// a server started on it. Intake does not share the cores here, so this is what the applier
/// can do, where the posting run shows it keeping up with what intake acknowledges.
struct Backlog {
    deliveries: usize,
    /// From the server's start to its first apply, and to its last.
    first_applied: Duration,
    all_applied: Duration,
    orders_stored: i64,
}

async fn measure_backlog(
    database_url: &str,
    db: &Db,
    backlog: &[Delivery],
    progress: &Arc<Progress>,
) -> Result<Backlog, String> {
    progress.enter(format!("storing a backlog of {} deliveries (no server running)", backlog.len()));
    let orders_before = db.orders().await?;
    let store = orderline::store::Store::connect(database_url).await.map_err(|e| e.to_string())?;
    let received_at = orderline::store::Ts::from(chrono::Utc::now());
    for chunk in backlog.chunks(500) {
        let stored: Vec<orderline::store::NewDelivery> = chunk
            .iter()
            .map(|d| {
                let (handled, customer_id, order_id) =
                    orderline::shopify::writes::intake_subjects("orders/create", &d.body);
                orderline::store::NewDelivery {
                    shop: SHOP.to_string(),
                    webhook_id: d.webhook_id.clone(),
                    event_id: Some(d.event_id.clone()),
                    topic: "orders/create".to_string(),
                    handled,
                    customer_id,
                    order_id,
                    api_version: None,
                    triggered_at: None,
                    received_at,
                    body: d.body.clone(),
                    refused: None,
                }
            })
            .collect();
        store.insert_deliveries(&stored).await.map_err(|e| e.to_string())?;
    }
    drop(store);
    let pending = db.pending().await?;
    if pending != backlog.len() as i64 {
        return Err(format!("{pending} deliveries pending before the server started, expected {}", backlog.len()));
    }
    progress.enter(format!("a server applying the backlog of {pending}"));
    let started = Instant::now();
    let mut server = Server::start(database_url)?;
    let mut first_applied = None;
    loop {
        let left = db.pending().await?;
        if left < pending && first_applied.is_none() {
            first_applied = Some(started.elapsed());
        }
        if left == 0 {
            break;
        }
        server.check_alive()?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_applied = started.elapsed();
    Ok(Backlog {
        deliveries: backlog.len(),
        first_applied: first_applied.unwrap_or(all_applied),
        all_applied,
        orders_stored: db.orders().await? - orders_before,
    })
}

async fn measure(
    backend: &'static str,
    server: &mut Server,
    db: &Db,
    deliveries: &'static [Delivery],
    config: &Config,
    progress: &Arc<Progress>,
) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let endpoint = format!("{}/shopify/webhooks", server.url);
    let (warmup, timed) = deliveries.split_at(config.warmup);

    progress.enter(format!("warm-up ({} deliveries)", warmup.len()));
    let warmed = post_all(&client, &endpoint, warmup, config.concurrency, progress).await?;
    progress.enter("waiting for the warm-up to be applied");
    db.wait_until_applied().await?;
    server.check_alive()?;
    println!(
        "[{backend}] warm-up: {} deliveries in {:.2} s, {} not answered 200; all applied",
        warmup.len(),
        warmed.wall.as_secs_f64(),
        warmed.failures()
    );

    // The sampled callers are cached customers: looked up once, each with their warm-up order.
    let sampled: Vec<&Delivery> = timed.iter().filter(|d| d.sample.is_some()).collect();
    progress.enter(format!("caching the {} sampled callers", sampled.len()));
    for (k, _) in sampled.iter().enumerate() {
        let name = format!("#{}", 1043 + k);
        let (known, _, answer) = sample_call(&client, &server.url, &customer_phone(k as u64), &name).await;
        if !known {
            return Err(format!("warm-up customer {k} is not known with order {name} before the run ({answer})"));
        }
    }
    let orders_before = db.orders().await?;
    let ack_before = AckHistogram::fetch(&client, &server.url).await;
    let apply_before = AckHistogram::fetch_named(&client, &server.url, "webhook_apply_seconds").await;
    let first_post = Instant::now();
    progress.enter(format!("posting ({} deliveries)", timed.len()));
    let posting = post_all(&client, &endpoint, timed, config.concurrency, progress).await?;
    let posted = Instant::now();
    let ack_after = AckHistogram::fetch(&client, &server.url).await;
    let backlog_at_end = db.pending().await?;
    progress.enter(format!("waiting for the processor to apply {backlog_at_end} pending deliveries"));
    let applied = db.wait_until_applied().await?;
    server.check_alive()?;
    let orders = db.orders().await?;
    let apply_after = AckHistogram::fetch_named(&client, &server.url, "webhook_apply_seconds").await;
    let last_ack = posting.last_ack.unwrap_or(posted);

    Ok(Report {
        backend,
        deliveries: timed.len(),
        warmup: warmup.len(),
        concurrency: config.concurrency,
        body_bytes: timed.iter().map(|d| d.body.len()).sum::<usize>() / timed.len().max(1),
        warmup_failures: warmed.failures(),
        posting,
        backlog_at_end,
        drain: applied.saturating_duration_since(posted),
        first_post_to_applied: applied.saturating_duration_since(first_post),
        orders_applied: orders - orders_before,
        orders,
        statuses: db.statuses().await?,
        server_ack: ack_before.zip(ack_after).map(|(before, after)| after.since(&before)),
        server_apply: apply_before.zip(apply_after).map(|(before, after)| after.since(&before)),
        last_ack_to_applied: applied.saturating_duration_since(last_ack),
        server_log_lines: 0,
        backlog: None,
    })
}

/// Runs one backend under the overall deadline; prints its report. True when it was clean.
async fn run_reported(
    backend: &'static str,
    database_url: &str,
    deliveries: &'static [Delivery],
    backlog: &'static [Delivery],
    config: &Config,
    deadline: tokio::time::Instant,
) -> Result<bool, ()> {
    let progress = Arc::new(Progress::default());
    match tokio::time::timeout_at(deadline, run(backend, database_url, deliveries, backlog, config, &progress)).await {
        Ok(Ok(report)) => {
            report.print();
            Ok(report.clean())
        }
        Ok(Err(e)) => {
            eprintln!("[{backend}] failed: {e}");
            Ok(false)
        }
        Err(_) => {
            eprintln!(
                "[{backend}] ABORTED: the benchmark exceeded its time limit of {} s (BENCH_TIME_LIMIT_SECS) while {}; \
                 the server is stopped and its database removed",
                config.time_limit.as_secs(),
                progress.describe()
            );
            Err(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("webhook_intake: {e}");
            return ExitCode::from(2);
        }
    };
    let deadline = tokio::time::Instant::now() + config.time_limit;

    let generated = Instant::now();
    let posted = config.warmup + config.deliveries;
    let made = make_deliveries(0, posted, config.warmup, config.samples)
        .and_then(|posted_ones| Ok((posted_ones, make_deliveries(posted as u64, config.deliveries, 0, 0)?)));
    let (deliveries, backlog) = match made {
        Ok(d) => d,
        Err(e) => {
            eprintln!("webhook_intake: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Posted as borrowed bodies (no copy per request); freed when the process exits.
    let deliveries: &'static [Delivery] = Vec::leak(deliveries);
    let backlog: &'static [Delivery] = Vec::leak(backlog);
    println!(
        "webhook_intake: {} distinct orders/create payloads generated and signed in {:.2} s; server {SERVER_BIN}",
        deliveries.len(),
        generated.elapsed().as_secs_f64()
    );

    let mut clean = true;
    {
        let database = match PgDatabase::create(&config.admin_url, "bench").await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("webhook_intake: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("[postgres] database {}", database.name);
        match run_reported("postgres", &database.url, deliveries, backlog, &config, deadline).await {
            Ok(ok) => clean &= ok,
            Err(()) => return ExitCode::FAILURE,
        }
    }

    if config.sqlite {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("webhook_intake: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        };
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        println!("[sqlite] database {url}");
        match run_reported("sqlite (embedded default)", &url, deliveries, backlog, &config, deadline).await {
            Ok(ok) => clean &= ok,
            Err(()) => return ExitCode::FAILURE,
        }
    }

    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
