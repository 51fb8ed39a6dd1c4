//! The simulator's mio loop: one thread, one `Poll`, every connection non-blocking.
//! After each wake every connection is serviced: input fed to its session, due timers
//! fired, the application part (answers, MO, delivery reports) run, output written.
//! Nothing here knows the protocol: each connection's session is a [`SimSession`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use smslink::message::{Coding, Message};
use smslink::runtime::log::{clip, LimitKey, Limiter};
use smslink::runtime::{AcceptError, AcceptPause};

use super::record::{mo_line, submit_line};
use super::session::{Accepted, Answer, DeliveryId, Report, SimEvent, SimSession, SubmitId};
use super::time::cimd2_timestamp;
use super::{AnswerOrder, Shared, SimConfig};

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
/// Lines about one client address: a few per window, then a count.
const LOG_WINDOW: Duration = Duration::from_secs(10);
const LOG_BURST: u32 = 5;
const LOG_ADDRESSES: usize = 256;

/// What to do with a submit once its processing time is over.
#[derive(Debug, Clone)]
enum Verdict {
    Accept { message: Box<Message>, report: bool },
    Reject(u32),
    Nack,
    Throttle,
}

struct PendingAnswer {
    id: SubmitId,
    at: Instant,
    verdict: Verdict,
}

/// A deliver of ours waiting for the client's answer.
enum Outgoing {
    /// `mo_rate` traffic: counted; sent again only when refused for now.
    Generated(Box<Message>),
    /// From `inject_mo`: queued again if the connection dies first.
    Injected(Box<Message>),
    /// Queued again if the connection dies first.
    Report(Report),
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    session: Box<dyn SimSession>,
    out: Vec<u8>,
    written: usize,
    /// Submits waiting for their processing time, in arrival order.
    answers: VecDeque<PendingAnswer>,
    mo_next_at: Option<Instant>,
    mo_sent: u64,
    next_delivery: DeliveryId,
    /// Delivers in flight by id (ids grow, so the order is the sending order).
    in_flight: BTreeMap<DeliveryId, Outgoing>,
    /// Peer closed, fault cut, or session over: remove after this service pass.
    dead: bool,
    /// When the client last sent something (idle connections are closed).
    last_input: Instant,
}

impl Connection {
    fn take_delivery_id(&mut self) -> DeliveryId {
        self.next_delivery += 1;
        self.next_delivery
    }
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
    /// Accepting paused after a failure for lack of resources (descriptors).
    accept_pause: AcceptPause,
}

/// The SMSC side: what the simulated SMSC does with each session's events.
struct Smsc {
    config: SimConfig,
    shared: Arc<Shared>,
    record: Option<BufWriter<File>>,
    record_mo: Option<BufWriter<File>>,
    /// MO acknowledged so far: the MO record's `mo`.
    mo_acked: u64,
    /// Accepted submits so far: the record's `seq`, and SMPP's message_id.
    accepted_seq: u64,
    /// Reports waiting for their time (`report_delay` after the acceptance) and for a
    /// connection that can take them: a report need not go back the way its submit
    /// came (an SMPP transmitter's receipts go to a receiver bind). Due times only
    /// grow, so the front is due first.
    reports: VecDeque<(Instant, Report)>,
    /// MO refused for now, with when to deliver them again (oldest first).
    retry_mo: VecDeque<(Instant, Box<Message>)>,
    rng: u64,
    /// Lines about each client address, rate-limited.
    log_limit: Limiter<std::net::IpAddr>,
}

impl EventLoop {
    pub fn bind(config: SimConfig, shared: Arc<Shared>, stop: Arc<AtomicBool>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let append = |path: &Option<PathBuf>| -> io::Result<Option<BufWriter<File>>> {
            path.as_ref()
                .map(|p| {
                    Ok(BufWriter::new(
                        File::options().create(true).append(true).open(p)?,
                    ))
                })
                .transpose()
        };
        let record = append(&config.record)?;
        let record_mo = append(&config.record_mo)?;
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
                record_mo,
                mo_acked: 0,
                accepted_seq: 0,
                reports: VecDeque::new(),
                retry_mo: VecDeque::new(),
                log_limit: Limiter::new(LOG_WINDOW, LOG_BURST, LOG_ADDRESSES),
            },
            accept_pause: AcceptPause::default(),
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
            if self.accept_pause.is_due(now) {
                self.accept(now)?;
            }
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

    /// Accept what waits. Out of descriptors (or memory), accepting pauses and is
    /// retried later; the simulator and its other clients go on.
    fn accept(&mut self, now: Instant) -> io::Result<()> {
        if self.accept_pause.is_paused(now) {
            return Ok(());
        }
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let failed = self.accept_pause.succeeded();
                    if failed > 0 && self.app.config.log {
                        log!("smsc-sim: accepting again after {failed} failed attempts");
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    // Small packets, one at a time: do not let Nagle hold them back.
                    let _ = stream.set_nodelay(true);
                    self.app.log_about(peer, now, |held| {
                        format!("smsc-sim: client {peer} connected{held}")
                    });
                    self.connections.insert(
                        token,
                        Connection {
                            stream,
                            peer,
                            session: new_session(&self.app.config, now),
                            out: Vec::new(),
                            written: 0,
                            answers: VecDeque::new(),
                            mo_next_at: None,
                            mo_sent: 0,
                            next_delivery: 0,
                            in_flight: BTreeMap::new(),
                            dead: false,
                            last_input: now,
                        },
                    );
                    self.app.shared.update(|c| c.connections += 1);
                }
                Err(e) => match AcceptError::of(&e) {
                    AcceptError::Drained => return Ok(()),
                    // A connection that died between SYN and accept harms nothing else.
                    AcceptError::Again => continue,
                    AcceptError::Pause => {
                        let (pause, first) = self.accept_pause.failed(now);
                        if first && self.app.config.log {
                            log!(
                                "smsc-sim: accept failed: {e}; retrying in {} ms",
                                pause.as_millis()
                            );
                        }
                        return Ok(());
                    }
                },
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
                    conn.last_input = now;
                    let bytes = &self.read_buf[..n];
                    if let Some(limit) = self.app.config.drop_after {
                        // The packet that reaches the limit is lost with the connection.
                        if let Some(last) = conn.session.packet_limit(bytes, limit) {
                            conn.session.handle_input(&bytes[..last], now);
                            conn.session.handle_connection_lost(now);
                            conn.dead = true;
                            conn.out.clear();
                            if self.app.config.log {
                                log!(
                                    "smsc-sim: client {}: fault: cut after {} packets",
                                    conn.peer,
                                    conn.session.packets_in()
                                );
                            }
                            self.app.shared.update(|c| c.drops += 1);
                            return;
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
        let order = self.app.config.answer_order;
        // New MO wait behind those refused for now.
        let mo_blocked = !self.app.retry_mo.is_empty();
        let mut timers = self
            .connections
            .values()
            .filter_map(|c| {
                let mo = c
                    .mo_next_at
                    .filter(|_| c.session.can_deliver() && !mo_blocked);
                [c.session.poll_timeout(), next_answer(&c.answers, order), mo]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min();
        let idle = self.app.config.idle_timeout;
        if !idle.is_zero() {
            let first_idle = self.connections.values().map(|c| c.last_input + idle).min();
            timers = [timers, first_idle].into_iter().flatten().min();
        }
        timers = [timers, self.accept_pause.retry_at()]
            .into_iter()
            .flatten()
            .min();
        // Reports and injected MO wait for a client that can take them.
        let now = Instant::now();
        let injected = || !mo_blocked && !self.app.shared.injected.lock().is_empty();
        let queued = match self.app.reports.front() {
            Some((due, _)) if *due > now => {
                timers = Some(timers.map_or(*due, |t| t.min(*due)));
                injected()
            }
            Some(_) => true,
            None => injected(),
        };
        if let Some((due, _)) = self.app.retry_mo.front() {
            timers = Some(timers.map_or(*due, |t| t.min(*due)));
        }
        if queued && self.connections.values().any(|c| c.session.can_deliver()) {
            return Some(now);
        }
        timers
    }

    fn service_all(&mut self, now: Instant) {
        for conn in self.connections.values_mut() {
            self.app.service(conn, now);
        }
        self.app.log_quiet(now);
        self.connections.retain(|_, c| {
            if c.dead {
                // Fails only for a socket that is already gone; it is dropped either way.
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
            }
            !c.dead
        });
    }
}

/// When the next answer of a connection is due: the first one's time in order, the
/// earliest one's when shuffled.
fn next_answer(answers: &VecDeque<PendingAnswer>, order: AnswerOrder) -> Option<Instant> {
    match order {
        AnswerOrder::InOrder => answers.front().map(|a| a.at),
        AnswerOrder::Shuffled => answers.iter().map(|a| a.at).min(),
    }
}

impl Smsc {
    /// Run one connection: due timers, SMSC decisions, output.
    fn service(&mut self, conn: &mut Connection, now: Instant) {
        let idle = self.config.idle_timeout;
        if !conn.dead && !idle.is_zero() && now >= conn.last_input + idle {
            conn.session.handle_connection_lost(now);
            conn.dead = true;
            let peer = conn.peer;
            self.log_about(peer, now, |held| {
                format!(
                    "smsc-sim: client {peer}: closed after {} s without input{held}",
                    idle.as_secs()
                )
            });
        }
        if !conn.dead {
            if conn.session.poll_timeout().is_some_and(|t| t <= now) {
                conn.session.handle_timeout(now);
            }
            self.drain_events(conn, now);
            self.answer_due(conn, now);
            self.send_requests(conn, now);
            self.drain_events(conn, now);
            conn.session.poll_transmit(&mut conn.out);
            flush(conn);
            let unwritten = conn.out.len() - conn.written;
            if unwritten > self.config.max_output {
                conn.session.handle_connection_lost(now);
                conn.dead = true;
                let (peer, limit) = (conn.peer, self.config.max_output);
                self.log_about(peer, now, |held| {
                    format!(
                        "smsc-sim: client {peer}: dropped: {unwritten} bytes of output unwritten, over the limit of {limit} (it does not read){held}"
                    )
                });
            }
            if conn.session.is_closed() {
                conn.dead = true;
            }
        }
        if conn.dead {
            // What the client never answered goes to the next one, in order.
            let mut injected = self.shared.injected.lock();
            for (_, outgoing) in std::mem::take(&mut conn.in_flight).into_iter().rev() {
                match outgoing {
                    Outgoing::Generated(_) => {}
                    Outgoing::Injected(message) => injected.push_front(*message),
                    Outgoing::Report(report) => self.reports.push_front((now, report)),
                }
            }
            drop(injected);
            self.shared.update(|c| c.disconnections += 1);
            let peer = conn.peer;
            self.log_about(peer, now, |held| {
                format!("smsc-sim: client {peer} disconnected{held}")
            });
        }
    }

    fn drain_events(&mut self, conn: &mut Connection, now: Instant) {
        while let Some(event) = conn.session.poll_event() {
            match event {
                SimEvent::LoggedIn { user, receives } => {
                    self.shared.update(|c| c.logins += 1);
                    let peer = conn.peer;
                    self.log_about(peer, now, |held| {
                        format!(
                            "smsc-sim: client {peer}: logged in as \"{}\"{held}",
                            smslink::runtime::log::excerpt(user.as_bytes())
                        )
                    });
                    if receives && self.config.mo_rate > 0.0 && conn.mo_next_at.is_none() {
                        conn.mo_next_at = Some(now);
                    }
                }
                SimEvent::LoginRejected { user } => {
                    self.shared.update(|c| c.login_failures += 1);
                    let peer = conn.peer;
                    self.log_about(peer, now, |held| {
                        format!(
                            "smsc-sim: client {peer}: login refused for \"{}\"{held}",
                            smslink::runtime::log::excerpt(user.as_bytes())
                        )
                    });
                }
                SimEvent::Submit {
                    id,
                    message,
                    wants_report,
                } => {
                    self.shared.update(|c| c.submits_received += 1);
                    let answer = self.decide(id, message, wants_report, now);
                    conn.answers.push_back(answer);
                }
                SimEvent::Delivered { id } => match conn.in_flight.remove(&id) {
                    Some(Outgoing::Report(_)) => self.shared.update(|c| c.reports_acked += 1),
                    Some(Outgoing::Generated(message) | Outgoing::Injected(message)) => {
                        self.record_mo(&message);
                        self.shared.update(|c| c.mo_acked += 1);
                    }
                    None => {}
                },
                SimEvent::Refused { id, retry } => match conn.in_flight.remove(&id) {
                    // A refused report is not sent again.
                    Some(Outgoing::Report(_)) | None => {}
                    Some(Outgoing::Generated(message) | Outgoing::Injected(message)) if retry => {
                        self.retry_mo
                            .push_back((now + self.config.mo_retry_after, message));
                        self.shared.update(|c| c.mo_retried += 1);
                    }
                    Some(_) => self.shared.update(|c| c.mo_rejected += 1),
                },
                SimEvent::Failed { id, reason } => {
                    if !matches!(conn.in_flight.get(&id), Some(Outgoing::Report(_))) {
                        self.shared.update(|c| c.mo_failed += 1);
                    }
                    let peer = conn.peer;
                    self.log_about(peer, now, |held| {
                        format!(
                            "smsc-sim: client {peer}: deliver {id} failed: {}{held}",
                            clip(&reason.to_string())
                        )
                    });
                    // A client that stops answering is cut, as an SMSC would; what it
                    // left unanswered stays in flight and is queued again.
                    conn.dead = true;
                }
                SimEvent::Violation(v) => {
                    self.shared.update(|c| c.violations += 1);
                    let peer = conn.peer;
                    self.log_about(peer, now, |held| {
                        format!(
                            "smsc-sim: client {peer}: protocol violation: {}{held}",
                            clip(&v.to_string())
                        )
                    });
                }
                SimEvent::Closed(reason) => {
                    let peer = conn.peer;
                    self.log_about(peer, now, |held| {
                        format!(
                            "smsc-sim: client {peer}: session closed: {}{held}",
                            clip(&reason.to_string())
                        )
                    });
                }
            }
        }
    }

    fn decide(
        &mut self,
        id: SubmitId,
        message: Box<Message>,
        report: bool,
        now: Instant,
    ) -> PendingAnswer {
        let delay = match self.config.answer_order {
            AnswerOrder::InOrder => self.config.processing_delay,
            AnswerOrder::Shuffled => self.config.processing_delay.mul_f64(2.0 * self.uniform()),
        };
        let mut at = now + delay;
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
        } else if self.chance(self.config.throttle_fraction) {
            Verdict::Throttle
        } else if self.chance(self.config.reject_fraction) {
            Verdict::Reject(self.config.reject_code)
        } else {
            Verdict::Accept { message, report }
        };
        PendingAnswer { id, at, verdict }
    }

    /// Answer every submit whose time has come, in the configured order.
    fn answer_due(&mut self, conn: &mut Connection, now: Instant) {
        match self.config.answer_order {
            AnswerOrder::InOrder => {
                while conn.answers.front().is_some_and(|a| a.at <= now) {
                    if let Some(answer) = conn.answers.pop_front() {
                        self.answer(conn, answer, now);
                    }
                }
            }
            AnswerOrder::Shuffled => {
                let (mut due, later): (Vec<_>, Vec<_>) =
                    conn.answers.drain(..).partition(|a| a.at <= now);
                conn.answers = later.into();
                // Fisher-Yates.
                for i in (1..due.len()).rev() {
                    let j = (self.next_random() % (i as u64 + 1)) as usize;
                    due.swap(i, j);
                }
                for answer in due {
                    self.answer(conn, answer, now);
                }
            }
        }
    }

    fn answer(&mut self, conn: &mut Connection, answer: PendingAnswer, now: Instant) {
        if !conn.session.is_pending(answer.id) {
            // The client went away or logged out meanwhile.
            return;
        }
        let id = answer.id;
        let result = match answer.verdict {
            Verdict::Nack => {
                self.shared.update(|c| c.submits_nacked += 1);
                conn.session.answer(id, &Answer::Nack, now)
            }
            Verdict::Throttle => {
                self.shared.update(|c| c.submits_throttled += 1);
                conn.session.answer(id, &Answer::Throttle, now)
            }
            Verdict::Reject(code) => {
                self.shared.update(|c| c.submits_rejected += 1);
                conn.session.answer(id, &Answer::Reject(code), now)
            }
            Verdict::Accept { message, report } => {
                let timestamp = cimd2_timestamp(SystemTime::now());
                self.accepted_seq += 1;
                let message_id = self.accepted_seq.to_string();
                self.record_submit(&message, &timestamp);
                {
                    let mut kept = self.shared.accepted.lock();
                    if kept.len() < super::MAX_KEPT_SUBMITS {
                        kept.push((*message).clone());
                    }
                }
                self.shared.update(|c| c.submits_accepted += 1);
                let accepted = Accepted {
                    message_id: &message_id,
                    timestamp: &timestamp,
                    destination: message.to.as_str(),
                };
                let result = conn.session.answer(id, &Answer::Accept(accepted), now);
                if report {
                    let due = now + self.config.report_delay;
                    self.reports.push_back((
                        due,
                        Report {
                            message_id,
                            from: message.from,
                            to: message.to,
                            text: message.text_str().unwrap_or_default().to_owned(),
                            timestamp,
                        },
                    ));
                }
                result
            }
        };
        if let Err(e) = result {
            let peer = conn.peer;
            self.log_about(peer, now, |held| {
                format!(
                    "smsc-sim: client {peer}: cannot answer submit: {}{held}",
                    clip(&e.to_string())
                )
            });
        }
    }

    /// Fill the client's window (CIMD2: one at a time): reports first, then injected
    /// MO, then one `mo_rate` message when it is due.
    fn send_requests(&mut self, conn: &mut Connection, now: Instant) {
        while !conn.dead && conn.session.can_deliver() {
            let report_due = self.reports.front().is_some_and(|(due, _)| *due <= now);
            if let Some((_, report)) = report_due.then(|| self.reports.pop_front()).flatten() {
                let id = conn.take_delivery_id();
                match conn.session.report(id, &report, now) {
                    Ok(()) => {
                        conn.in_flight.insert(id, Outgoing::Report(report));
                        self.shared.update(|c| c.reports_sent += 1);
                    }
                    // `can_deliver` held, so this is the report itself: drop it.
                    Err(e) => log!("smsc-sim: client {}: cannot send report: {e}", conn.peer),
                }
                continue;
            }
            // MO refused for now go first, when due; newer MO wait behind them.
            if let Some((due, _)) = self.retry_mo.front() {
                if *due > now {
                    return;
                }
                if let Some((_, message)) = self.retry_mo.pop_front() {
                    let id = conn.take_delivery_id();
                    match conn.session.deliver(id, &message, now) {
                        Ok(()) => {
                            conn.in_flight.insert(id, Outgoing::Injected(message));
                        }
                        Err(e) => log!("smsc-sim: cannot deliver MO again: {e}"),
                    }
                }
                continue;
            }
            let injected = self.shared.injected.lock().pop_front();
            if let Some(message) = injected {
                let id = conn.take_delivery_id();
                match conn.session.deliver(id, &message, now) {
                    Ok(()) => {
                        conn.in_flight
                            .insert(id, Outgoing::Injected(Box::new(message)));
                        self.shared.update(|c| c.mo_sent += 1);
                    }
                    Err(e) => {
                        // The message itself (say, too long for one SMS): trying again
                        // would fail the same way.
                        log!("smsc-sim: cannot deliver injected MO: {e}");
                        self.shared.update(|c| c.mo_failed += 1);
                    }
                }
                continue;
            }
            self.send_generated_mo(conn, now);
            return;
        }
    }

    fn send_generated_mo(&mut self, conn: &mut Connection, now: Instant) {
        let Some(due) = conn.mo_next_at else {
            return;
        };
        if due > now {
            return;
        }
        let n = conn.mo_sent + 1;
        let number = n.to_string();
        let mut text = self
            .config
            .mo_text
            .replace("{num}", &number)
            .replace("{n}", &number);
        if text.contains("{t}") {
            // Send time, so that a receiver can measure MO latency end to end.
            let micros = SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            text = text.replace("{t}", &micros.to_string());
        }
        let sent = Message::text(&self.config.mo_from, &self.config.mo_to, &text)
            .map_err(|e| format!("bad MO settings: {e}"))
            .and_then(|m| {
                debug_assert_eq!(m.coding, Coding::Text);
                let id = conn.take_delivery_id();
                conn.session
                    .deliver(id, &m, now)
                    .map(|()| (id, m))
                    .map_err(|e| format!("cannot send MO: {e}"))
            });
        match sent {
            Ok((id, m)) => {
                conn.in_flight.insert(id, Outgoing::Generated(Box::new(m)));
                conn.mo_sent = n;
                self.shared.update(|c| c.mo_sent += 1);
            }
            Err(e) => {
                if self.config.log {
                    log!("smsc-sim: {e}");
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
            if self.config.mo_queue {
                // This MO waited behind `queued` others that were due meanwhile.
                let queued =
                    (now.saturating_duration_since(due).as_secs_f64() * self.config.mo_rate) as u64;
                self.shared
                    .update(|c| c.mo_queue_peak = c.mo_queue_peak.max(queued));
                Some(due + interval)
            } else {
                // Keep the average rate, but never burst to catch up after a stall.
                Some((due + interval).max(now))
            }
        };
    }

    fn record_mo(&mut self, message: &Message) {
        self.mo_acked += 1;
        let Some(record) = self.record_mo.as_mut() else {
            return;
        };
        let line = mo_line(self.mo_acked, message);
        let written = writeln!(record, "{line}").and_then(|()| record.flush());
        if let Err(e) = written {
            log!("smsc-sim: cannot write the MO record: {e}");
        }
    }

    fn record_submit(&mut self, message: &Message, timestamp: &str) {
        let Some(record) = self.record.as_mut() else {
            return;
        };
        let line = submit_line(self.accepted_seq, message, timestamp);
        let written = writeln!(record, "{line}").and_then(|()| record.flush());
        if let Err(e) = written {
            log!("smsc-sim: cannot write the record: {e}");
        }
    }

    /// Log a line about client `peer` (when logging is on), at most a few per
    /// address and window; `line` gets ` (N similar lines held back)` when some were.
    fn log_about(&mut self, peer: SocketAddr, now: Instant, line: impl FnOnce(&str) -> String) {
        if !self.config.log {
            return;
        }
        if let Some(held) = self.log_limit.allow(&peer.ip(), now) {
            let held = if held > 0 {
                format!(" ({held} similar lines held back)")
            } else {
                String::new()
            };
            log!("{}", line(&held));
        }
    }

    /// Counts of lines held back for addresses that have gone quiet.
    fn log_quiet(&mut self, now: Instant) {
        if !self.config.log {
            return;
        }
        for (key, count) in self.log_limit.take_quiet(now) {
            let from = match key {
                LimitKey::Key(ip) => ip.to_string(),
                LimitKey::Others => "other addresses".to_owned(),
            };
            log!(
                "smsc-sim: {count} more lines about {from} held back in the last {} s",
                LOG_WINDOW.as_secs()
            );
        }
    }

    /// Next pseudo-random number (xorshift64*).
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (no draw when `p` is zero, so a fault left off does
    /// not change the others' draws).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.uniform() < p
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

/// The session for a new connection.
pub(super) fn new_session(config: &SimConfig, now: Instant) -> Box<dyn SimSession> {
    match config.protocol {
        super::Protocol::Cimd2 => Box::new(super::cimd2::Cimd2Link::new(config, now)),
        super::Protocol::Smpp => Box::new(super::smpp::SmppLink::new(config, now)),
    }
}
