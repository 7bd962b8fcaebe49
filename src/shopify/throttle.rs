//! The client's picture of Shopify's leaky bucket, kept from each answer's `throttleStatus`, so
//! a query that would be throttled is not sent: it waits for points, or is refused at once when
//! the wait would outlast the caller's deadline.
//!
//! Shopify charges a query's requested cost when the query arrives and refunds the unused part
//! when it answers. An answer's status therefore counts every query that reached Shopify before
//! it was written, but not the ones still waiting here for points, nor those sent so recently
//! that they may still be on the wire: those stay held in the estimate.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::graphql::ThrottleStatus;

#[derive(Debug, Clone, Copy)]
struct Estimate {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    at: Instant,
}

/// One admitted query, from sending to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// What the bucket says about sending a query now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Enough points: send now (the points are reserved).
    Now(Ticket),
    /// Not enough points yet: ask again after this wait, or sooner when an answer in flight gives
    /// its unused points back. Nothing is reserved.
    Wait(Duration),
    /// The wait would pass the deadline: do not send.
    Refused { wait: Duration },
    /// No answer seen yet: send one query alone to learn the bucket (see `probe`).
    Probe,
}

#[derive(Debug, Default)]
pub struct Bucket {
    estimate: Option<Estimate>,
    next: u64,
    /// Queries admitted and not yet answered: their cost, and when they were sent (None while
    /// they still wait for points).
    in_flight: BTreeMap<Ticket, (f64, Option<Instant>)>,
}

/// How long a sent query may take to reach Shopify: a query sent more recently than this may
/// not be counted in the status an answer carries.
const TRANSIT: Duration = Duration::from_millis(50);

impl Bucket {
    fn ticket(&mut self, cost: f64) -> Ticket {
        self.next += 1;
        let ticket = Ticket(self.next);
        self.in_flight.insert(ticket, (cost, None));
        ticket
    }

    /// Decides for a query of `cost` points that must be answered by `deadline`.
    pub fn admit(&mut self, cost: u32, now: Instant, deadline: Instant) -> Admission {
        let Some(mut estimate) = self.estimate else { return Admission::Probe };
        let cost = f64::from(cost);
        let elapsed = now.saturating_duration_since(estimate.at).as_secs_f64();
        let available = (estimate.available + elapsed * estimate.restore_rate).min(estimate.maximum);
        // What was restored up to now is kept, whatever the decision.
        estimate.available = available;
        estimate.at = now;
        self.estimate = Some(estimate);
        let admission = if available >= cost {
            estimate.available = available - cost;
            Admission::Now(self.ticket(cost))
        } else if cost > estimate.maximum || estimate.restore_rate <= 0.0 {
            return Admission::Refused { wait: Duration::MAX };
        } else {
            let wait = Duration::from_secs_f64((cost - available) / estimate.restore_rate);
            if now + wait > deadline && self.in_flight.is_empty() {
                return Admission::Refused { wait };
            }
            Admission::Wait(wait)
        };
        estimate.at = now;
        self.estimate = Some(estimate);
        admission
    }

    /// The one query sent while the bucket is unknown.
    pub fn probe(&mut self, cost: u32) -> Ticket {
        self.ticket(f64::from(cost))
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The query of `ticket` leaves now.
    pub fn sent(&mut self, ticket: Ticket, now: Instant) {
        if let Some((_, sent)) = self.in_flight.get_mut(&ticket) {
            *sent = Some(now);
        }
    }

    /// Learns from the answer to `ticket`: Shopify's status, less the queries it cannot have
    /// counted yet (still waiting here, or sent within `TRANSIT`).
    pub fn observe(&mut self, ticket: Ticket, status: ThrottleStatus, now: Instant) {
        let uncounted: f64 = self
            .in_flight
            .iter()
            .filter(|(t, _)| **t != ticket)
            .filter(|(_, (_, sent))| sent.is_none_or(|at| now.saturating_duration_since(at) < TRANSIT))
            .map(|(_, (cost, _))| cost)
            .sum();
        self.estimate = Some(Estimate {
            maximum: status.maximum_available,
            available: status.currently_available - uncounted,
            restore_rate: status.restore_rate,
            at: now,
        });
    }

    /// The query of `ticket` was refused before Shopify charged it (HTTP 401): its points are
    /// back in the estimate.
    pub fn refund(&mut self, ticket: Ticket) {
        if let (Some((cost, _)), Some(estimate)) = (self.in_flight.get(&ticket), self.estimate.as_mut()) {
            estimate.available = (estimate.available + cost).min(estimate.maximum);
        }
    }

    /// The query of `ticket` was answered, or will not be.
    pub fn settle(&mut self, ticket: Ticket) {
        self.in_flight.remove(&ticket);
    }

    /// Points believed available now (for metrics and tests).
    pub fn available(&self, now: Instant) -> Option<f64> {
        self.estimate.map(|e| {
            let elapsed = now.saturating_duration_since(e.at).as_secs_f64();
            (e.available + elapsed * e.restore_rate).min(e.maximum)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(available: f64) -> ThrottleStatus {
        ThrottleStatus { maximum_available: 1000.0, currently_available: available, restore_rate: 100.0 }
    }

    #[test]
    fn the_first_query_probes_then_points_are_spent() {
        let now = Instant::now();
        let mut bucket = Bucket::default();
        assert_eq!(bucket.admit(100, now, now + Duration::from_secs(1)), Admission::Probe);
        let probe = bucket.probe(100);
        bucket.observe(probe, status(250.0), now);
        bucket.settle(probe);
        assert!(matches!(bucket.admit(100, now, now + Duration::from_secs(1)), Admission::Now(_)));
        assert!(matches!(bucket.admit(100, now, now + Duration::from_secs(1)), Admission::Now(_)));
        // 50 left: 100 more needs half a second of restore.
        assert_eq!(bucket.admit(100, now, now + Duration::from_secs(1)), Admission::Wait(Duration::from_millis(500)));
    }

    #[test]
    fn waiting_does_not_lose_the_points_restored_meanwhile() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(60);
        let mut bucket = Bucket::default();
        let probe = bucket.probe(1);
        bucket.observe(probe, status(0.0), now);
        bucket.settle(probe);
        assert_eq!(bucket.admit(300, now, deadline), Admission::Wait(Duration::from_secs(3)));
        let a_bit_later = now + Duration::from_secs(1);
        assert_eq!(bucket.admit(300, a_bit_later, deadline), Admission::Wait(Duration::from_secs(2)));
        let then = now + Duration::from_secs(3);
        assert!(matches!(bucket.admit(300, then, deadline), Admission::Now(_)));
    }

    #[test]
    fn a_wait_past_the_deadline_is_refused_and_reserves_nothing() {
        let now = Instant::now();
        let mut bucket = Bucket::default();
        let probe = bucket.probe(300);
        bucket.observe(probe, status(0.0), now);
        bucket.settle(probe);
        let refused = bucket.admit(300, now, now + Duration::from_secs(1));
        assert_eq!(refused, Admission::Refused { wait: Duration::from_secs(3) });
        assert_eq!(bucket.available(now), Some(0.0));
        let later = now + Duration::from_secs(3);
        assert!(matches!(bucket.admit(300, later, later + Duration::from_secs(1)), Admission::Now(_)));
    }

    #[test]
    fn an_answer_does_not_free_the_points_of_queries_it_cannot_have_counted() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let mut bucket = Bucket::default();
        let probe = bucket.probe(1);
        bucket.observe(probe, status(1000.0), now);
        bucket.settle(probe);
        let Admission::Now(first) = bucket.admit(400, now, deadline) else { panic!() };
        bucket.sent(first, now);
        let Admission::Now(second) = bucket.admit(400, now, deadline) else { panic!() };
        // The first answer comes back while the second is still on the wire: Shopify saw only
        // the first (1000 − 400 + a 390 refund).
        let answered = now + Duration::from_millis(10);
        bucket.sent(second, answered);
        bucket.observe(first, status(990.0), answered);
        bucket.settle(first);
        assert_eq!(bucket.available(answered), Some(590.0), "the second is still held");
        // An answer long after the second left: Shopify has counted it in its status.
        let later = now + Duration::from_millis(500);
        let Admission::Now(third) = bucket.admit(100, later, later + Duration::from_secs(1)) else { panic!() };
        bucket.sent(third, later);
        bucket.observe(third, status(600.0), later + Duration::from_millis(100));
        assert_eq!(bucket.available(later + Duration::from_millis(100)), Some(600.0));
    }
}
