//! Wire format of the link: length-prefixed binary frames over a byte stream.
//!
//! ```text
//! frame   = len:u16be type:u8 body[len]          (len <= MAX_BODY)
//! HELLO  1: magic "SMSL" version:u8 epoch:u64 nonce:[32] capacity:u32
//!           tx_last_processed:u64 name_len:u8 name[name_len <= 64, UTF-8]
//! AUTH   2: mac:[32] known_sender_epoch:u64 rx_last_stored:u64 rx_limit:u64
//! DATA   3: seq:u64 coding:u8 client_ref:u64 meta:[11] from_len:u8 from to_len:u8 to
//!           payload_len:u16 payload
//! ACK    4: rx_limit:u64 n_conf:u16 (start:u64 count:u32)*n_conf
//!           n_proc:u16 (start:u64 count:u32 kind:u8 code:u32)*n_proc
//! PING   5: (empty)
//! CLOSE  6: reason:u8 text_len:u8 text
//! ```
//! All integers big-endian. Every body must be consumed exactly. Decoding never
//! allocates and never panics; every malformation is a [`FrameError`].
//!
//! Field meanings:
//! * HELLO `epoch`: random per process (never 0); `capacity`: the sender's receiving
//!   ring (informational; flow control uses `rx_limit`); `tx_last_processed`: the
//!   sender's sending-ring cursor, so the receiver can place a new epoch's seqs.
//! * AUTH `mac`: HMAC-SHA256(psk, "smslink link v1 auth" || prover's HELLO fields ||
//!   verifier's HELLO fields || the three AUTH fields below), compared in constant
//!   time. `known_sender_epoch`: the peer epoch the receiving ring refers to (0:
//!   none); `rx_last_stored` / `rx_limit`: in the sender's numbering.
//! * DATA `coding`: 0 text (UTF-8), 1 binary; `client_ref`: the sending application's
//!   reference (a report carries the one of the MT it reports on); `meta`: the
//!   message's kind and concatenation part (`message::encode_meta`); addresses at
//!   most 20 bytes of `[A-Za-z0-9+- ]`; payload at most `MAX_PAYLOAD` (60 KiB, a whole
//!   long message); `seq` never 0.
//! * ACK runs cover `start..start+count`; `kind` 0 accepted (code 0), 1 rejected
//!   with `code`; `rx_limit`: highest seq the receiver can store now.
//! * CLOSE `reason`: 0 normal, 1 authentication failed, 2 protocol error, 3 bad
//!   version (others decode as "other").

use crate::message::{
    decode_meta, encode_meta, Address, Coding, MessageKind, Part, MAX_ADDRESS, MAX_PAYLOAD,
    META_LEN,
};
use crate::ring::Outcome;
use thiserror::Error;

/// Protocol version carried in HELLO (2: DATA carries the reference, kind and part of
/// a message, and a whole long message).
pub const VERSION: u8 = 2;
/// First bytes of every HELLO body: lets a peer reject a non-smslink client at once.
pub const MAGIC: [u8; 4] = *b"SMSL";
/// Bytes before a body: length and type.
pub const HEADER_LEN: usize = 3;
/// Largest body accepted or produced: a DATA frame with the largest message.
pub const MAX_BODY: usize = MAX_DATA_BODY;
/// Largest ACK body produced (ACKs are sent often: their size bounds the latency a
/// DATA frame behind them sees).
const MAX_ACK_BODY: usize = 16 * 1024;
/// Longest link name.
pub const MAX_NAME: usize = 64;
/// Nonce length in HELLO.
pub const NONCE_LEN: usize = 32;
/// HMAC-SHA256 tag length in AUTH.
pub const MAC_LEN: usize = 32;
/// Largest DATA body: seq, coding, two addresses with lengths, payload with length.
pub const MAX_DATA_BODY: usize =
    8 + 1 + 8 + META_LEN + 1 + MAX_ADDRESS + 1 + MAX_ADDRESS + 2 + MAX_PAYLOAD;
const _: () = assert!(MAX_DATA_BODY <= u16::MAX as usize);
const CONFIRM_ENTRY: usize = 12;
const PROCESSED_ENTRY: usize = 17;
/// ACK entries of each kind that fit in one frame together.
pub const MAX_ACK_ENTRIES: usize = (MAX_ACK_BODY - 12) / (CONFIRM_ENTRY + PROCESSED_ENTRY);

/// Frame type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Hello = 1,
    Auth = 2,
    Data = 3,
    Ack = 4,
    Ping = 5,
    Close = 6,
}

/// A malformed frame. The connection cannot continue after one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame body of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("{frame:?} frame truncated: {field} needs {need} bytes, {have} left")]
    Truncated {
        frame: FrameType,
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{frame:?} frame has {extra} bytes after its last field")]
    TrailingBytes { frame: FrameType, extra: usize },
    #[error("HELLO does not start with the smslink magic")]
    BadMagic,
    #[error("peer speaks link protocol version {got}, we speak {VERSION}")]
    BadVersion { got: u8 },
    #[error("{frame:?} frame: invalid {field}")]
    Invalid {
        frame: FrameType,
        field: &'static str,
    },
}

/// HELLO: who I am, my epoch, my challenge, where my sending ring stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    pub version: u8,
    pub epoch: u64,
    pub nonce: [u8; NONCE_LEN],
    pub capacity: u32,
    pub tx_last_processed: u64,
    pub name: &'a str,
}

/// AUTH: my answer to the challenge, and where my receiving ring stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    pub mac: [u8; MAC_LEN],
    /// The sender epoch my receiving ring refers to (0: none).
    pub known_sender_epoch: u64,
    /// Highest seq of yours I hold (your numbering).
    pub rx_last_stored: u64,
    /// Highest seq of yours I can store now.
    pub rx_limit: u64,
}

/// DATA: one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    pub seq: u64,
    pub coding: Coding,
    pub client_ref: u64,
    pub kind: MessageKind,
    pub part: Option<Part>,
    pub from: Address,
    pub to: Address,
    pub payload: &'a [u8],
}

/// ACK: confirmations and processed outcomes, as runs of consecutive seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    pub rx_limit: u64,
    confirms: &'a [u8],
    processed: &'a [u8],
}

/// Why a CLOSE was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// Orderly shutdown.
    Normal = 0,
    /// The challenge answer was wrong, or the peer is not the expected one.
    AuthFailed = 1,
    /// A frame was malformed or broke the protocol.
    ProtocolError = 2,
    /// Incompatible protocol version.
    BadVersion = 3,
    /// Anything else (unknown codes from newer peers decode to this).
    Other = 255,
}

impl CloseReason {
    fn from_u8(b: u8) -> Self {
        match b {
            0 => CloseReason::Normal,
            1 => CloseReason::AuthFailed,
            2 => CloseReason::ProtocolError,
            3 => CloseReason::BadVersion,
            _ => CloseReason::Other,
        }
    }
}

/// CLOSE: the sender is about to drop the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    pub reason: CloseReason,
    pub text: &'a str,
}

/// A decoded frame, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Hello(Hello<'a>),
    Auth(Auth),
    Data(Data<'a>),
    Ack(Ack<'a>),
    Ping,
    Close(Close<'a>),
}

impl Frame<'_> {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Auth(_) => FrameType::Auth,
            Frame::Data(_) => FrameType::Data,
            Frame::Ack(_) => FrameType::Ack,
            Frame::Ping => FrameType::Ping,
            Frame::Close(_) => FrameType::Close,
        }
    }
}

/// A run of consecutive seqs `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRun {
    pub start: u64,
    pub count: u32,
}

impl<'a> Ack<'a> {
    /// Confirmed runs, in the order sent.
    pub fn confirms(&self) -> impl Iterator<Item = SeqRun> + 'a {
        self.confirms.chunks_exact(CONFIRM_ENTRY).map(|c| SeqRun {
            start: be_u64(&c[0..8]),
            count: be_u32(&c[8..12]),
        })
    }

    /// Processed runs with their outcome, in the order sent.
    pub fn processed(&self) -> impl Iterator<Item = (SeqRun, Outcome)> + 'a {
        self.processed.chunks_exact(PROCESSED_ENTRY).map(|c| {
            let run = SeqRun {
                start: be_u64(&c[0..8]),
                count: be_u32(&c[8..12]),
            };
            let outcome = match c[12] {
                0 => Outcome::Accepted,
                _ => Outcome::Rejected {
                    code: be_u32(&c[13..17]),
                },
            };
            (run, outcome)
        })
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

/// Reads fields from a body, turning shortness into `Truncated`.
struct Reader<'a> {
    frame: FrameType,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated {
                frame: self.frame,
                field,
                need: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.bytes(1, field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, FrameError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        Ok(be_u32(self.bytes(4, field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, FrameError> {
        Ok(be_u64(self.bytes(8, field)?))
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N, field)?);
        Ok(a)
    }
    fn invalid(&self, field: &'static str) -> FrameError {
        FrameError::Invalid {
            frame: self.frame,
            field,
        }
    }
    fn str(&mut self, n: usize, field: &'static str) -> Result<&'a str, FrameError> {
        let b = self.bytes(n, field)?;
        std::str::from_utf8(b).map_err(|_| self.invalid(field))
    }
    fn address(&mut self, field: &'static str) -> Result<Address, FrameError> {
        let n = self.u8(field)? as usize;
        if n > MAX_ADDRESS {
            return Err(self.invalid(field));
        }
        let s = self.str(n, field)?;
        Address::new(s).map_err(|_| self.invalid(field))
    }
    fn finish(self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes {
                frame: self.frame,
                extra: self.buf.len(),
            })
        }
    }
}

/// Decode one frame from the front of `buf`.
///
/// `Ok(None)`: more bytes are needed (a partial frame is never an error).
/// `Ok(Some((frame, used)))`: a frame and how many bytes it took.
/// A header announcing more than [`MAX_BODY`] is refused as soon as it is seen.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(len) = body_len(buf)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    let frame = decode_body(buf[2], &buf[HEADER_LEN..total])?;
    Ok(Some((frame, total)))
}

/// The body length announced by a header, checked against [`MAX_BODY`] and the type
/// byte checked; `None` if the header is not complete yet.
pub fn body_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if len > MAX_BODY {
        return Err(FrameError::Oversized { len, max: MAX_BODY });
    }
    if !(1..=6).contains(&buf[2]) {
        return Err(FrameError::UnknownType(buf[2]));
    }
    Ok(Some(len))
}

fn decode_body(kind: u8, body: &[u8]) -> Result<Frame<'_>, FrameError> {
    let frame = match kind {
        1 => FrameType::Hello,
        2 => FrameType::Auth,
        3 => FrameType::Data,
        4 => FrameType::Ack,
        5 => FrameType::Ping,
        6 => FrameType::Close,
        other => return Err(FrameError::UnknownType(other)),
    };
    let mut r = Reader { frame, buf: body };
    let out = match frame {
        FrameType::Hello => {
            if r.bytes(4, "magic")? != MAGIC {
                return Err(FrameError::BadMagic);
            }
            let version = r.u8("version")?;
            if version != VERSION {
                return Err(FrameError::BadVersion { got: version });
            }
            let epoch = r.u64("epoch")?;
            let nonce = r.array::<NONCE_LEN>("nonce")?;
            let capacity = r.u32("capacity")?;
            let tx_last_processed = r.u64("tx_last_processed")?;
            let n = r.u8("name length")? as usize;
            if n > MAX_NAME {
                return Err(r.invalid("name length"));
            }
            let name = r.str(n, "name")?;
            if epoch == 0 {
                return Err(r.invalid("epoch"));
            }
            if capacity == 0 || capacity as usize > crate::ring::MAX_CAPACITY {
                return Err(r.invalid("capacity"));
            }
            Frame::Hello(Hello {
                version,
                epoch,
                nonce,
                capacity,
                tx_last_processed,
                name,
            })
        }
        FrameType::Auth => Frame::Auth(Auth {
            mac: r.array::<MAC_LEN>("mac")?,
            known_sender_epoch: r.u64("known_sender_epoch")?,
            rx_last_stored: r.u64("rx_last_stored")?,
            rx_limit: r.u64("rx_limit")?,
        }),
        FrameType::Data => {
            let seq = r.u64("seq")?;
            let coding = match r.u8("coding")? {
                0 => Coding::Text,
                1 => Coding::Binary,
                _ => return Err(r.invalid("coding")),
            };
            let client_ref = r.u64("client_ref")?;
            let (kind, part) =
                decode_meta(&r.array::<META_LEN>("meta")?).map_err(|_| r.invalid("meta"))?;
            let from = r.address("from")?;
            let to = r.address("to")?;
            let n = r.u16("payload length")? as usize;
            if n > MAX_PAYLOAD {
                return Err(r.invalid("payload length"));
            }
            let payload = r.bytes(n, "payload")?;
            if seq == 0 {
                return Err(r.invalid("seq"));
            }
            Frame::Data(Data {
                seq,
                coding,
                client_ref,
                kind,
                part,
                from,
                to,
                payload,
            })
        }
        FrameType::Ack => {
            let rx_limit = r.u64("rx_limit")?;
            let n = r.u16("confirm count")? as usize;
            let confirms = r.bytes(n * CONFIRM_ENTRY, "confirms")?;
            let n = r.u16("processed count")? as usize;
            let processed = r.bytes(n * PROCESSED_ENTRY, "processed")?;
            let ack = Ack {
                rx_limit,
                confirms,
                processed,
            };
            let run_ok =
                |run: SeqRun| run.start != 0 && run.start.checked_add(run.count as u64).is_some();
            if !ack.confirms().all(run_ok) {
                return Err(r.invalid("confirm run"));
            }
            let kind_ok = processed
                .chunks_exact(PROCESSED_ENTRY)
                .all(|c| c[12] <= 1 && (c[12] == 1 || c[13..17] == [0; 4]));
            if !kind_ok {
                return Err(r.invalid("outcome"));
            }
            if !ack.processed().all(|(run, _)| run_ok(run)) {
                return Err(r.invalid("processed run"));
            }
            Frame::Ack(ack)
        }
        FrameType::Ping => Frame::Ping,
        FrameType::Close => {
            let reason = CloseReason::from_u8(r.u8("reason")?);
            let n = r.u8("text length")? as usize;
            let text = r.str(n, "text")?;
            Frame::Close(Close { reason, text })
        }
    };
    r.finish()?;
    Ok(out)
}

fn header(buf: &mut Vec<u8>, kind: FrameType, len: usize) {
    debug_assert!(len <= MAX_BODY);
    buf.extend_from_slice(&(len as u16).to_be_bytes());
    buf.push(kind as u8);
}

/// Append a HELLO frame. The name is cut to [`MAX_NAME`] bytes at a char boundary.
pub fn encode_hello(buf: &mut Vec<u8>, h: &Hello<'_>) {
    let name = truncate_str(h.name, MAX_NAME);
    let len = 4 + 1 + 8 + NONCE_LEN + 4 + 8 + 1 + name.len();
    header(buf, FrameType::Hello, len);
    buf.extend_from_slice(&MAGIC);
    buf.push(h.version);
    buf.extend_from_slice(&h.epoch.to_be_bytes());
    buf.extend_from_slice(&h.nonce);
    buf.extend_from_slice(&h.capacity.to_be_bytes());
    buf.extend_from_slice(&h.tx_last_processed.to_be_bytes());
    buf.push(name.len() as u8);
    buf.extend_from_slice(name.as_bytes());
}

/// Append an AUTH frame.
pub fn encode_auth(buf: &mut Vec<u8>, a: &Auth) {
    header(buf, FrameType::Auth, MAC_LEN + 24);
    buf.extend_from_slice(&a.mac);
    buf.extend_from_slice(&a.known_sender_epoch.to_be_bytes());
    buf.extend_from_slice(&a.rx_last_stored.to_be_bytes());
    buf.extend_from_slice(&a.rx_limit.to_be_bytes());
}

/// Append a DATA frame.
pub fn encode_data(buf: &mut Vec<u8>, d: &Data<'_>) {
    let (from, to) = (d.from.as_str().as_bytes(), d.to.as_str().as_bytes());
    let payload = &d.payload[..d.payload.len().min(MAX_PAYLOAD)];
    let len = 8 + 1 + 8 + META_LEN + 1 + from.len() + 1 + to.len() + 2 + payload.len();
    header(buf, FrameType::Data, len);
    buf.extend_from_slice(&d.seq.to_be_bytes());
    buf.push(d.coding as u8);
    buf.extend_from_slice(&d.client_ref.to_be_bytes());
    buf.extend_from_slice(&encode_meta(&d.kind, d.part.as_ref()));
    buf.push(from.len() as u8);
    buf.extend_from_slice(from);
    buf.push(to.len() as u8);
    buf.extend_from_slice(to);
    buf.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    buf.extend_from_slice(payload);
}

/// Append a PING frame.
pub fn encode_ping(buf: &mut Vec<u8>) {
    header(buf, FrameType::Ping, 0);
}

/// Append a CLOSE frame; the text is cut to 255 bytes.
pub fn encode_close(buf: &mut Vec<u8>, reason: CloseReason, text: &str) {
    let text = truncate_str(text, 255);
    header(buf, FrameType::Close, 2 + text.len());
    buf.push(reason as u8);
    buf.push(text.len() as u8);
    buf.extend_from_slice(text.as_bytes());
}

/// Builds an ACK frame in place: runs are merged as they are added.
/// At most [`MAX_ACK_ENTRIES`] entries of each kind; `push_*` returns false when full.
pub struct AckWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    confirms: u16,
    processed: u16,
    section_two: bool,
}

impl<'b> AckWriter<'b> {
    pub fn new(buf: &'b mut Vec<u8>, rx_limit: u64) -> Self {
        let start = buf.len();
        header(buf, FrameType::Ack, 0);
        buf.extend_from_slice(&rx_limit.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        AckWriter {
            buf,
            start,
            confirms: 0,
            processed: 0,
            section_two: false,
        }
    }

    /// Add a confirmed run. All confirms must be pushed before any processed entry.
    pub fn push_confirm(&mut self, start: u64, count: u32) -> bool {
        debug_assert!(!self.section_two);
        if self.confirms as usize >= MAX_ACK_ENTRIES {
            return false;
        }
        self.buf.extend_from_slice(&start.to_be_bytes());
        self.buf.extend_from_slice(&count.to_be_bytes());
        self.confirms += 1;
        true
    }

    fn open_section_two(&mut self) {
        if !self.section_two {
            self.section_two = true;
            self.buf.extend_from_slice(&0u16.to_be_bytes());
        }
    }

    /// Add one processed seq, extending the previous run when it continues it.
    pub fn push_processed(&mut self, seq: u64, outcome: Outcome) -> bool {
        self.open_section_two();
        let (kind, code) = match outcome {
            Outcome::Accepted => (0u8, 0u32),
            Outcome::Rejected { code } => (1, code),
        };
        if self.processed > 0 {
            let e = self.buf.len() - PROCESSED_ENTRY;
            let last = &self.buf[e..];
            let start = be_u64(&last[0..8]);
            let count = be_u32(&last[8..12]);
            if last[12] == kind
                && be_u32(&last[13..17]) == code
                && start.checked_add(count as u64) == Some(seq)
                && count < u32::MAX
            {
                self.buf[e + 8..e + 12].copy_from_slice(&(count + 1).to_be_bytes());
                return true;
            }
        }
        if self.processed as usize >= MAX_ACK_ENTRIES {
            return false;
        }
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.extend_from_slice(&1u32.to_be_bytes());
        self.buf.push(kind);
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.processed += 1;
        true
    }

    /// Update the flow-control limit written in the frame.
    pub fn set_rx_limit(&mut self, rx_limit: u64) {
        let at = self.start + HEADER_LEN;
        self.buf[at..at + 8].copy_from_slice(&rx_limit.to_be_bytes());
    }

    /// Patch counts and length; returns the frame's total size.
    pub fn finish(mut self) -> usize {
        self.open_section_two();
        let s = self.start;
        let c = s + HEADER_LEN + 8;
        self.buf[c..c + 2].copy_from_slice(&self.confirms.to_be_bytes());
        let p = c + 2 + self.confirms as usize * CONFIRM_ENTRY;
        self.buf[p..p + 2].copy_from_slice(&self.processed.to_be_bytes());
        let len = self.buf.len() - s - HEADER_LEN;
        self.buf[s..s + 2].copy_from_slice(&(len as u16).to_be_bytes());
        self.buf.len() - s
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello<'static> {
        Hello {
            version: VERSION,
            epoch: 42,
            nonce: [7; NONCE_LEN],
            capacity: 255,
            tx_last_processed: 9,
            name: "buffer-1",
        }
    }

    fn one(buf: &[u8]) -> Frame<'_> {
        let (f, used) = decode(buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        f
    }

    fn body_err(kind: FrameType, body: &[u8]) -> FrameError {
        let mut buf = (body.len() as u16).to_be_bytes().to_vec();
        buf.push(kind as u8);
        buf.extend_from_slice(body);
        decode(&buf).unwrap_err()
    }

    #[test]
    fn round_trips() {
        let mut buf = vec![];
        encode_hello(&mut buf, &hello());
        assert_eq!(one(&buf), Frame::Hello(hello()));

        let auth = Auth {
            mac: [3; MAC_LEN],
            known_sender_epoch: 5,
            rx_last_stored: 6,
            rx_limit: 261,
        };
        buf.clear();
        encode_auth(&mut buf, &auth);
        assert_eq!(one(&buf), Frame::Auth(auth));

        let d = Data {
            seq: 77,
            coding: Coding::Binary,
            client_ref: 0x0102_0304_0506_0708,
            kind: MessageKind::Sm,
            part: Some(Part::new(513, 3, 2).unwrap()),
            from: Address::new("+4412").unwrap(),
            to: Address::new("ALERTS").unwrap(),
            payload: &[0, 1, 2, 255],
        };
        buf.clear();
        encode_data(&mut buf, &d);
        assert_eq!(one(&buf), Frame::Data(d));

        let long = vec![b'x'; MAX_PAYLOAD];
        let report = Data {
            kind: MessageKind::Report(crate::message::Report {
                state: crate::message::ReportState::Expired,
                error: 7,
                parts: 2,
            }),
            part: None,
            payload: &long,
            ..d
        };
        buf.clear();
        encode_data(&mut buf, &report);
        assert_eq!(one(&buf), Frame::Data(report));

        buf.clear();
        encode_ping(&mut buf);
        assert_eq!(one(&buf), Frame::Ping);

        buf.clear();
        encode_close(&mut buf, CloseReason::AuthFailed, "bad tag");
        assert_eq!(
            one(&buf),
            Frame::Close(Close {
                reason: CloseReason::AuthFailed,
                text: "bad tag"
            })
        );
    }

    #[test]
    fn ack_writer_merges_runs() {
        let mut buf = vec![];
        let mut w = AckWriter::new(&mut buf, 10);
        assert!(w.push_confirm(1, 3));
        for s in [4, 5, 6] {
            assert!(w.push_processed(s, Outcome::Accepted));
        }
        assert!(w.push_processed(7, Outcome::Rejected { code: 8 }));
        assert!(w.push_processed(8, Outcome::Rejected { code: 8 }));
        assert!(w.push_processed(2, Outcome::Accepted));
        w.set_rx_limit(300);
        let n = w.finish();
        assert_eq!(n, buf.len());
        let Frame::Ack(a) = one(&buf) else {
            panic!("not an ack")
        };
        assert_eq!(a.rx_limit, 300);
        assert_eq!(
            a.confirms().collect::<Vec<_>>(),
            vec![SeqRun { start: 1, count: 3 }]
        );
        assert_eq!(
            a.processed().collect::<Vec<_>>(),
            vec![
                (SeqRun { start: 4, count: 3 }, Outcome::Accepted),
                (SeqRun { start: 7, count: 2 }, Outcome::Rejected { code: 8 }),
                (SeqRun { start: 2, count: 1 }, Outcome::Accepted),
            ]
        );
    }

    #[test]
    fn ack_writer_stops_at_frame_limit() {
        let mut buf = vec![];
        let mut w = AckWriter::new(&mut buf, 0);
        let mut pushed = 0;
        // Every other seq: no merging, one entry each.
        while w.push_processed(pushed * 2 + 1, Outcome::Accepted) {
            pushed += 1;
        }
        assert_eq!(pushed as usize, MAX_ACK_ENTRIES);
        w.finish();
        assert!(buf.len() <= HEADER_LEN + MAX_ACK_BODY);
        assert!(matches!(one(&buf), Frame::Ack(_)));
    }

    #[test]
    fn partial_input_needs_more() {
        let mut buf = vec![];
        encode_hello(&mut buf, &hello());
        for n in 0..buf.len() {
            assert_eq!(decode(&buf[..n]), Ok(None));
        }
    }

    #[test]
    fn malformed_bodies() {
        let mut h = vec![];
        encode_hello(&mut h, &hello());
        let body = h[HEADER_LEN..].to_vec();
        let mut v = body.clone();
        v[4] = 9;
        assert_eq!(
            body_err(FrameType::Hello, &v),
            FrameError::BadVersion { got: 9 }
        );
        let mut v = body.clone();
        v[0] = b'X';
        assert_eq!(body_err(FrameType::Hello, &v), FrameError::BadMagic);
        let mut v = body.clone();
        v[5..13].copy_from_slice(&[0; 8]);
        assert_eq!(
            body_err(FrameType::Hello, &v),
            FrameError::Invalid {
                frame: FrameType::Hello,
                field: "epoch"
            }
        );
        let mut v = body.clone();
        v[45..49].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            body_err(FrameType::Hello, &v),
            FrameError::Invalid {
                frame: FrameType::Hello,
                field: "capacity"
            }
        );
        let mut v = body.clone();
        v[57] = 65;
        assert_eq!(
            body_err(FrameType::Hello, &v),
            FrameError::Invalid {
                frame: FrameType::Hello,
                field: "name length"
            }
        );
        let mut v = body.clone();
        v[58] = 0xff;
        assert_eq!(
            body_err(FrameType::Hello, &v),
            FrameError::Invalid {
                frame: FrameType::Hello,
                field: "name"
            }
        );
        assert!(matches!(
            body_err(FrameType::Auth, &[0; 55]),
            FrameError::Truncated {
                frame: FrameType::Auth,
                field: "rx_limit",
                ..
            }
        ));

        let mut d = vec![];
        encode_data(
            &mut d,
            &Data {
                seq: 1,
                coding: Coding::Text,
                client_ref: 9,
                kind: MessageKind::Sm,
                part: None,
                from: Address::new("1").unwrap(),
                to: Address::new("2").unwrap(),
                payload: b"hi",
            },
        );
        let body = d[HEADER_LEN..].to_vec();
        let invalid = |field| FrameError::Invalid {
            frame: FrameType::Data,
            field,
        };
        let mut v = body.clone();
        v[8] = 2;
        assert_eq!(body_err(FrameType::Data, &v), invalid("coding"));
        let mut v = body.clone();
        v[17] = 5; // kind
        assert_eq!(body_err(FrameType::Data, &v), invalid("meta"));
        let mut v = body.clone();
        v[17 + 7] = 1; // total
        v[17 + 8] = 2; // part 2 of 1
        assert_eq!(body_err(FrameType::Data, &v), invalid("meta"));
        let mut v = body.clone();
        v[29] = b';';
        assert_eq!(body_err(FrameType::Data, &v), invalid("from"));
        let mut v = body.clone();
        v[28] = 21;
        assert_eq!(body_err(FrameType::Data, &v), invalid("from"));
        let mut v = body.clone();
        v[..8].copy_from_slice(&[0; 8]);
        assert_eq!(body_err(FrameType::Data, &v), invalid("seq"));
        let mut v = body[..32].to_vec();
        v.extend_from_slice(&(MAX_PAYLOAD as u16 + 1).to_be_bytes());
        assert_eq!(body_err(FrameType::Data, &v), invalid("payload length"));
        let mut v = body.clone();
        v.pop();
        assert!(matches!(
            body_err(FrameType::Data, &v),
            FrameError::Truncated {
                field: "payload",
                need: 2,
                have: 1,
                ..
            }
        ));

        let ack = |entries: &[u8], kind_count: u16| {
            let mut b = 0u64.to_be_bytes().to_vec();
            b.extend_from_slice(&0u16.to_be_bytes());
            b.extend_from_slice(&kind_count.to_be_bytes());
            b.extend_from_slice(entries);
            b
        };
        let mut e = 1u64.to_be_bytes().to_vec();
        e.extend_from_slice(&1u32.to_be_bytes());
        e.push(2);
        e.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            body_err(FrameType::Ack, &ack(&e, 1)),
            FrameError::Invalid {
                frame: FrameType::Ack,
                field: "outcome"
            }
        );
        let mut e = u64::MAX.to_be_bytes().to_vec();
        e.extend_from_slice(&2u32.to_be_bytes());
        e.push(0);
        e.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            body_err(FrameType::Ack, &ack(&e, 1)),
            FrameError::Invalid {
                frame: FrameType::Ack,
                field: "processed run"
            }
        );
        assert!(matches!(
            body_err(FrameType::Ack, &ack(&[], 1)),
            FrameError::Truncated {
                field: "processed",
                ..
            }
        ));
        assert_eq!(
            body_err(FrameType::Close, &[0, 1, 0xff]),
            FrameError::Invalid {
                frame: FrameType::Close,
                field: "text"
            }
        );
    }

    #[test]
    fn unknown_close_reason_decodes_as_other() {
        let buf = [0, 2, 6, 77, 0];
        assert_eq!(
            one(&buf),
            Frame::Close(Close {
                reason: CloseReason::Other,
                text: ""
            })
        );
    }

    #[test]
    fn header_checks() {
        let too_long = (MAX_BODY as u16 + 1).to_be_bytes();
        assert_eq!(
            decode(&[too_long[0], too_long[1], 1]),
            Err(FrameError::Oversized {
                len: MAX_BODY + 1,
                max: MAX_BODY
            })
        );
        assert_eq!(decode(&[0, 0, 0]), Err(FrameError::UnknownType(0)));
        assert_eq!(decode(&[0, 0, 7]), Err(FrameError::UnknownType(7)));
    }
}
