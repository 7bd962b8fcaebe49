//! Reaching a person as Twilio really does it: the caller emulator plays out `<Dial>` and
//! `<Enqueue>` with the outcome each test asks for (answered, busy, no answer, failed, a queue
//! nobody serves), requests the whisper, the `action` and the `waitUrl` as Twilio does, and
//! parses every answer with a conformant XML 1.0 parser. orderline on 127.0.0.1:0, real Postgres
//! and SQLite, the Shopify emulator's demo shop.

use crate::common::line::{Line, TOKEN, line};
use crate::common::{Backend, SHOP};
use chrono::Utc;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::shopify::payload::ShopifyChange;
use orderline::sim::twilio::{
    CallerConfig, DialOutcome, Ending, QueueScript, Transcript, Transfer, TwilioCaller, scripted,
};
use orderline::store::Ts;
use std::time::Duration;

const DANA: &str = "+15551234567";
const AGENT: &str = "tel:+14155550100";
/// Weekdays only, in UTC; the line's clock is set to a weekday (`weekday_clock`), so it is open
/// whatever day the suite runs on.
const HOURS: &str = "mon-fri 00:00-24:00";

/// Wednesday 2 December 2026, noon UTC.
fn weekday_clock() -> std::sync::Arc<dyn orderline::clock::Clock> {
    use chrono::TimeZone;
    std::sync::Arc::new(orderline::clock::ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()))
}

fn caller(line: &Line, transfer: Transfer) -> TwilioCaller {
    let mut config = CallerConfig::new(&line.app.url, TOKEN, DANA);
    config.transfer = transfer;
    TwilioCaller::new(config)
}

/// What the caller heard after "Connecting you with someone now."
fn heard_after_connecting(t: &Transcript) -> Vec<String> {
    let spoken = t.spoken();
    let at = spoken.iter().position(|s| s.contains("Connecting you with someone")).expect("the transfer was announced");
    spoken[at + 1..].to_vec()
}

fn ends_with_a_goodbye_and_when_to_call(words: &[String]) {
    let text = words.join(" ");
    assert!(text.contains("Goodbye."), "{text}");
    assert!(
        text.contains("Please try again in a few minutes.") || text.contains("Our team is back"),
        "when to call back: {text}"
    );
}

async fn an_answered_transfer_ends_without_a_word(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.transfer_to = AGENT.to_string();
    })
    .await;
    let t = caller(&line, Transfer::Dial(DialOutcome::Answered { talk_s: 95 })).call(scripted(&["0"])).await.unwrap();
    // The agent heard who is calling before the bridge.
    assert_eq!(t.whispers.len(), 1);
    let whisper = t.whispers[0].document.as_ref().unwrap().spoken();
    assert!(whisper.starts_with("Call from Dana"), "{whisper}");
    // After the agent hung up, Twilio asked the Dial's action; nothing more was said.
    let last = t.turns.last().unwrap();
    assert!(last.url.starts_with(&format!("{}/twilio/voice/dial-ended", line.app.url)), "{}", last.url);
    assert!(heard_after_connecting(&t).is_empty(), "{:?}", heard_after_connecting(&t));
    assert_eq!(t.ending, Ending::Hangup);
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "transfer_end" && e.detail == "dial completed after 95 s: served"),
        "{events:?}"
    );
    line.app.stop().await;
}

async fn a_busy_unanswered_or_failed_transfer_leads_to_a_goodbye(backend: Backend) {
    let settings = |s: &mut Settings| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.transfer_to = AGENT.to_string();
        s.handoff.hours = HOURS.to_string();
    };
    let line = crate::common::line::line_with(backend, settings, weekday_clock()).await;
    for (outcome, words) in [
        (DialOutcome::Busy, "everyone on our team is on another call"),
        (DialOutcome::NoAnswer, "nobody could answer just now"),
        (DialOutcome::Failed, "I couldn't put your call through"),
        (DialOutcome::Canceled, "I couldn't put your call through"),
    ] {
        let t = caller(&line, Transfer::Dial(outcome)).call(scripted(&["0"])).await.unwrap();
        let after = heard_after_connecting(&t);
        assert!(after.first().is_some_and(|s| s.contains(words)), "{outcome:?}: {after:?}");
        ends_with_a_goodbye_and_when_to_call(&after);
        assert_eq!(t.ending, Ending::Hangup, "{outcome:?}");
        assert!(t.whispers.is_empty(), "nobody answered, nobody was whispered to");
    }
    line.app.stop().await;
}

async fn a_queue_caller_hears_their_place_and_leaves_at_the_maximum_wait(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.queue_max_wait = Duration::from_secs(2 * 60);
    })
    .await;
    let script = QueueScript { ahead: 2, avg_queue_time_s: 240, play_s: 25, ..QueueScript::default() };
    let t = caller(&line, Transfer::Queue(script)).call(scripted(&["0"])).await.unwrap();
    let after = heard_after_connecting(&t);
    assert_eq!(after[0], "You're number 3 in line.");
    assert_eq!(after[1], "The wait is about 2 minutes. Thanks for holding.", "capped at the maximum wait");
    assert!(after.iter().any(|s| s == "You're number 2 in line."), "the place moves up: {after:?}");
    // Every wait round plays music between the announcements.
    let waits: Vec<_> = t.turns.iter().filter(|t| t.url.contains("/twilio/voice/queue-wait")).collect();
    assert!(waits.len() >= 3, "{}", waits.len());
    assert!(
        waits.iter().all(|w| w.document.as_ref().unwrap().find("Play").is_some()
            || w.document.as_ref().unwrap().find("Leave").is_some())
    );
    // Nobody came: out of the queue at the maximum wait (give or take one round of music), never
    // left in silence.
    assert!((120..120 + 25 + 10).contains(&t.queue_time_s), "{}", t.queue_time_s);
    let goodbye = after.iter().position(|s| s.contains("nobody has been free")).expect("{after:?}");
    ends_with_a_goodbye_and_when_to_call(&after[goodbye..]);
    assert_eq!(t.ending, Ending::Hangup);
    line.app.stop().await;
}

async fn a_queue_caller_who_is_served_hears_nothing_more_and_a_full_queue_says_so(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let served = QueueScript { answered_after_s: Some(40), avg_queue_time_s: 30, ..QueueScript::default() };
    let t = caller(&line, Transfer::Queue(served)).call(scripted(&["0"])).await.unwrap();
    let after = heard_after_connecting(&t);
    assert_eq!(after[0], "You're next in line.");
    assert!(!after.iter().any(|s| s.contains("Sorry")), "{after:?}");
    assert!(t.turns.last().unwrap().url.contains("/twilio/voice/queue-ended"));
    assert_eq!(t.ending, Ending::Hangup);

    let full = QueueScript { full: true, ..QueueScript::default() };
    let t = caller(&line, Transfer::Queue(full)).call(scripted(&["0"])).await.unwrap();
    let after = heard_after_connecting(&t);
    assert_eq!(after[0], "Sorry, all our lines are full right now.");
    ends_with_a_goodbye_and_when_to_call(&after);
    line.app.stop().await;
}

async fn a_name_with_control_characters_gives_twiml_a_conformant_parser_accepts(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.transfer_to = "client:support".into();
        s.ivr.shop_name = "Smith\u{1b} & Sons".into();
    })
    .await;
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    let mut renamed = dana.clone();
    renamed.first_name = Some("Ann\u{8}e\u{1b}[1m".into());
    renamed.last_name = Some("Doe\u{ffff}".into());
    renamed.updated_at = renamed.updated_at.map(|t| t + chrono::Duration::seconds(1));
    line.app
        .store()
        .apply_all(SHOP, &[ShopifyChange::Customer(Box::new(renamed)).into()], "US", Ts::from(Utc::now()))
        .await
        .unwrap();
    line.app.settle().await;
    // The emulator parses every answer with a conformant XML 1.0 parser: the call would fail here
    // (error 12100) if a forbidden character came through.
    let t = caller(&line, Transfer::Dial(DialOutcome::Answered { talk_s: 10 })).call(scripted(&["0"])).await.unwrap();
    assert!(t.spoken()[0].starts_with("Hi Anne[1m, thanks for calling Smith & Sons."), "{:?}", t.spoken());
    let transfer = t.turns.iter().filter_map(|t| t.document.as_ref()).find(|d| d.find("Dial").is_some()).unwrap();
    let params: Vec<(String, String)> = transfer
        .find_all("Parameter")
        .iter()
        .map(|p| (p.attr("name").unwrap().to_string(), p.attr("value").unwrap().to_string()))
        .collect();
    assert!(params.contains(&("name".into(), "Anne[1m Doe".into())), "{params:?}");
    for turn in &t.turns {
        assert!(!turn.body.chars().any(|c| c.is_control() && !"\t\n\r".contains(c)), "{}", turn.body);
    }
    line.app.stop().await;
}

async fn the_task_json_of_a_flex_transfer_carries_no_forbidden_character(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.taskrouter_workflow_sid = Some("WW0123456789abcdef0123456789abcdef".into());
    })
    .await;
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    let mut renamed = dana.clone();
    renamed.first_name = Some("Ann\u{8}e".into());
    renamed.updated_at = renamed.updated_at.map(|t| t + chrono::Duration::seconds(1));
    line.app
        .store()
        .apply_all(SHOP, &[ShopifyChange::Customer(Box::new(renamed)).into()], "US", Ts::from(Utc::now()))
        .await
        .unwrap();
    line.app.settle().await;
    let t = line.call(DANA, &["0"]).await;
    let Ending::Enqueue(enqueue) = &t.ending else { panic!("{:?}", t.ending) };
    let task = &enqueue.children.iter().find(|c| c.name == "Task").unwrap().text;
    let task: serde_json::Value = serde_json::from_str(task).unwrap();
    let name = task["name"].as_str().unwrap();
    assert!(name.starts_with("Anne"), "U+0008 dropped before the JSON was made: {name:?}");
    assert!(enqueue.attr("waitUrl").unwrap().ends_with("/twilio/voice/queue-wait"));
    line.app.stop().await;
}

async fn a_rotated_auth_token_and_the_previous_one_are_both_accepted(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.twilio.auth_token = Some(Secret::new("rotated-token"));
        s.twilio.auth_token_previous = Some(Secret::new(TOKEN));
    })
    .await;
    for token in ["rotated-token", TOKEN] {
        let t = TwilioCaller::new(CallerConfig::new(&line.app.url, token, DANA)).call(scripted(&["1"])).await.unwrap();
        assert!(t.turns.iter().all(|turn| turn.status == 200), "{token}");
        assert!(t.spoken()[0].starts_with("Hi Dana"), "{token}");
    }
    let t = TwilioCaller::new(CallerConfig::new(&line.app.url, "some-other-token", DANA))
        .call(scripted(&[]))
        .await
        .unwrap();
    assert_eq!(t.ending, Ending::HttpError(403));
    line.app.stop().await;
}

async fn a_whole_call_under_a_public_url_with_a_path_keeps_it_in_every_url(backend: Backend) {
    // Twilio reaches orderline at http://127.0.0.1:PORT/prefix/…: every URL handed back to it
    // (Gather actions, Redirects, the whisper, the Dial action) must keep the prefix.
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.server.public_url = "http://127.0.0.1:0/prefix".into();
        s.handoff.transfer_to = AGENT.to_string();
        s.ivr.hold_after = Duration::from_millis(1);
    })
    .await;
    let base = format!("{}/prefix", line.app.url);
    let mut config = CallerConfig::new(&base, TOKEN, DANA);
    config.transfer = Transfer::Dial(DialOutcome::Answered { talk_s: 20 });
    // Menu, other orders (2), then someone (0).
    let t = TwilioCaller::new(config).call(scripted(&["2", "0"])).await.unwrap();
    let text = t.spoken().join(" | ");
    assert!(text.contains("Hi Dana") && text.contains("Connecting you with someone now."), "{text}");
    let requested: Vec<&str> = t.turns.iter().chain(&t.whispers).map(|t| t.url.as_str()).collect();
    assert!(requested.iter().any(|u| u.contains("/twilio/voice/menu?")), "{requested:?}");
    assert!(requested.iter().any(|u| u.contains("/twilio/voice/whisper?")), "{requested:?}");
    assert!(requested.iter().any(|u| u.contains("/twilio/voice/dial-ended")), "{requested:?}");
    assert!(requested.iter().all(|u| u.starts_with(&format!("{base}/twilio/voice"))), "{requested:?}");
    assert!(t.turns.iter().chain(&t.whispers).all(|turn| turn.status == 200), "{requested:?}");
    // Every URL written into the TwiML is absolute and keeps the prefix.
    for doc in t.turns.iter().filter_map(|t| t.document.as_ref()) {
        for verb in doc.find_all("Gather").into_iter().chain(doc.find_all("Dial")).chain(doc.find_all("Number")) {
            for name in ["action", "url"] {
                if let Some(url) = verb.attr(name) {
                    assert!(url.starts_with(&format!("{base}/twilio/voice/")), "{} {name}={url}", verb.name);
                }
            }
        }
        for redirect in doc.find_all("Redirect") {
            assert!(redirect.text.trim().starts_with(&format!("{base}/twilio/voice/")), "{}", redirect.text);
        }
    }
    assert_eq!(t.ending, Ending::Hangup);
    line.app.stop().await;
}

on_both_backends!(
    a_whole_call_under_a_public_url_with_a_path_keeps_it_in_every_url,
    an_answered_transfer_ends_without_a_word,
    a_busy_unanswered_or_failed_transfer_leads_to_a_goodbye,
    a_queue_caller_hears_their_place_and_leaves_at_the_maximum_wait,
    a_queue_caller_who_is_served_hears_nothing_more_and_a_full_queue_says_so,
    a_name_with_control_characters_gives_twiml_a_conformant_parser_accepts,
    the_task_json_of_a_flex_transfer_carries_no_forbidden_character,
    a_rotated_auth_token_and_the_previous_one_are_both_accepted,
);
