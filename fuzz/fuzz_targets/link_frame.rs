//! Link frames and the endpoint state machine fed arbitrary bytes: no panic, every
//! decoded frame re-encodes identically, cursor invariants hold. The checks are
//! `smslink::fuzzing::check_link_frame`, which the corpus replay test
//! (rust-core/tests/fuzz_corpus_link.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smslink::fuzzing::check_link_frame(data);
});
