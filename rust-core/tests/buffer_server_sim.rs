//! The whole buffer-server path, simulated in virtual time, one seeded run per seed:
//!
//! ```text
//!  SMSC model -- cimd2 ServerSession ==smsc Wire== Bridge (Cimd2Client) -- Endpoint
//!                                                   (the buffer server)     ||
//!                                                                       link Wire
//!                                                                           ||
//!                                      IM application model -- Endpoint (IM side)
//! ```
//!
//! The drivers here do what the runtime does (runtime/smsc_driver.rs, the link
//! driver): a lost SMSC connection is reported with `Bridge::smsc_connection_lost`
//! and dialled again after a `Backoff` delay, then `smsc_connected` with a fresh SMSC
//! session; a session that ended gets its last bytes written and its socket closed; a
//! lost link is reported with `Endpoint::connection_lost`, then dialled again and
//! `connected`.
//!
//! Each seed picks its faults among those of its scenario:
//! * SMSC: NACK answers; general-error (98) answers; temporary refusals (6, or 98
//!   with 9) and permanent ones (300, or 98 with 2); answers later than the client's
//!   response timeout (answered after one retransmission, or so late that the client
//!   gives up and reconnects); the connection lost mid-submit, mid-deliver and at
//!   random, or half-open; the login refused on the first connection(s). Per seed the
//!   SMSC either hangs up on a client that leaves a deliver unanswered or delivers it
//!   again on the same connection; it sends status reports for some accepted MT.
//! * Link: cuts (also mid-frame), half-open connections, outages, and a restart of the
//!   IM process (a new `Endpoint` with empty rings).
//!
//! Invariants, checked on every seed (a failure names the scenario and seed):
//! * **MT**: every MT the IM application handed over is submitted to the SMSC at least
//!   once, and its outcome reaches the application exactly once per hand-over:
//!   Accepted when the SMSC accepted it (also after fewer than `MAX_ATTEMPTS`
//!   temporary refusals), Rejected with the SMSC's code when it refused for good or
//!   refused temporarily `MAX_ATTEMPTS` times.
//! * **MO**: every MO the SMSC got a positive answer for reaches the application, in
//!   order. The bridge stores an MO exactly when it answers a deliver of it
//!   positively (the test reads both directions of the SMSC connection); a second
//!   answer, so a second copy, only after the SMSC missed the first one (the deliver
//!   timed out or its connection went down) and delivered again: CIMD2's unavoidable
//!   duplicate, counted and reported. Without an IM restart the application gets
//!   exactly one copy per such answer.
//! * **Drain**: once faults stop, everything drains within bounded virtual time: every
//!   MT decided and reported, every MO and status report delivered, both rings of
//!   both endpoints empty, the bridge idle, no submit waiting at the SMSC.
//!
//! An IM restart is the link module's "Restarted peer" without a journal. The
//! application keeps its outbox of MT and its inbox of MO durably; the process loses
//! its endpoint and rings. So: an MT whose outcome the dead process never saw is
//! handed over again by the new process (it may be submitted twice: at least once;
//! the dead process's outcomes are not reported to the new one), and every MO above
//! the buffer server's Last Processed is delivered again to the new process (at least
//! once: also one the dead process had finished out of order).
//!
//! `SMSLINK_BRIDGE_SIM_SEEDS=N` (else `SMSLINK_SIM_SEEDS=N`) runs N seeds per scenario
//! instead of 750 (four scenarios); `SMSLINK_BRIDGE_SIM_SEED=S` runs only seed S (as a
//! failure prints it; decimal or 0x-hex); `SMSLINK_BRIDGE_SIM_TRACE=1` prints what
//! happens, step by step. Seeds that once found a bug always run (`PINNED`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use smslink::bridge::{Bridge, BridgeConfig, BridgeEvent};
use smslink::cimd2::session::{
    ClientConfig, FailReason, ServerConfig, ServerEvent, ServerSession, StatusReport,
    STATUS_DELIVERED,
};
use smslink::cimd2::{message_from_packet, Cimd2Client, Decoded, Decoder, Operation};
use smslink::link::{DownReason, Endpoint, Event, LinkConfig, Side};
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::Backoff;
use smslink::sim::{earliest, Arrival, Clock, End, Rng, Wire, WireConfig};

const DEFAULT_SEEDS: u64 = 750;

/// Seeds that found a bug, run on every test run: (scenario, seed, what it found).
const PINNED: &[(&str, u64, &str)] = &[
    (
        "smsc-faults",
        0xb00000182,
        "cimd2 client: incoming delivers postponed the keep-alive on a dead way out",
    ),
    (
        "everything",
        0xe000000e5,
        "cimd2 client: incoming delivers postponed the keep-alive on a dead way out",
    ),
    (
        "im-restart",
        0xd000002b4,
        "link: after an IM restart Last Processed jumped over seqs the new peer never stored",
    ),
];
const PSK: &[u8] = b"buffer server simulation key";
const USER: &str = "bridge";
const PASSWORD: &str = "secret";

/// Temporary refusals the bridge takes before it reports an MT rejected.
const MAX_ATTEMPTS: u32 = 4;
/// "General system error": temporary.
const TEMPORARY: u32 = 6;
/// "Requested operation failed", sent in a general error (98): temporary.
const TEMPORARY_98: u32 = 9;
/// "Incorrect destination address": permanent.
const PERMANENT: u32 = 300;
/// "Syntax error", sent in a general error (98): permanent.
const PERMANENT_98: u32 = 2;

/// The client's wait for an answer; it sends a request `CLIENT_RETRIES` more times
/// before it gives up on the session.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const CLIENT_RETRIES: u32 = 2;
/// The SMSC's wait for the answer to a deliver, and its retries; then it hangs up or
/// delivers again.
const SMSC_TIMEOUT: Duration = Duration::from_millis(1000);
const SMSC_RETRIES: u32 = 2;
/// Once faults stop, the run must drain within this much virtual time.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    smsc_faults: bool,
    link_faults: bool,
    restart: Restart,
}

/// Whether the IM process restarts once during the faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    Never,
    PerSeed,
    Always,
}

/// The faults one seed runs with.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    nack: bool,
    general_error: bool,
    late: bool,
    cut_mid_submit: bool,
    cut_mid_deliver: bool,
    smsc_cuts: bool,
    smsc_half_open: bool,
    login_refusals: u32,
    link_cuts: bool,
    half_open: bool,
    outages: bool,
    restart: bool,
}

impl Faults {
    fn pick(sc: Scenario, rng: &mut Rng) -> Faults {
        let mut f = Faults::default();
        if sc.smsc_faults {
            f.nack = rng.bool();
            f.general_error = rng.bool();
            f.late = rng.bool();
            f.cut_mid_submit = rng.bool();
            f.cut_mid_deliver = rng.bool();
            f.smsc_cuts = rng.bool();
            f.smsc_half_open = rng.bool();
            f.login_refusals = if rng.bool() { rng.u32(1..=2) } else { 0 };
        }
        if sc.link_faults {
            f.link_cuts = rng.bool();
            f.half_open = rng.bool();
            f.outages = rng.bool();
        }
        f.restart = match sc.restart {
            Restart::Never => false,
            Restart::PerSeed => rng.bool(),
            Restart::Always => true,
        };
        f
    }

    fn smsc_any(&self) -> bool {
        self.smsc_cuts || self.smsc_half_open
    }

    fn link_any(&self) -> bool {
        self.link_cuts || self.half_open || self.outages
    }
}

/// What the SMSC will make of an MT (by its id), whatever happens on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Accept,
    /// Refused temporarily this many times (fewer than `MAX_ATTEMPTS`), then accepted.
    RefuseThenAccept(u32),
    /// Refused temporarily every time.
    RefuseAlways,
    /// Refused for good with this code.
    Permanent(u32),
}

impl Plan {
    fn pick(rng: &mut Rng, general_error: bool) -> Plan {
        match rng.u32(0..20) {
            0..=11 => Plan::Accept,
            12..=14 => Plan::RefuseThenAccept(rng.u32(1..MAX_ATTEMPTS)),
            15 => Plan::RefuseAlways,
            _ if general_error && rng.bool() => Plan::Permanent(PERMANENT_98),
            _ => Plan::Permanent(PERMANENT),
        }
    }

    /// The outcome the IM application must see.
    fn outcome(self) -> Outcome {
        match self {
            Plan::Accept | Plan::RefuseThenAccept(_) => Outcome::Accepted,
            Plan::RefuseAlways => Outcome::Rejected { code: TEMPORARY },
            Plan::Permanent(code) => Outcome::Rejected { code },
        }
    }
}

/// How the SMSC answers one submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Refuse(u32),
    GeneralError(u32),
    Nack,
}

fn mt_message(id: u64) -> Message {
    let mut m = Message::text("12345", &format!("4670{id:06}"), &format!("mt:{id}"))
        .expect("valid message");
    m.client_ref = id;
    m
}

fn mo_message(id: u64) -> Message {
    let mut m = Message::text(&format!("4671{id:06}"), "12345", &format!("mo:{id}"))
        .expect("valid message");
    m.client_ref = id;
    m
}

/// The id in a message's text `"<kind>:<id>"`.
fn id_of(m: &Message, kind: &str) -> u64 {
    m.text_str()
        .and_then(|t| t.strip_prefix(kind))
        .and_then(|t| t.strip_prefix(':'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a {kind} message: {:?}", m.text_str()))
}

/// What the SMSC saw of one MT.
#[derive(Debug, Default, Clone)]
struct MtAtSmsc {
    submits: u32,
    temporary_refusals_sent: u32,
    accepts_sent: u32,
    codes_sent: Vec<u32>,
}

/// The SMSC: one server session per connection, MO to deliver in order, answers to
/// submits as the plans say.
struct Smsc {
    session: Option<ServerSession>,
    connections: u32,
    /// The answer for the submit pending on `session`: when, for which MT, what.
    answer: Option<(Instant, u64, Verdict)>,
    mt: Vec<MtAtSmsc>,
    mo_total: u64,
    /// Every MO below this one got a positive answer; this one is next.
    mo_acked: u64,
    mo_in_flight: bool,
    /// No request (MO, status report) before this instant.
    next_request_at: Instant,
    mo_gap_ms: u64,
    /// Per MO: deliveries that got no answer in time (lost, late, connection gone).
    mo_failed: Vec<u32>,
    /// On a deliver that got no answer in time: hang up (else deliver again on the
    /// same connection).
    hangs_up: bool,
    /// A deliver got no answer in time and the SMSC hangs up on the client.
    hang_up: bool,
    /// Status reports for accepted MT, sent between the MO (same request slot).
    reports: VecDeque<StatusReport>,
    report_in_flight: bool,
}

/// Reads both directions of one SMSC connection, to count the bridge's positive
/// answers to delivers: each one means the bridge stored that MO once.
struct Tap {
    to_bridge: Decoder,
    to_smsc: Decoder,
    /// Per packet number: the MO the SMSC's latest deliver with it carries, and
    /// whether the bridge answered it positively (a repeat of the answer is no
    /// new answer).
    delivers: [(Option<u64>, bool); 256],
}

impl Tap {
    fn new() -> Tap {
        Tap {
            to_bridge: Decoder::new(4096),
            to_smsc: Decoder::new(4096),
            delivers: [(None, false); 256],
        }
    }

    /// Bytes from the SMSC: note which MO each deliver number carries; `new_deliver`:
    /// the deliver in them was just started (else it is a retransmission, which
    /// keeps its answered flag).
    fn smsc_wrote(&mut self, bytes: &[u8], new_deliver: bool) {
        self.to_bridge.push(bytes);
        while let Some(d) = self.to_bridge.poll() {
            let Decoded::Packet(p) = d else { continue };
            if p.op != Operation::DeliverMessage {
                continue;
            }
            let id = message_from_packet(&p).map(|m| id_of(&m, "mo")).ok();
            let slot = &mut self.delivers[usize::from(p.number)];
            if new_deliver || slot.0.is_none() {
                *slot = (id, false);
            }
        }
    }

    /// Bytes from the bridge: the MO answered positively for the first time.
    fn bridge_wrote(&mut self, bytes: &[u8], answered: &mut Vec<u64>) {
        self.to_smsc.push(bytes);
        while let Some(d) = self.to_smsc.poll() {
            let Decoded::Packet(p) = d else { continue };
            let positive = p.error_code().is_none_or(|c| c == 0);
            if p.op != Operation::DeliverMessageResponse || !positive {
                continue;
            }
            let slot = &mut self.delivers[usize::from(p.number)];
            if let (Some(id), false) = *slot {
                slot.1 = true;
                answered.push(id);
            }
        }
    }
}

/// The IM application: a durable outbox of MT and inbox of MO, a process (endpoint)
/// that may restart.
struct Im {
    ep: Endpoint,
    incarnation: u32,
    /// MT ids to hand over, in order.
    outbox: VecDeque<u64>,
    next_send_at: Instant,
    mt_gap_ms: u64,
    /// Per MT: the incarnations that handed it over.
    handed: Vec<Vec<u32>>,
    /// Per MT: the outcomes seen, with the incarnation that saw them.
    outcomes: Vec<Vec<(u32, Outcome)>>,
    /// MO received: (incarnation, id), in order.
    mo_seen: Vec<(u32, u64)>,
    /// Received MO not yet handed on: (when, local seq).
    to_process: Vec<(Instant, u64)>,
}

impl Im {
    /// MT this incarnation handed over and has no outcome for yet.
    fn waiting(&self) -> usize {
        let inc = self.incarnation;
        self.handed
            .iter()
            .zip(&self.outcomes)
            .filter(|(h, o)| h.contains(&inc) && !o.iter().any(|(i, _)| *i == inc))
            .count()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    mt: u64,
    mo: u64,
    submits: u64,
    resubmits: u64,
    temporary_refusals: u64,
    permanent_refusals: u64,
    nacks: u64,
    general_errors: u64,
    late_answers: u64,
    smsc_connections: u64,
    login_refusals: u64,
    smsc_cuts: u64,
    smsc_half_opens: u64,
    smsc_hang_ups: u64,
    status_reports: u64,
    mo_failed: u64,
    mo_duplicates_smsc: u64,
    mo_duplicates_restart: u64,
    mt_handed_again: u64,
    link_cuts: u64,
    half_opens: u64,
    outages: u64,
    restarts: u64,
    link_ups: u64,
    virtual_ms: u64,
    /// The longest a run took to drain once faults stopped.
    max_drain_ms: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.mt += o.mt;
        self.mo += o.mo;
        self.submits += o.submits;
        self.resubmits += o.resubmits;
        self.temporary_refusals += o.temporary_refusals;
        self.permanent_refusals += o.permanent_refusals;
        self.nacks += o.nacks;
        self.general_errors += o.general_errors;
        self.late_answers += o.late_answers;
        self.smsc_connections += o.smsc_connections;
        self.login_refusals += o.login_refusals;
        self.smsc_cuts += o.smsc_cuts;
        self.smsc_half_opens += o.smsc_half_opens;
        self.status_reports += o.status_reports;
        self.smsc_hang_ups += o.smsc_hang_ups;
        self.mo_failed += o.mo_failed;
        self.mo_duplicates_smsc += o.mo_duplicates_smsc;
        self.mo_duplicates_restart += o.mo_duplicates_restart;
        self.mt_handed_again += o.mt_handed_again;
        self.link_cuts += o.link_cuts;
        self.half_opens += o.half_opens;
        self.outages += o.outages;
        self.restarts += o.restarts;
        self.link_ups += o.link_ups;
        self.virtual_ms += o.virtual_ms;
        self.max_drain_ms = self.max_drain_ms.max(o.max_drain_ms);
    }
}

struct Sim {
    seed: u64,
    sc: Scenario,
    faults: Faults,
    rng: Rng,
    clock: Clock,
    /// No fault starts after this instant.
    faults_end: Instant,
    plans: Vec<Plan>,
    smsc: Smsc,
    smsc_wire: Wire,
    tap: Tap,
    /// Per MO: the bridge's positive answers to delivers of it (each one a copy
    /// stored in the link's ring).
    mo_answered: Vec<u32>,
    /// When the next targeted cut of the SMSC connection (mid-submit, mid-deliver) falls.
    smsc_cut_at: Option<Instant>,
    next_smsc_fault: Instant,
    bridge: Bridge,
    backoff: Backoff,
    smsc_dial_at: Option<Instant>,
    /// The buffer server's link endpoint (end A of the link wire; it dials).
    bs: Endpoint,
    link_wire: Wire,
    link_config: [LinkConfig; 2],
    link_dial_at: Option<Instant>,
    next_link_fault: Instant,
    restart_at: Option<Instant>,
    /// Until then link faults come more often (after an IM restart).
    troubled_until: Instant,
    /// Per MO: how many IM restarts found it above the buffer server's Last Processed.
    mo_restart_allowance: Vec<u32>,
    im: Im,
    buf: Vec<u8>,
    stats: Stats,
    /// Counts actions; a settling round that leaves it unchanged did nothing.
    progress: u64,
    trace: bool,
}

impl Sim {
    fn new(seed: u64, sc: Scenario, trace: bool) -> Sim {
        let mut rng = Rng::new(seed);
        let clock = Clock::new(Instant::now());
        let start = clock.now();
        let faults = Faults::pick(sc, &mut rng);
        let n_mt = rng.u64(3..30);
        let n_mo = rng.u64(3..30);
        let plans = (0..n_mt)
            .map(|_| Plan::pick(&mut rng, faults.general_error))
            .collect();
        let link = |name: &str, rng: &mut Rng| {
            let mut c = LinkConfig::new(name, PSK);
            c.capacity = *rng.pick(&[2usize, 4, 8, 32]).unwrap_or(&8);
            c.heartbeat_interval = ms(300);
            c.dead_after = ms(1000);
            c.max_transmit = 4096;
            c
        };
        let link_config = [link("buffer-server", &mut rng), link("im-server", &mut rng)];
        let smsc_wire = Wire::new(
            WireConfig {
                latency: Duration::from_micros(rng.u64(100..3_000)),
                jitter: Duration::from_micros(rng.u64(0..1_000)),
                bandwidth: None,
                split_writes: true,
            },
            rng.fork(),
            start,
        );
        let link_wire = Wire::new(
            WireConfig {
                latency: rng.millis(1..80),
                jitter: rng.millis(0..20),
                bandwidth: Some(rng.u64(20..5000) * 1000),
                split_writes: true,
            },
            rng.fork(),
            start,
        );
        let client = Cimd2Client::new(ClientConfig {
            user: USER.into(),
            password: PASSWORD.into(),
            keepalive: ms(2000),
            response_timeout: CLIENT_TIMEOUT,
            max_retries: CLIENT_RETRIES,
            // The SMSC model sends reports for some MT: ask for them, as an
            // operator would, so that they are matched and reach the IM side.
            status_report_request: 14,
            ..ClientConfig::default()
        });
        let bridge = Bridge::new(
            Box::new(client),
            BridgeConfig {
                retry_after: ms(100),
                retry_max: ms(400),
                max_attempts: MAX_ATTEMPTS,
            },
        );
        let backoff = Backoff::new(ms(50), ms(1000), rng.next_u64());
        let faults_end = start + rng.millis(2_000..8_000);
        let restart_at = faults
            .restart
            .then(|| start + rng.millis(200..(faults_end - start).as_millis() as u64));
        let im = Im {
            ep: Endpoint::new(link_config[1].clone(), start).expect("valid config"),
            incarnation: 0,
            outbox: (0..n_mt).collect(),
            next_send_at: start,
            mt_gap_ms: rng.u64(5..150),
            handed: vec![vec![]; n_mt as usize],
            outcomes: vec![vec![]; n_mt as usize],
            mo_seen: vec![],
            to_process: vec![],
        };
        let smsc = Smsc {
            session: None,
            connections: 0,
            answer: None,
            mt: vec![MtAtSmsc::default(); n_mt as usize],
            mo_total: n_mo,
            mo_acked: 0,
            mo_in_flight: false,
            next_request_at: start,
            mo_gap_ms: rng.u64(5..150),
            mo_failed: vec![0; n_mo as usize],
            hangs_up: rng.bool(),
            hang_up: false,
            reports: VecDeque::new(),
            report_in_flight: false,
        };
        let next_smsc_fault = start + rng.millis(100..2_000);
        let next_link_fault = start + rng.millis(100..2_000);
        Sim {
            seed,
            sc,
            faults,
            clock,
            faults_end,
            plans,
            smsc,
            smsc_wire,
            tap: Tap::new(),
            mo_answered: vec![0; n_mo as usize],
            smsc_cut_at: None,
            next_smsc_fault,
            bridge,
            backoff,
            smsc_dial_at: Some(start),
            bs: Endpoint::new(link_config[0].clone(), start).expect("valid config"),
            link_wire,
            link_config,
            link_dial_at: Some(start),
            next_link_fault,
            restart_at,
            troubled_until: start,
            mo_restart_allowance: vec![0; n_mo as usize],
            im,
            buf: Vec::with_capacity(8192),
            stats: Stats {
                mt: n_mt,
                mo: n_mo,
                ..Stats::default()
            },
            progress: 0,
            trace,
            rng,
        }
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn faulty(&self) -> bool {
        self.now() < self.faults_end
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("{:>8} ms  {}", self.clock.elapsed().as_millis(), what());
        }
    }

    /// Panics with the scenario and seed, so the run can be repeated.
    fn fail(&self, what: String) -> ! {
        panic!(
            "scenario {} seed {:#x}: {what}\n  faults {:?}\n  bridge {:?}\n  bs {:?}\n  im {:?}",
            self.sc.name, self.seed, self.faults, self.bridge, self.bs, self.im.ep
        );
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    // ---- the run ----

    fn run(&mut self) -> Stats {
        let deadline = self.faults_end + DRAIN_LIMIT;
        while !(self.now() >= self.faults_end && self.drained()) {
            if self.now() > deadline {
                self.fail(format!(
                    "did not drain within {DRAIN_LIMIT:?} after the faults stopped: \
                     outbox {:?}, waiting {}, MO acked {}/{}, in flight {}, to process {}, \
                     bridge idle {}, smsc answer {:?}, bs tx {:?} rx {:?}, im tx {:?} rx {:?}",
                    self.im.outbox,
                    self.im.waiting(),
                    self.smsc.mo_acked,
                    self.smsc.mo_total,
                    self.smsc.mo_in_flight,
                    self.im.to_process.len(),
                    self.bridge.is_idle(),
                    self.smsc.answer,
                    self.bs.cursors(),
                    self.bs.rx_cursors(),
                    self.im.ep.cursors(),
                    self.im.ep.rx_cursors(),
                ));
            }
            self.step();
        }
        self.stats.virtual_ms = self.clock.elapsed().as_millis() as u64;
        self.stats.max_drain_ms = (self.now() - self.faults_end).as_millis() as u64;
        self.stats
    }

    fn drained(&self) -> bool {
        let bs_rx = self.bs.rx_cursors();
        let im_rx = self.im.ep.rx_cursors();
        self.im.outbox.is_empty()
            && self.im.waiting() == 0
            && self.im.to_process.is_empty()
            && self.smsc.mo_acked == self.smsc.mo_total
            && !self.smsc.mo_in_flight
            && self.smsc.reports.is_empty()
            && !self.smsc.report_in_flight
            && self.smsc.answer.is_none()
            && self.bridge.is_idle()
            && self.bs.tx_ring().in_use() == 0
            && self.im.ep.tx_ring().in_use() == 0
            && bs_rx.last_processed == bs_rx.last_stored
            && im_rx.last_processed == im_rx.last_stored
    }

    fn next_event_time(&self) -> Instant {
        let now = self.now();
        let faulty = self.faulty();
        let smsc = &self.smsc;
        let can_deliver = smsc.session.as_ref().is_some_and(|s| s.can_deliver())
            && !smsc.mo_in_flight
            && !smsc.report_in_flight
            && (!smsc.reports.is_empty() || smsc.mo_acked < smsc.mo_total);
        let mo_due = can_deliver.then_some(smsc.next_request_at);
        let mt_due = (!self.im.outbox.is_empty()).then_some(self.im.next_send_at);
        let link_dial = self
            .link_dial_at
            .map(|d| d.max(self.link_wire.outage_until(now).unwrap_or(d)));
        let t = earliest([
            Some(now + Duration::from_secs(1)),
            self.smsc_wire.next_arrival(),
            self.link_wire.next_arrival(),
            self.bridge.poll_timeout(),
            smsc.session.as_ref().and_then(|s| s.poll_timeout()),
            self.bs.poll_timeout(),
            self.im.ep.poll_timeout(),
            smsc.answer.map(|a| a.0),
            mo_due,
            mt_due,
            self.im.to_process.iter().map(|p| p.0).min(),
            self.smsc_dial_at,
            link_dial,
            self.smsc_cut_at,
            self.restart_at,
            (faulty && self.faults.smsc_any()).then_some(self.next_smsc_fault),
            (faulty && self.faults.link_any()).then_some(self.next_link_fault),
        ]);
        t.unwrap_or(now).max(now)
    }

    fn step(&mut self) {
        self.clock.advance_to(self.next_event_time());
        let now = self.now();
        self.faults_due(now);
        if self.smsc_dial_at.is_some_and(|t| t <= now) {
            self.smsc_dial(now);
        }
        if let Some(d) = self.link_dial_at {
            if now >= d && self.link_wire.outage_until(now).is_none() {
                self.link_dial(now);
            }
        }
        self.smsc_arrivals(now);
        self.link_arrivals(now);
        self.bridge.handle_timeout(now);
        if let Some(s) = self.smsc.session.as_mut() {
            s.handle_timeout(now);
        }
        self.bs.handle_timeout(now);
        self.im.ep.handle_timeout(now);
        for _ in 0..10 {
            let before = self.progress;
            self.smsc_turn(now);
            self.bridge_turn(now);
            self.im_turn(now);
            self.link_events(now);
            self.link_transmit(now);
            if self.progress == before {
                break;
            }
        }
    }

    // ---- faults ----

    fn faults_due(&mut self, now: Instant) {
        if self.restart_at.is_some_and(|r| r <= now) {
            self.restart_at = None;
            self.restart_im(now);
        }
        if self.smsc_cut_at.is_some_and(|t| t <= now) {
            self.smsc_cut_at = None;
            self.cut_smsc(now, "targeted");
        }
        if !self.faulty() {
            return;
        }
        if self.faults.smsc_any() && now >= self.next_smsc_fault {
            self.next_smsc_fault = now + self.rng.millis(300..3_000);
            let half_open = match (self.faults.smsc_cuts, self.faults.smsc_half_open) {
                (true, true) => self.rng.bool(),
                (cuts, _) => !cuts,
            };
            if !half_open {
                self.cut_smsc(now, "random");
            } else if self.smsc_wire.is_connected() {
                let from = *self.rng.pick(&End::BOTH).unwrap_or(&End::A);
                self.stats.smsc_half_opens += 1;
                self.log(|| format!("smsc connection half-open: {from:?} goes silent"));
                self.smsc_wire.half_open(from);
            }
        }
        if self.faults.link_any() && now >= self.next_link_fault {
            let gap = if now < self.troubled_until {
                100..600
            } else {
                100..2_000
            };
            self.next_link_fault = now + self.rng.millis(gap);
            self.link_fault(now);
        }
    }

    fn cut_smsc(&mut self, now: Instant, why: &str) {
        if self.smsc_wire.cut(now) {
            self.stats.smsc_cuts += 1;
            self.log(|| format!("smsc connection cut ({why})"));
            self.smsc_arrivals(now);
        }
    }

    fn link_fault(&mut self, now: Instant) {
        if !self.link_wire.is_connected() {
            return;
        }
        let mut kinds = vec![];
        if self.faults.link_cuts {
            kinds.push(0);
        }
        if self.faults.half_open {
            kinds.push(1);
        }
        if self.faults.outages {
            kinds.push(2);
        }
        match self.rng.pick(&kinds).copied() {
            Some(0) => {
                self.stats.link_cuts += 1;
                self.log(|| "link cut".into());
                self.link_wire.cut(now);
            }
            Some(1) => {
                self.stats.half_opens += 1;
                let from = *self.rng.pick(&End::BOTH).unwrap_or(&End::A);
                self.log(|| format!("link half-open: {from:?} goes silent"));
                self.link_wire.half_open(from);
            }
            Some(_) => {
                self.stats.outages += 1;
                let until = now + self.rng.millis(1_000..8_000);
                self.log(|| format!("link outage until +{:?}", until - now));
                self.link_wire.outage(now, until);
            }
            None => {}
        }
        self.link_arrivals(now);
    }

    /// The IM process dies and starts again: a new endpoint with empty rings; the
    /// application's outbox and inbox survive.
    fn restart_im(&mut self, now: Instant) {
        self.stats.restarts += 1;
        // The new process's ring starts at the buffer server's Last Processed, so
        // everything above it is sent to it again: also an MO the old process had
        // finished (and whose outcome arrived) above one it had not.
        let c = self.bs.cursors();
        for seq in c.last_processed + 1..=c.last_retrieved {
            if let Some(slot) = self.bs.tx_ring().slot(seq) {
                if slot.message.as_report().is_some() {
                    continue;
                }
                let id = id_of(&slot.message, "mo") as usize;
                self.mo_restart_allowance[id] += 1;
            }
        }
        self.log(|| format!("IM process restarts; buffer server's MO ring {c:?}"));
        self.link_wire.cut(now);
        self.link_arrivals(now);
        let im = &mut self.im;
        im.ep = Endpoint::new(self.link_config[1].clone(), now).expect("valid config");
        im.incarnation += 1;
        im.to_process.clear();
        // MT handed over without an outcome seen: the new process hands them again.
        let mut again: Vec<u64> = (0..im.handed.len() as u64)
            .filter(|&id| {
                !im.handed[id as usize].is_empty()
                    && im.outcomes[id as usize].is_empty()
                    && !im.outbox.contains(&id)
            })
            .collect();
        self.stats.mt_handed_again += again.len() as u64;
        again.reverse();
        for id in again {
            im.outbox.push_front(id);
        }
        // A restart tends to come with a troubled line: link faults come thick while
        // the new process is being brought up to date.
        self.troubled_until = now + ms(3_000);
        self.next_link_fault = self.next_link_fault.min(now + self.rng.millis(200..1_000));
        self.schedule_link_dial(now);
    }

    // ---- the SMSC connection (the runtime's SmscDriver and the SMSC's side) ----

    fn smsc_dial(&mut self, now: Instant) {
        self.smsc_dial_at = None;
        // The SMSC drops a socket it still held before it takes the new one.
        if self.smsc_wire.is_open(End::B) {
            self.smsc_lost(now);
        }
        if !self.smsc_wire.connect(now) {
            self.smsc_dial_at = Some(now + self.backoff.next_delay());
            return;
        }
        let smsc = &mut self.smsc;
        smsc.connections += 1;
        let refuse = smsc.connections <= self.faults.login_refusals;
        let config = ServerConfig {
            user: USER.into(),
            password: if refuse { "not this one" } else { PASSWORD }.into(),
            response_timeout: SMSC_TIMEOUT,
            max_retries: SMSC_RETRIES,
            ..ServerConfig::default()
        };
        smsc.session = Some(ServerSession::new(config, now));
        smsc.answer = None;
        smsc.mo_in_flight = false;
        smsc.report_in_flight = false;
        self.tap = Tap::new();
        self.stats.smsc_connections += 1;
        self.log(|| {
            format!(
                "smsc connection {} (login refused: {refuse})",
                self.smsc.connections
            )
        });
        self.bridge.smsc_connected(0, now);
        self.progress += 1;
    }

    fn smsc_arrivals(&mut self, now: Instant) {
        while let Some((to, arrival)) = self.smsc_wire.poll_arrival(now, &mut self.buf) {
            self.progress += 1;
            match (to, arrival) {
                (End::A, Arrival::Bytes) => self.bridge.smsc_input(0, &self.buf, now),
                (End::B, Arrival::Bytes) => {
                    if let Some(s) = self.smsc.session.as_mut() {
                        s.handle_input(&self.buf, now);
                    }
                }
                (End::A, _) => self.bridge_lost(now, "read end or reset"),
                (End::B, _) => self.smsc_lost(now),
            }
        }
    }

    /// The driver's `lost`: tell the bridge, dial again after a back-off.
    fn bridge_lost(&mut self, now: Instant, why: &str) {
        self.log(|| format!("bridge: smsc connection lost ({why})"));
        self.bridge.smsc_connection_lost(0, now);
        self.smsc_dial_at = Some(now + self.backoff.next_delay());
    }

    /// The driver's turn: the bridge's step, its events, a session that ended gets
    /// its last bytes out and its socket closed.
    fn bridge_turn(&mut self, now: Instant) {
        self.bridge.poll(&mut self.bs, now);
        self.bridge_events();
        if self.smsc_wire.is_open(End::A) && !self.bridge.smsc_is_open() {
            self.bridge_transmit(now);
            self.smsc_wire.close(End::A, now);
            self.bridge_lost(now, "session ended");
            self.bridge.poll(&mut self.bs, now);
            self.bridge_events();
        }
        self.bridge_transmit(now);
    }

    fn bridge_transmit(&mut self, now: Instant) {
        self.buf.clear();
        if self.bridge.smsc_transmit(0, &mut self.buf) == 0 {
            return;
        }
        self.progress += 1;
        if self.smsc_wire.is_open(End::A) {
            let mut answered = vec![];
            self.tap.bridge_wrote(&self.buf, &mut answered);
            for id in answered {
                self.mo_answered[id as usize] += 1;
            }
        }
        self.smsc_wire.write(End::A, &self.buf, now);
    }

    fn bridge_events(&mut self) {
        while let Some(event) = self.bridge.poll_event() {
            self.progress += 1;
            self.log(|| format!("bridge: {event:?}"));
            match event {
                BridgeEvent::SmscUp => self.backoff.reset(),
                BridgeEvent::SmscDown { reason } => {
                    if reason.starts_with("login refused") {
                        self.stats.login_refusals += 1;
                    }
                }
                BridgeEvent::SmscViolation { .. } => {}
                BridgeEvent::MtUnencodable { seq, reason } => {
                    self.fail(format!("MT {seq} unencodable: {reason}"))
                }
                BridgeEvent::OutcomeRefused { seq, error } => {
                    self.fail(format!("the link refused the outcome of MT {seq}: {error}"))
                }
                BridgeEvent::MoRefused { detail } => self.fail(format!("MO refused: {detail}")),
                BridgeEvent::ReportUnknown { .. } => {}
            }
        }
    }

    /// The SMSC's socket is gone: its session fails what is outstanding.
    fn smsc_lost(&mut self, now: Instant) {
        if let Some(s) = self.smsc.session.as_mut() {
            s.handle_connection_lost(now);
        }
        self.smsc_events(now);
        self.smsc.session = None;
        self.smsc.answer = None;
        self.smsc.mo_in_flight = false;
        self.smsc.report_in_flight = false;
        self.smsc_wire.close(End::B, now);
    }

    /// The SMSC's turn: its session's events, the answer due, the next MO.
    fn smsc_turn(&mut self, now: Instant) {
        self.smsc_events(now);
        if self.smsc.hang_up {
            self.smsc.hang_up = false;
            self.stats.smsc_hang_ups += 1;
            self.log(|| "smsc hangs up on a client that does not answer".into());
            self.smsc_transmit(now, false);
            self.smsc_lost(now);
            return;
        }
        self.smsc_answer(now);
        self.smsc_deliver(now);
        self.smsc_transmit(now, false);
    }

    /// Write what the SMSC's session has; `new_deliver`: it is a deliver just started
    /// (else retransmissions and answers).
    fn smsc_transmit(&mut self, now: Instant, new_deliver: bool) {
        let Some(s) = self.smsc.session.as_mut() else {
            return;
        };
        self.buf.clear();
        if s.poll_transmit(&mut self.buf) > 0 {
            self.progress += 1;
            if self.smsc_wire.is_open(End::B) {
                self.tap.smsc_wrote(&self.buf, new_deliver);
            }
            self.smsc_wire.write(End::B, &self.buf, now);
        }
    }

    fn smsc_events(&mut self, now: Instant) {
        let Some(s) = self.smsc.session.as_mut() else {
            return;
        };
        let events: Vec<ServerEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        for event in events {
            self.progress += 1;
            match event {
                ServerEvent::LoggedIn { .. } => self.smsc.next_request_at = now,
                ServerEvent::Submit { message, .. } => self.on_submit(id_of(&message, "mt"), now),
                ServerEvent::DeliverAcked { client_ref } => {
                    self.check(
                        self.smsc.mo_in_flight && client_ref == self.smsc.mo_acked,
                        || {
                            format!(
                                "SMSC: ack for MO {client_ref}, expected {}",
                                self.smsc.mo_acked
                            )
                        },
                    );
                    self.log(|| format!("smsc: MO {client_ref} acknowledged"));
                    self.smsc.mo_acked += 1;
                    self.smsc.mo_in_flight = false;
                    self.smsc.next_request_at = now + self.rng.millis(0..2 * self.smsc.mo_gap_ms);
                }
                ServerEvent::DeliverRejected {
                    client_ref, code, ..
                } => {
                    self.log(|| format!("smsc: MO {client_ref} refused with {code}"));
                    self.smsc.mo_in_flight = false;
                    self.smsc.next_request_at = now + ms(200);
                }
                ServerEvent::DeliverFailed { client_ref, reason } => {
                    self.log(|| format!("smsc: MO {client_ref} unanswered ({reason:?})"));
                    self.stats.mo_failed += 1;
                    self.smsc.mo_failed[client_ref as usize] += 1;
                    self.smsc.mo_in_flight = false;
                    self.smsc.next_request_at = now + ms(200);
                    if reason == FailReason::ResponseTimeout && self.smsc.hangs_up {
                        self.smsc.hang_up = true;
                    }
                }
                ServerEvent::StatusReportAcked => {
                    self.smsc.report_in_flight = false;
                    self.smsc.reports.pop_front();
                    self.stats.status_reports += 1;
                }
                ServerEvent::StatusReportRejected { code } => {
                    self.fail(format!("the bridge refused a status report with {code}"))
                }
                ServerEvent::StatusReportFailed { reason } => {
                    self.smsc.report_in_flight = false;
                    self.smsc.next_request_at = now + ms(200);
                    if reason == FailReason::ResponseTimeout && self.smsc.hangs_up {
                        self.smsc.hang_up = true;
                    }
                }
                ServerEvent::LoginRejected { .. }
                | ServerEvent::ProtocolViolation(_)
                | ServerEvent::Closed { .. } => {}
            }
        }
    }

    /// A submit arrived: decide the answer (and maybe a late answer or a cut).
    fn on_submit(&mut self, id: u64, now: Instant) {
        self.check(self.smsc.answer.is_none(), || {
            format!("SMSC: submit of MT {id} while another waits for its answer")
        });
        self.stats.submits += 1;
        let faulty = self.faulty();
        let st = &mut self.smsc.mt[id as usize];
        st.submits += 1;
        if st.submits > 1 {
            self.stats.resubmits += 1;
        }
        let refused = st.temporary_refusals_sent;
        let rng = &mut self.rng;
        let verdict = if faulty && self.faults.nack && rng.one_in(8) {
            Verdict::Nack
        } else {
            match self.plans[id as usize] {
                Plan::Accept => Verdict::Accept,
                Plan::RefuseThenAccept(n) if refused < n => {
                    if self.faults.general_error && rng.bool() {
                        Verdict::GeneralError(TEMPORARY_98)
                    } else {
                        Verdict::Refuse(TEMPORARY)
                    }
                }
                Plan::RefuseThenAccept(_) => Verdict::Accept,
                Plan::RefuseAlways => Verdict::Refuse(TEMPORARY),
                Plan::Permanent(PERMANENT_98) => Verdict::GeneralError(PERMANENT_98),
                Plan::Permanent(code) => Verdict::Refuse(code),
            }
        };
        let mut delay = Duration::from_micros(rng.u64(0..5_000));
        if faulty && self.faults.late && rng.one_in(6) {
            self.stats.late_answers += 1;
            let all_tries = CLIENT_TIMEOUT * (CLIENT_RETRIES + 1);
            delay = if rng.bool() {
                // After the client's first retransmission, before its second.
                CLIENT_TIMEOUT.mul_f64(1.1 + 0.8 * rng.u64(0..100) as f64 / 100.0)
            } else {
                // After the client gave up.
                all_tries + rng.millis(100..800)
            };
        }
        if faulty && self.faults.cut_mid_submit && rng.one_in(8) {
            let within = delay + 2 * self.smsc_wire.config().latency;
            let at = Duration::from_micros(rng.u64(0..=within.as_micros() as u64));
            self.smsc_cut_at = Some(now + at);
        }
        self.log(|| format!("smsc: submit of MT {id}, answer {verdict:?} in {delay:?}"));
        self.smsc.answer = Some((now + delay, id, verdict));
    }

    fn smsc_answer(&mut self, now: Instant) {
        let Some((at, id, verdict)) = self.smsc.answer else {
            return;
        };
        if at > now {
            return;
        }
        self.smsc.answer = None;
        let Some(s) = self.smsc.session.as_mut() else {
            return;
        };
        if s.pending_submit().is_none() {
            return;
        }
        self.progress += 1;
        let st = &mut self.smsc.mt[id as usize];
        let to = format!("4670{id:06}");
        let result = match verdict {
            Verdict::Accept => {
                st.accepts_sent += 1;
                if self.rng.one_in(3) {
                    self.smsc.reports.push_back(StatusReport {
                        destination: to.clone(),
                        sc_timestamp: "261201120000".into(),
                        status: STATUS_DELIVERED,
                        ..StatusReport::default()
                    });
                }
                s.accept_submit(&to, "261201120000", now)
            }
            Verdict::Refuse(code) | Verdict::GeneralError(code) => {
                st.codes_sent.push(code);
                if code == TEMPORARY || code == TEMPORARY_98 {
                    st.temporary_refusals_sent += 1;
                    self.stats.temporary_refusals += 1;
                } else {
                    self.stats.permanent_refusals += 1;
                }
                if let Verdict::GeneralError(code) = verdict {
                    self.stats.general_errors += 1;
                    s.general_error_submit(code, now)
                } else {
                    s.reject_submit(code, now)
                }
            }
            Verdict::Nack => {
                self.stats.nacks += 1;
                s.nack_submit(now)
            }
        };
        if let Err(e) = result {
            self.fail(format!("SMSC could not answer MT {id}: {e}"));
        }
    }

    /// The SMSC's next request: a status report if one waits, else the next MO.
    fn smsc_deliver(&mut self, now: Instant) {
        let smsc = &self.smsc;
        let idle = smsc.session.as_ref().is_some_and(|s| s.can_deliver())
            && !smsc.mo_in_flight
            && !smsc.report_in_flight
            && now >= smsc.next_request_at;
        let mo_left = smsc.mo_acked < smsc.mo_total;
        if !idle || (smsc.reports.is_empty() && !mo_left) {
            return;
        }
        // What the session wrote before goes out first, so that the tap sees the
        // new request on its own.
        self.smsc_transmit(now, false);
        let smsc = &mut self.smsc;
        let Some(s) = smsc.session.as_mut() else {
            return;
        };
        self.progress += 1;
        if let Some(report) = smsc.reports.front() {
            let result = s.status_report(report, now);
            smsc.report_in_flight = true;
            if let Err(e) = result {
                self.fail(format!("SMSC could not send a status report: {e}"));
            }
            return;
        }
        let id = smsc.mo_acked;
        let result = s.deliver(&mo_message(id), now);
        smsc.mo_in_flight = true;
        if let Err(e) = result {
            self.fail(format!("SMSC could not deliver MO {id}: {e}"));
        }
        self.smsc_transmit(now, true);
        self.log(|| format!("smsc: deliver MO {id}"));
        if self.faulty() && self.faults.cut_mid_deliver && self.rng.one_in(6) {
            let within = 4 * self.smsc_wire.config().latency;
            let at = Duration::from_micros(self.rng.u64(0..=within.as_micros() as u64));
            self.smsc_cut_at = Some(now + at);
        }
    }

    // ---- the link (both endpoints' drivers) ----

    fn schedule_link_dial(&mut self, now: Instant) {
        if self.link_dial_at.is_none() {
            self.link_dial_at = Some(now + self.rng.millis(20..500));
        }
    }

    fn endpoint(&mut self, end: End) -> &mut Endpoint {
        match end {
            End::A => &mut self.bs,
            End::B => &mut self.im.ep,
        }
    }

    fn link_dial(&mut self, now: Instant) {
        self.link_dial_at = None;
        if self.link_wire.is_open(End::A) {
            return;
        }
        // The acceptor drops a socket it still had (half-open) before it takes the
        // new one, and handles that connection's LinkDown first.
        if self.link_wire.is_open(End::B) {
            self.im.ep.connection_lost(now);
        }
        self.link_events(now);
        if !self.link_wire.connect(now) {
            self.schedule_link_dial(now);
            return;
        }
        self.progress += 1;
        self.bs.connected(now, Side::Dialer);
        self.im.ep.connected(now, Side::Listener);
    }

    fn link_arrivals(&mut self, now: Instant) {
        while let Some((to, arrival)) = self.link_wire.poll_arrival(now, &mut self.buf) {
            self.progress += 1;
            match arrival {
                Arrival::Bytes => {
                    let buf = std::mem::take(&mut self.buf);
                    let _ = self.endpoint(to).handle_input(&buf, now);
                    self.buf = buf;
                }
                Arrival::Fin | Arrival::Reset => {
                    self.endpoint(to).connection_lost(now);
                    self.schedule_link_dial(now);
                }
            }
        }
    }

    fn link_events(&mut self, now: Instant) {
        for end in End::BOTH {
            while let Some(event) = self.endpoint(end).poll_event() {
                self.progress += 1;
                match event {
                    Event::LinkDown { reason } => {
                        self.log(|| format!("link {end:?} down: {reason:?}"));
                        if matches!(reason, DownReason::Protocol(_) | DownReason::AuthFailed) {
                            self.fail(format!("link {end:?}: {reason:?} on a healthy stream"));
                        }
                        // Flush a CLOSE, then close the socket.
                        self.transmit(end, now);
                        self.link_wire.close(end, now);
                        if end == End::A {
                            self.schedule_link_dial(now);
                        }
                    }
                    Event::LinkUp { .. } => {
                        if end == End::A {
                            self.stats.link_ups += 1;
                            self.log(|| format!("link up; MO ring {:?}", self.bs.cursors()));
                        }
                    }
                    Event::AuthFailed { reason } => {
                        self.fail(format!("link {end:?}: authentication failed: {reason}"))
                    }
                    Event::StatusChanged {
                        state: SlotState::Processed,
                        outcome,
                        client_ref,
                        ..
                    } if end == End::B => self.on_mt_outcome(client_ref, outcome),
                    Event::StatusChanged { .. } | Event::Received { .. } => {}
                }
            }
        }
    }

    fn transmit(&mut self, end: End, now: Instant) {
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let n = self.endpoint(end).poll_transmit(now, &mut buf);
            if n > 0 {
                self.progress += 1;
                self.link_wire.write(end, &buf, now);
            }
            self.buf = buf;
            if n == 0 {
                return;
            }
        }
    }

    fn link_transmit(&mut self, now: Instant) {
        self.transmit(End::A, now);
        self.transmit(End::B, now);
    }

    // ---- the IM application ----

    fn im_turn(&mut self, now: Instant) {
        let rng = &mut self.rng;
        let im = &mut self.im;
        while let Some(&id) = im.outbox.front() {
            if now < im.next_send_at {
                break;
            }
            match im.ep.send(&mt_message(id)) {
                Ok(_) => {
                    self.progress += 1;
                    im.outbox.pop_front();
                    im.handed[id as usize].push(im.incarnation);
                    if !rng.one_in(4) {
                        im.next_send_at = now + rng.millis(0..2 * im.mt_gap_ms);
                    }
                }
                Err(_) => {
                    im.next_send_at = now + rng.millis(5..50);
                    break;
                }
            }
        }
        let mut received = vec![];
        let mut reports = vec![];
        while let Some((seq, m)) = im.ep.next_received() {
            match m.as_report() {
                // A delivery report on an MT: it names the MT by its client_ref.
                Some(_) => reports.push((seq, m.client_ref)),
                None => received.push((seq, id_of(m, "mo"))),
            }
        }
        for (seq, client_ref) in reports {
            self.progress += 1;
            if client_ref as usize >= self.smsc.mt.len() {
                self.fail(format!("report for an MT never sent: {client_ref}"));
            }
            self.im.to_process.push((now, seq));
        }
        for (seq, id) in received {
            self.progress += 1;
            self.on_mo(id);
            // The application stores it, usually at once, sometimes late.
            let delay = if self.rng.one_in(10) {
                self.rng.millis(300..2_500)
            } else {
                self.rng.millis(0..30)
            };
            self.im.to_process.push((now + delay, seq));
        }
        let mut k = 0;
        while k < self.im.to_process.len() {
            if self.im.to_process[k].0 <= now {
                let (_, seq) = self.im.to_process.swap_remove(k);
                if let Err(e) = self.im.ep.mark_processed(seq, Outcome::Accepted) {
                    self.fail(format!("IM: mark_processed({seq}): {e}"));
                }
                self.progress += 1;
            } else {
                k += 1;
            }
        }
    }

    /// An MO reached the application: in order within one process.
    fn on_mo(&mut self, id: u64) {
        let inc = self.im.incarnation;
        let prev = self
            .im
            .mo_seen
            .iter()
            .rev()
            .find(|(i, _)| *i == inc)
            .map(|(_, id)| *id);
        let ok = match prev {
            Some(p) => id == p || id == p + 1,
            None if inc == 0 => id == 0,
            None => id <= self.im.mo_seen.iter().map(|s| s.1 + 1).max().unwrap_or(0),
        };
        self.check(ok, || {
            format!("IM: MO {id} after MO {prev:?} (process {inc}): out of order or a gap")
        });
        self.check(id < self.smsc.mo_total, || format!("IM: unknown MO {id}"));
        self.log(|| format!("im: MO {id} received"));
        self.im.mo_seen.push((inc, id));
    }

    /// An MT's outcome reached the application: once per hand-over, as planned.
    fn on_mt_outcome(&mut self, id: u64, outcome: Option<Outcome>) {
        let inc = self.im.incarnation;
        let Some(outcome) = outcome else {
            self.fail(format!("IM: MT {id} Processed without an outcome"));
        };
        self.log(|| format!("im: MT {id} outcome {outcome:?}"));
        self.check((id as usize) < self.plans.len(), || {
            format!("IM: unknown MT {id}")
        });
        let i = id as usize;
        self.check(self.im.handed[i].contains(&inc), || {
            format!("IM: outcome of MT {id} in process {inc}, which never handed it over")
        });
        self.check(!self.im.outcomes[i].iter().any(|(n, _)| *n == inc), || {
            format!(
                "IM: a second outcome for MT {id}: {outcome:?} after {:?}",
                self.im.outcomes[i]
            )
        });
        self.im.outcomes[i].push((inc, outcome));
    }

    // ---- the invariants, once drained ----

    fn verify(&mut self) {
        // MT: submitted at least once; outcomes as planned, exactly once per hand-over
        // by the surviving process (at most once per earlier process: checked live).
        for (i, plan) in self.plans.iter().enumerate() {
            let at_smsc = &self.smsc.mt[i];
            let outcomes = &self.im.outcomes[i];
            self.check(at_smsc.submits > 0, || format!("MT {i} never submitted"));
            self.check(!outcomes.is_empty(), || {
                format!("MT {i}: no outcome reported")
            });
            for (inc, outcome) in outcomes {
                self.check(*outcome == plan.outcome(), || {
                    format!("MT {i} ({plan:?}): outcome {outcome:?} in process {inc}")
                });
                if *outcome == (Outcome::Rejected { code: TEMPORARY }) {
                    self.check(at_smsc.temporary_refusals_sent >= MAX_ATTEMPTS, || {
                        format!("MT {i}: given up before {MAX_ATTEMPTS} refusals ({at_smsc:?})")
                    });
                }
                let sent = match outcome {
                    Outcome::Accepted => at_smsc.accepts_sent > 0,
                    Outcome::Rejected { code } => at_smsc.codes_sent.contains(code),
                };
                self.check(sent, || {
                    format!("MT {i}: outcome {outcome:?} the SMSC never sent ({at_smsc:?})")
                });
            }
            if self.im.incarnation == 0 {
                self.check(outcomes.len() == 1 && self.im.handed[i].len() == 1, || {
                    format!(
                        "MT {i}: handed {:?}, outcomes {outcomes:?}",
                        self.im.handed[i]
                    )
                });
            }
        }
        // MO: every one the SMSC had acknowledged reached the application. The bridge
        // stores a copy exactly when it answers a deliver positively; a second answer
        // (a second copy) only after the SMSC missed the first one and delivered
        // again. A restarted IM process may get again what sat above the buffer
        // server's Last Processed.
        let mut copies = vec![0u32; self.smsc.mo_total as usize];
        for (_, id) in &self.im.mo_seen {
            copies[*id as usize] += 1;
        }
        for (id, &n) in copies.iter().enumerate() {
            let answered = self.mo_answered[id];
            let failed = self.smsc.mo_failed[id];
            let restarts = self.mo_restart_allowance[id];
            self.check(n >= 1, || {
                format!("MO {id} acknowledged but never reached the IM")
            });
            self.check(answered >= 1 && answered <= 1 + failed, || {
                format!(
                    "MO {id}: the bridge answered {answered} delivers of it positively; the \
                     SMSC missed the answer {failed} times"
                )
            });
            self.check(n >= answered && n <= answered + restarts, || {
                format!(
                    "MO {id} reached the IM {n} times; the bridge stored it {answered} times, \
                     {restarts} IM restarts found it above the buffer server's Last Processed"
                )
            });
            let by_smsc = u64::from(answered - 1);
            self.stats.mo_duplicates_smsc += by_smsc;
            self.stats.mo_duplicates_restart += u64::from(n - 1) - by_smsc;
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn run_scenario(sc: Scenario, salt: u64) {
    let trace = std::env::var_os("SMSLINK_BRIDGE_SIM_TRACE").is_some();
    let seeds: Vec<u64> = match env_u64("SMSLINK_BRIDGE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let n = env_u64("SMSLINK_BRIDGE_SIM_SEEDS")
                .or_else(|| env_u64("SMSLINK_SIM_SEEDS"))
                .unwrap_or(DEFAULT_SEEDS);
            let pinned = PINNED.iter().filter(|p| p.0 == sc.name).map(|p| p.1);
            pinned.chain((0..n).map(|i| i ^ (salt << 32))).collect()
        }
    };
    let mut total = Stats::default();
    for &seed in &seeds {
        let mut sim = Sim::new(seed, sc, trace);
        sim.run();
        sim.verify();
        total.add(&sim.stats);
    }
    eprintln!("scenario {}: {} seeds, {total:?}", sc.name, seeds.len());
}

#[test]
fn sim_smsc_faults() {
    run_scenario(
        Scenario {
            name: "smsc-faults",
            smsc_faults: true,
            link_faults: false,
            restart: Restart::Never,
        },
        11,
    );
}

#[test]
fn sim_link_faults() {
    run_scenario(
        Scenario {
            name: "link-faults",
            smsc_faults: false,
            link_faults: true,
            restart: Restart::Never,
        },
        12,
    );
}

#[test]
fn sim_im_restart() {
    run_scenario(
        Scenario {
            name: "im-restart",
            smsc_faults: true,
            link_faults: true,
            restart: Restart::Always,
        },
        13,
    );
}

#[test]
fn sim_everything() {
    run_scenario(
        Scenario {
            name: "everything",
            smsc_faults: true,
            link_faults: true,
            restart: Restart::PerSeed,
        },
        14,
    );
}
