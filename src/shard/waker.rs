//! Reliable wake-ups for parked executors.
//!
//! glommio 0.9 parks an executor in `io_uring_enter` on its main ring. Timer expiries, its
//! eventfd (used for cross-executor wake-ups) and socket receives complete on the latency ring
//! and reach the main ring only through a POLL_ADD on the latency ring's fd. On recent kernels
//! that link can lose a wake-up: both shards were seen parked with no timeout while timers and
//! mesh messages were pending, until an unrelated event woke them. A non-pollable read
//! completes on the main ring itself, so each shard keeps a read pending on a pipe, and:
//!
//! - a ticker thread writes to every shard's pipe each `TICK_INTERVAL`, which bounds how late
//!   any timer or lost wake-up can be;
//! - the mesh flusher pokes the target's pipe after each batch, so cross-shard messages never
//!   wait for the tick.

use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use glommio::io::BufferedFile;

/// How often every shard is woken, whatever else happens.
pub const TICK_INTERVAL: Duration = Duration::from_millis(5);

/// Bytes drained per wake-up read; pokes that pile up while a shard is busy collapse.
const WAKE_READ_SIZE: usize = 4096;

/// The write ends of every shard's wake pipe, shared by all shards and the ticker thread.
/// Descriptors are plain integers; the pipes live as long as the process.
#[derive(Debug, Clone)]
pub struct WakeHandles {
    write_fds: Arc<Vec<RawFd>>,
}

/// One shard's read end.
#[derive(Debug)]
pub struct WakeReader {
    read_fd: RawFd,
}

/// Creates one wake pipe per shard.
pub fn wake_pipes(shard_count: usize) -> std::io::Result<(WakeHandles, Vec<WakeReader>)> {
    let mut write_fds = Vec::with_capacity(shard_count);
    let mut readers = Vec::with_capacity(shard_count);
    for _ in 0..shard_count {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        let status = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if status != 0 {
            return Err(std::io::Error::last_os_error());
        }
        readers.push(WakeReader { read_fd: fds[0] });
        write_fds.push(fds[1]);
    }
    Ok((
        WakeHandles {
            write_fds: Arc::new(write_fds),
        },
        readers,
    ))
}

impl WakeHandles {
    /// Wakes shard `index` if it is parked. Never blocks: a full pipe already holds a wake-up.
    pub fn poke(&self, index: usize) {
        let fd = self.write_fds[index];
        // SAFETY: write(2) of one byte from a static buffer to a non-blocking pipe we own.
        unsafe {
            libc::write(fd, b"w".as_ptr().cast(), 1);
        }
    }

    /// Starts the thread that wakes every shard each tick until `stop` is set (and once more
    /// after, so shards notice the stop at once).
    pub fn start_ticker(&self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let handles = self.clone();
        std::thread::Builder::new()
            .name("hare-ticker".into())
            .spawn(move || loop {
                std::thread::sleep(TICK_INTERVAL);
                for index in 0..handles.write_fds.len() {
                    handles.poke(index);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
            })
    }
}

/// A shard's side of its wake pipe, opened as a glommio file so its reads complete on the
/// main ring.
pub struct Ticker {
    file: BufferedFile,
}

impl Ticker {
    pub async fn open(reader: WakeReader) -> std::io::Result<Ticker> {
        // Opening the pipe through /proc gives glommio its own descriptor for the same pipe.
        let path = format!("/proc/self/fd/{}", reader.read_fd);
        let file = BufferedFile::open(&path)
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        // SAFETY: closing our original read end; the file opened above has its own.
        unsafe {
            libc::close(reader.read_fd);
        }
        Ok(Ticker { file })
    }

    /// Waits for the next tick or poke.
    pub async fn tick(&self) {
        if self.file.read_at(0, WAKE_READ_SIZE).await.is_err() {
            // A failed read must not turn into a busy loop.
            glommio::timer::sleep(TICK_INTERVAL).await;
        }
    }
}
