//! The application: shared state, the router each area contributes to, and starting and
//! stopping a server. Holds no business logic of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::ivr::CallFlow;
use crate::lookup::{CallerLookup, LookupConfig};
use crate::ops::{self, Metrics};
use crate::shopify::client::{ClientConfig, ShopifyClient};
use crate::shopify::reconciler::Reconciler;
use crate::shopify::token::Credentials;
use crate::shopify::{self, intake::Intake, processor::Processor};
use crate::speech::ClipLibrary;
use crate::store::{Backend, Store, StoreError};
use crate::twilio::{self, recorder::CallRecorder, render::Renderer};

/// What every handler can reach. A handler asks for the parts it uses: a part by its type
/// (`State<Store>`, `State<Arc<Settings>>`; `FromRef`, below), or an area's sub-state
/// (`agent::AgentDesk`); the whole state only where the call path runs. Every request clones
/// it once per extractor, so it is one `Arc` (a clone is one reference count, not a copy of
/// every part); its parts are read through it (`state.store`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// `State<T>` for the parts handlers ask for by type.
macro_rules! parts_by_type {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> $ty {
                state.$field.clone()
            }
        })*
    };
}

parts_by_type!(
    settings: Arc<Settings>,
    store: Store,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    shopify: Option<Arc<ShopifyClient>>,
    twilio_rest: Option<Arc<twilio::rest::TwilioRest>>,
    feed: agent::AgentFeed,
    feed_slots: Arc<tokio::sync::Semaphore>,
);

/// The parts of [`AppState`].
pub struct Shared {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub intake: Intake,
    pub lookup: CallerLookup,
    /// The Admin API client, when SHOPIFY_ACCESS_TOKEN is set.
    pub shopify: Option<Arc<ShopifyClient>>,
    /// Twilio's REST API (recordings, call-backs), when TWILIO_ACCOUNT_SID and a key or the auth
    /// token are set: built once, at start.
    pub twilio_rest: Option<Arc<twilio::rest::TwilioRest>>,
    /// The call flow, and how it is spoken and recorded.
    pub flow: CallFlow,
    pub renderer: Arc<Renderer>,
    /// The recorded phrases Media Streams calls are spoken with.
    pub clips: Arc<ClipLibrary>,
    pub recorder: CallRecorder,
    /// Media Streams calls' decisions, for the `<Redirect>` after the stream.
    pub handoffs: crate::twilio::media::Handoffs,
    /// Call events for agents' consoles.
    pub feed: agent::AgentFeed,
    /// One permit per open agent feed socket (ORDERLINE_MAX_FEED_CLIENTS).
    pub feed_slots: Arc<tokio::sync::Semaphore>,
}

/// The recordings Media Streams calls are spoken from: the built-in clips, with the merchant's
/// own (ORDERLINE_SPEECH_DIR) laid over them.
pub fn clips(settings: &Settings) -> Result<ClipLibrary, StartError> {
    ClipLibrary::built_in_with(settings.ivr.speech_dir.as_deref()).map_err(StartError::Speech)
}

/// The TwiML and speech templates the settings ask for, each rendered once (TwiML parsed, speech
/// checked against `clips`): a template that does not make valid TwiML, or names a clip that is
/// not recorded, stops the start, naming the template and line.
pub fn renderer(settings: &Settings, clips: &ClipLibrary) -> Result<Renderer, StartError> {
    use crate::twilio::render::{TransferView, sample_steps};
    let mut renderer = Renderer::load_languages(
        settings.ivr.twiml_dir.as_deref(),
        &settings.ivr.spoken_languages,
        &settings.ivr.shop_name,
    )?;
    // A ConversationRelay call speaks the same templates' words, and always hears speech.
    renderer.listen_for_speech(match settings.ivr.prompt_mode {
        crate::config::PromptMode::Twiml => settings.ivr.speech_input,
        crate::config::PromptMode::MediaStream => false,
        crate::config::PromptMode::ConversationRelay => true,
    });
    renderer.record_messages_at(&twilio::voicemail::record_urls(settings));
    renderer.speak_from(clips);
    let transfers: Vec<TransferView> = crate::twilio::transfer::TransferTarget::KINDS
        .iter()
        .map(|kind| TransferView {
            kind,
            address: "support".into(),
            workflow_sid: (*kind == "queue").then(|| "WW0123456789abcdef0123456789abcdef".into()),
            task: r#"{"name":"O'Brien & Sons <Ltd>"}"#.into(),
            whisper_url: "/twilio/voice/whisper?v=p&c=1&o=2".into(),
            params: vec![("name".into(), "O'Brien & Sons <Ltd>".into())],
            sip_uri: "sip:agents@pbx.example.com?X-Orderline-name=O'Brien_Sons&X-Orderline-call-sid=CA1".into(),
            dial_action: "https://h.example/p/twilio/voice/dial-ended".into(),
            queue_action: "https://h.example/p/twilio/voice/queue-ended".into(),
            wait_url: "https://h.example/p/twilio/voice/queue-wait?a=1&b=2".into(),
            priority: 10,
        })
        .chain(std::iter::once(TransferView { kind: "queue", address: "support".into(), ..TransferView::default() }))
        .collect();
    renderer.check(&sample_steps(), &transfers, clips)?;
    Ok(renderer)
}

/// The Admin API client the settings ask for, if any.
pub fn shopify_client(settings: &Settings, metrics: Arc<Metrics>) -> Option<Arc<ShopifyClient>> {
    let credentials = match (&settings.shopify.client_id, &settings.shopify.client_secret) {
        (Some(client_id), Some(client_secret)) => {
            Credentials::ClientCredentials { client_id: client_id.clone(), client_secret: client_secret.clone() }
        }
        _ => Credentials::Permanent(settings.shopify.access_token.clone()?),
    };
    let config = ClientConfig {
        api_url: settings.shopify.api_url.clone()?,
        credentials,
        breaker_threshold: settings.sync.breaker_threshold,
        breaker_cooldown: settings.sync.breaker_cooldown,
    };
    Some(Arc::new(ShopifyClient::new(config, metrics)))
}

/// The caller lookup the settings ask for.
pub fn caller_lookup(
    settings: &Settings,
    store: Store,
    client: Option<Arc<ShopifyClient>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> CallerLookup {
    let mut config = LookupConfig::new(settings.shopify.shop.clone().unwrap_or_default());
    config.default_region = settings.lookup.default_region.clone();
    config.freshness = settings.lookup.freshness;
    config.budget = settings.lookup.lookup_budget;
    config.negative_ttl = settings.lookup.negative_ttl;
    config.cache_max_bytes = settings.lookup.cache_max_bytes;
    CallerLookup::new(config, store, client, clock, metrics)
}

/// The tracking link by text (key 4), when the settings allow it: ORDERLINE_SMS on and the REST
/// API's credentials set (TwiML and Media Streams prompts alike: the recorded phrases say it).
pub fn texts(
    settings: &Settings,
    store: &Store,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Option<crate::ivr::Texts> {
    if !settings.ivr.sms {
        return None;
    }
    let rest = twilio::rest::TwilioRest::from_settings(settings, metrics.clone()).ok()?;
    let from =
        settings.ivr.sms_from.as_deref().map_or_else(|| "the number called".to_string(), crate::domain::mask_phone);
    tracing::info!(from = %from, "key 4 texts the tracking link (ORDERLINE_SMS=false turns it off)");
    let sender = twilio::sms::TwilioTexts::new(Arc::new(rest), store.clone(), clock.clone(), settings);
    Some(crate::ivr::Texts {
        sender: Arc::new(sender),
        shop_name: settings.ivr.shop_name.clone(),
        default_region: settings.lookup.default_region.clone(),
    })
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(shopify::router(state.settings.server.webhook_max_bytes))
        .merge(twilio::router_at(&state.settings.server.public_url))
        .merge(agent::router())
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::request_limits::enforce))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TwiML template {0}")]
    Template(#[from] crate::twilio::render::TemplateError),
    #[error("ORDERLINE_SPEECH_DIR: {0}")]
    Speech(std::io::Error),
}

/// A running orderline: its address, and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    processor: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, stops the processor.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.processor.await;
        self.state.recorder.flush().await;
        for task in &self.background {
            task.abort();
        }
        self.state.store.close().await;
    }

    /// Waits until the server stops on its own (it does not, unless told to).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let _ = self.shutdown.send(true);
        let _ = self.processor.await;
        self.state.recorder.flush().await;
        for task in &self.background {
            task.abort();
        }
        self.state.store.close().await;
        result
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Connects the store, applies migrations, starts the webhook processor and serves HTTP.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    start_with_clock(settings, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(mut settings: Settings, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    settings.check_for_serve()?;
    let clips = Arc::new(clips(&settings)?);
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .map_err(|source| StartError::Bind { addr: settings.server.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: settings.server.listen, source })?;
    // With no public URL configured, Twilio is taken to reach us where we listen (port 0 resolved,
    // any path kept: `http://127.0.0.1:0/prefix` in tests).
    if let Some(path) = settings.server.public_url.strip_prefix(&format!("http://{}", settings.server.listen))
        && (path.is_empty() || path.starts_with('/'))
    {
        settings.server.public_url = format!("http://{addr}{path}");
    }
    // Templates hold absolute URLs of the public URL (voicemail's `<Record>`): rendered once it is known.
    let renderer = Arc::new(renderer(&settings, &clips)?);
    let store = Store::connect_with(&settings.server.database_url, settings.server.db_max_connections).await?;
    store.migrate().await?;
    let metrics = Arc::new(Metrics::new());
    let stored = Arc::new(shopify::intake::Stored::default());
    let writers = match store.backend() {
        Backend::Postgres => 8,
        Backend::Sqlite => 1,
    };
    let intake = Intake::start(store.clone(), writers, stored.clone());
    let settings = Arc::new(settings);
    let client = shopify_client(&settings, metrics.clone());
    let lookup = caller_lookup(&settings, store.clone(), client.clone(), clock.clone(), metrics.clone());
    // Call-record writers: one per two cores, at most 4. Each batch keeps a Postgres backend busy
    // while it runs; where Postgres shares the cores with orderline, more writers only split the
    // batches smaller (issue 14: on 2 cores, 1 writer took 24,400-25,100 calls/s at saturation,
    // 2 took 23,650-24,330 and 4 took 22,670-22,710). A batch grows with the load (up to 2,000
    // writes), so one writer is not the bound.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (recorder, recorder_tasks) =
        CallRecorder::start(store.clone(), writers.min((cores / 2).clamp(1, 4)), metrics.clone());
    let limit = crate::ivr::verification::VerificationLimit {
        store: store.clone(),
        clock: clock.clone(),
        max_failures: settings.ivr.verify_max_failures,
        window: settings.ivr.verify_failure_window,
    };
    let flow = CallFlow::new(
        lookup.clone(),
        clock.clone(),
        settings.ivr.verify,
        settings.handoff.business_hours.clone(),
        settings.ivr.hold_after,
        limit,
    )
    .with_return_window(settings.ivr.return_window_days)
    .with_languages(settings.ivr.spoken_languages.iter().map(|l| l.language).collect());
    let flow = match texts(&settings, &store, &clock, &metrics) {
        Some(texts) => flow.with_texts(texts),
        None => flow,
    };
    // The menu offers voicemail in every mode: its `<Record>` is TwiML, which a Media Streams
    // call reaches after its stream and a ConversationRelay call after its session (the offer
    // and the words before the tone said from recordings, or as text). Bad news first needs
    // words without recordings: TwiML and ConversationRelay.
    let flow = flow.with_voicemail(settings.handoff.voicemail);
    let flow = match settings.ivr.prompt_mode {
        crate::config::PromptMode::Twiml | crate::config::PromptMode::ConversationRelay => {
            flow.with_bad_news(settings.ivr.bad_news_policy())
        }
        crate::config::PromptMode::MediaStream => flow,
    };
    let feed = agent::AgentFeed::new();
    let state = AppState(Arc::new(Shared {
        feed: feed.clone(),
        feed_slots: Arc::new(tokio::sync::Semaphore::new(settings.transport.max_feed_clients)),
        flow,
        renderer,
        clips,
        handoffs: crate::twilio::media::Handoffs::new(store.clone()),
        recorder,
        settings: settings.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        intake,
        lookup: lookup.clone(),
        shopify: client.clone(),
        twilio_rest: twilio::rest::TwilioRest::from_settings(&settings, metrics.clone()).ok().map(Arc::new),
    }));

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut background =
        vec![lookup.follow_changes(), tokio::spawn(keep_lookup_current(lookup.clone(), settings.lookup.warm_count))];
    background.extend(recorder_tasks);
    background.push(tokio::spawn(feed.run(agent::AgentDesk::from_ref(&state))));
    if let Some(client) = client.clone() {
        // Which scopes the app holds: logged and shown on /readyz when one is missing.
        background.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            if let Err(e) = client.check_scopes(deadline).await {
                tracing::warn!(error = %e, "could not check the Shopify app's access scopes");
            }
        }));
    }
    if let (Some(client), Some(shop), true) =
        (client, settings.shopify.shop.clone(), settings.sync.reconcile_every > std::time::Duration::ZERO)
    {
        let reconciler = Reconciler {
            store: store.clone(),
            client,
            shop,
            default_region: settings.lookup.default_region.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            lag: settings.sync.reconcile_lag,
            lookup: Some(Arc::new(lookup.clone())),
        };
        background.push(tokio::spawn(reconciler.run(
            settings.sync.reconcile_every,
            settings.sync.reconcile_deletions_every,
            shutdown_rx.clone(),
        )));
    }
    if let Some(target) = settings.agents.notify().clone() {
        background.push(tokio::spawn(agent::notify::run(
            agent::AgentDesk::from_ref(&state),
            target,
            shutdown_rx.clone(),
        )));
    }
    if settings.handoff.callback {
        background.push(tokio::spawn(twilio::callback::run(state.clone(), shutdown_rx.clone())));
    }
    background.push(tokio::spawn(ops::retention::run(state.clone(), shutdown_rx.clone())));
    let processor = Processor { store, metrics, clock, default_region: settings.lookup.default_region.clone() };
    let processor = tokio::spawn(processor.run(stored, shutdown_rx.clone()));

    let app = router(state.clone());
    let server = tokio::spawn(ops::transport::serve(
        listener,
        app,
        settings.transport.clone(),
        state.metrics.clone(),
        shutdown_rx,
        settings.server.drain_timeout,
    ));
    Ok(Running { addr, state, shutdown, server, processor, background })
}

/// Warms the cache once, then keeps the reconciliation watermark (which any instance may move)
/// current in the lookup.
async fn keep_lookup_current(lookup: CallerLookup, warm_count: i64) {
    let started = std::time::Instant::now();
    match lookup.warm(warm_count).await {
        Ok(phones) => tracing::info!(phones, seconds = started.elapsed().as_secs_f64(), "caller cache warmed"),
        Err(e) => tracing::warn!(error = %e, "caller cache not warmed"),
    }
    loop {
        if let Err(e) = lookup.refresh_watermark().await {
            tracing::debug!(error = %e, "watermark refresh failed");
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
