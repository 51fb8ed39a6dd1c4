//! SMPP framing and bodies: `encode` writes one PDU, `decode_frame` reads one, and
//! `Decoder` cuts a byte stream into PDUs however it arrives.

use super::error::{Field, FieldError, FramingError, SmppError};
use super::pdu::{
    AlertNotification, Bind, BindResp, Body, COctetString, CancelSm, CommandId, DataSm, Header,
    Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm, SmeAddr, SmppTime, SubmitSm, SubmitSmResp,
    HEADER_LEN, MAX_SHORT_MESSAGE,
};
use super::status::CommandStatus;
use super::tlv::{Tlv, Tlvs, MAX_TLV_VALUE};
use thiserror::Error;

/// A decoder's limit when none is chosen: room for a full 64 K message_payload.
pub const DEFAULT_MAX_PDU: usize = 64 * 1024 + 512;

/// Where encoded octets go: a buffer, or a counter that only measures.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Count(usize);

impl Sink for Count {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Append one PDU to `out`. On error `out` is left as it was.
///
/// Fails only on values the types cannot rule out: a short_message over 254 octets
/// and a TLV value over 65535. A response with an error status and an empty body is
/// written as the bare header, as SMPP 3.4 sends error responses.
pub fn encode(pdu: &Pdu, out: &mut Vec<u8>) -> Result<(), SmppError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&pdu.command_id().value().to_be_bytes());
    out.extend_from_slice(&pdu.command_status.0.to_be_bytes());
    out.extend_from_slice(&pdu.sequence_number.to_be_bytes());
    let written = write_body(pdu, out).and_then(|()| {
        let len = out.len() - start;
        u32::try_from(len).map_err(|_| SmppError::PduTooLong { len })
    });
    match written {
        Ok(len) => {
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The command_length `encode` would write.
pub fn encoded_len(pdu: &Pdu) -> Result<usize, SmppError> {
    let mut count = Count(HEADER_LEN);
    write_body(pdu, &mut count)?;
    if count.0 > u32::MAX as usize {
        return Err(SmppError::PduTooLong { len: count.0 });
    }
    Ok(count.0)
}

fn cstr<const N: usize>(s: &COctetString<N>, out: &mut impl Sink) {
    out.put(s.as_bytes());
    out.put(&[0]);
}

fn addr<const N: usize>(a: &SmeAddr<N>, out: &mut impl Sink) {
    out.put(&[a.ton, a.npi]);
    cstr(&a.addr, out);
}

fn time(t: &SmppTime, out: &mut impl Sink) {
    out.put(t.as_bytes());
    out.put(&[0]);
}

fn short_message(sm: &[u8], out: &mut impl Sink) -> Result<(), SmppError> {
    if sm.len() > MAX_SHORT_MESSAGE {
        return Err(SmppError::field(
            Field::ShortMessage,
            FieldError::TooLong {
                max: MAX_SHORT_MESSAGE,
            },
        ));
    }
    out.put(&[sm.len() as u8]);
    out.put(sm);
    Ok(())
}

fn tlvs(tlvs: &Tlvs, out: &mut impl Sink) -> Result<(), SmppError> {
    for tlv in tlvs {
        let len = tlv.value_len();
        if len > MAX_TLV_VALUE {
            return Err(SmppError::TlvTooLong {
                tag: tlv.tag(),
                len,
            });
        }
        out.put(&tlv.tag().to_be_bytes());
        out.put(&(len as u16).to_be_bytes());
        tlv.write_value(|bytes| out.put(bytes));
    }
    Ok(())
}

fn write_body(pdu: &Pdu, out: &mut impl Sink) -> Result<(), SmppError> {
    if !pdu.command_status.is_ok() && pdu.body.is_empty_response() {
        return Ok(());
    }
    match &pdu.body {
        Body::GenericNack
        | Body::Unbind
        | Body::UnbindResp
        | Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::CancelSmResp
        | Body::ReplaceSmResp => {}
        Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
            cstr(&b.system_id, out);
            cstr(&b.password, out);
            cstr(&b.system_type, out);
            out.put(&[b.interface_version]);
            addr(&b.address_range, out);
        }
        Body::BindReceiverResp(r) | Body::BindTransmitterResp(r) | Body::BindTransceiverResp(r) => {
            cstr(&r.system_id, out);
            tlvs(&r.tlvs, out)?;
        }
        Body::Outbind(o) => {
            cstr(&o.system_id, out);
            cstr(&o.password, out);
        }
        Body::SubmitSm(s) | Body::DeliverSm(s) => {
            cstr(&s.service_type, out);
            addr(&s.source, out);
            addr(&s.destination, out);
            out.put(&[s.esm_class, s.protocol_id, s.priority_flag]);
            time(&s.schedule_delivery_time, out);
            time(&s.validity_period, out);
            out.put(&[
                s.registered_delivery,
                s.replace_if_present_flag,
                s.data_coding,
                s.sm_default_msg_id,
            ]);
            short_message(&s.short_message, out)?;
            tlvs(&s.tlvs, out)?;
        }
        Body::SubmitSmResp(r) | Body::DeliverSmResp(r) | Body::DataSmResp(r) => {
            cstr(&r.message_id, out);
            tlvs(&r.tlvs, out)?;
        }
        Body::DataSm(d) => {
            cstr(&d.service_type, out);
            addr(&d.source, out);
            addr(&d.destination, out);
            out.put(&[d.esm_class, d.registered_delivery, d.data_coding]);
            tlvs(&d.tlvs, out)?;
        }
        Body::QuerySm(q) => {
            cstr(&q.message_id, out);
            addr(&q.source, out);
        }
        Body::QuerySmResp(r) => {
            cstr(&r.message_id, out);
            time(&r.final_date, out);
            out.put(&[r.message_state, r.error_code]);
        }
        Body::CancelSm(c) => {
            cstr(&c.service_type, out);
            cstr(&c.message_id, out);
            addr(&c.source, out);
            addr(&c.destination, out);
        }
        Body::ReplaceSm(r) => {
            cstr(&r.message_id, out);
            addr(&r.source, out);
            time(&r.schedule_delivery_time, out);
            time(&r.validity_period, out);
            out.put(&[r.registered_delivery, r.sm_default_msg_id]);
            short_message(&r.short_message, out)?;
        }
        Body::AlertNotification(a) => {
            addr(&a.source, out);
            addr(&a.esme, out);
            tlvs(&a.tlvs, out)?;
        }
    }
    Ok(())
}

/// Decode one complete PDU: `frame` must hold exactly command_length octets.
pub fn decode_frame(frame: &[u8]) -> Result<Pdu, DecodeError> {
    let Some(header) = Header::parse(frame) else {
        return Err(FramingError::LengthMismatch {
            command_length: frame
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            frame_len: frame.len(),
        }
        .into());
    };
    if (header.command_length as usize) < HEADER_LEN {
        return Err(FramingError::TooShort {
            command_length: header.command_length,
        }
        .into());
    }
    if header.command_length as usize != frame.len() {
        return Err(FramingError::LengthMismatch {
            command_length: header.command_length,
            frame_len: frame.len(),
        }
        .into());
    }
    decode_body(header, &frame[HEADER_LEN..]).map_err(|error| DecodeError::Body { header, error })
}

/// Reads a body front to back; every read names its field for the error.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        self.body.get(self.pos..).unwrap_or_default()
    }

    fn u8(&mut self, field: Field) -> Result<u8, SmppError> {
        let b = *self.rest().first().ok_or(SmppError::Truncated { field })?;
        self.pos += 1;
        Ok(b)
    }

    fn cstr<const N: usize>(&mut self, field: Field) -> Result<COctetString<N>, SmppError> {
        let rest = self.rest();
        if rest.is_empty() {
            return Err(SmppError::Truncated { field });
        }
        let window = &rest[..rest.len().min(N)];
        let Some(nul) = memchr::memchr(0, window) else {
            let error = if rest.len() >= N {
                FieldError::TooLong {
                    max: COctetString::<N>::MAX_LEN,
                }
            } else {
                FieldError::MissingNul
            };
            return Err(SmppError::field(field, error));
        };
        // The NUL found within the first N octets bounds the length and ends the value.
        let value = COctetString::from_checked(&window[..nul]);
        self.pos += nul + 1;
        Ok(value)
    }

    fn time(&mut self, field: Field) -> Result<SmppTime, SmppError> {
        SmppTime::from_string(self.cstr(field)?).map_err(|e| SmppError::field(field, e))
    }

    fn addr<const N: usize>(
        &mut self,
        [ton, npi, addr]: [Field; 3],
    ) -> Result<SmeAddr<N>, SmppError> {
        Ok(SmeAddr {
            ton: self.u8(ton)?,
            npi: self.u8(npi)?,
            addr: self.cstr(addr)?,
        })
    }

    fn short_message(&mut self) -> Result<Vec<u8>, SmppError> {
        let sm_length = self.u8(Field::SmLength)?;
        let rest = self.rest();
        let sm = rest
            .get(..usize::from(sm_length))
            .ok_or(SmppError::SmLength {
                sm_length,
                available: rest.len(),
            })?;
        self.pos += sm.len();
        Ok(sm.to_vec())
    }

    fn tlvs(&mut self) -> Result<Tlvs, SmppError> {
        let mut list = Vec::new();
        while !self.rest().is_empty() {
            let offset = self.pos;
            let rest = self.rest();
            let (tag, len) = match rest {
                [t0, t1, l0, l1, ..] => (
                    u16::from_be_bytes([*t0, *t1]),
                    usize::from(u16::from_be_bytes([*l0, *l1])),
                ),
                _ => return Err(SmppError::TruncatedTlv { offset }),
            };
            let value = rest
                .get(4..4 + len)
                .ok_or(SmppError::TruncatedTlv { offset })?;
            list.push(Tlv::parse(tag, value));
            self.pos += 4 + len;
        }
        Ok(Tlvs(list))
    }

    fn finish(&self) -> Result<(), SmppError> {
        match self.rest().len() {
            0 => Ok(()),
            count => Err(SmppError::TrailingBytes { count }),
        }
    }
}

const SOURCE: [Field; 3] = [
    Field::SourceAddrTon,
    Field::SourceAddrNpi,
    Field::SourceAddr,
];
const DESTINATION: [Field; 3] = [
    Field::DestAddrTon,
    Field::DestAddrNpi,
    Field::DestinationAddr,
];
const ESME: [Field; 3] = [Field::EsmeAddrTon, Field::EsmeAddrNpi, Field::EsmeAddr];
const ADDRESS_RANGE: [Field; 3] = [Field::AddrTon, Field::AddrNpi, Field::AddressRange];

/// Decode the body that follows `header`.
pub(crate) fn decode_body(header: Header, body: &[u8]) -> Result<Pdu, SmppError> {
    let id = header.command().ok_or(SmppError::UnknownCommandId {
        command_id: header.command_id,
    })?;
    let mut r = Reader { body, pos: 0 };
    let decoded = if body.is_empty() && Body::empty(id).is_empty_response() {
        // SMPP 3.4 sends no body with an error response; some peers do so on success too.
        Body::empty(id)
    } else {
        let decoded = match id {
            CommandId::GenericNack => Body::GenericNack,
            CommandId::Unbind => Body::Unbind,
            CommandId::UnbindResp => Body::UnbindResp,
            CommandId::EnquireLink => Body::EnquireLink,
            CommandId::EnquireLinkResp => Body::EnquireLinkResp,
            CommandId::CancelSmResp => Body::CancelSmResp,
            CommandId::ReplaceSmResp => Body::ReplaceSmResp,
            CommandId::BindReceiver => Body::BindReceiver(bind(&mut r)?),
            CommandId::BindTransmitter => Body::BindTransmitter(bind(&mut r)?),
            CommandId::BindTransceiver => Body::BindTransceiver(bind(&mut r)?),
            CommandId::BindReceiverResp => Body::BindReceiverResp(bind_resp(&mut r)?),
            CommandId::BindTransmitterResp => Body::BindTransmitterResp(bind_resp(&mut r)?),
            CommandId::BindTransceiverResp => Body::BindTransceiverResp(bind_resp(&mut r)?),
            CommandId::Outbind => Body::Outbind(Outbind {
                system_id: r.cstr(Field::SystemId)?,
                password: r.cstr(Field::Password)?,
            }),
            CommandId::SubmitSm => Body::SubmitSm(submit_sm(&mut r)?),
            CommandId::DeliverSm => Body::DeliverSm(submit_sm(&mut r)?),
            CommandId::SubmitSmResp => Body::SubmitSmResp(message_id_resp(&mut r)?),
            CommandId::DeliverSmResp => Body::DeliverSmResp(message_id_resp(&mut r)?),
            CommandId::DataSmResp => Body::DataSmResp(message_id_resp(&mut r)?),
            CommandId::DataSm => Body::DataSm(DataSm {
                service_type: r.cstr(Field::ServiceType)?,
                source: r.addr(SOURCE)?,
                destination: r.addr(DESTINATION)?,
                esm_class: r.u8(Field::EsmClass)?,
                registered_delivery: r.u8(Field::RegisteredDelivery)?,
                data_coding: r.u8(Field::DataCoding)?,
                tlvs: r.tlvs()?,
            }),
            CommandId::QuerySm => Body::QuerySm(QuerySm {
                message_id: r.cstr(Field::MessageId)?,
                source: r.addr(SOURCE)?,
            }),
            CommandId::QuerySmResp => Body::QuerySmResp(QuerySmResp {
                message_id: r.cstr(Field::MessageId)?,
                final_date: r.time(Field::FinalDate)?,
                message_state: r.u8(Field::MessageState)?,
                error_code: r.u8(Field::ErrorCode)?,
            }),
            CommandId::CancelSm => Body::CancelSm(CancelSm {
                service_type: r.cstr(Field::ServiceType)?,
                message_id: r.cstr(Field::MessageId)?,
                source: r.addr(SOURCE)?,
                destination: r.addr(DESTINATION)?,
            }),
            CommandId::ReplaceSm => Body::ReplaceSm(ReplaceSm {
                message_id: r.cstr(Field::MessageId)?,
                source: r.addr(SOURCE)?,
                schedule_delivery_time: r.time(Field::ScheduleDeliveryTime)?,
                validity_period: r.time(Field::ValidityPeriod)?,
                registered_delivery: r.u8(Field::RegisteredDelivery)?,
                sm_default_msg_id: r.u8(Field::SmDefaultMsgId)?,
                short_message: r.short_message()?,
            }),
            CommandId::AlertNotification => Body::AlertNotification(AlertNotification {
                source: r.addr(SOURCE)?,
                esme: r.addr(ESME)?,
                tlvs: r.tlvs()?,
            }),
        };
        r.finish()?;
        decoded
    };
    Ok(Pdu {
        sequence_number: header.sequence_number,
        command_status: header.command_status,
        body: decoded,
    })
}

fn bind(r: &mut Reader<'_>) -> Result<Bind, SmppError> {
    Ok(Bind {
        system_id: r.cstr(Field::SystemId)?,
        password: r.cstr(Field::Password)?,
        system_type: r.cstr(Field::SystemType)?,
        interface_version: r.u8(Field::InterfaceVersion)?,
        address_range: r.addr(ADDRESS_RANGE)?,
    })
}

fn bind_resp(r: &mut Reader<'_>) -> Result<BindResp, SmppError> {
    Ok(BindResp {
        system_id: r.cstr(Field::SystemId)?,
        tlvs: r.tlvs()?,
    })
}

fn message_id_resp(r: &mut Reader<'_>) -> Result<SubmitSmResp, SmppError> {
    Ok(SubmitSmResp {
        message_id: r.cstr(Field::MessageId)?,
        tlvs: r.tlvs()?,
    })
}

fn submit_sm(r: &mut Reader<'_>) -> Result<SubmitSm, SmppError> {
    Ok(SubmitSm {
        service_type: r.cstr(Field::ServiceType)?,
        source: r.addr(SOURCE)?,
        destination: r.addr(DESTINATION)?,
        esm_class: r.u8(Field::EsmClass)?,
        protocol_id: r.u8(Field::ProtocolId)?,
        priority_flag: r.u8(Field::PriorityFlag)?,
        schedule_delivery_time: r.time(Field::ScheduleDeliveryTime)?,
        validity_period: r.time(Field::ValidityPeriod)?,
        registered_delivery: r.u8(Field::RegisteredDelivery)?,
        replace_if_present_flag: r.u8(Field::ReplaceIfPresentFlag)?,
        data_coding: r.u8(Field::DataCoding)?,
        sm_default_msg_id: r.u8(Field::SmDefaultMsgId)?,
        short_message: r.short_message()?,
        tlvs: r.tlvs()?,
    })
}

/// Streaming SMPP decoder: push bytes as they arrive, poll PDUs out.
///
/// Memory: the bytes pushed and not yet polled. Nothing is reserved from a length
/// field, and once the bytes pushed are all polled, at most one unfinished PDU (under
/// `max_pdu` octets) is held.
///
/// A command_length below 16 or above `max_pdu` is reported as soon as its four octets
/// arrive, as a `FramingError`; the decoder then drops what it holds, ignores further
/// input and polls `None`: the connection must close. A PDU with a bad body is one
/// `DecodeError::Body` item and decoding carries on with the next PDU. Results are the
/// same however the stream is cut.
#[derive(Debug)]
pub struct Decoder {
    max_pdu: usize,
    buf: Vec<u8>,
    /// Bytes before this are consumed.
    pos: usize,
    failed: Option<FramingError>,
}

impl Decoder {
    /// A decoder for PDUs of at most `max_pdu` octets (raised to 16 if smaller).
    pub fn new(max_pdu: usize) -> Decoder {
        Decoder {
            max_pdu: max_pdu.max(HEADER_LEN),
            buf: Vec::new(),
            pos: 0,
            failed: None,
        }
    }

    pub fn max_pdu(&self) -> usize {
        self.max_pdu
    }

    /// Bytes held: pushed and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The framing error that stopped this decoder, if any.
    pub fn failed(&self) -> Option<&FramingError> {
        self.failed.as_ref()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next PDU or error, or `None` when more bytes are needed (or after a framing
    /// error). Never panics.
    pub fn poll(&mut self) -> Option<Result<Pdu, DecodeError>> {
        if self.failed.is_some() {
            return None;
        }
        let avail = &self.buf[self.pos..];
        let len = match avail {
            [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return None,
        };
        let error = if (len as usize) < HEADER_LEN {
            FramingError::TooShort {
                command_length: len,
            }
        } else if len as usize > self.max_pdu {
            FramingError::TooLong {
                command_length: len,
                max: self.max_pdu,
            }
        } else {
            let frame = avail.get(..len as usize)?;
            self.pos += frame.len();
            let header = Header::parse(frame)?;
            let decoded = decode_body(header, &frame[HEADER_LEN..])
                .map_err(|error| DecodeError::Body { header, error });
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
            return Some(decoded);
        };
        self.failed = Some(error);
        self.buf = Vec::new();
        self.pos = 0;
        Some(Err(error.into()))
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(DEFAULT_MAX_PDU)
    }
}

/// One failure out of the decoder.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fatal: close the connection (after a generic_nack with ESME_RINVCMDLEN, if wanted).
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    /// The PDU is skipped; the stream stays in step. Answer it with `reply`.
    #[error("{} (sequence {}): {error}", header.command_name(), header.sequence_number)]
    Body { header: Header, error: SmppError },
}

impl DecodeError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::Framing(_))
    }

    /// The header of the PDU that failed, when it was well framed.
    pub fn header(&self) -> Option<&Header> {
        match self {
            DecodeError::Framing(_) => None,
            DecodeError::Body { header, .. } => Some(header),
        }
    }

    /// The command_status that reports this failure to the peer.
    pub fn status(&self) -> CommandStatus {
        match self {
            DecodeError::Framing(_) => CommandStatus::ESME_RINVCMDLEN,
            DecodeError::Body { error, .. } => error.status(),
        }
    }

    /// The PDU to send back for a body error (see `Header::error_reply`); `None` for a
    /// framing error (the connection is closing) and for a broken generic_nack.
    pub fn reply(&self) -> Option<Pdu> {
        match self {
            DecodeError::Framing(_) => None,
            DecodeError::Body { header, error } => header.error_reply(error.status()),
        }
    }
}

impl Pdu {
    /// The header `encode` writes for this PDU (command_length included), or why it
    /// cannot be encoded.
    pub fn header(&self) -> Result<Header, SmppError> {
        Ok(Header {
            command_length: encoded_len(self)? as u32,
            command_id: self.command_id().value(),
            command_status: self.command_status,
            sequence_number: self.sequence_number,
        })
    }
}
