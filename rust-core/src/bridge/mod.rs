//! The buffer server itself, sans-IO: one SMSC client session joined to one link
//! endpoint. This is the product's reason to exist (the seed's buffer server), so it
//! lives in a state machine of its own and is proven in the whole-path simulation
//! (`tests/buffer_server_sim.rs`); the runtime only moves bytes and time for it.
//!
//! * **MO** (SMSC -> link): a message from the SMSC goes into the link's sending ring
//!   and only then is the SMSC answered positively; on a journaled link, only once
//!   its record is durable ([`Endpoint::tx_durable`]), so that a positive answer
//!   survives a crash. While the ring is full the answer is withheld: the SMSC waits,
//!   nothing is dropped. A message whose answer never left (the connection broke) is
//!   delivered again by the SMSC.
//! * **MT** (link -> SMSC): messages are taken from the receiving ring in order and
//!   submitted as far as the session's window allows (1 for CIMD2). A long message
//!   is submitted as the parts of a concatenated SMS (`sms::concat`, the way the
//!   session's [`LongMessages`] asks), each part a submit of its own; the message has
//!   one outcome: accepted once every part is, rejected as soon as one part is
//!   refused for good. The SMSC's answer becomes the message's Processed outcome on
//!   the link. A submit that got no answer is submitted again (at least once); a
//!   temporary refusal is retried after a back-off, up to `max_attempts`; a
//!   permanent one is final.
//!
//! # Across a restart (journaled link)
//!
//! The SMSC's answer to a submit becomes the MT's Processed record in the journal.
//! An MT whose outcome was not durable when the buffer server died is delivered
//! again by the restored link and submitted again: if the SMSC had accepted it in
//! the instant before the crash, the phone gets it twice. This is the one repeat the
//! product cannot avoid (the SMSC protocols have no way to ask whether a submit was
//! taken); such submits are counted in [`SmscStats::resubmitted_after_restart`]
//! (every restored MT submitted again, whether or not the SMSC had it).
//!
//! # Driving it
//! Inputs: `smsc_connected`, `smsc_input`, `smsc_connection_lost` (per TCP
//! connection, see `smsc_connection_count`), `handle_timeout` (all with `now`). After any input, and after the link endpoint changed (new
//! messages received, ring slots freed), call [`Bridge::poll`] with the endpoint; then
//! drain `smsc_transmit` (bytes for the SMSC), the endpoint's own output,
//! `poll_timeout` and `poll_event`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod reports;

use reports::{Fold, Reports};

use crate::link::Endpoint;
use crate::message::{Message, Part};
use crate::ring::Outcome;
use crate::sms::concat::{split_message, Chunk, LongMessages, RefWidth, ReferenceAllocator};
use crate::smsc::{
    part_submit_id, ConnIndex, MoAnswer, MoToken, Permanence, SmscClient, SmscEvent, SubmitError,
    SubmitId,
};

/// Settings of a [`Bridge`].
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// First wait before resubmitting a temporarily refused MT; doubles per attempt.
    pub retry_after: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// Attempts (submits that got an answer) before a temporarily refused MT is
    /// reported as rejected with the SMSC's last code.
    pub max_attempts: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            retry_after: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_attempts: 10,
        }
    }
}

/// What the bridge tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// The session toward the SMSC logged in.
    SmscUp,
    /// The session toward the SMSC ended; the driver dials again.
    SmscDown { reason: String },
    /// The SMSC did something the protocol does not allow (the session goes on).
    SmscViolation { detail: String },
    /// An MT cannot be expressed in the SMSC's protocol: it was reported rejected.
    MtUnencodable { seq: u64, reason: String },
    /// A status report named a message id no MT of ours had (or had any more); it
    /// was acknowledged to the SMSC and counted.
    ReportUnknown { smsc_id: String },
    /// An MO was refused: its originator or destination cannot be attributed.
    MoRefused { detail: String },
    /// The link refused an MT's outcome (a bug if it ever happens; logged).
    OutcomeRefused { seq: u64, error: String },
}

/// Counters of the SMSC side of a buffer server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmscStats {
    pub logged_in: bool,
    pub connects: u64,
    pub mo_received: u64,
    /// MO refused because an address had no normal form (empty, or not a number
    /// nor a name).
    pub mo_unattributable: u64,
    /// MO held unanswered at the SMSC because the ring was full.
    pub mo_backpressured: u64,
    /// Held MO answered "retry later" once held for the protocol's limit.
    pub mo_deferred: u64,
    pub mt_submitted: u64,
    pub mt_accepted: u64,
    pub mt_rejected: u64,
    /// Submits of a message that had been submitted before (no answer, or a
    /// temporary refusal).
    pub mt_resubmitted: u64,
    /// Temporary refusals (throttling, congestion): the message is tried again.
    pub mt_temporary_failures: u64,
    pub status_reports: u64,
    /// Report messages put on the link (all parts of a message folded into one).
    pub reports_forwarded: u64,
    /// Status reports for a message id we do not know: acknowledged and dropped.
    pub reports_unknown: u64,
    /// Accepted MT whose final report has not come yet (a gauge).
    pub reports_awaited: u64,
    pub violations: u64,
    /// MT restored from the journal after a restart and submitted again: the SMSC
    /// may have accepted them just before the crash (see the module docs).
    pub resubmitted_after_restart: u64,
}

/// An MT taken from the link and not yet decided by the SMSC: its parts (one for a
/// message that fits one SMS).
#[derive(Debug)]
struct Mt {
    seq: u64,
    parts: Vec<MtPart>,
    /// Its group in `reports`, once a part was accepted.
    report_group: Option<u64>,
}

/// One submit of an MT.
#[derive(Debug)]
struct MtPart {
    id: SubmitId,
    message: Message,
    /// The SMSC accepted this part.
    accepted: bool,
    /// Submitted on the present session, awaiting the answer.
    submitted: bool,
    /// Not to be submitted before this instant (after a temporary refusal).
    not_before: Option<Instant>,
    /// Submits that got a (temporary) answer.
    attempts: u32,
    /// Submits made, answered or not.
    submits: u32,
    /// Restored from the journal: it may have been submitted before the restart.
    restored: bool,
}

/// The buffer server's state machine: see the module docs.
pub struct Bridge {
    smsc: Box<dyn SmscClient>,
    config: BridgeConfig,
    /// MO the ring could not take yet, oldest first, with when they arrived; the
    /// SMSC waits for the answers.
    held_mo: VecDeque<(MoToken, Message, Instant)>,
    /// MO in the ring whose answer waits for their record to be durable: (seq, token).
    unanswered_mo: VecDeque<(u64, MoToken)>,
    /// MT taken from the link, oldest first, until the SMSC decides them.
    mt: VecDeque<Mt>,
    /// Concatenation references, per destination.
    references: ReferenceAllocator,
    /// SMSC message ids of accepted MT, for their status reports.
    reports: Reports,
    /// Report messages the ring could not take yet (their SMSC reports were
    /// answered already).
    held_reports: VecDeque<Message>,
    events: VecDeque<BridgeEvent>,
    stats: SmscStats,
    shutting_down: bool,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("protocol", &self.smsc.protocol())
            .field("held_mo", &self.held_mo.len())
            .field("mt", &self.mt.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Bridge {
    pub fn new(smsc: Box<dyn SmscClient>, config: BridgeConfig) -> Self {
        Bridge {
            smsc,
            config,
            held_mo: VecDeque::new(),
            unanswered_mo: VecDeque::new(),
            mt: VecDeque::new(),
            references: ReferenceAllocator::new(),
            reports: Reports::default(),
            held_reports: VecDeque::new(),
            events: VecDeque::new(),
            stats: SmscStats::default(),
            shutting_down: false,
        }
    }

    // ---- getters ----

    pub fn stats(&self) -> SmscStats {
        SmscStats {
            reports_awaited: self.reports.open_groups() as u64,
            ..self.stats
        }
    }

    pub fn protocol(&self) -> &'static str {
        self.smsc.protocol()
    }

    /// The SMSC connection is in use and its session has not ended.
    pub fn smsc_is_open(&self) -> bool {
        self.smsc.is_open()
    }

    /// Nothing is half-way: no MO or report waiting for the ring, no MT waiting for
    /// the SMSC.
    pub fn is_idle(&self) -> bool {
        self.held_mo.is_empty()
            && self.unanswered_mo.is_empty()
            && self.mt.is_empty()
            && self.held_reports.is_empty()
    }

    /// MT taken from the link and not yet decided by the SMSC.
    pub fn mt_pending(&self) -> usize {
        self.mt.len()
    }

    // ---- inputs ----

    /// How many TCP connections to the SMSC the session uses at once.
    pub fn smsc_connection_count(&self) -> usize {
        self.smsc.connection_count()
    }

    /// TCP connection `conn` to the SMSC is up.
    pub fn smsc_connected(&mut self, conn: ConnIndex, now: Instant) {
        self.stats.connects += 1;
        self.smsc.connected(conn, now);
    }

    pub fn smsc_input(&mut self, conn: ConnIndex, bytes: &[u8], now: Instant) {
        self.smsc.handle_input(conn, bytes, now);
    }

    /// TCP connection `conn` to the SMSC is gone.
    pub fn smsc_connection_lost(&mut self, conn: ConnIndex, now: Instant) {
        self.smsc.connection_lost(conn, now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.smsc.poll_timeout().is_some_and(|t| t <= now) {
            self.smsc.handle_timeout(now);
        }
    }

    /// Stop taking MT from the link; finish those taken, then log out.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Log out now (the node stops): an outstanding submit's answer is awaited first
    /// by protocols that require it.
    pub fn logout(&mut self, now: Instant) {
        self.shutting_down = true;
        self.smsc.logout(now);
    }

    // ---- the step ----

    /// React to everything that happened: the SMSC's events, room in the link's
    /// sending ring, MT waiting in its receiving ring.
    pub fn poll(&mut self, link: &mut Endpoint, now: Instant) {
        while let Some(event) = self.smsc.poll_event() {
            self.on_smsc_event(event, link, now);
        }
        self.store_held_mo(link, now);
        self.answer_durable_mo(link, now);
        self.defer_held_mo(now);
        self.store_held_reports(link);
        let mut unknown = Vec::new();
        self.reports.expire(now, &mut unknown);
        for smsc_id in unknown {
            self.report_unknown(smsc_id);
        }
        self.submit_mt(link, now);
        if self.shutting_down && self.mt.is_empty() && self.smsc.is_open() {
            self.smsc.logout(now);
        }
        // The report map follows the link's records into the journal: a group is
        // durable with (or before) the Processed record of its MT.
        self.reports
            .take_changes(|group, state| link.journal_report_group(group, state));
    }

    /// Take back the report groups of a journaled link (`LinkState::reports`), so
    /// that reports for MT accepted before a restart are matched; call once at
    /// start, before the first `poll`.
    pub fn restore_reports(
        &mut self,
        groups: std::collections::BTreeMap<u64, crate::journal::record::ReportGroup>,
        now: Instant,
    ) {
        self.reports.restore(groups, now);
    }

    // ---- outputs ----

    /// Bytes to write to the SMSC on connection `conn`; returns how many were
    /// appended to `buf`.
    pub fn smsc_transmit(&mut self, conn: ConnIndex, buf: &mut Vec<u8>) -> usize {
        self.smsc.poll_transmit(conn, buf)
    }

    /// When `handle_timeout` (then `poll`) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = if self.smsc.submit_room() > 0 {
            self.mt
                .iter()
                .flat_map(|m| &m.parts)
                .filter_map(|p| p.not_before)
                .min()
        } else {
            None
        };
        let defer = self
            .smsc
            .mo_hold_limit()
            .and_then(|limit| self.held_mo.front().map(|(_, _, since)| *since + limit));
        [
            self.smsc.poll_timeout(),
            retry,
            defer,
            self.reports.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_event(&mut self) -> Option<BridgeEvent> {
        self.events.pop_front()
    }

    // ---- internals ----

    fn on_smsc_event(&mut self, event: SmscEvent, link: &mut Endpoint, now: Instant) {
        match event {
            SmscEvent::Up => {
                self.stats.logged_in = true;
                self.events.push_back(BridgeEvent::SmscUp);
            }
            SmscEvent::Down { reason } => {
                self.stats.logged_in = false;
                // Never answered: the SMSC delivers them again on the next session.
                self.held_mo.clear();
                self.unanswered_mo.clear();
                for part in self.mt.iter_mut().flat_map(|m| &mut m.parts) {
                    part.submitted = false;
                }
                self.events.push_back(BridgeEvent::SmscDown { reason });
            }
            SmscEvent::Accepted { id, smsc_id } => self.on_accepted(link, id, smsc_id, now),
            SmscEvent::Rejected {
                id,
                code,
                permanence,
                ..
            } => self.on_rejected(link, id, code, permanence, now),
            SmscEvent::Unanswered { id } => {
                if let Some((i, p)) = self.find_part(id) {
                    self.mt[i].parts[p].submitted = false;
                }
            }
            SmscEvent::Mo { token, message } => {
                self.stats.mo_received += 1;
                // Behind a held MO, a newer one waits too: order is kept.
                let stored = if self.held_mo.is_empty() {
                    link.send(&message).ok()
                } else {
                    None
                };
                if let Some(seq) = stored {
                    self.unanswered_mo.push_back((seq, token));
                    self.answer_durable_mo(link, now);
                } else {
                    self.stats.mo_backpressured += 1;
                    self.held_mo.push_back((token, *message, now));
                }
            }
            SmscEvent::MoUnattributable {
                token,
                side,
                detail,
            } => {
                self.stats.mo_unattributable += 1;
                self.smsc.answer(token, MoAnswer::Refuse(side), now);
                self.events.push_back(BridgeEvent::MoRefused { detail });
            }
            SmscEvent::StatusReport { token, report } => {
                self.stats.status_reports += 1;
                let recipient = self
                    .smsc
                    .report_id_needs_recipient()
                    .then_some(report.recipient.as_str());
                let key = Reports::key(&report.smsc_id, recipient);
                let smsc_id = report.smsc_id.clone();
                match self.reports.report(key, report, now) {
                    Fold::Tell(message) => self.forward_report(message, link),
                    Fold::Folded | Fold::Early => {}
                    Fold::Unknown => self.report_unknown(smsc_id),
                }
                // Answered at once: a report is worth less than holding the SMSC up,
                // and one that cannot be matched must not come back forever.
                self.smsc.answer(token, MoAnswer::Accept, now);
            }
            SmscEvent::Violation { detail } => {
                self.stats.violations += 1;
                self.events.push_back(BridgeEvent::SmscViolation { detail });
            }
        }
    }

    fn on_rejected(
        &mut self,
        link: &mut Endpoint,
        id: u64,
        code: u32,
        permanence: Permanence,
        now: Instant,
    ) {
        let Some((i, p)) = self.find_part(id) else {
            return;
        };
        let seq = self.mt[i].seq;
        let mt = &mut self.mt[i].parts[p];
        if !mt.submitted {
            return;
        }
        mt.submitted = false;
        mt.attempts += 1;
        if permanence == Permanence::Temporary && mt.attempts < self.config.max_attempts {
            self.stats.mt_temporary_failures += 1;
            let factor = 1u32 << (mt.attempts - 1).min(16);
            let wait = self
                .config
                .retry_after
                .saturating_mul(factor)
                .min(self.config.retry_max);
            mt.not_before = Some(now + wait);
            return;
        }
        if self.finish_mt(link, seq, Outcome::Rejected { code }) {
            self.stats.mt_rejected += 1;
        }
    }

    /// Where the submit `id` is: (index in `mt`, index in its parts).
    fn find_part(&self, id: SubmitId) -> Option<(usize, usize)> {
        self.mt
            .iter()
            .enumerate()
            .find_map(|(i, m)| m.parts.iter().position(|p| p.id == id).map(|p| (i, p)))
    }

    /// A part was accepted; the message is, once all its parts are. Its SMSC id is
    /// filed for the status reports to come (some may have come already).
    fn on_accepted(
        &mut self,
        link: &mut Endpoint,
        id: SubmitId,
        smsc_id: Option<String>,
        now: Instant,
    ) {
        let Some((i, p)) = self.find_part(id) else {
            return;
        };
        let mt = &mut self.mt[i];
        mt.parts[p].accepted = true;
        mt.parts[p].submitted = false;
        // No group without reports asked for: none would ever close it.
        let smsc_id = smsc_id.filter(|_| self.smsc.requests_reports());
        if let Some(smsc_id) = smsc_id {
            let parts = mt.parts.len().min(255) as u8;
            let group = *mt
                .report_group
                .get_or_insert_with(|| self.reports.open(&mt.parts[0].message, parts, now));
            let recipient = self
                .smsc
                .report_id_needs_recipient()
                .then(|| to_smsc_digits(&mt.parts[p].message));
            let key = Reports::key(&smsc_id, recipient.as_deref());
            let mut early = Vec::new();
            self.reports.file(group, key, &mut early);
            for message in early {
                self.forward_report(message, link);
            }
        }
        let mt = &mut self.mt[i];
        if mt.parts.iter().all(|p| p.accepted) {
            let seq = mt.seq;
            if self.finish_mt(link, seq, Outcome::Accepted) {
                self.stats.mt_accepted += 1;
            }
        }
    }

    /// The submits an MT takes: one for a message that fits one SMS (or that the
    /// session carries whole), else one per part of a concatenated SMS. A message
    /// that cannot be split (over 255 parts) is submitted whole, so that the session
    /// refuses it with its protocol's code.
    fn plan_mt(&mut self, seq: u64, message: &Message) -> Mt {
        let single = || Mt {
            seq,
            parts: vec![MtPart::new(seq, message.clone())],
            report_group: None,
        };
        let width = match self.smsc.long_messages() {
            LongMessages::Whole => return single(),
            LongMessages::Udh(width) => width,
            LongMessages::Sar => RefWidth::Sixteen,
        };
        let split = match split_message(message, width) {
            Ok(split) if split.is_concatenated() => split,
            _ => return single(),
        };
        let reference = self.references.next(&message.to, width);
        let total = split.total() as u8;
        let parts = split
            .chunks
            .iter()
            .zip(1u8..)
            .map(|(chunk, index)| {
                let mut part = message.clone();
                let payload = match chunk {
                    Chunk::Text(t) => t.as_bytes(),
                    Chunk::Octets(o) => o,
                };
                // A chunk is a slice of a valid payload: it fits.
                let _ = part.set_payload(payload);
                part.part = Part::new(reference, total, index).ok();
                MtPart::new(part_submit_id(seq, index), part)
            })
            .collect();
        Mt {
            seq,
            parts,
            report_group: None,
        }
    }

    /// Put a report message on the link (or hold it until the ring has room).
    fn forward_report(&mut self, message: Message, link: &mut Endpoint) {
        self.stats.reports_forwarded += 1;
        if self.held_reports.is_empty() && link.send(&message).is_ok() {
            return;
        }
        self.held_reports.push_back(message);
    }

    fn store_held_reports(&mut self, link: &mut Endpoint) {
        while let Some(message) = self.held_reports.front() {
            if link.send(message).is_err() {
                return;
            }
            self.held_reports.pop_front();
        }
    }

    fn report_unknown(&mut self, smsc_id: String) {
        self.stats.reports_unknown += 1;
        self.events
            .push_back(BridgeEvent::ReportUnknown { smsc_id });
    }

    /// The SMSC decided `seq`: report the outcome over the link and forget it.
    fn finish_mt(&mut self, link: &mut Endpoint, seq: u64, outcome: Outcome) -> bool {
        let Some(i) = self.mt.iter().position(|m| m.seq == seq) else {
            return false;
        };
        self.mt.remove(i);
        if let Err(e) = link.mark_processed(seq, outcome) {
            self.events.push_back(BridgeEvent::OutcomeRefused {
                seq,
                error: e.to_string(),
            });
        }
        true
    }

    fn store_held_mo(&mut self, link: &mut Endpoint, now: Instant) {
        while let Some((token, message, _)) = self.held_mo.front() {
            let Ok(seq) = link.send(message) else {
                return;
            };
            self.unanswered_mo.push_back((seq, *token));
            self.held_mo.pop_front();
        }
        self.answer_durable_mo(link, now);
    }

    /// Answer the MO whose record is durable (at once without a journal).
    fn answer_durable_mo(&mut self, link: &Endpoint, now: Instant) {
        let durable = link.tx_durable();
        while let Some(&(seq, token)) = self.unanswered_mo.front() {
            if seq > durable {
                return;
            }
            self.smsc.answer(token, MoAnswer::Accept, now);
            self.unanswered_mo.pop_front();
        }
    }

    /// MO held for the protocol's limit are handed back to the SMSC to retry later.
    fn defer_held_mo(&mut self, now: Instant) {
        let Some(limit) = self.smsc.mo_hold_limit() else {
            return;
        };
        while let Some((token, _, since)) = self.held_mo.front() {
            if now < *since + limit {
                return;
            }
            self.smsc.answer(*token, MoAnswer::RetryLater, now);
            self.stats.mo_deferred += 1;
            self.held_mo.pop_front();
        }
    }

    fn submit_mt(&mut self, link: &mut Endpoint, now: Instant) {
        while self.smsc.submit_room() > 0 {
            let due = self
                .mt
                .iter()
                .enumerate()
                .find_map(|(i, m)| m.parts.iter().position(|p| p.is_due(now)).map(|p| (i, p)));
            let (i, p) = match due {
                Some(due) => due,
                None if self.shutting_down => return,
                None => {
                    let restored_upto = link.rx_restored();
                    let Some((seq, message)) = link.next_received() else {
                        return;
                    };
                    let message = message.clone();
                    let mut mt = self.plan_mt(seq, &message);
                    for part in &mut mt.parts {
                        part.restored = seq <= restored_upto;
                    }
                    self.mt.push_back(mt);
                    (self.mt.len() - 1, 0)
                }
            };
            let seq = self.mt[i].seq;
            let mt = &mut self.mt[i].parts[p];
            match self.smsc.submit(mt.id, &mt.message, now) {
                Ok(()) => {
                    mt.submitted = true;
                    mt.not_before = None;
                    if mt.submits > 0 {
                        self.stats.mt_resubmitted += 1;
                    } else if mt.restored {
                        self.stats.resubmitted_after_restart += 1;
                    }
                    mt.submits += 1;
                    self.stats.mt_submitted += 1;
                }
                Err(SubmitError::NoRoom) => return,
                Err(SubmitError::Unencodable { reason, code }) => {
                    self.events
                        .push_back(BridgeEvent::MtUnencodable { seq, reason });
                    if self.finish_mt(link, seq, Outcome::Rejected { code }) {
                        self.stats.mt_rejected += 1;
                    }
                }
            }
        }
    }
}

/// The recipient as a report names it: its digits (reports write numbers as they
/// please, with or without `+`).
fn to_smsc_digits(message: &Message) -> String {
    message
        .to
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

impl MtPart {
    fn new(id: SubmitId, message: Message) -> Self {
        MtPart {
            id,
            message,
            accepted: false,
            submitted: false,
            not_before: None,
            attempts: 0,
            submits: 0,
            restored: false,
        }
    }

    fn is_due(&self, now: Instant) -> bool {
        !self.accepted && !self.submitted && self.not_before.is_none_or(|t| t <= now)
    }
}

#[cfg(test)]
mod tests;
