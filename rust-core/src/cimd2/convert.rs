//! `Message` <-> CIMD2 packets: submit (03) and deliver (20) carry the same fields.

use super::error::Cimd2Error;
use super::packet::{param, Operation, Packet};
use super::text::{
    alphabet, decode_text_lossy, decode_ucs2, gsm_codes_lossy, read_hex, write_gsm_text, write_hex,
    write_ucs2_hex, Alphabet, TextPlan, DCS_8BIT, DCS_UCS2,
};
use crate::message::{Address, Coding, Message};
use crate::sms::concat::{parse_udh, part_udh};
use crate::sms::text::{binary_fits, plan_text_with_udh};

/// Longest alphanumeric originator (027).
pub use crate::sms::MAX_ALPHANUMERIC_ORIGINATOR;

/// Op 03 as a client sends it: 021 destination, 023 (numeric) or 027 (alphanumeric)
/// originator when there is one, 032 the concatenation header of a part of a long
/// message, then 033 text, or 034 hex with 030; header and user data share the 140
/// octets of one SMS.
pub fn submit_packet(msg: &Message, number: u8) -> Result<Packet, Cimd2Error> {
    message_packet(Operation::Submit, msg, number)
}

/// Op 20 as an SMSC sends it, with the same fields as `submit_packet`. The caller adds
/// the 060 service centre timestamp (`yymmddhhmmss`), since the codec has no clock:
/// `deliver_packet(&m, n)?.with(param::SERVICE_CENTRE_TIMESTAMP, ts)`.
pub fn deliver_packet(msg: &Message, number: u8) -> Result<Packet, Cimd2Error> {
    message_packet(Operation::DeliverMessage, msg, number)
}

fn message_packet(op: Operation, msg: &Message, number: u8) -> Result<Packet, Cimd2Error> {
    let to = msg.to.as_str();
    if to.is_empty() {
        return Err(Cimd2Error::MissingParameter {
            code: param::DESTINATION_ADDRESS,
        });
    }
    if !is_number(to) {
        return Err(Cimd2Error::InvalidParameter {
            code: param::DESTINATION_ADDRESS,
            reason: "destination may hold only digits, '+' and '-'",
        });
    }
    let mut p = Packet::new(op, number);
    p.push(param::DESTINATION_ADDRESS, to);
    push_originator(&mut p, &msg.from)?;
    let udh = msg.part.as_ref().map(part_udh).unwrap_or_default();
    if !udh.is_empty() {
        p.push_with(param::USER_DATA_HEADER, |out| write_hex(&udh, out));
    }
    match msg.coding {
        Coding::Text => {
            let text = msg.text_str().ok_or(Cimd2Error::InvalidParameter {
                code: param::USER_DATA,
                reason: "text payload is not UTF-8",
            })?;
            let plan = plan_text_with_udh(text, udh.len()).map_err(|source| Cimd2Error::Text {
                code: param::USER_DATA,
                source,
            })?;
            match plan {
                TextPlan::Gsm => p.push_with(param::USER_DATA, |out| write_gsm_text(text, out)),
                TextPlan::Ucs2 => {
                    p.push_with(param::USER_DATA_BINARY, |out| write_ucs2_hex(text, out));
                    p.push_u32(param::DATA_CODING_SCHEME, u32::from(DCS_UCS2));
                }
            }
        }
        Coding::Binary => {
            let data = msg.payload();
            binary_fits(data.len(), udh.len()).map_err(|source| Cimd2Error::Text {
                code: param::USER_DATA_BINARY,
                source,
            })?;
            p.push_with(param::USER_DATA_BINARY, |out| write_hex(data, out));
            p.push_u32(param::DATA_CODING_SCHEME, u32::from(DCS_8BIT));
        }
    }
    Ok(p)
}

/// Digits with an optional leading `+` (Kannel's rule for 023 as opposed to 027).
fn is_numeric_originator(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// What 021 accepts: digits, `+` and `-`.
fn is_number(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
}

fn push_originator(p: &mut Packet, from: &Address) -> Result<(), Cimd2Error> {
    let from = from.as_str();
    if from.is_empty() {
        return Ok(());
    }
    if is_numeric_originator(from) {
        p.push(param::ORIGINATING_ADDRESS, from);
        return Ok(());
    }
    if from.len() > MAX_ALPHANUMERIC_ORIGINATOR {
        return Err(Cimd2Error::InvalidParameter {
            code: param::ALPHANUMERIC_ORIGINATING_ADDRESS,
            reason: "alphanumeric originator longer than 11 characters",
        });
    }
    p.push(param::ALPHANUMERIC_ORIGINATING_ADDRESS, from);
    Ok(())
}

fn address(p: &Packet, code: u16) -> Result<Option<Address>, Cimd2Error> {
    let Some(value) = p.get(code) else {
        return Ok(None);
    };
    let s = std::str::from_utf8(value).map_err(|_| Cimd2Error::InvalidParameter {
        code,
        reason: "address is not ASCII",
    })?;
    Ok(Some(Address::new(s)?))
}

fn hex_param(p: &Packet, code: u16, out: &mut Vec<u8>) -> Result<bool, Cimd2Error> {
    match p.get(code) {
        Some(hex) => {
            read_hex(hex, out).map_err(|source| Cimd2Error::Text { code, source })?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The message carried by op 03 (submit, read by an SMSC) or op 20 (deliver, read by a
/// client): 023 or 027 sender, 021 recipient (either may be absent: empty address),
/// and the user data:
///
/// * 034 is read as the 030 coding says: UCS-2 becomes text, anything else binary.
/// * 033 becomes text the way Kannel reads it (unknown escapes as `§..`, bytes of
///   0x80 and above as U+FFFD).
/// * A 032 user data header that is a concatenation header and nothing else makes
///   the message a part (`Message::part`), its user data read as without a header.
/// * With any other 032 (other elements, or malformed) the message is a single SM in
///   binary: the header octets followed by the user data octets (for 033, its GSM
///   codes one per octet), as TP-UD with UDHI.
pub fn message_from_packet(p: &Packet) -> Result<Message, Cimd2Error> {
    if !matches!(p.op, Operation::Submit | Operation::DeliverMessage) {
        return Err(Cimd2Error::UnexpectedOperation {
            op: p.op.code(),
            expected: "submit (03) or deliver message (20)",
        });
    }
    let mut msg = Message::EMPTY;
    msg.to = address(p, param::DESTINATION_ADDRESS)?.unwrap_or(Address::EMPTY);
    msg.from = match address(p, param::ORIGINATING_ADDRESS)? {
        Some(a) => a,
        None => address(p, param::ALPHANUMERIC_ORIGINATING_ADDRESS)?.unwrap_or(Address::EMPTY),
    };
    let dcs = match p.get(param::DATA_CODING_SCHEME) {
        None => 0,
        Some(_) => p
            .get_u32(param::DATA_CODING_SCHEME)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(Cimd2Error::InvalidParameter {
                code: param::DATA_CODING_SCHEME,
                reason: "not a number from 0 to 255",
            })?,
    };
    let mut octets = Vec::new();
    let mut has_udh = hex_param(p, param::USER_DATA_HEADER, &mut octets)?;
    if has_udh {
        // Only a header that is exactly one concatenation element comes off.
        let concat = parse_udh(&octets)
            .filter(|u| !u.other_elements && u.len == octets.len())
            .and_then(|u| u.part);
        if concat.is_some() {
            msg.part = concat;
            octets.clear();
            has_udh = false;
        }
    }
    if hex_param(p, param::USER_DATA_BINARY, &mut octets)? {
        if !has_udh && alphabet(dcs) == Alphabet::Ucs2 {
            let text = decode_ucs2(&octets).map_err(|source| Cimd2Error::Text {
                code: param::USER_DATA_BINARY,
                source,
            })?;
            msg.coding = Coding::Text;
            msg.set_payload(text.as_bytes())?;
        } else {
            msg.coding = Coding::Binary;
            msg.set_payload(&octets)?;
        }
        return Ok(msg);
    }
    let user_data = p.get(param::USER_DATA).unwrap_or_default();
    if has_udh {
        gsm_codes_lossy(user_data, &mut octets);
        msg.coding = Coding::Binary;
        msg.set_payload(&octets)?;
    } else {
        msg.coding = Coding::Text;
        msg.set_payload(decode_text_lossy(user_data).as_bytes())?;
    }
    Ok(msg)
}
