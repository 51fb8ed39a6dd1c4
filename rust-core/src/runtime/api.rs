//! What a node is configured with and what it reports: the types that the public
//! handle, the C ABI and the Python module all speak.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::admission::{AdmissionConfig, HandshakeLimits};
use crate::bridge::BridgeConfig;
pub use crate::bridge::SmscStats;
use crate::cimd2::session::ClientConfig;
use crate::journal::JournalConfig;
use crate::link::{Counters, LinkConfig};
use crate::message::{Message, ReportState};
use crate::ring::{Cursors, Outcome, RxCursors, SlotState};
use crate::smsc::SmscClient;
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

/// How a link checks the certificate its peer presents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAuth {
    /// Certificates signed by a CA in this PEM file. A dialer also checks the
    /// listener's certificate carries `TlsSpec::server_name` (default: the link's
    /// `expected_peer`).
    CaFile(PathBuf),
    /// Exactly this key: the SHA-256 of the peer certificate's SubjectPublicKeyInfo
    /// (`smslink keygen` and `smslink fingerprint` print it). The certificate must
    /// be self-signed and within its validity dates.
    Fingerprint([u8; 32]),
}

/// TLS 1.3 for one link (the dialer is the TLS client). Both sides present a
/// certificate and check the peer's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSpec {
    /// PEM file with this side's certificate (then any intermediates).
    pub cert_chain: PathBuf,
    /// PEM file with this side's private key.
    pub key: PathBuf,
    pub peer: PeerAuth,
    /// With a CA: the name the listener's certificate must carry (dialer side).
    pub server_name: Option<String>,
}

impl TlsSpec {
    pub fn new(cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>, peer: PeerAuth) -> Self {
        TlsSpec {
            cert_chain: cert_chain.into(),
            key: key.into(),
            peer,
            server_name: None,
        }
    }
}

/// A link's TLS settings as a user gives them (command line, configuration file,
/// Python keywords), checked in one place: TLS unless plaintext is asked for
/// explicitly, and then no TLS option may be given (half-configured TLS is a
/// mistake, not a wish for plaintext).
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub peer_fingerprint: Option<String>,
    pub server_name: Option<String>,
    pub insecure_plaintext: bool,
}

impl TlsOptions {
    /// The TLS the link runs (`None`: plaintext, asked for), or what is wrong.
    pub fn spec(&self) -> Result<Option<TlsSpec>, String> {
        let any_tls = self.cert.is_some()
            || self.key.is_some()
            || self.ca.is_some()
            || self.peer_fingerprint.is_some();
        if self.insecure_plaintext {
            if any_tls {
                return Err("insecure_plaintext and TLS options together: choose one".into());
            }
            return Ok(None);
        }
        let missing = "the link runs TLS: give tls_cert, tls_key and tls_ca or \
                       tls_peer_fingerprint (or insecure_plaintext to run without encryption)";
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Err(missing.into());
        };
        let peer = match (&self.ca, &self.peer_fingerprint) {
            (Some(ca), None) => PeerAuth::CaFile(ca.clone()),
            (None, Some(fp)) => PeerAuth::Fingerprint(
                super::tls::parse_fingerprint(fp)
                    .map_err(|e| format!("tls_peer_fingerprint: {e}"))?,
            ),
            (Some(_), Some(_)) => {
                return Err("tls_ca and tls_peer_fingerprint together: choose one".into())
            }
            (None, None) => return Err(missing.into()),
        };
        let mut tls = TlsSpec::new(cert, key, peer);
        tls.server_name.clone_from(&self.server_name);
        Ok(Some(tls))
    }

    /// `spec` with TLS as configured (see [`TlsOptions::spec`]).
    pub fn apply(&self, spec: LinkSpec) -> Result<LinkSpec, String> {
        Ok(match self.spec()? {
            Some(tls) => spec.with_tls(tls),
            None => spec.insecure_plaintext(),
        })
    }
}

/// One named link with its own pair of rings.
///
/// A link runs TLS when `tls` is set; without it the node refuses to start unless
/// `insecure_plaintext` says plaintext is meant (then anyone on the path can read
/// and change the messages).
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub config: LinkConfig,
    pub transport: Transport,
    pub tls: Option<TlsSpec>,
    pub insecure_plaintext: bool,
    /// Recipient number prefixes routed to this link (longest prefix wins).
    pub prefixes: Vec<String>,
    /// Messages whose recipient matches no prefix go here.
    pub default_route: bool,
    /// The buffer-server role: the link's local end is this SMSC (its MO go out on
    /// the link, the link's MT are submitted to it) instead of the application.
    pub smsc: Option<SmscSpec>,
    /// A listening link's limits for connections that have not authenticated.
    pub admission: AdmissionConfig,
}

impl LinkSpec {
    pub fn new(config: LinkConfig, transport: Transport) -> Self {
        LinkSpec {
            config,
            transport,
            tls: None,
            insecure_plaintext: false,
            prefixes: Vec::new(),
            default_route: false,
            smsc: None,
            admission: AdmissionConfig::default(),
        }
    }

    /// The same link over TLS.
    pub fn with_tls(self, tls: TlsSpec) -> Self {
        LinkSpec {
            tls: Some(tls),
            insecure_plaintext: false,
            ..self
        }
    }

    /// The same link without TLS (tests on one host, or a link inside a VPN).
    pub fn insecure_plaintext(self) -> Self {
        LinkSpec {
            tls: None,
            insecure_plaintext: true,
            ..self
        }
    }

    /// A buffer server's link: its local end is the SMSC `smsc`.
    pub fn buffer_server(config: LinkConfig, transport: Transport, smsc: SmscSpec) -> Self {
        LinkSpec {
            smsc: Some(smsc),
            ..LinkSpec::new(config, transport)
        }
    }
}

/// The SMSC protocol a buffer server speaks, with its session settings.
#[derive(Debug, Clone)]
pub enum SmscProtocol {
    Cimd2(ClientConfig),
    Smpp(crate::smpp::SmppConfig),
}

impl SmscProtocol {
    /// Ask the SMSC for delivery reports on every MT (CIMD2: status report request
    /// 056 = 14, delivered, failed and buffered, as Kannel asks; SMPP:
    /// registered_delivery 1, a receipt on success or failure), or for none.
    pub fn set_delivery_reports(&mut self, on: bool) {
        use crate::smpp::registered_delivery;
        match self {
            SmscProtocol::Cimd2(c) => c.status_report_request = if on { 14 } else { 0 },
            SmscProtocol::Smpp(c) => {
                c.registered_delivery = if on {
                    registered_delivery::RECEIPT_ALWAYS
                } else {
                    registered_delivery::NONE
                }
            }
        }
    }

    /// A fresh client session of this protocol.
    pub fn client(&self) -> Box<dyn SmscClient> {
        match self {
            SmscProtocol::Cimd2(c) => Box::new(crate::cimd2::Cimd2Client::new(c.clone())),
            SmscProtocol::Smpp(c) => Box::new(crate::smpp::SmppClient::new(c.clone())),
        }
    }

    /// The protocol's short name, as operators configure it.
    pub fn name(&self) -> &'static str {
        match self {
            SmscProtocol::Cimd2(_) => "cimd2",
            SmscProtocol::Smpp(_) => "smpp",
        }
    }
}

/// The SMSC a buffer server connects to.
#[derive(Debug, Clone)]
pub struct SmscSpec {
    pub addr: SocketAddr,
    pub protocol: SmscProtocol,
    /// Retries of temporarily refused MT.
    pub bridge: BridgeConfig,
    /// Bytes of output toward the SMSC that may wait unwritten; an SMSC that lets
    /// more pile up (sends requests but does not read the answers) is disconnected.
    pub max_output: usize,
}

/// Default of [`SmscSpec::max_output`]: far above what a working SMSC leaves unread.
pub const DEFAULT_SMSC_MAX_OUTPUT: usize = 1 << 20;

impl SmscSpec {
    /// A CIMD2 SMSC at `addr`, default retry settings.
    pub fn cimd2(addr: SocketAddr, client: ClientConfig) -> Self {
        SmscSpec {
            addr,
            protocol: SmscProtocol::Cimd2(client),
            bridge: BridgeConfig::default(),
            max_output: DEFAULT_SMSC_MAX_OUTPUT,
        }
    }

    /// An SMPP 3.4 SMSC at `addr` (the ESME binds as `client.bind` says), default
    /// retry settings.
    pub fn smpp(addr: SocketAddr, client: crate::smpp::SmppConfig) -> Self {
        SmscSpec {
            addr,
            protocol: SmscProtocol::Smpp(client),
            bridge: BridgeConfig::default(),
            max_output: DEFAULT_SMSC_MAX_OUTPUT,
        }
    }
}

/// Everything a node (buffer server or IM-side endpoint) runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// A link with an `smsc` makes the node a buffer server for that SMSC; on the
    /// others the application sends and receives through the handle.
    pub links: Vec<LinkSpec>,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Events buffered for the application before the loop stops taking received
    /// messages off the link (which then back-pressures the peer).
    pub event_capacity: usize,
    /// Seed for reconnect jitter (different per process in production).
    pub seed: u64,
    /// Serve `/metrics`, `/status` and `/healthz` over HTTP on this address (port
    /// 0: pick a free one; see `Node::metrics_addr`).
    pub metrics_listen: Option<SocketAddr>,
    /// Keep both rings of every link in a journal in this directory, so that a
    /// restart (or a crash) loses and repeats nothing. `None`: RAM only.
    pub journal: Option<JournalSpec>,
    /// How long the parts of a concatenated SMS wait for the rest before what came
    /// is handed to the application as an incomplete message.
    pub reassembly_timeout: Duration,
    /// The pace of the node's dialled connection setups (all links together): after
    /// an outage, thousands of links come back through this budget.
    pub handshakes: HandshakeLimits,
}

/// Where a node keeps its journal and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    /// One directory per node (a lock file keeps a second process out).
    pub dir: PathBuf,
    pub config: JournalConfig,
}

impl JournalSpec {
    /// The default journal settings (sync on every commit, 1 GiB) in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalSpec {
            dir: dir.into(),
            config: JournalConfig::default(),
        }
    }
}

impl NodeConfig {
    pub fn new(links: Vec<LinkSpec>) -> Self {
        NodeConfig {
            links,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            event_capacity: 8192,
            seed: std::process::id() as u64 ^ 0x5eed,
            metrics_listen: None,
            journal: None,
            reassembly_timeout: Duration::from_secs(600),
            handshakes: HandshakeLimits::default(),
        }
    }
}

/// The event loop's own figures: the cost of its turns (links visited, which
/// does not grow with idle links) and the node's dialled connection setups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    pub turns: u64,
    /// Links visited, over all turns.
    pub link_visits: u64,
    /// Dialled connections in setup now, and the most there were at once.
    pub handshakes_in_progress: usize,
    pub handshakes_peak: usize,
    /// Links waiting for the handshake budget to let them dial.
    pub handshakes_waiting: usize,
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
    /// buffer server). Call `ack` once it is safely handed on. The parts of a
    /// concatenated SMS come as one message (`seq` then stands for all of them);
    /// one whose parts did not all come within `reassembly_timeout` comes with what
    /// came and `message.part` naming the first missing part.
    Received {
        link: LinkId,
        seq: u64,
        message: Box<Message>,
    },
    /// A delivery report on an MT this side sent with `client_ref`: the SMSC's word
    /// on whether the phone got it (all parts of a long message folded into one).
    /// The node acknowledges the report itself when it hands it over.
    Report {
        link: LinkId,
        client_ref: u64,
        state: ReportState,
        /// The protocol's error code (0: none or unknown).
        error: u32,
        /// How many SMS the message took.
        parts: u8,
    },
    /// A message we sent changed state (Sent, Confirmed, Processed with outcome).
    Status {
        link: LinkId,
        seq: u64,
        client_ref: u64,
        state: SlotState,
        outcome: Option<Outcome>,
    },
    /// A message taken by `send` is in the journal and synced: it survives a crash
    /// of this process from now on. Only on a node with a journal; it comes before
    /// any `Status` of that message. After a restart every message the journal gave
    /// back is reported `Durable` again, all of them queued before `Node::start`
    /// returns, so that an application can tell what it must not send again.
    Durable {
        link: LinkId,
        seq: u64,
        client_ref: u64,
    },
    /// The session to the SMSC of buffer-server link `link` logged in.
    SmscUp { link: LinkId },
    /// That session ended; the node reconnects.
    SmscDown { link: LinkId, reason: String },
    /// The SMSC did something the protocol does not allow (the session goes on).
    SmscViolation { link: LinkId, detail: String },
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
    /// Messages taken while the sending ring was full, waiting in the journal for
    /// a slot (overflow to disk; 0 without a journal).
    pub tx_backlog: u64,
    pub counters: Counters,
    pub connects: u64,
    pub refused_connections: u64,
    /// Unauthenticated connections waiting for the link now (listening links).
    pub pending_connections: usize,
    /// On a buffer-server link: its SMSC side.
    pub smsc: Option<SmscStats>,
    /// Time from first transmission to the peer's confirmation.
    pub ack_latency: super::latency::LatencyHistogram,
    /// Why the link last went down (or last failed authentication).
    pub last_error: Option<String>,
}

/// What was left when the node stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    pub links: Vec<LinkStats>,
    /// The first buffer-server link's SMSC side.
    pub smsc: Option<SmscStats>,
    /// True when every sending ring was empty (all Processed) at the end.
    pub drained: bool,
}
