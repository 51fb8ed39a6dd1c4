//! Who gets a listening link's handshake, and when: the policy behind the link
//! driver's waiting connections. Sans-IO: connection ids, source addresses and `now`
//! go in, decisions come out; the driver owns the sockets.
//!
//! A link has one endpoint, so one connection at a time can handshake on it. An
//! unauthenticated connection must not be able to hold that place against the real
//! peer, so:
//! * a waiting connection must become *ready* within `handshake_timeout`: over
//!   plaintext, send a complete HELLO (the driver screens it); idle and trickling
//!   connections are dropped, and are the first evicted when the caps are reached.
//!   Only ready connections are given the link;
//! * the connection on the link must finish its handshake within `handshake_timeout`,
//!   and one that has not finished after `displace_after` makes way for a ready
//!   waiting connection (a HELLO-then-silence cannot hold the link for long);
//! * ready connections are served newest first (a peer that reconnects is the newest;
//!   connections parked earlier wait), and a source that authenticated last time
//!   before any other (the real peer usually comes back from where it was); such a
//!   source also takes the link at once from a handshake of a source that has not;
//! * waiting connections are capped overall and per source address;
//! * a source that failed authentication (wrong key or name, or broke the protocol
//!   in the handshake) is refused for a penalty that doubles with each failure (up to
//!   `max_penalty`): key guessing is slowed down. The table of sources is bounded.
//!
//! An authenticated (up) connection is never displaced: waiting connections wait
//! for it to end, at most `max_wait`.
//!
//! Node-wide, [`HandshakeBudget`] paces the links' own connection setup: after an
//! outage every link redials at once, and the budget lets them through at a
//! steady rate with a bounded number in handshake, the others waiting in line
//! without a socket.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of a listening link's waiting connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// A waiting connection must be ready (plaintext: have sent a complete HELLO)
    /// within this long, and the connection on the link must finish its handshake
    /// within this long.
    pub handshake_timeout: Duration,
    /// A handshake on the link not finished after this long makes way for a ready
    /// waiting connection (longer than the peer's round trip).
    pub displace_after: Duration,
    /// Longest a ready connection waits for the link (the link driver makes it at
    /// least the link's `dead_after` plus `handshake_timeout`, so that a peer coming
    /// back outlasts its old connection).
    pub max_wait: Duration,
    /// Waiting connections of one link, all sources together.
    pub max_pending: usize,
    /// Waiting connections of one link from one source address (IPv6: one /64).
    pub max_pending_per_source: usize,
    /// A source is refused this long after its first failed handshake; each further
    /// failure doubles it, up to `max_penalty`.
    pub failure_penalty: Duration,
    pub max_penalty: Duration,
    /// Sources remembered (penalties, who authenticated); the least recently seen
    /// is forgotten first.
    pub max_sources: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            handshake_timeout: Duration::from_secs(5),
            displace_after: Duration::from_secs(1),
            max_wait: Duration::from_secs(20),
            max_pending: 64,
            max_pending_per_source: 8,
            failure_penalty: Duration::from_secs(1),
            max_penalty: Duration::from_secs(60),
            max_sources: 1024,
        }
    }
}

/// Where connections come from, for caps and penalties: the IP address, IPv6
/// narrowed to its /64 (one host usually owns a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Source(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Source(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => a.fmt(f),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// Why a new connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source failed a handshake recently.
    Penalized { left: Duration },
    /// No room at all (a cap of zero).
    Full,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Penalized { left } => {
                write!(
                    f,
                    "source failed authentication, refused for {left:.1?} more"
                )
            }
            Refusal::Full => write!(f, "no connection may wait"),
        }
    }
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Keep it waiting; close `evict` (an older connection: one not ready if any, else
    /// the oldest) to make room.
    Wait {
        evict: Option<u64>,
    },
    Refuse(Refusal),
}

/// Why a waiting connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Not ready (plaintext: no complete HELLO) within `handshake_timeout`.
    NotReady,
    /// Waited `max_wait` for the link.
    Waited,
}

/// Where the link's one connection stands, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Free,
    /// A connection of `source` is handshaking since `since`.
    Handshake {
        source: Source,
        since: Instant,
    },
    Up,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    source: Source,
    since: Instant,
    ready: bool,
}

#[derive(Debug, Clone, Copy)]
struct SourceRec {
    failures: u32,
    refused_until: Option<Instant>,
    /// Its last handshake succeeded.
    trusted: bool,
    last_seen: Instant,
}

/// The policy of one listening link (see the module docs).
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    pending: Vec<Pending>,
    sources: HashMap<Source, SourceRec>,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Self {
        Admission {
            config,
            pending: Vec::new(),
            sources: HashMap::new(),
        }
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// A connection `id` from `ip` was accepted while the link is busy (or to be
    /// screened before it gets the link).
    pub fn admit(&mut self, id: u64, ip: IpAddr, now: Instant) -> Admit {
        let source = Source::of(ip);
        if let Some(left) = self.penalty_left(source, now) {
            return Admit::Refuse(Refusal::Penalized { left });
        }
        self.touch(source, now);
        // A full room makes space rather than refuse: the newcomer may be the real
        // peer coming back, and those waiting longer have had their chance.
        let from_source = self.pending.iter().filter(|p| p.source == source).count();
        let evict = if from_source >= self.config.max_pending_per_source {
            self.evict_from(source)
        } else if self.pending.len() >= self.config.max_pending {
            // The source with the most waiting connections pays for the room.
            self.busiest_source().and_then(|s| self.evict_from(s))
        } else {
            None
        };
        let room = evict.is_some()
            || (from_source < self.config.max_pending_per_source
                && self.pending.len() < self.config.max_pending);
        if !room {
            return Admit::Refuse(Refusal::Full);
        }
        self.pending.push(Pending {
            id,
            source,
            since: now,
            ready: false,
        });
        Admit::Wait { evict }
    }

    /// Waiting connection `id` is ready for the link (plaintext: it has sent a
    /// complete HELLO).
    pub fn ready(&mut self, id: u64) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.id == id) {
            p.ready = true;
        }
    }

    /// Forget waiting connection `id` (closed, refused or given the link).
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.id != id);
        self.pending.len() != before
    }

    /// Waiting connections past their deadline, removed from the policy.
    pub fn take_expired(&mut self, now: Instant) -> Vec<(u64, Expired)> {
        let mut out = Vec::new();
        let (hs, wait) = (self.config.handshake_timeout, self.config.max_wait);
        self.pending.retain(|p| {
            let why = if !p.ready && now >= p.since + hs {
                Some(Expired::NotReady)
            } else if now >= p.since + wait {
                Some(Expired::Waited)
            } else {
                None
            };
            if let Some(why) = why {
                out.push((p.id, why));
            }
            why.is_none()
        });
        out
    }

    /// The waiting connection to give the link to now, if any: a ready one from a
    /// source not under penalty; sources that authenticated last time first, then
    /// the newest. A handshake in progress is taken over by a trusted source's
    /// connection when its own source is not trusted, and by any once it has run
    /// `displace_after`; an up link is never taken. The chosen one is removed.
    pub fn next_for_link(&mut self, slot: Slot, now: Instant) -> Option<u64> {
        let only_trusted = match slot {
            Slot::Up => return None,
            Slot::Free => false,
            Slot::Handshake { source, since } => {
                if now < since + self.config.displace_after {
                    if self.is_trusted(source) {
                        return None;
                    }
                    true
                } else {
                    false
                }
            }
        };
        let best = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.ready && self.penalty_left(p.source, now).is_none())
            .filter(|(_, p)| !only_trusted || self.is_trusted(p.source))
            .max_by_key(|(_, p)| (self.is_trusted(p.source), p.since))
            .map(|(i, _)| i)?;
        Some(self.pending.remove(best).id)
    }

    /// When a handshake that started at `since` may be displaced, if a ready
    /// connection that may be served waits.
    pub fn displace_at(&self, since: Instant, now: Instant) -> Option<Instant> {
        self.pending
            .iter()
            .any(|p| p.ready && self.penalty_left(p.source, now).is_none())
            .then_some(since + self.config.displace_after)
    }

    /// When a ready connection held back by its source's penalty may be served.
    pub fn next_eligible(&self, now: Instant) -> Option<Instant> {
        self.pending
            .iter()
            .filter(|p| p.ready)
            .filter_map(|p| self.penalty_left(p.source, now).map(|left| now + left))
            .min()
    }

    /// When the connection on the link must have finished its handshake.
    pub fn handshake_deadline(&self, since: Instant) -> Instant {
        since + self.config.handshake_timeout
    }

    /// A handshake of `ip` succeeded: its penalties end, and it comes first next time.
    pub fn authenticated(&mut self, ip: IpAddr, now: Instant) {
        let source = Source::of(ip);
        self.touch(source, now);
        if let Some(rec) = self.sources.get_mut(&source) {
            rec.failures = 0;
            rec.refused_until = None;
            rec.trusted = true;
        }
    }

    /// `ip` failed authentication (wrong key or name, or broke the protocol in the
    /// handshake): refuse its source for a while. Returns the penalty. (A handshake
    /// that only stalls is not penalised: that costs the attacker its place, and
    /// would otherwise let anyone get a shared address refused.)
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let source = Source::of(ip);
        self.touch(source, now);
        let Some(rec) = self.sources.get_mut(&source) else {
            return Duration::ZERO;
        };
        rec.failures = rec.failures.saturating_add(1);
        rec.trusted = false;
        let shift = (rec.failures - 1).min(20);
        let penalty = self
            .config
            .failure_penalty
            .saturating_mul(1 << shift)
            .min(self.config.max_penalty);
        rec.refused_until = Some(now + penalty);
        penalty
    }

    /// The earliest instant a waiting connection expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|p| {
                if p.ready {
                    p.since + self.config.max_wait
                } else {
                    p.since + self.config.handshake_timeout.min(self.config.max_wait)
                }
            })
            .min()
    }

    /// Sources remembered (bounded by `max_sources`).
    pub fn sources_len(&self) -> usize {
        self.sources.len()
    }

    fn is_trusted(&self, source: Source) -> bool {
        self.sources.get(&source).is_some_and(|r| r.trusted)
    }

    fn penalty_left(&self, source: Source, now: Instant) -> Option<Duration> {
        let until = self.sources.get(&source)?.refused_until?;
        (now < until).then(|| until - now)
    }

    /// Remove one waiting connection of `source`: one not ready if any, the oldest.
    fn evict_from(&mut self, source: Source) -> Option<u64> {
        let i = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.source == source)
            .min_by_key(|(_, p)| (p.ready, p.since))
            .map(|(i, _)| i)?;
        Some(self.pending.remove(i).id)
    }

    /// The source with the most waiting connections (ties: the one whose connection
    /// waits longest).
    fn busiest_source(&self) -> Option<Source> {
        let mut counts: HashMap<Source, usize> = HashMap::new();
        for p in &self.pending {
            *counts.entry(p.source).or_default() += 1;
        }
        let mut best: Option<(usize, Source)> = None;
        for p in &self.pending {
            let n = counts.get(&p.source).copied().unwrap_or(0);
            if best.is_none_or(|(m, _)| n > m) {
                best = Some((n, p.source));
            }
        }
        best.map(|(_, s)| s)
    }

    /// Note `source` as seen now, making room in the table if it is new: the least
    /// recently seen source without a running penalty goes first, then any.
    fn touch(&mut self, source: Source, now: Instant) {
        if let Some(rec) = self.sources.get_mut(&source) {
            rec.last_seen = now;
            return;
        }
        if self.config.max_sources == 0 {
            return;
        }
        while self.sources.len() >= self.config.max_sources {
            let victim = self
                .sources
                .iter()
                .min_by_key(|(_, r)| (r.refused_until.is_some_and(|u| u > now), r.last_seen))
                .map(|(s, _)| *s);
            match victim {
                Some(s) => {
                    self.sources.remove(&s);
                }
                None => break,
            }
        }
        self.sources.insert(
            source,
            SourceRec {
                failures: 0,
                refused_until: None,
                trusted: false,
                last_seen: now,
            },
        );
    }
}

/// How fast a node sets up its dialled connections (see [`HandshakeBudget`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeLimits {
    /// New dials per second, node-wide (a token bucket).
    pub per_second: f64,
    /// Dials the bucket allows at once after a quiet time.
    pub burst: u32,
    /// Connections in setup (TCP connect, TLS, link handshake) at once, node-wide.
    pub max_concurrent: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            per_second: 500.0,
            burst: 64,
            max_concurrent: 256,
        }
    }
}

/// The node-wide dial budget: a token bucket and a cap on connections in setup.
/// A link that is due to dial asks for a start; if there is none it waits in line
/// (first come, first served) and is handed one when a token and a place are free.
#[derive(Debug)]
pub struct HandshakeBudget {
    limits: HandshakeLimits,
    tokens: f64,
    refilled: Instant,
    in_progress: usize,
    peak: usize,
    waiting: VecDeque<usize>,
}

impl HandshakeBudget {
    pub fn new(limits: HandshakeLimits, now: Instant) -> Self {
        HandshakeBudget {
            tokens: f64::from(limits.burst.max(1)),
            limits,
            refilled: now,
            in_progress: 0,
            peak: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Link `id` wants to dial: true if it may now (it then holds a place until
    /// [`finished`](Self::finished)); false if it was put in line (once: the caller
    /// asks again only after [`grant_next`](Self::grant_next) named it).
    pub fn start(&mut self, id: usize, now: Instant) -> bool {
        if self.waiting.is_empty() && self.take(now) {
            return true;
        }
        self.waiting.push_back(id);
        false
    }

    /// The next link in line that may dial now, if any (it then holds a place).
    pub fn grant_next(&mut self, now: Instant) -> Option<usize> {
        if self.waiting.is_empty() || !self.take(now) {
            return None;
        }
        self.waiting.pop_front()
    }

    /// A connection's setup ended (up, failed or closed): its place is free.
    pub fn finished(&mut self) {
        self.in_progress = self.in_progress.saturating_sub(1);
    }

    /// When the next token is due while links wait and a place is free (when no
    /// place is free, a finished setup frees one).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.waiting.is_empty() || self.in_progress >= self.limits.max_concurrent {
            return None;
        }
        let missing = (1.0 - self.tokens).max(0.0);
        Some(self.refilled + Duration::from_secs_f64(missing / self.rate()))
    }

    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// The most connections that were in setup at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn rate(&self) -> f64 {
        self.limits.per_second.max(0.001)
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.rate()).min(f64::from(self.limits.burst.max(1)));
        self.refilled = now;
        if self.in_progress >= self.limits.max_concurrent.max(1) || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        self.in_progress += 1;
        self.peak = self.peak.max(self.in_progress);
        true
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn limits(per_second: f64, burst: u32, max_concurrent: usize) -> HandshakeLimits {
        HandshakeLimits {
            per_second,
            burst,
            max_concurrent,
        }
    }

    #[test]
    fn the_burst_goes_at_once_then_the_rate_paces_the_line() {
        let t0 = Instant::now();
        let mut b = HandshakeBudget::new(limits(100.0, 3, 100), t0);
        let started: Vec<bool> = (0..5).map(|id| b.start(id, t0)).collect();
        assert_eq!(started, [true, true, true, false, false]);
        assert_eq!(b.waiting(), 2);
        assert_eq!(b.grant_next(t0), None);
        let due = b.next_deadline().expect("links wait");
        assert_eq!(due, t0 + Duration::from_millis(10));
        assert_eq!(b.grant_next(due), Some(3));
        assert_eq!(b.grant_next(due), None);
        assert_eq!(b.grant_next(due + Duration::from_millis(10)), Some(4));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn no_more_than_the_cap_are_in_setup_and_a_finished_one_lets_the_next_in() {
        let t0 = Instant::now();
        let mut b = HandshakeBudget::new(limits(1e6, 1000, 2), t0);
        assert!(b.start(0, t0) && b.start(1, t0));
        assert!(!b.start(2, t0));
        // Plenty of tokens, but no place: no deadline, no grant.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.next_deadline(), None);
        assert_eq!(b.grant_next(later), None);
        b.finished();
        // A newcomer does not overtake the line.
        assert!(!b.start(3, later));
        assert_eq!(b.grant_next(later), Some(2));
        assert_eq!((b.in_progress(), b.peak()), (2, 2));
        assert_eq!(b.grant_next(later), None);
        b.finished();
        assert_eq!(b.grant_next(later), Some(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn small() -> AdmissionConfig {
        AdmissionConfig {
            max_pending: 4,
            max_pending_per_source: 2,
            ..AdmissionConfig::default()
        }
    }

    #[test]
    fn silent_connections_expire_after_the_handshake_timeout() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig::default());
        assert_eq!(a.admit(1, ip(1), t0), Admit::Wait { evict: None });
        assert_eq!(a.admit(2, ip(2), t0), Admit::Wait { evict: None });
        a.ready(2);
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(a.take_expired(t0 + Duration::from_millis(4999)).is_empty());
        assert_eq!(
            a.take_expired(t0 + Duration::from_secs(5)),
            [(1, Expired::NotReady)]
        );
        // A ready one waits up to max_wait.
        assert_eq!(
            a.take_expired(t0 + Duration::from_secs(20)),
            [(2, Expired::Waited)]
        );
        assert_eq!(a.pending_len(), 0);
    }

    #[test]
    fn caps_evict_silent_connections_first_then_the_oldest() {
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        let mut a = Admission::new(small());
        assert_eq!(a.admit(1, ip(1), t(0)), Admit::Wait { evict: None });
        assert_eq!(a.admit(2, ip(1), t(1)), Admit::Wait { evict: None });
        // Per-source cap: the source's oldest silent one makes room.
        a.ready(1);
        assert_eq!(a.admit(3, ip(1), t(2)), Admit::Wait { evict: Some(2) });
        a.ready(3);
        // All ready: the oldest goes, the newcomer (maybe the real peer) stays.
        assert_eq!(a.admit(4, ip(1), t(3)), Admit::Wait { evict: Some(1) });
        // Overall cap: the busiest source pays.
        assert_eq!(a.admit(5, ip(2), t(4)), Admit::Wait { evict: None });
        assert_eq!(a.admit(6, ip(3), t(5)), Admit::Wait { evict: None });
        assert_eq!(a.pending_len(), 4);
        assert_eq!(a.admit(7, ip(4), t(6)), Admit::Wait { evict: Some(4) });
        assert_eq!(a.pending_len(), 4);
        // Sources tie at one each: the longest waiting goes.
        assert_eq!(a.admit(8, ip(5), t(7)), Admit::Wait { evict: Some(3) });
        let mut none = Admission::new(AdmissionConfig {
            max_pending: 0,
            ..small()
        });
        assert_eq!(none.admit(1, ip(1), t0), Admit::Refuse(Refusal::Full));
    }

    #[test]
    fn only_ready_connections_get_the_link_trusted_sources_then_newest_first() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let mut a = Admission::new(AdmissionConfig::default());
        a.authenticated(ip(9), t0);
        a.admit(1, ip(1), t0);
        a.admit(2, ip(2), t0);
        a.admit(3, ip(9), t1);
        assert_eq!(a.next_for_link(Slot::Free, t1), None, "none ready yet");
        a.ready(1);
        a.ready(3);
        assert_eq!(a.next_for_link(Slot::Up, t1), None, "up is never displaced");
        assert_eq!(a.next_for_link(Slot::Free, t1), Some(3), "trusted first");
        assert_eq!(a.next_for_link(Slot::Free, t1), Some(1));
        assert_eq!(a.next_for_link(Slot::Free, t1), None);
        // Among equals the newest goes first: parked connections do not hold back
        // a peer that reconnects.
        a.admit(4, ip(4), t0);
        a.admit(5, ip(5), t1);
        a.ready(4);
        a.ready(5);
        assert_eq!(a.next_for_link(Slot::Free, t1), Some(5));
    }

    #[test]
    fn a_handshake_that_does_not_finish_makes_way_after_displace_after() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig::default());
        a.authenticated(ip(9), t0);
        let stuck = Slot::Handshake {
            source: Source::of(ip(9)),
            since: t0,
        };
        assert_eq!(a.displace_at(t0, t0), None, "nobody waits");
        a.admit(1, ip(1), t0);
        a.ready(1);
        let at = t0 + Duration::from_secs(1);
        assert_eq!(a.displace_at(t0, t0), Some(at));
        // A candidate whose source is under penalty is no reason to wake up, until
        // its penalty ends.
        a.failed(ip(1), t0);
        assert_eq!(a.displace_at(t0, t0), None);
        assert_eq!(a.next_eligible(t0), Some(t0 + Duration::from_secs(1)));
        assert_eq!(a.next_for_link(stuck, at - Duration::from_millis(1)), None);
        assert_eq!(a.next_for_link(stuck, at - Duration::from_millis(1)), None);
        assert_eq!(a.next_for_link(stuck, at), Some(1));
    }

    #[test]
    fn a_trusted_source_takes_the_link_from_an_untrusted_handshake_only() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig::default());
        a.authenticated(ip(9), t0);
        let stranger = Slot::Handshake {
            source: Source::of(ip(1)),
            since: t0,
        };
        let friend = Slot::Handshake {
            source: Source::of(ip(9)),
            since: t0,
        };
        a.admit(1, ip(2), t0);
        a.ready(1);
        assert_eq!(a.next_for_link(stranger, t0), None);
        a.admit(2, ip(9), t0);
        a.ready(2);
        assert_eq!(a.next_for_link(friend, t0), None);
        assert_eq!(a.next_for_link(stranger, t0), Some(2));
    }

    #[test]
    fn failures_are_penalized_doubling_up_to_the_cap_and_success_clears_them() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig::default());
        assert_eq!(a.failed(ip(1), t0), Duration::from_secs(1));
        assert_eq!(
            a.admit(1, ip(1), t0 + Duration::from_millis(500)),
            Admit::Refuse(Refusal::Penalized {
                left: Duration::from_millis(500)
            })
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.admit(2, ip(1), t1), Admit::Wait { evict: None });
        assert_eq!(a.failed(ip(1), t1), Duration::from_secs(2));
        let mut t = t1;
        for _ in 0..10 {
            a.failed(ip(1), t);
            t += Duration::from_secs(1);
        }
        assert_eq!(a.failed(ip(1), t), Duration::from_secs(60));
        // A penalized source's ready connection is not served either.
        a.ready(2);
        assert_eq!(a.next_for_link(Slot::Free, t), None);
        a.authenticated(ip(1), t);
        assert_eq!(a.next_for_link(Slot::Free, t), Some(2));
        assert_eq!(a.admit(3, ip(1), t), Admit::Wait { evict: None });
        // Another source is untouched by the first one's failures.
        assert_eq!(a.admit(4, ip(2), t0), Admit::Wait { evict: None });
    }

    #[test]
    fn the_source_table_is_bounded_and_keeps_running_penalties() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            max_sources: 8,
            ..AdmissionConfig::default()
        });
        a.failed(ip(200), t0);
        for i in 0..100u8 {
            let t = t0 + Duration::from_millis(i as u64);
            a.admit(u64::from(i), ip(i), t);
            a.remove(u64::from(i));
            assert!(a.sources_len() <= 8);
        }
        assert!(matches!(
            a.admit(1000, ip(200), t0 + Duration::from_millis(200)),
            Admit::Refuse(Refusal::Penalized { .. })
        ));
    }

    #[test]
    fn ipv6_sources_are_one_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(Source::of(mapped), Source::of(ip(1)));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
    }
}
