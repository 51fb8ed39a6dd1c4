//! Resource bounds under hostile peers, over real loopback sockets: an SMSC that
//! floods without reading, a link port flooded with idle and trickling
//! connections while the real peer reconnects, the SMSC simulator at the
//! descriptor limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use smslink::cimd2::session::ClientConfig;
use smslink::link::{frame, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::log::{self, Level};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, SmscSpec, Transport};

/// Log lines of every node in this test binary (tests filter by their own
/// addresses), with a signal for each new one.
#[derive(Default)]
struct Captured {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Captured {
    fn get() -> &'static Captured {
        static CAPTURED: OnceLock<&'static Captured> = OnceLock::new();
        CAPTURED.get_or_init(|| {
            let captured: &'static Captured = Box::leak(Box::default());
            log::set_level(Level::Info);
            log::set_sink(Some(Box::new(move |record| {
                let mut lines = captured.lines.lock().unwrap();
                // Bounded: a test that floods must not make the capture grow forever.
                if lines.len() < 100_000 {
                    lines.push(record.message.to_owned());
                }
                captured.added.notify_all();
            })));
            captured
        })
    }

    fn wait_for_line(&self, within: Duration, what: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| what(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "log line not seen in {within:?}");
            lines = self.added.wait_timeout(lines, left).unwrap().0;
        }
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

/// The tests of this file one at a time: they measure this process's RSS and
/// descriptors, which tests running alongside would disturb.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A port nothing listens on (bound, then closed).
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn an_smsc_that_floods_without_reading_is_dropped_with_a_log_line() {
    let _serial = serial();
    let captured = Captured::get();
    let smsc = TcpListener::bind("127.0.0.1:0").unwrap();
    let smsc_addr = smsc.local_addr().unwrap();
    let link = LinkConfig::new("bs-flood", b"a key long enough");
    let mut spec = SmscSpec::cimd2(smsc_addr, ClientConfig::default());
    spec.max_output = 256 * 1024;
    let mut config = NodeConfig::new(vec![LinkSpec::buffer_server(
        link,
        Transport::Dial(dead_port()),
        spec,
    )
    .insecure_plaintext()]);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    let node = Node::start(config).unwrap();
    let rss_before = rss();

    // The SMSC sends alive requests as fast as it can and reads nothing back.
    let (mut flood, _) = smsc.accept().unwrap();
    flood
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut batch = Vec::new();
    for n in 0..1000u32 {
        batch.extend_from_slice(format!("\x0240:{:03}\t\x03", n % 128 * 2 + 1).as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0usize;
    let cut = loop {
        assert!(
            Instant::now() < deadline,
            "never dropped after {sent} bytes: {:?}",
            captured.lines.lock().unwrap()
        );
        match flood.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
        if captured.count(|l| l.contains(&format!("smsc={smsc_addr} event=dropped"))) > 0 {
            break false;
        }
    };
    let line = captured.wait_for_line(Duration::from_secs(10), |l| {
        l.contains(&format!("smsc={smsc_addr} event=dropped"))
    });
    assert!(line.contains("does not read"), "{line}");
    // The node read several times its output limit and kept only the limit.
    assert!(sent > 2 << 20 || cut, "{sent}");
    let grown = rss().saturating_sub(rss_before);
    assert!(grown < 32 << 20, "RSS grew by {grown} bytes");
    // The connection was closed: reading it ends (after what was written).
    flood
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match flood.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // It dials again, a new session.
    let (_again, _) = smsc.accept().unwrap();
    drop(node);
}

const PSK: &[u8] = b"the flood test's key";

fn link(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(1);
    c
}

/// The real peer "bs" of the listening link `server`.
fn real_peer(to: SocketAddr, server: &str) -> Node {
    let mut c = NodeConfig::new(vec![
        LinkSpec::new(link("bs", server), Transport::Dial(to)).insecure_plaintext()
    ]);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    Node::start(c).unwrap()
}

/// Wait for `node`'s first event matching `what`, acknowledging messages meanwhile.
fn wait_for(node: &Node, within: Duration, what: impl Fn(&NodeEvent) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "event not seen within {within:?}");
        if let Some(ev) = node.wait_event(Some(left)) {
            if let NodeEvent::Received { link, seq, .. } = &ev {
                node.ack(*link, *seq, Outcome::Accepted).unwrap();
            }
            if what(&ev) {
                return;
            }
        }
    }
}

/// A HELLO as a link peer would send it: what the slow connections trickle.
fn hello_bytes() -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode_hello(
        &mut buf,
        &frame::Hello {
            version: frame::VERSION,
            nonce: [7; frame::NONCE_LEN],
        },
    );
    buf
}

#[test]
fn a_flooded_link_port_lets_the_real_peer_in_and_stays_bounded() {
    let _serial = serial();
    let captured = Captured::get();
    let limit = smslink::runtime::raise_fd_limit();
    // Each connection costs a descriptor here (client) and, while it waits, one in
    // the node: stay well under the limit.
    let idle_n = 1000.min(limit.saturating_sub(400) as usize / 2);
    let slow_n = 100;
    let server = Node::start(NodeConfig::new(vec![LinkSpec::new(
        link("im", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]))
    .unwrap();
    let port = server.local_addr(0).unwrap();
    let first = real_peer(port, "im");
    wait_for(&server, Duration::from_secs(10), |e| {
        matches!(e, NodeEvent::LinkUp { .. })
    });
    let rss_before = rss();

    // The flood: idle connections, and handshakes that trickle one byte a second.
    let idle: Vec<TcpStream> = (0..idle_n)
        .map(|_| TcpStream::connect(port).unwrap())
        .collect();
    let slow: Vec<TcpStream> = (0..slow_n)
        .map(|_| TcpStream::connect(port).unwrap())
        .collect();
    let (stop, stopped) = mpsc::channel::<()>();
    let trickler = std::thread::spawn(move || {
        let hello = hello_bytes();
        let mut slow = slow;
        for byte in hello.iter().cycle() {
            for s in &mut slow {
                let _ = s.write(std::slice::from_ref(byte));
            }
            // One byte a second, until the test is over.
            if stopped.recv_timeout(Duration::from_secs(1)).is_ok() {
                return;
            }
        }
    });

    // The real peer goes away and comes back while the flood goes on.
    drop(first);
    wait_for(&server, Duration::from_secs(10), |e| {
        matches!(e, NodeEvent::LinkDown { .. })
    });
    let back = Instant::now();
    let peer = real_peer(port, "im");
    wait_for(&server, Duration::from_secs(10), |e| {
        matches!(e, NodeEvent::LinkUp { .. })
    });
    let took = back.elapsed();
    eprintln!(
        "real peer up {took:?} after it came back ({idle_n} idle, {slow_n} slow connections)"
    );
    // Its first dial goes out at once: up within a normal reconnect (the longest
    // backoff step plus a handshake), not after the flood's handshakes.
    assert!(took < Duration::from_secs(1), "real peer up after {took:?}");

    // And it carries traffic.
    for i in 0..100 {
        let m = Message::text("1", "2", &format!("after flood {i}")).unwrap();
        server.send(&m).unwrap();
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 100 {
        assert!(Instant::now() < deadline, "only {got} of 100 arrived");
        if let Some(NodeEvent::Received { link, seq, .. }) =
            peer.wait_event(Some(Duration::from_millis(50)))
        {
            peer.ack(link, seq, Outcome::Accepted).unwrap();
            got += 1;
        }
    }

    let stats = server.link_stats(0).unwrap();
    let waiting_cap = 64;
    assert!(
        stats.refused_connections as usize >= idle_n + slow_n - waiting_cap,
        "{} refused",
        stats.refused_connections
    );
    let grown = rss().saturating_sub(rss_before);
    assert!(grown < 32 << 20, "RSS grew by {grown} bytes");
    // Refusals are logged a few times per source and window, not once each.
    let lines = captured.count(|l| l.contains("link=im event=refused "));
    assert!(lines <= 10, "{lines} refusal lines");

    let _ = stop.send(());
    trickler.join().unwrap();
    drop(idle);
    drop(peer);
    drop(server);
}

/// A link peer played by hand: a sans-IO endpoint over a blocking socket.
struct HandPeer {
    endpoint: smslink::link::Endpoint,
    stream: TcpStream,
}

impl HandPeer {
    /// Connect to `addr` and finish the handshake.
    fn connect(addr: SocketAddr, config: LinkConfig) -> HandPeer {
        let now = Instant::now();
        let mut endpoint = smslink::link::Endpoint::new(config, now).unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        endpoint.connected(now, smslink::link::Side::Dialer);
        let mut peer = HandPeer { endpoint, stream };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !peer.endpoint.is_up() {
            assert!(Instant::now() < deadline, "handshake did not finish");
            peer.pump(true);
        }
        // Our AUTH may still be queued.
        peer.pump(false);
        peer
    }

    /// Write what the endpoint has to say; read what came (when `read`).
    fn pump(&mut self, read: bool) {
        let now = Instant::now();
        self.endpoint.handle_timeout(now);
        let mut out = Vec::new();
        self.endpoint.poll_transmit(now, &mut out);
        self.stream.write_all(&out).unwrap();
        if read {
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = self.endpoint.handle_input(&buf[..n], Instant::now());
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_link_peer_that_stops_reading_is_dropped_with_a_log_line() {
    let _serial = serial();
    let captured = Captured::get();
    let capacity = 65_536;
    let mut config = link("im-stall", "bs-stall");
    config.capacity = capacity;
    let server = Node::start(NodeConfig::new(vec![LinkSpec::new(
        config,
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]))
    .unwrap();
    let port = server.local_addr(0).unwrap();
    let mut peer_config = link("bs-stall", "im-stall");
    peer_config.capacity = capacity;
    let mut peer = HandPeer::connect(port, peer_config);
    let me = peer.stream.local_addr().unwrap().to_string();
    // Far more than the socket buffers hold, all within the peer's window.
    let text = "x".repeat(150);
    for _ in 0..capacity {
        server
            .send(&Message::text("1", "2", &text).unwrap())
            .unwrap();
    }
    // The peer reads nothing more but stays alive: a PING every 200 ms.
    let mut ping = Vec::new();
    frame::encode_ping(&mut ping);
    let deadline = Instant::now() + Duration::from_secs(20);
    let dropped = |l: &str| l.contains("event=dropped") && l.contains(&me);
    while captured.count(dropped) == 0 {
        assert!(
            Instant::now() < deadline,
            "a peer that does not read was kept"
        );
        if let Err(e) = peer.stream.write_all(&ping) {
            let lines: Vec<String> = captured
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("stall"))
                .cloned()
                .collect();
            eprintln!("write failed: {e}; {lines:#?}");
            break;
        }
        let _ = server.wait_event(Some(Duration::from_millis(200)));
    }
    let line = captured.wait_for_line(Duration::from_secs(5), dropped);
    assert!(line.contains("does not read"), "{line}");
    // Nothing was lost: the messages wait in the ring for the next connection.
    assert_eq!(server.link_stats(0).unwrap().tx_in_use, capacity);
}

/// Descriptors open in this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Kernel slab memory of the objects a TCP connection holds (socket, inode, file,
/// epoll entry), system-wide, from /proc/slabinfo (0 where unreadable).
fn socket_slab_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let wanted = ["TCP", "sock_inode_cache", "filp", "eventpoll_epi"];
            if f.len() < 4 || !wanted.contains(&f[0]) {
                return None;
            }
            Some(f[1].parse::<u64>().ok()? * f[3].parse::<u64>().ok()?)
        })
        .sum()
}

/// What 1,000 waiting (unauthenticated, silent) connections cost a node when the
/// caps let them all wait: a few hundred bytes each (measured about 250 B); the
/// bound is loose so that allocator noise cannot fail it, yet a per-connection
/// buffer of the link's size (64 KiB) would. The figure is printed with
/// `cargo test -p smslink-system-tests --test hardening -- --nocapture pending_connection_memory`.
#[test]
fn pending_connection_memory() {
    let _serial = serial();
    smslink::runtime::raise_fd_limit();
    const N: usize = 1000;
    let mut spec = LinkSpec::new(
        link("im-mem", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext();
    spec.admission.max_pending = N;
    spec.admission.max_pending_per_source = N;
    spec.admission.handshake_timeout = Duration::from_secs(60);
    spec.admission.max_wait = Duration::from_secs(60);
    let server = Node::start(NodeConfig::new(vec![spec])).unwrap();
    let port = server.local_addr(0).unwrap();
    let (fds, rss0, kmem0) = (open_fds(), rss(), socket_slab_bytes());
    let idle: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(port).unwrap()).collect();
    // Each waiting connection holds one descriptor in the node, next to ours.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds() < fds + 2 * N {
        assert!(Instant::now() < deadline, "not all accepted");
        let _ = server.wait_event(Some(Duration::from_millis(10)));
    }
    assert_eq!(server.link_stats(0).unwrap().refused_connections, 0);
    let (rss1, kmem1) = (rss(), socket_slab_bytes());
    eprintln!(
        "{N} waiting connections: process RSS +{} KiB ({} B each); kernel socket slabs +{} KiB \
         for both ends, system-wide ({} B per connection)",
        rss1.saturating_sub(rss0) / 1024,
        rss1.saturating_sub(rss0) / N as u64,
        kmem1.saturating_sub(kmem0) / 1024,
        kmem1.saturating_sub(kmem0) / N as u64
    );
    let per_connection = rss1.saturating_sub(rss0) / N as u64;
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} B of RSS per waiting connection"
    );
    drop(idle);
}

/// Five connections that send a HELLO and then nothing, from the real peer's own
/// address: on first contact and on a reconnection the real peer is up within about
/// `displace_after` (1 s), not after each of them timed out.
#[test]
fn hello_then_silence_does_not_keep_the_real_peer_out() {
    let _serial = serial();
    let server = Node::start(NodeConfig::new(vec![LinkSpec::new(
        link("im-hello", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]))
    .unwrap();
    let port = server.local_addr(0).unwrap();
    let squat = || -> Vec<TcpStream> {
        (0..5)
            .map(|_| {
                let mut s = TcpStream::connect(port).unwrap();
                s.write_all(&hello_bytes()).unwrap();
                s
            })
            .collect()
    };
    let up_within = |what: &str| {
        let started = Instant::now();
        let peer = real_peer(port, "im-hello");
        wait_for(&server, Duration::from_secs(10), |e| {
            matches!(e, NodeEvent::LinkUp { .. })
        });
        let took = started.elapsed();
        eprintln!("{what}: real peer up after {took:?}");
        // Without displacement each squatter would hold the link for the 5 s
        // handshake timeout in turn.
        assert!(took < Duration::from_secs(4), "{what}: up after {took:?}");
        peer
    };
    let first_squat = squat();
    // Let the squatters take their places (one of them the link) first.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.link_stats(0).unwrap().connects == 0 {
        assert!(Instant::now() < deadline, "no squatter got the link");
        let _ = server.wait_event(Some(Duration::from_millis(5)));
    }
    let peer = up_within("first contact");
    let second_squat = squat();
    drop(peer);
    wait_for(&server, Duration::from_secs(10), |e| {
        matches!(e, NodeEvent::LinkDown { .. })
    });
    let _peer = up_within("reconnection");
    drop((first_squat, second_squat));
}
