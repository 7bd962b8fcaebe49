//! Which customers and orders have an acknowledged delivery not yet applied: the caller lookup
//! must not call their record fresh (issue 14, "no false freshness").
//!
//! An in-memory hint kept by every instance, so the call path asks the database only for the
//! few callers it names. Added to when a delivery is stored (this instance's intake, and on
//! Postgres every other instance's through NOTIFY `orderline_pending`); an entry is removed only
//! after the database said nothing of that subject is pending, and only if nothing was added for
//! it since that question was asked (`seq`). Until it has read the database once (start, and
//! after the LISTEN connection was lost) the hint is `unknown`: every lookup asks the database.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::changes::under_cap;

pub(crate) const CHANNEL: &str = "orderline_pending";

/// Subjects of newly stored deliveries, as carried by NOTIFY.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingNotice {
    pub customers: Vec<i64>,
    pub orders: Vec<i64>,
    /// Too many to list: every instance reads the database again.
    #[serde(default)]
    pub all: bool,
}

impl PendingNotice {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty() && self.orders.is_empty() && !self.all
    }

    /// The NOTIFY payloads, each under Postgres's 8000-byte cap: customers and orders split
    /// across as many as they need (never degraded to `all`, which makes every instance read
    /// the whole pending set again).
    pub(crate) fn payloads(&self) -> Vec<String> {
        if self.all {
            return vec![
                serde_json::to_string(&PendingNotice { all: true, ..PendingNotice::default() }).unwrap_or_default(),
            ];
        }
        let width = |id: &i64| id.to_string().len();
        let mut payloads = under_cap(&self.customers, width, |chunk| PendingNotice {
            customers: chunk.to_vec(),
            ..PendingNotice::default()
        });
        payloads.extend(under_cap(&self.orders, width, |chunk| PendingNotice {
            orders: chunk.to_vec(),
            ..PendingNotice::default()
        }));
        payloads
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Subject → the sequence number of its last addition.
    customers: HashMap<i64, u64>,
    orders: HashMap<i64, u64>,
    seq: u64,
    unknown: bool,
    /// The sequence number at which the hint last became unknown.
    unknown_at: u64,
}

/// The hint; shared by clones of a `Store`.
#[derive(Debug)]
pub struct PendingSubjects {
    inner: Mutex<Inner>,
}

impl Default for PendingSubjects {
    fn default() -> Self {
        PendingSubjects { inner: Mutex::new(Inner { unknown: true, ..Inner::default() }) }
    }
}

impl PendingSubjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records subjects of stored deliveries.
    pub(crate) fn add(&self, notice: &PendingNotice) {
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        if notice.all {
            inner.unknown = true;
            inner.unknown_at = seq;
        }
        for id in &notice.customers {
            inner.customers.insert(*id, seq);
        }
        for id in &notice.orders {
            inner.orders.insert(*id, seq);
        }
    }

    /// What may have happened while not listening is unknown: ask the database until resynced.
    pub(crate) fn mark_unknown(&self) {
        let mut inner = self.lock();
        inner.seq += 1;
        inner.unknown = true;
        inner.unknown_at = inner.seq;
    }

    /// The sequence number to pass to `settle`/`resync` for a question asked from now on.
    pub fn mark(&self) -> u64 {
        self.lock().seq
    }

    /// True when a delivery about one of these customers or orders may be pending.
    pub fn may_touch(&self, customers: &[i64], orders: &[i64]) -> bool {
        self.is_unknown() || self.names(customers, orders)
    }

    /// True when a delivery about one of these customers or orders was stored and not yet seen
    /// applied (as `may_touch`, without the doubt of an unknown hint).
    pub fn names(&self, customers: &[i64], orders: &[i64]) -> bool {
        let inner = self.lock();
        customers.iter().any(|c| inner.customers.contains_key(c)) || orders.iter().any(|o| inner.orders.contains_key(o))
    }

    /// The database said (as of `mark`) nothing about these subjects is pending.
    pub(crate) fn settle(&self, mark: u64, customers: &[i64], orders: &[i64]) {
        let mut inner = self.lock();
        for c in customers {
            if inner.customers.get(c).is_some_and(|seq| *seq <= mark) {
                inner.customers.remove(c);
            }
        }
        for o in orders {
            if inner.orders.get(o).is_some_and(|seq| *seq <= mark) {
                inner.orders.remove(o);
            }
        }
    }

    /// The database's whole pending set as of `mark`: entries added up to `mark` that are not
    /// in it go, and the hint is known again (unless marked unknown after `mark`).
    pub(crate) fn resync(&self, mark: u64, customers: &[i64], orders: &[i64]) {
        let customers: std::collections::HashSet<i64> = customers.iter().copied().collect();
        let orders: std::collections::HashSet<i64> = orders.iter().copied().collect();
        let mut inner = self.lock();
        inner.customers.retain(|id, seq| *seq > mark || customers.contains(id));
        inner.orders.retain(|id, seq| *seq > mark || orders.contains(id));
        for id in &customers {
            inner.customers.entry(*id).or_insert(mark);
        }
        for id in &orders {
            inner.orders.entry(*id).or_insert(mark);
        }
        if inner.unknown_at <= mark {
            inner.unknown = false;
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.lock().unknown
    }

    /// How many subjects are held (for metrics and tests).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.customers.len() + inner.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_added_after_the_question_survives_the_answer() {
        let pending = PendingSubjects::default();
        assert!(pending.may_touch(&[1], &[]), "unknown until read once");
        let mark = pending.mark();
        pending.resync(mark, &[], &[]);
        assert!(!pending.may_touch(&[1], &[]));
        let mark = pending.mark();
        pending.add(&PendingNotice { customers: vec![1], orders: vec![10], all: false });
        pending.settle(mark, &[1], &[10]);
        assert!(pending.may_touch(&[1], &[]), "added after the question was asked");
        let mark = pending.mark();
        pending.settle(mark, &[1], &[10]);
        assert!(!pending.may_touch(&[1], &[10]));
        pending.mark_unknown();
        assert!(pending.may_touch(&[2], &[]));
        let mark = pending.mark();
        pending.add(&PendingNotice { customers: vec![3], ..PendingNotice::default() });
        pending.mark_unknown();
        pending.resync(mark, &[], &[]);
        assert!(pending.is_unknown(), "the hint became unknown after the read began");
        assert!(pending.may_touch(&[3], &[]), "added after the read began");
        let mark = pending.mark();
        pending.resync(mark, &[3], &[]);
        assert!(!pending.is_unknown());
        assert!(pending.may_touch(&[3], &[]));
    }
}
