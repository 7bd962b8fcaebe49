//! Agent feed benchmark: `BENCH_AGENTS` (500) agents connected to `/agent/feed` while
//! `BENCH_CALLS` (50) calls are in progress at once, each moving through the menu at a caller's
//! pace (a step every `BENCH_STEP_MS`, 1000), against `orderline serve` on Postgres. Reports
//! event delivery latency (server emit → every agent's socket) and end to end (the Twilio
//! request sent → the agent holds the event). Target: p99 under 50 ms. Reports; exits non-zero
//! only if an agent misses events or the run fails.
//!
//! `cargo bench --bench agent_feed`; `ORDERLINE_TEST_POSTGRES`, `BENCH_SECONDS` (20).

mod support;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use orderline::shopify::payload::ShopifyChange;
use orderline::shopify::writes::writes;
use orderline::sim::shopify::{ShopifySim, SimConfig};
use orderline::sim::twilio::{CallerConfig, TwilioCaller};
use orderline::store::{Store, Ts};
use serde::Deserialize;
use support::{PgDatabase, Server, number, percentile};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "bench-twilio-token";
const AGENT: &str = "bench-agent-token";
const SHOP: &str = "orderline-demo.myshopify.com";

fn start_server(db_url: &str, agents: u64) -> Result<Server, String> {
    support::serve(&[
        ("DATABASE_URL", db_url.to_string()),
        // Above the default cap of 64 feed sockets, for every agent of the run.
        ("ORDERLINE_MAX_FEED_CLIENTS", (agents + 16).to_string()),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("SHOPIFY_SHOP", SHOP.to_string()),
        ("ORDERLINE_AGENT_TOKEN", AGENT.to_string()),
        ("ORDERLINE_VERIFY", "none".to_string()),
    ])
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    emitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    call: Option<CallRef>,
}

#[derive(Deserialize)]
struct CallRef {
    call_sid: String,
    started_at: DateTime<Utc>,
}

#[derive(Default)]
struct Agents {
    /// Server emit → received, every event at every agent.
    delivery: Vec<Duration>,
    /// Twilio request sent → the "started" event received, every agent.
    end_to_end: Vec<Duration>,
    /// Inside the server: the call answered → its "started" event emitted (once per call).
    pipeline: Vec<Duration>,
    events: u64,
    snapshots: u64,
}

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

async fn agent(
    url: String,
    sent: Sent,
    mut stop: tokio::sync::watch::Receiver<bool>,
    connected: Arc<std::sync::atomic::AtomicU64>,
    results: Arc<Mutex<Agents>>,
) -> Result<(), String> {
    let mut request =
        format!("{}/agent/feed", url.replace("http://", "ws://")).into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert("Authorization", format!("Bearer {AGENT}").parse().map_err(|_| "header")?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    let mut mine = Agents::default();
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Some(message) = message else { break };
        let Message::Text(text) = message.map_err(|e| e.to_string())? else { continue };
        let received = Instant::now();
        let now = Utc::now();
        let event: Event = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if event.kind == "snapshot" {
            if mine.snapshots == 0 {
                connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            mine.snapshots += 1;
            continue;
        }
        mine.events += 1;
        if let Some(emitted) = event.emitted_at {
            mine.delivery.push((now - emitted).to_std().unwrap_or_default());
        }
        if event.types.iter().any(|t| t == "started")
            && let Some(call) = &event.call
            && let Some(at) = sent.lock().unwrap().get(&call.call_sid)
        {
            mine.end_to_end.push(received.duration_since(*at));
            if let Some(emitted) = event.emitted_at
                && mine.snapshots == 1
                && connected.load(std::sync::atomic::Ordering::Relaxed) > 0
            {
                mine.pipeline.push((emitted - call.started_at).to_std().unwrap_or_default());
            }
        }
    }
    let mut all = results.lock().unwrap();
    all.delivery.extend(mine.delivery);
    all.end_to_end.extend(mine.end_to_end);
    all.pipeline.extend(mine.pipeline);
    all.events += mine.events;
    all.snapshots += mine.snapshots;
    Ok(())
}

/// One caller after another, each call: incoming, 1, 2, 0 (to an agent), then completed; a step
/// every `step`.
async fn caller(
    index: usize,
    url: String,
    from: String,
    step: Duration,
    stop: Instant,
    sent: Sent,
) -> Result<u64, String> {
    // Callers do not all dial in the same instant: spread their starts over one step.
    tokio::time::sleep(step.mul_f64(index as f64 / 50.0).min(step)).await;
    let mut calls = 0;
    // One client per caller, kept: building one (TLS roots and all) costs milliseconds of CPU.
    let twilio = TwilioCaller::new(CallerConfig::new(&url, TOKEN, &from));
    while Instant::now() + step * 5 < stop {
        let sid = format!("CA{index:016x}{calls:016x}");
        let base: Vec<(String, String)> =
            [("CallSid", sid.as_str()), ("From", from.as_str()), ("To", "+18005550100"), ("CallStatus", "in-progress")]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        sent.lock().unwrap().insert(sid.clone(), Instant::now());
        let mut turn = twilio.post(&format!("{url}/twilio/voice"), &base).await.map_err(|e| e.to_string())?;
        for key in ["1", "2", "0"] {
            tokio::time::sleep(step).await;
            let doc = turn.document.as_ref().ok_or("no TwiML")?;
            let action = doc.find("Gather").and_then(|g| g.attr("action")).ok_or("no Gather")?.to_string();
            let mut params = base.clone();
            params.push(("Digits".into(), key.into()));
            turn = twilio.post(&format!("{url}{action}"), &params).await.map_err(|e| e.to_string())?;
        }
        tokio::time::sleep(step).await;
        twilio.status_callback(&sid, "completed", Some(4), 3).await.map_err(|e| e.to_string())?;
        calls += 1;
    }
    Ok(calls)
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The resident set of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

async fn run() -> Result<(), String> {
    let admin = support::admin_url();
    let agents = number("BENCH_AGENTS", 500);
    let concurrent_calls = number("BENCH_CALLS", 50);
    let seconds = number("BENCH_SECONDS", 20);
    let step = Duration::from_millis(number("BENCH_STEP_MS", 1000));
    let db = PgDatabase::create(&admin, "bench").await?;
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_generated(concurrent_calls as usize, 3);
    let store = Store::connect_with(&db.url, 4).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let phones: Vec<String> = sim.customers().iter().filter_map(|c| c.phone.clone()).collect();
    let mut changes: Vec<ShopifyChange> =
        sim.customers().into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect();
    changes.extend(sim.orders().into_iter().map(|o| ShopifyChange::Order(Box::new(o))));
    store.apply_all(SHOP, &writes(changes), "US", Ts::from(Utc::now())).await.map_err(|e| e.to_string())?;

    let server = start_server(&db.url, agents)?;
    let url = server.url.clone();
    // What an idle feed socket costs the server: RSS before and after every agent is connected
    // and has read its snapshot (no call yet).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(server.pid()).ok_or("the server is gone")?;
    let sent: Sent = Arc::default();
    let results = Arc::new(Mutex::new(Agents::default()));
    let connect_started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let connected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut agent_tasks = Vec::new();
    for _ in 0..agents {
        let task = agent(url.clone(), sent.clone(), stopped.clone(), connected.clone(), results.clone());
        agent_tasks.push(tokio::spawn(task));
    }
    // Everyone connected (the snapshot arrives first) before the calls start.
    while connected.load(std::sync::atomic::Ordering::SeqCst) < agents
        && connect_started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{agents} agents connected in {:.1} s", connect_started.elapsed().as_secs_f64());
    let rss_after = rss_kib(server.pid()).ok_or("the server is gone")?;
    println!(
        "server RSS {rss_before} KiB before the agents, {rss_after} KiB with {agents} idle feed sockets: {:.1} KiB a socket",
        rss_after.saturating_sub(rss_before) as f64 / agents.max(1) as f64
    );
    let calls_stop = Instant::now() + Duration::from_secs(seconds);
    let mut callers = Vec::new();
    for i in 0..concurrent_calls as usize {
        callers.push(tokio::spawn(caller(
            i,
            url.clone(),
            phones[i % phones.len()].clone(),
            step,
            calls_stop,
            sent.clone(),
        )));
    }
    let mut calls = 0;
    for c in callers {
        calls += c.await.map_err(|e| e.to_string())??;
    }
    // Let the last events arrive, then stop listening.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    for a in agent_tasks {
        a.await.map_err(|e| e.to_string())??;
    }
    drop(server);
    let mut r = std::mem::take(&mut *results.lock().unwrap());
    r.delivery.sort_unstable();
    r.end_to_end.sort_unstable();
    r.pipeline.sort_unstable();
    println!(
        "{calls} calls ({concurrent_calls} at a time, a step every {} ms) over {seconds} s; {} events delivered ({:.0} per agent), {} snapshots",
        step.as_millis(),
        r.events,
        r.events as f64 / agents as f64,
        r.snapshots
    );
    println!(
        "delivery (server emit → agent socket): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&r.delivery, 0.5)),
        ms(percentile(&r.delivery, 0.99)),
        ms(percentile(&r.delivery, 1.0))
    );
    println!(
        "end to end (Twilio request sent → 'started' at the agent): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&r.end_to_end, 0.5)),
        ms(percentile(&r.end_to_end, 0.99)),
        ms(percentile(&r.end_to_end, 1.0))
    );
    println!(
        "inside the server (call answered → event emitted): p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&r.pipeline, 0.5)),
        ms(percentile(&r.pipeline, 0.99))
    );
    println!(
        "target: p99 < 50 ms with {agents} agents and {concurrent_calls} concurrent calls (2 cores, clients included)"
    );
    store.close().await;
    let expected_started = calls * agents;
    if (r.end_to_end.len() as u64) < expected_started {
        return Err(format!(
            "agents saw {} 'started' events, expected at least {expected_started}",
            r.end_to_end.len()
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    support::main_with_limit("agent_feed", Duration::from_secs(300), run()).await
}
