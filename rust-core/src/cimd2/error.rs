//! Typed errors of the CIMD2 codec: every variant says what went wrong and where.

use thiserror::Error;

use crate::message::MessageError;
pub use crate::sms::TextError;

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
