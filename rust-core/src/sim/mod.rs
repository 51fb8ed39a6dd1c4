//! Deterministic simulation support, sans-IO like everything it drives: a virtual
//! [`Clock`], a seeded [`Rng`], a byte [`Wire`] between two ends that delivers at
//! virtual instants (latency, jitter, bandwidth, cuts, half-open connections,
//! outages), and a [`Pair`] of link endpoints joined directly for step-by-step tests
//! and benchmarks.
//!
//! The seeded simulations in `tests/` (link_sim, buffer_server_sim) are built from
//! these pieces, so that every test means the same thing by "a cut" or "a half-open
//! link". A run is a pure function of its seed: nothing here reads a clock or the
//! operating system's randomness. Not part of the stable API.

mod pair;
mod rng;
mod wire;

pub use pair::Pair;
pub use rng::Rng;
pub use wire::{Arrival, End, Wire, WireConfig};

use std::time::{Duration, Instant};

/// Virtual time: it only moves when the simulation says so, and never backwards.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    now: Instant,
}

impl Clock {
    /// A clock standing at `start` (any instant: only differences matter).
    pub fn new(start: Instant) -> Self {
        Clock { start, now: start }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time passed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Move to `at`; an instant in the past leaves the clock where it is.
    pub fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

/// The earliest of some optional deadlines: what a simulation loop jumps to next.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward_only() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.advance(Duration::from_millis(5));
        c.advance_to(t0 + Duration::from_millis(2));
        assert_eq!(c.elapsed(), Duration::from_millis(5));
        c.advance_to(t0 + Duration::from_secs(1));
        assert_eq!(c.now(), t0 + Duration::from_secs(1));
        assert_eq!(c.start(), t0);
    }

    #[test]
    fn earliest_ignores_missing_deadlines() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(earliest([None, Some(t1), Some(t0), None]), Some(t0));
        assert_eq!(earliest([None, None]), None);
    }
}
