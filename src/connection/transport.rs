//! What a connection reads from and writes to: the plain socket, or a TLS session over it
//! (`crate::tls::stream`). Each half is an enum matched once per read or write, so a plain
//! connection reads and writes its glommio stream directly, with no extra copy or allocation.
//!
//! For both kinds the accepted descriptor is duplicated: the reader (the connection task)
//! owns one stream and the writer task the other. A TLS connection's halves also share its
//! rustls session on the shard thread.

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::shard::Shard;
use crate::tls::session_info::{session_info, SessionInfo};
use crate::tls::stream::{TlsReader, TlsWriter};

/// The reading half.
pub enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsReader),
}

impl ReadHalf {
    pub async fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(stream) => stream.read(into).await,
            ReadHalf::Tls(reader) => reader.read(into).await,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        match self {
            ReadHalf::Plain(stream) => stream.as_raw_fd(),
            ReadHalf::Tls(reader) => reader.stream().as_raw_fd(),
        }
    }
}

/// The writing half.
pub enum WriteHalf {
    Plain(TcpStream),
    Tls(TlsWriter),
}

impl WriteHalf {
    /// Writes all of `bytes` to the socket (for TLS: encrypted, with every record sent).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            WriteHalf::Plain(stream) => stream.write_all(bytes).await,
            WriteHalf::Tls(writer) => writer.write_all_flushed(bytes).await,
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(stream) => stream.flush().await,
            WriteHalf::Tls(writer) => writer.flush().await,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        match self {
            WriteHalf::Plain(stream) => stream.as_raw_fd(),
            WriteHalf::Tls(writer) => writer.stream().as_raw_fd(),
        }
    }
}

/// A verified client certificate, for the `EXTERNAL` mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's common name (`crate::tls::cert_name`), None if it has none.
    pub common_name: Option<String>,
}

/// An accepted socket ready for the AMQP handshake.
pub struct Transport {
    pub reader: ReadHalf,
    pub writer: WriteHalf,
    /// Set when a TLS client presented a certificate the broker verified.
    pub peer_certificate: Option<PeerCertificate>,
    /// The TLS session's protocol and cipher suite, for the management API.
    pub tls: Option<SessionInfo>,
}

/// Why an accepted socket could not become a transport; the socket is gone.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot duplicate the socket: {0}")]
    Duplicate(io::Error),
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    #[error("TLS handshake timed out")]
    TlsTimeout,
    #[error("an AMQPS listener without TLS settings")]
    NoTlsSettings,
}

/// The plain transport: the socket and its duplicate.
pub fn plain(stream: TcpStream) -> Result<Transport, TransportError> {
    let writer = duplicate(&stream)?;
    Ok(Transport {
        reader: ReadHalf::Plain(stream),
        writer: WriteHalf::Plain(writer),
        peer_certificate: None,
        tls: None,
    })
}

/// Runs the TLS handshake, by `deadline`, with the configuration current now, then splits
/// the session between the socket and its duplicate.
pub async fn tls(
    shard: &Shard,
    mut stream: TcpStream,
    deadline: Instant,
) -> Result<Transport, TransportError> {
    let config = shard
        .config
        .tls
        .as_ref()
        .ok_or(TransportError::NoTlsSettings)?
        .server_config();
    let handshake = async { Some(crate::tls::stream::accept(config, &mut stream).await) };
    let timeout = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    let session = match futures_lite::future::or(handshake, timeout).await {
        Some(Ok(session)) => session,
        Some(Err(error)) => return Err(TransportError::Tls(error)),
        None => return Err(TransportError::TlsTimeout),
    };
    let peer_certificate = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| PeerCertificate {
            common_name: crate::tls::cert_name::common_name(leaf),
        });
    let tls = session_info(&session);
    let writer = duplicate(&stream)?;
    let session = Rc::new(std::cell::RefCell::new(session));
    Ok(Transport {
        reader: ReadHalf::Tls(TlsReader::new(stream, session.clone())),
        writer: WriteHalf::Tls(TlsWriter::new(writer, session)),
        peer_certificate,
        tls,
    })
}

/// The writer task's duplicate of the socket; tells the descriptor watch whether the process
/// ran out of descriptors.
fn duplicate(stream: &TcpStream) -> Result<TcpStream, TransportError> {
    match crate::tls::stream::duplicate_socket(stream) {
        Ok(writer) => {
            crate::shard::descriptors::descriptors_available();
            Ok(writer)
        }
        Err(error) => {
            if !crate::shard::descriptors::out_of_descriptors(&error) {
                tracing::warn!(%error, "cannot duplicate socket");
            }
            Err(TransportError::Duplicate(error))
        }
    }
}
