//! The journal on real files (`FsStorage` in a fresh directory under the system temp
//! dir): round trip across a reopen, preallocation, the directory lock, errors that
//! name the path, a torn tail cut on disk.

mod journal_util;

use journal_util::{fill, replay, replay_kept, TempDir};
use smslink::journal::{FsStorage, Journal, JournalConfig, JournalError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Instant;

fn config() -> JournalConfig {
    JournalConfig {
        segment_size: 64 * 1024,
        max_disk_bytes: 16 << 20,
        ..JournalConfig::default()
    }
}

#[test]
fn records_survive_a_reopen_in_preallocated_segments() {
    let dir = TempDir::new("roundtrip");
    let mut rng = fastrand::Rng::with_seed(1);
    let (mut j, rec) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
    assert_eq!(rec.records, 0);
    let mut want = Vec::new();
    for _ in 0..30 {
        want.extend(fill(&mut j, &mut rng, 100, Instant::now()));
    }
    assert!(j.segment_count() > 2);
    drop(j);
    let (j, rec) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(rec.last_lsn, want.last().unwrap().0);
    let got: Vec<_> = replay(&j)
        .into_iter()
        .filter(|(l, _)| want.iter().any(|(w, _)| w == l))
        .collect();
    assert_eq!(got, want);
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.ends_with(".seg") {
            let meta = entry.metadata().unwrap();
            assert_eq!(meta.len(), 64 * 1024, "{name}");
            // fallocate reserved the blocks (a sparse file would have fewer).
            assert!(
                meta.blocks() * 512 >= 64 * 1024,
                "{name}: {} blocks",
                meta.blocks()
            );
        }
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let (first, _) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
    let err = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap_err();
    match &err {
        JournalError::Locked { path } => assert_eq!(path, &dir.0),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.to_string().contains(dir.0.to_str().unwrap()), "{err}");
    drop(first);
    Journal::open(FsStorage::new(&dir.0).unwrap(), config()).expect("free again once closed");
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = TempDir::new("unwritable");
    // A journal path below a regular file cannot be a directory.
    let file = dir.0.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = FsStorage::new(file.join("journal")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));

    // A directory without write permission (not enforced for root).
    let ro = dir.0.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let enforced = std::fs::write(ro.join("probe"), b"").is_err();
    if enforced {
        let err = Journal::open(FsStorage::new(&ro).unwrap(), config()).unwrap_err();
        match &err {
            JournalError::Io { path, source, .. } => {
                assert!(path.starts_with(&ro), "{err}");
                assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_torn_tail_on_disk_is_cut() {
    let dir = TempDir::new("torn");
    let mut rng = fastrand::Rng::with_seed(2);
    let (mut j, _) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
    let want = fill(&mut j, &mut rng, 20, Instant::now());
    drop(j);
    let seg = dir.0.join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = bytes.len() - bytes.iter().rev().position(|&b| b != 0).unwrap();
    bytes[end + 10..end + 30].fill(0xa5);
    std::fs::write(&seg, &bytes).unwrap();
    let (j, rec) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
    assert_eq!(replay_kept(&j, &rec), want);
    let cut = rec.cut.expect("cut");
    assert_eq!(cut.offset, end as u64);
    assert_eq!(cut.dropped_bytes, 30);
    drop(j);
    let after = std::fs::read(&seg).unwrap();
    assert_eq!(after.len(), 64 * 1024);
    assert!(
        !after.windows(20).any(|w| w.iter().all(|&b| b == 0xa5)),
        "the garbage is gone from the file"
    );
}
