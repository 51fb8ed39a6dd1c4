//! Delivery reports: which MT an SMSC's status report is about, and the one report
//! the application gets for it.
//!
//! Each MT the SMSC accepts opens a group (its `client_ref`, addresses and number of
//! parts); every accepted part files the SMSC's message id under that group. A
//! status report is matched by that id and folded: the application hears "enroute"
//! once, then one final state for the whole message (delivered when every part is,
//! failed or expired as soon as one part is). A report that arrives before the
//! submit's answer that carries its id is kept for a while and matched when the id
//! appears; one never matched is counted as unknown.
//!
//! # Across a restart
//!
//! On a journaled link the groups survive a restart: every group whose state
//! changed (a part filed, a report folded) is journaled as a `ReportGroup` record at
//! the end of the bridge's step, and a finished one as `ReportDone`
//! ([`take_changes`](Reports::take_changes)); they are state records, copied to the
//! head of each journal segment, so they outlive the MT records they came with.
//! [`restore`](Reports::restore) takes them back at start (their time to live starts
//! again). What is not journaled: reports kept while waiting for their submit's
//! answer (a crash forgets them), and groups beyond the journal's share for them (a
//! quarter of a segment: about 100,000 single-part groups with 64 MiB segments),
//! which are matched from memory only.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::journal::record::{ReportGroup, MAX_REPORT_KEY, MAX_REPORT_KEYS};
use crate::message::{Address, Message, Report, ReportState};
use crate::smsc::StatusReport;

/// How long an MT's group waits for its reports (SMSCs keep messages for days).
const GROUP_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// Most groups kept; the oldest go first beyond it.
const MAX_GROUPS: usize = 100_000;
/// How long a report waits for the submit answer that names its id.
const EARLY_TTL: Duration = Duration::from_secs(60);
/// Most early reports kept.
const MAX_EARLY: usize = 1024;

#[derive(Debug)]
struct Group {
    client_ref: u64,
    phone: Address,
    sender: Address,
    parts: u8,
    /// Parts with a final report.
    finished: u8,
    delivered: u8,
    told_enroute: bool,
    told_final: bool,
    keys: Vec<String>,
    opened: Instant,
    /// Its state has been handed to the journal (so its end must be too).
    journaled: bool,
}

/// What became of a status report.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fold {
    /// The application is to hear this report message.
    Tell(Message),
    /// Folded into its message's state; nothing to tell yet.
    Folded,
    /// Its id is not known yet: kept until the submit's answer names it.
    Early,
    /// It names no message: counted as unknown now.
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Reports {
    groups: HashMap<u64, Group>,
    by_key: HashMap<String, VecDeque<u64>>,
    order: VecDeque<u64>,
    next_group: u64,
    early: VecDeque<(String, StatusReport, Instant)>,
    /// Groups whose state changed since the last `take_changes`.
    changed: BTreeSet<u64>,
    /// Journaled groups finished since then.
    done: Vec<u64>,
}

impl Reports {
    /// The key a message id is filed under: with the recipient's digits where the id
    /// alone is not unique.
    pub(super) fn key(smsc_id: &str, recipient: Option<&str>) -> String {
        match recipient {
            Some(r) => {
                let digits: String = r.chars().filter(char::is_ascii_digit).collect();
                format!("{smsc_id}|{digits}")
            }
            None => smsc_id.to_owned(),
        }
    }

    /// Open the group of an MT of `parts` parts, accepted (in part) at `now`.
    pub(super) fn open(&mut self, mt: &Message, parts: u8, now: Instant) -> u64 {
        self.evict(now);
        self.next_group += 1;
        let id = self.next_group;
        self.groups.insert(
            id,
            Group {
                client_ref: mt.client_ref,
                phone: mt.to,
                sender: mt.from,
                parts,
                finished: 0,
                delivered: 0,
                told_enroute: false,
                told_final: false,
                keys: Vec::new(),
                opened: now,
                journaled: false,
            },
        );
        self.order.push_back(id);
        id
    }

    /// A part of `group` was accepted under `key`: reports that came early for it
    /// are folded now; what the application is to hear is returned.
    pub(super) fn file(&mut self, group: u64, key: String, out: &mut Vec<Message>) {
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if key.is_empty() {
            return;
        }
        g.keys.push(key.clone());
        self.by_key.entry(key.clone()).or_default().push_back(group);
        self.changed.insert(group);
        while let Some(i) = self.early.iter().position(|(k, _, _)| *k == key) {
            if let Some((_, report, _)) = self.early.remove(i) {
                if let Some(m) = self.fold(group, &report) {
                    out.push(m);
                }
            }
        }
    }

    /// A status report arrived.
    pub(super) fn report(&mut self, key: String, report: StatusReport, now: Instant) -> Fold {
        if report.smsc_id.is_empty() {
            return Fold::Unknown;
        }
        // The oldest unfinished message filed under this key.
        let group = self.by_key.get(&key).and_then(|q| q.front().copied());
        let Some(group) = group else {
            if self.early.len() >= MAX_EARLY {
                return Fold::Unknown;
            }
            self.early.push_back((key, report, now));
            return Fold::Early;
        };
        match self.fold(group, &report) {
            Some(m) => Fold::Tell(m),
            None => Fold::Folded,
        }
    }

    /// Reports kept too long without their id: each is one unknown report (its id).
    pub(super) fn expire(&mut self, now: Instant, unknown: &mut Vec<String>) {
        while let Some((_, r, at)) = self.early.front() {
            if now < *at + EARLY_TTL {
                break;
            }
            unknown.push(r.smsc_id.clone());
            self.early.pop_front();
        }
        self.evict(now);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.early.front().map(|(_, _, at)| *at + EARLY_TTL)
    }

    /// Messages whose reports are awaited.
    pub(super) fn open_groups(&self) -> usize {
        self.groups.len()
    }

    fn fold(&mut self, group: u64, r: &StatusReport) -> Option<Message> {
        let g = self.groups.get_mut(&group)?;
        self.changed.insert(group);
        let state = if r.delivered {
            ReportState::Delivered
        } else if r.failed && r.expired {
            ReportState::Expired
        } else if r.failed {
            ReportState::Failed
        } else {
            ReportState::Enroute
        };
        if state.is_final() {
            g.finished = g.finished.saturating_add(1);
        }
        let tell = match state {
            ReportState::Enroute if g.told_enroute || g.told_final => None,
            ReportState::Enroute => {
                g.told_enroute = true;
                Some(state)
            }
            _ if g.told_final => None,
            ReportState::Delivered => {
                g.delivered = g.delivered.saturating_add(1);
                (g.delivered >= g.parts).then_some(state)
            }
            _ => Some(state),
        };
        if tell.is_some_and(ReportState::is_final) {
            g.told_final = true;
        }
        let message = tell.map(|state| {
            Message::report(
                g.phone,
                g.sender,
                g.client_ref,
                Report {
                    state,
                    error: r.error.unwrap_or(0),
                    parts: g.parts,
                },
            )
        });
        if g.finished >= g.parts {
            self.close(group);
        } else if state.is_final() {
            // This part's id will not be reported again: the next report under the
            // same key is another part's.
            let key = Self::key_of(r, g);
            if let Some(q) = key.and_then(|k| self.by_key.get_mut(&k)) {
                if let Some(i) = q.iter().position(|&x| x == group) {
                    q.remove(i);
                }
            }
        }
        message
    }

    /// The key this report was filed under, among the group's.
    fn key_of(r: &StatusReport, g: &Group) -> Option<String> {
        g.keys
            .iter()
            .find(|k| k.split('|').next() == Some(r.smsc_id.as_str()))
            .cloned()
    }

    fn close(&mut self, group: u64) {
        let Some(g) = self.groups.remove(&group) else {
            return;
        };
        self.changed.remove(&group);
        if g.journaled {
            self.done.push(group);
        }
        for key in g.keys {
            if let Some(q) = self.by_key.get_mut(&key) {
                q.retain(|&x| x != group);
                if q.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// Hand each change since the last call to `journal`: a group's new state, or
    /// `None` for a journaled group that is finished.
    pub(super) fn take_changes(&mut self, mut journal: impl FnMut(u64, Option<ReportGroup>)) {
        for group in std::mem::take(&mut self.done) {
            journal(group, None);
        }
        for group in std::mem::take(&mut self.changed) {
            let Some(state) = self.record_of(group) else {
                continue;
            };
            if let Some(g) = self.groups.get_mut(&group) {
                g.journaled = true;
            }
            journal(group, Some(state));
        }
    }

    /// The journal's record of a group: the keys of its parts still awaiting their
    /// final report. `None` when it cannot be recorded (keys too long or too many:
    /// it is then matched from memory only).
    fn record_of(&self, group: u64) -> Option<ReportGroup> {
        let g = self.groups.get(&group)?;
        let keys: Vec<String> = g
            .keys
            .iter()
            .filter(|k| self.by_key.get(*k).is_some_and(|q| q.contains(&group)))
            .cloned()
            .collect();
        if keys.len() > MAX_REPORT_KEYS || keys.iter().any(|k| k.len() > MAX_REPORT_KEY) {
            return None;
        }
        Some(ReportGroup {
            client_ref: g.client_ref,
            phone: g.phone,
            sender: g.sender,
            parts: g.parts,
            finished: g.finished,
            delivered: g.delivered,
            told_enroute: g.told_enroute,
            told_final: g.told_final,
            keys,
        })
    }

    /// Take back the groups a journal kept (at start, before any other input).
    pub(super) fn restore(&mut self, groups: BTreeMap<u64, ReportGroup>, now: Instant) {
        for (id, r) in groups {
            for key in &r.keys {
                self.by_key.entry(key.clone()).or_default().push_back(id);
            }
            self.groups.insert(
                id,
                Group {
                    client_ref: r.client_ref,
                    phone: r.phone,
                    sender: r.sender,
                    parts: r.parts,
                    finished: r.finished,
                    delivered: r.delivered,
                    told_enroute: r.told_enroute,
                    told_final: r.told_final,
                    keys: r.keys,
                    opened: now,
                    journaled: true,
                },
            );
            self.order.push_back(id);
            self.next_group = self.next_group.max(id);
        }
    }

    fn evict(&mut self, now: Instant) {
        while let Some(&oldest) = self.order.front() {
            let stale = match self.groups.get(&oldest) {
                None => true,
                Some(g) => self.groups.len() >= MAX_GROUPS || now >= g.opened + GROUP_TTL,
            };
            if !stale {
                break;
            }
            self.order.pop_front();
            self.close(oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, delivered: bool, failed: bool) -> StatusReport {
        StatusReport {
            smsc_id: id.into(),
            delivered,
            failed,
            ..StatusReport::default()
        }
    }

    fn state(f: Fold) -> Option<(ReportState, u64, u8)> {
        match f {
            Fold::Tell(m) => m.as_report().map(|r| (r.state, m.client_ref, r.parts)),
            _ => None,
        }
    }

    #[test]
    fn the_parts_of_a_message_fold_into_one_report() {
        let now = Instant::now();
        let mut r = Reports::default();
        let mut mt = Message::text("1000", "+4670", "long").unwrap();
        mt.client_ref = 42;
        let g = r.open(&mt, 3, now);
        let mut out = Vec::new();
        for id in ["a", "b", "c"] {
            r.file(g, Reports::key(id, None), &mut out);
        }
        assert_eq!(
            state(r.report("b".into(), report("b", false, false), now)),
            Some((ReportState::Enroute, 42, 3))
        );
        assert_eq!(
            r.report("b".into(), report("b", true, false), now),
            Fold::Folded
        );
        assert_eq!(
            r.report("a".into(), report("a", false, false), now),
            Fold::Folded
        );
        assert_eq!(
            r.report("a".into(), report("a", true, false), now),
            Fold::Folded
        );
        assert_eq!(
            state(r.report("c".into(), report("c", true, false), now)),
            Some((ReportState::Delivered, 42, 3))
        );
        assert_eq!(r.open_groups(), 0, "closed once every part reported");
    }

    #[test]
    fn one_failed_part_fails_the_message_once() {
        let now = Instant::now();
        let mut r = Reports::default();
        let mt = Message::text("1000", "+4670", "long").unwrap();
        let g = r.open(&mt, 2, now);
        let mut out = Vec::new();
        r.file(g, "a".into(), &mut out);
        r.file(g, "b".into(), &mut out);
        let mut expired = report("a", false, true);
        expired.expired = true;
        expired.error = Some(7);
        let Fold::Tell(m) = r.report("a".into(), expired, now) else {
            panic!("told")
        };
        assert_eq!(
            m.as_report(),
            Some(&Report {
                state: ReportState::Expired,
                error: 7,
                parts: 2
            })
        );
        assert_eq!(
            r.report("b".into(), report("b", true, false), now),
            Fold::Folded
        );
        assert_eq!(r.open_groups(), 0);
    }

    #[test]
    fn a_report_before_the_submit_answer_is_matched_later_or_counted_unknown() {
        let now = Instant::now();
        let mut r = Reports::default();
        let key = Reports::key("240101120000", Some("+4670"));
        assert_eq!(key, "240101120000|4670");
        assert_eq!(
            r.report(key.clone(), report("240101120000", true, false), now),
            Fold::Early
        );
        let mt = Message::text("1000", "+4670", "x").unwrap();
        let g = r.open(&mt, 1, now);
        let mut out = Vec::new();
        r.file(g, key, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].as_report().map(|r| r.state),
            Some(ReportState::Delivered)
        );

        assert_eq!(
            r.report("zz".into(), report("zz", true, false), now),
            Fold::Early
        );
        assert_eq!(r.poll_timeout(), Some(now + EARLY_TTL));
        let mut unknown = Vec::new();
        r.expire(now + EARLY_TTL, &mut unknown);
        assert_eq!(unknown, ["zz"]);
        assert_eq!(
            r.report(String::new(), report("", true, false), now),
            Fold::Unknown
        );
    }

    #[test]
    fn two_messages_under_one_key_are_told_apart_by_order() {
        // CIMD2: two MT to one phone in the same second share the timestamp.
        let now = Instant::now();
        let mut r = Reports::default();
        let mut out = Vec::new();
        let mut first = Message::text("1", "+4670", "a").unwrap();
        first.client_ref = 1;
        let mut second = first.clone();
        second.client_ref = 2;
        let g1 = r.open(&first, 1, now);
        r.file(g1, "t|4670".into(), &mut out);
        let g2 = r.open(&second, 1, now);
        r.file(g2, "t|4670".into(), &mut out);
        let refs: Vec<u64> = (0..2)
            .filter_map(
                |_| match r.report("t|4670".into(), report("t", true, false), now) {
                    Fold::Tell(m) => Some(m.client_ref),
                    _ => None,
                },
            )
            .collect();
        assert_eq!(refs, [1, 2]);
    }
}
