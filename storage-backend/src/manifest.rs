//! Manifest documents: just enough structure to validate them and find what they reference.

use std::collections::BTreeMap;

use oci::Digest;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed and unsigned), which this registry refuses.
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// A content descriptor.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Alternate locations (non-distributable layers).
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Content that clients fetch from elsewhere and registries need not hold (foreign layers).
    pub fn is_non_distributable(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains(".nondistributable.")
            || self.media_type.contains(".foreign.")
    }
}

/// The parts of an image manifest, an image index or an artifact manifest the registry needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Must be 2 when given.
    pub schema_version: Option<u32>,
    /// The manifest's own media type.
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    pub artifact_type: Option<String>,
    /// Configuration blob of an image manifest.
    pub config: Option<Descriptor>,
    /// Layers of an image manifest.
    pub layers: Option<Vec<Descriptor>>,
    /// Children of an image index.
    pub manifests: Option<Vec<Descriptor>>,
    /// Blobs of an (older) artifact manifest.
    pub blobs: Option<Vec<Descriptor>>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Present only in Docker schema 1 manifests.
    #[serde(rename = "fsLayers")]
    pub fs_layers: Option<IgnoredAny>,
}

/// What a descriptor in a manifest points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// A blob the repository must hold.
    Blob,
    /// A manifest the repository must hold.
    Manifest,
}

impl Manifest {
    /// Parses a manifest document.
    pub fn parse(content: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(content)
    }

    /// Every descriptor whose content the repository must hold, with its kind (not the subject, which
    /// may be pushed later, and not non-distributable layers).
    pub fn references(&self) -> impl Iterator<Item = (&Descriptor, RefKind)> {
        let blobs = self.config.iter().chain(self.layers.iter().flatten()).chain(self.blobs.iter().flatten());
        blobs
            .filter(|d| !d.is_non_distributable())
            .map(|d| (d, RefKind::Blob))
            .chain(self.manifests.iter().flatten().map(|d| (d, RefKind::Manifest)))
    }

    /// The subject's digest, if there is a valid one.
    pub fn subject_digest(&self) -> Option<Digest<'_>> {
        self.subject.as_ref().and_then(|s| Digest::parse(&s.digest).ok())
    }

    /// The artifact type to show in a referrers list: `artifactType`, else the config's media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref().or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"c","digest":"sha256:aa","size":1},
          "layers":[{"mediaType":"l","digest":"sha256:bb","size":2},
                    {"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"sha256:cc","size":3}],
          "subject":{"mediaType":"m","digest":"sha256:dd","size":4}}"#;
        let m = Manifest::parse(doc).unwrap();
        let refs: Vec<_> = m.references().map(|(d, k)| (d.digest.as_str(), k)).collect();
        assert_eq!(refs, [("sha256:aa", RefKind::Blob), ("sha256:bb", RefKind::Blob)]);
        assert_eq!(m.effective_artifact_type(), Some("c"));
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(Manifest::parse(br#"{"layers": {}}"#).is_err());
        assert!(Manifest::parse(br#"{"config": {"digest": "x"}}"#).is_err());
        assert!(Manifest::parse(br#"{"annotations": {"a": 1}}"#).is_err());
        assert!(Manifest::parse(b"[]").is_err());
        assert!(Manifest::parse(b"not json").is_err());
    }
}
