//! Voicemail, end to end: orderline on 127.0.0.1:0 with real Postgres and SQLite, the Shopify
//! emulator's demo shop, the Twilio caller emulator speaking at `<Record>` (and making the
//! recording's status and transcription callbacks, signed), and the Twilio REST emulator keeping
//! the recording that the console plays through orderline.

use axum::extract::FromRef;
use std::sync::Arc;
use std::time::Duration;

use crate::common::line::{Line, TOKEN, TwilioLine, line_with_twilio};
use crate::common::{Backend, SHOP};
use chrono::{TimeZone, Utc};
use orderline::clock::{Clock, ManualClock, SystemClock};
use orderline::config::{Secret, Settings, VerifyPolicy, VoicemailOffer};
use orderline::shopify::payload::ShopifyChange;
use orderline::sim::twilio::rest::{RestSimServer, TwilioRestSim};
use orderline::sim::twilio::{CallerConfig, DialOutcome, Ending, Transcript, Transfer, TwilioCaller, scripted};
use orderline::store::Ts;
use orderline::twilio::signature;
use serde_json::Value;

const DANA: &str = "+15551234567";
const AGENT_TOKEN: &str = "agent-secret-token";
const MESSAGE: &str = "Hi it's Dana, my parcel still has not arrived, please call me back";
const LEAVE: &str = "Please leave your name and a short message after the tone";
const GOT_IT: &str = "We've got your message";
const NOTHING_HEARD: &str = "I didn't hear a message.";

/// Saturday 21 November 2026, noon UTC: closed, for a line staffed on weekdays.
fn saturday() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()))
}

struct Mailbox {
    line: Line,
    twilio: TwilioRestSim,
    _server: RestSimServer,
}

async fn mailbox(backend: Backend, clock: Arc<dyn Clock>, change: impl FnOnce(&mut Settings)) -> Mailbox {
    let settings = |s: &mut Settings| {
        s.agents.agent_token = Some(Secret::new(AGENT_TOKEN));
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.voicemail = VoicemailOffer::On;
        s.handoff.hours = "mon-fri 09:00-17:00".into();
        s.handoff.hours_timezone = "UTC".into();
        change(s);
    };
    let TwilioLine { line, twilio, server } = line_with_twilio(backend, settings, clock).await;
    Mailbox { line, twilio, _server: server }
}

impl Mailbox {
    fn caller(&self, transfer: Transfer) -> TwilioCaller {
        let mut config = CallerConfig::new(&self.line.app.url, TOKEN, DANA);
        config.transfer = transfer;
        TwilioCaller::new(config).with_rest(self.twilio.clone())
    }

    async fn call(&self, keys: &[&str]) -> Transcript {
        self.caller(Transfer::Stop).call(scripted(keys)).await.expect("the call went through")
    }

    /// A Media Streams call (the line in `media_stream` mode) keying and saying `keys`.
    async fn media_call(&self, keys: &[&str]) -> orderline::sim::media::StreamTranscript {
        let caller = orderline::sim::media::MediaCaller::new(self.caller(Transfer::Stop));
        caller.call(&mut orderline::sim::media::scripted_media(keys), |_| {}).await.expect("the call went through")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.line.app.client.get(format!("{}{path}", self.line.app.url)).bearer_auth(AGENT_TOKEN).send().await.unwrap()
    }

    async fn voicemails(&self, query: &str) -> Vec<Value> {
        let response = self.get(&format!("/api/voicemails{query}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

async fn a_closed_line_takes_a_message_that_is_transcribed_listed_and_played(backend: Backend) {
    let m = mailbox(backend, saturday(), |_| {}).await;
    let t = m.call(&["0", &format!("say:{MESSAGE}")]).await;
    let text = said(&t);
    assert!(text.contains("Press 0 to leave us a message."), "the closed menu offers it: {text}");
    assert!(text.contains("Our team is away right now; we're back Monday at 9 AM."), "{text}");
    assert!(text.contains(LEAVE), "{text}");
    assert!(text.contains(GOT_IT), "thanked: {text}");
    assert_eq!(t.ending, Ending::Hangup);
    // Twilio's recording status and transcription callbacks were taken.
    let statuses: Vec<u16> = t.callbacks.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [204, 204], "{:?}", t.callbacks);
    let recording = &m.twilio.recordings()[0];

    // Listed for agents with who called, what they heard and what they said.
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let v = &list[0];
    let dana = m.line.latest_order("Dana");
    assert_eq!(v["recording_sid"], recording.sid.as_str());
    assert_eq!(v["customer_name"], "Dana Whitfield");
    assert_eq!(v["customer_id"], dana.customer.as_ref().unwrap().id.0.to_string());
    assert_eq!(v["from"], DANA);
    assert_eq!(v["order_name"], dana.name.as_str(), "the order the caller heard about");
    assert_eq!(v["reason"], "closed");
    assert_eq!(v["verification"], "not_required");
    assert_eq!(v["duration_s"], recording.duration_s);
    assert_eq!(v["transcription"], MESSAGE);
    // The console plays it through orderline: Twilio's URL and credentials stay on the server.
    let audio_url = v["audio_url"].as_str().unwrap();
    assert!(!audio_url.contains("2010-04-01") && !audio_url.contains("http"), "{audio_url}");
    let audio = m.get(audio_url).await;
    assert_eq!(audio.status(), 200);
    assert_eq!(audio.headers()["content-type"], "audio/x-wav");
    let bytes = audio.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert!(m.twilio.requests().iter().any(|r| r.path.ends_with(&format!("/Recordings/{}.wav", recording.sid))));
    // Without the agent's login: nothing.
    let anonymous = m.line.app.client.get(format!("{}{audio_url}", m.line.app.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous = m.line.app.client.get(format!("{}/api/voicemails", m.line.app.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // The card says it in plain words.
    m.line.flush_calls().await;
    let state = &m.line.app.running.as_ref().unwrap().state;
    let card = orderline::agent::card::call_card(&orderline::agent::AgentDesk::from_ref(state), &t.call_sid)
        .await
        .unwrap()
        .unwrap();
    assert!(
        card.summary.iter().any(|l| l.starts_with("Left a voicemail (") && l.contains(MESSAGE)),
        "{:?}",
        card.summary
    );

    // Handled: who and when; gone from the open list, kept in the whole one.
    let sid = recording.sid.as_str();
    let url = format!("{}/api/voicemails/{sid}/handled", m.line.app.url);
    let handled = m.line.app.client.post(&url).bearer_auth(AGENT_TOKEN).json(&serde_json::json!({"by": "Sam"}));
    let handled: Value = handled.send().await.unwrap().json().await.unwrap();
    assert_eq!(handled["handled_by"], "Sam");
    assert!(handled["handled_at"].is_string());
    let again = m.line.app.client.post(&url).bearer_auth(AGENT_TOKEN).json(&serde_json::json!({"by": "Alex"}));
    let again: Value = again.send().await.unwrap().json().await.unwrap();
    assert_eq!(again["handled_by"], "Sam", "the first to handle it is kept");
    assert!(m.voicemails("").await.is_empty());
    assert_eq!(m.voicemails("?all=true").await.len(), 1);

    // customers/redact: the message (the caller's number and words) goes with the customer.
    let customer_id = dana.customer.unwrap().id;
    let redact = ShopifyChange::CustomerRedact { customer_id, orders_to_redact: Vec::new() };
    m.line.app.store().apply_all(SHOP, &[redact.into()], "US", Ts::from(Utc::now())).await.unwrap();
    assert!(m.voicemails("?all=true").await.is_empty(), "redacted");
    m.line.app.stop().await;
}

async fn an_unanswered_transfer_takes_a_message(backend: Backend) {
    let m = mailbox(backend, Arc::new(SystemClock), |s| {
        s.handoff.hours = "always".into();
        s.handoff.transfer_to = "tel:+14155550100".into();
    })
    .await;
    let t = m
        .caller(Transfer::Dial(DialOutcome::NoAnswer))
        .call(scripted(&["0", "say:It's Dana again about my order, call me please"]))
        .await
        .unwrap();
    let text = said(&t);
    assert!(text.contains("Sorry, nobody could answer just now."), "{text}");
    assert!(text.contains(LEAVE) && text.contains(GOT_IT), "{text}");
    assert_eq!(t.ending, Ending::Hangup);
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "unanswered");
    assert_eq!(list[0]["customer_name"], "Dana Whitfield");
    assert_eq!(list[0]["transcription"], "It's Dana again about my order, call me please");
    m.line.app.stop().await;
}

async fn silence_or_a_one_second_message_is_not_kept(backend: Backend) {
    let m = mailbox(backend, saturday(), |_| {}).await;
    // Silence: Twilio has an empty recording, skips the action and reads on.
    let t = m.call(&["0", "timeout"]).await;
    let text = said(&t);
    assert!(text.contains(LEAVE) && text.contains(NOTHING_HEARD), "{text}");
    assert!(!text.contains(GOT_IT), "{text}");
    assert_eq!(t.ending, Ending::Hangup);
    assert!(t.callbacks.is_empty());
    // A word: a one-second recording, discarded.
    let t = m.call(&["0", "say:hello"]).await;
    assert_eq!(m.twilio.recordings().last().unwrap().duration_s, 1);
    let text = said(&t);
    assert!(text.contains(NOTHING_HEARD) && !text.contains(GOT_IT), "{text}");
    assert!(m.voicemails("?all=true").await.is_empty());
    m.line.flush_calls().await;
    let events = m.line.app.store().call_events(&t.call_sid).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "voicemail" && e.detail == "none left (1 s)"), "{events:?}");
    m.line.app.stop().await;
}

/// A callback signed with the line's token, as Twilio sends it.
async fn post_signed(m: &Mailbox, path: &str, params: &[(&str, &str)]) -> u16 {
    let url = format!("{}{path}", m.line.app.url);
    let params: Vec<(String, String)> = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let signature = signature::sign(TOKEN, &url, &params);
    let response =
        m.line.app.client.post(&url).header("X-Twilio-Signature", signature).form(&params).send().await.unwrap();
    response.status().as_u16()
}

async fn callbacks_for_unknown_calls_or_recordings_are_refused_and_store_nothing(backend: Backend) {
    let m = mailbox(backend, saturday(), |_| {}).await;
    let unknown_call = [
        ("CallSid", "CA00000000000000000000000000000042"),
        ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE0123456789abcdef0123456789abcdef",
        ),
        ("RecordingDuration", "12"),
        ("RecordingStatus", "completed"),
    ];
    assert_eq!(post_signed(&m, "/twilio/voicemail/recording", &unknown_call).await, 404);
    let transcription = [
        ("CallSid", "CA00000000000000000000000000000042"),
        ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
        ("TranscriptionStatus", "completed"),
        ("TranscriptionText", "hello"),
    ];
    assert_eq!(post_signed(&m, "/twilio/voicemail/transcription", &transcription).await, 404);
    let no_sid = [("CallSid", "CA00000000000000000000000000000042"), ("RecordingStatus", "completed")];
    assert_eq!(post_signed(&m, "/twilio/voicemail/recording", &no_sid).await, 400);
    let bad_status = [("RecordingSid", "RE0123456789abcdef0123456789abcdef"), ("TranscriptionStatus", "maybe")];
    assert_eq!(post_signed(&m, "/twilio/voicemail/transcription", &bad_status).await, 400);
    // Unsigned: refused before anything is read.
    let unsigned = m.line.app.client.post(format!("{}/twilio/voicemail/recording", m.line.app.url));
    assert_eq!(unsigned.form(&unknown_call).send().await.unwrap().status(), 403);
    // The Record action for a message it cannot use still answers the caller with valid TwiML.
    let action = [("CallSid", "CA00000000000000000000000000000042"), ("RecordingDuration", "oops")];
    let action: Vec<(String, String)> = action.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let url = format!("{}/twilio/voicemail/recorded", m.line.app.url);
    let turn = m.caller(Transfer::Stop).post(&url, &action).await.unwrap();
    assert_eq!(turn.status, 200);
    assert!(turn.document.unwrap().spoken().contains(NOTHING_HEARD));
    assert!(m.voicemails("?all=true").await.is_empty());
    m.line.app.stop().await;
}

async fn with_voicemail_off_nothing_is_offered(backend: Backend) {
    let m = mailbox(backend, saturday(), |s| s.handoff.voicemail = VoicemailOffer::Off).await;
    let t = m.call(&["0", "timeout", "timeout"]).await;
    let text = said(&t);
    assert!(!text.contains("leave us a message") && !text.contains(LEAVE), "{text}");
    assert!(text.contains("Sorry, our team is away right now"), "{text}");
    m.line.app.stop().await;
}

async fn the_menu_offers_voicemail_on_5_when_the_shop_wants(backend: Backend) {
    let m = mailbox(backend, Arc::new(SystemClock), |s| {
        s.handoff.hours = "always".into();
        s.handoff.voicemail = VoicemailOffer::Menu;
    })
    .await;
    let t = m.call(&["5", "say:Please call me about changing my address on the order"]).await;
    let text = said(&t);
    assert!(text.contains("Press 5 to leave us a message."), "{text}");
    assert!(text.contains(GOT_IT), "{text}");
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "asked");
    m.line.app.stop().await;
}

/// Said instead of pressed: "leave a message" is 5 with the menu's key, and what 0 leads to while
/// the line is closed.
async fn saying_leave_a_message_takes_one(backend: Backend) {
    let m = mailbox(backend, Arc::new(SystemClock), |s| {
        s.handoff.hours = "always".into();
        s.handoff.voicemail = VoicemailOffer::Menu;
    })
    .await;
    let t = m.call(&["say:I'd like to leave a message", "say:Please call me about my address"]).await;
    assert!(said(&t).contains(LEAVE) && said(&t).contains(GOT_IT), "{}", said(&t));
    m.line.app.stop().await;
    let m = mailbox(backend, saturday(), |_| {}).await;
    let t = m.call(&["say:can I leave a voicemail", &format!("say:{MESSAGE}")]).await;
    assert!(said(&t).contains(LEAVE) && said(&t).contains(GOT_IT), "{}", said(&t));
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "closed");
    m.line.app.stop().await;
}

/// Media Streams mode: the offer and the words before the tone come from recordings over the
/// stream; the stream closes with `voicemail`, and the `<Record>` is the TwiML after it.
async fn over_media_streams_the_menu_offers_voicemail_and_the_message_is_taken_after_the_stream(backend: Backend) {
    let m = mailbox(backend, saturday(), crate::media::media).await;
    let t = m.media_call(&["0", &format!("say:{MESSAGE}")]).await;
    let menu = &t.prompts[0].clips;
    assert!(menu.ends_with(&["press_0_message".to_string()]), "the closed menu offers it: {menu:?}");
    let asked = t.prompts.last().unwrap();
    assert_eq!(asked.mark.as_deref().map(|m| m.ends_with(":voicemail")), Some(true), "{asked:?}");
    let before_the_tone =
        ["team_away", "we_are_back", "weekday_1", "at", "digit_9", "am", "leave_message", "pound_when_done"];
    assert_eq!(asked.clips, before_the_tone, "from recordings, when the line opens");
    assert_eq!(t.close, Some((1000, "voicemail".to_string())));
    let after = t.after.as_ref().expect("the TwiML after the stream");
    let record = after.turns[0].document.as_ref().unwrap().find("Record").expect("<Record> after the stream");
    assert!(
        record.attr("action").is_some_and(|a| a.ends_with("/twilio/voicemail/recorded?reason=closed")),
        "{record:?}"
    );
    assert!(after.spoken().join(" ").contains(GOT_IT), "{:?}", after.spoken());
    assert_eq!(t.ending, Ending::Hangup);
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0]["reason"].as_str(), list[0]["transcription"].as_str()), (Some("closed"), Some(MESSAGE)));
    assert_eq!(list[0]["customer_name"], "Dana Whitfield");
    m.line.app.stop().await;

    // With ORDERLINE_VOICEMAIL=menu, 5 at any time.
    let m = mailbox(backend, Arc::new(SystemClock), |s| {
        crate::media::media(s);
        s.handoff.hours = "always".into();
        s.handoff.voicemail = VoicemailOffer::Menu;
    })
    .await;
    let t = m.media_call(&["5", "say:Please call me about my address"]).await;
    assert!(
        t.prompts[0].clips.ends_with(&["press_0_someone".to_string(), "press_5_message".to_string()]),
        "{:?}",
        t.prompts[0].clips
    );
    assert_eq!(t.prompts.last().unwrap().clips, ["leave_message", "pound_when_done"]);
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "asked");
    m.line.app.stop().await;
}

/// ConversationRelay mode: the offer is the session's text; the session ends with `voicemail`,
/// and the `<Connect action>` answers with the step's TwiML: its words, then the `<Record>`.
async fn over_conversation_relay_saying_leave_a_message_takes_one_after_the_session(backend: Backend) {
    let m = mailbox(backend, saturday(), |s| {
        s.ivr.prompt_mode = orderline::config::PromptMode::ConversationRelay;
        // Twilio's speech taken to be instant: a question's time to answer is its timeout.
        s.ivr.relay_words_per_minute = 1_000_000;
    })
    .await;
    let caller = orderline::sim::relay::RelayCaller::new(m.caller(Transfer::Stop));
    let mut script = orderline::sim::relay::scripted_relay(&["say:can I leave a message", &format!("say:{MESSAGE}")]);
    let t = caller.call(&mut script, |_| {}).await.expect("the call went through");
    let heard = t.heard.join(" | ");
    assert!(heard.contains("Press 0 to leave us a message."), "offered in the session: {heard}");
    assert_eq!(t.handoff.as_deref(), Some(r#"{"reason":"voicemail","step":2}"#));
    let after = t.after.as_ref().expect("the action was requested");
    assert!(after.turns[0].document.as_ref().unwrap().find("Record").is_some(), "{:?}", after.turns[0].body);
    let after_words = after.spoken().join(" ");
    assert!(
        after_words.contains(LEAVE) && after_words.contains(GOT_IT),
        "the step's words, said by TwiML: {after_words}"
    );
    let list = m.voicemails("").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0]["reason"].as_str(), list[0]["transcription"].as_str()), (Some("closed"), Some(MESSAGE)));
    m.line.app.stop().await;
}

/// The console in headless Chromium: the message with its transcription and the caller's
/// context, played through orderline, then marked handled. Screenshot under target/tmp/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_voicemail_plays_it_and_marks_it_handled() {
    use crate::support::browser::Browser;
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(15);
    const CARD: &str = "document.querySelector('.card.voicemail')";

    let m = mailbox(Backend::Postgres, saturday(), |_| {}).await;
    m.call(&["0", &format!("say:{MESSAGE}")]).await;
    let browser = Browser::launch().await.expect("headless Chromium (apt-get install -y chromium)");
    browser.goto(&format!("{}/agent", m.line.app.url)).await.unwrap();
    let login = format!(
        "document.getElementById('token').value = '{AGENT_TOKEN}'; document.querySelector('form').submit(); true"
    );
    browser.eval(&login).await.unwrap();
    browser.wait_for(&format!("!!{CARD}"), WAIT).await.unwrap();
    let text = browser.eval(&format!("{CARD}.innerText")).await.unwrap();
    let text = text.as_str().unwrap();
    assert!(text.contains("Dana Whitfield") && text.contains(MESSAGE), "{text}");
    assert!(text.contains("line closed") && text.contains("heard about"), "{text}");
    // Played: the browser fetched the audio from orderline (with its session) and it runs.
    browser.eval(&format!("{CARD}.querySelector('audio').play(); true")).await.unwrap();
    browser.wait_for(&format!("{CARD}.querySelector('audio').currentTime > 0.2"), WAIT).await.unwrap();
    let duration = browser.eval(&format!("{CARD}.querySelector('audio').duration")).await.unwrap();
    let recorded = m.twilio.recordings()[0].duration_s as f64;
    assert!((duration.as_f64().unwrap() - recorded).abs() < 0.1, "{duration} vs {recorded}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent-console-voicemail.png");
    browser.screenshot(&shot).await.unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    // Handled by the name the agent typed.
    browser
        .eval(&format!(
            "document.getElementById('agent-name').value = 'Sam'; {CARD}.querySelector('button.handled').click(); true"
        ))
        .await
        .unwrap();
    browser.wait_for("document.querySelector('#voicemails .empty') !== null", WAIT).await.unwrap();
    let all = m.voicemails("?all=true").await;
    assert_eq!(all[0]["handled_by"], "Sam");
    m.line.app.stop().await;
}

async fn a_voicemail_is_notified_signed_to_the_helpdesk(backend: Backend) {
    use crate::notify::{SECRET, expected_signature, start_receiver, wait_for_requests};
    // (Retries are notify.rs's subject: this line's clock stands still on a Saturday.)
    let (url, receiver) = start_receiver(0).await;
    let m = mailbox(backend, saturday(), |s| {
        s.agents.notify_url = Some(url.to_string());
        s.agents.notify_secret = Some(Secret::new(SECRET));
    })
    .await;
    let t = m.call(&["0", &format!("say:{MESSAGE}")]).await;
    wait_for_requests(&receiver, 1).await;
    let seen = receiver.seen.lock().unwrap().clone();
    let (signature, delivery, body) = &seen[0];
    assert_eq!(signature, &expected_signature(body));
    assert_eq!(delivery, &format!("{}:voicemail", t.call_sid));
    let document: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(document["type"], "voicemail");
    assert_eq!(document["customer"]["first_name"], "Dana");
    let recording = &m.twilio.recordings()[0];
    assert_eq!(document["voicemails"][0]["recording_sid"], recording.sid.as_str());
    assert_eq!(document["voicemails"][0]["reason"], "closed");
    assert!(
        document["summary"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("Left a voicemail"))
    );
    m.line.app.stop().await;
}

async fn a_voicemail_past_the_retention_is_deleted_here_and_at_twilio(backend: Backend) {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()));
    let m = mailbox(backend, clock.clone(), |s| s.reports.retention = Duration::from_secs(30 * 86_400)).await;
    m.call(&["0", &format!("say:{MESSAGE}")]).await;
    assert_eq!(m.voicemails("").await.len(), 1);
    m.line.flush_calls().await;
    // Counted in the reports while it is kept, and not as resolved by orderline.
    let url = format!("{}/api/reports?from=2026-11-21&to=2026-11-21", m.line.app.url);
    let report: Value = m.line.app.client.get(url).bearer_auth(AGENT_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(report["totals"]["voicemails"], 1, "{report}");
    assert_eq!(report["self_service"]["resolved"], 0, "{report}");
    clock.advance(chrono::Duration::days(40));
    let state = &m.line.app.running.as_ref().unwrap().state;
    orderline::ops::retention::pass(state).await.unwrap();
    assert!(m.twilio.recordings().is_empty(), "deleted at Twilio");
    assert!(m.voicemails("?all=true").await.is_empty(), "and here");
    m.line.app.stop().await;
}

on_both_backends!(
    a_voicemail_past_the_retention_is_deleted_here_and_at_twilio,
    a_closed_line_takes_a_message_that_is_transcribed_listed_and_played,
    an_unanswered_transfer_takes_a_message,
    silence_or_a_one_second_message_is_not_kept,
    callbacks_for_unknown_calls_or_recordings_are_refused_and_store_nothing,
    with_voicemail_off_nothing_is_offered,
    the_menu_offers_voicemail_on_5_when_the_shop_wants,
    saying_leave_a_message_takes_one,
    a_voicemail_is_notified_signed_to_the_helpdesk,
    over_media_streams_the_menu_offers_voicemail_and_the_message_is_taken_after_the_stream,
    over_conversation_relay_saying_leave_a_message_takes_one_after_the_session,
);
