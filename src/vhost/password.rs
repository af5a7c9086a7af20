//! Password hashes in the format RabbitMQ stores and exports, so that users imported from a
//! RabbitMQ definitions file keep their passwords: `base64(salt ++ digest(salt ++ password))`
//! with a 4-byte random salt. The password itself is never kept.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Bytes of salt in front of the digest (RabbitMQ's `rabbit_password`).
const SALT_SIZE_BYTES: usize = 4;

/// The digest a hash was made with, by RabbitMQ's module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HashingAlgorithm {
    #[default]
    #[serde(rename = "rabbit_password_hashing_sha256")]
    Sha256,
    #[serde(rename = "rabbit_password_hashing_sha512")]
    Sha512,
    #[serde(rename = "rabbit_password_hashing_md5")]
    Md5,
}

impl HashingAlgorithm {
    /// The algorithm RabbitMQ names `name`; None for an unknown name.
    pub fn from_name(name: &str) -> Option<HashingAlgorithm> {
        match name {
            "rabbit_password_hashing_sha256" => Some(HashingAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Some(HashingAlgorithm::Sha512),
            "rabbit_password_hashing_md5" => Some(HashingAlgorithm::Md5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashingAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => {
                let mut hasher = sha2::Sha256::new();
                hasher.update(salt);
                hasher.update(password);
                hasher.finalize().to_vec()
            }
            HashingAlgorithm::Sha512 => {
                let mut hasher = sha2::Sha512::new();
                hasher.update(salt);
                hasher.update(password);
                hasher.finalize().to_vec()
            }
            HashingAlgorithm::Md5 => {
                let mut hasher = md5::Md5::new();
                hasher.update(salt);
                hasher.update(password);
                hasher.finalize().to_vec()
            }
        }
    }
}

/// A new salted hash of `password`, base64 as RabbitMQ exports it.
pub fn hash_password(algorithm: HashingAlgorithm, password: &[u8]) -> String {
    let salt: [u8; SALT_SIZE_BYTES] = std::array::from_fn(|_| fastrand::u8(..));
    let mut stored = salt.to_vec();
    stored.extend_from_slice(&algorithm.digest(&salt, password));
    BASE64.encode(stored)
}

/// True if `password_hash` is a well-formed hash for `algorithm` (an empty hash is too: it
/// means the user cannot log in with a password).
pub fn is_valid_hash(algorithm: HashingAlgorithm, password_hash: &str) -> bool {
    if password_hash.is_empty() {
        return true;
    }
    let digest_size = algorithm.digest(&[], &[]).len();
    BASE64
        .decode(password_hash)
        .is_ok_and(|stored| stored.len() == SALT_SIZE_BYTES + digest_size)
}

/// True if `password` matches the stored hash. An empty or malformed hash matches nothing.
pub fn check_password(algorithm: HashingAlgorithm, password_hash: &str, password: &[u8]) -> bool {
    let Ok(stored) = BASE64.decode(password_hash) else {
        return false;
    };
    if stored.len() <= SALT_SIZE_BYTES {
        return false;
    }
    let (salt, digest) = stored.split_at(SALT_SIZE_BYTES);
    let computed = algorithm.digest(salt, password);
    // Compare every byte, so the time taken does not tell how much of a guess was right.
    computed.len() == digest.len()
        && computed
            .iter()
            .zip(digest)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_its_own_password_only() {
        for algorithm in [
            HashingAlgorithm::Sha256,
            HashingAlgorithm::Sha512,
            HashingAlgorithm::Md5,
        ] {
            let hash = hash_password(algorithm, b"s3cret");
            assert!(is_valid_hash(algorithm, &hash));
            assert!(check_password(algorithm, &hash, b"s3cret"));
            assert!(!check_password(algorithm, &hash, b"s3cre"));
            assert!(!check_password(algorithm, &hash, b""));
        }
    }

    #[test]
    fn hashes_exported_by_rabbitmq_check() {
        // The hash RabbitMQ 3.10 exported for guest/guest (GET /api/users).
        let hash = "xpPOStYmwX6ubdVww2O7PMMkZyzexxSxU6M8/m2HktI7XkwJ";
        assert!(is_valid_hash(HashingAlgorithm::Sha256, hash));
        assert!(check_password(HashingAlgorithm::Sha256, hash, b"guest"));
        assert!(!check_password(HashingAlgorithm::Sha256, hash, b"guest2"));
        assert!(!check_password(HashingAlgorithm::Sha512, hash, b"guest"));
    }

    #[test]
    fn empty_and_malformed_hashes_match_nothing() {
        assert!(!check_password(HashingAlgorithm::Sha256, "", b""));
        assert!(!check_password(HashingAlgorithm::Sha256, "!!", b""));
        assert!(!check_password(HashingAlgorithm::Sha256, "AAAA", b""));
        assert!(!is_valid_hash(HashingAlgorithm::Sha256, "AAAA"));
        assert!(is_valid_hash(HashingAlgorithm::Sha256, ""));
    }
}
