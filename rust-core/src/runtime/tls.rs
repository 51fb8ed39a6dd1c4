//! TLS 1.3 under the link (rustls with the ring provider; no TLS 1.2, no OpenSSL).
//!
//! The side that dials is the TLS client, the side that listens the TLS server,
//! whichever of them is the buffer server. Both present a certificate (mutual
//! authentication) and check the peer's, either against a CA file or by the
//! SHA-256 fingerprint of its public key (SubjectPublicKeyInfo) for deployments
//! without a CA. rustls runs sans-IO: [`super::conn::Conn`] feeds it the socket's
//! bytes and writes out what it produces; the link endpoint above only ever sees
//! plaintext, plus the session's keying-material exporter that its handshake
//! binds the pre-shared key to.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::api::{PeerAuth, TlsSpec};
use crate::link::Side;

/// Exporter label (RFC 5705) of the value the link handshake binds its proofs to.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-smslink-link-v2";

/// A link's TLS settings, loaded and checked: makes one session per connection.
#[derive(Debug, Clone)]
pub struct TlsContext {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    server_name: ServerName<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// SHA-256 of the certificate's SubjectPublicKeyInfo (what `peer_fingerprint` pins).
pub fn spki_fingerprint(cert: &CertificateDer<'_>) -> Result<[u8; 32], String> {
    use sha2::Digest;
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("certificate: {e}"))?;
    Ok(sha2::Sha256::digest(ee.subject_public_key_info().as_ref()).into())
}

/// Lowercase hex, as `smslink keygen` prints fingerprints.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in fp {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parse a fingerprint: 64 hex digits, colons allowed, an optional `sha256:` prefix.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let t = t.strip_prefix("sha256:").unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| *b != b':').collect();
    let bad = || format!("{text:?} is not a SHA-256 fingerprint (64 hex digits)");
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl TlsContext {
    /// Load the files and build the client and server configurations (TLS 1.3 only).
    /// `default_name`: the name a CA-verified server certificate must carry when the
    /// spec names none (the link's expected peer).
    pub fn new(spec: &TlsSpec, default_name: Option<&str>) -> Result<Self, String> {
        Self::load(spec)?.named(spec, default_name)
    }

    /// The configurations alone: they depend on the files and the peer check, not
    /// on the name the server's certificate must carry (set by [`Self::named`]).
    fn load(spec: &TlsSpec) -> Result<Self, String> {
        let chain = load_certs(&spec.cert_chain)?;
        let key = PrivateKeyDer::from_pem_file(&spec.key)
            .map_err(|e| format!("{}: {e}", spec.key.display()))?;
        let versions = &[&rustls::version::TLS13];
        let (server_verifier, client_verifier): (
            Arc<dyn ServerCertVerifier>,
            Arc<dyn ClientCertVerifier>,
        ) = match &spec.peer {
            PeerAuth::CaFile(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in load_certs(path)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                let roots = Arc::new(roots);
                let s = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots.clone(),
                    provider(),
                )
                .build()
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                let c =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                        .build()
                        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                (s, c)
            }
            PeerAuth::Fingerprint(fp) => {
                let v = Arc::new(PinnedVerifier {
                    fingerprint: *fp,
                    algs: provider().signature_verification_algorithms,
                });
                (v.clone(), v)
            }
        };
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(server_verifier)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("{}: {e}", spec.key.display()))?;
        let mut client = client;
        // The name is checked against the certificate, not announced in clear.
        client.enable_sni = false;
        // Every connection checks the certificates again (no resumption that would
        // carry an old verdict past a certificate's expiry or a changed pin).
        client.resumption = rustls::client::Resumption::disabled();
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("{}: {e}", spec.key.display()))?;
        server.send_tls13_tickets = 0;
        Ok(TlsContext {
            client: Arc::new(client),
            server: Arc::new(server),
            server_name: ServerName::try_from(UNNAMED).expect("a valid name"),
        })
    }

    /// These configurations, checking a server certificate (with a CA) for the
    /// spec's name, else `default_name`.
    fn named(&self, spec: &TlsSpec, default_name: Option<&str>) -> Result<Self, String> {
        let name = spec
            .server_name
            .as_deref()
            .or(default_name)
            .unwrap_or(UNNAMED);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| format!("{name:?} is not a valid certificate name"))?;
        Ok(TlsContext {
            client: self.client.clone(),
            server: self.server.clone(),
            server_name,
        })
    }

    /// A fresh session for one connection: the dialer is the client.
    pub fn session(&self, side: Side) -> Result<rustls::Connection, rustls::Error> {
        Ok(match side {
            Side::Dialer => {
                rustls::ClientConnection::new(self.client.clone(), self.server_name.clone())?.into()
            }
            Side::Listener => rustls::ServerConnection::new(self.server.clone())?.into(),
        })
    }
}

/// The server name checked when neither the spec nor the link names one.
const UNNAMED: &str = "smslink-peer";

/// The TLS configurations of one node, shared by links configured alike: they hold
/// parsed keys, verifiers and two rustls configurations (about 35 kB), so links
/// with one identity load them once, not once each. The key leaves out the name a
/// server certificate must carry: every link names its own peer (its expected peer),
/// and that name only goes into the link's session, not into the configurations.
#[derive(Default)]
pub(super) struct TlsContexts {
    loaded: HashMap<TlsSpec, TlsContext>,
}

impl TlsContexts {
    /// The context for `spec` (see [`TlsContext::new`]), its configurations loaded
    /// on first use.
    pub(super) fn get(
        &mut self,
        spec: &TlsSpec,
        default_name: Option<&str>,
    ) -> Result<TlsContext, String> {
        let key = TlsSpec {
            server_name: None,
            ..spec.clone()
        };
        if let Some(configs) = self.loaded.get(&key) {
            return configs.named(spec, default_name);
        }
        let configs = TlsContext::load(spec)?;
        let context = configs.named(spec, default_name)?;
        self.loaded.insert(key, configs);
        Ok(context)
    }
}

/// Accepts exactly one public key (by its SHA-256 fingerprint), in a certificate
/// that is valid now and self-signed (as `smslink keygen` makes them), and still
/// checks the handshake signature, so only the holder of the private key passes.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

fn cert_error(msg: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(msg),
    ))))
}

impl PinnedVerifier {
    fn check(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let fp = spki_fingerprint(end_entity).map_err(cert_error)?;
        if fp != self.fingerprint {
            return Err(cert_error(format!(
                "peer key fingerprint {} is not the pinned one",
                fingerprint_hex(&fp)
            )));
        }
        // Validity dates: the certificate is its own trust anchor.
        let anchor = webpki::anchor_from_trusted_cert(end_entity)
            .map_err(|e| cert_error(format!("certificate: {e}")))?;
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| cert_error(format!("certificate: {e}")))?;
        ee.verify_for_usage(
            self.algs.all,
            &[anchor],
            &[],
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => {
                rustls::Error::InvalidCertificate(CertificateError::Expired)
            }
            webpki::Error::CertNotValidYet { .. } => {
                rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
            }
            e => cert_error(format!(
                "pinned certificate must be self-signed and valid: {e}"
            )),
        })
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "the link speaks TLS 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A TLS failure as an operator reads it: who refused what.
pub fn describe_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => format!("peer certificate refused: {c}"),
        rustls::Error::NoCertificatesPresented => "peer presented no certificate".to_owned(),
        rustls::Error::AlertReceived(a) => {
            format!("peer refused the TLS handshake (alert {a:?}): our certificate or key is not the one it expects")
        }
        e => format!("TLS: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_printed_and_colon_forms() {
        let fp: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        let hex = fingerprint_hex(&fp);
        assert_eq!(parse_fingerprint(&hex), Ok(fp));
        let colons: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", colons.join(":"))),
            Ok(fp)
        );
        assert!(parse_fingerprint(&hex[..62]).is_err());
        assert!(parse_fingerprint(&format!("{}zz", &hex[..62])).is_err());
    }

    /// A self-signed identity in `dir`: certificate and key files, and the spec
    /// that presents it and pins itself as the peer.
    fn pinned_spec(dir: &Path) -> TlsSpec {
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.join("a.crt"), dir.join("a.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let fp = spki_fingerprint(cert.der()).unwrap();
        TlsSpec::new(cert_path, key_path, PeerAuth::Fingerprint(fp))
    }

    /// Every link names its own peer: the configurations (about 35 kB) must still
    /// be loaded once per identity, not once per link.
    #[test]
    fn links_naming_different_peers_share_one_identitys_configurations() {
        let dir = std::env::temp_dir().join(format!("smslink-tls-contexts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = pinned_spec(&dir);
        let mut contexts = TlsContexts::default();
        let a = contexts.get(&spec, Some("peer0")).unwrap();
        let b = contexts.get(&spec, Some("peer1")).unwrap();
        let named = TlsSpec {
            server_name: Some("peer2".to_owned()),
            ..spec.clone()
        };
        let c = contexts.get(&named, None).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(contexts.loaded.len(), 1);
        for other in [&b, &c] {
            assert!(Arc::ptr_eq(&a.client, &other.client));
            assert!(Arc::ptr_eq(&a.server, &other.server));
        }
        let names: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|t| t.server_name.to_str().into_owned())
            .collect();
        assert_eq!(names, ["peer0", "peer1", "peer2"]);
    }
}
