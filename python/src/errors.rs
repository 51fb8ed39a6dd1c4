//! One exception hierarchy under `SmslinkError`, and the one place where a runtime
//! error becomes a Python exception (`raise`, `OrRaise`).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use smslink::runtime::NodeError;

create_exception!(
    smslink,
    SmslinkError,
    PyException,
    "Base class of every error smslink raises."
);
create_exception!(
    smslink,
    RingFull,
    SmslinkError,
    "The link holds `capacity` messages the peer has not processed yet: wait for room, then send again."
);
create_exception!(
    smslink,
    NoRoute,
    SmslinkError,
    "No link's prefixes match the recipient and no link is the default."
);
create_exception!(
    smslink,
    UnknownLink,
    SmslinkError,
    "The endpoint has no link of that name."
);
create_exception!(
    smslink,
    ClosedError,
    SmslinkError,
    "The endpoint (or test peer) was closed."
);
create_exception!(
    smslink,
    BusyError,
    SmslinkError,
    "Too many acknowledgements are queued for the event loop; retry shortly."
);
create_exception!(
    smslink,
    ConfigError,
    SmslinkError,
    "A setting is invalid (the message names it and the accepted values)."
);
create_exception!(
    smslink,
    InvalidMessage,
    SmslinkError,
    "An address or payload cannot be carried in one SMS slot."
);
create_exception!(
    smslink,
    CodecError,
    SmslinkError,
    "CIMD2 bytes or text could not be encoded or decoded."
);
create_exception!(
    smslink,
    NetworkError,
    SmslinkError,
    "An operating-system or socket error (bind, connect, ...)."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SmslinkError", py.get_type::<SmslinkError>())?;
    m.add("RingFull", py.get_type::<RingFull>())?;
    m.add("NoRoute", py.get_type::<NoRoute>())?;
    m.add("UnknownLink", py.get_type::<UnknownLink>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InvalidMessage", py.get_type::<InvalidMessage>())?;
    m.add("CodecError", py.get_type::<CodecError>())?;
    m.add("NetworkError", py.get_type::<NetworkError>())?;
    Ok(())
}

/// `RingFull` naming the link as the user knows it.
pub fn ring_full(link: &str, capacity: usize) -> PyErr {
    RingFull::new_err(format!(
        "link {link:?} is full: {capacity} messages sent and not yet processed by the peer; \
         wait for room (wait_for_room, a 'processed' StatusChanged event, or \
         smslink.aio.AsyncEndpoint.send) \
         and send again, or give the link a larger capacity"
    ))
}

/// `UnknownLink` that lists the names there are.
pub fn unknown_link(name: &str, known: &[String]) -> PyErr {
    UnknownLink::new_err(format!(
        "no link named {name:?}; this endpoint has {known:?}"
    ))
}

pub fn config_error(message: impl Into<String>) -> PyErr {
    ConfigError::new_err(message.into())
}

/// The Python exception for a runtime error (`RingFull` names the link by number;
/// the endpoint, which knows the names, words its own).
pub fn raise(e: NodeError) -> PyErr {
    match e {
        NodeError::Full { link, capacity } => ring_full(&format!("#{link}"), capacity),
        NodeError::NoRoute(recipient) => NoRoute::new_err(format!(
            "no link routes recipient {recipient:?}: give a link prefixes=[...] that \
             match it, mark one link default=True, or pass link=..."
        )),
        NodeError::UnknownLink(id) => UnknownLink::new_err(format!("no link with id {id}")),
        NodeError::UnknownLinkName(name) => UnknownLink::new_err(format!("no link named {name:?}")),
        NodeError::Stopped => ClosedError::new_err(
            "the endpoint is closed; create a new one to send or acknowledge again",
        ),
        NodeError::Busy => {
            BusyError::new_err("too many acknowledgements queued for the event loop; retry shortly")
        }
        NodeError::Config(detail) => ConfigError::new_err(detail),
        NodeError::Io(detail) => NetworkError::new_err(detail),
    }
}

/// `result.or_raise()?`: a runtime result as a Python one.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, NodeError> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(raise)
    }
}
