//! `smslink keygen` and `smslink fingerprint`: a site's link key and certificate,
//! and the fingerprint the other end pins.

use std::path::PathBuf;

use smslink::runtime::tls::fingerprint_hex;

use crate::certs::{fingerprint_of, generate_site};

/// Make a site's TLS key and self-signed certificate for the link.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// The site's name (its link name; it goes into the certificate).
    #[arg(long)]
    pub name: String,
    /// Directory for `<name>.key` (owner-only) and `<name>.crt`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Print the SHA-256 public-key fingerprint of a certificate.
#[derive(clap::Args, Debug)]
pub struct FingerprintArgs {
    /// PEM certificate file (the first certificate in it counts).
    pub cert: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let id = generate_site(&args.name, &args.out)?;
    eprintln!("key:         {}", id.key.display());
    eprintln!("certificate: {}", id.cert.display());
    eprintln!("give the peer this fingerprint (its tls_peer_fingerprint):");
    println!("{}", fingerprint_hex(&id.fingerprint));
    Ok(())
}

pub fn fingerprint(args: FingerprintArgs) -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", fingerprint_hex(&fingerprint_of(&args.cert)?));
    Ok(())
}
