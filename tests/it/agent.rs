//! What agents see: `/api/calls/{CallSid}`, the console's login, and the live feed over a real
//! WebSocket (events in order, catch-up on connect, refused without the token, and an event
//! from one instance reaching an agent connected to another).

use std::time::Duration;

use crate::common::line::{TOKEN, line};
use crate::common::{Backend, ServerProcess, TestDb};
use futures::{SinkExt, StreamExt};
use orderline::config::{Secret, VerifyPolicy};
use orderline::sim::twilio::{CallerConfig, TwilioCaller, scripted};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const AGENT: &str = "agent-secret";
const DANA: &str = "+15551234567";

type Feed = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_feed(base: &str, token: Option<&str>) -> Result<Feed, WsError> {
    let mut request = format!("{}/agent/feed", base.replace("http://", "ws://")).into_client_request()?;
    if let Some(token) = token {
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// The next JSON message, or panics after `wait`.
async fn next(feed: &mut Feed, wait: Duration) -> Value {
    loop {
        let message = tokio::time::timeout(wait, feed.next()).await.expect("a feed message in time");
        match message.expect("the feed is open").expect("a readable message") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(p) => feed.send(Message::Pong(p)).await.unwrap(),
            _ => {}
        }
    }
}

/// Events about `call_sid` until one that includes `until` (inclusive).
async fn events_until(feed: &mut Feed, call_sid: &str, until: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = next(feed, Duration::from_secs(10)).await;
        if event["type"] == "snapshot" || event["call"]["call_sid"] != call_sid {
            continue;
        }
        let done = event["types"].as_array().unwrap().iter().any(|t| t == until);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

async fn the_call_api_gives_an_agent_the_whole_context(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::PostalCode;
        s.agents.agent_token = Some(Secret::new(AGENT));
    })
    .await;
    let t = line.call(DANA, &["11217", "2", "0"]).await;
    line.flush_calls().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/calls/{}", line.app.url, t.call_sid);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "no token, no caller");
    assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let card: Value = client.get(&url).bearer_auth(AGENT).send().await.unwrap().json().await.unwrap();
    let latest = line.latest_order("Dana");
    assert_eq!(card["call_sid"], t.call_sid);
    assert_eq!(card["customer"]["first_name"], "Dana");
    assert_eq!(card["customer"]["id"], latest.customer.as_ref().unwrap().id.0.to_string(), "IDs are strings");
    assert_eq!(card["verification"], "postal_code");
    assert_eq!(card["transfer"], "asked");
    assert_eq!(card["keys"], serde_json::json!(["2", "0"]), "the postal code is not among the keys");
    assert_eq!(card["orders"][0]["name"], latest.name);
    assert_eq!(card["orders"][0]["state"], "shipped");
    assert_eq!(card["orders"][0]["carrier"], "UPS");
    assert!(
        card["orders"][0]["admin_url"]
            .as_str()
            .unwrap()
            .starts_with("https://orderline-demo.myshopify.com/admin/orders/")
    );
    assert_eq!(card["source"], "store");
    assert_eq!(card["from_masked"], "+1•••••4567");
    assert!(card["in_progress"].as_bool().unwrap());
    let path: Vec<&str> = card["path"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert!(path.starts_with(&["lookup", "step"]), "{path:?}");
    // The same call in plain words, for one glance.
    let summary: Vec<&str> = card["summary"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(summary[0].starts_with(&format!("Heard: {} shipped (", latest.name)), "{summary:?}");
    assert!(summary[0].ends_with(") with UPS"), "{summary:?}");
    assert_eq!(
        summary[1..],
        ["Asked for: other orders, then a person", "Verified: by postal code", "Put through: asked for a person"]
    );
    assert!(summary.iter().all(|l| !l.contains("11217")), "the postal code is never shown: {summary:?}");
    let unknown = client.get(format!("{}/api/calls/CAnope", line.app.url)).bearer_auth(AGENT).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    line.app.stop().await;
}

async fn the_feed_pushes_a_calls_events_in_order_and_catches_up(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.agent_token = Some(Secret::new(AGENT));
    })
    .await;
    assert!(matches!(connect_feed(&line.app.url, None).await, Err(WsError::Http(r)) if r.status() == 401));
    assert!(matches!(connect_feed(&line.app.url, Some("wrong")).await, Err(WsError::Http(r)) if r.status() == 401));

    let mut feed = connect_feed(&line.app.url, Some(AGENT)).await.unwrap();
    assert_eq!(next(&mut feed, Duration::from_secs(5)).await["type"], "snapshot");
    let caller = line.caller(DANA);
    let t = caller.call(scripted(&["1", "0"])).await.unwrap();
    caller.status_callback(&t.call_sid, "completed", Some(31), 2).await.unwrap();
    let events = events_until(&mut feed, &t.call_sid, "ended").await;
    // Each message says what happened since the last one (`types`), the latest being `type`.
    let kinds: Vec<&str> =
        events.iter().flat_map(|e| e["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap())).collect();
    assert!(events.iter().all(|e| e["type"] == *e["types"].as_array().unwrap().last().unwrap()));
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    let position = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} in {kinds:?}"));
    assert!(position("started") < position("verified") && position("verified") < position("transferred"), "{kinds:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let last = &events.last().unwrap()["call"];
    assert_eq!((last["status"].as_str(), last["in_progress"].as_bool()), (Some("completed"), Some(false)));
    assert_eq!(last["keys"], serde_json::json!(["1", "0"]));
    assert_eq!(last["duration_s"], 31);

    // A call in progress, then an agent who (re)connects: the snapshot has it.
    let t2 = line.call(DANA, &["1"]).await;
    line.flush_calls().await;
    drop(feed);
    let mut again = connect_feed(&line.app.url, Some(AGENT)).await.unwrap();
    let snapshot = next(&mut again, Duration::from_secs(5)).await;
    assert_eq!(snapshot["type"], "snapshot");
    let calls = snapshot["calls"].as_array().unwrap();
    let live = calls.iter().find(|c| c["call_sid"] == t2.call_sid).expect("the call in progress is in the catch-up");
    assert_eq!(live["in_progress"], true);
    assert!(calls.iter().any(|c| c["call_sid"] == t.call_sid && c["in_progress"] == false), "and the ended one");
    line.app.stop().await;
}

async fn the_console_needs_a_login_and_sets_an_http_only_cookie(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(format!("{}/agent", line.app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains(r#"name="token""#) && !body.contains("/agent/console.js"), "the login form, nothing else");
    let post = |token: &'static str| {
        client.post(format!("{}/agent/login", line.app.url)).header("Origin", &line.app.url).form(&[("token", token)])
    };
    let wrong = post("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = post(AGENT).send().await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(AGENT), "the cookie is not the token itself");
    let session = cookie.split(';').next().unwrap().to_string();
    let console = client.get(format!("{}/agent", line.app.url)).header("Cookie", &session).send().await.unwrap();
    assert!(console.text().await.unwrap().contains("/agent/console.js"));
    // The cookie opens the API and the feed too.
    let api = client.get(format!("{}/api/calls/CAnope", line.app.url)).header("Cookie", &session).send().await.unwrap();
    assert_eq!(api.status(), 404);
    line.app.stop().await;
}

async fn without_an_agent_token_everything_is_locked(backend: Backend) {
    let line = line(backend, |_| {}).await;
    for path in ["/agent", "/api/calls/CA1", "/api/customers?phone=%2B15551234567"] {
        let response = reqwest::get(format!("{}{path}", line.app.url)).await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert!(response.text().await.unwrap().contains("set ORDERLINE_AGENT_TOKEN"), "{path}");
    }
    assert!(matches!(connect_feed(&line.app.url, Some(AGENT)).await, Err(WsError::Http(r)) if r.status() == 401));
    line.app.stop().await;
}

on_both_backends!(
    the_call_api_gives_an_agent_the_whole_context,
    the_feed_pushes_a_calls_events_in_order_and_catches_up,
    the_console_needs_a_login_and_sets_an_http_only_cookie,
    without_an_agent_token_everything_is_locked,
);

/// Two `serve` processes on one Postgres: a call answered by A reaches an agent connected to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_one_instance_reaches_an_agent_on_another() {
    let db = TestDb::new(Backend::Postgres).await;
    let envs = [("ORDERLINE_AGENT_TOKEN", AGENT), ("ORDERLINE_VERIFY", "none")];
    let a = ServerProcess::spawn_with(&db.url, &envs, std::process::Stdio::null()).await;
    let b = ServerProcess::spawn_with(&db.url, &envs, std::process::Stdio::null()).await;
    let mut feed = connect_feed(&b.url, Some(AGENT)).await.unwrap();
    assert_eq!(next(&mut feed, Duration::from_secs(5)).await["type"], "snapshot");
    let caller = TwilioCaller::new(CallerConfig::new(&a.url, TOKEN, "+15550100999"));
    let t = caller.call(scripted(&["timeout"])).await.unwrap();
    let events = events_until(&mut feed, &t.call_sid, "started").await;
    assert_eq!(events[0]["call"]["from"], "+15550100999");
    drop((a, b));
}
