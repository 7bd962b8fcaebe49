//! Graceful shutdown of `orderline serve`: on SIGTERM it stops accepting, lets requests in
//! flight finish (up to ORDERLINE_DRAIN_TIMEOUT), and exits 0; what it acknowledged is stored.

use orderline::config::{PromptMode, Secret, Settings, VerifyPolicy};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, SECRET, ServerProcess, TestDb, fixture_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sigterm(server: &ServerProcess) {
    // SAFETY: kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM sent");
}

/// Waits (bounded) for the child to exit; its exit status.
fn exit_within(server: &mut ServerProcess, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = server.child().try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn a_request_in_flight_at_sigterm_finishes_and_is_kept(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut server =
        ServerProcess::spawn_with(&db.url, &[("ORDERLINE_DRAIN_TIMEOUT", "10s")], std::process::Stdio::null()).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let body = fixture_bytes("order_create.json");
    let hmac = orderline::shopify::signature::sign(SECRET, &body);
    let mut in_flight = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /shopify/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Shopify-Topic: orders/create\r\n\
         X-Shopify-Hmac-Sha256: {hmac}\r\nX-Shopify-Shop-Domain: {}\r\nX-Shopify-Webhook-Id: w-drain\r\n\
         Content-Length: {}\r\n\r\n",
        common::SHOP,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    in_flight.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    sigterm(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connection is taken once draining.
    let refused = match TcpStream::connect(&addr).await {
        Err(_) => true,
        Ok(mut late) => {
            let _ = late.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let mut buf = [0u8; 64];
            matches!(tokio::time::timeout(Duration::from_secs(2), late.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
        }
    };
    assert!(refused, "a connection after SIGTERM is not served");

    // The request in flight finishes: the rest of its body, then its answer.
    in_flight.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), in_flight.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = exit_within(&mut server, Duration::from_secs(10)).expect("exits after draining");
    assert!(status.success(), "{status:?}");
    assert_eq!(db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = 'w-drain'").await, 1);
}

async fn the_drain_timeout_bounds_the_wait_for_a_request_that_never_ends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut server = ServerProcess::spawn_with(
        &db.url,
        &[("ORDERLINE_DRAIN_TIMEOUT", "1s"), ("ORDERLINE_REQUEST_TIMEOUT", "60s"), ("ORDERLINE_IDLE_TIMEOUT", "60s")],
        std::process::Stdio::null(),
    )
    .await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut stuck = TcpStream::connect(&addr).await.unwrap();
    let head = "POST /shopify/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
    stuck.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    sigterm(&server);
    let status = exit_within(&mut server, Duration::from_secs(5)).expect("exits at the drain timeout");
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
}

/// A TCP proxy standing for the load balancer of a rolling deploy: new connections go to
/// whichever instance is current.
async fn proxy(target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = *target.lock().unwrap();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    url
}

async fn a_media_streams_call_runs_to_its_hand_off_while_its_instance_drains(backend: Backend) {
    use orderline::sim::media::{MediaCaller, scripted_media};
    use orderline::sim::twilio::{CallerConfig, Ending, TwilioCaller};
    let target = std::sync::Arc::new(std::sync::Mutex::new("127.0.0.1:9".parse().unwrap()));
    let public = proxy(target.clone()).await;
    let media = |s: &mut Settings| {
        s.ivr.prompt_mode = PromptMode::MediaStream;
        s.ivr.verify = VerifyPolicy::None;
        s.server.public_url = public.as_str().to_string();
        s.server.drain_timeout = Duration::from_secs(30);
    };
    let line = common::line::line(backend, media).await;
    let old = line.app.running.as_ref().unwrap();
    *target.lock().unwrap() = old.addr;
    // The new instance, on the same database, as a rolling deploy starts it.
    let token = line.sim.config().access_token.clone();
    let api = line.shopify_url();
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(common::SHOP.to_string());
        s.shopify.access_token = Some(Secret::new(token.as_str()));
        s.shopify.api_url = Some(api.as_str().to_string());
        s.sync.reconcile_every = Duration::ZERO;
        s.lookup.warm_count = 0;
        media(s);
    };
    let new = orderline::app::start(common::settings_for(&line.app.db.url, settings)).await.unwrap();

    let caller = MediaCaller::new(TwilioCaller::new(CallerConfig::new(&public, common::line::TOKEN, "+15551234567")));
    let call = tokio::spawn(async move { caller.call(&mut scripted_media(&["0"]), |_| {}).await });
    // The stream is up on the old instance: the deploy takes it out of rotation and stops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.state.metrics.media_streams_active.get() == 0 {
        assert!(Instant::now() < deadline, "the stream never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *target.lock().unwrap() = new.addr;
    let mut app = line.app;
    let old = app.running.take().unwrap();
    let metrics = old.state.metrics.clone();
    let stopping = Instant::now();
    old.stop().await;
    let drained_in = stopping.elapsed();

    let transcript = call.await.unwrap().expect("the call went through");
    assert_eq!(transcript.close, Some((1000, "transfer".to_string())), "the stream ended at its hand-off");
    let after = transcript.after.as_ref().expect("the TwiML after the stream ran");
    assert!(after.turns[0].url.ends_with("/twilio/voice/stream-ended"));
    assert!(
        matches!(&transcript.ending, Ending::Enqueue(q) if q.text.trim() == "support"),
        "the new instance put the caller through: {:?}",
        transcript.ending
    );
    assert!(transcript.pressed.contains(&'0'));
    assert!(drained_in > Duration::from_millis(200), "the old instance waited for its call: {drained_in:?}");
    assert!(
        metrics.render().contains("orderline_media_streams_ended_total{end=\"transfer\"} 1"),
        "ended at its hand-off"
    );
    new.stop().await;
}

on_both_backends!(
    a_request_in_flight_at_sigterm_finishes_and_is_kept,
    the_drain_timeout_bounds_the_wait_for_a_request_that_never_ends,
    a_media_streams_call_runs_to_its_hand_off_while_its_instance_drains,
);
