//! `Stream`: what a connection reads and writes, the TCP socket or TLS over it (`amqps://`).
//! The hot loops call it through `Read`/`Write` like the socket; a plain stream is the socket
//! itself behind one `match`, so plain runs cost what they did before TLS existed.
//!
//! A TLS stream may be cloned for a second thread (the producer's confirm reader). The clones
//! share the rustls session behind a mutex, held only to move bytes in or out of it, never
//! during a socket read or write, so a writer blocked on a full socket cannot stop the reader
//! that would drain it. A second mutex orders writes: records are taken from the session and
//! written to the socket under it, so they reach the wire in the order they were sealed. Only
//! writers write: records the session queues while reading (none in practice: the broker sends
//! no TLS 1.3 key updates) go out with the next write.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Ciphertext read from the socket per call at most: a few TLS records.
const CIPHERTEXT_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(TlsStream),
}

/// One handle on a TLS session over a socket.
pub struct TlsStream {
    socket: TcpStream,
    session: Arc<Mutex<ClientConnection>>,
    write_order: Arc<Mutex<()>>,
    /// Ciphertext read from the socket (allocated at the first read: a writing handle never
    /// needs it); `pending[start..end]` is what the session did not take yet.
    pending: Vec<u8>,
    start: usize,
    end: usize,
    /// Records sealed for the socket, reused between writes.
    sealed: Vec<u8>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsStream")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl Stream {
    /// Runs the TLS handshake on `socket` for `host` (its certificate must name it).
    pub fn tls(mut socket: TcpStream, config: Arc<ClientConfig>, host: &str) -> io::Result<Stream> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let mut session = ClientConnection::new(config, name).map_err(tls_error)?;
        while session.is_handshaking() {
            session.complete_io(&mut socket)?;
        }
        // The session tickets TLS 1.3 servers send after the handshake wait in the socket;
        // the first read takes them in.
        Ok(Stream::Tls(TlsStream {
            socket,
            session: Arc::new(Mutex::new(session)),
            write_order: Arc::new(Mutex::new(())),
            pending: Vec::new(),
            start: 0,
            end: 0,
            sealed: Vec::new(),
        }))
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &tls.socket,
        }
    }

    /// A second handle on the same connection, for another thread.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Plain(socket) => Stream::Plain(socket.try_clone()?),
            Stream::Tls(tls) => Stream::Tls(TlsStream {
                socket: tls.socket.try_clone()?,
                session: Arc::clone(&tls.session),
                write_order: Arc::clone(&tls.write_order),
                pending: Vec::new(),
                start: 0,
                end: 0,
                sealed: Vec::new(),
            }),
        })
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket().shutdown(how)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket().set_nodelay(nodelay)
    }
}

impl Read for Stream {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(into),
            Stream::Tls(tls) => tls.read(into),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(bytes),
            Stream::Tls(tls) => {
                tls.write_all_sealed(bytes)?;
                Ok(bytes.len())
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.write_all(bytes),
            Stream::Tls(tls) => tls.write_all_sealed(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(_) => Ok(()),
        }
    }
}

impl TlsStream {
    /// Plaintext the session holds, after giving it the ciphertext this handle has, as much
    /// as fits in `into`; None if the socket must be read first. Some(0): close_notify.
    fn take_plaintext(&mut self, into: &mut [u8]) -> io::Result<Option<usize>> {
        let mut session = lock(&self.session);
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
            let mut pending = &self.pending[self.start..self.end];
            let taken = session.read_tls(&mut pending)?;
            if taken == 0 {
                return Err(io::Error::other("TLS session takes no more input"));
            }
            self.start += taken;
            session.process_new_packets().map_err(tls_error)?;
        }
    }

    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        if into.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(read) = self.take_plaintext(into)? {
                return Ok(read);
            }
            if self.pending.is_empty() {
                self.pending = vec![0; CIPHERTEXT_CHUNK_BYTES];
            }
            let read = self.socket.read(&mut self.pending)?;
            if read == 0 {
                return Ok(0);
            }
            self.start = 0;
            self.end = read;
        }
    }

    fn write_all_sealed(&mut self, mut plaintext: &[u8]) -> io::Result<()> {
        let _order = lock(&self.write_order);
        self.sealed.clear();
        {
            let mut session = lock(&self.session);
            loop {
                let accepted = session.writer().write(plaintext)?;
                plaintext = &plaintext[accepted..];
                while session.wants_write() {
                    session.write_tls(&mut self.sealed)?;
                }
                if plaintext.is_empty() {
                    break;
                }
            }
        }
        self.socket.write_all(&self.sealed)
    }
}
