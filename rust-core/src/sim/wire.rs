//! A simulated TCP connection between two ends, in virtual time.
//!
//! Bytes written at one end arrive at the other, in order, after the latency plus
//! jitter and after the bandwidth has let them through; a write may be split into
//! segments that arrive separately. Jitter delays bytes but never lets them overtake
//! earlier ones: a byte stream is not reordered.
//!
//! Faults: a **cut** resets the connection (what was in flight is lost, except
//! perhaps the start of the first segment, cut anywhere, also inside a frame; both
//! ends then read a reset); **half-open** makes one direction silently stop while
//! the connection looks alive; an **outage** is a cut after which no new connection
//! can be made for a while. An end that closes its socket sends a FIN behind its
//! bytes. Every connection starts empty: nothing of an earlier one ever arrives.
//!
//! Steady-state use does not allocate: bytes wait in per-direction buffers that
//! keep their capacity.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Rng;

/// One end of a [`Wire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    A,
    B,
}

impl End {
    pub const BOTH: [End; 2] = [End::A, End::B];

    pub fn other(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }

    pub fn index(self) -> usize {
        match self {
            End::A => 0,
            End::B => 1,
        }
    }
}

/// How a wire carries bytes (both directions alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireConfig {
    /// One-way delay of every byte.
    pub latency: Duration,
    /// Extra delay per segment, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Bytes per second each direction carries; `None`: unlimited.
    pub bandwidth: Option<u64>,
    /// Split writes into segments that arrive separately (one write in three, at a
    /// random point, repeatedly).
    pub split_writes: bool,
}

impl WireConfig {
    /// Instant delivery of whole writes: latency 0, no jitter, unlimited bandwidth.
    pub fn ideal() -> Self {
        WireConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth: None,
            split_writes: false,
        }
    }
}

/// What reaches an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Bytes (put in the caller's buffer).
    Bytes,
    /// The other end closed its socket: end of stream.
    Fin,
    /// The connection was reset (cut): the read fails.
    Reset,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Bytes(usize),
    Fin,
    Reset,
}

/// One direction of one connection.
#[derive(Debug)]
struct Pipe {
    /// Bytes in flight, in order; `items` says how they are cut into segments.
    bytes: VecDeque<u8>,
    items: VecDeque<(Instant, Item)>,
    /// When the bandwidth has let through everything written so far.
    free_at: Instant,
    /// Latest arrival handed out: later segments never arrive earlier.
    last_at: Instant,
    /// Half-open: what is written from this direction's source vanishes.
    silent: bool,
}

impl Pipe {
    fn new(now: Instant) -> Self {
        Pipe {
            bytes: VecDeque::new(),
            items: VecDeque::new(),
            free_at: now,
            last_at: now,
            silent: false,
        }
    }

    fn reset(&mut self, now: Instant) {
        self.bytes.clear();
        self.items.clear();
        self.free_at = now;
        self.last_at = now;
        self.silent = false;
    }

    fn push(&mut self, at: Instant, item: Item) -> Instant {
        let at = at.max(self.last_at);
        self.last_at = at;
        self.items.push_back((at, item));
        at
    }
}

/// Two ends and the connection between them (see the module docs).
#[derive(Debug)]
pub struct Wire {
    config: WireConfig,
    rng: Rng,
    /// `pipes[i]` carries bytes from end `i` to the other end.
    pipes: [Pipe; 2],
    /// A connection exists and has not been reset.
    connected: bool,
    /// Each end still holds its socket on the current connection.
    open: [bool; 2],
    /// No connection can be made before this instant.
    outage_until: Option<Instant>,
}

fn transmit_time(bytes: usize, per_second: u64) -> Duration {
    let nanos = (bytes as u128 * 1_000_000_000) / u128::from(per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Wire {
    /// A wire with no connection yet; `rng` decides jitter, segments and cut points.
    pub fn new(config: WireConfig, rng: Rng, now: Instant) -> Self {
        Wire {
            config,
            rng,
            pipes: [Pipe::new(now), Pipe::new(now)],
            connected: false,
            open: [false; 2],
            outage_until: None,
        }
    }

    pub fn config(&self) -> &WireConfig {
        &self.config
    }

    /// A connection exists and has not been cut.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// `end` still holds its socket on the current connection (it has not closed it,
    /// nor read its end or reset).
    pub fn is_open(&self, end: End) -> bool {
        self.open[end.index()]
    }

    /// The end of the present outage, if one is on at `now`.
    pub fn outage_until(&self, now: Instant) -> Option<Instant> {
        self.outage_until.filter(|t| *t > now)
    }

    /// Bytes in flight from `from`, not yet arrived.
    pub fn in_flight(&self, from: End) -> usize {
        self.pipes[from.index()].bytes.len()
    }

    /// A new connection between the two ends; `false` (and nothing changes) during an
    /// outage. An earlier connection is gone with everything in flight: an end that
    /// still held it should be told it is lost before this is called.
    pub fn connect(&mut self, now: Instant) -> bool {
        if self.outage_until(now).is_some() {
            return false;
        }
        for pipe in &mut self.pipes {
            pipe.reset(now);
        }
        self.connected = true;
        self.open = [true; 2];
        true
    }

    /// `from` writes `bytes`. They vanish if `from` holds no live connection or its
    /// direction is half-open.
    pub fn write(&mut self, from: End, bytes: &[u8], now: Instant) {
        let i = from.index();
        if !self.connected || !self.open[i] || self.pipes[i].silent || bytes.is_empty() {
            return;
        }
        let config = self.config;
        let pipe = &mut self.pipes[i];
        let mut rest = bytes.len();
        while rest > 0 {
            let n = if config.split_writes && self.rng.one_in(3) {
                self.rng.usize(1..=rest)
            } else {
                rest
            };
            rest -= n;
            let start = pipe.free_at.max(now);
            pipe.free_at = match config.bandwidth {
                Some(rate) => start + transmit_time(n, rate),
                None => start,
            };
            let jitter = if config.jitter.is_zero() {
                Duration::ZERO
            } else {
                let max = u64::try_from(config.jitter.as_micros()).unwrap_or(u64::MAX);
                Duration::from_micros(self.rng.u64(0..=max))
            };
            pipe.push(pipe.free_at + config.latency + jitter, Item::Bytes(n));
        }
        pipe.bytes.extend(bytes);
    }

    /// `from` closes its socket: a FIN follows its bytes (unless its direction is
    /// half-open), and nothing more reaches it.
    pub fn close(&mut self, from: End, now: Instant) {
        let i = from.index();
        if !self.open[i] {
            return;
        }
        self.open[i] = false;
        if self.connected && !self.pipes[i].silent {
            let at = now + self.config.latency;
            self.pipes[i].push(at, Item::Fin);
        }
        if !self.open[0] && !self.open[1] {
            self.connected = false;
        }
    }

    /// Reset the connection now (see the module docs); `false` if there was none.
    pub fn cut(&mut self, now: Instant) -> bool {
        if !self.connected {
            return false;
        }
        self.connected = false;
        for i in 0..2 {
            let pipe = &mut self.pipes[i];
            let partial = match pipe.items.front() {
                Some((_, Item::Bytes(n))) if !pipe.silent && *n > 0 => self.rng.usize(0..*n),
                _ => 0,
            };
            pipe.bytes.truncate(partial);
            pipe.items.clear();
            pipe.last_at = now;
            if partial > 0 {
                pipe.push(now, Item::Bytes(partial));
            }
            if self.open[1 - i] {
                pipe.push(now, Item::Reset);
            }
        }
        true
    }

    /// From now on, what `from` writes silently vanishes (bytes in flight still
    /// arrive); the connection looks alive to both ends.
    pub fn half_open(&mut self, from: End) {
        if self.connected {
            self.pipes[from.index()].silent = true;
        }
    }

    /// Cut the connection and refuse new ones until `until`.
    pub fn outage(&mut self, now: Instant, until: Instant) {
        self.cut(now);
        self.outage_until = Some(until);
    }

    /// When the next arrival is due.
    pub fn next_arrival(&self) -> Option<Instant> {
        super::earliest(self.pipes.iter().map(|p| p.items.front().map(|i| i.0)))
    }

    /// The next arrival due at `now`: which end it reaches and what it is; for
    /// [`Arrival::Bytes`] `buf` is replaced by the bytes. Arrivals for an end that no
    /// longer holds the connection are dropped on the way.
    pub fn poll_arrival(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<(End, Arrival)> {
        loop {
            let due = |p: &Pipe| p.items.front().map(|i| i.0).filter(|t| *t <= now);
            let from = match (due(&self.pipes[0]), due(&self.pipes[1])) {
                (Some(a), Some(b)) if b < a => 1,
                (Some(_), _) => 0,
                (None, Some(_)) => 1,
                (None, None) => return None,
            };
            let to = 1 - from;
            let pipe = &mut self.pipes[from];
            let (_, item) = pipe.items.pop_front()?;
            let arrival = match item {
                Item::Bytes(n) => {
                    buf.clear();
                    let (front, back) = pipe.bytes.as_slices();
                    let k = n.min(front.len());
                    buf.extend_from_slice(&front[..k]);
                    buf.extend_from_slice(&back[..n - k]);
                    pipe.bytes.drain(..n);
                    Arrival::Bytes
                }
                Item::Fin => Arrival::Fin,
                Item::Reset => Arrival::Reset,
            };
            if !self.open[to] {
                continue;
            }
            if arrival != Arrival::Bytes {
                self.open[to] = false;
                if !self.open[from] {
                    self.connected = false;
                }
            }
            let end = if to == 0 { End::A } else { End::B };
            return Some((end, arrival));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(w: &mut Wire, now: Instant) -> Vec<(End, Arrival, Vec<u8>)> {
        let mut out = vec![];
        let mut buf = vec![];
        while let Some((end, a)) = w.poll_arrival(now, &mut buf) {
            let bytes = if a == Arrival::Bytes {
                buf.clone()
            } else {
                vec![]
            };
            out.push((end, a, bytes));
        }
        out
    }

    fn wire(config: WireConfig, t0: Instant) -> Wire {
        let mut w = Wire::new(config, Rng::new(5), t0);
        assert!(w.connect(t0));
        w
    }

    #[test]
    fn bytes_arrive_after_latency_and_bandwidth_in_order() {
        let t0 = Instant::now();
        let mut w = wire(
            WireConfig {
                latency: ms(10),
                bandwidth: Some(1000),
                ..WireConfig::ideal()
            },
            t0,
        );
        w.write(End::A, &[1; 100], t0);
        w.write(End::A, &[2; 100], t0);
        w.write(End::B, b"back", t0);
        assert_eq!(
            w.next_arrival(),
            Some(t0 + ms(14)),
            "4 bytes: 4 ms, then 10 ms"
        );
        assert_eq!(
            drain(&mut w, t0 + ms(109)),
            vec![(End::A, Arrival::Bytes, b"back".to_vec())]
        );
        assert_eq!(
            drain(&mut w, t0 + ms(110)).len(),
            1,
            "100 bytes at 1000/s: 100 ms"
        );
        assert_eq!(w.next_arrival(), Some(t0 + ms(210)));
        assert_eq!(drain(&mut w, t0 + ms(210))[0].2, vec![2; 100]);
        assert_eq!(w.in_flight(End::A), 0);
    }

    #[test]
    fn jitter_and_splitting_never_reorder_the_stream() {
        let t0 = Instant::now();
        let mut w = wire(
            WireConfig {
                latency: ms(5),
                jitter: ms(30),
                split_writes: true,
                ..WireConfig::ideal()
            },
            t0,
        );
        let data: Vec<u8> = (0..=255).collect();
        for i in 0..50 {
            w.write(End::B, &data, t0 + ms(i));
        }
        let got = drain(&mut w, t0 + ms(200));
        assert!(got.len() > 50, "some writes were split");
        let stream: Vec<u8> = got.into_iter().flat_map(|g| g.2).collect();
        let want: Vec<u8> = (0..50).flat_map(|_| data.iter().copied()).collect();
        assert_eq!(stream, want);
    }

    #[test]
    fn cut_keeps_at_most_a_prefix_of_the_first_segment_then_resets_both_ends() {
        let t0 = Instant::now();
        let mut w = wire(
            WireConfig {
                latency: ms(50),
                ..WireConfig::ideal()
            },
            t0,
        );
        w.write(End::A, &[7; 40], t0);
        w.write(End::A, &[8; 40], t0);
        assert!(w.cut(t0 + ms(1)));
        assert!(!w.is_connected());
        w.write(End::B, b"too late", t0 + ms(1));
        let got = drain(&mut w, t0 + ms(1));
        let (resets, bytes): (Vec<_>, Vec<_>) = got.iter().partition(|g| g.1 == Arrival::Reset);
        assert_eq!(resets.len(), 2);
        assert!(bytes
            .iter()
            .all(|b| b.0 == End::B && b.2.len() < 40 && b.2.iter().all(|x| *x == 7)));
        assert!(!w.is_open(End::A) && !w.is_open(End::B));
        assert_eq!(w.next_arrival(), None);
        assert!(!w.cut(t0 + ms(2)), "nothing left to cut");
    }

    #[test]
    fn half_open_direction_goes_silent_while_the_other_works() {
        let t0 = Instant::now();
        let mut w = wire(WireConfig::ideal(), t0);
        w.write(End::A, b"before", t0);
        w.half_open(End::A);
        w.write(End::A, b"after", t0);
        w.write(End::B, b"reply", t0);
        assert_eq!(
            drain(&mut w, t0),
            vec![
                (End::B, Arrival::Bytes, b"before".to_vec()),
                (End::A, Arrival::Bytes, b"reply".to_vec())
            ]
        );
        w.close(End::A, t0);
        assert_eq!(
            drain(&mut w, t0),
            vec![],
            "no FIN through the silent direction"
        );
        w.write(End::B, b"into the void", t0);
        assert_eq!(drain(&mut w, t0), vec![], "A closed its socket");
        assert!(w.is_open(End::B) && w.is_connected());
    }

    #[test]
    fn close_sends_fin_behind_the_bytes_and_ends_the_connection() {
        let t0 = Instant::now();
        let mut w = wire(WireConfig::ideal(), t0);
        w.write(End::B, b"last words", t0);
        w.close(End::B, t0);
        w.write(End::B, b"ignored", t0);
        let got = drain(&mut w, t0);
        assert_eq!(got[0], (End::A, Arrival::Bytes, b"last words".to_vec()));
        assert_eq!(got[1], (End::A, Arrival::Fin, vec![]));
        assert_eq!(got.len(), 2);
        assert!(!w.is_connected());
    }

    #[test]
    fn outage_refuses_connections_until_it_ends_and_new_connections_start_empty() {
        let t0 = Instant::now();
        let mut w = wire(
            WireConfig {
                latency: ms(10),
                ..WireConfig::ideal()
            },
            t0,
        );
        w.write(End::A, b"lost", t0);
        w.outage(t0, t0 + ms(100));
        assert!(!w.connect(t0 + ms(99)));
        assert_eq!(w.outage_until(t0 + ms(99)), Some(t0 + ms(100)));
        assert!(w.connect(t0 + ms(100)));
        assert_eq!(w.next_arrival(), None, "nothing of the old connection");
        assert!(w.is_open(End::A) && w.is_open(End::B));
    }
}
