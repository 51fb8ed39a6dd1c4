//! Messages per second through two link endpoints joined in memory (no sockets),
//! both directions at once, full cycle: send, transmit, decode, store, confirm,
//! deliver, process, outcome back, slot freed. `journal_*`: the same with both
//! ends journaled on real files (temporary directory, sync on every commit), one
//! group commit per end and exchange round, as the runtime does per turn.
//!
//! `cargo bench -p smslink-core --bench link -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use smslink::journal::{FsStorage, JournalConfig};
use smslink::link::persist::Persistence;
use smslink::link::{Endpoint, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::sim::Pair;
use std::hint::black_box;
use std::time::Instant;

/// One side's settings; both benches use the same so their figures compare.
fn link_config(name: &str, capacity: usize) -> LinkConfig {
    let mut c = LinkConfig::new(name, b"link bench key, 16+");
    c.capacity = capacity;
    c.max_transmit = 256 * 1024;
    c
}

fn pair(capacity: usize) -> Pair {
    let mut p = Pair::new(
        link_config("a", capacity),
        link_config("b", capacity),
        Instant::now(),
    )
    .expect("valid config");
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

/// Both ends journaled in `dir` (one journal each).
struct Journaled {
    p: Pair,
    disks: [Persistence<FsStorage>; 2],
}

fn journaled(capacity: usize, dir: &std::path::Path) -> Journaled {
    let now = Instant::now();
    let mut p = pair(capacity);
    let open = |name: &str| {
        let storage = FsStorage::new(dir.join(name)).expect("journal directory");
        let (journal, _, _) =
            Persistence::open(storage, JournalConfig::default(), &[(name, capacity)])
                .expect("journal");
        journal
    };
    let disks = [open("a"), open("b")];
    p.a = Endpoint::with_journal(link_config("a", capacity), 0, now).expect("valid config");
    p.b = Endpoint::with_journal(link_config("b", capacity), 0, now).expect("valid config");
    p.connect();
    Journaled { p, disks }
}

/// [`round`] with a group commit per end before each exchange. Returns (messages,
/// commits).
fn journaled_round(j: &mut Journaled, msg: &Message) -> (u64, u64) {
    let p = &mut j.p;
    let mut n = 0;
    let cap = p.a.tx_ring().capacity();
    while p.a.tx_ring().in_use() < cap && p.a.send(msg).is_ok() {
        n += 1;
    }
    while p.b.tx_ring().in_use() < cap && p.b.send(msg).is_ok() {
        n += 1;
    }
    let mut commits = 0;
    loop {
        let now = p.now;
        j.disks[0]
            .commit(&mut [&mut p.a], now, |_, _| {})
            .expect("commit");
        j.disks[1]
            .commit(&mut [&mut p.b], now, |_, _| {})
            .expect("commit");
        commits += 2;
        let moved = p.exchange().expect("clean stream");
        drain(&mut p.a);
        drain(&mut p.b);
        if !moved && p.a.tx_ring().in_use() == 0 && p.b.tx_ring().in_use() == 0 {
            return (n, commits);
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
    let dir = std::env::temp_dir().join(format!("smslink-bench-journal-{}", std::process::id()));
    {
        let mut j = journaled(255, &dir);
        let (per_round, commits) = journaled_round(&mut j, &msg);
        eprintln!("journal_cap255: {per_round} messages and {commits} commits per round");
        g.throughput(Throughput::Elements(per_round));
        g.bench_function("journal_both_directions_cap255", |bch| {
            bch.iter_batched_ref(
                || (),
                |_| black_box(journaled_round(&mut j, &msg)),
                BatchSize::SmallInput,
            )
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
