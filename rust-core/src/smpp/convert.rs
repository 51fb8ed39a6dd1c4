//! `Message` <-> submit_sm / deliver_sm (one layout, so one pair of functions).

use super::coding::{
    charset, data_coding, decode_text, read_gsm_codes, write_gsm_codes, Charset, TextConfig,
};
use super::error::{Field, FieldError, SmppError};
use super::pdu::{npi, ton, SmeAddr, SubmitSm};
use super::tlv::{Tlv, MAX_TLV_VALUE};
use crate::message::{Address, Coding, Message, Part};
use crate::sms::concat::{parse_udh, part_udh, text_coding, LongMessages, PartCoding};
use crate::sms::text::{
    binary_fits, decode_gsm, gsm_codes, plan_text_with_udh, udh_fill_bits, write_ucs2, TextError,
    TextPlan,
};
use crate::sms::MAX_ALPHANUMERIC_ORIGINATOR;

/// submit_sm as an ESME sends it: source and destination with the TON/NPI their form
/// implies (`+digits` international/ISDN, digits unknown/ISDN, letters alphanumeric),
/// text in GSM 03.38 (data_coding 0, packed per `config`) when every character has a
/// GSM code and it fits in 160 septets, else UCS-2 (8); binary as data_coding 4.
///
/// Everything else is zero or empty: the session sets registered_delivery, validity
/// and the like on the result.
///
/// A part of a long message (`Message::part`) gets its concatenation header in
/// short_message with esm_class UDHI; see `submit_sm_long` for the other ways.
pub fn submit_sm(msg: &Message, config: &TextConfig) -> Result<SubmitSm, SmppError> {
    submit_sm_long(msg, config, LongMessages::default())
}

/// `submit_sm` for an SMSC that takes long messages as `long` says: a part carries
/// its header in short_message (`Udh`) or in the sar_* TLVs (`Sar`); with `Whole` a
/// message longer than one SMS goes whole in the message_payload TLV.
pub fn submit_sm_long(
    msg: &Message,
    config: &TextConfig,
    long: LongMessages,
) -> Result<SubmitSm, SmppError> {
    let to = msg.to.as_str();
    if to.is_empty() {
        return Err(SmppError::field(
            Field::DestinationAddr,
            FieldError::Invalid { reason: "empty" },
        ));
    }
    if !is_number(to) {
        return Err(SmppError::field(
            Field::DestinationAddr,
            FieldError::Invalid {
                reason: "destination may hold only digits after an optional '+'",
            },
        ));
    }
    let mut sm = SubmitSm {
        source: sme_addr(&msg.from, Field::SourceAddr)?,
        destination: sme_addr(&msg.to, Field::DestinationAddr)?,
        ..SubmitSm::default()
    };
    let udh = match (&msg.part, long) {
        (Some(part), LongMessages::Sar) => {
            sm.tlvs.push(Tlv::SarMsgRefNum(part.reference));
            sm.tlvs.push(Tlv::SarTotalSegments(part.total));
            sm.tlvs.push(Tlv::SarSegmentSeqnum(part.index));
            Vec::new()
        }
        (Some(part), _) => part_udh(part),
        (None, _) => Vec::new(),
    };
    sm.set_udhi(!udh.is_empty());
    sm.short_message.extend_from_slice(&udh);
    let whole = msg.part.is_none() && long == LongMessages::Whole;
    match msg.coding {
        Coding::Text => {
            let text = msg.text_str().ok_or(SmppError::field(
                Field::ShortMessage,
                FieldError::Invalid {
                    reason: "text payload is not UTF-8",
                },
            ))?;
            let (plan, fits) = match plan_text_with_udh(text, udh.len()) {
                Ok(plan) => (plan, true),
                Err(_) if whole => match text_coding(text) {
                    PartCoding::Gsm => (TextPlan::Gsm, false),
                    _ => (TextPlan::Ucs2, false),
                },
                Err(e) => return Err(e.into()),
            };
            let mut data = Vec::new();
            match plan {
                TextPlan::Gsm => {
                    let codes: Vec<u8> = gsm_codes(text).collect();
                    sm.data_coding = data_coding::SMSC_DEFAULT;
                    write_gsm_codes(&codes, udh_fill_bits(udh.len()), config, &mut data);
                }
                TextPlan::Ucs2 => {
                    sm.data_coding = data_coding::UCS2;
                    write_ucs2(text, &mut data);
                }
            }
            put_user_data(&mut sm, data, fits)?;
        }
        Coding::Binary => {
            let data = msg.payload();
            let fits = match binary_fits(data.len(), udh.len()) {
                Ok(()) => true,
                Err(_) if whole => false,
                Err(e) => return Err(e.into()),
            };
            sm.data_coding = data_coding::BINARY;
            put_user_data(&mut sm, data.to_vec(), fits)?;
        }
    }
    Ok(sm)
}

/// The user data into short_message when it fits one SMS, else (a whole long
/// message) into message_payload, short_message then empty as SMPP 3.4 requires.
fn put_user_data(sm: &mut SubmitSm, data: Vec<u8>, fits: bool) -> Result<(), SmppError> {
    if fits {
        sm.short_message.extend_from_slice(&data);
        return Ok(());
    }
    if data.len() > MAX_TLV_VALUE {
        return Err(TextError::TooLongBinary { octets: data.len() }.into());
    }
    sm.tlvs.push(Tlv::MessagePayload(data));
    Ok(())
}

/// deliver_sm as an SMSC sends a mobile-originated message: the same fields as
/// `submit_sm`.
pub fn deliver_sm(msg: &Message, config: &TextConfig) -> Result<SubmitSm, SmppError> {
    submit_sm(msg, config)
}

/// The message a submit_sm (read by an SMSC) or deliver_sm (read by an ESME) carries.
///
/// * User data is short_message, or the message_payload TLV when that is empty.
/// * An international (TON 1) numeric address gets its `+` back.
/// * With UDHI set and a header that is one concatenation element, the message is a
///   part (`Message::part`) read as without the header; sar_* TLVs make a part too.
/// * With UDHI set and any other header the message is binary: the header octets
///   followed by the rest of the user data, GSM text as its codes one per octet
///   (unpacked) as CIMD2 does. A malformed header leaves the octets as they came.
/// * Otherwise data_coding decides: text for GSM, IA5, Latin-1 and UCS-2, binary for
///   the rest.
///
/// A delivery receipt converts like any deliver_sm; check `is_delivery_receipt` first.
pub fn message_from_sm(sm: &SubmitSm, config: &TextConfig) -> Result<Message, SmppError> {
    let mut msg = Message::EMPTY;
    msg.from = address(&sm.source)?;
    msg.to = address(&sm.destination)?;
    let user_data = sm.user_data();
    let cs = charset(sm.data_coding);
    let udh = if sm.udhi() {
        parse_udh(user_data)
    } else {
        None
    };
    match udh {
        // A concatenation header and nothing else: a part, read as without a header.
        Some(udh) if udh.part.is_some() && !udh.other_elements => {
            msg.part = udh.part;
            let rest = &user_data[udh.len..];
            if cs == Charset::Gsm7 {
                let mut codes = Vec::with_capacity(rest.len() * 8 / 7 + 1);
                read_gsm_codes(rest, udh_fill_bits(udh.len), config, &mut codes);
                msg.coding = Coding::Text;
                msg.set_payload(decode_gsm(&codes, false)?.as_bytes())?;
            } else {
                set_user_data(&mut msg, rest, sm.data_coding, config)?;
            }
        }
        // Other elements (ports, ...): the header octets, then the rest of the user
        // data (GSM text as its codes, one per octet, as CIMD2 does).
        Some(udh) => {
            let (head, rest) = user_data.split_at(udh.len);
            let mut octets = Vec::with_capacity(user_data.len() * 8 / 7 + 1);
            octets.extend_from_slice(head);
            if cs == Charset::Gsm7 {
                read_gsm_codes(rest, udh_fill_bits(udh.len), config, &mut octets);
            } else {
                octets.extend_from_slice(rest);
            }
            msg.coding = Coding::Binary;
            msg.set_payload(&octets)?;
        }
        // UDHI with a malformed header: a single SM of the octets as they came.
        None if sm.udhi() => {
            msg.coding = Coding::Binary;
            msg.set_payload(user_data)?;
        }
        None => {
            set_user_data(&mut msg, user_data, sm.data_coding, config)?;
            msg.part = sm
                .tlvs
                .sar()
                .and_then(|s| Part::new(s.msg_ref_num, s.total_segments, s.segment_seqnum).ok());
        }
    }
    Ok(msg)
}

/// User data without a header, as data_coding says: text, or binary.
fn set_user_data(
    msg: &mut Message,
    user_data: &[u8],
    dcs: u8,
    config: &TextConfig,
) -> Result<(), SmppError> {
    if charset(dcs) == Charset::Binary {
        msg.coding = Coding::Binary;
        msg.set_payload(user_data)?;
    } else {
        let text = decode_text(user_data, dcs, config)?;
        msg.coding = Coding::Text;
        msg.set_payload(text.as_bytes())?;
    }
    Ok(())
}

/// Digits with an optional leading `+`.
fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An address with the TON/NPI its form implies.
pub fn sme_addr(address: &Address, field: Field) -> Result<SmeAddr<21>, SmppError> {
    let s = address.as_str();
    let (ton, npi, value) = if s.is_empty() {
        (ton::UNKNOWN, npi::UNKNOWN, s)
    } else if let Some(digits) = s.strip_prefix('+').filter(|_| is_number(s)) {
        (ton::INTERNATIONAL, npi::ISDN, digits)
    } else if is_number(s) {
        (ton::UNKNOWN, npi::ISDN, s)
    } else if s.len() > MAX_ALPHANUMERIC_ORIGINATOR {
        return Err(SmppError::field(
            field,
            FieldError::TooLong {
                max: MAX_ALPHANUMERIC_ORIGINATOR,
            },
        ));
    } else {
        (ton::ALPHANUMERIC, npi::UNKNOWN, s)
    };
    SmeAddr::new(ton, npi, value).map_err(|e| SmppError::field(field, e))
}

/// The `Address` an SME address reads as: `+` restored for an international number.
pub fn address<const N: usize>(addr: &SmeAddr<N>) -> Result<Address, SmppError> {
    let value = addr.addr.to_string_lossy();
    let international = addr.ton == ton::INTERNATIONAL
        && !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit());
    if international {
        Ok(Address::new(&format!("+{value}"))?)
    } else {
        Ok(Address::new(&value)?)
    }
}
