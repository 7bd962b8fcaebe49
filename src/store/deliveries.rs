//! Durable webhook intake and its processing: store first (so the 200 is honest), apply after.
//! A delivery row is written once at intake, then moves pending → applied | unchanged | gone |
//! dead | redacted; its body is kept only while it may still be needed (pending or dead).

use sqlx::QueryBuilder;

use super::changes::PhoneChanges;
use super::pending::{PendingNotice, PendingSubjects};
use super::records::ApplyOutcome;
use super::write::Change;
use super::{Pool, Store, StoreError, Ts, backend, on_backend};
use crate::domain::ShopifyId;

/// How a stored delivery's body is read, handed in by whoever applies deliveries (`shopify`
/// implements it): the store keeps the topic as text and never parses a body itself.
pub trait ReadDelivery: Sync {
    /// The change a delivery of `topic` asks for; Err: why it cannot be applied (it becomes a
    /// dead letter with that error).
    fn read(&self, topic: &str, body: &[u8]) -> Result<Change, String>;

    /// For a body `read` refused: the customer and order it names plainly, if it does, so a
    /// redaction can still find and erase it.
    fn subjects(&self, topic: &str, body: &[u8]) -> (Option<ShopifyId>, Option<ShopifyId>);
}

/// One of `count` parts of the pending deliveries, split by the order they are about (one
/// about a customer alone, by the customer), so every delivery about one order, or about one
/// customer's own record, falls in one lane and applies in arrival order. A delivery about
/// neither (a redaction, a data request) is a barrier: lane 0 applies it alone once every
/// delivery before it is applied, and no lane takes one after it until then. Records written
/// as a side effect from two lanes (the customer an order names) keep the one apply path's
/// `updated_at` guard, as they do between two `serve` processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    pub index: u32,
    pub count: u32,
}

impl Lane {
    /// Every pending delivery.
    pub const ALL: Lane = Lane { index: 0, count: 1 };

    /// The store's `write_lanes`, each once.
    pub fn all_of(store: &Store) -> Vec<Lane> {
        let count = store.write_lanes();
        (0..count).map(|index| Lane { index, count }).collect()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Applied,
    Unchanged,
    /// Same `updated_at` as the stored version, different content: the record was marked
    /// unconfirmed and is refetched by the next lookup.
    Unconfirmed,
    Gone,
    Unhandled,
    Dead,
    Redacted,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Applied => "applied",
            DeliveryStatus::Unchanged => "unchanged",
            DeliveryStatus::Unconfirmed => "unconfirmed",
            DeliveryStatus::Gone => "gone",
            DeliveryStatus::Unhandled => "unhandled",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Redacted => "redacted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Applied,
            DeliveryStatus::Unchanged,
            DeliveryStatus::Unconfirmed,
            DeliveryStatus::Gone,
            DeliveryStatus::Unhandled,
            DeliveryStatus::Dead,
            DeliveryStatus::Redacted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    fn of(outcome: ApplyOutcome) -> Self {
        match outcome {
            ApplyOutcome::Applied | ApplyOutcome::Removed | ApplyOutcome::Recorded => DeliveryStatus::Applied,
            ApplyOutcome::Unchanged => DeliveryStatus::Unchanged,
            ApplyOutcome::Unconfirmed => DeliveryStatus::Unconfirmed,
            ApplyOutcome::Gone => DeliveryStatus::Gone,
        }
    }
}

/// A verified delivery, as intake hands it to the store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub shop: String,
    pub webhook_id: String,
    pub event_id: Option<String>,
    pub topic: String,
    /// Whether the topic is one orderline applies: one that is not is recorded as unhandled,
    /// never applied, and its body is not kept.
    pub handled: bool,
    /// The customer and order it is about, read from the body at intake, so a pending delivery
    /// can be found by its subject (the lookup's freshness, a redaction).
    pub customer_id: Option<ShopifyId>,
    pub order_id: Option<ShopifyId>,
    pub api_version: Option<String>,
    pub triggered_at: Option<Ts>,
    pub received_at: Ts,
    pub body: Vec<u8>,
    /// Why this delivery must not be applied (see `shopify::destructive`): stored as a dead
    /// letter with this error, for `orderline dlq` to show and replay.
    pub refused: Option<String>,
}

/// A delivery as stored (without its body).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub shop: String,
    pub webhook_id: String,
    pub event_id: Option<String>,
    pub topic: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub received_at: Ts,
    pub processed_at: Option<Ts>,
    pub customer_id: Option<i64>,
    pub order_id: Option<i64>,
    pub has_body: bool,
}

pub type DeadLetter = DeliveryRow;

/// What processing did with one delivery.
#[derive(Debug, Clone)]
pub struct ProcessedDelivery {
    pub id: i64,
    pub topic: String,
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub apply_seconds: f64,
    /// The customer and order it was about, when known.
    pub customer_id: Option<i64>,
    pub order_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    shop: String,
    topic: String,
    body: Option<Vec<u8>>,
    /// When Shopify says the change happened (`X-Shopify-Triggered-At`), else when it arrived:
    /// the time of a return's state (return bodies carry no `updated_at`).
    happened_at: Ts,
}

/// The same event (shop, topic, `X-Shopify-Event-Id`) delivered through several subscriptions.
type EventKey = (String, String, String);

fn event_of(d: &NewDelivery) -> Option<&str> {
    d.event_id.as_deref().filter(|e| !e.is_empty())
}

fn event_key(d: &NewDelivery) -> Option<EventKey> {
    event_of(d).map(|event| (d.shop.clone(), d.topic.clone(), event.to_string()))
}

const ROW_COLUMNS: &str = "id, shop, webhook_id, event_id, topic, status, attempts, error, received_at, processed_at,
                           customer_id, order_id, (body IS NOT NULL) AS has_body";

impl Store {
    /// Stores a batch of verified deliveries in one transaction. For each, in order: true if it
    /// was new, false if it duplicates one already stored: the same webhook ID (a retry), or
    /// the same topic and `X-Shopify-Event-Id` (the same event through another subscription;
    /// shopify.dev/docs/apps/build/webhooks/ignore-duplicates: "the same value across more than
    /// one webhook indicates a duplicate … one per subscription").
    pub async fn insert_deliveries(&self, batch: &[NewDelivery]) -> Result<Vec<bool>, StoreError> {
        let (inserted, notice) = on_backend!(self, insert_batch(batch))?;
        // Committed: from now on the lookup must not call these subjects' records fresh, here
        // and (told before intake answers 200) on every other instance.
        if !notice.is_empty() {
            self.pending.add(&notice);
            self.announce(notice.payloads().into_iter().map(|p| (super::pending::CHANNEL, p)).collect()).await;
        }
        Ok(inserted)
    }

    /// The hint of which customers and orders have a delivery pending.
    pub fn pending_subjects(&self) -> &PendingSubjects {
        &self.pending
    }

    /// Reads which subjects the database holds pending deliveries for, and makes the hint
    /// exactly that (plus what was added meanwhile).
    pub async fn resync_pending(&self) -> Result<(), StoreError> {
        let mark = self.pending.mark();
        let rows: Vec<(Option<i64>, Option<i64>)> = on_backend!(self, pending_subject_rows())?;
        let customers: Vec<i64> = rows.iter().filter_map(|(c, _)| *c).collect();
        let orders: Vec<i64> = rows.iter().filter_map(|(_, o)| *o).collect();
        self.pending.resync(mark, &customers, &orders);
        Ok(())
    }

    /// Applies the pending deliveries about these customers (and their orders) now, through
    /// the same path as the processor (the caller lookup does this before it answers from a
    /// record they would change). Returns what was applied and how many such deliveries are
    /// still pending (being applied by another instance at this moment).
    pub async fn apply_pending_for(
        &self,
        shop: &str,
        customers: &[i64],
        orders: &[i64],
        reader: &dyn ReadDelivery,
        default_region: &str,
        now: Ts,
    ) -> Result<(Vec<ProcessedDelivery>, i64), StoreError> {
        let mark = self.pending.mark();
        let (processed, changes, left) =
            on_backend!(self, process_pending_for(shop, customers, orders, reader, default_region, now))?;
        self.committed(changes).await;
        self.wrote_deliveries(&processed).await;
        if left == 0 {
            // Nothing is pending about these customers or any of their orders (the new ones
            // these deliveries brought included).
            let mut orders = orders.to_vec();
            orders.extend(processed.iter().filter_map(|p| p.order_id));
            self.pending.settle(mark, customers, &orders);
        }
        Ok((processed, left))
    }

    /// Claims up to `limit` pending deliveries, reads each with `reader` and applies it through
    /// the one apply path, in one transaction (each in its own savepoint, so one bad delivery
    /// cannot spoil the rest). On Postgres, rows claimed by another instance are skipped
    /// (`FOR UPDATE SKIP LOCKED`).
    pub async fn process_pending(
        &self,
        limit: i64,
        reader: &dyn ReadDelivery,
        default_region: &str,
        now: Ts,
    ) -> Result<Vec<ProcessedDelivery>, StoreError> {
        self.process_lane(Lane::ALL, limit, reader, default_region, now).await
    }

    /// As `process_pending`, for the deliveries of one `lane` only (see `Lane`): several lanes
    /// apply at once, each in its own transaction.
    pub async fn process_lane(
        &self,
        lane: Lane,
        limit: i64,
        reader: &dyn ReadDelivery,
        default_region: &str,
        now: Ts,
    ) -> Result<Vec<ProcessedDelivery>, StoreError> {
        let (processed, changes) = on_backend!(self, process_pending(lane, limit, reader, default_region, now))?;
        self.committed(changes).await;
        self.wrote_deliveries(&processed).await;
        Ok(processed)
    }

    /// Counts applied deliveries for the planner statistics (`statistics`): those about an
    /// order as orders, the rest as customers.
    async fn wrote_deliveries(&self, processed: &[ProcessedDelivery]) {
        let orders = processed.iter().filter(|p| p.order_id.is_some()).count();
        self.wrote_records(processed.len() - orders, orders).await;
    }

    pub async fn delivery(&self, shop: &str, webhook_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        Ok(on_backend!(self, delivery(shop, webhook_id))?)
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(on_backend!(self, dead_letters())?)
    }

    /// A stored delivery's body (None once applied, or unknown ID), for `dlq replay`'s checks.
    pub async fn delivery_body(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(on_backend!(self, delivery_body(id))?)
    }

    /// Puts dead letters (one, or all) back in the queue; returns how many.
    pub async fn requeue_dead_letters(&self, id: Option<i64>) -> Result<u64, StoreError> {
        Ok(on_backend!(self, requeue_dead(id))?)
    }

    /// How many deliveries stand in each status.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_backend!(self, counts())?)
    }
}

// The SQL, in deliveries/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "deliveries"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/deliveries/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "deliveries"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/deliveries/sql.rs
    pub(crate) use sql::*;
}
