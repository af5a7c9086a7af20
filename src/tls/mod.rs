//! TLS for the AMQPS listener and the HTTP listeners: rustls on the ring provider, TLS 1.2 and
//! 1.3 only, from PEM files (docs/operations.md, TLS). A leaf like `protocol`: it knows
//! sockets and certificates, nothing of AMQP or the shards.
//!
//! - `TlsContext` (here) holds the settings and the current `rustls::ServerConfig`; every
//!   shard shares it through `Config::tls`, and each TLS accept takes the config current at
//!   that moment, so a reload (`reload.rs`) changes new connections only.
//! - `stream.rs` runs the server handshake on a glommio socket and splits the session into a
//!   reading and a writing half that share it on one thread.
//! - `cert_name.rs` reads the common name out of a client certificate's subject for the
//!   `EXTERNAL` mechanism; `session_info.rs` names a session's protocol and cipher suite as
//!   RabbitMQ's management API does.

pub mod cert_name;
pub mod reload;
pub mod session_info;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// Where the certificate files are and how client certificates are treated (RabbitMQ's
/// `ssl_options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain, leaf first (`certfile`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 or SEC1 (`keyfile`).
    pub key: PathBuf,
    /// CA bundle client certificates are verified against (`cacertfile`).
    pub ca: Option<PathBuf>,
    /// Ask clients for a certificate and verify it if they send one (`verify_peer`).
    pub verify_peer: bool,
    /// With `verify_peer`: refuse clients that send none (`fail_if_no_peer_cert`).
    pub fail_if_no_peer_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "--tls-verify-peer needs --tls-ca (the CA bundle client certificates are checked against)"
    )]
    VerifyPeerWithoutCa,
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The TLS settings and the server configuration built from them, shared by every shard.
pub struct TlsContext {
    settings: TlsSettings,
    current: Mutex<Arc<ServerConfig>>,
    /// Modification times of the files the current config was built from (`reload.rs`).
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsContext")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Reads the files and builds the server configuration; an error names the file.
    pub fn load(settings: TlsSettings) -> Result<TlsContext, TlsError> {
        let stamps = file_stamps(&settings);
        let config = build_server_config(&settings)?;
        Ok(TlsContext {
            settings,
            current: Mutex::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration a connection accepted now uses.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        match self.current.lock() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, config: ServerConfig) {
        let mut current = match self.current.lock() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Arc::new(config);
    }
}

/// The files' modification times (None for one that cannot be read now).
fn file_stamps(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    [
        Some(&settings.cert),
        Some(&settings.key),
        settings.ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    .collect()
}

/// Builds a rustls server configuration from the PEM files: TLS 1.3 and 1.2, ring's cipher
/// suites, and a client certificate verifier when `verify_peer` is set.
pub fn build_server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .map_err(|error| file_error(&settings.key, pem_reason(&error, "private key")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder = if settings.verify_peer {
        let ca = settings.ca.as_ref().ok_or(TlsError::VerifyPeerWithoutCa)?;
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots
                .add(cert)
                .map_err(|error| file_error(ca, format!("not a usable CA certificate: {error}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if settings.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|error| file_error(ca, format!("client verifier: {error}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(certs, key).map_err(|error| {
        file_error(
            &settings.key,
            format!(
                "does not fit the certificate in {}: {error}",
                settings.cert.display()
            ),
        )
    })
}

/// Every certificate in a PEM file; an error if there is none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, pem_reason(&error, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, pem_reason(&error, "certificate")))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn pem_reason(error: &rustls::pki_types::pem::Error, what: &str) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(error) => error.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        other => format!("not a PEM {what}: {other:?}"),
    }
}
