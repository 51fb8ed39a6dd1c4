//! Replays the committed `journal_segment` fuzz corpus (fuzz/corpus/journal_segment/)
//! through the check the fuzz target runs (`smslink::fuzzing::check_journal_segment`),
//! without cargo-fuzz or nightly.
//!
//! `SMSLINK_WRITE_JOURNAL_CORPUS=1 cargo test --test fuzz_corpus_journal` rewrites
//! the hand-made seed files (names starting with `seed_`).

use smslink::fuzzing::check_journal_segment as check_segment;
use smslink::journal::record::encode_entry;
use smslink::journal::record::ReportGroup;
use smslink::journal::segment::SegmentHeader;
use smslink::journal::{Direction, LinkIdentity, Record};
use smslink::message::{Address, Message};
use smslink::ring::{Cursors, Outcome, RxCursors};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/journal_segment")
}

const SALT: u64 = 0x5eed_0000_0000_0001;

fn record(i: u64) -> Record {
    match i % 4 {
        0 => Record::Identity {
            link: 0,
            identity: LinkIdentity {
                name: "smsc-a".into(),
                epoch: 11,
                peer_epoch: Some(22),
                rx_offset: 0,
                rx_epoch_floor: 0,
            },
        },
        1 => Record::Accepted {
            link: 0,
            dir: Direction::Tx,
            seq: i,
            message: Message::text("+61400000001", "12345", "hello").expect("valid"),
        },
        2 => Record::Processed {
            link: 0,
            dir: Direction::Rx,
            seq: i,
            outcome: Outcome::Rejected { code: 3 },
        },
        _ => Record::Checkpoint {
            link: 0,
            tx: Cursors {
                last_retrieved: i,
                last_sent: i,
                last_confirmed: i - 1,
                last_processed: i - 2,
            },
            rx: RxCursors::default(),
        },
    }
}

/// A buffer server's report groups (segment format 2): updates, then one finished.
fn report_record(i: u64) -> Record {
    match i % 3 {
        0 => Record::ReportDone { link: 0, group: i },
        _ => Record::ReportGroup {
            link: 0,
            group: i,
            state: Box::new(ReportGroup {
                client_ref: 1000 + i,
                phone: Address::new("+61400000001").expect("valid"),
                sender: Address::new("12345").expect("valid"),
                parts: 3,
                finished: (i % 2) as u8,
                delivered: (i % 2) as u8,
                told_enroute: i % 2 == 1,
                told_final: false,
                keys: vec![
                    format!("0a{i:02x}|61400000001"),
                    format!("0b{i:02x}|61400000001"),
                ],
            }),
        },
    }
}

/// A segment of records `first..first + n` committed three at a time, padded with
/// zeros to `size`.
fn segment(first: u64, n: u64, salt: u64, size: usize) -> Vec<u8> {
    segment_of(record, first, n, salt, size)
}

fn segment_of(record: fn(u64) -> Record, first: u64, n: u64, salt: u64, size: usize) -> Vec<u8> {
    let mut s = SegmentHeader {
        first_lsn: first,
        salt,
    }
    .encode()
    .to_vec();
    for lsn in first..first + n {
        let mut payload = Vec::new();
        let r = record(lsn);
        let kind = r.encode(&mut payload).expect("encodes");
        let durable = (lsn - 1) / 3 * 3;
        encode_entry(&mut s, kind, lsn, durable, salt, &payload);
    }
    assert!(s.len() <= size);
    s.resize(size, 0);
    s
}

fn with(control: u8, files: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![control];
    for f in files {
        v.extend_from_slice(f);
    }
    v
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let one = segment(1, 12, SALT, 1024);
    let mut torn = one.clone();
    let end = 1024 - torn.iter().rev().position(|&b| b != 0).unwrap_or(0);
    torn[end - 20..end].fill(0);
    let mut middle = one.clone();
    // Inside the second record (the first is 69 bytes), so one record is kept.
    middle[32 + 69 + 20] ^= 0x40;
    let mut bad_header = one.clone();
    bad_header[0] = b'X';
    let mut huge = segment(1, 2, SALT, 256);
    let at = 256 - huge.iter().rev().position(|&b| b != 0).unwrap_or(0);
    huge[at..at + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 1]);
    // A segment as the first format wrote it (version 1 in its header).
    let mut version_1 = one.clone();
    version_1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&version_1[..28]);
    version_1[28..32].copy_from_slice(&crc.to_le_bytes());
    // Records written under another salt than the header's.
    let mut other_salt = segment(1, 12, SALT ^ 1, 1024);
    other_salt[..32].copy_from_slice(&one[..32]);
    vec![
        ("seed_empty", vec![0]),
        ("seed_one_segment", with(0, std::slice::from_ref(&one))),
        (
            "seed_one_segment_repair",
            with(1, std::slice::from_ref(&one)),
        ),
        ("seed_torn_tail", with(0, &[torn])),
        ("seed_middle_damage", with(0, &[middle.clone()])),
        ("seed_middle_damage_repair", with(1, &[middle])),
        ("seed_bad_header", with(0, &[bad_header])),
        ("seed_huge_length", with(0, &[huge])),
        ("seed_other_salt", with(0, &[other_salt])),
        ("seed_version_1", with(0, &[version_1])),
        (
            "seed_report_groups",
            with(0, &[segment_of(report_record, 1, 9, SALT, 1024)]),
        ),
        (
            "seed_two_segments",
            with(2, &[segment(1, 6, SALT, 768), segment(7, 6, SALT + 1, 768)]),
        ),
        (
            "seed_gap",
            with(2, &[segment(1, 6, SALT, 768), segment(9, 6, SALT + 1, 768)]),
        ),
        (
            "seed_three_segments",
            with(
                4,
                &[
                    segment(1, 4, SALT, 512),
                    segment(5, 4, SALT + 1, 512),
                    segment(9, 4, SALT + 2, 512),
                ],
            ),
        ),
    ]
}

#[test]
fn corpus_replays_without_panic() {
    let dir = corpus_dir();
    if std::env::var_os("SMSLINK_WRITE_JOURNAL_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut files = 0;
    let mut recovered = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        recovered += check_segment(&bytes);
        files += 1;
    }
    assert!(files >= seeds().len(), "corpus has {files} files");
    assert!(recovered > 0, "the corpus reaches past the headers");
}

#[test]
fn committed_seeds_match_their_generator() {
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(name)).expect("seed file committed");
        assert_eq!(on_disk, bytes, "{name} is stale: regenerate the seeds");
    }
}

#[test]
fn seeds_reach_the_cases_they_are_named_for() {
    let all: std::collections::HashMap<_, _> = seeds().into_iter().collect();
    assert_eq!(check_segment(&all["seed_one_segment"]), 12);
    assert_eq!(check_segment(&all["seed_torn_tail"]), 11);
    assert_eq!(check_segment(&all["seed_two_segments"]), 12);
    assert_eq!(check_segment(&all["seed_three_segments"]), 12);
    // Refused, then opened by repair.
    assert_eq!(check_segment(&all["seed_middle_damage"]), 0);
    assert_eq!(check_segment(&all["seed_middle_damage_repair"]), 1);
    assert_eq!(check_segment(&all["seed_other_salt"]), 0);
    assert_eq!(check_segment(&all["seed_huge_length"]), 2);
    assert_eq!(check_segment(&all["seed_version_1"]), 12);
    assert_eq!(check_segment(&all["seed_report_groups"]), 9);
}
