//! What a stranger on the open internet can do to orderline over a socket: silent, slow and
//! oversized connections, many of them from one address, hostile paths against `/metrics`, and
//! replayed Shopify deliveries under destructive topics. Every probe targets 127.0.0.1 (the
//! stranger speaks from 127.0.0.2, the same machine's loopback), and is bounded in time.

use orderline::config::{Secret, Settings};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Limits small enough to watch in a test.
fn tight(s: &mut Settings) {
    s.transport.header_timeout = Duration::from_secs(1);
    s.transport.idle_timeout = Duration::from_secs(2);
    s.transport.request_timeout = Duration::from_millis(1500);
}

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
    let app = TestApp::start_with(backend, tight).await;
    let mut silent = stranger(addr(&app)).await;
    let (_, after) = closed_within(&mut silent, Duration::from_secs(5)).await.expect("a silent socket is not kept");
    assert!(after >= Duration::from_millis(900), "closed at the header timeout, not before: {after:?}");
    app.stop().await;
}

async fn headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout(backend: Backend) {
    let app = TestApp::start_with(backend, tight).await;
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
    let app = TestApp::start_with(backend, tight).await;
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
    let app = TestApp::start_with(backend, |s| s.server.webhook_max_bytes = 4096).await;
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
    let app = TestApp::start_with(backend, |s| {
        s.transport.max_connections_per_ip = 20;
        s.transport.header_timeout = Duration::from_secs(30);
    })
    .await;
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
    let app = TestApp::start_with(backend, |s| {
        s.transport.max_connections = 10;
        s.transport.max_connections_per_ip = 0;
    })
    .await;
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

/// Opens `/agent/feed` over a raw socket (the bearer token), reads the 101, and returns the socket:
/// from then on it answers nothing, not even pings.
async fn raw_feed(to: SocketAddr) -> TcpStream {
    let mut socket = stranger(to).await;
    let head = "GET /agent/feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                Authorization: Bearer agent-secret\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).await.unwrap();
        seen.push(byte[0]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&seen));
    socket
}

async fn a_websocket_that_goes_silent_is_closed_at_the_idle_timeout(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        s.transport.idle_timeout = Duration::from_secs(1);
        s.agents.agent_token = Some(Secret::new("agent-secret"));
    })
    .await;
    let mut silent = raw_feed(addr(&app)).await;
    // It reads what it is sent (the snapshot, pings) but never sends a byte.
    let (_, after) = closed_within(&mut silent, Duration::from_secs(5)).await.expect("a silent WebSocket is not kept");
    assert!(after >= Duration::from_millis(900), "not before the idle timeout: {after:?}");
    app.stop().await;
}

async fn a_live_console_is_kept_and_feed_sockets_are_capped(backend: Backend) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::start_with(backend, |s| {
        s.transport.idle_timeout = Duration::from_secs(1);
        s.agents.agent_token = Some(Secret::new("agent-secret"));
        s.transport.max_feed_clients = 2;
    })
    .await;
    let connect = || async {
        let mut request = format!("{}/agent/feed", app.url.replace("http://", "ws://")).into_client_request().unwrap();
        request.headers_mut().insert("Authorization", "Bearer agent-secret".parse().unwrap());
        tokio_tungstenite::connect_async(request).await
    };
    let (mut live, _) = connect().await.expect("the feed upgrades");
    let _second = raw_feed(addr(&app)).await;
    let third = connect().await;
    assert!(
        matches!(&third, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
        "a third feed socket over ORDERLINE_MAX_FEED_CLIENTS=2 is refused: {third:?}"
    );
    // A console that answers the server's pings (as browsers and tungstenite do) stays open
    // well past the idle timeout.
    let kept = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(message) = live.next().await {
            if message.is_err() {
                return false;
            }
        }
        false
    })
    .await;
    assert!(kept.is_err(), "a live console was closed: {kept:?}");
    app.stop().await;
}

async fn a_feed_client_cannot_make_the_server_buffer_a_large_message(backend: Backend) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let app = TestApp::start_with(backend, |s| s.agents.agent_token = Some(Secret::new("agent-secret"))).await;
    let mut request = format!("{}/agent/feed", app.url.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", "Bearer agent-secret".parse().unwrap());
    let (mut feed, _) = tokio_tungstenite::connect_async(request).await.expect("the feed upgrades");
    // A small message is ignored and the socket kept; a 1 MiB one ends it.
    feed.send(Message::Text("hello".into())).await.unwrap();
    feed.send(Message::Text("x".repeat(1 << 20).into())).await.ok();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match feed.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the feed is closed, not kept reading");
    assert!(matches!(ended, None | Some(1009)), "closed as too big (1009) or dropped: {ended:?}");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    app.stop().await;
}

/// Sends `head` (a whole request) from the stranger's address and returns the status line.
async fn raw_request(to: SocketAddr, head: &str) -> String {
    let mut socket = stranger(to).await;
    socket.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = closed_within(&mut socket, Duration::from_secs(5)).await.expect("answered and closed");
    answer.lines().next().unwrap_or_default().to_string()
}

async fn metrics_parse_and_keep_their_labels_after_hostile_paths(backend: Backend) {
    let app = TestApp::start(backend).await;
    let target = addr(&app);
    for path in [r#"/twilio/voice/q"r{s}"#, r#"/twilio/voice/a\b}"#, "/twilio/voice/%22%7D%0A", "/twilio/status/x"] {
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let status = raw_request(target, &head).await;
        assert!(status.starts_with("HTTP/1.1 403") || status.starts_with("HTTP/1.1 404"), "{path}: {status}");
    }
    let unsigned = app.client.post(format!("{}/twilio/voice", app.url)).send().await.unwrap();
    assert_eq!(unsigned.status(), reqwest::StatusCode::FORBIDDEN, "a known route, unsigned, keeps its own label");
    for n in 0..300 {
        let response = app.client.post(format!("{}/twilio/voice/probe-{n}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    }
    // Hostile topics on unsigned and signed deliveries: counted under `other`, never as given.
    for (n, topic) in [r#"a"b{c}"#, "orders/create\"} x", "x\ny"].iter().enumerate() {
        let unsigned = app
            .client
            .post(format!("{}/shopify/webhooks", app.url))
            .header("X-Shopify-Topic", topic.replace('\n', " "))
            .header("X-Shopify-Hmac-Sha256", "forged")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), reqwest::StatusCode::UNAUTHORIZED);
        let signed = app.deliver(&topic.replace('\n', " "), &format!("w-hostile-{n}"), b"{}").await;
        assert!(signed.is_success(), "{topic}: {signed}");
    }
    let (status, page) = app.get("/metrics").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&page)
        .unwrap_or_else(|e| panic!("/metrics is not valid OpenMetrics ({e:?}):\n{page}"));
    let family = exposition.families.get("orderline_twilio_requests").expect("Twilio requests are counted");
    let routes: std::collections::BTreeSet<String> = family
        .iter_samples()
        .map(|s| s.get_labelset().unwrap().get_label_value("route").unwrap().to_string())
        .collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        vec!["other".to_string(), "voice".to_string()],
        "unknown paths share one label"
    );
    let family = exposition.families.get("orderline_webhook_deliveries_received").expect("deliveries are counted");
    let topics: std::collections::BTreeSet<String> = family
        .iter_samples()
        .map(|s| s.get_labelset().unwrap().get_label_value("topic").unwrap().to_string())
        .collect();
    assert!(topics.contains("other"), "{topics:?}");
    assert!(
        topics.iter().all(|t| t == "other" || orderline::shopify::payload::Topic::parse(t).is_some()),
        "only known topics and `other`: {topics:?}"
    );
    assert!(page.len() < 32 * 1024, "the page does not grow with hostile paths: {} bytes", page.len());
    app.stop().await;
}

const CUSTOMER: i64 = 9_007_199_254_741_901;

/// `orderline dlq replay` with the database and `envs`: (exit success, stdout).
fn dlq_replay(db_url: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderline"))
        .args(["dlq", "replay"])
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .env_remove("ORDERLINE_CONFIG")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn a_signed_body_replayed_under_a_destructive_topic_is_a_dead_letter(backend: Backend) {
    use common::{SHOP, fixture_bytes};
    let app = TestApp::start_with(backend, |s| s.shopify.shop = Some(SHOP.to_string())).await;
    let create = fixture_bytes("customer_create.json");
    assert_eq!(app.deliver("customers/create", "w-create", &create).await, reqwest::StatusCode::OK);
    app.settle().await;
    // The captured body, its signature still good, resent under each destructive topic.
    for topic in ["customers/delete", "customers/redact", "shop/redact", "orders/delete"] {
        let id = format!("w-replay-{topic}");
        assert_eq!(app.deliver(topic, &id, &create).await, reqwest::StatusCode::OK, "stored, so not retried");
        app.settle().await;
        let row = app.store().delivery(SHOP, &id).await.unwrap().unwrap();
        assert_eq!(row.status, "dead", "{topic}");
        let error = row.error.unwrap_or_default();
        assert!(error.contains(topic) && error.contains("never carries"), "{topic}: {error}");
    }
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {CUSTOMER}")).await, 1);
    let (_, listed, _) = common::orderline_cli(&app.db.url, &["dlq", "list"]);
    assert!(listed.contains("never carries"), "the reason is shown to the operator: {listed}");
    // An operator replaying every dead letter does not apply them either.
    let (ok, replayed) = dlq_replay(&app.db.url, &[("SHOPIFY_SHOP", SHOP)]);
    assert!(!ok, "replay says some are still dead: {replayed}");
    assert_eq!(replayed.matches("kept dead:").count(), 4, "{replayed}");
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {CUSTOMER}")).await, 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'dead'").await, 4);
    // Shopify's own delete, for the configured shop, is applied.
    assert_eq!(
        app.deliver("customers/delete", "w-delete", &fixture_bytes("customer_delete.json")).await,
        reqwest::StatusCode::OK
    );
    app.settle().await;
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {CUSTOMER}")).await, 0);
    app.stop().await;
}

async fn a_destructive_delivery_for_another_shop_is_a_dead_letter(backend: Backend) {
    use common::{SECRET, SHOP, fixture_bytes};
    let app = TestApp::start_with(backend, |s| s.shopify.shop = Some(SHOP.to_string())).await;
    app.deliver("customers/create", "w-create", &fixture_bytes("customer_create.json")).await;
    let body = fixture_bytes("customer_delete.json");
    let response = app
        .client
        .post(format!("{}/shopify/webhooks", app.url))
        .header("X-Shopify-Topic", "customers/delete")
        .header("X-Shopify-Hmac-Sha256", orderline::shopify::signature::sign(SECRET, &body))
        .header("X-Shopify-Shop-Domain", "someone-else.myshopify.com")
        .header("X-Shopify-Webhook-Id", "w-other-shop")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    app.settle().await;
    let row = app.store().delivery("someone-else.myshopify.com", "w-other-shop").await.unwrap().unwrap();
    assert_eq!(row.status, "dead");
    assert!(row.error.unwrap_or_default().contains("not SHOPIFY_SHOP"));
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {CUSTOMER}")).await, 1);
    app.stop().await;
}

/// The emulator holding the fixtures' customer and order, and orderline with an Admin API client
/// for it (so deletes are confirmed) whose webhooks the emulator sends.
async fn confirming_shop(
    backend: Backend,
) -> (orderline::sim::shopify::ShopifySim, orderline::sim::shopify::SimServer, TestApp) {
    use common::{SECRET, SHOP, fixture_bytes};
    use orderline::shopify::payload::{ShopifyCustomer, ShopifyOrder};
    use orderline::sim::shopify::{ShopifySim, SimConfig, WebhookTarget};
    let sim = ShopifySim::new(SimConfig::default());
    sim.upsert_customer(serde_json::from_slice::<ShopifyCustomer>(&fixture_bytes("customer_create.json")).unwrap())
        .unwrap();
    sim.upsert_order(serde_json::from_slice::<ShopifyOrder>(&fixture_bytes("order_create.json")).unwrap());
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (id, secret, api) = (sim.config().client_id.clone(), sim.config().client_secret.clone(), server.url());
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(SHOP.to_string());
        s.shopify.client_id = Some(id.as_str().to_string());
        s.shopify.client_secret = Some(Secret::new(secret.as_str()));
        s.shopify.api_url = Some(api.as_str().to_string());
        s.sync.reconcile_every = Duration::ZERO;
        s.lookup.warm_count = 0;
    };
    let app = TestApp::start_with(backend, settings).await;
    sim.set_webhook_target(WebhookTarget::new(format!("{}/shopify/webhooks", app.url), SECRET, SHOP));
    assert_eq!(app.deliver("customers/create", "w-customer", &fixture_bytes("customer_create.json")).await, 200);
    assert_eq!(app.deliver("orders/create", "w-order", &fixture_bytes("order_create.json")).await, 200);
    app.settle().await;
    (sim, server, app)
}

const ORDER: i64 = 9_007_199_254_741_107;

async fn a_delete_is_applied_only_once_shopify_confirms_the_record_is_gone(backend: Backend) {
    use common::{SHOP, fixture_bytes};
    use orderline::domain::ShopifyId;
    let (sim, server, app) = confirming_shop(backend).await;
    let customers = format!("SELECT COUNT(*) FROM customers WHERE id = {CUSTOMER}");
    let orders = format!("SELECT COUNT(*) FROM orders WHERE id = {ORDER}");
    // Bodies of a delete's exact shape, validly signed, for records Shopify still holds (what a
    // body signed for another resource's delete, e.g. `{"id": …}`, replayed as these would be).
    for (topic, id, body) in [
        ("orders/delete", "w-early-order", fixture_bytes("order_delete.json")),
        ("customers/delete", "w-early-customer", fixture_bytes("customer_delete.json")),
    ] {
        assert_eq!(app.deliver(topic, id, &body).await, reqwest::StatusCode::OK, "stored, so not retried");
        app.settle().await;
        let row = app.store().delivery(SHOP, id).await.unwrap().unwrap();
        assert_eq!(row.status, "dead", "{topic}");
        let error = row.error.unwrap_or_default();
        assert!(error.contains("Shopify still has"), "{topic}: {error}");
    }
    assert_eq!(app.db.count(&orders).await, 1, "the order is kept");
    assert_eq!(app.db.count(&customers).await, 1, "the customer is kept");
    let (_, listed, _) = common::orderline_cli(&app.db.url, &["dlq", "list"]);
    assert!(listed.contains("Shopify still has order"), "the reason is shown to the operator: {listed}");
    // `dlq replay` asks Shopify again: still there, so still not applied.
    let (id, secret, api) = (sim.config().client_id.clone(), sim.config().client_secret.clone(), server.url());
    let shopify = [
        ("SHOPIFY_SHOP", SHOP),
        ("SHOPIFY_CLIENT_ID", id.as_str()),
        ("SHOPIFY_CLIENT_SECRET", secret.as_str()),
        ("SHOPIFY_API_URL", api.as_str()),
    ];
    let (ok, replayed) = dlq_replay(&app.db.url, &shopify);
    assert!(!ok && replayed.matches("but Shopify still has").count() == 2, "{replayed}");
    assert_eq!(app.db.count(&orders).await, 1, "the order is kept");

    // The merchant deletes them in Shopify: Shopify's own deliveries are confirmed and applied.
    assert!(sim.delete_order(ShopifyId(ORDER)));
    assert!(sim.delete_customer(ShopifyId(CUSTOMER)));
    let sent = sim.flush_webhooks().await;
    assert_eq!((sent.sent, sent.failed), (2, 0), "{sent:?}");
    app.settle().await;
    assert_eq!(app.db.count(&orders).await, 0, "the order is deleted");
    assert_eq!(app.db.count(&customers).await, 0, "the customer is deleted");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'dead'").await, 2);
    app.stop().await;
    server.stop().await;
}

async fn a_delete_shopify_cannot_confirm_is_answered_503_and_not_stored(backend: Backend) {
    use common::fixture_bytes;
    use orderline::sim::shopify::Failure;
    let (sim, server, app) = confirming_shop(backend).await;
    sim.set_failure(Failure::Timeout);
    let started = Instant::now();
    let status = app.deliver("orders/delete", "w-unconfirmed", &fixture_bytes("order_delete.json")).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "Shopify is told to retry");
    assert!(started.elapsed() < Duration::from_secs(4), "within Shopify's 5 s: {:?}", started.elapsed());
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = 'w-unconfirmed'").await, 0);
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM orders WHERE id = {ORDER}")).await, 1);
    // Non-destructive topics are not held up by Shopify's state.
    assert_eq!(app.deliver("orders/create", "w-meanwhile", &fixture_bytes("order_create.json")).await, 200);
    // Shopify answers again, and the order was really deleted: the retry is applied.
    sim.set_failure(Failure::None);
    assert!(sim.delete_order(orderline::domain::ShopifyId(ORDER)));
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.deliver("orders/delete", "w-unconfirmed", &fixture_bytes("order_delete.json")).await
        != reqwest::StatusCode::OK
    {
        assert!(Instant::now() < deadline, "the retry is never accepted (breaker still open?)");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.settle().await;
    assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM orders WHERE id = {ORDER}")).await, 0);
    app.stop().await;
    server.stop().await;
}

async fn readyz_tells_strangers_nothing_of_the_database(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.db.exec("DROP TABLE _sqlx_migrations").await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready\n", "the reason is logged, not shown");
    app.stop().await;
}

/// Holds the deliveries table locked (Postgres) or the whole file (SQLite) until dropped: every
/// write to it waits, as on a database that hangs.
async fn lock_deliveries(db: &common::TestDb) -> Box<dyn std::any::Any + Send> {
    use sqlx::Connection;
    match db.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN; LOCK TABLE webhook_deliveries IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .unwrap();
            Box::new(conn)
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut conn).await.unwrap();
            Box::new(conn)
        }
    }
}

async fn a_webhook_is_answered_503_within_4_s_when_the_database_hangs_and_is_kept_on_retry(backend: Backend) {
    use common::fixture_bytes;
    let app = TestApp::start(backend).await;
    let lock = lock_deliveries(&app.db).await;
    let body = fixture_bytes("order_create.json");
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(6), app.deliver("orders/create", "w-hang", &body))
        .await
        .expect("answered, not left hanging");
    let took = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "Shopify is told to retry");
    assert!(took < Duration::from_secs(4), "answered within Shopify's 5 s: {took:?}");
    drop(lock);
    // Shopify's retry, once the database is back: stored once, whichever attempt got there.
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.deliver("orders/create", "w-hang", &body).await != reqwest::StatusCode::OK {
        assert!(Instant::now() < deadline, "the retry is never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.settle().await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = 'w-hang'").await, 1);
    app.stop().await;
}

on_both_backends!(
    a_delete_is_applied_only_once_shopify_confirms_the_record_is_gone,
    a_delete_shopify_cannot_confirm_is_answered_503_and_not_stored,
    readyz_tells_strangers_nothing_of_the_database,
    a_webhook_is_answered_503_within_4_s_when_the_database_hangs_and_is_kept_on_retry,
    a_signed_body_replayed_under_a_destructive_topic_is_a_dead_letter,
    a_destructive_delivery_for_another_shop_is_a_dead_letter,
    metrics_parse_and_keep_their_labels_after_hostile_paths,
    a_silent_connection_is_closed_at_the_header_timeout,
    headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout,
    a_body_that_never_comes_is_answered_408_at_the_request_timeout,
    a_content_length_above_the_routes_limit_is_refused_before_the_body_is_read,
    one_address_cannot_take_the_line_down,
    the_connection_cap_closes_what_is_over_it_and_frees_with_each_close,
    a_websocket_that_goes_silent_is_closed_at_the_idle_timeout,
    a_live_console_is_kept_and_feed_sockets_are_capped,
    a_feed_client_cannot_make_the_server_buffer_a_large_message,
);
