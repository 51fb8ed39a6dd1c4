//! The SMSC side of CIMD2: checks the login, hands each submit to the application
//! and answers it when the application says so (so processing may take time), sends
//! mobile-originated messages and status reports one at a time.

use std::time::{Duration, Instant};

use super::core::{
    general_error, nack, negative, positive, Answer, Core, Role, SessionEvent,
    ERR_UNEXPECTED_OPERATION,
};
use super::{CloseReason, FailReason, SessionError, StatusReport, Violation};
use crate::cimd2::{deliver_packet, message_from_packet, param, Cimd2Error, Operation, Packet};
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
pub(super) enum Request {
    Deliver { client_ref: u64 },
    StatusReport,
}

/// Sans-IO CIMD2 server (SMSC) session for one client connection.
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    core: Core<Request, ServerEvent>,
}

impl ServerSession {
    pub fn new(config: ServerConfig, _now: Instant) -> Self {
        ServerSession {
            // SMSC requests use even numbers from 000.
            core: Core::new(
                0,
                config.response_timeout,
                config.max_retries,
                config.checksum,
                config.max_packet,
            ),
            state: State::AwaitLogin,
            config,
        }
    }

    // ---- getters ----

    pub fn is_logged_in(&self) -> bool {
        self.state == State::Ready
    }

    /// `deliver` / `status_report` would be accepted now.
    pub fn can_deliver(&self) -> bool {
        self.state == State::Ready && self.core.requests.is_idle()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The packet number of the submit waiting for `accept_submit`/`reject_submit`.
    pub fn pending_submit(&self) -> Option<u8> {
        self.core
            .answers
            .pending()
            .filter(|(op, _)| *op == Operation::Submit)
            .map(|(_, n)| n)
    }

    /// Protocol violations seen so far.
    pub fn violations(&self) -> u64 {
        self.core.violations()
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.read_input(bytes, now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timeout(now);
    }

    pub fn handle_connection_lost(&mut self, _now: Instant) {
        self.on_connection_lost();
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
        self.core.answer(Operation::Submit, answer);
        Ok(())
    }

    /// Answer the pending submit with error `code` (a 300-range code for submits).
    pub fn reject_submit(&mut self, code: u32, _now: Instant) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        self.core.answer(
            Operation::Submit,
            negative(Operation::Submit, number, code, None),
        );
        Ok(())
    }

    /// Answer the pending submit with a general error (98) carrying `code`, as an SMSC
    /// does when it cannot handle the request at all (a refusal for the client).
    pub fn general_error_submit(&mut self, code: u32, _now: Instant) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        self.core
            .answer(Operation::Submit, general_error(number, code, None));
        Ok(())
    }

    /// Answer the pending submit with NACK: the client is to send it again.
    pub fn nack_submit(&mut self, _now: Instant) -> Result<(), SessionError> {
        let number = self.pending_submit_number()?;
        self.core.wire.send(&nack(number));
        // A NACK is no answer: the client's resend is a new arrival, not a duplicate.
        self.core.answers.clear();
        Ok(())
    }

    /// Send a mobile-originated message (20).
    pub fn deliver(&mut self, message: &Message, now: Instant) -> Result<(), SessionError> {
        self.check_can_request()?;
        let core = &mut self.core;
        let number = core.requests.take_number();
        let packet =
            deliver_packet(message, number).map_err(|e| SessionError::Encode(e.to_string()))?;
        let kind = Request::Deliver {
            client_ref: message.client_ref,
        };
        core.requests.start(kind, packet, now, &mut core.wire);
        Ok(())
    }

    /// Send a status report (23).
    pub fn status_report(
        &mut self,
        report: &StatusReport,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.check_can_request()?;
        let core = &mut self.core;
        let number = core.requests.take_number();
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
        core.requests
            .start(Request::StatusReport, p, now, &mut core.wire);
        Ok(())
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.core.wire.poll_transmit(buf)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.core.requests.deadline()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.core.events.pop_front()
    }

    // ---- internals ----

    fn check_can_request(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::AwaitLogin => Err(SessionError::NotReady),
            State::Ready if !self.core.requests.is_idle() => Err(SessionError::Busy),
            State::Ready => Ok(()),
        }
    }

    fn pending_submit_number(&self) -> Result<u8, SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        self.pending_submit().ok_or(SessionError::NothingPending)
    }

    fn on_login(&mut self, p: &Packet) {
        let user = p.get_str(param::USER_IDENTITY).unwrap_or("");
        let password = p.get_str(param::PASSWORD).unwrap_or("");
        let answer = if user == self.config.user && password == self.config.password {
            self.state = State::Ready;
            self.core.events.push_back(ServerEvent::LoggedIn {
                user: user.to_owned(),
            });
            positive(Operation::Login, p.number)
        } else {
            self.core.events.push_back(ServerEvent::LoginRejected {
                user: user.to_owned(),
            });
            negative(
                Operation::Login,
                p.number,
                ERR_INVALID_LOGIN,
                Some("invalid login"),
            )
        };
        self.core.answer(Operation::Login, answer);
    }
}

impl SessionEvent for ServerEvent {
    fn violation(v: Violation) -> Self {
        ServerEvent::ProtocolViolation(v)
    }

    fn closed(reason: CloseReason) -> Self {
        ServerEvent::Closed { reason }
    }
}

impl Role for ServerSession {
    type Request = Request;
    type Event = ServerEvent;
    const ANSWERS_UNREADABLE_OPERATION: bool = true;

    fn core(&mut self) -> &mut Core<Request, ServerEvent> {
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
            Operation::Login
                | Operation::Logout
                | Operation::Submit
                | Operation::EnquireStatus
                | Operation::DeliveryRequest
                | Operation::Cancel
                | Operation::Set
                | Operation::Get
        )
    }

    fn on_peer_request(&mut self, p: Packet, _now: Instant) {
        let op = p.op;
        let number = p.number;
        match op {
            Operation::Login => self.on_login(&p),
            Operation::Logout => {
                self.core.answer(op, positive(op, number));
                self.close(CloseReason::LoggedOut);
            }
            _ if self.state != State::Ready => {
                self.core.violation(Violation::NotLoggedIn {
                    op: op.code(),
                    number,
                });
                self.core.answer(
                    op,
                    negative(op, number, ERR_UNEXPECTED_OPERATION, Some("not logged in")),
                );
            }
            Operation::Submit => match message_from_packet(&p).and_then(require_destination) {
                Ok(message) => {
                    self.core.answers.set_pending(op, number);
                    self.core.events.push_back(ServerEvent::Submit {
                        message: Box::new(message),
                        number,
                        status_report_request: p.get_u32(param::STATUS_REPORT_REQUEST).unwrap_or(0),
                    });
                }
                Err(e) => {
                    let code = submit_error_code(&e);
                    self.core.violation(Violation::InvalidMessage {
                        op: op.code(),
                        number,
                        code,
                        error: e.to_string(),
                    });
                    self.core.answer(op, negative(op, number, code, None));
                }
            },
            _ => {
                // Enquire, delivery request, cancel, set, get: not offered.
                self.core
                    .answer(op, negative(op, number, ERR_UNEXPECTED_OPERATION, None));
            }
        }
    }

    fn finish(&mut self, kind: Request, answer: Answer<'_>, _now: Instant) {
        let event = match (kind, answer) {
            (Request::Deliver { client_ref }, Answer::Accepted(_)) => {
                ServerEvent::DeliverAcked { client_ref }
            }
            (Request::Deliver { client_ref }, Answer::Refused { code, text }) => {
                ServerEvent::DeliverRejected {
                    client_ref,
                    code,
                    text,
                }
            }
            (Request::StatusReport, Answer::Accepted(_)) => ServerEvent::StatusReportAcked,
            (Request::StatusReport, Answer::Refused { code, .. }) => {
                ServerEvent::StatusReportRejected { code }
            }
        };
        self.core.events.push_back(event);
    }

    fn fail(&mut self, kind: Request, reason: FailReason) {
        let event = match kind {
            Request::Deliver { client_ref } => ServerEvent::DeliverFailed { client_ref, reason },
            Request::StatusReport => ServerEvent::StatusReportFailed { reason },
        };
        self.core.events.push_back(event);
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
