//! The field types of SMPP PDUs: C-octet strings with their SMPP 3.4 sizes in the
//! type, times and SME addresses. Below `pdu` and `tlv`, which both use them.

use super::error::FieldError;

/// A C-octet string of at most `N` octets *including* its NUL terminator (the sizes
/// SMPP 3.4 gives), held inline: no allocation, and the limit is part of the type.
#[derive(Clone, Copy)]
pub struct COctetString<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> COctetString<N> {
    /// Longest value, NUL excluded.
    pub const MAX_LEN: usize = {
        assert!(N >= 1 && N <= 256, "C-octet string sizes are 1..=256");
        N - 1
    };

    pub const EMPTY: COctetString<N> = COctetString {
        len: 0,
        bytes: [0; N],
    };

    /// A value of at most `MAX_LEN` octets with no NUL inside.
    pub fn new(value: impl AsRef<[u8]>) -> Result<COctetString<N>, FieldError> {
        let value = value.as_ref();
        if value.len() > Self::MAX_LEN {
            return Err(FieldError::TooLong { max: Self::MAX_LEN });
        }
        if let Some(offset) = memchr::memchr(0, value) {
            return Err(FieldError::Nul { offset });
        }
        let mut bytes = [0; N];
        bytes[..value.len()].copy_from_slice(value);
        Ok(COctetString {
            len: value.len() as u8,
            bytes,
        })
    }

    /// A value the caller has checked: shorter than `N` octets, no NUL.
    pub(crate) fn from_checked(value: &[u8]) -> COctetString<N> {
        debug_assert!(value.len() < N && !value.contains(&0));
        let mut bytes = [0; N];
        let len = value.len().min(Self::MAX_LEN);
        bytes[..len].copy_from_slice(&value[..len]);
        COctetString {
            len: len as u8,
            bytes,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The value as text, when it is UTF-8 (SMPP strings are ASCII in practice).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for COctetString<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> PartialEq for COctetString<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for COctetString<N> {}

impl<const N: usize> std::hash::Hash for COctetString<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl<const N: usize> std::fmt::Debug for COctetString<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl<const N: usize> std::fmt::Display for COctetString<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl<const N: usize> TryFrom<&str> for COctetString<N> {
    type Error = FieldError;
    fn try_from(value: &str) -> Result<Self, FieldError> {
        COctetString::new(value)
    }
}

/// system_id (bind, bind_resp, outbind).
pub type SystemId = COctetString<16>;
pub type Password = COctetString<9>;
pub type SystemType = COctetString<13>;
pub type ServiceType = COctetString<6>;
/// message_id of submit_sm_resp, query_sm, cancel_sm, receipted_message_id...
pub type MessageId = COctetString<65>;

/// Time length SMPP 3.4 allows besides empty: `YYMMDDhhmmsstnnp`.
pub const TIME_LEN: usize = 16;

/// schedule_delivery_time, validity_period, final_date: empty, or 16 characters in
/// SMPP's absolute (`YYMMDDhhmmsstnn+`/`-`) or relative (`...R`) form. Only the length
/// is checked; the characters are kept as they came.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SmppTime(COctetString<17>);

impl SmppTime {
    pub const EMPTY: SmppTime = SmppTime(COctetString::EMPTY);

    pub fn new(value: impl AsRef<[u8]>) -> Result<SmppTime, FieldError> {
        SmppTime::from_string(COctetString::new(value)?)
    }

    pub(crate) fn from_string(value: COctetString<17>) -> Result<SmppTime, FieldError> {
        match value.len() {
            0 | TIME_LEN => Ok(SmppTime(value)),
            len => Err(FieldError::TimeLength { len }),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Relative form (`...R`): an interval from now rather than a date.
    pub fn is_relative(&self) -> bool {
        self.as_bytes().last() == Some(&b'R')
    }
}

impl std::fmt::Debug for SmppTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An SME address: type of number, numbering plan and the address itself, a C-octet
/// string of `N` octets with its NUL (21 in most PDUs, 65 in data_sm and
/// alert_notification, 41 for a bind's address_range).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SmeAddr<const N: usize> {
    pub ton: u8,
    pub npi: u8,
    pub addr: COctetString<N>,
}

impl<const N: usize> SmeAddr<N> {
    pub fn new(ton: u8, npi: u8, addr: impl AsRef<[u8]>) -> Result<SmeAddr<N>, FieldError> {
        Ok(SmeAddr {
            ton,
            npi,
            addr: COctetString::new(addr)?,
        })
    }
}
