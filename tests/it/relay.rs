//! ConversationRelay mode end to end (both backends): orderline on 127.0.0.1:0 with
//! ORDERLINE_PROMPT_MODE=conversation_relay, the demo shop in its store, and Twilio played by the
//! relay emulator over a real WebSocket: the `<Connect action><ConversationRelay>` answer with the
//! first step's words as welcome greeting (names spoken as words), what the caller says
//! understood as in TwiML mode, keys as DTMF, `end` with `handoffData` and the `<Connect action>`
//! that puts the caller through. Raw clients check the protocol's edges: an unsigned handshake,
//! messages orderline does not know, a mumble, a 2,000-character utterance, silence, a `prompt`
//! after `end`, invalid JSON, and an action request without HandoffData.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common;
use crate::common::Backend;
use crate::common::line::{Line, TOKEN, line};
use futures::{SinkExt, StreamExt};
use orderline::config::{PromptMode, Settings, VerifyPolicy};
use orderline::sim::relay::{
    CallerTurn, Dialled, RelayCaller, RelayTranscript, handshake_signature, scripted_relay, send, setup,
};
use orderline::sim::twilio::{CallError, CallerConfig, Ending, TwilioCaller, random_call_sid};
use orderline::twilio::relay::protocol::{FromTwilio, ToTwilio};
use tokio_tungstenite::tungstenite::Message;

const DANA: &str = "+15551234567";
const STRANGER: &str = "+15550199999";
pub(crate) fn relay(s: &mut Settings) {
    s.ivr.prompt_mode = PromptMode::ConversationRelay;
}
/// Twilio's speech is taken to be instant here: a question's time to answer is its Gather timeout.
pub(crate) fn fast(s: &mut Settings) {
    s.ivr.relay_words_per_minute = 1000000;
}
const AGENT: &str = "tel:+14155550100";

fn relay_caller(line: &Line, from: &str) -> RelayCaller {
    RelayCaller::new(TwilioCaller::new(CallerConfig::new(&line.app.url, TOKEN, from)))
}

pub(crate) async fn relay_call(line: &Line, from: &str, script: &[&str]) -> RelayTranscript {
    relay_caller(line, from).call(&mut scripted_relay(script), |_| {}).await.expect("the call went through")
}

fn spoken_digits(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).map(String::from).collect::<Vec<_>>().join(" ")
}

async fn events(line: &Line, call_sid: &str) -> Vec<(i32, String, String)> {
    line.flush_calls().await;
    let events = line.app.store().call_events(call_sid).await.unwrap();
    events.into_iter().map(|e| (e.step, e.kind, e.detail)).collect()
}

async fn a_known_caller_is_greeted_by_name_and_hears_their_order_when_asking_for_their_package(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let latest = spoken_digits(&line.latest_order("Dana").name);
    let t = relay_call(&line, DANA, &["say:where is my package"]).await;

    // The answer: a session with the first step's words as its greeting, then the action.
    let doc = t.dialled.connect.document.as_ref().unwrap();
    assert_eq!(doc.verbs.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["Connect"]);
    let connect = doc.find("Connect").unwrap();
    assert_eq!(connect.attr("action"), Some(format!("{}/twilio/relay/end", line.app.url).as_str()));
    assert_eq!(connect.attr("method"), Some("POST"));
    let relay = &t.dialled.relay;
    assert_eq!(relay.attr("url"), Some(format!("{}/twilio/relay", line.app.url.replace("http://", "ws://")).as_str()));
    assert_eq!((relay.attr("dtmfDetection"), relay.attr("interruptible")), (Some("true"), Some("any")));
    assert_eq!(relay.attr("language"), Some("en-US"));
    assert_eq!((relay.attr("ttsProvider"), relay.attr("voice")), (Some("Amazon"), Some("Joanna")));
    assert!(relay.attr("hints").is_some_and(|h| h.contains("where is my order") && h.contains("agent")));
    assert_eq!(t.dialled.parameters.get("from").map(String::as_str), Some(DANA));
    assert!(t.dialled.parameters.contains_key("token"));
    let greeting = &t.dialled.greeting;
    assert!(greeting.starts_with("Hi Dana, thanks for calling "), "the name, as words: {greeting}");
    assert!(greeting.contains(&format!("Your order number {latest}")), "{greeting}");
    assert!(greeting.contains("Press 0 to speak with someone."), "{greeting}");
    assert!(greeting.contains("You can say what you need"), "{greeting}");

    // Asked where the package is: the order again, as text.
    assert_eq!(t.heard[0], *greeting, "the greeting is heard first");
    assert_eq!(t.said, [CallerTurn::Say("where is my package".into())]);
    assert_eq!(t.heard.len(), 2, "{:?}", t.heard);
    assert!(t.heard[1].starts_with(&format!("Your order number {latest}")), "{}", t.heard[1]);
    assert!(!t.heard[1].contains("Hi Dana"), "greeted once: {}", t.heard[1]);

    // The caller hung up: the action is told so and hangs up.
    assert_eq!(t.handoff, None);
    assert_eq!(t.ending, Ending::Hangup);
    let events = events(&line, t.call_sid()).await;
    let speech: Vec<&str> = events.iter().filter(|e| e.1 == "speech").map(|e| e.2.as_str()).collect();
    assert_eq!(speech, ["\"where is my package\", no confidence: keys 1"]);
    let relay: Vec<&str> = events.iter().filter(|e| e.1 == "relay").map(|e| e.2.as_str()).collect();
    assert_eq!(relay, ["ended by Twilio: session completed, call completed"]);
    line.app.stop().await;
}

async fn an_unknown_caller_says_their_order_number_and_hears_that_order(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let order = line.latest_order("Dana");
    let digits: String = order.name.chars().filter(char::is_ascii_digit).collect();
    // Said as people say four-digit numbers: "ten forty-two" for 1042.
    let (high, low) = digits.split_at(digits.len() - 2);
    let words = format!("say:it's {} {}", number_words(high.parse().unwrap()), number_words(low.parse().unwrap()));
    let t = relay_call(&line, STRANGER, &[&words]).await;
    assert!(t.dialled.greeting.contains("Please enter your order number"), "{}", t.dialled.greeting);
    assert!(!t.dialled.greeting.contains("Dana"), "no name before the caller is known: {}", t.dialled.greeting);
    assert_eq!(t.heard.len(), 2, "{:?}", t.heard);
    assert!(t.heard[1].contains(&format!("Your order number {}", spoken_digits(&order.name))), "{}", t.heard[1]);
    let events = events(&line, t.call_sid()).await;
    assert!(events.iter().any(|e| e.1 == "order" && e.2.contains(&digits)), "{events:?}");
    line.app.stop().await;
}

async fn keys_work_too_one_hears_it_again_and_zero_reaches_a_person(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let latest = spoken_digits(&line.latest_order("Dana").name);
    let t = relay_call(&line, DANA, &["1", "0"]).await;
    assert_eq!(t.said, [CallerTurn::Press("1".into()), CallerTurn::Press("0".into())]);
    assert!(t.heard[1].starts_with(&format!("Your order number {latest}")), "{:?}", t.heard);
    assert!(matches!(&t.ending, Ending::Enqueue(q) if q.text.trim() == "support"), "{:?}", t.ending);
    let keys: Vec<String> =
        events(&line, t.call_sid()).await.into_iter().filter(|e| e.1 == "key").map(|e| e.2).collect();
    assert_eq!(keys, ["1", "0"]);
    line.app.stop().await;
}

async fn saying_agent_ends_the_session_and_the_connect_action_dials_the_agent(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.transfer_to = AGENT.to_string();
    })
    .await;
    let t = relay_call(&line, DANA, &["say:I want to talk to a person"]).await;
    assert_eq!(t.handoff.as_deref(), Some(r#"{"reason":"transfer","step":2}"#));
    let after = t.after.as_ref().expect("the action was requested");
    assert_eq!(after.turns[0].url, format!("{}/twilio/relay/end", line.app.url));
    assert_eq!(after.spoken(), ["Connecting you with someone now."], "the transfer's words, said by TwiML");
    let Ending::Dial(dial) = &t.ending else { panic!("dialled the agent: {:?}", t.ending) };
    assert_eq!(dial.find_number(), Some("+14155550100".to_string()));
    line.flush_calls().await;
    let call = line.app.store().call(t.call_sid()).await.unwrap().expect("recorded");
    assert_eq!((call.verification.as_deref(), call.transfer.as_deref()), (Some("not_required"), Some("asked")));
    let relay: Vec<String> =
        events(&line, t.call_sid()).await.into_iter().filter(|e| e.1 == "relay").map(|e| e.2).collect();
    assert_eq!(relay, ["ended by orderline: transfer at step 2"]);
    line.app.stop().await;
}

trait NumberOf {
    fn find_number(&self) -> Option<String>;
}

impl NumberOf for orderline::twilio::twiml::Verb {
    fn find_number(&self) -> Option<String> {
        self.children.iter().find(|c| c.name == "Number").map(|n| n.text.trim().to_string())
    }
}

async fn the_call_record_and_events_match_twiml_modes_for_the_same_call(backend: Backend) {
    let script = ["say:where is my package", "say:agent"];
    let twiml = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let by_twiml = twiml.call(DANA, &script).await;
    let twiml_events = events(&twiml, &by_twiml.call_sid).await;
    let twiml_call = twiml.app.store().call(&by_twiml.call_sid).await.unwrap().unwrap();
    twiml.app.stop().await;

    let relay = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let by_relay = relay_call(&relay, DANA, &script).await;
    assert!(matches!(by_relay.ending, Ending::Enqueue(_)), "{:?}", by_relay.ending);
    let relay_events = events(&relay, by_relay.call_sid()).await;
    let relay_call = relay.app.store().call(by_relay.call_sid()).await.unwrap().unwrap();

    // The same steps with the same kinds of events, and the relay's own end.
    let steps = |events: &[(i32, String, String)]| -> Vec<(i32, String)> {
        events.iter().filter(|e| e.1 != "relay").map(|e| (e.0, e.1.clone())).collect()
    };
    assert_eq!(steps(&relay_events), steps(&twiml_events), "relay {relay_events:?}\ntwiml {twiml_events:?}");
    let kinds: BTreeSet<&str> = relay_events.iter().map(|e| e.1.as_str()).collect();
    for kind in ["lookup", "step", "verification", "speech", "key", "transfer", "relay"] {
        assert!(kinds.contains(kind), "{kind} in {relay_events:?}");
    }
    // What was said and understood is the same, but for Twilio's confidence (none over the relay).
    let understood = |events: &[(i32, String, String)]| -> Vec<String> {
        events.iter().filter(|e| e.1 == "speech").map(|e| e.2.rsplit(": ").next().unwrap().to_string()).collect()
    };
    assert_eq!(understood(&relay_events), understood(&twiml_events));
    assert_eq!(
        (relay_call.customer_id, relay_call.verification.clone(), relay_call.transfer.clone()),
        (twiml_call.customer_id, twiml_call.verification.clone(), twiml_call.transfer.clone())
    );
    relay.app.stop().await;
}

async fn silence_is_asked_again_once_then_the_caller_reaches_a_person(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let started = std::time::Instant::now();
    let t = relay_call(&line, DANA, &["timeout", "timeout"]).await;
    assert!(t.heard[1].starts_with("Sorry, I didn't catch that."), "asked again: {:?}", t.heard);
    assert_eq!(t.heard.len(), 2, "asked again once: {:?}", t.heard);
    assert_eq!(t.handoff.as_deref(), Some(r#"{"reason":"transfer","step":3}"#));
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    // Each silence lasted the menu's Gather timeout (6 s).
    assert!(started.elapsed() >= Duration::from_secs(12), "{:?}", started.elapsed());
    line.flush_calls().await;
    let call = line.app.store().call(t.call_sid()).await.unwrap().unwrap();
    assert_eq!(call.transfer.as_deref(), Some("no_input"));
    line.app.stop().await;
}

async fn with_the_database_down_the_caller_hears_the_apology_and_reaches_a_person(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    line.app.store().close().await;
    let t = relay_call(&line, STRANGER, &["say:agent"]).await;
    // No session to open: the incoming call is answered with the fallback TwiML itself.
    assert_eq!(t.dialled.relay.name, "", "{:?}", t.dialled.connect.body);
    assert!(t.heard.is_empty());
    let after = t.after.as_ref().unwrap();
    assert!(!after.spoken().is_empty(), "the apology: {:?}", after.turns);
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

/// A session opened by hand for a call answered in ConversationRelay mode, `setup` sent.
async fn opened(line: &Line, from: &str) -> (orderline::sim::media::StreamSocket, Dialled) {
    let caller = relay_caller(line, from);
    let dialled = caller.dial().await.unwrap();
    let mut socket = caller.open(&dialled).await.unwrap();
    send(&mut socket, &setup(&dialled, caller.caller.config())).await.unwrap();
    (socket, dialled)
}

/// The next message orderline sends: a parsed message, or the close frame (code, reason).
async fn next(socket: &mut orderline::sim::media::StreamSocket) -> Result<ToTwilio, (u16, String)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next()).await.expect("orderline answers");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err((1006, "socket gone".into())),
        }
    }
}

/// The words of one talk cycle: tokens up to the one with `last`.
async fn talk_cycle(socket: &mut orderline::sim::media::StreamSocket) -> String {
    let mut words = String::new();
    loop {
        match next(socket).await {
            Ok(ToTwilio::Text { token, last, interruptible, .. }) => {
                assert_eq!(interruptible, Some(true), "the caller may speak over it");
                words.push_str(&token);
                if last {
                    return words;
                }
            }
            other => panic!("words expected: {other:?}"),
        }
    }
}

fn prompt(said: &str, last: bool) -> FromTwilio {
    FromTwilio::Prompt { voice_prompt: said.into(), lang: Some("en-US".into()), last }
}

async fn wait_for_metric(line: &Line, needle: &str) -> String {
    for _ in 0..50 {
        let (_, metrics) = line.app.get("/metrics").await;
        if metrics.contains(needle) {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle} never showed in /metrics: {}", line.app.get("/metrics").await.1);
}

async fn bad_input_is_asked_again_ignored_and_counted_never_a_crash(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (mut socket, dialled) = opened(&line, DANA).await;
    // What orderline does not know, Twilio's error reports and a partial transcript: let go.
    socket.send(Message::Text(r#"{"type":"transcription","text":"hi"}"#.into())).await.unwrap();
    send(&mut socket, &FromTwilio::Error { description: "Invalid message received: {}".into() }).await.unwrap();
    send(&mut socket, &prompt("where is", false)).await.unwrap();
    send(&mut socket, &FromTwilio::Dtmf { digit: "x".into() }).await.unwrap();
    // The caller spoke over the greeting: Twilio stopped it and says so; recorded as a barge-in.
    let interrupt = FromTwilio::Interrupt {
        utterance_until_interrupt: "Hi Dana, thanks".into(),
        duration_until_interrupt_ms: Some(460),
    };
    send(&mut socket, &interrupt).await.unwrap();
    // A 2,000-character utterance: read in part, not understood, asked again.
    let rambling = "blah ".repeat(400);
    assert_eq!(rambling.len(), 2000);
    send(&mut socket, &prompt(&rambling, true)).await.unwrap();
    let again = talk_cycle(&mut socket).await;
    assert!(again.starts_with("Sorry, I didn't catch that."), "{again}");
    // An empty utterance: no answer, asked once more (words not understood did not use up the
    // menu's one retry); a second: a person.
    send(&mut socket, &prompt("", true)).await.unwrap();
    let once_more = talk_cycle(&mut socket).await;
    assert!(once_more.starts_with("Sorry, I didn't catch that."), "{once_more}");
    send(&mut socket, &prompt("", true)).await.unwrap();
    let Ok(ToTwilio::End { handoff_data }) = next(&mut socket).await else { panic!("the session ends") };
    assert_eq!(handoff_data.as_deref(), Some(r#"{"reason":"transfer","step":5}"#));
    // Said after `end`: counted and let go.
    send(&mut socket, &prompt("hello?", true)).await.unwrap();
    let metrics = wait_for_metric(&line, "orderline_relay_messages_ignored_total{what=\"after_end\"} 1").await;
    for what in ["unknown_type", "error", "partial_prompt", "unknown_digit"] {
        let needle = format!("orderline_relay_messages_ignored_total{{what=\"{what}\"}} 1");
        assert!(metrics.contains(&needle), "{needle} in {metrics}");
    }
    drop(socket);
    wait_for_metric(&line, "orderline_relay_sessions_ended_total{end=\"transfer\"} 1").await;
    let events = events(&line, &dialled.call_sid).await;
    let speech: Vec<&str> = events.iter().filter(|e| e.1 == "speech").map(|e| e.2.as_str()).collect();
    assert_eq!(speech.len(), 3, "{speech:?}");
    assert!(speech[0].starts_with("\"blah blah") && speech[0].ends_with(": unclear"), "{}", speech[0]);
    assert!(speech[0].len() < 260, "the utterance is kept in part: {} characters", speech[0].len());
    assert_eq!(speech[1..], ["\"\", no confidence: nothing"; 2]);
    assert!(events.contains(&(2, "barge_in".to_string(), "greeting".to_string())), "{events:?}");
    line.flush_calls().await;
    let call = line.app.store().call(&dialled.call_sid).await.unwrap().unwrap();
    assert_eq!(call.transfer.as_deref(), Some("no_input"));
    line.app.stop().await;
}

async fn another_instance_answers_the_connect_action_with_the_sessions_decision(backend: Backend) {
    let settings = |s: &mut Settings| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    };
    let line = line(backend, settings).await;
    let other = orderline::app::start(common::settings_for(&line.app.db.url, settings)).await.unwrap();
    let (mut socket, dialled) = opened(&line, DANA).await;
    send(&mut socket, &prompt("a person please", true)).await.unwrap();
    let Ok(ToTwilio::End { handoff_data: Some(handoff) }) = next(&mut socket).await else { panic!("the session ends") };
    drop(socket);
    // Twilio's action request reaches the other instance: the decision is in the shared store.
    let caller = line.caller(DANA);
    let mut params = caller.base_params(&dialled.call_sid, "in-progress");
    params.push(("HandoffData".into(), handoff));
    let turn = caller.post(&format!("{}/twilio/relay/end", other.url()), &params).await.unwrap();
    let doc = turn.document.expect("TwiML");
    assert_eq!(doc.spoken(), "Connecting you with someone now.");
    assert!(doc.find("Enqueue").is_some(), "{}", turn.body);
    other.stop().await;
    line.app.stop().await;
}

async fn invalid_json_or_a_forged_setup_closes_the_session_with_the_reason(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let (mut socket, _) = opened(&line, DANA).await;
    socket.send(Message::Text("{\"type\":\"prompt\",".into())).await.unwrap();
    let (code, reason) = next(&mut socket).await.unwrap_err();
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.starts_with("malformed message"), "{reason}");
    wait_for_metric(&line, "orderline_relay_sessions_ended_total{end=\"protocol_error\"} 1").await;

    // A setup whose parameters were changed (another caller's number) opens no call.
    let caller = relay_caller(&line, DANA);
    let mut dialled = caller.dial().await.unwrap();
    dialled.parameters.insert("from".into(), "+15550000000".into());
    let mut socket = caller.open(&dialled).await.unwrap();
    send(&mut socket, &setup(&dialled, caller.caller.config())).await.unwrap();
    let (code, reason) = next(&mut socket).await.unwrap_err();
    assert_eq!((code, reason.contains("token")), (1008, true), "{reason}");
    wait_for_metric(&line, "orderline_relay_sessions_ended_total{end=\"refused\"} 1").await;
    line.app.stop().await;
}

async fn an_unsigned_or_wrongly_signed_handshake_is_refused(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let caller = relay_caller(&line, DANA);
    let dialled = caller.dial().await.unwrap();
    let mut forged = caller.clone();
    forged.signature = Some(handshake_signature(&dialled.url, "not-the-token"));
    assert!(matches!(forged.open(&dialled).await, Err(CallError::Forbidden { .. })));
    let unsigned = tokio_tungstenite::connect_async(dialled.url.as_str()).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = unsigned else {
        panic!("refused: {:?}", unsigned.map(|_| ()))
    };
    assert_eq!(response.status(), 403);
    wait_for_metric(&line, "orderline_relay_sessions_ended_total{end=\"forbidden\"} 2").await;
    line.app.stop().await;
}

async fn the_connect_action_without_handoff_data_always_answers_valid_twiml(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let caller = line.caller(DANA);
    let url = format!("{}/twilio/relay/end", line.app.url);
    let call_sid = random_call_sid();
    let with = |status: &str, extra: &[(&str, &str)]| {
        let mut params = caller.base_params(&call_sid, status);
        params.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        params
    };
    // The socket failed while the caller is still there: the apology and a person.
    let turn = caller.post(&url, &with("in-progress", &[("SessionStatus", "failed"), ("ErrorCode", "64105")])).await;
    let doc = turn.unwrap().document.expect("TwiML");
    assert!(doc.find("Enqueue").is_some() && !doc.spoken().is_empty(), "{doc:?}");
    // HandoffData that is not ours: the same.
    let turn = caller.post(&url, &with("in-progress", &[("HandoffData", "{\"reason\":\"party\"}")])).await.unwrap();
    assert!(turn.document.unwrap().find("Enqueue").is_some());
    // Ours, but its decision never saved: a person rather than silence.
    let ours = with("in-progress", &[("HandoffData", r#"{"reason":"transfer","step":4}"#)]);
    assert!(caller.post(&url, &ours).await.unwrap().document.unwrap().find("Enqueue").is_some());
    // The caller hung up: hang up.
    let turn = caller.post(&url, &with("completed", &[("SessionStatus", "completed")])).await.unwrap();
    assert_eq!(turn.document.unwrap().verbs.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["Hangup"]);
    // No CallSid at all: still TwiML, never an error status.
    let turn = caller.post(&url, &[("AccountSid".to_string(), "AC1".to_string())]).await.unwrap();
    assert_eq!(turn.status, 200);
    let events = events(&line, &call_sid).await;
    let relay: Vec<&str> = events.iter().filter(|e| e.1 == "relay").map(|e| e.2.as_str()).collect();
    assert!(relay.contains(&"ended by Twilio: session failed, call in-progress, error 64105"), "{relay:?}");
    line.app.stop().await;
}

async fn relay_mode_refuses_to_start_unless_the_session_url_is_wss_on_443(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    for public_url in ["https://line.example.com:8443", "http://line.example.com"] {
        let settings = common::settings_for(&db.url, |s| {
            relay(s);
            s.server.public_url = public_url.to_string();
        });
        let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
        assert!(err.contains("ORDERLINE_PROMPT_MODE=conversation_relay") && err.contains("wss://"), "{err}");
    }
}

/// `orderline call --relay` through the real binary: the greeting, the words said, the transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_command_speaks_conversation_relay() {
    let line = line(Backend::Sqlite, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
    })
    .await;
    let url = line.app.url.clone();
    let db_url = line.app.db.url.clone();
    let args = ["call", DANA, "--relay", "--url", &url, "--token", TOKEN, "--say", "a person please"];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        crate::common::orderline_cli(&db_url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("heard: Hi Dana, thanks for calling"), "{stdout}");
    assert!(stdout.contains("said: \"a person please\""), "{stdout}");
    assert!(stdout.contains(r#"session ended by orderline: {"reason":"transfer","step":2}"#), "{stdout}");
    assert!(stdout.contains("say: Connecting you with someone now."), "{stdout}");
    assert!(stdout.contains("→ enqueue support"), "{stdout}");
    line.app.stop().await;
}

/// 0–99 in words, as a caller says them.
fn number_words(n: u32) -> String {
    let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let teens =
        ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
    let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    match n {
        0..=9 => format!("oh {}", ones[n as usize]),
        10..=19 => teens[n as usize - 10].to_string(),
        _ if n.is_multiple_of(10) => tens[n as usize / 10].to_string(),
        _ => format!("{}-{}", tens[n as usize / 10], ones[n as usize % 10]),
    }
}

/// Sofia Alvarez shops in Spanish (her Shopify locale is `es` in the emulator's demo shop).
const SOFIA: &str = "+15550199034";
fn both(s: &mut Settings) {
    s.ivr.languages = Some("en-US,es-US".into());
    s.ivr.voices = Some("es-US=Polly.Lupe-Neural".into());
}

async fn a_spanish_customer_hears_spanish_from_the_first_word_and_is_understood_in_spanish(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
        both(s);
    })
    .await;
    let latest = spoken_digits(&line.latest_order("Sofia").name);
    let t = relay_call(&line, SOFIA, &["say:¿dónde está mi paquete?", "say:quiero hablar con un agente"]).await;
    // Twilio speaks and listens in Spanish from the greeting on, with the Spanish voice and words.
    let relay = &t.dialled.relay;
    assert_eq!(relay.attr("language"), Some("es-US"));
    assert_eq!((relay.attr("ttsProvider"), relay.attr("voice")), (Some("Amazon"), Some("Lupe-Neural")));
    assert!(relay.attr("hints").is_some_and(|h| h.contains("dónde está mi pedido") && h.contains("agente")));
    let greeting = &t.dialled.greeting;
    assert!(greeting.starts_with("Hola, Sofia. Gracias por llamar a "), "her name, in Spanish: {greeting}");
    assert!(greeting.contains(&format!("Su pedido número {latest}")), "{greeting}");
    assert!(!greeting.contains("Para español") && !greeting.contains("Your order"), "{greeting}");
    // Her words, understood in Spanish: the order again, then a person.
    assert!(t.heard[1].starts_with(&format!("Su pedido número {latest}")), "{:?}", t.heard);
    assert_eq!(t.handoff.as_deref(), Some(r#"{"reason":"transfer","step":3}"#));
    let after = t.after.as_ref().expect("the action was requested");
    assert_eq!(after.spoken(), ["Le comunico con un representante."], "the transfer's words, in Spanish");
    assert!(t.other.is_empty(), "no language change needed: {:?}", t.other);
    let speech: Vec<String> =
        events(&line, t.call_sid()).await.into_iter().filter(|e| e.1 == "speech").map(|e| e.2).collect();
    assert_eq!(speech.len(), 2, "{speech:?}");
    assert!(speech[0].ends_with("keys 1") && speech[1].ends_with("keys 0"), "{speech:?}");
    line.app.stop().await;
}

async fn an_unknown_caller_presses_9_and_twilio_switches_to_spanish(backend: Backend) {
    let line = line(backend, |s| {
        relay(s);
        fast(s);
        s.ivr.verify = VerifyPolicy::None;
        both(s);
    })
    .await;
    let order = line.latest_order("Dana");
    let digits: String = order.name.chars().filter(char::is_ascii_digit).collect();
    let t = relay_call(&line, STRANGER, &["9", &format!("{digits}#")]).await;
    assert_eq!(t.dialled.relay.attr("language"), Some("en-US"));
    // The welcome greeting has one language: the offer of Spanish follows it as a token said
    // in Spanish.
    assert!(t.dialled.greeting.starts_with("Thanks for calling"), "{}", t.dialled.greeting);
    assert!(!t.dialled.greeting.contains("Para español"), "{}", t.dialled.greeting);
    assert_eq!(t.heard[1], "Para español, oprima nueve.");
    assert_eq!(t.in_language, [("Para español, oprima nueve.".to_string(), "es-US".to_string())]);
    // 9: Twilio is told to speak and listen in Spanish, and the question is asked again in it.
    let switched =
        ToTwilio::Language { tts_language: Some("es-US".into()), transcription_language: Some("es-US".into()) };
    assert_eq!(t.other, [switched]);
    assert!(t.heard[2].contains("Por favor, marque su número de pedido"), "{:?}", t.heard);
    assert!(t.heard[3].contains(&format!("Su pedido número {}", spoken_digits(&order.name))), "{:?}", t.heard);
    line.app.stop().await;
}

on_both_backends!(
    a_spanish_customer_hears_spanish_from_the_first_word_and_is_understood_in_spanish,
    an_unknown_caller_presses_9_and_twilio_switches_to_spanish,
    a_known_caller_is_greeted_by_name_and_hears_their_order_when_asking_for_their_package,
    an_unknown_caller_says_their_order_number_and_hears_that_order,
    keys_work_too_one_hears_it_again_and_zero_reaches_a_person,
    saying_agent_ends_the_session_and_the_connect_action_dials_the_agent,
    the_call_record_and_events_match_twiml_modes_for_the_same_call,
    silence_is_asked_again_once_then_the_caller_reaches_a_person,
    bad_input_is_asked_again_ignored_and_counted_never_a_crash,
    invalid_json_or_a_forged_setup_closes_the_session_with_the_reason,
    an_unsigned_or_wrongly_signed_handshake_is_refused,
    the_connect_action_without_handoff_data_always_answers_valid_twiml,
    relay_mode_refuses_to_start_unless_the_session_url_is_wss_on_443,
    with_the_database_down_the_caller_hears_the_apology_and_reaches_a_person,
    another_instance_answers_the_connect_action_with_the_sessions_decision,
);
