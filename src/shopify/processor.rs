//! Applies stored deliveries after they were acknowledged: woken by intake, and on a timer so
//! deliveries left by a crash or stored by another instance are never stranded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::intake::Stored;
use super::writes::DeliveryReader;
use crate::clock::Clock;
use crate::domain::mask_pii;
use crate::ops::Metrics;
use crate::store::{DeliveryStatus, Lane, ProcessedDelivery, Store, StoreError, Ts};

/// Deliveries claimed and applied per transaction (runs of orders and customers are written
/// with multi-row statements, so a large batch costs few round trips). SQLite has one
/// connection, shared with intake: smaller batches let intake in between.
fn batch_size(store: &Store) -> i64 {
    match store.backend() {
        crate::store::Backend::Postgres => 1000,
        crate::store::Backend::Sqlite => 250,
    }
}
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long intake must have stored nothing before a backlog is shared among the lanes:
/// Shopify's deliveries in a burst come far closer together than this.
const INTAKE_QUIET: Duration = Duration::from_secs(1);

/// What the processor needs; cheap to clone.
#[derive(Clone)]
pub struct Processor {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub default_region: String,
}

impl Processor {
    /// Applies pending deliveries until none is left; returns what was done.
    pub async fn drain(&self) -> Result<Vec<ProcessedDelivery>, StoreError> {
        let mut all = Vec::new();
        loop {
            let batch = self.step().await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Applies one batch of pending deliveries.
    pub async fn step(&self) -> Result<Vec<ProcessedDelivery>, StoreError> {
        self.step_lane(Lane::ALL).await
    }

    /// Applies one batch of the pending deliveries of `lane`.
    async fn step_lane(&self, lane: Lane) -> Result<Vec<ProcessedDelivery>, StoreError> {
        let now = Ts::from(self.clock.now());
        let processed =
            self.store.process_lane(lane, batch_size(&self.store), &DeliveryReader, &self.default_region, now).await?;
        for p in &processed {
            self.record(p);
        }
        Ok(processed)
    }

    fn record(&self, p: &ProcessedDelivery) {
        let topic = crate::shopify::payload::Topic::parse(&p.topic).map_or("other", |t| t.as_str());
        self.metrics.processed(topic, p.status.as_str());
        self.metrics.webhook_apply_seconds.observe(p.apply_seconds);
        match (&p.status, &p.error) {
            (DeliveryStatus::Dead, Some(error)) => {
                tracing::warn!(delivery = p.id, topic, error = %mask_pii(error), "dead letter: kept for `orderline dlq replay`")
            }
            (status, _) => tracing::debug!(delivery = p.id, topic, status = status.as_str(), "delivery applied"),
        }
    }

    /// Makes the store's hint of pending subjects match the database when it may not (at
    /// start, after a lost LISTEN connection) or holds subjects applied meanwhile.
    async fn resync_pending(&self, idle: bool) {
        let hint = self.store.pending_subjects();
        if (hint.is_unknown() || (idle && !hint.is_empty()))
            && let Err(e) = self.store.resync_pending().await
        {
            tracing::warn!(error = %e, "could not read which deliveries are pending");
        }
    }

    /// Runs until `shutdown` turns true: one applier taking every pending delivery in arrival
    /// order, a batch whenever intake wakes it and at least once a second. When a full batch
    /// finds more waiting and intake has stored nothing for a second (a backlog: deliveries
    /// stored by another instance, the tail of a burst), the store's write lanes share it
    /// (`spread_backlog`), then the one applier takes over again; so do they at the start (what
    /// a crash or an outage left).
    ///
    /// Why (`cargo bench --bench webhook_intake`, Postgres, 2 cores, 2026-12-06): with eight
    /// lanes applying while Shopify posts (each woken by every intake commit, most finding
    /// nothing of theirs) intake acknowledged 1,829–2,573 deliveries/s; with one applier, whose
    /// batches grow while it falls behind, 2,888–3,685/s, all applied as soon as before. On a
    /// backlog with intake quiet, eight lanes apply 5,900–7,000 orders/s, one applier about
    /// 2,300–3,100/s (its round trips wait; the lanes' overlap).
    pub async fn run(self, stored: Arc<Stored>, mut shutdown: watch::Receiver<bool>) {
        let lanes = Lane::all_of(&self.store);
        let limit = batch_size(&self.store);
        let mut backoff = Duration::from_millis(100);
        // What is pending at the start (left by a crash, stored during an outage) is a backlog;
        // the lookup learns which callers it concerns first (the hint starts unknown).
        if lanes.len() > 1 {
            self.resync_pending(false).await;
            self.share(&lanes, &shutdown).await;
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            let step = self.step().await;
            self.resync_pending(matches!(&step, Ok(batch) if batch.is_empty())).await;
            match step {
                Ok(batch) if batch.is_empty() => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = stored.wait() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(batch) => {
                    backoff = Duration::from_millis(100);
                    if spread_backlog(batch.len(), limit, stored.within(INTAKE_QUIET), lanes.len()) {
                        self.share(&lanes, &shutdown).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "webhook processing: store busy or unavailable, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One applier per lane, at once, each applying its lane's batches until it finds none
    /// (or the store fails it: the one applier then retries); returns when all have stopped.
    async fn share(&self, lanes: &[Lane], shutdown: &watch::Receiver<bool>) {
        self.metrics.backlog_spreads.inc();
        tracing::info!(lanes = lanes.len(), "webhook processing: a backlog, shared among the write lanes");
        let mut appliers = tokio::task::JoinSet::new();
        for &lane in lanes {
            let (processor, shutdown) = (self.clone(), shutdown.clone());
            appliers.spawn(async move {
                while !*shutdown.borrow() {
                    match processor.step_lane(lane).await {
                        Ok(batch) if !batch.is_empty() => {}
                        _ => return,
                    }
                }
            });
        }
        while appliers.join_next().await.is_some() {}
    }
}

/// Whether the batch one applier just applied leaves a backlog for the lanes to share: it was
/// full (`limit`: more is waiting), intake is quiet (while Shopify posts, acknowledging comes
/// first, and one applier's growing batches leave intake the cores), and the store has more
/// than one lane.
fn spread_backlog(applied: usize, limit: i64, intake_storing: bool, lanes: usize) -> bool {
    applied as i64 >= limit && !intake_storing && lanes > 1
}

#[cfg(test)]
mod tests {
    use super::spread_backlog;

    #[test]
    fn only_a_full_batch_with_intake_quiet_is_shared_among_the_lanes() {
        assert!(spread_backlog(1000, 1000, false, 8), "a backlog, intake quiet");
        assert!(!spread_backlog(1000, 1000, true, 8), "intake storing: acknowledging comes first");
        assert!(!spread_backlog(999, 1000, false, 8), "the batch took all that was waiting");
        assert!(!spread_backlog(250, 250, false, 1), "one lane (SQLite): nothing to share");
    }
}
