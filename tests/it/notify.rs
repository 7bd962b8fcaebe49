//! Signed outbound notifications (ORDERLINE_NOTIFY_URL), both backends: a transferred call is
//! POSTed to the receiver as JSON signed with HMAC-SHA256; a receiver that fails is retried with
//! backoff until it answers, and after the last attempt the notification is kept as dead.

use orderline::config::{Secret, Settings, VerifyPolicy};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::Backend;
use crate::common::line::line;

const DANA: &str = "+15551234567";
pub(crate) const SECRET: &str = "notify-test-secret";

/// (signature header, delivery header, body) of a request.
pub(crate) type Request = (String, String, Vec<u8>);

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    /// Each request, in order.
    pub(crate) seen: Arc<Mutex<Vec<Request>>>,
    /// How many requests are answered 500 before the receiver starts taking them.
    failures: Arc<Mutex<usize>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    receiver.seen.lock().unwrap().push((
        header("x-orderline-signature"),
        header("x-orderline-delivery"),
        body.to_vec(),
    ));
    let mut failures = receiver.failures.lock().unwrap();
    if *failures > 0 {
        *failures -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

pub(crate) async fn start_receiver(failures: usize) -> (String, Receiver) {
    let receiver = Receiver { failures: Arc::new(Mutex::new(failures)), ..Receiver::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/orderline", listener.local_addr().unwrap());
    let app = Router::new().route("/hooks/orderline", post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

/// What the receiver computes to check a notification: the hex HMAC-SHA256 of the body.
pub(crate) fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

pub(crate) async fn wait_for_requests(receiver: &Receiver, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.seen.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "{} requests after 30 s", receiver.seen.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_transferred_call_reaches_the_receiver_signed_after_two_failures(backend: Backend) {
    let (url, receiver) = start_receiver(2).await;
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.notify_url = Some(url.to_string());
        s.agents.notify_secret = Some(Secret::new(SECRET));
    })
    .await;
    let t = line.call(DANA, &["2", "0"]).await;
    assert!(t.last().find("Enqueue").is_some(), "put through");
    wait_for_requests(&receiver, 3).await;

    let seen = receiver.seen.lock().unwrap().clone();
    for (signature, delivery, body) in &seen {
        assert_eq!(signature, &expected_signature(body), "every attempt is signed over its body");
        assert_eq!(delivery, &format!("{}:transferred", t.call_sid), "an idempotency key per call and kind");
    }
    let document: Value = serde_json::from_slice(&seen[2].2).unwrap();
    let latest = line.latest_order("Dana");
    assert_eq!(document["type"], "transferred");
    assert_eq!(document["call_sid"], t.call_sid);
    assert_eq!(document["caller"], DANA);
    assert_eq!(document["customer"]["first_name"], "Dana");
    assert_eq!(document["latest_order"]["name"], latest.name);
    assert_eq!(
        (document["verification"].as_str(), document["transfer"].as_str()),
        (Some("not_required"), Some("asked"))
    );
    let summary: Vec<&str> = document["summary"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(summary.contains(&"Asked for: other orders, then a person"), "{summary:?}");
    assert_eq!(document["links"]["call"], format!("{}/api/calls/{}", line.app.url, t.call_sid));
    // A forged body would not match: the receiver can tell.
    assert_ne!(expected_signature(b"{\"type\":\"transferred\"}"), seen[2].0);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = line.app.store().notification_state(&t.call_sid, "transferred").await.unwrap();
        if state.as_ref().is_some_and(|s| s.delivered_at.is_some()) {
            assert_eq!(state.unwrap().attempts, 3, "two failures, then delivered");
            break;
        }
        assert!(Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.seen.lock().unwrap().len(), 3, "nothing sent again once delivered");
    line.app.stop().await;
}

async fn a_receiver_that_keeps_failing_leaves_a_dead_notification_with_its_error(backend: Backend) {
    let (url, receiver) = start_receiver(usize::MAX).await;
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.notify_url = Some(url.clone());
        s.agents.notify_secret = Some(Secret::new(SECRET));
        s.agents.notify_max_attempts = 2;
    })
    .await;
    let t = line.call(DANA, &["0"]).await;
    wait_for_requests(&receiver, 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let state = line.app.store().notification_state(&t.call_sid, "transferred").await.unwrap();
        if state.as_ref().is_some_and(|s| s.dead_at.is_some()) {
            break state.unwrap();
        }
        assert!(Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((state.attempts, state.delivered_at), (2, None));
    assert_eq!(state.last_error.as_deref(), Some("the receiver answered 500"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.seen.lock().unwrap().len(), 2, "a dead notification is not sent again");
    line.app.stop().await;
}

async fn calls_that_are_not_transferred_send_nothing(backend: Backend) {
    let (url, receiver) = start_receiver(0).await;
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.notify_url = Some(url.to_string());
        s.agents.notify_secret = Some(Secret::new(SECRET));
    })
    .await;
    let t = line.call(DANA, &["2"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.seen.lock().unwrap().is_empty());
    assert_eq!(line.app.store().notification_state(&t.call_sid, "transferred").await.unwrap(), None);
    line.app.stop().await;
}

#[test]
fn a_notify_url_without_a_secret_stops_the_start() {
    let mut settings = Settings::default();
    settings.agents.notify_url = Some("https://hooks.example.com/x".into());
    let err = settings.clone().validated().unwrap_err();
    assert!(err.to_string().contains("ORDERLINE_NOTIFY_SECRET"), "{err}");
    settings.agents.notify_url = Some("ftp://x".into());
    settings.agents.notify_secret = Some(Secret::new("s"));
    let err = settings.validated().unwrap_err();
    assert!(err.to_string().contains("ORDERLINE_NOTIFY_URL"), "{err}");
}

on_both_backends!(
    a_transferred_call_reaches_the_receiver_signed_after_two_failures,
    a_receiver_that_keeps_failing_leaves_a_dead_notification_with_its_error,
    calls_that_are_not_transferred_send_nothing,
);
