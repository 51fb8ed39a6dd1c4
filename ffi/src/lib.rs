//! The C ABI of smslink (`include/smslink.h` is generated from this crate by cbindgen).
//!
//! Conventions, after rustls-ffi:
//! - every export is `smslink_<type>_<verb>`; a `const T *` first argument only reads;
//! - opaque handles come from `_new` and go back through `_free` (see `abi::BoxHandle`);
//! - every function that can fail returns one `smslink_result` (numbers never reused),
//!   and leaves a description for `smslink_last_error` on the calling thread;
//! - out-parameters are written only on success (`SMSLINK_BUFFER_TOO_SMALL` also
//!   writes the required size, documented per function);
//! - every entry point runs inside `abi::guard`, which turns a panic into `SMSLINK_PANIC`.
//!
//! One module per C type, each importing only the ones below it: `result` (the
//! codes), `abi` (the conventions above), `message`, `event`, `smpp` (the options of
//! an SMPP SMSC), `config`, `node` (the handle's lifecycle and link look-ups), then
//! the node's calls by concern: `send`, `dispatch` (events and acknowledgements),
//! `stats`; `cimd2`, the codec; and `log`, the runtime's log lines into the host.

#![allow(non_camel_case_types)]
// Every exported function checks its pointers before use; the header documents what
// each one must point to, which is the C caller's contract.
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_char;

mod abi;
mod cimd2;
mod config;
mod dispatch;
mod event;
mod log;
mod message;
mod node;
mod result;
mod send;
mod smpp;
mod stats;

pub use abi::smslink_last_error;
pub use cimd2::*;
pub use config::*;
pub use dispatch::*;
pub use event::*;
pub use log::*;
pub use message::*;
pub use node::*;
pub use result::*;
pub use send::*;
pub use smpp::*;
pub use stats::*;

#[cfg(test)]
mod tests;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, "MAJOR.MINOR.PATCH", as a static NUL-terminated string
/// (never freed). Compare with the header's `SMSLINK_VERSION` to detect a header
/// and library mismatch.
///
/// Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn smslink_version() -> *const c_char {
    VERSION.as_ptr().cast()
}
