//! Manifest references: a tag or a digest.

use crate::digest::{Digest, DigestError};

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// A manifest reference from a URL path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference<'a> {
    /// A tag, matching `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    Tag(&'a str),
    /// A digest.
    Digest(Digest<'a>),
}

/// Why a reference is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceError {
    /// Not a valid tag (and no `:`, so not meant as a digest).
    Tag,
    /// Meant as a digest (it has a `:`) but not a valid one.
    Digest(DigestError),
}

impl ReferenceError {
    /// A short text for error messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReferenceError::Tag => "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
            ReferenceError::Digest(e) => e.as_str(),
        }
    }
}

impl std::fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ReferenceError {}

impl<'a> Reference<'a> {
    /// A reference with a `:` is a digest; anything else must be a tag.
    pub fn parse(s: &'a str) -> Result<Reference<'a>, ReferenceError> {
        if s.contains(':') {
            return Digest::parse(s).map(Reference::Digest).map_err(ReferenceError::Digest);
        }
        if is_valid_tag(s) { Ok(Reference::Tag(s)) } else { Err(ReferenceError::Tag) }
    }

    /// The tag, if this is one.
    pub fn tag(&self) -> Option<&'a str> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }

    /// The digest, if this is one.
    pub fn digest(&self) -> Option<Digest<'a>> {
        match self {
            Reference::Tag(_) => None,
            Reference::Digest(d) => Some(*d),
        }
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn is_valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", "sha256-abc"] {
            assert_eq!(Reference::parse(ok), Ok(Reference::Tag(ok)));
        }
        assert!(is_valid_tag(&"a".repeat(128)));
        for bad in ["", ".hidden", "-x", "..", "a/b", "a b", "ä"] {
            assert_eq!(Reference::parse(bad), Err(ReferenceError::Tag), "{bad:?}");
        }
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse(d), Ok(Reference::Digest(_))));
        assert_eq!(Reference::parse("sha256:xyz"), Err(ReferenceError::Digest(DigestError::Malformed)));
    }
}
