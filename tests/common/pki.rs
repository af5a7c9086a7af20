//! Test certificates, generated per test into a directory of PEM files: a CA, a server
//! certificate for 127.0.0.1 and localhost, an expired one, one from another CA, and client
//! certificates by common name. Also TLS client configurations that trust a given CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A certificate authority that signs test certificates.
pub struct Authority {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params
            .clone()
            .self_signed(&key)
            .expect("self-sign CA")
            .pem();
        Authority { params, key, pem }
    }

    fn issuer(&self) -> rcgen::Certificate {
        self.params
            .clone()
            .self_signed(&self.key)
            .expect("self-sign CA")
    }

    /// A server certificate for 127.0.0.1 and localhost; `expired` puts its validity in 2001.
    pub fn server(&self, common_name: &str, expired: bool) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        self.sign(params)
    }

    /// A client certificate whose subject's common name is `common_name`.
    pub fn client(&self, common_name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Hare tests");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.issuer(), &self.key)
            .expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A certificate and its key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Issued {
    /// Writes `NAME.pem` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        write_atomically(&cert, &self.cert_pem);
        write_atomically(&key, &self.key_pem);
        (cert, key)
    }
}

/// Writes through a temporary file and a rename, as certificate tools do.
pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).expect("write PEM");
    std::fs::rename(&temporary, path).expect("rename PEM");
}

/// A fresh directory for one test's files.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = super::fresh_data_dir().with_extension(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the certificate directory");
    dir
}

/// A TLS client configuration (ring, TLS 1.2 and 1.3) trusting `ca_pem`, presenting `client`
/// if given.
pub fn client_config(ca_pem: &str, client: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client PEM");
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client certificate")
        }
    };
    Arc::new(config)
}
