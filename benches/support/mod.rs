//! What the benchmarks share: a throwaway Postgres database and percentiles.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::Connection;

/// A whole number from the environment (`BENCH_…`), or `default`.
pub fn number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

pub fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A fresh Postgres database, dropped (WITH (FORCE)) when this is dropped, also on panic.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Result<PgDatabase, String> {
        let name = format!("orderline_bench_{}_{}", std::process::id(), unix_millis());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .map_err(|e| format!("cannot connect to Postgres at {admin_url} (ORDERLINE_TEST_POSTGRES): {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        let _ = admin.close().await;
        let url = with_database(admin_url, &name);
        Ok(PgDatabase { admin_url: admin_url.to_string(), name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside the tokio runtime (or while unwinding): use a thread of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.map_err(|e| e.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => println!("dropped database {}", self.name),
            Ok(Err(e)) => eprintln!("could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop database {}: the dropping thread panicked", self.name),
        }
    }
}

/// `admin_url` with its database name replaced by `name` (query string kept).
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Nearest-rank percentile of sorted durations (`q` = 1.0 is the maximum).
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `orderline serve` as a child process on 127.0.0.1:0, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Server {
    /// Starts `bin serve` with `envs` on top of a quiet, port-0 setup; returns once it listens.
    pub fn start(bin: &str, envs: &[(&str, String)]) -> Result<Server, String> {
        Server::start_command(bin, &["serve".to_string()], envs)
    }

    /// Starts `program args…` (orderline, or a wrapper such as valgrind around it) the same way:
    /// it must print `orderline listening on URL` as its first line on stdout.
    pub fn start_command(program: &str, args: &[String], envs: &[(&str, String)]) -> Result<Server, String> {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(program)
            .args(args)
            .env("ORDERLINE_LISTEN", "127.0.0.1:0")
            .env("ORDERLINE_RECONCILE_EVERY", "0s")
            .env("RUST_LOG", "warn")
            .env_remove("ORDERLINE_CONFIG")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().ok_or("the server exited before listening")?.map_err(|e| e.to_string())?;
        let url = line.strip_prefix("orderline listening on ").ok_or(format!("unexpected: {line}"))?.to_string();
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, url })
    }

    /// The child's process id (for `/proc/PID/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
