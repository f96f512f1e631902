//! Test content made in the test: gzip-compressed tar layers, image configs, manifests, indexes, artifacts.

use std::io::Write;

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::http::{Client, Resp};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The empty JSON descriptor's media type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Content with its media type and digest.
#[derive(Clone, Debug)]
pub struct Blob {
    /// Media type its descriptor carries.
    pub media_type: String,
    /// Bytes.
    pub data: Bytes,
    /// `sha256:<hex>`
    pub digest: String,
}

impl Blob {
    /// Wraps bytes.
    pub fn new(media_type: &str, data: impl Into<Bytes>) -> Blob {
        let data = data.into();
        Blob { media_type: media_type.to_owned(), digest: sha256(&data), data }
    }

    /// JSON content.
    pub fn json(media_type: &str, v: &Value) -> Blob {
        Blob::new(media_type, serde_json::to_vec(v).expect("json"))
    }

    /// Its descriptor.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.data.len() })
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        &self.digest["sha256:".len()..]
    }
}

/// A tar archive holding one regular file.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// A gzip-compressed tar layer with one file of `size` pseudo-random bytes, and the digest of the
/// uncompressed tar (its diff id).
pub fn layer(seed: u64, size: usize) -> (Blob, String) {
    let tar = tar_with_file(&format!("file-{seed}.bin"), &pseudo_random(seed, size));
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    (Blob::new(OCI_LAYER_GZIP, gz.finish().expect("gzip")), diff_id)
}

/// An image: config, layers, manifest.
#[derive(Clone, Debug)]
pub struct Image {
    /// Config blob.
    pub config: Blob,
    /// Layer blobs.
    pub layers: Vec<Blob>,
    /// Manifest.
    pub manifest: Blob,
}

impl Image {
    /// An image for `linux/<arch>` with `n` layers of about `size` bytes each.
    pub fn new(seed: u64, n: usize, size: usize, arch: &str) -> Image {
        let (layers, diff_ids): (Vec<_>, Vec<_>) =
            (0..n).map(|i| layer(seed * 1000 + i as u64, size)).unzip();
        let config = Blob::json(
            OCI_CONFIG,
            &json!({
                "architecture": arch, "os": "linux",
                "config": { "Env": [format!("SEED={seed}")] },
                "rootfs": { "type": "layers", "diff_ids": diff_ids },
            }),
        );
        let manifest = Blob::json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
            }),
        );
        Image { config, layers, manifest }
    }

    /// Every blob of the image, manifest last.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config];
        v.extend(self.layers.iter());
        v.push(&self.manifest);
        v
    }
}

/// An image index over `images`, each with its platform.
pub fn index(images: &[(&Image, &str)]) -> Blob {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(img, arch)| {
            let mut d = img.manifest.descriptor();
            d["platform"] = json!({ "architecture": arch, "os": "linux" });
            d
        })
        .collect();
    Blob::json(OCI_INDEX, &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }))
}

/// The empty JSON blob `{}`.
pub fn empty_config() -> Blob {
    Blob::new(OCI_EMPTY, &b"{}"[..])
}

/// An artifact manifest (OCI 1.1 style: `artifactType`, empty config, one payload layer) whose subject is
/// `subject`.
pub fn artifact(artifact_type: &str, payload: &Blob, subject: &Blob, annotation: &str) -> Blob {
    Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty_config().descriptor(),
            "layers": [payload.descriptor()],
            "subject": subject.descriptor(),
            "annotations": { "org.example.note": annotation },
        }),
    )
}

impl Client {
    /// Pushes a blob with `POST` then one `PUT` (expects 201).
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Resp {
        let start = self.post(&format!("/v2/{repo}/blobs/uploads/")).await;
        assert_eq!(start.status, 202, "start upload: {}", start.text());
        let loc = start.location();
        let sep = if loc.contains('?') { '&' } else { '?' };
        self.request(hyper::Method::PUT, &format!("{loc}{sep}digest={}", blob.digest))
            .header("content-type", "application/octet-stream")
            .body(blob.data.clone())
            .send()
            .await
    }

    /// Pushes a manifest under `reference` with its media type.
    pub async fn put_manifest(&self, repo: &str, reference: &str, manifest: &Blob) -> Resp {
        self.request(hyper::Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", &manifest.media_type)
            .body(manifest.data.clone())
            .send()
            .await
    }

    /// Pushes an image's blobs and its manifest under `tag`, asserting each step.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) {
        for b in [&image.config].into_iter().chain(image.layers.iter()) {
            let r = self.push_blob(repo, b).await;
            assert_eq!(r.status, 201, "push blob: {}", r.text());
        }
        let r = self.put_manifest(repo, tag, &image.manifest).await;
        assert_eq!(r.status, 201, "push manifest: {}", r.text());
    }
}
