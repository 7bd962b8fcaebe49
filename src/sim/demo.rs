//! `orderline demo`: the whole line on one machine with nothing installed. The Shopify emulator
//! seeded with a small demo shop, orderline on embedded SQLite backfilled from it, the
//! emulator's webhooks pointed at orderline, and a ready `orderline call` line to try.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app;
use crate::clock::SystemClock;
use crate::config::{Secret, Settings};
use crate::shopify::reconciler::Reconciler;
use crate::sim::shopify::{ShopifySim, SimConfig, WebhookTarget};

pub const DEMO_SHOP: &str = "orderline-demo.myshopify.com";
pub const DEMO_TWILIO_TOKEN: &str = "demo-twilio-token";
const DEMO_WEBHOOK_SECRET: &str = "demo-webhook-secret";
pub const DEMO_AGENT_TOKEN: &str = "demo-agent-token";

pub struct DemoOptions {
    pub listen: SocketAddr,
    /// The SQLite file; started afresh on every run.
    pub database: String,
}

/// Runs until Ctrl-C. Any ORDERLINE_* variable set in the environment (ORDERLINE_VERIFY,
/// ORDERLINE_HOURS, …) applies on top of the demo's settings.
pub async fn run(options: DemoOptions) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", options.database));
    }
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let shopify = sim.serve("127.0.0.1:0".parse().expect("a literal address")).await.map_err(|e| e.to_string())?;
    let database_url = format!("sqlite://{}", options.database);
    let token = std::env::var("TWILIO_AUTH_TOKEN").unwrap_or_else(|_| DEMO_TWILIO_TOKEN.into());
    let api_url = shopify.url();
    // Twilio's REST API, emulated: key 4 texts the tracking link through it, and `orderline
    // call --sms-api` prints what the caller's phone received.
    let twilio = crate::sim::twilio::rest::TwilioRestSim::new(crate::sim::twilio::rest::RestSimConfig {
        auth_token: token.clone(),
        ..Default::default()
    });
    let twilio_server =
        twilio.serve("127.0.0.1:0".parse().expect("a literal address")).await.map_err(|e| e.to_string())?;
    let twilio_url = twilio_server.url();
    let account_sid = twilio.config().account_sid.clone();
    let access_token = sim.config().access_token.clone();
    let mut settings = Settings::default();
    settings.server.listen = options.listen;
    settings.server.database_url = database_url.clone();
    settings.twilio.auth_token = Some(Secret::new(token.as_str()));
    settings.twilio.account_sid = Some(account_sid);
    settings.twilio.api_url = twilio_url.clone();
    settings.shopify.shop = Some(DEMO_SHOP.into());
    settings.shopify.access_token = Some(Secret::new(access_token));
    settings.shopify.api_url = Some(api_url.clone());
    settings.shopify.webhook_secret = Some(Secret::new(DEMO_WEBHOOK_SECRET));
    settings.agents.agent_token = Some(Secret::new(DEMO_AGENT_TOKEN));
    // Voicemail from the menu (5): `orderline call --sms-api` keeps the message in the REST
    // emulator's account, where the console plays it from.
    settings.handoff.voicemail = crate::config::VoicemailOffer::Menu;
    let mut settings = settings.with_environment(&["config", "listen"]).map_err(|e| e.to_string())?;
    crate::ops::logging::init(settings.server.log_format);
    // The demo's own first sweep backfills the store before the call line is printed; the
    // periodic sweeps start after it (below), so the two do not both run a bulk backfill of the
    // fresh store at once.
    let every = std::mem::take(&mut settings.sync.reconcile_every);
    let deletions_every = settings.sync.reconcile_deletions_every;
    let running = app::start(settings).await.map_err(|e| e.to_string())?;
    let state = &running.state;
    let client = state.shopify.clone().ok_or("the demo's Shopify client is missing")?;
    let reconciler = Reconciler {
        store: state.store.clone(),
        client,
        shop: DEMO_SHOP.into(),
        default_region: state.settings.lookup.default_region.clone(),
        clock: Arc::new(SystemClock),
        metrics: state.metrics.clone(),
        lag: state.settings.sync.reconcile_lag,
        lookup: Some(std::sync::Arc::new(state.lookup.clone())),
    };
    let report = reconciler.sweep().await.map_err(|e| format!("backfill from the emulator: {e}"))?;
    let (stop_sweeps, sweeps_stopped) = tokio::sync::watch::channel(false);
    if !every.is_zero() {
        tokio::spawn(reconciler.run(every, deletions_every, sweeps_stopped));
    }
    sim.set_webhook_target(WebhookTarget {
        url: format!("{}/shopify/webhooks", running.url()),
        secret: DEMO_WEBHOOK_SECRET.into(),
        shop_domain: DEMO_SHOP.into(),
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
    });
    let url = running.url();
    let token_arg = if token == DEMO_TWILIO_TOKEN { format!(" --token {DEMO_TWILIO_TOKEN}") } else { String::new() };
    println!("orderline listening on {url}");
    println!(
        "demo shop {DEMO_SHOP}: {} customers and {} orders, served by the Shopify emulator at {api_url}",
        report.customers, report.orders
    );
    println!("store: {database_url} (embedded SQLite, started afresh)");
    println!();
    println!("Call in as a known customer (Dana, order in transit; postal code 11217):");
    println!("  cargo run --release -- call +15551234567 --url {url}{token_arg} --sms-api {twilio_url}");
    println!(
        "At the menu, 4 texts Dana the tracking link through the Twilio REST API emulator at {twilio_url}; \
         --sms-api prints what her phone received."
    );
    match running.state.settings.ivr.prompt_mode {
        crate::config::PromptMode::ConversationRelay => println!(
            "ConversationRelay mode: add --relay, and --say \"one one two one seven\" --say \"where is my package\" \
             (or type `say …` lines): once verified, Dana is greeted by name."
        ),
        crate::config::PromptMode::MediaStream => println!("Media Streams mode: add --media."),
        crate::config::PromptMode::Twiml => {}
    }
    if running.state.settings.handoff.voicemail == crate::config::VoicemailOffer::Menu {
        println!(
            "5 leaves a message (add --say \"please call me back\", or type `say …` at the beep); the console \
             ({url}/agent, token {DEMO_AGENT_TOKEN}) lists and plays it."
        );
    }
    println!("Other callers: +15550177120 (shared by two Beckers), +15550199999 (unknown), anonymous (withheld).");
    println!(
        "Agent API:  curl -H 'Authorization: Bearer {DEMO_AGENT_TOKEN}' '{url}/api/customers?phone=%2B15551234567'"
    );
    println!("Ctrl-C stops the demo.");
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_sweeps.send(true);
    running.stop().await;
    shopify.stop().await;
    twilio_server.stop().await;
    Ok(())
}
