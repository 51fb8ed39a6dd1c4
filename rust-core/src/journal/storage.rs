//! The file operations the journal needs, and their implementation on real files.
//!
//! Files are addressed by name inside one directory. The journal never reads a
//! directory other than its own and never renames.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory of files, as the journal uses it. Errors are plain `io::Error`s; the
/// journal adds the path and the operation.
pub trait Storage {
    /// Names of the files in the directory, in any order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Create `name` if it does not exist (an existing file is opened as it is).
    fn create(&mut self, name: &str) -> io::Result<()>;
    /// Current size of `name`.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Read from `offset`; returns bytes read (fewer only at the end of the file).
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `data` at `offset`. On error a prefix may have been written.
    fn write_at(&mut self, name: &str, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Grow `name` to at least `len` bytes of zeros, reserving the space where the
    /// file system can (so later writes inside it do not run out of space).
    fn allocate(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Cut or extend `name` to exactly `len` bytes.
    fn set_len(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Make everything written to `name` durable (fdatasync).
    fn sync_data(&mut self, name: &str) -> io::Result<()>;
    /// Make creations and removals in the directory durable (fsync of the directory).
    fn sync_dir(&mut self) -> io::Result<()>;
    /// Remove `name`.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Take the directory for this process alone, until the storage is dropped.
    /// Fails with `WouldBlock` when another holder has it.
    fn lock(&mut self) -> io::Result<()>;
    /// Where `name` lives, for messages (`name` empty: the directory itself).
    fn path(&self, name: &str) -> PathBuf;
    /// A handle that makes `name` durable (`name` empty: the directory's entries)
    /// from another thread, so that the thread writing records need not wait for
    /// the disk (see [`Journal::set_sync_runner`](super::Journal::set_sync_runner)).
    /// Storages that can only sync in place keep the default: unsupported.
    fn sync_handle(&self, name: &str) -> io::Result<Box<dyn SyncHandle>> {
        let _ = name;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Makes one file, or a directory's entries, durable; usable on any thread.
pub trait SyncHandle: Send {
    fn sync(&self) -> io::Result<()>;
}

/// Name of the lock file in a journal directory.
pub const LOCK_FILE: &str = "LOCK";

/// A journal directory on the local file system.
///
/// Open files are cached (one descriptor per segment, shared with the sync handles
/// given out, so a sync in flight keeps its file open). Preallocation uses
/// `fallocate`, falling back to a sparse `set_len` where the file system lacks it.
/// The lock is an exclusive `flock` on `LOCK`, released when the storage is dropped
/// (or the process dies).
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    files: RefCell<HashMap<String, Arc<File>>>,
    lock: Option<File>,
}

impl FsStorage {
    /// Use `dir` (created with its parents if missing).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FsStorage {
            dir,
            files: RefCell::new(HashMap::new()),
            lock: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached descriptor of `name`, opened first if needed.
    fn file(&self, name: &str, create: bool) -> io::Result<Arc<File>> {
        let mut files = self.files.borrow_mut();
        if let Some(file) = files.get(name) {
            return Ok(file.clone());
        }
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .open(self.dir.join(name))?,
        );
        files.insert(name.to_owned(), file.clone());
        Ok(file)
    }

    /// Run `f` on the cached descriptor of `name`, opening it first if needed.
    fn with_file<T>(
        &self,
        name: &str,
        create: bool,
        f: impl FnOnce(&File) -> io::Result<T>,
    ) -> io::Result<T> {
        let file = self.file(name, create)?;
        f(&file)
    }
}

/// `fdatasync` of a segment through its shared descriptor.
struct FileSync(Arc<File>);

impl SyncHandle for FileSync {
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// `fsync` of the directory (opened where the sync runs).
struct DirSync(PathBuf);

impl SyncHandle for DirSync {
    fn sync(&self) -> io::Result<()> {
        File::open(&self.0)?.sync_all()
    }
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&mut self, name: &str) -> io::Result<()> {
        self.with_file(name, true, |_| Ok(()))
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        self.with_file(name, false, |f| Ok(f.metadata()?.len()))
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with_file(name, false, |f| {
            let mut done = 0;
            while done < buf.len() {
                match f.read_at(&mut buf[done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(done)
        })
    }

    fn write_at(&mut self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with_file(name, false, |f| f.write_all_at(data, offset))
    }

    fn allocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.with_file(name, false, |f| {
            let Ok(want) = libc::off_t::try_from(len) else {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            };
            // SAFETY: a valid open descriptor; fallocate reads no memory of ours.
            let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, want) };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                    if f.metadata()?.len() < len {
                        f.set_len(len)?;
                    }
                    Ok(())
                }
                _ => Err(err),
            }
        })
    }

    fn set_len(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.with_file(name, false, |f| f.set_len(len))
    }

    fn sync_data(&mut self, name: &str) -> io::Result<()> {
        self.with_file(name, false, |f| f.sync_data())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        DirSync(self.dir.clone()).sync()
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.files.borrow_mut().remove(name);
        std::fs::remove_file(self.dir.join(name))
    }

    fn lock(&mut self) -> io::Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(LOCK_FILE))?;
        // SAFETY: a valid open descriptor; flock touches no memory of ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.lock = Some(file);
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(name)
        }
    }

    fn sync_handle(&self, name: &str) -> io::Result<Box<dyn SyncHandle>> {
        if name.is_empty() {
            return Ok(Box::new(DirSync(self.dir.clone())));
        }
        Ok(Box::new(FileSync(self.file(name, false)?)))
    }
}
