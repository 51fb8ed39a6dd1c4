//! The buffer server's SMSC side: a CIMD2 client session over one TCP connection,
//! glued to the first link's rings.
//!
//! * MO: each deliver from the SMSC goes into the sending ring and is answered at
//!   once (the seed's whole point). When the ring is full the answer is withheld
//!   until a slot frees: the SMSC simply waits, nothing is dropped.
//! * MT: messages from the link are submitted oldest first, one at a time, as CIMD2
//!   demands. The SMSC's answer travels back as the Processed outcome. A submit that
//!   got no answer (timeout, lost connection) is submitted again after reconnecting;
//!   a rejected one is reported and the ring moves on.

use std::collections::VecDeque;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Poll};

use super::api::{NodeEvent, SmscSpec, SmscStats};
use super::conn::{Conn, ReadOutcome, READ_BUDGET};
use super::log::Level;
use super::node::{LinkDriver, SMSC};
use super::Backoff;
use crate::cimd2::session::{ClientEvent, ClientSession, SessionError};
use crate::message::Message;
use crate::ring::Outcome;

/// CIMD2 error code reported when a message cannot be put into a submit at all
/// (parameter formatting).
const ERR_UNENCODABLE: u32 = 8;

pub(super) struct SmscBridge {
    spec: SmscSpec,
    backoff: Backoff,
    conn: Option<Conn>,
    session: Option<ClientSession>,
    reconnect_at: Option<Instant>,
    inbuf: Vec<u8>,
    read_more: bool,
    /// An MO the ring could not take yet; the SMSC is answered once it does.
    held_mo: Option<Message>,
    /// The MT taken from the link and not yet answered by the SMSC: (seq, message).
    current_mt: Option<(u64, Message)>,
    /// `current_mt` was submitted on the present session and awaits its answer.
    mt_outstanding: bool,
    events: VecDeque<NodeEvent>,
    stats: SmscStats,
    shutting_down: bool,
}

impl SmscBridge {
    pub(super) fn new(spec: SmscSpec, backoff: Backoff, now: Instant) -> Self {
        SmscBridge {
            spec,
            backoff,
            conn: None,
            session: None,
            reconnect_at: Some(now),
            inbuf: Vec::with_capacity(16 * 1024),
            read_more: false,
            held_mo: None,
            current_mt: None,
            mt_outstanding: false,
            events: VecDeque::new(),
            stats: SmscStats::default(),
            shutting_down: false,
        }
    }

    pub(super) fn stats(&self) -> SmscStats {
        self.stats
    }

    pub(super) fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    pub(super) fn read_more(&self) -> bool {
        self.read_more
    }

    /// Nothing is half-way: no MO waiting for the ring, no MT waiting for the SMSC.
    pub(super) fn is_idle(&self) -> bool {
        self.held_mo.is_none() && self.current_mt.is_none()
    }

    pub(super) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let session = self.session.as_ref().and_then(|s| s.poll_timeout());
        match (session, self.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn close(&mut self, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            let _ = session.logout(now);
        }
        self.write();
        self.conn = None;
        self.session = None;
    }

    pub(super) fn on_ready(&mut self, poll: &Poll, readable: bool, writable: bool, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.connected && (readable || writable) {
            match conn.finish_connect() {
                Ok(true) => {
                    self.stats.connects += 1;
                    self.session = Some(ClientSession::new(self.spec.client.clone(), now));
                }
                Ok(false) => return,
                Err(e) => {
                    self.lost(poll, now, format!("connect to {}: {e}", self.spec.addr));
                    return;
                }
            }
        }
        if readable {
            self.read(poll, now);
        }
        self.write();
    }

    fn read(&mut self, poll: &Poll, now: Instant) {
        let (Some(conn), Some(session)) = (self.conn.as_mut(), self.session.as_mut()) else {
            return;
        };
        self.inbuf.clear();
        let outcome = conn.read_into(&mut self.inbuf);
        if !self.inbuf.is_empty() {
            session.handle_input(&self.inbuf, now);
        }
        match outcome {
            Ok(ReadOutcome::Open(n)) => self.read_more = n >= READ_BUDGET,
            Ok(ReadOutcome::Closed(_)) => self.lost(poll, now, "SMSC closed the connection".into()),
            Err(e) => self.lost(poll, now, format!("read: {e}")),
        }
    }

    fn write(&mut self) {
        let (Some(conn), Some(session)) = (self.conn.as_mut(), self.session.as_mut()) else {
            return;
        };
        if !conn.connected {
            return;
        }
        session.poll_transmit(conn.out_buf());
        // A write error shows up as a read error or EOF on the next readiness.
        let _ = conn.flush();
    }

    /// The connection is gone: tell the session (its events follow), plan a redial.
    fn lost(&mut self, poll: &Poll, now: Instant, reason: String) {
        if let Some(session) = self.session.as_mut() {
            session.handle_connection_lost(now);
            self.drain_session(now, None);
        }
        if let Some(mut conn) = self.conn.take() {
            let _ = poll.registry().deregister(&mut conn.stream);
        }
        if self.stats.logged_in || self.session.is_some() {
            crate::slog!(
                Level::Warn,
                "smsc={} event=down reason=\"{reason}\"",
                self.spec.addr
            );
            self.events.push_back(NodeEvent::SmscDown { reason });
        } else {
            crate::slog!(
                Level::Debug,
                "smsc={} event=connect_failed reason=\"{reason}\"",
                self.spec.addr
            );
        }
        self.session = None;
        // Never answered: the SMSC delivers it again on the next session.
        self.held_mo = None;
        self.stats.logged_in = false;
        self.read_more = false;
        self.mt_outstanding = false;
        if !self.shutting_down {
            self.reconnect_at = Some(now + self.backoff.next_delay());
        }
    }

    /// One pass: dial if due, timers, session events, MO retry, next MT, output.
    pub(super) fn turn(&mut self, poll: &Poll, link: &mut LinkDriver, now: Instant) {
        if self.read_more {
            self.read(poll, now);
        }
        self.dial_if_due(poll, now);
        if let Some(session) = self.session.as_mut() {
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
        }
        self.drain_session(now, Some(link));
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.is_closed() || (self.conn.is_none()))
        {
            self.lost(poll, now, "CIMD2 session closed".into());
        }
        self.retry_held_mo(link, now);
        self.submit_next_mt(link, now);
        if self.shutting_down && self.current_mt.is_none() {
            if let Some(session) = self.session.as_mut() {
                if session.is_ready() && session.can_submit() {
                    let _ = session.logout(now);
                }
            }
        }
        self.write();
    }

    fn dial_if_due(&mut self, poll: &Poll, now: Instant) {
        let Some(at) = self.reconnect_at else {
            return;
        };
        if now < at || self.conn.is_some() || self.shutting_down {
            return;
        }
        self.reconnect_at = None;
        match TcpStream::connect(self.spec.addr) {
            Ok(mut stream) => {
                match poll.registry().register(
                    &mut stream,
                    SMSC,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => self.conn = Some(Conn::new(stream, false)),
                    Err(_) => self.reconnect_at = Some(now + self.backoff.next_delay()),
                }
            }
            Err(_) => self.reconnect_at = Some(now + self.backoff.next_delay()),
        }
    }

    /// React to what the session reported. `link` is `None` when the connection is
    /// being torn down outside a turn; MO and MT outcomes need the link, and
    /// without it only bookkeeping happens (the MT stays current and is retried).
    fn drain_session(&mut self, now: Instant, mut link: Option<&mut LinkDriver>) {
        while let Some(ev) = self.session.as_mut().and_then(|s| s.poll_event()) {
            match ev {
                ClientEvent::LoggedIn => {
                    crate::slog!(Level::Info, "smsc={} event=logged_in", self.spec.addr);
                    self.stats.logged_in = true;
                    self.backoff.reset();
                    self.events.push_back(NodeEvent::SmscUp);
                }
                ClientEvent::LoginFailed { code, text } => {
                    crate::slog!(
                        Level::Error,
                        "smsc={} event=login_refused code={code} text={:?}",
                        self.spec.addr,
                        text.as_deref().unwrap_or("")
                    );
                    self.events.push_back(NodeEvent::SmscDown {
                        reason: format!("login refused: error {code} {}", text.unwrap_or_default()),
                    });
                }
                ClientEvent::SubmitAccepted { client_ref, .. } => {
                    self.finish_mt(link.as_deref_mut(), client_ref, Outcome::Accepted);
                    self.stats.mt_accepted += 1;
                }
                ClientEvent::SubmitRejected {
                    client_ref, code, ..
                } => {
                    self.finish_mt(link.as_deref_mut(), client_ref, Outcome::Rejected { code });
                    self.stats.mt_rejected += 1;
                }
                ClientEvent::SubmitFailed { .. } => {
                    // Not known to be accepted: submit it again on the next session.
                    self.mt_outstanding = false;
                }
                ClientEvent::Deliver(message) => {
                    // Without the link the connection is being torn down: leave the
                    // deliver unanswered, the SMSC sends it again.
                    let Some(l) = link.as_deref_mut() else {
                        continue;
                    };
                    self.stats.mo_received += 1;
                    if l.endpoint.send(&message).is_ok() {
                        self.ack_deliver(now);
                    } else {
                        self.stats.mo_backpressured += 1;
                        self.held_mo = Some(*message);
                    }
                }
                ClientEvent::StatusReport(_) => {
                    self.stats.status_reports += 1;
                    self.ack_deliver(now);
                }
                ClientEvent::ProtocolViolation(v) => {
                    self.stats.violations += 1;
                    let detail = format!("{v:?}");
                    crate::slog!(
                        Level::Warn,
                        "smsc={} event=protocol_violation detail=\"{detail}\"",
                        self.spec.addr
                    );
                    self.events.push_back(NodeEvent::SmscViolation { detail });
                }
                ClientEvent::Closed { reason } => {
                    self.stats.logged_in = false;
                    self.events.push_back(NodeEvent::SmscDown {
                        reason: format!("{reason:?}"),
                    });
                }
            }
        }
    }

    fn ack_deliver(&mut self, now: Instant) {
        if let Some(session) = self.session.as_mut() {
            let _ = session.ack_deliver(now);
        }
    }

    fn finish_mt(&mut self, link: Option<&mut LinkDriver>, client_ref: u64, outcome: Outcome) {
        let Some((seq, _)) = &self.current_mt else {
            return;
        };
        if *seq != client_ref {
            return;
        }
        let seq = *seq;
        let Some(link) = link else {
            return;
        };
        if let Err(e) = link.endpoint.mark_processed(seq, outcome) {
            crate::slog!(
                Level::Warn,
                "link={} event=mt_outcome_failed seq={seq} error=\"{e}\"",
                link.name()
            );
        }
        self.current_mt = None;
        self.mt_outstanding = false;
    }

    fn retry_held_mo(&mut self, link: &mut LinkDriver, now: Instant) {
        let Some(message) = &self.held_mo else {
            return;
        };
        if link.endpoint.send(message).is_ok() {
            self.held_mo = None;
            if let Some(session) = self.session.as_mut() {
                let _ = session.ack_deliver(now);
            }
        }
    }

    fn submit_next_mt(&mut self, link: &mut LinkDriver, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if self.mt_outstanding
            || !session.can_submit()
            || self.shutting_down && self.current_mt.is_none()
        {
            return;
        }
        let resubmit = self.current_mt.is_some();
        if !resubmit {
            let Some((seq, message)) = link.endpoint.next_received() else {
                return;
            };
            let mut m = message.clone();
            // The session echoes client_ref in its events: use the link seq.
            m.client_ref = seq;
            self.current_mt = Some((seq, m));
        }
        let Some((seq, message)) = &self.current_mt else {
            return;
        };
        match session.submit(message, now) {
            Ok(()) => {
                self.mt_outstanding = true;
                self.stats.mt_submitted += 1;
                if resubmit {
                    self.stats.mt_resubmitted += 1;
                }
            }
            Err(SessionError::Encode(e)) => {
                let seq = *seq;
                crate::slog!(
                    Level::Warn,
                    "smsc={} event=mt_unencodable seq={seq} error=\"{e}\"",
                    self.spec.addr
                );
                if let Err(e) = link.endpoint.mark_processed(
                    seq,
                    Outcome::Rejected {
                        code: ERR_UNENCODABLE,
                    },
                ) {
                    crate::slog!(
                        Level::Warn,
                        "link={} event=mt_outcome_failed seq={seq} error=\"{e}\"",
                        link.name()
                    );
                }
                self.stats.mt_rejected += 1;
                self.current_mt = None;
            }
            // Not ready or busy: try again next turn.
            Err(_) => {}
        }
    }
}
