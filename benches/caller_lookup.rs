//! Caller lookup benchmark. Reports; never passes or fails on a target.
//!
//! 1. Hybrid (webhook/reconciler-fed store + cache, live fetch only when stale) against direct
//!    mode (freshness 0: every lookup asks Shopify), against the emulator with 150 ms ± 50 ms
//!    latency and a 100 points/s bucket, at 20 and 100 lookups/s: p50/p99, Shopify requests per
//!    lookup, throttled lookups.
//! 2. Memory per cached customer (three recent orders each) and the time to warm the cache with
//!    `BENCH_WARM_CUSTOMERS` (default 1,000,000) customers from Postgres.
//!
//! `cargo bench --bench caller_lookup`. Environment: `ORDERLINE_TEST_POSTGRES` (admin URL),
//! `BENCH_SECONDS` (10 per rate and mode; 0 skips part 1), `BENCH_WARM_CUSTOMERS` (1000000, 0 skips part 2),
//! `BENCH_WARM_DATABASE` (a database name for part 2 to keep: filled on the first run, reused
//! while it holds `BENCH_WARM_CUSTOMERS` customers, never dropped; unset: a fresh one each run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orderline::clock::SystemClock;
use orderline::lookup::{CallerLookup, LookupConfig, Source};
use orderline::ops::Metrics;
use orderline::shopify::client::{ClientConfig, ShopifyClient};
use orderline::shopify::reconciler::Reconciler;
use orderline::sim::shopify::{ShopifySim, SimConfig};
use orderline::store::Store;
use sqlx::Connection;
use support::PgDatabase;

mod support;

/// Counts live heap bytes, so the cache's memory can be read off.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SHOP: &str = "orderline-demo.myshopify.com";

/// The database part 2 fills: a throwaway one, or one named by `BENCH_WARM_DATABASE` that is
/// created if missing and kept for the next run.
enum WarmDatabase {
    Throwaway(PgDatabase),
    Kept { url: String },
}

impl WarmDatabase {
    async fn kept(name: &str) -> WarmDatabase {
        let admin = support::admin_url();
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "BENCH_WARM_DATABASE");
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL for the benchmark");
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        if exists.is_none() {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        }
        WarmDatabase::Kept { url: support::with_database(&admin, name) }
    }

    fn url(&self) -> &str {
        match self {
            WarmDatabase::Throwaway(db) => &db.url,
            WarmDatabase::Kept { url, .. } => url,
        }
    }
}

async fn throwaway_database() -> PgDatabase {
    PgDatabase::create(&support::admin_url(), "bench").await.expect("PostgreSQL for the benchmark")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    latencies: Vec<Duration>,
    lookups: usize,
    shopify_requests: u64,
    throttled_lookups: usize,
    sources: std::collections::BTreeMap<&'static str, usize>,
}

/// Open-loop load: `rate` lookups a second for `seconds`, each for a random known caller.
async fn drive(lookup: &CallerLookup, sim: &ShopifySim, phones: &[String], rate: u64, seconds: u64) -> Run {
    let before = sim.requests();
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..total {
        tokio::time::sleep_until(started + interval * n as u32).await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let phone = phones[(seed % phones.len() as u64) as usize].clone();
        let lookup = lookup.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let answer = lookup.lookup(&phone).await.expect("lookup");
            (t.elapsed(), answer.source)
        });
    }
    let mut run = Run {
        latencies: Vec::with_capacity(total),
        lookups: total,
        shopify_requests: 0,
        throttled_lookups: 0,
        sources: Default::default(),
    };
    while let Some(result) = tasks.join_next().await {
        let (latency, source) = result.unwrap();
        run.latencies.push(latency);
        *run.sources.entry(source.as_str()).or_default() += 1;
        // A lookup that could not get a fresh answer because Shopify's rate limit was in the way.
        if source == Source::Stale {
            run.throttled_lookups += 1;
        }
    }
    run.shopify_requests = sim.requests() - before;
    run.latencies.sort();
    run
}

fn report(mode: &str, rate: u64, run: &Run) {
    println!(
        "  {mode:<7} {rate:>4}/s  lookups {:>5}  p50 {:>10.3} ms  p99 {:>10.3} ms  Shopify requests/lookup {:>5.2}  throttled lookups {:>5}  sources {:?}",
        run.lookups,
        percentile(&run.latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&run.latencies, 0.99).as_secs_f64() * 1000.0,
        run.shopify_requests as f64 / run.lookups as f64,
        run.throttled_lookups,
        run.sources,
    );
}

fn lookup_for(store: &Store, client: Arc<ShopifyClient>, freshness: Duration, metrics: Arc<Metrics>) -> CallerLookup {
    let mut config = LookupConfig::new(SHOP);
    config.freshness = freshness;
    CallerLookup::new(config, store.clone(), Some(client), Arc::new(SystemClock), metrics)
}

async fn hybrid_against_direct(db: &PgDatabase, seconds: u64) {
    println!("1. hybrid against direct: emulator latency 150 ms ± 50 ms, bucket 1000 points, 100 points/s");
    let sim = ShopifySim::new(SimConfig { bucket_max: 1000.0, restore_rate: 100.0, ..SimConfig::default() });
    sim.seed_generated(1000, 3);
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let client = || {
        Arc::new(ShopifyClient::new(
            ClientConfig {
                api_url: server.url(),
                credentials: orderline::shopify::token::Credentials::Permanent(orderline::config::Secret::new(
                    sim.config().access_token.clone(),
                )),
                breaker_threshold: 5,
                breaker_cooldown: Duration::from_secs(10),
            },
            metrics.clone(),
        ))
    };
    let hybrid_client = client();
    let hybrid = lookup_for(&store, hybrid_client.clone(), Duration::from_secs(300), metrics.clone());
    let reconciler = Reconciler {
        store: store.clone(),
        client: hybrid_client,
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics: metrics.clone(),
        lag: Duration::from_secs(30),
        lookup: Some(std::sync::Arc::new(hybrid.clone())),
    };
    let t = Instant::now();
    let report_sweep = reconciler.sweep().await.unwrap();
    println!(
        "  backfill: {} customers, {} orders in {:.1} s",
        report_sweep.customers,
        report_sweep.orders,
        t.elapsed().as_secs_f64()
    );
    let warmed = hybrid.warm(10_000).await.unwrap();
    println!("  warmed {warmed} phones");
    let phones: Vec<String> = sim.customers().into_iter().filter_map(|c| c.phone).collect();
    sim.set_latency(Duration::from_millis(150), Duration::from_millis(50));

    let direct = lookup_for(&store, client(), Duration::ZERO, metrics.clone());
    let mut results = Vec::new();
    for rate in [20, 100] {
        sim.set_bucket(1000.0, 100.0);
        let h = drive(&hybrid, &sim, &phones, rate, seconds).await;
        report("hybrid", rate, &h);
        sim.set_bucket(1000.0, 100.0);
        let d = drive(&direct, &sim, &phones, rate, seconds).await;
        report("direct", rate, &d);
        results.push((rate, h, d));
    }
    for (rate, h, d) in &results {
        let speedup =
            percentile(&d.latencies, 0.5).as_secs_f64() / percentile(&h.latencies, 0.5).as_secs_f64().max(1e-9);
        println!(
            "  at {rate}/s: hybrid p99 {:.3} ms (target < 2 ms); hybrid is {speedup:.0}× faster than direct at p50 (target ≥ 100×); throttled lookups hybrid {} / direct {} (target: hybrid 0)",
            percentile(&h.latencies, 0.99).as_secs_f64() * 1000.0,
            h.throttled_lookups,
            d.throttled_lookups
        );
    }
    println!(
        "  emulator: {} requests answered THROTTLED over the whole run (the client refuses instead)",
        sim.throttled()
    );
    store.close().await;
    server.stop().await;
}

async fn fill(db_url: &str, customers: u64) {
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let statements = [
        format!(
            "INSERT INTO customers (shop, id, first_name, last_name, email, phone, state, default_zip, default_country_code,
                                    shopify_created_at, updated_at, synced_at)
             SELECT '{SHOP}', 9007199254740993 + i * 2, 'First' || i, 'Last' || i, 'customer' || i || '@example.com',
                    '+1' || (2000000000 + i), 'enabled', lpad((i % 99999)::text, 5, '0'), 'US',
                    now() - interval '400 days', now() - (i || ' seconds')::interval, now()
             FROM generate_series(1, {customers}) AS i"
        ),
        format!(
            "INSERT INTO phone_numbers (shop, owner_kind, owner_id, source, customer_id, raw, e164)
             SELECT '{SHOP}', 'customer', 9007199254740993 + i * 2, 'phone', 9007199254740993 + i * 2,
                    '+1' || (2000000000 + i), '+1' || (2000000000 + i)
             FROM generate_series(1, {customers}) AS i"
        ),
        format!(
            "INSERT INTO orders (shop, id, customer_id, name, order_number, email, financial_status, fulfillment_status,
                                 total_price, currency, shipping_zip, shipping_country_code, shopify_created_at,
                                 updated_at, synced_at)
             SELECT '{SHOP}', 9107199254740993 + (i * 3 + k) * 2, 9007199254740993 + i * 2, '#' || (1000 + i * 3 + k),
                    1000 + i * 3 + k, 'customer' || i || '@example.com', 'paid',
                    CASE WHEN k = 0 THEN NULL ELSE 'fulfilled' END, '92.78', 'USD', lpad((i % 99999)::text, 5, '0'),
                    'US', now() - ((k * 20 + 1) || ' days')::interval, now() - (k || ' days')::interval, now()
             FROM generate_series(1, {customers}) AS i, generate_series(0, 2) AS k"
        ),
        format!(
            "INSERT INTO fulfillments (shop, id, order_id, status, shipment_status, tracking_company, tracking_number,
                                       tracking_url, shopify_created_at, updated_at, synced_at)
             SELECT '{SHOP}', 9207199254740993 + (i * 3 + k) * 2, 9107199254740993 + (i * 3 + k) * 2, 'success',
                    CASE WHEN k = 1 THEN 'in_transit' ELSE 'delivered' END, 'UPS', '1Z999AA1' || lpad(i::text, 10, '0'),
                    'https://www.ups.com/track?tracknum=1Z999AA1' || lpad(i::text, 10, '0'),
                    now() - (k || ' days')::interval, now() - (k || ' days')::interval, now()
             FROM generate_series(1, {customers}) AS i, generate_series(1, 2) AS k"
        ),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
}

async fn warm_memory(customers: u64) {
    println!("2. warming the cache: {customers} customers with three recent orders each, from Postgres");
    let kept = std::env::var("BENCH_WARM_DATABASE").ok().filter(|name| !name.is_empty());
    let db = match &kept {
        Some(name) => WarmDatabase::kept(name).await,
        None => WarmDatabase::Throwaway(throwaway_database().await),
    };
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    if kept.is_some() && store.customer_count(SHOP).await.unwrap() == customers as i64 {
        println!("  reusing the filled database {}", kept.as_deref().unwrap_or_default());
    } else {
        if kept.is_some() {
            let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
            let sql = "TRUNCATE customers, phone_numbers, orders, fulfillments, refunds";
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        let t = Instant::now();
        fill(db.url(), customers).await;
        println!("  filled Postgres in {:.1} s", t.elapsed().as_secs_f64());
    }
    let metrics = Arc::new(Metrics::new());
    let mut config = LookupConfig::new(SHOP);
    config.cache_max_bytes = 16 * 1024 * 1024 * 1024;
    if kept.is_some() {
        // The kept rows were confirmed when they were filled: count them as just confirmed, as
        // a fresh fill's are, so the sample below reads the same either way.
        config.freshness = Duration::from_secs(365 * 24 * 3600);
    }
    let lookup = CallerLookup::new(config, store.clone(), None, Arc::new(SystemClock), metrics);
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let warmed = lookup.warm(customers as i64).await.unwrap();
    let seconds = t.elapsed().as_secs_f64();
    let after = LIVE.load(Ordering::Relaxed);
    let per = (after.saturating_sub(before)) as f64 / warmed.max(1) as f64;
    println!(
        "  warmed {warmed} phones in {seconds:.1} s (target < 20 s for 1,000,000); {:.0} bytes of heap per cached customer (target < 2048), cache entries {}",
        per,
        lookup.cached_entries()
    );
    let sample = lookup.lookup("+12000000001").await.unwrap();
    println!(
        "  a warmed caller answers from {:?} with {} recent orders",
        sample.source,
        sample.record.map_or(0, |r| r.customers[0].orders.len())
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let seconds = support::number("BENCH_SECONDS", 10);
    let warm = support::number("BENCH_WARM_CUSTOMERS", 1_000_000);
    let db = throwaway_database().await;
    let limit = Duration::from_secs(900);
    let run = async {
        if seconds > 0 {
            hybrid_against_direct(&db, seconds).await;
        }
        if warm > 0 {
            warm_memory(warm).await;
        }
    };
    if tokio::time::timeout(limit, run).await.is_err() {
        println!("aborted after {limit:?}");
    }
    drop(db);
}
