//! Digests: `algorithm ":" encoded`, with the registered algorithms sha256 and sha512.

use std::fmt;

/// A digest algorithm this project can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`: 64 lowercase hex characters.
    Sha256,
    /// `sha512`: 128 lowercase hex characters.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The algorithm's name as written in a digest.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(&self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parses an algorithm name; `None` when it is not one we support.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Why a string is not a digest we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Does not match the digest grammar, or the encoded part is wrong for the algorithm.
    Malformed,
    /// Well formed, but the algorithm is neither sha256 nor sha512.
    UnsupportedAlgorithm,
}

impl DigestError {
    /// A short text for error messages and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DigestError::Malformed => "malformed digest",
            DigestError::UnsupportedAlgorithm => "unsupported digest algorithm (use sha256 or sha512)",
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for DigestError {}

/// A validated digest borrowing its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest<'a> {
    algorithm: Algorithm,
    hex: &'a str,
}

impl<'a> Digest<'a> {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase hex only).
    pub fn parse(s: &'a str) -> Result<Digest<'a>, DigestError> {
        let (alg, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if !valid_algorithm_grammar(alg) || !valid_encoded_grammar(encoded) {
            return Err(DigestError::Malformed);
        }
        let algorithm = Algorithm::from_name(alg).ok_or(DigestError::UnsupportedAlgorithm)?;
        if encoded.len() != algorithm.hex_len() || !encoded.bytes().all(is_lower_hex) {
            return Err(DigestError::Malformed);
        }
        Ok(Digest { algorithm, hex: encoded })
    }

    /// Builds a digest from an algorithm and its hex value, checking the hex.
    pub fn from_parts(algorithm: Algorithm, hex: &'a str) -> Result<Digest<'a>, DigestError> {
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(is_lower_hex) {
            return Err(DigestError::Malformed);
        }
        Ok(Digest { algorithm, hex })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value.
    pub fn hex(&self) -> &'a str {
        self.hex
    }

    /// An owned copy.
    pub fn to_buf(&self) -> DigestBuf {
        DigestBuf { algorithm: self.algorithm, hex: self.hex.to_owned() }
    }
}

impl fmt::Display for Digest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// An owned, validated digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DigestBuf {
    algorithm: Algorithm,
    hex: String,
}

impl DigestBuf {
    /// Builds a digest from raw hash output.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> DigestBuf {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(hash.len() * 2);
        for b in hash {
            hex.push(HEX[usize::from(b >> 4)] as char);
            hex.push(HEX[usize::from(b & 0xf)] as char);
        }
        DigestBuf { algorithm, hex }
    }

    /// Parses and copies.
    pub fn parse(s: &str) -> Result<DigestBuf, DigestError> {
        Digest::parse(s).map(|d| d.to_buf())
    }

    /// A borrowed view.
    pub fn as_digest(&self) -> Digest<'_> {
        Digest { algorithm: self.algorithm, hex: &self.hex }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for DigestBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_digest().fmt(f)
    }
}

impl PartialEq<Digest<'_>> for DigestBuf {
    fn eq(&self, other: &Digest<'_>) -> bool {
        self.as_digest() == *other
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `[a-z0-9]+([+._-][a-z0-9]+)*`
fn valid_algorithm_grammar(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    b.windows(2).all(|w| alnum(w[0]) || alnum(w[1])) && b.iter().all(|&c| alnum(c) || b"+._-".contains(&c))
}

/// `[a-zA-Z0-9=_-]+`
fn valid_encoded_grammar(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256_and_sha512() {
        let d = Digest::parse(SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), SHA256);
        let hex512 = "a".repeat(128);
        let s = format!("sha512:{hex512}");
        assert_eq!(Digest::parse(&s).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:../../../../etc/passwd",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256+:abc",
        ] {
            assert_eq!(Digest::parse(bad), Err(DigestError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn well_formed_unknown_algorithm_is_unsupported() {
        assert_eq!(Digest::parse("blake3:abcd"), Err(DigestError::UnsupportedAlgorithm));
        assert_eq!(
            Digest::parse("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"),
            Err(DigestError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn from_hash_encodes_lowercase_hex() {
        let d = DigestBuf::from_hash(Algorithm::Sha256, &[0xab; 32]);
        assert_eq!(d.hex(), "ab".repeat(32));
    }
}
