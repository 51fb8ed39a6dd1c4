//! Many links on one node, over loopback: a turn of the event loop visits only the
//! links with work (with a journal too), and after the IM side restarts every link comes back through
//! the node's handshake budget without exceeding its cap.

mod journal_util;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use journal_util::TempDir;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::{
    HandshakeLimits, JournalSpec, LinkSpec, Node, NodeConfig, NodeEvent, Transport,
};

const PSK: &[u8] = b"runtime scale test key";

fn link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c
}

/// A node with `n` listening links `peer{i}`, expecting `im{i}`.
fn peers(n: usize) -> Node {
    Node::start(peers_config(n)).unwrap()
}

fn peers_config(n: usize) -> NodeConfig {
    let links = (0..n)
        .map(|i| {
            LinkSpec::new(
                link_config(&format!("peer{i}"), &format!("im{i}")),
                Transport::Listen("127.0.0.1:0".parse().unwrap()),
            )
            .insecure_plaintext()
        })
        .collect();
    NodeConfig::new(links)
}

/// The IM side: one dialling link per address.
fn im_config(addrs: &[SocketAddr]) -> NodeConfig {
    let links = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            LinkSpec::new(
                link_config(&format!("im{i}"), &format!("peer{i}")),
                Transport::Dial(*a),
            )
            .insecure_plaintext()
        })
        .collect();
    let mut c = NodeConfig::new(links);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

/// Answer events of `node` until `done` (given the links seen up since the start,
/// by id) or the deadline; every received message is acknowledged.
fn pump_until(
    node: &Node,
    up: &mut [bool],
    deadline: Duration,
    mut done: impl FnMut(&[bool]) -> bool,
) -> bool {
    let end = Instant::now() + deadline;
    while !done(up) {
        if Instant::now() > end {
            return false;
        }
        let Some(ev) = node.wait_event(Some(Duration::from_millis(50))) else {
            continue;
        };
        match ev {
            NodeEvent::LinkUp { link, .. } => up[link] = true,
            NodeEvent::LinkDown { link, .. } => up[link] = false,
            NodeEvent::Received { link, seq, .. } => {
                node.ack(link, seq, Outcome::Accepted).unwrap()
            }
            _ => {}
        }
    }
    true
}

#[test]
fn a_turn_visits_only_the_links_with_work() {
    one_busy_link_among_idle_ones(peers(200));
}

#[test]
fn with_a_journal_a_turn_still_visits_only_the_links_with_work() {
    // Every received message is journaled, and its acknowledgement waits for the
    // sync: the commits and what they release must touch only the busy link.
    let dir = TempDir::new("scale");
    let mut config = peers_config(200);
    let mut journal = JournalSpec::new(&dir.0);
    journal.config.segment_size = 64 * 1024;
    journal.config.max_disk_bytes = 1 << 20;
    config.journal = Some(journal);
    one_busy_link_among_idle_ones(Node::start(config).unwrap());
}

/// `idle` has 200 links; one gets a peer and receives messages: the loop's turns
/// visit that one link at most.
fn one_busy_link_among_idle_ones(idle: Node) {
    const IDLE: usize = 200;
    // Link 0 of `idle` gets a peer; the others stay idle (listening, no deadline).
    let im = Node::start(im_config(&[idle.local_addr(0).unwrap()])).unwrap();
    let mut idle_up = vec![false; IDLE];
    let mut im_up = vec![false; 1];
    let end = Instant::now() + Duration::from_secs(10);
    while !(idle_up[0] && im_up[0]) {
        assert!(Instant::now() < end, "link did not come up");
        pump_until(&idle, &mut idle_up, Duration::from_millis(20), |u| u[0]);
        pump_until(&im, &mut im_up, Duration::from_millis(20), |u| u[0]);
    }
    let before = idle.loop_stats();
    const MESSAGES: usize = 300;
    let mut sent = 0;
    let mut received = 0;
    let end = Instant::now() + Duration::from_secs(20);
    while received < MESSAGES {
        assert!(
            Instant::now() < end,
            "only {received} of {MESSAGES} arrived"
        );
        if sent < MESSAGES && im.free_slots(0).unwrap() > 0 {
            im.send_on(0, &Message::text("1", "2", &format!("m{sent}")).unwrap())
                .unwrap();
            sent += 1;
        }
        while let Some(ev) = im.try_event() {
            let _ = ev;
        }
        if let Some(NodeEvent::Received { link, seq, .. }) =
            idle.wait_event(Some(Duration::from_millis(5)))
        {
            idle.ack(link, seq, Outcome::Accepted).unwrap();
            received += 1;
        }
    }
    let after = idle.loop_stats();
    let turns = after.turns - before.turns;
    let visits = after.link_visits - before.link_visits;
    assert!(turns >= 10, "the busy link made only {turns} turns");
    assert!(visits > 0, "the busy link was never visited");
    // Each turn visits the busy link at most: the 199 idle ones never.
    assert!(
        visits <= turns,
        "{visits} link visits in {turns} turns with one busy link of {IDLE}"
    );
}

#[test]
fn after_a_restart_every_link_comes_back_within_the_handshake_cap() {
    const LINKS: usize = 300;
    const CAP: usize = 16;
    let far = peers(LINKS);
    let addrs: Vec<SocketAddr> = (0..LINKS).map(|i| far.local_addr(i).unwrap()).collect();
    let config = || {
        let mut c = im_config(&addrs);
        c.handshakes = HandshakeLimits {
            per_second: 5000.0,
            burst: CAP as u32,
            max_concurrent: CAP,
        };
        c
    };
    let mut far_up = vec![false; LINKS];
    let all_up = |u: &[bool]| u.iter().all(|&b| b);
    for round in 0..2 {
        // Round 0: the first start; round 1: the IM side back after it went away.
        let im = Node::start(config()).unwrap();
        let mut im_up = vec![false; LINKS];
        let end = Instant::now() + Duration::from_secs(30);
        while !(all_up(&far_up) && all_up(&im_up)) {
            assert!(
                Instant::now() < end,
                "round {round}: {} of {LINKS} links up on the far side, {} on the IM side",
                far_up.iter().filter(|&&b| b).count(),
                im_up.iter().filter(|&&b| b).count()
            );
            pump_until(&far, &mut far_up, Duration::from_millis(10), all_up);
            pump_until(&im, &mut im_up, Duration::from_millis(10), all_up);
        }
        let stats = im.loop_stats();
        assert!(
            stats.handshakes_peak <= CAP,
            "round {round}: {} handshakes at once, cap {CAP}",
            stats.handshakes_peak
        );
        // The storm did meet the cap (else this test proves nothing about it).
        assert_eq!(stats.handshakes_peak, CAP, "round {round}");
        assert_eq!(stats.handshakes_in_progress, 0, "round {round}");
        drop(im);
        // The far side sees every link go down before the next round counts it up.
        let end = Instant::now() + Duration::from_secs(30);
        while far_up.iter().any(|&b| b) {
            assert!(
                Instant::now() < end,
                "links stayed up after the IM side left"
            );
            pump_until(&far, &mut far_up, Duration::from_millis(10), |u| {
                u.iter().all(|&b| !b)
            });
        }
    }
}

#[test]
fn messages_that_waited_for_room_in_the_event_queue_are_delivered_without_a_visit_of_their_link() {
    const PER_LINK: usize = 100;
    // Heartbeats far apart: a link with nothing new on its socket is not visited
    // for a minute, so only the loop's list of waiting deliveries can bring its
    // messages to the application in time.
    let quiet = |name: &str, peer: &str| {
        let mut c = link_config(name, peer);
        c.heartbeat_interval = Duration::from_secs(60);
        c.dead_after = Duration::from_secs(180);
        c
    };
    let links = (0..2)
        .map(|i| {
            LinkSpec::new(
                quiet(&format!("peer{i}"), &format!("im{i}")),
                Transport::Listen("127.0.0.1:0".parse().unwrap()),
            )
            .insecure_plaintext()
        })
        .collect();
    let mut config = NodeConfig::new(links);
    config.event_capacity = 16;
    let receiver = Node::start(config).unwrap();
    let addrs: Vec<SocketAddr> = (0..2).map(|i| receiver.local_addr(i).unwrap()).collect();
    let mut config = im_config(&addrs);
    for (i, spec) in config.links.iter_mut().enumerate() {
        spec.config = quiet(&format!("im{i}"), &format!("peer{i}"));
    }
    let sender = Node::start(config).unwrap();
    let mut up = vec![false; 2];
    assert!(
        pump_until(&sender, &mut up, Duration::from_secs(10), |u| u
            .iter()
            .all(|&b| b)),
        "links did not come up"
    );
    for i in 0..PER_LINK {
        for link in 0..2 {
            let text = format!("{link}:{i}");
            sender
                .send_on(link, &Message::text("1", "2", &text).unwrap())
                .unwrap();
        }
    }
    let mut received: [Vec<String>; 2] = Default::default();
    let end = Instant::now() + Duration::from_secs(20);
    while received.iter().map(Vec::len).sum::<usize>() < 2 * PER_LINK {
        assert!(
            Instant::now() < end,
            "received {} and {} of {PER_LINK} per link",
            received[0].len(),
            received[1].len()
        );
        while sender.try_event().is_some() {}
        if let Some(NodeEvent::Received { link, seq, message }) =
            receiver.wait_event(Some(Duration::from_millis(20)))
        {
            received[link].push(message.text_str().unwrap().to_owned());
            receiver.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    for (link, texts) in received.iter().enumerate() {
        let expected: Vec<String> = (0..PER_LINK).map(|i| format!("{link}:{i}")).collect();
        assert_eq!(texts, &expected, "link {link}");
    }
}
