//! Segment files: their names and the header at the start of each.

use super::record::Lsn;
use thiserror::Error;

/// Identifies a journal segment file.
pub const MAGIC: [u8; 8] = *b"SMSLJRNL";
/// Format version written in every header. 2 adds the report-group records
/// (`Record::ReportGroup`, `Record::ReportDone`); segments of version 1 are read
/// as before.
pub const VERSION: u32 = 2;
/// Oldest format version read.
pub const MIN_VERSION: u32 = 1;
/// Bytes of the header: `magic[8] | version u32 | first_lsn u64 | salt u64 | crc32c u32`.
pub const HEADER_LEN: usize = 32;
const SUFFIX: &str = ".seg";
/// LSNs stay below this, so that counting up can never overflow.
pub const MAX_LSN: Lsn = 1 << 63;

/// The start of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// LSN of the first record in the segment (also the file's name).
    pub first_lsn: Lsn,
    /// Random per segment file and part of every record's CRC: bytes left from any
    /// earlier file of the same name never pass for records of this one.
    pub salt: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("file too short for a segment header ({0} bytes)")]
    Short(usize),
    #[error("not a journal segment (bad magic)")]
    Magic,
    #[error("unsupported segment version {0}")]
    Version(u32),
    #[error("segment header checksum mismatch")]
    BadCrc,
    #[error("first LSN {0} is outside 1..2^63")]
    Lsn(Lsn),
    #[error("header says first LSN {header}, file name says {name}")]
    NameMismatch { header: Lsn, name: Lsn },
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..20].copy_from_slice(&self.first_lsn.to_le_bytes());
        h[20..28].copy_from_slice(&self.salt.to_le_bytes());
        let c = crc32c::crc32c(&h[..28]);
        h[28..].copy_from_slice(&c.to_le_bytes());
        h
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let h = buf
            .first_chunk::<HEADER_LEN>()
            .ok_or(HeaderError::Short(buf.len()))?;
        if h[..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
        if !(MIN_VERSION..=VERSION).contains(&word(8)) {
            return Err(HeaderError::Version(word(8)));
        }
        if crc32c::crc32c(&h[..28]) != word(28) {
            return Err(HeaderError::BadCrc);
        }
        let first_lsn = long(12);
        if !(1..MAX_LSN).contains(&first_lsn) {
            return Err(HeaderError::Lsn(first_lsn));
        }
        Ok(SegmentHeader {
            first_lsn,
            salt: long(20),
        })
    }
}

/// The file name of the segment whose first record is `first_lsn`: 20 digits, so
/// that names sort like their LSNs.
pub fn segment_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}{SUFFIX}")
}

/// The first LSN a segment file name stands for; `None` for any other file (LSNs
/// outside `1..MAX_LSN` included).
pub fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|lsn| (1..MAX_LSN).contains(lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_like_lsns() {
        assert_eq!(segment_name(1), "00000000000000000001.seg");
        assert_eq!(
            parse_segment_name(&segment_name(MAX_LSN - 1)),
            Some(MAX_LSN - 1)
        );
        assert_eq!(parse_segment_name(&segment_name(MAX_LSN)), None);
        assert_eq!(parse_segment_name(&segment_name(0)), None);
        assert!(segment_name(9) < segment_name(10));
        for other in [
            "LOCK",
            "1.seg",
            "0000000000000000000a.seg",
            "00000000000000000001",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            first_lsn: 42,
            salt: 0xdead_beef_1234,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        assert_eq!(
            SegmentHeader::decode(&bytes[..31]),
            Err(HeaderError::Short(31))
        );
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Magic));
        let mut bad = bytes;
        bad[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadCrc));
    }
}
