//! Messages per second through two link endpoints joined in memory (no sockets),
//! both directions at once, full cycle: send, transmit, decode, store, confirm,
//! deliver, process, outcome back, slot freed.
//!
//! `cargo bench -p smslink-core --bench link -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use smslink::link::{Endpoint, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::sim::Pair;
use std::hint::black_box;
use std::time::Instant;

fn pair(capacity: usize) -> Pair {
    let config = |name: &str| {
        let mut c = LinkConfig::new(name, b"link bench key, 16+");
        c.capacity = capacity;
        c.max_transmit = 256 * 1024;
        c
    };
    let mut p = Pair::new(config("a"), config("b"), Instant::now()).expect("valid config");
    p.connect();
    assert!(p.a.is_up() && p.b.is_up());
    p
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
fn round(p: &mut Pair, msg: &Message) -> u64 {
    let mut n = 0;
    while p.a.send(msg).is_ok() {
        n += 1;
    }
    while p.b.send(msg).is_ok() {
        n += 1;
    }
    loop {
        let moved = p.exchange().expect("clean stream");
        drain(&mut p.a);
        drain(&mut p.b);
        if !moved && p.a.tx_ring().in_use() == 0 && p.b.tx_ring().in_use() == 0 {
            return n;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("link");
    let msg = Message::text("+61400000001", "12345", "hello from the other side").expect("valid");
    for capacity in [255usize, 4096] {
        let mut p = pair(capacity);
        let per_round = round(&mut p, &msg);
        g.throughput(Throughput::Elements(per_round));
        g.bench_function(format!("both_directions_cap{capacity}"), |bch| {
            bch.iter_batched_ref(
                || (),
                |_| black_box(round(&mut p, &msg)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
