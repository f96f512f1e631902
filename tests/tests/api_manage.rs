//! Content discovery and management: tags and catalog with paging, referrers with filtering, deletes.

use hyper::Method;
use integration_tests::content::{self, Blob, Image, OCI_INDEX, OCI_MANIFEST};
use integration_tests::{Client, Server};
use serde_json::json;

async fn tag_all(c: &Client, repo: &str, img: &Image, tags: &[&str]) {
    c.push_image(repo, tags[0], img).await;
    for t in &tags[1..] {
        assert_eq!(c.put_manifest(repo, t, &img.manifest).await.status, 201);
    }
}

#[tokio::test]
async fn tags_list_sorted_and_paged() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(30, 1, 100, "amd64");
    tag_all(&c, "t", &img, &["v2", "latest", "A", "v10", "_x", "v1"]).await;

    let r = c.get("/v2/t/tags/list").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"name": "t", "tags": ["A", "_x", "latest", "v1", "v10", "v2"]}));
    assert_eq!(r.header("link"), None);

    let r = c.get("/v2/t/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], json!(["A", "_x"]));
    assert_eq!(r.header("link"), Some(r#"</v2/t/tags/list?n=2&last=_x>; rel="next""#));
    let r = c.get("/v2/t/tags/list?n=2&last=_x").await;
    assert_eq!(r.json()["tags"], json!(["latest", "v1"]));
    let r = c.get("/v2/t/tags/list?n=2&last=v1").await;
    assert_eq!(r.json()["tags"], json!(["v10", "v2"]));
    assert_eq!(r.header("link"), None, "no next page");
    let r = c.get("/v2/t/tags/list?last=v10").await;
    assert_eq!(r.json()["tags"], json!(["v2"]));
    let r = c.get("/v2/t/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], json!([]));
    assert_eq!(r.header("link"), None);
    let r = c.get("/v2/t/tags/list?n=100").await;
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 6);

    let r = c.get("/v2/t/tags/list?n=-1").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "PAGINATION_NUMBER_INVALID"));
    let r = c.get("/v2/nobody/tags/list").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "NAME_UNKNOWN"));
}

#[tokio::test]
async fn catalog_lists_nested_repositories_with_paging() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(31, 1, 100, "amd64");
    for repo in ["b", "a/x", "a", "a/x/y", "c-d", "a.b"] {
        c.push_image(repo, "v1", &img).await;
    }
    // A repository holding only a blob exists too.
    c.push_blob("blobonly", &Blob::new("application/octet-stream", &b"z"[..])).await;
    let r = c.get("/v2/_catalog").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"repositories": ["a", "a.b", "a/x", "a/x/y", "b", "blobonly", "c-d"]}));
    let r = c.get("/v2/_catalog?n=3").await;
    assert_eq!(r.json()["repositories"], json!(["a", "a.b", "a/x"]));
    assert_eq!(r.header("link"), Some(r#"</v2/_catalog?n=3&last=a/x>; rel="next""#));
    let r = c.get("/v2/_catalog?n=3&last=a/x").await;
    assert_eq!(r.json()["repositories"], json!(["a/x/y", "b", "blobonly"]));
    let r = c.get("/v2/_catalog?n=3&last=blobonly").await;
    assert_eq!(r.json()["repositories"], json!(["c-d"]));
    assert_eq!(r.header("link"), None);
}

#[tokio::test]
async fn referrers_listed_filtered_and_empty() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(32, 1, 100, "amd64");
    let empty = content::empty_config();
    let sig = Blob::new("application/vnd.example.sig", &b"signature"[..]);
    let sbom = Blob::new("application/spdx+json", &b"{}sbom"[..]);
    for b in [&empty, &sig, &sbom] {
        c.push_blob("r", b).await;
    }
    // Referrers may be pushed before their subject.
    let a = content::artifact("application/vnd.example.sig", &sig, &img.manifest, "sig");
    let r = c.put_manifest("r", &a.digest, &a).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(img.manifest.digest.as_str()));
    c.push_image("r", "v1", &img).await;
    let b = content::artifact("application/spdx+json", &sbom, &img.manifest, "sbom");
    assert_eq!(
        c.put_manifest("r", &b.digest, &b).await.header("oci-subject"),
        Some(img.manifest.digest.as_str())
    );
    // Artifact type from the config media type when there is no artifactType.
    let cfg_typed = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example.sig", "digest": sig.digest, "size": sig.data.len()},
            "layers": [empty.descriptor()], "subject": img.manifest.descriptor()}),
    );
    assert_eq!(c.put_manifest("r", &cfg_typed.digest, &cfg_typed).await.status, 201);
    // An index with a subject is a referrer too; without artifactType it has none.
    let idx = Blob::json(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [a.descriptor()],
            "subject": img.manifest.descriptor(), "annotations": {"k": "v"}}),
    );
    let r = c.put_manifest("r", &idx.digest, &idx).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(img.manifest.digest.as_str()));

    let r = c.get(&format!("/v2/r/referrers/{}", img.manifest.digest)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(r.header("oci-filters-applied"), None);
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{v}");
    let find = |d: &str| {
        list.iter().find(|m| m["digest"] == d).unwrap_or_else(|| panic!("{d} missing in {v}")).clone()
    };
    assert_eq!(
        find(&a.digest),
        json!({"mediaType": OCI_MANIFEST, "digest": a.digest, "size": a.data.len(),
        "artifactType": "application/vnd.example.sig", "annotations": {"org.example.note": "sig"}})
    );
    assert_eq!(find(&cfg_typed.digest)["artifactType"], "application/vnd.example.sig");
    assert_eq!(
        find(&idx.digest),
        json!({"mediaType": OCI_INDEX, "digest": idx.digest, "size": idx.data.len(),
        "annotations": {"k": "v"}})
    );

    let r = c
        .get(&format!("/v2/r/referrers/{}?artifactType=application%2Fvnd.example.sig", img.manifest.digest))
        .await;
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let v = r.json();
    let mut got: Vec<&str> =
        v["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap()).collect();
    got.sort();
    let mut want = vec![a.digest.as_str(), cfg_typed.digest.as_str()];
    want.sort();
    assert_eq!(got, want);

    // Nothing refers to it (or the repository does not exist): an empty index, never 404.
    for path in [
        format!("/v2/r/referrers/{}", content::sha256(b"hello world")),
        format!("/v2/nope/referrers/{}", img.manifest.digest),
    ] {
        let r = c.get(&path).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(OCI_INDEX));
        assert_eq!(r.json()["manifests"], json!([]));
    }
    let r = c.get("/v2/r/referrers/latest").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));

    // Deleting a referrer removes it from the list.
    assert_eq!(c.delete(&format!("/v2/r/manifests/{}", b.digest)).await.status, 202);
    let v = c.get(&format!("/v2/r/referrers/{}", img.manifest.digest)).await.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn delete_manifest_by_digest_removes_its_tags() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(33, 1, 100, "amd64");
    let other = Image::new(34, 1, 100, "amd64");
    tag_all(&c, "d", &img, &["v1", "latest"]).await;
    c.push_image("d", "keep", &other).await;

    let r = c.delete(&format!("/v2/d/manifests/{}", img.manifest.digest)).await;
    assert_eq!(r.status, 202);
    for reference in ["v1", "latest", img.manifest.digest.as_str()] {
        let r = c.get(&format!("/v2/d/manifests/{reference}")).await;
        assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"), "{reference}");
    }
    assert_eq!(c.get("/v2/d/tags/list").await.json()["tags"], json!(["keep"]));
    let r = c.delete(&format!("/v2/d/manifests/{}", img.manifest.digest)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"));
    // Pushing it again works.
    assert_eq!(c.put_manifest("d", "v1", &img.manifest).await.status, 201);
}

#[tokio::test]
async fn delete_tag_keeps_manifest() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(35, 1, 100, "amd64");
    tag_all(&c, "dt", &img, &["v1"]).await;
    assert_eq!(c.delete("/v2/dt/manifests/v1").await.status, 202);
    assert_eq!(c.get("/v2/dt/manifests/v1").await.status, 404);
    assert_eq!(c.get(&format!("/v2/dt/manifests/{}", img.manifest.digest)).await.status, 200);
    let r = c.delete("/v2/dt/manifests/v1").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"));
    // An emptied repository still lists (no tags), it does not vanish.
    let r = c.get("/v2/dt/tags/list").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"name": "dt", "tags": []}));
}

#[tokio::test]
async fn delete_blob() {
    let reg = Server::registry();
    let c = reg.client();
    let b = Blob::new("application/octet-stream", &b"to delete"[..]);
    c.push_blob("db", &b).await;
    c.push_blob("db2", &b).await;
    let r = c.delete(&format!("/v2/db/blobs/{}", b.digest)).await;
    assert_eq!(r.status, 202);
    let r = c.get(&format!("/v2/db/blobs/{}", b.digest)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
    // Other repositories keep their link.
    assert_eq!(c.get(&format!("/v2/db2/blobs/{}", b.digest)).await.status, 200);
    let r = c.delete(&format!("/v2/db/blobs/{}", b.digest)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = c.request(Method::DELETE, "/v2/db/blobs/sha256:nothex").send().await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
}
