//! What every SMSC protocol shares: the GSM 03.38 alphabet, septet packing, UCS-2 and
//! Latin-1 text, the limits of one SMS, and concatenation (splitting a long message
//! into parts with a user data header, and reading that header back), and phone
//! numbers in one normal form. Each protocol adds only its own wire form
//! (CIMD2's `_xx` escapes and hex, SMPP's octets and data_coding values).

pub mod concat;
pub mod number;
pub mod reassembly;
pub mod split;
pub mod text;

/// Longest alphanumeric originator an SMS carries (GSM 03.40 TP-OA: 11 characters).
pub const MAX_ALPHANUMERIC_ORIGINATOR: usize = 11;

pub use split::{parts_needed, ConcatError};
pub use text::TextError;
