//! Machinery both session kinds share: the byte pipe, our single outstanding request
//! (numbering, retransmission, NACK renumbering) and the answer slot for the peer's
//! request (pending answer, duplicate detection).

use std::time::{Duration, Instant};

use crate::cimd2::{encode, param, Decoder, Operation, Packet};

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
            next_number: first_number,
            outstanding: None,
            response_timeout,
            max_tries: max_retries.saturating_add(1),
        }
    }

    pub fn set_next_number(&mut self, number: u8) {
        self.next_number = number;
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
