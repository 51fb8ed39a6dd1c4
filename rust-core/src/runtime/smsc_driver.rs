//! The TCP connection from a buffer server to its SMSC, driving the sans-IO
//! [`Bridge`]: dial (again, with back-off), move bytes in and out, report the
//! connection's end. Everything the buffer server *decides* is in `bridge`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};

use super::api::{LinkId, NodeEvent};
use super::conn::{Conn, ReadOutcome, READ_BUDGET};
use super::log::{clip, Level, LimitKey, Limiter};
use super::Backoff;
use crate::bridge::{Bridge, BridgeEvent, SmscStats};
use crate::link::Endpoint;

pub(super) struct SmscDriver {
    link: LinkId,
    addr: SocketAddr,
    /// Unwritten output past which the SMSC connection is dropped.
    max_output: usize,
    /// Poll token of connection 0; connection `i` has `first_token + i`.
    first_token: Token,
    bridge: Bridge,
    backoff: Backoff,
    /// One slot per connection the session uses (SMPP's TX + RX pair: two).
    conns: Vec<Option<Conn>>,
    reconnect_at: Option<Instant>,
    inbuf: Vec<u8>,
    /// Connections whose last read stopped at its budget.
    read_more: Vec<bool>,
    events: VecDeque<NodeEvent>,
    shutting_down: bool,
    /// Lines about what the SMSC does wrong, per kind of line.
    log_limit: Limiter<&'static str>,
}

/// A few lines per kind and this long about the SMSC's faults; the rest are counted.
const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
const LOG_BURST: u32 = 5;

impl SmscDriver {
    /// The most TCP connections one SMSC session may use (tokens are set aside).
    pub(super) const MAX_CONNECTIONS: usize = 2;

    pub(super) fn new(
        link: LinkId,
        addr: SocketAddr,
        max_output: usize,
        first_token: Token,
        bridge: Bridge,
        backoff: Backoff,
        now: Instant,
    ) -> Self {
        let n = bridge
            .smsc_connection_count()
            .clamp(1, Self::MAX_CONNECTIONS);
        SmscDriver {
            link,
            addr,
            max_output,
            first_token,
            bridge,
            backoff,
            conns: (0..n).map(|_| None).collect(),
            reconnect_at: Some(now),
            inbuf: Vec::with_capacity(16 * 1024),
            read_more: vec![false; n],
            events: VecDeque::new(),
            shutting_down: false,
            log_limit: Limiter::new(LOG_WINDOW, LOG_BURST, 8),
        }
    }

    /// The connection a poll token belongs to, if it is one of this driver's.
    pub(super) fn conn_of(&self, token: Token) -> Option<usize> {
        let i = token.0.checked_sub(self.first_token.0)?;
        (i < self.conns.len()).then_some(i)
    }

    pub(super) fn stats(&self) -> SmscStats {
        self.bridge.stats()
    }

    pub(super) fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    pub(super) fn read_more(&self) -> bool {
        self.read_more.iter().any(|r| *r)
    }

    pub(super) fn is_idle(&self) -> bool {
        self.bridge.is_idle()
    }

    pub(super) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.bridge.begin_shutdown();
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match (self.bridge.poll_timeout(), self.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The node stops: log out if possible and write what is left.
    pub(super) fn close(&mut self, now: Instant) {
        self.bridge.logout(now);
        self.write();
        for conn in &mut self.conns {
            *conn = None;
        }
    }

    pub(super) fn on_ready(
        &mut self,
        poll: &Poll,
        i: usize,
        readable: bool,
        writable: bool,
        now: Instant,
    ) {
        let Some(conn) = self.conns[i].as_mut() else {
            return;
        };
        if !conn.connected && (readable || writable) {
            match conn.finish_connect() {
                Ok(true) => self.bridge.smsc_connected(i, now),
                Ok(false) => return,
                Err(e) => {
                    self.lost(poll, now, format!("connect to {}: {e}", self.addr));
                    return;
                }
            }
        }
        if readable {
            self.read(poll, i, now);
        }
        self.write();
        self.drop_if_not_reading(poll, now);
    }

    /// One pass: read what a budget-limited read left, dial if due, timers, then the
    /// bridge's step with the link endpoint, then output.
    pub(super) fn turn(&mut self, poll: &Poll, link: &mut Endpoint, now: Instant) {
        for i in 0..self.conns.len() {
            if self.read_more[i] {
                self.read(poll, i, now);
            }
        }
        self.dial_if_due(poll, now);
        self.bridge.handle_timeout(now);
        self.bridge.poll(link, now);
        self.drain_bridge_events(now);
        for (kind, count) in self.log_limit.take_quiet(now) {
            if let LimitKey::Key(kind) = kind {
                crate::slog!(
                    Level::Warn,
                    "smsc={} event={kind} count={count} reason=\"{count} more in the last {} s\"",
                    self.addr,
                    LOG_WINDOW.as_secs()
                );
            }
        }
        let connected = self.conns.iter().flatten().any(|c| c.connected);
        if connected && !self.bridge.smsc_is_open() {
            // The session ended (logout, refused login, dead line): last bytes out,
            // then close and dial again.
            self.write();
            self.lost(poll, now, "session ended".into());
            self.bridge.poll(link, now);
            self.drain_bridge_events(now);
        }
        self.write();
        self.drop_if_not_reading(poll, now);
    }

    /// An SMSC that sends but does not read makes our answers pile up: past
    /// `max_output` unwritten bytes the session is dropped (and dialled again).
    fn drop_if_not_reading(&mut self, poll: &Poll, now: Instant) {
        let unwritten = self
            .conns
            .iter()
            .flatten()
            .map(Conn::pending_output)
            .max()
            .unwrap_or(0);
        if unwritten > self.max_output {
            crate::slog!(
                Level::Warn,
                "smsc={} event=dropped reason=\"{unwritten} bytes of output unwritten, over the limit of {} (the SMSC does not read)\"",
                self.addr,
                self.max_output
            );
            self.lost(poll, now, "output limit exceeded".into());
        }
    }

    fn read(&mut self, poll: &Poll, i: usize, now: Instant) {
        let Some(conn) = self.conns[i].as_mut() else {
            return;
        };
        self.inbuf.clear();
        let outcome = conn.read_into(&mut self.inbuf);
        if !self.inbuf.is_empty() {
            self.bridge.smsc_input(i, &self.inbuf, now);
        }
        match outcome {
            Ok(ReadOutcome::Open(n)) => self.read_more[i] = n >= READ_BUDGET,
            Ok(ReadOutcome::Closed(_)) => self.lost(poll, now, "SMSC closed the connection".into()),
            Err(e) => self.lost(poll, now, format!("read: {e}")),
        }
    }

    fn write(&mut self) {
        for (i, slot) in self.conns.iter_mut().enumerate() {
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            if !conn.connected {
                continue;
            }
            self.bridge.smsc_transmit(i, conn.out_buf());
            // A write error shows up as a read error or EOF on the next readiness.
            let _ = conn.flush();
        }
    }

    /// A connection is gone, so the session is: close every connection, tell the
    /// bridge (its events follow on the next step), plan a redial.
    fn lost(&mut self, poll: &Poll, now: Instant, reason: String) {
        let mut had_any = false;
        let mut was_connected = false;
        for i in 0..self.conns.len() {
            let Some(mut conn) = self.conns[i].take() else {
                continue;
            };
            had_any = true;
            let _ = poll.registry().deregister(&mut conn.stream);
            if conn.connected {
                was_connected = true;
                self.bridge.smsc_connection_lost(i, now);
            }
            self.read_more[i] = false;
        }
        if !had_any {
            return;
        }
        let event = if was_connected {
            "connection_closed"
        } else {
            "connect_failed"
        };
        crate::slog!(
            Level::Debug,
            "smsc={} event={event} reason=\"{reason}\"",
            self.addr
        );
        if !self.shutting_down {
            self.reconnect_at = Some(now + self.backoff.next_delay());
        }
    }

    fn dial_if_due(&mut self, poll: &Poll, now: Instant) {
        let Some(at) = self.reconnect_at else {
            return;
        };
        if now < at || self.conns.iter().any(Option::is_some) || self.shutting_down {
            return;
        }
        self.reconnect_at = None;
        for i in 0..self.conns.len() {
            let token = Token(self.first_token.0 + i);
            let registered = TcpStream::connect(self.addr).and_then(|mut stream| {
                poll.registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .map(|()| stream)
            });
            match registered {
                Ok(stream) => self.conns[i] = Some(Conn::new(stream, false)),
                Err(e) => {
                    // Closes those already dialled and plans the next attempt.
                    self.lost(poll, now, format!("connect to {}: {e}", self.addr));
                    if self.reconnect_at.is_none() && !self.shutting_down {
                        self.reconnect_at = Some(now + self.backoff.next_delay());
                    }
                    return;
                }
            }
        }
    }

    /// The bridge's events become the application's, and log lines (rate-limited
    /// per kind: a misbehaving SMSC must not flood the log).
    fn drain_bridge_events(&mut self, now: Instant) {
        let link = self.link;
        while let Some(event) = self.bridge.poll_event() {
            if let Some(held) = self.log_limit.allow(&log_kind(&event), now) {
                self.log_event(&event, held);
            }
            let out = match event {
                BridgeEvent::SmscUp => {
                    self.backoff.reset();
                    NodeEvent::SmscUp { link }
                }
                BridgeEvent::SmscDown { reason } => NodeEvent::SmscDown { link, reason },
                BridgeEvent::SmscViolation { detail } => NodeEvent::SmscViolation { link, detail },
                BridgeEvent::MtUnencodable { .. }
                | BridgeEvent::ReportUnknown { .. }
                | BridgeEvent::MoRefused { .. }
                | BridgeEvent::OutcomeRefused { .. } => continue,
            };
            self.events.push_back(out);
        }
    }

    /// One line for `event`; `held` lines of its kind were held back before it.
    fn log_event(&self, event: &BridgeEvent, held: u64) {
        let addr = self.addr;
        match event {
            BridgeEvent::SmscUp => {
                crate::slog!(Level::Info, "smsc={addr} event=logged_in suppressed={held}");
            }
            BridgeEvent::SmscDown { reason } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=down reason=\"{}\" suppressed={held}",
                clip(reason)
            ),
            BridgeEvent::SmscViolation { detail } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=protocol_violation detail=\"{}\" suppressed={held}",
                clip(detail)
            ),
            BridgeEvent::MtUnencodable { seq, reason } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=mt_unencodable seq={seq} error=\"{}\" suppressed={held}",
                clip(reason)
            ),
            BridgeEvent::ReportUnknown { smsc_id } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=report_unknown smsc_id=\"{}\" suppressed={held}",
                clip(smsc_id)
            ),
            BridgeEvent::MoRefused { detail } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=mo_refused detail=\"{}\" suppressed={held}",
                clip(detail)
            ),
            BridgeEvent::OutcomeRefused { seq, error } => crate::slog!(
                Level::Warn,
                "smsc={addr} event=mt_outcome_failed seq={seq} error=\"{}\" suppressed={held}",
                clip(&error.to_string())
            ),
        }
    }
}

/// The `event=` of a bridge event's line (and its rate-limit key).
fn log_kind(event: &BridgeEvent) -> &'static str {
    match event {
        BridgeEvent::SmscUp => "logged_in",
        BridgeEvent::SmscDown { .. } => "down",
        BridgeEvent::SmscViolation { .. } => "protocol_violation",
        BridgeEvent::MtUnencodable { .. } => "mt_unencodable",
        BridgeEvent::ReportUnknown { .. } => "report_unknown",
        BridgeEvent::MoRefused { .. } => "mo_refused",
        BridgeEvent::OutcomeRefused { .. } => "mt_outcome_failed",
    }
}
