//! What the management API shows of a TLS connection, in RabbitMQ's words
//! (`ssl_protocol`, `ssl_key_exchange`, `ssl_cipher`, `ssl_hash`, as Erlang's
//! `ssl:connection_information` names them): `tlsv1.3`, `aes_256_gcm`, `sha384` ...

use rustls::{CipherSuite, ProtocolVersion, ServerConnection};

/// The negotiated protocol and cipher suite of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub protocol: &'static str,
    /// `any` for TLS 1.3, whose suites leave the key exchange to the handshake.
    pub key_exchange: &'static str,
    pub cipher: &'static str,
    pub hash: &'static str,
}

/// The session's parameters once its handshake is done; None before.
pub fn session_info(session: &ServerConnection) -> Option<SessionInfo> {
    let protocol = match session.protocol_version()? {
        ProtocolVersion::TLSv1_3 => "tlsv1.3",
        ProtocolVersion::TLSv1_2 => "tlsv1.2",
        _ => "unknown",
    };
    let (key_exchange, cipher, hash) = suite_parts(session.negotiated_cipher_suite()?.suite());
    Some(SessionInfo {
        protocol,
        key_exchange,
        cipher,
        hash,
    })
}

/// Key exchange, cipher and hash of the suites ring offers.
fn suite_parts(suite: CipherSuite) -> (&'static str, &'static str, &'static str) {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => ("any", "aes_128_gcm", "sha256"),
        CipherSuite::TLS13_AES_256_GCM_SHA384 => ("any", "aes_256_gcm", "sha384"),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => ("any", "chacha20_poly1305", "sha256"),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ecdhe_ecdsa", "aes_128_gcm", "sha256")
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ecdhe_ecdsa", "aes_256_gcm", "sha384")
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ecdhe_ecdsa", "chacha20_poly1305", "sha256")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
            ("ecdhe_rsa", "aes_128_gcm", "sha256")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
            ("ecdhe_rsa", "aes_256_gcm", "sha384")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ecdhe_rsa", "chacha20_poly1305", "sha256")
        }
        _ => ("unknown", "unknown", "unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ring_suite_has_names() {
        for suite in rustls::crypto::ring::DEFAULT_CIPHER_SUITES {
            let (key_exchange, cipher, hash) = suite_parts(suite.suite());
            assert_ne!(key_exchange, "unknown", "{:?}", suite.suite());
            assert_ne!(cipher, "unknown", "{:?}", suite.suite());
            assert_ne!(hash, "unknown", "{:?}", suite.suite());
        }
    }
}
