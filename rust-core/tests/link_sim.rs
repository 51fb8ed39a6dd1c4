//! Deterministic simulator: two link endpoints joined by a simulated connection
//! (`smslink::sim::Wire`) in virtual time, under latency, jitter, bandwidth limits,
//! cuts (also mid-frame), half-open connections, long outages and restarted peers,
//! with traffic both ways.
//!
//! Each seed is one run; the checks are the product's promises: every accepted
//! message delivered downstream exactly once and in order (per direction), nothing
//! to the wrong side, every slot Processed at the end with the outcome the receiver
//! chose, and the cursors of both ends converged.
//!
//! `SMSLINK_SIM_SEEDS=N` runs N seeds per scenario instead of the default; a failure
//! names its scenario and seed.

use smslink::link::{self, DownReason, Endpoint, Event, LinkConfig};
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::sim::{Arrival, Clock, End, Rng, Wire, WireConfig};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PSK: &[u8] = b"simulated pre-shared key";
const DEFAULT_SEEDS: u64 = 750;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    name: &'static str,
    cuts: bool,
    half_open: bool,
    outages: bool,
    restart: bool,
}

#[derive(Default)]
struct Log {
    /// (origin incarnation, id, receiving incarnation), in delivery order.
    delivered: Vec<(u8, u64, u8)>,
    /// Per own incarnation: seqs that reached Processed, with outcome and client_ref.
    processed: HashMap<(u8, u64), (Outcome, u64)>,
    /// Per own incarnation: how many messages the source got accepted.
    accepted: Vec<u64>,
}

struct Side {
    id: u8,
    ep: Endpoint,
    incarnation: u8,
    next_id: u64,
    n_msgs: u64,
    next_source_at: Instant,
    mean_gap_ms: u64,
    to_process: Vec<(Instant, u64, Outcome)>,
    log: Log,
}

fn rule(id: u64) -> Outcome {
    if id % 7 == 3 {
        Outcome::Rejected {
            code: (id % 90) as u32 + 1,
        }
    } else {
        Outcome::Accepted
    }
}

fn payload(side: u8, inc: u8, id: u64) -> [u8; 10] {
    let mut p = [0u8; 10];
    p[0] = side;
    p[1] = inc;
    p[2..].copy_from_slice(&id.to_be_bytes());
    p
}

/// Side 0 (the buffer server, which dials) is the wire's end A, side 1 end B.
fn end(side: usize) -> End {
    End::BOTH[side]
}

struct Sim {
    rng: Rng,
    sc: Scenario,
    clock: Clock,
    wire: Wire,
    sides: [Side; 2],
    config: [LinkConfig; 2],
    next_dial: Option<Instant>,
    next_fault: Instant,
    traffic_end: Instant,
    restart_at: Option<Instant>,
    buf: Vec<u8>,
    stats: Stats,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    messages: u64,
    cuts: u64,
    half_opens: u64,
    outages: u64,
    restarts: u64,
    link_ups: u64,
    resent: u64,
    virtual_ms: u64,
}

impl Sim {
    fn new(seed: u64, sc: Scenario) -> Self {
        let mut rng = Rng::new(seed);
        let clock = Clock::new(Instant::now());
        let start = clock.now();
        let capacity = *rng.pick(&[3usize, 8, 32, 255]).unwrap_or(&255);
        let mk = |name: &str, cap: usize| {
            let mut c = LinkConfig::new(name, PSK);
            c.capacity = cap;
            c.heartbeat_interval = ms(300);
            c.dead_after = ms(1000);
            c.max_transmit = 4096;
            c
        };
        // Capacities may differ between the ends.
        let cap_b = if rng.bool() {
            capacity
        } else {
            rng.usize(2..64)
        };
        let config = [mk("buffer-server", capacity), mk("im-server", cap_b)];
        let side = |id: u8, rng: &mut Rng, config: &LinkConfig| Side {
            id,
            ep: Endpoint::new(config.clone(), start).expect("valid config"),
            incarnation: 0,
            next_id: 0,
            n_msgs: rng.u64(20..300),
            next_source_at: start,
            mean_gap_ms: rng.u64(1..20),
            to_process: vec![],
            log: Log {
                accepted: vec![0],
                ..Log::default()
            },
        };
        let sides = [side(0, &mut rng, &config[0]), side(1, &mut rng, &config[1])];
        let wire_config = WireConfig {
            latency: rng.millis(1..150),
            jitter: rng.millis(0..30),
            bandwidth: Some(rng.u64(20..5000) * 1000),
            split_writes: true,
        };
        let wire = Wire::new(wire_config, rng.fork(), start);
        let traffic_end = start + rng.millis(3_000..12_000);
        let restart_at = sc
            .restart
            .then(|| start + rng.millis(200..(traffic_end - start).as_millis() as u64));
        let next_fault = start + rng.millis(50..2500);
        Sim {
            next_fault,
            rng,
            sc,
            clock,
            wire,
            sides,
            config,
            next_dial: Some(start),
            traffic_end,
            restart_at,
            buf: Vec::with_capacity(8192),
            stats: Stats::default(),
        }
    }

    fn any_faults(&self) -> bool {
        self.sc.cuts || self.sc.half_open || self.sc.outages
    }

    fn run(&mut self) -> Stats {
        let deadline = self.traffic_end + Duration::from_secs(300);
        loop {
            self.step();
            let now = self.clock.now();
            if now > self.traffic_end && self.finished() {
                break;
            }
            assert!(
                now < deadline,
                "{}: no convergence: {:?} / {:?}, a {:?} {:?}, b {:?} {:?}",
                self.sc.name,
                self.sides[0].ep,
                self.sides[1].ep,
                self.sides[0].ep.cursors(),
                self.sides[0].ep.rx_cursors(),
                self.sides[1].ep.cursors(),
                self.sides[1].ep.rx_cursors(),
            );
        }
        self.stats.virtual_ms = self.clock.elapsed().as_millis() as u64;
        self.stats.resent = self.sides.iter().map(|s| s.ep.counters().data_resent).sum();
        self.stats
    }

    fn finished(&self) -> bool {
        self.sides.iter().all(|s| {
            let c = s.ep.cursors();
            let r = s.ep.rx_cursors();
            s.next_id == s.n_msgs
                && c.last_processed == c.last_retrieved
                && s.to_process.is_empty()
                && r.last_processed == r.last_stored
        })
    }

    fn next_event_time(&self) -> Instant {
        let now = self.clock.now();
        let mut t = now + Duration::from_secs(1);
        let mut consider = |x: Instant| {
            if x < t {
                t = x;
            }
        };
        if let Some(x) = self.wire.next_arrival() {
            consider(x);
        }
        for s in &self.sides {
            if let Some(x) = s.ep.poll_timeout() {
                consider(x);
            }
            if s.next_id < s.n_msgs {
                consider(s.next_source_at);
            }
            for (due, _, _) in &s.to_process {
                consider(*due);
            }
        }
        if now < self.traffic_end && self.any_faults() {
            consider(self.next_fault);
        }
        if let Some(d) = self.next_dial {
            consider(d.max(self.wire.outage_until(now).unwrap_or(d)));
        }
        if let Some(r) = self.restart_at {
            consider(r);
        }
        t.max(now)
    }

    fn step(&mut self) {
        self.clock.advance_to(self.next_event_time());
        let now = self.clock.now();
        if let Some(r) = self.restart_at {
            if now >= r {
                self.restart_at = None;
                let victim = self.rng.usize(0..2);
                self.restart(victim);
            }
        }
        if now < self.traffic_end && self.any_faults() && now >= self.next_fault {
            self.fault();
            self.next_fault = now + self.rng.millis(100..3000);
        }
        if let Some(d) = self.next_dial {
            if now >= d && self.wire.outage_until(now).is_none() {
                self.dial();
            }
        }
        self.deliver();
        for i in 0..2 {
            self.sides[i].ep.handle_timeout(now);
            self.app(i);
        }
        for _ in 0..4 {
            for i in 0..2 {
                self.events(i);
                self.transmit(i);
            }
        }
    }

    fn restart(&mut self, i: usize) {
        let now = self.clock.now();
        self.stats.restarts += 1;
        // The dying process's socket resets; what was in flight reaches whoever is
        // left (the survivor is told below, like the runtime on a reset).
        self.wire.cut(now);
        self.deliver();
        let s = &mut self.sides[i];
        s.ep = Endpoint::new(self.config[i].clone(), now).expect("valid config");
        s.incarnation += 1;
        s.next_id = 0;
        s.to_process.clear();
        s.log.accepted.push(0);
        s.n_msgs = self.rng.u64(10..100);
        self.sides[1 - i].ep.connection_lost(now);
        self.schedule_dial();
    }

    fn schedule_dial(&mut self) {
        if self.next_dial.is_none() {
            self.next_dial = Some(self.clock.now() + self.rng.millis(20..500));
        }
    }

    fn fault(&mut self) {
        if !self.wire.is_connected() {
            return;
        }
        let mut kinds = vec![];
        if self.sc.cuts {
            kinds.push(0);
        }
        if self.sc.half_open {
            kinds.push(1);
        }
        if self.sc.outages {
            kinds.push(2);
        }
        match self.rng.pick(&kinds).copied().unwrap_or(0) {
            0 => {
                self.stats.cuts += 1;
                self.wire.cut(self.clock.now());
            }
            1 => {
                self.stats.half_opens += 1;
                match self.rng.u32(0..3) {
                    0 => self.wire.half_open(End::A),
                    1 => self.wire.half_open(End::B),
                    _ => {
                        self.wire.half_open(End::A);
                        self.wire.half_open(End::B);
                    }
                }
            }
            _ => {
                self.stats.outages += 1;
                let until = self.clock.now() + self.rng.millis(2_000..15_000);
                self.wire.outage(self.clock.now(), until);
            }
        }
        // A cut is noticed at once: its resets are due now.
        self.deliver();
    }

    fn dial(&mut self) {
        let now = self.clock.now();
        if self.wire.is_open(End::A) {
            self.next_dial = None;
            return;
        }
        // The acceptor drops a socket it still had (half-open) before taking the new
        // one, and handles that connection's LinkDown first.
        for i in 0..2 {
            if self.wire.is_open(end(i)) {
                self.sides[i].ep.connection_lost(now);
            }
            self.events(i);
        }
        self.next_dial = None;
        // A new TCP connection: whatever was left of the old one is gone.
        if !self.wire.connect(now) {
            self.schedule_dial();
            return;
        }
        self.sides[0].ep.connected(now, link::Side::Dialer);
        self.sides[1].ep.connected(now, link::Side::Listener);
    }

    fn deliver(&mut self) {
        let now = self.clock.now();
        while let Some((to, arrival)) = self.wire.poll_arrival(now, &mut self.buf) {
            let ep = &mut self.sides[to.index()].ep;
            match arrival {
                Arrival::Bytes => {
                    let _ = ep.handle_input(&self.buf, now);
                }
                // EOF or a reset: the runtime reports the connection lost.
                Arrival::Fin | Arrival::Reset => {
                    ep.connection_lost(now);
                    self.schedule_dial();
                }
            }
        }
    }

    fn app(&mut self, i: usize) {
        let now = self.clock.now();
        let rng = &mut self.rng;
        let s = &mut self.sides[i];
        // Source: offer messages; a full ring refuses and we come back later.
        while s.next_id < s.n_msgs && now >= s.next_source_at {
            let mut m = Message::binary("4670000", "IM", &payload(s.id, s.incarnation, s.next_id))
                .expect("valid message");
            m.client_ref = s.next_id;
            match s.ep.send(&m) {
                Ok(_) => {
                    s.next_id += 1;
                    if let Some(a) = s.log.accepted.last_mut() {
                        *a += 1;
                    }
                    self.stats.messages += 1;
                    if !rng.one_in(4) {
                        s.next_source_at = now + rng.millis(0..2 * s.mean_gap_ms + 1);
                    }
                }
                Err(_) => {
                    s.next_source_at = now + rng.millis(1..50);
                    break;
                }
            }
        }
        // Sink: take every message in order; hand each on after a random delay.
        while let Some((seq, m)) = s.ep.next_received() {
            let p = m.payload();
            assert_eq!(p.len(), 10, "payload intact");
            assert_eq!(p[0] as usize, 1 - i, "message delivered to the wrong side");
            let mut id = [0u8; 8];
            id.copy_from_slice(&p[2..]);
            let id = u64::from_be_bytes(id);
            s.log.delivered.push((p[1], id, s.incarnation));
            s.to_process.push((now + rng.millis(0..60), seq, rule(id)));
        }
        let mut k = 0;
        while k < s.to_process.len() {
            if s.to_process[k].0 <= now {
                let (_, seq, outcome) = s.to_process.swap_remove(k);
                s.ep.mark_processed(seq, outcome).expect("delivered seq");
            } else {
                k += 1;
            }
        }
    }

    fn events(&mut self, i: usize) {
        while let Some(e) = self.sides[i].ep.poll_event() {
            match e {
                Event::LinkDown { reason } => {
                    if let DownReason::Protocol(e) = reason {
                        panic!("side {i}: protocol error on a healthy stream: {e}");
                    }
                    // Flush a CLOSE if one is queued, then close the socket: the peer
                    // sees EOF unless the path is dead.
                    self.transmit(i);
                    self.wire.close(end(i), self.clock.now());
                    if i == 0 {
                        self.schedule_dial();
                    }
                }
                Event::LinkUp { .. } => self.stats.link_ups += 1,
                Event::AuthFailed { reason } => panic!("auth failed: {reason}"),
                Event::StatusChanged {
                    seq,
                    state: SlotState::Processed,
                    outcome,
                    client_ref,
                } => {
                    let s = &mut self.sides[i];
                    let outcome = outcome.expect("processed has an outcome");
                    assert_eq!(
                        outcome,
                        rule(client_ref),
                        "outcome echoed for the right message"
                    );
                    let prev = s
                        .log
                        .processed
                        .insert((s.incarnation, seq), (outcome, client_ref));
                    assert!(prev.is_none(), "seq {seq} processed twice");
                }
                Event::StatusChanged { .. } | Event::Received { .. } => {}
            }
        }
    }

    fn transmit(&mut self, i: usize) {
        let now = self.clock.now();
        loop {
            self.buf.clear();
            if self.sides[i].ep.poll_transmit(now, &mut self.buf) == 0 {
                return;
            }
            self.wire.write(end(i), &self.buf, now);
        }
    }

    /// The promises, checked at the end of a run.
    fn check(&self) {
        for r in 0..2 {
            let recv = &self.sides[r];
            let send = &self.sides[1 - r];
            let restarted = recv.incarnation > 0 || send.incarnation > 0;
            if !restarted {
                let want: Vec<(u8, u64, u8)> = (0..send.next_id).map(|id| (0, id, 0)).collect();
                assert_eq!(
                    recv.log.delivered, want,
                    "side {r}: every message exactly once, in order"
                );
                assert_eq!(
                    recv.ep.rx_cursors().last_stored,
                    send.ep.cursors().last_retrieved
                );
            } else {
                // Within one receiving incarnation: strictly in order, no duplicate.
                for w in recv.log.delivered.windows(2) {
                    if w[0].2 == w[1].2 {
                        assert!((w[0].0, w[0].1) < (w[1].0, w[1].1), "in order: {w:?}");
                    }
                }
                // The sender's current incarnation: nothing lost.
                let inc = send.incarnation;
                let mut got: Vec<u64> = recv
                    .log
                    .delivered
                    .iter()
                    .filter(|d| d.0 == inc)
                    .map(|d| d.1)
                    .collect();
                got.sort_unstable();
                got.dedup();
                assert_eq!(
                    got,
                    (0..send.next_id).collect::<Vec<_>>(),
                    "side {r}: survivor's messages all delivered"
                );
                if recv.incarnation == 0 {
                    // The receiver survived: no duplicate at all, even across the
                    // sender's restart.
                    let mut all: Vec<_> = recv.log.delivered.iter().map(|d| (d.0, d.1)).collect();
                    let n = all.len();
                    all.sort_unstable();
                    all.dedup();
                    assert_eq!(all.len(), n, "side {r}: duplicates");
                }
            }
            // Every slot of the final sender incarnation Processed, outcomes as chosen.
            let c = send.ep.cursors();
            assert_eq!(c.last_processed, c.last_retrieved);
            assert_eq!(c.last_confirmed, c.last_retrieved);
            assert_eq!(c.last_sent, c.last_retrieved);
            assert_eq!(send.ep.tx_ring().in_use(), 0);
            let processed = send
                .log
                .processed
                .keys()
                .filter(|k| k.0 == send.incarnation)
                .count() as u64;
            assert_eq!(
                processed, c.last_retrieved,
                "one Processed event per message"
            );
            let rc = recv.ep.rx_cursors();
            assert_eq!(rc.last_delivered, rc.last_stored);
            assert_eq!(rc.last_processed, rc.last_stored);
            let _ = send.log.accepted.len();
        }
    }
}

fn seeds() -> u64 {
    std::env::var("SMSLINK_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

fn run_scenario(sc: Scenario, salt: u64) {
    let n = seeds();
    let mut total = Stats::default();
    for seed in 0..n {
        let seed = seed ^ (salt << 32);
        let mut sim = Sim::new(seed, sc);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let st = sim.run();
            sim.check();
            st
        }));
        match result {
            Ok(st) => {
                total.messages += st.messages;
                total.cuts += st.cuts;
                total.half_opens += st.half_opens;
                total.outages += st.outages;
                total.restarts += st.restarts;
                total.link_ups += st.link_ups;
                total.resent += st.resent;
                total.virtual_ms += st.virtual_ms;
            }
            Err(e) => {
                eprintln!("scenario {} failed at seed {seed:#x}", sc.name);
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!(
        "scenario {}: {n} seeds, {} messages, {} cuts, {} half-open, {} outages, {} restarts, {} link-ups, {} resent, {} s virtual",
        sc.name,
        total.messages,
        total.cuts,
        total.half_opens,
        total.outages,
        total.restarts,
        total.link_ups,
        total.resent,
        total.virtual_ms / 1000
    );
}

#[test]
fn sim_cuts_latency_jitter_bandwidth() {
    run_scenario(
        Scenario {
            name: "cuts",
            cuts: true,
            half_open: false,
            outages: false,
            restart: false,
        },
        1,
    );
}

#[test]
fn sim_half_open_links() {
    run_scenario(
        Scenario {
            name: "half-open",
            cuts: false,
            half_open: true,
            outages: false,
            restart: false,
        },
        2,
    );
}

#[test]
fn sim_long_outages_and_everything() {
    run_scenario(
        Scenario {
            name: "outages+all",
            cuts: true,
            half_open: true,
            outages: true,
            restart: false,
        },
        3,
    );
}

#[test]
fn sim_restarted_peer() {
    run_scenario(
        Scenario {
            name: "restart",
            cuts: true,
            half_open: true,
            outages: false,
            restart: true,
        },
        4,
    );
}
