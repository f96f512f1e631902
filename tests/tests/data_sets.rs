//! The content shapes the redesigned OCI conformance suite pushes (conformance/testdata.go on the
//! distribution-spec main branch): each must be accepted, served byte for byte and deleted again.

use bytes::Bytes;
use hyper::Method;
use integration_tests::content::{self, Blob, Image, OCI_INDEX, OCI_MANIFEST};
use integration_tests::{Client, Server};
use serde_json::json;
use sha2::{Digest as _, Sha512};

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", Sha512::digest(data).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn put(c: &Client, repo: &str, reference: &str, m: &Blob) {
    let r = c
        .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
        .header("content-type", &m.media_type)
        .chunked(m.data.chunks(100_000).map(Bytes::copy_from_slice).collect())
        .send()
        .await;
    assert_eq!(r.status, 201, "{reference}: {}", r.text());
    let got = c.get(&r.location()).await;
    assert_eq!(got.body, m.data, "{reference}: served as pushed");
    assert_eq!(got.header("content-type"), Some(m.media_type.as_str()));
}

#[tokio::test]
async fn nested_and_empty_indexes() {
    let reg = Server::registry();
    let c = reg.client();
    let imgs: Vec<Image> =
        (0..4).map(|i| Image::new(60 + i, 1, 500, if i % 2 == 0 { "amd64" } else { "arm64" })).collect();
    for (i, img) in imgs.iter().enumerate() {
        c.push_image("nest", &format!("i{i}"), img).await;
    }
    let a = content::index(&[(&imgs[0], "amd64"), (&imgs[1], "arm64")]);
    let b = content::index(&[(&imgs[2], "amd64"), (&imgs[3], "arm64")]);
    put(&c, "nest", &a.digest, &a).await;
    put(&c, "nest", &b.digest, &b).await;
    let mut da = a.descriptor();
    da["platform"] = serde_json::Value::Null;
    let top = Blob::json(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [da, b.descriptor()]}),
    );
    put(&c, "nest", "index-of-index", &top).await;
    let empty = Blob::json(OCI_INDEX, &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    put(&c, "nest", "empty", &empty).await;
    for d in [&top.digest, &b.digest, &a.digest] {
        assert_eq!(c.delete(&format!("/v2/nest/manifests/{d}")).await.status, 202);
        assert_eq!(c.head(&format!("/v2/nest/manifests/{d}")).await.status, 404);
    }
}

#[tokio::test]
async fn non_distributable_layers_need_not_be_pushed() {
    let reg = Server::registry();
    let c = reg.client();
    let config = content::empty_config();
    let (normal, _) = content::layer(70, 100);
    for b in [&config, &normal] {
        c.push_blob("nd", b).await;
    }
    let foreign = json!({"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "digest": content::sha256(b"never pushed"), "size": 123456, "urls": ["https://example.com/layer"]});
    let foreign2 = json!({"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "digest": content::sha256(b"never pushed either"), "size": 12345});
    let m = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": 2},
        "layers": [foreign, foreign2, normal.descriptor()]}),
    );
    put(&c, "nd", "non-distributable-image", &m).await;
}

#[tokio::test]
async fn large_manifest_and_uncompressed_layers() {
    let reg = Server::registry();
    let c = reg.client();
    let config = Blob::json(
        content::OCI_CONFIG,
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    );
    let layer =
        Blob::new("application/vnd.oci.image.layer.v1.tar", content::tar_with_file("a.txt", b"hello"));
    for b in [&config, &layer] {
        c.push_blob("large", b).await;
    }
    let annotations: serde_json::Map<String, serde_json::Value> =
        (0..390).map(|i| (format!("large-annotation-{i}"), json!("A".repeat(10_000)))).collect();
    let m = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config.descriptor(), "layers": [layer.descriptor()], "annotations": annotations}),
    );
    assert!(m.data.len() > 3_900_000);
    put(&c, "large", "large-manifest", &m).await;
    let h = c.head("/v2/large/manifests/large-manifest").await;
    assert_eq!(h.header("content-length"), Some(m.data.len().to_string().as_str()));
}

#[tokio::test]
async fn artifact_whose_config_is_also_its_layer_and_a_missing_subject() {
    let reg = Server::registry();
    let c = reg.client();
    let empty = content::empty_config();
    c.push_blob("art", &empty).await;
    let missing =
        json!({"mediaType": OCI_MANIFEST, "size": 123, "digest": content::sha256(b"missing content")});
    let m = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.oci.conformance.v1",
        "config": empty.descriptor(), "layers": [empty.descriptor()], "subject": missing}),
    );
    let r = c.put_manifest("art", "tagged-artifact", &m).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("oci-subject"), Some(content::sha256(b"missing content").as_str()));
    let v = c.get(&format!("/v2/art/referrers/{}", content::sha256(b"missing content"))).await.json();
    assert_eq!(v["manifests"][0]["digest"], m.digest.as_str());
    assert_eq!(v["manifests"][0]["artifactType"], "application/vnd.example.oci.conformance.v1");
}

#[tokio::test]
async fn sha512_everywhere() {
    let reg = Server::registry();
    let c = reg.client();
    let config = Blob::json(
        content::OCI_CONFIG,
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    );
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", content::pseudo_random(71, 3067));
    let d512 = |b: &Blob| sha512(&b.data);
    // POST + PUT, single POST, chunked, mount: all by sha512.
    let loc = c.post("/v2/s/blobs/uploads/").await.location();
    let r = c
        .request(Method::PUT, &format!("{loc}?digest={}", d512(&config)))
        .body(config.data.clone())
        .send()
        .await;
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(d512(&config).as_str())));
    let r = c
        .request(Method::POST, &format!("/v2/s/blobs/uploads/?digest={}", d512(&layer)))
        .body(layer.data.clone())
        .send()
        .await;
    assert_eq!(r.status, 201);
    let loc = c.post("/v2/s/blobs/uploads/").await.location();
    for (start, end) in [(0usize, 1023usize), (1024, 2047)] {
        let r = c
            .request(Method::PATCH, &loc)
            .header("content-range", &format!("{start}-{end}"))
            .body(layer.data.slice(start..=end))
            .send()
            .await;
        assert_eq!(r.status, 202);
    }
    let r = c
        .request(Method::PUT, &format!("{loc}?digest={}", d512(&layer)))
        .header("content-range", "2048-3066")
        .body(layer.data.slice(2048..))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = c.post(&format!("/v2/s2/blobs/uploads/?mount={}&from=s", d512(&layer).replace(':', "%3A"))).await;
    assert_eq!(r.status, 201);
    let r = c.get(&format!("/v2/s2/blobs/{}", d512(&layer))).await;
    assert_eq!((r.status, r.header("docker-content-digest")), (200, Some(d512(&layer).as_str())));
    assert_eq!(r.body, layer.data);
    // A wrong sha512 digest is refused.
    let r = c
        .request(Method::POST, &format!("/v2/s/blobs/uploads/?digest={}", sha512(b"other")))
        .body(layer.data.clone())
        .send()
        .await;
    assert_eq!(r.status, 400);

    let desc = |b: &Blob| json!({"mediaType": b.media_type, "digest": d512(b), "size": b.data.len()});
    let m = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(&config), "layers": [desc(&layer)]}),
    );
    let r = c.put_manifest("s", &d512(&m), &m).await;
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(d512(&m).as_str())));
    let idx =
        Blob::json(OCI_INDEX, &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(&m)]}));
    let r = c
        .request(Method::PUT, &format!("/v2/s/manifests/{}?tag=multi", d512(&idx)))
        .header("content-type", OCI_INDEX)
        .body(idx.data.clone())
        .send()
        .await;
    assert_eq!((r.status, r.header("oci-tag")), (201, Some("multi")));
    let r = c.head("/v2/s/manifests/multi").await;
    assert_eq!(r.header("docker-content-digest"), Some(d512(&idx).as_str()), "a tag keeps the sha512 digest");
    for d in [d512(&idx), d512(&m)] {
        assert_eq!(c.delete(&format!("/v2/s/manifests/{d}")).await.status, 202);
        assert_eq!(c.head(&format!("/v2/s/manifests/{d}")).await.status, 404);
    }
    assert_eq!(c.delete(&format!("/v2/s/blobs/{}", d512(&layer))).await.status, 202);
    assert_eq!(c.head(&format!("/v2/s/blobs/{}", d512(&layer))).await.status, 404);
    assert_eq!(
        c.head(&format!("/v2/s2/blobs/{}", d512(&layer))).await.status,
        200,
        "still in the other repository"
    );
}
