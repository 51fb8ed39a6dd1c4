//! The event-loop thread of a node: one `mio::Poll` for every link's sockets (and
//! every SMSC connection), timers from the sans-IO cores' deadlines, a `Waker` for
//! work the handle queues. Each turn visits the links that have something to do
//! (readiness, sends, commands, a due timer: see `ready`), lets them and their
//! bridges react, writes, and publishes their events and cursors to the handle; a
//! turn's cost follows the busy links, not the idle ones.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::{Condvar, Mutex};

use super::admission::HandshakeBudget;
use super::api::*;
use super::journal_sync::SyncThread as JournalSync;
use super::link_driver::{LinkDriver, Role};
use super::log::Level;
use super::metrics_http::MetricsServer;
use super::notify::Notifier;
use super::ready::{PendingTokens, ReadySet, TimerHeap};
use super::shared::{command_queue, Command, CommandReceiver, LinkShared, Shared};
use super::smsc_driver::SmscDriver;
use super::spsc::{self, Producer};
use super::tls::TlsContexts;
use super::Backoff;
use crate::bridge::Bridge;
use crate::journal::FsStorage;
use crate::link::persist::{Endpoints, LinkState, Persistence};
use crate::link::{Endpoint, Event as LinkEvent};
use crate::ring::Outcome;
use crate::ring::SlotState as TxState;
use crate::sms::reassembly::{Offer, Reassembler};

const WAKER: Token = Token(usize::MAX - 1);
/// Tokens of a link: its listener, its connection, then its SMSC connections.
const TOKENS_PER_LINK: usize = 2 + SmscDriver::MAX_CONNECTIONS;
/// Status events kept when the application does not read them fast enough; beyond
/// this they are counted and dropped (messages are never dropped: they wait in
/// the rings).
const MAX_OVERFLOW: usize = 1 << 16;

/// Bind listeners, build every link (and bridge), start the thread.
pub(super) fn spawn(
    config: NodeConfig,
) -> Result<(Arc<Shared>, JoinHandle<ShutdownReport>), NodeError> {
    if config.links.is_empty() {
        return Err(NodeError::Config("a node needs at least one link".into()));
    }
    if config.links.len() > PendingTokens::MAX_LINKS {
        return Err(NodeError::Config(format!(
            "{} links: a node has at most {}",
            config.links.len(),
            PendingTokens::MAX_LINKS
        )));
    }
    let names: Vec<(&str, usize)> = config
        .links
        .iter()
        .map(|l| (l.config.name.as_str(), l.config.capacity))
        .collect();
    let (mut journal, mut restored) = match &config.journal {
        Some(spec) => {
            let (journal, states) = open_journal(spec, &names)?;
            (Some(journal), states)
        }
        None => (None, vec![None; names.len()]),
    };
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let now = Instant::now();

    let mut loop_links = Vec::with_capacity(config.links.len());
    let mut shared_links = Vec::with_capacity(config.links.len());
    let mut routes = Vec::new();
    let mut default_route = None;
    let mut ack_room = 64;
    let mut tls_contexts = TlsContexts::default();
    for (id, spec) in config.links.iter().enumerate() {
        // Records name the link by its position; the journal's Identity records
        // map them to names, so a reordered configuration is fine.
        let number = id as u32;
        // A buffer server's report map rides on its link's journal.
        let mut report_groups = Default::default();
        let endpoint = match (&journal, restored[id].take()) {
            (Some(_), Some(mut state)) => {
                report_groups = std::mem::take(&mut state.reports);
                Endpoint::restore(spec.config.clone(), number, state, now)
            }
            (Some(_), None) => Endpoint::with_journal(spec.config.clone(), number, now),
            (None, _) => Endpoint::new(spec.config.clone(), now),
        }
        .map_err(|e| NodeError::Config(format!("link {:?}: {e}", spec.config.name)))?;
        if let (Some(tls), Transport::Dial(_)) = (&spec.tls, &spec.transport) {
            let named = tls.server_name.is_some() || spec.config.expected_peer.is_some();
            if matches!(tls.peer, PeerAuth::CaFile(_)) && !named {
                return Err(NodeError::Config(format!(
                    "link {:?}: TLS with a CA: say which name the peer's certificate must carry (tls server_name, or the expected peer)",
                    spec.config.name
                )));
            }
        }
        let tls = match (&spec.tls, spec.insecure_plaintext) {
            (Some(tls), false) => Some(
                tls_contexts.get(tls, spec.config.expected_peer.as_deref()).map_err(|e| {
                    NodeError::Config(format!("link {:?}: TLS: {e}", spec.config.name))
                })?,
            ),
            (None, true) => None,
            (Some(_), true) => {
                return Err(NodeError::Config(format!(
                    "link {:?}: both TLS and insecure_plaintext are set",
                    spec.config.name
                )))
            }
            (None, false) => {
                return Err(NodeError::Config(format!(
                    "link {:?}: no TLS configured; set insecure_plaintext to run the link without encryption",
                    spec.config.name
                )))
            }
        };
        let capacity = spec.config.capacity;
        ack_room += capacity;
        let (producer, consumer) = spsc::channel(capacity);
        let base = id * TOKENS_PER_LINK;
        let mut listener = None;
        if let Transport::Listen(addr) = spec.transport {
            let mut l = TcpListener::bind(addr)?;
            poll.registry()
                .register(&mut l, Token(base), Interest::READABLE)?;
            listener = Some(l);
        }
        let local_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        for p in &spec.prefixes {
            routes.push((p.clone(), id));
        }
        if spec.default_route && default_route.is_none() {
            default_route = Some(id);
        }
        let role = match &spec.smsc {
            None => Role::Application,
            Some(smsc) => Role::BufferServer(Box::new(SmscDriver::new(
                id,
                smsc.addr,
                smsc.max_output,
                Token(base + 2),
                {
                    let mut bridge = Bridge::new(smsc.protocol.client(), smsc.bridge.clone());
                    bridge.restore_reports(std::mem::take(&mut report_groups), now);
                    bridge
                },
                Backoff::new(
                    config.reconnect_min,
                    config.reconnect_max,
                    config.seed ^ 0xc1d2 ^ (id as u64) << 32,
                ),
                now,
            ))),
        };
        shared_links.push(LinkShared {
            name: spec.config.name.clone(),
            capacity,
            serves_smsc: spec.smsc.is_some(),
            producer: Mutex::new((producer, endpoint.tx_cursors().last_retrieved + 1)),
            last_processed: AtomicU64::new(endpoint.tx_cursors().last_processed),
            journal_full: AtomicBool::new(false),
            overflow: journal.is_some(),
            local_addr,
            smsc_protocol: spec.smsc.as_ref().map(|s| s.protocol.name()),
            queued: AtomicBool::new(false),
        });
        loop_links.push(LinkDriver::new(
            endpoint,
            role,
            consumer,
            spec.transport.clone(),
            tls,
            listener,
            (Token(base), Token(base + 1)),
            Backoff::new(
                config.reconnect_min,
                config.reconnect_max,
                config.seed.wrapping_add(id as u64 * 7919),
            ),
            spec.admission.clone(),
            now,
        ));
    }
    // Longest prefix first, so the first match wins.
    routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
    if default_route.is_none() && routes.is_empty() {
        default_route = shared_links.iter().position(|l| !l.serves_smsc);
    }

    let (metrics, metrics_addr) = match config.metrics_listen {
        Some(addr) => {
            let (server, bound) = MetricsServer::bind(&poll, addr)?;
            (Some(server), Some(bound))
        }
        None => (None, None),
    };

    let (cmd_tx, cmd_rx) = command_queue(ack_room);
    let (ev_tx, ev_rx) = spsc::channel(config.event_capacity.max(16));
    let shared = Arc::new(Shared {
        links: shared_links,
        routes,
        default_route,
        commands: cmd_tx,
        events: Mutex::new(ev_rx),
        notifier: Notifier::new()?,
        waker,
        loop_idle: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        stats: Mutex::new(Vec::new()),
        journal_syncs: journal
            .as_ref()
            .map(|j| AtomicU64::new(j.journal().syncs())),
        metrics_addr,
        room_waiters: AtomicUsize::new(0),
        room_lock: Mutex::new(()),
        room_changed: Condvar::new(),
        sent: Mutex::new(Vec::new()),
        loop_stats: Mutex::new(LoopStats::default()),
    });
    if let Some(journal) = &mut journal {
        // The loop only writes records; this thread syncs them and wakes the loop
        // to release what waited for them.
        let waking = shared.clone();
        let runner = JournalSync::spawn(move || {
            let _ = waking.waker.wake();
        })?;
        journal.journal_mut().set_sync_runner(Box::new(runner));
    }
    let link_count = loop_links.len();
    // The first turn visits every link (dials, listeners' first accepts).
    let mut ready = ReadySet::new(link_count);
    for id in 0..link_count {
        ready.mark(id);
    }
    let mut event_loop = EventLoop {
        poll,
        shared: shared.clone(),
        links: loop_links,
        commands: cmd_rx,
        events: ev_tx,
        overflow: VecDeque::new(),
        events_dropped: 0,
        wake_app: false,
        pending_tokens: PendingTokens::new(),
        shutdown_deadline: None,
        metrics,
        journal: journal.take(),
        journal_problem: None,
        report_groups_not_kept: false,
        journal_full: false,
        woken: Vec::new(),
        revisit: ReadySet::new(link_count),
        durable: Vec::new(),
        reassembler: Reassembler::new(config.reassembly_timeout),
        joined: HashMap::new(),
        has_bridges: config.links.iter().any(|l| l.smsc.is_some()),
        ready,
        timers: TimerHeap::new(link_count),
        undelivered: ReadySet::new(link_count),
        delivering: Vec::new(),
        sent: Vec::new(),
        budget: HandshakeBudget::new(config.handshakes.clone(), now),
        visit: Vec::new(),
        loop_stats: LoopStats::default(),
    };
    event_loop.announce_restored();
    event_loop.publish_stats(&(0..link_count).collect::<Vec<_>>());
    let thread = std::thread::Builder::new()
        .name("smslink-node".into())
        .spawn(move || event_loop.run())?;
    Ok((shared, thread))
}

struct EventLoop {
    poll: Poll,
    shared: Arc<Shared>,
    links: Vec<LinkDriver>,
    commands: CommandReceiver,
    events: Producer<NodeEvent>,
    /// Status and link events that did not fit the event queue (bounded: see `emit`).
    overflow: VecDeque<NodeEvent>,
    events_dropped: u64,
    /// Events were queued (or a cursor moved) since the last wake of the application.
    wake_app: bool,
    /// Tokens of connections waiting for their link's current connection to end.
    pending_tokens: PendingTokens,
    shutdown_deadline: Option<Instant>,
    metrics: Option<MetricsServer>,
    /// The node's journal (one for every link: one sync covers them all).
    journal: Option<Persistence<FsStorage>>,
    /// What last went wrong with the journal, logged once until it clears.
    journal_problem: Option<String>,
    /// Report groups went unjournaled for lack of room (logged once).
    report_groups_not_kept: bool,
    /// The journal's full state as last published to every link.
    journal_full: bool,
    /// Links the last commit reached on its own (durable marks, backlog moved
    /// into the ring; every link when the full state changed): visited in the
    /// turn, so what waited goes out.
    woken: Vec<LinkId>,
    /// Builds a turn's list of links without repeats once the commit added some.
    revisit: ReadySet,
    /// Tx seqs that became durable in this turn's commit, per link.
    durable: Vec<(LinkId, std::ops::Range<u64>)>,
    /// Parts of concatenated MO, held (unprocessed in their ring) until whole.
    reassembler: Reassembler,
    /// A joined message's seq as the application knows it -> the seqs of all its
    /// parts, processed together when the application acknowledges it.
    joined: HashMap<(LinkId, u64), Vec<u64>>,
    /// Some link serves an SMSC (its bridge reacts again after the link's events).
    has_bridges: bool,
    /// Links to visit next turn, and each link's next deadline.
    ready: ReadySet,
    timers: TimerHeap,
    /// Application links with received messages the event queue had no room for,
    /// and the list a turn's delivery works through (kept for its allocation).
    undelivered: ReadySet,
    delivering: Vec<LinkId>,
    /// The handle's list of links with new sends, taken each turn.
    sent: Vec<LinkId>,
    /// Node-wide pace of dialled connection setups.
    budget: HandshakeBudget,
    /// The links of the current turn (kept to reuse its allocation).
    visit: Vec<LinkId>,
    loop_stats: LoopStats,
}

/// Open the node's journal and replay it: each configured link's remembered state,
/// by name. A corrupt journal, a directory another process holds or one that
/// cannot be written fails the start with the path (and offset) in the error.
fn open_journal(
    spec: &JournalSpec,
    names: &[(&str, usize)],
) -> Result<(Persistence<FsStorage>, Vec<Option<LinkState>>), NodeError> {
    let dir = spec.dir.display();
    let storage = FsStorage::new(&spec.dir)
        .map_err(|e| NodeError::Config(format!("journal directory {dir}: {e}")))?;
    let (journal, states, recovery) = Persistence::open(storage, spec.config.clone(), names)
        .map_err(|e| NodeError::Config(format!("journal {dir}: {e}")))?;
    let restored = states.iter().filter(|s| s.is_some()).count();
    crate::slog!(
        Level::Info,
        "event=journal_open dir=\"{dir}\" segments={} records={} links_restored={restored}",
        recovery.segments,
        recovery.records
    );
    if let Some(cut) = &recovery.cut {
        crate::slog!(
            Level::Warn,
            "event=journal_cut path=\"{}\" offset={} repaired={} dropped_records={} dropped_bytes={} reason=\"{}\"",
            cut.path.display(),
            cut.offset,
            cut.repaired,
            cut.dropped_records,
            cut.dropped_bytes,
            cut.damage
        );
    }
    Ok((journal, states))
}

impl EventLoop {
    fn run(mut self) -> ShutdownReport {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            self.turn(now);
            if let Some(deadline) = self.shutdown_deadline {
                if now >= deadline || self.is_drained() {
                    break;
                }
            }
            // Announce idleness, then look once more so a wake cannot be lost.
            self.shared.loop_idle.store(true, Ordering::SeqCst);
            if !self.commands.is_empty() || !self.shared.sent.lock().is_empty() {
                self.shared.loop_idle.store(false, Ordering::SeqCst);
                continue;
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    crate::slog!(Level::Error, "event=poll_failed error=\"{e}\"");
                    break;
                }
            }
            self.shared.loop_idle.store(false, Ordering::SeqCst);
            let now = Instant::now();
            for ev in events.iter() {
                self.on_ready(ev.token(), ev.is_readable(), ev.is_writable(), now);
            }
        }
        self.finish()
    }

    fn finish(mut self) -> ShutdownReport {
        let now = Instant::now();
        // What the last turn stored is made durable (the sync under way included),
        // and the commit after the flush releases what waited for it, so its
        // acknowledgements may still go out below.
        let all: Vec<LinkId> = (0..self.links.len()).collect();
        self.commit_journal(now, &all);
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.flush(now) {
                crate::slog!(Level::Error, "event=journal_flush_failed error=\"{e}\"");
            }
        }
        self.commit_journal(now, &all);
        // The peer must get the last acknowledgements and the CLOSE; bounded so a
        // dead peer cannot hold the shutdown.
        let linger_until = now + Duration::from_millis(500);
        for link in &mut self.links {
            link.finish(now, linger_until);
        }
        self.drain_link_events(&all);
        self.publish_stats(&all);
        self.flush_overflow();
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notifier.notify();
        self.shared.signal_room();
        let links = self.shared.stats.lock().clone();
        ShutdownReport {
            drained: links.iter().all(|l| l.tx_in_use == 0 && l.tx_backlog == 0),
            smsc: links.iter().find_map(|l| l.smsc),
            links,
        }
    }

    fn is_drained(&self) -> bool {
        self.links.iter().all(|l| l.is_drained())
    }

    /// One pass over the links that may have work (commands, queued sends, due
    /// timers, readiness since the last turn): the bridges, timers, output, events.
    fn turn(&mut self, now: Instant) {
        self.drain_commands(now);
        self.take_sent();
        let ready = &mut self.ready;
        self.timers.pop_due(now, |id| ready.mark(id));
        while let Some(id) = self.budget.grant_next(now) {
            self.links[id].grant_handshake(now);
            self.ready.mark(id);
        }
        let mut visit = std::mem::take(&mut self.visit);
        visit.clear();
        self.ready.drain_into(&mut visit);
        self.loop_stats.turns += 1;
        for &id in &visit {
            let link = &mut self.links[id];
            link.take_outgoing();
            link.check_timers(&self.poll, now, &mut self.budget, id);
            // Accepting is driven by the listener's readiness; after a failed accept
            // (e.g. out of descriptors) the edge is gone, so retry when the pause ends.
            link.retry_accept(&self.poll, now, &mut self.pending_tokens, id);
            link.read_leftover(&self.poll, now);
            link.bridge_turn(&self.poll, now);
            link.endpoint.handle_timeout(now);
            link.write(now);
        }
        if self.journal.is_some() {
            // With overflow to disk the send queue, not the ring, is the limit: a
            // sender waiting for room waits for this turn to empty it.
            self.shared.signal_room();
        }
        self.drain_link_events(&visit);
        // Bridges react to what their link just reported (freed slots, new MT).
        if self.has_bridges {
            self.bridges_and_output(&visit, now);
        }
        if self.journal.is_some() {
            // Group commit: every record of this turn in one sync; then what
            // waited for it (acknowledgements, outcomes, DATA, MO answers) goes out.
            // Records are made only on a visit (records made after a turn's
            // commit queue their link for the next turn, see below), so the
            // visited links are the ones to commit.
            self.commit_journal(now, &visit);
            // A sync can make records of earlier turns durable on links this turn
            // did not visit: the commit names them.
            if !self.woken.is_empty() {
                for &id in visit.iter().chain(&self.woken) {
                    self.revisit.mark(id);
                }
                visit.clear();
                self.revisit.drain_into(&mut visit);
                self.woken.clear();
            }
            self.bridges_and_output(&visit, now);
        }
        // Counted here: the links a commit reached are visited too.
        self.loop_stats.link_visits += visit.len() as u64;
        self.deliver_received(now, &visit);
        self.flush_overflow();
        self.publish_stats(&visit);
        for &id in &visit {
            let link = &mut self.links[id];
            if link.release_handshake() {
                self.budget.finished();
            }
            // Reads that stopped at their budget, and records made after this turn's
            // commit, are taken up in the next turn.
            if link.wants_read() || link.endpoint.has_records() {
                self.ready.mark(id);
            }
            self.timers.schedule(id, link.next_deadline(now));
        }
        self.visit = visit;
        self.publish_loop_stats();
        if let Some(metrics) = &mut self.metrics {
            metrics.turn(&self.poll, now);
        }
        // One wake per turn for everything queued in it (a syscall per event would
        // cost the loop more than the events themselves).
        if std::mem::take(&mut self.wake_app) {
            self.shared.notifier.notify();
        }
    }

    /// The links the handle queued messages on: visit them this turn. A link's flag
    /// is cleared before its queue is read, so a later send queues it again. The
    /// clearing is a swap, not a store: it reads the flag a sender's swap last
    /// wrote, so what that sender pushed before is visible to this turn's read (a
    /// plain store could let the read see the queue as it was before the push).
    fn take_sent(&mut self) {
        // Swapped with the loop's own list, so neither side allocates once both
        // have grown.
        std::mem::swap(&mut *self.shared.sent.lock(), &mut self.sent);
        for &id in &self.sent {
            self.shared.links[id].queued.swap(false, Ordering::AcqRel);
            self.ready.mark(id);
        }
        self.sent.clear();
    }

    /// Bridges react to their link, then output goes out; their events are drained.
    fn bridges_and_output(&mut self, ids: &[LinkId], now: Instant) {
        for &id in ids {
            let link = &mut self.links[id];
            link.bridge_turn(&self.poll, now);
            link.write(now);
        }
        self.drain_link_events(ids);
    }

    fn publish_loop_stats(&mut self) {
        self.loop_stats.handshakes_in_progress = self.budget.in_progress();
        self.loop_stats.handshakes_peak = self.budget.peak();
        self.loop_stats.handshakes_waiting = self.budget.waiting();
        *self.shared.loop_stats.lock() = self.loop_stats;
    }

    /// Append the records of the links in `touched` (and of any the journal
    /// left waiting), commit once, and tell the application which of its messages
    /// are now durable. The links the commit reached otherwise go to `woken`.
    fn commit_journal(&mut self, now: Instant, touched: &[LinkId]) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        let durable = &mut self.durable;
        let result = journal.commit_links(
            self.links.as_mut_slice(),
            touched.iter().copied(),
            now,
            |link, seqs| durable.push((link, seqs)),
        );
        journal.take_woken(&mut self.woken);
        if matches!(&result, Ok(r) if r.reports_not_kept > 0) && !self.report_groups_not_kept {
            self.report_groups_not_kept = true;
            crate::slog!(
                Level::Warn,
                "event=report_groups_not_journaled dir=\"{}\" detail=\"the report map's share of the journal is used up: reports of newer MT are matched from memory only until older ones finish\"",
                journal.journal().storage().dir().display()
            );
        }
        let problem = match result {
            Ok(report) => report.blocked,
            Err(e) => Some(e.to_string()),
        };
        match (&problem, &self.journal_problem) {
            (Some(p), last) if last.as_ref() != Some(p) => {
                crate::slog!(
                    Level::Error,
                    "event=journal_blocked dir=\"{}\" error=\"{p}\"",
                    journal.journal().storage().dir().display()
                );
            }
            (None, Some(_)) => crate::slog!(
                Level::Info,
                "event=journal_resumed dir=\"{}\"",
                journal.journal().storage().dir().display()
            ),
            _ => {}
        }
        self.journal_problem = problem;
        if let Some(syncs) = &self.shared.journal_syncs {
            syncs.store(journal.journal().syncs(), Ordering::Relaxed);
        }
        let full = journal.is_full();
        if full != self.journal_full {
            // Every link's senders hear it (rare: the disk budget used up, or room
            // again), and every link is visited.
            self.journal_full = full;
            for id in 0..self.links.len() {
                self.shared.links[id]
                    .journal_full
                    .store(full, Ordering::Release);
                self.woken.push(id);
            }
            if !full {
                self.shared.signal_room();
                self.wake_app = true;
            }
        }
        let mut durable = std::mem::take(&mut self.durable);
        for (id, seqs) in durable.drain(..) {
            self.emit_durable(id, seqs);
        }
        self.durable = durable;
    }

    /// `Durable` for each seq of an application link (a buffer server's MO are
    /// answered to the SMSC instead).
    fn emit_durable(&mut self, id: LinkId, seqs: std::ops::Range<u64>) {
        if !matches!(self.links[id].role, Role::Application) {
            return;
        }
        for seq in seqs {
            let client_ref = self.links[id].endpoint.tx_client_ref(seq).unwrap_or(0);
            self.emit(NodeEvent::Durable {
                link: id,
                seq,
                client_ref,
            });
        }
    }

    /// After a restart, the messages the journal gave back are reported durable
    /// again: the application may have missed the first report when it stopped.
    fn announce_restored(&mut self) {
        for id in 0..self.links.len() {
            let ep = &self.links[id].endpoint;
            let ring = ep.tx_ring();
            let c = ring.cursors();
            let held = (c.last_processed + 1..=c.last_retrieved)
                .filter(|&seq| {
                    ring.slot(seq)
                        .is_some_and(|s| s.state != TxState::Processed)
                })
                .collect::<Vec<_>>();
            let backlog = c.last_retrieved + 1..c.last_retrieved + 1 + ep.backlog();
            for seq in held {
                self.emit_durable(id, seq..seq + 1);
            }
            self.emit_durable(id, backlog);
        }
    }

    fn drain_commands(&mut self, now: Instant) {
        while let Some(cmd) = self.commands.pop() {
            match cmd {
                Command::Ack { link, seq, outcome } => {
                    self.ready.mark(link);
                    let seqs = self
                        .joined
                        .remove(&(link, seq))
                        .unwrap_or_else(|| vec![seq]);
                    if let Some(l) = self.links.get_mut(link) {
                        for seq in seqs {
                            if let Err(e) = l.endpoint.mark_processed(seq, outcome) {
                                crate::slog!(
                                    Level::Warn,
                                    "link={} event=bad_ack seq={seq} error=\"{e}\"",
                                    l.name()
                                );
                            }
                        }
                    }
                }
                Command::Shutdown { flush } => {
                    self.shared.stopped.store(true, Ordering::Release);
                    self.shared.signal_room();
                    self.shutdown_deadline = Some(now + flush);
                    for id in 0..self.links.len() {
                        self.ready.mark(id);
                    }
                    for link in &mut self.links {
                        if let Some(smsc) = link.smsc_mut() {
                            smsc.begin_shutdown();
                        }
                    }
                }
            }
        }
    }

    fn on_ready(&mut self, token: Token, readable: bool, writable: bool, now: Instant) {
        if token == WAKER {
            return;
        }
        if MetricsServer::owns(token) {
            if let Some(metrics) = &mut self.metrics {
                metrics.on_ready(&self.poll, token, now, &self.shared);
            }
            return;
        }
        if let Some(id) = PendingTokens::link_of(token) {
            // Waiting connections are only peeked at: refuse what is not a link peer.
            if let Some(link) = self.links.get_mut(id) {
                link.screen_pending(&self.poll, token, now);
                self.ready.mark(id);
            }
            return;
        }
        let id = token.0 / TOKENS_PER_LINK;
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        self.ready.mark(id);
        if token == link.listener_token {
            link.accept(&self.poll, now, &mut self.pending_tokens, id);
        } else if token == link.conn_token {
            link.on_conn_ready(&self.poll, readable, writable, now);
        } else if let Some(smsc) = link.smsc_mut() {
            if let Some(i) = smsc.conn_of(token) {
                smsc.on_ready(&self.poll, i, readable, writable, now);
            }
        }
    }

    fn drain_link_events(&mut self, ids: &[LinkId]) {
        // Read once per drain, and only when a status event needs it.
        let mut now = None;
        for &id in ids {
            while let Some(ev) = self.links[id].endpoint.poll_event() {
                let out = match ev {
                    LinkEvent::LinkUp { peer, .. } => {
                        let link = &mut self.links[id];
                        link.on_link_up(&peer, *now.get_or_insert_with(Instant::now));
                        crate::slog!(Level::Info, "link={} event=up peer={peer}", link.name());
                        Some(NodeEvent::LinkUp { link: id, peer })
                    }
                    LinkEvent::LinkDown { reason } => {
                        let now = Instant::now();
                        let link = &mut self.links[id];
                        link.on_link_down(&reason, now);
                        // Clipped: a CLOSE carries up to a frame of the peer's text.
                        let reason = super::log::clip(&format!("{reason:?}")).into_owned();
                        crate::slog!(
                            Level::Info,
                            "link={} event=down peer_addr={} reason={reason}",
                            link.name(),
                            link.conn_peer()
                        );
                        // The connection this event is about may already be gone and
                        // a waiting one promoted (the endpoint is then connected to
                        // it): only a still-idle endpoint's socket is closed here.
                        if !link.endpoint.is_connected() {
                            link.drop_conn(&self.poll, now);
                        }
                        link.last_error = Some(reason.clone());
                        Some(NodeEvent::LinkDown { link: id, reason })
                    }
                    LinkEvent::AuthFailed { reason } => {
                        let now = *now.get_or_insert_with(Instant::now);
                        self.links[id].on_auth_failed(&reason.to_string(), now);
                        None
                    }
                    // Received messages are pulled in order by `deliver_received`
                    // (or by the link's bridge).
                    LinkEvent::Received { .. } => None,
                    LinkEvent::StatusChanged {
                        seq,
                        state,
                        outcome,
                        client_ref,
                    } => {
                        self.links[id].note_status(
                            seq,
                            state,
                            *now.get_or_insert_with(Instant::now),
                        );
                        Some(NodeEvent::Status {
                            link: id,
                            seq,
                            client_ref,
                            state,
                            outcome,
                        })
                    }
                };
                if let Some(ev) = out {
                    self.emit(ev);
                }
            }
            let tx = self.links[id].endpoint.tx_cursors();
            let before = self.shared.links[id]
                .last_processed
                .swap(tx.last_processed, Ordering::AcqRel);
            if before != tx.last_processed {
                // The Processed events were queued before the cursor moved: the wake
                // must come after this store, so that a sender who saw them and
                // found the ring still full looks again.
                self.wake_app = true;
                self.shared.signal_room();
            }
            if let Some(smsc) = self.links[id].smsc_mut() {
                while let Some(ev) = smsc.poll_event() {
                    if self.overflow.len() < MAX_OVERFLOW {
                        self.overflow.push_back(ev);
                    } else {
                        self.events_dropped += 1;
                    }
                }
            }
        }
    }

    fn emit(&mut self, ev: NodeEvent) {
        if self.overflow.is_empty() {
            if let Err(ev) = self.events.push(ev) {
                self.overflow.push_back(ev);
            }
            self.wake_app = true;
        } else if self.overflow.len() < MAX_OVERFLOW {
            self.overflow.push_back(ev);
        } else {
            self.events_dropped += 1;
        }
    }

    fn flush_overflow(&mut self) {
        let mut pushed = false;
        while let Some(ev) = self.overflow.pop_front() {
            match self.events.push(ev) {
                Ok(()) => pushed = true,
                Err(ev) => {
                    self.overflow.push_front(ev);
                    break;
                }
            }
        }
        if pushed {
            self.wake_app = true;
        }
    }

    /// Hand received messages to the application while the event queue has room
    /// (a buffer-server link's bridge takes its own). What stays in the ring waits
    /// there.
    /// Received messages to the application, in order; parts of a concatenated SMS
    /// are held until their message is whole (or its time is up).
    fn deliver_received(&mut self, now: Instant, visited: &[LinkId]) {
        let mut ready = self.reassembler.expire(now);
        // This turn's links and those that found no room before.
        for &id in visited {
            self.undelivered.mark(id);
        }
        let mut ids = std::mem::take(&mut self.delivering);
        self.undelivered.drain_into(&mut ids);
        for &id in &ids {
            let link = &mut self.links[id];
            if !matches!(link.role, Role::Application) {
                continue;
            }
            let mut all_taken = false;
            while self.overflow.is_empty() && self.events.free_slots() > ready.len() {
                let Some((seq, message)) = link.endpoint.next_received() else {
                    all_taken = true;
                    break;
                };
                if message.part.is_some() {
                    match self.reassembler.offer(id, seq, message, now) {
                        Offer::Held => {}
                        Offer::Joined(joined) => ready.push(joined),
                        Offer::Repeat => {
                            let _ = link.endpoint.mark_processed(seq, Outcome::Accepted);
                            // Its notice goes out (and its deadline is taken) on a visit.
                            self.ready.mark(id);
                        }
                    }
                    continue;
                }
                let report = message.as_report().map(|r| NodeEvent::Report {
                    link: id,
                    client_ref: message.client_ref,
                    state: r.state,
                    error: r.error,
                    parts: r.parts,
                });
                let is_report = report.is_some();
                let ev = report.unwrap_or_else(|| NodeEvent::Received {
                    link: id,
                    seq,
                    message: Box::new(message.clone()),
                });
                if self.events.push(ev).is_err() {
                    break;
                }
                self.wake_app = true;
                if is_report {
                    // A report asks nothing of the application: it is handed over,
                    // and its slot freed, in one step.
                    let _ = link.endpoint.mark_processed(seq, Outcome::Accepted);
                    self.ready.mark(id);
                }
            }
            if !all_taken {
                self.undelivered.mark(id);
            }
            // A ring full of parts that wait for parts behind it: give up the oldest.
            let c = link.endpoint.rx_cursors();
            let in_use = c.last_stored.saturating_sub(c.last_processed) as usize;
            if in_use >= link.endpoint.config().capacity && self.reassembler.held(id) >= in_use {
                ready.extend(self.reassembler.release_oldest(id));
            }
        }
        ids.clear();
        self.delivering = ids;
        for joined in ready {
            let seq = joined.seqs[0];
            if joined.seqs.len() > 1 {
                self.joined.insert((joined.link, seq), joined.seqs);
            }
            let ev = NodeEvent::Received {
                link: joined.link,
                seq,
                message: Box::new(joined.message),
            };
            // Room was checked above; should it be short, the overflow keeps the
            // message (unlike a status event, a message is never dropped).
            if !self.overflow.is_empty() {
                self.overflow.push_back(ev);
            } else if let Err(ev) = self.events.push(ev) {
                self.overflow.push_back(ev);
            }
            self.wake_app = true;
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Links queued for the next turn (reads left over, records to commit).
        if !self.ready.is_empty() {
            return Some(now);
        }
        let mut next = self.shutdown_deadline;
        // A journal that syncs at an interval must be committed again in time.
        if let Some(t) = self
            .journal
            .as_ref()
            .and_then(|j| j.journal().sync_deadline())
        {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        if let Some(t) = self.metrics.as_ref().and_then(|m| m.next_deadline()) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        for t in [self.timers.next(), self.budget.next_deadline()]
            .into_iter()
            .flatten()
        {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        if let Some(t) = self.reassembler.poll_timeout() {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        if self.shutdown_deadline.is_some() {
            // While draining, look again often enough to notice completion.
            let soon = now + Duration::from_millis(20);
            next = Some(next.map_or(soon, |n| n.min(soon)));
        }
        next
    }

    /// The snapshot of the links `ids` (those a turn touched), updated in place:
    /// no allocation once the strings are there.
    fn publish_stats(&mut self, ids: &[LinkId]) {
        let mut links = self.shared.stats.lock();
        links.resize_with(self.links.len(), LinkStats::default);
        for &id in ids {
            self.links[id].write_stats(&mut links[id]);
        }
    }
}

/// The journal reaches a link's endpoint through its driver.
impl Endpoints for [LinkDriver] {
    fn links(&self) -> usize {
        self.len()
    }

    fn endpoint(&mut self, link: usize) -> Option<&mut Endpoint> {
        self.get_mut(link).map(|l| &mut l.endpoint)
    }
}
