//! The acknowledgement-latency histogram a link keeps: a plain value type, shared by
//! the link stats the API reports and the metrics rendered from them.

use std::time::Duration;

/// Upper bounds (seconds) of the acknowledgement latency histogram's buckets.
pub const ACK_LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Time from a message's first transmission on a link to its Confirmed (or to its
/// Processed when the peer's acknowledgement said both at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations per bucket of [`ACK_LATENCY_BUCKETS`] (not cumulative); the
    /// ones above the last bound are only in `count`.
    pub buckets: [u64; ACK_LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum_micros: u64,
}

impl LatencyHistogram {
    pub fn observe(&mut self, latency: Duration) {
        let secs = latency.as_secs_f64();
        if let Some(i) = ACK_LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_micros = self
            .sum_micros
            .saturating_add(latency.as_micros().min(u64::MAX as u128) as u64);
    }
}
