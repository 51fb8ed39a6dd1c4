//! The checks the fuzz targets (fuzz/fuzz_targets/) run, shared with the tests that
//! replay the committed corpus (tests/fuzz_corpus_*.rs), so that both run exactly the
//! same code. Not part of the stable API.

use crate::cimd2::{
    decode_text, decode_text_lossy, decode_ucs2_hex, encode, encode_text, message_from_packet,
    Decoded, Decoder, UserData,
};

// The link harness stays in `link::fuzzing`, beside the endpoint it drives.
pub use crate::link::fuzzing::{link_frame as check_link_frame, up_endpoint as link_up_endpoint};

/// Arbitrary bytes, cut into arbitrary chunks, through the CIMD2 decoder and the text
/// decoders. Checks what must hold for any input, beyond not panicking: the result
/// does not depend on the cuts, memory stays within `max_packet`, and every decoded
/// packet and every encodable text survive a round trip.
///
/// The first byte sets `max_packet`, the second seeds the chunk sizes. Returns how
/// many packets decoded, so that a replay can tell that its corpus reaches the
/// packet checks.
pub fn check_cimd2_decoder(data: &[u8]) -> usize {
    let [size, seed, stream @ ..] = data else {
        return 0;
    };
    let max_packet = 11 + usize::from(*size) * 4;
    let whole = decode(stream, max_packet, || usize::MAX);
    let mut state = u32::from(*seed) | 1;
    let chunked = decode(stream, max_packet, || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (state >> 16) as usize % 17
    });
    assert_eq!(whole, chunked);
    assert_eq!(decode(stream, max_packet, || 1), whole);

    let mut packets = 0;
    for item in &whole {
        if let Decoded::Packet(packet) = item {
            packets += 1;
            let _ = message_from_packet(packet);
            let mut wire = Vec::new();
            encode(packet, true, &mut wire);
            let again = decode(&wire, wire.len(), || usize::MAX);
            assert_eq!(again, vec![Decoded::Packet(packet.clone())]);
        }
    }

    let _ = decode_text(stream);
    let _ = decode_ucs2_hex(stream);
    let text = decode_text_lossy(stream);
    match encode_text(&text) {
        Ok(UserData::Text(v)) => assert_eq!(decode_text(&v).ok().as_deref(), Some(text.as_str())),
        Ok(UserData::Binary { hex, .. }) => {
            assert_eq!(decode_ucs2_hex(&hex).ok().as_deref(), Some(text.as_str()))
        }
        Err(_) => {}
    }
    packets
}

/// Decode `stream` fed in pieces of `next_len()` bytes, checking the decoder's
/// memory bound after each piece.
fn decode(stream: &[u8], max_packet: usize, mut next_len: impl FnMut() -> usize) -> Vec<Decoded> {
    let mut decoder = Decoder::new(max_packet);
    let mut items = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let end = at.saturating_add(next_len()).min(stream.len());
        decoder.push(&stream[at..end]);
        at = end;
        while let Some(item) = decoder.poll() {
            items.push(item);
        }
        assert!(decoder.buffered() <= decoder.max_packet());
    }
    items
}
