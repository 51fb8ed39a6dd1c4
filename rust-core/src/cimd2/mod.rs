//! CIMD2 (Nokia): codec (framing, parameters, text) and sans-IO sessions.
//!
//! The codec is pure: `encode` appends a framed packet to a caller's buffer, and
//! `Decoder` turns bytes, cut anywhere, into `Decoded` items. `text` converts between
//! Unicode and CIMD2's GSM 03.38 / UCS-2 forms; `convert` maps `Message` to and from
//! submit and deliver packets.

mod codec;
pub mod codes;
mod convert;
mod error;
mod packet;
pub mod session;
mod smsc_client;
pub mod text;

pub use codec::{
    checksum_of, encode, parse_frame, Decoded, Decoder, ETX, MIN_MAX_PACKET, STX, TAB,
};
pub use convert::{
    deliver_packet, message_from_packet, submit_packet, MAX_ALPHANUMERIC_ORIGINATOR,
};
pub use error::{Cimd2Error, TextError};
pub use packet::{param, Operation, Packet};
pub use smsc_client::Cimd2Client;
pub use text::{decode_text, decode_text_lossy, decode_ucs2_hex, encode_text, UserData};

#[cfg(test)]
mod tests;
