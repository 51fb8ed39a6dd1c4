//! Events as small frozen classes, one per kind, and the conversion from the
//! runtime's `NodeEvent`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use smslink::message::ReportState;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::NodeEvent;

use crate::util::{payload_to_py, repr_opt};

/// The link's handshake with its peer completed.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct LinkUp {
    link: Py<PyString>,
    peer: String,
}

/// The link's connection ended; it reconnects (or waits for the peer) by itself.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct LinkDown {
    link: Py<PyString>,
    reason: String,
}

/// A message arrived from the peer; `ack(link, seq)` once it is safely handed on.
/// Exactly one of `text` and `data` is set. A long SMS arrives whole; `incomplete`
/// is true when some of its parts never came (what did come is in `text`/`data`).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct MessageReceived {
    link: Py<PyString>,
    seq: u64,
    sender: String,
    recipient: String,
    text: Option<String>,
    data: Option<Py<PyBytes>>,
    incomplete: bool,
}

/// A message this side sent moved on: 'sent' (on the wire), 'confirmed' (stored by
/// the peer), 'processed' (handed on by the peer's application: `accepted`, or
/// refused with `error_code`).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct StatusChanged {
    link: Py<PyString>,
    seq: u64,
    client_ref: u64,
    state: &'static str,
    error_code: Option<u32>,
    accepted: bool,
}

/// A message this side sent is in the node's journal and synced: it survives a
/// crash from now on (only on a node with a journal).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct Durable {
    link: Py<PyString>,
    seq: u64,
    client_ref: u64,
}

/// A delivery report on a message this side sent with `client_ref`: `state` is
/// 'delivered', 'failed', 'expired' or 'enroute'; `error_code` the SMSC's error (0:
/// none); `parts` how many SMS the message took (their reports folded into this one).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct Report {
    link: Py<PyString>,
    client_ref: u64,
    state: &'static str,
    error_code: u32,
    parts: u8,
}

/// The buffer server logged in to its SMSC.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct SmscUp {}

/// The buffer server's SMSC session ended; it reconnects by itself.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct SmscDown {
    reason: String,
}

/// The SMSC broke the CIMD2 protocol (the session goes on).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct SmscViolation {
    detail: String,
}

#[pymethods]
impl LinkUp {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("link", "peer")
    }
    fn __repr__(&self) -> String {
        format!(
            "LinkUp(link={:?}, peer={:?})",
            self.link.to_string(),
            self.peer
        )
    }
}

#[pymethods]
impl LinkDown {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("link", "reason")
    }
    fn __repr__(&self) -> String {
        format!(
            "LinkDown(link={:?}, reason={:?})",
            self.link.to_string(),
            self.reason
        )
    }
}

#[pymethods]
impl MessageReceived {
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        ("link", "seq", "sender", "recipient", "text", "data")
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        let data = match &self.data {
            Some(d) => format!("<{} bytes>", d.bind(py).as_bytes().len()),
            None => "None".into(),
        };
        format!(
            "MessageReceived(link={:?}, seq={}, sender={:?}, recipient={:?}, text={}, data={data}, incomplete={})",
            self.link.to_string(),
            self.seq,
            self.sender,
            self.recipient,
            repr_opt(&self.text),
            if self.incomplete { "True" } else { "False" },
        )
    }
}

#[pymethods]
impl StatusChanged {
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "link",
            "seq",
            "client_ref",
            "state",
            "error_code",
            "accepted",
        )
    }
    fn __repr__(&self) -> String {
        format!(
            "StatusChanged(link={:?}, seq={}, client_ref={}, state={:?}, error_code={}, accepted={})",
            self.link.to_string(),
            self.seq,
            self.client_ref,
            self.state,
            self.error_code.map_or("None".into(), |c| c.to_string()),
            if self.accepted { "True" } else { "False" }
        )
    }
}

#[pymethods]
impl Durable {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("link", "seq", "client_ref")
    }
    fn __repr__(&self) -> String {
        format!(
            "Durable(link={:?}, seq={}, client_ref={})",
            self.link.to_string(),
            self.seq,
            self.client_ref
        )
    }
}

#[pymethods]
impl Report {
    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        ("link", "client_ref", "state", "error_code", "parts")
    }
    fn __repr__(&self) -> String {
        format!(
            "Report(link={:?}, client_ref={}, state={:?}, error_code={}, parts={})",
            self.link.to_string(),
            self.client_ref,
            self.state,
            self.error_code,
            self.parts
        )
    }
}

#[pymethods]
impl SmscUp {
    #[classattr]
    fn __match_args__(py: Python<'_>) -> Bound<'_, pyo3::types::PyTuple> {
        pyo3::types::PyTuple::empty(py)
    }
    fn __repr__(&self) -> String {
        "SmscUp()".into()
    }
}

#[pymethods]
impl SmscDown {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("reason",)
    }
    fn __repr__(&self) -> String {
        format!("SmscDown(reason={:?})", self.reason)
    }
}

#[pymethods]
impl SmscViolation {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("detail",)
    }
    fn __repr__(&self) -> String {
        format!("SmscViolation(detail={:?})", self.detail)
    }
}

/// Which status changes an endpoint reports (bit per `SlotState`).
#[derive(Clone, Copy, Debug)]
pub struct StatusFilter(u8);

impl StatusFilter {
    pub const ALL: StatusFilter = StatusFilter(0b1111);

    pub fn from_names(names: &[String]) -> PyResult<StatusFilter> {
        let mut bits = 0;
        for n in names {
            bits |= match n.as_str() {
                "retrieved" => 1 << SlotState::Retrieved as u8,
                "sent" => 1 << SlotState::Sent as u8,
                "confirmed" => 1 << SlotState::Confirmed as u8,
                "processed" => 1 << SlotState::Processed as u8,
                other => {
                    return Err(crate::errors::config_error(format!(
                        "status_events: unknown state {other:?}; the states are \
                         'sent', 'confirmed' and 'processed'"
                    )))
                }
            };
        }
        Ok(StatusFilter(bits))
    }

    pub fn wants(self, ev: &NodeEvent) -> bool {
        match ev {
            NodeEvent::Status { state, .. } => self.0 & (1 << *state as u8) != 0,
            _ => true,
        }
    }
}

pub fn state_name(state: SlotState) -> &'static str {
    match state {
        SlotState::Retrieved => "retrieved",
        SlotState::Sent => "sent",
        SlotState::Confirmed => "confirmed",
        SlotState::Processed => "processed",
    }
}

/// The Python object for an event; `names` holds each link's name.
pub fn to_py(py: Python<'_>, ev: NodeEvent, names: &[Py<PyString>]) -> PyResult<Py<PyAny>> {
    let name = |link: usize| -> Py<PyString> {
        names
            .get(link)
            .map(|n| n.clone_ref(py))
            .unwrap_or_else(|| PyString::new(py, &format!("#{link}")).unbind())
    };
    let obj = match ev {
        NodeEvent::LinkUp { link, peer } => Py::new(
            py,
            LinkUp {
                link: name(link),
                peer,
            },
        )?
        .into_any(),
        NodeEvent::LinkDown { link, reason } => Py::new(
            py,
            LinkDown {
                link: name(link),
                reason,
            },
        )?
        .into_any(),
        NodeEvent::Received { link, seq, message } => {
            let (text, data) = payload_to_py(py, &message);
            Py::new(
                py,
                MessageReceived {
                    link: name(link),
                    seq,
                    sender: message.from.as_str().to_owned(),
                    recipient: message.to.as_str().to_owned(),
                    text,
                    data,
                    incomplete: message.part.is_some(),
                },
            )?
            .into_any()
        }
        NodeEvent::Status {
            link,
            seq,
            client_ref,
            state,
            outcome,
        } => Py::new(
            py,
            StatusChanged {
                link: name(link),
                seq,
                client_ref,
                state: state_name(state),
                error_code: match outcome {
                    Some(Outcome::Rejected { code }) => Some(code),
                    _ => None,
                },
                accepted: matches!(outcome, Some(Outcome::Accepted)),
            },
        )?
        .into_any(),
        NodeEvent::Durable {
            link,
            seq,
            client_ref,
        } => Py::new(
            py,
            Durable {
                link: name(link),
                seq,
                client_ref,
            },
        )?
        .into_any(),
        NodeEvent::Report {
            link,
            client_ref,
            state,
            error,
            parts,
        } => Py::new(
            py,
            Report {
                link: name(link),
                client_ref,
                state: match state {
                    ReportState::Delivered => "delivered",
                    ReportState::Failed => "failed",
                    ReportState::Expired => "expired",
                    ReportState::Enroute => "enroute",
                },
                error_code: error,
                parts,
            },
        )?
        .into_any(),
        NodeEvent::SmscUp { .. } => Py::new(py, SmscUp {})?.into_any(),
        NodeEvent::SmscDown { reason, .. } => Py::new(py, SmscDown { reason })?.into_any(),
        NodeEvent::SmscViolation { detail, .. } => {
            Py::new(py, SmscViolation { detail })?.into_any()
        }
    };
    Ok(obj)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LinkUp>()?;
    m.add_class::<LinkDown>()?;
    m.add_class::<MessageReceived>()?;
    m.add_class::<StatusChanged>()?;
    m.add_class::<Durable>()?;
    m.add_class::<Report>()?;
    m.add_class::<SmscUp>()?;
    m.add_class::<SmscDown>()?;
    m.add_class::<SmscViolation>()?;
    Ok(())
}
