//! The link over TLS 1.3 on loopback: messages both ways with pinned keys and with
//! a CA; a wrong certificate, a wrong fingerprint, an expired certificate and a
//! wrong pre-shared key each refused with a log line at the refusing side; a relay
//! that terminates TLS on both sides fails the pre-shared key's session binding.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::log::{self, Level};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, PeerAuth, TlsSpec, Transport};
use smslink_tools::certs::generate_site;

const PSK: &[u8] = b"tls test pre-shared key";

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smslink-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every log line of the process (warnings and up), for the refusal checks. Tests
/// use their own link names, so they find their own lines.
fn log_lines() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        log::set_sink(Some(Box::new(|r: &log::Record<'_>| {
            if r.level <= Level::Warn {
                if let Some(lines) = LINES.get() {
                    // A failed test may have poisoned it; the lines are still good.
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    lines.push(r.message.to_owned());
                }
            }
        })));
        Mutex::new(Vec::new())
    })
}

/// Wait until a line containing all of `parts` was logged.
fn wait_log(parts: &[&str], within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        if let Some(l) = log_lines()
            .lock()
            .unwrap()
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return l.clone();
        }
        assert!(
            Instant::now() < end,
            "no log line with {parts:?}; lines: {:#?}",
            log_lines().lock().unwrap()
        );
        std::thread::yield_now();
    }
}

fn config(name: &str, peer: &str, psk: &[u8]) -> LinkConfig {
    let mut c = LinkConfig::new(name, psk);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    c
}

fn start(spec: LinkSpec) -> Node {
    let mut c = NodeConfig::new(vec![spec]);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(100);
    Node::start(c).unwrap()
}

fn pinned(id: &smslink_tools::certs::SiteIdentity, peer_fp: [u8; 32]) -> TlsSpec {
    TlsSpec::new(&id.cert, &id.key, PeerAuth::Fingerprint(peer_fp))
}

/// A listening node "<p>-l" and a dialing node "<p>-d" with the given TLS settings.
fn pair(prefix: &str, listener: TlsSpec, dialer: TlsSpec, dialer_psk: &[u8]) -> (Node, Node) {
    let l_name = format!("{prefix}-l");
    let d_name = format!("{prefix}-d");
    let l = start(
        LinkSpec::new(
            config(&l_name, &d_name, PSK),
            Transport::Listen("127.0.0.1:0".parse().unwrap()),
        )
        .with_tls(listener),
    );
    let addr = l.local_addr(0).unwrap();
    let d = start(
        LinkSpec::new(config(&d_name, &l_name, dialer_psk), Transport::Dial(addr)).with_tls(dialer),
    );
    (l, d)
}

fn wait_up(node: &Node, within: Duration) {
    let end = Instant::now() + within;
    while !node.link_stats(0).is_some_and(|s| s.up) {
        assert!(
            Instant::now() < end,
            "link not up: {:#?}",
            node.link_stats(0)
        );
        node.wait_event(Some(Duration::from_millis(5)));
    }
}

/// Send `n` from each side and wait until each has received the other's, in order.
fn exchange(a: &Node, b: &Node, n: usize) {
    for i in 0..n {
        a.send(&Message::text("100", "200", &format!("a {i}")).unwrap())
            .unwrap();
        b.send(&Message::text("200", "100", &format!("b {i}")).unwrap())
            .unwrap();
    }
    let mut got: [Vec<String>; 2] = [vec![], vec![]];
    let take = |got: &mut [Vec<String>; 2], i: usize, node: &Node, ev: NodeEvent| {
        if let NodeEvent::Received { link, seq, message } = ev {
            got[i].push(message.text_str().unwrap().to_owned());
            node.ack(link, seq, Outcome::Accepted).unwrap();
        }
    };
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        for (i, node) in [a, b].iter().enumerate() {
            while let Some(ev) = node.try_event() {
                take(&mut got, i, node, ev);
            }
        }
        let (from_a, from_b) = (got[1].len(), got[0].len());
        if from_a == n && from_b == n {
            break;
        }
        assert!(Instant::now() < end, "received {from_b} and {from_a}");
        // Block briefly on one node's events (the other is polled next round).
        if let Some(ev) = a.wait_event(Some(Duration::from_millis(2))) {
            take(&mut got, 0, a, ev);
        }
    }
    let want = |p: &str| (0..n).map(|i| format!("{p} {i}")).collect::<Vec<_>>();
    assert_eq!(got[0], want("b"));
    assert_eq!(got[1], want("a"));
}

/// No link came up (and none will: both sides were refused at least once).
fn assert_never_up(nodes: &[&Node]) {
    for n in nodes {
        let s = n.link_stats(0).unwrap();
        assert!(!s.up && s.counters.handshakes == 0, "{s:#?}");
    }
}

#[test]
fn pinned_keys_carry_messages_both_ways() {
    let dir = temp_dir("pinned");
    let l = generate_site("ok-l", &dir).unwrap();
    let d = generate_site("ok-d", &dir).unwrap();
    let (ln, dn) = pair(
        "ok",
        pinned(&l, d.fingerprint),
        pinned(&d, l.fingerprint),
        PSK,
    );
    wait_up(&ln, Duration::from_secs(5));
    wait_up(&dn, Duration::from_secs(5));
    exchange(&ln, &dn, 200);
    assert_eq!(ln.link_stats(0).unwrap().peer.as_deref(), Some("ok-d"));
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    file: PathBuf,
}

fn make_ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(&file, issuer.pem()).unwrap();
    Ca { issuer, file }
}

/// A certificate for `name` signed by `ca`: (cert file, key file).
fn issue(dir: &Path, ca: &Ca, name: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn ca_spec(files: &(PathBuf, PathBuf), ca: &Ca) -> TlsSpec {
    TlsSpec::new(&files.0, &files.1, PeerAuth::CaFile(ca.file.clone()))
}

#[test]
fn ca_signed_certificates_carry_messages() {
    let dir = temp_dir("ca");
    let ca = make_ca(&dir, "ca");
    let l = issue(&dir, &ca, "ca-l");
    let d = issue(&dir, &ca, "ca-d");
    let (ln, dn) = pair("ca", ca_spec(&l, &ca), ca_spec(&d, &ca), PSK);
    wait_up(&dn, Duration::from_secs(5));
    exchange(&ln, &dn, 20);
    // A dialer must know which name the listener's certificate carries.
    let addr = ln.local_addr(0).unwrap();
    let unnamed = LinkSpec::new(LinkConfig::new("ca-x", PSK), Transport::Dial(addr))
        .with_tls(ca_spec(&d, &ca));
    let Err(err) = Node::start(NodeConfig::new(vec![unnamed.clone()])) else {
        panic!("a CA-checked dialer without a peer name started");
    };
    assert!(err.to_string().contains("which name"), "{err}");
    let mut named = ca_spec(&d, &ca);
    named.server_name = Some("ca-l".into());
    assert!(Node::start(NodeConfig::new(vec![unnamed.with_tls(named)])).is_ok());
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let dir = temp_dir("wrongca");
    let ca = make_ca(&dir, "ca");
    let rogue = make_ca(&dir, "rogue");
    let l = issue(&dir, &ca, "wc-l");
    let d = issue(&dir, &rogue, "wc-d");
    let (ln, dn) = pair("wc", ca_spec(&l, &ca), ca_spec(&d, &ca), PSK);
    let line = wait_log(
        &["link=wc-l", "event=tls_refused", "peer certificate refused"],
        Duration::from_secs(5),
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    wait_log(
        &[
            "link=wc-d",
            "event=tls_refused",
            "peer refused the TLS handshake",
        ],
        Duration::from_secs(5),
    );
    assert_never_up(&[&ln, &dn]);
}

#[test]
fn wrong_fingerprint_is_refused() {
    let dir = temp_dir("wrongfp");
    let l = generate_site("wf-l", &dir).unwrap();
    let d = generate_site("wf-d", &dir).unwrap();
    let other = generate_site("wf-other", &dir).unwrap();
    let (ln, dn) = pair(
        "wf",
        pinned(&l, other.fingerprint),
        pinned(&d, l.fingerprint),
        PSK,
    );
    wait_log(
        &["link=wf-l", "event=tls_refused", "is not the pinned one"],
        Duration::from_secs(5),
    );
    assert_never_up(&[&ln, &dn]);
}

#[test]
fn expired_certificate_is_refused() {
    let dir = temp_dir("expired");
    let l = generate_site("ex-l", &dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["ex-d".to_owned()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = p.self_signed(&key).unwrap();
    let (cf, kf) = (dir.join("ex-d.crt"), dir.join("ex-d.key"));
    std::fs::write(&cf, cert.pem()).unwrap();
    std::fs::write(&kf, key.serialize_pem()).unwrap();
    let d_fp = smslink_tools::certs::fingerprint_of(&cf).unwrap();
    let (ln, dn) = pair(
        "ex",
        pinned(&l, d_fp),
        TlsSpec::new(&cf, &kf, PeerAuth::Fingerprint(l.fingerprint)),
        PSK,
    );
    let line = wait_log(&["link=ex-l", "event=tls_refused"], Duration::from_secs(5));
    assert!(line.contains("Expired"), "{line}");
    assert_never_up(&[&ln, &dn]);
}

#[test]
fn right_certificate_with_wrong_psk_is_refused_by_the_listener() {
    let dir = temp_dir("wrongpsk");
    let l = generate_site("wp-l", &dir).unwrap();
    let d = generate_site("wp-d", &dir).unwrap();
    let (ln, dn) = pair(
        "wp",
        pinned(&l, d.fingerprint),
        pinned(&d, l.fingerprint),
        b"not the link's pre-shared key",
    );
    let line = wait_log(&["link=wp-l", "event=auth_failed"], Duration::from_secs(5));
    assert!(line.contains("proof is wrong"), "{line}");
    assert!(!line.contains("wp-d"), "{line}");
    assert_never_up(&[&ln, &dn]);
}

/// A relay holding certificates both ends accept (issued by their CA): it
/// terminates the dialer's TLS session, opens its own to the listener and copies
/// the plaintext between them.
fn splicing_relay(
    listener_addr: SocketAddr,
    server_cfg: rustls::ServerConfig,
    client_cfg: rustls::ClientConfig,
) -> SocketAddr {
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = front.local_addr().unwrap();
    let server_cfg = Arc::new(server_cfg);
    let client_cfg = Arc::new(client_cfg);
    std::thread::spawn(move || {
        // Relay each attempt until the test process ends.
        for a in front.incoming() {
            let Ok(mut a) = a else { return };
            let Ok(mut b) = TcpStream::connect(listener_addr) else {
                return;
            };
            let mut ta: rustls::Connection = rustls::ServerConnection::new(server_cfg.clone())
                .unwrap()
                .into();
            let mut tb: rustls::Connection =
                rustls::ClientConnection::new(client_cfg.clone(), "splice-l".try_into().unwrap())
                    .unwrap()
                    .into();
            let _ = relay(&mut a, &mut ta, &mut b, &mut tb);
        }
    });
    addr
}

fn relay(
    a: &mut TcpStream,
    ta: &mut rustls::Connection,
    b: &mut TcpStream,
    tb: &mut rustls::Connection,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while ta.is_handshaking() {
        ta.complete_io(a)?;
    }
    while tb.is_handshaking() {
        tb.complete_io(b)?;
    }
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        // Plaintext the sessions already hold (it may have come with the last
        // handshake message) goes first, then whatever the sockets bring.
        if !forward(ta, tb, b)? || !forward(tb, ta, a)? {
            return Ok(());
        }
        let mut fds = [
            libc::pollfd {
                fd: a.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds on sockets this function holds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
        for (fd, (src, tsrc)) in fds.iter().zip([(&mut *a, &mut *ta), (&mut *b, &mut *tb)]) {
            if fd.revents != 0 {
                if tsrc.read_tls(src)? == 0 {
                    return Ok(());
                }
                tsrc.process_new_packets().map_err(std::io::Error::other)?;
            }
        }
    }
    Ok(())
}

/// Copy the plaintext `from` holds into `to` and write it out to `dst`; false
/// once `from` has ended.
fn forward(
    from: &mut rustls::Connection,
    to: &mut rustls::Connection,
    dst: &mut TcpStream,
) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.reader().read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => to.writer().write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    while to.wants_write() {
        to.write_tls(dst)?;
    }
    Ok(true)
}

#[test]
fn relay_splicing_two_tls_sessions_fails_the_psk_binding() {
    let dir = temp_dir("splice");
    let ca = make_ca(&dir, "ca");
    let l = issue(&dir, &ca, "splice-l");
    let d = issue(&dir, &ca, "splice-d");
    // The relay's own certificates, from the same CA, under the names each end expects.
    let relay_dir = dir.join("relay");
    std::fs::create_dir_all(&relay_dir).unwrap();
    let relay_as_l = issue(&relay_dir, &ca, "splice-l");
    let relay_as_d = issue(&relay_dir, &ca, "splice-d");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        r.add(rustls::pki_types::CertificateDer::from(
            ca.issuer.der().to_vec(),
        ))
        .unwrap();
        Arc::new(r)
    };
    let load = |files: &(PathBuf, PathBuf)| {
        use rustls::pki_types::pem::PemObject;
        (
            rustls::pki_types::CertificateDer::pem_file_iter(&files.0)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            rustls::pki_types::PrivateKeyDer::from_pem_file(&files.1).unwrap(),
        )
    };
    let (c, k) = load(&relay_as_l);
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .unwrap(),
        )
        .with_single_cert(c, k)
        .unwrap();
    let (c, k) = load(&relay_as_d);
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(c, k)
        .unwrap();

    let ln = start(
        LinkSpec::new(
            config("splice-l", "splice-d", PSK),
            Transport::Listen("127.0.0.1:0".parse().unwrap()),
        )
        .with_tls(ca_spec(&l, &ca)),
    );
    let relay_addr = splicing_relay(ln.local_addr(0).unwrap(), server_cfg, client_cfg);
    let dn = start(
        LinkSpec::new(
            config("splice-d", "splice-l", PSK),
            Transport::Dial(relay_addr),
        )
        .with_tls(ca_spec(&d, &ca)),
    );
    // Both TLS sessions come up (the relay's certificates are good); the listener
    // finds the dialer's proof bound to another session.
    let line = wait_log(
        &["link=splice-l", "event=auth_failed", "relayed"],
        Duration::from_secs(5),
    );
    assert!(line.contains("proof is wrong"), "{line}");
    assert_never_up(&[&ln, &dn]);
}
