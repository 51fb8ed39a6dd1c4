//! The application side of CIMD2: logs in, submits one message at a time, and hands
//! the SMSC's delivers to the application, answering each only when the application
//! says so (that is how a full buffer back-pressures the SMSC).

use crate::sms::number::NumberConfig;
use std::time::{Duration, Instant};

use super::core::{negative, positive, Answer, Core, Role, SessionEvent, ERR_SYNTAX};
use super::{CloseReason, FailReason, SessionError, StatusReport, Violation};
use crate::cimd2::{message_from_packet, param, submit_packet, Operation, Packet};
use crate::message::Message;

/// Settings of a [`ClientSession`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// 010 user identity.
    pub user: String,
    /// 011 password.
    pub password: String,
    /// Send alive (40) after this long without a request of ours (incoming traffic
    /// does not count: it says nothing about our way out); `Duration::ZERO` turns it off.
    pub keepalive: Duration,
    /// How long to wait for the response to a request before sending it again.
    pub response_timeout: Duration,
    /// Retransmissions after the first try before the request fails.
    pub max_retries: u32,
    /// Append the optional checksum to packets we send (Kannel always does).
    pub checksum: bool,
    /// Largest packet the decoder accepts, in bytes.
    pub max_packet: usize,
    /// 056 status report request sent with every submit (0: none, and 056 is left
    /// out; Kannel asks with 14: delivered, failed and buffered reports). The
    /// reports become report messages on the link.
    pub status_report_request: u32,
    /// How this SMSC writes numbers (CIMD2 has no type of number): MO addresses are
    /// put in normal form by it, MT recipients written back (`Cimd2Client`).
    pub numbers: NumberConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user: String::new(),
            password: String::new(),
            keepalive: Duration::from_secs(60),
            response_timeout: Duration::from_secs(10),
            max_retries: 2,
            checksum: true,
            max_packet: 4096,
            status_report_request: 0,
            numbers: NumberConfig::default(),
        }
    }
}

/// What a [`ClientSession`] reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Login answered with 51: submits may start.
    LoggedIn,
    /// Login refused (900 error or general error); the session closes.
    LoginFailed { code: u32, text: Option<String> },
    /// The SMSC accepted the submit with this `id` (the caller's, given to `submit`).
    SubmitAccepted {
        id: u64,
        /// 060 service centre timestamp, the SMSC's key for status reports.
        timestamp: Option<String>,
        /// 021 destination echoed by the SMSC.
        destination: Option<String>,
    },
    /// The SMSC refused the submit (900 error code); final for this message.
    SubmitRejected {
        id: u64,
        code: u32,
        text: Option<String>,
    },
    /// No answer (timeout after every retry, or connection lost); the message was
    /// not necessarily accepted and should be submitted again on a new session.
    SubmitFailed { id: u64, reason: FailReason },
    /// A mobile-originated message. Answer it with `ack_deliver` or `reject_deliver`.
    Deliver(Box<Message>),
    /// A status report. Answer it with `ack_deliver` or `reject_deliver`.
    StatusReport(StatusReport),
    /// The SMSC broke the protocol; the session goes on.
    ProtocolViolation(Violation),
    /// The session is over; the driver closes the connection after writing
    /// whatever `poll_transmit` still returns.
    Closed { reason: CloseReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LoggingIn,
    Ready,
    LoggingOut,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    Login,
    Submit { id: u64 },
    Alive,
    Logout,
}

/// Sans-IO CIMD2 client. Sends login (packet 001) as soon as it is created.
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    core: Core<Request, ClientEvent>,
    /// Last time a request of ours went out; keep-alive counts from it. Packets that
    /// arrive do not count: they prove the way in, not that our answers get out.
    last_request: Instant,
    logout_wanted: bool,
}

impl ClientSession {
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut s = ClientSession {
            // Login is always 001 and numbering goes on at 003 (Kannel does the same).
            core: Core::new(
                1,
                config.response_timeout,
                config.max_retries,
                config.checksum,
                config.max_packet,
            ),
            state: State::LoggingIn,
            last_request: now,
            logout_wanted: false,
            config,
        };
        let packet = Packet::new(Operation::Login, 0)
            .with(param::USER_IDENTITY, s.config.user.as_bytes())
            .with(param::PASSWORD, s.config.password.as_bytes());
        s.start_request(Request::Login, packet, now);
        s
    }

    // ---- getters ----

    /// Logged in and not closing.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready && !self.logout_wanted
    }

    /// `submit` would be accepted now.
    pub fn can_submit(&self) -> bool {
        self.is_ready() && self.core.requests.is_idle()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// A deliver or status report is waiting for `ack_deliver`/`reject_deliver`.
    pub fn has_pending_deliver(&self) -> bool {
        self.core.answers.pending().is_some()
    }

    /// The packet number of the deliver or status report waiting for an answer.
    pub fn pending_deliver(&self) -> Option<u8> {
        self.core.answers.pending().map(|(_, number)| number)
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.read_input(bytes, now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
        if let Some(due) = self.keepalive_deadline() {
            if due <= now {
                self.start_request(Request::Alive, Packet::new(Operation::Alive, 0), now);
            }
        }
    }

    /// The connection is gone: fail what is outstanding and close.
    pub fn handle_connection_lost(&mut self, _now: Instant) {
        self.on_connection_lost();
    }

    // ---- commands ----

    /// Submit (03) one message under the caller's `id`, which the outcome event
    /// echoes. Refused unless logged in with nothing outstanding.
    pub fn submit(&mut self, id: u64, message: &Message, now: Instant) -> Result<(), SessionError> {
        self.check_can_request()?;
        let mut packet =
            submit_packet(message, 0).map_err(|e| SessionError::Encode(e.to_string()))?;
        if self.config.status_report_request != 0 {
            packet.push_u32(
                param::STATUS_REPORT_REQUEST,
                self.config.status_report_request,
            );
        }
        self.start_request(Request::Submit { id }, packet, now);
        Ok(())
    }

    /// Answer the pending deliver (70) or status report (73) positively.
    pub fn ack_deliver(&mut self, _now: Instant) -> Result<(), SessionError> {
        let (op, number) = self.pending_answer()?;
        self.core.answer(op, positive(op, number));
        Ok(())
    }

    /// Answer the pending deliver or status report with error `code`.
    pub fn reject_deliver(&mut self, code: u32, _now: Instant) -> Result<(), SessionError> {
        let (op, number) = self.pending_answer()?;
        self.core.answer(op, negative(op, number, code, None));
        Ok(())
    }

    /// Log out (02). When a request is outstanding, logout follows its answer.
    pub fn logout(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.state {
            State::Closed => return Err(SessionError::Closed),
            State::LoggingOut => return Ok(()),
            State::LoggingIn | State::Ready => {}
        }
        self.logout_wanted = true;
        self.maybe_start_logout(now);
        Ok(())
    }

    // ---- outputs ----

    /// Append the bytes to send to `buf`; returns how many were appended.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.core.wire.poll_transmit(buf)
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        match (self.core.requests.deadline(), self.keepalive_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.core.events.pop_front()
    }

    // ---- internals ----

    fn check_can_request(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::LoggingIn | State::LoggingOut => Err(SessionError::NotReady),
            State::Ready if self.logout_wanted => Err(SessionError::NotReady),
            State::Ready if !self.core.requests.is_idle() => Err(SessionError::Busy),
            State::Ready => Ok(()),
        }
    }

    fn start_request(&mut self, kind: Request, mut packet: Packet, now: Instant) {
        let core = &mut self.core;
        packet.number = core.requests.take_number();
        core.requests.start(kind, packet, now, &mut core.wire);
        self.last_request = now;
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        if self.config.keepalive.is_zero()
            || self.state != State::Ready
            || !self.core.requests.is_idle()
            || self.logout_wanted
        {
            return None;
        }
        Some(self.last_request + self.config.keepalive)
    }

    fn pending_answer(&self) -> Result<(Operation, u8), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        self.core
            .answers
            .pending()
            .ok_or(SessionError::NothingPending)
    }

    fn maybe_start_logout(&mut self, now: Instant) {
        if self.logout_wanted && self.core.requests.is_idle() && self.state != State::Closed {
            self.logout_wanted = false;
            self.state = State::LoggingOut;
            self.start_request(Request::Logout, Packet::new(Operation::Logout, 0), now);
        }
    }
}

impl SessionEvent for ClientEvent {
    fn violation(v: Violation) -> Self {
        ClientEvent::ProtocolViolation(v)
    }

    fn closed(reason: CloseReason) -> Self {
        ClientEvent::Closed { reason }
    }
}

impl Role for ClientSession {
    type Request = Request;
    type Event = ClientEvent;
    const ANSWERS_UNREADABLE_OPERATION: bool = false;

    fn core(&mut self) -> &mut Core<Request, ClientEvent> {
        &mut self.core
    }

    fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.core.closed(reason);
        }
    }

    fn accepts(op: Operation) -> bool {
        matches!(
            op,
            Operation::DeliverMessage | Operation::DeliverStatusReport
        )
    }

    fn on_peer_request(&mut self, p: Packet, _now: Instant) {
        let op = p.op;
        if op != Operation::DeliverMessage {
            self.core.answers.set_pending(op, p.number);
            self.core
                .events
                .push_back(ClientEvent::StatusReport(status_report_from(&p)));
            return;
        }
        match message_from_packet(&p) {
            Ok(m) => {
                self.core.answers.set_pending(op, p.number);
                self.core
                    .events
                    .push_back(ClientEvent::Deliver(Box::new(m)));
            }
            Err(e) => {
                // We cannot represent it; refusing keeps the SMSC from counting it as
                // delivered.
                let code = ERR_SYNTAX;
                self.core.violation(Violation::InvalidMessage {
                    op: op.code(),
                    number: p.number,
                    code,
                    error: e.to_string(),
                });
                self.core.answer(op, negative(op, p.number, code, None));
            }
        }
    }

    fn finish(&mut self, kind: Request, answer: Answer<'_>, now: Instant) {
        match (kind, answer) {
            (Request::Login, Answer::Accepted(_)) => {
                self.state = State::Ready;
                self.core.events.push_back(ClientEvent::LoggedIn);
            }
            (Request::Login, Answer::Refused { code, text }) => {
                self.core
                    .events
                    .push_back(ClientEvent::LoginFailed { code, text });
                self.close(CloseReason::LoginRejected { code });
            }
            (Request::Submit { id }, Answer::Accepted(p)) => {
                self.core.events.push_back(ClientEvent::SubmitAccepted {
                    id,
                    timestamp: p
                        .get_str(param::SERVICE_CENTRE_TIMESTAMP)
                        .map(str::to_owned),
                    destination: p.get_str(param::DESTINATION_ADDRESS).map(str::to_owned),
                });
            }
            (Request::Submit { id }, Answer::Refused { code, text }) => {
                self.core
                    .events
                    .push_back(ClientEvent::SubmitRejected { id, code, text });
            }
            // Even an SMSC that does not know alive answered: the line is alive.
            (Request::Alive, _) => {}
            (Request::Logout, _) => self.close(CloseReason::LoggedOut),
        }
        self.maybe_start_logout(now);
    }

    fn fail(&mut self, kind: Request, reason: FailReason) {
        match kind {
            Request::Submit { id } => {
                self.core
                    .events
                    .push_back(ClientEvent::SubmitFailed { id, reason });
            }
            Request::Login | Request::Alive => {}
            Request::Logout => {
                self.close(CloseReason::LoggedOut);
                return;
            }
        }
        // An SMSC that stopped answering is a dead line; the driver reconnects.
        let reason = match reason {
            FailReason::ResponseTimeout => CloseReason::ResponseTimeout,
            FailReason::ConnectionLost => CloseReason::ConnectionLost,
        };
        self.close(reason);
    }
}

fn status_report_from(p: &Packet) -> StatusReport {
    let s = |code| p.get_str(code).map(str::to_owned);
    StatusReport {
        destination: s(param::DESTINATION_ADDRESS).unwrap_or_default(),
        originator: s(param::ORIGINATING_ADDRESS),
        sc_timestamp: s(param::SERVICE_CENTRE_TIMESTAMP).unwrap_or_default(),
        status: p.get_u32(param::STATUS_CODE).unwrap_or(0),
        status_error: p.get_u32(param::STATUS_ERROR_CODE),
        discharge_time: s(param::DISCHARGE_TIME),
    }
}
