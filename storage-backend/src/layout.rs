//! Where everything lives under the storage root. One tree, documented here:
//!
//! ```text
//! <root>/
//!   blobs/<alg>/<hex[..2]>/<hex>                          content, shared by every repository
//!   repositories/<name>/
//!     _layers/<alg>/<hex>                                 empty file: the repository holds this blob
//!     _manifests/revisions/<alg>/<hex>                    the manifest's media type: the repository holds it
//!     _manifests/tags/<tag>                               "<alg>:<hex>" of the tagged manifest
//!     _referrers/<alg>/<subject-hex>/<alg>-<hex>          descriptor (JSON) of a manifest whose subject it is
//!   uploads/<session>/repository                          the repository the session belongs to
//!   uploads/<session>/data                                bytes received so far
//!   uploads/.tmp-<random>                                 a file being written; renamed into place when whole
//! ```
//! Repository components always start with `[a-z0-9]` (see [`oci::name`]), so `_layers`, `_manifests`
//! and `_referrers` can never collide with a nested repository. Tags never start with `.`.

use std::path::{Path, PathBuf};

use oci::{Algorithm, Digest};

/// Path computations for one storage root.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/`
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `blobs/<alg>/<hex[..2]>/<hex>`
    pub fn blob(&self, d: Digest<'_>) -> PathBuf {
        let mut p = self.root.join("blobs");
        p.push(d.algorithm().as_str());
        p.push(&d.hex()[..2]);
        p.push(d.hex());
        p
    }

    /// `repositories/`
    pub fn repositories_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }

    /// `repositories/<name>`
    pub fn repository(&self, name: &str) -> PathBuf {
        let mut p = self.root.join("repositories");
        p.push(name);
        p
    }

    /// `repositories/<name>/_layers/<alg>/<hex>`
    pub fn layer_link(&self, name: &str, d: Digest<'_>) -> PathBuf {
        let mut p = self.repository(name);
        p.push("_layers");
        p.push(d.algorithm().as_str());
        p.push(d.hex());
        p
    }

    /// `repositories/<name>/_manifests/revisions/<alg>/<hex>`
    pub fn revision(&self, name: &str, d: Digest<'_>) -> PathBuf {
        let mut p = self.revisions_dir(name, d.algorithm());
        p.push(d.hex());
        p
    }

    /// `repositories/<name>/_manifests/revisions/<alg>`
    pub fn revisions_dir(&self, name: &str, alg: Algorithm) -> PathBuf {
        let mut p = self.repository(name);
        p.push("_manifests/revisions");
        p.push(alg.as_str());
        p
    }

    /// `repositories/<name>/_manifests/tags`
    pub fn tags_dir(&self, name: &str) -> PathBuf {
        let mut p = self.repository(name);
        p.push("_manifests/tags");
        p
    }

    /// `repositories/<name>/_manifests/tags/<tag>`
    pub fn tag(&self, name: &str, tag: &str) -> PathBuf {
        let mut p = self.tags_dir(name);
        p.push(tag);
        p
    }

    /// `repositories/<name>/_referrers/<alg>/<subject-hex>`
    pub fn referrers_dir(&self, name: &str, subject: Digest<'_>) -> PathBuf {
        let mut p = self.repository(name);
        p.push("_referrers");
        p.push(subject.algorithm().as_str());
        p.push(subject.hex());
        p
    }

    /// `repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>`
    pub fn referrer(&self, name: &str, subject: Digest<'_>, referrer: Digest<'_>) -> PathBuf {
        let mut p = self.referrers_dir(name, subject);
        p.push(format!("{}-{}", referrer.algorithm().as_str(), referrer.hex()));
        p
    }

    /// `uploads/`
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// `uploads/<session>`
    pub fn upload(&self, session: &str) -> PathBuf {
        let mut p = self.uploads_dir();
        p.push(session);
        p
    }
}

/// Is this a directory entry of the repository tree that names a nested repository component (rather than
/// one of the registry's own `_` folders)?
pub fn is_repository_component(name: &str) -> bool {
    name.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = Layout::new("/r");
        let d =
            Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
        assert_eq!(
            l.blob(d),
            Path::new("/r/blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(l.tag("a/b", "v1"), Path::new("/r/repositories/a/b/_manifests/tags/v1"));
        assert_eq!(l.layer_link("a", d).parent().unwrap(), Path::new("/r/repositories/a/_layers/sha256"));
        assert!(l.referrer("a", d, d).ends_with(format!("sha256-{}", d.hex())));
    }
}
