//! Arbitrary bytes, cut into arbitrary chunks, through the CIMD2 decoder and the text
//! decoders; the checks are `smslink::fuzzing::check_cimd2_decoder`, which the corpus
//! replay test (rust-core/tests/fuzz_corpus_cimd2.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smslink::fuzzing::check_cimd2_decoder(data);
});
