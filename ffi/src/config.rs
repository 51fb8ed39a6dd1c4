//! The node configuration builder: links (dial or listen, capacity, peer name,
//! heartbeat, routing), the SMSC, reconnection and the event queue.

use std::ffi::{c_char, c_int};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use smslink_core::cimd2::session::ClientConfig;
use smslink_core::journal::SyncPolicy;
use smslink_core::link::LinkConfig;
use smslink_core::runtime::{
    JournalSpec, LinkSpec, NodeConfig, PeerAuth, SmscSpec, TlsSpec, Transport,
};

use crate::abi::{
    arg_bytes, arg_mut, arg_ref, arg_str, guard, guard_void, out_ptr, write_out, BoxHandle, Error,
};
use crate::result::smslink_result::{self, *};
use crate::smpp::smslink_smpp_options;

/// Bytes of a link name array: 64 bytes and the NUL.
pub const SMSLINK_NAME_SIZE: usize = 65;

/// A node configuration being built. Not thread-safe: one thread at a time.
pub struct smslink_config {
    pub(crate) config: NodeConfig,
    /// Set by `smslink_config_set_smsc` or `_set_smsc_smpp`: served by the first link (the C API's
    /// buffer server has one link toward the IM side).
    pub(crate) smsc: Option<SmscSpec>,
}

impl smslink_config {
    /// The node configuration with the SMSC placed on the link that serves it.
    pub(crate) fn node_config(&self) -> NodeConfig {
        let mut config = self.config.clone();
        if let (Some(smsc), Some(link)) = (&self.smsc, config.links.first_mut()) {
            link.smsc = Some(smsc.clone());
        }
        config
    }
}

impl BoxHandle for smslink_config {}

fn socket_addr(s: &str) -> Result<SocketAddr, Error> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::invalid(format!("{s:?} is not a host:port address")))
}

fn link_spec(config: &mut smslink_config, link: u32) -> Result<&mut LinkSpec, Error> {
    config.config.links.get_mut(link as usize).ok_or_else(|| {
        Error::new(
            SMSLINK_UNKNOWN_LINK,
            format!("no link {link} in this configuration"),
        )
    })
}

/// A new, empty node configuration in `*out` (free it with `smslink_config_free`).
///
/// Thread safety: any thread. The configuration itself must be used by one thread
/// at a time.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_new(out: *mut *mut smslink_config) -> smslink_result {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let config = smslink_config {
            config: NodeConfig::new(Vec::new()),
            smsc: None,
        };
        write_out(out, config.into_raw());
        Ok(())
    })
}

/// Free a configuration (NULL: nothing happens). Nodes made from it are unaffected.
///
/// Thread safety: no other call may be using `config`.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_free(config: *mut smslink_config) {
    // SAFETY: caller contract: from smslink_config_new, not yet freed, or NULL.
    guard_void(|| unsafe { smslink_config::free_raw(config) })
}

fn add_link(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    listen: bool,
    out_link: *mut u32,
) -> Result<(), Error> {
    // SAFETY: pointer arguments per the header's contract.
    let config = unsafe { arg_mut(config, "config") }?;
    let name = unsafe { arg_str(name, "name") }?;
    let psk = unsafe { arg_bytes(psk, psk_len, "psk") }?;
    let addr = socket_addr(unsafe { arg_str(addr, "addr") }?)?;
    let out_link = out_ptr(out_link, "out_link")?;
    if name.is_empty() || name.len() > SMSLINK_NAME_SIZE - 1 {
        return Err(Error::invalid("link name must be 1 to 64 bytes"));
    }
    if psk.len() < smslink_core::link::MIN_PSK_LEN {
        return Err(Error::invalid(format!(
            "the pre-shared key must be at least {} bytes",
            smslink_core::link::MIN_PSK_LEN
        )));
    }
    let transport = if listen {
        Transport::Listen(addr)
    } else {
        Transport::Dial(addr)
    };
    let id = config.config.links.len() as u32;
    config
        .config
        .links
        .push(LinkSpec::new(LinkConfig::new(name, psk), transport));
    write_out(out_link, id);
    Ok(())
}

/// Add a link that dials `addr` ("host:port") and redials after every interruption.
/// `name` is this side's name in the handshake; `psk` (`psk_len` bytes, at least 16)
/// is the key both sides share. Writes the new link's id (0, 1, ... in order of
/// addition) to `*out_link`. The link needs `smslink_config_link_set_tls` (or, to
/// run without encryption, `smslink_config_link_set_insecure_plaintext`) before a
/// node starts from the configuration.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_add_link_dial(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| add_link(config, name, psk, psk_len, addr, false, out_link))
}

/// Add a link that accepts its peer on `addr` ("127.0.0.1:0" picks a free port; read
/// it with `smslink_node_local_port`). Otherwise as `smslink_config_add_link_dial`.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_add_link_listen(
    config: *mut smslink_config,
    name: *const c_char,
    psk: *const u8,
    psk_len: usize,
    addr: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| add_link(config, name, psk, psk_len, addr, true, out_link))
}

/// Slots in each of the link's rings (1..=65536; default 255): how many messages
/// may wait unprocessed before `send` answers SMSLINK_FULL. Use the same value on
/// both sides (each side's receiving ring has this many slots too).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_capacity(
    config: *mut smslink_config,
    link: u32,
    capacity: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if capacity == 0 || capacity > 65536 {
            return Err(Error::invalid(format!(
                "capacity {capacity} is outside 1..=65536"
            )));
        }
        link_spec(config, link)?.config.capacity = capacity as usize;
        Ok(())
    })
}

/// Run the link over TLS 1.3 (the side that dials is the TLS client). `cert_file`
/// and `key_file`: PEM files of this side's certificate (chain) and private key
/// (`smslink keygen` makes them). The peer's certificate is checked either against
/// the CA certificates in `ca_file`, or by the SHA-256 fingerprint of its public key
/// `peer_fingerprint` (64 hex digits, as `smslink keygen` and `smslink fingerprint`
/// print it; the peer's certificate must then be self-signed): exactly one of the
/// two, the other NULL. A dialer with `ca_file` checks that the listener's
/// certificate names the expected peer (`smslink_config_link_set_expected_peer`).
/// The files are read when the node starts (`smslink_node_start` fails with the
/// file named if one cannot be used).
///
/// Returns SMSLINK_INVALID_ARGUMENT for both or neither of `ca_file` and
/// `peer_fingerprint`, or a fingerprint that is not 64 hex digits.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_tls(
    config: *mut smslink_config,
    link: u32,
    cert_file: *const c_char,
    key_file: *const c_char,
    ca_file: *const c_char,
    peer_fingerprint: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let cert = unsafe { arg_str(cert_file, "cert_file") }?;
        let key = unsafe { arg_str(key_file, "key_file") }?;
        let peer = match (ca_file.is_null(), peer_fingerprint.is_null()) {
            (false, true) => PeerAuth::CaFile(unsafe { arg_str(ca_file, "ca_file") }?.into()),
            (true, false) => {
                let fp = unsafe { arg_str(peer_fingerprint, "peer_fingerprint") }?;
                PeerAuth::Fingerprint(
                    smslink_core::runtime::tls::parse_fingerprint(fp).map_err(Error::invalid)?,
                )
            }
            _ => {
                return Err(Error::invalid(
                    "give exactly one of ca_file and peer_fingerprint",
                ))
            }
        };
        let spec = link_spec(config, link)?;
        spec.tls = Some(TlsSpec::new(cert, key, peer));
        spec.insecure_plaintext = false;
        Ok(())
    })
}

/// Run the link without TLS: anyone on the path can read and change its messages
/// (for tests on one host, or a link inside a VPN). Replaces TLS set before.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_insecure_plaintext(
    config: *mut smslink_config,
    link: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let spec = link_spec(config, link)?;
        spec.tls = None;
        spec.insecure_plaintext = true;
        Ok(())
    })
}

/// Refuse a peer that announces any other name than `peer_name`.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_expected_peer(
    config: *mut smslink_config,
    link: u32,
    peer_name: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let peer = unsafe { arg_str(peer_name, "peer_name") }?;
        link_spec(config, link)?.config.expected_peer = Some(peer.to_owned());
        Ok(())
    })
}

/// Heartbeat: send a ping after `heartbeat_ms` of silence, declare the link down
/// after `dead_after_ms` without hearing from the peer (defaults 5000 and 15000).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_heartbeat(
    config: *mut smslink_config,
    link: u32,
    heartbeat_ms: u32,
    dead_after_ms: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if heartbeat_ms == 0 || dead_after_ms <= heartbeat_ms {
            return Err(Error::invalid(
                "heartbeat must be > 0 and dead_after longer than heartbeat",
            ));
        }
        let spec = link_spec(config, link)?;
        spec.config.heartbeat_interval = Duration::from_millis(heartbeat_ms.into());
        spec.config.dead_after = Duration::from_millis(dead_after_ms.into());
        Ok(())
    })
}

/// Route recipients starting with `prefix` to this link (longest prefix wins).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_add_prefix(
    config: *mut smslink_config,
    link: u32,
    prefix: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let prefix = unsafe { arg_str(prefix, "prefix") }?;
        link_spec(config, link)?.prefixes.push(prefix.to_owned());
        Ok(())
    })
}

/// Route recipients that match no prefix to this link. Without any prefix or default,
/// link 0 is the default.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_link_set_default(
    config: *mut smslink_config,
    link: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        link_spec(config, link)?.default_route = true;
        Ok(())
    })
}

/// Make the node a buffer server speaking CIMD2 to the SMSC at `addr`, logging in as
/// `user` / `password`: link 0 then carries the SMSC's MO out and MT in, and the
/// application does not see them. Without this (or `smslink_config_set_smsc_smpp`),
/// the application is the SMSC side (it sends MO with `smslink_node_send`, receives
/// MT as events). Replaces an SMSC set before.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_smsc(
    config: *mut smslink_config,
    addr: *const c_char,
    user: *const c_char,
    password: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let addr = socket_addr(unsafe { arg_str(addr, "addr") }?)?;
        let user = unsafe { arg_str(user, "user") }?;
        let password = unsafe { arg_str(password, "password") }?;
        config.smsc = Some(SmscSpec::cimd2(
            addr,
            ClientConfig {
                user: user.to_owned(),
                password: password.to_owned(),
                ..ClientConfig::default()
            },
        ));
        Ok(())
    })
}

/// Make the node a buffer server speaking SMPP 3.4 to the SMSC at `addr`, binding as
/// `system_id` (at most 15 bytes) / `password` (at most 8), with `*options` (start
/// from `smslink_smpp_options_default`; copied, so it may be freed afterwards).
/// Otherwise as `smslink_config_set_smsc`, whose SMSC this replaces (and the other
/// way round).
///
/// Returns SMSLINK_INVALID_ARGUMENT, with the field named in `smslink_last_error`,
/// for an address that does not resolve, a credential or `system_type` too long or
/// not NUL-terminated, an unknown `bind_mode`, a `window` outside 1..=65536, a
/// `response_timeout_ms` of 0, or a TON/NPI that SMPP 3.4 does not define (TON
/// 0..=6; NPI 0, 1, 3, 4, 6, 8, 9, 10, 14, 18). The configuration is then unchanged.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_smsc_smpp(
    config: *mut smslink_config,
    addr: *const c_char,
    system_id: *const c_char,
    password: *const c_char,
    options: *const smslink_smpp_options,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let addr = unsafe { arg_str(addr, "addr") }?;
        let system_id = unsafe { arg_str(system_id, "system_id") }?;
        let password = unsafe { arg_str(password, "password") }?;
        let options = unsafe { arg_ref(options, "options") }?;
        let client = options.config(system_id, password)?;
        config.smsc = Some(SmscSpec::smpp(socket_addr(addr)?, client));
        Ok(())
    })
}

/// Ask the SMSC set with `smslink_config_set_smsc` or `smslink_config_set_smsc_smpp`
/// for delivery reports on every MT (`on` non-zero) or for none: CIMD2 status report
/// request 056 = 14 (delivered, failed, buffered; default: none), SMPP
/// registered_delivery 1 (default: on). The reports reach the IM side as REPORT
/// events with the MT's `client_ref`. Call it after setting the SMSC; without one it
/// returns SMSLINK_INVALID_ARGUMENT.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_smsc_delivery_reports(
    config: *mut smslink_config,
    on: c_int,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        let Some(smsc) = config.smsc.as_mut() else {
            return Err(Error::invalid(
                "no SMSC: call smslink_config_set_smsc or _set_smsc_smpp first",
            ));
        };
        smsc.protocol.set_delivery_reports(on != 0);
        Ok(())
    })
}

/// Delay before redialling a link or the SMSC: from `min_ms`, doubling with jitter up
/// to `max_ms` (defaults 100 and 5000).
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_reconnect(
    config: *mut smslink_config,
    min_ms: u32,
    max_ms: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if min_ms == 0 || max_ms < min_ms {
            return Err(Error::invalid("need 0 < min_ms <= max_ms"));
        }
        config.config.reconnect_min = Duration::from_millis(min_ms.into());
        config.config.reconnect_max = Duration::from_millis(max_ms.into());
        Ok(())
    })
}

/// How long the parts of a long (concatenated) SMS wait for the rest, in
/// milliseconds (default 600000): then what came is delivered as one RECEIVED event
/// with `incomplete` set.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_reassembly_timeout(
    config: *mut smslink_config,
    timeout_ms: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if timeout_ms == 0 {
            return Err(Error::invalid("reassembly timeout must be > 0"));
        }
        config.config.reassembly_timeout = Duration::from_millis(timeout_ms.into());
        Ok(())
    })
}

/// Events buffered for the application (default 8192) before the node stops taking
/// received messages off the links, which then holds back the peer.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_event_capacity(
    config: *mut smslink_config,
    capacity: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if capacity == 0 {
            return Err(Error::invalid("event capacity must be > 0"));
        }
        config.config.event_capacity = capacity as usize;
        Ok(())
    })
}

/// Serve the node's metrics over HTTP on `addr` ("ip:port"; port 0: any, see
/// `smslink_node_metrics_port`): GET /metrics (Prometheus text format 0.0.4),
/// /status (JSON) and /healthz (200 "ok" while every SMSC session is logged in,
/// else 503). The node's own loop serves it; requests are bounded (4 KiB heads,
/// 16 connections, 5 s each). NULL turns it off again.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_metrics_listen(
    config: *mut smslink_config,
    addr: *const c_char,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        config.config.metrics_listen = if addr.is_null() {
            None
        } else {
            Some(socket_addr(unsafe { arg_str(addr, "addr") }?)?)
        };
        Ok(())
    })
}

/// Keep both rings of every link in a journal in directory `dir`, so that a crash of
/// the process (kill -9, power cut) loses nothing the node confirmed: the node then
/// reports `SMSLINK_EVENT_DURABLE` for each message sent once it is on disk. One
/// directory per node (a second node on it is refused at start). `sync` is when
/// records are made durable: "always" (before every confirmation that depends on
/// them; NULL means this), "interval:<ms>" (at most every <ms>) or "off" (the OS
/// decides: survives a process crash, not a power cut). `max_disk_bytes` bounds the
/// disk it uses (0: 1 GiB); when it is full, sends are refused as when the ring is
/// full. `dir` NULL turns the journal off again.
///
/// Thread safety: one thread at a time per configuration.
#[no_mangle]
pub unsafe extern "C" fn smslink_config_set_journal(
    config: *mut smslink_config,
    dir: *const c_char,
    sync: *const c_char,
    max_disk_bytes: u64,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_mut(config, "config") }?;
        if dir.is_null() {
            config.config.journal = None;
            return Ok(());
        }
        let dir = unsafe { arg_str(dir, "dir") }?;
        if dir.is_empty() {
            return Err(Error::invalid("the journal directory must not be empty"));
        }
        let mut spec = JournalSpec::new(dir);
        if !sync.is_null() {
            spec.config.sync = unsafe { arg_str(sync, "sync") }?
                .parse::<SyncPolicy>()
                .map_err(Error::invalid)?;
        }
        if max_disk_bytes > 0 {
            spec.config.set_max_disk_bytes(max_disk_bytes);
        }
        config.config.journal = Some(spec);
        Ok(())
    })
}
