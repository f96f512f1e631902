//! The Rust OCI client (`oci-client`) against the bundled registry: push (monolithic and chunked), pull,
//! tag listing, cross-repository mount and referrers.

use futures_util::stream;
use integration_tests::Server;
use integration_tests::content::{self, Image};
use integration_tests::ociclient::{PushParts, push_parts};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn client(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..Default::default()
    })
}

fn reference(reg: &Server, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", reg.host()).parse().unwrap()
}

#[tokio::test]
async fn push_and_pull_an_image() {
    let reg = Server::registry();
    let img = Image::new(50, 2, 100_000, "amd64");
    for monolithic in [true, false] {
        let c = client(monolithic);
        let tag = if monolithic { "mono" } else { "chunked" };
        let r = reference(&reg, &format!("rust/client:{tag}"));
        let PushParts { layers, config, manifest } = push_parts(&img);
        c.push(&r, &layers, config, &RegistryAuth::Anonymous, Some(manifest)).await.expect("push");

        let pulled =
            c.pull(&r, &RegistryAuth::Anonymous, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.expect("pull");
        assert_eq!(pulled.config.data, img.config.data);
        // oci-client downloads layers concurrently and returns them in completion order.
        let mut got: Vec<_> = pulled.layers.iter().map(|l| l.data.clone()).collect();
        let mut want: Vec<_> = img.layers.iter().map(|l| l.data.clone()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
    let c = client(true);
    let tags = c
        .list_tags(&reference(&reg, "rust/client"), &RegistryAuth::Anonymous, None, None)
        .await
        .expect("tags");
    assert_eq!(tags.tags, ["chunked", "mono"]);
}

#[tokio::test]
async fn chunked_stream_mount_and_referrers() {
    let reg = Server::registry();
    let c = client(false);
    let data = content::pseudo_random(51, 3 << 20);
    let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> =
        data.chunks(256 << 10).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let src = reference(&reg, "stream/src:x");
    let pushed = c.push_blob_stream_chunked(&src, stream::iter(chunks)).await.expect("chunked stream push");
    assert_eq!(pushed.blob_digest, content::sha256(&data));

    let dst = reference(&reg, "stream/dst:x");
    c.mount_blob(&dst, &src, &pushed.blob_digest).await.expect("mount");
    let r = reg.client().get(&format!("/v2/stream/dst/blobs/{}", pushed.blob_digest)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());

    // Referrers, as the client reads them.
    let h = reg.client();
    let img = Image::new(52, 1, 100, "amd64");
    h.push_image("stream/src", "v1", &img).await;
    let payload = content::Blob::new("application/vnd.example.sig", &b"sig"[..]);
    for b in [&payload, &content::empty_config()] {
        assert_eq!(h.push_blob("stream/src", b).await.status, 201);
    }
    let art = content::artifact("application/vnd.example.sig", &payload, &img.manifest, "s");
    assert_eq!(h.put_manifest("stream/src", &art.digest, &art).await.status, 201);
    let subject: Reference = format!("{}/stream/src@{}", reg.host(), img.manifest.digest).parse().unwrap();
    let index = c.pull_referrers(&subject, Some("application/vnd.example.sig")).await.expect("referrers");
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, art.digest);
}
