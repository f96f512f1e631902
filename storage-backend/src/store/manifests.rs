//! Manifests, tags and referrers of one repository.

use std::io;

use oci::{Digest, DigestBuf, Reference};

use super::Store;
use crate::fsio;
use crate::manifest::Manifest;

/// A manifest as stored: its bytes and the media type it was pushed with.
#[derive(Debug)]
pub struct StoredManifest {
    /// Media type, sent back as `Content-Type`.
    pub media_type: String,
    /// Exact bytes, as pushed.
    pub content: Vec<u8>,
}

/// What a manifest push writes.
#[derive(Debug)]
pub struct NewManifest<'a> {
    /// Digest of `content`.
    pub digest: Digest<'a>,
    /// Media type to serve it with.
    pub media_type: &'a str,
    /// The manifest bytes.
    pub content: &'a [u8],
    /// Tags to point at it.
    pub tags: &'a [&'a str],
    /// Subject and the descriptor (JSON) to list among the subject's referrers.
    pub referrer: Option<(Digest<'a>, &'a [u8])>,
}

impl Store {
    /// The digest a reference names in `repository`: a tag is looked up, a digest is returned as is.
    /// `None` when the tag does not exist.
    pub fn resolve(&self, repository: &str, reference: Reference<'_>) -> io::Result<Option<DigestBuf>> {
        let tag = match reference {
            Reference::Digest(d) => return Ok(Some(d.to_buf())),
            Reference::Tag(t) => t,
        };
        let Some(raw) = fsio::read_optional(&self.layout.tag(repository, tag))? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&raw).map_err(io::Error::other)?;
        DigestBuf::parse(text.trim())
            .map(Some)
            .map_err(|e| io::Error::other(format!("corrupt tag file {repository}:{tag}: {e}")))
    }

    /// The media type of a manifest `repository` holds, without its content.
    pub fn manifest_media_type(&self, repository: &str, digest: Digest<'_>) -> io::Result<Option<String>> {
        let Some(raw) = fsio::read_optional(&self.layout.revision(repository, digest))? else {
            return Ok(None);
        };
        String::from_utf8(raw).map(Some).map_err(io::Error::other)
    }

    /// A manifest `repository` holds: media type and size, without reading the content.
    pub fn manifest_head(&self, repository: &str, digest: Digest<'_>) -> io::Result<Option<(String, u64)>> {
        let Some(media_type) = self.manifest_media_type(repository, digest)? else {
            return Ok(None);
        };
        Ok(fsio::file_size(&self.layout.blob(digest))?.map(|size| (media_type, size)))
    }

    /// A manifest `repository` holds, whole.
    pub fn manifest(&self, repository: &str, digest: Digest<'_>) -> io::Result<Option<StoredManifest>> {
        let Some(media_type) = self.manifest_media_type(repository, digest)? else {
            return Ok(None);
        };
        Ok(fsio::read_optional(&self.layout.blob(digest))?
            .map(|content| StoredManifest { media_type, content }))
    }

    /// Refreshes a stored blob's time so a concurrent garbage collection keeps it. `Ok(false)` when it is
    /// not stored.
    pub fn touch_blob(&self, digest: Digest<'_>) -> io::Result<bool> {
        fsio::touch(&self.layout.blob(digest))
    }

    /// Stores a verified manifest: content, then the repository's revision, referrer entry and tags, each
    /// atomic and durable.
    pub fn put_manifest(&self, repository: &str, m: &NewManifest<'_>) -> io::Result<()> {
        let tmp = self.layout.uploads_dir();
        let blob = self.layout.blob(m.digest);
        if !fsio::touch(&blob)? {
            fsio::write_atomic(&tmp, &blob, m.content)?;
        }
        fsio::write_atomic(
            &tmp,
            &self.layout.revision(repository, m.digest),
            m.media_type.as_bytes(),
        )?;
        if let Some((subject, descriptor)) = m.referrer {
            fsio::write_atomic(
                &tmp,
                &self.layout.referrer(repository, subject, m.digest),
                descriptor,
            )?;
        }
        let target = m.digest.to_string();
        for tag in m.tags {
            fsio::write_atomic(&tmp, &self.layout.tag(repository, tag), target.as_bytes())?;
        }
        Ok(())
    }

    /// Deletes a manifest from `repository`: every tag pointing at it, its referrer entry, then the
    /// revision itself. `Ok(false)` when the repository does not hold it.
    pub fn delete_manifest(&self, repository: &str, digest: Digest<'_>) -> io::Result<bool> {
        let Some(stored) = self.manifest(repository, digest)? else {
            return Ok(false);
        };
        for tag in self.tags(repository)?.unwrap_or_default() {
            let tag_ref = Reference::Tag(&tag);
            if self.resolve(repository, tag_ref)?.is_some_and(|d| d == digest) {
                fsio::remove_optional(&self.layout.tag(repository, &tag))?;
            }
        }
        if let Ok(doc) = Manifest::parse(&stored.content)
            && let Some(subject) = doc.subject_digest()
        {
            fsio::remove_optional(&self.layout.referrer(repository, subject, digest))?;
        }
        fsio::remove_optional(&self.layout.revision(repository, digest))
    }

    /// Removes a tag (the manifest stays). `Ok(false)` when there was no such tag.
    pub fn delete_tag(&self, repository: &str, tag: &str) -> io::Result<bool> {
        fsio::remove_optional(&self.layout.tag(repository, tag))
    }

    /// Tags of `repository`, sorted. `None` when the repository does not exist.
    pub fn tags(&self, repository: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repository_exists(repository) {
            return Ok(None);
        }
        let mut tags = fsio::list_dir(&self.layout.tags_dir(repository))?.unwrap_or_default();
        tags.sort_unstable();
        Ok(Some(tags))
    }

    /// Descriptors (JSON) of the manifests in `repository` whose subject is `subject`, in digest order.
    pub fn referrers(&self, repository: &str, subject: Digest<'_>) -> io::Result<Vec<Vec<u8>>> {
        let dir = self.layout.referrers_dir(repository, subject);
        let mut names = fsio::list_dir(&dir)?.unwrap_or_default();
        names.sort_unstable();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(descriptor) = fsio::read_optional(&dir.join(name))? {
                out.push(descriptor);
            }
        }
        Ok(out)
    }
}
