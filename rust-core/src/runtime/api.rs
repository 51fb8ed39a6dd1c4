//! What a node is configured with and what it reports: the types that the public
//! handle, the C ABI and the Python module all speak.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cimd2::session::ClientConfig;
use crate::link::{Counters, LinkConfig};
use crate::message::Message;
use crate::ring::{Cursors, Outcome, RxCursors, SlotState};
use thiserror::Error;

/// How a link finds its peer. Operators put buffer servers behind NAT, so either
/// side may dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Connect to the peer, and again after every interruption (with backoff).
    Dial(SocketAddr),
    /// Accept the peer's connections on this address (port 0: pick a free one).
    Listen(SocketAddr),
}

/// One named link with its own pair of rings.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub config: LinkConfig,
    pub transport: Transport,
    /// Recipient number prefixes routed to this link (longest prefix wins).
    pub prefixes: Vec<String>,
    /// Messages whose recipient matches no prefix go here.
    pub default_route: bool,
}

impl LinkSpec {
    pub fn new(config: LinkConfig, transport: Transport) -> Self {
        LinkSpec {
            config,
            transport,
            prefixes: Vec::new(),
            default_route: false,
        }
    }
}

/// The SMSC a buffer server talks CIMD2 to.
#[derive(Debug, Clone)]
pub struct SmscSpec {
    pub addr: SocketAddr,
    pub client: ClientConfig,
}

/// Everything a node (buffer server or IM-side endpoint) runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub links: Vec<LinkSpec>,
    /// With an SMSC, the node is a buffer server: the first link's MO source and MT
    /// sink is the SMSC. Without one, the application is both (through the handle).
    pub smsc: Option<SmscSpec>,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Events buffered for the application before the loop stops taking received
    /// messages off the link (which then back-pressures the peer).
    pub event_capacity: usize,
    /// Seed for reconnect jitter (different per process in production).
    pub seed: u64,
}

impl NodeConfig {
    pub fn new(links: Vec<LinkSpec>) -> Self {
        NodeConfig {
            links,
            smsc: None,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            event_capacity: 8192,
            seed: std::process::id() as u64 ^ 0x5eed,
        }
    }
}

/// Index of a link in the order of `NodeConfig::links`.
pub type LinkId = usize;

/// What `send` gives back: where the message went and its sequence number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub link: LinkId,
    pub seq: u64,
}

/// Why the node did not take a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeError {
    #[error("link {link} is full: {capacity} messages not yet processed; retry when one is")]
    Full { link: LinkId, capacity: usize },
    #[error("no link routes recipient {0:?} and there is no default link")]
    NoRoute(String),
    #[error("no link with id {0}")]
    UnknownLink(LinkId),
    #[error("no link named {0:?}")]
    UnknownLinkName(String),
    #[error("the node has stopped")]
    Stopped,
    #[error("command queue is full (too many acknowledgements in flight)")]
    Busy,
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(String),
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Io(e.to_string())
    }
}

/// What the application hears from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// Handshake with the peer completed.
    LinkUp { link: LinkId, peer: String },
    /// The connection ended; the node reconnects (or waits for the peer).
    LinkDown { link: LinkId, reason: String },
    /// A message arrived from the peer (MO on the IM side, MT on an SMSC-less
    /// buffer server). Call `ack` once it is safely handed on.
    Received {
        link: LinkId,
        seq: u64,
        message: Box<Message>,
    },
    /// A message we sent changed state (Sent, Confirmed, Processed with outcome).
    Status {
        link: LinkId,
        seq: u64,
        client_ref: u64,
        state: SlotState,
        outcome: Option<Outcome>,
    },
    /// The CIMD2 session to the SMSC logged in.
    SmscUp,
    /// The CIMD2 session to the SMSC ended; the node reconnects.
    SmscDown { reason: String },
    /// The SMSC did something the protocol does not allow (the session goes on).
    SmscViolation { detail: String },
}

/// A snapshot of one link, as an operator reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub name: String,
    pub up: bool,
    pub peer: Option<String>,
    pub local_addr: Option<SocketAddr>,
    pub capacity: usize,
    pub tx: Cursors,
    pub rx: RxCursors,
    /// Messages in the sending ring not yet Processed.
    pub tx_in_use: usize,
    /// Messages in the receiving ring not yet Processed.
    pub rx_in_use: usize,
    pub counters: Counters,
    pub connects: u64,
    pub refused_connections: u64,
}

/// A snapshot of the SMSC side of a buffer server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmscStats {
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

/// What was left when the node stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    pub links: Vec<LinkStats>,
    pub smsc: Option<SmscStats>,
    /// True when every sending ring was empty (all Processed) at the end.
    pub drained: bool,
}
