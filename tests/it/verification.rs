//! Verifying callers (issue 13, findings 4, 5 and the keyed-digits part of 8): postal codes are
//! compared the way they are keyed (letters by their keypad digit) for US, Canadian and UK
//! codes; wrong postal codes are limited per customer and per calling number across calls, after
//! which only a person is offered and the agent's card says why; under `postal_code` an order
//! number alone discloses nothing and no name is spoken before verification; an answer of
//! 60,000 keys is neither echoed nor recorded.

use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::line::{Line, TOKEN, line, line_with};
use crate::common::{Backend, SHOP};
use chrono::Utc;
use orderline::clock::ManualClock;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::shopify::payload::ShopifyChange;
use orderline::sim::twilio::{CallerConfig, Ending, Transcript, TwilioCaller, scripted};
use orderline::store::Ts;

const DANA: &str = "+15551234567";
const DANA_ZIP: &str = "11217";
const STRANGER: &str = "+15550199999";
const AGENT: &str = "agent-secret";

fn digits_of(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).collect()
}

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

fn zip_of(order: &orderline::shopify::payload::ShopifyOrder) -> String {
    order.shipping_address.as_ref().and_then(|a| a.zip.clone()).expect("the demo order ships somewhere")
}

/// The agent's card for a call.
async fn card(line: &Line, call_sid: &str) -> serde_json::Value {
    line.flush_calls().await;
    let url = format!("{}/api/calls/{call_sid}", line.app.url);
    reqwest::Client::new().get(url).bearer_auth(AGENT).send().await.unwrap().json().await.unwrap()
}

/// Moves Dana's latest order (the one whose postal code she is asked) to `zip`.
async fn ship_danas_latest_order_to(line: &Line, zip: &str) {
    let latest = line.latest_order("Dana");
    // In Shopify (the emulator) and in the store, as a webhook would have it.
    let order =
        line.sim.change_order(latest.id, |o| o.shipping_address.as_mut().unwrap().zip = Some(zip.into())).unwrap();
    let change = ShopifyChange::Order(Box::new(order));
    line.app.store().apply_all(SHOP, &[change.into()], "US", Ts::from(Utc::now())).await.unwrap();
    // The change notice reaches the caller cache asynchronously (LISTEN/NOTIFY on Postgres).
    let lookup = &line.app.running.as_ref().unwrap().state.lookup;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Some(cached) = lookup.cached(DANA).await {
        let cached_zip = cached.customers.first().and_then(|c| c.orders.first()).and_then(|o| o.shipping_zip.clone());
        if cached_zip.as_deref() == Some(zip) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cache never saw the new postal code");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn canadian_and_uk_postal_codes_are_keyed_with_their_letters(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    // K1A 0B1 on a keypad: K→5, 1, A→2, 0, B→2, 1.
    ship_danas_latest_order_to(&line, "K1A 0B1").await;
    let t = line.call(DANA, &["101"]).await;
    assert!(said(&t).contains("Sorry, that doesn't match."), "the letters are not dropped: {}", said(&t));
    let t = line.call(DANA, &["512021"]).await;
    assert!(said(&t).contains("Your order number"), "{}", said(&t));
    // SW1A 1AA: S→7, W→9, 1, A→2, 1, A→2, A→2.
    ship_danas_latest_order_to(&line, "SW1A 1AA").await;
    let t = line.call(DANA, &["7912122#"]).await;
    assert!(said(&t).contains("Your order number"), "{}", said(&t));
    // A US ZIP+4 on file: the first five digits are enough.
    ship_danas_latest_order_to(&line, "11217-3904").await;
    let t = line.call(DANA, &[DANA_ZIP]).await;
    assert!(said(&t).contains("Your order number"), "{}", said(&t));
    line.app.stop().await;
}

async fn an_order_number_alone_discloses_nothing(backend: Backend) {
    let line = line(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let marcus = line.latest_order("Marcus");
    let t = line.call(STRANGER, &[&digits_of(&marcus.name), "00000", "00001"]).await;
    let text = said(&t);
    assert!(text.contains("the postal code this order ships to"), "{text}");
    assert!(!text.contains("Marcus") && !text.contains("Your order number"), "nothing disclosed: {text}");
    assert!(!text.contains("delivery") && !text.contains("shipped"), "not even the status: {text}");
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    let card = card(&line, &t.call_sid).await;
    assert_eq!((card["verification"].as_str(), card["transfer"].as_str()), (Some("failed"), Some("not_verified")));

    let t = line.call(STRANGER, &[&digits_of(&marcus.name), &zip_of(&marcus)]).await;
    let text = said(&t);
    assert!(text.contains("Hi Marcus") && text.contains("is out for delivery"), "with its postal code: {text}");
    assert!(!text.contains("Press 2"), "one order only, not the account: {text}");
    line.app.stop().await;
}

async fn no_name_is_spoken_before_verification(backend: Backend) {
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::CallerId).await;
    // A spoofed caller ID has no full attestation.
    let mut spoofed = CallerConfig::new(&line.app.url, TOKEN, DANA);
    spoofed.stir_verstat = Some("TN-Validation-Passed-C".into());
    let t = TwilioCaller::new(spoofed).call(scripted(&["00000"])).await.unwrap();
    let text = said(&t);
    assert!(text.contains("postal code"), "{text}");
    assert!(!text.contains("Dana") && !text.contains("Whitfield"), "{text}");
    line.app.stop().await;
}

async fn wrong_postal_codes_are_limited_per_customer_across_calls(backend: Backend) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let settings = |s: &mut Settings| {
        s.agents.agent_token = Some(Secret::new(AGENT));
        s.ivr.verify_max_failures = 3;
        s.ivr.verify_failure_window = Duration::from_secs(86_400);
    };
    let line = line_with(backend, settings, clock.clone()).await;
    let t = line.call(DANA, &["99999", "99998"]).await;
    assert!(said(&t).contains("Sorry, that doesn't match."), "{}", said(&t));
    // The third wrong code (another call): no more guesses, a person instead.
    let t = line.call(DANA, &["99997"]).await;
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    assert!(!said(&t).contains("doesn't match"), "{}", said(&t));
    let locked = card(&line, &t.call_sid).await;
    assert_eq!(locked["transfer"], "verification_locked", "{locked}");
    assert_eq!(locked["verification"], "failed");
    let why: Vec<&str> = locked["path"].as_array().unwrap().iter().filter_map(|p| p["detail"].as_str()).collect();
    assert!(why.iter().any(|d| d.contains("3 failed postal codes within 1day")), "{why:?}");

    // Locked: even the right code is not asked for, from her number or any other.
    let t = line.call(DANA, &[DANA_ZIP]).await;
    assert!(!said(&t).contains("postal code") && !said(&t).contains("Your order number"), "{}", said(&t));
    assert!(matches!(t.ending, Ending::Enqueue(_)), "{:?}", t.ending);
    let dana = line.latest_order("Dana");
    let t = line.call(STRANGER, &[&digits_of(&dana.name), DANA_ZIP]).await;
    assert!(!said(&t).contains("Your order number"), "her order via another number: {}", said(&t));
    assert_eq!(card(&line, &t.call_sid).await["transfer"], "verification_locked");

    // A day later the failures have aged out.
    clock.advance(chrono::Duration::hours(25));
    let t = line.call(DANA, &[DANA_ZIP]).await;
    assert!(said(&t).contains("Your order number"), "{}", said(&t));
    line.app.stop().await;
}

async fn wrong_postal_codes_are_limited_per_calling_number_across_customers(backend: Backend) {
    let settings = |s: &mut Settings| {
        s.agents.agent_token = Some(Secret::new(AGENT));
        s.ivr.verify_max_failures = 3;
    };
    let line = line(backend, settings).await;
    let (marcus, dana, tom) = (line.latest_order("Marcus"), line.latest_order("Dana"), line.latest_order("Tom"));
    line.call(STRANGER, &[&digits_of(&marcus.name), "00000", "00001"]).await;
    line.call(STRANGER, &[&digits_of(&dana.name), "00002"]).await;
    // Three failures from this number: a third customer's order is not even asked about.
    let t = line.call(STRANGER, &[&digits_of(&tom.name), &zip_of(&tom)]).await;
    assert!(!said(&t).contains("postal code") && !said(&t).contains("Your order number"), "{}", said(&t));
    let locked = card(&line, &t.call_sid).await;
    assert_eq!(locked["transfer"], "verification_locked");
    let why: Vec<&str> = locked["path"].as_array().unwrap().iter().filter_map(|p| p["detail"].as_str()).collect();
    assert!(why.iter().any(|d| d.ends_with("for this calling number")), "{why:?}");
    // Tom himself, from his own number, is not locked out by a stranger's guesses.
    line.app.stop().await;
}

async fn sixty_thousand_keys_are_neither_echoed_nor_recorded(backend: Backend) {
    let line = line(backend, |_| {}).await;
    let keys = "1".repeat(60_000);
    let t = line.call(STRANGER, &[&keys, "timeout"]).await;
    for turn in &t.turns {
        assert!(turn.body.len() < 64 * 1024, "Twilio refuses answers over 64 KB: {} bytes", turn.body.len());
        assert!(!turn.body.contains(&"1 ".repeat(30)), "the keys are not spoken back");
    }
    assert!(said(&t).contains("Sorry, I didn't get that."), "{}", said(&t));
    line.flush_calls().await;
    let events = line.app.store().call_events(&t.call_sid).await.unwrap();
    assert!(events.iter().all(|e| e.detail.len() < 100), "nothing of the 60,000 keys is recorded");
    line.app.stop().await;
}

async fn failures_of_one_kind_never_expire_another_kinds(backend: Backend) {
    use orderline::store::{AttemptKind, Store};
    let db = common::TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = Utc::now();
    let at = |hours_ago: i64| Ts::from(now - chrono::Duration::hours(hours_ago));
    let subject = "customer:9007199254740993".to_string();
    store.record_failure(AttemptKind::PostalCode, std::slice::from_ref(&subject), at(2), at(24)).await.unwrap();
    // A wrong login forgets logins older than its short window, not postal codes.
    store.record_failure(AttemptKind::AgentLogin, &["agent-login:any".into()], at(0), at(1)).await.unwrap();
    assert_eq!(store.failures_since(AttemptKind::PostalCode, &subject, at(24)).await.unwrap(), 1);
    assert_eq!(store.failures_since(AttemptKind::PostalCode, &subject, at(1)).await.unwrap(), 0, "outside the window");
    assert_eq!(store.failures_since(AttemptKind::AgentLogin, &subject, at(24)).await.unwrap(), 0, "kinds apart");
    let stored = db.count("SELECT COUNT(*) FROM failed_attempts WHERE subject LIKE '%9007199254740993%'").await;
    assert_eq!(stored, 0, "only hashes are stored");
    store.close().await;
}

on_both_backends!(
    failures_of_one_kind_never_expire_another_kinds,
    canadian_and_uk_postal_codes_are_keyed_with_their_letters,
    an_order_number_alone_discloses_nothing,
    no_name_is_spoken_before_verification,
    wrong_postal_codes_are_limited_per_customer_across_calls,
    wrong_postal_codes_are_limited_per_calling_number_across_customers,
    sixty_thousand_keys_are_neither_echoed_nor_recorded,
);
