//! Incoming-call benchmark: signed `POST /twilio/voice` webhooks for known callers on warm data,
//! against `orderline serve` (a child process) on Postgres, call records included. Two phases:
//! a fixed rate (1,000 calls/s) for latency, then closed-loop saturation for throughput. The
//! client is a lean keep-alive HTTP/1.1 loop on raw sockets, so the server is what is measured.
//!
//! `cargo bench --bench incoming_calls`
//!
//! Environment: `ORDERLINE_TEST_POSTGRES` (admin URL), `BENCH_CUSTOMERS` (5000),
//! `BENCH_RATE` (1000), `BENCH_SECONDS` (10 per phase), `BENCH_CONCURRENCY` (32 connections at
//! saturation). Target: p99 < 5 ms at 1,000 calls/s, ≥ 30,000 calls/s at saturation (issue 14). Reports;
//! exits non-zero only when a call is not answered 200 with TwiML or records go missing.
//!
//! Instructions per call (machine load does not change them): `BENCH_CALLGRIND=1 cargo bench
//! --bench incoming_calls` runs no timed phase. It starts the server under
//! `valgrind --tool=callgrind --instr-atstart=no` (BENCH_CUSTOMERS defaults to 500 here), waits
//! until the cache is warm, makes BENCH_CALLGRIND_WARMUP (100) calls and waits for their call
//! records, then switches instrumentation on (`callgrind_control -i on PID`), makes
//! BENCH_CALLGRIND_CALLS (500) calls one after another on one keep-alive connection, waits until
//! their call records are written and the agent feed has had a moment to read them, switches
//! instrumentation off and dumps (`callgrind_control -i off`, `--dump`). Instructions per call =
//! the dump's total Ir (every thread of the server: handler, call-record writer, feed) / calls.
//! The same is then measured for a bare floor: this bench's own binary serving a static TwiML
//! document from a plain axum handler (no signature check, no lookup) to the same requests. The
//! dumps stay in `target/tmp/callgrind/` for `callgrind_annotate`. Needs valgrind.

mod support;

#[path = "incoming_calls/callgrind.rs"]
mod callgrind;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use orderline::shopify::payload::ShopifyChange;
use orderline::shopify::writes::writes;
use orderline::sim::shopify::{ShopifySim, SimConfig};
use orderline::store::{Store, Ts};
use orderline::twilio::signature;
use support::{PgDatabase, Server, number, percentile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_orderline");
const TOKEN: &str = "bench-twilio-token";
const SHOP: &str = "orderline-demo.myshopify.com";

/// The server's settings: the bench's shop and token, no verification, every customer warmed.
fn server_env(db_url: &str, customers: u64) -> [(&'static str, String); 5] {
    [
        ("DATABASE_URL", db_url.to_string()),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("SHOPIFY_SHOP", SHOP.to_string()),
        ("ORDERLINE_VERIFY", "none".to_string()),
        ("ORDERLINE_WARM_COUNT", customers.to_string()),
    ]
}

/// One keep-alive connection making calls one after another.
struct Conn {
    stream: TcpStream,
    addr: String,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Conn { stream, addr: addr.to_string(), buf: Vec::with_capacity(8192) })
    }

    /// Posts one signed incoming call and reads the whole answer; returns the latency.
    async fn call(&mut self, call_sid: &str, from: &str) -> Result<Duration, String> {
        let url = format!("http://{}/twilio/voice", self.addr);
        let params: Vec<(String, String)> = [
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call_sid),
            ("CallStatus", "ringing"),
            ("Called", "+18005550100"),
            ("Caller", from),
            ("Direction", "inbound"),
            ("From", from),
            ("To", "+18005550100"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let signature = signature::sign(TOKEN, &url, &params);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
        let request = format!(
            "POST /twilio/voice HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Twilio-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let started = Instant::now();
        self.stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        self.buf.clear();
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(format!("answered {}", head.lines().next().unwrap_or("")));
                }
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("no content-length")?;
                break (end + 4, length);
            }
        };
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed mid-body".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let elapsed = started.elapsed();
        let body = &self.buf[head_end..head_end + length];
        if !body.windows(10).any(|w| w == b"<Response>") || !body.windows(12).any(|w| w == b"Your order n") {
            return Err(format!("not the known caller's menu: {}", String::from_utf8_lossy(body)));
        }
        Ok(elapsed)
    }
}

fn report(name: &str, calls: usize, wall: Duration, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "{name:<28} {calls:>7} calls in {:>5.1} s = {:>7.0} calls/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms",
        wall.as_secs_f64(),
        calls as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
}

type Latencies = tokio::task::JoinHandle<Result<Vec<Duration>, String>>;

/// Waits for every connection's latencies, reports them, and returns how many calls were made.
async fn finish(name: &str, started: Instant, tasks: Vec<Latencies>) -> Result<usize, String> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let wall = started.elapsed();
    let calls = all.len();
    report(name, calls, wall, all);
    Ok(calls)
}

async fn fixed_rate(
    addr: &str,
    phones: &Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
    run: &str,
) -> Result<usize, String> {
    // Enough connections that one slow answer never delays the next scheduled call.
    let connections = 16u64;
    let per_conn_interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total = rate * seconds;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.to_string();
        let phones = phones.clone();
        let run = run.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut latencies = Vec::new();
            let offset = per_conn_interval.mul_f64(c as f64 / connections as f64);
            let mut i = c;
            let mut n = 0u32;
            while i < total {
                tokio::time::sleep_until((started + offset + per_conn_interval * n).into()).await;
                let phone = &phones[(i as usize * 7919) % phones.len()];
                latencies.push(conn.call(&format!("CA{run}r{i:024}"), phone).await?);
                i += connections;
                n += 1;
            }
            Ok::<_, String>(latencies)
        }));
    }
    finish(&format!("fixed rate {rate}/s"), started, tasks).await
}

async fn saturate(
    addr: &str,
    phones: &Arc<Vec<String>>,
    concurrency: u64,
    seconds: u64,
    run: &str,
) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let addr = addr.to_string();
        let phones = phones.clone();
        let run = run.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let phone = &phones[((c * 1_000_003 + i) as usize * 7919) % phones.len()];
                latencies.push(conn.call(&format!("CA{run}s{c:04}{i:020}"), phone).await?);
                i += 1;
            }
            Ok::<_, String>(latencies)
        }));
    }
    finish(&format!("saturation, {concurrency} conns"), started, tasks).await
}

/// A shop of generated customers with three orders each, applied through the one apply path, in a
/// fresh database; returns the store and the customers' phone numbers.
async fn seed(db: &PgDatabase, customers: u64) -> Result<(Store, Arc<Vec<String>>), String> {
    let seeding = Instant::now();
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_generated(customers as usize, 3);
    let store = Store::connect_with(&db.url, 8).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let phones: Vec<String> = sim.customers().iter().filter_map(|c| c.phone.clone()).collect();
    let mut changes: Vec<ShopifyChange> =
        sim.customers().into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect();
    changes.extend(sim.orders().into_iter().map(|o| ShopifyChange::Order(Box::new(o))));
    let changes = writes(changes);
    for chunk in changes.chunks(2_000) {
        store.apply_all(SHOP, chunk, "US", Ts::from(Utc::now())).await.map_err(|e| e.to_string())?;
    }
    println!("seeded {customers} customers, {} phones, in {:.1} s", phones.len(), seeding.elapsed().as_secs_f64());
    Ok((store, Arc::new(phones)))
}

/// Waits (up to `limit`) until the server's cache holds every customer's phone.
async fn wait_warm(server: &Server, phones: usize, limit: Duration) -> Result<(), String> {
    let warm_deadline = Instant::now() + limit;
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.url)).await.map_err(|e| e.to_string())?;
        let text = metrics.text().await.map_err(|e| e.to_string())?;
        let cached =
            text.lines().find_map(|l| l.strip_prefix("orderline_cache_entries ")).and_then(|v| v.parse::<u64>().ok());
        if cached.is_some_and(|n| n >= phones as u64) || Instant::now() > warm_deadline {
            println!("cache warm: {} entries", cached.unwrap_or(0));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to `limit`) until `expected` calls are recorded; returns how many are.
async fn wait_recorded(store: &Store, expected: i64, limit: Duration) -> Result<i64, String> {
    let started = Instant::now();
    let mut recorded = 0;
    while started.elapsed() < limit {
        recorded = store.call_count().await.map_err(|e| e.to_string())?;
        if recorded >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(recorded)
}

async fn run() -> Result<(), String> {
    if callgrind::wanted() {
        return callgrind::run().await;
    }
    let admin = support::admin_url();
    let customers = number("BENCH_CUSTOMERS", 5_000);
    let rate = number("BENCH_RATE", 1_000);
    let seconds = number("BENCH_SECONDS", 10);
    let concurrency = number("BENCH_CONCURRENCY", 32);
    let db = PgDatabase::create(&admin, "bench").await?;
    let (store, phones) = seed(&db, customers).await?;

    let server = support::serve(&server_env(&db.url, customers))?;
    let addr = server.url.trim_start_matches("http://").to_string();
    wait_warm(&server, phones.len(), Duration::from_secs(120)).await?;
    let run_id = format!("{:x}", support::unix_millis() % 0xffff_ffff);
    // A short warm-up so connection set-up and first-touch costs are not measured.
    saturate(&addr, &phones, 8, 1, &format!("{run_id}w")).await?;
    let at_rate = fixed_rate(&addr, &phones, rate, seconds, &run_id).await?;
    let saturated = saturate(&addr, &phones, concurrency, seconds, &run_id).await?;
    println!("target: p99 < 5 ms at 1,000 calls/s; ≥ 30,000 calls/s at saturation (2 cores, client included)");

    // Every call is recorded: wait for the writers, then count.
    let expected = (at_rate + saturated) as i64;
    let started = Instant::now();
    let recorded = wait_recorded(&store, expected, Duration::from_secs(60)).await?;
    println!(
        "call records: {recorded} stored for {expected} measured calls (plus warm-up), {:.1} s after the last call",
        started.elapsed().as_secs_f64()
    );
    drop(server);
    store.close().await;
    if recorded < expected {
        return Err(format!("only {recorded} of {expected} calls were recorded"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|a| a == callgrind::FLOOR_ARG) {
        return callgrind::serve_floor().await;
    }
    // Under valgrind the server runs tens of times slower: its start and warm-up take longer.
    let limit = if callgrind::wanted() { 1_800 } else { 600 };
    support::main_with_limit("incoming_calls", Duration::from_secs(limit), run()).await
}
