//! Crash simulation of two journaled link endpoints, one seeded run per seed.
//!
//! Each end is a process with an endpoint and a journal on a `SimStorage`; both
//! send to each other and take what arrives, through a `Wire` in virtual time. At
//! random instants one end crashes (its simulated disk loses what was not synced
//! and may tear the last write; its connection is reset) and restarts from its
//! journal a little later: `Persistence::open`, then `Endpoint::restore`.
//!
//! The applications outlive the processes (a C SMSC program, a database-backed IM
//! backend): a source keeps a message in its outbox until the node reports it
//! durable (or shows it restored after a restart), and offers it again otherwise;
//! a sink records what it is handed and acknowledges (`mark_processed`) in any order.
//!
//! Invariants, on every seed:
//! * nothing is lost: once faults stop, every message every source offered has
//!   reached the other sink;
//! * order: the first delivery of each message comes in the order it was offered;
//! * no duplicates for an acknowledgement the node made durable: a message is
//!   delivered again only after a crash of the receiving end wiped its
//!   acknowledgement before it was durable (counted);
//! * a source never learns a message is durable and then sees it lost.
//!
//! With an SMSC (the second test), the server end is a buffer server: a
//! [`Bridge`] between its endpoint and an SMSC that outlives it (a model of the
//! SMSC's side, spoken to through the bridge's `SmscClient` interface). Its MO are
//! the server's messages, its accepted submits the server's sink. Then also:
//! * every MO the SMSC got a positive answer for reaches the IM application;
//! * every MT the IM side reported durable reaches the SMSC; the SMSC gets one
//!   twice only when a crash struck while it was being submitted or before its
//!   answer was durable (at most two per crash, one submit at a time), and the
//!   bridge counted at least as many resubmits after restarts.
//!
//! Sources keep offering while the link is down: beyond the ring (8 slots) their
//! messages overflow to disk and come back into the ring as it frees slots,
//! across crashes too.
//!
//! `SMSLINK_JOURNAL_SIM_SEEDS=N` runs N seeds per test (default 500); `SMSLINK_JOURNAL_SIM_SEED=S`
//! runs only seed S.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smslink::bridge::{Bridge, BridgeConfig};
use smslink::journal::{JournalConfig, SimStorage, SyncPolicy};
use smslink::link::persist::Persistence;
use smslink::link::{Endpoint, Event, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::sim::{Arrival, Clock, End, Rng, Wire, WireConfig};
use smslink::smsc::{ConnIndex, MoAnswer, MoToken, SmscClient, SmscEvent, SubmitError, SubmitId};

const PSK: &[u8] = b"journal link sim";
const CAPACITY: usize = 8;
const MESSAGES: u64 = 60;

fn journal_config() -> JournalConfig {
    JournalConfig {
        segment_size: 4096,
        max_disk_bytes: 4 << 20,
        sync: SyncPolicy::Always,
        ..JournalConfig::default()
    }
}

fn link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.capacity = CAPACITY;
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_millis(700);
    c
}

fn message(from: End, id: u64) -> Message {
    let mut m = Message::text("1", "2", &format!("{from:?}{id}")).expect("valid message");
    m.client_ref = id;
    m
}

fn id_of(m: &Message) -> u64 {
    m.text_str()
        .and_then(|t| t[1..].parse().ok())
        .expect("a simulation message")
}

struct Process {
    ep: Endpoint,
    journal: Persistence<SimStorage>,
    /// On a buffer server: the bridge to the SMSC.
    bridge: Option<Bridge>,
}

/// The SMSC's side of its session with a buffer server: it outlives the buffer
/// server's process. MO go out one at a time (stop-and-wait) until answered;
/// submits are accepted after a short while.
#[derive(Default)]
struct SmscModel {
    open: bool,
    events: VecDeque<SmscEvent>,
    /// Next MO to deliver (from 1), and whether it waits for its answer.
    mo_next: u64,
    mo_in_flight: bool,
    /// The submit in progress: (bridge's id, MT id, when the SMSC accepts it).
    pending: Option<(SubmitId, u64, Instant)>,
    /// Accepted submits per MT id.
    accepted: HashMap<u64, u32>,
}

#[derive(Clone)]
struct Smsc(Arc<Mutex<SmscModel>>);

impl Smsc {
    fn new() -> Self {
        Smsc(Arc::new(Mutex::new(SmscModel {
            mo_next: 1,
            ..SmscModel::default()
        })))
    }

    fn model(&self) -> MutexGuard<'_, SmscModel> {
        self.0.lock().expect("smsc model")
    }

    fn tick(&self, now: Instant) {
        let mut m = self.model();
        if !m.open {
            return;
        }
        if !m.mo_in_flight && m.mo_next <= MESSAGES {
            let id = m.mo_next;
            m.mo_in_flight = true;
            m.events.push_back(SmscEvent::Mo {
                token: MoToken(id as u32),
                message: Box::new(message(End::A, id)),
            });
        }
        if let Some((id, mt, at)) = m.pending {
            if at <= now {
                m.pending = None;
                *m.accepted.entry(mt).or_default() += 1;
                m.events
                    .push_back(SmscEvent::Accepted { id, smsc_id: None });
            }
        }
    }

    /// The buffer server died: an unanswered MO is delivered again later; a submit
    /// without answer may have been taken.
    fn lost_client(&self, rng: &mut Rng) {
        let mut m = self.model();
        m.open = false;
        m.mo_in_flight = false;
        m.events.clear();
        if let Some((_, mt, _)) = m.pending.take() {
            if rng.bool() {
                *m.accepted.entry(mt).or_default() += 1;
            }
        }
    }
}

impl SmscClient for Smsc {
    fn protocol(&self) -> &'static str {
        "model"
    }
    fn connected(&mut self, _conn: ConnIndex, _now: Instant) {
        let mut m = self.model();
        m.open = true;
        m.events.push_back(SmscEvent::Up);
    }
    fn connection_lost(&mut self, _conn: ConnIndex, _now: Instant) {}
    fn handle_input(&mut self, _conn: ConnIndex, _bytes: &[u8], _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn submit_room(&self) -> usize {
        let m = self.model();
        usize::from(m.open && m.pending.is_none())
    }
    fn submit(&mut self, id: SubmitId, message: &Message, now: Instant) -> Result<(), SubmitError> {
        let mut m = self.model();
        let delay = Duration::from_millis(1 + id % 7);
        m.pending = Some((id, id_of(message), now + delay));
        Ok(())
    }
    fn answer(&mut self, token: MoToken, answer: MoAnswer, _now: Instant) {
        let mut m = self.model();
        if m.mo_in_flight && u64::from(token.0) == m.mo_next {
            m.mo_in_flight = false;
            if answer == MoAnswer::Accept {
                m.mo_next += 1;
            }
        }
    }
    fn logout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, _conn: ConnIndex, _buf: &mut Vec<u8>) -> usize {
        0
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<SmscEvent> {
        self.model().events.pop_front()
    }
    fn is_open(&self) -> bool {
        self.model().open
    }
}

fn new_bridge(smsc: &Smsc, now: Instant) -> Bridge {
    let mut bridge = Bridge::new(Box::new(smsc.clone()), BridgeConfig::default());
    bridge.smsc_connected(0, now);
    bridge
}

/// What the sink knows about one message it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// Handed over, not acknowledged.
    Delivered,
    /// Acknowledged; the record is not known durable.
    Acked,
    /// Acknowledged and committed: must never come again.
    Durable,
    /// The receiving end crashed before the acknowledgement was durable: may come again.
    MayRepeat,
}

struct Side {
    end: End,
    name: &'static str,
    peer: &'static str,
    process: Option<Process>,
    /// The disk while the process is down, and when it comes back.
    disk: Option<SimStorage>,
    restart_at: Option<Instant>,
    // Source application.
    next_id: u64,
    outbox: VecDeque<u64>,
    /// Sent, not yet durable: (seq, id), in seq order.
    in_flight: VecDeque<(u64, u64)>,
    durable: Vec<u64>,
    /// Which message each seq carries, as the source last sent it.
    assigned: HashMap<u64, u64>,
    // Sink application (of the other side's messages).
    got: HashMap<u64, Got>,
    /// (seq, message) of each first delivery, in delivery order.
    first: Vec<(u64, u64)>,
    to_ack: Vec<u64>,
    acked_now: Vec<u64>,
    repeats: u64,
    crashes: u64,
    /// A buffer server: its SMSC, and the bridge's resubmits after restarts, summed
    /// over its incarnations.
    smsc: Option<Smsc>,
    resubmitted_after_restart: u64,
}

impl Side {
    fn new(
        end: End,
        name: &'static str,
        peer: &'static str,
        smsc: Option<Smsc>,
        now: Instant,
    ) -> Self {
        let (journal, states, _) =
            Persistence::open(SimStorage::new(), journal_config(), &[(name, CAPACITY)])
                .expect("open");
        assert!(states[0].is_none());
        let ep = Endpoint::with_journal(link_config(name, peer), 0, now).expect("config");
        let bridge = smsc.as_ref().map(|s| new_bridge(s, now));
        Side {
            end,
            name,
            peer,
            process: Some(Process {
                ep,
                journal,
                bridge,
            }),
            disk: None,
            restart_at: None,
            next_id: 1,
            outbox: VecDeque::new(),
            in_flight: VecDeque::new(),
            durable: Vec::new(),
            assigned: HashMap::new(),
            got: HashMap::new(),
            first: Vec::new(),
            to_ack: Vec::new(),
            acked_now: Vec::new(),
            repeats: 0,
            crashes: 0,
            smsc,
            resubmitted_after_restart: 0,
        }
    }

    fn crash(&mut self, rng: &mut Rng, now: Instant) {
        let Some(p) = self.process.take() else {
            return;
        };
        if let (Some(smsc), Some(bridge)) = (&self.smsc, &p.bridge) {
            self.resubmitted_after_restart += bridge.stats().resubmitted_after_restart;
            smsc.lost_client(rng);
        }
        let mut disk = p.journal.into_storage();
        let mut draw = || rng.next_u64();
        disk.crash(&mut draw);
        self.disk = Some(disk);
        self.restart_at = Some(now + rng.millis(1..400));
        self.crashes += 1;
        // The source offers again what was not reported durable (after a look at
        // what the restarted node kept, in `restart`).
        // The sink: what was not durably acknowledged may come again.
        for got in self.got.values_mut() {
            if matches!(got, Got::Delivered | Got::Acked) {
                *got = Got::MayRepeat;
            }
        }
        self.to_ack.clear();
        self.acked_now.clear();
    }

    fn restart(&mut self, rng: &mut Rng, now: Instant, seed: u64) {
        let Some(disk) = self.disk.take() else {
            return;
        };
        self.restart_at = None;
        let (journal, mut states, _) =
            Persistence::open(disk, journal_config(), &[(self.name, CAPACITY)])
                .unwrap_or_else(|e| panic!("seed {seed}: {} reopens its journal: {e}", self.name));
        let config = link_config(self.name, self.peer);
        let ep = match states[0].take() {
            Some(state) => Endpoint::restore(config, 0, state, now)
                .unwrap_or_else(|e| panic!("seed {seed}: restore {}: {e}", self.name)),
            None => Endpoint::with_journal(config, 0, now).expect("config"),
        };
        // Messages the node kept are durable; the others go back to the outbox, in order.
        let ring = ep.tx_ring();
        let c = ring.cursors();
        let kept: Vec<u64> = (c.last_processed + 1..=c.last_retrieved)
            .filter_map(|s| ring.slot(s).map(|slot| slot.message.client_ref))
            .collect();
        let mut lost = Vec::new();
        for (_, id) in self.in_flight.drain(..) {
            if kept.contains(&id) {
                self.durable.push(id);
            } else {
                lost.push(id);
            }
        }
        // An application may offer them again at once, or after newer ones: a
        // seq the node forgot then carries another message.
        if rng.bool() {
            for id in lost.into_iter().rev() {
                self.outbox.push_front(id);
            }
        } else {
            self.outbox.extend(lost);
        }
        let bridge = self.smsc.as_ref().map(|s| new_bridge(s, now));
        self.process = Some(Process {
            ep,
            journal,
            bridge,
        });
    }
}

struct Sim {
    seed: u64,
    rng: Rng,
    clock: Clock,
    wire: Wire,
    sides: [Side; 2],
    buf: Vec<u8>,
    connect_at: Option<Instant>,
    /// Messages that waited on disk beyond a full ring (overflow), at most at once.
    max_backlog: u64,
}

impl Sim {
    fn new(seed: u64, with_smsc: bool) -> Self {
        let mut rng = Rng::new(seed);
        let clock = Clock::new(Instant::now());
        let now = clock.now();
        let config = WireConfig {
            latency: rng.millis(0..20),
            jitter: rng.millis(0..5),
            bandwidth: None,
            split_writes: rng.bool(),
        };
        let wire = Wire::new(config, rng.fork(), now);
        Sim {
            seed,
            rng,
            clock,
            wire,
            sides: [
                Side::new(End::A, "server", "im", with_smsc.then(Smsc::new), now),
                Side::new(End::B, "im", "server", None, now),
            ],
            buf: Vec::new(),
            connect_at: Some(now),
            max_backlog: 0,
        }
    }

    /// Bring up a connection when both ends run and neither holds one.
    fn manage_connection(&mut self, now: Instant) {
        for end in End::BOTH {
            if let Some(p) = &mut self.sides[end.index()].process {
                if !p.ep.is_connected() && self.wire.is_open(end) {
                    // It gave the connection up (timeout, protocol): the other end sees a reset.
                    self.wire.cut(now);
                }
            }
        }
        let idle = End::BOTH.iter().all(|&e| {
            self.sides[e.index()]
                .process
                .as_ref()
                .is_some_and(|p| !p.ep.is_connected())
        });
        if idle && self.connect_at.is_none() {
            self.connect_at = Some(now + self.rng.millis(0..100));
        }
        if idle && self.connect_at.is_some_and(|t| t <= now) && self.wire.connect(now) {
            self.connect_at = None;
            for side in &mut self.sides {
                if let Some(p) = &mut side.process {
                    p.ep.connected(now);
                }
            }
        }
    }

    fn arrivals(&mut self, now: Instant) {
        while let Some((end, arrival)) = self.wire.poll_arrival(now, &mut self.buf) {
            let Some(p) = &mut self.sides[end.index()].process else {
                continue;
            };
            match arrival {
                Arrival::Bytes => {
                    let _ = p.ep.handle_input(&self.buf, now);
                }
                Arrival::Fin | Arrival::Reset => p.ep.connection_lost(now),
            }
        }
    }

    fn applications(&mut self, i: usize, faults: bool) {
        let seed = self.seed;
        let side = &mut self.sides[i];
        let Some(p) = &mut side.process else {
            return;
        };
        if let (Some(smsc), Some(bridge)) = (&side.smsc, &mut p.bridge) {
            // A buffer server: the SMSC is source and sink, through the bridge.
            let now = self.clock.now();
            smsc.tick(now);
            bridge.handle_timeout(now);
            bridge.poll(&mut p.ep, now);
            return;
        }
        // Source: offer new messages while there are ids left.
        while side.outbox.len() < 4 && side.next_id <= MESSAGES {
            side.outbox.push_back(side.next_id);
            side.next_id += 1;
        }
        while let Some(&id) = side.outbox.front() {
            match p.ep.send(&message(side.end, id)) {
                Ok(seq) => {
                    side.outbox.pop_front();
                    side.in_flight.push_back((seq, id));
                    side.assigned.insert(seq, id);
                }
                Err(_) => break,
            }
        }
        // Sink: take what arrived, acknowledge some (any order).
        while let Some((seq, m)) = p.ep.next_received() {
            let id = id_of(m);
            match side.got.get(&id) {
                None => {
                    if let Some(&(last, _)) = side.first.last() {
                        assert!(
                            seq > last,
                            "seed {seed}: {} got seq {seq} after {last}",
                            side.name
                        );
                    }
                    side.first.push((seq, id));
                }
                Some(Got::MayRepeat) => side.repeats += 1,
                Some(g) => panic!(
                    "seed {seed}: {} got message {id} again (seq {seq}) although it was {g:?}",
                    side.name
                ),
            }
            side.got.insert(id, Got::Delivered);
            side.to_ack.push(seq);
        }
        let keep = if faults { self.rng.usize(0..3) } else { 0 };
        while side.to_ack.len() > keep {
            let k = self.rng.usize(0..side.to_ack.len());
            let seq = side.to_ack.swap_remove(k);
            let id =
                p.ep.rx_ring()
                    .slot(seq)
                    .map(|s| id_of(&s.message))
                    .expect("delivered slot");
            p.ep.mark_processed(seq, Outcome::Accepted)
                .unwrap_or_else(|e| panic!("seed {seed}: ack {seq}: {e}"));
            side.got.insert(id, Got::Acked);
            side.acked_now.push(id);
        }
    }

    fn commit(&mut self, i: usize, now: Instant) {
        let seed = self.seed;
        let side = &mut self.sides[i];
        let Some(p) = &mut side.process else {
            return;
        };
        let in_flight = &mut side.in_flight;
        let durable = &mut side.durable;
        p.journal
            .commit(&mut [&mut p.ep], now, |_, seqs| {
                while in_flight.front().is_some_and(|(s, _)| seqs.contains(s)) {
                    if let Some((_, id)) = in_flight.pop_front() {
                        durable.push(id);
                    }
                }
            })
            .unwrap_or_else(|e| panic!("seed {seed}: commit: {e}"));
        for id in side.acked_now.drain(..) {
            side.got.insert(id, Got::Durable);
        }
        if let Some(bridge) = &mut p.bridge {
            // What waited for the commit: answers to the SMSC.
            bridge.poll(&mut p.ep, now);
        }
    }

    fn transmit(&mut self, i: usize, now: Instant) {
        let end = self.sides[i].end;
        let Some(p) = &mut self.sides[i].process else {
            return;
        };
        p.ep.handle_timeout(now);
        self.buf.clear();
        p.ep.poll_transmit(now, &mut self.buf);
        while let Some(ev) = p.ep.poll_event() {
            if let Event::LinkDown { .. } = ev {
                // Flush a CLOSE, then the socket is closed.
                p.ep.poll_transmit(now, &mut self.buf);
            }
        }
        if !self.buf.is_empty() {
            self.wire.write(end, &self.buf, now);
        }
    }

    fn step(&mut self, faults: bool) {
        let now = self.clock.now();
        for i in 0..2 {
            if self.sides[i].restart_at.is_some_and(|t| t <= now) {
                self.sides[i].restart(&mut self.rng, now, self.seed);
            }
        }
        self.manage_connection(now);
        self.arrivals(now);
        // A crash strikes at one of three points of a turn: after the inputs,
        // after the commit, after the output.
        let crash =
            (faults && self.rng.one_in(60)).then(|| (self.rng.usize(0..2), self.rng.usize(0..3)));
        for i in 0..2 {
            self.applications(i, faults);
            if let Some(p) = &self.sides[i].process {
                self.max_backlog = self.max_backlog.max(p.ep.backlog());
            }
            // A driver may write before its commit (the runtime writes on socket
            // readiness): the endpoint itself must hold back what is not durable.
            if self.rng.bool() {
                self.transmit(i, now);
            }
            if crash == Some((i, 0)) {
                self.crash_side(i, now);
                continue;
            }
            self.commit(i, now);
            if crash == Some((i, 1)) {
                self.crash_side(i, now);
                continue;
            }
            self.transmit(i, now);
            if crash == Some((i, 2)) {
                self.crash_side(i, now);
            }
        }
        let tick = self.rng.millis(1..15);
        self.clock.advance(tick);
    }

    fn crash_side(&mut self, i: usize, now: Instant) {
        let end = self.sides[i].end;
        self.sides[i].crash(&mut self.rng, now);
        // The kernel closes the dead process's socket: what it wrote still
        // arrives, then the end of the stream (or, at random, a reset).
        if self.wire.is_open(end) {
            if self.rng.bool() {
                self.wire.close(end, now);
            } else {
                self.wire.cut(now);
            }
        }
    }

    fn done(&self) -> bool {
        self.sides.iter().all(|s| {
            let Some(p) = &s.process else {
                return false;
            };
            match (&s.smsc, &p.bridge) {
                (Some(smsc), Some(bridge)) => {
                    let m = smsc.model();
                    m.mo_next > MESSAGES && m.pending.is_none() && bridge.is_idle()
                }
                _ => s.outbox.is_empty() && s.in_flight.is_empty() && s.next_id > MESSAGES,
            }
        }) && self.sides.iter().all(|s| {
            s.process
                .as_ref()
                .is_some_and(|p| p.ep.tx_ring().in_use() == 0 && p.ep.rx_ring().in_use() == 0)
        })
    }

    fn run(&mut self) {
        let fault_steps = self.rng.usize(100..600);
        for _ in 0..fault_steps {
            self.step(true);
        }
        // Faults stop: every process comes back and everything drains.
        let limit = self.clock.now() + Duration::from_secs(60);
        while !self.done() {
            assert!(
                self.clock.now() < limit,
                "seed {}: did not drain: {:?} / {:?}",
                self.seed,
                self.sides.each_ref().map(|s| (
                    s.name,
                    s.outbox.len(),
                    s.in_flight.len(),
                    s.process.as_ref().map(|p| (
                        p.ep.tx_cursors(),
                        p.ep.rx_cursors(),
                        p.ep.is_up()
                    ))
                )),
                self.sides.each_ref().map(|s| s.got.len()),
            );
            for i in 0..2 {
                if self.sides[i].restart_at.is_some() {
                    self.sides[i].restart_at = Some(self.clock.now());
                }
            }
            self.step(false);
        }
        for i in 0..2 {
            let (sink, source) = (&self.sides[i], &self.sides[1 - i]);
            if let Some(smsc) = &sink.smsc {
                self.check_smsc(sink, smsc);
            } else {
                assert_eq!(
                    sink.got.len() as u64,
                    MESSAGES,
                    "seed {}: {} got {} of {MESSAGES}",
                    self.seed,
                    sink.name,
                    sink.got.len()
                );
            }
            if source.smsc.is_none() {
                assert_eq!(source.durable.len() as u64, MESSAGES, "seed {}", self.seed);
            }
            // Everything is processed: the journal keeps only the segments that hold
            // the last outcomes (a ring's worth) and the one being written.
            let segments = sink
                .process
                .as_ref()
                .map(|p| p.journal.journal().segment_count());
            assert!(
                segments.is_some_and(|n| n <= 3),
                "seed {}: {} keeps {segments:?} segments",
                self.seed,
                sink.name
            );
            // Each seq carried one message: the one its sender made durable.
            let assigned = if source.smsc.is_some() {
                &[][..]
            } else {
                &sink.first[..]
            };
            for &(seq, id) in assigned {
                assert_eq!(
                    source.assigned.get(&seq),
                    Some(&id),
                    "seed {}: {} got message {id} as seq {seq}, which the sender made durable with another",
                    self.seed,
                    sink.name
                );
            }
        }
    }
}

impl Sim {
    /// Every MT reached the SMSC; one reached it twice only when the SMSC took its
    /// submit as the buffer server died, and the bridge counted that resubmit.
    fn check_smsc(&self, server: &Side, smsc: &Smsc) {
        let seed = self.seed;
        let m = smsc.model();
        let missing: Vec<u64> = (1..=MESSAGES)
            .filter(|id| !m.accepted.contains_key(id))
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: MT {missing:?} never reached the SMSC"
        );
        let repeats: u64 = m.accepted.values().map(|&n| u64::from(n) - 1).sum();
        // Per crash: the submit in progress, and the one whose answer the bridge
        // had not made durable yet (one submit at a time).
        assert!(
            repeats <= 2 * server.crashes,
            "seed {seed}: the SMSC got {repeats} MT twice across {} crashes",
            server.crashes
        );
        let counted = server.resubmitted_after_restart
            + server
                .process
                .as_ref()
                .and_then(|p| p.bridge.as_ref())
                .map_or(0, |b| b.stats().resubmitted_after_restart);
        assert!(
            counted >= repeats,
            "seed {seed}: {repeats} MT repeated at the SMSC, {counted} counted"
        );
    }
}

fn seeds() -> Vec<u64> {
    let one = std::env::var("SMSLINK_JOURNAL_SIM_SEED").ok();
    if let Some(s) = one {
        let s = s.trim();
        let v = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        };
        return vec![v.expect("a seed")];
    }
    let n = std::env::var("SMSLINK_JOURNAL_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500u64);
    (0..n).map(|i| 0x10_0000_0000 + i).collect()
}

#[test]
fn crashes_of_either_end_lose_and_repeat_nothing_acknowledged() {
    run_seeds(false);
}

#[test]
fn crashes_of_a_buffer_server_or_the_im_side_lose_nothing_confirmed() {
    run_seeds(true);
}

fn run_seeds(with_smsc: bool) {
    let mut crashes = 0;
    let mut repeats = 0;
    let mut backlog = 0;
    for seed in seeds() {
        let mut sim = Sim::new(seed, with_smsc);
        sim.run();
        backlog = backlog.max(sim.max_backlog);
        crashes += sim.sides.iter().map(|s| s.crashes).sum::<u64>();
        repeats += sim.sides.iter().map(|s| s.repeats).sum::<u64>();
    }
    // The runs must have crashed the ends and overflowed rings to disk, or they
    // proved nothing.
    assert!(crashes > 0);
    assert!(backlog > 0);
    eprintln!("journal link sim: {crashes} crashes, {repeats} unacknowledged repeats, backlog up to {backlog}");
}
