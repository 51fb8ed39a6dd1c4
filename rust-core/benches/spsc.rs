//! Throughput of `smslink::runtime::spsc` across two threads: items per second for a small
//! `Copy` payload and for a `Message`-sized one, single push/pop and batched.
//!
//! `cargo bench -p smslink-core --bench spsc -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smslink::message::Message;
use smslink::runtime::spsc;
use std::hint::black_box;
use std::thread;

const ITEMS: u64 = 100_000;
const CAPACITY: usize = 1024;

// A full or empty ring yields rather than spins: on a loaded 2-core machine a spinning
// side burns the time slice the other side needs, and the figure measures the scheduler.

/// Move `ITEMS` values from a producer thread to this thread, one push and one pop each.
fn transfer_single<T: Send + 'static>(make: fn(u64) -> T) {
    let (mut tx, mut rx) = spsc::channel::<T>(CAPACITY);
    let producer = thread::spawn(move || {
        for i in 0..ITEMS {
            let mut item = make(i);
            while let Err(back) = tx.push(item) {
                item = back;
                thread::yield_now();
            }
        }
    });
    let mut received = 0;
    while received < ITEMS {
        match rx.pop() {
            Some(item) => {
                black_box(item);
                received += 1;
            }
            None => thread::yield_now(),
        }
    }
    producer.join().expect("producer thread");
}

/// The same transfer with `push_from` / `pop_each`: one index publication per batch.
fn transfer_batched<T: Send + 'static>(make: fn(u64) -> T) {
    let (mut tx, mut rx) = spsc::channel::<T>(CAPACITY);
    let producer = thread::spawn(move || {
        let mut source = (0..ITEMS).map(make);
        let mut remaining = ITEMS as usize;
        while remaining > 0 {
            let pushed = tx.push_from(&mut source);
            if pushed == 0 {
                thread::yield_now();
            }
            remaining -= pushed;
        }
    });
    let mut received = 0;
    while received < ITEMS {
        let popped = rx.pop_each(usize::MAX, |item| {
            black_box(item);
        });
        if popped == 0 {
            thread::yield_now();
        }
        received += popped as u64;
    }
    producer.join().expect("producer thread");
}

/// Push and pop in one thread in bursts of 64: the per-item cost with no cross-core traffic.
fn same_thread<T: Send + 'static>(make: fn(u64) -> T) {
    let (mut tx, mut rx) = spsc::channel::<T>(CAPACITY);
    for burst in 0..ITEMS / 64 {
        for i in 0..64 {
            let pushed = tx.push(make(burst * 64 + i)).is_ok();
            assert!(pushed, "the ring holds a whole burst");
        }
        while let Some(item) = rx.pop() {
            black_box(item);
        }
    }
}

fn small_copy(i: u64) -> u64 {
    i
}

fn message(i: u64) -> Message {
    let mut m = Message::EMPTY;
    m.client_ref = i;
    m
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_two_threads");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("u64", "single"), |b| {
        b.iter(|| transfer_single(small_copy))
    });
    group.bench_function(BenchmarkId::new("u64", "batched"), |b| {
        b.iter(|| transfer_batched(small_copy))
    });
    group.bench_function(BenchmarkId::new("u64", "same_thread"), |b| {
        b.iter(|| same_thread(small_copy))
    });
    let label = format!("message_{}B", std::mem::size_of::<Message>());
    group.bench_function(BenchmarkId::new(label.as_str(), "single"), |b| {
        b.iter(|| transfer_single(message))
    });
    group.bench_function(BenchmarkId::new(label.as_str(), "batched"), |b| {
        b.iter(|| transfer_batched(message))
    });
    group.bench_function(BenchmarkId::new(label.as_str(), "same_thread"), |b| {
        b.iter(|| same_thread(message))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
