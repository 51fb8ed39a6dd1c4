//! The C ABI of smslink (`include/smslink.h` is generated from this crate by cbindgen).
//!
//! Conventions, after rustls-ffi:
//! - every export is `smslink_<type>_<verb>`; a `const T *` first argument only reads;
//! - opaque handles come from `_new` and go back through `_free` (see [`BoxHandle`]);
//! - every function that can fail returns one `smslink_result` (numbers never reused),
//!   and leaves a description for `smslink_last_error` on the calling thread;
//! - out-parameters are written only on success (`SMSLINK_BUFFER_TOO_SMALL` also
//!   writes the required size, documented per function);
//! - every entry point runs inside [`guard`], which turns a panic into `SMSLINK_PANIC`.

#![allow(non_camel_case_types)]
// Every exported function checks its pointers before use; the header documents what
// each one must point to, which is the C caller's contract.
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod cimd2;
mod node;

pub use cimd2::*;
pub use node::*;

#[cfg(test)]
mod tests;

/// What every fallible function returns. Numbers are part of the ABI: a value is
/// never reused for another meaning, new ones are only appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// An error on its way out to C: the code to return and the text for
/// `smslink_last_error`.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) code: smslink_result,
    pub(crate) text: String,
}

impl Error {
    pub(crate) fn new(code: smslink_result, text: impl Into<String>) -> Error {
        Error {
            code,
            text: text.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Error {
        Error::new(SMSLINK_NULL_PARAMETER, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(text: impl Into<String>) -> Error {
        Error::new(SMSLINK_INVALID_ARGUMENT, text)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(text: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(text);
    });
}

/// Run an entry point's body: errors become their code (and the thread's last error
/// text), a panic becomes `SMSLINK_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> smslink_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SMSLINK_OK,
        Ok(Err(e)) => {
            set_last_error(&e.text);
            e.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!("internal error (panic): {what}"));
            SMSLINK_PANIC
        }
    }
}

/// For entry points that return no result (`_free`): a panic is swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Ownership of an opaque handle: made by `Box` in `_new`, given back only by `_free`.
/// Going through this trait keeps every handle of a type on the same path.
pub(crate) trait BoxHandle: Sized {
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// # Safety
    /// `ptr` is NULL or came from `into_raw` and was not freed yet.
    unsafe fn free_raw(ptr: *mut Self) {
        if !ptr.is_null() {
            // SAFETY: per the contract, the pointer is a live Box of Self.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// A shared reference from a pointer the caller promises is valid or NULL.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: caller contract (a handle from `_new`, not yet freed, or NULL).
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::null(what))
}

pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: caller contract (a handle from `_new`, not yet freed, or NULL).
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::null(what))
}

/// A NUL-terminated UTF-8 C string.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: caller contract: a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// `len` bytes at `ptr`; NULL is accepted when `len` is 0.
pub(crate) unsafe fn arg_bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: caller contract: `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Check that an out-parameter is not NULL before any side effect.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<*mut T, Error> {
    if ptr.is_null() {
        Err(Error::null(what))
    } else {
        Ok(ptr)
    }
}

/// Write an out-parameter checked by `out_ptr` (or an optional one, when non-NULL).
pub(crate) fn write_out<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: checked non-NULL; the caller promises it points to writable memory
        // for a T (possibly uninitialised, hence `write` rather than assignment).
        unsafe { ptr.write(value) };
    }
}

/// Copy `src` into a caller buffer of `len` bytes. Writes `*out_len` (the bytes
/// `src` needs) always; returns `SMSLINK_BUFFER_TOO_SMALL` without touching `buf`
/// when it does not fit.
pub(crate) fn copy_to_buffer(
    src: &[u8],
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> Result<(), Error> {
    let out_len = out_ptr(out_len, "out_len")?;
    if src.len() > len {
        write_out(out_len, src.len());
        return Err(Error::new(
            SMSLINK_BUFFER_TOO_SMALL,
            format!("buffer of {len} bytes, {} needed", src.len()),
        ));
    }
    if !src.is_empty() {
        if buf.is_null() {
            return Err(Error::null("buf"));
        }
        // SAFETY: `buf` has room for `len >= src.len()` bytes (caller contract).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len()) };
    }
    write_out(out_len, src.len());
    Ok(())
}

/// Copy text into a fixed C array, NUL-terminated, cut at a UTF-8 boundary if long.
pub(crate) fn fill_c_array(dst: &mut [c_char], text: &str) {
    let room = dst.len().saturating_sub(1);
    let mut n = text.len().min(room);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    for (d, s) in dst.iter_mut().zip(&text.as_bytes()[..n]) {
        *d = *s as c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// The text up to the first NUL of a fixed C array (which must contain one).
pub(crate) fn read_c_array<'a>(src: &'a [c_char], what: &str) -> Result<&'a str, Error> {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), src.len()) };
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::invalid(format!("{what} is not NUL-terminated")))?;
    std::str::from_utf8(&bytes[..end]).map_err(|_| Error::invalid(format!("{what} is not UTF-8")))
}

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

/// A static NUL-terminated name for a result code, e.g. "SMSLINK_FULL"
/// ("SMSLINK_UNKNOWN_RESULT" for a number this library does not know).
///
/// Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn smslink_result_name(result: u32) -> *const c_char {
    let name: &'static str = match result {
        0 => "SMSLINK_OK\0",
        1 => "SMSLINK_NULL_PARAMETER\0",
        2 => "SMSLINK_PANIC\0",
        3 => "SMSLINK_INVALID_ARGUMENT\0",
        4 => "SMSLINK_FULL\0",
        5 => "SMSLINK_NO_ROUTE\0",
        6 => "SMSLINK_UNKNOWN_LINK\0",
        7 => "SMSLINK_STOPPED\0",
        8 => "SMSLINK_BUSY\0",
        9 => "SMSLINK_CONFIG\0",
        10 => "SMSLINK_IO\0",
        11 => "SMSLINK_BUFFER_TOO_SMALL\0",
        12 => "SMSLINK_EMPTY\0",
        13 => "SMSLINK_NOT_FOUND\0",
        14 => "SMSLINK_CALLBACK_ERROR\0",
        15 => "SMSLINK_MALFORMED\0",
        16 => "SMSLINK_WRONG_THREAD\0",
        _ => "SMSLINK_UNKNOWN_RESULT\0",
    };
    name.as_ptr().cast()
}

/// Copy the description of the most recent failed call on this thread into `buf`
/// (`len` bytes), NUL-terminated and cut to fit. Writes `*out_len` with the length
/// of the whole text, without its NUL (so `*out_len >= len` means it was cut).
/// An empty text when no call failed on this thread yet.
///
/// Returns SMSLINK_NULL_PARAMETER when `buf` is NULL with `len > 0`, or `out_len`
/// is NULL; SMSLINK_OK otherwise.
///
/// Thread safety: any thread; reads only the calling thread's own record.
#[no_mangle]
pub unsafe extern "C" fn smslink_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    // Not through `guard`: that would overwrite the text it is asked for.
    let out_len = match out_ptr(out_len, "out_len") {
        Ok(p) => p,
        Err(_) => return SMSLINK_NULL_PARAMETER,
    };
    if len > 0 && buf.is_null() {
        return SMSLINK_NULL_PARAMETER;
    }
    let result = catch_unwind(|| {
        LAST_ERROR.with(|e| {
            let text = e.borrow();
            if len > 0 {
                // SAFETY: `buf` has `len` writable bytes (caller contract).
                let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
                fill_c_array(dst, &text);
            }
            text.len()
        })
    });
    match result {
        Ok(n) => {
            write_out(out_len, n);
            SMSLINK_OK
        }
        Err(_) => SMSLINK_PANIC,
    }
}
