//! Circuit breaker for the Admin API: after repeated failures, stop asking for a while, so
//! callers get the stale answer at once instead of waiting on a Shopify that is down.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open (the metric's values).
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker { threshold: threshold.max(1), cooldown, failures: 0, open_until: None, trial_in_flight: false }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// May a request go out now? In half-open state, one trial at a time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.trial_in_flight => false,
            BreakerState::HalfOpen => {
                self.trial_in_flight = true;
                true
            }
        }
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.trial_in_flight = false;
    }

    pub fn failure(&mut self, now: Instant) {
        self.trial_in_flight = false;
        self.failures += 1;
        if self.open_until.is_some() || self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_after_a_good_trial() {
        let now = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            b.failure(now);
        }
        assert_eq!(b.state(now), BreakerState::Closed);
        b.failure(now);
        assert_eq!(b.state(now), BreakerState::Open);
        assert!(!b.allow(now));
        let later = now + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.allow(later), "one trial");
        assert!(!b.allow(later), "only one");
        b.success();
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn a_failed_trial_opens_it_again() {
        let now = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(5));
        b.failure(now);
        let later = now + Duration::from_secs(5);
        assert!(b.allow(later));
        b.failure(later);
        assert_eq!(b.state(later), BreakerState::Open);
    }
}
