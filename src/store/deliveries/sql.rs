//! The SQL of `store::deliveries`, written once and compiled twice: as `deliveries::pg` and
//! `deliveries::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use sqlx::Connection;

type Tx<'c> = sqlx::Transaction<'c, <Conn as sqlx::Connection>::Database>;

/// A transaction that reads, then writes. SQLite: it takes the write lock up front. A
/// deferred transaction that read first and writes later fails with SQLITE_BUSY_SNAPSHOT
/// (517) when another process (a `dlq replay` next to a running server) wrote in between;
/// an immediate one waits its turn.
async fn begin_writing(conn: &mut Conn) -> Result<Tx<'_>, sqlx::Error> {
    match BACKEND {
        crate::store::Backend::Postgres => conn.begin().await,
        crate::store::Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
    }
}

/// A transaction that applies stored deliveries. On Postgres its commit does not wait for
/// the WAL flush (`synchronous_commit` off for this transaction alone), so appliers do not
/// queue behind each other's fsync. Safe because what it applies is already durable: the
/// delivery rows were flushed by intake's (synchronous) commit before Shopify got its 200,
/// and the apply and the rows' new status commit together. A crash can lose at most the
/// last applies (up to three `wal_writer_delay`s, 0.6 s by default), records and statuses
/// alike; those deliveries are
/// then still `pending` and are applied again after the restart (the apply is idempotent:
/// the `updated_at` guard). Never for intake, nor for a live fetch or reconciliation page,
/// whose writes nothing durable would redo.
async fn begin_applying(conn: &mut Conn) -> Result<Tx<'_>, sqlx::Error> {
    let mut tx = begin_writing(conn).await?;
    if BACKEND == crate::store::Backend::Postgres {
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    }
    Ok(tx)
}

pub(crate) async fn insert_batch(
    conn: &mut Conn,
    batch: &[NewDelivery],
) -> Result<(Vec<bool>, PendingNotice), sqlx::Error> {
    if batch.is_empty() {
        return Ok((Vec::new(), PendingNotice::default()));
    }
    let mut tx = begin_writing(conn).await?;
    // The first webhook ID each event came with: stored before, or earlier in this batch.
    let mut first_of_event = stored_events(&mut tx, batch).await?;
    let mut fresh: Vec<&NewDelivery> = Vec::with_capacity(batch.len());
    let mut seen_event = Vec::with_capacity(batch.len());
    for d in batch {
        let repeated = match event_key(d) {
            None => false,
            Some(key) => *first_of_event.entry(key).or_insert_with(|| d.webhook_id.clone()) != d.webhook_id,
        };
        seen_event.push(repeated);
        if !repeated {
            fresh.push(d);
        }
    }
    let inserted = if fresh.is_empty() { Vec::new() } else { insert_rows(&mut tx, &fresh).await? };
    // The subjects of what is now pending, for every instance's lookup (see `pending`).
    let mut notice = PendingNotice::default();
    for (_, _, status, customer, order) in &inserted {
        if status == DeliveryStatus::Pending.as_str() {
            notice.customers.extend(*customer);
            notice.orders.extend(*order);
        }
    }
    notice.customers.sort_unstable();
    notice.customers.dedup();
    notice.orders.sort_unstable();
    notice.orders.dedup();
    tx.commit().await?;
    let mut seen = std::collections::HashSet::new();
    let inserted: std::collections::HashSet<(String, String)> =
        inserted.into_iter().map(|(shop, webhook_id, ..)| (shop, webhook_id)).collect();
    let answers = batch
        .iter()
        .zip(seen_event)
        .map(|(d, repeated)| {
            let key = (d.shop.clone(), d.webhook_id.clone());
            !repeated && inserted.contains(&key) && seen.insert(key)
        })
        .collect();
    Ok((answers, notice))
}

/// For the deliveries of `batch` that carry an event ID: the webhook ID each event was
/// first stored with, if it was. One query per shop and thousand events, not one per
/// delivery: intake asks while it holds the write transaction.
async fn stored_events(
    conn: &mut Conn,
    batch: &[NewDelivery],
) -> Result<std::collections::HashMap<EventKey, String>, sqlx::Error> {
    let mut by_shop: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
    for d in batch {
        if let Some(event) = event_of(d) {
            by_shop.entry(d.shop.as_str()).or_default().insert(event);
        }
    }
    let mut first: std::collections::HashMap<EventKey, (i64, String)> = Default::default();
    for (shop, events) in by_shop {
        let events: Vec<&str> = events.into_iter().collect();
        for chunk in events.chunks(1000) {
            let mut q =
                QueryBuilder::new("SELECT id, topic, event_id, webhook_id FROM webhook_deliveries WHERE shop = ");
            q.push_bind(shop).push(" AND event_id IN (");
            let mut list = q.separated(", ");
            for event in chunk {
                list.push_bind(*event);
            }
            q.push(")");
            let rows: Vec<(i64, String, String, String)> =
                q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
            for (id, topic, event, webhook_id) in rows {
                let key = (shop.to_string(), topic, event);
                if first.get(&key).is_none_or(|(earliest, _)| id < *earliest) {
                    first.insert(key, (id, webhook_id));
                }
            }
        }
    }
    Ok(first.into_iter().map(|(key, (_, webhook_id))| (key, webhook_id)).collect())
}

/// The customers and orders of every pending delivery.
pub(crate) async fn pending_subject_rows(conn: &mut Conn) -> Result<Vec<(Option<i64>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("SELECT customer_id, order_id FROM webhook_deliveries WHERE status = 'pending'")
        .fetch_all(&mut *conn)
        .await
}

/// Inserts the rows, each with the customer and order it is about (read from the body at
/// once, so a pending delivery can be found by its subject: the lookup's freshness, a
/// redaction); returns those that were new: shop, webhook ID, status, customer, order.
#[allow(clippy::type_complexity)]
async fn insert_rows(
    conn: &mut Conn,
    batch: &[&NewDelivery],
) -> Result<Vec<(String, String, String, Option<i64>, Option<i64>)>, sqlx::Error> {
    let mut query = QueryBuilder::new(
        "INSERT INTO webhook_deliveries (shop, webhook_id, event_id, topic, api_version, triggered_at,
                                         received_at, status, body, error, customer_id, order_id) ",
    );
    query.push_values(batch, |mut row, d| {
        let known = d.handled;
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
        let (customer, order) = if known { (d.customer_id, d.order_id) } else { (None, None) };
        row.push_bind(customer.map(|c| c.0)).push_bind(order.map(|o| o.0));
    });
    query.push(" ON CONFLICT (shop, webhook_id) DO NOTHING RETURNING shop, webhook_id, status, customer_id, order_id");
    query.build_query_as().fetch_all(&mut *conn).await
}

/// The claim of one lane ($2 lanes, this one $3, at most $1 deliveries): the deliveries of its
/// own orders (and of customers, for deliveries about a customer alone) that arrived before the
/// first pending barrier (a delivery about neither: a redaction, a data request); lane 0 takes
/// a barrier once it is the oldest pending delivery (all before it applied, or being applied:
/// their rows are still pending).
macro_rules! lane_claim {
    () => {
        "SELECT id, shop, topic, body, COALESCE(triggered_at, received_at) AS happened_at
         FROM webhook_deliveries
         WHERE status = 'pending' AND (
             ((customer_id IS NOT NULL OR order_id IS NOT NULL)
              AND ((COALESCE(order_id, customer_id) % $2) + $2) % $2 = $3
              AND id < COALESCE((SELECT MIN(id) FROM webhook_deliveries WHERE status = 'pending'
                                 AND customer_id IS NULL AND order_id IS NULL), 9223372036854775807))
             OR ($3 = 0 AND customer_id IS NULL AND order_id IS NULL
                 AND id = (SELECT MIN(id) FROM webhook_deliveries WHERE status = 'pending')))
         ORDER BY id LIMIT $1"
    };
}

pub(crate) async fn process_pending(
    conn: &mut Conn,
    lane: Lane,
    limit: i64,
    reader: &dyn ReadDelivery,
    default_region: &str,
    now: Ts,
) -> Result<(Vec<ProcessedDelivery>, PhoneChanges), sqlx::Error> {
    let mut tx = begin_applying(conn).await?;
    let claim = match BACKEND {
        crate::store::Backend::Postgres => concat!(lane_claim!(), " FOR UPDATE SKIP LOCKED"),
        crate::store::Backend::Sqlite => lane_claim!(),
    };
    let claimed: Vec<Claimed> = sqlx::query_as(claim)
        .bind(limit)
        .bind(i64::from(lane.count))
        .bind(i64::from(lane.index))
        .fetch_all(&mut *tx)
        .await?;
    let (processed, changes) = process_claimed(&mut tx, claimed, reader, default_region, now).await?;
    tx.commit().await?;
    Ok((processed, changes))
}

/// Claims the pending deliveries about these customers (or their orders) and applies them
/// as `process_pending` does. Returns what was applied and how many of them are still
/// pending (claimed by another instance's applier at this moment, on Postgres).
pub(crate) async fn process_pending_for(
    conn: &mut Conn,
    shop: &str,
    customers: &[i64],
    orders: &[i64],
    reader: &dyn ReadDelivery,
    default_region: &str,
    now: Ts,
) -> Result<(Vec<ProcessedDelivery>, PhoneChanges, i64), sqlx::Error> {
    let mut tx = begin_applying(conn).await?;
    let filter = |q: &mut QueryBuilder<<Conn as sqlx::Connection>::Database>| {
        q.push(" FROM webhook_deliveries WHERE status = 'pending' AND shop = ").push_bind(shop.to_string());
        // `-1` keeps each list non-empty (no Shopify ID is negative).
        let ids = |q: &mut QueryBuilder<<Conn as sqlx::Connection>::Database>, ids: &[i64]| {
            let mut list = q.separated(", ");
            for id in std::iter::once(&-1i64).chain(ids) {
                list.push_bind(*id);
            }
        };
        q.push(" AND (customer_id IN (");
        ids(q, customers);
        q.push(") OR order_id IN (");
        ids(q, orders);
        q.push(") OR order_id IN (SELECT id FROM orders WHERE shop = ").push_bind(shop.to_string());
        q.push(" AND customer_id IN (");
        ids(q, customers);
        q.push(")))");
    };
    let mut q = QueryBuilder::new("SELECT id, shop, topic, body, COALESCE(triggered_at, received_at) AS happened_at");
    filter(&mut q);
    q.push(" ORDER BY id");
    if BACKEND == crate::store::Backend::Postgres {
        q.push(" FOR UPDATE SKIP LOCKED");
    }
    let claimed: Vec<Claimed> = q.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
    let (processed, changes) = process_claimed(&mut tx, claimed, reader, default_region, now).await?;
    let mut q = QueryBuilder::new("SELECT COUNT(*)");
    filter(&mut q);
    let (left,): (i64,) = q.build_query_as().persistent(false).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok((processed, changes, left))
}

/// Applies claimed deliveries on an open transaction, in arrival order: runs of customers
/// and whole orders of one shop through `apply_batch` (multi-row, coalesced), everything
/// else (and a run whose batch failed) one delivery at a time, each in its own savepoint so
/// one bad delivery becomes a dead letter without spoiling the rest. One status update and
/// one change notice for the lot.
async fn process_claimed(
    tx: &mut Conn,
    claimed: Vec<Claimed>,
    reader: &dyn ReadDelivery,
    default_region: &str,
    now: Ts,
) -> Result<(Vec<ProcessedDelivery>, PhoneChanges), sqlx::Error> {
    let started = std::time::Instant::now();
    let mut changes = PhoneChanges::default();
    let items: Vec<(Claimed, Result<Change, String>)> = claimed
        .into_iter()
        .map(|delivery| {
            let mut parsed = reader.read(&delivery.topic, delivery.body.as_deref().unwrap_or_default());
            if let Ok(Change::Return(r)) = &mut parsed {
                r.as_of = Some(delivery.happened_at);
            }
            (delivery, parsed)
        })
        .collect();
    let mut results: Vec<Result<DeliveryStatus, String>> = Vec::with_capacity(items.len());
    let batchable = |i: usize| matches!(&items[i].1, Ok(change) if crate::store::records::batchable(change));
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j < items.len() && batchable(j) && items[j].0.shop == items[i].0.shop {
            j += 1;
        }
        if j - i >= 2 {
            let run: Vec<&Change> = items[i..j].iter().filter_map(|(_, c)| c.as_ref().ok()).collect();
            let mut savepoint = tx.begin().await?;
            let mut touched = PhoneChanges { shop: items[i].0.shop.clone(), ..PhoneChanges::default() };
            let applied = apply_path::apply_batch(
                &mut savepoint,
                &items[i].0.shop,
                &run,
                default_region,
                now,
                crate::store::Provenance::Webhook,
                &mut touched,
            )
            .await;
            match applied {
                Ok(Some(outcomes)) => {
                    savepoint.commit().await?;
                    merge_notice(&mut changes, touched);
                    results.extend(outcomes.into_iter().map(|o| Ok(DeliveryStatus::of(o))));
                    i = j;
                    continue;
                }
                Err(e) if crate::store::is_transient(&e) => return Err(e),
                Ok(None) => {
                    savepoint.rollback().await?;
                    log_fallback(j - i, "a row changed under the batch (another writer inserted it)");
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    log_fallback(j - i, &format!("the batch could not be written: {e}"));
                }
            }
        } else {
            j = j.max(i + 1);
        }
        // One at a time: a lone delivery, a topic the batch does not take, or a run whose
        // batch could not be written (the culprit becomes a dead letter, the rest apply).
        for (delivery, parsed) in &items[i..j] {
            let result = match parsed {
                Ok(change) => {
                    let mut savepoint = tx.begin().await?;
                    let mut touched = PhoneChanges { shop: delivery.shop.clone(), ..PhoneChanges::default() };
                    let applied = apply_path::apply_change(
                        &mut savepoint,
                        &delivery.shop,
                        change,
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
                            merge_notice(&mut changes, touched);
                            Ok(DeliveryStatus::of(outcome))
                        }
                        Err(e) if crate::store::is_transient(&e) => return Err(e),
                        Err(e) => {
                            savepoint.rollback().await?;
                            Err(format!("apply failed: {e}"))
                        }
                    }
                }
                Err(reason) => Err(reason.clone()),
            };
            results.push(result);
        }
        i = j;
    }

    // Every delivery's status in one statement per chunk; the body is kept only while a
    // dead letter may need replaying.
    let mut processed = Vec::with_capacity(items.len());
    let per_delivery = started.elapsed().as_secs_f64() / items.len().max(1) as f64;
    let mut rows = Vec::with_capacity(items.len());
    for ((delivery, parsed), result) in items.iter().zip(results) {
        let (customer_id, order_id) = match parsed {
            Ok(change) => (change.customer_id(), change.order_id()),
            Err(_) => reader.subjects(&delivery.topic, delivery.body.as_deref().unwrap_or_default()),
        };
        let (status, error) = match result {
            Ok(status) => (status, None),
            Err(reason) => (DeliveryStatus::Dead, Some(reason)),
        };
        rows.push((delivery.id, status, error.clone(), customer_id.map(|c| c.0), order_id.map(|o| o.0)));
        processed.push(ProcessedDelivery {
            id: delivery.id,
            topic: delivery.topic.clone(),
            status,
            error,
            apply_seconds: per_delivery,
            customer_id: customer_id.map(|c| c.0),
            order_id: order_id.map(|o| o.0),
        });
    }
    for chunk in rows.chunks(4000) {
        let mut q = QueryBuilder::new("WITH v (id, status, error, customer_id, order_id, keep_body) AS (");
        q.push_values(chunk, |mut row, (id, status, error, customer, order)| {
            row.push_bind(*id)
                .push_bind(status.as_str())
                .push_bind(error.as_deref())
                .push_bind(*customer)
                .push_bind(*order)
                .push_bind(*status == DeliveryStatus::Dead);
        });
        q.push(
            ") UPDATE webhook_deliveries
             SET status = v.status, error = v.error, attempts = attempts + 1, processed_at = ",
        )
        .push_bind(now)
        .push(
            ", customer_id = v.customer_id, order_id = v.order_id,
               body = CASE WHEN v.keep_body THEN webhook_deliveries.body ELSE NULL END
             FROM v WHERE webhook_deliveries.id = v.id AND webhook_deliveries.status = 'pending'",
        );
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    Ok((processed, changes))
}

/// A run that `apply_batch` did not take is applied one delivery at a time: correct, much
/// slower; said in the log with why, so a slow apply can be traced to it.
fn log_fallback(deliveries: usize, reason: &str) {
    let reason = crate::domain::mask_pii(reason);
    tracing::warn!(deliveries, reason, "batch apply fell back to one delivery at a time");
}

/// Adds one apply's touched phones to the batch's notice (two shops in one batch: keep it
/// simple and drop everything).
fn merge_notice(changes: &mut PhoneChanges, touched: PhoneChanges) {
    if changes.shop.is_empty() || changes.shop == touched.shop {
        changes.merge(touched);
    } else {
        changes.all = true;
    }
}

pub(crate) async fn delivery(
    conn: &mut Conn,
    shop: &str,
    webhook_id: &str,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM webhook_deliveries WHERE shop = $1 AND webhook_id = $2"
    )))
    .bind(shop)
    .bind(webhook_id)
    .fetch_optional(&mut *conn)
    .await
}

pub(crate) async fn dead_letters(conn: &mut Conn) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM webhook_deliveries WHERE status = 'dead' ORDER BY id"
    )))
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn delivery_body(conn: &mut Conn, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT body FROM webhook_deliveries WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
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
        None => {
            sqlx::query("UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'dead'")
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(result.rows_affected())
}

pub(crate) async fn counts(conn: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status")
        .fetch_all(&mut *conn)
        .await
}
