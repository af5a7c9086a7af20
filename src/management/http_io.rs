//! hyper's I/O traits (`hyper::rt::Read`, `hyper::rt::Write`) over a glommio `TcpStream`, so
//! hyper's HTTP/1 server runs on a shard's executor without a tokio runtime.
//!
//! Reads go through a small buffer of our own and `ReadBufCursor::put_slice`, which keeps the
//! adapter free of `unsafe` (hyper's cursor hands out uninitialised memory otherwise).
//!
//! Timeouts: hyper's `header_read_timeout` needs a `hyper::rt::Timer` whose sleeps are
//! `Send + Sync`, which glommio's timers are not, so the server disables it and this adapter
//! bounds idleness instead: a read or a write that makes no progress for `IDLE_TIMEOUT` fails
//! with `TimedOut`, which ends the HTTP connection. That covers slow headers, idle keep-alive
//! connections and clients that stop reading their response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;

/// How long a read or a write may wait without progress before the connection is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes read from the socket per call at most.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A glommio socket as hyper sees it.
pub struct HttpStream {
    stream: TcpStream,
    scratch: Box<[u8]>,
    read_idle: Option<Timer>,
    write_idle: Option<Timer>,
}

impl HttpStream {
    pub fn new(stream: TcpStream) -> HttpStream {
        HttpStream {
            stream,
            scratch: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            read_idle: None,
            write_idle: None,
        }
    }
}

/// Pending with no progress: starts (or keeps) the idle timer and fails once it fires.
fn idle(timer: &mut Option<Timer>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let timer = timer.get_or_insert_with(|| Timer::new(IDLE_TIMEOUT));
    match Pin::new(timer).poll(cx) {
        Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "management HTTP connection idle",
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl hyper::rt::Read for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wanted = buf.remaining().min(this.scratch.len());
        match Pin::new(&mut this.stream).poll_read(cx, &mut this.scratch[..wanted]) {
            Poll::Ready(Ok(read)) => {
                this.read_idle = None;
                buf.put_slice(&this.scratch[..read]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => idle(&mut this.read_idle, cx),
        }
    }
}

impl hyper::rt::Write for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.write_idle = None;
                Poll::Ready(result)
            }
            Poll::Pending => match idle(&mut this.write_idle, cx) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
