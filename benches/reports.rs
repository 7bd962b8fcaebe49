//! Reports benchmark: 1,000,000 call records (and their events) over the last year in Postgres,
//! then `GET /api/reports` for the whole year, timed from outside against `orderline serve`.
//! The server rolls every final day into the daily aggregates first (its background task, as in
//! production); the time that takes is reported too, as is one year counted straight from the
//! calls without the aggregates (what the aggregates save). Reports figures; does not pass or
//! fail on the target (under 300 ms).
//!
//! `cargo bench --bench reports`
//!
//! Environment:
//! - `BENCH_CALLS` (1000000): call records seeded, spread evenly over the last 365 days.
//! - `BENCH_REQUESTS` (30): timed report requests.
//! - `ORDERLINE_TEST_POSTGRES` admin URL; a fresh database is created and dropped at the end.

mod support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sqlx::Connection;
use support::{PgDatabase, Server, number, percentile};

const AGENT: &str = "bench-agent-token";
const SHOP: &str = "orderline-demo.myshopify.com";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(support::main_with_limit("reports", Duration::from_secs(1800), run()))
}

async fn exec(db: &mut sqlx::PgConnection, sql: &str, calls: i64) -> Result<u64, String> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(SHOP)
        .bind(calls)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| format!("{e}: {sql}"))
}

/// The calls: i = 1..N, evenly over 365 days back from now; 250,000 distinct numbers (so callers
/// call again); every 5th put through (asked), every 17th not verified; every 7th hung up at the
/// order-number question; first words 20..520 ms.
const CALLS: &str = "
INSERT INTO calls (call_sid, shop, from_raw, from_e164, to_number, transfer, status, started_at, duration_s,
                   first_word_ms)
SELECT 'CAbench' || i, $1, '+1555' || lpad((i % 250000)::text, 7, '0'), '+1555' || lpad((i % 250000)::text, 7, '0'),
       '+18005551212',
       CASE WHEN i % 5 = 0 THEN 'asked' WHEN i % 17 = 0 THEN 'not_verified' END,
       'completed', now() - (i::float8 / $2 * 365) * INTERVAL '1 day', 60, 20 + (i * 7) % 500
FROM generate_series(1, $2::bigint) AS i";

const EVENTS: &str = "
INSERT INTO call_events (call_sid, step, idx, kind, detail, at)
SELECT 'CAbench' || i, s.step, s.idx, s.kind, s.detail, now() - (i::float8 / $2 * 365) * INTERVAL '1 day'
FROM generate_series(1, $2::bigint) AS i
CROSS JOIN LATERAL (VALUES
    (1, 0, 'lookup', (ARRAY['cache', 'store', 'shopify', 'stale'])[1 + i % 4]),
    (1, 1, 'step', CASE WHEN i % 7 = 0 AND i % 5 <> 0 AND i % 17 <> 0 THEN 'ask_order_number' ELSE 'menu' END),
    (2, 0, CASE WHEN i % 5 = 0 OR i % 17 = 0 THEN 'transfer' ELSE 'key' END,
           CASE WHEN i % 5 = 0 THEN 'asked' WHEN i % 17 = 0 THEN 'not_verified' ELSE 'none' END),
    (90000, 0, CASE WHEN i % 5 = 0 THEN 'transfer_end' ELSE 'goodbye' END,
           CASE WHEN i % 10 = 0 THEN 'queue hangup after 20 s: served' WHEN i % 5 = 0
                THEN 'queue bridged after 5 s: served' ELSE 'no_input' END)
) AS s(step, idx, kind, detail)";

async fn run() -> Result<(), String> {
    let calls = number("BENCH_CALLS", 1_000_000) as i64;
    let requests = number("BENCH_REQUESTS", 30) as usize;
    let database = PgDatabase::create(&support::admin_url(), "bench_reports").await?;
    let store = orderline::store::Store::connect(&database.url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;

    let mut db = sqlx::PgConnection::connect(&database.url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let n_calls = exec(&mut db, CALLS, calls).await?;
    let n_events = exec(&mut db, EVENTS, calls).await?;
    sqlx::query("ANALYZE").execute(&mut db).await.map_err(|e| e.to_string())?;
    println!(
        "seeded {n_calls} calls and {n_events} call events over 365 days in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Without the daily aggregates: the year counted straight from the calls, once.
    let now = chrono::Utc::now();
    let year_start = orderline::domain::report::day_of(now) - chrono::Duration::days(364);
    let tomorrow = orderline::domain::report::day_of(now) + chrono::Duration::days(1);
    let window = Duration::from_secs(72 * 3600);
    let t = Instant::now();
    let facts = store.call_facts(SHOP, year_start.into(), tomorrow.into(), window).await.map_err(|e| e.to_string())?;
    let raw = t.elapsed();
    println!(
        "without aggregates: a year ({} calls) read and counted from calls in {:.0} ms",
        facts.len(),
        raw.as_secs_f64() * 1e3
    );
    drop(facts);

    // orderline serve: its background task rolls every final day up, then reports are timed.
    let t = Instant::now();
    let server: Server = support::serve(&[
        ("DATABASE_URL", database.url.clone()),
        ("SHOPIFY_SHOP", SHOP.to_string()),
        ("TWILIO_AUTH_TOKEN", "bench-twilio-token".to_string()),
        ("ORDERLINE_AGENT_TOKEN", AGENT.to_string()),
        // Keep the whole year of calls (the default 90 days would delete three quarters of them).
        ("ORDERLINE_RETENTION", "400d".to_string()),
    ])?;
    let final_before = orderline::domain::report::day_of(now - chrono::Duration::hours(72 + 6));
    loop {
        let rolled: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT rolled_through FROM call_days_rolled WHERE shop = $1")
                .bind(SHOP)
                .fetch_optional(&mut db)
                .await
                .map_err(|e| e.to_string())?;
        if rolled.is_some_and(|r| r >= final_before) {
            break;
        }
        if t.elapsed() > Duration::from_secs(900) {
            return Err(format!("the roll-up did not finish in 15 min (rolled through {rolled:?})"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let aggregate_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM call_days").fetch_one(&mut db).await.map_err(|e| e.to_string())?;
    println!(
        "roll-up: every day before {} into {aggregate_rows} daily aggregate rows in {:.1} s (server start included)",
        final_before.date_naive(),
        t.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    let url = format!("{}/api/reports?from={}&to={}", server.url, year_start.date_naive(), now.date_naive());
    let mut times = Vec::with_capacity(requests);
    let mut body = String::new();
    for i in 0..requests + 2 {
        let t = Instant::now();
        let response = client.get(&url).bearer_auth(AGENT).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        body = response.text().await.map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        if i >= 2 {
            times.push(took); // the first two warm the server's connections
        }
    }
    let report: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    times.sort();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "GET /api/reports for a year ({} calls counted, {} days): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {requests} requests",
        report["totals"]["calls"],
        report["days"].as_array().map_or(0, Vec::len),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 1.0)),
    );
    println!(
        "  honest self-service {} vs naive {}; first word p50 ≤ {} ms, p95 ≤ {} ms",
        report["self_service"]["honest_rate"],
        report["self_service"]["naive_rate"],
        report["first_word"]["p50_ms_at_most"],
        report["first_word"]["p95_ms_at_most"]
    );
    let t = Instant::now();
    let csv = client.get(format!("{url}&format=csv")).bearer_auth(AGENT).send().await.map_err(|e| e.to_string())?;
    let csv = csv.text().await.map_err(|e| e.to_string())?;
    println!("  the same as CSV: {} lines in {:.1} ms", csv.lines().count(), t.elapsed().as_secs_f64() * 1e3);
    println!(
        "command: cargo bench --bench reports (BENCH_CALLS={calls}, BENCH_REQUESTS={requests}), target under 300 ms"
    );
    drop(server);
    store.close().await;
    Ok(())
}
