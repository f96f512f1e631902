//! A port of the OCI distribution-spec v1.1 conformance suite (`conformance/0[1-4]_*_test.go`): the same
//! four workflows, run in order against one namespace, with the suite's data (tab-indented JSON, unknown
//! fields, a manifest without `mediaType`, dangling subjects) and its exact expectations. Where the suite
//! accepts alternatives, this port asserts the one this registry promises.

use bytes::Bytes;
use hyper::Method;
use integration_tests::content::{self, OCI_INDEX, OCI_MANIFEST};
use integration_tests::{Client, Resp, Server};
use serde::Serialize;
use serde_json::{Value, json};

const NS: &str = "conformance/test";
const XNS: &str = "conformance-crossmount";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
const TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";
const NOTE: &str = "org.opencontainers.conformance.test";

/// Go's `json.MarshalIndent(v, "", "\t")`.
fn tabbed(v: &Value) -> Bytes {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    v.serialize(&mut ser).unwrap();
    out.into()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

struct Doc {
    data: Bytes,
    digest: String,
}

impl Doc {
    fn new(data: Bytes) -> Doc {
        Doc { digest: content::sha256(&data), data }
    }
    fn desc(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.data.len() })
    }
}

/// The suite's test data, regenerated per run.
struct Data {
    layer: Doc,
    configs: Vec<Doc>,
    manifests: Vec<Doc>,
    empty_layer_manifest: Doc,
    empty: Doc,
    ref_a: Doc,
    ref_b: Doc,
    blob_a: Doc,
    blob_b: Doc,
}

fn layer_desc(layer: &Doc) -> Value {
    json!({ "mediaType": LAYER, "digest": layer.digest, "size": layer.data.len(), "newUnspecifiedField": null })
}

fn config_desc(c: &Doc) -> Value {
    json!({ "mediaType": CONFIG, "digest": c.digest, "size": c.data.len(),
            "data": base64(&c.data), "newUnspecifiedField": "aGVsbG8gd29ybGQ=" })
}

impl Data {
    fn new() -> Data {
        let layer = Doc::new(content::layer(99, 100).0.data);
        let configs: Vec<Doc> = (0..5)
            .map(|i| {
                let author: String =
                    content::pseudo_random(100 + i, 16).iter().map(|b| (b'a' + b % 26) as char).collect();
                Doc::new(tabbed(&json!({ "author": author, "architecture": "amd64", "os": "linux",
                    "rootfs": { "type": "layers", "diff_ids": [] } })))
            })
            .collect();
        let manifests = configs
            .iter()
            .map(|c| {
                Doc::new(tabbed(&json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": config_desc(c), "layers": [layer_desc(&layer)] })))
            })
            .collect();
        let empty_layer_manifest = Doc::new(tabbed(
            &json!({ "schemaVersion": 2, "config": config_desc(&configs[1]), "layers": [] }),
        ));
        Data {
            layer,
            configs,
            manifests,
            empty_layer_manifest,
            empty: Doc::new(Bytes::from_static(b"{}")),
            ref_a: Doc::new(Bytes::from_static(b"NHL Peanut Butter on my NHL bagel")),
            ref_b: Doc::new(Bytes::from_static(b"NBA Strawberry Jam on my NBA croissant")),
            blob_a: Doc::new(content::pseudo_random(1, 42).into()),
            blob_b: Doc::new(content::pseudo_random(2, 42).into()),
        }
    }
}

async fn push_blob(c: &Client, ns: &str, d: &Doc) -> Resp {
    let loc = c.post(&format!("/v2/{ns}/blobs/uploads/")).await.location();
    c.request(Method::PUT, &format!("{loc}?digest={}", d.digest))
        .header("content-type", "application/octet-stream")
        .body(d.data.clone())
        .send()
        .await
}

async fn put_manifest(c: &Client, reference: &str, media_type: &str, body: &Bytes) -> Resp {
    c.request(Method::PUT, &format!("/v2/{NS}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(body.clone())
        .send()
        .await
}

fn referrer(
    config: Value,
    layers: Vec<Value>,
    artifact_type: Option<&str>,
    subject: &Doc,
    note: Option<&str>,
) -> Doc {
    let mut m = json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    m["config"] = config;
    m["layers"] = json!(layers);
    m["subject"] = subject.desc(OCI_MANIFEST);
    if let Some(n) = note {
        m["annotations"] = json!({ NOTE: n });
    }
    Doc::new(tabbed(&m))
}

#[tokio::test]
async fn conformance_workflows() {
    let reg = Server::registry();
    let c = reg.client();
    let d = Data::new();
    let dummy = content::sha256(b"hello world");
    pull(&c, &d, &dummy).await;
    push(&c, &d, &dummy).await;
    discovery(&c, &d, &dummy).await;
    management(&c, &d).await;
}

async fn pull(c: &Client, d: &Data, dummy: &str) {
    for b in [&d.configs[0], &d.configs[1], &d.layer] {
        assert_eq!(push_blob(c, NS, b).await.status, 201);
    }
    assert_eq!(put_manifest(c, "tagtest0", OCI_MANIFEST, &d.manifests[0].data).await.status, 201);
    assert_eq!(put_manifest(c, &d.manifests[1].digest, OCI_MANIFEST, &d.manifests[1].data).await.status, 201);

    assert_eq!(c.head(&format!("/v2/{NS}/blobs/{dummy}")).await.status, 404);
    let r = c.head(&format!("/v2/{NS}/blobs/{}", d.configs[0].digest)).await;
    assert_eq!((r.status, r.header("docker-content-digest")), (200, Some(d.configs[0].digest.as_str())));
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{dummy}")).await.status, 404);
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{}", d.configs[0].digest)).await.status, 200);
    assert_eq!(c.head(&format!("/v2/{NS}/manifests/.INVALID_MANIFEST_NAME")).await.status, 404);
    for (reference, want) in [
        (d.manifests[0].digest.as_str(), &d.manifests[0]),
        (&d.manifests[1].digest, &d.manifests[1]),
        ("tagtest0", &d.manifests[0]),
    ] {
        let path = format!("/v2/{NS}/manifests/{reference}");
        let r = c.request(Method::HEAD, &path).header("accept", OCI_MANIFEST).send().await;
        assert_eq!((r.status, r.header("docker-content-digest")), (200, Some(want.digest.as_str())));
        let r = c.request(Method::GET, &path).header("accept", OCI_MANIFEST).send().await;
        assert_eq!((r.status, &r.body), (200, &want.data));
    }
    assert_eq!(c.get(&format!("/v2/{NS}/manifests/.INVALID_MANIFEST_NAME")).await.status, 404);
    let r = c.get(&format!("/v2/{NS}/manifests/sha256:totallywrong")).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert!(
        v["errors"][0]["detail"].is_string() || v["errors"][0]["detail"].is_null(),
        "reggie reads detail as a string"
    );
    assert_eq!(r.error_code(), "DIGEST_INVALID");

    for m in [&d.manifests[0], &d.manifests[1]] {
        assert_eq!(c.delete(&format!("/v2/{NS}/manifests/{}", m.digest)).await.status, 202);
    }
    for b in [&d.configs[0], &d.configs[1], &d.layer] {
        assert_eq!(c.delete(&format!("/v2/{NS}/blobs/{}", b.digest)).await.status, 202);
    }
}

async fn push(c: &Client, d: &Data, dummy: &str) {
    // Streamed.
    let loc = c.post(&format!("/v2/{NS}/blobs/uploads/")).await.location();
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-type", "application/octet-stream")
        .chunked(vec![d.blob_a.data.clone()])
        .send()
        .await;
    assert_eq!(r.status, 202);
    let r = c
        .request(Method::PUT, &format!("{}?digest={}", r.location(), d.blob_a.digest))
        .body(Bytes::new())
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert!(!r.location().is_empty());

    // Monolithic.
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{dummy}")).await.status, 404);
    let r = c
        .request(Method::POST, &format!("/v2/{NS}/blobs/uploads/?digest={}", d.configs[1].digest))
        .header("content-type", "application/octet-stream")
        .body(d.configs[1].data.clone())
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{}", d.configs[1].digest)).await.status, 200);
    let r = c.post(&format!("/v2/{NS}/blobs/uploads/")).await;
    assert_eq!(r.status, 202);
    let r = c
        .request(Method::PUT, &format!("{}?digest={}", r.location(), d.configs[1].digest))
        .body(d.configs[1].data.clone())
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(push_blob(c, NS, &d.layer).await.status, 201);
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{}", d.layer.digest)).await.status, 200);

    // Chunked.
    let (one, two) = (d.blob_b.data.slice(..22), d.blob_b.data.slice(22..));
    let loc = c.post(&format!("/v2/{NS}/blobs/uploads/")).await.location();
    let r = c.request(Method::PATCH, &loc).header("content-range", "22-41").body(two.clone()).send().await;
    assert_eq!(r.status, 416);
    let first = c.post(&format!("/v2/{NS}/blobs/uploads/")).await.location();
    let r = c.request(Method::PATCH, &first).header("content-range", "0-21").body(one.clone()).send().await;
    assert_eq!((r.status, r.header("range")), (202, Some("0-21")));
    let r = c.request(Method::PATCH, &first).header("content-range", "0-21").body(one.clone()).send().await;
    assert_eq!(r.status, 416);
    let r = c.get(&first).await;
    assert_eq!((r.status, r.header("range")), (204, Some("0-21")));
    let r = c.request(Method::PATCH, &r.location()).header("content-range", "22-41").body(two).send().await;
    assert_eq!((r.status, r.header("range")), (202, Some("0-41")));
    let r = c
        .request(Method::PUT, &format!("{}?digest={}", r.location(), d.blob_b.digest))
        .header("content-length", "0")
        .body(Bytes::new())
        .send()
        .await;
    assert_eq!(r.status, 201);

    // Cross-repository mount.
    let r = c.post(&format!("/v2/{XNS}/blobs/uploads/?mount={dummy}")).await;
    assert_eq!(r.status, 202);
    let r = c.post(&format!("/v2/{XNS}/blobs/uploads/?mount={}&from={NS}", d.blob_a.digest)).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.location(), format!("/v2/{XNS}/blobs/{}", d.blob_a.digest));
    assert_eq!(c.get(&r.location()).await.status, 200);
    // OCI_AUTOMATIC_CROSSMOUNT=0: without `from`, a session even though the target holds it now.
    assert_eq!(c.post(&format!("/v2/{XNS}/blobs/uploads/?mount={}", d.blob_a.digest)).await.status, 202);

    // Manifests.
    assert_eq!(c.get(&format!("/v2/{NS}/manifests/.INVALID_MANIFEST_NAME")).await.status, 404);
    for tag in ["test0", "test1", "test2", "test3"] {
        let r = put_manifest(c, tag, OCI_MANIFEST, &d.manifests[1].data).await;
        assert_eq!(r.status, 201);
        assert!(!r.location().is_empty());
    }
    let r = put_manifest(c, "emptylayer", OCI_MANIFEST, &d.empty_layer_manifest.data).await;
    assert_eq!(r.status, 201, "a manifest with no layers and no mediaType: {}", r.text());
    let r = c
        .request(Method::GET, &format!("/v2/{NS}/manifests/{}", d.manifests[1].digest))
        .header("accept", OCI_MANIFEST)
        .send()
        .await;
    assert_eq!(r.status, 200);

    for m in [&d.manifests[1], &d.empty_layer_manifest] {
        assert_eq!(c.delete(&format!("/v2/{NS}/manifests/{}", m.digest)).await.status, 202);
    }
    for b in [&d.configs[1], &d.layer] {
        assert_eq!(c.delete(&format!("/v2/{NS}/blobs/{}", b.digest)).await.status, 202);
    }
}

async fn discovery(c: &Client, d: &Data, dummy: &str) {
    for b in [&d.configs[2], &d.layer] {
        assert_eq!(push_blob(c, NS, b).await.status, 201);
    }
    for tag in ["test0", "test1", "test2", "test3"] {
        assert_eq!(put_manifest(c, tag, OCI_MANIFEST, &d.manifests[2].data).await.status, 201);
    }
    assert_eq!(d.empty.digest, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    let empty = d.empty.desc("application/vnd.oci.empty.v1+json");
    let (m3, m4) = (&d.manifests[3], &d.manifests[4]);
    let a_config = referrer(d.ref_a.desc(TYPE_A), vec![empty.clone()], None, m4, Some("test config a"));
    let a_layer = referrer(empty.clone(), vec![d.ref_a.desc(TYPE_A)], Some(TYPE_A), m4, Some("test layer a"));
    let index = Doc::new(tabbed(
        &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.food.stand",
        "manifests": [a_config.desc(OCI_MANIFEST), a_layer.desc(OCI_MANIFEST)],
        "subject": m4.desc(OCI_MANIFEST), "annotations": { NOTE: "test index" } }),
    ));
    let b_config = referrer(d.ref_b.desc(TYPE_B), vec![empty.clone()], None, m4, Some("test config b"));
    let b_layer = referrer(empty.clone(), vec![d.ref_b.desc(TYPE_B)], Some(TYPE_B), m4, Some("test layer b"));
    let c_layer = referrer(empty.clone(), vec![d.ref_b.desc(TYPE_B)], Some(TYPE_B), m3, None);

    for b in [&d.empty, &d.ref_a] {
        assert_eq!(push_blob(c, NS, b).await.status, 201);
    }
    for (doc, mt) in [(&a_config, OCI_MANIFEST), (&a_layer, OCI_MANIFEST), (&index, OCI_INDEX)] {
        let r = put_manifest(c, &doc.digest, mt, &doc.data).await;
        assert_eq!((r.status, r.header("oci-subject")), (201, Some(m4.digest.as_str())), "{}", r.text());
    }
    for b in [&d.configs[4], &d.layer] {
        assert_eq!(push_blob(c, NS, b).await.status, 201);
    }
    assert_eq!(put_manifest(c, "tagtest0", OCI_MANIFEST, &m4.data).await.status, 201);
    assert_eq!(push_blob(c, NS, &d.ref_b).await.status, 201);
    for (doc, subject) in [(&b_config, m4), (&b_layer, m4), (&c_layer, m3)] {
        let r = put_manifest(c, &doc.digest, OCI_MANIFEST, &doc.data).await;
        assert_eq!((r.status, r.header("oci-subject")), (201, Some(subject.digest.as_str())));
    }

    // Tags.
    let r = c.get(&format!("/v2/{NS}/tags/list")).await;
    assert_eq!(r.status, 200);
    let tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    assert_eq!(tags, ["tagtest0", "test0", "test1", "test2", "test3"]);
    let k = tags.len() / 2;
    let r = c.get(&format!("/v2/{NS}/tags/list?n={k}")).await;
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), k);
    let r = c.get(&format!("/v2/{NS}/tags/list?n={k}&last={}", tags[k - 1])).await;
    assert_eq!(r.status, 200);
    let next: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    assert_eq!(next, tags[k..2 * k]);

    // Referrers.
    let r = c.get(&format!("/v2/{NS}/referrers/{dummy}")).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some(OCI_INDEX)));
    assert_eq!(r.json()["manifests"], json!([]));
    let r = c.get(&format!("/v2/{NS}/referrers/{}", m4.digest)).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some(OCI_INDEX)));
    let v = r.json();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    let notes = [
        (&a_config, "test config a"),
        (&a_layer, "test layer a"),
        (&index, "test index"),
        (&b_config, "test config b"),
        (&b_layer, "test layer b"),
    ];
    for m in list {
        let want = notes.iter().find(|(doc, _)| m["digest"] == doc.digest.as_str()).unwrap().1;
        assert_eq!(m["annotations"], json!({ NOTE: want }));
    }
    let r = c
        .get(&format!(
            "/v2/{NS}/referrers/{}?artifactType=application%2Fvnd.nhl.peanut.butter.bagel",
            m4.digest
        ))
        .await;
    assert_eq!(
        (r.status, r.header("content-type"), r.header("oci-filters-applied")),
        (200, Some(OCI_INDEX), Some("artifactType"))
    );
    let v = r.json();
    let mut got: Vec<&str> =
        v["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap()).collect();
    got.sort();
    let mut want = vec![a_config.digest.as_str(), a_layer.digest.as_str()];
    want.sort();
    assert_eq!(got, want);
    let r = c.get(&format!("/v2/{NS}/referrers/{}", m3.digest)).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], c_layer.digest.as_str());

    for doc in [&index, &d.manifests[2], m4, &a_config, &a_layer, &b_config, &b_layer, &c_layer] {
        let s = c.delete(&format!("/v2/{NS}/manifests/{}", doc.digest)).await.status;
        assert!(s == 202 || s == 404, "{s}");
    }
    for b in [&d.configs[2], &d.layer, &d.configs[4], &d.ref_a, &d.ref_b, &d.empty] {
        let s = c.delete(&format!("/v2/{NS}/blobs/{}", b.digest)).await.status;
        assert!(s == 202 || s == 404, "{s}");
    }
}

async fn management(c: &Client, d: &Data) {
    for b in [&d.configs[3], &d.layer] {
        assert_eq!(push_blob(c, NS, b).await.status, 201);
    }
    assert_eq!(put_manifest(c, "tagtest0", OCI_MANIFEST, &d.manifests[3].data).await.status, 201);
    let r = c.get(&format!("/v2/{NS}/tags/list")).await;
    let before = r.json()["tags"].as_array().unwrap().len();

    assert_eq!(c.delete(&format!("/v2/{NS}/manifests/tagtest0")).await.status, 202);
    assert_eq!(c.delete(&format!("/v2/{NS}/manifests/{}", d.manifests[3].digest)).await.status, 202);
    assert_eq!(c.get(&format!("/v2/{NS}/manifests/{}", d.manifests[3].digest)).await.status, 404);
    let r = c.get(&format!("/v2/{NS}/tags/list")).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["tags"].as_array().unwrap().len() < before);

    assert_eq!(c.delete(&format!("/v2/{NS}/blobs/{}", d.configs[3].digest)).await.status, 202);
    assert_eq!(c.delete(&format!("/v2/{NS}/blobs/{}", d.layer.digest)).await.status, 202);
    assert_eq!(c.get(&format!("/v2/{NS}/blobs/{}", d.configs[3].digest)).await.status, 404);
}
