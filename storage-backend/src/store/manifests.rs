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
    /// Every blob and child manifest it references (already checked to be held by the repository).
    pub references: &'a [Digest<'a>],
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

    /// Stores a verified manifest: content, then the repository's revision, referrer entry and tags, each
    /// atomic and durable.
    ///
    /// Afterwards every referenced blob is touched again. A garbage collection that started before the
    /// revision became visible may have judged a blob unreferenced; the touch either keeps it (its time is
    /// now past the collection's cutoff) or finds it gone, in which case the push is undone (tags restored,
    /// new revision and referrer entry removed) and the missing digest returned: the manifest is refused
    /// rather than stored with a hole in it.
    pub fn put_manifest(&self, repository: &str, m: &NewManifest<'_>) -> io::Result<Result<(), DigestBuf>> {
        let tmp = self.layout.uploads_dir();
        let blob = self.layout.blob(m.digest);
        let revision = self.layout.revision(repository, m.digest);
        let referrer =
            m.referrer.map(|(subject, d)| (self.layout.referrer(repository, subject, m.digest), d));
        let had_revision = revision.is_file();
        let had_referrer = referrer.as_ref().is_some_and(|(p, _)| p.is_file());
        let mut previous_tags = Vec::with_capacity(m.tags.len());
        for tag in m.tags {
            previous_tags.push((*tag, fsio::read_optional(&self.layout.tag(repository, tag))?));
        }

        if !(fsio::touch(&blob)? && fsio::file_size(&blob)? == Some(m.content.len() as u64)) {
            fsio::write_atomic(&tmp, &blob, m.content)?;
        }
        fsio::write_atomic(&tmp, &revision, m.media_type.as_bytes())?;
        if let Some((path, descriptor)) = &referrer {
            fsio::write_atomic(&tmp, path, descriptor)?;
        }
        let target = m.digest.to_string();
        for tag in m.tags {
            fsio::write_atomic(&tmp, &self.layout.tag(repository, tag), target.as_bytes())?;
        }

        let Some(missing) = self.first_missing(m.references.iter().copied().chain([m.digest]))? else {
            return Ok(Ok(()));
        };
        for (tag, previous) in previous_tags {
            let path = self.layout.tag(repository, tag);
            match previous {
                Some(old) => fsio::write_atomic(&tmp, &path, &old)?,
                None => {
                    fsio::remove_durable(&path)?;
                }
            }
        }
        if let Some((path, _)) = referrer.filter(|_| !had_referrer) {
            fsio::remove_durable(&path)?;
        }
        if !had_revision {
            fsio::remove_durable(&revision)?;
        }
        Ok(Err(missing))
    }

    /// Touches each blob; the first one that is not stored (any more).
    fn first_missing<'d>(&self, digests: impl Iterator<Item = Digest<'d>>) -> io::Result<Option<DigestBuf>> {
        for d in digests {
            if !fsio::touch(&self.layout.blob(d))? {
                return Ok(Some(d.to_buf()));
            }
        }
        Ok(None)
    }

    /// Deletes a manifest from `repository`: every tag pointing at it, its referrer entry, then the
    /// revision itself, each durably. `Ok(false)` when the repository does not hold it.
    pub fn delete_manifest(&self, repository: &str, digest: Digest<'_>) -> io::Result<bool> {
        let revision = self.layout.revision(repository, digest);
        if !revision.is_file() {
            return Ok(false);
        }
        for tag in self.tags(repository)?.unwrap_or_default() {
            let tag_ref = Reference::Tag(&tag);
            if self.resolve(repository, tag_ref)?.is_some_and(|d| d == digest) {
                fsio::remove_durable(&self.layout.tag(repository, &tag))?;
            }
        }
        // The content tells which subject lists it; without content (damaged store) there is nothing to
        // parse, and the revision still goes.
        if let Some(content) = fsio::read_optional(&self.layout.blob(digest))?
            && let Ok(doc) = Manifest::parse(&content)
            && let Some(subject) = doc.subject_digest()
        {
            fsio::remove_durable(&self.layout.referrer(repository, subject, digest))?;
        }
        fsio::remove_durable(&revision)
    }

    /// Removes a tag durably (the manifest stays). `Ok(false)` when there was no such tag.
    pub fn delete_tag(&self, repository: &str, tag: &str) -> io::Result<bool> {
        fsio::remove_durable(&self.layout.tag(repository, tag))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::digest_bytes;
    use oci::Algorithm;

    #[test]
    fn a_push_whose_blob_vanished_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = br#"{"old":true}"#;
        let old_digest = digest_bytes(Algorithm::Sha256, old);
        let put = |content: &[u8], references: &[Digest<'_>]| {
            let digest = digest_bytes(Algorithm::Sha256, content);
            let m = NewManifest {
                digest: digest.as_digest(),
                media_type: "application/json",
                content,
                tags: &["v1"],
                referrer: None,
                references,
            };
            store.put_manifest("repo", &m).unwrap()
        };
        assert_eq!(put(old, &[]), Ok(()));

        // The new manifest references a blob that is not stored (as if a collection removed it).
        let gone = digest_bytes(Algorithm::Sha256, b"gone");
        let new = br#"{"new":true}"#;
        assert_eq!(put(new, &[gone.as_digest()]), Err(gone.clone()));
        // The tag points where it pointed before, and the new revision is not there.
        let tag = store.resolve("repo", Reference::Tag("v1")).unwrap();
        assert_eq!(tag, Some(old_digest));
        let new_digest = digest_bytes(Algorithm::Sha256, new);
        assert!(store.manifest_media_type("repo", new_digest.as_digest()).unwrap().is_none());
    }
}
