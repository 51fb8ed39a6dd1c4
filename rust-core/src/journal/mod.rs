//! The journal: a durable, segmented log under the rings, so that nothing a node
//! has confirmed is lost when it crashes, and a disk backlog can hold what RAM
//! cannot.
//!
//! It is a storage layer only: it stores [`Record`]s in order and gives them back;
//! what they mean (rebuilding rings, cursors, link identity) is the caller's. All
//! file access goes through [`Storage`]: [`FsStorage`] on real files, [`SimStorage`]
//! in memory for seeded crash simulations.
//!
//! # Using it
//!
//! * [`Journal::open`] recovers what is on disk and reports it in a [`Recovery`];
//!   [`Journal::records`] (or a [`Cursor`]) then replays the records in order.
//! * [`Journal::append`] buffers a record and returns its LSN. Nothing is written yet.
//! * [`Journal::commit`] writes everything appended since the last commit in one
//!   write and makes it durable with one `sync_data` (plus a directory sync when it
//!   created a segment; a batch that crosses into a new segment takes one write and
//!   one `sync_data` per segment), as the [`SyncPolicy`] allows. The runtime
//!   commits once per event-loop turn, and lets a confirmation leave the process only
//!   once [`Journal::durable_lsn`] has reached the record behind it.
//! * With a [`SyncRunner`] ([`Journal::set_sync_runner`]), `commit` only writes and
//!   hands the syncs to the runner (the runtime's sync thread); the commit after the
//!   runner finished takes its result and moves `durable_lsn`. Records written while
//!   a sync runs wait for the next one, which covers them all: the writer never
//!   waits for the disk, and syncs are pipelined behind the writes.
//! * [`Journal::release_before`] tells the journal which records are no longer
//!   needed; whole segments below that point are deleted.
//! * A [`Cursor`] reads committed records back from any LSN, so a backlog behind
//!   the in-RAM ring needs no copy of its messages in memory.
//!
//! # On disk
//!
//! A directory of segment files named by their first LSN
//! (`00000000000000000001.seg`), each preallocated to `segment_size`, plus a `LOCK`
//! file. A segment starts with a 32-byte header (magic, version, first LSN, a
//! random salt chosen when the file is created, CRC-32C) and holds entries:
//!
//! ```text
//! len u32 | type u8 | lsn u64 | durable_gap u32 | payload[len] | crc32c u32
//! ```
//!
//! The CRC covers the segment's salt, the header and the payload. LSNs are
//! consecutive across segments. Zeroed (preallocated) space never decodes (type 0,
//! length 0), and bytes of any earlier file of the same name fail the CRC because
//! the salt differs.
//!
//! `durable_gap` is the one addition to a plain length/type/LSN/CRC frame: the
//! distance from the record's LSN down to the journal's durable LSN when it was
//! appended. It lets recovery tell a torn write from damage to durable data (below).
//!
//! Each commit's write also carries zeros up to 1 MiB ahead of the records: later
//! commits then overwrite blocks already written, and their `fdatasync` has no new
//! extents to record (about a third faster per commit on ext4 than writing into
//! fallocated space).
//!
//! # Shape
//!
//! * One journal per node, not per link: one sync covers every link's records, so
//!   records carry the caller's link number.
//! * Records come back through a cursor, not as a list: a million `Accepted`
//!   records are 700 MB as in-memory `Message`s.
//! * `commit` takes `now` (for [`SyncPolicy::Interval`]); the journal never reads
//!   the clock.
//!
//! # Recovery: torn tail or corruption
//!
//! Recovery reads every segment in LSN order and stops at the first position that
//! is not the next record (bad CRC, cut short, wrong LSN, a gap between segments, a
//! damaged header). Then it looks past that point, in the rest of that segment and
//! in the later ones, for any valid record:
//!
//! * none: a **torn tail**. The bytes are cut off (the file truncated there, later
//!   segments removed) and [`Recovery::cut`] says how many.
//! * only records written while the missing record was not yet durable (their
//!   `durable_gap` says so): also a torn tail. A crash can leave exactly this:
//!   several writes not yet synced (policy `Interval` or `Off`), or one write whose
//!   sectors reached the disk out of order, lose a piece in the middle. None of it
//!   was ever reported durable, so it is cut the same way.
//! * any record written after the missing one had been synced: the record was
//!   durable and is now damaged. That is **corruption**: [`Journal::open`] refuses with
//!   [`JournalError::Corrupt`], naming the file and offset, unless
//!   [`JournalConfig::repair`] is set, which cuts there and reports what was dropped.
//!
//! A record that passes its CRC but does not decode (a newer format, a bug) is
//! always corruption. After a cut, `open` writes the latest state records again
//! (the cut may have taken part of their copies at the last segment's head, which
//! the deletion of older segments relies on). Recovery ends by syncing every
//! segment, so what it kept stays kept.
//!
//! # Segments, checkpoints and deletion
//!
//! A segment is full when the next record does not fit; the journal then starts a
//! new one and writes at its head a copy of the latest *state* records
//! ([`Record::Identity`], [`Record::Checkpoint`], [`Record::Backlog`], one of each per
//! link and direction). A replay from any segment therefore starts with the state as
//! of that segment, and older segments hold only *event* records (`Accepted`,
//! `Processed`). The caller calls [`Journal::release_before`] with the lowest LSN
//! whose event records it still needs: typically the oldest `Accepted` record not
//! yet Processed, and no later than its latest checkpoint. A segment is deleted
//! (each deletion made durable by a directory sync) once all its records lie below
//! that point and the next segment's head copy is durable.
//!
//! # Budget and errors
//!
//! `max_disk_bytes` bounds the segments (counted at their preallocated size). An
//! `Accepted` record that would need a segment beyond it gets [`JournalError::Full`]:
//! back-pressure, like a full ring. Other records may use one more segment, so that
//! progress (outcomes, checkpoints) can always be recorded and space released.
//!
//! A write that fails for lack of space ([`JournalError::DiskFull`]) leaves the
//! records pending: the next commit writes the same bytes at the same place again,
//! and any partial write is a torn tail for recovery. A failed sync is not retried
//! (the kernel may have dropped the dirty pages): the journal refuses all further
//! work ([`JournalError::Poisoned`]) and must be reopened, which recovers what
//! actually reached the disk.

mod read;
pub mod record;
mod recover;
pub mod segment;
pub mod sim;
pub mod storage;

#[doc(hidden)]
pub mod fuzzing;

pub use record::{Direction, EntryError, LinkIdentity, Lsn, Record, RecordError};
pub use segment::HeaderError;
pub use sim::{SimStats, SimStorage};
pub use storage::{FsStorage, Storage, SyncHandle};

use read::{ReadBuf, Source};
use record::{encode_entry, ENTRY_HEADER, ENTRY_TRAILER, MAX_RECORD_PAYLOAD};
use segment::{segment_name, SegmentHeader, HEADER_LEN};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;

/// When [`Journal::commit`] makes records durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every commit that wrote something syncs.
    Always,
    /// A commit syncs when the last sync is at least this long ago; in between,
    /// records are written but not durable. Call `commit` again by
    /// [`Journal::sync_deadline`].
    Interval(Duration),
    /// Never sync: records count as durable once written. A process crash loses
    /// nothing written; a power cut may lose anything.
    Off,
}

/// The spelling operators configure (`always`, `interval:<ms>`, `off`), shared by the
/// TOML file, the flags, the C API and the Python module.
///
/// ```
/// use smslink::journal::SyncPolicy;
/// use std::time::Duration;
/// assert_eq!("always".parse(), Ok(SyncPolicy::Always));
/// assert_eq!("interval:20".parse(), Ok(SyncPolicy::Interval(Duration::from_millis(20))));
/// assert_eq!("off".parse(), Ok(SyncPolicy::Off));
/// assert!("interval:".parse::<SyncPolicy>().is_err());
/// assert!("sometimes".parse::<SyncPolicy>().is_err());
/// assert_eq!(SyncPolicy::Interval(Duration::from_millis(5)).to_string(), "interval:5");
/// ```
impl std::str::FromStr for SyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(SyncPolicy::Always),
            "off" => Ok(SyncPolicy::Off),
            _ => s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(|ms| SyncPolicy::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("sync {s:?}: use \"always\", \"interval:<ms>\" (ms > 0) or \"off\"")
                }),
        }
    }
}

impl JournalConfig {
    /// Set the disk budget as operators give it (`max_disk_bytes`): a budget below two
    /// default segments takes smaller segments, so that any budget of at least two
    /// minimum segments works.
    pub fn set_max_disk_bytes(&mut self, max: u64) {
        self.segment_size = self.segment_size.min(max / 2);
        self.max_disk_bytes = max;
    }
}

impl std::fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncPolicy::Always => f.write_str("always"),
            SyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            SyncPolicy::Off => f.write_str("off"),
        }
    }
}

/// Settings of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size each segment file is preallocated to (at least 4 KiB).
    pub segment_size: u64,
    /// Disk the segments may take (at least two segments).
    pub max_disk_bytes: u64,
    /// Largest record payload read or written; a length field beyond it is damage.
    /// At least [`record::MAX_RECORD_PAYLOAD`], so every valid record fits.
    pub max_record_size: usize,
    pub sync: SyncPolicy,
    /// On corruption, cut the journal there instead of refusing to open.
    pub repair: bool,
}

impl Default for JournalConfig {
    /// 64 MiB segments, 1 GiB in all, records up to the largest message, sync on
    /// every commit.
    fn default() -> Self {
        JournalConfig {
            segment_size: 64 << 20,
            max_disk_bytes: 1 << 30,
            max_record_size: MAX_RECORD_PAYLOAD,
            sync: SyncPolicy::Always,
            repair: false,
        }
    }
}

/// Smallest segment accepted.
pub const MIN_SEGMENT_SIZE: u64 = 4096;

/// A configuration the journal refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("segment_size {0} is below {MIN_SEGMENT_SIZE}")]
    SegmentSize(u64),
    #[error("max_disk_bytes {max} is less than two segments of {segment}")]
    Budget { max: u64, segment: u64 },
    #[error("max_record_size {0} is below the largest record ({MAX_RECORD_PAYLOAD})")]
    RecordSize(usize),
    #[error("segment_size {segment} cannot hold the state records ({head} bytes) and a record")]
    HeadTooLarge { segment: u64, head: u64 },
}

impl JournalConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.segment_size < MIN_SEGMENT_SIZE {
            return Err(ConfigError::SegmentSize(self.segment_size));
        }
        if self.max_disk_bytes < 2 * self.segment_size {
            return Err(ConfigError::Budget {
                max: self.max_disk_bytes,
                segment: self.segment_size,
            });
        }
        if self.max_record_size < MAX_RECORD_PAYLOAD {
            return Err(ConfigError::RecordSize(self.max_record_size));
        }
        Ok(())
    }
}

/// What recovery found wrong at one position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Damage {
    #[error("segment header: {0}")]
    Header(#[from] HeaderError),
    #[error("{0}")]
    Entry(#[from] EntryError),
    #[error("record {lsn} passes its checksum but does not decode: {error}")]
    Record { lsn: Lsn, error: RecordError },
    #[error("expected LSN {expected}, found {found}")]
    Lsn { expected: Lsn, found: Lsn },
    #[error("records end before LSN {expected}, but the next segment starts at {next}")]
    Gap { expected: Lsn, next: Lsn },
}

/// Why a journal operation failed.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("journal directory {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "disk full writing {path} (durable up to LSN {durable}; commit again when space is free)"
    )]
    DiskFull { path: PathBuf, durable: Lsn },
    #[error("journal uses {used} of its {max} bytes: release records or raise max_disk_bytes")]
    Full { used: u64, max: u64 },
    #[error(
        "corrupt journal: {path} at offset {offset}: {damage} (repair would cut the journal there)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        damage: Damage,
    },
    #[error("record payload of {size} bytes exceeds max_record_size {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("record cannot be stored: {0}")]
    Encode(RecordError),
    #[error(
        "report groups would take {bytes} bytes of every segment's head, over {max} \
         (a quarter of segment_size): this one is kept in memory only"
    )]
    ReportStateFull { bytes: u64, max: u64 },
    #[error("LSN {lsn} is no longer kept (oldest: {oldest})")]
    Released { lsn: Lsn, oldest: Lsn },
    #[error("journal stopped after a failed {what}; reopen it to recover")]
    Poisoned { what: String },
}

impl JournalError {
    fn io(op: &'static str, path: PathBuf, source: io::Error) -> Self {
        JournalError::Io { op, path, source }
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Segment files kept.
    pub segments: usize,
    /// The oldest record kept (replay from here).
    pub first_lsn: Lsn,
    /// The newest record kept (0: none).
    pub last_lsn: Lsn,
    /// Records kept.
    pub records: u64,
    /// After a cut, `open` writes the latest state records again (the cut may have
    /// taken their copies at a segment's head): they follow `last_lsn`, and a replay
    /// sees them last.
    pub state_copies: u64,
    /// Set when the journal did not end cleanly and was cut.
    pub cut: Option<Cut>,
}

/// Where recovery cut the journal and what it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub path: PathBuf,
    pub offset: u64,
    pub damage: Damage,
    /// `false`: a torn tail (writes never reported durable). `true`: corruption of
    /// durable records, cut because [`JournalConfig::repair`] was set.
    pub repaired: bool,
    /// Valid records found beyond the cut, dropped with it.
    pub dropped_records: u64,
    /// Non-zero bytes cut off, removed segments included.
    pub dropped_bytes: u64,
    /// Later segment files removed.
    pub removed_segments: usize,
}

/// Zeros written ahead of the records in the active segment (see `write_pending`).
const ZERO_AHEAD: u64 = 1 << 20;

/// Bytes between index points of a segment (for seeking a cursor).
const INDEX_STRIDE: u64 = 64 * 1024;

/// One segment file, as the journal keeps track of it.
#[derive(Debug, Clone)]
struct Segment {
    first_lsn: Lsn,
    name: String,
    salt: u64,
    /// Where the next entry goes (pending entries included).
    end: u64,
    /// End of the entries written to storage.
    written_end: u64,
    /// Up to here the file has been written (records or zeros) by this process.
    zeroed_end: u64,
    /// LSN of the last entry (pending included); `first_lsn - 1` when empty.
    last_lsn: Lsn,
    /// Last LSN of the state copies at its head.
    head_last: Lsn,
    /// The file exists (a new segment is created by the commit that writes it).
    created: bool,
    /// Some (lsn, offset) pairs in order, every `INDEX_STRIDE` bytes.
    index: Vec<(Lsn, u64)>,
}

impl Segment {
    fn new(first_lsn: Lsn, salt: u64) -> Self {
        Segment {
            first_lsn,
            name: segment_name(first_lsn),
            salt,
            end: HEADER_LEN as u64,
            written_end: 0,
            zeroed_end: 0,
            last_lsn: first_lsn - 1,
            head_last: first_lsn - 1,
            created: false,
            index: Vec::new(),
        }
    }

    /// Note an entry of `lsn` at `offset` of `size` bytes.
    fn add(&mut self, lsn: Lsn, offset: u64, size: u64) {
        let indexed = self.index.last().map_or(0, |&(_, o)| o);
        if self.index.is_empty() || offset >= indexed + INDEX_STRIDE {
            self.index.push((lsn, offset));
        }
        self.last_lsn = lsn;
        self.end = offset + size;
    }
}

/// Which state record a record replaces: (link, rank, direction or report group).
/// The rank orders the copies at a segment's head: a link's identity before its
/// checkpoint.
type StateKey = (u32, u8, u64);

/// Rank of a buffer server's report groups among the state records.
const REPORT_RANK: u8 = 3;

fn state_key(record: &Record) -> Option<StateKey> {
    match record {
        Record::Identity { link, .. } => Some((*link, 0, 0)),
        Record::Checkpoint { link, .. } => Some((*link, 1, 0)),
        Record::Backlog { link, dir, .. } => Some((*link, 2, *dir as u64)),
        Record::ReportGroup { link, group, .. } => Some((*link, REPORT_RANK, *group)),
        Record::Accepted { .. } | Record::Processed { .. } | Record::ReportDone { .. } => None,
    }
}

/// Keep `record` among the latest state records if it is one; a `ReportDone`
/// removes its group. Returns the record it replaced or removed.
fn apply_state(state: &mut BTreeMap<StateKey, Record>, record: &Record) -> Option<Record> {
    match record {
        Record::ReportDone { link, group } => state.remove(&(*link, REPORT_RANK, *group)),
        _ => state_key(record).and_then(|key| state.insert(key, record.clone())),
    }
}

/// Bytes `record` takes as an entry (0 if it cannot be encoded).
fn entry_size(record: &Record) -> u64 {
    let mut payload = Vec::new();
    match record.encode(&mut payload) {
        Ok(_) => (ENTRY_HEADER + payload.len() + ENTRY_TRAILER) as u64,
        Err(_) => 0,
    }
}

/// Bytes the report groups among `state` take as entries.
fn report_bytes(state: &BTreeMap<StateKey, Record>) -> u64 {
    state
        .iter()
        .filter(|(k, _)| k.1 == REPORT_RANK)
        .map(|(_, r)| entry_size(r))
        .sum()
}

/// Bytes appended but not yet written, for one segment.
#[derive(Debug, Clone)]
struct Part {
    segment: Lsn,
    offset: u64,
    bytes: Range<usize>,
}

/// Runs a journal's syncs away from the thread that writes its records (the
/// runtime's sync thread). At most one job is started at a time: the journal
/// starts the next only after it took the last one's result.
pub trait SyncRunner: Send {
    /// Run `job` (the runner holds no other).
    fn start(&mut self, job: SyncJob);
    /// The result of the job started, once it is done; does not wait.
    fn take_done(&mut self) -> Option<SyncDone>;
    /// The result of the job started, waiting for it; `None` when none was started
    /// or its result was already taken.
    fn wait_done(&mut self) -> Option<SyncDone>;
}

/// The syncs that make records up to one LSN durable: every segment written since
/// the last sync, then the directory when a segment was created.
pub struct SyncJob {
    files: Vec<(String, Box<dyn SyncHandle>)>,
    dir: Option<Box<dyn SyncHandle>>,
    upto: Lsn,
}

impl std::fmt::Debug for SyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncJob")
            .field(
                "files",
                &self.files.iter().map(|f| &f.0).collect::<Vec<_>>(),
            )
            .field("dir", &self.dir.is_some())
            .field("upto", &self.upto)
            .finish()
    }
}

impl SyncJob {
    /// Records up to here are durable once the job succeeded.
    pub fn upto(&self) -> Lsn {
        self.upto
    }

    /// Run the syncs in order (on any thread); stops at the first failure.
    pub fn run(self) -> SyncDone {
        let files = self.files.iter().enumerate();
        let failed = files
            .map(|(i, (_, file))| (Some(i), file))
            .chain(self.dir.iter().map(|dir| (None, dir)))
            .find_map(|(which, handle)| handle.sync().err().map(|e| (which, e)));
        let result = match failed {
            Some(failure) => Err(failure),
            None => Ok((self.files.len() + usize::from(self.dir.is_some())) as u64),
        };
        SyncDone { job: self, result }
    }
}

/// A [`SyncJob`] that ran: how many syncs it made, or which one failed (the index
/// of its file; `None`: the directory) and why.
#[derive(Debug)]
pub struct SyncDone {
    job: SyncJob,
    result: Result<u64, (Option<usize>, io::Error)>,
}

/// A read position: the next record to return. Create with [`Journal::cursor`];
/// it holds its own read buffer, so it does not borrow the journal.
#[derive(Debug)]
pub struct Cursor {
    next: Lsn,
    /// Where `next` starts: (segment, offset), when known.
    at: Option<(Lsn, u64)>,
    buf: ReadBuf,
}

impl Cursor {
    /// The LSN the next read returns.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }
}

/// The journal (see the module docs).
pub struct Journal<S: Storage> {
    storage: S,
    config: JournalConfig,
    segments: VecDeque<Segment>,
    /// Entries appended since the last successful write, and where they go.
    pending: Vec<u8>,
    parts: Vec<Part>,
    /// Encoding space for one payload.
    scratch: Vec<u8>,
    next_lsn: Lsn,
    written_lsn: Lsn,
    durable_lsn: Lsn,
    /// Segments written since the last sync, and whether the directory changed.
    dirty: Vec<Lsn>,
    dir_dirty: bool,
    last_sync: Option<Instant>,
    release_point: Lsn,
    /// The latest state records, copied to the head of each new segment.
    state: BTreeMap<StateKey, Record>,
    /// Bytes of the report groups among them (bounded: see `ReportStateFull`).
    report_bytes: u64,
    poisoned: Option<String>,
    /// `sync_data` and `sync_dir` calls that succeeded (see [`Journal::syncs`]).
    syncs: u64,
    /// Where syncs run when not in place (see [`Journal::set_sync_runner`]).
    runner: Option<Box<dyn SyncRunner>>,
    /// A job was started and its result not yet taken.
    syncing: bool,
}

impl<S: Storage> std::fmt::Debug for Journal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.storage.path(""))
            .field("segments", &self.segments.len())
            .field("next_lsn", &self.next_lsn)
            .field("written_lsn", &self.written_lsn)
            .field("durable_lsn", &self.durable_lsn)
            .finish()
    }
}

fn new_salt() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    // No OS entropy: std's randomly keyed hasher still differs per process and call.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5a17);
    h.finish()
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl<S: Storage> Journal<S> {
    /// Lock the directory, recover what is there (see the module docs) and make it
    /// durable; in an empty directory, start a new journal at LSN 1.
    pub fn open(mut storage: S, config: JournalConfig) -> Result<(Self, Recovery), JournalError> {
        config.check()?;
        storage.lock().map_err(|e| {
            let path = storage.path("");
            if e.kind() == io::ErrorKind::WouldBlock {
                JournalError::Locked { path }
            } else {
                JournalError::io("lock", path, e)
            }
        })?;
        let found = recover::recover(&mut storage, &config)?;
        let mut journal = Journal {
            storage,
            config,
            segments: found.segments.into(),
            pending: Vec::new(),
            parts: Vec::new(),
            scratch: Vec::with_capacity(MAX_RECORD_PAYLOAD),
            next_lsn: found.last_lsn + 1,
            written_lsn: found.last_lsn,
            durable_lsn: 0,
            dirty: Vec::new(),
            dir_dirty: true,
            last_sync: None,
            release_point: 0,
            report_bytes: report_bytes(&found.state),
            state: found.state,
            poisoned: None,
            syncs: 0,
            runner: None,
            syncing: false,
        };
        // The last run may have written without syncing, in any segment: sync them
        // all, so that what a replay shows cannot vanish in a later crash.
        journal.dirty = journal.segments.iter().map(|s| s.first_lsn).collect();
        match journal.segments.back().map(|s| s.name.clone()) {
            None => journal.start_segment()?,
            Some(name) => journal.prepare_file(&name)?,
        }
        // A cut may have taken part of the state copies at the head of the last
        // segment, which older segments' deletion relies on: write them again.
        let mut copies = 0;
        if found.cut.is_some() {
            let state: Vec<Record> = journal.state.values().cloned().collect();
            for record in &state {
                journal.append(record)?;
                copies += 1;
            }
            let last = journal.next_lsn - 1;
            if let Some(active) = journal.segments.back_mut() {
                active.head_last = active.head_last.max(last);
            }
        }
        journal.write_pending()?;
        journal.sync(None)?;
        let recovery = Recovery {
            segments: journal.segments.len(),
            first_lsn: journal.first_lsn(),
            last_lsn: found.last_lsn,
            records: found.records,
            state_copies: copies,
            cut: found.cut,
        };
        Ok((journal, recovery))
    }

    // ---- getters ----

    /// Every record up to here is durable (as far as the sync policy promises).
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    /// Every record up to here is written to storage (readable by a cursor).
    pub fn written_lsn(&self) -> Lsn {
        self.written_lsn
    }

    /// The LSN the next appended record gets.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The oldest record kept (equals `next_lsn` when the journal holds none).
    pub fn first_lsn(&self) -> Lsn {
        self.segments
            .front()
            .map_or(self.next_lsn, |s| s.first_lsn.min(self.next_lsn))
    }

    /// Segment files (those about to be created by the next commit included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Syncs made since open (each segment's `fdatasync` and each directory
    /// `fsync` count one): what group commit saves shows as syncs per second.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Disk the segments take, counted at their preallocated size.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.len() as u64 * self.config.segment_size
    }

    /// When `commit` should next be called to honour `SyncPolicy::Interval` for
    /// records already written; `None` when nothing waits for a sync.
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.config.sync {
            // Without an earlier sync the next commit syncs anyway, so never waits.
            // A sync under way wakes the caller when done, and the next is due then.
            SyncPolicy::Interval(d) if self.written_lsn > self.durable_lsn && !self.syncing => {
                self.last_sync.map(|t| t + d)
            }
            _ => None,
        }
    }

    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage itself, for fault injection in tests (writing to it behind the
    /// journal's back breaks the journal).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    pub fn into_storage(mut self) -> S {
        if let Some(runner) = &mut self.runner {
            // Its handles must not outlive the journal's use of the files.
            runner.wait_done();
        }
        self.storage
    }

    /// Run syncs on `runner` from now on: `commit` writes, starts a job when one is
    /// due and none runs, and moves `durable_lsn` when it takes a job's result. The
    /// storage must give out sync handles ([`Storage::sync_handle`]).
    pub fn set_sync_runner(&mut self, runner: Box<dyn SyncRunner>) {
        if let Some(mut old) = self.runner.replace(runner) {
            if let Some(done) = old.wait_done() {
                // A failure poisons the journal; the next call reports it.
                let _ = self.sync_finished(done);
            }
        }
    }

    /// A sync job is under way (its result not yet taken by `commit`).
    pub fn is_syncing(&self) -> bool {
        self.syncing
    }

    // ---- writing ----

    /// Buffer `record`; returns its LSN. It is written by the next [`commit`](Self::commit).
    /// An `Accepted` record that would take the journal past `max_disk_bytes` gets
    /// [`JournalError::Full`] and is not appended.
    pub fn append(&mut self, record: &Record) -> Result<Lsn, JournalError> {
        self.usable()?;
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        let encoded = record.encode(&mut payload);
        let result = encoded
            .map_err(JournalError::Encode)
            .and_then(|kind| self.append_encoded(record, kind, &payload));
        self.scratch = payload;
        result
    }

    fn append_encoded(
        &mut self,
        record: &Record,
        kind: u8,
        payload: &[u8],
    ) -> Result<Lsn, JournalError> {
        if payload.len() > self.config.max_record_size {
            return Err(JournalError::RecordTooLarge {
                size: payload.len(),
                max: self.config.max_record_size,
            });
        }
        let size = (ENTRY_HEADER + payload.len() + ENTRY_TRAILER) as u64;
        // Report groups are copied to every segment's head: they may take a quarter
        // of it, so that a head always leaves room for the records it is there for.
        let replaced = state_key(record)
            .or(match record {
                Record::ReportDone { link, group } => Some((*link, REPORT_RANK, *group)),
                _ => None,
            })
            .and_then(|k| self.state.get(&k))
            .map_or(0, entry_size);
        let report_bytes = match record {
            Record::ReportGroup { .. } => self.report_bytes.saturating_sub(replaced) + size,
            Record::ReportDone { .. } => self.report_bytes.saturating_sub(replaced),
            _ => self.report_bytes,
        };
        let max = self.config.segment_size / 4;
        if report_bytes > max && report_bytes > self.report_bytes {
            return Err(JournalError::ReportStateFull {
                bytes: report_bytes,
                max,
            });
        }
        let fits = self
            .segments
            .back()
            .is_some_and(|s| s.end + size <= self.config.segment_size);
        if !fits {
            let budget = match record {
                Record::Accepted { .. } => self.config.max_disk_bytes,
                _ => self.config.max_disk_bytes + self.config.segment_size,
            };
            if self.disk_bytes() + self.config.segment_size > budget {
                return Err(JournalError::Full {
                    used: self.disk_bytes(),
                    max: self.config.max_disk_bytes,
                });
            }
            let head: u64 = self.state_bytes() + HEADER_LEN as u64;
            if head + size > self.config.segment_size {
                return Err(ConfigError::HeadTooLarge {
                    segment: self.config.segment_size,
                    head,
                }
                .into());
            }
            self.start_segment()?;
        }
        let lsn = self.push_entry(kind, payload);
        apply_state(&mut self.state, record);
        self.report_bytes = report_bytes;
        Ok(lsn)
    }

    /// Bytes the state copies take at the head of a segment.
    fn state_bytes(&self) -> u64 {
        let mut buf = Vec::new();
        self.state
            .values()
            .map(|r| {
                buf.clear();
                let _ = r.encode(&mut buf);
                (ENTRY_HEADER + buf.len() + ENTRY_TRAILER) as u64
            })
            .sum()
    }

    /// Plan a new segment at `next_lsn`: its header and the state copies are
    /// appended; the file is created by the next commit.
    fn start_segment(&mut self) -> Result<(), JournalError> {
        let mut seg = Segment::new(self.next_lsn, new_salt());
        let header = SegmentHeader {
            first_lsn: seg.first_lsn,
            salt: seg.salt,
        };
        let start = self.pending.len();
        self.pending.extend_from_slice(&header.encode());
        self.parts.push(Part {
            segment: seg.first_lsn,
            offset: 0,
            bytes: start..self.pending.len(),
        });
        seg.written_end = 0;
        self.segments.push_back(seg);
        let copies: Vec<Record> = self.state.values().cloned().collect();
        let mut payload = Vec::new();
        for record in &copies {
            payload.clear();
            let kind = record.encode(&mut payload).map_err(JournalError::Encode)?;
            self.push_entry(kind, &payload);
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.head_last = seg.last_lsn;
        }
        Ok(())
    }

    /// Encode an entry at the end of the active segment.
    fn push_entry(&mut self, kind: u8, payload: &[u8]) -> Lsn {
        let lsn = self.next_lsn;
        let durable = self.durable_lsn;
        let Some(seg) = self.segments.back_mut() else {
            return lsn;
        };
        let offset = seg.end;
        let start = self.pending.len();
        encode_entry(&mut self.pending, kind, lsn, durable, seg.salt, payload);
        let end = self.pending.len();
        match self.parts.last_mut() {
            Some(p) if p.segment == seg.first_lsn => p.bytes.end = end,
            _ => self.parts.push(Part {
                segment: seg.first_lsn,
                offset,
                bytes: start..end,
            }),
        }
        seg.add(lsn, offset, (end - start) as u64);
        self.next_lsn += 1;
        lsn
    }

    /// Write everything appended since the last commit and, as the sync policy
    /// allows, make it durable. Returns [`durable_lsn`](Self::durable_lsn).
    ///
    /// On [`JournalError::DiskFull`] the records stay pending and a later commit
    /// writes them again; on a failed sync the journal is poisoned.
    ///
    /// With a [`SyncRunner`], a due sync is started on it instead, and
    /// `durable_lsn` moves when a later commit takes its result (a failed one
    /// poisons the journal then). A full disk does not hold back the sync of what
    /// was written before.
    pub fn commit(&mut self, now: Instant) -> Result<Lsn, JournalError> {
        self.usable()?;
        self.take_sync(false)?;
        let written = self.write_pending();
        match written {
            Err(JournalError::DiskFull { .. }) if self.runner.is_some() => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let due = match self.config.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Interval(d) => self.last_sync.is_none_or(|t| now >= t + d),
            SyncPolicy::Off => {
                self.durable_lsn = self.written_lsn;
                self.dirty.clear();
                self.dir_dirty = false;
                false
            }
        };
        if due && self.runner.is_some() {
            self.start_sync(now)?;
        } else if due {
            self.sync(Some(now))?;
        }
        written.map(|()| self.durable_lsn)
    }

    /// Commit and sync now, whatever the policy (for example before a clean stop);
    /// waits for a sync job under way and syncs in place.
    pub fn flush(&mut self, now: Instant) -> Result<Lsn, JournalError> {
        self.usable()?;
        self.take_sync(true)?;
        self.write_pending()?;
        self.sync(Some(now))?;
        Ok(self.durable_lsn)
    }

    fn write_pending(&mut self) -> Result<(), JournalError> {
        for i in 0..self.parts.len() {
            let part = self.parts[i].clone();
            let Some(idx) = self.segment_index(part.segment) else {
                continue;
            };
            let name = self.segments[idx].name.clone();
            if !self.segments[idx].created {
                self.storage
                    .create(&name)
                    .map_err(|e| self.write_error("create", &name, e))?;
                self.prepare_file(&name)?;
                self.segments[idx].created = true;
                self.dir_dirty = true;
            }
            // The last part (the active segment) carries zeros ahead of the records
            // in the same write: later commits then overwrite blocks already
            // written, and their sync needs no metadata for newly written extents.
            let data_end = part.offset + part.bytes.len() as u64;
            let zero_to = (data_end + ZERO_AHEAD).min(self.config.segment_size);
            let pad = if i + 1 == self.parts.len() && data_end > self.segments[idx].zeroed_end {
                zero_to.saturating_sub(data_end) as usize
            } else {
                0
            };
            // Only the last part is padded, and it ends where `pending` ends.
            let end = part.bytes.end + pad;
            self.pending.resize(end.max(self.pending.len()), 0);
            let written =
                self.storage
                    .write_at(&name, part.offset, &self.pending[part.bytes.start..end]);
            self.pending.truncate(self.pending.len() - pad);
            written.map_err(|e| self.write_error("write", &name, e))?;
            let seg = &mut self.segments[idx];
            seg.written_end = data_end;
            seg.zeroed_end = seg.zeroed_end.max(data_end + pad as u64);
            if !self.dirty.contains(&part.segment) {
                self.dirty.push(part.segment);
            }
        }
        self.pending.clear();
        self.parts.clear();
        self.written_lsn = self.next_lsn - 1;
        Ok(())
    }

    /// Make sure `name` has its full preallocated size.
    fn prepare_file(&mut self, name: &str) -> Result<(), JournalError> {
        let size = self.config.segment_size;
        self.storage
            .allocate(name, size)
            .map_err(|e| self.write_error("preallocate", name, e))
    }

    /// Disk full is reported as such and leaves the journal usable; any other
    /// write failure poisons it.
    fn write_error(&mut self, op: &'static str, name: &str, e: io::Error) -> JournalError {
        let path = self.storage.path(name);
        if is_disk_full(&e) {
            return JournalError::DiskFull {
                path,
                durable: self.durable_lsn,
            };
        }
        let err = JournalError::io(op, path, e);
        self.poisoned = Some(err.to_string());
        err
    }

    fn sync(&mut self, now: Option<Instant>) -> Result<(), JournalError> {
        for i in 0..self.dirty.len() {
            let Some(idx) = self.segment_index(self.dirty[i]) else {
                continue;
            };
            let name = self.segments[idx].name.clone();
            if let Err(e) = self.storage.sync_data(&name) {
                return Err(self.poison("sync_data", &name, e));
            }
            self.syncs += 1;
        }
        if self.dir_dirty {
            if let Err(e) = self.storage.sync_dir() {
                return Err(self.poison("sync_dir", "", e));
            }
            self.syncs += 1;
        }
        self.dirty.clear();
        self.dir_dirty = false;
        self.durable_lsn = self.written_lsn;
        self.last_sync = now.or(self.last_sync);
        Ok(())
    }

    /// Hand the segments written since the last sync (and the directory, when it
    /// changed) to the runner, unless a job runs or nothing waits.
    fn start_sync(&mut self, now: Instant) -> Result<(), JournalError> {
        if self.syncing || (self.dirty.is_empty() && !self.dir_dirty) {
            return Ok(());
        }
        let mut files = Vec::with_capacity(self.dirty.len());
        for i in 0..self.dirty.len() {
            let Some(idx) = self.segment_index(self.dirty[i]) else {
                continue;
            };
            let name = self.segments[idx].name.clone();
            match self.storage.sync_handle(&name) {
                Ok(handle) => files.push((name, handle)),
                Err(e) => return Err(self.poison("sync_data", &name, e)),
            }
        }
        let dir = match self.dir_dirty {
            false => None,
            true => match self.storage.sync_handle("") {
                Ok(handle) => Some(handle),
                Err(e) => return Err(self.poison("sync_dir", "", e)),
            },
        };
        let Some(runner) = &mut self.runner else {
            return Ok(());
        };
        runner.start(SyncJob {
            files,
            dir,
            upto: self.written_lsn,
        });
        self.dirty.clear();
        self.dir_dirty = false;
        self.syncing = true;
        self.last_sync = Some(now);
        Ok(())
    }

    /// Take the result of the job under way, if done (`wait`: waiting for it).
    fn take_sync(&mut self, wait: bool) -> Result<(), JournalError> {
        let Some(runner) = self.runner.as_mut().filter(|_| self.syncing) else {
            return Ok(());
        };
        let done = match wait {
            true => runner.wait_done(),
            false => runner.take_done(),
        };
        match done {
            Some(done) => self.sync_finished(done),
            None if wait => {
                // The runner lost the job: nothing it covered may count as durable.
                self.syncing = false;
                let err = JournalError::Poisoned {
                    what: "sync job lost by its runner".into(),
                };
                self.poisoned = Some(err.to_string());
                Err(err)
            }
            None => Ok(()),
        }
    }

    fn sync_finished(&mut self, done: SyncDone) -> Result<(), JournalError> {
        self.syncing = false;
        match done.result {
            Ok(n) => {
                self.syncs += n;
                self.durable_lsn = self.durable_lsn.max(done.job.upto);
                Ok(())
            }
            Err((Some(i), e)) => {
                let name = done.job.files.get(i).map_or("", |f| f.0.as_str());
                Err(self.poison("sync_data", name, e))
            }
            Err((None, e)) => Err(self.poison("sync_dir", "", e)),
        }
    }

    fn poison(&mut self, op: &'static str, name: &str, e: io::Error) -> JournalError {
        let err = JournalError::io(op, self.storage.path(name), e);
        self.poisoned = Some(err.to_string());
        err
    }

    fn usable(&self) -> Result<(), JournalError> {
        match &self.poisoned {
            Some(what) => Err(JournalError::Poisoned { what: what.clone() }),
            None => Ok(()),
        }
    }

    fn segment_index(&self, first_lsn: Lsn) -> Option<usize> {
        self.segments.iter().rposition(|s| s.first_lsn == first_lsn)
    }

    /// The caller no longer needs records below `lsn` (state records excepted: the
    /// journal keeps the latest ones itself). Deletes every segment that lies wholly
    /// below the point once the next segment's state copies are durable; returns how
    /// many were deleted.
    pub fn release_before(&mut self, lsn: Lsn) -> Result<usize, JournalError> {
        self.usable()?;
        self.release_point = self.release_point.max(lsn);
        let mut removed = 0;
        while self.segments.len() > 1 {
            let (old, next) = (&self.segments[0], &self.segments[1]);
            let done = old.last_lsn < self.release_point
                && next.created
                && next.head_last <= self.durable_lsn;
            if !done {
                break;
            }
            let name = old.name.clone();
            let path = self.storage.path(&name);
            self.storage
                .remove(&name)
                .map_err(|e| JournalError::io("remove", path, e))?;
            self.segments.pop_front();
            // One directory sync per removal: a crash can then bring back only the
            // oldest segments, never leave a hole between the ones that remain.
            let dir = self.storage.path("");
            self.storage
                .sync_dir()
                .map_err(|e| JournalError::io("sync_dir", dir, e))?;
            removed += 1;
        }
        Ok(removed)
    }

    // ---- reading ----

    /// A cursor whose first read returns the record at `from`.
    pub fn cursor(&self, from: Lsn) -> Cursor {
        Cursor {
            next: from.max(1),
            at: None,
            buf: ReadBuf::default(),
        }
    }

    /// The next written record at the cursor, or `None` once it has caught up with
    /// [`written_lsn`](Self::written_lsn) (records appended later are read later).
    pub fn read_next(&self, cursor: &mut Cursor) -> Result<Option<(Lsn, Record)>, JournalError> {
        if cursor.next > self.written_lsn {
            return Ok(None);
        }
        let oldest = self.first_lsn();
        if cursor.next < oldest {
            return Err(JournalError::Released {
                lsn: cursor.next,
                oldest,
            });
        }
        let idx = self
            .segments
            .partition_point(|s| s.first_lsn <= cursor.next)
            .saturating_sub(1);
        let seg = &self.segments[idx];
        let (mut lsn, mut offset) = match cursor.at {
            Some((first, offset)) if first == seg.first_lsn => (cursor.next, offset),
            _ => {
                let i = seg.index.partition_point(|&(l, _)| l <= cursor.next);
                match i.checked_sub(1).map(|i| seg.index[i]) {
                    Some(point) => point,
                    None => (seg.first_lsn, HEADER_LEN as u64),
                }
            }
        };
        loop {
            let damage = |d: Damage| JournalError::Corrupt {
                path: self.storage.path(&seg.name),
                offset,
                damage: d,
            };
            let src = Source {
                storage: &self.storage,
                file: seg.first_lsn,
                name: &seg.name,
                limit: seg.written_end,
            };
            let entry = cursor
                .buf
                .entry(&src, offset, seg.salt, self.config.max_record_size)
                .map_err(|e| JournalError::io("read", self.storage.path(&seg.name), e))?
                .map_err(|e| damage(e.into()))?;
            if entry.lsn != lsn {
                return Err(damage(Damage::Lsn {
                    expected: lsn,
                    found: entry.lsn,
                }));
            }
            let next_offset = offset + entry.size() as u64;
            if lsn == cursor.next {
                let record = Record::decode(entry.kind, entry.payload)
                    .map_err(|error| damage(Damage::Record { lsn, error }))?;
                cursor.next = lsn + 1;
                cursor.at = if lsn == seg.last_lsn {
                    None
                } else {
                    Some((seg.first_lsn, next_offset))
                };
                return Ok(Some((lsn, record)));
            }
            lsn += 1;
            offset = next_offset;
        }
    }

    /// Iterate over the written records from `from` on (stops after the first error).
    pub fn records(&self, from: Lsn) -> Records<'_, S> {
        Records {
            journal: self,
            cursor: self.cursor(from),
            failed: false,
        }
    }
}

/// Iterator returned by [`Journal::records`].
#[derive(Debug)]
pub struct Records<'a, S: Storage> {
    journal: &'a Journal<S>,
    cursor: Cursor,
    failed: bool,
}

impl<S: Storage> Iterator for Records<'_, S> {
    type Item = Result<(Lsn, Record), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.journal.read_next(&mut self.cursor) {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
