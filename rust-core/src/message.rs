//! The message that travels through every part of smslink: addresses, coding, its
//! kind (a short message or a delivery report), the part it is of a concatenated SMS,
//! and a payload held out of line. A ring slot keeps its payload buffer from message
//! to message (`copy_from` reuses it), so steady state does not allocate, and a slot
//! costs about a hundred bytes until a long message passes through it.

use thiserror::Error;

/// Longest address CIMD2 carries (021 destination, 023 originator: 20 characters).
pub const MAX_ADDRESS: usize = 20;
/// Largest payload a message carries, in bytes: 60 KiB.
///
/// A long message travels as one message and is split into at most 255 parts at the
/// SMSC. 255 parts hold 34,170 octets of binary data, 255 x 67 UCS-2 characters
/// (at most 51,255 bytes of UTF-8: three bytes per BMP character, four per surrogate
/// pair of two units), and 255 x 153 GSM septets, which is 39,015 bytes of ASCII and
/// more only when most characters are two-byte letters such as `é` or `Δ`: such a
/// text meets this limit before the 255th part. 60 KiB keeps a link DATA frame within
/// its 16-bit length field.
pub const MAX_PAYLOAD: usize = 60 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MessageError {
    #[error("address {0:?} is longer than {MAX_ADDRESS} characters")]
    AddressTooLong(String),
    #[error("address {0:?} contains a character other than ASCII letters, digits, '+' or '-'")]
    AddressCharacter(String),
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit of a message")]
    PayloadTooLong(usize),
    #[error("message needs {0} SMS; a concatenated SMS has at most 255 parts")]
    TooManyParts(usize),
    #[error("message kind {0} is unknown")]
    UnknownKind(u8),
    #[error("delivery report state {0} is unknown")]
    UnknownReportState(u8),
    #[error("concatenation part {index} of {total} is not a valid part number")]
    BadPart { index: u8, total: u8 },
}

/// A phone number or short alphanumeric sender, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    len: u8,
    bytes: [u8; MAX_ADDRESS],
}

impl Address {
    pub const EMPTY: Address = Address {
        len: 0,
        bytes: [0; MAX_ADDRESS],
    };

    pub fn new(s: &str) -> Result<Self, MessageError> {
        if s.len() > MAX_ADDRESS {
            return Err(MessageError::AddressTooLong(s.to_owned()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b' ')
        {
            return Err(MessageError::AddressCharacter(s.to_owned()));
        }
        let mut bytes = [0; MAX_ADDRESS];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Address {
            len: s.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the payload is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Coding {
    /// UTF-8 text; the CIMD2 codec picks GSM 03.38 or UCS-2 for the air.
    Text = 0,
    /// Raw 8-bit octets (user data binary), delivered as they are.
    Binary = 1,
}

/// What a delivery report says about the message it reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReportState {
    /// The handset has the message.
    Delivered = 0,
    /// The SMSC gave up on the message (the report's `error` says why, 0: unknown).
    Failed = 1,
    /// The message's validity period ran out before it could be delivered.
    Expired = 2,
    /// Not final: the SMSC holds the message and keeps trying (buffered, en route).
    Enroute = 3,
}

impl ReportState {
    pub fn from_u8(b: u8) -> Result<Self, MessageError> {
        Ok(match b {
            0 => ReportState::Delivered,
            1 => ReportState::Failed,
            2 => ReportState::Expired,
            3 => ReportState::Enroute,
            other => return Err(MessageError::UnknownReportState(other)),
        })
    }

    /// Whether the SMSC will say nothing more about the message.
    pub fn is_final(self) -> bool {
        self != ReportState::Enroute
    }
}

/// A delivery report on an MT: the report message's `client_ref` is the one the MT
/// was sent with; its addresses are the MT's recipient (`from`) and sender (`to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Report {
    pub state: ReportState,
    /// The protocol's error code (0: none or unknown).
    pub error: u32,
    /// How many parts of the MT the report covers: all of a concatenated message's
    /// parts are folded into one report.
    pub parts: u8,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MessageKind {
    /// A short message (text or binary), long ones included.
    #[default]
    Sm,
    /// A delivery report on an MT sent earlier.
    Report(Report),
}

/// One part of a concatenated SMS (GSM 03.40 information element 0x00 or 0x08), as
/// it arrived from the SMSC: the receiving side joins the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Part {
    /// The concatenated message's reference (8 or 16 bits; 0 is valid).
    pub reference: u16,
    /// How many parts the message has (1..=255).
    pub total: u8,
    /// This part's number, 1..=total.
    pub index: u8,
}

impl Part {
    pub fn new(reference: u16, total: u8, index: u8) -> Result<Part, MessageError> {
        if total == 0 || index == 0 || index > total {
            return Err(MessageError::BadPart { index, total });
        }
        Ok(Part {
            reference,
            total,
            index,
        })
    }
}

/// Bytes of [`Message::encode_meta`].
pub const META_LEN: usize = 11;

/// One SMS: sender, recipient, coding, kind, payload, and an opaque reference the
/// application chose (echoed back with every status change, and carried with an MT
/// to the buffer server so that its delivery report names it).
#[derive(Clone)]
pub struct Message {
    pub from: Address,
    pub to: Address,
    pub coding: Coding,
    pub client_ref: u64,
    pub kind: MessageKind,
    /// Set on an MO that is one part of a concatenated SMS; `None` otherwise (an MT
    /// is always the whole text: the buffer server splits it). On a message the
    /// node hands to the application after joining its parts: `None` when whole,
    /// else the first part that never came.
    pub part: Option<Part>,
    payload: Vec<u8>,
}

impl Message {
    /// An empty message (used to initialise slots).
    pub const EMPTY: Message = Message {
        from: Address::EMPTY,
        to: Address::EMPTY,
        coding: Coding::Text,
        client_ref: 0,
        kind: MessageKind::Sm,
        part: None,
        payload: Vec::new(),
    };

    /// A delivery report message: from the MT's recipient to its sender, naming the
    /// MT by its `client_ref`. The payload may hold the SMSC's text, if any.
    pub fn report(from: Address, to: Address, client_ref: u64, report: Report) -> Self {
        let mut m = Message::EMPTY;
        m.from = from;
        m.to = to;
        m.client_ref = client_ref;
        m.kind = MessageKind::Report(report);
        m
    }

    /// The report this message carries, if it is one.
    pub fn as_report(&self) -> Option<&Report> {
        match &self.kind {
            MessageKind::Report(r) => Some(r),
            MessageKind::Sm => None,
        }
    }

    pub fn text(from: &str, to: &str, text: &str) -> Result<Self, MessageError> {
        Self::with_payload(from, to, Coding::Text, text.as_bytes())
    }

    pub fn binary(from: &str, to: &str, data: &[u8]) -> Result<Self, MessageError> {
        Self::with_payload(from, to, Coding::Binary, data)
    }

    fn with_payload(
        from: &str,
        to: &str,
        coding: Coding,
        data: &[u8],
    ) -> Result<Self, MessageError> {
        let mut m = Message::EMPTY;
        m.from = Address::new(from)?;
        m.to = Address::new(to)?;
        m.coding = coding;
        m.set_payload(data)?;
        // Refused here, at the sender, rather than by the buffer server later.
        use crate::sms::split::{split_binary, split_text, ConcatError, RefWidth};
        let split = match std::str::from_utf8(data) {
            Ok(text) if coding == Coding::Text => split_text(text, RefWidth::Eight),
            _ => split_binary(data, RefWidth::Eight),
        };
        match split {
            Err(ConcatError::TooManyParts { parts }) => Err(MessageError::TooManyParts(parts)),
            _ => Ok(m),
        }
    }

    /// Replace the payload, reusing the buffer (no allocation when it is big enough).
    pub fn set_payload(&mut self, data: &[u8]) -> Result<(), MessageError> {
        if data.len() > MAX_PAYLOAD {
            return Err(MessageError::PayloadTooLong(data.len()));
        }
        self.payload.clear();
        self.payload.extend_from_slice(data);
        Ok(())
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The text, when the coding is `Text` (always valid UTF-8 when built by `text`).
    pub fn text_str(&self) -> Option<&str> {
        match self.coding {
            Coding::Text => std::str::from_utf8(self.payload()).ok(),
            Coding::Binary => None,
        }
    }

    /// Copy everything from `other`, reusing this message's payload buffer. A buffer
    /// grown by a long message is given back once a short one replaces it, so a ring
    /// of mostly short messages stays small.
    pub fn copy_from(&mut self, other: &Message) {
        self.from = other.from;
        self.to = other.to;
        self.coding = other.coding;
        self.client_ref = other.client_ref;
        self.kind = other.kind;
        self.part = other.part;
        self.payload.clear();
        if self.payload.capacity() > KEPT_PAYLOAD_CAPACITY.max(other.payload.len()) {
            self.payload
                .shrink_to(KEPT_PAYLOAD_CAPACITY.max(other.payload.len()));
        }
        self.payload.extend_from_slice(&other.payload);
    }

    /// Empty the payload, keeping no more buffer than a slot keeps between
    /// messages (see `copy_from`): for a slot set aside for reuse.
    pub fn clear_payload(&mut self) {
        self.payload.clear();
        if self.payload.capacity() > KEPT_PAYLOAD_CAPACITY {
            self.payload.shrink_to(KEPT_PAYLOAD_CAPACITY);
        }
    }

    /// Everything but the payload.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            from: self.from,
            to: self.to,
            coding: self.coding,
            client_ref: self.client_ref,
            kind: self.kind,
            part: self.part,
        }
    }

    /// Set everything but the payload.
    pub fn set_envelope(&mut self, e: &Envelope) {
        self.from = e.from;
        self.to = e.to;
        self.coding = e.coding;
        self.client_ref = e.client_ref;
        self.kind = e.kind;
        self.part = e.part;
    }
}

/// A message without its payload: what a frame or a record carries next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    pub from: Address,
    pub to: Address,
    pub coding: Coding,
    pub client_ref: u64,
    pub kind: MessageKind,
    pub part: Option<Part>,
}

/// The kind and part fields in a fixed [`META_LEN`]-byte form, shared by the link's
/// DATA frame and the journal: `kind:u8 (0 SM, 1 report) | state:u8 | error:u32be |
/// parts:u8 | total:u8 (0: not a part) | index:u8 | reference:u16be`.
pub fn encode_meta(kind: &MessageKind, part: Option<&Part>) -> [u8; META_LEN] {
    let mut b = [0u8; META_LEN];
    if let MessageKind::Report(r) = kind {
        b[0] = 1;
        b[1] = r.state as u8;
        b[2..6].copy_from_slice(&r.error.to_be_bytes());
        b[6] = r.parts;
    }
    if let Some(p) = part {
        b[7] = p.total;
        b[8] = p.index;
        b[9..11].copy_from_slice(&p.reference.to_be_bytes());
    }
    b
}

/// The kind and part [`encode_meta`] wrote.
pub fn decode_meta(b: &[u8; META_LEN]) -> Result<(MessageKind, Option<Part>), MessageError> {
    let kind = match b[0] {
        0 => MessageKind::Sm,
        1 => MessageKind::Report(Report {
            state: ReportState::from_u8(b[1])?,
            error: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            parts: b[6],
        }),
        other => return Err(MessageError::UnknownKind(other)),
    };
    let part = match b[7] {
        0 => None,
        total => Some(Part::new(u16::from_be_bytes([b[9], b[10]]), total, b[8])?),
    };
    Ok((kind, part))
}

/// Payload capacity a slot keeps between messages (a long message's buffer above this
/// is released when a shorter one takes the slot).
const KEPT_PAYLOAD_CAPACITY: usize = 1024;

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.from == other.from
            && self.to == other.to
            && self.coding == other.coding
            && self.client_ref == other.client_ref
            && self.kind == other.kind
            && self.part == other.part
            && self.payload() == other.payload()
    }
}

impl Eq for Message {}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("from", &self.from).field("to", &self.to);
        match self.text_str() {
            Some(t) => d.field("text", &t),
            None => d.field("binary_len", &self.payload.len()),
        };
        if let MessageKind::Report(r) = &self.kind {
            d.field("report", r);
        }
        if let Some(p) = &self.part {
            d.field("part", p);
        }
        d.field("client_ref", &self.client_ref).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_limits() {
        let m = Message::text("+61400000001", "12345", "héllo").unwrap();
        assert_eq!(m.text_str(), Some("héllo"));
        assert_eq!(m.from.as_str(), "+61400000001");
        assert!(Address::new("123456789012345678901").is_err());
        assert!(Address::new("12;3").is_err());
        let big = vec![b'a'; MAX_PAYLOAD + 1];
        assert_eq!(
            Message::binary("1", "2", &big).unwrap_err(),
            MessageError::PayloadTooLong(MAX_PAYLOAD + 1)
        );
    }

    #[test]
    fn a_message_beyond_255_parts_is_refused_when_built() {
        assert!(Message::text("1", "2", &"x".repeat(153 * 255)).is_ok());
        assert_eq!(
            Message::text("1", "2", &"x".repeat(153 * 255 + 1)).unwrap_err(),
            MessageError::TooManyParts(256)
        );
        assert_eq!(
            Message::binary("1", "2", &[0; 134 * 255 + 1]).unwrap_err(),
            MessageError::TooManyParts(256)
        );
    }

    #[test]
    fn copy_from_copies_only_the_used_part() {
        let a = Message::text("1", "2", "abc").unwrap();
        let mut b = Message::text("3", "4", "zzzzzz").unwrap();
        b.copy_from(&a);
        assert_eq!(a, b.clone());
        assert_eq!(b.text_str(), Some("abc"));
    }

    #[test]
    fn a_slot_gives_back_a_long_messages_buffer() {
        let long = Message::binary("1", "2", &[7; 20_000]).unwrap();
        let short = Message::text("1", "2", "hi").unwrap();
        let mut slot = Message::EMPTY;
        slot.copy_from(&long);
        assert_eq!(slot, long);
        slot.copy_from(&short);
        assert_eq!(slot, short);
        assert!(slot.payload.capacity() <= KEPT_PAYLOAD_CAPACITY);
        // Set aside with the long message still in it.
        slot.set_payload(long.payload()).unwrap();
        slot.clear_payload();
        assert!(slot.payload().is_empty());
        assert!(slot.payload.capacity() <= KEPT_PAYLOAD_CAPACITY);
    }

    #[test]
    fn meta_round_trips_and_refuses_nonsense() {
        let mut m = Message::report(
            Address::new("+4670000001").unwrap(),
            Address::new("12345").unwrap(),
            77,
            Report {
                state: ReportState::Failed,
                error: 0x0102_0304,
                parts: 3,
            },
        );
        m.part = Some(Part::new(0xBEEF, 3, 2).unwrap());
        let meta = encode_meta(&m.kind, m.part.as_ref());
        assert_eq!(decode_meta(&meta), Ok((m.kind, m.part)));
        assert_eq!(
            decode_meta(&encode_meta(&MessageKind::Sm, None)),
            Ok((MessageKind::Sm, None))
        );
        let mut bad = meta;
        bad[0] = 9;
        assert_eq!(decode_meta(&bad), Err(MessageError::UnknownKind(9)));
        let mut bad = meta;
        bad[1] = 4;
        assert_eq!(decode_meta(&bad), Err(MessageError::UnknownReportState(4)));
        let mut bad = meta;
        bad[8] = 4; // part 4 of 3
        assert_eq!(
            decode_meta(&bad),
            Err(MessageError::BadPart { index: 4, total: 3 })
        );
    }
}
