//! Nodes from C: the configuration builder, the node handle (send, ack, events,
//! event fd, statistics) and the plain C structs that carry messages and events.
//!
//! Nothing here hands a Rust pointer to C other than the opaque handles: messages and
//! events are copied into fixed arrays of caller-owned structs.

use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use parking_lot::Mutex;
use smslink_core::cimd2::session::ClientConfig;
use smslink_core::link::LinkConfig;
use smslink_core::message::{Coding, Message, MAX_ADDRESS, MAX_PAYLOAD};
use smslink_core::ring::{Outcome, SlotState};
use smslink_core::runtime::{
    LinkSpec, Node, NodeConfig, NodeError, NodeEvent, SmscSpec, Transport,
};

use crate::*;

/// Bytes of an address array: 20 characters and the NUL.
pub const SMSLINK_ADDRESS_SIZE: usize = 21;
/// Largest payload of one message, in bytes.
pub const SMSLINK_MAX_PAYLOAD: usize = 640;
/// Bytes of a payload array: the payload and a NUL after it (so text can be printed).
pub const SMSLINK_PAYLOAD_SIZE: usize = 641;
/// Bytes of a link name array: 64 bytes and the NUL.
pub const SMSLINK_NAME_SIZE: usize = 65;
/// Bytes of the text in an event (peer name, reason): cut to fit, NUL-terminated.
pub const SMSLINK_DETAIL_SIZE: usize = 256;

/// `smslink_message.coding`: UTF-8 text.
pub const SMSLINK_CODING_TEXT: u32 = 0;
/// `smslink_message.coding`: raw octets.
pub const SMSLINK_CODING_BINARY: u32 = 1;

/// `smslink_node_ack` outcome / `smslink_event.outcome`: no outcome (yet).
pub const SMSLINK_OUTCOME_NONE: u32 = 0;
/// Handed on successfully (SMSC accepted it, IM server stored it).
pub const SMSLINK_OUTCOME_ACCEPTED: u32 = 1;
/// Refused downstream; `error_code` says why.
pub const SMSLINK_OUTCOME_REJECTED: u32 = 2;

const _: () = assert!(SMSLINK_ADDRESS_SIZE == MAX_ADDRESS + 1);
const _: () = assert!(SMSLINK_PAYLOAD_SIZE == MAX_PAYLOAD + 1);
const _: () = assert!(SMSLINK_MAX_PAYLOAD == MAX_PAYLOAD);

/// One SMS as C sees it. Every field is plain data, copied in and out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smslink_message {
    /// Sender, NUL-terminated (digits, ASCII letters, '+', '-', ' ').
    pub from: [c_char; SMSLINK_ADDRESS_SIZE],
    /// Recipient, NUL-terminated; routes the message on `smslink_node_send`.
    pub to: [c_char; SMSLINK_ADDRESS_SIZE],
    /// SMSLINK_CODING_TEXT (payload is UTF-8) or SMSLINK_CODING_BINARY.
    pub coding: u32,
    /// The application's own reference, echoed back in every status event.
    pub client_ref: u64,
    /// Bytes used in `payload` (at most SMSLINK_MAX_PAYLOAD).
    pub payload_len: u32,
    /// The payload; smslink writes a NUL after it in messages it hands out.
    pub payload: [u8; SMSLINK_PAYLOAD_SIZE],
}

impl smslink_message {
    pub(crate) fn from_message(m: &Message) -> smslink_message {
        let mut out = smslink_message {
            from: [0; SMSLINK_ADDRESS_SIZE],
            to: [0; SMSLINK_ADDRESS_SIZE],
            coding: match m.coding {
                Coding::Text => SMSLINK_CODING_TEXT,
                Coding::Binary => SMSLINK_CODING_BINARY,
            },
            client_ref: m.client_ref,
            payload_len: m.payload().len() as u32,
            payload: [0; SMSLINK_PAYLOAD_SIZE],
        };
        fill_c_array(&mut out.from, m.from.as_str());
        fill_c_array(&mut out.to, m.to.as_str());
        out.payload[..m.payload().len()].copy_from_slice(m.payload());
        out
    }

    pub(crate) fn parse(&self) -> Result<Message, Error> {
        let from = read_c_array(&self.from, "from")?;
        let to = read_c_array(&self.to, "to")?;
        let len = self.payload_len as usize;
        if len > SMSLINK_MAX_PAYLOAD {
            return Err(Error::invalid(format!(
                "payload_len {len} exceeds {SMSLINK_MAX_PAYLOAD}"
            )));
        }
        let payload = &self.payload[..len];
        let mut m = match self.coding {
            SMSLINK_CODING_TEXT => {
                let text = std::str::from_utf8(payload)
                    .map_err(|_| Error::invalid("text payload is not UTF-8"))?;
                Message::text(from, to, text)
            }
            SMSLINK_CODING_BINARY => Message::binary(from, to, payload),
            other => return Err(Error::invalid(format!("unknown coding {other}"))),
        }
        .map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = self.client_ref;
        Ok(m)
    }
}

/// Where a sent message went: the link and its sequence number there (status events
/// and the peer's acknowledgement name it by this pair).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct smslink_receipt {
    pub link: u32,
    pub seq: u64,
}

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
    /// The CIMD2 session to the SMSC logged in.
    SMSLINK_EVENT_SMSC_UP = 5,
    /// The CIMD2 session ended; `detail` says why. The node reconnects.
    SMSLINK_EVENT_SMSC_DOWN = 6,
    /// The SMSC broke the protocol (`detail`); the session goes on.
    SMSLINK_EVENT_SMSC_VIOLATION = 7,
}

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
        }
    }

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
                e.message = smslink_message::from_message(message);
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

/// A snapshot of one link (taken by the node's loop after its latest turn).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smslink_link_stats {
    /// This side's link name, NUL-terminated.
    pub name: [c_char; SMSLINK_NAME_SIZE],
    /// Handshake done and the connection alive.
    pub up: bool,
    /// Slots in each ring.
    pub capacity: u32,
    /// Sending ring cursors: last seq taken in, put on the wire, confirmed stored by
    /// the peer, processed by the peer.
    pub tx_last_retrieved: u64,
    pub tx_last_sent: u64,
    pub tx_last_confirmed: u64,
    pub tx_last_processed: u64,
    /// Receiving ring cursors: last seq stored, handed to the application, acknowledged.
    pub rx_last_stored: u64,
    pub rx_last_delivered: u64,
    pub rx_last_processed: u64,
    /// Messages in the sending / receiving ring not yet processed.
    pub tx_in_use: u32,
    pub rx_in_use: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// DATA frames sent for the first time / again after a reconnection.
    pub data_sent: u64,
    pub data_resent: u64,
    /// New messages stored from the peer / duplicates ignored.
    pub data_received: u64,
    pub duplicates: u64,
    pub acks_sent: u64,
    pub pings_sent: u64,
    pub handshakes: u64,
    pub auth_failures: u64,
    pub link_downs: u64,
    /// Connections made or accepted / refused because too many were waiting.
    pub connects: u64,
    pub refused_connections: u64,
}

/// A snapshot of the SMSC side of a buffer server.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct smslink_smsc_stats {
    pub logged_in: bool,
    pub connects: u64,
    pub mo_received: u64,
    /// MO held unconfirmed at the SMSC because the ring was full.
    pub mo_backpressured: u64,
    pub mt_submitted: u64,
    pub mt_accepted: u64,
    pub mt_rejected: u64,
    pub mt_resubmitted: u64,
    pub status_reports: u64,
    pub violations: u64,
}

/// A node configuration being built. Not thread-safe: one thread at a time.
pub struct smslink_config {
    config: NodeConfig,
    /// Set by `smslink_config_set_smsc`: served by the first link (the C API's
    /// buffer server has one link toward the IM side).
    smsc: Option<SmscSpec>,
}

impl BoxHandle for smslink_config {}

/// A running node (buffer server, or IM-side endpoint).
pub struct smslink_node {
    node: Node,
    /// An event a callback refused: delivered first by the next poll or dispatch.
    stash: Mutex<Option<NodeEvent>>,
}

impl BoxHandle for smslink_node {}

thread_local! {
    /// Messages of a batch, converted from their C form.
    static BATCH_BUFFER: RefCell<Vec<Message>> = const { RefCell::new(Vec::new()) };
    /// Nodes whose callback is running on this thread (dispatch may nest across nodes).
    static IN_CALLBACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn in_callback(node: *const smslink_node) -> bool {
    IN_CALLBACK.with(|c| c.borrow().contains(&(node as usize)))
}

fn not_in_callback(node: *const smslink_node, what: &str) -> Result<(), Error> {
    if in_callback(node) {
        return Err(Error::new(
            SMSLINK_WRONG_THREAD,
            format!("{what} is not allowed inside this node's own event callback"),
        ));
    }
    Ok(())
}

fn node_error(e: NodeError) -> Error {
    let code = match e {
        NodeError::Full { .. } => SMSLINK_FULL,
        NodeError::NoRoute(_) => SMSLINK_NO_ROUTE,
        NodeError::UnknownLink(_) | NodeError::UnknownLinkName(_) => SMSLINK_UNKNOWN_LINK,
        NodeError::Stopped => SMSLINK_STOPPED,
        NodeError::Busy => SMSLINK_BUSY,
        NodeError::Config(_) => SMSLINK_CONFIG,
        NodeError::Io(_) => SMSLINK_IO,
    };
    Error::new(code, e.to_string())
}

fn socket_addr(s: &str) -> Result<SocketAddr, Error> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::invalid(format!("{s:?} is not a host:port address")))
}

fn link_spec(config: &mut smslink_config, link: u32) -> Result<&mut LinkSpec, Error> {
    config.config.links.get_mut(link as usize).ok_or_else(|| {
        Error::new(
            SMSLINK_UNKNOWN_LINK,
            format!("no link {link} in this configuration"),
        )
    })
}

/// A new, empty node configuration in `*out` (free it with `smslink_config_free`).
///
/// Thread safety: any thread. The configuration itself must be used by one thread
/// at a time.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_new(out: *mut *mut smslink_config) -> smslink_result {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let config = smslink_config {
            config: NodeConfig::new(Vec::new()),
            smsc: None,
        };
        write_out(out, config.into_raw());
        Ok(())
    })
}

/// Free a configuration (NULL: nothing happens). Nodes made from it are unaffected.
///
/// Thread safety: no other call may be using `config`.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_free(config: *mut smslink_config) {
    // SAFETY: caller contract: from smslink_config_new, not yet freed, or NULL.
    guard_void(|| unsafe { smslink_config::free_raw(config) })
}

fn add_link(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    listen: bool,
    out_link: *mut u32,
) -> Result<(), Error> {
    // SAFETY: pointer arguments per the header's contract.
    let config = unsafe { arg_mut(config, "config") }?;
    let name = unsafe { arg_str(name, "name") }?;
    let psk = unsafe { arg_bytes(psk, psk_len, "psk") }?;
    let addr = socket_addr(unsafe { arg_str(addr, "addr") }?)?;
    let out_link = out_ptr(out_link, "out_link")?;
    if name.is_empty() || name.len() > SMSLINK_NAME_SIZE - 1 {
        return Err(Error::invalid("link name must be 1 to 64 bytes"));
    }
    if psk.is_empty() {
        return Err(Error::invalid("the pre-shared key must not be empty"));
    }
    let transport = if listen {
        Transport::Listen(addr)
    } else {
        Transport::Dial(addr)
    };
    let id = config.config.links.len() as u32;
    config
        .config
        .links
        .push(LinkSpec::new(LinkConfig::new(name, psk), transport));
    write_out(out_link, id);
    Ok(())
}

/// Add a link that dials `addr` ("host:port") and redials after every interruption.
/// `name` is this side's name in the handshake; `psk` (`psk_len` bytes, not empty)
/// is the key both sides share. Writes the new link's id (0, 1, ... in order of
/// addition) to `*out_link`.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_add_link_dial(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| add_link(config, name, psk, psk_len, addr, false, out_link))
}

/// Add a link that accepts its peer on `addr` ("127.0.0.1:0" picks a free port; read
/// it with `smslink_node_local_port`). Otherwise as `smslink_config_add_link_dial`.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_add_link_listen(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| add_link(config, name, psk, psk_len, addr, true, out_link))
}

/// Slots in each of the link's rings (1..=65536; default 255): how many messages
/// may wait unprocessed before `send` answers SMSLINK_FULL. Use the same value on
/// both sides (each side's receiving ring has this many slots too).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_capacity(
    config: *mut smslink_config,
    link: u32,
    capacity: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if capacity == 0 || capacity > 65536 {
            return Err(Error::invalid(format!(
                "capacity {capacity} is outside 1..=65536"
            )));
        }
        link_spec(config, link)?.config.capacity = capacity as usize;
        Ok(())
    })
}

/// Refuse a peer that announces any other name than `peer_name`.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_expected_peer(
    config: *mut smslink_config,
    link: u32,
    peer_name: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let peer = unsafe { arg_str(peer_name, "peer_name") }?;
        link_spec(config, link)?.config.expected_peer = Some(peer.to_owned());
        Ok(())
    })
}

/// Heartbeat: send a ping after `heartbeat_ms` of silence, declare the link down
/// after `dead_after_ms` without hearing from the peer (defaults 5000 and 15000).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_heartbeat(
    config: *mut smslink_config,
    link: u32,
    heartbeat_ms: u32,
    dead_after_ms: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if heartbeat_ms == 0 || dead_after_ms <= heartbeat_ms {
            return Err(Error::invalid(
                "heartbeat must be > 0 and dead_after longer than heartbeat",
            ));
        }
        let spec = link_spec(config, link)?;
        spec.config.heartbeat_interval = Duration::from_millis(heartbeat_ms.into());
        spec.config.dead_after = Duration::from_millis(dead_after_ms.into());
        Ok(())
    })
}

/// Route recipients starting with `prefix` to this link (longest prefix wins).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_add_prefix(
    config: *mut smslink_config,
    link: u32,
    prefix: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let prefix = unsafe { arg_str(prefix, "prefix") }?;
        link_spec(config, link)?.prefixes.push(prefix.to_owned());
        Ok(())
    })
}

/// Route recipients that match no prefix to this link. Without any prefix or default,
/// link 0 is the default.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_default(
    config: *mut smslink_config,
    link: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        link_spec(config, link)?.default_route = true;
        Ok(())
    })
}

/// Make the node a buffer server speaking CIMD2 to the SMSC at `addr`, logging in as
/// `user` / `password`: link 0 then carries the SMSC's MO out and MT in, and the
/// application does not see them. Without this, the application is the SMSC side
/// (it sends MO with `smslink_node_send`, receives MT as events).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_smsc(
    config: *mut smslink_config,
    addr: *const c_char,
    user: *const c_char,
    password: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let addr = socket_addr(unsafe { arg_str(addr, "addr") }?)?;
        let user = unsafe { arg_str(user, "user") }?;
        let password = unsafe { arg_str(password, "password") }?;
        config.smsc = Some(SmscSpec::cimd2(
            addr,
            ClientConfig {
                user: user.to_owned(),
                password: password.to_owned(),
                ..ClientConfig::default()
            },
        ));
        Ok(())
    })
}

/// Delay before redialling a link or the SMSC: from `min_ms`, doubling with jitter up
/// to `max_ms` (defaults 100 and 5000).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_reconnect(
    config: *mut smslink_config,
    min_ms: u32,
    max_ms: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if min_ms == 0 || max_ms < min_ms {
            return Err(Error::invalid("need 0 < min_ms <= max_ms"));
        }
        config.config.reconnect_min = Duration::from_millis(min_ms.into());
        config.config.reconnect_max = Duration::from_millis(max_ms.into());
        Ok(())
    })
}

/// Events buffered for the application (default 8192) before the node stops taking
/// received messages off the links, which then holds back the peer.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_event_capacity(
    config: *mut smslink_config,
    capacity: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if capacity == 0 {
            return Err(Error::invalid("event capacity must be > 0"));
        }
        config.config.event_capacity = capacity as usize;
        Ok(())
    })
}

/// Start a node from `config` (which stays the caller's: free it when convenient):
/// binds listening links, starts the node's event-loop thread, begins dialling.
/// Writes the handle to `*out`; free it with `smslink_node_free` or
/// `smslink_node_shutdown`.
///
/// Errors: SMSLINK_CONFIG (no link, bad capacity or name...), SMSLINK_IO (bind).
///
/// Thread safety: any thread; `config` must not be changed meanwhile.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_new(
    config: *const smslink_config,
    out: *mut *mut smslink_node,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_ref(config, "config") }?;
        let out = out_ptr(out, "out")?;
        let mut node_config = config.config.clone();
        if let (Some(smsc), Some(link)) = (&config.smsc, node_config.links.first_mut()) {
            link.smsc = Some(smsc.clone());
        }
        let node = Node::start(node_config).map_err(node_error)?;
        let handle = smslink_node {
            node,
            stash: Mutex::new(None),
        };
        write_out(out, handle.into_raw());
        Ok(())
    })
}

fn shutdown(node: *mut smslink_node, flush: Duration, out_drained: *mut bool) -> Result<(), Error> {
    if node.is_null() {
        return Ok(());
    }
    not_in_callback(node, "freeing a node")?;
    // SAFETY: caller contract: from smslink_node_new, not yet freed, no other call
    // in progress on it.
    let handle = unsafe { Box::from_raw(node) };
    let report = handle.node.shutdown(flush);
    write_out(out_drained, report.drained);
    Ok(())
}

/// Stop the node at once and free it (NULL: nothing happens, SMSLINK_OK). Messages
/// not yet processed stay unprocessed: the peer's ring keeps what it stored.
///
/// Returns SMSLINK_WRONG_THREAD (and frees nothing) when called from inside one of
/// this node's own dispatch callbacks.
///
/// Thread safety: any thread, but no other call may be using `node` during or after.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_free(node: *mut smslink_node) -> smslink_result {
    guard(|| shutdown(node, Duration::ZERO, std::ptr::null_mut()))
}

/// Stop taking new messages, try for up to `flush_ms` to get every sent message
/// processed by the peer, then stop and free the node (NULL: nothing happens).
/// When `out_drained` is not NULL, writes whether every sending ring ended empty.
///
/// Returns SMSLINK_WRONG_THREAD (and frees nothing) when called from inside one of
/// this node's own dispatch callbacks.
///
/// Thread safety: any thread, but no other call may be using `node` during or after.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_shutdown(
    node: *mut smslink_node,
    flush_ms: u32,
    out_drained: *mut bool,
) -> smslink_result {
    guard(|| shutdown(node, Duration::from_millis(flush_ms.into()), out_drained))
}

fn receipt_out(out: *mut smslink_receipt, r: smslink_core::runtime::Receipt) {
    write_out(
        out,
        smslink_receipt {
            link: r.link as u32,
            seq: r.seq,
        },
    );
}

/// Hand a message over, routed by its recipient. Returns at once: SMSLINK_OK with the
/// link and sequence number in `*out_receipt` (which may be NULL when not wanted), or
/// SMSLINK_FULL (nothing stored: retry once a status event shows progress),
/// SMSLINK_NO_ROUTE, SMSLINK_INVALID_ARGUMENT (bad address or payload),
/// SMSLINK_STOPPED.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send(
    node: *const smslink_node,
    message: *const smslink_message,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let message = unsafe { arg_ref(message, "message") }?.parse()?;
        let r = node.node.send(&message).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// `smslink_node_send` on a given link instead of by route (SMSLINK_UNKNOWN_LINK
/// when there is no such link).
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_on(
    node: *const smslink_node,
    link: u32,
    message: *const smslink_message,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let message = unsafe { arg_ref(message, "message") }?.parse()?;
        let r = node
            .node
            .send_on(link as usize, &message)
            .map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Send a text message (`text`: NUL-terminated UTF-8, at most 640 bytes), routed by
/// `to`. As `smslink_node_send` otherwise.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_text(
    node: *const smslink_node,
    from: *const c_char,
    to: *const c_char,
    text: *const c_char,
    client_ref: u64,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let from = unsafe { arg_str(from, "from") }?;
        let to = unsafe { arg_str(to, "to") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let mut m = Message::text(from, to, text).map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = client_ref;
        let r = node.node.send(&m).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Send `len` raw octets (at most 640), routed by `to`. As `smslink_node_send`
/// otherwise.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_binary(
    node: *const smslink_node,
    from: *const c_char,
    to: *const c_char,
    data: *const u8,
    len: usize,
    client_ref: u64,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let from = unsafe { arg_str(from, "from") }?;
        let to = unsafe { arg_str(to, "to") }?;
        let data = unsafe { arg_bytes(data, len, "data") }?;
        let mut m = Message::binary(from, to, data).map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = client_ref;
        let r = node.node.send(&m).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Hand `count` messages to `link` in one go, in order, as far as the ring has room.
/// Writes how many were taken to `*out_taken`; their sequence numbers follow each
/// other from `*out_first_seq` (written only when at least one was taken;
/// `out_first_seq` may be NULL). Taking fewer than `count` (even 0) is SMSLINK_OK:
/// the ring was full. A malformed message fails the whole call before any is taken.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_batch(
    node: *const smslink_node,
    link: u32,
    messages: *const smslink_message,
    count: usize,
    out_taken: *mut usize,
    out_first_seq: *mut u64,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_taken = out_ptr(out_taken, "out_taken")?;
        let messages: &[smslink_message] = if count == 0 {
            &[]
        } else if messages.is_null() {
            return Err(Error::null("messages"));
        } else {
            // SAFETY: `count` readable messages (caller contract).
            unsafe { std::slice::from_raw_parts(messages, count) }
        };
        // One buffer per thread, kept between calls: a batch of 256 messages is
        // 180 KB, and allocating that on every call costs more than the hand-off.
        let (taken, first) = BATCH_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            for m in messages {
                buffer.push(m.parse()?);
            }
            let sent = node.node.send_batch(link as usize, &buffer);
            // Do not keep a huge batch's memory for the thread's lifetime.
            if buffer.capacity() > 1024 {
                *buffer = Vec::new();
            } else {
                buffer.clear();
            }
            sent.map_err(node_error)
        })?;
        write_out(out_taken, taken);
        if let Some(first) = first {
            write_out(out_first_seq, first);
        }
        Ok(())
    })
}

/// Report the outcome of a received message (`link`, `seq` from its RECEIVED
/// event) once it is safely handed on: `outcome` is SMSLINK_OUTCOME_ACCEPTED, or
/// SMSLINK_OUTCOME_REJECTED with `error_code`. Frees its slot on both sides; the
/// sender sees a PROCESSED status event. Acknowledgements may come in any order. The
/// node checks `seq` on its own thread: an unknown one is logged there and ignored.
///
/// Errors: SMSLINK_UNKNOWN_LINK, SMSLINK_INVALID_ARGUMENT (outcome), SMSLINK_BUSY
/// (too many acknowledgements queued: retry), SMSLINK_STOPPED.
///
/// Thread safety: any thread (including inside a dispatch callback).
#[no_mangle]
pub unsafe extern "C" fn smslink_node_ack(
    node: *const smslink_node,
    link: u32,
    seq: u64,
    outcome: u32,
    error_code: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let outcome = match outcome {
            SMSLINK_OUTCOME_ACCEPTED => Outcome::Accepted,
            SMSLINK_OUTCOME_REJECTED => Outcome::Rejected { code: error_code },
            other => {
                return Err(Error::invalid(format!(
                    "outcome {other} is not ACCEPTED or REJECTED"
                )))
            }
        };
        node.node
            .ack(link as usize, seq, outcome)
            .map_err(node_error)
    })
}

impl smslink_node {
    fn next_event(&self) -> Option<NodeEvent> {
        if let Some(ev) = self.stash.lock().take() {
            return Some(ev);
        }
        self.node.try_event()
    }

    fn wait_next_event(&self, timeout_ms: i32) -> Option<NodeEvent> {
        if let Some(ev) = self.next_event() {
            return Some(ev);
        }
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        if timeout == Some(Duration::ZERO) {
            return None;
        }
        self.node.wait_event(timeout)
    }
}

/// Copy the next waiting event into `*out`: SMSLINK_OK, or SMSLINK_EMPTY (nothing
/// waiting, `*out` untouched). Never blocks.
///
/// Thread safety: any thread (including inside a dispatch callback); each event
/// goes to exactly one caller.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_poll_event(
    node: *const smslink_node,
    out: *mut smslink_event,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let ev = node
            .next_event()
            .ok_or_else(|| Error::new(SMSLINK_EMPTY, "no event waiting"))?;
        write_out(out, smslink_event::from_event(&ev));
        Ok(())
    })
}

/// As `smslink_node_poll_event`, but wait up to `timeout_ms` (negative: forever) for
/// an event. SMSLINK_EMPTY when none came in time; SMSLINK_WRONG_THREAD inside one
/// of this node's own callbacks.
///
/// Thread safety: any thread; each event goes to exactly one caller.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_wait_event(
    node: *const smslink_node,
    timeout_ms: i32,
    out: *mut smslink_event,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let handle = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        not_in_callback(node, "waiting")?;
        let ev = handle
            .wait_next_event(timeout_ms)
            .ok_or_else(|| Error::new(SMSLINK_EMPTY, "no event within the timeout"))?;
        write_out(out, smslink_event::from_event(&ev));
        Ok(())
    })
}

/// Wait up to `timeout_ms` (0: do not wait, negative: forever) for a first event,
/// then call `callback(userdata, event)` on this thread for it and every event
/// already waiting. Writes the number of events the callback accepted to
/// `*out_count` (may be NULL).
///
/// Returns SMSLINK_OK (even when no event came), or SMSLINK_CALLBACK_ERROR when the
/// callback returned non-zero: dispatch stops and that event is delivered again by
/// the next poll or dispatch. SMSLINK_NULL_PARAMETER when `callback` is NULL,
/// SMSLINK_WRONG_THREAD when called from inside this node's own callback.
///
/// Inside the callback, `smslink_node_send*`, `smslink_node_ack`,
/// `smslink_node_poll_event` and the statistics calls are allowed;
/// `smslink_node_dispatch`, `smslink_node_wait_event`, `smslink_node_free` and
/// `smslink_node_shutdown` on the same node return SMSLINK_WRONG_THREAD.
///
/// Thread safety: any thread; several threads may dispatch the same node, each event
/// goes to exactly one of them.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_dispatch(
    node: *const smslink_node,
    timeout_ms: i32,
    callback: smslink_event_callback,
    userdata: *mut std::ffi::c_void,
    out_count: *mut usize,
) -> smslink_result {
    let mut delivered = 0usize;
    let result = guard(|| {
        // SAFETY: per the header's contract.
        let handle = unsafe { arg_ref(node, "node") }?;
        let callback = callback.ok_or_else(|| Error::null("callback"))?;
        not_in_callback(node, "dispatching")?;
        let mut next = handle.wait_next_event(timeout_ms);
        while let Some(ev) = next {
            let c_event = smslink_event::from_event(&ev);
            IN_CALLBACK.with(|c| c.borrow_mut().push(node as usize));
            // SAFETY: a C function pointer given by the caller; the event lives on
            // our stack for the whole call.
            let rc = unsafe { callback(userdata, &c_event) };
            IN_CALLBACK.with(|c| {
                let mut c = c.borrow_mut();
                if let Some(i) = c.iter().rposition(|&n| n == node as usize) {
                    c.remove(i);
                }
            });
            if rc != 0 {
                *handle.stash.lock() = Some(ev);
                return Err(Error::new(
                    SMSLINK_CALLBACK_ERROR,
                    format!("event callback returned {rc}"),
                ));
            }
            delivered += 1;
            next = handle.next_event();
        }
        Ok(())
    });
    if result == SMSLINK_OK || result == SMSLINK_CALLBACK_ERROR {
        write_out(out_count, delivered);
    }
    result
}

/// A file descriptor that turns readable when events may be waiting, for the
/// caller's own select/poll/epoll loop (never read or close it). On readiness: call
/// `smslink_node_clear_event_fd`, then `smslink_node_poll_event` until SMSLINK_EMPTY
/// (clearing first means an event that arrives meanwhile makes it readable again).
///
/// Thread safety: any thread; the descriptor lives as long as the node.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_event_fd(
    node: *const smslink_node,
    out_fd: *mut c_int,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_fd = out_ptr(out_fd, "out_fd")?;
        write_out(out_fd, node.node.event_fd());
        Ok(())
    })
}

/// Reset the event descriptor to not readable (see `smslink_node_event_fd`).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_clear_event_fd(node: *const smslink_node) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        node.node.clear_event_fd();
        Ok(())
    })
}

/// Number of links in `*out_count`.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_count(
    node: *const smslink_node,
    out_count: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out_count, "out_count")?;
        write_out(out, node.node.link_count() as u32);
        Ok(())
    })
}

/// The id of the link named `name` (SMSLINK_UNKNOWN_LINK when none).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_id(
    node: *const smslink_node,
    name: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let out = out_ptr(out_link, "out_link")?;
        let id = node.node.link_id(name).map_err(node_error)?;
        write_out(out, id as u32);
        Ok(())
    })
}

/// The link a recipient would be routed to (SMSLINK_NO_ROUTE when none).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_route(
    node: *const smslink_node,
    recipient: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let recipient = unsafe { arg_str(recipient, "recipient") }?;
        let out = out_ptr(out_link, "out_link")?;
        let id = node
            .node
            .route(recipient)
            .ok_or_else(|| Error::new(SMSLINK_NO_ROUTE, format!("no route for {recipient:?}")))?;
        write_out(out, id as u32);
        Ok(())
    })
}

/// The address a listening link is bound to, as "ip:port" into `buf` (`len` bytes,
/// NUL-terminated). Writes the text length (without NUL) to `*out_len`, also with
/// SMSLINK_BUFFER_TOO_SMALL (then `buf` is untouched: `len` must exceed it).
/// SMSLINK_NOT_FOUND for a dialling link, SMSLINK_UNKNOWN_LINK for no such link.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_local_addr(
    node: *const smslink_node,
    link: u32,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_len = out_ptr(out_len, "out_len")?;
        let addr = listening_addr(node, link)?.to_string();
        if addr.len() + 1 > len {
            write_out(out_len, addr.len());
            return Err(Error::new(
                SMSLINK_BUFFER_TOO_SMALL,
                format!("{} bytes needed with the NUL", addr.len() + 1),
            ));
        }
        if buf.is_null() {
            return Err(Error::null("buf"));
        }
        // SAFETY: `buf` has `len` writable bytes (caller contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        fill_c_array(dst, &addr);
        write_out(out_len, addr.len());
        Ok(())
    })
}

fn listening_addr(node: &smslink_node, link: u32) -> Result<SocketAddr, Error> {
    if link as usize >= node.node.link_count() {
        return Err(node_error(NodeError::UnknownLink(link as usize)));
    }
    node.node
        .local_addr(link as usize)
        .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, format!("link {link} does not listen")))
}

/// The port a listening link is bound to (handy after binding port 0).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_local_port(
    node: *const smslink_node,
    link: u32,
    out_port: *mut u16,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out_port, "out_port")?;
        write_out(out, listening_addr(node, link)?.port());
        Ok(())
    })
}

/// A snapshot of a link's cursors and counters into `*out`.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_stats(
    node: *const smslink_node,
    link: u32,
    out: *mut smslink_link_stats,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let s = node
            .node
            .link_stats(link as usize)
            .ok_or_else(|| node_error(NodeError::UnknownLink(link as usize)))?;
        let c = &s.counters;
        let mut stats = smslink_link_stats {
            name: [0; SMSLINK_NAME_SIZE],
            up: s.up,
            capacity: s.capacity as u32,
            tx_last_retrieved: s.tx.last_retrieved,
            tx_last_sent: s.tx.last_sent,
            tx_last_confirmed: s.tx.last_confirmed,
            tx_last_processed: s.tx.last_processed,
            rx_last_stored: s.rx.last_stored,
            rx_last_delivered: s.rx.last_delivered,
            rx_last_processed: s.rx.last_processed,
            tx_in_use: s.tx_in_use as u32,
            rx_in_use: s.rx_in_use as u32,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            data_sent: c.data_sent,
            data_resent: c.data_resent,
            data_received: c.data_received,
            duplicates: c.duplicates,
            acks_sent: c.acks_sent,
            pings_sent: c.pings_sent,
            handshakes: c.handshakes,
            auth_failures: c.auth_failures,
            link_downs: c.link_downs,
            connects: s.connects,
            refused_connections: s.refused_connections,
        };
        fill_c_array(&mut stats.name, &s.name);
        write_out(out, stats);
        Ok(())
    })
}

/// A snapshot of the SMSC session's counters (SMSLINK_NOT_FOUND on a node without
/// an SMSC).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_smsc_stats(
    node: *const smslink_node,
    out: *mut smslink_smsc_stats,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let s = node
            .node
            .smsc_stats()
            .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, "this node has no SMSC"))?;
        write_out(
            out,
            smslink_smsc_stats {
                logged_in: s.logged_in,
                connects: s.connects,
                mo_received: s.mo_received,
                mo_backpressured: s.mo_backpressured,
                mt_submitted: s.mt_submitted,
                mt_accepted: s.mt_accepted,
                mt_rejected: s.mt_rejected,
                mt_resubmitted: s.mt_resubmitted,
                status_reports: s.status_reports,
                violations: s.violations,
            },
        );
        Ok(())
    })
}
