//! Two link endpoints joined directly: what one writes the other reads at once,
//! whole, nothing lost. For step-by-step tests of the link and for benchmarks; a
//! connection with delays and faults is a [`Wire`](super::Wire).

use std::time::Instant;

use crate::link::{ConfigError, Endpoint, Event, LinkConfig, LinkError};

/// Endpoints `a` and `b` at the instant `now`, with the events each emitted once
/// [`collect`](Self::collect)ed. Moving bytes ([`exchange`](Self::exchange)) does not
/// touch the events and does not allocate.
pub struct Pair {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub ev_a: Vec<Event>,
    pub ev_b: Vec<Event>,
    buf: Vec<u8>,
}

/// What one endpoint wrote goes to the other, if that one holds a connection (bytes
/// for a closed socket are lost).
fn transfer(
    from: &mut Endpoint,
    to: &mut Endpoint,
    buf: &mut Vec<u8>,
    now: Instant,
) -> (bool, Result<(), LinkError>) {
    buf.clear();
    if from.poll_transmit(now, buf) == 0 {
        return (false, Ok(()));
    }
    if !to.is_connected() {
        return (true, Ok(()));
    }
    (true, to.handle_input(buf, now))
}

impl Pair {
    /// Two fresh endpoints, not connected.
    pub fn new(a: LinkConfig, b: LinkConfig, now: Instant) -> Result<Self, ConfigError> {
        Ok(Pair {
            now,
            a: Endpoint::new(a, now)?,
            b: Endpoint::new(b, now)?,
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// A connection for both (`a` dials), then [`drive`](Self::drive) (the handshake).
    pub fn connect(&mut self) {
        self.a.connected(self.now, crate::link::Side::Dialer);
        self.b.connected(self.now, crate::link::Side::Listener);
        self.drive();
    }

    /// Both are told the connection is lost.
    pub fn lose(&mut self) {
        self.a.connection_lost(self.now);
        self.b.connection_lost(self.now);
        self.collect();
    }

    /// Move every pending event into `ev_a` / `ev_b`.
    pub fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.ev_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.ev_b.push(e);
        }
    }

    /// One transmission each way, a to b first. Returns whether any bytes moved; on
    /// an input error both directions were still served and the first error is
    /// returned (that connection is then over).
    pub fn exchange(&mut self) -> Result<bool, LinkError> {
        let (ab, r1) = transfer(&mut self.a, &mut self.b, &mut self.buf, self.now);
        let (ba, r2) = transfer(&mut self.b, &mut self.a, &mut self.buf, self.now);
        r1.and(r2).map(|()| ab || ba)
    }

    /// Exchange and collect until neither side has anything to send.
    ///
    /// # Panics
    /// If the pair is still busy after 10,000 rounds (a livelock in the endpoints).
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let moved = self.exchange().unwrap_or(true);
            self.collect();
            if !moved {
                return;
            }
        }
        panic!("pair did not go idle");
    }
}
