//! Journal segment files of arbitrary bytes, opened by recovery (the record and
//! segment decoders read whatever is on disk): no panic, only typed refusals, every
//! kept record replays, the journal works after recovery. The checks are
//! `smslink::fuzzing::check_journal_segment`, which the corpus replay test
//! (rust-core/tests/fuzz_corpus_journal.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smslink::fuzzing::check_journal_segment(data);
});
