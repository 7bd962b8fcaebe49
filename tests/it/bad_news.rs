//! Bad news first, end to end: orderline on 127.0.0.1:0 with real Postgres and SQLite, the
//! Shopify emulator's demo shop, the Twilio caller emulator. A caller whose parcel has stalled,
//! or who calls again, skips the reassuring menu: they hear the honest state and an apology and
//! are put through with priority; outside hours they hear it before the menu.

use axum::extract::FromRef;
use std::sync::Arc;

use crate::common::Backend;
use crate::common::line::{Line, line, line_with};
use chrono::Utc;
use orderline::clock::ManualClock;
use orderline::config::{Settings, VerifyPolicy};
use orderline::sim::twilio::{Ending, Transcript};

const DANA: &str = "+15551234567";
const STRAIGHT_THROUGH: &str = "I'm putting you straight through to someone who can sort it out.";

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

async fn card(line: &Line, call_sid: &str) -> orderline::agent::card::CallCard {
    line.flush_calls().await;
    let state = &line.app.running.as_ref().unwrap().state;
    orderline::agent::card::call_card(&orderline::agent::AgentDesk::from_ref(state), call_sid)
        .await
        .unwrap()
        .expect("the call is recorded")
}

/// Ten days on: Dana's parcel, shipped about three days before, has not been scanned since.
async fn ten_days_later(backend: Backend, change: impl FnOnce(&mut Settings)) -> Line {
    let clock = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::days(10)));
    let settings = |s: &mut Settings| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.bad_news = true;
        change(s);
    };
    line_with(backend, settings, clock).await
}

async fn a_stalled_parcel_is_said_first_and_the_caller_goes_through_with_priority(backend: Backend) {
    let workflow = "WW0123456789abcdef0123456789abcdef";
    let line = ten_days_later(backend, |s| s.handoff.taskrouter_workflow_sid = Some(workflow.to_string())).await;
    let order = line.latest_order("Dana");
    let t = line.call(DANA, &[]).await;
    let text = said(&t);
    let number: String = order.name.trim_start_matches('#').chars().map(|c| format!("{c} ")).collect();
    assert!(text.starts_with(&format!("Hi Dana. Your order number {}shipped on", number)), "{text}");
    assert!(text.contains("but the carrier hasn't scanned it for") && text.contains("I'm sorry."), "{text}");
    assert!(text.contains(STRAIGHT_THROUGH), "{text}");
    assert!(!text.contains("Press 1"), "no menu first: {text}");
    let Ending::Enqueue(enqueue) = &t.ending else { panic!("{:?}", t.ending) };
    let task = enqueue.children.iter().find(|c| c.name == "Task").unwrap();
    assert_eq!(task.attr("priority"), Some("10"), "TaskRouter priority");
    // The card: the reason, highlighted, and in plain words.
    let card = card(&line, &t.call_sid).await;
    let news = card.bad_news.clone().unwrap();
    assert!(
        news.starts_with("stalled: no carrier scan for 1") && news.ends_with(&format!("({})", order.name)),
        "{news}"
    );
    assert_eq!(card.transfer.as_deref(), Some("bad_news"));
    assert!(card.summary.iter().any(|l| l == &format!("Bad news first: {news}")), "{:?}", card.summary);
    assert!(card.summary.iter().any(|l| l == "Put through: bad news first, with priority"), "{:?}", card.summary);
    line.app.stop().await;
}

async fn a_priority_target_takes_bad_news_callers(backend: Backend) {
    let line = ten_days_later(backend, |s| s.handoff.priority_to = Some("queue:urgent".into())).await;
    let t = line.call(DANA, &[]).await;
    let Ending::Enqueue(enqueue) = &t.ending else { panic!("{:?}", t.ending) };
    assert_eq!(enqueue.text.trim(), "urgent");
    // Another caller with a quiet order goes to the usual queue.
    let marcus = line.call("+15550142381", &["0"]).await;
    let Ending::Enqueue(enqueue) = &marcus.ending else { panic!("{:?}", marcus.ending) };
    assert_eq!(enqueue.text.trim(), "support", "{}", said(&marcus));
    line.app.stop().await;
}

async fn a_repeat_caller_hears_an_apology_and_goes_through(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.bad_news = true;
    })
    .await;
    let first = line.call(DANA, &["1", "timeout", "timeout"]).await;
    assert!(said(&first).contains("Press 1 to hear that again."), "the first call hears the menu");
    line.flush_calls().await;
    let again = line.call(DANA, &[]).await;
    let text = said(&again);
    assert!(text.contains("I can see you've called us recently about order number"), "{text}");
    assert!(text.contains("I'm sorry you've had to call again.") && text.contains(STRAIGHT_THROUGH), "{text}");
    assert!(matches!(again.ending, Ending::Enqueue(_)), "{:?}", again.ending);
    let card = card(&line, &again.call_sid).await;
    assert!(card.bad_news.unwrap().starts_with("repeat_caller:"));
    line.app.stop().await;
}

async fn outside_hours_the_news_comes_before_the_menu(backend: Backend) {
    let today = (Utc::now() + chrono::Duration::days(10)).date_naive();
    let holidays = format!("{},{}", today.pred_opt().unwrap(), today);
    let line = ten_days_later(backend, |s| s.handoff.holidays = holidays.as_str().to_string()).await;
    let t = line.call(DANA, &["timeout", "timeout"]).await;
    let text = said(&t);
    assert!(text.contains("but the carrier hasn't scanned it for"), "{text}");
    assert!(!text.contains(STRAIGHT_THROUGH) && text.contains("Press 1 to hear that again."), "{text}");
    assert!(!text.contains("is on its way") && !text.contains("and is expected"), "no reassurance: {text}");
    line.app.stop().await;
}

async fn without_the_setting_nothing_changes(backend: Backend) {
    let clock = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::days(10)));
    let line = line_with(backend, |s| s.ivr.verify = VerifyPolicy::None, clock).await;
    let t = line.call(DANA, &["timeout", "timeout"]).await;
    let text = said(&t);
    assert!(!text.contains("hasn't scanned") && text.contains("Press 1 to hear that again."), "{text}");
    line.app.stop().await;
}

on_both_backends!(
    a_stalled_parcel_is_said_first_and_the_caller_goes_through_with_priority,
    a_priority_target_takes_bad_news_callers,
    a_repeat_caller_hears_an_apology_and_goes_through,
    outside_hours_the_news_comes_before_the_menu,
    without_the_setting_nothing_changes,
);
