//! What the simulator needs of one connection's SMSC-side session, whatever the
//! protocol: [`SimSession`], implemented over CIMD2's `ServerSession` (`cimd2.rs`)
//! and SMPP's `SmscSession` (`smpp.rs`). The event loop and the SMSC's decisions see
//! only this.

use std::time::Instant;

use smslink::message::{Address, Message};

/// Which of the client's submits an answer is for: the CIMD2 packet number, the
/// SMPP sequence number.
pub(super) type SubmitId = u32;

/// Which of our delivers (MO or report) an event is about; chosen by the caller of
/// [`SimSession::deliver`] / [`SimSession::report`].
pub(super) type DeliveryId = u64;

/// What a session reports, in the terms both protocols share.
#[derive(Debug)]
pub(super) enum SimEvent {
    /// Logged in (SMPP: bound); `receives` when MO and reports may go to it.
    LoggedIn {
        user: String,
        receives: bool,
    },
    LoginRejected {
        user: String,
    },
    /// A submit to answer with [`SimSession::answer`].
    Submit {
        id: SubmitId,
        message: Box<Message>,
        /// The client asked for a delivery report.
        wants_report: bool,
    },
    /// The client took a deliver.
    Delivered {
        id: DeliveryId,
    },
    /// The client refused it; `retry`: only for now (SMPP's ESME_RX_T_APPN and other
    /// temporary statuses), so the simulator delivers it again later.
    Refused {
        id: DeliveryId,
        retry: bool,
    },
    /// No answer to it, or the session ended first.
    Failed {
        id: DeliveryId,
        reason: String,
    },
    /// The client broke the protocol (for the log).
    Violation(String),
    /// The session is over (for the log).
    Closed(String),
}

/// An accepted submit's identity, in each protocol's terms.
pub(super) struct Accepted<'a> {
    /// SMPP's message_id.
    pub message_id: &'a str,
    /// CIMD2's service centre timestamp (`yymmddhhmmss`).
    pub timestamp: &'a str,
    /// CIMD2 echoes the destination.
    pub destination: &'a str,
}

/// How to answer a submit.
pub(super) enum Answer<'a> {
    Accept(Accepted<'a>),
    /// With this error code (CIMD2) or command_status (SMPP).
    Reject(u32),
    /// "Try again": CIMD2's NACK, SMPP's generic_nack with a temporary status.
    Nack,
    /// SMPP's ESME_RTHROTTLED (`SimConfig::validate` keeps it off CIMD2).
    Throttle,
}

/// A delivery report for an accepted submit: "delivered", at the time it was
/// accepted.
#[derive(Debug, Clone)]
pub(super) struct Report {
    /// The id the submit's answer carried (SMPP).
    pub message_id: String,
    /// The original sender and recipient.
    pub from: Address,
    pub to: Address,
    /// The original text (SMPP receipts quote its start; empty for binary).
    pub text: String,
    /// The acceptance time, `yymmddhhmmss` (CIMD2's service centre timestamp).
    pub timestamp: String,
}

/// One connection's SMSC-side session.
pub(super) trait SimSession: Send {
    fn handle_input(&mut self, bytes: &[u8], now: Instant);
    fn handle_timeout(&mut self, now: Instant);
    fn handle_connection_lost(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self, out: &mut Vec<u8>);
    fn poll_event(&mut self) -> Option<SimEvent>;
    fn is_closed(&self) -> bool;
    /// Another MO or report may go out now.
    fn can_deliver(&self) -> bool;
    /// The submit `id` still waits for its answer.
    fn is_pending(&self, id: SubmitId) -> bool;
    fn answer(&mut self, id: SubmitId, answer: &Answer<'_>, now: Instant) -> Result<(), String>;
    fn deliver(&mut self, id: DeliveryId, message: &Message, now: Instant) -> Result<(), String>;
    fn report(&mut self, id: DeliveryId, report: &Report, now: Instant) -> Result<(), String>;
    /// Count the packets completed by `bytes`, the next ones read from the client;
    /// when the `limit`-th of the connection completes, the offset of its last octet.
    fn packet_limit(&mut self, bytes: &[u8], limit: u64) -> Option<usize>;
    /// Packets counted by `packet_limit` so far.
    fn packets_in(&self) -> u64;
}
