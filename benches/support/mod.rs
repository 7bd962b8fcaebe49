//! What the benchmarks share: the test harness (a throwaway PostgreSQL database, orderline as a
//! child process), numbers from the environment, percentiles and the time limit.
#![allow(dead_code)]

use std::time::Duration;

#[path = "../../tests/harness/mod.rs"]
mod harness;

// Each benchmark is a crate of its own and uses a part of this.
#[allow(unused_imports)]
pub use harness::postgres::{PgDatabase, admin_url, with_database};
pub use harness::process::OrderlineProcess as Server;

/// A whole number from the environment (`BENCH_…`), or `default`.
pub fn number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

pub fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Nearest-rank percentile of sorted durations (`q` = 1.0 is the maximum).
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `orderline serve` with `envs`, reconciliation off (no Shopify in a benchmark), its log on
/// this process's stderr; returns once it listens.
pub fn serve(envs: &[(&str, String)]) -> Result<Server, String> {
    serve_with(env!("CARGO_BIN_EXE_orderline"), &["serve"], envs)
}

/// As `serve`, run as `program args…` (a wrapper such as valgrind around orderline, or another
/// server that prints `orderline listening on URL` first).
pub fn serve_with(program: &str, args: &[&str], envs: &[(&str, String)]) -> Result<Server, String> {
    let quiet = [("ORDERLINE_RECONCILE_EVERY", "0s".to_string())];
    Server::start(
        program,
        args,
        quiet.iter().chain(envs).map(|(k, v)| (*k, v.as_str())),
        std::process::Stdio::inherit(),
    )
}

/// Runs a benchmark's body with a time limit and turns its outcome into an exit code.
pub async fn main_with_limit(
    name: &str,
    limit: Duration,
    body: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    match tokio::time::timeout(limit, body).await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("{name}: aborted after {} s", limit.as_secs());
            std::process::ExitCode::FAILURE
        }
    }
}
