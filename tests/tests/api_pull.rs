//! Pull endpoints of the bundled registry: the API check, manifests and blobs by tag and digest, HEAD,
//! ranges, and their errors.

use integration_tests::content::{self, Blob, Image, OCI_MANIFEST};
use integration_tests::{Client, Server};

async fn with_image() -> (Server, Client, Image) {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(7, 2, 4_000, "amd64");
    c.push_image("lib/app", "v1", &img).await;
    (reg, c, img)
}

#[tokio::test]
async fn api_version_check() {
    let reg = Server::registry();
    let c = reg.client();
    let r = c.get("/v2/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-distribution-api-version"), Some("registry/2.0"));
    assert_eq!(r.json(), serde_json::json!({}));
    assert_eq!(c.head("/v2/").await.status, 200);
    assert_eq!(c.get("/v2").await.status, 200);
}

#[tokio::test]
async fn manifest_by_tag_and_digest_with_exact_headers() {
    let (_reg, c, img) = with_image().await;
    for reference in ["v1", img.manifest.digest.as_str()] {
        let r = c.get(&format!("/v2/lib/app/manifests/{reference}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, img.manifest.data, "exact bytes");
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("content-length"), Some(img.manifest.data.len().to_string().as_str()));
        assert_eq!(r.header("docker-content-digest"), Some(img.manifest.digest.as_str()));

        let h = c.head(&format!("/v2/lib/app/manifests/{reference}")).await;
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty(), "HEAD has no body");
        assert_eq!(h.header("content-length"), Some(img.manifest.data.len().to_string().as_str()));
        assert_eq!(h.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(h.header("docker-content-digest"), Some(img.manifest.digest.as_str()));
    }
}

#[tokio::test]
async fn manifest_conditional_get() {
    let (_reg, c, img) = with_image().await;
    let r = c
        .request(hyper::Method::GET, "/v2/lib/app/manifests/v1")
        .header("if-none-match", &format!("\"{}\"", img.manifest.digest))
        .send()
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = c
        .request(hyper::Method::GET, "/v2/lib/app/manifests/v1")
        .header("if-none-match", "\"other\"")
        .send()
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn manifest_errors() {
    let (_reg, c, _img) = with_image().await;
    let r = c.get("/v2/lib/app/manifests/nope").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let missing = content::sha256(b"hello world");
    let r = c.get(&format!("/v2/lib/app/manifests/{missing}")).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = c.head("/v2/lib/app/manifests/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    // A tag that breaks the grammar names nothing: 404, as the conformance suite expects.
    let r = c.get("/v2/lib/app/manifests/.INVALID_MANIFEST_NAME").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(c.head("/v2/lib/app/manifests/.INVALID_MANIFEST_NAME").await.status, 404);
    let r = c.get("/v2/lib/app/manifests/sha256:totallywrong").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    let r = c.get("/v2/lib/other/manifests/v1").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "NAME_UNKNOWN"));
}

#[tokio::test]
async fn blob_get_and_head() {
    let (_reg, c, img) = with_image().await;
    let layer = &img.layers[0];
    let r = c.get(&format!("/v2/lib/app/blobs/{}", layer.digest)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layer.data);
    assert_eq!(r.header("docker-content-digest"), Some(layer.digest.as_str()));
    assert_eq!(r.header("content-length"), Some(layer.data.len().to_string().as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let h = c.head(&format!("/v2/lib/app/blobs/{}", layer.digest)).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some(layer.data.len().to_string().as_str()));
    assert_eq!(h.header("docker-content-digest"), Some(layer.digest.as_str()));
}

#[tokio::test]
async fn blob_ranges() {
    let (_reg, c, img) = with_image().await;
    let layer = &img.layers[1];
    let len = layer.data.len();
    let path = format!("/v2/lib/app/blobs/{}", layer.digest);
    let get_range = |range: String| {
        let c = c.clone();
        let path = path.clone();
        async move { c.request(hyper::Method::GET, &path).header("range", &range).send().await }
    };
    let r = get_range("bytes=0-99".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, layer.data.slice(0..100));
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-99/{len}").as_str()));
    assert_eq!(r.header("content-length"), Some("100"));

    let r = get_range("bytes=100-".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, layer.data.slice(100..));

    let r = get_range("bytes=-10".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, layer.data.slice(len - 10..));
    assert_eq!(r.header("content-range"), Some(format!("bytes {}-{}/{len}", len - 10, len - 1).as_str()));

    let r = get_range(format!("bytes={len}-")).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{len}").as_str()));
    assert_eq!(r.error_code(), "RANGE_INVALID");

    let r = get_range("bytes=50-10".into()).await;
    assert_eq!((r.status, r.error_code().as_str()), (416, "RANGE_INVALID"));

    // Several ranges: the whole blob, as RFC 9110 allows.
    let r = get_range("bytes=0-1,5-6".into()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);
}

#[tokio::test]
async fn blob_errors_and_isolation() {
    let (_reg, c, img) = with_image().await;
    let missing = content::sha256(b"hello world");
    let r = c.get(&format!("/v2/lib/app/blobs/{missing}")).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = c.head(&format!("/v2/lib/app/blobs/{missing}")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = c.get("/v2/lib/app/blobs/sha256:1234").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    let r = c.get("/v2/lib/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    // The blob is stored, but another repository does not hold it: not readable through it.
    let other = Image::new(8, 1, 100, "amd64");
    c.push_image("lib/other", "v1", &other).await;
    let r = c.get(&format!("/v2/lib/other/blobs/{}", img.layers[0].digest)).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[tokio::test]
async fn index_and_artifacts_with_any_media_type() {
    let reg = Server::registry();
    let c = reg.client();
    let a = Image::new(10, 1, 1000, "amd64");
    let b = Image::new(11, 1, 1000, "arm64");
    c.push_image("multi", "amd64", &a).await;
    c.push_image("multi", "arm64", &b).await;
    let idx = content::index(&[(&a, "amd64"), (&b, "arm64")]);
    let r = c.put_manifest("multi", "latest", &idx).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = c.get("/v2/multi/manifests/latest").await;
    assert_eq!(r.header("content-type"), Some(content::OCI_INDEX));
    assert_eq!(r.body, idx.data);

    // A Helm chart: custom config and layer media types.
    let chart_config =
        Blob::new("application/vnd.cncf.helm.config.v1+json", &br#"{"name":"demo","version":"0.1.0"}"#[..]);
    let chart =
        Blob::new("application/vnd.cncf.helm.chart.content.v1.tar+gzip", content::layer(12, 500).0.data);
    for b in [&chart_config, &chart] {
        assert_eq!(c.push_blob("charts/demo", b).await.status, 201);
    }
    let manifest = Blob::json(
        OCI_MANIFEST,
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": chart_config.descriptor(), "layers": [chart.descriptor()]}),
    );
    assert_eq!(c.put_manifest("charts/demo", "0.1.0", &manifest).await.status, 201);
    let r = c.get("/v2/charts/demo/manifests/0.1.0").await;
    assert_eq!(r.body, manifest.data);

    // A manifest of a media type the registry has never heard of is stored and served as pushed.
    let custom = Blob::json("application/vnd.example.thing.v1+json", &serde_json::json!({"hello": "world"}));
    let r = c.put_manifest("things", "one", &custom).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = c.get("/v2/things/manifests/one").await;
    assert_eq!(r.header("content-type"), Some("application/vnd.example.thing.v1+json"));
    assert_eq!(r.body, custom.data);
}
