//! SMPP 3.4: codec (framing, PDUs, TLVs, command status, data coding), delivery
//! receipts, and the sans-IO ESME session (`SmppClient`).
//!
//! The codec is pure: `encode` appends one PDU to a caller's buffer, and `Decoder`
//! turns bytes, cut anywhere, into `Pdu`s or typed errors. A framing error (bad
//! command_length) is fatal for the connection; a bad body is not, and carries the
//! header so the session can answer it (`DecodeError::reply`). `coding` maps
//! data_coding to text through `sms::text`; `convert` maps `Message` to and from
//! submit_sm / deliver_sm. `receipt` reads delivery receipts and normalises message
//! ids; `esme` is the client session behind `smsc::SmscClient`.

mod codec;
pub mod coding;
mod convert;
mod error;
mod esme;
mod fields;
mod pdu;
pub mod receipt;
pub mod smsc_session;
mod status;
mod tlv;

pub use codec::{decode_frame, encode, encoded_len, DecodeError, Decoder, DEFAULT_MAX_PDU};
pub use coding::{charset, data_coding, decode_text, encode_text, Charset, TextConfig};
pub use convert::{address, deliver_sm, message_from_sm, sme_addr, submit_sm, submit_sm_long};
pub use error::{Field, FieldError, FramingError, SmppError};
pub use esme::{BindMode, Numbering, SmppClient, SmppConfig, TonNpi, MAX_SEQUENCE};
pub use pdu::{
    esm_class, message_state, npi, registered_delivery, ton, AlertNotification, Bind, BindResp,
    Body, COctetString, CancelSm, CommandId, DataSm, DataSmResp, DeliverSm, DeliverSmResp, Header,
    MessageId, Outbind, Password, Pdu, QuerySm, QuerySmResp, ReplaceSm, ServiceType, SmeAddr,
    SmppTime, SubmitSm, SubmitSmResp, SystemId, SystemType, HEADER_LEN, INTERFACE_VERSION_34,
    MAX_SHORT_MESSAGE, TIME_LEN,
};
pub use receipt::{IdFormat, Receipt, ReceiptDate, ReceiptText};
pub use status::{CommandStatus, StatusClass, StatusInfo, STATUSES};
pub use tlv::{tag, Sar, Tlv, Tlvs, MAX_TLV_VALUE};

#[cfg(test)]
mod tests;
