//! Which links the event loop visits in a turn: those with something to do (a
//! readiness event, a send, a command, a due timer), never a scan over every link,
//! so a turn costs the same whether 10 or 10,000 links sit idle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use mio::Token;

use super::api::LinkId;

/// The set the loop's turns are built from (shared with the journal's commit,
/// which also works per link).
pub(super) use crate::link::ReadySet;

/// Tokens of waiting (accepted, not yet admitted) connections: above every link's
/// own tokens, a counter in the high part and the link's id in the low part, so a
/// readiness event finds its link without a search.
#[derive(Debug)]
pub(super) struct PendingTokens {
    next: usize,
}

impl PendingTokens {
    const BASE: usize = 1 << 40;
    /// Links a node may have (the low part of a waiting connection's token).
    pub(super) const MAX_LINKS: usize = 1 << 20;

    pub(super) fn new() -> Self {
        PendingTokens { next: 0 }
    }

    /// A fresh token for a waiting connection of link `id`.
    pub(super) fn next(&mut self, id: LinkId) -> Token {
        // The node refuses more links at start, so `id` fits its share of the token.
        debug_assert!(id < Self::MAX_LINKS);
        let token = Token(Self::BASE + self.next * Self::MAX_LINKS + id);
        self.next += 1;
        token
    }

    /// The link of a waiting connection's token; `None` for any other token.
    pub(super) fn link_of(token: Token) -> Option<LinkId> {
        (token.0 >= Self::BASE).then(|| (token.0 - Self::BASE) % Self::MAX_LINKS)
    }
}

/// Each link's next deadline in a min-heap of `(deadline, link, generation)`. A
/// link that reschedules gets a new generation; its older entries stay in the heap
/// and are skipped when they surface (lazy deletion), and the heap is rebuilt when
/// stale entries outnumber the links.
#[derive(Debug, Default)]
pub(super) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, LinkId, u64)>>,
    /// Per link: its current deadline and generation.
    current: Vec<(Option<Instant>, u64)>,
}

impl TimerHeap {
    pub(super) fn new(links: usize) -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            current: vec![(None, 0); links],
        }
    }

    /// Link `id` next needs the loop at `at` (`None`: not before an event).
    pub(super) fn schedule(&mut self, id: LinkId, at: Option<Instant>) {
        let Some(cur) = self.current.get_mut(id) else {
            return;
        };
        if cur.0 == at {
            return;
        }
        cur.1 += 1;
        cur.0 = at;
        if let Some(at) = at {
            self.heap.push(Reverse((at, id, cur.1)));
        }
        if self.heap.len() > 2 * self.current.len() + 64 {
            self.rebuild();
        }
    }

    /// Links whose deadline is at or before `now`, each once; their deadlines are
    /// cleared (the visit schedules the next one).
    pub(super) fn pop_due(&mut self, now: Instant, mut due: impl FnMut(LinkId)) {
        while let Some(&Reverse((at, id, generation))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let cur = &mut self.current[id];
            if cur.1 == generation && cur.0 == Some(at) {
                cur.0 = None;
                due(id);
            }
        }
    }

    /// The earliest live deadline (stale entries on top are dropped).
    pub(super) fn next(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id, generation))) = self.heap.peek() {
            let cur = self.current[id];
            if cur.1 == generation && cur.0 == Some(at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn rebuild(&mut self) {
        self.heap = self
            .current
            .iter()
            .enumerate()
            .filter_map(|(id, &(at, generation))| at.map(|at| Reverse((at, id, generation))))
            .collect();
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_waiting_connection_token_names_its_link() {
        let mut tokens = PendingTokens::new();
        let a = tokens.next(7);
        let b = tokens.next(7);
        let c = tokens.next(PendingTokens::MAX_LINKS - 1);
        assert!(a != b && b != c);
        assert_eq!(PendingTokens::link_of(a), Some(7));
        assert_eq!(PendingTokens::link_of(b), Some(7));
        assert_eq!(
            PendingTokens::link_of(c),
            Some(PendingTokens::MAX_LINKS - 1)
        );
        // A link's own tokens are not waiting connections'.
        assert_eq!(PendingTokens::link_of(Token(12)), None);
    }

    #[test]
    fn a_link_is_queued_once_until_drained() {
        let mut set = ReadySet::new(4);
        set.mark(2);
        set.mark(0);
        set.mark(2);
        set.mark(9); // not a link: ignored
        let mut out = Vec::new();
        set.drain_into(&mut out);
        assert_eq!(out, vec![2, 0]);
        assert!(set.is_empty());
        set.mark(2);
        set.drain_into(&mut out);
        assert_eq!(out, vec![2, 0, 2]);
    }

    #[test]
    fn due_timers_come_out_in_order_and_rescheduled_ones_only_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = TimerHeap::new(3);
        timers.schedule(0, Some(ms(30)));
        timers.schedule(1, Some(ms(10)));
        timers.schedule(2, Some(ms(20)));
        // Link 1 moves later, link 2 cancels: their old entries must not fire.
        timers.schedule(1, Some(ms(40)));
        timers.schedule(2, None);
        assert_eq!(timers.next(), Some(ms(30)));
        let mut due = Vec::new();
        timers.pop_due(ms(35), |id| due.push(id));
        assert_eq!(due, vec![0]);
        timers.pop_due(ms(100), |id| due.push(id));
        assert_eq!(due, vec![0, 1]);
        assert_eq!(timers.next(), None);
        // Fired deadlines are cleared: the same instant can be scheduled again.
        timers.schedule(0, Some(ms(30)));
        assert_eq!(timers.next(), Some(ms(30)));
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut timers = TimerHeap::new(10);
        for n in 0..10_000u64 {
            timers.schedule((n % 10) as usize, Some(t0 + Duration::from_micros(n)));
        }
        assert!(timers.entries() <= 2 * 10 + 64 + 1, "{}", timers.entries());
        let mut due = Vec::new();
        timers.pop_due(t0 + Duration::from_secs(1), |id| due.push(id));
        due.sort_unstable();
        assert_eq!(due, (0..10).collect::<Vec<_>>());
    }
}
