//! Durable webhook intake and its processing: store first (so the 200 is honest), apply after.
//! A delivery row is written once at intake, then moves pending → applied | unchanged | gone |
//! dead | redacted; its body is kept only while it may still be needed (pending or dead).

use sqlx::QueryBuilder;

use super::changes::PhoneChanges;
use super::records::ApplyOutcome;
use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};
use crate::shopify::payload::{ShopifyChange, Topic, subjects_of_unparsed};

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
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    shop: String,
    topic: String,
    body: Option<Vec<u8>>,
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
        Ok(on_backend!(self, insert_batch(batch))?)
    }

    /// Claims up to `limit` pending deliveries and applies each through the one apply path, in
    /// one transaction (each in its own savepoint, so one bad delivery cannot spoil the rest).
    /// On Postgres, rows claimed by another instance are skipped (`FOR UPDATE SKIP LOCKED`).
    pub async fn process_pending(
        &self,
        limit: i64,
        default_region: &str,
        now: Ts,
    ) -> Result<Vec<ProcessedDelivery>, StoreError> {
        let (processed, changes) = on_backend!(self, process_pending(limit, default_region, now))?;
        self.committed(changes);
        Ok(processed)
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

for_each_backend! {
    use sqlx::Connection;

    pub(crate) async fn insert_batch(conn: &mut Conn, batch: &[NewDelivery]) -> Result<Vec<bool>, sqlx::Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = match BACKEND {
            crate::store::Backend::Postgres => conn.begin().await?,
            // Read, then write: take the write lock first (see `process_pending`).
            crate::store::Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
        };
        // The first webhook ID each event came with: stored before, or earlier in this batch.
        let mut first_of_event: std::collections::HashMap<(&str, &str, &str), String> = std::collections::HashMap::new();
        let mut fresh: Vec<&NewDelivery> = Vec::with_capacity(batch.len());
        let mut seen_event = Vec::with_capacity(batch.len());
        for d in batch {
            let repeated = match d.event_id.as_deref().filter(|e| !e.is_empty()) {
                None => false,
                Some(event) => {
                    let key = (d.shop.as_str(), d.topic.as_str(), event);
                    let first = match first_of_event.get(&key) {
                        Some(first) => first.clone(),
                        None => {
                            let stored: Option<(String,)> = sqlx::query_as(
                                "SELECT webhook_id FROM webhook_deliveries
                                 WHERE shop = $1 AND event_id = $2 AND topic = $3 ORDER BY id LIMIT 1",
                            )
                            .bind(&d.shop)
                            .bind(event)
                            .bind(&d.topic)
                            .fetch_optional(&mut *tx)
                            .await?;
                            let first = stored.map_or_else(|| d.webhook_id.clone(), |(w,)| w);
                            first_of_event.insert(key, first.clone());
                            first
                        }
                    };
                    first != d.webhook_id
                }
            };
            seen_event.push(repeated);
            if !repeated {
                fresh.push(d);
            }
        }
        let inserted = if fresh.is_empty() { Vec::new() } else { insert_rows(&mut tx, &fresh).await? };
        tx.commit().await?;
        let mut seen = std::collections::HashSet::new();
        Ok(batch
            .iter()
            .zip(seen_event)
            .map(|(d, repeated)| {
                let key = (d.shop.clone(), d.webhook_id.clone());
                !repeated && inserted.contains(&key) && seen.insert(key)
            })
            .collect())
    }

    /// Inserts the rows; returns the (shop, webhook ID) of those that were new.
    async fn insert_rows(conn: &mut Conn, batch: &[&NewDelivery]) -> Result<Vec<(String, String)>, sqlx::Error> {
        let mut query = QueryBuilder::new(
            "INSERT INTO webhook_deliveries (shop, webhook_id, event_id, topic, api_version, triggered_at,
                                             received_at, status, body, error) ",
        );
        query.push_values(batch, |mut row, d| {
            let known = Topic::parse(&d.topic).is_some();
            let status = match (known, &d.refused) {
                (true, Some(_)) => DeliveryStatus::Dead,
                (true, None) => DeliveryStatus::Pending,
                (false, _) => DeliveryStatus::Unhandled,
            };
            row.push_bind(&d.shop)
                .push_bind(&d.webhook_id)
                .push_bind(&d.event_id)
                .push_bind(&d.topic)
                .push_bind(&d.api_version)
                .push_bind(d.triggered_at)
                .push_bind(d.received_at)
                .push_bind(status.as_str())
                // An unknown topic is recorded, never applied: its body is not kept.
                .push_bind(if known { Some(d.body.as_slice()) } else { None })
                .push_bind(&d.refused);
        });
        query.push(" ON CONFLICT (shop, webhook_id) DO NOTHING RETURNING shop, webhook_id");
        query.build_query_as().fetch_all(&mut *conn).await
    }

    pub(crate) async fn process_pending(
        conn: &mut Conn,
        limit: i64,
        default_region: &str,
        now: Ts,
    ) -> Result<(Vec<ProcessedDelivery>, PhoneChanges), sqlx::Error> {
        // SQLite: take the write lock up front. A deferred transaction that read first and
        // writes later fails with SQLITE_BUSY_SNAPSHOT (517) when another process (a `dlq
        // replay` next to a running server) wrote in between; an immediate one waits its turn.
        let mut tx = match BACKEND {
            crate::store::Backend::Postgres => conn.begin().await?,
            crate::store::Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
        };
        let mut changes = PhoneChanges::default();
        let claim = match BACKEND {
            crate::store::Backend::Postgres => {
                "SELECT id, shop, topic, body FROM webhook_deliveries WHERE status = 'pending'
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            }
            crate::store::Backend::Sqlite => {
                "SELECT id, shop, topic, body FROM webhook_deliveries WHERE status = 'pending' ORDER BY id LIMIT $1"
            }
        };
        let claimed: Vec<Claimed> = sqlx::query_as(claim).bind(limit).fetch_all(&mut *tx).await?;
        let mut processed = Vec::with_capacity(claimed.len());
        for delivery in claimed {
            let started = std::time::Instant::now();
            let topic = Topic::parse(&delivery.topic);
            let body = delivery.body.as_deref().unwrap_or_default();
            let parsed = match topic {
                Some(t) => ShopifyChange::parse(t, body).map_err(|e| e.to_string()),
                None => Err(format!("topic {:?} is not handled", delivery.topic)),
            };
            let (customer_id, order_id) = match &parsed {
                Ok(change) => (change.customer_id(), change.order_id()),
                Err(_) => subjects_of_unparsed(topic, body),
            };
            let result = match parsed {
                Ok(change) => {
                    let mut savepoint = tx.begin().await?;
                    let mut touched = PhoneChanges { shop: delivery.shop.clone(), ..PhoneChanges::default() };
                    let applied = apply_path::apply_change(
                        &mut savepoint,
                        &delivery.shop,
                        &change,
                        default_region,
                        now,
                        crate::store::Provenance::Webhook,
                        Some(delivery.id),
                        &mut touched,
                    )
                    .await;
                    match applied {
                        Ok(outcome) => {
                            savepoint.commit().await?;
                            if changes.shop.is_empty() || changes.shop == touched.shop {
                                changes.merge(touched);
                            } else {
                                // Two shops in one batch: keep it simple and drop everything.
                                changes.all = true;
                            }
                            Ok(DeliveryStatus::of(outcome))
                        }
                        Err(e) if crate::store::is_transient(&e) => return Err(e),
                        Err(e) => {
                            savepoint.rollback().await?;
                            Err(format!("apply failed: {e}"))
                        }
                    }
                }
                Err(reason) => Err(reason),
            };
            let (status, error) = match result {
                Ok(status) => (status, None),
                Err(reason) => (DeliveryStatus::Dead, Some(reason)),
            };
            // The body is kept only while a dead letter may need replaying.
            let keep_body = status == DeliveryStatus::Dead;
            sqlx::query(
                "UPDATE webhook_deliveries
                 SET status = $2, error = $3, attempts = attempts + 1, processed_at = $4,
                     customer_id = $5, order_id = $6, body = CASE WHEN $7 THEN body ELSE NULL END
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(delivery.id)
            .bind(status.as_str())
            .bind(&error)
            .bind(now)
            .bind(customer_id.map(|c| c.0))
            .bind(order_id.map(|o| o.0))
            .bind(keep_body)
            .execute(&mut *tx)
            .await?;
            processed.push(ProcessedDelivery {
                id: delivery.id,
                topic: delivery.topic,
                status,
                error,
                apply_seconds: started.elapsed().as_secs_f64(),
            });
        }
        apply_path::notify(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok((processed, changes))
    }

    pub(crate) async fn delivery(conn: &mut Conn, shop: &str, webhook_id: &str) -> Result<Option<DeliveryRow>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ROW_COLUMNS} FROM webhook_deliveries WHERE shop = $1 AND webhook_id = $2")))
            .bind(shop)
            .bind(webhook_id)
            .fetch_optional(&mut *conn)
            .await
    }

    pub(crate) async fn dead_letters(conn: &mut Conn) -> Result<Vec<DeliveryRow>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ROW_COLUMNS} FROM webhook_deliveries WHERE status = 'dead' ORDER BY id")))
            .fetch_all(&mut *conn)
            .await
    }

    pub(crate) async fn delivery_body(conn: &mut Conn, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as("SELECT body FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.and_then(|(body,)| body))
    }

    pub(crate) async fn requeue_dead(conn: &mut Conn, id: Option<i64>) -> Result<u64, sqlx::Error> {
        let result = match id {
            Some(id) => {
                sqlx::query("UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'dead' AND id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?
            }
            None => sqlx::query("UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'dead'").execute(&mut *conn).await?,
        };
        Ok(result.rows_affected())
    }

    pub(crate) async fn counts(conn: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status")
            .fetch_all(&mut *conn)
            .await
    }
}
