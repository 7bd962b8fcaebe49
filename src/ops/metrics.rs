//! Prometheus metrics, one registry per running app (no globals, so tests can run side by side).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub topic: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    /// Webhook intake: accepted, duplicate, dead_letter (a destructive topic that failed its
    /// check), unauthorized, too_large, bad_request, store_failed.
    pub webhooks_received: Family<DeliveryLabels, Counter>,
    /// Webhook processing: applied, unchanged, gone, dead, unhandled.
    pub webhooks_processed: Family<DeliveryLabels, Counter>,
    /// Time from a delivery's arrival to its 200 (durable store included).
    pub webhook_ack_seconds: Histogram,
    /// Time to apply one delivery through the apply path.
    pub webhook_apply_seconds: Histogram,
    /// Dead letters waiting for `orderline dlq replay`, read from the store at scrape time.
    pub dead_letters: Gauge,
    /// Deliveries stored and not yet applied, read from the store at scrape time.
    pub pending_deliveries: Gauge,
    /// Times the webhook processor shared a backlog among the store's write lanes.
    pub backlog_spreads: Counter,
    /// Caller lookups by where the answer came from: cache, store, shopify, stale, unknown, withheld.
    pub lookups: Family<SourceLabels, Counter>,
    /// Admin API requests by operation and outcome.
    pub shopify_requests: Family<OperationLabels, Counter>,
    /// Twilio REST API requests (`twilio::rest`) by operation and outcome (ok, retried,
    /// unauthorized, not_found, refused, error, timeout).
    pub twilio_api_requests: Family<OperationLabels, Counter>,
    /// Admin API request latency (live fetches and reconciliation).
    pub shopify_request_seconds: Histogram,
    /// Time spent waiting for the client-side bucket or a THROTTLED/429 answer.
    pub shopify_throttle_wait_seconds: Histogram,
    /// Circuit breaker: 0 closed, 1 open, 2 half-open.
    pub shopify_breaker_state: Gauge,
    /// Now minus the reconciliation watermark, in seconds.
    pub reconciler_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Records (customers, orders) a bulk backfill applied, by resource.
    pub bulk_backfill_records: Family<ResourceLabels, Counter>,
    /// Caller entries held in the cache.
    pub cache_entries: Gauge,
    /// Twilio requests by route (voice, menu, order-number, …, status) and outcome (answered,
    /// fallback, forbidden).
    pub twilio_requests: Family<RouteLabels, Counter>,
    /// Time to answer a Twilio request.
    pub twilio_response_seconds: Histogram,
    /// Call record writes stored, and dropped (database down or far behind).
    pub call_records_written: Counter,
    pub call_records_dropped: Counter,
    /// Media Streams sessions open now.
    pub media_streams_active: Gauge,
    /// Media Streams sessions by how they ended: transfer, goodbye, fallback, stopped, closed,
    /// protocol_error, forbidden.
    pub media_streams_ended: Family<EndLabels, Counter>,
    /// Connections open now (HTTP and upgraded WebSockets).
    pub connections_open: Gauge,
    /// Connections closed on accept by reason: full, per_address.
    pub connections_refused: Family<ReasonLabels, Counter>,
    /// How late each audio frame left against its 20 ms schedule.
    pub media_frame_lag_seconds: Histogram,
    /// From a stream's `start` to its first audio frame.
    pub media_first_audio_seconds: Histogram,
    /// Media Streams messages ignored, by what they were: unknown_event, unknown_digit,
    /// unknown_mark, bad_media (Twilio documents no closed set of events: we go on).
    pub media_messages_ignored: Family<IgnoredLabels, Counter>,
    /// ConversationRelay sessions open now.
    pub relay_sessions_active: Gauge,
    /// ConversationRelay sessions by how they ended: transfer, goodbye, fallback, closed,
    /// protocol_error, refused, forbidden.
    pub relay_sessions_ended: Family<EndLabels, Counter>,
    /// ConversationRelay messages ignored, by what they were: unknown_type, unknown_digit,
    /// after_end, partial_prompt, bad_interrupt (Twilio may add message types: we go on).
    pub relay_messages_ignored: Family<IgnoredLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IgnoredLabels {
    pub what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// The Twilio routes' names as the router knows them (`/twilio/voice/{stage}` has one per
/// stage). A label is one of these or `other`: no request can add a label, or put text of its own
/// into the page.
fn twilio_route_label(route: &str) -> &'static str {
    const FIXED: [&str; 8] = ["voice", "whisper", "status", "media", "stream-ended", "fallback", "relay", "end"];
    FIXED
        .into_iter()
        .chain(crate::ivr::state::Stage::ALL.map(|s| s.path()))
        .find(|known| *known == route)
        .unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndLabels {
    pub end: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
    pub outcome: String,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orderline");
        let webhooks_received = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries_received",
            "Shopify webhook deliveries by topic and intake outcome",
            webhooks_received.clone(),
        );
        let webhooks_processed = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries_processed",
            "Shopify webhook deliveries by topic and apply outcome",
            webhooks_processed.clone(),
        );
        let webhook_ack_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "webhook_ack_seconds",
            "Time from a delivery's arrival to its durable acknowledgement",
            webhook_ack_seconds.clone(),
        );
        let webhook_apply_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register("webhook_apply_seconds", "Time to apply one delivery", webhook_apply_seconds.clone());
        let dead_letters = Gauge::default();
        registry.register("webhook_dead_letters", "Dead-lettered deliveries awaiting replay", dead_letters.clone());
        let pending_deliveries = Gauge::default();
        registry.register(
            "webhook_pending_deliveries",
            "Stored deliveries not yet applied",
            pending_deliveries.clone(),
        );
        let backlog_spreads = Counter::default();
        registry.register(
            "webhook_backlog_spreads",
            "Times a backlog of stored deliveries was shared among the store's write lanes",
            backlog_spreads.clone(),
        );
        let lookups = Family::<SourceLabels, Counter>::default();
        registry.register("lookups", "Caller lookups by the source of the answer", lookups.clone());
        let shopify_requests = Family::<OperationLabels, Counter>::default();
        registry.register("shopify_requests", "Admin API requests by operation and outcome", shopify_requests.clone());
        let twilio_api_requests = Family::<OperationLabels, Counter>::default();
        registry.register(
            "twilio_api_requests",
            "Twilio REST API requests by operation and outcome",
            twilio_api_requests.clone(),
        );
        let shopify_request_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register("shopify_request_seconds", "Admin API request latency", shopify_request_seconds.clone());
        let shopify_throttle_wait_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 10));
        registry.register(
            "shopify_throttle_wait_seconds",
            "Waits for Shopify's rate limit",
            shopify_throttle_wait_seconds.clone(),
        );
        let shopify_breaker_state = Gauge::default();
        registry.register(
            "shopify_breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            shopify_breaker_state.clone(),
        );
        let reconciler_lag_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "reconciler_lag_seconds",
            "Now minus the reconciliation watermark",
            reconciler_lag_seconds.clone(),
        );
        let bulk_backfill_records = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "bulk_backfill_records",
            "Records applied from Shopify bulk operations, by resource",
            bulk_backfill_records.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register("cache_entries", "Caller entries in the lookup cache", cache_entries.clone());
        let twilio_requests = Family::<RouteLabels, Counter>::default();
        registry.register("twilio_requests", "Twilio requests by route and outcome", twilio_requests.clone());
        let twilio_response_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "twilio_response_seconds",
            "Time to answer a Twilio request",
            twilio_response_seconds.clone(),
        );
        let call_records_written = Counter::default();
        registry.register("call_records_written", "Call record writes stored", call_records_written.clone());
        let call_records_dropped = Counter::default();
        registry.register(
            "call_records_dropped",
            "Call record writes dropped (database down or far behind)",
            call_records_dropped.clone(),
        );
        let media_streams_active = Gauge::default();
        registry.register("media_streams_active", "Media Streams sessions open", media_streams_active.clone());
        let media_streams_ended = Family::<EndLabels, Counter>::default();
        registry.register(
            "media_streams_ended",
            "Media Streams sessions by how they ended",
            media_streams_ended.clone(),
        );
        // Around the 5 ms a frame may be late before a caller could hear it.
        let media_frame_lag_seconds =
            Histogram::new([0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5]);
        registry.register(
            "media_frame_lag_seconds",
            "How late an audio frame was sent against its 20 ms schedule",
            media_frame_lag_seconds.clone(),
        );
        let media_messages_ignored = Family::<IgnoredLabels, Counter>::default();
        registry.register(
            "media_messages_ignored",
            "Media Streams messages ignored, by what they were",
            media_messages_ignored.clone(),
        );
        let relay_sessions_active = Gauge::default();
        registry.register("relay_sessions_active", "ConversationRelay sessions open", relay_sessions_active.clone());
        let relay_sessions_ended = Family::<EndLabels, Counter>::default();
        registry.register(
            "relay_sessions_ended",
            "ConversationRelay sessions ended, by how they ended",
            relay_sessions_ended.clone(),
        );
        let relay_messages_ignored = Family::<IgnoredLabels, Counter>::default();
        registry.register(
            "relay_messages_ignored",
            "ConversationRelay messages ignored, by what they were",
            relay_messages_ignored.clone(),
        );
        let media_first_audio_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "media_first_audio_seconds",
            "From a stream's start message to its first audio frame",
            media_first_audio_seconds.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Connections open (HTTP and WebSockets)", connections_open.clone());
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed on accept: full (ORDERLINE_MAX_CONNECTIONS) or per_address",
            connections_refused.clone(),
        );
        Metrics {
            connections_open,
            connections_refused,
            media_streams_active,
            media_streams_ended,
            media_frame_lag_seconds,
            media_first_audio_seconds,
            media_messages_ignored,
            relay_sessions_active,
            relay_sessions_ended,
            relay_messages_ignored,
            twilio_requests,
            twilio_response_seconds,
            call_records_written,
            call_records_dropped,
            lookups,
            shopify_requests,
            twilio_api_requests,
            shopify_request_seconds,
            shopify_throttle_wait_seconds,
            shopify_breaker_state,
            reconciler_lag_seconds,
            bulk_backfill_records,
            cache_entries,
            registry,
            webhooks_received,
            webhooks_processed,
            webhook_ack_seconds,
            webhook_apply_seconds,
            dead_letters,
            pending_deliveries,
            backlog_spreads,
        }
    }

    pub fn received(&self, topic: &str, outcome: &str) {
        self.webhooks_received.get_or_create(&DeliveryLabels { topic: topic.into(), outcome: outcome.into() }).inc();
    }

    pub fn processed(&self, topic: &str, outcome: &str) {
        self.webhooks_processed.get_or_create(&DeliveryLabels { topic: topic.into(), outcome: outcome.into() }).inc();
    }

    pub fn lookup(&self, source: &str) {
        self.lookups.get_or_create(&SourceLabels { source: source.into() }).inc();
    }

    pub fn shopify_request(&self, operation: &str, outcome: &str, seconds: f64) {
        self.shopify_requests
            .get_or_create(&OperationLabels { operation: operation.into(), outcome: outcome.into() })
            .inc();
        self.shopify_request_seconds.observe(seconds);
    }

    pub fn twilio_api_request(&self, operation: &str, outcome: &str) {
        self.twilio_api_requests
            .get_or_create(&OperationLabels { operation: operation.into(), outcome: outcome.into() })
            .inc();
    }

    /// `route` is the path's last segment; routes the router does not have share the label `other`.
    pub fn twilio_request(&self, route: &str, outcome: &str, seconds: f64) {
        let route = twilio_route_label(route);
        self.twilio_requests.get_or_create(&RouteLabels { route: route.into(), outcome: outcome.into() }).inc();
        self.twilio_response_seconds.observe(seconds);
    }

    pub fn call_records_written(&self, n: u64) {
        self.call_records_written.inc_by(n);
    }

    pub fn media_message_ignored(&self, what: &str) {
        self.media_messages_ignored.get_or_create(&IgnoredLabels { what: what.into() }).inc();
    }

    pub fn media_stream_ended(&self, end: &str) {
        self.media_streams_ended.get_or_create(&EndLabels { end: end.into() }).inc();
    }

    pub fn relay_message_ignored(&self, what: &str) {
        self.relay_messages_ignored.get_or_create(&IgnoredLabels { what: what.into() }).inc();
    }

    pub fn relay_session_ended(&self, end: &str) {
        self.relay_sessions_ended.get_or_create(&EndLabels { end: end.into() }).inc();
    }

    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    pub fn call_record_dropped(&self) {
        self.call_records_dropped.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
