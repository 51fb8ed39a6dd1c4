//! Messages as C sees them: the plain struct copied in and out, its sizes and
//! codings, and the receipt a send gives back.

use std::ffi::c_char;

use smslink_core::message::{Coding, Message, MAX_ADDRESS, MAX_PAYLOAD};

use crate::abi::{fill_c_array, read_c_array, Error};
use crate::result::smslink_result::SMSLINK_BUFFER_TOO_SMALL;

/// Bytes of an address array: 20 characters and the NUL.
pub const SMSLINK_ADDRESS_SIZE: usize = 21;
/// Largest payload `smslink_message` holds, in bytes. Longer messages (up to
/// SMSLINK_MAX_LONG_PAYLOAD) are sent with `smslink_node_send_text` or
/// `smslink_node_send_binary` and received through `smslink_node_received_payload`.
pub const SMSLINK_MAX_PAYLOAD: usize = 640;
/// Largest payload of any message, in bytes (60 KiB: a concatenated SMS of up to
/// 255 parts).
pub const SMSLINK_MAX_LONG_PAYLOAD: usize = 61440;
/// Bytes of a payload array: the payload and a NUL after it (so text can be printed).
pub const SMSLINK_PAYLOAD_SIZE: usize = 641;

/// `smslink_message.coding`: UTF-8 text.
pub const SMSLINK_CODING_TEXT: u32 = 0;
/// `smslink_message.coding`: raw octets.
pub const SMSLINK_CODING_BINARY: u32 = 1;

const _: () = assert!(SMSLINK_ADDRESS_SIZE == MAX_ADDRESS + 1);
const _: () = assert!(SMSLINK_PAYLOAD_SIZE == SMSLINK_MAX_PAYLOAD + 1);
// The core carries longer messages than this struct holds: converting one fails.
const _: () = assert!(SMSLINK_MAX_PAYLOAD <= MAX_PAYLOAD);
const _: () = assert!(SMSLINK_MAX_LONG_PAYLOAD == MAX_PAYLOAD);

/// One SMS as C sees it. Every field is plain data, copied in and out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smslink_message {
    /// Sender, NUL-terminated (digits, ASCII letters, '+', '-', ' ').
    pub from: [c_char; SMSLINK_ADDRESS_SIZE],
    /// Recipient, NUL-terminated; routes the message on `smslink_node_send`.
    pub to: [c_char; SMSLINK_ADDRESS_SIZE],
    /// SMSLINK_CODING_TEXT (payload is UTF-8) or SMSLINK_CODING_BINARY.
    pub coding: u32,
    /// The application's own reference, echoed back in every status event.
    pub client_ref: u64,
    /// Bytes used in `payload` (at most SMSLINK_MAX_PAYLOAD).
    pub payload_len: u32,
    /// The payload; smslink writes a NUL after it in messages it hands out.
    pub payload: [u8; SMSLINK_PAYLOAD_SIZE],
}

impl smslink_message {
    /// The C form of `m`; an error (never a cut) when its payload is longer than
    /// SMSLINK_MAX_PAYLOAD.
    pub(crate) fn from_message(m: &Message) -> Result<smslink_message, Error> {
        if m.payload().len() > SMSLINK_MAX_PAYLOAD {
            return Err(Error::new(
                SMSLINK_BUFFER_TOO_SMALL,
                format!(
                    "message of {} bytes exceeds the {SMSLINK_MAX_PAYLOAD} bytes of smslink_message",
                    m.payload().len()
                ),
            ));
        }
        Ok(Self::with_payload(m, m.payload()))
    }

    /// The C form of `m` with its payload when it fits, else with an empty one (the
    /// caller copies a long payload out another way).
    pub(crate) fn from_message_or_envelope(m: &Message) -> smslink_message {
        let payload = if m.payload().len() > SMSLINK_MAX_PAYLOAD {
            &[][..]
        } else {
            m.payload()
        };
        Self::with_payload(m, payload)
    }

    fn with_payload(m: &Message, payload: &[u8]) -> smslink_message {
        let mut out = smslink_message {
            from: [0; SMSLINK_ADDRESS_SIZE],
            to: [0; SMSLINK_ADDRESS_SIZE],
            coding: match m.coding {
                Coding::Text => SMSLINK_CODING_TEXT,
                Coding::Binary => SMSLINK_CODING_BINARY,
            },
            client_ref: m.client_ref,
            payload_len: payload.len() as u32,
            payload: [0; SMSLINK_PAYLOAD_SIZE],
        };
        fill_c_array(&mut out.from, m.from.as_str());
        fill_c_array(&mut out.to, m.to.as_str());
        out.payload[..payload.len()].copy_from_slice(payload);
        out
    }

    pub(crate) fn parse(&self) -> Result<Message, Error> {
        let from = read_c_array(&self.from, "from")?;
        let to = read_c_array(&self.to, "to")?;
        let len = self.payload_len as usize;
        if len > SMSLINK_MAX_PAYLOAD {
            return Err(Error::invalid(format!(
                "payload_len {len} exceeds {SMSLINK_MAX_PAYLOAD}"
            )));
        }
        let payload = &self.payload[..len];
        let mut m = match self.coding {
            SMSLINK_CODING_TEXT => {
                let text = std::str::from_utf8(payload)
                    .map_err(|_| Error::invalid("text payload is not UTF-8"))?;
                Message::text(from, to, text)
            }
            SMSLINK_CODING_BINARY => Message::binary(from, to, payload),
            other => return Err(Error::invalid(format!("unknown coding {other}"))),
        }
        .map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = self.client_ref;
        Ok(m)
    }
}

/// Where a sent message went: the link and its sequence number there (status events
/// and the peer's acknowledgement name it by this pair).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct smslink_receipt {
    pub link: u32,
    pub seq: u64,
}
