//! The journal's sync thread: runs the journal's `fdatasync`s (and directory
//! fsyncs) so that the event loop never waits for the disk. The loop keeps writing
//! records while a sync runs; the journal starts the next sync, covering all of
//! them, when it takes this one's result (group commit, pipelined). Promises still
//! wait for the durable LSN: the journal moves it only when it takes a successful
//! result.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::journal::{SyncDone, SyncJob, SyncRunner};

/// One thread per journal, one job at a time.
pub(super) struct SyncThread {
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Started, not yet picked up by the thread.
    job: Option<SyncJob>,
    /// The thread is running a job.
    running: bool,
    done: Option<SyncDone>,
    stop: bool,
}

impl SyncThread {
    /// Start the thread; `wake` is called after each job, from the thread, so that
    /// the owner takes the result without polling.
    pub(super) fn spawn(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let slot = Arc::new(Slot::default());
        let theirs = slot.clone();
        let thread = std::thread::Builder::new()
            .name("smslink-jsync".into())
            .spawn(move || run(&theirs, wake))?;
        Ok(SyncThread {
            slot,
            thread: Some(thread),
        })
    }
}

fn run(slot: &Slot, wake: impl Fn()) {
    loop {
        let job = {
            let mut state = slot.state.lock();
            loop {
                if let Some(job) = state.job.take() {
                    state.running = true;
                    break job;
                }
                if state.stop {
                    return;
                }
                slot.changed.wait(&mut state);
            }
        };
        let done = job.run();
        {
            let mut state = slot.state.lock();
            state.done = Some(done);
            state.running = false;
        }
        slot.changed.notify_all();
        wake();
    }
}

impl SyncRunner for SyncThread {
    fn start(&mut self, job: SyncJob) {
        self.slot.state.lock().job = Some(job);
        self.slot.changed.notify_all();
    }

    fn take_done(&mut self) -> Option<SyncDone> {
        self.slot.state.lock().done.take()
    }

    fn wait_done(&mut self) -> Option<SyncDone> {
        let mut state = self.slot.state.lock();
        while state.job.is_some() || state.running {
            self.slot.changed.wait(&mut state);
        }
        state.done.take()
    }
}

impl Drop for SyncThread {
    /// A job started still runs (its result is dropped); then the thread ends.
    fn drop(&mut self) {
        self.slot.state.lock().stop = true;
        self.slot.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{
        Direction, FsStorage, Journal, JournalConfig, JournalError, Lsn, Record, Storage,
        SyncHandle,
    };
    use crate::link::persist::Persistence;
    use crate::link::{Endpoint, LinkConfig};
    use crate::message::Message;
    use std::io;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Holds every sync until opened (or fails it), and counts the syncs that
    /// reached it.
    #[derive(Default)]
    struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct GateState {
        open: bool,
        fail: bool,
        fail_dir: bool,
        entered: u64,
    }

    impl Gate {
        fn set(&self, open: bool, fail: bool) {
            let mut s = self.state.lock();
            s.open = open;
            s.fail = fail;
            self.changed.notify_all();
        }

        /// Wait (10 s at most) until `n` syncs have reached the gate.
        fn wait_entered(&self, n: u64) {
            let end = Instant::now() + Duration::from_secs(10);
            let mut s = self.state.lock();
            while s.entered < n {
                assert!(
                    !self.changed.wait_until(&mut s, end).timed_out(),
                    "only {} syncs reached the gate",
                    s.entered
                );
            }
        }
    }

    struct GatedSync {
        inner: Box<dyn SyncHandle>,
        gate: Arc<Gate>,
        dir: bool,
    }

    impl SyncHandle for GatedSync {
        fn sync(&self) -> io::Result<()> {
            let mut s = self.gate.state.lock();
            s.entered += 1;
            self.gate.changed.notify_all();
            while !s.open {
                self.gate.changed.wait(&mut s);
            }
            if s.fail || (self.dir && s.fail_dir) {
                return Err(io::Error::other("injected sync failure"));
            }
            drop(s);
            self.inner.sync()
        }
    }

    /// Real files whose syncs pass the gate.
    struct GatedStorage {
        fs: FsStorage,
        gate: Arc<Gate>,
    }

    impl Storage for GatedStorage {
        fn list(&self) -> io::Result<Vec<String>> {
            self.fs.list()
        }
        fn create(&mut self, name: &str) -> io::Result<()> {
            self.fs.create(name)
        }
        fn len(&self, name: &str) -> io::Result<u64> {
            self.fs.len(name)
        }
        fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.fs.read_at(name, offset, buf)
        }
        fn write_at(&mut self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
            self.fs.write_at(name, offset, data)
        }
        fn allocate(&mut self, name: &str, len: u64) -> io::Result<()> {
            self.fs.allocate(name, len)
        }
        fn set_len(&mut self, name: &str, len: u64) -> io::Result<()> {
            self.fs.set_len(name, len)
        }
        fn sync_data(&mut self, name: &str) -> io::Result<()> {
            self.fs.sync_data(name)
        }
        fn sync_dir(&mut self) -> io::Result<()> {
            self.fs.sync_dir()
        }
        fn remove(&mut self, name: &str) -> io::Result<()> {
            self.fs.remove(name)
        }
        fn lock(&mut self) -> io::Result<()> {
            self.fs.lock()
        }
        fn path(&self, name: &str) -> PathBuf {
            self.fs.path(name)
        }
        fn sync_handle(&self, name: &str) -> io::Result<Box<dyn SyncHandle>> {
            Ok(Box::new(GatedSync {
                inner: self.fs.sync_handle(name)?,
                gate: self.gate.clone(),
                dir: name.is_empty(),
            }))
        }
    }

    /// A fresh directory, removed at the end.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "smslink-jsync-{tag}-{}-{:x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Opened with the gate open (recovery syncs in place), then closed; syncs run
    /// on a `SyncThread` whose wakes arrive on the receiver.
    fn gated(dir: &TempDir) -> (GatedStorage, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        let storage = GatedStorage {
            fs: FsStorage::new(&dir.0).unwrap(),
            gate: gate.clone(),
        };
        (storage, gate)
    }

    fn runner() -> (Box<SyncThread>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let thread = SyncThread::spawn(move || {
            let _ = tx.send(());
        })
        .unwrap();
        (Box::new(thread), rx)
    }

    fn woken(rx: &mpsc::Receiver<()>) {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the sync thread woke its owner");
    }

    fn config() -> JournalConfig {
        JournalConfig {
            segment_size: 64 * 1024,
            max_disk_bytes: 1 << 20,
            ..JournalConfig::default()
        }
    }

    fn processed(seq: u64) -> Record {
        Record::Processed {
            link: 0,
            dir: Direction::Tx,
            seq,
            outcome: crate::ring::Outcome::Accepted,
        }
    }

    fn append(j: &mut Journal<GatedStorage>, seq: u64) -> Lsn {
        j.append(&processed(seq)).unwrap()
    }

    #[test]
    fn nothing_counts_durable_before_its_sync_and_one_sync_covers_all_written_meanwhile() {
        let dir = TempDir::new("pipe");
        let (storage, gate) = gated(&dir);
        let (mut j, _) = Journal::open(storage, config()).unwrap();
        let (runner, wakes) = runner();
        j.set_sync_runner(runner);
        let base = j.durable_lsn();
        let syncs = j.syncs();

        let first = append(&mut j, 1);
        let now = Instant::now();
        assert_eq!(j.commit(now).unwrap(), base, "commit does not wait");
        gate.wait_entered(1);
        // While the sync is held, records keep being written, none durable.
        let mut last = first;
        for seq in 2..=20 {
            last = append(&mut j, seq);
            assert_eq!(j.commit(now).unwrap(), base);
            assert!(j.is_syncing());
        }
        assert_eq!(j.written_lsn(), last);
        assert_eq!(j.records(first).count(), 20, "written records are readable");

        gate.set(true, false);
        woken(&wakes);
        // The first job covered only what was written when it started.
        assert_eq!(j.commit(now).unwrap(), first);
        assert_eq!(j.syncs(), syncs + 1);
        // The next covers all nineteen written meanwhile, in one sync.
        woken(&wakes);
        assert_eq!(j.commit(now).unwrap(), last);
        assert_eq!(j.syncs(), syncs + 2);
        assert!(!j.is_syncing());
        drop(j);

        let (j, rec) = Journal::open(FsStorage::new(&dir.0).unwrap(), config()).unwrap();
        assert!(rec.cut.is_none());
        assert_eq!(j.records(first).count(), 20);
    }

    #[test]
    fn a_message_is_reported_durable_only_after_the_thread_synced_it() {
        let dir = TempDir::new("durable");
        let (storage, gate) = gated(&dir);
        let (mut p, _, _) = Persistence::open(storage, config(), &[("a", 8)]).unwrap();
        let (runner, wakes) = runner();
        p.journal_mut().set_sync_runner(runner);
        let now = Instant::now();
        let mut ep =
            Endpoint::with_journal(LinkConfig::new("a", b"journal sync test key"), 0, now).unwrap();
        let seq = ep
            .send(&Message::text("1", "2", "held until synced").unwrap())
            .unwrap();

        let mut reported = Vec::new();
        let mut commit = |p: &mut Persistence<GatedStorage>, ep: &mut Endpoint| {
            p.commit(&mut [ep], now, |_, seqs| reported.extend(seqs))
                .unwrap();
            reported.clone()
        };
        assert!(commit(&mut p, &mut ep).is_empty());
        gate.wait_entered(1);
        for _ in 0..5 {
            assert!(
                commit(&mut p, &mut ep).is_empty(),
                "durable before its sync"
            );
        }
        gate.set(true, false);
        woken(&wakes);
        assert_eq!(commit(&mut p, &mut ep), [seq]);
    }

    #[test]
    fn a_failed_sync_on_the_thread_stops_the_journal_with_the_path() {
        let dir = TempDir::new("fail");
        let (storage, gate) = gated(&dir);
        let (mut j, _) = Journal::open(storage, config()).unwrap();
        let (runner, wakes) = runner();
        j.set_sync_runner(runner);
        let base = j.durable_lsn();
        append(&mut j, 1);
        let now = Instant::now();
        assert_eq!(j.commit(now).unwrap(), base);
        gate.set(true, true);
        woken(&wakes);
        let err = j.commit(now).unwrap_err();
        assert!(
            matches!(&err, JournalError::Io { op: "sync_data", path, .. } if path.starts_with(&dir.0)),
            "{err}"
        );
        assert_eq!(j.durable_lsn(), base, "nothing became durable");
        assert!(matches!(
            j.commit(now).unwrap_err(),
            JournalError::Poisoned { .. }
        ));
    }

    #[test]
    fn records_in_a_new_segment_wait_for_the_directory_sync() {
        let dir = TempDir::new("rotate");
        let (storage, gate) = gated(&dir);
        let small = JournalConfig {
            segment_size: 4096,
            ..config()
        };
        let (mut j, _) = Journal::open(storage, small).unwrap();
        let (runner, wakes) = runner();
        j.set_sync_runner(runner);
        let base = j.durable_lsn();
        let segments = j.segment_count();
        let mut seq = 0;
        while j.segment_count() == segments {
            seq += 1;
            append(&mut j, seq);
        }
        let now = Instant::now();
        assert_eq!(j.commit(now).unwrap(), base);
        // Both segments synced, then the directory, which fails: nothing of the
        // batch counts as durable.
        gate.state.lock().fail_dir = true;
        gate.set(true, false);
        woken(&wakes);
        assert_eq!(
            gate.state.lock().entered,
            3,
            "two segments and the directory"
        );
        let err = j.commit(now).unwrap_err();
        assert!(
            matches!(&err, JournalError::Io { op: "sync_dir", .. }),
            "{err}"
        );
        assert_eq!(j.durable_lsn(), base);
    }

    #[test]
    fn flush_waits_for_the_sync_under_way() {
        let dir = TempDir::new("flush");
        let (storage, gate) = gated(&dir);
        let (mut j, _) = Journal::open(storage, config()).unwrap();
        let (runner, _wakes) = runner();
        j.set_sync_runner(runner);
        let now = Instant::now();
        append(&mut j, 1);
        j.commit(now).unwrap();
        gate.wait_entered(1);
        let last = append(&mut j, 2);
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.set(true, false))
        };
        assert_eq!(j.flush(now).unwrap(), last);
        assert!(!j.is_syncing());
        opener.join().unwrap();
    }
}
