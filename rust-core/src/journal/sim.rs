//! An in-memory [`Storage`] for seeded simulations: it keeps what was synced apart
//! from what was only written, so that [`SimStorage::crash`] can lose exactly what a
//! power cut may lose, and it can be made to fail like a full or read-only disk.
//!
//! Cloning is cheap (file contents are shared until written), so a test can take a
//! snapshot at any point and crash the copy.

use super::storage::Storage;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Size of the unit a disk persists whole (a torn write keeps or loses whole sectors).
pub const SECTOR: usize = 512;

/// Calls made so far (a clone starts with the counts of its original).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub creates: u64,
    pub removes: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub sync_data: u64,
    pub sync_dir: u64,
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What a reader sees now.
    data: Arc<Vec<u8>>,
    /// What survives a crash: the contents at the last `sync_data`.
    durable: Arc<Vec<u8>>,
    /// Writes since the last `sync_data`, oldest first: (order, offset, bytes).
    unsynced: Vec<(u64, u64, Vec<u8>)>,
    /// Bytes charged against the free space.
    charged: u64,
}

/// The simulated directory (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    /// Name -> file id, as a reader sees it now.
    dir: BTreeMap<String, u64>,
    /// Name -> file id as of the last `sync_dir`.
    durable_dir: BTreeMap<String, u64>,
    files: BTreeMap<u64, SimFile>,
    next_id: u64,
    /// Global order of writes, to find the last one.
    write_order: u64,
    free_space: Option<u64>,
    sparse: bool,
    read_only_dir: bool,
    fail_next_sync: bool,
    stats: SimStats,
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// How a crash treats the writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashMode {
    /// All lost, except maybe a prefix of the very last write.
    TornTail,
    /// Each sector of each write kept or lost on its own (a disk that persists
    /// cached sectors in any order).
    Scrambled,
}

impl SimStorage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Limit the bytes all files may occupy (`None`: unlimited). Past it, `create`
    /// of a non-empty allocation, `allocate` and `write_at` fail with `ENOSPC`; a
    /// write that only partly fits writes the part that fits first.
    pub fn set_free_space(&mut self, bytes: Option<u64>) {
        self.free_space = bytes.map(|b| b + self.used());
    }

    /// Bytes the files occupy.
    pub fn used(&self) -> u64 {
        self.files.values().map(|f| f.charged).sum()
    }

    /// `allocate` only sets the length, as on a file system without fallocate:
    /// space is then taken (and may run out) when bytes are written.
    pub fn set_sparse(&mut self, sparse: bool) {
        self.sparse = sparse;
    }

    /// Creating or removing files fails with `EACCES` (writes to open files work).
    pub fn set_read_only_dir(&mut self, read_only: bool) {
        self.read_only_dir = read_only;
    }

    /// The next `sync_data` fails with `EIO` (and syncs nothing).
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// The bytes a reader sees in `name` now.
    pub fn contents(&self, name: &str) -> Option<&[u8]> {
        let id = self.dir.get(name)?;
        self.files.get(id).map(|f| f.data.as_slice())
    }

    /// Overwrite bytes of `name` as they are and as they will survive a crash
    /// (bit rot, or a test's deliberate damage). Extends the file if needed.
    pub fn corrupt(&mut self, name: &str, offset: u64, bytes: &[u8]) {
        let Some(file) = self.dir.get(name).and_then(|id| self.files.get_mut(id)) else {
            return;
        };
        put(Arc::make_mut(&mut file.data), offset, bytes);
        put(Arc::make_mut(&mut file.durable), offset, bytes);
    }

    /// A power cut: every byte not synced is lost, except that with even odds a
    /// prefix of the last write survives (a write torn part way). Creations and
    /// removals not yet made durable by `sync_dir` each survive or not at random.
    /// `rng` returns uniformly random numbers.
    pub fn crash(&mut self, rng: &mut impl FnMut() -> u64) {
        self.crash_with(rng, CrashMode::TornTail);
    }

    /// A power cut on a disk that persists cached sectors in any order: each
    /// 512-byte sector of each write not yet synced survives or not on its own.
    pub fn crash_scrambled(&mut self, rng: &mut impl FnMut() -> u64) {
        self.crash_with(rng, CrashMode::Scrambled);
    }

    fn crash_with(&mut self, rng: &mut impl FnMut() -> u64, mode: CrashMode) {
        let last_write = self
            .files
            .values()
            .filter_map(|f| f.unsynced.last().map(|w| w.0))
            .max();
        let names: Vec<String> = self
            .dir
            .keys()
            .chain(self.durable_dir.keys())
            .cloned()
            .collect();
        let mut dir = BTreeMap::new();
        for name in names {
            let (now, then) = (self.dir.get(&name), self.durable_dir.get(&name));
            let kept = if now == then || rng() % 2 == 0 {
                now
            } else {
                then
            };
            if let Some(&id) = kept {
                dir.insert(name, id);
            }
        }
        for file in self.files.values_mut() {
            let mut data = file.durable.as_ref().clone();
            for (order, offset, bytes) in std::mem::take(&mut file.unsynced) {
                match mode {
                    CrashMode::TornTail if Some(order) == last_write && rng() % 2 == 0 => {
                        let keep = (rng() % (bytes.len() as u64 + 1)) as usize;
                        put(&mut data, offset, &bytes[..keep]);
                    }
                    CrashMode::TornTail => {}
                    CrashMode::Scrambled => {
                        for (i, sector) in bytes.chunks(SECTOR).enumerate() {
                            if rng() % 2 == 0 {
                                put(&mut data, offset + (i * SECTOR) as u64, sector);
                            }
                        }
                    }
                }
            }
            file.data = Arc::new(data);
            file.durable = file.data.clone();
            file.charged = file.charged.max(file.data.len() as u64);
        }
        self.dir = dir;
        self.durable_dir = self.dir.clone();
        self.collect_garbage();
    }

    fn collect_garbage(&mut self) {
        let (dir, durable) = (&self.dir, &self.durable_dir);
        self.files
            .retain(|id, _| dir.values().any(|v| v == id) || durable.values().any(|v| v == id));
    }

    fn file(&self, name: &str) -> io::Result<&SimFile> {
        self.dir
            .get(name)
            .and_then(|id| self.files.get(id))
            .ok_or_else(|| err(libc::ENOENT))
    }

    fn file_mut(&mut self, name: &str) -> io::Result<&mut SimFile> {
        self.dir
            .get(name)
            .and_then(|id| self.files.get_mut(id))
            .ok_or_else(|| err(libc::ENOENT))
    }

    /// Take `bytes` more of the free space for `name`; `Err` if it does not fit.
    fn charge(&mut self, name: &str, upto: u64) -> io::Result<()> {
        let used = self.used();
        let free = self.free_space;
        let file = self.file_mut(name)?;
        let more = upto.saturating_sub(file.charged);
        if free.is_some_and(|limit| used + more > limit) {
            return Err(err(libc::ENOSPC));
        }
        file.charged += more;
        Ok(())
    }

    /// How far `name` may grow before the free space runs out.
    fn room(&self, name: &str) -> io::Result<u64> {
        let file = self.file(name)?;
        Ok(match self.free_space {
            None => u64::MAX,
            Some(limit) => file.charged + limit.saturating_sub(self.used()),
        })
    }
}

/// Write `bytes` at `offset` into `data`, zero-filling any gap.
fn put(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

impl Storage for SimStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.dir.keys().cloned().collect())
    }

    fn create(&mut self, name: &str) -> io::Result<()> {
        if self.dir.contains_key(name) {
            return Ok(());
        }
        if self.read_only_dir {
            return Err(err(libc::EACCES));
        }
        self.stats.creates += 1;
        self.next_id += 1;
        self.files.insert(self.next_id, SimFile::default());
        self.dir.insert(name.to_owned(), self.next_id);
        Ok(())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.file(name)?.data.len() as u64)
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let data = &self.file(name)?.data;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let room = self.room(name)?;
        let (fits, result) = if end <= room {
            (data.len(), Ok(()))
        } else {
            (room.saturating_sub(offset) as usize, Err(err(libc::ENOSPC)))
        };
        let charge_to = offset + fits as u64;
        self.charge(name, charge_to)?;
        self.stats.writes += 1;
        self.stats.bytes_written += fits as u64;
        self.write_order += 1;
        let order = self.write_order;
        let file = self.file_mut(name)?;
        put(Arc::make_mut(&mut file.data), offset, &data[..fits]);
        file.unsynced.push((order, offset, data[..fits].to_vec()));
        result
    }

    fn allocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        if !self.sparse {
            self.charge(name, len)?;
        }
        let file = self.file_mut(name)?;
        if (file.data.len() as u64) < len {
            Arc::make_mut(&mut file.data).resize(len as usize, 0);
        }
        Ok(())
    }

    fn set_len(&mut self, name: &str, len: u64) -> io::Result<()> {
        let file = self.file_mut(name)?;
        Arc::make_mut(&mut file.data).resize(len as usize, 0);
        file.charged = file.charged.min(len);
        Ok(())
    }

    fn sync_data(&mut self, name: &str) -> io::Result<()> {
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(err(libc::EIO));
        }
        self.stats.sync_data += 1;
        let file = self.file_mut(name)?;
        file.durable = file.data.clone();
        file.unsynced.clear();
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        self.stats.sync_dir += 1;
        self.durable_dir = self.dir.clone();
        self.collect_garbage();
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        if self.read_only_dir {
            return Err(err(libc::EACCES));
        }
        self.dir.remove(name).ok_or_else(|| err(libc::ENOENT))?;
        self.stats.removes += 1;
        self.collect_garbage();
        Ok(())
    }

    fn lock(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("sim").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s >> 17
        }
    }

    #[test]
    fn crash_keeps_synced_bytes_and_drops_the_rest() {
        let mut s = SimStorage::new();
        s.create("a").unwrap();
        s.write_at("a", 0, b"durable").unwrap();
        s.sync_data("a").unwrap();
        s.sync_dir().unwrap();
        s.write_at("a", 7, b"-lost").unwrap();
        for seed in 0..20 {
            let mut c = s.clone();
            c.crash(&mut rng(seed));
            let got = c.contents("a").unwrap();
            assert!(got.starts_with(b"durable") && b"durable-lost".starts_with(got));
        }
        assert_eq!(
            s.contents("a"),
            Some(&b"durable-lost"[..]),
            "original untouched"
        );
    }

    #[test]
    fn unsynced_creation_may_vanish_synced_one_stays() {
        let mut s = SimStorage::new();
        s.create("kept").unwrap();
        s.sync_dir().unwrap();
        s.create("new").unwrap();
        let mut seen = [false; 2];
        for seed in 0..40 {
            let mut c = s.clone();
            c.crash(&mut rng(seed));
            assert!(c.contents("kept").is_some());
            seen[c.contents("new").is_some() as usize] = true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn free_space_limits_writes_partially() {
        let mut s = SimStorage::new();
        s.create("a").unwrap();
        s.set_free_space(Some(10));
        let e = s.write_at("a", 0, &[1; 16]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(s.contents("a"), Some(&[1u8; 10][..]));
        assert_eq!(
            s.allocate("a", 64).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        s.set_read_only_dir(true);
        assert_eq!(
            s.create("b").unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
    }
}
