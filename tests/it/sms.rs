//! The tracking link by text (key 4), end to end: orderline on 127.0.0.1:0 with real Postgres
//! and SQLite, the Shopify emulator's demo shop, the Twilio caller emulator dialing in, and the
//! Twilio REST emulator taking the message (and POSTing its signed status callbacks back).

use axum::extract::FromRef;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::common::line::{Line, TOKEN, TwilioLine, line, line_with_twilio};
use crate::common::{Backend, SHOP};
use chrono::Utc;
use orderline::clock::SystemClock;
use orderline::config::{PromptMode, Secret, Settings, VerifyPolicy};
use orderline::shopify::payload::ShopifyChange;
use orderline::sim::twilio::rest::{Delivery, RestFailure, RestSimConfig, RestSimServer, TwilioRestSim};
use orderline::sim::twilio::{DEFAULT_TO, Transcript};
use orderline::store::Ts;
use orderline::twilio::signature;

const DANA: &str = "+15551234567";
const OFFER: &str = "Press 4 and we'll text you the tracking link.";
const SENT: &str = "We've sent the text with your tracking link.";
const APOLOGY: &str = "Sorry, we couldn't send the text right now.";

/// The Twilio account orderline texts through: the emulator, signing callbacks with the same
/// auth token the line checks.
struct Texting {
    line: Line,
    twilio: TwilioRestSim,
    _server: RestSimServer,
}

async fn texting(backend: Backend, change: impl FnOnce(&mut Settings)) -> Texting {
    let TwilioLine { line, twilio, server } = line_with_twilio(backend, change, Arc::new(SystemClock)).await;
    Texting { line, twilio, _server: server }
}

fn said(t: &Transcript) -> String {
    t.spoken().join(" | ")
}

/// Dana's latest order's tracking link, carrier and name, as the emulator's shop has them.
fn danas_tracking(line: &Line) -> (String, String, String) {
    let order = line.latest_order("Dana");
    let f = order.fulfillments.iter().max_by_key(|f| f.created_at).expect("Dana's latest order has shipped");
    (order.name.clone(), f.tracking_company.clone().unwrap(), f.tracking_url.clone().unwrap())
}

/// Waits (at most 5 s) until the call's first text has `status` in the store.
async fn wait_for_status(line: &Line, call_sid: &str, status: &str) -> orderline::store::SmsRow {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = line.app.store().sms_of_call(call_sid).await.unwrap();
        if let Some(row) = rows.first().filter(|r| r.status == status) {
            return row.clone();
        }
        assert!(Instant::now() < deadline, "no text reached {status}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn card(line: &Line, call_sid: &str) -> orderline::agent::card::CallCard {
    line.flush_calls().await;
    let state = &line.app.running.as_ref().unwrap().state;
    orderline::agent::card::call_card(&orderline::agent::AgentDesk::from_ref(state), call_sid)
        .await
        .unwrap()
        .expect("the call is recorded")
}

async fn pressing_4_texts_the_tracking_link_once(backend: Backend) {
    let t = texting(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.shop_name = "Orderline Demo".into();
    })
    .await;
    let call = t.line.call(DANA, &["4", "4", "1"]).await;
    let text = said(&call);
    assert!(text.contains(OFFER), "the menu offers the text: {text}");
    assert_eq!(text.matches(SENT).count(), 2, "both presses hear it was sent: {text}");
    // After the text, the menu again: the call goes on.
    let after = &text[text.find(SENT).unwrap()..];
    assert!(after.contains("Press 1 to hear that again."), "{after}");
    let messages = t.twilio.messages();
    assert_eq!(messages.len(), 1, "pressing 4 twice sends one text: {messages:?}");
    let (name, carrier, url) = danas_tracking(&t.line);
    let m = &messages[0];
    assert_eq!((m.to.as_str(), m.from.as_str()), (DANA, DEFAULT_TO), "to the caller, from the number called");
    assert_eq!(m.body, format!("Orderline Demo: tracking for order {name} ({carrier}): {url}"));
    assert_eq!(m.status_callback.as_deref(), Some(format!("{}/twilio/sms-status", t.line.app.url).as_str()));
    // Recorded: the events of the call, and the message's row, moved on by Twilio's callbacks.
    t.line.flush_calls().await;
    let events = t.line.app.store().call_events(&call.call_sid).await.unwrap();
    let sms: Vec<&str> = events.iter().filter(|e| e.kind == "sms").map(|e| e.detail.as_str()).collect();
    assert_eq!(sms, [format!("sent {}", m.sid), format!("already sent {}", m.sid)], "{events:?}");
    let row = wait_for_status(&t.line, &call.call_sid, "delivered").await;
    assert_eq!(
        (row.message_sid.as_deref(), row.to_number.as_str(), row.error_code),
        (Some(m.sid.as_str()), DANA, None)
    );
    // The agent's card: the text's state, the number masked.
    let card = card(&t.line, &call.call_sid).await;
    assert_eq!(card.sms.len(), 1, "{:?}", card.sms);
    let shown = &card.sms[0];
    assert_eq!((shown.status.as_str(), shown.failed), ("delivered", false));
    assert!(!shown.to.contains("1234567") && shown.to.ends_with("4567"), "masked: {}", shown.to);
    let json = serde_json::to_string(&card).unwrap();
    assert!(json.contains("\"sms\":[{"), "{json}");
    // customers/redact: the text (it holds the caller's number) goes with the customer.
    let customer_id = t.line.latest_order("Dana").customer.unwrap().id;
    let redact = ShopifyChange::CustomerRedact { customer_id, orders_to_redact: Vec::new() };
    t.line.app.store().apply_all(SHOP, &[redact.into()], "US", Ts::from(Utc::now())).await.unwrap();
    assert!(t.line.app.store().sms_of_call(&call.call_sid).await.unwrap().is_empty(), "redacted");
    t.line.app.stop().await;
}

/// Key 4 is not offered, and pressing it is an invalid key: "didn't catch that", no text.
async fn not_offered(t: &Texting, from: &str, keys: &[&str], why: &str) {
    let before = t.twilio.messages().len();
    let call = t.line.call(from, keys).await;
    let text = said(&call);
    assert!(!text.contains(OFFER), "{why}: offered anyway: {text}");
    assert!(!text.contains(SENT) && !text.contains(APOLOGY), "{why}: {text}");
    assert_eq!(t.twilio.messages().len(), before, "{why}: a text was sent");
    assert!(t.line.app.store().sms_of_call(&call.call_sid).await.unwrap().is_empty(), "{why}: a row was written");
}

async fn key_4_is_not_offered_without_a_number_verification_or_link(backend: Backend) {
    // A withheld number: the caller keys an order number and hears about it, but is not texted.
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let name = t.line.latest_order("Dana").name;
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    not_offered(&t, "anonymous", &[&digits, "4"], "withheld").await;
    let call = t.line.call("anonymous", &[&digits, "4"]).await;
    assert!(said(&call).contains("Sorry, I didn't catch that."), "4 is an invalid key: {}", said(&call));
    t.line.app.stop().await;
    // An order without a tracking URL (a carrier and a number only): nothing to send.
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let mut order = t.line.latest_order("Dana");
    for f in &mut order.fulfillments {
        f.tracking_url = None;
    }
    order.updated_at = Utc::now();
    t.line
        .app
        .store()
        .apply_all(SHOP, &[ShopifyChange::Order(Box::new(order)).into()], "US", Ts::from(Utc::now()))
        .await
        .unwrap();
    not_offered(&t, DANA, &["4"], "no tracking URL").await;
    t.line.app.stop().await;
    // Unverified: the menu is never reached; 4 at the postal-code question is a wrong code.
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::PostalCode).await;
    not_offered(&t, DANA, &["4"], "unverified").await;
    t.line.app.stop().await;
    // SMS off, or the REST API not configured.
    let t = texting(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.sms = false;
    })
    .await;
    not_offered(&t, DANA, &["4"], "ORDERLINE_SMS=false").await;
    t.line.app.stop().await;
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let call = line.call(DANA, &["4"]).await;
    assert!(!said(&call).contains(OFFER) && said(&call).contains("Sorry, I didn't catch that."), "{}", said(&call));
    line.app.stop().await;
}

async fn twilio_failing_or_slow_means_an_apology_and_the_call_goes_on(backend: Backend) {
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    for (failure, detail) in [(RestFailure::Http(503), "failed: HTTP 503"), (RestFailure::Http(401), "failed: 20003")] {
        t.twilio.set_failure(failure);
        let call = t.line.call(DANA, &["4", "1"]).await;
        let text = said(&call);
        assert!(text.contains(APOLOGY) && !text.contains(SENT), "{failure:?}: {text}");
        // The menu again, and the next key works.
        assert_eq!(text.matches("Press 1 to hear that again.").count(), 3, "{failure:?}: {text}");
        let row = wait_for_status(&t.line, &call.call_sid, "failed").await;
        assert_eq!(row.message_sid, None, "{failure:?}");
        t.line.flush_calls().await;
        let events = t.line.app.store().call_events(&call.call_sid).await.unwrap();
        let sms: Vec<&str> = events.iter().filter(|e| e.kind == "sms").map(|e| e.detail.as_str()).collect();
        assert!(sms.len() == 1 && sms[0].starts_with(detail), "{failure:?}: {sms:?}");
        let shown = card(&t.line, &call.call_sid).await.sms;
        assert!(shown.len() == 1 && shown[0].failed, "a failed send is on the card: {shown:?}");
    }
    assert!(t.twilio.messages().is_empty(), "refused requests are no messages");
    // Slow: the caller waits at most the budget, hears the apology; the text still goes.
    t.twilio.set_failure(RestFailure::None);
    t.twilio.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    let call = t.line.call(DANA, &["4"]).await;
    let waited = started.elapsed();
    assert!(said(&call).contains(APOLOGY), "{}", said(&call));
    assert!(waited < Duration::from_millis(2900), "the caller waited {waited:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(t.twilio.messages().len(), 1, "Twilio took it after the budget");
    t.line.app.stop().await;
}

async fn post_status(t: &Texting, params: &[(&str, &str)], sign_with: &str) -> reqwest::StatusCode {
    let url = format!("{}/twilio/sms-status", t.line.app.url);
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = signature::sign(sign_with, &url, &params);
    t.line.app.client.post(&url).header("X-Twilio-Signature", signature).form(&params).send().await.unwrap().status()
}

async fn status_callbacks_are_signed_and_known(backend: Backend) {
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    t.twilio.set_delivery(Delivery::Never);
    let call = t.line.call(DANA, &["4"]).await;
    let sid = t.twilio.messages()[0].sid.clone();
    let row = wait_for_status(&t.line, &call.call_sid, "queued").await;
    let undelivered = [("MessageSid", sid.as_str()), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    // Forged (another token) or unsigned: refused, nothing written.
    assert_eq!(post_status(&t, &undelivered, "not-the-token").await, 403);
    let url = format!("{}/twilio/sms-status", t.line.app.url);
    let unsigned = t.line.app.client.post(&url).form(&undelivered).send().await.unwrap().status();
    assert_eq!(unsigned, 403);
    assert_eq!(t.line.app.store().sms_of_call(&call.call_sid).await.unwrap()[0], row);
    // A message orderline never sent, or none named: 4xx, nothing written.
    let stranger = "SM0123456789abcdef0123456789abcdef";
    assert_eq!(post_status(&t, &[("MessageSid", stranger), ("MessageStatus", "delivered")], TOKEN).await, 404);
    assert_eq!(post_status(&t, &[("MessageStatus", "delivered")], TOKEN).await, 400);
    assert_eq!(post_status(&t, &[("MessageSid", sid.as_str())], TOKEN).await, 400);
    assert_eq!(t.line.app.store().sms_of_call(&call.call_sid).await.unwrap()[0], row);
    // Signed and known: the status and error code are kept; an earlier status arriving late
    // does not undo a final one.
    assert_eq!(post_status(&t, &undelivered, TOKEN).await, 204);
    assert_eq!(post_status(&t, &[("MessageSid", sid.as_str()), ("MessageStatus", "sent")], TOKEN).await, 204);
    let row = t.line.app.store().sms_of_call(&call.call_sid).await.unwrap().remove(0);
    assert_eq!((row.status.as_str(), row.error_code), ("undelivered", Some(30003)));
    let shown = card(&t.line, &call.call_sid).await.sms;
    assert!(shown[0].failed && shown[0].error_code == Some(30003), "{shown:?}");
    t.line.app.stop().await;
}

const LABEL_OFFER: &str = "Press 6 and we'll text you the return label link.";
const LABEL_SENT: &str = "We've sent the text with your return label link.";

/// Dana's latest order with a return the shop approved, and `label_url` on its label (UPS),
/// moved there by the emulator's webhooks.
async fn approved_return(t: &Texting, label_url: Option<&str>) -> String {
    use orderline::shopify::returns::ReturnLabel;
    use orderline::sim::shopify::WebhookTarget;
    let line = &t.line;
    line.sim.set_webhook_target(WebhookTarget::new(
        format!("{}/shopify/webhooks", line.app.url),
        crate::common::SECRET,
        SHOP,
    ));
    let order = line.latest_order("Dana");
    let id = line.sim.request_return(order.id, 1, 0).expect("the order is in the shop");
    assert!(line.sim.approve_return(id));
    let label = ReturnLabel {
        carrier: Some("UPS".into()),
        tracking_number: Some("1ZRETURN0001".into()),
        tracking_url: None,
        label_url: label_url.map(str::to_string),
    };
    assert!(line.sim.attach_return_label(id, label));
    let stats = line.sim.flush_webhooks().await;
    assert_eq!(stats.non_2xx + stats.failed, 0, "{stats:?}");
    line.app.settle().await;
    order.name
}

async fn pressing_6_after_returns_texts_the_return_label_once(backend: Backend) {
    const LABEL: &str = "https://cdn.shopify.example/labels/1ZRETURN0001.pdf";
    let t = texting(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.ivr.shop_name = "Orderline Demo".into();
    })
    .await;
    let name = approved_return(&t, Some(LABEL)).await;
    // The main menu does not offer it; key 3 does.
    let call = t.line.call(DANA, &["3", "6", "6", "4"]).await;
    let first_turn: Vec<String> = call.turns[0].heard.iter().map(|v| v.spoken()).collect();
    assert!(!first_turn.join(" ").contains(LABEL_OFFER), "{first_turn:?}");
    let text = said(&call);
    assert!(text.contains(LABEL_OFFER), "key 3 offers the label: {text}");
    assert_eq!(text.matches(LABEL_SENT).count(), 2, "both presses hear it was sent: {text}");
    // After the label, the returns again, then the tracking link (key 4) is a text of its own.
    let after = &text[text.find(LABEL_SENT).unwrap()..];
    assert!(after.contains("your return was approved, the return label is with UPS"), "{after}");
    assert!(text.contains(SENT), "key 4 still texts the tracking link: {text}");
    let messages = t.twilio.messages();
    assert_eq!(messages.len(), 2, "one label text, one tracking text: {messages:?}");
    let label = &messages[0];
    assert_eq!((label.to.as_str(), label.from.as_str()), (DANA, DEFAULT_TO), "to the caller, from the number called");
    assert_eq!(label.body, format!("Orderline Demo: return label for order {name} (UPS): {LABEL}"));
    assert!(messages[1].body.contains(&format!("tracking for order {name}")), "{messages:?}");
    // Recorded: the call's events, a row of each kind, and the card in words.
    t.line.flush_calls().await;
    let events = t.line.app.store().call_events(&call.call_sid).await.unwrap();
    let sms: Vec<&str> = events.iter().filter(|e| e.kind == "sms").map(|e| e.detail.as_str()).collect();
    assert_eq!(
        sms,
        [
            format!("return label sent {}", label.sid),
            format!("return label already sent {}", label.sid),
            format!("sent {}", messages[1].sid)
        ],
        "{events:?}"
    );
    let rows = t.line.app.store().sms_of_call(&call.call_sid).await.unwrap();
    let mut kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["return_label", "tracking"], "{rows:?}");
    let card = card(&t.line, &call.call_sid).await;
    let summary = card.summary.join(" | ");
    assert!(summary.contains(&format!("Texted: the return label for {name}")), "{summary}");
    assert!(summary.contains(&format!("Texted: the tracking link for {name}")), "{summary}");
    t.line.app.stop().await;
}

async fn key_6_is_not_offered_without_a_label_link(backend: Backend) {
    // An approved return whose label has a carrier but no link: nothing to text.
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    approved_return(&t, None).await;
    let call = t.line.call(DANA, &["3", "6"]).await;
    let text = said(&call);
    assert!(text.contains("your return was approved, the return label is with UPS"), "{text}");
    assert!(!text.contains(LABEL_OFFER) && !text.contains(LABEL_SENT), "{text}");
    assert!(text.contains("Sorry, I didn't catch that."), "6 is an invalid key: {text}");
    assert!(t.twilio.messages().is_empty());
    t.line.app.stop().await;
    // A link, but a withheld number: the caller keys the order number, hears the returns, no offer.
    let t = texting(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let name = approved_return(&t, Some("https://cdn.shopify.example/labels/x.pdf")).await;
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    let call = t.line.call("anonymous", &[&digits, "3", "6"]).await;
    let text = said(&call);
    assert!(text.contains("your return was approved") && !text.contains(LABEL_OFFER), "{text}");
    assert!(t.twilio.messages().is_empty());
    t.line.app.stop().await;
}

on_both_backends!(
    pressing_6_after_returns_texts_the_return_label_once,
    key_6_is_not_offered_without_a_label_link,
    pressing_4_texts_the_tracking_link_once,
    key_4_is_not_offered_without_a_number_verification_or_link,
    twilio_failing_or_slow_means_an_apology_and_the_call_goes_on,
    status_callbacks_are_signed_and_known,
);

/// The REST emulator refuses a message the way Twilio does, through orderline's own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_validates_messages_like_twilio() {
    use orderline::config::Secret;
    use orderline::twilio::rest::{RestCredentials, TwilioError, TwilioRest};
    let twilio = TwilioRestSim::new(RestSimConfig::default());
    let server = twilio.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let c = twilio.config().clone();
    let credentials = RestCredentials {
        account_sid: c.account_sid.clone(),
        username: c.account_sid.clone(),
        password: Secret::new(c.auth_token),
    };
    let rest = TwilioRest::new(&server.url(), credentials, std::sync::Arc::new(orderline::ops::Metrics::new()));
    let long = "x".repeat(1601);
    for (to, from, body, code) in [
        ("", DEFAULT_TO, "hi", 21604),
        ("not a number", DEFAULT_TO, "hi", 21211),
        (DANA, "", "hi", 21606),
        (DANA, "+15005550006", "hi", 21659),
        (DANA, DEFAULT_TO, "  ", 21602),
        (DANA, DEFAULT_TO, long.as_str(), 21617),
    ] {
        match rest.send_message(to, from, body, None).await {
            Err(TwilioError::Refused { status: 400, error }) => assert_eq!(error.code, Some(code), "{to:?} {from:?}"),
            other => panic!("{to:?} {from:?}: {other:?}"),
        }
    }
    assert!(twilio.messages().is_empty(), "refused requests are no messages");
    let sent = rest.send_message(DANA, DEFAULT_TO, &"y".repeat(1600), None).await.unwrap();
    assert_eq!(sent.status, "queued");
    assert!(sent.sid.starts_with("SM") && sent.sid.len() == 34, "{}", sent.sid);
    let listed = rest.messages_to(DANA).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid, sent.sid);
    assert!(rest.messages_to("+15550000000").await.unwrap().is_empty());
    server.stop().await;
}

/// Key 4 needs the REST API (and ORDERLINE_SMS); both prompt modes say it (Media Streams with
/// recorded phrases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_offered_only_with_the_rest_api() {
    use std::sync::Arc;
    let store = orderline::store::Store::connect("sqlite::memory:").await.unwrap();
    let clock: Arc<dyn orderline::clock::Clock> = Arc::new(orderline::clock::SystemClock);
    let metrics = Arc::new(orderline::ops::Metrics::new());
    let sid = orderline::sim::twilio::ACCOUNT_SID;
    let with = |change: &dyn Fn(&mut Settings)| {
        let mut settings = Settings::default();
        settings.twilio.auth_token = Some(Secret::new(TOKEN));
        settings.server.public_url = "https://line.example.com".into();
        change(&mut settings);
        settings.validated()
    };
    let texts = |s: Result<Settings, _>| orderline::app::texts(&s.unwrap(), &store, &clock, &metrics).is_some();
    assert!(texts(with(&|s| s.twilio.account_sid = Some(sid.into()))));
    assert!(!texts(with(&|_| {})), "no account: no REST API");
    assert!(!texts(with(&|s| {
        s.twilio.account_sid = Some(sid.into());
        s.ivr.sms = false;
    })));
    let media = with(&|s| {
        s.twilio.account_sid = Some(sid.into());
        s.ivr.prompt_mode = PromptMode::MediaStream;
    });
    assert!(texts(media), "offered over Media Streams too");
    let bad = with(&|s| s.ivr.sms_from = Some("call me".into()));
    let err = bad.unwrap_err().to_string();
    assert!(err.contains("ORDERLINE_SMS_FROM"), "{err}");
}
