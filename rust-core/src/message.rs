//! The message that travels through every part of smslink: addresses, coding and a
//! payload held inline, so a ring slot owns its storage and steady state never allocates.

use thiserror::Error;

/// Longest address CIMD2 carries (021 destination, 023 originator: 20 characters).
pub const MAX_ADDRESS: usize = 20;
/// Largest payload a slot stores: 160 characters of UTF-8 at up to 4 bytes each.
pub const MAX_PAYLOAD: usize = 640;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MessageError {
    #[error("address {0:?} is longer than {MAX_ADDRESS} characters")]
    AddressTooLong(String),
    #[error("address {0:?} contains a character other than ASCII letters, digits, '+' or '-'")]
    AddressCharacter(String),
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte slot")]
    PayloadTooLong(usize),
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

/// One SMS: sender, recipient, coding, payload, and an opaque reference the
/// application chose (echoed back with every status change).
#[derive(Clone)]
pub struct Message {
    pub from: Address,
    pub to: Address,
    pub coding: Coding,
    pub client_ref: u64,
    payload_len: u16,
    payload: [u8; MAX_PAYLOAD],
}

impl Message {
    /// An empty message (used to initialise slots).
    pub const EMPTY: Message = Message {
        from: Address::EMPTY,
        to: Address::EMPTY,
        coding: Coding::Text,
        client_ref: 0,
        payload_len: 0,
        payload: [0; MAX_PAYLOAD],
    };

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
        Ok(m)
    }

    /// Replace the payload in place (no allocation).
    pub fn set_payload(&mut self, data: &[u8]) -> Result<(), MessageError> {
        if data.len() > MAX_PAYLOAD {
            return Err(MessageError::PayloadTooLong(data.len()));
        }
        self.payload[..data.len()].copy_from_slice(data);
        self.payload_len = data.len() as u16;
        Ok(())
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.payload_len as usize]
    }

    /// The text, when the coding is `Text` (always valid UTF-8 when built by `text`).
    pub fn text_str(&self) -> Option<&str> {
        match self.coding {
            Coding::Text => std::str::from_utf8(self.payload()).ok(),
            Coding::Binary => None,
        }
    }

    /// Copy everything from `other` without touching the unused tail of the buffer.
    pub fn copy_from(&mut self, other: &Message) {
        self.from = other.from;
        self.to = other.to;
        self.coding = other.coding;
        self.client_ref = other.client_ref;
        let n = other.payload_len as usize;
        self.payload[..n].copy_from_slice(&other.payload[..n]);
        self.payload_len = other.payload_len;
    }
}

// Equality looks at the used part of the payload only: `copy_from` leaves the tail
// of the buffer as it was.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.from == other.from
            && self.to == other.to
            && self.coding == other.coding
            && self.client_ref == other.client_ref
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
            None => d.field("binary_len", &self.payload_len),
        };
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
    fn copy_from_copies_only_the_used_part() {
        let a = Message::text("1", "2", "abc").unwrap();
        let mut b = Message::text("3", "4", "zzzzzz").unwrap();
        b.copy_from(&a);
        assert_eq!(a, b.clone());
        assert_eq!(b.text_str(), Some("abc"));
    }
}
