//! Seeded crash simulation of the journal on `SimStorage`: random appends, commits,
//! releases and clean reopens, with power cuts at random points. After every cut:
//! the journal opens (never "corrupt", never a panic), everything that was durable
//! is there exactly and in order, nothing else appears except whole records that
//! were appended, and the latest state records survive the deletion of segments.
//!
//! `SMSLINK_JOURNAL_SEEDS=N` runs N seeds per crash mode instead of the default.

mod journal_util;

use journal_util::{any_record, is_state, replay, small_config};
use smslink::journal::{Journal, JournalConfig, Lsn, Record, SimStorage, SyncPolicy};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DEFAULT_SEEDS: u64 = 1000;

fn seeds() -> u64 {
    std::env::var("SMSLINK_JOURNAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    TornTail,
    Scrambled,
}

/// The state key a test uses: (link, type byte, direction).
fn key(r: &Record) -> (u32, u8, u8) {
    let dir = match r {
        Record::Backlog { dir, .. } => *dir as u8,
        _ => 0,
    };
    (r.link(), r.kind(), dir)
}

/// How the cuts went, so a test can tell that its seeds reach every case.
#[derive(Default, Debug)]
struct Seen {
    clean: u64,
    cut: u64,
    /// Cuts that dropped valid records after a hole (the `durable_gap` rule).
    cut_after_hole: u64,
    removed_segments: u64,
}

fn run(seed: u64, cut: Cut, seen: &mut Seen) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let config = JournalConfig {
        segment_size: [4096, 8192, 16384][rng.usize(0..3)],
        sync: if rng.u8(0..3) == 0 {
            SyncPolicy::Interval(Duration::from_millis(5))
        } else {
            SyncPolicy::Always
        },
        ..small_config()
    };
    let mut now = Instant::now();
    let (mut journal, rec) = Journal::open(SimStorage::new(), config.clone()).expect("open empty");
    assert_eq!(rec.records, 0);
    // What the test appended, by LSN.
    let mut model: BTreeMap<Lsn, Record> = BTreeMap::new();
    let mut seq = 0;
    let mut release: Lsn = 0;
    for _round in 0..3 {
        let steps = rng.usize(1..40);
        for _ in 0..steps {
            match rng.u8(0..20) {
                0 => {
                    // A clean stop and start.
                    let storage = journal.into_storage();
                    let (j, rec) = Journal::open(storage, config.clone()).expect("clean reopen");
                    assert!(
                        rec.cut.is_none(),
                        "seed {seed}: clean reopen cut {:?}",
                        rec.cut
                    );
                    journal = j;
                    model.retain(|&lsn, _| lsn <= rec.last_lsn);
                }
                1 | 2 => {
                    // Release everything below a random point that was appended.
                    let point = rng.u64(0..=journal.next_lsn());
                    journal.release_before(point).expect("release");
                    release = release.max(point);
                }
                _ => {
                    for _ in 0..rng.usize(1..30) {
                        seq += 1;
                        let r = any_record(&mut rng, seq);
                        let lsn = journal.append(&r).expect("append");
                        model.insert(lsn, r);
                    }
                    now += Duration::from_millis(rng.u64(0..4));
                    journal.commit(now).expect("commit");
                }
            }
        }
        // Maybe append more that is never committed, or written but not synced.
        for _ in 0..rng.usize(0..20) {
            seq += 1;
            let r = any_record(&mut rng, seq);
            let lsn = journal.append(&r).expect("append");
            model.insert(lsn, r);
        }
        if rng.bool() {
            journal.commit(now).expect("commit");
        }
        let durable = journal.durable_lsn();
        let mut crashed = journal.storage().clone();
        let mut draw = || rng.u64(..);
        match cut {
            Cut::TornTail => crashed.crash(&mut draw),
            Cut::Scrambled => crashed.crash_scrambled(&mut draw),
        }
        let (j, rec) = match Journal::open(crashed, config.clone()) {
            Ok(x) => x,
            Err(e) => panic!("seed {seed}: open after crash failed: {e}"),
        };
        match &rec.cut {
            None => seen.clean += 1,
            Some(c) => {
                assert!(!c.repaired, "seed {seed}: a crash is never corruption");
                seen.cut += 1;
                seen.cut_after_hole += u64::from(c.dropped_records > 0);
                seen.removed_segments += c.removed_segments as u64;
            }
        }
        journal = j;
        check(seed, &journal, &model, durable, release, rec.last_lsn);
        assert!(rec.last_lsn >= durable, "seed {seed}: durable records lost");
        model.retain(|&lsn, _| lsn <= rec.last_lsn);
    }
}

fn check(
    seed: u64,
    journal: &Journal<SimStorage>,
    model: &BTreeMap<Lsn, Record>,
    durable: Lsn,
    release: Lsn,
    kept: Lsn,
) {
    let got = replay(journal);
    let first = journal.first_lsn();
    assert!(
        first <= release.max(1) || model.range(..first).next().is_none(),
        "seed {seed}: records below {first} gone though only {release} was released"
    );
    let last = got.last().map_or(first - 1, |r| r.0);
    assert!(
        last >= durable,
        "seed {seed}: last {last} < durable {durable}"
    );
    for (lsn, r) in &got {
        if *lsn > kept {
            assert!(
                is_state(r),
                "seed {seed}: {lsn} after the kept records: {r:?}"
            );
            continue;
        }
        match model.get(lsn) {
            Some(m) => assert_eq!(r, m, "seed {seed}: record {lsn} differs"),
            None => assert!(is_state(r), "seed {seed}: unknown record {lsn}: {r:?}"),
        }
    }
    for lsn in model.range(first..kept + 1).map(|(l, _)| l) {
        assert!(
            got.iter().any(|(l, _)| l == lsn),
            "seed {seed}: {lsn} missing"
        );
    }
    // The latest state per key among durable records survives segment deletion.
    let mut want = BTreeMap::new();
    for (_, r) in model.range(..=durable).filter(|(_, r)| is_state(r)) {
        want.insert(key(r), r);
    }
    let mut have = BTreeMap::new();
    for (_, r) in got.iter().filter(|(l, r)| *l <= durable && is_state(r)) {
        have.insert(key(r), r);
    }
    assert_eq!(have, want, "seed {seed}: latest state records differ");
}

fn run_all(cut: Cut) -> Seen {
    let mut seen = Seen::default();
    for seed in 0..seeds() {
        run(seed, cut, &mut seen);
    }
    eprintln!("{cut:?}: {seen:?}");
    assert!(seen.clean > 0 && seen.cut > 0, "{seen:?}");
    seen
}

#[test]
fn power_cuts_keep_every_durable_record() {
    run_all(Cut::TornTail);
}

#[test]
fn out_of_order_sectors_are_a_torn_tail_not_corruption() {
    let seen = run_all(Cut::Scrambled);
    assert!(
        seen.cut_after_hole > 0 && seen.removed_segments > 0,
        "{seen:?}"
    );
}
