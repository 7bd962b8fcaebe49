//! The `orderline` command: serve, migrate, reconcile, the dead-letter tools and the emulators.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use orderline::app;
use orderline::clock::SystemClock;
use orderline::config::Settings;
use orderline::domain::mask_pii;
use orderline::ops::{Metrics, logging};
use orderline::shopify::processor::Processor;
use orderline::shopify::reconciler::Reconciler;
use orderline::store::{DeliveryStatus, Store};

/// mimalloc instead of glibc's malloc: at saturation `/twilio/voice` spent about a fifth of the
/// server's CPU samples in glibc's malloc and free (issue 14, `perf record -a` under
/// `cargo bench --bench incoming_calls`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "orderline", version, about = "The phone line of a Shopify store's customer support")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve Twilio, Shopify and agents (settings from env / orderline.toml).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Dead letters: signed deliveries that could not be applied.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// One reconciliation sweep against Shopify (a bulk backfill the first time), then exit.
    Reconcile {
        /// Backfill every customer and order through a bulk operation, even after earlier sweeps.
        #[arg(long)]
        full: bool,
    },
    /// Call orderline as Twilio would for an inbound call, and print what the caller hears.
    Call(CallArgs),
    /// Everything on this machine: a seeded Shopify emulator and orderline on embedded SQLite.
    Demo {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The SQLite file (deleted and created afresh).
        #[arg(long, default_value = "orderline-demo.db")]
        database: String,
    },
    /// Configure Shopify (webhook subscriptions) or Twilio (the number's URLs) for this instance.
    Setup {
        #[command(subcommand)]
        command: SetupCommand,
    },
    /// Check everything the line needs, one line per check with the fix for each failure;
    /// exit code 0 only when every check passes.
    Doctor {
        /// Also check that ORDERLINE_PUBLIC_URL answers /healthz (as Twilio and Shopify reach it).
        #[arg(long)]
        external: bool,
        /// The Twilio number to check (default TWILIO_PHONE_NUMBER).
        #[arg(long)]
        number: Option<String>,
    },
    /// Emulators of the outside world, for trying orderline without real accounts.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// A Shopify Admin GraphQL emulator seeded with a small demo shop.
    Shopify {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// The access token requests must carry (SHOPIFY_ACCESS_TOKEN on orderline's side).
        #[arg(long, default_value = "shpat_orderline_sim_token")]
        token: String,
    },
    /// A Twilio REST API emulator (IncomingPhoneNumbers) holding one account and one number.
    Twilio {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: std::net::SocketAddr,
        /// The account's auth token (TWILIO_AUTH_TOKEN on orderline's side).
        #[arg(long, default_value = "demo-twilio-token")]
        token: String,
        /// The account's number.
        #[arg(long, default_value = orderline::sim::twilio::DEFAULT_TO)]
        number: String,
    },
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create, update or delete the app's webhook subscriptions so that exactly the topics
    /// orderline applies reach ORDERLINE_PUBLIC_URL/shopify/webhooks.
    Shopify {
        /// Print the difference; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Point the Twilio number at ORDERLINE_PUBLIC_URL (voice, fallback, status callback).
    Twilio {
        /// The Twilio number callers dial, E.164 (default TWILIO_PHONE_NUMBER).
        #[arg(long)]
        number: Option<String>,
        /// Print the difference; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct CallArgs {
    /// The caller's number, E.164 (e.g. +15551234567).
    from: String,
    /// orderline's base URL, as Twilio reaches it (ORDERLINE_PUBLIC_URL on the server).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The Twilio auth token to sign requests with (the server's TWILIO_AUTH_TOKEN).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    token: String,
    /// The number called.
    #[arg(long, default_value = orderline::sim::twilio::DEFAULT_TO)]
    to: String,
    /// Keys for each prompt, comma-separated ("" or "timeout" lets a prompt time out);
    /// without it keys are read from stdin, a line per prompt (empty line: timeout; end of input: hang up).
    /// A key may be words said instead ("say:where's my order"), for a server whose questions
    /// listen for speech (ORDERLINE_SPEECH_INPUT).
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<String>>,
    /// Words said at the next prompt (repeatable; after any --keys), as Twilio's recognition
    /// would post them: `--say "where's my order"`.
    #[arg(long)]
    say: Vec<String>,
    /// STIR/SHAKEN result to send as StirVerstat, e.g. TN-Validation-Passed-A.
    #[arg(long)]
    stir: Option<String>,
    /// Speak the Media Streams protocol, for a server with ORDERLINE_PROMPT_MODE=media_stream:
    /// prints the prompts heard, decoded from the audio. A key prefixed with ! is pressed during
    /// the prompt (barge-in).
    #[arg(long, conflicts_with = "relay")]
    media: bool,
    /// Speak the ConversationRelay protocol, for a server with
    /// ORDERLINE_PROMPT_MODE=conversation_relay: prints the welcome greeting and each reply heard
    /// as text; --say and `say …` lines are sent as what the caller said, keys as DTMF.
    #[arg(long)]
    relay: bool,
    /// A Twilio REST API (the demo's emulator) whose messages to the caller are printed after
    /// the call, as the caller's phone receives them ("→ text to +1•••4567: …"), and where a
    /// message the caller records is kept (so the agent console can play it).
    #[arg(long)]
    sms_api: Option<String>,
    /// With --media: the line's own recordings (as the server's ORDERLINE_SPEECH_DIR), so their
    /// prompts print as `[shop_name]` rather than `?`.
    #[arg(long, env = "ORDERLINE_SPEECH_DIR")]
    speech_dir: Option<std::path::PathBuf>,
    /// The Twilio account of --sms-api.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = orderline::sim::twilio::ACCOUNT_SID)]
    account_sid: String,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters with their errors.
    List,
    /// Re-apply one dead letter (by ID) or all of them, after the cause is fixed.
    Replay { id: Option<i64> },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client of a running orderline: the server's settings are not its business.
    let command = match cli.command {
        Command::Call(args) => return call(args).await,
        // The demo makes its own settings.
        Command::Demo { listen, database } => {
            let options = orderline::sim::demo::DemoOptions { listen, database };
            return match orderline::sim::demo::run(options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("orderline demo: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        command => command,
    };
    let settings = match Settings::load() {
        Ok(s) => s,
        // The doctor's first check is that the settings parse: said as a checklist line.
        Err(e) if matches!(command, Command::Doctor { .. }) => {
            return orderline::setup::doctor::settings_failed(&e.to_string());
        }
        Err(e) => {
            eprintln!("orderline: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(settings.server.log_format);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Dlq { command: DlqCommand::List } => dlq_list(settings).await,
        Command::Dlq { command: DlqCommand::Replay { id } } => dlq_replay(settings, id).await,
        Command::Reconcile { full } => reconcile(settings, full).await,
        Command::Sim { command: SimCommand::Shopify { listen, token } } => {
            orderline::sim::shopify::run_cli(listen, token).await.map(|_| ExitCode::SUCCESS).map_err(|e| e.to_string())
        }
        Command::Sim { command: SimCommand::Twilio { listen, token, number } } => {
            let config =
                orderline::sim::twilio::rest::RestSimConfig { auth_token: token, number, ..Default::default() };
            orderline::sim::twilio::rest::run_cli(listen, config)
                .await
                .map(|_| ExitCode::SUCCESS)
                .map_err(|e| e.to_string())
        }
        Command::Setup { command: SetupCommand::Twilio { number, dry_run } } => {
            setup_twilio(settings, number.as_deref(), dry_run).await
        }
        Command::Setup { command: SetupCommand::Shopify { dry_run } } => setup_shopify(settings, dry_run).await,
        Command::Doctor { external, number } => {
            Ok(orderline::setup::doctor::run(&settings, external, number.as_deref()).await)
        }
        Command::Call(_) | Command::Demo { .. } => unreachable!("handled before settings are loaded"),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("orderline: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn call(args: CallArgs) -> ExitCode {
    let options = orderline::sim::twilio::CallOptions {
        from: args.from,
        url: args.url,
        account: args.sms_api.map(|api_url| orderline::sim::twilio::TwilioAccount {
            api_url,
            account_sid: args.account_sid,
            token: args.token.clone(),
        }),
        token: args.token,
        to: args.to,
        keys: match (args.keys, args.say) {
            (keys, said) if said.is_empty() => keys,
            (keys, said) => {
                Some(keys.unwrap_or_default().into_iter().chain(said.into_iter().map(|s| format!("say:{s}"))).collect())
            }
        },
        stir: args.stir,
        speech_dir: args.speech_dir,
    };
    let result = if args.media {
        orderline::sim::media::run_cli(options).await
    } else if args.relay {
        orderline::sim::relay::run_cli(options).await
    } else {
        orderline::sim::twilio::run_cli(options).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderline: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<ExitCode, String> {
    if settings.shopify.webhook_secret.is_none() {
        tracing::warn!("SHOPIFY_WEBHOOK_SECRET is not set: every webhook will be answered 401");
    }
    let running = app::start(settings).await.map_err(|e| e.to_string())?;
    // Which way orderline authenticates to the Admin API, from the client it really built
    // (never the secret or a token).
    match &running.state.shopify {
        Some(client) => tracing::info!("Shopify Admin API authentication: {}", client.credentials().mode()),
        None => tracing::warn!(
            "Shopify Admin API off: set SHOPIFY_SHOP and SHOPIFY_CLIENT_ID + SHOPIFY_CLIENT_SECRET (or a legacy \
             SHOPIFY_ACCESS_TOKEN); until then live Shopify fetches and reconciliation are off"
        ),
    }
    // Tests and scripts read this line to find the port when listening on :0.
    println!("orderline listening on {}", running.url());
    tracing::info!(addr = %running.addr, "listening");
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn setup_twilio(settings: Settings, number: Option<&str>, dry_run: bool) -> Result<ExitCode, String> {
    use orderline::setup::{self, twilio};
    let rest = orderline::twilio::rest::TwilioRest::from_settings(&settings, Arc::new(Metrics::new()))?;
    let e164 = twilio::number_to_configure(&settings, number)?;
    setup::check_public_url(&settings).await?;
    let plan = twilio::plan(&rest, &settings, &e164).await?;
    for line in twilio::describe(&plan) {
        println!("{line}");
    }
    if dry_run {
        println!("dry run: nothing changed");
    } else if !plan.changes.is_empty() {
        twilio::apply(&rest, &settings, &plan).await?;
        println!("applied: the number now points at {}", settings.server.public_url);
    }
    Ok(ExitCode::SUCCESS)
}

async fn setup_shopify(settings: Settings, dry_run: bool) -> Result<ExitCode, String> {
    orderline::setup::shopify::run(&settings, dry_run).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn open_store(settings: &Settings) -> Result<Store, String> {
    let store = Store::connect_with(&settings.server.database_url, settings.server.db_max_connections)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

async fn migrate(settings: Settings) -> Result<ExitCode, String> {
    open_store(&settings).await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

async fn reconcile(settings: Settings, full: bool) -> Result<ExitCode, String> {
    let shop = settings.shopify.shop.clone().ok_or("SHOPIFY_SHOP is not set: reconcile needs the shop to ask")?;
    let metrics = Arc::new(Metrics::new());
    let client = app::shopify_client(&settings, metrics.clone())
        .ok_or("neither SHOPIFY_CLIENT_ID with SHOPIFY_CLIENT_SECRET nor SHOPIFY_ACCESS_TOKEN is set: reconcile needs the Admin API")?;
    let store = open_store(&settings).await?;
    let reconciler = Reconciler {
        store,
        client,
        shop,
        default_region: settings.lookup.default_region.clone(),
        clock: Arc::new(SystemClock),
        metrics,
        lag: settings.sync.reconcile_lag,
        lookup: None,
    };
    let started = std::time::Instant::now();
    let report = if full { reconciler.full_sweep().await } else { reconciler.sweep().await };
    let report = report.map_err(|e| e.to_string())?;
    println!(
        "reconciled {} customers and {} orders in {} pages and {} bulk operations ({:.1} s); confirmed through {}",
        report.customers,
        report.orders,
        report.pages,
        report.bulk_operations,
        started.elapsed().as_secs_f64(),
        report.watermark.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let started = std::time::Instant::now();
    let deletions = reconciler.check_deletions().await.map_err(|e| e.to_string())?;
    println!(
        "checked {} orders and {} customers with Shopify ({:.1} s); deleted {} orders and {} customers Shopify no longer holds",
        deletions.orders_checked,
        deletions.customers_checked,
        started.elapsed().as_secs_f64(),
        deletions.orders_deleted,
        deletions.customers_deleted
    );
    Ok(ExitCode::SUCCESS)
}

async fn dlq_list(settings: Settings) -> Result<ExitCode, String> {
    let store = open_store(&settings).await?;
    let dead = store.dead_letters().await.map_err(|e| e.to_string())?;
    if dead.is_empty() {
        println!("no dead letters");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>8}  {:<25}  {:<28}  {:<38}  {:>8}  error", "id", "received", "topic", "webhook id", "attempts");
    for d in &dead {
        println!(
            "{:>8}  {:<25}  {:<28}  {:<38}  {:>8}  {}",
            d.id,
            d.received_at.0.format("%Y-%m-%d %H:%M:%S UTC"),
            d.topic,
            d.webhook_id,
            d.attempts,
            mask_pii(d.error.as_deref().unwrap_or("")),
        );
    }
    println!("{} dead letter(s); `orderline dlq replay [ID]` re-applies them", dead.len());
    Ok(ExitCode::SUCCESS)
}

async fn dlq_replay(settings: Settings, id: Option<i64>) -> Result<ExitCode, String> {
    let store = open_store(&settings).await?;
    // A destructive delivery refused at intake stays refused: replayed only if it passes the
    // intake checks today (issue 13: "never applied").
    let client = app::shopify_client(&settings, Arc::new(Metrics::new()));
    let dead = store.dead_letters().await.map_err(|e| e.to_string())?;
    let (mut queued, mut kept) = (0, 0);
    for letter in dead.iter().filter(|d| id.is_none_or(|id| d.id == id)) {
        let body = store.delivery_body(letter.id).await.map_err(|e| e.to_string())?;
        let refused = orderline::shopify::destructive::replayable(
            &letter.topic,
            &letter.shop,
            settings.shopify.shop.as_deref(),
            body.as_deref(),
            client.as_deref(),
        )
        .await;
        if let Some(reason) = refused {
            kept += 1;
            println!("{:>8}  {:<28}  kept dead: {}", letter.id, letter.topic, mask_pii(&reason));
            continue;
        }
        queued += store.requeue_dead_letters(Some(letter.id)).await.map_err(|e| e.to_string())?;
    }
    if queued == 0 && kept > 0 {
        println!("replayed 0: {kept} kept dead");
        return Ok(ExitCode::FAILURE);
    }
    if queued == 0 {
        println!(
            "{}",
            match id {
                Some(id) => format!("no dead letter with id {id}"),
                None => "no dead letters".into(),
            }
        );
        return Ok(if id.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    let processor = Processor {
        store,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        default_region: settings.lookup.default_region.clone(),
    };
    let processed = processor.drain().await.map_err(|e| e.to_string())?;
    let mut still_dead = 0;
    for p in &processed {
        match &p.error {
            Some(error) => {
                still_dead += 1;
                println!("{:>8}  {:<28}  still dead: {}", p.id, p.topic, mask_pii(error));
            }
            None => println!("{:>8}  {:<28}  {}", p.id, p.topic, p.status.as_str()),
        }
    }
    let done = processed.iter().filter(|p| p.status != DeliveryStatus::Dead).count();
    println!("replayed {queued}: {done} applied, {still_dead} still dead, {kept} kept dead");
    Ok(if still_dead == 0 && kept == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
