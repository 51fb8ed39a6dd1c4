//! `Endpoint`: a running node (IM-side endpoint, or buffer server with `smsc=`).
//!
//! Sends go straight to the runtime's lock-free hand-off and answer at once (a
//! receipt or `RingFull`). Every wait (`next_event`, `wait_for_room`, `close`)
//! releases the GIL, in slices so that Ctrl-C is noticed.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::{LinkId, Node, NodeConfig, NodeError, NodeEvent};

use crate::config::{journal_spec, smsc_spec, Link};
use crate::errors::{config_error, raise, ring_full, unknown_link, InvalidMessage, OrRaise};
use crate::events::{self, StatusFilter};
use crate::util::{message, payload_arg, seconds, str_arg, utf8};

/// Longest a wait holds the GIL away before looking at signals (Ctrl-C).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Where `send` put a message: the link's name and the message's sequence number
/// there (the same number appears in its `StatusChanged` events).
#[pyclass(frozen, get_all, module = "smslink")]
pub struct Receipt {
    link: Py<PyString>,
    seq: u64,
}

#[pymethods]
impl Receipt {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("link", "seq")
    }
    fn __repr__(&self) -> String {
        format!(
            "Receipt(link={:?}, seq={})",
            self.link.to_string(),
            self.seq
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<Receipt>() {
            Ok(o) => {
                let o = o.get();
                o.seq == self.seq && o.link.to_string() == self.link.to_string()
            }
            Err(_) => false,
        }
    }
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.link.to_string().hash(&mut h);
        self.seq.hash(&mut h);
        h.finish()
    }
}

/// Cursors of a sending ring: every seq <= each cursor reached that stage.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct TxCursors {
    retrieved: u64,
    sent: u64,
    confirmed: u64,
    processed: u64,
}

/// Cursors of a receiving ring.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct RxCursors {
    stored: u64,
    delivered: u64,
    processed: u64,
}

#[pymethods]
impl TxCursors {
    fn __repr__(&self) -> String {
        format!(
            "TxCursors(retrieved={}, sent={}, confirmed={}, processed={})",
            self.retrieved, self.sent, self.confirmed, self.processed
        )
    }
}

#[pymethods]
impl RxCursors {
    fn __repr__(&self) -> String {
        format!(
            "RxCursors(stored={}, delivered={}, processed={})",
            self.stored, self.delivered, self.processed
        )
    }
}

/// A snapshot of one link.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct LinkStats {
    name: String,
    up: bool,
    peer: Option<String>,
    local_addr: Option<String>,
    capacity: usize,
    tx: Py<TxCursors>,
    rx: Py<RxCursors>,
    tx_in_use: usize,
    rx_in_use: usize,
    connects: u64,
    refused_connections: u64,
    counters: Py<PyDict>,
    tx_backlog: u64,
    pending_connections: usize,
    /// Messages the peer confirmed, and the sum of their confirmation times (s).
    ack_latency_count: u64,
    ack_latency_sum: f64,
    last_error: Option<String>,
}

#[pymethods]
impl LinkStats {
    fn __repr__(&self) -> String {
        format!(
            "LinkStats(name={:?}, up={}, capacity={}, tx_in_use={}, rx_in_use={})",
            self.name,
            if self.up { "True" } else { "False" },
            self.capacity,
            self.tx_in_use,
            self.rx_in_use
        )
    }
}

/// A snapshot of a buffer server's SMSC side.
#[pyclass(frozen, get_all, module = "smslink")]
pub struct SmscStats {
    logged_in: bool,
    connects: u64,
    mo_received: u64,
    mo_backpressured: u64,
    mt_submitted: u64,
    mt_accepted: u64,
    mt_rejected: u64,
    mt_resubmitted: u64,
    status_reports: u64,
    violations: u64,
    mo_unattributable: u64,
    mo_deferred: u64,
    mt_temporary_failures: u64,
    reports_forwarded: u64,
    reports_unknown: u64,
    reports_awaited: u64,
    resubmitted_after_restart: u64,
}

#[pymethods]
impl SmscStats {
    fn __repr__(&self) -> String {
        format!(
            "SmscStats(logged_in={}, mo_received={}, mt_submitted={}, mt_accepted={}, mt_rejected={})",
            if self.logged_in { "True" } else { "False" },
            self.mo_received,
            self.mt_submitted,
            self.mt_accepted,
            self.mt_rejected
        )
    }
}

/// A running smslink node: the IM-side endpoint (links, no SMSC), a buffer server
/// toward an SMSC (`smsc=Smsc(...)` for CIMD2, `smsc=Smpp(...)` for SMPP 3.4), or an
/// SMSC-less buffer server (the application sends MO and receives MT).
#[pyclass(frozen, subclass, module = "smslink")]
pub struct Endpoint {
    node: Node,
    names: Vec<Py<PyString>>,
    name_strs: Vec<String>,
    filter: StatusFilter,
    event_capacity: usize,
    /// `send_batch`'s conversion buffer, kept so that a batch costs no allocation
    /// (a thousand 700-byte messages would be a fresh mmap each time).
    scratch: Mutex<Vec<Message>>,
}

impl Endpoint {
    fn link_id(&self, name: &str) -> PyResult<LinkId> {
        self.name_strs
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| unknown_link(name, &self.name_strs))
    }

    fn full(&self, e: NodeError) -> PyErr {
        match e {
            NodeError::Full { link, capacity } => ring_full(
                self.name_strs.get(link).map_or("?", |s| s.as_str()),
                capacity,
            ),
            other => raise(other),
        }
    }

    /// Next wanted event without waiting.
    fn take_event(&self) -> Option<NodeEvent> {
        while let Some(ev) = self.node.try_event() {
            if self.filter.wants(&ev) {
                return Some(ev);
            }
        }
        None
    }

    /// Wait up to `wait` for a wanted event (GIL released by the caller).
    fn wait_wanted(&self, wait: Duration) -> Option<NodeEvent> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(ev) = self.take_event() {
                return Some(ev);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.node.is_running() {
                return None;
            }
            match self.node.wait_event(Some(left)) {
                Some(ev) if self.filter.wants(&ev) => return Some(ev),
                Some(_) => continue,
                None => {
                    if !self.node.is_running() {
                        return self.take_event();
                    }
                }
            }
        }
    }
}

#[pymethods]
impl Endpoint {
    #[new]
    #[pyo3(signature = (links, smsc=None, *, event_capacity=8192, reconnect_min=0.1,
                        reconnect_max=5.0, status_events=None, metrics_listen=None,
                        journal_dir=None, journal_sync="always", journal_max_disk_bytes=None,
                        reassembly_timeout=600.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        links: Vec<PyRef<'_, Link>>,
        smsc: Option<&Bound<'_, PyAny>>,
        event_capacity: usize,
        reconnect_min: f64,
        reconnect_max: f64,
        status_events: Option<Vec<String>>,
        metrics_listen: Option<&str>,
        journal_dir: Option<std::path::PathBuf>,
        journal_sync: &str,
        journal_max_disk_bytes: Option<u64>,
        reassembly_timeout: f64,
    ) -> PyResult<Self> {
        if links.is_empty() {
            return Err(config_error(
                "an endpoint needs at least one Link(name, psk, listen=... or dial=...)",
            ));
        }
        let mut name_strs: Vec<String> = Vec::new();
        for l in &links {
            let n = l.spec().config.name;
            if name_strs.contains(&n) {
                return Err(config_error(format!(
                    "two links are named {n:?}; link names must differ"
                )));
            }
            name_strs.push(n);
        }
        if event_capacity < 16 {
            return Err(config_error(format!(
                "event_capacity {event_capacity} is too small; use at least 16"
            )));
        }
        let filter = match status_events {
            None => StatusFilter::ALL,
            Some(names) => StatusFilter::from_names(&names)?,
        };
        let mut config = NodeConfig::new(links.iter().map(|l| l.spec()).collect());
        // The SMSC is served by the first link (the one toward the IM side).
        if let (Some(smsc), Some(first)) = (smsc, config.links.first_mut()) {
            first.smsc = Some(smsc_spec(smsc)?);
        }
        config.event_capacity = event_capacity;
        config.metrics_listen = metrics_listen
            .map(|a| {
                a.parse().map_err(|_| {
                    config_error(format!("metrics_listen {a:?} is not an ip:port address"))
                })
            })
            .transpose()?;
        config.journal = journal_spec(journal_dir, journal_sync, journal_max_disk_bytes)?;
        config.reconnect_min = seconds("reconnect_min", reconnect_min, false)?;
        config.reconnect_max = seconds("reconnect_max", reconnect_max, false)?;
        config.reassembly_timeout = seconds("reassembly_timeout", reassembly_timeout, false)?;
        if config.reconnect_max < config.reconnect_min {
            return Err(config_error(format!(
                "reconnect_max ({reconnect_max} s) is below reconnect_min ({reconnect_min} s)"
            )));
        }
        let node = py.detach(|| Node::start(config)).or_raise()?;
        let names = name_strs
            .iter()
            .map(|n| PyString::intern(py, n).unbind())
            .collect();
        Ok(Endpoint {
            node,
            names,
            name_strs,
            filter,
            event_capacity,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Send one SMS: routed by recipient prefix (longest wins, else the default
    /// link) unless `link` names one. Returns at once; raises `RingFull` when the
    /// link holds `capacity` unprocessed messages.
    #[pyo3(signature = (sender, recipient, text=None, data=None, client_ref=0, link=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        sender: &Bound<'_, PyString>,
        recipient: &Bound<'_, PyString>,
        text: Option<&Bound<'_, PyString>>,
        data: Option<&Bound<'_, PyBytes>>,
        client_ref: u64,
        link: Option<&Bound<'_, PyString>>,
    ) -> PyResult<Receipt> {
        let text = match text {
            Some(t) => Some(utf8(t)?),
            None => None,
        };
        let m = message(
            utf8(sender)?,
            utf8(recipient)?,
            text,
            data.map(|d| d.as_bytes()),
            client_ref,
        )?;
        let sent = match link {
            Some(name) => self.node.send_on(self.link_id(utf8(name)?)?, &m),
            None => self.node.send(&m),
        };
        match sent {
            Ok(r) => Ok(Receipt {
                link: self.names[r.link].clone_ref(py),
                seq: r.seq,
            }),
            Err(e) => Err(self.full(e)),
        }
    }

    /// Send many messages on one link, in order: each item is `(sender, recipient,
    /// text_or_bytes)` or `(sender, recipient, text_or_bytes, client_ref)`. Takes as
    /// many as the link has room for and returns that count (0 when full); their
    /// seqs follow each other. Send the rest later.
    fn send_batch(&self, link: &str, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let id = self.link_id(link)?;
        let room = self.node.free_slots(id).or_raise()?;
        // Iterating `messages` may run Python code that lets another thread in;
        // never wait for the buffer while holding the GIL.
        let mut own = Vec::new();
        let mut shared = self.scratch.try_lock();
        let batch: &mut Vec<Message> = match shared.as_deref_mut() {
            Some(b) => b,
            None => &mut own,
        };
        batch.clear();
        for item in messages.try_iter()? {
            if batch.len() >= room {
                break;
            }
            let item = item?;
            let tuple = item.cast::<PyTuple>().map_err(|_| {
                InvalidMessage::new_err(
                    "send_batch items are tuples (sender, recipient, text_or_bytes[, client_ref])",
                )
            })?;
            let n = tuple.len();
            if !(3..=4).contains(&n) {
                return Err(InvalidMessage::new_err(format!(
                    "send_batch item has {n} fields; expected (sender, recipient, text_or_bytes[, client_ref])"
                )));
            }
            let sender = tuple.get_item(0)?;
            let recipient = tuple.get_item(1)?;
            let payload = tuple.get_item(2)?;
            let client_ref: u64 = if n == 4 {
                tuple.get_item(3)?.extract()?
            } else {
                0
            };
            let (text, data) = payload_arg(&payload)?;
            let m = message(
                str_arg("sender", &sender)?,
                str_arg("recipient", &recipient)?,
                text,
                data,
                client_ref,
            )?;
            batch.push(m);
        }
        let sent = self.node.send_batch(id, batch);
        batch.clear();
        let (taken, _) = sent.or_raise()?;
        Ok(taken)
    }

    /// How many more messages `link` takes now.
    fn free_slots(&self, link: &str) -> PyResult<usize> {
        self.node.free_slots(self.link_id(link)?).or_raise()
    }

    /// Block (GIL released) until `link` takes `min_room` more messages (at most
    /// its capacity) or `timeout` seconds pass; returns whether it does. The node
    /// wakes the wait as the peer processes messages, and takes no event off the
    /// endpoint meanwhile. Ctrl-C interrupts it. A bulk sender wakes less often
    /// with a larger `min_room`.
    #[pyo3(signature = (link, timeout=None, min_room=1))]
    fn wait_for_room(
        &self,
        py: Python<'_>,
        link: &str,
        timeout: Option<f64>,
        min_room: usize,
    ) -> PyResult<bool> {
        let id = self.link_id(link)?;
        let deadline = crate::util::timeout(timeout)?.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            match py.detach(|| self.node.wait_for_room(id, min_room, Some(slice))) {
                Ok(_) => return Ok(true),
                Err(NodeError::Full { .. }) => {}
                Err(e) => return Err(e).or_raise(),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// Acknowledge a received message once it is safely handed on (stored,
    /// delivered to the user): the peer then frees its slot. `error_code` reports
    /// a refusal instead (the peer sees `accepted=False` and the code).
    #[pyo3(signature = (link, seq, error_code=None))]
    fn ack(&self, link: &str, seq: u64, error_code: Option<u32>) -> PyResult<()> {
        let outcome = match error_code {
            None => Outcome::Accepted,
            Some(code) => Outcome::Rejected { code },
        };
        self.node.ack(self.link_id(link)?, seq, outcome).or_raise()
    }

    /// The next event, waiting up to `timeout` seconds (None: until one comes or
    /// the endpoint closes). Returns None on timeout or once closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let deadline = crate::util::timeout(timeout)?.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let got = if slice.is_zero() {
                self.take_event()
            } else {
                py.detach(|| self.wait_wanted(slice))
            };
            if let Some(ev) = got {
                return events::to_py(py, ev, &self.names).map(Some);
            }
            if !self.node.is_running() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// Every event waiting now (at most `max`), without blocking.
    #[pyo3(signature = (max=1024))]
    fn poll_events<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while list.len() < max {
            let Some(ev) = self.take_event() else { break };
            list.append(events::to_py(py, ev, &self.names)?)?;
        }
        Ok(list)
    }

    /// A descriptor that turns readable when events may be waiting (for
    /// select/poll or asyncio's `add_reader`). When it does: `clear_event_fd()`,
    /// then `poll_events()` until it returns an empty list.
    fn fileno(&self) -> i32 {
        self.node.event_fd()
    }

    fn clear_event_fd(&self) {
        self.node.clear_event_fd();
    }

    /// Names of the links, in configuration order.
    #[getter]
    fn links(&self, py: Python<'_>) -> Vec<Py<PyString>> {
        self.names.iter().map(|n| n.clone_ref(py)).collect()
    }

    #[getter]
    fn event_capacity(&self) -> usize {
        self.event_capacity
    }

    /// True once `close` was called (or the node stopped).
    #[getter]
    fn closed(&self) -> bool {
        !self.node.is_running()
    }

    /// The link a recipient would be routed to (None: no route).
    fn route(&self, py: Python<'_>, recipient: &str) -> Option<Py<PyString>> {
        self.node
            .route(recipient)
            .map(|id| self.names[id].clone_ref(py))
    }

    /// The "host:port" a listening link is bound to (None for dialling links).
    fn local_addr(&self, link: &str) -> PyResult<Option<String>> {
        Ok(self
            .node
            .local_addr(self.link_id(link)?)
            .map(|a| a.to_string()))
    }

    fn link_stats(&self, py: Python<'_>, link: &str) -> PyResult<LinkStats> {
        let id = self.link_id(link)?;
        let s = self
            .node
            .link_stats(id)
            .ok_or_else(|| unknown_link(link, &self.name_strs))?;
        let counters = PyDict::new(py);
        let c = s.counters;
        for (k, v) in [
            ("bytes_in", c.bytes_in),
            ("bytes_out", c.bytes_out),
            ("frames_in", c.frames_in),
            ("frames_out", c.frames_out),
            ("data_sent", c.data_sent),
            ("data_resent", c.data_resent),
            ("data_received", c.data_received),
            ("duplicates", c.duplicates),
            ("acks_sent", c.acks_sent),
            ("pings_sent", c.pings_sent),
            ("handshakes", c.handshakes),
            ("auth_failures", c.auth_failures),
            ("link_downs", c.link_downs),
        ] {
            counters.set_item(k, v)?;
        }
        Ok(LinkStats {
            name: s.name,
            up: s.up,
            peer: s.peer,
            local_addr: s.local_addr.map(|a| a.to_string()),
            capacity: s.capacity,
            tx: Py::new(
                py,
                TxCursors {
                    retrieved: s.tx.last_retrieved,
                    sent: s.tx.last_sent,
                    confirmed: s.tx.last_confirmed,
                    processed: s.tx.last_processed,
                },
            )?,
            rx: Py::new(
                py,
                RxCursors {
                    stored: s.rx.last_stored,
                    delivered: s.rx.last_delivered,
                    processed: s.rx.last_processed,
                },
            )?,
            tx_in_use: s.tx_in_use,
            rx_in_use: s.rx_in_use,
            connects: s.connects,
            refused_connections: s.refused_connections,
            counters: counters.unbind(),
            tx_backlog: s.tx_backlog,
            pending_connections: s.pending_connections,
            ack_latency_count: s.ack_latency.count,
            ack_latency_sum: s.ack_latency.sum_micros as f64 / 1e6,
            last_error: s.last_error,
        })
    }

    /// The "host:port" the metrics listener (`metrics_listen=`) is bound to.
    #[getter]
    fn metrics_addr(&self) -> Option<String> {
        self.node.metrics_addr().map(|a| a.to_string())
    }

    /// The metrics in the Prometheus text format 0.0.4, as GET /metrics serves them.
    fn metrics(&self) -> String {
        self.node.metrics_text()
    }

    /// The status document GET /status serves, as a dict.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.node.status_json(),))
    }

    /// The SMSC side of a buffer server (None on an endpoint without `smsc=`).
    fn smsc_stats(&self) -> Option<SmscStats> {
        self.node.smsc_stats().map(|s| SmscStats {
            logged_in: s.logged_in,
            connects: s.connects,
            mo_received: s.mo_received,
            mo_backpressured: s.mo_backpressured,
            mt_submitted: s.mt_submitted,
            mt_accepted: s.mt_accepted,
            mt_rejected: s.mt_rejected,
            mt_resubmitted: s.mt_resubmitted,
            status_reports: s.status_reports,
            violations: s.violations,
            mo_unattributable: s.mo_unattributable,
            mo_deferred: s.mo_deferred,
            mt_temporary_failures: s.mt_temporary_failures,
            reports_forwarded: s.reports_forwarded,
            reports_unknown: s.reports_unknown,
            reports_awaited: s.reports_awaited,
            resubmitted_after_restart: s.resubmitted_after_restart,
        })
    }

    /// Stop taking work, give sent messages up to `flush_timeout` seconds to be
    /// processed by the peer, then close every connection. Returns True when
    /// nothing was left unprocessed. Closing twice does nothing.
    #[pyo3(signature = (flush_timeout=1.0))]
    fn close(&self, py: Python<'_>, flush_timeout: f64) -> PyResult<bool> {
        let flush = seconds("flush_timeout", flush_timeout, true)?;
        if !self.node.is_running() {
            return Ok(true);
        }
        let report = py.detach(|| self.node.close(flush));
        Ok(report.drained)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py, 1.0)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<smslink.Endpoint links={:?}{}{}>",
            self.name_strs,
            if self.node.smsc_stats().is_some() {
                " smsc"
            } else {
                ""
            },
            if self.node.is_running() {
                ""
            } else {
                " closed"
            }
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Endpoint>()?;
    m.add_class::<Receipt>()?;
    m.add_class::<TxCursors>()?;
    m.add_class::<RxCursors>()?;
    m.add_class::<LinkStats>()?;
    m.add_class::<SmscStats>()?;
    Ok(())
}
