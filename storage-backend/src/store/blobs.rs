//! Blobs: content-addressed files shared by every repository, reachable through per-repository links.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use oci::Digest;

use super::Store;
use crate::fsio;

impl Store {
    /// Does `repository` hold `digest` (as a blob or as a manifest)?
    pub fn holds(&self, repository: &str, digest: Digest<'_>) -> bool {
        self.layout.layer_link(repository, digest).is_file()
            || self.layout.revision(repository, digest).is_file()
    }

    /// Size of a blob that `repository` holds. `None` when the repository does not hold it.
    pub fn blob_size(&self, repository: &str, digest: Digest<'_>) -> io::Result<Option<u64>> {
        if !self.holds(repository, digest) {
            return Ok(None);
        }
        fsio::file_size(&self.layout.blob(digest))
    }

    /// Opens a blob that `repository` holds, with its size.
    pub fn open_blob(&self, repository: &str, digest: Digest<'_>) -> io::Result<Option<(File, u64)>> {
        if !self.holds(repository, digest) {
            return Ok(None);
        }
        match File::open(self.layout.blob(digest)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if fsio::not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Links an existing blob into `repository` (a cross-repository mount). `Ok(false)` when the blob is
    /// not stored at all.
    pub fn link_blob(&self, repository: &str, digest: Digest<'_>) -> io::Result<bool> {
        if !fsio::touch(&self.layout.blob(digest))? {
            return Ok(false);
        }
        fsio::create_marker(&self.layout.layer_link(repository, digest))?;
        Ok(true)
    }

    /// Removes `repository`'s link to a blob, durably. `Ok(false)` when it had none. The content stays
    /// until garbage collection finds nothing referencing it.
    pub fn unlink_blob(&self, repository: &str, digest: Digest<'_>) -> io::Result<bool> {
        fsio::remove_durable(&self.layout.layer_link(repository, digest))
    }

    /// Moves verified upload data (a file hashing to `digest`) into the content store and links it into
    /// `repository`.
    pub fn commit_blob(&self, data: &Path, repository: &str, digest: Digest<'_>) -> io::Result<()> {
        let target = self.layout.blob(digest);
        let size = std::fs::metadata(data)?.len();
        if fsio::touch(&target)? && fsio::file_size(&target)? == Some(size) {
            // Same content already stored (by any repository): keep it, drop ours. (A stored file of
            // another size cannot be this content: it is replaced.)
            fsio::remove_optional(data)?;
        } else {
            let f = File::options().append(true).open(data)?;
            // Fresh time: a garbage collection running now must not take it for an old orphan.
            f.set_modified(SystemTime::now())?;
            f.sync_all()?;
            fsio::rename_durable(data, &target)?;
        }
        fsio::create_marker(&self.layout.layer_link(repository, digest))
    }
}
