//! A phone line to call: orderline on 127.0.0.1:0 with the Shopify emulator's demo shop applied
//! to its store, and the Twilio caller emulator to dial in with.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use orderline::clock::{Clock, SystemClock};
use orderline::config::{Secret, Settings};
use orderline::shopify::payload::{ShopifyChange, ShopifyOrder};
use orderline::shopify::writes::writes;
use orderline::sim::shopify::{ShopifySim, SimConfig, SimServer};
use orderline::sim::twilio::rest::{RestSimConfig, RestSimServer, TwilioRestSim};
use orderline::sim::twilio::{CallerConfig, Transcript, TwilioCaller, scripted};
use orderline::store::Ts;

use super::{Backend, SHOP, TestApp};

/// The Twilio auth token the test apps are started with.
pub const TOKEN: &str = "test-twilio-token";

pub struct Line {
    pub app: TestApp,
    pub sim: ShopifySim,
    _server: SimServer,
}

/// orderline with the emulator's demo shop applied to its store (fresh), on `backend`.
pub async fn line_with(backend: Backend, change: impl FnOnce(&mut Settings), clock: Arc<dyn Clock>) -> Line {
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = server.url();
    let token = sim.config().access_token.clone();
    let settings = |s: &mut Settings| {
        s.shopify.shop = Some(SHOP.into());
        s.shopify.access_token = Some(Secret::new(token));
        s.shopify.api_url = Some(url);
        s.sync.reconcile_every = Duration::ZERO;
        s.lookup.lookup_budget = Duration::from_millis(500);
        s.lookup.warm_count = 0;
        change(s);
    };
    let app = TestApp::start_with_clock(backend, settings, clock).await;
    let mut changes: Vec<ShopifyChange> =
        sim.customers().into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect();
    changes.extend(sim.orders().into_iter().map(|o| ShopifyChange::Order(Box::new(o))));
    app.store().apply_all(SHOP, &writes(changes), "US", Ts::from(Utc::now())).await.unwrap();
    Line { app, sim, _server: server }
}

/// A line whose Twilio account is the REST emulator (its URL and account SID in the settings),
/// signing its callbacks with the line's auth token.
pub struct TwilioLine {
    pub line: Line,
    pub twilio: TwilioRestSim,
    pub server: RestSimServer,
}

/// [`line_with`], with the Twilio REST emulator as the line's account.
pub async fn line_with_twilio(
    backend: Backend,
    change: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> TwilioLine {
    let twilio = TwilioRestSim::new(RestSimConfig { auth_token: TOKEN.into(), ..RestSimConfig::default() });
    let server = twilio.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = server.url();
    let account = twilio.config().account_sid.clone();
    let settings = |s: &mut Settings| {
        s.twilio.account_sid = Some(account);
        s.twilio.api_url = url;
        change(s);
    };
    let line = line_with(backend, settings, clock).await;
    TwilioLine { line, twilio, server }
}

pub async fn line(backend: Backend, change: impl FnOnce(&mut Settings)) -> Line {
    line_with(backend, change, Arc::new(SystemClock)).await
}

impl Line {
    /// The Shopify emulator's Admin API base (SHOPIFY_API_URL).
    pub fn shopify_url(&self) -> String {
        self._server.url()
    }

    pub fn caller(&self, from: &str) -> TwilioCaller {
        TwilioCaller::new(CallerConfig::new(&self.app.url, TOKEN, from))
    }

    pub async fn call(&self, from: &str, keys: &[&str]) -> Transcript {
        self.caller(from).call(scripted(keys)).await.expect("the call went through")
    }

    /// The latest order of the customer with this first name, as the emulator has it.
    pub fn latest_order(&self, first_name: &str) -> ShopifyOrder {
        let customer = self.sim.customers().into_iter().find(|c| c.first_name.as_deref() == Some(first_name)).unwrap();
        let mut orders: Vec<ShopifyOrder> =
            self.sim.orders().into_iter().filter(|o| o.customer.as_ref().map(|c| c.id) == Some(customer.id)).collect();
        orders.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        orders.remove(0)
    }

    pub async fn flush_calls(&self) {
        self.app.running.as_ref().unwrap().state.recorder.flush().await;
    }
}
