//! The listening socket and every connection on it: how many may be open (in all and per client
//! address), how long a client may take to send a request's headers or stay silent, and stopping
//! gracefully (stop accepting, let in-flight requests and Media Streams calls finish, up to the
//! drain timeout). Owns no route and reads no body: `app` builds the router it serves, and the
//! per-request limits (time, `Content-Length`) are `app::edge`'s.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::Metrics;

/// File descriptors kept free of connections: the database pool, log files, the Admin API client.
const RESERVED_FILES: usize = 128;

/// How long connections may take and how many may be open: the `transport` area of the settings
/// (`ORDERLINE_HEADER_TIMEOUT` … `ORDERLINE_MAX_FEED_CLIENTS`, see `config`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// From a connection's start (or its previous response) to a request's complete headers.
    #[serde(with = "crate::config::duration")]
    pub header_timeout: Duration,
    /// Longest time a connection, WebSockets included, may send nothing at all.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Longest time one request may take, body included (WebSocket upgrades end at the 101).
    #[serde(with = "crate::config::duration")]
    pub request_timeout: Duration,
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no per-address cap).
    pub max_connections_per_ip: usize,
    /// Agent feed WebSockets open at once.
    pub max_feed_clients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            max_feed_clients: 64,
        }
    }
}

impl Limits {
    /// Refuses limits that would leave the server open or closed to everyone.
    pub fn checked(self) -> Result<Limits, String> {
        let durations = [
            ("ORDERLINE_HEADER_TIMEOUT", self.header_timeout),
            ("ORDERLINE_IDLE_TIMEOUT", self.idle_timeout),
            ("ORDERLINE_REQUEST_TIMEOUT", self.request_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{name} must be more than 0"));
        }
        if self.max_connections == 0 || self.max_feed_clients == 0 {
            return Err("ORDERLINE_MAX_CONNECTIONS and ORDERLINE_MAX_FEED_CLIENTS must be at least 1".into());
        }
        Ok(self)
    }
}

/// Why a connection was closed on accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_connections_per_ip` are open from this address.
    PerAddress,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::PerAddress => "per_address",
        }
    }
}

#[derive(Default)]
struct Open {
    all: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The connections open now, shared by the accept loop and every connection's [`Slot`].
#[derive(Clone)]
struct Counter {
    open: Arc<Mutex<Open>>,
    max: usize,
    max_per_ip: usize,
    metrics: Arc<Metrics>,
}

impl Counter {
    fn take(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.all >= self.max {
            return Err(Refusal::Full);
        }
        let mine = open.by_address.entry(address).or_default();
        if self.max_per_ip > 0 && *mine >= self.max_per_ip {
            return Err(Refusal::PerAddress);
        }
        *mine += 1;
        open.all += 1;
        self.metrics.connections_open.set(open.all as i64);
        Ok(Slot { counter: self.clone(), address })
    }

    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).all
    }
}

/// One open connection's place in the count, given back when the socket is dropped (after an
/// upgrade, that is when the WebSocket ends).
struct Slot {
    counter: Counter,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        open.all -= 1;
        if let Some(mine) = open.by_address.get_mut(&self.address) {
            *mine -= 1;
            if *mine == 0 {
                open.by_address.remove(&self.address);
            }
        }
        self.counter.metrics.connections_open.set(open.all as i64);
    }
}

/// A TCP connection that fails its pending read or write once the peer has sent nothing for
/// `idle`: a socket that goes silent, or never reads what it is sent, is closed, whether it still
/// speaks HTTP or was upgraded to a WebSocket.
struct Guarded {
    tcp: TcpStream,
    idle: Duration,
    last_heard: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: Slot,
}

impl Guarded {
    fn new(tcp: TcpStream, idle: Duration, slot: Slot) -> Guarded {
        let now = Instant::now();
        Guarded { tcp, idle, last_heard: now, timer: Box::pin(tokio::time::sleep_until(now + idle)), _slot: slot }
    }

    /// Called when the socket is not ready: an error once the peer has been silent too long,
    /// otherwise registers the wake-up for that moment. The timer is moved only when it fires,
    /// not on every read.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last_heard + self.idle;
            if deadline <= Instant::now() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "peer idle"));
            }
            self.timer.as_mut().reset(deadline);
        }
        Ok(())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_heard = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write(cx, buf) {
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs) {
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_shutdown(cx) {
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stopped| *stopped).await;
}

/// The most connections the process's open-file limit leaves room for.
fn file_limit() -> Option<usize> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then(|| usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

/// Serves `app` on `listener` within `limits` until `stop` turns true, then drains: stops
/// accepting, lets each connection finish its request in flight, and waits (at most `drain`) for
/// those and for the Media Streams calls still running.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> io::Result<()> {
    let mut max = limits.max_connections;
    if let Some(files) = file_limit()
        && max + RESERVED_FILES > files
    {
        max = files.saturating_sub(RESERVED_FILES).max(1);
        tracing::warn!(
            configured = limits.max_connections,
            max,
            files,
            "ORDERLINE_MAX_CONNECTIONS lowered to fit the open-file limit (ulimit -n)"
        );
    }
    // One address never holds more than half of the cap, whatever the file limit made of it.
    let max_per_ip = match limits.max_connections_per_ip {
        0 => 0,
        per_ip => per_ip.min(max / 2).max(1),
    };
    let counter = Counter { open: Arc::default(), max, max_per_ip, metrics: metrics.clone() };
    // Each connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (tasks_done, task_alive) = watch::channel(());
    let (draining, _) = watch::channel(false);
    let mut refusals_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files or a connection reset before accept: wait a moment, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let slot = match counter.take(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics.connection_refused(refusal.as_str());
                if refusals_logged.elapsed() > Duration::from_secs(10) {
                    refusals_logged = Instant::now();
                    tracing::warn!(reason = refusal.as_str(), open = counter.open(), "connections refused");
                }
                drop(tcp);
                continue;
            }
        };
        // Small writes (Media Streams frames, feed events, TwiML) go out at once, not after the
        // previous one's ACK.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(Guarded::new(tcp, limits.idle_timeout, slot));
        let service = TowerToHyperService::new(app.clone());
        let mut builder = Builder::new(TokioExecutor::new()).http1_only();
        builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
        let mut drain_now = draining.subscribe();
        let alive = task_alive.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped(&mut drain_now) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    let _ = draining.send(true);
    drop(task_alive);
    let started = Instant::now();
    let drained = tokio::time::timeout(drain, async {
        tasks_done.closed().await;
        while metrics.media_streams_active.get() > 0 || metrics.relay_sessions_active.get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match drained {
        Ok(()) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "drained"),
        Err(_) => tracing::warn!(
            streams = metrics.media_streams_active.get(),
            relay_sessions = metrics.relay_sessions_active.get(),
            "drain timeout: requests or Media Streams calls still open are cut"
        ),
    }
    Ok(())
}

impl Counter {
    #[cfg(test)]
    fn for_test(max: usize, max_per_ip: usize) -> Counter {
        Counter { open: Arc::default(), max, max_per_ip, metrics: Arc::new(Metrics::new()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_all_and_per_address_and_given_back_on_drop() {
        let counter = Counter::for_test(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = counter.take(a).unwrap();
        let _a2 = counter.take(a).unwrap();
        assert_eq!(counter.take(a).err(), Some(Refusal::PerAddress));
        let _b1 = counter.take(b).unwrap();
        assert_eq!(counter.take(b).err(), Some(Refusal::Full));
        drop(a1);
        assert_eq!(counter.open(), 2);
        assert!(counter.take(a).is_ok(), "a slot given back is free again");
    }
}
