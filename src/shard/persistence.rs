//! A shard's durable messages. Persistent messages routed to durable queues of this shard are
//! appended to the shard's log (`hare-storage`) as one record listing every such queue; acks,
//! rejects and purges append compact settled records, deletions a queue-deleted record. None
//! of those is fsynced on its own: the log's group commit covers everything appended while
//! the previous fdatasync ran.
//!
//! Publisher confirms and transaction barriers for persistent work wait here until the
//! fdatasync that covers their LSN has returned (`run_confirmer`), so an ack is never sent for
//! a message a crash could lose. If the log fails (write or fdatasync error, ENOSPC) every
//! waiting and later confirm becomes a nack.
//!
//! Segments are deleted oldest first: a segment goes only when it and every older segment hold
//! no live message record, so a settled record is never deleted while a message it cancels
//! could still be replayed from an older segment.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hare_storage::{
    Log, LogConfig, Lsn, RecordLocation, RecoveryReport, SegmentId, SegmentReader, StorageError,
};

use crate::ids::{MessageId, QueueId};
use crate::queue::message::Message;
use crate::queue::record::{
    self, RECORD_MESSAGE, RECORD_PAGED, RECORD_QUEUE_DELETED, RECORD_SETTLED,
};
use crate::queue::{QueuedMessage, StoredAt};
use crate::shard::message::{Confirm, Reply, ShardMessage, StorageAlarm};
use crate::shard::notify::Notify;
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;

/// Message ids per settled record: at most 12 bytes each once encoded (one range per id at
/// worst), so a record stays under 1 MiB.
const SETTLED_IDS_PER_RECORD: usize = 64 * 1024;

/// How often a failed log is closed and opened again.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Something waiting for the log to be durable up to an LSN.
pub enum Waiting {
    Confirm(Confirm),
    Barrier(ReplyTo),
}

/// Messages recovered for one queue, in message id order, bodies on disk.
pub type RecoveredQueue = Vec<QueuedMessage>;

/// What replay found for the shard's queues.
pub struct Recovered {
    pub queues: HashMap<QueueId, RecoveredQueue>,
    /// For every queue the log names, an id above every id its records use, live or settled.
    /// A queue must never reuse an id while records naming it remain: a settled record for
    /// the old message would cancel the new one at the next replay.
    pub next_ids: HashMap<QueueId, MessageId>,
    /// The deadlines the records carry, by queue: (message, ms since the epoch).
    pub deadlines: HashMap<QueueId, Vec<(MessageId, u64)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Records whose checksum is right but whose content we cannot read: written by an
    /// incompatible version, never silently skipped.
    #[error("{count} records in the log could not be decoded (first at lsn {first_lsn}): refusing to start rather than drop them")]
    UndecodableRecords { count: u64, first_lsn: u64 },
    /// A message record read back for delivery could not be decoded.
    #[error("message record at segment {segment} offset {offset} could not be decoded: {error}")]
    UndecodableMessage {
        segment: u32,
        offset: u32,
        error: record::RecordError,
    },
}

/// What reading one stored message back gave.
pub enum ReadBack {
    Message(Message),
    /// Not readable now (an I/O error, or the log is failed and being reopened): the message
    /// stays queued and is asked for again.
    Unavailable(PersistenceError),
    /// The record is damaged (checksum, header, location) or does not decode: it can never
    /// be delivered.
    Damaged(PersistenceError),
}

impl PersistenceError {
    /// Whether the error says the record itself is bad, rather than that reading it failed.
    fn is_damaged_record(&self) -> bool {
        matches!(
            self,
            PersistenceError::UndecodableMessage { .. }
                | PersistenceError::Storage(
                    StorageError::Corrupt { .. } | StorageError::InvalidLocation { .. }
                )
        )
    }
}

pub struct Persistence {
    /// The open log; `None` only while a failed log is being reopened.
    log: RefCell<Option<Rc<Log>>>,
    config: LogConfig,
    /// Why the log failed, while it is being reopened.
    failure: RefCell<Option<Arc<StorageError>>>,
    /// The failed log's segment files, while it is being reopened: stored messages are read
    /// back through them meanwhile.
    failed_reader: RefCell<Option<Rc<SegmentReader>>>,
    last_appended: Cell<Lsn>,
    /// The log failed and every shard was told (once).
    alarm_raised: Cell<bool>,
    waiting: RefCell<VecDeque<(Lsn, Waiting)>>,
    waiting_added: Notify,
    /// Live queue entries (queue, message) of the message records of each segment, oldest
    /// first; every segment holds one pin in the log until it may be deleted. Counting per
    /// segment rather than per record keeps this table's size independent of the backlog.
    segments: RefCell<BTreeMap<SegmentId, u64>>,
}

impl Persistence {
    /// Opens (and recovers) the log in `dir`, returning the live messages of every queue.
    pub async fn open(
        dir: PathBuf,
        segment_size_bytes: u64,
        faults: Option<Rc<dyn hare_storage::FaultInjector>>,
        in_use_wait: Duration,
    ) -> Result<(Persistence, Recovered, RecoveryReport), PersistenceError> {
        let mut recovered: HashMap<QueueId, RecoveredQueue> = HashMap::new();
        // Absolute deadlines of recovered messages, by queue (settled ones included).
        let mut deadlines: HashMap<QueueId, Vec<(MessageId, u64)>> = HashMap::new();
        // The highest message id each queue's records name, live or settled.
        let mut highest_ids: HashMap<QueueId, u64> = HashMap::new();
        let mut bad_records = 0u64;
        let mut first_bad_lsn = 0u64;
        let config = LogConfig {
            dir,
            segment_size_bytes,
            faults,
            in_use_wait,
        };
        let (log, report) = Log::open(config.clone(), |record| {
            let applied = match record.kind {
                RECORD_MESSAGE => replay_message(
                    record.location,
                    record.payload,
                    &mut recovered,
                    &mut deadlines,
                    &mut highest_ids,
                ),
                RECORD_SETTLED => record::decode_settled(record.payload).map(|(queue, ranges)| {
                    if let Some((first, count)) = ranges.last() {
                        let last = first.saturating_add(u64::from(*count)).saturating_sub(1);
                        note_id(&mut highest_ids, queue, last);
                    }
                    if let Some(messages) = recovered.get_mut(&queue) {
                        for (first, count) in ranges {
                            settle_recovered(messages, first, count);
                        }
                    }
                }),
                RECORD_QUEUE_DELETED => record::decode_queue_deleted(record.payload).map(|queue| {
                    recovered.remove(&queue);
                }),
                // Paged messages were transient (or in non-durable queues): they do not
                // survive a restart, and their segments go once nothing older is live.
                RECORD_PAGED => Ok(()),
                _ => Err(record::RecordError::Invalid {
                    what: "record kind",
                }),
            };
            // The log checked the record's CRC, so a record we cannot decode was written by
            // a different layout: report it loudly rather than drop data silently.
            if let Err(error) = applied {
                if bad_records == 0 {
                    first_bad_lsn = record.lsn.0;
                }
                bad_records += 1;
                tracing::error!(lsn = record.lsn.0, %error, "undecodable record in the log");
            }
        })
        .await?;
        if bad_records > 0 {
            return Err(PersistenceError::UndecodableRecords {
                count: bad_records,
                first_lsn: first_bad_lsn,
            });
        }
        let persistence = Persistence {
            last_appended: Cell::new(report.last_lsn),
            alarm_raised: Cell::new(false),
            log: RefCell::new(Some(Rc::new(log))),
            config,
            failure: RefCell::new(None),
            failed_reader: RefCell::new(None),
            waiting: RefCell::new(VecDeque::new()),
            waiting_added: Notify::new(),
            segments: RefCell::new(BTreeMap::new()),
        };
        for messages in recovered.values_mut() {
            // Settled entries were marked by clearing `stored`.
            messages.retain(|queued| queued.stored.is_some());
            messages.shrink_to_fit();
            for queued in messages.iter() {
                if let Some(location) = queued.location() {
                    persistence.track(location, 1);
                }
            }
        }
        recovered.retain(|_, messages| !messages.is_empty());
        persistence.pin_after_recovery().await?;
        let next_ids = highest_ids
            .into_iter()
            .map(|(queue, highest)| (queue, MessageId(highest.saturating_add(1))))
            .collect();
        Ok((
            persistence,
            Recovered {
                queues: recovered,
                next_ids,
                deadlines,
            },
            report,
        ))
    }

    /// After replay: a segment older than the oldest live message record holds nothing
    /// anyone needs (its settled records only cancel messages that are older still), so it
    /// is deleted now; every newer segment stays pinned, because its settled records keep
    /// dead messages of older segments from coming back.
    async fn pin_after_recovery(&self) -> Result<(), StorageError> {
        let oldest_live = self.segments.borrow().keys().next().copied();
        if let Some(oldest_live) = oldest_live {
            for segment in self.log()?.segment_ids() {
                if segment > oldest_live {
                    self.segments
                        .borrow_mut()
                        .entry(segment)
                        .or_insert_with(|| {
                            self.pin(segment);
                            0
                        });
                }
            }
        }
        let deleted = self.log()?.collect_garbage().await?;
        if deleted > 0 {
            tracing::info!(segments = deleted, "deleted segments with no live message");
        }
        Ok(())
    }

    /// Forgets recovered messages of queues that no longer exist (deleted while the broker
    /// was down, or not durable), then deletes the segments nothing needs.
    pub fn discard_recovered(&self, messages: RecoveredQueue) {
        for location in messages.iter().filter_map(QueuedMessage::location) {
            self.entry_dead(location);
        }
    }

    /// Reads stored messages back (coalesced reads) and decodes them, in input order; fails
    /// with the first that cannot be read.
    pub async fn read_messages(
        &self,
        locations: &[RecordLocation],
    ) -> Result<Vec<Message>, PersistenceError> {
        self.read_back(locations)
            .await
            .into_iter()
            .map(|read| match read {
                ReadBack::Message(message) => Ok(message),
                ReadBack::Unavailable(error) | ReadBack::Damaged(error) => Err(error),
            })
            .collect()
    }

    /// Reads stored messages back (coalesced reads) and decodes them, each with its own
    /// outcome, in input order. While the log is failed and being reopened, the records
    /// already on disk are read through the failed log's files, so consumers keep draining
    /// backlogs; every failure then counts as `Unavailable`, since the reopen decides which
    /// records were lost.
    pub async fn read_back(&self, locations: &[RecordLocation]) -> Vec<ReadBack> {
        let (payloads, healthy) = match self.log() {
            Ok(log) => {
                let payloads = log.read_each(locations).await;
                (payloads, log.health().is_ok())
            }
            Err(_) => {
                let reader = self.failed_reader.borrow().clone();
                match reader {
                    Some(reader) => (reader.read_each(locations).await, false),
                    None => {
                        return locations
                            .iter()
                            .map(|_| ReadBack::Unavailable(self.failure_error().into()))
                            .collect();
                    }
                }
            }
        };
        payloads
            .into_iter()
            .zip(locations)
            .map(|(payload, location)| {
                let decoded = payload.map_err(PersistenceError::from).and_then(|payload| {
                    record::decode_message(&payload)
                        .map(|decoded| decoded.message)
                        .map_err(|error| PersistenceError::UndecodableMessage {
                            segment: location.segment.0,
                            offset: location.offset,
                            error,
                        })
                });
                match decoded {
                    Ok(message) => ReadBack::Message(message),
                    Err(error) if healthy && error.is_damaged_record() => ReadBack::Damaged(error),
                    Err(error) => ReadBack::Unavailable(error),
                }
            })
            .collect()
    }

    pub fn health(&self) -> Result<(), StorageError> {
        self.log()?.health()
    }

    /// Appends a persistent message for `entries` (queue, message id, deadline) of this shard.
    pub fn append_message(
        &self,
        entries: &[record::RecordEntry],
        message: &Message,
    ) -> Result<(Lsn, RecordLocation), StorageError> {
        let head = record::encode_message_head(entries, message);
        let (lsn, location) = self
            .log()?
            .append_parts(RECORD_MESSAGE, &[&head, &message.body])?;
        self.last_appended.set(lsn);
        let count = u32::try_from(entries.len()).expect("entries fit u32");
        self.track(location, count);
        Ok((lsn, location))
    }

    /// Pages a message out of RAM for `entries` (queue, message id, deadline) of this shard:
    /// a paged record, which no confirm waits for and recovery skips. Fails rather than
    /// queueing more when the write buffer is full, so the caller keeps the message in RAM.
    pub fn append_paged(
        &self,
        entries: &[record::RecordEntry],
        message: &Message,
    ) -> Result<RecordLocation, StorageError> {
        let head = record::encode_paged_head(entries, message);
        // `last_appended` is what confirms and barriers wait for: a paged record needs no
        // fdatasync, so it does not move it.
        let (_, location) = self
            .log()?
            .append_parts(RECORD_PAGED, &[&head, &message.body])?;
        let count = u32::try_from(entries.len()).expect("entries fit u32");
        self.track(location, count);
        Ok(location)
    }

    /// Records that messages of `queue` were settled for good (acked, rejected, purged). The
    /// caller then reports each entry dead with `entry_dead`.
    pub fn append_settled(&self, queue: QueueId, ids: &[MessageId]) -> Result<Lsn, StorageError> {
        let log = self.log()?;
        let mut lsn = self.last_appended.get();
        // A purge of a large, gappy backlog would otherwise make one record bigger than the
        // log's write buffer, and it would never be written.
        for chunk in ids.chunks(SETTLED_IDS_PER_RECORD) {
            let (appended, location) =
                log.append(RECORD_SETTLED, &record::encode_settled(queue, chunk))?;
            lsn = appended;
            self.last_appended.set(lsn);
            self.track(location, 0);
        }
        Ok(lsn)
    }

    pub fn append_queue_deleted(&self, queue: QueueId) -> Result<Lsn, StorageError> {
        let (lsn, location) = self
            .log()?
            .append(RECORD_QUEUE_DELETED, &record::encode_queue_deleted(queue))?;
        self.last_appended.set(lsn);
        self.track(location, 0);
        Ok(lsn)
    }

    /// One queue entry of a message record is gone for good.
    pub fn entry_dead(&self, location: RecordLocation) {
        let segment_unused = {
            let mut segments = self.segments.borrow_mut();
            let count = segments
                .get_mut(&location.segment)
                .expect("a dead entry's segment is tracked");
            assert!(*count > 0, "more dead entries than tracked ones");
            *count -= 1;
            *count == 0
        };
        if segment_unused {
            self.release_unused_prefix();
        }
    }

    /// Waits until everything appended so far is durable.
    pub async fn sync_all(&self) -> Result<(), StorageError> {
        self.log()?.wait_durable(self.last_appended.get()).await
    }

    /// Waits for the fdatasync covering everything appended so far, then `waiting` is done.
    pub fn after_durable(&self, waiting: Waiting) -> bool {
        let lsn = self.last_appended.get();
        let durable = self
            .log()
            .is_ok_and(|log| log.durable_lsn() >= lsn && log.health().is_ok());
        if durable {
            return false;
        }
        self.waiting.borrow_mut().push_back((lsn, waiting));
        self.waiting_added.notify();
        true
    }

    /// Sends confirms and barrier answers as the log becomes durable; nacks them if it fails.
    /// It also watches the log while nothing waits: a failure under publishers without
    /// confirms (or under settle records alone) raises the alarm and starts the reopen too.
    pub async fn run_confirmer(self: Rc<Self>, shard: Rc<Shard>) {
        loop {
            let changed = match self.log() {
                Ok(log) if self.waiting.borrow().is_empty() => {
                    let added = async {
                        self.waiting_added.wait().await;
                        None
                    };
                    let changed = async { Some(log.durable_changed().await) };
                    match futures_lite::future::or(added, changed).await {
                        // Something waits now, or the log advanced with nobody waiting.
                        None | Some(Ok(_)) => continue,
                        Some(Err(error)) => Err(error),
                    }
                }
                Ok(log) => log.durable_changed().await,
                Err(error) => Err(error),
            };
            let durable = match changed {
                Ok(durable) => durable,
                Err(error) => {
                    self.failed(&shard, Arc::new(error)).await;
                    continue;
                }
            };
            loop {
                let due = {
                    let mut waiting = self.waiting.borrow_mut();
                    match waiting.front() {
                        Some((lsn, _)) if *lsn <= durable => waiting.pop_front(),
                        _ => None,
                    }
                };
                let Some((_, waiting)) = due else {
                    break;
                };
                answer(&shard, waiting, true);
            }
        }
    }

    /// The log failed: raise the alarm on every shard (once), nack whatever waits, and reopen
    /// the log until it works again.
    async fn failed(&self, shard: &Rc<Shard>, error: Arc<StorageError>) {
        if !self.alarm_raised.replace(true) {
            tracing::error!(%error, shard = %shard.id, "log failed: refusing persistent messages, alarm raised");
            let alarm = StorageAlarm {
                shard: shard.id,
                cause: error.clone(),
            };
            shard
                .mesh
                .broadcast(|| ShardMessage::StorageAlarm(alarm.clone()));
        }
        self.fail_waiting(shard);
        self.reopen_until_healthy(shard, &error).await;
    }

    /// After the log failed: every second, closes it and opens it again (recovery cuts what
    /// never reached the disk), until that works. Queue entries whose records were lost are
    /// dropped (their publishers got nacks), the segment pins are rebuilt, and the alarm is
    /// cleared on every shard. A full disk keeps failing until space is freed.
    async fn reopen_until_healthy(&self, shard: &Rc<Shard>, error: &Arc<StorageError>) {
        let failed = self.log.borrow_mut().take();
        if let Some(failed) = failed {
            let cause = match &**error {
                StorageError::Failed { cause } => cause.clone(),
                _ => error.clone(),
            };
            *self.failure.borrow_mut() = Some(cause);
            *self.failed_reader.borrow_mut() = Some(Rc::new(failed.segment_reader()));
            // In-flight reads hold the log; its directory lock must be free before reopening.
            let mut failed = failed;
            loop {
                match Rc::try_unwrap(failed) {
                    Ok(log) => {
                        drop(log);
                        break;
                    }
                    Err(shared) => {
                        failed = shared;
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        loop {
            glommio::timer::sleep(REOPEN_INTERVAL).await;
            // Confirms asked for while there was no log refer to it: they are nacked.
            self.fail_waiting(shard);
            match self.reopen(shard).await {
                Ok(lost) => {
                    tracing::warn!(shard = %shard.id, lost_entries = lost, "log reopened after a failure; alarm cleared");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, shard = %shard.id, "log still failing; retrying");
                }
            }
        }
        self.alarm_raised.set(false);
        shard
            .mesh
            .broadcast(|| ShardMessage::StorageAlarmCleared { shard: shard.id });
    }

    /// Opens the log again and reconciles the shard's queues with what it holds. Returns how
    /// many queue entries were lost.
    async fn reopen(&self, shard: &Rc<Shard>) -> Result<usize, PersistenceError> {
        let (log, _) = Log::open(self.config.clone(), |_| {}).await?;
        let (end_segment, end_offset) = log.end_position();
        // Proves the disk takes a write and an fdatasync again before the alarm is cleared:
        // an empty settled record, which replay ignores.
        let (probe_lsn, probe_location) =
            log.append(RECORD_SETTLED, &record::encode_settled(QueueId(0), &[]))?;
        log.wait_durable(probe_lsn).await?;
        let is_lost = |location: RecordLocation| {
            (location.segment, u64::from(location.offset)) >= (end_segment, end_offset)
        };
        let mut lost = Vec::new();
        for queue in shard.queues.borrow_mut().values_mut() {
            queue.forget_lost(is_lost, &mut lost);
        }
        {
            let mut segments = self.segments.borrow_mut();
            for location in &lost {
                if let Some(count) = segments.get_mut(&location.segment) {
                    *count = count.saturating_sub(1);
                }
            }
            // Segments the failed log was starting and never wrote are gone.
            let existing: std::collections::BTreeSet<SegmentId> =
                log.segment_ids().into_iter().collect();
            segments.retain(|segment, _| existing.contains(segment));
            for segment in segments.keys() {
                log.add_live(*segment, 1);
            }
        }
        // Whatever still waits refers to the failed log: nacked before the new one is in use
        // (later confirms are for the new log and must not be).
        self.fail_waiting(shard);
        self.last_appended.set(probe_lsn);
        *self.log.borrow_mut() = Some(Rc::new(log));
        self.track(probe_location, 0);
        *self.failure.borrow_mut() = None;
        *self.failed_reader.borrow_mut() = None;
        self.release_unused_prefix();
        // The log is back in use from here on: a failure to delete dead segments now must not
        // send the reopen round again (the new log holds the directory lock).
        if let Err(error) = self.pin_after_recovery().await {
            tracing::warn!(%error, shard = %shard.id, "could not delete dead segments after reopening the log");
        }
        Ok(lost.len())
    }

    fn fail_waiting(&self, shard: &Rc<Shard>) {
        let failed: Vec<_> = self.waiting.borrow_mut().drain(..).collect();
        for (_, waiting) in failed {
            answer(shard, waiting, false);
        }
    }

    /// True while appends are close to the log's write-buffer bound: publishers must slow
    /// down before persistent messages stop fitting.
    pub fn write_buffer_high(&self) -> bool {
        self.log()
            .is_ok_and(|log| log.buffered_bytes() > hare_storage::WRITE_BUFFER_BYTES_MAX / 2)
    }

    /// The open log, or the error that explains why there is none right now.
    fn log(&self) -> Result<Rc<Log>, StorageError> {
        self.log
            .borrow()
            .clone()
            .ok_or_else(|| self.failure_error())
    }

    /// Why there is no log right now.
    fn failure_error(&self) -> StorageError {
        StorageError::Failed {
            cause: self
                .failure
                .borrow()
                .clone()
                .expect("the log is only taken away after a failure"),
        }
    }

    /// One pin on `segment` in the log: it is not deleted while pinned.
    fn pin(&self, segment: SegmentId) {
        if let Ok(log) = self.log() {
            log.add_live(segment, 1);
        }
    }

    fn track(&self, location: RecordLocation, entries: u32) {
        let mut segments = self.segments.borrow_mut();
        let count = segments.entry(location.segment).or_insert_with(|| {
            // First record seen in this segment: pin it until it may go.
            self.pin(location.segment);
            0
        });
        *count += u64::from(entries);
    }

    /// Releases the pins of the oldest segments that hold no live record, stopping at the
    /// first that does (or at the newest, which is being written).
    fn release_unused_prefix(&self) {
        let mut segments = self.segments.borrow_mut();
        while segments.len() > 1 {
            let (&oldest, &live) = segments.iter().next().expect("len checked");
            if live > 0 {
                return;
            }
            segments.remove(&oldest);
            if let Ok(log) = self.log() {
                log.release(oldest, 1);
            }
        }
    }
}

fn answer(shard: &Rc<Shard>, waiting: Waiting, ok: bool) {
    match waiting {
        Waiting::Confirm(confirm) => shard.confirm(confirm, ok),
        Waiting::Barrier(reply_to) => shard.reply(reply_to, Reply::Barrier { durable: ok }),
    }
}

/// Replays a message record: its entries join their queues' recovered lists (bodies stay on
/// disk), with their deadlines.
fn replay_message(
    location: RecordLocation,
    payload: &[u8],
    recovered: &mut HashMap<QueueId, RecoveredQueue>,
    deadlines: &mut HashMap<QueueId, Vec<(MessageId, u64)>>,
    highest_ids: &mut HashMap<QueueId, u64>,
) -> Result<(), record::RecordError> {
    let stored = StoredAt::new(location);
    let mut entries = Vec::new();
    let summary = record::decode_message_entries(payload, |entry| entries.push(entry))?;
    let overhead = location
        .length
        .saturating_sub(u32::try_from(summary.body_len).unwrap_or(u32::MAX));
    for record::RecordEntry {
        queue,
        id,
        deadline,
    } in entries
    {
        note_id(highest_ids, queue, id.0);
        if deadline != 0 {
            deadlines.entry(queue).or_default().push((id, deadline));
        }
        let messages = recovered.entry(queue).or_default();
        // Settled entries are only tombstones. A log written before ids were kept unique
        // across restarts can reuse an id: dropping the tombstones it passes keeps the list
        // sorted for `settle_recovered`.
        while messages
            .last()
            .is_some_and(|last| last.id >= id && last.stored.is_none())
        {
            messages.pop();
        }
        messages.push(QueuedMessage {
            id,
            message: None,
            stored: Some(stored),
            redelivered: true,
            priority: summary.priority,
            record_overhead: u16::try_from(overhead).unwrap_or(u16::MAX),
        });
    }
    Ok(())
}

fn note_id(highest_ids: &mut HashMap<QueueId, u64>, queue: QueueId, id: u64) {
    let highest = highest_ids.entry(queue).or_insert(0);
    *highest = (*highest).max(id);
}

/// Marks recovered messages `first .. first + count` of a queue settled (their `stored` is
/// cleared; the caller drops them). Recovered entries are in id order: a queue's ids are
/// assigned and logged in the same order.
fn settle_recovered(messages: &mut [QueuedMessage], first: u64, count: u32) {
    let end = first.saturating_add(u64::from(count));
    let start = messages.partition_point(|queued| queued.id.0 < first);
    for queued in messages[start..].iter_mut().take_while(|q| q.id.0 < end) {
        queued.stored = None;
    }
}
