//! The application side of CIMD2: logs in, submits one message at a time, and hands
//! the SMSC's delivers to the application, answering each only when the application
//! says so (that is how a full buffer back-pressures the SMSC).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::core::{
    error_of, error_text, general_error, is_response, nack, negative, positive, Arrival, Requester,
    Responder, Wire, ERR_SYNTAX, ERR_UNEXPECTED_OPERATION,
};
use super::{CloseReason, FailReason, SessionError, StatusReport, Violation};
use crate::cimd2::{message_from_packet, param, submit_packet, Decoded, Operation, Packet};
use crate::message::Message;

/// Settings of a [`ClientSession`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// 010 user identity.
    pub user: String,
    /// 011 password.
    pub password: String,
    /// Send alive (40) after this long without traffic; `Duration::ZERO` turns it off.
    pub keepalive: Duration,
    /// How long to wait for the response to a request before sending it again.
    pub response_timeout: Duration,
    /// Retransmissions after the first try before the request fails.
    pub max_retries: u32,
    /// Append the optional checksum to packets we send (Kannel always does).
    pub checksum: bool,
    /// Largest packet the decoder accepts, in bytes.
    pub max_packet: usize,
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
    /// The SMSC accepted the submit of the message with this `client_ref`.
    SubmitAccepted {
        client_ref: u64,
        /// 060 service centre timestamp, the SMSC's key for status reports.
        timestamp: Option<String>,
        /// 021 destination echoed by the SMSC.
        destination: Option<String>,
    },
    /// The SMSC refused the submit (900 error code); final for this message.
    SubmitRejected {
        client_ref: u64,
        code: u32,
        text: Option<String>,
    },
    /// No answer (timeout after every retry, or connection lost); the message was
    /// not necessarily accepted and should be submitted again on a new session.
    SubmitFailed { client_ref: u64, reason: FailReason },
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
enum Request {
    Login,
    Submit { client_ref: u64 },
    Alive,
    Logout,
}

/// Sans-IO CIMD2 client. Sends login (packet 001) as soon as it is created.
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    wire: Wire,
    requests: Requester<Request>,
    answers: Responder,
    events: VecDeque<ClientEvent>,
    /// Last time a packet arrived or a request went out; keep-alive counts from it.
    last_activity: Instant,
    logout_wanted: bool,
}

impl ClientSession {
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut s = ClientSession {
            wire: Wire::new(config.max_packet, config.checksum),
            requests: Requester::new(1, config.response_timeout, config.max_retries),
            answers: Responder::default(),
            events: VecDeque::new(),
            state: State::LoggingIn,
            last_activity: now,
            logout_wanted: false,
            config,
        };
        // Login is always 001 and numbering goes on at 003 (Kannel does the same).
        s.requests.set_next_number(1);
        let number = s.requests.take_number();
        let packet = Packet::new(Operation::Login, number)
            .with(param::USER_IDENTITY, s.config.user.as_bytes())
            .with(param::PASSWORD, s.config.password.as_bytes());
        s.requests.start(Request::Login, packet, now, &mut s.wire);
        s
    }

    // ---- getters ----

    /// Logged in and not closing.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready && !self.logout_wanted
    }

    /// `submit` would be accepted now.
    pub fn can_submit(&self) -> bool {
        self.is_ready() && self.requests.is_idle()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// A deliver or status report is waiting for `ack_deliver`/`reject_deliver`.
    pub fn has_pending_deliver(&self) -> bool {
        self.answers.pending().is_some()
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.wire.decoder.push(bytes);
        while let Some(decoded) = self.wire.decoder.poll() {
            match decoded {
                Decoded::Packet(p) => {
                    self.last_activity = now;
                    self.on_packet(p, now);
                }
                Decoded::Skipped(bytes) => self.violation(Violation::Garbage { bytes }),
                Decoded::Malformed { error, op, number } => {
                    self.last_activity = now;
                    self.on_malformed(error.to_string(), op, number, now);
                }
            }
            if self.state == State::Closed {
                return;
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.requests.is_due(now) && !self.requests.retransmit(now, &mut self.wire) {
            self.fail_outstanding(FailReason::ResponseTimeout);
            return;
        }
        if let Some(due) = self.keepalive_deadline() {
            if due <= now {
                self.start_request(Request::Alive, Packet::new(Operation::Alive, 0), now);
            }
        }
    }

    /// The connection is gone: fail what is outstanding and close.
    pub fn handle_connection_lost(&mut self, _now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.fail_outstanding(FailReason::ConnectionLost);
        self.close(CloseReason::ConnectionLost);
    }

    // ---- commands ----

    /// Submit (03) one message. Refused unless logged in with nothing outstanding.
    pub fn submit(&mut self, message: &Message, now: Instant) -> Result<(), SessionError> {
        self.check_can_request()?;
        let packet = submit_packet(message, 0).map_err(|e| SessionError::Encode(e.to_string()))?;
        self.start_request(
            Request::Submit {
                client_ref: message.client_ref,
            },
            packet,
            now,
        );
        Ok(())
    }

    /// Answer the pending deliver (70) or status report (73) positively.
    pub fn ack_deliver(&mut self, _now: Instant) -> Result<(), SessionError> {
        let (op, number) = self.pending_answer()?;
        self.answers
            .answer(op, positive(op, number), &mut self.wire);
        Ok(())
    }

    /// Answer the pending deliver or status report with error `code`.
    pub fn reject_deliver(&mut self, code: u32, _now: Instant) -> Result<(), SessionError> {
        let (op, number) = self.pending_answer()?;
        self.answers
            .answer(op, negative(op, number, code, None), &mut self.wire);
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
        self.wire.poll_transmit(buf)
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        match (self.requests.deadline(), self.keepalive_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn check_can_request(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::LoggingIn | State::LoggingOut => Err(SessionError::NotReady),
            State::Ready if self.logout_wanted => Err(SessionError::NotReady),
            State::Ready if !self.requests.is_idle() => Err(SessionError::Busy),
            State::Ready => Ok(()),
        }
    }

    fn start_request(&mut self, kind: Request, mut packet: Packet, now: Instant) {
        packet.number = self.requests.take_number();
        self.requests.start(kind, packet, now, &mut self.wire);
        self.last_activity = now;
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        if self.config.keepalive.is_zero()
            || self.state != State::Ready
            || !self.requests.is_idle()
            || self.logout_wanted
        {
            return None;
        }
        Some(self.last_activity + self.config.keepalive)
    }

    fn pending_answer(&self) -> Result<(Operation, u8), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        self.answers.pending().ok_or(SessionError::NothingPending)
    }

    fn maybe_start_logout(&mut self, now: Instant) {
        if self.logout_wanted && self.requests.is_idle() && self.state != State::Closed {
            self.logout_wanted = false;
            self.state = State::LoggingOut;
            self.start_request(Request::Logout, Packet::new(Operation::Logout, 0), now);
        }
    }

    fn violation(&mut self, v: Violation) {
        self.events.push_back(ClientEvent::ProtocolViolation(v));
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.answers.clear();
            self.events.push_back(ClientEvent::Closed { reason });
        }
    }

    fn on_packet(&mut self, p: Packet, now: Instant) {
        let code = p.op.code();
        match p.op {
            Operation::DeliverMessage | Operation::DeliverStatusReport => {
                self.on_smsc_request(p, now)
            }
            Operation::Alive => {
                // Liveness only: answered at once, outside the one-request slot.
                self.wire.send(&positive(Operation::Alive, p.number));
            }
            Operation::Nack => self.on_nack(p, now),
            Operation::GeneralError => self.on_general_error(p, now),
            _ if is_response(code) => self.on_response(p, now),
            _ => {
                self.violation(Violation::UnexpectedOperation {
                    op: code,
                    number: p.number,
                });
                self.wire
                    .send(&general_error(p.number, ERR_UNEXPECTED_OPERATION, None));
            }
        }
    }

    fn on_smsc_request(&mut self, p: Packet, _now: Instant) {
        let op = p.op;
        match self.answers.classify(op, p.number) {
            Arrival::RepeatOfPending => {}
            Arrival::RepeatOfAnswered => self.answers.replay(&mut self.wire),
            Arrival::SecondRequest => {
                self.violation(Violation::SecondRequest {
                    op: op.code(),
                    number: p.number,
                });
                self.wire.send(&nack(p.number));
            }
            Arrival::New => {
                if op == Operation::DeliverMessage {
                    match message_from_packet(&p) {
                        Ok(m) => {
                            self.answers.set_pending(op, p.number);
                            self.events.push_back(ClientEvent::Deliver(Box::new(m)));
                        }
                        Err(e) => {
                            // We cannot represent it; refusing keeps the SMSC from
                            // counting it as delivered.
                            let code = ERR_SYNTAX;
                            self.violation(Violation::InvalidMessage {
                                op: op.code(),
                                number: p.number,
                                code,
                                error: e.to_string(),
                            });
                            self.answers.answer(
                                op,
                                negative(op, p.number, code, None),
                                &mut self.wire,
                            );
                        }
                    }
                } else {
                    self.answers.set_pending(op, p.number);
                    self.events
                        .push_back(ClientEvent::StatusReport(status_report_from(&p)));
                }
            }
        }
    }

    fn on_response(&mut self, p: Packet, now: Instant) {
        let Some(out) = self.requests.outstanding() else {
            self.violation(Violation::UnexpectedResponse {
                op: p.op.code(),
                number: p.number,
            });
            return;
        };
        if out.packet.number != p.number {
            // Kannel ignores it and keeps waiting; so do we.
            self.violation(Violation::UnexpectedResponse {
                op: p.op.code(),
                number: p.number,
            });
            return;
        }
        if out.packet.op.response() != Some(p.op) {
            // Right number, wrong operation: send the request again.
            self.violation(Violation::UnexpectedResponse {
                op: p.op.code(),
                number: p.number,
            });
            if !self.requests.retransmit(now, &mut self.wire) {
                self.fail_outstanding(FailReason::ResponseTimeout);
            }
            return;
        }
        let Some(out) = self.requests.take() else {
            return;
        };
        let error = error_of(&p);
        match (out.kind, error) {
            (Request::Login, None) => {
                self.state = State::Ready;
                self.events.push_back(ClientEvent::LoggedIn);
            }
            (Request::Login, Some(code)) => {
                self.events.push_back(ClientEvent::LoginFailed {
                    code,
                    text: error_text(&p),
                });
                self.close(CloseReason::LoginRejected { code });
            }
            (Request::Submit { client_ref }, None) => {
                self.events.push_back(ClientEvent::SubmitAccepted {
                    client_ref,
                    timestamp: p
                        .get_str(param::SERVICE_CENTRE_TIMESTAMP)
                        .map(str::to_owned),
                    destination: p.get_str(param::DESTINATION_ADDRESS).map(str::to_owned),
                });
            }
            (Request::Submit { client_ref }, Some(code)) => {
                self.events.push_back(ClientEvent::SubmitRejected {
                    client_ref,
                    code,
                    text: error_text(&p),
                });
            }
            (Request::Alive, _) => {}
            (Request::Logout, _) => self.close(CloseReason::LoggedOut),
        }
        self.maybe_start_logout(now);
    }

    fn on_nack(&mut self, p: Packet, now: Instant) {
        let number = p.number;
        let ours = self.requests.matches(number);
        let odd = number % 2 == 1;
        if self.requests.is_idle() || !(ours || odd) {
            self.violation(Violation::StrayError {
                op: p.op.code(),
                number,
                code: error_of(&p),
            });
            return;
        }
        if !ours {
            self.requests.adopt_number(number);
        }
        if !self.requests.retransmit(now, &mut self.wire) {
            self.fail_outstanding(FailReason::ResponseTimeout);
        }
    }

    fn on_general_error(&mut self, p: Packet, now: Instant) {
        let code = error_of(&p).unwrap_or(ERR_UNEXPECTED_OPERATION);
        if !self.requests.matches(p.number) {
            self.violation(Violation::StrayError {
                op: p.op.code(),
                number: p.number,
                code: Some(code),
            });
            return;
        }
        let Some(out) = self.requests.take() else {
            return;
        };
        let text = error_text(&p);
        match out.kind {
            Request::Login => {
                self.events
                    .push_back(ClientEvent::LoginFailed { code, text });
                self.close(CloseReason::LoginRejected { code });
            }
            Request::Submit { client_ref } => {
                self.events.push_back(ClientEvent::SubmitRejected {
                    client_ref,
                    code,
                    text,
                });
            }
            // An SMSC that does not know alive still answered: the line is alive.
            Request::Alive => {}
            Request::Logout => self.close(CloseReason::LoggedOut),
        }
        self.maybe_start_logout(now);
    }

    fn on_malformed(&mut self, error: String, op: Option<u8>, number: Option<u8>, now: Instant) {
        self.violation(Violation::Malformed { error, op, number });
        let (Some(op), Some(number)) = (op, number) else {
            return;
        };
        if is_response(op) || op == Operation::Nack.code() || op == Operation::GeneralError.code() {
            // A garbled answer to our request: ask again rather than wait for the timeout.
            if self.requests.matches(number) && !self.requests.retransmit(now, &mut self.wire) {
                self.fail_outstanding(FailReason::ResponseTimeout);
            }
            return;
        }
        match Operation::from_code(op) {
            Operation::DeliverMessage | Operation::DeliverStatusReport | Operation::Alive => {
                // Most likely corrupted on the way: NACK asks the SMSC to send it again.
                self.wire.send(&nack(number));
            }
            _ => self
                .wire
                .send(&general_error(number, ERR_UNEXPECTED_OPERATION, None)),
        }
    }

    fn fail_outstanding(&mut self, reason: FailReason) {
        let Some(out) = self.requests.take() else {
            return;
        };
        match out.kind {
            Request::Submit { client_ref } => {
                self.events
                    .push_back(ClientEvent::SubmitFailed { client_ref, reason });
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
