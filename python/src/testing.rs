//! In-process peers for tests and benchmarks, re-exported by `smslink.testing`:
//! the CIMD2 SMSC simulator, the WAN emulator, and a sink that acknowledges
//! everything it receives (without Python in the loop).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent};
use smslink_tools::smsc_sim::{Counters, SimConfig, SmscSim as Sim};
use smslink_tools::wan::{Jitter, Outage, Wan as WanEmu, WanConfig};

use crate::config::Link;
use crate::errors::{config_error, ClosedError, NetworkError, OrRaise};
use crate::util::{message, payload_to_py, repr_opt, seconds, socket_addr};

fn closed(what: &str) -> PyErr {
    ClosedError::new_err(format!("the {what} was stopped; start a new one"))
}

/// One SMS as a test peer saw it. Exactly one of `text` and `data` is set.
#[pyclass(frozen, get_all, module = "smslink.testing")]
pub struct Sms {
    sender: String,
    recipient: String,
    text: Option<String>,
    data: Option<Py<PyBytes>>,
}

#[pymethods]
impl Sms {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str, &'static str) {
        ("sender", "recipient", "text", "data")
    }
    fn __repr__(&self) -> String {
        format!(
            "Sms(sender={:?}, recipient={:?}, text={}, data={})",
            self.sender,
            self.recipient,
            repr_opt(&self.text),
            if self.data.is_some() {
                "<bytes>"
            } else {
                "None"
            }
        )
    }
}

fn sms(py: Python<'_>, m: &Message) -> Sms {
    let (text, data) = payload_to_py(py, m);
    Sms {
        sender: m.from.as_str().to_owned(),
        recipient: m.to.as_str().to_owned(),
        text,
        data,
    }
}

fn counters_dict<'py>(py: Python<'py>, c: &Counters) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in counter_fields(c) {
        d.set_item(k, v)?;
    }
    Ok(d)
}

fn counter_fields(c: &Counters) -> [(&'static str, u64); 16] {
    [
        ("connections", c.connections),
        ("disconnections", c.disconnections),
        ("logins", c.logins),
        ("login_failures", c.login_failures),
        ("submits_received", c.submits_received),
        ("submits_accepted", c.submits_accepted),
        ("submits_rejected", c.submits_rejected),
        ("submits_nacked", c.submits_nacked),
        ("mo_sent", c.mo_sent),
        ("mo_acked", c.mo_acked),
        ("mo_rejected", c.mo_rejected),
        ("mo_failed", c.mo_failed),
        ("reports_sent", c.reports_sent),
        ("reports_acked", c.reports_acked),
        ("violations", c.violations),
        ("drops", c.drops),
    ]
}

/// The CIMD2 SMSC simulator, running on its own thread on a loopback port.
#[pyclass(frozen, module = "smslink.testing")]
pub struct SmscSim {
    /// Shared with calls in progress: no lock is held while a call waits without
    /// the GIL (another thread holding the GIL could then wait for that lock).
    sim: Mutex<Option<Arc<Sim>>>,
    #[pyo3(get)]
    address: String,
}

impl SmscSim {
    fn get(&self) -> PyResult<Arc<Sim>> {
        self.sim
            .lock()
            .clone()
            .ok_or_else(|| closed("SMSC simulator"))
    }

    fn with<T>(&self, f: impl FnOnce(&Sim) -> T) -> PyResult<T> {
        let sim = self.get()?;
        Ok(f(&sim))
    }
}

#[pymethods]
impl SmscSim {
    #[new]
    #[pyo3(signature = (user="smslink", password="secret", *, listen="127.0.0.1:0",
                        processing_delay=0.0, reject_fraction=0.0, reject_code=300,
                        nack_fraction=0.0, mo_rate=0.0, mo_count=0, record=None,
                        seed=1, log=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        user: &str,
        password: &str,
        listen: &str,
        processing_delay: f64,
        reject_fraction: f64,
        reject_code: u32,
        nack_fraction: f64,
        mo_rate: f64,
        mo_count: u64,
        record: Option<std::path::PathBuf>,
        seed: u64,
        log: bool,
    ) -> PyResult<Self> {
        for (name, f) in [
            ("reject_fraction", reject_fraction),
            ("nack_fraction", nack_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(config_error(format!("{name} must be within 0..1, not {f}")));
            }
        }
        if !mo_rate.is_finite() || mo_rate < 0.0 {
            return Err(config_error(format!("mo_rate must be >= 0, not {mo_rate}")));
        }
        let config = SimConfig {
            listen: socket_addr("listen", listen)?,
            user: user.to_owned(),
            password: password.to_owned(),
            processing_delay: seconds("processing_delay", processing_delay, true)?,
            reject_fraction,
            reject_code,
            nack_fraction,
            mo_rate,
            mo_count,
            record,
            seed,
            log,
            ..SimConfig::default()
        };
        let sim = py
            .detach(|| Sim::start(config))
            .map_err(|e| NetworkError::new_err(format!("SMSC simulator: {e}")))?;
        Ok(SmscSim {
            address: sim.local_addr().to_string(),
            sim: Mutex::new(Some(Arc::new(sim))),
        })
    }

    /// Queue a mobile-originated SMS for delivery to the logged-in client (in order;
    /// redelivered if the client vanishes before answering).
    #[pyo3(signature = (sender, recipient, text=None, data=None))]
    fn inject_mo(
        &self,
        sender: &str,
        recipient: &str,
        text: Option<&str>,
        data: Option<&[u8]>,
    ) -> PyResult<()> {
        let m = message(sender, recipient, text, data, 0)?;
        self.with(|s| s.inject_mo(&m))?
            .map_err(|e| NetworkError::new_err(e.to_string()))
    }

    /// Injected MO not yet acknowledged by a client.
    fn injected_pending(&self) -> PyResult<usize> {
        self.with(|s| s.injected_pending())
    }

    /// Every submit the SMSC accepted, in order.
    fn accepted(&self, py: Python<'_>) -> PyResult<Vec<Sms>> {
        let all = self.with(|s| s.accepted())?;
        Ok(all.iter().map(|m| sms(py, m)).collect())
    }

    /// Reject submits to recipients starting with `prefix` with error `code`.
    fn reject_recipients(&self, prefix: &str, code: u32) -> PyResult<()> {
        self.with(|s| s.reject_recipients(prefix, code))
    }

    fn clear_reject_rules(&self) -> PyResult<()> {
        self.with(|s| s.clear_reject_rules())
    }

    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.with(|s| s.counters())?;
        counters_dict(py, &c)
    }

    /// Wait (GIL released) until counter `name` reaches `at_least`; returns whether
    /// it did within `timeout` seconds.
    #[pyo3(signature = (name, at_least, timeout=10.0))]
    fn wait_for(&self, py: Python<'_>, name: &str, at_least: u64, timeout: f64) -> PyResult<bool> {
        if !counter_fields(&Counters::default())
            .iter()
            .any(|(k, _)| *k == name)
        {
            return Err(config_error(format!(
                "no counter {name:?}; see SmscSim.counters() for the names"
            )));
        }
        let wait = seconds("timeout", timeout, true)?;
        let deadline = Instant::now() + wait;
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            let sim = self.get()?;
            let (_, ok) = py.detach(|| {
                sim.wait_for(slice, |c| {
                    counter_fields(c)
                        .iter()
                        .any(|(k, v)| *k == name && *v >= at_least)
                })
            });
            if ok {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// Stop the simulator (closing its connections); returns the final counters.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let sim = self.sim.lock().take();
        let c = match sim {
            Some(sim) => py.detach(|| match Arc::try_unwrap(sim) {
                Ok(sim) => sim.stop().map_err(|e| e.to_string()),
                // A call in progress holds it too; the last one to let go stops it.
                Err(shared) => Ok(shared.counters()),
            }),
            None => Ok(Counters::default()),
        }
        .map_err(NetworkError::new_err)?;
        counters_dict(py, &c)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<smslink.testing.SmscSim {}>", self.address)
    }
}

/// The WAN emulator: a TCP proxy on a loopback port toward `upstream`, with delay,
/// jitter, bandwidth, cuts, stalls and outages.
#[pyclass(frozen, module = "smslink.testing")]
pub struct Wan {
    /// Shared with calls in progress (see `SmscSim::sim`).
    wan: Mutex<Option<Arc<WanEmu>>>,
    #[pyo3(get)]
    address: String,
}

impl Wan {
    fn get(&self) -> PyResult<Arc<WanEmu>> {
        self.wan
            .lock()
            .clone()
            .ok_or_else(|| closed("WAN emulator"))
    }

    /// Run a command without the GIL: each returns once the emulator applied it.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&WanEmu) -> T + Send) -> PyResult<T> {
        let w = self.get()?;
        Ok(py.detach(|| f(&w)))
    }
}

#[pymethods]
impl Wan {
    #[new]
    #[pyo3(signature = (upstream, *, delay=0.0, jitter=0.0, bandwidth=None,
                        cut_every=None, stall_every=None, stall_for=(1.0, 1.0),
                        listen="127.0.0.1:0", seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        upstream: &str,
        delay: f64,
        jitter: f64,
        bandwidth: Option<u64>,
        cut_every: Option<(f64, f64)>,
        stall_every: Option<(f64, f64)>,
        stall_for: (f64, f64),
        listen: &str,
        seed: u64,
    ) -> PyResult<Self> {
        let range = |what: &str, (lo, hi): (f64, f64)| -> PyResult<(Duration, Duration)> {
            let lo_d = seconds(what, lo, false)?;
            let hi_d = seconds(what, hi, false)?;
            if hi_d < lo_d {
                return Err(config_error(format!(
                    "{what}: ({lo}, {hi}) is (min, max) seconds; max is below min"
                )));
            }
            Ok((lo_d, hi_d))
        };
        let mut config = WanConfig::new(socket_addr("upstream", upstream)?)
            .with_delay(seconds("delay", delay, true)?);
        let jitter = seconds("jitter", jitter, true)?;
        if !jitter.is_zero() {
            config = config.with_jitter(Jitter::Uniform(jitter));
        }
        if let Some(b) = bandwidth {
            config = config.with_bandwidth(b);
        }
        config.cut_every = cut_every.map(|r| range("cut_every", r)).transpose()?;
        config.stall_every = stall_every.map(|r| range("stall_every", r)).transpose()?;
        config.stall_for = range("stall_for", stall_for)?;
        config.listen = socket_addr("listen", listen)?;
        config.seed = seed;
        let wan = py
            .detach(|| WanEmu::start(config))
            .map_err(|e| NetworkError::new_err(format!("WAN emulator: {e}")))?;
        Ok(Wan {
            address: wan.local_addr().to_string(),
            wan: Mutex::new(Some(Arc::new(wan))),
        })
    }

    /// Reset every relayed connection now (both sides see the cut).
    fn cut_all(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |w| w.cut_all())
    }

    /// Freeze (True) or resume (False) all forwarding; sockets stay open.
    fn stall(&self, py: Python<'_>, stalled: bool) -> PyResult<()> {
        self.with(py, |w| w.stall(stalled))
    }

    /// 'none' (normal), 'refuse' (cut, and reset new connections) or 'hang' (cut,
    /// and hold new connections unanswered).
    fn set_outage(&self, py: Python<'_>, outage: &str) -> PyResult<()> {
        let o = match outage {
            "none" => Outage::None,
            "refuse" => Outage::Refuse,
            "hang" => Outage::Hang,
            other => {
                return Err(config_error(format!(
                    "outage {other:?}: use 'none', 'refuse' or 'hang'"
                )))
            }
        };
        self.with(py, |w| w.set_outage(o))
    }

    /// One-way delays in seconds, client to upstream and back.
    fn set_delay(&self, py: Python<'_>, up: f64, down: f64) -> PyResult<()> {
        let up = seconds("up", up, true)?;
        let down = seconds("down", down, true)?;
        self.with(py, |w| w.set_delay(up, down))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with(py, |w| w.stats())?;
        let d = PyDict::new(py);
        for (k, v) in [
            ("connections", s.connections),
            ("active", s.active),
            ("cuts", s.cuts),
            ("refused", s.refused),
            ("bytes_up", s.bytes_up),
            ("bytes_down", s.bytes_down),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn stop(&self, py: Python<'_>) {
        let wan = self.wan.lock().take();
        // Dropping the last reference stops the emulator (a call in progress may
        // hold the last one; it stops it when it returns).
        py.detach(|| drop(wan));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("<smslink.testing.Wan {}>", self.address)
    }
}

/// A peer that acknowledges every message it receives at once, on its own thread
/// (no Python involved): the far end for benchmarks and flow tests.
#[pyclass(frozen, module = "smslink.testing")]
pub struct Sink {
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
    received: Arc<(Mutex<u64>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
    link_name: String,
}

#[pymethods]
impl Sink {
    #[new]
    #[pyo3(signature = (link, error_code=None))]
    fn new(py: Python<'_>, link: PyRef<'_, Link>, error_code: Option<u32>) -> PyResult<Self> {
        let spec: LinkSpec = link.spec();
        let link_name = spec.config.name.clone();
        let node = Arc::new(
            py.detach(|| Node::start(NodeConfig::new(vec![spec])))
                .or_raise()?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new((Mutex::new(0u64), Condvar::new()));
        let outcome = match error_code {
            None => Outcome::Accepted,
            Some(code) => Outcome::Rejected { code },
        };
        let thread = {
            let (node, stop, received) = (node.clone(), stop.clone(), received.clone());
            std::thread::Builder::new()
                .name("smslink-sink".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) && node.is_running() {
                        let Some(ev) = node.wait_event(Some(Duration::from_millis(100))) else {
                            continue;
                        };
                        if let NodeEvent::Received { link, seq, .. } = ev {
                            // Busy only when acks outrun the loop: yield and retry.
                            while let Err(smslink::runtime::NodeError::Busy) =
                                node.ack(link, seq, outcome)
                            {
                                std::thread::yield_now();
                            }
                            *received.0.lock() += 1;
                            received.1.notify_all();
                        }
                    }
                })
                .map_err(|e| NetworkError::new_err(e.to_string()))?
        };
        Ok(Sink {
            node,
            stop,
            received,
            thread: Mutex::new(Some(thread)),
            link_name,
        })
    }

    /// Messages received (and acknowledged) so far.
    #[getter]
    fn received(&self) -> u64 {
        *self.received.0.lock()
    }

    /// "host:port" when the sink's link listens.
    #[getter]
    fn address(&self) -> Option<String> {
        self.node.local_addr(0).map(|a| a.to_string())
    }

    /// Wait (GIL released) until `count` messages were received.
    #[pyo3(signature = (count, timeout=10.0))]
    fn wait_received(&self, py: Python<'_>, count: u64, timeout: f64) -> PyResult<bool> {
        let deadline = Instant::now() + seconds("timeout", timeout, true)?;
        loop {
            let slice = (Instant::now() + Duration::from_millis(200)).min(deadline);
            let done = py.detach(|| {
                let (count_lock, changed) = &*self.received;
                let mut n = count_lock.lock();
                while *n < count {
                    if changed.wait_until(&mut n, slice).timed_out() {
                        break;
                    }
                }
                *n >= count
            });
            if done {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    fn stop(&self, py: Python<'_>) {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread.lock().take();
        py.detach(|| {
            if let Some(t) = thread {
                let _ = t.join();
            }
            self.node.close(Duration::ZERO);
        });
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<smslink.testing.Sink link={:?} received={}>",
            self.link_name,
            self.received()
        )
    }
}

/// Make a TLS key and self-signed certificate for a link named `name` in
/// `directory` (as `smslink keygen` does): returns the certificate file, the key
/// file and the SHA-256 public-key fingerprint the peer pins.
#[pyfunction]
fn make_site_identity(name: &str, directory: &str) -> PyResult<(String, String, String)> {
    let id = smslink_tools::certs::generate_site(name, std::path::Path::new(directory))
        .map_err(crate::errors::config_error)?;
    Ok((
        id.cert.display().to_string(),
        id.key.display().to_string(),
        smslink::runtime::tls::fingerprint_hex(&id.fingerprint),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(make_site_identity, m)?)?;
    m.add_class::<Sms>()?;
    m.add_class::<SmscSim>()?;
    m.add_class::<Wan>()?;
    m.add_class::<Sink>()?;
    Ok(())
}
