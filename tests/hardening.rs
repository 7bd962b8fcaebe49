//! What a stranger on the open internet can do to orderline over a socket: silent, slow and
//! oversized connections, many of them from one address, hostile paths against `/metrics`, and
//! replayed Shopify deliveries under destructive topics. Every probe targets 127.0.0.1 (the
//! stranger speaks from 127.0.0.2, the same machine's loopback), and is bounded in time.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Limits small enough to watch in a test.
const TIGHT: [(&str, &str); 3] = [("header_timeout", "1s"), ("idle_timeout", "2s"), ("request_timeout", "1500ms")];

fn addr(app: &TestApp) -> SocketAddr {
    app.url.trim_start_matches("http://").parse().unwrap()
}

/// A connection from the stranger's address, 127.0.0.2.
async fn stranger(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent and when it closed, or
/// None if it was still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((String::from_utf8_lossy(&seen).into_owned(), started.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

async fn a_silent_connection_is_closed_at_the_header_timeout(backend: Backend) {
    let app = TestApp::start_with(backend, &TIGHT).await;
    let mut silent = stranger(addr(&app)).await;
    let (_, after) = closed_within(&mut silent, Duration::from_secs(5)).await.expect("a silent socket is not kept");
    assert!(after >= Duration::from_millis(900), "closed at the header timeout, not before: {after:?}");
    app.stop().await;
}

async fn headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout(backend: Backend) {
    let app = TestApp::start_with(backend, &TIGHT).await;
    let mut slow = stranger(addr(&app)).await;
    let started = Instant::now();
    let head = b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for byte in head {
        // Each byte keeps the socket from being idle; only the header timeout can end it.
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let closed = cut || closed_within(&mut slow, Duration::from_millis(500)).await.is_some();
    assert!(closed, "headers still trickling after {:?} were not cut", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "cut late: {:?}", started.elapsed());
    app.stop().await;
}

async fn a_body_that_never_comes_is_answered_408_at_the_request_timeout(backend: Backend) {
    let app = TestApp::start_with(backend, &TIGHT).await;
    let mut stalled = stranger(addr(&app)).await;
    // The body announced, 10 bytes of 500 sent, and then nothing, but the socket kept busy with
    // nothing else to read: only the request timeout can end it before the idle one.
    let head = "POST /shopify/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\": 1,";
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (answer, after) =
        closed_within(&mut stalled, Duration::from_secs(5)).await.expect("a stalled body is not waited for forever");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_millis(1900), "answered at the request timeout, before the idle one: {after:?}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries").await, 0);
    app.stop().await;
}

async fn a_content_length_above_the_routes_limit_is_refused_before_the_body_is_read(backend: Backend) {
    let app = TestApp::start_with(backend, &[("webhook_max_bytes", "4096")]).await;
    for (path, length) in
        [("/shopify/webhooks", 4097u64), ("/twilio/voice", 64 * 1024 + 1), ("/agent/login", 10_000_000)]
    {
        let mut big = stranger(addr(&app)).await;
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
        big.write_all(head.as_bytes()).await.unwrap();
        // No body is sent: the answer can only come from the announced length.
        let (answer, after) =
            closed_within(&mut big, Duration::from_secs(3)).await.expect("refused without waiting for the body");
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(after < Duration::from_secs(1), "{path}: {after:?}");
    }
    // A body at the limit still goes through to the handler (here refused for its signature).
    let body = vec![b' '; 4096];
    assert_eq!(app.deliver_signed("orders/create", "w-limit", &body, "bad").await, reqwest::StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn one_address_cannot_take_the_line_down(backend: Backend) {
    let app = TestApp::start_with(backend, &[("max_connections_per_ip", "20"), ("header_timeout", "30s")]).await;
    let target = addr(&app);
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(stranger(target).await);
    }
    // The first 20 are kept (until their header timeout); every one after is closed at once.
    let mut closed = 0;
    for socket in held.iter_mut().skip(20) {
        if closed_within(socket, Duration::from_millis(200)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 180, "every socket over the per-address cap is closed on accept");
    // Everyone else is still served, at once.
    let started = Instant::now();
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(2), app.get("/healthz")).await.expect("healthz answered");
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("orderline_connections_refused_total{reason=\"per_address\"} 180"),
        "refusals counted: {}",
        metrics.lines().filter(|l| l.contains("connections")).collect::<Vec<_>>().join("\n")
    );
    drop(held);
    app.stop().await;
}

async fn the_connection_cap_closes_what_is_over_it_and_frees_with_each_close(backend: Backend) {
    let app = TestApp::start_with(backend, &[("max_connections", "10"), ("max_connections_per_ip", "0")]).await;
    let target = addr(&app);
    // The test's own client may hold a kept-alive connection too: of 15 more, at most 10 fit.
    let mut held = Vec::new();
    for _ in 0..15 {
        held.push(stranger(target).await);
    }
    let mut refused = 0;
    for socket in held.iter_mut() {
        if closed_within(socket, Duration::from_millis(200)).await.is_some() {
            refused += 1;
        }
    }
    assert!(refused >= 5, "connections over the cap are closed on accept ({refused} of 15)");
    let deadline = Instant::now() + Duration::from_secs(3);
    held.clear();
    // The ten are given back as their sockets close; then the line serves again.
    loop {
        let ok =
            tokio::time::timeout(Duration::from_millis(500), app.client.get(format!("{}/healthz", app.url)).send())
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

async fn a_websocket_that_goes_silent_is_closed_at_the_idle_timeout(backend: Backend) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::start_with(backend, &[("idle_timeout", "1s"), ("agent_token", "agent-secret")]).await;
    let mut request = format!("{}/agent/feed", app.url.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", "Bearer agent-secret".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the feed upgrades");
    let started = Instant::now();
    // The client reads (the snapshot) but never sends a byte.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if message.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a silent WebSocket is not kept open");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the idle timeout: {:?}", started.elapsed());
    app.stop().await;
}

on_both_backends!(
    a_silent_connection_is_closed_at_the_header_timeout,
    headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout,
    a_body_that_never_comes_is_answered_408_at_the_request_timeout,
    a_content_length_above_the_routes_limit_is_refused_before_the_body_is_read,
    one_address_cannot_take_the_line_down,
    the_connection_cap_closes_what_is_over_it_and_frees_with_each_close,
    a_websocket_that_goes_silent_is_closed_at_the_idle_timeout,
);
