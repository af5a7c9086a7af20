//! The metadata log: a small append-only, checksummed file of opaque entries (the broker's
//! durable definitions) with snapshots, so that one change costs one appended record instead
//! of a rewrite of everything. It knows entries and snapshots, never what they mean.
//!
//! A *generation* is one file, `dir/<generation>.log`: a snapshot record, then batch records
//! of entries appended after it, each batch written with one `write` and made durable with one
//! fdatasync (group commit: a caller hands over everything that accumulated while the
//! previous batch was syncing). `rewrite` starts the next generation from a new snapshot:
//! it writes `<generation>.log.tmp`, fsyncs it, renames it to `<generation>.log` and fsyncs
//! the directory before it deletes the old file, so a crash at any point leaves at least one
//! complete generation, and a visible `.log` file always has a complete, synced snapshot.
//!
//! Opening takes the newest generation and deletes older ones and leftover `.tmp` files. Bad
//! bytes after the last good record are a torn last write when no valid record follows them:
//! the file is truncated there (nothing in them was acknowledged, since an entry counts only
//! once its batch's fdatasync returned). A bad record followed by a valid one is corruption
//! of synced data, and opening fails rather than drop acknowledged changes.
//!
//! Every call does blocking `std::fs` I/O: callers run it before executors start or on a
//! blocking thread. The log is `Send` so it can move to that thread and back. After any
//! failed append the file's tail is unknown (a failed fdatasync may have lost written pages),
//! so the log refuses appends until a `rewrite` from the caller's own state succeeds.
//! `metadata_format` has the bytes.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::metadata_format::{
    check_file_header, decode_batch, decode_record, encode_batch, encode_file_header,
    encode_record, valid_record_after, MetadataCorruptReason, MetadataRecordKind,
    FILE_HEADER_SIZE_BYTES,
};

/// Errors of the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("{operation} failed on {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Synced data is damaged: never repaired silently, since acknowledged changes are in it.
    #[error("corrupt metadata log {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: MetadataCorruptReason,
    },
    /// An earlier append failed; only `rewrite` makes the log usable again.
    #[error("an earlier append to {path} failed; the log must be rewritten from a snapshot")]
    NeedsRewrite { path: PathBuf },
}

/// An open metadata log, positioned after its last record.
#[derive(Debug)]
pub struct MetadataLog {
    dir: PathBuf,
    generation: u32,
    file: File,
    end_offset: u64,
    next_sequence: u64,
    /// Bytes of the generation's snapshot record, header and padding included.
    snapshot_size_bytes: u64,
    /// Mixed into every record's CRC (`metadata_format`).
    salt: u64,
    failed: bool,
}

/// What opening found: the newest generation's snapshot and entries, in order.
#[derive(Debug)]
pub struct RecoveredMetadata {
    bytes: Vec<u8>,
    snapshot: Range<usize>,
    entries: Vec<Range<usize>>,
    pub report: MetadataOpenReport,
}

/// Figures of one open, for the start-up log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataOpenReport {
    pub generation: u32,
    pub file_size_bytes: u64,
    pub batches: u64,
    pub entries: u64,
    /// Bytes cut off after the last good record (a torn last write).
    pub torn_tail_bytes: u64,
    /// Older generations and temporary files deleted.
    pub removed_files: u32,
    pub duration: Duration,
}

impl RecoveredMetadata {
    /// The snapshot the generation starts with.
    pub fn snapshot(&self) -> &[u8] {
        &self.bytes[self.snapshot.clone()]
    }

    /// The entries appended after the snapshot, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|range| &self.bytes[range.clone()])
    }
}

impl MetadataLog {
    /// Opens the log in `dir` (created if missing) and reads its newest generation back.
    /// `Ok(None)` if there is no generation yet: then `create` makes the first.
    pub fn open(dir: &Path) -> Result<Option<(MetadataLog, RecoveredMetadata)>, MetadataLogError> {
        let started = Instant::now();
        create_dir(dir)?;
        let listing = list(dir)?;
        let Some(&generation) = listing.generations.iter().max() else {
            remove_files(dir, &listing.temporary)?;
            return Ok(None);
        };
        let path = generation_path(dir, generation);
        let bytes = fs::read(&path).map_err(io("read", &path))?;
        let scan =
            scan(&bytes, generation).map_err(|(offset, reason)| corrupt(&path, offset, reason))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let torn_tail_bytes = (bytes.len() - scan.end_offset) as u64;
        if torn_tail_bytes > 0 {
            // Nothing after end_offset was acknowledged; cut it so appends continue cleanly.
            file.set_len(scan.end_offset as u64)
                .map_err(io("truncate", &path))?;
            file.sync_all().map_err(io("fsync", &path))?;
        }
        // Only now that the newest generation proved complete may the older ones go.
        let older: Vec<PathBuf> = listing
            .generations
            .iter()
            .filter(|other| **other != generation)
            .map(|other| generation_path(dir, *other))
            .chain(listing.temporary.iter().cloned())
            .collect();
        remove_files(dir, &older)?;
        let log = MetadataLog {
            dir: dir.to_path_buf(),
            generation,
            file,
            end_offset: scan.end_offset as u64,
            next_sequence: scan.next_sequence,
            snapshot_size_bytes: (scan.snapshot_end - FILE_HEADER_SIZE_BYTES) as u64,
            salt: scan.salt,
            failed: false,
        };
        let report = MetadataOpenReport {
            generation,
            file_size_bytes: scan.end_offset as u64,
            batches: scan.batches,
            entries: scan.entries.len() as u64,
            torn_tail_bytes,
            removed_files: u32::try_from(older.len()).unwrap_or(u32::MAX),
            duration: started.elapsed(),
        };
        let recovered = RecoveredMetadata {
            bytes,
            snapshot: scan.snapshot,
            entries: scan.entries,
            report,
        };
        Ok(Some((log, recovered)))
    }

    /// Creates the first generation of a log in `dir`, starting from `snapshot`. Fails if a
    /// generation exists already (its data would be shadowed).
    pub fn create(dir: &Path, snapshot: &[u8]) -> Result<MetadataLog, MetadataLogError> {
        create_dir(dir)?;
        let listing = list(dir)?;
        if let Some(&existing) = listing.generations.iter().max() {
            let path = generation_path(dir, existing);
            return Err(io("create", &path)(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "a metadata log generation exists already",
            )));
        }
        remove_files(dir, &listing.temporary)?;
        write_generation(dir, 1, new_salt(1), 1, snapshot, &Tail::NONE)
    }

    /// Appends `entries` as one batch and fdatasyncs: once this returns Ok they survive a
    /// crash. An empty batch is allowed (it proves the file is writable).
    pub fn append(&mut self, entries: &[&[u8]]) -> Result<(), MetadataLogError> {
        let path = self.path();
        if self.failed {
            return Err(MetadataLogError::NeedsRewrite { path });
        }
        let mut record = Vec::new();
        encode_record(
            &mut record,
            self.salt,
            MetadataRecordKind::Batch,
            self.next_sequence,
            &encode_batch(entries),
        );
        // Failed until proven otherwise: an error below leaves the tail unknown.
        self.failed = true;
        let written = self
            .file
            .write_all_at(&record, self.end_offset)
            .map_err(io("write", &path))
            .and_then(|()| self.file.sync_data().map_err(io("fdatasync", &path)));
        if let Err(error) = written {
            // The batch was never acknowledged. Cut it off if we can: after a failed fdatasync
            // the page cache may still hold it and show it to the next open, and a batch that
            // was never on disk must not sit before records that will be.
            let _ = self.file.set_len(self.end_offset);
            return Err(error);
        }
        self.failed = false;
        self.end_offset += record.len() as u64;
        self.next_sequence += 1;
        Ok(())
    }

    /// Starts the next generation from `snapshot`, which must hold everything appended so far
    /// (and whatever the failed appends tried to add, if the caller still wants it). On error
    /// the current generation stays in use, unchanged.
    pub fn rewrite(&mut self, snapshot: &[u8]) -> Result<(), MetadataLogError> {
        let generation = self.generation.saturating_add(1);
        self.start_generation(
            new_salt(generation),
            self.next_sequence,
            snapshot,
            &Tail::NONE,
        )
    }

    /// The log as it is now, for a compaction: another thread reads this prefix back
    /// (`CompactionSource::read`), replays it into a snapshot without holding up the writer,
    /// and `install_compacted` starts the next generation with it, carrying over the records
    /// appended meanwhile.
    pub fn compaction_source(&self) -> CompactionSource {
        CompactionSource {
            path: self.path(),
            generation: self.generation,
            end_offset: self.end_offset,
            next_sequence: self.next_sequence,
        }
    }

    /// Starts the next generation from `snapshot`, the state of `source`'s prefix, followed by
    /// every record appended since. Ok(false), and nothing written, if the log moved to
    /// another generation or failed meanwhile: the snapshot no longer fits it.
    pub fn install_compacted(
        &mut self,
        source: &CompactionSource,
        snapshot: &[u8],
    ) -> Result<bool, MetadataLogError> {
        if self.failed || source.generation != self.generation {
            return Ok(false);
        }
        assert!(source.end_offset <= self.end_offset);
        assert!(source.next_sequence <= self.next_sequence);
        let path = self.path();
        let length = usize::try_from(self.end_offset - source.end_offset)
            .expect("a log's tail fits in memory");
        let mut records = vec![0u8; length];
        self.file
            .read_exact_at(&mut records, source.end_offset)
            .map_err(io("read", &path))?;
        let tail = Tail {
            records,
            record_count: self.next_sequence - source.next_sequence,
        };
        // The carried records keep their bytes, so the new generation keeps their salt.
        self.start_generation(self.salt, source.next_sequence - 1, snapshot, &tail)?;
        Ok(true)
    }

    /// Writes the next generation (snapshot, then `tail`) and makes it the log. The new
    /// generation is durable and visible before the old file goes; a leftover old file is
    /// removed again by the next open, so failing to delete it here loses nothing. On error the
    /// new generation may be visible already (its directory entry not yet synced): appends to
    /// the old one could be shadowed by it, so the log takes none until a rewrite succeeds.
    fn start_generation(
        &mut self,
        salt: u64,
        snapshot_sequence: u64,
        snapshot: &[u8],
        tail: &Tail,
    ) -> Result<(), MetadataLogError> {
        let generation = self
            .generation
            .checked_add(1)
            .expect("fewer than 2^32 generations");
        let next = write_generation(
            &self.dir,
            generation,
            salt,
            snapshot_sequence,
            snapshot,
            tail,
        )
        .inspect_err(|_| self.failed = true)?;
        let old = self.path();
        *self = next;
        if let Err(error) = fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), %error, "cannot delete an old metadata log generation");
        }
        Ok(())
    }

    /// Bytes appended after the generation's snapshot: what a rewrite would reclaim.
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.end_offset - FILE_HEADER_SIZE_BYTES as u64 - self.snapshot_size_bytes
    }

    /// Size of the generation's snapshot record.
    pub fn snapshot_size_bytes(&self) -> u64 {
        self.snapshot_size_bytes
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The file of the current generation.
    pub fn path(&self) -> PathBuf {
        generation_path(&self.dir, self.generation)
    }
}

/// A prefix of one generation that a compaction reads (`MetadataLog::compaction_source`).
#[derive(Clone, Debug)]
pub struct CompactionSource {
    path: PathBuf,
    generation: u32,
    end_offset: u64,
    next_sequence: u64,
}

impl CompactionSource {
    /// Reads the prefix back. It was synced, so it must be whole: any bad record in it is
    /// corruption. Blocking; meant for a thread of its own.
    pub fn read(&self) -> Result<RecoveredMetadata, MetadataLogError> {
        let started = Instant::now();
        let length = usize::try_from(self.end_offset).expect("a log's prefix fits in memory");
        let mut bytes = vec![0u8; length];
        File::open(&self.path)
            .and_then(|file| file.read_exact_at(&mut bytes, 0))
            .map_err(io("read", &self.path))?;
        let scan = scan(&bytes, self.generation)
            .map_err(|(offset, reason)| corrupt(&self.path, offset, reason))?;
        if scan.end_offset != bytes.len() || scan.next_sequence != self.next_sequence {
            return Err(corrupt(
                &self.path,
                scan.end_offset as u64,
                MetadataCorruptReason::SequenceGap {
                    expected: self.next_sequence,
                    found: scan.next_sequence,
                },
            ));
        }
        let report = MetadataOpenReport {
            generation: self.generation,
            file_size_bytes: self.end_offset,
            batches: scan.batches,
            entries: scan.entries.len() as u64,
            torn_tail_bytes: 0,
            removed_files: 0,
            duration: started.elapsed(),
        };
        Ok(RecoveredMetadata {
            bytes,
            snapshot: scan.snapshot,
            entries: scan.entries,
            report,
        })
    }

    /// The file the prefix is in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file name of a generation.
pub fn metadata_generation_file_name(generation: u32) -> String {
    format!("{generation:010}.log")
}

struct Listing {
    generations: Vec<u32>,
    temporary: Vec<PathBuf>,
}

struct Scan {
    salt: u64,
    snapshot: Range<usize>,
    snapshot_end: usize,
    entries: Vec<Range<usize>>,
    batches: u64,
    end_offset: usize,
    next_sequence: u64,
}

/// Validates a whole generation file. The header and the snapshot must be intact (the file
/// was synced before it became visible); after that, the first bad record ends the log if
/// nothing valid follows it. Errors carry the offset of the bad bytes.
fn scan(bytes: &[u8], generation: u32) -> Result<Scan, (u64, MetadataCorruptReason)> {
    let salt = check_file_header(bytes, generation).map_err(|reason| (0, reason))?;
    let at = FILE_HEADER_SIZE_BYTES;
    let snapshot = decode_record(bytes, at, salt).map_err(|reason| (at as u64, reason))?;
    if snapshot.kind != MetadataRecordKind::Snapshot {
        return Err((at as u64, MetadataCorruptReason::FirstNotSnapshot));
    }
    let payload_start = at + crate::metadata_format::METADATA_RECORD_HEADER_SIZE_BYTES;
    let mut scan = Scan {
        salt,
        snapshot: payload_start..payload_start + snapshot.payload.len(),
        snapshot_end: snapshot.end_offset,
        entries: Vec::new(),
        batches: 0,
        end_offset: snapshot.end_offset,
        next_sequence: snapshot.sequence + 1,
    };
    while scan.end_offset < bytes.len() {
        let at = scan.end_offset;
        let record = match decode_record(bytes, at, salt) {
            Ok(record) if record.sequence == scan.next_sequence => record,
            // A whole record of this file (its CRC holds the salt) out of sequence is no torn
            // write: something wrote where it must not have.
            Ok(record) => {
                let reason = MetadataCorruptReason::SequenceGap {
                    expected: scan.next_sequence,
                    found: record.sequence,
                };
                return Err((at as u64, reason));
            }
            Err(reason) if valid_record_after(bytes, at + 1, scan.next_sequence - 1, salt) => {
                return Err((at as u64, reason));
            }
            // A torn last write: the log ends at `at`.
            Err(_) => break,
        };
        if record.kind != MetadataRecordKind::Batch {
            return Err((at as u64, MetadataCorruptReason::SnapshotNotFirst));
        }
        let entries = decode_batch(record.payload).map_err(|reason| (at as u64, reason))?;
        let base = record.payload.as_ptr() as usize - bytes.as_ptr() as usize;
        for entry in entries {
            let start = entry.as_ptr() as usize - bytes.as_ptr() as usize;
            debug_assert!(start >= base);
            scan.entries.push(start..start + entry.len());
        }
        scan.batches += 1;
        scan.next_sequence += 1;
        scan.end_offset = record.end_offset;
    }
    Ok(scan)
}

/// Writes a complete generation under a temporary name, syncs it, and makes it visible: the
/// snapshot (with `sequence`), then `tail`, whole records that continue the sequence.
fn write_generation(
    dir: &Path,
    generation: u32,
    salt: u64,
    sequence: u64,
    snapshot: &[u8],
    tail: &Tail,
) -> Result<MetadataLog, MetadataLogError> {
    let temporary = dir.join(format!("{}.tmp", metadata_generation_file_name(generation)));
    let path = generation_path(dir, generation);
    let mut bytes = encode_file_header(generation, salt).to_vec();
    encode_record(
        &mut bytes,
        salt,
        MetadataRecordKind::Snapshot,
        sequence,
        snapshot,
    );
    let snapshot_end = bytes.len() as u64;
    bytes.extend_from_slice(&tail.records);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(io("create", &temporary))?;
    file.write_all_at(&bytes, 0)
        .map_err(io("write", &temporary))?;
    // The snapshot must be durable before the rename can make it the visible generation.
    file.sync_all().map_err(io("fsync", &temporary))?;
    fs::rename(&temporary, &path).map_err(io("rename", &temporary))?;
    sync_dir(dir)?;
    Ok(MetadataLog {
        dir: dir.to_path_buf(),
        generation,
        file,
        end_offset: bytes.len() as u64,
        next_sequence: sequence + 1 + tail.record_count,
        snapshot_size_bytes: snapshot_end - FILE_HEADER_SIZE_BYTES as u64,
        salt,
        failed: false,
    })
}

/// A salt for a new generation: from the standard library's per-process random hasher keys,
/// so no two files (of this or an earlier process) are likely to share one.
fn new_salt(generation: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(generation);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.finish()
}

/// Records carried over into a new generation after its snapshot.
struct Tail {
    records: Vec<u8>,
    record_count: u64,
}

impl Tail {
    const NONE: Tail = Tail {
        records: Vec::new(),
        record_count: 0,
    };
}

fn generation_path(dir: &Path, generation: u32) -> PathBuf {
    dir.join(metadata_generation_file_name(generation))
}

/// The generations and temporary files in `dir`; other files are left alone.
fn list(dir: &Path) -> Result<Listing, MetadataLogError> {
    let mut listing = Listing {
        generations: Vec::new(),
        temporary: Vec::new(),
    };
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".log.tmp") {
            listing.temporary.push(entry.path());
        } else if let Some(digits) = name.strip_suffix(".log") {
            let generation = digits
                .parse::<u32>()
                .ok()
                .filter(|_| digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()));
            if let Some(generation) = generation {
                listing.generations.push(generation);
            }
        }
    }
    Ok(listing)
}

fn remove_files(dir: &Path, paths: &[PathBuf]) -> Result<(), MetadataLogError> {
    if paths.is_empty() {
        return Ok(());
    }
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(io("delete", path)(error)),
        }
    }
    sync_dir(dir)
}

/// Creates `dir` if needed; a new directory's entry is made durable in its parent.
fn create_dir(dir: &Path) -> Result<(), MetadataLogError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), MetadataLogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io("fsync directory", dir))
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MetadataLogError {
    let path = path.to_path_buf();
    move |source| MetadataLogError::Io {
        operation,
        path,
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: MetadataCorruptReason) -> MetadataLogError {
    MetadataLogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}
