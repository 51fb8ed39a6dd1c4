//! Group commit, segment rotation and deletion, the disk budget, storage errors and
//! cursors, on `SimStorage` (which counts every sync).

mod journal_util;

use journal_util::{accepted, message, replay, small_config};
use smslink::journal::record::{Lsn, ReportGroup};
use smslink::journal::{
    Direction, Journal, JournalConfig, JournalError, LinkIdentity, Record, SimStorage, Storage,
    SyncPolicy,
};
use smslink::ring::{Cursors, Outcome, RxCursors};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn msg(rng: &mut fastrand::Rng, seq: u64) -> Record {
    accepted(0, seq, message(rng, 160))
}

fn segment_names(s: &SimStorage) -> Vec<String> {
    let mut names: Vec<String> = s
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn one_commit_is_one_write_and_one_sync() {
    let config = JournalConfig {
        segment_size: 1 << 20,
        ..JournalConfig::default()
    };
    let (mut j, _) = Journal::open(SimStorage::new(), config).unwrap();
    let before = j.storage().stats();
    // The journal's own count (what the node reports) is the storage's.
    assert_eq!(j.syncs(), before.sync_data + before.sync_dir);
    let mut rng = fastrand::Rng::with_seed(1);
    let mut last = 0;
    for seq in 1..=256 {
        last = j.append(&msg(&mut rng, seq)).unwrap();
    }
    assert_eq!(j.durable_lsn(), 0, "nothing durable before commit");
    assert_eq!(j.commit(Instant::now()).unwrap(), last);
    let after = j.storage().stats();
    assert_eq!(after.writes - before.writes, 1);
    assert_eq!(after.sync_data - before.sync_data, 1);
    assert_eq!(after.sync_dir - before.sync_dir, 0);
    assert_eq!(j.syncs(), after.sync_data + after.sync_dir);
    // An empty commit costs nothing.
    j.commit(Instant::now()).unwrap();
    assert_eq!(j.storage().stats(), after);
    assert_eq!(j.syncs(), after.sync_data + after.sync_dir);
}

#[test]
fn segments_rotate_and_each_creation_syncs_the_directory() {
    let (mut j, _) = Journal::open(SimStorage::new(), small_config()).unwrap();
    assert_eq!(j.storage().stats().creates, 1);
    assert_eq!(
        j.storage().stats().sync_dir,
        1,
        "open made the first segment durable"
    );
    let mut rng = fastrand::Rng::with_seed(2);
    let mut seq = 0;
    while j.segment_count() < 2 {
        seq += 1;
        j.append(&msg(&mut rng, seq)).unwrap();
    }
    let before = j.storage().stats();
    j.commit(Instant::now()).unwrap();
    let after = j.storage().stats();
    assert_eq!(after.creates - before.creates, 1);
    assert_eq!(
        after.sync_dir - before.sync_dir,
        1,
        "new segment: directory synced"
    );
    assert_eq!(
        after.sync_data - before.sync_data,
        2,
        "both segments written in this commit"
    );
    for name in segment_names(j.storage()) {
        assert_eq!(
            j.storage().contents(&name).unwrap().len(),
            4096,
            "{name} preallocated"
        );
    }
}

#[test]
fn state_records_are_copied_to_the_head_of_each_new_segment() {
    let (mut j, _) = Journal::open(SimStorage::new(), small_config()).unwrap();
    let identity = Record::Identity {
        link: 0,
        identity: LinkIdentity {
            name: "smsc-a".into(),
            epoch: 42,
            peer_epoch: Some(7),
            rx_offset: 0,
            rx_epoch_floor: 0,
        },
    };
    let checkpoint = |n| Record::Checkpoint {
        link: 0,
        tx: Cursors {
            last_retrieved: n,
            last_sent: n,
            last_confirmed: n,
            last_processed: n,
        },
        rx: RxCursors::default(),
    };
    j.append(&identity).unwrap();
    j.append(&checkpoint(1)).unwrap();
    j.append(&checkpoint(2)).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut seq = 0;
    while j.segment_count() < 3 {
        seq += 1;
        j.append(&msg(&mut rng, seq)).unwrap();
    }
    j.commit(Instant::now()).unwrap();
    let names = segment_names(j.storage());
    let first_of_third: Lsn = names[2][..20].parse().unwrap();
    let head: Vec<Record> = j
        .records(first_of_third)
        .take(2)
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(head, vec![identity, checkpoint(2)]);
}

fn report_group(group: u64, delivered: u8) -> Record {
    Record::ReportGroup {
        link: 0,
        group,
        state: Box::new(ReportGroup {
            client_ref: 100 + group,
            phone: smslink::message::Address::new("+4670000001").unwrap(),
            sender: smslink::message::Address::new("1000").unwrap(),
            parts: 2,
            finished: delivered,
            delivered,
            told_enroute: false,
            told_final: false,
            keys: vec![format!("id-{group}")],
        }),
    }
}

#[test]
fn report_groups_are_copied_to_each_head_until_done_and_take_a_quarter_at_most() {
    let (mut j, _) = Journal::open(SimStorage::new(), small_config()).unwrap();
    j.append(&report_group(1, 0)).unwrap();
    j.append(&report_group(2, 0)).unwrap();
    j.append(&report_group(1, 1)).unwrap();
    j.append(&Record::ReportDone { link: 0, group: 2 }).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut seq = 0;
    while j.segment_count() < 3 {
        seq += 1;
        j.append(&msg(&mut rng, seq)).unwrap();
    }
    j.commit(Instant::now()).unwrap();
    let names = segment_names(j.storage());
    let first_of_third: Lsn = names[2][..20].parse().unwrap();
    let head: Vec<Record> = j
        .records(first_of_third)
        .take(2)
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(head[0], report_group(1, 1), "the latest state of group 1");
    assert!(!matches!(head[1], Record::ReportGroup { .. }), "2 is done");

    // A quarter of the 4096-byte segment: about 20 groups of these.
    let mut group = 10;
    let refused = loop {
        group += 1;
        match j.append(&report_group(group, 0)) {
            Ok(_) => assert!(group < 100, "never refused"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(refused, JournalError::ReportStateFull { max: 1024, .. }),
        "{refused}"
    );
    // A finished group makes room again; an update of a kept one always fits.
    j.append(&report_group(group - 1, 1)).unwrap();
    j.append(&Record::ReportDone { link: 0, group: 11 })
        .unwrap();
    j.append(&report_group(group, 0)).unwrap();
    while j.segment_count() < 5 {
        seq += 1;
        j.append(&msg(&mut rng, seq)).unwrap();
    }
    j.commit(Instant::now()).unwrap();
}

#[test]
fn segments_are_deleted_only_once_released() {
    let (mut j, _) = Journal::open(SimStorage::new(), small_config()).unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let mut lsns = Vec::new();
    for seq in 1..=100 {
        lsns.push(j.append(&msg(&mut rng, seq)).unwrap());
        if seq % 10 == 0 {
            j.commit(Instant::now()).unwrap();
        }
    }
    let names = segment_names(j.storage());
    assert!(names.len() >= 5, "{names:?}");
    let second: Lsn = names[1][..20].parse().unwrap();
    let third: Lsn = names[2][..20].parse().unwrap();
    // Below the end of the first segment: nothing can go.
    assert_eq!(j.release_before(second - 1).unwrap(), 0);
    assert_eq!(segment_names(j.storage()), names);
    let before = j.storage().stats();
    // The first two segments lie wholly below `third`.
    assert_eq!(j.release_before(third).unwrap(), 2);
    let after = j.storage().stats();
    assert_eq!(after.removes - before.removes, 2);
    assert_eq!(
        after.sync_dir - before.sync_dir,
        2,
        "one directory sync per removal"
    );
    assert_eq!(segment_names(j.storage()), names[2..].to_vec());
    assert_eq!(j.first_lsn(), third);
    // A cursor below the kept records says so.
    let mut c = j.cursor(1);
    assert!(matches!(
        j.read_next(&mut c),
        Err(JournalError::Released { lsn: 1, oldest }) if oldest == third
    ));
    // The active segment is never deleted, however far the release goes.
    j.release_before(u64::MAX).unwrap();
    assert_eq!(j.segment_count(), 1);
    let (j, rec) = Journal::open(j.into_storage(), small_config()).unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(replay(&j).last().unwrap().0, *lsns.last().unwrap());
}

#[test]
fn a_cursor_reads_in_order_from_any_lsn_and_only_what_was_written() {
    let config = JournalConfig {
        segment_size: 256 * 1024,
        max_disk_bytes: 8 << 20,
        ..JournalConfig::default()
    };
    let (mut j, _) = Journal::open(SimStorage::new(), config).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut want = Vec::new();
    for seq in 1..=5000 {
        let r = msg(&mut rng, seq);
        want.push((j.append(&r).unwrap(), r));
        if seq % 256 == 0 {
            j.commit(Instant::now()).unwrap();
        }
    }
    j.commit(Instant::now()).unwrap();
    assert!(j.segment_count() > 2);
    for from in [1, 2, 299, 2500, 4999, 5000] {
        let got: Vec<_> = j.records(from).map(|r| r.unwrap()).collect();
        assert_eq!(got, want[from as usize - 1..], "from {from}");
    }
    // Appended but not committed: not readable yet; then readable in order.
    let mut c = j.cursor(4998);
    assert_eq!(j.read_next(&mut c).unwrap().unwrap().0, 4998);
    let extra = msg(&mut rng, 5001);
    j.append(&extra).unwrap();
    assert_eq!(j.read_next(&mut c).unwrap().unwrap().0, 4999);
    assert_eq!(j.read_next(&mut c).unwrap().unwrap().0, 5000);
    assert!(j.read_next(&mut c).unwrap().is_none());
    j.commit(Instant::now()).unwrap();
    assert_eq!(j.read_next(&mut c).unwrap(), Some((5001, extra)));
}

#[test]
fn the_budget_refuses_messages_but_not_progress() {
    let config = JournalConfig {
        max_disk_bytes: 4 * 4096,
        ..small_config()
    };
    let (mut j, _) = Journal::open(SimStorage::new(), config).unwrap();
    let mut rng = fastrand::Rng::with_seed(6);
    let mut seq = 0;
    let full = loop {
        seq += 1;
        match j.append(&msg(&mut rng, seq)) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(full, JournalError::Full { used, max } if used == 4 * 4096 && max == 4 * 4096),
        "{full}"
    );
    assert!(full.to_string().contains("release records"));
    // Outcomes still go in (one segment beyond the budget)...
    let processed = |seq| Record::Processed {
        link: 0,
        dir: Direction::Tx,
        seq,
        outcome: Outcome::Accepted,
    };
    for s in 1..=40 {
        j.append(&processed(s)).unwrap();
    }
    assert_eq!(j.disk_bytes(), 5 * 4096);
    j.commit(Instant::now()).unwrap();
    // ...and once released, the space is back for messages.
    let keep_from = j.next_lsn() - 1;
    assert!(j.release_before(keep_from).unwrap() >= 3);
    j.append(&msg(&mut rng, seq)).unwrap();
}

#[test]
fn disk_full_is_reported_with_the_path_and_leaves_no_bad_record() {
    let config = JournalConfig {
        segment_size: 4 << 20,
        max_disk_bytes: 16 << 20,
        ..JournalConfig::default()
    };
    let mut storage = SimStorage::new();
    // No fallocate: space is taken as bytes (records, zeros ahead of them) are
    // written, and runs out in the middle of a write.
    storage.set_sparse(true);
    let (mut j, _) = Journal::open(storage, config.clone()).unwrap();
    j.storage_mut().set_free_space(Some(1000));
    let mut rng = fastrand::Rng::with_seed(8);
    let mut want = Vec::new();
    let (err, pending) = loop {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let r = msg(&mut rng, want.len() as u64 + 1);
            batch.push((j.append(&r).unwrap(), r));
        }
        match j.commit(Instant::now()) {
            Ok(_) => want.extend(batch),
            Err(e) => break (e, batch),
        }
    };
    match &err {
        JournalError::DiskFull { path, durable } => {
            assert_eq!(path, &PathBuf::from("sim/00000000000000000001.seg"));
            assert_eq!(*durable, want.last().unwrap().0);
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(err.to_string().contains("00000000000000000001.seg"));
    assert_eq!(j.durable_lsn(), want.last().unwrap().0);
    // A crash now: the partial write is a torn tail, never a bad record.
    for seed in 0..20 {
        let mut crashed = j.storage().clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        crashed.crash(&mut || rng.u64(..));
        let (back, rec) = Journal::open(crashed, config.clone()).unwrap();
        assert!(rec.cut.is_none_or(|c| !c.repaired));
        assert_eq!(replay(&back)[..want.len()], want[..]);
    }
    // Or space comes back: the next commit writes the same records again, whole.
    j.storage_mut().set_free_space(None);
    assert_eq!(j.commit(Instant::now()).unwrap(), pending.last().unwrap().0);
    let (j, rec) = Journal::open(j.into_storage(), config).unwrap();
    assert!(rec.cut.is_none());
    want.extend(pending);
    assert_eq!(replay(&j), want);
}

#[test]
fn a_failed_sync_stops_the_journal_until_reopened() {
    let (mut j, _) = Journal::open(SimStorage::new(), small_config()).unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    let first = msg(&mut rng, 1);
    j.append(&first).unwrap();
    j.commit(Instant::now()).unwrap();
    j.append(&msg(&mut rng, 2)).unwrap();
    j.storage_mut().fail_next_sync();
    let err = j.commit(Instant::now()).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Io {
                op: "sync_data",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(j.durable_lsn(), 1);
    assert!(matches!(
        j.append(&msg(&mut rng, 3)),
        Err(JournalError::Poisoned { .. })
    ));
    assert!(matches!(
        j.commit(Instant::now()),
        Err(JournalError::Poisoned { .. })
    ));
    // Reopening reads what reached the disk, and syncs it.
    let (j, rec) = Journal::open(j.into_storage(), small_config()).unwrap();
    assert!(rec.last_lsn >= 1);
    assert_eq!(replay(&j)[0], (1, first));
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let mut storage = SimStorage::new();
    storage.set_read_only_dir(true);
    let err = Journal::open(storage, small_config()).unwrap_err();
    match &err {
        JournalError::Io { op, path, source } => {
            assert_eq!(*op, "create");
            assert_eq!(path, &PathBuf::from("sim/00000000000000000001.seg"));
            assert_eq!(source.raw_os_error(), Some(libc::EACCES));
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn policy_off_never_syncs() {
    let config = JournalConfig {
        sync: SyncPolicy::Off,
        ..small_config()
    };
    let (mut j, _) = Journal::open(SimStorage::new(), config).unwrap();
    let before = j.storage().stats();
    let mut rng = fastrand::Rng::with_seed(10);
    for seq in 1..=100 {
        j.append(&msg(&mut rng, seq)).unwrap();
        j.commit(Instant::now() + Duration::from_millis(seq))
            .unwrap();
    }
    let after = j.storage().stats();
    assert_eq!(after.sync_data, before.sync_data);
    assert_eq!(after.sync_dir, before.sync_dir);
    assert_eq!(j.durable_lsn(), j.written_lsn());
}
