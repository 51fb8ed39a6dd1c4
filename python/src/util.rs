//! Conversions shared by the classes: addresses, durations, messages.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use smslink::message::{Coding, Message};

use crate::errors::{config_error, InvalidMessage};

/// `"host:port"` (a name is resolved; the first address wins).
pub fn socket_addr(what: &str, text: &str) -> PyResult<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            config_error(format!(
                "{what}: {text:?} is not an address; write \"host:port\", e.g. \"127.0.0.1:7000\""
            ))
        })
}

/// Seconds as given by Python, checked.
pub fn seconds(what: &str, value: f64, allow_zero: bool) -> PyResult<Duration> {
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) {
        let bound = if allow_zero { ">= 0" } else { "> 0" };
        return Err(config_error(format!(
            "{what} must be a finite number of seconds {bound}, not {value}"
        )));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| config_error(format!("{what}: {value} seconds is out of range")))
}

/// An optional timeout: `None` waits forever; negative counts as zero.
pub fn timeout(value: Option<f64>) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_nan() => Err(config_error("timeout must be a number of seconds, not NaN")),
        Some(v) if v <= 0.0 => Ok(Some(Duration::ZERO)),
        Some(v) => Ok(Some(
            Duration::try_from_secs_f64(v).unwrap_or(Duration::from_secs(u32::MAX as u64)),
        )),
    }
}

extern "C" {
    // Part of CPython's C API since 3.3 and of the limited API since 3.10, so every
    // CPython this abi3 (3.9) module loads into exports it. pyo3 declares it only for
    // 3.10+ limited builds; its 3.9 fallback copies each string into a new bytes object.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut pyo3::ffi::PyObject,
        size: *mut pyo3::ffi::Py_ssize_t,
    ) -> *const std::os::raw::c_char;
}

/// The UTF-8 of a Python str without copying it (the str caches it).
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    let mut size: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live str; the call only reads it (and may fill its cache).
    let p = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if p.is_null() {
        // Lone surrogates have no UTF-8; Python set the exception.
        return Err(PyErr::fetch(s.py()));
    }
    // SAFETY: CPython returns `size` bytes of valid UTF-8 owned by the str object,
    // which lives at least as long as the borrow `'a`.
    Ok(unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.cast::<u8>(), size as usize))
    })
}

/// A str argument, else an `InvalidMessage` naming `what`.
pub fn str_arg<'a>(what: &str, obj: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match obj.cast::<PyString>() {
        Ok(s) => utf8(s),
        Err(_) => Err(InvalidMessage::new_err(format!(
            "{what} is a str, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// Text (str) or binary (bytes) payload, else an `InvalidMessage`.
pub fn payload_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<(Option<&'a str>, Option<&'a [u8]>)> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok((Some(utf8(s)?), None));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok((None, Some(b.as_bytes())));
    }
    Err(InvalidMessage::new_err(format!(
        "a message payload is str (text) or bytes (binary), not {}",
        obj.get_type().name()?
    )))
}

/// Build a message; exactly one of text and data may be given (neither: empty text).
pub fn message(
    sender: &str,
    recipient: &str,
    text: Option<&str>,
    data: Option<&[u8]>,
    client_ref: u64,
) -> PyResult<Message> {
    let built = match (text, data) {
        (Some(_), Some(_)) => {
            return Err(InvalidMessage::new_err(
                "give text= (a str) or data= (bytes), not both",
            ))
        }
        (Some(t), None) => Message::text(sender, recipient, t),
        (None, Some(d)) => Message::binary(sender, recipient, d),
        (None, None) => Message::text(sender, recipient, ""),
    };
    let mut m = built.map_err(|e| InvalidMessage::new_err(e.to_string()))?;
    m.client_ref = client_ref;
    Ok(m)
}

/// Text and data of a message as Python sees them: one of the two is `None`.
pub fn payload_to_py(py: Python<'_>, m: &Message) -> (Option<String>, Option<Py<PyBytes>>) {
    match m.coding {
        Coding::Text => match m.text_str() {
            Some(t) => (Some(t.to_owned()), None),
            // Text coding with bytes that are not UTF-8: hand them over as they are.
            None => (None, Some(PyBytes::new(py, m.payload()).unbind())),
        },
        Coding::Binary => (None, Some(PyBytes::new(py, m.payload()).unbind())),
    }
}

/// Python repr of an optional string.
pub fn repr_opt(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("{s:?}"),
        None => "None".into(),
    }
}
