//! hyper's I/O traits (`hyper::rt::Read`, `hyper::rt::Write`) over a glommio `TcpStream`, so
//! hyper's HTTP/1 server runs on a shard's executor without a tokio runtime. With
//! `--management-tls`/`--metrics-tls` the socket carries a TLS session (`crate::tls::stream`),
//! whose handshake must finish within `TLS_HANDSHAKE_TIMEOUT`.
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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use rustls::ServerConfig;

use crate::tls::stream::{TlsReader, TlsWriter};

/// How long a read or a write may wait without progress before the connection is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an HTTPS client has for the TLS handshake (the AMQP handshake's default).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket, or the two halves of a TLS session over it (boxed: three times the socket's
/// size).
enum Transport {
    Plain(TcpStream),
    Tls(Box<(TlsReader, TlsWriter)>),
}

/// Bytes read from the socket per call at most.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A glommio socket as hyper sees it.
pub struct HttpStream {
    stream: Transport,
    scratch: Box<[u8]>,
    read_idle: Option<Timer>,
    write_idle: Option<Timer>,
}

impl HttpStream {
    pub fn new(stream: TcpStream) -> HttpStream {
        HttpStream::with(Transport::Plain(stream))
    }

    /// Runs the TLS handshake with the configuration current now, within
    /// `TLS_HANDSHAKE_TIMEOUT`.
    pub async fn tls(mut stream: TcpStream, config: Arc<ServerConfig>) -> io::Result<HttpStream> {
        let handshake = async { Some(crate::tls::stream::accept(config, &mut stream).await) };
        let timeout = async {
            glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
            None
        };
        let session = match futures_lite::future::or(handshake, timeout).await {
            Some(session) => session?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            }
        };
        let (reader, writer) = crate::tls::stream::split(stream, session)?;
        Ok(HttpStream::with(Transport::Tls(Box::new((reader, writer)))))
    }

    fn with(stream: Transport) -> HttpStream {
        HttpStream {
            stream,
            scratch: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            read_idle: None,
            write_idle: None,
        }
    }
}

impl Transport {
    fn poll_read(&mut self, cx: &mut Context<'_>, into: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, into),
            Transport::Tls(halves) => Pin::new(&mut halves.0).poll_read(cx, into),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, bytes),
            Transport::Tls(halves) => Pin::new(&mut halves.1).poll_write(cx, bytes),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(halves) => Pin::new(&mut halves.1).poll_flush(cx),
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Plain(stream) => Pin::new(stream).poll_close(cx),
            Transport::Tls(halves) => Pin::new(&mut halves.1).poll_close(cx),
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
        match this.stream.poll_read(cx, &mut this.scratch[..wanted]) {
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
        match this.stream.poll_write(cx, buf) {
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
        self.get_mut().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.poll_close(cx)
    }
}
