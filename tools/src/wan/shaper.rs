//! Sans-IO part of the emulator: when each chunk of one direction may be delivered.
//!
//! A direction is modelled as a link that first serialises bytes at the configured
//! bandwidth (a token bucket, written as its equivalent "theoretical arrival time" form)
//! and then carries them for the one-way delay plus jitter. Due times never go
//! backwards, so jitter can delay a chunk but never overtake an earlier one: a TCP byte
//! stream must not be reordered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rng::Rng;

/// Random variation added to the one-way delay of each chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// No variation.
    None,
    /// Extra delay uniform in `[-j, +j]` (total delay clamped at zero).
    Uniform(Duration),
    /// Extra delay drawn from a normal distribution with this standard deviation
    /// (total delay clamped at zero).
    Normal(Duration),
}

impl Jitter {
    /// `delay` varied by `jitter`, never negative.
    pub(crate) fn vary(self, delay: Duration, rng: &mut Rng) -> Duration {
        let offset_secs = match self {
            Jitter::None => 0.0,
            Jitter::Uniform(j) => (rng.unit() * 2.0 - 1.0) * j.as_secs_f64(),
            Jitter::Normal(sd) => rng.normal() * sd.as_secs_f64(),
        };
        let total = delay.as_secs_f64() + offset_secs;
        if total <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(total)
        }
    }
}

/// Shaping parameters of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    /// One-way delay added to every chunk.
    pub delay: Duration,
    /// Variation of that delay.
    pub jitter: Jitter,
    /// Bytes per second, `None` for unlimited.
    pub bandwidth: Option<u64>,
    /// Token-bucket depth in bytes: how much may leave at once after an idle period.
    pub burst: u64,
}

/// One queued unit of a direction.
#[derive(Debug)]
pub(crate) enum Item {
    Data {
        due: Instant,
        bytes: Vec<u8>,
        /// How much of `bytes` is already written.
        written: usize,
    },
    /// The source half-closed; forward the FIN once everything before it is out.
    Fin { due: Instant },
    /// The source reset its connection; pass the reset on after the data before it,
    /// as the RST segment would arrive after them.
    Reset { due: Instant },
}

impl Item {
    pub(crate) fn due(&self) -> Instant {
        match self {
            Item::Data { due, .. } | Item::Fin { due } | Item::Reset { due } => *due,
        }
    }
}

/// The queue and schedule of one direction of one connection.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    pub(crate) queue: VecDeque<Item>,
    /// Bytes held in `queue` not yet written.
    pub(crate) queued: usize,
    /// The source sent its FIN (or we stopped reading it for good).
    pub(crate) read_eof: bool,
    /// The FIN went out to the destination.
    pub(crate) fin_sent: bool,
    /// Last write attempt hit `WouldBlock`; wait for a writable event.
    pub(crate) write_blocked: bool,
    /// Last read hit `WouldBlock`; wait for a readable event.
    pub(crate) read_drained: bool,
    /// Latest due time handed out: later chunks are never due earlier.
    last_due: Option<Instant>,
    /// Token bucket state: when the link finishes serialising what it was given.
    link_free_at: Option<Instant>,
    /// Faults of the tampering mode (a chunk held back, earlier chunks).
    pub(crate) tamper: super::tamper::Tamperer,
}

/// Largest chunk scheduled as one unit; with a bandwidth limit chunks shrink to about
/// 10 ms of transmission so delivery is smooth rather than in big steps.
pub(crate) fn chunk_limit(params: &LinkParams) -> usize {
    const MAX: usize = 16 * 1024;
    match params.bandwidth {
        Some(rate) => ((rate / 100) as usize).clamp(64, MAX),
        None => MAX,
    }
}

fn transmit_time(bytes: u64, rate: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Pipe {
    /// Queue bytes read at `now`; returns their due time.
    pub(crate) fn push_data(
        &mut self,
        now: Instant,
        bytes: &[u8],
        params: &LinkParams,
        rng: &mut Rng,
    ) -> Instant {
        let release = match params.bandwidth {
            Some(rate) => {
                let start = self.link_free_at.map_or(now, |t| t.max(now));
                let free = start + transmit_time(bytes.len() as u64, rate);
                self.link_free_at = Some(free);
                free.checked_sub(transmit_time(params.burst, rate))
                    .map_or(now, |t| t.max(now))
            }
            None => now,
        };
        let due = self.monotonic(release + params.jitter.vary(params.delay, rng));
        self.queued += bytes.len();
        self.queue.push_back(Item::Data {
            due,
            bytes: bytes.to_vec(),
            written: 0,
        });
        due
    }

    /// Queue the source's FIN read at `now`.
    pub(crate) fn push_fin(&mut self, now: Instant, params: &LinkParams) -> Instant {
        self.read_eof = true;
        let due = self.monotonic(now + params.delay);
        self.queue.push_back(Item::Fin { due });
        due
    }

    /// Queue the source's reset seen at `now`; nothing more is read from it.
    pub(crate) fn push_reset(&mut self, now: Instant, params: &LinkParams) -> Instant {
        self.read_eof = true;
        let due = self.monotonic(now + params.delay);
        self.queue.push_back(Item::Reset { due });
        due
    }

    fn monotonic(&mut self, due: Instant) -> Instant {
        let due = self.last_due.map_or(due, |last| last.max(due));
        self.last_due = Some(due);
        due
    }

    /// When the head of the queue becomes deliverable.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(Item::due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(delay_ms: u64, jitter: Jitter, bandwidth: Option<u64>) -> LinkParams {
        LinkParams {
            delay: Duration::from_millis(delay_ms),
            jitter,
            bandwidth,
            burst: 0,
        }
    }

    #[test]
    fn jitter_never_reorders_due_times() {
        let mut rng = Rng::new(7);
        let mut pipe = Pipe::default();
        let p = params(20, Jitter::Uniform(Duration::from_millis(20)), None);
        let start = Instant::now();
        let mut prev = start;
        let mut spread = false;
        for i in 0..1000u64 {
            let due = pipe.push_data(start + Duration::from_micros(i * 100), b"x", &p, &mut rng);
            assert!(due >= prev);
            spread |= due > prev + Duration::from_millis(1);
            prev = due;
        }
        assert!(spread, "jitter must actually vary the delay");
        assert_eq!(pipe.queued, 1000);
    }

    #[test]
    fn bandwidth_serialises_bytes() {
        let mut rng = Rng::new(1);
        let mut pipe = Pipe::default();
        let p = params(0, Jitter::None, Some(1000));
        let now = Instant::now();
        let first = pipe.push_data(now, &[0; 500], &p, &mut rng);
        let second = pipe.push_data(now, &[0; 500], &p, &mut rng);
        assert_eq!(first - now, Duration::from_millis(500));
        assert_eq!(second - now, Duration::from_millis(1000));
    }

    #[test]
    fn burst_lets_an_idle_link_send_at_once() {
        let mut rng = Rng::new(1);
        let mut pipe = Pipe::default();
        let mut p = params(10, Jitter::None, Some(1000));
        p.burst = 2000;
        let now = Instant::now();
        assert_eq!(pipe.push_data(now, &[0; 1500], &p, &mut rng) - now, p.delay);
        // The bucket holds 500 bytes more; the next 1000 need 500 ms of refill.
        let due = pipe.push_data(now, &[0; 1000], &p, &mut rng);
        assert_eq!(due - now, Duration::from_millis(510));
    }

    #[test]
    fn fin_follows_the_data_before_it() {
        let mut rng = Rng::new(3);
        let mut pipe = Pipe::default();
        let p = params(5, Jitter::Normal(Duration::from_millis(50)), None);
        let now = Instant::now();
        let mut last = now;
        for _ in 0..50 {
            last = pipe.push_data(now, b"abc", &p, &mut rng);
        }
        assert!(pipe.push_fin(now, &p) >= last);
        assert!(pipe.read_eof);
    }

    #[test]
    fn same_seed_same_delays() {
        let j = Jitter::Normal(Duration::from_millis(10));
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(
                j.vary(Duration::from_millis(30), &mut a),
                j.vary(Duration::from_millis(30), &mut b)
            );
        }
    }
}
