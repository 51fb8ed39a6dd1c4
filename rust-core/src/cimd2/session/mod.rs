//! Sans-IO CIMD2 sessions: [`ClientSession`] (application side, what the buffer
//! server runs toward an SMSC) and [`ServerSession`] (the SMSC side, used by the
//! simulator).
//!
//! Both follow the quinn-proto shape. Methods fall into four kinds:
//! * getters (`is_ready`, `can_submit`, ...),
//! * inputs: `handle_input(bytes, now)`, `handle_timeout(now)`,
//!   `handle_connection_lost(now)`,
//! * application commands (`submit`, `ack_deliver`, `deliver`, `accept_submit`, ...),
//! * outputs, drained after every input or command in this order:
//!   `poll_transmit` (bytes to write), `poll_timeout` (next deadline),
//!   `poll_event` (what happened).
//!
//! CIMD2 is stop-and-wait: each side has at most one request outstanding. The sessions
//! enforce this for what they send and report a peer that breaks it.

mod client;
mod core;
mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use server::{ServerConfig, ServerEvent, ServerSession};

use thiserror::Error;

/// A command the session cannot carry out now.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Not logged in yet (or logging out).
    #[error("session is not logged in")]
    NotReady,
    /// A request is already outstanding; CIMD2 allows one at a time.
    #[error("a request is already outstanding")]
    Busy,
    /// The session has ended.
    #[error("session is closed")]
    Closed,
    /// `ack_*`/`reject_*`/`accept_*` without a peer request waiting for an answer.
    #[error("no peer request is waiting for an answer")]
    NothingPending,
    /// The message cannot be expressed as a CIMD2 packet.
    #[error("message cannot be encoded: {0}")]
    Encode(String),
}

/// Why a request of ours did not get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// No valid response after every retransmission.
    ResponseTimeout,
    /// The connection went away while the request was outstanding.
    ConnectionLost,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Our logout was answered (or, on the server, the client logged out).
    LoggedOut,
    /// The SMSC refused our login.
    LoginRejected { code: u32 },
    /// A request of ours got no answer after every retransmission.
    ResponseTimeout,
    /// The driver reported that the connection is gone.
    ConnectionLost,
}

/// Something the peer did that the protocol does not allow. The session keeps going;
/// these are reported so that a driver can log them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Bytes outside any packet were skipped.
    Garbage { bytes: usize },
    /// A packet could not be decoded; it was answered with NACK or 98.
    Malformed {
        error: String,
        op: Option<u8>,
        number: Option<u8>,
    },
    /// A response whose number matches no outstanding request (ignored).
    UnexpectedResponse { op: u8, number: u8 },
    /// A request that this side does not accept (answered with a negative response).
    UnexpectedOperation { op: u8, number: u8 },
    /// A new request while an earlier one is still unanswered (answered with NACK).
    SecondRequest { op: u8, number: u8 },
    /// A request before a successful login (refused).
    NotLoggedIn { op: u8, number: u8 },
    /// A deliver or submit whose contents cannot be turned into a message (refused).
    InvalidMessage {
        op: u8,
        number: u8,
        code: u32,
        error: String,
    },
    /// A general error (98) or NACK (99) that matches nothing outstanding.
    StrayError {
        op: u8,
        number: u8,
        code: Option<u32>,
    },
}

/// A delivery status report (operation 23), as the SMSC sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// 021: the recipient of the original submit.
    pub destination: String,
    /// 023: the originator of the original submit, when the SMSC includes it.
    pub originator: Option<String>,
    /// 060: service centre timestamp of the original submit (`yymmddhhmmss`).
    pub sc_timestamp: String,
    /// 061: status code (4 = delivered; 2, 3, 6, 7, 8, 9 = failed).
    pub status: u32,
    /// 062: status error code, when present.
    pub status_error: Option<u32>,
    /// 063: discharge time (`yymmddhhmmss`), when present.
    pub discharge_time: Option<String>,
}

/// Status code 061 meaning "delivered".
pub const STATUS_DELIVERED: u32 = 4;
