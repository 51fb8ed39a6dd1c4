//! The runtime's log lines into the host's logging: one process-wide callback that
//! receives each line's level, target, message and `key=value` fields.

use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use smslink_core::runtime::log::{self, Level, Record};

use crate::abi::{guard, Error};
use crate::result::smslink_result;

/// Severity of a log line (lower is more severe).
pub type smslink_log_level = u32;
/// Faults that stop a node or a connection for good.
pub const SMSLINK_LOG_ERROR: smslink_log_level = 1;
/// Refusals, bad peers, lost SMSC connections.
pub const SMSLINK_LOG_WARN: smslink_log_level = 2;
/// Links and SMSC connections coming up and going down (the default).
pub const SMSLINK_LOG_INFO: smslink_log_level = 3;
/// Every accepted connection and connection attempt.
pub const SMSLINK_LOG_DEBUG: smslink_log_level = 4;

/// One `key=value` pair of a log line, both NUL-terminated UTF-8.
#[repr(C)]
pub struct smslink_log_field {
    pub key: *const c_char,
    pub value: *const c_char,
}

/// Receives one log line. `target` names what the line is about ("link", "smsc",
/// "runtime"); `message` is the line as it would appear on stderr after the level
/// (`link=a event=up peer=...`); `fields` are its `field_count` pairs, values
/// unquoted. Every pointer is valid only during the call: copy what you keep.
///
/// Called on the thread that logs, usually a node's event-loop thread, so it must
/// be thread-safe and quick (the node waits for it). It must not call any smslink
/// function: the node that logs is inside its event loop and the log configuration
/// is locked while the callback runs.
pub type smslink_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: smslink_log_level,
        target: *const c_char,
        message: *const c_char,
        fields: *const smslink_log_field,
        field_count: usize,
    ),
>;

/// The callback and its userdata, moved to whichever thread logs.
struct Callback {
    function: unsafe extern "C" fn(
        *mut c_void,
        smslink_log_level,
        *const c_char,
        *const c_char,
        *const smslink_log_field,
        usize,
    ),
    userdata: *mut c_void,
}

// SAFETY: the header requires the callback (and so its use of userdata) to be
// thread-safe; we only pass the pointer back to it.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

fn level_from_c(level: smslink_log_level) -> Option<Level> {
    match level {
        SMSLINK_LOG_ERROR => Some(Level::Error),
        SMSLINK_LOG_WARN => Some(Level::Warn),
        SMSLINK_LOG_INFO => Some(Level::Info),
        SMSLINK_LOG_DEBUG => Some(Level::Debug),
        _ => None,
    }
}

/// A C string of `s`; an interior NUL (never written by the runtime) is shown as `\0`.
fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "\\0")).unwrap_or_default())
}

impl Callback {
    fn deliver(&self, record: &Record<'_>) {
        let target = c_string(record.target);
        let message = c_string(record.message);
        let texts: Vec<(CString, CString)> = record
            .fields
            .iter()
            .map(|f| (c_string(f.key), c_string(&f.value)))
            .collect();
        let fields: Vec<smslink_log_field> = texts
            .iter()
            .map(|(k, v)| smslink_log_field {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        // SAFETY: the caller's function, with pointers that live until it returns.
        unsafe {
            (self.function)(
                self.userdata,
                record.level as smslink_log_level,
                target.as_ptr(),
                message.as_ptr(),
                fields.as_ptr(),
                fields.len(),
            )
        };
    }
}

/// Route the runtime's log lines (process-wide, every node) to `callback`, or back
/// to stderr when `callback` is NULL. Lines more verbose than `max_level` are not
/// produced at all (this also sets the level of the stderr lines). `userdata` is
/// passed to every call as is. Returns SMSLINK_INVALID_ARGUMENT for an unknown
/// `max_level`. See `smslink_log_callback` for what the callback may do.
///
/// Once this returns, the previous callback is no longer called.
///
/// Thread safety: any thread, but not from inside a log callback.
#[no_mangle]
pub extern "C" fn smslink_log_set_callback(
    callback: smslink_log_callback,
    userdata: *mut c_void,
    max_level: smslink_log_level,
) -> smslink_result {
    guard(|| {
        let level = level_from_c(max_level)
            .ok_or_else(|| Error::invalid(format!("unknown log level {max_level} (1 to 4)")))?;
        log::set_level(level);
        log::set_sink(callback.map(|function| {
            let callback = Callback { function, userdata };
            Box::new(move |record: &Record<'_>| {
                // Building the C strings must not unwind into the node's thread.
                let _ = catch_unwind(AssertUnwindSafe(|| callback.deliver(record)));
            }) as Box<dyn Fn(&Record<'_>) + Send + Sync>
        }));
        Ok(())
    })
}
