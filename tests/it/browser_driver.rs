//! The headless-Chromium driver in `support/browser.rs`, against a tiny page served here: it
//! navigates, types and clicks through `eval`, waits for a card a timer adds, sees an HttpOnly
//! cookie travel with a later request, reports JavaScript errors and timeouts, and saves a PNG.

use crate::support::browser;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::Html;
use axum::routing::{get, post};
use browser::Browser;

const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>browser driver test</title></head>
<body>
<h1>Browser driver</h1>
<form id="form"><input id="text" name="text"><button id="add" type="submit">Add</button></form>
<div id="cards"></div>
<script>
document.getElementById('form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = document.getElementById('text').value;
  // Log in first, so the cookie is set by the time the card shows.
  fetch('/login', { method: 'POST' }).then(() => setTimeout(() => {
    const card = document.createElement('div');
    card.className = 'card';
    card.textContent = text;
    document.getElementById('cards').appendChild(card);
  }, 300));
});
</script>
</body>
</html>
"#;

async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/login", post(|| async { ([(header::SET_COOKIE, "session=abc; HttpOnly; Path=/")], "logged in") }))
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// `unwrap` with the message printed as is (Chromium's stderr spans lines).
fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn drives_a_page_in_headless_chromium() {
    let base = serve().await;
    let started = Instant::now();
    let browser = ok(Browser::launch().await);
    ok(browser.goto(&format!("{base}/")).await);
    assert_eq!(ok(browser.eval("document.title").await), "browser driver test");

    let cards_right_after_click = ok(browser
        .eval(
            "document.getElementById('text').value = 'Order #1001 — Ada';
             document.getElementById('add').click();
             document.querySelectorAll('.card').length",
        )
        .await);
    assert_eq!(cards_right_after_click, 0, "the card comes from a 300 ms timer");
    let card = ok(browser.wait_for("document.querySelector('.card')?.textContent", Duration::from_secs(10)).await);
    assert_eq!(card, "Order #1001 — Ada");

    // The session cookie is HttpOnly: invisible to scripts, but sent with the next request.
    assert_eq!(ok(browser.eval("document.cookie").await), "");
    assert_eq!(ok(browser.eval("fetch('/whoami').then(r => r.text())").await), "session=abc");

    // Errors carry what is needed to understand them.
    let thrown = browser.eval("null.nope").await.unwrap_err();
    assert!(thrown.contains("TypeError") && thrown.contains("nope"), "{thrown}");
    let rejected = browser.eval("Promise.reject(new Error('no such order'))").await.unwrap_err();
    assert!(rejected.contains("no such order"), "{rejected}");
    let timed_out =
        browser.wait_for("document.querySelector('.missing')", Duration::from_millis(200)).await.unwrap_err();
    assert!(timed_out.contains("last value: null"), "{timed_out}");
    assert!(timed_out.contains("Order #1001 — Ada"), "the error shows the page text: {timed_out}");

    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-driver.png");
    let _ = std::fs::remove_file(&png);
    ok(browser.screenshot(&png).await);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
    // IHDR: width and height, big-endian, right after the signature and the chunk header.
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1280, 900), "the screenshot is the 1280×900 viewport");
    eprintln!("browser test took {:?} from launch; screenshot at {}", started.elapsed(), png.display());
}

#[tokio::test]
async fn a_missing_chromium_is_a_clear_error() {
    let missing = Path::new("/nonexistent/chromium");
    let error = Browser::launch_binary(missing).await.err().expect("launching a missing binary fails");
    assert!(error.contains("Chromium not found at /nonexistent/chromium"), "{error}");
    assert!(error.contains("apt-get install -y chromium"), "{error}");
}
