//! `ocigate registry gc`: removes exactly the blobs no manifest references, leaves the rest pullable,
//! and is safe beside a running registry with pushes in progress.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::Method;
use integration_tests::content::{self, Blob, Image};
use integration_tests::{Server, bin, tools};

/// Makes every stored blob look two hours old (older than the default grace period of an hour), as if
/// pushed long before the collection.
fn age_blobs(root: &Path) {
    fn walk(dir: &Path) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path());
            } else {
                let f = std::fs::File::options().append(true).open(e.path()).unwrap();
                f.set_modified(SystemTime::now() - Duration::from_secs(7200)).unwrap();
            }
        }
    }
    walk(&root.join("blobs"));
    walk(&root.join("repositories"));
}

fn gc(root: &Path, args: &[&str]) -> String {
    tools::run(Command::new(bin::ocigate()).args(["registry", "gc", "--root"]).arg(root).args(args))
}

fn blob_file(root: &Path, b: &Blob) -> std::path::PathBuf {
    root.join("blobs/sha256").join(&b.hex()[..2]).join(b.hex())
}

#[tokio::test]
async fn removes_unreferenced_blobs_only() {
    let reg = Server::registry();
    let c = reg.client();
    let root = reg.root().to_path_buf();
    let kept = Image::new(1, 2, 5000, "amd64");
    let dropped = Image::new(2, 2, 5000, "amd64");
    let orphan = Blob::new("application/octet-stream", &b"orphan"[..]);
    let untagged = Image::new(3, 1, 100, "amd64");
    c.push_image("app", "v1", &kept).await;
    c.push_image("app", "old", &dropped).await;
    c.push_image("app", "tmp", &untagged).await;
    assert_eq!(c.delete("/v2/app/manifests/tmp").await.status, 202); // tag gone, manifest kept by digest
    assert_eq!(c.push_blob("scratch", &orphan).await.status, 201);
    assert_eq!(c.delete(&format!("/v2/app/manifests/{}", dropped.manifest.digest)).await.status, 202);
    age_blobs(&root);

    let out = gc(&root, &["--dry-run"]);
    assert!(out.contains("would remove 5 unreferenced blobs"), "{out}");
    for b in dropped.blobs().into_iter().chain([&orphan]) {
        assert!(out.contains(&b.digest), "{} not listed: {out}", b.digest);
        assert!(blob_file(&root, b).exists(), "dry run removed {}", b.digest);
    }

    let out = gc(&root, &[]);
    assert!(out.contains("removed 5 unreferenced blobs"), "{out}");
    for b in dropped.blobs().into_iter().chain([&orphan]) {
        assert!(!blob_file(&root, b).exists(), "{} still stored", b.digest);
    }
    // What remains is whole and pullable, the untagged manifest included.
    for img in [&kept, &untagged] {
        let m = c.get(&format!("/v2/app/manifests/{}", img.manifest.digest)).await;
        assert_eq!(m.body, img.manifest.data);
        for b in img.blobs() {
            assert_eq!(c.get(&format!("/v2/app/blobs/{}", b.digest)).await.status, 200, "{}", b.digest);
        }
    }
    assert_eq!(c.head(&format!("/v2/scratch/blobs/{}", orphan.digest)).await.status, 404);
    assert!(
        !root.join("repositories/scratch/_layers/sha256").join(orphan.hex()).exists(),
        "stale link removed"
    );
    // Pushing removed content again works.
    assert_eq!(c.push_blob("scratch", &orphan).await.status, 201);
    assert_eq!(c.get(&format!("/v2/scratch/blobs/{}", orphan.digest)).await.body, orphan.data);
    // A second run finds nothing old to remove; the blob pushed again just now is in its grace period.
    let out = gc(&root, &[]);
    assert!(out.contains("removed 0 unreferenced blobs"), "{out}");
    assert!(out.contains("kept 1 unreferenced blobs younger than the grace period (1h)"), "{out}");
}

#[tokio::test]
async fn keeps_what_pushes_in_progress_depend_on() {
    let reg = Server::registry();
    let c = reg.client();
    let root = reg.root().to_path_buf();
    let img = Image::new(4, 2, 5000, "amd64");
    // Blobs pushed long ago but not yet referenced (the manifest comes later).
    for b in [&img.config, &img.layers[0]] {
        assert_eq!(c.push_blob("wip", b).await.status, 201);
    }
    age_blobs(&root);
    // An upload in progress, and a blob pushed just now.
    let start = c.post("/v2/wip/blobs/uploads/").await;
    let loc = start.location();
    let half = img.layers[1].data.slice(..2000);
    assert_eq!(
        c.request(Method::PATCH, &loc).header("content-range", "0-1999").body(half).send().await.status,
        202
    );
    let fresh = Blob::new("application/octet-stream", content::pseudo_random(9, 100));
    assert_eq!(c.push_blob("wip", &fresh).await.status, 201);

    // A mount touches the old blob: a collection running now keeps it.
    let r = c.post(&format!("/v2/other/blobs/uploads/?mount={}&from=wip", img.config.digest)).await;
    assert_eq!(r.status, 201);
    let out = gc(&root, &[]);
    assert!(out.contains("kept 2 unreferenced blobs younger"), "{out}");
    assert!(out.contains("removed 1 unreferenced blobs"), "only the untouched old layer goes: {out}");
    assert!(blob_file(&root, &fresh).exists());
    assert!(blob_file(&root, &img.config).exists());

    // The upload in progress completes after the collection.
    let rest = img.layers[1].data.slice(2000..);
    let range = format!("2000-{}", img.layers[1].data.len() - 1);
    let r = c.request(Method::PATCH, &loc).header("content-range", &range).body(rest).send().await;
    assert_eq!(r.status, 202);
    let r = c
        .request(Method::PUT, &format!("{loc}?digest={}", img.layers[1].digest))
        .body(Bytes::new())
        .send()
        .await;
    assert_eq!(r.status, 201);
    // The collected layer is refused in a manifest until it is pushed again.
    let r = c.put_manifest("wip", "v1", &img.manifest).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    assert_eq!(c.push_blob("wip", &img.layers[0]).await.status, 201);
    assert_eq!(c.put_manifest("wip", "v1", &img.manifest).await.status, 201);
}

#[test]
fn gc_refuses_a_folder_that_is_not_a_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("typo");
    let out = Command::new(bin::ocigate()).args(["registry", "gc", "--root"]).arg(&typo).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a registry storage root") && err.contains(&*typo.to_string_lossy()),
        "{err}"
    );
    assert!(!typo.exists(), "gc must not create a root");
}

#[tokio::test]
async fn grace_period_protects_fresh_blobs_unless_zero() {
    let reg = Server::registry();
    let c = reg.client();
    let root = reg.root().to_path_buf();
    let orphan = Blob::new("application/octet-stream", &b"pushed a moment ago"[..]);
    assert_eq!(c.push_blob("fresh", &orphan).await.status, 201);
    let out = gc(&root, &[]);
    assert!(out.contains("removed 0 unreferenced blobs") && out.contains("kept 1"), "{out}");
    assert!(blob_file(&root, &orphan).exists());
    std::thread::sleep(Duration::from_millis(200)); // past the collector's clock margin
    let out = gc(&root, &["--grace", "0s"]);
    assert!(out.contains("removed 1 unreferenced blobs"), "{out}");
    assert!(!blob_file(&root, &orphan).exists());
    assert_eq!(c.head(&format!("/v2/fresh/blobs/{}", orphan.digest)).await.status, 404);
}

#[tokio::test]
async fn blobs_left_aside_by_a_killed_collection_are_put_back() {
    let reg = Server::registry();
    let c = reg.client();
    let root = reg.root().to_path_buf();
    let img = Image::new(5, 1, 1000, "amd64");
    c.push_image("aside", "v1", &img).await;
    // A collection killed between moving a (referenced) blob aside and putting it back.
    let layer = blob_file(&root, &img.layers[0]);
    let aside = layer.with_file_name(format!(".gc-{}", img.layers[0].hex()));
    std::fs::rename(&layer, &aside).unwrap();
    assert_eq!(c.get(&format!("/v2/aside/blobs/{}", img.layers[0].digest)).await.status, 404);
    let out = gc(&root, &[]);
    assert!(out.contains("put back 1 blobs"), "{out}");
    assert!(!aside.exists());
    assert_eq!(c.get(&format!("/v2/aside/blobs/{}", img.layers[0].digest)).await.body, img.layers[0].data);
}
