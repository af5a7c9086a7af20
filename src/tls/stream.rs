//! A TLS session over a glommio socket, split for a connection's two tasks. The server
//! handshake runs first on the accepted socket (`accept`); then a `TlsReader` and a
//! `TlsWriter`, each owning a stream on its own duplicate of the descriptor (as plain
//! connections do), share the one `rustls::ServerConnection` through an `Rc<RefCell<..>>`:
//! both run on the socket's shard thread, and neither holds the borrow across an await.
//!
//! Outgoing TLS records are written only by the writer. Records rustls queues while reading
//! (a TLS 1.3 key update's answer) go out with the writer's next write; with heartbeats on,
//! one comes within half a heartbeat interval.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// Ciphertext the handshake reads from the socket per call at most.
pub const CIPHERTEXT_CHUNK_BYTES: usize = 16 * 1024 + 512;
/// Most ciphertext a connection's reader asks the socket for at once: a few TLS records (16
/// KiB of plaintext each), as a plain connection reads up to 64 KiB at a time.
pub const CIPHERTEXT_READ_SIZE_MAX: usize = 64 * 1024;
/// Least it asks for; the size adapts as a plain connection's reads do (`connection/io.rs`),
/// so an idle TLS connection holds 4 KiB here, a flooding one 64 KiB. The session takes
/// partial records, so any size works.
pub const CIPHERTEXT_READ_SIZE_MIN: usize = 4 * 1024;

pub type Session = Rc<RefCell<ServerConnection>>;

fn invalid_data(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Runs the server side of the TLS handshake on `stream`. Plaintext the client sent right
/// after its last handshake message stays buffered in the session for the reader. On a
/// failure the alert rustls prepared is sent before the error is returned.
pub async fn accept(
    config: Arc<ServerConfig>,
    stream: &mut TcpStream,
) -> io::Result<ServerConnection> {
    let mut session =
        ServerConnection::new(config).map_err(|error| io::Error::other(error.to_string()))?;
    let mut incoming = vec![0u8; CIPHERTEXT_CHUNK_BYTES];
    let mut outgoing = Vec::new();
    loop {
        while session.wants_write() {
            session.write_tls(&mut outgoing)?;
        }
        if !outgoing.is_empty() {
            stream.write_all(&outgoing).await?;
            outgoing.clear();
        }
        if !session.is_handshaking() {
            return Ok(session);
        }
        let read = stream.read(&mut incoming).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed during the TLS handshake",
            ));
        }
        if let Err(error) = feed(&mut session, &incoming[..read]) {
            while session.wants_write() {
                if session.write_tls(&mut outgoing).is_err() {
                    break;
                }
            }
            let _ = stream.write_all(&outgoing).await;
            return Err(error);
        }
    }
}

/// Hands ciphertext to the session and processes it, record by record.
fn feed(session: &mut ServerConnection, mut ciphertext: &[u8]) -> io::Result<()> {
    while !ciphertext.is_empty() {
        if session.read_tls(&mut ciphertext)? == 0 {
            return Err(io::Error::other("TLS session accepts no more input"));
        }
        session.process_new_packets().map_err(invalid_data)?;
    }
    Ok(())
}

/// The reading half: ciphertext from the socket in, plaintext out.
pub struct TlsReader {
    stream: TcpStream,
    session: Session,
    /// `read_size` bytes long whenever the socket is read.
    ciphertext: Vec<u8>,
    /// Doubled after a read that filled it, halved after one that used less than a quarter.
    read_size: usize,
    /// `ciphertext[start..end]` was read from the socket and not yet given to the session.
    start: usize,
    end: usize,
}

impl TlsReader {
    pub fn new(stream: TcpStream, session: Session) -> TlsReader {
        TlsReader {
            stream,
            session,
            ciphertext: vec![0; CIPHERTEXT_READ_SIZE_MIN],
            read_size: CIPHERTEXT_READ_SIZE_MIN,
            start: 0,
            end: 0,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Plaintext the session already holds, decrypting buffered ciphertext as needed to fill
    /// `into` (several records' worth, like one plain read); None when more must be read from
    /// the socket first. Some(0): the peer sent close_notify.
    fn take_plaintext(&mut self, into: &mut [u8]) -> io::Result<Option<usize>> {
        let mut session = self.session.borrow_mut();
        let mut filled = 0;
        loop {
            match session.reader().read(&mut into[filled..]) {
                Ok(0) => return Ok(Some(filled)),
                Ok(read) => {
                    filled += read;
                    if filled == into.len() {
                        return Ok(Some(filled));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) if filled > 0 => return Ok(Some(filled)),
                Err(error) => return Err(error),
            }
            if self.start == self.end {
                return Ok((filled > 0).then_some(filled));
            }
            let mut pending = &self.ciphertext[self.start..self.end];
            let taken = session.read_tls(&mut pending)?;
            if taken == 0 {
                return Err(io::Error::other("TLS session accepts no more input"));
            }
            self.start += taken;
            session.process_new_packets().map_err(invalid_data)?;
        }
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        into: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if into.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Some(read) = this.take_plaintext(into)? {
                return Poll::Ready(Ok(read));
            }
            // Everything read before is in the session: the buffer may change size.
            if this.ciphertext.len() != this.read_size {
                this.ciphertext.resize(this.read_size, 0);
                this.ciphertext.shrink_to(this.read_size);
            }
            match Pin::new(&mut this.stream).poll_read(cx, &mut this.ciphertext) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(read)) => {
                    this.start = 0;
                    this.end = read;
                    if read == this.read_size {
                        this.read_size = (this.read_size * 2).min(CIPHERTEXT_READ_SIZE_MAX);
                    } else if read < this.read_size / 4 {
                        this.read_size = (this.read_size / 2).max(CIPHERTEXT_READ_SIZE_MIN);
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The writing half: plaintext in, TLS records out to the socket.
pub struct TlsWriter {
    stream: TcpStream,
    session: Session,
    /// Records encrypted and not yet written; `ciphertext[sent..]` is what is left.
    ciphertext: Vec<u8>,
    sent: usize,
}

impl TlsWriter {
    pub fn new(stream: TcpStream, session: Session) -> TlsWriter {
        TlsWriter {
            stream,
            session,
            ciphertext: Vec::new(),
            sent: 0,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes what is encrypted and not yet on the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.ciphertext.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.ciphertext[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => self.sent += written,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.ciphertext.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Moves every record the session has queued into `ciphertext`.
    fn collect_records(&mut self) -> io::Result<()> {
        let mut session = self.session.borrow_mut();
        while session.wants_write() {
            session.write_tls(&mut self.ciphertext)?;
        }
        Ok(())
    }
}

impl AsyncWrite for TlsWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        plaintext: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One batch of records in flight at most: the earlier one goes out first.
        match this.poll_send(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        let accepted = this.session.borrow_mut().writer().write(plaintext)?;
        this.collect_records()?;
        // Start the write now; what the socket does not take goes out on the next call.
        if let Poll::Ready(Err(error)) = this.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(accepted))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.collect_records()?;
        match this.poll_send(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut *this).poll_flush(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_close(cx),
            other => other,
        }
    }
}

/// Duplicates a socket descriptor so reading and writing each own a stream: a TLS session's
/// two halves, and a plain connection's too.
pub fn duplicate_socket(stream: &TcpStream) -> io::Result<TcpStream> {
    use std::os::unix::io::{AsRawFd, FromRawFd};
    // SAFETY: dup(2) of a descriptor owned by `stream`; the copy is owned by the new stream.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor for the same connected socket, owned by nobody else.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

/// Splits a session that finished its handshake on `stream` between the socket and a
/// duplicate of it.
pub fn split(stream: TcpStream, session: ServerConnection) -> io::Result<(TlsReader, TlsWriter)> {
    let writer = duplicate_socket(&stream)?;
    let session = Rc::new(RefCell::new(session));
    Ok((
        TlsReader::new(stream, session.clone()),
        TlsWriter::new(writer, session),
    ))
}

impl TlsWriter {
    /// Encrypts and writes all of `plaintext`, then everything the session queued.
    pub async fn write_all_flushed(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.write_all(plaintext).await?;
        self.flush().await
    }

    /// Queues the close_notify alert and writes it.
    pub async fn send_close_notify(&mut self) -> io::Result<()> {
        self.session.borrow_mut().send_close_notify();
        self.flush().await
    }
}
