//! Socket I/O of one connection. The socket's descriptor is duplicated so the reader (the
//! connection task) and the writer task each own a glommio stream (`transport.rs`, which
//! also puts a TLS session between them and the socket on an AMQPS connection).
//! Reads land in a `BytesMut` and frames are split off it zero-copy; writes go through one
//! output buffer that the connection task and the shard's event handlers append to.

use crate::fast_map::FastMap;
use std::cell::{Cell, RefCell};
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;

use crate::connection::transport::{ReadHalf, WriteHalf};

use crate::ids::{QueueId, ShardId};
use crate::protocol::{
    parse_frame, scan_frame, Frame, FrameError, FRAME_HEADER_SIZE, FRAME_OVERHEAD_SIZE,
};
use crate::queue::consumer::{ConsumerKey, FLOW_CREDIT_INITIAL};
use crate::shard::notify::Notify;
use crate::shard::stats::SocketCounters;

/// Most bytes requested from the socket per read (a flooding publisher).
pub const READ_CHUNK_SIZE: usize = 64 * 1024;
/// Fewest bytes requested per read. Each read zero-fills and may allocate its request size,
/// and every frame sliced from it pins that allocation until the message is gone: a client
/// sending one small message at a time must not cost 64 KiB per message.
pub const READ_CHUNK_SIZE_MIN: usize = 4 * 1024;
/// Frames at least this long are read into an allocation of exactly their size. A body frame
/// sliced from a shared read buffer pins the whole allocation: a 64 KiB body straddling two
/// 64 KiB reads pinned an allocation holding the next message's start and the unread room
/// after it, and a queued transient 64 KiB message cost 1.57 times its size in RSS. Below
/// this, frames share their reads (many small messages fill an allocation).
pub const OWN_ALLOCATION_FRAME_MIN: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer closed the connection")]
    Eof,
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
}

/// Splits frames off the socket's byte stream.
pub struct FrameReader {
    stream: ReadHalf,
    buffer: BytesMut,
    /// Bytes the next read asks for: doubled after a read that filled it, halved after one
    /// that used less than a quarter.
    read_size: usize,
    /// Bytes and reads, shared with the connection's statistics.
    received: Rc<SocketCounters>,
}

impl FrameReader {
    pub fn new(stream: ReadHalf) -> FrameReader {
        FrameReader {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK_SIZE_MIN),
            read_size: READ_CHUNK_SIZE_MIN,
            received: Rc::default(),
        }
    }

    /// A reader that goes on where another shard's left off: `unread` is parsed before the
    /// socket is read again.
    pub fn resume(stream: ReadHalf, unread: &[u8], received: SocketCounters) -> FrameReader {
        let mut buffer = BytesMut::with_capacity(unread.len().max(READ_CHUNK_SIZE_MIN));
        buffer.extend_from_slice(unread);
        FrameReader {
            stream,
            buffer,
            read_size: READ_CHUNK_SIZE_MIN,
            received: Rc::new(received),
        }
    }

    /// A plain socket, no TLS session over it.
    pub fn is_plain(&self) -> bool {
        matches!(self.stream, ReadHalf::Plain(_))
    }

    /// The bytes read from the socket and not parsed yet.
    pub fn unread(&self) -> &[u8] {
        &self.buffer
    }

    /// What this reader has read, for the connection's statistics.
    pub fn received(&self) -> Rc<SocketCounters> {
        self.received.clone()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.stream.raw_fd()
    }

    /// Reads exactly `N` bytes (the protocol header).
    pub async fn read_exact<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        while self.buffer.len() < N {
            self.fill().await?;
        }
        let bytes = self.buffer.split_to(N);
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    /// The next complete frame, checking its size against `frame_max` from its header alone.
    pub async fn next_frame(&mut self, frame_max: u32) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = parse_frame(&mut self.buffer, frame_max)? {
                return Ok(frame);
            }
            match self.large_frame_missing(frame_max) {
                Some(missing) => self.fill_exact(missing).await?,
                None => self.fill().await?,
            }
        }
    }

    /// The bytes still to read of a frame of at least `OWN_ALLOCATION_FRAME_MIN` that the
    /// buffer starts with. Its length is trusted only once `parse_frame` has checked it
    /// against `frame_max` (which it did: it returned no frame and no error), and never
    /// without a limit.
    fn large_frame_missing(&self, frame_max: u32) -> Option<usize> {
        let header = self.buffer.first_chunk::<FRAME_HEADER_SIZE>()?;
        let payload = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        if frame_max == 0 || payload > frame_max {
            return None;
        }
        let length = usize::try_from(payload).ok()? + FRAME_OVERHEAD_SIZE;
        (length >= OWN_ALLOCATION_FRAME_MIN).then(|| length.saturating_sub(self.buffer.len()))
    }

    /// Reads the rest of a large frame (`missing` bytes) into an allocation of exactly its
    /// size: the part already read is copied there once (the buffer's allocation is shared
    /// with the frames split off before it), and the read asks for no byte past the frame's
    /// end, so the frame pins nothing but itself. The next frames go to a fresh buffer.
    async fn fill_exact(&mut self, missing: usize) -> Result<(), ReadError> {
        let length = self.buffer.len() + missing;
        if self.buffer.capacity() != length {
            let mut own = BytesMut::with_capacity(length);
            own.extend_from_slice(&self.buffer);
            self.buffer = own;
        }
        let start = self.buffer.len();
        self.buffer.resize(length, 0);
        let result = self.stream.read(&mut self.buffer[start..]).await;
        self.after_read(start, missing, result, false)
    }

    /// Reads and discards input until the peer closes or `timeout` passes: the lingering
    /// close that lets our last frames reach the peer before the socket goes.
    pub async fn drain(&mut self, timeout: std::time::Duration) {
        let drained = async {
            loop {
                self.buffer.clear();
                if self.fill().await.is_err() {
                    return;
                }
            }
        };
        futures_lite::future::or(drained, glommio::timer::sleep(timeout)).await;
    }

    /// After a framing error: discards the out-of-sync input and then reads until the client's
    /// connection.close-ok arrives (the frame is looked for in fresh input only), the peer
    /// closes, or `timeout` passes.
    pub async fn drain_until_close_ok(&mut self, timeout: std::time::Duration) {
        let frame_max = crate::connection::handshake::FRAME_MAX_BEFORE_TUNE;
        let drained = async {
            self.buffer.clear();
            loop {
                if self.fill().await.is_err() {
                    return;
                }
                loop {
                    match parse_frame(&mut self.buffer, frame_max) {
                        Ok(Some(frame)) => {
                            let close_ok = frame.channel == 0
                                && matches!(
                                    crate::protocol::Method::decode(&frame.payload),
                                    Ok(crate::protocol::Method::ConnectionCloseOk(_))
                                );
                            if close_ok {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            self.buffer.clear();
                            break;
                        }
                    }
                }
            }
        };
        futures_lite::future::or(drained, glommio::timer::sleep(timeout)).await;
    }

    /// True if a complete frame, or a frame header the codec rejects outright, is buffered:
    /// `next_frame` then returns without reading. A partial frame does not count: a flooding
    /// publisher nearly always leaves one behind, and back-pressure must still stop its reads.
    pub fn has_buffered(&self) -> bool {
        // frame_max 0 (no limit): `next_frame` checks the size against the negotiated one.
        !matches!(scan_frame(&self.buffer, 0), Ok(None))
    }

    async fn fill(&mut self) -> Result<(), ReadError> {
        let start = self.buffer.len();
        let request = self.read_size;
        self.buffer.resize(start + request, 0);
        let result = self.stream.read(&mut self.buffer[start..]).await;
        self.after_read(start, request, result, true)
    }

    /// Keeps what a read of `request` bytes at `start` brought; `adapt`: the read size
    /// follows how much it got.
    fn after_read(
        &mut self,
        start: usize,
        request: usize,
        result: std::io::Result<usize>,
        adapt: bool,
    ) -> Result<(), ReadError> {
        match result {
            Ok(0) => {
                self.buffer.truncate(start);
                Err(ReadError::Eof)
            }
            Ok(read) => {
                self.received.add(read);
                self.buffer.truncate(start + read);
                if adapt && read == request {
                    self.read_size = (self.read_size * 2).min(READ_CHUNK_SIZE);
                } else if adapt && read < request / 4 {
                    self.read_size = (self.read_size / 2).max(READ_CHUNK_SIZE_MIN);
                }
                Ok(())
            }
            Err(error) => {
                self.buffer.truncate(start);
                Err(ReadError::Io(error))
            }
        }
    }
}

/// Credit for a queue on another shard is returned once this much has gathered for one
/// consumer. Each return is a mesh message that may wake that shard, and at low rates a wake
/// costs more than a message; a tenth of `FLOW_CREDIT_INITIAL` leaves a consumer at least nine
/// tenths of its credit, so holding it back never stalls a consumer whose socket keeps up.
pub const CREDIT_RETURN_BATCH: u32 = FLOW_CREDIT_INITIAL / 10;

/// Consumers at most with credit held back (`CREDIT_RETURN_BATCH`); past that, all of it is
/// returned, so consumers that come and go on one connection cannot grow the table.
pub const CREDIT_HELD_KEYS_MAX: usize = 1024;

/// Flow credit owed to one consumer for deliveries written to the output buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditKey {
    pub owner: ShardId,
    pub queue: QueueId,
    pub consumer: ConsumerKey,
}

/// The connection's outgoing bytes, shared by everything on the shard that writes to it.
pub struct Output {
    buffer: RefCell<Vec<u8>>,
    ready: Notify,
    credit_owed: RefCell<FastMap<CreditKey, u32>>,
    /// Set once nothing more may be written (socket gone or close-ok sent).
    finished: Cell<bool>,
    /// The writer has bytes on their way to the socket.
    writing: Cell<bool>,
    /// Shut the socket down once the buffer is written (after close-ok or a fatal error).
    close_after_flush: Cell<bool>,
    pub last_write: Cell<Instant>,
    /// Bytes and writes on the socket, for the connection's statistics.
    pub sent: SocketCounters,
}

impl Default for Output {
    fn default() -> Self {
        Output::new()
    }
}

impl Output {
    pub fn new() -> Output {
        Output {
            buffer: RefCell::new(Vec::with_capacity(READ_CHUNK_SIZE)),
            ready: Notify::new(),
            credit_owed: RefCell::new(FastMap::default()),
            finished: Cell::new(false),
            writing: Cell::new(false),
            close_after_flush: Cell::new(false),
            last_write: Cell::new(Instant::now()),
            sent: SocketCounters::default(),
        }
    }

    /// Appends with `write` and wakes the writer.
    pub fn write(&self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.finished.get() {
            return;
        }
        write(&mut self.buffer.borrow_mut());
        self.ready.notify();
    }

    pub fn owe_credit(&self, key: CreditKey) {
        *self.credit_owed.borrow_mut().entry(key).or_insert(0) += 1;
    }

    /// Wakes the writer without writing: something is to be written just before its next
    /// write (the `before_write` of `run_writer`).
    pub fn wake(&self) {
        self.ready.notify();
    }

    /// Write what is buffered, then shut the socket down.
    pub fn close_after_flush(&self) {
        self.close_after_flush.set(true);
        self.ready.notify();
    }

    /// Bytes buffered and not yet handed to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.borrow().len()
    }

    pub fn is_finished(&self) -> bool {
        self.finished.get()
    }

    /// Nothing buffered and nothing being written: the socket has everything written so far.
    pub fn is_idle(&self) -> bool {
        !self.writing.get()
            && self.buffer.borrow().is_empty()
            && !self.finished.get()
            && !self.close_after_flush.get()
    }

    /// Writes the buffer to the socket until the connection ends. `before_write` may append
    /// to the buffer just before each write (coalesced confirms); `return_credit` is called
    /// with the credit of the deliveries each write carried, once they are on the socket: at
    /// once for queues on `local`, in batches for the others (`CreditReturns`).
    pub async fn run_writer(
        &self,
        mut stream: WriteHalf,
        local: ShardId,
        mut before_write: impl FnMut(),
        mut return_credit: impl FnMut(CreditKey, u32),
    ) {
        let mut spare = Vec::with_capacity(READ_CHUNK_SIZE);
        let mut held = CreditReturns::default();
        loop {
            self.ready.wait().await;
            loop {
                before_write();
                std::mem::swap(&mut spare, &mut *self.buffer.borrow_mut());
                if spare.is_empty() {
                    break;
                }
                let credit = std::mem::take(&mut *self.credit_owed.borrow_mut());
                self.writing.set(true);
                let written = stream.write_all(&spare).await;
                self.writing.set(false);
                self.sent.add(spare.len());
                spare.clear();
                if written.is_err() {
                    self.finished.set(true);
                    shutdown_socket(stream.raw_fd());
                    return;
                }
                self.last_write.set(Instant::now());
                for (key, count) in credit {
                    if key.owner == local {
                        return_credit(key, count);
                    } else {
                        held.add(key, count, &mut return_credit);
                    }
                }
            }
            if self.close_after_flush.get() {
                let _ = stream.flush().await;
                self.finished.set(true);
                // The socket stays open: like RabbitMQ, we let the client close it after our
                // last frame (the connection task drains its input meanwhile), since a FIN or
                // an RST now could reach a client thread still waiting for its close-ok.
                return;
            }
        }
    }
}

/// Credit written for consumers of queues on other shards, held back until
/// `CREDIT_RETURN_BATCH` has gathered for one consumer.
#[derive(Default)]
struct CreditReturns {
    held: FastMap<CreditKey, u32>,
}

impl CreditReturns {
    fn add(&mut self, key: CreditKey, count: u32, return_credit: &mut impl FnMut(CreditKey, u32)) {
        use std::collections::hash_map::Entry;
        match self.held.entry(key) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() += count;
                if *entry.get() >= CREDIT_RETURN_BATCH {
                    let (key, count) = entry.remove_entry();
                    return_credit(key, count);
                }
            }
            Entry::Vacant(entry) if count >= CREDIT_RETURN_BATCH => {
                return_credit(entry.into_key(), count);
            }
            Entry::Vacant(entry) => {
                entry.insert(count);
            }
        }
        if self.held.len() > CREDIT_HELD_KEYS_MAX {
            for (key, count) in self.held.drain() {
                return_credit(key, count);
            }
        }
    }
}

/// Shuts both directions of a socket down, which also ends a read pending on it.
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor this connection owns; an already shut or closed
    // socket only yields an error we do not need.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChannelId, ConnectionId};
    use crate::protocol::ShortStr;

    fn key(tag: u64) -> CreditKey {
        CreditKey {
            owner: ShardId(1),
            queue: QueueId(7),
            consumer: ConsumerKey {
                connection: ConnectionId::new(ShardId(0), 1),
                channel: ChannelId(1),
                tag: ShortStr::copy_from_str(&format!("c{tag}")).expect("short tag"),
            },
        }
    }

    #[test]
    fn credit_is_returned_in_batches_and_none_is_lost() {
        let mut held = CreditReturns::default();
        let mut returned: Vec<(CreditKey, u32)> = Vec::new();
        for _ in 0..CREDIT_RETURN_BATCH - 1 {
            held.add(key(1), 1, &mut |k, n| returned.push((k, n)));
        }
        assert!(returned.is_empty(), "nothing returned below the batch");
        held.add(key(1), 3, &mut |k, n| returned.push((k, n)));
        assert_eq!(returned, vec![(key(1), CREDIT_RETURN_BATCH + 2)]);
        returned.clear();
        // A large write returns its credit at once.
        held.add(key(2), CREDIT_RETURN_BATCH * 2, &mut |k, n| {
            returned.push((k, n))
        });
        assert_eq!(returned, vec![(key(2), CREDIT_RETURN_BATCH * 2)]);
    }

    #[test]
    fn too_many_consumers_held_returns_everything() {
        let mut held = CreditReturns::default();
        let mut returned = 0u64;
        let keys = CREDIT_HELD_KEYS_MAX as u64 + 1;
        for tag in 0..keys {
            held.add(key(tag), 1, &mut |_, n| returned += u64::from(n));
        }
        assert_eq!(returned, keys, "every held credit went back");
        assert!(held.held.is_empty());
    }
}
