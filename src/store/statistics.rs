//! Planner statistics kept in step with bulk writes (Postgres).
//!
//! The batch apply path reads and deletes by lists of IDs (`shop = $1 AND id IN (…)`). Postgres
//! plans those from the tables' statistics, which autovacuum refreshes once a table has grown
//! by a tenth, checked once a minute. A backfill or a flash sale into a small or empty store
//! outruns that: the planner still believes a table holds a few hundred rows, scans every row
//! of the shop through the `shop` prefix of an index and filters the IDs on the heap, so each
//! batch costs as much as the whole table and the apply slows as the tables grow (measured:
//! the bulk backfill fell from 2,900 to 1,450 orders/s between 100,000 and 240,000 orders;
//! `auto_explain` showed 99,000 rows read to find none). Postgres's guidance for bulk loads is
//! to run `ANALYZE` after them (<https://www.postgresql.org/docs/15/populate.html#POPULATE-ANALYZE>):
//! here the store does it itself each time the customers, or the orders, written by this
//! process have doubled, from `FIRST` on (counted apart: a backfill writes 300,000 customers
//! first, and the orders that follow must not wait for the total to double before the planner
//! learns that their tables are filling), so a load of n records costs about log2(n / FIRST)
//! quick sampled `ANALYZE`s (1.3 to 1.9 s each at a million orders). SQLite plans an `IN` list
//! on an indexed column as an index lookup without statistics: nothing to do there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Backend, Pool, Store, StoreError};

/// Records written before the first refresh.
const FIRST: u64 = 1_000;

/// The tables the apply path reads by ID lists.
const ANALYZE: &str =
    "ANALYZE customers, orders, order_line_items, fulfillments, refunds, returns, phone_numbers, tombstones";

/// Records of one kind written by this process, and when statistics are next refreshed.
#[derive(Debug)]
struct Count {
    written: AtomicU64,
    next: AtomicU64,
}

impl Default for Count {
    fn default() -> Self {
        Count { written: AtomicU64::new(0), next: AtomicU64::new(FIRST) }
    }
}

impl Count {
    /// Counts `records` written; true when that crossed the next mark (which then doubles).
    fn crossed(&self, records: u64) -> bool {
        let written = self.written.fetch_add(records, Ordering::Relaxed) + records;
        if records == 0 || written < self.next.load(Ordering::Relaxed) {
            return false;
        }
        self.next.store(written.saturating_mul(2), Ordering::Relaxed);
        true
    }
}

/// Customers and orders written, and whether a refresh is under way.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    customers: Count,
    orders: Count,
    refreshing: AtomicBool,
}

impl Statistics {
    /// Counts what a committed write wrote; true when a refresh is due (and this caller won
    /// the right to run it: concurrent writers do not all refresh).
    fn wrote(&self, customers: u64, orders: u64) -> bool {
        let customers = self.customers.crossed(customers);
        let orders = self.orders.crossed(orders);
        (customers || orders) && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

impl Store {
    /// Called after a write of `customers` and `orders` (Shopify records) committed: refreshes
    /// the planner's statistics when either count has doubled (see the module). A failure is
    /// logged and changes nothing else: the write is already committed.
    pub(crate) async fn wrote_records(&self, customers: usize, orders: usize) {
        if self.backend() != Backend::Postgres || !self.statistics.wrote(customers as u64, orders as u64) {
            return;
        }
        let started = std::time::Instant::now();
        let result = self.analyze().await;
        self.statistics.refreshing.store(false, Ordering::Release);
        match result {
            Ok(()) => tracing::debug!(
                customers = self.statistics.customers.written.load(Ordering::Relaxed),
                orders = self.statistics.orders.written.load(Ordering::Relaxed),
                ms = started.elapsed().as_millis() as u64,
                "planner statistics refreshed"
            ),
            Err(e) => tracing::warn!(error = %e, "refreshing the planner statistics failed"),
        }
    }

    async fn analyze(&self) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query(ANALYZE).execute(pool).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_each_time_the_records_written_double() {
        let s = Statistics::default();
        let mut refreshed_at = Vec::new();
        for batch in 1..=40u64 {
            if s.wrote(0, 250) {
                refreshed_at.push(batch * 250);
                s.refreshing.store(false, Ordering::Release);
            }
        }
        assert_eq!(refreshed_at, vec![1_000, 2_000, 4_000, 8_000]);
    }

    #[test]
    fn orders_that_follow_many_customers_are_counted_on_their_own() {
        let s = Statistics::default();
        for _ in 0..300 {
            if s.wrote(1_000, 0) {
                s.refreshing.store(false, Ordering::Release);
            }
        }
        assert!(s.wrote(0, 1_000), "the first thousand orders refresh, though customers are at 300,000");
    }

    #[test]
    fn a_refresh_under_way_is_not_started_twice() {
        let s = Statistics::default();
        assert!(s.wrote(1_000, 0));
        assert!(!s.wrote(0, 5_000), "the first refresh has not finished");
        s.refreshing.store(false, Ordering::Release);
        assert!(s.wrote(0, 20_000), "past the next mark once the first is done");
    }
}
