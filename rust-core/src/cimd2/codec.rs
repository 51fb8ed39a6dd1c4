//! CIMD2 framing: `encode` writes one packet, `Decoder` turns a byte stream back into
//! packets, however the stream is cut.

use super::error::Cimd2Error;
use super::packet::{Operation, Packet, Slot};

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const TAB: u8 = b'\t';

/// Smallest `max_packet` a decoder accepts: a bare `STX ZZ:NNN TAB CC ETX`.
pub const MIN_MAX_PACKET: usize = 11;

/// Offset of the first parameter: `STX ZZ : NNN TAB`.
const HEADER_LEN: usize = 8;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Append one framed packet to `out`, with the two-digit checksum when `checksum`.
///
/// Operation codes above 99 and parameter codes above 999 keep only their last two or
/// three digits; `Packet::validate` reports them (and reserved bytes in values).
pub fn encode(packet: &Packet, checksum: bool, out: &mut Vec<u8>) {
    let start = out.len();
    let op = packet.op.code() % 100;
    out.extend_from_slice(&[
        STX,
        b'0' + op / 10,
        b'0' + op % 10,
        b':',
        b'0' + packet.number / 100,
        b'0' + packet.number / 10 % 10,
        b'0' + packet.number % 10,
        TAB,
    ]);
    for (code, value) in packet.params() {
        let code = code % 1000;
        out.extend_from_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b':',
        ]);
        out.extend_from_slice(value);
        out.push(TAB);
    }
    if checksum {
        let sum = checksum_of(&out[start..]);
        out.extend_from_slice(&[
            HEX_UPPER[usize::from(sum >> 4)],
            HEX_UPPER[usize::from(sum & 15)],
        ]);
    }
    out.push(ETX);
}

/// Byte sum modulo 256 (the CIMD2 checksum of STX through the last TAB).
pub fn checksum_of(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// One result of `Decoder::poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Packet(Packet),
    /// This many bytes outside any packet were dropped before the next STX.
    Skipped(usize),
    /// A framed packet that could not be decoded. `op` and `number` come from its
    /// header when that much was readable, so the session can answer it.
    Malformed {
        error: Cimd2Error,
        op: Option<u8>,
        number: Option<u8>,
    },
}

/// Streaming CIMD2 decoder: push bytes as they arrive, poll packets out.
///
/// Memory: the bytes pushed and not yet polled, of which an unfinished packet is at most
/// `max_packet` (a longer one is reported as `TooLong` and its tail dropped as it
/// arrives). Call `poll` until `None` after each `push`.
///
/// Results are the same however the stream is cut, including the `Skipped` counts:
/// a run of garbage is reported once, when the STX that ends it arrives.
#[derive(Debug)]
pub struct Decoder {
    max_packet: usize,
    verify_checksum: bool,
    buf: Vec<u8>,
    /// Bytes before this are consumed.
    pos: usize,
    /// `buf[pos + 1..scanned]` holds no STX or ETX (saves rescanning an unfinished packet).
    scanned: usize,
    /// Garbage bytes dropped and not yet reported.
    skipped: usize,
    /// Dropping the tail of an oversized packet, up to its ETX or the next STX.
    discarding: bool,
}

impl Decoder {
    /// A decoder for packets of at most `max_packet` bytes, STX and ETX included
    /// (raised to `MIN_MAX_PACKET` if smaller).
    pub fn new(max_packet: usize) -> Decoder {
        Decoder {
            max_packet: max_packet.max(MIN_MAX_PACKET),
            verify_checksum: true,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            skipped: 0,
            discarding: false,
        }
    }

    /// Checksums are verified when present unless this is turned off (Kannel never
    /// checks them, so a peer may send wrong ones).
    pub fn set_verify_checksum(&mut self, verify: bool) {
        self.verify_checksum = verify;
    }

    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// Bytes held: unpolled input plus any unfinished packet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Buffer bytes as read from the peer. Bytes outside any packet (and the tail of an
    /// oversized one) are counted or dropped here rather than stored.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
        }
        if self.discarding || (self.buf.is_empty() && self.scanned == 0) {
            // Fast path: bytes that cannot start a packet never get buffered.
            let keep_from = if self.discarding {
                match memchr::memchr2(STX, ETX, bytes) {
                    Some(i) if bytes[i] == ETX => {
                        self.discarding = false;
                        i + 1
                    }
                    Some(i) => {
                        self.discarding = false;
                        i
                    }
                    None => bytes.len(),
                }
            } else {
                0
            };
            let rest = &bytes[keep_from..];
            if !self.discarding {
                let stx = memchr::memchr(STX, rest).unwrap_or(rest.len());
                self.skipped += stx;
                self.buf.extend_from_slice(&rest[stx..]);
            }
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next item, or `None` when more bytes are needed. Never panics; a broken
    /// packet is a `Malformed` item and decoding resumes at the next STX.
    pub fn poll(&mut self) -> Option<Decoded> {
        if self.discarding {
            let avail = &self.buf[self.pos..];
            match memchr::memchr2(STX, ETX, avail) {
                Some(i) => {
                    self.pos += if avail[i] == ETX { i + 1 } else { i };
                    self.discarding = false;
                }
                None => {
                    self.pos = self.buf.len();
                    return None;
                }
            }
        }
        let avail = &self.buf[self.pos..];
        if *avail.first()? != STX {
            match memchr::memchr(STX, avail) {
                Some(i) => {
                    self.skipped += i;
                    self.pos += i;
                }
                None => {
                    self.skipped += avail.len();
                    self.pos = self.buf.len();
                    return None;
                }
            }
        }
        if self.skipped > 0 {
            return Some(Decoded::Skipped(std::mem::take(&mut self.skipped)));
        }
        self.take_packet()
    }

    /// `buf[pos]` is an STX: return the packet it starts, or `None` when incomplete.
    fn take_packet(&mut self) -> Option<Decoded> {
        let start = self.pos;
        let from = self.scanned.max(start + 1);
        let found = memchr::memchr2(STX, ETX, &self.buf[from..]).map(|i| from + i);
        let Some(end) = found else {
            let held = self.buf.len() - start;
            if held >= self.max_packet {
                let (op, number) = header_fields(&self.buf[start..]);
                self.pos = self.buf.len();
                self.scanned = 0;
                self.discarding = true;
                return Some(Decoded::Malformed {
                    error: Cimd2Error::TooLong {
                        max: self.max_packet,
                    },
                    op,
                    number,
                });
            }
            self.scanned = self.buf.len();
            return None;
        };
        self.scanned = 0;
        let terminated = self.buf[end] == ETX;
        self.pos = if terminated { end + 1 } else { end };
        let frame = &self.buf[start..self.pos];
        // `end - start` is the frame length without its ETX: the same test whether the
        // end was seen now or the `held >= max_packet` branch fired earlier.
        let error = if end - start >= self.max_packet {
            Cimd2Error::TooLong {
                max: self.max_packet,
            }
        } else if !terminated {
            Cimd2Error::MissingEtx {
                offset: end - start,
            }
        } else {
            match parse_frame(frame, self.verify_checksum) {
                Ok(packet) => return Some(Decoded::Packet(packet)),
                Err(error) => error,
            }
        };
        let (op, number) = header_fields(frame);
        Some(Decoded::Malformed { error, op, number })
    }
}

/// Operation and number from a header, as far as they are readable.
fn header_fields(frame: &[u8]) -> (Option<u8>, Option<u8>) {
    let op = two_digits(frame.get(1..3));
    let number = match frame.get(3) {
        Some(b':') => three_digits(frame.get(4..7)).and_then(|n| u8::try_from(n).ok()),
        _ => None,
    };
    (op, number)
}

fn two_digits(d: Option<&[u8]>) -> Option<u8> {
    match d? {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

fn three_digits(d: Option<&[u8]>) -> Option<u16> {
    match d? {
        [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decode one frame, STX through ETX, with no STX or ETX inside.
pub fn parse_frame(frame: &[u8], verify_checksum: bool) -> Result<Packet, Cimd2Error> {
    let etx = frame.len().saturating_sub(1);
    if frame.len() < HEADER_LEN + 1 || frame[0] != STX || frame[etx] != ETX {
        return Err(Cimd2Error::BadHeader { offset: 0 });
    }
    let op = two_digits(frame.get(1..3)).ok_or(Cimd2Error::BadHeader { offset: 1 })?;
    if frame[3] != b':' {
        return Err(Cimd2Error::BadHeader { offset: 3 });
    }
    let number = three_digits(frame.get(4..7)).ok_or(Cimd2Error::BadHeader { offset: 4 })?;
    let number = u8::try_from(number).map_err(|_| Cimd2Error::NumberOutOfRange {
        offset: 4,
        value: number,
    })?;
    if frame[7] != TAB {
        return Err(Cimd2Error::BadHeader { offset: 7 });
    }
    // The header's TAB guarantees a last TAB at index 7 or later.
    let last_tab = memchr::memrchr(TAB, &frame[..etx]).unwrap_or(7);
    match &frame[last_tab + 1..etx] {
        [] => {}
        [hi, lo] => {
            let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) else {
                return Err(Cimd2Error::BadTrailer {
                    offset: last_tab + 1,
                });
            };
            if verify_checksum {
                let received = hi << 4 | lo;
                let computed = checksum_of(&frame[..=last_tab]);
                if received != computed {
                    return Err(Cimd2Error::Checksum { received, computed });
                }
            }
        }
        _ => {
            return Err(Cimd2Error::BadTrailer {
                offset: last_tab + 1,
            })
        }
    }
    let region = &frame[HEADER_LEN..=last_tab];
    let mut slots = Vec::with_capacity(8);
    let mut at = 0;
    for tab in memchr::memchr_iter(TAB, region) {
        let field = &region[at..tab];
        let code = match field {
            [_, _, _, b':', ..] => three_digits(field.get(0..3)),
            _ => None,
        }
        .ok_or(Cimd2Error::BadParameter {
            offset: HEADER_LEN + at,
        })?;
        slots.push(Slot {
            code,
            start: at + 4,
            end: tab,
        });
        at = tab + 1;
    }
    Ok(Packet::from_parts(
        Operation::from_code(op),
        number,
        region.to_vec(),
        slots,
    ))
}
