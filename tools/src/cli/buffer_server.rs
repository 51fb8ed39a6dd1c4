//! `smslink buffer-server`: the daemon that sits next to an SMSC. A CIMD2 or SMPP
//! client toward the SMSC, the pipelined link toward the IM server (listening or dialling),
//! a ring in between. Configuration from a TOML file, every option overridable by a
//! flag; structured log lines on stderr; Ctrl-C / SIGTERM shut it down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use smslink::cimd2::session::ClientConfig;
use smslink::link::LinkConfig;
use smslink::runtime::log::{self, Format, Level};
use smslink::runtime::{
    LinkSpec, LinkStats, Node, NodeConfig, NodeEvent, ShutdownReport, SmscSpec, SmscStats,
    Transport,
};
use smslink::slog;
use smslink::smpp::{BindMode, SmppConfig};
use smslink::sms::concat::{LongMessages, RefWidth};
use smslink::sms::number::{InternationalForm, NumberConfig, Unattributable};

use super::journal::{FileJournal, JournalArgs};

/// Run a buffer server: CIMD2 or SMPP client toward the SMSC, pipelined link toward the IM server.
///
/// Every option may come from the TOML file given with --config (keys in brackets
/// below, e.g. `[smsc] addr = "10.0.0.5:9971"`); a flag overrides the file.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// TOML configuration file. Example:
    /// `log_level = "info"`, `stats_interval_secs = 10`,
    /// `[smsc] addr = "127.0.0.1:9971"  user = "smslink"  password = "secret"`,
    /// `[link] name = "bs1"  peer = "im"  psk_file = "/etc/smslink/psk"  listen = "0.0.0.0:7010"`,
    /// `[journal] dir = "/var/lib/smslink/journal"  sync = "always"`.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// [smsc] protocol: cimd2 or smpp (SMPP 3.4). Default cimd2.
    #[arg(long, value_name = "PROTOCOL")]
    pub smsc_protocol: Option<String>,
    /// [smsc] addr: the SMSC's address (host:port).
    #[arg(long, value_name = "ADDR")]
    pub smsc_addr: Option<SocketAddr>,
    /// [smsc] user: CIMD2 user identity, or SMPP system_id.
    #[arg(long, value_name = "USER")]
    pub smsc_user: Option<String>,
    /// [smsc] password: the login password.
    #[arg(long, value_name = "PASSWORD")]
    pub smsc_password: Option<String>,
    /// [smsc] keepalive_secs: CIMD2 alive / SMPP enquire_link after this many idle seconds (0: never for CIMD2). Default 60 (CIMD2), 30 (SMPP).
    #[arg(long, value_name = "SECS")]
    pub smsc_keepalive_secs: Option<u64>,
    /// [smsc] response_timeout_secs: wait this long for the SMSC's answer (CIMD2: then resend; SMPP: then reconnect). Default 10 (CIMD2), 30 (SMPP).
    #[arg(long, value_name = "SECS")]
    pub smsc_response_timeout_secs: Option<u64>,
    /// [smsc] system_type: SMPP bind system_type. Default empty.
    #[arg(long, value_name = "TYPE")]
    pub smsc_system_type: Option<String>,
    /// [smsc] bind: SMPP bind mode, transceiver or transmitter-receiver (two connections). Default transceiver.
    #[arg(long, value_name = "MODE")]
    pub smsc_bind: Option<String>,
    /// [smsc] window: SMPP submits outstanding at once. Default 10.
    #[arg(long, value_name = "N")]
    pub smsc_window: Option<usize>,
    /// [smsc] numeric_ton: SMPP TON of numbers written without "+". Default 0 (unknown).
    #[arg(long, value_name = "TON")]
    pub smsc_numeric_ton: Option<u8>,
    /// [smsc] numeric_npi: SMPP NPI of numbers written without "+". Default 1 (ISDN).
    #[arg(long, value_name = "NPI")]
    pub smsc_numeric_npi: Option<u8>,
    /// [smsc] max_output_bytes: drop the SMSC session when this much output to it is unread. Default 1048576.
    #[arg(long, value_name = "BYTES")]
    pub smsc_max_output_bytes: Option<usize>,
    /// [smsc] country_code: country calling code of the SMSC's national numbers (e.g. 46): an MO from 0700000001 becomes +46700000001. Default none (national numbers kept as they come).
    #[arg(long, value_name = "DIGITS")]
    pub smsc_country_code: Option<String>,
    /// [smsc] national_prefix: how the SMSC's national numbers start (trunk prefix). Default "0".
    #[arg(long, value_name = "DIGITS")]
    pub smsc_national_prefix: Option<String>,
    /// [smsc] international_prefix: how the SMSC's international numbers may start instead of "+". Default "00".
    #[arg(long, value_name = "DIGITS")]
    pub smsc_international_prefix: Option<String>,
    /// [smsc] short_code_max_digits: digit strings up to this long are short codes, kept as they come. Default 6.
    #[arg(long, value_name = "N")]
    pub smsc_short_code_max_digits: Option<usize>,
    /// [smsc] international_form: how an MT's international number goes to the SMSC, plus (+46700000001) or bare (46700000001). Default plus.
    #[arg(long, value_name = "FORM")]
    pub smsc_international_form: Option<String>,
    /// [smsc] unattributable_mo: an MO whose address has no normal form is refused toward the SMSC (refuse) or handed on as it came (pass-on). Default refuse.
    #[arg(long, value_name = "WHAT")]
    pub smsc_unattributable_mo: Option<String>,
    /// [smsc] long_messages: SMPP, how a message longer than one SMS goes: udh8 or udh16 (parts with an 8- or 16-bit reference header), sar (sar_* TLVs) or payload (whole in message_payload). Default udh8.
    #[arg(long, value_name = "HOW")]
    pub smsc_long_messages: Option<String>,
    /// [smsc] delivery_reports: ask the SMSC for delivery reports (CIMD2 056 = 14; SMPP registered_delivery = 1) and carry them to the IM side, true or false. Default false (CIMD2), true (SMPP).
    #[arg(long, value_name = "BOOL")]
    pub smsc_delivery_reports: Option<bool>,

    /// [link] name: this buffer server's name on the link (sent in HELLO). Default "bs".
    #[arg(long, value_name = "NAME")]
    pub link_name: Option<String>,
    /// [link] peer: accept only an IM side announcing this name (default: any name).
    #[arg(long, value_name = "NAME")]
    pub link_peer: Option<String>,
    /// [link] psk: the pre-shared key both link ends hold (prefer psk_file).
    #[arg(long, value_name = "KEY")]
    pub link_psk: Option<String>,
    /// [link] psk_file: read the pre-shared key from this file (trailing newline ignored).
    #[arg(long, value_name = "FILE")]
    pub link_psk_file: Option<PathBuf>,
    /// [link] listen: wait for the IM server's connection on this address.
    #[arg(long, value_name = "ADDR", conflicts_with = "link_dial")]
    pub link_listen: Option<SocketAddr>,
    /// [link] dial: connect out to the IM server at this address (for NAT); default: listen on 0.0.0.0:7010.
    #[arg(long, value_name = "ADDR")]
    pub link_dial: Option<SocketAddr>,
    /// [link] tls_cert: PEM file with this server's certificate (`smslink keygen` makes one).
    #[arg(long, value_name = "FILE")]
    pub link_tls_cert: Option<PathBuf>,
    /// [link] tls_key: PEM file with this server's private key.
    #[arg(long, value_name = "FILE")]
    pub link_tls_key: Option<PathBuf>,
    /// [link] tls_ca: accept a peer certificate signed by a CA in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub link_tls_ca: Option<PathBuf>,
    /// [link] tls_peer_fingerprint: accept only the peer key with this SHA-256 fingerprint (as `smslink keygen` prints it).
    #[arg(long, value_name = "HEX")]
    pub link_tls_peer_fingerprint: Option<String>,
    /// [link] tls_server_name: with tls_ca, when dialling: the name the IM side's certificate must carry (default: [link] peer).
    #[arg(long, value_name = "NAME")]
    pub link_tls_server_name: Option<String>,
    /// [link] insecure_plaintext: run the link without TLS (anyone on the path can read and change messages).
    #[arg(long)]
    pub link_insecure_plaintext: bool,
    /// [link] capacity: slots in each ring (messages in flight per direction). Default 255.
    #[arg(long, value_name = "N")]
    pub link_capacity: Option<usize>,
    /// [link] heartbeat_ms: send a PING after this long without sending. Default 5000.
    #[arg(long, value_name = "MS")]
    pub link_heartbeat_ms: Option<u64>,
    /// [link] dead_after_ms: declare the link down after this long without hearing the peer. Default 15000.
    #[arg(long, value_name = "MS")]
    pub link_dead_after_ms: Option<u64>,
    /// [link] frame_timeout_ms: a frame incomplete this long after its first byte is a protocol error. Default 10000.
    #[arg(long, value_name = "MS")]
    pub link_frame_timeout_ms: Option<u64>,
    /// [link] handshake_timeout_ms: a connection must send its HELLO, and finish the handshake, within this long. Default 5000.
    #[arg(long, value_name = "MS")]
    pub link_handshake_timeout_ms: Option<u64>,
    /// [link] max_pending: unauthenticated connections waiting at once. Default 64.
    #[arg(long, value_name = "N")]
    pub link_max_pending: Option<usize>,
    /// [link] max_pending_per_source: of those, from one address (IPv6: one /64). Default 8.
    #[arg(long, value_name = "N")]
    pub link_max_pending_per_source: Option<usize>,

    /// [reconnect] min_ms: first reconnect delay (doubles per failure, with jitter). Default 100.
    #[arg(long, value_name = "MS")]
    pub reconnect_min_ms: Option<u64>,
    /// [reconnect] max_ms: longest reconnect delay. Default 5000.
    #[arg(long, value_name = "MS")]
    pub reconnect_max_ms: Option<u64>,

    /// [log_level]: error, warn, info or debug. Default info.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// [log_format]: text (`<time> <LEVEL> key=value ...`) or json (one object per
    /// line: ts, level, target, msg and the line's fields, for log shippers). Default text.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// [stats_interval_secs]: log a counters line this often (0: never). Default 10.
    #[arg(long, value_name = "SECS")]
    pub stats_interval_secs: Option<u64>,
    /// [shutdown_flush_secs]: on Ctrl-C/SIGTERM, wait up to this long for in-flight messages. Default 5.
    #[arg(long, value_name = "SECS")]
    pub shutdown_flush_secs: Option<u64>,

    /// [metrics] listen: serve /metrics (Prometheus), /status (JSON) and /healthz over HTTP on this address. Default: off.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub journal: JournalArgs,
}

/// The TOML file: the same options, grouped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub stats_interval_secs: Option<u64>,
    pub shutdown_flush_secs: Option<u64>,
    #[serde(default)]
    pub smsc: FileSmsc,
    #[serde(default)]
    pub link: FileLink,
    #[serde(default)]
    pub reconnect: FileReconnect,
    #[serde(default)]
    pub metrics: FileMetrics,
    #[serde(default)]
    pub journal: FileJournal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmsc {
    pub protocol: Option<String>,
    pub addr: Option<SocketAddr>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub keepalive_secs: Option<u64>,
    pub response_timeout_secs: Option<u64>,
    pub system_type: Option<String>,
    pub bind: Option<String>,
    pub window: Option<usize>,
    pub numeric_ton: Option<u8>,
    pub numeric_npi: Option<u8>,
    pub max_output_bytes: Option<usize>,
    pub country_code: Option<String>,
    pub national_prefix: Option<String>,
    pub international_prefix: Option<String>,
    pub short_code_max_digits: Option<usize>,
    pub international_form: Option<String>,
    pub unattributable_mo: Option<String>,
    pub long_messages: Option<String>,
    pub delivery_reports: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLink {
    pub name: Option<String>,
    pub peer: Option<String>,
    pub psk: Option<String>,
    pub psk_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub dial: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_peer_fingerprint: Option<String>,
    pub tls_server_name: Option<String>,
    pub insecure_plaintext: Option<bool>,
    pub capacity: Option<usize>,
    pub heartbeat_ms: Option<u64>,
    pub dead_after_ms: Option<u64>,
    pub frame_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub max_pending: Option<usize>,
    pub max_pending_per_source: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReconnect {
    pub min_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetrics {
    pub listen: Option<SocketAddr>,
}

/// The merged settings the daemon runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: NodeConfig,
    pub log_level: Level,
    pub log_format: Format,
    pub stats_interval: Duration,
    pub shutdown_flush: Duration,
}

fn read_psk(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read psk file {}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

impl Args {
    /// How the SMSC writes numbers, flags over file over the defaults.
    fn numbers(&self, file: &FileSmsc) -> Result<NumberConfig, String> {
        let mut numbers = NumberConfig::default();
        if let Some(cc) = self
            .smsc_country_code
            .as_ref()
            .or(file.country_code.as_ref())
        {
            let digits = cc.strip_prefix('+').unwrap_or(cc);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!(
                    "[smsc] country_code {cc:?}: give the calling code's 1 to 3 digits (e.g. 46)"
                ));
            }
            numbers.country_code = Some(digits.to_owned());
        }
        let prefixes = [
            (
                "national_prefix",
                &self.smsc_national_prefix,
                &file.national_prefix,
                &mut numbers.national_prefix,
            ),
            (
                "international_prefix",
                &self.smsc_international_prefix,
                &file.international_prefix,
                &mut numbers.international_prefix,
            ),
        ];
        for (key, flag, in_file, value) in prefixes {
            if let Some(p) = flag.as_ref().or(in_file.as_ref()) {
                if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("[smsc] {key} {p:?}: give 1 to 4 digits"));
                }
                *value = p.clone();
            }
        }
        if let Some(n) = self
            .smsc_short_code_max_digits
            .or(file.short_code_max_digits)
        {
            numbers.short_code_max_digits = n;
        }
        let form = self
            .smsc_international_form
            .as_deref()
            .or(file.international_form.as_deref());
        numbers.mt_international = match form {
            None | Some("plus") => InternationalForm::Plus,
            Some("bare") => InternationalForm::Bare,
            Some(other) => {
                return Err(format!(
                    "[smsc] international_form {other:?}: use plus or bare"
                ))
            }
        };
        let mo = self
            .smsc_unattributable_mo
            .as_deref()
            .or(file.unattributable_mo.as_deref());
        numbers.unattributable_mo = match mo {
            None | Some("refuse") => Unattributable::Refuse,
            Some("pass-on") => Unattributable::PassOn,
            Some(other) => {
                return Err(format!(
                    "[smsc] unattributable_mo {other:?}: use refuse or pass-on"
                ))
            }
        };
        Ok(numbers)
    }

    /// The SMSC session: its protocol and that protocol's options, flags over file.
    fn smsc_spec(&self, file: &FileSmsc, addr: SocketAddr) -> Result<SmscSpec, String> {
        let user = self
            .smsc_user
            .clone()
            .or(file.user.clone())
            .unwrap_or_default();
        let password = self
            .smsc_password
            .clone()
            .or(file.password.clone())
            .unwrap_or_default();
        let keepalive = self.smsc_keepalive_secs.or(file.keepalive_secs);
        let response_timeout = self
            .smsc_response_timeout_secs
            .or(file.response_timeout_secs)
            .map(|s| Duration::from_secs(s.max(1)));
        let protocol = self
            .smsc_protocol
            .as_deref()
            .or(file.protocol.as_deref())
            .unwrap_or("cimd2");
        let numbers = self.numbers(file)?;
        let reports = self.smsc_delivery_reports.or(file.delivery_reports);
        let long_messages = self
            .smsc_long_messages
            .as_deref()
            .or(file.long_messages.as_deref());
        match protocol {
            "cimd2" => {
                if let Some(how) = long_messages {
                    return Err(format!(
                        "[smsc] long_messages {how:?} is for SMPP; CIMD2 sends parts with a header in 032"
                    ));
                }
                let mut client = ClientConfig {
                    user,
                    password,
                    numbers,
                    ..ClientConfig::default()
                };
                if let Some(s) = keepalive {
                    client.keepalive = Duration::from_secs(s);
                }
                if let Some(t) = response_timeout {
                    client.response_timeout = t;
                }
                let mut spec = SmscSpec::cimd2(addr, client);
                if let Some(on) = reports {
                    spec.protocol.set_delivery_reports(on);
                }
                Ok(spec)
            }
            "smpp" => {
                let mut smpp = SmppConfig {
                    system_id: user,
                    password,
                    system_type: self
                        .smsc_system_type
                        .clone()
                        .or(file.system_type.clone())
                        .unwrap_or_default(),
                    numbers,
                    ..SmppConfig::default()
                };
                smpp.long_messages = match long_messages {
                    None | Some("udh8") => LongMessages::Udh(RefWidth::Eight),
                    Some("udh16") => LongMessages::Udh(RefWidth::Sixteen),
                    Some("sar") => LongMessages::Sar,
                    Some("payload") => LongMessages::Whole,
                    Some(other) => {
                        return Err(format!(
                            "[smsc] long_messages {other:?}: use udh8, udh16, sar or payload"
                        ))
                    }
                };
                smpp.bind = match self.smsc_bind.as_deref().or(file.bind.as_deref()) {
                    None | Some("transceiver") => BindMode::Transceiver,
                    Some("transmitter-receiver") => BindMode::TransmitterReceiver,
                    Some(other) => {
                        return Err(format!(
                            "[smsc] bind {other:?}: use transceiver or transmitter-receiver"
                        ))
                    }
                };
                if let Some(w) = self.smsc_window.or(file.window) {
                    if w == 0 {
                        return Err("[smsc] window must be at least 1".into());
                    }
                    smpp.window = w;
                }
                if let Some(s) = keepalive {
                    smpp.enquire_link_interval = Duration::from_secs(s.max(1));
                }
                if let Some(t) = response_timeout {
                    smpp.response_timeout = t;
                }
                let ton = self.smsc_numeric_ton.or(file.numeric_ton);
                let npi = self.smsc_numeric_npi.or(file.numeric_npi);
                for numbering in [&mut smpp.source_numbering, &mut smpp.destination_numbering] {
                    if let Some(t) = ton {
                        numbering.numeric.ton = t;
                    }
                    if let Some(n) = npi {
                        numbering.numeric.npi = n;
                    }
                }
                smpp.bind_body()?;
                let mut spec = SmscSpec::smpp(addr, smpp);
                if let Some(on) = reports {
                    spec.protocol.set_delivery_reports(on);
                }
                Ok(spec)
            }
            other => Err(format!("[smsc] protocol {other:?}: use cimd2 or smpp")),
        }
    }

    /// Merge flags over the file over the defaults, and check the result.
    pub fn settings(&self) -> Result<Settings, String> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let smsc_addr = self
            .smsc_addr
            .or(file.smsc.addr)
            .ok_or("no SMSC address: give --smsc-addr or [smsc] addr")?;
        let psk = match (&self.link_psk, &self.link_psk_file) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(p)) => read_psk(p)?,
            (None, None) => match (&file.link.psk, &file.link.psk_file) {
                (Some(k), _) => k.as_bytes().to_vec(),
                (None, Some(p)) => read_psk(p)?,
                (None, None) => {
                    return Err(
                        "no link key: give --link-psk/--link-psk-file or [link] psk/psk_file"
                            .into(),
                    )
                }
            },
        };
        if psk.len() < smslink::link::MIN_PSK_LEN {
            return Err(format!(
                "the link key is {} bytes; at least {} are needed",
                psk.len(),
                smslink::link::MIN_PSK_LEN
            ));
        }
        let mut link = LinkConfig::new(
            self.link_name
                .as_deref()
                .or(file.link.name.as_deref())
                .unwrap_or("bs"),
            &psk,
        );
        link.expected_peer = self.link_peer.clone().or(file.link.peer.clone());
        if let Some(c) = self.link_capacity.or(file.link.capacity) {
            link.capacity = c;
        }
        if let Some(ms) = self.link_heartbeat_ms.or(file.link.heartbeat_ms) {
            link.heartbeat_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = self.link_dead_after_ms.or(file.link.dead_after_ms) {
            link.dead_after = Duration::from_millis(ms);
        }
        if let Some(ms) = self.link_frame_timeout_ms.or(file.link.frame_timeout_ms) {
            link.frame_timeout = Duration::from_millis(ms);
        }
        // A flag for one transport overrides the file's choice of the other.
        let transport = match (self.link_listen, self.link_dial) {
            (Some(a), _) => Transport::Listen(a),
            (None, Some(a)) => Transport::Dial(a),
            (None, None) => match (file.link.listen, file.link.dial) {
                (Some(_), Some(_)) => {
                    return Err("[link] has both listen and dial; choose one".into())
                }
                (Some(a), None) => Transport::Listen(a),
                (None, Some(a)) => Transport::Dial(a),
                (None, None) => Transport::Listen(SocketAddr::from(([0, 0, 0, 0], 7010))),
            },
        };
        let mut smsc = self.smsc_spec(&file.smsc, smsc_addr)?;
        if let Some(n) = self.smsc_max_output_bytes.or(file.smsc.max_output_bytes) {
            smsc.max_output = n;
        }
        let tls = super::TlsOptions {
            cert: self.link_tls_cert.clone().or(file.link.tls_cert.clone()),
            key: self.link_tls_key.clone().or(file.link.tls_key.clone()),
            ca: self.link_tls_ca.clone().or(file.link.tls_ca.clone()),
            peer_fingerprint: self
                .link_tls_peer_fingerprint
                .clone()
                .or(file.link.tls_peer_fingerprint.clone()),
            server_name: self
                .link_tls_server_name
                .clone()
                .or(file.link.tls_server_name.clone()),
            insecure_plaintext: self.link_insecure_plaintext
                || file.link.insecure_plaintext.unwrap_or(false),
        };
        let mut spec = tls
            .apply(LinkSpec::buffer_server(link, transport, smsc))
            .map_err(|e| format!("[link] {e}"))?;
        let admission = &mut spec.admission;
        if let Some(ms) = self
            .link_handshake_timeout_ms
            .or(file.link.handshake_timeout_ms)
        {
            admission.handshake_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = self.link_max_pending.or(file.link.max_pending) {
            admission.max_pending = n;
        }
        if let Some(n) = self
            .link_max_pending_per_source
            .or(file.link.max_pending_per_source)
        {
            admission.max_pending_per_source = n;
        }
        let mut node = NodeConfig::new(vec![spec]);
        if let Some(ms) = self.reconnect_min_ms.or(file.reconnect.min_ms) {
            node.reconnect_min = Duration::from_millis(ms);
        }
        if let Some(ms) = self.reconnect_max_ms.or(file.reconnect.max_ms) {
            node.reconnect_max = Duration::from_millis(ms);
        }
        node.metrics_listen = self.metrics_listen.or(file.metrics.listen);
        node.journal = self.journal.spec(&file.journal)?;
        if node.reconnect_max < node.reconnect_min {
            return Err("reconnect max is below reconnect min".into());
        }
        let log_level = self
            .log_level
            .as_deref()
            .or(file.log_level.as_deref())
            .unwrap_or("info")
            .parse()?;
        let log_format = self
            .log_format
            .as_deref()
            .or(file.log_format.as_deref())
            .unwrap_or("text")
            .parse()?;
        Ok(Settings {
            node,
            log_level,
            log_format,
            stats_interval: Duration::from_secs(
                self.stats_interval_secs
                    .or(file.stats_interval_secs)
                    .unwrap_or(10),
            ),
            shutdown_flush: Duration::from_secs(
                self.shutdown_flush_secs
                    .or(file.shutdown_flush_secs)
                    .unwrap_or(5),
            ),
        })
    }
}

/// One counters line: messages each way, ring occupancy and cursors, reconnects,
/// SMSC errors.
pub fn stats_line(link: &LinkStats, smsc: Option<&SmscStats>) -> String {
    let s = smsc.copied().unwrap_or_default();
    format!(
        "event=stats link={} up={} peer={} connects={} refused={} \
         mo_from_smsc={} mo_processed={} mo_ring_in_use={} mo_cursors={}/{}/{}/{} \
         mt_received={} mt_submitted={} mt_accepted={} mt_rejected={} mt_resubmitted={} mt_ring_in_use={} \
         smsc_up={} smsc_connects={} smsc_backpressured={} smsc_violations={} \
         link_resent={} link_duplicates={} link_downs={} auth_failures={}",
        link.name,
        link.up,
        link.peer.as_deref().unwrap_or("-"),
        link.connects,
        link.refused_connections,
        s.mo_received,
        link.tx.last_processed,
        link.tx_in_use,
        link.tx.last_retrieved,
        link.tx.last_sent,
        link.tx.last_confirmed,
        link.tx.last_processed,
        link.counters.data_received - link.counters.duplicates,
        s.mt_submitted,
        s.mt_accepted,
        s.mt_rejected,
        s.mt_resubmitted,
        link.rx_in_use,
        s.logged_in,
        s.connects,
        s.mo_backpressured,
        s.violations,
        link.counters.data_resent,
        link.counters.duplicates,
        link.counters.link_downs,
        link.counters.auth_failures,
    )
}

fn report_shutdown(report: &ShutdownReport) {
    for l in &report.links {
        slog!(
            target: "node",
            Level::Info,
            "event=shutdown_report link={} drained={} mo_still_in_ring={} mo_cursors={}/{}/{}/{} mt_still_in_ring={}",
            l.name,
            l.tx_in_use == 0,
            l.tx_in_use,
            l.tx.last_retrieved,
            l.tx.last_sent,
            l.tx.last_confirmed,
            l.tx.last_processed,
            l.rx_in_use,
        );
        if let Some(s) = &report.smsc {
            slog!(target: "node", Level::Info, "{}", stats_line(l, Some(s)));
        }
    }
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let settings = args.settings()?;
    log::set_level(settings.log_level);
    log::set_format(settings.log_format);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let smsc_addr = settings.node.links[0].smsc.as_ref().map(|s| s.addr);
    let transport = settings.node.links[0].transport.clone();
    let node = Node::start(settings.node.clone())?;
    match transport {
        Transport::Listen(_) => slog!(
            target: "node",
            Level::Info,
            "event=started link={} listen={} smsc={}",
            node.link_name(0).unwrap_or("-"),
            node.local_addr(0).map_or("-".into(), |a| a.to_string()),
            smsc_addr.map_or("-".into(), |a| a.to_string()),
        ),
        Transport::Dial(a) => slog!(
            target: "node",
            Level::Info,
            "event=started link={} dial={a} smsc={}",
            node.link_name(0).unwrap_or("-"),
            smsc_addr.map_or("-".into(), |a| a.to_string()),
        ),
    }
    if let Some(addr) = node.metrics_addr() {
        slog!(Level::Info, "event=metrics_listening addr={addr}");
    }
    let mut next_stats = Instant::now() + settings.stats_interval;
    while !stop.load(Ordering::Relaxed) && node.is_running() {
        // Wake at least every 200 ms to notice a signal.
        if let Some(ev) = node.wait_event(Some(Duration::from_millis(200))) {
            log_event(&ev);
            while let Some(ev) = node.try_event() {
                log_event(&ev);
            }
        }
        if !settings.stats_interval.is_zero() && Instant::now() >= next_stats {
            next_stats += settings.stats_interval;
            if let Some(l) = node.link_stats(0) {
                slog!(
                    target: "node",
                    Level::Info,
                    "{}",
                    stats_line(&l, node.smsc_stats().as_ref())
                );
            }
        }
    }
    slog!(
        target: "node",
        Level::Info,
        "event=shutting_down flush_secs={}",
        settings.shutdown_flush.as_secs()
    );
    let report = node.shutdown(settings.shutdown_flush);
    report_shutdown(&report);
    Ok(())
}

fn log_event(ev: &NodeEvent) {
    match ev {
        // Link up/down and refusals are logged by the runtime itself.
        NodeEvent::SmscUp { .. } => slog!(target: "node", Level::Debug, "event=smsc_up"),
        NodeEvent::SmscDown { reason, .. } => {
            slog!(target: "node", Level::Info, "event=smsc_down reason={reason:?}")
        }
        NodeEvent::Status {
            seq,
            state,
            outcome,
            ..
        } => slog!(
            target: "node",
            Level::Debug,
            "event=mo_status seq={seq} state={state:?} outcome={outcome:?}"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use smslink::smpp::registered_delivery;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("smslink-bs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bs.toml");
        std::fs::write(
            &file,
            "log_level = \"warn\"\nlog_format = \"json\"\n[smsc]\naddr = \"127.0.0.1:9971\"\nuser = \"u\"\n\
             max_output_bytes = 4096\n\
             [link]\npsk = \"a link key of 16+ bytes\"\ninsecure_plaintext = true\n\
             dial = \"127.0.0.1:7010\"\ncapacity = 100\n\
             handshake_timeout_ms = 2000\nmax_pending = 10\nframe_timeout_ms = 3000\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--link-capacity",
            "50",
            "--link-listen",
            "127.0.0.1:0",
            "--link-max-pending-per-source",
            "3",
        ]);
        let s = cli.args.settings().unwrap();
        assert_eq!(s.node.links[0].config.capacity, 50);
        assert_eq!(s.node.links[0].config.frame_timeout, Duration::from_secs(3));
        let admission = &s.node.links[0].admission;
        assert_eq!(admission.handshake_timeout, Duration::from_secs(2));
        assert_eq!(
            (admission.max_pending, admission.max_pending_per_source),
            (10, 3)
        );
        assert_eq!(s.node.links[0].smsc.as_ref().unwrap().max_output, 4096);
        assert!(matches!(s.node.links[0].transport, Transport::Listen(_)));
        assert_eq!(s.log_level, Level::Warn);
        assert_eq!(s.log_format, Format::Json);
        assert_eq!(smsc_user(&s), "u");
        assert_eq!(s.stats_interval, Duration::from_secs(10));
        assert_eq!(s.node.metrics_listen, None);
        std::fs::write(&file, "[metrics]\nlisten = \"127.0.0.1:9102\"\n").unwrap();
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--smsc-addr=127.0.0.1:1",
            "--link-psk=a link key of 16+ bytes",
            "--link-insecure-plaintext",
        ]);
        let from_file = cli.args.settings().unwrap().node.metrics_listen;
        assert_eq!(from_file, Some(SocketAddr::from(([127, 0, 0, 1], 9102))));
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--smsc-addr=127.0.0.1:1",
            "--link-psk=a link key of 16+ bytes",
            "--link-insecure-plaintext",
            "--metrics-listen=127.0.0.1:0",
        ]);
        let from_flag = cli.args.settings().unwrap().node.metrics_listen;
        assert_eq!(from_flag, Some(SocketAddr::from(([127, 0, 0, 1], 0))));
    }

    fn smsc_user(s: &Settings) -> &str {
        match &s.node.links[0].smsc.as_ref().expect("an SMSC").protocol {
            smslink::runtime::SmscProtocol::Cimd2(c) => &c.user,
            other => panic!("a CIMD2 SMSC expected: {other:?}"),
        }
    }

    #[test]
    fn smpp_options_come_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("smslink-bs-smpp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bs.toml");
        std::fs::write(
            &file,
            "[smsc]\nprotocol = \"smpp\"\naddr = \"127.0.0.1:2775\"\nuser = \"esme\"\n\
             password = \"pw\"\nbind = \"transmitter-receiver\"\nwindow = 20\n\
             numeric_ton = 2\n[link]\npsk = \"a link key of 16+ bytes\"\ninsecure_plaintext = true\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--smsc-window",
            "5",
        ]);
        let s = cli.args.settings().unwrap();
        let smpp = match &s.node.links[0].smsc.as_ref().unwrap().protocol {
            smslink::runtime::SmscProtocol::Smpp(c) => c.clone(),
            other => panic!("SMPP expected: {other:?}"),
        };
        assert_eq!(smpp.system_id, "esme");
        assert_eq!(smpp.bind, BindMode::TransmitterReceiver);
        assert_eq!(smpp.window, 5, "the flag wins");
        assert_eq!(smpp.source_numbering.numeric.ton, 2);
        assert_eq!(smpp.destination_numbering.numeric.npi, 1);
        for bad in ["--smsc-bind=both", "--smsc-protocol=ucp", "--smsc-window=0"] {
            let cli = Cli::parse_from(["x", "--config", file.to_str().unwrap(), bad]);
            assert!(cli.args.settings().is_err(), "{bad} accepted");
        }
        assert_eq!(smpp.long_messages, LongMessages::Udh(RefWidth::Eight));
        assert_eq!(
            smpp.registered_delivery,
            registered_delivery::RECEIPT_ALWAYS
        );
        let long = "--smsc-user=a-system-id-longer-than-fifteen";
        let cli = Cli::parse_from(["x", "--config", file.to_str().unwrap(), long]);
        assert!(cli.args.settings().unwrap_err().contains("system_id"));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The SMSC protocol settings from the file at `file` and the flags `extra`.
    fn smsc_protocol(
        file: &std::path::Path,
        extra: &[&str],
    ) -> Result<smslink::runtime::SmscProtocol, String> {
        let cli = Cli::parse_from(
            ["x", "--config", file.to_str().unwrap()]
                .iter()
                .chain(extra),
        );
        Ok(cli.args.settings()?.node.links[0]
            .smsc
            .clone()
            .unwrap()
            .protocol)
    }

    #[test]
    fn numbers_long_messages_and_reports_come_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("smslink-bs-sms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bs.toml");
        let base = "[link]\npsk = \"a link key of 16+ bytes\"\ninsecure_plaintext = true\n";
        std::fs::write(
            &file,
            format!(
                "{base}[smsc]\nprotocol = \"smpp\"\naddr = \"127.0.0.1:2775\"\n\
                 country_code = \"46\"\ninternational_form = \"bare\"\n\
                 unattributable_mo = \"pass-on\"\nlong_messages = \"sar\"\n\
                 delivery_reports = false\n"
            ),
        )
        .unwrap();
        let smpp = |extra: &[&str]| match smsc_protocol(&file, extra)? {
            smslink::runtime::SmscProtocol::Smpp(c) => Ok::<_, String>(c),
            other => panic!("SMPP expected: {other:?}"),
        };
        let c = smpp(&[]).unwrap();
        assert_eq!(c.numbers.country_code.as_deref(), Some("46"));
        assert_eq!(c.numbers.mt_international, InternationalForm::Bare);
        assert_eq!(c.numbers.unattributable_mo, Unattributable::PassOn);
        assert_eq!(c.long_messages, LongMessages::Sar);
        assert_eq!(c.registered_delivery, registered_delivery::NONE);
        let c = smpp(&[
            "--smsc-country-code=+358",
            "--smsc-international-form=plus",
            "--smsc-unattributable-mo=refuse",
            "--smsc-long-messages=payload",
            "--smsc-delivery-reports=true",
        ])
        .unwrap();
        assert_eq!(
            c.numbers.country_code.as_deref(),
            Some("358"),
            "flag wins, + dropped"
        );
        assert_eq!(c.numbers.mt_international, InternationalForm::Plus);
        assert_eq!(c.numbers.unattributable_mo, Unattributable::Refuse);
        assert_eq!(c.long_messages, LongMessages::Whole);
        assert_eq!(c.registered_delivery, registered_delivery::RECEIPT_ALWAYS);
        let c = smpp(&[
            "--smsc-national-prefix=8",
            "--smsc-international-prefix=810",
            "--smsc-short-code-max-digits=4",
        ])
        .unwrap();
        assert_eq!(
            (
                c.numbers.national_prefix.as_str(),
                c.numbers.international_prefix.as_str(),
                c.numbers.short_code_max_digits
            ),
            ("8", "810", 4)
        );
        let c = smpp(&["--smsc-long-messages=udh16"]).unwrap();
        assert_eq!(c.long_messages, LongMessages::Udh(RefWidth::Sixteen));
        for bad in [
            "--smsc-country-code=4a",
            "--smsc-country-code=12345",
            "--smsc-international-form=00",
            "--smsc-unattributable-mo=drop",
            "--smsc-long-messages=udh",
            "--smsc-national-prefix=+",
            "--smsc-international-prefix=",
        ] {
            let err = smpp(&[bad]).unwrap_err();
            let key = bad.trim_start_matches("--smsc-").split('=').next().unwrap();
            assert!(err.contains(&key.replace('-', "_")), "{bad}: {err}");
        }

        // CIMD2: the same number settings; reports are 056 = 14; no long_messages.
        std::fs::write(
            &file,
            format!(
                "{base}[smsc]\naddr = \"127.0.0.1:9971\"\ncountry_code = \"46\"\n\
                 delivery_reports = true\n"
            ),
        )
        .unwrap();
        let cimd2 = |extra: &[&str]| match smsc_protocol(&file, extra)? {
            smslink::runtime::SmscProtocol::Cimd2(c) => Ok::<_, String>(c),
            other => panic!("CIMD2 expected: {other:?}"),
        };
        let c = cimd2(&[]).unwrap();
        assert_eq!(c.numbers.country_code.as_deref(), Some("46"));
        assert_eq!(c.status_report_request, 14);
        let c = cimd2(&["--smsc-delivery-reports=false"]).unwrap();
        assert_eq!(c.status_report_request, 0);
        assert!(cimd2(&["--smsc-long-messages=sar"])
            .unwrap_err()
            .contains("for SMPP"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/buffer-server.toml"
        );
        let text = std::fs::read_to_string(example).unwrap();
        let file: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(file.link.capacity, Some(255));
        assert_eq!(file.smsc.user.as_deref(), Some("smslink"));
        assert!(file.link.tls_cert.is_some() && file.link.tls_peer_fingerprint.is_some());
        assert_eq!(file.link.insecure_plaintext, None, "TLS on in the example");
        assert_eq!(
            file.metrics.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9102)))
        );
        // The shipped config keeps its rings in a journal.
        let journal = JournalArgs::default().spec(&file.journal).unwrap().unwrap();
        assert_eq!(journal.dir, PathBuf::from("/var/lib/smslink/journal"));
        assert_eq!(journal.config.sync, smslink::journal::SyncPolicy::Always);
        assert_eq!(journal.config.max_disk_bytes, 1 << 30);
    }

    #[test]
    fn the_journal_comes_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("smslink-bs-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bs.toml");
        std::fs::write(
            &file,
            "[smsc]\naddr = \"127.0.0.1:9971\"\n[link]\npsk = \"a key of 16+ bytes\"\n\
             insecure_plaintext = true\n[journal]\ndir = \"/srv/j\"\nsync = \"interval:20\"\nmax_disk_bytes = 1048576\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["x", "--config", file.to_str().unwrap()]);
        let j = cli.args.settings().unwrap().node.journal.unwrap();
        assert_eq!(j.dir, PathBuf::from("/srv/j"));
        assert_eq!(
            j.config.sync,
            smslink::journal::SyncPolicy::Interval(Duration::from_millis(20))
        );
        assert_eq!(j.config.max_disk_bytes, 1 << 20);
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--journal-dir=/tmp/other",
            "--journal-sync=off",
            "--journal-repair",
        ]);
        let j = cli.args.settings().unwrap().node.journal.unwrap();
        assert_eq!(j.dir, PathBuf::from("/tmp/other"));
        assert_eq!(j.config.sync, smslink::journal::SyncPolicy::Off);
        assert!(j.config.repair);
        let cli = Cli::parse_from(["x", "--config", file.to_str().unwrap(), "--journal-sync=x"]);
        assert!(cli.args.settings().unwrap_err().contains("\"x\""));
        let cli = Cli::parse_from([
            "x",
            "--smsc-addr=127.0.0.1:1",
            "--link-psk=a key of 16+ bytes",
            "--link-insecure-plaintext",
        ]);
        assert_eq!(cli.args.settings().unwrap().node.journal, None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_keys_and_missing_essentials_are_errors() {
        let dir = std::env::temp_dir().join(format!("smslink-bs-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bs.toml");
        std::fs::write(&file, "[smsc]\nadress = \"127.0.0.1:9971\"\n").unwrap();
        let cli = Cli::parse_from(["x", "--config", file.to_str().unwrap()]);
        assert!(cli.args.settings().unwrap_err().contains("adress"));
        let cli = Cli::parse_from(["x", "--smsc-addr", "127.0.0.1:1"]);
        assert!(cli.args.settings().unwrap_err().contains("link key"));
        let base = [
            "x",
            "--smsc-addr=127.0.0.1:1",
            "--link-psk=a link key of 16+ bytes",
        ];
        let err = |extra: &[&str]| {
            let cli = Cli::parse_from(base.iter().chain(extra));
            cli.args.settings().err().unwrap_or_default()
        };
        assert!(err(&[]).contains("runs TLS"), "TLS is the default");
        assert!(err(&["--link-tls-cert=c", "--link-tls-key=k"]).contains("runs TLS"));
        assert!(err(&[
            "--link-insecure-plaintext",
            "--link-tls-cert=c",
            "--link-tls-key=k"
        ])
        .contains("choose one"));
        assert!(err(&[
            "--link-tls-cert=c",
            "--link-tls-key=k",
            "--link-tls-peer-fingerprint=00"
        ])
        .contains("fingerprint"));
        assert_eq!(err(&["--link-insecure-plaintext"]), "");
        let cli = Cli::parse_from(["x", "--smsc-addr=127.0.0.1:1", "--link-psk=short"]);
        assert!(cli.args.settings().unwrap_err().contains("at least 16"));
    }
}
