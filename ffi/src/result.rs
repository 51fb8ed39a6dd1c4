//! The result code every fallible C function returns. The enum below is the one
//! list: cbindgen makes the header's constants from it and the derives make the
//! names `smslink_result_name` gives out, so a code added here has both.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use strum::IntoEnumIterator;

/// What every fallible function returns. Numbers are part of the ABI: a value is
/// never reused for another meaning, new ones are only appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter, strum::IntoStaticStr)]
pub enum smslink_result {
    /// Success.
    SMSLINK_OK = 0,
    /// A required pointer argument was NULL.
    SMSLINK_NULL_PARAMETER = 1,
    /// smslink failed internally (a bug); the call had no effect that can be relied on.
    SMSLINK_PANIC = 2,
    /// An argument was out of range or malformed (address, UTF-8, payload length...).
    SMSLINK_INVALID_ARGUMENT = 3,
    /// The link's ring holds `capacity` messages not yet processed by the peer:
    /// nothing was stored; retry once a status event reports progress.
    SMSLINK_FULL = 4,
    /// No link routes this recipient and no link is the default.
    SMSLINK_NO_ROUTE = 5,
    /// No link with this id or name.
    SMSLINK_UNKNOWN_LINK = 6,
    /// The node has stopped.
    SMSLINK_STOPPED = 7,
    /// Too many acknowledgements in flight; retry shortly.
    SMSLINK_BUSY = 8,
    /// The configuration was refused (details in `smslink_last_error`).
    SMSLINK_CONFIG = 9,
    /// An operating-system call failed (bind, socket, thread...).
    SMSLINK_IO = 10,
    /// The caller's buffer is too small; the required size was written where the
    /// function documents it.
    SMSLINK_BUFFER_TOO_SMALL = 11,
    /// Nothing to return yet (no event waiting, no complete packet buffered).
    SMSLINK_EMPTY = 12,
    /// The requested item (parameter, SMSC statistics...) does not exist.
    SMSLINK_NOT_FOUND = 13,
    /// A callback returned non-zero; dispatch stopped (see `smslink_node_dispatch`).
    SMSLINK_CALLBACK_ERROR = 14,
    /// The decoder found a malformed CIMD2 packet (details in `smslink_last_error`);
    /// it was dropped and decoding can go on.
    SMSLINK_MALFORMED = 15,
    /// The call is not allowed on this thread at this moment (for example freeing a
    /// node from inside one of its own callbacks).
    SMSLINK_WRONG_THREAD = 16,
}

pub use smslink_result::*;

/// A static NUL-terminated name for a result code, e.g. "SMSLINK_FULL"
/// ("SMSLINK_UNKNOWN_RESULT" for a number this library does not know).
///
/// Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn smslink_result_name(result: u32) -> *const c_char {
    static UNKNOWN: &std::ffi::CStr = c"SMSLINK_UNKNOWN_RESULT";
    names()
        .iter()
        .find(|(code, _)| *code as u32 == result)
        .map_or(UNKNOWN.as_ptr(), |(_, name)| name.as_ptr())
}

/// Every code with its name as a C string, made once (C keeps the pointers forever).
fn names() -> &'static [(smslink_result, CString)] {
    static NAMES: OnceLock<Vec<(smslink_result, CString)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        smslink_result::iter()
            .map(|code| {
                let name: &'static str = code.into();
                (code, CString::new(name).expect("a variant name has no NUL"))
            })
            .collect()
    })
}
