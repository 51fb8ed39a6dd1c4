//! A small seeded generator (SplitMix64): reproducible runs without a dependency.
//! Its quality is ample for picking delays and faults; it is no cryptographic source.

use std::ops::{Bound, RangeBounds};
use std::time::Duration;

/// Seeded pseudo-random numbers; the same seed gives the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

fn bounds(range: impl RangeBounds<u64>) -> (u64, u64) {
    let low = match range.start_bound() {
        Bound::Included(&l) => l,
        Bound::Excluded(&l) => l.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let high = match range.end_bound() {
        Bound::Included(&h) => h,
        Bound::Excluded(&h) => {
            assert!(h > low, "empty range");
            h - 1
        }
        Bound::Unbounded => u64::MAX,
    };
    assert!(low <= high, "empty range");
    (low, high)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent generator for a part of the simulation, drawn from this one
    /// (so one seed still decides the whole run).
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `range` (which must not be empty).
    pub fn u64(&mut self, range: impl RangeBounds<u64>) -> u64 {
        let (low, high) = bounds(range);
        let span = high - low;
        if span == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift: the bias is below 2^-64 per unit of span, far below notice.
        let r = (u128::from(self.next_u64()) * u128::from(span + 1)) >> 64;
        low + r as u64
    }

    pub fn usize(&mut self, range: impl RangeBounds<usize>) -> usize {
        let map = |b: Bound<&usize>| match b {
            Bound::Included(&x) => Bound::Included(x as u64),
            Bound::Excluded(&x) => Bound::Excluded(x as u64),
            Bound::Unbounded => Bound::Unbounded,
        };
        let range = (map(range.start_bound()), map(range.end_bound()));
        self.u64(range) as usize
    }

    pub fn u32(&mut self, range: impl RangeBounds<u32>) -> u32 {
        let map = |b: Bound<&u32>| match b {
            Bound::Included(&x) => Bound::Included(u64::from(x)),
            Bound::Excluded(&x) => Bound::Excluded(u64::from(x)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let range = (map(range.start_bound()), map(range.end_bound()));
        self.u64(range) as u32
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// True once in `n` draws on average (`n` of 0 or 1: always).
    pub fn one_in(&mut self, n: u64) -> bool {
        n <= 1 || self.u64(0..n) == 0
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A duration uniform in `range` milliseconds.
    pub fn millis(&mut self, range: impl RangeBounds<u64>) -> Duration {
        Duration::from_millis(self.u64(range))
    }

    /// One of `items`, or `None` if there are none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.usize(0..items.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_forks_differ() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..20).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..20).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut f = a.fork();
        assert_ne!(f.next_u64(), a.next_u64());
    }

    #[test]
    fn ranges_are_respected_and_covered() {
        let mut r = Rng::new(1);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = r.u64(10..15);
            assert!((10..15).contains(&x));
            seen[(x - 10) as usize] = true;
            assert!(r.usize(3..=3) == 3);
            assert!(r.u32(..4) < 4);
        }
        assert!(seen.iter().all(|s| *s));
        assert!(r.u64(..) > 0 || r.u64(..) > 0);
    }

    #[test]
    fn chances_are_about_right() {
        let mut r = Rng::new(3);
        let hits = (0..10_000).filter(|_| r.one_in(4)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        let hits = (0..10_000).filter(|_| r.chance(0.1)).count();
        assert!((800..1_200).contains(&hits), "{hits}");
        assert!(!r.chance(0.0));
        assert!(r.one_in(1));
        assert_eq!(r.pick::<u8>(&[]), None);
        assert_eq!(r.pick(&[9]), Some(&9));
    }

    #[test]
    #[should_panic(expected = "empty range")]
    fn an_empty_range_is_a_mistake() {
        Rng::new(0).u64(5..5);
    }
}
