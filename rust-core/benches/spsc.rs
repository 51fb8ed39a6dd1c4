//! Throughput of `smslink::spsc` across two threads: items per second for a small
//! `Copy` payload and for a `Message`-sized one, single push/pop and batched.
//!
//! `cargo bench -p smslink --bench spsc -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smslink::message::Message;
use smslink::spsc;
use std::hint::black_box;
use std::thread;

const ITEMS: u64 = 100_000;
const CAPACITY: usize = 1024;

/// Move `ITEMS` values from a producer thread to this thread, one push and one pop each.
fn transfer_single<T: Send + 'static>(make: fn(u64) -> T) {
    let (mut tx, mut rx) = spsc::channel::<T>(CAPACITY);
    let producer = thread::spawn(move || {
        for i in 0..ITEMS {
            let mut item = make(i);
            while let Err(back) = tx.push(item) {
                item = back;
                std::hint::spin_loop();
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
            None => std::hint::spin_loop(),
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
                std::hint::spin_loop();
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
            std::hint::spin_loop();
        }
        received += popped as u64;
    }
    producer.join().expect("producer thread");
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
    let label = format!("message_{}B", std::mem::size_of::<Message>());
    group.bench_function(BenchmarkId::new(label.as_str(), "single"), |b| {
        b.iter(|| transfer_single(message))
    });
    group.bench_function(BenchmarkId::new(label.as_str(), "batched"), |b| {
        b.iter(|| transfer_batched(message))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
