//! Arbitrary bytes, cut into arbitrary chunks, through the SMPP decoder, the message
//! conversion and the text decoders; the checks are `smslink::fuzzing::check_smpp_pdu`,
//! which the corpus replay test (rust-core/tests/smpp_fuzz_corpus.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smslink::fuzzing::check_smpp_pdu(data);
});
