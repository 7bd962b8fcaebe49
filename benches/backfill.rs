//! Backfill benchmark: the Shopify emulator, in a process of its own, seeded with a big shop;
//! `orderline reconcile --full` (another process) backfills it through bulk operations into
//! Postgres and into SQLite. Reports wall time, records/s and the orderline process's peak
//! resident memory (VmHWM); does not pass or fail on the targets (under 5 minutes, under 500 MiB
//! for 1,000,000 orders and 300,000 customers).
//!
//! `cargo bench --bench backfill`
//!
//! Environment:
//! - `BACKFILL_ORDERS` (1000000), `BACKFILL_CUSTOMERS` (300000): the shop's size.
//! - `BACKFILL_BACKENDS` (`postgres,sqlite`).
//! - `BACKFILL_RUST_LOG` (`info`): the `orderline reconcile` process's log filter (e.g.
//!   `info,orderline::shopify::bulk=debug` shows each batch as it is written).
//! - `ORDERLINE_TEST_POSTGRES` admin URL (default `postgres://postgres@127.0.0.1:5432/postgres`);
//!   a fresh database `orderline_bench_<pid>_<millis>` is created and dropped at the end.
//!
//! The timed part is the sweep (from start to the line `orderline reconcile` prints when it is
//! done, which carries the counts it applied); the deletion check that `reconcile` runs next is
//! not part of the backfill and the process is stopped there. Exits non-zero when the counts
//! applied differ from the shop's, or a process fails.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use support::PgDatabase;

const ORDERLINE: &str = env!("CARGO_BIN_EXE_orderline");
const SHOP: &str = "orderline-demo.myshopify.com";
/// Set in the emulator process this benchmark starts (the same executable).
const ROLE: &str = "BACKFILL_ROLE";

fn main() -> ExitCode {
    if std::env::var(ROLE).as_deref() == Ok("emulator") {
        return emulator();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backfill benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The emulator process: seeds, serves, prints its URL, and runs until its stdin closes.
fn emulator() -> ExitCode {
    let customers = support::number("BACKFILL_CUSTOMERS", 300_000) as usize;
    let orders = support::number("BACKFILL_ORDERS", 1_000_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async move {
        let started = Instant::now();
        let sim = orderline::sim::shopify::ShopifySim::new(orderline::sim::shopify::SimConfig::default());
        sim.seed_shop(customers, orders);
        let seeded = started.elapsed();
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        println!("seeded {customers} customers and {orders} orders in {:.1} s", seeded.as_secs_f64());
        println!("URL {}", server.url());
        println!("TOKEN {}", sim.config().access_token);
        let _ = std::io::stdout().flush();
        // Until the benchmark closes our stdin (or dies).
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
        server.stop().await;
    });
    ExitCode::SUCCESS
}

struct Emulator {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator() -> Result<Emulator, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(me)
        .env(ROLE, "emulator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the emulator: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (mut url, mut token) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(u) = line.strip_prefix("URL ") {
            url = Some(u.to_string());
        } else if let Some(t) = line.strip_prefix("TOKEN ") {
            token = Some(t.to_string());
            break;
        } else {
            println!("emulator: {line}");
        }
    }
    match (url, token) {
        (Some(url), Some(token)) => Ok(Emulator { child, url, token }),
        _ => Err("the emulator did not say where it listens".into()),
    }
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Measured {
    backend: &'static str,
    customers: u64,
    orders: u64,
    seconds: f64,
    peak_kib: u64,
}

fn backfill(emulator: &Emulator, backend: &'static str, database_url: &str) -> Result<Measured, String> {
    let started = Instant::now();
    let mut child = Command::new(ORDERLINE)
        .args(["reconcile", "--full"])
        .env("DATABASE_URL", database_url)
        .env("SHOPIFY_SHOP", SHOP)
        .env("SHOPIFY_ACCESS_TOKEN", &emulator.token)
        .env("SHOPIFY_API_URL", &emulator.url)
        .env("RUST_LOG", std::env::var("BACKFILL_RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting orderline: {e}"))?;
    let pid = child.id();
    // VmHWM only grows: sampled while it runs, the last sample before the sweep ends is its peak
    // up to then.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut done = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("orderline: {line}");
        if line.starts_with("reconciled ") {
            done = Some((line, started.elapsed(), peak_rss_kib(pid).unwrap_or(0)));
            break;
        }
    }
    // The deletion check comes next; it is not the backfill.
    let _ = child.kill();
    let status = child.wait().map_err(|e| e.to_string())?;
    let sampled = sampler.join().unwrap_or(0);
    let (line, elapsed, at_end) =
        done.ok_or_else(|| format!("orderline reconcile --full ended ({status}) before it said it was done"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let count =
        |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok()).ok_or_else(|| format!("unexpected line: {line}"));
    Ok(Measured {
        backend,
        customers: count(1)?,
        orders: count(4)?,
        seconds: elapsed.as_secs_f64(),
        peak_kib: at_end.max(sampled),
    })
}

fn run() -> Result<(), String> {
    let customers = support::number("BACKFILL_CUSTOMERS", 300_000);
    let orders = support::number("BACKFILL_ORDERS", 1_000_000);
    let backends = std::env::var("BACKFILL_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    let admin_url = support::admin_url();
    let started = Instant::now();
    let emulator = start_emulator()?;
    println!("emulator ready at {} after {:.1} s", emulator.url, started.elapsed().as_secs_f64());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for backend in backends.split(',').map(str::trim) {
        let measured = match backend {
            "postgres" => {
                let db = runtime.block_on(PgDatabase::create(&admin_url, "bench"))?;
                let measured = backfill(&emulator, "postgres", &db.url);
                drop(db);
                measured?
            }
            "sqlite" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                backfill(&emulator, "sqlite", &format!("sqlite://{}/backfill.db", dir.path().display()))?
            }
            other => return Err(format!("unknown backend {other:?} in BACKFILL_BACKENDS")),
        };
        if (measured.customers, measured.orders) != (customers, orders) {
            return Err(format!(
                "{}: applied {} customers and {} orders, the shop holds {customers} and {orders}",
                measured.backend, measured.customers, measured.orders
            ));
        }
        results.push(measured);
    }
    println!();
    println!("backfill of {orders} orders and {customers} customers (target: under 300 s, under 500 MiB)");
    println!("| backend | wall time | records/s | peak RSS (VmHWM) |");
    println!("| --- | --- | --- | --- |");
    for m in &results {
        let records = (m.customers + m.orders) as f64;
        println!(
            "| {} | {:.1} s | {:.0} | {:.0} MiB |",
            m.backend,
            m.seconds,
            records / m.seconds,
            m.peak_kib as f64 / 1024.0
        );
    }
    println!(
        "command: BACKFILL_ORDERS={orders} BACKFILL_CUSTOMERS={customers} BACKFILL_BACKENDS={backends} cargo bench --bench backfill"
    );
    Ok(())
}
