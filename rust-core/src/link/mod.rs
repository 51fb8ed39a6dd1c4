//! The pipelined buffer link: frames, handshake, sans-IO session with resynchronisation.
//!
//! One [`Endpoint`] per link and per process: it owns the sending [`Ring`] (messages
//! from the local source to the peer) and the receiving [`RxRing`] (messages from the
//! peer to the local application), so both directions (MT and MO) share one
//! connection. It outlives connections: the runtime dials or accepts a TCP stream
//! (and completes TLS over it), calls [`Endpoint::connected_with_binding`] (or
//! [`Endpoint::connected`] in plaintext), feeds plaintext bytes, and on any failure calls
//! [`Endpoint::connection_lost`] and dials again later. The endpoint never touches a
//! socket or a clock.
//!
//! # Driving it (quinn-proto shape)
//!
//! * Getters: [`cursors`](Endpoint::cursors), [`rx_cursors`](Endpoint::rx_cursors),
//!   [`counters`](Endpoint::counters), [`is_up`](Endpoint::is_up), [`epoch`](Endpoint::epoch).
//! * Inputs: [`connected`](Endpoint::connected),
//!   [`connected_with_binding`](Endpoint::connected_with_binding),
//!   [`handle_input`](Endpoint::handle_input),
//!   [`handle_timeout`](Endpoint::handle_timeout), [`connection_lost`](Endpoint::connection_lost).
//! * Application commands: [`send`](Endpoint::send), [`next_received`](Endpoint::next_received),
//!   [`mark_processed`](Endpoint::mark_processed), [`close`](Endpoint::close).
//! * Outputs: [`poll_transmit`](Endpoint::poll_transmit), [`poll_timeout`](Endpoint::poll_timeout),
//!   [`poll_event`](Endpoint::poll_event).
//!
//! After any input or command, drain in this order: `poll_transmit` until it returns 0
//! (write the bytes), `poll_timeout` (re-arm the timer), `poll_event` until `None`.
//! On [`Event::LinkDown`] flush `poll_transmit` once more (a CLOSE frame may be
//! queued), then close the socket; the endpoint is already disconnected.
//!
//! # Handshake
//!
//! The runtime says which side dialled ([`Side`]) and hands over a 32-byte
//! *binding* of the connection: over TLS the keying-material exporter (RFC 5705) of
//! the TLS session ([`Endpoint::connected_with_binding`]); in plaintext a hash of
//! both HELLO nonces ([`Endpoint::connected`]), so both modes run the same code.
//!
//! ```text
//! dialer                                   listener
//!   HELLO(nonce_d)            --->  <---   HELLO(nonce_l)
//!   PROOF(tag_d)              --->          verify tag_d
//!   verify tag_l              <---   PROOF(tag_l) STATE(listener)
//!   STATE(dialer) SYNC        --->          up after SYNC
//!   up after SYNC             <---   SYNC
//! tag_x = HMAC-SHA256(psk, "smslink link v2 proof" || x's role || binding)
//! binding = TLS exporter, or SHA-256("smslink link v2 plaintext binding" ||
//!                                    nonce_d || nonce_l)
//! ```
//!
//! Over TLS the dialer sends its PROOF with its HELLO (the exporter is fresh for
//! the session already); in plaintext it waits for the listener's nonce.
//!
//! Why this order: the listener is the side anyone on the internet can reach, so it
//! gives nothing PSK-derived (nothing to guess the key offline against) and no link
//! state (name, epoch, cursors) to a peer before that peer has proven it holds the
//! key. The dialer proves first; it speaks only to the address it was configured
//! with, and over TLS only after the listener's certificate was verified, so its
//! tag goes to a peer that has already authenticated itself. HELLO carries nothing
//! but the protocol version and a nonce. The binding makes each tag valid on one
//! TLS session only: a relay that terminates TLS from one side and opens its own
//! session to the other has two different exporters, and the tags it forwards fail.
//! The roles are part of the tag, so a tag reflected back to its sender fails too;
//! so does a HELLO carrying our own nonce and a STATE carrying our own epoch.
//!
//! Each side commits its view of the peer's ring only once the peer is proven: the
//! STATE gives the peer's epoch and sending cursor, the SYNC answer says what the
//! receiver holds. A wrong tag or (after a valid proof) an unexpected peer name
//! emits [`Event::AuthFailed`] with the detail for the local log, and the CLOSE sent
//! to the peer says only "refused". Data flows once each side has the peer's SYNC.
//!
//! # Synchronisation (the seed's Fig. 3)
//!
//! While disconnected both sides keep accepting from their own source until the ring
//! is full ([`Full`] is back-pressure; nothing is dropped). The AUTH frame tells the
//! sender exactly which of its seqs the receiver holds (`rx_last_stored`), so the
//! sender marks those Confirmed and resends from there up to Last Sent, then carries
//! on with new messages. The receiver stores strictly in order and ignores a seq it
//! already holds, so every message reaches the application exactly once, in order.
//! Processed outcomes whose notice may have been lost are announced again after the
//! handshake; an ACK also carries the receiver's flow-control limit, so the sender
//! never overruns the receiver's ring (capacities may differ).
//!
//! # Restarted peer
//!
//! With a journal ([`persist`]) a restarted end is rebuilt as the same incarnation:
//! same epoch, same seqs, unprocessed messages of both rings held again. To the
//! peer that is a reconnection like any other (HELLO and AUTH exchange where each
//! ring stands), and nothing it was promised is missing: confirmations, outcomes
//! and DATA leave only once the records behind them are durable.
//!
//! The epoch is random per [`Endpoint::new`], so a restarted peer without a journal
//! is recognised. Such a side has lost both rings; then:
//! * Our sending ring: everything above Last Processed is sent again (Confirmed
//!   messages fall back to Sent, the only time Last Confirmed moves backwards).
//!   Nothing we accepted is lost. A message the dead peer had already handed on is
//!   delivered a second time if its Processed notice never reached us, and also if
//!   it was processed out of order above an unprocessed one (the new peer's ring
//!   starts at our Last Processed); such a message keeps its first outcome and
//!   reports no new state.
//! * Our receiving ring: messages from the old peer incarnation that the application
//!   has not taken yet are still delivered; the new incarnation's seqs are placed
//!   after them (an offset between its numbering and ours), so local seqs keep
//!   growing and delivery stays in order. Messages the dead peer had accepted but
//!   not sent are lost with it unless its journal keeps them.

pub mod frame;
pub mod persist;
mod ready_set;
pub(crate) use ready_set::ReadySet;

use crate::journal::{Direction, LinkIdentity, Record};
use crate::message::Message;
use crate::ring::{Cursors, Full, Outcome, RingError, RxCursors, RxRing, SlotState, Stored};
use crate::ring::{Ring, DEFAULT_CAPACITY, MAX_CAPACITY};
use frame::{AckWriter, CloseReason, Frame, FrameError, FrameType, Hello, Proof};
use frame::{MAC_LEN, MAX_NAME, NONCE_LEN, VERSION};
use hmac::{Hmac, Mac};
use persist::{LinkState, Persist, PersistMark};
use sha2::Sha256;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Shortest pre-shared key accepted: a shorter one is a password an attacker who
/// captures one session's proofs (plaintext mode) could guess offline.
pub const MIN_PSK_LEN: usize = 16;

/// Which end of the connection this endpoint is: the dialer proves itself first
/// (see the handshake section of the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This side opened the connection (the TLS client).
    Dialer,
    /// This side accepted it (the TLS server).
    Listener,
}

/// Settings of one link endpoint.
#[derive(Clone)]
pub struct LinkConfig {
    /// This side's name, sent in HELLO (at most 64 bytes).
    pub name: String,
    /// Pre-shared key; both sides must hold the same bytes (at least
    /// [`MIN_PSK_LEN`]).
    pub psk: Vec<u8>,
    /// If set, a peer announcing another name is refused.
    pub expected_peer: Option<String>,
    /// Slots in each ring (1..=65536).
    pub capacity: usize,
    /// Send a PING when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// Declare the link down when no complete frame was received for this long.
    pub dead_after: Duration,
    /// A frame that has started to arrive must be complete within this long, else
    /// the connection ends with a protocol error (a corrupted length field would
    /// otherwise stall the link while the bytes after it keep it looking alive).
    pub frame_timeout: Duration,
    /// Bytes one `poll_transmit` call appends at most (one DATA frame may overshoot).
    pub max_transmit: usize,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("name", &self.name)
            .field("psk", &"<hidden>")
            .field("expected_peer", &self.expected_peer)
            .field("capacity", &self.capacity)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("dead_after", &self.dead_after)
            .field("frame_timeout", &self.frame_timeout)
            .field("max_transmit", &self.max_transmit)
            .finish()
    }
}

impl LinkConfig {
    /// Defaults: 255 slots, heartbeat every 5 s, down after 15 s of silence, a frame
    /// complete within 10 s of its first byte, 64 KiB per transmit.
    pub fn new(name: &str, psk: &[u8]) -> Self {
        LinkConfig {
            name: name.to_owned(),
            psk: psk.to_vec(),
            expected_peer: None,
            capacity: DEFAULT_CAPACITY,
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            frame_timeout: Duration::from_secs(10),
            max_transmit: 64 * 1024,
        }
    }
}

/// A configuration the endpoint refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("link name is longer than {MAX_NAME} bytes")]
    NameTooLong,
    #[error("pre-shared key is {0} bytes; at least {MIN_PSK_LEN} are needed")]
    ShortKey(usize),
    #[error("capacity {0} is outside 1..={MAX_CAPACITY}")]
    Capacity(usize),
    #[error(
        "heartbeat interval must be non-zero and shorter than dead_after, frame_timeout non-zero"
    )]
    Timers,
    #[error("journal: {0}")]
    Restore(#[from] crate::ring::RestoreError),
}

/// Why a connection had to end. After one, the connection is unusable; the
/// endpoint and its rings carry on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    #[error("peer's proof is wrong (different pre-shared key, or the handshake was relayed onto another session)")]
    BadMac,
    #[error("peer sent our own nonce or epoch back (reflection)")]
    Reflected,
    #[error("peer calls itself {got:?}, expected {expected:?}")]
    PeerNameMismatch { expected: String, got: String },
    #[error("seq {seq} outside the window {low}..={high}")]
    SeqOutsideWindow { seq: u64, low: u64, high: u64 },
    #[error("{frame:?} frame not allowed while {state}")]
    Unexpected {
        frame: FrameType,
        state: &'static str,
    },
    #[error("ring refused a peer's update: {0}")]
    Ring(#[from] RingError),
    #[error("frame incomplete after {waited:?} ({have} bytes of it received)")]
    IncompleteFrame { waited: Duration, have: usize },
    #[error("no connection")]
    NotConnected,
}

/// Why the link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The runtime reported the connection lost.
    ConnectionLost,
    /// Nothing received within `dead_after` (half-open link or dead peer).
    Timeout,
    /// Authentication failed (see the preceding [`Event::AuthFailed`]).
    AuthFailed,
    /// The peer broke the protocol.
    Protocol(LinkError),
    /// The peer sent CLOSE.
    PeerClosed { reason: CloseReason, text: String },
    /// [`Endpoint::close`] was called.
    LocalClose,
}

/// What the application and runtime are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Handshake completed. `peer_new_epoch`: our receiving ring had not seen this
    /// peer epoch before (first contact, or the peer restarted).
    LinkUp {
        peer: String,
        epoch: u64,
        peer_new_epoch: bool,
    },
    /// The connection ended; close the socket (after flushing `poll_transmit`).
    LinkDown { reason: DownReason },
    /// The peer failed authentication; a `LinkDown` follows.
    AuthFailed { reason: LinkError },
    /// A new message is ready for [`Endpoint::next_received`] (local seq).
    Received { seq: u64 },
    /// A message we sent changed state. `outcome` is set for `Processed`.
    StatusChanged {
        seq: u64,
        state: SlotState,
        outcome: Option<Outcome>,
        client_ref: u64,
    },
}

/// Running totals, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// DATA frames sent for the first time.
    pub data_sent: u64,
    /// DATA frames sent again after a reconnection.
    pub data_resent: u64,
    /// New messages stored from the peer.
    pub data_received: u64,
    /// DATA frames ignored because the seq was already held.
    pub duplicates: u64,
    pub acks_sent: u64,
    pub pings_sent: u64,
    pub handshakes: u64,
    pub auth_failures: u64,
    pub link_downs: u64,
}

/// What a proven peer told in its STATE.
#[derive(Clone, Copy)]
struct PeerState {
    epoch: u64,
    tx_last_processed: u64,
    name_len: u8,
    name: [u8; MAX_NAME],
}

impl PeerState {
    fn from_frame(s: &frame::State<'_>) -> Self {
        let mut name = [0u8; MAX_NAME];
        let n = s.name.len().min(MAX_NAME);
        name[..n].copy_from_slice(&s.name.as_bytes()[..n]);
        PeerState {
            epoch: s.epoch,
            tx_last_processed: s.tx_last_processed,
            name_len: n as u8,
            name,
        }
    }
    fn name(&self) -> &str {
        std::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or("")
    }
}

/// The receive-side view we announced in our AUTH, applied once the peer is verified.
#[derive(Clone, Copy)]
struct RxPlan {
    offset: u64,
    new_epoch: bool,
    limit_wire: u64,
}

/// How far a handshake has come.
#[derive(Clone, Copy)]
enum Stage {
    /// Our HELLO is out; waiting for the peer's.
    Hello,
    /// Waiting for the peer's PROOF (the dialer has sent its own).
    Proof,
    /// The peer is proven; waiting for its STATE.
    State,
    /// Our SYNC is out; waiting for the peer's.
    Sync { peer: PeerState, plan: RxPlan },
}

#[derive(Clone, Copy)]
struct Handshake {
    side: Side,
    /// The TLS exporter; `None` in plaintext (then derived from the nonces).
    tls_binding: Option<[u8; 32]>,
    nonce: [u8; NONCE_LEN],
    peer_nonce: [u8; NONCE_LEN],
    /// Our sending cursor as our STATE announced it.
    announced_tx_last_processed: u64,
    stage: Stage,
}

#[derive(Clone, Copy)]
enum Conn {
    Idle,
    Handshake(Handshake),
    Up { peer: PeerState },
}

/// One side of a link (see the module docs).
pub struct Endpoint {
    config: LinkConfig,
    epoch: u64,
    tx: Ring,
    rx: RxRing,
    conn: Conn,
    events: VecDeque<Event>,
    /// Control frames (HELLO, AUTH, CLOSE) waiting for `poll_transmit`.
    ctrl: Vec<u8>,
    /// A partial frame carried over between `handle_input` calls.
    inbuf: Vec<u8>,
    /// When the partial frame in `inbuf` started (it must complete in `frame_timeout`).
    partial_since: Option<Instant>,
    // Sending direction.
    next_transmit: u64,
    peer_rx_limit: u64,
    // Receiving direction: local seq = wire seq + rx_offset (wrapping).
    rx_peer_epoch: Option<u64>,
    rx_offset: u64,
    /// Local seqs up to here belong to earlier peer incarnations: never announced.
    rx_epoch_floor: u64,
    confirm_sent_upto: u64,
    rx_limit_sent: u64,
    pending_processed: VecDeque<u64>,
    last_rx: Instant,
    last_tx: Instant,
    /// When the current connection started (the handshake must finish in time).
    connected_at: Instant,
    counters: Counters,
    /// Set when the link is journaled (see [`persist`]).
    persist: Option<Persist>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.config.name)
            .field("epoch", &self.epoch)
            .field("up", &self.is_up())
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish()
    }
}

fn random_bytes(out: &mut [u8]) {
    if getrandom::fill(out).is_ok() {
        return;
    }
    // No OS entropy: fall back to std's randomly keyed hasher (still per-process unique).
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn new_mac(psk: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; the error arm cannot be reached.
    <Hmac<Sha256> as Mac>::new_from_slice(psk)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(&[0]).expect("1-byte key"))
}

/// The binding of a plaintext connection: both nonces, so that a proof is good
/// for this connection only (a TLS connection binds the exporter instead).
fn plaintext_binding(dialer_nonce: &[u8], listener_nonce: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"smslink link v2 plaintext binding");
    h.update(dialer_nonce);
    h.update(listener_nonce);
    h.finalize().into()
}

/// The session binding a proof covers: the TLS exporter (unique to the session:
/// it derives from both sides' randoms and key shares), or in plaintext a hash of
/// both HELLO nonces.
fn binding(hs: &Handshake) -> [u8; 32] {
    let (dialer_nonce, listener_nonce) = match hs.side {
        Side::Dialer => (&hs.nonce, &hs.peer_nonce),
        Side::Listener => (&hs.peer_nonce, &hs.nonce),
    };
    hs.tls_binding
        .unwrap_or_else(|| plaintext_binding(dialer_nonce, listener_nonce))
}

fn proof_mac(psk: &[u8], prover: Side, hs: &Handshake) -> Hmac<Sha256> {
    let mut mac = new_mac(psk);
    mac.update(b"smslink link v2 proof");
    mac.update(match prover {
        Side::Dialer => b"dialer" as &[u8],
        Side::Listener => b"listener",
    });
    mac.update(&binding(hs));
    mac
}

impl Endpoint {
    /// A new endpoint with a fresh random epoch and empty rings, not connected.
    pub fn new(config: LinkConfig, now: Instant) -> Result<Self, ConfigError> {
        Self::check(&config)?;
        let mut e = [0u8; 8];
        let mut epoch = 0;
        while epoch == 0 {
            random_bytes(&mut e);
            epoch = u64::from_be_bytes(e);
        }
        let cap = config.capacity;
        Ok(Self::build(
            config,
            epoch,
            Ring::new(cap),
            RxRing::new(cap),
            now,
        ))
    }

    /// A new endpoint (as [`new`](Self::new)) whose changes are journaled as link
    /// number `link` (see [`persist`]): it reports records through
    /// [`take_records`](Self::take_records) and keeps every promise that depends on
    /// them until [`records_durable`](Self::records_durable).
    pub fn with_journal(config: LinkConfig, link: u32, now: Instant) -> Result<Self, ConfigError> {
        let mut e = Self::new(config, now)?;
        e.persist = Some(Persist::new(link));
        Ok(e)
    }

    /// The endpoint a journal remembers (see [`persist`]): same epoch, same peer
    /// view, unprocessed messages held again. Journaled as link number `link`.
    pub fn restore(
        config: LinkConfig,
        link: u32,
        state: LinkState,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        Self::check(&config)?;
        let cap = config.capacity;
        // The ring takes back what fits; the rest stays a backlog on disk.
        let ring_high = state.tx.ring_high();
        let backlog_high = state.tx.high;
        // Client references of the backlog, in seq order (a ring smaller than in
        // the run that wrote the journal leaves some held messages beyond it).
        let mut beyond: Vec<(u64, u64)> = state
            .tx
            .backlog
            .range(ring_high + 1..)
            .map(|(&s, &r)| (s, r))
            .collect();
        beyond.extend(
            state
                .tx
                .slots
                .range(ring_high + 1..)
                .filter_map(|(&s, h)| match h {
                    crate::ring::Held::Message(m) => Some((s, m.client_ref)),
                    crate::ring::Held::Outcome(_) => None,
                }),
        );
        beyond.sort_unstable();
        let backlog_refs: VecDeque<u64> = beyond.into_iter().map(|(_, r)| r).collect();
        let tx = Ring::restore(
            cap,
            state.tx.base,
            ring_high,
            state.tx.slots.into_iter().filter(|(s, _)| *s <= ring_high),
        )?;
        let rx = RxRing::restore(cap, state.rx.base, state.rx.high, state.rx.slots)?;
        let id = state.identity;
        let mark = PersistMark {
            tx_accepted: backlog_high.max(tx.cursors().last_retrieved),
            rx_stored: rx.cursors().last_stored,
            rx_processed: rx.cursors().last_processed,
            tx_processed: tx.cursors().last_processed,
            rx_outcomes: 0,
        };
        let cursors = (tx.cursors(), rx.cursors());
        let mut e = Self::build(config, id.epoch.max(1), tx, rx, now);
        e.rx_peer_epoch = id.peer_epoch;
        e.rx_offset = id.rx_offset;
        e.rx_epoch_floor = id.rx_epoch_floor;
        e.confirm_sent_upto = e.rx.cursors().last_stored;
        e.next_transmit = e.tx.cursors().last_processed + 1;
        let mut p = Persist::restored(link, mark, cursors);
        if backlog_high > ring_high {
            p.backlog_high = backlog_high;
            p.backlog_refs = backlog_refs;
        }
        e.persist = Some(p);
        Ok(e)
    }

    fn check(config: &LinkConfig) -> Result<(), ConfigError> {
        if config.name.len() > MAX_NAME {
            return Err(ConfigError::NameTooLong);
        }
        if config.psk.len() < MIN_PSK_LEN {
            return Err(ConfigError::ShortKey(config.psk.len()));
        }
        if !(1..=MAX_CAPACITY).contains(&config.capacity) {
            return Err(ConfigError::Capacity(config.capacity));
        }
        if config.heartbeat_interval.is_zero()
            || config.heartbeat_interval >= config.dead_after
            || config.frame_timeout.is_zero()
        {
            return Err(ConfigError::Timers);
        }
        Ok(())
    }

    fn build(config: LinkConfig, epoch: u64, tx: Ring, rx: RxRing, now: Instant) -> Self {
        Endpoint {
            tx,
            rx,
            conn: Conn::Idle,
            // Buffers start empty and grow with traffic (see `shrink_buffers`).
            events: VecDeque::new(),
            ctrl: Vec::new(),
            inbuf: Vec::new(),
            partial_since: None,
            next_transmit: 1,
            peer_rx_limit: 0,
            rx_peer_epoch: None,
            rx_offset: 0,
            rx_epoch_floor: 0,
            confirm_sent_upto: 0,
            rx_limit_sent: 0,
            pending_processed: VecDeque::new(),
            last_rx: now,
            last_tx: now,
            connected_at: now,
            counters: Counters::default(),
            epoch,
            config,
            persist: None,
        }
    }

    // ---- getters ----

    /// This endpoint's session epoch (random, never 0).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Cursors of the sending ring (our messages to the peer).
    pub fn cursors(&self) -> Cursors {
        self.tx.cursors()
    }

    /// Same as [`cursors`](Self::cursors).
    pub fn tx_cursors(&self) -> Cursors {
        self.tx.cursors()
    }

    /// Cursors of the receiving ring (the peer's messages, in local seqs).
    pub fn rx_cursors(&self) -> RxCursors {
        self.rx.cursors()
    }

    /// The sending ring (read only): slot states, outcomes, messages.
    pub fn tx_ring(&self) -> &Ring {
        &self.tx
    }

    /// The receiving ring (read only).
    pub fn rx_ring(&self) -> &RxRing {
        &self.rx
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Handshake complete and connection alive.
    pub fn is_up(&self) -> bool {
        matches!(self.conn, Conn::Up { .. })
    }

    /// A connection exists (handshaking or up).
    pub fn is_connected(&self) -> bool {
        !matches!(self.conn, Conn::Idle)
    }

    /// The peer's name, once up.
    pub fn peer_name(&self) -> Option<&str> {
        match &self.conn {
            Conn::Up { peer } => Some(peer.name()),
            _ => None,
        }
    }

    // ---- persistence (see [`persist`]) ----

    /// The link's changes are journaled.
    pub fn is_journaled(&self) -> bool {
        self.persist.is_some()
    }

    /// Records were made (or the identity changed) since the last
    /// [`take_records`](Self::take_records): the driver has to commit again for
    /// what waits on them.
    pub fn has_records(&self) -> bool {
        self.persist.as_ref().is_some_and(|p| p.has_records())
    }

    /// Move the records since the last call into `out`; `None` when the link is not
    /// journaled. Hand the mark to [`records_durable`](Self::records_durable) once
    /// every record drained so far is durable.
    pub fn take_records(&mut self, out: &mut Vec<Record>) -> Option<PersistMark> {
        let cursors = (self.tx.cursors(), self.rx.cursors());
        let identity = self
            .persist
            .as_ref()?
            .identity_dirty()
            .then(|| self.identity());
        let p = self.persist.as_mut()?;
        Some(p.drain(identity, cursors, out))
    }

    /// Journal the state of report group `group` of a buffer server on this link
    /// (`None`: the group is finished), in order with the link's own records and
    /// under the same durability marks. Nothing without a journal.
    pub fn journal_report_group(
        &mut self,
        group: u64,
        state: Option<crate::journal::record::ReportGroup>,
    ) {
        if let Some(p) = self.persist.as_mut() {
            p.report_group(group, state);
        }
    }

    /// What the journal's `Identity` record says about this link now.
    pub fn identity(&self) -> LinkIdentity {
        LinkIdentity {
            name: self.config.name.clone(),
            epoch: self.epoch,
            peer_epoch: self.rx_peer_epoch,
            rx_offset: self.rx_offset,
            rx_epoch_floor: self.rx_epoch_floor,
        }
    }

    /// The records behind `mark` are durable: what waited for them may go out.
    /// Returns the tx seqs that became durable with it (empty if none).
    pub fn records_durable(&mut self, mark: PersistMark) -> std::ops::Range<u64> {
        // Not up: the handshake announces them from the ring.
        let up = self.is_up();
        let Some(p) = self.persist.as_mut() else {
            return 0..0;
        };
        let before = p.durable.tx_accepted;
        let floor = self.rx_epoch_floor;
        let pending = &mut self.pending_processed;
        p.make_durable(mark, &mut |seq| {
            if up && seq > floor {
                pending.push_back(seq);
            }
        });
        before + 1..p.durable.tx_accepted + 1
    }

    /// Highest tx seq whose `Accepted` record is durable (every accepted seq
    /// without a journal).
    pub fn tx_durable(&self) -> u64 {
        match &self.persist {
            Some(p) => p.durable.tx_accepted,
            None => self.tx.cursors().last_retrieved,
        }
    }

    /// Highest rx seq that was rebuilt from the journal at start (0: none): a
    /// message up to it may have been handed on before the restart.
    pub fn rx_restored(&self) -> u64 {
        self.persist.as_ref().map_or(0, |p| p.rx_restored)
    }

    /// `send` refuses because the journal has no room (see
    /// [`set_journal_full`](Self::set_journal_full)).
    pub fn is_journal_full(&self) -> bool {
        self.persist.as_ref().is_some_and(|p| p.full)
    }

    /// Messages accepted beyond the ring, waiting on disk for a slot.
    pub fn backlog(&self) -> u64 {
        let ring_high = self.tx.cursors().last_retrieved;
        self.persist
            .as_ref()
            .map_or(0, |p| p.backlog_high.saturating_sub(ring_high))
    }

    /// The seq of the backlog message the ring has room for now, if any: read it
    /// back from the journal and hand it to [`load_backlog`](Self::load_backlog).
    pub fn backlog_next(&self) -> Option<u64> {
        (self.backlog() > 0 && !self.tx.is_full()).then(|| self.tx.cursors().last_retrieved + 1)
    }

    /// The backlog message `seq`, read back from the journal, takes its slot.
    /// Returns false (nothing changes) unless `seq` is [`backlog_next`](Self::backlog_next).
    pub fn load_backlog(&mut self, seq: u64, message: &Message) -> bool {
        if self.backlog_next() != Some(seq) || self.tx.push(message).is_err() {
            return false;
        }
        if let Some(p) = self.persist.as_mut() {
            p.backlog_refs.pop_front();
        }
        true
    }

    /// The client reference of tx `seq`, in the ring or in the backlog.
    pub fn tx_client_ref(&self, seq: u64) -> Option<u64> {
        if let Some(slot) = self.tx.slot(seq) {
            return Some(slot.message.client_ref);
        }
        let ring_high = self.tx.cursors().last_retrieved;
        let p = self.persist.as_ref()?;
        let i = seq.checked_sub(ring_high + 1)?;
        p.backlog_refs.get(usize::try_from(i).ok()?).copied()
    }

    /// The journal has no room for new messages: `send` refuses until it has.
    pub fn set_journal_full(&mut self, full: bool) {
        if let Some(p) = self.persist.as_mut() {
            p.full = full;
        }
    }

    /// Highest local rx seq that may be confirmed to the peer (durably stored).
    fn rx_confirmable(&self) -> u64 {
        let stored = self.rx.cursors().last_stored;
        match &self.persist {
            Some(p) => stored.min(p.durable.rx_stored),
            None => stored,
        }
    }

    /// Highest local rx seq the peer may send (its slot's outcome is durable).
    fn rx_limit_local(&self) -> u64 {
        match &self.persist {
            Some(p) => p.durable.rx_processed + self.rx.capacity() as u64,
            None => self.rx.limit(),
        }
    }

    // ---- application commands ----

    /// Accept a message from the local source (Retrieved). Works connected or not.
    /// Returns its seq, echoed in every [`Event::StatusChanged`].
    ///
    /// A journaled endpoint also takes messages while its ring is full (overflow
    /// to disk): they get the next seqs at once, live only in the journal, and
    /// enter the ring in order as it frees slots (the driver reads them back,
    /// see [`backlog_next`](Self::backlog_next)). Only a full journal refuses.
    pub fn send(&mut self, message: &Message) -> Result<u64, Full> {
        let ring_high = self.tx.cursors().last_retrieved;
        let ring_full = self.tx.is_full();
        if let Some(p) = self.persist.as_mut() {
            if p.full {
                return Err(Full {
                    capacity: self.tx.capacity(),
                });
            }
            if ring_full || p.backlog_high > ring_high {
                let seq = p.backlog_high.max(ring_high) + 1;
                p.backlog_high = seq;
                p.backlog_refs.push_back(message.client_ref);
                p.accepted(Direction::Tx, seq, message);
                return Ok(seq);
            }
        }
        let seq = self.tx.push(message)?;
        if let Some(p) = self.persist.as_mut() {
            p.accepted(Direction::Tx, seq, message);
        }
        Ok(seq)
    }

    /// The next message from the peer, in order, exactly once (local seq). Call
    /// [`mark_processed`](Self::mark_processed) once it has been handed on.
    ///
    /// A journaled endpoint hands out only messages whose record is durable: the
    /// application never acts on one a crash could take back.
    pub fn next_received(&mut self) -> Option<(u64, &Message)> {
        let limit = self.rx_confirmable();
        self.rx.deliver_next_upto(limit)
    }

    /// Report what became of a delivered message; the outcome goes back to the
    /// peer, which then frees its slot. Any order is fine.
    pub fn mark_processed(&mut self, seq: u64, outcome: Outcome) -> Result<(), RingError> {
        self.rx.process(seq, outcome)?;
        match self.persist.as_mut() {
            // Announced once the record is durable (`records_durable`).
            Some(p) => p.processed(Direction::Rx, seq, outcome),
            None if seq > self.rx_epoch_floor => self.pending_processed.push_back(seq),
            None => {}
        }
        Ok(())
    }

    /// Close the connection in an orderly way (CLOSE is queued for `poll_transmit`).
    pub fn close(&mut self, _now: Instant) {
        if self.is_connected() {
            frame::encode_close(&mut self.ctrl, CloseReason::Normal, "closing");
            self.counters.frames_out += 1;
            self.link_down(DownReason::LocalClose);
        }
    }

    // ---- inputs ----

    /// A new plaintext connection (dialled or accepted) is ready: start the
    /// handshake (HELLO is queued for `poll_transmit`); the proofs are bound to both
    /// nonces. Any partial frame of an earlier connection is discarded. If a
    /// connection still existed it is dropped first and its `LinkDown` queued ahead
    /// of everything else; a runtime that closes sockets on `LinkDown` should call
    /// [`connection_lost`](Self::connection_lost) and drain events before calling
    /// this for the replacement socket.
    pub fn connected(&mut self, now: Instant, side: Side) {
        self.start_handshake(now, side, None);
    }

    /// A new connection inside a TLS session is ready: as
    /// [`connected`](Self::connected), with the proofs bound to `binding`, the
    /// session's keying-material exporter (the same 32 bytes at both ends).
    pub fn connected_with_binding(&mut self, now: Instant, side: Side, binding: &[u8; 32]) {
        self.start_handshake(now, side, Some(*binding));
    }

    fn start_handshake(&mut self, now: Instant, side: Side, tls_binding: Option<[u8; 32]>) {
        self.connection_lost(now);
        self.ctrl.clear();
        self.inbuf.clear();
        self.partial_since = None;
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        frame::encode_hello(
            &mut self.ctrl,
            &Hello {
                version: VERSION,
                nonce,
            },
        );
        self.counters.frames_out += 1;
        let hs = Handshake {
            side,
            tls_binding,
            nonce,
            peer_nonce: [0; NONCE_LEN],
            announced_tx_last_processed: 0,
            stage: Stage::Hello,
        };
        if side == Side::Dialer && tls_binding.is_some() {
            // The exporter is fresh already: no need to wait for the peer's nonce.
            self.send_proof(&hs);
        }
        self.conn = Conn::Handshake(hs);
        self.last_rx = now;
        self.last_tx = now;
        self.connected_at = now;
    }

    /// The runtime lost the connection (EOF, reset, write error). Emits `LinkDown`
    /// if a connection existed; otherwise does nothing.
    pub fn connection_lost(&mut self, _now: Instant) {
        if self.is_connected() {
            self.link_down(DownReason::ConnectionLost);
        }
    }

    /// Bytes from the connection, in any chunking. On `Err` the connection is over
    /// (a `LinkDown` was emitted and maybe a CLOSE queued).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), LinkError> {
        if !self.is_connected() {
            return Err(LinkError::NotConnected);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.counters.bytes_in += data.len() as u64;
        let frames_before = self.counters.frames_in;
        let res = self.take_input(data);
        // Only complete frames are signs of life: bytes of a frame that never
        // completes must not keep the link up.
        let completed = self.counters.frames_in != frames_before;
        if completed {
            self.last_rx = now;
        }
        if self.inbuf.is_empty() {
            self.partial_since = None;
        } else if completed || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
        res
    }

    /// Decode and handle every complete frame of `data`, keeping a partial one.
    fn take_input(&mut self, mut data: &[u8]) -> Result<(), LinkError> {
        // Finish a frame carried over from the previous call first.
        if !self.inbuf.is_empty() {
            let mut need = frame::HEADER_LEN;
            loop {
                let take = need.saturating_sub(self.inbuf.len()).min(data.len());
                self.inbuf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.inbuf.len() < need {
                    return Ok(());
                }
                match frame::body_len(&self.inbuf) {
                    Ok(Some(len)) if need == frame::HEADER_LEN + len => break,
                    Ok(Some(len)) => need = frame::HEADER_LEN + len,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(self.fail(e.into())),
                }
            }
            let carried = std::mem::take(&mut self.inbuf);
            let res = self.process_frames(&carried);
            self.inbuf = carried;
            self.inbuf.clear();
            res?;
        }
        let used = self.process_frames(data)?;
        if self.is_connected() {
            self.inbuf.extend_from_slice(&data[used..]);
        }
        Ok(())
    }

    /// Process every complete frame at the front of `buf`; returns bytes used.
    fn process_frames(&mut self, buf: &[u8]) -> Result<usize, LinkError> {
        let mut at = 0;
        while self.is_connected() {
            match frame::decode(&buf[at..]) {
                Ok(Some((f, used))) => {
                    at += used;
                    self.counters.frames_in += 1;
                    if let Err(e) = self.handle_frame(f) {
                        return Err(self.fail(e));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            }
        }
        Ok(at)
    }

    /// Timers: declares the link dead after `dead_after` without a complete frame,
    /// or when the handshake has not finished `dead_after` after `connected`; a
    /// frame still incomplete `frame_timeout` after it started is a protocol error.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(since) = self.partial_since.filter(|_| self.is_connected()) {
            if now >= since + self.config.frame_timeout {
                let err = LinkError::IncompleteFrame {
                    waited: now.saturating_duration_since(since),
                    have: self.inbuf.len(),
                };
                self.fail(err);
                return;
            }
        }
        if let Some(deadline) = self.dead_at() {
            if now >= deadline {
                self.link_down(DownReason::Timeout);
            }
        }
    }

    // ---- outputs ----

    /// Append bytes to send to `buf` (never clears it); returns how many were added.
    /// Control frames first, then an ACK if anything is to be confirmed or
    /// announced, then DATA up to the flow-control limit and `max_transmit`, then a
    /// PING if nothing was sent for `heartbeat_interval`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> usize {
        let start = buf.len();
        if !self.ctrl.is_empty() {
            buf.extend_from_slice(&self.ctrl);
            self.ctrl.clear();
        }
        if self.is_up() {
            self.write_ack(buf);
            self.write_data(buf, start);
            if buf.len() == start && now >= self.last_tx + self.config.heartbeat_interval {
                frame::encode_ping(buf);
                self.counters.pings_sent += 1;
                self.counters.frames_out += 1;
            }
        }
        let n = buf.len() - start;
        if n > 0 {
            self.last_tx = now;
            self.counters.bytes_out += n as u64;
        }
        n
    }

    /// When `handle_timeout` should next be called (then `poll_transmit`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.conn {
            Conn::Idle => None,
            Conn::Handshake { .. } => self.dead_at(),
            Conn::Up { .. } => self
                .dead_at()
                .map(|d| d.min(self.last_tx + self.config.heartbeat_interval)),
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Give back the capacity of buffers that are empty now (events, outcomes to
    /// announce, control frames, a partial frame's carry-over): what a burst of
    /// traffic grew them to. The runtime calls this when the link has nothing in
    /// flight, so that an idle link costs little; the buffers grow again on demand.
    pub fn shrink_buffers(&mut self) {
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        if self.pending_processed.is_empty() && self.pending_processed.capacity() > 0 {
            self.pending_processed = VecDeque::new();
        }
        if self.ctrl.is_empty() && self.ctrl.capacity() > 0 {
            self.ctrl = Vec::new();
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > 0 {
            self.inbuf = Vec::new();
        }
    }

    // ---- internals ----

    /// When the connection is declared dead: `dead_after` without a complete frame,
    /// a handshake (even one trickling bytes) that has not finished within
    /// `dead_after`, or a frame incomplete for `frame_timeout`.
    fn dead_at(&self) -> Option<Instant> {
        let silence = self.last_rx + self.config.dead_after;
        let partial = self.partial_since.map(|s| s + self.config.frame_timeout);
        let dead = match self.conn {
            Conn::Idle => return None,
            Conn::Handshake { .. } => silence.min(self.connected_at + self.config.dead_after),
            Conn::Up { .. } => silence,
        };
        Some(partial.map_or(dead, |p| p.min(dead)))
    }

    fn fail(&mut self, err: LinkError) -> LinkError {
        if !self.is_connected() {
            return err;
        }
        let reason = match &err {
            LinkError::BadMac | LinkError::Reflected | LinkError::PeerNameMismatch { .. } => {
                self.counters.auth_failures += 1;
                self.events.push_back(Event::AuthFailed {
                    reason: err.clone(),
                });
                // The detail is for our log only: a refused peer learns nothing.
                frame::encode_close(&mut self.ctrl, CloseReason::AuthFailed, "refused");
                self.counters.frames_out += 1;
                DownReason::AuthFailed
            }
            LinkError::Frame(FrameError::BadVersion { .. }) => {
                frame::encode_close(&mut self.ctrl, CloseReason::BadVersion, &err.to_string());
                self.counters.frames_out += 1;
                DownReason::Protocol(err.clone())
            }
            _ => {
                // Before the peer is proven, not even which frame we waited for.
                let text = if self.is_up() {
                    err.to_string()
                } else {
                    "handshake failed".to_owned()
                };
                frame::encode_close(&mut self.ctrl, CloseReason::ProtocolError, &text);
                self.counters.frames_out += 1;
                DownReason::Protocol(err.clone())
            }
        };
        self.link_down(reason);
        err
    }

    fn link_down(&mut self, reason: DownReason) {
        self.conn = Conn::Idle;
        self.inbuf.clear();
        self.partial_since = None;
        self.counters.link_downs += 1;
        self.events.push_back(Event::LinkDown { reason });
    }

    fn rx_limit_wire(&self, offset: u64) -> u64 {
        self.rx_limit_local().wrapping_sub(offset)
    }

    fn handle_frame(&mut self, f: Frame<'_>) -> Result<(), LinkError> {
        match (f, self.conn) {
            (Frame::Ping, _) => Ok(()),
            (Frame::Close(c), _) => {
                self.link_down(DownReason::PeerClosed {
                    reason: c.reason,
                    text: c.text.to_owned(),
                });
                Ok(())
            }
            (Frame::Hello(h), Conn::Handshake(hs)) if matches!(hs.stage, Stage::Hello) => {
                self.on_hello(hs, &h)
            }
            (Frame::Proof(p), Conn::Handshake(hs)) if matches!(hs.stage, Stage::Proof) => {
                self.on_proof(hs, &p)
            }
            (Frame::State(st), Conn::Handshake(hs)) if matches!(hs.stage, Stage::State) => {
                self.on_state(hs, &st)
            }
            (Frame::Sync(sy), Conn::Handshake(hs)) => match hs.stage {
                Stage::Sync { peer, plan } => self.on_sync(hs, peer, plan, &sy),
                _ => Err(self.unexpected(FrameType::Sync)),
            },
            (Frame::Data(d), Conn::Up { .. }) => self.on_data(&d),
            (Frame::Ack(a), Conn::Up { .. }) => self.on_ack(&a),
            (f, _) => Err(self.unexpected(f.frame_type())),
        }
    }

    fn unexpected(&self, frame: FrameType) -> LinkError {
        LinkError::Unexpected {
            frame,
            state: match self.conn {
                Conn::Idle => "idle",
                Conn::Handshake(hs) => match hs.stage {
                    Stage::Hello => "waiting for HELLO",
                    Stage::Proof => "waiting for PROOF",
                    Stage::State => "waiting for STATE",
                    Stage::Sync { .. } => "waiting for SYNC",
                },
                Conn::Up { .. } => "up",
            },
        }
    }

    fn on_hello(&mut self, mut hs: Handshake, h: &Hello) -> Result<(), LinkError> {
        if h.nonce == hs.nonce {
            return Err(LinkError::Reflected);
        }
        hs.peer_nonce = h.nonce;
        hs.stage = Stage::Proof;
        if hs.side == Side::Dialer && hs.tls_binding.is_none() {
            self.send_proof(&hs);
        }
        self.conn = Conn::Handshake(hs);
        Ok(())
    }

    fn send_proof(&mut self, hs: &Handshake) {
        let mut p = Proof { mac: [0; MAC_LEN] };
        p.mac.copy_from_slice(
            &proof_mac(&self.config.psk, hs.side, hs)
                .finalize()
                .into_bytes(),
        );
        frame::encode_proof(&mut self.ctrl, &p);
        self.counters.frames_out += 1;
    }

    fn send_state(&mut self, hs: &mut Handshake) {
        hs.announced_tx_last_processed = self.tx.cursors().last_processed;
        frame::encode_state(
            &mut self.ctrl,
            &frame::State {
                epoch: self.epoch,
                capacity: self.rx.capacity() as u32,
                tx_last_processed: hs.announced_tx_last_processed,
                name: &self.config.name,
            },
        );
        self.counters.frames_out += 1;
    }

    fn on_proof(&mut self, mut hs: Handshake, p: &Proof) -> Result<(), LinkError> {
        let peer_side = match hs.side {
            Side::Dialer => Side::Listener,
            Side::Listener => Side::Dialer,
        };
        proof_mac(&self.config.psk, peer_side, &hs)
            .verify_slice(&p.mac)
            .map_err(|_| LinkError::BadMac)?;
        // The peer is proven: only now does anything about the link go out.
        if hs.side == Side::Listener {
            self.send_proof(&hs);
            self.send_state(&mut hs);
        }
        hs.stage = Stage::State;
        self.conn = Conn::Handshake(hs);
        Ok(())
    }

    fn on_state(&mut self, mut hs: Handshake, st: &frame::State<'_>) -> Result<(), LinkError> {
        if st.epoch == self.epoch {
            return Err(LinkError::Reflected);
        }
        if let Some(expected) = &self.config.expected_peer {
            if expected != st.name {
                return Err(LinkError::PeerNameMismatch {
                    expected: expected.clone(),
                    got: st.name.to_owned(),
                });
            }
        }
        let peer = PeerState::from_frame(st);
        let same_epoch = self.rx_peer_epoch == Some(st.epoch);
        let offset = if same_epoch {
            self.rx_offset
        } else {
            self.rx
                .cursors()
                .last_stored
                .wrapping_sub(st.tx_last_processed)
        };
        let last_stored_wire = self.rx.cursors().last_stored.wrapping_sub(offset);
        // What we announce holding: a journaled endpoint only what is durable.
        let announced_wire = if same_epoch {
            self.rx_confirmable().wrapping_sub(offset)
        } else {
            last_stored_wire
        };
        if st.tx_last_processed > last_stored_wire {
            // Same epoch, but the peer claims outcomes for seqs we never stored.
            return Err(LinkError::SeqOutsideWindow {
                seq: st.tx_last_processed,
                low: 0,
                high: last_stored_wire,
            });
        }
        // Flow-control limit: the peer may reuse one of our slots only once it knows
        // that slot's outcome. It surely knows those up to its own Last Processed;
        // the others are announced again after the handshake, and the limit grows
        // in the ACK that carries them.
        let floor = if same_epoch {
            self.rx_epoch_floor
        } else {
            self.rx.cursors().last_stored
        };
        let known_local = st.tx_last_processed.wrapping_add(offset).max(floor);
        let safe_limit = self
            .rx_limit_local()
            .min(known_local + self.rx.capacity() as u64);
        let plan = RxPlan {
            offset,
            new_epoch: !same_epoch,
            limit_wire: safe_limit.wrapping_sub(offset),
        };
        if hs.side == Side::Dialer {
            self.send_state(&mut hs);
        }
        frame::encode_sync(
            &mut self.ctrl,
            &frame::Sync {
                known_sender_epoch: self.rx_peer_epoch.unwrap_or(0),
                rx_last_stored: announced_wire,
                rx_limit: plan.limit_wire,
            },
        );
        self.counters.frames_out += 1;
        hs.stage = Stage::Sync { peer, plan };
        self.conn = Conn::Handshake(hs);
        Ok(())
    }

    fn on_sync(
        &mut self,
        hs: Handshake,
        peer: PeerState,
        plan: RxPlan,
        a: &frame::Sync,
    ) -> Result<(), LinkError> {
        // The sending side: what the peer holds of ours.
        let c = self.tx.cursors();
        let peer_knows_us = a.known_sender_epoch == self.epoch;
        // A peer that does not know our epoch holds nothing of ours beyond what our
        // STATE said was processed.
        let announced = hs.announced_tx_last_processed;
        let (low, high) = if peer_knows_us {
            (c.last_processed, c.last_sent)
        } else {
            (announced, announced)
        };
        if a.rx_last_stored < low || a.rx_last_stored > high {
            return Err(LinkError::SeqOutsideWindow {
                seq: a.rx_last_stored,
                low,
                high,
            });
        }
        if a.rx_limit < a.rx_last_stored {
            return Err(LinkError::SeqOutsideWindow {
                seq: a.rx_limit,
                low: a.rx_last_stored,
                high: u64::MAX,
            });
        }
        // A new incarnation of the peer may know our epoch already (it committed
        // a handshake that was cut before we did), yet it holds nothing the old
        // one confirmed or processed above Last Processed.
        if !peer_knows_us || plan.new_epoch {
            let events = &mut self.events;
            self.tx.unconfirm_all(|s| {
                events.push_back(Event::StatusChanged {
                    seq: s.seq,
                    state: SlotState::Sent,
                    outcome: None,
                    client_ref: s.message.client_ref,
                })
            });
        }
        for seq in self.tx.cursors().last_confirmed + 1..=a.rx_last_stored {
            self.confirm_one(seq)?;
        }
        self.next_transmit = a.rx_last_stored + 1;
        self.peer_rx_limit = a.rx_limit;

        // The receiving side: commit what we announced.
        if plan.new_epoch {
            self.rx_epoch_floor = self.rx.cursors().last_stored;
            self.rx_peer_epoch = Some(peer.epoch);
        }
        if plan.new_epoch || self.rx_offset != plan.offset {
            if let Some(p) = self.persist.as_mut() {
                p.identity_changed();
            }
        }
        self.rx_offset = plan.offset;
        let rc = self.rx.cursors();
        // As announced in our AUTH (see `on_hello`).
        self.confirm_sent_upto = if plan.new_epoch {
            rc.last_stored
        } else {
            self.rx_confirmable()
        };
        self.rx_limit_sent = plan.limit_wire;
        // Outcomes the peer may not have: everything Processed above its cursor
        // (a ring restored from a journal may hold some above Last Delivered), except
        // outcomes not yet durable: `records_durable` announces those.
        self.pending_processed.clear();
        let from = peer
            .tx_last_processed
            .wrapping_add(plan.offset)
            .max(self.rx_epoch_floor);
        let unsynced = self.persist.as_ref().map(|p| &p.unsynced_outcomes);
        for seq in from + 1..=rc.last_stored {
            if self.rx.processed_outcome(seq).is_some() {
                let durable = unsynced.is_none_or(|u| !u.iter().any(|&(_, s)| s == seq));
                if durable {
                    self.pending_processed.push_back(seq);
                }
            }
        }
        self.counters.handshakes += 1;
        self.events.push_back(Event::LinkUp {
            peer: peer.name().to_owned(),
            epoch: peer.epoch,
            peer_new_epoch: plan.new_epoch,
        });
        self.conn = Conn::Up { peer };
        Ok(())
    }

    fn confirm_one(&mut self, seq: u64) -> Result<(), LinkError> {
        if self.tx.confirm(seq)? {
            let s = self.tx.slot(seq);
            self.events.push_back(Event::StatusChanged {
                seq,
                state: SlotState::Confirmed,
                outcome: None,
                client_ref: s.map_or(0, |s| s.message.client_ref),
            });
        }
        Ok(())
    }

    fn on_data(&mut self, d: &frame::Data<'_>) -> Result<(), LinkError> {
        let last_wire = self.rx.cursors().last_stored.wrapping_sub(self.rx_offset);
        if d.seq <= last_wire {
            self.counters.duplicates += 1;
            return Ok(());
        }
        let limit = self.rx_limit_wire(self.rx_offset);
        let expected = last_wire.wrapping_add(1);
        if d.seq != expected || d.seq > limit {
            return Err(LinkError::SeqOutsideWindow {
                seq: d.seq,
                low: expected,
                high: expected.min(limit),
            });
        }
        let local = d.seq.wrapping_add(self.rx_offset);
        let envelope = crate::message::Envelope {
            from: d.from,
            to: d.to,
            coding: d.coding,
            client_ref: d.client_ref,
            kind: d.kind,
            part: d.part,
        };
        match self.rx.store_envelope(local, &envelope, d.payload)? {
            Stored::New => {
                if let (Some(p), Some(slot)) = (self.persist.as_mut(), self.rx.slot(local)) {
                    p.accepted(Direction::Rx, local, &slot.message);
                }
                self.counters.data_received += 1;
                self.events.push_back(Event::Received { seq: local });
            }
            Stored::Duplicate => self.counters.duplicates += 1,
        }
        Ok(())
    }

    fn on_ack(&mut self, a: &frame::Ack<'_>) -> Result<(), LinkError> {
        if a.rx_limit > self.peer_rx_limit {
            self.peer_rx_limit = a.rx_limit;
        }
        for run in a.confirms() {
            let (lo, hi) = self.clip_run(run)?;
            for seq in lo..=hi {
                self.confirm_one(seq)?;
            }
        }
        for (run, outcome) in a.processed() {
            let (lo, hi) = self.clip_run(run)?;
            for seq in lo..=hi {
                // Read first: a Processed slot is given back once the cursor passes it.
                let client_ref = self.tx.slot(seq).map_or(0, |s| s.message.client_ref);
                if self.tx.process(seq, outcome)? {
                    if let Some(p) = self.persist.as_mut() {
                        p.processed(Direction::Tx, seq, outcome);
                    }
                    self.events.push_back(Event::StatusChanged {
                        seq,
                        state: SlotState::Processed,
                        outcome: Some(outcome),
                        client_ref,
                    });
                }
            }
        }
        Ok(())
    }

    /// The part of a run that still matters: above Last Processed; it must not reach
    /// beyond Last Sent. An empty result is `(1, 0)`.
    fn clip_run(&self, run: frame::SeqRun) -> Result<(u64, u64), LinkError> {
        let c = self.tx.cursors();
        if run.count == 0 {
            return Ok((1, 0));
        }
        let hi = run.start + (run.count as u64 - 1);
        if hi > c.last_sent {
            return Err(LinkError::SeqOutsideWindow {
                seq: hi,
                low: c.last_processed + 1,
                high: c.last_sent,
            });
        }
        Ok((run.start.max(c.last_processed + 1), hi))
    }

    fn write_ack(&mut self, buf: &mut Vec<u8>) {
        let last_stored = self.rx_confirmable();
        let limit_now = self.rx_limit_wire(self.rx_offset);
        let confirm = last_stored > self.confirm_sent_upto;
        if !confirm && self.pending_processed.is_empty() && limit_now == self.rx_limit_sent {
            return;
        }
        let off = self.rx_offset;
        let mut w = AckWriter::new(buf, self.rx_limit_sent);
        if confirm {
            let first = self.confirm_sent_upto + 1;
            let count = (last_stored - self.confirm_sent_upto).min(u32::MAX as u64) as u32;
            w.push_confirm(first.wrapping_sub(off), count);
            self.confirm_sent_upto = first + count as u64 - 1;
        }
        while let Some(&seq) = self.pending_processed.front() {
            let outcome = match self.rx.processed_outcome(seq) {
                Some(o) => o.unwrap_or(Outcome::Accepted),
                None => {
                    // Slot reused: the peer already learned this outcome.
                    self.pending_processed.pop_front();
                    continue;
                }
            };
            if !w.push_processed(seq.wrapping_sub(off), outcome) {
                break;
            }
            self.pending_processed.pop_front();
        }
        if self.pending_processed.is_empty() {
            // Raise the limit only in a frame that announced every outcome, so the
            // peer reuses a slot only after it knows that slot's outcome.
            w.set_rx_limit(limit_now);
            self.rx_limit_sent = limit_now;
        }
        w.finish();
        self.counters.acks_sent += 1;
        self.counters.frames_out += 1;
    }

    fn write_data(&mut self, buf: &mut Vec<u8>, start: usize) {
        let end = self.tx_durable().min(self.peer_rx_limit);
        while self.next_transmit <= end && buf.len() - start < self.config.max_transmit {
            let seq = self.next_transmit;
            let processed = self.tx.cursors().last_processed;
            if seq <= processed {
                // The peer processed these since the handshake, so it stores them:
                // nothing to send again (and their slots are given back).
                self.next_transmit = processed + 1;
                continue;
            }
            let Some(slot) = self.tx.slot(seq) else {
                break;
            };
            let m = &slot.message;
            frame::encode_data(
                buf,
                &frame::Data {
                    seq,
                    coding: m.coding,
                    client_ref: m.client_ref,
                    kind: m.kind,
                    part: m.part,
                    from: m.from,
                    to: m.to,
                    payload: m.payload(),
                },
            );
            let client_ref = m.client_ref;
            self.counters.frames_out += 1;
            match self.tx.mark_sent(seq) {
                Ok(true) => {
                    self.counters.data_sent += 1;
                    self.events.push_back(Event::StatusChanged {
                        seq,
                        state: SlotState::Sent,
                        outcome: None,
                        client_ref,
                    });
                }
                _ => self.counters.data_resent += 1,
            }
            self.next_transmit += 1;
        }
    }
}

/// Shared by the `link_frame` fuzz target and the corpus replay test, so both run
/// exactly the same code. Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{frame, Endpoint, LinkConfig, Side};
    use crate::message::Message;
    use crate::ring::Outcome;
    use std::time::Instant;

    /// First input byte: bit 0 picks the target (0: an endpoint that is up and has
    /// sent three messages; 1: an endpoint in its handshake, fed the same input three
    /// times: as a plaintext listener, as a listener inside a TLS session and as a
    /// dialer inside one), bits 1..7 the chunk size the rest is fed in (0: all at
    /// once). Every decoded frame must re-encode to the same bytes; after the input,
    /// cursor invariants must hold.
    pub fn link_frame(data: &[u8]) {
        let Some((&control, stream)) = data.split_first() else {
            return;
        };
        round_trip_frames(stream);
        let now = Instant::now();
        let chunk = match (control >> 1) as usize {
            0 => stream.len().max(1),
            n => n,
        };
        if control & 1 == 0 {
            feed(up_endpoint(now), stream, chunk, now);
            return;
        }
        let binding = [0x5a; 32];
        for (side, tls) in [
            (Side::Listener, false),
            (Side::Listener, true),
            (Side::Dialer, true),
        ] {
            let mut e = Endpoint::new(config("b"), now).expect("valid config");
            if tls {
                e.connected_with_binding(now, side, &binding);
            } else {
                e.connected(now, side);
            }
            feed(e, stream, chunk, now);
        }
    }

    fn feed(mut b: Endpoint, stream: &[u8], chunk: usize, now: Instant) {
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            if b.handle_input(piece, now).is_err() {
                break;
            }
            while let Some((seq, _)) = b.next_received() {
                let _ = b.mark_processed(seq, Outcome::Accepted);
            }
            out.clear();
            b.poll_transmit(now, &mut out);
        }
        while b.poll_event().is_some() {}
        let c = b.cursors();
        assert!(c.last_processed <= c.last_confirmed);
        assert!(c.last_confirmed <= c.last_sent);
        assert!(c.last_sent <= c.last_retrieved);
        assert!(b.tx_ring().in_use() <= b.tx_ring().capacity());
        let r = b.rx_cursors();
        assert!(r.last_processed <= r.last_delivered && r.last_delivered <= r.last_stored);
        assert!(b.rx_ring().in_use() <= b.rx_ring().capacity());
    }

    fn config(name: &str) -> LinkConfig {
        let mut c = LinkConfig::new(name, b"fuzz key, 16+ bytes");
        c.capacity = 8;
        c
    }

    fn round_trip_frames(mut rest: &[u8]) {
        let mut again = Vec::new();
        while let Ok(Some((f, used))) = frame::decode(rest) {
            assert!(used >= frame::HEADER_LEN && used <= rest.len());
            again.clear();
            match f {
                frame::Frame::Hello(h) => frame::encode_hello(&mut again, &h),
                frame::Frame::Proof(p) => frame::encode_proof(&mut again, &p),
                frame::Frame::State(s) => frame::encode_state(&mut again, &s),
                frame::Frame::Sync(s) => frame::encode_sync(&mut again, &s),
                frame::Frame::Data(d) => frame::encode_data(&mut again, &d),
                frame::Frame::Ping => frame::encode_ping(&mut again),
                frame::Frame::Close(c) => {
                    // Unknown reason codes decode to Other: compare the decoded form.
                    frame::encode_close(&mut again, c.reason, c.text);
                    let re = frame::decode(&again).ok().flatten().map(|x| x.0);
                    assert_eq!(re, Some(f));
                    rest = &rest[used..];
                    continue;
                }
                frame::Frame::Ack(_) => again.extend_from_slice(&rest[..used]),
            }
            assert_eq!(&again[..], &rest[..used], "re-encoding differs");
            rest = &rest[used..];
        }
    }

    /// A handshaken endpoint "b" that has sent three messages to "a" (whose bytes
    /// are dropped): the fuzz input plays the part of "a".
    pub fn up_endpoint(now: Instant) -> Endpoint {
        let mut a = Endpoint::new(config("a"), now).expect("valid config");
        let mut b = Endpoint::new(config("b"), now).expect("valid config");
        let m = Message::text("1", "2", "x").expect("valid message");
        for _ in 0..3 {
            let _ = b.send(&m);
        }
        a.connected(now, Side::Dialer);
        b.connected(now, Side::Listener);
        let mut buf = Vec::new();
        for _ in 0..4 {
            buf.clear();
            a.poll_transmit(now, &mut buf);
            let _ = b.handle_input(&buf, now);
            buf.clear();
            b.poll_transmit(now, &mut buf);
            let _ = a.handle_input(&buf, now);
        }
        b
    }
}
