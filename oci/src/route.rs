//! `/v2/` routes of the distribution spec, parsed from the right because repository names contain `/`.
//!
//! | path | route |
//! |---|---|
//! | `/v2/` | [`Route::Base`] |
//! | `/v2/_catalog` | [`Route::Catalog`] |
//! | `/v2/<name>/manifests/<reference>` | [`Route::Manifest`] |
//! | `/v2/<name>/blobs/<digest>` | [`Route::Blob`] |
//! | `/v2/<name>/blobs/uploads/` | [`Route::StartUpload`] |
//! | `/v2/<name>/blobs/uploads/<session>` | [`Route::Upload`] |
//! | `/v2/<name>/tags/list` | [`Route::Tags`] |
//! | `/v2/<name>/referrers/<digest>` | [`Route::Referrers`] |
//!
//! The path is percent-decoded once ([`decode_path`]) before parsing, as Go's `net/http` does for
//! distribution, and then every part is checked against its grammar: `%2e%2e`, `..`, `//` and uppercase
//! letters never make it into a repository name.

use std::borrow::Cow;

use crate::digest::{Digest, DigestError};
use crate::name::{self, NameError};
use crate::reference::{Reference, ReferenceError};

/// Longest accepted upload session id.
pub const MAX_SESSION_LEN: usize = 256;

/// A classified `/v2/` path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`: list repositories.
    Catalog,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository name.
        repository: &'a str,
        /// Tag or digest.
        reference: Reference<'a>,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository name.
        repository: &'a str,
        /// Blob digest.
        digest: Digest<'a>,
    },
    /// `/v2/<name>/blobs/uploads/`: start an upload (or mount).
    StartUpload {
        /// Repository name.
        repository: &'a str,
    },
    /// `/v2/<name>/blobs/uploads/<session>`: an upload in progress.
    Upload {
        /// Repository name.
        repository: &'a str,
        /// Opaque session id.
        session: &'a str,
    },
    /// `/v2/<name>/tags/list`.
    Tags {
        /// Repository name.
        repository: &'a str,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository name.
        repository: &'a str,
        /// Subject digest.
        digest: Digest<'a>,
    },
}

impl<'a> Route<'a> {
    /// The repository this route addresses; `None` for the base and the catalog.
    pub fn repository(&self) -> Option<&'a str> {
        match *self {
            Route::Base | Route::Catalog => None,
            Route::Manifest { repository, .. }
            | Route::Blob { repository, .. }
            | Route::StartUpload { repository }
            | Route::Upload { repository, .. }
            | Route::Tags { repository }
            | Route::Referrers { repository, .. } => Some(repository),
        }
    }

    /// A stable name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::StartUpload { .. } => "start_upload",
            Route::Upload { .. } => "upload",
            Route::Tags { .. } => "tags",
            Route::Referrers { .. } => "referrers",
        }
    }
}

/// Why a path is not a valid `/v2/` route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Not under `/v2/` at all.
    NotV2,
    /// Under `/v2/` but not the shape of any endpoint.
    Unknown,
    /// Bad percent-encoding, or it decodes to something that is not UTF-8.
    Encoding,
    /// The repository name breaks the grammar.
    Name(NameError),
    /// The manifest reference is neither a valid tag nor a valid digest.
    Reference(ReferenceError),
    /// The blob or subject digest is invalid.
    Digest(DigestError),
    /// The upload session id has characters or a length we never hand out.
    Session,
}

impl RouteError {
    /// A short text for error messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteError::NotV2 => "not a registry API path",
            RouteError::Unknown => "no such registry API endpoint",
            RouteError::Encoding => "invalid percent-encoding in path",
            RouteError::Name(e) => e.as_str(),
            RouteError::Reference(e) => e.as_str(),
            RouteError::Digest(e) => e.as_str(),
            RouteError::Session => "invalid upload session id",
        }
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for RouteError {}

/// Percent-decodes a URL path. Borrows when there is nothing to decode.
pub fn decode_path(raw: &str) -> Result<Cow<'_, str>, RouteError> {
    crate::query::percent_decode(raw).ok_or(RouteError::Encoding)
}

/// Classifies a decoded path.
pub fn parse(path: &str) -> Result<Route<'_>, RouteError> {
    if path == "/v2" || path == "/v2/" {
        return Ok(Route::Base);
    }
    let rest = path.strip_prefix("/v2/").ok_or(RouteError::NotV2)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    if let Some(repository) = rest.strip_suffix("/tags/list") {
        return named(repository).map(|repository| Route::Tags { repository });
    }
    if let Some(repository) =
        rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return named(repository).map(|repository| Route::StartUpload { repository });
    }
    let (head, last) = rest.rsplit_once('/').ok_or(RouteError::Unknown)?;
    let (repository, kind) = head.rsplit_once('/').ok_or(RouteError::Unknown)?;
    match kind {
        "manifests" => {
            let repository = named(repository)?;
            let reference = Reference::parse(last).map_err(RouteError::Reference)?;
            Ok(Route::Manifest { repository, reference })
        }
        "blobs" => {
            let repository = named(repository)?;
            let digest = Digest::parse(last).map_err(RouteError::Digest)?;
            Ok(Route::Blob { repository, digest })
        }
        "referrers" => {
            let repository = named(repository)?;
            let digest = Digest::parse(last).map_err(RouteError::Digest)?;
            Ok(Route::Referrers { repository, digest })
        }
        "uploads" => {
            let repository = named(repository.strip_suffix("/blobs").ok_or(RouteError::Unknown)?)?;
            if !valid_session(last) {
                return Err(RouteError::Session);
            }
            Ok(Route::Upload { repository, session: last })
        }
        _ => Err(RouteError::Unknown),
    }
}

fn named(repository: &str) -> Result<&str, RouteError> {
    name::validate(repository).map(|()| repository).map_err(RouteError::Name)
}

fn valid_session(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SESSION_LEN
        && s != "."
        && s != ".."
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'=' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn p(path: &str) -> Result<Route<'_>, RouteError> {
        parse(path)
    }

    macro_rules! route {
        ($name:ident: $p:expr => $pat:pat) => {
            #[test]
            fn $name() {
                let raw: &str = &$p;
                let path = decode_path(raw);
                let r = path.as_ref().map_err(|e| *e).and_then(|path| parse(path));
                assert!(matches!(r, $pat), "{}: {:?}", $p, r);
            }
        };
    }

    route!(base: "/v2/" => Ok(Route::Base));
    route!(base_no_slash: "/v2" => Ok(Route::Base));
    route!(catalog: "/v2/_catalog" => Ok(Route::Catalog));
    route!(nested_manifest: "/v2/a/b/c/manifests/v1" => Ok(Route::Manifest { repository: "a/b/c", reference: Reference::Tag("v1") }));
    route!(manifest_by_digest: format!("/v2/a/manifests/{D}") => Ok(Route::Manifest { repository: "a", reference: Reference::Digest(_) }));
    route!(repo_named_manifests: "/v2/manifests/manifests/manifests/latest" => Ok(Route::Manifest { repository: "manifests/manifests", .. }));
    route!(blob: format!("/v2/x/y/blobs/{D}") => Ok(Route::Blob { repository: "x/y", .. }));
    route!(blob_encoded_colon: "/v2/x/blobs/sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => Ok(Route::Blob { repository: "x", .. }));
    route!(start_upload: "/v2/x/blobs/uploads/" => Ok(Route::StartUpload { repository: "x" }));
    route!(start_upload_no_slash: "/v2/x/blobs/uploads" => Ok(Route::StartUpload { repository: "x" }));
    route!(upload: "/v2/x/y/blobs/uploads/0f1e2d" => Ok(Route::Upload { repository: "x/y", session: "0f1e2d" }));
    route!(repo_named_blobs_uploads: "/v2/blobs/uploads/tags/list" => Ok(Route::Tags { repository: "blobs/uploads" }));
    route!(tags: "/v2/x/tags/list" => Ok(Route::Tags { repository: "x" }));
    route!(referrers: format!("/v2/x/referrers/{D}") => Ok(Route::Referrers { repository: "x", .. }));
    route!(referrers_by_tag: "/v2/x/referrers/latest" => Err(RouteError::Digest(_)));
    route!(upload_without_repo: "/v2/blobs/uploads/" => Err(RouteError::Unknown));
    route!(manifest_without_repo: "/v2/manifests/latest" => Err(RouteError::Unknown));
    route!(dotdot: "/v2/a/../b/manifests/latest" => Err(RouteError::Name(_)));
    route!(encoded_dotdot: "/v2/a/%2e%2e/b/manifests/latest" => Err(RouteError::Name(_)));
    route!(encoded_dotdot_upper: "/v2/%2E%2E/manifests/latest" => Err(RouteError::Name(_)));
    route!(double_slash: "/v2/a//b/manifests/latest" => Err(RouteError::Name(NameError::EmptyComponent)));
    route!(encoded_slash_is_a_slash: "/v2/a%2fb/manifests/latest" => Ok(Route::Manifest { repository: "a/b", .. }));
    route!(uppercase: "/v2/Alpine/manifests/latest" => Err(RouteError::Name(NameError::BadCharacter)));
    route!(bad_encoding: "/v2/a%zz/manifests/latest" => Err(RouteError::Encoding));
    route!(encoded_nul: "/v2/a%00/manifests/latest" => Err(RouteError::Name(_)));
    route!(bad_tag: "/v2/a/manifests/.x" => Err(RouteError::Reference(ReferenceError::Tag)));
    route!(bad_digest: "/v2/a/blobs/sha256:abc" => Err(RouteError::Digest(DigestError::Malformed)));
    route!(trailing_slash: "/v2/a/tags/list/" => Err(RouteError::Unknown));
    route!(unknown_kind: "/v2/a/things/x" => Err(RouteError::Unknown));
    route!(not_v2: "/v3/a/manifests/x" => Err(RouteError::NotV2));
    route!(session_traversal: "/v2/a/blobs/uploads/..%2f..%2fx" => Err(RouteError::Unknown));
    route!(bad_session: "/v2/a/blobs/uploads/a%20b" => Err(RouteError::Session));
    route!(dotdot_session: "/v2/a/blobs/uploads/.." => Err(RouteError::Session));
    route!(catalog_trailing: "/v2/_catalog/" => Err(RouteError::Unknown));

    #[test]
    fn long_name() {
        let path = format!("/v2/{}/tags/list", "a".repeat(256));
        assert_eq!(p(&path), Err(RouteError::Name(NameError::TooLong)));
    }
}
