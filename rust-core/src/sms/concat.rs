//! Concatenated SMS (GSM 03.40 9.2.3.24.1 and .8): splitting a message into parts
//! that each carry a concatenation user data header, parsing such a header, and
//! choosing references.
//!
//! The split works on the message's own content (a text, or octets) and gives each
//! part as a slice of it; every protocol then writes a part as it writes a single SM
//! (CIMD2's 033 escapes or 034 hex, SMPP's packed or unpacked septets), adding the
//! header (or SMPP's sar_* TLVs) this module builds.

use std::collections::HashMap;

use thiserror::Error;

use super::text::{gsm_code, Gsm, MAX_BINARY_OCTETS, MAX_GSM_SEPTETS, MAX_UCS2_UNITS};
use crate::message::{Address, Coding, Message, Part};

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

/// How a session sends a message longer than one SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongMessages {
    /// Parts with a concatenation user data header (CIMD2's 032; SMPP's
    /// short_message with esm_class UDHI).
    Udh(RefWidth),
    /// SMPP: parts with sar_msg_ref_num, sar_total_segments and sar_segment_seqnum;
    /// the SMSC writes the header (room is left for a 16-bit reference).
    Sar,
    /// SMPP: the whole message in one submit_sm's message_payload.
    Whole,
}

impl Default for LongMessages {
    fn default() -> Self {
        LongMessages::Udh(RefWidth::Eight)
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
fn capacities(coding: PartCoding, width: RefWidth) -> (usize, usize) {
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

/// Split a message's payload as its coding says.
pub fn split_message(msg: &Message, width: RefWidth) -> Result<Split<'_>, ConcatError> {
    match msg.coding {
        Coding::Text => split_text(msg.text_str().ok_or(ConcatError::NotUtf8)?, width),
        Coding::Binary => split_binary(msg.payload(), width),
    }
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

/// The concatenation user data header of part `index` of `total` (UDHL included).
pub fn concat_udh(reference: u16, total: u8, index: u8, width: RefWidth) -> Vec<u8> {
    let mut h = Vec::with_capacity(MAX_CONCAT_UDH);
    match width {
        RefWidth::Eight => {
            h.extend_from_slice(&[5, IEI_CONCAT_8, 3, reference as u8]);
        }
        RefWidth::Sixteen => {
            h.extend_from_slice(&[6, IEI_CONCAT_16, 4]);
            h.extend_from_slice(&reference.to_be_bytes());
        }
    }
    h.push(total);
    h.push(index);
    h
}

/// The header a part carries: the 8-bit element when its reference fits in 8 bits,
/// else the 16-bit one.
pub fn part_udh(part: &Part) -> Vec<u8> {
    let width = if part.reference <= 0xFF {
        RefWidth::Eight
    } else {
        RefWidth::Sixteen
    };
    concat_udh(part.reference, part.total, part.index, width)
}

/// A user data header read from the front of user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udh {
    /// Octets of the header, UDHL included (the user data proper starts there).
    pub len: usize,
    /// The concatenation element, when there is a valid one.
    pub part: Option<Part>,
    /// The header holds elements other than concatenation (ports, WAP...): the
    /// user data then means more than its text.
    pub other_elements: bool,
}

/// Read the user data header at the front of `user_data` (UDHL first). `None` when it
/// is malformed (a length running past the data, an element cut short): the caller
/// then treats the message as a single SM with its octets as they are. A
/// concatenation element with a total of 0 or an index outside 1..=total is ignored,
/// as GSM 03.40 asks, and so is a second one.
pub fn parse_udh(user_data: &[u8]) -> Option<Udh> {
    let udhl = usize::from(*user_data.first()?);
    let elements = user_data.get(1..1 + udhl)?;
    let mut part = None;
    let mut other_elements = false;
    let mut seen_concat = false;
    let mut rest = elements;
    while !rest.is_empty() {
        let (&iei, tail) = rest.split_first()?;
        let (&iedl, tail) = tail.split_first()?;
        let data = tail.get(..usize::from(iedl))?;
        rest = &tail[usize::from(iedl)..];
        let concat = match (iei, data) {
            (IEI_CONCAT_8, &[r, total, index]) => Some((u16::from(r), total, index)),
            (IEI_CONCAT_16, &[hi, lo, total, index]) => {
                Some((u16::from_be_bytes([hi, lo]), total, index))
            }
            (IEI_CONCAT_8 | IEI_CONCAT_16, _) => None,
            _ => {
                other_elements = true;
                None
            }
        };
        if let Some((reference, total, index)) = concat {
            if !seen_concat {
                part = Part::new(reference, total, index).ok();
            }
            seen_concat = true;
        }
    }
    Some(Udh {
        len: 1 + udhl,
        part,
        other_elements,
    })
}

/// Chooses concatenation references per destination, so that consecutive long
/// messages to one phone never share one (a phone joins parts by sender and
/// reference). Bounded: past `MAX_TRACKED` destinations the table starts again, new
/// destinations then starting from a shared counter.
#[derive(Debug, Default)]
pub struct ReferenceAllocator {
    next: HashMap<Address, u16>,
    seed: u16,
}

const MAX_TRACKED: usize = 4096;

impl ReferenceAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The reference for the next long message to `to`, in the range `width` holds.
    pub fn next(&mut self, to: &Address, width: RefWidth) -> u16 {
        if self.next.len() >= MAX_TRACKED && !self.next.contains_key(to) {
            self.next.clear();
        }
        let seed = &mut self.seed;
        let r = self.next.entry(*to).or_insert_with(|| {
            *seed = seed.wrapping_add(97);
            *seed
        });
        let reference = *r;
        *r = r.wrapping_add(1);
        match width {
            RefWidth::Eight => reference & 0xFF,
            RefWidth::Sixteen => reference,
        }
    }
}

#[cfg(test)]
mod tests;
