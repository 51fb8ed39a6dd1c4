//! Nodes with a journal over loopback sockets: durability events, restarts from
//! the journal, and the errors a journal directory can cause at start.

mod journal_util;

use std::time::{Duration, Instant};

use journal_util::TempDir;
use smslink::journal::JournalConfig;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::{JournalSpec, LinkSpec, Node, NodeConfig, NodeError, NodeEvent, Transport};

const PSK: &[u8] = b"journal runtime key";

fn journal(dir: &TempDir) -> JournalSpec {
    JournalSpec {
        dir: dir.0.to_owned(),
        config: JournalConfig {
            segment_size: 64 * 1024,
            max_disk_bytes: 1 << 20,
            ..JournalConfig::default()
        },
    }
}

fn node(name: &str, peer: &str, transport: Transport, dir: &TempDir) -> Result<Node, NodeError> {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    let mut config = NodeConfig::new(vec![LinkSpec::new(c, transport).insecure_plaintext()]);
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    config.journal = Some(journal(dir));
    Node::start(config)
}

/// Events of `node` until `done` says so (panics after 10 s).
fn events_until(node: &Node, mut done: impl FnMut(&NodeEvent) -> bool) -> Vec<NodeEvent> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "deadline passed; events so far: {seen:#?}");
        if let Some(ev) = node.wait_event(Some(left.min(Duration::from_millis(50)))) {
            let stop = done(&ev);
            seen.push(ev);
            if stop {
                return seen;
            }
        }
    }
}

fn text(i: u64) -> Message {
    let mut m = Message::text("100", "200", &format!("mt {i}")).unwrap();
    m.client_ref = 1000 + i;
    m
}

#[test]
fn messages_survive_a_restart_of_the_sender_and_keep_their_seqs() {
    let (dir_a, dir_b) = (TempDir::new("rt-a"), TempDir::new("rt-b"));
    let listen = Transport::Listen("127.0.0.1:0".parse().unwrap());
    // The sender runs alone first: its messages wait in its journal.
    let a = node("a", "b", listen, &dir_a).unwrap();
    for i in 1..=5 {
        assert_eq!(a.send(&text(i)).unwrap().seq, i);
    }
    let events = events_until(&a, |e| matches!(e, NodeEvent::Durable { seq: 5, .. }));
    let durable: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Durable {
                seq, client_ref, ..
            } => Some((*seq, *client_ref)),
            _ => None,
        })
        .collect();
    assert_eq!(durable, (1..=5).map(|i| (i, 1000 + i)).collect::<Vec<_>>());
    a.close(Duration::ZERO);

    // Restarted from its journal: the five are still there (reported durable
    // again), and the next message continues the numbering.
    let listen = Transport::Listen("127.0.0.1:0".parse().unwrap());
    let a = node("a", "b", listen, &dir_a).unwrap();
    let events = events_until(&a, |e| matches!(e, NodeEvent::Durable { seq: 5, .. }));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, NodeEvent::Durable { .. }))
            .count(),
        5
    );
    assert_eq!(a.link_stats(0).unwrap().tx_in_use, 5);
    let syncs_before = a.journal_syncs().unwrap();
    assert_eq!(a.send(&text(6)).unwrap().seq, 6);
    events_until(&a, |e| matches!(e, NodeEvent::Durable { seq: 6, .. }));
    // Made durable by a sync the node counts and exports.
    let syncs = a.journal_syncs().unwrap();
    assert!(syncs > syncs_before, "{syncs} syncs, {syncs_before} before");
    assert!(a
        .metrics_text()
        .contains(&format!("\nsmslink_journal_syncs_total {syncs}\n")));

    // The peer gets all six, in order, once.
    let addr = a.local_addr(0).unwrap();
    let b = node("b", "a", Transport::Dial(addr), &dir_b).unwrap();
    let mut got = Vec::new();
    events_until(&b, |e| {
        if let NodeEvent::Received { link, seq, message } = e {
            got.push(message.text_str().unwrap_or("").to_owned());
            b.ack(*link, *seq, Outcome::Accepted).unwrap();
        }
        got.len() == 6
    });
    assert_eq!(got, (1..=6).map(|i| format!("mt {i}")).collect::<Vec<_>>());
    // Every message is reported Processed, each after its Durable report.
    let mut processed = 0;
    events_until(&a, |e| {
        if let NodeEvent::Status {
            state: SlotState::Processed,
            ..
        } = e
        {
            processed += 1;
        }
        processed == 6
    });

    // The receiver acknowledged them durably: after its restart, nothing comes again.
    b.close(Duration::from_millis(200));
    let b = node("b", "a", Transport::Dial(addr), &dir_b).unwrap();
    events_until(&b, |e| matches!(e, NodeEvent::LinkUp { .. }));
    assert_eq!(a.send(&text(7)).unwrap().seq, 7);
    let events = events_until(&b, |e| matches!(e, NodeEvent::Received { .. }));
    let received: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Received { message, .. } => message.text_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(received, vec!["mt 7".to_owned()]);
}

#[test]
fn a_second_node_on_the_same_journal_is_refused() {
    let dir = TempDir::new("rt-lock");
    let listen = || Transport::Listen("127.0.0.1:0".parse().unwrap());
    let _first = node("a", "b", listen(), &dir).unwrap();
    let Err(err) = node("a", "b", listen(), &dir) else {
        panic!("a second node opened the same journal");
    };
    let text = err.to_string();
    assert!(text.contains("in use by another process"), "{text}");
    assert!(text.contains(&dir.0.display().to_string()), "{text}");
}

#[test]
fn a_journal_path_that_is_not_a_directory_is_a_clear_error() {
    let dir = TempDir::new("rt-file");
    let file = dir.0.join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let mut c = LinkConfig::new("a", PSK);
    c.expected_peer = Some("b".into());
    let mut config = NodeConfig::new(vec![LinkSpec::new(
        c,
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]);
    config.journal = Some(JournalSpec::new(&file));
    let Err(err) = Node::start(config) else {
        panic!("a node started on a journal path that is a file");
    };
    let err = err.to_string();
    assert!(err.contains("plain-file"), "{err}");
}

#[test]
fn with_a_journal_a_node_takes_more_than_its_ring_while_the_peer_is_away() {
    let (dir_a, dir_b) = (TempDir::new("rt-ov-a"), TempDir::new("rt-ov-b"));
    let mut c = LinkConfig::new("a", PSK);
    c.expected_peer = Some("b".into());
    c.capacity = 8;
    let mut config = NodeConfig::new(vec![LinkSpec::new(
        c,
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext()]);
    config.journal = Some(journal(&dir_a));
    let a = Node::start(config).unwrap();
    // 40 messages into a ring of 8: the rest wait on disk (the queue between the
    // application and the loop is as large as the ring, so the sender may wait).
    for i in 1..=40 {
        let r = loop {
            match a.send(&text(i)) {
                Ok(r) => break r,
                Err(NodeError::Full { .. }) => {
                    a.wait_for_room(0, 1, Some(Duration::from_secs(5))).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(r.seq, i);
    }
    events_until(&a, |e| matches!(e, NodeEvent::Durable { seq: 40, .. }));
    let stats = a.link_stats(0).unwrap();
    assert_eq!(stats.tx_in_use, 8);
    let b = node("b", "a", Transport::Dial(a.local_addr(0).unwrap()), &dir_b).unwrap();
    let mut got = Vec::new();
    events_until(&b, |e| {
        if let NodeEvent::Received { link, seq, message } = e {
            got.push(message.text_str().unwrap_or("").to_owned());
            b.ack(*link, *seq, Outcome::Accepted).unwrap();
        }
        got.len() == 40
    });
    assert_eq!(got, (1..=40).map(|i| format!("mt {i}")).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_journal_refuses_to_start_naming_file_and_offset_unless_repaired() {
    let dir = TempDir::new("rt-corrupt");
    let listen = || Transport::Listen("127.0.0.1:0".parse().unwrap());
    let a = node("a", "b", listen(), &dir).unwrap();
    // Separate commits: the later records were written after the first was durable.
    for i in 1..=3 {
        a.send(&text(i)).unwrap();
        events_until(
            &a,
            |e| matches!(e, NodeEvent::Durable { seq, .. } if *seq == i),
        );
    }
    a.close(Duration::ZERO);
    let segment = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    // Inside the first record's payload (after the 32-byte segment header and the
    // entry's own 17-byte header).
    bytes[32 + 17 + 2] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let Err(err) = node("a", "b", listen(), &dir) else {
        panic!("started on a corrupt journal");
    };
    let text = err.to_string();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.contains("corrupt journal") && text.contains(&name),
        "{text}"
    );
    assert!(text.contains("at offset 32"), "{text}");
    // With repair the journal is cut there and the node starts.
    let mut c = LinkConfig::new("a", PSK);
    c.expected_peer = Some("b".into());
    let mut config = NodeConfig::new(vec![LinkSpec::new(c, listen()).insecure_plaintext()]);
    let mut spec = journal(&dir);
    spec.config.repair = true;
    config.journal = Some(spec);
    assert!(Node::start(config).is_ok());
}
