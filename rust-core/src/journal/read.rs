//! Buffered reading of segment files, shared by recovery and by cursors.

use super::record::{decode_entry, entry_len, Entry, EntryError, Lsn, ENTRY_HEADER};
use super::storage::Storage;
use std::io;

/// Bytes fetched per read when scanning.
pub(super) const CHUNK: usize = 256 * 1024;

/// One file to read, and where its readable bytes end.
pub(super) struct Source<'a, S: Storage> {
    pub storage: &'a S,
    /// The segment's first LSN, which tells buffered bytes of different files apart.
    pub file: Lsn,
    pub name: &'a str,
    /// Bytes at or past this offset are not read.
    pub limit: u64,
}

/// A window of one file's bytes, refilled on demand. It never holds bytes at or
/// beyond the `limit` it was filled with, and bytes below a segment's written end
/// never change, so a window is never stale.
#[derive(Debug, Default)]
pub(super) struct ReadBuf {
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: u64,
    /// The segment (by first LSN) the bytes belong to.
    file: Option<Lsn>,
}

impl ReadBuf {
    /// The bytes of `name` from `offset` on: at least `need` of them unless the file
    /// (or `limit`) ends first, maybe more.
    pub(super) fn window<S: Storage>(
        &mut self,
        src: &Source<'_, S>,
        offset: u64,
        need: usize,
    ) -> io::Result<&[u8]> {
        let (file, limit) = (src.file, src.limit);
        let want_end = offset.saturating_add(need as u64).min(limit);
        let held_end = self.at + self.buf.len() as u64;
        if self.file != Some(file) || offset < self.at || want_end > held_end {
            let len = (need.max(CHUNK) as u64).min(limit.saturating_sub(offset)) as usize;
            self.buf.resize(len, 0);
            let n = src.storage.read_at(src.name, offset, &mut self.buf)?;
            self.buf.truncate(n);
            self.at = offset;
            self.file = Some(file);
        }
        let start = ((offset - self.at) as usize).min(self.buf.len());
        Ok(&self.buf[start..])
    }

    /// The entry at `offset`, reading no more than its length field allows.
    pub(super) fn entry<S: Storage>(
        &mut self,
        src: &Source<'_, S>,
        offset: u64,
        salt: u64,
        max_payload: usize,
    ) -> io::Result<Result<Entry<'_>, EntryError>> {
        let head = self.window(src, offset, ENTRY_HEADER)?;
        let size = match head.first_chunk::<ENTRY_HEADER>() {
            Some(h) => match entry_len(h, max_payload) {
                Ok(size) => size,
                Err(e) => return Ok(Err(e)),
            },
            None => ENTRY_HEADER,
        };
        let w = self.window(src, offset, size)?;
        Ok(decode_entry(w, salt, max_payload))
    }
}
