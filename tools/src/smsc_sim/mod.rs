//! The CIMD2 SMSC simulator behind `smslink smsc-sim`.
//!
//! One thread runs a mio event loop over a listening socket and any number of client
//! connections; each connection is a sans-IO [`ServerSession`](smslink::cimd2::session::ServerSession)
//! and timers come from the sessions' deadlines. Tests, the demo and benchmarks start
//! it in-process with [`SmscSim::start`]; the CLI is a thin wrapper.

mod event_loop;
mod record;
mod time;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use smslink::message::Message;

pub use time::cimd2_timestamp;

/// Accepted submits kept for [`SmscSim::accepted`]; later ones are only counted.
pub const MAX_KEPT_SUBMITS: usize = 1 << 20;

/// How the simulated SMSC behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port (see [`SmscSim::local_addr`]).
    pub listen: SocketAddr,
    pub user: String,
    pub password: String,
    /// Time between receiving a submit and answering it.
    pub processing_delay: Duration,
    /// Mobile-originated messages per second sent to each logged-in client (0 = none).
    pub mo_rate: f64,
    /// How many MO messages each client gets (0 = no limit while `mo_rate` > 0).
    pub mo_count: u64,
    pub mo_from: String,
    pub mo_to: String,
    /// MO text; `{n}` is replaced by the message's number (1, 2, ...), `{t}` by the
    /// send time in microseconds since the Unix epoch.
    pub mo_text: String,
    /// Append one JSON line per accepted submit to this file: `seq`, `from`, `to`,
    /// `timestamp` and `text` (or `hex` for a binary payload).
    pub record: Option<PathBuf>,
    /// Cut each connection when its Nth packet arrives (that packet is lost).
    pub drop_after: Option<u64>,
    /// Fraction of submits answered with NACK instead of an answer.
    pub nack_fraction: f64,
    /// Fraction of submits rejected with `reject_code`.
    pub reject_fraction: f64,
    /// Error code of rejected submits (300-range).
    pub reject_code: u32,
    /// Extra delay added to the answer of a `late_fraction` of submits.
    pub late: Duration,
    pub late_fraction: f64,
    /// Seed of the fault-injection random numbers (runs are repeatable).
    pub seed: u64,
    /// How long the SMSC waits for 70/73 before retransmitting a deliver.
    pub response_timeout: Duration,
    pub max_retries: u32,
    /// Log connections, faults and protocol violations on stderr.
    pub log: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9971)),
            user: "smslink".into(),
            password: "secret".into(),
            processing_delay: Duration::ZERO,
            mo_rate: 0.0,
            mo_count: 0,
            mo_from: "4670000001".into(),
            mo_to: "12345".into(),
            mo_text: "mo #{n}".into(),
            record: None,
            drop_after: None,
            nack_fraction: 0.0,
            reject_fraction: 0.0,
            reject_code: 300,
            late: Duration::ZERO,
            late_fraction: 0.0,
            seed: 1,
            response_timeout: Duration::from_secs(10),
            max_retries: 2,
            log: true,
        }
    }
}

/// What the simulator has seen and done so far, over all connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections: u64,
    pub disconnections: u64,
    pub logins: u64,
    pub login_failures: u64,
    pub submits_received: u64,
    pub submits_accepted: u64,
    pub submits_rejected: u64,
    pub submits_nacked: u64,
    pub mo_sent: u64,
    pub mo_acked: u64,
    pub mo_rejected: u64,
    pub mo_failed: u64,
    pub reports_sent: u64,
    pub reports_acked: u64,
    pub violations: u64,
    /// Connections cut by `drop_after`.
    pub drops: u64,
}

/// Counters behind a lock, with a condition variable so tests can wait for a state;
/// and what tests hand in (MO to deliver, reject rules) or read back (submits).
#[derive(Default)]
pub(crate) struct Shared {
    pub counters: Mutex<Counters>,
    pub changed: Condvar,
    /// MO messages from `inject_mo`, delivered in order to whichever logged-in client
    /// can take one next.
    pub injected: Mutex<VecDeque<Message>>,
    /// Accepted submits in the order they were accepted (at most `MAX_KEPT_SUBMITS`).
    pub accepted: Mutex<Vec<Message>>,
    /// Recipient prefix -> error code: matching submits are rejected with it.
    pub reject_rules: Mutex<Vec<(String, u32)>>,
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock());
        self.changed.notify_all();
    }
}

/// A running simulator. Dropping it stops it.
pub struct SmscSim {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SmscSim {
    /// Bind, then run the event loop on its own thread.
    pub fn start(config: SimConfig) -> io::Result<SmscSim> {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let lp = event_loop::EventLoop::bind(config, shared.clone(), stop.clone())?;
        let local_addr = lp.local_addr();
        let waker = lp.waker();
        let thread = std::thread::Builder::new()
            .name("smsc-sim".into())
            .spawn(move || lp.run())?;
        Ok(SmscSim {
            local_addr,
            shared,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counters(&self) -> Counters {
        *self.shared.counters.lock()
    }

    /// Block until `done(counters)` holds or `timeout` passes; returns the last state
    /// and whether the condition was met.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Counters) -> bool,
    ) -> (Counters, bool) {
        let deadline = Instant::now() + timeout;
        let mut counters = self.shared.counters.lock();
        loop {
            if done(&counters) {
                return (*counters, true);
            }
            if self
                .shared
                .changed
                .wait_until(&mut counters, deadline)
                .timed_out()
            {
                let ok = done(&counters);
                return (*counters, ok);
            }
        }
    }

    /// Queue a mobile-originated message for delivery to a logged-in client. Injected
    /// messages go out in order, one at a time, before any `mo_rate` traffic; one
    /// whose deliver fails (no answer, connection lost) is delivered again later, one
    /// the client rejects is not.
    pub fn inject_mo(&self, message: &Message) -> io::Result<()> {
        self.shared.injected.lock().push_back(message.clone());
        self.waker.wake()
    }

    /// Injected MO messages not yet acknowledged by a client (queued or in flight).
    pub fn injected_pending(&self) -> usize {
        self.shared.injected.lock().len()
    }

    /// Submits accepted so far, in order (the first `MAX_KEPT_SUBMITS` of them).
    pub fn accepted(&self) -> Vec<Message> {
        self.shared.accepted.lock().clone()
    }

    /// Reject every submit to a recipient starting with `prefix` with `code`
    /// (the longest matching prefix decides; it wins over `reject_fraction`).
    pub fn reject_recipients(&self, prefix: &str, code: u32) {
        let mut rules = self.shared.reject_rules.lock();
        rules.retain(|(p, _)| p != prefix);
        rules.push((prefix.to_owned(), code));
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
    }

    /// Drop every rule set by `reject_recipients`.
    pub fn clear_reject_rules(&self) {
        self.shared.reject_rules.lock().clear();
    }

    /// Block until the event loop ends by itself (an I/O error) — the CLI's main loop.
    pub fn join(mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("smsc-sim thread panicked"))),
            None => Ok(()),
        }
    }

    /// Stop the event loop, close every connection and wait for the thread.
    pub fn stop(mut self) -> io::Result<Counters> {
        self.shutdown()?;
        Ok(self.counters())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.waker.wake()?;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("smsc-sim thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for SmscSim {
    fn drop(&mut self) {
        // Errors here have nowhere to go; `stop` reports them.
        let _ = self.shutdown();
    }
}
