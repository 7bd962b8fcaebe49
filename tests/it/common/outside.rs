//! orderline, the Twilio REST emulator and the Shopify emulator running side by side, and the
//! `orderline` binary run against them with exactly the settings a test gives (tests/setup.rs,
//! tests/doctor.rs).

use std::time::Duration;

use super::{Backend, TestApp};
use orderline::shopify::graphql::subscription_topic;
use orderline::shopify::payload::Topic;
use orderline::sim::shopify::{ShopifySim, SimConfig, SimServer};
use orderline::sim::twilio::rest::{RestSimConfig, RestSimServer, TwilioRestSim};

/// Runs `orderline ARGS` with exactly `envs` (plus a throwaway database); (exit code, stdout, stderr).
pub async fn orderline(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderline"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("DATABASE_URL", db).env("RUST_LOG", "warn").env("NO_COLOR", "1");
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.unwrap().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub struct Line {
    pub app: TestApp,
    pub twilio: TwilioRestSim,
    server: RestSimServer,
    pub shopify: ShopifySim,
    shopify_server: SimServer,
}

impl Line {
    pub async fn start() -> Line {
        Line::start_with(Backend::Sqlite, SimConfig::default()).await
    }

    /// orderline on `backend`, the Twilio REST emulator, and a demo shop with `config`.
    pub async fn start_with(backend: Backend, config: SimConfig) -> Line {
        let app = TestApp::start(backend).await;
        let twilio = TwilioRestSim::new(RestSimConfig::default());
        let server = twilio.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let shopify = ShopifySim::new(config);
        shopify.seed_demo();
        let shopify_server = shopify.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Line { app, twilio, server, shopify, shopify_server }
    }

    /// The settings of a local setup: orderline and the emulators on this machine.
    fn envs(&self) -> Vec<(String, String)> {
        let c = self.twilio.config();
        vec![
            ("ORDERLINE_PUBLIC_URL".into(), self.app.url.clone()),
            ("ORDERLINE_ALLOW_INSECURE_PUBLIC_URL".into(), "true".into()),
            ("TWILIO_API_URL".into(), self.server.url()),
            ("TWILIO_ACCOUNT_SID".into(), c.account_sid.clone()),
            ("TWILIO_API_KEY".into(), c.api_key.clone()),
            ("TWILIO_API_SECRET".into(), c.api_secret.clone()),
            ("TWILIO_PHONE_NUMBER".into(), c.number.clone()),
            ("SHOPIFY_API_URL".into(), self.shopify_server.url()),
            ("SHOPIFY_ACCESS_TOKEN".into(), self.shopify.config().access_token.clone()),
            ("DATABASE_URL".into(), self.app.db.url.clone()),
        ]
    }

    pub async fn run(&self, changes: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
        let mut envs = self.envs();
        for (k, v) in changes {
            envs.retain(|(key, _)| key != k);
            if !v.is_empty() {
                envs.push((k.to_string(), v.to_string()));
            }
        }
        let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        orderline(&pairs, args).await
    }

    /// The Twilio emulator's REST API base (TWILIO_API_URL).
    pub fn twilio_url(&self) -> String {
        self.server.url()
    }

    /// The Shopify emulator's Admin API base (SHOPIFY_API_URL).
    pub fn shopify_url(&self) -> String {
        self.shopify_server.url()
    }

    pub async fn stop(self) {
        self.shopify_server.stop().await;
        self.server.stop().await;
        self.app.stop().await;
    }
}

/// What orderline subscribes through the API: every topic it applies but the compliance ones.
pub fn applied() -> Vec<String> {
    let mut topics: Vec<String> =
        Topic::ALL.into_iter().filter(|t| !t.is_compliance()).map(subscription_topic).collect();
    topics.sort();
    topics
}

pub fn subscribed(sim: &ShopifySim) -> Vec<String> {
    let mut topics: Vec<String> = sim.webhook_subscriptions().into_iter().map(|s| s.topic).collect();
    topics.sort();
    topics
}
