//! Interoperability of our SMPP client (`smslink::smpp::SmppClient`) with an SMSC
//! nobody here wrote: node-smpp (the npm package `smpp`), driven by
//! `tests/interop/node_smpp_smsc.js`. That server answers submit_sm with hex message
//! ids and sends receipts with the id in decimal, so id normalisation is exercised.
//!
//! 1. the session alone over loopback TCP (a small blocking driver below): bind as
//!    a transceiver and as a transmitter + receiver pair, submits, receipts matched
//!    to the submitted ids, MO answered, unbind; a refused password.
//! 2. a buffer-server `Node` speaking SMPP between node-smpp and an IM-side `Node`.
//!
//! When `node` or the `smpp` package is missing the tests fail, so that a machine
//! without them cannot report them as passed (`.ci/run` installs both). On a
//! developer's laptop `SMSLINK_SKIP_INTEROP=1` turns that into a notice and a pass.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, SmscSpec, Transport};
use smslink::smpp::{BindMode, IdFormat, SmppClient, SmppConfig};
use smslink::smsc::{MoAnswer, SmscClient, SmscEvent, StatusReport};

const INTEROP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
const WAIT: Duration = Duration::from_secs(20);

/// True when `node` runs and finds the `smpp` package. Missing, the test fails,
/// unless `SMSLINK_SKIP_INTEROP=1` asks to skip it: then false, after a notice.
fn have_node_smpp() -> bool {
    let found = Command::new("node")
        .args(["-e", "require('smpp')"])
        .current_dir(INTEROP_DIR)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let hint = "apt-get install nodejs npm; npm ci --prefix tools/tests/interop";
    if std::env::var("SMSLINK_SKIP_INTEROP").as_deref() != Ok("1") {
        panic!(
            "node or its smpp package is missing ({hint}; SMSLINK_SKIP_INTEROP=1 skips this \
             test on a developer's machine)"
        );
    }
    eprintln!("notice: SMSLINK_SKIP_INTEROP=1: skipping node-smpp interop ({hint})");
    false
}

/// The node-smpp SMSC: its address and its log, one JSON object per line.
struct NodeSmsc {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    log: Vec<Value>,
}

impl NodeSmsc {
    fn start(mo_count: usize) -> NodeSmsc {
        let mut child = Command::new("node")
            .arg("node_smpp_smsc.js")
            .arg("0")
            .arg(mo_count.to_string())
            .current_dir(INTEROP_DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port: u16 = lines
            .recv_timeout(WAIT)
            .expect("node-smpp prints its port")
            .trim()
            .parse()
            .expect("a port number");
        NodeSmsc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            lines,
            log: Vec::new(),
        }
    }

    /// Read the log until `done` holds for it; panics at the deadline.
    fn wait_for(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let end = Instant::now() + WAIT;
        while !done(&self.log) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self
                    .log
                    .push(serde_json::from_str(&line).expect("a JSON log line")),
                Err(_) => panic!("node-smpp: no {what} within {WAIT:?}; log: {:#?}", self.log),
            }
        }
        &self.log
    }

    fn count(log: &[Value], event: &str) -> usize {
        log.iter().filter(|e| e["event"] == event).count()
    }
}

impl Drop for NodeSmsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smpp_config(bind: BindMode) -> SmppConfig {
    SmppConfig {
        system_id: "smslink".into(),
        password: "secret".into(),
        system_type: "test".into(),
        bind,
        submit_id_format: IdFormat::Hex,
        receipt_id_format: IdFormat::Decimal,
        ..SmppConfig::default()
    }
}

/// A blocking driver: one TCP connection per connection of the session; each turn
/// writes what the session has, reads what arrived (a short read timeout bounds
/// the wait) and runs due timers.
struct Driver {
    client: SmppClient,
    streams: Vec<Option<TcpStream>>,
    events: Vec<SmscEvent>,
}

impl Driver {
    fn connect(addr: SocketAddr, config: SmppConfig) -> Driver {
        let mut client = SmppClient::new(config);
        let mut streams = Vec::new();
        for conn in 0..client.connection_count() {
            let stream = TcpStream::connect(addr).expect("connect to node-smpp");
            stream.set_nodelay(true).expect("nodelay");
            stream
                .set_read_timeout(Some(Duration::from_millis(5)))
                .expect("read timeout");
            client.connected(conn, Instant::now());
            streams.push(Some(stream));
        }
        Driver {
            client,
            streams,
            events: Vec::new(),
        }
    }

    fn turn(&mut self) {
        let mut buf = Vec::new();
        for conn in 0..self.streams.len() {
            buf.clear();
            self.client.poll_transmit(conn, &mut buf);
            if let Some(stream) = self.streams[conn].as_mut() {
                if !buf.is_empty() && stream.write_all(&buf).is_err() {
                    self.lose(conn);
                }
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        for conn in 0..self.streams.len() {
            let Some(stream) = self.streams[conn].as_mut() else {
                continue;
            };
            match stream.read(&mut chunk) {
                Ok(0) => self.lose(conn),
                Ok(n) => self.client.handle_input(conn, &chunk[..n], Instant::now()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => self.lose(conn),
            }
        }
        let now = Instant::now();
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
        if !self.client.is_open() && self.streams.iter().any(Option::is_some) {
            // The session ended: last bytes out, then close, as the runtime does.
            for conn in 0..self.streams.len() {
                buf.clear();
                self.client.poll_transmit(conn, &mut buf);
                if let Some(mut stream) = self.streams[conn].take() {
                    let _ = stream.write_all(&buf);
                    self.client.connection_lost(conn, Instant::now());
                }
            }
        }
    }

    fn lose(&mut self, conn: usize) {
        self.streams[conn] = None;
        self.client.connection_lost(conn, Instant::now());
    }

    /// Turn until `done` holds for the events so far; panics at the deadline.
    fn run_until(&mut self, what: &str, done: impl Fn(&[SmscEvent]) -> bool) {
        let end = Instant::now() + WAIT;
        while !done(&self.events) {
            assert!(
                Instant::now() < end,
                "no {what} within {WAIT:?}; events: {:#?}",
                self.events
            );
            self.turn();
        }
    }

    fn count(&self, pick: impl Fn(&SmscEvent) -> bool) -> usize {
        self.events.iter().filter(|e| pick(e)).count()
    }
}

fn is_up(e: &SmscEvent) -> bool {
    matches!(e, SmscEvent::Up)
}

fn is_down(e: &SmscEvent) -> bool {
    matches!(e, SmscEvent::Down { .. })
}

/// Submit `n` messages, then answer every receipt and MO (the first MO with
/// "later"), then log out. Returns the accepted ids by submit id and the reports.
fn exchange(d: &mut Driver, n: u64, mo: usize) -> (HashMap<u64, String>, Vec<StatusReport>) {
    d.run_until("bind", |e| e.iter().any(is_up));
    for id in 1..=n {
        let m = Message::text("12345", "+46701234567", &format!("hello {id}")).unwrap();
        d.client.submit(id, &m, Instant::now()).expect("room");
    }
    let accepted = |e: &SmscEvent| matches!(e, SmscEvent::Accepted { .. });
    let report = |e: &SmscEvent| matches!(e, SmscEvent::StatusReport { .. });
    let is_mo = |e: &SmscEvent| matches!(e, SmscEvent::Mo { .. });
    let mut answered = 0;
    let end = Instant::now() + WAIT;
    while d.count(accepted) < n as usize || d.count(report) < n as usize || d.count(is_mo) < mo {
        assert!(Instant::now() < end, "events: {:#?}", d.events);
        d.turn();
        // Answer what came, in arrival order.
        for e in &d.events[answered..] {
            match e {
                SmscEvent::Mo { token, message } => {
                    let later = message.text_str() == Some("mo #1");
                    let answer = if later {
                        MoAnswer::RetryLater
                    } else {
                        MoAnswer::Accept
                    };
                    d.client.answer(*token, answer, Instant::now());
                }
                SmscEvent::StatusReport { token, .. } => {
                    d.client.answer(*token, MoAnswer::Accept, Instant::now())
                }
                _ => {}
            }
        }
        answered = d.events.len();
    }
    let ids: HashMap<u64, String> = d
        .events
        .iter()
        .filter_map(|e| match e {
            SmscEvent::Accepted {
                id,
                smsc_id: Some(s),
            } => Some((*id, s.clone())),
            _ => None,
        })
        .collect();
    let reports: Vec<StatusReport> = d
        .events
        .iter()
        .filter_map(|e| match e {
            SmscEvent::StatusReport { report, .. } => Some(report.clone()),
            _ => None,
        })
        .collect();
    d.client.logout(Instant::now());
    d.run_until("logout", |e| e.iter().any(is_down));
    (ids, reports)
}

/// What both bind modes must show: every submit accepted under node-smpp's hex id,
/// its receipt matched to it through the decimal id, MO answered, a clean unbind.
fn check_exchange(smsc: &mut NodeSmsc, d: &Driver, n: u64, mo: usize, unbinds: usize) {
    let accepted: HashMap<u64, String> = d
        .events
        .iter()
        .filter_map(|e| match e {
            SmscEvent::Accepted {
                id,
                smsc_id: Some(s),
            } => Some((*id, s.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len(), n as usize, "{:#?}", d.events);
    let log = smsc
        .wait_for("answers and unbind", |log| {
            NodeSmsc::count(log, "receipt_resp") == n as usize
                && NodeSmsc::count(log, "mo_resp") == mo
                && NodeSmsc::count(log, "unbind") == unbinds
        })
        .to_vec();
    // Our id for each submit is node-smpp's hex message_id, normalised.
    for e in log.iter().filter(|e| e["event"] == "submit") {
        let text = e["text"].as_str().expect("text");
        let id: u64 = text["hello ".len()..].parse().expect("our text");
        let hex = e["message_id"].as_str().expect("hex id");
        let number = u64::from_str_radix(hex, 16).expect("hex");
        assert_eq!(accepted[&id], number.to_string(), "{e}");
        assert_eq!(e["to"], "46701234567");
        assert_eq!(e["dest_ton"], 1, "international");
        assert_eq!(e["registered_delivery"], 1);
    }
    assert_eq!(NodeSmsc::count(&log, "submit"), n as usize);
    // Every MO answered: the first "later" (ESME_RX_T_APPN), the others OK.
    for e in log.iter().filter(|e| e["event"] == "mo_resp") {
        let expected = if e["text"] == "mo #1" { 0x64 } else { 0 };
        assert_eq!(e["status"], expected, "{e}");
    }
    for e in log.iter().filter(|e| e["event"] == "receipt_resp") {
        assert_eq!(e["status"], 0, "{e}");
    }
    let down: Vec<_> = d.events.iter().filter(|e| is_down(e)).collect();
    assert_eq!(
        down,
        vec![&SmscEvent::Down {
            reason: "logged out".into()
        }]
    );
    assert!(
        !d.events
            .iter()
            .any(|e| matches!(e, SmscEvent::Violation { .. })),
        "{:#?}",
        d.events
    );
}

fn check_reports(ids: &HashMap<u64, String>, reports: &[StatusReport]) {
    let submitted: BTreeSet<&String> = ids.values().collect();
    let reported: BTreeSet<&String> = reports.iter().map(|r| &r.smsc_id).collect();
    assert_eq!(reported, submitted, "every receipt matches a submitted id");
    assert_eq!(reports.len(), ids.len(), "one receipt each");
    for r in reports {
        assert!(r.delivered && !r.failed, "{r:?}");
        assert_eq!(r.recipient, "+46701234567");
    }
}

#[test]
fn transceiver_against_node_smpp() {
    if !have_node_smpp() {
        return;
    }
    let mut smsc = NodeSmsc::start(3);
    let mut d = Driver::connect(smsc.addr, smpp_config(BindMode::Transceiver));
    let (ids, reports) = exchange(&mut d, 6, 3);
    check_reports(&ids, &reports);
    check_exchange(&mut smsc, &d, 6, 3, 1);
    let binds: Vec<_> = smsc.log.iter().filter(|e| e["event"] == "bind").collect();
    assert_eq!(binds.len(), 1);
    assert_eq!(binds[0]["role"], "transceiver");
    assert_eq!(binds[0]["system_type"], "test");
    assert_eq!(binds[0]["interface_version"], 0x34);
}

#[test]
fn transmitter_and_receiver_pair_against_node_smpp() {
    if !have_node_smpp() {
        return;
    }
    let mut smsc = NodeSmsc::start(2);
    let mut d = Driver::connect(smsc.addr, smpp_config(BindMode::TransmitterReceiver));
    let (ids, reports) = exchange(&mut d, 4, 2);
    check_reports(&ids, &reports);
    check_exchange(&mut smsc, &d, 4, 2, 2);
    let roles: BTreeSet<&str> = smsc
        .log
        .iter()
        .filter(|e| e["event"] == "bind")
        .filter_map(|e| e["role"].as_str())
        .collect();
    assert_eq!(roles, BTreeSet::from(["receiver", "transmitter"]));
}

#[test]
fn node_smpp_refuses_a_wrong_password() {
    if !have_node_smpp() {
        return;
    }
    let mut smsc = NodeSmsc::start(0);
    let config = SmppConfig {
        password: "wrong".into(),
        ..smpp_config(BindMode::Transceiver)
    };
    let mut d = Driver::connect(smsc.addr, config);
    d.run_until("refusal", |e| e.iter().any(is_down));
    let SmscEvent::Down { reason } = &d.events[0] else {
        panic!("{:#?}", d.events)
    };
    assert!(reason.contains("ESME_RINVPASWD"), "{reason}");
    assert!(reason.contains("the password is wrong"), "{reason}");
    assert!(!d.client.is_open());
    smsc.wait_for("the refusal", |log| {
        NodeSmsc::count(log, "bind_refused") == 1
    });
}

// ---- through the runtime ----

const PSK: &[u8] = b"node-smpp interop key";

fn link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    c
}

/// A buffer-server node speaking SMPP to node-smpp, and the IM-side node it links
/// to: MT from the IM side are submitted and come back Accepted, MO reach the IM
/// side, every receipt is answered, and shutdown unbinds.
#[test]
fn buffer_server_node_speaks_smpp_to_node_smpp() {
    if !have_node_smpp() {
        return;
    }
    const MT: usize = 20;
    const MO: usize = 5;
    let mut smsc = NodeSmsc::start(MO);
    let im = Node::start(NodeConfig::new(vec![LinkSpec::new(
        link_config("im", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]))
    .unwrap();
    let spec = LinkSpec::buffer_server(
        link_config("bs", "im"),
        Transport::Dial(im.local_addr(0).unwrap()),
        SmscSpec::smpp(smsc.addr, smpp_config(BindMode::Transceiver)),
    )
    .insecure_plaintext();
    let mut bs_config = NodeConfig::new(vec![spec]);
    bs_config.reconnect_min = Duration::from_millis(20);
    bs_config.reconnect_max = Duration::from_millis(200);
    let bs = Node::start(bs_config).unwrap();
    for i in 0..MT {
        let m = Message::text("12345", "+46701234567", &format!("hello {i}")).unwrap();
        im.send(&m).expect("room in the ring");
    }
    let mut processed = HashMap::new();
    let mut received = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while processed.len() < MT || received.len() < MO {
        assert!(
            Instant::now() < end,
            "processed {processed:?}, received {received:?}, smsc {:?}",
            bs.smsc_stats()
        );
        match im.wait_event(Some(Duration::from_millis(20))) {
            Some(NodeEvent::Status {
                seq,
                state: SlotState::Processed,
                outcome: Some(o),
                ..
            }) => assert!(processed.insert(seq, o).is_none(), "{seq} twice"),
            Some(NodeEvent::Received { link, seq, message }) => {
                received.push(message.text_str().unwrap_or_default().to_owned());
                im.ack(link, seq, Outcome::Accepted).unwrap();
            }
            _ => {}
        }
        while bs.try_event().is_some() {}
    }
    assert!(processed.values().all(|o| *o == Outcome::Accepted));
    let expected: Vec<String> = (1..=MO).map(|i| format!("mo #{i}")).collect();
    assert_eq!(received, expected, "MO in order, once each");
    let log = smsc
        .wait_for("receipts answered", |log| {
            NodeSmsc::count(log, "receipt_resp") == MT && NodeSmsc::count(log, "mo_resp") == MO
        })
        .to_vec();
    let texts: Vec<&str> = log
        .iter()
        .filter(|e| e["event"] == "submit")
        .filter_map(|e| e["text"].as_str())
        .collect();
    let sent: Vec<String> = (0..MT).map(|i| format!("hello {i}")).collect();
    assert_eq!(texts, sent, "each MT submitted once, in order");
    assert!(log
        .iter()
        .filter(|e| e["event"] == "mo_resp" || e["event"] == "receipt_resp")
        .all(|e| e["status"] == 0));
    // The node publishes its counters at the end of a loop turn, which may come just
    // after the answers it wrote in that turn reached the SMSC.
    let published = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = bs.smsc_stats().expect("a buffer server");
        if stats.status_reports >= MT as u64 || Instant::now() >= published {
            break stats;
        }
        std::thread::yield_now();
    };
    assert_eq!(stats.mt_accepted, MT as u64);
    assert_eq!(stats.mo_received, MO as u64);
    assert_eq!(stats.status_reports, MT as u64);
    assert_eq!(stats.violations, 0);
    let report = bs.shutdown(Duration::from_secs(5));
    assert!(report.drained);
    smsc.wait_for("unbind at shutdown", |log| {
        NodeSmsc::count(log, "unbind") == 1
    });
}
