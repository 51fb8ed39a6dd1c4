//! What an endpoint is built from: `Link`, and `Smsc` (CIMD2) or `Smpp` (frozen,
//! checked on creation).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use smslink::cimd2::session::ClientConfig;
use smslink::journal::SyncPolicy;
use smslink::link::LinkConfig;
use smslink::ring::MAX_CAPACITY;
use smslink::runtime::{JournalSpec, LinkSpec, SmscSpec, TlsOptions, Transport};
use smslink::smpp::{registered_delivery, BindMode, SmppConfig, TonNpi};

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
    #[pyo3(get)]
    insecure_plaintext: bool,
    spec: LinkSpec,
}

#[pymethods]
impl Link {
    #[new]
    #[pyo3(signature = (name, psk, *, listen=None, dial=None, prefixes=Vec::new(), default=false,
                        capacity=255, heartbeat=5.0, dead_after=15.0, expected_peer=None,
                        tls_cert=None, tls_key=None, tls_ca=None, tls_peer_fingerprint=None,
                        tls_server_name=None, insecure_plaintext=false))]
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
        tls_cert: Option<String>,
        tls_key: Option<String>,
        tls_ca: Option<String>,
        tls_peer_fingerprint: Option<String>,
        tls_server_name: Option<String>,
        insecure_plaintext: bool,
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
        if psk.len() < smslink::link::MIN_PSK_LEN {
            return Err(config_error(format!(
                "link {name:?}: psk is {} bytes; at least {} are needed",
                psk.len(),
                smslink::link::MIN_PSK_LEN
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
        let tls = TlsOptions {
            cert: tls_cert.map(Into::into),
            key: tls_key.map(Into::into),
            ca: tls_ca.map(Into::into),
            peer_fingerprint: tls_peer_fingerprint,
            server_name: tls_server_name,
            insecure_plaintext,
        };
        let mut spec = tls
            .apply(LinkSpec::new(config, transport))
            .map_err(|e| config_error(format!("link {name:?}: {e}")))?;
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
            insecure_plaintext,
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
            "Link({:?}, psk=<{} bytes>, {way}, prefixes={:?}, default={}, capacity={}, {})",
            self.name,
            self.psk.len(),
            self.prefixes,
            if self.default { "True" } else { "False" },
            self.capacity,
            if self.insecure_plaintext {
                "insecure_plaintext=True"
            } else {
                "tls"
            }
        )
    }
}

impl Link {
    pub fn spec(&self) -> LinkSpec {
        self.spec.clone()
    }
}

/// The SMSC a buffer server logs in to over CIMD2. `status_report_request`: the
/// CIMD2 056 value sent with every submit (0: no delivery reports; 14: delivered,
/// failed and buffered); reports reach the IM side as `Report` events.
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
                        max_retries=2, checksum=true, status_report_request=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        addr: String,
        user: String,
        password: String,
        keepalive: f64,
        response_timeout: f64,
        max_retries: u32,
        checksum: bool,
        status_report_request: u32,
    ) -> PyResult<Self> {
        let sock = socket_addr("smsc addr", &addr)?;
        let client = ClientConfig {
            user: user.clone(),
            password,
            keepalive: seconds("smsc keepalive", keepalive, true)?,
            response_timeout: seconds("smsc response_timeout", response_timeout, false)?,
            max_retries,
            checksum,
            status_report_request,
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

/// The SMSC a buffer server binds to over SMPP 3.4.
#[pyclass(frozen, module = "smslink")]
pub struct Smpp {
    #[pyo3(get)]
    addr: String,
    #[pyo3(get)]
    system_id: String,
    #[pyo3(get)]
    system_type: String,
    #[pyo3(get)]
    bind: String,
    #[pyo3(get)]
    window: usize,
    #[pyo3(get)]
    enquire_link_interval: f64,
    #[pyo3(get)]
    response_timeout: f64,
    #[pyo3(get)]
    registered_delivery: bool,
    #[pyo3(get)]
    numeric_ton: u8,
    #[pyo3(get)]
    numeric_npi: u8,
    #[pyo3(get)]
    gsm_packed: bool,
    spec: SmscSpec,
}

/// `bind=` values, as Python writes them.
const BIND_MODES: [(&str, BindMode); 2] = [
    ("transceiver", BindMode::Transceiver),
    ("transmitter-receiver", BindMode::TransmitterReceiver),
];

/// A TON/NPI pair SMPP 3.4 defines (`TonNpi::defined`).
fn ton_npi(ton_value: i64, npi_value: i64) -> PyResult<TonNpi> {
    TonNpi::defined(ton_value, npi_value).map_err(|e| config_error(format!("smsc numeric_{e}")))
}

#[pymethods]
impl Smpp {
    #[new]
    #[pyo3(signature = (addr, system_id, password, *, system_type="", bind="transceiver",
                        window=10,
                        enquire_link_interval=30.0, response_timeout=30.0,
                        registered_delivery=true, numeric_ton=0, numeric_npi=1,
                        gsm_packed=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        addr: String,
        system_id: String,
        password: String,
        system_type: &str,
        bind: &str,
        window: i64,
        enquire_link_interval: f64,
        response_timeout: f64,
        registered_delivery: bool,
        numeric_ton: i64,
        numeric_npi: i64,
        gsm_packed: bool,
    ) -> PyResult<Self> {
        let sock = socket_addr("smsc addr", &addr)?;
        let Some(&(_, bind_mode)) = BIND_MODES.iter().find(|(name, _)| *name == bind) else {
            return Err(config_error(format!(
                "smsc bind {bind:?} is neither \"transceiver\" (one connection) nor \
                 \"transmitter-receiver\" (two)"
            )));
        };
        // No more MT can be outstanding than the link's ring holds.
        let window_ok = usize::try_from(window)
            .ok()
            .filter(|w| (1..=MAX_CAPACITY).contains(w));
        let Some(window_slots) = window_ok else {
            return Err(config_error(format!(
                "smsc window {window} is out of range 1..={MAX_CAPACITY}"
            )));
        };
        let numeric = ton_npi(numeric_ton, numeric_npi)?;
        let mut client = SmppConfig {
            system_id: system_id.clone(),
            password,
            system_type: system_type.to_owned(),
            bind: bind_mode,
            window: window_slots,
            enquire_link_interval: seconds(
                "smsc enquire_link_interval",
                enquire_link_interval,
                true,
            )?,
            response_timeout: seconds("smsc response_timeout", response_timeout, false)?,
            registered_delivery: if registered_delivery {
                registered_delivery::RECEIPT_ALWAYS
            } else {
                registered_delivery::NONE
            },
            ..SmppConfig::default()
        };
        client.source_numbering.numeric = numeric;
        client.destination_numbering.numeric = numeric;
        client.text.gsm_packed = gsm_packed;
        // The bind's own encoder says which credential does not fit its field.
        client
            .bind_body()
            .map_err(|e| config_error(format!("smsc {e}")))?;
        Ok(Smpp {
            addr,
            system_id,
            system_type: system_type.to_owned(),
            bind: bind.to_owned(),
            window: window_slots,
            enquire_link_interval,
            response_timeout,
            registered_delivery,
            numeric_ton: numeric.ton,
            numeric_npi: numeric.npi,
            gsm_packed,
            spec: SmscSpec::smpp(sock, client),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Smpp({:?}, system_id={:?}, bind={:?})",
            self.addr, self.system_id, self.bind
        )
    }
}

/// What `smsc=` names: the settings of a CIMD2 (`Smsc`) or SMPP (`Smpp`) SMSC.
pub fn smsc_spec(smsc: &Bound<'_, PyAny>) -> PyResult<SmscSpec> {
    if let Ok(cimd2) = smsc.cast::<Smsc>() {
        return Ok(cimd2.get().spec());
    }
    if let Ok(smpp) = smsc.cast::<Smpp>() {
        return Ok(smpp.get().spec.clone());
    }
    Err(PyTypeError::new_err(format!(
        "smsc is smslink.Smsc(...) (CIMD2) or smslink.Smpp(...) (SMPP 3.4), not {}",
        smsc.get_type().name()?
    )))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Link>()?;
    m.add_class::<Smsc>()?;
    m.add_class::<Smpp>()?;
    Ok(())
}

/// The journal an `Endpoint` keeps (`journal_dir=`, `journal_sync=`,
/// `journal_max_disk_bytes=`), or none without a directory.
pub fn journal_spec(
    dir: Option<std::path::PathBuf>,
    sync: &str,
    max_disk_bytes: Option<u64>,
) -> PyResult<Option<JournalSpec>> {
    let Some(dir) = dir else {
        if max_disk_bytes.is_some() {
            return Err(config_error(
                "journal_max_disk_bytes without journal_dir: give the journal a directory",
            ));
        }
        return Ok(None);
    };
    if dir.as_os_str().is_empty() {
        return Err(config_error("journal_dir must not be empty"));
    }
    let mut spec = JournalSpec::new(dir);
    spec.config.sync = sync
        .parse::<SyncPolicy>()
        .map_err(|e| config_error(format!("journal_{e}")))?;
    if let Some(max) = max_disk_bytes {
        spec.config.set_max_disk_bytes(max);
    }
    Ok(Some(spec))
}
