//! `orderline` (or a wrapper around it, such as valgrind) as a child process listening on
//! 127.0.0.1:0: started, its address read from its first stdout line, killed when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to print `orderline listening on URL`.
const LISTEN_LIMIT: Duration = Duration::from_secs(60);

pub struct OrderlineProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl OrderlineProcess {
    /// Starts `program args…` with `envs` on top of a quiet, port-0, no-config-file setup and
    /// returns once it printed its listening line; stdout is drained afterwards so it never fills.
    pub fn start<K, V>(
        program: &str,
        args: &[&str],
        envs: impl IntoIterator<Item = (K, V)>,
        stderr: Stdio,
    ) -> Result<OrderlineProcess, String>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut child = Command::new(program)
            .args(args)
            .env("ORDERLINE_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .env_remove("ORDERLINE_CONFIG")
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("stdout is not piped")?;
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("orderline listening on ")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(url.trim().to_string());
                }
            }
        });
        let mut process = OrderlineProcess { child, url: String::new() };
        match listening.recv_timeout(LISTEN_LIMIT) {
            Ok(url) => {
                process.url = url;
                Ok(process)
            }
            Err(_) => {
                let status = match process.child.try_wait() {
                    Ok(Some(status)) => format!("it exited: {status}"),
                    _ => format!("no listening line within {} s", LISTEN_LIMIT.as_secs()),
                };
                Err(format!("{program} did not start listening ({status})"))
            }
        }
    }

    /// Waits until `GET /readyz` answers 200 (database, migrations and the change listener up).
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.url)).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{} was not ready within {} s", self.url, limit.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The child's process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited during the run ({status})")),
            Err(e) => Err(format!("cannot check the server process: {e}")),
        }
    }

    /// SIGKILL: no shutdown, no flush, nothing graceful.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OrderlineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
