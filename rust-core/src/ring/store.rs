//! Where a ring keeps its slots: memory follows the messages in flight, not the
//! capacity.
//!
//! Slots live in blocks of [`BLOCK`] consecutive seqs, taken when a seq first needs
//! its slot and given back once no seq of the block is held any more (all Processed
//! up to Last Processed, or the ring empty). A block table of `capacity / BLOCK + 2`
//! entries covers any window of `capacity` seqs. Blocks given back wait in a small
//! per-thread pool, so a link under steady traffic reuses them (and the payload
//! buffers inside) without calling the allocator, and an idle link holds none.
//!
//! What a Processed seq leaves behind is its outcome, needed while the seq is within
//! the last `capacity` seqs (a reconnecting peer may not have heard it yet). Nearly
//! every outcome is `Accepted`, so [`History`] keeps only the others, as runs.

use super::Outcome;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::thread::LocalKey;

/// Seqs per block.
pub(super) const BLOCK: u64 = 16;
/// Blocks a thread keeps for reuse (of each slot type; with payloads of up to
/// 1 KiB kept, at most about 2.3 MB); more are freed.
const POOL_BLOCKS: usize = 128;
/// Runs of outcomes a [`History`] keeps allocated once it is empty again.
const KEPT_RUNS: usize = 4;

pub(super) type Block<S> = Box<[S; BLOCK as usize]>;
pub(super) type Pool<S> = RefCell<Vec<Block<S>>>;

/// A slot type that can be stored in blocks.
pub(super) trait Pooled: Sized + 'static {
    /// A slot holding nothing (seq 0).
    fn empty() -> Self;
    fn seq(&self) -> u64;
    /// The slot goes to the pool: give back what a long message grew it to.
    fn shrink(&mut self);
    /// `Some(outcome)` once the slot's message is Processed.
    fn processed(&self) -> Option<Option<Outcome>>;
    /// The thread's pool of spare blocks of this type.
    fn pool() -> &'static LocalKey<Pool<Self>>;
}

/// The blocks of one ring.
pub(super) struct Blocks<S: Pooled> {
    table: Box<[Option<Block<S>>]>,
}

impl<S: Pooled> Blocks<S> {
    /// Move `last_processed` over the Processed slots that follow it, up to `upto`,
    /// recording their outcomes; give back each block it leaves behind, and the
    /// last one once nothing is held up to `last_used`.
    pub(super) fn advance_processed(
        &mut self,
        history: &mut History,
        last_processed: &mut u64,
        upto: u64,
        last_used: u64,
    ) {
        while *last_processed < upto {
            let seq = *last_processed + 1;
            let Some(outcome) = self.get(seq).and_then(S::processed) else {
                break;
            };
            history.record(seq, outcome);
            *last_processed = seq;
            if seq % BLOCK == BLOCK - 1 {
                self.release(seq);
            }
        }
        if *last_processed == last_used {
            self.release(*last_processed);
        }
    }

    pub(super) fn new(capacity: usize) -> Self {
        let entries = capacity as u64 / BLOCK + 2;
        Blocks {
            table: (0..entries).map(|_| None).collect(),
        }
    }

    fn entry(&self, seq: u64) -> usize {
        ((seq / BLOCK) % self.table.len() as u64) as usize
    }

    /// The slot of `seq`, if its block is held and the slot was filled for `seq`.
    pub(super) fn get(&self, seq: u64) -> Option<&S> {
        let block = self.table[self.entry(seq)].as_ref()?;
        let slot = &block[(seq % BLOCK) as usize];
        (slot.seq() == seq).then_some(slot)
    }

    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut S> {
        let e = self.entry(seq);
        let block = self.table[e].as_mut()?;
        let slot = &mut block[(seq % BLOCK) as usize];
        (slot.seq() == seq).then_some(slot)
    }

    /// The slot for `seq`, taking a block if its block is not held. The caller sets
    /// the slot's seq.
    pub(super) fn slot_for(&mut self, seq: u64) -> &mut S {
        let e = self.entry(seq);
        let block = self.table[e].get_or_insert_with(|| {
            S::pool()
                .with(|p| p.borrow_mut().pop())
                .unwrap_or_else(|| Box::new(std::array::from_fn(|_| S::empty())))
        });
        &mut block[(seq % BLOCK) as usize]
    }

    /// Give back the block of `seq` (nothing if it is not held).
    pub(super) fn release(&mut self, seq: u64) {
        let e = self.entry(seq);
        if let Some(block) = self.table[e].take() {
            S::pool().with(|p| pool(&mut p.borrow_mut(), block));
        }
    }

    /// Blocks held now (for tests and measurements).
    pub(super) fn held(&self) -> usize {
        self.table.iter().filter(|b| b.is_some()).count()
    }
}

impl<S: Pooled> Drop for Blocks<S> {
    fn drop(&mut self) {
        for e in 0..self.table.len() {
            if let Some(block) = self.table[e].take() {
                // The pool may be gone when a thread ends.
                let _ = S::pool().try_with(|p| pool(&mut p.borrow_mut(), block));
            }
        }
    }
}

/// Keep `block` for reuse if the pool has room (else it is freed), holding no
/// more payload memory than short messages need.
fn pool<S: Pooled>(pool: &mut Vec<Block<S>>, mut block: Block<S>) {
    if pool.len() < POOL_BLOCKS {
        block.iter_mut().for_each(S::shrink);
        pool.push(block);
    }
}

/// A run of consecutive Processed seqs with the same outcome other than `Accepted`.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    last: u64,
    outcome: Option<Outcome>,
}

/// Outcomes of Processed seqs up to Last Processed: `Accepted` unless a run says
/// otherwise (`None`: a journal replay did not have it).
#[derive(Debug, Default)]
pub(super) struct History {
    runs: VecDeque<Run>,
}

impl History {
    /// `seq` (above every seq recorded before) became Processed with `outcome`.
    pub(super) fn record(&mut self, seq: u64, outcome: Option<Outcome>) {
        if outcome == Some(Outcome::Accepted) {
            return;
        }
        match self.runs.back_mut() {
            Some(r) if r.last + 1 == seq && r.outcome == outcome => r.last = seq,
            _ => self.runs.push_back(Run {
                first: seq,
                last: seq,
                outcome,
            }),
        }
    }

    /// Outcome of a recorded seq.
    pub(super) fn get(&self, seq: u64) -> Option<Outcome> {
        let i = self.runs.partition_point(|r| r.last < seq);
        match self.runs.get(i) {
            Some(r) if r.first <= seq => r.outcome,
            _ => Some(Outcome::Accepted),
        }
    }

    /// Seqs up to `seq` are no longer asked about.
    pub(super) fn forget_through(&mut self, seq: u64) {
        while let Some(r) = self.runs.front_mut() {
            if r.last <= seq {
                self.runs.pop_front();
            } else {
                r.first = r.first.max(seq + 1);
                break;
            }
        }
        if self.runs.is_empty() && self.runs.capacity() > KEPT_RUNS {
            self.runs = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_runs_of_other_outcomes_only() {
        let mut h = History::default();
        let rejected = Some(Outcome::Rejected { code: 7 });
        h.record(1, Some(Outcome::Accepted));
        h.record(2, rejected);
        h.record(3, rejected);
        h.record(4, None);
        h.record(5, Some(Outcome::Accepted));
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.get(1), Some(Outcome::Accepted));
        assert_eq!(h.get(3), rejected);
        assert_eq!(h.get(4), None);
        assert_eq!(h.get(5), Some(Outcome::Accepted));
        h.forget_through(2);
        assert_eq!(h.get(3), rejected);
        h.forget_through(4);
        assert!(h.runs.is_empty());
    }
}
