//! Concatenated SMS (GSM 03.40 9.2.3.24.1 and .8): a message as the parts it travels
//! in (the cut itself is [`split`](super::split)), each with a concatenation user data
//! header; parsing such a header; choosing references.
//!
//! The split works on the message's own content (a text, or octets) and gives each
//! part as a slice of it; every protocol then writes a part as it writes a single SM
//! (CIMD2's 033 escapes or 034 hex, SMPP's packed or unpacked septets), adding the
//! header (or SMPP's sar_* TLVs) this module builds.

use std::collections::HashMap;

pub use super::split::{
    parts_needed, split_binary, split_text, text_coding, Chunk, ConcatError, PartCoding, RefWidth,
    Split, IEI_CONCAT_16, IEI_CONCAT_8, MAX_CONCAT_UDH, MAX_PARTS,
};
use crate::message::{Address, Coding, Message, Part};

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

/// Split a message's payload as its coding says.
pub fn split_message(msg: &Message, width: RefWidth) -> Result<Split<'_>, ConcatError> {
    match msg.coding {
        Coding::Text => split_text(msg.text_str().ok_or(ConcatError::NotUtf8)?, width),
        Coding::Binary => split_binary(msg.payload(), width),
    }
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
