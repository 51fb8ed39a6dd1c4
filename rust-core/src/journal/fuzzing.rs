//! Shared by the `journal_segment` fuzz target and the corpus replay test, so both
//! run exactly the same code. Not part of the stable API.

use super::segment::{segment_name, HEADER_LEN};
use super::{Journal, JournalConfig, JournalError, Record, SimStorage, Storage};
use crate::message::Message;
use std::time::Instant;

/// Segment size the harness opens with (small, so inputs span several segments).
pub const SEGMENT_SIZE: u64 = 4096;

/// Lay `data` out as segment files on a simulated disk and open a journal there.
///
/// First byte: bit 0 sets `repair`; bits 1..=2 the number of files (1 to 3). The
/// rest is cut into that many files at equal shares; each file is named by the
/// first LSN its header claims (so that valid segments chain), or by its position.
///
/// Checks, beyond not panicking: without `repair` the only refusal is `Corrupt`
/// (with `repair` there is none); every kept record replays, in LSN order, and
/// survives a re-encode; a record appended and committed after recovery is there,
/// last, after a clean reopen; the repaired and unrepaired opens agree when both
/// succeed. Returns how many records were kept from disk, so that a replay can tell
/// that its corpus reaches past the header checks.
pub fn check_segment(data: &[u8]) -> usize {
    let Some((&control, rest)) = data.split_first() else {
        return 0;
    };
    let repair = control & 1 == 1;
    let files = 1 + usize::from((control >> 1) & 3).min(2);
    let storage = lay_out(rest, files);
    let config = |repair| JournalConfig {
        segment_size: SEGMENT_SIZE,
        max_disk_bytes: 64 * SEGMENT_SIZE,
        repair,
        ..JournalConfig::default()
    };
    let (mut journal, recovery) = match Journal::open(storage.clone(), config(repair)) {
        Ok(x) => x,
        Err(JournalError::Corrupt { .. }) if !repair => {
            // Repair must then open it.
            let opened = Journal::open(storage, config(true));
            assert!(opened.is_ok(), "repair refused: {:?}", opened.err());
            return 0;
        }
        Err(e) => panic!("open failed: {e}"),
    };
    let first = journal.first_lsn();
    let mut replayed = Vec::new();
    for (i, item) in journal.records(first).enumerate() {
        let (lsn, record) = item.expect("a recovered record reads back");
        assert_eq!(lsn, first + i as u64);
        let mut bytes = Vec::new();
        let kind = record.encode(&mut bytes).expect("re-encodes");
        assert_eq!(Record::decode(kind, &bytes).as_ref(), Ok(&record));
        replayed.push(record);
    }
    assert_eq!(
        replayed.len() as u64,
        recovery.records + recovery.state_copies
    );
    assert_eq!(
        journal.written_lsn(),
        recovery.last_lsn + recovery.state_copies
    );
    if !repair {
        let (_, again) = Journal::open(storage, config(true)).expect("repair opens too");
        assert_eq!(again.last_lsn, recovery.last_lsn);
    }

    let note = Record::Accepted {
        link: 1,
        dir: super::Direction::Tx,
        seq: 1,
        message: Message::text("1", "2", "after recovery").expect("valid message"),
    };
    let lsn = journal.append(&note).expect("append after recovery");
    journal
        .commit(Instant::now())
        .expect("commit after recovery");
    let (reopened, clean) =
        Journal::open(journal.into_storage(), config(false)).expect("reopen after commit");
    assert!(clean.cut.is_none(), "clean reopen cut: {:?}", clean.cut);
    let mut cursor = reopened.cursor(lsn);
    let read = reopened.read_next(&mut cursor).expect("reads");
    assert_eq!(read, Some((lsn, note)));
    recovery.records as usize
}

fn lay_out(rest: &[u8], files: usize) -> SimStorage {
    let mut storage = SimStorage::new();
    let share = rest.len().div_ceil(files).max(1);
    for (i, bytes) in rest.chunks(share).enumerate() {
        let claimed = bytes
            .get(12..20)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .filter(|&lsn| bytes.len() >= HEADER_LEN && lsn > 0);
        let mut name = segment_name(claimed.unwrap_or(i as u64 + 1));
        if storage.contents(&name).is_some() {
            name = segment_name(1000 + i as u64);
        }
        let ok = storage.create(&name).is_ok()
            && storage.write_at(&name, 0, bytes).is_ok()
            && storage.sync_data(&name).is_ok();
        assert!(ok, "the simulated disk takes any file");
    }
    let _ = storage.sync_dir();
    storage
}
