//! Link frames and the endpoint state machine fed arbitrary bytes: no panic, every
//! decoded frame re-encodes identically, cursor invariants hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smslink::link::fuzzing::link_frame(data);
});
