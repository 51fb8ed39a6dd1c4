//! Typed errors of the CIMD2 codec: every variant says what went wrong and where.

use thiserror::Error;

use crate::message::MessageError;

/// Why a packet could not be decoded, built or converted.
///
/// Byte offsets count from the packet's STX (offset 0).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Cimd2Error {
    #[error("packet longer than the {max}-byte limit")]
    TooLong { max: usize },
    #[error("packet has no ETX: a new STX arrived at byte {offset}")]
    MissingEtx { offset: usize },
    #[error("bad packet header at byte {offset}: expected `ZZ:NNN<TAB>`")]
    BadHeader { offset: usize },
    #[error("packet number {value} at byte {offset} is above 255")]
    NumberOutOfRange { offset: usize, value: u16 },
    #[error("malformed parameter at byte {offset}: expected `PPP:value<TAB>`")]
    BadParameter { offset: usize },
    #[error("bytes after the last TAB at byte {offset} are not a two-digit hex checksum")]
    BadTrailer { offset: usize },
    #[error("checksum mismatch: packet carries {received:02X}, its bytes sum to {computed:02X}")]
    Checksum { received: u8, computed: u8 },
    #[error("parameter code {code} does not fit in three digits")]
    ParameterCode { code: u16 },
    #[error(
        "value of parameter {code:03} contains byte 0x{byte:02X} (STX, ETX and TAB are reserved)"
    )]
    ReservedByte { code: u16, byte: u8 },
    #[error("operation {op:02} where {expected} was expected")]
    UnexpectedOperation { op: u8, expected: &'static str },
    #[error("parameter {code:03} is missing")]
    MissingParameter { code: u16 },
    #[error("parameter {code:03} is invalid: {reason}")]
    InvalidParameter { code: u16, reason: &'static str },
    #[error("parameter {code:03}: {source}")]
    Text {
        code: u16,
        #[source]
        source: TextError,
    },
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Why text could not be converted to or from its CIMD2 / GSM 03.38 / UCS-2 form.
///
/// Offsets count from the start of the value being decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TextError {
    #[error("text needs {septets} GSM 7-bit septets; one SMS holds 160")]
    TooLongGsm { septets: usize },
    #[error("text needs {units} UCS-2 code units; one SMS holds 70")]
    TooLongUcs2 { units: usize },
    #[error("binary user data of {octets} octets; one SMS holds 140")]
    TooLongBinary { octets: usize },
    #[error("byte 0x{byte:02X} at offset {offset} is not a GSM 03.38 code")]
    NotGsm { offset: usize, byte: u8 },
    #[error("unknown CIMD2 escape `_{}{}` at offset {offset}", char::from(.escape[0]), char::from(.escape[1]))]
    UnknownEscape { offset: usize, escape: [u8; 2] },
    #[error("CIMD2 escape `_` at offset {offset} is cut short")]
    TruncatedEscape { offset: usize },
    #[error("GSM escape at offset {offset} is not followed by an extension-table code")]
    BadExtension { offset: usize },
    #[error("byte 0x{byte:02X} at offset {offset} is not a hex digit")]
    NotHex { offset: usize, byte: u8 },
    #[error("{len} hex digits: an even number is required")]
    OddHex { len: usize },
    #[error("UCS-2 data of {octets} octets is not a whole number of code units")]
    OddUcs2 { octets: usize },
    #[error("unpaired UTF-16 surrogate at octet {offset}")]
    UnpairedSurrogate { offset: usize },
}
