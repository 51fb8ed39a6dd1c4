//! Typed errors of the SMPP codec.
//!
//! Decoding splits in two: a `FramingError` (command_length below 16 or above the
//! decoder's maximum) leaves the stream unsynchronised and is fatal for the connection;
//! a `DecodeError::Body` is one well-framed PDU whose body is wrong, carries its header,
//! and the session answers it (`DecodeError::reply`) and carries on.

use thiserror::Error;

use super::status::CommandStatus;
use crate::message::MessageError;
use crate::sms::TextError;

/// A mandatory field of a PDU body, named as in SMPP 3.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    SystemId,
    Password,
    SystemType,
    InterfaceVersion,
    AddrTon,
    AddrNpi,
    AddressRange,
    ServiceType,
    SourceAddrTon,
    SourceAddrNpi,
    SourceAddr,
    DestAddrTon,
    DestAddrNpi,
    DestinationAddr,
    EsmeAddrTon,
    EsmeAddrNpi,
    EsmeAddr,
    EsmClass,
    ProtocolId,
    PriorityFlag,
    ScheduleDeliveryTime,
    ValidityPeriod,
    RegisteredDelivery,
    ReplaceIfPresentFlag,
    DataCoding,
    SmDefaultMsgId,
    SmLength,
    ShortMessage,
    MessageId,
    FinalDate,
    MessageState,
    ErrorCode,
}

impl Field {
    /// The specification's name of the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::SystemId => "system_id",
            Field::Password => "password",
            Field::SystemType => "system_type",
            Field::InterfaceVersion => "interface_version",
            Field::AddrTon => "addr_ton",
            Field::AddrNpi => "addr_npi",
            Field::AddressRange => "address_range",
            Field::ServiceType => "service_type",
            Field::SourceAddrTon => "source_addr_ton",
            Field::SourceAddrNpi => "source_addr_npi",
            Field::SourceAddr => "source_addr",
            Field::DestAddrTon => "dest_addr_ton",
            Field::DestAddrNpi => "dest_addr_npi",
            Field::DestinationAddr => "destination_addr",
            Field::EsmeAddrTon => "esme_addr_ton",
            Field::EsmeAddrNpi => "esme_addr_npi",
            Field::EsmeAddr => "esme_addr",
            Field::EsmClass => "esm_class",
            Field::ProtocolId => "protocol_id",
            Field::PriorityFlag => "priority_flag",
            Field::ScheduleDeliveryTime => "schedule_delivery_time",
            Field::ValidityPeriod => "validity_period",
            Field::RegisteredDelivery => "registered_delivery",
            Field::ReplaceIfPresentFlag => "replace_if_present_flag",
            Field::DataCoding => "data_coding",
            Field::SmDefaultMsgId => "sm_default_msg_id",
            Field::SmLength => "sm_length",
            Field::ShortMessage => "short_message",
            Field::MessageId => "message_id",
            Field::FinalDate => "final_date",
            Field::MessageState => "message_state",
            Field::ErrorCode => "error_code",
        }
    }

    /// The command_status that reports a bad value in this field.
    pub fn status(self) -> CommandStatus {
        match self {
            Field::SystemId => CommandStatus::ESME_RINVSYSID,
            Field::Password => CommandStatus::ESME_RINVPASWD,
            Field::SystemType => CommandStatus::ESME_RINVSYSTYP,
            Field::ServiceType => CommandStatus::ESME_RINVSERTYP,
            Field::SourceAddrTon => CommandStatus::ESME_RINVSRCTON,
            Field::SourceAddrNpi => CommandStatus::ESME_RINVSRCNPI,
            Field::SourceAddr => CommandStatus::ESME_RINVSRCADR,
            Field::DestAddrTon => CommandStatus::ESME_RINVDSTTON,
            Field::DestAddrNpi => CommandStatus::ESME_RINVDSTNPI,
            Field::DestinationAddr => CommandStatus::ESME_RINVDSTADR,
            Field::EsmClass => CommandStatus::ESME_RINVESMCLASS,
            Field::PriorityFlag => CommandStatus::ESME_RINVPRTFLG,
            Field::ScheduleDeliveryTime => CommandStatus::ESME_RINVSCHED,
            Field::ValidityPeriod => CommandStatus::ESME_RINVEXPIRY,
            Field::RegisteredDelivery => CommandStatus::ESME_RINVREGDLVFLG,
            Field::ReplaceIfPresentFlag => CommandStatus::ESME_RINVREPFLAG,
            Field::SmDefaultMsgId => CommandStatus::ESME_RINVDFTMSGID,
            Field::SmLength | Field::ShortMessage => CommandStatus::ESME_RINVMSGLEN,
            Field::MessageId => CommandStatus::ESME_RINVMSGID,
            Field::InterfaceVersion
            | Field::AddrTon
            | Field::AddrNpi
            | Field::AddressRange
            | Field::EsmeAddrTon
            | Field::EsmeAddrNpi
            | Field::EsmeAddr
            | Field::ProtocolId
            | Field::DataCoding
            | Field::FinalDate
            | Field::MessageState
            | Field::ErrorCode => CommandStatus::ESME_RINVPARLEN,
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a value does not fit its field (a C-octet string, a time, an address).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FieldError {
    #[error("longer than {max} octets")]
    TooLong { max: usize },
    #[error("no NUL terminator before the body ends")]
    MissingNul,
    #[error("NUL octet at {offset} inside the value")]
    Nul { offset: usize },
    #[error("{len} characters: a time is empty or 16 characters")]
    TimeLength { len: usize },
    #[error("{reason}")]
    Invalid { reason: &'static str },
}

/// Why a PDU body could not be decoded or encoded, or a message converted.
///
/// Offsets count from the start of the body (the octet after the 16-octet header).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SmppError {
    #[error("unknown command_id 0x{command_id:08X}")]
    UnknownCommandId { command_id: u32 },
    #[error("body ends before {field}")]
    Truncated { field: Field },
    #[error("{field}: {error}")]
    Field { field: Field, error: FieldError },
    #[error("sm_length {sm_length} runs past the body ({available} octets left)")]
    SmLength { sm_length: u8, available: usize },
    #[error("TLV at body offset {offset} is cut short")]
    TruncatedTlv { offset: usize },
    #[error("{count} octets after the last field of the body")]
    TrailingBytes { count: usize },
    #[error("TLV 0x{tag:04X} value of {len} octets: at most 65535")]
    TlvTooLong { tag: u16, len: usize },
    #[error("PDU of {len} octets does not fit command_length")]
    PduTooLong { len: usize },
    #[error(transparent)]
    Value(#[from] FieldError),
    #[error("data_coding 0x{data_coding:02X} does not hold text")]
    NotText { data_coding: u8 },
    #[error("user data header of {udh_len} octets runs past the {len}-octet user data")]
    BadUdh { udh_len: usize, len: usize },
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Message(#[from] MessageError),
}

impl SmppError {
    pub(crate) fn field(field: Field, error: FieldError) -> SmppError {
        SmppError::Field { field, error }
    }

    /// The command_status a reply to the PDU that caused this error carries.
    pub fn status(&self) -> CommandStatus {
        match self {
            SmppError::UnknownCommandId { .. } => CommandStatus::ESME_RINVCMDID,
            SmppError::Truncated { .. }
            | SmppError::TrailingBytes { .. }
            | SmppError::PduTooLong { .. } => CommandStatus::ESME_RINVCMDLEN,
            SmppError::Field { field, .. } => field.status(),
            SmppError::SmLength { .. } => CommandStatus::ESME_RINVMSGLEN,
            SmppError::TruncatedTlv { .. } | SmppError::TlvTooLong { .. } => {
                CommandStatus::ESME_RINVOPTPARSTREAM
            }
            SmppError::Value(_)
            | SmppError::NotText { .. }
            | SmppError::BadUdh { .. }
            | SmppError::Text(_)
            | SmppError::Message(_) => CommandStatus::ESME_RSYSERR,
        }
    }
}

/// command_length outside 16..=max: the stream can no longer be cut into PDUs.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    #[error("command_length {command_length} is shorter than the 16-octet header")]
    TooShort { command_length: u32 },
    #[error("command_length {command_length} is above the {max}-octet limit")]
    TooLong { command_length: u32, max: usize },
    #[error("command_length {command_length} but the frame holds {frame_len} octets")]
    LengthMismatch {
        command_length: u32,
        frame_len: usize,
    },
}
