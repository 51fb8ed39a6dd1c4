//! Machinery both session kinds share: the byte pipe, our single outstanding request
//! (numbering, retransmission, NACK renumbering), the answer slot for the peer's
//! request (pending answer, duplicate detection), and the packet handling that is the
//! same on both sides ([`Role`]). The client and the SMSC are mirror images: they differ
//! in the parity of the numbers they own and in the requests they take.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{CloseReason, FailReason, Violation};
use crate::cimd2::{encode, param, Decoded, Decoder, Operation, Packet};

/// Error code 1: unexpected operation.
pub(super) const ERR_UNEXPECTED_OPERATION: u32 = 1;
/// Error code 2: syntax error.
pub(super) const ERR_SYNTAX: u32 = 2;

/// Decoder in, encoded bytes out.
pub(super) struct Wire {
    pub decoder: Decoder,
    out: Vec<u8>,
    checksum: bool,
}

impl Wire {
    pub fn new(max_packet: usize, checksum: bool) -> Self {
        Wire {
            decoder: Decoder::new(max_packet),
            out: Vec::new(),
            checksum,
        }
    }

    pub fn send(&mut self, packet: &Packet) {
        encode(packet, self.checksum, &mut self.out);
    }

    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        buf.extend_from_slice(&self.out);
        self.out.clear();
        n
    }
}

/// A request of ours that is waiting for its response.
pub(super) struct Outstanding<K> {
    pub kind: K,
    pub packet: Packet,
    pub tries: u32,
    pub deadline: Instant,
}

/// Our request slot: at most one outstanding request (stop-and-wait).
pub(super) struct Requester<K> {
    /// 1 when our requests use odd numbers (the client), 0 for even ones (the SMSC).
    parity: u8,
    next_number: u8,
    outstanding: Option<Outstanding<K>>,
    response_timeout: Duration,
    max_tries: u32,
}

/// The next packet number of the same parity: odd numbers wrap 255 -> 001,
/// even ones 254 -> 000.
pub(super) fn successor(number: u8) -> u8 {
    number.wrapping_add(2)
}

impl<K> Requester<K> {
    pub fn new(first_number: u8, response_timeout: Duration, max_retries: u32) -> Self {
        Requester {
            parity: first_number % 2,
            next_number: first_number,
            outstanding: None,
            response_timeout,
            max_tries: max_retries.saturating_add(1),
        }
    }

    /// `number` has the parity of our requests' numbers.
    pub fn owns(&self, number: u8) -> bool {
        number % 2 == self.parity
    }

    pub fn take_number(&mut self) -> u8 {
        let n = self.next_number;
        self.next_number = successor(n);
        n
    }

    pub fn is_idle(&self) -> bool {
        self.outstanding.is_none()
    }

    pub fn outstanding(&self) -> Option<&Outstanding<K>> {
        self.outstanding.as_ref()
    }

    pub fn start(&mut self, kind: K, packet: Packet, now: Instant, wire: &mut Wire) {
        wire.send(&packet);
        self.outstanding = Some(Outstanding {
            kind,
            packet,
            tries: 1,
            deadline: now + self.response_timeout,
        });
    }

    /// Send the outstanding request again with its number; `false` when every try
    /// has been used (the caller then fails it).
    pub fn retransmit(&mut self, now: Instant, wire: &mut Wire) -> bool {
        let timeout = self.response_timeout;
        let max_tries = self.max_tries;
        match self.outstanding.as_mut() {
            Some(out) if out.tries < max_tries => {
                out.tries += 1;
                out.deadline = now + timeout;
                wire.send(&out.packet);
                true
            }
            _ => false,
        }
    }

    /// The peer's NACK carried another number of our parity: use it from now on,
    /// as Kannel does.
    pub fn adopt_number(&mut self, number: u8) {
        if let Some(out) = self.outstanding.as_mut() {
            out.packet.number = number;
            self.next_number = successor(number);
        }
    }

    pub fn matches(&self, number: u8) -> bool {
        self.outstanding
            .as_ref()
            .is_some_and(|o| o.packet.number == number)
    }

    pub fn take(&mut self) -> Option<Outstanding<K>> {
        self.outstanding.take()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.deadline)
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }
}

/// How a request from the peer relates to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// A new request: handle it.
    New,
    /// The request we are still working on, sent again: the answer follows when ready.
    RepeatOfPending,
    /// The request we answered last, sent again (our answer was lost): answer again.
    RepeatOfAnswered,
    /// A different request while one is unanswered: stop-and-wait broken.
    SecondRequest,
}

/// The answer slot for the peer's requests.
#[derive(Default)]
pub(super) struct Responder {
    pending: Option<(Operation, u8)>,
    last_answered: Option<(Operation, u8)>,
    last_answer: Option<Packet>,
}

impl Responder {
    pub fn classify(&self, op: Operation, number: u8) -> Arrival {
        if let Some(pending) = self.pending {
            return if pending == (op, number) {
                Arrival::RepeatOfPending
            } else {
                Arrival::SecondRequest
            };
        }
        if self.last_answered == Some((op, number)) {
            Arrival::RepeatOfAnswered
        } else {
            Arrival::New
        }
    }

    pub fn set_pending(&mut self, op: Operation, number: u8) {
        self.pending = Some((op, number));
    }

    pub fn pending(&self) -> Option<(Operation, u8)> {
        self.pending
    }

    /// Answer the pending request (or an immediate one) and remember the answer so
    /// that a repeat of the request gets the same answer.
    pub fn answer(&mut self, request: Operation, answer: Packet, wire: &mut Wire) {
        wire.send(&answer);
        if self
            .pending
            .is_some_and(|(op, n)| op == request && n == answer.number)
        {
            self.pending = None;
        }
        self.last_answered = Some((request, answer.number));
        self.last_answer = Some(answer);
    }

    pub fn replay(&self, wire: &mut Wire) {
        if let Some(answer) = &self.last_answer {
            wire.send(answer);
        }
    }

    pub fn clear(&mut self) {
        self.pending = None;
    }
}

/// `op + 50` with no parameters: the positive answer.
pub(super) fn positive(request: Operation, number: u8) -> Packet {
    Packet::new(response_of(request), number)
}

/// `op + 50` carrying 900 (and 901 when given): the negative answer.
pub(super) fn negative(request: Operation, number: u8, code: u32, text: Option<&str>) -> Packet {
    let mut p = Packet::new(response_of(request), number);
    push_error(&mut p, code, text);
    p
}

pub(super) fn general_error(number: u8, code: u32, text: Option<&str>) -> Packet {
    let mut p = Packet::new(Operation::GeneralError, number);
    push_error(&mut p, code, text);
    p
}

pub(super) fn nack(number: u8) -> Packet {
    Packet::new(Operation::Nack, number)
}

fn push_error(p: &mut Packet, code: u32, text: Option<&str>) {
    p.push_u32(param::ERROR_CODE, code);
    if let Some(t) = text {
        p.push(param::ERROR_TEXT, t.as_bytes());
    }
}

fn response_of(request: Operation) -> Operation {
    // Only requests (codes below 50) are ever answered here.
    request.response().unwrap_or(Operation::GeneralError)
}

/// The 900 error code of a response, when it signals an error (absent or 0 = success).
pub(super) fn error_of(p: &Packet) -> Option<u32> {
    p.error_code().filter(|c| *c != 0)
}

pub(super) fn error_text(p: &Packet) -> Option<String> {
    p.error_text().map(str::to_owned)
}

/// A known response operation (request + 50); unknown codes are not responses.
pub(super) fn is_response(code: u8) -> bool {
    (50..98).contains(&code) && !matches!(Operation::from_code(code), Operation::Other(_))
}

/// The events both roles report in the same way.
pub(super) trait SessionEvent {
    fn violation(v: Violation) -> Self;
    fn closed(reason: CloseReason) -> Self;
}

/// What every session holds whatever its role.
pub(super) struct Core<K, E> {
    pub wire: Wire,
    pub requests: Requester<K>,
    pub answers: Responder,
    pub events: VecDeque<E>,
    violations: u64,
}

impl<K, E: SessionEvent> Core<K, E> {
    /// `first_number` numbers our first request; its parity is ours for the whole
    /// session. The rest are the settings both configs carry.
    pub fn new(
        first_number: u8,
        response_timeout: Duration,
        max_retries: u32,
        checksum: bool,
        max_packet: usize,
    ) -> Self {
        Core {
            wire: Wire::new(max_packet, checksum),
            requests: Requester::new(first_number, response_timeout, max_retries),
            answers: Responder::default(),
            events: VecDeque::new(),
            violations: 0,
        }
    }

    pub fn violation(&mut self, v: Violation) {
        self.violations += 1;
        self.events.push_back(E::violation(v));
    }

    /// Protocol violations reported so far.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// The session has just ended: nothing is answered any more.
    pub fn closed(&mut self, reason: CloseReason) {
        self.answers.clear();
        self.events.push_back(E::closed(reason));
    }

    /// Answer the peer's request `request` (see [`Responder::answer`]).
    pub fn answer(&mut self, request: Operation, answer: Packet) {
        self.answers.answer(request, answer, &mut self.wire);
    }

    /// Deal with repeats and stop-and-wait breaches of the peer; `true` when the
    /// request is new and the role is to handle it.
    pub fn admit(&mut self, op: Operation, number: u8) -> bool {
        match self.answers.classify(op, number) {
            Arrival::New => true,
            Arrival::RepeatOfPending => false,
            Arrival::RepeatOfAnswered => {
                self.answers.replay(&mut self.wire);
                false
            }
            Arrival::SecondRequest => {
                self.violation(Violation::SecondRequest {
                    op: op.code(),
                    number,
                });
                // "Not now, send it again": the answer a stop-and-wait peer expects.
                self.wire.send(&nack(number));
                false
            }
        }
    }
}

/// How the peer answered our outstanding request.
pub(super) enum Answer<'a> {
    /// The positive response (`op + 50` without an error code).
    Accepted(&'a Packet),
    /// A negative response (900 error code) or a general error (98).
    Refused { code: u32, text: Option<String> },
}

/// What differs between the client and the SMSC side; the packet handling both
/// share is provided on top of it.
pub(super) trait Role {
    type Request: Copy;
    type Event: SessionEvent;
    /// Answer a garbled packet whose number is readable but whose operation is not
    /// with a syntax error (98, code 2); otherwise it goes unanswered.
    const ANSWERS_UNREADABLE_OPERATION: bool;

    fn core(&mut self) -> &mut Core<Self::Request, Self::Event>;
    fn is_closed(&self) -> bool;
    /// End the session (once) with `reason`.
    fn close(&mut self, reason: CloseReason);
    /// The requests this side takes from its peer (alive is always taken).
    fn accepts(op: Operation) -> bool;
    /// A new request from the peer, one that [`Role::accepts`].
    fn on_peer_request(&mut self, p: Packet, now: Instant);
    /// Our outstanding request of this kind has been answered.
    fn finish(&mut self, kind: Self::Request, answer: Answer<'_>, now: Instant);
    /// Our outstanding request of this kind will get no answer.
    fn fail(&mut self, kind: Self::Request, reason: FailReason);

    fn read_input(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        self.core().wire.decoder.push(bytes);
        while let Some(decoded) = self.core().wire.decoder.poll() {
            match decoded {
                Decoded::Packet(p) => self.on_packet(p, now),
                Decoded::Skipped(bytes) => self.core().violation(Violation::Garbage { bytes }),
                Decoded::Malformed { error, op, number } => {
                    self.on_malformed(error.to_string(), op, number, now)
                }
            }
            if self.is_closed() {
                return;
            }
        }
    }

    /// Retransmit the outstanding request when its response is overdue.
    fn on_timeout(&mut self, now: Instant) {
        if !self.is_closed() && self.core().requests.is_due(now) {
            self.retransmit_or_fail(now);
        }
    }

    fn on_connection_lost(&mut self) {
        if self.is_closed() {
            return;
        }
        self.fail_outstanding(FailReason::ConnectionLost);
        self.close(CloseReason::ConnectionLost);
    }

    fn retransmit_or_fail(&mut self, now: Instant) {
        let core = self.core();
        if !core.requests.retransmit(now, &mut core.wire) {
            self.fail_outstanding(FailReason::ResponseTimeout);
        }
    }

    fn fail_outstanding(&mut self, reason: FailReason) {
        if let Some(out) = self.core().requests.take() {
            self.fail(out.kind, reason);
        }
    }

    fn on_packet(&mut self, p: Packet, now: Instant) {
        let code = p.op.code();
        match p.op {
            // Liveness only: answered at once, outside the one-request slot.
            Operation::Alive => self.core().wire.send(&positive(Operation::Alive, p.number)),
            Operation::Nack => self.on_nack(p, now),
            Operation::GeneralError => self.on_general_error(p, now),
            _ if is_response(code) => self.on_response(p, now),
            op if Self::accepts(op) => {
                if self.core().admit(op, p.number) {
                    self.on_peer_request(p, now);
                }
            }
            _ => {
                let core = self.core();
                core.violation(Violation::UnexpectedOperation {
                    op: code,
                    number: p.number,
                });
                core.wire
                    .send(&general_error(p.number, ERR_UNEXPECTED_OPERATION, None));
            }
        }
    }

    fn on_response(&mut self, p: Packet, now: Instant) {
        let core = self.core();
        let right_op = match core.requests.outstanding() {
            Some(out) if out.packet.number == p.number => out.packet.op.response() == Some(p.op),
            // Kannel ignores it and keeps waiting; so do we.
            _ => {
                core.violation(Violation::UnexpectedResponse {
                    op: p.op.code(),
                    number: p.number,
                });
                return;
            }
        };
        if !right_op {
            // Right number, wrong operation: send the request again.
            core.violation(Violation::UnexpectedResponse {
                op: p.op.code(),
                number: p.number,
            });
            self.retransmit_or_fail(now);
            return;
        }
        let Some(out) = core.requests.take() else {
            return;
        };
        let answer = match error_of(&p) {
            None => Answer::Accepted(&p),
            Some(code) => Answer::Refused {
                code,
                text: error_text(&p),
            },
        };
        self.finish(out.kind, answer, now);
    }

    fn on_nack(&mut self, p: Packet, now: Instant) {
        let core = self.core();
        let number = p.number;
        let ours = core.requests.matches(number);
        if core.requests.is_idle() || !(ours || core.requests.owns(number)) {
            core.violation(Violation::StrayError {
                op: p.op.code(),
                number,
                code: error_of(&p),
            });
            return;
        }
        if !ours {
            core.requests.adopt_number(number);
        }
        self.retransmit_or_fail(now);
    }

    fn on_general_error(&mut self, p: Packet, now: Instant) {
        let core = self.core();
        let code = error_of(&p).unwrap_or(ERR_UNEXPECTED_OPERATION);
        if !core.requests.matches(p.number) {
            core.violation(Violation::StrayError {
                op: p.op.code(),
                number: p.number,
                code: Some(code),
            });
            return;
        }
        if let Some(out) = core.requests.take() {
            let text = error_text(&p);
            self.finish(out.kind, Answer::Refused { code, text }, now);
        }
    }

    fn on_malformed(&mut self, error: String, op: Option<u8>, number: Option<u8>, now: Instant) {
        let core = self.core();
        core.violation(Violation::Malformed { error, op, number });
        let Some(number) = number else {
            return;
        };
        let Some(op) = op else {
            if Self::ANSWERS_UNREADABLE_OPERATION {
                core.wire.send(&general_error(number, ERR_SYNTAX, None));
            }
            return;
        };
        if is_response(op) || op == Operation::Nack.code() || op == Operation::GeneralError.code() {
            // A garbled answer to our request: ask again rather than wait for the timeout.
            if core.requests.matches(number) {
                self.retransmit_or_fail(now);
            }
            return;
        }
        let op = Operation::from_code(op);
        let reply = if op == Operation::Alive || Self::accepts(op) {
            // A request we take, most likely corrupted on the way: NACK asks for it again.
            nack(number)
        } else {
            general_error(number, ERR_UNEXPECTED_OPERATION, None)
        };
        core.wire.send(&reply);
    }
}
