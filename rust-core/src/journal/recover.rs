//! Reading a journal directory back at open: find where the valid records end,
//! decide between a torn tail and corruption, cut (see the module docs of `journal`).

use super::read::{ReadBuf, Source, CHUNK};
use super::record::{EntryError, Lsn, Record, ENTRY_HEADER};
use super::segment::{parse_segment_name, SegmentHeader, HEADER_LEN};
use super::storage::Storage;
use super::{apply_state, Cut, Damage, JournalConfig, JournalError, Segment, StateKey};
use std::collections::BTreeMap;
use std::io;

/// What recovery keeps.
pub(super) struct Found {
    pub segments: Vec<Segment>,
    pub state: BTreeMap<StateKey, Record>,
    pub last_lsn: Lsn,
    pub records: u64,
    pub cut: Option<Cut>,
}

/// Where the valid records end, and why.
struct Stop {
    /// Index into the segment list: the records end here (a cut would go here).
    segment: usize,
    offset: u64,
    damage: Damage,
    /// Where the damage is (a later segment's header, or the same place).
    damaged: (usize, u64),
    /// The record there passed its CRC: damage regardless of what follows.
    certain: bool,
    /// The whole file goes (its header is unusable).
    whole_file: bool,
}

/// What lies beyond a stop.
#[derive(Default)]
struct Beyond {
    /// The highest `durable_before` of the valid records found: if it reaches the
    /// missing record, that record had been synced before something else was written.
    max_durable_before: Option<Lsn>,
    records: u64,
    bytes: u64,
    /// Non-zero bytes after the stop in the stop's own segment.
    bytes_in_stop_segment: u64,
}

struct Scanner<'a, S: Storage> {
    storage: &'a S,
    names: &'a [(Lsn, String)],
    max_payload: usize,
    buf: ReadBuf,
}

pub(super) fn recover<S: Storage>(
    storage: &mut S,
    config: &JournalConfig,
) -> Result<Found, JournalError> {
    let dir = storage.path("");
    let mut names: Vec<(Lsn, String)> = storage
        .list()
        .map_err(|e| JournalError::io("list", dir, e))?
        .into_iter()
        .filter_map(|n| parse_segment_name(&n).map(|lsn| (lsn, n)))
        .collect();
    names.sort();
    let mut scanner = Scanner {
        storage: &*storage,
        names: &names,
        max_payload: config.max_record_size,
        buf: ReadBuf::default(),
    };
    let mut found = Found {
        segments: Vec::new(),
        state: BTreeMap::new(),
        last_lsn: 0,
        records: 0,
        cut: None,
    };
    let stop = scanner.scan(&mut found)?;
    let Some(stop) = stop else {
        return Ok(found);
    };
    let beyond = scanner.beyond(&stop, found.last_lsn)?;
    if beyond.bytes == 0 && stop.damage == Damage::Entry(EntryError::Empty) {
        // Zeros after the last record: a clean end.
        return Ok(found);
    }
    let needed = found.last_lsn + 1;
    let corrupt = stop.certain || beyond.max_durable_before.is_some_and(|d| d >= needed);
    if corrupt && !config.repair {
        return Err(JournalError::Corrupt {
            path: storage.path(&names[stop.damaged.0].1),
            offset: stop.damaged.1,
            damage: stop.damage,
        });
    }
    let path = storage.path(&names[stop.segment].1);
    let mut removed = 0;
    let err = |storage: &S, op, name: &str, e| JournalError::io(op, storage.path(name), e);
    for (_, name) in names[stop.segment + 1..].iter().rev() {
        storage
            .remove(name)
            .map_err(|e| err(storage, "remove", name, e))?;
        removed += 1;
    }
    let stop_name = &names[stop.segment].1;
    if stop.whole_file {
        storage
            .remove(stop_name)
            .map_err(|e| err(storage, "remove", stop_name, e))?;
        removed += 1;
        found.segments.truncate(stop.segment);
    } else if beyond.bytes_in_stop_segment > 0 {
        // Zero the cut bytes for good, so that they cannot come back after the
        // records that will be written there.
        storage
            .set_len(stop_name, stop.offset)
            .and_then(|()| storage.allocate(stop_name, config.segment_size))
            .and_then(|()| storage.sync_data(stop_name))
            .map_err(|e| err(storage, "truncate", stop_name, e))?;
    }
    if removed > 0 {
        storage
            .sync_dir()
            .map_err(|e| err(storage, "sync_dir", "", e))?;
    }
    found.cut = Some(Cut {
        path,
        offset: stop.offset,
        damage: stop.damage,
        repaired: corrupt,
        dropped_records: beyond.records,
        dropped_bytes: beyond.bytes,
        removed_segments: removed,
    });
    Ok(found)
}

impl<S: Storage> Scanner<'_, S> {
    fn io(&self, i: usize, e: io::Error) -> JournalError {
        JournalError::io("read", self.storage.path(&self.names[i].1), e)
    }

    fn header(
        &mut self,
        i: usize,
        len: u64,
    ) -> Result<Result<SegmentHeader, Damage>, JournalError> {
        let (name_lsn, name) = &self.names[i];
        let src = Source {
            storage: self.storage,
            file: *name_lsn,
            name,
            limit: len,
        };
        let w = self
            .buf
            .window(&src, 0, HEADER_LEN)
            .map_err(|e| JournalError::io("read", self.storage.path(name), e))?;
        Ok(match SegmentHeader::decode(w) {
            Ok(h) if h.first_lsn != *name_lsn => {
                Err(Damage::Header(super::HeaderError::NameMismatch {
                    header: h.first_lsn,
                    name: *name_lsn,
                }))
            }
            Ok(h) => Ok(h),
            Err(e) => Err(Damage::Header(e)),
        })
    }

    /// Read every segment in order; return where the records stop, if anywhere
    /// but the clean end of the last one.
    fn scan(&mut self, found: &mut Found) -> Result<Option<Stop>, JournalError> {
        let mut expected: Option<Lsn> = None;
        for i in 0..self.names.len() {
            let (name_lsn, name) = self.names[i].clone();
            let len = self.storage.len(&name).map_err(|e| self.io(i, e))?;
            // A bad segment start ends the records where the previous segment's end
            // (whose tail is then checked like any other end).
            let end_before = |damage| match found.segments.last() {
                Some(prev) => Stop {
                    segment: i - 1,
                    offset: prev.end,
                    damage,
                    damaged: (i, 0),
                    certain: false,
                    whole_file: false,
                },
                None => Stop {
                    segment: i,
                    offset: 0,
                    damage,
                    damaged: (i, 0),
                    certain: false,
                    whole_file: true,
                },
            };
            let header = match self.header(i, len)? {
                Ok(h) => h,
                Err(damage) => {
                    if expected.is_none() {
                        found.last_lsn = name_lsn.saturating_sub(1);
                    }
                    return Ok(Some(end_before(damage)));
                }
            };
            match expected {
                Some(exp) if header.first_lsn > exp => {
                    return Ok(Some(end_before(Damage::Gap {
                        expected: exp,
                        next: header.first_lsn,
                    })));
                }
                Some(exp) if header.first_lsn < exp => {
                    return Ok(Some(end_before(Damage::Lsn {
                        expected: exp,
                        found: header.first_lsn,
                    })));
                }
                Some(_) => {}
                None => found.last_lsn = header.first_lsn - 1,
            }
            let mut seg = Segment::new(header.first_lsn, header.salt);
            seg.name = name.clone();
            seg.created = true;
            let mut lsn = header.first_lsn;
            let mut offset = HEADER_LEN as u64;
            let stop = loop {
                let src = Source {
                    storage: self.storage,
                    file: name_lsn,
                    name: &name,
                    limit: len,
                };
                let entry = self
                    .buf
                    .entry(&src, offset, header.salt, self.max_payload)
                    .map_err(|e| JournalError::io("read", self.storage.path(&name), e))?;
                let here = offset;
                let stop = move |damage: Damage, certain| Stop {
                    segment: i,
                    offset: here,
                    damaged: (i, here),
                    damage,
                    certain,
                    whole_file: false,
                };
                match entry {
                    Ok(e) if e.lsn == lsn => match Record::decode(e.kind, e.payload) {
                        Ok(record) => {
                            apply_state(&mut found.state, &record);
                            seg.add(lsn, offset, e.size() as u64);
                            found.records += 1;
                            found.last_lsn = lsn;
                            offset += e.size() as u64;
                            lsn += 1;
                        }
                        Err(error) => break Some(stop(Damage::Record { lsn, error }, true)),
                    },
                    Ok(e) => {
                        break Some(stop(
                            Damage::Lsn {
                                expected: lsn,
                                found: e.lsn,
                            },
                            false,
                        ))
                    }
                    Err(EntryError::Empty) => break None,
                    Err(e) => break Some(stop(Damage::Entry(e), false)),
                }
            };
            seg.written_end = seg.end;
            found.segments.push(seg);
            expected = Some(lsn);
            if stop.is_some() {
                return Ok(stop);
            }
        }
        // The end of the last segment's records: a stop if anything follows.
        let last = self.names.len().saturating_sub(1);
        Ok(found.segments.last().map(|seg| Stop {
            segment: last,
            offset: seg.end,
            damaged: (last, seg.end),
            damage: Damage::Entry(EntryError::Empty),
            certain: false,
            whole_file: false,
        }))
    }

    /// Look past `stop` for valid records (of LSNs after `last_good`) and count the
    /// non-zero bytes that a cut there would drop.
    fn beyond(&mut self, stop: &Stop, last_good: Lsn) -> Result<Beyond, JournalError> {
        let mut out = Beyond::default();
        for i in stop.segment..self.names.len() {
            let (file, name) = self.names[i].clone();
            let len = self.storage.len(&name).map_err(|e| self.io(i, e))?;
            let start = if i == stop.segment { stop.offset } else { 0 };
            let salt = self.header(i, len)?.ok().map(|h| h.salt);
            let storage = self.storage;
            let src = Source {
                storage,
                file,
                name: &name,
                limit: len,
            };
            let io = |e| JournalError::io("read", storage.path(&name), e);
            let bytes = self
                .last_nonzero(&src, start)
                .map_err(io)?
                .map_or(0, |end| end - start);
            out.bytes += bytes;
            if i == stop.segment {
                out.bytes_in_stop_segment = bytes;
            }
            if let Some(salt) = salt {
                self.find_records(&src, start, salt, last_good, &mut out)
                    .map_err(io)?;
            }
        }
        Ok(out)
    }

    /// One past the last non-zero byte in `[start, len)`.
    fn last_nonzero(&mut self, src: &Source<'_, S>, start: u64) -> io::Result<Option<u64>> {
        let mut end = src.limit;
        while end > start {
            let from = end.saturating_sub(CHUNK as u64).max(start);
            let w = self.buf.window(src, from, (end - from) as usize)?;
            let w = &w[..w.len().min((end - from) as usize)];
            if let Some(i) = w.iter().rposition(|&b| b != 0) {
                return Ok(Some(from + i as u64 + 1));
            }
            if w.is_empty() {
                break;
            }
            end = from;
        }
        Ok(None)
    }

    /// Every valid entry with an LSN after `last_good` found in `[start, len)`,
    /// trying each position whose type byte is non-zero.
    fn find_records(
        &mut self,
        src: &Source<'_, S>,
        start: u64,
        salt: u64,
        last_good: Lsn,
        out: &mut Beyond,
    ) -> io::Result<()> {
        let len = src.limit;
        const TYPE_AT: u64 = 4;
        let mut at = start;
        while at + ENTRY_HEADER as u64 <= len {
            // Skip to the next position whose type byte is non-zero.
            let w = self.buf.window(src, at + TYPE_AT, CHUNK)?;
            let Some(skip) = w.iter().position(|&b| b != 0) else {
                if w.is_empty() {
                    break;
                }
                at += w.len() as u64;
                continue;
            };
            at += skip as u64;
            let entry = self.buf.entry(src, at, salt, self.max_payload)?;
            match entry {
                Ok(e) if e.lsn > last_good && e.lsn - last_good <= u64::from(u32::MAX) => {
                    out.max_durable_before = out.max_durable_before.max(Some(e.durable_before));
                    out.records += 1;
                    at += e.size() as u64;
                }
                _ => at += 1,
            }
        }
        Ok(())
    }
}
