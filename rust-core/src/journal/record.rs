//! What the journal stores: [`Record`]s, their payload encoding, and the entry that
//! frames one record on disk (header, payload, CRC-32C).
//!
//! All integers are little-endian. Decoding never panics and never allocates more
//! than the caller's maximum payload size, whatever a length field says.

use crate::message::{
    decode_meta, encode_meta, Address, Coding, Message, MessageError, MAX_ADDRESS, MAX_PAYLOAD,
    META_LEN,
};
use crate::ring::{Cursors, Outcome, RxCursors};
use thiserror::Error;

/// Log sequence number: 1 for the first record ever written, +1 per record; 0 means none.
pub type Lsn = u64;

/// Which ring of a link a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Direction {
    /// The sending ring: messages from our source to the peer.
    Tx = 0,
    /// The receiving ring: messages from the peer to our application.
    Rx = 1,
}

/// What a link needs to resume after a restart as the same incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkIdentity {
    /// The link's name (at most 255 bytes).
    pub name: String,
    /// Our session epoch (kept across restarts, so the peer sees the same sender).
    pub epoch: u64,
    /// The peer epoch our receiving ring belongs to, once known.
    pub peer_epoch: Option<u64>,
    /// Local seq = wire seq + offset, for the known peer epoch.
    pub rx_offset: u64,
    /// Local seqs up to here came from earlier peer incarnations.
    pub rx_epoch_floor: u64,
}

/// One journal record.
///
/// `link` is a small number the caller gives each link (its index in the node);
/// [`Record::Identity`] binds it to the link's name, so that a replay can map records
/// to links by name if the numbering changed between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
// `Message` is inline on purpose (no allocation per message); a record lives only
// between encoding and decoding, so its size costs a copy, never memory at rest.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// A message taken into a ring with its sequence number.
    Accepted {
        link: u32,
        dir: Direction,
        seq: u64,
        message: Message,
    },
    /// A message's outcome: for `Tx` the peer handed it on, for `Rx` our application did.
    Processed {
        link: u32,
        dir: Direction,
        seq: u64,
        outcome: Outcome,
    },
    /// The cursors of both rings of a link at one moment.
    Checkpoint {
        link: u32,
        tx: Cursors,
        rx: RxCursors,
    },
    /// The link's name, epochs and receive offsets.
    Identity { link: u32, identity: LinkIdentity },
    /// How far a disk backlog has been taken into the ring: the LSN of the next
    /// backlog record not yet taken.
    Backlog {
        link: u32,
        dir: Direction,
        next_lsn: Lsn,
    },
    /// A buffer server's MT accepted by its SMSC and awaiting delivery reports: the
    /// latest state of report group `group` (segment format 2).
    ReportGroup {
        link: u32,
        group: u64,
        state: Box<ReportGroup>,
    },
    /// Report group `group` is finished (its final report told, or given up).
    ReportDone { link: u32, group: u64 },
}

/// What a buffer server must remember of an accepted MT to match the SMSC's status
/// reports to it after a restart (`bridge::reports`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportGroup {
    /// The application's reference, given back with the report.
    pub client_ref: u64,
    /// The MT's recipient and sender.
    pub phone: Address,
    pub sender: Address,
    /// Parts of the message, and how many have a final report (of which delivered).
    pub parts: u8,
    pub finished: u8,
    pub delivered: u8,
    /// The application heard "enroute" already.
    pub told_enroute: bool,
    /// The application heard the final state (a failed part; the other parts'
    /// reports are still awaited, to be folded in silently).
    pub told_final: bool,
    /// The keys (SMSC message id, with the recipient's digits where the id alone is
    /// not unique) of the parts still awaiting their final report; at most
    /// [`MAX_REPORT_KEYS`] of at most [`MAX_REPORT_KEY`] bytes.
    pub keys: Vec<String>,
}

/// Longest key a [`ReportGroup`] holds (an SMPP message_id is at most 64 characters).
pub const MAX_REPORT_KEY: usize = 128;
/// Most keys a [`ReportGroup`] holds: one per part.
pub const MAX_REPORT_KEYS: usize = 255;

/// Why a record's payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("payload ends early: {needed} more bytes needed at byte {at}")]
    Truncated { at: usize, needed: usize },
    #[error("{0} bytes left over after the record")]
    TrailingBytes(usize),
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("unknown direction {0}")]
    Direction(u8),
    #[error("unknown outcome tag {0}")]
    Outcome(u8),
    #[error("unknown coding {0}")]
    Coding(u8),
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit of a message")]
    PayloadLength(usize),
    #[error("message kind or part is not valid: {0}")]
    Meta(MessageError),
    #[error("address is not valid: {0}")]
    Address(MessageError),
    #[error("link name is not UTF-8")]
    NameNotUtf8,
    #[error("link name of {0} bytes exceeds 255")]
    NameTooLong(usize),
    #[error("cursors out of order (must be processed <= confirmed <= sent <= retrieved)")]
    Cursors,
    #[error("report key of {0} bytes exceeds {MAX_REPORT_KEY}")]
    ReportKeyTooLong(usize),
    #[error("report group of {0} keys exceeds {MAX_REPORT_KEYS}")]
    ReportKeys(usize),
    #[error("report key is not UTF-8")]
    ReportKeyNotUtf8,
    #[error("unknown report group flags {0:#x}")]
    ReportFlags(u8),
}

// Record type bytes; 0 is never used, so zeroed (preallocated) space never decodes.
const ACCEPTED: u8 = 1;
const PROCESSED: u8 = 2;
const CHECKPOINT: u8 = 3;
const IDENTITY: u8 = 4;
const BACKLOG: u8 = 5;
// Segment format 2.
const REPORT_GROUP: u8 = 6;
const REPORT_DONE: u8 = 7;

/// Largest payload any record can have: an `Accepted` with full addresses and payload.
pub const MAX_RECORD_PAYLOAD: usize = 4 + 1 + 8 + MESSAGE_MAX;
const MESSAGE_MAX: usize = 1 + 8 + META_LEN + 1 + MAX_ADDRESS + 1 + MAX_ADDRESS + 2 + MAX_PAYLOAD;

impl Record {
    /// The record's type byte on disk.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Accepted { .. } => ACCEPTED,
            Record::Processed { .. } => PROCESSED,
            Record::Checkpoint { .. } => CHECKPOINT,
            Record::Identity { .. } => IDENTITY,
            Record::Backlog { .. } => BACKLOG,
            Record::ReportGroup { .. } => REPORT_GROUP,
            Record::ReportDone { .. } => REPORT_DONE,
        }
    }

    /// The link the record is about.
    pub fn link(&self) -> u32 {
        match self {
            Record::Accepted { link, .. }
            | Record::Processed { link, .. }
            | Record::Checkpoint { link, .. }
            | Record::Identity { link, .. }
            | Record::Backlog { link, .. }
            | Record::ReportGroup { link, .. }
            | Record::ReportDone { link, .. } => *link,
        }
    }

    /// Append the payload to `out`; returns the type byte.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<u8, RecordError> {
        out.extend_from_slice(&self.link().to_le_bytes());
        match self {
            Record::Accepted {
                dir, seq, message, ..
            } => {
                out.push(*dir as u8);
                out.extend_from_slice(&seq.to_le_bytes());
                encode_message(message, out);
            }
            Record::Processed {
                dir, seq, outcome, ..
            } => {
                out.push(*dir as u8);
                out.extend_from_slice(&seq.to_le_bytes());
                match outcome {
                    Outcome::Accepted => out.push(0),
                    Outcome::Rejected { code } => {
                        out.push(1);
                        out.extend_from_slice(&code.to_le_bytes());
                    }
                }
            }
            Record::Checkpoint { tx, rx, .. } => {
                for v in [
                    tx.last_retrieved,
                    tx.last_sent,
                    tx.last_confirmed,
                    tx.last_processed,
                    rx.last_stored,
                    rx.last_delivered,
                    rx.last_processed,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Record::Identity { identity: id, .. } => {
                let name = id.name.as_bytes();
                let len =
                    u8::try_from(name.len()).map_err(|_| RecordError::NameTooLong(name.len()))?;
                // Epochs are never 0, so 0 stands for "no peer epoch known".
                for v in [
                    id.epoch,
                    id.peer_epoch.unwrap_or(0),
                    id.rx_offset,
                    id.rx_epoch_floor,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(len);
                out.extend_from_slice(name);
            }
            Record::Backlog { dir, next_lsn, .. } => {
                out.push(*dir as u8);
                out.extend_from_slice(&next_lsn.to_le_bytes());
            }
            Record::ReportGroup { group, state, .. } => {
                let g = state.as_ref();
                if g.keys.len() > MAX_REPORT_KEYS {
                    return Err(RecordError::ReportKeys(g.keys.len()));
                }
                if let Some(k) = g.keys.iter().find(|k| k.len() > MAX_REPORT_KEY) {
                    return Err(RecordError::ReportKeyTooLong(k.len()));
                }
                out.extend_from_slice(&group.to_le_bytes());
                out.extend_from_slice(&g.client_ref.to_le_bytes());
                for a in [&g.phone, &g.sender] {
                    out.push(a.as_str().len() as u8);
                    out.extend_from_slice(a.as_str().as_bytes());
                }
                out.extend_from_slice(&[
                    g.parts,
                    g.finished,
                    g.delivered,
                    u8::from(g.told_enroute) | u8::from(g.told_final) << 1,
                    g.keys.len() as u8,
                ]);
                for k in &g.keys {
                    out.push(k.len() as u8);
                    out.extend_from_slice(k.as_bytes());
                }
            }
            Record::ReportDone { group, .. } => out.extend_from_slice(&group.to_le_bytes()),
        }
        Ok(self.kind())
    }

    /// Decode a payload of type `kind`; the whole payload must be used.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Record, RecordError> {
        let mut r = Bytes {
            buf: payload,
            at: 0,
        };
        let link = r.u32()?;
        let record = match kind {
            ACCEPTED => Record::Accepted {
                link,
                dir: r.direction()?,
                seq: r.u64()?,
                message: decode_message(&mut r)?,
            },
            PROCESSED => {
                let dir = r.direction()?;
                let seq = r.u64()?;
                let outcome = match r.u8()? {
                    0 => Outcome::Accepted,
                    1 => Outcome::Rejected { code: r.u32()? },
                    t => return Err(RecordError::Outcome(t)),
                };
                Record::Processed {
                    link,
                    dir,
                    seq,
                    outcome,
                }
            }
            CHECKPOINT => {
                let tx = Cursors {
                    last_retrieved: r.u64()?,
                    last_sent: r.u64()?,
                    last_confirmed: r.u64()?,
                    last_processed: r.u64()?,
                };
                let rx = RxCursors {
                    last_stored: r.u64()?,
                    last_delivered: r.u64()?,
                    last_processed: r.u64()?,
                };
                let tx_ok = tx.last_processed <= tx.last_confirmed
                    && tx.last_confirmed <= tx.last_sent
                    && tx.last_sent <= tx.last_retrieved;
                let rx_ok =
                    rx.last_processed <= rx.last_delivered && rx.last_delivered <= rx.last_stored;
                if !(tx_ok && rx_ok) {
                    return Err(RecordError::Cursors);
                }
                Record::Checkpoint { link, tx, rx }
            }
            IDENTITY => {
                let epoch = r.u64()?;
                let peer_epoch = Some(r.u64()?).filter(|&e| e != 0);
                let rx_offset = r.u64()?;
                let rx_epoch_floor = r.u64()?;
                let len = r.u8()? as usize;
                let name = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| RecordError::NameNotUtf8)?
                    .to_owned();
                Record::Identity {
                    link,
                    identity: LinkIdentity {
                        name,
                        epoch,
                        peer_epoch,
                        rx_offset,
                        rx_epoch_floor,
                    },
                }
            }
            BACKLOG => Record::Backlog {
                link,
                dir: r.direction()?,
                next_lsn: r.u64()?,
            },
            REPORT_GROUP => {
                let group = r.u64()?;
                let client_ref = r.u64()?;
                let phone = r.address()?;
                let sender = r.address()?;
                let [parts, finished, delivered, flags, count] = r.array::<5>()?;
                if flags > 3 {
                    return Err(RecordError::ReportFlags(flags));
                }
                let mut keys = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let len = usize::from(r.u8()?);
                    if len > MAX_REPORT_KEY {
                        return Err(RecordError::ReportKeyTooLong(len));
                    }
                    let key = std::str::from_utf8(r.take(len)?)
                        .map_err(|_| RecordError::ReportKeyNotUtf8)?;
                    keys.push(key.to_owned());
                }
                Record::ReportGroup {
                    link,
                    group,
                    state: Box::new(ReportGroup {
                        client_ref,
                        phone,
                        sender,
                        parts,
                        finished,
                        delivered,
                        told_enroute: flags & 1 != 0,
                        told_final: flags & 2 != 0,
                        keys,
                    }),
                }
            }
            REPORT_DONE => Record::ReportDone {
                link,
                group: r.u64()?,
            },
            other => return Err(RecordError::UnknownType(other)),
        };
        match payload.len() - r.at {
            0 => Ok(record),
            n => Err(RecordError::TrailingBytes(n)),
        }
    }
}

/// A message's fields, compactly: `coding u8 | client_ref u64 | meta [11] | from_len
/// u8 | from | to_len u8 | to | payload_len u16 | payload` (`meta`: kind and part, as
/// `message::encode_meta` writes them).
pub fn encode_message(m: &Message, out: &mut Vec<u8>) {
    out.push(m.coding as u8);
    out.extend_from_slice(&m.client_ref.to_le_bytes());
    out.extend_from_slice(&encode_meta(&m.kind, m.part.as_ref()));
    for a in [&m.from, &m.to] {
        out.push(a.as_str().len() as u8);
        out.extend_from_slice(a.as_str().as_bytes());
    }
    let p = m.payload();
    out.extend_from_slice(&(p.len() as u16).to_le_bytes());
    out.extend_from_slice(p);
}

fn decode_message(r: &mut Bytes<'_>) -> Result<Message, RecordError> {
    let coding = match r.u8()? {
        0 => Coding::Text,
        1 => Coding::Binary,
        c => return Err(RecordError::Coding(c)),
    };
    let client_ref = r.u64()?;
    let (kind, part) = decode_meta(&r.array::<META_LEN>()?).map_err(RecordError::Meta)?;
    let mut m = Message::EMPTY;
    m.kind = kind;
    m.part = part;
    m.from = r.address()?;
    m.to = r.address()?;
    m.coding = coding;
    m.client_ref = client_ref;
    let len = r.u16()? as usize;
    if len > MAX_PAYLOAD {
        return Err(RecordError::PayloadLength(len));
    }
    m.set_payload(r.take(len)?)
        .map_err(|_| RecordError::PayloadLength(len))?;
    Ok(m)
}

/// A bounds-checked reader over a payload.
struct Bytes<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let left = self.buf.len() - self.at;
        if n > left {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: n - left,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        self.array().map(u64::from_le_bytes)
    }
    fn direction(&mut self) -> Result<Direction, RecordError> {
        match self.u8()? {
            0 => Ok(Direction::Tx),
            1 => Ok(Direction::Rx),
            d => Err(RecordError::Direction(d)),
        }
    }
    fn address(&mut self) -> Result<Address, RecordError> {
        let len = self.u8()? as usize;
        let raw = self.take(len)?;
        let s = std::str::from_utf8(raw).map_err(|_| {
            RecordError::Address(MessageError::AddressCharacter(format!("{raw:?}")))
        })?;
        Address::new(s).map_err(RecordError::Address)
    }
}

// ---- entries: one record framed on disk ----

/// Bytes before the payload: `len u32 | type u8 | lsn u64 | durable_gap u32`.
pub const ENTRY_HEADER: usize = 17;
/// The CRC-32C after the payload.
pub const ENTRY_TRAILER: usize = 4;

/// The framing of one record, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub kind: u8,
    pub lsn: Lsn,
    /// The journal's durable LSN when this record was appended: every record up to it
    /// had been synced before this one was written (see the module docs on recovery).
    pub durable_before: Lsn,
    pub payload: &'a [u8],
}

impl Entry<'_> {
    /// Bytes the entry takes on disk.
    pub fn size(&self) -> usize {
        ENTRY_HEADER + self.payload.len() + ENTRY_TRAILER
    }
}

/// Why the bytes at a position are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    #[error("no record here (zero length or type)")]
    Empty,
    #[error("length field {len} exceeds the maximum record size {max}")]
    TooLarge { len: usize, max: usize },
    #[error("record cut short: {have} of {need} bytes")]
    Short { have: usize, need: usize },
    #[error("checksum mismatch")]
    BadCrc,
}

fn crc(salt: u64, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), bytes)
}

/// Append one entry: header, `payload`, and a CRC-32C over the salt, header and
/// payload. `durable_before` is stored as a distance below `lsn` (saturating, which
/// only ever makes recovery more lenient).
pub fn encode_entry(
    out: &mut Vec<u8>,
    kind: u8,
    lsn: Lsn,
    durable_before: Lsn,
    salt: u64,
    payload: &[u8],
) {
    let start = out.len();
    let gap = u32::try_from(lsn.saturating_sub(durable_before)).unwrap_or(u32::MAX);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&gap.to_le_bytes());
    out.extend_from_slice(payload);
    let c = crc(salt, &out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
}

/// The payload length an entry starting with `header` claims, checked against `max`.
pub fn entry_len(header: &[u8; ENTRY_HEADER], max: usize) -> Result<usize, EntryError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || header[4] == 0 {
        return Err(EntryError::Empty);
    }
    if len > max {
        return Err(EntryError::TooLarge { len, max });
    }
    Ok(ENTRY_HEADER + len + ENTRY_TRAILER)
}

/// Read the entry at the start of `buf` (which may hold more after it).
pub fn decode_entry(buf: &[u8], salt: u64, max_payload: usize) -> Result<Entry<'_>, EntryError> {
    let Some(header) = buf.first_chunk::<ENTRY_HEADER>() else {
        if buf.iter().all(|&b| b == 0) {
            return Err(EntryError::Empty);
        }
        return Err(EntryError::Short {
            have: buf.len(),
            need: ENTRY_HEADER,
        });
    };
    let size = entry_len(header, max_payload)?;
    if buf.len() < size {
        return Err(EntryError::Short {
            have: buf.len(),
            need: size,
        });
    }
    let body = size - ENTRY_TRAILER;
    let stored = u32::from_le_bytes([buf[body], buf[body + 1], buf[body + 2], buf[body + 3]]);
    if crc(salt, &buf[..body]) != stored {
        return Err(EntryError::BadCrc);
    }
    let lsn = u64::from_le_bytes(header[5..13].try_into().unwrap_or([0; 8]));
    let gap = u32::from_le_bytes(header[13..17].try_into().unwrap_or([0; 4]));
    Ok(Entry {
        kind: header[4],
        lsn,
        durable_before: lsn.saturating_sub(u64::from(gap)),
        payload: &buf[ENTRY_HEADER..body],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        let mut m = Message::text("+61400000001", "12345", "héllo").unwrap();
        m.client_ref = 77;
        m.part = Some(crate::message::Part::new(300, 2, 1).unwrap());
        let report = Message::report(
            m.to,
            m.from,
            78,
            crate::message::Report {
                state: crate::message::ReportState::Delivered,
                error: 0,
                parts: 2,
            },
        );
        vec![
            Record::Accepted {
                link: 3,
                dir: Direction::Rx,
                seq: 10,
                message: report,
            },
            Record::Accepted {
                link: 3,
                dir: Direction::Tx,
                seq: 9,
                message: m,
            },
            Record::Processed {
                link: 3,
                dir: Direction::Rx,
                seq: 9,
                outcome: Outcome::Rejected { code: 88 },
            },
            Record::Identity {
                link: 1,
                identity: LinkIdentity {
                    name: "smsc-a".into(),
                    epoch: 5,
                    peer_epoch: None,
                    rx_offset: 2,
                    rx_epoch_floor: 1,
                },
            },
            Record::ReportGroup {
                link: 3,
                group: 12,
                state: Box::new(ReportGroup {
                    client_ref: 77,
                    phone: Address::new("+4670000001").unwrap(),
                    sender: Address::new("alice").unwrap(),
                    parts: 3,
                    finished: 1,
                    delivered: 1,
                    told_enroute: true,
                    told_final: false,
                    keys: vec!["0a1b|4670000001".into(), "0a1c|4670000001".into()],
                }),
            },
            Record::ReportDone { link: 3, group: 12 },
        ]
    }

    #[test]
    fn a_report_group_with_a_key_too_long_or_too_many_keys_is_not_encoded() {
        let group = |keys: Vec<String>| Record::ReportGroup {
            link: 0,
            group: 1,
            state: Box::new(ReportGroup {
                client_ref: 1,
                phone: Address::new("+1").unwrap(),
                sender: Address::new("+2").unwrap(),
                parts: 1,
                finished: 0,
                delivered: 0,
                told_enroute: false,
                told_final: true,
                keys,
            }),
        };
        let mut out = Vec::new();
        let long = group(vec!["x".repeat(MAX_REPORT_KEY + 1)]);
        assert_eq!(
            long.encode(&mut out),
            Err(RecordError::ReportKeyTooLong(MAX_REPORT_KEY + 1))
        );
        let many = group(vec!["k".into(); MAX_REPORT_KEYS + 1]);
        assert!(many.encode(&mut out).is_err());
        // The largest one fits a record.
        let largest = group(vec!["k".repeat(MAX_REPORT_KEY); MAX_REPORT_KEYS]);
        out.clear();
        largest.encode(&mut out).unwrap();
        assert!(out.len() <= MAX_RECORD_PAYLOAD, "{}", out.len());
    }

    #[test]
    fn every_truncation_of_a_payload_is_an_error() {
        for rec in sample() {
            let mut p = Vec::new();
            let kind = rec.encode(&mut p).unwrap();
            assert_eq!(Record::decode(kind, &p).unwrap(), rec);
            for cut in 0..p.len() {
                assert!(Record::decode(kind, &p[..cut]).is_err(), "cut at {cut}");
            }
            p.push(0);
            assert_eq!(Record::decode(kind, &p), Err(RecordError::TrailingBytes(1)));
        }
    }

    #[test]
    fn entry_detects_any_flipped_bit_and_a_wrong_salt() {
        let mut p = Vec::new();
        let rec = &sample()[0];
        let kind = rec.encode(&mut p).unwrap();
        let mut e = Vec::new();
        encode_entry(&mut e, kind, 12, 10, 0xabc, &p);
        let ok = decode_entry(&e, 0xabc, 4096).unwrap();
        assert_eq!((ok.lsn, ok.durable_before, ok.kind), (12, 10, kind));
        assert_eq!(ok.size(), e.len());
        assert_eq!(decode_entry(&e, 0xabd, 4096), Err(EntryError::BadCrc));
        for bit in 0..e.len() * 8 {
            let mut bad = e.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_entry(&bad, 0xabc, 4096).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_length_field_beyond_the_maximum_is_refused_before_reading() {
        let mut e = vec![0xff, 0xff, 0xff, 0x7f, ACCEPTED];
        e.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode_entry(&e, 0, 4096),
            Err(EntryError::TooLarge {
                len: 0x7fff_ffff,
                max: 4096
            })
        );
        assert_eq!(decode_entry(&[0; 40], 0, 4096), Err(EntryError::Empty));
        assert_eq!(decode_entry(&[0; 3], 0, 4096), Err(EntryError::Empty));
    }
}
