//! The conventions every entry point follows: the panic boundary, the thread's last
//! error text, opaque handles, pointer arguments checked before use, out-parameters
//! written only on success, text copied into caller memory.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::result::smslink_result::{self, *};

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

/// A `timeout_ms` argument: negative waits without limit.
pub(crate) fn timeout_from_ms(timeout_ms: i32) -> Option<Duration> {
    u64::try_from(timeout_ms).ok().map(Duration::from_millis)
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

/// Copy `text` and a NUL into a caller buffer of `len` bytes. Writes `*out_len`
/// (the text's length without the NUL) on success and when the buffer is too
/// small; returns `SMSLINK_BUFFER_TOO_SMALL`
/// without touching `buf` when `len` is not above it.
pub(crate) fn copy_text_to_buffer(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Result<(), Error> {
    let out_len = out_ptr(out_len, "out_len")?;
    if text.len() + 1 > len {
        write_out(out_len, text.len());
        return Err(Error::new(
            SMSLINK_BUFFER_TOO_SMALL,
            format!("{} bytes needed with the NUL", text.len() + 1),
        ));
    }
    if buf.is_null() {
        return Err(Error::null("buf"));
    }
    // SAFETY: `buf` has `len` writable bytes (caller contract).
    let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    fill_c_array(dst, text);
    write_out(out_len, text.len());
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
