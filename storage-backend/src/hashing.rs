//! Incremental digests.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use oci::{Algorithm, DigestBuf};
use sha2::{Digest as _, Sha256, Sha512};

/// A running hash in one of the supported algorithms.
#[derive(Clone, Debug)]
pub enum Hasher {
    /// sha256
    Sha256(Sha256),
    /// sha512
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> DigestBuf {
        match self {
            Hasher::Sha256(h) => DigestBuf::from_hash(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => DigestBuf::from_hash(Algorithm::Sha512, &h.finalize()),
        }
    }
}

/// Digest of a byte slice.
pub fn digest_bytes(algorithm: Algorithm, data: &[u8]) -> DigestBuf {
    let mut h = Hasher::new(algorithm);
    h.update(data);
    h.finish()
}

/// Digest of a file's contents, read in large chunks. Blocking.
pub fn digest_file(algorithm: Algorithm, path: &Path) -> io::Result<DigestBuf> {
    let mut f = File::open(path)?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(
            digest_bytes(Algorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_bytes(Algorithm::Sha256, b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(digest_bytes(Algorithm::Sha512, b"").to_string().starts_with("sha512:cf83e1357eefb8bd"));
    }
}
