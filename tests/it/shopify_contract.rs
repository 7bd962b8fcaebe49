//! orderline against Shopify as Shopify documents it: every document orderline can send checked
//! against Shopify's published Admin schema (the committed extract of @shopify/dev-mcp's
//! introspection, see tests/fixtures/shopify/README.md; no network), and the client against the
//! emulator's tokens that expire, protected fields, scopes, real costs and error statuses.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Backend, SECRET, SHOP, TestApp};
use orderline::clock::{Clock, ManualClock, SystemClock};
use orderline::config::{Secret, Settings};
use orderline::lookup::Source;
use orderline::shopify::breaker::BreakerState;
use orderline::shopify::client::{REQUIRED_SCOPES, ShopifyClient, ShopifyError};
use orderline::shopify::graphql::{API_VERSION, Operation, PAGE_SIZE};
use orderline::shopify::payload::Topic;
use orderline::shopify::reconciler::Reconciler;
use orderline::shopify::schema;
use orderline::sim::shopify::{Failure, ProtectedData, ShopifySim, SimConfig, SimServer, WebhookTarget};
use tokio::time::Instant;

const DANA: &str = "+15551234567";

#[test]
fn every_document_orderline_sends_is_valid_against_shopifys_admin_schema() {
    for op in Operation::ALL {
        let document = op.document();
        if let Err(errors) = schema::validate(&document) {
            panic!("{} is not valid against the Admin API {API_VERSION} schema: {errors:#?}", op.name());
        }
    }
}

#[test]
fn no_document_uses_a_field_shopify_has_deprecated() {
    for op in Operation::ALL {
        let document = schema::validate(&op.document()).expect("valid (see the test above)");
        assert_eq!(schema::deprecated_fields(&document), Vec::<String>::new(), "{}", op.name());
    }
}

/// The README's `shopify.app.toml` is what a merchant deploys: the pinned version, every scope
/// orderline checks for at start, and every topic it applies (compliance topics apart).
#[test]
fn the_readme_app_configuration_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let quoted = |key: &str| -> String {
        let line = readme.lines().find(|l| l.trim_start().starts_with(&format!("{key} = \""))).unwrap();
        line.split('"').nth(1).unwrap().to_string()
    };
    assert_eq!(quoted("api_version"), API_VERSION);
    let mut scopes: Vec<String> = quoted("scopes").split(',').map(str::to_string).collect();
    let mut needed: Vec<String> = REQUIRED_SCOPES.iter().map(|(s, _)| s.to_string()).collect();
    scopes.sort();
    needed.sort();
    assert_eq!(scopes, needed);
    let list = readme.split("topics = [").nth(1).and_then(|rest| rest.split(']').next()).unwrap();
    let mut listed: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    let compliance = [Topic::CustomersRedact, Topic::ShopRedact, Topic::CustomersDataRequest];
    let mut applied: Vec<&str> = Topic::ALL.iter().filter(|t| !compliance.contains(t)).map(|t| t.as_str()).collect();
    listed.sort();
    applied.sort();
    assert_eq!(listed, applied);
}

struct Setup {
    sim: ShopifySim,
    server: SimServer,
    app: TestApp,
}

impl Setup {
    fn client(&self) -> Arc<ShopifyClient> {
        self.app.running.as_ref().unwrap().state.shopify.clone().expect("a Shopify client")
    }

    async fn stop(self) {
        self.app.stop().await;
        self.server.stop().await;
    }
}

/// The demo shop on the emulator, and orderline using it with a Dev Dashboard app's client
/// credentials (no permanent token), started once its scope check at start is answered.
async fn setup(backend: Backend, config: SimConfig, change: impl FnOnce(&mut Settings)) -> Setup {
    setup_with_clock(backend, config, change, Arc::new(SystemClock)).await
}

async fn setup_with_clock(
    backend: Backend,
    config: SimConfig,
    change: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> Setup {
    let sim = ShopifySim::new(config);
    sim.seed_demo();
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = server.url();
    let (id, secret) = (sim.config().client_id.clone(), sim.config().client_secret.clone());
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(SHOP.into());
        s.shopify.client_id = Some(id);
        s.shopify.client_secret = Some(Secret::new(secret));
        s.shopify.api_url = Some(url.clone());
        s.lookup.lookup_budget = Duration::from_secs(3);
        s.sync.reconcile_every = Duration::ZERO;
        s.lookup.warm_count = 0;
        change(s);
    };
    let app = TestApp::start_with_clock(backend, settings, clock).await;
    let client = app.running.as_ref().unwrap().state.shopify.clone().expect("a Shopify client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.scopes_checked() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(client.scopes_checked(), "the scope check at start was answered");
    Setup { sim, server, app }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn tokens_are_renewed_before_they_expire_and_at_once_after_a_401(backend: Backend) {
    let lifetime = Duration::from_secs(2);
    // A Shopify Plus sized bucket, so no request waits for points and the timing is the tokens'.
    let config =
        SimConfig { token_lifetime: lifetime, bucket_max: 10_000.0, restore_rate: 1000.0, ..SimConfig::default() };
    let s = setup(backend, config, |_| {}).await;
    let client = s.client();
    assert_eq!(s.sim.grants(), 1, "the scope check at start took the first token");
    // Lookups for two and a quarter lifetimes: renewed a tenth of a lifetime before each expiry
    // (at 1.8 s and 3.6 s), so no request carries an expired token.
    let started = std::time::Instant::now();
    while started.elapsed() < lifetime * 9 / 4 {
        let found = client.customers_by_phone(DANA, soon()).await;
        let found = found.unwrap_or_else(|e| {
            panic!("{e:?} grants {} 401s {} at {:?}", s.sim.grants(), s.sim.unauthorized(), started.elapsed())
        });
        assert_eq!(found.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.sim.grants(), 3, "two renewals");
    assert_eq!(s.sim.unauthorized(), 0, "never refused");
    assert_eq!(client.token_renewals(), 3);

    // Shopify revokes the tokens: the next request is refused once, renewed at once, answered.
    s.sim.revoke_tokens();
    let found = client.customers_by_phone(DANA, soon()).await.expect("renewed after the 401");
    assert_eq!(found.len(), 1);
    assert_eq!((s.sim.unauthorized(), s.sim.grants()), (1, 4));
    assert_eq!(client.breaker_state(), BreakerState::Closed);

    // Many requests refused at once renew once.
    s.sim.revoke_tokens();
    let all = futures::future::join_all((0..8).map(|_| client.customers_by_phone(DANA, soon()))).await;
    assert!(all.iter().all(|r| r.as_ref().is_ok_and(|f| f.len() == 1)), "{all:?}");
    assert_eq!(s.sim.grants(), 5, "one renewal for all of them");
    s.stop().await;
}

async fn a_partially_redacted_answer_still_identifies_the_caller_and_updates_the_order(backend: Backend) {
    let s = setup(backend, SimConfig::default(), |_| {}).await;
    s.sim.set_redacted(&[ProtectedData::Name, ProtectedData::Email, ProtectedData::Address]);
    let state = &s.app.running.as_ref().unwrap().state;
    let dana = s.sim.customers().into_iter().find(|c| c.phone.as_deref() == Some(DANA)).unwrap();
    let answer = state.lookup.lookup(DANA).await.unwrap();
    assert_eq!(answer.source, Source::Shopify, "the partial answer was used");
    let record = answer.record.expect("the caller is identified");
    assert_eq!(record.customers[0].id, dana.id.0 as i64);
    assert_eq!(record.customers[0].first_name, None, "withheld by Shopify");
    let newest = s.sim.orders().into_iter().filter(|o| o.customer_id() == Some(dana.id)).max_by_key(|o| o.created_at);
    let newest = newest.unwrap();
    assert!(record.customers[0].orders.iter().any(|o| &*o.name == newest.name.as_str()), "the orders came along");

    // A later change to the order arrives through the same partial answers.
    let moved = s.sim.advance_order(newest.id).expect("the order can move on");
    let found = s.client().orders_by_name(&moved.name, soon()).await.expect("a partial answer is not a failure");
    assert_eq!(found[0].updated_at, moved.updated_at);
    assert_eq!(found[0].fulfillments.len(), moved.fulfillments.len());
    assert_eq!(s.client().breaker_state(), BreakerState::Closed);

    let withheld = s.client().withheld_fields();
    assert!(withheld.contains(&"Customer.firstName".to_string()), "{withheld:?}");
    let (status, body) = s.app.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains("degraded") && body.contains("Customer.firstName"), "{body}");
    s.stop().await;
}

async fn a_missing_scope_is_reported_at_start_and_by_readyz(backend: Backend) {
    let scopes = ["read_customers", "read_orders"].map(String::from).to_vec();
    let s = setup(backend, SimConfig { scopes, ..SimConfig::default() }, |_| {}).await;
    let (status, body) = s.app.get("/readyz").await;
    assert_eq!(status, 200, "ready, but degraded");
    assert!(body.contains("read_fulfillments") && body.contains("read_all_orders"), "{body}");
    assert!(!s.client().sees_all_orders());
    s.stop().await;
}

async fn a_503_is_retried_within_the_budget_and_402_403_423_are_named(backend: Backend) {
    let s = setup(backend, SimConfig::default(), |s| s.sync.breaker_threshold = 2).await;
    let client = s.client();
    s.sim.set_failure(Failure::HttpOnce(503));
    let before = s.sim.requests_for(Operation::CustomersByPhone);
    assert_eq!(client.customers_by_phone(DANA, soon()).await.unwrap().len(), 1);
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone) - before, 2, "retried once");

    for (status, named) in
        [(402, ShopifyError::ShopFrozen), (403, ShopifyError::Forbidden), (423, ShopifyError::ShopLocked)]
    {
        s.sim.set_failure(Failure::Http(status));
        for _ in 0..3 {
            assert_eq!(client.customers_by_phone(DANA, soon()).await.unwrap_err(), named);
        }
        assert_eq!(client.breaker_state(), BreakerState::Closed, "HTTP {status} is not an outage");
    }
    s.sim.set_failure(Failure::Http500);
    for _ in 0..2 {
        assert_eq!(client.customers_by_phone(DANA, soon()).await.unwrap_err(), ShopifyError::Http(500));
    }
    assert_eq!(client.breaker_state(), BreakerState::Open, "5xx is");
    s.stop().await;
}

async fn max_cost_exceeded_shrinks_the_page_and_never_opens_the_breaker(backend: Backend) {
    // A Shopify Plus sized bucket: this is about the single-query limit, not about waiting for
    // points (an order with its newest return is 59 points, a lookup 485).
    let config = SimConfig { bucket_max: 10_000.0, restore_rate: 1000.0, ..SimConfig::default() };
    let s = setup(backend, config, |s| s.sync.breaker_threshold = 2).await;
    let client = s.client();
    s.sim.set_max_query_cost(Some(400));
    let page = client.orders_updated_since(None, None, soon()).await.expect("a smaller page fits");
    let size = client.page_size(Operation::OrdersUpdatedSince);
    assert!(size < PAGE_SIZE && size > 0, "{size}");
    assert_eq!(page.items.len(), size as usize, "the demo shop has more orders than one page");
    assert!(client.admission_cost(Operation::OrdersUpdatedSince, size) <= 400);
    // A lookup's size is fixed: over the limit it fails, every time, without opening the breaker.
    s.sim.set_max_query_cost(Some(100));
    for _ in 0..3 {
        let error = client.customers_by_phone(DANA, soon()).await.unwrap_err();
        assert!(matches!(error, ShopifyError::CostExceeded { max: 100, .. }), "{error:?}");
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    s.stop().await;
}

async fn admission_uses_the_cost_shopify_reports_not_the_estimate(backend: Backend) {
    // Shopify charges Customer.orders more than the default rules say: a CustomersByPhone query
    // costs 2 + 3 × (9 + 320) = 989 points, where orderline's estimate is 485.
    let config = SimConfig { bucket_max: 1250.0, restore_rate: 1.0, ..SimConfig::default() };
    let s = setup(backend, config, |_| {}).await;
    s.sim.set_field_cost("Customer.orders", 320);
    let client = s.client();
    let estimate = Operation::CustomersByPhone.estimated_cost(0);
    assert_eq!(client.admission_cost(Operation::CustomersByPhone, PAGE_SIZE), estimate);
    client.customers_by_phone(DANA, soon()).await.expect("the first query fits the full bucket");
    let learned = client.admission_cost(Operation::CustomersByPhone, PAGE_SIZE);
    assert_eq!(learned, 2 + 3 * (9 + 320), "learned from requestedQueryCost");
    // The bucket now holds less than the learned cost but more than the estimate: the client
    // does not send what Shopify would throttle.
    let available = s.sim.bucket_status().currently_available;
    assert!(available < f64::from(learned) && available > f64::from(estimate), "{available}");
    let sent = s.sim.requests_for(Operation::CustomersByPhone);
    let refused = client.customers_by_phone(DANA, Instant::now() + Duration::from_millis(200)).await;
    assert!(matches!(refused, Err(ShopifyError::WouldThrottle(_))), "{refused:?}");
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone), sent, "nothing was sent");
    assert_eq!(s.sim.throttled(), 0);
    s.stop().await;
}

async fn without_read_all_orders_a_sweep_never_confirms_an_order_older_than_60_days(backend: Backend) {
    let scopes = ["read_customers", "read_orders", "read_fulfillments"].map(String::from).to_vec();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let s = setup_with_clock(backend, SimConfig { scopes, ..SimConfig::default() }, |_| {}, clock.clone()).await;
    assert!(!s.client().sees_all_orders());
    let state = &s.app.running.as_ref().unwrap().state;

    // Olga's only order is 90 days old: Shopify hides it from this app, in sweeps and lookups alike.
    const OLGA: &str = "+15559870001";
    let dana = s.sim.customers().into_iter().find(|c| c.phone.as_deref() == Some(DANA)).unwrap();
    let mut olga = dana.clone();
    (olga.id, olga.phone, olga.email) = (s.sim.new_id(), Some(OLGA.into()), Some("olga@example.com".into()));
    (olga.default_address, olga.addresses) = (None, Vec::new());
    s.sim.upsert_customer(olga.clone()).unwrap();
    let mut old = s.sim.sample_order(Some(olga.id));
    old.created_at = chrono::Utc::now() - chrono::TimeDelta::days(90);
    old.updated_at = old.created_at;
    old.phone = None;
    for address in [&mut old.shipping_address, &mut old.billing_address].into_iter().flatten() {
        address.phone = None;
    }
    s.sim.upsert_order(old.clone());
    let deadline = soon();
    let visible = s.client().orders_updated_since(None, None, deadline).await.unwrap().items;
    assert!(!visible.is_empty() && visible.iter().all(|o| o.id != old.id), "hidden without read_all_orders");

    // The merchant edits it: the webhook brings it into the store. Dana comes by a live fetch.
    s.sim.set_webhook_target(WebhookTarget::new(format!("{}/shopify/webhooks", s.app.url), SECRET, SHOP));
    s.sim.change_order(old.id, |_| {}).expect("the order is in the sim");
    s.sim.flush_webhooks().await;
    s.app.settle().await;
    assert_eq!(state.lookup.lookup(DANA).await.unwrap().source, Source::Shopify);
    let olga_answer = state.lookup.lookup(OLGA).await.unwrap();
    let record = olga_answer.record.expect("Olga is in the store");
    assert!(record.customers[0].orders.iter().any(|o| o.id == old.id.0 as i64), "{record:?}");

    // Two sweeps ten minutes apart, each past the freshness window (5 min): the second returns
    // nothing, so only its watermark can vouch for what the store holds.
    let reconciler = Reconciler {
        store: s.app.store().clone(),
        client: s.client(),
        shop: SHOP.into(),
        default_region: "US".into(),
        clock: clock.clone(),
        metrics: state.metrics.clone(),
        lag: Duration::ZERO,
        lookup: Some(std::sync::Arc::new(state.lookup.clone())),
    };
    for _ in 0..2 {
        clock.advance(chrono::TimeDelta::minutes(10));
        reconciler.sweep().await.expect("the sweep runs");
    }
    let before = s.sim.requests_for(Operation::CustomersByPhone);
    let dana = state.lookup.lookup(DANA).await.unwrap();
    assert!(matches!(dana.source, Source::Cache | Source::Store), "Dana's orders are all recent: {:?}", dana.source);
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone), before, "no live fetch for Dana");
    let olga = state.lookup.lookup(OLGA).await.unwrap();
    assert_eq!(olga.source, Source::Shopify, "the sweeps could not see Olga's order: it is fetched live");
    assert_eq!(s.sim.requests_for(Operation::CustomersByPhone), before + 1);
    s.stop().await;
}

on_both_backends!(
    tokens_are_renewed_before_they_expire_and_at_once_after_a_401,
    a_partially_redacted_answer_still_identifies_the_caller_and_updates_the_order,
    a_missing_scope_is_reported_at_start_and_by_readyz,
    a_503_is_retried_within_the_budget_and_402_403_423_are_named,
    max_cost_exceeded_shrinks_the_page_and_never_opens_the_breaker,
    admission_uses_the_cost_shopify_reports_not_the_estimate,
    without_read_all_orders_a_sweep_never_confirms_an_order_older_than_60_days,
);
