//! A minimal Chrome DevTools Protocol client for integration tests: starts headless Chromium,
//! attaches to one page and drives it (navigate, evaluate JavaScript, wait for a condition,
//! take a screenshot).
//!
//! Include it from a test with `#[path = "support/browser.rs"] mod browser;`. A missing Chromium
//! is an error (`apt-get install -y chromium`, or set `CHROMIUM` to the binary), never a skip.
//!
//! One reader task owns the WebSocket's read half: replies are dispatched by `id` to the oneshot
//! sender of the command that is waiting for them, events go to a broadcast channel.
//!
//! Deadlines use real time: don't drive a browser from a test with paused tokio time.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const STDERR_TAIL_LINES: usize = 40;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;
type Reply = Result<Value, String>;

/// Commands waiting for their reply; `closed` is set (with the reason) once the connection is gone.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    closed: Option<String>,
}

/// The chromium process and its profile directory: killed, reaped, then the directory removed.
struct Process {
    child: Child,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    _profile: tempfile::TempDir,
}

impl Process {
    fn stderr_tail(&self) -> String {
        self.stderr_tail.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium attached to one page target. Dropping it kills the browser.
pub struct Browser {
    session: String,
    next_id: AtomicU64,
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    pending: Arc<Mutex<Pending>>,
    /// Weak so that the channel closes when the reader task (the only sender) ends.
    events: broadcast::WeakSender<Value>,
    reader: tokio::task::JoinHandle<()>,
    // Declared last: dropped after the connection.
    process: Process,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Browser {
    /// Starts `$CHROMIUM` (default `/usr/bin/chromium`) headless and attaches to a page.
    pub async fn launch() -> Result<Browser, String> {
        let binary = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| DEFAULT_CHROMIUM.into());
        Browser::launch_binary(&binary).await
    }

    /// Like [`Browser::launch`], with an explicit binary.
    pub async fn launch_binary(binary: &Path) -> Result<Browser, String> {
        let profile = tempfile::Builder::new()
            .prefix("orderline-chromium-")
            .tempdir()
            .map_err(|e| format!("cannot create a Chromium profile directory: {e}"))?;
        let mut command = Command::new(binary);
        command
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1280,900",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
                "--mute-audio",
                // The console plays voicemail on a click; tests start it from script.
                "--autoplay-policy=no-user-gesture-required",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "Chromium not found at {}: install it (`apt-get install -y chromium`) or set CHROMIUM to its path",
                binary.display()
            ),
            _ => format!("cannot start Chromium ({}): {e}", binary.display()),
        })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut process = Process { child, stderr_tail: stderr_tail.clone(), _profile: profile };

        // Chromium must keep being able to write to stderr: this thread drains it until it closes,
        // keeping the last lines for error messages.
        let (url_tx, url_rx) = oneshot::channel::<String>();
        std::thread::Builder::new()
            .name("chromium-stderr".into())
            .spawn(move || {
                let mut url_tx = Some(url_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.split_once("DevTools listening on ").map(|(_, url)| url.trim().to_string())
                        && let Some(tx) = url_tx.take()
                    {
                        let _ = tx.send(url);
                    }
                    let mut tail = stderr_tail.lock().unwrap();
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
            .map_err(|e| format!("cannot start the Chromium stderr reader: {e}"))?;

        let ws_url = match tokio::time::timeout(LAUNCH_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                // stderr closed: Chromium is exiting. Give it a moment to be reaped for the status.
                let mut status = None;
                for _ in 0..20 {
                    status = process.child.try_wait().ok().flatten();
                    if status.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let status = status.map_or("still running".to_string(), |s| s.to_string());
                return Err(format!(
                    "Chromium ({}) closed stderr before DevTools was listening ({status}); its stderr:\n{}",
                    binary.display(),
                    process.stderr_tail()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "Chromium ({}) did not print \"DevTools listening on ws://…\" within {LAUNCH_TIMEOUT:?}; its stderr:\n{}",
                    binary.display(),
                    process.stderr_tail()
                ));
            }
        };

        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .map_err(|e| format!("cannot connect to Chromium's DevTools at {ws_url}: {e}"))?;
        let (sink, stream) = ws.split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (events, _) = broadcast::channel(1024);
        let weak_events = events.downgrade();
        let reader = tokio::spawn(read_loop(stream, pending.clone(), events));
        let mut browser = Browser {
            session: String::new(),
            next_id: AtomicU64::new(1),
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events: weak_events,
            reader,
            process,
        };

        // Use the tab Chromium opened, or open one.
        let targets = browser.send(None, "Target.getTargets", json!({})).await?;
        let existing = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string);
        let target_id = match existing {
            Some(id) => id,
            None => {
                let created = browser.send(None, "Target.createTarget", json!({ "url": "about:blank" })).await?;
                created["targetId"]
                    .as_str()
                    .ok_or_else(|| format!("Target.createTarget: no targetId in {created}"))?
                    .to_string()
            }
        };
        let attached =
            browser.send(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true })).await?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| format!("Target.attachToTarget: no sessionId in {attached}"))?
            .to_string();
        browser.call("Page.enable", json!({})).await?;
        // Headless "new" takes --window-size for the whole window, browser UI included: pin the
        // viewport itself so screenshots are 1280×900.
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await?;
        // A background tab's timers are throttled.
        browser.call("Page.bringToFront", json!({})).await?;
        Ok(browser)
    }

    /// Navigates the page and waits for its load event.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        // Subscribe before navigating so the load event cannot slip past.
        let mut events = match self.events.upgrade() {
            Some(sender) => sender.subscribe(),
            None => return Err(format!("navigating to {url}: {}", self.closed_reason().unwrap_or_default())),
        };
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(format!("navigating to {url}: {error}"));
        }
        let deadline = tokio::time::Instant::now() + LOAD_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(event)) => {
                    if event["method"] == "Page.loadEventFired" && event["sessionId"] == self.session.as_str() {
                        return Ok(());
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(format!("navigating to {url}: {}", self.closed_reason().unwrap_or_default()));
                }
                Err(_) => return Err(format!("{url} did not fire its load event within {LOAD_TIMEOUT:?}")),
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a returned promise) and returns its value as JSON;
    /// `undefined` (and values JSON cannot carry, like NaN) come back as `null`.
    /// A thrown exception or a rejected promise is an `Err` with its message.
    pub async fn eval(&self, js: &str) -> Result<Value, String> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true, "userGesture": true }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            let exception = &details["exception"];
            let message = exception["description"]
                .as_str()
                .map(str::to_string)
                .or_else(|| exception.get("value").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .or_else(|| details["text"].as_str().map(str::to_string))
                .unwrap_or_else(|| details.to_string());
            return Err(format!("JavaScript exception: {message}"));
        }
        let result = &reply["result"];
        if let Some(value) = result.get("value") {
            return Ok(value.clone());
        }
        Ok(match result["unserializableValue"].as_str() {
            Some("-0") => json!(0),
            Some(big) if big.ends_with('n') => {
                big[..big.len() - 1].parse::<i64>().map_or_else(|_| json!(big), |n| json!(n))
            }
            _ => Value::Null,
        })
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
            if let Some(reason) = self.closed_reason() {
                return Err(format!("waiting for `{js_condition}`: {reason}"));
            }
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
        let reply = self.call("Page.captureScreenshot", json!({ "format": "png" })).await?;
        let data = reply["data"].as_str().ok_or("Page.captureScreenshot: no data in the reply")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("Page.captureScreenshot: bad base64: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, png).await.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The last lines Chromium wrote to stderr, for diagnostics.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail()
    }

    /// Sends a command to the attached page and waits for its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.send(Some(&self.session), method, params).await
    }

    fn closed_reason(&self) -> Option<String> {
        self.pending.lock().unwrap().closed.clone()
    }

    async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap();
            if let Some(reason) = &pending.closed {
                return Err(format!("{method}: {reason}"));
            }
            pending.waiting.insert(id, tx);
        }
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        if let Err(e) = self.sink.lock().await.send(Message::Text(message.to_string().into())).await {
            self.pending.lock().unwrap().waiting.remove(&id);
            return Err(format!("{method}: cannot send to Chromium: {e}"));
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: {}", self.closed_reason().unwrap_or_default())),
            Err(_) => {
                self.pending.lock().unwrap().waiting.remove(&id);
                Err(format!("{method}: no reply from Chromium within {COMMAND_TIMEOUT:?}"))
            }
        }
    }
}

async fn read_loop(mut stream: SplitStream<Ws>, pending: Arc<Mutex<Pending>>, events: broadcast::Sender<Value>) {
    let reason = loop {
        let text = match stream.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => break format!("Chromium closed the DevTools connection ({frame:?})"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => break format!("the DevTools connection failed: {e}"),
            None => break "the DevTools connection ended".to_string(),
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        if let Some(id) = message["id"].as_u64() {
            let reply = match message.get("error") {
                Some(error) => Err(format!("Chromium answered with an error: {error}")),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            if let Some(tx) = pending.lock().unwrap().waiting.remove(&id) {
                let _ = tx.send(reply);
            }
        } else if message.get("method").is_some() {
            // No subscriber is fine.
            let _ = events.send(message);
        }
    };
    let mut pending = pending.lock().unwrap();
    pending.closed = Some(reason.clone());
    for (_, tx) in pending.waiting.drain() {
        let _ = tx.send(Err(reason.clone()));
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
