//! Issue 19, "where is my refund?": returns and refunds as Shopify tracks them, stored through
//! the one apply path and spoken in plain words on key 3, on Postgres and SQLite. The Shopify
//! emulator moves each return through its stages and sends the webhooks Shopify sends; the
//! Twilio caller emulator presses 3 and the test reads what was said.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orderline::app;
use orderline::clock::SystemClock;
use orderline::config::{Secret, Settings, VerifyPolicy};
use orderline::domain::{DeclineReason, ShopifyId};
use orderline::ivr::order_status::spoken_digits;
use orderline::ops::Metrics;
use orderline::shopify::graphql::{Operation, gid};
use orderline::shopify::payload::ShopifyOrder;
use orderline::shopify::reconciler::Reconciler;
use orderline::shopify::returns::ReturnLabel;
use orderline::shopify::schema;
use orderline::shopify::signature;
use orderline::sim::shopify::WebhookTarget;
use orderline::sim::twilio::Transcript;
use orderline::store::Ts;
use serde_json::json;

use crate::common::line::{Line, line};
use crate::common::{Backend, SECRET, SHOP, TestApp, fixture_bytes};

const DANA: &str = "+15551234567";
const ELEANOR: &str = "+447700900123";

/// orderline with the demo shop, callers trusted by caller ID, and the emulator's webhooks
/// flowing to it. A `returns/update` marks its order for a refetch, and what the next call says
/// is the refetched order's: the budget is generous, so these tests do not depend on how busy
/// the machine is (what a caller hears when Shopify is slower than it is in tests/it/faults.rs).
async fn shop(backend: Backend, change: impl FnOnce(&mut Settings)) -> Line {
    let line = line(backend, |s| {
        s.ivr.verify = VerifyPolicy::None;
        s.lookup.lookup_budget = std::time::Duration::from_secs(5);
        change(s);
    })
    .await;
    line.sim.set_webhook_target(WebhookTarget::new(format!("{}/shopify/webhooks", line.app.url), SECRET, SHOP));
    line
}

/// Sends what the emulator has queued and waits until orderline has applied it.
async fn delivered(line: &Line) {
    let stats = line.sim.flush_webhooks().await;
    assert_eq!(stats.non_2xx + stats.failed, 0, "{stats:?}");
    line.app.settle().await;
}

/// Calls as `from`, presses 3, and gives back what key 3 said (the text between the key and
/// the menu that follows it).
pub(crate) async fn key_3(line: &Line, from: &str) -> Vec<String> {
    answer(line, from, &["3"]).await
}

/// Calls as `from`, answers the menu with `script` (keys or `say:…`), and gives back what was
/// said after the greeting and menu, without the menu that follows.
async fn answer(line: &Line, from: &str, script: &[&str]) -> Vec<String> {
    let t: Transcript = line.call(from, script).await;
    let spoken = t.spoken();
    // The first turn is the greeting and the menu; everything after is the answer.
    let first_turn = t.turns[0].heard.iter().filter(|v| v.name == "Say").count();
    spoken[first_turn..].iter().filter(|s| !s.contains("Press 1 to hear that again")).cloned().collect()
}

pub(crate) fn said(sentences: &[String]) -> String {
    sentences.join(" | ")
}

/// Dana's latest order: delivered or on its way, so it can be returned.
fn dana_order(line: &Line) -> ShopifyOrder {
    line.latest_order("Dana")
}

async fn a_requested_return_is_waiting_for_approval(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    line.sim.request_return(order.id, 1, 0).expect("the order is in the shop");
    delivered(&line).await;

    let heard = key_3(&line, DANA).await;
    let number = spoken_digits(&order.name);
    let expected = format!("Order number {number}: your return was requested and is waiting for approval.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

async fn an_approved_return_names_its_label_carrier_then_says_when_the_parcel_arrived(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    let number = spoken_digits(&order.name);
    let id = line.sim.request_return(order.id, 2, 0).unwrap();
    assert!(line.sim.approve_return(id));
    let label = ReturnLabel {
        carrier: Some("UPS".into()),
        tracking_number: Some("1ZRETURN0001".into()),
        tracking_url: Some("https://www.ups.com/track?tracknum=1ZRETURN0001".into()),
        label_url: Some("https://cdn.shopify.example/labels/1ZRETURN0001.pdf".into()),
    };
    assert!(line.sim.attach_return_label(id, label));
    delivered(&line).await;

    let heard = key_3(&line, DANA).await;
    let expected = format!(
        "Order number {number}: your return was approved, the return label is with UPS, and the parcel has not reached us yet."
    );
    assert!(heard.contains(&expected), "{}", said(&heard));

    // The parcel is scanned in at the shop: `returns/update` says only that something changed,
    // so the order is refetched from Shopify on the next call.
    assert!(line.sim.receive_return(id));
    delivered(&line).await;
    let heard = key_3(&line, DANA).await;
    let expected = format!("Order number {number}: we received your returned items.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

async fn a_declined_return_says_shopifys_reason(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    assert!(line.sim.decline_return(id, DeclineReason::FinalSale, Some("Clearance item")));
    delivered(&line).await;

    let heard = key_3(&line, DANA).await;
    let number = spoken_digits(&order.name);
    let expected = format!("Order number {number}: your return was declined. The items were final sale.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    assert!(!said(&heard).contains("Clearance"), "the merchant's note is not read out: {}", said(&heard));
    line.app.stop().await;
}

async fn a_refunded_return_says_how_much_when_and_when_it_reaches_the_card(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let (complete, refunded) = refunded_21_50(&line).await;
    let heard = key_3(&line, DANA).await;
    assert!(heard.contains(&complete), "{}", said(&heard));
    let refund = format!("{refunded} It should reach your card within 5 to 10 business days.");
    assert!(heard.contains(&refund), "{}", said(&heard));
    line.app.stop().await;
}

/// Dana's latest order returned and refunded $21.50: what key 3 says of it (the return's
/// sentence and the refund's, without the card sentence).
async fn refunded_21_50(line: &Line) -> (String, String) {
    let order = dana_order(line);
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    assert!(line.sim.approve_return(id));
    assert!(line.sim.process_return(id, Some("21.50")));
    delivered(line).await;
    let refund_at = line.sim.order(order.id).unwrap().refunds.last().unwrap().created_at.unwrap();
    let day = refund_at.with_timezone(&chrono_tz::UTC).format("%A, %B %-d").to_string();
    (
        format!("Order number {}: your return is complete.", spoken_digits(&order.name)),
        format!("It was refunded $21.50 on {day}."),
    )
}

/// Asking in words is key 3: Twilio's `<Gather input="dtmf speech">` hands orderline "where is
/// my refund", and the caller hears the refund.
async fn asking_where_the_refund_is_in_words_is_key_3(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let (complete, refund) = refunded_21_50(&line).await;
    let heard = said(&answer(&line, DANA, &["say:where is my refund"]).await);
    assert!(heard.contains(&complete) && heard.contains(&refund), "{heard}");
    line.app.stop().await;
}

/// The same over ConversationRelay, where Twilio's session sends the words as a `prompt` and
/// orderline answers in text.
async fn over_conversation_relay_asking_where_the_refund_is_says_it(backend: Backend) {
    let line = shop(backend, |s| {
        crate::relay::relay(s);
        crate::relay::fast(s);
    })
    .await;
    let (complete, refund) = refunded_21_50(&line).await;
    let t = crate::relay::relay_call(&line, DANA, &["say:where is my refund"]).await;
    assert_eq!(t.heard.len(), 2, "the greeting, then the answer: {:?}", t.heard);
    assert!(t.heard[1].contains(&complete) && t.heard[1].contains(&refund), "{}", t.heard[1]);
    line.app.stop().await;
}

/// The clips `from` hears after pressing 3 during the greeting (the answer is what a test
/// listens to).
async fn key_3_over_the_stream(line: &Line, from: &str) -> Vec<String> {
    let t = crate::media::media_call(line, from, &["!3"]).await;
    t.prompts[1..].iter().flat_map(|p| p.clips.iter().cloned()).collect()
}

async fn over_media_streams_a_refund_is_said_with_its_amount_and_the_return_window(backend: Backend) {
    let line = shop(backend, |s| {
        crate::media::media(s);
        s.ivr.return_window_days = Some(30);
    })
    .await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    assert!(line.sim.approve_return(id));
    assert!(line.sim.process_return(id, Some("21.50")));
    delivered(&line).await;

    let answer = key_3_over_the_stream(&line, DANA).await;
    let has = |run: &[&str]| answer.windows(run.len()).any(|w| w == run);
    assert!(has(&["ret_complete"]), "{answer:?}");
    let amount = ["ret_refund_amount", "number_20", "digit_1", "dollars", "and", "number_50", "cents"];
    assert!(has(&amount), "$21.50 in words: {answer:?}");
    assert!(has(&["ret_window", "number_30", "ret_window_days"]), "the shop's window: {answer:?}");

    // Eleanor shops in pounds (the demo shop's UK orders are in GBP): her refund in pounds and a penny.
    let order = line.latest_order("Eleanor");
    assert_eq!(order.currency.as_deref(), Some("GBP"));
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    assert!(line.sim.approve_return(id));
    assert!(line.sim.process_return(id, Some("21.01")));
    delivered(&line).await;
    let answer = key_3_over_the_stream(&line, ELEANOR).await;
    let has = |run: &[&str]| answer.windows(run.len()).any(|w| w == run);
    let amount = ["ret_refund_amount", "number_20", "digit_1", "pounds", "and", "digit_1", "penny"];
    assert!(has(&amount), "£21.01 in words: {answer:?}");
    line.app.stop().await;
}

async fn an_exchange_is_mentioned(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 1).unwrap();
    assert!(line.sim.approve_return(id));
    delivered(&line).await;

    let heard = key_3(&line, DANA).await;
    let number = spoken_digits(&order.name);
    let expected = format!(
        "Order number {number}: your return was approved, and the return label is not ready yet. It includes an exchange for 1 item."
    );
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

/// Posts a return delivery signed as Shopify signs it, with its own `X-Shopify-Triggered-At`.
async fn post(line: &Line, topic: &str, webhook_id: &str, body: &serde_json::Value, triggered_at: &str) {
    let body = serde_json::to_vec(body).unwrap();
    let status = line
        .app
        .client
        .post(format!("{}/shopify/webhooks", line.app.url))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", signature::sign(SECRET, &body))
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-API-Version", "2026-10")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Event-Id", format!("event-{webhook_id}"))
        .header("X-Shopify-Triggered-At", triggered_at)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

async fn an_approval_delivered_before_its_request_leaves_the_return_open(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    let number = spoken_digits(&order.name);
    let body = |id: i64, status: &str| {
        json!({
            "id": id, "admin_graphql_api_id": gid("Return", ShopifyId(id)), "status": status,
            "order": { "id": order.id, "admin_graphql_api_id": gid("Order", order.id) },
            "total_return_line_items": 1, "name": format!("{}-R1", order.name), "return_line_items": [],
            "return_shipping_fees": [], "exchange_line_items": [], "total_exchange_line_items": 0,
        })
    };
    let now = Utc::now();
    let at = |seconds: i64| (now + chrono::TimeDelta::seconds(seconds)).to_rfc3339();
    // Shopify does not order deliveries: the approval (a second later) arrives first.
    let (one, two) = (9_007_199_254_790_001_i64, 9_007_199_254_790_002_i64);
    post(&line, "returns/approve", "approve-1", &body(one, "open"), &at(1)).await;
    post(&line, "returns/request", "request-1", &body(one, "requested"), &at(0)).await;
    // And within one second, where only the order of the stages can tell.
    post(&line, "returns/approve", "approve-2", &body(two, "open"), &at(2)).await;
    post(&line, "returns/request", "request-2", &body(two, "requested"), &at(2)).await;
    // A retry of the request changes nothing either.
    post(&line, "returns/request", "request-2", &body(two, "requested"), &at(2)).await;
    line.app.settle().await;

    let open = line
        .app
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM returns WHERE id IN ({one}, {two}) AND status = 'open' AND requested_at IS NOT NULL"
        ))
        .await;
    assert_eq!(open, 2, "both returns are open, and their requests were learned");
    let about_the_order = line
        .app
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE topic LIKE 'returns/%' AND order_id = {}",
            order.id
        ))
        .await;
    assert_eq!(about_the_order, 4, "each delivery (the retry once) is recorded as about the order, not the return");
    let heard = key_3(&line, DANA).await;
    let approved = format!("Order number {number}: your return was approved, and the return label is not ready yet.");
    assert_eq!(heard.iter().filter(|s| **s == approved).count(), 2, "{}", said(&heard));
    line.app.stop().await;
}

async fn an_order_past_the_return_window_is_said_to_be_past_it(backend: Backend) {
    // The window is one day shorter than the time since Dana's most recent delivery.
    let probe = shop(backend, |_| {}).await;
    let dana = probe.sim.customers().into_iter().find(|c| c.phone.as_deref() == Some(DANA)).unwrap();
    let delivered_orders: Vec<(ShopifyOrder, DateTime<Utc>)> = probe
        .sim
        .orders()
        .into_iter()
        .filter(|o| o.customer.as_ref().map(|c| c.id) == Some(dana.id))
        .filter(|o| o.refunds.is_empty() && o.financial_status.as_deref() != Some("refunded"))
        .filter_map(|o| {
            let at = o.fulfillments.iter().filter_map(|f| f.delivered_at).max()?;
            Some((o, at))
        })
        .collect();
    probe.app.stop().await;
    let (past, delivered_at) = delivered_orders.into_iter().max_by_key(|(_, at)| *at).expect("Dana has a delivery");
    let days = (Utc::now() - delivered_at).num_days();
    assert!(days >= 2, "the demo delivery is {days} days old");
    let window = u32::try_from(days - 1).unwrap();
    let line = shop(backend, |s| s.ivr.return_window_days = Some(window)).await;

    let heard = key_3(&line, DANA).await;
    let number = spoken_digits(&past.name);
    let expected = format!("Order number {number} is past the {window}-day return window.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    let policy = format!("You can return items within {window} days of delivery.");
    assert!(said(&heard).contains(&policy), "{}", said(&heard));
    assert!(!said(&heard).contains("30 days"), "{}", said(&heard));
    line.app.stop().await;
}

async fn a_caller_with_nothing_to_return_hears_one_sentence(backend: Backend) {
    let line = shop(backend, |_| {}).await;
    // A customer whose recent orders have no return and no refund.
    let orders = line.sim.orders();
    let quiet = line
        .sim
        .customers()
        .into_iter()
        .filter(|c| c.phone.is_some())
        .find(|c| {
            let mine: Vec<&ShopifyOrder> =
                orders.iter().filter(|o| o.customer.as_ref().map(|x| x.id) == Some(c.id)).collect();
            !mine.is_empty()
                && mine.iter().all(|o| o.refunds.is_empty() && o.financial_status.as_deref() != Some("refunded"))
        })
        .expect("the demo shop has a customer without refunds");
    let heard = key_3(&line, quiet.phone.as_deref().unwrap()).await;
    let about_orders: Vec<&String> = heard.iter().filter(|s| s.contains("Order number")).collect();
    assert!(about_orders.is_empty(), "no list: {}", said(&heard));
    assert!(
        heard.contains(&"I don't see any returns or refunds on your recent orders.".to_string()),
        "{}",
        said(&heard)
    );
    assert!(!said(&heard).contains("30 days"), "no window unless the shop sets one: {}", said(&heard));
    line.app.stop().await;
}

async fn the_agents_card_shows_each_orders_return_and_refund(backend: Backend) {
    const AGENT: &str = "agent-token-for-returns";
    let line = shop(backend, |s| s.agents.agent_token = Some(Secret::new(AGENT))).await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 2).unwrap();
    assert!(line.sim.approve_return(id));
    assert!(line.sim.attach_return_label(id, ReturnLabel { carrier: Some("FedEx".into()), ..ReturnLabel::default() }));
    delivered(&line).await;

    let t = line.call(DANA, &["3"]).await;
    line.flush_calls().await;
    let url = format!("{}/api/calls/{}", line.app.url, t.call_sid);
    let card: serde_json::Value =
        line.app.client.get(&url).bearer_auth(AGENT).send().await.unwrap().json().await.unwrap();
    let shown = card["orders"].as_array().unwrap().iter().find(|o| o["name"] == order.name.as_str()).unwrap();
    assert_eq!(shown["returns"], json!(["return approved, label with FedEx, not back yet, exchange for 2 items"]));
    let refunded: Vec<&serde_json::Value> = card["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["returns"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().starts_with("refunded")))
        .collect();
    assert!(!refunded.is_empty(), "Dana's refunded order says so: {card}");
    line.app.stop().await;
}

async fn a_return_whose_webhooks_were_lost_is_learned_from_a_sweep(backend: Backend) {
    // No webhooks reach orderline: the return is known only to Shopify.
    let line = line(backend, |s| s.ivr.verify = VerifyPolicy::None).await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    assert!(line.sim.decline_return(id, DeclineReason::ReturnPeriodEnded, None));
    // The merchant also edits the order, so its `updatedAt` moves and a sweep reads it.
    line.sim.change_order(order.id, |o| o.email = Some("dana.w@example.com".into())).unwrap();
    let store = line.app.store();
    let long_ago = Ts::from(Utc::now() - chrono::TimeDelta::days(365));
    for resource in ["customers", "orders"] {
        store.advance_watermark(SHOP, resource, long_ago, long_ago).await.unwrap();
    }
    let mut settings = Settings::default();
    settings.shopify.access_token = Some(Secret::new(line.sim.config().access_token.as_str()));
    settings.shopify.api_url = Some(line.shopify_url());
    let settings = settings.validated().unwrap();
    let metrics = Arc::new(Metrics::new());
    let reconciler = Reconciler {
        store: store.clone(),
        client: app::shopify_client(&settings, metrics.clone()).unwrap(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: Arc::new(SystemClock),
        metrics,
        lag: std::time::Duration::from_secs(0),
        lookup: None,
    };
    reconciler.sweep().await.unwrap();

    line.sim.reset_counters();
    let heard = key_3(&line, DANA).await;
    assert_eq!(line.sim.requests_for(Operation::CustomersByPhone), 0, "the call was answered from the store");
    let number = spoken_digits(&order.name);
    let expected = format!("Order number {number}: your return was declined. The return period had ended.");
    assert!(heard.contains(&expected), "{}", said(&heard));
    line.app.stop().await;
}

/// Shopify's bodies as the webhook reference lists them (tests/fixtures/shopify), out of order and
/// in one second: the close wins over the approval, the label is kept, a duplicate changes nothing.
async fn the_webhook_bodies_apply_in_any_order(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(app.deliver("orders/create", "order-1", &fixture_bytes("order_create.json")).await, 200);
    for (topic, id, file) in [
        ("reverse_deliveries/attach_deliverable", "label-1", "reverse_delivery_attach_deliverable.json"),
        ("returns/close", "close-1", "return_close.json"),
        ("returns/approve", "approve-1", "return_approve.json"),
        ("returns/approve", "approve-1", "return_approve.json"),
        ("returns/decline", "decline-1", "return_decline.json"),
    ] {
        assert_eq!(app.deliver(topic, id, &fixture_bytes(file)).await, 200, "{topic}");
    }
    app.settle().await;
    let closed = app.db.count(
        "SELECT COUNT(*) FROM returns WHERE id = 9007199254742001 AND status = 'closed' AND order_id = 9007199254741107
         AND label_carrier = 'UPS' AND label_url = 'https://cdn.shopify.example/labels/1ZRETURN0001.pdf'
         AND return_items = 1 AND name = '#1042-R1'",
    )
    .await;
    assert_eq!(closed, 1, "closed, with the label and the approval's facts");
    let declined = app
        .db
        .count(
            "SELECT COUNT(*) FROM returns WHERE id = 9007199254742011 AND status = 'declined'
         AND decline_reason = 'return_period_ended'",
        )
        .await;
    assert_eq!(declined, 1);
    let dead = app.db.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'dead'").await;
    assert_eq!(dead, 0);
    app.stop().await;
}

/// The order documents ask for returns with fields the committed Admin schema extract (2026-10)
/// defines, and the emulator answers them.
async fn the_order_documents_ask_for_returns_shopify_defines(backend: Backend) {
    for op in [Operation::CustomersByPhone, Operation::OrdersByName, Operation::OrdersUpdatedSince] {
        let document = op.document();
        for field in [
            "returns(first: 1, reverse: true)",
            "returnStatus",
            "requestApprovedAt",
            "decline { reason note }",
            "reverseDeliveries",
            "carrierName",
        ] {
            assert!(document.contains(field), "{} asks for {field}", op.name());
        }
        schema::validate(&document).unwrap_or_else(|e| panic!("{}: {e:?}", op.name()));
    }
    // And the emulator, which checks every document against the same extract, answers a live
    // fetch carrying a return with its label.
    let line = shop(backend, |_| {}).await;
    let order = dana_order(&line);
    let id = line.sim.request_return(order.id, 1, 0).unwrap();
    line.sim.approve_return(id);
    line.sim.attach_return_label(id, ReturnLabel { carrier: Some("USPS".into()), ..ReturnLabel::default() });
    let client = line.app.running.as_ref().unwrap().state.shopify.clone().expect("the Shopify client");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let found = client.orders_by_name(&order.name, deadline).await.unwrap();
    let r = &found[0].returns[0];
    assert_eq!(r.label.as_ref().and_then(|l| l.carrier.as_deref()), Some("USPS"));
    assert_eq!(r.status.map(|s| s.as_str()), Some("open"));
    line.app.stop().await;
}

on_both_backends!(
    a_requested_return_is_waiting_for_approval,
    an_approved_return_names_its_label_carrier_then_says_when_the_parcel_arrived,
    a_declined_return_says_shopifys_reason,
    a_refunded_return_says_how_much_when_and_when_it_reaches_the_card,
    asking_where_the_refund_is_in_words_is_key_3,
    over_conversation_relay_asking_where_the_refund_is_says_it,
    over_media_streams_a_refund_is_said_with_its_amount_and_the_return_window,
    an_exchange_is_mentioned,
    an_approval_delivered_before_its_request_leaves_the_return_open,
    an_order_past_the_return_window_is_said_to_be_past_it,
    a_caller_with_nothing_to_return_hears_one_sentence,
    the_order_documents_ask_for_returns_shopify_defines,
    the_agents_card_shows_each_orders_return_and_refund,
    a_return_whose_webhooks_were_lost_is_learned_from_a_sweep,
    the_webhook_bodies_apply_in_any_order,
);
