//! Bad input on a link port: garbage, another protocol (HTTP, CIMD2), a wrong key,
//! a flood of connections. Each is refused on its own with a log line, while a
//! second link on the same node carries traffic undisturbed, and the attacked link
//! still serves its real peer afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::log::{self, Level};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeError, NodeEvent, Transport};

const PSK: &[u8] = b"the real key, 16 bytes+";

fn link(name: &str, peer: &str, psk: &[u8]) -> LinkConfig {
    let mut c = LinkConfig::new(name, psk);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(1);
    c
}

fn dialer(name: &str, peer: &str, psk: &[u8], to: SocketAddr) -> Node {
    let mut c = NodeConfig::new(vec![LinkSpec::new(
        link(name, peer, psk),
        Transport::Dial(to),
    )
    .insecure_plaintext()]);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    Node::start(c).unwrap()
}

/// Send `n` messages from `from` on `link` and pump both nodes until `to` received
/// them all (acknowledging each); returns the texts in arrival order.
fn carry(from: &Node, link: usize, to: &Node, n: usize, prefix: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            got.len()
        );
        while sent < n {
            let m = Message::text("1", "2", &format!("{prefix} {sent}")).unwrap();
            match from.send_on(link, &m) {
                Ok(_) => sent += 1,
                Err(NodeError::Full { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        while from.try_event().is_some() {}
        while let Some(ev) = to.wait_event(Some(Duration::from_millis(5))) {
            if let NodeEvent::Received { link, seq, message } = ev {
                got.push(message.text_str().unwrap().to_owned());
                to.ack(link, seq, Outcome::Accepted).unwrap();
            }
        }
    }
    got
}

/// Read until the peer closes; true when it did within the timeout.
fn closed_by_peer(mut s: TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Log lines captured from the runtime, and a signal for each new one.
#[derive(Default)]
struct Captured {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Captured {
    /// Wait (up to 10 s) until `done` holds for the lines captured so far.
    fn wait_until<T>(&self, mut done: impl FnMut(&[String]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(t) = done(&lines) {
                return t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let n = lines.len();
            assert!(
                !left.is_zero(),
                "log condition not met; last lines: {:#?}",
                &lines[n.saturating_sub(10)..]
            );
            lines = self.added.wait_timeout(lines, left).unwrap().0;
        }
    }

    fn wait_for_line(&self, what: impl Fn(&str) -> bool) -> String {
        self.wait_until(|lines| lines.iter().find(|l| what(l)).cloned())
    }

    fn count(&self, what: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| what(l))
            .count()
    }
}

#[test]
fn each_bad_peer_is_refused_alone_and_other_links_go_on() {
    let captured = Arc::new(Captured::default());
    let sink = captured.clone();
    log::set_level(Level::Debug);
    log::set_sink(Some(Box::new(move |record| {
        sink.lines.lock().unwrap().push(record.message.to_owned());
        sink.added.notify_all();
    })));

    let any = || Transport::Listen("127.0.0.1:0".parse().unwrap());
    let server = Node::start(NodeConfig::new(vec![
        LinkSpec::new(link("a", "im-a", PSK), any()).insecure_plaintext(),
        LinkSpec::new(link("b", "im-b", PSK), any()).insecure_plaintext(),
    ]))
    .unwrap();
    let port_a = server.local_addr(0).unwrap();
    let port_b = server.local_addr(1).unwrap();
    let im_b = dialer("im-b", "b", PSK, port_b);
    assert_eq!(carry(&server, 1, &im_b, 500, "b").len(), 500);

    // Garbage, HTTP and CIMD2 on link a's port: each closed, each logged with its
    // address.
    let cimd2_login = b"\x0201:001\t010:smslink\t011:secret\t\x03".to_vec();
    let http = b"GET / HTTP/1.1\r\nHost: smslink\r\n\r\n".to_vec();
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8 | 0x80).collect();
    for (what, bytes) in [("garbage", garbage), ("http", http), ("cimd2", cimd2_login)] {
        let mut s = TcpStream::connect(port_a).unwrap();
        let me = s.local_addr().unwrap().to_string();
        s.write_all(&bytes).unwrap();
        assert!(closed_by_peer(s, Duration::from_secs(5)), "{what} not cut");
        let line = captured.wait_for_line(|l| l.contains("link=a") && l.contains(&me));
        assert!(line.contains("event="), "{what}: {line}");
        // Link b carried on meanwhile.
        assert_eq!(carry(&server, 1, &im_b, 200, what).len(), 200);
    }

    // A peer with the wrong key fails authentication, logged.
    let intruder = dialer("im-a", "a", b"a wrong key, 16 bytes+", port_a);
    captured.wait_for_line(|l| l.contains("link=a") && l.contains("event=auth_failed"));
    drop(intruder);

    // A flood: many silent connections at once. The surplus is refused (the
    // source's oldest silent connection makes room for its newest), counted, and
    // logged once per source and window with the count of lines held back.
    let is_refusal = |l: &str| l.contains("link=a") && l.contains("event=refused");
    let lines_before = captured.count(is_refusal);
    let refused_before = server.link_stats(0).unwrap().refused_connections;
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(port_a).unwrap())
        .collect();
    let got = carry(&server, 1, &im_b, 1000, "during flood");
    let expected: Vec<String> = (0..1000).map(|i| format!("during flood {i}")).collect();
    assert_eq!(got, expected);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.link_stats(0).unwrap().refused_connections < refused_before + 150 - 8 {
        assert!(Instant::now() < deadline, "flood not refused");
        std::thread::yield_now();
        let _ = server.wait_event(Some(Duration::from_millis(5)));
    }
    let lines = captured.count(is_refusal) - lines_before;
    assert!(lines <= 6, "{lines} refusal lines for one flooding source");
    drop(flood);

    // The attacked link still serves its real peer; link b was never interrupted.
    let im_a = dialer("im-a", "a", PSK, port_a);
    let got = carry(&server, 0, &im_a, 300, "a");
    assert_eq!(got.len(), 300);
    let b = server.link_stats(1).unwrap();
    assert_eq!(b.connects, 1, "link b was disturbed");
    assert_eq!(b.counters.link_downs, 0);
    log::set_sink(None);
}
