//! The protocol-neutral SMSC client session: what the buffer server (`bridge`) needs
//! from any SMSC protocol. CIMD2 implements it (`cimd2::Cimd2Client`); SMPP will.
//!
//! One [`SmscClient`] lives as long as the buffer server and outlives its TCP
//! connections: the driver reports `connected` / `connection_lost`, moves bytes with
//! `handle_input` / `poll_transmit` and time with `handle_timeout` / `poll_timeout`,
//! and drains `poll_event` after every input. Like every core below the runtime it
//! never touches a socket, a clock or a thread.
//!
//! Submits carry *our* id (the link sequence number of the MT, or for a part of a
//! long MT an id made from it by [`part_submit_id`]); the session reports
//! each one exactly once per attempt as `Accepted`, `Rejected` or `Unanswered`.
//! Messages from the SMSC (MO, status reports) carry a [`MoToken`]; the session keeps
//! the SMSC waiting for its answer until the bridge calls `answer` with that token.

use std::time::Instant;

use crate::message::Message;
pub use crate::sms::concat::LongMessages;
pub use crate::sms::number::AddressSide;

/// Our identifier of a submitted message: the sequence number the link's ring gave it.
pub type SubmitId = u64;

/// The id of part `index` (1-based) of the long MT numbered `seq`: the top bit set,
/// then the seq and the part's number, so that it never equals a seq (a link's
/// seqs stay far below 2^55).
pub fn part_submit_id(seq: u64, index: u8) -> SubmitId {
    (1 << 63) | (seq << 8) | u64::from(index)
}

/// Which message from the SMSC an answer is for (protocol-specific: the CIMD2 packet
/// number, the SMPP sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MoToken(pub u32);

/// How the bridge answers a message from the SMSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoAnswer {
    /// Stored safely: the SMSC may forget it.
    Accept,
    /// Not taken now; the SMSC should deliver it again later (SMPP: ESME_RX_T_APPN).
    RetryLater,
    /// Never taken: this address of it cannot be attributed (CIMD2 error 306 or 300;
    /// SMPP ESME_RINVSRCADR or ESME_RINVDSTADR).
    Refuse(AddressSide),
}

/// The outcome of a submitted message as far as the SMSC has decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanence {
    /// The SMSC will not take this message, ever (bad address, bad content...).
    Permanent,
    /// The SMSC could not take it now (congestion, throttling, system error): the
    /// message is resubmitted later.
    Temporary,
}

/// A delivery status report, in the terms every protocol shares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// The SMSC's id of the submitted message (CIMD2: the service centre timestamp of
    /// the submit; SMPP: receipted_message_id).
    pub smsc_id: String,
    /// The recipient of the original message.
    pub recipient: String,
    /// The handset got the message.
    pub delivered: bool,
    /// The SMSC gave up on the message (a final failure); neither flag: still trying.
    pub failed: bool,
    /// With `failed`: it gave up because the validity period ran out.
    pub expired: bool,
    /// The protocol's own status and error codes, for logs.
    pub status: u32,
    pub error: Option<u32>,
}

/// What an SMSC session reports to the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmscEvent {
    /// Logged in / bound: submits may start.
    Up,
    /// The session is over (refused login, logout, dead line, lost connection); the
    /// driver closes the connection after writing what `poll_transmit` still has and
    /// dials again later. Submits outstanding were reported `Unanswered` before this.
    Down { reason: String },
    /// The SMSC accepted a submit.
    Accepted {
        id: SubmitId,
        /// The SMSC's id of the message (for matching status reports).
        smsc_id: Option<String>,
    },
    /// The SMSC refused a submit.
    Rejected {
        id: SubmitId,
        code: u32,
        permanence: Permanence,
        text: Option<String>,
    },
    /// A submit got no answer (timeout, lost connection): it may or may not have been
    /// accepted, and is submitted again.
    Unanswered { id: SubmitId },
    /// A mobile-originated message; answer it with `answer(token, ..)`.
    Mo {
        token: MoToken,
        message: Box<Message>,
    },
    /// An MO whose originator or destination has no normal form (`sms::number`);
    /// the bridge answers it `MoAnswer::Refuse(side)`.
    MoUnattributable {
        token: MoToken,
        side: AddressSide,
        detail: String,
    },
    /// A delivery status report; answer it with `answer(token, ..)`.
    StatusReport {
        token: MoToken,
        report: StatusReport,
    },
    /// The SMSC did something the protocol does not allow; the session goes on.
    Violation { detail: String },
}

/// Why a submit was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No room now (not logged in, window full, throttled): try again later.
    #[error("the session takes no submit now")]
    NoRoom,
    /// The message cannot be expressed in this protocol; it never will be.
    #[error("the message cannot be encoded: {reason}")]
    Unencodable { reason: String, code: u32 },
}

/// Which of a session's TCP connections: 0, or 0 and 1 for a protocol that binds a
/// transmitter and a receiver separately (SMPP's TX + RX pair).
pub type ConnIndex = usize;

/// A protocol's client session toward one SMSC, across its connections.
///
/// A session uses `connection_count()` TCP connections at once; the driver dials
/// them all, reports each with `connected(i)`, and moves bytes per connection. The
/// session is one unit: when `is_open()` turns false after having been open, the
/// driver closes every connection and dials again later.
pub trait SmscClient: Send {
    /// The protocol's name, for logs (`"cimd2"`, `"smpp"`).
    fn protocol(&self) -> &'static str;

    /// How many TCP connections the session uses at once (1 for most).
    fn connection_count(&self) -> usize {
        1
    }

    /// How long an MO may wait unanswered for room in the ring before it is answered
    /// `RetryLater`. `None`: as long as it takes (CIMD2: the SMSC waits, stop-and-wait).
    /// SMPP answers ESME_RX_T_APPN after a while, so that an SMSC with a deliver_sm
    /// timeout is not left waiting through a long outage of the link.
    fn mo_hold_limit(&self) -> Option<std::time::Duration> {
        None
    }

    /// The SMSC's message id is unique only together with the recipient (CIMD2's
    /// service centre timestamp): reports are then matched on both.
    fn report_id_needs_recipient(&self) -> bool {
        false
    }

    /// Submits ask the SMSC for status reports (CIMD2 056, SMPP registered_delivery):
    /// only then does the bridge keep each accepted MT's ids to match them.
    fn requests_reports(&self) -> bool {
        false
    }

    /// How a message longer than one SMS is sent: as a concatenated SMS whose parts
    /// carry a user data header (CIMD2; SMPP by default), as parts with SMPP's sar_*
    /// TLVs, or whole (SMPP's message_payload).
    fn long_messages(&self) -> LongMessages {
        LongMessages::Udh(crate::sms::concat::RefWidth::Eight)
    }

    // ---- inputs from the driver ----

    /// Connection `conn` is up: start logging in on it.
    fn connected(&mut self, conn: ConnIndex, now: Instant);
    /// Connection `conn` is gone: outstanding submits become `Unanswered`, unanswered
    /// MO are forgotten (the SMSC delivers them again), and `Down` follows.
    fn connection_lost(&mut self, conn: ConnIndex, now: Instant);
    fn handle_input(&mut self, conn: ConnIndex, bytes: &[u8], now: Instant);
    fn handle_timeout(&mut self, now: Instant);

    // ---- commands from the bridge ----

    /// How many more submits may be outstanding now: 0 while not logged in; CIMD2
    /// allows 1, SMPP a window.
    fn submit_room(&self) -> usize;
    /// Submit `message` under our `id`; its outcome comes back as an event with `id`.
    fn submit(&mut self, id: SubmitId, message: &Message, now: Instant) -> Result<(), SubmitError>;
    /// Answer the SMSC's message `token`. An unknown token (its connection is gone) is
    /// ignored.
    fn answer(&mut self, token: MoToken, answer: MoAnswer, now: Instant);
    /// Log out politely once nothing is outstanding (shutdown).
    fn logout(&mut self, now: Instant);

    // ---- outputs ----

    /// Append bytes to write on connection `conn` to `buf`; returns how many.
    fn poll_transmit(&mut self, conn: ConnIndex, buf: &mut Vec<u8>) -> usize;
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_event(&mut self) -> Option<SmscEvent>;
    /// The session has started (a connection was reported) and has not ended.
    fn is_open(&self) -> bool;
}
