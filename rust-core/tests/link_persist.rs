//! Journaled link endpoints step by step: what a restart keeps, how a restored end
//! resynchronises with a fresh peer and with one that kept running, and what a
//! full journal does. The same under random crashes: `journal_link_sim.rs`.

use std::time::Instant;

use smslink::journal::{JournalConfig, SimStorage, SyncPolicy};
use smslink::link::persist::Persistence;
use smslink::link::{Endpoint, Event, LinkConfig, Side};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::sim::Pair;

fn config(name: &str, capacity: usize) -> LinkConfig {
    let mut c = LinkConfig::new(name, b"persist test key");
    c.capacity = capacity;
    c
}

fn journal_config() -> JournalConfig {
    JournalConfig {
        segment_size: 4096,
        max_disk_bytes: 1 << 20,
        sync: SyncPolicy::Always,
        ..JournalConfig::default()
    }
}

fn msg(i: u64) -> Message {
    let mut m = Message::text("1", "2", &format!("m{i}")).unwrap();
    m.client_ref = i;
    m
}

/// A journal per end (`None`: that end is not journaled).
struct Disks {
    a: Option<Persistence<SimStorage>>,
    b: Option<Persistence<SimStorage>>,
}

fn open(
    storage: SimStorage,
    name: &str,
    capacity: usize,
    now: Instant,
) -> (Persistence<SimStorage>, Endpoint) {
    let (p, mut states, _) =
        Persistence::open(storage, journal_config(), &[(name, capacity)]).unwrap();
    let ep = match states[0].take() {
        Some(s) => Endpoint::restore(config(name, capacity), 0, s, now).unwrap(),
        None => Endpoint::with_journal(config(name, capacity), 0, now).unwrap(),
    };
    (p, ep)
}

/// Commit both journals, exchange, until nothing moves.
fn drive(pair: &mut Pair, disks: &mut Disks) {
    for _ in 0..100 {
        let now = pair.now;
        if let Some(p) = &mut disks.a {
            p.commit(&mut [&mut pair.a], now, |_, _| {}).unwrap();
        }
        if let Some(p) = &mut disks.b {
            p.commit(&mut [&mut pair.b], now, |_, _| {}).unwrap();
        }
        let moved = pair.exchange().unwrap_or(true);
        pair.collect();
        if !moved {
            return;
        }
    }
    panic!("did not go idle");
}

fn received(ep: &mut Endpoint, ack: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some((seq, m)) = ep.next_received() {
        out.push((seq, m.text_str().unwrap().to_owned()));
    }
    for &(seq, _) in out.iter().take(ack) {
        ep.mark_processed(seq, Outcome::Accepted).unwrap();
    }
    out
}

fn texts(v: &[(u64, String)]) -> Vec<&str> {
    v.iter().map(|(_, t)| t.as_str()).collect()
}

#[test]
fn a_restored_sender_resyncs_with_a_fresh_peer() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), now).unwrap();
    let (pa, a) = open(SimStorage::new(), "a", 8, now);
    pair.a = a;
    let mut disks = Disks {
        a: Some(pa),
        b: None,
    };
    for i in 1..=3 {
        pair.a.send(&msg(i)).unwrap();
    }
    pair.connect();
    drive(&mut pair, &mut disks);
    // b stored all three (confirmed) and processed none; then both restart: a from
    // its journal, b with nothing (a new epoch).
    assert_eq!(received(&mut pair.b, 0).len(), 3);
    assert_eq!(pair.a.cursors().last_confirmed, 3);
    pair.lose();
    let storage = disks.a.take().unwrap().into_storage();
    let (pa, a) = open(storage, "a", 8, now);
    let epoch = pair.a.epoch();
    pair.a = a;
    assert_eq!(pair.a.epoch(), epoch, "a keeps its epoch");
    disks.a = Some(pa);
    pair.b = Endpoint::new(config("b", 8), now).unwrap();
    pair.a.connected(now, Side::Dialer);
    pair.b.connected(now, Side::Listener);
    drive(&mut pair, &mut disks);
    let got = received(&mut pair.b, 3);
    assert_eq!(texts(&got), ["m1", "m2", "m3"]);
    assert_eq!(pair.a.send(&msg(4)).unwrap(), 4, "seqs continue");
    drive(&mut pair, &mut disks);
    assert_eq!(texts(&received(&mut pair.b, 1)), ["m4"]);
    drive(&mut pair, &mut disks);
    assert_eq!(pair.a.cursors().last_processed, 4);
}

#[test]
fn a_restored_receiver_delivers_again_only_what_it_had_not_durably_processed() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), now).unwrap();
    let (pb, b) = open(SimStorage::new(), "b", 8, now);
    pair.b = b;
    let mut disks = Disks {
        a: None,
        b: Some(pb),
    };
    for i in 1..=5 {
        pair.a.send(&msg(i)).unwrap();
    }
    pair.connect();
    drive(&mut pair, &mut disks);
    // The application takes all five and acknowledges 1, 2 and 4 (out of order).
    let got = received(&mut pair.b, 0);
    assert_eq!(got.len(), 5);
    for seq in [1, 2, 4] {
        pair.b.mark_processed(seq, Outcome::Accepted).unwrap();
    }
    drive(&mut pair, &mut disks);
    assert_eq!(pair.a.cursors().last_processed, 2);
    // b restarts from its journal; a keeps running.
    pair.lose();
    let storage = disks.b.take().unwrap().into_storage();
    let (pb, b) = open(storage, "b", 8, now);
    pair.b = b;
    disks.b = Some(pb);
    pair.a.connected(now, Side::Dialer);
    pair.b.connected(now, Side::Listener);
    drive(&mut pair, &mut disks);
    let again = received(&mut pair.b, 2);
    assert_eq!(texts(&again), ["m3", "m5"], "4 was processed: never again");
    drive(&mut pair, &mut disks);
    assert_eq!(pair.a.cursors().last_processed, 5);
    assert!(pair.ev_a.iter().any(|e| matches!(
        e,
        Event::LinkUp {
            peer_new_epoch: false,
            ..
        }
    )));
}

#[test]
fn nothing_waits_on_the_wire_before_it_is_durable() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), now).unwrap();
    let (pa, a) = open(SimStorage::new(), "a", 8, now);
    let (pb, b) = open(SimStorage::new(), "b", 8, now);
    pair.a = a;
    pair.b = b;
    let mut disks = Disks {
        a: Some(pa),
        b: Some(pb),
    };
    pair.connect();
    drive(&mut pair, &mut disks);
    pair.a.send(&msg(1)).unwrap();
    // Not committed: no DATA leaves a.
    let mut buf = Vec::new();
    pair.a.poll_transmit(now, &mut buf);
    assert!(buf.is_empty(), "DATA before its record was durable");
    drive(&mut pair, &mut disks);
    let got = received(&mut pair.b, 1);
    assert_eq!(texts(&got), ["m1"]);
    // b's outcome is not announced before b committed it.
    buf.clear();
    pair.b.poll_transmit(now, &mut buf);
    assert!(buf.is_empty(), "outcome before its record was durable");
    drive(&mut pair, &mut disks);
    assert_eq!(pair.a.cursors().last_processed, 1);
}

#[test]
fn a_full_journal_refuses_new_messages_until_space_is_released() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 64), config("b", 64), now).unwrap();
    // Two 4 KiB segments hold about a dozen long messages: far fewer than the ring.
    let small = JournalConfig {
        max_disk_bytes: 2 * 4096,
        ..journal_config()
    };
    let (pa, mut states, _) = Persistence::open(SimStorage::new(), small, &[("a", 64)]).unwrap();
    assert!(states[0].take().is_none());
    pair.a = Endpoint::with_journal(config("a", 64), 0, now).unwrap();
    let mut disks = Disks {
        a: Some(pa),
        b: None,
    };
    let long = |i: u64| {
        let mut m = Message::text("1", "2", &format!("m{i} {}", "x".repeat(600))).unwrap();
        m.client_ref = i;
        m
    };
    let mut sent = 0;
    for i in 1..=64 {
        drive(&mut pair, &mut disks);
        if pair.a.send(&long(i)).is_err() {
            break;
        }
        sent = i;
    }
    assert!(
        sent > 3 && sent < 64,
        "the journal, not the ring, refused ({sent})"
    );
    assert!(pair.a.is_journal_full());
    // The peer takes and processes everything: the journal lets go (a message
    // taken before the journal said full follows), and sends resume.
    pair.connect();
    let mut got = 0;
    for _ in 0..10 {
        drive(&mut pair, &mut disks);
        got += received(&mut pair.b, 64).len() as u64;
    }
    assert_eq!(got, sent);
    assert!(!pair.a.is_journal_full());
    assert!(pair.a.send(&long(1000)).is_ok());
}

#[test]
fn a_full_disk_holds_promises_back_until_the_write_succeeds() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), now).unwrap();
    // Space is taken as bytes are written (no preallocation), so it can run out.
    let mut storage = SimStorage::new();
    storage.set_sparse(true);
    let (mut pa, a) = open(storage, "a", 8, now);
    pair.a = a;
    pair.connect();
    pa.commit(&mut [&mut pair.a], now, |_, _| {}).unwrap();
    // The segment being written is already on disk; the next one cannot be.
    pa.journal_mut().storage_mut().set_free_space(Some(0));
    let mut disks = Disks {
        a: Some(pa),
        b: None,
    };
    let long = |i: u64| Message::text("1", "2", &format!("m{i} {}", "x".repeat(600))).unwrap();
    for i in 1..=8 {
        pair.a.send(&long(i)).unwrap();
    }
    drive(&mut pair, &mut disks);
    let p = disks.a.as_mut().unwrap();
    let report = p.commit(&mut [&mut pair.a], now, |_, _| {}).unwrap();
    assert!(
        report
            .blocked
            .as_deref()
            .is_some_and(|b| b.contains("disk full")),
        "{report:?}"
    );
    let early = received(&mut pair.b, 0).len();
    assert!(early < 8, "sent while not durable");
    p.journal_mut().storage_mut().set_free_space(None);
    drive(&mut pair, &mut disks);
    assert_eq!(early + received(&mut pair.b, 0).len(), 8);
}

#[test]
fn with_an_interval_policy_promises_wait_for_the_next_sync() {
    use std::time::Duration;
    let start = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), start).unwrap();
    let interval = JournalConfig {
        sync: SyncPolicy::Interval(Duration::from_millis(100)),
        ..journal_config()
    };
    let (mut pa, _, _) = Persistence::open(SimStorage::new(), interval, &[("a", 8)]).unwrap();
    pair.a = Endpoint::with_journal(config("a", 8), 0, start).unwrap();
    pair.connect();
    // The first commit syncs (there was no sync yet).
    pa.commit(&mut [&mut pair.a], start, |_, _| {}).unwrap();
    pair.a.send(&msg(1)).unwrap();
    let mut durable = Vec::new();
    pair.now = start + Duration::from_millis(10);
    pa.commit(&mut [&mut pair.a], pair.now, |_, s| durable.extend(s))
        .unwrap();
    assert!(durable.is_empty(), "durable before the sync");
    assert_eq!(
        pa.journal().sync_deadline(),
        Some(start + Duration::from_millis(100))
    );
    pair.drive();
    assert!(received(&mut pair.b, 0).is_empty(), "sent before the sync");
    pair.now = start + Duration::from_millis(100);
    pa.commit(&mut [&mut pair.a], pair.now, |_, s| durable.extend(s))
        .unwrap();
    assert_eq!(durable, [1]);
    pair.drive();
    assert_eq!(texts(&received(&mut pair.b, 0)), ["m1"]);
}

#[test]
fn during_an_outage_messages_overflow_to_disk_and_drain_in_order_after_a_restart() {
    let now = Instant::now();
    let mut pair = Pair::new(config("a", 8), config("b", 8), now).unwrap();
    let (pa, a) = open(SimStorage::new(), "a", 8, now);
    pair.a = a;
    let mut disks = Disks {
        a: Some(pa),
        b: None,
    };
    // The link is down: the ring fills, then the journal takes the rest.
    for i in 1..=30 {
        assert_eq!(pair.a.send(&msg(i)).unwrap(), i);
    }
    drive(&mut pair, &mut disks);
    assert_eq!(pair.a.tx_ring().in_use(), 8);
    assert_eq!(pair.a.backlog(), 22);
    assert_eq!(pair.a.tx_client_ref(20), Some(20));
    // a restarts: its ring takes back 8, the other 22 stay on disk.
    let storage = disks.a.take().unwrap().into_storage();
    let (pa, a) = open(storage, "a", 8, now);
    pair.a = a;
    disks.a = Some(pa);
    assert_eq!(pair.a.tx_ring().in_use(), 8);
    assert_eq!(pair.a.backlog(), 22);
    assert_eq!(pair.a.send(&msg(31)).unwrap(), 31);
    pair.connect();
    let mut got = Vec::new();
    for _ in 0..20 {
        drive(&mut pair, &mut disks);
        got.extend(received(&mut pair.b, 8));
    }
    let want: Vec<String> = (1..=31).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&got), want);
    assert_eq!(pair.a.backlog(), 0);
    assert_eq!(pair.a.cursors().last_processed, 31);
}

#[test]
fn a_commit_takes_only_the_links_it_is_given_and_hands_back_only_theirs() {
    let now = Instant::now();
    let names = [("a", 8), ("b", 8), ("c", 8)];
    let (mut p, _, _) = Persistence::open(SimStorage::new(), journal_config(), &names).unwrap();
    let mut eps: Vec<Endpoint> = names
        .iter()
        .zip(0..)
        .map(|(&(name, capacity), i)| {
            Endpoint::with_journal(config(name, capacity), i, now).unwrap()
        })
        .collect();
    let mut woken = Vec::new();
    {
        let mut all: Vec<&mut Endpoint> = eps.iter_mut().collect();
        p.commit(&mut all, now, |_, _| {}).unwrap();
    }
    p.take_woken(&mut woken);
    woken.clear();
    eps[0].send(&msg(1)).unwrap();
    eps[1].send(&msg(2)).unwrap();
    let mut durable = Vec::new();
    {
        let mut all: Vec<&mut Endpoint> = eps.iter_mut().collect();
        p.commit_links(all.as_mut_slice(), [1], now, |l, s| durable.push((l, s)))
            .unwrap();
    }
    assert_eq!(durable, [(1, 1..2)], "only link b's record was taken");
    p.take_woken(&mut woken);
    assert_eq!(woken, [1], "only link b heard of durable records");
    assert!(
        eps[0].has_records(),
        "link a's record waits for its own commit"
    );
    assert_eq!(
        eps[0].tx_durable(),
        0,
        "link a's message is not durable yet"
    );
    assert!(!eps[1].has_records());
    assert!(!eps[2].has_records());
    durable.clear();
    woken.clear();
    {
        let mut all: Vec<&mut Endpoint> = eps.iter_mut().collect();
        p.commit_links(all.as_mut_slice(), [0], now, |l, s| durable.push((l, s)))
            .unwrap();
    }
    assert_eq!(durable, [(0, 1..2)]);
    p.take_woken(&mut woken);
    assert_eq!(woken, [0]);
    assert_eq!(eps[0].tx_durable(), 1);
}

#[test]
fn a_link_committed_rarely_still_holds_back_the_release_of_its_records() {
    let now = Instant::now();
    let names = [("a1", 8), ("a2", 8)];
    let (mut p, _, _) = Persistence::open(SimStorage::new(), journal_config(), &names).unwrap();
    let mut pinned = Pair::new(config("a1", 8), config("b1", 8), now).unwrap();
    let mut busy = Pair::new(config("a2", 8), config("b2", 8), now).unwrap();
    pinned.a = Endpoint::with_journal(config("a1", 8), 0, now).unwrap();
    busy.a = Endpoint::with_journal(config("a2", 8), 1, now).unwrap();
    pinned.connect();
    busy.connect();
    let commit =
        |p: &mut Persistence<SimStorage>, pinned: &mut Pair, busy: &mut Pair, touched: &[usize]| {
            let mut all = [&mut pinned.a, &mut busy.a];
            p.commit_links(&mut all[..], touched.iter().copied(), now, |_, _| {})
                .unwrap();
        };
    commit(&mut p, &mut pinned, &mut busy, &[0, 1]);
    // a1's message reaches b1, which does not process it: its record is needed.
    pinned.a.send(&msg(1)).unwrap();
    for _ in 0..10 {
        commit(&mut p, &mut pinned, &mut busy, &[0]);
        pinned.exchange().unwrap();
        pinned.collect();
    }
    assert_eq!(received(&mut pinned.b, 0).len(), 1);
    let first = p.journal().first_lsn();
    // Only a2 works from here on, through many segments.
    for i in 0..300 {
        busy.a.send(&msg(i)).unwrap();
        for _ in 0..4 {
            commit(&mut p, &mut pinned, &mut busy, &[1]);
            busy.exchange().unwrap();
            busy.collect();
            received(&mut busy.b, usize::MAX);
        }
    }
    assert_eq!(busy.a.cursors().last_processed, 300);
    assert_eq!(p.journal().first_lsn(), first, "a1's record was released");
    assert!(p.journal().segment_count() > 3);
    // b1 processes it; its outcome comes back, and a2's segments can go.
    pinned.b.mark_processed(1, Outcome::Accepted).unwrap();
    for _ in 0..10 {
        commit(&mut p, &mut pinned, &mut busy, &[0]);
        pinned.exchange().unwrap();
        pinned.collect();
    }
    assert_eq!(pinned.a.cursors().last_processed, 1);
    assert!(p.journal().first_lsn() > first, "nothing was released");
    assert!(p.journal().segment_count() <= 3);
}
