//! Reconnect delays: exponential growth with full jitter, so a fleet of buffer servers
//! that lost the same IM server does not come back in lock step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt: uniform in [ceiling/2, ceiling], where the
    /// ceiling doubles with each failure up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let shift = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self
            .initial
            .saturating_mul(1u32 << shift)
            .min(self.max)
            .as_micros() as u64;
        let half = ceiling / 2;
        Duration::from_micros(half + self.next_random() % (ceiling - half + 1))
    }

    /// A connection stayed up: start again from the initial delay next time.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// What a listener does after `accept()` returned an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// Nothing more to accept now.
    Drained,
    /// Harmless (interrupted, or the peer gave up before the accept): accept again.
    Again,
    /// Out of resources (descriptors: EMFILE/ENFILE, buffers, memory): stop
    /// accepting for a while; the connections wait in the backlog meanwhile.
    Pause,
}

impl AcceptError {
    pub fn of(e: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::WouldBlock => AcceptError::Drained,
            ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset => {
                AcceptError::Again
            }
            _ => AcceptError::Pause,
        }
    }
}

/// A listener's pause after accept() failed for lack of resources: retry after 10 ms,
/// doubling up to 1 s while it keeps failing, from 10 ms again once one succeeds.
/// The listener's readiness edge is gone after such a failure, so the owner retries
/// at [`retry_at`](Self::retry_at) on its own. Sans-IO: `now` comes in.
#[derive(Debug, Clone, Default)]
pub struct AcceptPause {
    /// Failures in a row.
    failures: u32,
    retry_at: Option<std::time::Instant>,
}

impl AcceptPause {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// An accept failed: returns how long to pause, and whether this failure starts
    /// an episode (log it then, not at every retry).
    pub fn failed(&mut self, now: std::time::Instant) -> (Duration, bool) {
        let first = self.failures == 0;
        let delay = Self::FIRST
            .saturating_mul(1 << self.failures.min(10))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + delay);
        (delay, first)
    }

    /// An accept succeeded (or drained the backlog): returns how many failures in a
    /// row this ends (0: none).
    pub fn succeeded(&mut self) -> u32 {
        self.retry_at = None;
        std::mem::take(&mut self.failures)
    }

    /// Accepting waits until then.
    pub fn retry_at(&self) -> Option<std::time::Instant> {
        self.retry_at
    }

    /// Whether the listener is paused at `now` (else accept; a due retry counts).
    pub fn is_paused(&self, now: std::time::Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// A retry is due at `now`.
    pub fn is_due(&self, now: std::time::Instant) -> bool {
        self.retry_at.is_some_and(|t| now >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_ceiling_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            b.next_delay();
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn different_seeds_spread_out() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 2);
        let da: Vec<_> = (0..8).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn accept_pauses_double_to_a_second_and_reset_on_success() {
        let t0 = std::time::Instant::now();
        let mut p = AcceptPause::default();
        assert!(!p.is_paused(t0) && !p.is_due(t0));
        assert_eq!(p.failed(t0), (Duration::from_millis(10), true));
        assert!(p.is_paused(t0 + Duration::from_millis(9)));
        assert!(p.is_due(t0 + Duration::from_millis(10)));
        assert_eq!(p.failed(t0), (Duration::from_millis(20), false));
        for _ in 0..20 {
            p.failed(t0);
        }
        assert_eq!(p.failed(t0).0, Duration::from_secs(1));
        assert_eq!(p.succeeded(), 23);
        assert_eq!(p.retry_at(), None);
        assert_eq!(p.failed(t0), (Duration::from_millis(10), true));
    }

    #[test]
    fn accept_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            AcceptError::of(&ErrorKind::WouldBlock.into()),
            AcceptError::Drained
        );
        assert_eq!(
            AcceptError::of(&ErrorKind::ConnectionAborted.into()),
            AcceptError::Again
        );
        assert_eq!(
            AcceptError::of(&Error::from_raw_os_error(libc::EMFILE)),
            AcceptError::Pause
        );
        assert_eq!(
            AcceptError::of(&Error::from_raw_os_error(libc::ENFILE)),
            AcceptError::Pause
        );
    }
}
