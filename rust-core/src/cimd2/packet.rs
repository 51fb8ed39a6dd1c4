//! CIMD2 operations, parameter codes and the `Packet` value type.

use super::error::Cimd2Error;

/// A CIMD2 operation code (the `ZZ` of `ZZ:NNN`).
///
/// `Other` carries codes this crate has no name for; `from_code` never puts a known
/// code in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Operation {
    Login = 1,
    Logout = 2,
    Submit = 3,
    EnquireStatus = 4,
    DeliveryRequest = 5,
    Cancel = 6,
    Set = 8,
    Get = 9,
    DeliverMessage = 20,
    DeliverStatusReport = 23,
    Alive = 40,
    LoginResponse = 51,
    LogoutResponse = 52,
    SubmitResponse = 53,
    EnquireStatusResponse = 54,
    DeliveryRequestResponse = 55,
    CancelResponse = 56,
    SetResponse = 58,
    GetResponse = 59,
    DeliverMessageResponse = 70,
    DeliverStatusReportResponse = 73,
    AliveResponse = 90,
    GeneralError = 98,
    Nack = 99,
    Other(u8) = 255,
}

impl Operation {
    /// Every named operation, in code order (for tests and tables).
    pub const ALL: [Operation; 24] = [
        Operation::Login,
        Operation::Logout,
        Operation::Submit,
        Operation::EnquireStatus,
        Operation::DeliveryRequest,
        Operation::Cancel,
        Operation::Set,
        Operation::Get,
        Operation::DeliverMessage,
        Operation::DeliverStatusReport,
        Operation::Alive,
        Operation::LoginResponse,
        Operation::LogoutResponse,
        Operation::SubmitResponse,
        Operation::EnquireStatusResponse,
        Operation::DeliveryRequestResponse,
        Operation::CancelResponse,
        Operation::SetResponse,
        Operation::GetResponse,
        Operation::DeliverMessageResponse,
        Operation::DeliverStatusReportResponse,
        Operation::AliveResponse,
        Operation::GeneralError,
        Operation::Nack,
    ];

    pub fn code(self) -> u8 {
        match self {
            Operation::Login => 1,
            Operation::Logout => 2,
            Operation::Submit => 3,
            Operation::EnquireStatus => 4,
            Operation::DeliveryRequest => 5,
            Operation::Cancel => 6,
            Operation::Set => 8,
            Operation::Get => 9,
            Operation::DeliverMessage => 20,
            Operation::DeliverStatusReport => 23,
            Operation::Alive => 40,
            Operation::LoginResponse => 51,
            Operation::LogoutResponse => 52,
            Operation::SubmitResponse => 53,
            Operation::EnquireStatusResponse => 54,
            Operation::DeliveryRequestResponse => 55,
            Operation::CancelResponse => 56,
            Operation::SetResponse => 58,
            Operation::GetResponse => 59,
            Operation::DeliverMessageResponse => 70,
            Operation::DeliverStatusReportResponse => 73,
            Operation::AliveResponse => 90,
            Operation::GeneralError => 98,
            Operation::Nack => 99,
            Operation::Other(code) => code,
        }
    }

    pub fn from_code(code: u8) -> Operation {
        match code {
            1 => Operation::Login,
            2 => Operation::Logout,
            3 => Operation::Submit,
            4 => Operation::EnquireStatus,
            5 => Operation::DeliveryRequest,
            6 => Operation::Cancel,
            8 => Operation::Set,
            9 => Operation::Get,
            20 => Operation::DeliverMessage,
            23 => Operation::DeliverStatusReport,
            40 => Operation::Alive,
            51 => Operation::LoginResponse,
            52 => Operation::LogoutResponse,
            53 => Operation::SubmitResponse,
            54 => Operation::EnquireStatusResponse,
            55 => Operation::DeliveryRequestResponse,
            56 => Operation::CancelResponse,
            58 => Operation::SetResponse,
            59 => Operation::GetResponse,
            70 => Operation::DeliverMessageResponse,
            73 => Operation::DeliverStatusReportResponse,
            90 => Operation::AliveResponse,
            98 => Operation::GeneralError,
            99 => Operation::Nack,
            other => Operation::Other(other),
        }
    }

    /// The response that answers this request (request code + 50), or `None` for a
    /// response, 98 or 99.
    pub fn response(self) -> Option<Operation> {
        let code = self.code();
        if code < 50 {
            Some(Operation::from_code(code + 50))
        } else {
            None
        }
    }

    /// Codes 50 and above answer something (including 98 general error and 99 NACK).
    pub fn is_response(self) -> bool {
        self.code() >= 50
    }
}

/// Parameter codes (`PPP`) defined by CIMD2.
pub mod param {
    pub const USER_IDENTITY: u16 = 10;
    pub const PASSWORD: u16 = 11;
    pub const SUBADDRESS: u16 = 12;
    pub const WINDOW_SIZE: u16 = 19;
    pub const DESTINATION_ADDRESS: u16 = 21;
    pub const ORIGINATING_ADDRESS: u16 = 23;
    pub const ORIGINATING_IMSI: u16 = 26;
    pub const ALPHANUMERIC_ORIGINATING_ADDRESS: u16 = 27;
    pub const ORIGINATED_VISITED_MSC: u16 = 28;
    pub const DATA_CODING_SCHEME: u16 = 30;
    pub const USER_DATA_HEADER: u16 = 32;
    pub const USER_DATA: u16 = 33;
    pub const USER_DATA_BINARY: u16 = 34;
    pub const MORE_MESSAGES_TO_SEND: u16 = 44;
    pub const VALIDITY_PERIOD_RELATIVE: u16 = 50;
    pub const VALIDITY_PERIOD_ABSOLUTE: u16 = 51;
    pub const PROTOCOL_IDENTIFIER: u16 = 52;
    pub const FIRST_DELIVERY_TIME_RELATIVE: u16 = 53;
    pub const FIRST_DELIVERY_TIME_ABSOLUTE: u16 = 54;
    pub const REPLY_PATH: u16 = 55;
    pub const STATUS_REPORT_REQUEST: u16 = 56;
    pub const CANCEL_ENABLED: u16 = 58;
    pub const CANCEL_MODE: u16 = 59;
    pub const SERVICE_CENTRE_TIMESTAMP: u16 = 60;
    pub const STATUS_CODE: u16 = 61;
    pub const STATUS_ERROR_CODE: u16 = 62;
    pub const DISCHARGE_TIME: u16 = 63;
    pub const TARIFF_CLASS: u16 = 64;
    pub const SERVICE_DESCRIPTION: u16 = 65;
    pub const MESSAGE_COUNT: u16 = 66;
    pub const PRIORITY: u16 = 67;
    pub const DELIVERY_REQUEST_MODE: u16 = 68;
    pub const SERVICE_CENTRE_ADDRESS: u16 = 69;
    pub const GET_PARAMETER: u16 = 500;
    pub const MC_TIME: u16 = 501;
    pub const ERROR_CODE: u16 = 900;
    pub const ERROR_TEXT: u16 = 901;
}

/// Where one parameter's value sits in `Packet::data`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) code: u16,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// One CIMD2 packet: operation, packet number and its parameters in wire order
/// (unknown codes and repeats kept).
///
/// Values live in one byte buffer indexed by a small slot list, so decoding a packet
/// costs one copy of its parameter bytes. Values must not contain STX, ETX or TAB;
/// `try_push` checks that, `push` leaves it to the caller (as `encode` writes values
/// verbatim).
#[derive(Clone)]
pub struct Packet {
    pub op: Operation,
    pub number: u8,
    data: Vec<u8>,
    slots: Vec<Slot>,
}

impl Packet {
    pub fn new(op: Operation, number: u8) -> Packet {
        Packet {
            op,
            number,
            data: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Builder form of `push`.
    pub fn with(mut self, code: u16, value: impl AsRef<[u8]>) -> Packet {
        self.push(code, value);
        self
    }

    /// Append a parameter. The code must fit in three digits and the value must not
    /// contain STX, ETX or TAB (see `try_push`).
    pub fn push(&mut self, code: u16, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let start = self.data.len();
        self.data.extend_from_slice(value);
        self.slots.push(Slot {
            code,
            start,
            end: self.data.len(),
        });
    }

    /// `push` that refuses a code above 999 or a value with STX, ETX or TAB.
    pub fn try_push(&mut self, code: u16, value: impl AsRef<[u8]>) -> Result<(), Cimd2Error> {
        let value = value.as_ref();
        check_param(code, value)?;
        self.push(code, value);
        Ok(())
    }

    /// Append a parameter whose value is written straight into the packet's buffer.
    pub(crate) fn push_with(&mut self, code: u16, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        write(&mut self.data);
        self.slots.push(Slot {
            code,
            start,
            end: self.data.len(),
        });
    }

    /// Append a parameter whose value is a decimal number.
    pub fn push_u32(&mut self, code: u16, value: u32) {
        self.push_with(code, |out| write_decimal(out, value));
    }

    /// Builder form of `push_u32`.
    pub fn with_u32(mut self, code: u16, value: u32) -> Packet {
        self.push_u32(code, value);
        self
    }

    /// Value of the first parameter with this code.
    pub fn get(&self, code: u16) -> Option<&[u8]> {
        self.slots
            .iter()
            .find(|s| s.code == code)
            .map(|s| &self.data[s.start..s.end])
    }

    /// Value of the first parameter with this code, when it is UTF-8.
    pub fn get_str(&self, code: u16) -> Option<&str> {
        self.get(code).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Value of the first parameter with this code, when it is a decimal `u32`.
    pub fn get_u32(&self, code: u16) -> Option<u32> {
        self.get(code).and_then(parse_decimal)
    }

    /// All parameters in wire order.
    pub fn params(&self) -> impl Iterator<Item = (u16, &[u8])> {
        self.slots
            .iter()
            .map(move |s| (s.code, &self.data[s.start..s.end]))
    }

    pub fn param_count(&self) -> usize {
        self.slots.len()
    }

    /// The 900 error code, when present and numeric.
    pub fn error_code(&self) -> Option<u32> {
        self.get_u32(param::ERROR_CODE)
    }

    /// The 901 error text, when present and UTF-8.
    pub fn error_text(&self) -> Option<&str> {
        self.get_str(param::ERROR_TEXT)
    }

    /// Check every parameter as `try_push` would (for packets built with `push`).
    pub fn validate(&self) -> Result<(), Cimd2Error> {
        self.params()
            .try_for_each(|(code, value)| check_param(code, value))
    }

    /// Drop all parameters, keeping the buffers for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
    }

    /// Build from a decoded frame: `region` holds `PPP:value<TAB>...` and `slots`
    /// index into it. Used by the decoder only.
    pub(crate) fn from_parts(op: Operation, number: u8, data: Vec<u8>, slots: Vec<Slot>) -> Packet {
        Packet {
            op,
            number,
            data,
            slots,
        }
    }
}

fn check_param(code: u16, value: &[u8]) -> Result<(), Cimd2Error> {
    if code > 999 {
        return Err(Cimd2Error::ParameterCode { code });
    }
    match value
        .iter()
        .find(|&&b| b == 0x02 || b == 0x03 || b == b'\t')
    {
        Some(&byte) => Err(Cimd2Error::ReservedByte { code, byte }),
        None => Ok(()),
    }
}

/// Parse an unsigned decimal (1-10 ASCII digits, no sign) that fits in `u32`.
pub(crate) fn parse_decimal(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

pub(crate) fn write_decimal(out: &mut Vec<u8>, value: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl PartialEq for Packet {
    /// Equal when operation, number and the parameter sequence are equal (however the
    /// values are laid out in memory).
    fn eq(&self, other: &Packet) -> bool {
        self.op == other.op
            && self.number == other.number
            && self.slots.len() == other.slots.len()
            && self.params().eq(other.params())
    }
}

impl Eq for Packet {}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packet({:02}:{:03}", self.op.code(), self.number)?;
        for (code, value) in self.params() {
            write!(
                f,
                " {code:03}:{}",
                String::from_utf8_lossy(value).escape_debug()
            )?;
        }
        f.write_str(")")
    }
}
