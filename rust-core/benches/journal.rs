//! The journal on this machine's disk (`FsStorage` in a fresh directory under the
//! system temp dir):
//!
//! * `journal/append_commit_256`: 160-character message records appended and made
//!   durable with group commit, 256 records per `fdatasync` (the figure is records
//!   per second; syncs per second are that divided by 256);
//! * `journal/fdatasync`: a 4 KiB write and `fdatasync` alone, the disk's limit;
//! * `journal_recovery/open_and_replay_1m`: `Journal::open` plus a full replay of
//!   a journal of 1,000,000 such records (page cache warm after the first run).
//!
//! `cargo bench -p smslink --bench journal -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smslink::journal::{Direction, FsStorage, Journal, JournalConfig, Record, SyncPolicy};
use smslink::message::Message;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BATCH: u64 = 256;
const RECOVERY_RECORDS: u64 = 1_000_000;

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "smslink-journal-bench-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create bench dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(seq: u64) -> Record {
    let text = "x".repeat(160);
    Record::Accepted {
        link: 0,
        dir: Direction::Tx,
        seq,
        message: Message::text("+61400000001", "+61400000002", &text).expect("valid"),
    }
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal");
    let dir = TempDir::new("commit");
    let (mut journal, _) = Journal::open(
        FsStorage::new(&dir.0).expect("dir"),
        JournalConfig::default(),
    )
    .expect("open");
    let r = record(1);
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("append_commit_256", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                journal.append(&r).expect("append");
            }
            let durable = journal.commit(Instant::now()).expect("commit");
            // Steady state: everything is processed at once, segments are recycled.
            journal.release_before(durable).expect("release");
            black_box(durable)
        })
    });

    let path = dir.0.join("fdatasync");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("file");
    file.set_len(1 << 20).expect("size");
    file.sync_all().expect("sync");
    let block = [0x5au8; 4096];
    let mut at = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("fdatasync", |b| {
        b.iter(|| {
            file.write_all_at(&block, at).expect("write");
            file.sync_data().expect("fdatasync");
            at = (at + 4096) % (1 << 20);
        })
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = TempDir::new("recovery");
    let config = JournalConfig {
        sync: SyncPolicy::Off,
        ..JournalConfig::default()
    };
    {
        let (mut journal, _) =
            Journal::open(FsStorage::new(&dir.0).expect("dir"), config.clone()).expect("open");
        let r = record(1);
        for i in 0..RECOVERY_RECORDS {
            journal.append(&r).expect("append");
            if i % 4096 == 4095 {
                journal.commit(Instant::now()).expect("commit");
            }
        }
        journal.flush(Instant::now()).expect("flush");
    }
    let mut g = c.benchmark_group("journal_recovery");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECOVERY_RECORDS));
    g.bench_function("open_and_replay_1m", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (journal, recovery) =
                    Journal::open(FsStorage::new(&dir.0).expect("dir"), config.clone())
                        .expect("open");
                let mut n = 0u64;
                for item in journal.records(recovery.first_lsn) {
                    black_box(item.expect("record"));
                    n += 1;
                }
                total += start.elapsed();
                assert_eq!(n, RECOVERY_RECORDS);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, group_commit, recovery);
criterion_main!(benches);
