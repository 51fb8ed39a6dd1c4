//! The SMSC side of SMPP 3.4, sans-IO: binds an ESME as transmitter, receiver or
//! transceiver, hands each submit_sm to the application and answers it when the
//! application says so, in any order (an ESME keeps a window of submits
//! outstanding), and sends deliver_sm (mobile-originated messages and delivery
//! receipts) through a window of its own.
//!
//! The shape is the CIMD2 [`ServerSession`](crate::cimd2::session::ServerSession)'s:
//! * getters (`is_bound`, `can_deliver`, ...),
//! * inputs: `handle_input(bytes, now)`, `handle_timeout(now)`,
//!   `handle_connection_lost(now)`,
//! * application commands (`accept_submit`, `reject_submit`, `deliver`, `receipt`,
//!   `enquire_link`, `unbind`),
//! * outputs, drained after every input or command: `poll_transmit` (bytes to write),
//!   `poll_timeout` (next deadline), `poll_event` (what happened).
//!
//! SMPP has no retransmission: a deliver_sm left unanswered past the response
//! timeout is reported failed, and an unanswered enquire_link or unbind ends the
//! session.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::codec::DecodeError;
use super::codec::{encode, Decoder, DEFAULT_MAX_PDU};
use super::coding::{data_coding, encode_text, TextConfig};
use super::convert::{address, deliver_sm, message_from_sm, sme_addr};
use super::error::{Field, SmppError};
use super::pdu::{
    esm_class, message_state, Bind, BindResp, Body, CommandId, DeliverSm, MessageId, Pdu, SubmitSm,
    SubmitSmResp, SystemId, INTERFACE_VERSION_34,
};
use super::status::CommandStatus;
use super::tlv::{Tlv, Tlvs};
use crate::message::{Address, Message, MessageError};
use crate::sms::text::gsm_code;

/// Highest sequence number; the next one after it is 1 again.
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;
/// Characters of the original text a receipt quotes (`text:`).
const RECEIPT_TEXT_CHARS: usize = 20;
/// network_error_code's network type for GSM.
const NETWORK_GSM: u8 = 3;

/// Settings of an [`SmscSession`].
#[derive(Debug, Clone)]
pub struct SmscConfig {
    /// The system_id an ESME must bind with.
    pub system_id: String,
    /// The password an ESME must bind with.
    pub password: String,
    /// Our own system_id, sent in bind_*_resp.
    pub smsc_system_id: SystemId,
    /// How long to wait for the answer to a deliver_sm, enquire_link or unbind.
    pub response_timeout: Duration,
    /// Send enquire_link after this long without a PDU from the ESME (zero: never).
    pub enquire_link_interval: Duration,
    /// deliver_sm sent and not yet answered, at most.
    pub window: usize,
    /// Submits waiting for `accept_submit`/`reject_submit`, at most; a submit beyond
    /// this is answered ESME_RMSGQFUL at once.
    pub max_pending_submits: usize,
    /// How data_coding 0 is read and written.
    pub text: TextConfig,
    /// Largest PDU the decoder accepts, in octets.
    pub max_pdu: usize,
}

impl Default for SmscConfig {
    fn default() -> Self {
        SmscConfig {
            system_id: String::new(),
            password: String::new(),
            smsc_system_id: SystemId::new("smslink").unwrap_or_default(),
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::ZERO,
            window: 10,
            max_pending_submits: 10_000,
            text: TextConfig::default(),
            max_pdu: DEFAULT_MAX_PDU,
        }
    }
}

/// How an ESME is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    /// The ESME may send submit_sm.
    pub fn submits(self) -> bool {
        self != BindKind::Receiver
    }

    /// The ESME takes deliver_sm.
    pub fn receives(self) -> bool {
        self != BindKind::Transmitter
    }

    fn response(self, resp: BindResp) -> Body {
        match self {
            BindKind::Transmitter => Body::BindTransmitterResp(resp),
            BindKind::Receiver => Body::BindReceiverResp(resp),
            BindKind::Transceiver => Body::BindTransceiverResp(resp),
        }
    }
}

/// What a deliver_sm of ours carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryKind {
    /// A mobile-originated message, with the `client_ref` it had.
    Message { client_ref: u64 },
    /// A delivery receipt for the message with this id.
    Receipt { message_id: MessageId },
}

/// Why a deliver_sm of ours got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// Nothing came back within the response timeout.
    ResponseTimeout,
    /// The session ended (unbind, lost connection, framing error) first.
    SessionClosed,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The ESME unbound, or answered our unbind.
    Unbound,
    /// Our enquire_link or unbind got no answer.
    ResponseTimeout,
    /// The driver reported that the connection is gone.
    ConnectionLost,
    /// A command_length the stream cannot be cut by: the connection must close.
    FramingError,
}

/// Something the ESME did that SMPP does not allow, or that this SMSC does not
/// offer. The session keeps going (except after a framing error); these are reported
/// so that a driver can log them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A PDU that could not be decoded; a request was answered with its error status.
    Malformed(DecodeError),
    /// A response that matches no request of ours (ignored).
    UnexpectedResponse {
        command: CommandId,
        seq: u32,
        status: CommandStatus,
    },
    /// A request the bind state does not allow (before the bind, submit_sm on a
    /// receiver bind); answered ESME_RINVBNDSTS.
    NotAllowed {
        command: CommandId,
        seq: u32,
        bound: Option<BindKind>,
    },
    /// A request this SMSC does not serve (query_sm, data_sm, ...); answered
    /// ESME_RINVCMDID, or not at all when it takes no response.
    Unsupported { command: CommandId, seq: u32 },
    /// A bind on a bound session; answered ESME_RALYBND.
    AlreadyBound { seq: u32 },
    /// A submit_sm whose contents make no message; answered with `status`.
    InvalidMessage {
        seq: u32,
        status: CommandStatus,
        error: SmppError,
    },
    /// A submit_sm reusing the sequence number of one still unanswered: dropped (the
    /// answer to the first will carry that number).
    DuplicateSequence { seq: u32 },
    /// More unanswered submits than `max_pending_submits`; answered ESME_RMSGQFUL.
    TooManyPending { seq: u32 },
}

/// What an [`SmscSession`] reports to the SMSC application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// An ESME bound with the right credentials (answered ESME_ROK).
    Bound {
        kind: BindKind,
        system_id: String,
        system_type: String,
        interface_version: u8,
    },
    /// A bind with wrong credentials (answered ESME_RINVSYSID or ESME_RINVPASWD);
    /// the session waits for another bind.
    BindRejected {
        kind: BindKind,
        system_id: String,
        status: CommandStatus,
    },
    /// A submit to answer with `accept_submit`, `reject_submit` or `nack_submit`, in
    /// any order.
    Submit {
        seq: u32,
        message: Box<Message>,
        /// The submit's registered_delivery: bit 0 asks for a receipt whatever
        /// happens, bit 1 for one on failure only.
        registered_delivery: u8,
    },
    /// The ESME took our deliver_sm.
    DeliverAcked { seq: u32, kind: DeliveryKind },
    /// The ESME answered our deliver_sm with an error (deliver_sm_resp or
    /// generic_nack).
    DeliverRejected {
        seq: u32,
        kind: DeliveryKind,
        status: CommandStatus,
    },
    /// No answer to our deliver_sm.
    DeliverFailed {
        seq: u32,
        kind: DeliveryKind,
        reason: FailReason,
    },
    /// The ESME broke the protocol; the session goes on unless `Closed` follows.
    ProtocolViolation(Violation),
    /// The session is over: the driver writes what `poll_transmit` still has, then
    /// closes the connection.
    Closed { reason: CloseReason },
}

/// A command the session cannot carry out now.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// No bind yet, or unbinding.
    #[error("session is not bound")]
    NotBound,
    /// Bound as a transmitter: deliver_sm cannot go to this ESME.
    #[error("the ESME is bound as a transmitter and takes no deliver_sm")]
    NotReceiver,
    /// `window` deliver_sm are already waiting for an answer.
    #[error("the deliver_sm window is full")]
    WindowFull,
    #[error("session is closed")]
    Closed,
    /// `accept_submit`/`reject_submit`/`nack_submit` for a sequence number with no
    /// submit waiting.
    #[error("no submit with sequence number {seq} is waiting for an answer")]
    NotPending { seq: u32 },
    /// A rejection must carry an error status.
    #[error("a rejection cannot carry ESME_ROK")]
    OkStatus,
    /// The message, receipt or message id cannot be put in a PDU.
    #[error("cannot be encoded: {0}")]
    Encode(SmppError),
}

/// A delivery receipt as the SMSC sends it: deliver_sm with esm_class 0x04 from the
/// original recipient to the original sender, the receipted_message_id and
/// message_state TLVs, and the customary text
/// `id:... sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD
/// err:000 text:...` for ESMEs that read only that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id the SMSC gave the message in submit_sm_resp.
    pub message_id: String,
    /// The recipient of the original message: the receipt's source_addr.
    pub recipient: Address,
    /// The sender of the original message: the receipt's destination_addr.
    pub sender: Address,
    /// A `message_state` value (DELIVERED, EXPIRED, UNDELIVERABLE, ...).
    pub state: u8,
    /// The network error code: `err:` in the text, and a network_error_code TLV
    /// when not zero.
    pub error: u16,
    /// When the message was submitted, `YYMMDDhhmm`.
    pub submit_date: String,
    /// When it reached its final state, `YYMMDDhhmm`.
    pub done_date: String,
    /// The original text; the receipt quotes its first 20 characters.
    pub text: String,
}

/// The `stat:` word of a receipt's text for a `message_state` value.
pub fn receipt_stat(state: u8) -> &'static str {
    match state {
        message_state::ENROUTE => "ENROUTE",
        message_state::DELIVERED => "DELIVRD",
        message_state::EXPIRED => "EXPIRED",
        message_state::DELETED => "DELETED",
        message_state::UNDELIVERABLE => "UNDELIV",
        message_state::ACCEPTED => "ACCEPTD",
        message_state::REJECTED => "REJECTD",
        _ => "UNKNOWN",
    }
}

/// The receipt's short_message text. Characters of the quoted text that GSM 03.38
/// lacks become `?`, so that the whole text travels as data_coding 0.
pub fn receipt_text(receipt: &Receipt) -> String {
    let delivered = u8::from(receipt.state == message_state::DELIVERED);
    let quoted: String = receipt
        .text
        .chars()
        .take(RECEIPT_TEXT_CHARS)
        .map(|c| if gsm_code(c).is_some() { c } else { '?' })
        .collect();
    format!(
        "id:{} sub:001 dlvrd:{delivered:03} submit date:{} done date:{} stat:{} err:{:03} text:{quoted}",
        receipt.message_id,
        receipt.submit_date,
        receipt.done_date,
        receipt_stat(receipt.state),
        receipt.error,
    )
}

/// The deliver_sm that carries `receipt`.
pub fn receipt_sm(receipt: &Receipt, config: &TextConfig) -> Result<DeliverSm, SmppError> {
    let message_id =
        MessageId::new(&receipt.message_id).map_err(|e| SmppError::field(Field::MessageId, e))?;
    let mut sm = DeliverSm {
        source: sme_addr(&receipt.recipient, Field::SourceAddr)?,
        destination: sme_addr(&receipt.sender, Field::DestinationAddr)?,
        esm_class: esm_class::SMSC_DELIVERY_RECEIPT,
        data_coding: data_coding::SMSC_DEFAULT,
        ..DeliverSm::default()
    };
    encode_text(
        &receipt_text(receipt),
        data_coding::SMSC_DEFAULT,
        config,
        &mut sm.short_message,
    )?;
    sm.tlvs.push(Tlv::ReceiptedMessageId(message_id));
    sm.tlvs.push(Tlv::MessageState(receipt.state));
    if receipt.error != 0 {
        sm.tlvs.push(Tlv::NetworkErrorCode {
            network_type: NETWORK_GSM,
            error_code: receipt.error,
        });
    }
    Ok(sm)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitBind,
    Bound(BindKind),
    /// We sent unbind and wait for unbind_resp.
    Unbinding(BindKind),
    Closed,
}

#[derive(Debug, Clone)]
enum RequestKind {
    Deliver(DeliveryKind),
    EnquireLink,
    Unbind,
}

impl RequestKind {
    fn response(&self) -> CommandId {
        match self {
            RequestKind::Deliver(_) => CommandId::DeliverSmResp,
            RequestKind::EnquireLink => CommandId::EnquireLinkResp,
            RequestKind::Unbind => CommandId::UnbindResp,
        }
    }
}

/// A request of ours waiting for its response.
#[derive(Debug)]
struct Request {
    seq: u32,
    kind: RequestKind,
    deadline: Instant,
}

/// Sans-IO SMPP SMSC session for one ESME connection.
pub struct SmscSession {
    config: SmscConfig,
    state: State,
    decoder: Decoder,
    out: Vec<u8>,
    events: VecDeque<SessionEvent>,
    next_seq: u32,
    /// Our requests in the order sent; every one has the same timeout, so the front
    /// holds the earliest deadline.
    outstanding: VecDeque<Request>,
    /// Sequence numbers of the ESME's submits waiting for an answer.
    pending_submits: HashSet<u32>,
    /// When the last PDU arrived (enquire_link is sent after a silence).
    last_heard: Instant,
    violations: u64,
}

impl SmscSession {
    pub fn new(config: SmscConfig, now: Instant) -> SmscSession {
        SmscSession {
            decoder: Decoder::new(config.max_pdu),
            config,
            state: State::AwaitBind,
            out: Vec::new(),
            events: VecDeque::new(),
            next_seq: 1,
            outstanding: VecDeque::new(),
            pending_submits: HashSet::new(),
            last_heard: now,
            violations: 0,
        }
    }

    // ---- getters ----

    /// Bound, and not unbinding.
    pub fn is_bound(&self) -> bool {
        matches!(self.state, State::Bound(_))
    }

    /// How the ESME is bound (also while unbinding).
    pub fn bind_kind(&self) -> Option<BindKind> {
        match self.state {
            State::Bound(kind) | State::Unbinding(kind) => Some(kind),
            State::AwaitBind | State::Closed => None,
        }
    }

    /// `deliver` / `receipt` would be accepted now.
    pub fn can_deliver(&self) -> bool {
        self.check_can_deliver().is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Submits waiting for an answer.
    pub fn pending_submits(&self) -> usize {
        self.pending_submits.len()
    }

    /// The submit with this sequence number waits for an answer.
    pub fn is_pending(&self, seq: u32) -> bool {
        self.pending_submits.contains(&seq)
    }

    /// deliver_sm sent and not yet answered.
    pub fn deliveries_in_flight(&self) -> usize {
        self.outstanding
            .iter()
            .filter(|r| matches!(r.kind, RequestKind::Deliver(_)))
            .count()
    }

    /// Protocol violations seen so far.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        self.decoder.push(bytes);
        while let Some(decoded) = self.decoder.poll() {
            self.last_heard = now;
            match decoded {
                Ok(pdu) => self.on_pdu(pdu, now),
                Err(error) => self.on_decode_error(error, now),
            }
            if self.is_closed() {
                return;
            }
        }
    }

    /// Fail overdue requests; send enquire_link after a silence.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.outstanding.front().is_some_and(|r| r.deadline <= now) {
            let Some(request) = self.outstanding.pop_front() else {
                break;
            };
            match request.kind {
                RequestKind::Deliver(kind) => self.events.push_back(SessionEvent::DeliverFailed {
                    seq: request.seq,
                    kind,
                    reason: FailReason::ResponseTimeout,
                }),
                RequestKind::EnquireLink | RequestKind::Unbind => {
                    self.close(CloseReason::ResponseTimeout);
                    return;
                }
            }
        }
        if self.enquire_link_due().is_some_and(|at| at <= now) {
            let _ = self.start_request(RequestKind::EnquireLink, Body::EnquireLink, now);
        }
    }

    pub fn handle_connection_lost(&mut self, _now: Instant) {
        self.close(CloseReason::ConnectionLost);
    }

    // ---- commands ----

    /// Answer the submit `seq` with submit_sm_resp carrying `message_id` (at most 64
    /// characters).
    pub fn accept_submit(
        &mut self,
        seq: u32,
        message_id: &str,
        _now: Instant,
    ) -> Result<(), SessionError> {
        self.check_pending(seq)?;
        let message_id = MessageId::new(message_id)
            .map_err(|e| SessionError::Encode(SmppError::field(Field::MessageId, e)))?;
        self.pending_submits.remove(&seq);
        self.send(&Pdu::new(
            seq,
            Body::SubmitSmResp(SubmitSmResp {
                message_id,
                tlvs: Tlvs::new(),
            }),
        ));
        Ok(())
    }

    /// Answer the submit `seq` with submit_sm_resp carrying the error `status` (no
    /// body, as SMPP 3.4 sends errors).
    pub fn reject_submit(
        &mut self,
        seq: u32,
        status: CommandStatus,
        _now: Instant,
    ) -> Result<(), SessionError> {
        self.answer_with_error(seq, status, CommandId::SubmitSmResp)
    }

    /// Answer the submit `seq` with generic_nack carrying `status` (some SMSCs throttle
    /// this way).
    pub fn nack_submit(
        &mut self,
        seq: u32,
        status: CommandStatus,
        _now: Instant,
    ) -> Result<(), SessionError> {
        self.answer_with_error(seq, status, CommandId::GenericNack)
    }

    /// Send a mobile-originated message; returns the deliver_sm's sequence number.
    pub fn deliver(&mut self, message: &Message, now: Instant) -> Result<u32, SessionError> {
        self.check_can_deliver()?;
        let sm = deliver_sm(message, &self.config.text).map_err(SessionError::Encode)?;
        let kind = DeliveryKind::Message {
            client_ref: message.client_ref,
        };
        self.start_request(RequestKind::Deliver(kind), Body::DeliverSm(sm), now)
    }

    /// Send a delivery receipt; returns the deliver_sm's sequence number.
    pub fn receipt(&mut self, receipt: &Receipt, now: Instant) -> Result<u32, SessionError> {
        self.check_can_deliver()?;
        let sm = receipt_sm(receipt, &self.config.text).map_err(SessionError::Encode)?;
        // receipt_sm has checked the id.
        let message_id = MessageId::new(&receipt.message_id).unwrap_or_default();
        self.start_request(
            RequestKind::Deliver(DeliveryKind::Receipt { message_id }),
            Body::DeliverSm(sm),
            now,
        )
    }

    /// Ask the ESME whether it is there; no answer within the response timeout ends
    /// the session.
    pub fn enquire_link(&mut self, now: Instant) -> Result<u32, SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::Bound(_) => self.start_request(RequestKind::EnquireLink, Body::EnquireLink, now),
            State::AwaitBind | State::Unbinding(_) => Err(SessionError::NotBound),
        }
    }

    /// End the bind: unbind now, `Closed { Unbound }` once the ESME answers. Submits
    /// still pending may be answered meanwhile; new ones are refused.
    pub fn unbind(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::Bound(kind) => {
                self.state = State::Unbinding(kind);
                self.start_request(RequestKind::Unbind, Body::Unbind, now)
                    .map(|_| ())
            }
            State::AwaitBind | State::Unbinding(_) => Err(SessionError::NotBound),
        }
    }

    // ---- outputs ----

    /// Append the bytes to write to `buf`; returns how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        buf.extend_from_slice(&self.out);
        self.out.clear();
        n
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let response = self.outstanding.front().map(|r| r.deadline);
        match (response, self.enquire_link_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn enquire_link_due(&self) -> Option<Instant> {
        let waiting = self
            .outstanding
            .iter()
            .any(|r| matches!(r.kind, RequestKind::EnquireLink));
        if self.config.enquire_link_interval.is_zero() || !self.is_bound() || waiting {
            return None;
        }
        Some(self.last_heard + self.config.enquire_link_interval)
    }

    fn check_can_deliver(&self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::AwaitBind | State::Unbinding(_) => Err(SessionError::NotBound),
            State::Bound(kind) if !kind.receives() => Err(SessionError::NotReceiver),
            State::Bound(_) if self.deliveries_in_flight() >= self.config.window => {
                Err(SessionError::WindowFull)
            }
            State::Bound(_) => Ok(()),
        }
    }

    fn check_pending(&self, seq: u32) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        if !self.pending_submits.contains(&seq) {
            return Err(SessionError::NotPending { seq });
        }
        Ok(())
    }

    fn answer_with_error(
        &mut self,
        seq: u32,
        status: CommandStatus,
        response: CommandId,
    ) -> Result<(), SessionError> {
        self.check_pending(seq)?;
        if status.is_ok() {
            return Err(SessionError::OkStatus);
        }
        self.pending_submits.remove(&seq);
        self.send(&Pdu::response(seq, status, Body::empty(response)));
        Ok(())
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = if seq >= MAX_SEQUENCE { 1 } else { seq + 1 };
        seq
    }

    fn start_request(
        &mut self,
        kind: RequestKind,
        body: Body,
        now: Instant,
    ) -> Result<u32, SessionError> {
        let seq = self.take_seq();
        encode(&Pdu::new(seq, body), &mut self.out).map_err(SessionError::Encode)?;
        self.outstanding.push_back(Request {
            seq,
            kind,
            deadline: now + self.config.response_timeout,
        });
        Ok(seq)
    }

    /// Queue a PDU built here: every field comes from typed values within their
    /// limits, so encoding cannot fail.
    fn send(&mut self, pdu: &Pdu) {
        let encoded = encode(pdu, &mut self.out);
        debug_assert!(encoded.is_ok(), "{encoded:?}");
    }

    fn violation(&mut self, v: Violation) {
        self.violations += 1;
        self.events.push_back(SessionEvent::ProtocolViolation(v));
    }

    fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.state = State::Closed;
        self.pending_submits.clear();
        for request in std::mem::take(&mut self.outstanding) {
            if let RequestKind::Deliver(kind) = request.kind {
                self.events.push_back(SessionEvent::DeliverFailed {
                    seq: request.seq,
                    kind,
                    reason: FailReason::SessionClosed,
                });
            }
        }
        self.events.push_back(SessionEvent::Closed { reason });
    }

    fn on_pdu(&mut self, pdu: Pdu, now: Instant) {
        let seq = pdu.sequence_number;
        let status = pdu.command_status;
        let command = pdu.command_id();
        match pdu.body {
            Body::BindTransmitter(bind) => self.on_bind(BindKind::Transmitter, seq, &bind),
            Body::BindReceiver(bind) => self.on_bind(BindKind::Receiver, seq, &bind),
            Body::BindTransceiver(bind) => self.on_bind(BindKind::Transceiver, seq, &bind),
            // Liveness is answered in every state.
            Body::EnquireLink => self.send(&Pdu::new(seq, Body::EnquireLinkResp)),
            Body::Unbind => {
                self.send(&Pdu::new(seq, Body::UnbindResp));
                self.close(CloseReason::Unbound);
            }
            Body::SubmitSm(sm) => self.on_submit(seq, &sm),
            _ if command.is_response() => self.on_response(command, seq, status, now),
            // Requests that take no response.
            Body::Outbind(_) | Body::AlertNotification(_) => {
                self.violation(Violation::Unsupported { command, seq })
            }
            _ => {
                let reply = if self.is_bound() {
                    self.violation(Violation::Unsupported { command, seq });
                    CommandStatus::ESME_RINVCMDID
                } else {
                    self.not_allowed(command, seq);
                    CommandStatus::ESME_RINVBNDSTS
                };
                if let Some(resp) = command.response() {
                    self.send(&Pdu::response(seq, reply, Body::empty(resp)));
                }
            }
        }
    }

    fn not_allowed(&mut self, command: CommandId, seq: u32) {
        let bound = self.bind_kind();
        self.violation(Violation::NotAllowed {
            command,
            seq,
            bound,
        });
    }

    fn on_bind(&mut self, kind: BindKind, seq: u32, bind: &Bind) {
        let system_id = bind.system_id.to_string_lossy().into_owned();
        if self.state != State::AwaitBind {
            self.violation(Violation::AlreadyBound { seq });
            let reply = kind.response(BindResp::default());
            self.send(&Pdu::response(seq, CommandStatus::ESME_RALYBND, reply));
            return;
        }
        let refusal = if bind.system_id.as_bytes() != self.config.system_id.as_bytes() {
            Some(CommandStatus::ESME_RINVSYSID)
        } else if bind.password.as_bytes() != self.config.password.as_bytes() {
            Some(CommandStatus::ESME_RINVPASWD)
        } else {
            None
        };
        if let Some(status) = refusal {
            let reply = kind.response(BindResp::default());
            self.send(&Pdu::response(seq, status, reply));
            self.events.push_back(SessionEvent::BindRejected {
                kind,
                system_id,
                status,
            });
            return;
        }
        let mut resp = BindResp {
            system_id: self.config.smsc_system_id,
            tlvs: Tlvs::new(),
        };
        // Only an ESME that speaks 3.4 is told our version (SMPP 3.4, 4.1.2).
        if bind.interface_version >= INTERFACE_VERSION_34 {
            resp.tlvs
                .push(Tlv::ScInterfaceVersion(INTERFACE_VERSION_34));
        }
        self.send(&Pdu::new(seq, kind.response(resp)));
        self.state = State::Bound(kind);
        self.events.push_back(SessionEvent::Bound {
            kind,
            system_id,
            system_type: bind.system_type.to_string_lossy().into_owned(),
            interface_version: bind.interface_version,
        });
    }

    fn on_submit(&mut self, seq: u32, sm: &SubmitSm) {
        if !matches!(self.state, State::Bound(kind) if kind.submits()) {
            self.not_allowed(CommandId::SubmitSm, seq);
            self.send(&Pdu::response(
                seq,
                CommandStatus::ESME_RINVBNDSTS,
                Body::empty(CommandId::SubmitSmResp),
            ));
            return;
        }
        if self.pending_submits.contains(&seq) {
            self.violation(Violation::DuplicateSequence { seq });
            return;
        }
        if self.pending_submits.len() >= self.config.max_pending_submits {
            self.violation(Violation::TooManyPending { seq });
            self.send(&Pdu::response(
                seq,
                CommandStatus::ESME_RMSGQFUL,
                Body::empty(CommandId::SubmitSmResp),
            ));
            return;
        }
        match submitted_message(sm, &self.config.text) {
            Ok(message) => {
                self.pending_submits.insert(seq);
                self.events.push_back(SessionEvent::Submit {
                    seq,
                    message: Box::new(message),
                    registered_delivery: sm.registered_delivery,
                });
            }
            Err((status, error)) => {
                self.violation(Violation::InvalidMessage { seq, status, error });
                self.send(&Pdu::response(
                    seq,
                    status,
                    Body::empty(CommandId::SubmitSmResp),
                ));
            }
        }
    }

    fn on_response(&mut self, command: CommandId, seq: u32, status: CommandStatus, _now: Instant) {
        let position = self.outstanding.iter().position(|r| {
            r.seq == seq && (command == CommandId::GenericNack || r.kind.response() == command)
        });
        let Some(request) = position.and_then(|i| self.outstanding.remove(i)) else {
            // No request of ours has this number (or it wants another response):
            // Kannel ignores such a response too, and the request times out.
            self.violation(Violation::UnexpectedResponse {
                command,
                seq,
                status,
            });
            return;
        };
        let refused = command == CommandId::GenericNack || !status.is_ok();
        match request.kind {
            RequestKind::Deliver(kind) if refused => self
                .events
                .push_back(SessionEvent::DeliverRejected { seq, kind, status }),
            RequestKind::Deliver(kind) => self
                .events
                .push_back(SessionEvent::DeliverAcked { seq, kind }),
            // Any answer shows that the ESME is there.
            RequestKind::EnquireLink => {}
            RequestKind::Unbind => self.close(CloseReason::Unbound),
        }
    }

    fn on_decode_error(&mut self, error: DecodeError, now: Instant) {
        let header = error.header().copied();
        let reply = error.reply();
        self.violation(Violation::Malformed(error));
        let Some(header) = header else {
            // Framing: the stream can no longer be cut into PDUs.
            self.send(&Pdu::response(
                0,
                CommandStatus::ESME_RINVCMDLEN,
                Body::GenericNack,
            ));
            self.close(CloseReason::FramingError);
            return;
        };
        match header.command() {
            // A response whose body is broken still says, in its header, which request
            // it answers and how: a deliver_sm_resp with a bad message_id is an answer.
            Some(command) if command.is_response() => {
                self.on_response(command, header.sequence_number, header.command_status, now)
            }
            _ => {
                if let Some(reply) = reply {
                    self.send(&reply);
                }
            }
        }
    }
}

/// The message a submit_sm carries, or the status that refuses it and why.
fn submitted_message(
    sm: &SubmitSm,
    config: &TextConfig,
) -> Result<Message, (CommandStatus, SmppError)> {
    // The addresses first, so that a bad one is named by its own status.
    address(&sm.source).map_err(|e| (CommandStatus::ESME_RINVSRCADR, e))?;
    let to = address(&sm.destination).map_err(|e| (CommandStatus::ESME_RINVDSTADR, e))?;
    if to.is_empty() {
        return Err((
            CommandStatus::ESME_RINVDSTADR,
            SmppError::field(
                Field::DestinationAddr,
                super::error::FieldError::Invalid { reason: "empty" },
            ),
        ));
    }
    message_from_sm(sm, config).map_err(|e| {
        let status = match &e {
            SmppError::Message(MessageError::PayloadTooLong(_)) => CommandStatus::ESME_RINVMSGLEN,
            other => other.status(),
        };
        (status, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::{registered_delivery, submit_sm, Password, SystemType};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn config() -> SmscConfig {
        SmscConfig {
            system_id: "esme".into(),
            password: "pw".into(),
            smsc_system_id: SystemId::new("sim").unwrap(),
            response_timeout: TIMEOUT,
            window: 3,
            max_pending_submits: 4,
            ..SmscConfig::default()
        }
    }

    fn bind(system_id: &str, password: &str) -> Bind {
        Bind {
            system_id: SystemId::new(system_id).unwrap(),
            password: Password::new(password).unwrap(),
            system_type: SystemType::new("VMA").unwrap(),
            interface_version: INTERFACE_VERSION_34,
            ..Bind::default()
        }
    }

    fn submit(to: &str, text: &str) -> SubmitSm {
        let m = Message::text("4670000001", to, text).unwrap();
        submit_sm(&m, &TextConfig::default()).unwrap()
    }

    /// The ESME end of the pipe, driven by hand.
    struct Esme {
        seq: u32,
        decoder: Decoder,
    }

    impl Esme {
        fn new() -> Esme {
            Esme {
                seq: 0,
                decoder: Decoder::default(),
            }
        }

        fn send(&mut self, s: &mut SmscSession, body: Body, now: Instant) -> u32 {
            self.seq += 1;
            self.send_as(s, self.seq, body, now);
            self.seq
        }

        fn send_as(&mut self, s: &mut SmscSession, seq: u32, body: Body, now: Instant) {
            self.send_pdu(s, &Pdu::new(seq, body), now);
        }

        fn send_pdu(&mut self, s: &mut SmscSession, pdu: &Pdu, now: Instant) {
            let mut bytes = Vec::new();
            encode(pdu, &mut bytes).unwrap();
            s.handle_input(&bytes, now);
        }

        fn recv(&mut self, s: &mut SmscSession) -> Vec<Pdu> {
            let mut bytes = Vec::new();
            s.poll_transmit(&mut bytes);
            self.decoder.push(&bytes);
            let mut pdus = Vec::new();
            while let Some(pdu) = self.decoder.poll() {
                pdus.push(pdu.expect("the session sends well-formed PDUs"));
            }
            pdus
        }

        fn recv_one(&mut self, s: &mut SmscSession) -> Pdu {
            let mut pdus = self.recv(s);
            assert_eq!(pdus.len(), 1, "{pdus:?}");
            pdus.remove(0)
        }
    }

    fn events(s: &mut SmscSession) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn bound(body: Body) -> (SmscSession, Esme, Instant) {
        let now = Instant::now();
        let mut s = SmscSession::new(config(), now);
        let mut e = Esme::new();
        e.send(&mut s, body, now);
        let resp = e.recv_one(&mut s);
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        events(&mut s);
        (s, e, now)
    }

    fn transceiver() -> (SmscSession, Esme, Instant) {
        bound(Body::BindTransceiver(bind("esme", "pw")))
    }

    fn submit_event(event: &SessionEvent) -> (u32, String, u8) {
        match event {
            SessionEvent::Submit {
                seq,
                message,
                registered_delivery,
            } => (
                *seq,
                message.text_str().unwrap().to_owned(),
                *registered_delivery,
            ),
            other => panic!("not a submit: {other:?}"),
        }
    }

    #[test]
    fn each_bind_gets_its_own_response_and_role() {
        for (body, kind) in [
            (
                Body::BindTransmitter(bind("esme", "pw")),
                BindKind::Transmitter,
            ),
            (Body::BindReceiver(bind("esme", "pw")), BindKind::Receiver),
            (
                Body::BindTransceiver(bind("esme", "pw")),
                BindKind::Transceiver,
            ),
        ] {
            let now = Instant::now();
            let mut s = SmscSession::new(config(), now);
            let mut e = Esme::new();
            assert!(!s.is_bound());
            e.send(&mut s, body, now);
            let resp = e.recv_one(&mut s);
            let expected = kind.response(BindResp {
                system_id: SystemId::new("sim").unwrap(),
                tlvs: Tlvs::new().with(Tlv::ScInterfaceVersion(0x34)),
            });
            assert_eq!(resp, Pdu::new(1, expected));
            assert_eq!(
                events(&mut s),
                [SessionEvent::Bound {
                    kind,
                    system_id: "esme".into(),
                    system_type: "VMA".into(),
                    interface_version: 0x34,
                }]
            );
            assert!(s.is_bound());
            assert_eq!(s.bind_kind(), Some(kind));
            assert_eq!(s.can_deliver(), kind != BindKind::Transmitter);
        }
    }

    #[test]
    fn an_esme_before_3_4_is_not_told_our_version() {
        let now = Instant::now();
        let mut s = SmscSession::new(config(), now);
        let mut e = Esme::new();
        let mut b = bind("esme", "pw");
        b.interface_version = 0x33;
        e.send(&mut s, Body::BindTransmitter(b), now);
        let resp = e.recv_one(&mut s);
        assert!(
            matches!(&resp.body, Body::BindTransmitterResp(r) if r.tlvs.is_empty()),
            "{resp:?}"
        );
    }

    #[test]
    fn wrong_credentials_are_refused_and_a_later_bind_may_succeed() {
        let now = Instant::now();
        let mut s = SmscSession::new(config(), now);
        let mut e = Esme::new();
        e.send(&mut s, Body::BindTransceiver(bind("mallory", "pw")), now);
        e.send(&mut s, Body::BindTransmitter(bind("esme", "nope")), now);
        let resps = e.recv(&mut s);
        assert_eq!(
            resps,
            [
                Pdu::response(
                    1,
                    CommandStatus::ESME_RINVSYSID,
                    Body::empty(CommandId::BindTransceiverResp)
                ),
                Pdu::response(
                    2,
                    CommandStatus::ESME_RINVPASWD,
                    Body::empty(CommandId::BindTransmitterResp)
                ),
            ]
        );
        assert_eq!(
            events(&mut s),
            [
                SessionEvent::BindRejected {
                    kind: BindKind::Transceiver,
                    system_id: "mallory".into(),
                    status: CommandStatus::ESME_RINVSYSID,
                },
                SessionEvent::BindRejected {
                    kind: BindKind::Transmitter,
                    system_id: "esme".into(),
                    status: CommandStatus::ESME_RINVPASWD,
                },
            ]
        );
        assert!(!s.is_bound() && !s.is_closed());
        e.send(&mut s, Body::BindReceiver(bind("esme", "pw")), now);
        assert_eq!(e.recv_one(&mut s).command_status, CommandStatus::ESME_ROK);
        assert_eq!(s.bind_kind(), Some(BindKind::Receiver));
    }

    #[test]
    fn a_second_bind_gets_already_bound() {
        let (mut s, mut e, now) = bound(Body::BindTransmitter(bind("esme", "pw")));
        let seq = e.send(&mut s, Body::BindReceiver(bind("esme", "pw")), now);
        assert_eq!(
            e.recv_one(&mut s),
            Pdu::response(
                seq,
                CommandStatus::ESME_RALYBND,
                Body::empty(CommandId::BindReceiverResp)
            )
        );
        assert_eq!(
            events(&mut s),
            [SessionEvent::ProtocolViolation(Violation::AlreadyBound {
                seq
            })]
        );
        assert_eq!(
            s.bind_kind(),
            Some(BindKind::Transmitter),
            "first bind kept"
        );
    }

    #[test]
    fn requests_before_the_bind_and_submits_on_a_receiver_are_refused() {
        let now = Instant::now();
        let mut s = SmscSession::new(config(), now);
        let mut e = Esme::new();
        let seq = e.send(&mut s, Body::SubmitSm(submit("123", "early")), now);
        assert_eq!(
            e.recv_one(&mut s),
            Pdu::response(
                seq,
                CommandStatus::ESME_RINVBNDSTS,
                Body::empty(CommandId::SubmitSmResp)
            )
        );
        // enquire_link is answered in any state.
        let seq = e.send(&mut s, Body::EnquireLink, now);
        assert_eq!(e.recv_one(&mut s), Pdu::new(seq, Body::EnquireLinkResp));
        assert_eq!(
            s.deliver(&Message::text("1", "2", "x").unwrap(), now),
            Err(SessionError::NotBound)
        );

        let (mut s, mut e, now) = bound(Body::BindReceiver(bind("esme", "pw")));
        let seq = e.send(&mut s, Body::SubmitSm(submit("123", "no")), now);
        assert_eq!(
            e.recv_one(&mut s).command_status,
            CommandStatus::ESME_RINVBNDSTS
        );
        assert_eq!(
            events(&mut s),
            [SessionEvent::ProtocolViolation(Violation::NotAllowed {
                command: CommandId::SubmitSm,
                seq,
                bound: Some(BindKind::Receiver),
            })]
        );

        let (mut s, _, now) = bound(Body::BindTransmitter(bind("esme", "pw")));
        assert_eq!(
            s.deliver(&Message::text("1", "2", "x").unwrap(), now),
            Err(SessionError::NotReceiver)
        );
    }

    #[test]
    fn a_window_of_submits_is_answered_in_any_order() {
        let (mut s, mut e, now) = transceiver();
        let mut sms = submit("4670000009", "one");
        sms.registered_delivery = registered_delivery::RECEIPT_ALWAYS;
        let mut seqs = vec![e.send(&mut s, Body::SubmitSm(sms), now)];
        for text in ["two", "three", "four"] {
            seqs.push(e.send(&mut s, Body::SubmitSm(submit("4670000009", text)), now));
        }
        assert!(
            e.recv(&mut s).is_empty(),
            "nothing answered before the application"
        );
        let submits: Vec<_> = events(&mut s).iter().map(submit_event).collect();
        assert_eq!(
            submits,
            [
                (seqs[0], "one".into(), 1),
                (seqs[1], "two".into(), 0),
                (seqs[2], "three".into(), 0),
                (seqs[3], "four".into(), 0),
            ]
        );
        assert_eq!(s.pending_submits(), 4);

        s.accept_submit(seqs[2], "id-3", now).unwrap();
        s.reject_submit(seqs[0], CommandStatus::ESME_RINVDSTADR, now)
            .unwrap();
        s.nack_submit(seqs[3], CommandStatus::ESME_RTHROTTLED, now)
            .unwrap();
        s.accept_submit(seqs[1], "id-2", now).unwrap();
        let resp = |seq, id: &str| {
            Pdu::new(
                seq,
                Body::SubmitSmResp(SubmitSmResp {
                    message_id: MessageId::new(id).unwrap(),
                    tlvs: Tlvs::new(),
                }),
            )
        };
        assert_eq!(
            e.recv(&mut s),
            [
                resp(seqs[2], "id-3"),
                Pdu::response(
                    seqs[0],
                    CommandStatus::ESME_RINVDSTADR,
                    Body::empty(CommandId::SubmitSmResp)
                ),
                Pdu::response(seqs[3], CommandStatus::ESME_RTHROTTLED, Body::GenericNack),
                resp(seqs[1], "id-2"),
            ]
        );
        assert_eq!(s.pending_submits(), 0);
        // Each submit is answered once.
        assert_eq!(
            s.accept_submit(seqs[2], "again", now),
            Err(SessionError::NotPending { seq: seqs[2] })
        );
        assert_eq!(
            s.reject_submit(77, CommandStatus::ESME_RSYSERR, now),
            Err(SessionError::NotPending { seq: 77 })
        );
    }

    #[test]
    fn answers_are_checked_before_they_go_out() {
        let (mut s, mut e, now) = transceiver();
        let seq = e.send(&mut s, Body::SubmitSm(submit("123", "x")), now);
        events(&mut s);
        assert_eq!(
            s.reject_submit(seq, CommandStatus::ESME_ROK, now),
            Err(SessionError::OkStatus)
        );
        let long_id = "9".repeat(65);
        assert!(matches!(
            s.accept_submit(seq, &long_id, now),
            Err(SessionError::Encode(SmppError::Field {
                field: Field::MessageId,
                ..
            }))
        ));
        assert!(
            s.is_pending(seq),
            "a refused answer leaves the submit pending"
        );
        assert!(e.recv(&mut s).is_empty());
        s.accept_submit(seq, &long_id[..64], now).unwrap();
        assert_eq!(e.recv(&mut s).len(), 1);
    }

    #[test]
    fn submits_beyond_the_limit_and_repeated_numbers_are_not_queued() {
        let (mut s, mut e, now) = transceiver();
        for n in 1..=4 {
            e.send(&mut s, Body::SubmitSm(submit("123", &format!("m{n}"))), now);
        }
        assert_eq!(events(&mut s).len(), 4);
        let fifth = e.send(&mut s, Body::SubmitSm(submit("123", "m5")), now);
        assert_eq!(
            e.recv_one(&mut s),
            Pdu::response(
                fifth,
                CommandStatus::ESME_RMSGQFUL,
                Body::empty(CommandId::SubmitSmResp)
            )
        );
        // A repeat of a pending number is dropped: the answer to the first serves it.
        e.send_as(&mut s, 2, Body::SubmitSm(submit("123", "again")), now);
        assert!(e.recv(&mut s).is_empty());
        assert_eq!(
            events(&mut s),
            [
                SessionEvent::ProtocolViolation(Violation::TooManyPending { seq: fifth }),
                SessionEvent::ProtocolViolation(Violation::DuplicateSequence { seq: 2 }),
            ]
        );
        assert_eq!(s.pending_submits(), 4);
        assert_eq!(s.violations(), 2);
    }

    #[test]
    fn submits_that_make_no_message_are_refused_with_the_field_status() {
        let (mut s, mut e, now) = transceiver();
        let mut no_destination = submit("123", "x");
        no_destination.destination.addr = Default::default();
        let mut odd_ucs2 = submit("123", "x");
        odd_ucs2.data_coding = data_coding::UCS2;
        odd_ucs2.short_message = vec![0, 0x41, 0];
        let mut bad_source = submit("123", "x");
        bad_source.source.addr = crate::smpp::COctetString::new("a.b").unwrap();
        for (sm, status) in [
            (no_destination, CommandStatus::ESME_RINVDSTADR),
            (odd_ucs2, CommandStatus::ESME_RSYSERR),
            (bad_source, CommandStatus::ESME_RINVSRCADR),
        ] {
            let seq = e.send(&mut s, Body::SubmitSm(sm), now);
            assert_eq!(
                e.recv_one(&mut s),
                Pdu::response(seq, status, Body::empty(CommandId::SubmitSmResp))
            );
            assert!(matches!(
                &events(&mut s)[..],
                [SessionEvent::ProtocolViolation(Violation::InvalidMessage { seq: v, status: st, .. })]
                    if *v == seq && *st == status
            ));
        }
        assert_eq!(s.pending_submits(), 0);
    }

    #[test]
    fn mo_goes_out_through_a_window_and_each_answer_is_reported() {
        let (mut s, mut e, now) = transceiver();
        let mut seqs = Vec::new();
        for n in 1..=3u64 {
            let mut m = Message::text("4670000001", "12345", &format!("mo {n}")).unwrap();
            m.client_ref = n;
            seqs.push(s.deliver(&m, now).unwrap());
        }
        assert_eq!(seqs, [1, 2, 3]);
        assert!(!s.can_deliver());
        assert_eq!(
            s.deliver(&Message::text("1", "2", "x").unwrap(), now),
            Err(SessionError::WindowFull)
        );
        let delivers = e.recv(&mut s);
        assert_eq!(delivers.len(), 3);
        let Body::DeliverSm(first) = &delivers[0].body else {
            panic!("{delivers:?}");
        };
        let m = message_from_sm(first, &TextConfig::default()).unwrap();
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text_str()),
            ("4670000001", "12345", Some("mo 1"))
        );
        assert_eq!(first.esm_class, 0);

        // Answered out of order: one acked, one refused, one left to time out.
        e.send_pdu(
            &mut s,
            &Pdu::response(
                3,
                CommandStatus::ESME_RX_T_APPN,
                Body::empty(CommandId::DeliverSmResp),
            ),
            now,
        );
        e.send_pdu(
            &mut s,
            &Pdu::new(1, Body::DeliverSmResp(Default::default())),
            now,
        );
        assert_eq!(
            events(&mut s),
            [
                SessionEvent::DeliverRejected {
                    seq: 3,
                    kind: DeliveryKind::Message { client_ref: 3 },
                    status: CommandStatus::ESME_RX_T_APPN,
                },
                SessionEvent::DeliverAcked {
                    seq: 1,
                    kind: DeliveryKind::Message { client_ref: 1 },
                },
            ]
        );
        assert!(s.can_deliver());
        assert_eq!(s.deliveries_in_flight(), 1);
        assert_eq!(s.poll_timeout(), Some(now + TIMEOUT));
        s.handle_timeout(now + TIMEOUT - Duration::from_millis(1));
        assert!(events(&mut s).is_empty());
        s.handle_timeout(now + TIMEOUT);
        assert_eq!(
            events(&mut s),
            [SessionEvent::DeliverFailed {
                seq: 2,
                kind: DeliveryKind::Message { client_ref: 2 },
                reason: FailReason::ResponseTimeout,
            }]
        );
        assert_eq!(s.poll_timeout(), None);
        // A late answer matches nothing any more.
        e.send_pdu(
            &mut s,
            &Pdu::new(2, Body::DeliverSmResp(Default::default())),
            now,
        );
        assert!(matches!(
            &events(&mut s)[..],
            [SessionEvent::ProtocolViolation(
                Violation::UnexpectedResponse { seq: 2, .. }
            )]
        ));
        assert!(!s.is_closed());
    }

    #[test]
    fn a_generic_nack_refuses_our_deliver() {
        let (mut s, mut e, now) = transceiver();
        let seq = s
            .deliver(&Message::text("1", "2", "x").unwrap(), now)
            .unwrap();
        e.recv(&mut s);
        e.send_pdu(
            &mut s,
            &Pdu::response(seq, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
            now,
        );
        assert!(matches!(
            &events(&mut s)[..],
            [SessionEvent::DeliverRejected {
                status: CommandStatus::ESME_RINVCMDID,
                ..
            }]
        ));
    }

    #[test]
    fn a_deliver_sm_resp_with_a_broken_body_still_answers() {
        let (mut s, mut e, now) = transceiver();
        let seq = s
            .deliver(&Message::text("1", "2", "x").unwrap(), now)
            .unwrap();
        e.recv(&mut s);
        // message_id without its NUL.
        let mut bytes = vec![0, 0, 0, 18, 0x80, 0, 0, 5, 0, 0, 0, 0];
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(b"ab");
        s.handle_input(&bytes, now);
        let ev = events(&mut s);
        assert!(
            matches!(
                &ev[..],
                [
                    SessionEvent::ProtocolViolation(Violation::Malformed(_)),
                    SessionEvent::DeliverAcked { seq: s2, .. }
                ] if *s2 == seq
            ),
            "{ev:?}"
        );
        assert!(e.recv(&mut s).is_empty(), "a response is never nacked");
    }

    #[test]
    fn receipts_carry_tlvs_and_the_customary_text() {
        let (mut s, mut e, now) = transceiver();
        let receipt = Receipt {
            message_id: "A1B2".into(),
            recipient: Address::new("+4670000009").unwrap(),
            sender: Address::new("Shop").unwrap(),
            state: message_state::DELIVERED,
            error: 0,
            submit_date: "2601021504".into(),
            done_date: "2601021505".into(),
            text: "Hej {€} ñandú, this is long".into(),
        };
        let seq = s.receipt(&receipt, now).unwrap();
        let pdu = e.recv_one(&mut s);
        assert_eq!(pdu.sequence_number, seq);
        let Body::DeliverSm(sm) = pdu.body else {
            panic!("{pdu:?}");
        };
        assert!(sm.is_delivery_receipt());
        assert_eq!(sm.esm_class, esm_class::SMSC_DELIVERY_RECEIPT);
        assert_eq!(
            (sm.source.ton, sm.source.addr.as_str()),
            (1, Some("4670000009"))
        );
        assert_eq!(sm.destination.addr.as_str(), Some("Shop"));
        assert_eq!(sm.tlvs.receipted_message_id(), Some(&b"A1B2"[..]));
        assert_eq!(sm.tlvs.message_state(), Some(message_state::DELIVERED));
        assert_eq!(sm.tlvs.network_error_code(), None);
        let text =
            crate::smpp::decode_text(&sm.short_message, sm.data_coding, &TextConfig::default())
                .unwrap();
        assert_eq!(
            text,
            "id:A1B2 sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 \
             stat:DELIVRD err:000 text:Hej {€} ñand?, this "
        );

        e.send_pdu(
            &mut s,
            &Pdu::new(seq, Body::DeliverSmResp(Default::default())),
            now,
        );
        assert_eq!(
            events(&mut s),
            [SessionEvent::DeliverAcked {
                seq,
                kind: DeliveryKind::Receipt {
                    message_id: MessageId::new("A1B2").unwrap()
                },
            }]
        );

        let failed = Receipt {
            state: message_state::UNDELIVERABLE,
            error: 27,
            ..receipt
        };
        let text = receipt_text(&failed);
        assert!(
            text.contains(" dlvrd:000 ") && text.contains(" stat:UNDELIV err:027 "),
            "{text}"
        );
        let sm = receipt_sm(&failed, &TextConfig::default()).unwrap();
        assert_eq!(sm.tlvs.network_error_code(), Some((3, 27)));
        let bad_id = Receipt {
            message_id: "x".repeat(65),
            ..failed
        };
        assert!(matches!(
            s.receipt(&bad_id, now),
            Err(SessionError::Encode(_))
        ));
    }

    #[test]
    fn enquire_link_goes_both_ways() {
        let now = Instant::now();
        let mut s = SmscSession::new(
            SmscConfig {
                enquire_link_interval: Duration::from_secs(30),
                ..config()
            },
            now,
        );
        let mut e = Esme::new();
        assert_eq!(s.poll_timeout(), None, "no enquire_link before the bind");
        e.send(&mut s, Body::BindTransceiver(bind("esme", "pw")), now);
        e.recv(&mut s);
        let t1 = now + Duration::from_secs(10);
        let seq = e.send(&mut s, Body::EnquireLink, t1);
        assert_eq!(e.recv_one(&mut s), Pdu::new(seq, Body::EnquireLinkResp));
        // Silence is measured from the last PDU heard.
        let due = t1 + Duration::from_secs(30);
        assert_eq!(s.poll_timeout(), Some(due));
        s.handle_timeout(due - Duration::from_millis(1));
        assert!(e.recv(&mut s).is_empty());
        s.handle_timeout(due);
        let ours = e.recv_one(&mut s);
        assert_eq!(ours.body, Body::EnquireLink);
        assert_eq!(s.poll_timeout(), Some(due + TIMEOUT));
        let t2 = due + Duration::from_secs(1);
        e.send_pdu(
            &mut s,
            &Pdu::new(ours.sequence_number, Body::EnquireLinkResp),
            t2,
        );
        assert!(events(&mut s)
            .iter()
            .all(|e| matches!(e, SessionEvent::Bound { .. })));
        assert_eq!(s.poll_timeout(), Some(t2 + Duration::from_secs(30)));

        // The next one goes unanswered: the link is dead.
        s.handle_timeout(t2 + Duration::from_secs(30));
        assert_eq!(e.recv_one(&mut s).body, Body::EnquireLink);
        s.handle_timeout(t2 + Duration::from_secs(30) + TIMEOUT);
        assert_eq!(
            events(&mut s),
            [SessionEvent::Closed {
                reason: CloseReason::ResponseTimeout
            }]
        );
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn the_esme_unbinds_and_deliveries_in_flight_fail() {
        let (mut s, mut e, now) = transceiver();
        let seq = s
            .deliver(&Message::text("1", "2", "x").unwrap(), now)
            .unwrap();
        let pending = e.send(&mut s, Body::SubmitSm(submit("123", "x")), now);
        events(&mut s);
        e.recv(&mut s);
        let unbind = e.send(&mut s, Body::Unbind, now);
        assert_eq!(e.recv_one(&mut s), Pdu::new(unbind, Body::UnbindResp));
        assert_eq!(
            events(&mut s),
            [
                SessionEvent::DeliverFailed {
                    seq,
                    kind: DeliveryKind::Message { client_ref: 0 },
                    reason: FailReason::SessionClosed,
                },
                SessionEvent::Closed {
                    reason: CloseReason::Unbound
                },
            ]
        );
        assert_eq!(
            s.accept_submit(pending, "1", now),
            Err(SessionError::Closed)
        );
        // Nothing more is read or answered.
        e.send(&mut s, Body::EnquireLink, now);
        assert!(e.recv(&mut s).is_empty());
    }

    #[test]
    fn we_unbind_and_wait_for_the_answer() {
        let (mut s, mut e, now) = transceiver();
        let pending = e.send(&mut s, Body::SubmitSm(submit("123", "x")), now);
        events(&mut s);
        s.unbind(now).unwrap();
        assert!(!s.is_bound() && !s.can_deliver());
        let unbind = e.recv_one(&mut s);
        assert_eq!(unbind.body, Body::Unbind);
        // A submit owed is still answered; a new one is refused.
        s.accept_submit(pending, "7", now).unwrap();
        let late = e.send(&mut s, Body::SubmitSm(submit("123", "late")), now);
        let resps = e.recv(&mut s);
        assert_eq!(resps.len(), 2);
        assert_eq!(resps[0].sequence_number, pending);
        assert_eq!(
            (resps[1].sequence_number, resps[1].command_status),
            (late, CommandStatus::ESME_RINVBNDSTS)
        );
        events(&mut s);
        e.send_pdu(
            &mut s,
            &Pdu::new(unbind.sequence_number, Body::UnbindResp),
            now,
        );
        assert_eq!(
            events(&mut s),
            [SessionEvent::Closed {
                reason: CloseReason::Unbound
            }]
        );

        let (mut s, mut e, now) = transceiver();
        s.unbind(now).unwrap();
        e.recv(&mut s);
        s.handle_timeout(now + TIMEOUT);
        assert_eq!(
            events(&mut s),
            [SessionEvent::Closed {
                reason: CloseReason::ResponseTimeout
            }]
        );
    }

    #[test]
    fn malformed_and_unsupported_requests_are_answered() {
        let (mut s, mut e, now) = transceiver();
        // Unknown command id.
        let mut bytes = vec![0, 0, 0, 16, 0, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 9];
        // submit_sm cut short after service_type.
        bytes.extend_from_slice(&[0, 0, 0, 17, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 10, 0]);
        s.handle_input(&bytes, now);
        let seq = e.send(&mut s, Body::QuerySm(Default::default()), now);
        e.send(&mut s, Body::AlertNotification(Default::default()), now);
        assert_eq!(
            e.recv(&mut s),
            [
                Pdu::response(9, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
                Pdu::response(
                    10,
                    CommandStatus::ESME_RINVCMDLEN,
                    Body::empty(CommandId::SubmitSmResp)
                ),
                Pdu::response(
                    seq,
                    CommandStatus::ESME_RINVCMDID,
                    Body::empty(CommandId::QuerySmResp)
                ),
            ]
        );
        let ev = events(&mut s);
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert!(matches!(
            ev[3],
            SessionEvent::ProtocolViolation(Violation::Unsupported {
                command: CommandId::AlertNotification,
                ..
            })
        ));
        // A response to nothing of ours.
        e.send_pdu(
            &mut s,
            &Pdu::new(40, Body::SubmitSmResp(Default::default())),
            now,
        );
        assert!(e.recv(&mut s).is_empty());
        assert!(matches!(
            &events(&mut s)[..],
            [SessionEvent::ProtocolViolation(
                Violation::UnexpectedResponse {
                    command: CommandId::SubmitSmResp,
                    seq: 40,
                    ..
                }
            )]
        ));
        assert!(s.is_bound());
    }

    #[test]
    fn a_framing_error_closes_the_session() {
        let (mut s, mut e, now) = transceiver();
        let seq = s
            .deliver(&Message::text("1", "2", "x").unwrap(), now)
            .unwrap();
        e.recv(&mut s);
        s.handle_input(&[0, 0, 0, 3, 0xFF, 0xFF], now);
        assert_eq!(
            e.recv(&mut s),
            [Pdu::response(
                0,
                CommandStatus::ESME_RINVCMDLEN,
                Body::GenericNack
            )]
        );
        let ev = events(&mut s);
        assert!(
            matches!(
                &ev[..],
                [
                    SessionEvent::ProtocolViolation(Violation::Malformed(DecodeError::Framing(_))),
                    SessionEvent::DeliverFailed { seq: s2, reason: FailReason::SessionClosed, .. },
                    SessionEvent::Closed { reason: CloseReason::FramingError },
                ] if *s2 == seq
            ),
            "{ev:?}"
        );
        s.handle_connection_lost(now);
        assert!(events(&mut s).is_empty(), "closed once");
    }

    #[test]
    fn connection_loss_fails_what_is_in_flight() {
        let (mut s, _, now) = transceiver();
        s.deliver(&Message::text("1", "2", "x").unwrap(), now)
            .unwrap();
        s.handle_connection_lost(now);
        let ev = events(&mut s);
        assert!(matches!(
            &ev[..],
            [
                SessionEvent::DeliverFailed {
                    reason: FailReason::SessionClosed,
                    ..
                },
                SessionEvent::Closed {
                    reason: CloseReason::ConnectionLost
                },
            ]
        ));
        assert_eq!(s.unbind(now), Err(SessionError::Closed));
    }

    #[test]
    fn input_cut_anywhere_gives_the_same_result() {
        let now = Instant::now();
        let mut stream = Vec::new();
        encode(
            &Pdu::new(1, Body::BindTransceiver(bind("esme", "pw"))),
            &mut stream,
        )
        .unwrap();
        for n in 0..5u32 {
            let sm = submit("4670000009", &format!("text {n} @£{{}}"));
            encode(&Pdu::new(2 + n, Body::SubmitSm(sm)), &mut stream).unwrap();
        }
        encode(&Pdu::new(9, Body::EnquireLink), &mut stream).unwrap();
        let run = |chunk: usize| {
            let mut s = SmscSession::new(config(), now);
            for piece in stream.chunks(chunk) {
                s.handle_input(piece, now);
            }
            let mut out = Vec::new();
            s.poll_transmit(&mut out);
            (out, events(&mut s))
        };
        let whole = run(stream.len());
        assert_eq!(whole.1.len(), 1 + 5, "bind + 5 submits");
        for chunk in [1, 2, 3, 7, 16, 17] {
            assert_eq!(run(chunk), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn sequence_numbers_wrap_to_one() {
        let (mut s, mut e, now) = transceiver();
        s.next_seq = MAX_SEQUENCE;
        let m = Message::text("1", "2", "x").unwrap();
        assert_eq!(s.deliver(&m, now), Ok(MAX_SEQUENCE));
        assert_eq!(s.deliver(&m, now), Ok(1));
        let seqs: Vec<u32> = e.recv(&mut s).iter().map(|p| p.sequence_number).collect();
        assert_eq!(seqs, [MAX_SEQUENCE, 1]);
    }
}
