//! The phone line end to end: orderline on 127.0.0.1:0 with real Postgres (and SQLite), the
//! Shopify emulator's demo shop in the store, and the Twilio caller emulator dialing in. Every
//! test reads the TwiML that came back: verbs, attributes and the words the caller heard.

use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::line::{Line, TOKEN, line, line_with};
use crate::common::{Backend, SHOP};
use chrono::{TimeZone, Utc};
use orderline::clock::ManualClock;
use orderline::config::{Settings, VerifyPolicy};
use orderline::shopify::payload::ShopifyChange;
use orderline::sim::shopify::Failure;
use orderline::sim::twilio::{CallerConfig, Ending, Transcript, TwilioCaller, scripted};
use orderline::store::Ts;
use orderline::twilio::twiml;

const DANA: &str = "+15551234567";
const DANA_ZIP: &str = "11217";
const BECKERS: &str = "+15550177120";
const STRANGER: &str = "+15550199999";

fn digits_of(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).collect()
}

fn spoken_digits(name: &str) -> String {
    digits_of(name).chars().map(String::from).collect::<Vec<_>>().join(" ")
}

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

fn gather_action(t: &Transcript, turn: usize) -> String {
    let doc = t.turns[turn].document.as_ref().unwrap();
    doc.find("Gather").and_then(|g| g.attr("action")).unwrap_or_default().to_string()
}

async fn a_known_caller_hears_their_latest_order_and_the_menu(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let t = line.call(DANA, &[]).await;
    let text = said(&t);
    let latest = line.latest_order("Dana");
    assert!(text.starts_with("Hi Dana, thanks for calling Orderline Demo."), "{text}");
    assert!(text.contains(&format!("Your order number {} shipped on", spoken_digits(&latest.name))), "{text}");
    assert!(text.contains("with UPS"), "{text}");
    assert!(text.contains("Press 1 to hear that again. Press 2 for your other recent orders. Press 3"), "{text}");
    let gather = t.turns[0].document.as_ref().unwrap().find("Gather").unwrap();
    // Keys or words (ORDERLINE_SPEECH_INPUT, on by default; tests/it/speech.rs says what words do).
    assert_eq!((gather.attr("numDigits"), gather.attr("input")), (Some("1"), Some("dtmf speech")));
    // Everything is said inside the <Gather>: a key interrupts the order status.
    let doc = t.turns[0].document.as_ref().unwrap();
    assert_eq!(doc.verbs.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["Gather", "Redirect"]);
    assert!(gather.children.iter().any(|s| s.spoken().starts_with("Your order number")), "{gather:?}");
    // Absolute, from ORDERLINE_PUBLIC_URL: a base with a path keeps it.
    let menu = format!("{}/twilio/voice/menu?n=2&v=x", line.app.url);
    assert!(gather_action(&t, 0).starts_with(&menu), "{}", gather_action(&t, 0));
    assert_eq!(t.ending, Ending::OutOfKeys);

    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().expect("the call is recorded");
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    assert_eq!((call.customer_id, call.verification.as_deref()), (Some(dana.id.0), Some("not_required")));
    assert_eq!(call.from_e164.as_deref(), Some(DANA));
    let events: Vec<(String, String)> =
        line.app.store().call_events(&t.call_sid).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect();
    assert_eq!(events[0], ("lookup".into(), "store".into()));
    assert!(events.contains(&("step".into(), "menu".into())), "{events:?}");
    line.app.stop().await;
}

async fn each_menu_key_does_what_it_says(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let latest = spoken_digits(&line.latest_order("Dana").name);
    // 1: again; 2: other orders; 3: returns; 0: someone.
    let t = line.call(DANA, &["1", "2", "3", "0"]).await;
    let spoken = t.spoken();
    let again = spoken.iter().filter(|s| s.contains(&format!("Your order number {latest}"))).count();
    assert_eq!(again, 2, "the status, then again after 1: {spoken:?}");
    let text = said(&t);
    assert!(text.contains("was delivered on"), "2 lists the other orders: {text}");
    assert!(text.contains("was cancelled and refunded"), "{text}");
    assert!(text.contains("refunded") && text.contains("To start a return"), "3: {text}");
    assert!(text.contains("Connecting you with someone now."), "0: {text}");
    let Ending::Enqueue(enqueue) = &t.ending else { panic!("0 ends in the queue: {:?}", t.ending) };
    assert_eq!(enqueue.text.trim(), "support");

    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().unwrap();
    assert_eq!(call.transfer.as_deref(), Some("asked"));
    let keys: Vec<String> = line
        .app
        .store()
        .call_events(&t.call_sid)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "key")
        .map(|e| e.detail)
        .collect();
    assert_eq!(keys, ["1", "2", "3", "0"]);
    line.app.stop().await;
}

async fn a_postal_code_verifies_the_caller_before_any_order_detail(backend: Backend) {
    let line = line(backend, |_| {}).await; // the default policy: postal_code
    let latest = spoken_digits(&line.latest_order("Dana").name);
    let t = line.call(DANA, &[DANA_ZIP]).await;
    let first = t.turns[0].document.as_ref().unwrap().spoken();
    assert!(first.contains("postal code") && !first.contains("Dana"), "no name before verification: {first}");
    assert!(!first.contains("order number"), "nothing about orders before verification: {first}");
    let gather = t.turns[0].document.as_ref().unwrap().find("Gather").unwrap();
    assert_eq!(gather.attr("finishOnKey"), Some("#"));
    let postal_code = format!("{}/twilio/voice/postal-code?", line.app.url);
    assert!(gather_action(&t, 0).starts_with(&postal_code), "{}", gather_action(&t, 0));
    assert!(said(&t).contains(&format!("Your order number {latest}")), "{}", said(&t));

    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().unwrap();
    assert_eq!(call.verification.as_deref(), Some("postal_code"));
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    assert!(events.iter().all(|e| !e.detail.contains(DANA_ZIP)), "the postal code is never recorded");
    assert!(events.iter().any(|e| e.kind == "verification" && e.detail == "postal_code:passed"));
    line.app.stop().await;
}

async fn a_wrong_postal_code_twice_goes_to_an_agent_without_disclosure(backend: Backend) {
    let line = line(backend, |_| {}).await;
    let t = line.call(DANA, &["99999", "12345"]).await;
    let text = said(&t);
    assert!(text.contains("Sorry, that doesn't match."), "{text}");
    assert!(text.contains("Sorry, I couldn't confirm that. Let me connect you"), "{text}");
    assert!(!text.contains("Your order number"), "no order detail without verification: {text}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().unwrap();
    assert_eq!((call.verification.as_deref(), call.transfer.as_deref()), (Some("failed"), Some("not_verified")));
    line.app.stop().await;
}

async fn caller_id_policy_trusts_full_attestation_only(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::CallerId).await;
    let mut attested = CallerConfig::new(&line.app.url, TOKEN, DANA);
    attested.stir_verstat = Some("TN-Validation-Passed-A".into());
    let t = TwilioCaller::new(attested).call(scripted(&[])).await.unwrap();
    assert!(said(&t).contains("Your order number"), "A attestation is trusted: {}", said(&t));

    let mut partial = CallerConfig::new(&line.app.url, TOKEN, DANA);
    partial.stir_verstat = Some("TN-Validation-Passed-B".into());
    let t = TwilioCaller::new(partial).call(scripted(&[])).await.unwrap();
    let text = said(&t);
    assert!(text.contains("postal code") && !text.contains("Your order number"), "B asks: {text}");
    line.app.stop().await;
}

async fn a_shared_number_asks_for_the_order_number(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let tom = line.latest_order("Tom");
    let t = line.call(BECKERS, &[&format!("{}#", digits_of(&tom.name))]).await;
    let text = said(&t);
    assert!(text.contains("This number is on more than one account. Please enter your order number"), "{text}");
    assert!(text.contains("Hi Tom, thanks for calling"), "{text}");
    assert!(text.contains(&format!("Your order number {}", spoken_digits(&tom.name))), "{text}");
    // Known by the order number only: the account's other orders are not offered.
    assert!(!text.contains("Press 2"), "{text}");
    line.app.stop().await;
}

async fn an_unknown_or_withheld_caller_enters_an_order_number(backend: Backend) {
    let line = line(backend, |_| {}).await;
    let marcus = line.latest_order("Marcus");
    // Under the default policy the order number alone proves nothing: its postal code too.
    let zip = marcus.shipping_address.as_ref().and_then(|a| a.zip.clone()).unwrap();
    let t = line.call(STRANGER, &[&digits_of(&marcus.name), &zip]).await;
    let text = said(&t);
    assert!(text.starts_with("Thanks for calling Orderline Demo. Please enter your order number"), "{text}");
    assert!(text.contains("the postal code this order ships to"), "{text}");
    assert!(text.contains(&format!("Your order number {} is out for delivery", spoken_digits(&marcus.name))), "{text}");

    for withheld in ["anonymous", "+266696687", ""] {
        let t = line.call(withheld, &[&digits_of(&marcus.name), &zip]).await;
        let text = said(&t);
        assert!(text.contains("Please enter your order number"), "{withheld:?}: {text}");
        assert!(text.contains("is out for delivery"), "{withheld:?}: {text}");
    }
    line.flush_calls().await;
    line.app.stop().await;
}

async fn a_wrong_order_number_twice_offers_an_agent(backend: Backend) {
    let line = line(backend, |_| {}).await;
    line.sim.set_failure(Failure::None);
    let t = line.call(STRANGER, &["4242", "4343"]).await;
    let text = said(&t);
    assert!(text.contains("Sorry, I couldn't find order number 4 2 4 2. Please enter it again"), "{text}");
    assert!(text.contains("Sorry, I couldn't find that order. Let me connect you"), "{text}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

async fn silence_is_reprompted_once_then_an_agent_takes_over(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let t = line.call(DANA, &["timeout", "timeout"]).await;
    let text = said(&t);
    assert_eq!(text.matches("Sorry, I didn't catch that.").count(), 1, "{text}");
    assert!(text.contains("Let me connect you with someone who can help."), "{text}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    // An invalid key is treated the same way.
    let t = line.call(DANA, &["7", "8"]).await;
    assert_eq!(said(&t).matches("Sorry, I didn't catch that.").count(), 1, "{}", said(&t));
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    line.app.stop().await;
}

async fn outside_business_hours_there_is_no_transfer(backend: Backend) {
    // Saturday 21 November 2026, noon UTC; the line is staffed on weekdays.
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()));
    let hours = |s: &mut Settings| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.hours = "mon-fri 09:00-17:00".into();
        s.handoff.hours_timezone = "UTC".into();
    };
    let line = line_with(backend, hours, clock).await;
    let t = line.call(DANA, &["0", "timeout", "timeout"]).await;
    let text = said(&t);
    assert!(text.contains("Our team is away right now; we're back Monday at 9 AM."), "{text}");
    assert!(text.contains("Your order number"), "self-service still works: {text}");
    assert!(!text.contains("Press 0"), "{text}");
    assert!(text.contains("Sorry, our team is away right now; we're back Monday at 9 AM."), "0 is refused: {text}");
    assert!(!t.turns.iter().any(|turn| turn.document.as_ref().is_some_and(|d| d.find("Enqueue").is_some())));
    assert_eq!(t.ending, Ending::Hangup, "{text}");
    line.app.stop().await;
}

async fn transfers_carry_the_callers_context(backend: Backend) {
    // A Flex/TaskRouter queue: the context rides as <Task> JSON.
    let workflow = "WW0123456789abcdef0123456789abcdef";
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.taskrouter_workflow_sid = Some(workflow.to_string());
    })
    .await;
    let t = line.call(DANA, &["0"]).await;
    let Ending::Enqueue(enqueue) = &t.ending else { panic!("{:?}", t.ending) };
    assert_eq!(enqueue.attr("workflowSid"), Some(workflow));
    let task: serde_json::Value = serde_json::from_str(&enqueue.children[0].text).unwrap();
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    assert_eq!(task["name"], "Dana Whitfield");
    assert_eq!(task["customer_id"], dana.id.0.to_string(), "IDs are strings");
    assert_eq!(task["verified"], "not_required");
    assert_eq!(task["order_name"], line.latest_order("Dana").name);
    assert_eq!(task["call_sid"], t.call_sid);
    line.app.stop().await;

    // A phone number: the agent hears a whisper first.
    let line = line_for_transfer(backend, "tel:+14155550100").await;
    let t = line.call(DANA, &["0"]).await;
    let Ending::Dial(dial) = &t.ending else { panic!("{:?}", t.ending) };
    let number = dial.children.iter().find(|c| c.name == "Number").unwrap();
    assert_eq!(number.text.trim(), "+14155550100");
    let whisper_url = number.attr("url").unwrap();
    assert!(whisper_url.starts_with(&format!("{}/twilio/voice/whisper?", line.app.url)), "absolute: {whisper_url}");
    let turn = line.caller(DANA).post(whisper_url, &[("CallSid".into(), "CAagentleg".into())]).await.unwrap();
    let whisper = turn.document.unwrap().spoken();
    assert!(whisper.contains("Call from Dana Whitfield.") && whisper.contains("About order number"), "{whisper}");
    line.app.stop().await;

    // A Twilio Client: the context as <Parameter>s.
    let line = line_for_transfer(backend, "client:support-desk").await;
    let t = line.call(DANA, &["0"]).await;
    let Ending::Dial(dial) = &t.ending else { panic!("{:?}", t.ending) };
    let client = dial.find_client();
    assert_eq!(client.0, "support-desk");
    assert!(client.1.contains(&("name".to_string(), "Dana Whitfield".to_string())), "{:?}", client.1);
    line.app.stop().await;
}

async fn line_for_transfer(backend: Backend, to: &str) -> Line {
    line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.handoff.transfer_to = to.to_string();
    })
    .await
}

trait ClientOf {
    fn find_client(&self) -> (String, Vec<(String, String)>);
}

impl ClientOf for twiml::Verb {
    fn find_client(&self) -> (String, Vec<(String, String)>) {
        let client = self.children.iter().find(|c| c.name == "Client").expect("a Client");
        let identity = client.children.iter().find(|c| c.name == "Identity").unwrap().text.trim().to_string();
        let params = client
            .children
            .iter()
            .filter(|c| c.name == "Parameter")
            .map(|p| (p.attr("name").unwrap().to_string(), p.attr("value").unwrap().to_string()))
            .collect();
        (identity, params)
    }
}

async fn a_name_full_of_xml_specials_comes_out_valid(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.shop_name = "Smith & Sons <Outlet>".into();
    })
    .await;
    let dana = line.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some("Dana")).unwrap();
    let mut renamed = dana.clone();
    renamed.first_name = Some("O'Brien & Sons <Ltd>".into());
    renamed.updated_at = renamed.updated_at.map(|t| t + chrono::Duration::seconds(1));
    line.app
        .store()
        .apply_all(SHOP, &[ShopifyChange::Customer(Box::new(renamed)).into()], "US", Ts::from(Utc::now()))
        .await
        .unwrap();
    line.app.settle().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = line.call(DANA, &[]).await;
    // The caller emulator parsed it with quick-xml: it is well-formed, and the words survive.
    assert!(said(&t).starts_with("Hi O'Brien & Sons <Ltd>, thanks for calling Smith & Sons <Outlet>."), "{}", said(&t));
    assert!(t.turns[0].body.contains("O&apos;Brien &amp; Sons &lt;Ltd&gt;"), "{}", t.turns[0].body);
    assert!(!t.turns[0].body.contains("&#x2f;"), "URLs go out as they are: {}", t.turns[0].body);
    line.app.stop().await;
}

async fn with_the_database_down_the_caller_reaches_a_person(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    line.app.store().close().await;
    let t = line.call(STRANGER, &[]).await;
    assert_eq!(t.turns[0].status, 200, "never a 5xx");
    let text = said(&t);
    assert!(text.contains("Sorry, I can't look up orders right now. Let me connect you with someone."), "{text}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    let metrics = reqwest::get(format!("{}/metrics", line.app.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"orderline_twilio_requests_total{route="voice",outcome="fallback"} 1"#), "{metrics}");
    line.app.stop().await;
}

async fn with_shopify_down_stale_rows_still_answer_within_budget(backend: Backend) {
    // Rows older than the freshness window, and Shopify failing: the caller hears the stored
    // status (stale) within the budget, never an error.
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.lookup.freshness = Duration::from_millis(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    line.sim.set_failure(Failure::Http500);
    let started = std::time::Instant::now();
    let t = line.call(DANA, &[]).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(said(&t).contains("Your order number"), "{}", said(&t));
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].detail.as_str()), ("lookup", "stale"));
    line.app.stop().await;
}

async fn a_slow_lookup_holds_the_caller_with_one_moment(backend: Backend) {
    let line = line(backend, |s| {
        s.ivr.hold_after = Duration::from_millis(100);
        s.lookup.lookup_budget = Duration::from_millis(1500);
    })
    .await;
    line.sim.set_latency(Duration::from_millis(600), Duration::ZERO);
    let t = line.call(STRANGER, &[]).await;
    let first = t.turns[0].document.as_ref().unwrap();
    assert!(first.spoken().contains("One moment while I find your order."), "{}", first.spoken());
    let redirect = first.find("Redirect").expect("a Redirect to continue");
    assert!(redirect.text.starts_with(&format!("{}/twilio/voice/continue?", line.app.url)), "{}", redirect.text);
    assert!(said(&t).contains("Please enter your order number"), "then the call goes on: {}", said(&t));
    line.app.stop().await;
}

async fn an_unsigned_or_forged_request_is_refused_and_nothing_recorded(backend: Backend) {
    let line = line(backend, |_| {}).await;
    let forged = TwilioCaller::new(CallerConfig::new(&line.app.url, "not-the-token", DANA));
    let t = forged.call(scripted(&[])).await.unwrap();
    assert_eq!(t.ending, Ending::HttpError(403));
    let unsigned = reqwest::Client::new()
        .post(format!("{}/twilio/voice", line.app.url))
        .form(&[("CallSid", "CA1"), ("From", DANA)])
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    // A signed request whose parameter was changed on the way.
    let caller = line.caller(DANA);
    let url = format!("{}/twilio/voice", line.app.url);
    let params = vec![("CallSid".to_string(), "CA2".to_string()), ("From".to_string(), DANA.to_string())];
    let signature = orderline::twilio::signature::sign(TOKEN, &url, &params);
    let tampered = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&[("CallSid", "CA2"), ("From", BECKERS)])
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403);
    drop(caller);
    line.flush_calls().await;
    assert_eq!(line.app.store().call_count().await.unwrap(), 0);
    line.app.stop().await;
}

async fn status_callbacks_complete_the_call_record(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let caller = line.caller(DANA);
    let t = caller.call(scripted(&["0"])).await.unwrap();
    assert_eq!(caller.status_callback(&t.call_sid, "completed", Some(42), 3).await.unwrap(), 204);
    // A late, lower-numbered callback does not undo it.
    assert_eq!(caller.status_callback(&t.call_sid, "ringing", None, 1).await.unwrap(), 204);
    line.flush_calls().await;
    let call = line.app.store().call(&t.call_sid).await.unwrap().unwrap();
    assert_eq!((call.status.as_str(), call.duration_s), ("completed", Some(42)));
    assert!(call.ended_at.is_some());
    line.app.stop().await;
}

on_both_backends!(
    a_known_caller_hears_their_latest_order_and_the_menu,
    each_menu_key_does_what_it_says,
    a_postal_code_verifies_the_caller_before_any_order_detail,
    a_wrong_postal_code_twice_goes_to_an_agent_without_disclosure,
    caller_id_policy_trusts_full_attestation_only,
    a_shared_number_asks_for_the_order_number,
    an_unknown_or_withheld_caller_enters_an_order_number,
    a_wrong_order_number_twice_offers_an_agent,
    silence_is_reprompted_once_then_an_agent_takes_over,
    outside_business_hours_there_is_no_transfer,
    transfers_carry_the_callers_context,
    a_name_full_of_xml_specials_comes_out_valid,
    with_the_database_down_the_caller_reaches_a_person,
    with_shopify_down_stale_rows_still_answer_within_budget,
    a_slow_lookup_holds_the_caller_with_one_moment,
    an_unsigned_or_forged_request_is_refused_and_nothing_recorded,
    status_callbacks_complete_the_call_record,
);

#[tokio::test]
async fn a_broken_template_stops_the_start_and_names_template_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("menu.xml"),
        "{%- import \"_macros.xml\" as m -%}\n<Response>\n  <Sya>{{ greet }}</Sya>\n</Response>\n",
    )
    .unwrap();
    let db = common::TestDb::new(Backend::Sqlite).await;
    let settings = common::settings_for(&db.url, |s| s.ivr.twiml_dir = Some(dir.path().to_str().unwrap().into()));
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("menu.xml") && err.contains("line 3") && err.contains("Sya"), "{err}");

    std::fs::write(dir.path().join("menu.xml"), "<Response>\n{% if %}\n</Response>\n").unwrap();
    let settings = common::settings_for(&db.url, |s| s.ivr.twiml_dir = Some(dir.path().to_str().unwrap().into()));
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("menu.xml") && err.contains("line 2"), "{err}");
}

#[tokio::test]
async fn a_template_comparing_with_a_name_no_reason_has_stops_the_start() {
    // A typo compiles and silently falls through to the `{% else %}`; the start-up check names it.
    let dir = tempfile::tempdir().unwrap();
    let goodbye = orderline::twilio::render::built_in("goodbye.xml").unwrap();
    assert!(goodbye.contains("reason == \"not_verified\""), "the built-in compares the reason");
    std::fs::write(dir.path().join("goodbye.xml"), goodbye.replace("\"not_verified\"", "\"not_verfied\"")).unwrap();
    let db = common::TestDb::new(Backend::Sqlite).await;
    let settings = common::settings_for(&db.url, |s| s.ivr.twiml_dir = Some(dir.path().to_str().unwrap().into()));
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("goodbye.xml") && err.contains("not_verfied") && err.contains("not_verified"), "{err}");

    let transfer_ended = orderline::twilio::render::built_in("transfer_ended.xml").unwrap();
    std::fs::write(dir.path().join("goodbye.xml"), goodbye).unwrap();
    std::fs::write(dir.path().join("transfer_ended.xml"), transfer_ended.replace("\"no_answer\"", "\"no-answer\""))
        .unwrap();
    let settings = common::settings_for(&db.url, |s| s.ivr.twiml_dir = Some(dir.path().to_str().unwrap().into()));
    let err = orderline::app::start(settings).await.err().expect("refused to start").to_string();
    assert!(err.contains("transfer_ended.xml") && err.contains("`outcome` is never \"no-answer\""), "{err}");
}

/// A line (SQLite, no verification) whose ORDERLINE_TWIML_DIR holds `name` with `source`; the
/// folder lives as long as the returned guard.
async fn line_with_template(name: &str, source: &str) -> (tempfile::TempDir, Line) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), source).unwrap();
    let dir_text = dir.path().to_str().unwrap().to_string();
    let line = line(Backend::Sqlite, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.twiml_dir = Some(dir_text.as_str().into());
    })
    .await;
    (dir, line)
}

#[tokio::test]
async fn an_operator_can_reword_a_step_without_recompiling() {
    let menu =
        orderline::twilio::render::built_in("menu.xml").unwrap().replace("thanks for calling", "welcome back to");
    let (_dir, line) = line_with_template("menu.xml", &menu).await;
    let t = line.call(DANA, &[]).await;
    assert!(said(&t).starts_with("Hi Dana, welcome back to Orderline Demo."), "{}", said(&t));
    line.app.stop().await;
}

#[tokio::test]
async fn an_operator_can_dress_every_say_with_their_own_say_macro() {
    // `say` is built in for speed and exported by _macros.xml; a `say` macro there takes its
    // place in every step that says things through `m.say` (and in the shared macros).
    let built_in = orderline::twilio::render::built_in("_macros.xml").unwrap();
    assert!(built_in.contains("{%- set say = say -%}"), "the built-in exports the built-in say");
    let own = built_in.replace(
        "{%- set say = say -%}",
        "{% macro say(text) -%}\n<Say voice=\"{{ voice }}\" language=\"{{ language }}\"><prosody rate=\"90%\">{{ text }}</prosody></Say>\n{%- endmacro %}",
    );
    let (_dir, line) = line_with_template("_macros.xml", &own).await;
    let t = line.call(DANA, &[]).await;
    let menu = t.turns[0].document.as_ref().expect("the menu is TwiML");
    let says = menu.find_all("Say");
    assert!(says.len() >= 3, "greeting, order and keys: {says:?}");
    for say in says {
        assert_eq!(say.children.len(), 1, "every <Say> is the operator's: {say:?}");
        assert_eq!(say.children[0].name, "prosody");
        assert_eq!(say.children[0].attr("rate"), Some("90%"));
    }
    assert!(said(&t).starts_with("Hi Dana, thanks for calling Orderline Demo."), "{}", said(&t));
    assert!(said(&t).contains("Press 1 to hear that again."), "the keys, through the shared macro: {}", said(&t));
    line.app.stop().await;
}
