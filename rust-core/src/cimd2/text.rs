//! Text for CIMD2: GSM 03.38 codes (from `sms::text`) written in CIMD2's `_xx` escape
//! convention for parameter 033, and UCS-2 as hex for 034.

use crate::sms::text::{gsm_codes, GsmDecoder, TextError};
// The GSM 03.38 / UCS-2 side lives in `sms::text`; these names stay reachable here.
pub use crate::sms::text::{
    alphabet, decode_ucs2, gsm_code, Alphabet, Gsm, DCS_8BIT, DCS_UCS2, MAX_BINARY_OCTETS,
    MAX_GSM_SEPTETS, MAX_UCS2_UNITS,
};
pub(crate) use crate::sms::text::{plan_text, TextPlan};

/// CIMD2 escapes: GSM code written as `_` plus these two characters.
const CIMD2_ESCAPES: [(u8, [u8; 2]); 43] = [
    (0x00, *b"Oa"),
    (0x01, *b"L-"),
    (0x03, *b"Y-"),
    (0x04, *b"e`"),
    (0x05, *b"e'"),
    (0x06, *b"u`"),
    (0x07, *b"i`"),
    (0x08, *b"o`"),
    (0x09, *b"C,"),
    (0x0B, *b"O/"),
    (0x0C, *b"o/"),
    (0x0E, *b"A*"),
    (0x0F, *b"a*"),
    (0x10, *b"gd"),
    (0x11, *b"--"),
    (0x12, *b"gf"),
    (0x13, *b"gg"),
    (0x14, *b"gl"),
    (0x15, *b"go"),
    (0x16, *b"gp"),
    (0x17, *b"gi"),
    (0x18, *b"gs"),
    (0x19, *b"gt"),
    (0x1A, *b"gx"),
    (0x1B, *b"XX"),
    (0x1C, *b"AE"),
    (0x1D, *b"ae"),
    (0x1E, *b"ss"),
    (0x1F, *b"E'"),
    (0x22, *b"qq"),
    (0x24, *b"ox"),
    (0x40, *b"!!"),
    (0x5B, *b"A\""),
    (0x5C, *b"O\""),
    (0x5D, *b"N~"),
    (0x5E, *b"U\""),
    (0x5F, *b"so"),
    (0x60, *b"??"),
    (0x7B, *b"a\""),
    (0x7C, *b"o\""),
    (0x7D, *b"n~"),
    (0x7E, *b"u\""),
    (0x7F, *b"a`"),
];

const NONE: u8 = 0xFF;

/// GSM code -> index into CIMD2_ESCAPES (NONE when written as itself).
const ESCAPE_INDEX: [u8; 128] = {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < CIMD2_ESCAPES.len() {
        table[CIMD2_ESCAPES[i].0 as usize] = i as u8;
        i += 1;
    }
    table
};

/// User data ready for a submit or deliver packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    /// Value for 033: GSM text in the CIMD2 character set, `_xx` escapes included.
    Text(Vec<u8>),
    /// Values for 030 (data coding scheme) and 034 (uppercase hex).
    Binary { dcs: u8, hex: Vec<u8> },
}

fn write_gsm(code: u8, out: &mut Vec<u8>) {
    if code == 0x02 {
        // GSM 0x02 is `$` and must not go out as STX.
        out.push(b'$');
        return;
    }
    match ESCAPE_INDEX.get(usize::from(code)) {
        Some(&i) if i != NONE => {
            let [a, b] = CIMD2_ESCAPES[usize::from(i)].1;
            out.extend_from_slice(&[b'_', a, b]);
        }
        _ => out.push(code),
    }
}

/// Append `text` as a 033 value. Characters outside GSM 03.38 are skipped; call
/// `plan_text` first.
pub(crate) fn write_gsm_text(text: &str, out: &mut Vec<u8>) {
    for code in gsm_codes(text) {
        write_gsm(code, out);
    }
}

pub(crate) fn write_ucs2_hex(text: &str, out: &mut Vec<u8>) {
    for unit in text.encode_utf16() {
        write_hex(&unit.to_be_bytes(), out);
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Append `bytes` as uppercase hex.
pub fn write_hex(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX_UPPER[usize::from(b >> 4)]);
        out.push(HEX_UPPER[usize::from(b & 15)]);
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decode hex (either case) into `out`.
pub fn read_hex(hex: &[u8], out: &mut Vec<u8>) -> Result<(), TextError> {
    if hex.len() % 2 != 0 {
        return Err(TextError::OddHex { len: hex.len() });
    }
    out.reserve(hex.len() / 2);
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |k: usize| {
            hex_digit(pair[k]).ok_or(TextError::NotHex {
                offset: 2 * i + k,
                byte: pair[k],
            })
        };
        out.push(digit(0)? << 4 | digit(1)?);
    }
    Ok(())
}

/// Text as it goes into a packet: GSM 03.38 in 033 when every character has a GSM code
/// and it fits in 160 septets, otherwise UCS-2 in 034 with `030:8`.
pub fn encode_text(text: &str) -> Result<UserData, TextError> {
    match plan_text(text)? {
        TextPlan::Gsm => {
            let mut out = Vec::with_capacity(text.len() + 8);
            write_gsm_text(text, &mut out);
            Ok(UserData::Text(out))
        }
        TextPlan::Ucs2 => {
            let mut hex = Vec::with_capacity(text.len() * 4);
            write_ucs2_hex(text, &mut hex);
            Ok(UserData::Binary { dcs: DCS_UCS2, hex })
        }
    }
}

/// One unit read from a 033 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Gsm(u8),
    /// A byte with no GSM meaning (kept for lossy decoding).
    Invalid(u8),
}

/// Read a 033 value as GSM codes, with each code's offset in the value.
///
/// Strict mode fails on an unknown or cut-short escape and on bytes of 0x80 and above;
/// lossy mode does as Kannel: an unknown `_` is GSM 0x5F (`§`) and the rest follows.
pub(crate) fn read_cimd2(
    value: &[u8],
    strict: bool,
    mut emit: impl FnMut(Code, usize) -> Result<(), TextError>,
) -> Result<(), TextError> {
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        let code = match b {
            b'_' => match value.get(i + 1..i + 3) {
                Some(&[x, y]) => match CIMD2_ESCAPES.iter().find(|e| e.1 == [x, y]) {
                    Some(&(code, _)) => {
                        emit(Code::Gsm(code), i)?;
                        i += 3;
                        continue;
                    }
                    None if strict => {
                        return Err(TextError::UnknownEscape {
                            offset: i,
                            escape: [x, y],
                        })
                    }
                    None => Code::Gsm(0x5F),
                },
                _ if strict => return Err(TextError::TruncatedEscape { offset: i }),
                _ => Code::Gsm(0x5F),
            },
            b'@' => Code::Gsm(0x00),
            b'$' => Code::Gsm(0x02),
            b']' => Code::Gsm(0x0E),
            b'}' => Code::Gsm(0x0F),
            0x80.. if strict => return Err(TextError::NotGsm { offset: i, byte: b }),
            0x80.. => Code::Invalid(b),
            _ => Code::Gsm(b),
        };
        emit(code, i)?;
        i += 1;
    }
    Ok(())
}

fn decode_033(user_data: &[u8], strict: bool) -> Result<String, TextError> {
    let mut text = GsmDecoder::new(strict, user_data.len());
    read_cimd2(user_data, strict, |code, offset| match code {
        Code::Gsm(code) => text.code(code, offset),
        Code::Invalid(_) => {
            text.invalid();
            Ok(())
        }
    })?;
    text.finish()
}

/// A 033 value back to text. Fails on anything `encode_text` would not produce
/// (bytes of 0x80 and above, unknown escapes, a dangling GSM escape); the receive-side
/// aliases `@`, `$`, `]` (Å) and `}` (å) are accepted.
pub fn decode_text(user_data: &[u8]) -> Result<String, TextError> {
    decode_033(user_data, true)
}

/// A 033 value back to text the way Kannel receives it: an unknown `_xy` reads as
/// `§xy`, bytes of 0x80 and above become U+FFFD. Never fails.
pub fn decode_text_lossy(user_data: &[u8]) -> String {
    decode_033(user_data, false).unwrap_or_default()
}

/// A 033 value as GSM codes, one per octet (ESC kept), for user data that travels on
/// as binary. Bytes with no GSM meaning are kept as they are.
pub(crate) fn gsm_codes_lossy(user_data: &[u8], out: &mut Vec<u8>) {
    let _ = read_cimd2(user_data, false, |code, _| {
        out.push(match code {
            Code::Gsm(c) | Code::Invalid(c) => c,
        });
        Ok(())
    });
}

/// A 034 value holding UCS-2 (UTF-16 big-endian) as hex, back to text.
pub fn decode_ucs2_hex(hex: &[u8]) -> Result<String, TextError> {
    let mut octets = Vec::with_capacity(hex.len() / 2);
    read_hex(hex, &mut octets)?;
    decode_ucs2(&octets)
}
