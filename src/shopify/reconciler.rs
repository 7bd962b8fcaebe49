//! The reconciler: asks Shopify for every order and customer updated since the watermark, applies
//! them through the one apply path, and moves the watermark only once all of it is applied. It
//! repairs missed webhooks and is what lets old rows count as confirmed. First run: a full
//! backfill, resumable after an interruption.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::client::{Page, ShopifyClient, ShopifyError};
use super::payload::ShopifyChange;
use crate::clock::Clock;
use crate::lookup::CallerLookup;
use crate::ops::Metrics;
use crate::store::{Store, StoreError, Ts};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Shopify: {0}")]
    Shopify(#[from] ShopifyError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepReport {
    pub customers: usize,
    pub orders: usize,
    pub pages: usize,
    /// Everything updated before this instant is now confirmed.
    pub watermark: DateTime<Utc>,
}

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
    /// Told when the watermark moves, so answers count as confirmed at once.
    pub lookup: Option<CallerLookup>,
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
}

impl Reconciler {
    /// One sweep over customers, then orders.
    pub async fn sweep(&self) -> Result<SweepReport, ReconcileError> {
        let started = self.clock.now();
        let watermark = started - chrono::Duration::from_std(self.lag).unwrap_or_default();
        let (customers, customer_pages) = self.sweep_resource(Resource::Customers, watermark).await?;
        let (orders, order_pages) = self.sweep_resource(Resource::Orders, watermark).await?;
        if let Some(lookup) = &self.lookup {
            lookup.set_reconciled_through(watermark);
        }
        self.metrics.reconciler_lag_seconds.set((self.clock.now() - watermark).num_milliseconds() as f64 / 1000.0);
        Ok(SweepReport { customers, orders, pages: customer_pages + order_pages, watermark })
    }

    async fn sweep_resource(
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
                    (items.into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect::<Vec<_>>(), updated, next)
                }
                Resource::Orders => {
                    let Page { items, next } =
                        self.client.orders_updated_since(since, after.as_deref(), deadline).await?;
                    let updated: Vec<DateTime<Utc>> = items.iter().map(|o| o.updated_at).collect();
                    (items.into_iter().map(|o| ShopifyChange::Order(Box::new(o))).collect::<Vec<_>>(), updated, next)
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

    /// Sweeps every `every` until `shutdown` turns true.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.sweep().await {
                Ok(report) => tracing::info!(
                    customers = report.customers,
                    orders = report.orders,
                    pages = report.pages,
                    watermark = %report.watermark,
                    "reconciliation sweep done"
                ),
                Err(e) => tracing::warn!(error = %e, "reconciliation sweep failed; the watermark stays where it was"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}
