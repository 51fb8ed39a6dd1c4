//! Command-line front ends of the `smslink` subcommands (argument parsing only).

pub mod bench;
pub mod buffer_server;
pub mod demo;
pub mod im_endpoint;
pub mod journal;
pub mod keygen;
pub mod loadgen;
pub mod smsc_sim;
pub mod wan;

use std::path::PathBuf;

use smslink::runtime::tls::parse_fingerprint;
use smslink::runtime::{LinkSpec, PeerAuth, TlsSpec};

/// A link's TLS options as the command line and the configuration file give them.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub peer_fingerprint: Option<String>,
    pub server_name: Option<String>,
    pub insecure_plaintext: bool,
}

impl TlsOptions {
    /// `spec` with TLS as configured: TLS unless plaintext is asked for explicitly,
    /// and then no TLS option may be given (a half-configured TLS is a mistake).
    pub fn apply(&self, spec: LinkSpec) -> Result<LinkSpec, String> {
        let any_tls = self.cert.is_some()
            || self.key.is_some()
            || self.ca.is_some()
            || self.peer_fingerprint.is_some();
        if self.insecure_plaintext {
            if any_tls {
                return Err("insecure_plaintext and TLS options together: choose one".into());
            }
            return Ok(spec.insecure_plaintext());
        }
        let missing = "the link runs TLS: give tls_cert, tls_key and tls_ca or \
                       tls_peer_fingerprint (or insecure_plaintext = true to run without)";
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Err(missing.into());
        };
        let peer = match (&self.ca, &self.peer_fingerprint) {
            (Some(ca), None) => PeerAuth::CaFile(ca.clone()),
            (None, Some(fp)) => PeerAuth::Fingerprint(parse_fingerprint(fp)?),
            (Some(_), Some(_)) => {
                return Err("tls_ca and tls_peer_fingerprint together: choose one".into())
            }
            (None, None) => return Err(missing.into()),
        };
        let mut tls = TlsSpec::new(cert, key, peer);
        tls.server_name.clone_from(&self.server_name);
        Ok(spec.with_tls(tls))
    }
}
