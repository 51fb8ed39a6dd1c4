//! Text as SMS carries it: the GSM 03.38 default alphabet (with its extension table),
//! 7-bit packing, UCS-2 and Latin-1, plus the choice between GSM and UCS-2 for a text.
//!
//! GSM text is handled here as *codes*, one GSM code per octet with ESC (0x1B) in front
//! of an extension character; each protocol writes those codes in its own way.

use thiserror::Error;

/// Septets in one SMS of GSM 7-bit text.
pub const MAX_GSM_SEPTETS: usize = 160;
/// UCS-2 code units in one SMS (140 octets).
pub const MAX_UCS2_UNITS: usize = 70;
/// Octets of binary user data in one SMS.
pub const MAX_BINARY_OCTETS: usize = 140;
/// GSM 03.38 data coding scheme for UCS-2.
pub const DCS_UCS2: u8 = 8;
/// GSM 03.38 data coding scheme for 8-bit data.
pub const DCS_8BIT: u8 = 4;

/// The GSM escape to the extension table.
pub const GSM_ESC: u8 = 0x1B;
/// GSM carriage return, also the padding septet of packed text.
const GSM_CR: u8 = 0x0D;

/// Why text could not be converted to or from an SMS form (GSM 03.38, UCS-2, Latin-1,
/// or a protocol's writing of them).
///
/// Offsets count from the start of the value being decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TextError {
    #[error("text needs {septets} GSM 7-bit septets; one SMS holds 160")]
    TooLongGsm { septets: usize },
    #[error("text needs {units} UCS-2 code units; one SMS holds 70")]
    TooLongUcs2 { units: usize },
    #[error("binary user data of {octets} octets; one SMS holds 140")]
    TooLongBinary { octets: usize },
    #[error("byte 0x{byte:02X} at offset {offset} is not a GSM 03.38 code")]
    NotGsm { offset: usize, byte: u8 },
    #[error("unknown CIMD2 escape `_{}{}` at offset {offset}", char::from(.escape[0]), char::from(.escape[1]))]
    UnknownEscape { offset: usize, escape: [u8; 2] },
    #[error("CIMD2 escape `_` at offset {offset} is cut short")]
    TruncatedEscape { offset: usize },
    #[error("GSM escape at offset {offset} is not followed by an extension-table code")]
    BadExtension { offset: usize },
    #[error("byte 0x{byte:02X} at offset {offset} is not a hex digit")]
    NotHex { offset: usize, byte: u8 },
    #[error("{len} hex digits: an even number is required")]
    OddHex { len: usize },
    #[error("UCS-2 data of {octets} octets is not a whole number of code units")]
    OddUcs2 { octets: usize },
    #[error("unpaired UTF-16 surrogate at octet {offset}")]
    UnpairedSurrogate { offset: usize },
    #[error("character {c:?} has no {charset} code")]
    Unencodable { charset: &'static str, c: char },
}

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

/// The character of a base-table code (the high bit is ignored).
pub fn gsm_base_char(code: u8) -> char {
    GSM_BASE[usize::from(code & 0x7F)]
}

/// The character of an extension-table code (the code after ESC), if it has one.
pub fn gsm_ext_char(code: u8) -> Option<char> {
    GSM_EXT.iter().find(|e| e.0 == code).map(|e| e.1)
}

/// The GSM codes of `text`, one per octet, ESC in front of extension characters.
/// Characters outside GSM 03.38 are skipped; call `plan_text` or `gsm_septets` first.
pub fn gsm_codes(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.chars().flat_map(|c| {
        let (codes, n) = match gsm_code(c) {
            Some(Gsm::Base(code)) => ([code, 0], 1),
            Some(Gsm::Ext(code)) => ([GSM_ESC, code], 2),
            None => ([0, 0], 0),
        };
        codes.into_iter().take(n)
    })
}

/// Septets `text` takes in GSM 03.38 (extension characters count two), or `None`
/// when a character has no GSM code.
pub fn gsm_septets(text: &str) -> Option<usize> {
    text.chars().try_fold(0usize, |n, c| match gsm_code(c)? {
        Gsm::Base(_) => Some(n + 1),
        Gsm::Ext(_) => Some(n + 2),
    })
}

/// How a text will travel in one SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPlan {
    Gsm,
    Ucs2,
}

/// GSM when every character has a GSM code and the septets fit, else UCS-2 if that fits.
pub fn plan_text(text: &str) -> Result<TextPlan, TextError> {
    plan_text_with_udh(text, 0)
}

/// As `plan_text`, for the SMS that also carries a user data header of `udh_octets`
/// octets (UDHL included; 0: none): header, fill bits and text share 140 octets.
pub fn plan_text_with_udh(text: &str, udh_octets: usize) -> Result<TextPlan, TextError> {
    let room = (MAX_BINARY_OCTETS).saturating_sub(udh_octets);
    if let Some(septets) = gsm_septets(text) {
        return if septets <= room * 8 / 7 {
            Ok(TextPlan::Gsm)
        } else {
            Err(TextError::TooLongGsm { septets })
        };
    }
    let units = text.encode_utf16().count();
    if units <= room / 2 {
        Ok(TextPlan::Ucs2)
    } else {
        Err(TextError::TooLongUcs2 { units })
    }
}

/// Whether `octets` of binary user data fit one SMS beside a header of `udh_octets`.
pub fn binary_fits(octets: usize, udh_octets: usize) -> Result<(), TextError> {
    if octets + udh_octets <= MAX_BINARY_OCTETS {
        Ok(())
    } else {
        Err(TextError::TooLongBinary { octets })
    }
}

/// Builds text from GSM codes fed one at a time, resolving ESC + extension pairs.
///
/// Strict mode fails on ESC followed by a code with no extension meaning (and on a
/// dangling ESC at the end); lossy mode shows such a code as its base character, as
/// GSM 03.38 asks, and drops a dangling ESC.
#[derive(Debug)]
pub struct GsmDecoder {
    out: String,
    strict: bool,
    /// Offset of an ESC still waiting for its extension code.
    escape_at: Option<usize>,
}

impl GsmDecoder {
    pub fn new(strict: bool, capacity: usize) -> GsmDecoder {
        GsmDecoder {
            out: String::with_capacity(capacity),
            strict,
            escape_at: None,
        }
    }

    /// One GSM code (the high bit is ignored) read at `offset` of the input.
    pub fn code(&mut self, code: u8, offset: usize) -> Result<(), TextError> {
        let code = code & 0x7F;
        if let Some(at) = self.escape_at.take() {
            match gsm_ext_char(code) {
                Some(c) => self.out.push(c),
                None if self.strict => return Err(TextError::BadExtension { offset: at }),
                None => self.out.push(gsm_base_char(code)),
            }
        } else if code == GSM_ESC {
            self.escape_at = Some(offset);
        } else {
            self.out.push(gsm_base_char(code));
        }
        Ok(())
    }

    /// A unit with no GSM meaning, kept as U+FFFD (lossy decoding only).
    pub fn invalid(&mut self) {
        self.escape_at = None;
        self.out.push(char::REPLACEMENT_CHARACTER);
    }

    pub fn finish(self) -> Result<String, TextError> {
        match self.escape_at {
            Some(offset) if self.strict => Err(TextError::BadExtension { offset }),
            _ => Ok(self.out),
        }
    }
}

/// GSM codes, one per octet, to text. Strict mode fails on octets of 0x80 and above
/// and on a bad extension; lossy mode turns the former into U+FFFD and never fails.
pub fn decode_gsm(codes: &[u8], strict: bool) -> Result<String, TextError> {
    let mut text = GsmDecoder::new(strict, codes.len());
    for (offset, &code) in codes.iter().enumerate() {
        if code >= 0x80 {
            if strict {
                return Err(TextError::NotGsm { offset, byte: code });
            }
            text.invalid();
        } else {
            text.code(code, offset)?;
        }
    }
    text.finish()
}

/// Pack GSM codes 8 per 7 octets, least significant bit first (GSM 03.38 section 6.1.2.1),
/// after `fill_bits` zero bits (the fill that aligns text after a user data header).
///
/// When the last octet would have 7 spare bits they hold a CR, and a text that itself
/// ends in CR exactly on an octet boundary gets a second CR, as GSM 03.38 requires so
/// that the receiver can tell padding from text.
pub fn pack_septets(codes: &[u8], fill_bits: usize, out: &mut Vec<u8>) {
    let fill_bits = fill_bits % 8;
    let total_bits = fill_bits + 7 * codes.len();
    let pad = match total_bits % 8 {
        1 => Some(GSM_CR),
        0 if codes.last() == Some(&GSM_CR) => Some(GSM_CR),
        _ => None,
    };
    out.reserve(total_bits.div_ceil(8) + 1);
    let mut acc: u32 = 0;
    let mut bits = fill_bits;
    for &code in codes.iter().chain(pad.as_ref()) {
        acc |= u32::from(code & 0x7F) << bits;
        bits += 7;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

/// Unpack GSM codes from `octets` after skipping `fill_bits` bits: the inverse of
/// `pack_septets`, dropping a CR that only fills the 7 spare bits of the last octet.
pub fn unpack_septets(octets: &[u8], fill_bits: usize, out: &mut Vec<u8>) {
    let available = (octets.len() * 8).saturating_sub(fill_bits);
    let count = available / 7;
    out.reserve(count);
    let start = out.len();
    let mut bit = fill_bits;
    for _ in 0..count {
        let byte = bit / 8;
        let lo = u16::from(octets.get(byte).copied().unwrap_or(0));
        let hi = u16::from(octets.get(byte + 1).copied().unwrap_or(0));
        out.push((((hi << 8 | lo) >> (bit % 8)) & 0x7F) as u8);
        bit += 7;
    }
    // The septets end exactly on the last octet's end: a final CR there is padding.
    if count > 0 && available % 7 == 0 && out.last() == Some(&GSM_CR) {
        out.truncate(start + count - 1);
    }
}

/// Fill bits between a user data header of `udh_octets` octets (UDHL included) and the
/// septets that follow it, so that the text starts on a septet boundary.
pub fn udh_fill_bits(udh_octets: usize) -> usize {
    (7 - (udh_octets * 8) % 7) % 7
}

/// Append `text` as UCS-2 (UTF-16 big-endian) octets.
pub fn write_ucs2(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() * 2);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
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

/// Append `text` as ISO 8859-1 octets; fails on a character above U+00FF.
pub fn write_latin1(text: &str, out: &mut Vec<u8>) -> Result<(), TextError> {
    out.reserve(text.len());
    for c in text.chars() {
        let byte = u8::try_from(u32::from(c)).map_err(|_| TextError::Unencodable {
            charset: "Latin-1",
            c,
        })?;
        out.push(byte);
    }
    Ok(())
}

/// ISO 8859-1 octets to text (every octet is a character).
pub fn decode_latin1(octets: &[u8]) -> String {
    octets.iter().map(|&b| char::from(b)).collect()
}

/// What a GSM 03.38 data coding scheme says about the user data (section 4).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_gsm_0338_example() {
        // "hellohello" packed, as in GSM 03.38 / common references: E8 32 9B FD 46 97 D9 EC 37.
        let codes: Vec<u8> = gsm_codes("hellohello").collect();
        let mut packed = Vec::new();
        pack_septets(&codes, 0, &mut packed);
        assert_eq!(
            packed,
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        let mut back = Vec::new();
        unpack_septets(&packed, 0, &mut back);
        assert_eq!(back, codes);
    }

    #[test]
    fn seven_septets_are_padded_with_cr_and_the_pad_is_dropped() {
        let codes: Vec<u8> = gsm_codes("1234567").collect();
        let mut packed = Vec::new();
        pack_septets(&codes, 0, &mut packed);
        assert_eq!(packed.len(), 7);
        assert_eq!(packed[6] >> 1, GSM_CR);
        let mut back = Vec::new();
        unpack_septets(&packed, 0, &mut back);
        assert_eq!(back, codes);
        // Eight septets fill seven octets exactly: no pad, nothing dropped.
        let codes: Vec<u8> = gsm_codes("12345678").collect();
        packed.clear();
        pack_septets(&codes, 0, &mut packed);
        assert_eq!(packed.len(), 7);
        back.clear();
        unpack_septets(&packed, 0, &mut back);
        assert_eq!(back, codes);
    }

    #[test]
    fn text_ending_in_cr_on_a_boundary_gets_a_second_cr() {
        let codes: Vec<u8> = gsm_codes("1234567\r").collect();
        let mut packed = Vec::new();
        pack_septets(&codes, 0, &mut packed);
        let mut back = Vec::new();
        unpack_septets(&packed, 0, &mut back);
        // GSM 03.38: the receiver shows both CRs.
        assert_eq!(decode_gsm(&back, true).unwrap(), "1234567\r\r");
    }

    #[test]
    fn fill_bits_after_a_udh() {
        // A 6-octet concatenation UDH is 48 bits: one fill bit reaches 49 = 7 septets.
        assert_eq!(udh_fill_bits(6), 1);
        assert_eq!(udh_fill_bits(7), 0);
        assert_eq!(udh_fill_bits(0), 0);
        let codes: Vec<u8> = gsm_codes("abc").collect();
        let mut packed = Vec::new();
        pack_septets(&codes, 1, &mut packed);
        assert_eq!(packed[0] & 1, 0);
        let mut back = Vec::new();
        unpack_septets(&packed, 1, &mut back);
        assert_eq!(back, codes);
    }

    #[test]
    fn gsm_decoding_strict_and_lossy() {
        assert_eq!(decode_gsm(&[0x1B, 0x65, 0x00], true).unwrap(), "€@");
        assert_eq!(
            decode_gsm(&[b'a', 0x1B], true),
            Err(TextError::BadExtension { offset: 1 })
        );
        assert_eq!(decode_gsm(&[b'a', 0x1B], false).unwrap(), "a");
        assert_eq!(
            decode_gsm(&[b'a', 0xC1], true),
            Err(TextError::NotGsm {
                offset: 1,
                byte: 0xC1
            })
        );
        assert_eq!(decode_gsm(&[b'a', 0xC1], false).unwrap(), "a\u{FFFD}");
    }

    #[test]
    fn latin1_and_ucs2() {
        let mut out = Vec::new();
        write_latin1("Müller", &mut out).unwrap();
        assert_eq!(out, b"M\xFCller");
        assert_eq!(decode_latin1(&out), "Müller");
        assert_eq!(
            write_latin1("€", &mut out),
            Err(TextError::Unencodable {
                charset: "Latin-1",
                c: '€'
            })
        );
        out.clear();
        write_ucs2("é😀", &mut out);
        assert_eq!(out, [0x00, 0xE9, 0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(decode_ucs2(&out).unwrap(), "é😀");
    }
}
