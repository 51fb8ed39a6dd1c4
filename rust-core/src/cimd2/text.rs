//! Text for CIMD2: the GSM 03.38 default alphabet (with its extension table) written in
//! CIMD2's `_xx` escape convention for parameter 033, and UCS-2 as hex for 034.

use super::error::TextError;

/// Septets in one SMS of GSM 7-bit text.
pub const MAX_GSM_SEPTETS: usize = 160;
/// UCS-2 code units in one SMS (140 octets).
pub const MAX_UCS2_UNITS: usize = 70;
/// Octets of binary user data in one SMS.
pub const MAX_BINARY_OCTETS: usize = 140;
/// Data coding scheme for UCS-2 (`030:8`).
pub const DCS_UCS2: u8 = 8;
/// Data coding scheme for 8-bit data (`030:4`).
pub const DCS_8BIT: u8 = 4;

const GSM_ESC: u8 = 0x1B;

/// GSM 03.38 default alphabet; index = GSM code. 0x1B (escape) is never looked up here.
const GSM_BASE: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38 extension table: (code after ESC, character).
const GSM_EXT: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

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

/// ASCII character -> GSM base code (NONE when it has none).
const ASCII_TO_GSM: [u8; 128] = {
    let mut table = [NONE; 128];
    let mut code = 0;
    while code < 128 {
        let c = GSM_BASE[code] as u32;
        if c < 128 && code != GSM_ESC as usize {
            table[c as usize] = code as u8;
        }
        code += 1;
    }
    table
};

/// ASCII character -> GSM extension code (NONE when it has none).
const ASCII_TO_GSM_EXT: [u8; 128] = {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < GSM_EXT.len() {
        let c = GSM_EXT[i].1 as u32;
        if c < 128 {
            table[c as usize] = GSM_EXT[i].0;
        }
        i += 1;
    }
    table
};

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

/// A character's place in GSM 03.38.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gsm {
    Base(u8),
    /// Written as ESC followed by this code.
    Ext(u8),
}

/// Where `c` sits in the GSM 03.38 alphabet, if anywhere.
pub fn gsm_code(c: char) -> Option<Gsm> {
    let u = c as u32;
    if u < 128 {
        let base = ASCII_TO_GSM[u as usize];
        if base != NONE {
            return Some(Gsm::Base(base));
        }
        let ext = ASCII_TO_GSM_EXT[u as usize];
        return (ext != NONE).then_some(Gsm::Ext(ext));
    }
    if c == '€' {
        return Some(Gsm::Ext(0x65));
    }
    GSM_BASE
        .iter()
        .position(|&g| g == c)
        .map(|code| Gsm::Base(code as u8))
}

/// User data ready for a submit or deliver packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    /// Value for 033: GSM text in the CIMD2 character set, `_xx` escapes included.
    Text(Vec<u8>),
    /// Values for 030 (data coding scheme) and 034 (uppercase hex).
    Binary { dcs: u8, hex: Vec<u8> },
}

/// How a text will travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextPlan {
    Gsm,
    Ucs2,
}

/// GSM when every character has a GSM code and the septets fit, else UCS-2 if that fits.
pub(crate) fn plan_text(text: &str) -> Result<TextPlan, TextError> {
    let mut septets = 0usize;
    let mut all_gsm = true;
    for c in text.chars() {
        match gsm_code(c) {
            Some(Gsm::Base(_)) => septets += 1,
            Some(Gsm::Ext(_)) => septets += 2,
            None => {
                all_gsm = false;
                break;
            }
        }
    }
    if all_gsm {
        return if septets <= MAX_GSM_SEPTETS {
            Ok(TextPlan::Gsm)
        } else {
            Err(TextError::TooLongGsm { septets })
        };
    }
    let units = text.encode_utf16().count();
    if units <= MAX_UCS2_UNITS {
        Ok(TextPlan::Ucs2)
    } else {
        Err(TextError::TooLongUcs2 { units })
    }
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
    for c in text.chars() {
        match gsm_code(c) {
            Some(Gsm::Base(code)) => write_gsm(code, out),
            Some(Gsm::Ext(code)) => {
                write_gsm(GSM_ESC, out);
                write_gsm(code, out);
            }
            None => {}
        }
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

fn ext_char(code: u8) -> Option<char> {
    GSM_EXT.iter().find(|e| e.0 == code).map(|e| e.1)
}

fn decode_033(user_data: &[u8], strict: bool) -> Result<String, TextError> {
    let mut out = String::with_capacity(user_data.len());
    let mut escape_at: Option<usize> = None;
    read_cimd2(user_data, strict, |code, offset| {
        let code = match code {
            Code::Gsm(code) => code,
            Code::Invalid(_) => {
                escape_at = None;
                out.push(char::REPLACEMENT_CHARACTER);
                return Ok(());
            }
        };
        if let Some(at) = escape_at.take() {
            match ext_char(code) {
                Some(c) => out.push(c),
                None if strict => return Err(TextError::BadExtension { offset: at }),
                // GSM 03.38: an unknown extension shows as the base character.
                None => out.push(GSM_BASE[usize::from(code & 0x7F)]),
            }
        } else if code == GSM_ESC {
            escape_at = Some(offset);
        } else {
            out.push(GSM_BASE[usize::from(code & 0x7F)]);
        }
        Ok(())
    })?;
    match escape_at {
        Some(offset) if strict => Err(TextError::BadExtension { offset }),
        _ => Ok(out),
    }
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

/// UCS-2 (UTF-16 big-endian) octets to text.
pub fn decode_ucs2(octets: &[u8]) -> Result<String, TextError> {
    if octets.len() % 2 != 0 {
        return Err(TextError::OddUcs2 {
            octets: octets.len(),
        });
    }
    let units = octets
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]));
    let mut out = String::with_capacity(octets.len());
    let mut units_read = 0;
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| TextError::UnpairedSurrogate {
            offset: units_read * 2,
        })?;
        units_read += c.len_utf16();
        out.push(c);
    }
    Ok(out)
}

/// What the 030 data coding scheme says about the user data (GSM 03.38 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    EightBit,
    Ucs2,
}

pub fn alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        // General data coding (00xx) and its auto-deletion twin (01xx).
        0x0..=0x7 => {
            if dcs & 0x20 != 0 {
                // Compressed text cannot be read here: pass it on as octets.
                return Alphabet::EightBit;
            }
            match (dcs >> 2) & 3 {
                1 => Alphabet::EightBit,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Gsm7,
            }
        }
        0xE => Alphabet::Ucs2,
        0xF if dcs & 0x04 != 0 => Alphabet::EightBit,
        _ => Alphabet::Gsm7,
    }
}
