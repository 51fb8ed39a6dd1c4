//! The checks the fuzz targets (fuzz/fuzz_targets/) run, shared with the tests that
//! replay the committed corpus (tests/fuzz_corpus_*.rs), so that both run exactly the
//! same code. Not part of the stable API.

use crate::cimd2::{
    decode_text, decode_text_lossy, decode_ucs2_hex, encode, encode_text, message_from_packet,
    Decoded, Decoder, UserData,
};

use crate::smpp;

// The link and journal harnesses stay beside the code they drive.
pub use crate::journal::fuzzing::check_segment as check_journal_segment;
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

/// Arbitrary bytes, cut into arbitrary chunks, through the SMPP decoder, the
/// `Message` conversion and the data_coding text decoders. Checks what must hold for
/// any input, beyond not panicking: the result does not depend on the cuts, the
/// decoder never holds a whole PDU's worth of undecoded bytes, a framing error ends
/// the stream, every decoded PDU re-encodes to a frame that decodes back to it, and
/// every body error has an encodable reply (or none, for generic_nack).
///
/// The first byte sets `max_pdu`, the second seeds the chunk sizes. Returns how many
/// PDUs decoded, so that a replay can tell that its corpus reaches the PDU checks.
pub fn check_smpp_pdu(data: &[u8]) -> usize {
    let [size, seed, stream @ ..] = data else {
        return 0;
    };
    let max_pdu = smpp::HEADER_LEN + usize::from(*size) * 16;
    let whole = smpp_decode(stream, max_pdu, || usize::MAX);
    let mut state = u32::from(*seed) | 1;
    let chunked = smpp_decode(stream, max_pdu, || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (state >> 16) as usize % 23
    });
    assert_eq!(whole, chunked);
    assert_eq!(smpp_decode(stream, max_pdu, || 1), whole);

    let configs = [
        smpp::TextConfig { gsm_packed: false },
        smpp::TextConfig { gsm_packed: true },
    ];
    let mut pdus = 0;
    for (i, item) in whole.iter().enumerate() {
        match item {
            Ok(pdu) => {
                pdus += 1;
                let mut wire = Vec::new();
                smpp::encode(pdu, &mut wire).expect("a decoded PDU re-encodes");
                assert_eq!(smpp::decode_frame(&wire).as_ref(), Ok(pdu));
                if let smpp::Body::SubmitSm(sm) | smpp::Body::DeliverSm(sm) = &pdu.body {
                    for config in &configs {
                        if let Ok(msg) = smpp::message_from_sm(sm, config) {
                            let _ = smpp::submit_sm(&msg, config);
                        }
                    }
                }
            }
            Err(error) if error.is_fatal() => assert_eq!(i + 1, whole.len()),
            Err(error) => {
                if let Some(reply) = error.reply() {
                    smpp::encode(&reply, &mut Vec::new()).expect("a reply encodes");
                }
            }
        }
    }

    for data_coding in [0, 1, 3, 8, 0xF0] {
        for config in &configs {
            let _ = smpp::decode_text(stream, data_coding, config);
        }
    }
    pdus
}

/// Decode an SMPP `stream` fed in pieces of `next_len()` bytes, checking the decoder's
/// memory bound after each piece.
fn smpp_decode(
    stream: &[u8],
    max_pdu: usize,
    mut next_len: impl FnMut() -> usize,
) -> Vec<Result<smpp::Pdu, smpp::DecodeError>> {
    let mut decoder = smpp::Decoder::new(max_pdu);
    let mut items = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let end = at.saturating_add(next_len()).min(stream.len());
        decoder.push(&stream[at..end]);
        at = end;
        while let Some(item) = decoder.poll() {
            items.push(item);
        }
        assert!(decoder.buffered() < decoder.max_pdu());
    }
    items
}
