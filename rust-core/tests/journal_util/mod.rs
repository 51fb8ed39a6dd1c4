//! Record generators and small helpers shared by the journal tests.

#![allow(dead_code)]

use smslink::journal::{
    Direction, Journal, JournalConfig, LinkIdentity, Lsn, Record, Storage, SyncPolicy,
};
use smslink::message::Message;
use smslink::ring::{Cursors, Outcome, RxCursors};
use std::path::PathBuf;

/// A small journal: 4 KiB segments rotate every dozen or so messages.
pub fn small_config() -> JournalConfig {
    JournalConfig {
        segment_size: 4096,
        max_disk_bytes: 1 << 20,
        sync: SyncPolicy::Always,
        ..JournalConfig::default()
    }
}

pub fn message(rng: &mut fastrand::Rng, len: usize) -> Message {
    let text: String = (0..len).map(|_| rng.alphanumeric()).collect();
    let mut m = Message::text(&format!("+614{}", rng.u32(..)), "12345", &text).expect("valid");
    m.client_ref = rng.u64(..);
    m
}

pub fn accepted(link: u32, seq: u64, m: Message) -> Record {
    Record::Accepted {
        link,
        dir: Direction::Tx,
        seq,
        message: m,
    }
}

/// Any record, valid fields, random contents.
pub fn any_record(rng: &mut fastrand::Rng, seq: u64) -> Record {
    let link = rng.u32(0..3);
    let dir = if rng.bool() {
        Direction::Tx
    } else {
        Direction::Rx
    };
    match rng.u8(0..10) {
        0..=4 => {
            let len = rng.usize(0..=160);
            Record::Accepted {
                link,
                dir,
                seq,
                message: message(rng, len),
            }
        }
        5 | 6 => Record::Processed {
            link,
            dir,
            seq,
            outcome: if rng.bool() {
                Outcome::Accepted
            } else {
                Outcome::Rejected { code: rng.u32(..) }
            },
        },
        7 => {
            let p = seq / 4;
            Record::Checkpoint {
                link,
                tx: Cursors {
                    last_retrieved: seq,
                    last_sent: seq,
                    last_confirmed: p * 2,
                    last_processed: p,
                },
                rx: RxCursors {
                    last_stored: seq,
                    last_delivered: p * 3,
                    last_processed: p,
                },
            }
        }
        8 => Record::Identity {
            link,
            identity: LinkIdentity {
                name: format!("link-{link}"),
                epoch: rng.u64(1..),
                peer_epoch: if rng.bool() { Some(rng.u64(1..)) } else { None },
                rx_offset: rng.u64(..),
                rx_epoch_floor: rng.u64(..),
            },
        },
        _ => Record::Backlog {
            link,
            dir,
            next_lsn: rng.u64(..1 << 40),
        },
    }
}

pub fn is_state(r: &Record) -> bool {
    matches!(
        r,
        Record::Identity { .. }
            | Record::Checkpoint { .. }
            | Record::Backlog { .. }
            | Record::ReportGroup { .. }
    )
}

/// Every record from the oldest kept on, asserting the LSNs are consecutive.
pub fn replay<S: Storage>(j: &Journal<S>) -> Vec<(Lsn, Record)> {
    let first = j.first_lsn();
    let all: Vec<(Lsn, Record)> = j
        .records(first)
        .collect::<Result<_, _>>()
        .expect("replay reads back");
    for (i, (lsn, _)) in all.iter().enumerate() {
        assert_eq!(*lsn, first + i as u64, "LSNs are consecutive");
    }
    assert_eq!(
        all.last().map_or(first - 1, |r| r.0),
        j.written_lsn(),
        "replay reaches the written end"
    );
    all
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "smslink-journal-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (lsn, offset, size) of every entry in a segment file's bytes, read with the
/// public codec (stops at the first thing that is not an entry).
pub fn entries(bytes: &[u8]) -> Vec<(Lsn, usize, usize)> {
    use smslink::journal::record::decode_entry;
    use smslink::journal::segment::{SegmentHeader, HEADER_LEN};
    let header = SegmentHeader::decode(bytes).expect("segment header");
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while let Ok(e) = decode_entry(&bytes[at..], header.salt, 4096) {
        out.push((e.lsn, at, e.size()));
        at += e.size();
    }
    out
}

/// Append `n` random records and commit them; returns them with their LSNs.
pub fn fill<S: Storage>(
    j: &mut Journal<S>,
    rng: &mut fastrand::Rng,
    n: usize,
    now: std::time::Instant,
) -> Vec<(Lsn, Record)> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = any_record(rng, i as u64 + 1);
        out.push((j.append(&r).expect("append"), r));
    }
    j.commit(now).expect("commit");
    out
}

/// The records of a replay that the test appended (state copies left out).
pub fn appended_only(all: Vec<(Lsn, Record)>, appended: &[(Lsn, Record)]) -> Vec<(Lsn, Record)> {
    all.into_iter()
        .filter(|(l, _)| appended.iter().any(|(a, _)| a == l))
        .collect()
}

/// The records recovery kept from disk (the state copies `open` wrote after a cut
/// are left out, after checking that they are state records).
pub fn replay_kept<S: Storage>(
    j: &Journal<S>,
    rec: &smslink::journal::Recovery,
) -> Vec<(Lsn, Record)> {
    let (kept, copies): (Vec<_>, Vec<_>) =
        replay(j).into_iter().partition(|(l, _)| *l <= rec.last_lsn);
    assert_eq!(copies.len() as u64, rec.state_copies);
    assert!(copies.iter().all(|(_, r)| is_state(r)));
    kept
}
