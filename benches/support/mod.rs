//! What the benchmarks share: a throwaway Postgres database and percentiles.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::Connection;

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
