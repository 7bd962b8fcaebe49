//! Headless Chromium for integration tests, driven over the Chrome DevTools Protocol by the
//! maintained `chromiumoxide` crate (checked with Debian's Chromium): starts the browser with a
//! throwaway profile, opens one page and drives it (navigate, evaluate JavaScript, wait for a
//! condition, take a screenshot). The tests speak to this small API, not to the crate.
//!
//! A missing Chromium is an error (`apt-get install -y chromium`, or set `CHROMIUM` to the
//! binary), never a skip. Deadlines use real time: don't drive a browser from a test with paused
//! tokio time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser as Chromium, BrowserConfig, HeadlessMode};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;
use serde_json::{Value, json};

pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// Headless Chromium with one page. Dropping it kills the browser (the crate kills its child on
/// drop) and removes the profile.
pub struct Browser {
    page: Page,
    chromium: Chromium,
    /// Runs the DevTools connection; ends with it.
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

impl Browser {
    /// Starts `$CHROMIUM` (default `/usr/bin/chromium`) headless and opens a page.
    pub async fn launch() -> Result<Browser, String> {
        let binary = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| DEFAULT_CHROMIUM.into());
        Browser::launch_binary(&binary).await
    }

    /// Like [`Browser::launch`], with an explicit binary.
    pub async fn launch_binary(binary: &Path) -> Result<Browser, String> {
        if !binary.exists() {
            return Err(format!(
                "Chromium not found at {}: install it (apt-get install -y chromium) or set CHROMIUM",
                binary.display()
            ));
        }
        let profile = tempfile::Builder::new()
            .prefix("orderline-chromium-")
            .tempdir()
            .map_err(|e| format!("cannot create a Chromium profile directory: {e}"))?;
        let config = BrowserConfig::builder()
            .chrome_executable(binary)
            .headless_mode(HeadlessMode::New)
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(WIDTH, HEIGHT)
            .viewport(None)
            .launch_timeout(LAUNCH_TIMEOUT)
            .request_timeout(COMMAND_TIMEOUT)
            .args([
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--mute-audio",
                // The console plays voicemail on a click; tests start it from script.
                "--autoplay-policy=no-user-gesture-required",
                "--hide-scrollbars",
            ])
            .build()?;
        let (chromium, mut events) = Chromium::launch(config)
            .await
            .map_err(|e| format!("cannot start Chromium at {}: {e}", binary.display()))?;
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = chromium.new_page("about:blank").await.map_err(|e| format!("cannot open a page: {e}"))?;
        let metrics = SetDeviceMetricsOverrideParams::new(i64::from(WIDTH), i64::from(HEIGHT), 1.0, false);
        page.execute(metrics).await.map_err(|e| format!("Emulation.setDeviceMetricsOverride: {e}"))?;
        // A background tab's timers are throttled.
        page.bring_to_front().await.map_err(|e| format!("Page.bringToFront: {e}"))?;
        Ok(Browser { page, chromium, handler, _profile: profile })
    }

    /// Navigates the page and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.page.goto(url).await.map(|_| ()).map_err(|e| format!("navigating to {url}: {e}"))
    }

    /// Evaluates `js` in the page (awaiting a returned promise) and returns its value as JSON;
    /// `undefined` (and values JSON cannot carry, like NaN) come back as `null`.
    /// A thrown exception or a rejected promise is an `Err` with its message.
    pub async fn eval(&self, js: &str) -> Result<Value, String> {
        let params = EvaluateParams::builder()
            .expression(js)
            .return_by_value(true)
            .await_promise(true)
            .user_gesture(true)
            .build()
            .map_err(|e| format!("Runtime.evaluate: {e}"))?;
        match self.page.evaluate_expression(params).await {
            Ok(result) => Ok(match result.value() {
                Some(value) => value.clone(),
                None => match result.object().unserializable_value.as_ref().map(|v| v.as_ref()) {
                    Some("-0") => json!(0),
                    Some(big) if big.ends_with('n') => {
                        big[..big.len() - 1].parse::<i64>().map_or_else(|_| json!(big), |n| json!(n))
                    }
                    _ => Value::Null,
                },
            }),
            Err(CdpError::JavascriptException(details)) => {
                let exception = details.exception.as_ref();
                let message = exception
                    .and_then(|e| e.description.clone())
                    .or_else(|| {
                        exception
                            .and_then(|e| e.value.as_ref())
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    })
                    .unwrap_or_else(|| details.text.clone());
                Err(format!("JavaScript exception: {message}"))
            }
            Err(e) => Err(format!("Runtime.evaluate: {e}")),
        }
    }

    /// Evaluates `js_condition` every 50 ms until its value is truthy, and returns that value.
    /// Exceptions count as "not yet". On timeout the error carries the last value (or exception)
    /// and the start of the page's text.
    pub async fn wait_for(&self, js_condition: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.eval(js_condition).await {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => value.to_string(),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                let text = match self.eval("document.body ? document.body.innerText : '(no body)'").await {
                    Ok(Value::String(text)) => text,
                    Ok(other) => other.to_string(),
                    Err(error) => format!("(could not read it: {error})"),
                };
                let text: String = text.chars().take(2000).collect();
                return Err(format!(
                    "timed out after {timeout:?} waiting for `{js_condition}`; last value: {last}; page text:\n{text}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Saves a PNG screenshot of the viewport to `path`, creating its parent directories.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        let png = self.page.screenshot(params).await.map_err(|e| format!("Page.captureScreenshot: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, png).await.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// JavaScript truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
