//! What an endpoint is built from: `Link` and `Smsc` (frozen, checked on creation).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use smslink::cimd2::session::ClientConfig;
use smslink::link::LinkConfig;
use smslink::ring::MAX_CAPACITY;
use smslink::runtime::{LinkSpec, SmscSpec, Transport};

use crate::errors::config_error;
use crate::util::{seconds, socket_addr};

/// One named link to a peer: either `listen` for it or `dial` it.
#[pyclass(frozen, module = "smslink")]
pub struct Link {
    #[pyo3(get)]
    name: String,
    psk: Vec<u8>,
    #[pyo3(get)]
    listen: Option<String>,
    #[pyo3(get)]
    dial: Option<String>,
    #[pyo3(get)]
    prefixes: Vec<String>,
    #[pyo3(get)]
    default: bool,
    #[pyo3(get)]
    capacity: usize,
    #[pyo3(get)]
    heartbeat: f64,
    #[pyo3(get)]
    dead_after: f64,
    #[pyo3(get)]
    expected_peer: Option<String>,
    spec: LinkSpec,
}

#[pymethods]
impl Link {
    #[new]
    #[pyo3(signature = (name, psk, *, listen=None, dial=None, prefixes=Vec::new(), default=false,
                        capacity=255, heartbeat=5.0, dead_after=15.0, expected_peer=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        psk: &Bound<'_, PyAny>,
        listen: Option<String>,
        dial: Option<String>,
        prefixes: Vec<String>,
        default: bool,
        capacity: usize,
        heartbeat: f64,
        dead_after: f64,
        expected_peer: Option<String>,
    ) -> PyResult<Self> {
        let psk: Vec<u8> = if let Ok(s) = psk.cast::<PyString>() {
            s.to_cow()?.as_bytes().to_vec()
        } else if let Ok(b) = psk.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(config_error(format!(
                "link {name:?}: psk is the pre-shared key as str or bytes, not {}",
                psk.get_type().name()?
            )));
        };
        if psk.is_empty() {
            return Err(config_error(format!(
                "link {name:?}: psk is empty; both sides need the same secret key"
            )));
        }
        if name.is_empty() || name.len() > 64 {
            return Err(config_error(format!(
                "link name {name:?} must be 1 to 64 bytes long"
            )));
        }
        let transport = match (&listen, &dial) {
            (Some(addr), None) => {
                Transport::Listen(socket_addr(&format!("link {name:?} listen"), addr)?)
            }
            (None, Some(addr)) => {
                Transport::Dial(socket_addr(&format!("link {name:?} dial"), addr)?)
            }
            _ => {
                return Err(config_error(format!(
                    "link {name:?}: give exactly one of listen=\"host:port\" (wait for the peer) \
                     or dial=\"host:port\" (connect to it)"
                )))
            }
        };
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(config_error(format!(
                "link {name:?}: capacity {capacity} is out of range 1..={MAX_CAPACITY}"
            )));
        }
        let heartbeat_d = seconds(&format!("link {name:?} heartbeat"), heartbeat, false)?;
        let dead_d = seconds(&format!("link {name:?} dead_after"), dead_after, false)?;
        if dead_d <= heartbeat_d {
            return Err(config_error(format!(
                "link {name:?}: dead_after ({dead_after} s) must be longer than heartbeat \
                 ({heartbeat} s), or a quiet link would be declared dead"
            )));
        }
        for p in &prefixes {
            if p.is_empty() {
                return Err(config_error(format!(
                    "link {name:?}: an empty prefix would match everything; use default=True"
                )));
            }
        }
        let mut config = LinkConfig::new(&name, &psk);
        config.expected_peer = expected_peer.clone();
        config.capacity = capacity;
        config.heartbeat_interval = heartbeat_d;
        config.dead_after = dead_d;
        let mut spec = LinkSpec::new(config, transport);
        spec.prefixes = prefixes.clone();
        spec.default_route = default;
        Ok(Link {
            name,
            psk,
            listen,
            dial,
            prefixes,
            default,
            capacity,
            heartbeat,
            dead_after,
            expected_peer,
            spec,
        })
    }

    fn __repr__(&self) -> String {
        let way = match (&self.listen, &self.dial) {
            (Some(a), _) => format!("listen={a:?}"),
            (_, Some(a)) => format!("dial={a:?}"),
            _ => String::new(),
        };
        format!(
            "Link({:?}, psk=<{} bytes>, {way}, prefixes={:?}, default={}, capacity={})",
            self.name,
            self.psk.len(),
            self.prefixes,
            if self.default { "True" } else { "False" },
            self.capacity
        )
    }
}

impl Link {
    pub fn spec(&self) -> LinkSpec {
        self.spec.clone()
    }
}

/// The SMSC a buffer server logs in to over CIMD2.
#[pyclass(frozen, module = "smslink")]
pub struct Smsc {
    #[pyo3(get)]
    addr: String,
    #[pyo3(get)]
    user: String,
    spec: SmscSpec,
}

#[pymethods]
impl Smsc {
    #[new]
    #[pyo3(signature = (addr, user, password, *, keepalive=60.0, response_timeout=10.0,
                        max_retries=2, checksum=true))]
    fn new(
        addr: String,
        user: String,
        password: String,
        keepalive: f64,
        response_timeout: f64,
        max_retries: u32,
        checksum: bool,
    ) -> PyResult<Self> {
        let sock = socket_addr("smsc addr", &addr)?;
        let client = ClientConfig {
            user: user.clone(),
            password,
            keepalive: seconds("smsc keepalive", keepalive, true)?,
            response_timeout: seconds("smsc response_timeout", response_timeout, false)?,
            max_retries,
            checksum,
            ..ClientConfig::default()
        };
        Ok(Smsc {
            addr,
            user,
            spec: SmscSpec::cimd2(sock, client),
        })
    }

    fn __repr__(&self) -> String {
        format!("Smsc({:?}, user={:?})", self.addr, self.user)
    }
}

impl Smsc {
    pub fn spec(&self) -> SmscSpec {
        self.spec.clone()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Link>()?;
    m.add_class::<Smsc>()?;
    Ok(())
}
