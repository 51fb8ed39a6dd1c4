//! The mio runtime over real loopback sockets: two nodes joined by a link, and a
//! buffer server between an IM-side node and the SMSC simulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use smslink::cimd2::session::ClientConfig;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::{JournalSpec, LinkSpec, Node, NodeConfig, NodeEvent, SmscSpec, Transport};
use smslink_tools::smsc_sim::{SimConfig, SmscSim};

const PSK: &[u8] = b"runtime test key, 16+";

fn link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    c
}

fn im_node() -> Node {
    let spec = LinkSpec::new(
        link_config("im", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext();
    Node::start(NodeConfig::new(vec![spec])).unwrap()
}

fn bs_config(im: SocketAddr) -> NodeConfig {
    let spec = LinkSpec::new(link_config("bs", "im"), Transport::Dial(im)).insecure_plaintext();
    let mut c = NodeConfig::new(vec![spec]);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

/// What one side saw: messages received (in order) and final outcomes of its sends.
#[derive(Default)]
struct Seen {
    received: Vec<String>,
    processed: HashMap<u64, Outcome>,
    ups: usize,
    /// Delivery reports: (client_ref, state, parts).
    reports: Vec<(u64, smslink::message::ReportState, u8)>,
}

/// Pump events from both nodes until `done` or the deadline; the application on each
/// side acknowledges every received message at once.
fn pump(
    nodes: [&Node; 2],
    seen: &mut [Seen; 2],
    deadline: Duration,
    done: impl Fn(&[Seen; 2]) -> bool,
) {
    let end = Instant::now() + deadline;
    let handle = |i: usize, ev: NodeEvent, seen: &mut [Seen; 2]| match ev {
        NodeEvent::Received { link, seq, message } => {
            seen[i]
                .received
                .push(message.text_str().unwrap_or("").to_owned());
            nodes[i].ack(link, seq, Outcome::Accepted).unwrap();
        }
        NodeEvent::Status {
            seq,
            state: SlotState::Processed,
            outcome,
            ..
        } => {
            assert!(
                seen[i].processed.insert(seq, outcome.unwrap()).is_none(),
                "seq {seq} processed twice"
            );
        }
        NodeEvent::LinkUp { .. } => seen[i].ups += 1,
        NodeEvent::Report {
            client_ref,
            state,
            parts,
            ..
        } => seen[i].reports.push((client_ref, state, parts)),
        _ => {}
    };
    while !done(seen) {
        if Instant::now() >= end {
            panic!(
                "deadline passed: {:#?} {:#?}",
                nodes[0].link_stats(0),
                nodes[1].link_stats(0)
            );
        }
        let mut any = false;
        for (i, node) in nodes.iter().enumerate() {
            while let Some(ev) = node.try_event() {
                any = true;
                handle(i, ev, seen);
            }
        }
        if !any {
            // Block briefly on one node's events (the other is polled next round).
            if let Some(ev) = nodes[0].wait_event(Some(Duration::from_millis(2))) {
                handle(0, ev, seen);
            }
        }
    }
}

fn send_all(node: &Node, prefix: &str, n: usize, deadline: Instant) {
    for i in 0..n {
        let mut m = Message::text("100", "200", &format!("{prefix} {i}")).unwrap();
        m.client_ref = i as u64;
        loop {
            match node.send(&m) {
                Ok(r) => {
                    assert_eq!(r.seq, i as u64 + 1);
                    break;
                }
                Err(smslink::runtime::NodeError::Full { link, .. }) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let room = node.wait_for_room(link, 1, Some(left));
                    assert!(
                        room.as_ref().is_ok_and(|r| *r > 0),
                        "ring never freed: {room:?}"
                    );
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn two_nodes_carry_both_directions_exactly_once_in_order() {
    let im = im_node();
    let addr = im.local_addr(0).unwrap();
    let bs = Node::start(bs_config(addr)).unwrap();
    const N: usize = 3000;
    let mut seen = [Seen::default(), Seen::default()];
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        s.spawn(|| send_all(&im, "mt", N, deadline));
        s.spawn(|| send_all(&bs, "mo", N, deadline));
        pump([&im, &bs], &mut seen, Duration::from_secs(60), |s| {
            s[0].received.len() == N
                && s[1].received.len() == N
                && s[0].processed.len() == N
                && s[1].processed.len() == N
        });
    });
    for (side, prefix) in [(1, "mt"), (0, "mo")] {
        let expected: Vec<String> = (0..N).map(|i| format!("{prefix} {i}")).collect();
        assert_eq!(seen[side].received, expected);
    }
    // Counters are published at the end of the loop's turn, events during it.
    let stats = published(|| im.link_stats(0), |s| s.tx.last_processed == N as u64);
    assert_eq!(stats.tx.last_processed, N as u64);
    let report = bs.shutdown(Duration::from_secs(2));
    assert!(report.drained);
}

#[test]
fn full_ring_refuses_until_the_peer_processes() {
    let im = im_node();
    // No peer at all: the ring fills and refuses, nothing is lost.
    let mut sent = 0;
    loop {
        let m = Message::text("1", "2", "x").unwrap();
        match im.send(&m) {
            Ok(_) => sent += 1,
            Err(smslink::runtime::NodeError::Full { capacity, .. }) => {
                assert_eq!(capacity, 255);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, 255);
    assert_eq!(im.free_slots(0), Ok(0));
    // The peer comes: everything is delivered and the ring frees.
    let addr = im.local_addr(0).unwrap();
    let bs = Node::start(bs_config(addr)).unwrap();
    let mut seen = [Seen::default(), Seen::default()];
    pump([&im, &bs], &mut seen, Duration::from_secs(30), |s| {
        s[0].processed.len() == 255
    });
    assert_eq!(seen[1].received.len(), 255);
    assert_eq!(
        im.free_slots(0),
        Ok(255),
        "the cursor is published with the events"
    );
    assert!(im.send(&Message::text("1", "2", "again").unwrap()).is_ok());
    assert_eq!(im.free_slots(0), Ok(254));
}

#[test]
fn a_sender_waiting_for_room_wakes_when_the_peer_processes() {
    let im = im_node();
    for _ in 0..255 {
        im.send(&Message::text("1", "2", "x").unwrap()).unwrap();
    }
    assert_eq!(
        im.wait_for_room(0, 1, Some(Duration::from_millis(20))),
        Err(smslink::runtime::NodeError::Full {
            link: 0,
            capacity: 255
        }),
        "no peer: the wait times out with no room"
    );
    let addr = im.local_addr(0).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| im.wait_for_room(0, 100, Some(Duration::from_secs(30))));
        let bs = Node::start(bs_config(addr)).unwrap();
        let mut seen = [Seen::default(), Seen::default()];
        // Only the peer's side is pumped: the waiter alone watches the IM side's room.
        let end = Instant::now() + Duration::from_secs(30);
        while seen[1].received.len() < 255 && Instant::now() < end {
            if let Some(NodeEvent::Received { link, seq, message }) =
                bs.wait_event(Some(Duration::from_millis(50)))
            {
                seen[1]
                    .received
                    .push(message.text_str().unwrap_or("").into());
                bs.ack(link, seq, Outcome::Accepted).unwrap();
            }
        }
        let room = waiter.join().unwrap().unwrap();
        assert!(room >= 100, "woken with {room} free slots");
    });
}

#[test]
fn a_sender_waiting_for_room_returns_when_the_node_closes() {
    let im = std::sync::Arc::new(im_node());
    for _ in 0..255 {
        im.send(&Message::text("1", "2", "x").unwrap()).unwrap();
    }
    let waiter = {
        let im = im.clone();
        std::thread::spawn(move || im.wait_for_room(0, 1, None))
    };
    im.close(Duration::ZERO);
    assert_eq!(
        waiter.join().unwrap(),
        Err(smslink::runtime::NodeError::Stopped)
    );
}

#[test]
fn close_through_a_shared_handle_wakes_a_waiting_thread() {
    let im = std::sync::Arc::new(im_node());
    let waiter = {
        let im = im.clone();
        std::thread::spawn(move || im.wait_event(None))
    };
    let report = im.close(Duration::ZERO);
    assert!(report.drained);
    assert_eq!(report.links.len(), 1);
    assert_eq!(
        waiter.join().unwrap(),
        None,
        "the waiter returns once stopped"
    );
    assert!(!im.is_running());
    assert_eq!(
        im.send(&Message::text("1", "2", "late").unwrap()),
        Err(smslink::runtime::NodeError::Stopped)
    );
    assert_eq!(
        im.close(Duration::ZERO).links.len(),
        0,
        "second close: no-op"
    );
}

#[test]
fn garbage_peer_on_the_link_port_is_cut_off_alone() {
    use std::io::{Read, Write};
    let im = im_node();
    let addr = im.local_addr(0).unwrap();
    let bs = Node::start(bs_config(addr)).unwrap();
    let mut seen = [Seen::default(), Seen::default()];
    pump([&im, &bs], &mut seen, Duration::from_secs(10), |s| {
        s[0].ups == 1
    });
    // A stranger connects while the link is up: it waits, and never disturbs it.
    let mut stranger = std::net::TcpStream::connect(addr).unwrap();
    stranger.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    bs.send(&Message::text("1", "2", "still flowing").unwrap())
        .unwrap();
    pump([&im, &bs], &mut seen, Duration::from_secs(10), |s| {
        s[0].received.len() == 1
    });
    assert_eq!(seen[0].ups, 1);
    drop(bs);
    // With the real peer gone the stranger is promoted, fails the handshake, is cut.
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match stranger.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                assert!(
                    matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
                    "{e}"
                );
                break;
            }
        }
    }
    let _ = total;
}

#[test]
fn buffer_server_between_im_node_and_smsc() {
    buffer_server_path("plain", false);
}

/// The same with a journal on both nodes: every confirmation waits for its sync.
#[test]
fn buffer_server_between_im_node_and_smsc_with_journals() {
    buffer_server_path("journal", true);
}

fn buffer_server_path(tag: &str, journal: bool) {
    let dir = std::env::temp_dir().join(format!("smslink-rt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let journal_in = |name: &str| journal.then(|| JournalSpec::new(dir.join(name)));
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    const N: usize = 400;
    let sim = SmscSim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        mo_rate: 2000.0,
        mo_count: N as u64,
        record: Some(record.clone()),
        log: false,
        ..SimConfig::default()
    })
    .unwrap();
    let im = {
        let spec = LinkSpec::new(
            link_config("im", "bs"),
            Transport::Listen("127.0.0.1:0".parse().unwrap()),
        )
        .insecure_plaintext();
        let mut c = NodeConfig::new(vec![spec]);
        c.journal = journal_in("im-journal");
        Node::start(c).unwrap()
    };
    let mut cfg = bs_config(im.local_addr(0).unwrap());
    cfg.journal = journal_in("bs-journal");
    cfg.links[0].smsc = Some(SmscSpec::cimd2(
        sim.local_addr(),
        ClientConfig {
            user: "smslink".into(),
            password: "secret".into(),
            status_report_request: 14,
            ..ClientConfig::default()
        },
    ));
    let bs = Node::start(cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = [Seen::default(), Seen::default()];
    std::thread::scope(|s| {
        s.spawn(|| send_all(&im, "mt", N, deadline));
        pump([&im, &bs], &mut seen, Duration::from_secs(60), |s| {
            s[0].received.len() == N && s[0].processed.len() == N && s[0].reports.len() == N
        });
    });
    // Every MT's delivery report came back over the link, naming its client_ref.
    let mut refs: Vec<u64> = seen[0].reports.iter().map(|r| r.0).collect();
    refs.sort_unstable();
    assert_eq!(refs, (0..N as u64).collect::<Vec<_>>());
    assert!(seen[0]
        .reports
        .iter()
        .all(|r| r.1 == smslink::message::ReportState::Delivered && r.2 == 1));
    // Every MT reached the SMSC once, in order, and was reported Accepted.
    assert!(seen[0].processed.values().all(|o| *o == Outcome::Accepted));
    let (counters, _) = sim.wait_for(Duration::from_secs(5), |c| c.submits_accepted >= N as u64);
    assert_eq!(counters.submits_accepted, N as u64);
    let _ = sim.stop();
    let lines = std::fs::read_to_string(&record).unwrap();
    let texts: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("mt {i}")).collect();
    assert_eq!(texts, expected);
    // Every MO from the SMSC reached the IM node once, in order.
    let expected: Vec<String> = (1..=N).map(|i| format!("mo #{i}")).collect();
    assert_eq!(seen[0].received, expected);
    let smsc = published(|| bs.smsc_stats(), |s| s.mt_accepted == N as u64);
    assert_eq!(smsc.mt_accepted, N as u64);
    drop((bs, im));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The SMSC reports on an MT only after the buffer server that submitted it has
/// been restarted: the restarted one, on the same journal, still knows which MT the
/// SMSC's message id names and gives the IM side its report.
#[test]
fn a_report_after_a_restart_of_a_journaled_buffer_server_is_matched() {
    let dir = std::env::temp_dir().join(format!("smslink-rt-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Long enough for the buffer server to stop and start again in between.
    let report_delay = Duration::from_secs(3);
    let sim = SmscSim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        mo_count: 0,
        report_delay,
        log: false,
        ..SimConfig::default()
    })
    .unwrap();
    let im = im_node();
    let bs_config = || {
        let mut cfg = bs_config(im.local_addr(0).unwrap());
        cfg.journal = Some(JournalSpec::new(dir.join("bs-journal")));
        cfg.links[0].smsc = Some(SmscSpec::cimd2(
            sim.local_addr(),
            ClientConfig {
                user: "smslink".into(),
                password: "secret".into(),
                status_report_request: 14,
                ..ClientConfig::default()
            },
        ));
        cfg
    };
    let bs = Node::start(bs_config()).unwrap();
    let accepted_at = Instant::now();
    send_all(&im, "mt", 1, accepted_at + Duration::from_secs(10));
    let mut seen = [Seen::default(), Seen::default()];
    pump([&im, &bs], &mut seen, Duration::from_secs(10), |s| {
        s[0].processed.len() == 1
    });
    let before = published(|| bs.smsc_stats(), |s| s.mt_accepted == 1);
    assert_eq!(before.reports_awaited, 1);
    let _ = bs.shutdown(Duration::from_secs(1));
    assert!(
        accepted_at.elapsed() < report_delay,
        "the restart took longer than the report's delay: the test proves nothing"
    );
    let bs = Node::start(bs_config()).unwrap();
    pump([&im, &bs], &mut seen, Duration::from_secs(20), |s| {
        !s[0].reports.is_empty()
    });
    assert_eq!(
        seen[0].reports,
        vec![(0, smslink::message::ReportState::Delivered, 1)]
    );
    let after = published(|| bs.smsc_stats(), |s| s.reports_forwarded == 1);
    assert_eq!((after.reports_forwarded, after.reports_unknown), (1, 0));
    assert_eq!(after.reports_awaited, 0);
    let _ = sim.stop();
    drop((bs, im));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node's published snapshot once `done` holds, or the last one after a deadline
/// (snapshots are published at the end of the loop's turn, events during it).
fn published<T>(read: impl Fn() -> Option<T>, done: impl Fn(&T) -> bool) -> T {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = read().expect("a snapshot");
        if done(&snapshot) || Instant::now() >= end {
            return snapshot;
        }
    }
}

#[test]
fn a_waiting_peer_takes_over_when_the_current_one_leaves() {
    let im = im_node();
    let addr = im.local_addr(0).unwrap();
    let first = Node::start(bs_config(addr)).unwrap();
    let mut seen = [Seen::default(), Seen::default()];
    pump([&im, &first], &mut seen, Duration::from_secs(10), |s| {
        s[0].ups == 1
    });
    // A second buffer server (same name and key, e.g. a restarted process) connects
    // while the first still holds the link: it waits.
    let second = Node::start(bs_config(addr)).unwrap();
    // Its TCP connection is established (it waits in the listener's queue).
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.link_stats(0).map_or(0, |l| l.connects) == 0 {
        assert!(Instant::now() < deadline, "second never connected");
    }
    drop(first);
    // The waiting one is promoted and carries traffic; the link does not lock up.
    let mut seen = [Seen::default(), Seen::default()];
    send_all(
        &second,
        "after",
        50,
        Instant::now() + Duration::from_secs(20),
    );
    pump([&im, &second], &mut seen, Duration::from_secs(20), |s| {
        s[0].received.len() == 50
    });
    assert!(seen[0].ups >= 1);
    let expected: Vec<String> = (0..50).map(|i| format!("after {i}")).collect();
    assert_eq!(seen[0].received, expected);
}

/// The parts of a long MO, sent by a peer in any order and once twice, reach the IM
/// application as one message; its one acknowledgement frees every part's slot. A
/// message whose last part never comes is handed over incomplete after the timeout.
#[test]
fn parts_of_a_long_mo_reach_the_application_as_one_message() {
    use smslink::message::Part;
    let spec = LinkSpec::new(
        link_config("im", "bs"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext();
    let mut im_config = NodeConfig::new(vec![spec]);
    im_config.reassembly_timeout = Duration::from_millis(300);
    let im = Node::start(im_config).unwrap();
    let bs = Node::start(bs_config(im.local_addr(0).unwrap())).unwrap();
    let part = |reference: u16, total: u8, index: u8, text: &str| {
        let mut m = Message::text("+4670000001", "1000", text).unwrap();
        m.part = Some(Part::new(reference, total, index).unwrap());
        m
    };
    for m in [
        part(5, 3, 3, "three"),
        part(5, 3, 1, "one "),
        part(5, 3, 3, "three"),
        part(9, 2, 1, "lonely "),
        part(5, 3, 2, "two "),
    ] {
        bs.send(&m).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < end {
        // Drain the buffer server's status events too.
        while bs.try_event().is_some() {}
        if let Some(NodeEvent::Received { link, seq, message }) =
            im.wait_event(Some(Duration::from_millis(20)))
        {
            got.push((message.text_str().unwrap_or("").to_owned(), message.part));
            im.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    assert_eq!(
        got,
        vec![
            ("one two three".to_owned(), None),
            ("lonely ".to_owned(), Some(Part::new(9, 2, 2).unwrap())),
        ]
    );
    // Every part's slot was processed by the two acknowledgements.
    let end = Instant::now() + Duration::from_secs(5);
    while im.link_stats(0).is_some_and(|s| s.rx_in_use > 0) && Instant::now() < end {
        while bs.try_event().is_some() {}
        let _ = im.wait_event(Some(Duration::from_millis(20)));
    }
    assert_eq!(im.link_stats(0).map(|s| s.rx_in_use), Some(0));
    bs.shutdown(Duration::ZERO);
    im.shutdown(Duration::ZERO);
}

/// A receiving ring full of parts whose other parts wait behind it cannot wait for
/// the timeout: the oldest message is handed over incomplete at once, its
/// acknowledgement frees room, and the traffic goes on.
#[test]
fn a_ring_full_of_waiting_parts_gives_up_its_oldest_message() {
    use smslink::message::Part;
    let mut link = link_config("im", "bs");
    link.capacity = 4;
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();
    let mut bs_link = link_config("bs", "im");
    bs_link.capacity = 8;
    let mut cfg = bs_config(im.local_addr(0).unwrap());
    cfg.links[0].config = bs_link;
    let bs = Node::start(cfg).unwrap();
    // Six first parts of six two-part messages (six senders): no message can finish.
    for i in 0..6u16 {
        let mut m = Message::text(&format!("+46700000{i:02}"), "1000", &format!("p{i}")).unwrap();
        m.part = Some(Part::new(i, 2, 1).unwrap());
        bs.send(&m).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 3 && Instant::now() < end {
        while bs.try_event().is_some() {}
        if let Some(NodeEvent::Received { link, seq, message }) =
            im.wait_event(Some(Duration::from_millis(20)))
        {
            got.push(message.text_str().unwrap_or("").to_owned());
            im.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    // Oldest first, well before the 600 s timeout.
    assert_eq!(got, ["p0", "p1", "p2"]);
    bs.shutdown(Duration::ZERO);
    im.shutdown(Duration::ZERO);
}

/// A long MT over SMPP in each of the three ways an SMSC may want it: the simulator
/// records the parts (or the whole message), they join to the text, the MT has one
/// outcome, and its receipts come back as one report naming its client_ref.
#[test]
fn a_long_mt_over_smpp_in_every_long_message_mode() {
    use smslink::sms::concat::RefWidth;
    use smslink::smsc::LongMessages;
    use smslink_tools::smsc_sim::Protocol;
    // 356 septets ('€' takes two): 3 parts with either header.
    let text: String = (0..50).map(|i| format!("word{i:02} ")).collect::<String>() + "€ end";
    for (mode, parts) in [
        (LongMessages::Udh(RefWidth::Eight), 3u8),
        (LongMessages::Sar, 3),
        (LongMessages::Whole, 1),
    ] {
        let dir = std::env::temp_dir().join(format!("smslink-rt-smpp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = dir.join(format!("record-{parts}-{mode:?}.jsonl"));
        let _ = std::fs::remove_file(&record);
        let sim = SmscSim::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            user: "alice".into(),
            password: "pw".into(),
            record: Some(record.clone()),
            mo_count: 0,
            log: false,
            ..SimConfig::for_protocol(Protocol::Smpp)
        })
        .unwrap();
        let im = im_node();
        let mut cfg = bs_config(im.local_addr(0).unwrap());
        cfg.links[0].smsc = Some(SmscSpec::smpp(
            sim.local_addr(),
            smslink::smpp::SmppConfig {
                system_id: "alice".into(),
                password: "pw".into(),
                long_messages: mode,
                ..smslink::smpp::SmppConfig::default()
            },
        ));
        let bs = Node::start(cfg).unwrap();
        let mut m = Message::text("12345", "+46700000001", &text).unwrap();
        m.client_ref = 7;
        im.send(&m).unwrap();
        let mut seen = [Seen::default(), Seen::default()];
        pump([&im, &bs], &mut seen, Duration::from_secs(20), |s| {
            s[0].processed.len() == 1 && !s[0].reports.is_empty()
        });
        assert_eq!(
            seen[0].processed.get(&1),
            Some(&Outcome::Accepted),
            "{mode:?}"
        );
        assert_eq!(
            seen[0].reports,
            [(7, smslink::message::ReportState::Delivered, parts)],
            "{mode:?}"
        );
        let (_, ok) = sim.wait_for(Duration::from_secs(5), |c| {
            c.submits_accepted == u64::from(parts)
        });
        assert!(ok, "{mode:?}");
        let _ = sim.stop();
        let lines = std::fs::read_to_string(&record).unwrap();
        let mut recorded: Vec<(u64, String)> = lines
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let index = v["part"][2].as_u64().unwrap_or(1);
                (index, v["text"].as_str().unwrap().to_owned())
            })
            .collect();
        recorded.sort();
        let joined: String = recorded.into_iter().map(|r| r.1).collect();
        assert_eq!(joined, text, "{mode:?}");
        bs.shutdown(Duration::ZERO);
        im.shutdown(Duration::ZERO);
    }
}
