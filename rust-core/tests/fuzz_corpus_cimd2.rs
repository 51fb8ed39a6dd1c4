//! Replays the committed cargo-fuzz corpus (fuzz/corpus/cimd2_decoder) with the same
//! checks as the fuzz target, so CI covers it without cargo-fuzz or nightly.

use std::path::Path;

use smslink::cimd2::{
    decode_text, decode_text_lossy, decode_ucs2_hex, encode, encode_text, message_from_packet,
    Decoded, Decoder, UserData,
};

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

/// Mirrors fuzz/fuzz_targets/cimd2_decoder.rs; returns how many packets decoded.
fn check(data: &[u8]) -> usize {
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
    // Byte by byte as well (the fuzz target leaves this out for speed).
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

#[test]
fn replay_cimd2_decoder_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/cimd2_decoder");
    let mut files = 0;
    let mut packets = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        packets += check(&data);
        files += 1;
    }
    assert!(files >= 3, "corpus at {} has {files} files", dir.display());
    // The seeds alone hold two valid packets.
    assert!(
        packets >= 2,
        "only {packets} packets decoded from the corpus"
    );
}
