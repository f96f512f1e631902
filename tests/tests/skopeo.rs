//! skopeo (Debian's package) pushes and pulls through the bundled registry: a multi-layer image, an image
//! index with `--all`, and an artifact whose subject is the image. Digests must survive the round trip.

use std::path::Path;
use std::process::Command;

use integration_tests::content::{self, Blob, Image};
use integration_tests::{Server, layout, tools};

fn skopeo_copy(from: &str, to: &str, extra: &[&str]) {
    tools::run(
        Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .args(extra)
            .args([from, to]),
    );
}

fn inspect_digest(image: &str) -> String {
    let out = tools::run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", image]));
    content::sha256(out.as_bytes())
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[tokio::test]
async fn multi_layer_image_round_trips() {
    if !tools::available("skopeo") {
        return;
    }
    let reg = Server::registry();
    let tmp = tempfile::tempdir().unwrap();
    let img = Image::new(1, 3, 300_000, "amd64");
    let src = tmp.path().join("src");
    layout::write(
        &src,
        &[&img.config, &img.layers[0], &img.layers[1], &img.layers[2]],
        &[("v1", &img.manifest)],
    );

    let remote = format!("docker://{}/team/app:v1", reg.host());
    skopeo_copy(&oci(&src, "v1"), &remote, &[]);

    // The registry serves exactly the pushed manifest, under the tag and by digest.
    let c = reg.client();
    let m = c.get("/v2/team/app/manifests/v1").await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body, img.manifest.data);
    assert_eq!(m.header("docker-content-digest"), Some(img.manifest.digest.as_str()));
    assert_eq!(inspect_digest(&remote), img.manifest.digest);

    let dst = tmp.path().join("dst");
    skopeo_copy(&remote, &oci(&dst, "copy"), &[]);
    assert_eq!(layout::digest_of(&dst, "copy").as_deref(), Some(img.manifest.digest.as_str()));
    for b in img.blobs() {
        assert_eq!(layout::blob(&dst, &b.digest).as_deref(), Some(&b.data[..]), "blob {}", b.digest);
    }
}

#[tokio::test]
async fn image_index_round_trips_with_all() {
    if !tools::available("skopeo") {
        return;
    }
    let reg = Server::registry();
    let tmp = tempfile::tempdir().unwrap();
    let amd = Image::new(2, 2, 50_000, "amd64");
    let arm = Image::new(3, 2, 50_000, "arm64");
    let idx = content::index(&[(&amd, "amd64"), (&arm, "arm64")]);
    let src = tmp.path().join("src");
    let blobs: Vec<&Blob> = amd.blobs().into_iter().chain(arm.blobs()).collect();
    layout::write(&src, &blobs, &[("multi", &idx)]);

    let remote = format!("docker://{}/multi/arch:latest", reg.host());
    skopeo_copy(&oci(&src, "multi"), &remote, &["--all"]);
    assert_eq!(inspect_digest(&remote), idx.digest);
    let c = reg.client();
    for img in [&amd, &arm] {
        let r = c.head(&format!("/v2/multi/arch/manifests/{}", img.manifest.digest)).await;
        assert_eq!(r.status, 200, "child manifest pushed");
    }

    let dst = tmp.path().join("dst");
    skopeo_copy(&remote, &oci(&dst, "back"), &["--all"]);
    assert_eq!(layout::digest_of(&dst, "back").as_deref(), Some(idx.digest.as_str()));
    for b in &blobs {
        assert_eq!(layout::blob(&dst, &b.digest).as_deref(), Some(&b.data[..]), "blob {}", b.digest);
    }
}

#[tokio::test]
async fn artifact_with_subject_is_listed_as_referrer() {
    if !tools::available("skopeo") {
        return;
    }
    let reg = Server::registry();
    let tmp = tempfile::tempdir().unwrap();
    let img = Image::new(4, 1, 10_000, "amd64");
    let sbom = Blob::new("application/spdx+json", &br#"{"spdxVersion":"SPDX-2.3"}"#[..]);
    let art = content::artifact("application/spdx+json", &sbom, &img.manifest, "sbom");
    let empty = content::empty_config();
    let src = tmp.path().join("src");
    let blobs: Vec<&Blob> = img.blobs().into_iter().chain([&sbom, &empty]).collect();
    layout::write(&src, &blobs, &[("img", &img.manifest), ("sbom", &art)]);

    skopeo_copy(&oci(&src, "img"), &format!("docker://{}/app:1.0", reg.host()), &[]);
    let remote_art = format!("docker://{}/app:sbom", reg.host());
    skopeo_copy(&oci(&src, "sbom"), &remote_art, &[]);
    assert_eq!(inspect_digest(&remote_art), art.digest);

    let refs = reg.client().get(&format!("/v2/app/referrers/{}", img.manifest.digest)).await;
    assert_eq!(refs.status, 200);
    assert_eq!(refs.header("content-type"), Some(content::OCI_INDEX));
    let v = refs.json();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["digest"], art.digest.as_str());
    assert_eq!(list[0]["artifactType"], "application/spdx+json");
    assert_eq!(list[0]["annotations"]["org.example.note"], "sbom");

    let dst = tmp.path().join("dst");
    skopeo_copy(&format!("docker://{}/app@{}", reg.host(), art.digest), &oci(&dst, "sbom"), &[]);
    assert_eq!(layout::digest_of(&dst, "sbom").as_deref(), Some(art.digest.as_str()));
    assert_eq!(layout::blob(&dst, &sbom.digest).as_deref(), Some(&sbom.data[..]));
}
