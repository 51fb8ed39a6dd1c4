//! Lock-free single-producer single-consumer hand-off queues between threads.
//!
//! Application threads hand submissions to the event-loop thread (and the loop hands
//! events back) through one [`channel`] per direction. The design follows rtrb:
//!
//! * a fixed ring of `capacity` slots, allocated once; steady state never allocates;
//! * the producer owns `tail`, the consumer owns `head`; each side keeps a private copy
//!   of its own index and a *cached* copy of the other side's, and reloads the shared
//!   atomic only when the ring looks full (producer) or empty (consumer), so in the
//!   common case a push or pop touches no cache line the other thread is writing;
//! * `head` and `tail` live on separate cache lines ([`CachePadded`]) so the two threads
//!   do not invalidate each other's line on every store;
//! * Acquire/Release only: publishing an index with Release makes the slot contents
//!   (written or moved out before it) visible to the side that loads it with Acquire.
//!
//! Positions run over `0..2 * capacity` rather than `0..capacity`, so a full ring
//! (`tail - head == capacity`) and an empty one (`tail == head`) look different without a
//! spare slot and without integer division; the slot is `position % capacity`, computed
//! with one compare.
//!
//! Wake-ups are not this module's job: the producer pairs a successful push with a
//! `mio::Waker::wake()`, and because wakes coalesce the loop drains the whole queue on
//! every wake ([`Consumer::pop_each`]).

use std::fmt;
use std::mem::MaybeUninit;

use crate::runtime::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// Keeps `T` on a cache line of its own so that two hot atomics do not falsely share.
///
/// 128 bytes on x86_64 and aarch64: their spatial prefetchers pull cache lines in
/// adjacent pairs, so 64-byte separation still ping-pongs. 64 bytes elsewhere.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// State both handles point at.
struct Shared<T> {
    /// Next position the consumer reads. Stored only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next position the producer writes. Stored only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Set by whichever handle is dropped first (and again by the second).
    abandoned: AtomicBool,
    /// Slots at positions `head..tail` are initialised; all others are not.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    capacity: usize,
}

// SAFETY: `Shared` is `!Sync` only because of the `UnsafeCell` slots. Access to them is
// partitioned by the index protocol: the single `Producer` writes only slots outside
// `head..tail` (free ones) and publishes them with a Release store of `tail`; the single
// `Consumer` reads only slots inside `head..tail` after an Acquire load of `tail`, and
// hands them back with a Release store of `head` that the producer Acquire-loads before
// reusing them. So no slot is ever accessed from two threads without a happens-before
// edge between the accesses. Values of `T` are moved from the producer's thread to the
// consumer's, which needs `T: Send`; no `&T` is ever shared, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: `Shared` owns `T` values, so sending it (inside the `Arc`) sends `T`s.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    /// Distance from `head` to `tail` in `0..=capacity`, positions being modulo `2 * capacity`.
    #[inline(always)]
    fn distance(&self, head: usize, tail: usize) -> usize {
        if tail >= head {
            tail - head
        } else {
            2 * self.capacity - (head - tail)
        }
    }

    #[inline(always)]
    fn next(&self, position: usize) -> usize {
        if position + 1 < 2 * self.capacity {
            position + 1
        } else {
            0
        }
    }

    #[inline(always)]
    fn slot(&self, position: usize) -> &UnsafeCell<MaybeUninit<T>> {
        let index = if position < self.capacity {
            position
        } else {
            position - self.capacity
        };
        &self.slots[index]
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both handles are gone and each published its own index in its `Drop`; the
        // `Arc` gives us a happens-before edge from both, so Relaxed loads see them.
        let mut position = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        while position != tail {
            // SAFETY: positions `head..tail` hold initialised values that nobody moved out
            // (the consumer advances `head` past a slot only after reading it), and we
            // have exclusive access during drop.
            self.slot(position)
                .with_mut(|slot| unsafe { (*slot).assume_init_drop() });
            position = self.next(position);
        }
    }
}

/// Create a queue holding at most `capacity` items, and its two ends.
///
/// The capacity is exact (no rounding to a power of two); all slots are allocated here
/// and never again.
///
/// # Panics
///
/// If `capacity` is 0 (a queue that is always full is a bug, not a configuration), or so
/// large that `2 * capacity` overflows `usize` or the allocation fails.
pub fn channel<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(capacity > 0, "spsc::channel capacity must be at least 1");
    assert!(
        capacity <= usize::MAX / 2,
        "spsc::channel capacity {capacity} too large"
    );
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded(AtomicUsize::new(0)),
        tail: CachePadded(AtomicUsize::new(0)),
        abandoned: AtomicBool::new(false),
        slots,
        capacity,
    });
    let producer = Producer {
        shared: shared.clone(),
        tail: 0,
        cached_head: 0,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        cached_tail: 0,
    };
    (producer, consumer)
}

/// The sending end. Only one exists per queue; move it to the thread that produces.
///
/// `Send` and `Sync` follow from `Arc<Shared<T>>` (see the SAFETY note on `Shared`):
/// pushing takes `&mut self`, so a shared `&Producer` can only read atomics
/// (`free_slots`, `is_abandoned`), which any thread may do.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own position; may run ahead of `shared.tail` only inside `push_from`.
    tail: usize,
    /// Last `shared.head` we loaded; the true head is at or after it.
    cached_head: usize,
}

impl<T> Producer<T> {
    /// Append `value`, or give it back if the queue is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if !self.has_free_slot() {
            return Err(value);
        }
        self.write(value);
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Push items taken from `items` while there is room, publishing them all at once
    /// (one Release store for the batch). An item is taken from the iterator only when
    /// a slot is free for it, so nothing is lost: what does not fit stays in `items`.
    /// Returns how many were pushed.
    pub fn push_from<I: Iterator<Item = T>>(&mut self, items: &mut I) -> usize {
        let mut pushed = 0;
        while self.has_free_slot() {
            let Some(value) = items.next() else { break };
            self.write(value);
            pushed += 1;
        }
        if pushed > 0 {
            self.shared.tail.store(self.tail, Ordering::Release);
        }
        pushed
    }

    /// How many items could be pushed now (the consumer may free more at any moment).
    pub fn free_slots(&self) -> usize {
        let head = self.shared.head.load(Ordering::Acquire);
        self.shared.capacity - self.shared.distance(head, self.tail)
    }

    /// The fixed number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Whether the `Consumer` has been dropped: nothing pushed from now on will be read.
    pub fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Is the slot at `self.tail` free? Reloads the consumer's head only when the
    /// cached one says the ring is full.
    #[inline(always)]
    fn has_free_slot(&mut self) -> bool {
        let shared = &*self.shared;
        if shared.distance(self.cached_head, self.tail) < shared.capacity {
            return true;
        }
        // Acquire pairs with the consumer's Release store of `head`: its moves out of
        // the slots it released happen before we overwrite them.
        self.cached_head = shared.head.load(Ordering::Acquire);
        shared.distance(self.cached_head, self.tail) < shared.capacity
    }

    /// Write into the free slot at `self.tail` and advance it, without publishing.
    #[inline(always)]
    fn write(&mut self, value: T) {
        let shared = &*self.shared;
        // SAFETY: `has_free_slot` returned true, so this position is outside the
        // consumer's `head..tail` window and the consumer finished with the slot before
        // its Release store of `head` that we Acquire-loaded. We are the only producer.
        shared
            .slot(self.tail)
            .with_mut(|slot| unsafe { slot.write(MaybeUninit::new(value)) });
        self.tail = shared.next(self.tail);
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Publish anything written but not yet published (only possible if an iterator
        // panicked inside `push_from`), so `Shared::drop` or the consumer sees it.
        self.shared.tail.store(self.tail, Ordering::Release);
        self.shared.abandoned.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("free_slots", &self.free_slots())
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

/// The receiving end. Only one exists per queue; move it to the thread that consumes.
///
/// `Send` and `Sync` as for [`Producer`]: popping takes `&mut self`, and `&Consumer`
/// only reads atomics (`len`, `is_abandoned`).
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own position; may run ahead of `shared.head` only inside `pop_each`.
    head: usize,
    /// Last `shared.tail` we loaded; the true tail is at or after it.
    cached_tail: usize,
}

impl<T> Consumer<T> {
    /// Take the oldest item, or `None` if the queue is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if !self.has_item() {
            return None;
        }
        let value = self.read();
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Pop up to `max` items, oldest first, handing each to `f`; the freed slots are
    /// published to the producer once, at the end. Returns how many were popped.
    ///
    /// Items pushed while this runs may or may not be included; call it again after
    /// the next wake.
    pub fn pop_each(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut popped = 0;
        while popped < max && self.has_item() {
            // `self.head` moves past the slot before `f` runs, so if `f` panics the
            // value is not dropped twice; `Drop` publishes `self.head`.
            f(self.read());
            popped += 1;
        }
        if popped > 0 {
            self.shared.head.store(self.head, Ordering::Release);
        }
        popped
    }

    /// How many items are waiting (the producer may add more at any moment).
    pub fn len(&self) -> usize {
        let tail = self.shared.tail.load(Ordering::Acquire);
        self.shared.distance(self.head, tail)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fixed number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Whether the `Producer` has been dropped. Once this is true, every item it pushed
    /// is visible: pop until `None` and the queue is finished.
    pub fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Is there an item at `self.head`? Reloads the producer's tail only when the
    /// cached one says the ring is empty.
    #[inline(always)]
    fn has_item(&mut self) -> bool {
        if self.head != self.cached_tail {
            return true;
        }
        // Acquire pairs with the producer's Release store of `tail`: its writes into
        // the slots it published happen before we read them.
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.head != self.cached_tail
    }

    /// Move the value out of the slot at `self.head` and advance it, without publishing.
    #[inline(always)]
    fn read(&mut self) -> T {
        let shared = &*self.shared;
        // SAFETY: `has_item` returned true, so this position is inside `head..tail` as
        // published by the producer with Release and loaded by us with Acquire: the
        // slot is initialised and the producer will not touch it until we publish a
        // head past it. Advancing `self.head` right after makes this the only read.
        let value = shared
            .slot(self.head)
            .with(|slot| unsafe { slot.read().assume_init() });
        self.head = shared.next(self.head);
        value
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Publish slots already moved out (only unpublished if `f` panicked inside
        // `pop_each`), so `Shared::drop` does not drop those values a second time.
        self.shared.head.store(self.head, Ordering::Release);
        self.shared.abandoned.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Counts its drops in a shared counter.
    struct Counted(std::sync::Arc<StdAtomicUsize>, u32);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn full_gives_the_value_back_and_empty_gives_none() {
        let (mut tx, mut rx) = channel::<u32>(3);
        assert_eq!(rx.pop(), None);
        assert!(rx.is_empty());
        assert_eq!(tx.free_slots(), 3);
        for i in 0..3 {
            assert_eq!(tx.push(i), Ok(()));
        }
        assert_eq!(tx.push(99), Err(99));
        assert_eq!(tx.free_slots(), 0);
        assert_eq!(rx.len(), 3);
        assert_eq!(rx.pop(), Some(0));
        assert_eq!(tx.free_slots(), 1);
        assert_eq!(tx.push(3), Ok(()));
        assert_eq!(tx.push(4), Err(4));
        assert_eq!(
            std::iter::from_fn(|| rx.pop()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(rx.pop(), None);
        assert!(rx.is_empty());
    }

    #[test]
    fn wraps_around_many_times_in_order() {
        // Capacity 3 is not a power of two; positions wrap at 6 and slots at 3.
        let (mut tx, mut rx) = channel::<u64>(3);
        let mut next_out = 0;
        for i in 0..1000u64 {
            tx.push(i).unwrap();
            if i % 2 == 1 {
                // Push two, leave one behind: head and tail visit every offset.
                while rx.len() > 1 {
                    assert_eq!(rx.pop(), Some(next_out));
                    next_out += 1;
                }
            }
        }
        while let Some(v) = rx.pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, 1000);
    }

    #[test]
    fn capacity_one_alternates() {
        let (mut tx, mut rx) = channel::<&str>(1);
        for word in ["a", "b", "c"] {
            assert_eq!(tx.push(word), Ok(()));
            assert_eq!(tx.push("x"), Err("x"));
            assert_eq!(rx.pop(), Some(word));
            assert_eq!(rx.pop(), None);
        }
    }

    #[test]
    #[should_panic(expected = "capacity must be at least 1")]
    fn zero_capacity_is_rejected() {
        let _ = channel::<u8>(0);
    }

    #[test]
    fn remaining_items_are_dropped_exactly_once() {
        let drops = std::sync::Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(4);
        // Wrap first so the remaining items straddle the end of the slot array.
        for i in 0..3 {
            assert!(tx.push(Counted(drops.clone(), i)).is_ok());
        }
        for _ in 0..3 {
            drop(rx.pop());
        }
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 3);
        for i in 3..7 {
            assert!(tx.push(Counted(drops.clone(), i)).is_ok());
        }
        let rejected = tx.push(Counted(drops.clone(), 7));
        assert!(rejected.is_err());
        drop(rejected);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(rx.pop().map(|c| c.1), Some(3));
        drop(tx);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 5);
        drop(rx);
        // 3 popped earlier + 1 rejected + 1 popped + 3 left in the ring.
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 8);
    }

    #[test]
    fn abandonment_is_seen_by_the_other_side() {
        let (mut tx, rx) = channel::<u8>(2);
        assert!(!tx.is_abandoned());
        drop(rx);
        assert!(tx.is_abandoned());
        // Pushing still works (the value is dropped with the ring); the flag tells the
        // producer to stop.
        assert_eq!(tx.push(1), Ok(()));

        let (tx, mut rx) = channel::<u8>(2);
        let mut tx = tx;
        tx.push(5).unwrap();
        assert!(!rx.is_abandoned());
        drop(tx);
        assert!(rx.is_abandoned());
        assert_eq!(rx.pop(), Some(5));
        assert_eq!(rx.pop(), None);
    }

    #[test]
    fn batches_take_only_what_fits_and_lose_nothing() {
        let (mut tx, mut rx) = channel::<u32>(4);
        let mut source = 0..10u32;
        assert_eq!(tx.push_from(&mut source), 4);
        assert_eq!(
            source.clone().next(),
            Some(4),
            "item 4 must stay in the iterator"
        );
        assert_eq!(tx.push_from(&mut source), 0);

        let mut got = Vec::new();
        assert_eq!(rx.pop_each(3, |v| got.push(v)), 3);
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(tx.free_slots(), 3);
        assert_eq!(tx.push_from(&mut source), 3);
        assert_eq!(rx.pop_each(usize::MAX, |v| got.push(v)), 4);
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(rx.pop_each(usize::MAX, |v| got.push(v)), 0);
    }

    #[test]
    fn panic_inside_pop_each_drops_nothing_twice() {
        let drops = std::sync::Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(4);
        for i in 0..4 {
            assert!(tx.push(Counted(drops.clone(), i)).is_ok());
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rx.pop_each(4, |item| {
                if item.1 == 1 {
                    panic!("consumer callback failed");
                }
            })
        }));
        assert!(result.is_err());
        // Items 0 and 1 were handed to the callback (and dropped there).
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(rx.pop().map(|c| c.1), Some(2));
        drop((tx, rx));
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn zero_sized_items_are_counted() {
        let (mut tx, mut rx) = channel::<()>(2);
        assert_eq!(tx.push(()), Ok(()));
        assert_eq!(tx.push(()), Ok(()));
        assert_eq!(tx.push(()), Err(()));
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.pop(), Some(()));
    }

    #[test]
    fn handles_are_send_and_indices_sit_on_separate_lines() {
        fn assert_send<S: Send>() {}
        assert_send::<Producer<crate::message::Message>>();
        assert_send::<Consumer<crate::message::Message>>();
        let (tx, _rx) = channel::<u8>(1);
        let head = &*tx.shared.head as *const StdAtomicUsize as usize;
        let tail = &*tx.shared.tail as *const StdAtomicUsize as usize;
        assert!(head.abs_diff(tail) >= 64);
    }
}
