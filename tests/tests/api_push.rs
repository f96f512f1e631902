//! Push endpoints: monolithic, single-request, chunked and streamed uploads, status, cancel, cross-repository
//! mounts, and manifest pushes with their validation.

use bytes::Bytes;
use hyper::Method;
use integration_tests::content::{self, Blob, Image, OCI_INDEX, OCI_MANIFEST};
use integration_tests::{Client, Server};
use serde_json::json;

fn blob(seed: u64, len: usize) -> Blob {
    Blob::new("application/octet-stream", content::pseudo_random(seed, len))
}

async fn start(c: &Client, repo: &str) -> String {
    let r = c.post(&format!("/v2/{repo}/blobs/uploads/")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("range"), Some("0-0"));
    let loc = r.location();
    assert!(loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")), "{loc}");
    assert_eq!(Some(loc.rsplit('/').next().unwrap()), r.header("docker-upload-uuid"));
    loc
}

async fn assert_blob(c: &Client, repo: &str, b: &Blob) {
    let r = c.get(&format!("/v2/{repo}/blobs/{}", b.digest)).await;
    assert_eq!(r.status, 200, "blob {} in {repo}", b.digest);
    assert_eq!(r.body, b.data);
}

#[tokio::test]
async fn monolithic_post_then_put() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(1, 10_000);
    let r = c.push_blob("mono", &b).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.location(), format!("/v2/mono/blobs/{}", b.digest));
    assert_eq!(r.header("docker-content-digest"), Some(b.digest.as_str()));
    assert_blob(&c, "mono", &b).await;
    // Pushing the same content again is fine.
    assert_eq!(c.push_blob("mono", &b).await.status, 201);
}

#[tokio::test]
async fn single_request_post_with_digest() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(2, 5000);
    let r = c
        .request(Method::POST, &format!("/v2/single/blobs/uploads/?digest={}", b.digest))
        .header("content-type", "application/octet-stream")
        .body(b.data.clone())
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.location(), format!("/v2/single/blobs/{}", b.digest));
    assert_blob(&c, "single", &b).await;

    // Wrong digest: rejected, nothing stored.
    let wrong = content::sha256(b"other");
    let r = c
        .request(Method::POST, &format!("/v2/single/blobs/uploads/?digest={wrong}"))
        .body(b.data.clone())
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(c.head(&format!("/v2/single/blobs/{wrong}")).await.status, 404);
}

#[tokio::test]
async fn chunked_upload_in_order_with_status_and_416() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(3, 42);
    let (one, two) = (b.data.slice(0..22), b.data.slice(22..));

    // Out of order on a fresh session: 416, and the session survives.
    let loc = start(&c, "chunky").await;
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "22-41")
        .body(two.clone())
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (416, "RANGE_INVALID"));
    assert_eq!(r.header("range"), Some("0-0"));
    assert_eq!(r.location(), loc);

    let r = c.request(Method::PATCH, &loc).header("content-range", "0-21").body(one.clone()).send().await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-21"));
    assert_eq!(r.location(), loc);
    assert_eq!(r.header("content-length"), Some("0"));

    // Resending the first chunk: 416 with the current range.
    let r = c.request(Method::PATCH, &loc).header("content-range", "0-21").body(one.clone()).send().await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("range"), Some("0-21"));

    let r = c.get(&loc).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("range"), Some("0-21"));
    assert_eq!(r.location(), loc);

    let r = c.request(Method::PATCH, &loc).header("content-range", "22-41").body(two.clone()).send().await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range"), Some("0-41"));

    let r = c.request(Method::PUT, &format!("{loc}?digest={}", b.digest)).body(Bytes::new()).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.location(), format!("/v2/chunky/blobs/{}", b.digest));
    assert_blob(&c, "chunky", &b).await;
    // The session is gone.
    let r = c.get(&loc).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
}

#[tokio::test]
async fn chunk_length_must_match_its_range() {
    let reg = Server::registry();
    let c = reg.client();
    let loc = start(&c, "chunky").await;
    let r = c.request(Method::PATCH, &loc).header("content-range", "0-9").body(vec![0u8; 5]).send().await;
    assert_eq!(r.status, 416);
    assert_eq!(c.get(&loc).await.header("range"), Some("0-0"), "nothing appended");
}

#[tokio::test]
async fn final_put_can_carry_the_last_chunk() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(4, 3000);
    let loc = start(&c, "tail").await;
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-range", "0-999")
        .body(b.data.slice(..1000))
        .send()
        .await;
    assert_eq!(r.status, 202);
    let r = c
        .request(Method::PUT, &format!("{loc}?digest={}", b.digest))
        .header("content-range", "1000-2999")
        .body(b.data.slice(1000..))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_blob(&c, "tail", &b).await;
}

#[tokio::test]
async fn streamed_patch_without_length() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(5, 300_000);
    let loc = start(&c, "stream").await;
    let chunks: Vec<Bytes> = b.data.chunks(7_000).map(Bytes::copy_from_slice).collect();
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-type", "application/octet-stream")
        .chunked(chunks)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some(format!("0-{}", b.data.len() - 1).as_str()));
    let loc = r.location();
    // Closing PUT with an empty body, as the conformance suite sends it.
    let r = c
        .request(Method::PUT, &format!("{loc}?digest={}", b.digest))
        .header("content-length", "0")
        .body(Bytes::new())
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_blob(&c, "stream", &b).await;
}

#[tokio::test]
async fn upload_errors() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(6, 100);
    // Completing without a digest.
    let loc = start(&c, "errs").await;
    let r = c.request(Method::PUT, &loc).body(b.data.clone()).send().await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    // A digest that does not match: 400, and the upload is gone with nothing stored.
    let wrong = content::sha256(b"not it");
    let r = c.request(Method::PUT, &format!("{loc}?digest={wrong}")).body(b.data.clone()).send().await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(c.head(&format!("/v2/errs/blobs/{wrong}")).await.status, 404);
    assert_eq!(c.head(&format!("/v2/errs/blobs/{}", b.digest)).await.status, 404);
    assert_eq!(c.get(&loc).await.status, 404);
    // Unknown sessions.
    let r = c.get("/v2/errs/blobs/uploads/00000000-0000-4000-8000-000000000000").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = c.request(Method::PATCH, "/v2/errs/blobs/uploads/not-a-session").body(vec![1u8]).send().await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // A session belongs to its repository.
    let loc = start(&c, "errs").await;
    let id = loc.rsplit('/').next().unwrap();
    let r = c.get(&format!("/v2/elsewhere/blobs/uploads/{id}")).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // Invalid digest parameter.
    let r = c.request(Method::PUT, &format!("{loc}?digest=sha256:xyz")).body(Bytes::new()).send().await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
}

#[tokio::test]
async fn cancel_upload() {
    let reg = Server::registry();
    let c = reg.client();
    let loc = start(&c, "cancel").await;
    assert_eq!(c.request(Method::PATCH, &loc).body(vec![7u8; 10]).send().await.status, 202);
    let r = c.delete(&loc).await;
    assert_eq!(r.status, 204);
    let r = c.get(&loc).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(c.delete(&loc).await.status, 404);
    assert!(std::fs::read_dir(reg.root().join("uploads")).unwrap().next().is_none(), "upload files removed");
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(7, 2048);
    assert_eq!(c.push_blob("src/repo", &b).await.status, 201);

    let r = c.post(&format!("/v2/dst/blobs/uploads/?mount={}&from=src/repo", b.digest)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.location(), format!("/v2/dst/blobs/{}", b.digest));
    assert_eq!(r.header("docker-content-digest"), Some(b.digest.as_str()));
    assert_blob(&c, "dst", &b).await;

    // `from` does not hold it: a normal upload session starts.
    let other = blob(8, 10);
    let r = c.post(&format!("/v2/dst/blobs/uploads/?mount={}&from=src/repo", other.digest)).await;
    assert_eq!(r.status, 202);
    assert!(r.location().starts_with("/v2/dst/blobs/uploads/"));
    // No `from`: never mounted (a blob is only reachable through a repository that holds it).
    let r = c.post(&format!("/v2/third/blobs/uploads/?mount={}", b.digest)).await;
    assert_eq!(r.status, 202);
    assert_eq!(c.head(&format!("/v2/third/blobs/{}", b.digest)).await.status, 404);
    // Bad parameters.
    let r = c.post("/v2/dst/blobs/uploads/?mount=sha256:zz&from=src/repo").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    let r = c.post(&format!("/v2/dst/blobs/uploads/?mount={}&from=../src", b.digest)).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "NAME_INVALID"));
}

#[tokio::test]
async fn manifest_push_by_tag_digest_and_tag_params() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(20, 1, 500, "amd64");
    for b in [&img.config, &img.layers[0]] {
        c.push_blob("m", b).await;
    }
    let r = c.put_manifest("m", "v1", &img.manifest).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.location(), format!("/v2/m/manifests/{}", img.manifest.digest));
    assert_eq!(r.header("docker-content-digest"), Some(img.manifest.digest.as_str()));
    assert_eq!(r.header("oci-subject"), None);

    let r = c.put_manifest("m", &img.manifest.digest, &img.manifest).await;
    assert_eq!(r.status, 201);

    let r = c
        .request(Method::PUT, &format!("/v2/m/manifests/{}?tag=a&tag=b", img.manifest.digest))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.data.clone())
        .send()
        .await;
    assert_eq!(r.status, 201);
    let oci_tags: Vec<&str> = r.headers.get_all("oci-tag").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(oci_tags, ["a", "b"]);
    let tags = c.get("/v2/m/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["a", "b", "v1"]));
}

#[tokio::test]
async fn manifest_push_is_validated() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(21, 1, 500, "amd64");
    let put = |reference: &str, ct: &str, body: Bytes| {
        let c = c.clone();
        let path = format!("/v2/v/manifests/{reference}");
        let ct = ct.to_owned();
        async move { c.request(Method::PUT, &path).header("content-type", &ct).body(body).send().await }
    };
    // Blobs not pushed yet.
    let r = put("v1", OCI_MANIFEST, img.manifest.data.clone()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    for b in [&img.config, &img.layers[0]] {
        c.push_blob("v", b).await;
    }
    // Digest reference that does not match the body.
    let r = put(&content::sha256(b"x"), OCI_MANIFEST, img.manifest.data.clone()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    // Not JSON; wrong shapes.
    let r = put("v1", OCI_MANIFEST, Bytes::from_static(b"blablabla")).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    let r = put(
        "v1",
        OCI_MANIFEST,
        Bytes::from_static(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        ),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    // Content-Type disagrees with mediaType.
    let r = put("v1", OCI_INDEX, img.manifest.data.clone()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    // A descriptor size that lies.
    let mut lying = img.config.descriptor();
    lying["size"] = json!(1);
    let bad = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": lying, "layers": []});
    let r = put("v1", OCI_MANIFEST, serde_json::to_vec(&bad).unwrap().into()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    // Docker schema 1.
    let r = put(
        "v1",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        Bytes::from_static(br#"{"schemaVersion":1,"fsLayers":[]}"#),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    // An index whose child is not in the repository.
    let other = Image::new(22, 1, 10, "arm64");
    let idx = content::index(&[(&img, "amd64"), (&other, "arm64")]);
    assert_eq!(c.put_manifest("v", "v1", &img.manifest).await.status, 201);
    let r = c.put_manifest("v", "multi", &idx).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    // Invalid tags.
    let r = put(".bad", OCI_MANIFEST, img.manifest.data.clone()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    let r = c
        .request(Method::PUT, &format!("/v2/v/manifests/{}?tag=-x", img.manifest.digest))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.data.clone())
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "MANIFEST_INVALID"));
    // Nothing of the failed pushes is visible.
    let tags = c.get("/v2/v/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["v1"]));
}

#[tokio::test]
async fn manifest_size_limit() {
    let reg = Server::registry();
    let c = reg.client();
    let huge = vec![b' '; (4 << 20) + 1];
    let r = c
        .request(Method::PUT, "/v2/big/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .body(huge.clone())
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "SIZE_INVALID"));
    let r = c
        .request(Method::PUT, "/v2/big/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .chunked(huge.chunks(65536).map(Bytes::copy_from_slice).collect())
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "SIZE_INVALID"));
}

#[tokio::test]
async fn sha512_manifest_by_digest() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(23, 1, 100, "amd64");
    for b in [&img.config, &img.layers[0]] {
        c.push_blob("s512", b).await;
    }
    use sha2::{Digest, Sha512};
    let hex: String = Sha512::digest(&img.manifest.data).iter().map(|b| format!("{b:02x}")).collect();
    let d = format!("sha512:{hex}");
    let r = c.put_manifest("s512", &d, &img.manifest).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    let r = c.get(&format!("/v2/s512/manifests/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, img.manifest.data);
}

#[tokio::test]
async fn method_not_allowed_and_unknown_endpoints() {
    let reg = Server::registry();
    let c = reg.client();
    let r = c.request(Method::POST, "/v2/x/manifests/v1").send().await;
    assert_eq!((r.status, r.error_code().as_str()), (405, "UNSUPPORTED"));
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    let r = c.request(Method::PUT, "/v2/").send().await;
    assert_eq!(r.status, 405);
    let r = c.get("/v2/x/unknown/thing").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "UNSUPPORTED"));
    let r = c.get("/metrics").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn rejected_requests_with_large_bodies_still_get_their_answer() {
    let reg = Server::registry();
    let c = reg.client();
    let loc = start(&c, "big").await;
    // The server answers before it could use the body; it reads the rest so the client sees the 416.
    for _ in 0..5 {
        let r = c
            .request(Method::PATCH, &loc)
            .header("content-range", "100-2097251")
            .body(vec![0u8; 2 << 20])
            .send()
            .await;
        assert_eq!((r.status, r.error_code().as_str()), (416, "RANGE_INVALID"));
        let r = c.request(Method::PUT, "/v2/Bad/manifests/v1").body(vec![b'{'; 3 << 20]).send().await;
        assert_eq!((r.status, r.error_code().as_str()), (400, "NAME_INVALID"));
    }
}

#[tokio::test]
async fn zero_byte_blob() {
    let reg = Server::registry();
    let c = reg.client();
    let b = Blob::new("application/octet-stream", Bytes::new());
    assert_eq!(c.push_blob("zero", &b).await.status, 201);
    let r = c.get(&format!("/v2/zero/blobs/{}", b.digest)).await;
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("0"), 0));
    let r = c.head(&format!("/v2/zero/blobs/{}", b.digest)).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

#[tokio::test]
async fn hostile_upload_parameters() {
    let reg = Server::registry();
    let c = reg.client();
    let loc = start(&c, "h").await;
    // A range whose length overflows.
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-range", "0-18446744073709551615")
        .body(vec![1u8])
        .send()
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (416, "RANGE_INVALID"));
    // Session ids this registry never hands out are unknown, whatever their shape or length.
    for id in
        ["a".repeat(255), "a".repeat(256), "not-a-uuid".into(), "4340353B-C2F2-4AEE-813E-CC4BFF286D18".into()]
    {
        let r = c.get(&format!("/v2/h/blobs/uploads/{id}")).await;
        assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"), "{id}");
    }
    assert_eq!(c.get(&loc).await.status, 204, "the real session is untouched");
}
