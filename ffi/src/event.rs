//! Events as C sees them: a plain struct copied out of the node (no pointer into
//! smslink memory), its kinds and states, and the dispatch callback's type.

use std::ffi::{c_char, c_int};

use smslink_core::message::ReportState;
use smslink_core::ring::{Outcome, SlotState};
use smslink_core::runtime::NodeEvent;

use crate::abi::fill_c_array;
use crate::message::{
    smslink_message, SMSLINK_ADDRESS_SIZE, SMSLINK_CODING_TEXT, SMSLINK_PAYLOAD_SIZE,
};

/// Bytes of the text in an event (peer name, reason): cut to fit, NUL-terminated.
pub const SMSLINK_DETAIL_SIZE: usize = 256;

/// `smslink_node_ack` outcome / `smslink_event.outcome`: no outcome (yet).
pub const SMSLINK_OUTCOME_NONE: u32 = 0;
/// Handed on successfully (SMSC accepted it, IM server stored it).
pub const SMSLINK_OUTCOME_ACCEPTED: u32 = 1;
/// Refused downstream; `error_code` says why.
pub const SMSLINK_OUTCOME_REJECTED: u32 = 2;

/// Kind of a `smslink_event`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smslink_event_type {
    /// Handshake with the peer done; `detail` is the peer's name.
    SMSLINK_EVENT_LINK_UP = 1,
    /// The link's connection ended; `detail` says why. The node reconnects.
    SMSLINK_EVENT_LINK_DOWN = 2,
    /// `message` arrived on `link` as `seq`: hand it on, then `smslink_node_ack`.
    SMSLINK_EVENT_RECEIVED = 3,
    /// A message this side sent (`link`, `seq`, `client_ref`) reached `state`;
    /// once SMSLINK_STATE_PROCESSED, `outcome` and `error_code` say how it ended.
    SMSLINK_EVENT_STATUS = 4,
    /// The session to the SMSC is up (CIMD2 logged in, SMPP bound).
    SMSLINK_EVENT_SMSC_UP = 5,
    /// The session to the SMSC ended; `detail` says why. The node reconnects.
    SMSLINK_EVENT_SMSC_DOWN = 6,
    /// The SMSC broke the protocol (`detail`); the session goes on.
    SMSLINK_EVENT_SMSC_VIOLATION = 7,
    /// A message this side sent (`link`, `seq`, `client_ref`) is in the node's
    /// journal and synced: it survives a crash from now on (nodes with a journal).
    SMSLINK_EVENT_DURABLE = 8,
    /// A delivery report on a message this side sent with `client_ref`: `outcome`
    /// is one of SMSLINK_REPORT_*, `error_code` the SMSC's error (0: none). All
    /// parts of a long message are folded into one report; nothing to acknowledge.
    SMSLINK_EVENT_REPORT = 9,
}

/// `smslink_event.outcome` of SMSLINK_EVENT_REPORT: the phone has the message.
pub const SMSLINK_REPORT_DELIVERED: u32 = 1;
/// The SMSC gave up on the message (`error_code` says why).
pub const SMSLINK_REPORT_FAILED: u32 = 2;
/// The message's validity period ran out.
pub const SMSLINK_REPORT_EXPIRED: u32 = 3;
/// Not final: the SMSC holds the message and keeps trying.
pub const SMSLINK_REPORT_ENROUTE: u32 = 4;

/// Stage of a sent message, in `smslink_event.state`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smslink_slot_state {
    /// Not a status event.
    SMSLINK_STATE_NONE = 0,
    /// Stored in the ring, not yet on the link.
    SMSLINK_STATE_RETRIEVED = 1,
    /// Put on the link, not yet confirmed.
    SMSLINK_STATE_SENT = 2,
    /// The peer stored it.
    SMSLINK_STATE_CONFIRMED = 3,
    /// The peer handed it on; the slot is free again.
    SMSLINK_STATE_PROCESSED = 4,
}

/// One event, copied out of the node: no pointer inside refers to smslink memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smslink_event {
    pub kind: smslink_event_type,
    /// The link concerned (0 for SMSC events).
    pub link: u32,
    /// RECEIVED: the sequence number to acknowledge. STATUS: the sent message's.
    pub seq: u64,
    /// STATUS: the `client_ref` the message was sent with.
    pub client_ref: u64,
    /// STATUS: the stage reached; SMSLINK_STATE_NONE otherwise.
    pub state: smslink_slot_state,
    /// STATUS at PROCESSED: SMSLINK_OUTCOME_ACCEPTED or _REJECTED; else _NONE.
    pub outcome: u32,
    /// With SMSLINK_OUTCOME_REJECTED: the SMSC's or application's error code.
    pub error_code: u32,
    /// RECEIVED: the message (payload NUL-terminated after `payload_len` bytes).
    pub message: smslink_message,
    /// LINK_UP: peer name. LINK_DOWN, SMSC_DOWN, SMSC_VIOLATION: reason. Else "".
    pub detail: [c_char; SMSLINK_DETAIL_SIZE],
    /// RECEIVED: the payload's whole length in bytes. When it is above
    /// SMSLINK_MAX_PAYLOAD, `message.payload` is empty (`message.payload_len` 0) and
    /// `smslink_node_received_payload` copies the payload out until the message is
    /// acknowledged.
    pub payload_len: u32,
    /// RECEIVED: 1 when the message is a long SMS some of whose parts never came
    /// (the payload holds the parts that did), else 0.
    pub incomplete: u32,
    /// REPORT: how many SMS the reported message took (their reports folded into
    /// this one).
    pub parts: u32,
}

impl smslink_event {
    fn empty(kind: smslink_event_type) -> smslink_event {
        smslink_event {
            kind,
            link: 0,
            seq: 0,
            client_ref: 0,
            state: smslink_slot_state::SMSLINK_STATE_NONE,
            outcome: SMSLINK_OUTCOME_NONE,
            error_code: 0,
            message: smslink_message {
                from: [0; SMSLINK_ADDRESS_SIZE],
                to: [0; SMSLINK_ADDRESS_SIZE],
                coding: SMSLINK_CODING_TEXT,
                client_ref: 0,
                payload_len: 0,
                payload: [0; SMSLINK_PAYLOAD_SIZE],
            },
            detail: [0; SMSLINK_DETAIL_SIZE],
            payload_len: 0,
            incomplete: 0,
            parts: 0,
        }
    }

    /// The C form of `ev`. A received message longer than SMSLINK_MAX_PAYLOAD comes
    /// without its payload (the node keeps it for `smslink_node_received_payload`).
    pub(crate) fn from_event(ev: &NodeEvent) -> smslink_event {
        use smslink_event_type::*;
        match ev {
            NodeEvent::LinkUp { link, peer } => {
                let mut e = Self::empty(SMSLINK_EVENT_LINK_UP);
                e.link = *link as u32;
                fill_c_array(&mut e.detail, peer);
                e
            }
            NodeEvent::LinkDown { link, reason } => {
                let mut e = Self::empty(SMSLINK_EVENT_LINK_DOWN);
                e.link = *link as u32;
                fill_c_array(&mut e.detail, reason);
                e
            }
            NodeEvent::Received { link, seq, message } => {
                let mut e = Self::empty(SMSLINK_EVENT_RECEIVED);
                e.link = *link as u32;
                e.seq = *seq;
                e.client_ref = message.client_ref;
                e.message = smslink_message::from_message_or_envelope(message);
                e.payload_len = message.payload().len() as u32;
                e.incomplete = u32::from(message.part.is_some());
                e
            }
            NodeEvent::Status {
                link,
                seq,
                client_ref,
                state,
                outcome,
            } => {
                let mut e = Self::empty(SMSLINK_EVENT_STATUS);
                e.link = *link as u32;
                e.seq = *seq;
                e.client_ref = *client_ref;
                e.state = match state {
                    SlotState::Retrieved => smslink_slot_state::SMSLINK_STATE_RETRIEVED,
                    SlotState::Sent => smslink_slot_state::SMSLINK_STATE_SENT,
                    SlotState::Confirmed => smslink_slot_state::SMSLINK_STATE_CONFIRMED,
                    SlotState::Processed => smslink_slot_state::SMSLINK_STATE_PROCESSED,
                };
                match outcome {
                    None => {}
                    Some(Outcome::Accepted) => e.outcome = SMSLINK_OUTCOME_ACCEPTED,
                    Some(Outcome::Rejected { code }) => {
                        e.outcome = SMSLINK_OUTCOME_REJECTED;
                        e.error_code = *code;
                    }
                }
                e
            }
            NodeEvent::Durable {
                link,
                seq,
                client_ref,
            } => {
                let mut e = Self::empty(SMSLINK_EVENT_DURABLE);
                e.link = *link as u32;
                e.seq = *seq;
                e.client_ref = *client_ref;
                e
            }
            NodeEvent::Report {
                link,
                client_ref,
                state,
                error,
                parts,
            } => {
                let mut e = Self::empty(SMSLINK_EVENT_REPORT);
                e.link = *link as u32;
                e.client_ref = *client_ref;
                e.parts = u32::from(*parts);
                e.outcome = match state {
                    ReportState::Delivered => SMSLINK_REPORT_DELIVERED,
                    ReportState::Failed => SMSLINK_REPORT_FAILED,
                    ReportState::Expired => SMSLINK_REPORT_EXPIRED,
                    ReportState::Enroute => SMSLINK_REPORT_ENROUTE,
                };
                e.error_code = *error;
                e
            }
            NodeEvent::SmscUp { .. } => Self::empty(SMSLINK_EVENT_SMSC_UP),
            NodeEvent::SmscDown { reason, .. } => {
                let mut e = Self::empty(SMSLINK_EVENT_SMSC_DOWN);
                fill_c_array(&mut e.detail, reason);
                e
            }
            NodeEvent::SmscViolation { detail, .. } => {
                let mut e = Self::empty(SMSLINK_EVENT_SMSC_VIOLATION);
                fill_c_array(&mut e.detail, detail);
                e
            }
        }
    }
}

/// Called by `smslink_node_dispatch` on the caller's thread, once per event.
/// `event` is valid only during the call. Return 0 to go on; any other value stops
/// the dispatch, which returns SMSLINK_CALLBACK_ERROR and keeps this event to be
/// delivered again by the next poll or dispatch.
pub type smslink_event_callback = Option<
    unsafe extern "C" fn(userdata: *mut std::ffi::c_void, event: *const smslink_event) -> c_int,
>;
