//! `smslink buffer-server` as an operator runs it: configured from a TOML file with a
//! flag overriding it, logging in to the SMSC, carrying MO to an IM-side node, and on
//! SIGTERM shutting down with a report of what is left in the rings. The link runs
//! TLS as configured in the file, with keys as `smslink keygen` makes them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smslink::link::LinkConfig;
use smslink::ring::Outcome;
use smslink::runtime::tls::fingerprint_hex;
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, PeerAuth, TlsSpec, Transport};
use smslink_tools::certs::generate_site;
use smslink_tools::smsc_sim::{SimConfig, SmscSim};

#[test]
fn runs_from_a_config_file_and_reports_on_sigterm() {
    const MO: u64 = 300;
    let sim = SmscSim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        mo_rate: 1e6,
        mo_count: MO,
        log: false,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("smslink-bs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("psk"), "cli test key, 16 bytes+\n").unwrap();
    let bs_id = generate_site("bs", &dir).unwrap();
    let im_id = generate_site("im", &dir).unwrap();
    let config = dir.join("bs.toml");
    std::fs::write(
        &config,
        format!(
            "log_level = \"info\"\nstats_interval_secs = 1\nshutdown_flush_secs = 2\n\
             [smsc]\naddr = \"{}\"\nuser = \"smslink\"\npassword = \"secret\"\n\
             [link]\nname = \"bs\"\npeer = \"im\"\npsk_file = \"{}\"\nlisten = \"127.0.0.1:1\"\n\
             tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_peer_fingerprint = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            sim.local_addr(),
            dir.join("psk").display(),
            bs_id.cert.display(),
            bs_id.key.display(),
            fingerprint_hex(&im_id.fingerprint),
        ),
    )
    .unwrap();
    // The flag overrides the file's (unusable) listen address.
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args(["buffer-server", "--config"])
        .arg(&config)
        .args(["--link-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Lines from the node's thread and the main thread interleave in any order, so
    // every line seen is kept and searched, not consumed.
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    let wait_line = |what: &str| -> String {
        if let Some(l) = seen.borrow().iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    seen.borrow_mut().push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("no log line with {what:?}"),
            }
        }
    };
    let started = wait_line("event=started");
    let addr = started
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap()
        .parse()
        .unwrap();
    wait_line("event=logged_in");

    let mut c = LinkConfig::new("im", b"cli test key, 16 bytes+");
    c.expected_peer = Some("bs".into());
    let im = Node::start(NodeConfig::new(vec![LinkSpec::new(
        c,
        Transport::Dial(addr),
    )
    .with_tls(TlsSpec::new(
        &im_id.cert,
        &im_id.key,
        PeerAuth::Fingerprint(bs_id.fingerprint),
    ))]))
    .unwrap();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while received < MO {
        assert!(Instant::now() < deadline, "{received} of {MO} MO arrived");
        if let Some(NodeEvent::Received { link, seq, .. }) =
            im.wait_event(Some(Duration::from_millis(100)))
        {
            received += 1;
            im.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    let stats = wait_line(&format!("mo_processed={MO} "));
    assert!(stats.contains("smsc_up=true"), "{stats}");
    let metrics: std::net::SocketAddr = wait_line("event=metrics_listening")
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(http_get(metrics, "/healthz").ends_with("\r\n\r\nok\n"));
    let text = http_get(metrics, "/metrics");
    assert!(
        text.contains(&format!(
            "smslink_smsc_mo_received_total{{link=\"bs\"}} {MO}\n"
        )),
        "{text}"
    );

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let report = wait_line("event=shutdown_report");
    assert!(report.contains("drained=true"), "{report}");
    assert!(report.contains("mo_still_in_ring=0"), "{report}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    drop(im);
}

/// The whole response to `GET path` (the server closes after answering).
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}

#[test]
fn keygen_makes_a_key_and_certificate_and_prints_the_fingerprint() {
    let dir = std::env::temp_dir().join(format!("smslink-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_smslink"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let printed = run(&[
        "keygen",
        "--name",
        "bs-test",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(printed.len(), 64, "{printed}");
    let cert = dir.join("bs-test.crt");
    assert_eq!(run(&["fingerprint", cert.to_str().unwrap()]), printed);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("bs-test.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    std::fs::remove_dir_all(&dir).ok();
}
