//! The SMSC side of CIMD2: checks the login, hands each submit to the application
//! and answers it when the application says so (so processing may take time), sends
//! mobile-originated messages and status reports one at a time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::core::{
    error_of, error_text, general_error, is_response, nack, negative, positive, Arrival, Requester,
    Responder, Wire, ERR_SYNTAX, ERR_UNEXPECTED_OPERATION,
};
use super::{CloseReason, FailReason, SessionError, StatusReport, Violation};
use crate::cimd2::{
    deliver_packet, message_from_packet, param, Cimd2Error, Decoded, Operation, Packet,
};
use crate::message::{Message, MessageError};

/// Error 100: invalid login.
const ERR_INVALID_LOGIN: u32 = 100;
/// Error 300: incorrect destination address.
const ERR_DESTINATION: u32 = 300;
/// Error 302: user data syntax error.
const ERR_USER_DATA: u32 = 302;
/// Error 304: incorrect data coding scheme.
const ERR_DATA_CODING: u32 = 304;
/// Error 306: incorrect originator address.
const ERR_ORIGINATOR: u32 = 306;

/// Settings of a [`ServerSession`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The user identity (010) a client must log in with.
    pub user: String,
    /// The password (011) a client must log in with.
    pub password: String,
    /// How long to wait for the response to a deliver or status report.
    pub response_timeout: Duration,
    /// Retransmissions after the first try before the request fails.
    pub max_retries: u32,
    /// Append the optional checksum to packets we send.
    pub checksum: bool,
    /// Largest packet the decoder accepts, in bytes.
    pub max_packet: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            user: String::new(),
            password: String::new(),
            response_timeout: Duration::from_secs(10),
            max_retries: 2,
            checksum: true,
            max_packet: 4096,
        }
    }
}

/// What a [`ServerSession`] reports to the SMSC application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client logged in with the right credentials (answered with 51).
    LoggedIn { user: String },
    /// A login with wrong credentials (answered with 900:100).
    LoginRejected { user: String },
    /// A submit to answer with `accept_submit` or `reject_submit`.
    Submit {
        message: Box<Message>,
        number: u8,
        /// 056 status report request (0 when absent): non-zero asks for a report.
        status_report_request: u32,
    },
    /// The client acknowledged the deliver with this `client_ref` (70).
    DeliverAcked { client_ref: u64 },
    /// The client refused it (70 with 900, or 98).
    DeliverRejected {
        client_ref: u64,
        code: u32,
        text: Option<String>,
    },
    /// No answer after every retry, or the connection went away.
    DeliverFailed { client_ref: u64, reason: FailReason },
    /// The client acknowledged the status report (73).
    StatusReportAcked,
    /// The client refused the status report.
    StatusReportRejected { code: u32 },
    /// No answer to the status report.
    StatusReportFailed { reason: FailReason },
    /// The client broke the protocol; the session goes on.
    ProtocolViolation(Violation),
    /// The session is over.
    Closed { reason: CloseReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitLogin,
    Ready,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Deliver { client_ref: u64 },
    StatusReport,
}

/// Sans-IO CIMD2 server (SMSC) session for one client connection.
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    wire: Wire,
    requests: Requester<Request>,
    answers: Responder,
    events: VecDeque<ServerEvent>,
    number_of_violations: u64,
}

impl ServerSession {
    pub fn new(config: ServerConfig, _now: Instant) -> Self {
        ServerSession {
            wire: Wire::new(config.max_packet, config.checksum),
            // SMSC requests use even numbers from 000.
            requests: Requester::new(0, config.response_timeout, config.max_retries),
            answers: Responder::default(),
            events: VecDeque::new(),
            state: State::AwaitLogin,
            number_of_violations: 0,
            config,
        }
    }

    // ---- getters ----

    pub fn is_logged_in(&self) -> bool {
        self.state == State::Ready
    }

    /// `deliver` / `status_report` would be accepted now.
    pub fn can_deliver(&self) -> bool {
        self.state == State::Ready && self.requests.is_idle()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The packet number of the submit waiting for `accept_submit`/`reject_submit`.
    pub fn pending_submit(&self) -> Option<u8> {
        self.answers
            .pending()
            .filter(|(op, _)| *op == Operation::Submit)
            .map(|(_, n)| n)
    }

    /// Protocol violations seen so far.
    pub fn violations(&self) -> u64 {
        self.number_of_violations
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.wire.decoder.push(bytes);
        while let Some(decoded) = self.wire.decoder.poll() {
            match decoded {
                Decoded::Packet(p) => self.on_packet(p, now),
                Decoded::Skipped(bytes) => self.violation(Violation::Garbage { bytes }),
                Decoded::Malformed { error, op, number } => {
                    self.on_malformed(error.to_string(), op, number, now)
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
        }
    }

    pub fn handle_connection_lost(&mut self, _now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.fail_outstanding(FailReason::ConnectionLost);
        self.close(CloseReason::ConnectionLost);
    }

    // ---- commands ----

    /// Answer the pending submit with 53, carrying 021 (echo of the destination) and
    /// 060 service centre timestamp `timestamp` (`yymmddhhmmss`).
    pub fn accept_submit(
        &mut self,
        destination: &str,
        timestamp: &str,
        _now: Instant,
    ) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        let answer = positive(Operation::Submit, number)
            .with(param::DESTINATION_ADDRESS, destination)
            .with(param::SERVICE_CENTRE_TIMESTAMP, timestamp);
        self.answers
            .answer(Operation::Submit, answer, &mut self.wire);
        Ok(())
    }

    /// Answer the pending submit with error `code` (a 300-range code for submits).
    pub fn reject_submit(&mut self, code: u32, _now: Instant) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        self.answers.answer(
            Operation::Submit,
            negative(Operation::Submit, number, code, None),
            &mut self.wire,
        );
        Ok(())
    }

    /// Answer the pending submit with NACK: the client is to send it again.
    pub fn nack_submit(&mut self, _now: Instant) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        self.wire.send(&nack(number));
        // A NACK is no answer: the client's resend is a new arrival, not a duplicate.
        self.answers.clear();
        Ok(())
    }

    /// Send a mobile-originated message (20).
    pub fn deliver(&mut self, message: &Message, now: Instant) -> Result<(), SessionError> {
        self.check_can_request()?;
        let number = self.requests.take_number();
        let packet =
            deliver_packet(message, number).map_err(|e| SessionError::Encode(e.to_string()))?;
        self.requests.start(
            Request::Deliver {
                client_ref: message.client_ref,
            },
            packet,
            now,
            &mut self.wire,
        );
        Ok(())
    }

    /// Send a status report (23).
    pub fn status_report(
        &mut self,
        report: &StatusReport,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.check_can_request()?;
        let number = self.requests.take_number();
        let mut p = Packet::new(Operation::DeliverStatusReport, number)
            .with(param::DESTINATION_ADDRESS, &report.destination);
        if let Some(o) = &report.originator {
            p.push(param::ORIGINATING_ADDRESS, o);
        }
        p.push(param::SERVICE_CENTRE_TIMESTAMP, &report.sc_timestamp);
        p.push_u32(param::STATUS_CODE, report.status);
        if let Some(e) = report.status_error {
            p.push_u32(param::STATUS_ERROR_CODE, e);
        }
        if let Some(t) = &report.discharge_time {
            p.push(param::DISCHARGE_TIME, t);
        }
        p.validate()
            .map_err(|e| SessionError::Encode(e.to_string()))?;
        self.requests
            .start(Request::StatusReport, p, now, &mut self.wire);
        Ok(())
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.wire.poll_transmit(buf)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.requests.deadline()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn check_can_request(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::AwaitLogin => Err(SessionError::NotReady),
            State::Ready if !self.requests.is_idle() => Err(SessionError::Busy),
            State::Ready => Ok(()),
        }
    }

    fn pending_submit_number(&self) -> Result<u8, SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        self.pending_submit().ok_or(SessionError::NothingPending)
    }

    fn violation(&mut self, v: Violation) {
        self.number_of_violations += 1;
        self.events.push_back(ServerEvent::ProtocolViolation(v));
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.answers.clear();
            self.events.push_back(ServerEvent::Closed { reason });
        }
    }

    fn on_packet(&mut self, p: Packet, now: Instant) {
        let code = p.op.code();
        match p.op {
            Operation::Alive => self.wire.send(&positive(Operation::Alive, p.number)),
            Operation::Nack => self.on_nack(p, now),
            Operation::GeneralError => self.on_general_error(p),
            _ if is_response(code) => self.on_response(p, now),
            Operation::Login
            | Operation::Logout
            | Operation::Submit
            | Operation::EnquireStatus
            | Operation::DeliveryRequest
            | Operation::Cancel
            | Operation::Set
            | Operation::Get => self.on_client_request(p),
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

    fn on_client_request(&mut self, p: Packet) {
        let op = p.op;
        let number = p.number;
        match self.answers.classify(op, number) {
            Arrival::RepeatOfPending => return,
            Arrival::RepeatOfAnswered => {
                self.answers.replay(&mut self.wire);
                return;
            }
            Arrival::SecondRequest => {
                self.violation(Violation::SecondRequest {
                    op: op.code(),
                    number,
                });
                // "Not now, send it again": the answer a stop-and-wait client expects.
                self.wire.send(&nack(number));
                return;
            }
            Arrival::New => {}
        }
        match op {
            Operation::Login => self.on_login(&p),
            Operation::Logout => {
                self.answers
                    .answer(op, positive(op, number), &mut self.wire);
                self.close(CloseReason::LoggedOut);
            }
            _ if self.state != State::Ready => {
                self.violation(Violation::NotLoggedIn {
                    op: op.code(),
                    number,
                });
                self.answers.answer(
                    op,
                    negative(op, number, ERR_UNEXPECTED_OPERATION, Some("not logged in")),
                    &mut self.wire,
                );
            }
            Operation::Submit => match message_from_packet(&p).and_then(require_destination) {
                Ok(message) => {
                    self.answers.set_pending(op, number);
                    self.events.push_back(ServerEvent::Submit {
                        message: Box::new(message),
                        number,
                        status_report_request: p.get_u32(param::STATUS_REPORT_REQUEST).unwrap_or(0),
                    });
                }
                Err(e) => {
                    let code = submit_error_code(&e);
                    self.violation(Violation::InvalidMessage {
                        op: op.code(),
                        number,
                        code,
                        error: e.to_string(),
                    });
                    self.answers
                        .answer(op, negative(op, number, code, None), &mut self.wire);
                }
            },
            _ => {
                // Enquire, delivery request, cancel, set, get: not offered.
                self.answers.answer(
                    op,
                    negative(op, number, ERR_UNEXPECTED_OPERATION, None),
                    &mut self.wire,
                );
            }
        }
    }

    fn on_login(&mut self, p: &Packet) {
        let user = p.get_str(param::USER_IDENTITY).unwrap_or("");
        let password = p.get_str(param::PASSWORD).unwrap_or("");
        let answer = if user == self.config.user && password == self.config.password {
            self.state = State::Ready;
            self.events.push_back(ServerEvent::LoggedIn {
                user: user.to_owned(),
            });
            positive(Operation::Login, p.number)
        } else {
            self.events.push_back(ServerEvent::LoginRejected {
                user: user.to_owned(),
            });
            negative(
                Operation::Login,
                p.number,
                ERR_INVALID_LOGIN,
                Some("invalid login"),
            )
        };
        self.answers
            .answer(Operation::Login, answer, &mut self.wire);
    }

    fn on_response(&mut self, p: Packet, now: Instant) {
        let expected = self
            .requests
            .outstanding()
            .filter(|o| o.packet.number == p.number)
            .map(|o| o.packet.op.response() == Some(p.op));
        match expected {
            None => {
                self.violation(Violation::UnexpectedResponse {
                    op: p.op.code(),
                    number: p.number,
                });
                return;
            }
            Some(false) => {
                self.violation(Violation::UnexpectedResponse {
                    op: p.op.code(),
                    number: p.number,
                });
                if !self.requests.retransmit(now, &mut self.wire) {
                    self.fail_outstanding(FailReason::ResponseTimeout);
                }
                return;
            }
            Some(true) => {}
        }
        let Some(out) = self.requests.take() else {
            return;
        };
        self.finish(out.kind, error_of(&p), error_text(&p));
    }

    fn finish(&mut self, kind: Request, error: Option<u32>, text: Option<String>) {
        let event = match (kind, error) {
            (Request::Deliver { client_ref }, None) => ServerEvent::DeliverAcked { client_ref },
            (Request::Deliver { client_ref }, Some(code)) => ServerEvent::DeliverRejected {
                client_ref,
                code,
                text,
            },
            (Request::StatusReport, None) => ServerEvent::StatusReportAcked,
            (Request::StatusReport, Some(code)) => ServerEvent::StatusReportRejected { code },
        };
        self.events.push_back(event);
    }

    fn on_nack(&mut self, p: Packet, now: Instant) {
        let number = p.number;
        let ours = self.requests.matches(number);
        let even = number % 2 == 0;
        if self.requests.is_idle() || !(ours || even) {
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

    fn on_general_error(&mut self, p: Packet) {
        let code = error_of(&p).unwrap_or(ERR_UNEXPECTED_OPERATION);
        if !self.requests.matches(p.number) {
            self.violation(Violation::StrayError {
                op: p.op.code(),
                number: p.number,
                code: Some(code),
            });
            return;
        }
        if let Some(out) = self.requests.take() {
            self.finish(out.kind, Some(code), error_text(&p));
        }
    }

    fn on_malformed(&mut self, error: String, op: Option<u8>, number: Option<u8>, now: Instant) {
        self.violation(Violation::Malformed { error, op, number });
        let Some(number) = number else {
            return;
        };
        let Some(op) = op else {
            self.wire.send(&general_error(number, ERR_SYNTAX, None));
            return;
        };
        if is_response(op) || op == Operation::Nack.code() || op == Operation::GeneralError.code() {
            if self.requests.matches(number) && !self.requests.retransmit(now, &mut self.wire) {
                self.fail_outstanding(FailReason::ResponseTimeout);
            }
            return;
        }
        match Operation::from_code(op) {
            Operation::Other(_) | Operation::DeliverMessage | Operation::DeliverStatusReport => {
                self.wire
                    .send(&general_error(number, ERR_UNEXPECTED_OPERATION, None))
            }
            // A request we know, garbled on the way: NACK asks for it again.
            _ => self.wire.send(&nack(number)),
        }
    }

    fn fail_outstanding(&mut self, reason: FailReason) {
        let Some(out) = self.requests.take() else {
            return;
        };
        let event = match out.kind {
            Request::Deliver { client_ref } => ServerEvent::DeliverFailed { client_ref, reason },
            Request::StatusReport => ServerEvent::StatusReportFailed { reason },
        };
        self.events.push_back(event);
    }
}

/// A submit must name a recipient (test_cimd2 answers 300 too).
fn require_destination(m: Message) -> Result<Message, Cimd2Error> {
    if m.to.is_empty() {
        Err(Cimd2Error::MissingParameter {
            code: param::DESTINATION_ADDRESS,
        })
    } else {
        Ok(m)
    }
}

/// The 300-range code that names what is wrong with a submit.
fn submit_error_code(e: &Cimd2Error) -> u32 {
    match e {
        Cimd2Error::MissingParameter { code } | Cimd2Error::InvalidParameter { code, .. } => {
            match *code {
                param::DESTINATION_ADDRESS => ERR_DESTINATION,
                param::ORIGINATING_ADDRESS | param::ALPHANUMERIC_ORIGINATING_ADDRESS => {
                    ERR_ORIGINATOR
                }
                param::DATA_CODING_SCHEME => ERR_DATA_CODING,
                _ => ERR_USER_DATA,
            }
        }
        Cimd2Error::Message(MessageError::PayloadTooLong(_)) => ERR_USER_DATA,
        Cimd2Error::Message(_) => ERR_DESTINATION,
        _ => ERR_USER_DATA,
    }
}
