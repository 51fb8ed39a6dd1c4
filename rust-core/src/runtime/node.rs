//! A node: one event-loop thread that drives the link endpoints (and, on a buffer
//! server, the CIMD2 session toward the SMSC), and the [`Node`] handle through which
//! application threads send, acknowledge and read events.
//!
//! Hand-off is lock-free: each link has an SPSC queue of messages to send, one SPSC
//! queue carries commands (acknowledgements, shutdown), one carries events out. The
//! handle decides "full" itself, from the sending ring's Last Processed cursor that
//! the loop publishes, so `send` answers at once with the sequence number the
//! message will have: seqs are given out in the same order on both sides.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use super::api::*;
use super::conn::{Conn, ReadOutcome, READ_BUDGET};
use super::log::Level;
use super::notify::Notifier;
use super::smsc::SmscBridge;
use super::Backoff;
use crate::link::{Endpoint, Event as LinkEvent};
use crate::message::Message;
use crate::ring::Outcome;
use crate::spsc::{self, Consumer, Producer};

const WAKER: Token = Token(usize::MAX - 1);
pub(super) const SMSC: Token = Token(usize::MAX - 2);
/// Tokens of listeners and live connections: link id * 2 (+1 for the connection).
const fn listener_token(link: LinkId) -> Token {
    Token(link * 2)
}
const fn conn_token(link: LinkId) -> Token {
    Token(link * 2 + 1)
}
/// Connections waiting for their link's current connection to end.
const PENDING_BASE: usize = 1 << 40;
/// Accepted connections waiting per link; more are refused at once.
const MAX_PENDING: usize = 4;
/// Output of a busy link is gathered for this long before it is written.
const WRITE_COALESCE: Duration = Duration::from_micros(500);
/// Stop asking the endpoint for more bytes while this much is unwritten.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

enum Command {
    Ack {
        link: LinkId,
        seq: u64,
        outcome: Outcome,
    },
    Shutdown {
        flush: Duration,
    },
}

/// Per-link state the handle shares with the loop.
struct LinkShared {
    name: String,
    capacity: usize,
    /// The handle's side of the send queue and the next seq it will give out.
    producer: Mutex<(Producer<Message>, u64)>,
    /// Published by the loop: the sending ring's Last Processed cursor.
    last_processed: AtomicU64,
    local_addr: Option<SocketAddr>,
}

impl LinkShared {
    /// Messages the link takes now, given the next seq the handle will give out:
    /// capacity less those given out and not yet Processed.
    fn room(&self, next_seq: u64) -> usize {
        let in_flight = next_seq - 1 - self.last_processed.load(Ordering::Acquire);
        (self.capacity as u64).saturating_sub(in_flight) as usize
    }

    fn full(&self, link: LinkId) -> NodeError {
        NodeError::Full {
            link,
            capacity: self.capacity,
        }
    }
}

struct Shared {
    links: Vec<LinkShared>,
    routes: Vec<(String, LinkId)>,
    default_route: Option<LinkId>,
    commands: Mutex<Producer<Command>>,
    events: Mutex<Consumer<NodeEvent>>,
    notifier: Notifier,
    waker: Waker,
    /// Set by the loop just before it blocks in `poll`: only then is a wake needed.
    loop_idle: AtomicBool,
    stopped: AtomicBool,
    stats: Mutex<(Vec<LinkStats>, Option<SmscStats>)>,
    /// Senders blocked in `wait_for_room`; the loop signals `room_changed` when a
    /// Processed cursor moves (or the node stops) and someone waits.
    room_waiters: std::sync::atomic::AtomicUsize,
    room_lock: Mutex<()>,
    room_changed: parking_lot::Condvar,
}

impl Shared {
    fn wake(&self) {
        if self.loop_idle.swap(false, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop after a Processed cursor moved or the node stopped. The
    /// lock orders this after a waiter's last look at the cursor: no lost wake-up.
    fn signal_room(&self) {
        if self.room_waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.room_lock.lock();
            self.room_changed.notify_all();
        }
    }
}

/// The application's handle on a running node. `Send + Sync`: any thread may call
/// any method; calls from several threads are serialised per queue.
pub struct Node {
    shared: Arc<Shared>,
    /// Taken by the first `close`; behind a lock so that `close` needs only `&self`
    /// (bindings close a node that other threads may be waiting on).
    thread: Mutex<Option<JoinHandle<ShutdownReport>>>,
}

impl Node {
    /// Bind listeners, start the event-loop thread, begin dialling.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if config.links.is_empty() {
            return Err(NodeError::Config("a node needs at least one link".into()));
        }
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let now = Instant::now();

        let mut loop_links = Vec::new();
        let mut shared_links = Vec::new();
        let mut routes = Vec::new();
        let mut default_route = None;
        let mut ack_room = 64;
        for (id, spec) in config.links.iter().enumerate() {
            let endpoint = Endpoint::new(spec.config.clone(), now)
                .map_err(|e| NodeError::Config(format!("link {:?}: {e}", spec.config.name)))?;
            let capacity = spec.config.capacity;
            ack_room += capacity;
            let (producer, consumer) = spsc::channel(capacity);
            let mut listener = None;
            let mut local_addr = None;
            if let Transport::Listen(addr) = spec.transport {
                let mut l = TcpListener::bind(addr)?;
                local_addr = Some(l.local_addr()?);
                poll.registry()
                    .register(&mut l, listener_token(id), Interest::READABLE)?;
                listener = Some(l);
            }
            for p in &spec.prefixes {
                routes.push((p.clone(), id));
            }
            if spec.default_route && default_route.is_none() {
                default_route = Some(id);
            }
            let first_seq = endpoint.tx_cursors().last_retrieved + 1;
            shared_links.push(LinkShared {
                name: spec.config.name.clone(),
                capacity,
                producer: Mutex::new((producer, first_seq)),
                last_processed: AtomicU64::new(endpoint.tx_cursors().last_processed),
                local_addr,
            });
            loop_links.push(LinkDriver {
                endpoint,
                outgoing: consumer,
                held: None,
                transport: spec.transport.clone(),
                listener,
                conn: None,
                pending: Vec::new(),
                reconnect_at: matches!(spec.transport, Transport::Dial(_)).then_some(now),
                backoff: Backoff::new(
                    config.reconnect_min,
                    config.reconnect_max,
                    config.seed.wrapping_add(id as u64 * 7919),
                ),
                inbuf: Vec::with_capacity(64 * 1024),
                peer: None,
                connects: 0,
                refused: 0,
                local_addr,
                token_id: id,
                conn_addr: None,
                accept_retry: false,
                last_write: None,
                write_due: None,
                read_more: false,
            });
        }
        // Longest prefix first, so the first match wins.
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        if default_route.is_none() && routes.is_empty() {
            default_route = Some(0);
        }

        let (cmd_tx, cmd_rx) = spsc::channel(ack_room);
        let (ev_tx, ev_rx) = spsc::channel(config.event_capacity.max(16));
        let shared = Arc::new(Shared {
            links: shared_links,
            routes,
            default_route,
            commands: Mutex::new(cmd_tx),
            events: Mutex::new(ev_rx),
            notifier: Notifier::new()?,
            waker,
            loop_idle: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            stats: Mutex::new((Vec::new(), None)),
            room_waiters: std::sync::atomic::AtomicUsize::new(0),
            room_lock: Mutex::new(()),
            room_changed: parking_lot::Condvar::new(),
        });
        let smsc = config.smsc.clone().map(|spec| {
            SmscBridge::new(
                spec,
                Backoff::new(
                    config.reconnect_min,
                    config.reconnect_max,
                    config.seed ^ 0xc1d2,
                ),
                now,
            )
        });
        let mut event_loop = EventLoop {
            poll,
            shared: shared.clone(),
            links: loop_links,
            smsc,
            commands: cmd_rx,
            events: ev_tx,
            overflow: std::collections::VecDeque::new(),
            events_dropped: 0,
            wake_app: false,
            next_pending_token: PENDING_BASE,
            shutdown_deadline: None,
        };
        event_loop.publish_stats();
        let thread = std::thread::Builder::new()
            .name("smslink-node".into())
            .spawn(move || event_loop.run())?;
        Ok(Node {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The link a recipient number routes to (longest prefix, else the default).
    pub fn route(&self, recipient: &str) -> Option<LinkId> {
        self.shared
            .routes
            .iter()
            .find(|(p, _)| recipient.starts_with(p.as_str()))
            .map(|(_, id)| *id)
            .or(self.shared.default_route)
    }

    pub fn link_id(&self, name: &str) -> Result<LinkId, NodeError> {
        self.shared
            .links
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| NodeError::UnknownLinkName(name.to_owned()))
    }

    pub fn link_count(&self) -> usize {
        self.shared.links.len()
    }

    pub fn link_name(&self, link: LinkId) -> Option<&str> {
        self.shared.links.get(link).map(|l| l.name.as_str())
    }

    /// Address a listening link is bound to.
    pub fn local_addr(&self, link: LinkId) -> Option<SocketAddr> {
        self.shared.links.get(link).and_then(|l| l.local_addr)
    }

    /// Route by recipient and hand the message over. Returns at once.
    pub fn send(&self, message: &Message) -> Result<Receipt, NodeError> {
        let link = self
            .route(message.to.as_str())
            .ok_or_else(|| NodeError::NoRoute(message.to.to_string()))?;
        self.send_on(link, message)
    }

    /// Hand a message to a given link. Returns at once: its seq, or `Full`.
    pub fn send_on(&self, link: LinkId, message: &Message) -> Result<Receipt, NodeError> {
        let shared = &*self.shared;
        let l = shared.links.get(link).ok_or(NodeError::UnknownLink(link))?;
        if shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::Stopped);
        }
        let seq = {
            let mut guard = l.producer.lock();
            let (producer, next_seq) = &mut *guard;
            // The queue is as large as the ring, so it has room whenever the ring has.
            if l.room(*next_seq) == 0 || producer.push(message.clone()).is_err() {
                return Err(l.full(link));
            }
            let seq = *next_seq;
            *next_seq += 1;
            seq
        };
        shared.wake();
        Ok(Receipt { link, seq })
    }

    /// Send many messages to one link; stops at the first refusal. Returns how
    /// many were taken (their seqs follow each other, starting at the first receipt).
    pub fn send_batch(
        &self,
        link: LinkId,
        messages: &[Message],
    ) -> Result<(usize, Option<u64>), NodeError> {
        let shared = &*self.shared;
        let l = shared.links.get(link).ok_or(NodeError::UnknownLink(link))?;
        if shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::Stopped);
        }
        let (taken, first) = {
            let mut guard = l.producer.lock();
            let (producer, next_seq) = &mut *guard;
            let want = l.room(*next_seq).min(messages.len());
            let mut iter = messages[..want].iter().cloned();
            let taken = producer.push_from(&mut iter);
            let first = (taken > 0).then_some(*next_seq);
            *next_seq += taken as u64;
            (taken, first)
        };
        if taken > 0 {
            shared.wake();
        }
        Ok((taken, first))
    }

    /// How many more messages `link` takes now (its capacity less those not yet
    /// Processed, counting ones still queued for the loop).
    pub fn free_slots(&self, link: LinkId) -> Result<usize, NodeError> {
        let l = self
            .shared
            .links
            .get(link)
            .ok_or(NodeError::UnknownLink(link))?;
        let next_seq = l.producer.lock().1;
        Ok(l.room(next_seq))
    }

    /// Block until `link` takes at least `min_room` messages (capped at its
    /// capacity), the node stops, or `timeout` passes (`None`: no limit). Returns the
    /// room there is (which may be less than asked on timeout). Woken by the loop when
    /// the link's Processed cursor moves: no polling, no sleeping.
    pub fn wait_for_room(
        &self,
        link: LinkId,
        min_room: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, NodeError> {
        let shared = &*self.shared;
        let l = shared.links.get(link).ok_or(NodeError::UnknownLink(link))?;
        let want = min_room.clamp(1, l.capacity.max(1));
        let deadline = timeout.map(|t| Instant::now() + t);
        let room = || l.room(l.producer.lock().1);
        shared.room_waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = shared.room_lock.lock();
        let result = loop {
            let now_room = room();
            if now_room >= want {
                break Ok(now_room);
            }
            if shared.stopped.load(Ordering::Acquire) {
                break Err(NodeError::Stopped);
            }
            match deadline {
                Some(d) => {
                    if shared.room_changed.wait_until(&mut guard, d).timed_out() {
                        break Ok(room());
                    }
                }
                None => shared.room_changed.wait(&mut guard),
            }
        };
        drop(guard);
        shared.room_waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// The application has safely handed on a received message: tell the peer
    /// (Processed), which frees its slot.
    pub fn ack(&self, link: LinkId, seq: u64, outcome: Outcome) -> Result<(), NodeError> {
        if link >= self.shared.links.len() {
            return Err(NodeError::UnknownLink(link));
        }
        self.command(Command::Ack { link, seq, outcome })
    }

    fn command(&self, command: Command) -> Result<(), NodeError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::Stopped);
        }
        self.shared
            .commands
            .lock()
            .push(command)
            .map_err(|_| NodeError::Busy)?;
        self.shared.wake();
        Ok(())
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<NodeEvent> {
        self.shared.events.lock().pop()
    }

    /// Wait up to `timeout` (`None`: forever) for an event.
    pub fn wait_event(&self, timeout: Option<Duration>) -> Option<NodeEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.try_event() {
                return Some(e);
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                // Whatever the loop pushed before it stopped is still there.
                return self.try_event();
            }
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left)
                }
                None => None,
            };
            self.shared.notifier.wait(left);
        }
    }

    /// Readable when events may be waiting (for select/poll/epoll/asyncio). After it
    /// turns readable, call `clear_event_fd` and then `try_event` until `None`.
    /// Do not read the descriptor yourself: `clear_event_fd` also re-arms the
    /// notification (the loop writes to the descriptor once per clear, not per event).
    pub fn event_fd(&self) -> RawFd {
        self.shared.notifier.as_raw_fd()
    }

    pub fn clear_event_fd(&self) {
        self.shared.notifier.clear();
    }

    pub fn link_stats(&self, link: LinkId) -> Option<LinkStats> {
        self.shared.stats.lock().0.get(link).cloned()
    }

    pub fn smsc_stats(&self) -> Option<SmscStats> {
        self.shared.stats.lock().1
    }

    pub fn is_running(&self) -> bool {
        !self.shared.stopped.load(Ordering::Acquire)
    }

    /// Stop taking new work, try for up to `flush` to get every sent message
    /// Processed and every answer delivered, then close and report what is left.
    pub fn shutdown(self, flush: Duration) -> ShutdownReport {
        self.close(flush)
    }

    /// `shutdown` through a shared reference: the first call stops the node and
    /// reports; later calls return an empty report at once. Threads blocked in
    /// `wait_event` return when the loop has stopped.
    pub fn close(&self, flush: Duration) -> ShutdownReport {
        let Some(thread) = self.thread.lock().take() else {
            return ShutdownReport::default();
        };
        // The command queue may be full of acks; the loop drains it every turn.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self
                .shared
                .commands
                .lock()
                .push(Command::Shutdown { flush })
                .is_ok()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::yield_now();
        }
        self.shared.loop_idle.store(true, Ordering::Release);
        self.shared.wake();
        thread.join().unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.close(Duration::ZERO);
    }
}

/// A connection accepted while the link already had one; promoted when it ends.
struct PendingConn {
    stream: TcpStream,
    since: Instant,
    token: Token,
    peer: SocketAddr,
    /// Its first bytes looked like a link HELLO: a real peer, never evicted by a flood.
    hello_seen: bool,
}

/// What the first bytes of a waiting connection say about it.
#[derive(Debug, PartialEq, Eq)]
enum Screen {
    /// Not enough bytes yet.
    Unknown,
    /// A link HELLO header.
    Hello,
    /// Something else (another protocol, garbage): refuse it now.
    Foreign,
}

/// Check the start of a stream against the HELLO header: len:u16 type=1 "SMSL" version.
fn screen_hello(head: &[u8]) -> Screen {
    use crate::link::frame::{MAGIC, MAX_BODY};
    let mut expected = [0u8; 7];
    expected[2] = 1;
    expected[3..7].copy_from_slice(&MAGIC);
    for (i, b) in head.iter().take(7).enumerate() {
        let ok = match i {
            0 | 1 => true,
            _ => *b == expected[i],
        };
        if !ok {
            return Screen::Foreign;
        }
    }
    if head.len() >= 2 && u16::from_be_bytes([head[0], head[1]]) as usize > MAX_BODY {
        return Screen::Foreign;
    }
    if head.len() >= 7 {
        Screen::Hello
    } else {
        Screen::Unknown
    }
}

pub(super) struct LinkDriver {
    pub(super) endpoint: Endpoint,
    outgoing: Consumer<Message>,
    /// A message taken off the queue that the ring refused (should not happen:
    /// the handle checks first), kept so that nothing is dropped.
    held: Option<Message>,
    transport: Transport,
    listener: Option<TcpListener>,
    conn: Option<Conn>,
    pending: Vec<PendingConn>,
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    inbuf: Vec<u8>,
    peer: Option<String>,
    connects: u64,
    refused: u64,
    local_addr: Option<SocketAddr>,
    /// Position in the node's link list (tokens derive from it).
    token_id: LinkId,
    /// When output was last written, and when held-back output is due.
    last_write: Option<Instant>,
    write_due: Option<Instant>,
    /// The last accept failed for lack of resources: try again every turn.
    accept_retry: bool,
    /// Remote address of the current (or last) connection, for log lines.
    conn_addr: Option<SocketAddr>,
    /// The last read stopped at its budget: read again without waiting for readiness
    /// (readiness is edge-triggered).
    read_more: bool,
}

struct EventLoop {
    poll: Poll,
    shared: Arc<Shared>,
    links: Vec<LinkDriver>,
    smsc: Option<SmscBridge>,
    commands: Consumer<Command>,
    events: Producer<NodeEvent>,
    /// Status and link events that did not fit the event queue (bounded: see `emit`).
    overflow: std::collections::VecDeque<NodeEvent>,
    events_dropped: u64,
    /// Events were queued (or a cursor moved) since the last wake of the application.
    wake_app: bool,
    next_pending_token: usize,
    shutdown_deadline: Option<Instant>,
}

/// Status events kept when the application does not read them fast enough; beyond
/// this they are counted and dropped (messages are never dropped: they wait in
/// the rings).
const MAX_OVERFLOW: usize = 1 << 16;

impl EventLoop {
    fn run(mut self) -> ShutdownReport {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            self.turn(now);
            if let Some(deadline) = self.shutdown_deadline {
                if now >= deadline || self.is_drained() {
                    break;
                }
            }
            // Announce idleness, then look once more so a wake cannot be lost.
            self.shared.loop_idle.store(true, Ordering::SeqCst);
            if !self.commands.is_empty() || self.links.iter().any(|l| !l.outgoing.is_empty()) {
                self.shared.loop_idle.store(false, Ordering::SeqCst);
                continue;
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    crate::slog!(Level::Error, "event=poll_failed error=\"{e}\"");
                    break;
                }
            }
            self.shared.loop_idle.store(false, Ordering::SeqCst);
            let now = Instant::now();
            for ev in events.iter() {
                self.on_ready(ev.token(), ev.is_readable(), ev.is_writable(), now);
            }
        }
        self.finish()
    }

    fn finish(mut self) -> ShutdownReport {
        let now = Instant::now();
        // The peer must get the last acknowledgements and the CLOSE; bounded so a
        // dead peer cannot hold the shutdown.
        let linger_until = now + Duration::from_millis(500);
        for link in &mut self.links {
            if let Some(conn) = link.conn.as_mut() {
                // What the endpoint still has to say while up (acknowledgements and
                // outcomes, which write coalescing may have held back) goes before
                // the CLOSE: after `close` the endpoint no longer sends them.
                for _ in 0..1024 {
                    if link.endpoint.poll_transmit(now, conn.out_buf()) == 0 {
                        break;
                    }
                }
            }
            link.endpoint.close(now);
            if let Some(conn) = link.conn.as_mut() {
                link.endpoint.poll_transmit(now, conn.out_buf());
                conn.close_gracefully(linger_until);
            }
        }
        if let Some(smsc) = self.smsc.as_mut() {
            smsc.close(now);
        }
        self.drain_link_events();
        self.publish_stats();
        self.flush_overflow();
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notifier.notify();
        self.shared.signal_room();
        let stats = self.shared.stats.lock().clone();
        ShutdownReport {
            drained: stats.0.iter().all(|l| l.tx_in_use == 0),
            links: stats.0,
            smsc: stats.1,
        }
    }

    fn is_drained(&self) -> bool {
        self.links.iter().all(|l| {
            l.endpoint.tx_ring().in_use() == 0 && l.outgoing.is_empty() && l.held.is_none()
        }) && self.smsc.as_ref().is_none_or(|s| s.is_idle())
    }

    /// One pass over everything that may have work: commands, queued sends, the
    /// SMSC bridge, timers, output, events.
    fn turn(&mut self, now: Instant) {
        self.drain_commands(now);
        for link in &mut self.links {
            link.take_outgoing();
            link.check_timers(&self.poll, now);
            // Accepting is driven by the listener's readiness; after a failed accept
            // (e.g. out of descriptors) the edge is gone, so retry each turn.
            if link.accept_retry {
                link.accept(&self.poll, now, &mut self.next_pending_token);
            }
            if link.read_more {
                link.read(&self.poll, now);
            }
        }
        if let Some(smsc) = self.smsc.as_mut() {
            smsc.turn(&self.poll, &mut self.links[0], now);
        }
        for link in &mut self.links {
            link.endpoint.handle_timeout(now);
            link.write(now);
        }
        self.drain_link_events();
        // Bridge reacts to what the link just reported (freed slots, new MT).
        if let Some(smsc) = self.smsc.as_mut() {
            smsc.turn(&self.poll, &mut self.links[0], now);
            for link in &mut self.links {
                link.write(now);
            }
            self.drain_link_events();
        }
        self.deliver_received();
        self.flush_overflow();
        self.publish_stats();
        // One wake per turn for everything queued in it (a syscall per event would
        // cost the loop more than the events themselves).
        if std::mem::take(&mut self.wake_app) {
            self.shared.notifier.notify();
        }
    }

    fn drain_commands(&mut self, now: Instant) {
        while let Some(cmd) = self.commands.pop() {
            match cmd {
                Command::Ack { link, seq, outcome } => {
                    if let Some(l) = self.links.get_mut(link) {
                        if let Err(e) = l.endpoint.mark_processed(seq, outcome) {
                            crate::slog!(
                                Level::Warn,
                                "link={} event=bad_ack seq={seq} error=\"{e}\"",
                                l.name()
                            );
                        }
                    }
                }
                Command::Shutdown { flush } => {
                    self.shared.stopped.store(true, Ordering::Release);
                    self.shared.signal_room();
                    self.shutdown_deadline = Some(now + flush);
                    if let Some(smsc) = self.smsc.as_mut() {
                        smsc.begin_shutdown();
                    }
                }
            }
        }
    }

    fn on_ready(&mut self, token: Token, readable: bool, writable: bool, now: Instant) {
        if token == WAKER {
            return;
        }
        if token == SMSC {
            if let Some(smsc) = self.smsc.as_mut() {
                smsc.on_ready(&self.poll, readable, writable, now);
            }
            return;
        }
        if token.0 >= PENDING_BASE {
            // Waiting connections are only peeked at: refuse what is not a link peer.
            for link in &mut self.links {
                if link.screen_pending(&self.poll, token) {
                    break;
                }
            }
            return;
        }
        let id = token.0 / 2;
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if token == listener_token(id) {
            link.accept(&self.poll, now, &mut self.next_pending_token);
        } else if token == conn_token(id) {
            link.on_conn_ready(&self.poll, readable, writable, now);
        }
    }

    fn drain_link_events(&mut self) {
        for id in 0..self.links.len() {
            while let Some(ev) = self.links[id].endpoint.poll_event() {
                let out = match ev {
                    LinkEvent::LinkUp { peer, .. } => {
                        let link = &mut self.links[id];
                        link.backoff.reset();
                        link.peer = Some(peer.clone());
                        crate::slog!(Level::Info, "link={} event=up peer={peer}", link.name());
                        Some(NodeEvent::LinkUp { link: id, peer })
                    }
                    LinkEvent::LinkDown { reason } => {
                        let now = Instant::now();
                        let link = &mut self.links[id];
                        let reason = format!("{reason:?}");
                        crate::slog!(
                            Level::Info,
                            "link={} event=down peer_addr={} reason={reason}",
                            link.name(),
                            link.conn_peer()
                        );
                        // The connection this event is about may already be gone and
                        // a waiting one promoted (the endpoint is then connected to
                        // it): only a still-idle endpoint's socket is closed here.
                        if !link.endpoint.is_connected() {
                            link.drop_conn(&self.poll, now);
                        }
                        Some(NodeEvent::LinkDown { link: id, reason })
                    }
                    LinkEvent::AuthFailed { reason } => {
                        crate::slog!(
                            Level::Warn,
                            "link={} event=auth_failed peer_addr={} reason=\"{reason}\"",
                            self.links[id].name(),
                            self.links[id].conn_peer()
                        );
                        None
                    }
                    // Received messages are pulled in order by `deliver_received`.
                    LinkEvent::Received { .. } => None,
                    LinkEvent::StatusChanged {
                        seq,
                        state,
                        outcome,
                        client_ref,
                    } => Some(NodeEvent::Status {
                        link: id,
                        seq,
                        client_ref,
                        state,
                        outcome,
                    }),
                };
                if let Some(ev) = out {
                    self.emit(ev);
                }
            }
            let tx = self.links[id].endpoint.tx_cursors();
            let before = self.shared.links[id]
                .last_processed
                .swap(tx.last_processed, Ordering::AcqRel);
            if before != tx.last_processed {
                // The Processed events were queued before the cursor moved: the wake
                // must come after this store, so that a sender who saw them and
                // found the ring still full looks again.
                self.wake_app = true;
                self.shared.signal_room();
            }
        }
        if let Some(smsc) = self.smsc.as_mut() {
            while let Some(ev) = smsc.poll_event() {
                if self.overflow.len() < MAX_OVERFLOW {
                    self.overflow.push_back(ev);
                } else {
                    self.events_dropped += 1;
                }
            }
        }
    }

    fn emit(&mut self, ev: NodeEvent) {
        if self.overflow.is_empty() {
            if let Err(ev) = self.events.push(ev) {
                self.overflow.push_back(ev);
            }
            self.wake_app = true;
        } else if self.overflow.len() < MAX_OVERFLOW {
            self.overflow.push_back(ev);
        } else {
            self.events_dropped += 1;
        }
    }

    fn flush_overflow(&mut self) {
        let mut pushed = false;
        while let Some(ev) = self.overflow.pop_front() {
            match self.events.push(ev) {
                Ok(()) => pushed = true,
                Err(ev) => {
                    self.overflow.push_front(ev);
                    break;
                }
            }
        }
        if pushed {
            self.wake_app = true;
        }
    }

    /// Hand received messages to the application while the event queue has room
    /// (the SMSC bridge takes link 0's itself). What stays in the ring waits there.
    fn deliver_received(&mut self) {
        let mut pushed = false;
        for id in 0..self.links.len() {
            if id == 0 && self.smsc.is_some() {
                continue;
            }
            while self.overflow.is_empty() && self.events.free_slots() > 0 {
                let Some((seq, message)) = self.links[id].endpoint.next_received() else {
                    break;
                };
                let ev = NodeEvent::Received {
                    link: id,
                    seq,
                    message: Box::new(message.clone()),
                };
                if self.events.push(ev).is_err() {
                    break;
                }
                pushed = true;
            }
        }
        if pushed {
            self.wake_app = true;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.links.iter().any(|l| l.read_more)
            || self.smsc.as_ref().is_some_and(|s| s.read_more())
        {
            return Some(Instant::now());
        }
        let mut next = self.shutdown_deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        for link in &self.links {
            if link.accept_retry {
                consider(Some(Instant::now() + Duration::from_millis(100)));
            }
            consider(link.endpoint.poll_timeout());
            consider(link.write_due);
            consider(link.reconnect_at);
            consider(
                link.pending
                    .first()
                    .map(|p| p.since + link.pending_timeout()),
            );
        }
        if let Some(smsc) = &self.smsc {
            consider(smsc.next_deadline());
        }
        if self.shutdown_deadline.is_some() {
            // While draining, look again often enough to notice completion.
            consider(Some(Instant::now() + Duration::from_millis(20)));
        }
        next
    }

    /// Runs every turn, so it updates the shared snapshot in place: no allocation
    /// once the strings are there.
    fn publish_stats(&mut self) {
        let smsc = self.smsc.as_ref().map(|s| s.stats());
        let mut guard = self.shared.stats.lock();
        let (links, shared_smsc) = &mut *guard;
        links.resize_with(self.links.len(), LinkStats::default);
        for (out, link) in links.iter_mut().zip(&self.links) {
            link.write_stats(out);
        }
        *shared_smsc = smsc;
    }
}

impl LinkDriver {
    pub(super) fn name(&self) -> &str {
        &self.endpoint.config().name
    }

    fn pending_timeout(&self) -> Duration {
        self.endpoint.config().dead_after
    }

    fn write_stats(&self, out: &mut LinkStats) {
        if out.name != self.name() {
            out.name.clear();
            out.name.push_str(self.name());
        }
        if out.peer != self.peer {
            out.peer.clone_from(&self.peer);
        }
        out.up = self.endpoint.is_up();
        out.local_addr = self.local_addr;
        out.capacity = self.endpoint.config().capacity;
        out.tx = self.endpoint.tx_cursors();
        out.rx = self.endpoint.rx_cursors();
        out.tx_in_use = self.endpoint.tx_ring().in_use();
        out.rx_in_use = self.endpoint.rx_ring().in_use();
        out.counters = self.endpoint.counters();
        out.connects = self.connects;
        out.refused_connections = self.refused;
    }

    /// Move queued sends from the handle into the ring.
    fn take_outgoing(&mut self) {
        if let Some(m) = self.held.take() {
            if self.endpoint.send(&m).is_err() {
                self.held = Some(m);
                return;
            }
        }
        while let Some(m) = self.outgoing.pop() {
            if self.endpoint.send(&m).is_err() {
                self.held = Some(m);
                return;
            }
        }
    }

    fn check_timers(&mut self, poll: &Poll, now: Instant) {
        if let (Some(at), Transport::Dial(addr)) = (self.reconnect_at, &self.transport) {
            if now >= at && self.conn.is_none() {
                self.reconnect_at = None;
                let addr = *addr;
                let adopted = TcpStream::connect(addr)
                    .is_ok_and(|stream| self.adopt(poll, stream, addr, false, now));
                if !adopted {
                    self.schedule_reconnect(now);
                }
            }
        }
        // Pending connections that waited too long are dropped.
        let timeout = self.pending_timeout();
        let name = &self.endpoint.config().name;
        let refused = &mut self.refused;
        self.pending.retain_mut(|p| {
            let keep = now < p.since + timeout;
            if !keep {
                let _ = poll.registry().deregister(&mut p.stream);
                *refused += 1;
                crate::slog!(
                    Level::Warn,
                    "link={name} event=refused peer_addr={} reason=\"waited {:?} for the current connection to end\"",
                    p.peer,
                    timeout
                );
            }
            keep
        });
    }

    /// Make `stream` the link's connection. An accepted (already `connected`)
    /// stream starts the handshake at once; a dialled one once the connect finishes.
    fn adopt(
        &mut self,
        poll: &Poll,
        mut stream: TcpStream,
        peer: SocketAddr,
        connected: bool,
        now: Instant,
    ) -> bool {
        let token = conn_token(self.token_id);
        if poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return false;
        }
        self.conn = Some(Conn::new(stream, connected));
        self.conn_addr = Some(peer);
        if connected {
            self.connects += 1;
            self.endpoint.connected(now);
        }
        true
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        if matches!(self.transport, Transport::Dial(_)) {
            self.reconnect_at = Some(now + self.backoff.next_delay());
        }
    }

    fn accept(&mut self, poll: &Poll, now: Instant, next_token: &mut usize) {
        let name = self.name().to_owned();
        loop {
            let Some(listener) = self.listener.as_mut() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conn.is_none() {
                        if self.adopt(poll, stream, peer, true, now) {
                            crate::slog!(
                                Level::Debug,
                                "link={name} event=accepted peer_addr={peer}"
                            );
                        }
                        continue;
                    }
                    if self.pending.len() >= MAX_PENDING {
                        // A flood of silent connections must not lock the real peer
                        // out: the oldest one that never said HELLO makes room.
                        if let Some(i) = self.pending.iter().position(|p| !p.hello_seen) {
                            let mut old = self.pending.remove(i);
                            let _ = poll.registry().deregister(&mut old.stream);
                            self.refused += 1;
                            crate::slog!(
                                Level::Warn,
                                "link={name} event=refused peer_addr={} reason=\"silent while {} connections waited\"",
                                old.peer,
                                MAX_PENDING
                            );
                        }
                    }
                    if self.pending.len() < MAX_PENDING {
                        let token = Token(*next_token);
                        *next_token += 1;
                        if poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                            .is_ok()
                        {
                            self.pending.push(PendingConn {
                                stream,
                                since: now,
                                token,
                                peer,
                                hello_seen: false,
                            });
                        }
                    } else {
                        self.refused += 1;
                        crate::slog!(
                            Level::Warn,
                            "link={name} event=refused peer_addr={peer} reason=\"{} connections already waiting\"",
                            MAX_PENDING
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.accept_retry = false;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The peer gave up between SYN and accept: nothing to do.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    if !self.accept_retry {
                        crate::slog!(Level::Warn, "link={name} event=accept_failed error=\"{e}\"");
                    }
                    self.accept_retry = true;
                    break;
                }
            }
        }
    }

    fn on_conn_ready(&mut self, poll: &Poll, readable: bool, writable: bool, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.connected && (writable || readable) {
            match conn.finish_connect() {
                Ok(true) => {
                    self.connects += 1;
                    self.endpoint.connected(now);
                }
                Ok(false) => return,
                Err(_) => {
                    self.drop_conn(poll, now);
                    return;
                }
            }
        }
        if readable {
            self.read(poll, now);
        }
        self.write(now);
    }

    fn read(&mut self, poll: &Poll, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        self.inbuf.clear();
        let outcome = conn.read_into(&mut self.inbuf);
        if !self.inbuf.is_empty() && self.endpoint.handle_input(&self.inbuf, now).is_err() {
            // The endpoint emitted LinkDown (and maybe queued CLOSE); the event
            // drain closes the socket after a last write.
            self.write_now(now);
            return;
        }
        match outcome {
            Ok(ReadOutcome::Open(n)) => self.read_more = n >= READ_BUDGET,
            Ok(ReadOutcome::Closed(_)) | Err(_) => {
                self.endpoint.connection_lost(now);
                self.drop_conn(poll, now);
            }
        }
    }

    /// Write soon: at once if the link wrote nothing for `WRITE_COALESCE`, else at
    /// the end of that interval. Under load this turns one small ACK or DATA write
    /// per message into one write per interval (and one wake-up of the peer), at a
    /// cost of at most that interval in latency; an idle link writes at once.
    fn write(&mut self, now: Instant) {
        if self.endpoint.is_up() {
            if let Some(last) = self.last_write {
                let due = last + WRITE_COALESCE;
                if now < due {
                    self.write_due = Some(due);
                    return;
                }
            }
        }
        self.write_now(now);
    }

    /// Let the endpoint fill the output buffer and write what the socket takes.
    fn write_now(&mut self, now: Instant) {
        self.write_due = None;
        self.last_write = Some(now);
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.connected {
            return;
        }
        loop {
            if conn.pending_output() >= OUTPUT_HIGH_WATER {
                break;
            }
            if self.endpoint.poll_transmit(now, conn.out_buf()) == 0 {
                break;
            }
        }
        if conn.flush().is_err() {
            self.endpoint.connection_lost(now);
        }
    }

    pub(super) fn conn_peer(&self) -> String {
        self.conn_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string())
    }

    /// Peek at a waiting connection that became readable; refuse it when it is not
    /// a link peer or has gone. Returns whether the token was one of this link's.
    fn screen_pending(&mut self, poll: &Poll, token: Token) -> bool {
        let Some(i) = self.pending.iter().position(|p| p.token == token) else {
            return false;
        };
        let mut head = [0u8; 7];
        let verdict = match self.pending[i].stream.peek(&mut head) {
            Ok(0) => Some("closed while waiting".to_owned()),
            Ok(n) => match screen_hello(&head[..n]) {
                Screen::Hello => {
                    self.pending[i].hello_seen = true;
                    None
                }
                Screen::Unknown => None,
                Screen::Foreign => Some(format!(
                    "not the link protocol (first bytes {:02x?})",
                    &head[..n]
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = verdict {
            let mut p = self.pending.remove(i);
            let _ = poll.registry().deregister(&mut p.stream);
            self.refused += 1;
            crate::slog!(
                Level::Warn,
                "link={} event=refused peer_addr={} reason=\"{reason}\"",
                self.name(),
                p.peer
            );
        }
        true
    }

    /// Close the current connection; promote a waiting one or plan a redial.
    pub(super) fn drop_conn(&mut self, poll: &Poll, now: Instant) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // A CLOSE frame may be queued: one last try to get it out.
        if conn.connected {
            self.endpoint.poll_transmit(now, conn.out_buf());
            let _ = conn.flush();
        }
        // The endpoint must not think it still talks over this socket (else the next
        // connection's `connected` would report a stale LinkDown). No-op when idle.
        self.endpoint.connection_lost(now);
        let _ = poll.registry().deregister(&mut conn.stream);
        self.inbuf.clear();
        self.read_more = false;
        // `conn_addr` stays: the LinkDown line for this connection is written after.
        if !self.pending.is_empty() {
            // A peer that already said HELLO goes first.
            let first = self.pending.iter().position(|p| p.hello_seen).unwrap_or(0);
            let mut p = self.pending.remove(first);
            let _ = poll.registry().deregister(&mut p.stream);
            self.adopt(poll, p.stream, p.peer, true, now);
        } else {
            self.schedule_reconnect(now);
        }
    }
}
