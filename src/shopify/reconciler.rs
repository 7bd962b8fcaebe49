//! The reconciler: asks Shopify for every order and customer updated since the watermark, applies
//! them through the one apply path, and moves the watermark only once all of it is applied. It
//! repairs missed webhooks and is what lets old rows count as confirmed. First run (and
//! `reconcile --full`): a backfill through a Shopify bulk operation (`shopify::bulk`), resumable
//! after an interruption; later sweeps page through what changed since the watermark. A deletion leaves nothing in Shopify's lists, so a
//! sweep cannot see one whose webhook was lost for good: the deletion check asks Shopify about
//! every stored record instead, 250 IDs a query.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::client::{ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS, Page, ShopifyClient, ShopifyError};
use super::graphql::{BulkResource, MAX_IDS};
use super::payload::ShopifyChange;
use super::writes::writes;
use crate::clock::Clock;
use crate::domain::ShopifyId;
use crate::ops::Metrics;
use crate::store::{Change, Store, StoreError, Ts};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Shopify: {0}")]
    Shopify(#[from] ShopifyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("bulk backfill: {0}")]
    Bulk(String),
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepReport {
    pub customers: usize,
    pub orders: usize,
    pub pages: usize,
    /// Resources backfilled through a bulk operation (0 for a paged sweep).
    pub bulk_operations: usize,
    /// Everything updated before this instant is now confirmed.
    pub watermark: DateTime<Utc>,
}

/// What one deletion check did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeletionReport {
    pub orders_checked: usize,
    pub customers_checked: usize,
    /// Records Shopify no longer holds, now deleted here (as their webhook would have).
    pub orders_deleted: usize,
    pub customers_deleted: usize,
}

/// What one resource's part of a sweep did.
struct ResourceSweep {
    applied: usize,
    pages: usize,
    bulk: bool,
    watermark: DateTime<Utc>,
}

/// The watermark row that records when the last deletion check finished.
const DELETIONS: &str = "deletions";

#[derive(Clone)]
pub struct Reconciler {
    pub store: Store,
    pub client: Arc<ShopifyClient>,
    pub shop: String,
    pub default_region: String,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// How far behind "now" the watermark stays, for Shopify's search index to catch up.
    pub lag: Duration,
    /// Told when the watermark moves, so answers count as confirmed at once (the caller
    /// lookup, which sits above: it implements `Confirmations`).
    pub lookup: Option<Arc<dyn Confirmations>>,
}

/// Whoever must know at once that every row up to a time is confirmed by a sweep.
pub trait Confirmations: Send + Sync {
    fn reconciled_through(&self, watermark: DateTime<Utc>);
}

const PAGE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy)]
enum Resource {
    Customers,
    Orders,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Customers => "customers",
            Resource::Orders => "orders",
        }
    }

    /// The GraphQL type of its records.
    fn kind(self) -> &'static str {
        match self {
            Resource::Customers => "Customer",
            Resource::Orders => "Order",
        }
    }

    fn bulk(self) -> BulkResource {
        match self {
            Resource::Customers => BulkResource::Customers,
            Resource::Orders => BulkResource::Orders,
        }
    }

    fn deleted(self, id: ShopifyId) -> Change {
        match self {
            Resource::Customers => Change::CustomerDeleted { id },
            Resource::Orders => Change::OrderDeleted { id },
        }
    }
}

impl Reconciler {
    /// One sweep over customers, then orders: a bulk backfill of a resource never swept (or
    /// whose backfill was interrupted), else the paged sweep of what changed since its watermark.
    pub async fn sweep(&self) -> Result<SweepReport, ReconcileError> {
        self.sweep_with(false).await
    }

    /// `orderline reconcile --full`: a bulk backfill of both resources, watermark or not.
    pub async fn full_sweep(&self) -> Result<SweepReport, ReconcileError> {
        self.sweep_with(true).await
    }

    async fn sweep_with(&self, full: bool) -> Result<SweepReport, ReconcileError> {
        let started = self.clock.now();
        let watermark = started - chrono::Duration::from_std(self.lag).unwrap_or_default();
        let customers = self.sweep_resource(Resource::Customers, watermark, full).await?;
        let orders = self.sweep_resource(Resource::Orders, watermark, full).await?;
        // A bulk backfill confirms up to its operation's start, earlier than a paged sweep.
        let watermark = customers.watermark.min(orders.watermark);
        if let Some(lookup) = &self.lookup {
            lookup.reconciled_through(watermark);
        }
        self.metrics.reconciler_lag_seconds.set((self.clock.now() - watermark).num_milliseconds() as f64 / 1000.0);
        Ok(SweepReport {
            customers: customers.applied,
            orders: orders.applied,
            pages: customers.pages + orders.pages,
            bulk_operations: usize::from(customers.bulk) + usize::from(orders.bulk),
            watermark,
        })
    }

    async fn sweep_resource(
        &self,
        resource: Resource,
        watermark: DateTime<Utc>,
        full: bool,
    ) -> Result<ResourceSweep, ReconcileError> {
        let name = resource.name();
        let bulk = full
            || self.store.bulk_backfill(&self.shop, name).await?.is_some()
            || (self.store.watermark(&self.shop, name).await?.is_none()
                && self.store.sweep_resume_point(&self.shop, name).await?.is_none());
        if bulk {
            let report = super::bulk::backfill(self, resource.bulk(), name).await?;
            return Ok(ResourceSweep { applied: report.records, pages: 0, bulk: true, watermark: report.watermark });
        }
        let (applied, pages) = self.sweep_pages(resource, watermark).await?;
        Ok(ResourceSweep { applied, pages, bulk: false, watermark })
    }

    async fn sweep_pages(
        &self,
        resource: Resource,
        watermark: DateTime<Utc>,
    ) -> Result<(usize, usize), ReconcileError> {
        let name = resource.name();
        let overlap = chrono::Duration::from_std(self.lag).unwrap_or_default();
        // Resume an interrupted sweep; else start from the last watermark (with overlap), or
        // from the beginning on first install.
        let since = match self.store.sweep_resume_point(&self.shop, name).await? {
            Some(resume) => Some(resume.0),
            None => self.store.watermark(&self.shop, name).await?.map(|w| w.0 - overlap),
        };
        let mut after: Option<String> = None;
        let (mut applied, mut pages) = (0, 0);
        loop {
            let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
            let (changes, updated, next) = match resource {
                Resource::Customers => {
                    let Page { items, next } =
                        self.client.customers_updated_since(since, after.as_deref(), deadline).await?;
                    let updated: Vec<DateTime<Utc>> = items.iter().filter_map(|c| c.updated_at).collect();
                    (writes(items.into_iter().map(|c| ShopifyChange::Customer(Box::new(c)))), updated, next)
                }
                Resource::Orders => {
                    let Page { items, next } =
                        self.client.orders_updated_since(since, after.as_deref(), deadline).await?;
                    let updated: Vec<DateTime<Utc>> = items.iter().map(|o| o.updated_at).collect();
                    (writes(items.into_iter().map(|o| ShopifyChange::Order(Box::new(o)))), updated, next)
                }
            };
            pages += 1;
            let now = Ts::from(self.clock.now());
            self.store.apply_all(&self.shop, &changes, &self.default_region, now).await?;
            applied += changes.len();
            // Everything up to the last item of this page is applied: a restart resumes here.
            if let Some(last) = updated.iter().max() {
                self.store.set_sweep_resume_point(&self.shop, name, Ts::from(*last), now).await?;
            }
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        self.store.advance_watermark(&self.shop, name, Ts::from(watermark), Ts::from(self.clock.now())).await?;
        Ok((applied, pages))
    }

    /// Asks Shopify whether it still holds each stored order, then each stored customer, and
    /// deletes (through the apply path, tombstones included) those it no longer does. Orders are
    /// asked only as far back as the app can see them.
    pub async fn check_deletions(&self) -> Result<DeletionReport, ReconcileError> {
        let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
        // Without `read_all_orders` older orders would look deleted: they are left out, with a
        // day's margin inside Shopify's window. Until Shopify has answered the scope check
        // (asked here if nobody has yet), the app counts as not seeing them.
        if !self.client.scopes_checked()
            && let Err(e) = self.client.check_scopes(deadline).await
        {
            tracing::warn!(error = %e, "could not ask Shopify for the app's scopes: old orders are not checked");
        }
        let window = ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS - chrono::TimeDelta::days(1);
        let orders_since = (!self.client.sees_all_orders()).then(|| Ts::from(self.clock.now() - window));
        let (orders_checked, orders_deleted) = self.check_resource(Resource::Orders, orders_since).await?;
        let (customers_checked, customers_deleted) = self.check_resource(Resource::Customers, None).await?;
        let now = Ts::from(self.clock.now());
        self.store.advance_watermark(&self.shop, DELETIONS, now, now).await?;
        Ok(DeletionReport { orders_checked, customers_checked, orders_deleted, customers_deleted })
    }

    async fn deletion_check_due(&self, every: Duration) -> bool {
        match self.store.watermark(&self.shop, DELETIONS).await {
            Ok(Some(last)) => self.clock.now() - last.0 >= chrono::Duration::from_std(every).unwrap_or_default(),
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not read when deletions were last checked");
                false
            }
        }
    }

    async fn check_resource(
        &self,
        resource: Resource,
        created_since: Option<Ts>,
    ) -> Result<(usize, usize), ReconcileError> {
        let (mut checked, mut deleted) = (0, 0);
        let mut after = None;
        loop {
            let ids = match resource {
                Resource::Orders => self.store.order_ids_after(&self.shop, after, created_since, MAX_IDS).await?,
                Resource::Customers => self.store.customer_ids_after(&self.shop, after, MAX_IDS).await?,
            };
            let Some(last) = ids.last().copied() else { break };
            let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
            let held = self.client.still_held(resource.kind(), &ids, deadline).await?;
            let gone: Vec<Change> =
                ids.iter().filter(|id| !held.contains(id)).map(|id| resource.deleted(*id)).collect();
            if !gone.is_empty() {
                self.store.apply_all(&self.shop, &gone, &self.default_region, Ts::from(self.clock.now())).await?;
            }
            (checked, deleted) = (checked + ids.len(), deleted + gone.len());
            after = Some(last);
        }
        Ok((checked, deleted))
    }

    /// Sweeps every `every`; after a sweep, checks for deletions once the last check (by any
    /// instance, as recorded in the store) is `deletions_every` old, or was never made (never
    /// when zero); until `shutdown` turns true.
    pub async fn run(self, every: Duration, deletions_every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.sweep().await {
                Ok(report) => tracing::info!(
                    customers = report.customers,
                    orders = report.orders,
                    pages = report.pages,
                    bulk_operations = report.bulk_operations,
                    watermark = %report.watermark,
                    "reconciliation sweep done"
                ),
                Err(e) => tracing::warn!(error = %e, "reconciliation sweep failed; the watermark stays where it was"),
            }
            if !deletions_every.is_zero() && self.deletion_check_due(deletions_every).await {
                match self.check_deletions().await {
                    Ok(report) => tracing::info!(
                        orders_checked = report.orders_checked,
                        customers_checked = report.customers_checked,
                        orders_deleted = report.orders_deleted,
                        customers_deleted = report.customers_deleted,
                        "deletion check done"
                    ),
                    Err(e) => tracing::warn!(error = %e, "deletion check failed; it runs again after the next sweep"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}
