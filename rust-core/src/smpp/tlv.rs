//! Optional parameters (TLVs): the ones an ESME acts on are typed, every other one is
//! kept as its tag and value octets, in wire order, and written back unchanged.

use super::fields::MessageId;

/// TLV tags (SMPP 3.4 section 5.3.2).
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const USSD_SERVICE_OP: u16 = 0x0501;
}

/// Longest TLV value (its length field is two octets).
pub const MAX_TLV_VALUE: usize = u16::MAX as usize;

/// One optional parameter.
///
/// A known tag whose value does not have its type's form (a wrong length, a
/// receipted_message_id without its NUL) is kept as `Other`, so that a sloppy peer's
/// PDU is still accepted and re-encodes identically; the `Tlvs` accessors look there
/// too where a meaning can still be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tlv {
    /// 0x0424: user data of up to 64 K octets, instead of short_message.
    MessagePayload(Vec<u8>),
    /// 0x001E: the SMSC's id of the message a receipt is about.
    ReceiptedMessageId(MessageId),
    /// 0x0427: a `message_state` value.
    MessageState(u8),
    /// 0x020C: reference shared by the segments of one long message.
    SarMsgRefNum(u16),
    /// 0x020E
    SarTotalSegments(u8),
    /// 0x020F: 1-based.
    SarSegmentSeqnum(u8),
    /// 0x0204: the ESME's reference for the message.
    UserMessageReference(u16),
    /// 0x0423: network type (1 ANSI-136, 2 IS-95, 3 GSM, ...) and its error code.
    NetworkErrorCode { network_type: u8, error_code: u16 },
    /// 0x0210: interface version of the SMSC (bind_*_resp).
    ScInterfaceVersion(u8),
    /// Any other tag, or a known tag whose value is malformed.
    Other { tag: u16, value: Vec<u8> },
}

impl Tlv {
    pub fn tag(&self) -> u16 {
        match self {
            Tlv::MessagePayload(_) => tag::MESSAGE_PAYLOAD,
            Tlv::ReceiptedMessageId(_) => tag::RECEIPTED_MESSAGE_ID,
            Tlv::MessageState(_) => tag::MESSAGE_STATE,
            Tlv::SarMsgRefNum(_) => tag::SAR_MSG_REF_NUM,
            Tlv::SarTotalSegments(_) => tag::SAR_TOTAL_SEGMENTS,
            Tlv::SarSegmentSeqnum(_) => tag::SAR_SEGMENT_SEQNUM,
            Tlv::UserMessageReference(_) => tag::USER_MESSAGE_REFERENCE,
            Tlv::NetworkErrorCode { .. } => tag::NETWORK_ERROR_CODE,
            Tlv::ScInterfaceVersion(_) => tag::SC_INTERFACE_VERSION,
            Tlv::Other { tag, .. } => *tag,
        }
    }

    /// The value's length on the wire.
    pub fn value_len(&self) -> usize {
        match self {
            Tlv::MessagePayload(v) | Tlv::Other { value: v, .. } => v.len(),
            Tlv::ReceiptedMessageId(id) => id.len() + 1,
            Tlv::MessageState(_)
            | Tlv::SarTotalSegments(_)
            | Tlv::SarSegmentSeqnum(_)
            | Tlv::ScInterfaceVersion(_) => 1,
            Tlv::SarMsgRefNum(_) | Tlv::UserMessageReference(_) => 2,
            Tlv::NetworkErrorCode { .. } => 3,
        }
    }

    /// Write the value (without tag and length).
    pub(crate) fn write_value(&self, mut put: impl FnMut(&[u8])) {
        match self {
            Tlv::MessagePayload(v) | Tlv::Other { value: v, .. } => put(v),
            Tlv::ReceiptedMessageId(id) => {
                put(id.as_bytes());
                put(&[0]);
            }
            Tlv::MessageState(b)
            | Tlv::SarTotalSegments(b)
            | Tlv::SarSegmentSeqnum(b)
            | Tlv::ScInterfaceVersion(b) => put(&[*b]),
            Tlv::SarMsgRefNum(v) | Tlv::UserMessageReference(v) => put(&v.to_be_bytes()),
            Tlv::NetworkErrorCode {
                network_type,
                error_code,
            } => {
                put(&[*network_type]);
                put(&error_code.to_be_bytes());
            }
        }
    }

    /// The typed form of a value read from the wire, or `Other` when the tag is unknown
    /// or the value malformed.
    pub(crate) fn parse(tag: u16, value: &[u8]) -> Tlv {
        let typed = match (tag, value) {
            (tag::MESSAGE_PAYLOAD, v) => Some(Tlv::MessagePayload(v.to_vec())),
            (tag::RECEIPTED_MESSAGE_ID, [text @ .., 0]) => {
                MessageId::new(text).ok().map(Tlv::ReceiptedMessageId)
            }
            (tag::MESSAGE_STATE, &[b]) => Some(Tlv::MessageState(b)),
            (tag::SAR_MSG_REF_NUM, &[a, b]) => Some(Tlv::SarMsgRefNum(u16::from_be_bytes([a, b]))),
            (tag::SAR_TOTAL_SEGMENTS, &[b]) => Some(Tlv::SarTotalSegments(b)),
            (tag::SAR_SEGMENT_SEQNUM, &[b]) => Some(Tlv::SarSegmentSeqnum(b)),
            (tag::USER_MESSAGE_REFERENCE, &[a, b]) => {
                Some(Tlv::UserMessageReference(u16::from_be_bytes([a, b])))
            }
            (tag::NETWORK_ERROR_CODE, &[network_type, a, b]) => Some(Tlv::NetworkErrorCode {
                network_type,
                error_code: u16::from_be_bytes([a, b]),
            }),
            (tag::SC_INTERFACE_VERSION, &[b]) => Some(Tlv::ScInterfaceVersion(b)),
            _ => None,
        };
        typed.unwrap_or_else(|| Tlv::Other {
            tag,
            value: value.to_vec(),
        })
    }
}

/// The three sar_* TLVs of one segment of a long message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sar {
    pub msg_ref_num: u16,
    pub total_segments: u8,
    pub segment_seqnum: u8,
}

/// A PDU's TLVs in wire order (repeats kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tlvs(pub Vec<Tlv>);

impl Tlvs {
    pub fn new() -> Tlvs {
        Tlvs(Vec::new())
    }

    pub fn push(&mut self, tlv: Tlv) {
        self.0.push(tlv);
    }

    /// Builder form of `push`.
    pub fn with(mut self, tlv: Tlv) -> Tlvs {
        self.push(tlv);
        self
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Tlv> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first TLV with this tag.
    pub fn get(&self, tag: u16) -> Option<&Tlv> {
        self.0.iter().find(|t| t.tag() == tag)
    }

    pub fn message_payload(&self) -> Option<&[u8]> {
        self.0.iter().find_map(|t| match t {
            Tlv::MessagePayload(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// receipted_message_id; also read from a value sent without its NUL terminator
    /// (a common fault of SMSCs), so that the receipt can still be matched.
    pub fn receipted_message_id(&self) -> Option<&[u8]> {
        self.0.iter().find_map(|t| match t {
            Tlv::ReceiptedMessageId(id) => Some(id.as_bytes()),
            Tlv::Other { tag, value } if *tag == tag::RECEIPTED_MESSAGE_ID => {
                let end = memchr::memchr(0, value).unwrap_or(value.len());
                Some(&value[..end])
            }
            _ => None,
        })
    }

    pub fn message_state(&self) -> Option<u8> {
        self.0.iter().find_map(|t| match t {
            Tlv::MessageState(s) => Some(*s),
            _ => None,
        })
    }

    pub fn user_message_reference(&self) -> Option<u16> {
        self.0.iter().find_map(|t| match t {
            Tlv::UserMessageReference(r) => Some(*r),
            _ => None,
        })
    }

    /// (network_type, error_code).
    pub fn network_error_code(&self) -> Option<(u8, u16)> {
        self.0.iter().find_map(|t| match t {
            Tlv::NetworkErrorCode {
                network_type,
                error_code,
            } => Some((*network_type, *error_code)),
            _ => None,
        })
    }

    /// The segment information, when all three sar_* TLVs are present.
    pub fn sar(&self) -> Option<Sar> {
        let mut sar = (None, None, None);
        for t in &self.0 {
            match t {
                Tlv::SarMsgRefNum(v) => sar.0 = sar.0.or(Some(*v)),
                Tlv::SarTotalSegments(v) => sar.1 = sar.1.or(Some(*v)),
                Tlv::SarSegmentSeqnum(v) => sar.2 = sar.2.or(Some(*v)),
                _ => {}
            }
        }
        Some(Sar {
            msg_ref_num: sar.0?,
            total_segments: sar.1?,
            segment_seqnum: sar.2?,
        })
    }
}

impl From<Vec<Tlv>> for Tlvs {
    fn from(list: Vec<Tlv>) -> Tlvs {
        Tlvs(list)
    }
}

impl<'a> IntoIterator for &'a Tlvs {
    type Item = &'a Tlv;
    type IntoIter = std::slice::Iter<'a, Tlv>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
