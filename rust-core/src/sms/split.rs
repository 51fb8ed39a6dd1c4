//! How many parts a message takes and how it is cut (GSM 03.40 9.2.3.24): exact
//! capacities per coding and header width, on the message's content alone (a text,
//! or octets), so that the message type can check its own limit. The headers, the
//! parts as messages and their references are in [`concat`](super::concat).

use thiserror::Error;

use super::text::{gsm_code, Gsm, MAX_BINARY_OCTETS, MAX_GSM_SEPTETS, MAX_UCS2_UNITS};

/// Most parts one concatenated message may have (the total is one octet).
pub const MAX_PARTS: usize = 255;
/// Information element: concatenated SM, 8-bit reference.
pub const IEI_CONCAT_8: u8 = 0x00;
/// Information element: concatenated SM, 16-bit reference.
pub const IEI_CONCAT_16: u8 = 0x08;
/// Octets of the user data that hold header and data together.
const USER_DATA_OCTETS: usize = 140;
/// Longest concatenation header: UDHL, IEI, IEDL, 16-bit reference, total, index.
pub const MAX_CONCAT_UDH: usize = 7;

/// Why a message cannot be split.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConcatError {
    #[error("message needs {parts} parts; a concatenated SMS has at most {MAX_PARTS}")]
    TooManyParts { parts: usize },
    #[error("text payload is not UTF-8")]
    NotUtf8,
}

/// How the parts' user data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartCoding {
    /// GSM 03.38 7-bit text.
    Gsm,
    /// UCS-2 (UTF-16) text.
    Ucs2,
    /// 8-bit octets.
    Binary,
}

/// Width of the concatenation reference (which information element is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RefWidth {
    /// IEI 0x00: 6-octet header, 153 septets / 67 UCS-2 characters / 134 octets a part.
    #[default]
    Eight,
    /// IEI 0x08: 7-octet header, 152 / 66 / 133.
    Sixteen,
}

impl RefWidth {
    /// Octets of the header, UDHL included.
    pub fn udh_len(self) -> usize {
        match self {
            RefWidth::Eight => 6,
            RefWidth::Sixteen => 7,
        }
    }
}

/// What one part holds, as a slice of the message's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    Text(&'a str),
    Octets(&'a [u8]),
}

/// A message cut into the parts it travels in. One part: a single SM, no header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    pub coding: PartCoding,
    pub chunks: Vec<Chunk<'a>>,
}

impl Split<'_> {
    pub fn is_concatenated(&self) -> bool {
        self.chunks.len() > 1
    }

    /// The parts' number (1 for a single SM).
    pub fn total(&self) -> usize {
        self.chunks.len()
    }
}

/// How a part's content is measured: septets, UTF-16 units or octets.
pub(crate) fn capacities(coding: PartCoding, width: RefWidth) -> (usize, usize) {
    let room = USER_DATA_OCTETS - width.udh_len();
    match coding {
        PartCoding::Gsm => (MAX_GSM_SEPTETS, room * 8 / 7),
        PartCoding::Ucs2 => (MAX_UCS2_UNITS, room / 2),
        PartCoding::Binary => (MAX_BINARY_OCTETS, room),
    }
}

/// The coding a text travels in: GSM 03.38 when every character has a code there,
/// else UCS-2.
pub fn text_coding(text: &str) -> PartCoding {
    if text.chars().all(|c| gsm_code(c).is_some()) {
        PartCoding::Gsm
    } else {
        PartCoding::Ucs2
    }
}

/// A character's size in its coding's unit: GSM extension characters take two
/// septets, characters beyond the BMP two UTF-16 units.
fn char_units(c: char, coding: PartCoding) -> usize {
    match coding {
        PartCoding::Gsm => match gsm_code(c) {
            Some(Gsm::Ext(_)) => 2,
            _ => 1,
        },
        _ => c.len_utf16(),
    }
}

/// Cut `text` into chunks of at most `per_part` units without splitting a character
/// (so neither a GSM escape pair nor a surrogate pair is ever split).
fn split_str(text: &str, coding: PartCoding, per_part: usize) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (at, c) in text.char_indices() {
        let n = char_units(c, coding);
        if used + n > per_part {
            chunks.push(Chunk::Text(&text[start..at]));
            start = at;
            used = 0;
        }
        used += n;
    }
    chunks.push(Chunk::Text(&text[start..]));
    chunks
}

/// Split a text into the parts it travels in, with the concatenation header `width`.
pub fn split_text(text: &str, width: RefWidth) -> Result<Split<'_>, ConcatError> {
    let coding = text_coding(text);
    let (single, per_part) = capacities(coding, width);
    let units: usize = text.chars().map(|c| char_units(c, coding)).sum();
    let chunks = if units <= single {
        vec![Chunk::Text(text)]
    } else {
        split_str(text, coding, per_part)
    };
    check_total(chunks.len())?;
    Ok(Split { coding, chunks })
}

/// Split octets into the parts they travel in.
pub fn split_binary(data: &[u8], width: RefWidth) -> Result<Split<'_>, ConcatError> {
    let (single, per_part) = capacities(PartCoding::Binary, width);
    let chunks: Vec<Chunk<'_>> = if data.len() <= single {
        vec![Chunk::Octets(data)]
    } else {
        data.chunks(per_part).map(Chunk::Octets).collect()
    };
    check_total(chunks.len())?;
    Ok(Split {
        coding: PartCoding::Binary,
        chunks,
    })
}

fn check_total(parts: usize) -> Result<(), ConcatError> {
    if parts > MAX_PARTS {
        return Err(ConcatError::TooManyParts { parts });
    }
    Ok(())
}

/// How many SMS a text takes (8-bit references, as most senders use), or the error
/// sending it would give.
pub fn parts_needed(text: &str) -> Result<usize, ConcatError> {
    split_text(text, RefWidth::Eight).map(|s| s.total())
}
