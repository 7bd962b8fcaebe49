//! Soak: `orderline serve` on Postgres for `BENCH_SECONDS` (1800: 30 minutes) under everything
//! at once: `BENCH_CALLS` (10) callers calling one after another, signed webhooks at
//! `BENCH_WEBHOOKS_PER_S` (20), `BENCH_AGENTS` (20) agent feed sockets, and `BENCH_HOSTILE`
//! (300) hostile sockets from 127.0.0.2 that connect and send nothing (or a header a byte at a
//! time), reopened as soon as the server closes them. Samples the server's RSS and open files
//! every 10 s. Fails (exit 1) on any failed call or webhook, or if RSS or open files grow past
//! the first minute's by more than 25 % / 64 files by the end.
//!
//! `cargo bench --bench soak`; `BENCH_SECONDS=300` for a 5-minute run; `ORDERLINE_TEST_POSTGRES`.

mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use orderline::shopify::payload::ShopifyChange;
use orderline::shopify::signature;
use orderline::shopify::writes::writes;
use orderline::sim::shopify::{ShopifySim, SimConfig};
use orderline::sim::twilio::{CallerConfig, Ending, TwilioCaller, scripted};
use orderline::store::{Store, Ts};
use support::{PgDatabase, number};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "soak-twilio-token";
const SECRET: &str = "soak-webhook-secret";
const AGENT: &str = "soak-agent-token";
const SHOP: &str = "orderline-demo.myshopify.com";

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    calls_failed: AtomicU64,
    webhooks: AtomicU64,
    webhooks_failed: AtomicU64,
    feed_messages: AtomicU64,
    feed_reconnects: AtomicU64,
    hostile_opened: AtomicU64,
}

/// (RSS in KiB, open files) of a process, from /proc.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, files))
}

async fn caller(url: String, phone: String, until: Instant, counts: Arc<Counts>) {
    let caller = TwilioCaller::new(CallerConfig::new(&url, TOKEN, &phone));
    while Instant::now() < until {
        match caller.call(scripted(&["1", "0"])).await {
            Ok(t) if !matches!(t.ending, Ending::HttpError(_) | Ending::TooManySteps) => {
                counts.calls.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                counts.calls_failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("failed call: {:?}", other.map(|t| t.ending));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn webhooks(url: String, per_second: u64, until: Instant, counts: Arc<Counts>) {
    let client = reqwest::Client::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shopify/order_create.json");
    let order: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(1) as f64));
    let mut n: u64 = 0;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        // An update to one of a thousand orders (the order_create fixture with its IDs moved),
        // so the tables stay the same size.
        let k = n % 1000;
        let mut body = order.clone();
        let base: u64 = 9_100_000_000_000_001;
        body["id"] = serde_json::json!(base + 2 * k);
        body["name"] = serde_json::json!(format!("#{}", 70_000 + k));
        body["order_number"] = serde_json::json!(70_000 + k);
        body["updated_at"] = serde_json::json!(Utc::now().to_rfc3339());
        body["customer"]["id"] = serde_json::json!(base + 10_000_000 + 2 * k);
        body["customer"]["phone"] = serde_json::json!(format!("+1415{:07}", 6_660_000 + k));
        if let Some(items) = body["line_items"].as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                item["id"] = serde_json::json!(base + 20_000_000 + 4 * k + i as u64);
            }
        }
        let body = serde_json::to_vec(&body).unwrap();
        let response = client
            .post(format!("{url}/shopify/webhooks"))
            .header("X-Shopify-Topic", "orders/updated")
            .header("X-Shopify-Hmac-Sha256", signature::sign(SECRET, &body))
            .header("X-Shopify-Shop-Domain", SHOP)
            .header("X-Shopify-Webhook-Id", format!("soak-{}-{n}", std::process::id()))
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => counts.webhooks.fetch_add(1, Ordering::Relaxed),
            other => {
                eprintln!("failed webhook: {:?}", other.map(|r| r.status()));
                counts.webhooks_failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

async fn agent(url: String, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        let mut request = format!("{}/agent/feed", url.replace("http://", "ws://")).into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("Bearer {AGENT}").parse().unwrap());
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
            counts.feed_reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, socket.next()).await {
                Ok(Some(Ok(_))) => {
                    counts.feed_messages.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {
                    counts.feed_reconnects.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

/// One hostile slot: a socket from 127.0.0.2 that sends nothing (even slots) or a header a byte
/// every 2 s (odd ones), reopened whenever the server closes it.
async fn hostile(to: std::net::SocketAddr, slow: bool, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if socket.bind("127.0.0.2:0".parse().unwrap()).is_err() {
            return;
        }
        let Ok(mut stream) = socket.connect(to).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.hostile_opened.fetch_add(1, Ordering::Relaxed);
        let mut byte = [0u8; 1];
        loop {
            if Instant::now() >= until {
                return;
            }
            if slow && stream.write_all(b"G").await.is_err() {
                break;
            }
            // Closed by the server: read returns 0 (or an error).
            match tokio::time::timeout(Duration::from_secs(2), tokio::io::AsyncReadExt::read(&mut stream, &mut byte))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    }
}

async fn run() -> Result<(), String> {
    let admin = support::admin_url();
    let seconds = number("BENCH_SECONDS", 1800);
    let calls = number("BENCH_CALLS", 10);
    let per_second = number("BENCH_WEBHOOKS_PER_S", 20);
    let agents = number("BENCH_AGENTS", 20);
    let hostiles = number("BENCH_HOSTILE", 300);
    let db = PgDatabase::create(&admin, "bench").await?;
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_generated(calls as usize, 3);
    let store = Store::connect_with(&db.url, 2).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let phones: Vec<String> = sim.customers().iter().filter_map(|c| c.phone.clone()).collect();
    let mut changes: Vec<ShopifyChange> =
        sim.customers().into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect();
    changes.extend(sim.orders().into_iter().map(|o| ShopifyChange::Order(Box::new(o))));
    store.apply_all(SHOP, &writes(changes), "US", Ts::from(Utc::now())).await.map_err(|e| e.to_string())?;
    store.close().await;

    let server = support::serve(&[
        ("DATABASE_URL", db.url.clone()),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("SHOPIFY_WEBHOOK_SECRET", SECRET.to_string()),
        ("SHOPIFY_SHOP", SHOP.to_string()),
        ("ORDERLINE_AGENT_TOKEN", AGENT.to_string()),
        ("ORDERLINE_VERIFY", "none".to_string()),
    ])?;
    let url = server.url.clone();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().map_err(|e| format!("{e}"))?;
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    println!(
        "soak: {seconds} s, {calls} callers, {per_second} webhooks/s, {agents} feed clients, {hostiles} hostile sockets"
    );
    let mut tasks = Vec::new();
    for i in 0..calls as usize {
        tasks.push(tokio::spawn(caller(url.clone(), phones[i % phones.len()].clone(), until, counts.clone())));
    }
    tasks.push(tokio::spawn(webhooks(url.clone(), per_second, until, counts.clone())));
    for _ in 0..agents {
        tasks.push(tokio::spawn(agent(url.clone(), until, counts.clone())));
    }
    for i in 0..hostiles {
        tasks.push(tokio::spawn(hostile(addr, i % 2 == 1, until, counts.clone())));
    }

    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10).min(until.saturating_duration_since(Instant::now()))).await;
        let (rss, files) = sample(server.pid()).ok_or("the server is gone")?;
        let at = started.elapsed().as_secs();
        samples.push((at, rss, files));
        println!(
            "{at:>5} s  rss {:>7} KiB  files {files:>5}  calls {} ({} failed)  webhooks {} ({} failed)  feed msgs {}  hostile opened {}",
            rss,
            counts.calls.load(Ordering::Relaxed),
            counts.calls_failed.load(Ordering::Relaxed),
            counts.webhooks.load(Ordering::Relaxed),
            counts.webhooks_failed.load(Ordering::Relaxed),
            counts.feed_messages.load(Ordering::Relaxed),
            counts.hostile_opened.load(Ordering::Relaxed),
        );
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(server);

    // The first minute warms caches and pools; after it, nothing may keep growing.
    let warm: Vec<_> = samples.iter().filter(|(at, _, _)| *at <= 60).collect();
    let baseline_rss = warm.iter().map(|s| s.1).max().unwrap_or(0);
    let baseline_files = warm.iter().map(|s| s.2).max().unwrap_or(0);
    let (_, last_rss, last_files) = *samples.last().ok_or("no samples")?;
    let peak_rss = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let peak_files = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let failed_calls = counts.calls_failed.load(Ordering::Relaxed);
    let failed_webhooks = counts.webhooks_failed.load(Ordering::Relaxed);
    println!(
        "after {} s: rss first minute {baseline_rss} KiB, end {last_rss} KiB, peak {peak_rss} KiB; \
         open files first minute {baseline_files}, end {last_files}, peak {peak_files}; \
         calls {} ({failed_calls} failed), webhooks {} ({failed_webhooks} failed), hostile sockets opened {}",
        started.elapsed().as_secs(),
        counts.calls.load(Ordering::Relaxed),
        counts.webhooks.load(Ordering::Relaxed),
        counts.hostile_opened.load(Ordering::Relaxed),
    );
    let mut failures = Vec::new();
    if failed_calls > 0 {
        failures.push(format!("{failed_calls} failed calls"));
    }
    if failed_webhooks > 0 {
        failures.push(format!("{failed_webhooks} failed webhooks"));
    }
    if last_rss > baseline_rss + baseline_rss / 4 {
        failures.push(format!("RSS grew from {baseline_rss} to {last_rss} KiB"));
    }
    if last_files > baseline_files + 64 {
        failures.push(format!("open files grew from {baseline_files} to {last_files}"));
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
}

#[tokio::main]
async fn main() -> ExitCode {
    let limit = Duration::from_secs(number("BENCH_SECONDS", 1800) + 300);
    support::main_with_limit("soak", limit, run()).await
}
