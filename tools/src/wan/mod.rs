//! The WAN emulator: a userspace TCP proxy with delay, jitter, bandwidth, cuts and stalls.
//!
//! It stands in for the unstable internet between a buffer server and the IM side in
//! tests, the demo and the benchmark (our kernels have no netem). Clients connect to
//! [`Wan::local_addr`]; each connection is relayed to [`WanConfig::upstream`].
//!
//! "Up" is client -> upstream, "down" is upstream -> client.
//!
//! One mio thread serves all connections: sockets are non-blocking, each direction has
//! a time-ordered queue of chunks, and the poll timeout is the next due time. Bytes are
//! never reordered or lost while a connection lives; a cut resets both sides (RST).
//!
//! Semantics worth knowing:
//! - Jitter varies each chunk's delay but a chunk is never delivered before an earlier
//!   one (due times are made monotonic).
//! - Bandwidth is a token bucket per connection and direction.
//! - A FIN (half-close) is forwarded after the data queued before it; so is a reset
//!   (RST) from either side, which then closes the whole connection.
//! - When a direction holds more than [`WanConfig::max_queue_bytes`], the emulator stops
//!   reading its source; TCP flow control then pushes back on the sender.
//! - [`Wan::stall`] freezes forwarding in both directions and keeps the sockets open.
//!   Queued data is kept (buffered, not discarded) and new data is left in the kernel
//!   (not read), so the sender sees back-pressure exactly as over a silent link. On
//!   resume, chunks whose time has passed go out at once, in order.
//! - Handle commands ([`Wan::cut_all`], [`Wan::set_outage`], ...) return once the
//!   emulator thread has applied them: a connect made afterwards sees the new mode.

mod engine;
mod rng;
mod shaper;
mod tamper;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use shaper::{Jitter, LinkParams};
pub use tamper::{TamperConfig, TamperCounts};

/// Everything the emulator needs to start.
#[derive(Debug, Clone)]
pub struct WanConfig {
    /// Where clients connect; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Where each connection is relayed to.
    pub upstream: SocketAddr,
    /// Client -> upstream shaping.
    pub up: LinkParams,
    /// Upstream -> client shaping.
    pub down: LinkParams,
    /// Cut every connection at random intervals uniform in `[min, max]`.
    pub cut_every: Option<(Duration, Duration)>,
    /// Stall all forwarding after quiet periods uniform in `[min, max]` (measured from
    /// the end of the previous stall) ...
    pub stall_every: Option<(Duration, Duration)>,
    /// ... lasting a time uniform in `[min, max]`.
    pub stall_for: (Duration, Duration),
    /// Per connection and direction: stop reading the source above this many queued bytes.
    pub max_queue_bytes: usize,
    /// Seed of every random choice (jitter, cut and stall times, faults).
    pub seed: u64,
    /// Tamper with the bytes relayed in both directions, as an on-path attacker
    /// could (`None`: a faithful relay).
    pub tamper: Option<TamperConfig>,
}

impl WanConfig {
    /// A transparent proxy on an ephemeral loopback port toward `upstream`.
    pub fn new(upstream: SocketAddr) -> Self {
        let clear = LinkParams {
            delay: Duration::ZERO,
            jitter: Jitter::None,
            bandwidth: None,
            burst: 0,
        };
        WanConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            up: clear,
            down: clear,
            cut_every: None,
            stall_every: None,
            stall_for: (Duration::from_secs(1), Duration::from_secs(1)),
            max_queue_bytes: 1 << 20,
            seed: 0,
            tamper: None,
        }
    }

    /// The same one-way delay in both directions.
    pub fn with_delay(mut self, one_way: Duration) -> Self {
        self.up.delay = one_way;
        self.down.delay = one_way;
        self
    }

    /// The same jitter in both directions.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.up.jitter = jitter;
        self.down.jitter = jitter;
        self
    }

    /// The same bandwidth limit (bytes per second) in both directions.
    pub fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.up.bandwidth = Some(bytes_per_sec);
        self.down.bandwidth = Some(bytes_per_sec);
        self
    }
}

/// How the emulator treats connections during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Normal service.
    None,
    /// Existing connections are cut; new ones are accepted and reset at once
    /// (the client sees ECONNRESET), as when the far end is down.
    Refuse,
    /// Existing connections are cut; new ones are accepted but neither read nor
    /// forwarded (no upstream connection is made), as when packets vanish. When the
    /// outage ends they proceed, like a TCP handshake retried after a route returns.
    Hang,
}

/// Why a connection was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// [`Wan::cut_all`].
    Command,
    /// [`WanConfig::cut_every`].
    Scheduled,
    /// An outage began.
    Outage,
    /// The emulator stopped.
    Stop,
}

/// Something the emulator did, reported to the `on_event` callback of
/// [`Wan::start_with_events`] (on the emulator thread: keep it quick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WanEvent {
    /// A client connected.
    Accepted { id: u64, peer: SocketAddr },
    /// The relay to upstream is established.
    UpstreamConnected { id: u64 },
    /// A connection ended on its own: both sides closed, or a side failed.
    Closed { id: u64, reason: String },
    /// The emulator reset a connection (both sides get RST).
    Cut { id: u64, reason: CutReason },
    /// A connection was accepted and reset because of [`Outage::Refuse`].
    Refused { peer: SocketAddr },
    /// A connection was accepted and held because of [`Outage::Hang`].
    Held { id: u64, peer: SocketAddr },
    /// Forwarding stopped (`true`) or resumed (`false`).
    Stall(bool),
    /// The outage mode changed.
    Outage(Outage),
    /// The one-way delays changed.
    Delay { up: Duration, down: Duration },
    /// Accepting failed (e.g. out of file descriptors); the listener keeps going.
    AcceptError(String),
}

impl fmt::Display for WanEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WanEvent::Accepted { id, peer } => write!(f, "conn {id}: accepted from {peer}"),
            WanEvent::UpstreamConnected { id } => write!(f, "conn {id}: upstream connected"),
            WanEvent::Closed { id, reason } => write!(f, "conn {id}: closed ({reason})"),
            WanEvent::Cut { id, reason } => write!(f, "conn {id}: cut ({reason:?})"),
            WanEvent::Refused { peer } => write!(f, "refused {peer} (outage)"),
            WanEvent::Held { id, peer } => write!(f, "conn {id}: held from {peer} (outage)"),
            WanEvent::Stall(true) => write!(f, "stall: forwarding stopped"),
            WanEvent::Stall(false) => write!(f, "stall: forwarding resumed"),
            WanEvent::Outage(o) => write!(f, "outage: {o:?}"),
            WanEvent::Delay { up, down } => write!(f, "delay: up {up:?} down {down:?}"),
            WanEvent::AcceptError(e) => write!(f, "accept error: {e}"),
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WanStats {
    /// Client connections accepted (including refused and held ones).
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections reset by the emulator (cuts, outages, stop).
    pub cuts: u64,
    /// Connections refused during [`Outage::Refuse`].
    pub refused: u64,
    /// Bytes delivered to upstream.
    pub bytes_up: u64,
    /// Bytes delivered to clients.
    pub bytes_down: u64,
    /// Bytes queued now, client -> upstream, all connections.
    pub queued_up: u64,
    /// Bytes queued now, upstream -> client, all connections.
    pub queued_down: u64,
    /// Faults applied by the tampering mode.
    pub tampered: TamperCounts,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    cuts: AtomicU64,
    refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    queued_up: AtomicU64,
    queued_down: AtomicU64,
}

#[derive(Debug)]
enum Command {
    CutAll,
    Stall(bool),
    Outage(Outage),
    SetDelay(Duration, Duration),
    SetBandwidth(Option<u64>, Option<u64>),
    SetTamper(Option<TamperConfig>),
    Stop,
}

#[derive(Default)]
struct CommandQueue {
    pending: Vec<Command>,
    /// Commands ever queued; the engine reports how many it has applied.
    sent: u64,
}

struct Shared {
    commands: parking_lot::Mutex<CommandQueue>,
    applied: parking_lot::Mutex<u64>,
    applied_changed: parking_lot::Condvar,
    counters: Counters,
    tamper_counts: parking_lot::Mutex<TamperCounts>,
}

impl Shared {
    /// Called by the engine once every command counted in `sent` has taken effect.
    fn mark_applied(&self, sent: u64) {
        *self.applied.lock() = sent;
        self.applied_changed.notify_all();
    }
}

/// A running emulator. Dropping it stops it.
pub struct Wan {
    shared: Arc<Shared>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl Wan {
    /// Bind the listener and start the emulator thread.
    pub fn start(config: WanConfig) -> io::Result<Wan> {
        Self::start_with_events(config, |_| {})
    }

    /// As [`Wan::start`], calling `on_event` (on the emulator thread) for each event.
    pub fn start_with_events<F>(config: WanConfig, on_event: F) -> io::Result<Wan>
    where
        F: FnMut(&WanEvent) + Send + 'static,
    {
        let std_listener = TcpListener::bind(config.listen)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = mio::net::TcpListener::from_std(std_listener);
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), engine::WAKER)?);
        let shared = Arc::new(Shared {
            commands: parking_lot::Mutex::new(CommandQueue::default()),
            applied: parking_lot::Mutex::new(0),
            applied_changed: parking_lot::Condvar::new(),
            counters: Counters::default(),
            tamper_counts: parking_lot::Mutex::new(TamperCounts::default()),
        });
        let engine = engine::Engine::new(config, poll, listener, Arc::clone(&shared), on_event)?;
        let thread = std::thread::Builder::new()
            .name("smslink-wan".into())
            .spawn(move || engine.run())?;
        Ok(Wan {
            shared,
            waker,
            thread: Some(thread),
            local_addr,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    // The commands below return once the emulator thread has applied them.

    /// Reset every connection now: both the client and upstream get RST.
    pub fn cut_all(&self) {
        self.send(Command::CutAll);
    }

    /// Stop (`true`) or resume (`false`) forwarding in both directions, keeping every
    /// socket open: a half-open link. See the module docs for what happens to data.
    pub fn stall(&self, stalled: bool) {
        self.send(Command::Stall(stalled));
    }

    /// Change the outage mode; entering `Refuse` or `Hang` cuts existing connections.
    pub fn set_outage(&self, outage: Outage) {
        self.send(Command::Outage(outage));
    }

    /// Change the one-way delays; applies to data read from now on (order is kept).
    pub fn set_delay(&self, up: Duration, down: Duration) {
        self.send(Command::SetDelay(up, down));
    }

    /// Change the bandwidth limits in bytes per second (`None`: unlimited).
    pub fn set_bandwidth(&self, up: Option<u64>, down: Option<u64>) {
        self.send(Command::SetBandwidth(up, down));
    }

    /// Start (`Some`) or stop (`None`) tampering with the bytes relayed from now on.
    pub fn set_tamper(&self, tamper: Option<TamperConfig>) {
        self.send(Command::SetTamper(tamper));
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WanStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WanStats {
            connections: get(&c.connections),
            active: get(&c.active),
            cuts: get(&c.cuts),
            refused: get(&c.refused),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
            queued_up: get(&c.queued_up),
            queued_down: get(&c.queued_down),
            tampered: *self.shared.tamper_counts.lock(),
        }
    }

    /// Stop the emulator: close the listener, reset every connection, end the thread.
    /// Returns once the thread has ended. Calling it again does nothing.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.push(Command::Stop);
            // A panic on the emulator thread has already been reported by the runtime.
            let _ = thread.join();
        }
    }

    /// Whether the emulator thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Queue a command and return once the emulator thread has applied it, so that a
    /// caller's next step (a connect, a write) already sees its effect.
    fn send(&self, command: Command) {
        let ticket = self.push(command);
        let mut applied = self.shared.applied.lock();
        while *applied < ticket && self.is_running() {
            // Timed so that a dead emulator thread cannot block the caller for ever.
            self.shared
                .applied_changed
                .wait_for(&mut applied, Duration::from_millis(50));
        }
    }

    fn push(&self, command: Command) -> u64 {
        let ticket = {
            let mut queue = self.shared.commands.lock();
            queue.pending.push(command);
            queue.sent += 1;
            queue.sent
        };
        // Fails only if the poll is gone, i.e. the thread has ended: nothing to tell.
        let _ = self.waker.wake();
        ticket
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Wan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wan")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}
