//! data_coding: what SMPP's values mean for the octets of short_message, and text to
//! and from those octets (the alphabets themselves are in `sms::text`).

use super::error::SmppError;
use crate::sms::text::{
    alphabet, decode_gsm, decode_latin1, decode_ucs2, gsm_code, gsm_codes, pack_septets,
    unpack_septets, write_latin1, write_ucs2, Alphabet, TextError,
};

/// data_coding values (SMPP 3.4 section 5.2.19).
pub mod data_coding {
    /// SMSC default alphabet: GSM 03.38 for the SMSCs this crate meets (`TextConfig`
    /// says whether packed).
    pub const SMSC_DEFAULT: u8 = 0x00;
    /// IA5 (CCITT T.50) / ASCII.
    pub const IA5: u8 = 0x01;
    /// Octet unspecified (8-bit binary), as 0x04.
    pub const OCTET_UNSPECIFIED: u8 = 0x02;
    pub const LATIN1: u8 = 0x03;
    /// Octet unspecified (8-bit binary).
    pub const BINARY: u8 = 0x04;
    pub const JIS: u8 = 0x05;
    pub const CYRILLIC: u8 = 0x06;
    pub const LATIN_HEBREW: u8 = 0x07;
    /// UCS-2 (UTF-16 big-endian, surrogate pairs accepted).
    pub const UCS2: u8 = 0x08;
    pub const PICTOGRAM: u8 = 0x09;
    pub const ISO_2022_JP: u8 = 0x0A;
    pub const EXTENDED_KANJI_JIS: u8 = 0x0D;
    pub const KS_C_5601: u8 = 0x0E;
}

/// How an SMSC expects text with data_coding 0 (its default alphabet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TextConfig {
    /// GSM 03.38 packed 8 septets per 7 octets; otherwise one septet per octet, which
    /// is what most SMSCs expect over SMPP.
    pub gsm_packed: bool,
}

/// What a data_coding value says about the octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    /// GSM 03.38, packed or not per `TextConfig`.
    Gsm7,
    /// IA5 / ASCII.
    Ascii,
    Latin1,
    Ucs2,
    /// Octets with no text meaning here (binary, or a character set this crate does
    /// not convert).
    Binary,
}

/// The charset of a data_coding value. 0-15 are SMPP's own values; above them SMPP 3.4
/// follows the GSM 03.38 data coding scheme (message class and indication groups).
pub fn charset(data_coding: u8) -> Charset {
    match data_coding {
        data_coding::SMSC_DEFAULT => Charset::Gsm7,
        data_coding::IA5 => Charset::Ascii,
        data_coding::LATIN1 => Charset::Latin1,
        data_coding::UCS2 => Charset::Ucs2,
        // Octet unspecified, and character sets this crate does not convert.
        0x02 | 0x04..=0x07 | 0x09..=0x0F => Charset::Binary,
        dcs => match alphabet(dcs) {
            Alphabet::Gsm7 => Charset::Gsm7,
            Alphabet::EightBit => Charset::Binary,
            Alphabet::Ucs2 => Charset::Ucs2,
        },
    }
}

/// Append GSM codes (one per octet) in the form `config` gives data_coding 0, after
/// `fill_bits` when packed (the alignment after a user data header).
pub fn write_gsm_codes(codes: &[u8], fill_bits: usize, config: &TextConfig, out: &mut Vec<u8>) {
    if config.gsm_packed {
        pack_septets(codes, fill_bits, out);
    } else {
        out.extend_from_slice(codes);
    }
}

/// GSM codes, one per octet, from user data in the form `config` gives data_coding 0.
pub fn read_gsm_codes(octets: &[u8], fill_bits: usize, config: &TextConfig, out: &mut Vec<u8>) {
    if config.gsm_packed {
        unpack_septets(octets, fill_bits, out);
    } else {
        out.extend_from_slice(octets);
    }
}

/// Append `text` as user data of this data_coding. Fails on a character the charset
/// lacks and on a binary data_coding; the length is the caller's to check.
pub fn encode_text(
    text: &str,
    data_coding: u8,
    config: &TextConfig,
    out: &mut Vec<u8>,
) -> Result<(), SmppError> {
    match charset(data_coding) {
        Charset::Gsm7 => {
            if let Some(c) = text.chars().find(|&c| gsm_code(c).is_none()) {
                return Err(TextError::Unencodable {
                    charset: "GSM 03.38",
                    c,
                }
                .into());
            }
            let codes: Vec<u8> = gsm_codes(text).collect();
            write_gsm_codes(&codes, 0, config, out);
        }
        Charset::Ascii => {
            if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
                return Err(TextError::Unencodable { charset: "IA5", c }.into());
            }
            out.extend_from_slice(text.as_bytes());
        }
        Charset::Latin1 => write_latin1(text, out)?,
        Charset::Ucs2 => write_ucs2(text, out),
        Charset::Binary => return Err(SmppError::NotText { data_coding }),
    }
    Ok(())
}

/// User data of this data_coding (with no user data header) as text. GSM is read the
/// way Kannel reads it: octets of 0x80 and above become U+FFFD. IA5 is read as
/// Latin-1, its superset. UCS-2 fails on an odd length or an unpaired surrogate.
pub fn decode_text(
    octets: &[u8],
    data_coding: u8,
    config: &TextConfig,
) -> Result<String, SmppError> {
    match charset(data_coding) {
        Charset::Gsm7 if config.gsm_packed => {
            let mut codes = Vec::with_capacity(octets.len() * 8 / 7);
            unpack_septets(octets, 0, &mut codes);
            Ok(decode_gsm(&codes, false)?)
        }
        Charset::Gsm7 => Ok(decode_gsm(octets, false)?),
        Charset::Ascii | Charset::Latin1 => Ok(decode_latin1(octets)),
        Charset::Ucs2 => Ok(decode_ucs2(octets)?),
        Charset::Binary => Err(SmppError::NotText { data_coding }),
    }
}
