//! A site's TLS identity for the link: a key and a self-signed certificate
//! (`smslink keygen`, and the demo and bench, which make throwaway ones).

use std::path::{Path, PathBuf};

use smslink::runtime::tls::{load_certs, spki_fingerprint};

/// The files `generate_site` wrote, and the fingerprint the peer pins.
#[derive(Debug, Clone)]
pub struct SiteIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: [u8; 32],
}

/// Make `<dir>/<name>.key` (ECDSA P-256, readable by the owner only) and
/// `<dir>/<name>.crt` (self-signed, for `name`, usable as TLS client and server,
/// valid from a day ago for ten years).
pub fn generate_site(name: &str, dir: &Path) -> Result<SiteIdentity, String> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let mut params = CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| format!("{name:?} cannot be a certificate name: {e}"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(SiteIdentity {
        fingerprint: spki_fingerprint(cert.der())?,
        cert: cert_path,
        key: key_path,
    })
}

/// The SHA-256 public-key fingerprint of the first certificate in a PEM file.
pub fn fingerprint_of(cert: &Path) -> Result<[u8; 32], String> {
    let certs = load_certs(cert)?;
    spki_fingerprint(&certs[0])
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}
