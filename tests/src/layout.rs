//! OCI image layouts on disk (what `skopeo copy oci:DIR:TAG` reads and writes).

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::content::Blob;

/// Writes an OCI image layout: every blob under `blobs/sha256/`, and `index.json` naming each manifest
/// with its tag (`org.opencontainers.image.ref.name`).
pub fn write(dir: &Path, blobs: &[&Blob], refs: &[(&str, &Blob)]) {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).expect("layout dir");
    for b in blobs.iter().copied().chain(refs.iter().map(|(_, m)| *m)) {
        fs::write(blob_dir.join(b.hex()), &b.data).expect("write blob");
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let manifests: Vec<Value> = refs
        .iter()
        .map(|(tag, m)| {
            let mut d = m.descriptor();
            d["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
            d
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": crate::content::OCI_INDEX, "manifests": manifests });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index.json");
}

/// The digest `index.json` of a layout gives for `tag`.
pub fn digest_of(dir: &Path, tag: &str) -> Option<String> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).ok()?).ok()?;
    index["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str().map(str::to_owned))
}

/// The bytes of a blob in a layout.
pub fn blob(dir: &Path, digest: &str) -> Option<Vec<u8>> {
    fs::read(dir.join("blobs/sha256").join(digest.strip_prefix("sha256:")?)).ok()
}
