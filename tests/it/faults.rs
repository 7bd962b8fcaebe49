//! Faults, each against a throwaway PostgreSQL of the test's own (tests/common/pg_cluster.rs)
//! that the test stops, restarts or pauses: what Shopify and callers get meanwhile, and that
//! orderline recovers without a restart. PostgreSQL only: these are the faults of a database
//! server (SQLite, in-process, has no server to lose; its lock waits are in tests/hardening.rs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::pg_cluster::PgCluster;
use crate::common::{SECRET, order_variant, post_webhook, settings_for};
use orderline::app::{self, Running};
use orderline::config::VerifyPolicy;
use orderline::shopify::signature;
use orderline::sim::twilio::{CallerConfig, Ending, TwilioCaller, scripted};
use reqwest::StatusCode;

const TOKEN: &str = "test-twilio-token";

async fn start(cluster: &PgCluster) -> (Running, String) {
    let settings = settings_for(&cluster.url, |s| {
        s.lookup.lookup_budget = Duration::from_millis(500);
        s.ivr.hold_after = Duration::from_millis(300);
    });
    let running = app::start(settings).await.unwrap();
    let url = running.url();
    wait_ready(&url).await;
    (running, url)
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("{url}/readyz")).await.is_ok_and(|r| r.status() == StatusCode::OK);
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "orderline did not become ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliver(client: &reqwest::Client, url: &str, n: u64) -> Option<StatusCode> {
    let body = serde_json::to_vec(&order_variant(n)).unwrap();
    let hmac = signature::sign(SECRET, &body);
    post_webhook(client, url, "orders/create", &format!("w-{n}"), &body, &hmac).await.ok()
}

/// A call as Twilio places it; Err if any answer was not 200 valid TwiML within Twilio's limits.
async fn call(url: &str, from: &str) -> Result<Ending, String> {
    let caller = TwilioCaller::new(CallerConfig::new(url, TOKEN, from));
    let transcript = caller.call(scripted(&["1", "0"])).await.map_err(|e| e.to_string())?;
    match transcript.ending {
        Ending::HttpError(status) => Err(format!("answered HTTP {status}")),
        Ending::TooManySteps => Err("the call never ended".into()),
        ending => Ok(ending),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_gets_webhooks_503_within_4_s_and_callers_a_valid_answer() {
    let mut cluster = PgCluster::start();
    let (running, url) = start(&cluster).await;
    let client = reqwest::Client::new();
    assert_eq!(deliver(&client, &url, 1).await, Some(StatusCode::OK));

    cluster.pause();
    let started = Instant::now();
    assert_eq!(deliver(&client, &url, 2).await, Some(StatusCode::SERVICE_UNAVAILABLE), "Shopify is told to retry");
    assert!(started.elapsed() < Duration::from_secs(4), "answered in {:?}", started.elapsed());
    let started = Instant::now();
    let ending = call(&url, "+15551234567").await;
    assert!(ending.is_ok(), "a caller still gets valid TwiML: {ending:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "the call took {:?}", started.elapsed());
    let (status, _) = get(&url, "/healthz").await;
    assert_eq!(status, StatusCode::OK);

    // Back without a restart of orderline: Shopify's retry is stored.
    cluster.resume();
    wait_ready(&url).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while deliver(&client, &url, 2).await != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "the retry is never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    common::settle(&running.state.store).await;
    assert_eq!(cluster.count("SELECT COUNT(*) FROM orders").await, 2);
    running.stop().await;
}

async fn get(url: &str, path: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{url}{path}")).await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_during_a_webhook_burst_and_calls_loses_nothing_acknowledged() {
    const DELIVERIES: u64 = 120;
    let mut cluster = PgCluster::start();
    let (running, url) = start(&cluster).await;
    let client = reqwest::Client::new();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Shopify: each delivery retried until it is answered 200 (bounded), ten at a time.
    let mut senders = Vec::new();
    for lane in 0..10u64 {
        let (client, url, acknowledged, refused) = (client.clone(), url.clone(), acknowledged.clone(), refused.clone());
        senders.push(tokio::spawn(async move {
            for n in (lane..DELIVERIES).step_by(10) {
                let deadline = Instant::now() + Duration::from_secs(40);
                while deliver(&client, &url, n).await != Some(StatusCode::OK) {
                    assert!(Instant::now() < deadline, "delivery {n} never accepted");
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acknowledged.lock().unwrap().push((n, Instant::now()));
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        }));
    }
    // Callers at the same time.
    let mut calls = Vec::new();
    for i in 0..6 {
        let url = url.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150 * i)).await;
            call(&url, &format!("+1415555{:04}", 100 + i)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outage = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_again();
    cluster.wait_up().await;

    for sender in senders {
        sender.await.unwrap();
    }
    for handle in calls {
        let ending = handle.await.unwrap();
        assert!(ending.is_ok(), "every call answered with valid TwiML: {ending:?}");
    }
    wait_ready(&url).await;
    common::settle(&running.state.store).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len() as u64, DELIVERIES);
    let before = acknowledged.iter().filter(|(_, at)| *at < outage).count();
    assert!(
        before > 0 && before < acknowledged.len(),
        "the restart fell inside the burst ({before} acknowledged before it)"
    );
    // A short outage is mostly waited out (the pool reconnects within the 3 s store budget);
    // whatever was answered 503 was retried and stored.
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{before} acknowledged before the restart; {refused} attempts answered non-200 and retried");
    assert_eq!(cluster.count("SELECT COUNT(*) FROM webhook_deliveries").await, DELIVERIES as i64);
    assert_eq!(cluster.count("SELECT COUNT(*) FROM orders").await, DELIVERIES as i64, "every delivery applied");
    running.stop().await;
}

/// Shopify down one second, up the next: callers unknown to the store need a live lookup each.
async fn shopify_flapping_every_second_keeps_callers_within_the_budget_and_the_breaker_recovers(
    backend: common::Backend,
) {
    use orderline::sim::shopify::Failure;
    let line = common::line::line(backend, |s| {
        s.sync.breaker_threshold = 2;
        s.sync.breaker_cooldown = Duration::from_secs(1);
        s.lookup.negative_ttl = Duration::from_secs(1);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let flapping = Instant::now() + Duration::from_secs(8);
    let mut calls = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < flapping {
        let down = (flapping - Instant::now()).as_secs().is_multiple_of(2);
        line.sim.set_failure(if down { Failure::Timeout } else { Failure::None });
        let started = Instant::now();
        let ending = call(&line.app.url, &format!("+1415555{:04}", 2000 + calls)).await;
        assert!(ending.is_ok(), "call {calls}: {ending:?}");
        slowest = slowest.max(started.elapsed());
        calls += 1;
    }
    // Lookup budget 500 ms per request: a call never waits on Shopify past it.
    assert!(slowest < Duration::from_secs(3), "slowest call {slowest:?}");
    let (_, metrics) = line.app.get("/metrics").await;
    assert!(metrics.contains("outcome=\"breaker_open\""), "the breaker opened while Shopify was down");

    line.sim.set_failure(Failure::None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = call(&line.app.url, &format!("+1415555{:04}", 3000 + calls)).await;
        calls += 1;
        let (_, metrics) = line.app.get("/metrics").await;
        if metrics.contains("orderline_shopify_breaker_state 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never closed again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    line.app.stop().await;
}

on_both_backends!(shopify_flapping_every_second_keeps_callers_within_the_budget_and_the_breaker_recovers);
