//! SMPP 3.4 PDUs as typed values: command ids, the header, C-octet strings with their
//! maximum lengths, addresses, and one struct per body.

use super::status::CommandStatus;
use super::tlv::Tlvs;

/// Octets in a PDU header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;
/// Longest short_message (sm_length is one octet, 255 is reserved by SMPP 3.4).
pub const MAX_SHORT_MESSAGE: usize = 254;
/// Bit of command_id that marks a response.
const RESPONSE_BIT: u32 = 0x8000_0000;

macro_rules! commands {
    ($($variant:ident = $value:literal, $name:literal;)*) => {
        /// A command_id this codec decodes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum CommandId {
            $($variant = $value,)*
        }

        impl CommandId {
            /// Every supported command.
            pub const ALL: &'static [CommandId] = &[$(CommandId::$variant,)*];

            pub fn from_u32(value: u32) -> Option<CommandId> {
                match value {
                    $($value => Some(CommandId::$variant),)*
                    _ => None,
                }
            }

            /// The specification's name, e.g. `submit_sm_resp`.
            pub fn name(self) -> &'static str {
                match self {
                    $(CommandId::$variant => $name,)*
                }
            }
        }
    };
}

commands! {
    GenericNack = 0x8000_0000, "generic_nack";
    BindReceiver = 0x0000_0001, "bind_receiver";
    BindReceiverResp = 0x8000_0001, "bind_receiver_resp";
    BindTransmitter = 0x0000_0002, "bind_transmitter";
    BindTransmitterResp = 0x8000_0002, "bind_transmitter_resp";
    QuerySm = 0x0000_0003, "query_sm";
    QuerySmResp = 0x8000_0003, "query_sm_resp";
    SubmitSm = 0x0000_0004, "submit_sm";
    SubmitSmResp = 0x8000_0004, "submit_sm_resp";
    DeliverSm = 0x0000_0005, "deliver_sm";
    DeliverSmResp = 0x8000_0005, "deliver_sm_resp";
    Unbind = 0x0000_0006, "unbind";
    UnbindResp = 0x8000_0006, "unbind_resp";
    ReplaceSm = 0x0000_0007, "replace_sm";
    ReplaceSmResp = 0x8000_0007, "replace_sm_resp";
    CancelSm = 0x0000_0008, "cancel_sm";
    CancelSmResp = 0x8000_0008, "cancel_sm_resp";
    BindTransceiver = 0x0000_0009, "bind_transceiver";
    BindTransceiverResp = 0x8000_0009, "bind_transceiver_resp";
    Outbind = 0x0000_000B, "outbind";
    EnquireLink = 0x0000_0015, "enquire_link";
    EnquireLinkResp = 0x8000_0015, "enquire_link_resp";
    AlertNotification = 0x0000_0102, "alert_notification";
    DataSm = 0x0000_0103, "data_sm";
    DataSmResp = 0x8000_0103, "data_sm_resp";
}

impl CommandId {
    pub fn value(self) -> u32 {
        self as u32
    }

    /// generic_nack and every `*_resp`.
    pub fn is_response(self) -> bool {
        self.value() & RESPONSE_BIT != 0
    }

    /// The response that answers this request; `None` for responses and for the
    /// requests that get none (outbind, alert_notification).
    pub fn response(self) -> Option<CommandId> {
        match self {
            CommandId::Outbind | CommandId::AlertNotification => None,
            id if id.is_response() => None,
            id => CommandId::from_u32(id.value() | RESPONSE_BIT),
        }
    }
}

/// The 16-octet header as read from the wire (command_id may be one this codec does
/// not know). Decoding errors carry it so that the session can answer the PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub command_length: u32,
    pub command_id: u32,
    pub command_status: CommandStatus,
    pub sequence_number: u32,
}

impl Header {
    /// Read a header from the first 16 octets of `bytes` (`None` when shorter).
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let b = bytes.get(i..i + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        Some(Header {
            command_length: word(0)?,
            command_id: word(4)?,
            command_status: CommandStatus(word(8)?),
            sequence_number: word(12)?,
        })
    }

    pub fn command(&self) -> Option<CommandId> {
        CommandId::from_u32(self.command_id)
    }

    /// The command's name, or `command 0x...` when unknown.
    pub fn command_name(&self) -> std::borrow::Cow<'static, str> {
        match self.command() {
            Some(id) => id.name().into(),
            None => format!("command 0x{:08X}", self.command_id).into(),
        }
    }

    /// What to send back when this PDU cannot be served: the matching `*_resp` (empty
    /// body) for a known request, generic_nack for anything else (an unknown command
    /// id gets ESME_RINVCMDID whatever `status` says). `None` for generic_nack, which
    /// is never answered. A session may prefer to drop a broken response instead of
    /// nacking it.
    pub fn error_reply(&self, status: CommandStatus) -> Option<Pdu> {
        let (body, status) = match self.command() {
            Some(CommandId::GenericNack) => return None,
            Some(id) => match id.response() {
                Some(resp) => (Body::empty(resp), status),
                None => (Body::GenericNack, status),
            },
            None => (Body::GenericNack, CommandStatus::ESME_RINVCMDID),
        };
        Some(Pdu {
            sequence_number: self.sequence_number,
            command_status: status,
            body,
        })
    }
}

pub use super::fields::{
    COctetString, MessageId, Password, ServiceType, SmeAddr, SmppTime, SystemId, SystemType,
    TIME_LEN,
};

/// Type of number (source_addr_ton, dest_addr_ton, addr_ton).
pub mod ton {
    pub const UNKNOWN: u8 = 0;
    pub const INTERNATIONAL: u8 = 1;
    pub const NATIONAL: u8 = 2;
    pub const NETWORK_SPECIFIC: u8 = 3;
    pub const SUBSCRIBER_NUMBER: u8 = 4;
    pub const ALPHANUMERIC: u8 = 5;
    pub const ABBREVIATED: u8 = 6;
}

/// Numbering plan indicator (source_addr_npi, dest_addr_npi, addr_npi).
pub mod npi {
    pub const UNKNOWN: u8 = 0;
    /// E.163 / E.164.
    pub const ISDN: u8 = 1;
    pub const DATA: u8 = 3;
    pub const TELEX: u8 = 4;
    pub const LAND_MOBILE: u8 = 6;
    pub const NATIONAL: u8 = 8;
    pub const PRIVATE: u8 = 9;
    pub const ERMES: u8 = 10;
    pub const INTERNET: u8 = 14;
    pub const WAP_CLIENT_ID: u8 = 18;
}

/// esm_class bits.
pub mod esm_class {
    /// Message type bits (2-5).
    pub const MESSAGE_TYPE_MASK: u8 = 0x3C;
    pub const SMSC_DELIVERY_RECEIPT: u8 = 0x04;
    pub const SME_DELIVERY_ACK: u8 = 0x08;
    pub const SME_MANUAL_ACK: u8 = 0x10;
    pub const CONVERSATION_ABORT: u8 = 0x18;
    pub const INTERMEDIATE_NOTIFICATION: u8 = 0x20;
    /// User data header indicator: short_message starts with a UDH.
    pub const UDHI: u8 = 0x40;
    pub const REPLY_PATH: u8 = 0x80;
}

/// registered_delivery values.
pub mod registered_delivery {
    pub const NONE: u8 = 0x00;
    /// SMSC delivery receipt on success or failure.
    pub const RECEIPT_ALWAYS: u8 = 0x01;
    pub const RECEIPT_ON_FAILURE: u8 = 0x02;
    pub const INTERMEDIATE_NOTIFICATION: u8 = 0x10;
}

/// message_state values (query_sm_resp, the message_state TLV).
pub mod message_state {
    pub const ENROUTE: u8 = 1;
    pub const DELIVERED: u8 = 2;
    pub const EXPIRED: u8 = 3;
    pub const DELETED: u8 = 4;
    pub const UNDELIVERABLE: u8 = 5;
    pub const ACCEPTED: u8 = 6;
    pub const UNKNOWN: u8 = 7;
    pub const REJECTED: u8 = 8;
}

/// interface_version this codec speaks.
pub const INTERFACE_VERSION_34: u8 = 0x34;

/// bind_transmitter, bind_receiver, bind_transceiver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bind {
    pub system_id: SystemId,
    pub password: Password,
    pub system_type: SystemType,
    pub interface_version: u8,
    /// addr_ton, addr_npi and address_range.
    pub address_range: SmeAddr<41>,
}

/// bind_*_resp. SMPP 3.4 defines one TLV here, sc_interface_version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindResp {
    pub system_id: SystemId,
    pub tlvs: Tlvs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbind {
    pub system_id: SystemId,
    pub password: Password,
}

/// submit_sm, and deliver_sm (the same layout; in deliver_sm the schedule and validity
/// times are empty and esm_class tells a receipt from a mobile-originated message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitSm {
    pub service_type: ServiceType,
    pub source: SmeAddr<21>,
    pub destination: SmeAddr<21>,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: SmppTime,
    pub validity_period: SmppTime,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// At most `MAX_SHORT_MESSAGE` octets; longer data goes in the message_payload TLV.
    pub short_message: Vec<u8>,
    pub tlvs: Tlvs,
}

pub type DeliverSm = SubmitSm;

impl SubmitSm {
    /// The short_message starts with a user data header (esm_class 0x40).
    pub fn udhi(&self) -> bool {
        self.esm_class & esm_class::UDHI != 0
    }

    pub fn set_udhi(&mut self, on: bool) {
        if on {
            self.esm_class |= esm_class::UDHI;
        } else {
            self.esm_class &= !esm_class::UDHI;
        }
    }

    /// The message type bits of esm_class (`esm_class::SMSC_DELIVERY_RECEIPT`, ...).
    pub fn message_type(&self) -> u8 {
        self.esm_class & esm_class::MESSAGE_TYPE_MASK
    }

    /// A delivery report rather than a message: SMSC receipt, SME delivery ack or
    /// intermediate notification (the types Kannel treats as reports).
    pub fn is_delivery_receipt(&self) -> bool {
        matches!(
            self.message_type(),
            esm_class::SMSC_DELIVERY_RECEIPT
                | esm_class::SME_DELIVERY_ACK
                | esm_class::INTERMEDIATE_NOTIFICATION
        )
    }

    /// The user data: short_message, or the message_payload TLV when short_message is
    /// empty.
    pub fn user_data(&self) -> &[u8] {
        if self.short_message.is_empty() {
            self.tlvs.message_payload().unwrap_or_default()
        } else {
            &self.short_message
        }
    }
}

/// submit_sm_resp, deliver_sm_resp and data_sm_resp: a message_id (unused, so empty,
/// in deliver_sm_resp) and TLVs (none in SMPP 3.4 except for data_sm_resp; kept when a
/// peer sends them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitSmResp {
    pub message_id: MessageId,
    pub tlvs: Tlvs,
}

pub type DeliverSmResp = SubmitSmResp;
pub type DataSmResp = SubmitSmResp;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSm {
    pub service_type: ServiceType,
    pub source: SmeAddr<65>,
    pub destination: SmeAddr<65>,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    /// The user data travels in the message_payload TLV.
    pub tlvs: Tlvs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySm {
    pub message_id: MessageId,
    pub source: SmeAddr<21>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySmResp {
    pub message_id: MessageId,
    pub final_date: SmppTime,
    /// A `message_state` value.
    pub message_state: u8,
    /// Network error code, or 0.
    pub error_code: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelSm {
    pub service_type: ServiceType,
    pub message_id: MessageId,
    pub source: SmeAddr<21>,
    pub destination: SmeAddr<21>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaceSm {
    pub message_id: MessageId,
    pub source: SmeAddr<21>,
    pub schedule_delivery_time: SmppTime,
    pub validity_period: SmppTime,
    pub registered_delivery: u8,
    pub sm_default_msg_id: u8,
    /// At most `MAX_SHORT_MESSAGE` octets.
    pub short_message: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertNotification {
    pub source: SmeAddr<65>,
    pub esme: SmeAddr<65>,
    pub tlvs: Tlvs,
}

/// The typed body of a PDU; the variant is the command_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    GenericNack,
    BindReceiver(Bind),
    BindReceiverResp(BindResp),
    BindTransmitter(Bind),
    BindTransmitterResp(BindResp),
    BindTransceiver(Bind),
    BindTransceiverResp(BindResp),
    Outbind(Outbind),
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm(SubmitSm),
    SubmitSmResp(SubmitSmResp),
    DeliverSm(DeliverSm),
    DeliverSmResp(DeliverSmResp),
    DataSm(DataSm),
    DataSmResp(DataSmResp),
    QuerySm(QuerySm),
    QuerySmResp(QuerySmResp),
    CancelSm(CancelSm),
    CancelSmResp,
    ReplaceSm(ReplaceSm),
    ReplaceSmResp,
    AlertNotification(AlertNotification),
}

impl Body {
    pub fn command_id(&self) -> CommandId {
        match self {
            Body::GenericNack => CommandId::GenericNack,
            Body::BindReceiver(_) => CommandId::BindReceiver,
            Body::BindReceiverResp(_) => CommandId::BindReceiverResp,
            Body::BindTransmitter(_) => CommandId::BindTransmitter,
            Body::BindTransmitterResp(_) => CommandId::BindTransmitterResp,
            Body::BindTransceiver(_) => CommandId::BindTransceiver,
            Body::BindTransceiverResp(_) => CommandId::BindTransceiverResp,
            Body::Outbind(_) => CommandId::Outbind,
            Body::Unbind => CommandId::Unbind,
            Body::UnbindResp => CommandId::UnbindResp,
            Body::EnquireLink => CommandId::EnquireLink,
            Body::EnquireLinkResp => CommandId::EnquireLinkResp,
            Body::SubmitSm(_) => CommandId::SubmitSm,
            Body::SubmitSmResp(_) => CommandId::SubmitSmResp,
            Body::DeliverSm(_) => CommandId::DeliverSm,
            Body::DeliverSmResp(_) => CommandId::DeliverSmResp,
            Body::DataSm(_) => CommandId::DataSm,
            Body::DataSmResp(_) => CommandId::DataSmResp,
            Body::QuerySm(_) => CommandId::QuerySm,
            Body::QuerySmResp(_) => CommandId::QuerySmResp,
            Body::CancelSm(_) => CommandId::CancelSm,
            Body::CancelSmResp => CommandId::CancelSmResp,
            Body::ReplaceSm(_) => CommandId::ReplaceSm,
            Body::ReplaceSmResp => CommandId::ReplaceSmResp,
            Body::AlertNotification(_) => CommandId::AlertNotification,
        }
    }

    /// The body of `id` with every field empty or zero.
    pub fn empty(id: CommandId) -> Body {
        match id {
            CommandId::GenericNack => Body::GenericNack,
            CommandId::BindReceiver => Body::BindReceiver(Bind::default()),
            CommandId::BindReceiverResp => Body::BindReceiverResp(BindResp::default()),
            CommandId::BindTransmitter => Body::BindTransmitter(Bind::default()),
            CommandId::BindTransmitterResp => Body::BindTransmitterResp(BindResp::default()),
            CommandId::BindTransceiver => Body::BindTransceiver(Bind::default()),
            CommandId::BindTransceiverResp => Body::BindTransceiverResp(BindResp::default()),
            CommandId::Outbind => Body::Outbind(Outbind::default()),
            CommandId::Unbind => Body::Unbind,
            CommandId::UnbindResp => Body::UnbindResp,
            CommandId::EnquireLink => Body::EnquireLink,
            CommandId::EnquireLinkResp => Body::EnquireLinkResp,
            CommandId::SubmitSm => Body::SubmitSm(SubmitSm::default()),
            CommandId::SubmitSmResp => Body::SubmitSmResp(SubmitSmResp::default()),
            CommandId::DeliverSm => Body::DeliverSm(DeliverSm::default()),
            CommandId::DeliverSmResp => Body::DeliverSmResp(DeliverSmResp::default()),
            CommandId::DataSm => Body::DataSm(DataSm::default()),
            CommandId::DataSmResp => Body::DataSmResp(DataSmResp::default()),
            CommandId::QuerySm => Body::QuerySm(QuerySm::default()),
            CommandId::QuerySmResp => Body::QuerySmResp(QuerySmResp::default()),
            CommandId::CancelSm => Body::CancelSm(CancelSm::default()),
            CommandId::CancelSmResp => Body::CancelSmResp,
            CommandId::ReplaceSm => Body::ReplaceSm(ReplaceSm::default()),
            CommandId::ReplaceSmResp => Body::ReplaceSmResp,
            CommandId::AlertNotification => Body::AlertNotification(AlertNotification::default()),
        }
    }

    /// A response whose body holds nothing: with an error status such a body is left
    /// off the wire altogether (SMPP 3.4 returns no body with an error).
    pub(crate) fn is_empty_response(&self) -> bool {
        match self {
            Body::BindReceiverResp(r)
            | Body::BindTransmitterResp(r)
            | Body::BindTransceiverResp(r) => r.system_id.is_empty() && r.tlvs.is_empty(),
            Body::SubmitSmResp(r) | Body::DeliverSmResp(r) | Body::DataSmResp(r) => {
                r.message_id.is_empty() && r.tlvs.is_empty()
            }
            Body::QuerySmResp(r) => *r == QuerySmResp::default(),
            _ => false,
        }
    }
}

/// One PDU: the header fields a sender chooses (command_length and command_id follow
/// from the body) and the typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub sequence_number: u32,
    pub command_status: CommandStatus,
    pub body: Body,
}

impl Pdu {
    /// A PDU with command_status 0 (every request, and successful responses).
    pub fn new(sequence_number: u32, body: Body) -> Pdu {
        Pdu {
            sequence_number,
            command_status: CommandStatus::ESME_ROK,
            body,
        }
    }

    /// A response carrying `status`.
    pub fn response(sequence_number: u32, command_status: CommandStatus, body: Body) -> Pdu {
        Pdu {
            sequence_number,
            command_status,
            body,
        }
    }

    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }
}
