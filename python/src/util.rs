//! Conversions shared by the classes: addresses, durations, messages.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyString};
use smslink::message::{Coding, Message};
use smslink::runtime::NodeError;

use crate::errors::{config_error, InvalidMessage};

/// A runtime error on its way to Python (the orphan rule forbids `From<NodeError> for
/// PyErr` directly; see `errors.rs` for the mapping).
pub struct Error(pub NodeError);

pub fn raise(e: NodeError) -> PyErr {
    Error(e).into()
}

pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, NodeError> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|e| Error(e).into())
    }
}

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

/// Text or bytes payload, given either way.
pub enum Payload {
    Text(PyBackedStr),
    Data(PyBackedBytes),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Payload {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Payload::Text(s.to_owned().try_into()?));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Payload::Data(b.to_owned().into()));
        }
        Err(InvalidMessage::new_err(format!(
            "a message payload is str (text) or bytes (binary), not {}",
            obj.get_type().name()?
        )))
    }
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
