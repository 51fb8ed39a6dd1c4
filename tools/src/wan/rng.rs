//! Random draws of the WAN emulator: delays between bounds, jitter, fault choices.

use std::time::Duration;

/// The emulator's seeded draws (reproducible runs from `--seed`): the simulation
/// kit's generator, with the delays and noise a WAN needs on top.
#[derive(Debug, Clone)]
pub(crate) struct Rng(smslink::sim::Rng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(smslink::sim::Rng::new(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[min, max]` (either order).
    pub(crate) fn between(&mut self, a: Duration, b: Duration) -> Duration {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        lo + (hi - lo).mul_f64(self.unit())
    }

    /// Standard normal sample (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1], keeps ln finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
