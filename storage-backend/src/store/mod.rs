//! The filesystem store: blobs, manifests, tags, referrers. Synchronous; callers on an async runtime use
//! [`crate::blocking`] for anything that may touch much data.
//!
//! Nothing here caches mutable state in memory: the files are the truth, so `ocigate registry gc` and
//! several server processes can work on one root.

mod blobs;
mod catalog;
mod manifests;

use std::io;
use std::path::Path;

use crate::fsio;
use crate::layout::Layout;

pub use manifests::{NewManifest, StoredManifest};

/// A registry's content on disk.
#[derive(Debug)]
pub struct Store {
    layout: Layout,
}

impl Store {
    /// Opens (and if needed creates) a storage root, checking that it is writable.
    pub fn open(root: &Path) -> io::Result<Store> {
        let layout = Layout::new(root);
        for dir in [layout.blobs_dir(), layout.repositories_dir(), layout.uploads_dir()] {
            fsio::ensure_dir(&dir).map_err(|e| annotate(e, "cannot create", &dir))?;
        }
        // Prove the root is writable now rather than on the first push.
        let probe = layout.uploads_dir().join(format!("{}{}", fsio::TMP_PREFIX, fsio::random_hex()));
        std::fs::write(&probe, b"").map_err(|e| annotate(e, "cannot write to", &probe))?;
        std::fs::remove_file(&probe)?;
        Ok(Store { layout })
    }

    /// Opens an existing storage root without creating or writing anything.
    pub fn existing(root: &Path) -> io::Result<Store> {
        let layout = Layout::new(root);
        if !layout.repositories_dir().is_dir() || !layout.blobs_dir().is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is not a registry storage root (no blobs/ and repositories/ in it)",
                    root.display()
                ),
            ));
        }
        Ok(Store { layout })
    }

    /// The storage layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Does the repository exist (hold at least one blob or manifest)?
    pub fn repository_exists(&self, name: &str) -> bool {
        let repo = self.layout.repository(name);
        repo.join("_manifests").is_dir() || repo.join("_layers").is_dir()
    }
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}
