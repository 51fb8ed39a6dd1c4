//! What a link keeps in the journal, and how it is rebuilt: the one place that
//! joins [`Endpoint`](super::Endpoint) to the [`journal`](crate::journal).
//!
//! # What a link writes
//!
//! An endpoint built with [`Endpoint::with_journal`](super::Endpoint::with_journal)
//! (or [`restore`](super::Endpoint::restore)) reports every change that must
//! survive a crash as a [`Record`]; the driver drains them each turn with
//! [`Endpoint::take_records`](super::Endpoint::take_records):
//!
//! * `Accepted { Tx }` when `send` takes a message, `Accepted { Rx }` when a
//!   message from the peer is stored;
//! * `Processed` for both directions, with the outcome (the peer's, or our
//!   application's);
//! * `Identity` whenever the epoch, the peer's epoch or the receive offsets
//!   change, and a `Checkpoint` of the cursors at the end of a drain that moved
//!   them.
//!
//! Sent and Confirmed are transient: after a restart an unprocessed message is
//! sent again and the peer, which recognises seqs, ignores what it holds.
//!
//! # The durability boundary
//!
//! `take_records` returns a [`PersistMark`]; once the records drained up to then
//! are durable the driver hands it back with
//! [`Endpoint::records_durable`](super::Endpoint::records_durable). Until then the
//! endpoint keeps every promise that depends on them to itself:
//!
//! * it does not confirm (ACK, or AUTH after a reconnection) a received message;
//! * it does not announce a Processed outcome to the peer, nor widen the peer's
//!   flow-control window over a slot whose outcome is not durable;
//! * it does not put a message it accepted on the wire (so the peer never holds
//!   a seq this side could forget, and seqs stay unique across restarts).
//!
//! [`Persistence`] hands a mark back once the journal's durable LSN has passed its
//! records: with [`SyncPolicy::Interval`](crate::journal::SyncPolicy) that is at
//! the next sync (promises wait up to the interval, they are never made early);
//! with `Off` at once, as records count durable when written (the operator's
//! explicit choice: a power cut may lose what was confirmed). Without a journal
//! nothing waits.
//!
//! # Limits
//!
//! * The journal is released below the oldest record still needed, so one message
//!   that stays unprocessed for long (an MT the SMSC keeps refusing for a while)
//!   pins every segment written after it; once the disk budget is used up, new
//!   messages are refused (back-pressure) until it is processed. Records are not
//!   copied forward.
//! * A link renamed between runs is a new link: what the journal held under the
//!   old name is not given to it.
//!
//! # Rebuilding
//!
//! [`Persistence::open`] replays a node's journal and returns a [`LinkState`] per
//! link name: identity (the same epoch, so the peer recognises the same sender),
//! the unprocessed messages of both rings and their outcomes where known. Sending
//! ring: every message not Processed is held again (as Sent) and goes out again.
//! Receiving ring: every message stored and not Processed is delivered to the
//! application again (its acknowledgement was not durable); one Processed out of
//! order stays Processed and is never delivered again.
//!
//! [`Persistence::commit`] is the per-turn step for a whole node (group commit:
//! every link's records, one `commit`, then the marks handed back), and releases
//! the journal below the oldest record still needed. With a sync runner on the
//! journal (the runtime's sync thread), the commit only writes and starts a sync;
//! the marks it covers are handed back by the first commit after it finished.
//!
//! # Overflow to disk
//!
//! The ring stays the in-flight window. While it is full (the link is down or
//! slow), `send` still takes messages: each gets the next seq at once and lives
//! only in its `Accepted` record; the endpoint keeps no more than its client
//! reference. As the ring frees slots, [`Persistence::commit`] reads those records
//! back in order through a journal [`Cursor`] and hands them to the endpoint. RAM
//! stays bounded whatever the backlog; only the journal's disk budget
//! (`max_disk_bytes`) ends it, with back-pressure. A replay keeps no message for
//! the backlog either: the `Accepted` records and their outcomes say what is
//! still waiting, so no `Backlog` record is written.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use crate::journal::record::ReportGroup;
use crate::journal::{
    Cursor, Direction, Journal, JournalConfig, JournalError, LinkIdentity, Lsn, Record, Recovery,
    Storage,
};
use crate::message::Message;
use crate::ring::{Cursors, Held, Outcome, RxCursors, MAX_CAPACITY};

use super::ReadySet;

/// How far a link's records reach at one drain (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistMark {
    /// Highest tx seq whose `Accepted` record was drained.
    pub tx_accepted: u64,
    /// Highest rx (local) seq whose `Accepted` record was drained.
    pub rx_stored: u64,
    /// The receiving ring's Last Processed, its `Processed` records drained.
    pub rx_processed: u64,
    /// The sending ring's Last Processed, its `Processed` records drained.
    pub tx_processed: u64,
    /// `Processed { Rx }` records drained so far (a running count).
    pub rx_outcomes: u64,
}

impl PersistMark {
    fn max(self, o: PersistMark) -> PersistMark {
        PersistMark {
            tx_accepted: self.tx_accepted.max(o.tx_accepted),
            rx_stored: self.rx_stored.max(o.rx_stored),
            rx_processed: self.rx_processed.max(o.rx_processed),
            tx_processed: self.tx_processed.max(o.tx_processed),
            rx_outcomes: self.rx_outcomes.max(o.rx_outcomes),
        }
    }
}

/// The endpoint's side of persistence: records not yet drained and the watermarks.
#[derive(Debug)]
pub(super) struct Persist {
    pub(super) link: u32,
    records: Vec<Record>,
    /// What the records drained or waiting reach.
    pub(super) staged: PersistMark,
    /// What the driver reported durable.
    pub(super) durable: PersistMark,
    identity_dirty: bool,
    last_checkpoint: Option<(Cursors, RxCursors)>,
    /// Rx outcomes not yet durable: (running count, seq), oldest first.
    pub(super) unsynced_outcomes: VecDeque<(u64, u64)>,
    /// The journal refused an `Accepted` record (its disk budget is used up): the
    /// endpoint refuses `send` until it has room again.
    pub(super) full: bool,
    /// Highest rx seq restored from the journal (0: none).
    pub(super) rx_restored: u64,
    /// Overflow to disk: the tx seqs above the ring's Last Retrieved up to here
    /// were accepted while the ring was full; their messages are only in the
    /// journal (0 or below Last Retrieved: none).
    pub(super) backlog_high: u64,
    /// The client references of those seqs, oldest first (for durability reports).
    pub(super) backlog_refs: VecDeque<u64>,
}

impl Persist {
    pub(super) fn new(link: u32) -> Self {
        Persist {
            link,
            records: Vec::new(),
            staged: PersistMark::default(),
            durable: PersistMark::default(),
            identity_dirty: true,
            last_checkpoint: None,
            unsynced_outcomes: VecDeque::new(),
            full: false,
            rx_restored: 0,
            backlog_high: 0,
            backlog_refs: VecDeque::new(),
        }
    }

    /// Everything so far counts as durable (a restored state came from the journal).
    pub(super) fn restored(link: u32, mark: PersistMark, cursors: (Cursors, RxCursors)) -> Self {
        let mut p = Persist::new(link);
        p.staged = mark;
        p.durable = mark;
        // Written again at once: this run may number the link differently.
        p.identity_dirty = true;
        p.last_checkpoint = Some(cursors);
        p.rx_restored = mark.rx_stored;
        p
    }

    pub(super) fn accepted(&mut self, dir: Direction, seq: u64, message: &Message) {
        self.records.push(Record::Accepted {
            link: self.link,
            dir,
            seq,
            message: message.clone(),
        });
        match dir {
            Direction::Tx => self.staged.tx_accepted = seq,
            Direction::Rx => self.staged.rx_stored = seq,
        }
    }

    pub(super) fn processed(&mut self, dir: Direction, seq: u64, outcome: Outcome) {
        self.records.push(Record::Processed {
            link: self.link,
            dir,
            seq,
            outcome,
        });
        if dir == Direction::Rx {
            self.staged.rx_outcomes += 1;
            self.unsynced_outcomes
                .push_back((self.staged.rx_outcomes, seq));
        }
    }

    /// A record of the application layered on the link (a buffer server's report
    /// groups), journaled in order with the link's own.
    pub(super) fn report_group(&mut self, group: u64, state: Option<ReportGroup>) {
        let link = self.link;
        self.records.push(match state {
            Some(state) => Record::ReportGroup {
                link,
                group,
                state: Box::new(state),
            },
            None => Record::ReportDone { link, group },
        });
    }

    pub(super) fn identity_dirty(&self) -> bool {
        self.identity_dirty
    }

    pub(super) fn identity_changed(&mut self) {
        self.identity_dirty = true;
    }

    /// Records made (or an identity changed) since the last drain: the driver
    /// must commit again.
    pub(super) fn has_records(&self) -> bool {
        !self.records.is_empty() || self.identity_dirty
    }

    /// Move the records into `out`, closing them with the state records that
    /// changed; returns the mark to hand back once they are durable.
    pub(super) fn drain(
        &mut self,
        identity: Option<LinkIdentity>,
        cursors: (Cursors, RxCursors),
        out: &mut Vec<Record>,
    ) -> PersistMark {
        if let Some(identity) = identity {
            self.identity_dirty = false;
            self.records.push(Record::Identity {
                link: self.link,
                identity,
            });
        }
        if self.last_checkpoint != Some(cursors) {
            self.last_checkpoint = Some(cursors);
            self.records.push(Record::Checkpoint {
                link: self.link,
                tx: cursors.0,
                rx: cursors.1,
            });
        }
        out.append(&mut self.records);
        self.staged.tx_processed = cursors.0.last_processed;
        self.staged.rx_processed = cursors.1.last_processed;
        self.staged
    }

    /// Take `mark` as durable; returns the rx outcomes that may now be announced.
    pub(super) fn make_durable(&mut self, mark: PersistMark, announce: &mut impl FnMut(u64)) {
        self.durable = self.durable.max(mark);
        while let Some(&(n, seq)) = self.unsynced_outcomes.front() {
            if n > self.durable.rx_outcomes {
                break;
            }
            self.unsynced_outcomes.pop_front();
            announce(seq);
        }
    }
}

/// One link as the journal remembers it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub identity: LinkIdentity,
    pub tx: RingState,
    pub rx: RingState,
    /// A buffer server's MT awaiting delivery reports, by report group (see
    /// `Bridge::restore_reports`); the endpoint itself does not use them.
    pub reports: BTreeMap<u64, ReportGroup>,
}

/// One ring as the journal remembers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingState {
    /// Every seq up to here is Processed (a checkpoint said so).
    pub base: u64,
    /// Highest seq ever accepted.
    pub high: u64,
    /// What the journal still knows of each seq above `high - MAX_CAPACITY`: the
    /// message while not Processed, then the outcome. A seq missing is Processed.
    pub slots: BTreeMap<u64, Held>,
    /// Seqs not yet Processed beyond the ring's reach when they were accepted (a
    /// backlog on disk), with their client reference: the replay keeps no message
    /// for them; [`Persistence::open`] reads back those the ring takes.
    pub backlog: BTreeMap<u64, u64>,
    /// Slots of the ring the replay is for (messages beyond `base + capacity` are
    /// backlog).
    capacity: u64,
    /// Where each seq's records are: (`Accepted`, `Processed`) LSNs.
    lsns: BTreeMap<u64, (Lsn, Lsn)>,
}

impl RingState {
    fn accepted(&mut self, lsn: Lsn, seq: u64, message: Message) {
        self.high = self.high.max(seq);
        if seq > self.base {
            if seq > self.base.saturating_add(self.capacity) {
                self.backlog.insert(seq, message.client_ref);
            } else {
                self.slots
                    .entry(seq)
                    .or_insert_with(|| Held::Message(Box::new(message)));
            }
            self.lsns.entry(seq).or_insert((lsn, 0));
        }
        self.prune();
    }

    fn processed(&mut self, lsn: Lsn, seq: u64, outcome: Outcome) {
        self.backlog.remove(&seq);
        let slot = self.slots.entry(seq).or_insert(Held::Outcome(None));
        if !matches!(slot, Held::Outcome(Some(_))) {
            *slot = Held::Outcome(Some(outcome));
        }
        self.lsns.entry(seq).or_insert((lsn, lsn)).1 = lsn;
        self.prune();
    }

    fn checkpoint(&mut self, base: u64, high: u64) {
        self.base = self.base.max(base);
        self.high = self.high.max(high);
        self.prune();
    }

    /// Outcomes beyond any ring's reach, and messages a checkpoint says were
    /// processed, are forgotten: the replay's memory stays bounded.
    fn prune(&mut self) {
        let reach = self.high.saturating_sub(MAX_CAPACITY as u64);
        while let Some(entry) = self.slots.first_entry() {
            let seq = *entry.key();
            let gone =
                seq <= reach && (seq <= self.base || matches!(entry.get(), Held::Outcome(_)));
            if !gone {
                break;
            }
            entry.remove();
            self.lsns.remove(&seq);
        }
        while let Some(entry) = self.backlog.first_entry() {
            if *entry.key() > self.base {
                break;
            }
            self.lsns.remove(entry.key());
            entry.remove();
        }
    }

    /// The seqs the ring takes back at a restart: up to `capacity` from the oldest
    /// one not Processed.
    pub fn ring_high(&self) -> u64 {
        let oldest = self
            .slots
            .iter()
            .find(|(_, h)| matches!(h, Held::Message(_)))
            .map(|(&s, _)| s)
            .into_iter()
            .chain(self.backlog.keys().next().copied())
            .min();
        match oldest {
            Some(o) => self.high.min((o - 1).saturating_add(self.capacity)),
            None => self.high,
        }
    }
}

impl LinkState {
    fn new(identity: LinkIdentity, capacity: usize) -> Self {
        LinkState {
            identity,
            reports: BTreeMap::new(),
            tx: RingState {
                capacity: capacity as u64,
                ..RingState::default()
            },
            // The receiving ring has no backlog: the peer never sends beyond it.
            rx: RingState {
                capacity: u64::MAX,
                ..RingState::default()
            },
        }
    }

    fn ring(&mut self, dir: Direction) -> &mut RingState {
        match dir {
            Direction::Tx => &mut self.tx,
            Direction::Rx => &mut self.rx,
        }
    }

    fn apply(&mut self, lsn: Lsn, record: Record) {
        match record {
            Record::Identity { identity, .. } => self.identity = identity,
            Record::Checkpoint { tx, rx, .. } => {
                self.tx.checkpoint(tx.last_processed, tx.last_retrieved);
                self.rx.checkpoint(rx.last_processed, rx.last_stored);
            }
            Record::Accepted {
                dir, seq, message, ..
            } => self.ring(dir).accepted(lsn, seq, message),
            Record::Processed {
                dir, seq, outcome, ..
            } => self.ring(dir).processed(lsn, seq, outcome),
            Record::Backlog { .. } => {}
            Record::ReportGroup { group, state, .. } => {
                self.reports.insert(group, *state);
            }
            Record::ReportDone { group, .. } => {
                self.reports.remove(&group);
            }
        }
    }
}

/// Why the node's journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("link {name:?} in the journal: {error}")]
    Restore {
        name: String,
        error: crate::ring::RestoreError,
    },
}

/// A mark waiting for its records to reach the journal and become durable.
#[derive(Debug)]
struct Waiting {
    link: usize,
    /// Index of the last record queued before this mark was taken.
    upto: u64,
    mark: PersistMark,
}

/// Release bookkeeping of one ring of one link.
#[derive(Debug, Default)]
struct Needed {
    /// (seq, LSN) of `Accepted` records still needed, in seq order.
    accepted: VecDeque<(u64, Lsn)>,
    /// LSN of the `Processed` record of seqs above the oldest needed.
    processed: BTreeMap<u64, Lsn>,
    /// Highest seq whose `Accepted` record was appended.
    high: u64,
}

impl Needed {
    /// Forget the seqs at the front that no longer need their records: durably
    /// Processed and (`keep` > 0) not among the last `keep` accepted. Returns the
    /// LSN of the oldest record still needed.
    fn trim(&mut self, durable: Lsn, keep: u64) -> Option<Lsn> {
        while let Some(&(seq, lsn)) = self.accepted.front() {
            let done =
                self.processed.get(&seq).is_some_and(|&l| l <= durable) && seq + keep <= self.high;
            if !done {
                return Some(lsn);
            }
            self.accepted.pop_front();
            while self
                .processed
                .first_key_value()
                .is_some_and(|(&s, _)| s <= seq)
            {
                self.processed.pop_first();
            }
        }
        None
    }

    /// The seq at the front waits only for its `Processed` record to become
    /// durable: a later sync, not a new record, may let `trim` move on.
    fn waits_for_sync(&self, durable: Lsn) -> bool {
        self.accepted
            .front()
            .is_some_and(|(seq, _)| self.processed.get(seq).is_some_and(|&l| l > durable))
    }

    /// What `trim` would return, without changing anything (a check of the
    /// per-link bookkeeping in debug builds).
    #[cfg(debug_assertions)]
    fn oldest_needed(&self, durable: Lsn, keep: u64) -> Option<Lsn> {
        self.accepted
            .iter()
            .find(|&&(seq, _)| {
                !(self.processed.get(&seq).is_some_and(|&l| l <= durable)
                    && seq + keep <= self.high)
            })
            .map(|&(_, lsn)| lsn)
    }
}

/// A node's journal: replay at start, and the per-turn step (see the module docs).
pub struct Persistence<S: Storage> {
    journal: Journal<S>,
    /// Records drained and not yet appended, with their running index. A full
    /// journal refuses `Accepted` records; outcomes go past them (so that space can
    /// be released), everything else waits behind them.
    queue: VecDeque<(u64, usize, Record)>,
    queued: u64,
    /// Marks whose records are not all appended, oldest first.
    unappended: VecDeque<Waiting>,
    /// Marks appended, waiting for `durable_lsn` to reach the LSN.
    undurable: VecDeque<(Lsn, usize, PersistMark)>,
    /// Per link, per direction (Tx, Rx): which records are still needed.
    needed: Vec<[Needed; 2]>,
    /// Per link: where the last backlog message was read.
    cursors: Vec<Option<Cursor>>,
    scratch: Vec<Record>,
    /// The per-link state below is sized and seeded at the first commit, from
    /// the node's endpoints (one pass; every later commit costs what the links
    /// with work cost, not what the idle ones do).
    started: bool,
    /// Per link: receiving ring capacity (what `release` keeps of it).
    capacities: Vec<u64>,
    /// Links whose records the next commit takes, besides those its caller names.
    to_drain: ReadySet,
    /// Links with messages on disk beyond their ring (overflow): they enter when
    /// a commit takes their records, and leave once the ring took them all.
    backlogged: ReadySet,
    /// Links the last commit handed durable marks or backlog messages (see
    /// [`Persistence::take_woken`]).
    woken: ReadySet,
    /// What every endpoint was last told by `set_journal_full`.
    full: bool,
    /// Links whose oldest needed record may have moved: records appended for
    /// them, or the front one waits for a sync.
    to_trim: ReadySet,
    /// Per link: the LSN of its oldest record still needed, as last computed;
    /// and the same for every link that needs one, in order (its first entry
    /// bounds the release).
    oldest_of: Vec<Option<Lsn>>,
    oldest: BTreeSet<(Lsn, usize)>,
    scratch_ids: Vec<usize>,
}

/// The endpoints of a node, by link number, as [`Persistence::commit_links`]
/// reaches them (one at a time, only those with work).
pub trait Endpoints {
    /// How many links the node has (link numbers are `0..links()`).
    fn links(&self) -> usize;
    fn endpoint(&mut self, link: usize) -> Option<&mut super::Endpoint>;
}

impl Endpoints for [&mut super::Endpoint] {
    fn links(&self) -> usize {
        self.len()
    }

    fn endpoint(&mut self, link: usize) -> Option<&mut super::Endpoint> {
        self.get_mut(link).map(|e| &mut **e)
    }
}

impl<S: Storage> std::fmt::Debug for Persistence<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("queued", &self.queue.len())
            .field("durable_lsn", &self.journal.durable_lsn())
            .finish()
    }
}

/// What [`Persistence::commit`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// Records appended.
    pub appended: u64,
    /// Segments deleted.
    pub released: usize,
    /// The journal refused an append or a write (full disk or budget); records wait.
    pub blocked: Option<String>,
    /// Report groups not journaled: their share of each segment's head was used up.
    pub reports_not_kept: u64,
}

impl<S: Storage> Persistence<S> {
    /// Open (and recover) the journal, replay it, and give each link in `links`
    /// (name and ring capacity, by position) its remembered state, `None` for a
    /// link the journal does not know. Records of a link no longer configured are not kept for it: they go
    /// with their segments once the configured links no longer need them.
    #[allow(clippy::type_complexity)]
    pub fn open(
        storage: S,
        config: JournalConfig,
        links: &[(&str, usize)],
    ) -> Result<(Self, Vec<Option<LinkState>>, Recovery), PersistError> {
        let (journal, recovery) = Journal::open(storage, config)?;
        // Records carry the link number of the run that wrote them: Identity binds
        // it to a name, which maps it to this run's link.
        let mut by_number: HashMap<u32, String> = HashMap::new();
        let mut states: HashMap<String, LinkState> = HashMap::new();
        let mut pending: HashMap<u32, Vec<(Lsn, Record)>> = HashMap::new();
        for item in journal.records(recovery.first_lsn) {
            let (lsn, record) = item?;
            let number = record.link();
            if let Record::Identity { identity, .. } = &record {
                by_number.insert(number, identity.name.clone());
                let capacity = links
                    .iter()
                    .find(|(n, _)| *n == identity.name)
                    .map_or(0, |&(_, c)| c);
                let state = states
                    .entry(identity.name.clone())
                    .or_insert_with(|| LinkState::new(identity.clone(), capacity));
                for (l, r) in pending.remove(&number).unwrap_or_default() {
                    state.apply(l, r);
                }
            }
            match by_number.get(&number).and_then(|n| states.get_mut(n)) {
                Some(state) => state.apply(lsn, record),
                // Before any identity of its link (cannot happen in a journal we
                // wrote: each segment starts with the state copies).
                None => pending.entry(number).or_default().push((lsn, record)),
            }
        }
        let mut found: Vec<Option<LinkState>> =
            links.iter().map(|(name, _)| states.remove(*name)).collect();
        // Backlog messages the ring takes back at once are read from the journal.
        for state in found.iter_mut().flatten() {
            let tx = &mut state.tx;
            let upto = tx.ring_high();
            let mut due: Vec<(Lsn, u64)> = tx
                .backlog
                .range(..=upto)
                .map(|(&seq, _)| (tx.lsns.get(&seq).map_or(0, |l| l.0), seq))
                .collect();
            due.sort_unstable();
            // One pass from the oldest: the records lie in LSN order.
            let mut records = journal.records(due.first().map_or(0, |d| d.0));
            for (lsn, seq) in due {
                for item in records.by_ref() {
                    let (at, record) = item?;
                    if at < lsn {
                        continue;
                    }
                    if let (true, Record::Accepted { message, .. }) = (at == lsn, record) {
                        tx.backlog.remove(&seq);
                        tx.slots.insert(seq, Held::Message(Box::new(message)));
                    }
                    break;
                }
            }
        }
        let mut p = Persistence {
            journal,
            queue: VecDeque::new(),
            queued: 0,
            unappended: VecDeque::new(),
            undurable: VecDeque::new(),
            needed: (0..links.len()).map(|_| Default::default()).collect(),
            cursors: (0..links.len()).map(|_| None).collect(),
            scratch: Vec::new(),
            started: false,
            capacities: Vec::new(),
            to_drain: ReadySet::default(),
            backlogged: ReadySet::default(),
            woken: ReadySet::default(),
            full: false,
            scratch_ids: Vec::new(),
            to_trim: ReadySet::default(),
            oldest_of: vec![None; links.len()],
            oldest: BTreeSet::new(),
        };
        // What the restored rings hold keeps its records, as if just appended.
        let first = p.journal.first_lsn();
        for (needed, state) in p.needed.iter_mut().zip(&found) {
            let Some(s) = state else {
                continue;
            };
            for (ring, n) in [&s.tx, &s.rx].into_iter().zip(needed.iter_mut()) {
                n.high = ring.high;
                let mut seqs: Vec<u64> = ring
                    .slots
                    .keys()
                    .chain(ring.backlog.keys())
                    .copied()
                    .collect();
                seqs.sort_unstable();
                for seq in seqs {
                    let (accepted, processed) =
                        ring.lsns.get(&seq).copied().unwrap_or((first, first));
                    n.accepted.push_back((seq, accepted));
                    if let Some(Held::Outcome(_)) = ring.slots.get(&seq) {
                        n.processed.insert(seq, processed.max(accepted));
                    }
                }
            }
        }
        Ok((p, found, recovery))
    }

    pub fn journal(&self) -> &Journal<S> {
        &self.journal
    }

    pub fn journal_mut(&mut self) -> &mut Journal<S> {
        &mut self.journal
    }

    pub fn into_storage(self) -> S {
        self.journal.into_storage()
    }

    /// Records drained but not yet in the journal (it was full).
    pub fn backlog(&self) -> usize {
        self.queue.len()
    }

    /// The per-turn step: drain every endpoint's records (in link order), append
    /// them, commit once, hand each endpoint back the marks now durable, and
    /// release what no link needs any more. `on_durable(link, seqs)` hears the tx
    /// seqs that became durable.
    ///
    /// A full journal (its disk budget, or the disk) is not an error: the records
    /// wait, the endpoints refuse new messages, and the report says why.
    pub fn commit(
        &mut self,
        endpoints: &mut [&mut super::Endpoint],
        now: Instant,
        on_durable: impl FnMut(usize, std::ops::Range<u64>),
    ) -> Result<CommitReport, PersistError> {
        let all = 0..endpoints.len();
        self.commit_links(endpoints, all, now, on_durable)
    }

    /// [`commit`](Self::commit) for a node with many links, costing what its
    /// links with work cost: only the records of the links in `touched` (those
    /// that may have made records since the last commit) are taken, together with
    /// those of links this journal itself left with records. Endpoints are
    /// otherwise reached only when a mark of theirs becomes durable, when their
    /// backlog on disk can move into the ring (both listed by
    /// [`take_woken`](Self::take_woken)), or when the journal's full state
    /// changes (every link: see [`is_full`](Self::is_full)). A link that made
    /// records and is not in `touched` waits (its promises with it) until it is.
    pub fn commit_links<E: Endpoints + ?Sized>(
        &mut self,
        endpoints: &mut E,
        touched: impl IntoIterator<Item = usize>,
        now: Instant,
        mut on_durable: impl FnMut(usize, std::ops::Range<u64>),
    ) -> Result<CommitReport, PersistError> {
        self.start(endpoints);
        let mut report = CommitReport::default();
        for i in touched {
            self.to_drain.mark(i);
        }
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        self.to_drain.drain_into(&mut ids);
        for &i in &ids {
            let Some(ep) = endpoints.endpoint(i) else {
                continue;
            };
            let mut records = std::mem::take(&mut self.scratch);
            if let Some(mark) = ep.take_records(&mut records) {
                for r in records.drain(..) {
                    self.queued += 1;
                    self.queue.push_back((self.queued, i, r));
                }
                self.unappended.push_back(Waiting {
                    link: i,
                    upto: self.queued,
                    mark,
                });
            }
            self.scratch = records;
            if ep.backlog() > 0 {
                self.backlogged.mark(i);
            }
        }
        self.scratch_ids = ids;
        let full = self.append_queued(&mut report)?;
        if full != self.full {
            // Rare (the disk budget used up, or room again): every link hears it.
            self.full = full;
            for i in 0..endpoints.links() {
                if let Some(ep) = endpoints.endpoint(i) {
                    ep.set_journal_full(full);
                }
            }
        }
        let last = self.journal.next_lsn() - 1;
        let oldest_queued = self.queue.front().map_or(u64::MAX, |q| q.0);
        while self
            .unappended
            .front()
            .is_some_and(|w| w.upto < oldest_queued)
        {
            if let Some(w) = self.unappended.pop_front() {
                self.undurable.push_back((last, w.link, w.mark));
            }
        }
        let durable = match self.journal.commit(now) {
            Ok(lsn) => lsn,
            Err(e @ JournalError::DiskFull { .. }) => {
                report.blocked = Some(e.to_string());
                self.journal.durable_lsn()
            }
            Err(e) => return Err(e.into()),
        };
        while self
            .undurable
            .front()
            .is_some_and(|(l, _, _)| *l <= durable)
        {
            let Some((_, link, mark)) = self.undurable.pop_front() else {
                break;
            };
            if let Some(ep) = endpoints.endpoint(link) {
                let seqs = ep.records_durable(mark);
                self.woken.mark(link);
                if ep.has_records() {
                    self.to_drain.mark(link);
                }
                if !seqs.is_empty() {
                    on_durable(link, seqs);
                }
            }
        }
        self.load_backlog(endpoints)?;
        report.released = self.release()?;
        Ok(report)
    }

    /// The links the commits since the last call reached on their own (marks made
    /// durable, backlog moved into the ring): what waited may go out now, so the
    /// driver visits them. Into `out`, emptying the list.
    pub fn take_woken(&mut self, out: &mut Vec<usize>) {
        self.woken.drain_into(out);
    }

    /// The journal refused records for lack of room at the last commit: every
    /// endpoint refuses new messages until a commit finds room again.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Size the per-link state and seed it from every endpoint, once: the rings'
    /// capacities do not change while the node runs, and a restored backlog is
    /// known from the start.
    fn start<E: Endpoints + ?Sized>(&mut self, endpoints: &mut E) {
        if self.started {
            return;
        }
        self.started = true;
        let links = endpoints.links().max(self.needed.len());
        self.to_drain = ReadySet::new(links);
        self.backlogged = ReadySet::new(links);
        self.woken = ReadySet::new(links);
        self.to_trim = ReadySet::new(links);
        // The restored rings' records, seeded at open.
        for i in 0..self.needed.len() {
            self.to_trim.mark(i);
        }
        self.capacities = (0..links)
            .map(|i| {
                endpoints
                    .endpoint(i)
                    .map_or(0, |ep| ep.rx_ring().capacity() as u64)
            })
            .collect();
        for i in 0..endpoints.links() {
            if endpoints.endpoint(i).is_some_and(|ep| ep.backlog() > 0) {
                self.backlogged.mark(i);
            }
        }
    }

    /// Read backlog messages back into the rings that have room (only links with
    /// a backlog are looked at).
    fn load_backlog<E: Endpoints + ?Sized>(
        &mut self,
        endpoints: &mut E,
    ) -> Result<(), PersistError> {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        ids.extend_from_slice(self.backlogged.ids());
        let result = ids.iter().try_for_each(|&i| match endpoints.endpoint(i) {
            Some(ep) => self.load_link_backlog(i, ep),
            None => Ok(()),
        });
        self.scratch_ids = ids;
        self.backlogged
            .retain(|i| endpoints.endpoint(i).is_some_and(|ep| ep.backlog() > 0));
        result
    }

    /// Move link `i`'s backlog messages the ring has room for into it.
    fn load_link_backlog(
        &mut self,
        i: usize,
        ep: &mut super::Endpoint,
    ) -> Result<(), PersistError> {
        while let Some(seq) = ep.backlog_next() {
            let Some(needed) = self.needed.get(i) else {
                break;
            };
            let accepted = &needed[Direction::Tx as usize].accepted;
            let Ok(at) = accepted.binary_search_by_key(&seq, |e| e.0) else {
                break;
            };
            let lsn = accepted[at].1;
            // One cursor per link, moved forward: backlog records lie in order.
            let oldest = self.journal.first_lsn();
            let cursor = match self.cursors.get_mut(i) {
                Some(Some(c)) if (oldest..=lsn).contains(&c.next_lsn()) => c,
                Some(slot) => slot.insert(self.journal.cursor(lsn)),
                None => break,
            };
            let mut found = None;
            while let Some((at, record)) = self.journal.read_next(cursor)? {
                if at == lsn {
                    found = Some(record);
                    break;
                }
            }
            match found {
                Some(Record::Accepted { message, .. }) if ep.load_backlog(seq, &message) => {
                    self.woken.mark(i);
                }
                // Not written yet (a full disk): try again next turn.
                _ => break,
            }
        }
        Ok(())
    }

    /// Append what is queued, in order; past an `Accepted` record the journal
    /// refuses as full, only outcomes that do not depend on a waiting record go on.
    /// Returns whether the journal refused one.
    fn append_queued(&mut self, report: &mut CommitReport) -> Result<bool, PersistError> {
        let mut full = false;
        let mut kept = VecDeque::new();
        while let Some((index, link, record)) = self.queue.pop_front() {
            let passes = !full
                || match &record {
                    // The seq was durable before its outcome could exist.
                    Record::Processed {
                        dir: Direction::Tx, ..
                    } => true,
                    Record::Processed {
                        dir: Direction::Rx,
                        seq,
                        ..
                    } => !kept.iter().any(|(_, l, r)| {
                        *l == link && accepted_key(r) == Some((Direction::Rx, *seq))
                    }),
                    _ => false,
                };
            if !passes {
                kept.push_back((index, link, record));
                continue;
            }
            match self.journal.append(&record) {
                Ok(lsn) => {
                    report.appended += 1;
                    self.note_appended(link, &record, lsn);
                }
                Err(e @ JournalError::Full { .. }) => {
                    full = true;
                    report.blocked = Some(e.to_string());
                    kept.push_back((index, link, record));
                }
                // Too many report groups to copy at every segment's head: this one
                // is matched from memory only (a restart forgets it).
                Err(JournalError::ReportStateFull { .. }) => report.reports_not_kept += 1,
                Err(e) => {
                    kept.push_back((index, link, record));
                    kept.extend(self.queue.drain(..));
                    self.queue = kept;
                    return Err(e.into());
                }
            }
        }
        self.queue = kept;
        Ok(full)
    }

    fn note_appended(&mut self, link: usize, record: &Record, lsn: Lsn) {
        let Some(needed) = self.needed.get_mut(link) else {
            return;
        };
        self.to_trim.mark(link);
        match record {
            Record::Accepted { dir, seq, .. } => {
                let n = &mut needed[*dir as usize];
                n.accepted.push_back((*seq, lsn));
                n.high = n.high.max(*seq);
            }
            Record::Processed { dir, seq, .. } => {
                needed[*dir as usize].processed.insert(*seq, lsn);
            }
            _ => {}
        }
    }

    /// Release the journal below the oldest record still needed, over every link
    /// and direction: in the sending ring, an `Accepted` record until its seq's
    /// `Processed` record is durable; in the receiving ring, also while the seq is
    /// among the last `capacity` stored (a restart must still know those outcomes,
    /// which the peer may not have heard yet).
    ///
    /// Only the links whose oldest needed record may have moved are looked at
    /// (`to_trim`): for any other, nothing was appended since, and what holds its
    /// front back (an outcome not yet written, or its place among the last
    /// `capacity` received) only an append changes.
    fn release(&mut self) -> Result<usize, PersistError> {
        let durable = self.journal.durable_lsn();
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        self.to_trim.drain_into(&mut ids);
        for &i in &ids {
            let Some([tx, rx]) = self.needed.get_mut(i) else {
                continue;
            };
            let keep = self.capacities.get(i).copied().unwrap_or(0);
            let oldest = [tx.trim(durable, 0), rx.trim(durable, keep)]
                .into_iter()
                .flatten()
                .min();
            if tx.waits_for_sync(durable) || rx.waits_for_sync(durable) {
                self.to_trim.mark(i);
            }
            if let Some(old) = std::mem::replace(&mut self.oldest_of[i], oldest) {
                self.oldest.remove(&(old, i));
            }
            if let Some(lsn) = oldest {
                self.oldest.insert((lsn, i));
            }
        }
        self.scratch_ids = ids;
        let point = self
            .oldest
            .first()
            .map_or(durable + 1, |&(lsn, _)| lsn.min(durable + 1));
        #[cfg(debug_assertions)]
        {
            let full = self
                .needed
                .iter()
                .enumerate()
                .flat_map(|(i, [tx, rx])| {
                    let keep = self.capacities.get(i).copied().unwrap_or(0);
                    [
                        tx.oldest_needed(durable, 0),
                        rx.oldest_needed(durable, keep),
                    ]
                })
                .flatten()
                .fold(durable + 1, Lsn::min);
            debug_assert_eq!(point, full, "release point of the links looked at");
        }
        Ok(self.journal.release_before(point)?)
    }

    /// Sync everything now (a clean stop).
    pub fn flush(&mut self, now: Instant) -> Result<Lsn, PersistError> {
        Ok(self.journal.flush(now)?)
    }
}

fn accepted_key(record: &Record) -> Option<(Direction, u64)> {
    match record {
        Record::Accepted { dir, seq, .. } => Some((*dir, *seq)),
        _ => None,
    }
}
