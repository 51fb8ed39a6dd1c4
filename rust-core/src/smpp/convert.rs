//! `Message` <-> submit_sm / deliver_sm (one layout, so one pair of functions).

use super::coding::{
    charset, data_coding, decode_text, read_gsm_codes, write_gsm_codes, Charset, TextConfig,
};
use super::error::{Field, FieldError, SmppError};
use super::pdu::{npi, ton, SmeAddr, SubmitSm};
use crate::message::{Address, Coding, Message};
use crate::sms::text::{
    gsm_codes, plan_text, udh_fill_bits, write_ucs2, TextError, TextPlan, MAX_BINARY_OCTETS,
};
use crate::sms::MAX_ALPHANUMERIC_ORIGINATOR;

/// submit_sm as an ESME sends it: source and destination with the TON/NPI their form
/// implies (`+digits` international/ISDN, digits unknown/ISDN, letters alphanumeric),
/// text in GSM 03.38 (data_coding 0, packed per `config`) when every character has a
/// GSM code and it fits in 160 septets, else UCS-2 (8); binary as data_coding 4.
///
/// Everything else is zero or empty: the session sets registered_delivery, validity
/// and the like on the result.
pub fn submit_sm(msg: &Message, config: &TextConfig) -> Result<SubmitSm, SmppError> {
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
    match msg.coding {
        Coding::Text => {
            let text = msg.text_str().ok_or(SmppError::field(
                Field::ShortMessage,
                FieldError::Invalid {
                    reason: "text payload is not UTF-8",
                },
            ))?;
            match plan_text(text)? {
                TextPlan::Gsm => {
                    let codes: Vec<u8> = gsm_codes(text).collect();
                    sm.data_coding = data_coding::SMSC_DEFAULT;
                    write_gsm_codes(&codes, 0, config, &mut sm.short_message);
                }
                TextPlan::Ucs2 => {
                    sm.data_coding = data_coding::UCS2;
                    write_ucs2(text, &mut sm.short_message);
                }
            }
        }
        Coding::Binary => {
            let data = msg.payload();
            if data.len() > MAX_BINARY_OCTETS {
                return Err(TextError::TooLongBinary { octets: data.len() }.into());
            }
            sm.data_coding = data_coding::BINARY;
            sm.short_message.extend_from_slice(data);
        }
    }
    Ok(sm)
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
/// * With UDHI set the message is binary: the header octets followed by the rest of
///   the user data, GSM text as its codes one per octet (unpacked) as CIMD2 does.
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
    if sm.udhi() {
        let udh_len = 1 + usize::from(*user_data.first().unwrap_or(&0));
        let (udh, rest) = match user_data.split_at_checked(udh_len) {
            Some(split) => split,
            None => {
                return Err(SmppError::BadUdh {
                    udh_len,
                    len: user_data.len(),
                })
            }
        };
        let mut octets = Vec::with_capacity(user_data.len() * 8 / 7 + 1);
        octets.extend_from_slice(udh);
        if cs == Charset::Gsm7 {
            read_gsm_codes(rest, udh_fill_bits(udh_len), config, &mut octets);
        } else {
            octets.extend_from_slice(rest);
        }
        msg.coding = Coding::Binary;
        msg.set_payload(&octets)?;
    } else if cs == Charset::Binary {
        msg.coding = Coding::Binary;
        msg.set_payload(user_data)?;
    } else {
        let text = decode_text(user_data, sm.data_coding, config)?;
        msg.coding = Coding::Text;
        msg.set_payload(text.as_bytes())?;
    }
    Ok(msg)
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
