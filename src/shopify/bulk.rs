//! The backfill through a Shopify bulk operation: starts `bulkOperationRunQuery` for customers
//! or orders, polls it until it finishes, streams its JSONL result (a parent line, then its
//! children with `__parentId`) a chunk at a time, turns each record into the change the paged
//! sweep makes (the same node conversion), and applies them in batches through the one apply
//! path, recording after each batch how many lines are applied so a killed backfill resumes
//! there. An order's returns are lines under it; the labels a bulk query cannot reach are read
//! by a refetch of the order (see `BulkResource::query`). Never holds the result in memory
//! beyond one record and its children; never writes a watermark before everything is applied;
//! logs counts and IDs, never a record's contents.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::ShopifyError;
use super::graphql::{BulkResource, GqlBulkOperation, GqlCustomer, GqlOrder};
use super::payload::ShopifyChange;
use super::reconciler::{ReconcileError, Reconciler};
use crate::domain::ReturnStatus;
use crate::store::{Change, Ts};

/// What one bulk backfill did.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillReport {
    /// Records (customers or orders) applied in this run.
    pub records: usize,
    /// The operation's start minus the reconciliation lag: what the backfill confirmed.
    pub watermark: DateTime<Utc>,
}

/// Records applied per transaction: large enough that a million orders take few round trips,
/// small enough to hold (and to redo after a kill). SQLite's single writer pays about 65 ms a
/// transaction beyond its rows (measured at 300,000 orders: 150 ms per 500 orders, 860 ms per
/// 5,000), so it writes 5,000 at a time: a million orders and 300,000 customers took 740 s in
/// batches of 500 and 255 s in batches of 5,000 (peak RSS 118 and 176 MiB). The price: a
/// `serve` doing its first sweep holds its one SQLite connection for about a second per batch,
/// during which a call that needs the store (not one answered from the cache) waits.
fn batch_size(store: &crate::store::Store) -> usize {
    match store.backend() {
        crate::store::Backend::Postgres => 1000,
        crate::store::Backend::Sqlite => 5000,
    }
}

/// The longest a batch collects records before it is applied, full or not.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Transactions a batch is written in at once, on connections of their own: the store's
/// `write_lanes`. Each takes the records of its own customers (`by_lane`), so no two share a
/// row or wait for each other's locks. One transaction at a time kept its Postgres backend at
/// a quarter of a core and the machine a third idle (the reader waited 200 of every 240 ms for
/// the write); 100,000 orders and 30,000 customers took 34 s in one lane, 25 s in four, 22 s
/// in eight.
fn lanes(store: &crate::store::Store) -> usize {
    store.write_lanes() as usize
}

/// Splits a batch into `lanes` parts by customer (an order without one, by its own ID; a
/// change about neither goes with the record before it, whose follower it is: an order's
/// `ReturnTouched`), keeping the batch's order within each part.
fn by_lane(batch: Vec<Change>, lanes: usize) -> Vec<Vec<Change>> {
    let mut parts: Vec<Vec<Change>> = (0..lanes).map(|_| Vec::new()).collect();
    let mut lane = 0;
    for change in batch {
        if let Some(key) = change.customer_id().or(change.order_id()) {
            lane = key.0.unsigned_abs() as usize % lanes;
        }
        parts[lane].push(change);
    }
    parts
}

/// Polling starts at this interval and doubles up to `POLL_MAX`.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(5);
/// Shopify stops a bulk query after 10 days (the guide); orderline waits at most this long.
const OPERATION_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Longest wait for one request, or for the next chunk of the result.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);

/// Backfills `resource` (watermark row `name`) from a bulk operation: the one under way if a
/// backfill was interrupted and its result can still be read, else a new one.
pub async fn backfill(r: &Reconciler, resource: BulkResource, name: &str) -> Result<BackfillReport, ReconcileError> {
    let mut resumed = r.store.bulk_backfill(&r.shop, name).await?;
    let mut restarted = false;
    loop {
        let (operation, skip) = match resumed.take() {
            Some(progress) => match r.client.bulk_operation(&progress.operation_id, deadline()).await? {
                Some(op) if matches!(op.status.as_str(), "CREATED" | "RUNNING" | "COMPLETED") => {
                    tracing::info!(
                        resource = name,
                        operation = %op.id,
                        lines_applied = progress.lines_applied,
                        "resuming an interrupted bulk backfill"
                    );
                    (op, progress.lines_applied.max(0) as u64)
                }
                other => {
                    let status = other.map_or_else(|| "unknown to Shopify".to_string(), |op| op.status);
                    tracing::warn!(
                        resource = name,
                        operation = %progress.operation_id,
                        status = %status,
                        "the interrupted bulk backfill's operation can no longer be read: starting a new one"
                    );
                    (start(r, resource, name).await?, 0)
                }
            },
            None => (start(r, resource, name).await?, 0),
        };
        let operation = wait(r, name, operation).await?;
        let url = operation.url.clone().unwrap_or_default();
        match apply_result(r, resource, name, &operation, &url, skip).await {
            // The result URL stopped working (it expires: Shopify then says EXPIRED): once, start
            // over with a new operation. What was applied stays (applying it again changes nothing).
            Err(ReconcileError::Shopify(ShopifyError::Http(status))) if (400..500).contains(&status) && !restarted => {
                tracing::warn!(
                    resource = name,
                    operation = %operation.id,
                    status,
                    "the bulk result can no longer be downloaded: starting a new operation"
                );
                r.store.end_bulk_backfill(&r.shop, name).await?;
                restarted = true;
                continue;
            }
            Err(e) => return Err(e),
            Ok(records) => {
                let lag = chrono::Duration::from_std(r.lag).unwrap_or_default();
                let watermark = operation.created_at - lag;
                let now = Ts::from(r.clock.now());
                r.store.advance_watermark(&r.shop, name, Ts::from(watermark), now).await?;
                r.store.end_bulk_backfill(&r.shop, name).await?;
                return Ok(BackfillReport { records, watermark });
            }
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + REQUEST_DEADLINE
}

async fn start(r: &Reconciler, resource: BulkResource, name: &str) -> Result<GqlBulkOperation, ReconcileError> {
    let operation = r.client.run_bulk_query(&resource.query(), deadline()).await?;
    let now = Ts::from(r.clock.now());
    r.store.start_bulk_backfill(&r.shop, name, &operation.id, Ts::from(operation.created_at), now).await?;
    tracing::info!(resource = name, operation = %operation.id, "bulk backfill started");
    Ok(operation)
}

/// Polls until the operation completes (backing off); any other end is an error, and the
/// backfill's record is dropped so the next sweep starts a new operation.
async fn wait(r: &Reconciler, name: &str, mut operation: GqlBulkOperation) -> Result<GqlBulkOperation, ReconcileError> {
    let give_up = Instant::now() + OPERATION_DEADLINE;
    let mut interval = POLL_FIRST;
    loop {
        match operation.status.as_str() {
            // Without a `url`, nothing matched.
            "COMPLETED" => return Ok(operation),
            "CREATED" | "RUNNING" => {}
            other => {
                r.store.end_bulk_backfill(&r.shop, name).await?;
                let code = operation.error_code.as_deref().unwrap_or("no error code");
                return Err(ReconcileError::Bulk(format!(
                    "bulk operation {} for {name} ended {other} ({code}); nothing was written, the watermark stays",
                    operation.id
                )));
            }
        }
        if Instant::now() + interval > give_up {
            return Err(ReconcileError::Bulk(format!(
                "bulk operation {} for {name} did not finish within {} h",
                operation.id,
                OPERATION_DEADLINE.as_secs() / 3600
            )));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(POLL_MAX);
        operation =
            r.client.bulk_operation(&operation.id, deadline()).await?.ok_or_else(|| {
                ReconcileError::Bulk(format!("Shopify no longer knows bulk operation {}", operation.id))
            })?;
    }
}

/// One record of the result: its parent line and the children lines under it.
struct Record {
    value: Value,
    children: Vec<(&'static str, Value)>,
}

/// Streams the result and applies it; returns the records applied (lines up to `skip` were
/// applied before and are only counted past).
async fn apply_result(
    r: &Reconciler,
    resource: BulkResource,
    name: &str,
    operation: &GqlBulkOperation,
    url: &str,
    skip: u64,
) -> Result<usize, ReconcileError> {
    let mut applier = Applier {
        r,
        resource,
        name,
        operation: &operation.id,
        read_at: operation.created_at,
        batch: Vec::with_capacity(batch_size(&r.store)),
        records: 0,
        batch_size: batch_size(&r.store),
        collecting_since: None,
        line: 0,
        skip,
        current: None,
        applied: 0,
        in_flight: None,
    };
    if url.is_empty() {
        return Ok(0);
    }
    let response = r.client.open_bulk_result(url, deadline()).await?;
    let streamed = stream(&mut applier, response).await;
    // The batch still being written finishes either way: what it recorded stays true.
    let settled = applier.settle().await;
    streamed?;
    settled?;
    applier.finish().await
}

/// Reads the result a chunk at a time and hands each line to the applier.
async fn stream(applier: &mut Applier<'_>, mut response: reqwest::Response) -> Result<(), ReconcileError> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(REQUEST_DEADLINE, response.chunk()).await {
            Err(_) => return Err(ShopifyError::Timeout.into()),
            Ok(Err(e)) => return Err(ShopifyError::Transport(e.without_url().to_string()).into()),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            applier.line(&pending[start..start + end]).await?;
            start += end + 1;
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        applier.line(&pending).await?;
    }
    Ok(())
}

struct Applier<'a> {
    r: &'a Reconciler,
    resource: BulkResource,
    name: &'a str,
    operation: &'a str,
    /// When Shopify's state was read, at the earliest: the operation's start (each return's
    /// `as_of`, so a webhook triggered after it still wins under the tie rule).
    read_at: DateTime<Utc>,
    /// The changes of the records read since the last batch was applied.
    batch: Vec<Change>,
    /// How many records those changes are, and when the first of them was read.
    records: usize,
    batch_size: usize,
    collecting_since: Option<std::time::Instant>,
    /// Lines read so far.
    line: u64,
    skip: u64,
    current: Option<Record>,
    /// Records applied by the batches that finished.
    applied: usize,
    /// The batch being written while the next one is read (at most one: batches are applied
    /// in order, so a record's later line never overtakes an earlier one).
    in_flight: Option<tokio::task::JoinHandle<Result<usize, ReconcileError>>>,
}

impl Applier<'_> {
    fn bad(&self, why: impl std::fmt::Display) -> ReconcileError {
        ReconcileError::Bulk(format!("bulk operation {} line {}: {why}", self.operation, self.line))
    }

    async fn line(&mut self, bytes: &[u8]) -> Result<(), ReconcileError> {
        self.line += 1;
        if self.line <= self.skip || bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let mut value: Value = serde_json::from_slice(bytes).map_err(|e| self.bad(format!("not JSON: {e}")))?;
        let parent = value.as_object_mut().and_then(|o| o.remove("__parentId"));
        match parent {
            Some(parent) => {
                let id = value["id"].as_str().unwrap_or_default();
                let connection =
                    self.resource.child_connection(id).ok_or_else(|| self.bad("a child line of an unexpected type"))?;
                let current = match &mut self.current {
                    Some(current) if current.value["id"] == parent => current,
                    _ => return Err(self.bad("a child line that does not follow its parent")),
                };
                current.children.push((connection, value));
            }
            None => {
                // A new record: the previous one is whole.
                if let Some(done) = self.current.take() {
                    self.push(done, self.line - 1).await?;
                }
                self.current = Some(Record { value, children: Vec::new() });
            }
        }
        Ok(())
    }

    /// Adds a whole record (which ends at line `through`) to the batch; applies the batch once
    /// it is full or has been collecting for `BATCH_WAIT` (a slow download still applies, and
    /// records its progress for a resume, as it goes).
    async fn push(&mut self, record: Record, through: u64) -> Result<(), ReconcileError> {
        let changes = self.changes(record)?;
        self.batch.extend(changes.into_iter().map(Change::from));
        self.records += 1;
        let since = *self.collecting_since.get_or_insert_with(std::time::Instant::now);
        if self.records >= self.batch_size || since.elapsed() >= BATCH_WAIT {
            self.apply(through).await?;
        }
        Ok(())
    }

    /// The record as the paged sweep would have it: its children put back as the connection
    /// nodes the paged document reads, then the same node conversion. An order with an open
    /// return is followed by that return's `ReturnTouched`: its label is not in a bulk result
    /// (see `BulkResource::query`), so the order is refetched on its next lookup.
    fn changes(&self, record: Record) -> Result<Vec<ShopifyChange>, ReconcileError> {
        let Record { mut value, children } = record;
        let connections: &[&str] = match self.resource {
            BulkResource::Customers => &["addressesV2"],
            BulkResource::Orders => &["lineItems", "returns"],
        };
        let mut nodes: Vec<Vec<Value>> = vec![Vec::new(); connections.len()];
        for (connection, child) in children {
            if let Some(i) = connections.iter().position(|c| *c == connection) {
                nodes[i].push(child);
            }
        }
        for (connection, nodes) in connections.iter().zip(nodes) {
            value[*connection] = json!({ "nodes": nodes });
        }
        Ok(match self.resource {
            BulkResource::Customers => {
                let node: GqlCustomer = serde_json::from_value(value).map_err(|e| self.bad(e))?;
                vec![ShopifyChange::Customer(Box::new(node.to_record().map_err(|e| self.bad(e))?))]
            }
            BulkResource::Orders => {
                let node: GqlOrder = serde_json::from_value(value).map_err(|e| self.bad(e))?;
                let mut order = node.to_record(None).map_err(|e| self.bad(e))?;
                // `returnStatus` is the order's and speaks of its newest return, the one the
                // paged documents read: the older ones' copies say nothing of their arrival.
                let newest = order.returns.iter().map(|r| (r.requested_at, r.id)).max();
                for r in &mut order.returns {
                    r.as_of = Some(self.read_at);
                    if Some((r.requested_at, r.id)) != newest {
                        r.received = None;
                    }
                }
                // Every line item came (a bulk query has no page size).
                order.truncated.line_items = false;
                // The order's customer came without its addresses (see BulkResource::query).
                if let Some(customer) = order.customer.as_mut() {
                    customer.addresses_omitted = true;
                }
                let open: Vec<ShopifyChange> = order
                    .returns
                    .iter()
                    .filter(|r| r.status == Some(ReturnStatus::Open))
                    .map(|r| ShopifyChange::ReturnTouched { id: Some(r.id) })
                    .collect();
                let mut changes = vec![ShopifyChange::Order(Box::new(order))];
                changes.extend(open);
                changes
            }
        })
    }

    /// Hands the batch (which ends at line `through`) to a task that writes it (in `lanes`
    /// transactions side by side) and then records the lines applied, once the batch before it
    /// is written: reading and converting the next batch overlaps the store's work on this one.
    async fn apply(&mut self, through: u64) -> Result<(), ReconcileError> {
        self.settle().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let records = std::mem::take(&mut self.records);
        self.collecting_since = None;
        let (r, name, operation) = (self.r.clone(), self.name.to_string(), self.operation.to_string());
        self.in_flight = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let now = Ts::from(r.clock.now());
            let parts = by_lane(batch, lanes(&r.store));
            let written = parts.iter().map(|part| r.store.apply_all(&r.shop, part, &r.default_region, now));
            // Every part is written before the lines count as applied: a kill in between
            // redoes the batch, which changes nothing where it was written.
            for result in futures::future::join_all(written).await {
                result?;
            }
            r.store.set_bulk_lines_applied(&r.shop, &name, &operation, through as i64, now).await?;
            let labels = crate::ops::metrics::ResourceLabels { resource: name.clone() };
            r.metrics.bulk_backfill_records.get_or_create(&labels).inc_by(records as u64);
            let ms = started.elapsed().as_millis() as u64;
            tracing::debug!(resource = name, operation, lines = through, ms, "bulk backfill batch applied");
            Ok(records)
        }));
        Ok(())
    }

    /// Waits for the batch being written, if any.
    async fn settle(&mut self) -> Result<(), ReconcileError> {
        if let Some(task) = self.in_flight.take() {
            let waiting = std::time::Instant::now();
            let written = task.await.map_err(|e| ReconcileError::Bulk(format!("writing a batch failed: {e}")))?;
            self.applied += written?;
            // Reading outran writing by this much (the store is the bottleneck when it is not 0).
            tracing::debug!(
                resource = self.name,
                waited_ms = waiting.elapsed().as_millis() as u64,
                "bulk batch awaited"
            );
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<usize, ReconcileError> {
        if let Some(done) = self.current.take() {
            let changes = self.changes(done)?;
            self.batch.extend(changes.into_iter().map(Change::from));
            self.records += 1;
        }
        let through = self.line;
        self.apply(through).await?;
        self.settle().await?;
        tracing::info!(
            resource = self.name,
            operation = self.operation,
            records = self.applied,
            lines = through,
            "bulk backfill applied"
        );
        Ok(self.applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ShopifyId;

    #[test]
    fn a_batch_splits_by_customer_and_each_follower_stays_with_its_record() {
        let batch = vec![
            Change::CustomerDeleted { id: ShopifyId(10) },
            Change::OrderDeleted { id: ShopifyId(7) },
            Change::ReturnTouched { id: Some(ShopifyId(99)) },
            Change::CustomerDeleted { id: ShopifyId(4) },
            Change::OrderDeleted { id: ShopifyId(8) },
        ];
        let parts = by_lane(batch, 2);
        assert_eq!(
            parts,
            vec![
                vec![
                    Change::CustomerDeleted { id: ShopifyId(10) },
                    Change::CustomerDeleted { id: ShopifyId(4) },
                    Change::OrderDeleted { id: ShopifyId(8) },
                ],
                vec![Change::OrderDeleted { id: ShopifyId(7) }, Change::ReturnTouched { id: Some(ShopifyId(99)) }],
            ]
        );
        assert_eq!(by_lane(vec![Change::OrderDeleted { id: ShopifyId(7) }], 1).len(), 1);
    }
}
