//! Call-back instead of waiting, end to end: orderline on 127.0.0.1:0 with real Postgres and
//! SQLite, the Shopify emulator's demo shop, the Twilio caller emulator waiting in the queue (and
//! pressing 1 at the wait document's Gather), and the Twilio REST emulator placing the call-back
//! (requesting orderline's answer URL as the customer picks up, then its status callback).

use axum::extract::FromRef;
use std::time::{Duration, Instant};

use crate::common::Backend;
use std::sync::Arc;

use crate::common::line::{Line, TOKEN, TwilioLine, line_with_twilio};
use orderline::clock::SystemClock;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::sim::twilio::rest::{Callee, RestFailure, RestSimServer, TwilioRestSim};
use orderline::sim::twilio::{CallerConfig, DEFAULT_TO, Ending, QueueScript, Transcript, Transfer, TwilioCaller};
use serde_json::Value;

const DANA: &str = "+15551234567";
const AGENT_TOKEN: &str = "agent-secret-token";
const OFFER: &str = "Or press 1 and we'll call you back instead; you keep your place in line.";
const TAKEN: &str = "Thanks. We'll call you back at the number you're calling from when it's your turn";

struct Desk {
    line: Line,
    twilio: TwilioRestSim,
    _server: RestSimServer,
}

async fn desk(backend: Backend, change: impl FnOnce(&mut Settings)) -> Desk {
    let settings = |s: &mut Settings| {
        s.agents.agent_token = Some(Secret::new(AGENT_TOKEN));
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.callback = true;
        change(s);
    };
    let TwilioLine { line, twilio, server } = line_with_twilio(backend, settings, Arc::new(SystemClock)).await;
    Desk { line, twilio, _server: server }
}

impl Desk {
    /// `from` calls, asks for a person (0) and waits in the queue, pressing 1 when offered.
    async fn queue_and_press_1(&self, from: &str) -> Transcript {
        let mut config = CallerConfig::new(&self.line.app.url, TOKEN, from);
        config.transfer = Transfer::Queue(QueueScript {
            ahead: 2,
            avg_queue_time_s: 240,
            press_1_after_s: Some(0),
            ..QueueScript::default()
        });
        TwilioCaller::new(config).call(orderline::sim::twilio::scripted(&["0"])).await.unwrap()
    }

    async fn callbacks(&self, query: &str) -> Vec<Value> {
        let url = format!("{}/api/callbacks{query}", self.line.app.url);
        let response = self.line.app.client.get(url).bearer_auth(AGENT_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn call_now(&self, call_sid: &str) -> (u16, Value) {
        let url = format!("{}/api/callbacks/{call_sid}/call", self.line.app.url);
        let body = serde_json::json!({"by": "Sam"});
        let response = self.line.app.client.post(url).bearer_auth(AGENT_TOKEN).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits (at most 10 s) until the call-back has `status`.
    async fn wait_for(&self, call_sid: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.callbacks("?all=true").await;
            if let Some(b) = all.iter().find(|b| b["call_sid"] == call_sid && b["status"] == status) {
                return b.clone();
            }
            assert!(Instant::now() < deadline, "no call-back reached {status}: {all:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn a_queued_caller_is_called_back_keeping_their_place_and_put_through(backend: Backend) {
    let d = desk(backend, |s| s.ivr.shop_name = "Orderline Demo".into()).await;
    let t = d.queue_and_press_1(DANA).await;
    let text = t.spoken().join(" | ");
    assert!(text.contains("You're number 3 in line.") && text.contains(OFFER), "{text}");
    assert!(text.contains(TAKEN), "{text}");
    assert_eq!(t.ending, Ending::Hangup, "the caller hangs up and keeps their place");

    // On the console: who, where they were in line, why they were waiting.
    let open = d.callbacks("").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let b = &open[0];
    assert_eq!(b["call_sid"], t.call_sid.as_str());
    assert_eq!((b["to"].as_str(), b["status"].as_str()), (Some(DANA), Some("requested")));
    assert_eq!(b["customer_name"], "Dana Whitfield");
    assert_eq!((b["position"].as_i64(), b["reason"].as_str()), (Some(3), Some("asked")));

    // An agent clicks: the call goes out from the number the customer called, to their number.
    let (status, placed) = d.call_now(&t.call_sid).await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!((placed["attempts"].as_i64(), placed["placed_by"].as_str()), (Some(1), Some("Sam")));
    let done = d.wait_for(&t.call_sid, "connected").await;
    assert_eq!(done["attempts"], 1);
    let calls = d.twilio.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].to.as_str(), calls[0].from.as_str()), (DANA, DEFAULT_TO));
    // The customer heard who is calling before being put through.
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.twilio.calls()[0].status != "completed" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let call = &d.twilio.calls()[0];
    assert_eq!(
        call.heard,
        [
            "Hello, this is Orderline Demo returning your call, as you asked when you called us. Connecting you with someone now."
        ]
    );
    assert_eq!(call.ended_at.as_deref(), Some("Enqueue"), "put through to the support queue");
    // A second click places nothing more.
    assert_eq!(d.call_now(&t.call_sid).await.0, 409);
    assert_eq!(d.twilio.calls().len(), 1);
    assert!(d.callbacks("").await.is_empty(), "no longer open");
    // Counted in the reports.
    d.line.flush_calls().await;
    let url = format!("{}/api/reports", d.line.app.url);
    let report: Value = d.line.app.client.get(url).bearer_auth(AGENT_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(report["totals"]["callbacks"], 1, "{report}");

    // The card says it in plain words.
    d.line.flush_calls().await;
    let state = &d.line.app.running.as_ref().unwrap().state;
    let card = orderline::agent::card::call_card(&orderline::agent::AgentDesk::from_ref(state), &t.call_sid)
        .await
        .unwrap()
        .unwrap();
    assert!(
        card.summary.iter().any(|l| l == "Asked to be called back at place 3 in line: called back and put through"),
        "{:?}",
        card.summary
    );
    let path: Vec<&str> = card.path.iter().filter(|p| p.kind == "callback").map(|p| p.detail.as_str()).collect();
    assert_eq!(path[0], "requested at place 3");
    assert!(path[1].starts_with("placed CA") && path[1].ends_with("(attempt 1)"), "{path:?}");
    assert_eq!(path[2], "answered: put through");
    d.line.app.stop().await;
}

async fn an_unanswered_call_back_is_tried_again_then_shown_failed(backend: Backend) {
    let d = desk(backend, |s| {
        s.handoff.callback_attempts = 2;
        s.handoff.callback_retry_after = Duration::from_secs(1);
    })
    .await;
    d.twilio.set_callees(&[Callee::NoAnswer, Callee::Busy]);
    let t = d.queue_and_press_1(DANA).await;
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    let retry = d.wait_for(&t.call_sid, "retry").await;
    assert_eq!(retry["last_error"], "not answered: no-answer");
    assert!(retry["next_attempt_at"].is_string());
    // The retry task places the second attempt itself; busy, and no attempts left.
    let failed = d.wait_for(&t.call_sid, "failed").await;
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["last_error"], "not answered: busy");
    assert_eq!(d.twilio.calls().len(), 2);
    assert_eq!(d.call_now(&t.call_sid).await.0, 409, "a failed call-back is not placed again");
    d.line.app.stop().await;
}

async fn a_withheld_caller_is_not_offered_a_call_back(backend: Backend) {
    let d = desk(backend, |_| {}).await;
    let mut config = CallerConfig::new(&d.line.app.url, TOKEN, "anonymous");
    config.transfer = Transfer::Queue(QueueScript { press_1_after_s: Some(0), ..QueueScript::default() });
    // No order number keyed twice: put through to the queue.
    let t = TwilioCaller::new(config).call(orderline::sim::twilio::scripted(&["timeout", "timeout"])).await.unwrap();
    let text = t.spoken().join(" | ");
    assert!(text.contains("in line") || text.contains("as soon as possible"), "queued: {text}");
    assert!(!text.contains(OFFER) && !text.contains(TAKEN), "{text}");
    assert!(d.callbacks("?all=true").await.is_empty());
    d.line.app.stop().await;
}

async fn twilio_refusing_the_call_counts_as_an_attempt_and_the_request_waits(backend: Backend) {
    let d = desk(backend, |s| s.handoff.callback_retry_after = Duration::from_secs(3600)).await;
    let t = d.queue_and_press_1(DANA).await;
    d.twilio.set_failure(RestFailure::Http(500));
    let (status, row) = d.call_now(&t.call_sid).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["status"], "retry", "{row}");
    assert!(row["last_error"].as_str().unwrap().starts_with("not placed:"), "{row}");
    // Twilio back: the agent clicks again and it goes out.
    d.twilio.set_failure(RestFailure::None);
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    d.wait_for(&t.call_sid, "connected").await;
    // A status callback for a call-back orderline never placed: refused, nothing changes.
    let url = format!("{}/twilio/callback/status?c=CA00000000000000000000000000000099", d.line.app.url);
    let params = vec![("CallSid".to_string(), "CA1".to_string()), ("CallStatus".to_string(), "busy".to_string())];
    let signature = orderline::twilio::signature::sign(TOKEN, &url, &params);
    let response = d.line.app.client.post(&url).header("X-Twilio-Signature", signature).form(&params);
    assert_eq!(response.send().await.unwrap().status(), 404);
    d.line.app.stop().await;
}

async fn with_taskrouter_the_call_back_is_placed_in_the_callers_turn_without_a_click(backend: Backend) {
    let workflow = "WW0123456789abcdef0123456789abcdef";
    let d = desk(backend, |s| s.handoff.taskrouter_workflow_sid = Some(workflow.to_string())).await;
    // A wait of about 4 minutes: the call-back waits its turn, no click needed.
    let t = d.queue_and_press_1(DANA).await;
    let waiting = &d.callbacks("").await[0];
    assert_eq!(waiting["status"], "requested");
    let at = chrono::DateTime::parse_from_rfc3339(waiting["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((200..=250).contains(&wait), "placed when the caller's turn comes: in {wait} s");
    assert!(d.twilio.calls().is_empty());
    // A caller with nobody ahead: their turn is now, and orderline places it by itself.
    let mut config = CallerConfig::new(&d.line.app.url, TOKEN, "+15550142381");
    config.transfer = Transfer::Queue(QueueScript { press_1_after_s: Some(0), ..QueueScript::default() });
    let marcus = TwilioCaller::new(config).call(orderline::sim::twilio::scripted(&["0"])).await.unwrap();
    let done = d.wait_for(&marcus.call_sid, "connected").await;
    assert_eq!(done["placed_by"], Value::Null, "nobody clicked");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.twilio.calls().first().is_none_or(|c| c.status != "completed") {
        assert!(Instant::now() < deadline, "{:?}", d.twilio.calls());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(d.twilio.calls()[0].to, "+15550142381");
    assert_eq!(d.twilio.calls()[0].ended_at.as_deref(), Some("Enqueue"), "into the workflow, for the next free agent");
    assert_eq!(d.callbacks("").await.len(), 1, "Dana still waits her turn: {:?}", t.call_sid);
    d.line.app.stop().await;
}

/// Waits (at most 5 s) until the emulator's `n` placed calls have all ended.
async fn placed_calls_ended(d: &Desk, n: usize) -> Vec<orderline::sim::twilio::rest::SimCall> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let calls = d.twilio.calls();
        if calls.len() == n && calls.iter().all(|c| c.status != "queued") {
            return calls;
        }
        assert!(Instant::now() < deadline, "{calls:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_voicemail_box_hears_a_short_message_no_agent_and_the_call_back_is_tried_again(backend: Backend) {
    let d = desk(backend, |s| {
        s.ivr.shop_name = "Orderline Demo".into();
        s.handoff.callback_attempts = 2;
        s.handoff.callback_retry_after = Duration::from_secs(1);
    })
    .await;
    d.twilio.set_callees(&[Callee::Machine, Callee::Answers]);
    let t = d.queue_and_press_1(DANA).await;
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    // The retry task places the second attempt; Dana answers it herself.
    let done = d.wait_for(&t.call_sid, "connected").await;
    assert_eq!(done["attempts"], 2);
    let calls = placed_calls_ended(&d, 2).await;
    // Placed with answering-machine detection that waits for the greeting's end.
    for call in &calls {
        assert_eq!(call.machine_detection.as_deref(), Some("DetectMessageEnd"), "{call:?}");
    }
    assert_eq!(calls[0].answered_by.as_deref(), Some("machine_end_beep"));
    assert_eq!(
        calls[0].heard,
        [
            "Hello, this is Orderline Demo returning your call, as you asked when you called us. We'll try you again shortly. Goodbye."
        ]
    );
    assert_eq!(calls[0].ended_at.as_deref(), Some("Hangup"), "no agent is put through to a machine");
    assert_eq!(calls[1].answered_by.as_deref(), Some("human"));
    assert_eq!(calls[1].ended_at.as_deref(), Some("Enqueue"), "a person is put through");

    d.line.flush_calls().await;
    let events = d.line.app.store().call_events(&t.call_sid).await.unwrap();
    let path: Vec<&str> = events.iter().filter(|e| e.kind == "callback").map(|e| e.detail.as_str()).collect();
    assert!(
        path.contains(&"answered by a machine (machine_end_beep); tried again later"),
        "the card says why the first attempt did not count: {path:?}"
    );
    assert_eq!(path.last(), Some(&"answered: put through"), "{path:?}");
    d.line.app.stop().await;
}

async fn a_voicemail_box_on_the_last_attempt_is_asked_to_call_us_and_the_call_back_fails(backend: Backend) {
    let d = desk(backend, |s| {
        s.ivr.shop_name = "Orderline Demo".into();
        s.handoff.callback_attempts = 1;
    })
    .await;
    d.twilio.set_callees(&[Callee::Machine]);
    let t = d.queue_and_press_1(DANA).await;
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    let failed = d.wait_for(&t.call_sid, "failed").await;
    assert_eq!(failed["last_error"], "answered by a machine (machine_end_beep)");
    let calls = placed_calls_ended(&d, 1).await;
    assert_eq!(
        calls[0].heard,
        [
            "Hello, this is Orderline Demo returning your call, as you asked when you called us. We couldn't reach you, so please call us again when it suits you. Goodbye."
        ]
    );
    // A fax machine hears nothing and is not put through either.
    let d2 = desk(backend, |s| s.handoff.callback_attempts = 1).await;
    d2.twilio.set_callees(&[Callee::Fax]);
    let t2 = d2.queue_and_press_1(DANA).await;
    assert_eq!(d2.call_now(&t2.call_sid).await.0, 200);
    let failed = d2.wait_for(&t2.call_sid, "failed").await;
    assert_eq!(failed["last_error"], "answered by a fax machine (fax)");
    let calls = placed_calls_ended(&d2, 1).await;
    assert!(calls[0].heard.is_empty(), "{calls:?}");
    assert_eq!(calls[0].ended_at.as_deref(), Some("Hangup"));
    d.line.app.stop().await;
    d2.line.app.stop().await;
}

async fn without_machine_detection_the_call_back_is_placed_without_it(backend: Backend) {
    let d = desk(backend, |s| s.handoff.callback_machine_detection = false).await;
    let t = d.queue_and_press_1(DANA).await;
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    d.wait_for(&t.call_sid, "connected").await;
    let calls = placed_calls_ended(&d, 1).await;
    assert_eq!((calls[0].machine_detection.as_deref(), calls[0].answered_by.as_deref()), (None, None));
    let request =
        d.twilio.requests().into_iter().find(|r| r.path.ends_with("/Calls.json")).expect("the create request");
    assert!(request.params.iter().all(|(k, _)| k != "MachineDetection"), "{:?}", request.params);
    d.line.app.stop().await;
}

/// Sofia Alvarez shops in Spanish (her Shopify locale is `es` in the emulator's demo shop).
const SOFIA: &str = "+15550199034";

async fn a_spanish_caller_is_called_back_in_spanish(backend: Backend) {
    let d = desk(backend, |s| {
        s.ivr.shop_name = "Orderline Demo".into();
        s.ivr.languages = Some("en-US,es-US".into());
        s.ivr.voices = Some("es-US=Polly.Lupe-Neural".into());
    })
    .await;
    let t = d.queue_and_press_1(SOFIA).await;
    assert!(t.spoken().join(" ").contains("Le devolveremos la llamada"), "asked in Spanish: {:?}", t.spoken());
    let waiting = &d.callbacks("").await[0];
    assert_eq!(waiting["language"], "es", "{waiting}");
    assert_eq!(waiting["language_name"], "Spanish", "the console's badge: {waiting}");
    assert_eq!(d.call_now(&t.call_sid).await.0, 200);
    d.wait_for(&t.call_sid, "connected").await;
    let calls = placed_calls_ended(&d, 1).await;
    assert_eq!(
        calls[0].heard,
        [
            "Hola, le llamamos de Orderline Demo para devolverle la llamada, como nos pidió. Le comunico con alguien de nuestro equipo."
        ]
    );
    assert!(calls[0].url.contains("lang=es"), "{}", calls[0].url);
    // An English caller on the same line is called back in English.
    let dana = d.queue_and_press_1(DANA).await;
    assert_eq!(d.call_now(&dana.call_sid).await.0, 200);
    d.wait_for(&dana.call_sid, "connected").await;
    let calls = placed_calls_ended(&d, 2).await;
    assert!(calls[1].heard[0].starts_with("Hello, this is Orderline Demo returning your call"), "{:?}", calls[1].heard);
    d.line.app.stop().await;
}

on_both_backends!(
    a_voicemail_box_hears_a_short_message_no_agent_and_the_call_back_is_tried_again,
    a_voicemail_box_on_the_last_attempt_is_asked_to_call_us_and_the_call_back_fails,
    without_machine_detection_the_call_back_is_placed_without_it,
    a_spanish_caller_is_called_back_in_spanish,
    with_taskrouter_the_call_back_is_placed_in_the_callers_turn_without_a_click,
    a_queued_caller_is_called_back_keeping_their_place_and_put_through,
    an_unanswered_call_back_is_tried_again_then_shown_failed,
    a_withheld_caller_is_not_offered_a_call_back,
    twilio_refusing_the_call_counts_as_an_attempt_and_the_request_waits,
);

/// The console in headless Chromium: the request with its place in line and its button; the
/// click places the call and the card follows it to "called back". Screenshot under target/tmp/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_call_back_request_and_its_button_places_the_call() {
    use crate::support::browser::Browser;
    const WAIT: Duration = Duration::from_secs(15);
    const CARD: &str = "document.querySelector('.card.callback')";

    let d = desk(Backend::Postgres, |_| {}).await;
    let t = d.queue_and_press_1(DANA).await;
    let browser = Browser::launch().await.expect("headless Chromium (apt-get install -y chromium)");
    browser.goto(&format!("{}/agent", d.line.app.url)).await.unwrap();
    let login = format!(
        "document.getElementById('token').value = '{AGENT_TOKEN}'; document.querySelector('form').submit(); true"
    );
    browser.eval(&login).await.unwrap();
    browser.wait_for(&format!("!!{CARD}?.querySelector('button.call-back')"), WAIT).await.unwrap();
    let text = browser.eval(&format!("{CARD}.innerText")).await.unwrap();
    let text = text.as_str().unwrap();
    assert!(text.contains("Dana Whitfield") && text.contains("place 3 in line") && text.contains("waiting"), "{text}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent-console-callback.png");
    browser.screenshot(&shot).await.unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    browser
        .eval(&format!(
            "document.getElementById('agent-name').value = 'Sam'; {CARD}.querySelector('button.call-back').click(); true"
        ))
        .await
        .unwrap();
    let done = d.wait_for(&t.call_sid, "connected").await;
    assert_eq!(done["placed_by"], "Sam");
    // Once connected it leaves the open list on the next refresh.
    browser.wait_for("document.querySelector('#callbacks .empty') !== null", WAIT).await.unwrap();
    d.line.app.stop().await;
}
