//! Loom model checks of `smslink::runtime::spsc`: every interleaving and every value a weak load
//! may return, for small rings. Build and run with
//! `RUSTFLAGS="--cfg loom" cargo test -p smslink-core --release --test spsc_loom`.

#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use smslink::runtime::spsc;

/// Counts its drops, so the model can check nothing is dropped twice or leaked.
struct Counted(Arc<AtomicUsize>, usize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn push_spinning<T>(tx: &mut spsc::Producer<T>, mut item: T) {
    while let Err(back) = tx.push(item) {
        item = back;
        thread::yield_now();
    }
}

/// A producer thread pushes 0, 1, 2 into a ring of `capacity` (waiting for room when
/// it is full) while this thread pops them, checking their order. Returns the
/// consumer, emptied, and the producer's handle.
fn three_items_in_order(capacity: usize) -> (spsc::Consumer<usize>, thread::JoinHandle<()>) {
    let (mut tx, mut rx) = spsc::channel::<usize>(capacity);
    let producer = thread::spawn(move || {
        for i in 0..3 {
            push_spinning(&mut tx, i);
        }
    });
    let mut expected = 0;
    while expected < 3 {
        match rx.pop() {
            Some(v) => {
                assert_eq!(v, expected);
                expected += 1;
            }
            None => thread::yield_now(),
        }
    }
    (rx, producer)
}

/// Capacity 2 with 3 items: the producer fills the ring, waits for a slot, and the
/// third item reuses slot 0 (wrap), racing with the consumer's reads.
#[test]
fn items_cross_threads_in_order_with_wrap() {
    loom::model(|| {
        let (mut rx, producer) = three_items_in_order(2);
        assert!(rx.is_empty());
        producer.join().unwrap();
        assert_eq!(rx.pop(), None);
    });
}

/// Capacity 1 with 3 items: positions wrap around `2 * capacity` as well as the slot.
#[test]
fn capacity_one_wraps_positions() {
    loom::model(|| {
        let (_rx, producer) = three_items_in_order(1);
        producer.join().unwrap();
    });
}

/// The producer pushes and leaves; the consumer pops once and leaves, concurrently.
/// Whatever the interleaving, every item is dropped exactly once.
#[test]
fn remaining_items_dropped_exactly_once() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = spsc::channel(2);
        let counter = drops.clone();
        let producer = thread::spawn(move || {
            for i in 0..2 {
                assert!(tx.push(Counted(counter.clone(), i)).is_ok());
            }
        });
        let consumer = thread::spawn(move || {
            if let Some(item) = rx.pop() {
                assert_eq!(item.1, 0);
            }
        });
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// Once the consumer sees the producer gone, every pushed item is visible to it.
#[test]
fn abandonment_publishes_everything_pushed() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel::<usize>(2);
        let producer = thread::spawn(move || {
            tx.push(10).unwrap();
            tx.push(11).unwrap();
        });
        let mut got = Vec::new();
        loop {
            if rx.is_abandoned() {
                got.extend(std::iter::from_fn(|| rx.pop()));
                break;
            }
            match rx.pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        assert_eq!(got, [10, 11]);
        producer.join().unwrap();
    });
}

/// Batched push and pop publish once per batch; order and count still hold, and the
/// consumer's view of the length never exceeds the capacity.
#[test]
fn batches_cross_threads_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel::<usize>(2);
        let producer = thread::spawn(move || {
            let mut source = 0..3;
            while !source.is_empty() {
                if tx.push_from(&mut source) == 0 {
                    thread::yield_now();
                }
                assert!(tx.free_slots() <= 2);
            }
        });
        let mut expected = 0;
        while expected < 3 {
            assert!(rx.len() <= 2);
            let popped = rx.pop_each(usize::MAX, |v| {
                assert_eq!(v, expected);
                expected += 1;
            });
            if popped == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
    });
}
