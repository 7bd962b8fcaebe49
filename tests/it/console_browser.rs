//! The agent console in headless Chromium: an agent logs in, a caller dials in with
//! `orderline call` (keys typed one at a time), and the call's card appears and updates as it
//! happens (name, order, keys, transfer), without the page reloading. A screenshot is saved
//! under target/.

use crate::support::browser;
use orderline::config::{Secret, VerifyPolicy};

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::Backend;
use crate::common::line::{TOKEN, line};
use browser::Browser;

const AGENT: &str = "agent-secret";
const WAIT: Duration = Duration::from_secs(15);

/// JavaScript: the card of the (only) call from Dana, or null.
const DANA_CARD: &str =
    "[...document.querySelectorAll('.card')].find(c => c.querySelector('.name')?.textContent === 'Dana Whitfield')";

fn keys_shown(keys: &str) -> String {
    format!(
        "(() => {{ const c = {DANA_CARD}; return c && [...c.querySelectorAll('kbd')].map(k => k.textContent).join(',') === '{keys}'; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_the_call_appear_and_update_live() {
    let line = line(Backend::Postgres, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.agents.agent_token = Some(Secret::new(AGENT));
    })
    .await;
    let browser = Browser::launch().await.expect("headless Chromium (apt-get install -y chromium)");

    // Log in through the form; the page then opens its feed.
    browser.goto(&format!("{}/agent", line.app.url)).await.unwrap();
    browser
        .eval(&format!(
            "document.getElementById('token').value = '{AGENT}'; document.querySelector('form').submit(); true"
        ))
        .await
        .unwrap();
    browser.wait_for("document.getElementById('status')?.textContent === 'live'", WAIT).await.unwrap();
    browser.eval("window.__sameDocument = true").await.unwrap();
    let cookie_visible = browser.eval("document.cookie.includes('orderline_agent')").await.unwrap();
    assert_eq!(cookie_visible, serde_json::json!(false), "the session cookie is HttpOnly");

    // A caller dials in with the caller simulator, typing keys as the prompts come.
    let mut call = Command::new(env!("CARGO_BIN_EXE_orderline"))
        .args(["call", "+15551234567", "--url", &line.app.url, "--token", TOKEN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut keys = call.stdin.take().unwrap();
    let latest = line.latest_order("Dana");

    browser.wait_for(&format!("!!{DANA_CARD}"), WAIT).await.unwrap();
    let text = browser.eval(&format!("{DANA_CARD}.innerText")).await.unwrap();
    let text = text.as_str().unwrap();
    assert!(text.contains(&latest.name) && text.contains("shipped"), "{text}");
    assert!(text.contains("+1•••••4567") && !text.contains("+15551234567"), "masked until opened: {text}");
    assert!(text.contains("verified: not required") && text.contains("data: store"), "{text}");

    writeln!(keys, "1").unwrap();
    browser.wait_for(&keys_shown("1"), WAIT).await.unwrap();
    writeln!(keys, "2").unwrap();
    browser.wait_for(&keys_shown("1,2"), WAIT).await.unwrap();
    let live_shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent-console-live.png");
    browser.screenshot(&live_shot).await.unwrap();
    writeln!(keys, "0").unwrap();
    browser.wait_for(&format!("{DANA_CARD}?.classList.contains('transferred')"), WAIT).await.unwrap();
    drop(keys);
    let output = call.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && printed.contains("→ enqueue support"), "{printed}");

    // Opening the card shows the number and the Shopify admin links.
    browser.eval(&format!("{DANA_CARD}.click(); true")).await.unwrap();
    browser.wait_for(&format!("{DANA_CARD}?.classList.contains('open')"), WAIT).await.unwrap();
    let opened = browser.eval(&format!("{DANA_CARD}.innerText")).await.unwrap();
    let opened = opened.as_str().unwrap();
    assert!(opened.contains("+15551234567") && opened.contains("Customer in Shopify admin"), "{opened}");
    // The call in plain words, above the keys and the raw path.
    assert!(opened.contains("Asked for: the status again, then other orders, then a person"), "{opened}");
    assert!(opened.contains("Put through: asked for a person"), "{opened}");
    assert_eq!(
        browser.eval("window.__sameDocument === true").await.unwrap(),
        serde_json::json!(true),
        "never reloaded"
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent-console.png");
    browser.screenshot(&shot).await.unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    line.app.stop().await;
}
