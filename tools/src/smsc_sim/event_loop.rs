//! The simulator's mio loop: one thread, one `Poll`, every connection non-blocking.
//! After each wake every connection is serviced: input fed to its session, due timers
//! fired, the application part (answers, MO, status reports) run, output written.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use smslink::cimd2::session::{
    ServerConfig, ServerEvent, ServerSession, StatusReport, STATUS_DELIVERED,
};
use smslink::message::{Coding, Message};

use super::record::submit_line;
use super::time::cimd2_timestamp;
use super::{Shared, SimConfig};

/// Log a line on stderr; a closed stderr must not take the simulator down
/// (`eprintln!` would panic).
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
const READ_CHUNK: usize = 64 * 1024;

/// What to do with a submit once its processing time is over.
#[derive(Debug, Clone)]
enum Verdict {
    Accept {
        message: Box<Message>,
        status_report: bool,
    },
    Reject(u32),
    Nack,
}

struct PendingAnswer {
    at: Instant,
    verdict: Verdict,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    session: ServerSession,
    out: Vec<u8>,
    written: usize,
    packets_in: u64,
    answer: Option<PendingAnswer>,
    reports: VecDeque<StatusReport>,
    mo_next_at: Option<Instant>,
    mo_sent: u64,
    /// An injected MO on its way to this client: put back in the queue if the
    /// connection dies before the client answers.
    injected: Option<(u64, Message)>,
    /// Peer closed, fault cut, or session over: remove after this service pass.
    dead: bool,
}

/// The socket side: listener, connections, readiness.
pub(super) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    connections: HashMap<Token, Connection>,
    next_token: usize,
    read_buf: Vec<u8>,
    app: Smsc,
}

/// The SMSC side: what the simulated SMSC does with each session's events.
struct Smsc {
    config: SimConfig,
    shared: Arc<Shared>,
    record: Option<BufWriter<File>>,
    record_seq: u64,
    injected_seq: u64,
    rng: u64,
}

/// Marks the `client_ref` of injected MO messages.
const INJECTED_REF: u64 = 1 << 63;

impl EventLoop {
    pub fn bind(config: SimConfig, shared: Arc<Shared>, stop: Arc<AtomicBool>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let record = match &config.record {
            Some(path) => Some(BufWriter::new(
                File::options().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(EventLoop {
            poll,
            listener,
            waker,
            stop,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            read_buf: vec![0; READ_CHUNK],
            app: Smsc {
                rng: config.seed | 1,
                config,
                shared,
                record,
                record_seq: 0,
                injected_seq: 0,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.app.config.listen)
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now)?,
                    WAKER => {}
                    token => {
                        if event.is_readable() || event.is_read_closed() {
                            self.read(token, now);
                        }
                    }
                }
            }
            self.service_all(Instant::now());
        }
        if let Some(r) = self.app.record.as_mut() {
            r.flush()?;
        }
        Ok(())
    }

    fn accept(&mut self, now: Instant) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    // Small packets, one at a time: do not let Nagle hold them back.
                    stream.set_nodelay(true)?;
                    if self.app.config.log {
                        log!("smsc-sim: client {peer} connected");
                    }
                    let session = ServerSession::new(
                        ServerConfig {
                            user: self.app.config.user.clone(),
                            password: self.app.config.password.clone(),
                            response_timeout: self.app.config.response_timeout,
                            max_retries: self.app.config.max_retries,
                            checksum: true,
                            max_packet: 4096,
                        },
                        now,
                    );
                    self.connections.insert(
                        token,
                        Connection {
                            stream,
                            peer,
                            session,
                            out: Vec::new(),
                            written: 0,
                            packets_in: 0,
                            answer: None,
                            reports: VecDeque::new(),
                            mo_next_at: None,
                            mo_sent: 0,
                            injected: None,
                            dead: false,
                        },
                    );
                    self.app.shared.update(|c| c.connections += 1);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A connection that died between SYN and accept harms nothing else.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read(&mut self, token: Token, now: Instant) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        loop {
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.session.handle_connection_lost(now);
                    conn.dead = true;
                    return;
                }
                Ok(n) => {
                    let bytes = &self.read_buf[..n];
                    if let Some(limit) = self.app.config.drop_after {
                        // Count packets by their ETX; the one that reaches the limit is
                        // lost with the connection.
                        for (i, b) in bytes.iter().enumerate() {
                            if *b == 0x03 {
                                conn.packets_in += 1;
                                if conn.packets_in >= limit {
                                    conn.session.handle_input(&bytes[..i], now);
                                    conn.session.handle_connection_lost(now);
                                    conn.dead = true;
                                    conn.out.clear();
                                    if self.app.config.log {
                                        log!(
                                            "smsc-sim: client {}: fault: cut after {} packets",
                                            conn.peer,
                                            conn.packets_in
                                        );
                                    }
                                    self.app.shared.update(|c| c.drops += 1);
                                    return;
                                }
                            }
                        }
                    }
                    conn.session.handle_input(bytes, now);
                    // A short read emptied the socket; the next arrival is a new
                    // epoll edge, so another read would only say EAGAIN.
                    if n < self.read_buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    conn.session.handle_connection_lost(now);
                    conn.dead = true;
                    return;
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.connections
            .values()
            .filter_map(|c| {
                let mo = c.mo_next_at.filter(|_| c.session.can_deliver());
                [
                    c.session.poll_timeout(),
                    c.answer.as_ref().map(|a| a.at),
                    mo,
                ]
                .into_iter()
                .flatten()
                .min()
            })
            .min()
    }

    fn service_all(&mut self, now: Instant) {
        for conn in self.connections.values_mut() {
            self.app.service(conn, now);
        }
        self.connections.retain(|_, c| {
            if c.dead {
                // Fails only for a socket that is already gone; it is dropped either way.
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
            }
            !c.dead
        });
    }
}

impl Smsc {
    /// Run one connection: due timers, SMSC decisions, output.
    fn service(&mut self, conn: &mut Connection, now: Instant) {
        if !conn.dead {
            if conn.session.poll_timeout().is_some_and(|t| t <= now) {
                conn.session.handle_timeout(now);
            }
            self.drain_events(conn, now);
            self.answer_if_due(conn, now);
            self.send_requests(conn, now);
            self.drain_events(conn, now);
            conn.session.poll_transmit(&mut conn.out);
            flush(conn);
            if conn.session.is_closed() {
                conn.dead = true;
            }
        }
        if conn.dead {
            if let Some((_, message)) = conn.injected.take() {
                self.shared.injected.lock().push_front(message);
            }
            self.shared.update(|c| c.disconnections += 1);
            if self.config.log {
                log!("smsc-sim: client {} disconnected", conn.peer);
            }
        }
    }

    fn drain_events(&mut self, conn: &mut Connection, now: Instant) {
        while let Some(event) = conn.session.poll_event() {
            match event {
                ServerEvent::LoggedIn { user } => {
                    self.shared.update(|c| c.logins += 1);
                    if self.config.log {
                        log!("smsc-sim: client {}: logged in as {user:?}", conn.peer);
                    }
                    if self.config.mo_rate > 0.0 && conn.mo_next_at.is_none() {
                        conn.mo_next_at = Some(now);
                    }
                }
                ServerEvent::LoginRejected { user } => {
                    self.shared.update(|c| c.login_failures += 1);
                    if self.config.log {
                        log!("smsc-sim: client {}: login refused for {user:?}", conn.peer);
                    }
                }
                ServerEvent::Submit {
                    message,
                    status_report_request,
                    ..
                } => {
                    self.shared.update(|c| c.submits_received += 1);
                    conn.answer = Some(self.decide(message, status_report_request != 0, now));
                }
                ServerEvent::DeliverAcked { client_ref } => {
                    Self::injected_answered(conn, client_ref);
                    self.shared.update(|c| c.mo_acked += 1)
                }
                ServerEvent::DeliverRejected { client_ref, .. } => {
                    Self::injected_answered(conn, client_ref);
                    self.shared.update(|c| c.mo_rejected += 1)
                }
                ServerEvent::DeliverFailed { client_ref, reason } => {
                    self.shared.update(|c| c.mo_failed += 1);
                    if self.config.log {
                        log!(
                            "smsc-sim: client {}: MO {client_ref} failed: {reason:?}",
                            conn.peer
                        );
                    }
                    // A client that stops answering is cut, as an SMSC would.
                    conn.dead = true;
                }
                ServerEvent::StatusReportAcked => self.shared.update(|c| c.reports_acked += 1),
                ServerEvent::StatusReportRejected { .. } => {}
                ServerEvent::StatusReportFailed { .. } => conn.dead = true,
                ServerEvent::ProtocolViolation(v) => {
                    self.shared.update(|c| c.violations += 1);
                    if self.config.log {
                        log!("smsc-sim: client {}: protocol violation: {v:?}", conn.peer);
                    }
                }
                ServerEvent::Closed { reason } => {
                    if self.config.log {
                        log!("smsc-sim: client {}: session closed: {reason:?}", conn.peer);
                    }
                }
            }
        }
    }

    /// The client answered a deliver: if it was the injected one, it is done.
    fn injected_answered(conn: &mut Connection, client_ref: u64) {
        if conn
            .injected
            .as_ref()
            .is_some_and(|(r, _)| *r == client_ref)
        {
            conn.injected = None;
        }
    }

    fn decide(
        &mut self,
        message: Box<Message>,
        status_report: bool,
        now: Instant,
    ) -> PendingAnswer {
        let mut at = now + self.config.processing_delay;
        if self.config.late_fraction > 0.0 && self.chance(self.config.late_fraction) {
            at += self.config.late;
        }
        let rule = self
            .shared
            .reject_rules
            .lock()
            .iter()
            .find(|(prefix, _)| message.to.as_str().starts_with(prefix.as_str()))
            .map(|(_, code)| *code);
        let verdict = if let Some(code) = rule {
            Verdict::Reject(code)
        } else if self.chance(self.config.nack_fraction) {
            Verdict::Nack
        } else if self.chance(self.config.reject_fraction) {
            Verdict::Reject(self.config.reject_code)
        } else {
            Verdict::Accept {
                message,
                status_report,
            }
        };
        PendingAnswer { at, verdict }
    }

    fn answer_if_due(&mut self, conn: &mut Connection, now: Instant) {
        if conn.answer.as_ref().is_none_or(|a| a.at > now) {
            return;
        }
        let Some(answer) = conn.answer.take() else {
            return;
        };
        if conn.session.pending_submit().is_none() {
            // The client went away or logged out meanwhile.
            return;
        }
        let result = match answer.verdict {
            Verdict::Nack => {
                self.shared.update(|c| c.submits_nacked += 1);
                conn.session.nack_submit(now)
            }
            Verdict::Reject(code) => {
                self.shared.update(|c| c.submits_rejected += 1);
                conn.session.reject_submit(code, now)
            }
            Verdict::Accept {
                message,
                status_report,
            } => {
                let timestamp = cimd2_timestamp(SystemTime::now());
                self.record_submit(&message, &timestamp);
                {
                    let mut kept = self.shared.accepted.lock();
                    if kept.len() < super::MAX_KEPT_SUBMITS {
                        kept.push((*message).clone());
                    }
                }
                self.shared.update(|c| c.submits_accepted += 1);
                if status_report {
                    conn.reports.push_back(StatusReport {
                        destination: message.to.as_str().to_owned(),
                        originator: None,
                        sc_timestamp: timestamp.clone(),
                        status: STATUS_DELIVERED,
                        status_error: None,
                        discharge_time: Some(timestamp.clone()),
                    });
                }
                conn.session
                    .accept_submit(message.to.as_str(), &timestamp, now)
            }
        };
        if let Err(e) = result {
            if self.config.log {
                log!("smsc-sim: client {}: cannot answer submit: {e}", conn.peer);
            }
        }
    }

    fn send_requests(&mut self, conn: &mut Connection, now: Instant) {
        if !conn.session.can_deliver() {
            return;
        }
        if let Some(report) = conn.reports.pop_front() {
            match conn.session.status_report(&report, now) {
                Ok(()) => self.shared.update(|c| c.reports_sent += 1),
                Err(e) if self.config.log => {
                    log!("smsc-sim: client {}: cannot send report: {e}", conn.peer)
                }
                Err(_) => {}
            }
            return;
        }
        if conn.injected.is_none() {
            let next = self.shared.injected.lock().pop_front();
            if let Some(mut message) = next {
                self.injected_seq += 1;
                // Own numbering space, apart from the `mo_rate` traffic's 1, 2, ...
                message.client_ref = INJECTED_REF | self.injected_seq;
                match conn.session.deliver(&message, now) {
                    Ok(()) => {
                        conn.injected = Some((message.client_ref, message));
                        self.shared.update(|c| c.mo_sent += 1);
                    }
                    Err(e) => {
                        // `can_deliver` held, so this is the message itself (say, too
                        // long for one SMS): trying again would fail the same way.
                        log!("smsc-sim: cannot deliver injected MO: {e}");
                        self.shared.update(|c| c.mo_failed += 1);
                    }
                }
                return;
            }
        }
        let Some(due) = conn.mo_next_at else {
            return;
        };
        if due > now {
            return;
        }
        let n = conn.mo_sent + 1;
        let mut text = self.config.mo_text.replace("{n}", &n.to_string());
        if text.contains("{t}") {
            // Send time, so that a receiver can measure MO latency end to end.
            let micros = SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            text = text.replace("{t}", &micros.to_string());
        }
        match Message::text(&self.config.mo_from, &self.config.mo_to, &text) {
            Ok(mut m) => {
                m.client_ref = n;
                debug_assert_eq!(m.coding, Coding::Text);
                match conn.session.deliver(&m, now) {
                    Ok(()) => {
                        conn.mo_sent = n;
                        self.shared.update(|c| c.mo_sent += 1);
                    }
                    Err(e) => {
                        if self.config.log {
                            log!("smsc-sim: cannot send MO: {e}");
                        }
                        conn.mo_next_at = None;
                        return;
                    }
                }
            }
            Err(e) => {
                if self.config.log {
                    log!("smsc-sim: bad MO settings: {e}");
                }
                conn.mo_next_at = None;
                return;
            }
        }
        let finished = self.config.mo_count > 0 && conn.mo_sent >= self.config.mo_count;
        conn.mo_next_at = if finished {
            None
        } else {
            let interval = Duration::from_secs_f64(1.0 / self.config.mo_rate);
            // Keep the average rate, but never burst to catch up after a stall.
            Some((due + interval).max(now))
        };
    }

    fn record_submit(&mut self, message: &Message, timestamp: &str) {
        self.record_seq += 1;
        let Some(record) = self.record.as_mut() else {
            return;
        };
        let line = submit_line(self.record_seq, message, timestamp);
        let written = writeln!(record, "{line}").and_then(|()| record.flush());
        if let Err(e) = written {
            log!("smsc-sim: cannot write the record: {e}");
        }
    }

    /// Pseudo-random draw (xorshift64*): true with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (r as f64 / (1u64 << 53) as f64) < p
    }
}

/// Write what is queued until the socket would block; the rest waits for WRITABLE.
fn flush(conn: &mut Connection) {
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => {
                conn.dead = true;
                return;
            }
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.dead = true;
                return;
            }
        }
    }
    conn.out.clear();
    conn.written = 0;
}
