//! Interoperability with Kannel 1.4.5 (Debian `kannel`, `kannel-extras`):
//! 1. our `ClientSession` against Kannel's test SMSC `test_cimd2`;
//! 2. Kannel's own CIMD2 client (bearerbox, fed by smsbox's sendsms) against our
//!    simulator.
//!
//! When the binaries are missing the tests fail, so that a machine without Kannel
//! cannot report them as passed. On a developer's laptop, `SMSLINK_SKIP_INTEROP=1`
//! turns a missing binary into a notice and a pass; CI never sets it.

mod cimd2_driver;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cimd2_driver::Driver;
use smslink::cimd2::session::{ClientConfig, ClientEvent, CloseReason, Violation};
use smslink::message::Message;
use smslink_tools::smsc_sim::{SimConfig, SmscSim};

const TEST_CIMD2: &str = "/usr/lib/kannel/test/test_cimd2";
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const WAIT: Duration = Duration::from_secs(20);

/// True when every binary is installed. A missing one fails the test, unless
/// `SMSLINK_SKIP_INTEROP=1` asks to skip it: then false, after a notice.
fn have(binaries: &[&str]) -> bool {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| !Path::new(b).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let hint = "apt-get install kannel kannel-extras";
    if std::env::var("SMSLINK_SKIP_INTEROP").as_deref() != Ok("1") {
        panic!(
            "Kannel binaries missing: {missing:?} ({hint}; SMSLINK_SKIP_INTEROP=1 skips \
             this test on a developer's machine)"
        );
    }
    eprintln!(
        "notice: SMSLINK_SKIP_INTEROP=1: skipping Kannel interop, missing {missing:?} ({hint})"
    );
    false
}

/// A port that was free a moment ago (Kannel's programs cannot be given port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed when the test ends, however it ends.
struct Guard(Option<Child>);

impl Guard {
    fn spawn(cmd: &mut Command) -> Guard {
        Guard(Some(cmd.spawn().expect("spawn")))
    }

    /// Wait for the child to exit by itself, with a deadline; kill it after that.
    fn output_within(&mut self, timeout: Duration) -> Output {
        let child = self.0.take().expect("child");
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(timeout) {
            Ok(out) => out.expect("wait"),
            Err(_) => {
                // SAFETY: kill(2) on a pid we spawned and have not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let out = rx.recv().expect("reaped").expect("wait");
                panic!(
                    "child did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Connect once the foreign program listens. Refused attempts are retried with a
/// short back-off until the deadline: trying is the only way to learn it is up, and
/// a refused connection is not the one client test_cimd2 accepts.
fn connect_when_listening(addr: SocketAddr, config: ClientConfig) -> Driver {
    let deadline = Instant::now() + WAIT;
    loop {
        match Driver::connect(addr, config.clone()) {
            Ok(d) => return d,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

fn kannel_client_config() -> ClientConfig {
    ClientConfig {
        user: "foo".into(),
        password: "bar".into(),
        keepalive: Duration::ZERO,
        response_timeout: Duration::from_secs(5),
        max_retries: 2,
        ..ClientConfig::default()
    }
}

/// Start test_cimd2 on a free loopback port; returns it and its address.
fn start_test_cimd2(activity: &str, extra: &[&str]) -> (Guard, SocketAddr) {
    let port = free_port();
    let guard = Guard::spawn(
        Command::new(TEST_CIMD2)
            .args([
                "--port",
                &port.to_string(),
                "--activity",
                activity,
                "--logging",
                "2",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    (guard, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn logout_and_close(mut d: Driver) {
    assert_eq!(
        d.logout_and_wait(WAIT).expect("io"),
        Some(CloseReason::LoggedOut)
    );
}

#[test]
fn our_client_submits_to_test_cimd2() {
    if !have(&[TEST_CIMD2]) {
        return;
    }
    let (mut smsc, addr) = start_test_cimd2("1", &[]);
    let mut d = connect_when_listening(addr, kannel_client_config());
    let e = d.wait_for_login(WAIT).expect("io");
    assert_eq!(e, Some(ClientEvent::LoggedIn));
    for n in 1..=10u64 {
        let mut m = Message::text("4670000001", "12345", &format!("hello #{n}")).expect("msg");
        m.client_ref = n;
        match d.submit_and_wait(&m, WAIT).expect("io") {
            Some(ClientEvent::SubmitAccepted {
                id,
                timestamp: Some(ts),
                destination: Some(to),
            }) => {
                assert_eq!(id, n);
                assert_eq!(ts.len(), 12, "yymmddhhmmss");
                assert_eq!(to, "12345");
            }
            other => panic!("submit {n}: {other:?}"),
        }
    }
    logout_and_close(d);
    let out = smsc.output_within(WAIT);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("RCV: Login user 'foo', password 'bar'"),
        "{log}"
    );
    assert_eq!(log.matches("RCV: Submit to 12345").count(), 10, "{log}");
    assert_eq!(log.matches("SND: Submit OK").count(), 10, "{log}");
    assert!(log.contains("Text: hello #10"), "{log}");
    assert!(log.contains("From: 4670000001"), "{log}");
}

#[test]
fn test_cimd2_refuses_a_wrong_password() {
    if !have(&[TEST_CIMD2]) {
        return;
    }
    let (mut smsc, addr) = start_test_cimd2("1", &[]);
    let mut config = kannel_client_config();
    config.password = "wrong".into();
    let mut d = connect_when_listening(addr, config);
    let e = d.wait_for_login(WAIT).expect("io");
    assert!(
        matches!(e, Some(ClientEvent::LoginFailed { code: 100, .. })),
        "{e:?}"
    );
    assert!(d.session.is_closed());
    drop(d);
    smsc.output_within(WAIT);
}

#[test]
fn silent_test_cimd2_makes_login_time_out() {
    if !have(&[TEST_CIMD2]) {
        return;
    }
    // Activity 0 answers nothing, not even the login.
    let (mut smsc, addr) = start_test_cimd2("0", &[]);
    let mut config = kannel_client_config();
    config.response_timeout = Duration::from_millis(200);
    config.max_retries = 1;
    let mut d = connect_when_listening(addr, config);
    let e = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Closed { .. }))
        .expect("io");
    assert_eq!(
        e,
        Some(ClientEvent::Closed {
            reason: CloseReason::ResponseTimeout
        })
    );
    assert!(!d.events.contains(&ClientEvent::LoggedIn));
    drop(d);
    let out = smsc.output_within(WAIT);
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        log.matches("RCV: Login").count(),
        2,
        "login sent twice: {log}"
    );
}

#[test]
fn our_client_takes_a_flood_of_delivers_from_test_cimd2() {
    if !have(&[TEST_CIMD2]) {
        return;
    }
    const N: usize = 60;
    let (mut smsc, addr) = start_test_cimd2("3", &["--max", &N.to_string()]);
    let mut d = connect_when_listening(addr, kannel_client_config());
    let deadline = Instant::now() + WAIT;
    let (mut delivered, mut refused, mut submitted, mut accepted) = (0, 0, 0, 0);
    let mut logged_in = false;
    while (delivered + refused < N || accepted < 3) && Instant::now() < deadline {
        d.step(deadline).expect("io");
        while let Some(e) = d.events.pop_front() {
            match e {
                ClientEvent::LoggedIn => logged_in = true,
                ClientEvent::Deliver(_) => {
                    delivered += 1;
                    d.session.ack_deliver(Instant::now()).expect("ack");
                }
                ClientEvent::ProtocolViolation(Violation::InvalidMessage { op: 20, .. }) => {
                    refused += 1
                }
                ClientEvent::SubmitAccepted { .. } => accepted += 1,
                ClientEvent::ProtocolViolation(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Submits go out between the delivers: one outstanding per direction.
        if submitted < 3 && d.session.can_submit() {
            let m = Message::text("4670000001", "12345", "mt during mo flood").expect("msg");
            d.session
                .submit(submitted + 1, &m, Instant::now())
                .expect("submit");
            submitted += 1;
        }
        d.flush().expect("flush");
    }
    assert!(logged_in);
    assert_eq!(
        delivered + refused,
        N,
        "every deliver answered exactly once"
    );
    assert!(delivered > 0, "some random delivers are representable");
    assert_eq!(accepted, 3);
    logout_and_close(d);
    let out = smsc.output_within(WAIT);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains(&format!("LOG: {N} deliveries in")),
        "test_cimd2 counted every answer: {log}"
    );
    eprintln!("test_cimd2 flood: {delivered} delivered, {refused} refused as unrepresentable");
}

// ---- Kannel's bearerbox against our simulator ----

struct KannelPorts {
    admin: u16,
    smsbox: u16,
    sendsms: u16,
}

fn write_kannel_conf(dir: &Path, sim: SocketAddr, ports: &KannelPorts) -> PathBuf {
    let conf = format!(
        r#"group = core
admin-port = {admin}
admin-password = adminpw
smsbox-port = {smsbox}
box-allow-ip = 127.0.0.1
log-file = "{dir}/bearerbox.log"
log-level = 0

group = smsc
smsc = cimd2
smsc-id = sim
host = 127.0.0.1
port = {sim_port}
smsc-username = alice
smsc-password = pw

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
log-file = "{dir}/smsbox.log"
log-level = 0

group = sendsms-user
username = tester
password = testpw

group = sms-service
keyword = default
text = "pong"
"#,
        admin = ports.admin,
        smsbox = ports.smsbox,
        sendsms = ports.sendsms,
        sim_port = sim.port(),
        dir = dir.display(),
    );
    let path = dir.join("kannel.conf");
    std::fs::write(&path, conf).expect("write kannel.conf");
    path
}

/// One HTTP GET to smsbox; returns the body, or None while smsbox is not ready.
fn http_get(port: u16, path_and_query: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Send through smsbox's sendsms, retrying (with a short back-off, until the
/// deadline) while smsbox is still connecting to bearerbox.
fn sendsms(port: u16, query: &str) {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        match http_get(port, &format!("/cgi-bin/sendsms?{query}")) {
            Some(r) if r.contains("Accepted for delivery") || r.contains("Queued") => return,
            other => last = other,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sendsms never accepted; last answer: {last:?}");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn bearerbox_submits_to_our_simulator() {
    if !have(&[BEARERBOX, SMSBOX]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smslink-kannel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    let sim = SmscSim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        user: "alice".into(),
        password: "pw".into(),
        record: Some(record.clone()),
        mo_rate: 20.0,
        mo_count: 2,
        mo_text: "ping {n}".into(),
        log: false,
        ..SimConfig::default()
    })
    .expect("sim");
    let ports = KannelPorts {
        admin: free_port(),
        smsbox: free_port(),
        sendsms: free_port(),
    };
    let conf = write_kannel_conf(&dir, sim.local_addr(), &ports);
    let _bearerbox = Guard::spawn(
        Command::new(BEARERBOX)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.logins == 1);
    assert!(ok, "bearerbox did not log in: {c:?}");
    let _smsbox = Guard::spawn(
        Command::new(SMSBOX)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let texts = ["hello kannel 1", "Hej @ £ {x} _ \"q\"", "hello kannel 3"];
    for (i, text) in texts.iter().enumerate() {
        let dlr = if i == 0 {
            "&dlr-mask=3&dlr-url=http%3A%2F%2F127.0.0.1%3A9%2F"
        } else {
            ""
        };
        sendsms(
            ports.sendsms,
            &format!(
                "username=tester&password=testpw&from=12345&to=4670000009&charset=UTF-8&text={}{dlr}",
                url_encode(text)
            ),
        );
    }
    // 3 MT plus the "pong" answers smsbox sends to our 2 MO.
    let (c, ok) = sim.wait_for(WAIT, |c| {
        c.submits_accepted == 5 && c.mo_acked == 2 && c.reports_acked == 1
    });
    assert!(ok, "{c:?}; logs in {}", dir.display());
    assert_eq!(c.violations, 0, "Kannel keeps to stop-and-wait");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .expect("record")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mt: Vec<&str> = lines
        .iter()
        .filter(|l| l["to"] == "4670000009")
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(mt, texts, "text survives Kannel's CIMD2 character set");
    let pongs = lines
        .iter()
        .filter(|l| l["to"] == "4670000001" && l["text"] == "pong")
        .count();
    assert_eq!(pongs, 2);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
