//! Recovery on `SimStorage`, case by case: a clean close, a torn tail, damage in
//! the middle (refused with file and offset, or cut when `repair` is set), damage
//! in an older segment, stale bytes from another journal.

mod journal_util;

use journal_util::{appended_only, entries, fill, replay, replay_kept, small_config};
use smslink::journal::{
    Damage, EntryError, Journal, JournalConfig, JournalError, Record, SimStorage, SyncPolicy,
};
use std::path::PathBuf;
use std::time::Instant;

const FIRST: &str = "00000000000000000001.seg";

/// A journal of `n` records committed five at a time (as event-loop turns would).
fn journal_with(n: usize, config: JournalConfig) -> (SimStorage, Vec<(u64, Record)>) {
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut j, _) = Journal::open(SimStorage::new(), config).unwrap();
    let mut records = Vec::new();
    while records.len() < n {
        records.extend(fill(
            &mut j,
            &mut rng,
            5.min(n - records.len()),
            Instant::now(),
        ));
    }
    (j.into_storage(), records)
}

fn big_segments() -> JournalConfig {
    JournalConfig {
        segment_size: 1 << 20,
        max_disk_bytes: 4 << 20,
        ..JournalConfig::default()
    }
}

#[test]
fn clean_close_recovers_every_record_in_order() {
    let (storage, appended) = journal_with(300, small_config());
    let (j, rec) = Journal::open(storage, small_config()).unwrap();
    assert!(rec.cut.is_none());
    assert!(rec.segments > 3, "300 records span several 4 KiB segments");
    assert_eq!(rec.last_lsn, appended.last().unwrap().0);
    assert_eq!(appended_only(replay(&j), &appended), appended);
    assert_eq!(j.durable_lsn(), rec.last_lsn);
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let (mut storage, appended) = journal_with(50, big_segments());
    let bytes = storage.contents(FIRST).unwrap().to_vec();
    let all = entries(&bytes);
    let &(last_lsn, offset, size) = all.last().unwrap();
    // The last record's second half never reached the disk, and some garbage did.
    storage.corrupt(FIRST, (offset + size / 2) as u64, &vec![0; size - size / 2]);
    storage.corrupt(FIRST, (offset + size + 100) as u64, b"garbage");
    let (mut j, rec) = Journal::open(storage, big_segments()).unwrap();
    let kept = replay_kept(&j, &rec);
    let cut = rec.cut.expect("cut");
    assert_eq!(cut.path, PathBuf::from("sim").join(FIRST));
    assert_eq!(cut.offset, offset as u64);
    assert!(!cut.repaired);
    assert_eq!(cut.dropped_records, 0);
    assert_eq!(cut.dropped_bytes, (size + 100 + 7) as u64);
    assert_eq!(rec.last_lsn, last_lsn - 1);
    assert_eq!(kept, appended[..appended.len() - 1]);
    // The cut bytes are gone for good: past the cut only the state copies written
    // by open, then zeros.
    let after = entries(j.storage().contents(FIRST).unwrap());
    assert_eq!(after.len() as u64, rec.last_lsn + rec.state_copies);
    let end = after.last().map_or(0, |e| e.1 + e.2);
    assert!(j.storage().contents(FIRST).unwrap()[end..]
        .iter()
        .all(|&b| b == 0));
    // Appending carries on after them (the dropped LSN is given again), and a
    // clean reopen finds no damage.
    let more = fill(&mut j, &mut fastrand::Rng::with_seed(1), 3, Instant::now());
    assert_eq!(more[0].0, last_lsn + rec.state_copies);
    let (j, rec) = Journal::open(j.into_storage(), big_segments()).unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(appended_only(replay(&j), &more), more);
    assert_eq!(appended_only(replay(&j), &kept), kept);
}

#[test]
fn damage_in_the_middle_is_refused_with_file_and_offset() {
    let (mut storage, _) = journal_with(50, big_segments());
    let all = entries(storage.contents(FIRST).unwrap());
    let (lsn, offset, _) = all[9];
    storage.corrupt(FIRST, offset as u64 + 20, b"\xff");
    let err = Journal::open(storage.clone(), big_segments()).unwrap_err();
    match &err {
        JournalError::Corrupt {
            path,
            offset: at,
            damage,
        } => {
            assert_eq!(path, &PathBuf::from("sim").join(FIRST));
            assert_eq!(*at, offset as u64);
            assert_eq!(damage, &Damage::Entry(EntryError::BadCrc));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(FIRST) && text.contains(&offset.to_string()),
        "{text}"
    );

    // With repair, the journal is cut there and says what it dropped.
    let repair = JournalConfig {
        repair: true,
        ..big_segments()
    };
    let (j, rec) = Journal::open(storage, repair).unwrap();
    let cut = rec.cut.clone().expect("cut");
    assert!(cut.repaired);
    assert_eq!(cut.offset, offset as u64);
    assert_eq!(cut.dropped_records, 40, "records 11..=50 were dropped");
    assert!(cut.dropped_bytes > 0);
    assert_eq!(rec.last_lsn, lsn - 1);
    assert_eq!(replay_kept(&j, &rec).len(), 9);
    // Cut for good: a plain open now finds a clean journal (with the state copies).
    let copies = rec.state_copies;
    let (_, rec) = Journal::open(j.into_storage(), big_segments()).unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(rec.last_lsn, lsn - 1 + copies);
}

#[test]
fn damage_in_an_older_segment_is_refused() {
    let (mut storage, _) = journal_with(200, small_config());
    let all = entries(storage.contents(FIRST).unwrap());
    let (_, offset, _) = all[3];
    storage.corrupt(FIRST, offset as u64 + 30, b"\x00\x01");
    match Journal::open(storage.clone(), small_config()).unwrap_err() {
        JournalError::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!(path, PathBuf::from("sim").join(FIRST));
            assert_eq!(at, offset as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let repair = JournalConfig {
        repair: true,
        ..small_config()
    };
    let (j, rec) = Journal::open(storage, repair).unwrap();
    let cut = rec.cut.unwrap();
    assert!(cut.removed_segments > 2, "later segments removed: {cut:?}");
    assert_eq!(j.segment_count(), 1);
    assert_eq!(rec.last_lsn, 3);
}

#[test]
fn a_damaged_header_of_a_later_segment_is_corruption() {
    let (mut storage, _) = journal_with(200, small_config());
    let names: Vec<String> = smslink::journal::Storage::list(&storage).unwrap();
    let second = names
        .iter()
        .filter(|n| n.ends_with(".seg"))
        .nth(1)
        .unwrap()
        .clone();
    storage.corrupt(&second, 0, b"XX");
    match Journal::open(storage, small_config()).unwrap_err() {
        JournalError::Corrupt {
            path,
            offset,
            damage: Damage::Header(_),
        } => {
            assert_eq!(path, PathBuf::from("sim").join(&second));
            assert_eq!(offset, 0);
        }
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn bytes_of_another_journal_never_pass_for_records() {
    // Two journals of identical records: only the salts differ.
    let (a, _) = journal_with(40, big_segments());
    let (mut b, appended) = journal_with(20, big_segments());
    assert_eq!(appended.last().unwrap().0, 20);
    let a_bytes = a.contents(FIRST).unwrap().to_vec();
    let b_entries = entries(b.contents(FIRST).unwrap());
    let (_, end_off, end_size) = *b_entries.last().unwrap();
    let b_end = end_off + end_size;
    // Lay a's records 21..=40 right after b's 20th, where b's 21st would go.
    let a_entries = entries(&a_bytes);
    let (from, to) = (a_entries[20].1, a_entries[39].1 + a_entries[39].2);
    b.corrupt(FIRST, b_end as u64, &a_bytes[from..to]);
    let (j, rec) = Journal::open(b, big_segments()).unwrap();
    let cut = rec.cut.clone().expect("stale bytes are cut");
    assert_eq!(cut.offset, b_end as u64);
    assert_eq!(cut.dropped_records, 0, "no stale entry passes the CRC");
    assert_eq!(rec.last_lsn, 20);
    assert_eq!(replay_kept(&j, &rec), appended);
}

#[test]
fn interval_policy_recovers_what_was_synced() {
    let config = JournalConfig {
        sync: SyncPolicy::Interval(std::time::Duration::from_secs(1)),
        ..big_segments()
    };
    let t0 = Instant::now();
    let mut rng = fastrand::Rng::with_seed(3);
    let (mut j, _) = Journal::open(SimStorage::new(), config.clone()).unwrap();
    let first = fill(&mut j, &mut rng, 10, t0);
    assert_eq!(j.durable_lsn(), 10, "first commit syncs");
    fill(
        &mut j,
        &mut rng,
        10,
        t0 + std::time::Duration::from_millis(10),
    );
    assert_eq!(
        j.durable_lsn(),
        10,
        "within the interval: written, not synced"
    );
    assert_eq!(j.written_lsn(), 20);
    assert_eq!(
        j.sync_deadline(),
        Some(t0 + std::time::Duration::from_secs(1))
    );
    let mut crashed = j.storage().clone();
    crashed.crash(&mut || 1); // odd numbers: nothing unsynced survives
    let (j2, rec) = Journal::open(crashed, config).unwrap();
    assert_eq!(rec.last_lsn, 10);
    assert_eq!(replay(&j2), first);
    assert_eq!(
        j.commit(t0 + std::time::Duration::from_secs(1)).unwrap(),
        20
    );
    assert_eq!(j.sync_deadline(), None);
}
