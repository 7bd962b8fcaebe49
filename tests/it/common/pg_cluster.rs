//! A throwaway PostgreSQL server for one test: `initdb` and `pg_ctl` under the test's temp
//! folder, on a free port of 127.0.0.1, so the test can stop, restart or pause (SIGSTOP) it
//! without touching the shared server. The binaries are found under /usr/lib/postgresql/*/bin
//! (or `ORDERLINE_TEST_PG_BIN`). initdb refuses to run as root, so as root (CI) every command runs as
//! the `postgres` user, which owns the data folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct PgCluster {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    paused: bool,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ORDERLINE_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or set ORDERLINE_TEST_PG_BIN)")
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("initdb under /usr/lib/postgresql/<version>/bin").1
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(tool);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    command.args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgCluster {
    /// A new cluster, started, with a database `orderline`.
    pub fn start() -> PgCluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::create_dir(&data).unwrap();
            let chown = Command::new("chown").args(["postgres:postgres"]).arg(&data).status().unwrap();
            assert!(chown.success());
            std::fs::write(&log, b"").unwrap();
            Command::new("chown").args(["postgres:postgres"]).arg(&log).status().unwrap();
        }
        let bin = bin_dir();
        let init = run(
            &bin,
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
        );
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let port = free_port();
        let mut cluster = PgCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/orderline"),
            port,
            bin,
            data,
            log,
            paused: false,
            _dir: dir,
        };
        cluster.pg_start();
        let created =
            run(&cluster.bin, "createdb", &["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "orderline"]);
        assert!(created.status.success(), "createdb: {}", String::from_utf8_lossy(&created.stderr));
        cluster
    }

    fn pg_start(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=60",
            self.port
        );
        let started = run(
            &self.bin,
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-l", self.log.to_str().unwrap(), "-o", &options, "-w", "start"],
        );
        assert!(
            started.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stops the server (fast: connections are cut), as a crash or a failover would look.
    pub fn stop(&mut self) {
        self.resume();
        let stopped = run(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
        assert!(stopped.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    pub fn start_again(&mut self) {
        self.pg_start();
    }

    /// Every process of the server: the postmaster and its children.
    fn pids(&self) -> Vec<i32> {
        let pidfile = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        let Some(main) = pidfile.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return Vec::new() };
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …: the comm may hold spaces, so read after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    /// SIGSTOP to every server process: connections stay open and nothing answers, as a hung
    /// database or a network partition looks.
    pub fn pause(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on the server's own processes.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        self.paused = true;
    }

    pub fn resume(&mut self) {
        if self.paused {
            for pid in self.pids() {
                // SAFETY: as in pause.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
            self.paused = false;
        }
    }

    /// Waits until the server accepts connections (after `start_again`).
    pub async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "the throwaway PostgreSQL did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&mut c).await.unwrap()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.resume();
        let _ = run(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }
}
