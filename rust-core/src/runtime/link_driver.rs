//! One link's connections: dial or listen, screen and queue waiting connections,
//! move bytes between the socket and the sans-IO [`Endpoint`], and, on a buffer
//! server, the [`SmscDriver`] that joins the link to its SMSC.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};

use super::api::{LinkStats, Transport};
use super::conn::{Conn, Established, ReadError, ReadOutcome, READ_BUDGET};
use super::log::Level;
use super::metrics::LatencyHistogram;
use super::smsc_driver::SmscDriver;
use super::spsc::Consumer;
use super::tls::TlsContext;
use super::Backoff;
use crate::link::{Endpoint, Side};
use crate::message::Message;
use crate::ring::SlotState;

/// Accepted connections waiting per link; more are refused at once.
const MAX_PENDING: usize = 4;
/// Output of a busy link is gathered for this long before it is written.
const WRITE_COALESCE: Duration = Duration::from_micros(500);
/// Stop asking the endpoint for more bytes while this much is unwritten.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Who is at the local end of a link.
pub(super) enum Role {
    /// The application, through the node handle: it sends, and it receives the
    /// peer's messages as events.
    Application,
    /// A buffer server's SMSC: the bridge feeds the link and takes its messages.
    BufferServer(Box<SmscDriver>),
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

/// Check the start of a stream against the HELLO header: len:u16 type=1 "SMSL"
/// version; on a TLS link against a TLS handshake record (type 22, version 3.x).
fn screen_hello(head: &[u8], tls: bool) -> Screen {
    use crate::link::frame::{MAGIC, MAX_BODY};
    if tls {
        let ok = head.iter().take(3).enumerate().all(|(i, b)| match i {
            0 => *b == 22,
            1 => *b == 3,
            _ => *b <= 4,
        });
        return match (ok, head.len() >= 3) {
            (false, _) => Screen::Foreign,
            (true, true) => Screen::Hello,
            (true, false) => Screen::Unknown,
        };
    }
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
    pub(super) role: Role,
    pub(super) outgoing: Consumer<Message>,
    /// A message taken off the queue that the ring refused (should not happen:
    /// the handle checks first), kept so that nothing is dropped.
    held: Option<Message>,
    transport: Transport,
    /// TLS under the link (`None`: plaintext, as the operator asked).
    tls: Option<TlsContext>,
    listener: Option<TcpListener>,
    conn: Option<Conn>,
    /// The current connection must be ready for the link handshake (TCP connected,
    /// TLS done) by then.
    conn_deadline: Option<Instant>,
    pending: Vec<PendingConn>,
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    inbuf: Vec<u8>,
    peer: Option<String>,
    connects: u64,
    refused: u64,
    local_addr: Option<SocketAddr>,
    /// Poll tokens of the listener and of the current connection.
    pub(super) listener_token: Token,
    pub(super) conn_token: Token,
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
    /// Why the link last went down (or failed authentication), for `/status`.
    pub(super) last_error: Option<String>,
    /// When each sent, not yet confirmed message was first transmitted, in seq
    /// order (at most the ring's capacity).
    first_sent: VecDeque<(u64, Instant)>,
    ack_latency: LatencyHistogram,
}

impl LinkDriver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        endpoint: Endpoint,
        role: Role,
        outgoing: Consumer<Message>,
        transport: Transport,
        tls: Option<TlsContext>,
        listener: Option<TcpListener>,
        tokens: (Token, Token),
        backoff: Backoff,
        now: Instant,
    ) -> Self {
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        LinkDriver {
            endpoint,
            role,
            outgoing,
            held: None,
            reconnect_at: matches!(transport, Transport::Dial(_)).then_some(now),
            transport,
            tls,
            listener,
            conn: None,
            conn_deadline: None,
            pending: Vec::new(),
            backoff,
            inbuf: Vec::with_capacity(64 * 1024),
            peer: None,
            connects: 0,
            refused: 0,
            local_addr,
            listener_token: tokens.0,
            conn_token: tokens.1,
            conn_addr: None,
            accept_retry: false,
            last_write: None,
            write_due: None,
            read_more: false,
            last_error: None,
            first_sent: VecDeque::new(),
            ack_latency: LatencyHistogram::default(),
        }
    }

    /// A sent message changed state: time its first transmission to its
    /// confirmation (or its Processed, when the peer said both at once).
    pub(super) fn note_status(&mut self, seq: u64, state: SlotState, now: Instant) {
        match state {
            // Sent again after a reconnection: the first transmission counts.
            SlotState::Sent if self.first_sent.back().is_none_or(|(last, _)| *last < seq) => {
                self.first_sent.push_back((seq, now));
            }
            SlotState::Confirmed | SlotState::Processed => {
                while let Some(&(first, at)) = self.first_sent.front() {
                    if first > seq {
                        break;
                    }
                    self.first_sent.pop_front();
                    if first == seq {
                        self.ack_latency.observe(now.saturating_duration_since(at));
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    /// The bridge's turn on a buffer-server link: SMSC events, held MO, next MT,
    /// then the SMSC connection's output. Nothing on an application link.
    pub(super) fn bridge_turn(&mut self, poll: &Poll, now: Instant) {
        if let Role::BufferServer(smsc) = &mut self.role {
            smsc.turn(poll, &mut self.endpoint, now);
        }
    }

    pub(super) fn smsc_mut(&mut self) -> Option<&mut SmscDriver> {
        match &mut self.role {
            Role::BufferServer(smsc) => Some(smsc),
            Role::Application => None,
        }
    }

    /// Accepting is driven by the listener's readiness; after a failed accept (e.g.
    /// out of descriptors) the edge is gone, so the loop retries each turn.
    pub(super) fn retry_accept(&mut self, poll: &Poll, now: Instant, next_token: &mut usize) {
        if self.accept_retry {
            self.accept(poll, now, next_token);
        }
    }

    /// Readiness is edge-triggered: a read that stopped at its budget goes on here.
    pub(super) fn read_leftover(&mut self, poll: &Poll, now: Instant) {
        if self.read_more {
            self.read(poll, now);
        }
    }

    /// Handshake done: reconnecting starts from the shortest delay again.
    pub(super) fn on_link_up(&mut self, peer: &str) {
        self.backoff.reset();
        self.peer = Some(peer.to_owned());
    }

    /// The last read stopped at its budget (or the SMSC's did): look again at once.
    pub(super) fn wants_read(&self) -> bool {
        self.read_more || matches!(&self.role, Role::BufferServer(smsc) if smsc.read_more())
    }

    /// The earliest instant anything of this link needs the loop.
    pub(super) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let retry = self
            .accept_retry
            .then_some(now + Duration::from_millis(100));
        let pending = self
            .pending
            .first()
            .map(|p| p.since + self.pending_timeout());
        let smsc = match &self.role {
            Role::BufferServer(smsc) => smsc.next_deadline(),
            Role::Application => None,
        };
        [
            retry,
            self.conn_deadline,
            self.endpoint.poll_timeout(),
            self.write_due,
            self.reconnect_at,
            pending,
            smsc,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Nothing of this link is left to hand on: the sending ring, the queue from
    /// the handle and the bridge are empty.
    pub(super) fn is_drained(&self) -> bool {
        self.endpoint.tx_ring().in_use() == 0
            && self.endpoint.backlog() == 0
            && self.outgoing.is_empty()
            && self.held.is_none()
            && match &self.role {
                Role::BufferServer(smsc) => smsc.is_idle(),
                Role::Application => true,
            }
    }

    /// Last words before the node stops: what the endpoint still has to say while
    /// up (acknowledgements and outcomes that write coalescing held back) goes before
    /// the CLOSE; then close the socket gracefully, bounded by `linger_until`.
    pub(super) fn finish(&mut self, now: Instant, linger_until: Instant) {
        if let Some(conn) = self.conn.as_mut() {
            for _ in 0..1024 {
                if self.endpoint.poll_transmit(now, conn.out_buf()) == 0 {
                    break;
                }
            }
        }
        self.endpoint.close(now);
        if let Some(conn) = self.conn.as_mut() {
            self.endpoint.poll_transmit(now, conn.out_buf());
            conn.close_gracefully(linger_until);
        }
        if let Some(smsc) = self.smsc_mut() {
            smsc.close(now);
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.endpoint.config().name
    }

    fn pending_timeout(&self) -> Duration {
        self.endpoint.config().dead_after
    }

    pub(super) fn write_stats(&self, out: &mut LinkStats) {
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
        out.tx_backlog = self.endpoint.backlog();
        out.counters = self.endpoint.counters();
        out.connects = self.connects;
        out.refused_connections = self.refused;
        out.ack_latency = self.ack_latency;
        if out.last_error != self.last_error {
            out.last_error.clone_from(&self.last_error);
        }
        out.smsc = match &self.role {
            Role::BufferServer(smsc) => Some(smsc.stats()),
            Role::Application => None,
        };
    }

    /// Move queued sends from the handle into the ring.
    pub(super) fn take_outgoing(&mut self) {
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

    pub(super) fn check_timers(&mut self, poll: &Poll, now: Instant) {
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
        if self.conn_deadline.is_some_and(|d| now >= d) {
            crate::slog!(
                Level::Warn,
                "link={} event=refused peer_addr={} reason=\"{} not done within {:?}\"",
                self.name(),
                self.conn_peer(),
                if self.tls.is_some() {
                    "TLS handshake"
                } else {
                    "connect"
                },
                self.pending_timeout()
            );
            self.drop_conn(poll, now);
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
        let token = self.conn_token;
        if poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return false;
        }
        let conn = match &self.tls {
            None => Conn::new(stream, connected),
            Some(tls) => match tls.session(self.side()) {
                Ok(session) => Conn::with_tls(stream, connected, session),
                Err(e) => {
                    crate::slog!(
                        Level::Error,
                        "link={} event=tls_failed error=\"{e}\"",
                        self.name()
                    );
                    let _ = poll.registry().deregister(&mut stream);
                    return false;
                }
            },
        };
        self.conn = Some(conn);
        self.conn_addr = Some(peer);
        self.conn_deadline = Some(now + self.pending_timeout());
        if connected {
            self.connects += 1;
            self.start_link(now);
        }
        true
    }

    /// The dialing side is the TLS client and proves itself first in the link
    /// handshake.
    fn side(&self) -> Side {
        match self.transport {
            Transport::Dial(_) => Side::Dialer,
            Transport::Listen(_) => Side::Listener,
        }
    }

    /// Start the link handshake once the connection is ready for it (at once in
    /// plaintext, after the TLS handshake otherwise). False if the connection
    /// cannot go on.
    fn start_link(&mut self, now: Instant) -> bool {
        let side = self.side();
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match conn.established() {
            Ok(None) => {}
            Ok(Some(Established::Plaintext)) => {
                self.conn_deadline = None;
                self.endpoint.connected(now, side);
            }
            Ok(Some(Established::Tls { binding })) => {
                self.conn_deadline = None;
                crate::slog!(
                    Level::Debug,
                    "link={} event=tls_up peer_addr={}",
                    self.name(),
                    self.conn_peer()
                );
                self.endpoint.connected_with_binding(now, side, &binding);
            }
            Err(e) => {
                crate::slog!(
                    Level::Warn,
                    "link={} event=refused peer_addr={} reason=\"TLS exporter: {e}\"",
                    self.name(),
                    self.conn_peer()
                );
                return false;
            }
        }
        true
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        if matches!(self.transport, Transport::Dial(_)) {
            self.reconnect_at = Some(now + self.backoff.next_delay());
        }
    }

    pub(super) fn accept(&mut self, poll: &Poll, now: Instant, next_token: &mut usize) {
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

    pub(super) fn on_conn_ready(
        &mut self,
        poll: &Poll,
        readable: bool,
        writable: bool,
        now: Instant,
    ) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.connected && (writable || readable) {
            match conn.finish_connect() {
                Ok(true) => {
                    self.connects += 1;
                    if !self.start_link(now) {
                        self.drop_conn(poll, now);
                        return;
                    }
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

    pub(super) fn read(&mut self, poll: &Poll, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        self.inbuf.clear();
        let outcome = conn.read_into(&mut self.inbuf);
        // A TLS handshake may just have completed (the peer's first link frames
        // can come in the same read).
        if !self.endpoint.is_connected() && !self.start_link(now) {
            self.drop_conn(poll, now);
            return;
        }
        if !self.inbuf.is_empty() && self.endpoint.handle_input(&self.inbuf, now).is_err() {
            // The endpoint emitted LinkDown (and maybe queued CLOSE); the event
            // drain closes the socket after a last write.
            self.write_now(now);
            return;
        }
        match outcome {
            Ok(ReadOutcome::Open(n)) => self.read_more = n >= READ_BUDGET,
            Ok(ReadOutcome::Closed(_)) | Err(ReadError::Io(_)) => {
                self.endpoint.connection_lost(now);
                self.drop_conn(poll, now);
            }
            Err(e @ ReadError::Tls(_)) => {
                // The refusing side says why; the refused side hears an alert.
                crate::slog!(
                    Level::Warn,
                    "link={} event=tls_refused peer_addr={} reason=\"{e}\"",
                    self.name(),
                    self.conn_peer()
                );
                self.last_error = Some(e.to_string());
                self.refused += 1;
                self.endpoint.connection_lost(now);
                self.drop_conn(poll, now);
            }
        }
    }

    /// Write soon: at once if the link wrote nothing for `WRITE_COALESCE`, else at
    /// the end of that interval. Under load this turns one small ACK or DATA write
    /// per message into one write per interval (and one wake-up of the peer), at a
    /// cost of at most that interval in latency; an idle link writes at once.
    pub(super) fn write(&mut self, now: Instant) {
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
    pub(super) fn screen_pending(&mut self, poll: &Poll, token: Token) -> bool {
        let Some(i) = self.pending.iter().position(|p| p.token == token) else {
            return false;
        };
        let mut head = [0u8; 7];
        let verdict = match self.pending[i].stream.peek(&mut head) {
            Ok(0) => Some("closed while waiting".to_owned()),
            Ok(n) => match screen_hello(&head[..n], self.tls.is_some()) {
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
        self.conn_deadline = None;
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
