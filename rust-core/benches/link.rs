//! Messages per second through two link endpoints joined in memory (no sockets),
//! both directions at once, full cycle: send, transmit, decode, store, confirm,
//! deliver, process, outcome back, slot freed.
//!
//! `cargo bench -p smslink-core --bench link -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use smslink::link::{Endpoint, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use std::hint::black_box;
use std::time::Instant;

struct Pair {
    a: Endpoint,
    b: Endpoint,
    buf: Vec<u8>,
    now: Instant,
    msg: Message,
}

fn pair(capacity: usize) -> Pair {
    let now = Instant::now();
    let mk = |name: &str| {
        let mut c = LinkConfig::new(name, b"bench key");
        c.capacity = capacity;
        c.max_transmit = 256 * 1024;
        Endpoint::new(c, now).expect("valid config")
    };
    let mut p = Pair {
        a: mk("a"),
        b: mk("b"),
        buf: Vec::with_capacity(512 * 1024),
        now,
        msg: Message::text("+61400000001", "12345", "hello from the other side").expect("valid"),
    };
    p.a.connected(now);
    p.b.connected(now);
    for _ in 0..4 {
        exchange(&mut p);
    }
    assert!(p.a.is_up() && p.b.is_up());
    p
}

fn exchange(p: &mut Pair) -> bool {
    let mut moved = false;
    p.buf.clear();
    if p.a.poll_transmit(p.now, &mut p.buf) > 0 {
        moved = true;
        p.b.handle_input(&p.buf, p.now).expect("clean stream");
    }
    p.buf.clear();
    if p.b.poll_transmit(p.now, &mut p.buf) > 0 {
        moved = true;
        p.a.handle_input(&p.buf, p.now).expect("clean stream");
    }
    moved
}

fn drain(ep: &mut Endpoint) {
    while let Some(e) = ep.poll_event() {
        black_box(e);
    }
    while let Some((seq, m)) = ep.next_received() {
        black_box(m.payload().len());
        let _ = ep.mark_processed(seq, Outcome::Accepted);
    }
}

/// Fill both rings, then run until every message has come back Processed.
fn round(p: &mut Pair) -> u64 {
    let mut n = 0;
    while p.a.send(&p.msg).is_ok() {
        n += 1;
    }
    while p.b.send(&p.msg).is_ok() {
        n += 1;
    }
    loop {
        let moved = exchange(p);
        drain(&mut p.a);
        drain(&mut p.b);
        if !moved && p.a.tx_ring().in_use() == 0 && p.b.tx_ring().in_use() == 0 {
            return n;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("link");
    for capacity in [255usize, 4096] {
        let mut p = pair(capacity);
        let per_round = round(&mut p);
        g.throughput(Throughput::Elements(per_round));
        g.bench_function(format!("both_directions_cap{capacity}"), |bch| {
            bch.iter_batched_ref(|| (), |_| black_box(round(&mut p)), BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
