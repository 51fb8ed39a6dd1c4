//! One link's connections: dial or listen, screen and queue waiting connections,
//! move bytes between the socket and the sans-IO [`Endpoint`], and, on a buffer
//! server, the [`SmscDriver`] that joins the link to its SMSC.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};

use super::admission::{Admission, AdmissionConfig, Admit, Expired, HandshakeBudget, Slot, Source};
use super::api::{LinkStats, Transport};
use super::conn::{Conn, Established, ReadError, ReadOutcome, READ_BUDGET};
use super::latency::LatencyHistogram;
use super::log::{Level, LimitKey, Limiter};
use super::ready::PendingTokens;
use super::smsc_driver::SmscDriver;
use super::spsc::Consumer;
use super::tls::TlsContext;
use super::{AcceptError, AcceptPause, Backoff};
use crate::link::{Endpoint, Side};
use crate::message::Message;
use crate::ring::SlotState;

/// A few lines per source and this long about refused connections; the rest are
/// counted and reported in one line.
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);
const REFUSAL_LOG_BURST: u32 = 5;
/// Sources the refusal log keeps apart; the others share one count.
const REFUSAL_LOG_SOURCES: usize = 64;
/// A HELLO is short: a waiting connection that announces a longer first frame is
/// not a link peer.
const MAX_HELLO_FRAME: usize = 256;
/// Output of a busy link is gathered for this long before it is written.
const WRITE_COALESCE: Duration = Duration::from_micros(500);
/// Stop asking the endpoint for more bytes while this much is unwritten (so a
/// connection's output stays under this plus one `poll_transmit`); a peer that
/// leaves this much unread for `dead_after` is disconnected.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Who is at the local end of a link.
pub(super) enum Role {
    /// The application, through the node handle: it sends, and it receives the
    /// peer's messages as events.
    Application,
    /// A buffer server's SMSC: the bridge feeds the link and takes its messages.
    BufferServer(Box<SmscDriver>),
}

/// An accepted connection that has not been given the link yet: it waits until it
/// has sent a complete HELLO and the [`Admission`] policy hands it the link.
struct PendingConn {
    stream: TcpStream,
    token: Token,
    peer: SocketAddr,
}

/// What the first bytes of a waiting connection say about it.
#[derive(Debug, PartialEq, Eq)]
enum Screen {
    /// Not enough bytes yet.
    Unknown,
    /// A complete link HELLO.
    Hello,
    /// Something else (another protocol, garbage): refuse it now.
    Foreign,
}

/// The connection on the link, as far as admission cares.
#[derive(Debug, Clone, Copy)]
struct OnLink {
    /// Accepted (not dialled): its failures count against its source.
    accepted: bool,
    since: Instant,
    up: bool,
    /// Its failure was already counted (or it must not be: it was displaced).
    judged: bool,
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
    match crate::link::frame::decode(head) {
        Ok(Some((crate::link::frame::Frame::Hello(_), _))) => Screen::Hello,
        Ok(None) if head.len() < MAX_HELLO_FRAME => Screen::Unknown,
        _ => Screen::Foreign,
    }
}

thread_local! {
    /// The bytes of one read, shared by every link of the loop's thread: the
    /// endpoint keeps only an incomplete frame's tail, so an idle link holds no
    /// read buffer.
    static READ_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

pub(super) struct LinkDriver {
    pub(super) endpoint: Endpoint,
    pub(super) role: Role,
    pub(super) outgoing: Consumer<Box<Message>>,
    /// A message taken off the queue that the ring refused (should not happen:
    /// the handle checks first), kept so that nothing is dropped.
    held: Option<Box<Message>>,
    transport: Transport,
    /// TLS under the link (`None`: plaintext, as the operator asked).
    tls: Option<TlsContext>,
    listener: Option<TcpListener>,
    conn: Option<Conn>,
    pending: Vec<PendingConn>,
    admission: Admission,
    on_link: Option<OnLink>,
    refusal_log: Limiter<Source>,
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    peer: Option<String>,
    connects: u64,
    refused: u64,
    local_addr: Option<SocketAddr>,
    /// Poll tokens of the listener and of the current connection.
    pub(super) listener_token: Token,
    pub(super) conn_token: Token,
    /// Since when the output has stayed at the high-water mark without progress.
    output_stuck_since: Option<Instant>,
    /// When output was last written, and when held-back output is due.
    last_write: Option<Instant>,
    write_due: Option<Instant>,
    /// Accepting paused after a failure for lack of resources (descriptors).
    accept_pause: AcceptPause,
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
    /// This link's dial holds a place in the node's handshake budget (until its
    /// setup ends).
    budget_held: bool,
}

impl LinkDriver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        endpoint: Endpoint,
        role: Role,
        outgoing: Consumer<Box<Message>>,
        transport: Transport,
        tls: Option<TlsContext>,
        listener: Option<TcpListener>,
        tokens: (Token, Token),
        backoff: Backoff,
        admission: AdmissionConfig,
        now: Instant,
    ) -> Self {
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        // A peer that comes back while its old connection still looks up here must
        // be able to wait until that one is declared dead.
        let mut admission = admission;
        admission.max_wait = admission
            .max_wait
            .max(endpoint.config().dead_after + admission.handshake_timeout);
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
            pending: Vec::new(),
            admission: Admission::new(admission),
            on_link: None,
            refusal_log: Limiter::new(REFUSAL_LOG_WINDOW, REFUSAL_LOG_BURST, REFUSAL_LOG_SOURCES),
            backoff,
            peer: None,
            connects: 0,
            refused: 0,
            local_addr,
            listener_token: tokens.0,
            conn_token: tokens.1,
            conn_addr: None,
            accept_pause: AcceptPause::default(),
            last_write: None,
            output_stuck_since: None,
            write_due: None,
            read_more: false,
            last_error: None,
            first_sent: VecDeque::new(),
            ack_latency: LatencyHistogram::default(),
            budget_held: false,
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

    /// The handshake budget names this link: dial now.
    pub(super) fn grant_handshake(&mut self, now: Instant) {
        self.budget_held = true;
        self.reconnect_at = Some(now);
    }

    /// Give back the budget's place once the dialled connection's setup has ended
    /// (link up, or no connection any more). True if a place was given back.
    pub(super) fn release_handshake(&mut self) -> bool {
        let in_setup = self.conn.is_some() && !self.endpoint.is_up();
        if self.budget_held && !in_setup {
            self.budget_held = false;
            return true;
        }
        false
    }

    /// Accepting is driven by the listener's readiness; after a failed accept (e.g.
    /// out of descriptors) the edge is gone, so the loop retries after a pause.
    pub(super) fn retry_accept(
        &mut self,
        poll: &Poll,
        now: Instant,
        tokens: &mut PendingTokens,
        id: usize,
    ) {
        if self.accept_pause.is_due(now) {
            self.accept(poll, now, tokens, id);
        }
    }

    /// Readiness is edge-triggered: a read that stopped at its budget goes on here.
    pub(super) fn read_leftover(&mut self, poll: &Poll, now: Instant) {
        if self.read_more {
            self.read(poll, now);
        }
    }

    /// Handshake done: reconnecting starts from the shortest delay again, and the
    /// peer's source comes first next time.
    pub(super) fn on_link_up(&mut self, peer: &str, now: Instant) {
        self.backoff.reset();
        self.peer = Some(peer.to_owned());
        if let Some(on_link) = self.on_link.as_mut() {
            on_link.up = true;
            if on_link.accepted {
                if let Some(addr) = self.conn_addr {
                    self.admission.authenticated(addr.ip(), now);
                }
            }
        }
    }

    /// The peer failed authentication: a line (rate-limited per source, since anyone
    /// can try) and the reason for `/status`.
    pub(super) fn on_auth_failed(&mut self, reason: &str, now: Instant) {
        self.refuse_handshake("auth_failed", reason, now);
    }

    /// The handshake failed (`event`: authentication, TLS): the line and the
    /// source's penalty of [`on_auth_failed`](Self::on_auth_failed).
    fn refuse_handshake(&mut self, event: &str, reason: &str, now: Instant) {
        let reason = super::log::clip(reason);
        let addr = self.conn_addr;
        let held = match addr {
            Some(a) => self.refusal_log.allow(&Source::of(a.ip()), now),
            None => Some(0),
        };
        if let Some(held) = held {
            crate::slog!(
                Level::Warn,
                "link={} event={event} peer_addr={} reason=\"{reason}\" suppressed={held}",
                self.name(),
                self.conn_peer()
            );
        }
        let what = if event == "tls_refused" {
            "TLS"
        } else {
            "authentication"
        };
        self.last_error = Some(format!("{what}: {reason}"));
        self.judge_failed_handshake(now);
    }

    /// The endpoint reported the connection down: a protocol error before the link
    /// came up counts as a failed authentication of its source.
    pub(super) fn on_link_down(&mut self, reason: &crate::link::DownReason, now: Instant) {
        if matches!(reason, crate::link::DownReason::Protocol(_)) {
            self.judge_failed_handshake(now);
        }
    }

    /// An accepted connection failed authentication before it came up: its source
    /// waits before it is served again (once per connection).
    fn judge_failed_handshake(&mut self, now: Instant) {
        let Some(on_link) = self.on_link.as_mut() else {
            return;
        };
        if on_link.up || on_link.judged || !on_link.accepted {
            return;
        }
        on_link.judged = true;
        if let Some(addr) = self.conn_addr {
            let penalty = self.admission.failed(addr.ip(), now);
            let source = Source::of(addr.ip());
            if let Some(suppressed) = self.refusal_log.allow(&source, now) {
                crate::slog!(
                    Level::Warn,
                    "link={} event=handshake_failed peer_addr={addr} penalty_ms={} suppressed={suppressed}",
                    self.name(),
                    penalty.as_millis()
                );
            }
        }
    }

    /// The last read stopped at its budget (or the SMSC's did): look again at once.
    pub(super) fn wants_read(&self) -> bool {
        self.read_more || matches!(&self.role, Role::BufferServer(smsc) if smsc.read_more())
    }

    /// The earliest instant anything of this link needs the loop.
    pub(super) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let retry = self.accept_pause.retry_at();
        let pending = self.admission.next_deadline();
        let stuck = self
            .output_stuck_since
            .map(|s| s + self.endpoint.config().dead_after);
        let on_link_handshake = self.on_link.filter(|l| !l.up);
        let handshake = on_link_handshake.map(|l| self.admission.handshake_deadline(l.since));
        let displace = on_link_handshake.and_then(|l| self.admission.displace_at(l.since, now));
        let eligible = self.admission.next_eligible(now);
        let smsc = match &self.role {
            Role::BufferServer(smsc) => smsc.next_deadline(),
            Role::Application => None,
        };
        [
            retry,
            self.endpoint.poll_timeout(),
            self.write_due,
            self.reconnect_at,
            pending,
            handshake,
            displace,
            eligible,
            stuck,
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
        out.pending_connections = self.pending.len();
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

    /// Timed work: a due dial (through the node's handshake `budget`, as link `id`),
    /// handshake and waiting-connection deadlines, the refusal log's summaries.
    pub(super) fn check_timers(
        &mut self,
        poll: &Poll,
        now: Instant,
        budget: &mut HandshakeBudget,
        id: usize,
    ) {
        if let (Some(at), Transport::Dial(addr)) = (self.reconnect_at, &self.transport) {
            if now >= at && self.conn.is_none() {
                self.reconnect_at = None;
                let addr = *addr;
                if !self.budget_held {
                    // Without a place the link waits in line, holding no socket.
                    self.budget_held = budget.start(id, now);
                }
                if self.budget_held {
                    let adopted = TcpStream::connect(addr)
                        .is_ok_and(|stream| self.adopt(poll, stream, addr, false, now));
                    if !adopted {
                        self.schedule_reconnect(now);
                    }
                }
            }
        }
        // A handshake on the link that takes too long makes way.
        if let Some(on_link) = self.on_link {
            if !on_link.up && now >= self.admission.handshake_deadline(on_link.since) {
                crate::slog!(
                    Level::Debug,
                    "link={} event=handshake_timeout peer_addr={}",
                    self.name(),
                    self.conn_peer()
                );
                self.last_error = Some("handshake not finished in time".to_owned());
                self.drop_conn(poll, now);
            }
        }
        // Waiting connections past their deadline are dropped.
        for (id, why) in self.admission.take_expired(now) {
            let reason = match why {
                Expired::NotReady => "no complete HELLO in time",
                Expired::Waited => "waited too long for the current connection to end",
            };
            self.close_pending(poll, id, reason, now);
        }
        for (key, count) in self.refusal_log.take_quiet(now) {
            let from = match key {
                LimitKey::Key(source) => source.to_string(),
                LimitKey::Others => "other sources".to_owned(),
            };
            crate::slog!(
                Level::Warn,
                "link={} event=refused_summary count={count} reason=\"refused {count} more connections from {from} in the last {} s\"",
                self.name(),
                REFUSAL_LOG_WINDOW.as_secs()
            );
        }
        self.offer_link(poll, now);
    }

    /// Close waiting connection `id` (token value), with a rate-limited log line.
    fn close_pending(&mut self, poll: &Poll, id: u64, reason: &str, now: Instant) {
        self.admission.remove(id);
        let Some(i) = self.pending.iter().position(|p| p.token.0 as u64 == id) else {
            return;
        };
        let mut p = self.pending.swap_remove(i);
        let _ = poll.registry().deregister(&mut p.stream);
        self.refused += 1;
        self.log_refusal(p.peer, reason, now);
    }

    fn log_refusal(&mut self, peer: SocketAddr, reason: &str, now: Instant) {
        if let Some(suppressed) = self.refusal_log.allow(&Source::of(peer.ip()), now) {
            crate::slog!(
                Level::Warn,
                "link={} event=refused peer_addr={peer} reason=\"{reason}\" suppressed={suppressed}",
                self.name()
            );
        }
    }

    /// Give the link to the waiting connection the policy picks, if any (taking it
    /// from a handshake the policy lets it displace).
    fn offer_link(&mut self, poll: &Poll, now: Instant) {
        if self.listener.is_none() || self.pending.is_empty() {
            return;
        }
        let slot = match (&self.conn, self.on_link, self.conn_addr) {
            (None, _, _) => Slot::Free,
            (Some(_), Some(l), Some(addr)) if !l.up && l.accepted => Slot::Handshake {
                source: Source::of(addr.ip()),
                since: l.since,
            },
            (Some(_), Some(l), _) if !l.up => return,
            _ => Slot::Up,
        };
        let Some(id) = self.admission.next_for_link(slot, now) else {
            return;
        };
        let Some(i) = self.pending.iter().position(|p| p.token.0 as u64 == id) else {
            return;
        };
        let mut p = self.pending.swap_remove(i);
        let _ = poll.registry().deregister(&mut p.stream);
        if self.conn.is_some() {
            crate::slog!(
                Level::Info,
                "link={} event=handshake_displaced peer_addr={} by={}",
                self.name(),
                self.conn_peer(),
                p.peer
            );
            if let Some(l) = self.on_link.as_mut() {
                l.judged = true;
            }
            self.close_conn(poll, now);
        }
        if self.adopt(poll, p.stream, p.peer, true, now) {
            crate::slog!(
                Level::Debug,
                "link={} event=accepted peer_addr={}",
                self.name(),
                p.peer
            );
        }
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
        // The admission's handshake deadline covers TCP connect, TLS and the link
        // handshake alike.
        self.on_link = Some(OnLink {
            accepted: self.listener.is_some(),
            since: now,
            up: false,
            judged: false,
        });
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
            Ok(Some(Established::Plaintext)) => self.endpoint.connected(now, side),
            Ok(Some(Established::Tls { binding })) => {
                crate::slog!(
                    Level::Debug,
                    "link={} event=tls_up peer_addr={}",
                    self.name(),
                    self.conn_peer()
                );
                self.endpoint.connected_with_binding(now, side, &binding);
            }
            Err(e) => {
                self.refuse_handshake("tls_refused", &format!("TLS exporter: {e}"), now);
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

    /// Accept what the listener of link `id` has, as waiting connections.
    pub(super) fn accept(
        &mut self,
        poll: &Poll,
        now: Instant,
        tokens: &mut PendingTokens,
        id: usize,
    ) {
        if self.accept_pause.is_paused(now) {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_mut() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let failed = self.accept_pause.succeeded();
                    if failed > 0 {
                        crate::slog!(
                            Level::Warn,
                            "link={} event=accept_resumed failures={failed}",
                            self.name()
                        );
                    }
                    let token = tokens.next(id);
                    let pending_id = token.0 as u64;
                    match self.admission.admit(pending_id, peer.ip(), now) {
                        Admit::Refuse(why) => {
                            self.refused += 1;
                            self.log_refusal(peer, &why.to_string(), now);
                        }
                        Admit::Wait { evict } => {
                            if let Some(old) = evict {
                                self.close_pending(
                                    poll,
                                    old,
                                    "made room for a newer connection",
                                    now,
                                );
                            }
                            if poll
                                .registry()
                                .register(&mut stream, token, Interest::READABLE)
                                .is_ok()
                            {
                                self.pending.push(PendingConn {
                                    stream,
                                    token,
                                    peer,
                                });
                                // Its HELLO may be there already.
                                self.screen_pending(poll, token, now);
                            } else {
                                self.admission.remove(pending_id);
                            }
                        }
                    }
                }
                Err(e) => match AcceptError::of(&e) {
                    AcceptError::Drained => break,
                    AcceptError::Again => continue,
                    AcceptError::Pause => {
                        let (pause, first) = self.accept_pause.failed(now);
                        if first {
                            crate::slog!(
                                Level::Warn,
                                "link={} event=accept_failed error=\"{e}\" retry_ms={}",
                                self.name(),
                                pause.as_millis()
                            );
                        }
                        break;
                    }
                },
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
        let mut buf = READ_BUF.take();
        buf.clear();
        let outcome = conn.read_into(&mut buf);
        // A TLS handshake may just have completed (the peer's first link frames
        // can come in the same read).
        let started = self.endpoint.is_connected() || self.start_link(now);
        let handled = !started || buf.is_empty() || self.endpoint.handle_input(&buf, now).is_ok();
        READ_BUF.set(buf);
        if !started {
            self.drop_conn(poll, now);
            return;
        }
        if !handled {
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
                // The refusing side says why (rate-limited per source, and the
                // source is slowed down as after a failed authentication); the
                // refused side hears an alert.
                self.refuse_handshake("tls_refused", &e.to_string(), now);
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
        self.shrink_if_idle();
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
        let before = conn.pending_output();
        if conn.flush().is_err() {
            self.endpoint.connection_lost(now);
            return;
        }
        let unwritten = conn.pending_output();
        if unwritten < OUTPUT_HIGH_WATER || unwritten < before {
            self.output_stuck_since = None;
            return;
        }
        let since = *self.output_stuck_since.get_or_insert(now);
        let limit = self.endpoint.config().dead_after;
        if now >= since + limit {
            crate::slog!(
                Level::Warn,
                "link={} event=dropped peer_addr={} reason=\"{unwritten} bytes of output unwritten for {limit:?} (the peer does not read)\"",
                self.name(),
                self.conn_peer()
            );
            self.last_error = Some("the peer does not read".to_owned());
            self.output_stuck_since = None;
            self.endpoint.connection_lost(now);
        }
    }

    /// Nothing in flight either way: give back what a burst of traffic grew the
    /// link's buffers to, so that an idle link costs little (they grow again on
    /// demand).
    fn shrink_if_idle(&mut self) {
        if self.endpoint.tx_ring().in_use() > 0 || self.endpoint.rx_ring().in_use() > 0 {
            return;
        }
        self.endpoint.shrink_buffers();
        if self.first_sent.is_empty() && self.first_sent.capacity() > 0 {
            self.first_sent = VecDeque::new();
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.shrink_buffers();
        }
    }

    pub(super) fn conn_peer(&self) -> String {
        self.conn_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string())
    }

    /// Peek at a waiting connection that became readable; refuse it when it is not
    /// a link peer or has gone, and offer it the link once its HELLO is complete.
    /// Returns whether the token was one of this link's.
    pub(super) fn screen_pending(&mut self, poll: &Poll, token: Token, now: Instant) -> bool {
        let Some(i) = self.pending.iter().position(|p| p.token == token) else {
            return false;
        };
        let mut head = [0u8; MAX_HELLO_FRAME];
        let verdict = match self.pending[i].stream.peek(&mut head) {
            Ok(0) => Some("closed while waiting".to_owned()),
            Ok(n) => match screen_hello(&head[..n], self.tls.is_some()) {
                Screen::Hello => {
                    self.admission.ready(token.0 as u64);
                    None
                }
                Screen::Unknown => None,
                Screen::Foreign => Some(format!(
                    "not the link protocol (first bytes {})",
                    super::log::excerpt(&head[..n.min(16)])
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(e.to_string()),
        };
        match verdict {
            Some(reason) => self.close_pending(poll, token.0 as u64, &reason, now),
            None => self.offer_link(poll, now),
        }
        true
    }

    /// Close the current connection; promote a waiting one or plan a redial.
    pub(super) fn drop_conn(&mut self, poll: &Poll, now: Instant) {
        if !self.close_conn(poll, now) {
            return;
        }
        if self.listener.is_some() {
            self.offer_link(poll, now);
        } else {
            self.schedule_reconnect(now);
        }
    }

    /// Close the current connection (a CLOSE that may be queued goes first).
    fn close_conn(&mut self, poll: &Poll, now: Instant) -> bool {
        let Some(mut conn) = self.conn.take() else {
            return false;
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
        self.read_more = false;
        // `conn_addr` stays: the LinkDown line for this connection is written after.
        self.on_link = None;
        self.output_stuck_since = None;
        self.shrink_if_idle();
        true
    }
}
